/*
 * What the agent and the sandbox's init (orbit-sandbox-init, runtime/sandbox-init.c)
 * agree on: the descriptors the init is exec'd with, and the start report it writes.
 * The init is its own small static binary; this header is all it shares with the agent.
 */
#pragma once

/* The sandbox init's name (comm), how a restarted agent recognises it in a cgroup. */
#define SANDBOX_INIT_COMM "orbit-init"

/*
 * Descriptors the init starts with besides 0-2 (the workload's stdin/stdout/stderr).
 * None is close-on-exec when the init is exec'd; it marks all of them close-on-exec
 * before anything else, so the workload never inherits one.
 */
#define SANDBOX_INIT_FD_ERROR 3       /* start report to the agent; EOF = the workload exec'd */
#define SANDBOX_INIT_FD_STATUS 4      /* the workload's wait status (an int) to the agent */
#define SANDBOX_INIT_FD_KEEP_STATUS 5 /* read ends kept for a restarted agent (pidfd_getfd) */
#define SANDBOX_INIT_FD_KEEP_STDOUT 6
#define SANDBOX_INIT_FD_KEEP_STDERR 7
#define SANDBOX_INIT_FD_LAST SANDBOX_INIT_FD_KEEP_STDERR

/* One write of this to SANDBOX_INIT_FD_ERROR says what failed (same layout as sandbox_error). */
struct sandbox_init_report {
        int error;         /* errno value */
        char message[480]; /* what was being done, with the object */
};

/*
 * The init's argv: argv[0] is SANDBOX_INIT_COMM, argv[1] the workload's executable
 * (an absolute path inside the sandbox), argv[2...] the workload's own argv. Its
 * environment is the workload's, from the spec, and nothing else.
 */
