/* The desired-state reconciler's next step (#19 item 3): removals first, one install at a
 * time, a stop before a replacement, and a refused entry never stopping what runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/desired-plan.h"
#include "lib/macro.h"

static struct desired_step plan(const struct desired_entry_view *e, size_t n, const struct desired_extra_view *x,
                                size_t nx, bool update_busy, const char *installing,
                                enum desired_entry_state *states, const char **refusals) {
        struct desired_view v = {.entries = e, .n_entries = n, .extras = x, .n_extras = nx,
                                 .update_busy = update_busy, .installing = installing};
        struct desired_step s;
        desired_plan(&v, &s, states, refusals);
        return s;
}

static void test_new_workload_submitted(void **state) {
        struct desired_entry_view e[] = {{.name = "det", .bundle = ""}};
        enum desired_entry_state st[1];
        struct desired_step s = plan(e, 1, NULL, 0, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_SUBMIT);
        assert_int_equal(s.index, 0);
        assert_false(s.extra);
        assert_int_equal(st[0], DESIRED_ENTRY_PENDING);
}

static void test_reached(void **state) {
        struct desired_entry_view e[] = {{.name = "a", .exists = true, .ours = true, .same_spec = true, .busy = true},
                                         {.name = "b", .exists = true, .ours = true, .same_spec = true}};
        enum desired_entry_state st[2];
        struct desired_step s = plan(e, 2, NULL, 0, true, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_NONE);
        assert_int_equal(st[0], DESIRED_ENTRY_DONE);
        assert_int_equal(st[1], DESIRED_ENTRY_DONE);
}

static void test_extras_go_first(void **state) {
        struct desired_entry_view e[] = {{.name = "new", .bundle = ""}};
        struct desired_extra_view x[] = {{.name = "old", .busy = true}};
        enum desired_entry_state st[1];
        struct desired_step s = plan(e, 1, x, 1, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_STOP);
        assert_true(s.extra);
        assert_int_equal(s.index, 0);
        assert_int_equal(st[0], DESIRED_ENTRY_PENDING);
        /* stopped: removed */
        x[0].busy = false;
        s = plan(e, 1, x, 1, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_REMOVE);
        assert_true(s.extra);
        /* stopping: nothing else is asked of it, and the new one goes ahead */
        x[0].busy = x[0].stopping = true;
        s = plan(e, 1, x, 1, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_SUBMIT);
        assert_false(s.extra);
}

static void test_replacement_stops_first(void **state) {
        struct desired_entry_view e[] = {{.name = "det", .exists = true, .ours = true, .busy = true, .bundle = ""}};
        enum desired_entry_state st[1];
        struct desired_step s = plan(e, 1, NULL, 0, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_STOP);
        assert_false(s.extra);
        e[0].stopping = true;
        s = plan(e, 1, NULL, 0, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_WAIT);
        e[0].busy = e[0].stopping = false;
        s = plan(e, 1, NULL, 0, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_SUBMIT);
}

static void test_missing_app_installed_one_at_a_time(void **state) {
        struct desired_entry_view e[] = {
                {.name = "a", .exists = true, .ours = true, .busy = true, .app_missing = true, .bundle = "app-2"},
                {.name = "b", .app_missing = true, .bundle = "other-1"},
        };
        enum desired_entry_state st[2];
        /* the missing version comes first; what runs is not stopped for it yet */
        struct desired_step s = plan(e, 2, NULL, 0, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_INSTALL);
        assert_int_equal(s.index, 0);
        /* while it installs: the other waits, nothing is stopped */
        s = plan(e, 2, NULL, 0, true, "app-2", st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_WAIT);
        assert_int_equal(st[0], DESIRED_ENTRY_PENDING);
        assert_int_equal(st[1], DESIRED_ENTRY_PENDING);
        /* an operator's install holds them both too */
        s = plan(e, 2, NULL, 0, true, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_WAIT);
        /* installed: the old one is stopped, then the other app goes in */
        e[0].app_missing = false;
        s = plan(e, 2, NULL, 0, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_STOP);
        assert_int_equal(s.index, 0);
}

