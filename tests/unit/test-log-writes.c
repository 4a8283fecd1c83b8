/* Unit tests for the write log reader and replay (tests/integration/log-writes.h): the
 * super block and entry parsers, what a cut keeps after the last flush, and the replay
 * into a disk file, from logs made here byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/log-writes.h"

#define SS 512

/* ---- a log made in memory, as blklogwrites writes it ---- */
struct logbuf {
        unsigned char *data;
        size_t size; /* bytes */
        uint64_t entries;
};

static void lb_grow(struct logbuf *l, size_t more) {
        l->data = realloc(l->data, l->size + more);
        assert_non_null(l->data);
        memset(l->data + l->size, 0, more);
        l->size += more;
}

static void lb_init(struct logbuf *l) {
        *l = (struct logbuf){0};
        lb_grow(l, SS);
        lw_super_format(l->data, SS, SS, 0);
}

static void put64(unsigned char *p, uint64_t v) {
        for (int i = 0; i < 8; i++, v >>= 8)
                p[i] = (unsigned char)v;
}

static void lb_entry(struct logbuf *l, uint64_t sector, uint64_t nr, uint64_t flags, uint64_t data_len,
                     const void *data, size_t data_size) {
        size_t at = l->size;
        lb_grow(l, SS + (data_size + SS - 1) / SS * SS);
        put64(l->data + at, sector);
        put64(l->data + at + 8, nr);
        put64(l->data + at + 16, flags);
        put64(l->data + at + 24, data_len);
        if (data_size)
                memcpy(l->data + at + SS, data, data_size);
        l->entries++;
}

static void lb_write(struct logbuf *l, uint64_t sector, uint64_t nr, char fill, uint64_t flags) {
        size_t len = nr * SS;
        char *d = malloc(len);
        assert_non_null(d);
        memset(d, fill, len);
        lb_entry(l, sector, nr, flags, 0, d, len);
        free(d);
}

/* a flush, and the super block counting every entry so far (what QEMU does on a flush) */
static void lb_flush(struct logbuf *l) {
        lb_entry(l, 0, 0, LW_FLUSH, 0, NULL, 0);
        lw_super_format(l->data, SS, SS, l->entries);
}

static int lb_file(const struct logbuf *l) {
        char path[] = "/tmp/test-log-writes.XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        unlink(path);
        assert_int_equal(write(fd, l->data, l->size), (ssize_t)l->size);
        return fd;
}

/* a disk of `sectors` sectors, each filled with `fill` */
static int disk_file(size_t sectors, char fill) {
        struct logbuf d = {0};
        lb_grow(&d, sectors * SS);
        memset(d.data, fill, d.size);
        int fd = lb_file(&d);
        free(d.data);
        return fd;
}

static char disk_sector(int fd, uint64_t sector) {
        char b[SS];
        assert_int_equal(pread(fd, b, SS, (off_t)(sector * SS)), SS);
        for (int i = 1; i < SS; i++)
                assert_int_equal(b[i], b[0]); /* every byte of a sector written as one */
        return b[0];
}

/* ---- the parsers ---- */
static void test_super(void **state) {
        (void)state;
        unsigned char b[SS];
        struct lw_super s;
        char why[256];
        lw_super_format(b, sizeof(b), 4096, 17);
        assert_int_equal(lw_super_parse(b, sizeof(b), &s, why, sizeof(why)), 0);
        assert_int_equal(s.nr_entries, 17);
        assert_int_equal(s.sectorsize, 4096);

        assert_int_equal(lw_super_parse(b, LW_SUPER_SIZE - 1, &s, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "27 bytes"));
        b[0] ^= 1;
        assert_int_equal(lw_super_parse(b, sizeof(b), &s, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "not a write log"));
        lw_super_format(b, sizeof(b), 512, 0);
        b[8] = 2;
        assert_int_equal(lw_super_parse(b, sizeof(b), &s, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "version 2"));
        lw_super_format(b, sizeof(b), 1000, 0);
        assert_int_equal(lw_super_parse(b, sizeof(b), &s, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "sector size 1000"));
        lw_super_format(b, sizeof(b), 256, 0);
        assert_int_equal(lw_super_parse(b, sizeof(b), &s, why, sizeof(why)), -EBADMSG);
}

static int parse(uint64_t sector, uint64_t nr, uint64_t flags, uint64_t data_len, struct lw_entry *e,
                 uint64_t *next, char *why) {
        unsigned char h[SS] = {0};
        put64(h, sector);
        put64(h + 8, nr);
        put64(h + 16, flags);
        put64(h + 24, data_len);
        return lw_entry_parse(h, sizeof(h), SS, 10, e, next, why, 256);
}

