/* Trusted time: tests/unit for agent/trusted-time.c (the pure part and the agent's instance). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/trusted-time.h"
#include "lib/statefile.h"

#define SEC 1000000ULL
#define DAY 86400
#define BUILD 1790000000 /* the agent's build time, say */
#define AHEAD (30 * DAY)

static void test_floor_starts_at_build_time_and_runs_with_the_monotonic_clock(void **state) {
        (void) state;
        struct trusted_time t;
        tt_init(&t, BUILD, 0, 100 * SEC, AHEAD);
        assert_int_equal(tt_floor(&t, 100 * SEC), BUILD);
        assert_int_equal(tt_floor(&t, 160 * SEC), BUILD + 60);
        /* a floor from disk above the build time wins; one below it does not */
        tt_init(&t, BUILD, BUILD + 5000, 0, AHEAD);
        assert_int_equal(tt_floor(&t, 0), BUILD + 5000);
        tt_init(&t, BUILD, BUILD - 5000, 0, AHEAD);
        assert_int_equal(tt_floor(&t, 0), BUILD);
}

static void test_rtc_at_1970_gives_the_floor(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, 0, 0, AHEAD);
        assert_int_equal(tt_now(&t, 86400, 10 * SEC, &s), BUILD + 10);
        assert_int_equal(s, TRUSTED_TIME_FLOOR);
}

static void test_rtc_years_ahead_gives_the_floor(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, 0, 0, AHEAD);
        assert_int_equal(tt_now(&t, BUILD + 3 * 365 * DAY, 0, &s), BUILD);
        assert_int_equal(s, TRUSTED_TIME_FLOOR);
        /* just inside max_rtc_ahead: a node out of contact for weeks believes its clock */
        assert_int_equal(tt_now(&t, BUILD + AHEAD, 0, &s), BUILD + AHEAD);
        assert_int_equal(s, TRUSTED_TIME_RTC);
        assert_int_equal(tt_now(&t, BUILD + AHEAD + 1, 0, &s), BUILD);
        assert_int_equal(s, TRUSTED_TIME_FLOOR);
}

static void test_a_plausible_rtc_is_believed(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, 0, 0, AHEAD);
        assert_int_equal(tt_now(&t, BUILD + 3600, 0, &s), BUILD + 3600);
        assert_int_equal(s, TRUSTED_TIME_RTC);
        /* the RTC never raises the floor */
        assert_int_equal(tt_floor(&t, 0), BUILD);
}

static void test_the_controller_tells_the_time(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, 0, 0, AHEAD);
        /* the RTC is at 1970; the controller says BUILD + 1 year at mono 50 s */
        int64_t told = BUILD + 365 * DAY;
        assert_int_equal(tt_told(&t, told, 86400, 50 * SEC), told - 86400);
        assert_int_equal(tt_now(&t, 86400 + 30, 80 * SEC, &s), told + 30);
        assert_int_equal(s, TRUSTED_TIME_CONTROLLER);
        /* and raised the floor, which runs on from there */
        assert_int_equal(tt_floor(&t, 80 * SEC), told + 30);
        /* the RTC three years ahead changes nothing once told */
        assert_int_equal(tt_now(&t, told + 3 * 365 * DAY, 80 * SEC, &s), told + 30);
        assert_int_equal(s, TRUSTED_TIME_CONTROLLER);
}

/* A good board: its RTC agrees with the controller (which tells whole seconds), so its
 * finer timestamps stay as they are; they are the controller's again once they drift apart. */
static void test_an_rtc_that_agrees_is_kept(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, 0, 0, AHEAD);
        int64_t told = BUILD + 1000;
        tt_told(&t, told, told, 0);
        int64_t rtc = told * (int64_t) SEC + 700000; /* 0.7 s into the controller's second */
        assert_int_equal(tt_now_usec(&t, rtc, 0, &s), rtc);
        assert_int_equal(s, TRUSTED_TIME_CONTROLLER);
        assert_int_equal(tt_now_usec(&t, rtc + 5 * (int64_t) SEC, 5 * SEC, &s), rtc + 5 * (int64_t) SEC);
        /* the RTC drifted 3 s off: the controller's time, carried on by the monotonic clock */
        assert_int_equal(tt_now_usec(&t, rtc + 8 * (int64_t) SEC, 5 * SEC, &s), (told + 5) * (int64_t) SEC);
        assert_int_equal(tt_now(&t, told + 8, 5 * SEC, &s), told + 5);
}

