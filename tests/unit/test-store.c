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
#include <math.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#if HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include "lib/log.h"
#include "controller/metrics.h"
#include "controller/store.h"
#include "controller/store-address.h"
#include "controller/store-backend.h"
#include "controller/store-dialect.h"
#include "controller/store-internal.h"
#include "controller/store-record-form.h"
#include "controller/store-sql.h"
#include "test-util.h"

#define BOOT "0123456789abcdef0123456789abcdef"

struct fixture {
        char *dir;
        char db[PATH_MAX];
};

/*
 * The store under test: SQLite in a temporary directory, or the database ORBIT_TEST_DATABASE
 * names (postgresql://..., tests/unit/test-store-postgresql.sh), emptied before each test.
 */
static const char *test_database(void) {
        const char *d = getenv("ORBIT_TEST_DATABASE");
        return d && d[0] ? d : NULL;
}

static bool on_sqlite(void) {
        return !test_database();
}

static void database_empty(const char *address) {
#if HAVE_LIBPQ
        PGconn *c = PQconnectdb(address);
        if (PQstatus(c) != CONNECTION_OK)
                fail_msg("%s: %s", address, PQerrorMessage(c));
        PGresult *res = PQexec(c, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                fail_msg("emptying %s: %s", address, PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(c);
#else
        fail_msg("ORBIT_TEST_DATABASE=%s: built without PostgreSQL", address);
#endif
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        f->dir = test_mkdtemp();
        assert_non_null(f->dir);
        test_path(f->db, sizeof(f->db), f->dir, "controller.db");
        if (test_database()) {
                snprintf(f->db, sizeof(f->db), "%s", test_database());
                database_empty(f->db);
        }
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

/* The same with the node's link epoch. */
static void make_sync_epoch(struct sync_request *req, int64_t last_command_seq, const char *epoch) {
        char *text;
        assert_true(asprintf(&text,
                             "{\"format\":1,\"node\":\"n1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                             "\",\"last_command_seq\":%lld,\"link_epoch\":\"%s\",\"records\":[]}",
                             (long long) last_command_seq, epoch) > 0);
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

#define REC_CRITICAL(seq, kind, body)                                                        \
        "{\"format\":1,\"key\":{\"node\":\"n1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT        \
        "\",\"seq\":" #seq "},\"priority\":\"critical\",\"kind\":\"" kind "\",\"time_usec\":1,"  \
        "\"monotonic_usec\":2,\"body\":" body "}"

/* PostgreSQL restarted or the connection cut: the store makes it again before the next
 * statement outside a transaction; a transaction whose connection went fails whole. */
static void test_connection_lost(void **state) {
        if (on_sqlite())
                skip(); /* one file, no connection to lose */
        struct store *s = open_store(*state), *killer = open_store(*state);
        struct store_stmt *st = NULL;
        assert_int_equal(store_query_row(s, &st, "SELECT pg_backend_pid()", ""), 1);
        int64_t pid = store_col_int(st, 0);
        store_stmt_finalize(st);
        st = NULL;
        /* outside a transaction: the next statement runs on a new connection */
        assert_int_equal(store_query_row(killer, &st, "SELECT pg_terminate_backend(CAST(?1 AS integer))", "i", pid), 1);
        store_stmt_finalize(st);
        st = NULL;
        assert_int_equal(store_query_row(s, &st, "SELECT pg_backend_pid()", ""), 1);
        int64_t again = store_col_int(st, 0);
        store_stmt_finalize(st);
        st = NULL;
        assert_true(again != pid);
        /* inside one: its next statement fails, the rollback ends it, then all goes on */
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_exec(s, "INSERT INTO nodes (id, created) VALUES ('lost', 1)", ""), 0);
        assert_int_equal(store_query_row(killer, &st, "SELECT pg_terminate_backend(CAST(?1 AS integer))", "i", again), 1);
        store_stmt_finalize(st);
        st = NULL;
        assert_true(store_exec(s, "INSERT INTO nodes (id, created) VALUES ('lost2', 1)", "") < 0);
        assert_true(store_exec(s, "INSERT INTO nodes (id, created) VALUES ('lost3', 1)", "") < 0);
        assert_int_equal(store_script(s, "ROLLBACK"), 0);
        assert_int_equal(store_query_row(s, &st, "SELECT count(*) FROM nodes WHERE id LIKE 'lost%'", ""), 1);
        assert_int_equal(store_col_int(st, 0), 0); /* nothing of the half transaction */
        store_stmt_finalize(st);
        st = NULL;
        /* with statements sent and not waited for (store_exec_later): the query, or the
         * COMMIT, that would wait for them fails; the rollback ends it; all goes on */
        for (int round = 0; round < 2; round++) {
                assert_int_equal(store_query_row(s, &st, "SELECT pg_backend_pid()", ""), 1);
                int64_t now_pid = store_col_int(st, 0);
                store_stmt_finalize(st);
                st = NULL;
                assert_int_equal(store_begin(s), 0);
                assert_int_equal(store_exec_later(s, "INSERT INTO nodes (id, created) VALUES ('sent', 1)", ""), 0);
                assert_int_equal(store_query_row(killer, &st, "SELECT pg_terminate_backend(CAST(?1 AS integer))",
                                                 "i", now_pid),
                                 1);
                store_stmt_finalize(st);
                st = NULL;
                assert_int_equal(store_exec_later(s, "INSERT INTO nodes (id, created) VALUES ('sent2', 1)", ""), 0);
                if (round == 0)
                        assert_true(store_get_int64(s, NULL, "SELECT 1", "") < 0);
                else
                        assert_true(store_script(s, "COMMIT") < 0);
                assert_int_equal(store_script(s, "ROLLBACK"), 0);
                assert_int_equal(store_query_row(s, &st, "SELECT count(*) FROM nodes WHERE id LIKE 'sent%'", ""), 1);
                assert_int_equal(store_col_int(st, 0), 0);
                store_stmt_finalize(st);
                st = NULL;
        }
        store_close(killer);
        store_close(s);
}

/* An ack tells the node to delete its copy: the sync's commit must be on disk by then,
 * power cut of the ground host included. WAL with synchronous=NORMAL is not. */
static void test_commits_durable(void **state) {
        if (!on_sqlite())
                skip(); /* PostgreSQL's own (fsync, synchronous_commit): its operator's */
        struct store *s = open_store(*state);
        struct store_stmt *st = NULL;
        assert_int_equal(store_query_row(s, &st, "PRAGMA synchronous", ""), 1);
        assert_int_equal(store_col_int(st, 0), 2); /* FULL */
        store_stmt_finalize(st);
        assert_int_equal(store_query_row(s, &st, "PRAGMA journal_mode", ""), 1);
        assert_string_equal(store_col_text(st, 0), "wal");
        store_stmt_finalize(st);
        store_close(s);
}

static void test_records_prune(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        struct sync_request req;
        json_t *cmds = NULL;
        /* received at 100: three reports and an update outcome; at 200: two reports */
        make_sync(&req, 0, REC(1, "health.report", "{}") "," REC(2, "health.report", "{}") ","
                           REC(3, "workload.exit", "{}") "," REC_CRITICAL(4, "update.committed", "{}") ","
                           REC(7, "update.installing", "{}"));
        assert_int_equal(store_sync(s, &req, 100, 32, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);
        make_sync(&req, 0, REC(5, "health.report", "{}") "," REC(6, "health.report", "{}"));
        assert_int_equal(store_sync(s, &req, 200, 32, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);

        int64_t deleted = -1, count = 0;
        /* bounded per call, oldest first */
        assert_int_equal(store_records_prune(s, 150, 1, &deleted), 0);
        assert_int_equal(deleted, 1);
        assert_int_equal(store_records_prune(s, 150, 100, &deleted), 0);
        assert_int_equal(deleted, 2);
        assert_int_equal(store_records_prune(s, 150, 100, &deleted), 0);
        assert_int_equal(deleted, 0);
        /* what is left: the critical outcome, the update record a sync acts on (stored
         * again, it would act twice), and everything received since */
        assert_int_equal(store_records_count(s, "n1", &count), 0);
        assert_int_equal(count, 4);
        json_t *recs = NULL;
        assert_int_equal(store_records_list(s, "n1", "update.*", 10, &recs), 0);
        assert_int_equal(json_array_size(recs), 2);
        json_decref(recs);
        /* the node's summary (last health, update state) is not a record: untouched */
        json_t *node = NULL;
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        assert_string_equal(json_string_value(json_object_get(json_object_get(node, "update"), "kind")),
                            "update.installing"); /* the last one applied */
        json_decref(node);
        /* a record sent again after its removal is stored again: harmless */
        make_sync(&req, 0, REC(2, "health.report", "{}"));
        size_t stored = 0;
        assert_int_equal(store_sync(s, &req, 300, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 1);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_records_prune(s, 1000, 100, &deleted), 0);
        assert_int_equal(deleted, 3);
        assert_int_equal(store_records_count(s, "n1", &count), 0);
        assert_int_equal(count, 2);
        store_close(s);
}

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

        /* A health report said again with other content (a broken or hostile node) is not a
         * new one: the node's health stays (on PostgreSQL the record and its effect are one
         * statement sent with the COMMIT: counted there); a new one is kept, with a new
         * record of no effect beside it. */
        make_sync(&req, 0, REC(1, "health.report", "{\"t\":99}") "," REC(2, "workload.exit", "{\"x\":1}"));
        assert_int_equal(store_sync(s, &req, 102, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 0);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(node, "health"), "t")), 40);
        assert_int_equal(json_integer_value(json_object_get(node, "records")), 3);
        json_decref(node);
        make_sync(&req, 0, REC(1, "health.report", "{\"t\":99}") "," REC(4, "health.report", "{\"t\":41}") ","
                                   REC(5, "workload.exit", "{}"));
        assert_int_equal(store_sync(s, &req, 103, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 2);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(node, "health"), "t")), 41);
        assert_int_equal(json_integer_value(json_object_get(node, "health_time")), 103);
        assert_int_equal(json_integer_value(json_object_get(node, "records")), 5);
        json_decref(node);
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

static const char *command_field(json_t *list, int64_t seq, const char *key) {
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c)
                if (json_integer_value(json_object_get(c, "seq")) == seq)
                        return json_string_value(json_object_get(c, key));
        return NULL;
}

static char *stored_payload(struct store *s, int64_t seq) {
        struct store_stmt *st = NULL;
        assert_int_equal(store_query_row(s, &st, "SELECT payload FROM commands WHERE node = 'n1' AND seq = ?", "i",
                                         seq),
                         1);
        char *p = strdup(store_col_text(st, 0));
        store_stmt_finalize(st);
        return p;
}

/* #18 item 5: a node that lost its link state reports a new epoch; what was sent to it
 * without a result is never sent again, what is queued is signed for the new epoch. */
static void test_link_epoch_lost_state(void **state) {
        struct fixture *f = *state;
        json_auto_t *empty = json_object();
        struct store *s = open_store(f);
        int calls = 0;
        store_set_command_signer(s, fake_sign, &calls);
        char *reason = NULL;
        struct sync_request req;
        json_t *cmds = NULL, *list = NULL;
        const char *e1 = "11111111111111111111111111111111", *e2 = "22222222222222222222222222222222";
        /* queued before the node ever synced: no epoch yet */
        assert_int_equal(store_command_queue(s, "n1", "status.send", empty, 1000, 600, fake_sign, &calls, NULL,
                                             &reason),
                         0);
        char *p = stored_payload(s, 1);
        assert_null(strstr(p, "link_epoch"));
        free(p);
        /* the first sync with an epoch: the queued command is signed for it, and sent */
        make_sync_epoch(&req, 0, e1);
        assert_int_equal(store_sync(s, &req, 1001, 32, &cmds, NULL), 0);
        assert_int_equal(json_array_size(cmds), 1);
        assert_non_null(strstr(json_string_value(json_object_get(json_array_get(cmds, 0), "payload")), e1));
        json_decref(cmds);
        sync_request_done(&req);
        /* 1 is sent (its result never comes); 2 queued now carries the epoch */
        assert_int_equal(store_command_queue(s, "n1", "reboot", empty, 1002, 600, fake_sign, &calls, NULL, &reason),
                         0);
        p = stored_payload(s, 2);
        assert_non_null(strstr(p, e1));
        free(p);
        /* the node lost its link state: epoch e2, nothing applied */
        make_sync_epoch(&req, 0, e2);
        assert_int_equal(store_sync(s, &req, 1003, 32, &cmds, NULL), 0);
        /* 1 is not sent again (the node may have run it); 2 is, signed for e2 */
        assert_int_equal(json_array_size(cmds), 1);
        json_t *c = json_array_get(cmds, 0);
        assert_int_equal(json_integer_value(json_object_get(c, "seq")), 2);
        assert_non_null(strstr(json_string_value(json_object_get(c, "payload")), e2));
        assert_null(strstr(json_string_value(json_object_get(c, "payload")), e1));
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_commands_list(s, "n1", &list), 0);
        assert_string_equal(command_field(list, 1, "state"), "lost");
        assert_non_null(strstr(command_field(list, 1, "result_reason"), "lost its link state"));
        assert_string_equal(command_field(list, 2, "state"), "sent");
        json_decref(list);
        json_t *node = NULL;
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        assert_string_equal(json_string_value(json_object_get(node, "link_epoch")), e2);
        assert_int_equal(json_integer_value(json_object_get(node, "link_resets")), 1);
        json_decref(node);
        /* a result for the lost command that comes in after all still counts */
        char *text;
        assert_true(asprintf(&text,
                             "{\"format\":1,\"node\":\"n1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                             "\",\"last_command_seq\":2,\"link_epoch\":\"%s\",\"records\":[" REC(
                                     9, "command.result", "{\"seq\":1,\"status\":\"done\",\"reason\":\"\"}") "]}",
                             e2) > 0);
        assert_int_equal(sync_request_parse(text, strlen(text), "n1", &req, &reason), 0);
        free(text);
        assert_int_equal(store_sync(s, &req, 1004, 32, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_commands_list(s, "n1", &list), 0);
        assert_string_equal(command_field(list, 1, "state"), "done");
        json_decref(list);
        store_close(s);
}

/* #18 item 5: a store restored from a backup, behind the node: new commands start after the
 * node's last applied seq (else the node refuses them as replays, for ever). */
static void test_store_behind_the_node(void **state) {
        struct fixture *f = *state;
        json_auto_t *empty = json_object();
        struct store *s = open_store(f);
        int calls = 0;
        char *reason = NULL;
        struct sync_request req;
        json_t *cmds = NULL, *list = NULL;
        const char *e1 = "11111111111111111111111111111111";
        assert_int_equal(store_command_queue(s, "n1", "status.send", empty, 1000, 600, fake_sign, &calls, NULL,
                                             &reason),
                         0);
        /* the node applied up to 7 (commands of a store that was lost) */
        make_sync_epoch(&req, 7, e1);
        assert_int_equal(store_sync(s, &req, 1001, 32, &cmds, NULL), 0);
        assert_int_equal(json_array_size(cmds), 0);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_command_queue(s, "n1", "reboot", empty, 1002, 600, fake_sign, &calls, NULL, &reason),
                         0);
        assert_int_equal(store_commands_list(s, "n1", &list), 0);
        assert_string_equal(command_field(list, 1, "state"), "lost");
        assert_string_equal(command_field(list, 8, "state"), "queued");
        json_decref(list);
        make_sync_epoch(&req, 7, e1);
        assert_int_equal(store_sync(s, &req, 1003, 32, &cmds, NULL), 0);
        assert_int_equal(json_array_size(cmds), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(cmds, 0), "seq")), 8);
        json_decref(cmds);
        sync_request_done(&req);
        store_close(s);
}

static void sync_with(struct store *s, const char *node, const char *text, struct store_sync_node *nd,
                      int64_t now);

/* The sync of a node telling its desired state (version -1: not said): 1 with the envelope
 * it gets (the caller's), its refused version and whether the refusal is new. */
