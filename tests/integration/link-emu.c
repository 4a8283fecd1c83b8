/*
 * A bad link in user space, for kernels without sch_netem (test-link-netem.sh).
 *
 *   link-emu offload-off IF...
 *       Turn off checksum offload, scatter-gather, TSO, GSO and GRO on each interface (the
 *       ethtool ioctls), so that every frame on it is a real, complete Ethernet frame.
 *   link-emu bridge IF_A IF_B DELAY_MS LOSS_PCT RATE_BPS [LIMIT [SEED]]
 *       Forward every frame between IF_A and IF_B (AF_PACKET), both ways, the way
 *       `tc qdisc add ... netem delay D loss L% rate R limit N` on both ends would: each
 *       direction is a queue of at most LIMIT frames (default 1000) serialised at RATE_BPS
 *       bits per second (the frame's length) and then held DELAY_MS; LOSS_PCT percent of
 *       the frames are dropped at random on the way in. SIGUSR1 cuts the link (every frame
 *       is dropped, like loss 100%), SIGUSR2 restores it; SIGTERM or SIGINT print the
 *       figures per direction on stderr and exit.
 *
 * Run the bridge in a namespace of its own between the two ends' veth peers; it touches
 * nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAX 2048

struct frame {
        uint64_t release_usec;
        size_t len;
        uint8_t data[FRAME_MAX];
};

struct direction {
        const char *from, *to;
        int in, out; /* sockets */
        struct frame *q;
        size_t head, count, limit;
        uint64_t last_tx_done_usec;
        uint64_t passed, passed_bytes, lost, lost_bytes, cut, cut_bytes, overflow, oversize;
};

static volatile sig_atomic_t cut_now, stop_now;
static void on_usr1(int s) { (void) s; cut_now = 1; }
static void on_usr2(int s) { (void) s; cut_now = 0; }
static void on_stop(int s) { (void) s; stop_now = 1; }

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t rng_state;
static double random01(void) { /* xorshift64*, reproducible with SEED */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (double) ((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int offload_off(const char *ifname) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return perror("socket"), -1;
        static const uint32_t cmds[] = {ETHTOOL_STXCSUM, ETHTOOL_SRXCSUM, ETHTOOL_SSG,
                                        ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO};
        static const char *const names[] = {"tx-checksum", "rx-checksum", "sg", "tso", "gso", "gro"};
        int bad = 0;
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                struct ethtool_value v = {.cmd = cmds[i], .data = 0};
                struct ifreq ifr;
                memset(&ifr, 0, sizeof(ifr));
                snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
                ifr.ifr_data = (void *) &v;
                if (ioctl(fd, SIOCETHTOOL, &ifr) < 0 && errno != EOPNOTSUPP) {
                        fprintf(stderr, "link-emu: %s: cannot turn %s off: %s\n", ifname, names[i],
                                strerror(errno));
                        bad = 1;
                }
        }
        close(fd);
        return bad ? -1 : 0;
}

static int open_if(const char *ifname) {
        unsigned idx = if_nametoindex(ifname);
        if (!idx) {
                fprintf(stderr, "link-emu: %s: %s\n", ifname, strerror(errno));
                return -1;
        }
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
        if (fd < 0)
                return perror("link-emu: AF_PACKET socket"), -1;
        int one = 1;
        (void) setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
        struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                                  .sll_ifindex = (int) idx};
        if (bind(fd, (struct sockaddr *) &sll, sizeof(sll)) < 0) {
                fprintf(stderr, "link-emu: bind %s: %s\n", ifname, strerror(errno));
                close(fd);
                return -1;
        }
        return fd;
}

static void receive(struct direction *d, uint64_t delay_usec, double loss, uint64_t rate_bps) {
        for (;;) {
                uint8_t buf[FRAME_MAX];
                struct sockaddr_ll from;
                socklen_t fl = sizeof(from);
                ssize_t n = recvfrom(d->in, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *) &from, &fl);
                if (n < 0)
                        return; /* EAGAIN: drained */
                if (from.sll_pkttype == PACKET_OUTGOING)
                        continue; /* our own transmission, if PACKET_IGNORE_OUTGOING is missing */
                if ((size_t) n > sizeof(buf)) {
                        d->oversize++; /* offloads still on: cannot forward it whole */
                        continue;
                }
                if (cut_now) {
                        d->cut++;
                        d->cut_bytes += (uint64_t) n;
                        continue;
                }
                if (loss > 0 && random01() < loss) {
                        d->lost++;
                        d->lost_bytes += (uint64_t) n;
                        continue;
                }
                if (d->count >= d->limit) {
                        d->overflow++;
                        continue;
                }
                uint64_t now = now_usec();
                uint64_t start = d->last_tx_done_usec > now ? d->last_tx_done_usec : now;
                uint64_t tx = rate_bps ? (uint64_t) n * 8ULL * 1000000ULL / rate_bps : 0;
                d->last_tx_done_usec = start + tx;
                struct frame *f = &d->q[(d->head + d->count) % d->limit];
                f->release_usec = start + tx + delay_usec;
                f->len = (size_t) n;
                memcpy(f->data, buf, (size_t) n);
                d->count++;
        }
}

