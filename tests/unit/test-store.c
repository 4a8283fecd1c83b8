/*
 * Unit tests for the controller store on a temp SQLite file: records stored once, acks,
 * command seqs monotonic across reopen, due commands and results, expiry, bundles, plans.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "store.h"
#include "test-util.h"

#define BOOT "0123456789abcdef0123456789abcdef"

struct fixture {
        char *dir;
        char db[PATH_MAX];
};

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        f->dir = test_mkdtemp();
        assert_non_null(f->dir);
        test_path(f->db, sizeof(f->db), f->dir, "controller.db");
        log_setup("test-store", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        test_rmdir(f->dir);
        free(f);
        return 0;
}

static struct store *open_store(struct fixture *f) {
        struct store *s = NULL;
        char *reason = NULL;
        int r = store_open(f->db, &s, &reason);
        if (r < 0)
                fail_msg("store_open: %s", reason ? reason : "?");
        return s;
}

static int fake_sign(void *userdata, const char *payload, char **ret, char **reason) {
        int *calls = userdata;
        (*calls)++;
        return asprintf(ret, "signature of %zu bytes", strlen(payload)) < 0 ? -ENOMEM : 0;
}

/* Parse a sync of node n1 with the given records (each "seq:kind:body"). */
static void make_sync(struct sync_request *req, int64_t last_command_seq, const char *records) {
        char *text;
        assert_true(asprintf(&text,
                             "{\"format\":1,\"node\":\"n1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                             "\",\"last_command_seq\":%lld,\"records\":[%s],\"status\":{\"ok\":1}}",
                             (long long) last_command_seq, records) > 0);
        char *msg = NULL;
        int r = sync_request_parse(text, strlen(text), "n1", req, &msg);
        if (r < 0)
                fail_msg("%s", msg);
        free(text);
}

#define REC(seq, kind, body)                                                                 \
        "{\"format\":1,\"key\":{\"node\":\"n1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT        \
        "\",\"seq\":" #seq "},\"priority\":\"normal\",\"kind\":\"" kind "\",\"time_usec\":1,"  \
        "\"monotonic_usec\":2,\"body\":" body "}"

static void test_schema_and_records_once(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);

        struct sync_request req;
        make_sync(&req, 0, REC(1, "health.report", "{\"t\":40}") "," REC(2, "workload.exit", "{}")
                                   "," REC(3, "update.installed", "{\"slot\":\"B\"}"));
        json_t *cmds = NULL;
        size_t stored = 99;
        assert_int_equal(store_sync(s, &req, 100, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 3);
        assert_int_equal(json_array_size(cmds), 0);
        json_decref(cmds);
        /* The same sync again: nothing new, still fine (and acked by the caller). */
        assert_int_equal(store_sync(s, &req, 101, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 0);
        json_decref(cmds);
        json_t *acked = sync_acked_build(&req);
        assert_int_equal(json_array_size(json_object_get(json_array_get(acked, 0), "seq")), 3);
        json_decref(acked);
        sync_request_done(&req);

        int64_t count = 0;
        assert_int_equal(store_records_count(s, "n1", &count), 0);
        assert_int_equal(count, 3);

        json_t *node = NULL;
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        assert_int_equal(json_integer_value(json_object_get(node, "records")), 3);
        assert_int_equal(json_integer_value(json_object_get(node, "syncs")), 2);
        assert_int_equal(json_integer_value(json_object_get(node, "last_sync")), 101);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(node, "health"), "t")), 40);
        assert_string_equal(json_string_value(json_object_get(json_object_get(node, "update"), "kind")),
                            "update.installed");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(node, "status"), "ok")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(node, "records_by_kind"),
                                                            "workload.exit")), 1);
        json_decref(node);
        assert_int_equal(store_node_show(s, "nope", &node), -ENOENT);

        json_t *recs = NULL;
        assert_int_equal(store_records_list(s, "n1", "update.*", 10, &recs), 0);
        assert_int_equal(json_array_size(recs), 1);
        json_decref(recs);
        assert_int_equal(store_records_list(s, "n1", NULL, 2, &recs), 0);
        /* The newest two, oldest first. */
        assert_int_equal(json_array_size(recs), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(recs, 0), "key"), "seq")), 2);
        json_decref(recs);
        assert_int_equal(store_records_list(s, "n1", "health.report", 10, &recs), 0);
        assert_int_equal(json_array_size(recs), 1);
        json_decref(recs);
        assert_int_equal(store_records_list(s, "zz", NULL, 10, &recs), -ENOENT);
        store_close(s);
}

