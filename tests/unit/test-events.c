/* Unit tests for the outbox: record format, persistence, corruption, bounds, batches, acks. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "agent/events.h"
#include "lib/statefile.h"
#include "test-util.h"

#define BOOT_A "0123456789abcdef0123456789abcdef"
#define BOOT_B "fedcba9876543210fedcba9876543210"
#define BOOT_C "00112233445566778899aabbccddeeff"

static json_t *body(int i) {
        return json_pack("{s:i}", "i", i);
}

static void test_record_format(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(4, "sat-1", 7, "abcd", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(1), 1000, 5), 1);
        json_t *t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_array_size(t), 1);
        char *s = json_dumps(json_array_get(t, 0), JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(s, "{\"body\":{\"i\":1},\"format\":1,\"key\":{\"boot_epoch\":7,\"boot_id\":\"abcd\","
                               "\"node\":\"sat-1\",\"seq\":1},\"kind\":\"health.level\",\"monotonic_usec\":5,"
                               "\"priority\":\"high\",\"time_usec\":1000}");
        free(s);
        json_decref(t);
        event_queue_free(q);
}

static void test_oldest_lowest_priority_dropped_first(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(3, "n", 1, "b", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(2), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(3), 0, 0), 1);
        /* Full: a normal event pushes out the oldest low one (1). */
        assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", body(4), 0, 0), 1);
        json_t *t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_array_size(t), 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "body"), "i")), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 1), "body"), "i")), 3);
        json_decref(t);
        assert_int_equal(event_queue_dropped(q), 1);
        /* Low ones replace the oldest low one; high and normal stay. */
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(5), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(6), 0, 0), 1);
        assert_int_equal(event_queue_dropped(q), 3);
        t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "body"), "i")), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 1), "body"), "i")), 4);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 2), "body"), "i")), 6);
        json_decref(t);

        /* Only high records left, and a low one arrives: it is the one that goes. */
        event_queue_free(q);
        assert_int_equal(event_queue_new(1, "n", 1, "b", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(7), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(8), 0, 0), 0);
        assert_int_equal(event_queue_count(q), 1);
        assert_int_equal(event_queue_dropped(q), 1);
        event_queue_free(q);
}

static void test_critical_records_never_dropped(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(2, "n", 1, "b", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(2), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(3), 0, 0), 0);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(4), 0, 0), -ENOBUFS);
        json_t *t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_array_size(t), 2);
        json_decref(t);
        /* Sequence numbers only count what was queued. */
        t = event_queue_tail_json(q, 1, "command.");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "key"), "seq")), 2);
        json_decref(t);
        event_queue_free(q);
}

static void test_tail_is_bounded_in_bytes(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(1000, "n", 1, "b", &q), 0);
        /* 600 records of ~4 KB: 2.4 MB, over the 1 MiB an answer may carry */
        char *big = malloc(4000);
        assert_non_null(big);
        memset(big, 'x', 3999);
        big[3999] = '\0';
        for (int i = 0; i < 600; i++)
                assert_int_equal(event_queue_push(q, EVENT_NORMAL, "health.report",
                                                  json_pack("{s:i, s:s}", "i", i, "pad", big), 0, 0), 1);
        free(big);
        json_t *t = event_queue_tail_json(q, 10000, NULL);
        size_t n = json_array_size(t);
        assert_true(n > 200 && n < 300);
        /* the newest ones, newest last */
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, n - 1), "body"), "i")), 599);
        char *text = json_dumps(t, JSON_COMPACT);
        assert_true(strlen(text) <= EVENT_TAIL_MAX_BYTES + n);
        free(text);
        json_decref(t);
        event_queue_free(q);
}

static void test_tail_filters_by_kind(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(10, "n", 1, "b", &q), 0);
        for (int i = 0; i < 6; i++)
                assert_int_equal(event_queue_push(q, EVENT_NORMAL, i % 2 ? "health.level" : "workload.exit", body(i), 0, 0), 1);
        json_t *t = event_queue_tail_json(q, 2, "health.");
        assert_int_equal(json_array_size(t), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "body"), "i")), 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 1), "body"), "i")), 5);
        json_decref(t);
        event_queue_free(q);
}

