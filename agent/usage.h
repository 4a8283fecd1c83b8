/*
 * The usage meter on the agent's loop (#19 item 5, docs/usage.md): every usage.sample_sec
 * each workload's cgroup, /proc/stat and the board's power sensor are read into the
 * meter (agent/usage-meter.h); every usage.report_sec the state file <state_dir>/usage is
 * written and a usage.report record carries the cumulative totals to the ground.
 */
#pragma once

#include <jansson.h>
#include <systemd/sd-event.h>

#include "agent/agent-config.h"
#include "agent/desired.h"
#include "agent/events.h"
#include "agent/health-monitor.h"
#include "agent/update-manager.h"
#include "runtime/runtime.h"

struct usage;

struct usage_hooks {
        const struct agent_config *cfg; /* stays valid; replaced in place on reload */
        struct event_queue *events;
        struct runtime *runtime;       /* required */
        struct health_monitor *health; /* NULL: no CPU shares, no power: no energy */
        struct update_manager *update; /* NULL: no link bytes */
        struct desired *desired;       /* NULL: no deployments named */
};

/* Load the kept meter (a missing or unreadable one: a new meter, said in the log) and start. */
int usage_new(sd_event *event, const struct usage_hooks *hooks, struct usage **ret);
/* A last sample, kept; then freed. NULL is fine. */
void usage_free(struct usage *u);
/* The config was reloaded: the timer follows usage.sample_sec. */
void usage_reconfigure(struct usage *u);
/* For the status document: the meter, its reports, each entry's totals. */
json_t *usage_status_json(struct usage *u);
