/* GET /metrics, pure: a store snapshot and the server's counters as Prometheus text. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/macro.h"
#include "controller/metrics.h"
#include "controller/rollout.h"

struct out {
        FILE *f;
};

static void family(struct out *o, const char *name, const char *type, const char *help) {
        fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format wants it. */
static void put_escaped(FILE *f, const char *v) {
        for (const char *p = v ? v : ""; *p; p++) {
                if (*p == '\\')
                        fputs("\\\\", f);
                else if (*p == '"')
                        fputs("\\\"", f);
                else if (*p == '\n')
                        fputs("\\n", f);
                else
                        fputc(*p, f);
        }
}

/* name{k1="v1",k2="v2"} value; labels: NULL-terminated key, value pairs. */
static void sample(struct out *o, const char *name, double value, ...) {
        va_list ap;
        va_start(ap, value);
        fputs(name, o->f);
        const char *k;
        bool first = true;
        while ((k = va_arg(ap, const char *))) {
                const char *v = va_arg(ap, const char *);
                fprintf(o->f, "%s%s=\"", first ? "{" : ",", k);
                put_escaped(o->f, v);
                fputc('"', o->f);
                first = false;
        }
        va_end(ap);
        if (!first)
                fputc('}', o->f);
        fprintf(o->f, " %.17g\n", value);
}

int metrics_level_value(const char *level) {
        static const char *const names[] = {"nominal", "warm", "hot", "critical"};
        for (size_t i = 0; level && i < ELEMENTSOF(names); i++)
                if (streq(level, names[i]))
                        return (int) i;
        return -1;
}

/* The last value of a metric of a health report, or NAN-free: false when absent. */
static bool health_last(json_t *health, const char *metric, double *ret) {
        json_t *v = json_object_get(json_object_get(json_object_get(health, "metrics"), metric),
                                    "last");
        if (!json_is_number(v))
                return false;
        *ret = json_number_value(v);
        return true;
}

static void counts_by(struct out *o, json_t *obj, const char *name, const char *label) {
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v)
                sample(o, name, (double) json_integer_value(v), label, k, NULL);
}

/* A counter family with one sample per node: the integer member key of each node. */
static void node_counter(struct out *o, json_t *nodes, const char *name, const char *help,
                         const char *key) {
        size_t i;
        json_t *n;
        family(o, name, "counter", help);
        json_array_foreach(nodes, i, n)
                sample(o, name, (double) json_integer_value(json_object_get(n, key)), "node",
                       json_string_value(json_object_get(n, "id")), NULL);
}

