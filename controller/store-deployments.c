/*
 * Deployments in the store (#19 item 2, docs/deployments.md): made from an operator's
 * request, placed on nodes, and driven through the nodes' desired states with the rollout
 * machinery's decisions (controller/rollout.h) over members that follow their nodes'
 * desired.state reports (controller/deployment.h).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/deployment.h"
#include "controller/rollout.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"

void store_set_desired_signer(struct store *s, store_sign_fn sign, void *userdata) {
        s->sign_desired = sign;
        s->sign_desired_userdata = userdata;
}

struct deployment_row {
        struct deployment_options o;
        enum rollout_state state;
        unsigned current_stage;
        int64_t stage_started;
        char reason[ROLLOUT_REASON_MAX];
};

static void row_done(struct deployment_row *d) {
        deployment_options_done(&d->o);
}

static int row_load(struct store *s, const char *id, struct deployment_row *ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(s, &st,
                                "SELECT request, state, current_stage, stage_started, reason FROM deployments WHERE id = ?",
                                "t", id);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        *ret = (struct deployment_row){0};
        const char *req = store_col_str(st, 0);
        r = deployment_request_parse(req, strlen(req), &ret->o, NULL);
        if (r < 0)
                return -EBADMSG;
        int state = rollout_state_from_string(store_col_str(st, 1));
        ret->state = state < 0 ? ROLLOUT_HALTED : (enum rollout_state) state;
        ret->current_stage = (unsigned) store_col_int64(st, 2);
        ret->stage_started = store_col_int64(st, 3);
        snprintf(ret->reason, sizeof(ret->reason), "%s", store_col_str(st, 4));
        return 0;
}

/* ---- the nodes' desired states ------------------------------------------------------------ */

/* The node's workloads with name's entry replaced by entry (NULL: removed). */
static int desired_put_entry(struct store *s, const char *node, const char *name, json_t *entry, int64_t now,
                             const char *by, json_t **ret_previous, int64_t *ret_version, char **ret_reason) {
        json_t *workloads = NULL;
        int r = store_desired_workloads(s, node, &workloads);
        if (r < 0)
                return r;
        json_t *out = json_array();
        size_t i;
        json_t *w;
        bool placed = false;
        if (ret_previous)
                *ret_previous = NULL;
        json_array_foreach(workloads, i, w) {
                if (!streq(json_string_value(json_object_get(w, "name")) ?: "", name)) {
                        json_array_append(out, w);
                        continue;
                }
                if (ret_previous)
                        *ret_previous = json_incref(w);
                if (entry)
                        json_array_append(out, entry);
                placed = true;
        }
        if (!placed && entry)
                json_array_append(out, entry);
        json_decref(workloads);
        r = store_desired_set_locked(s, node, out, -1, now, by, s->sign_desired, s->sign_desired_userdata, ret_version,
                                     ret_reason);
        json_decref(out);
        if (r < 0 && ret_previous) {
                json_decref(*ret_previous);
                *ret_previous = NULL;
        }
        return r;
}

static json_t *entry_new(const struct deployment_options *o) {
        return json_pack("{s:s, s:s, s:s, s:O}", "name", o->workload, "deployment", o->strategy.id, "bundle",
                         o->strategy.bundle_id, "spec", o->spec);
}

/* ---- create ---------------------------------------------------------------------------------- */

