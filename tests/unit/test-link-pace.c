/* The sync batch's size: tests/unit for agent/link-pace.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/link-pace.h"

#define MIB (1024 * 1024)
#define SEC 1000000ULL

static void test_first_sync_is_small(void **state) {
        (void) state;
        struct link_pace p = {};
        assert_int_equal(link_pace_batch_bytes(&p, MIB, 30 * SEC, -1, 0), LINK_PACE_FIRST_BYTES);
        /* and never over the configured bound */
        assert_int_equal(link_pace_batch_bytes(&p, 16 * 1024, 30 * SEC, -1, 0), 16 * 1024);
}

static void test_follows_goodput(void **state) {
        (void) state;
        struct link_pace p = {};
        /* the link: ~295 KB moved in 120 s at Reno's pace, ~2.5 KB/s */
        link_pace_observe(&p, 250000, 100 * SEC);
        assert_true(p.goodput > 2400 && p.goodput < 2600);
        /* a 30 s target: ~75 KB, where max_sync_kib (1 MiB) would have hit the timeout */
        size_t b = link_pace_batch_bytes(&p, MIB, 30 * SEC, -1, 0);
        assert_true(b > 70000 && b < 80000);
        /* a faster pass: the batch grows, half-way at once (smoothing), up to the bound */
        link_pace_observe(&p, 1000000, 1 * SEC);
        assert_true(link_pace_batch_bytes(&p, MIB, 30 * SEC, -1, 0) == MIB);
        /* a tiny upload says nothing */
        double g = p.goodput;
        link_pace_observe(&p, 2000, 10 * SEC);
        assert_true(p.goodput == g);
}

static void test_failure_halves(void **state) {
        (void) state;
        struct link_pace p = {};
        link_pace_observe(&p, 100000, 10 * SEC); /* 10 KB/s: 300 KB in 30 s */
        link_pace_failed(&p);
        assert_true(link_pace_batch_bytes(&p, MIB, 30 * SEC, -1, 0) == 150000);
        for (int i = 0; i < 20; i++)
                link_pace_failed(&p);
        /* never below one small record */
        assert_int_equal(link_pace_batch_bytes(&p, MIB, 30 * SEC, -1, 0), LINK_PACE_MIN_BYTES);
}

static void test_window_end(void **state) {
        (void) state;
        struct link_pace p = {};
        link_pace_observe(&p, 100000, 10 * SEC); /* 10 KB/s */
        /* 60 s left, 5 s margin: 550 KB could go, the 30 s target says 300 KB */
        assert_true(link_pace_batch_bytes(&p, MIB, 30 * SEC, 60 * SEC, 5 * SEC) == 300000);
        /* 15 s left: only what moves in 10 s */
        assert_true(link_pace_batch_bytes(&p, MIB, 30 * SEC, 15 * SEC, 5 * SEC) == 100000);
        /* not enough time for one small record, or inside the margin: no sync */
        assert_int_equal(link_pace_batch_bytes(&p, MIB, 30 * SEC, 5 * SEC + 200000, 5 * SEC), 0);
        assert_int_equal(link_pace_batch_bytes(&p, MIB, 30 * SEC, 4 * SEC, 5 * SEC), 0);
        /* unmeasured: the first small batch, unless the window is already closing */
        struct link_pace fresh = {};
        assert_int_equal(link_pace_batch_bytes(&fresh, MIB, 30 * SEC, 60 * SEC, 5 * SEC), LINK_PACE_FIRST_BYTES);
        assert_int_equal(link_pace_batch_bytes(&fresh, MIB, 30 * SEC, 3 * SEC, 5 * SEC), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_first_sync_is_small),
                cmocka_unit_test(test_follows_goodput),
                cmocka_unit_test(test_failure_halves),
                cmocka_unit_test(test_window_end),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