static void test_entry(void **state) {
        (void)state;
        struct lw_entry e;
        uint64_t next = 0;
        char why[256];
        unsigned char zero[SS] = {0};
        /* an all-zero header: the end */
        assert_int_equal(lw_entry_parse(zero, sizeof(zero), SS, 10, &e, &next, why, sizeof(why)), 0);
        /* a write: its data follows, the next header after it */
        assert_int_equal(parse(100, 8, 0, 0, &e, &next, why), 1);
        assert_int_equal(e.sector, 100);
        assert_int_equal(e.nr_sectors, 8);
        assert_int_equal(e.log_sector, 10);
        assert_int_equal(e.data_offset, 11 * SS);
        assert_int_equal(next, 19);
        /* a flush, a discard: no data */
        assert_int_equal(parse(0, 0, LW_FLUSH, 0, &e, &next, why), 1);
        assert_int_equal(next, 11);
        assert_int_equal(parse(64, 1024, LW_DISCARD, 0, &e, &next, why), 1);
        assert_int_equal(next, 11);
        /* a mark (dm-log-writes): its name, rounded up to a sector */
        assert_int_equal(parse(0, 0, LW_MARK, 600, &e, &next, why), 1);
        assert_int_equal(next, 13);
        assert_int_equal(parse(0, 4, LW_FUA | LW_METADATA, 0, &e, &next, why), 1);
        assert_int_equal(next, 15);

        assert_int_equal(parse(0, 1, 1 << 5, 0, &e, &next, why), -EBADMSG);
        assert_non_null(strstr(why, "log sector 10: unknown flags 0x20"));
        assert_int_equal(parse(0, 3, LW_FLUSH, 0, &e, &next, why), -EBADMSG);
        assert_non_null(strstr(why, "a flush with 3 sectors"));
        assert_int_equal(parse(7, 0, 0, 0, &e, &next, why), -EBADMSG);
        assert_non_null(strstr(why, "a write of no sectors"));
        assert_int_equal(parse(0, 0, LW_MARK, 5000, &e, &next, why), -EBADMSG);
        assert_int_equal(parse(UINT64_MAX - 2, 8, 0, 0, &e, &next, why), -EBADMSG);
        assert_non_null(strstr(why, "past any disk"));
        assert_int_equal(parse(0, UINT64_MAX, LW_DISCARD, 0, &e, &next, why), -EBADMSG);
        assert_int_equal(parse((UINT64_C(1) << 40) + 1, 1, 0, 0, &e, &next, why), -EBADMSG);
        assert_int_equal(parse(UINT64_C(1) << 40, UINT64_C(1) << 40, 0, 0, &e, &next, why), 1);
        assert_int_equal(lw_entry_parse(zero, LW_ENTRY_SIZE - 1, SS, 10, &e, &next, why, sizeof(why)), -EBADMSG);
}

static void test_tail_parse(void **state) {
        (void)state;
        enum lw_tail t;
        uint64_t seed;
        assert_int_equal(lw_tail_parse("none", &t, &seed), 0);
        assert_int_equal(t, LW_TAIL_NONE);
        assert_int_equal(lw_tail_parse("all", &t, &seed), 0);
        assert_int_equal(t, LW_TAIL_ALL);
        assert_int_equal(lw_tail_parse("random:42", &t, &seed), 0);
        assert_int_equal(t, LW_TAIL_RANDOM);
        assert_int_equal(seed, 42);
        assert_int_equal(lw_tail_parse("random:", &t, &seed), -EINVAL);
        assert_int_equal(lw_tail_parse("random:-1", &t, &seed), -EINVAL);
        assert_int_equal(lw_tail_parse("random:4x", &t, &seed), -EINVAL);
        assert_int_equal(lw_tail_parse("some", &t, &seed), -EINVAL);
}

