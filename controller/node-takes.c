/* What each node said it takes, kept in memory: see node-takes.h. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controller/node-takes.h"
#include "lib/macro.h"

int node_takes_init(struct node_takes_table *t, size_t max) {
        *t = (struct node_takes_table){.max = max};
        t->entries = calloc(max ? max : 1, sizeof(*t->entries));
        return t->entries ? 0 : -ENOMEM;
}

void node_takes_done(struct node_takes_table *t) {
        free(t->entries);
        *t = (struct node_takes_table){};
}

static struct node_takes *find(struct node_takes_table *t, const char *node) {
        for (size_t i = 0; i < t->max; i++)
                if (t->entries[i].node[0] && streq(t->entries[i].node, node))
                        return &t->entries[i];
        return NULL;
}

int node_takes_set(struct node_takes_table *t, const char *node, bool zstd, uint32_t dictionary_id,
                   int64_t now) {
        size_t n = node ? strlen(node) : 0;
        if (n == 0 || n > API_ID_MAX || t->max == 0)
                return -EINVAL;
        struct node_takes *e = find(t, node);
        for (size_t i = 0; !e && i < t->max; i++)
                if (!t->entries[i].node[0])
                        e = &t->entries[i];
        if (!e) { /* full: the one used longest ago is forgotten */
                e = &t->entries[0];
                for (size_t i = 1; i < t->max; i++)
                        if (t->entries[i].used < e->used)
                                e = &t->entries[i];
        }
        *e = (struct node_takes){.zstd = zstd, .dictionary_id = dictionary_id, .used = now};
        memcpy(e->node, node, n + 1);
        return 0;
}

const struct node_takes *node_takes_get(struct node_takes_table *t, const char *node, int64_t now) {
        struct node_takes *e = node && node[0] ? find(t, node) : NULL;
        if (e)
                e->used = now;
        return e;
}
