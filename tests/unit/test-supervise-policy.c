/* Unit tests for supervision decisions: backoff, crash loops, exits, class controls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "runtime/supervise-policy.h"

#define SEC 1000000ULL
#define EXITED(code) ((code) << 8)
#define SIGNALED(sig) (sig)

static struct workload_spec spec(enum workload_restart policy) {
        struct workload_spec s = {0};
        s.restart.policy = policy;
        s.restart.initial_delay_ms = 1000;
        s.restart.max_delay_ms = 8000;
        s.restart.max_restarts = 3;
        s.restart.window_sec = 60;
        return s;
}

static void test_exit_classification(void **state) {
        struct workload_exit e = {.status = EXITED(0)};
        assert_false(workload_exit_is_failure(&e));
        e.status = EXITED(2);
        assert_true(workload_exit_is_failure(&e));
        e.status = SIGNALED(SIGSEGV);
        assert_true(workload_exit_is_failure(&e));
        e.status = SIGNALED(SIGTERM);
        e.stop_requested = true;
        assert_false(workload_exit_is_failure(&e));
        e = (struct workload_exit){.status = SIGNALED(SIGKILL), .oom_killed = true};
        assert_true(workload_exit_is_failure(&e));

        char buf[128];
        e = (struct workload_exit){.status = EXITED(3)};
        workload_exit_describe(&e, buf, sizeof(buf));
        assert_string_equal(buf, "exited with code 3");
        e.status = SIGNALED(SIGSEGV);
        workload_exit_describe(&e, buf, sizeof(buf));
        assert_string_equal(buf, "killed by signal 11 (SEGV)");
        e.oom_killed = true;
        e.status = SIGNALED(SIGKILL);
        workload_exit_describe(&e, buf, sizeof(buf));
        assert_string_equal(buf, "killed by the OOM killer (signal 9)");
        e = (struct workload_exit){.status = SIGNALED(SIGTERM), .stop_requested = true};
        workload_exit_describe(&e, buf, sizeof(buf));
        assert_string_equal(buf, "killed by signal 15 (TERM) as asked");
        /* Stopped for failing its probe: a failure, whatever signal ended it. */
        e = (struct workload_exit){.status = SIGNALED(SIGTERM), .unhealthy = true};
        assert_true(workload_exit_is_failure(&e));
        workload_exit_describe(&e, buf, sizeof(buf));
        assert_string_equal(buf, "stopped after failing its health probe (signal 15)");
}

static void test_policies(void **state) {
        struct restart_tracker t = {0};
        uint64_t delay;
        struct workload_exit clean = {.status = EXITED(0), .ran_usec = SEC};
        struct workload_exit crash = {.status = EXITED(1), .ran_usec = SEC};

        struct workload_spec no = spec(WORKLOAD_RESTART_NO);
        restart_tracker_note_start(&t, &no, 0);
        assert_int_equal(restart_decide(&no, &t, &crash, SEC, &delay), RESTART_NONE);

        struct workload_spec onf = spec(WORKLOAD_RESTART_ON_FAILURE);
        memset(&t, 0, sizeof(t));
        restart_tracker_note_start(&t, &onf, 0);
        assert_int_equal(restart_decide(&onf, &t, &clean, SEC, &delay), RESTART_NONE);
        assert_int_equal(restart_decide(&onf, &t, &crash, SEC, &delay), RESTART_AFTER_DELAY);
        assert_int_equal(delay, 1 * SEC);

        struct workload_spec always = spec(WORKLOAD_RESTART_ALWAYS);
        memset(&t, 0, sizeof(t));
        restart_tracker_note_start(&t, &always, 0);
        assert_int_equal(restart_decide(&always, &t, &clean, SEC, &delay), RESTART_AFTER_DELAY);
        assert_int_equal(delay, 1 * SEC);

        struct workload_exit stopped = {.status = SIGNALED(SIGTERM), .stop_requested = true};
        assert_int_equal(restart_decide(&always, &t, &stopped, SEC, &delay), RESTART_NONE);
}

static void test_backoff_and_crash_loop(void **state) {
        struct workload_spec s = spec(WORKLOAD_RESTART_ON_FAILURE);
        struct restart_tracker t = {0};
        struct workload_exit crash = {.status = SIGNALED(SIGSEGV), .ran_usec = SEC / 10};
        uint64_t now = 0, delay;
        const uint64_t expected[] = {1 * SEC, 2 * SEC, 4 * SEC};
        restart_tracker_note_start(&t, &s, now);
        for (size_t i = 0; i < 3; i++) {
                now += SEC / 10;
                assert_int_equal(restart_decide(&s, &t, &crash, now, &delay), RESTART_AFTER_DELAY);
                assert_int_equal(delay, expected[i]);
                now += delay;
                restart_tracker_note_start(&t, &s, now);
        }
        /* Three restarts within 60 s: the fourth crash stops the loop. */
        now += SEC / 10;
        assert_int_equal(restart_decide(&s, &t, &crash, now, &delay), RESTART_GIVE_UP);

        /* Outside the window the count starts again. */
        now += 120 * SEC;
        restart_tracker_note_start(&t, &s, now);
        now += SEC;
        assert_int_equal(restart_decide(&s, &t, &crash, now, &delay), RESTART_AFTER_DELAY);
}

