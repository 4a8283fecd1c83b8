/* Unit tests for the thermal/power policy: temperature traces driven through it, table by table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "health/thermal-policy.h"

#define SEC 1000000ULL
#define NONE INT64_MIN

static struct health_policy_config config(void) {
        struct health_policy_config c = {
                .n_rules = 1,
                .min_dwell_usec = 10 * SEC,
                .throttle_best_effort_percent = 50,
                .throttle_normal_percent = 70,
                .power = {.enabled = true, .warm_pct = 50, .hot_pct = 30, .critical_pct = 15, .hyst_pct = 5},
        };
        strcpy(c.rules[0].match, "cpu-*");
        c.rules[0].limits = (struct thermal_limits){.warm_mc = 70000, .hot_mc = 80000, .critical_mc = 90000, .hyst_mc = 3000};
        return c;
}

static void test_hysteresis_helper(void **state) {
        /* rising */
        assert_int_equal(level_with_hysteresis(HEALTH_NOMINAL, 69999, 70000, 80000, 90000, 3000), HEALTH_NOMINAL);
        assert_int_equal(level_with_hysteresis(HEALTH_NOMINAL, 70000, 70000, 80000, 90000, 3000), HEALTH_WARM);
        assert_int_equal(level_with_hysteresis(HEALTH_NOMINAL, 95000, 70000, 80000, 90000, 3000), HEALTH_CRITICAL);
        /* falling needs the hysteresis */
        assert_int_equal(level_with_hysteresis(HEALTH_HOT, 78000, 70000, 80000, 90000, 3000), HEALTH_HOT);
        assert_int_equal(level_with_hysteresis(HEALTH_HOT, 76999, 70000, 80000, 90000, 3000), HEALTH_WARM);
        assert_int_equal(level_with_hysteresis(HEALTH_HOT, 60000, 70000, 80000, 90000, 3000), HEALTH_NOMINAL);
        /* negative temperatures are ordinary values */
        assert_int_equal(level_with_hysteresis(HEALTH_NOMINAL, -40000, 70000, 80000, 90000, 3000), HEALTH_NOMINAL);
}

struct step {
        uint64_t t_sec;
        int64_t cpu_mc;       /* NONE: the sensor gives no valid reading */
        bool on_battery;
        int capacity;
        enum health_level expect;
        bool expect_change;
};

static void run_trace(const struct step *steps, size_t n) {
        struct health_policy_config c = config();
        struct health_policy p;
        health_policy_init(&p, &c, 0);
        for (size_t i = 0; i < n; i++) {
                const struct step *s = &steps[i];
                struct zone_reading z[2] = {
                        {.name = "thermal_zone0", .type = "cpu-thermal", .temp_mc = s->cpu_mc, .valid = s->cpu_mc != NONE},
                        /* a zone no rule matches and with no trips: reported, never acted on */
                        {.name = "thermal_zone1", .type = "board", .temp_mc = 150000, .valid = true,
                         .trip_warm_mc = NONE, .trip_hot_mc = NONE, .trip_critical_mc = NONE, .trip_hyst_mc = NONE},
                };
                struct policy_input in = {.now_usec = s->t_sec * SEC, .zones = z, .n_zones = 2,
                                          .on_battery = s->on_battery, .battery_capacity = s->capacity};
                struct policy_decision d;
                health_policy_step(&p, &in, &d);
                if (p.level != s->expect || d.changed != s->expect_change)
                        fail_msg("step %zu (t=%llus, %lld mC, battery %d%%): level %s changed %d, want %s changed %d (%s)",
                                 i, (unsigned long long) s->t_sec, (long long) s->cpu_mc, s->capacity,
                                 health_level_to_string(p.level), d.changed, health_level_to_string(s->expect),
                                 s->expect_change, d.reason);
        }
}

static void test_heating_and_cooling_trace(void **state) {
        static const struct step trace[] = {
                {0, 50000, false, 100, HEALTH_NOMINAL, false},
                {1, 71000, false, 100, HEALTH_WARM, true},      /* rises at once */
                {2, 69000, false, 100, HEALTH_WARM, false},     /* inside hysteresis */
                {3, 85000, false, 100, HEALTH_HOT, true},
                {4, 91000, false, 100, HEALTH_CRITICAL, true},
                {5, 60000, false, 100, HEALTH_CRITICAL, false}, /* cool, but dwell not over */
                {13, 60000, false, 100, HEALTH_CRITICAL, false},
                {14, 60000, false, 100, HEALTH_HOT, true},      /* one step down after 10 s */
                {15, 60000, false, 100, HEALTH_HOT, false},     /* and dwell again */
                {24, 60000, false, 100, HEALTH_WARM, true},
                {34, 60000, false, 100, HEALTH_NOMINAL, true},
                {35, 60000, false, 100, HEALTH_NOMINAL, false},
        };
        run_trace(trace, sizeof(trace) / sizeof(trace[0]));
}

