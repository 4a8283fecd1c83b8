/* The health monitor: readings -> policy -> runtime levers, events and reports. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health/collect.h"
#include "agent/health-monitor.h"
#include "agent/trusted-time.h"
#include "lib/log.h"
#include "health/summary.h"
#include "health/thermal-policy.h"

struct health_monitor {
        sd_event *event;
        struct runtime *runtime;
        struct event_queue *events;
        struct health_collector *collector;
        struct health_snapshot *snapshot; /* the latest, ~64 KiB */
        struct health_policy policy;
        struct health_actions applied;
        struct summary_set *summary;
        sd_event_source *timer;
        uint64_t poll_usec, report_usec;
        uint64_t report_start_usec, last_poll_usec, polls;
        char *disk_paths[HEALTH_CONFIG_MAX_DISKS];
        size_t n_disks;
        char *sysfs_root, *procfs_root;
        /* previous cpu counters, to turn them into percent of one core per poll */
        struct workload_usage prev_usage[64];
        size_t n_prev_usage;
        uint64_t prev_usage_usec;
};

static void push_event(struct health_monitor *m, enum event_priority p, const char *kind, json_t *body) {
        uint64_t mono = 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &mono);
        if (m->events)
                (void) event_queue_push(m->events, p, kind, body, (uint64_t) trusted_clock_now_usec(), mono);
        else
                json_decref(body);
}

static json_t *actions_json(const struct health_actions *a) {
        return json_pack("{s:i,s:b,s:i,s:b,s:b}", "best_effort_cpu_percent", (int) a->best_effort_cpu_percent,
                         "best_effort_frozen", a->best_effort_frozen, "normal_cpu_percent",
                         (int) a->normal_cpu_percent, "non_critical_stopped", a->non_critical_stopped,
                         "best_effort_admission_closed", a->best_effort_admission_closed);
}

/*
 * Apply the steps that differ. Going up: throttle best-effort, close its admission,
 * freeze it, throttle normal, stop all but critical. Going down: the same in reverse.
 */
static void apply_actions(struct health_monitor *m, const struct health_actions *want, bool up) {
        struct runtime *rt = m->runtime;
        struct health_actions *have = &m->applied;
        if (!rt) {
                *have = *want;
                return;
        }
        for (int pass = 0; pass < 5; pass++) {
                int step = up ? pass : 4 - pass;
                switch (step) {
                case 0:
                        if (have->best_effort_cpu_percent != want->best_effort_cpu_percent)
                                (void) runtime_class_throttle(rt, WORKLOAD_PRIORITY_BEST_EFFORT, want->best_effort_cpu_percent);
                        break;
                case 1:
                        if (have->best_effort_admission_closed != want->best_effort_admission_closed)
                                runtime_best_effort_admission(rt, !want->best_effort_admission_closed);
                        break;
                case 2:
                        if (have->best_effort_frozen != want->best_effort_frozen)
                                (void) runtime_class_freeze(rt, WORKLOAD_PRIORITY_BEST_EFFORT, want->best_effort_frozen);
                        break;
                case 3:
                        if (have->normal_cpu_percent != want->normal_cpu_percent)
                                (void) runtime_class_throttle(rt, WORKLOAD_PRIORITY_NORMAL, want->normal_cpu_percent);
                        break;
                case 4:
                        if (have->non_critical_stopped != want->non_critical_stopped) {
                                (void) runtime_class_stop(rt, WORKLOAD_PRIORITY_NORMAL, want->non_critical_stopped);
                                (void) runtime_class_stop(rt, WORKLOAD_PRIORITY_BEST_EFFORT, want->non_critical_stopped);
                        }
                        break;
                }
        }
        *have = *want;
}

/* Map the kernel's trip points onto the levels: passive/active warm, hot, critical. */
static void trips_to_reading(const struct thermal_zone *z, struct zone_reading *r) {
        r->trip_warm_mc = r->trip_hot_mc = r->trip_critical_mc = r->trip_hyst_mc = INT64_MIN;
        for (size_t i = 0; i < z->n_trips; i++) {
                const struct thermal_trip *t = &z->trips[i];
                int64_t *slot = NULL;
                if (streq(t->type, "critical"))
                        slot = &r->trip_critical_mc;
                else if (streq(t->type, "hot"))
                        slot = &r->trip_hot_mc;
                else if (streq(t->type, "passive") || streq(t->type, "active"))
                        slot = &r->trip_warm_mc;
                if (slot && (*slot == INT64_MIN || t->temp_mc < *slot))
                        *slot = t->temp_mc;
                if (t->has_hyst && r->trip_hyst_mc == INT64_MIN)
                        r->trip_hyst_mc = t->hyst_mc;
        }
}