/* ---- helpers for the persistent queue ---------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void rm_rf(char *dir) {
        if (dir)
                nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

static void join(char *buf, size_t size, const char *dir, const char *name) {
        int n = snprintf(buf, size, "%s/%s", dir, name);
        assert_true(n > 0 && (size_t) n < size);
}

static struct event_queue *open_dir(const char *dir, size_t max, uint64_t max_bytes, uint64_t epoch,
                                    const char *boot_id) {
        struct event_queue_config c = {.dir = dir, .max_records = max, .max_bytes = max_bytes,
                                       .node_id = "sat-1", .boot_epoch = epoch, .boot_id = boot_id};
        struct event_queue *q = NULL;
        assert_int_equal(event_queue_open(&c, &q), 0);
        return q;
}

static void rec_path(char *buf, size_t size, const char *dir, uint64_t epoch, const char *boot_id, uint64_t seq) {
        snprintf(buf, size, "%s/%llu-%s-%llu.rec", dir, (unsigned long long) epoch, boot_id, (unsigned long long) seq);
}

static bool rec_exists(const char *dir, uint64_t epoch, const char *boot_id, uint64_t seq) {
        char p[PATH_MAX];
        rec_path(p, sizeof(p), dir, epoch, boot_id, seq);
        return test_exists(p);
}

/* Files in dir whose name ends with suffix (NULL: every entry but . and ..). */
static size_t count_files(const char *dir, const char *suffix) {
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (!suffix || (l > strlen(suffix) && strcmp(de->d_name + l - strlen(suffix), suffix) == 0))
                        n++;
        }
        closedir(d);
        return n;
}

/* Sum of the sizes of the record files, as the disk sees them. */
static uint64_t rec_bytes(const char *dir) {
        DIR *d = opendir(dir);
        uint64_t n = 0;
        struct dirent *de;
        while (d && (de = readdir(d))) {
                size_t l = strlen(de->d_name);
                char p[PATH_MAX];
                struct stat st;
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                if (l > 4 && strcmp(de->d_name + l - 4, ".rec") == 0 && stat(p, &st) == 0)
                        n += (uint64_t) st.st_size;
        }
        if (d)
                closedir(d);
        return n;
}

static json_int_t stat_int(struct event_queue *q, const char *key, const char *sub) {
        json_t *s = event_queue_stats_json(q);
        json_t *v = json_object_get(s, key);
        if (sub)
                v = json_object_get(v, sub);
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        json_decref(s);
        return n;
}

static json_int_t rec_int(json_t *rec, const char *a, const char *b) {
        return json_integer_value(json_object_get(json_object_get(rec, a), b));
}

static const char *rec_str(json_t *rec, const char *a, const char *b) {
        return json_string_value(json_object_get(json_object_get(rec, a), b));
}

/* A body of about n bytes. */
static json_t *sized_body(int i, size_t n) {
        char *pad = malloc(n + 1);
        memset(pad, 'x', n);
        pad[n] = '\0';
        json_t *b = json_pack("{s:i,s:s}", "i", i, "pad", pad);
        free(pad);
        return b;
}

static void flip_bit(const char *path, long from_end) {
        char buf[65536];
        long n = test_read(path, buf, sizeof(buf));
        assert_true(n > from_end);
        buf[n - 1 - from_end] ^= 0x04;
        assert_int_equal(test_write(path, buf, (size_t) n), 0);
}

/* ---- persistence ---------------------------------------------------------------------- */

