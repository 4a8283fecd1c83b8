/*
 * Unit tests for the migration's conversions (controller/store-convert.c): each SQLite
 * storage class into each PostgreSQL column type, int64 and double edges, text that is not
 * UTF-8 or holds a NUL refused saying where, and the order-free table digest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/store-convert.h"

static struct store_value integer(int64_t i) {
        return (struct store_value){.kind = STORE_VALUE_INTEGER, .i = i};
}
static struct store_value real(double f) {
        return (struct store_value){.kind = STORE_VALUE_FLOAT, .f = f};
}
static struct store_value text(const char *p, size_t len) {
        return (struct store_value){.kind = STORE_VALUE_TEXT, .bytes = p, .len = len};
}
static struct store_value blob(const char *p, size_t len) {
        return (struct store_value){.kind = STORE_VALUE_BLOB, .bytes = p, .len = len};
}

static void expect_text(enum store_pg_type t, struct store_value v, const char *want) {
        char *out = NULL, *why = NULL;
        assert_int_equal(store_value_to_pg(t, &v, &out, &why), 0);
        assert_null(why);
        if (!want)
                assert_null(out);
        else
                assert_string_equal(out, want);
        free(out);
}

static void expect_refused(enum store_pg_type t, struct store_value v, const char *why_has) {
        char *out = NULL, *why = NULL;
        assert_int_equal(store_value_to_pg(t, &v, &out, &why), -EINVAL);
        assert_null(out);
        assert_non_null(why);
        if (!strstr(why, why_has))
                fail_msg("\"%s\" does not say \"%s\"", why, why_has);
        free(why);
}

static void test_types(void **state) {
        assert_int_equal(store_pg_type_from_name("bigint"), STORE_PG_BIGINT);
        assert_int_equal(store_pg_type_from_name("double precision"), STORE_PG_DOUBLE);
        assert_int_equal(store_pg_type_from_name("text"), STORE_PG_TEXT);
        assert_int_equal(store_pg_type_from_name("jsonb"), STORE_PG_JSONB);
        assert_int_equal(store_pg_type_from_name("integer"), -EINVAL);
        assert_string_equal(store_pg_type_name(STORE_PG_BYTEA), "bytea");
}

static void test_integers(void **state) {
        struct store_value null = {.kind = STORE_VALUE_NULL};
        for (int t = 0; t < _STORE_PG_TYPE_MAX; t++)
                expect_text(t, null, NULL);
        expect_text(STORE_PG_BIGINT, integer(0), "0");
        expect_text(STORE_PG_BIGINT, integer(INT64_MAX), "9223372036854775807");
        expect_text(STORE_PG_BIGINT, integer(INT64_MIN), "-9223372036854775808");
        expect_refused(STORE_PG_BIGINT, real(1.5), "the real number 1.5 does not fit a bigint column");
        expect_refused(STORE_PG_BIGINT, text("12x", 3), "text of 3 bytes does not fit a bigint column");
        expect_refused(STORE_PG_BIGINT, blob("\x01", 1), "a blob of 1 bytes");
        /* integers used as booleans */
        expect_text(STORE_PG_BOOLEAN, integer(1), "t");
        expect_text(STORE_PG_BOOLEAN, integer(0), "f");
        expect_refused(STORE_PG_BOOLEAN, integer(2), "the integer 2 does not fit a boolean column");
        expect_refused(STORE_PG_BOOLEAN, text("t", 1), "text of 1 bytes");
}

static void test_doubles(void **state) {
        expect_text(STORE_PG_DOUBLE, real(0.1), "0.10000000000000001");
        expect_text(STORE_PG_DOUBLE, real(-0.0), "-0");
        expect_text(STORE_PG_DOUBLE, real(1e308), "1e+308");
        expect_text(STORE_PG_DOUBLE, real(5e-324), "4.9406564584124654e-324");
        expect_text(STORE_PG_DOUBLE, real(INFINITY), "Infinity");
        expect_text(STORE_PG_DOUBLE, real(-INFINITY), "-Infinity");
        expect_text(STORE_PG_DOUBLE, integer(3), "3");
        expect_refused(STORE_PG_DOUBLE, text("1.0", 3), "does not fit a double precision column");
        /* the text read back as the same double */
        char *out = NULL, *why = NULL;
        struct store_value v = real(3865470566400.123);
        assert_int_equal(store_value_to_pg(STORE_PG_DOUBLE, &v, &out, &why), 0);
        assert_true(strtod(out, NULL) == 3865470566400.123);
        free(out);
}

