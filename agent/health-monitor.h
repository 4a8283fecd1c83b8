/*
 * The health monitor: collects readings on a timer, runs the thermal/power policy, pulls
 * the runtime's levers when the level changes, queues level changes and periodic
 * reports as events, and answers the health gate and the watchdog's question.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "agent/agent-config.h"
#include "agent/events.h"
#include "runtime/runtime.h"

struct health_monitor;
struct health_snapshot;

/* rt may be NULL (runtime disabled): levels are still computed and reported. */
int health_monitor_new(sd_event *event, const struct agent_config *cfg, struct runtime *rt,
                       struct event_queue *events, struct health_monitor **ret);
void health_monitor_free(struct health_monitor *m);

/* Take the new limits and intervals; the current levels stay (no reset on reload). */
void health_monitor_reconfigure(struct health_monitor *m, const struct agent_config *cfg);

/* Is the monitor itself running (polled recently)? Feeds the watchdog decision. */
bool health_monitor_alive(const struct health_monitor *m, uint64_t now_usec, char *why, size_t size);

/*
 * The health gate that commits an update: not at a critical thermal/power level, every
 * critical workload running and healthy, and the monitor alive.
 */
bool health_monitor_gate(struct health_monitor *m, char *why, size_t size);

/* For orbitctl health: levels, zones, actions in force, readings and recent events. */
json_t *health_monitor_json(struct health_monitor *m);

/* The latest snapshot (for the usage meter: /proc/stat, the power sensors); NULL before the
 * first poll. Valid until the next poll. */
const struct health_snapshot *health_monitor_snapshot(const struct health_monitor *m);

/* The health section of `orbitctl status`. */
json_t *health_monitor_status_json(struct health_monitor *m);