static void release(struct direction *d, uint64_t now) {
        while (d->count > 0 && d->q[d->head].release_usec <= now) {
                struct frame *f = &d->q[d->head];
                if (!cut_now) {
                        if (send(d->out, f->data, f->len, 0) == (ssize_t) f->len) {
                                d->passed++;
                                d->passed_bytes += f->len;
                        }
                } else {
                        d->cut++; /* in flight when the link was cut */
                        d->cut_bytes += f->len;
                }
                d->head = (d->head + 1) % d->limit;
                d->count--;
        }
}

static int bridge(int argc, char **argv) {
        if (argc < 7) {
                fprintf(stderr, "usage: link-emu bridge IF_A IF_B DELAY_MS LOSS_PCT RATE_BPS [LIMIT [SEED]]\n");
                return 2;
        }
        uint64_t delay_usec = strtoull(argv[4], NULL, 10) * 1000ULL;
        double loss = strtod(argv[5], NULL) / 100.0;
        uint64_t rate = strtoull(argv[6], NULL, 10);
        size_t limit = argc > 7 ? strtoull(argv[7], NULL, 10) : 1000;
        rng_state = argc > 8 ? strtoull(argv[8], NULL, 10) : (uint64_t) time(NULL) ^ (uint64_t) getpid() << 16;
        if (!rng_state)
                rng_state = 88172645463325252ULL;
        if (limit < 1)
                limit = 1;
        int a = open_if(argv[2]), b = open_if(argv[3]);
        if (a < 0 || b < 0)
                return 1;
        struct direction dirs[2] = {
                {.from = argv[2], .to = argv[3], .in = a, .out = b, .limit = limit},
                {.from = argv[3], .to = argv[2], .in = b, .out = a, .limit = limit},
        };
        for (int i = 0; i < 2; i++)
                if (!(dirs[i].q = calloc(limit, sizeof(struct frame))))
                        return perror("link-emu"), 1;
        struct sigaction sa = {.sa_handler = on_usr1};
        sigaction(SIGUSR1, &sa, NULL);
        sa.sa_handler = on_usr2;
        sigaction(SIGUSR2, &sa, NULL);
        sa.sa_handler = on_stop;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        fprintf(stderr, "link-emu: %s <-> %s: delay %" PRIu64 " ms, loss %.1f%%, rate %" PRIu64
                " bit/s, limit %zu\n", argv[2], argv[3], delay_usec / 1000, loss * 100, rate, limit);
        while (!stop_now) {
                uint64_t now = now_usec(), next = UINT64_MAX;
                for (int i = 0; i < 2; i++) {
                        release(&dirs[i], now);
                        if (dirs[i].count && dirs[i].q[dirs[i].head].release_usec < next)
                                next = dirs[i].q[dirs[i].head].release_usec;
                }
                struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
                struct timespec ts, *tsp = NULL;
                if (next != UINT64_MAX) {
                        uint64_t wait = next > now ? next - now : 0;
                        ts.tv_sec = (time_t) (wait / 1000000ULL);
                        ts.tv_nsec = (long) (wait % 1000000ULL) * 1000L;
                        tsp = &ts;
                }
                int r = ppoll(p, 2, tsp, NULL);
                if (r < 0 && errno != EINTR)
                        return perror("link-emu: ppoll"), 1;
                if (r > 0) {
                        if ((p[0].revents | p[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) {
                                /* the interface or its namespace went away: nothing to bridge */
                                fprintf(stderr, "link-emu: an interface went away, stopping\n");
                                break;
                        }
                        if (p[0].revents & POLLIN)
                                receive(&dirs[0], delay_usec, loss, rate);
                        if (p[1].revents & POLLIN)
                                receive(&dirs[1], delay_usec, loss, rate);
                }
        }
        for (int i = 0; i < 2; i++) {
                struct direction *d = &dirs[i];
                fprintf(stderr,
                        "link-emu: %s -> %s: passed %" PRIu64 " frames (%" PRIu64 " bytes), lost %" PRIu64
                        " (%" PRIu64 " bytes), cut %" PRIu64 " (%" PRIu64 " bytes), queue full %" PRIu64
                        ", oversize %" PRIu64 "\n",
                        d->from, d->to, d->passed, d->passed_bytes, d->lost, d->lost_bytes, d->cut,
                        d->cut_bytes, d->overflow, d->oversize);
                free(d->q);
        }
        return 0;
}

int main(int argc, char **argv) {
        if (argc >= 3 && strcmp(argv[1], "offload-off") == 0) {
                int bad = 0;
                for (int i = 2; i < argc; i++)
                        bad |= offload_off(argv[i]) < 0;
                return bad;
        }
        if (argc >= 2 && strcmp(argv[1], "bridge") == 0)
                return bridge(argc, argv);
        fprintf(stderr, "usage: link-emu offload-off IF... | link-emu bridge IF_A IF_B DELAY_MS LOSS_PCT "
                        "RATE_BPS [LIMIT [SEED]]\n");
        return 2;
}