static void summarize(struct health_monitor *m, const struct health_snapshot *s) {
        char name[SUMMARY_NAME_MAX];
        for (size_t i = 0; i < s->n_zones; i++)
                if (s->zones[i].valid) {
                        snprintf(name, sizeof(name), "zone.%s.temp_c", s->zones[i].name);
                        summary_add(m->summary, name, (double) s->zones[i].temp_mc / 1000.0);
                }
        for (size_t i = 0; i < s->n_hwmon; i++)
                if (s->hwmon[i].valid) {
                        snprintf(name, sizeof(name), "hwmon.%s.%s.temp_c", s->hwmon[i].chip, s->hwmon[i].label);
                        summary_add(m->summary, name, (double) s->hwmon[i].temp_mc / 1000.0);
                }
        if (s->cpu_busy_percent >= 0)
                summary_add(m->summary, "cpu.busy_percent", s->cpu_busy_percent);
        if (s->mem_valid)
                summary_add(m->summary, "mem.available_mib", (double) s->mem_available / 1048576.0);
        if (s->load_valid)
                summary_add(m->summary, "load1", s->load1);
        if (s->psi_cpu_some.valid)
                summary_add(m->summary, "psi.cpu.some_avg10", s->psi_cpu_some.avg10);
        if (s->psi_mem_some.valid)
                summary_add(m->summary, "psi.memory.some_avg10", s->psi_mem_some.avg10);
        if (s->psi_io_some.valid)
                summary_add(m->summary, "psi.io.some_avg10", s->psi_io_some.avg10);
        if (s->battery_capacity >= 0)
                summary_add(m->summary, "battery.capacity_percent", s->battery_capacity);
        for (size_t i = 0; i < s->n_disks; i++)
                if (s->disks[i].valid) {
                        snprintf(name, sizeof(name), "disk.%s.avail_mib", s->disks[i].path);
                        summary_add(m->summary, name, (double) s->disks[i].avail_bytes / 1048576.0);
                }
        if (s->self.valid) {
                summary_add(m->summary, "agent.rss_kib", (double) s->self.rss_bytes / 1024.0);
                summary_add(m->summary, "agent.open_fds", s->self.open_fds);
        }
        summary_add(m->summary, "agent.loop_lag_ms", (double) s->self.loop_lag_usec / 1000.0);

        /* Each workload's cgroup: cpu as percent of one core since the last poll, memory, tasks. */
        if (m->runtime) {
                struct workload_usage now_usage[64];
                size_t n = runtime_usage(m->runtime, now_usage, ELEMENTSOF(now_usage));
                uint64_t now = s->monotonic_usec;
                for (size_t i = 0; i < n; i++) {
                        const struct workload_usage *u = &now_usage[i];
                        if (!u->running)
                                continue;
                        for (size_t k = 0; k < m->n_prev_usage && now > m->prev_usage_usec; k++)
                                if (streq(m->prev_usage[k].name, u->name) && u->cpu_usec >= m->prev_usage[k].cpu_usec) {
                                        snprintf(name, sizeof(name), "workload.%.64s.cpu_percent", u->name);
                                        summary_add(m->summary, name,
                                                    100.0 * (double) (u->cpu_usec - m->prev_usage[k].cpu_usec) /
                                                            (double) (now - m->prev_usage_usec));
                                }
                        snprintf(name, sizeof(name), "workload.%.64s.memory_mib", u->name);
                        summary_add(m->summary, name, (double) u->memory_bytes / 1048576.0);
                        snprintf(name, sizeof(name), "workload.%.64s.pids", u->name);
                        summary_add(m->summary, name, (double) u->pids);
                }
                memcpy(m->prev_usage, now_usage, n * sizeof(now_usage[0]));
                m->n_prev_usage = n;
                m->prev_usage_usec = now;
        }
        summary_add(m->summary, "level", (double) m->policy.level);
}

