/* Unit tests for workload output: rate limit, ring, line splitting, capture from a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/workload-log.h"
#include "test-util.h"

static void test_ratelimit(void **state) {
        struct log_ratelimit rl = {.interval_usec = 1000000, .burst = 3};
        uint64_t sup;
        for (int i = 0; i < 3; i++) {
                assert_true(log_ratelimit_allow(&rl, 10 + (uint64_t) i, &sup));
                assert_int_equal(sup, 0);
        }
        assert_false(log_ratelimit_allow(&rl, 20, &sup));
        assert_false(log_ratelimit_allow(&rl, 30, &sup));
        /* A new window: the two dropped lines are reported once. */
        assert_true(log_ratelimit_allow(&rl, 1000011, &sup));
        assert_int_equal(sup, 2);
        assert_true(log_ratelimit_allow(&rl, 1000012, &sup));
        assert_int_equal(sup, 0);
}

static void test_ring_bounds(void **state) {
        struct log_ring *r;
        assert_int_equal(log_ring_new(3, 20, &r), 0);
        log_ring_push(r, 1, LOG_STREAM_STDOUT, "aaaa", 4);
        log_ring_push(r, 2, LOG_STREAM_STDERR, "bbbb", 4);
        log_ring_push(r, 3, LOG_STREAM_STDOUT, "cccc", 4);
        log_ring_push(r, 4, LOG_STREAM_STDOUT, "dddd", 4);
        assert_int_equal(log_ring_count(r), 3);
        uint64_t t;
        enum log_stream s;
        assert_string_equal(log_ring_get(r, 0, &t, &s), "bbbb");
        assert_int_equal(t, 2);
        assert_int_equal(s, LOG_STREAM_STDERR);
        assert_string_equal(log_ring_get(r, 2, NULL, NULL), "dddd");
        assert_null(log_ring_get(r, 3, NULL, NULL));
        /* Bytes bound: a 15-byte line pushes out all but what fits in 20 bytes. */
        log_ring_push(r, 5, LOG_STREAM_STDOUT, "eeeeeeeeeeeeeee", 15);
        assert_int_equal(log_ring_count(r), 2);
        assert_string_equal(log_ring_get(r, 0, NULL, NULL), "dddd");
        log_ring_free(r);

        /* Lines with NUL bytes in them do not make the byte count drift. */
        assert_int_equal(log_ring_new(4, 64, &r), 0);
        for (int i = 0; i < 100; i++)
                log_ring_push(r, (uint64_t) i, LOG_STREAM_STDOUT, "ab\0cdefgh", 9);
        assert_int_equal(log_ring_count(r), 4);
        log_ring_free(r);
}

struct collected {
        char lines[16][WORKLOAD_LOG_LINE_MAX + 1];
        size_t lens[16];
        int n;
};

static void collect(const char *line, size_t len, void *userdata) {
        struct collected *c = userdata;
        assert_true(c->n < 16);
        memcpy(c->lines[c->n], line, len);
        c->lines[c->n][len] = '\0';
        c->lens[c->n++] = len;
}

static void test_splitter(void **state) {
        struct line_splitter s = {0};
        struct collected *c = calloc(1, sizeof(*c));
        line_splitter_feed(&s, "one\ntw", 6, collect, c);
        assert_int_equal(c->n, 1);
        line_splitter_feed(&s, "o\r\nthree", 8, collect, c);
        assert_int_equal(c->n, 2);
        assert_string_equal(c->lines[1], "two");
        line_splitter_flush(&s, collect, c);
        assert_string_equal(c->lines[2], "three");

        /* A 10,000-byte line is cut into pieces of at most the line maximum. */
        char *big = malloc(10001);
        memset(big, 'x', 10000);
        big[10000] = '\n';
        c->n = 0;
        line_splitter_feed(&s, big, 10001, collect, c);
        assert_int_equal(c->n, 3);
        assert_int_equal(c->lens[0], WORKLOAD_LOG_LINE_MAX);
        assert_int_equal(c->lens[1], WORKLOAD_LOG_LINE_MAX);
        assert_int_equal(c->lens[2], 10000 - 2 * WORKLOAD_LOG_LINE_MAX);
        free(big);
        free(c);
}

static void test_capture_from_pipes_into_file_and_tail(void **state) {
        char *dir = test_mkdtemp();
        sd_event *e;
        assert_int_equal(sd_event_new(&e), 0);
        struct workload_log_config cfg = {.file_dir = dir, .file_max_bytes = 300, .lines_per_sec = 5};
        struct workload_log *l;
        assert_int_equal(workload_log_new(e, "w1", &cfg, &l), 0);
        int out[2], err[2];
        assert_int_equal(pipe(out), 0);
        assert_int_equal(pipe(err), 0);
        assert_int_equal(workload_log_attach(l, out[0], err[0]), 0);
        assert_int_equal(write(out[1], "hello\nworld\n", 12), 12);
        assert_int_equal(write(err[1], "oops\n", 5), 5);
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(e, 10000) >= 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(write(out[1], "flood\n", 6), 6);
        close(out[1]);
        close(err[1]);
        for (int i = 0; i < 10; i++)
                assert_true(sd_event_run(e, 10000) >= 0);
        workload_log_detach(l);

        json_t *tail = workload_log_tail(l, 100);
        assert_int_equal(json_array_size(tail), 5); /* five lines a second get through */
        assert_string_equal(json_string_value(json_object_get(json_array_get(tail, 0), "line")), "hello");
        assert_string_equal(json_string_value(json_object_get(json_array_get(tail, 4), "line")), "flood");
        assert_true(workload_log_suppressed(l) >= 8);
        json_decref(tail);

        char path[PATH_MAX], buf[4096];
        test_path(path, sizeof(path), dir, "w1.log");
        assert_true(test_read(path, buf, sizeof(buf)) > 0);
        assert_non_null(strstr(buf, "stdout: hello"));
        assert_non_null(strstr(buf, "stderr: oops"));

        /* The file rotates past its bound, and the disk use stays bounded. */
        for (int i = 0; i < 20; i++)
                workload_log_note(l, "a note long enough to fill the small file quickly");
        test_path(path, sizeof(path), dir, "w1.log.1");
        assert_true(test_exists(path));
        workload_log_free(l);
        sd_event_unref(e);
        test_rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ratelimit),
                cmocka_unit_test(test_ring_bounds),
                cmocka_unit_test(test_splitter),
                cmocka_unit_test(test_capture_from_pipes_into_file_and_tail),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
