/*
 * Unit tests for the pure rollout core: options, stage assignment (deterministic, exact
 * shares), the node state machine, the threshold, stage decisions and operator verbs.
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

#include "controller/rollout.h"

static void test_stages_parse(void **state) {
        unsigned st[ROLLOUT_STAGES_MAX];
        size_t n;
        char *m = NULL;
        assert_int_equal(rollout_stages_parse("1,10,50,100", st, &n, NULL), 0);
        assert_int_equal(n, 4);
        assert_int_equal(st[0], 1);
        assert_int_equal(st[3], 100);
        assert_int_equal(rollout_stages_parse("100", st, &n, NULL), 0);
        assert_int_equal(n, 1);
        const char *bad[] = {"", "0,100", "10,5,100", "10,10,100", "1,50", "1,101", "1;100",
                             "1,,100", "a", "1,2,3,4,5,6,7,8,9,10,100", "-1,100"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(rollout_stages_parse(bad[i], st, &n, &m), -EINVAL);
                assert_non_null(strstr(m, "stages"));
                free(m);
                m = NULL;
        }
        char buf[64];
        rollout_stages_format((unsigned[]){5, 25, 100}, 3, buf, sizeof(buf));
        assert_string_equal(buf, "5,25,100");
}

static void test_gate_and_threshold_parse(void **state) {
        struct rollout_gate g;
        char *m = NULL, buf[32];
        assert_int_equal(rollout_gate_parse("x", "3", false, &g, NULL), 0);
        assert_int_equal(g.kind, ROLLOUT_GATE_CONTACTS);
        assert_int_equal(g.value, 3);
        assert_int_equal(rollout_gate_parse("x", "10m", false, &g, NULL), 0);
        assert_int_equal(g.kind, ROLLOUT_GATE_SECONDS);
        assert_int_equal(g.value, 600);
        assert_int_equal(rollout_gate_parse("x", "2h", false, &g, NULL), 0);
        assert_int_equal(g.value, 7200);
        assert_int_equal(rollout_gate_parse("x", "1d", false, &g, NULL), 0);
        assert_int_equal(g.value, 86400);
        rollout_gate_format(&g, buf, sizeof(buf));
        assert_string_equal(buf, "86400s");
        assert_int_equal(rollout_gate_parse("x", "86400s", false, &g, NULL), 0); /* round trip */
        assert_int_equal(g.value, 86400);
        assert_int_equal(rollout_gate_parse("x", "0", true, &g, NULL), 0);
        assert_int_equal(rollout_gate_parse("success", "0", false, &g, &m), -EINVAL);
        assert_non_null(strstr(m, "success"));
        free(m);
        const char *bad[] = {"", "3x", "m", "1.5h", "-2", "10ms", "999999999999"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(rollout_gate_parse("x", bad[i], true, &g, NULL), -EINVAL);

        struct rollout_threshold t;
        assert_int_equal(rollout_threshold_parse("2", &t, NULL), 0);
        assert_false(t.percent);
        assert_int_equal(t.value, 2);
        assert_int_equal(rollout_threshold_parse("10%", &t, NULL), 0);
        assert_true(t.percent);
        assert_int_equal(t.value, 10);
        rollout_threshold_format(&t, buf, sizeof(buf));
        assert_string_equal(buf, "10%");
        assert_int_equal(rollout_threshold_parse("101%", &t, NULL), -EINVAL);
        assert_int_equal(rollout_threshold_parse("%", &t, NULL), -EINVAL);
        assert_int_equal(rollout_threshold_parse("5%%", &t, NULL), -EINVAL);
        assert_int_equal(rollout_threshold_parse("x", &t, &m), -EINVAL);
        assert_non_null(strstr(m, "max_failures"));
        free(m);
}

