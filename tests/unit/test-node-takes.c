/* Unit tests for what the controller keeps of each node in memory: what it said it takes
 * (node-takes), and its sync rate (node-rate). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "controller/node-rate.h"
#include "controller/node-takes.h"

static void test_set_get(void **state) {
        (void) state;
        struct node_takes_table t;
        assert_int_equal(node_takes_init(&t, 2), 0);
        assert_null(node_takes_get(&t, "sat-1", 0)); /* never said: the controller says first */
        assert_int_equal(node_takes_set(&t, "sat-1", true, 7, 1), 0);
        const struct node_takes *e = node_takes_get(&t, "sat-1", 2);
        assert_non_null(e);
        assert_true(e->zstd);
        assert_int_equal(e->dictionary_id, 7);
        assert_null(node_takes_get(&t, "sat-", 2)); /* a prefix is another node */
        /* said again, otherwise: replaced */
        assert_int_equal(node_takes_set(&t, "sat-1", false, 0, 3), 0);
        e = node_takes_get(&t, "sat-1", 4);
        assert_false(e->zstd);
        assert_int_equal(e->dictionary_id, 0);
        assert_int_equal(node_takes_set(&t, "", true, 0, 3), -EINVAL);
        assert_int_equal(node_takes_set(&t, NULL, true, 0, 3), -EINVAL);
        char long_id[API_ID_MAX + 2];
        memset(long_id, 'a', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        assert_int_equal(node_takes_set(&t, long_id, true, 0, 3), -EINVAL);
        node_takes_done(&t);
}

static void test_bounded(void **state) {
        (void) state;
        struct node_takes_table t;
        assert_int_equal(node_takes_init(&t, 2), 0);
        assert_int_equal(node_takes_set(&t, "a", true, 1, 1), 0);
        assert_int_equal(node_takes_set(&t, "b", true, 2, 2), 0);
        assert_non_null(node_takes_get(&t, "a", 3)); /* a used at 3: b is now the oldest */
        assert_int_equal(node_takes_set(&t, "c", true, 3, 4), 0);
        assert_null(node_takes_get(&t, "b", 5)); /* forgotten: it will say again when told */
        assert_non_null(node_takes_get(&t, "a", 5));
        assert_non_null(node_takes_get(&t, "c", 5));
        node_takes_done(&t);
}

#define SEC 1000000LL

/* 60 a minute, 5 at once: the burst, then one a second; nodes apart; no bound with 0. */
static void test_rate(void **state) {
        (void) state;
        struct node_rate r;
        int64_t retry = 0;
        assert_int_equal(node_rate_init(&r, 60, 5), 0);
        for (int i = 0; i < 5; i++)
                assert_true(node_rate_take(&r, "sat-1", 100 * SEC, &retry));
        assert_false(node_rate_take(&r, "sat-1", 100 * SEC, &retry));
        assert_int_equal(retry, 1);
        assert_true(node_rate_take(&r, "sat-2", 100 * SEC, &retry)); /* its own bucket */
        assert_false(node_rate_take(&r, "sat-1", 100 * SEC + SEC / 2, &retry));
        assert_true(node_rate_take(&r, "sat-1", 101 * SEC, &retry)); /* one back a second */
        assert_false(node_rate_take(&r, "sat-1", 101 * SEC, &retry));
        /* a long silence fills the bucket, no more than the burst */
        for (int i = 0; i < 5; i++)
                assert_true(node_rate_take(&r, "sat-1", 1000 * SEC, &retry));
        assert_false(node_rate_take(&r, "sat-1", 1000 * SEC, &retry));
        /* a clock that goes back gives nothing */
        assert_false(node_rate_take(&r, "sat-1", 10 * SEC, &retry));
        node_rate_done(&r);

        /* a slow rate: the retry says when */
        assert_int_equal(node_rate_init(&r, 6, 1), 0);
        assert_true(node_rate_take(&r, "sat-1", 0, &retry));
        assert_false(node_rate_take(&r, "sat-1", 0, &retry));
        assert_int_equal(retry, 10);
        assert_false(node_rate_take(&r, "sat-1", 4 * SEC, &retry));
        assert_int_equal(retry, 6);
        node_rate_done(&r);

        assert_int_equal(node_rate_init(&r, 0, 0), 0);
        for (int i = 0; i < 1000; i++)
                assert_true(node_rate_take(&r, "sat-1", 0, &retry));
        node_rate_done(&r);
}

/* More nodes than the table holds: each still gets its bucket (the one heard from longest
 * ago on a full probe starts again full), and no lookup runs past its probe. */
static void test_rate_many_nodes(void **state) {
        (void) state;
        struct node_rate r;
        int64_t retry;
        char name[32];
        assert_int_equal(node_rate_init(&r, 60, 1), 0);
        for (int i = 0; i < 3 * NODE_RATE_SLOTS; i++) {
                snprintf(name, sizeof(name), "node-%d", i);
                assert_true(node_rate_take(&r, name, (int64_t) i, &retry));
        }
        /* the last one is kept: its bucket is empty */
        assert_false(node_rate_take(&r, name, 3 * NODE_RATE_SLOTS, &retry));
        node_rate_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rate),
                cmocka_unit_test(test_rate_many_nodes),
                cmocka_unit_test(test_set_get),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
