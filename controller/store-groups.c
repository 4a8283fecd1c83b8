/* Node groups in the store. */
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

/* ---- groups ------------------------------------------------------------------------- */

int store_node_group_add(struct store *s, const char *node, const char *group, int64_t now) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = store_node_ensure(s, node, now);
        if (r < 0)
                return r;
        r = store_exec(s, "INSERT OR IGNORE INTO node_groups (node, name, added) VALUES (?, ?, ?)",
                       "tti", node, group, now);
        if (r < 0)
                return r;
        return commit(&guard);
}

int store_node_group_remove(struct store *s, const char *node, const char *group) {
        int r = store_exec(s, "DELETE FROM node_groups WHERE node = ? AND name = ?", "tt", node,
                           group);
        if (r < 0)
                return r;
        return store_changes(s) > 0 ? 0 : -ENOENT;
}

int store_node_groups(struct store *s, const char *node, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st, "SELECT name FROM node_groups WHERE node = ? ORDER BY name",
                            "t", node);
        if (r < 0)
                return r;
        return store_rows_json(s, st, store_col_string_or_null_0, ret);
}