static void test_persist_across_reopen(void **state) {
        char *dir = test_mkdtemp();
        struct event_queue *q = open_dir(dir, 100, 0, 1, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 100, 1), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(2), 200, 2), 1);
        assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", body(3), 300, 3), 1);
        /* Durable before push returned: the file is there, no temp file left. */
        assert_true(rec_exists(dir, 1, BOOT_A, 1) && rec_exists(dir, 1, BOOT_A, 2) && rec_exists(dir, 1, BOOT_A, 3));
        assert_int_equal(count_files(dir, ".tmp"), 0);
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), rec_bytes(dir));
        event_queue_free(q);

        /* The next boot finds them with the keys of the boot that made them. */
        q = open_dir(dir, 100, 0, 2, BOOT_B);
        assert_int_equal(event_queue_count(q), 3);
        assert_int_equal(stat_int(q, "corrupt", NULL), 0);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(4), 400, 4), 1);
        assert_true(rec_exists(dir, 2, BOOT_B, 1));
        json_t *t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_array_size(t), 4);
        for (int i = 0; i < 3; i++) {
                json_t *r = json_array_get(t, (size_t) i);
                assert_int_equal(rec_int(r, "key", "boot_epoch"), 1);
                assert_string_equal(rec_str(r, "key", "boot_id"), BOOT_A);
                assert_int_equal(rec_int(r, "key", "seq"), i + 1);
                assert_int_equal(rec_int(r, "body", "i"), i + 1);
                assert_int_equal(json_integer_value(json_object_get(r, "time_usec")), (i + 1) * 100);
        }
        assert_int_equal(rec_int(json_array_get(t, 3), "key", "boot_epoch"), 2);
        assert_string_equal(rec_str(json_array_get(t, 3), "key", "boot_id"), BOOT_B);
        assert_int_equal(rec_int(json_array_get(t, 3), "key", "seq"), 1);
        json_decref(t);
        event_queue_free(q);

        /* And the boot after that: order kept (priority, then age), nothing doubled. */
        q = open_dir(dir, 100, 0, 3, BOOT_C);
        assert_int_equal(event_queue_count(q), 4);
        json_t *b = event_queue_batch_json(q, 100, 1 << 20);
        assert_int_equal(json_array_size(b), 4);
        int want[] = {2, 3, 1, 4};
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(rec_int(json_array_get(b, i), "body", "i"), want[i]);
        assert_string_equal(json_string_value(json_object_get(json_array_get(b, 0), "priority")), "high");
        json_decref(b);
        event_queue_free(q);
        rm_rf(dir);
}

static void test_same_boot_reopened_continues_seq(void **state) {
        char *dir = test_mkdtemp();
        struct event_queue *q = open_dir(dir, 100, 0, 5, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(2), 0, 0), 1);
        event_queue_free(q);
        /* A reopen within one boot (a tool, a test) never reuses a key. */
        q = open_dir(dir, 100, 0, 5, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(3), 0, 0), 1);
        assert_true(rec_exists(dir, 5, BOOT_A, 3));
        assert_int_equal(event_queue_count(q), 3);
        event_queue_free(q);
        rm_rf(dir);
}