int metrics_render(json_t *snapshot, const struct metrics_counters *c, char **ret) {
        char *buf = NULL;
        size_t size = 0;
        struct out o = {.f = open_memstream(&buf, &size)};
        if (!o.f)
                return -ENOMEM;
        int64_t now = json_integer_value(json_object_get(snapshot, "now"));
        int64_t poll = json_integer_value(json_object_get(snapshot, "poll_interval"));
        json_t *nodes = json_object_get(snapshot, "nodes");
        size_t i;
        json_t *n;

        int64_t online = 0, silent = 0, never = 0;
        json_array_foreach(nodes, i, n) {
                json_t *ls = json_object_get(n, "last_sync");
                if (!json_is_integer(ls))
                        never++;
                else if (now - json_integer_value(ls) <= 3 * poll)
                        online++;
                else
                        silent++;
        }
        family(&o, "orbit_nodes", "gauge",
               "Nodes by link state: online (synced within three poll intervals), silent, never.");
        sample(&o, "orbit_nodes", (double) online, "state", "online", NULL);
        sample(&o, "orbit_nodes", (double) silent, "state", "silent", NULL);
        sample(&o, "orbit_nodes", (double) never, "state", "never", NULL);

        family(&o, "orbit_node_last_seen_age_seconds", "gauge",
               "Seconds since the node's last sync (absent: it never synced).");
        json_array_foreach(nodes, i, n) {
                json_t *ls = json_object_get(n, "last_sync");
                if (json_is_integer(ls))
                        sample(&o, "orbit_node_last_seen_age_seconds",
                               (double) (now - json_integer_value(ls)), "node",
                               json_string_value(json_object_get(n, "id")), NULL);
        }
        node_counter(&o, nodes, "orbit_node_syncs_total", "Syncs of the node the store has seen.",
                     "syncs");
        node_counter(&o, nodes, "orbit_node_passes_total",
                     "Passes of the node (its syncs closer than the pass gap, or in one contact "
                     "window, are one).",
                     "passes");

        family(&o, "orbit_controller_syncs_total", "counter",
               "Syncs answered since the controller started.");
        sample(&o, "orbit_controller_syncs_total", (double) c->sync_requests, NULL);
        family(&o, "orbit_controller_sync_received_bytes_total", "counter",
               "Bytes of sync request bodies since the controller started.");
        sample(&o, "orbit_controller_sync_received_bytes_total", (double) c->sync_bytes_received,
               NULL);
        family(&o, "orbit_controller_sync_sent_bytes_total", "counter",
               "Bytes of sync answers since the controller started.");
        sample(&o, "orbit_controller_sync_sent_bytes_total", (double) c->sync_bytes_sent, NULL);
        family(&o, "orbit_controller_syncs_limited_total", "counter",
               "Syncs answered 429 since the controller started: a node synced more often than --max-syncs-per-minute.");
        sample(&o, "orbit_controller_syncs_limited_total", (double) c->syncs_limited, NULL);
        family(&o, "orbit_controller_connections_total", "counter",
               "Connections accepted since the controller started (a node keeps one per pass).");
        sample(&o, "orbit_controller_connections_total", (double) c->connections, NULL);
        family(&o, "orbit_controller_connections_shed_total", "counter",
               "Connections closed before any authorized request on them: to make room for a newcomer "
               "(full), or past --request-deadline (deadline).");
        sample(&o, "orbit_controller_connections_shed_total", (double) c->shed_full, "reason", "full", NULL);
        sample(&o, "orbit_controller_connections_shed_total", (double) c->shed_deadline, "reason", "deadline", NULL);
        family(&o, "orbit_controller_tls_resumed_total", "counter",
               "Of those, TLS sessions resumed from a session ticket (no certificate exchange).");
        sample(&o, "orbit_controller_tls_resumed_total", (double) c->tls_resumed, NULL);
        family(&o, "orbit_controller_client_certificates_verified_total", "counter",
               "Client certificate chains verified: once a connection, its later requests reuse the verdict.");
        sample(&o, "orbit_controller_client_certificates_verified_total", (double) c->certs_verified, NULL);

        /* usage metering (#19 item 5): intervals counted (each once), bodies refused */
        family(&o, "orbit_usage_records_total", "counter",
               "usage.report records of the node: counted (a new interval), refused (a body that does not parse).");
        json_array_foreach(nodes, i, n) {
                const char *id = json_string_value(json_object_get(n, "id"));
                sample(&o, "orbit_usage_records_total", (double) json_integer_value(json_object_get(n, "usage_reports")),
                       "node", id, "result", "counted", NULL);
                sample(&o, "orbit_usage_records_total", (double) json_integer_value(json_object_get(n, "usage_refused")),
                       "node", id, "result", "refused", NULL);
        }

        family(&o, "orbit_records", "gauge", "Records stored, by kind.");
        counts_by(&o, json_object_get(snapshot, "records"), "orbit_records", "kind");
        const char *k;
        json_t *v;
        family(&o, "orbit_record_lag_seconds_mean", "gauge",
               "Mean delay from a record's creation on the node to its arrival, records of the last hour.");
        json_object_foreach(json_object_get(snapshot, "record_lag"), k, v)
                sample(&o, "orbit_record_lag_seconds_mean",
                       json_number_value(json_object_get(v, "mean")), "kind", k, NULL);
        family(&o, "orbit_record_lag_seconds_max", "gauge",
               "Largest delay from a record's creation on the node to its arrival, records of the last hour.");
        json_object_foreach(json_object_get(snapshot, "record_lag"), k, v)
                sample(&o, "orbit_record_lag_seconds_max",
                       json_number_value(json_object_get(v, "max")), "kind", k, NULL);

        family(&o, "orbit_commands", "gauge", "Commands by state (queued, sent, done, failed, ...).");
        counts_by(&o, json_object_get(snapshot, "commands"), "orbit_commands", "state");

        json_t *rollouts = json_object_get(snapshot, "rollouts");
        family(&o, "orbit_rollouts", "gauge", "Rollouts by state (running, paused, halted, completed, ...).");
        for (int s = 0; s < _ROLLOUT_STATE_MAX; s++) {
                int64_t count = 0;
                json_array_foreach(rollouts, i, n)
                        if (streq(json_string_value(json_object_get(n, "state")) ?: "",
                                  rollout_state_to_string(s)))
                                count++;
                sample(&o, "orbit_rollouts", (double) count, "state", rollout_state_to_string(s), NULL);
        }
        family(&o, "orbit_rollout_stage", "gauge", "The current stage of a rollout (1-based).");
        json_array_foreach(rollouts, i, n)
                sample(&o, "orbit_rollout_stage",
                       (double) json_integer_value(json_object_get(n, "current_stage")), "rollout",
                       json_string_value(json_object_get(n, "id")), "state",
                       json_string_value(json_object_get(n, "state")), NULL);
        family(&o, "orbit_rollout_nodes", "gauge", "Members of a rollout by their state in it.");
        json_array_foreach(rollouts, i, n) {
                const char *id = json_string_value(json_object_get(n, "id"));
                for (int s = 0; s < _ROLLOUT_NODE_STATE_MAX; s++)
                        sample(&o, "orbit_rollout_nodes",
                               (double) json_integer_value(json_object_get(
                                       json_object_get(n, "nodes"), rollout_node_state_to_string(s))),
                               "rollout", id, "state", rollout_node_state_to_string(s), NULL);
        }

        family(&o, "orbit_node_temperature_celsius", "gauge",
               "The last temperature of each sensor in the node's last health report.");
        json_array_foreach(nodes, i, n) {
                json_t *metrics = json_object_get(json_object_get(n, "health"), "metrics");
                json_object_foreach(metrics, k, v) {
                        size_t kl = strlen(k);
                        if (kl < 7 || strcmp(k + kl - 7, ".temp_c") != 0 ||
                            !json_is_number(json_object_get(v, "last")))
                                continue;
                        char sensor[128];
                        snprintf(sensor, sizeof(sensor), "%.*s", (int) (kl - 7), k);
                        sample(&o, "orbit_node_temperature_celsius",
                               json_number_value(json_object_get(v, "last")), "node",
                               json_string_value(json_object_get(n, "id")), "sensor", sensor, NULL);
                }
        }
        static const struct {
                const char *name, *metric, *help;
        } lasts[] = {
                {"orbit_node_battery_capacity_percent", "battery.capacity_percent",
                 "Battery capacity in the node's last health report."},
                {"orbit_node_cpu_busy_percent", "cpu.busy_percent",
                 "CPU busy in the node's last health report."},
                {"orbit_node_memory_available_mib", "mem.available_mib",
                 "Memory available in the node's last health report."},
        };
        for (size_t m = 0; m < ELEMENTSOF(lasts); m++) {
                family(&o, lasts[m].name, "gauge", lasts[m].help);
                json_array_foreach(nodes, i, n) {
                        double d;
                        if (health_last(json_object_get(n, "health"), lasts[m].metric, &d))
                                sample(&o, lasts[m].name, d, "node",
                                       json_string_value(json_object_get(n, "id")), NULL);
                }
        }
        family(&o, "orbit_node_health_level", "gauge",
               "The node's thermal and power level in its last health report: nominal 0, warm 1, "
               "hot 2, critical 3.");
        json_array_foreach(nodes, i, n) {
                int level = metrics_level_value(
                        json_string_value(json_object_get(json_object_get(n, "health"), "level")));
                if (level >= 0)
                        sample(&o, "orbit_node_health_level", (double) level, "node",
                               json_string_value(json_object_get(n, "id")), NULL);
        }
        if (fclose(o.f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}
