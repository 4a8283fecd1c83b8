/* Rollouts from the operator's side: create, verbs, show, list, tick, counts check. */
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

/* ---- rollouts: operator side -------------------------------------------------------- */

static int rollout_show_locked(struct store *s, const char *id, int64_t now, json_t **ret);

int store_rollout_create(struct store *s, const struct rollout_options *o, int64_t now,
                         json_t **ret, char **ret_reason) {
        struct store_bundle b;
        int r = store_bundle_get(s, o->bundle_id, &b);
        if (r == -ENOENT)
                return message_set(ret_reason, r, "no bundle \"%s\" was uploaded", o->bundle_id);
        if (r < 0)
                return message_set(ret_reason, r, "cannot read bundle %s", o->bundle_id);
        r = store_begin(s);
        if (r < 0)
                return message_set(ret_reason, r, "cannot start a transaction");
        _cleanup_transaction_ struct store *guard = s;

        char id[ROLLOUT_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s", o->id);
        struct rollout_row existing;
        if (!id[0]) {
                _cleanup_stmt_ struct store_stmt *count = NULL;
                r = store_query(s, &count, "SELECT count(*) FROM rollouts", "");
                if (r < 0 || store_step(s, count) <= 0)
                        return message_set(ret_reason, r < 0 ? r : -EIO, "store error");
                for (int64_t k = store_col_int64(count, 0) + 1;; k++) {
                        snprintf(id, sizeof(id), "rollout-%lld", (long long) k);
                        r = store_rollout_load(s, id, &existing);
                        if (r == -ENOENT)
                                break;
                        if (r < 0)
                                return message_set(ret_reason, r, "store error");
                }
        } else {
                r = store_rollout_load(s, id, &existing);
                if (r >= 0)
                        return message_set(ret_reason, -EEXIST, "rollout \"%s\" exists", id);
                if (r != -ENOENT)
                        return message_set(ret_reason, r, "store error");
        }

        /* The target's nodes that no other created, running or paused rollout holds. */
        _cleanup_stmt_ struct store_stmt *sel = NULL;
        r = store_query(s, &sel,
                        "SELECT n.id, (SELECT count(*) FROM rollout_nodes rn JOIN rollouts r ON "
                        "r.id = rn.rollout WHERE rn.node = n.id AND r.state IN ('created', "
                        "'running', 'paused')), "
                        "(SELECT count(*) FROM node_bundle_blocks k WHERE k.node = n.id AND "
                        "k.bundle_id = ?2), "
                        "n.update_kind = 'update.committed' AND "
                        "json_extract(n.update_body, '$.bundle_id') = ?2 "
                        "FROM nodes n WHERE ?1 = 'all' OR n.id IN (SELECT node FROM node_groups "
                        "WHERE name = ?1) ORDER BY n.id",
                        "tt", o->target, o->bundle_id);
        if (r < 0)
                return message_set(ret_reason, r, "store error");
        char **ids = NULL;
        bool *blocked = NULL, *already = NULL;
        size_t n = 0, cap = 0, held = 0;
        while ((r = store_step(s, sel)) > 0) {
                if (store_col_int(sel, 1) > 0) {
                        held++;
                        continue;
                }
                if (n == ROLLOUT_NODES_MAX)
                        break;
                if (n == cap) {
                        cap = cap ? cap * 2 : 64;
                        char **i2 = realloc(ids, cap * sizeof(*ids));
                        if (i2)
                                ids = i2;
                        bool *b2 = realloc(blocked, cap * sizeof(*blocked));
                        if (b2)
                                blocked = b2;
                        bool *a2 = realloc(already, cap * sizeof(*already));
                        if (a2)
                                already = a2;
                        if (!i2 || !b2 || !a2) {
                                r = -ENOMEM;
                                goto out;
                        }
                }
                ids[n] = strdup(store_col_str(sel, 0));
                blocked[n] = store_col_int(sel, 2) > 0;
                already[n] = store_col_int(sel, 3) > 0;
                if (!ids[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        if (r < 0) {
                r = message_set(ret_reason, r, "store error");
                goto out;
        }
        if (n == 0) {
                r = message_set(ret_reason, -ENODATA, "target \"%s\" has no node to update%s",
                                o->target, held ? " (its nodes are in other rollouts)" : "");
                goto out;
        }
        {
                _cleanup_free_ unsigned *stage = calloc(n, sizeof(*stage));
                if (!stage) {
                        r = -ENOMEM;
                        goto out;
                }
                rollout_assign_stages(id, (const char *const *)ids, n, o->stages, o->n_stages,
                                      stage);
                char stages[64], success[32], timeout[32], failures[32];
                rollout_stages_format(o->stages, o->n_stages, stages, sizeof(stages));
                rollout_gate_format(&o->success_after, success, sizeof(success));
                rollout_gate_format(&o->stage_timeout, timeout, sizeof(timeout));
                rollout_threshold_format(&o->max_failures, failures, sizeof(failures));
                char deadline[32];
                rollout_gate_format(&o->report_deadline, deadline, sizeof(deadline));
                r = store_exec(
                        s,
                        "INSERT INTO rollouts (id, bundle_id, target, stages, success_after, "
                        "stage_timeout, max_failures, created, min_healthy_time, "
                        "report_deadline, auto_revert) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        "tttttttiitd", id, o->bundle_id, o->target, stages, success, timeout,
                        failures, now, o->min_healthy_time, deadline, (int) o->auto_revert);
                if (r < 0)
                        goto out;
                /* A node that already runs the bundle: committed, and held long ago. */
                _cleanup_stmt_ struct store_stmt *mem = NULL;
                r = store_query(
                        s, &mem,
                        "INSERT INTO rollout_nodes (rollout, node, stage, state, reason, "
                        "committed_time, contacts_since_commit, updated, order_key, held) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?4 = 'committed' THEN 0 END, "
                        "CASE WHEN ?4 = 'committed' THEN 2147483647 ELSE 0 END, ?6, ?7, "
                        "CASE WHEN ?4 = 'committed' THEN 1 ELSE 0 END)",
                        "");
                if (r < 0)
                        goto out;
                size_t per_stage[ROLLOUT_STAGES_MAX] = {};
                for (size_t i = 0; i < n; i++) {
                        per_stage[stage[i]]++;
                        const char *state = "pending", *reason = NULL;
                        if (blocked[i]) {
                                state = "skipped";
                                reason = "rolled back from this bundle before";
                        } else if (already[i]) {
                                state = "committed";
                                reason = "already committed this bundle";
                        }
                        char key[17];
                        store_order_key_text(id, ids[i], key);
                        r = store_rebind(s, mem, "ttdttiT", id, ids[i], (int) stage[i], state,
                                         reason, now, key);
                        if (r < 0)
                                goto out;
                        r = store_step_done(s, mem);
                        if (r < 0)
                                goto out;
                }
                char sizes[256] = "";
                size_t used = 0;
                for (size_t i = 0; i < o->n_stages && used < sizeof(sizes); i++) {
                        int w = snprintf(sizes + used, sizeof(sizes) - used, "%s%zu", i ? ", " : "",
                                         per_stage[i]);
                        if (w > 0)
                                used += (size_t) w;
                }
                r = store_rollout_event(s, id, now, -1, "created",
                                        "bundle %s to %s: %zu nodes in stages %s%% (%s nodes)%s",
                                        o->bundle_id, o->target, n, stages, sizes,
                                        held ? " (nodes in other rollouts left out)" : "");
                if (r < 0)
                        goto out;
        }
        r = commit(&guard);
        if (r < 0)
                goto out;
        r = ret ? rollout_show_locked(s, id, now, ret) : 0;
out:
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
        free(blocked);
        free(already);
        if (r < 0 && ret_reason && !*ret_reason)
                (void) message_set(ret_reason, r, "cannot create the rollout: %s", strerror(-r));
        return r;
}

int store_rollout_verb(struct store *s, const char *id, const char *verb, int64_t now, json_t **ret,
                       char **ret_reason) {
        int r = store_begin(s);
        if (r < 0)
                return message_set(ret_reason, r, "cannot start a transaction");
        _cleanup_transaction_ struct store *guard = s;
        struct rollout_row row;
        r = store_rollout_load(s, id, &row);
        if (r == -ENOENT)
                return message_set(ret_reason, r, "no rollout \"%s\"", id);
        if (r < 0)
                return message_set(ret_reason, r, "cannot read rollout %s", id);
        const char *why = NULL;
        int to = rollout_state_after_verb(row.state, verb, &why);
        if (to < 0)
                return message_set(ret_reason, -EINVAL, "%s rollout %s: %s (it is %s)", verb, id,
                                   why, rollout_state_to_string(row.state));
        enum rollout_state from = row.state;
        row.state = (enum rollout_state) to;
        if (streq(verb, "start")) {
                row.started = now;
                row.current_stage = 0;
                row.stage_started = now;
                struct rollout_stage_counts sc[ROLLOUT_STAGES_MAX];
                r = store_rollout_stage_counts_load(s, id, sc, NULL);
                if (r < 0)
                        return r;
                struct member_counts c;
                store_counts_from_stage(&sc[0], &c);
                r = store_rollout_event(s, id, now, 0, "stage started",
                                        "stage 1 (%u%%): %lld nodes", row.o.stages[0],
                                        (long long) c.total);
        } else if (streq(verb, "abort")) {
                row.finished = now;
                snprintf(row.reason, sizeof(row.reason), "aborted by the operator");
                /* Installs not sent yet are taken back; nodes that got one are told to roll back.
                 */
                int cancelled = 0, marked = 0;
                r = store_rollout_take_back(s, id, "aborted", now, &cancelled, &marked);
                if (r < 0)
                        return r;
                r = store_rollout_event(
                        s, id, now, (int) row.current_stage, "aborted",
                        "%d installs not yet sent cancelled; %d nodes will be told to "
                        "roll back at their next contact",
                        cancelled, marked);
        } else
                r = store_rollout_event(s, id, now, (int) row.current_stage, verb, "%s -> %s",
                                        rollout_state_to_string(from),
                                        rollout_state_to_string(row.state));
        if (r < 0)
                return r;
        r = store_rollout_save(s, &row);
        if (r < 0)
                return r;
        r = store_rollout_evaluate(s, &row, now); /* empty stages pass at once */
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return message_set(ret_reason, r, "cannot commit");
        return ret ? rollout_show_locked(s, id, now, ret) : 0;
}

static json_t *rollout_row_json(const struct rollout_row *row) {
        json_t *o = rollout_options_to_json(&row->o);
        if (!o)
                return NULL;
        json_object_set_new(o, "state", json_string(rollout_state_to_string(row->state)));
        json_object_set_new(o, "current_stage", json_integer(row->current_stage + 1));
        json_object_set_new(o, "created", json_integer(row->created));
        json_object_set_new(o, "started", row->started ? json_integer(row->started) : json_null());
        json_object_set_new(o, "finished",
                            row->finished ? json_integer(row->finished) : json_null());
        json_object_set_new(o, "stage_started",
                            row->stage_started ? json_integer(row->stage_started) : json_null());
        json_object_set_new(o, "reason", row->reason[0] ? json_string(row->reason) : json_null());
        return o;
}

static json_t *counts_json(const struct member_counts *c) {
        json_t *o = json_pack("{s:I,s:I,s:I}", "nodes", (json_int_t) c->total, "told_so_far",
                              (json_int_t) c->told, "failures", (json_int_t) c->failures);
        for (int i = 0; o && i < _ROLLOUT_NODE_STATE_MAX; i++)
                json_object_set_new(o, rollout_node_state_to_string(i),
                                    json_integer(c->by_state[i]));
        return o;
}

/* One row of rollout_events as the show lists it. */
static json_t *event_row(struct store_stmt *ev) {
        return json_pack("{s:I,s:o,s:s,s:s}", "time", (json_int_t) store_col_int64(ev, 0),
                         "stage", store_col_int_or_null(ev, 1), "event", store_col_str(ev, 2),
                         "detail", store_col_str(ev, 3));
}

/* One row of rollout_nodes as the show lists it. */
static json_t *member_row(struct store_stmt *nodes) {
        json_t *e = json_pack("{s:s,s:I,s:s,s:o,s:o,s:o,s:I,s:o,s:o,s:I}", "node",
                              store_col_str(nodes, 0), "stage",
                              (json_int_t) store_col_int(nodes, 1) + 1, "state",
                              store_col_str(nodes, 2), "install_seq",
                              store_col_int_or_null(nodes, 3), "told_time",
                              store_col_int_or_null(nodes, 4), "committed_time",
                              store_col_int_or_null(nodes, 5), "passes_since_commit",
                              (json_int_t) store_col_int64(nodes, 6), "rollback_seq",
                              store_col_int_or_null(nodes, 7), "reason",
                              store_col_string_or_null(nodes, 8), "updated",
                              (json_int_t) store_col_int64(nodes, 9));
        if (e) {
                json_object_set_new(e, "passes_since_told",
                                    json_integer(store_col_int64(nodes, 10)));
                json_object_set_new(e, "last_heard", store_col_int_or_null(nodes, 11));
        }
        return e;
}

static int rollout_show_locked(struct store *s, const char *id, int64_t now, json_t **ret) {
        struct rollout_row row;
        int r = store_rollout_load(s, id, &row);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *o = rollout_row_json(&row);
        if (!o)
                return -ENOMEM;
        _cleanup_free_ struct rollout_member *m = NULL;
        size_t n = 0;
        r = store_rollout_members_load(s, id, now, &m, NULL, &n);
        if (r < 0)
                return r;
        struct member_counts all;
        store_members_count(m, n, -1, &all);
        json_object_set_new(o, "counts", counts_json(&all));
        json_object_set_new(o, "threshold_exceeded",
                            json_boolean(rollout_failures_exceeded(&row.o.max_failures,
                                                                   all.failures, all.told)));
        json_t *progress = json_array();
        for (size_t i = 0; progress && i < row.o.n_stages; i++) {
                struct member_counts c;
                store_members_count(m, n, (int) i, &c);
                int64_t held = 0;
                for (size_t k = 0; k < n; k++)
                        if (m[k].stage == i && rollout_member_held(&m[k], &row.o, now))
                                held++;
                const char *status = i < row.current_stage            ? "passed"
                                     : i > row.current_stage          ? "waiting"
                                     : row.state == ROLLOUT_COMPLETED ? "passed"
                                     : row.state == ROLLOUT_CREATED
                                             ? "waiting"
                                             : rollout_state_to_string(row.state);
                json_t *e = counts_json(&c);
                if (e) {
                        json_object_set_new(e, "stage", json_integer((json_int_t) i + 1));
                        json_object_set_new(e, "percent", json_integer(row.o.stages[i]));
                        json_object_set_new(e, "held", json_integer(held));
                        json_object_set_new(e, "status", json_string(status));
                }
                json_array_append_new(progress, e);
        }
        json_object_set_new(o, "stage_progress", progress);

        _cleanup_stmt_ struct store_stmt *ev = NULL;
        r = store_query(s, &ev,
                        "SELECT time, stage, event, detail FROM rollout_events WHERE rollout = ? "
                        "ORDER BY rowid",
                        "t", id);
        if (r < 0)
                return r;
        json_t *events = NULL;
        r = store_rows_json(s, ev, event_row, &events);
        if (r < 0)
                return r;
        json_object_set_new(o, "events", events);

        _cleanup_stmt_ struct store_stmt *nodes = NULL;
        r = store_query(s, &nodes,
                        "SELECT node, stage, state, install_seq, told_time, committed_time, "
                        "contacts_since_commit, rollback_seq, reason, updated, passes_since_told, "
                        "last_heard FROM rollout_nodes "
                        "WHERE rollout = ? ORDER BY stage, node",
                        "t", id);
        if (r < 0)
                return r;
        json_t *list = NULL;
        r = store_rows_json(s, nodes, member_row, &list);
        if (r < 0)
                return r;
        json_object_set_new(o, "nodes", list);
        if (!progress)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int store_rollout_show(struct store *s, const char *id, int64_t now, json_t **ret) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        struct rollout_row row;
        r = store_rollout_load(s, id, &row);
        if (r < 0)
                return r;
        r = store_rollout_evaluate(s, &row, now);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        return rollout_show_locked(s, id, now, ret);
}

int store_rollouts_list(struct store *s, int64_t now, json_t **ret) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = store_rollouts_evaluate_all(s, now);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT %s FROM rollouts ORDER BY created, id",
                 store_rollout_columns);
        _cleanup_stmt_ struct store_stmt *st = NULL;
        r = store_query(s, &st, sql, "");
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        while ((r = store_step(s, st)) > 0) {
                struct rollout_row row;
                r = store_rollout_row_read(s, st, &row);
                if (r < 0)
                        return r;
                json_t *o = rollout_row_json(&row);
                struct rollout_stage_counts sc[ROLLOUT_STAGES_MAX];
                struct member_counts c;
                r = store_rollout_stage_counts_load(s, row.o.id, sc, &c);
                if (r < 0) {
                        json_decref(o);
                        return r;
                }
                if (!o || json_object_set_new(o, "counts", counts_json(&c)) < 0 ||
                    json_array_append_new(a, o) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int store_rollouts_tick(struct store *s, int64_t now) {
        /* One short transaction per rollout: a sync waits for one rollout's evaluation at
         * most, not for all of them. */
        char (*ids)[ROLLOUT_ID_MAX + 1] = NULL;
        size_t n = 0;
        int r = store_live_rollout_ids(s, &ids, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = store_begin(s);
                if (r < 0)
                        break;
                _cleanup_transaction_ struct store *guard = s;
                struct rollout_row row;
                r = store_rollout_load(s, ids[i], &row);
                if (r >= 0)
                        r = store_rollout_evaluate(s, &row, now);
                if (r >= 0)
                        r = commit(&guard);
                if (r < 0 && r != -ENOENT)
                        break;
                r = 0;
        }
        free(ids);
        return r;
}

int store_rollout_counts_check(struct store *s, const char *id, int64_t now, char **ret_reason) {
        struct rollout_row row;
        int r = store_rollout_load(s, id, &row);
        if (r < 0)
                return message_set(ret_reason, r, "rollout %s: cannot load it", id);
        struct rollout_stage_counts kept[ROLLOUT_STAGES_MAX], recount[ROLLOUT_STAGES_MAX] = {};
        r = store_rollout_stage_counts_load(s, id, kept, NULL);
        if (r < 0)
                return message_set(ret_reason, r, "rollout %s: cannot read its counts", id);
        _cleanup_free_ struct rollout_member *m = NULL;
        size_t n = 0;
        r = store_rollout_members_load(s, id, now, &m, NULL, &n);
        if (r < 0)
                return message_set(ret_reason, r, "rollout %s: cannot read its members", id);
        bool live = row.state == ROLLOUT_RUNNING || row.state == ROLLOUT_PAUSED;
        for (size_t i = 0; i < n; i++) {
                if (m[i].stage >= ROLLOUT_STAGES_MAX)
                        return message_set(ret_reason, -EBADMSG, "rollout %s: a member in stage %u",
                                           id, m[i].stage + 1);
                struct rollout_stage_counts *c = &recount[m[i].stage];
                c->by_state[m[i].state]++;
                bool held = rollout_member_held(&m[i], &row.o, now);
                c->held += held;
                c->out += rollout_member_out(&m[i], held, &row.o);
        }
        for (size_t k = 0; k < ROLLOUT_STAGES_MAX; k++) {
                for (int i = 0; i < _ROLLOUT_NODE_STATE_MAX; i++)
                        if (kept[k].by_state[i] != recount[k].by_state[i])
                                return message_set(ret_reason, -EBADMSG,
                                                   "rollout %s stage %zu: %lld %s kept, %lld "
                                                   "counted",
                                                   id, k + 1, (long long) kept[k].by_state[i],
                                                   rollout_node_state_to_string(i),
                                                   (long long) recount[k].by_state[i]);
                if (live && (kept[k].held != recount[k].held || kept[k].out != recount[k].out))
                        return message_set(ret_reason, -EBADMSG,
                                           "rollout %s stage %zu: held %lld, out %lld kept; "
                                           "held %lld, out %lld counted",
                                           id, k + 1, (long long) kept[k].held,
                                           (long long) kept[k].out, (long long) recount[k].held,
                                           (long long) recount[k].out);
        }
        if (!live)
                return 0;
        enum rollout_stage_decision a = rollout_stage_decide(m, n, row.current_stage, &row.o,
                                                             row.stage_started, now),
                                    b = rollout_stage_decide_counts(&kept[row.current_stage],
                                                                    &row.o, row.stage_started, now);
        if (a != b)
                return message_set(ret_reason, -EBADMSG,
                                   "rollout %s stage %u: decision %d from the members, %d from "
                                   "the counts",
                                   id, row.current_stage + 1, (int) a, (int) b);
        int64_t left = 0;
        r = store_get_int64(
                s, &left,
                "SELECT count(*) FROM rollout_nodes WHERE rollout = ? AND due IS NOT NULL "
                "AND due <= ?",
                "ti", id, now);
        if (r <= 0)
                return message_set(ret_reason, r < 0 ? r : -EIO, "rollout %s: store error", id);
        if (left > 0)
                return message_set(ret_reason, -EBADMSG, "rollout %s: %lld members left due", id,
                                   (long long) left);
        return 0;
}
