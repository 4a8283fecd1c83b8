/* What a sync does to the syncing node's rollouts: passes, member states, commands queued. */
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

/* The windows of a stored contact plan (column i), at most CONTACT_PLAN_WINDOWS_MAX. */
static size_t plan_windows(struct store_stmt *st, int i,
                           struct rollout_window w[CONTACT_PLAN_WINDOWS_MAX]) {
        json_auto_t *plan = store_col_json(st, i);
        size_t n = 0, k;
        json_t *e;
        json_array_foreach(json_object_get(plan, "windows"), k, e) {
                if (n == CONTACT_PLAN_WINDOWS_MAX)
                        break;
                w[n++] = (struct rollout_window){json_integer_value(json_object_get(e, "start")),
                                                 json_integer_value(json_object_get(e, "end"))};
        }
        return n;
}

int store_node_pass_count(struct store *s, const char *node, struct store_stmt *row, int col, int64_t now,
                          bool *ret_new) {
        int64_t last = store_col_is_null(row, col) ? 0 : store_col_int64(row, col);
        struct rollout_window w[CONTACT_PLAN_WINDOWS_MAX];
        size_t n = plan_windows(row, col + 1, w);
        *ret_new = rollout_pass_is_new(last, now, s->pass_gap, w, n);
        if (!*ret_new)
                return 0;
        int r = store_exec_later(s, "UPDATE nodes SET passes = passes + 1 WHERE id = ?", "t", node);
        if (r < 0)
                return r;
        r = store_exec_later(s,
                       "UPDATE rollout_nodes SET "
                       "contacts_since_commit = contacts_since_commit + (state = 'committed'), "
                       "passes_since_told = passes_since_told + 1, "
                       "passes_unheard = passes_unheard + (state IN ('told', 'installing')) "
                       "WHERE node = ? AND state NOT IN ('pending', 'skipped')",
                       "t", node);
        if (r < 0)
                return r;
        /* A committed member whose pass met success_after may end its stage; a member
         * still on its way may have had its stage timeout's passes, or its report
         * deadline's: its flags say so (store_member_refresh), the counts follow. */
        return store_node_memberships_refresh(s, node, now);
}

/* A report of the install arrived from the node: it is heard from. */
static int rollout_node_heard(struct store *s, const char *rollout, const char *node, int64_t now) {
        int r = store_exec(s,
                           "UPDATE rollout_nodes SET last_heard = ?1, passes_unheard = 0 "
                           "WHERE rollout = ?2 AND node = ?3",
                           "itt", now, rollout, node);
        return r < 0 ? r : store_member_refresh_by_id(s, rollout, node, now); /* its due moved */
}

#define ROWS_PER_NODE_MAX 64

struct node_row_ref {
        char rollout[ROLLOUT_ID_MAX + 1];
        enum rollout_node_state state;
        enum rollout_state rollout_state;
        bool auto_revert;
};

/* Does the rollout take back what it gave: aborted, or halted with auto-revert? */
static bool rollout_reverting(enum rollout_state state, bool auto_revert) {
        return state == ROLLOUT_ABORTED || (state == ROLLOUT_HALTED && auto_revert);
}

static int node_state_write(struct store *s, const char *rollout, const char *node,
                            enum rollout_node_state to, bool rollback_wanted, const char *reason,
                            int64_t now) {
        store_rollout_dirty(s, rollout);
        return store_exec(
                s,
                "UPDATE rollout_nodes SET state = ?1, updated = ?2, "
                "reason = coalesce(?3, reason), "
                "committed_time = CASE WHEN ?1 = 'committed' THEN ?2 ELSE committed_time END, "
                "contacts_since_commit = CASE WHEN ?1 = 'committed' THEN 0 "
                "ELSE contacts_since_commit END, "
                "passes_unheard = CASE WHEN ?1 = 'overdue' THEN passes_unheard "
                "ELSE 0 END, "
                "needs_rollback = CASE WHEN ?4 <> 0 THEN 1 ELSE needs_rollback END "
                "WHERE rollout = ?5 AND node = ?6",
                "tiTdtt", rollout_node_state_to_string(to), now,
                reason && reason[0] ? reason : NULL, (int) rollback_wanted, rollout, node);
}

