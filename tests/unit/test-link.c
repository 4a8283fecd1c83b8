/* Unit tests for the link's pure pieces: backoff with jitter, the contact plan, settable keys,
 * the bound on what an answer costs to parse. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "link.h"

#define S 1000000ULL

static void test_backoff(void **state) {
        /* the middle of the jitter range is the plain exponential */
        assert_int_equal(link_backoff_usec(1, 5 * S, 600 * S, 0.5), 5 * S);
        assert_int_equal(link_backoff_usec(2, 5 * S, 600 * S, 0.5), 10 * S);
        assert_int_equal(link_backoff_usec(4, 5 * S, 600 * S, 0.5), 40 * S);
        /* capped */
        assert_int_equal(link_backoff_usec(10, 5 * S, 600 * S, 0.5), 600 * S);
        assert_int_equal(link_backoff_usec(1000, 5 * S, 600 * S, 0.5), 600 * S);
        /* jitter spreads a fleet over [0.5, 1.5) of the delay */
        assert_int_equal(link_backoff_usec(3, 5 * S, 600 * S, 0.0), 10 * S);
        assert_true(link_backoff_usec(3, 5 * S, 600 * S, 0.999) < 30 * S);
        assert_true(link_backoff_usec(3, 5 * S, 600 * S, 0.999) > 29 * S);
        /* a bad random value does not break it */
        assert_int_equal(link_backoff_usec(2, 5 * S, 600 * S, 7.0), 10 * S);
        assert_int_equal(link_backoff_usec(2, 5 * S, 600 * S, -1.0), 10 * S);
        /* zero failures: the minimum */
        assert_int_equal(link_backoff_usec(0, 5 * S, 600 * S, 0.5), 5 * S);
}

static void test_plan(void **state) {
        int64_t next;
        /* no plan, an empty plan: always open */
        assert_true(link_plan_is_open(NULL, 1000, &next));
        assert_int_equal(next, -1);
        json_t *empty = json_pack("{s:[]}", "windows");
        assert_true(link_plan_is_open(empty, 1000, &next));
        json_decref(empty);
        json_t *plan = json_pack("{s:[{s:i,s:i,s:i},{s:i,s:i,s:i}]}", "windows",
                                 "start", 100, "end", 200, "rate_bps", 1000,
                                 "start", 500, "end", 600, "rate_bps", 1000);
        assert_false(link_plan_is_open(plan, 50, &next));
        assert_int_equal(next, 100);
        assert_true(link_plan_is_open(plan, 100, &next));  /* start is inside */
        assert_true(link_plan_is_open(plan, 199, &next));
        assert_false(link_plan_is_open(plan, 200, &next)); /* end is outside */
        assert_int_equal(next, 500);
        assert_true(link_plan_is_open(plan, 550, &next));
        assert_false(link_plan_is_open(plan, 700, &next));
        assert_int_equal(next, -1); /* nothing ahead: the caller probes rarely */
        json_decref(plan);
}

static void test_settable_keys(void **state) {
        assert_true(link_config_key_is_settable("link.poll_interval_sec"));
        assert_true(link_config_key_is_settable("health.report_interval_sec"));
        assert_true(link_config_key_is_settable("update.gate_sec"));
        /* never what decides what runs, what is trusted, or where state lives */
        assert_false(link_config_key_is_settable("link.url"));
        assert_false(link_config_key_is_settable("link.command_keyring_dir"));
        assert_false(link_config_key_is_settable("update.keyring_dir"));
        assert_false(link_config_key_is_settable("update.reboot_command"));
        assert_false(link_config_key_is_settable("state_dir"));
        assert_false(link_config_key_is_settable("paths.sysfs_root"));
        assert_false(link_config_key_is_settable("runtime.enabled"));
        assert_false(link_config_key_is_settable("link.poll_interval_sec.x"));
        assert_false(link_config_key_is_settable(""));
        assert_false(link_config_key_is_settable(NULL));
}

static uint64_t scan(const char *text) {
        struct link_json_scan s = {};
        link_json_scan_feed(&s, text, strlen(text));
        return s.values;
}

static void test_json_scan(void **state) {
        assert_int_equal(scan(""), 0);
        assert_int_equal(scan("7"), 0);
        assert_int_equal(scan("[]"), 1);
        assert_int_equal(scan("[1,2,3]"), 3);
        assert_int_equal(scan("{\"a\":{},\"b\":[1]}"), 4);
        /* nothing inside strings counts, escaped quotes included */
        assert_int_equal(scan("[\"[,{\"]"), 1);
        assert_int_equal(scan("[\"\\\",[\",2]"), 2);
        assert_int_equal(scan("[\"\\\\\",[1]"), 3); /* "\\" ends the string */
        /* chunks split anywhere, in an escape too, give the same count */
        const char *text = "{\"k\\\"[\":[1,{\"x\":\"\\\\,\"},[]],\"z\":0}";
        uint64_t whole = scan(text);
        assert_int_equal(whole, 7);
        for (size_t cut = 0; cut <= strlen(text); cut++) {
                struct link_json_scan s = {};
                link_json_scan_feed(&s, text, cut);
                link_json_scan_feed(&s, text + cut, strlen(text) - cut);
                assert_int_equal(s.values, whole);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_plan),
                cmocka_unit_test(test_settable_keys),
                cmocka_unit_test(test_json_scan),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
