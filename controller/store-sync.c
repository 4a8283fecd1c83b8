/* A node's sync in the store: its row, its records and their effects, its due commands. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/command.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/rollout.h"
#include "controller/store-internal.h"
#include "controller/store-record-form.h"
#include "controller/store-sql.h"
#include "controller/store.h"

/* ---- sync --------------------------------------------------------------------------- */

static int apply_command_result(struct store *s, const char *node, json_t *body, int64_t now) {
        struct command_result res;
        if (command_result_parse(body, &res) < 0) {
                log_warning("store: node %s: a command.result record with a malformed body is "
                            "stored but changes no command",
                            node);
                return 0;
        }
        _cleanup_stmt_ struct store_stmt *get = NULL;
        int r = store_query_row(s, &get, "SELECT state FROM commands WHERE node = ? AND seq = ?",
                                "ti", node, res.seq);
        if (r < 0)
                return r;
        if (r == 0) {
                log_warning("store: node %s reports a result for unknown command %lld", node,
                            (long long) res.seq);
                return 0;
        }
        const char *next =
                command_state_after_result(store_col_text(get, 0), res.status);
        if (!next)
                return 0;
        return store_exec(s,
                          "UPDATE commands SET state = ?, result_time = ?, result_reason = ? "
                          "WHERE node = ? AND seq = ?",
                          "tiTti", next, now, res.reason, node, res.seq);
}

static int apply_effect(struct store *s, const struct sync_record *rec, int64_t now) {
        enum record_effect e = record_effect_of(rec->kind);
        if (e == RECORD_EFFECT_COMMAND_RESULT)
                return apply_command_result(s, rec->node, rec->body, now);
        if (e == RECORD_EFFECT_NONE)
                return 0;
        if (e == RECORD_EFFECT_USAGE)
                return store_usage_apply_record(s, rec, now);
        if (e == RECORD_EFFECT_HEALTH) {
                /* packed as the record it came in: one report is most of a node's row */
                _cleanup_free_ char *form = NULL;
                size_t form_len = 0;
                int r = record_form_pack(rec->body, &form, &form_len);
                if (r < 0)
                        return r;
                return store_exec_later(s, "UPDATE nodes SET health = ?1, health_time = ?2 WHERE id = ?3",
                                        "bit", form, form_len, now, rec->node);
        }
        return store_exec_later(s,
                                "UPDATE nodes SET update_body = ?1, update_time = ?2, "
                                "update_kind = ?4 WHERE id = ?3",
                                "jitt", rec->body, now, rec->node, rec->kind);
}

static int commands_due(struct store *s, const char *node, int64_t after_seq, int64_t now,
                        size_t max, json_t *out) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT seq, payload, signature, expires, state FROM commands "
                            "WHERE node = ? AND seq > ? ORDER BY seq",
                            "ti", node, after_seq);
        if (r < 0)
                return r;
        while (json_array_size(out) < max && (r = store_step(s, st)) > 0) {
                int64_t seq = store_col_int64(st, 0);
                const char *state = store_col_text(st, 4);
                bool open = streq(state, "queued") || streq(state, "sent");
                if (!open)
                        continue; /* already finished (a result came in) or expired */
                bool expired = store_col_int64(st, 3) <= now;
                if (!expired) {
                        json_t *env = command_envelope_new(
                                (uint64_t) seq, store_col_text(st, 1),
                                store_col_text(st, 2));
                        if (!env || json_array_append_new(out, env) < 0)
                                return -ENOMEM;
                }
                /* goes with the COMMIT */
                r = store_exec_later(s,
                                     "UPDATE commands SET state = ?, sent_time = coalesce(sent_time, ?) "
                                     "WHERE node = ? AND seq = ?",
                                     "titi", expired ? "expired" : "sent", now, node, seq);
                if (r < 0)
                        return r;
        }
        if (json_array_size(out) < max && r < 0)
                return r;
        return 0;
}