static void test_a_controller_behind_the_floor_never_lowers_it(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, BUILD + 1000, 0, AHEAD);
        tt_told(&t, BUILD + 10, BUILD + 10, 0);
        assert_int_equal(tt_floor(&t, 0), BUILD + 1000);
        /* now is not below the floor either */
        assert_int_equal(tt_now(&t, BUILD, 0, &s), BUILD + 1000);
        assert_int_equal(s, TRUSTED_TIME_CONTROLLER);
        /* nonsense is ignored */
        assert_int_equal(tt_told(&t, 0, BUILD, 0), 0);
        assert_int_equal(tt_told(&t, -5, BUILD, 0), 0);
        assert_int_equal(tt_floor(&t, 0), BUILD + 1000);
}

/* A controller key holder pushed the floor a year ahead; a trust document's reset takes it
 * (and the controller's time) down, and only down. */
static void test_a_trust_document_resets_a_floor_pushed_ahead(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, BUILD, 0, AHEAD);
        tt_told(&t, BUILD + 365 * DAY, BUILD, 0);
        assert_int_equal(tt_floor(&t, 0), BUILD + 365 * DAY);
        assert_false(tt_reset_floor(&t, BUILD + 400 * DAY, 0)); /* above it: nothing to lower */
        assert_int_equal(tt_floor(&t, 0), BUILD + 365 * DAY);
        assert_true(tt_reset_floor(&t, BUILD + DAY, 5 * SEC));
        assert_int_equal(tt_floor(&t, 5 * SEC), BUILD + DAY);
        assert_int_equal(tt_floor(&t, 65 * SEC), BUILD + DAY + 60); /* it runs on */
        /* the controller's pushed time is forgotten: the RTC (plausible again) is now */
        assert_int_equal(tt_now(&t, BUILD + DAY + 100, 65 * SEC, &s), BUILD + DAY + 100);
        assert_int_equal(s, TRUSTED_TIME_RTC);
        assert_true(tt_should_save(&t, 65 * SEC));
        assert_false(tt_reset_floor(&t, 0, 65 * SEC));
}

static void test_saves_once_per_step(void **state) {
        (void) state;
        struct trusted_time t;
        tt_init(&t, BUILD, BUILD, 0, AHEAD);
        assert_false(tt_should_save(&t, 0));
        assert_false(tt_should_save(&t, (TRUSTED_TIME_SAVE_STEP_SEC - 1) * SEC));
        assert_true(tt_should_save(&t, TRUSTED_TIME_SAVE_STEP_SEC * SEC));
        tt_told(&t, BUILD + 2 * TRUSTED_TIME_SAVE_STEP_SEC, 0, 0);
        assert_true(tt_should_save(&t, 0));
}

/* A time past the end of year 9999 (what no certificate can say) is nonsense: ignored, and
 * the floor's arithmetic never overflows (it went negative: every certificate "not yet
 * valid", and a floor of INT64_MAX kept in state_dir/time). */
static void test_a_time_past_year_9999_is_ignored(void **state) {
        (void) state;
        struct trusted_time t;
        enum trusted_time_source s;
        tt_init(&t, BUILD, 0, 0, AHEAD);
        assert_int_equal(tt_told(&t, INT64_MAX, BUILD, 0), 0);
        assert_int_equal(tt_told(&t, TRUSTED_TIME_MAX_SEC + 1, BUILD, 0), 0);
        assert_int_equal(tt_floor(&t, 10 * SEC), BUILD + 10);
        assert_int_equal(tt_now(&t, BUILD + 10, 10 * SEC, &s), BUILD + 10);
        assert_int_equal(s, TRUSTED_TIME_RTC);
        /* the last second of 9999 is a time (a floor that high can only be told) */
        assert_int_equal(tt_told(&t, TRUSTED_TIME_MAX_SEC, BUILD, 0), TRUSTED_TIME_MAX_SEC - BUILD);
        assert_int_equal(tt_floor(&t, 100ULL * 365 * DAY * SEC), TRUSTED_TIME_MAX_SEC);
        assert_int_equal(tt_now(&t, BUILD, 100ULL * 365 * DAY * SEC, &s), TRUSTED_TIME_MAX_SEC);
        /* a loaded floor past it is ignored */
        tt_init(&t, BUILD, INT64_MAX, 0, AHEAD);
        assert_int_equal(tt_floor(&t, 10 * SEC), BUILD + 10);
}