static int candidates_load(struct store *s, const char *deployment, const char *workload, const char *target,
                           struct deployment_candidate **ret, char ***ret_names, size_t *ret_n) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = streq(target, "all")
                        ? store_query(s, &st, "SELECT id, health FROM nodes ORDER BY id", "")
                        : store_query(s, &st,
                                      "SELECT n.id, n.health FROM nodes n JOIN node_groups g ON g.node = n.id "
                                      "WHERE g.name = ? ORDER BY n.id",
                                      "t", target);
        if (r < 0)
                return r;
        size_t n = 0, cap = 0;
        struct deployment_candidate *c = NULL;
        char **names = NULL;
        while ((r = store_step(s, st)) > 0) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        struct deployment_candidate *nc = realloc(c, cap * sizeof(*c));
                        char **nn = nc ? realloc(names, cap * sizeof(*names)) : NULL;
                        if (nc)
                                c = nc;
                        if (nn)
                                names = nn;
                        if (!nc || !nn) {
                                r = -ENOMEM;
                                break;
                        }
                }
                names[n] = strdup(store_col_str(st, 0));
                json_auto_t *h = store_col_packed(st, 1);
                json_t *metrics = json_object_get(h, "metrics");
                json_t *mem = json_object_get(json_object_get(metrics, "mem.available_mib"), "last");
                json_t *bat = json_object_get(json_object_get(metrics, "battery.capacity_percent"), "last");
                json_t *w = NULL;
                bool has = false;
                if (names[n] && store_desired_workloads(s, names[n], &w) >= 0) {
                        size_t i;
                        json_t *e;
                        json_array_foreach(w, i, e)
                                has = has || streq(json_string_value(json_object_get(e, "name")) ?: "", workload);
                }
                json_decref(w);
                int level = deployment_level_from_string(json_string_value(json_object_get(h, "level")));
                c[n] = (struct deployment_candidate){
                        .node = names[n] ?: "",
                        .known = json_is_object(h) && level >= 0,
                        .free_mib = json_is_number(mem) ? (int64_t) json_number_value(mem) : 0,
                        .level = level < 0 ? 3 : level,
                        .battery_percent = json_is_number(bat) ? (int64_t) json_number_value(bat) : -1,
                        .has_it = has,
                };
                n++;
        }
        (void) deployment;
        *ret = c;
        *ret_names = names;
        *ret_n = n;
        return r < 0 ? r : 0;
}

static void candidates_free(struct deployment_candidate *c, char **names, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        free(c);
}