static void test_request_parse(void **state) {
        struct rollout_options o;
        char *m = NULL;
        const char *ok = "{\"bundle_id\":\"fw-2\",\"target\":\"fleet\",\"stages\":[5,100],"
                         "\"success_after\":\"30s\",\"stage_timeout\":40,\"max_failures\":\"10%\"}";
        assert_int_equal(rollout_request_parse(ok, strlen(ok), &o, &m), 0);
        assert_string_equal(o.bundle_id, "fw-2");
        assert_string_equal(o.target, "fleet");
        assert_string_equal(o.id, "");
        assert_int_equal(o.n_stages, 2);
        assert_int_equal(o.success_after.kind, ROLLOUT_GATE_SECONDS);
        assert_int_equal(o.stage_timeout.value, 40);
        assert_true(o.max_failures.percent);

        const char *defaults = "{\"bundle_id\":\"fw-2\",\"stages\":\"1,10,50,100\"}";
        assert_int_equal(rollout_request_parse(defaults, strlen(defaults), &o, NULL), 0);
        assert_string_equal(o.target, "all");
        assert_int_equal(o.n_stages, 4);
        assert_int_equal(o.success_after.value, 1);
        assert_int_equal(o.stage_timeout.value, 0);
        assert_int_equal(o.max_failures.value, 0);

        json_t *j = rollout_options_to_json(&o);
        assert_string_equal(json_string_value(json_object_get(j, "stages_text")), "1,10,50,100");
        assert_true(json_is_null(json_object_get(j, "stage_timeout")));
        json_decref(j);

        /* every problem named */
        const char *bad = "{\"bundle_id\":\"../x\",\"stages\":[50,10],\"colour\":1,"
                          "\"max_failures\":\"lots\"}";
        assert_int_equal(rollout_request_parse(bad, strlen(bad), &o, &m), -EINVAL);
        assert_non_null(strstr(m, "bundle_id"));
        assert_non_null(strstr(m, "stages"));
        assert_non_null(strstr(m, "colour"));
        assert_non_null(strstr(m, "max_failures"));
        free(m);
        m = NULL;
        assert_int_equal(rollout_request_parse("{}", 2, &o, &m), -EINVAL);
        assert_non_null(strstr(m, "bundle_id"));
        free(m);
        m = NULL;
        assert_int_equal(rollout_request_parse("[1]", 3, &o, &m), -EINVAL);
        free(m);
}

static void test_assign_stages(void **state) {
        enum { N = 200 };
        char names[N][16];
        const char *ids[N];
        unsigned stage[N], again[N], other[N];
        for (int i = 0; i < N; i++) {
                snprintf(names[i], sizeof(names[i]), "sat-%03d", i);
                ids[i] = names[i];
        }
        const unsigned stages[] = {1, 10, 50, 100};
        rollout_assign_stages("r1", ids, N, stages, 4, stage);
        size_t count[4] = {};
        for (int i = 0; i < N; i++) {
                assert_true(stage[i] < 4);
                count[stage[i]]++;
        }
        /* exact shares: ceil(1%), ceil(10%), ceil(50%), all, cumulative */
        assert_int_equal(count[0], 2);
        assert_int_equal(count[1], 18);
        assert_int_equal(count[2], 80);
        assert_int_equal(count[3], 100);

        /* the same ids in another order: the same stages (nothing depends on order) */
        const char *reversed[N];
        for (int i = 0; i < N; i++)
                reversed[i] = ids[N - 1 - i];
        rollout_assign_stages("r1", reversed, N, stages, 4, again);
        for (int i = 0; i < N; i++)
                assert_int_equal(again[N - 1 - i], stage[i]);

        /* another rollout id shuffles the fleet differently */
        rollout_assign_stages("r2", ids, N, stages, 4, other);
        int differ = 0;
        for (int i = 0; i < N; i++)
                differ += other[i] != stage[i];
        assert_true(differ > 20);

        /* a 1% canary has one node even in a small fleet; tiny fleets fill stages in order */
        unsigned small[3];
        rollout_assign_stages("r1", ids, 3, stages, 4, small);
        size_t c3[4] = {};
        for (int i = 0; i < 3; i++)
                c3[small[i]]++;
        assert_int_equal(c3[0], 1);
        assert_int_equal(c3[1], 0);
        assert_int_equal(c3[2], 1);
        assert_int_equal(c3[3], 1);

        /* the key is SHA-256 of "rollout:node": fixed, so any controller agrees */
        assert_int_equal(rollout_node_key("r1", "sat-001"), rollout_node_key("r1", "sat-001"));
        assert_true(rollout_node_key("r1", "sat-001") != rollout_node_key("r2", "sat-001"));
}