static void test_corrupt_files_moved_aside(void **state) {
        char *dir = test_mkdtemp();
        char p[PATH_MAX], cdir[PATH_MAX];
        join(cdir, sizeof(cdir), dir, "corrupt");
        struct event_queue *q = open_dir(dir, 100, 0, 1, BOOT_A);
        for (int i = 1; i <= 5; i++)
                assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", body(i), 0, 0), 1);
        event_queue_free(q);

        /* 1: a flipped bit in the body; 2: cut short; 3: left alone; 4: another node's,
         * with a valid checksum; 5: renamed, so the key and the name disagree. */
        rec_path(p, sizeof(p), dir, 1, BOOT_A, 1);
        flip_bit(p, 3);
        rec_path(p, sizeof(p), dir, 1, BOOT_A, 2);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(truncate(p, st.st_size - 10), 0); /* a write cut short */
        const char foreign[] = "{\"format\":1,\"key\":{\"node\":\"sat-2\",\"boot_epoch\":1,\"boot_id\":\"" BOOT_A
                               "\",\"seq\":4},\"priority\":\"low\",\"kind\":\"health.report\",\"time_usec\":0,"
                               "\"monotonic_usec\":0,\"body\":{}}";
        char *enc;
        size_t enc_len;
        assert_int_equal(statefile_encode(foreign, strlen(foreign), &enc, &enc_len), 0);
        rec_path(p, sizeof(p), dir, 1, BOOT_A, 4);
        assert_int_equal(test_write(p, enc, enc_len), 0);
        free(enc);
        char moved[PATH_MAX];
        rec_path(p, sizeof(p), dir, 1, BOOT_A, 5);
        rec_path(moved, sizeof(moved), dir, 1, BOOT_A, 9);
        assert_int_equal(rename(p, moved), 0);
        /* Garbage with a name no record has, and a temp file from a write cut short. */
        join(p, sizeof(p), dir, "hello.txt");
        assert_int_equal(test_write(p, "hi", 2), 0);
        join(p, sizeof(p), dir, "1-" BOOT_A "-6.rec.tmp");
        assert_int_equal(test_write(p, "orbit-state 1 9", 15), 0);

        q = open_dir(dir, 100, 0, 2, BOOT_B);
        /* Only the good record is loaded, plus the report about the others. */
        assert_int_equal(event_queue_count(q), 2);
        assert_int_equal(stat_int(q, "corrupt", NULL), 5);
        assert_int_equal(count_files(cdir, NULL), 5);
        join(p, sizeof(p), cdir, "1-" BOOT_A "-1.rec");
        assert_true(test_exists(p));
        join(p, sizeof(p), cdir, "hello.txt");
        assert_true(test_exists(p));
        assert_false(rec_exists(dir, 1, BOOT_A, 1));
        assert_false(rec_exists(dir, 1, BOOT_A, 2));
        assert_true(rec_exists(dir, 1, BOOT_A, 3));
        assert_int_equal(count_files(dir, ".tmp"), 0);

        json_t *t = event_queue_tail_json(q, 10, "outbox.");
        assert_int_equal(json_array_size(t), 1);
        json_t *ev = json_array_get(t, 0);
        assert_string_equal(json_string_value(json_object_get(ev, "priority")), "high");
        assert_int_equal(rec_int(ev, "body", "count"), 5);
        json_t *files = json_object_get(json_object_get(ev, "body"), "files");
        assert_int_equal(json_array_size(files), 5);
        char *dump = json_dumps(files, JSON_COMPACT);
        assert_non_null(strstr(dump, "{\"file\":\"1-" BOOT_A "-1.rec\",\"why\":\"bad header or checksum\"}"));
        assert_non_null(strstr(dump, "{\"file\":\"1-" BOOT_A "-2.rec\",\"why\":\"truncated\"}"));
        assert_non_null(strstr(dump, "another node's record"));
        assert_non_null(strstr(dump, "{\"file\":\"1-" BOOT_A "-9.rec\",\"why\":\"its key does not match the file name\"}"));
        assert_non_null(strstr(dump, "{\"file\":\"hello.txt\",\"why\":\"not a record file name\"}"));
        free(dump);
        json_decref(t);
        /* The report itself is a record like any other: on disk. */
        assert_true(rec_exists(dir, 2, BOOT_B, 1));
        event_queue_free(q);

        /* Nothing is reported twice: the next open finds a clean outbox. */
        q = open_dir(dir, 100, 0, 3, BOOT_C);
        assert_int_equal(stat_int(q, "corrupt", NULL), 0);
        assert_int_equal(event_queue_count(q), 2);
        event_queue_free(q);
        rm_rf(dir);
}

static void test_corrupt_dir_bounded(void **state) {
        char *dir = test_mkdtemp();
        char p[PATH_MAX], cdir[PATH_MAX];
        join(cdir, sizeof(cdir), dir, "corrupt");
        for (int i = 0; i < EVENT_QUEUE_CORRUPT_KEEP + 8; i++) {
                char name[64];
                snprintf(name, sizeof(name), "junk-%02d", i);
                join(p, sizeof(p), dir, name);
                assert_int_equal(test_write(p, "x", 1), 0);
        }
        struct event_queue *q = open_dir(dir, 100, 0, 1, BOOT_A);
        assert_int_equal(stat_int(q, "corrupt", NULL), EVENT_QUEUE_CORRUPT_KEEP + 8);
        assert_int_equal(count_files(cdir, NULL), EVENT_QUEUE_CORRUPT_KEEP);
        assert_int_equal(count_files(dir, "") - 1 /* corrupt/ */, 1 /* the report */);
        json_t *t = event_queue_tail_json(q, 1, "outbox.corrupt");
        assert_int_equal(rec_int(json_array_get(t, 0), "body", "count"), EVENT_QUEUE_CORRUPT_KEEP + 8);
        assert_int_equal(json_array_size(json_object_get(json_object_get(json_array_get(t, 0), "body"), "files")),
                         EVENT_QUEUE_CORRUPT_KEEP);
        json_decref(t);
        event_queue_free(q);
        rm_rf(dir);
}

