/* Usage metering in the store (#19 item 5, docs/usage.md): usage.report records kept once
 * each, and summed from the latest report of each meter (its totals are cumulative). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/macro.h"
#include "proto/usage-record.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"

/* ---- counting ------------------------------------------------------------------------------ */

/*
 * Whom an entry is billed to: a deployment this controller knows decides (its spec's
 * "tenant", none when it has none); otherwise the node's word. *ret_tenant points into st
 * or e; NULL: no tenant. *ret_from: "deployment" or "node".
 */
static int entry_tenant(struct store *s, sqlite3_stmt *st, const struct usage_entry *e, const char **ret_tenant,
                        const char **ret_from) {
        *ret_tenant = e->tenant[0] ? e->tenant : NULL;
        *ret_from = "node";
        if (!e->deployment[0])
                return 0;
        int r = store_rebind(s, st, "t", e->deployment);
        if (r >= 0)
                r = store_step(s, st);
        if (r <= 0)
                return r;
        *ret_from = "deployment";
        const char *t = store_col_text(st, 0);
        /* deployment_request_parse refuses a tenant of another shape: one older than it
         * bills no one rather than a name the sums cannot show */
        *ret_tenant = sqlite3_column_type(st, 0) == SQLITE_TEXT && usage_name_is_valid(t) ? t : NULL;
        return 0;
}

int store_usage_apply_record(struct store *s, const struct sync_record *rec, int64_t now) {
        struct usage_record *u = malloc(sizeof(*u));
        if (!u)
                return -ENOMEM;
        _cleanup_free_ struct usage_record *owned = u;
        _cleanup_free_ char *why = NULL;
        int r = usage_record_parse(rec->body, u, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_warning("store: node %s: usage record (boot %" PRId64 " %s, seq %" PRId64
                            ") is stored but counts nothing: %s",
                            rec->node, rec->boot_epoch, rec->boot_id, rec->seq, why ? why : "malformed");
                return store_exec(s, "UPDATE nodes SET usage_refused = usage_refused + 1 WHERE id = ?", "t",
                                  rec->node);
        }
        /* Each report once, whatever record key brought it (the same report may come again
         * under another key); a report of the same totals changes no sum anyway. */
        r = store_exec(s,
                       "INSERT OR IGNORE INTO usage_reports (node, meter, interval, start_time, end_time, "
                       "duration_sec, board_energy_j, entries, received, record_boot_epoch, record_boot_id, "
                       "record_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?7 THEN ?8 END, ?9, ?10, ?11, ?12, ?13)",
                       "ttiiifdfiiiti", rec->node, u->meter, u->interval, u->start, u->end, u->duration_sec,
                       (int) u->has_board_energy, u->board_energy_j, (int64_t) u->n_entries, now, rec->boot_epoch,
                       rec->boot_id, rec->seq);
        if (r < 0)
                return r;
        if (store_changes(s) == 0) {
                log_info("store: node %s: usage report %" PRId64 " of meter %s came again (boot %" PRId64
                         " %s, seq %" PRId64 "): kept once",
                         rec->node, u->interval, u->meter, rec->boot_epoch, rec->boot_id, rec->seq);
                return 0;
        }
        _cleanup_stmt_ sqlite3_stmt *tenant = NULL, *ins = NULL;
        r = store_query(s, &tenant, "SELECT json_extract(request, '$.spec.tenant') FROM deployments WHERE id = ?", "");
        if (r >= 0)
                r = store_query(s, &ins,
                                "INSERT OR IGNORE INTO usage (node, meter, interval, entry, workload, tenant, "
                                "deployment, app, tenant_from, cpu_sec, memory_byte_sec, energy_j, link_bytes, "
                                "start_time, end_time, received) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                                "CASE WHEN ?10 THEN ?11 END, CASE WHEN ?12 THEN ?13 END, "
                                "CASE WHEN ?14 THEN ?15 END, CASE WHEN ?16 THEN ?17 END, ?18, ?19, ?20)",
                                "");
        if (r < 0)
                return r;
        for (size_t i = 0; i < u->n_entries; i++) {
                const struct usage_entry *e = &u->entries[i];
                const char *who = NULL, *from = NULL;
                r = entry_tenant(s, tenant, e, &who, &from);
                if (r < 0)
                        return r;
                if (e->tenant[0] && streq(from, "deployment") && !streq_ptr(who, e->tenant))
                        log_info("store: node %s: usage of %s is billed to %s, deployment %s's tenant, not to %s "
                                 "as the node says",
                                 rec->node, e->key, who ? who : "no tenant", e->deployment, e->tenant);
                /* "T": the tenant may live in the lookup statement, rebound at the next entry */
                r = store_rebind(s, ins, "ttittTttt" "dfdfdfdi" "iii", rec->node, u->meter, u->interval, e->key,
                                 e->workload[0] ? e->workload : NULL, who, e->deployment[0] ? e->deployment : NULL,
                                 e->app[0] ? e->app : NULL, from, (int) !!(e->has & USAGE_HAS_CPU), e->cpu_sec,
                                 (int) !!(e->has & USAGE_HAS_MEMORY), e->memory_byte_sec,
                                 (int) !!(e->has & USAGE_HAS_ENERGY), e->energy_j, (int) !!(e->has & USAGE_HAS_LINK),
                                 e->link_bytes, u->start, u->end, now);
                if (r >= 0)
                        r = store_step_done(s, ins);
                if (r < 0)
                        return r;
        }
        return store_exec(s, "UPDATE nodes SET usage_reports = usage_reports + 1 WHERE id = ?", "t", rec->node);
}

