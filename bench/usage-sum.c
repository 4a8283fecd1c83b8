/*
 * Benchmark: what GET /v1/usage costs the store (store_usage_sum, controller/store-usage.c)
 * over a million usage rows, and what it cost before schema 14, in one run on one database.
 *
 * NODES nodes x ENTRIES entries x REPORTS reports (100 x 10 x 1000 by default: 1,000,000
 * usage rows, 100,000 usage_reports), report k of every entry received at T0 + 300 k (+ the
 * node's number), filled in one SQL statement, and usage_latest filled from them as the
 * migration to schema 14 does (what the sync's transaction keeps on insert). Then each query
 * is timed RUNS times (median printed), first by the query of schema 13 (its text kept here
 * only, as the baseline, with the index it had, usage_by_entry), then by store_usage_sum
 * (the index dropped again): the totals of both are compared, so a figure is only printed
 * for an answer that is the same.
 *
 * Figures, not a test: the exit status is 0 unless the benchmark could not run (1) or the two
 * answers differ (1).
 *
 * usage: usage-sum [--nodes N] [--entries E] [--reports R] [--runs K] [DIR]
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench-util.h"
#include "lib/log.h"
#include "controller/api.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"

#define T0 1760000000LL
#define REPORT_SEC 300

/* The sum of schema 13 (controller/store-usage.c before it): two scans of every row. */
static int old_sum(struct store *s, const struct usage_query *q, double *ret_cpu, size_t *ret_rows) {
        static const char *const columns[_USAGE_BY_MAX] = {
                [USAGE_BY_TENANT] = "a.tenant",
                [USAGE_BY_DEPLOYMENT] = "a.deployment",
                [USAGE_BY_NODE] = "a.node",
                [USAGE_BY_WORKLOAD] = "coalesce(a.workload, 'app:' || a.app)",
        };
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
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st, sql, "tttii", q->tenant[0] ? q->tenant : NULL,
                            q->deployment[0] ? q->deployment : NULL, q->node[0] ? q->node : NULL, q->since, q->until);
        if (r < 0)
                return r;
        double cpu = 0;
        size_t n = 0;
        while ((r = store_step(s, st)) > 0)
                cpu += store_col_double(st, 1), n++;
        *ret_cpu = cpu, *ret_rows = n;
        return r;
}

static int new_sum(struct store *s, const struct usage_query *q, double *ret_cpu, size_t *ret_rows) {
        json_t *rows = NULL;
        int r = store_usage_sum(s, q, &rows);
        if (r < 0)
                return r;
        double cpu = 0;
        size_t i;
        json_t *x;
        json_array_foreach(rows, i, x) cpu += json_number_value(json_object_get(x, "cpu_sec"));
        *ret_cpu = cpu, *ret_rows = json_array_size(rows);
        json_decref(rows);
        return 0;
}

struct bench_query {
        const char *what;
        struct usage_query q;
        double old_ms, new_ms, old_cpu, new_cpu;
        size_t old_rows, new_rows;
};

static void time_query(struct store *s, struct bench_query *b, bool old, int runs) {
        double t[64], cpu = 0;
        size_t rows = 0;
        for (int i = 0; i < runs; i++) {
                double t0 = now_s();
                int r = old ? old_sum(s, &b->q, &cpu, &rows) : new_sum(s, &b->q, &cpu, &rows);
                t[i] = (now_s() - t0) * 1e3;
                if (r < 0)
                        die("%s (%s): %s", b->what, old ? "schema 13" : "store_usage_sum", strerror(-r));
        }
        qsort(t, (size_t) runs, sizeof(*t), cmp_double);
        if (old)
                b->old_ms = t[runs / 2], b->old_cpu = cpu, b->old_rows = rows;
        else
                b->new_ms = t[runs / 2], b->new_cpu = cpu, b->new_rows = rows;
}