/* ---- bounds ------------------------------------------------------------------------------- */

static void test_bounds_by_count_on_disk(void **state) {
        char *dir = test_mkdtemp();
        struct event_queue *q = open_dir(dir, 3, 0, 1, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(2), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(3), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", body(4), 0, 0), 1);
        /* The oldest low one went, file and all. */
        assert_false(rec_exists(dir, 1, BOOT_A, 1));
        assert_int_equal(count_files(dir, ".rec"), 3);
        assert_int_equal(stat_int(q, "dropped", "low"), 1);
        /* A low record now pushes out the other low one, never the normal or high. */
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(5), 0, 0), 1);
        assert_false(rec_exists(dir, 1, BOOT_A, 3));
        assert_int_equal(stat_int(q, "dropped", "low"), 2);
        /* High pushes out the low (5), then the normal (4). */
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(6), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(7), 0, 0), 1);
        assert_int_equal(stat_int(q, "dropped", "low"), 3);
        assert_int_equal(stat_int(q, "dropped", "normal"), 1);
        /* Only high ones left: a normal one is the least important. */
        assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", body(8), 0, 0), 0);
        assert_int_equal(stat_int(q, "dropped", "normal"), 2);
        assert_int_equal(event_queue_dropped(q), 5);
        assert_int_equal(count_files(dir, ".rec"), 3);
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), rec_bytes(dir));
        event_queue_free(q);
        rm_rf(dir);
}

static void test_bounds_by_bytes(void **state) {
        char *dir = test_mkdtemp();
        /* Measure one record of this shape. */
        struct event_queue *q = open_dir(dir, 100, 0, 1, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", sized_body(0, 200), 0, 0), 1);
        uint64_t one = (uint64_t) stat_int(q, "bytes_on_disk", NULL);
        assert_true(one > 200);
        event_queue_free(q);
        rm_rf(dir);

        dir = test_mkdtemp();
        uint64_t max = 4 * one + one / 2;
        q = open_dir(dir, 100, max, 1, BOOT_A);
        for (int i = 1; i <= 4; i++)
                assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", sized_body(i, 200), 0, 0), 1);
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), 4 * one);
        /* A fifth low one only fits if the oldest goes. */
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", sized_body(5, 200), 0, 0), 1);
        assert_int_equal(event_queue_count(q), 4);
        assert_false(rec_exists(dir, 1, BOOT_A, 1));
        assert_int_equal(stat_int(q, "dropped", "low"), 1);
        /* A big high record (about three lows' worth) pushes out the three oldest lows. */
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", sized_body(6, 2 * one + 300), 0, 0), 1);
        assert_int_equal(stat_int(q, "dropped", "low"), 4);
        assert_int_equal(event_queue_count(q), 2);
        assert_true(rec_exists(dir, 1, BOOT_A, 5) && rec_exists(dir, 1, BOOT_A, 6));
        assert_true((uint64_t) stat_int(q, "bytes_on_disk", NULL) <= max);
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), rec_bytes(dir));
        /* A normal record that would need the high one gone is the one dropped; and a
         * bigger one than the low can make room for drops nothing that was queued. */
        assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", sized_body(7, 2 * one), 0, 0), 0);
        assert_int_equal(event_queue_count(q), 2);
        assert_true(rec_exists(dir, 1, BOOT_A, 5));
        assert_int_equal(stat_int(q, "dropped", "normal"), 1);
        /* A record bigger than the whole bound never fits; a critical one is refused. */
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", sized_body(8, max), 0, 0), -ENOBUFS);
        assert_int_equal(event_queue_count(q), 2);
        assert_int_equal(event_queue_dropped(q), 5);
        event_queue_free(q);
        rm_rf(dir);
}

