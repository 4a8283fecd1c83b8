/* When a trial commits or rolls back: tests/unit for agent/trial-gate.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/trial-gate.h"

#define SEC 1000000ULL
#define T0 (1000 * SEC) /* the trial's start */

/* gate 60 s, trial timeout 600 s, controller wait one day, grace 120 s; health passing
 * since the start; a link, nothing reached, no plan */
static struct trial_gate_input base(uint64_t now) {
        return (struct trial_gate_input){
                .now = now,
                .started = T0,
                .gate = 60 * SEC,
                .timeout = 600 * SEC,
                .health_passing = true,
                .health_since = T0,
                .controller_required = true,
                .window_grace = 120 * SEC,
                .controller_wait = 86400 * SEC,
        };
}

static void test_without_controller_is_the_old_gate(void **state) {
        (void) state;
        struct trial_gate_input in = base(T0 + 59 * SEC);
        in.controller_required = false;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_WAIT);
        assert_int_equal(d.deadline_kind, TRIAL_GATE_DEADLINE_NONE);
        in.now = T0 + 60 * SEC;
        d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_COMMIT);
        assert_true(d.health_held);
        /* never held by the timeout: rolled back for health */
        in.health_passing = false;
        in.now = T0 + 600 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_ROLLBACK_HEALTH);
        in.now = T0 + 599 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_WAIT);
}

static void test_health_held_waits_for_a_good_sync(void **state) {
        (void) state;
        struct trial_gate_input in = base(T0 + 61 * SEC);
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_WAIT);
        assert_true(d.health_held);
        assert_true(d.waiting_for_controller);
        assert_int_equal(d.deadline_kind, TRIAL_GATE_DEADLINE_LIMIT);
        assert_int_equal(d.controller_deadline, T0 + 86400 * SEC);
        /* past the trial timeout, health held once: still waiting, not a health rollback */
        in.now = T0 + 3600 * SEC;
        in.health_held = true;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_WAIT);
        /* the sync: commit at once */
        in.controller_reached = true;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_COMMIT);
}

static void test_reached_before_the_health_gate_held(void **state) {
        (void) state;
        struct trial_gate_input in = base(T0 + 10 * SEC);
        in.controller_reached = true;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_WAIT);
        assert_false(d.waiting_for_controller); /* the health gate is what is missing */
        in.now = T0 + 60 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_COMMIT);
}

static void test_no_plan_rolls_back_at_the_limit(void **state) {
        (void) state;
        struct trial_gate_input in = base(T0 + 86400 * SEC - 1);
        in.health_held = true;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_WAIT);
        in.now = T0 + 86400 * SEC;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_ROLLBACK_CONTROLLER);
        assert_int_equal(d.deadline_kind, TRIAL_GATE_DEADLINE_LIMIT);
        /* a limit shorter than the trial timeout rolls back before it */
        in = base(T0 + 30 * SEC);
        in.controller_wait = 30 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_ROLLBACK_CONTROLLER);
}

static void test_a_health_failure_is_reported_first(void **state) {
        (void) state;
        /* never held by the timeout, controller not reached either: the health reason, at
         * the trial timeout, not a day later */
        struct trial_gate_input in = base(T0 + 600 * SEC);
        in.health_passing = false;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_ROLLBACK_HEALTH);
}

static void test_a_planned_pass_sets_the_deadline(void **state) {
        (void) state;
        /* a pass from +300 s to +900 s: it opens inside the 600 s trial window */
        struct trial_gate_input in = base(T0 + 100 * SEC);
        in.has_window = true;
        in.window_start = T0 + 300 * SEC;
        in.window_end = T0 + 900 * SEC;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_WAIT);
        assert_int_equal(d.deadline_kind, TRIAL_GATE_DEADLINE_PASS);
        assert_int_equal(d.controller_deadline, T0 + 1020 * SEC);
        in.health_held = true;
        in.now = T0 + 1019 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_WAIT);
        in.now = T0 + 1020 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_ROLLBACK_CONTROLLER);
        /* a sync in the pass commits */
        in.now = T0 + 400 * SEC;
        in.controller_reached = true;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_COMMIT);
}

static void test_a_pass_open_at_the_start_counts(void **state) {
        (void) state;
        struct trial_gate_input in = base(T0 + 100 * SEC);
        in.health_held = true;
        in.has_window = true;
        in.window_start = T0 - 200 * SEC;
        in.window_end = T0 + 50 * SEC;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.deadline_kind, TRIAL_GATE_DEADLINE_PASS);
        assert_int_equal(d.controller_deadline, T0 + 170 * SEC);
        in.now = T0 + 170 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_ROLLBACK_CONTROLLER);
}

