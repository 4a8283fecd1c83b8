/* What cgroup.c shares with its two backends (cgroup-v1.c, cgroup-v2.c); not public. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/cgroup.h"

enum cgroup_controller {
        CGROUP_CONTROLLER_CPU,
        CGROUP_CONTROLLER_CPUACCT, /* v1 only; v2 counts cpu time in core cpu.stat */
        CGROUP_CONTROLLER_MEMORY,
        CGROUP_CONTROLLER_PIDS,
        CGROUP_CONTROLLER_FREEZER, /* v1 only; v2 has the core cgroup.freeze */
        CGROUP_CONTROLLER_IO,      /* "io" on v2, "blkio" on v1 */
        CGROUP_CONTROLLER_DEVICES, /* v1 only; v2 uses a BPF_CGROUP_DEVICE program */
        CGROUP_CONTROLLER_MAX,
};

#define CGROUP_MASK(c) (1u << (c))

/* One implementation of the interface. Each function gets checked arguments. */
struct cgroup_backend {
        /* Find the controllers, set up the parent subtree; fill m->controllers. */
        int (*manager_init)(struct cgroup_manager *m, unsigned flags);
        /* Fill cg's paths; mkdir them when create is true, else -ENOENT if absent. */
        int (*group_init)(struct cgroup *cg, bool create);
        int (*apply_limits)(struct cgroup *cg, const struct cgroup_limits *limits);
        int (*attach_pid)(struct cgroup *cg, pid_t pid);
        /* Write the freeze request; the wait is shared (freeze_reached). */
        int (*request_frozen)(struct cgroup *cg, bool frozen);
        /* 1 when the kernel reports the requested state, 0 not yet, < 0 error. */
        int (*freeze_reached)(struct cgroup *cg, bool frozen);
        int (*get_stats)(struct cgroup *cg, struct cgroup_stats *ret);
        int (*kill_all)(struct cgroup *cg, int sig);
        int (*is_empty)(struct cgroup *cg);
        int (*destroy)(struct cgroup *cg);
        int (*restrict_devices)(struct cgroup *cg, const struct cgroup_device_rule *allow, size_t n);
};

extern const struct cgroup_backend cgroup_backend_v1;
extern const struct cgroup_backend cgroup_backend_v2;

struct cgroup_manager {
        enum cgroup_version version;
        const struct cgroup_backend *backend;
        char *root;           /* as given, without trailing '/' */
        char *parent;         /* relative, without leading or trailing '/' */
        unsigned controllers; /* CGROUP_MASK() of the usable controllers */
        unsigned ncpu;
        uint64_t freeze_timeout_usec;

        /* v2: <root>/<parent>. */
        char *parent_dir;

        /*
         * v1: the distinct hierarchies we use, as <root>/<mount>/<parent>, and for each
         * controller the index of its hierarchy (-1 when absent). The first hierarchy
         * is the one listed and shown in messages.
         */
        char *hierarchy_dir[CGROUP_CONTROLLER_MAX];
        size_t n_hierarchies;
        int hierarchy_of[CGROUP_CONTROLLER_MAX];
};

struct cgroup {
        struct cgroup_manager *manager;
        char *name;
        char *path;                       /* v2: the group; v1: the group in the first hierarchy */
        char *dir[CGROUP_CONTROLLER_MAX]; /* v1: the group in hierarchy i */
};

/* Controller name as the kernel spells it for this version, e.g. "blkio" for v1 io. */
const char *cgroup_controller_name(enum cgroup_version v, enum cgroup_controller c);

/* Join dir and file into a heap path; NULL on overflow of PATH_MAX or no memory. */
char *cgroup_join(const char *dir, const char *file);

/* Does <dir>/<file> exist? */
bool cgroup_file_exists(const char *dir, const char *file);

/*
 * Write value to <dir>/<file> in one write(2) (O_WRONLY|O_TRUNC, no O_CREAT: the
 * kernel makes the files). Logs 'cgroup: write "<value>" to <path>: <error>' on failure.
 */
int cgroup_write(const char *dir, const char *file, const char *value);

/* Same with a formatted value. */
int cgroup_writef(const char *dir, const char *file, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Read <dir>/<file> whole (bounded); logs on failure unless quiet. */
int cgroup_read(const char *dir, const char *file, bool quiet, char **ret);

/* Read a single number (<dir>/<file>); logs on failure. */
int cgroup_read_u64(const char *dir, const char *file, uint64_t *ret);

/* Read "key value" from <dir>/<file>; logs on failure. */
int cgroup_read_keyed(const char *dir, const char *file, const char *key, uint64_t *ret);

/* Read the pids of <dir>/cgroup.procs. */
int cgroup_read_pids(const char *dir, pid_t **ret_pids, size_t *ret_n);

/* kill() every pid in <dir>/cgroup.procs; returns how many were signalled. */
int cgroup_signal_procs(const char *dir, int sig);

/* mkdir one directory; EEXIST is fine. Logs on failure. */
int cgroup_mkdir(const char *path);

/* rmdir one directory; ENOENT is fine. Logs on failure other than EBUSY. */
int cgroup_rmdir(const char *path);

/* Fail with -EOPNOTSUPP and a clear error when the controller is missing. */
int cgroup_require_controller(struct cgroup *cg, enum cgroup_controller c, const char *what);

/* cgroup-device.c: the v2 program (load and attach) and the v1 devices files. */
int cgroup_device_program_attach(const char *group_dir, const struct cgroup_device_rule *allow, size_t n);
int cgroup_device_v1_apply(const char *group_dir, const struct cgroup_device_rule *allow, size_t n);

/* Every controller the non-zero limits need, or the error naming the first one missing. */
int cgroup_require_limit_controllers(struct cgroup *cg, const struct cgroup_limits *l);