/* ---- what a cut keeps ---- */
static void test_plan(void **state) {
        (void)state;
        /* W W F W FUA-W W mark */
        const struct lw_entry e[] = {
                {.sector = 0, .nr_sectors = 2},  {.sector = 4, .nr_sectors = 1},
                {.flags = LW_FLUSH},             {.sector = 8, .nr_sectors = 4},
                {.sector = 9, .nr_sectors = 1, .flags = LW_FUA}, {.sector = 12, .nr_sectors = 2},
                {.flags = LW_MARK, .data_len = 3},
        };
        const size_t n = sizeof(e) / sizeof(e[0]);
        bool keep[sizeof(e) / sizeof(e[0])];
        struct lw_stats st;

        lw_plan(e, n, SS, LW_TAIL_NONE, 0, keep, &st);
        assert_int_equal(st.entries, 7);
        assert_int_equal(st.flushes, 1);
        assert_int_equal(st.durable, 3);
        assert_int_equal(st.tail_writes, 3);
        assert_int_equal(st.tail_bytes, 7 * SS);
        assert_int_equal(st.tail_kept, 1); /* the FUA write */
        assert_int_equal(st.tail_kept_bytes, SS);
        const bool none[] = {true, true, true, false, true, false, false};
        assert_memory_equal(keep, none, sizeof(none));

        lw_plan(e, n, SS, LW_TAIL_ALL, 0, keep, &st);
        const bool all[] = {true, true, true, true, true, true, false};
        assert_memory_equal(keep, all, sizeof(all));
        assert_int_equal(st.tail_kept, 3);

        /* random: the seed decides; over seeds, each unflushed write is kept and lost */
        bool again[sizeof(e) / sizeof(e[0])];
        int kept3 = 0, kept5 = 0;
        for (uint64_t seed = 0; seed < 64; seed++) {
                lw_plan(e, n, SS, LW_TAIL_RANDOM, seed, keep, &st);
                lw_plan(e, n, SS, LW_TAIL_RANDOM, seed, again, &st);
                assert_memory_equal(keep, again, sizeof(keep));
                assert_true(keep[0] && keep[1] && keep[2] && keep[4] && !keep[6]);
                kept3 += keep[3];
                kept5 += keep[5];
        }
        assert_in_range(kept3, 1, 63);
        assert_in_range(kept5, 1, 63);

        /* no flush at all: nothing of it is durable */
        lw_plan(e, 2, SS, LW_TAIL_NONE, 0, keep, &st);
        assert_int_equal(st.durable, 0);
        assert_false(keep[0] || keep[1]);
        assert_int_equal(st.tail_writes, 2);
}

/* ---- files: scan and replay ---- */
static void test_replay(void **state) {
        (void)state;
        struct logbuf l;
        lb_init(&l);
        lb_write(&l, 0, 2, 'A', 0);
        lb_entry(&l, 4, 2, LW_DISCARD, 0, NULL, 0);
        lb_flush(&l);
        lb_write(&l, 1, 1, 'B', 0); /* acknowledged, never flushed */
        lb_write(&l, 6, 1, 'C', 0);
        for (int tail = 0; tail < 2; tail++) {
                int lfd = lb_file(&l), dfd = disk_file(8, 'x');
                struct lw_super super;
                struct lw_entry *e;
                size_t n;
                uint64_t hole;
                char why[256] = "";
                assert_int_equal(lw_scan(lfd, 8 * SS, &super, &e, &n, &hole, why, sizeof(why)), 0);
                assert_int_equal(n, 5);
                assert_int_equal(hole, 0);
                assert_int_equal(super.nr_entries, 3);
                bool keep[5];
                struct lw_stats st;
                lw_plan(e, n, super.sectorsize, tail ? LW_TAIL_ALL : LW_TAIL_NONE, 0, keep, &st);
                assert_int_equal(lw_replay(lfd, dfd, super.sectorsize, e, n, keep, &st, why, sizeof(why)), 0);
                assert_int_equal(disk_sector(dfd, 0), 'A');
                assert_int_equal(disk_sector(dfd, 1), tail ? 'B' : 'A');
                assert_int_equal(disk_sector(dfd, 2), 'x');
                assert_int_equal(disk_sector(dfd, 4), 0); /* discarded: zeros */
                assert_int_equal(disk_sector(dfd, 5), 0);
                assert_int_equal(disk_sector(dfd, 6), tail ? 'C' : 'x');
                assert_int_equal(disk_sector(dfd, 7), 'x');
                assert_int_equal(st.replayed_writes, tail ? 4 : 2);
                assert_int_equal(st.replayed_bytes, (tail ? 6 : 4) * SS);
                free(e);
                close(lfd);
                close(dfd);
        }
        free(l.data);
}

/* lw_scan of the log l, as a file, against a disk of 8 sectors: its result; the rest in sc */
struct scanned {
        struct lw_super super;
        struct lw_entry *e;
        size_t n;
        uint64_t hole;
        char why[256];
};

static int scan_log(const struct logbuf *l, struct scanned *sc) {
        int lfd = lb_file(l);
        int r = lw_scan(lfd, 8 * SS, &sc->super, &sc->e, &sc->n, &sc->hole, sc->why, sizeof(sc->why));
        close(lfd);
        return r;
}

