/* The control socket server: JSON lines over a unix socket, on the sd-event loop. */
#pragma once

#include <systemd/sd-event.h>

#include "agent/agent-config.h"
#include "agent/control-proto.h"

/*
 * Carries out one request (agent/actions.h): 0 with *ret_result, or a negative errno;
 * *ret_message (either way, may stay NULL) says what was done or why not. Both belong to
 * the caller. The errno becomes the wire code through control_error_from_errno.
 */
typedef int (*control_dispatch_fn)(void *userdata, const char *method, json_t *params, json_t **ret_result,
                                   char **ret_message);

struct control_server;

/*
 * Listen at path (a stale socket there is replaced; the caller holds the state lock so
 * no other agent owns it). The socket is mode 0600. Every request goes to dispatch.
 */
int control_server_new(sd_event *event, const char *path, const struct agent_control_config *limits,
                       control_dispatch_fn dispatch, void *userdata, struct control_server **ret);

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
