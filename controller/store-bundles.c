/* Uploaded bundles in the store. */
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

/* ---- bundles ------------------------------------------------------------------------ */

int store_bundle_add(struct store *s, const struct store_bundle *b, const char *signer,
                     bool verified, int64_t now) {
        /* One statement, then the check: the same bundle uploaded to two controllers of
         * one database at once is one row, and both uploads succeed. */
        int r = store_exec(s,
                           "INSERT OR IGNORE INTO bundles (id, version, size, sha256, signer, verified, "
                           "uploaded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           "ttittdi", b->id, b->version, b->size, b->sha256, signer, verified, now);
        if (r < 0 || store_changes(s) > 0)
                return r < 0 ? r : 0;
        struct store_bundle old;
        r = store_bundle_get(s, b->id, &old);
        if (r < 0)
                return r;
        return streq(old.sha256, b->sha256) ? 0 : -EEXIST;
}

int store_node_may_fetch_bundle(struct store *s, const char *node, const char *bundle) {
        int64_t v = 0;
        int r = store_get_int64(
                s, &v,
                "SELECT EXISTS (SELECT 1 FROM commands WHERE node = ?1 AND action = 'update.install' AND "
                "(json_extract(params, '$.bundle_id') = ?2 OR "
                /* the url's end; a positive start: PostgreSQL's substr counts a negative one
                 * otherwise than SQLite's */
                "substr(json_extract(params, '$.url'), length(json_extract(params, '$.url')) - "
                "length('/v1/bundles/' || ?2) + 1) = '/v1/bundles/' || ?2)) "
                "OR EXISTS (SELECT 1 FROM rollout_nodes rn JOIN rollouts ro ON ro.id = rn.rollout "
                "WHERE rn.node = ?1 AND ro.bundle_id = ?2) "
                "OR EXISTS (SELECT 1 FROM desired_states d, json_each(d.document, '$.workloads') w "
                "WHERE d.node = ?1 AND json_extract(w.value, '$.bundle') = ?2)",
                "tt", node, bundle);
        return r < 0 ? r : v != 0;
}

int store_bundle_get(struct store *s, const char *id, struct store_bundle *ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(
                s, &st, "SELECT id, version, size, sha256 FROM bundles WHERE id = ?", "t", id);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        memset(ret, 0, sizeof(*ret));
        snprintf(ret->id, sizeof(ret->id), "%s", store_col_text(st, 0));
        snprintf(ret->version, sizeof(ret->version), "%s",
                 store_col_text(st, 1));
        ret->size = store_col_int64(st, 2);
        snprintf(ret->sha256, sizeof(ret->sha256), "%s", store_col_text(st, 3));
        return 0;
}

static json_t *bundle_json(struct store_stmt *st) {
        return json_pack("{s:s,s:s,s:I,s:s,s:o,s:b,s:I}", "id", store_col_text(st, 0), "version",
                         store_col_text(st, 1), "size", (json_int_t) store_col_int64(st, 2),
                         "sha256", store_col_text(st, 3), "signer", store_col_string_or_null(st, 4),
                         "verified", store_col_int(st, 5), "uploaded",
                         (json_int_t) store_col_int64(st, 6));
}

int store_bundles_list(struct store *s, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT id, version, size, sha256, signer, verified, uploaded "
                            "FROM bundles ORDER BY uploaded, id",
                            "");
        if (r < 0)
                return r;
        return store_rows_json(s, st, bundle_json, ret);
}
