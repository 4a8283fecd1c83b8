/* Commands in the store: queued and signed with the next per-node seq, listed. */
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
#include "controller/store-sql.h"
#include "controller/store.h"

/* ---- commands ----------------------------------------------------------------------- */

/* Queue a command inside the caller's transaction; *ret_seq is its seq. */
int store_command_queue_locked(struct store *s, const char *node, const char *action,
                               json_t *params, int64_t now, int64_t expires_in_sec,
                               store_sign_fn sign, void *userdata, int64_t *ret_seq,
                               int64_t *ret_expires, char **ret_reason) {
        int r = command_params_check(action, params, ret_reason);
        if (r < 0)
                return r;
        if (expires_in_sec <= 0)
                return message_set(ret_reason, -EINVAL, "expires_in_sec must be positive");
        r = store_node_ensure(s, node, now);
        if (r < 0)
                return message_set(ret_reason, r, "cannot register node %s", node);

        _cleanup_stmt_ struct store_stmt *get = NULL;
        r = store_query_row(s, &get, "SELECT next_command_seq, link_epoch FROM nodes WHERE id = ?", "t", node);
        if (r <= 0)
                return message_set(ret_reason, r < 0 ? r : -EIO, "store error");
        if (store_col_int64(get, 0) < 1 || store_col_int64(get, 0) >= INT64_MAX)
                return message_set(ret_reason, -ERANGE, "node %s: no command seq left (next %lld)", node,
                                   (long long) store_col_int64(get, 0));
        struct command c = {
                .seq = (uint64_t) store_col_int64(get, 0),
                .not_before = now,
                .expires = now + expires_in_sec,
                .params = params,
        };
        snprintf(c.node, sizeof(c.node), "%s", node);
        snprintf(c.action, sizeof(c.action), "%s", action);
        /* for the node's link state as last reported: a captured envelope dies with it */
        const char *epoch = store_col_text(get, 1);
        if (epoch)
                snprintf(c.link_epoch, sizeof(c.link_epoch), "%s", epoch);

        _cleanup_free_ char *payload = NULL, *signature = NULL;
        r = command_payload_build(&c, &payload, ret_reason);
        if (r < 0)
                return r;
        r = sign(userdata, payload, &signature, ret_reason);
        if (r < 0)
                return r;

        r = store_exec(s,
                       "INSERT INTO commands (node, seq, action, params, payload, signature, "
                       "created, not_before, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       "titjttiii", node, (int64_t) c.seq, action, params, payload, signature, now,
                       c.not_before, c.expires);
        if (r < 0)
                return message_set(ret_reason, r, "cannot store command %llu",
                                   (unsigned long long) c.seq);
        r = store_exec(s, "UPDATE nodes SET next_command_seq = ? WHERE id = ?", "it",
                       (int64_t) c.seq + 1, node);
        if (r < 0)
                return message_set(ret_reason, r, "store error");
        s->commands_queued++;
        *ret_seq = (int64_t) c.seq;
        if (ret_expires)
                *ret_expires = c.expires;
        return 0;
}

int store_command_queue(struct store *s, const char *node, const char *action, json_t *params,
                        int64_t now, int64_t expires_in_sec, store_sign_fn sign, void *userdata,
                        json_t **ret, char **ret_reason) {
        int r = store_begin(s);
        if (r < 0)
                return message_set(ret_reason, r, "cannot start a transaction");
        _cleanup_transaction_ struct store *guard = s;
        int64_t seq = 0, expires = 0;
        r = store_command_queue_locked(s, node, action, params, now, expires_in_sec, sign, userdata,
                                       &seq, &expires, ret_reason);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return message_set(ret_reason, r, "cannot commit command %llu",
                                   (unsigned long long) seq);
        if (ret) {
                *ret = json_pack("{s:s,s:I,s:s,s:O,s:I,s:I,s:s}", "node", node, "seq",
                                 (json_int_t) seq, "action", action, "params", params, "not_before",
                                 (json_int_t) now, "expires", (json_int_t) expires, "state",
                                 "queued");
                if (!*ret)
                        return -ENOMEM;
        }
        return 0;
}

static json_t *command_json(struct store_stmt *st) {
        return json_pack("{s:I,s:s,s:o,s:I,s:I,s:I,s:s,s:o,s:o,s:o,s:b}", "seq",
                         (json_int_t) store_col_int64(st, 0), "action", store_col_text(st, 1),
                         "params", store_col_json(st, 2), "created",
                         (json_int_t) store_col_int64(st, 3), "not_before",
                         (json_int_t) store_col_int64(st, 4), "expires",
                         (json_int_t) store_col_int64(st, 5), "state", store_col_text(st, 6),
                         "sent_time", store_col_int_or_null(st, 7), "result_time",
                         store_col_int_or_null(st, 8), "result_reason",
                         store_col_string_or_null(st, 9), "acked", store_col_int(st, 10));
}

int store_commands_list(struct store *s, const char *node, json_t **ret) {
        int r = store_node_exists(s, node);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        _cleanup_stmt_ struct store_stmt *st = NULL;
        r = store_query(s, &st,
                        "SELECT c.seq, c.action, c.params, c.created, c.not_before, c.expires, "
                        "c.state, c.sent_time, c.result_time, c.result_reason, "
                        "c.seq <= n.last_command_seq "
                        "FROM commands c JOIN nodes n ON n.id = c.node "
                        "WHERE c.node = ? ORDER BY c.seq",
                        "t", node);
        if (r < 0)
                return r;
        return store_rows_json(s, st, command_json, ret);
}