int store_deployment_create(struct store *s, const char *text, size_t len, int64_t now, const char *by, json_t **ret,
                            char **ret_reason) {
        _cleanup_(deployment_options_done) struct deployment_options o = {0};
        int r = deployment_request_parse(text, len, &o, ret_reason);
        if (r < 0)
                return r;
        r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        if (!o.strategy.id[0]) {
                int64_t n = 0;
                r = store_get_int64(s, &n, "SELECT count(*) FROM deployments", "");
                if (r < 0)
                        return r;
                snprintf(o.strategy.id, sizeof(o.strategy.id), "dep-%" PRId64, n + 1);
        }
        if (store_get_int64(s, NULL, "SELECT 1 FROM deployments WHERE id = ?", "t", o.strategy.id) > 0)
                return message_set(ret_reason, -EEXIST, "deployment \"%s\" exists", o.strategy.id);
        _cleanup_free_ char *live = NULL;
        {
                _cleanup_stmt_ struct store_stmt *q = NULL;
                r = store_query_row(s, &q,
                                    "SELECT id FROM deployments WHERE workload = ? AND state IN ('created', 'running', "
                                    "'paused') LIMIT 1",
                                    "t", o.workload);
                if (r < 0)
                        return r;
                if (r > 0)
                        return message_set(ret_reason, -EEXIST,
                                           "deployment \"%s\" of workload %s is under way: pause and delete it, or let it "
                                           "complete, first", store_col_str(q, 0), o.workload);
        }
        struct store_bundle b;
        r = store_bundle_get(s, o.strategy.bundle_id, &b);
        if (r == -ENOENT)
                return message_set(ret_reason, -EINVAL, "deployment: bundle_id: no bundle \"%s\" on this controller",
                                   o.strategy.bundle_id);
        if (r < 0)
                return r;
        const char *pinned = json_string_value(json_object_get(json_object_get(o.spec, "app"), "version"));
        if (!streq(pinned ?: "", b.version))
                return message_set(ret_reason, -EINVAL,
                                   "deployment: bundle %s holds version %s, the spec pins %s", b.id, b.version,
                                   pinned ?: "none");
        struct deployment_candidate *c = NULL;
        char **names = NULL;
        size_t n = 0;
        r = candidates_load(s, o.strategy.id, o.workload, o.strategy.target, &c, &names, &n);
        if (r < 0) {
                candidates_free(c, names, n);
                return r;
        }
        bool *chosen = calloc(n ? n : 1, sizeof(bool));
        const char **ids = calloc(n ? n : 1, sizeof(char *));
        unsigned *stage = calloc(n ? n : 1, sizeof(unsigned));
        char why[256] = "";
        size_t k = chosen && ids && stage ? deployment_place(o.strategy.id, c, n, o.count, &o.constraints, chosen, why,
                                                             sizeof(why))
                                          : 0;
        if (!chosen || !ids || !stage)
                r = -ENOMEM;
        else if (k == 0)
                r = message_set(ret_reason, -EINVAL, "deployment: no node of target \"%s\" meets the constraints%s%s",
                                o.strategy.target, why[0] ? ": " : "", why);
        else if (o.count > 0 && (int64_t) k < o.count)
                r = message_set(ret_reason, -EINVAL,
                                "deployment: %zu of the %" PRId64 " nodes asked for meet the constraints%s%s", k,
                                o.count, why[0] ? " (" : "", why[0] ? why : "");
        size_t m = 0;
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (chosen[i])
                        ids[m++] = c[i].node;
        if (r >= 0)
                rollout_assign_stages(o.strategy.id, ids, m, o.strategy.stages, o.strategy.n_stages, stage);
        _cleanup_free_ char *request = NULL;
        if (r >= 0) {
                json_auto_t *req = json_loadb(text, len, 0, NULL);
                (void) json_object_set_new(req, "id", json_string(o.strategy.id));
                request = req ? json_dumps(req, JSON_COMPACT) : NULL;
                if (!request)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = store_exec(s,
                               "INSERT INTO deployments (id, workload, request, state, current_stage, stage_started, "
                               "created, by) VALUES (?, ?, ?, 'running', 0, ?, ?, ?)",
                               "tttiit", o.strategy.id, o.workload, request, now, now, by);
        for (size_t i = 0; r >= 0 && i < m; i++)
                r = store_exec(s, "INSERT INTO deployment_nodes (deployment, node, stage) VALUES (?, ?, ?)", "tti",
                               o.strategy.id, ids[i], (int64_t) stage[i]);
        free(chosen);
        free(ids);
        free(stage);
        candidates_free(c, names, n);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        log_info("deployment %s: workload %s, bundle %s, on %zu nodes of %s", o.strategy.id, o.workload,
                 o.strategy.bundle_id, m, o.strategy.target);
        (void) store_deployments_drive(s, now);
        return ret ? store_deployment_get(s, o.strategy.id, ret) : 0;
}

/* ---- driving ---------------------------------------------------------------------------------- */

struct member_row {
        char node[API_ID_MAX + 1];
        struct rollout_member m;
        int64_t told_version, told_passes, committed_passes, passes;
        char reason[ROLLOUT_REASON_MAX];
        enum rollout_node_state before;
};

static int members_load(struct store *s, const char *id, struct member_row **ret, size_t *ret_n) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT dn.node, dn.stage, dn.state, dn.told_version, dn.told_time, dn.told_passes, "
                            "dn.committed_time, dn.committed_passes, n.passes, coalesce(dn.reason, '') "
                            "FROM deployment_nodes dn JOIN nodes n ON n.id = dn.node WHERE dn.deployment = ? "
                            "ORDER BY dn.stage, dn.node",
                            "t", id);
        if (r < 0)
                return r;
        struct member_row *a = NULL;
        size_t n = 0, cap = 0;
        while ((r = store_step(s, st)) > 0) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        struct member_row *na = realloc(a, cap * sizeof(*a));
                        if (!na) {
                                r = -ENOMEM;
                                break;
                        }
                        a = na;
                }
                struct member_row *x = &a[n++];
                *x = (struct member_row){0};
                snprintf(x->node, sizeof(x->node), "%s", store_col_str(st, 0));
                int state = rollout_node_state_from_string(store_col_str(st, 2));
                x->m.stage = (unsigned) store_col_int64(st, 1);
                x->m.state = state < 0 ? ROLLOUT_NODE_FAILED : (enum rollout_node_state) state;
                x->before = x->m.state;
                x->told_version = store_col_int64(st, 3);
                x->m.last_heard = store_col_int64(st, 4);
                x->told_passes = store_col_int64(st, 5);
                x->m.committed_time = store_col_int64(st, 6);
                x->committed_passes = store_col_int64(st, 7);
                x->passes = store_col_int64(st, 8);
                x->m.passes_since_told = x->passes - x->told_passes;
                x->m.passes_unheard = x->m.passes_since_told;
                x->m.passes_since_commit = x->passes - x->committed_passes;
                snprintf(x->reason, sizeof(x->reason), "%s", store_col_str(st, 9));
        }
        *ret = a;
        *ret_n = n;
        return r < 0 ? r : 0;
}