static void test_critical_never_dropped_on_disk(void **state) {
        char *dir = test_mkdtemp();
        struct event_queue *q = open_dir(dir, 2, 0, 1, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "update.committed", body(2), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(3), 0, 0), 0);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(4), 0, 0), -ENOBUFS);
        assert_int_equal(event_queue_count(q), 2);
        assert_true(rec_exists(dir, 1, BOOT_A, 1) && rec_exists(dir, 1, BOOT_A, 2));
        assert_int_equal(count_files(dir, ".rec"), 2);
        /* Lowered bounds at the next start drop what may go, never the critical ones. */
        event_queue_free(q);
        q = open_dir(dir, 1, 0, 2, BOOT_B);
        assert_int_equal(event_queue_count(q), 2);
        assert_int_equal(event_queue_dropped(q), 0);
        event_queue_free(q);
        rm_rf(dir);
}

static void test_lowered_bounds_at_open(void **state) {
        char *dir = test_mkdtemp();
        struct event_queue *q = open_dir(dir, 100, 0, 1, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(0), 0, 0), 1);
        for (int i = 1; i <= 5; i++)
                assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(i), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(6), 0, 0), 1);
        event_queue_free(q);
        q = open_dir(dir, 3, 0, 2, BOOT_B);
        assert_int_equal(event_queue_count(q), 3);
        assert_int_equal(stat_int(q, "dropped", "low"), 4);
        json_t *b = event_queue_batch_json(q, 10, 1 << 20);
        assert_int_equal(rec_int(json_array_get(b, 0), "body", "i"), 0);
        assert_int_equal(rec_int(json_array_get(b, 1), "body", "i"), 6);
        assert_int_equal(rec_int(json_array_get(b, 2), "body", "i"), 5);
        json_decref(b);
        assert_int_equal(count_files(dir, ".rec"), 3);
        /* Bounds changed on a running queue apply from the next push on. */
        event_queue_set_limits(q, 2, 0);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(7), 0, 0), 1);
        assert_int_equal(event_queue_count(q), 2);
        assert_int_equal(stat_int(q, "dropped", "low"), 5);
        assert_int_equal(stat_int(q, "dropped", "high"), 1);
        event_queue_free(q);
        rm_rf(dir);
}

/* ---- the link's side: batches and acks ---------------------------------------------------- */

static size_t wire_size(json_t *rec) {
        return json_dumpb(rec, NULL, 0, JSON_COMPACT);
}

static void test_batch_order_and_size(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(100, "sat-1", 1, BOOT_A, &q), 0);
        json_t *b = event_queue_batch_json(q, 10, 1000);
        assert_non_null(b);
        assert_int_equal(json_array_size(b), 0);
        json_decref(b);
        enum event_priority prio[] = {EVENT_LOW, EVENT_NORMAL, EVENT_HIGH, EVENT_LOW, EVENT_CRITICAL, EVENT_HIGH};
        for (int i = 0; i < 6; i++)
                assert_int_equal(event_queue_push(q, prio[i], "test.kind", body(i + 1), 0, 0), 1);
        b = event_queue_batch_json(q, 100, 1 << 20);
        int want[] = {5, 3, 6, 2, 1, 4};
        assert_int_equal(json_array_size(b), 6);
        size_t sizes[6];
        for (size_t i = 0; i < 6; i++) {
                assert_int_equal(rec_int(json_array_get(b, i), "body", "i"), want[i]);
                sizes[i] = wire_size(json_array_get(b, i));
        }
        json_decref(b);

        /* By count. */
        b = event_queue_batch_json(q, 3, 1 << 20);
        assert_int_equal(json_array_size(b), 3);
        assert_int_equal(rec_int(json_array_get(b, 2), "body", "i"), 6);
        json_decref(b);
        b = event_queue_batch_json(q, 0, 1 << 20);
        assert_int_equal(json_array_size(b), 0);
        json_decref(b);

        /* By bytes: the compact array of two records fits exactly, one byte less does not. */
        size_t two = 2 + sizes[0] + 1 + sizes[1];
        b = event_queue_batch_json(q, 100, two);
        assert_int_equal(json_array_size(b), 2);
        assert_int_equal(wire_size(b), two);
        json_decref(b);
        b = event_queue_batch_json(q, 100, two - 1);
        assert_int_equal(json_array_size(b), 1);
        assert_true(wire_size(b) <= two - 1);
        json_decref(b);
        /* A first record bigger than the limit still goes, alone: the queue never wedges. */
        b = event_queue_batch_json(q, 100, 10);
        assert_int_equal(json_array_size(b), 1);
        assert_int_equal(rec_int(json_array_get(b, 0), "body", "i"), 5);
        json_decref(b);
        event_queue_free(q);
}

