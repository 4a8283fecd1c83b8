/* Unit tests for HTTP Range parsing and If-Range: every accepted form, and bad ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "controller/range.h"

static void expect_range(const char *h, uint64_t size, uint64_t start, uint64_t length) {
        struct http_range r = {};
        assert_int_equal(http_range_parse(h, size, &r), 1);
        assert_int_equal(r.start, start);
        assert_int_equal(r.length, length);
}

static void test_forms(void **state) {
        expect_range("bytes=0-99", 1000, 0, 100);
        expect_range("bytes=100-199", 1000, 100, 100);
        expect_range("bytes=999-999", 1000, 999, 1);
        expect_range("bytes=500-", 1000, 500, 500);
        expect_range("bytes=-100", 1000, 900, 100);
        expect_range("BYTES=0-0", 1000, 0, 1);
        /* past the end: clamped */
        expect_range("bytes=900-5000", 1000, 900, 100);
        expect_range("bytes=-5000", 1000, 0, 1000);
        expect_range("bytes=0-18446744073709551615", 10, 0, 10);
}

static void test_unsatisfiable(void **state) {
        struct http_range r;
        assert_int_equal(http_range_parse("bytes=1000-", 1000, &r), -ERANGE);
        assert_int_equal(http_range_parse("bytes=1000-1001", 1000, &r), -ERANGE);
        assert_int_equal(http_range_parse("bytes=-0", 1000, &r), -ERANGE);
        assert_int_equal(http_range_parse("bytes=0-", 0, &r), -ERANGE);
        assert_int_equal(http_range_parse("bytes=-5", 0, &r), -ERANGE);
}

static void test_malformed(void **state) {
        static const char *const bad[] = {
                "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-4", "bytes=0-1,5-6",
                "bytes= 0-1", "bytes=0 -1", "bytes=0-1 ", "items=0-1", "bytes=+1-2", "bytes=1--2",
                "bytes=18446744073709551616-", "bytes=--1", "bytes=0x10-20",
        };
        struct http_range r;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int ret = http_range_parse(bad[i], 1000, &r);
                if (ret != -EINVAL)
                        fail_msg("\"%s\" gave %d, expected -EINVAL", bad[i], ret);
        }
        assert_int_equal(http_range_parse(NULL, 1000, &r), -EINVAL);
        char longer[300];
        memset(longer, '1', sizeof(longer) - 1);
        memcpy(longer, "bytes=", 6);
        longer[sizeof(longer) - 1] = '\0';
        assert_int_equal(http_range_parse(longer, 1000, &r), -EINVAL);
}

static void test_if_range_and_content_range(void **state) {
        assert_true(http_if_range_matches("\"sha256:ab\"", "\"sha256:ab\""));
        assert_false(http_if_range_matches("\"sha256:ac\"", "\"sha256:ab\""));
        assert_false(http_if_range_matches("W/\"sha256:ab\"", "\"sha256:ab\""));
        assert_false(http_if_range_matches("Wed, 21 Oct 2015 07:28:00 GMT", "\"sha256:ab\""));
        assert_false(http_if_range_matches(NULL, "\"x\""));
        char buf[64];
        struct http_range r = {.start = 100, .length = 50};
        http_content_range_format(&r, 1000, buf, sizeof(buf));
        assert_string_equal(buf, "bytes 100-149/1000");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_forms),
                cmocka_unit_test(test_unsatisfiable),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_if_range_and_content_range),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