static void test_no_flapping_at_the_threshold(void **state) {
        /* Oscillating around 70 C by less than the hysteresis: one change, no flapping. */
        static const struct step trace[] = {
                {0, 70500, false, 100, HEALTH_WARM, true},
                {1, 69500, false, 100, HEALTH_WARM, false},
                {2, 70500, false, 100, HEALTH_WARM, false},
                {20, 69500, false, 100, HEALTH_WARM, false},
                {40, 68000, false, 100, HEALTH_WARM, false},
                {41, 66900, false, 100, HEALTH_NOMINAL, true},
                {42, 69900, false, 100, HEALTH_NOMINAL, false},
        };
        run_trace(trace, sizeof(trace) / sizeof(trace[0]));
}

static void test_failing_sensor_never_cools_the_board(void **state) {
        static const struct step trace[] = {
                {0, 85000, false, 100, HEALTH_HOT, true},
                {30, NONE, false, 100, HEALTH_HOT, false},
                {60, NONE, false, 100, HEALTH_HOT, false},
                {61, 50000, false, 100, HEALTH_WARM, true},
        };
        run_trace(trace, sizeof(trace) / sizeof(trace[0]));
}

static void test_eclipse_sheds_load_like_heat(void **state) {
        static const struct step trace[] = {
                {0, 50000, false, 40, HEALTH_NOMINAL, false},  /* sunlight: capacity does not matter */
                {1, 50000, true, 45, HEALTH_WARM, true},       /* eclipse, below 50% */
                {2, 50000, true, 29, HEALTH_HOT, true},
                {3, 50000, true, 14, HEALTH_CRITICAL, true},
                {20, 50000, true, 18, HEALTH_CRITICAL, false}, /* within the 5% hysteresis */
                {21, 50000, false, 18, HEALTH_HOT, true},      /* sunlight again: step down */
                {31, 50000, false, 19, HEALTH_WARM, true},
                {41, 50000, false, 20, HEALTH_NOMINAL, true},
                {42, 95000, false, 100, HEALTH_CRITICAL, true}, /* heat and power combine: the worst wins */
        };
        run_trace(trace, sizeof(trace) / sizeof(trace[0]));
}

static void test_actions_per_level(void **state) {
        struct health_policy_config c = config();
        struct health_actions a = health_level_actions(&c, HEALTH_NOMINAL);
        assert_int_equal(a.best_effort_cpu_percent, 0);
        assert_false(a.best_effort_frozen || a.non_critical_stopped || a.best_effort_admission_closed);
        a = health_level_actions(&c, HEALTH_WARM);
        assert_int_equal(a.best_effort_cpu_percent, 50);
        assert_true(a.best_effort_admission_closed);
        assert_false(a.best_effort_frozen);
        assert_int_equal(a.normal_cpu_percent, 0);
        a = health_level_actions(&c, HEALTH_HOT);
        assert_true(a.best_effort_frozen);
        assert_int_equal(a.normal_cpu_percent, 70);
        assert_false(a.non_critical_stopped);
        a = health_level_actions(&c, HEALTH_CRITICAL);
        assert_true(a.non_critical_stopped);
        assert_true(a.best_effort_frozen);
}

static void test_trip_points_when_no_rule(void **state) {
        struct health_policy_config c = config();
        c.n_rules = 0;
        c.use_trip_points = true;
        struct health_policy p;
        health_policy_init(&p, &c, 0);
        struct zone_reading z = {.name = "thermal_zone3", .type = "soc", .temp_mc = 96000, .valid = true,
                                 .trip_warm_mc = 75000, .trip_hot_mc = 85000, .trip_critical_mc = 95000,
                                 .trip_hyst_mc = 2000};
        struct policy_input in = {.now_usec = 0, .zones = &z, .n_zones = 1};
        struct policy_decision d;
        health_policy_step(&p, &in, &d);
        assert_int_equal(p.level, HEALTH_CRITICAL);
        assert_true(d.changed);
        assert_non_null(strstr(d.reason, "nominal -> critical: zone thermal_zone3 (soc) at 96.0 C"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hysteresis_helper),
                cmocka_unit_test(test_heating_and_cooling_trace),
                cmocka_unit_test(test_no_flapping_at_the_threshold),
                cmocka_unit_test(test_failing_sensor_never_cools_the_board),
                cmocka_unit_test(test_eclipse_sheds_load_like_heat),
                cmocka_unit_test(test_actions_per_level),
                cmocka_unit_test(test_trip_points_when_no_rule),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
