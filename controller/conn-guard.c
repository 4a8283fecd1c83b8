/* Connections that have not shown a credential yet: see conn-guard.h. */
#include "config.h"

#include "controller/conn-guard.h"

void conn_guard_init(struct conn_guard *g, unsigned soft_limit, unsigned hard_limit, int64_t deadline_usec) {
        *g = (struct conn_guard){.soft_limit = soft_limit, .hard_limit = hard_limit, .deadline_usec = deadline_usec};
}

/* The oldest connection not trusted and not yet shed: the list is in arrival order. */
static struct conn_track *oldest_untrusted(struct conn_guard *g, const struct conn_track *but) {
        for (struct conn_track *t = g->head; t; t = t->next)
                if (!t->trusted && !t->shed && t != but)
                        return t;
        return NULL;
}

int conn_guard_add(struct conn_guard *g, struct conn_track *t) {
        t->prev = g->tail;
        t->next = NULL;
        t->trusted = t->shed = false;
        if (g->tail)
                g->tail->next = t;
        else
                g->head = t;
        g->tail = t;
        g->open++;
        if (g->soft_limit == 0 || g->open <= g->soft_limit)
                return -1;
        struct conn_track *victim = oldest_untrusted(g, t);
        if (!victim && g->hard_limit && g->open > g->hard_limit)
                victim = t;
        if (!victim)
                return -1;
        victim->shed = true;
        g->open--;
        return victim->fd;
}

void conn_guard_trust(struct conn_guard *g, struct conn_track *t) {
        (void) g;
        t->trusted = true;
}

void conn_guard_remove(struct conn_guard *g, struct conn_track *t) {
        if (t->prev)
                t->prev->next = t->next;
        else
                g->head = t->next;
        if (t->next)
                t->next->prev = t->prev;
        else
                g->tail = t->prev;
        if (!t->shed)
                g->open--;
        t->prev = t->next = NULL;
}

size_t conn_guard_expired(struct conn_guard *g, int64_t now_usec, int *fds, size_t max) {
        size_t n = 0;
        if (g->deadline_usec <= 0)
                return 0;
        /* arrival order: the first one within its deadline ends the walk among the untrusted,
         * but trusted ones are interleaved, so walk on until the start times pass the cut */
        int64_t cut = now_usec - g->deadline_usec;
        for (struct conn_track *t = g->head; t && n < max && t->started_usec <= cut; t = t->next) {
                if (t->trusted || t->shed)
                        continue;
                t->shed = true;
                g->open--;
                fds[n++] = t->fd;
        }
        return n;
}
