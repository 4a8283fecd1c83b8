/* The write log of dm-log-writes and QEMU's blklogwrites (log-writes.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/log-writes.h"

#define LW_MARK_MAX 4096 /* the kernel's marks are short names; anything longer is no mark */

static int fail(char *why, size_t why_size, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t why_size, int r, const char *fmt, ...) {
        if (why && why_size) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, why_size, fmt, ap);
                va_end(ap);
        }
        return r;
}

static uint64_t le64(const unsigned char *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static uint32_t le32(const unsigned char *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(unsigned char *p, uint64_t v) {
        for (int i = 0; i < 8; i++, v >>= 8)
                p[i] = (unsigned char)v;
}

static bool sectorsize_valid(uint32_t s) {
        return s >= 512 && s <= 65536 && (s & (s - 1)) == 0;
}

int lw_super_parse(const unsigned char *buf, size_t len, struct lw_super *ret, char *why, size_t why_size) {
        if (len < LW_SUPER_SIZE)
                return fail(why, why_size, -EBADMSG, "super block: %zu bytes, a log has at least %d", len,
                            LW_SUPER_SIZE);
        uint64_t magic = le64(buf), version = le64(buf + 8);
        if (magic != LW_MAGIC)
                return fail(why, why_size, -EBADMSG, "super block: magic %#" PRIx64 ", not a write log (%#" PRIx64 ")",
                            magic, LW_MAGIC);
        if (version != LW_VERSION)
                return fail(why, why_size, -EBADMSG, "super block: version %" PRIu64 ", this reader knows %d",
                            version, LW_VERSION);
        uint32_t sectorsize = le32(buf + 24);
        if (!sectorsize_valid(sectorsize))
                return fail(why, why_size, -EBADMSG,
                            "super block: sector size %" PRIu32 " (a power of two from 512 to 65536)", sectorsize);
        ret->nr_entries = le64(buf + 16);
        ret->sectorsize = sectorsize;
        return 0;
}

void lw_super_format(unsigned char *buf, size_t len, uint32_t sectorsize, uint64_t nr_entries) {
        memset(buf, 0, len);
        put_le64(buf, LW_MAGIC);
        put_le64(buf + 8, LW_VERSION);
        put_le64(buf + 16, nr_entries);
        for (int i = 0; i < 4; i++)
                buf[24 + i] = (unsigned char)(sectorsize >> (8 * i));
}

int lw_entry_parse(const unsigned char *hdr, size_t len, uint32_t sectorsize, uint64_t at, struct lw_entry *ret,
                   uint64_t *next, char *why, size_t why_size) {
        if (len < LW_ENTRY_SIZE)
                return fail(why, why_size, -EBADMSG, "log sector %" PRIu64 ": %zu bytes of a %d-byte header", at,
                            len, LW_ENTRY_SIZE);
        bool zero = true;
        for (size_t i = 0; i < LW_ENTRY_SIZE; i++)
                zero = zero && hdr[i] == 0;
        if (zero)
                return 0;
        struct lw_entry e = {
                .sector = le64(hdr),
                .nr_sectors = le64(hdr + 8),
                .flags = le64(hdr + 16),
                .data_len = le64(hdr + 24),
                .log_sector = at,
        };
        if (e.flags & ~(uint64_t)LW_FLAGS_KNOWN)
                return fail(why, why_size, -EBADMSG, "log sector %" PRIu64 ": unknown flags %#" PRIx64, at, e.flags);
        /* the sectors of data that follow the header */
        uint64_t data_sectors;
        if (e.flags & LW_MARK) {
                if (e.data_len > LW_MARK_MAX)
                        return fail(why, why_size, -EBADMSG, "log sector %" PRIu64 ": a mark of %" PRIu64 " bytes",
                                    at, e.data_len);
                data_sectors = (e.data_len + sectorsize - 1) / sectorsize;
        } else if (e.flags & LW_FLUSH) {
                if (e.nr_sectors != 0)
                        return fail(why, why_size, -EBADMSG,
                                    "log sector %" PRIu64 ": a flush with %" PRIu64 " sectors of data", at,
                                    e.nr_sectors);
                data_sectors = 0;
        } else if (e.flags & LW_DISCARD) {
                data_sectors = 0;
        } else {
                if (e.nr_sectors == 0)
                        return fail(why, why_size, -EBADMSG, "log sector %" PRIu64 ": a write of no sectors", at);
                data_sectors = e.nr_sectors;
        }
        /* past any disk (2^40 sectors of at most 64 KiB: 64 EiB), and no product below wraps */
        if (e.nr_sectors > (UINT64_C(1) << 40) || e.sector > (UINT64_C(1) << 40))
                return fail(why, why_size, -EBADMSG,
                            "log sector %" PRIu64 ": sector %" PRIu64 " + %" PRIu64 " is past any disk", at, e.sector,
                            e.nr_sectors);
        e.data_offset = (at + 1) * sectorsize;
        *ret = e;
        *next = at + 1 + data_sectors;
        return 1;
}

/* splitmix64: a small generator whose sequence the seed alone decides */
static uint64_t draw(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

void lw_plan(const struct lw_entry *e, size_t n, uint32_t sectorsize, enum lw_tail tail, uint64_t seed,
             bool *keep, struct lw_stats *stats) {
        memset(stats, 0, sizeof(*stats));
        stats->entries = n;
        size_t durable = 0;
        for (size_t i = 0; i < n; i++)
                if (e[i].flags & LW_FLUSH) {
                        stats->flushes++;
                        durable = i + 1;
                }
        stats->durable = durable;
        uint64_t state = seed;
        for (size_t i = 0; i < n; i++) {
                if (i < durable) {
                        keep[i] = true;
                        continue;
                }
                keep[i] = false;
                if (e[i].flags & (LW_FLUSH | LW_MARK))
                        continue; /* nothing on the disk to keep */
                stats->tail_writes++;
                stats->tail_bytes += e[i].nr_sectors * sectorsize;
                if (e[i].flags & LW_FUA)
                        keep[i] = true;
                else if (tail == LW_TAIL_ALL)
                        keep[i] = true;
                else if (tail == LW_TAIL_RANDOM)
                        keep[i] = draw(&state) & 1;
                if (keep[i]) {
                        stats->tail_kept++;
                        stats->tail_kept_bytes += e[i].nr_sectors * sectorsize;
                }
        }
}

int lw_tail_parse(const char *s, enum lw_tail *ret, uint64_t *seed) {
        *seed = 0;
        if (strcmp(s, "none") == 0) {
                *ret = LW_TAIL_NONE;
                return 0;
        }
        if (strcmp(s, "all") == 0) {
                *ret = LW_TAIL_ALL;
                return 0;
        }
        if (strncmp(s, "random:", 7) == 0) {
                const char *v = s + 7;
                char *end;
                errno = 0;
                unsigned long long x = strtoull(v, &end, 10);
                if (errno || end == v || *end || *v == '-')
                        return -EINVAL;
                *ret = LW_TAIL_RANDOM;
                *seed = x;
                return 0;
        }
        return -EINVAL;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off, size_t *got) {
        size_t done = 0;
        while (done < len) {
                ssize_t k = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t)k;
        }
        *got = done;
        return 0;
}

static int write_at(int fd, const void *buf, size_t len, uint64_t off) {
        size_t done = 0;
        while (done < len) {
                ssize_t k = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t)k;
        }
        return 0;
}

int lw_scan(int fd, uint64_t disk_size, struct lw_super *super, struct lw_entry **ret, size_t *n,
            uint64_t *hole, char *why, size_t why_size) {
        *ret = NULL;
        *n = 0;
        *hole = 0;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail(why, why_size, -errno, "the log: %s", strerror(errno));
        uint64_t log_size = (uint64_t)st.st_size;
        unsigned char sb[LW_SUPER_SIZE];
        size_t got;
        int r = read_at(fd, sb, sizeof(sb), 0, &got);
        if (r < 0)
                return fail(why, why_size, r, "the log's super block: %s", strerror(-r));
        r = lw_super_parse(sb, got, super, why, why_size);
        if (r < 0)
                return r;
        uint32_t ss = super->sectorsize;
        struct lw_entry *list = NULL;
        size_t count = 0, cap = 0;
        uint64_t at = 1;
        for (;;) {
                unsigned char hdr[LW_ENTRY_SIZE];
                if ((at + 1) * ss > log_size)
                        break; /* no whole header sector: the end of the file */
                r = read_at(fd, hdr, sizeof(hdr), at * ss, &got);
                if (r < 0) {
                        free(list);
                        return fail(why, why_size, r, "the log at sector %" PRIu64 ": %s", at, strerror(-r));
                }
                struct lw_entry e;
                uint64_t next;
                r = lw_entry_parse(hdr, got, ss, at, &e, &next, why, why_size);
                if (r < 0) {
                        free(list);
                        return r;
                }
                if (r == 0) {
                        if (count < super->nr_entries)
                                *hole = at;
                        break;
                }
                if (next * ss > log_size)
                        break; /* its data not all there: the cut came inside its write */
                if (!(e.flags & (LW_FLUSH | LW_MARK)) && (e.sector + e.nr_sectors) * ss > disk_size) {
                        free(list);
                        return fail(why, why_size, -ERANGE,
                                    "entry %zu (log sector %" PRIu64 "): sectors %" PRIu64 "-%" PRIu64
                                    " are past the disk's end (%" PRIu64 " bytes)",
                                    count, at, e.sector, e.sector + e.nr_sectors - 1, disk_size);
                }
                if (count == cap) {
                        size_t ncap = cap ? cap * 2 : 256;
                        struct lw_entry *m = realloc(list, ncap * sizeof(*m));
                        if (!m) {
                                free(list);
                                return fail(why, why_size, -ENOMEM, "%zu entries: out of memory", count);
                        }
                        list = m;
                        cap = ncap;
                }
                list[count++] = e;
                at = next;
        }
        *ret = list;
        *n = count;
        return 0;
}

/* One entry onto the disk: a write's data from the log, a discard as zeros. */
static int apply_entry(int log_fd, int disk_fd, uint32_t sectorsize, const struct lw_entry *e, size_t i,
                       unsigned char *buf, size_t bufsize, char *why, size_t why_size) {
        uint64_t len = e->nr_sectors * sectorsize, off = e->sector * sectorsize;
        int r = 0;
        for (uint64_t done = 0; done < len && r == 0;) {
                size_t k = len - done < bufsize ? (size_t)(len - done) : bufsize, got = k;
                if (e->flags & LW_DISCARD)
                        memset(buf, 0, k);
                else if ((r = read_at(log_fd, buf, k, e->data_offset + done, &got)) < 0)
                        r = fail(why, why_size, r, "entry %zu's data: %s", i, strerror(-r));
                else if (got != k)
                        r = fail(why, why_size, -EBADMSG, "entry %zu's data: %zu of %zu bytes in the log", i, got, k);
                if (r == 0 && (r = write_at(disk_fd, buf, k, off + done)) < 0)
                        r = fail(why, why_size, r, "entry %zu: writing the disk at byte %" PRIu64 ": %s", i,
                                 off + done, strerror(-r));
                done += k;
        }
        return r;
}

enum { REPLAY_CHUNK = 1 << 20 };

int lw_replay(int log_fd, int disk_fd, uint32_t sectorsize, const struct lw_entry *e, size_t n,
              const bool *keep, struct lw_stats *stats, char *why, size_t why_size) {
        unsigned char *buf = malloc(REPLAY_CHUNK);
        if (!buf)
                return fail(why, why_size, -ENOMEM, "out of memory");
        stats->replayed_writes = stats->replayed_bytes = 0;
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i++) {
                if (!keep[i] || (e[i].flags & (LW_FLUSH | LW_MARK)))
                        continue;
                r = apply_entry(log_fd, disk_fd, sectorsize, &e[i], i, buf, REPLAY_CHUNK, why, why_size);
                if (r == 0) {
                        stats->replayed_writes++;
                        stats->replayed_bytes += e[i].nr_sectors * sectorsize;
                }
        }
        free(buf);
        return r;
}

