/* A token bucket per node: see node-rate.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/node-rate.h"
#include "lib/macro.h"

int node_rate_init(struct node_rate *r, unsigned per_minute, unsigned burst) {
        *r = (struct node_rate){.per_usec = per_minute / 60e6, .burst = burst ? burst : 1};
        if (per_minute == 0)
                return 0;
        r->slots = calloc(NODE_RATE_SLOTS, sizeof(*r->slots));
        return r->slots ? 0 : -ENOMEM;
}

void node_rate_done(struct node_rate *r) {
        free(r->slots);
        *r = (struct node_rate){};
}

static uint32_t hash(const char *s) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 16777619u;
        return h;
}

bool node_rate_take(struct node_rate *r, const char *node, int64_t now_usec, int64_t *ret_retry_sec) {
        if (!r->slots || !node || strlen(node) > API_ID_MAX)
                return true;
        uint32_t h = hash(node);
        struct node_rate_slot *e = NULL, *oldest = NULL;
        /* Slots are never freed, so the node is not past the first free one of its probe. */
        for (unsigned i = 0; i < NODE_RATE_PROBE && !e; i++) {
                struct node_rate_slot *s = &r->slots[(h + i) % NODE_RATE_SLOTS];
                if (streq(s->node, node))
                        e = s;
                else if (!s->node[0] || !oldest || s->at_usec < oldest->at_usec)
                        oldest = s;
                if (!s->node[0])
                        break;
        }
        if (!e) { /* a free slot, or the one heard from longest ago on the probe */
                e = oldest;
                snprintf(e->node, sizeof(e->node), "%s", node);
                e->tokens = r->burst;
                e->at_usec = now_usec;
        }
        if (now_usec > e->at_usec) {
                e->tokens += (double) (now_usec - e->at_usec) * r->per_usec;
                if (e->tokens > r->burst)
                        e->tokens = r->burst;
                e->at_usec = now_usec;
        }
        if (e->tokens >= 1.0) {
                e->tokens -= 1.0;
                return true;
        }
        double wait_usec = (1.0 - e->tokens) / r->per_usec;
        int64_t sec = (int64_t) ((wait_usec + 999999.0) / 1e6); /* rounded up */
        *ret_retry_sec = sec > 0 ? sec : 1;
        return false;
}