int store_usage_backfill(struct store *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_query(s, &st,
                            "SELECT node, boot_epoch, boot_id, seq, received, record FROM records "
                            "WHERE kind = '" USAGE_RECORD_KIND "' ORDER BY received, rowid",
                            "");
        if (r < 0)
                return r;
        int64_t n = 0;
        while ((r = store_step(s, st)) > 0) {
                struct sync_record rec = {.boot_epoch = store_col_int64(st, 1), .seq = store_col_int64(st, 3)};
                snprintf(rec.node, sizeof(rec.node), "%s", store_col_str(st, 0));
                snprintf(rec.boot_id, sizeof(rec.boot_id), "%s", store_col_str(st, 2));
                snprintf(rec.kind, sizeof(rec.kind), "%s", USAGE_RECORD_KIND);
                json_t *raw = store_col_json(st, 5);
                rec.raw = raw;
                rec.body = json_object_get(raw, "body");
                r = store_usage_apply_record(s, &rec, store_col_int64(st, 4));
                json_decref(raw);
                if (r < 0)
                        return r;
                n++;
        }
        if (r < 0)
                return r;
        if (n > 0)
                log_info("store: %" PRId64 " usage records stored before usage metering are counted", n);
        return 0;
}

/* ---- sums ---------------------------------------------------------------------------------- */

/* A byte count summed as a real (total() never fails on overflow, unlike sum()): an integer
 * while it is exact. */
static json_t *bytes_json(double v) {
        return v < 9007199254740992.0 ? json_integer((json_int_t) v) : json_real(v);
}

static json_t *sum_row(sqlite3_stmt *st, const char *by) {
        double mem = sqlite3_column_double(st, 2), energy = sqlite3_column_double(st, 3);
        json_t *o = json_pack("{s:o, s:f, s:f, s:f, s:f, s:f, s:o, s:I, s:I, s:I}", by, store_col_string_or_null(st, 0),
                              "cpu_sec", sqlite3_column_double(st, 1), "memory_byte_sec", mem, "memory_gib_hours",
                              mem / (1024.0 * 1024.0 * 1024.0) / 3600.0, "energy_j", energy, "energy_wh",
                              energy / 3600.0, "link_bytes", bytes_json(sqlite3_column_double(st, 4)), "entries",
                              (json_int_t) sqlite3_column_int64(st, 5), "meters",
                              (json_int_t) sqlite3_column_int64(st, 6), "nodes",
                              (json_int_t) sqlite3_column_int64(st, 7));
        return o;
}

/*
 * The usage in [since, until) of the controller's receipt time: for each entry of each
 * meter (node, meter, entry key), its latest report received before until, less its latest
 * received before since (none: zero). Reports are cumulative, so a lost or repeated one
 * changes nothing, and a window is the difference of two totals.
 */
int store_usage_sum(struct store *s, const struct usage_query *q, json_t **ret) {
        /* the grouping column comes from this table, never from the query's text */
        static const char *const columns[_USAGE_BY_MAX] = {
                [USAGE_BY_TENANT] = "a.tenant",
                [USAGE_BY_DEPLOYMENT] = "a.deployment",
                [USAGE_BY_NODE] = "a.node",
                [USAGE_BY_WORKLOAD] = "coalesce(a.workload, 'app:' || a.app)",
        };
        if ((size_t) q->by >= ELEMENTSOF(columns))
                return -EINVAL;
        char sql[2048];
        snprintf(sql, sizeof(sql),
                 "WITH upto AS (SELECT node, meter, entry, max(interval) AS i FROM usage "
                 "              WHERE ?5 = 0 OR received < ?5 GROUP BY node, meter, entry), "
                 "     before AS (SELECT node, meter, entry, max(interval) AS i FROM usage "
                 "              WHERE received < ?4 GROUP BY node, meter, entry) "
                 "SELECT %1$s AS k, total(max(coalesce(a.cpu_sec, 0) - coalesce(b.cpu_sec, 0), 0)), "
                 "total(max(coalesce(a.memory_byte_sec, 0) - coalesce(b.memory_byte_sec, 0), 0)), "
                 "total(max(coalesce(a.energy_j, 0) - coalesce(b.energy_j, 0), 0)), "
                 "total(max(coalesce(a.link_bytes, 0) - coalesce(b.link_bytes, 0), 0)), "
                 "count(*), count(DISTINCT a.node || ' ' || a.meter), count(DISTINCT a.node) "
                 "FROM upto u JOIN usage a ON a.node = u.node AND a.meter = u.meter AND a.entry = u.entry "
                 "AND a.interval = u.i "
                 "LEFT JOIN before p ON p.node = u.node AND p.meter = u.meter AND p.entry = u.entry "
                 "LEFT JOIN usage b ON b.node = p.node AND b.meter = p.meter AND b.entry = p.entry "
                 "AND b.interval = p.i "
                 "WHERE (?1 IS NULL OR a.tenant = ?1) AND (?2 IS NULL OR a.deployment = ?2) "
                 "AND (?3 IS NULL OR a.node = ?3) AND (b.interval IS NULL OR b.interval < a.interval) "
                 "GROUP BY k ORDER BY k",
                 columns[q->by]);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_query(s, &st, sql, "tttii", q->tenant[0] ? q->tenant : NULL,
                            q->deployment[0] ? q->deployment : NULL, q->node[0] ? q->node : NULL, q->since, q->until);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *rows = json_array();
        if (!rows)
                return -ENOMEM;
        const char *by = usage_by_to_string(q->by);
        while ((r = store_step(s, st)) > 0) {
                json_t *row = sum_row(st, by);
                if (!row || json_array_append_new(rows, row) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(rows);
        return 0;
}