static void poll_once(struct health_monitor *m, uint64_t now) {
        struct health_snapshot *s = m->snapshot;
        (void) health_collect(m->collector, s);
        m->last_poll_usec = now;
        m->polls++;

        struct zone_reading readings[HEALTH_MAX_ZONES];
        for (size_t i = 0; i < s->n_zones; i++) {
                readings[i] = (struct zone_reading){
                        .name = s->zones[i].name,
                        .type = s->zones[i].type,
                        .temp_mc = s->zones[i].temp_mc,
                        .valid = s->zones[i].valid,
                };
                trips_to_reading(&s->zones[i], &readings[i]);
        }
        struct policy_input in = {
                .now_usec = now,
                .zones = readings,
                .n_zones = s->n_zones,
                .on_battery = s->on_battery,
                .battery_capacity = s->battery_capacity,
        };
        struct policy_decision d;
        health_policy_step(&m->policy, &in, &d);
        /* run_when "sunlit" work goes first, before any class is throttled, and comes back
         * only in sunlight below warm (#19 item 4). */
        if (m->runtime) {
                char wait[64] = "";
                if (s->on_battery)
                        snprintf(wait, sizeof(wait), "in eclipse");
                else if (m->policy.level >= HEALTH_WARM)
                        snprintf(wait, sizeof(wait), "level %s", health_level_to_string(m->policy.level));
                runtime_set_sunlit(m->runtime, wait);
        }
        if (d.changed) {
                struct health_actions want = health_level_actions(&m->policy.config, d.to);
                log_notice("health: level %s", d.reason);
                apply_actions(m, &want, d.to > d.from);
                push_event(m, EVENT_HIGH, "health.level",
                           json_pack("{s:s,s:s,s:s,s:o}", "from", health_level_to_string(d.from), "to",
                                     health_level_to_string(d.to), "reason", d.reason, "actions", actions_json(&want)));
        }

        summarize(m, s);
        if (now - m->report_start_usec >= m->report_usec) {
                push_event(m, EVENT_LOW, "health.report",
                           json_pack("{s:f,s:s,s:i,s:o}", "interval_sec", (double) (now - m->report_start_usec) / 1e6,
                                     "level", health_level_to_string(m->policy.level), "problems",
                                     (int) s->n_problems, "metrics", summary_to_json(m->summary)));
                summary_reset(m->summary);
                m->report_start_usec = now;
        }
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct health_monitor *m = userdata;
        uint64_t now = 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        /* How late the loop ran us: the agent's own responsiveness. */
        health_collector_note_loop_lag(m->collector, now > usec ? now - usec : 0);
        poll_once(m, now);
        (void) sd_event_source_set_time(src, now + m->poll_usec);
        (void) sd_event_source_set_enabled(src, SD_EVENT_ON); /* time sources are one-shot */
        return 0;
}

static void build_policy_config(const struct agent_config *cfg, struct health_policy_config *pc) {
        const struct agent_health_config *h = &cfg->health;
        memset(pc, 0, sizeof(*pc));
        for (size_t i = 0; i < h->n_zones && i < POLICY_MAX_RULES; i++) {
                snprintf(pc->rules[i].match, sizeof(pc->rules[i].match), "%s", h->zones[i].match);
                pc->rules[i].limits = (struct thermal_limits){h->zones[i].warm_mc, h->zones[i].hot_mc,
                                                              h->zones[i].critical_mc, h->zones[i].hyst_mc};
                pc->n_rules++;
        }
        pc->have_default = h->have_default_zone;
        pc->default_limits = (struct thermal_limits){h->default_zone.warm_mc, h->default_zone.hot_mc,
                                                     h->default_zone.critical_mc, h->default_zone.hyst_mc};
        pc->use_trip_points = h->use_trip_points;
        pc->power = (struct power_limits){.enabled = h->power_enabled, .warm_pct = (int) h->power_warm_pct,
                                          .hot_pct = (int) h->power_hot_pct, .critical_pct = (int) h->power_critical_pct,
                                          .hyst_pct = (int) h->power_hyst_pct};
        pc->min_dwell_usec = (uint64_t) h->min_dwell_sec * 1000000ULL;
        pc->throttle_best_effort_percent = (unsigned) h->throttle_best_effort_pct;
        pc->throttle_normal_percent = (unsigned) h->throttle_normal_pct;
}

void health_monitor_free(struct health_monitor *m) {
        if (!m)
                return;
        sd_event_source_disable_unref(m->timer);
        health_collector_free(m->collector);
        free(m->snapshot);
        free(m->summary);
        for (size_t i = 0; i < m->n_disks; i++)
                free(m->disk_paths[i]);
        free(m->sysfs_root);
        free(m->procfs_root);
        sd_event_unref(m->event);
        free(m);
}

