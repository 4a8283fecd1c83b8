/* The write log of Linux's dm-log-writes target, which QEMU's blklogwrites block driver
 * writes too: every write a disk acknowledged, in the order it completed, and its
 * flushes. scripts/board.sh test-powercut --lose-cache replays it up to the disk's last
 * flush after a power cut, so the board boots what a disk with a volatile write cache
 * would hold (docs/board.md). The format (all little-endian): sector 0 of the log holds
 * the super block; entries follow from log sector 1, each a header sector and then, for
 * a write, its nr_sectors sectors of data (a mark: data_len bytes, rounded up to a
 * sector; a discard: none). Sectors are the log's sector size, the disk's offsets too.
 *
 * The parsers and the choice of what a cut keeps are pure (tests/unit/test-log-writes.c);
 * lw_scan and lw_replay read and write files. No dependency beyond libc: board.sh builds
 * the replay tool on its own when no build of the tree is at hand. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LW_MAGIC UINT64_C(0x6a736677736872)
#define LW_VERSION 1
#define LW_SUPER_SIZE 28 /* magic, version, nr_entries (u64), sectorsize (u32) */
#define LW_ENTRY_SIZE 32 /* sector, nr_sectors, flags, data_len (u64) */

enum {
        LW_FLUSH = 1 << 0,
        LW_FUA = 1 << 1,
        LW_DISCARD = 1 << 2,
        LW_MARK = 1 << 3,
        LW_METADATA = 1 << 4,
        LW_FLAGS_KNOWN = (1 << 5) - 1,
};

struct lw_super {
        uint64_t nr_entries; /* as of the last time the writer updated it (QEMU: a flush) */
        uint32_t sectorsize;
};

struct lw_entry {
        uint64_t sector, nr_sectors, flags, data_len;
        uint64_t log_sector; /* where its header is in the log */
        uint64_t data_offset; /* bytes into the log where its data begins */
};

/* What a cut keeps after the disk's last flush: nothing (the cache lost it all), all of
 * it (the disk wrote every acknowledged write: what killing QEMU alone leaves), or each
 * write with a chance of one half drawn from a seed (the cache had written some back, in
 * any order). FUA writes are kept whatever the policy: they bypass the cache. */
enum lw_tail {
        LW_TAIL_NONE,
        LW_TAIL_ALL,
        LW_TAIL_RANDOM,
};

struct lw_stats {
        size_t entries, flushes;
        size_t durable; /* entries up to and including the last flush */
        size_t tail_writes, tail_kept; /* writes (and discards) after the last flush */
        uint64_t tail_bytes, tail_kept_bytes;
        uint64_t replayed_writes, replayed_bytes;
};

/* 0, or -EBADMSG with why: not a log (magic), another version, a sector size that is not
 * a power of two from 512 to 64 KiB. */
int lw_super_parse(const unsigned char *buf, size_t len, struct lw_super *ret, char *why, size_t why_size);
/* An empty log's super block in buf (len >= LW_SUPER_SIZE; the rest zeroed). */
void lw_super_format(unsigned char *buf, size_t len, uint32_t sectorsize, uint64_t nr_entries);

/* The header at log sector `at` (hdr: its first len bytes): 1 with ret and *next (the
 * sector of the entry after it); 0 when the header is all zeros (the log ends there, or a
 * write was still in flight at the cut); -EBADMSG with why when it is no entry (unknown
 * flags, a flush with data, a write without any, a mark too long). */
int lw_entry_parse(const unsigned char *hdr, size_t len, uint32_t sectorsize, uint64_t at, struct lw_entry *ret,
                   uint64_t *next, char *why, size_t why_size);

/* Which entries a cut leaves on the disk (keep[i] for entry i): every one up to and
 * including the last flush, FUA writes after it, the rest after it by the tail policy
 * (seed: LW_TAIL_RANDOM's draws, the same seed the same choice). Fills stats but its
 * replayed_* counts. */
void lw_plan(const struct lw_entry *e, size_t n, uint32_t sectorsize, enum lw_tail tail, uint64_t seed,
             bool *keep, struct lw_stats *stats);

/* "none", "all" or "random:SEED": 0, or -EINVAL. */
int lw_tail_parse(const char *s, enum lw_tail *ret, uint64_t *seed);

/* The sweep (xfstests' way with dm-log-writes): the disk as a cut right after each flush
 * would leave it, each checked in turn. A region is a named byte range of the disk (a
 * partition); a point is a flush after which some region holds writes the previous point
 * did not have. */
#define LW_REGIONS_MAX 16
#define LW_REGION_NAME_MAX 32
struct lw_region {
        char name[LW_REGION_NAME_MAX];
        uint64_t offset, length; /* bytes */
};

struct lw_point {
        size_t entry;    /* the flush's index among the entries */
        size_t flush;    /* its number among the log's flushes, from 1 */
        uint32_t changed; /* bit i: region i written since the previous point */
};

/* "NAME:OFFSET:LENGTH" (bytes, decimal; NAME 1-31 of a-z 0-9 _ -): 0, or -EINVAL. */
int lw_region_parse(const char *s, struct lw_region *ret);

/* The points of the sweep in out (room for every flush of e): the first flush always, with
 * every region marked changed (the checker knows nothing of the disk yet); after it, each
 * flush after which a write or discard since the previous point overlaps a region (with no
 * region given: any write at all, as bit 0). Writes after the last flush belong to no point.
 * Returns how many points. */
size_t lw_sweep_points(const struct lw_entry *e, size_t n, uint32_t sectorsize, const struct lw_region *regions,
                       size_t nregions, struct lw_point *out);

/* Read the log at fd: its super block and its entries, up to the first all-zero header
 * or the end of the file (an entry whose data the file does not hold whole is left out:
 * the cut came inside its write). *hole: the sector where the parse stopped at an
 * all-zero header while the super block counts more entries (a write in flight at the
 * cut, whose length is unknown: what follows it cannot be read), else 0. Every entry is
 * checked to lie within disk_size bytes. 0, or -errno with why naming the entry. */
int lw_scan(int fd, uint64_t disk_size, struct lw_super *super, struct lw_entry **ret, size_t *n,
            uint64_t *hole, char *why, size_t why_size);

/* Apply the kept entries to disk_fd in the log's order: a write's data from the log, a
 * discard as zeros. 0, or -errno with why. */
int lw_replay(int log_fd, int disk_fd, uint32_t sectorsize, const struct lw_entry *e, size_t n,
              const bool *keep, struct lw_stats *stats, char *why, size_t why_size);

/* Apply entries from..to-1 to disk_fd (writes and discards, in the log's order): the sweep's
 * step from one point to the next. 0, or -errno with why. */
int lw_replay_range(int log_fd, int disk_fd, uint32_t sectorsize, const struct lw_entry *e, size_t from, size_t to,
                    char *why, size_t why_size);