/* Sign a queued command again for the node's new link epoch (its seq and times kept). */
static int command_resign(struct store *s, const char *node, int64_t seq, const char *payload,
                          const char *epoch) {
        struct command c;
        _cleanup_free_ char *why = NULL, *text = NULL, *signature = NULL;
        int r = command_payload_parse(payload, strlen(payload), &c, &why);
        if (r < 0)
                return log_error_errno(r, "store: node %s: command %lld: its stored payload: %s", node,
                                       (long long) seq, why ? why : "malformed");
        snprintf(c.link_epoch, sizeof(c.link_epoch), "%s", epoch);
        r = command_payload_build(&c, &text, &why);
        if (r >= 0)
                r = s->sign(s->sign_userdata, text, &signature, &why);
        command_done(&c);
        if (r < 0)
                return log_error_errno(r, "store: node %s: command %lld: cannot sign it again: %s", node,
                                       (long long) seq, why ? why : strerror(-r));
        return store_exec(s, "UPDATE commands SET payload = ?, signature = ? WHERE node = ? AND seq = ?",
                          "ttti", text, signature, node, seq);
}

/*
 * The node's link epoch and last applied seq against what the store knows (#18 item 5):
 *  - a new epoch for a node that had one: it lost its link state, so it cannot say which of
 *    the commands sent without a result it ran; they become "lost" (never sent again), and
 *    queued ones are signed again for the new epoch (commands signed for the old one are
 *    refused by the node). The first epoch a node reports (or one after an upgrade) just
 *    signs the queued commands for it.
 *  - a last applied seq at or past next_command_seq: the store was restored from a backup;
 *    new commands must start after it (or the node refuses them as replays, for ever), and
 *    the open ones up to it were applied or refused by the node: "lost" as well.
 */
static int sync_link_state(struct store *s, const struct sync_request *req, struct store_stmt *get,
                           int64_t now) {
        int r;
        const char *old_epoch = store_col_text(get, 0);
        int64_t old_last = store_col_int64(get, 1), next = store_col_int64(get, 2);
        if (req->link_epoch[0] && (!old_epoch || !streq(old_epoch, req->link_epoch))) {
                if (old_epoch) {
                        r = store_exec(s,
                                       "UPDATE commands SET state = 'lost', result_time = ?, result_reason = "
                                       "'the node lost its link state before this command''s result came in: "
                                       "not sent again (it may have run)' WHERE node = ? AND state = 'sent'",
                                       "it", now, req->node);
                        if (r < 0)
                                return r;
                        log_warning("store: node %s lost its link state (epoch %s -> %s, last applied command "
                                    "%lld -> %lld): %lld commands sent without a result are marked lost, "
                                    "never sent again",
                                    req->node, old_epoch, req->link_epoch, (long long) old_last,
                                    (long long) req->last_command_seq, (long long) store_changes(s));
                        r = store_exec(s, "UPDATE nodes SET link_resets = link_resets + 1 WHERE id = ?", "t",
                                       req->node);
                        if (r < 0)
                                return r;
                }
                if (s->sign) {
                        _cleanup_stmt_ struct store_stmt *q = NULL;
                        r = store_query(s, &q, "SELECT seq, payload FROM commands WHERE node = ? AND state = 'queued'",
                                        "t", req->node);
                        if (r < 0)
                                return r;
                        while ((r = store_step(s, q)) > 0) {
                                r = command_resign(s, req->node, store_col_int64(q, 0),
                                                   store_col_text(q, 1), req->link_epoch);
                                if (r < 0)
                                        return r;
                        }
                        if (r < 0)
                                return r;
                } else
                        log_warning("store: node %s: no command signer: its queued commands keep their old "
                                    "signatures (the node refuses those signed for another epoch)",
                                    req->node);
                r = store_exec(s, "UPDATE nodes SET link_epoch = ? WHERE id = ?", "tt", req->link_epoch,
                               req->node);
                if (r < 0)
                        return r;
        }
        if (req->last_command_seq >= next && req->last_command_seq >= INT64_MAX - 1) {
                /* No controller issues it (the next seq would overflow): a hostile node or a
                 * broken link state. The next seq stays; the node refuses what comes as replays. */
                log_warning("store: node %s reports applied commands up to %lld, which no controller "
                            "issues: its next seq stays %lld",
                            req->node, (long long) req->last_command_seq, (long long) next);
        } else if (req->last_command_seq >= next) {
                r = store_exec(s,
                               "UPDATE commands SET state = 'lost', result_time = ?, result_reason = "
                               "'the node had applied commands past it when this controller''s store "
                               "was older than the node: not sent again' "
                               "WHERE node = ? AND seq <= ? AND state IN ('queued', 'sent')",
                               "iti", now, req->node, req->last_command_seq);
                if (r < 0)
                        return r;
                log_warning("store: node %s has applied commands up to %lld, at or past this controller's "
                            "next seq %lld (was the store restored from a backup?): new commands start at "
                            "%lld; %lld open commands up to it are marked lost",
                            req->node, (long long) req->last_command_seq, (long long) next,
                            (long long) req->last_command_seq + 1, (long long) store_changes(s));
                r = store_exec(s, "UPDATE nodes SET next_command_seq = ? WHERE id = ?", "it",
                               req->last_command_seq + 1, req->node);
                if (r < 0)
                        return r;
        }
        return 0;
}

