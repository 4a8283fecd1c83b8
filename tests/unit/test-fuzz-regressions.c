/*
 * Regression tests for what the libFuzzer harnesses in tests/fuzz/ found: each test
 * replays one finding (made small and readable) against the fixed code.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/sync-answer.h"
#include "lib/linebuf.h"

/*
 * fuzz-linebuf: with a small max_line (control.max_request_bytes may be as low as 256),
 * one read of many short pipelined requests was refused as "too large" and the
 * connection closed, although no line was longer than max_line.
 */
static void test_linebuf_pipelined_short_lines(void **state) {
        struct linebuf b;
        linebuf_init(&b, 256);
        /* 4096 bytes, agent/control.c's read size: 128 requests of 32 bytes each. */
        char read_buf[4096];
        for (size_t i = 0; i < sizeof(read_buf) / 32; i++) {
                char line[33];
                snprintf(line, sizeof(line), "{\"id\":%6zu,\"method\":\"ping\"}  \n", i);
                memcpy(read_buf + i * 32, line, 32);
        }
        /* Start with half a request left over from the read before. */
        assert_int_equal(linebuf_feed(&b, "{\"method\":", 10), 0);
        assert_int_equal(linebuf_feed(&b, read_buf, sizeof(read_buf)), 0);
        size_t n = 0;
        char *line;
        size_t len;
        int r;
        while ((r = linebuf_take_line(&b, &line, &len)) == 1) {
                assert_true(len <= 256);
                free(line);
                n++;
        }
        assert_int_equal(r, 0);
        assert_int_equal(n, 128);
        assert_int_equal(b.len, 0);
        linebuf_free(&b);

        /* The fuzzer's own case: a tiny max_line, eight short lines in one read. */
        linebuf_init(&b, 7);
        const char *many = "aaaa\nbbbb\ncccc\ndddd\neeee\nffff\ngggg\nhhhh\n";
        assert_int_equal(linebuf_feed(&b, many, strlen(many)), 0);
        n = 0;
        while ((r = linebuf_take_line(&b, &line, &len)) == 1) {
                assert_int_equal(len, 4);
                free(line);
                n++;
        }
        assert_int_equal(n, 8);
        linebuf_free(&b);
}

/* The cap still holds for a caller that leaves complete lines in the buffer. */
static void test_linebuf_untaken_lines_stay_bounded(void **state) {
        struct linebuf b;
        linebuf_init(&b, 8);
        int r = 0;
        for (int i = 0; i < 100 && r == 0; i++)
                r = linebuf_feed(&b, "ok\n", 3);
        assert_int_equal(r, -EMSGSIZE);
        assert_true(b.len <= 4 * 8 + 4);
        linebuf_free(&b);
}

/*
 * fuzz-sync-answer, first run: the contact plan's keys were checked with a NULL base
 * pointer handed to json_dispatch_object, which adds the field offset to it (undefined
 * behaviour, reported by UBSan on every answer with a plan: this test fails in the
 * sanitizer build of the suite without the fix). The smallest answer.
 */
static void test_sync_answer_plan_check(void **state) {
        const char *text = "{\"format\":1,\"acked\":[],\"commands\":[],\"contact_plan\":{\"windows\":[]},"
                           "\"next_sync_sec\":0,\"server_time\":0}";
        struct link_answer a;
        char *msg = NULL;
        assert_int_equal(link_answer_parse(text, strlen(text), &a, &msg), 0);
        assert_null(msg);
        assert_int_equal(json_array_size(json_object_get(a.plan, "windows")), 0);
        link_answer_done(&a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_linebuf_pipelined_short_lines),
                cmocka_unit_test(test_linebuf_untaken_lines_stay_bounded),
                cmocka_unit_test(test_sync_answer_plan_check),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
