/* Unit tests for the user-namespace id pool: checks, assignment, persistence format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/id-range.h"

static void test_pool_check(void **state) {
        char msg[256];
        struct id_pool p = ID_POOL_DEFAULT;
        assert_int_equal(id_pool_check(&p, msg, sizeof(msg)), 0);
        assert_int_equal(id_pool_slices(&p), 256);

        p = (struct id_pool){.ranges = {{1000, 65536}}, .n_ranges = 1, .size = 65536};
        assert_int_equal(id_pool_check(&p, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "below 65536"));

        p = (struct id_pool){.ranges = {{100000, 1000}}, .n_ranges = 1, .size = 65536};
        assert_int_equal(id_pool_check(&p, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "fewer than one workload's"));

        p = (struct id_pool){.ranges = {{100000, 131072}, {200000, 65536}}, .n_ranges = 2, .size = 65536};
        assert_int_equal(id_pool_check(&p, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "overlap"));

        p = (struct id_pool){.ranges = {{UINT32_MAX - 65535, 65536}}, .n_ranges = 1, .size = 65536};
        assert_int_equal(id_pool_check(&p, msg, sizeof(msg)), -EINVAL); /* would reach (uid_t) -1 */
        p.ranges[0].start--;
        assert_int_equal(id_pool_check(&p, msg, sizeof(msg)), 0);

        p = (struct id_pool){.ranges = {{100000, 65536}}, .n_ranges = 1, .size = 0};
        assert_int_equal(id_pool_check(&p, msg, sizeof(msg)), -EINVAL);
}

static void test_assign_disjoint_and_stable(void **state) {
        struct id_pool p = {.ranges = {{100000, 3 * 1000 + 500}, {500000, 1000}}, .n_ranges = 2, .size = 1000};
        struct id_allocations *a = calloc(1, sizeof(*a));
        uint32_t s1, s2, s3, s4, again;
        bool changed;
        assert_int_equal(id_allocations_assign(a, &p, "one", &s1, &changed), 0);
        assert_true(changed);
        assert_int_equal(s1, 100000);
        assert_int_equal(id_allocations_assign(a, &p, "two", &s2, &changed), 0);
        assert_int_equal(s2, 101000);
        assert_int_equal(id_allocations_assign(a, &p, "three", &s3, &changed), 0);
        assert_int_equal(s3, 102000);
        /* the 500 ids left in the first range are not a slice: the next range is used */
        assert_int_equal(id_allocations_assign(a, &p, "four", &s4, &changed), 0);
        assert_int_equal(s4, 500000);
        assert_int_equal(id_allocations_assign(a, &p, "five", &again, &changed), -ENOSPC);

        /* asking again gives the same slice, and nothing to save */
        assert_int_equal(id_allocations_assign(a, &p, "two", &again, &changed), 0);
        assert_int_equal(again, s2);
        assert_false(changed);

        /* a released slice is reused */
        assert_int_equal(id_allocations_release(a, "two"), 0);
        assert_int_equal(id_allocations_release(a, "two"), -ENOENT);
        assert_int_equal(id_allocations_assign(a, &p, "five", &again, &changed), 0);
        assert_int_equal(again, 101000);

        /* the pool shrank: a slice no longer in it is replaced by a free one */
        struct id_pool smaller = {.ranges = {{100000, 4000}}, .n_ranges = 1, .size = 1000};
        assert_int_equal(id_allocations_assign(a, &smaller, "four", &again, &changed), 0);
        assert_true(changed);
        assert_int_equal(again, 103000);
        free(a);
}

static void test_format_parse_roundtrip(void **state) {
        struct id_pool p = ID_POOL_DEFAULT;
        struct id_allocations *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
        uint32_t s;
        bool changed;
        assert_int_equal(id_allocations_assign(a, &p, "alpha", &s, &changed), 0);
        assert_int_equal(id_allocations_assign(a, &p, "beta", &s, &changed), 0);
        char *text = id_allocations_format(a, &p);
        assert_non_null(text);
        assert_int_equal(id_allocations_parse(text, strlen(text), b), 0);
        assert_int_equal(b->n, 2);
        assert_int_equal(id_allocations_find(b, "beta", &s), 0);
        assert_int_equal(s, ID_RANGE_DEFAULT_START + 65536);
        assert_int_equal(id_allocations_find(b, "gamma", &s), -ENOENT);
        free(text);

        /* bad names and a slice held twice are dropped, not trusted */
        const char *bad = "{\"format\": 1, \"size\": 65536, \"workloads\": "
                          "{\"ok\": 1879048192, \"../x\": 1879113728, \"dup\": 1879048192, \"neg\": -5}}";
        assert_int_equal(id_allocations_parse(bad, strlen(bad), b), 0);
        assert_int_equal(b->n, 1);
        assert_string_equal(b->items[0].name, "ok");
        assert_int_equal(id_allocations_parse("[]", 2, b), -EBADMSG);
        assert_int_equal(id_allocations_parse("{\"format\": 2, \"workloads\": {}}", 31, b), -EBADMSG);
        free(a);
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pool_check),
                cmocka_unit_test(test_assign_disjoint_and_stable),
                cmocka_unit_test(test_format_parse_roundtrip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