static void test_node_states(void **state) {
        enum rollout_node_state s = ROLLOUT_NODE_TOLD;
        s = rollout_node_after_update(s, "update.fetching");
        assert_int_equal(s, ROLLOUT_NODE_INSTALLING);
        s = rollout_node_after_update(s, "update.ready");
        assert_int_equal(s, ROLLOUT_NODE_INSTALLING);
        s = rollout_node_after_update(s, "update.trial");
        assert_int_equal(s, ROLLOUT_NODE_INSTALLING);
        s = rollout_node_after_update(s, "update.committed");
        assert_int_equal(s, ROLLOUT_NODE_COMMITTED);
        /* a late progress record changes nothing; a rollback after the commit does */
        assert_int_equal(rollout_node_after_update(s, "update.installing"), ROLLOUT_NODE_COMMITTED);
        assert_int_equal(rollout_node_after_update(s, "update.rolled-back"),
                         ROLLOUT_NODE_ROLLED_BACK);
        /* final states stay */
        assert_int_equal(rollout_node_after_update(ROLLOUT_NODE_ROLLED_BACK, "update.committed"),
                         ROLLOUT_NODE_ROLLED_BACK);
        assert_int_equal(rollout_node_after_update(ROLLOUT_NODE_FAILED, "update.installing"),
                         ROLLOUT_NODE_FAILED);
        assert_int_equal(rollout_node_after_update(ROLLOUT_NODE_SKIPPED, "update.committed"),
                         ROLLOUT_NODE_SKIPPED);
        assert_int_equal(rollout_node_after_update(ROLLOUT_NODE_INSTALLING, "update.failed"),
                         ROLLOUT_NODE_FAILED);
        assert_int_equal(rollout_node_after_update(ROLLOUT_NODE_TOLD, "health.report"),
                         ROLLOUT_NODE_TOLD);
        assert_int_equal(rollout_node_after_update(ROLLOUT_NODE_TOLD, "update.unknown-phase"),
                         ROLLOUT_NODE_TOLD);
        /* the install command's own result */
        assert_int_equal(rollout_node_after_install_result(ROLLOUT_NODE_TOLD, "rejected"),
                         ROLLOUT_NODE_FAILED);
        assert_int_equal(rollout_node_after_install_result(ROLLOUT_NODE_TOLD, "failed"),
                         ROLLOUT_NODE_FAILED);
        assert_int_equal(rollout_node_after_install_result(ROLLOUT_NODE_TOLD, "done"),
                         ROLLOUT_NODE_TOLD);
        assert_int_equal(rollout_node_after_install_result(ROLLOUT_NODE_COMMITTED, "failed"),
                         ROLLOUT_NODE_COMMITTED);
        /* names both ways */
        for (int i = 0; i < _ROLLOUT_NODE_STATE_MAX; i++)
                assert_int_equal(rollout_node_state_from_string(rollout_node_state_to_string(i)), i);
        for (int i = 0; i < _ROLLOUT_STATE_MAX; i++)
                assert_int_equal(rollout_state_from_string(rollout_state_to_string(i)), i);
        assert_int_equal(rollout_state_from_string("nope"), -EINVAL);
}

static void test_threshold(void **state) {
        struct rollout_threshold abs2 = {.percent = false, .value = 2};
        assert_false(rollout_failures_exceeded(&abs2, 0, 10));
        assert_false(rollout_failures_exceeded(&abs2, 2, 10));
        assert_true(rollout_failures_exceeded(&abs2, 3, 10));
        struct rollout_threshold zero = {.percent = false, .value = 0};
        assert_false(rollout_failures_exceeded(&zero, 0, 10));
        assert_true(rollout_failures_exceeded(&zero, 1, 10));
        struct rollout_threshold p10 = {.percent = true, .value = 10};
        assert_false(rollout_failures_exceeded(&p10, 1, 10)); /* 10% is not over 10% */
        assert_true(rollout_failures_exceeded(&p10, 2, 10));
        assert_true(rollout_failures_exceeded(&p10, 1, 1)); /* a failed canary halts */
        assert_false(rollout_failures_exceeded(&p10, 5, 50));
        assert_true(rollout_failures_exceeded(&p10, 6, 50));
}