/*
 * One member, as time and its own passes left it: overdue past the report deadline (while
 * the rollout is running or paused; an event), and its held and out flags and due time
 * (the per-stage counts follow by trigger). The rollout is dirty when a flag moved.
 */
int store_member_refresh(struct store *s, const struct rollout_row *row, const char *node,
                         int64_t now) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(s, &st,
                                "SELECT rn.stage, rn.state, coalesce(rn.committed_time, 0), "
                                "rn.contacts_since_commit, rn.passes_since_told, "
                                "coalesce(rn.last_heard, rn.told_time, 0), rn.passes_unheard, "
                                "rn.held, rn.out, coalesce(rn.due, -1), n.contact_plan "
                                "FROM rollout_nodes rn JOIN nodes n ON n.id = rn.node "
                                "WHERE rn.rollout = ?1 AND rn.node = ?2",
                                "tt", row->o.id, node);
        if (r < 0)
                return r;
        if (r == 0)
                return 0;
        struct rollout_member m = store_member_read(st);
        bool was_held = store_col_int(st, 7) != 0, was_out = store_col_int(st, 8) != 0;
        int64_t was_due = store_col_int64(st, 9);
        struct rollout_window w[CONTACT_PLAN_WINDOWS_MAX];
        size_t n_w = plan_windows(st, 10, w);
        store_reset(st);
        /* a silent node makes no passes of its own: its plan says which it missed */
        if (m.state == ROLLOUT_NODE_TOLD || m.state == ROLLOUT_NODE_INSTALLING) {
                int64_t missed = 0;
                for (size_t i = 0; i < n_w; i++)
                        if (w[i].end > m.last_heard && w[i].end <= now)
                                missed++;
                if (missed > m.passes_unheard)
                        m.passes_unheard = missed;
        }
        bool live = row->state == ROLLOUT_RUNNING || row->state == ROLLOUT_PAUSED;
        if (live && rollout_member_overdue(&m, &row->o, now)) {
                char deadline[32], why[160];
                rollout_gate_format(&row->o.report_deadline, deadline, sizeof(deadline));
                if (row->o.report_deadline.kind == ROLLOUT_GATE_CONTACTS)
                        snprintf(why, sizeof(why),
                                 "no report of the install in %lld passes "
                                 "(deadline %s)",
                                 (long long) m.passes_unheard, deadline);
                else
                        snprintf(why, sizeof(why),
                                 "no report of the install for %llds "
                                 "(deadline %s)",
                                 (long long) (now - m.last_heard), deadline);
                r = node_state_write(s, row->o.id, node, ROLLOUT_NODE_OVERDUE, false, why, now);
                if (r < 0)
                        return r;
                r = store_rollout_event(s, row->o.id, now, (int) m.stage, "overdue", "node %s: %s",
                                        node, why);
                if (r < 0)
                        return r;
                m.state = ROLLOUT_NODE_OVERDUE;
        }
        bool held = rollout_member_held(&m, &row->o, now);
        bool out = rollout_member_out(&m, held, &row->o);
        int64_t due = live ? rollout_member_next_due(&m, &row->o, w, n_w, now) : 0;
        if (held == was_held && out == was_out && (due ? due : -1) == was_due)
                return 0;
        if (held != was_held || out != was_out)
                store_rollout_dirty(s, row->o.id);
        return store_exec(s,
                          "UPDATE rollout_nodes SET held = ?1, out = ?2, due = nullif(?3, 0) "
                          "WHERE rollout = ?4 AND node = ?5",
                          "dditt", held, out, due, row->o.id, node);
}

