/*
 * Who may use the control socket: host root, in the agent's own pid and user
 * namespaces, outside every workload's cgroup. Pure: the facts about a peer come in
 * (read by agent/control.c from SO_PEERCRED, SO_PEERPIDFD and /proc), a verdict goes out.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum control_peer_verdict {
        CONTROL_PEER_ACCEPT,
        CONTROL_PEER_REFUSE_UNKNOWN,        /* credentials or /proc could not be read */
        CONTROL_PEER_REFUSE_UID,            /* not uid 0 */
        CONTROL_PEER_REFUSE_USER_NAMESPACE, /* not in the agent's user namespace */
        CONTROL_PEER_REFUSE_PID_NAMESPACE,  /* not in the agent's pid namespace */
        CONTROL_PEER_REFUSE_WORKLOAD,       /* in a workload's cgroup */
};

struct control_peer_facts {
        bool known;               /* credentials read and the process still the one that connected */
        pid_t pid;                /* as the agent sees it (0: in no namespace the agent sees) */
        uid_t uid;
        bool same_user_namespace; /* /proc/PID/ns/user is the agent's */
        bool same_pid_namespace;  /* /proc/PID/ns/pid is the agent's */
        const char *cgroups;      /* /proc/PID/cgroup as read, lines "N:controllers:/path" */
        const char *workload_cgroup_parent; /* runtime.cgroup_parent, e.g. "orbit-agent"; NULL: none */
};

/*
 * Pure: accept or refuse; why (for the refused peer and the log) names the reason, e.g.
 * "in a workload cgroup (/orbit-agent/ticker)".
 */
enum control_peer_verdict control_peer_decide(const struct control_peer_facts *f, char *why, size_t size);
