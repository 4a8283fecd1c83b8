/* Unit tests for the A/B boot state machine alone (update/boot-state.c): every decision
 * the agent takes (try, commit, abandon), every boot the bootloader scripts make, and
 * how the agent classifies the boot it runs in. No files, no variables, no root. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "update/boot-state.h"

/* ---- decisions and boots ---------------------------------------------------------- */

static void test_state_ops(void **state) {
        struct boot_state s;
        assert_int_equal(boot_state_init(&s, 'C'), -EINVAL);
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(s.primary, 'A');
        assert_true(s.slot[0].good);
        assert_false(s.slot[1].good);
        assert_int_equal(s.slot[1].tries_left, 0);

        assert_int_equal(boot_state_try_slot(&s, 'B', 0), -ERANGE);
        assert_int_equal(boot_state_try_slot(&s, 'B', BOOT_TRIES_MAX + 1), -ERANGE);
        assert_int_equal(boot_state_try_slot(&s, 'x', 3), -EINVAL);
        assert_int_equal(boot_state_try_slot(&s, 'B', 3), 0);
        assert_int_equal(s.primary, 'B');
        assert_false(s.slot[1].good);
        assert_int_equal(s.slot[1].tries_left, 3);
        assert_true(s.slot[0].good); /* the fallback stays good */

        assert_int_equal(boot_state_mark_good(&s, 'B'), 0);
        assert_true(s.slot[1].good);
        assert_int_equal(s.primary, 'B');

        assert_int_equal(boot_state_mark_bad(&s, 'B'), 0);
        assert_false(s.slot[1].good);
        assert_int_equal(s.primary, 'A');
        assert_int_equal(boot_state_mark_bad(&s, 'B'), 0); /* idempotent */
        assert_int_equal(s.primary, 'A');
}

static void test_simulate_trial_never_committed_falls_back(void **state) {
        struct boot_state s;
        enum boot_outcome o;
        char slot;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_try_slot(&s, 'B', 3), 0);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
                assert_int_equal(slot, 'B');
                assert_int_equal(s.slot[1].tries_left, 2 - i);
                assert_int_equal(boot_state_outcome(&s, slot, &o), 0);
                assert_int_equal(o, BOOT_OUTCOME_TRIAL);
        }
        for (int i = 0; i < 3; i++) {
                assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
                assert_int_equal(slot, 'A');
                assert_int_equal(boot_state_outcome(&s, slot, &o), 0);
                assert_int_equal(o, BOOT_OUTCOME_FALLBACK);
        }
        /* the agent on A abandons B: back to a plain good boot */
        assert_int_equal(boot_state_mark_bad(&s, 'B'), 0);
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'A');
        assert_int_equal(boot_state_outcome(&s, slot, &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_GOOD);
}

static void test_simulate_trial_committed_stays(void **state) {
        struct boot_state s;
        char slot;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_try_slot(&s, 'B', 2), 0);
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'B');
        assert_int_equal(boot_state_mark_good(&s, 'B'), 0);
        for (int i = 0; i < 20; i++) {
                assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
                assert_int_equal(slot, 'B');
        }
        /* the next update goes to A, with B as the fallback */
        assert_int_equal(boot_state_try_slot(&s, 'A', 1), 0);
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'A');
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'B');
}

static void test_simulate_nothing_bootable(void **state) {
        struct boot_state s;
        char slot = 0;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_mark_bad(&s, 'A'), 0);
        struct boot_state before = s;
        assert_int_equal(boot_state_simulate_boot(&s, &slot), -ENOENT);
        assert_memory_equal(&s, &before, sizeof(s));
        s.primary = 'Q';
        assert_int_equal(boot_state_simulate_boot(&s, &slot), -EINVAL);
}

static void test_slot_names(void **state) {
        assert_int_equal(boot_slot_index('A'), 0);
        assert_int_equal(boot_slot_index('B'), 1);
        assert_int_equal(boot_slot_index('a'), -EINVAL);
        assert_int_equal(boot_slot_index('\0'), -EINVAL);
        assert_int_equal(boot_slot_other('A'), 'B');
        assert_int_equal(boot_slot_other('B'), 'A');

        struct boot_state s;
        assert_int_equal(boot_state_init(&s, 'B'), 0);
        struct boot_state before = s;
        assert_int_equal(boot_state_mark_good(&s, 'C'), -EINVAL);
        assert_int_equal(boot_state_mark_bad(&s, 'C'), -EINVAL);
        assert_int_equal(boot_state_try_slot(&s, 'C', 1), -EINVAL);
        assert_memory_equal(&s, &before, sizeof(s)); /* refused calls change nothing */
}

static void test_try_bounds(void **state) {
        struct boot_state s;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        struct boot_state before = s;
        assert_int_equal(boot_state_try_slot(&s, 'B', -1), -ERANGE);
        assert_memory_equal(&s, &before, sizeof(s));
        assert_int_equal(boot_state_try_slot(&s, 'B', 1), 0);
        assert_int_equal(s.slot[1].tries_left, 1);
        assert_int_equal(boot_state_try_slot(&s, 'B', BOOT_TRIES_MAX), 0);
        assert_int_equal(s.slot[1].tries_left, BOOT_TRIES_MAX);
}