int lw_replay_range(int log_fd, int disk_fd, uint32_t sectorsize, const struct lw_entry *e, size_t from, size_t to,
                    char *why, size_t why_size) {
        unsigned char *buf = malloc(REPLAY_CHUNK);
        if (!buf)
                return fail(why, why_size, -ENOMEM, "out of memory");
        int r = 0;
        for (size_t i = from; i < to && r == 0; i++)
                if (!(e[i].flags & (LW_FLUSH | LW_MARK)))
                        r = apply_entry(log_fd, disk_fd, sectorsize, &e[i], i, buf, REPLAY_CHUNK, why, why_size);
        free(buf);
        return r;
}

int lw_region_parse(const char *s, struct lw_region *ret) {
        const char *c1 = strchr(s, ':');
        if (!c1 || c1 == s || (size_t)(c1 - s) >= LW_REGION_NAME_MAX)
                return -EINVAL;
        for (const char *p = s; p < c1; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                        return -EINVAL;
        uint64_t v[2];
        const char *p = c1 + 1;
        for (int k = 0; k < 2; k++) {
                char *end;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                errno = 0;
                unsigned long long x = strtoull(p, &end, 10);
                if (errno || end == p || *end != (k == 0 ? ':' : '\0'))
                        return -EINVAL;
                v[k] = x;
                p = end + 1;
        }
        if (v[1] == 0 || v[0] + v[1] < v[0])
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        memcpy(ret->name, s, (size_t)(c1 - s));
        ret->offset = v[0];
        ret->length = v[1];
        return 0;
}

size_t lw_sweep_points(const struct lw_entry *e, size_t n, uint32_t sectorsize, const struct lw_region *regions,
                       size_t nregions, struct lw_point *out) {
        uint32_t all = nregions ? (nregions >= 32 ? UINT32_MAX : (UINT32_C(1) << nregions) - 1) : 1;
        uint32_t pending = all; /* the first point: everything is news to the checker */
        size_t np = 0, flushes = 0;
        for (size_t i = 0; i < n; i++) {
                if (e[i].flags & LW_FLUSH) {
                        flushes++;
                        if (pending)
                                out[np++] = (struct lw_point){.entry = i, .flush = flushes, .changed = pending};
                        pending = 0;
                        continue;
                }
                if (e[i].flags & LW_MARK || e[i].nr_sectors == 0)
                        continue;
                if (!nregions) {
                        pending |= 1;
                        continue;
                }
                uint64_t lo = e[i].sector * sectorsize, hi = lo + e[i].nr_sectors * sectorsize;
                for (size_t k = 0; k < nregions && k < 32; k++)
                        if (lo < regions[k].offset + regions[k].length && regions[k].offset < hi)
                                pending |= UINT32_C(1) << k;
        }
        return np;
}
