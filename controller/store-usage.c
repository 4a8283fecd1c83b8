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
 * Whom an entry is billed to, on this controller's own knowledge only: an entry naming a
 * deployment this controller knows, the node a member of it, is billed to that deployment
 * spec's "tenant" (none when it has none); any other entry to no tenant. The node's word
 * (e->tenant) is kept apart as the entry's claimed tenant. *ret_tenant points into st; NULL:
 * no tenant. *ret_from: why (docs/usage.md): "deployment", "deployment-not-on-node",
 * "unknown-deployment", "unverified-node-claim" or "none".
 */
static int entry_tenant(struct store *s, struct store_stmt *st, const char *node, const struct usage_entry *e,
                        const char **ret_tenant, const char **ret_from) {
        *ret_tenant = NULL;
        if (!e->deployment[0]) {
                *ret_from = e->tenant[0] ? "unverified-node-claim" : "none";
                return 0;
        }
        int r = store_rebind(s, st, "tt", e->deployment, node);
        if (r >= 0)
                r = store_step(s, st);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_from = "unknown-deployment";
                return 0;
        }
        /* a member told of it (not one still pending, nor skipped): the node ran it */
        if (store_col_int(st, 1) == 0) {
                *ret_from = "deployment-not-on-node";
                return 0;
        }
        /* and of what the deployment runs: its workload, or its app's downloads */
        const char *w = store_col_text(st, 2), *app = store_col_text(st, 3);
        if (e->workload[0] ? !streq_ptr(w, e->workload) : !streq_ptr(app, e->app)) {
                *ret_from = "deployment-other-workload";
                return 0;
        }
        *ret_from = "deployment";
        const char *t = store_col_text(st, 0);
        /* deployment_request_parse refuses a tenant of another shape: one older than it
         * bills no one rather than a name the sums cannot show */
        *ret_tenant = store_col_is_text(st, 0) && usage_name_is_valid(t) ? t : NULL;
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
                       "record_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?7 <> 0 THEN ?8 END, ?9, ?10, ?11, ?12, ?13)",
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
        _cleanup_stmt_ struct store_stmt *tenant = NULL, *ins = NULL, *latest = NULL, *seen = NULL;
        r = store_query(s, &tenant,
                        "SELECT json_extract(d.request, '$.spec.tenant'), EXISTS (SELECT 1 FROM deployment_nodes dn "
                        "WHERE dn.deployment = d.id AND dn.node = ?2 AND dn.state NOT IN ('pending', 'skipped')), "
                        "d.workload, json_extract(d.request, '$.spec.app.name') FROM deployments d WHERE d.id = ?1",
                        "");
        if (r >= 0)
                r = store_query(s, &seen,
                                "SELECT interval FROM usage_latest WHERE node = ?1 AND meter = ?2 AND entry = ?3", "");
        if (r >= 0)
                r = store_query(s, &latest,
                                "INSERT INTO usage_latest (node, meter, entry, interval, received) "
                                "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (node, meter, entry) DO UPDATE SET "
                                "interval = excluded.interval, received = excluded.received",
                                "");
        if (r >= 0)
                r = store_query(s, &ins,
                                "INSERT OR IGNORE INTO usage (node, meter, interval, entry, workload, tenant, "
                                "deployment, app, tenant_from, cpu_sec, memory_byte_sec, energy_j, link_bytes, "
                                "start_time, end_time, received, claimed_tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                                "?8, ?9, CASE WHEN ?10 <> 0 THEN ?11 END, CASE WHEN ?12 <> 0 THEN ?13 END, "
                                "CASE WHEN ?14 <> 0 THEN ?15 END, CASE WHEN ?16 <> 0 THEN ?17 END, ?18, ?19, ?20, ?21)",
                                "");
        if (r < 0)
                return r;
        for (size_t i = 0; i < u->n_entries; i++) {
                const struct usage_entry *e = &u->entries[i];
                /* An entry's reports are kept in the order of their intervals: one not after
                 * the latest kept (sent again after thinning, or late) adds nothing to
                 * cumulative totals, and the sums rely on that order (store_usage_sum). */
                r = store_rebind(s, seen, "ttt", rec->node, u->meter, e->key);
                if (r >= 0)
                        r = store_step(s, seen);
                if (r < 0)
                        return r;
                if (r > 0 && store_col_int64(seen, 0) >= u->interval)
                        continue;
                bool first = r == 0;
                const char *who = NULL, *from = NULL;
                r = entry_tenant(s, tenant, rec->node, e, &who, &from);
                if (r < 0)
                        return r;
                /* once per entry of a meter, not at every report */
                if (first && e->tenant[0] && !streq_ptr(who, e->tenant))
                        log_info("store: node %s: usage of %s is billed to %s (%s), not to %s as the node says",
                                 rec->node, e->key, who ? who : "no tenant", from, e->tenant);
                /* "T": the tenant may live in the lookup statement, rebound at the next entry */
                r = store_rebind(s, ins, "ttittTttt" "dfdfdfdi" "iiit", rec->node, u->meter, u->interval, e->key,
                                 e->workload[0] ? e->workload : NULL, who, e->deployment[0] ? e->deployment : NULL,
                                 e->app[0] ? e->app : NULL, from, (int) !!(e->has & USAGE_HAS_CPU), e->cpu_sec,
                                 (int) !!(e->has & USAGE_HAS_MEMORY), e->memory_byte_sec,
                                 (int) !!(e->has & USAGE_HAS_ENERGY), e->energy_j, (int) !!(e->has & USAGE_HAS_LINK),
                                 e->link_bytes, u->start, u->end, now, e->tenant[0] ? e->tenant : NULL);
                if (r >= 0)
                        r = store_step_done(s, ins);
                if (r >= 0)
                        r = store_rebind(s, latest, "tttii", rec->node, u->meter, e->key, u->interval, now);
                if (r >= 0)
                        r = store_step_done(s, latest);
                if (r < 0)
                        return r;
        }
        return store_exec(s, "UPDATE nodes SET usage_reports = usage_reports + 1 WHERE id = ?", "t", rec->node);
}