static void test_command_seqs_across_reopen(void **state) {
        struct fixture *f = *state;
        json_auto_t *empty = json_object();
        struct store *s = open_store(f);
        int calls = 0;
        json_t *params = json_pack("{s:s}", "name", "cam"), *queued = NULL;
        char *reason = NULL;
        assert_int_equal(store_command_queue(s, "n1", "workload.start", params, 1000, 600, fake_sign,
                                             &calls, &queued, &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(queued, "seq")), 1);
        json_decref(queued);
        assert_int_equal(store_command_queue(s, "n1", "reboot", empty, 1000, 600, fake_sign,
                                             &calls, &queued, &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(queued, "seq")), 2);
        json_decref(queued);
        /* Refused commands take no seq. */
        assert_int_equal(store_command_queue(s, "n1", "reboot", params, 1000, 600, fake_sign, &calls,
                                             NULL, &reason), -EINVAL);
        free(reason);
        reason = NULL;
        assert_int_equal(calls, 2);
        store_close(s);

        s = open_store(f);
        assert_int_equal(store_command_queue(s, "n1", "status.send", empty, 1000, 600,
                                             fake_sign, &calls, &queued, &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(queued, "seq")), 3);
        json_decref(queued);
        /* Another node counts from 1. */
        assert_int_equal(store_command_queue(s, "n2", "reboot", empty, 1000, 600, fake_sign,
                                             &calls, &queued, &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(queued, "seq")), 1);
        json_decref(queued);
        json_decref(params);

        /* A sync gets those after its last applied seq, oldest first, bounded. */
        struct sync_request req;
        make_sync(&req, 1, "");
        json_t *cmds = NULL;
        assert_int_equal(store_sync(s, &req, 1100, 1, &cmds, NULL), 0);
        assert_int_equal(json_array_size(cmds), 1);
        json_t *env = json_array_get(cmds, 0);
        assert_int_equal(json_integer_value(json_object_get(env, "seq")), 2);
        assert_non_null(strstr(json_string_value(json_object_get(env, "payload")), "\"seq\":2,"));
        assert_non_null(strstr(json_string_value(json_object_get(env, "signature")), "signature of"));
        json_decref(cmds);
        assert_int_equal(store_sync(s, &req, 1100, 32, &cmds, NULL), 0);
        assert_int_equal(json_array_size(cmds), 2);
        json_decref(cmds);
        sync_request_done(&req);

        /* Results: the first final one wins; the others change nothing. */
        make_sync(&req, 3, REC(10, "command.result", "{\"seq\":2,\"status\":\"failed\",\"reason\":\"no\"}")
                           "," REC(11, "command.result", "{\"seq\":2,\"status\":\"done\"}")
                           "," REC(12, "command.result", "{\"seq\":99,\"status\":\"done\"}")
                           "," REC(13, "command.result", "{\"garbage\":1}"));
        assert_int_equal(store_sync(s, &req, 1200, 32, &cmds, NULL), 0);
        assert_int_equal(json_array_size(cmds), 0);
        json_decref(cmds);
        sync_request_done(&req);
        json_t *list = NULL;
        assert_int_equal(store_commands_list(s, "n1", &list), 0);
        assert_int_equal(json_array_size(list), 3);
        json_t *c1 = json_array_get(list, 0), *c2 = json_array_get(list, 1), *c3 = json_array_get(list, 2);
        assert_string_equal(json_string_value(json_object_get(c1, "state")), "queued");
        assert_true(json_is_true(json_object_get(c1, "acked")));
        assert_string_equal(json_string_value(json_object_get(c2, "state")), "failed");
        assert_string_equal(json_string_value(json_object_get(c2, "result_reason")), "no");
        assert_string_equal(json_string_value(json_object_get(c3, "state")), "sent");
        assert_int_equal(json_integer_value(json_object_get(c3, "sent_time")), 1100);
        json_decref(list);
        store_close(s);
}