const char *store_record_priority(const char *kind, const char *priority) {
        if (!streq(priority, "critical"))
                return priority;
        return streq(kind, "command.result") || strncmp(kind, "update.", 7) == 0 ? "critical" : "high";
}

void store_set_record_quota(struct store *s, int64_t quota) {
        s->record_quota = quota > 0 ? quota : 0;
}

/*
 * The node's records past the quota: its droppable ones first, oldest first. at_most: the
 * count read with the node's row, plus what the sync stored since. Only the node's sync
 * adds its records, under the node's lock, so the count can only be lower (a prune may
 * have run since): counted again, exactly, only when at_most is past the quota.
 */
static int records_enforce_quota(struct store *s, const char *node, int64_t at_most) {
        if (s->record_quota <= 0 || at_most <= s->record_quota)
                return 0;
        int64_t count = 0;
        int r = store_get_int64(s, &count, "SELECT count(*) FROM records WHERE node = ?", "t", node);
        if (r < 0 || count <= s->record_quota)
                return r < 0 ? r : 0;
        r = store_exec(s,
                       "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records WHERE node = ? "
                       "ORDER BY (priority = 'critical' OR kind LIKE 'update.%'), received, seq LIMIT ?)",
                       "ti", node, count - s->record_quota);
        if (r < 0)
                return r;
        log_warning("store: node %s has %lld records, over its quota of %lld: the oldest %lld deleted", node,
                    (long long) count, (long long) s->record_quota, (long long) (count - s->record_quota));
        return 0;
}

/* Note that this sync changed something in a rollout (see struct store). */
void store_rollout_dirty(struct store *s, const char *rollout) {
        for (size_t i = 0; i < s->n_dirty; i++)
                if (streq(s->dirty[i], rollout))
                        return;
        if (s->n_dirty == ELEMENTSOF(s->dirty)) {
                s->dirty_overflow = true;
                return;
        }
        snprintf(s->dirty[s->n_dirty++], sizeof(s->dirty[0]), "%s", rollout);
}

/* The trust document a node has (#18 item 2), from its row as read (version -1: the node never
 * said: it predates trust documents), in its sync's transaction: what its sync said (told_version
 * -1: nothing; told_refused: the id of the one it refused last, "" none) kept (sent with the next
 * statement), and whether this sync said a refusal not said before. */
static int node_trust_apply(struct store *s, const char *node, int64_t version, const char *refused,
                            int64_t told_version, const char *told_refused, int64_t *ret_version,
                            char *ret_refused, bool *ret_newly_refused) {
        char before[17];
        snprintf(before, sizeof(before), "%s", refused ? refused : "");
        *ret_newly_refused = false;
        if (told_version >= 0) {
                int r = store_exec_later(s, "UPDATE nodes SET trust_version = ?, trust_refused = ? WHERE id = ?",
                                         "itt", told_version, told_refused[0] ? told_refused : NULL, node);
                if (r < 0)
                        return r;
                *ret_newly_refused = told_refused[0] && !streq(told_refused, before);
                version = told_version;
                snprintf(before, sizeof(before), "%s", told_refused);
        }
        *ret_version = version;
        memcpy(ret_refused, before, sizeof(before));
        return 0;
}

/* The rest of the node's row a sync reads (store_sync_node), from column ROW_NODE_FIRST,
 * copied at once: the sync then writes that row. */