/* Marking the slot that is not primary never reorders: the agent on the fallback
 * committing itself keeps the failed primary first until it abandons it. */
static void test_mark_other_keeps_order(void **state) {
        struct boot_state s;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_try_slot(&s, 'B', 2), 0);
        assert_int_equal(boot_state_mark_bad(&s, 'A'), 0);
        assert_int_equal(s.primary, 'B');
        assert_false(s.slot[0].good);
        assert_int_equal(s.slot[0].tries_left, 0);
        assert_int_equal(boot_state_mark_good(&s, 'A'), 0);
        assert_int_equal(s.primary, 'B');
        assert_true(s.slot[0].good);
        assert_int_equal(s.slot[1].tries_left, 2); /* B's trial untouched */
}

/* Trying the slot that is already primary and good (a re-install in place) puts it
 * back on trial: it must pass the health gate again before it boots uncounted. */
static void test_retry_primary(void **state) {
        struct boot_state s;
        char slot;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_try_slot(&s, 'A', 2), 0);
        assert_int_equal(s.primary, 'A');
        assert_false(s.slot[0].good);
        assert_int_equal(s.slot[0].tries_left, 2);
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'A');
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'A');
        /* B was never good: with A's tries used up nothing is left */
        assert_int_equal(boot_state_simulate_boot(&s, &slot), -ENOENT);

        /* a failed trial tried again starts with fresh tries */
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_try_slot(&s, 'B', 1), 0);
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'B');
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'A');
        assert_int_equal(boot_state_try_slot(&s, 'B', 3), 0);
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'B');
        assert_int_equal(s.slot[1].tries_left, 2);
}

/* Neither slot committed (both on trial): the primary's tries go first, then the
 * other's, each counted down, then nothing. */
static void test_simulate_both_on_trial(void **state) {
        struct boot_state s = {.primary = 'B'};
        char slot;
        s.slot[0].tries_left = 2;
        s.slot[1].tries_left = 1;
        const char expected[] = {'B', 'A', 'A'};
        for (size_t i = 0; i < sizeof(expected); i++) {
                assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
                assert_int_equal(slot, expected[i]);
        }
        assert_int_equal(s.slot[0].tries_left, 0);
        assert_int_equal(s.slot[1].tries_left, 0);
        assert_int_equal(boot_state_simulate_boot(&s, &slot), -ENOENT);
        assert_int_equal(s.primary, 'B'); /* the bootloader never reorders */
}

/* A committed primary boots without counting, however many tries it carries. */
static void test_simulate_good_not_counted(void **state) {
        struct boot_state s = {.primary = 'A'};
        char slot;
        s.slot[0] = (struct boot_slot_state){.good = true, .tries_left = 3};
        s.slot[1] = (struct boot_slot_state){.good = false, .tries_left = 5};
        assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
        assert_int_equal(slot, 'A');
        assert_int_equal(s.slot[0].tries_left, 3);
        assert_int_equal(s.slot[1].tries_left, 5);
}

static void test_outcome(void **state) {
        struct boot_state s;
        enum boot_outcome o;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_outcome(&s, 'A', &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_GOOD);
        /* booted B while A is the committed primary: A did not boot */
        assert_int_equal(boot_state_outcome(&s, 'B', &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_FALLBACK);

        assert_int_equal(boot_state_try_slot(&s, 'B', 3), 0);
        assert_int_equal(boot_state_outcome(&s, 'B', &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_TRIAL);
        assert_int_equal(boot_state_outcome(&s, 'A', &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_FALLBACK);

        /* the health gate passed: commit; the same boot is now a good one */
        assert_int_equal(boot_state_mark_good(&s, 'B'), 0);
        assert_int_equal(boot_state_outcome(&s, 'B', &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_GOOD);

        /* rollback: the agent on the fallback abandons the primary, and its own boot
         * becomes the good one */
        assert_int_equal(boot_state_try_slot(&s, 'A', 1), 0);
        assert_int_equal(boot_state_outcome(&s, 'B', &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_FALLBACK);
        assert_int_equal(boot_state_mark_bad(&s, 'A'), 0);
        assert_int_equal(boot_state_outcome(&s, 'B', &o), 0);
        assert_int_equal(o, BOOT_OUTCOME_GOOD);

        o = BOOT_OUTCOME_TRIAL;
        assert_int_equal(boot_state_outcome(&s, 'C', &o), -EINVAL);
        s.primary = 0;
        assert_int_equal(boot_state_outcome(&s, 'A', &o), -EINVAL);
        assert_int_equal(o, BOOT_OUTCOME_TRIAL); /* untouched on error */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slot_names),
                cmocka_unit_test(test_state_ops),
                cmocka_unit_test(test_try_bounds),
                cmocka_unit_test(test_mark_other_keeps_order),
                cmocka_unit_test(test_retry_primary),
                cmocka_unit_test(test_simulate_trial_never_committed_falls_back),
                cmocka_unit_test(test_simulate_trial_committed_stays),
                cmocka_unit_test(test_simulate_nothing_bootable),
                cmocka_unit_test(test_simulate_both_on_trial),
                cmocka_unit_test(test_simulate_good_not_counted),
                cmocka_unit_test(test_outcome),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
