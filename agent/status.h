/* The node status document that `orbitctl status` shows: pure assembly from plain data. */
#pragma once

#include <stdint.h>

#include <jansson.h>

#include "agent/agent-config.h"
#include "agent/node-state.h"

struct agent_status_input {
        const struct node_state *node;
        const struct agent_config *config;
        uint64_t uptime_usec;
        uint64_t config_reloads, config_reload_failures;
        const char *last_reload_error; /* NULL or "" when the last reload worked */
        json_t *runtime; /* the runtime's own section, or NULL when it is not running */
        json_t *health;  /* likewise for health */
        json_t *update;  /* and for updates */
        json_t *link;    /* and for the controller link */
        json_t *loop;    /* the event loop's costs (loop_stats_json), or NULL */
};

/* Build the status object (see docs/control-protocol.md). NULL on ENOMEM. */
json_t *agent_status_build(const struct agent_status_input *in);