/* The decision from a stage's counts is the decision from its members, for random stages
 * and options; a member's due time is exactly when time alone changes it. */
static void test_decide_counts_and_due(void **state) {
        (void) state;
        uint32_t x = 11;
#define NEXT() ((x = x * 1103515245u + 12345u) >> 16 & 0x7fff)
        for (int round = 0; round < 3000; round++) {
                struct rollout_options o = {
                        .success_after = {NEXT() % 2 ? ROLLOUT_GATE_CONTACTS : ROLLOUT_GATE_SECONDS,
                                          1 + NEXT() % 4},
                        .min_healthy_time = NEXT() % 3 ? 0 : NEXT() % 5,
                        .stage_timeout = {NEXT() % 2 ? ROLLOUT_GATE_CONTACTS : ROLLOUT_GATE_SECONDS,
                                          NEXT() % 4},
                        .report_deadline = {NEXT() % 2 ? ROLLOUT_GATE_CONTACTS
                                                       : ROLLOUT_GATE_SECONDS,
                                            NEXT() % 3},
                };
                struct rollout_member m[8];
                size_t n = 1 + NEXT() % 8;
                int64_t now = 10;
                struct rollout_stage_counts c = {};
                for (size_t i = 0; i < n; i++) {
                        m[i] = (struct rollout_member){
                                .stage = NEXT() % 2,
                                .state = (enum rollout_node_state) (NEXT() % _ROLLOUT_NODE_STATE_MAX),
                                .committed_time = NEXT() % 10,
                                .passes_since_commit = NEXT() % 5,
                                .passes_since_told = NEXT() % 5,
                                .last_heard = NEXT() % 10,
                                .passes_unheard = NEXT() % 3,
                        };
                        if (m[i].stage != 0)
                                continue;
                        bool held = rollout_member_held(&m[i], &o, now);
                        c.by_state[m[i].state]++;
                        c.held += held;
                        c.out += rollout_member_out(&m[i], held, &o);
                }
                int64_t started = NEXT() % 10;
                assert_int_equal(rollout_stage_decide_counts(&c, &o, started, now),
                                 rollout_stage_decide(m, n, 0, &o, started, now));
                /* due: nothing changes before it; at it, the member is held or overdue */
                struct rollout_window w[2] = {{12, 14}, {16, 18}};
                for (size_t i = 0; i < n; i++) {
                        struct rollout_member a = m[i];
                        int64_t due = rollout_member_next_due(&a, &o, w, 2, now);
                        if (due == 0)
                                continue;
                        assert_true(due > now || a.state != ROLLOUT_NODE_COMMITTED);
                        if (a.state == ROLLOUT_NODE_COMMITTED) {
                                assert_false(rollout_member_held(&a, &o, due - 1));
                                if (o.success_after.kind == ROLLOUT_GATE_SECONDS ||
                                    a.passes_since_commit >= o.success_after.value)
                                        assert_true(rollout_member_held(&a, &o, due));
                        } else if (o.report_deadline.kind == ROLLOUT_GATE_SECONDS) {
                                assert_false(rollout_member_overdue(&a, &o, due - 1));
                                assert_true(rollout_member_overdue(&a, &o, due));
                        } else {
                                /* the deadline's windows end at due, after last heard */
                                int64_t ended = 0;
                                for (size_t k = 0; k < 2; k++)
                                        ended += w[k].end > a.last_heard && w[k].end <= due;
                                assert_int_equal(ended, o.report_deadline.value);
                        }
                }
        }
#undef NEXT
}