static void test_ack_removes_record_and_file(void **state) {
        char *dir = test_mkdtemp();
        struct event_queue *q = open_dir(dir, 100, 0, 1, BOOT_A);
        for (int i = 1; i <= 3; i++)
                assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", body(i), 0, 0), 1);
        uint64_t before = (uint64_t) stat_int(q, "bytes_on_disk", NULL);
        assert_int_equal(event_queue_ack(q, 1, BOOT_A, 2), 0);
        assert_false(rec_exists(dir, 1, BOOT_A, 2));
        assert_int_equal(event_queue_count(q), 2);
        assert_true((uint64_t) stat_int(q, "bytes_on_disk", NULL) < before);
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), rec_bytes(dir));
        /* Duplicate acks and keys never queued. */
        assert_int_equal(event_queue_ack(q, 1, BOOT_A, 2), -ENOENT);
        assert_int_equal(event_queue_ack(q, 1, BOOT_B, 1), -ENOENT);
        assert_int_equal(event_queue_ack(q, 2, BOOT_A, 1), -ENOENT);
        assert_int_equal(event_queue_count(q), 2);
        /* Acked dropped nothing. */
        assert_int_equal(event_queue_dropped(q), 0);
        event_queue_free(q);

        /* Records of an earlier boot are acked with their own key. */
        q = open_dir(dir, 100, 0, 2, BOOT_B);
        assert_int_equal(event_queue_count(q), 2);
        json_t *b = event_queue_batch_json(q, 100, 1 << 20);
        size_t i;
        json_t *r;
        json_array_foreach(b, i, r)
                assert_int_equal(event_queue_ack(q, (uint64_t) rec_int(r, "key", "boot_epoch"),
                                                 rec_str(r, "key", "boot_id"), (uint64_t) rec_int(r, "key", "seq")), 0);
        json_decref(b);
        assert_int_equal(event_queue_count(q), 0);
        assert_int_equal(count_files(dir, ".rec"), 0);
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), 0);
        event_queue_free(q);
        q = open_dir(dir, 100, 0, 3, BOOT_C);
        assert_int_equal(event_queue_count(q), 0);
        event_queue_free(q);
        rm_rf(dir);
}

static void test_memory_only_mode(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(10, "sat-1", 4, "anything-goes", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(2), 0, 0), 1);
        assert_int_equal(stat_int(q, "queued", NULL), 2);
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), 0);
        assert_int_equal(stat_int(q, "memory_only", NULL), 2);
        assert_int_equal(stat_int(q, "corrupt", NULL), 0);
        assert_int_equal(event_queue_ack(q, 4, "anything-goes", 1), 0);
        assert_int_equal(event_queue_ack(q, 4, "anything-goes", 1), -ENOENT);
        assert_int_equal(event_queue_count(q), 1);
        event_queue_free(q);
}

