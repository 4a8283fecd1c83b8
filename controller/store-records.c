/* Records in the store: listed, counted, pruned. */
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
#include "controller/store-record-form.h"
#include "controller/store-sql.h"
#include "controller/store.h"

int store_col_record(struct store_stmt *st, int i, json_t **ret) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = store_col_blob(st, i, &data, &len);
        if (r < 0)
                return r;
        if (!data) {
                *ret = NULL;
                return 0;
        }
        return record_form_unpack(data, len, ret);
}

json_t *store_col_packed(struct store_stmt *st, int i) {
        json_t *v = NULL;
        int r = store_col_record(st, i, &v);
        if (r == -ENOMEM)
                return NULL;
        return v ? v : json_null();
}

/* A record that does not read back is listed as null, as unparsable text always was. */
static json_t *record_col_0(struct store_stmt *st) {
        return store_col_packed(st, 0);
}

int store_records_list(struct store *s, const char *node, const char *kind, size_t limit,
                       json_t **ret) {
        int r = store_node_exists(s, node);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        bool prefix = kind && kind[0] && kind[strlen(kind) - 1] == '*';
        _cleanup_free_ char *match = kind ? strndup(kind, strlen(kind) - (prefix ? 1 : 0)) : NULL;
        if (kind && !match)
                return -ENOMEM;
        _cleanup_stmt_ struct store_stmt *st = NULL;
        /* The newest limit records, returned oldest first. */
        r = store_query(
                s, &st,
                !kind    ? "SELECT record FROM (SELECT rowid, record FROM records WHERE node = ?1 "
                           "ORDER BY rowid DESC LIMIT ?3) AS r ORDER BY rowid"
                : prefix ? "SELECT record FROM (SELECT rowid, record FROM records WHERE node = ?1 "
                           "AND substr(kind, 1, length(?2)) = ?2 ORDER BY rowid DESC LIMIT ?3) AS r "
                           "ORDER BY rowid"
                         : "SELECT record FROM (SELECT rowid, record FROM records WHERE node = ?1 "
                           "AND kind = ?2 ORDER BY rowid DESC LIMIT ?3) AS r ORDER BY rowid",
                "tTi", node, match, (int64_t) limit);
        if (r < 0)
                return r;
        return store_rows_json(s, st, record_col_0, ret);
}

int store_records_count(struct store *s, const char *node, int64_t *ret) {
        int r = store_get_int64(s, ret, "SELECT count(*) FROM records WHERE node = ?", "t", node);
        return r < 0 ? r : 0;
}

int store_records_prune(struct store *s, int64_t before, size_t limit, int64_t *ret_deleted) {
        int r = store_exec(
                s,
                "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records"
                " WHERE received < ? AND priority != 'critical' AND kind NOT LIKE 'update.%'"
                " ORDER BY received LIMIT ?)",
                "ii", before, (int64_t) limit);
        if (r < 0)
                return r;
        if (ret_deleted)
                *ret_deleted = store_changes(s);
        return 0;
}
