/*
 * How often each node may sync (#18 item 7): a token bucket per node, in memory, so that a
 * node (a bug, or a stolen node key) syncing in a loop costs the controller a table lookup
 * and a 429, not a TLS-decoded body parsed and an SQLite transaction each time. Bounded:
 * an open-addressed table of NODE_RATE_SLOTS; when the probe finds no room, the slot of the
 * node heard from longest ago on it is taken (that node starts again with a full bucket).
 * Pure (the time is passed in), not locked: the caller locks.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "proto/sync-request.h"

#define NODE_RATE_SLOTS 8192
#define NODE_RATE_PROBE 16

struct node_rate_slot {
        char node[API_ID_MAX + 1]; /* "": free */
        double tokens;
        int64_t at_usec; /* when tokens was counted */
};

struct node_rate {
        struct node_rate_slot *slots; /* NODE_RATE_SLOTS of them */
        double per_usec;              /* tokens back per microsecond */
        double burst;                 /* the bucket's size */
};

/* per_minute syncs a minute on average, burst at once; per_minute 0: no bound. 0 or -ENOMEM. */
int node_rate_init(struct node_rate *r, unsigned per_minute, unsigned burst);
void node_rate_done(struct node_rate *r);

/*
 * A sync of node at now_usec: true when it may go on (a token taken); false with
 * *ret_retry_sec (>= 1), when the next token is back.
 */
bool node_rate_take(struct node_rate *r, const char *node, int64_t now_usec, int64_t *ret_retry_sec);
