/* Rollouts in the store: rows, members, per-stage counts, events, the gates evaluated. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/command.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/rollout.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"

/* ---- rollouts ----------------------------------------------------------------------- */

/* Commands a rollout queues stay valid a week: long enough for a node between contacts. */

const char store_rollout_columns[] =
        "id, bundle_id, target, stages, success_after, stage_timeout, max_failures, state, "
        "current_stage, coalesce(stage_started, 0), min_healthy_time, created, "
        "coalesce(started, 0), coalesce(finished, 0), coalesce(reason, ''), report_deadline, "
        "auto_revert";

/* A row of store_rollout_columns. What the store wrote parses; anything else is corruption. */
int store_rollout_row_read(struct store *s, struct store_stmt *st, struct rollout_row *ret) {
        memset(ret, 0, sizeof(*ret));
        snprintf(ret->o.id, sizeof(ret->o.id), "%s", store_col_str(st, 0));
        snprintf(ret->o.bundle_id, sizeof(ret->o.bundle_id), "%s", store_col_str(st, 1));
        snprintf(ret->o.target, sizeof(ret->o.target), "%s", store_col_str(st, 2));
        int state = rollout_state_from_string(store_col_str(st, 7));
        if (rollout_stages_parse(store_col_str(st, 3), ret->o.stages, &ret->o.n_stages, NULL) < 0 ||
            rollout_gate_parse("success_after", store_col_str(st, 4), false, &ret->o.success_after,
                               NULL) < 0 ||
            rollout_gate_parse("stage_timeout", store_col_str(st, 5), true, &ret->o.stage_timeout,
                               NULL) < 0 ||
            rollout_threshold_parse(store_col_str(st, 6), &ret->o.max_failures, NULL) < 0 ||
            rollout_gate_parse("report_deadline", store_col_str(st, 15), true,
                               &ret->o.report_deadline, NULL) < 0 ||
            state < 0) {
                log_error("store: rollout %s: a stored field does not parse", ret->o.id);
                return -EBADMSG;
        }
        ret->state = (enum rollout_state) state;
        ret->current_stage = (unsigned) store_col_int(st, 8);
        if (ret->current_stage >= ret->o.n_stages)
                ret->current_stage = (unsigned) ret->o.n_stages - 1;
        ret->stage_started = store_col_int64(st, 9);
        ret->o.min_healthy_time = store_col_int64(st, 10);
        ret->o.auto_revert = store_col_int(st, 16) != 0;
        ret->created = store_col_int64(st, 11);
        ret->started = store_col_int64(st, 12);
        ret->finished = store_col_int64(st, 13);
        snprintf(ret->reason, sizeof(ret->reason), "%s", store_col_str(st, 14));
        (void) s;
        return 0;
}

int store_rollout_load(struct store *s, const char *id, struct rollout_row *ret) {
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT %s FROM rollouts WHERE id = ?", store_rollout_columns);
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(s, &st, sql, "t", id);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        return store_rollout_row_read(s, st, ret);
}

int store_rollout_save(struct store *s, const struct rollout_row *row) {
        int r = store_exec(s,
                           "UPDATE rollouts SET state = ?, current_stage = ?, stage_started = ?, "
                           "started = nullif(?, 0), finished = nullif(?, 0), "
                           "reason = nullif(?, '') WHERE id = ?",
                           "tdiiitt", rollout_state_to_string(row->state), (int) row->current_stage,
                           row->stage_started, row->started, row->finished, row->reason, row->o.id);
        if (r < 0 || row->state == ROLLOUT_RUNNING || row->state == ROLLOUT_PAUSED)
                return r;
        /* Over: time changes nothing in its members any more (once per rollout). */
        return store_exec(
                s, "UPDATE rollout_nodes SET due = NULL WHERE rollout = ? AND due IS NOT NULL", "t",
                row->o.id);
}