static int node_desired(struct store *s, const char *node, int64_t version, int64_t refused_told, json_t **env,
                        int64_t *refused, bool *newly) {
        char text[512], said[96] = "";
        if (version >= 0)
                snprintf(said, sizeof(said), ",\"desired_version\":%lld,\"desired_refused\":%lld",
                         (long long) version, (long long) refused_told);
        snprintf(text, sizeof(text),
                 "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                 "\",\"last_command_seq\":0,\"records\":[]%s}",
                 node, said);
        struct store_sync_node nd = {0};
        sync_with(s, node, text, &nd, 100);
        json_decref(nd.plan);
        *env = nd.desired;
        *refused = nd.desired_refused;
        *newly = nd.desired_newly_refused;
        return *env != NULL;
}

/* The trust document a node has, kept by its syncs (store_sync_node, keep_trust). */
static void test_sync_node_trust(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        struct store_sync_node nd = {.keep_trust = true};
        sync_with(s, "t1", NULL, &nd, 100); /* a node that never said: -1 */
        assert_int_equal(nd.trust_version, -1);
        assert_string_equal(nd.trust_refused, "");
        json_decref(nd.plan);
        const char *said = "{\"format\":1,\"node\":\"t1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                           "\",\"last_command_seq\":0,\"records\":[],\"trust_version\":3,"
                           "\"trust_refused\":\"00112233445566ff\"}";
        for (int round = 0; round < 2; round++) { /* the refusal is new once */
                nd = (struct store_sync_node){.keep_trust = true};
                sync_with(s, "t1", said, &nd, 101);
                assert_int_equal(nd.trust_version, 3);
                assert_string_equal(nd.trust_refused, "00112233445566ff");
                assert_int_equal(nd.trust_newly_refused, round == 0);
                json_decref(nd.plan);
        }
        nd = (struct store_sync_node){.keep_trust = true};
        sync_with(s, "t1", NULL, &nd, 102); /* not said again: kept */
        assert_int_equal(nd.trust_version, 3);
        assert_string_equal(nd.trust_refused, "00112233445566ff");
        assert_false(nd.trust_newly_refused);
        json_decref(nd.plan);
        /* the contact plan comes with the sync */
        json_t *plan = json_loads("{\"windows\":[{\"start\":1000,\"end\":1600}]}", 0, NULL);
        assert_int_equal(store_contact_plan_set(s, "t1", plan, 103), 0);
        nd = (struct store_sync_node){0};
        sync_with(s, "t1", NULL, &nd, 104);
        assert_true(json_equal(nd.plan, plan));
        json_decref(nd.plan);
        json_decref(plan);
        store_close(s);
}

/* Desired states (#19 item 3): sent while the node is behind; and a store behind the node (a
 * database restored from before) never makes a version the node has already, which it
 * would drop as "already in force" without acting on its content. */
static void test_desired_behind_the_node(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int calls = 0;
        char *reason = NULL;
        json_t *w = json_loads("[{\"name\": \"det\", \"spec\": {\"name\": \"det\", \"exec\": [\"/bin/true\"]}}]",
                               0, NULL);
        json_t *done = NULL, *env = NULL;
        int64_t refused = 0;
        bool newly = false;
        assert_non_null(w);
        assert_int_equal(store_desired_set(s, "n1", w, -1, 1000, "test", fake_sign, &calls, &done, &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(done, "version")), 1);
        json_decref(done);
        /* the node has none: v1 goes to it; it has v1: nothing */
        assert_int_equal(node_desired(s, "n1", 0, 0, &env, &refused, &newly), 1);
        assert_non_null(env);
        json_decref(env);
        assert_int_equal(node_desired(s, "n1", 1, 0, &env, &refused, &newly), 0);
        assert_null(env);
        /* the store restored from before: the node has v5 in force */
        assert_int_equal(node_desired(s, "n1", 5, 0, &env, &refused, &newly), 0);
        assert_null(env);
        assert_int_equal(store_desired_set(s, "n1", w, -1, 1001, "test", fake_sign, &calls, &done, &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(done, "version")), 6);
        json_decref(done);
        assert_int_equal(node_desired(s, "n1", -1, 0, &env, &refused, &newly), 1);
        json_t *doc = json_loads(json_string_value(json_object_get(env, "document")), 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(doc, "version")), 6);
        json_decref(doc);
        json_decref(env);
        /* if_version is the store's own newest */
        assert_int_equal(store_desired_set(s, "n1", w, 1, 1002, "test", fake_sign, &calls, &done, &reason), -ESTALE);
        free(reason);
        reason = NULL;
        /* a node saying the last version there is: no next one (never an overflow) */
        assert_int_equal(node_desired(s, "n1", INT64_MAX, 0, &env, &refused, &newly), 0);
        assert_int_equal(store_desired_set(s, "n1", w, -1, 1003, "test", fake_sign, &calls, &done, &reason), -EINVAL);
        assert_non_null(reason);
        free(reason);
        json_decref(w);
        store_close(s);
}

/* A node (hostile, or with a broken link state) reporting the last seq there is: the store's
 * next seq once overflowed (INT64_MAX + 1, undefined; in practice negative, after which no
 * command for the node could be built again). The sync goes on; the next seq stays sane. */