static int member_save(struct store *s, const char *id, const struct member_row *x) {
        return store_exec(s,
                          "UPDATE deployment_nodes SET state = ?, told_version = ?, told_time = ?, told_passes = ?, "
                          "committed_time = ?, committed_passes = ?, reason = nullif(?, '') "
                          "WHERE deployment = ? AND node = ?",
                          "tiiiiittt", rollout_node_state_to_string(x->m.state), x->told_version, x->m.last_heard,
                          x->told_passes, x->m.committed_time, x->committed_passes, x->reason, id, x->node);
}

/* A member follows its node's last report; one told too long ago without success is overdue. */
static void member_follow(struct store *s, const struct deployment_row *d, struct member_row *x, int64_t now) {
        if (x->m.state == ROLLOUT_NODE_PENDING || x->m.state == ROLLOUT_NODE_ROLLED_BACK ||
            x->m.state == ROLLOUT_NODE_SKIPPED)
                return;
        json_t *report = NULL;
        if (store_desired_report(s, x->node, &report) < 0)
                return;
        char why[ROLLOUT_REASON_MAX] = "";
        enum rollout_node_state next =
                deployment_member_from_report(x->m.state, x->told_version, report, d->o.workload, why, sizeof(why));
        json_decref(report);
        if (next == ROLLOUT_NODE_COMMITTED && x->m.state != ROLLOUT_NODE_COMMITTED) {
                x->m.committed_time = now;
                x->committed_passes = x->passes;
                x->m.passes_since_commit = 0;
        }
        if (next == ROLLOUT_NODE_FAILED && why[0])
                snprintf(x->reason, sizeof(x->reason), "%s", why);
        x->m.state = next;
        if (rollout_member_overdue(&x->m, &d->o.strategy, now)) {
                x->m.state = ROLLOUT_NODE_OVERDUE;
                snprintf(x->reason, sizeof(x->reason), "its workload did not run healthy within the report deadline");
        }
}

static int member_tell(struct store *s, const struct deployment_row *d, struct member_row *x, int64_t now) {
        json_t *entry = entry_new(&d->o), *previous = NULL;
        if (!entry)
                return -ENOMEM;
        char by[96];
        snprintf(by, sizeof(by), "deployment:%s", d->o.strategy.id);
        _cleanup_free_ char *why = NULL;
        int64_t version = 0;
        int r = desired_put_entry(s, x->node, d->o.workload, entry, now, by, &previous, &version, &why);
        json_decref(entry);
        if (r < 0) {
                x->m.state = ROLLOUT_NODE_FAILED;
                snprintf(x->reason, sizeof(x->reason), "its desired state could not be made: %s", why ? why : strerror(-r));
                return r == -ENOMEM ? r : 0;
        }
        _cleanup_free_ char *prev = previous ? json_dumps(previous, JSON_COMPACT) : NULL;
        json_decref(previous);
        x->m.state = ROLLOUT_NODE_TOLD;
        x->told_version = version;
        x->m.last_heard = now;
        x->told_passes = x->passes;
        return store_exec(s, "UPDATE deployment_nodes SET previous = ? WHERE deployment = ? AND node = ?", "ttt", prev,
                          d->o.strategy.id, x->node);
}