static void test_expired_commands_not_sent(void **state) {
        struct fixture *f = *state;
        json_auto_t *empty = json_object();
        struct store *s = open_store(f);
        int calls = 0;
        char *reason = NULL;
        assert_int_equal(store_command_queue(s, "n1", "reboot", empty, 1000, 60, fake_sign,
                                             &calls, NULL, &reason), 0);
        assert_int_equal(store_command_queue(s, "n1", "status.send", empty, 1000, 600,
                                             fake_sign, &calls, NULL, &reason), 0);
        struct sync_request req;
        make_sync(&req, 0, "");
        json_t *cmds = NULL;
        assert_int_equal(store_sync(s, &req, 1060, 32, &cmds, NULL), 0);
        assert_int_equal(json_array_size(cmds), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(cmds, 0), "seq")), 2);
        json_decref(cmds);
        sync_request_done(&req);
        json_t *list = NULL;
        assert_int_equal(store_commands_list(s, "n1", &list), 0);
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "state")), "expired");
        json_decref(list);
        store_close(s);
}

static void test_bundles_and_plans(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        struct store_bundle b = {.id = "fleet-1", .version = "1.0.0", .size = 10,
                                 .sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
        assert_int_equal(store_bundle_add(s, &b, "CN=x", true, 5), 0);
        assert_int_equal(store_bundle_add(s, &b, "CN=x", true, 6), 0); /* same content */
        struct store_bundle other = b;
        other.sha256[0] = 'b';
        assert_int_equal(store_bundle_add(s, &other, "CN=x", true, 7), -EEXIST);
        struct store_bundle got;
        assert_int_equal(store_bundle_get(s, "fleet-1", &got), 0);
        assert_string_equal(got.sha256, b.sha256);
        assert_int_equal(got.size, 10);
        assert_int_equal(store_bundle_get(s, "fleet-2", &got), -ENOENT);
        json_t *list = NULL;
        assert_int_equal(store_bundles_list(s, &list), 0);
        assert_int_equal(json_array_size(list), 1);
        json_decref(list);

        json_t *plan = NULL;
        assert_int_equal(store_contact_plan_get(s, "unknown", &plan), 0);
        assert_int_equal(json_array_size(json_object_get(plan, "windows")), 0);
        json_decref(plan);
        json_t *p = json_loads("{\"windows\":[{\"start\":1,\"end\":2,\"rate_bps\":3}]}", 0, NULL);
        assert_int_equal(store_contact_plan_set(s, "n9", p, 10), 0);
        json_decref(p);
        assert_int_equal(store_contact_plan_get(s, "n9", &plan), 0);
        assert_int_equal(json_array_size(json_object_get(plan, "windows")), 1);
        json_decref(plan);
        assert_int_equal(store_nodes_list(s, &list), 0);
        assert_int_equal(json_array_size(list), 1);
        assert_true(json_is_null(json_object_get(json_array_get(list, 0), "last_sync")));
        json_decref(list);
        store_close(s);
}

static void test_refuses_newer_schema(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        store_close(s);
        /* A newer controller wrote version 99: this one must not touch it. */
        char cmd[PATH_MAX + 100];
        snprintf(cmd, sizeof(cmd), "sqlite3 '%s' 'UPDATE schema_version SET version = 99' 2>/dev/null", f->db);
        if (system(cmd) != 0)
                skip();
        char *reason = NULL;
        assert_int_equal(store_open(f->db, &s, &reason), -EPROTO);
        assert_non_null(strstr(reason, "schema version 99"));
        free(reason);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_schema_and_records_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_command_seqs_across_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expired_commands_not_sent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bundles_and_plans, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refuses_newer_schema, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
