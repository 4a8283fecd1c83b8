/* Workload specs: the JSON that describes one sandboxed workload, parsed strictly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/json-util.h"

#define WORKLOAD_NAME_MAX 64
#define WORKLOAD_MAX_ARGS 256
#define WORKLOAD_MAX_ENV 256
#define WORKLOAD_MAX_MOUNTS 64
#define WORKLOAD_MAX_CAPS 64
#define WORKLOAD_MAX_MODELS 16
#define WORKLOAD_SPEC_MAX_SIZE (256 * 1024)

enum workload_priority {
        WORKLOAD_PRIORITY_CRITICAL,
        WORKLOAD_PRIORITY_NORMAL,
        WORKLOAD_PRIORITY_BEST_EFFORT,
        _WORKLOAD_PRIORITY_MAX,
};

enum workload_restart {
        WORKLOAD_RESTART_NO,
        WORKLOAD_RESTART_ON_FAILURE,
        WORKLOAD_RESTART_ALWAYS,
};

/* Namespaces, as a bit set. */
enum {
        WORKLOAD_NS_PID = 1 << 0,
        WORKLOAD_NS_MOUNT = 1 << 1,
        WORKLOAD_NS_IPC = 1 << 2,
        WORKLOAD_NS_UTS = 1 << 3,
        WORKLOAD_NS_NET = 1 << 4,
        WORKLOAD_NS_USER = 1 << 5,
        WORKLOAD_NS_CGROUP = 1 << 6,
};
/* Without "privileged": true these can never be turned off (docs/workload-spec.md). */
#define WORKLOAD_NS_MANDATORY                                                            \
        (WORKLOAD_NS_PID | WORKLOAD_NS_MOUNT | WORKLOAD_NS_IPC | WORKLOAD_NS_UTS |       \
         WORKLOAD_NS_NET | WORKLOAD_NS_USER)
#define WORKLOAD_NS_DEFAULT (WORKLOAD_NS_MANDATORY | WORKLOAD_NS_CGROUP)
/* A privileged spec that lists no namespaces: host ids, everything else separate. */
#define WORKLOAD_NS_DEFAULT_PRIVILEGED (WORKLOAD_NS_DEFAULT & ~WORKLOAD_NS_USER)

/*
 * Limits a spec gets when it does not set its own, for a small board (2 cores, 1-4 GiB)
 * that runs a handful of workloads: enough for a threaded inference server, not enough
 * for one workload's fork bomb or leak to take the board. The agent configuration
 * (sandbox.defaults) can change them; "max" in a spec lifts a limit explicitly.
 */
#define WORKLOAD_DEFAULT_PIDS_MAX 256
#define WORKLOAD_DEFAULT_MEMORY_MAX (256LL << 20)
#define WORKLOAD_DEFAULT_NOFILE 1024
#define WORKLOAD_DEFAULT_UMASK 0022
/* resources.pids_max / memory_max: "max" in the spec (0 there means not set). */
#define WORKLOAD_LIMIT_MAX (-1)

enum workload_mount_kind {
        WORKLOAD_MOUNT_RO_BIND,
        WORKLOAD_MOUNT_RW_BIND,
        WORKLOAD_MOUNT_TMPFS,
};

struct workload_mount {
        enum workload_mount_kind kind;
        char *source; /* host path; NULL for tmpfs */
        char *target; /* path inside the sandbox */
        bool optional; /* a missing source is skipped instead of failing the start */
        /* The spec's "app" (#19): a read-only bind whose source the runtime sets at each
         * start to the app slot member's tree (NULL until then). */
        bool app;
        uint64_t size; /* tmpfs size in bytes, 0 = default */
        /* Where the spec wrote it, for messages about it after parsing. */
        unsigned line, column;
        char where[48]; /* "sandbox.ro_binds[2]" */
};

struct workload_rlimit {
        int resource; /* RLIMIT_* */
        uint64_t soft, hard;
};

struct workload_probe {
        bool enabled;
        char **exec; /* NULL-terminated argv, run inside the sandbox's namespaces */
        int64_t interval_sec, timeout_sec, failures;
};

struct workload_spec {
        char *name;
        char **exec; /* NULL-terminated argv; exec[0] is an absolute path */
        char **env;  /* NULL-terminated "KEY=VALUE" */
        char *cwd;
        char *user, *group; /* names or numeric ids inside the user namespace; NULL = root */
        enum workload_priority priority;
        char *tenant; /* whose usage it is (#19 item 5), NULL: none */
        /* Host ids (no user namespace unless listed) and optional namespaces: see docs. */
        bool privileged;

        struct {
                int64_t cpu_weight;      /* 1..10000, 0 = default */
                int64_t cpu_max_percent; /* of one core, 0 = unlimited */
                /* 0 = not set (the agent's default applies), WORKLOAD_LIMIT_MAX = "max";
                 * after workload_spec_apply_defaults 0 means unlimited. */
                int64_t memory_max;      /* bytes */
                int64_t pids_max;
                int64_t io_weight;       /* 1..10000, 0 = default */
        } resources;