/* Back to what the node ran before: the entry kept at tell time, or none. */
static int member_revert(struct store *s, const struct deployment_row *d, struct member_row *x, int64_t now,
                         bool remove) {
        _cleanup_stmt_ struct store_stmt *q = NULL;
        int r = store_query_row(s, &q, "SELECT previous FROM deployment_nodes WHERE deployment = ? AND node = ?", "tt",
                                d->o.strategy.id, x->node);
        if (r < 0)
                return r;
        json_auto_t *previous = r > 0 && !store_col_is_null(q, 0) && !remove ? json_loads(store_col_str(q, 0), 0, NULL)
                                                                              : NULL;
        /* only this deployment's entry is taken back: a later one's stays */
        json_t *now_entries = NULL;
        r = store_desired_workloads(s, x->node, &now_entries);
        if (r < 0)
                return r;
        bool ours = false;
        size_t i;
        json_t *e;
        json_array_foreach(now_entries, i, e)
                if (streq(json_string_value(json_object_get(e, "name")) ?: "", d->o.workload))
                        ours = streq(json_string_value(json_object_get(e, "deployment")) ?: "", d->o.strategy.id);
        json_decref(now_entries);
        if (ours) {
                char by[96];
                snprintf(by, sizeof(by), "deployment:%s (%s)", d->o.strategy.id, remove ? "deleted" : "reverted");
                _cleanup_free_ char *why = NULL;
                int64_t version = 0;
                r = desired_put_entry(s, x->node, d->o.workload, previous, now, by, NULL, &version, &why);
                if (r < 0) {
                        log_warning("deployment %s: %s cannot be taken back on %s: %s", d->o.strategy.id,
                                    d->o.workload, x->node, why ? why : strerror(-r));
                        return r == -ENOMEM ? r : 0;
                }
        }
        x->m.state = ROLLOUT_NODE_ROLLED_BACK;
        return 0;
}

static int deployment_set(struct store *s, const char *id, enum rollout_state state, unsigned stage,
                          int64_t stage_started, const char *reason, int64_t now) {
        return store_exec(s,
                          "UPDATE deployments SET state = ?, current_stage = ?, stage_started = ?, reason = ?, "
                          "finished = CASE WHEN ? IN ('completed', 'halted', 'aborted') THEN ? ELSE finished END "
                          "WHERE id = ?",
                          "tiittit", rollout_state_to_string(state), (int64_t) stage, stage_started, reason,
                          rollout_state_to_string(state), now, id);
}

static int drive_one(struct store *s, const char *id, int64_t now) {
        struct deployment_row d;
        int r = row_load(s, id, &d);
        if (r < 0)
                return r;
        struct member_row *x = NULL;
        size_t n = 0;
        r = members_load(s, id, &x, &n);
        /* a completed deployment still follows the members that had not committed (a node
         * offline through it, overdue): one that converges later is committed */
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (d.state != ROLLOUT_COMPLETED || x[i].m.state != ROLLOUT_NODE_COMMITTED)
                        member_follow(s, &d, &x[i], now);
        int64_t told = 0, failures = 0;
        for (size_t i = 0; i < n; i++) {
                told += x[i].m.state != ROLLOUT_NODE_PENDING;
                failures += rollout_node_state_is_failure(x[i].m.state);
        }
        enum rollout_state state = d.state;
        unsigned stage = d.current_stage;
        int64_t started = d.stage_started;
        char reason[ROLLOUT_REASON_MAX];
        snprintf(reason, sizeof(reason), "%s", d.reason);
        if (r >= 0 && state == ROLLOUT_RUNNING && rollout_failures_exceeded(&d.o.strategy.max_failures, failures, told)) {
                state = ROLLOUT_HALTED;
                const char *first = "";
                for (size_t i = 0; i < n && !first[0]; i++)
                        if (rollout_node_state_is_failure(x[i].m.state))
                                first = x[i].node;
                snprintf(reason, sizeof(reason), "%" PRId64 " of %" PRId64 " nodes failed (%s first)%s", failures, told,
                         first, d.o.strategy.auto_revert ? ": reverted" : "");
                log_warning("deployment %s halted: %s", id, reason);
                for (size_t i = 0; d.o.strategy.auto_revert && r >= 0 && i < n; i++)
                        if (x[i].m.state != ROLLOUT_NODE_PENDING && x[i].m.state != ROLLOUT_NODE_ROLLED_BACK)
                                r = member_revert(s, &d, &x[i], now, false);
        }
        while (r >= 0 && state == ROLLOUT_RUNNING) {
                struct rollout_member *ms = calloc(n ? n : 1, sizeof(*ms));
                if (!ms) {
                        r = -ENOMEM;
                        break;
                }
                for (size_t i = 0; i < n; i++)
                        ms[i] = x[i].m;
                /* tell who is due first: a stage decides once its members are told */
                for (size_t i = 0; r >= 0 && i < n; i++)
                        if (x[i].m.state == ROLLOUT_NODE_PENDING && x[i].m.stage <= stage) {
                                r = member_tell(s, &d, &x[i], now);
                                ms[i] = x[i].m;
                        }
                enum rollout_stage_decision dec =
                        r >= 0 ? rollout_stage_decide(ms, n, stage, &d.o.strategy, started, now) : ROLLOUT_STAGE_WAIT;
                free(ms);
                if (dec == ROLLOUT_STAGE_WAIT)
                        break;
                if (stage + 1 >= d.o.strategy.n_stages) {
                        state = ROLLOUT_COMPLETED;
                        snprintf(reason, sizeof(reason), "every stage passed (%" PRId64 " failures)", failures);
                        log_info("deployment %s completed", id);
                        break;
                }
                stage++;
                started = now;
                log_info("deployment %s: stage %u%s", id, stage + 1, dec == ROLLOUT_STAGE_TIMEOUT ? " (timeout)" : "");
        }
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (x[i].m.state != x[i].before || x[i].m.state == ROLLOUT_NODE_TOLD)
                        r = member_save(s, id, &x[i]);
        if (r >= 0 && (state != d.state || stage != d.current_stage))
                r = deployment_set(s, id, state, stage, started, reason, now);
        free(x);
        row_done(&d);
        return r;
}

