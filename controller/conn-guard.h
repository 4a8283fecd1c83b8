/*
 * Connections that have not shown a credential yet (#18 item 7). libmicrohttpd bounds
 * connections in number and closes an idle one, but a peer that sends a byte now and then
 * is never idle, and one with many addresses can hold every slot: the port is shut for
 * nodes while nobody has authenticated. The guard keeps every open connection in the order
 * it came, and tells which to close:
 * - when the house is nearly full (soft limit), the oldest connection that has made no
 *   authorized request yet goes, so a newcomer always finds room while an attacker's
 *   connections push out only each other (and a node's handshake, only when more new
 *   connections than the soft limit arrive during it);
 * - a connection that has made no authorized request within the request deadline goes,
 *   however busy it keeps itself.
 * - past the hard limit, when every other connection is trusted, the newcomer goes (what
 *   libmicrohttpd's own limit would do; with a thread pool its limit is per thread).
 * A connection is trusted once a request on it is authorized (a node, an operator, a role's
 * token); from then on only the idle timeout closes it.
 * Pure (the time is passed in), not locked: the caller locks.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn_track {
        struct conn_track *prev, *next;
        int fd;
        int64_t started_usec;
        bool trusted;
        bool shed; /* told to close: not counted again */
};

struct conn_guard {
        struct conn_track *head, *tail; /* oldest first */
        unsigned open;                  /* tracked connections not yet shed */
        unsigned soft_limit;            /* 0: no shedding by number */
        unsigned hard_limit;            /* past it a newcomer is shed when nobody else can be; 0: none */
        int64_t deadline_usec;          /* 0: no request deadline */
};

void conn_guard_init(struct conn_guard *g, unsigned soft_limit, unsigned hard_limit, int64_t deadline_usec);

/*
 * A new connection t (fd, started_usec set by the caller; kept until conn_guard_remove).
 * Returns the fd to shed to make room, or -1: past the soft limit the oldest untrusted one
 * but t; when there is none and the hard limit is passed, t itself.
 */
int conn_guard_add(struct conn_guard *g, struct conn_track *t);
/* A request on t was authorized. */
void conn_guard_trust(struct conn_guard *g, struct conn_track *t);
/* t closed. */
void conn_guard_remove(struct conn_guard *g, struct conn_track *t);
/*
 * Connections past the request deadline at now_usec, oldest first, marked shed: up to max of
 * their fds into fds. Returns how many.
 */
size_t conn_guard_expired(struct conn_guard *g, int64_t now_usec, int *fds, size_t max);