static void test_backoff_caps_and_resets_after_a_long_run(void **state) {
        struct workload_spec s = spec(WORKLOAD_RESTART_ALWAYS);
        s.restart.max_restarts = 100;
        struct restart_tracker t = {0};
        struct workload_exit crash = {.status = EXITED(1), .ran_usec = SEC / 10};
        uint64_t delay = 0, now = 0;
        for (int i = 0; i < 10; i++) {
                restart_tracker_note_start(&t, &s, now);
                assert_int_equal(restart_decide(&s, &t, &crash, now, &delay), RESTART_AFTER_DELAY);
                now += delay;
        }
        assert_int_equal(delay, 8 * SEC); /* capped at max_delay_ms */
        struct workload_exit long_run = {.status = EXITED(1), .ran_usec = 30 * SEC};
        restart_tracker_note_start(&t, &s, now);
        assert_int_equal(restart_decide(&s, &t, &long_run, now, &delay), RESTART_AFTER_DELAY);
        assert_int_equal(delay, 1 * SEC);
}

static void test_effective_cpu_max(void **state) {
        struct class_control none = {0}, half = {.cpu_percent = 50}, tiny = {.cpu_percent = 1};
        assert_int_equal(workload_effective_cpu_max(0, 4, &none), 0);
        assert_int_equal(workload_effective_cpu_max(150, 4, &none), 150);
        assert_int_equal(workload_effective_cpu_max(150, 4, &half), 75);
        assert_int_equal(workload_effective_cpu_max(0, 4, &half), 200);
        assert_int_equal(workload_effective_cpu_max(0, 2, &tiny), 2);
        assert_int_equal(workload_effective_cpu_max(50, 2, &tiny), 1);
        assert_int_equal(workload_effective_cpu_max(50, 2, NULL), 50);
}

static void test_admission(void **state) {
        struct class_control classes[_WORKLOAD_PRIORITY_MAX] = {{0}};
        char reason[128];
        assert_true(workload_admit(WORKLOAD_PRIORITY_BEST_EFFORT, classes, false, reason, sizeof(reason)));
        assert_false(workload_admit(WORKLOAD_PRIORITY_BEST_EFFORT, classes, true, reason, sizeof(reason)));
        assert_string_equal(reason, "best-effort workloads are not admitted now (the board is shedding load)");
        assert_true(workload_admit(WORKLOAD_PRIORITY_NORMAL, classes, true, reason, sizeof(reason)));
        classes[WORKLOAD_PRIORITY_BEST_EFFORT].frozen = true;
        assert_false(workload_admit(WORKLOAD_PRIORITY_BEST_EFFORT, classes, false, reason, sizeof(reason)));
        assert_string_equal(reason, "best-effort workloads are not admitted now (the class is frozen)");
        classes[WORKLOAD_PRIORITY_NORMAL].stopped = true;
        assert_false(workload_admit(WORKLOAD_PRIORITY_NORMAL, classes, false, reason, sizeof(reason)));
        assert_string_equal(reason, "normal workloads are stopped by the thermal/power policy");
        assert_true(workload_admit(WORKLOAD_PRIORITY_CRITICAL, classes, true, reason, sizeof(reason)));
}

static void test_privilege_rules(void **state) {
        char why[256];
        /* an ordinary workload: always, from anywhere */
        assert_true(workload_privilege_allowed(false, true, false, false, why, sizeof(why)));
        /* a privileged one: locally where the node allows privileged specs */
        assert_true(workload_privilege_allowed(true, false, true, false, why, sizeof(why)));
        assert_false(workload_privilege_allowed(true, false, false, true, why, sizeof(why)));
        assert_string_equal(why, "privileged specs are refused by this node's policy (sandbox.allow_privileged)");
        /* for the controller only with allow_privileged_from_link too */
        assert_false(workload_privilege_allowed(true, true, true, false, why, sizeof(why)));
        assert_string_equal(why, "this node does not start privileged workloads for the controller "
                                 "(sandbox.allow_privileged_from_link)");
        assert_true(workload_privilege_allowed(true, true, true, true, why, sizeof(why)));
        assert_false(workload_privilege_allowed(true, true, false, true, why, sizeof(why)));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exit_classification),
                cmocka_unit_test(test_policies),
                cmocka_unit_test(test_backoff_and_crash_loop),
                cmocka_unit_test(test_backoff_caps_and_resets_after_a_long_run),
                cmocka_unit_test(test_effective_cpu_max),
                cmocka_unit_test(test_admission),
                cmocka_unit_test(test_privilege_rules),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