static void test_text(void **state) {
        expect_text(STORE_PG_TEXT, text("node-1", 6), "node-1");
        expect_text(STORE_PG_TEXT, text("", 0), "");
        expect_text(STORE_PG_TEXT, text("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\xb0", 12), "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\xb0");
        expect_text(STORE_PG_TEXT, blob("plain", 5), "plain");
        expect_text(STORE_PG_TEXT, integer(-7), "-7");
        expect_refused(STORE_PG_TEXT, text("ab\0cd", 5), "text of 5 bytes with a NUL at byte 2");
        expect_refused(STORE_PG_TEXT, text("/nodes\xff", 7), "bytes that are not UTF-8 at byte 6");
        expect_refused(STORE_PG_TEXT, blob("\xc3", 1), "a blob of 1 bytes with bytes that are not UTF-8 at byte 0");
        /* JSON text into jsonb; blobs into bytea */
        expect_text(STORE_PG_JSONB, text("{\"a\": [1, 2]}", 13), "{\"a\": [1, 2]}");
        expect_refused(STORE_PG_JSONB, text("{\"a\":", 5), "text that is not JSON");
        expect_refused(STORE_PG_JSONB, integer(1), "the integer 1 does not fit a jsonb column");
        expect_text(STORE_PG_BYTEA, blob("\x00\xff\x10", 3), "\\x00ff10");
        expect_text(STORE_PG_BYTEA, blob("", 0), "\\x");
}

static void test_utf8(void **state) {
        size_t at = 99;
        assert_int_equal(store_utf8_check("abc", 3, &at), 0);
        assert_int_equal(store_utf8_check("\xc0\xaf", 2, &at), -EILSEQ); /* overlong "/" */
        assert_int_equal(at, 0);
        assert_int_equal(store_utf8_check("a\xed\xa0\x80", 4, &at), -EILSEQ); /* a surrogate */
        assert_int_equal(at, 1);
        assert_int_equal(store_utf8_check("ab\xf4\x90\x80\x80", 6, &at), -EILSEQ); /* past U+10FFFF */
        assert_int_equal(at, 2);
        assert_int_equal(store_utf8_check("\xe2\x82", 2, &at), -EILSEQ); /* cut short */
        assert_int_equal(store_utf8_check("\xf4\x8f\xbf\xbf", 4, &at), 0); /* U+10FFFF */
}

static uint64_t row(const char *a, const char *b) {
        uint64_t h = STORE_ROW_HASH_INIT;
        store_row_hash_add(&h, STORE_PG_TEXT, a);
        store_row_hash_add(&h, STORE_PG_DOUBLE, b);
        return h;
}

static void test_digest(void **state) {
        struct store_digest x = {0}, y = {0};
        /* the order of rows does not matter; a double by its value, not its spelling */
        store_digest_add(&x, row("a", "0.10000000000000001"));
        store_digest_add(&x, row("b", NULL));
        store_digest_add(&y, row("b", NULL));
        store_digest_add(&y, row("a", "0.1"));
        assert_int_equal(x.rows, 2);
        assert_true(x.sum == y.sum);
        /* NULL is not "" and values do not run into each other across columns */
        assert_true(row("b", NULL) != row("", NULL));
        uint64_t h1 = STORE_ROW_HASH_INIT, h2 = STORE_ROW_HASH_INIT;
        store_row_hash_add(&h1, STORE_PG_TEXT, "ab");
        store_row_hash_add(&h1, STORE_PG_TEXT, "c");
        store_row_hash_add(&h2, STORE_PG_TEXT, "a");
        store_row_hash_add(&h2, STORE_PG_TEXT, "bc");
        assert_true(h1 != h2);
        /* one changed value changes the digest */
        struct store_digest z = {0};
        store_digest_add(&z, row("a", "0.2"));
        store_digest_add(&z, row("b", NULL));
        assert_true(z.sum != x.sum);
        /* jsonb by its canonical form: PostgreSQL gives its keys back in its own order */
        uint64_t j1 = STORE_ROW_HASH_INIT, j2 = STORE_ROW_HASH_INIT;
        store_row_hash_add(&j1, STORE_PG_JSONB, "{\"b\":1,\"a\":2}");
        store_row_hash_add(&j2, STORE_PG_JSONB, "{\"a\": 2, \"b\": 1}");
        assert_true(j1 == j2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_types),
                cmocka_unit_test(test_integers),
                cmocka_unit_test(test_doubles),
                cmocka_unit_test(test_text),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_digest),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