#define ROW_NODE_FIRST 5
struct node_row_rest {
        char *cert_serial;
        json_t *plan; /* the contact plan ({"windows": []} when none) */
        int64_t trust_version, desired_version, desired_refused;
        char trust_refused[17];
};

static int node_row_rest_read(struct store_stmt *row, struct node_row_rest *ret) {
        const int c = ROW_NODE_FIRST;
        const char *serial = store_col_text(row, c);
        if (serial && !(ret->cert_serial = strdup(serial)))
                return -ENOMEM;
        ret->trust_version = store_col_is_null(row, c + 1) ? -1 : store_col_int64(row, c + 1);
        snprintf(ret->trust_refused, sizeof(ret->trust_refused), "%s", store_col_text(row, c + 2) ?: "");
        ret->desired_version = store_col_is_null(row, c + 3) ? -1 : store_col_int64(row, c + 3);
        ret->desired_refused = store_col_int64(row, c + 4);
        return (ret->plan = store_col_contact_plan(row, 4)) ? 0 : -ENOMEM;
}

static int sync_node_parts(struct store *s, const struct sync_request *req, const struct node_row_rest *was,
                           struct store_sync_node *n) {
        if (n->cert_serial && n->cert_serial[0] && !(was->cert_serial && streq(was->cert_serial, n->cert_serial))) {
                int r = store_exec_later(s,
                                         "UPDATE nodes SET cert_serial = ?1, cert_not_after = ?2, "
                                         "renew_expired_until = NULL WHERE id = ?3",
                                         "tit", n->cert_serial, n->cert_not_after, req->node);
                if (r < 0)
                        return r;
                n->cert_new = true;
        }
        if (n->keep_trust) {
                int r = node_trust_apply(s, req->node, was->trust_version, was->trust_refused, req->trust_version,
                                         req->trust_refused, &n->trust_version, n->trust_refused,
                                         &n->trust_newly_refused);
                if (r < 0)
                        return r;
        }
        int r = store_node_desired_apply(s, req->node, was->desired_version, was->desired_refused,
                                         req->desired_version, req->desired_refused, &n->desired,
                                         &n->desired_refused, &n->desired_newly_refused);
        return r < 0 ? r : 0;
}

static void node_row_rest_done(struct node_row_rest *was) {
        free(was->cert_serial);
        json_decref(was->plan);
}

static void sync_node_done(struct store_sync_node *n) {
        json_decref(n->plan);
        json_decref(n->desired);
        n->plan = n->desired = NULL;
}

int store_sync(struct store *s, const struct sync_request *req, int64_t now, size_t max_commands,
               json_t **ret_commands, size_t *ret_stored) {
        return store_sync_node(s, req, now, max_commands, NULL, ret_commands, ret_stored);
}

#define INSERT_RECORD_SQL                                                                                    \
        "INSERT OR IGNORE INTO records (node, boot_epoch, boot_id, seq, kind, priority, time_usec, received, " \
        "record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

/*
 * A record whose effect needs no answer from the store, sent not waited for (PostgreSQL):
 * inserted unless the node sent it before, and a health report kept as the node's health
 * only when it was inserted, in the same statement. Counted in s->counted once it ran.
 */
static int record_send(struct store *s, const struct sync_record *rec, enum record_effect effect, const char *form,
                       size_t form_len, int64_t now) {
        const char *priority = store_record_priority(rec->kind, rec->priority);
        if (effect == RECORD_EFFECT_NONE)
                return store_exec_later_counted(s, INSERT_RECORD_SQL, "titittiib", rec->node, rec->boot_epoch,
                                                rec->boot_id, rec->seq, rec->kind, priority, rec->time_usec, now,
                                                form, form_len);
        _cleanup_free_ char *health = NULL;
        size_t health_len = 0;
        int r = record_form_pack(rec->body, &health, &health_len);
        if (r < 0)
                return r;
        /* the UPDATE's count is the INSERT's: the node's row is there */
        return store_exec_later_counted(s,
                                        "WITH ins AS (" INSERT_RECORD_SQL " RETURNING 1) UPDATE nodes SET "
                                        "health = ?10, health_time = ?8 WHERE id = ?1 AND EXISTS (SELECT 1 FROM ins)",
                                        "titittiibb", rec->node, rec->boot_epoch, rec->boot_id, rec->seq, rec->kind,
                                        priority, rec->time_usec, now, form, form_len, health, health_len);
}

