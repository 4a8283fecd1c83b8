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
#include <unistd.h>

#include "tests/integration/log-writes.h"

static int usage(void) {
        fputs("usage: log-writes-replay init LOG [SECTOR_SIZE]\n"
              "       log-writes-replay replay LOG DISK [--tail none|all|random:SEED]\n"
              "       log-writes-replay list LOG\n",
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

int main(int argc, char **argv) {
        if (argc < 3)
                return usage();
        const char *cmd = argv[1], *log = argv[2];
        if (strcmp(cmd, "init") == 0)
                return argc <= 4 ? cmd_init(log, argc == 4 ? argv[3] : NULL) : usage();
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