static void test_node_reports_the_last_seq_there_is(void **state) {
        struct fixture *f = *state;
        json_auto_t *empty = json_object();
        struct store *s = open_store(f);
        int calls = 0;
        char *reason = NULL;
        struct sync_request req;
        json_t *cmds = NULL;
        int64_t next = 0;
        make_sync_epoch(&req, INT64_MAX, "11111111111111111111111111111111");
        assert_int_equal(store_sync(s, &req, 1001, 32, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_get_int64(s, &next, "SELECT next_command_seq FROM nodes WHERE id = 'n1'", ""), 1);
        assert_true(next >= 1);
        json_t *queued = NULL;
        assert_int_equal(store_command_queue(s, "n1", "reboot", empty, 1002, 600, fake_sign, &calls, &queued,
                                             &reason),
                         0);
        assert_true(json_integer_value(json_object_get(queued, "seq")) >= 1);
        json_decref(queued);
        store_close(s);
}

/* #18 item 7: a node cannot keep what it likes for ever: only command results and update
 * records may be critical, and past its quota its oldest records go, droppable ones first. */
static void test_record_priority_and_quota(void **state) {
        assert_string_equal(store_record_priority("command.result", "critical"), "critical");
        assert_string_equal(store_record_priority("update.committed", "critical"), "critical");
        assert_string_equal(store_record_priority("health.report", "critical"), "high");
        assert_string_equal(store_record_priority("updatex", "critical"), "high");
        assert_string_equal(store_record_priority("health.report", "low"), "low");

        struct fixture *f = *state;
        struct store *s = open_store(f);
        store_set_record_quota(s, 4);
        struct sync_request req;
        json_t *cmds = NULL;
        int64_t count = 0;
        /* a hostile node marks its reports critical: stored as high, so retention prunes them */
        make_sync(&req, 0, REC_CRITICAL(1, "health.report", "{}") "," REC_CRITICAL(2, "update.committed", "{}") ","
                                   REC(3, "health.report", "{}"));
        assert_int_equal(store_sync(s, &req, 100, 32, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);
        int64_t deleted = 0;
        assert_int_equal(store_records_prune(s, 150, 100, &deleted), 0);
        assert_int_equal(deleted, 2); /* seq 1 (capped to high) and 3 */
        /* over the quota of 4: the oldest droppable ones go first, the update outcome stays */
        make_sync(&req, 0, REC(4, "health.report", "{}") "," REC(5, "health.report", "{}") ","
                                   REC(6, "health.report", "{}") "," REC(7, "health.report", "{}") ","
                                   REC(8, "health.report", "{}"));
        assert_int_equal(store_sync(s, &req, 200, 32, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_records_count(s, "n1", &count), 0);
        assert_int_equal(count, 4);
        assert_int_equal(store_get_int64(s, &count, "SELECT count(*) FROM records WHERE seq IN (2, 6, 7, 8)", ""), 1);
        assert_int_equal(count, 4);
        /* only protected ones past the quota: the oldest of them go too */
        make_sync(&req, 0, REC_CRITICAL(9, "update.installing", "{}") "," REC_CRITICAL(10, "update.x", "{}") ","
                                   REC_CRITICAL(11, "update.y", "{}") "," REC_CRITICAL(12, "update.z", "{}"));
        assert_int_equal(store_sync(s, &req, 300, 32, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);
        assert_int_equal(store_get_int64(s, &count, "SELECT count(*) FROM records WHERE seq IN (9, 10, 11, 12)", ""), 1);
        assert_int_equal(count, 4);
        assert_int_equal(store_records_count(s, "n1", &count), 0);
        assert_int_equal(count, 4);
        store_close(s);
}

/* A node may fetch the bundles its commands, rollouts and desired states name: an
 * update.install by id, or by a url ending in /v1/bundles/ID (that id only). */
static void test_node_may_fetch_bundle(void **state) {
        struct store *s = open_store(*state);
        int calls = 0;
        char *reason = NULL;
        json_t *by_url = json_pack("{s:s}", "url", "https://ground:8443/v1/bundles/fleet-1");
        json_t *by_id = json_pack("{s:s}", "bundle_id", "cam-2");
        assert_int_equal(store_command_queue(s, "n1", "update.install", by_url, 1000, 600, fake_sign, &calls, NULL,
                                             &reason),
                         0);
        assert_int_equal(store_command_queue(s, "n1", "update.install", by_id, 1000, 600, fake_sign, &calls, NULL,
                                             &reason),
                         0);
        assert_int_equal(store_node_may_fetch_bundle(s, "n1", "fleet-1"), 1);
        assert_int_equal(store_node_may_fetch_bundle(s, "n1", "cam-2"), 1);
        assert_int_equal(store_node_may_fetch_bundle(s, "n1", "1"), 0); /* a suffix of the url, not its id */
        assert_int_equal(store_node_may_fetch_bundle(s, "n1", "fleet-2"), 0);
        assert_int_equal(store_node_may_fetch_bundle(s, "n2", "fleet-1"), 0);
        json_decref(by_url);
        json_decref(by_id);
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

/* Node certificates (#18 item 3): an operator's leave to renew an expired one, the
 * certificates issued, the one in use (a new one ends the leave). */
/* A sync of node with what else it says (store_sync_node); its outputs in *nd (the
 * caller's to release). text: the sync's JSON body, or NULL for a bare one. */
static void sync_with(struct store *s, const char *node, const char *text, struct store_sync_node *nd, int64_t now) {
        char bare[256];
        if (!text) {
                snprintf(bare, sizeof(bare),
                         "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                         "\",\"last_command_seq\":0,\"records\":[]}",
                         node);
                text = bare;
        }
        struct sync_request req;
        char *msg = NULL;
        if (sync_request_parse(text, strlen(text), node, &req, &msg) < 0)
                fail_msg("%s", msg);
        json_t *cmds = NULL;
        assert_int_equal(store_sync_node(s, &req, now, 32, nd, &cmds, NULL), 0);
        json_decref(cmds);
        sync_request_done(&req);
}

/* A sync that checks revocation itself (check_revoked: the server asked at the connection's
 * first request): refused for a certificate made until the revocation, nothing of it
 * written; taken for one made after, and when not asked to check. */
static void test_sync_node_revoked(void **state) {
        struct store *s = open_store(*state);
        const char *text = "{\"format\":1,\"node\":\"r1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                           "\",\"last_command_seq\":0,\"records\":[{\"format\":1,\"key\":{\"node\":\"r1\","
                           "\"boot_epoch\":2,\"boot_id\":\"" BOOT "\",\"seq\":1},\"priority\":\"high\","
                           "\"kind\":\"health.report\",\"time_usec\":1,\"monotonic_usec\":2,\"body\":{}}]}";
        struct store_sync_node nd = {.check_revoked = true, .cert_not_before = 50};
        sync_with(s, "r1", NULL, &nd, 100); /* none revoked: taken */
        json_decref(nd.plan);
        assert_int_equal(nd.revoked_before, 0);
        assert_int_equal(store_node_certs_revoke(s, "r1", 60, 110), 0);
        struct sync_request req;
        char *msg = NULL;
        json_t *cmds = NULL;
        int64_t n = -1;
        if (sync_request_parse(text, strlen(text), "r1", &req, &msg) < 0)
                fail_msg("%s", msg);
        nd = (struct store_sync_node){.check_revoked = true, .cert_not_before = 60};
        assert_int_equal(store_sync_node(s, &req, 120, 32, &nd, &cmds, NULL), -EKEYREVOKED);
        assert_null(cmds);
        assert_int_equal(nd.revoked_before, 60);
        assert_int_equal(store_get_int64(s, &n, "SELECT count(*) FROM records WHERE node = 'r1'", ""), 1);
        assert_int_equal(n, 0);
        assert_int_equal(store_get_int64(s, &n, "SELECT syncs FROM nodes WHERE id = 'r1'", ""), 1);
        assert_int_equal(n, 1);
        /* a certificate made after the revocation is taken; so is any when not asked */
        nd = (struct store_sync_node){.check_revoked = true, .cert_not_before = 61};
        assert_int_equal(store_sync_node(s, &req, 130, 32, &nd, &cmds, NULL), 0);
        json_decref(cmds);
        json_decref(nd.plan);
        cmds = NULL;
        nd = (struct store_sync_node){.cert_not_before = 10};
        assert_int_equal(store_sync_node(s, &req, 140, 32, &nd, &cmds, NULL), 0);
        json_decref(cmds);
        json_decref(nd.plan);
        assert_int_equal(store_get_int64(s, &n, "SELECT syncs FROM nodes WHERE id = 'r1'", ""), 1);
        assert_int_equal(n, 3);
        sync_request_done(&req);
        store_close(s);
}

/* The first sync with a certificate says so, the next with it does not (store_sync_node). */
static int cert_seen(struct store *s, const char *node, const char *serial, int64_t not_after) {
        struct store_sync_node nd = {.cert_serial = serial, .cert_not_after = not_after};
        sync_with(s, node, NULL, &nd, 100);
        assert_true(json_is_object(nd.plan));
        json_decref(nd.plan);
        assert_null(nd.desired);
        return nd.cert_new;
}

static void test_node_certificates(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int64_t until = -1, n = -1;
        assert_int_equal(store_node_renew_allowed(s, "n1", 1000, &until), 0);
        assert_int_equal(until, 0);
        assert_int_equal(store_node_renew_allow(s, "n1", 5000, 1000), 0);
        assert_int_equal(store_node_renew_allowed(s, "n1", 1000, &until), 1);
        assert_int_equal(until, 5000);
        assert_int_equal(store_node_renew_allowed(s, "n1", 5000, NULL), 0); /* ended */
        assert_int_equal(store_node_renew_allowed(s, "n2", 1000, NULL), 0);
        /* revoked: none at first (nor for a node never seen), then up to a time that only
         * moves forward */
        int64_t before = -1;
        assert_int_equal(store_node_certs_revoked_before(s, "n1", &before), 0);
        assert_int_equal(before, 0);
        assert_int_equal(store_node_certs_revoked_before(s, "never-seen", &before), 0);
        assert_int_equal(before, 0);
        assert_int_equal(store_node_certs_revoke(s, "n1", 4000, 4000), 0);
        assert_int_equal(store_node_certs_revoked_before(s, "n1", &before), 0);
        assert_int_equal(before, 4000);
        assert_int_equal(store_node_certs_revoke(s, "n1", 3000, 4100), 0);
        assert_int_equal(store_node_certs_revoked_before(s, "n1", &before), 0);
        assert_int_equal(before, 4000);
        assert_int_equal(store_node_certs_revoked_before(s, "n2", &before), 0);
        assert_int_equal(before, 0);
        assert_int_equal(store_node_certs_revoke(s, "n3", 4200, 4200), 0); /* a node not seen yet */
        assert_int_equal(store_node_certs_revoked_before(s, "n3", &before), 0);
        assert_int_equal(before, 4200);
        /* issued */
        assert_int_equal(store_node_certs_since(s, "n1", 0, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(store_node_cert_issued(s, "n1", "aa01", 9000, 1100, true, 2), 0);
        assert_int_equal(store_node_cert_issued(s, "n1", "aa02", 9000, 1200, false, 2), 0);
        assert_int_equal(store_node_certs_since(s, "n1", 1100, &n), 0);
        assert_int_equal(n, 1);
        /* a third within the day: over the bound, not kept; a day after the first: kept */
        assert_int_equal(store_node_cert_issued(s, "n1", "aa03", 9000, 1300, false, 2), -EDQUOT);
        assert_int_equal(store_node_certs_since(s, "n1", 0, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(store_node_cert_issued(s, "n1", "aa04", 99000, 1100 + 86400, false, 2), 0);
        /* in use: the first sync with one says so, the next does not */
        assert_int_equal(cert_seen(s, "n1", "0f", 3000), 1);
        assert_int_equal(cert_seen(s, "n1", "0f", 3000), 0);
        /* the leave holds until another certificate is used */
        assert_int_equal(store_node_renew_allow(s, "n1", 5000, 1000), 0);
        assert_int_equal(cert_seen(s, "n1", "0f", 3000), 0);
        assert_int_equal(store_node_renew_allowed(s, "n1", 1000, NULL), 1);
        assert_int_equal(cert_seen(s, "n1", "aa01", 9000), 1);
        assert_int_equal(store_node_renew_allowed(s, "n1", 1000, &until), 0);
        json_t *node = NULL;
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        json_t *cert = json_object_get(node, "certificate");
        assert_string_equal(json_string_value(json_object_get(cert, "serial")), "aa01");
        assert_int_equal(json_integer_value(json_object_get(cert, "not_after")), 9000);
        assert_true(json_is_null(json_object_get(cert, "renew_expired_until")));
        json_decref(node);
        store_close(s);
}

static void test_refuses_newer_schema(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        /* A newer controller wrote version 99: this one must not touch it. */
        assert_int_equal(store_exec(s, "UPDATE schema_version SET version = 99", ""), 0);
        store_close(s);
        char *reason = NULL;
        assert_int_equal(store_open(f->db, &s, &reason), -EPROTO);
        assert_non_null(strstr(reason, "schema version 99"));
        free(reason);
}


/* ---- rollouts ---------------------------------------------------------------------- */

/* A sync of NODE with records "seq|kind|body;..." (may be "") and a status document (may
 * be NULL), answering at most max commands, returning them. */
static json_t *node_sync_full(struct store *s, const char *node, int64_t last_seq,
                              const char *records, const char *status, size_t max, int64_t now) {
        char recs[8192] = "";
        size_t used = 0;
        char *copy = strdup(records), *save = NULL;
        for (char *r = strtok_r(copy, ";", &save); r; r = strtok_r(NULL, ";", &save)) {
                char *kind = strchr(r, '|');
                char *body = kind ? strchr(kind + 1, '|') : NULL;
                assert_non_null(body);
                *kind++ = '\0';
                *body++ = '\0';
                used += (size_t) snprintf(recs + used, sizeof(recs) - used,
                                          "%s{\"format\":1,\"key\":{\"node\":\"%s\",\"boot_epoch\":2,"
                                          "\"boot_id\":\"" BOOT "\",\"seq\":%s},\"priority\":\"high\","
                                          "\"kind\":\"%s\",\"time_usec\":1,\"monotonic_usec\":2,"
                                          "\"body\":%s}",
                                          used ? "," : "", node, r, kind, body);
        }
        free(copy);
        char *text;
        assert_true(asprintf(&text,
                             "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                             "\",\"last_command_seq\":%lld,\"records\":[%s]%s%s}",
                             node, (long long) last_seq, recs, status ? ",\"status\":" : "",
                             status ? status : "") > 0);
        struct sync_request req;
        char *msg = NULL;
        if (sync_request_parse(text, strlen(text), node, &req, &msg) < 0)
                fail_msg("%s", msg);
        free(text);
        json_t *cmds = NULL;
        assert_int_equal(store_sync(s, &req, now, max, &cmds, NULL), 0);
        sync_request_done(&req);
        return cmds;
}

static json_t *node_sync(struct store *s, const char *node, int64_t last_seq, const char *records,
                         int64_t now) {
        return node_sync_full(s, node, last_seq, records, NULL, 32, now);
}

/* A sync on a connection lost while the station was idle: its BEGIN goes with its first
 * query (store_begin_node), which finds the loss; the sync runs again on a new connection
 * and is stored once. */
static void test_sync_connection_lost(void **state) {
        if (on_sqlite())
                skip(); /* one file, no connection to lose */
        struct store *s = open_store(*state), *killer = open_store(*state);
        int64_t pid = -1, again = -1, n = -1;
        json_decref(node_sync(s, "n1", 0, "1|health.report|{}", 100));
        assert_int_equal(store_get_int64(s, &pid, "SELECT pg_backend_pid()", ""), 1);
        assert_int_equal(store_get_int64(killer, NULL, "SELECT pg_terminate_backend(CAST(?1 AS integer))", "i", pid), 1);
        json_decref(node_sync(s, "n1", 0, "2|health.report|{}", 200));
        assert_int_equal(store_get_int64(s, &again, "SELECT pg_backend_pid()", ""), 1);
        assert_true(again != pid);
        assert_int_equal(store_get_int64(s, &n, "SELECT count(*) FROM records WHERE node = 'n1'", ""), 1);
        assert_int_equal(n, 2);
        assert_int_equal(store_get_int64(s, &n, "SELECT syncs FROM nodes WHERE id = 'n1'", ""), 1);
        assert_int_equal(n, 2);
        store_close(killer);
        store_close(s);
}

/* The action of the only command in a sync answer, or "" for none. */
static const char *only_action(json_t *cmds, char *buf, size_t size) {
        buf[0] = '\0';
        if (json_array_size(cmds) == 0)
                return buf;
        assert_int_equal(json_array_size(cmds), 1);
        const char *payload = json_string_value(json_object_get(json_array_get(cmds, 0), "payload"));
        json_t *p = json_loads(payload, 0, NULL);
        snprintf(buf, size, "%s", json_string_value(json_object_get(p, "action")));
        json_decref(p);
        return buf;
}

static json_t *rollout_node(json_t *r, const char *node) {
        size_t i;
        json_t *n;
        json_array_foreach(json_object_get(r, "nodes"), i, n)
                if (strcmp(json_string_value(json_object_get(n, "node")), node) == 0)
                        return n;
        fail_msg("node %s not in the rollout", node);
        return NULL;
}

static const char *node_state_at(struct store *s, const char *rollout, const char *node,
                                 int64_t now, char *buf, size_t size) {
        json_t *r = NULL;
        assert_int_equal(store_rollout_show(s, rollout, now, &r), 0);
        snprintf(buf, size, "%s", json_string_value(json_object_get(rollout_node(r, node), "state")));
        json_decref(r);
        return buf;
}

static const char *node_state_in(struct store *s, const char *rollout, const char *node,
                                 char *buf, size_t size) {
        return node_state_at(s, rollout, node, 1000, buf, size);
}

static json_int_t rollout_node_int(struct store *s, const char *rollout, const char *node,
                                   const char *key, int64_t now) {
        json_t *r = NULL;
        assert_int_equal(store_rollout_show(s, rollout, now, &r), 0);
        json_int_t v = json_integer_value(json_object_get(rollout_node(r, node), key));
        json_decref(r);
        return v;
}

static json_t *rollout_make(struct store *s, const char *req, int64_t now) {
        struct rollout_options o;
        char *msg = NULL;
        if (rollout_request_parse(req, strlen(req), &o, &msg) < 0)
                fail_msg("%s", msg);
        json_t *r = NULL;
        if (store_rollout_create(s, &o, now, &r, &msg) < 0)
                fail_msg("%s", msg);
        return r;
}

/* Soak is counted in the node's own passes: its syncs in one pass, or other nodes' syncs,
 * move nothing. */
static void test_rollout_passes(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int calls = 0;
        char buf[64], *msg = NULL;
        store_set_command_signer(s, fake_sign, &calls);
        store_set_pass_gap(s, 300);
        json_decref(node_sync(s, "a1", 0, "", 100));
        json_decref(node_sync(s, "a2", 0, "", 100));
        struct store_bundle b = {.id = "b1", .version = "2.0.0", .size = 10, .sha256 = "ab"};
        assert_int_equal(store_bundle_add(s, &b, "signer", true, 100), 0);
        json_decref(rollout_make(s, "{\"id\":\"p\",\"bundle_id\":\"b1\",\"stages\":[100],"
                                    "\"success_after\":2,\"min_healthy_time\":\"20m\"}", 101));
        assert_int_equal(store_rollout_verb(s, "p", "start", 102, NULL, &msg), 0);
        json_t *c = node_sync(s, "a1", 0, "", 1000); /* a new pass (900 s after the last) */
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.install");
        json_decref(c);
        json_decref(node_sync(s, "a1", 1, "1|update.committed|{\"bundle_id\":\"b1\"}", 1010));
        /* a1 syncing in a loop inside its pass, and a2 syncing across many passes of its own */
        for (int64_t t = 1020; t <= 1300; t += 10)
                json_decref(node_sync(s, "a1", 1, "", t));
        for (int64_t t = 1000; t <= 5000; t += 400)
                json_decref(node_sync(s, "a2", 0, "", t));
        assert_int_equal(rollout_node_int(s, "p", "a1", "passes_since_commit", 5000), 0);
        /* a1's own passes: two after the commit's */
        json_decref(node_sync(s, "a1", 1, "", 1700));
        assert_int_equal(rollout_node_int(s, "p", "a1", "passes_since_commit", 1700), 1);
        json_decref(node_sync(s, "a1", 1, "", 2100));
        assert_int_equal(rollout_node_int(s, "p", "a1", "passes_since_commit", 2100), 2);
        /* held by its passes, but the wall clock (20 min after the commit at 1010) too */
        json_t *r = NULL;
        assert_int_equal(store_rollout_show(s, "p", 2200, &r), 0);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(
                                 json_object_get(r, "stage_progress"), 0), "held")), 0);
        json_decref(r);
        assert_int_equal(store_rollout_show(s, "p", 2210, &r), 0);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(
                                 json_object_get(r, "stage_progress"), 0), "held")), 1);
        json_decref(r);
        assert_string_equal(node_state_at(s, "p", "a2", 2210, buf, sizeof(buf)), "told");
        store_close(s);
}

/* A silent canary (its plan's windows pass with no word) is overdue: a failure; the halt
 * with auto-revert cancels unsent installs and tells committed nodes to roll back, within
 * the anti-rollback floor; a node that joins the group later joins the rollout. */
static void test_rollout_deadline_and_auto_revert(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int calls = 0;
        char buf[64], *msg = NULL;
        store_set_command_signer(s, fake_sign, &calls);
        const char *nodes[] = {"c1", "c2", "c3", "c4"};
        for (size_t i = 0; i < 4; i++) {
                json_decref(node_sync(s, nodes[i], 0, "", 100));
                assert_int_equal(store_node_group_add(s, nodes[i], "g", 100), 0);
        }
        struct store_bundle b = {.id = "b1", .version = "2.0.0", .size = 10, .sha256 = "ab"};
        assert_int_equal(store_bundle_add(s, &b, "signer", true, 100), 0);
        json_decref(rollout_make(s, "{\"id\":\"d\",\"bundle_id\":\"b1\",\"target\":\"g\","
                                    "\"stages\":[100],\"success_after\":5,\"report_deadline\":2,"
                                    "\"max_failures\":0,\"auto_revert\":true}", 101));
        assert_int_equal(store_rollout_verb(s, "d", "start", 102, NULL, &msg), 0);
        /* c2 has a plan: windows at 1100, 1300, 1500 */
        json_t *plan = json_loads("{\"windows\":[{\"start\":1100,\"end\":1200},"
                                  "{\"start\":1300,\"end\":1400},{\"start\":1500,\"end\":1600}]}",
                                  0, NULL);
        assert_int_equal(store_contact_plan_set(s, "c2", plan, 102), 0);
        json_decref(plan);
        for (size_t i = 0; i < 4; i++) {
                json_t *c = node_sync_full(s, nodes[i], 0, "", NULL, !strcmp(nodes[i], "c3") ? 0 : 32,
                                           1000);
                assert_string_equal(only_action(c, buf, sizeof(buf)),
                                    !strcmp(nodes[i], "c3") ? "" : "update.install");
                json_decref(c);
        }
        /* c1 and c4 commit; c4 says its other slot is below its anti-rollback floor */
        json_decref(node_sync(s, "c1", 1, "1|update.committed|{\"bundle_id\":\"b1\"}", 1010));
        json_decref(node_sync_full(s, "c4", 1, "1|update.committed|{\"bundle_id\":\"b1\"}",
                                   "{\"subsystems\":{\"update\":{\"booted_slot\":\"B\","
                                   "\"min_security_version\":5,\"rootfs_slots\":{\"A\":"
                                   "{\"security_version\":4},\"B\":{\"security_version\":5}}}}}",
                                   32, 1010));
        /* a node put in the group after the create joins at its sync, and is told */
        json_decref(node_sync(s, "c5", 0, "", 1020));
        assert_int_equal(store_node_group_add(s, "c5", "g", 1020), 0);
        json_t *c = node_sync(s, "c5", 0, "", 1030);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.install");
        json_decref(c);
        json_t *r = NULL;
        assert_int_equal(store_rollout_show(s, "d", 1030, &r), 0);
        assert_string_equal(json_string_value(json_object_get(rollout_node(r, "c5"), "reason")),
                            "joined late");
        assert_int_equal(json_integer_value(json_object_get(rollout_node(r, "c5"), "stage")), 1);
        json_decref(r);
        /* one window of c2 passed without a word: not yet; two: overdue, a failure: halted */
        assert_int_equal(store_rollouts_tick(s, 1250), 0);
        assert_string_equal(node_state_at(s, "d", "c2", 1250, buf, sizeof(buf)), "told");
        assert_int_equal(store_rollouts_tick(s, 1450), 0);
        assert_int_equal(store_rollout_show(s, "d", 1450, &r), 0);
        assert_string_equal(json_string_value(json_object_get(rollout_node(r, "c2"), "state")),
                            "overdue");
        assert_string_equal(json_string_value(json_object_get(r, "state")), "halted");
        assert_non_null(strstr(json_string_value(json_object_get(r, "reason")), "auto-revert"));
        /* c3's install never went out: cancelled, c3 back to pending */
        assert_string_equal(json_string_value(json_object_get(rollout_node(r, "c3"), "state")),
                            "pending");
        json_decref(r);
        json_t *cmds = NULL;
        assert_int_equal(store_commands_list(s, "c3", &cmds), 0);
        assert_string_equal(json_string_value(json_object_get(json_array_get(cmds, 0), "state")),
                            "cancelled");
        json_decref(cmds);
        c = node_sync(s, "c3", 0, "", 1460);
        assert_int_equal(json_array_size(c), 0);
        json_decref(c);
        /* the committed c1 is told to roll back, once; c4 is not (below its floor) */
        c = node_sync(s, "c1", 1, "", 1460);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.rollback");
        json_decref(c);
        c = node_sync(s, "c1", 2, "", 1470);
        assert_int_equal(json_array_size(c), 0);
        json_decref(c);
        c = node_sync(s, "c4", 1, "", 1460);
        assert_int_equal(json_array_size(c), 0);
        json_decref(c);
        assert_int_equal(store_rollout_show(s, "d", 1470, &r), 0);
        assert_non_null(strstr(json_string_value(json_object_get(rollout_node(r, "c4"), "reason")),
                               "below the node's floor 5"));
        json_decref(r);
        /* the silent node that comes back and reports is told to roll back too */
        json_decref(node_sync(s, "c2", 0, "1|update.committed|{\"bundle_id\":\"b1\"}", 1550));
        c = node_sync(s, "c2", 1, "", 1560);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.rollback");
        json_decref(c);
        /* the metrics of it all */
        json_t *snap = NULL;
        assert_int_equal(store_metrics_collect(s, 1600, &snap), 0);
        char *text = NULL;
        struct metrics_counters counters = {};
        assert_int_equal(metrics_render(snap, &counters, &text), 0);
        assert_non_null(strstr(text, "orbit_rollouts{state=\"halted\"} 1\n"));
        assert_non_null(strstr(text, "orbit_rollout_nodes{rollout=\"d\",state=\"overdue\"} 0\n"));
        free(text);
        json_decref(snap);
        store_close(s);
}

/* The per-stage counts the store keeps equal a recount of every member (tick, then check). */
static void counts_check(struct store *s, const char *id, int64_t now) {
        char *msg = NULL;
        assert_int_equal(store_rollouts_tick(s, now), 0);
        if (store_rollout_counts_check(s, id, now, &msg) < 0)
                fail_msg("at %lld: %s", (long long) now, msg ? msg : "?");
}

static uint32_t lcg(uint32_t *x) {
        *x = *x * 1103515245u + 12345u;
        return (*x >> 16) & 0x7fff;
}

/* A fixed pseudo-random sequence of syncs, reports, plans and verbs on two rollouts: after
 * every step the kept counts (held, out, by state) equal a recount, and the stage decision
 * from the counts equals the one from every member. */
static void test_rollout_counts_follow_changes(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int calls = 0;
        char node[16], recs[256], *msg = NULL;
        store_set_command_signer(s, fake_sign, &calls);
        store_set_pass_gap(s, 60);
        enum { N = 40 };
        int64_t seq[N] = {}, now = 100;
        for (int i = 0; i < N; i++) {
                snprintf(node, sizeof(node), "r%02d", i);
                json_decref(node_sync(s, node, 0, "", now));
                assert_int_equal(store_node_group_add(s, node, i < N / 2 ? "g0" : "g1", now), 0);
        }
        struct store_bundle b1 = {.id = "b1", .version = "2.0.0", .size = 10, .sha256 = "ab"};
        struct store_bundle b2 = {.id = "b2", .version = "3.0.0", .size = 10, .sha256 = "cd"};
        assert_int_equal(store_bundle_add(s, &b1, "signer", true, now), 0);
        assert_int_equal(store_bundle_add(s, &b2, "signer", true, now), 0);
        json_decref(rollout_make(s, "{\"id\":\"x\",\"bundle_id\":\"b1\",\"target\":\"g0\","
                                    "\"stages\":[20,50,100],\"success_after\":2,"
                                    "\"min_healthy_time\":\"5m\",\"stage_timeout\":3,"
                                    "\"report_deadline\":\"600s\",\"max_failures\":\"100%\","
                                    "\"auto_revert\":true}", now));
        json_decref(rollout_make(s, "{\"id\":\"y\",\"bundle_id\":\"b2\",\"target\":\"g1\","
                                    "\"stages\":[10,100],\"success_after\":\"200s\","
                                    "\"report_deadline\":2,\"stage_timeout\":\"2000s\","
                                    "\"max_failures\":8}", now));
        assert_int_equal(store_rollout_verb(s, "x", "start", now, NULL, &msg), 0);
        assert_int_equal(store_rollout_verb(s, "y", "start", now, NULL, &msg), 0);
        counts_check(s, "x", now);
        counts_check(s, "y", now);
        static const char *const phases[] = {"fetching", "installing", "committed", "committed",
                                             "committed", "committed", "committed", "committed",
                                             "installing", "committed", "committed", "committed",
                                             "committed", "committed", "committed", "committed",
                                             "committed", "committed", "failed", "rolled-back"};
        int64_t max_held = 0, overdue = 0, stages_moved = 0, live_held = 0;
        uint32_t x = 7;
        for (int step = 0; step < 600; step++) {
                now += 1 + lcg(&x) % 120;
                int i = (int) (lcg(&x) % N);
                snprintf(node, sizeof(node), "r%02d", i);
                unsigned what = lcg(&x) % 100;
                recs[0] = '\0';
                if (what < 25) {
                        seq[i]++;
                        snprintf(recs, sizeof(recs), "%lld|update.%s|{\"bundle_id\":\"%s\"}",
                                 (long long) seq[i], phases[lcg(&x) % ELEMENTSOF(phases)],
                                 i < N / 2 ? "b1" : "b2");
                } else if (what < 28) {
                        /* a plan whose windows pass while the node is silent */
                        char text[256];
                        snprintf(text, sizeof(text),
                                 "{\"windows\":[{\"start\":%lld,\"end\":%lld},{\"start\":%lld,"
                                 "\"end\":%lld},{\"start\":%lld,\"end\":%lld}]}",
                                 (long long) now + 50, (long long) now + 150, (long long) now + 400,
                                 (long long) now + 500, (long long) now + 900, (long long) now + 1000);
                        json_t *plan = json_loads(text, 0, NULL);
                        assert_int_equal(store_contact_plan_set(s, node, plan, now), 0);
                        json_decref(plan);
                        goto check;
                } else if (what < 30) {
                        /* y paused and resumed (refused once it is over: fine) */
                        free(msg);
                        msg = NULL;
                        (void) store_rollout_verb(s, "y", lcg(&x) % 2 ? "pause" : "resume", now,
                                                  NULL, &msg);
                        goto check;
                } else if (what < 45)
                        continue; /* silence: only time passes (checked at the next step) */
                json_decref(node_sync(s, node, 0, recs, now));
        check:
                for (int k = 0; k < 2; k++) {
                        const char *id = k ? "y" : "x";
                        counts_check(s, id, now);
                        json_t *r = NULL;
                        assert_int_equal(store_rollout_show(s, id, now, &r), 0);
                        json_t *c = json_object_get(r, "counts");
                        overdue += json_integer_value(json_object_get(c, "overdue")) > 0;
                        stages_moved += json_integer_value(json_object_get(r, "current_stage")) > 1;
                        size_t j;
                        json_t *e;
                        json_array_foreach(json_object_get(r, "stage_progress"), j, e) {
                                json_int_t h = json_integer_value(json_object_get(e, "held"));
                                if (h > max_held)
                                        max_held = h;
                        }
                        live_held += json_integer_value(json_object_get(c, "committed")) > 0 &&
                                     !strcmp(json_string_value(json_object_get(r, "state")),
                                             "running");
                        json_decref(r);
                }
        }
        free(msg);
        /* the sequence went through what the counts must follow */
        assert_true(max_held > 0);
        assert_true(overdue > 0);
        assert_true(stages_moved > 0);
        assert_true(live_held > 100); /* committed members while running: flags compared */
        store_close(s);
}

static void test_rollouts(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int calls = 0;
        store_set_command_signer(s, fake_sign, &calls);
        const char *nodes[] = {"n1", "n2", "n3", "n4"};
        for (size_t i = 0; i < 4; i++)
                json_decref(node_sync(s, nodes[i], 0, "", 100));
        struct store_bundle b = {.id = "b1", .version = "2.0.0", .size = 10, .sha256 = "ab"};
        assert_int_equal(store_bundle_add(s, &b, "signer", true, 100), 0);

        struct rollout_options o;
        char *msg = NULL, buf[64];
        const char *req = "{\"id\":\"r\",\"bundle_id\":\"b1\",\"stages\":\"50,100\","
                          "\"success_after\":\"1\",\"max_failures\":\"0\"}";
        assert_int_equal(rollout_request_parse(req, strlen(req), &o, &msg), 0);
        json_t *r = NULL;
        assert_int_equal(store_rollout_create(s, &o, 101, &r, &msg), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "counts"), "nodes")), 4);
        /* stage by the hash order: two in each */
        const char *first[2], *second[2];
        size_t nf = 0, ns = 0;
        for (size_t i = 0; i < 4; i++) {
                json_int_t st = json_integer_value(json_object_get(rollout_node(r, nodes[i]), "stage"));
                if (st == 1)
                        first[nf++] = nodes[i];
                else
                        second[ns++] = nodes[i];
        }
        assert_int_equal(nf, 2);
        assert_int_equal(ns, 2);
        json_decref(r);
        /* the id is taken; an unknown bundle is refused; a node is in one rollout at a time */
        assert_int_equal(store_rollout_create(s, &o, 101, NULL, &msg), -EEXIST);
        free(msg);
        msg = NULL;
        snprintf(o.id, sizeof(o.id), "other");
        assert_int_equal(store_rollout_create(s, &o, 101, NULL, &msg), -ENODATA);
        free(msg);
        msg = NULL;
        snprintf(o.bundle_id, sizeof(o.bundle_id), "nope");
        assert_int_equal(store_rollout_create(s, &o, 101, NULL, &msg), -ENOENT);
        free(msg);
        msg = NULL;

        /* before start nobody is told */
        json_t *c = node_sync(s, first[0], 0, "", 102);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "");
        json_decref(c);
        assert_int_equal(store_rollout_verb(s, "r", "start", 103, NULL, &msg), 0);
        assert_int_equal(store_rollout_verb(s, "r", "start", 103, NULL, &msg), -EINVAL);
        free(msg);
        msg = NULL;

        /* stage 1 nodes are told (once), stage 2 nodes not yet */
        c = node_sync(s, first[0], 0, "", 104);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.install");
        json_decref(c);
        c = node_sync(s, first[0], 0, "", 105); /* not applied yet: the same command again */
        assert_int_equal(json_array_size(c), 1);
        json_decref(c);
        c = node_sync(s, first[0], 1, "", 105);
        assert_int_equal(json_array_size(c), 0); /* never told twice */
        json_decref(c);
        c = node_sync(s, second[0], 0, "", 105);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "");
        json_decref(c);
        c = node_sync(s, first[1], 0, "", 105);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.install");
        json_decref(c);

        /* progress and commit; the gate is one contact after the commit */
        json_decref(node_sync(s, first[0], 1,
                              "1|update.installing|{\"bundle_id\":\"b1\"};"
                              "2|update.committed|{\"bundle_id\":\"b1\",\"reason\":\"ok\"}",
                              106));
        assert_string_equal(node_state_in(s, "r", first[0], buf, sizeof(buf)), "committed");
        json_decref(node_sync(s, first[1], 1, "1|update.committed|{\"bundle_id\":\"b1\"}", 106));
        json_decref(node_sync(s, first[0], 1, "", 107));
        r = NULL;
        assert_int_equal(store_rollout_show(s, "r", 107, &r), 0);
        assert_int_equal(json_integer_value(json_object_get(r, "current_stage")), 1);
        json_decref(r);
        json_decref(node_sync(s, first[1], 1, "", 108)); /* held: the stage passes */
        r = NULL;
        assert_int_equal(store_rollout_show(s, "r", 108, &r), 0);
        assert_int_equal(json_integer_value(json_object_get(r, "current_stage")), 2);
        json_decref(r);

        /* a restart loses nothing */
        store_close(s);
        s = open_store(f);
        store_set_command_signer(s, fake_sign, &calls);
        assert_string_equal(node_state_in(s, "r", first[0], buf, sizeof(buf)), "committed");
        c = node_sync(s, second[0], 0, "", 109);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.install");
        json_decref(c);

        /* the install command refused by the node: failed, over the threshold: halted */
        json_decref(node_sync(s, second[0], 1,
                              "1|command.result|{\"seq\":1,\"status\":\"rejected\",\"reason\":\"x\"}",
                              110));
        assert_string_equal(node_state_in(s, "r", second[0], buf, sizeof(buf)), "failed");
        r = NULL;
        assert_int_equal(store_rollout_show(s, "r", 110, &r), 0);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "halted");
        json_decref(r);
        c = node_sync(s, second[1], 0, "", 111);
        assert_string_equal(only_action(c, buf, sizeof(buf)), ""); /* no further node told */
        json_decref(c);
        assert_int_equal(store_rollout_verb(s, "r", "resume", 111, NULL, &msg), -EINVAL);
        free(msg);
        msg = NULL;

        /* abort: committed nodes are told to roll back; their rollback blocks the bundle */
        assert_int_equal(store_rollout_verb(s, "r", "abort", 112, NULL, &msg), 0);
        c = node_sync(s, first[0], 1, "", 113);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.rollback");
        json_decref(c);
        c = node_sync(s, first[0], 2, "", 114);
        assert_int_equal(json_array_size(c), 0); /* once */
        json_decref(c);
        json_decref(node_sync(s, first[0], 2, "3|update.rolled-back|{\"bundle_id\":\"b1\"}", 115));
        assert_string_equal(node_state_in(s, "r", first[0], buf, sizeof(buf)), "rolled-back");

        /* a new rollout of the same bundle skips the node that rolled back from it */
        assert_int_equal(store_node_group_add(s, first[0], "g", 116), 0);
        assert_int_equal(store_node_group_add(s, second[1], "g", 116), 0);
        json_t *groups = NULL;
        assert_int_equal(store_node_groups(s, first[0], &groups), 0);
        assert_string_equal(json_string_value(json_array_get(groups, 0)), "g");
        json_decref(groups);
        const char *req2 = "{\"bundle_id\":\"b1\",\"target\":\"g\",\"stages\":[100]}";
        assert_int_equal(rollout_request_parse(req2, strlen(req2), &o, &msg), 0);
        r = NULL;
        assert_int_equal(store_rollout_create(s, &o, 117, &r, &msg), 0);
        assert_string_equal(json_string_value(json_object_get(r, "id")), "rollout-2");
        assert_string_equal(json_string_value(json_object_get(rollout_node(r, first[0]), "state")),
                            "skipped");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "counts"), "nodes")), 2);
        json_decref(r);
        assert_int_equal(store_rollout_verb(s, "rollout-2", "start", 118, NULL, &msg), 0);
        c = node_sync(s, first[0], 2, "", 119);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "");
        json_decref(c);
        c = node_sync(s, second[1], 0, "", 119);
        assert_string_equal(only_action(c, buf, sizeof(buf)), "update.install");
        json_decref(c);
        json_t *list = NULL;
        assert_int_equal(store_rollouts_list(s, 120, &list), 0);
        assert_int_equal(json_array_size(list), 2);
        json_decref(list);
        store_close(s);
}

