/* Unit tests for the action table's pure parts: lookup, who may ask, parameter checks, the
 * errno -> wire code mapping, and the keys config.set may change. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/actions.h"
#include "agent/agent.h"
#include "proto/command.h"
#include "agent/control-proto.h"
#include "lib/macro.h"

/* Check params (JSON text) for action name from a source; the message is returned. */
static int check(const char *name, enum action_source from, const char *params_text, char **ret_message) {
        const struct action *ac = action_find(name);
        assert_non_null(ac);
        json_t *params = json_loads(params_text, 0, NULL);
        assert_non_null(params);
        *ret_message = NULL;
        int r = action_params_check(ac, from, params, ret_message);
        json_decref(params);
        return r;
}

static void expect_ok(const char *name, enum action_source from, const char *params_text) {
        char *m;
        int r = check(name, from, params_text, &m);
        if (r != 0)
                fail_msg("%s %s: %s", name, params_text, m ? m : "(no message)");
        assert_null(m);
}

/* Refused with -EINVAL and a message that contains want. */
static void expect_refused(const char *name, enum action_source from, const char *params_text, const char *want) {
        char *m;
        int r = check(name, from, params_text, &m);
        assert_int_equal(r, -EINVAL);
        assert_non_null(m);
        if (!strstr(m, want))
                fail_msg("%s %s: message \"%s\" does not say \"%s\"", name, params_text, m, want);
        free(m);
}

static void test_lookup(void **state) {
        const struct action *ac = action_find("workload.start");
        assert_non_null(ac);
        assert_string_equal(ac->name, "workload.start");
        assert_non_null(ac->fn);
        assert_null(action_find("workload.frobnicate"));
        assert_null(action_find(""));
        assert_null(action_find(NULL));
        assert_null(action_find("Workload.start"));

        /* every name once, every entry with a handler and at least one source */
        size_t n = 0;
        for (const struct action *a = action_table(); a->name; a++, n++) {
                assert_non_null(a->fn);
                assert_true(a->sources & (ACTION_FROM_CONTROL | ACTION_FROM_LINK));
                assert_ptr_equal(action_find(a->name), a);
                assert_true(strlen(a->name) <= CONTROL_METHOD_MAX);
        }
        assert_true(n >= 20);
}

static void test_sources(void **state) {
        /* asked by both: one handler */
        const char *both[] = {"workload.start", "workload.stop", "workload.restart", "update.install",
                              "update.mark-good", "update.rollback"};
        for (size_t i = 0; i < ELEMENTSOF(both); i++) {
                assert_true(action_allowed(action_find(both[i]), ACTION_FROM_CONTROL));
                assert_true(action_allowed(action_find(both[i]), ACTION_FROM_LINK));
        }
        /* the controller may not read the node's logs nor pull the thermal levers */
        const char *control_only[] = {"ping", "status", "workload.logs", "runtime.class", "update.mark-bad",
                                      "update.scrub", "update.status", "events", "link"};
        for (size_t i = 0; i < ELEMENTSOF(control_only); i++) {
                assert_true(action_allowed(action_find(control_only[i]), ACTION_FROM_CONTROL));
                assert_false(action_allowed(action_find(control_only[i]), ACTION_FROM_LINK));
        }
        /* config.set, reboot and status.send come from the ground only */
        const char *link_only[] = {"config.set", "reboot", "status.send"};
        for (size_t i = 0; i < ELEMENTSOF(link_only); i++) {
                assert_false(action_allowed(action_find(link_only[i]), ACTION_FROM_CONTROL));
                assert_true(action_allowed(action_find(link_only[i]), ACTION_FROM_LINK));
        }
        assert_false(action_allowed(NULL, ACTION_FROM_CONTROL));
}