        struct {
                unsigned namespaces;
                struct workload_mount mounts[WORKLOAD_MAX_MOUNTS];
                size_t n_mounts;
                char *seccomp; /* policy name or absolute path to a policy file */
                uint64_t capabilities; /* bit set of CAP_* kept; default none */
                bool no_new_privs;
                char *hostname;
                struct workload_rlimit rlimits[16];
                size_t n_rlimits;
                int umask; /* -1 = not set (the agent's default applies) */
        } sandbox;

        struct {
                enum workload_restart policy;
                int64_t initial_delay_ms, max_delay_ms;
                int64_t max_restarts; /* within window_sec; beyond it the workload is failed */
                int64_t window_sec;
        } restart;

        int64_t stop_timeout_sec;
        /* "run_when": "sunlit" (#19 item 4): run only outside eclipse and below the warm
         * level; stopped first when either comes, started again when both are gone. */
        bool sunlit_only;
        struct workload_probe probe;
        char **models; /* NULL-terminated model names */
        /* "app": {"name", "version", "target"} (#19): the workload's files come from an
         * app slot, bound read-only at target (default /app). name NULL: no app. */
        struct {
                char *name;
                char *version; /* NULL: whatever the slot's current member holds */
                char *target;
        } app;
};

/*
 * Pure: parse and validate a spec. Every problem goes into *problems with
 * source:line:column and the key. Returns 0 with *ret filled, or -EINVAL.
 */
int workload_spec_parse(const char *source, const char *text, size_t len,
                        struct workload_spec *ret, struct json_problems *problems);

/* Parse as above; on failure *ret_message (caller frees) has one line per problem. */
int workload_spec_parse_text(const char *source, const char *text, size_t len,
                             struct workload_spec *ret, char **ret_message);

/* Read a spec file; on failure *ret_message has one line per problem. */
int workload_spec_load_file(const char *path, struct workload_spec *ret, char **ret_message);

void workload_spec_free(struct workload_spec *s);

/* The agent's defaults for what a spec leaves unset (sandbox.defaults in its config). */
struct workload_defaults {
        int64_t pids_max;   /* 0 = unlimited */
        int64_t memory_max; /* bytes, 0 = unlimited */
        uint64_t nofile;    /* RLIMIT_NOFILE soft and hard */
        unsigned umask;
};
#define WORKLOAD_DEFAULTS_INIT                                                           \
        ((struct workload_defaults){.pids_max = WORKLOAD_DEFAULT_PIDS_MAX,               \
                                    .memory_max = WORKLOAD_DEFAULT_MEMORY_MAX,           \
                                    .nofile = WORKLOAD_DEFAULT_NOFILE,                   \
                                    .umask = WORKLOAD_DEFAULT_UMASK})

/*
 * Pure: fill what the spec left unset from d (NULL: the built-in defaults): pids_max,
 * memory_max ("max" becomes 0, unlimited), an RLIMIT_NOFILE entry when the spec has
 * none, the umask. Call once, after parsing, before the spec is used.
 */
void workload_spec_apply_defaults(struct workload_spec *s, const struct workload_defaults *d);

/* A host path a bind must neither cover nor lie inside, with what it is for messages. */
struct workload_protected_path {
        const char *path; /* absolute, symlinks resolved */
        const char *what; /* "the agent's state dir" */
};

/*
 * Pure: refuse binds that would expose the agent or the host. A bind is refused when its
 * source (as written, or resolved[i] for mount i when not NULL: the real path) covers a
 * protected path ("/" covers everything) or lies inside one, unless it lies inside one
 * of the allowed paths (the models dir inside the state dir). The spec's app mount is not
 * checked (its source is the member the runtime picked). Every refused bind becomes
 * one line "source:line:column: sandbox.ro_binds[i]: ..." in *ret_message (caller
 * frees). Returns 0, -EPERM when a bind is refused, or -ENOMEM.
 */
int workload_spec_check_binds(const char *source, const struct workload_spec *s,
                              const char *const *resolved,
                              const struct workload_protected_path *protected_paths, size_t n_protected,
                              const char *const *allowed, size_t n_allowed, char **ret_message);

/* Pure: is path equal to dir or below it (both absolute, clean)? */
bool workload_path_is_under(const char *path, const char *dir);

bool workload_name_is_valid(const char *name);
const char *workload_priority_to_string(enum workload_priority p);
const char *workload_restart_to_string(enum workload_restart r);

/* Pure: an octal umask string ("0022", "027") -> mode bits, at most 0777. -EINVAL. */
int workload_parse_umask(const char *text, unsigned *ret);

/* Pure: "64M", "1G", "512K", "100" (bytes) -> bytes. -EINVAL or -ERANGE. */
int parse_size(const char *s, uint64_t *ret);

/* Pure: "CAP_NET_BIND_SERVICE" or "net_bind_service" -> capability number; -EINVAL. */
int capability_from_name(const char *name);
const char *capability_to_name(int cap);

/* Pure: exponential backoff for the n-th consecutive restart (n >= 1), capped. */
uint64_t workload_restart_delay_ms(const struct workload_spec *s, unsigned n);