/* What GET /metrics shows comes from here: nodes with their last health, records, lag,
 * commands, rollouts. */
static void test_metrics_collect(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        json_decref(node_sync(s, "m1", 0,
                              "1|health.report|{\"level\":\"warm\",\"metrics\":{\"zone.cpu.temp_c\":"
                              "{\"min\":40,\"max\":50,\"mean\":45,\"last\":48,\"n\":3}}}",
                              100));
        json_decref(node_sync(s, "m2", 0, "", 100));
        json_t *m = NULL;
        assert_int_equal(store_metrics_collect(s, 110, &m), 0);
        json_t *nodes = json_object_get(m, "nodes");
        assert_int_equal(json_array_size(nodes), 2);
        json_t *m1 = json_array_get(nodes, 0);
        assert_string_equal(json_string_value(json_object_get(m1, "id")), "m1");
        assert_int_equal(json_integer_value(json_object_get(m1, "last_sync")), 100);
        assert_string_equal(json_string_value(json_object_get(json_object_get(m1, "health"), "level")),
                            "warm");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "records"),
                                                            "health.report")), 1);
        json_t *lag = json_object_get(json_object_get(m, "record_lag"), "health.report");
        assert_non_null(lag);
        /* created at time_usec 1 (1970), received at 100 */
        assert_true(json_real_value(json_object_get(lag, "max")) > 99.0);
        json_decref(m);
        store_close(s);
}

/* ---- usage metering (#19 item 5) ---------------------------------------------------------- */

#define METER "00112233445566778899aabbccddeeff"

/* A usage.report record of node n1 at seq, boot epoch 2 (critical, as the node sends it). */
static char *usage_rec(int seq, const char *body) {
        char *t;
        assert_true(asprintf(&t,
                             "{\"format\":1,\"key\":{\"node\":\"n1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                             "\",\"seq\":%d},\"priority\":\"critical\",\"kind\":\"usage.report\","
                             "\"time_usec\":1,\"monotonic_usec\":2,\"body\":%s}",
                             seq, body) > 0);
        return t;
}

/* One sync of n1 carrying the records (a comma-separated list) at now; how many were new. */
static size_t usage_sync(struct store *s, const char *records, int64_t now) {
        struct sync_request req;
        make_sync(&req, 0, records);
        json_t *cmds = NULL;
        size_t stored = 0;
        assert_int_equal(store_sync(s, &req, now, 32, &cmds, &stored), 0);
        json_decref(cmds);
        sync_request_done(&req);
        return stored;
}

static json_t *usage_sum(struct store *s, enum usage_by by, const char *tenant, const char *deployment,
                         int64_t since, int64_t until) {
        struct usage_query q = {.by = by, .since = since, .until = until};
        snprintf(q.tenant, sizeof(q.tenant), "%s", tenant ? tenant : "");
        snprintf(q.deployment, sizeof(q.deployment), "%s", deployment ? deployment : "");
        json_t *rows = NULL;
        assert_int_equal(store_usage_sum(s, &q, &rows), 0);
        return rows;
}