static void test_stage_decide(void **state) {
        struct rollout_options o = {.success_after = {ROLLOUT_GATE_CONTACTS, 2}};
        struct rollout_member m[] = {
                {.stage = 0, .state = ROLLOUT_NODE_COMMITTED, .passes_since_commit = 5},
                {.stage = 1, .state = ROLLOUT_NODE_COMMITTED, .passes_since_commit = 1},
                {.stage = 1, .state = ROLLOUT_NODE_INSTALLING},
                {.stage = 2, .state = ROLLOUT_NODE_PENDING},
        };
        assert_int_equal(rollout_stage_decide(m, 4, 0, &o, 0, 100), ROLLOUT_STAGE_ADVANCE);
        assert_int_equal(rollout_stage_decide(m, 4, 1, &o, 0, 100), ROLLOUT_STAGE_WAIT);
        m[2].state = ROLLOUT_NODE_COMMITTED;
        m[2].passes_since_commit = 3;
        /* m[1] has not held for two of its passes yet */
        assert_int_equal(rollout_stage_decide(m, 4, 1, &o, 0, 100), ROLLOUT_STAGE_WAIT);
        m[1].passes_since_commit = 2;
        assert_int_equal(rollout_stage_decide(m, 4, 1, &o, 0, 100), ROLLOUT_STAGE_ADVANCE);
        /* min healthy time: passes are not enough before the wall clock says so */
        o.min_healthy_time = 600;
        m[1].committed_time = m[2].committed_time = 0;
        assert_int_equal(rollout_stage_decide(m, 4, 1, &o, 0, 599), ROLLOUT_STAGE_WAIT);
        assert_int_equal(rollout_stage_decide(m, 4, 1, &o, 0, 600), ROLLOUT_STAGE_ADVANCE);
        o.min_healthy_time = 0;
        /* a tolerated failure does not hold the stage up, nor does an overdue node */
        m[1].state = ROLLOUT_NODE_ROLLED_BACK;
        assert_int_equal(rollout_stage_decide(m, 4, 1, &o, 0, 100), ROLLOUT_STAGE_ADVANCE);
        m[1].state = ROLLOUT_NODE_OVERDUE;
        assert_int_equal(rollout_stage_decide(m, 4, 1, &o, 0, 100), ROLLOUT_STAGE_ADVANCE);
        /* an empty stage passes at once */
        assert_int_equal(rollout_stage_decide(m, 4, 3, &o, 0, 100), ROLLOUT_STAGE_ADVANCE);
        /* duration gate */
        struct rollout_options od = {.success_after = {ROLLOUT_GATE_SECONDS, 60}};
        struct rollout_member d = {.stage = 0, .state = ROLLOUT_NODE_COMMITTED, .committed_time = 1000};
        assert_false(rollout_member_held(&d, &od, 1059));
        assert_true(rollout_member_held(&d, &od, 1060));
        assert_int_equal(rollout_stage_decide(&d, 1, 0, &od, 0, 1059), ROLLOUT_STAGE_WAIT);
        /* stage timeouts: passes of every member still on its way since it was told, or time */
        struct rollout_member w[] = {
                {.stage = 0, .state = ROLLOUT_NODE_TOLD, .passes_since_told = 3},
                {.stage = 0, .state = ROLLOUT_NODE_INSTALLING, .passes_since_told = 1},
        };
        o.stage_timeout = (struct rollout_gate){ROLLOUT_GATE_CONTACTS, 3};
        assert_int_equal(rollout_stage_decide(w, 2, 0, &o, 0, 100), ROLLOUT_STAGE_WAIT);
        w[1].passes_since_told = 3;
        assert_int_equal(rollout_stage_decide(w, 2, 0, &o, 0, 100), ROLLOUT_STAGE_TIMEOUT);
        /* a member never told has made no pass of the stage: only a duration ends it */
        w[1].state = ROLLOUT_NODE_PENDING;
        assert_int_equal(rollout_stage_decide(w, 2, 0, &o, 0, 100), ROLLOUT_STAGE_WAIT);
        o.stage_timeout = (struct rollout_gate){ROLLOUT_GATE_SECONDS, 300};
        assert_int_equal(rollout_stage_decide(w, 2, 0, &o, 1000, 1299), ROLLOUT_STAGE_WAIT);
        assert_int_equal(rollout_stage_decide(w, 2, 0, &o, 1000, 1300), ROLLOUT_STAGE_TIMEOUT);
}

