/* Unit tests: the event loop's cost accounting (agent/loop.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/loop.h"

static void test_stats_keep_the_slowest(void **state) {
        (void) state;
        struct loop_stats s = {0};
        assert_false(loop_stats_add(&s, 1000, 5000));
        assert_false(loop_stats_add(&s, 40000, 90000));
        assert_false(loop_stats_add(&s, 2000, 300000)); /* a slow wall clock alone is load */
        assert_int_equal(s.iterations, 3);
        assert_int_equal(s.slowest_cpu_usec, 40000);
        assert_int_equal(s.slowest_usec, 300000);
        assert_int_equal(s.held_over, 0);
}

static void test_stats_count_holds_over_100ms_of_cpu(void **state) {
        (void) state;
        struct loop_stats s = {0};
        assert_false(loop_stats_add(&s, LOOP_HOLD_WARN_USEC, LOOP_HOLD_WARN_USEC));
        assert_true(loop_stats_add(&s, LOOP_HOLD_WARN_USEC + 1, LOOP_HOLD_WARN_USEC + 1));
        assert_true(loop_stats_add(&s, 250000, 900000));
        assert_int_equal(s.held_over, 2);
        json_t *j = loop_stats_json(&s);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "iterations")), 3);
        assert_int_equal(json_integer_value(json_object_get(j, "held_over_100ms")), 2);
        assert_true(json_real_value(json_object_get(j, "slowest_cpu_ms")) == 250.0);
        json_decref(j);
}

/* A real loop: a deferred source that burns CPU is measured, then exit returns its code. */
static int burn(sd_event_source *s, void *userdata) {
        (void) s;
        volatile uint64_t x = 0;
        for (uint64_t i = 0; i < 30ULL * 1000 * 1000; i++)
                x += i;
        (void) x;
        return sd_event_exit(sd_event_source_get_event(s), *(int *) userdata);
}

static void test_loop_run_measures_a_dispatch(void **state) {
        (void) state;
        sd_event *e = NULL;
        assert_int_equal(sd_event_new(&e), 0);
        int code = 7;
        sd_event_source *src = NULL;
        assert_int_equal(sd_event_add_defer(e, &src, burn, &code), 0);
        struct loop_stats s = {0};
        assert_int_equal(loop_run(e, &s), 7);
        assert_true(s.iterations >= 1);
        assert_true(s.slowest_cpu_usec > 0);
        assert_true(s.slowest_usec >= s.slowest_cpu_usec / 2);
        sd_event_source_unref(src);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stats_keep_the_slowest),
                cmocka_unit_test(test_stats_count_holds_over_100ms_of_cpu),
                cmocka_unit_test(test_loop_run_measures_a_dispatch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
