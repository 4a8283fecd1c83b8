/* cgroups for workloads: one interface over cgroup v2 (unified) and v1 (per-controller). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum cgroup_version {
        CGROUP_V1 = 1,
        CGROUP_V2 = 2,
};

/*
 * Resource limits of one workload. The struct describes the whole wanted state: applying
 * it again with a field at 0 puts that resource back to its default / unlimited value.
 */
struct cgroup_limits {
        uint64_t cpu_weight;      /* 1..10000 (v2 scale, default 100); 0 = default */
        uint64_t cpu_max_percent; /* percent of ONE core, 1..100*ncpu; 0 = unlimited */
        uint64_t memory_max;      /* bytes; 0 = unlimited; when set, swap is forbidden too */
        uint64_t pids_max;        /* 0 = unlimited */
        uint64_t io_weight;       /* 1..10000 (v2 scale, default 100); 0 = default */
};

/* What the kernel counts for one group. Counters a hierarchy lacks read as 0. */
struct cgroup_stats {
        uint64_t cpu_usage_usec; /* total CPU time used, user + system */
        uint64_t memory_current; /* bytes charged now */
        uint64_t memory_peak;    /* highest charge seen; 0 if the kernel does not say */
        uint64_t pids_current;   /* tasks (threads) in the group */
        uint64_t oom_kills;      /* processes the OOM killer killed in this group */
        bool frozen;             /* the freezer says the group is frozen */
        /*
         * The CPU limit as the kernel holds it, and its own accounting of it (cpu.stat;
         * v1: the cpu controller's). Within any n elapsed periods the group cannot use
         * much more than n quotas: a check that needs no clock. 0 when not limited or
         * when the kernel does not say.
         */
        uint64_t cpu_quota_usec;  /* quota per period in force (cpu.max / cfs_quota_us) */
        uint64_t cpu_period_usec; /* its period */
        uint64_t cpu_periods;     /* enforcement periods elapsed (nr_periods) */
        uint64_t cpu_throttled;   /* periods that ran out of quota (nr_throttled) */
};

/*
 * Limits cgroup_apply_limits() could not apply because the kernel lacks the knob. These
 * are best effort by design: the call succeeds and returns the mask of what it skipped.
 */
enum {
        CGROUP_SKIPPED_IO_WEIGHT = 1 << 0, /* no io.weight (v2) / blkio.weight (v1) */
        CGROUP_SKIPPED_NO_SWAP = 1 << 1,   /* no memory.swap.max / memory.memsw.* */
};

/* Flags for cgroup_manager_new(). */
enum {
        /*
         * Accept a hierarchy that lacks some of the cpu, memory, pids (and on v1
         * cpuacct, freezer) controllers. Operations that need a missing controller then
         * fail with -EOPNOTSUPP and an error naming it. Without this flag such a
         * hierarchy is refused at start, which is what the agent wants on a board.
         */
        CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS = 1 << 0,
};

/* Upper bound of a workload group's name, in bytes. */
#define CGROUP_NAME_MAX 64

/* How long cgroup_set_frozen() waits for the kernel by default, in microseconds. */
#define CGROUP_FREEZE_TIMEOUT_USEC 1000000ULL

struct cgroup_manager; /* the agent's subtree, in one or several hierarchies */
struct cgroup;         /* one workload's group */

/*
 * Probe cgroup_root (normally "/sys/fs/cgroup"; tests pass a fake tree) and set up the
 * agent's subtree 'parent' (a relative path such as "orbit-agent") below it.
 *
 * v2 when <root>/cgroup.controllers exists; the workloads live in
 * <root>/<parent>/<name>, and the controllers we use are enabled in
 * cgroup.subtree_control from the root down to <parent>. The agent process must not
 * live in <parent> itself (no-internal-process rule): workloads are leaves.
 *
 * v1 otherwise, when controller hierarchies exist as <root>/<controller> (or as a
 * co-mounted "<root>/cpu,cpuacct"): cpu, cpuacct, memory, pids, freezer are required,
 * blkio is optional. The workloads live in <root>/<hierarchy>/<parent>/<name>.
 *
 * Returns 0, -ENOMEDIUM when neither layout is there, -EOPNOTSUPP when a required
 * controller is missing (see CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS), or another
 * negative errno when a directory or file cannot be set up. Every failure is logged.
 */
int cgroup_manager_new(const char *cgroup_root, const char *parent, unsigned flags,
                       struct cgroup_manager **ret);

/* Free the manager. Groups made from it must be freed first. NULL is fine. */
void cgroup_manager_free(struct cgroup_manager *m);

