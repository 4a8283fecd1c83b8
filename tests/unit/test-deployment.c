/* Deployments (#19 items 2 and 4): the request, placement by headroom, and a member's
 * state from its node's desired.state report. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/deployment.h"
#include "lib/macro.h"

#define SPEC "\"spec\": {\"name\": \"det\", \"exec\": [\"/app/bin/serve\"], \"app\": {\"name\": \"det\", \"version\": \"1.0.0\"}}"

static void expect_bad(const char *text, const char *where) {
        struct deployment_options o;
        char *msg = NULL;
        assert_int_equal(deployment_request_parse(text, strlen(text), &o, &msg), -EINVAL);
        assert_non_null(msg);
        if (!strstr(msg, where))
                fail_msg("\"%s\" not in \"%s\"", where, msg);
        assert_null(o.spec);
        free(msg);
}

static void test_parse(void **state) {
        (void) state;
        const char *text = "{\"id\": \"det-1\", \"bundle_id\": \"det-1.0\", " SPEC ", \"count\": 3, "
                           "\"constraints\": {\"min_free_mib\": 512, \"max_level\": \"warm\", \"min_battery_percent\": 40}, "
                           "\"stages\": \"10,100\", \"max_failures\": \"1\", \"auto_revert\": true}";
        struct deployment_options o;
        char *msg = NULL;
        assert_int_equal(deployment_request_parse(text, strlen(text), &o, &msg), 0);
        assert_null(msg);
        assert_string_equal(o.strategy.id, "det-1");
        assert_string_equal(o.strategy.bundle_id, "det-1.0");
        assert_string_equal(o.workload, "det");
        assert_int_equal(o.count, 3);
        assert_int_equal(o.constraints.min_free_mib, 512);
        assert_int_equal(o.constraints.max_level, 1);
        assert_int_equal(o.constraints.min_battery_percent, 40);
        assert_int_equal(o.strategy.n_stages, 2);
        assert_true(o.strategy.auto_revert);
        json_t *j = deployment_options_to_json(&o);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "constraints"), "max_level")), "warm");
        assert_int_equal(json_integer_value(json_object_get(j, "count")), 3);
        json_decref(j);
        deployment_options_done(&o);

        /* defaults: every node, no constraint */
        const char *plain = "{\"bundle_id\": \"b\", " SPEC "}";
        assert_int_equal(deployment_request_parse(plain, strlen(plain), &o, NULL), 0);
        assert_int_equal(o.count, 0);
        assert_int_equal(o.constraints.max_level, -1);
        assert_string_equal(o.strategy.target, "all");
        deployment_options_done(&o);

        expect_bad("[]", "expected an object");
        expect_bad("{\"bundle_id\": \"b\"}", "spec");
        expect_bad("{\"bundle_id\": \"b\", \"spec\": {\"name\": \"det\"}}", "spec.app");
        expect_bad("{\"bundle_id\": \"b\", \"spec\": {\"name\": \"a.b\", \"app\": {\"version\": \"1\"}}}", "spec");
        expect_bad("{\"bundle_id\": \"b\", " SPEC ", \"count\": -1}", "count");
        expect_bad("{\"bundle_id\": \"b\", " SPEC ", \"constraints\": {\"max_level\": \"critical\"}}", "max_level");
        expect_bad("{\"bundle_id\": \"b\", " SPEC ", \"constraints\": {\"cpu\": 1}}", "unknown key");
        /* the strategy's own checks, said of a deployment */
        expect_bad("{\"bundle_id\": \"b\", " SPEC ", \"stages\": \"50,10\"}", "stages");
        expect_bad("{" SPEC "}", "bundle_id");
        /* whom its usage is billed to (#19 item 5): a name as usage records carry them */
        expect_bad("{\"bundle_id\": \"b\", \"spec\": {\"name\": \"det\", \"tenant\": \"a b\", "
                   "\"app\": {\"version\": \"1\"}}}",
                   "spec.tenant: expected a tenant name");
        expect_bad("{\"bundle_id\": \"b\", \"spec\": {\"name\": \"det\", \"tenant\": 7, "
                   "\"app\": {\"version\": \"1\"}}}",
                   "spec.tenant");
        const char *tenant = "{\"bundle_id\": \"b\", \"spec\": {\"name\": \"det\", \"tenant\": \"acme\", "
                             "\"app\": {\"version\": \"1\"}}}";
        assert_int_equal(deployment_request_parse(tenant, strlen(tenant), &o, NULL), 0);
        deployment_options_done(&o);
}