int main(int argc, char *argv[]) {
        long nodes = 100, entries = 10, reports = 1000, runs = 3;
        const char *dir = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
                        nodes = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc)
                        entries = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--reports") == 0 && i + 1 < argc)
                        reports = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
                        runs = strtol(argv[++i], NULL, 10);
                else if (argv[i][0] != '-')
                        dir = argv[i];
                else {
                        fprintf(stderr, "usage: usage-sum [--nodes N] [--entries E] [--reports R] [--runs K] [DIR]\n");
                        return 2;
                }
        }
        if (nodes < 1 || entries < 1 || reports < 2 || runs < 1 || runs > 64)
                return 2;
        bench_name = "usage-sum";
        char tmpl[] = "/tmp/usage-sum.XXXXXX", db[4200];
        bool own_dir = !dir;
        if (!dir && !(dir = mkdtemp(tmpl)))
                die("mkdtemp: %s", strerror(errno));
        snprintf(db, sizeof(db), "%s/controller.db", dir);
        log_setup("usage-sum", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);
        struct store *s = NULL;
        char *reason = NULL;
        if (store_open(db, &s, &reason) < 0)
                die("%s", reason ? reason : "store_open");
        long rows = nodes * entries * reports;
        double t0 = now_s();
        char sql[4096];
        /* row i: node i / (E R), report k = (i / E) % R (interval k + 1), entry i % E */
        snprintf(sql, sizeof(sql),
                 "BEGIN;"
                 "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %1$ld - 1) "
                 "INSERT INTO nodes (id, created) SELECT 'node-' || i, 0 FROM n;"
                 "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %1$ld * %3$ld - 1) "
                 "INSERT INTO usage_reports (node, meter, interval, start_time, end_time, duration_sec, entries, "
                 "received, record_boot_epoch, record_boot_id, record_seq) "
                 "SELECT 'node-' || (i / %3$ld), '00112233445566778899aabbccddeeff', i %% %3$ld + 1, %4$lld, "
                 "%4$lld + 300 * (i %% %3$ld + 1), 300, %2$ld, %4$lld + %5$d * (i %% %3$ld + 1) + i / %3$ld, 1, "
                 "'0123456789abcdef0123456789abcdef', i FROM n;"
                 "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %6$ld - 1) "
                 "INSERT INTO usage (node, meter, interval, entry, workload, tenant, deployment, app, tenant_from, "
                 "cpu_sec, memory_byte_sec, energy_j, link_bytes, start_time, end_time, received) "
                 "SELECT 'node-' || (i / (%2$ld * %3$ld)), '00112233445566778899aabbccddeeff', "
                 "(i / %2$ld) %% %3$ld + 1, 'w' || (i %% %2$ld) || ' t' || (i %% 7), 'w' || (i %% %2$ld), "
                 "'t' || (i %% 7), 'd' || (i %% %2$ld), NULL, 'deployment', "
                 "((i / %2$ld) %% %3$ld + 1) * 0.5, ((i / %2$ld) %% %3$ld + 1) * 1e9, "
                 "((i / %2$ld) %% %3$ld + 1) * 2.0, ((i / %2$ld) %% %3$ld + 1) * 1000, %4$lld, "
                 "%4$lld + 300 * ((i / %2$ld) %% %3$ld + 1), "
                 "%4$lld + %5$d * ((i / %2$ld) %% %3$ld + 1) + i / (%2$ld * %3$ld) FROM n;"
                 "INSERT INTO usage_latest (node, meter, entry, interval, received) "
                 "SELECT node, meter, entry, max(interval), received FROM usage GROUP BY node, meter, entry;"
                 "COMMIT; ANALYZE;",
                 nodes, entries, reports, T0, REPORT_SEC, rows);
        int r = store_script(s, sql);
        if (r < 0)
                die("filling the store: %s", strerror(-r));
        printf("usage-sum: %ld nodes x %ld entries x %ld reports = %ld usage rows, filled in %.1f s; "
               "medians of %ld runs\n",
               nodes, entries, reports, rows, now_s() - t0, runs);
        int64_t end = T0 + (int64_t) REPORT_SEC * (reports + 1) + nodes, mid = T0 + (int64_t) REPORT_SEC * reports / 2,
                quarter = T0 + (int64_t) REPORT_SEC * reports / 4;
        struct bench_query qs[] = {
                {.what = "by tenant, all time (until now)", .q = {.by = USAGE_BY_TENANT}},
                {.what = "by tenant, since the middle (--since)", .q = {.by = USAGE_BY_TENANT, .since = mid}},
                {.what = "by deployment, a window [1/4, 3/4)",
                 .q = {.by = USAGE_BY_DEPLOYMENT, .since = quarter, .until = quarter + (mid - quarter) * 2}},
                {.what = "by workload, one node, since the middle",
                 .q = {.by = USAGE_BY_WORKLOAD, .node = "node-1", .since = mid}},
                {.what = "by node, tenant t3, until before the end",
                 .q = {.by = USAGE_BY_NODE, .tenant = "t3", .until = end - REPORT_SEC * 10}},
        };
        /* the baseline: schema 13's query, with schema 13's index */
        t0 = now_s();
        if (store_script(s, "CREATE INDEX usage_by_entry ON usage(node, meter, entry, interval); ANALYZE") < 0)
                die("cannot make schema 13's index");
        printf("usage-sum: schema 13's index usage_by_entry made for the baseline in %.1f s\n", now_s() - t0);
        for (size_t i = 0; i < ELEMENTSOF(qs); i++)
                time_query(s, &qs[i], true, (int) runs);
        if (store_script(s, "DROP INDEX usage_by_entry; ANALYZE") < 0)
                die("cannot drop schema 13's index");
        for (size_t i = 0; i < ELEMENTSOF(qs); i++)
                time_query(s, &qs[i], false, (int) runs);
        int status = 0;
        printf("%-42s %14s %16s %8s  %s\n", "query", "schema 13 ms", "store_usage_sum ms", "x", "same answer");
        for (size_t i = 0; i < ELEMENTSOF(qs); i++) {
                struct bench_query *b = &qs[i];
                bool same = b->old_rows == b->new_rows && fabs(b->old_cpu - b->new_cpu) <= 1e-9 * fabs(b->old_cpu);
                printf("%-42s %14.1f %16.2f %8.0f  %s (%zu rows, %.1f CPU s)\n", b->what, b->old_ms, b->new_ms,
                       b->new_ms > 0 ? b->old_ms / b->new_ms : 0, same ? "yes" : "NO", b->new_rows, b->new_cpu);
                if (!same)
                        status = 1;
        }
        /* what thinning 35 days back does to this store (reports 300 s apart) */
        int64_t deleted = 0;
        t0 = now_s();
        if (store_usage_thin(s, end + 36 * 86400, STORE_USAGE_EXACT_DAYS_DEFAULT, 0, &deleted) < 0)
                die("store_usage_thin failed");
        printf("usage-sum: store_usage_thin as of %d days after the last report: %lld rows thinned in %.1f s\n", 36,
               (long long) deleted, now_s() - t0);
        store_close(s);
        if (own_dir) { /* the temporary directory this run made, and only its files */
                static const char *const suffixes[] = {"", "-wal", "-shm"};
                for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                        char f[4300];
                        snprintf(f, sizeof(f), "%s%s", db, suffixes[i]);
                        (void) unlink(f);
                }
                (void) rmdir(dir);
        }
        return status;
}
