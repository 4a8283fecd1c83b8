/* A node's sync in the store: its row, its records and their effects, its due commands. */
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

/* ---- sync --------------------------------------------------------------------------- */

static int apply_command_result(struct store *s, const char *node, json_t *body, int64_t now) {
        struct command_result res;
        if (command_result_parse(body, &res) < 0) {
                log_warning("store: node %s: a command.result record with a malformed body is "
                            "stored but changes no command",
                            node);
                return 0;
        }
        _cleanup_stmt_ sqlite3_stmt *get = NULL;
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
                command_state_after_result((const char *) sqlite3_column_text(get, 0), res.status);
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
        if (e == RECORD_EFFECT_HEALTH)
                return store_exec(s, "UPDATE nodes SET health = ?1, health_time = ?2 WHERE id = ?3",
                                  "jit", rec->body, now, rec->node);
        return store_exec(s,
                          "UPDATE nodes SET update_body = ?1, update_time = ?2, "
                          "update_kind = ?4 WHERE id = ?3",
                          "jitt", rec->body, now, rec->node, rec->kind);
}

static int commands_due(struct store *s, const char *node, int64_t after_seq, int64_t now,
                        size_t max, json_t *out) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT seq, payload, signature, expires, state FROM commands "
                            "WHERE node = ? AND seq > ? ORDER BY seq",
                            "ti", node, after_seq);
        if (r < 0)
                return r;
        _cleanup_stmt_ sqlite3_stmt *mark = NULL;
        r = store_query(s, &mark,
                        "UPDATE commands SET state = ?, sent_time = coalesce(sent_time, ?) "
                        "WHERE node = ? AND seq = ?",
                        "");
        if (r < 0)
                return r;
        while (json_array_size(out) < max && (r = store_step(s, st)) > 0) {
                int64_t seq = sqlite3_column_int64(st, 0);
                const char *state = (const char *) sqlite3_column_text(st, 4);
                bool open = streq(state, "queued") || streq(state, "sent");
                if (!open)
                        continue; /* already finished (a result came in) or expired */
                bool expired = sqlite3_column_int64(st, 3) <= now;
                if (!expired) {
                        json_t *env = command_envelope_new(
                                (uint64_t) seq, (const char *) sqlite3_column_text(st, 1),
                                (const char *) sqlite3_column_text(st, 2));
                        if (!env || json_array_append_new(out, env) < 0)
                                return -ENOMEM;
                }
                r = store_rebind(s, mark, "titi", expired ? "expired" : "sent", now, node, seq);
                if (r >= 0)
                        r = store_step_done(s, mark);
                if (r < 0)
                        return r;
        }
        if (json_array_size(out) < max && r < 0)
                return r;
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

int store_sync(struct store *s, const struct sync_request *req, int64_t now, size_t max_commands,
               json_t **ret_commands, size_t *ret_stored) {
        int r = store_script(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = store_node_ensure(s, req->node, now);
        if (r < 0)
                return r;
        s->n_dirty = 0;
        s->dirty_overflow = false;
        /* Before last_sync moves: the pass is decided against the previous sync. */
        bool new_pass = false;
        r = store_node_pass_count(s, req->node, now, &new_pass);
        if (r < 0)
                return r;

        r = store_exec(s,
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

        _cleanup_stmt_ sqlite3_stmt *ins = NULL;
        r = store_query(s, &ins,
                        "INSERT OR IGNORE INTO records (node, boot_epoch, boot_id, seq, kind, "
                        "priority, time_usec, received, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        "");
        if (r < 0)
                return r;
        size_t stored = 0;
        for (size_t i = 0; i < req->n_records; i++) {
                const struct sync_record *rec = &req->records[i];
                r = store_rebind(s, ins, "titittiij", rec->node, rec->boot_epoch, rec->boot_id,
                                 rec->seq, rec->kind, rec->priority, rec->time_usec, now, rec->raw);
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
        if (req->status) {
                r = store_rollout_apply_status(s, req->node, req->status, now);
                if (r < 0)
                        return r;
        }
        r = store_rollouts_join_late(s, req->node, now);
        if (r < 0)
                return r;
        r = store_rollouts_drive_node(s, req->node, now);
        if (r < 0)
                return r;

        _cleanup_(json_decrefp) json_t *commands = json_array();
        if (!commands)
                return -ENOMEM;
        r = commands_due(s, req->node, req->last_command_seq, now, max_commands, commands);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        *ret_commands = TAKE_PTR(commands);
        if (ret_stored)
                *ret_stored = stored;
        return 0;
}