int store_deployments_drive(struct store *s, int64_t now) {
        if (!s->sign_desired)
                return 0;
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        _cleanup_stmt_ struct store_stmt *st = NULL;
        r = store_query(s, &st,
                        "SELECT id FROM deployments WHERE state IN ('running', 'paused') OR (state = 'completed' "
                        "AND id IN (SELECT deployment FROM deployment_nodes WHERE state IN ('told', 'installing', "
                        "'overdue'))) ORDER BY created",
                        "");
        if (r < 0)
                return r;
        char ids[64][DEPLOYMENT_ID_MAX + 1];
        size_t n = 0;
        while (n < ELEMENTSOF(ids) && (r = store_step(s, st)) > 0)
                snprintf(ids[n++], sizeof(ids[0]), "%s", store_col_str(st, 0));
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = drive_one(s, ids[i], now);
                if (r == -EBADMSG) {
                        log_error("deployment %s: its stored request no longer parses: halted", ids[i]);
                        r = deployment_set(s, ids[i], ROLLOUT_HALTED, 0, now, "its stored request no longer parses", now);
                }
        }
        if (r < 0)
                return r;
        return commit(&guard);
}

/* ---- views and verbs ---------------------------------------------------------------------------- */

static json_t *member_json(struct store_stmt *st) {
        return json_pack("{s:s, s:I, s:s, s:o, s:o}", "node", store_col_str(st, 0), "stage",
                         (json_int_t) store_col_int64(st, 1) + 1, "state", store_col_str(st, 2), "told_version",
                         store_col_int_or_null(st, 3), "reason", store_col_string_or_null(st, 4));
}

