/*
 * What each node said it takes (docs/protocol.md, "Format 2"): zstd answers, and its
 * dictionary. A node of format 2 says it once, not in every request; the controller keeps
 * it here, in memory, for the node's later requests on any connection. Bounded: at most
 * max nodes, the one used longest ago forgotten first; a node forgotten (or never heard
 * of, as after a restart) is told what the controller takes, and says it again. Pure (the
 * time is passed in), not locked: the caller locks.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/sync-request.h"

#define NODE_TAKES_MAX 4096

struct node_takes {
        char node[API_ID_MAX + 1]; /* "": a free slot */
        bool zstd;
        uint32_t dictionary_id; /* 0: none */
        int64_t used;
};

struct node_takes_table {
        struct node_takes *entries; /* owned, max of them */
        size_t max;
};

/* 0 or -ENOMEM. */
int node_takes_init(struct node_takes_table *t, size_t max);
void node_takes_done(struct node_takes_table *t);

/* What node said it takes, now. -EINVAL: not a node id of at most API_ID_MAX bytes. */
int node_takes_set(struct node_takes_table *t, const char *node, bool zstd, uint32_t dictionary_id,
                   int64_t now);

/* What node said last (its use noted at now), or NULL: nothing kept. */
const struct node_takes *node_takes_get(struct node_takes_table *t, const char *node, int64_t now);