/* The row of a sum whose key (by) is name (NULL: the row without one). */
static json_t *usage_row(json_t *rows, const char *by, const char *name) {
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) {
                const char *k = json_string_value(json_object_get(r, by));
                if (name ? k && strcmp(k, name) == 0 : !k)
                        return r;
        }
        fail_msg("no usage row for %s %s", by, name ? name : "(none)");
        return NULL;
}

static double real(json_t *o, const char *key) {
        return json_number_value(json_object_get(o, key));
}

static int64_t usage_count(struct store *s, const char *sql) {
        int64_t v = -1;
        assert_int_equal(store_get_int64(s, &v, sql, ""), 1);
        return v;
}

/* Reports are cumulative: the latest of each meter's entry is what counts, a report under
 * two record keys, again after the records' pruning and a reopen of the store, changes
 * nothing; a body that does not parse is kept as a record and counts nothing. */
static void test_usage_counted_once(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        /* det is a deployment's of acme, n1 a member: billed to acme on the controller's word */
        assert_int_equal(store_script(s,
                                      "INSERT INTO nodes (id, created) VALUES ('n1', 0); "
                                      "INSERT INTO deployments (id, workload, request, state, created) VALUES "
                                      "('dep-a', 'det', '{\"spec\":{\"name\":\"det\",\"tenant\":\"acme\"}}', 'running', 0); "
                                      "INSERT INTO deployment_nodes (deployment, node, stage, state) VALUES ('dep-a', 'n1', 0, 'told')"),
                         0);
        const char *i1 = "{\"meter\":\"" METER "\",\"interval\":1,\"start\":1000,\"end\":1300,\"duration_sec\":300,"
                         "\"board_energy_j\":4500.0,\"entries\":["
                         "{\"workload\":\"det\",\"tenant\":\"acme\",\"deployment\":\"dep-a\",\"app\":\"hello\",\"cpu_sec\":10.5,"
                         "\"memory_byte_sec\":3.0e9,\"energy_j\":100,\"link_bytes\":0},"
                         "{\"app\":\"hello\",\"link_bytes\":123456}]}";
        /* report 2: det's totals grew (CPU only); the app's entry is not repeated */
        const char *i2 = "{\"meter\":\"" METER "\",\"interval\":2,\"start\":1000,\"end\":1600,\"duration_sec\":300,"
                         "\"entries\":[{\"workload\":\"det\",\"tenant\":\"acme\",\"deployment\":\"dep-a\",\"app\":\"hello\",\"cpu_sec\":15,"
                         "\"memory_byte_sec\":3.0e9,\"energy_j\":100,\"link_bytes\":0}]}";
        char *r1 = usage_rec(1, i1), *r2 = usage_rec(2, i1), *r3 = usage_rec(3, i2),
             *bad = usage_rec(4, "{\"meter\":\"" METER "\",\"interval\":3,\"start\":1,\"end\":2,\"duration_sec\":1,"
                                 "\"entries\":[{\"workload\":\"det\",\"cpu_sec\":-1}]}");
        char *all;
        /* report 1 under seq 1 and again under seq 2 (sent again under another key), report
         * 2, and a body that does not parse */
        assert_true(asprintf(&all, "%s,%s,%s,%s", r1, r2, r3, bad) > 0);
        assert_int_equal(usage_sync(s, all, 100), 4);
        assert_int_equal(usage_sync(s, all, 101), 0); /* the same sync again (its ack was lost) */

        json_t *rows = usage_sum(s, USAGE_BY_TENANT, NULL, NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 2);
        json_t *acme = usage_row(rows, "tenant", "acme");
        assert_true(real(acme, "cpu_sec") == 15.0);
        assert_true(real(acme, "memory_byte_sec") == 3.0e9);
        assert_true(real(acme, "energy_j") == 100.0);
        assert_true(fabs(real(acme, "energy_wh") - 100.0 / 3600.0) < 1e-12);
        assert_int_equal(json_integer_value(json_object_get(acme, "link_bytes")), 0);
        assert_int_equal(json_integer_value(json_object_get(acme, "meters")), 1);
        assert_int_equal(json_integer_value(json_object_get(acme, "entries")), 1);
        assert_int_equal(json_integer_value(json_object_get(acme, "nodes")), 1);
        json_t *none = usage_row(rows, "tenant", NULL); /* the app's download: no tenant */
        assert_int_equal(json_integer_value(json_object_get(none, "link_bytes")), 123456);
        assert_true(real(none, "cpu_sec") == 0.0);
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_WORKLOAD, NULL, NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 2);
        assert_true(real(usage_row(rows, "workload", "det"), "cpu_sec") == 15.0);
        assert_int_equal(json_integer_value(json_object_get(usage_row(rows, "workload", "app:hello"), "link_bytes")),
                         123456);
        json_decref(rows);

        /* the refused body: its record is there, it is counted as refused, nothing summed */
        assert_int_equal(usage_count(s, "SELECT count(*) FROM records WHERE kind = 'usage.report'"), 4);
        assert_int_equal(usage_count(s, "SELECT usage_refused FROM nodes WHERE id = 'n1'"), 1);
        assert_int_equal(usage_count(s, "SELECT usage_reports FROM nodes WHERE id = 'n1'"), 2);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage_reports WHERE interval = 3"), 0);
        json_t *snap = NULL;
        assert_int_equal(store_metrics_collect(s, 110, &snap), 0);
        json_t *n1 = json_array_get(json_object_get(snap, "nodes"), 0);
        assert_int_equal(json_integer_value(json_object_get(n1, "usage_reports")), 2);
        assert_int_equal(json_integer_value(json_object_get(n1, "usage_refused")), 1);
        json_decref(snap);
        assert_true(usage_count(s, "SELECT board_energy_j FROM usage_reports WHERE interval = 1") == 4500);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage_reports WHERE interval = 2 AND "
                                        "board_energy_j IS NULL"),
                         1);

        /* the records pruned (retention), the store reopened, the interval sent again under
         * a new key: still counted once */
        int64_t deleted = 0;
        assert_int_equal(store_records_prune(s, 1000, 1000, &deleted), 0);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM records WHERE kind = 'usage.report'"), 0);
        store_close(s);
        s = open_store(f);
        char *r9 = usage_rec(9, i1);
        assert_int_equal(usage_sync(s, r9, 200), 1);
        assert_int_equal(usage_sync(s, r1, 200), 1); /* its first key, pruned, arrives again */
        rows = usage_sum(s, USAGE_BY_TENANT, "acme", NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 1);
        assert_true(real(json_array_get(rows, 0), "cpu_sec") == 15.0);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "meters")), 1);
        json_decref(rows);
        /* a new meter (the node lost its meter state): its totals add to the first meter's */
        char *other = strdup(i2), *m = strstr(other, METER);
        memcpy(m, "ffeeddccbbaa99887766554433221100", 32);
        char *r10 = usage_rec(10, other);
        assert_int_equal(usage_sync(s, r10, 300), 1);
        rows = usage_sum(s, USAGE_BY_TENANT, "acme", NULL, 0, 0);
        assert_true(real(json_array_get(rows, 0), "cpu_sec") == 30.0);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "meters")), 2);
        json_decref(rows);
        /* by the controller's receipt time [since, until): the latest total before until,
         * less the latest before since */
        rows = usage_sum(s, USAGE_BY_TENANT, "acme", NULL, 100, 300);
        assert_true(real(json_array_get(rows, 0), "cpu_sec") == 15.0);
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_TENANT, "acme", NULL, 300, 0); /* the new meter's only */
        assert_true(real(json_array_get(rows, 0), "cpu_sec") == 15.0);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "meters")), 1);
        json_decref(rows);
        /* report 3 of the first meter, received at 400: the window [300, 500) has its growth */
        char *i3 = strdup(i2), *n = strstr(i3, "\"interval\":2"), *c = strstr(i3, "\"cpu_sec\":15");
        n[11] = '3';
        memcpy(c, "\"cpu_sec\":17", 12);
        char *r11 = usage_rec(11, i3);
        assert_int_equal(usage_sync(s, r11, 400), 1);
        rows = usage_sum(s, USAGE_BY_TENANT, "acme", NULL, 300, 500);
        assert_true(real(json_array_get(rows, 0), "cpu_sec") == 2.0 + 15.0);
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_TENANT, "acme", NULL, 0, 0);
        assert_true(real(json_array_get(rows, 0), "cpu_sec") == 17.0 + 15.0);
        json_decref(rows);
        free(i3), free(r11);
        rows = usage_sum(s, USAGE_BY_TENANT, "nobody", NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 0);
        json_decref(rows);
        free(other);
        free(r1), free(r2), free(r3), free(bad), free(all), free(r9), free(r10);
        store_close(s);
}

/* A controller of before metering kept usage.report records as records only: the
 * migration to schema 13 counts them. */
static void test_usage_backfill(void **state) {
        if (!on_sqlite())
                skip(); /* SQLite's migrations: PostgreSQL's schema starts at 14 */
        struct fixture *f = *state;
        struct store *s = open_store(f);
        const char *i1 = "{\"meter\":\"" METER "\",\"interval\":1,\"start\":1,\"end\":2,\"duration_sec\":1,"
                         "\"entries\":[{\"workload\":\"det\",\"tenant\":\"acme\",\"cpu_sec\":2}]}";
        char *r1 = usage_rec(1, i1), *r2 = usage_rec(2, i1), *bad = usage_rec(3, "{}"), *all;
        assert_true(asprintf(&all, "%s,%s,%s", r1, r2, bad) > 0);
        assert_int_equal(usage_sync(s, all, 100), 3);
        /* back to schema 12, as if the records came to a controller of before */
        assert_int_equal(store_script(s, "DROP TABLE usage; DROP TABLE usage_reports; DROP TABLE usage_latest; "
                                         "ALTER TABLE nodes DROP COLUMN usage_thinned_before; "
                                         "ALTER TABLE nodes DROP COLUMN usage_reports; "
                                         "ALTER TABLE nodes DROP COLUMN usage_refused; "
                                         "UPDATE schema_version SET version = 12"),
                         0);
        store_close(s);
        s = open_store(f);
        assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
        json_t *rows = usage_sum(s, USAGE_BY_TENANT, NULL, NULL, 100, 101);
        assert_int_equal(json_array_size(rows), 1); /* acme is only n1's word */
        assert_true(json_is_null(json_object_get(json_array_get(rows, 0), "tenant")));
        assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "claimed_tenant")), "acme");
        assert_true(real(json_array_get(rows, 0), "cpu_sec") == 2.0);
        json_decref(rows);
        assert_int_equal(usage_count(s, "SELECT usage_refused FROM nodes WHERE id = 'n1'"), 1);
        assert_int_equal(usage_count(s, "SELECT usage_reports FROM nodes WHERE id = 'n1'"), 1);
        free(r1), free(r2), free(bad), free(all);
        store_close(s);
}

/* A tenant only on the controller's own knowledge: a deployment it knows, of which the node
 * is a member, bills its spec's tenant; anything else bills none, the node's claim kept
 * apart (its own row by tenant, never in the tenant's total). */
static void test_usage_deployment_tenant(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        assert_int_equal(store_exec(s, "INSERT INTO nodes (id, created) VALUES ('n1', 0), ('n2', 0)", ""), 0);
        assert_int_equal(store_script(s,
                                      "INSERT INTO deployments (id, workload, request, state, created) VALUES "
                                      "('dep-a', 'det', '{\"spec\":{\"name\":\"det\",\"tenant\":\"globex\"}}', 'running', 0), "
                                      "('dep-b', 'cam', '{\"spec\":{\"name\":\"cam\"}}', 'running', 0), "
                                      "('dep-c', 'oth', '{\"spec\":{\"name\":\"oth\",\"tenant\":\"globex\"}}', 'running', 0), "
                                      "('dep-d', 'pnd', '{\"spec\":{\"name\":\"pnd\",\"tenant\":\"globex\"}}', 'running', 0); "
                                      "INSERT INTO deployment_nodes (deployment, node, stage, state) VALUES "
                                      "('dep-a', 'n1', 0, 'committed'), ('dep-b', 'n1', 0, 'told'), ('dep-c', 'n2', 0, 'told'), "
                                      "('dep-d', 'n1', 1, 'pending')"),
                         0);
        const char *body = "{\"meter\":\"" METER "\",\"interval\":1,\"start\":1,\"end\":2,\"duration_sec\":1,"
                           "\"entries\":["
                           "{\"workload\":\"det\",\"tenant\":\"acme\",\"deployment\":\"dep-a\",\"cpu_sec\":1},"
                           "{\"workload\":\"cam\",\"tenant\":\"acme\",\"deployment\":\"dep-b\",\"cpu_sec\":2},"
                           "{\"workload\":\"oth\",\"tenant\":\"acme\",\"deployment\":\"dep-c\",\"cpu_sec\":16},"
                           "{\"workload\":\"own\",\"tenant\":\"acme\",\"deployment\":\"dep-x\",\"cpu_sec\":4},"
                           "{\"workload\":\"mine\",\"tenant\":\"acme\",\"cpu_sec\":32},"
                           "{\"workload\":\"loc\",\"cpu_sec\":8},"
                           /* a member never told (its stage to come), and another workload than
                            * the deployment's: the node's word, not billed */
                           "{\"workload\":\"pnd\",\"tenant\":\"acme\",\"deployment\":\"dep-d\",\"cpu_sec\":64},"
                           "{\"workload\":\"wrong\",\"tenant\":\"acme\",\"deployment\":\"dep-a\",\"cpu_sec\":128}]}";
        char *r1 = usage_rec(1, body);
        assert_int_equal(usage_sync(s, r1, 100), 1);
        json_t *rows = usage_sum(s, USAGE_BY_TENANT, NULL, NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 3);
        json_t *g = usage_row(rows, "tenant", "globex");
        assert_true(real(g, "cpu_sec") == 1.0);
        assert_true(json_is_null(json_object_get(g, "claimed_tenant")));
        /* no row bills acme: what n1 claimed for it (dep-c of n2 only, dep-x unknown, its
         * own workload) is a row of its own */
        size_t i;
        json_t *x, *claimed = NULL, *none = NULL;
        json_array_foreach(rows, i, x) {
                assert_true(json_is_null(json_object_get(x, "tenant")) || x == g);
                const char *c = json_string_value(json_object_get(x, "claimed_tenant"));
                if (json_is_null(json_object_get(x, "tenant")) && c && strcmp(c, "acme") == 0)
                        claimed = x;
                else if (json_is_null(json_object_get(x, "tenant")) && !c)
                        none = x;
        }
        assert_non_null(claimed);
        assert_true(real(claimed, "cpu_sec") == 16.0 + 4.0 + 32.0 + 64.0 + 128.0);
        assert_int_equal(json_integer_value(json_object_get(claimed, "entries")), 5);
        /* dep-b has no tenant: none, whatever the node says (this controller knows it has
         * none: no claim to show); loc said none */
        assert_non_null(none);
        assert_true(real(none, "cpu_sec") == 2.0 + 8.0);
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_TENANT, "acme", NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 0);
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_DEPLOYMENT, NULL, NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 6);
        assert_true(real(usage_row(rows, "deployment", "dep-a"), "cpu_sec") == 1.0 + 128.0);
        assert_true(real(usage_row(rows, "deployment", "dep-b"), "cpu_sec") == 2.0);
        assert_true(real(usage_row(rows, "deployment", "dep-c"), "cpu_sec") == 16.0);
        assert_true(real(usage_row(rows, "deployment", NULL), "cpu_sec") == 40.0);
        assert_false(json_object_get(json_array_get(rows, 0), "claimed_tenant")); /* by tenant only */
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_NODE, "globex", "dep-a", 0, 0);
        assert_int_equal(json_array_size(rows), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "node")), "n1");
        json_decref(rows);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE tenant_from = 'deployment'"), 2);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'oth' AND tenant IS NULL AND "
                                        "tenant_from = 'deployment-not-on-node' AND claimed_tenant = 'acme'"),
                         1);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'own' AND tenant IS NULL AND "
                                        "tenant_from = 'unknown-deployment' AND claimed_tenant = 'acme'"),
                         1);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'mine' AND tenant IS NULL AND "
                                        "tenant_from = 'unverified-node-claim' AND claimed_tenant = 'acme'"),
                         1);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'pnd' AND tenant IS NULL AND "
                                        "tenant_from = 'deployment-not-on-node' AND claimed_tenant = 'acme'"),
                         1);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'wrong' AND tenant IS NULL AND "
                                        "tenant_from = 'deployment-other-workload' AND claimed_tenant = 'acme'"),
                         1);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'loc' AND tenant IS NULL AND "
                                        "tenant_from = 'none' AND claimed_tenant IS NULL"),
                         1);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'det' AND tenant = 'globex' AND "
                                        "claimed_tenant = 'acme'"),
                         1);
        free(r1);
        store_close(s);
}