int store_deployment_get(struct store *s, const char *id, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(s, &st,
                                "SELECT request, state, current_stage, reason, created, finished, by FROM deployments "
                                "WHERE id = ?",
                                "t", id);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        _cleanup_(deployment_options_done) struct deployment_options o = {0};
        const char *req = store_col_str(st, 0);
        if (deployment_request_parse(req, strlen(req), &o, NULL) < 0)
                return -EBADMSG;
        json_auto_t *j = deployment_options_to_json(&o);
        if (!j)
                return -ENOMEM;
        _cleanup_stmt_ struct store_stmt *m = NULL;
        r = store_query(s, &m,
                        "SELECT node, stage, state, told_version, reason FROM deployment_nodes WHERE deployment = ? "
                        "ORDER BY stage, node",
                        "t", id);
        json_t *members = NULL;
        if (r >= 0)
                r = store_rows_json(s, m, member_json, &members);
        if (r < 0)
                return r;
        json_t *counts = json_object();
        size_t i;
        json_t *x;
        json_array_foreach(members, i, x) {
                const char *state = json_string_value(json_object_get(x, "state"));
                json_object_set_new(counts, state, json_integer(json_integer_value(json_object_get(counts, state)) + 1));
        }
        json_object_set_new(counts, "nodes", json_integer((json_int_t) json_array_size(members)));
        if (json_object_set_new(j, "state", json_string(store_col_str(st, 1))) < 0 ||
            json_object_set_new(j, "stage", json_integer(store_col_int64(st, 2) + 1)) < 0 ||
            json_object_set_new(j, "reason", store_col_string_or_null(st, 3)) < 0 ||
            json_object_set_new(j, "created", json_integer(store_col_int64(st, 4))) < 0 ||
            json_object_set_new(j, "finished", store_col_int_or_null(st, 5)) < 0 ||
            json_object_set_new(j, "by", store_col_string_or_null(st, 6)) < 0 ||
            json_object_set_new(j, "counts", counts) < 0 || json_object_set_new(j, "nodes", members) < 0)
                return -ENOMEM;
        *ret = json_incref(j);
        return 0;
}

static json_t *list_json(struct store_stmt *st) {
        return json_pack("{s:s, s:s, s:s, s:I, s:o, s:I, s:I}", "id", store_col_str(st, 0), "workload",
                         store_col_str(st, 1), "state", store_col_str(st, 2), "stage",
                         (json_int_t) store_col_int64(st, 3) + 1, "reason", store_col_string_or_null(st, 4), "nodes",
                         (json_int_t) store_col_int64(st, 5), "running", (json_int_t) store_col_int64(st, 6));
}

int store_deployments_list(struct store *s, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT d.id, d.workload, d.state, d.current_stage, d.reason, "
                            "(SELECT count(*) FROM deployment_nodes WHERE deployment = d.id), "
                            "(SELECT count(*) FROM deployment_nodes WHERE deployment = d.id AND state = 'committed') "
                            "FROM deployments d ORDER BY d.created, d.id",
                            "");
        if (r < 0)
                return r;
        return store_rows_json(s, st, list_json, ret);
}

int store_deployment_verb(struct store *s, const char *id, const char *verb, int64_t now, json_t **ret,
                          char **ret_reason) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        struct deployment_row d;
        r = row_load(s, id, &d);
        if (r == -ENOENT)
                return message_set(ret_reason, r, "no deployment \"%s\"", id);
        if (r < 0)
                return r;
        if (streq(verb, "delete")) {
                /* its workload leaves the nodes it was put on; what a later deployment put there stays */
                struct member_row *x = NULL;
                size_t n = 0;
                r = members_load(s, id, &x, &n);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        if (x[i].m.state != ROLLOUT_NODE_PENDING && x[i].m.state != ROLLOUT_NODE_ROLLED_BACK) {
                                r = member_revert(s, &d, &x[i], now, true);
                                if (r >= 0)
                                        r = member_save(s, id, &x[i]);
                        }
                free(x);
                if (r >= 0)
                        r = deployment_set(s, id, ROLLOUT_ABORTED, d.current_stage, d.stage_started,
                                           "deleted: its workload removed from its nodes", now);
        } else {
                const char *why = NULL;
                int next = rollout_state_after_verb(d.state, verb, &why);
                if (next < 0 || (!streq(verb, "pause") && !streq(verb, "resume")))
                        r = message_set(ret_reason, -EINVAL, "deployment %s is %s: %s", id,
                                        rollout_state_to_string(d.state), why ? why : "no such verb");
                else
                        r = deployment_set(s, id, (enum rollout_state) next, d.current_stage, d.stage_started,
                                           streq(verb, "pause") ? "paused by an operator" : "resumed by an operator",
                                           now);
        }
        row_done(&d);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        (void) store_deployments_drive(s, now);
        return ret ? store_deployment_get(s, id, ret) : 0;
}