/* A directory that fails under the queue: records wait in memory and reach the disk later. */
static void test_write_failure_keeps_records_in_memory(void **state) {
        char *dir = test_mkdtemp();
        char aside[PATH_MAX];
        snprintf(aside, sizeof(aside), "%s.aside", dir);
        struct event_queue *q = open_dir(dir, 100, 0, 1, BOOT_A);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 0, 0), 1);

        /* The directory is gone and a file is in its place: every write fails. */
        assert_int_equal(rename(dir, aside), 0);
        assert_int_equal(test_write(dir, "x", 1), 0);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(2), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(3), 0, 0), 1);
        assert_int_equal(event_queue_count(q), 3);
        assert_int_equal(stat_int(q, "memory_only", NULL), 2);
        json_t *b = event_queue_batch_json(q, 100, 1 << 20);
        assert_int_equal(json_array_size(b), 3); /* sent all the same */
        assert_int_equal(rec_int(json_array_get(b, 0), "body", "i"), 2);
        json_decref(b);

        /* Back: the next push writes itself and the ones waiting. */
        assert_int_equal(unlink(dir), 0);
        assert_int_equal(rename(aside, dir), 0);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(4), 0, 0), 1);
        assert_int_equal(stat_int(q, "memory_only", NULL), 0);
        for (uint64_t s = 1; s <= 4; s++)
                assert_true(rec_exists(dir, 1, BOOT_A, s));
        assert_int_equal(stat_int(q, "bytes_on_disk", NULL), rec_bytes(dir));

        /* Again, and this time an ack brings them back. */
        assert_int_equal(rename(dir, aside), 0);
        assert_int_equal(test_write(dir, "x", 1), 0);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(5), 0, 0), 1);
        assert_int_equal(stat_int(q, "memory_only", NULL), 1);
        assert_int_equal(unlink(dir), 0);
        assert_int_equal(rename(aside, dir), 0);
        assert_int_equal(event_queue_ack(q, 1, BOOT_A, 1), 0);
        assert_int_equal(stat_int(q, "memory_only", NULL), 0);
        assert_true(rec_exists(dir, 1, BOOT_A, 5));
        assert_false(rec_exists(dir, 1, BOOT_A, 1));
        event_queue_free(q);

        q = open_dir(dir, 100, 0, 2, BOOT_B);
        assert_int_equal(event_queue_count(q), 4);
        assert_int_equal(stat_int(q, "corrupt", NULL), 0);
        event_queue_free(q);
        rm_rf(dir);
}

static void test_refuses_what_the_controller_would(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(10, "sat-1", 1, BOOT_A, &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "Health.Report", body(1), 0, 0), -EINVAL);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "", body(1), 0, 0), -EINVAL);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "a.kind.that.is.far.too.long.to.be.accepted.by.any", body(1), 0, 0), -EINVAL);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", json_integer(3), 0, 0), -EINVAL);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", sized_body(1, EVENT_BODY_MAX), 0, 0), -EMSGSIZE);
        assert_int_equal(event_queue_count(q), 0);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 0, 0), 1);
        json_t *t = event_queue_tail_json(q, 1, NULL);
        assert_int_equal(rec_int(json_array_get(t, 0), "key", "seq"), 1);
        json_decref(t);
        event_queue_free(q);

        /* With a directory, the boot id is part of file names. */
        struct event_queue_config c = {.dir = "/nonexistent", .max_records = 10, .node_id = "sat-1",
                                       .boot_epoch = 1, .boot_id = "../../etc"};
        assert_int_equal(event_queue_open(&c, &q), -EINVAL);
        c.boot_id = BOOT_A;
        c.max_records = 0;
        assert_int_equal(event_queue_open(&c, &q), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_record_format),
                cmocka_unit_test(test_oldest_lowest_priority_dropped_first),
                cmocka_unit_test(test_critical_records_never_dropped),
                cmocka_unit_test(test_tail_filters_by_kind),
                cmocka_unit_test(test_tail_is_bounded_in_bytes),
                cmocka_unit_test(test_persist_across_reopen),
                cmocka_unit_test(test_same_boot_reopened_continues_seq),
                cmocka_unit_test(test_corrupt_files_moved_aside),
                cmocka_unit_test(test_corrupt_dir_bounded),
                cmocka_unit_test(test_bounds_by_count_on_disk),
                cmocka_unit_test(test_bounds_by_bytes),
                cmocka_unit_test(test_critical_never_dropped_on_disk),
                cmocka_unit_test(test_lowered_bounds_at_open),
                cmocka_unit_test(test_batch_order_and_size),
                cmocka_unit_test(test_ack_removes_record_and_file),
                cmocka_unit_test(test_memory_only_mode),
                cmocka_unit_test(test_write_failure_keeps_records_in_memory),
                cmocka_unit_test(test_refuses_what_the_controller_would),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