static void test_a_pass_outside_the_trial_window_is_not_due(void **state) {
        (void) state;
        struct trial_gate_input in = base(T0 + 100 * SEC);
        in.has_window = true;
        /* opens at the trial timeout: not due, the configured limit applies */
        in.window_start = T0 + 600 * SEC;
        in.window_end = T0 + 1200 * SEC;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.deadline_kind, TRIAL_GATE_DEADLINE_LIMIT);
        assert_int_equal(d.controller_deadline, T0 + 86400 * SEC);
        /* closed before the trial began: not due either */
        in.window_start = T0 - 600 * SEC;
        in.window_end = T0;
        assert_int_equal(trial_gate_decide(&in).deadline_kind, TRIAL_GATE_DEADLINE_LIMIT);
}

static void test_health_must_pass_at_the_commit(void **state) {
        (void) state;
        /* held once, the controller reached, failing now: wait, then roll back at the later
         * deadline */
        struct trial_gate_input in = base(T0 + 700 * SEC);
        in.health_held = true;
        in.controller_reached = true;
        in.health_passing = false;
        in.controller_wait = 1000 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_WAIT);
        in.now = T0 + 1000 * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_ROLLBACK_HEALTH);
        /* passing again for a moment is enough: it held its gate_sec once */
        in.health_passing = true;
        in.health_since = in.now;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_COMMIT);
}

static void test_a_gate_of_zero(void **state) {
        (void) state;
        struct trial_gate_input in = base(T0);
        in.gate = 0;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_WAIT);
        assert_true(d.waiting_for_controller);
        in.controller_reached = true;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_COMMIT);
}

static void test_a_pass_without_end_is_bounded(void **state) {
        (void) state;
        /* A plan whose window opens in the trial window and closes in a year (or in the
         * year 9999): the broken image waited for its end, on trial all that time. The pass
         * counts for at most controller_wait after it opens. */
        struct trial_gate_input in = base(T0 + 100 * SEC);
        in.health_held = true;
        in.has_window = true;
        in.window_start = T0 + 300 * SEC;
        in.window_end = T0 + 365 * 86400 * SEC;
        struct trial_gate_decision d = trial_gate_decide(&in);
        assert_int_equal(d.deadline_kind, TRIAL_GATE_DEADLINE_PASS);
        assert_int_equal(d.controller_deadline, T0 + (300 + 86400 + 120) * SEC);
        in.now = T0 + (300 + 86400 + 120) * SEC;
        assert_int_equal(trial_gate_decide(&in).verdict, TRIAL_GATE_ROLLBACK_CONTROLLER);
        /* open since before the trial: from the trial's start */
        in.window_start = T0 - 600 * SEC;
        in.window_end = UINT64_MAX - 1;
        d = trial_gate_decide(&in);
        assert_int_equal(d.controller_deadline, T0 + (86400 + 120) * SEC);
        /* a wait shorter than the pass: from its opening, not from the trial's start (a good
         * image is not rolled back before the ground could be in view) */
        in.controller_wait = 30 * SEC;
        in.window_start = T0 + 300 * SEC;
        in.window_end = T0 + 900 * SEC;
        in.now = T0 + 100 * SEC;
        d = trial_gate_decide(&in);
        assert_int_equal(d.verdict, TRIAL_GATE_WAIT);
        assert_int_equal(d.controller_deadline, T0 + (330 + 120) * SEC);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_without_controller_is_the_old_gate),
                cmocka_unit_test(test_health_held_waits_for_a_good_sync),
                cmocka_unit_test(test_reached_before_the_health_gate_held),
                cmocka_unit_test(test_no_plan_rolls_back_at_the_limit),
                cmocka_unit_test(test_a_health_failure_is_reported_first),
                cmocka_unit_test(test_a_planned_pass_sets_the_deadline),
                cmocka_unit_test(test_a_pass_open_at_the_start_counts),
                cmocka_unit_test(test_a_pass_outside_the_trial_window_is_not_due),
                cmocka_unit_test(test_health_must_pass_at_the_commit),
                cmocka_unit_test(test_a_gate_of_zero),
                cmocka_unit_test(test_a_pass_without_end_is_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
