/*
 * log-writes-replay: what a disk with a volatile write cache holds after a power cut,
 * made from the write log QEMU's blklogwrites driver (or dm-log-writes) kept of it.
 *
 *   log-writes-replay init LOG [SECTOR_SIZE]
 *       Make LOG an empty log (its super block; sector size 512 by default), for QEMU's
 *       blklogwrites to fill (its log-sector-size must be the same).
 *   log-writes-replay replay LOG DISK [--tail none|all|random:SEED]
 *       Apply the logged writes to DISK, the disk as it was when the log began: every
 *       write up to the log's last flush, and of those after it (acknowledged to the
 *       guest, not flushed) none (the default: the cache lost them), all, or each with a
 *       chance of one half drawn from SEED. FUA writes are kept. One line of figures on
 *       standard output; DISK is fsynced.
 *   log-writes-replay list LOG
 *       Print every entry: index, log sector, flags, disk sector and count.
 *   log-writes-replay sweep LOG DISK [--region NAME:OFFSET:LENGTH]... -- CMD [ARG]...
 *       The disk as a cut right after each flush in turn would leave it (xfstests' way):
 *       DISK (a copy of the disk as it was when the log began) is brought forward to each
 *       point of the sweep (lw_sweep_points: the first flush, then each flush after which
 *       a region was written) and CMD runs there, with LW_POINT, LW_POINTS, LW_FLUSH,
 *       LW_FLUSHES, LW_ENTRY and LW_CHANGED (the names of the regions written since the
 *       previous point; "disk" with no region given) in its environment. Every point is
 *       checked; the last line counts the points CMD failed, and the status is 1 if any.
 *
 * scripts/board.sh test-powercut --lose-cache (docs/board.md). Exit status 0, or 1 with
 * the reason on standard error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/log-writes.h"

static int usage(void) {
        fputs("usage: log-writes-replay init LOG [SECTOR_SIZE]\n"
              "       log-writes-replay replay LOG DISK [--tail none|all|random:SEED]\n"
              "       log-writes-replay list LOG\n"
              "       log-writes-replay sweep LOG DISK [--region NAME:OFFSET:LENGTH]... -- CMD [ARG]...\n",
              stderr);
        return 2;
}

static int die(const char *what, const char *why) {
        fprintf(stderr, "log-writes-replay: %s: %s\n", what, why);
        return 1;
}

static int cmd_init(const char *path, const char *size_arg) {
        unsigned long ss = 512;
        if (size_arg) {
                char *end;
                errno = 0;
                ss = strtoul(size_arg, &end, 10);
                if (errno || end == size_arg || *end || ss < 512 || ss > 65536 || (ss & (ss - 1)))
                        return die(size_arg, "a sector size is a power of two from 512 to 65536");
        }
        unsigned char *sb = calloc(1, ss);
        if (!sb)
                return die(path, strerror(ENOMEM));
        lw_super_format(sb, ss, (uint32_t)ss, 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int ok = fd >= 0 && write(fd, sb, ss) == (ssize_t)ss && fsync(fd) == 0;
        int e = errno;
        free(sb);
        if (fd >= 0)
                close(fd);
        return ok ? 0 : die(path, strerror(e));
}

static const char *flag_names(uint64_t f, char *buf, size_t size) {
        snprintf(buf, size, "%s%s%s%s%s", f & LW_FLUSH ? "flush " : "", f & LW_FUA ? "fua " : "",
                 f & LW_DISCARD ? "discard " : "", f & LW_MARK ? "mark " : "", f & LW_METADATA ? "metadata " : "");
        size_t len = strlen(buf);
        if (len == 0)
                snprintf(buf, size, "write");
        else
                buf[len - 1] = '\0';
        return buf;
}

static double mib(uint64_t bytes) {
        return (double)bytes / (1024.0 * 1024.0);
}

static int setenv_u(const char *name, uint64_t v) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return setenv(name, buf, 1);
}

/* CMD at one point: 0 when it exited 0. */
static int run_check(char **cmd) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execvp(cmd[0], cmd);
                fprintf(stderr, "log-writes-replay: %s: %s\n", cmd[0], strerror(errno));
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int cmd_sweep(int argc, char **argv) {
        /* argv: sweep LOG DISK [--region R]... -- CMD... */
        const char *log = argv[2], *disk = argv[3];
        struct lw_region regions[LW_REGIONS_MAX];
        size_t nreg = 0;
        int i = 4;
        for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
                if (strcmp(argv[i], "--region") != 0 || i + 1 >= argc)
                        return usage();
                if (nreg == LW_REGIONS_MAX)
                        return die(argv[i + 1], "too many regions");
                if (lw_region_parse(argv[i + 1], &regions[nreg++]) < 0)
                        return die(argv[i + 1], "a region is NAME:OFFSET:LENGTH (bytes; NAME of a-z 0-9 _ -)");
        }
        if (i + 1 >= argc)
                return usage();
        char **cmd = argv + i + 1;

        int lfd = open(log, O_RDONLY | O_CLOEXEC), dfd = open(disk, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (lfd < 0)
                return die(log, strerror(errno));
        if (dfd < 0 || fstat(dfd, &st) < 0)
                return die(disk, strerror(errno));
        char why[256] = "";
        struct lw_super super;
        struct lw_entry *e = NULL;
        size_t n = 0;
        uint64_t hole = 0;
        if (lw_scan(lfd, (uint64_t)st.st_size, &super, &e, &n, &hole, why, sizeof(why)) < 0)
                return die(log, why);
        struct lw_point *pt = calloc(n ? n : 1, sizeof(*pt));
        if (!pt)
                return die(log, strerror(ENOMEM));
        size_t np = lw_sweep_points(e, n, super.sectorsize, regions, nreg, pt), flushes = 0;
        for (size_t k = 0; k < n; k++)
                flushes += !!(e[k].flags & LW_FLUSH);
        size_t failed = 0, at = 0;
        char failed_at[256] = "";
        for (size_t k = 0; k < np; k++) {
                if (lw_replay_range(lfd, dfd, super.sectorsize, e, at, pt[k].entry + 1, why, sizeof(why)) < 0)
                        return die(disk, why);
                at = pt[k].entry + 1;
                /* the names, space-separated (each under LW_REGION_NAME_MAX: they fit) */
                char changed[LW_REGIONS_MAX * LW_REGION_NAME_MAX + 8] = "";
                size_t used = 0;
                for (size_t r = 0; r < (nreg ? nreg : 1); r++) {
                        if (!(pt[k].changed & (UINT32_C(1) << r)))
                                continue;
                        const char *name = nreg ? regions[r].name : "disk";
                        size_t l = strlen(name);
                        if (used + l + 2 > sizeof(changed))
                                break;
                        if (used)
                                changed[used++] = ' ';
                        memcpy(changed + used, name, l);
                        used += l;
                        changed[used] = '\0';
                }
                if (setenv_u("LW_POINT", k + 1) < 0 || setenv_u("LW_POINTS", np) < 0 ||
                    setenv_u("LW_FLUSH", pt[k].flush) < 0 || setenv_u("LW_FLUSHES", flushes) < 0 ||
                    setenv_u("LW_ENTRY", pt[k].entry) < 0 || setenv("LW_CHANGED", changed, 1) < 0)
                        return die("the environment", strerror(errno));
                int r = run_check(cmd);
                if (r < 0)
                        return die(cmd[0], strerror(-r));
                if (r > 0 && failed++ < 10)
                        snprintf(failed_at + strlen(failed_at), sizeof(failed_at) - strlen(failed_at), "%s%zu",
                                 failed_at[0] ? ", " : "", pt[k].flush);
        }
        printf("sweep: %zu entries, %zu flushes, %zu points checked, %zu failed%s%s%s", n, flushes, np, failed,
               failed ? " (flushes " : "", failed_at, failed ? (failed > 10 ? ", ...)" : ")") : "");
        if (hole)
                printf("; the log unreadable from sector %" PRIu64 " on (a write in flight at the cut): no point "
                       "past it", hole);
        printf("\n");
        free(pt);
        free(e);
        close(lfd);
        close(dfd);
        return failed ? 1 : 0;
}