/* Which implementation the probe chose. */
enum cgroup_version cgroup_manager_version(const struct cgroup_manager *m);

/*
 * Is the named controller ("cpu", "memory", "pids", "io", on v1 also "cpuacct",
 * "freezer", "blkio") usable by this manager?
 */
bool cgroup_manager_has_controller(const struct cgroup_manager *m, const char *controller);

/* Change how long cgroup_set_frozen() waits for the kernel (default 1 s). */
void cgroup_manager_set_freeze_timeout(struct cgroup_manager *m, uint64_t usec);

/*
 * List the workload groups that exist under the agent's subtree, so a restarted agent
 * can adopt what still runs. *ret_names is a NULL-terminated array, sorted, owned by
 * the caller (free with cgroup_strv_free()). Entries that are not valid group names are
 * left out. Returns the number of names, or a negative errno.
 */
int cgroup_manager_list(struct cgroup_manager *m, char ***ret_names);

/* Free a NULL-terminated array of strings. NULL is fine. */
void cgroup_strv_free(char **strv);

/*
 * Create the group 'name' (in every hierarchy on v1), or reuse it when it exists already:
 * an agent that restarts must find its workloads. Returns 0, -EINVAL for a bad name
 * (see cgroup_name_is_valid()), or a negative errno from mkdir.
 */
int cgroup_create(struct cgroup_manager *m, const char *name, struct cgroup **ret);

/* Open the existing group 'name'; -ENOENT when it does not exist. Nothing is created. */
int cgroup_open(struct cgroup_manager *m, const char *name, struct cgroup **ret);

/* Free the handle only; the group in the kernel is left as it is. NULL is fine. */
void cgroup_free(struct cgroup *cg);

/* The group's directory (v1: in its first hierarchy), for messages. */
const char *cgroup_path(const struct cgroup *cg);

/* The group's name, as passed to cgroup_create(). */
const char *cgroup_name(const struct cgroup *cg);

/*
 * Apply limits; call it again to change them (throttle = lower cpu_max_percent). All
 * values are checked first (-EINVAL, nothing written); then each file is written. A value
 * the kernel refuses fails with its errno and an error naming the file and the value,
 * and the limits written before it stay. A non-zero limit whose controller is missing
 * fails with -EOPNOTSUPP. Returns 0, or a positive CGROUP_SKIPPED_* mask when an
 * optional knob is absent (logged as a warning), or a negative errno.
 */
int cgroup_apply_limits(struct cgroup *cg, const struct cgroup_limits *limits);

/* Move the process pid (all its threads) into the group, in every hierarchy on v1. */
int cgroup_attach_pid(struct cgroup *cg, pid_t pid);

/*
 * Freeze or thaw every process of the group and wait (bounded by the freeze timeout)
 * until the kernel reports the new state: cgroup.events "frozen" on v2, freezer.state
 * on v1. Returns 0, -ETIMEDOUT when the kernel did not get there in time, -EOPNOTSUPP
 * without a freezer, or another negative errno.
 */
int cgroup_set_frozen(struct cgroup *cg, bool frozen);

/* Read the group's counters (see struct cgroup_stats) into *ret. */
int cgroup_get_stats(struct cgroup *cg, struct cgroup_stats *ret);

/*
 * The processes (thread group ids) in the group, from cgroup.procs. *ret_pids is a heap
 * array owned by the caller (NULL when empty). Returns 0 or a negative errno.
 */
int cgroup_get_pids(struct cgroup *cg, pid_t **ret_pids, size_t *ret_n);

/*
 * Send sig to every process of the group. v2 with SIGKILL uses cgroup.kill when the
 * kernel has it, which also catches processes forking meanwhile. Otherwise each pid of
 * cgroup.procs is signalled; on v1 with SIGKILL the group is frozen around that so
 * nothing escapes by forking. Processes that vanish meanwhile are not an error.
 * Returns the number of processes signalled (or 0 after cgroup.kill), or a negative errno.
 */
int cgroup_kill_all(struct cgroup *cg, int sig);

/* Returns 1 when no process is in the group (in any hierarchy), 0 when some are. */
int cgroup_is_empty(struct cgroup *cg);

/* Poll cgroup_is_empty() until it says 1 or timeout_usec passes (-ETIMEDOUT). */
int cgroup_wait_empty(struct cgroup *cg, uint64_t timeout_usec);

/*
 * Remove the group's directory (in every hierarchy on v1). -EBUSY when processes are
 * still in it; a directory that is gone already is not an error. The handle stays valid
 * and must still be freed.
 */
int cgroup_destroy(struct cgroup *cg);

/* ---- device access ------------------------------------------------------------------ */