/* A report of det (of n1's meter) at interval k with cpu_sec = k. */
static char *thin_rec(int seq, int k) {
        char *body, *r;
        assert_true(asprintf(&body,
                             "{\"meter\":\"" METER "\",\"interval\":%d,\"start\":1,\"end\":2,\"duration_sec\":1,"
                             "\"entries\":[{\"workload\":\"det\",\"cpu_sec\":%d}]}",
                             k, k) > 0);
        r = usage_rec(seq, body);
        free(body);
        return r;
}

static double thin_cpu(struct store *s, int64_t since, int64_t until) {
        json_t *rows = usage_sum(s, USAGE_BY_NODE, NULL, NULL, since, until);
        double v = json_array_size(rows) ? real(json_array_get(rows, 0), "cpu_sec") : 0;
        json_decref(rows);
        return v;
}

/* The latest report of each entry kept on insert; thinning keeps one report per entry per
 * UTC day before the exact days, and more days while over the cap: sums with edges at 00:00
 * UTC (or after the thinned part) are what they were; a report thinned, sent again, changes
 * nothing. */
static void test_usage_thinning(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        const int64_t D = 86400;
        int seq = 1, k = 1;
        /* days 0 to 3, and 8 and 9: four reports a day, at 01:00, 07:00, 13:00, 19:00 */
        static const int days[] = {0, 1, 2, 3, 8, 9};
        for (size_t d = 0; d < ELEMENTSOF(days); d++)
                for (int h = 1; h < 24; h += 6) {
                        char *r = thin_rec(seq++, k++);
                        assert_int_equal(usage_sync(s, r, days[d] * D + h * 3600), 1);
                        free(r);
                }
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage"), 24);
        assert_int_equal(usage_count(s, "SELECT max(interval) FROM usage_latest"), 24);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage_latest"), 1);
        /* an interval received out of order (older than the latest) is not kept */
        char *late = thin_rec(seq++, 3);
        assert_int_equal(usage_sync(s, late, 9 * D + 23 * 3600), 1);
        free(late);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage"), 24);
        static const int64_t edges[][2] = {{0, 0}, {D, 3 * D}, {2 * D, 0}, {0, 2 * D}, {4 * D, 9 * D}, {9 * D, 0},
                                           {8 * D + 2 * 3600, 9 * D + 8 * 3600}};
        double before[ELEMENTSOF(edges)];
        for (size_t i = 0; i < ELEMENTSOF(edges); i++)
                before[i] = thin_cpu(s, edges[i][0], edges[i][1]);
        assert_true(before[0] == 24.0);
        assert_true(before[1] == 8.0);                /* intervals 5 to 12 */
        assert_true(before[6] == 22.0 - 17.0);        /* 01:00 day 8 (17) -> 07:00 day 9 (22) */

        /* now day 10 noon, 5 exact days: days 0 to 4 thinned, one report each day */
        int64_t deleted = 0;
        assert_int_equal(store_usage_thin(s, 10 * D + 12 * 3600, 5, 0, &deleted), 0);
        assert_int_equal(deleted, 12);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage"), 12);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage_reports"), 12);
        assert_int_equal(usage_count(s, "SELECT usage_thinned_before FROM nodes WHERE id = 'n1'"), 5 * D);
        for (size_t i = 0; i < ELEMENTSOF(edges); i++)
                assert_true(thin_cpu(s, edges[i][0], edges[i][1]) == before[i]);
        /* again: nothing more to do */
        assert_int_equal(store_usage_thin(s, 10 * D + 12 * 3600, 5, 0, &deleted), 0);
        assert_int_equal(deleted, 0);

        /* a cap of 10: the oldest day not thinned yet (day 8) is, then it fits (4 + 1 + 4) */
        assert_int_equal(store_usage_thin(s, 10 * D + 12 * 3600, 5, 10, &deleted), 0);
        assert_int_equal(deleted, 3);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage"), 9);
        assert_int_equal(usage_count(s, "SELECT usage_thinned_before FROM nodes WHERE id = 'n1'"), 9 * D);
        for (size_t i = 0; i < 6; i++) /* edges at 00:00 UTC or after day 8 */
                assert_true(thin_cpu(s, edges[i][0], edges[i][1]) == before[i]);
        /* a cap below one a day: down to today, never coarser, the latest kept */
        assert_int_equal(store_usage_thin(s, 10 * D + 12 * 3600, 5, 1, &deleted), 0);
        assert_int_equal(deleted, 3);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage"), 6);
        assert_int_equal(usage_count(s, "SELECT max(interval) FROM usage"), 24);
        for (size_t i = 0; i < 6; i++)
                assert_true(thin_cpu(s, edges[i][0], edges[i][1]) == before[i]);

        /* a thinned report sent again (a new record key): kept once, nothing changes */
        char *again = thin_rec(seq++, 2);
        assert_int_equal(usage_sync(s, again, 11 * D), 1);
        free(again);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage"), 6);
        assert_true(thin_cpu(s, 0, 0) == 24.0);
        store_close(s);
}

/* A store of schema 13: rows billed on the node's word bill no tenant after the migration to
 * 14, the claim kept; the latest table is filled from the rows there are. */
static void test_usage_migration_14(void **state) {
        if (!on_sqlite())
                skip(); /* SQLite's migrations: PostgreSQL's schema starts at 14 */
        struct fixture *f = *state;
        struct store *s = open_store(f);
        assert_int_equal(store_exec(s, "INSERT INTO nodes (id, created) VALUES ('n1', 0)", ""), 0);
        assert_int_equal(store_script(s,
                                      "INSERT INTO deployments (id, workload, request, state, created) VALUES "
                                      "('dep-a', 'det', '{\"spec\":{\"name\":\"det\",\"tenant\":\"globex\"}}', 'running', 0), "
                                      "('dep-c', 'oth', '{\"spec\":{\"name\":\"oth\",\"tenant\":\"globex\"}}', 'running', 0); "
                                      "INSERT INTO deployment_nodes (deployment, node, stage) VALUES ('dep-a', 'n1', 0)"),
                         0);
        for (int k = 1; k <= 3; k++) {
                char *body;
                assert_true(asprintf(&body,
                                     "{\"meter\":\"" METER "\",\"interval\":%d,\"start\":1,\"end\":2,\"duration_sec\":1,"
                                     "\"entries\":[{\"workload\":\"det\",\"deployment\":\"dep-a\",\"cpu_sec\":%d},"
                                     "{\"workload\":\"oth\",\"deployment\":\"dep-c\",\"cpu_sec\":%d},"
                                     "{\"workload\":\"mine\",\"tenant\":\"acme\",\"cpu_sec\":%d}]}",
                                     k, k, 10 * k, 100 * k) > 0);
                char *r = usage_rec(k, body);
                assert_int_equal(usage_sync(s, r, 100 * k), 1);
                free(r), free(body);
        }
        /* back to schema 13 as a controller of 13 kept it: billed on the node's word */
        assert_int_equal(store_script(s, "DROP TABLE usage_latest; DROP INDEX usage_window; "
                                         "CREATE INDEX usage_by_entry ON usage(node, meter, entry, interval); "
                                         "CREATE INDEX usage_by_tenant ON usage(tenant, received); "
                                         "CREATE INDEX usage_by_deployment ON usage(deployment, received); "
                                         "UPDATE usage SET tenant = claimed_tenant, tenant_from = 'node' "
                                         " WHERE workload = 'mine'; "
                                         "UPDATE usage SET tenant = 'globex', tenant_from = 'deployment' "
                                         " WHERE workload IN ('det', 'oth'); "
                                         "ALTER TABLE usage DROP COLUMN claimed_tenant; "
                                         "ALTER TABLE nodes DROP COLUMN usage_thinned_before; "
                                         "UPDATE schema_version SET version = 13"),
                         0);
        store_close(s);
        s = open_store(f);
        assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage_latest"), 3);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage_latest WHERE interval = 3 AND received = 300"), 3);
        json_t *rows = usage_sum(s, USAGE_BY_TENANT, NULL, NULL, 0, 0);
        assert_int_equal(json_array_size(rows), 3);
        assert_true(real(usage_row(rows, "tenant", "globex"), "cpu_sec") == 3.0);
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_TENANT, NULL, NULL, 150, 0); /* intervals 1 -> 3 */
        assert_true(real(usage_row(rows, "tenant", "globex"), "cpu_sec") == 2.0);
        json_decref(rows);
        rows = usage_sum(s, USAGE_BY_TENANT, NULL, NULL, 150, 250); /* 1 -> 2 */
        assert_true(real(usage_row(rows, "tenant", "globex"), "cpu_sec") == 1.0);
        json_decref(rows);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'mine' AND tenant IS NULL "
                                        "AND claimed_tenant = 'acme' AND tenant_from = 'unverified-node-claim'"),
                         3);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'oth' AND tenant IS NULL "
                                        "AND tenant_from = 'deployment-not-on-node'"),
                         3);
        assert_int_equal(usage_count(s, "SELECT count(*) FROM usage WHERE workload = 'det' AND tenant = 'globex'"),
                         3);
        store_close(s);
}

/* n1 reports desired state VERSION reached, det running healthy (record SEQ), and the
 * deployments are driven at NOW: the state of n1's member of det-2. */
static const char *member_after_report(struct store *s, int seq, int version, int64_t now) {
        static char state[32];
        char body[256], *rec = NULL;
        snprintf(body, sizeof(body),
                 "{\"version\": %d, \"reached\": true, \"workloads\": [{\"name\": \"det\", \"state\": "
                 "\"done\", \"workload\": \"running\", \"health\": \"healthy\"}]}",
                 version);
        assert_true(asprintf(&rec,
                             "{\"format\":1,\"key\":{\"node\":\"n1\",\"boot_epoch\":2,\"boot_id\":\"" BOOT
                             "\",\"seq\":%d},\"priority\":\"normal\",\"kind\":\"desired.state\",\"time_usec\":1,"
                             "\"monotonic_usec\":2,\"body\":%s}",
                             seq, body) > 0);
        assert_int_equal(usage_sync(s, rec, now), 1);
        free(rec);
        assert_int_equal(store_deployments_drive(s, now), 0);
        _cleanup_stmt_ struct store_stmt *st = NULL;
        assert_int_equal(store_query_row(s, &st, "SELECT state FROM deployment_nodes WHERE node = 'n1'", ""), 1);
        snprintf(state, sizeof(state), "%s", store_col_str(st, 0));
        return state;
}

/* A completed deployment follows a member that was overdue (its node offline through it):
 * committed once the node reports the workload running healthy at the version told. */
/* A record packed (store-record-form.h), and a node's last health report: smaller than
 * their text, read back the same; a store of schema 14 keeps its text, read as it is beside
 * the packed values, by the listing, the desired state's report, retention, the node. */
#define METRIC(name) "\"" name "\":{\"min\":41.25,\"max\":47.5,\"mean\":43.817,\"last\":44.125,\"n\":60}"
#define HEALTH_BODY                                                                                  \
        "{\"level\":\"nominal\",\"metrics\":{" METRIC("zone.thermal_zone0.temp_c") ","               \
        METRIC("zone.thermal_zone1.temp_c") "," METRIC("cpu.busy_percent") "," METRIC("load1") "," \
        METRIC("mem.available_mib") "," METRIC("agent.rss_kib") "}}"

static void test_records_packed_from_schema_14(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        assert_int_equal(usage_sync(s, "", 50), 0); /* n1 known */
        /* back to schema 14: the record a text column (PostgreSQL), two records as stored then */
        if (!on_sqlite())
                assert_int_equal(store_script(s, "ALTER TABLE records ALTER COLUMN record TYPE text "
                                                 "USING convert_from(record, 'UTF8');"
                                                 "ALTER TABLE nodes ALTER COLUMN health TYPE text "
                                                 "USING convert_from(health, 'UTF8')"),
                                 0);
        assert_int_equal(store_exec(s, "UPDATE nodes SET health = '{\"level\":\"old\"}'", ""), 0);
        assert_int_equal(store_exec(s,
                                    "INSERT INTO records (node, boot_epoch, boot_id, seq, kind, priority, "
                                    "time_usec, received, record) VALUES ('n1', 2, ?1, 1, 'health.report', "
                                    "'normal', 1, 60, ?2), ('n1', 2, ?1, 2, 'desired.state', 'normal', 1, 60, ?3)",
                                    "ttt", BOOT, REC(1, "health.report", "{\"old\":true}"),
                                    REC(2, "desired.state", "{\"version\":7,\"workloads\":[]}")),
                         0);
        assert_int_equal(store_exec(s, "UPDATE schema_version SET version = 14", ""), 0);
        store_close(s);
        s = open_store(f);
        assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
        json_t *node = NULL;
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        assert_string_equal(json_string_value(json_object_get(json_object_get(node, "health"), "level")), "old");
        json_decref(node);

        const char *text = REC(3, "health.report", HEALTH_BODY);
        assert_int_equal(usage_sync(s, text, 100), 1);
        assert_int_equal(usage_sync(s, text, 101), 0); /* once, packed or not */
        int64_t n = 0;
        assert_int_equal(store_get_int64(s, &n, "SELECT length(record) FROM records WHERE seq = 3", ""), 1);
        assert_true(n > 0 && n < (int64_t) strlen(text) / 2);
        assert_int_equal(store_get_int64(s, &n, "SELECT length(health) FROM nodes", ""), 1);
        assert_true(n > 0 && n < (int64_t) strlen(HEALTH_BODY) / 2);
        assert_int_equal(store_node_show(s, "n1", &node), 0);
        json_t *body = json_loads(HEALTH_BODY, 0, NULL);
        assert_true(json_equal(json_object_get(node, "health"), body));
        json_decref(body);
        json_decref(node);

        json_t *recs = NULL;
        assert_int_equal(store_records_list(s, "n1", NULL, 10, &recs), 0);
        assert_int_equal(json_array_size(recs), 3);
        assert_true(json_is_true(json_object_get(json_object_get(json_array_get(recs, 0), "body"), "old")));
        json_t *sent = json_loads(text, 0, NULL);
        assert_true(json_equal(json_array_get(recs, 2), sent));
        json_decref(sent);
        json_decref(recs);
        assert_int_equal(store_records_list(s, "n1", "health.*", 10, &recs), 0);
        assert_int_equal(json_array_size(recs), 2);
        json_decref(recs);

        json_t *desired = NULL;
        assert_int_equal(store_desired_get(s, "n1", &desired), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(desired, "report"), "version")), 7);
        json_decref(desired);

        int64_t deleted = 0;
        assert_int_equal(store_records_prune(s, 1000, 100, &deleted), 0);
        assert_int_equal(deleted, 3);
        store_close(s);
}

/* The stored form alone: a small value as its text, a large one in a zstd frame, both
 * read back equal; a frame cut short or text that is not JSON refused. */
static void test_record_form(void **state) {
        (void) state;
        char *form = NULL;
        size_t len = 0;
        json_t *small = json_pack("{s:i}", "a", 1), *back = NULL;
        assert_int_equal(record_form_pack(small, &form, &len), 0);
        assert_int_equal(len, strlen("{\"a\":1}"));
        assert_memory_equal(form, "{\"a\":1}", len);
        assert_int_equal(record_form_unpack(form, len, &back), 0);
        assert_true(json_equal(back, small));
        json_decref(back);
        free(form);
        json_t *big = json_loads(HEALTH_BODY, 0, NULL);
        assert_int_equal(record_form_pack(big, &form, &len), 0);
        assert_true(len < strlen(HEALTH_BODY) / 2);
        assert_memory_equal(form, "\x28\xb5\x2f\xfd", 4);
        assert_int_equal(record_form_unpack(form, len, &back), 0);
        assert_true(json_equal(back, big));
        json_decref(back);
        back = NULL;
        assert_int_equal(record_form_unpack(form, len / 2 + 1, &back), -EBADMSG); /* cut short */
        assert_null(back);
        free(form);
        assert_int_equal(record_form_unpack("{\"a\":", 5, &back), -EBADMSG);
        assert_int_equal(record_form_pack(NULL, &form, &len), 0);
        assert_null(form);
        json_decref(small);
        json_decref(big);
}

