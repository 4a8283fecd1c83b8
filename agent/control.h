/* The control socket server: JSON lines over a unix socket, on the sd-event loop. */
#pragma once

#include <systemd/sd-event.h>

#include "agent-config.h"
#include "control-proto.h"

/*
 * A method handler. On success return 0 and set *ret_result (owned by the caller). On
 * failure return the error kind + 1 and write a message into msg.
 */
typedef int (*control_method_fn)(void *userdata, json_t *params, json_t **ret_result, char *msg,
                                 size_t msg_size);

struct control_method {
        const char *name;
        control_method_fn handler;
};

struct control_server;

/*
 * Listen at path (a stale socket there is replaced; the caller holds the state lock so
 * no other agent owns it). The socket is mode 0600. methods ends with a NULL name.
 */
int control_server_new(sd_event *event, const char *path, const struct agent_control_config *limits,
                       const struct control_method *methods, void *userdata,
                       struct control_server **ret);

/*
 * Peers are accepted only as host root in the agent's pid and user namespaces
 * (agent/control-peer.h); with a parent set, also only outside every cgroup at or below
 * it (runtime.cgroup_parent, where workloads run).
 */
int control_server_set_workload_cgroup_parent(struct control_server *s, const char *parent);

/* New limits apply to connections accepted from now on. */
void control_server_set_limits(struct control_server *s, const struct agent_control_config *limits);

unsigned control_server_client_count(const struct control_server *s);

/* Close every connection and the socket, and remove the socket file. */
void control_server_free(struct control_server *s);