/* The cut inside a write: the last entry's data not all in the file. Left out. */
static void test_scan_torn_end(void **state) {
        (void)state;
        struct logbuf l;
        struct scanned sc;
        lb_init(&l);
        lb_write(&l, 0, 1, 'A', 0);
        lb_flush(&l);
        lb_write(&l, 2, 4, 'B', 0);
        l.size -= 2 * SS;
        assert_int_equal(scan_log(&l, &sc), 0);
        assert_int_equal(sc.n, 2);
        assert_int_equal(sc.hole, 0);
        free(sc.e);
        /* only the header sector of it */
        l.size = SS * 4 + SS / 2;
        assert_int_equal(scan_log(&l, &sc), 0);
        assert_int_equal(sc.n, 2);
        free(sc.e);
        free(l.data);
}

/* A write still in flight at the cut: its header sector empty while the super block
 * (written on a flush after it was reserved) counts it. Named, and the scan stops. */
static void test_scan_hole(void **state) {
        (void)state;
        struct logbuf l;
        struct scanned sc;
        lb_init(&l);
        lb_write(&l, 0, 1, 'A', 0);
        lb_flush(&l);
        size_t hole_at = l.size / SS;
        lb_write(&l, 3, 2, 'B', 0);
        lb_flush(&l);
        lb_write(&l, 5, 1, 'C', 0);
        memset(l.data + hole_at * SS, 0, 3 * SS); /* never written */
        assert_int_equal(scan_log(&l, &sc), 0);
        assert_int_equal(sc.n, 2);
        assert_int_equal(sc.hole, hole_at);
        assert_int_equal(sc.super.nr_entries, 4);
        free(sc.e);
        free(l.data);
}

static void test_scan_refuses(void **state) {
        (void)state;
        struct logbuf l;
        struct scanned sc;
        /* a write past the disk's end: named with its entry */
        lb_init(&l);
        lb_write(&l, 0, 1, 'A', 0);
        lb_write(&l, 7, 2, 'B', 0);
        assert_int_equal(scan_log(&l, &sc), -ERANGE);
        assert_non_null(strstr(sc.why, "entry 1 (log sector 3): sectors 7-8 are past the disk's end (4096 bytes)"));
        assert_null(sc.e);
        free(l.data);
        /* not a log: a file of zeros */
        l = (struct logbuf){0};
        lb_grow(&l, 4 * SS);
        assert_int_equal(scan_log(&l, &sc), -EBADMSG);
        assert_non_null(strstr(sc.why, "not a write log"));
        free(l.data);
        /* an entry with flags no writer sets */
        lb_init(&l);
        lb_write(&l, 0, 1, 'A', 0);
        lb_entry(&l, 1, 1, 1 << 7, 0, "x", 1);
        assert_int_equal(scan_log(&l, &sc), -EBADMSG);
        assert_non_null(strstr(sc.why, "log sector 3: unknown flags 0x80"));
        free(l.data);
        /* an empty log (no flush yet): nothing */
        lb_init(&l);
        assert_int_equal(scan_log(&l, &sc), 0);
        assert_int_equal(sc.n, 0);
        free(sc.e);
        free(l.data);
}