static void test_refused_never_stops(void **state) {
        struct desired_entry_view e[] = {
                {.name = "det", .exists = true, .ours = true, .busy = true, .bundle = "app-3",
                 .refusal = "its artifact (bundle app-3) was refused: chunk 3 does not match"},
                {.name = "mine", .exists = true, .ours = false, .busy = true, .bundle = ""},
                {.name = "orphan", .app_missing = true, .bundle = ""},
        };
        enum desired_entry_state st[3];
        const char *why[3];
        struct desired_step s = plan(e, 3, NULL, 0, false, NULL, st, why);
        assert_int_equal(s.kind, DESIRED_STEP_NONE);
        assert_int_equal(st[0], DESIRED_ENTRY_REFUSED);
        assert_string_equal(why[0], e[0].refusal);
        assert_int_equal(st[1], DESIRED_ENTRY_REFUSED);
        assert_non_null(strstr(why[1], "node's own"));
        assert_int_equal(st[2], DESIRED_ENTRY_REFUSED);
        assert_non_null(strstr(why[2], "no bundle"));
}

/* What the reconciler stopped to replace and can no longer replace (the entry refused since,
 * by a newer document or a check, or its app version to be fetched first) runs again: a
 * refused or pending entry never leaves its name without the workload it had. */
static void test_stopped_for_a_replacement_runs_again(void **state) {
        struct desired_entry_view e[] = {
                {.name = "det", .exists = true, .ours = true, .replacing = true, .bundle = "",
                 .refusal = "not enough memory: its memory_max is 1048576 MiB"},
        };
        enum desired_entry_state st[1];
        const char *why[1];
        struct desired_step s = plan(e, 1, NULL, 0, false, NULL, st, why);
        assert_int_equal(s.kind, DESIRED_STEP_RESTORE);
        assert_int_equal(s.index, 0);
        assert_false(s.extra);
        assert_int_equal(st[0], DESIRED_ENTRY_REFUSED);
        assert_string_equal(why[0], e[0].refusal);
        /* still stopping: waited for, then started again */
        e[0].busy = e[0].stopping = true;
        s = plan(e, 1, NULL, 0, false, NULL, st, why);
        assert_int_equal(s.kind, DESIRED_STEP_WAIT);
        /* its app version must come first (a long download): it runs meanwhile */
        e[0] = (struct desired_entry_view){.name = "det", .exists = true, .ours = true, .replacing = true,
                                           .app_missing = true, .bundle = "app-4"};
        s = plan(e, 1, NULL, 0, false, NULL, st, why);
        assert_int_equal(s.kind, DESIRED_STEP_RESTORE);
        assert_int_equal(st[0], DESIRED_ENTRY_PENDING);
        s = plan(e, 1, NULL, 0, true, "app-4", st, why);
        assert_int_equal(s.kind, DESIRED_STEP_RESTORE);
        /* the replacement can go ahead: submitted, not restored */
        e[0].app_missing = false;
        s = plan(e, 1, NULL, 0, false, NULL, st, why);
        assert_int_equal(s.kind, DESIRED_STEP_SUBMIT);
        /* the node's own now (an operator's spec took the name): never touched */
        e[0] = (struct desired_entry_view){.name = "det", .exists = true, .ours = false, .replacing = true,
                                           .bundle = ""};
        s = plan(e, 1, NULL, 0, false, NULL, st, why);
        assert_int_equal(s.kind, DESIRED_STEP_NONE);
        assert_int_equal(st[0], DESIRED_ENTRY_REFUSED);
}

static void test_order_is_the_documents(void **state) {
        struct desired_entry_view e[] = {
                {.name = "a", .exists = true, .ours = true, .same_spec = true},
                {.name = "b", .bundle = ""},
                {.name = "c", .bundle = ""},
        };
        enum desired_entry_state st[3];
        struct desired_step s = plan(e, 3, NULL, 0, false, NULL, st, NULL);
        assert_int_equal(s.kind, DESIRED_STEP_SUBMIT);
        assert_int_equal(s.index, 1);
        assert_int_equal(st[2], DESIRED_ENTRY_PENDING);
}

static void test_state_names(void **state) {
        assert_string_equal(desired_entry_state_to_string(DESIRED_ENTRY_DONE), "done");
        assert_string_equal(desired_entry_state_to_string(DESIRED_ENTRY_PENDING), "pending");
        assert_string_equal(desired_entry_state_to_string(DESIRED_ENTRY_REFUSED), "refused");
        assert_string_equal(desired_entry_state_to_string((enum desired_entry_state) 99), "?");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_workload_submitted),
                cmocka_unit_test(test_reached),
                cmocka_unit_test(test_extras_go_first),
                cmocka_unit_test(test_replacement_stops_first),
                cmocka_unit_test(test_missing_app_installed_one_at_a_time),
                cmocka_unit_test(test_refused_never_stops),
                cmocka_unit_test(test_stopped_for_a_replacement_runs_again),
                cmocka_unit_test(test_order_is_the_documents),
                cmocka_unit_test(test_state_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
