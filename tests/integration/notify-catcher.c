/* Test helper: receive sd_notify datagrams on a unix socket and log them with timestamps. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DATAGRAM_MAX 4096

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
        (void) sig;
        stop_requested = 1;
}

static long long monotonic_ms(void) {
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
                return 0;
        return (long long) ts.tv_sec * 1000LL + ts.tv_nsec / 1000000L;
}

/* Write every non-empty newline-separated assignment of the datagram as its own line. */
static int log_datagram(FILE *out, const char *buf, size_t len, long long stamp) {
        size_t start = 0;
        while (start < len) {
                size_t end = start;
                while (end < len && buf[end] != '\n')
                        end++;
                size_t n = end - start;
                /* sd_notify payloads carry no NULs, but never let one cut a line short. */
                while (n > 0 && buf[start + n - 1] == '\0')
                        n--;
                if (n > 0) {
                        if (fprintf(out, "%lld ", stamp) < 0)
                                return -1;
                        if (fwrite(buf + start, 1, n, out) != n)
                                return -1;
                        if (fputc('\n', out) == EOF)
                                return -1;
                }
                start = end + 1;
        }
        return fflush(out) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
        if (argc != 3) {
                fprintf(stderr, "usage: %s SOCKET_PATH OUTPUT_FILE\n", argv[0]);
                return 2;
        }
        const char *socket_path = argv[1];
        const char *output_path = argv[2];

        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        if (strlen(socket_path) >= sizeof(addr.sun_path)) {
                fprintf(stderr, "notify-catcher: socket path too long: %s\n", socket_path);
                return 2;
        }
        memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);

        /* Block the stop signals; ppoll unblocks them atomically, so none is missed. */
        sigset_t stop_set, wait_mask;
        sigemptyset(&stop_set);
        sigaddset(&stop_set, SIGTERM);
        sigaddset(&stop_set, SIGINT);
        if (sigprocmask(SIG_BLOCK, &stop_set, &wait_mask) < 0) {
                perror("notify-catcher: sigprocmask");
                return 1;
        }
        sigdelset(&wait_mask, SIGTERM);
        sigdelset(&wait_mask, SIGINT);

        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
                perror("notify-catcher: sigaction");
                return 1;
        }

        FILE *out = fopen(output_path, "ae");
        if (!out) {
                fprintf(stderr, "notify-catcher: %s: %s\n", output_path, strerror(errno));
                return 1;
        }

        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                perror("notify-catcher: socket");
                fclose(out);
                return 1;
        }
        if (unlink(socket_path) < 0 && errno != ENOENT) {
                fprintf(stderr, "notify-catcher: unlink %s: %s\n", socket_path, strerror(errno));
                close(fd);
                fclose(out);
                return 1;
        }
        if (bind(fd, (struct sockaddr *) &addr, sizeof(addr)) < 0) {
                fprintf(stderr, "notify-catcher: bind %s: %s\n", socket_path, strerror(errno));
                close(fd);
                fclose(out);
                return 1;
        }

        int status = 0;
        char buf[DATAGRAM_MAX];
        while (!stop_requested) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int r = ppoll(&pfd, 1, NULL, &wait_mask);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("notify-catcher: ppoll");
                        status = 1;
                        break;
                }
                if (!(pfd.revents & POLLIN))
                        continue;
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                                continue;
                        perror("notify-catcher: recv");
                        status = 1;
                        break;
                }
                if (log_datagram(out, buf, (size_t) n, monotonic_ms()) < 0) {
                        fprintf(stderr, "notify-catcher: writing %s failed\n", output_path);
                        status = 1;
                        break;
                }
        }

        close(fd);
        if (unlink(socket_path) < 0 && errno != ENOENT)
                fprintf(stderr, "notify-catcher: unlink %s: %s\n", socket_path, strerror(errno));
        if (fclose(out) != 0)
                status = 1;
        return status;
}