static void test_place(void **state) {
        (void) state;
        struct deployment_candidate c[] = {
                {.node = "hot-1", .known = true, .free_mib = 4000, .level = 2, .battery_percent = 90},
                {.node = "cool-small", .known = true, .free_mib = 200, .level = 0, .battery_percent = 90},
                {.node = "cool-big", .known = true, .free_mib = 3000, .level = 0, .battery_percent = 50},
                {.node = "warm", .known = true, .free_mib = 5000, .level = 1, .battery_percent = 95},
                {.node = "silent", .known = false, .level = 3, .battery_percent = -1},
                {.node = "member", .known = true, .free_mib = 100, .level = 1, .battery_percent = 20, .has_it = true},
        };
        bool chosen[ELEMENTSOF(c)];
        char why[256];
        struct deployment_constraints none = {.max_level = -1};
        /* every node: all of them, even the silent one, without constraints */
        assert_int_equal(deployment_place("d", c, ELEMENTSOF(c), 0, &none, chosen, why, sizeof(why)), 6);
        /* two, by headroom: the member first, then the coolest with the most memory */
        assert_int_equal(deployment_place("d", c, ELEMENTSOF(c), 2, &none, chosen, why, sizeof(why)), 2);
        assert_true(chosen[5]);
        assert_true(chosen[2]);
        assert_false(chosen[1]);
        /* constraints: nominal and 1 GiB free; the silent node has no report: out */
        struct deployment_constraints k = {.min_free_mib = 1024, .max_level = 0};
        assert_int_equal(deployment_place("d", c, ELEMENTSOF(c), 0, &k, chosen, why, sizeof(why)), 1);
        assert_true(chosen[2]);
        assert_non_null(strstr(why, "hot-1: thermal level hot"));
        struct deployment_constraints b = {.min_battery_percent = 60, .max_level = -1};
        assert_int_equal(deployment_place("d", c, ELEMENTSOF(c), 0, &b, chosen, why, sizeof(why)), 3);
        assert_false(chosen[2]);
        /* none qualifies: the first reason */
        struct deployment_constraints huge = {.min_free_mib = 1 << 20, .max_level = -1};
        assert_int_equal(deployment_place("d", c, ELEMENTSOF(c), 0, &huge, chosen, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "MiB free"));
        /* equal headroom: the deployment's own order, the same on every run */
        struct deployment_candidate same[] = {
                {.node = "a", .known = true, .free_mib = 1, .battery_percent = -1},
                {.node = "b", .known = true, .free_mib = 1, .battery_percent = -1},
                {.node = "c", .known = true, .free_mib = 1, .battery_percent = -1},
        };
        bool x[3], y[3];
        assert_int_equal(deployment_place("d", same, 3, 1, &none, x, NULL, 0), 1);
        assert_int_equal(deployment_place("d", same, 3, 1, &none, y, NULL, 0), 1);
        assert_memory_equal(x, y, sizeof(x));
}

static enum rollout_node_state from(enum rollout_node_state cur, int64_t told, const char *report, char *why) {
        json_t *r = report ? json_loads(report, 0, NULL) : NULL;
        enum rollout_node_state s = deployment_member_from_report(cur, told, r, "det", why, 256);
        json_decref(r);
        return s;
}

static void test_member(void **state) {
        (void) state;
        char why[256] = "";
        /* not told: nothing a report says changes it */
        assert_int_equal(from(ROLLOUT_NODE_PENDING, 0, "{\"version\": 9}", why), ROLLOUT_NODE_PENDING);
        /* an older version's report: still told */
        assert_int_equal(from(ROLLOUT_NODE_TOLD, 5, "{\"version\": 4, \"workloads\": []}", why), ROLLOUT_NODE_TOLD);
        assert_int_equal(from(ROLLOUT_NODE_TOLD, 5, NULL, why), ROLLOUT_NODE_TOLD);
        const char *pending = "{\"version\": 5, \"workloads\": [{\"name\": \"det\", \"state\": \"pending\"}]}";
        assert_int_equal(from(ROLLOUT_NODE_TOLD, 5, pending, why), ROLLOUT_NODE_INSTALLING);
        const char *unknown = "{\"version\": 5, \"workloads\": [{\"name\": \"det\", \"state\": \"done\", \"workload\": "
                              "\"running\", \"health\": \"unknown\"}]}";
        assert_int_equal(from(ROLLOUT_NODE_INSTALLING, 5, unknown, why), ROLLOUT_NODE_INSTALLING);
        const char *good = "{\"version\": 6, \"workloads\": [{\"name\": \"x\", \"state\": \"refused\"}, {\"name\": "
                           "\"det\", \"state\": \"done\", \"workload\": \"running\", \"health\": \"healthy\"}]}";
        assert_int_equal(from(ROLLOUT_NODE_INSTALLING, 5, good, why), ROLLOUT_NODE_COMMITTED);
        const char *sick = "{\"version\": 5, \"workloads\": [{\"name\": \"det\", \"state\": \"done\", \"workload\": "
                           "\"running\", \"health\": \"unhealthy\"}]}";
        assert_int_equal(from(ROLLOUT_NODE_COMMITTED, 5, sick, why), ROLLOUT_NODE_FAILED);
        assert_non_null(strstr(why, "health probe"));
        const char *refused = "{\"version\": 5, \"workloads\": [{\"name\": \"det\", \"state\": \"refused\", \"reason\": "
                              "\"not enough memory\"}]}";
        assert_int_equal(from(ROLLOUT_NODE_TOLD, 5, refused, why), ROLLOUT_NODE_FAILED);
        assert_non_null(strstr(why, "not enough memory"));
        const char *crashed = "{\"version\": 5, \"workloads\": [{\"name\": \"det\", \"state\": \"done\", \"workload\": "
                              "\"failed\"}]}";
        assert_int_equal(from(ROLLOUT_NODE_INSTALLING, 5, crashed, why), ROLLOUT_NODE_FAILED);
        const char *dropped = "{\"version\": 7, \"workloads\": []}";
        assert_int_equal(from(ROLLOUT_NODE_COMMITTED, 5, dropped, why), ROLLOUT_NODE_FAILED);
        assert_non_null(strstr(why, "does not list det"));
        /* failed, rolled back: final */
        assert_int_equal(from(ROLLOUT_NODE_FAILED, 5, good, why), ROLLOUT_NODE_FAILED);
        assert_int_equal(from(ROLLOUT_NODE_ROLLED_BACK, 5, good, why), ROLLOUT_NODE_ROLLED_BACK);
        assert_int_equal(deployment_level_from_string("warm"), 1);
        assert_int_equal(deployment_level_from_string("boiling"), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_place),
                cmocka_unit_test(test_member),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