/* The node and the controller (proto/command.c) agree on what the link can carry. */
static void test_link_actions_match_commands(void **state) {
        size_t n = 0;
        for (const struct action *a = action_table(); a->name; a++) {
                assert_int_equal(command_action_is_known(a->name), !!(a->sources & ACTION_FROM_LINK));
                n += !!(a->sources & ACTION_FROM_LINK);
        }
        assert_int_equal(n, 9);
        /* what the controller's check takes, the node's takes too */
        struct {
                const char *action, *params;
        } cases[] = {
                {"workload.start", "{\"name\": \"cam\"}"},
                {"workload.stop", "{\"name\": \"cam-2_x\"}"},
                {"update.install", "{\"bundle_id\": \"v1.2.obundle\"}"},
                {"update.install", "{\"url\": \"https://ground.example/b.obundle\"}"},
                {"update.mark-good", "{}"},
                {"config.set", "{\"key\": \"link.poll_interval_sec\", \"value\": 30}"},
                {"status.send", "{}"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *p = json_loads(cases[i].params, 0, NULL);
                char *why = NULL;
                assert_int_equal(command_params_check(cases[i].action, p, &why), 0);
                json_decref(p);
                expect_ok(cases[i].action, ACTION_FROM_LINK, cases[i].params);
        }
}

static void test_params(void **state) {
        expect_ok("status", ACTION_FROM_CONTROL, "{}");
        expect_refused("status", ACTION_FROM_CONTROL, "{\"verbose\": true}", "status takes no parameters");
        expect_refused("update.scrub", ACTION_FROM_CONTROL, "{\"now\": 1}", "update.scrub takes no parameters");

        expect_ok("workload.stop", ACTION_FROM_CONTROL, "{\"name\": \"ticker\"}");
        expect_refused("workload.stop", ACTION_FROM_CONTROL, "{}", "workload.stop: missing parameter \"name\"");
        expect_refused("workload.stop", ACTION_FROM_CONTROL, "{\"name\": \"../etc\"}",
                       "workload.stop: \"name\" must be a workload name");
        expect_refused("workload.stop", ACTION_FROM_CONTROL, "{\"name\": 7}", "\"name\" must be a workload name");
        expect_refused("workload.stop", ACTION_FROM_CONTROL, "{\"name\": \"a\", \"force\": true}",
                       "workload.stop: unknown parameter \"force\"");

        /* a spec text from the local operator; never from the ground */
        expect_ok("workload.start", ACTION_FROM_CONTROL, "{\"spec_text\": \"{}\", \"source\": \"/x.json\"}");
        expect_refused("workload.start", ACTION_FROM_LINK, "{\"spec_text\": \"{}\"}",
                       "unknown parameter \"spec_text\" from this source");

        /* a local bundle path from the operator, an id or URL from the controller */
        expect_ok("update.install", ACTION_FROM_CONTROL, "{\"bundle\": \"/var/tmp/v2.obundle\"}");
        expect_refused("update.install", ACTION_FROM_CONTROL, "{\"bundle\": \"v2.obundle\"}",
                       "\"bundle\" must be an absolute path");
        expect_refused("update.install", ACTION_FROM_CONTROL, "{\"bundle_id\": \"v2\"}",
                       "unknown parameter \"bundle_id\" from this source");
        expect_refused("update.install", ACTION_FROM_LINK, "{\"bundle\": \"/tmp/evil.obundle\"}",
                       "unknown parameter \"bundle\" from this source");
        expect_refused("update.install", ACTION_FROM_LINK, "{\"bundle_id\": \"-x\"}",
                       "\"bundle_id\" must be a bundle id");
        /* the URL is checked by the table too, not only by proto/command.c before it */
        expect_ok("update.install", ACTION_FROM_LINK, "{\"url\": \"https://ground.example/b.obundle\"}");
        expect_refused("update.install", ACTION_FROM_LINK, "{\"url\": \"http://ground.example/b.obundle\"}",
                       "\"url\" must be an https:// URL");
        expect_refused("update.install", ACTION_FROM_LINK, "{\"url\": \"https://\"}",
                       "\"url\" must be an https:// URL");
        expect_refused("update.install", ACTION_FROM_LINK, "{\"url\": \"https://g.example/a b\"}",
                       "\"url\" must be an https:// URL");
        expect_refused("update.install", ACTION_FROM_LINK, "{\"url\": 7}", "\"url\" must be an https:// URL");
        expect_refused("update.install", ACTION_FROM_CONTROL, "{\"url\": \"https://ground.example/b.obundle\"}",
                       "unknown parameter \"url\" from this source");

        expect_ok("runtime.class", ACTION_FROM_CONTROL, "{\"priority\": \"best-effort\", \"cpu_percent\": 0}");
        expect_ok("runtime.class", ACTION_FROM_CONTROL, "{\"priority\": \"critical\", \"frozen\": false}");
        expect_refused("runtime.class", ACTION_FROM_CONTROL, "{\"priority\": \"urgent\"}",
                       "\"priority\" must be critical, normal or best-effort");
        expect_refused("runtime.class", ACTION_FROM_CONTROL, "{\"priority\": \"normal\", \"cpu_percent\": 101}",
                       "\"cpu_percent\" must be an integer in 0..100");
        expect_refused("runtime.class", ACTION_FROM_CONTROL, "{\"priority\": \"normal\", \"cpu_percent\": \"5\"}",
                       "\"cpu_percent\" must be an integer in 0..100");
        expect_refused("runtime.class", ACTION_FROM_CONTROL, "{\"priority\": \"normal\", \"frozen\": 1}",
                       "\"frozen\" must be true or false");
        expect_refused("runtime.class", ACTION_FROM_CONTROL, "{\"cpu_percent\": 5}",
                       "missing parameter \"priority\"");

        expect_ok("events", ACTION_FROM_CONTROL, "{\"count\": 10000, \"kind\": \"workload.\"}");
        expect_refused("events", ACTION_FROM_CONTROL, "{\"count\": 10001}", "\"count\" must be an integer in 1..10000");
        expect_refused("workload.logs", ACTION_FROM_CONTROL, "{\"name\": \"a\", \"lines\": 0}",
                       "\"lines\" must be an integer in 1..1000");
        expect_ok("link", ACTION_FROM_CONTROL, "{\"sync\": true}");
        expect_refused("link", ACTION_FROM_CONTROL, "{\"sync\": \"yes\"}", "\"sync\" must be true or false");
        expect_ok("config.set", ACTION_FROM_LINK, "{\"key\": \"log_level\", \"value\": \"debug\"}");
        expect_refused("config.set", ACTION_FROM_LINK, "{\"key\": \"log_level\"}", "missing parameter \"value\"");
}

/* The checks run before any handler: these never reach the (absent) agent. */
static void test_call_refusals(void **state) {
        json_t *result = NULL, *params = json_object();
        char *m = NULL;
        assert_int_equal(action_call(NULL, ACTION_FROM_CONTROL, "frobnicate", params, &result, &m), -EBADRQC);
        assert_string_equal(m, "unknown method \"frobnicate\"");
        assert_null(result);
        free(m);
        assert_int_equal(action_call(NULL, ACTION_FROM_LINK, "runtime.class", params, &result, &m), -EBADRQC);
        assert_string_equal(m, "unknown action \"runtime.class\"");
        free(m);
        assert_int_equal(action_call(NULL, ACTION_FROM_CONTROL, "reboot", params, &result, &m), -EBADRQC);
        free(m);
        json_object_set_new(params, "count", json_integer(0));
        assert_int_equal(action_call(NULL, ACTION_FROM_CONTROL, "events", params, &result, &m), -EINVAL);
        assert_string_equal(m, "events: \"count\" must be an integer in 1..10000");
        assert_null(result);
        free(m);
        json_decref(params);
}

/* A node with every subsystem disabled: each action that needs one says which key. */
static void test_disabled_subsystems(void **state) {
        struct agent a = {};
        struct {
                const char *action, *params, *message;
        } cases[] = {
                {"workload.list", "{}", "the workload runtime is disabled on this node (runtime.enabled)"},
                {"workload.stop", "{\"name\": \"../x\"}", "the workload runtime is disabled on this node (runtime.enabled)"},
                {"update.mark-good", "{}", "updates are disabled on this node (update.enabled)"},
                {"health", "{}", "health monitoring is disabled on this node (health.enabled)"},
                {"link", "{\"sync\": true}", "the controller link is disabled on this node (link.enabled)"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *result = NULL, *params = json_loads(cases[i].params, 0, NULL);
                char *m = NULL;
                assert_int_equal(action_call(&a, ACTION_FROM_CONTROL, cases[i].action, params, &result, &m), -ENOSYS);
                assert_string_equal(m, cases[i].message);
                assert_null(result);
                assert_int_equal(control_error_from_errno(-ENOSYS), CONTROL_ERROR_NOT_IMPLEMENTED);
                free(m);
                json_decref(params);
        }
        /* from the ground too: the command fails, saying why */
        json_t *result = NULL, *params = json_pack("{s:s}", "name", "cam");
        char *m = NULL;
        assert_int_equal(action_call(&a, ACTION_FROM_LINK, "workload.start", params, &result, &m), -ENOSYS);
        assert_non_null(strstr(m, "runtime is disabled"));
        free(m);
        json_decref(params);
}

static void test_error_codes(void **state) {
        assert_int_equal(control_error_from_errno(-EBADRQC), CONTROL_ERROR_UNKNOWN_METHOD);
        assert_int_equal(control_error_from_errno(-ENOSYS), CONTROL_ERROR_NOT_IMPLEMENTED);
        const int caller[] = {EINVAL, ENOENT, EEXIST, EBUSY, EBADMSG, EPERM, EOPNOTSUPP, EKEYREJECTED,
                              EKEYEXPIRED, ENOKEY};
        for (size_t i = 0; i < ELEMENTSOF(caller); i++)
                assert_int_equal(control_error_from_errno(-caller[i]), CONTROL_ERROR_INVALID_PARAMS);
        const int node[] = {ENOMEM, EIO, ENOSPC, EROFS, EAGAIN};
        for (size_t i = 0; i < ELEMENTSOF(node); i++)
                assert_int_equal(control_error_from_errno(-node[i]), CONTROL_ERROR_INTERNAL);
        assert_string_equal(control_error_to_string(control_error_from_errno(-EBADRQC)), "unknown-method");
        assert_string_equal(control_error_to_string(control_error_from_errno(-ENOSYS)), "not-implemented");
}

static void test_settable_keys(void **state) {
        assert_true(action_config_key_is_settable("link.poll_interval_sec"));
        assert_true(action_config_key_is_settable("health.report_interval_sec"));
        assert_true(action_config_key_is_settable("update.gate_sec"));
        assert_true(action_config_key_is_settable("update.controller_wait_sec"));
        /* the ground cannot let a node commit without hearing from it */
        assert_false(action_config_key_is_settable("update.commit_without_controller"));
        /* never what decides what runs, what is trusted, or where state lives */
        assert_false(action_config_key_is_settable("link.url"));
        assert_false(action_config_key_is_settable("link.command_keyring_dir"));
        assert_false(action_config_key_is_settable("update.keyring_dir"));
        assert_false(action_config_key_is_settable("update.reboot_command"));
        assert_false(action_config_key_is_settable("sandbox.allow_privileged_from_link"));
        assert_false(action_config_key_is_settable("state_dir"));
        assert_false(action_config_key_is_settable("paths.sysfs_root"));
        assert_false(action_config_key_is_settable("runtime.enabled"));
        assert_false(action_config_key_is_settable("link.poll_interval_sec.x"));
        assert_false(action_config_key_is_settable(""));
        assert_false(action_config_key_is_settable(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup),
                cmocka_unit_test(test_sources),
                cmocka_unit_test(test_link_actions_match_commands),
                cmocka_unit_test(test_params),
                cmocka_unit_test(test_call_refusals),
                cmocka_unit_test(test_disabled_subsystems),
                cmocka_unit_test(test_error_codes),
                cmocka_unit_test(test_settable_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