static void test_completed_deployment_follows_overdue(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int calls = 0;
        store_set_desired_signer(s, fake_sign, &calls);
        assert_int_equal(usage_sync(s, "", 100), 0); /* n1 known */
        assert_int_equal(store_exec(s,
                                    "INSERT INTO deployments (id, workload, request, state, created, reason) VALUES "
                                    "('det-2', 'det', '{\"id\": \"det-2\", \"bundle_id\": \"det-2.0\", "
                                    "\"spec\": {\"name\": \"det\", \"app\": {\"version\": \"2\"}}, "
                                    "\"report_deadline\": \"20s\", \"max_failures\": \"1\"}', 'completed', 0, "
                                    "'every stage passed (1 failures)')",
                                    ""),
                         0);
        assert_int_equal(store_exec(s,
                                    "INSERT INTO deployment_nodes (deployment, node, stage, state, told_version, told_time, "
                                    "reason) VALUES ('det-2', 'n1', 0, 'overdue', 2, 10, 'its workload did not run "
                                    "healthy within the report deadline')",
                                    ""),
                         0);
        /* the node back, still at v1: overdue still */
        assert_string_equal(member_after_report(s, 1, 1, 200), "overdue");
        /* v2 reached, det running healthy: committed; the deployment stays completed */
        assert_string_equal(member_after_report(s, 2, 2, 300), "committed");
        assert_int_equal(usage_count(s, "SELECT count(*) FROM deployments WHERE id = 'det-2' AND state = 'completed'"), 1);
        assert_int_equal(calls, 0); /* nothing told */
        store_close(s);
}

/* ---- the database's address (--database) -------------------------------------------- */

static void assert_address(const char *address, enum store_kind kind, const char *target) {
        struct store_address a;
        char *reason = NULL;
        int r = store_address_parse(address, &a, &reason);
        if (r < 0)
                fail_msg("%s: %s", address, reason);
        assert_int_equal(a.kind, kind);
        assert_string_equal(a.target, target);
}

static void assert_address_refused(const char *address, const char *says, const char *secret) {
        struct store_address a;
        char *reason = NULL;
        assert_int_equal(store_address_parse(address, &a, &reason), -EINVAL);
        assert_non_null(reason);
        if (!strstr(reason, says))
                fail_msg("%s: \"%s\" does not say \"%s\"", address, reason, says);
        if (secret)
                assert_null(strstr(reason, secret));
        free(reason);
}

static void test_address(void **state) {
        (void) state;
        assert_address("sqlite:/var/lib/orbit/controller.db", STORE_SQLITE, "/var/lib/orbit/controller.db");
        assert_address("sqlite:controller.db", STORE_SQLITE, "controller.db");
        assert_address("/tmp/x:y/controller.db", STORE_SQLITE, "/tmp/x:y/controller.db");
        assert_address("./controller.db", STORE_SQLITE, "./controller.db");
        const char *pg[] = {
                "postgresql://",
                "postgresql:///orbit",
                "postgres://db.example/orbit",
                "postgresql://orbit:s3cret@db1:5432,db2:5433/orbit?sslmode=verify-full&connect_timeout=5",
                "postgresql://[2001:db8::1]:5432/orbit",
                "postgresql://%2Ftmp%2Fpg:5999/orbit",
        };
        for (size_t i = 0; i < ELEMENTSOF(pg); i++)
                assert_address(pg[i], STORE_POSTGRESQL, pg[i]);

        const struct {
                const char *address, *says, *secret;
        } refused[] = {
                {"", "no database given", NULL},
                {NULL, "no database given", NULL},
                {"sqlite:", "names no file", NULL},
                {"sqlite:///var/x.db", "not a URL", NULL},
                {"mysql://db/orbit", "unknown database kind \"mysql\"", NULL},
                {"postgresq://db/orbit", "unknown database kind \"postgresq\"", NULL},
                {"postgresql:db", "expected postgresql://", NULL},
                {"postgresql://u:s3cret@db:99999/orbit", "the port \"99999\"", "s3cret"},
                {"postgresql://u:s3cret@db:/orbit", "the port \"\"", "s3cret"},
                {"postgresql://db:54x2/orbit", "the port \"54x2\"", NULL},
                {"postgresql://db1:5432,db2:0/orbit", "the port \"0\"", NULL},
                {"postgresql://[2001:db8::1/orbit", "does not close", NULL},
                {"postgresql://[::1]x/orbit", "only :PORT", NULL},
                {"postgresql://db/orb/it", "the database name \"orb/it\"", NULL},
                {"postgresql://u:s3cret@db/orbit?sslmode", "the parameter \"sslmode\"", "s3cret"},
                {"postgresql://orbit:pw9/xq@db/orbit", "an '@' after the host part", "pw9"},
                {"postgresql://u:s3 cret@db/orbit", "offset 17", "s3"},
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                assert_address_refused(refused[i].address, refused[i].says, refused[i].secret);
}

static void assert_dialect(const char *sql, const char *want, int want_params) {
        char *got = NULL;
        int n = -1;
        assert_int_equal(store_sql_postgresql(sql, &got, &n), 0);
        assert_string_equal(got, want);
        assert_int_equal(n, want_params);
        free(got);
}

/* The PostgreSQL dialect of the store's statements: placeholders, INSERT OR IGNORE, IS NOT;
 * literals and quoted names as they are, keywords only as whole words. */
static void test_dialect(void **state) {
        (void) state;
        assert_dialect("SELECT 1", "SELECT 1", 0);
        assert_dialect("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2", 2);
        assert_dialect("UPDATE t SET a = ?3 WHERE b = ?1 OR b = ?12", "UPDATE t SET a = $3 WHERE b = $1 OR b = $12",
                       12);
        assert_dialect("insert or ignore  into t (a) VALUES (?)", "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING",
                       1);
        assert_dialect("SELECT 1 WHERE a IS NOT ?1 AND b IS NOT NULL AND c is not\n d",
                       "SELECT 1 WHERE a IS DISTINCT FROM $1 AND b IS NOT NULL AND c IS DISTINCT FROM\n d", 1);
        assert_dialect("SELECT '?', 'it''s ?1 IS NOT x', \"IS NOT\" FROM t WHERE x = ?",
                       "SELECT '?', 'it''s ?1 IS NOT x', \"IS NOT\" FROM t WHERE x = $1", 1);
        assert_dialect("SELECT this_is_not_a FROM insert_or_ignore_into", "SELECT this_is_not_a FROM insert_or_ignore_into",
                       0);
        /* found by a review: a sign or a space after '?', IS NOT DISTINCT FROM, RETURNING */
        assert_dialect("SELECT a FROM t WHERE b = ? -1", "SELECT a FROM t WHERE b = $1 -1", 1);
        assert_dialect("SELECT a IS NOT DISTINCT FROM ?1, b IS NOT TRUE", "SELECT a IS NOT DISTINCT FROM $1, b IS NOT TRUE",
                       1);
        assert_dialect("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING a",
                       "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING a", 1);
}

/* A postgresql:// address this build cannot serve, or a server not there: refused, saying
 * which, the password never in the message. */
static void test_open_postgresql_refused(void **state) {
        (void) state;
        struct store *s = NULL;
        char *reason = NULL;
#if HAVE_LIBPQ
        assert_int_equal(store_open("postgresql://u:s3cret@127.0.0.1:1/orbit?connect_timeout=5", &s, &reason),
                         -ECONNREFUSED);
        assert_non_null(strstr(reason, "cannot connect to PostgreSQL"));
#else
        assert_int_equal(store_open("postgresql://u:s3cret@db/orbit", &s, &reason), -EPROTONOSUPPORT);
        assert_non_null(strstr(reason, "built without PostgreSQL"));
#endif
        assert_null(strstr(reason, "s3cret"));
        free(reason);
#if HAVE_LIBPQ
        /* libpq quotes a token it cannot decode: the password is starred out of it */
        assert_true(store_open("postgresql://u:s3cr%t@127.0.0.1:1/orbit", &s, &reason) < 0);
        assert_null(strstr(reason, "s3cr"));
        free(reason);
#endif
        assert_int_equal(store_open("nosuch://x", &s, &reason), -EINVAL);
        free(reason);
}

/* ---- several controllers on one database (docs/storage.md, "Several controllers") ---- */

struct opener {
        const char *db;
        pthread_barrier_t *start;
        int r;
        int version;
        char *reason;
};

static void *open_at_once(void *userdata) {
        struct opener *o = userdata;
        struct store *s = NULL;
        pthread_barrier_wait(o->start);
        o->r = store_open(o->db, &s, &o->reason);
        o->version = o->r < 0 ? -1 : store_schema_version(s);
        store_close(s);
        return NULL;
}

/*
 * Controllers started at once on an empty database: each opens it, one schema is made.
 * Several rounds on PostgreSQL, the database emptied before each: the race this guards
 * against (the schema_version table made outside the lock) was lost in one round of five.
 */
static void test_open_at_once(void **state) {
        struct fixture *f = *state;
        enum { N = 4 };
        for (int round = 0; round < (on_sqlite() ? 1 : 10); round++) {
                if (round > 0)
                        database_empty(f->db);
                pthread_barrier_t start;
                assert_int_equal(pthread_barrier_init(&start, NULL, N), 0);
                struct opener o[N];
                pthread_t t[N];
                for (size_t i = 0; i < N; i++) {
                        o[i] = (struct opener){.db = f->db, .start = &start};
                        assert_int_equal(pthread_create(&t[i], NULL, open_at_once, &o[i]), 0);
                }
                for (size_t i = 0; i < N; i++) {
                        assert_int_equal(pthread_join(t[i], NULL), 0);
                        if (o[i].r < 0)
                                fail_msg("round %d, controller %zu: %s", round, i,
                                         o[i].reason ? o[i].reason : strerror(-o[i].r));
                        assert_int_equal(o[i].version, STORE_SCHEMA_VERSION);
                }
                pthread_barrier_destroy(&start);
                struct store *s = open_store(f);
                int64_t rows = 0;
                assert_int_equal(store_get_int64(s, &rows, "SELECT count(*) FROM schema_version", ""), 1);
                assert_int_equal(rows, 1);
                store_close(s);
        }
}

struct queuer {
        const char *db;
        pthread_barrier_t *start;
        int64_t seqs[25];
        int r;
};

static void *queue_many(void *userdata) {
        struct queuer *q = userdata;
        struct store *s = NULL;
        char *reason = NULL;
        q->r = store_open(q->db, &s, &reason);
        free(reason);
        pthread_barrier_wait(q->start);
        json_t *empty = json_object();
        int calls = 0;
        for (size_t i = 0; q->r >= 0 && i < ELEMENTSOF(q->seqs); i++) {
                json_t *queued = NULL;
                reason = NULL;
                q->r = store_command_queue(s, "n1", "reboot", empty, 1000, 600, fake_sign, &calls, &queued,
                                           &reason);
                free(reason);
                q->seqs[i] = json_integer_value(json_object_get(queued, "seq"));
                json_decref(queued);
        }
        json_decref(empty);
        store_close(s);
        return NULL;
}

/*
 * One node served by two controllers, pass after pass: its records stored once whichever
 * one a record reaches (a record sent again to the other after a lost answer), commands
 * queued on both numbered in one sequence and delivered and answered once across them,
 * and commands queued on both at the same time never given one seq twice.
 */
static void test_two_controllers(void **state) {
        struct fixture *f = *state;
        struct store *a = open_store(f), *b = open_store(f);
        json_auto_t *empty = json_object();
        int calls = 0;
        char *reason = NULL;
        json_t *queued = NULL;

        struct sync_request req;
        json_t *cmds = NULL;
        size_t stored = 0;
        make_sync(&req, 0, REC(1, "health.report", "{\"t\":40}") "," REC(2, "workload.exit", "{}"));
        assert_int_equal(store_sync(a, &req, 100, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 2);
        json_decref(cmds);
        sync_request_done(&req);
        /* a queues seq 1; the node's next pass reaches b: 2 again (its answer was lost), 3 new */
        assert_int_equal(store_command_queue(a, "n1", "reboot", empty, 100, 600, fake_sign, &calls, &queued,
                                             &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(queued, "seq")), 1);
        json_decref(queued);
        make_sync(&req, 0, REC(2, "workload.exit", "{}") "," REC(3, "workload.exit", "{}"));
        assert_int_equal(store_sync(b, &req, 110, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 1);
        assert_int_equal(json_array_size(cmds), 1);
        json_decref(cmds);
        sync_request_done(&req);
        /* b queues the next seq, 2; the result of 1 reaches a, which sends 2 only */
        assert_int_equal(store_command_queue(b, "n1", "status.send", empty, 110, 600, fake_sign, &calls,
                                             &queued, &reason), 0);
        assert_int_equal(json_integer_value(json_object_get(queued, "seq")), 2);
        json_decref(queued);
        make_sync(&req, 1, REC(4, "command.result", "{\"seq\":1,\"status\":\"done\"}"));
        assert_int_equal(store_sync(a, &req, 120, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 1);
        assert_int_equal(json_array_size(cmds), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(cmds, 0), "seq")), 2);
        json_decref(cmds);
        sync_request_done(&req);
        /* the same result again, at b: stored already, the command stays done */
        make_sync(&req, 2, REC(4, "command.result", "{\"seq\":1,\"status\":\"done\"}"));
        assert_int_equal(store_sync(b, &req, 130, 32, &cmds, &stored), 0);
        assert_int_equal(stored, 0);
        assert_int_equal(json_array_size(cmds), 0);
        json_decref(cmds);
        sync_request_done(&req);

        int64_t count = 0;
        assert_int_equal(store_records_count(b, "n1", &count), 0);
        assert_int_equal(count, 4);
        json_t *list = NULL;
        assert_int_equal(store_commands_list(a, "n1", &list), 0);
        assert_int_equal(json_array_size(list), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "state")), "done");
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "state")), "sent");
        json_decref(list);
        json_t *node = NULL;
        assert_int_equal(store_node_show(a, "n1", &node), 0);
        assert_int_equal(json_integer_value(json_object_get(node, "syncs")), 4);
        json_decref(node);
        store_close(a);
        store_close(b);

        /* two controllers queueing for the node at once: 50 seqs, each once, in order */
        pthread_barrier_t start;
        assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
        struct queuer q[2] = {{.db = f->db, .start = &start}, {.db = f->db, .start = &start}};
        pthread_t t[2];
        for (size_t i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&t[i], NULL, queue_many, &q[i]), 0);
        bool seen[2 + 2 * ELEMENTSOF(q[0].seqs) + 1] = {};
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(q[i].r, 0);
                for (size_t k = 0; k < ELEMENTSOF(q[i].seqs); k++) {
                        int64_t seq = q[i].seqs[k];
                        assert_in_range(seq, 3, 2 + 2 * ELEMENTSOF(q[i].seqs));
                        assert_false(seen[seq]);
                        seen[seq] = true;
                        if (k > 0)
                                assert_true(seq > q[i].seqs[k - 1]);
                }
        }
        pthread_barrier_destroy(&start);
}

/* One controller leads the periodic jobs; when its connection ends another takes over. */
static void test_lead(void **state) {
        struct fixture *f = *state;
        struct store *a = open_store(f), *b = open_store(f);
        assert_int_equal(store_lead(a), 1);
        if (on_sqlite()) {
                /* one controller per SQLite file: it leads */
                assert_int_equal(store_lead(b), 1);
                store_close(a);
                store_close(b);
                return;
        }
        assert_int_equal(store_lead(b), 0);
        /* asked again and again (every tick), a keeps it and b does not get it */
        for (int i = 0; i < 3; i++) {
                assert_int_equal(store_lead(a), 1);
                assert_int_equal(store_lead(b), 0);
        }
        /* the lead outlives a's transactions, rolled back or committed */
        assert_int_equal(store_begin(a), 0);
        assert_int_equal(store_script(a, "ROLLBACK"), 0);
        assert_int_equal(store_lead(b), 0);
        /* a's connection ends (its controller stopped or killed): b takes over once the
         * server has ended a's session */
        store_close(a);
        int lead = 0;
        for (int i = 0; i < 200 && (lead = store_lead(b)) == 0; i++)
                usleep(50 * 1000);
        assert_int_equal(lead, 1);
        struct store *c = open_store(f);
        assert_int_equal(store_lead(c), 0);
        store_close(c);
        store_close(b);
}

