/* Who may use the control socket: the pure decision. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "agent/control-peer.h"
#include "lib/macro.h"

/* Is path (from a /proc/PID/cgroup line) the parent's group or below it? */
static bool under_parent(const char *path, size_t len, const char *parent) {
        while (*parent == '/')
                parent++;
        size_t n = strlen(parent);
        while (n > 0 && parent[n - 1] == '/')
                n--;
        if (n == 0 || len < n + 1 || path[0] != '/' || strncmp(path + 1, parent, n) != 0)
                return false;
        return len == n + 1 || path[n + 1] == '/';
}

/* The first cgroup line whose path is a workload's, copied to out; false when none. */
static bool find_workload_cgroup(const char *cgroups, const char *parent, char *out, size_t size) {
        for (const char *line = cgroups; line && *line;) {
                const char *end = strchrnul(line, '\n');
                /* "hierarchy-id:controllers:path": the path follows the second colon */
                const char *c1 = memchr(line, ':', (size_t) (end - line));
                const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t) (end - c1 - 1)) : NULL;
                if (c2) {
                        const char *path = c2 + 1;
                        size_t len = (size_t) (end - path);
                        if (under_parent(path, len, parent)) {
                                snprintf(out, size, "%.*s", (int) len, path);
                                return true;
                        }
                }
                line = *end ? end + 1 : end;
        }
        return false;
}

enum control_peer_verdict control_peer_decide(const struct control_peer_facts *f, char *why, size_t size) {
        if (!f->known || f->pid <= 0) {
                snprintf(why, size, "its credentials and process could not be read");
                return CONTROL_PEER_REFUSE_UNKNOWN;
        }
        if (f->uid != 0) {
                snprintf(why, size, "uid %u is not root", (unsigned) f->uid);
                return CONTROL_PEER_REFUSE_UID;
        }
        if (!f->same_user_namespace) {
                snprintf(why, size, "in another user namespace");
                return CONTROL_PEER_REFUSE_USER_NAMESPACE;
        }
        if (!f->same_pid_namespace) {
                snprintf(why, size, "in another pid namespace");
                return CONTROL_PEER_REFUSE_PID_NAMESPACE;
        }
        if (!f->cgroups) {
                snprintf(why, size, "its cgroups could not be read");
                return CONTROL_PEER_REFUSE_UNKNOWN;
        }
        char cg[256];
        if (f->workload_cgroup_parent && find_workload_cgroup(f->cgroups, f->workload_cgroup_parent, cg, sizeof(cg))) {
                snprintf(why, size, "in a workload cgroup (%s)", cg);
                return CONTROL_PEER_REFUSE_WORKLOAD;
        }
        snprintf(why, size, "host root");
        return CONTROL_PEER_ACCEPT;
}