/* Access bits, as the kernel's BPF_DEVCG_ACC_* and the v1 "m", "r", "w". */
enum {
        CGROUP_DEVICE_MKNOD = 1 << 0,
        CGROUP_DEVICE_READ = 1 << 1,
        CGROUP_DEVICE_WRITE = 1 << 2,
};

/* One device (or a range: -1 for any major or minor) a group may use. */
struct cgroup_device_rule {
        char type;       /* 'c' character, 'b' block */
        int64_t major;   /* -1: any */
        int64_t minor;   /* -1: any */
        unsigned access; /* CGROUP_DEVICE_* */
};

#define CGROUP_DEVICE_MAX_RULES 64

/* What a sandbox binds into its /dev: null, zero, full, random, urandom, tty; rw, no mknod. */
extern const struct cgroup_device_rule cgroup_sandbox_devices[];
extern const size_t cgroup_n_sandbox_devices;

/*
 * Deny every device to the group's processes except the n rules of allow: on v1 with
 * the devices controller (devices.deny "a", then devices.allow), on v2 with a
 * BPF_CGROUP_DEVICE program attached to the group (replacing the one attached before,
 * so applying it at each start is fine). -EOPNOTSUPP on v1 without the devices
 * controller or a kernel without cgroup BPF (logged); another negative errno when the
 * kernel refuses (logged, naming the group).
 */
int cgroup_restrict_devices(struct cgroup *cg, const struct cgroup_device_rule *allow, size_t n);

/* ---- pure helpers (no file system access; unit-tested) ------------------------------ */

/* A rule as a v1 devices.allow line: "c 1:3 rw", "b *:* m". -EINVAL, -ENOBUFS. */
int cgroup_device_rule_format(const struct cgroup_device_rule *r, char *buf, size_t size);

/*
 * Build the BPF_CGROUP_DEVICE program allowing exactly the rules (an access is allowed
 * when all its bits are in a matching rule's), into insns (room for max). Returns the
 * number of instructions, -EINVAL for a bad rule, -E2BIG when max is too small.
 */
struct bpf_insn;
int cgroup_device_program_build(const struct cgroup_device_rule *allow, size_t n,
                                struct bpf_insn *insns, size_t max);

/* A usable group name: 1..CGROUP_NAME_MAX bytes of [A-Za-z0-9._@:-], not "." or "..". */
bool cgroup_name_is_valid(const char *name);

/*
 * Check limits before anything is written: weights 1..10000 or 0, cpu_max_percent
 * 0..100*ncpu. Returns 0 or -EINVAL, and logs which field is wrong.
 */
int cgroup_limits_validate(const struct cgroup_limits *limits, unsigned ncpu);

/* v2 cpu.weight (1..10000, 0 = default 100) to v1 cpu.shares (weight*1024/100, 2..262144). */
uint64_t cgroup_weight_to_shares(uint64_t weight);

/* v2 io.weight (1..10000, 0 = default 100) to v1 blkio.weight (weight*5, 10..1000). */
uint64_t cgroup_weight_to_blkio(uint64_t weight);

/*
 * Format a v2 cpu.max value for percent of one core with a 100000 us period:
 * 20 -> "20000 100000", 0 -> "max 100000". Returns 0 or -ENOBUFS.
 */
int cgroup_format_cpu_max(uint64_t percent, char *buf, size_t size);

/* Quota in microseconds per 100000 us period for percent of one core; 0 -> 0 (none). */
uint64_t cgroup_cpu_quota_usec(uint64_t percent);

/*
 * Find "key value" in text made of such lines (cpu.stat, memory.events, cgroup.events,
 * memory.oom_control) and parse value as an unsigned decimal. Returns 0, -ENOENT when
 * the key is not there, -EINVAL when the value is not a number.
 */
int cgroup_parse_keyed(const char *text, const char *key, uint64_t *ret);

/*
 * Parse a v2 cpu.max ("20000 100000", "max 100000") into quota and period in
 * microseconds; "max" reads as quota 0 (no limit). -EINVAL on anything else.
 */
int cgroup_parse_cpu_max(const char *text, uint64_t *ret_quota, uint64_t *ret_period);

/* Parse a file holding one unsigned decimal and a newline (memory.current, ...). */
int cgroup_parse_u64(const char *text, uint64_t *ret);

/*
 * Parse cgroup.procs text: one pid per line. *ret_pids is heap-allocated (NULL when the
 * text is empty). -EINVAL on anything but positive pids, -E2BIG beyond 1 << 20 pids.
 */
int cgroup_parse_pids(const char *text, pid_t **ret_pids, size_t *ret_n);