int store_usage_backfill(struct store *s) {
        /* a store that counted usage already counted every record it has */
        int64_t counted = 0;
        int r = store_get_int64(s, &counted, "SELECT coalesce(sum(usage_reports + usage_refused), 0) FROM nodes", "");
        if (r < 0)
                return r;
        if (counted > 0)
                return 0;
        _cleanup_stmt_ struct store_stmt *st = NULL;
        r = store_query(s, &st,
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
                json_t *raw = NULL;
                r = store_col_record(st, 5, &raw);
                if (r == -ENOMEM)
                        return r;
                rec.raw = raw; /* one that does not read back counts as refused, as before */
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

static json_t *sum_row(struct store_stmt *st, const char *by) {
        double mem = store_col_double(st, 2), energy = store_col_double(st, 3);
        json_t *o = json_pack("{s:o, s:f, s:f, s:f, s:f, s:f, s:o, s:I, s:I, s:I}", by, store_col_string_or_null(st, 0),
                              "cpu_sec", store_col_double(st, 1), "memory_byte_sec", mem, "memory_gib_hours",
                              mem / (1024.0 * 1024.0 * 1024.0) / 3600.0, "energy_j", energy, "energy_wh",
                              energy / 3600.0, "link_bytes", bytes_json(store_col_double(st, 4)), "entries",
                              (json_int_t) store_col_int64(st, 5), "meters",
                              (json_int_t) store_col_int64(st, 6), "nodes",
                              (json_int_t) store_col_int64(st, 7));
        /* by tenant: a tenant only nodes claim, never billed to it, is a row of its own */
        if (o && streq(by, "tenant") &&
            json_object_set_new(o, "claimed_tenant", store_col_string_or_null(st, 8)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/*
 * The usage in [since, until) of the controller's receipt time: for each entry of each
 * meter (node, meter, entry key), its latest report received before until, less its latest
 * received before since (none: zero). Reports are cumulative, so a lost or repeated one
 * changes nothing, and a window is the difference of two totals.
 *
 * The entries are those of usage_latest (one row each, kept on insert), whose report is
 * the latest before any until past the last sync; an earlier edge is one seek each in the
 * covering index usage_window (node, meter, entry, received, interval): an entry's reports
 * are kept in the order of their intervals, so the last received before an edge is the one
 * of the greatest interval before it.
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
        char sql[3072];
        snprintf(sql, sizeof(sql),
                 "WITH e AS (SELECT l.node, l.meter, l.entry, "
                 "  CASE WHEN ?5 = 0 OR l.received < ?5 THEN l.interval ELSE "
                 "    (SELECT w.interval FROM usage w WHERE w.node = l.node AND w.meter = l.meter "
                 "     AND w.entry = l.entry AND w.received < ?5 ORDER BY w.received DESC, w.interval DESC LIMIT 1) "
                 "  END AS ia, "
                 "  CASE WHEN ?4 > 0 THEN "
                 "    (SELECT w.interval FROM usage w WHERE w.node = l.node AND w.meter = l.meter "
                 "     AND w.entry = l.entry AND w.received < ?4 ORDER BY w.received DESC, w.interval DESC LIMIT 1) "
                 "  END AS ib "
                 "  FROM usage_latest l WHERE ?3 IS NULL OR l.node = ?3) "
                 "SELECT %1$s AS k, total(max(coalesce(a.cpu_sec, 0) - coalesce(b.cpu_sec, 0), 0)), "
                 "total(max(coalesce(a.memory_byte_sec, 0) - coalesce(b.memory_byte_sec, 0), 0)), "
                 "total(max(coalesce(a.energy_j, 0) - coalesce(b.energy_j, 0), 0)), "
                 "total(max(coalesce(a.link_bytes, 0) - coalesce(b.link_bytes, 0), 0)), "
                 "count(*), count(DISTINCT a.node || ' ' || a.meter), count(DISTINCT a.node), "
                 "%2$s AS k2 "
                 "FROM e JOIN usage a ON a.node = e.node AND a.meter = e.meter AND a.interval = e.ia "
                 "AND a.entry = e.entry "
                 "LEFT JOIN usage b ON b.node = e.node AND b.meter = e.meter AND b.interval = e.ib "
                 "AND b.entry = e.entry "
                 "WHERE (?1 IS NULL OR a.tenant = ?1) AND (?2 IS NULL OR a.deployment = ?2) "
                 "AND (b.interval IS NULL OR b.interval < a.interval) "
                 "GROUP BY k, k2 ORDER BY k, k2",
                 columns[q->by], q->by == USAGE_BY_TENANT ? "CASE WHEN a.tenant_from != 'deployment' THEN a.claimed_tenant END" : "NULL");
        _cleanup_stmt_ struct store_stmt *st = NULL;
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

/* ---- thinning ------------------------------------------------------------------------------ */

#define DAY_SEC 86400

/*
 * One node's reports received in [from, before) (both at 00:00 UTC) thinned to the last of
 * each entry each UTC day: a report goes when a later one of its entry was received the same
 * day. The last report of every day stays, so the latest report before any 00:00 UTC is
 * still there; the latest of each entry (usage_latest) is never removed. The reports of the
 * meter's intervals no entry is kept of go with them.
 */
static int thin_days(struct store *s, const char *node, int64_t from, int64_t before, int64_t *ret_deleted) {
        int r = store_exec(s,
                           "DELETE FROM usage WHERE node = ?1 AND received >= ?2 AND received < ?3 AND EXISTS ("
                           "SELECT 1 FROM usage n WHERE n.node = usage.node AND n.meter = usage.meter "
                           "AND n.entry = usage.entry AND (n.received, n.interval) > (usage.received, usage.interval) "
                           "AND n.received < (usage.received / 86400 + 1) * 86400)",
                           "tii", node, from, before);
        if (r < 0)
                return r;
        *ret_deleted = store_changes(s);
        r = store_exec(s,
                       "DELETE FROM usage_reports WHERE node = ?1 AND received >= ?2 AND received < ?3 AND NOT EXISTS ("
                       "SELECT 1 FROM usage u WHERE u.node = usage_reports.node AND u.meter = usage_reports.meter "
                       "AND u.interval = usage_reports.interval)",
                       "tii", node, from, before);
        if (r < 0)
                return r;
        return store_exec(s, "UPDATE nodes SET usage_thinned_before = ?2 WHERE id = ?1", "ti", node, before);
}

int store_usage_thin(struct store *s, int64_t now, int64_t exact_days, int64_t max_rows_per_node,
                     int64_t *ret_deleted) {
        *ret_deleted = 0;
        int64_t today = now / DAY_SEC * DAY_SEC, cutoff = today - exact_days * DAY_SEC;
        char node[256] = "";
        for (;;) {
                /* the next node with usage, each in a transaction of its own (the lookup
                 * finished before it starts) */
                int64_t from = 0, n = 0, count = -1;
                int r;
                {
                        _cleanup_stmt_ struct store_stmt *next = NULL;
                        r = store_query_row(s, &next,
                                            "SELECT n.id, coalesce(n.usage_thinned_before, 0) FROM nodes n "
                                            "WHERE n.id > ? AND EXISTS (SELECT 1 FROM usage_latest l "
                                            "WHERE l.node = n.id) ORDER BY n.id LIMIT 1",
                                            "t", node);
                        if (r <= 0)
                                return r;
                        snprintf(node, sizeof(node), "%s", store_col_str(next, 0));
                        from = store_col_int64(next, 1);
                }
                r = store_begin(s); /* a sync waits for one node's at most */
                if (r < 0)
                        return r;
                _cleanup_transaction_ struct store *guard = s;
                if (from < cutoff) {
                        r = thin_days(s, node, from, cutoff, &n);
                        if (r < 0)
                                return r;
                        *ret_deleted += n;
                        from = cutoff;
                }
                /* over the cap: the oldest days not thinned yet are, one at a time, up to
                 * today (never coarser than a report per entry per day) */
                if (max_rows_per_node > 0) {
                        r = store_get_int64(s, &count, "SELECT count(*) FROM usage WHERE node = ?", "t", node);
                        if (r < 0)
                                return r;
                        if (count > max_rows_per_node && from < today) {
                                int64_t first = 0;
                                r = store_get_int64(s, &first, "SELECT min(received) FROM usage WHERE node = ?1 "
                                                    "AND received >= ?2", "ti", node, from);
                                if (r < 0)
                                        return r;
                                if (first / DAY_SEC * DAY_SEC > from)
                                        from = first / DAY_SEC * DAY_SEC;
                        }
                        while (count > max_rows_per_node && from < today) {
                                r = thin_days(s, node, from, from + DAY_SEC, &n);
                                if (r < 0)
                                        return r;
                                *ret_deleted += n, count -= n, from += DAY_SEC;
                        }
                        if (count > max_rows_per_node)
                                log_warning("store: node %s keeps %" PRId64 " usage reports, over the cap of %" PRId64
                                            ", with one per entry per day before today",
                                            node, count, max_rows_per_node);
                }
                r = commit(&guard);
                if (r < 0)
                        return r;
        }
}