int main(int argc, char **argv) {
        if (argc < 3)
                return usage();
        const char *cmd = argv[1], *log = argv[2];
        if (strcmp(cmd, "init") == 0)
                return argc <= 4 ? cmd_init(log, argc == 4 ? argv[3] : NULL) : usage();
        if (strcmp(cmd, "sweep") == 0)
                return argc >= 6 ? cmd_sweep(argc, argv) : usage();
        bool list = strcmp(cmd, "list") == 0;
        if (!list && strcmp(cmd, "replay") != 0)
                return usage();
        if (list ? argc != 3 : argc != 4 && argc != 6)
                return usage();
        const char *disk = list ? NULL : argv[3];
        enum lw_tail tail = LW_TAIL_NONE;
        uint64_t seed = 0;
        if (argc == 6) {
                if (strcmp(argv[4], "--tail") != 0)
                        return usage();
                if (lw_tail_parse(argv[5], &tail, &seed) < 0)
                        return die(argv[5], "--tail takes none, all or random:SEED");
        }

        int lfd = open(log, O_RDONLY | O_CLOEXEC);
        if (lfd < 0)
                return die(log, strerror(errno));
        int dfd = -1;
        uint64_t disk_size = UINT64_MAX;
        if (disk) {
                struct stat st;
                dfd = open(disk, O_RDWR | O_CLOEXEC);
                if (dfd < 0 || fstat(dfd, &st) < 0)
                        return die(disk, strerror(errno));
                disk_size = (uint64_t)st.st_size;
        }
        char why[256] = "";
        struct lw_super super;
        struct lw_entry *e = NULL;
        size_t n = 0;
        uint64_t hole = 0;
        if (lw_scan(lfd, disk_size, &super, &e, &n, &hole, why, sizeof(why)) < 0)
                return die(log, why);
        if (list) {
                char f[64];
                printf("# sector size %" PRIu32 ", %" PRIu64 " entries counted by the super block, %zu read\n",
                       super.sectorsize, super.nr_entries, n);
                for (size_t i = 0; i < n; i++)
                        printf("%zu %" PRIu64 " %s %" PRIu64 " %" PRIu64 "\n", i, e[i].log_sector,
                               flag_names(e[i].flags, f, sizeof(f)), e[i].sector, e[i].nr_sectors);
                if (hole)
                        printf("# log sector %" PRIu64 ": empty (a write in flight at the cut)\n", hole);
                free(e);
                return 0;
        }
        bool *keep = calloc(n ? n : 1, sizeof(*keep));
        if (!keep)
                return die(log, strerror(ENOMEM));
        struct lw_stats st;
        lw_plan(e, n, super.sectorsize, tail, seed, keep, &st);
        if (lw_replay(lfd, dfd, super.sectorsize, e, n, keep, &st, why, sizeof(why)) < 0)
                return die(disk, why);
        if (fsync(dfd) < 0)
                return die(disk, strerror(errno));
        printf("log-writes: %zu entries, %zu flushes, %zu up to the last flush; after it %zu writes (%.2f MiB) "
               "acknowledged, not flushed: %zu lost, %zu kept (tail %s); replayed %" PRIu64 " writes (%.1f MiB)",
               st.entries, st.flushes, st.durable, st.tail_writes, mib(st.tail_bytes), st.tail_writes - st.tail_kept,
               st.tail_kept, tail == LW_TAIL_NONE ? "none" : tail == LW_TAIL_ALL ? "all" : "random",
               st.replayed_writes, mib(st.replayed_bytes));
        if (hole)
                printf("; log sector %" PRIu64 " empty (a write in flight at the cut): the super block's %" PRIu64
                       " entries not all read",
                       hole, super.nr_entries);
        printf("\n");
        free(keep);
        free(e);
        close(lfd);
        close(dfd);
        return 0;
}