static void test_passes(void **state) {
        /* without a plan: syncs at most gap apart are one pass */
        assert_true(rollout_pass_is_new(0, 1000, 300, NULL, 0)); /* first sync ever */
        assert_false(rollout_pass_is_new(1000, 1060, 300, NULL, 0));
        assert_false(rollout_pass_is_new(1000, 1300, 300, NULL, 0));
        assert_true(rollout_pass_is_new(1000, 1301, 300, NULL, 0));
        assert_true(rollout_pass_is_new(1000, 1001, 0, NULL, 0)); /* gap 0: every sync */
        /* with a plan: one window is one pass, however far apart its syncs */
        struct rollout_window w[] = {{1000, 2000}, {2100, 2200}};
        assert_false(rollout_pass_is_new(1001, 1999, 300, w, 2));
        assert_true(rollout_pass_is_new(1990, 2110, 300, w, 2)); /* the next window */
        assert_true(rollout_pass_is_new(1990, 2050, 300, w, 2)); /* outside any window */
        assert_false(rollout_pass_is_new(3000, 3100, 300, w, 2)); /* both outside: the gap */
}

static void test_overdue(void **state) {
        struct rollout_options o = {.report_deadline = {ROLLOUT_GATE_CONTACTS, 2}};
        struct rollout_member m = {.state = ROLLOUT_NODE_TOLD, .last_heard = 100, .passes_unheard = 1};
        assert_false(rollout_member_overdue(&m, &o, 10000));
        m.passes_unheard = 2;
        assert_true(rollout_member_overdue(&m, &o, 101));
        m.state = ROLLOUT_NODE_COMMITTED; /* heard: committed */
        assert_false(rollout_member_overdue(&m, &o, 101));
        m.state = ROLLOUT_NODE_INSTALLING;
        o.report_deadline = (struct rollout_gate){ROLLOUT_GATE_SECONDS, 3600};
        assert_false(rollout_member_overdue(&m, &o, 3699));
        assert_true(rollout_member_overdue(&m, &o, 3700));
        o.report_deadline.value = 0; /* none */
        assert_false(rollout_member_overdue(&m, &o, 1000000));
        /* overdue counts as a failure, is not final: a report moves it on */
        assert_true(rollout_node_state_is_failure(ROLLOUT_NODE_OVERDUE));
        assert_false(rollout_node_state_is_final(ROLLOUT_NODE_OVERDUE));
        assert_int_equal(rollout_node_after_update(ROLLOUT_NODE_OVERDUE, "update.committed"),
                         ROLLOUT_NODE_COMMITTED);
        assert_int_equal(rollout_node_after_install_result(ROLLOUT_NODE_OVERDUE, "rejected"),
                         ROLLOUT_NODE_FAILED);
        assert_true(rollout_member_needs_rollback(ROLLOUT_NODE_OVERDUE));
        /* the request */
        struct rollout_options r;
        char *msg = NULL;
        const char *req = "{\"bundle_id\":\"b\",\"report_deadline\":\"3\","
                          "\"min_healthy_time\":\"10m\",\"auto_revert\":true}";
        assert_int_equal(rollout_request_parse(req, strlen(req), &r, &msg), 0);
        assert_int_equal(r.report_deadline.kind, ROLLOUT_GATE_CONTACTS);
        assert_int_equal(r.report_deadline.value, 3);
        assert_int_equal(r.min_healthy_time, 600);
        assert_true(r.auto_revert);
        const char *bad = "{\"bundle_id\":\"b\",\"min_healthy_time\":\"3\",\"auto_revert\":1}";
        assert_int_equal(rollout_request_parse(bad, strlen(bad), &r, &msg), -EINVAL);
        assert_non_null(strstr(msg, "min_healthy_time"));
        assert_non_null(strstr(msg, "auto_revert"));
        free(msg);
}