_printf_(6, 7) int store_rollout_event(struct store *s, const char *id, int64_t now, int stage,
                                       const char *event, const char *fmt, ...) {
        char detail[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        log_info("rollout %s: %s%s%s", id, event, detail[0] ? ": " : "", detail);
        return store_exec(s,
                          "INSERT INTO rollout_events (rollout, time, stage, event, detail) "
                          "VALUES (?, ?, nullif(?, 0), ?, ?)",
                          "tidtt", id, now, stage >= 0 ? stage + 1 : 0, event, detail);
}

struct rollout_member store_member_read(struct store_stmt *st) {
        int state = rollout_node_state_from_string(store_col_str(st, 1));
        return (struct rollout_member){
                .stage = (unsigned) store_col_int(st, 0),
                .state = state < 0 ? ROLLOUT_NODE_PENDING : (enum rollout_node_state) state,
                .committed_time = store_col_int64(st, 2),
                .passes_since_commit = store_col_int64(st, 3),
                .passes_since_told = store_col_int64(st, 4),
                .last_heard = store_col_int64(st, 5),
                .passes_unheard = store_col_int64(st, 6),
        };
}

/*
 * The members as the pure decisions see them (*ret: caller frees), and their node ids
 * when ret_ids is not NULL. A told or installing member's unheard passes are the larger
 * of its own passes without a report and the windows of its contact plan that ended since
 * it was last heard from: a silent node makes no passes of its own, its plan says which
 * it missed.
 */
int store_rollout_members_load(struct store *s, const char *id, int64_t now,
                               struct rollout_member **ret, member_id **ret_ids, size_t *ret_n) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(
                s, &st,
                "SELECT rn.stage, rn.state, coalesce(rn.committed_time, 0), "
                "rn.contacts_since_commit, rn.passes_since_told, "
                "coalesce(rn.last_heard, rn.told_time, 0), "
                "CASE WHEN rn.state IN ('told', 'installing') THEN max(rn.passes_unheard, "
                "(SELECT count(*) FROM nodes n, json_each(n.contact_plan, '$.windows') w "
                "WHERE n.id = rn.node AND json_valid(n.contact_plan) AND "
                "CAST(json_extract(w.value, '$.end') AS BIGINT) > coalesce(rn.last_heard, rn.told_time, 0) "
                "AND CAST(json_extract(w.value, '$.end') AS BIGINT) <= ?2)) ELSE rn.passes_unheard END, "
                "rn.node FROM rollout_nodes rn WHERE rn.rollout = ?1",
                "ti", id, now);
        if (r < 0)
                return r;
        _cleanup_free_ struct rollout_member *m = NULL;
        _cleanup_free_ member_id *ids = NULL;
        size_t n = 0, cap = 0;
        while ((r = store_step(s, st)) > 0) {
                if (n == cap) {
                        size_t c = cap ? cap * 2 : 64;
                        struct rollout_member *p = realloc(m, c * sizeof(*m));
                        if (!p)
                                return -ENOMEM;
                        m = p;
                        if (ret_ids) {
                                member_id *q = realloc(ids, c * sizeof(*ids));
                                if (!q)
                                        return -ENOMEM;
                                ids = q;
                        }
                        cap = c;
                }
                if (ret_ids)
                        snprintf(ids[n], sizeof(ids[n]), "%s", store_col_str(st, 7));
                m[n++] = store_member_read(st);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        if (ret_ids)
                *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

void store_members_count(const struct rollout_member *m, size_t n, int stage,
                         struct member_counts *c) {
        memset(c, 0, sizeof(*c));
        for (size_t i = 0; i < n; i++) {
                if (stage >= 0 && m[i].stage != (unsigned) stage)
                        continue;
                c->total++;
                c->by_state[m[i].state]++;
                if (m[i].state != ROLLOUT_NODE_PENDING && m[i].state != ROLLOUT_NODE_SKIPPED)
                        c->told++;
                if (rollout_node_state_is_failure(m[i].state))
                        c->failures++;
        }
}

/*
 * Take back what a rollout gave: installs queued and not yet sent are cancelled (their
 * nodes go back to pending), every member that got one is marked for update.rollback,
 * queued at its next sync (within the anti-rollback rule, checked then).
 */
int store_rollout_take_back(struct store *s, const char *id, const char *why, int64_t now,
                            int *ret_cancelled, int *ret_marked) {
        int r = store_exec(s,
                           "UPDATE commands SET state = 'cancelled', result_time = ?2, "
                           "result_reason = 'cancelled: rollout ' || ?1 || ' ' || ?3 "
                           "WHERE state = 'queued' AND action = 'update.install' AND "
                           "(node, seq) IN (SELECT node, install_seq FROM rollout_nodes "
                           "WHERE rollout = ?1 AND state IN ('told', 'overdue'))",
                           "tit", id, now, why);
        if (r < 0)
                return r;
        *ret_cancelled = store_changes(s);
        r = store_exec(s,
                       "UPDATE rollout_nodes SET state = 'pending', updated = ?2, due = NULL, "
                       "reason = 'install cancelled: the rollout ' || ?3 WHERE rollout = ?1 AND "
                       "state IN ('told', 'overdue') AND EXISTS (SELECT 1 FROM commands c WHERE "
                       "c.node = rollout_nodes.node AND c.seq = rollout_nodes.install_seq "
                       "AND c.state = 'cancelled')",
                       "tit", id, now, why);
        if (r < 0)
                return r;
        r = store_exec(s,
                       "UPDATE rollout_nodes SET needs_rollback = 1, updated = ?2 "
                       "WHERE rollout = ?1 AND state IN ('told', 'installing', 'committed', "
                       "'overdue')",
                       "ti", id, now);
        if (r < 0)
                return r;
        *ret_marked = store_changes(s);
        return 0;
}

/* Members of the rollout whose due time has passed: refreshed. Through the index on due
 * ("rollout || ''": not the primary key's, which would walk every member of the rollout). */
static int rollout_members_due(struct store *s, const struct rollout_row *row, int64_t now) {
        member_id ids[256];
        for (;;) {
                size_t n = 0;
                {
                        _cleanup_stmt_ struct store_stmt *st = NULL;
                        int r = store_query(s, &st,
                                            "SELECT node FROM rollout_nodes WHERE due IS NOT NULL "
                                            "AND due <= ?2 AND rollout || '' = ?1 LIMIT 256",
                                            "ti", row->o.id, now);
                        if (r < 0)
                                return r;
                        while ((r = store_step(s, st)) > 0)
                                snprintf(ids[n++], sizeof(ids[0]), "%s", store_col_str(st, 0));
                        if (r < 0)
                                return r;
                }
                for (size_t i = 0; i < n; i++) {
                        int r = store_member_refresh(s, row, ids[i], now);
                        if (r < 0)
                                return r;
                }
                if (n < ELEMENTSOF(ids))
                        return 0;
        }
}

void store_counts_from_stage(const struct rollout_stage_counts *sc, struct member_counts *c) {
        memset(c, 0, sizeof(*c));
        for (int i = 0; i < _ROLLOUT_NODE_STATE_MAX; i++) {
                c->by_state[i] = sc->by_state[i];
                c->total += sc->by_state[i];
                if (i != ROLLOUT_NODE_PENDING && i != ROLLOUT_NODE_SKIPPED)
                        c->told += sc->by_state[i];
                if (rollout_node_state_is_failure((enum rollout_node_state) i))
                        c->failures += sc->by_state[i];
        }
}

static const char stage_count_columns[] =
        "stage, pending, told, installing, committed, failed, rolled_back, skipped, overdue, "
        "held, out";

/* The rollout's per-stage counts (kept by triggers, schema 5), and their sum in *all. */
int store_rollout_stage_counts_load(struct store *s, const char *id,
                                    struct rollout_stage_counts c[ROLLOUT_STAGES_MAX],
                                    struct member_counts *all) {
        memset(c, 0, sizeof(c[0]) * ROLLOUT_STAGES_MAX);
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT %s FROM rollout_stage_counts WHERE rollout = ?",
                 stage_count_columns);
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st, sql, "t", id);
        if (r < 0)
                return r;
        struct rollout_stage_counts sum = {};
        while ((r = store_step(s, st)) > 0) {
                int stage = store_col_int(st, 0);
                if (stage < 0 || stage >= ROLLOUT_STAGES_MAX)
                        continue;
                for (int i = 0; i < _ROLLOUT_NODE_STATE_MAX; i++) {
                        c[stage].by_state[i] = store_col_int64(st, 1 + i);
                        sum.by_state[i] += c[stage].by_state[i];
                }
                c[stage].held = store_col_int64(st, 1 + _ROLLOUT_NODE_STATE_MAX);
                c[stage].out = store_col_int64(st, 2 + _ROLLOUT_NODE_STATE_MAX);
        }
        if (r < 0)
                return r;
        if (all)
                store_counts_from_stage(&sum, all);
        return 0;
}

