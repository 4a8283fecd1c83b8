/* The running agent: what main() owns and the control methods read. */
#pragma once

#include <stdint.h>

#include <systemd/sd-event.h>

#include "agent/agent-config.h"
#include "agent/control.h"
#include "agent/node-state.h"
#include "agent/events.h"
#include "agent/health-monitor.h"
#include "runtime/runtime.h"
#include "agent/update-manager.h"
#include "agent/link.h"
#include "agent/desired.h"
#include "agent/loop.h"

struct agent {
        sd_event *event;
        char *config_path;
        struct agent_config config;
        struct node_state node;
        uint64_t started_usec; /* CLOCK_MONOTONIC */
        struct control_server *control;
        struct runtime *runtime; /* NULL when disabled */
        struct event_queue *events;
        struct health_monitor *health; /* NULL when disabled */
        struct update_manager *update; /* NULL when disabled */
        struct link *link;             /* NULL when disabled */
        struct desired *desired;       /* NULL without a link or a runtime */
        struct usage *usage;           /* NULL without a runtime or with usage.enabled false */
        struct link_pass pass;         /* the contact now, its budgets: the link's and the update manager's */
        sd_event_source *watchdog_timer;
        sd_event_source *state_problems_source; /* state_problems_fd: statefile noted a problem */
        int state_problems_fd;
        uint64_t watchdog_usec;
        bool watchdog_withheld;
        int lock_fd;
        uint64_t config_reloads, config_reload_failures;
        char last_reload_error[1024];
        struct loop_stats loop; /* the cost of each dispatch of the event loop */
};
