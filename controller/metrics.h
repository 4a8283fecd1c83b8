/*
 * GET /metrics, pure: the Prometheus text exposition (format 0.0.4) of a snapshot the
 * store collects (store_metrics_collect) and the server's own counters. No I/O here.
 */
#pragma once

#include <stdint.h>

#include <jansson.h>

/* What the server counts itself, since it started (Prometheus counters). */
struct metrics_counters {
        uint64_t sync_requests;       /* syncs answered 200 */
        uint64_t sync_bytes_received; /* their request bodies */
        uint64_t sync_bytes_sent;     /* their answers */
        uint64_t connections;         /* TCP connections accepted */
        uint64_t tls_resumed;         /* of them, TLS sessions resumed from a ticket */
        uint64_t syncs_limited;       /* syncs answered 429: the node synced too often */
        uint64_t shed_full;           /* connections closed unauthenticated to make room */
        uint64_t shed_deadline;       /* ... past the request deadline */
        uint64_t certs_verified;      /* client certificate chains verified (once a connection) */
};

/*
 * Pure: the exposition text (caller frees) of a snapshot
 * {"now", "poll_interval", "nodes": [{"id", "last_sync"|null, "syncs", "passes",
 *  "health": <last health.report body>|null, "update_kind"|null, "usage_reports",
 *  "usage_refused"}],
 *  "records": {kind: count}, "record_lag": {kind: {"mean", "max", "n"}},
 *  "commands": {state: count},
 *  "rollouts": [{"id", "state", "current_stage", "nodes": {state: count}}]}.
 * A node is "online" when it synced within three poll intervals, "silent" when it has
 * synced before but not since, "never" when it never synced. Label values are escaped
 * (backslash, double quote, newline). -ENOMEM.
 */
int metrics_render(json_t *snapshot, const struct metrics_counters *c, char **ret);

/* Pure: the health level name as a number (nominal 0, warm 1, hot 2, critical 3), -1. */
int metrics_level_value(const char *level);