/* store_sync_node, once: -ECONNRESET when the connection was found lost at the sync's
 * first query, its transaction not begun on the server. */
static int sync_node_once(struct store *s, const struct sync_request *req, int64_t now, size_t max_commands,
                          struct store_sync_node *node, json_t **ret_commands, size_t *ret_stored) {
        if (node) { /* the outputs, as nothing was found */
                node->revoked_before = 0;
                node->cert_new = node->trust_newly_refused = node->desired_newly_refused = false;
                node->plan = node->desired = NULL;
                node->trust_version = -1;
                node->trust_refused[0] = '\0';
                node->desired_refused = 0;
        }
        int r = store_begin_node(s, req->node);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        /* The node's row as the sync found it, read once (link state, then its pass); made
         * at the node's first sync */
        _cleanup_stmt_ struct store_stmt *row = NULL;
        /* with it, in the same round trip: the node's records, when its quota will be
         * checked (column 10); its certificates' revocation (11); whether the node may move a
         * rollout (12, PostgreSQL) */
#define ROW_SQL                                                                                               \
        "SELECT link_epoch, last_command_seq, next_command_seq, last_sync, contact_plan, cert_serial, "       \
        "trust_version, trust_refused, desired_version, desired_refused, "                                    \
        "CASE WHEN ?2 <> 0 THEN (SELECT count(*) FROM records WHERE node = ?1) ELSE 0 END, "                 \
        "coalesce(certs_revoked_before, 0)"
        const char *row_sql = store_locks_rollouts(s) ? ROW_SQL ", " STORE_ROLLOUTS_INVOLVED_SQL " FROM nodes WHERE id = ?1"
                                                      : ROW_SQL " FROM nodes WHERE id = ?1";
#undef ROW_SQL
        int quota = s->record_quota > 0 && req->n_records > 0;
        r = store_query_row(s, &row, row_sql, "td", req->node, quota);
        if (r == 0) {
                store_stmt_finalize(TAKE_PTR(row));
                r = store_node_ensure(s, req->node, now);
                if (r >= 0)
                        r = store_query_row(s, &row, row_sql, "td", req->node, quota);
        }
        if (r < 0 && store_connection_lost(s))
                return -ECONNRESET;
        if (r <= 0)
                return r < 0 ? r : -EIO;
        _cleanup_(node_row_rest_done) struct node_row_rest was = {};
        if (node && (r = node_row_rest_read(row, &was)) < 0)
                return r;
        int64_t records_before = store_col_int64(row, 10);
        int64_t next_seq = store_col_int64(row, 2), queued_before = s->commands_queued;
        int64_t revoked_before = store_col_int64(row, 11);
        if (node && node->check_revoked && revoked_before != 0 && node->cert_not_before <= revoked_before) {
                node->revoked_before = revoked_before;
                return -EKEYREVOKED; /* nothing written: the transaction rolls back */
        }
        bool rollouts = true;
        r = store_lock_rollouts(s, store_locks_rollouts(s) && store_col_int64(row, 12) != 0, &rollouts);
        if (r < 0)
                return r;
        s->n_dirty = 0;
        s->dirty_overflow = false;
        r = sync_link_state(s, req, row, now);
        if (r < 0)
                return r;
        /* Before last_sync moves: the pass is decided against the previous sync. */
        bool new_pass = false;
        r = store_node_pass_count(s, req->node, row, 3, now, &new_pass);
        if (r < 0)
                return r;

        r = store_exec_later(s,
                       /* a format 2 sync without its boot keeps the one the node said last */
                       "UPDATE nodes SET last_sync = ?1, syncs = syncs + 1, "
                       "boot_epoch = CASE WHEN ?3 IS NULL THEN boot_epoch ELSE ?2 END, "
                       "boot_id = coalesce(?3, boot_id), last_command_seq = ?4, "
                       "status = coalesce(?5, status), "
                       "status_time = CASE WHEN ?5 IS NULL THEN status_time ELSE ?1 END "
                       "WHERE id = ?6",
                       "iitijt", now, req->boot_epoch, req->has_boot ? req->boot_id : NULL, req->last_command_seq,
                       req->status, req->node);
        if (r < 0)
                return r;

        _cleanup_stmt_ struct store_stmt *ins = NULL;
        r = store_query(s, &ins, INSERT_RECORD_SQL, "");
        if (r < 0)
                return r;
        /* stored: the records inserted here; sent: those sent not waited for (PostgreSQL), whose
         * count comes with the COMMIT (s->counted) */
        size_t stored = 0, sent = 0;
        s->counted = 0;
        for (size_t i = 0; i < req->n_records; i++) {
                const struct sync_record *rec = &req->records[i];
                _cleanup_free_ char *form = NULL;
                size_t form_len = 0;
                r = record_form_pack(rec->raw, &form, &form_len);
                if (r < 0)
                        return r;
                enum record_effect effect = record_effect_of(rec->kind);
                if (store_sends_later(s) && (effect == RECORD_EFFECT_NONE || effect == RECORD_EFFECT_HEALTH)) {
                        r = record_send(s, rec, effect, form, form_len, now);
                        if (r < 0)
                                return r;
                        sent++;
                        continue;
                }
                r = store_rebind(s, ins, "titittiib", rec->node, rec->boot_epoch, rec->boot_id,
                                 rec->seq, rec->kind, store_record_priority(rec->kind, rec->priority),
                                 rec->time_usec, now, form, form_len);
                if (r < 0)
                        return r;
                r = store_step_done(s, ins);
                if (r < 0)
                        return r;
                if (store_changes(s) == 0)
                        continue; /* already there: its effects were applied then */
                stored++;
                r = apply_effect(s, rec, now);
                if (r < 0)
                        return r;
                r = store_rollout_apply_record(s, rec, now);
                if (r < 0)
                        return r;
        }
        if (stored + sent > 0) {
                r = records_enforce_quota(s, req->node, records_before + (int64_t) (stored + sent));
                if (r < 0)
                        return r;
        }
        if (req->status) {
                r = store_rollout_apply_status(s, req->node, req->status, now);
                if (r < 0)
                        return r;
        }
        /* A node in no rollout not ended, and targeted by none running, has none to join
         * or to be told of: two statements spared at most syncs. */
        r = rollouts ? store_rollouts_join_late(s, req->node, now) : 0;
        if (r < 0)
                return r;
        r = store_rollouts_drive_node(s, req->node, rollouts, now);
        if (r < 0)
                return r;

        _cleanup_(json_decrefp) json_t *commands = json_array();
        if (!commands)
                return -ENOMEM;
        /* None past the node's last applied one (next_command_seq is read with its row, and
         * an operator's command waits for the writers' lock whole) and none queued by this
         * sync's rollouts: nothing to ask. */
        if (req->last_command_seq < next_seq - 1 || s->commands_queued != queued_before) {
                r = commands_due(s, req->node, req->last_command_seq, now, max_commands, commands);
                if (r < 0)
                        return r;
        }
        if (node && (r = sync_node_parts(s, req, &was, node)) < 0) {
                sync_node_done(node);
                return r;
        }
        r = commit(&guard);
        if (r < 0) {
                if (node)
                        sync_node_done(node);
                return r;
        }
        stored += (size_t) s->counted; /* the records sent have run with the COMMIT */
        if (node)
                node->plan = TAKE_PTR(was.plan);
        *ret_commands = TAKE_PTR(commands);
        if (ret_stored)
                *ret_stored = stored;
        return 0;
}

int store_sync_node(struct store *s, const struct sync_request *req, int64_t now, size_t max_commands,
                    struct store_sync_node *node, json_t **ret_commands, size_t *ret_stored) {
        int r = sync_node_once(s, req, now, max_commands, node, ret_commands, ret_stored);
        /* The connection was found lost at the sync's first query (the server restarted,
         * the connection cut while the station was idle): its BEGIN went with that query
         * (store_begin_node), so nothing of the sync ran. Its ROLLBACK has ended it; once
         * more on a new connection, as a statement outside a transaction is run again. */
        if (r == -ECONNRESET) {
                log_info("store: the connection to the database was lost: the sync of %s runs again on a new one",
                         req->node);
                r = sync_node_once(s, req, now, max_commands, node, ret_commands, ret_stored);
        }
        return r == -ECONNRESET ? -EIO : r;
}
