/*
 * Containerless sandboxes: start a host binary in its own namespaces, on a root built
 * only from the binds it asked for, with capabilities dropped, no_new_privs and seccomp.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/filter.h>

#include "runtime/sandbox-init.h"
#include "runtime/workload-spec.h"

/* Where `make install` puts the sandbox's init (runtime.sandbox_init in the config). */
#define SANDBOX_INIT_PATH LIBEXECDIR "/orbit-agent/orbit-sandbox-init"

/* Where a start failed, so the operator reads "mount /usr: No such file or directory". */
struct sandbox_error {
        int error;          /* errno value */
        char message[480];  /* what was being done, with the object */
};

/* Called in the agent after the sandbox's first process exists but before it goes on:
 * attach it to its cgroup here. A negative return aborts the start. */
typedef int (*sandbox_prestart_fn)(pid_t pid, void *userdata);

struct sandbox_params {
        const struct workload_spec *spec;
        const char *root_dir;   /* an empty host directory where the root is assembled */
        uid_t uid;              /* resolved from spec->user (see sandbox_resolve_ids); with a */
        gid_t gid;              /* user namespace these are ids inside it */
        /*
         * With a user namespace: inside ids 0..host_id_count-1 map to host ids from
         * host_id_base (the workload's own slice, runtime/id-range.h), for uids and gids.
         * uid and gid must be below host_id_count.
         */
        uint32_t host_id_base, host_id_count;
        const struct sock_fprog *seccomp; /* compiled filter, or NULL for none */
        int stdout_fd, stderr_fd;         /* where the workload writes; -1 for /dev/null */
        /*
         * Read ends of the stdout/stderr pipes, or -1. The sandbox's init holds a copy
         * of each (and of its status pipe) so that the workload never gets SIGPIPE
         * when the agent restarts, and a new agent can take them back with
         * sandbox_adopt().
         */
        int stdout_read_fd, stderr_read_fd;
        sandbox_prestart_fn prestart;
        void *prestart_userdata;
        /*
         * The sandbox's init binary (orbit-sandbox-init, statically linked) on the host;
         * NULL for SANDBOX_INIT_PATH. Opened before the root is built and exec'd from
         * that descriptor, so the sandbox root need not contain it. Not used by
         * sandbox_exec_in().
         */
        const char *init_path;
        /*
         * With a user namespace: read-only binds of paths at or below these (NULL-ended)
         * are opened by the agent as host root and handed to the child as detached trees,
         * as the spec's app tree always is; so they may live in a directory closed to the
         * workload's user (the agent's 0700 state dir). NULL for none.
         */
        const char *const *handed;
};

struct sandbox_process {
        pid_t pid;       /* the sandbox's init (pid 1 inside when it has a pid namespace);
                          * SANDBOX_INIT_COMM is its comm */
        int pidfd;       /* for the event loop; owned */
        int status_fd;   /* read end: the workload's wait status, 4 bytes, when it ends */
};

/* Resolve user/group names or numeric ids from the spec (host passwd/group). */
int sandbox_resolve_ids(const struct workload_spec *spec, uid_t *ret_uid, gid_t *ret_gid,
                        char *msg, size_t msg_size);

/*
 * Start the workload. Returns 0 once the program was exec'd inside the sandbox (so a
 * missing binary, a bad bind or a refused limit fails here, with *err filled), or a
 * negative errno.
 */
int sandbox_spawn(const struct sandbox_params *params, struct sandbox_process *ret,
                  struct sandbox_error *err);

/*
 * Run argv (a health probe) inside a running sandbox: the workload's namespaces, its
 * user, capabilities, no_new_privs and seccomp program (params as for the start), its
 * environment, output to /dev/null. params->prestart attaches it to the cgroup. The
 * returned pid is a helper whose exit status is the probe's (128+signal if killed).
 */
int sandbox_exec_in(const struct sandbox_process *target, const struct sandbox_params *params,
                    char *const argv[], pid_t *ret_pid, int *ret_pidfd, struct sandbox_error *err);

/*
 * After the sandbox's init exited with init_status (from waitid/waitpid), read what
 * happened to the workload itself: its wait status if the init reported one, else the
 * init's own status. Closes status_fd.
 */
int sandbox_collect_status(struct sandbox_process *p, int init_status);

void sandbox_process_close(struct sandbox_process *p);

/*
 * Take over a running sandbox whose init is pid (after an agent restart): a pidfd for
 * it, and copies of the status pipe and the log pipes' read ends that the init holds.
 * With own_pid_namespace the init must be pid 1 of its namespace. -ESRCH if pid is gone
 * or is not a sandbox init. The caller also checks that its parent is outside the group.
 */
int sandbox_adopt(pid_t pid, bool own_pid_namespace, struct sandbox_process *ret,
                  int *ret_stdout_read, int *ret_stderr_read);
