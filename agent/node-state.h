/* Node identity and boot epoch, kept in the state dir as checksummed state files. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "agent/agent-config.h"

struct node_state {
        char node_id[NODE_ID_MAX + 1];
        bool node_id_from_config;
        uint64_t boot_epoch;      /* incremented at every start of the agent */
        char boot_id[33];         /* random per start: tells two starts apart even if the epoch is lost */
        bool boot_epoch_recovered; /* came from the last good copy */
        bool boot_epoch_reset;     /* no copy verified: counting started again */
};

/* Pure: format and parse the state file payloads. */
int node_identity_format(const char *node_id, char **ret);
int node_identity_parse(const char *payload, char *node_id, size_t size);
int boot_epoch_format(uint64_t epoch, char **ret);
int boot_epoch_parse(const char *payload, uint64_t *ret);

/* Pure: a new random node id "node-<16 hex>" from the given random bytes. */
void node_id_generate(const uint8_t random_bytes[8], char *buf, size_t size);

/*
 * Load (or create) the identity, then count this start: the incremented epoch is on
 * disk before this returns, so two starts never share an epoch unless both copies of
 * the epoch file are lost (then boot_epoch_reset is set and reported).
 */
int node_state_start(const struct agent_config *config, struct node_state *ret);