/* ---- the sweep ---- */
static void test_region_parse(void **state) {
        (void)state;
        struct lw_region r;
        assert_int_equal(lw_region_parse("esp:1048576:67108864", &r), 0);
        assert_string_equal(r.name, "esp");
        assert_int_equal(r.offset, 1048576);
        assert_int_equal(r.length, 67108864);
        assert_int_equal(lw_region_parse("rootfs_b-2:0:1", &r), 0);
        assert_string_equal(r.name, "rootfs_b-2");
        const char *bad[] = {
                "", "esp", "esp:1", "esp:1:", ":1:2", "Esp:1:2", "e p:1:2", "esp:1:0", "esp:-1:2", "esp:1:2:3",
                "esp:x:2", "esp:1:2x", "esp:18446744073709551615:2", "a234567890123456789012345678901b:1:2",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(lw_region_parse(bad[i], &r), -EINVAL);
}

static void test_sweep_points(void **state) {
        (void)state;
        /* regions (sectors): a 0-3, b 4-7; sector 8 and on in none */
        struct lw_region rg[2];
        assert_int_equal(lw_region_parse("a:0:2048", &rg[0]), 0);
        assert_int_equal(lw_region_parse("b:2048:2048", &rg[1]), 0);
        const struct lw_entry e[] = {
                {.sector = 0, .nr_sectors = 1},               /* 0: a */
                {.flags = LW_FLUSH},                          /* 1: flush 1, the first: all */
                {.sector = 9, .nr_sectors = 1},               /* 2: outside */
                {.flags = LW_FLUSH},                          /* 3: flush 2: nothing in a region */
                {.sector = 3, .nr_sectors = 2},               /* 4: a and b (straddles) */
                {.flags = LW_MARK, .data_len = 3},            /* 5 */
                {.flags = LW_FLUSH},                          /* 6: flush 3: a b */
                {.flags = LW_FLUSH},                          /* 7: flush 4: nothing */
                {.sector = 6, .nr_sectors = 2, .flags = LW_DISCARD}, /* 8: b */
                {.flags = LW_FLUSH | LW_FUA},                 /* 9: flush 5: b */
                {.sector = 0, .nr_sectors = 1},               /* 10: after the last flush: no point */
        };
        const size_t n = sizeof(e) / sizeof(e[0]);
        struct lw_point p[sizeof(e) / sizeof(e[0])];
        size_t np = lw_sweep_points(e, n, SS, rg, 2, p);
        assert_int_equal(np, 3);
        assert_int_equal(p[0].entry, 1);
        assert_int_equal(p[0].flush, 1);
        assert_int_equal(p[0].changed, 3);
        assert_int_equal(p[1].entry, 6);
        assert_int_equal(p[1].flush, 3);
        assert_int_equal(p[1].changed, 3);
        assert_int_equal(p[2].entry, 9);
        assert_int_equal(p[2].flush, 5);
        assert_int_equal(p[2].changed, 2);

        /* no region: each flush after any write */
        np = lw_sweep_points(e, n, SS, NULL, 0, p);
        assert_int_equal(np, 4);
        assert_int_equal(p[0].flush, 1);
        assert_int_equal(p[1].flush, 2);
        assert_int_equal(p[2].flush, 3);
        assert_int_equal(p[3].flush, 5);
        for (size_t i = 0; i < np; i++)
                assert_int_equal(p[i].changed, 1);

        /* no flush: no point */
        assert_int_equal(lw_sweep_points(e, 1, SS, rg, 2, p), 0);
        /* a region the writes never reach: only the first point */
        assert_int_equal(lw_region_parse("far:1048576:512", &rg[0]), 0);
        np = lw_sweep_points(e, n, SS, rg, 1, p);
        assert_int_equal(np, 1);
        assert_int_equal(p[0].flush, 1);
}

/* Stepping through the log by ranges makes, at each point, the disk of a cut there. */
static void test_replay_range(void **state) {
        (void)state;
        struct logbuf l;
        lb_init(&l);
        lb_write(&l, 0, 1, 'A', 0);
        lb_flush(&l);
        lb_write(&l, 0, 1, 'B', 0);
        lb_entry(&l, 1, 1, LW_DISCARD, 0, NULL, 0);
        lb_flush(&l);
        lb_write(&l, 2, 1, 'C', 0);
        struct scanned sc;
        assert_int_equal(scan_log(&l, &sc), 0);
        assert_int_equal(sc.n, 6);
        int lfd = lb_file(&l), dfd = disk_file(4, 'x');
        char why[256] = "";
        assert_int_equal(lw_replay_range(lfd, dfd, SS, sc.e, 0, 2, why, sizeof(why)), 0);
        assert_int_equal(disk_sector(dfd, 0), 'A');
        assert_int_equal(disk_sector(dfd, 1), 'x');
        assert_int_equal(lw_replay_range(lfd, dfd, SS, sc.e, 2, 5, why, sizeof(why)), 0);
        assert_int_equal(disk_sector(dfd, 0), 'B');
        assert_int_equal(disk_sector(dfd, 1), 0);
        assert_int_equal(disk_sector(dfd, 2), 'x');
        assert_int_equal(lw_replay_range(lfd, dfd, SS, sc.e, 5, 6, why, sizeof(why)), 0);
        assert_int_equal(disk_sector(dfd, 2), 'C');
        /* an entry whose data the log does not hold: refused, naming it */
        struct lw_entry bad = sc.e[5];
        bad.data_offset = l.size;
        assert_int_equal(lw_replay_range(lfd, dfd, SS, &bad, 0, 1, why, sizeof(why)), -EBADMSG);
        assert_non_null(strstr(why, "entry 0's data"));
        free(sc.e);
        close(lfd);
        close(dfd);
        free(l.data);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_super),         cmocka_unit_test(test_entry),
                cmocka_unit_test(test_tail_parse),    cmocka_unit_test(test_plan),
                cmocka_unit_test(test_replay),        cmocka_unit_test(test_scan_torn_end),
                cmocka_unit_test(test_scan_hole),     cmocka_unit_test(test_scan_refuses),
                cmocka_unit_test(test_region_parse),  cmocka_unit_test(test_sweep_points),
                cmocka_unit_test(test_replay_range),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