int health_monitor_new(sd_event *event, const struct agent_config *cfg, struct runtime *rt,
                       struct event_queue *events, struct health_monitor **ret) {
        struct health_monitor *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->runtime = rt;
        m->events = events;
        m->snapshot = calloc(1, sizeof(*m->snapshot));
        m->summary = calloc(1, sizeof(*m->summary));
        m->sysfs_root = strdup(cfg->paths.sysfs_root);
        m->procfs_root = strdup(cfg->paths.procfs_root);
        int r = (m->snapshot && m->summary && m->sysfs_root && m->procfs_root) ? 0 : -ENOMEM;
        struct health_paths paths = {.sysfs_root = m->sysfs_root, .procfs_root = m->procfs_root};
        for (size_t i = 0; r >= 0 && i < cfg->health.n_disks && i < HEALTH_MAX_DISKS; i++) {
                m->disk_paths[i] = strdup(cfg->health.disks[i]);
                if (!m->disk_paths[i])
                        r = -ENOMEM;
                else
                        paths.disk_paths[paths.n_disks++] = m->disk_paths[m->n_disks++];
        }
        if (r >= 0)
                r = health_collector_new(&paths, &m->collector);
        uint64_t now = 0;
        (void) sd_event_now(event, CLOCK_MONOTONIC, &now);
        if (r >= 0) {
                struct health_policy_config pc;
                build_policy_config(cfg, &pc);
                health_policy_init(&m->policy, &pc, now);
                m->poll_usec = (uint64_t) cfg->health.poll_interval_ms * 1000ULL;
                m->report_usec = (uint64_t) cfg->health.report_interval_sec * 1000000ULL;
                m->report_start_usec = now;
                r = sd_event_add_time(event, &m->timer, CLOCK_MONOTONIC, now, 1000, on_timer, m);
        }
        if (r < 0) {
                health_monitor_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void health_monitor_reconfigure(struct health_monitor *m, const struct agent_config *cfg) {
        struct health_policy_config pc;
        build_policy_config(cfg, &pc);
        m->policy.config = pc; /* levels and zone states stay */
        m->poll_usec = (uint64_t) cfg->health.poll_interval_ms * 1000ULL;
        m->report_usec = (uint64_t) cfg->health.report_interval_sec * 1000000ULL;
}

bool health_monitor_alive(const struct health_monitor *m, uint64_t now_usec, char *why, size_t size) {
        uint64_t allowed = 3 * m->poll_usec;
        if (allowed < 5000000)
                allowed = 5000000;
        if (m->polls > 0 && now_usec - m->last_poll_usec > allowed) {
                snprintf(why, size, "the health monitor has not polled for %.1f s",
                         (double) (now_usec - m->last_poll_usec) / 1e6);
                return false;
        }
        return true;
}

bool health_monitor_gate(struct health_monitor *m, char *why, size_t size) {
        uint64_t now = 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (!health_monitor_alive(m, now, why, size))
                return false;
        if (m->policy.level >= HEALTH_CRITICAL) {
                snprintf(why, size, "thermal/power level is critical: %s", m->policy.driver);
                return false;
        }
        if (m->runtime && !runtime_critical_workloads_ok(m->runtime, why, size))
                return false;
        snprintf(why, size, "agent up, critical workloads healthy, level %s", health_level_to_string(m->policy.level));
        return true;
}

json_t *health_monitor_status_json(struct health_monitor *m) {
        char summary[200];
        snprintf(summary, sizeof(summary), "level %s: %s; %zu zones, %zu problems",
                 health_level_to_string(m->policy.level), m->policy.driver, m->snapshot->n_zones,
                 m->snapshot->n_problems);
        return json_pack("{s:s,s:s,s:s}", "state", "active", "level", health_level_to_string(m->policy.level),
                         "summary", summary);
}

json_t *health_monitor_json(struct health_monitor *m) {
        uint64_t now = 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        json_t *zones = json_array();
        for (size_t i = 0; zones && i < m->snapshot->n_zones; i++) {
                const struct thermal_zone *z = &m->snapshot->zones[i];
                enum health_level zl = HEALTH_NOMINAL;
                for (size_t k = 0; k < m->policy.n_zones; k++)
                        if (streq(m->policy.zones[k].name, z->name))
                                zl = m->policy.zones[k].level;
                json_array_append_new(zones, json_pack("{s:s,s:s,s:b,s:o?,s:s}", "name", z->name, "type", z->type,
                                                       "valid", z->valid, "temp_c",
                                                       z->valid ? json_real((double) z->temp_mc / 1000.0) : NULL,
                                                       "level", health_level_to_string(zl)));
        }
        char why[256];
        bool gate = health_monitor_gate(m, why, sizeof(why));
        struct health_actions a = m->applied;
        json_t *events = m->events ? event_queue_tail_json(m->events, 20, NULL) : json_array();
        const char *sun = m->runtime ? runtime_sunlit_wait(m->runtime) : "";
        return json_pack("{s:s,s:f,s:s,s:o,s:o,s:{s:b,s:i,s:s},s:{s:b,s:s?},s:{s:b,s:s},s:o,s:o}",
                         "level", health_level_to_string(m->policy.level),
                         "level_since_sec", (double) (now - m->policy.level_since_usec) / 1e6,
                         "driver", m->policy.driver,
                         "actions", actions_json(&a),
                         "zones", zones,
                         "power", "on_battery", m->snapshot->on_battery, "battery_percent", m->snapshot->battery_capacity,
                         "level", health_level_to_string(m->policy.power_level),
                         "sunlit", "may_run", sun[0] == '\0', "waiting", sun[0] ? sun : NULL,
                         "gate", "pass", gate, "why", why,
                         "readings", health_snapshot_to_json(m->snapshot),
                         "events", events);
}

const struct health_snapshot *health_monitor_snapshot(const struct health_monitor *m) {
        return m && m->polls > 0 ? m->snapshot : NULL;
}