/*
 * Halt past the threshold, or move through the stages whose gate has passed: from the
 * per-stage counts, after the members whose due time passed were refreshed. O(stages)
 * plus the members due, never O(members).
 */
int store_rollout_evaluate(struct store *s, struct rollout_row *row, int64_t now) {
        for (;;) {
                if (row->state != ROLLOUT_RUNNING && row->state != ROLLOUT_PAUSED)
                        return 0;
                int r = rollout_members_due(s, row, now);
                if (r < 0)
                        return r;
                struct rollout_stage_counts sc[ROLLOUT_STAGES_MAX];
                struct member_counts all;
                r = store_rollout_stage_counts_load(s, row->o.id, sc, &all);
                if (r < 0)
                        return r;
                if (rollout_failures_exceeded(&row->o.max_failures, all.failures, all.told)) {
                        char t[32];
                        rollout_threshold_format(&row->o.max_failures, t, sizeof(t));
                        row->state = ROLLOUT_HALTED;
                        row->finished = now;
                        int cancelled = 0, marked = 0;
                        if (row->o.auto_revert) {
                                r = store_rollout_take_back(s, row->o.id, "halted", now, &cancelled,
                                                            &marked);
                                if (r < 0)
                                        return r;
                        }
                        snprintf(row->reason, sizeof(row->reason),
                                 "%lld of %lld nodes told failed, rolled back or overdue, over "
                                 "the threshold of %s%s",
                                 (long long) all.failures, (long long) all.told, t,
                                 row->o.auto_revert ? "; auto-revert: the nodes that got the "
                                                      "bundle are told to roll back"
                                                    : "");
                        log_warning("rollout %s halted in stage %u: %s", row->o.id,
                                    row->current_stage + 1, row->reason);
                        r = store_rollout_event(s, row->o.id, now, (int) row->current_stage,
                                                "halted", "%s; no further node is told to install",
                                                row->reason);
                        if (r >= 0 && row->o.auto_revert)
                                r = store_rollout_event(
                                        s, row->o.id, now, (int) row->current_stage, "auto-revert",
                                        "%d installs not yet sent cancelled; %d nodes "
                                        "will be told to roll back at their next contact",
                                        cancelled, marked);
                        return r < 0 ? r : store_rollout_save(s, row);
                }
                if (row->state == ROLLOUT_PAUSED)
                        return 0;
                enum rollout_stage_decision d = rollout_stage_decide_counts(
                        &sc[row->current_stage], &row->o, row->stage_started, now);
                if (d == ROLLOUT_STAGE_WAIT)
                        return 0;
                struct member_counts st;
                store_counts_from_stage(&sc[row->current_stage], &st);
                r = store_rollout_event(
                        s, row->o.id, now, (int) row->current_stage,
                        d == ROLLOUT_STAGE_ADVANCE ? "stage passed" : "stage timed out",
                        "stage %u (%u%%): %lld nodes, %lld committed, %lld failed, "
                        "rolled back or overdue, %lld skipped, %lld still on their way",
                        row->current_stage + 1, row->o.stages[row->current_stage],
                        (long long) st.total, (long long) st.by_state[ROLLOUT_NODE_COMMITTED],
                        (long long) st.failures, (long long) st.by_state[ROLLOUT_NODE_SKIPPED],
                        (long long) (st.by_state[ROLLOUT_NODE_PENDING] +
                                    st.by_state[ROLLOUT_NODE_TOLD] +
                                    st.by_state[ROLLOUT_NODE_INSTALLING]));
                if (r < 0)
                        return r;
                if (row->current_stage + 1 >= row->o.n_stages) {
                        row->state = ROLLOUT_COMPLETED;
                        row->finished = now;
                        r = store_rollout_event(
                                s, row->o.id, now, (int) row->current_stage, "completed",
                                "%lld of %lld nodes committed, %lld failed or rolled back",
                                (long long) all.by_state[ROLLOUT_NODE_COMMITTED],
                                (long long) all.total, (long long) all.failures);
                        return r < 0 ? r : store_rollout_save(s, row);
                }
                row->current_stage++;
                row->stage_started = now;
                store_counts_from_stage(&sc[row->current_stage], &st);
                r = store_rollout_event(s, row->o.id, now, (int) row->current_stage, "stage started",
                                        "stage %u (%u%%): %lld nodes", row->current_stage + 1,
                                        row->o.stages[row->current_stage], (long long) st.total);
                if (r < 0)
                        return r;
                r = store_rollout_save(s, row);
                if (r < 0)
                        return r;
        }
}

