/* The figures GET /metrics shows, read from the store. */
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

/* ---- metrics ------------------------------------------------------------------------ */

/* Rows of a two-column query (text key, integer count) into obj. */
static int counts_into(struct store *s, const char *sql, json_t *obj) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st, sql, "");
        if (r < 0)
                return r;
        while ((r = store_step(s, st)) > 0)
                if (json_object_set_new(obj, store_col_str(st, 0),
                                        json_integer(store_col_int64(st, 1))) < 0)
                        return -ENOMEM;
        return r;
}

int store_metrics_collect(struct store *s, int64_t now, json_t **ret) {
        _cleanup_(json_decrefp) json_t *o =
                json_pack("{s:I,s:[],s:{},s:{},s:{},s:[]}", "now", (json_int_t) now, "nodes",
                          "records", "record_lag", "commands", "rollouts");
        if (!o)
                return -ENOMEM;
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT id, last_sync, syncs, passes, health, update_kind, usage_reports, "
                            "usage_refused FROM nodes ORDER BY id",
                            "");
        if (r < 0)
                return r;
        json_t *nodes = json_object_get(o, "nodes");
        while ((r = store_step(s, st)) > 0)
                if (json_array_append_new(
                            nodes,
                            json_pack("{s:s,s:o,s:I,s:I,s:o,s:o,s:I,s:I}", "id", store_col_str(st, 0),
                                      "last_sync", store_col_int_or_null(st, 1), "syncs",
                                      (json_int_t) store_col_int64(st, 2), "passes",
                                      (json_int_t) store_col_int64(st, 3), "health",
                                      store_col_packed(st, 4), "update_kind",
                                      store_col_string_or_null(st, 5), "usage_reports",
                                      (json_int_t) store_col_int64(st, 6), "usage_refused",
                                      (json_int_t) store_col_int64(st, 7))) < 0)
                        return -ENOMEM;
        if (r < 0)
                return r;
        r = counts_into(s, "SELECT kind, count(*) FROM records GROUP BY kind",
                        json_object_get(o, "records"));
        if (r < 0)
                return r;
        r = counts_into(s, "SELECT state, count(*) FROM commands GROUP BY state",
                        json_object_get(o, "commands"));
        if (r < 0)
                return r;
        _cleanup_stmt_ struct store_stmt *lag = NULL;
        r = store_query(s, &lag,
                        "SELECT kind, avg(received - time_usec / 1000000.0), "
                        "max(received - time_usec / 1000000.0), count(*) FROM records "
                        "WHERE received >= ? GROUP BY kind",
                        "i", now - 3600);
        if (r < 0)
                return r;
        while ((r = store_step(s, lag)) > 0)
                json_object_set_new(json_object_get(o, "record_lag"), store_col_str(lag, 0),
                                    json_pack("{s:f,s:f,s:I}", "mean",
                                              store_col_double(lag, 1), "max",
                                              store_col_double(lag, 2), "n",
                                              (json_int_t) store_col_int64(lag, 3)));
        if (r < 0)
                return r;
        _cleanup_stmt_ struct store_stmt *ro = NULL;
        r = store_query(s, &ro,
                        "SELECT id, state, current_stage FROM rollouts ORDER BY created, id", "");
        if (r < 0)
                return r;
        while ((r = store_step(s, ro)) > 0) {
                json_t *e = json_pack("{s:s,s:s,s:I,s:{}}", "id", store_col_str(ro, 0), "state",
                                      store_col_str(ro, 1), "current_stage",
                                      (json_int_t) store_col_int(ro, 2) + 1, "nodes");
                if (!e || json_array_append_new(json_object_get(o, "rollouts"), e) < 0)
                        return -ENOMEM;
                _cleanup_stmt_ struct store_stmt *c = NULL;
                r = store_query(s, &c,
                                "SELECT state, count(*) FROM rollout_nodes WHERE rollout = ? "
                                "GROUP BY state",
                                "T", store_col_str(ro, 0));
                if (r < 0)
                        return r;
                while ((r = store_step(s, c)) > 0)
                        json_object_set_new(json_object_get(e, "nodes"), store_col_str(c, 0),
                                            json_integer(store_col_int64(c, 1)));
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