/* The agent's instance: a state_dir/time that says INT64_MAX is not believed. */
static void test_a_huge_floor_on_disk_is_ignored(void **state) {
        (void) state;
        char dir[] = "/tmp/test-trusted-time.XXXXXX";
        assert_non_null(mkdtemp(dir));
        json_t *o = json_pack("{s:I}", "floor", (json_int_t) INT64_MAX);
        assert_int_equal(statefile_save_json(dir, TRUSTED_TIME_FILE, o), 0);
        json_decref(o);
        assert_int_equal(trusted_clock_init(dir, AHEAD), 0);
        enum trusted_time_source s;
        int64_t now = trusted_clock_now(&s);
        assert_true(now >= trusted_clock_build_epoch() && now <= TRUSTED_TIME_MAX_SEC);
        /* the controller says INT64_MAX: ignored too */
        trusted_clock_told(INT64_MAX, 0);
        now = trusted_clock_now(&s);
        assert_true(now >= trusted_clock_build_epoch() && now <= TRUSTED_TIME_MAX_SEC);
        assert_int_not_equal(s, TRUSTED_TIME_CONTROLLER);
        char cmd[sizeof(dir) + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

/* The agent's instance: a controller's time past the notAfter of its own certificate is not
 * taken (it would be a floor at which that certificate is expired, for good). */
static void test_a_time_past_the_controller_certificate_is_ignored(void **state) {
        (void) state;
        char dir[] = "/tmp/test-trusted-time.XXXXXX";
        assert_non_null(mkdtemp(dir));
        assert_int_equal(trusted_clock_init(dir, AHEAD), 0);
        int64_t build = trusted_clock_build_epoch(), far = build + 10 * 365 * DAY;
        enum trusted_time_source s;
        trusted_clock_told(far, far - 1);
        assert_true(trusted_clock_now(&s) < far);
        assert_int_not_equal(s, TRUSTED_TIME_CONTROLLER);
        /* up to the last second of the certificate it is taken */
        trusted_clock_told(far, far);
        assert_true(trusted_clock_now(&s) >= far);
        assert_int_equal(s, TRUSTED_TIME_CONTROLLER);
        char cmd[sizeof(dir) + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

/* The agent's instance keeps its floor in state_dir/time across restarts. */
static void test_the_floor_survives_a_restart(void **state) {
        (void) state;
        char dir[] = "/tmp/test-trusted-time.XXXXXX";
        assert_non_null(mkdtemp(dir));
        assert_int_equal(trusted_clock_init(dir, AHEAD), 0);
        int64_t far = trusted_clock_build_epoch() + 10 * 365 * DAY;
        trusted_clock_told(far, 0); /* more than a save step above the build time: saved now */
        enum trusted_time_source s;
        assert_true(trusted_clock_now(&s) >= far);
        assert_int_equal(s, TRUSTED_TIME_CONTROLLER);
        /* a restart: no controller yet, the RTC (today) is far below the floor */
        assert_int_equal(trusted_clock_init(dir, AHEAD), 0);
        int64_t now = trusted_clock_now(&s);
        assert_int_equal(s, TRUSTED_TIME_FLOOR);
        assert_true(now >= far && now < far + 60);
        /* a corrupt file: the build time, and a warning, never a failure */
        char path[sizeof(dir) + 32];
        snprintf(path, sizeof(path), "%s/%s", dir, TRUSTED_TIME_FILE);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("orbit-state 1 3 00\nxyz", f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/%s.prev", dir, TRUSTED_TIME_FILE);
        (void) unlink(path);
        assert_int_equal(trusted_clock_init(dir, AHEAD), 0);
        now = trusted_clock_now(&s);
        assert_true(now < far);
        char cmd[sizeof(dir) + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_floor_starts_at_build_time_and_runs_with_the_monotonic_clock),
                cmocka_unit_test(test_rtc_at_1970_gives_the_floor),
                cmocka_unit_test(test_rtc_years_ahead_gives_the_floor),
                cmocka_unit_test(test_a_plausible_rtc_is_believed),
                cmocka_unit_test(test_the_controller_tells_the_time),
                cmocka_unit_test(test_an_rtc_that_agrees_is_kept),
                cmocka_unit_test(test_a_controller_behind_the_floor_never_lowers_it),
                cmocka_unit_test(test_saves_once_per_step),
                cmocka_unit_test(test_a_trust_document_resets_a_floor_pushed_ahead),
                cmocka_unit_test(test_the_floor_survives_a_restart),
                cmocka_unit_test(test_a_time_past_year_9999_is_ignored),
                cmocka_unit_test(test_a_huge_floor_on_disk_is_ignored),
                cmocka_unit_test(test_a_time_past_the_controller_certificate_is_ignored),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
