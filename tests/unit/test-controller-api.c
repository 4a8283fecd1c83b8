/* Unit tests for the controller's pure API: routes, strict sync bodies, acks, decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/api.h"
#include "lib/macro.h"
#include "lib/macro.h"
#include "controller/metrics.h"

#define BOOT "0123456789abcdef0123456789abcdef"

/* May this role make this request? (the route matched as the server does first) */
static bool allows(enum api_role role, const char *method, const char *path) {
        struct api_match m;
        assert_int_equal(api_route_match(method, path, &m), 0);
        return api_role_allows(role, &m, method);
}

static void test_routes(void **state) {
        struct api_match m;
        assert_int_equal(api_route_match("POST", "/v1/nodes/node-1/sync", &m), 0);
        assert_int_equal(m.route, API_ROUTE_SYNC);
        assert_string_equal(m.id, "node-1");
        assert_true(api_route_is_node(m.route));
        assert_int_equal(api_route_match("GET", "/v1/nodes/node-1/sync", &m), -EOPNOTSUPP);
        assert_int_equal(api_route_match("GET", "/v1/nodes", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODES);
        assert_false(api_route_is_node(m.route));
        assert_int_equal(api_route_match("POST", "/v1/nodes", &m), -EOPNOTSUPP);
        assert_int_equal(api_route_match("GET", "/v1/nodes/sat.7", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE);
        assert_int_equal(api_route_match("POST", "/v1/nodes/a/commands", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE_COMMANDS);
        assert_int_equal(api_route_match("GET", "/v1/nodes/a/commands", &m), 0);
        assert_int_equal(api_route_match("GET", "/v1/nodes/a/records", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE_RECORDS);
        assert_int_equal(api_route_match("PUT", "/v1/nodes/a/contact-plan", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE_CONTACT_PLAN);
        assert_int_equal(api_route_match("DELETE", "/v1/nodes/a/contact-plan", &m), -EOPNOTSUPP);
        assert_int_equal(api_route_match("POST", "/v1/bundles", &m), 0);
        assert_int_equal(m.route, API_ROUTE_BUNDLES);
        assert_int_equal(api_route_match("HEAD", "/v1/bundles/fleet-2024.06", &m), 0);
        assert_int_equal(m.route, API_ROUTE_BUNDLE_DOWNLOAD);
        assert_string_equal(m.id, "fleet-2024.06");
        assert_true(api_route_is_node(m.route));

        assert_int_equal(api_route_match("GET", "/v1/nodes/", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/v1/nodes/a/", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/v1/nodes/a/other", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/v1/nodes/a/records/x", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/v2/nodes", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/index.html", &m), -ENOENT); /* "/" is the dashboard */
        assert_int_equal(api_route_match("GET", "/v1//nodes", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/v1/nodes/..", &m), -EINVAL);
        assert_int_equal(api_route_match("GET", "/v1/nodes/-x", &m), -EINVAL);
        assert_int_equal(api_route_match("GET", "/v1/bundles/a%2Fb", &m), -EINVAL);
        char longid[100];
        memset(longid, 'a', 65);
        longid[65] = '\0';
        char path[200];
        snprintf(path, sizeof(path), "/v1/nodes/%s", longid);
        assert_int_equal(api_route_match("GET", path, &m), -EINVAL);
}

static char *record_json(const char *node, int epoch, long seq, const char *kind, const char *body) {
        char *s;
        assert_true(asprintf(&s,
                             "{\"format\":1,\"key\":{\"node\":\"%s\",\"boot_epoch\":%d,\"boot_id\":\"" BOOT
                             "\",\"seq\":%ld},\"priority\":\"high\",\"kind\":\"%s\",\"time_usec\":5,"
                             "\"monotonic_usec\":6,\"body\":%s}",
                             node, epoch, seq, kind, body) > 0);
        return s;
}

static char *sync_json(const char *node, const char *records, const char *extra) {
        char *s;
        assert_true(asprintf(&s,
                             "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":3,\"boot_id\":\"" BOOT
                             "\",\"last_command_seq\":7,\"records\":[%s]%s}",
                             node, records, extra) > 0);
        return s;
}

static void test_sync_good(void **state) {
        char *r1 = record_json("n1", 3, 1, "health.report", "{\"t\":1}");
        char *r2 = record_json("n1", 2, 9, "command.result", "{\"seq\":1,\"status\":\"done\"}");
        char *r3 = record_json("n1", 3, 2, "x", "{}");
        char recs[2048];
        snprintf(recs, sizeof(recs), "%s,%s,%s,%s", r1, r2, r3, r1);
        char *text = sync_json("n1", recs, ",\"status\":{\"up\":true}");
        struct sync_request req;
        char *msg = NULL;
        assert_int_equal(sync_request_parse(text, strlen(text), "n1", &req, &msg), 0);
        assert_null(msg);
        assert_string_equal(req.node, "n1");
        assert_int_equal(req.boot_epoch, 3);
        assert_string_equal(req.boot_id, BOOT);
        assert_int_equal(req.last_command_seq, 7);
        assert_int_equal(req.n_records, 4);
        assert_string_equal(req.records[0].kind, "health.report");
        assert_string_equal(req.records[0].priority, "high");
        assert_string_equal(req.records[0].node, "n1");
        assert_int_equal(req.records[1].boot_epoch, 2);
        assert_int_equal(req.records[1].seq, 9);
        assert_int_equal(req.records[0].time_usec, 5);
        assert_int_equal(req.records[0].monotonic_usec, 6);
        assert_true(json_is_true(json_object_get(req.status, "up")));
        assert_int_equal(json_integer_value(json_object_get(req.records[0].body, "t")), 1);

        json_t *acked = sync_acked_build(&req);
        char *a = json_dumps(acked, JSON_COMPACT);
        assert_string_equal(a, "[{\"boot_epoch\":3,\"boot_id\":\"" BOOT "\",\"seq\":[1,2]},"
                               "{\"boot_epoch\":2,\"boot_id\":\"" BOOT "\",\"seq\":[9]}]");
        free(a);
        json_t *resp = sync_response_new(acked, json_array(), json_pack("{s:[]}", "windows"), 60, 1000);
        a = json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS);
        assert_non_null(strstr(a, "\"commands\":[],\"contact_plan\":{\"windows\":[]},\"format\":1"));
        assert_non_null(strstr(a, "\"next_sync_sec\":60,\"server_time\":1000"));
        free(a);
        json_decref(resp);
        sync_request_done(&req);
        free(text);

        /* No records and no status. */
        text = sync_json("n1", "", "");
        assert_int_equal(sync_request_parse(text, strlen(text), "n1", &req, &msg), 0);
        assert_int_equal(req.n_records, 0);
        assert_null(req.status);
        sync_request_done(&req);
        free(text);
        free(r1);
        free(r2);
        free(r3);
}

/* Parse text for url node n1 and expect a refusal whose message contains want. */
static void expect_refused(const char *text, const char *want) {
        struct sync_request req;
        char *msg = NULL;
        int r = sync_request_parse(text, strlen(text), "n1", &req, &msg);
        if (r >= 0)
                fail_msg("accepted: %s", text);
        assert_non_null(msg);
        if (!strstr(msg, want))
                fail_msg("message \"%s\" lacks \"%s\"", msg, want);
        assert_null(req.root);
        free(msg);
}

/* Format 2: only what the controller does not have goes up, only what the node does not
 * have comes down (docs/protocol.md, "Format 2"). */
static void test_sync_compact(void **state) {
        struct sync_request req;
        char *msg = NULL;
        const char *idle = "{\"format\":2,\"last_command_seq\":4,\"known\":\"0123456789abcdef\"}";
        assert_int_equal(sync_request_parse(idle, strlen(idle), "n1", &req, &msg), 0);
        assert_int_equal(req.format, 2);
        assert_string_equal(req.node, "n1"); /* the URL's */
        assert_false(req.has_boot);
        assert_int_equal(req.n_records, 0);
        assert_null(req.status);
        assert_string_equal(req.known, "0123456789abcdef");
        assert_int_equal(req.last_command_seq, 4);
        sync_request_done(&req);

        const char *booted = "{\"format\":2,\"node\":\"n1\",\"boot_epoch\":3,\"boot_id\":\"" BOOT
                             "\",\"last_command_seq\":0}";
        assert_int_equal(sync_request_parse(booted, strlen(booted), "n1", &req, &msg), 0);
        assert_true(req.has_boot);
        assert_int_equal(req.boot_epoch, 3);
        assert_string_equal(req.boot_id, BOOT);
        assert_string_equal(req.known, "");
        sync_request_done(&req);
        /* the agent's link epoch goes with its boot, in format 2 too (its first sync failed
         * after the controller said it takes format 2) */
        const char *epoch = "{\"format\":2,\"boot_epoch\":3,\"boot_id\":\"" BOOT
                            "\",\"link_epoch\":\"6a13030d812b3e62398f873473c84e34\",\"last_command_seq\":0}";
        assert_int_equal(sync_request_parse(epoch, strlen(epoch), "n1", &req, &msg), 0);
        assert_string_equal(req.link_epoch, "6a13030d812b3e62398f873473c84e34");
        sync_request_done(&req);

        /* strict all the same */
        expect_refused("{\"format\":2}", "missing required key \"last_command_seq\"");
        expect_refused("{\"format\":2,\"last_command_seq\":0,\"boot_epoch\":3}", "go together");
        expect_refused("{\"format\":2,\"last_command_seq\":0,\"boot_id\":\"" BOOT "\"}", "go together");
        expect_refused("{\"format\":2,\"last_command_seq\":0,\"known\":\"0123\"}", "known");
        expect_refused("{\"format\":2,\"last_command_seq\":0,\"known\":\"0123456789ABCDEF\"}", "known");
        expect_refused("{\"format\":2,\"node\":\"n2\",\"last_command_seq\":0}", "not the node of the URL");
        expect_refused("{\"format\":2,\"last_command_seq\":0,\"extra\":1}", "extra");

        /* the tag: stable, and another for another plan or pace */
        json_t *plan = json_pack("{s:[{s:i,s:i,s:i}]}", "windows", "start", 100, "end", 200, "rate_bps", 1000);
        json_t *plan_same = json_pack("{s:[{s:i,s:i,s:i}]}", "windows", "rate_bps", 1000, "end", 200, "start", 100);
        char t1[SYNC_TAG_LEN + 1], t2[SYNC_TAG_LEN + 1], t3[SYNC_TAG_LEN + 1], t4[SYNC_TAG_LEN + 1];
        sync_answer_tag(plan, 60, t1);
        sync_answer_tag(plan_same, 60, t2);
        sync_answer_tag(plan, 61, t3);
        json_t *empty = json_pack("{s:[]}", "windows");
        sync_answer_tag(empty, 60, t4);
        assert_int_equal(strlen(t1), SYNC_TAG_LEN);
        assert_string_equal(t1, t2); /* the order of keys does not matter */
        assert_string_not_equal(t1, t3);
        assert_string_not_equal(t1, t4);

        /* the answer: nothing new is no answer (204) */
        json_t *ans = NULL;
        assert_int_equal(sync_response_compact(json_array(), json_array(), json_incref(plan), 60, 1000, t1, &ans), 0);
        assert_null(ans);
        /* a plan the node does not know: the standing part and its tag */
        assert_int_equal(sync_response_compact(json_array(), json_array(), json_incref(plan), 60, 1000, "", &ans), 0);
        char *a = json_dumps(ans, JSON_COMPACT | JSON_SORT_KEYS);
        char want[256];
        snprintf(want, sizeof(want),
                 "{\"contact_plan\":{\"windows\":[{\"end\":200,\"rate_bps\":1000,\"start\":100}]},"
                 "\"format\":2,\"next_sync_sec\":60,\"server_time\":1000,\"tag\":\"%s\"}", t1);
        assert_string_equal(a, want);
        free(a);
        json_decref(ans);
        /* acks only */
        json_t *acked = json_pack("[{s:i,s:s,s:[i]}]", "boot_epoch", 3, "boot_id", BOOT, "seq", 5);
        assert_int_equal(sync_response_compact(acked, json_array(), json_incref(plan), 60, 1000, t1, &ans), 0);
        a = json_dumps(ans, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(a, "{\"acked\":[{\"boot_epoch\":3,\"boot_id\":\"" BOOT "\",\"seq\":[5]}],\"format\":2}");
        free(a);
        json_decref(ans);
        /* commands only */
        assert_int_equal(sync_response_compact(json_array(), json_pack("[{}]"), json_incref(plan), 60, 1000, t1, &ans), 0);
        a = json_dumps(ans, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(a, "{\"commands\":[{}],\"format\":2}");
        free(a);
        json_decref(ans);
        json_decref(plan);
        json_decref(plan_same);
        json_decref(empty);
}

static void test_sync_strict(void **state) {
        char *t = sync_json("n1", "", ",\"extra\":1");
        expect_refused(t, "sync:1:");
        expect_refused(t, "extra: unknown key");
        free(t);
        t = sync_json("n2", "", "");
        expect_refused(t, "node: \"n2\" is not the node of the URL (\"n1\")");
        free(t);
        expect_refused("{\"format\":1}", "missing required key \"node\"");
        expect_refused("{\"format\":3,\"node\":\"n1\",\"boot_epoch\":1,\"boot_id\":\"" BOOT
                       "\",\"last_command_seq\":0,\"records\":[]}",
                       "format: expected format 1 or 2");
        /* format 1 still needs every key format 2 may leave out */
        expect_refused("{\"format\":1,\"node\":\"n1\",\"last_command_seq\":0,\"records\":[]}",
                       "missing required key \"boot_epoch\"");
        expect_refused("{\"format\":1,\"node\":\"n1\",\"boot_epoch\":1,\"boot_id\":\"" BOOT
                       "\",\"last_command_seq\":0,\"records\":[],\"known\":\"0123456789abcdef\"}",
                       "known");
        expect_refused("{\"format\":1,\"node\":\"n1\",\"boot_epoch\":-1,\"boot_id\":\"" BOOT
                       "\",\"last_command_seq\":0,\"records\":[]}",
                       "boot_epoch: -1 is out of range");
        expect_refused("{\"format\":1,\"node\":\"n1\",\"boot_epoch\":1,\"boot_id\":\"ABC\","
                       "\"last_command_seq\":0,\"records\":[]}",
                       "boot_id: expected a boot id of 32 lower-case hex digits");
        /* the one boot id rule of both directions of the sync */
        assert_true(sync_boot_id_is_valid(BOOT, 32));
        assert_false(sync_boot_id_is_valid("0123456789ABCDEF0123456789abcdef", 32));
        assert_false(sync_boot_id_is_valid("0123456789abcdef0123456789abcde", 31));
        assert_false(sync_boot_id_is_valid("0123456789abcdef\0" "123456789abcdef", 32));
        expect_refused("[1]", "expected a JSON object");
        expect_refused("{\"format\":1,", "invalid JSON");
        expect_refused("{\"format\":1,\"format\":1}", "invalid JSON");

        char *r = record_json("n2", 1, 1, "k", "{}");
        t = sync_json("n1", r, "");
        expect_refused(t, "records[0].key.node: record of node \"n2\" in a sync of \"n1\"");
        free(t);
        free(r);
        r = record_json("n1", 1, 1, "Bad Kind", "{}");
        t = sync_json("n1", r, "");
        expect_refused(t, "records[0].kind: expected a kind");
        free(t);
        free(r);
        r = record_json("n1", 1, 1, "k", "[1]");
        t = sync_json("n1", r, "");
        expect_refused(t, "records[0].body: expected an object, got an array");
        free(t);
        free(r);
        r = record_json("n1", 1, 1, "k", "{}");
        char *bad = strdup(r);
        char *p = strstr(bad, "\"high\"");
        memcpy(p, "\"huge\"", 6);
        t = sync_json("n1", bad, "");
        expect_refused(t, "records[0].priority");
        free(t);
        free(bad);

        /* One record over the bound. */
        size_t one = strlen(r) + 1;
        char *many = malloc(one * (SYNC_RECORDS_MAX + 1) + 1);
        size_t n = 0;
        for (int i = 0; i <= SYNC_RECORDS_MAX; i++)
                n += (size_t) sprintf(many + n, "%s%s", i ? "," : "", r);
        t = sync_json("n1", many, "");
        expect_refused(t, "more than 1024 records");
        free(t);
        free(many);
        free(r);

        /* A status over its bound. */
        char *big = malloc(SYNC_STATUS_MAX + 64);
        n = (size_t) sprintf(big, ",\"status\":{\"s\":\"");
        memset(big + n, 'a', SYNC_STATUS_MAX);
        strcpy(big + n + SYNC_STATUS_MAX, "\"}");
        t = sync_json("n1", "", big);
        expect_refused(t, "status: object larger than 65536 bytes");
        free(t);
        free(big);

        /* The body bound itself. */
        struct sync_request req;
        char *msg = NULL;
        assert_int_equal(sync_request_parse("{}", SYNC_BODY_MAX + 1, "n1", &req, &msg), -EFBIG);
        free(msg);
}

static void test_decisions(void **state) {
        assert_int_equal(record_effect_of("command.result"), RECORD_EFFECT_COMMAND_RESULT);
        assert_int_equal(record_effect_of("update.installed"), RECORD_EFFECT_UPDATE);
        assert_int_equal(record_effect_of("update."), RECORD_EFFECT_NONE);
        assert_int_equal(record_effect_of("health.report"), RECORD_EFFECT_HEALTH);
        assert_int_equal(record_effect_of("health.level"), RECORD_EFFECT_NONE);
        assert_int_equal(record_effect_of("workload.exit"), RECORD_EFFECT_NONE);

        struct command_result res;
        json_t *b = json_loads("{\"seq\":4,\"status\":\"rejected\",\"reason\":\"expired\"}", 0, NULL);
        assert_int_equal(command_result_parse(b, &res), 0);
        assert_int_equal(res.seq, 4);
        assert_string_equal(res.status, "rejected");
        assert_string_equal(res.reason, "expired");
        json_decref(b);
        /* the agent sends "reason": null for a result without one */
        b = json_loads("{\"seq\":5,\"status\":\"done\",\"reason\":null}", 0, NULL);
        assert_int_equal(command_result_parse(b, &res), 0);
        assert_string_equal(res.reason, "");
        json_decref(b);
        static const char *const bad[] = {
                "{\"seq\":0,\"status\":\"done\"}", "{\"seq\":1,\"status\":\"maybe\"}",
                "{\"seq\":1}", "{\"seq\":1,\"status\":\"done\",\"x\":1}",
                "{\"seq\":\"1\",\"status\":\"done\"}", "{\"seq\":1,\"status\":\"done\",\"reason\":3}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                b = json_loads(bad[i], 0, NULL);
                assert_int_equal(command_result_parse(b, &res), -EINVAL);
                json_decref(b);
        }
        assert_string_equal(command_state_after_result("queued", "done"), "done");
        assert_string_equal(command_state_after_result("sent", "failed"), "failed");
        assert_string_equal(command_state_after_result("sent", "rejected"), "rejected");
        assert_null(command_state_after_result("done", "failed"));
        assert_null(command_state_after_result("rejected", "done"));
        assert_null(command_state_after_result("expired", "done"));
        assert_null(command_state_after_result("sent", "other"));
}

static void test_contact_plan(void **state) {
        json_t *plan;
        char *msg = NULL;
        const char *good = "{\"windows\":[{\"start\":10,\"end\":20,\"rate_bps\":9600},"
                           "{\"start\":20,\"end\":30,\"rate_bps\":0}]}";
        assert_int_equal(contact_plan_parse(good, strlen(good), &plan, &msg), 0);
        assert_int_equal(json_array_size(json_object_get(plan, "windows")), 2);
        json_decref(plan);
        const char *empty = "{\"windows\":[]}";
        assert_int_equal(contact_plan_parse(empty, strlen(empty), &plan, &msg), 0);
        json_decref(plan);
        static const struct {
                const char *text, *want;
        } bad[] = {
                {"{\"windows\":[{\"start\":10,\"end\":10,\"rate_bps\":1}]}", "start must come before end"},
                {"{\"windows\":[{\"start\":10,\"end\":20,\"rate_bps\":1},{\"start\":15,\"end\":30,\"rate_bps\":1}]}",
                 "windows[1]: windows must be sorted by start and not overlap"},
                {"{\"windows\":[{\"start\":10,\"end\":20}]}", "missing required key \"rate_bps\""},
                {"{\"windows\":[{\"start\":10,\"end\":20,\"rate_bps\":1,\"x\":2}]}", "windows[0].x: unknown key"},
                /* past year 9999: what no node takes (its µs would overflow) */
                {"{\"windows\":[{\"start\":10,\"end\":253402300800,\"rate_bps\":1}]}", "windows[0].end"},
                {"{\"window\":[]}", "window: unknown key"},
                {"{\"windows\":{}}", "expected an array"},
                {"nope", "invalid JSON"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                msg = NULL;
                assert_int_equal(contact_plan_parse(bad[i].text, strlen(bad[i].text), &plan, &msg), -EINVAL);
                assert_non_null(msg);
                if (!strstr(msg, bad[i].want))
                        fail_msg("\"%s\" lacks \"%s\"", msg, bad[i].want);
                free(msg);
        }
        /* the node's own limit (the same check, proto/sync-answer.c): 256 windows, not 257 */
        for (int n = CONTACT_PLAN_WINDOWS_MAX; n <= CONTACT_PLAN_WINDOWS_MAX + 1; n++) {
                json_t *w = json_array();
                for (int i = 0; i < n; i++)
                        json_array_append_new(w, json_pack("{s:i, s:i, s:i}", "start", 10 * i, "end",
                                                           10 * i + 5, "rate_bps", 1));
                json_t *body = json_pack("{s:o}", "windows", w);
                char *text = json_dumps(body, JSON_COMPACT);
                json_decref(body);
                assert_non_null(text);
                msg = NULL;
                int r = contact_plan_parse(text, strlen(text), &plan, &msg);
                if (n == CONTACT_PLAN_WINDOWS_MAX) {
                        assert_int_equal(r, 0);
                        json_decref(plan);
                } else {
                        assert_int_equal(r, -EINVAL);
                        assert_non_null(strstr(msg, "windows: more than 256 windows"));
                        free(msg);
                }
                free(text);
        }
}

/* Node certificates (#18 item 3): the routes, a node's request, an operator's leave. */
static void test_certificate_requests(void **state) {
        (void) state;
        struct api_match m;
        assert_int_equal(api_route_match("POST", "/v1/nodes/sat-1/certificate", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE_CERTIFICATE);
        assert_string_equal(m.id, "sat-1");
        assert_true(api_route_is_node(m.route));
        assert_int_equal(api_route_match("GET", "/v1/nodes/sat-1/certificate", &m), -EOPNOTSUPP);
        assert_int_equal(api_route_match("POST", "/v1/nodes/sat-1/allow-renew", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE_ALLOW_RENEW);
        assert_false(api_route_is_node(m.route));
        assert_false(allows(API_ROLE_VIEWER, "POST", "/v1/nodes/sat-1/allow-renew"));
        assert_true(allows(API_ROLE_OPERATOR, "POST", "/v1/nodes/sat-1/allow-renew"));
        assert_int_equal(api_route_match("POST", "/v1/nodes/sat-1/revoke-certificates", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE_REVOKE_CERTS);
        assert_false(api_route_is_node(m.route));
        assert_int_equal(api_route_match("GET", "/v1/nodes/sat-1/revoke-certificates", &m), -EOPNOTSUPP);
        assert_false(allows(API_ROLE_VIEWER, "POST", "/v1/nodes/sat-1/revoke-certificates"));
        assert_true(allows(API_ROLE_OPERATOR, "POST", "/v1/nodes/sat-1/revoke-certificates"));

        const char *csr = NULL;
        char *msg = NULL;
        json_t *b = json_pack("{s:i, s:s}", "format", 1, "csr", "PEM");
        assert_int_equal(certificate_request_parse(b, &csr, &msg), 0);
        assert_string_equal(csr, "PEM");
        json_decref(b);
        const char *bad[] = {"{\"format\": 2, \"csr\": \"PEM\"}", "{\"format\": 1}", "{\"format\": 1, \"csr\": \"\"}",
                             "{\"format\": 1, \"csr\": \"PEM\", \"node\": \"x\"}", "[]"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                b = json_loads(bad[i], JSON_DECODE_ANY, NULL);
                assert_int_equal(certificate_request_parse(b, &csr, &msg), -EINVAL);
                assert_non_null(msg);
                free(msg);
                msg = NULL;
                json_decref(b);
        }
        assert_int_equal(certificate_request_parse(NULL, &csr, &msg), -EINVAL);
        free(msg);
        msg = NULL;

        int64_t until = 0;
        const char *ok = "{\"until\": 5000}";
        assert_int_equal(renew_allow_parse(ok, strlen(ok), 1000, &until, &msg), 0);
        assert_int_equal(until, 5000);
        const char *refused[] = {"{\"until\": 1000}", "{\"until\": 900}", "{\"until\": 99999999}", "{}",
                                 "{\"until\": 5000, \"x\": 1}", "nope"};
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                assert_int_equal(renew_allow_parse(refused[i], strlen(refused[i]), 1000, &until, &msg), -EINVAL);
                assert_non_null(msg);
                free(msg);
                msg = NULL;
        }
}

static void test_command_request(void **state) {
        struct command_request cr;
        char *msg = NULL;
        const char *t = "{\"action\":\"reboot\"}";
        assert_int_equal(command_request_parse(t, strlen(t), &cr, &msg), 0);
        assert_string_equal(cr.action, "reboot");
        assert_int_equal(json_object_size(cr.params), 0);
        assert_int_equal(cr.expires_in_sec, COMMAND_EXPIRES_DEFAULT);
        command_request_done(&cr);
        t = "{\"action\":\"workload.start\",\"params\":{\"name\":\"a\"},\"expires_in_sec\":120}";
        assert_int_equal(command_request_parse(t, strlen(t), &cr, &msg), 0);
        assert_int_equal(cr.expires_in_sec, 120);
        assert_string_equal(json_string_value(json_object_get(cr.params, "name")), "a");
        command_request_done(&cr);
        t = "{\"action\":\"reboot\",\"expires_in_sec\":5}";
        assert_int_equal(command_request_parse(t, strlen(t), &cr, &msg), -EINVAL);
        assert_non_null(strstr(msg, "expires_in_sec: 5 is out of range [60, 2592000]"));
        free(msg);
        msg = NULL;
        t = "{\"actoin\":\"reboot\"}";
        assert_int_equal(command_request_parse(t, strlen(t), &cr, &msg), -EINVAL);
        assert_non_null(strstr(msg, "actoin: unknown key (did you mean \"action\"?)"));
        assert_non_null(strstr(msg, "missing required key \"action\""));
        free(msg);
}

/* GET /v1/usage (#19 item 5): a viewer reads it; the query refused with what is wrong. */
static void test_usage_query(void **state) {
        struct api_match m;
        assert_int_equal(api_route_match("GET", "/v1/usage", &m), 0);
        assert_int_equal(m.route, API_ROUTE_USAGE);
        assert_int_equal(api_route_match("POST", "/v1/usage", &m), -EOPNOTSUPP);
        assert_true(api_role_allows(API_ROLE_VIEWER, &m, "GET"));
        assert_false(api_role_allows(API_ROLE_NONE, &m, "GET"));
        assert_false(api_route_is_node(API_ROUTE_USAGE));
        assert_int_equal(record_effect_of("usage.report"), RECORD_EFFECT_USAGE);

        struct usage_query q;
        char *msg = NULL;
        assert_int_equal(usage_query_parse(NULL, NULL, NULL, NULL, NULL, NULL, &q, &msg), 0);
        assert_int_equal(q.by, USAGE_BY_TENANT);
        assert_string_equal(q.tenant, "");
        assert_int_equal(q.since, 0);
        assert_int_equal(usage_query_parse("workload", "acme", "dep-a", "n1", "100", "200", &q, &msg), 0);
        assert_int_equal(q.by, USAGE_BY_WORKLOAD);
        assert_string_equal(q.tenant, "acme");
        assert_string_equal(q.deployment, "dep-a");
        assert_string_equal(q.node, "n1");
        assert_int_equal(q.since, 100);
        assert_int_equal(q.until, 200);
        assert_string_equal(usage_by_to_string(USAGE_BY_DEPLOYMENT), "deployment");
        static const struct {
                const char *by, *tenant, *since, *until, *message;
        } bad[] = {
                {"app", NULL, NULL, NULL, "by: expected tenant, deployment, node or workload"},
                {NULL, "a b", NULL, NULL, "tenant: expected 1-64 of A-Z a-z 0-9 . _ -"},
                {NULL, "", NULL, NULL, "tenant:"},
                {NULL, NULL, "-5", NULL, "since: expected unix seconds"},
                {NULL, NULL, "1x", NULL, "since:"},
                {NULL, NULL, NULL, "", "until:"},
                {NULL, NULL, "200", "100", "since must come before until"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                msg = NULL;
                assert_int_equal(usage_query_parse(bad[i].by, bad[i].tenant, NULL, NULL, bad[i].since, bad[i].until, &q,
                                                   &msg),
                                 -EINVAL);
                if (!msg || strncmp(msg, bad[i].message, strlen(bad[i].message)) != 0)
                        fail_msg("case %zu: \"%s\"", i, msg ? msg : "(none)");
                free(msg);
        }
}

static void test_query_and_auth(void **state) {
        size_t limit;
        char *msg = NULL;
        assert_int_equal(records_query_check(NULL, NULL, &limit, &msg), 0);
        assert_int_equal(limit, RECORDS_LIMIT_DEFAULT);
        assert_int_equal(records_query_check("update.*", "5", &limit, &msg), 0);
        assert_int_equal(limit, 5);
        assert_int_equal(records_query_check("up*date", NULL, &limit, &msg), -EINVAL);
        free(msg);
        msg = NULL;
        assert_int_equal(records_query_check("x", "1001", &limit, &msg), -EINVAL);
        free(msg);
        msg = NULL;
        assert_int_equal(records_query_check("x", "-1", &limit, &msg), -EINVAL);
        free(msg);
        msg = NULL;
        assert_int_equal(records_query_check("x", "0", &limit, &msg), -EINVAL);
        free(msg);

        assert_string_equal(api_bearer_token("Bearer abc"), "abc");
        assert_null(api_bearer_token("Basic abc"));
        assert_null(api_bearer_token("Bearer "));
        assert_null(api_bearer_token(NULL));
        assert_true(api_secret_equal("secret", 6, "secret", 6));
        assert_false(api_secret_equal("secret", 6, "secreT", 6));
        assert_false(api_secret_equal("secret", 6, "secret2", 7));
        assert_false(api_secret_equal("", 0, "x", 1));
        assert_true(api_secret_equal("", 0, "", 0));

        char *e = api_error_body("bad-request", "a \"quoted\" thing");
        assert_string_equal(e, "{\"error\":\"bad-request\",\"message\":\"a \\\"quoted\\\" thing\"}");
        free(e);
}

static void test_rollout_routes(void **state) {
        struct api_match m;
        assert_int_equal(api_route_match("GET", "/v1/rollouts", &m), 0);
        assert_int_equal(m.route, API_ROUTE_ROLLOUTS);
        assert_int_equal(api_route_match("POST", "/v1/rollouts", &m), 0);
        assert_int_equal(api_route_match("DELETE", "/v1/rollouts", &m), -EOPNOTSUPP);
        assert_int_equal(api_route_match("GET", "/v1/rollouts/r-1", &m), 0);
        assert_int_equal(m.route, API_ROUTE_ROLLOUT);
        assert_string_equal(m.id, "r-1");
        assert_int_equal(api_route_match("POST", "/v1/rollouts/r-1/abort", &m), 0);
        assert_int_equal(m.route, API_ROUTE_ROLLOUT_VERB);
        assert_string_equal(m.verb, "abort");
        assert_int_equal(api_route_match("GET", "/v1/rollouts/r-1/abort", &m), -EOPNOTSUPP);
        assert_int_equal(api_route_match("POST", "/v1/rollouts/r-1/explode", &m), -ENOENT);
        assert_int_equal(api_route_match("POST", "/v1/rollouts/r-1/start/x", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/v1/rollouts/..", &m), -EINVAL);
        assert_int_equal(api_route_match("POST", "/v1/nodes/n1/groups", &m), 0);
        assert_int_equal(m.route, API_ROUTE_NODE_GROUPS);
        assert_int_equal(api_route_match("DELETE", "/v1/nodes/n1/groups", &m), 0);
        assert_false(api_route_is_node(API_ROUTE_ROLLOUTS));
        assert_false(api_route_is_node(API_ROUTE_NODE_GROUPS));

        char g[65], *msg = NULL;
        assert_int_equal(group_request_parse("{\"group\":\"fleet-a\"}", 19, g, sizeof(g), &msg), 0);
        assert_string_equal(g, "fleet-a");
        const char *bad[] = {"{\"group\":\"all\"}", "{\"group\":\"a b\"}", "{\"group\":1}",
                             "{\"group\":\"a\",\"x\":1}", "{}", "[]"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(group_request_parse(bad[i], strlen(bad[i]), g, sizeof(g), &msg),
                                 -EINVAL);
                free(msg);
                msg = NULL;
        }
}

static void test_ops_routes_and_roles(void **state) {
        struct api_match m;
        assert_int_equal(api_route_match("GET", "/metrics", &m), 0);
        assert_int_equal(m.route, API_ROUTE_METRICS);
        assert_int_equal(api_route_match("POST", "/metrics", &m), -EOPNOTSUPP);
        assert_int_equal(api_route_match("GET", "/v1/whoami", &m), 0);
        assert_int_equal(m.route, API_ROUTE_WHOAMI);
        assert_int_equal(api_route_match("GET", "/", &m), 0);
        assert_int_equal(m.route, API_ROUTE_WEB);
        assert_string_equal(m.id, "index.html");
        assert_int_equal(api_route_match("GET", "/ui/app.js", &m), 0);
        assert_string_equal(m.id, "app.js");
        assert_int_equal(api_route_match("POST", "/ui/app.js", &m), -EOPNOTSUPP);
        /* nothing outside the web directory, nothing hidden, no subdirectory */
        assert_int_equal(api_route_match("GET", "/ui/../store.c", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/ui/.htaccess", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/ui/a/b.js", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/ui/a..js", &m), -ENOENT);
        assert_int_equal(api_route_match("GET", "/ui/App.js", &m), -ENOENT);
        /* roles: a viewer reads, an operator steers, a release manager releases; the web
         * files are open */
        assert_true(allows(API_ROLE_VIEWER, "GET", "/v1/rollouts/r-1"));
        assert_true(allows(API_ROLE_VIEWER, "GET", "/metrics"));
        assert_true(allows(API_ROLE_VIEWER, "HEAD", "/v1/bundles/b-1"));
        assert_true(allows(API_ROLE_VIEWER, "GET", "/v1/bundles"));
        assert_false(allows(API_ROLE_VIEWER, "POST", "/v1/rollouts/r-1/pause"));
        assert_false(allows(API_ROLE_VIEWER, "POST", "/v1/nodes/n-1/commands"));
        assert_false(allows(API_ROLE_VIEWER, "PUT", "/v1/nodes/n-1/contact-plan"));
        assert_false(allows(API_ROLE_VIEWER, "DELETE", "/v1/nodes/n-1/groups"));
        const char *steer[] = {"/v1/rollouts/r-1/pause", "/v1/rollouts/r-1/resume", "/v1/rollouts/r-1/abort",
                               "/v1/nodes/n-1/commands", "/v1/nodes/n-1/groups"};
        for (size_t i = 0; i < ELEMENTSOF(steer); i++) {
                assert_true(allows(API_ROLE_OPERATOR, "POST", steer[i]));
                assert_true(allows(API_ROLE_RELEASE_MANAGER, "POST", steer[i]));
        }
        assert_true(allows(API_ROLE_OPERATOR, "PUT", "/v1/nodes/n-1/contact-plan"));
        const char *release[] = {"/v1/bundles", "/v1/rollouts", "/v1/rollouts/r-1/start"};
        for (size_t i = 0; i < ELEMENTSOF(release); i++) {
                assert_false(allows(API_ROLE_VIEWER, "POST", release[i]));
                assert_false(allows(API_ROLE_OPERATOR, "POST", release[i]));
                assert_true(allows(API_ROLE_RELEASE_MANAGER, "POST", release[i]));
        }
        assert_true(allows(API_ROLE_NONE, "GET", "/"));
        assert_false(allows(API_ROLE_NONE, "GET", "/v1/nodes"));
        /* what a node installs or commits is the release manager's; a rollback (bounded by
         * the release's floor on the node) and everything else the operator's */
        assert_int_equal(api_role_needed_for_action("update.install"), API_ROLE_RELEASE_MANAGER);
        assert_int_equal(api_role_needed_for_action("update.mark-good"), API_ROLE_RELEASE_MANAGER);
        assert_int_equal(api_role_needed_for_action("update.rollback"), API_ROLE_OPERATOR);
        assert_int_equal(api_role_needed_for_action("workload.restart"), API_ROLE_OPERATOR);
        assert_int_equal(api_role_needed_for_action("config.set"), API_ROLE_OPERATOR);
        /* the names an operator certificate's OU may carry */
        assert_int_equal(api_role_from_string("viewer"), API_ROLE_VIEWER);
        assert_int_equal(api_role_from_string("operator"), API_ROLE_OPERATOR);
        assert_int_equal(api_role_from_string("release-manager"), API_ROLE_RELEASE_MANAGER);
        assert_int_equal(api_role_from_string("none"), API_ROLE_NONE);
        assert_int_equal(api_role_from_string("Release-Manager"), API_ROLE_NONE);
        assert_int_equal(api_role_from_string("ground team"), API_ROLE_NONE);
        assert_int_equal(api_role_from_string(NULL), API_ROLE_NONE);
        assert_string_equal(api_role_to_string(API_ROLE_RELEASE_MANAGER), "release-manager");
}

static void test_metrics_render(void **state) {
        json_t *snap = json_loads(
                "{\"now\":1000,\"poll_interval\":60,"
                "\"nodes\":[{\"id\":\"a\",\"last_sync\":990,\"syncs\":5,\"passes\":2,"
                "\"usage_reports\":4,\"usage_refused\":1,"
                "\"health\":{\"level\":\"hot\",\"metrics\":{\"zone.cpu\\\"x.temp_c\":"
                "{\"last\":71.5},\"battery.capacity_percent\":{\"last\":40}}}},"
                "{\"id\":\"b\",\"last_sync\":100,\"syncs\":1,\"passes\":1,\"health\":null},"
                "{\"id\":\"c\",\"last_sync\":null,\"syncs\":0,\"passes\":0,\"health\":null}],"
                "\"records\":{\"health.report\":7},\"record_lag\":{\"health.report\":"
                "{\"mean\":2.5,\"max\":9,\"n\":7}},\"commands\":{\"done\":3},"
                "\"rollouts\":[{\"id\":\"r\",\"state\":\"halted\",\"current_stage\":2,"
                "\"nodes\":{\"overdue\":1}}]}",
                0, NULL);
        assert_non_null(snap);
        struct metrics_counters c = {.sync_requests = 12, .sync_bytes_received = 3400,
                                     .sync_bytes_sent = 560, .certs_verified = 4};
        char *text = NULL;
        assert_int_equal(metrics_render(snap, &c, &text), 0);
        const char *want[] = {
                "# TYPE orbit_nodes gauge\n",
                "orbit_nodes{state=\"online\"} 1\n",
                "orbit_nodes{state=\"silent\"} 1\n",
                "orbit_nodes{state=\"never\"} 1\n",
                "orbit_node_last_seen_age_seconds{node=\"a\"} 10\n",
                "# TYPE orbit_node_syncs_total counter\n",
                "orbit_node_syncs_total{node=\"a\"} 5\n",
                "orbit_node_syncs_total{node=\"c\"} 0\n",
                "# HELP orbit_node_passes_total Passes of the node (its syncs closer than the pass "
                "gap, or in one contact window, are one).\n",
                "orbit_node_passes_total{node=\"a\"} 2\n",
                "orbit_node_passes_total{node=\"b\"} 1\n",
                "# TYPE orbit_controller_syncs_total counter\n",
                "orbit_controller_syncs_total 12\n",
                "orbit_controller_sync_received_bytes_total 3400\n",
                "orbit_controller_client_certificates_verified_total 4\n",
                "orbit_records{kind=\"health.report\"} 7\n",
                "orbit_record_lag_seconds_max{kind=\"health.report\"} 9\n",
                "orbit_commands{state=\"done\"} 3\n",
                "orbit_rollouts{state=\"halted\"} 1\n",
                "orbit_rollouts{state=\"running\"} 0\n",
                "orbit_rollout_stage{rollout=\"r\",state=\"halted\"} 2\n",
                "orbit_rollout_nodes{rollout=\"r\",state=\"overdue\"} 1\n",
                /* a label value from the node is escaped */
                "orbit_node_temperature_celsius{node=\"a\",sensor=\"zone.cpu\\\"x\"} 71.5\n",
                "orbit_node_battery_capacity_percent{node=\"a\"} 40\n",
                "orbit_node_health_level{node=\"a\"} 2\n",
                "# TYPE orbit_usage_records_total counter\n",
                "orbit_usage_records_total{node=\"a\",result=\"counted\"} 4\n",
                "orbit_usage_records_total{node=\"a\",result=\"refused\"} 1\n",
                "orbit_usage_records_total{node=\"b\",result=\"counted\"} 0\n",
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                if (!strstr(text, want[i]))
                        fail_msg("missing: %s\nin:\n%s", want[i], text);
        /* no last-seen age for a node that never synced */
        assert_null(strstr(text, "orbit_node_last_seen_age_seconds{node=\"c\"}"));
        free(text);
        json_decref(snap);
        assert_int_equal(metrics_level_value("critical"), 3);
        assert_int_equal(metrics_level_value("bogus"), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_routes),
                cmocka_unit_test(test_ops_routes_and_roles),
                cmocka_unit_test(test_metrics_render),
                cmocka_unit_test(test_rollout_routes),
                cmocka_unit_test(test_sync_good),
                cmocka_unit_test(test_sync_strict),
                cmocka_unit_test(test_sync_compact),
                cmocka_unit_test(test_decisions),
                cmocka_unit_test(test_contact_plan),
                cmocka_unit_test(test_command_request),
                cmocka_unit_test(test_certificate_requests),
                cmocka_unit_test(test_query_and_auth),
                cmocka_unit_test(test_usage_query),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