static void test_revert_allowed(void **state) {
        char why[256] = "";
        assert_true(rollout_revert_allowed(NULL, why, sizeof(why))); /* nothing known */
        json_t *u = json_loads("{\"booted_slot\":\"B\",\"min_security_version\":5,"
                               "\"rootfs_slots\":{\"A\":{\"security_version\":4},"
                               "\"B\":{\"security_version\":5}}}", 0, NULL);
        assert_non_null(u);
        assert_false(rollout_revert_allowed(u, why, sizeof(why)));
        assert_non_null(strstr(why, "security_version 4"));
        assert_non_null(strstr(why, "floor 5"));
        /* the running release allows going back to 4 (its signed rollback_floor), not to 3 */
        json_t *b = json_object_get(json_object_get(u, "rootfs_slots"), "B");
        json_object_set_new(b, "rollback_floor", json_integer(4));
        assert_true(rollout_revert_allowed(u, why, sizeof(why)));
        json_object_set_new(json_object_get(json_object_get(u, "rootfs_slots"), "A"),
                            "security_version", json_integer(3));
        assert_false(rollout_revert_allowed(u, why, sizeof(why)));
        assert_non_null(strstr(why, "below 4, the rollback_floor of the release in slot B"));
        json_object_del(b, "rollback_floor");
        json_object_set_new(json_object_get(json_object_get(u, "rootfs_slots"), "A"),
                            "security_version", json_integer(5));
        assert_true(rollout_revert_allowed(u, why, sizeof(why)));
        json_decref(u);
}

static void test_tell_and_rollback(void **state) {
        struct rollout_member pend1 = {.stage = 1, .state = ROLLOUT_NODE_PENDING};
        assert_false(rollout_member_should_tell(ROLLOUT_RUNNING, 0, &pend1, false));
        assert_true(rollout_member_should_tell(ROLLOUT_RUNNING, 1, &pend1, false));
        assert_true(rollout_member_should_tell(ROLLOUT_RUNNING, 2, &pend1, false));
        assert_false(rollout_member_should_tell(ROLLOUT_RUNNING, 1, &pend1, true)); /* rolled back before */
        for (int s = 0; s < _ROLLOUT_STATE_MAX; s++)
                if (s != ROLLOUT_RUNNING)
                        assert_false(rollout_member_should_tell(s, 3, &pend1, false));
        struct rollout_member told = {.stage = 0, .state = ROLLOUT_NODE_TOLD};
        assert_false(rollout_member_should_tell(ROLLOUT_RUNNING, 3, &told, false)); /* never twice */
        assert_true(rollout_member_needs_rollback(ROLLOUT_NODE_COMMITTED));
        assert_true(rollout_member_needs_rollback(ROLLOUT_NODE_INSTALLING));
        assert_false(rollout_member_needs_rollback(ROLLOUT_NODE_PENDING));
        assert_false(rollout_member_needs_rollback(ROLLOUT_NODE_ROLLED_BACK));
}

static void test_verbs(void **state) {
        const char *why = NULL;
        assert_int_equal(rollout_state_after_verb(ROLLOUT_CREATED, "start", &why), ROLLOUT_RUNNING);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_RUNNING, "start", &why), -EINVAL);
        assert_non_null(why);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_RUNNING, "pause", &why), ROLLOUT_PAUSED);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_PAUSED, "resume", &why), ROLLOUT_RUNNING);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_HALTED, "resume", &why), -EINVAL);
        assert_non_null(strstr(why, "halted"));
        assert_int_equal(rollout_state_after_verb(ROLLOUT_HALTED, "abort", &why), ROLLOUT_ABORTED);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_PAUSED, "abort", &why), ROLLOUT_ABORTED);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_COMPLETED, "abort", &why), -EINVAL);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_ABORTED, "abort", &why), -EINVAL);
        assert_int_equal(rollout_state_after_verb(ROLLOUT_CREATED, "explode", &why), -EINVAL);
        assert_true(rollout_state_holds_nodes(ROLLOUT_PAUSED));
        assert_false(rollout_state_holds_nodes(ROLLOUT_HALTED));
        assert_true(rollout_state_is_live(ROLLOUT_ABORTED));
        assert_false(rollout_state_is_live(ROLLOUT_CREATED));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stages_parse),
                cmocka_unit_test(test_gate_and_threshold_parse),
                cmocka_unit_test(test_request_parse),
                cmocka_unit_test(test_assign_stages),
                cmocka_unit_test(test_node_states),
                cmocka_unit_test(test_threshold),
                cmocka_unit_test(test_stage_decide),
                cmocka_unit_test(test_decide_counts_and_due),
                cmocka_unit_test(test_passes),
                cmocka_unit_test(test_overdue),
                cmocka_unit_test(test_revert_allowed),
                cmocka_unit_test(test_tell_and_rollback),
                cmocka_unit_test(test_verbs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