/* store_member_refresh, loading the rollout first. */
int store_member_refresh_by_id(struct store *s, const char *rollout, const char *node,
                               int64_t now) {
        struct rollout_row row;
        int r = store_rollout_load(s, rollout, &row);
        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : store_member_refresh(s, &row, node, now);
}

/* A member's new state, then what it changes in its flags (store_member_refresh). */
int store_rollout_node_set(struct store *s, const char *rollout, const char *node,
                           enum rollout_node_state to, bool rollback_wanted, const char *reason,
                           int64_t now) {
        int r = node_state_write(s, rollout, node, to, rollback_wanted, reason, now);
        return r < 0 ? r : store_member_refresh_by_id(s, rollout, node, now);
}

/* The node's memberships in rollouts still driven: refreshed (store_member_refresh). */
int store_node_memberships_refresh(struct store *s, const char *node, int64_t now) {
        char ids[ROWS_PER_NODE_MAX][ROLLOUT_ID_MAX + 1];
        size_t n = 0;
        {
                _cleanup_stmt_ struct store_stmt *st = NULL;
                int r = store_query(s, &st,
                                    "SELECT rn.rollout FROM rollout_nodes rn "
                                    "JOIN rollouts r ON r.id = rn.rollout "
                                    "WHERE rn.node = ? AND r.state IN ('running', 'paused') AND "
                                    "rn.state IN ('committed', 'told', 'installing')",
                                    "t", node);
                if (r < 0)
                        return r;
                while (n < ROWS_PER_NODE_MAX && (r = store_step(s, st)) > 0)
                        snprintf(ids[n++], sizeof(ids[0]), "%s", store_col_str(st, 0));
                if (n < ROWS_PER_NODE_MAX && r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                int r = store_member_refresh_by_id(s, ids[i], node, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The columns node_rows_heard reads; the caller appends its WHERE on rn (rollout_nodes)
 * and r (rollouts), and ORDER BY rn.rollout: a sync that does not hold the rollouts' lock
 * (its node is in no rollout that moves) may still change its member row in an ended one,
 * whose trigger updates that rollout's count rows; taken in one order, two such syncs
 * cannot wait for each other. */
#define NODE_ROWS_SELECT                                                                        \
        "SELECT rn.rollout, rn.state, r.state, r.auto_revert FROM rollout_nodes rn "           \
        "JOIN rollouts r ON r.id = rn.rollout "

/*
 * The rows (rollout, node state) st (a NODE_ROWS_SELECT) selects for node, at most
 * ROWS_PER_NODE_MAX; then node is marked heard in each of those rollouts, since what it
 * said concerns them all. The states are those read before the marking.
 */
static int node_rows_heard(struct store *s, struct store_stmt *st, const char *node, int64_t now,
                           struct node_row_ref *rows, size_t *n) {
        int r;
        *n = 0;
        while ((r = store_step(s, st)) > 0 && *n < ROWS_PER_NODE_MAX) {
                int ns = rollout_node_state_from_string(store_col_str(st, 1));
                int rs = rollout_state_from_string(store_col_str(st, 2));
                if (ns < 0 || rs < 0)
                        continue;
                struct node_row_ref *x = &rows[(*n)++];
                snprintf(x->rollout, sizeof(x->rollout), "%s", store_col_str(st, 0));
                x->state = (enum rollout_node_state) ns;
                x->rollout_state = (enum rollout_state) rs;
                x->auto_revert = store_col_int(st, 3) != 0;
        }
        if (r < 0)
                return r;
        for (size_t i = 0; i < *n; i++) {
                r = rollout_node_heard(s, rows[i].rollout, node, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * An update.<phase> of a node for bundle: the node's state in every rollout of that bundle
 * (that has started), and a block when it rolled back from it.
 */
static int rollout_apply_update(struct store *s, const char *node, const char *kind,
                                const char *bundle, const char *reason, int64_t now) {
        struct node_row_ref rows[ROWS_PER_NODE_MAX];
        size_t n = 0;
        int r;
        if (!bundle || !bundle[0])
                return 0;
        if (streq(kind, "update.rolled-back")) {
                /* Never again: the node is not told to install this bundle any more. */
                r = store_exec(s,
                               "INSERT OR IGNORE INTO node_bundle_blocks (node, bundle_id, "
                               "time, reason) VALUES (?, ?, ?, ?)",
                               "ttiT", node, bundle, now, reason ? reason : "");
                if (r < 0)
                        return r;
        }
        _cleanup_stmt_ struct store_stmt *st = NULL;
        r = store_query(s, &st,
                        NODE_ROWS_SELECT
                        "WHERE rn.node = ? AND r.bundle_id = ? AND r.state != 'created' ORDER BY rn.rollout",
                        "tt", node, bundle);
        if (r < 0)
                return r;
        r = node_rows_heard(s, st, node, now, rows, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                enum rollout_node_state to = rollout_node_after_update(rows[i].state, kind);
                if (to == rows[i].state)
                        continue;
                /* A node that commits after an abort or an auto-revert is told to go back too. */
                bool rollback = to == ROLLOUT_NODE_COMMITTED &&
                                rollout_reverting(rows[i].rollout_state, rows[i].auto_revert);
                r = store_rollout_node_set(s, rows[i].rollout, node, to, rollback, reason, now);
                if (r < 0)
                        return r;
                log_info("rollout %s: node %s %s -> %s", rows[i].rollout, node,
                         rollout_node_state_to_string(rows[i].state),
                         rollout_node_state_to_string(to));
        }
        return 0;
}

/*
 * The update outcome in a node's status document (sent at the first sync after every
 * start): a rollback decided just before a reboot may reach the ground this way first.
 */
int store_rollout_apply_status(struct store *s, const char *node, json_t *status, int64_t now) {
        json_t *u = json_object_get(json_object_get(status, "subsystems"), "update");
        const char *phase = json_string_value(json_object_get(u, "phase"));
        if (!phase ||
            !(streq(phase, "committed") || streq(phase, "rolled-back") || streq(phase, "failed")))
                return 0;
        char kind[32];
        snprintf(kind, sizeof(kind), "update.%s", phase);
        return rollout_apply_update(s, node, kind,
                                    json_string_value(json_object_get(u, "bundle_id")),
                                    json_string_value(json_object_get(u, "reason")), now);
}

/* What a newly stored record of a node changes in the rollouts it belongs to. */
int store_rollout_apply_record(struct store *s, const struct sync_record *rec, int64_t now) {
        enum record_effect e = record_effect_of(rec->kind);
        struct node_row_ref rows[ROWS_PER_NODE_MAX];
        size_t n = 0;
        int r;
        if (e == RECORD_EFFECT_UPDATE)
                return rollout_apply_update(
                        s, rec->node, rec->kind,
                        json_string_value(json_object_get(rec->body, "bundle_id")),
                        json_string_value(json_object_get(rec->body, "reason")), now);
        if (e == RECORD_EFFECT_COMMAND_RESULT) {
                struct command_result res;
                if (command_result_parse(rec->body, &res) < 0)
                        return 0;
                _cleanup_stmt_ struct store_stmt *st = NULL;
                r = store_query(s, &st,
                                NODE_ROWS_SELECT "WHERE rn.node = ? AND rn.install_seq = ? ORDER BY rn.rollout",
                                "ti", rec->node, res.seq);
                if (r < 0)
                        return r;
                r = node_rows_heard(s, st, rec->node, now, rows, &n);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        enum rollout_node_state to =
                                rollout_node_after_install_result(rows[i].state, res.status);
                        if (to == rows[i].state)
                                continue;
                        char why[1100];
                        snprintf(why, sizeof(why), "update.install %s: %s", res.status, res.reason);
                        r = store_rollout_node_set(s, rows[i].rollout, rec->node, to, false, why,
                                                   now);
                        if (r < 0)
                                return r;
                        log_info("rollout %s: node %s %s", rows[i].rollout, rec->node, why);
                }
        }
        return 0;
}

/* Queue a rollout's command for a node inside the sync's transaction. */
static int rollout_queue(struct store *s, const char *rollout, const char *node, const char *action,
                         json_t *params, int64_t now, int64_t *ret_seq) {
        _cleanup_free_ char *reason = NULL;
        int r = store_command_queue_locked(s, node, action, params, now, ROLLOUT_COMMAND_EXPIRES,
                                           s->sign, s->sign_userdata, ret_seq, NULL, &reason);
        if (r < 0)
                log_error("rollout %s: cannot queue %s for %s: %s", rollout, action, node,
                          reason ? reason : strerror(-r));
        return r;
}

/*
 * The rollouts of the node that this sync changed something in: evaluated at its sync
 * (all of the node's running or paused ones if more changed than the list holds).
 */
static int rollouts_evaluate_node(struct store *s, const char *node, int64_t now) {
        if (!s->dirty_overflow) {
                for (size_t i = 0; i < s->n_dirty; i++) {
                        struct rollout_row row;
                        int r = store_rollout_load(s, s->dirty[i], &row);
                        if (r == -ENOENT)
                                continue;
                        if (r >= 0)
                                r = store_rollout_evaluate(s, &row, now);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(
                s, &st,
                "SELECT r.id FROM rollout_nodes rn JOIN rollouts r ON r.id = rn.rollout "
                "WHERE rn.node = ? AND r.state IN ('running', 'paused') "
                "ORDER BY r.created, r.id",
                "t", node);
        if (r < 0)
                return r;
        char ids[ROWS_PER_NODE_MAX][ROLLOUT_ID_MAX + 1];
        size_t n = 0;
        while (n < ROWS_PER_NODE_MAX && (r = store_step(s, st)) > 0)
                snprintf(ids[n++], sizeof(ids[0]), "%s", store_col_str(st, 0));
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                struct rollout_row row;
                r = store_rollout_load(s, ids[i], &row);
                if (r >= 0)
                        r = store_rollout_evaluate(s, &row, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The update subsystem of the node's last status document (a new reference, or NULL). */
static json_t *node_update_status(struct store *s, const char *node) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        if (store_query(s, &st, "SELECT status FROM nodes WHERE id = ?", "t", node) < 0)
                return NULL;
        if (store_step(s, st) <= 0)
                return NULL;
        json_auto_t *status = store_col_json(st, 0);
        return json_incref(json_object_get(json_object_get(status, "subsystems"), "update"));
}

/* At a node's sync: move its rollouts on, then tell this node what its rollouts need. */
int store_rollouts_drive_node(struct store *s, const char *node, bool member, int64_t now) {
        int r = rollouts_evaluate_node(s, node, now);
        if (r < 0)
                return r;
        if (!s->sign || !member)
                return 0;
        _cleanup_stmt_ struct store_stmt *st = NULL;
        r = store_query(s, &st,
                        /* with whether the node rolled back from the bundle before (blocked),
                         * in the same round trip */
                        "SELECT rn.rollout, rn.stage, rn.state, rn.needs_rollback, r.state, "
                        "r.current_stage, r.bundle_id, r.auto_revert, "
                        "CASE WHEN EXISTS (SELECT 1 FROM node_bundle_blocks k WHERE k.node = rn.node "
                        "AND k.bundle_id = r.bundle_id) THEN 1 ELSE 0 END FROM rollout_nodes rn "
                        "JOIN rollouts r ON r.id = rn.rollout "
                        "WHERE rn.node = ? AND r.state IN ('running', 'aborted', 'halted') "
                        "ORDER BY r.created, r.id",
                        "t", node);
        if (r < 0)
                return r;
        struct todo {
                char rollout[ROLLOUT_ID_MAX + 1], bundle[API_BUNDLE_ID_MAX + 1];
                struct rollout_member m;
                bool needs_rollback, auto_revert, blocked;
                enum rollout_state rollout_state;
                unsigned current_stage;
        } todo[ROWS_PER_NODE_MAX];
        size_t n = 0;
        while ((r = store_step(s, st)) > 0 && n < ROWS_PER_NODE_MAX) {
                int ns = rollout_node_state_from_string(store_col_str(st, 2));
                int rs = rollout_state_from_string(store_col_str(st, 4));
                if (ns < 0 || rs < 0)
                        continue;
                struct todo *t = &todo[n++];
                snprintf(t->rollout, sizeof(t->rollout), "%s", store_col_str(st, 0));
                snprintf(t->bundle, sizeof(t->bundle), "%s", store_col_str(st, 6));
                t->m = (struct rollout_member){.stage = (unsigned) store_col_int(st, 1),
                                               .state = (enum rollout_node_state) ns};
                t->needs_rollback = store_col_int(st, 3) != 0;
                t->rollout_state = (enum rollout_state) rs;
                t->current_stage = (unsigned) store_col_int(st, 5);
                t->auto_revert = store_col_int(st, 7) != 0;
                t->blocked = store_col_int(st, 8) != 0;
        }
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                struct todo *t = &todo[i];
                if (rollout_reverting(t->rollout_state, t->auto_revert) && t->needs_rollback) {
                        json_auto_t *update = node_update_status(s, node);
                        char why[256];
                        if (!rollout_revert_allowed(update, why, sizeof(why))) {
                                r = store_rollout_node_set(s, t->rollout, node, t->m.state, false,
                                                           why, now);
                                if (r >= 0)
                                        r = store_rollout_event(s, t->rollout, now, (int) t->m.stage,
                                                                "rollback refused", "node %s: %s",
                                                                node, why);
                                if (r < 0)
                                        return r;
                                r = store_exec(s,
                                               "UPDATE rollout_nodes SET needs_rollback = 0 "
                                               "WHERE rollout = ? AND node = ?",
                                               "tt", t->rollout, node);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        json_auto_t *params = json_object();
                        int64_t seq = 0;
                        if (!params)
                                return -ENOMEM;
                        r = rollout_queue(s, t->rollout, node, "update.rollback", params, now,
                                          &seq);
                        if (r < 0)
                                return r;
                        r = store_exec(
                                s,
                                "UPDATE rollout_nodes SET needs_rollback = 0, "
                                "rollback_seq = ?, updated = ? WHERE rollout = ? AND node = ?",
                                "iitt", seq, now, t->rollout, node);
                        if (r < 0)
                                return r;
                        log_info("rollout %s (%s): node %s told to roll back (command %lld)",
                                 t->rollout, rollout_state_to_string(t->rollout_state), node,
                                 (long long) seq);
                        continue;
                }
                if (t->m.state != ROLLOUT_NODE_PENDING)
                        continue;
                if (!rollout_member_should_tell(t->rollout_state, t->current_stage, &t->m,
                                                t->blocked)) {
                        if (t->blocked && t->rollout_state == ROLLOUT_RUNNING) {
                                r = store_rollout_node_set(
                                        s, t->rollout, node, ROLLOUT_NODE_SKIPPED, false,
                                        "rolled back from this bundle before", now);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                json_auto_t *params = json_pack("{s:s}", "bundle_id", t->bundle);
                int64_t seq = 0;
                if (!params)
                        return -ENOMEM;
                r = rollout_queue(s, t->rollout, node, "update.install", params, now, &seq);
                if (r < 0)
                        return r;
                r = store_exec(s,
                               "UPDATE rollout_nodes SET state = 'told', install_seq = ?1, "
                               "told_time = ?2, updated = ?2, last_heard = ?2, "
                               "passes_since_told = 0, passes_unheard = 0, held = 0, out = 0 "
                               "WHERE rollout = ?3 AND node = ?4",
                               "iitt", seq, now, t->rollout, node);
                if (r < 0)
                        return r;
                r = store_member_refresh_by_id(s, t->rollout, node, now); /* its report deadline */
                if (r < 0)
                        return r;
                log_info("rollout %s: node %s (stage %u) told to install %s (command %lld)",
                         t->rollout, node, t->m.stage + 1, t->bundle, (long long) seq);
        }
        return 0;
}

void store_order_key_text(const char *rollout, const char *node, char buf[17]) {
        snprintf(buf, 17, "%016llx", (unsigned long long) rollout_node_key(rollout, node));
}

/*
 * A node of a rollout's target that is in no rollout holding nodes joins it at its sync
 * (it joined the group, or registered, after the create): in the stage of the member just
 * before it in the rollout's order (rollout_node_key), the first stage if none; skipped
 * when it rolled back from the bundle, committed when it runs the bundle already.
 */
int store_rollouts_join_late(struct store *s, const char *node, int64_t now) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(
                s, &st,
                "SELECT r.id, r.bundle_id, (SELECT count(*) FROM node_bundle_blocks k "
                "WHERE k.node = ?1 AND k.bundle_id = r.bundle_id), "
                "(SELECT n.update_kind = 'update.committed' AND "
                "json_extract(n.update_body, '$.bundle_id') = r.bundle_id FROM nodes n "
                "WHERE n.id = ?1) FROM rollouts r "
                "WHERE r.state IN ('created', 'running', 'paused') AND "
                "(r.target = 'all' OR r.target IN (SELECT name FROM node_groups WHERE "
                "node = ?1)) AND NOT EXISTS (SELECT 1 FROM rollout_nodes rn JOIN "
                "rollouts h ON h.id = rn.rollout WHERE rn.node = ?1 AND h.state IN "
                "('created', 'running', 'paused')) "
                "ORDER BY r.created, r.id LIMIT 1",
                "t", node);
        if (r < 0)
                return r;
        if (r == 0)
                return 0;
        char id[ROLLOUT_ID_MAX + 1], key[17];
        snprintf(id, sizeof(id), "%s", store_col_str(st, 0));
        bool blocked = store_col_int(st, 2) > 0, already = store_col_int(st, 3) > 0;
        store_order_key_text(id, node, key);
        int64_t before = 0; /* the stage of the member before it in the order */
        r = store_get_int64(s, &before,
                            "SELECT stage FROM rollout_nodes WHERE rollout = ? AND order_key < ? "
                            "ORDER BY order_key DESC LIMIT 1",
                            "tt", id, key);
        if (r < 0)
                return r;
        int stage = (int) before;
        const char *state = blocked ? "skipped" : already ? "committed" : "pending";
        r = store_exec(s,
                       "INSERT INTO rollout_nodes (rollout, node, stage, state, reason, "
                       "committed_time, contacts_since_commit, updated, order_key, held) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?4 = 'committed' THEN 0 END, "
                       "CASE WHEN ?4 = 'committed' THEN 2147483647 ELSE 0 END, ?6, ?7, "
                       "CASE WHEN ?4 = 'committed' THEN 1 ELSE 0 END)",
                       "ttdttit", id, node, stage, state,
                       blocked   ? "joined late; rolled back from this bundle before"
                       : already ? "joined late; already committed this bundle"
                                 : "joined late",
                       now, key);
        if (r < 0)
                return r;
        store_rollout_dirty(s, id);
        return store_rollout_event(s, id, now, stage, "member joined",
                                   "node %s joined the target after the create: stage %d, %s", node,
                                   stage + 1, state);
}