int store_live_rollout_ids(struct store *s, char (**ret_ids)[ROLLOUT_ID_MAX + 1], size_t *ret_n) {
        char (*ids)[ROLLOUT_ID_MAX + 1] = NULL;
        size_t n = 0, cap = 0;
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT id FROM rollouts WHERE state IN ('running', 'paused') "
                            "ORDER BY created, id",
                            "");
        if (r < 0)
                return r;
        while ((r = store_step(s, st)) > 0) {
                if (n == cap) {
                        size_t c = cap ? cap * 2 : 16;
                        void *p = realloc(ids, c * sizeof(*ids));
                        if (!p) {
                                free(ids);
                                return -ENOMEM;
                        }
                        ids = p;
                        cap = c;
                }
                snprintf(ids[n++], sizeof(ids[0]), "%s", store_col_str(st, 0));
        }
        if (r < 0) {
                free(ids);
                return r;
        }
        *ret_ids = ids;
        *ret_n = n;
        return 0;
}

int store_rollouts_evaluate_all(struct store *s, int64_t now) {
        char (*ids)[ROLLOUT_ID_MAX + 1] = NULL;
        size_t n = 0;
        int r = store_live_rollout_ids(s, &ids, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                struct rollout_row row;
                r = store_rollout_load(s, ids[i], &row);
                if (r >= 0)
                        r = store_rollout_evaluate(s, &row, now);
        }
        free(ids);
        return r < 0 ? r : 0;
}

/*
 * At a node's sync: does it begin a new pass of the node (its previous sync and its
 * contact plan decide), and if so count the pass in every rollout the node is in: after
 * its commit, after it was told, and without a report. Counted before the records, so
 * the pass that carries a commit is not a pass after it. Other nodes' syncs count nothing.
 */