/* How many advisory locks of key k (classid 0, objid k: a one-bigint key or the first of
 * two int4 keys) are granted, seen from connection s. */
static int64_t advisory_held(struct store *s, int64_t k) {
        int64_t n = -1;
        assert_int_equal(store_get_int64(s, &n,
                                         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                         "AND granted AND classid = 0 AND objid = ?",
                                         "i", k),
                         1);
        return n;
}

/* What a sync does at its start on PostgreSQL: STORE_ROLLOUTS_INVOLVED_SQL (read there with
 * the node's row), then store_lock_rollouts, whose lock the server takes with the sync's
 * next statement (a read here): its failure is that statement's. */
static int lock_rollouts(struct store *s, const char *node, bool *may) {
        int64_t involved = -1;
        int r = store_get_int64(s, &involved, "SELECT " STORE_ROLLOUTS_INVOLVED_SQL, "t", node);
        if (r < 0)
                return r;
        assert_int_equal(r, 1);
        assert_true(involved == 0 || involved == 1);
        r = store_lock_rollouts(s, involved != 0, may);
        if (r < 0)
                return r;
        r = store_get_int64(s, NULL, "SELECT 1", "");
        return r < 0 ? r : 0;
}

/* A pending member whose node rolled back from the rollout's bundle after the rollout was
 * made (a block that came later) is skipped at its sync, not told; a member without one is
 * told. Whether it is blocked comes with the member query (store_rollouts_drive_node). */
static void test_rollout_block_at_sync(void **state) {
        struct store *s = open_store(*state);
        int calls = 0;
        char *msg = NULL, buf[64];
        store_set_command_signer(s, fake_sign, &calls);
        json_decref(node_sync(s, "x", 0, "", 100));
        json_decref(node_sync(s, "y", 0, "", 100));
        struct store_bundle bu = {.id = "b1", .version = "2.0.0", .size = 10, .sha256 = "ab"};
        assert_int_equal(store_bundle_add(s, &bu, "signer", true, 100), 0);
        json_decref(rollout_make(s, "{\"id\":\"p\",\"bundle_id\":\"b1\",\"stages\":[100]}", 101));
        assert_string_equal(node_state_in(s, "p", "x", buf, sizeof(buf)), "pending");
        assert_int_equal(store_rollout_verb(s, "p", "start", 102, NULL, &msg), 0);
        assert_int_equal(store_exec(s, "INSERT INTO node_bundle_blocks (node, bundle_id, time, reason) "
                                       "VALUES ('x', 'b1', 103, 'test')", ""),
                         0);
        json_t *cx = node_sync(s, "x", 0, "", 104), *cy = node_sync(s, "y", 0, "", 104);
        assert_int_equal(json_array_size(cx), 0); /* not told */
        assert_int_equal(json_array_size(cy), 1); /* told to install */
        json_decref(cx);
        json_decref(cy);
        assert_string_equal(node_state_in(s, "p", "x", buf, sizeof(buf)), "skipped");
        assert_string_equal(node_state_in(s, "p", "y", buf, sizeof(buf)), "told");
        free(msg);
        store_close(s);
}

/* 1 when the session plans every statement generically (plan_cache_mode), else 0. */
static int64_t plans_generic(struct store *s) {
        int64_t generic = -1;
        assert_int_equal(store_get_int64(s, &generic,
                                         "SELECT (current_setting('plan_cache_mode') = 'force_generic_plan')::int", ""),
                         1);
        return generic;
}

/* On PostgreSQL a sync's transaction runs its statements on their generic plans, and only
 * it: after its COMMIT the session plans as the server's setting says. */
static void test_sync_plans(void **state) {
        struct fixture *f = *state;
        if (on_sqlite())
                skip(); /* no plan cache to choose */
        struct store *s = open_store(f);
        assert_int_equal(plans_generic(s), 0);
        assert_int_equal(store_begin_node(s, "x"), 0);
        assert_int_equal(plans_generic(s), 1);
        assert_int_equal(store_script(s, "COMMIT"), 0);
        json_decref(node_sync(s, "x", 0, "", 100)); /* a whole sync, committed */
        assert_int_equal(plans_generic(s), 0);
        store_close(s);
}

/* Syncs of different nodes run side by side on PostgreSQL; two of one node, or a sync and
 * any other writer, do not; a sync takes the rollouts' lock only when it may move one. */
static void test_sync_locks(void **state) {
        struct fixture *f = *state;
        struct store *a = open_store(f), *b = open_store(f), *c = open_store(f);
        int calls = 0;
        char *msg = NULL;
        bool may = false;
        if (on_sqlite()) {
                /* one writer at a time: store_begin_node is store_begin, no rollouts lock */
                assert_int_equal(store_begin_node(a, "x"), 0);
                assert_false(store_locks_rollouts(a));
                assert_int_equal(store_lock_rollouts(a, false, &may), 0);
                assert_true(may); /* not asked: every sync looks at its rollouts */
                assert_int_equal(store_script(a, "ROLLBACK"), 0);
                goto out;
        }
        assert_true(store_locks_rollouts(a));
        store_set_command_signer(c, fake_sign, &calls);
        json_decref(node_sync(c, "x", 0, "", 100));
        json_decref(node_sync(c, "y", 0, "", 100));
        json_decref(node_sync(c, "z", 0, "", 100)); /* a member never told (below) */
        /* the waits below end with the lock timeout's error, not with a clock here */
        assert_int_equal(store_script(c, "SET lock_timeout = '300ms'"), 0);

        assert_int_equal(store_begin_node(a, "x"), 0);
        assert_int_equal(lock_rollouts(a, "x", &may), 0); /* a's locks are taken with its query */
        assert_int_equal(store_begin_node(b, "y"), 0);
        assert_int_equal(store_get_int64(b, NULL, "SELECT 1", ""), 1); /* beside a: no wait */
        assert_false(may);
        assert_int_equal(advisory_held(c, 7420003), 0); /* no rollout: not taken */
        /* x's second sync waits: its node's lock goes with its first query */
        assert_int_equal(store_begin_node(c, "x"), 0);
        assert_int_equal(store_get_int64(c, NULL, "SELECT 1", ""), -EBUSY);
        assert_int_equal(store_script(c, "ROLLBACK"), 0);
        assert_int_equal(store_begin(c), -EBUSY);           /* so does every other writer */
        assert_int_equal(store_script(b, "COMMIT"), 0);
        assert_int_equal(store_script(a, "COMMIT"), 0);

        /* a rollout targeting every node: a sync may move it, so it takes the lock */
        struct store_bundle bu = {.id = "b1", .version = "2.0.0", .size = 10, .sha256 = "ab"};
        assert_int_equal(store_bundle_add(c, &bu, "signer", true, 100), 0);
        json_decref(rollout_make(c, "{\"id\":\"p\",\"bundle_id\":\"b1\",\"stages\":[100]}", 101));
        assert_int_equal(store_rollout_verb(c, "p", "start", 102, NULL, &msg), 0);
        assert_int_equal(store_begin_node(a, "x"), 0);
        assert_int_equal(lock_rollouts(a, "x", &may), 0);
        assert_true(may);
        assert_int_equal(advisory_held(c, 7420003), 1);
        assert_int_equal(store_begin_node(b, "y"), 0);
        assert_int_equal(store_script(b, "SET LOCAL lock_timeout = '300ms'"), 0);
        assert_int_equal(lock_rollouts(b, "y", &may), -EBUSY);
        assert_int_equal(store_script(b, "ROLLBACK"), 0);
        assert_int_equal(store_script(a, "COMMIT"), 0);
        /* and the syncs themselves still work, each node told once */
        json_t *cx = node_sync(c, "x", 0, "", 1000), *cy = node_sync(c, "y", 0, "", 1000);
        assert_int_equal(json_array_size(cx), 1);
        assert_int_equal(json_array_size(cy), 1);
        json_decref(cx);
        json_decref(cy);
        /* aborted, the rollout never moves again: a member's sync takes the lock only to
         * tell its node to roll back */
        assert_int_equal(store_rollout_verb(c, "p", "abort", 1100, NULL, &msg), 0);
        assert_int_equal(store_begin_node(a, "z"), 0);
        assert_int_equal(lock_rollouts(a, "z", &may), 0);
        assert_false(may);
        assert_int_equal(advisory_held(c, 7420003), 0);
        assert_int_equal(store_script(a, "ROLLBACK"), 0);
        int64_t told_back = -1;
        assert_int_equal(store_get_int64(c, &told_back,
                                         "SELECT needs_rollback FROM rollout_nodes WHERE node = 'x'", ""),
                         1);
        assert_int_equal(store_begin_node(a, "x"), 0);
        assert_int_equal(lock_rollouts(a, "x", &may), 0);
        assert_int_equal(may, told_back != 0);
        assert_int_equal(store_script(a, "ROLLBACK"), 0);
out:
        free(msg);
        store_close(a);
        store_close(b);
        store_close(c);
}

/* On PostgreSQL a session prepares each statement once and runs it by name after: a
 * second sync prepares nothing new, a rollback keeps them, a connection made again
 * prepares anew. */
/*
 * store_exec_later: on PostgreSQL a statement of a transaction is sent and run with the next
 * one that waits (or the COMMIT); in order, and its failure is never lost: it is the next
 * statement's (named in its message) or the COMMIT's, and nothing of the transaction stays.
 * On SQLite it runs at once; every assertion holds on both.
 */
static int64_t later_sum(struct store *s) {
        int64_t v = -1;
        assert_int_equal(store_get_int64(s, &v, "SELECT coalesce(sum(v), 0) FROM later", ""), 1);
        return v;
}

static void test_exec_later(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        int64_t v = 0;
        assert_int_equal(store_script(s, "CREATE TABLE later (k INTEGER PRIMARY KEY, v INTEGER)"), 0);
        /* outside a transaction: at once */
        assert_int_equal(store_exec_later(s, "INSERT INTO later (k, v) VALUES (9, 0)", ""), 0);
        assert_int_equal(later_sum(s), 0);

        /* in order, before the query that waits; store_changes waits for the one sent */
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_exec_later(s, "INSERT INTO later (k, v) VALUES (1, 10)", ""), 0);
        assert_int_equal(store_exec_later(s, "UPDATE later SET v = v + 1 WHERE k = ?", "i", (int64_t) 1), 0);
        assert_int_equal(store_changes(s), 1);
        assert_int_equal(store_exec_later(s, "UPDATE later SET v = v * 2 WHERE k >= 1", ""), 0);
        assert_int_equal(store_get_int64(s, &v, "SELECT v FROM later WHERE k = 1", ""), 1);
        assert_int_equal(v, 22);
        /* rows of a statement sent are not read (an advisory lock's void) */
        assert_int_equal(store_exec_later(s, "SELECT v FROM later", ""), 0);
        assert_int_equal(store_exec_later(s, "INSERT INTO later (k, v) VALUES (2, 20)", ""), 0);
        assert_int_equal(store_script(s, "COMMIT"), 0); /* goes with the COMMIT */
        assert_int_equal(later_sum(s), 42);

        /* a failure of one sent is the next query's; the transaction then rolls back */
        for (int round = 0; round < 2; round++) {
                assert_int_equal(store_begin(s), 0);
                assert_int_equal(store_exec_later(s, "UPDATE later SET v = 0", ""), 0);
                int r = store_exec_later(s, "INSERT INTO later (k, v) VALUES (1, 1)", ""); /* k 1 is there */
                if (r == 0) {
                        assert_false(on_sqlite());
                        r = round == 0 ? store_get_int64(s, &v, "SELECT 1", "") : store_script(s, "COMMIT");
                        assert_non_null(strstr(s->backend->errmsg(s), "INSERT INTO later (k, v) VALUES (1, 1)"));
                }
                assert_int_equal(r, -EEXIST);
                assert_int_equal(store_script(s, "ROLLBACK"), 0);
                assert_int_equal(later_sum(s), 42);
        }
        /* a statement sent that cannot be prepared fails the same way when sent again (its
         * name is not remembered), and the session goes on */
        for (int round = 0; round < 2; round++) {
                assert_int_equal(store_begin(s), 0);
                int r = store_exec_later(s, "INSERT INTO nosuch VALUES (?)", "i", (int64_t) round);
                if (r == 0)
                        r = store_get_int64(s, &v, "SELECT 1", "");
                assert_int_equal(r, -EIO);
                assert_int_equal(store_script(s, "ROLLBACK"), 0);
        }
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_exec_later(s, "DELETE FROM later WHERE k = ?", "i", (int64_t) 2), 0);
        assert_int_equal(store_script(s, "COMMIT"), 0);
        assert_int_equal(later_sum(s), 22);
        store_close(s);
}

static void test_statements_prepared(void **state) {
        struct fixture *f = *state;
        struct store *s = open_store(f);
        if (on_sqlite()) {
                store_close(s);
                return;
        }
        int calls = 0;
        store_set_command_signer(s, fake_sign, &calls);
        const char *count = "SELECT count(*) FROM pg_prepared_statements";
        json_decref(node_sync(s, "x", 0, "1|health.report|{}", 100));
        int64_t first = 0, again = 0;
        assert_int_equal(store_get_int64(s, &first, count, ""), 1);
        assert_true(first >= 5);
        json_decref(node_sync(s, "x", 0, "2|health.report|{}", 200));
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_exec(s, "INSERT INTO nosuch VALUES (1)", ""), -EIO);
        assert_int_equal(store_script(s, "ROLLBACK"), 0);
        json_decref(node_sync(s, "x", 0, "3|health.report|{}", 300));
        assert_int_equal(store_get_int64(s, &again, count, ""), 1);
        assert_int_equal(again, first); /* the count was prepared before its first run */
        int64_t n = 0;
        assert_int_equal(store_get_int64(s, &n, "SELECT count(*) FROM records WHERE node = 'x'", ""), 1);
        assert_int_equal(n, 3);
        /* The server drops them (DEALLOCATE, as a pooler's other session or a restart of
         * the session would): a statement outside a transaction runs on unprepared, the
         * cache starts again, and the next sync prepares anew. */
        assert_int_equal(store_script(s, "DEALLOCATE ALL"), 0);
        assert_int_equal(store_get_int64(s, &again, count, ""), 1);
        assert_int_equal(again, 0);
        json_decref(node_sync(s, "x", 0, "4|health.report|{}", 400));
        assert_int_equal(store_get_int64(s, &again, count, ""), 1);
        assert_true(again >= 5);
        store_close(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_address),
                cmocka_unit_test(test_open_postgresql_refused),
                cmocka_unit_test(test_dialect),
                cmocka_unit_test_setup_teardown(test_commits_durable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync_connection_lost, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync_node_revoked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_schema_and_records_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_controllers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lead, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync_locks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync_plans, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollout_block_at_sync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_statements_prepared, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_later, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync_node_trust, setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_prune, setup, teardown),
                cmocka_unit_test_setup_teardown(test_command_seqs_across_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expired_commands_not_sent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_link_epoch_lost_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_store_behind_the_node, setup, teardown),
                cmocka_unit_test_setup_teardown(test_desired_behind_the_node, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_reports_the_last_seq_there_is, setup, teardown),
                cmocka_unit_test_setup_teardown(test_record_priority_and_quota, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_may_fetch_bundle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bundles_and_plans, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refuses_newer_schema, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_certificates, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollouts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollout_passes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollout_counts_follow_changes, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_metrics_collect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_usage_counted_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_usage_deployment_tenant, setup, teardown),
                cmocka_unit_test_setup_teardown(test_usage_backfill, setup, teardown),
                cmocka_unit_test_setup_teardown(test_usage_thinning, setup, teardown),
                cmocka_unit_test_setup_teardown(test_usage_migration_14, setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_packed_from_schema_14, setup, teardown),
                cmocka_unit_test(test_record_form),
                cmocka_unit_test_setup_teardown(test_completed_deployment_follows_overdue, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollout_deadline_and_auto_revert, setup,
                                                teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
