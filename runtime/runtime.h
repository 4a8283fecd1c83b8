/*
 * The workload runtime: supervises sandboxed workloads on the agent's event loop.
 * Starts them in their cgroup and sandbox, captures their output, restarts them with
 * backoff, stops them (SIGTERM, then SIGKILL after the grace period), and gives the
 * thermal/power policy its levers. Workloads outlive an agent restart: a new agent
 * adopts them from their cgroups instead of starting them twice.
 */
#pragma once

#include <stdbool.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "runtime/id-range.h"
#include "runtime/workload-spec.h"

struct runtime_config {
        const char *cgroup_root;   /* e.g. /sys/fs/cgroup */
        const char *cgroup_parent; /* the agent's subtree under it, e.g. "orbit-agent" */
        const char *runtime_dir;   /* sandbox roots go in <runtime_dir>/sandboxes/<name> */
        const char *state_dir;     /* workload records in <state_dir>/workloads/ */
        const char *workloads_dir; /* specs loaded at start: <config_dir>/workloads.d */
        const char *log_dir;       /* per-workload log files when there is no journal; NULL: none */
        bool journal;              /* workload output to the journal */
        const char *sandbox_init;  /* orbit-sandbox-init; NULL: SANDBOX_INIT_PATH */
        /* app slots (#19): <apps_dir>/<name>/{a,b}/{root,version} and current -> a|b;
         * NULL: specs with an "app" cannot start here */
        const char *apps_dir;
        /* run_when "sunlit" workloads wait for the first runtime_set_sunlit (the health
         * monitor's first reading) instead of starting before anyone looked at the power */
        bool sunlit_needs_reading;
        /* The sandbox policy (the agent's "sandbox" configuration); see runtime_policy. */
        const struct runtime_policy *policy; /* NULL: RUNTIME_POLICY_DEFAULT */
        /*
         * Host paths no bind may cover or enter, besides runtime_dir, state_dir and the
         * host's /proc, /sys and /dev, which the runtime adds itself: the config dir, the
         * keyrings, the node's TLS key... Symlinks are resolved here. bind_allowed: paths
         * inside those that binds may use (the models dir). Both NULL-terminated or NULL.
         */
        const struct workload_protected_path *protected_paths; /* ends with path NULL */
        const char *const *bind_allowed;
};

struct runtime_policy {
        struct id_pool ids;                 /* host uid/gid slices for user namespaces */
        struct workload_defaults defaults;  /* limits a spec leaves unset */
        bool allow_privileged;              /* accept "privileged": true specs at all */
        bool allow_privileged_from_link;    /* and start them when the controller asks */
};
#define RUNTIME_POLICY_DEFAULT                                                           \
        ((struct runtime_policy){.ids = ID_POOL_DEFAULT, .defaults = WORKLOAD_DEFAULTS_INIT, \
                                 .allow_privileged = true, .allow_privileged_from_link = false})

struct runtime;

/*
 * Probe cgroups, adopt workloads still running from an earlier agent, load the specs
 * of workloads.d and start what should run. A node without usable cgroups still gets
 * a runtime, which reports itself unavailable and refuses starts with the reason.
 */
int runtime_new(sd_event *event, const struct runtime_config *cfg, struct runtime **ret);

/* Kill every workload now (SIGKILL through its cgroup) and remove the cgroups. */
void runtime_kill_all(struct runtime *rt);

/* Free the runtime's handles. Running workloads keep running (see runtime_kill_all). */
void runtime_free(struct runtime *rt);

/*
 * Parse a spec (source names it in messages), then create or replace the workload of
 * that name and start it. The spec is kept in the state dir so it survives restarts.
 * On failure *ret_message (caller frees) says why: every spec problem with
 * source:line:column, a refused admission, or what failed in the sandbox.
 */
int runtime_workload_submit(struct runtime *rt, const char *source, const char *text, size_t len,
                            char **ret_message);

int runtime_workload_start(struct runtime *rt, const char *name, char **ret_message);

/*
 * Where a start or restart was asked from. The controller link may not start a
 * privileged workload unless the policy says allow_privileged_from_link; a local
 * operator (control socket, workloads.d) may, unless allow_privileged is off.
 */
enum runtime_origin {
        RUNTIME_ORIGIN_LOCAL,
        RUNTIME_ORIGIN_LINK,
};
int runtime_workload_start_from(struct runtime *rt, const char *name, enum runtime_origin origin,
                                char **ret_message);
int runtime_workload_restart_from(struct runtime *rt, const char *name, enum runtime_origin origin,
                                  char **ret_message);

/* The checks a submit makes of a spec before anything changes: its syntax, this node's
 * rules (privileged, binds against the agent's own paths), from the link
 * sandbox.allow_privileged_from_link, and its class's admission now (-EBUSY: the thermal or
 * power policy holds it). 0, or -errno with *ret_message naming what. */
int runtime_workload_check(struct runtime *rt, enum runtime_origin origin, const char *source, const char *text,
                           size_t len, char **ret_message);

/* runtime_workload_submit for a spec that came from origin: the link's may not be privileged
 * unless the policy says allow_privileged_from_link (-EPERM). */
int runtime_workload_submit_from(struct runtime *rt, enum runtime_origin origin, const char *source, const char *text,
                                 size_t len, char **ret_message);

/* Forget a stopped workload: its record, its cgroup, its ids. -EBUSY while it runs or stops. */
int runtime_workload_remove(struct runtime *rt, const char *name, char **ret_message);

/* What the desired-state reconciler reads of a workload (borrowed, valid until the next
 * change to it). false: no such workload. */
struct runtime_workload_info {
        const char *source;    /* who made it: a workloads.d path, a submit's source */
        const char *spec_text; /* the spec as given */
        const char *state;     /* "running", "stopped", ... */
        bool want_running;
        bool busy;    /* has a process, or is stopping */
        bool running; /* state running */
        int health;   /* 1 healthy or no probe, 0 unhealthy, -1 not known yet */
        const char *last_error; /* NULL none */
};
bool runtime_workload_info(struct runtime *rt, const char *name, struct runtime_workload_info *ret);

/* Does a member of the app hold a whole tree of this version (its version file says so)? */
bool runtime_app_has_version(struct runtime *rt, const char *app, const char *version);

/* A new policy (configuration reload): id pool, defaults for specs loaded from now on,
 * and the privileged rules, which apply to the next start. */
void runtime_set_policy(struct runtime *rt, const struct runtime_policy *policy);
int runtime_workload_stop(struct runtime *rt, const char *name, char **ret_message);
int runtime_workload_restart(struct runtime *rt, const char *name, char **ret_message);

/*
 * Restart every workload that should run and bind-mounts something at or under dir
 * (a model switched to a new slot). Their names, comma-separated, go to names.
 * Returns how many were restarted.
 */
int runtime_restart_using_path(struct runtime *rt, const char *dir, char *names, size_t size);

/* Plain data for orbitctl: a list, one workload in detail, recent output. NULL: no such. */
json_t *runtime_workloads_json(struct runtime *rt);
json_t *runtime_workload_json(struct runtime *rt, const char *name);
json_t *runtime_workload_logs_json(struct runtime *rt, const char *name, size_t lines);

/* The runtime's section of `orbitctl status`. */
json_t *runtime_status_json(struct runtime *rt);

/*
 * Workload events (start, exit, crash loop, unhealthy, failed start) for the outbox:
 * priority 0 low .. 3 critical, a kind like "workload.exit", and a body the handler owns.
 */
typedef void (*runtime_event_fn)(void *userdata, int priority, const char *kind, json_t *body);
void runtime_set_event_handler(struct runtime *rt, runtime_event_fn fn, void *userdata);

/* Called once a workload is about to be forgotten (runtime_workload_remove), while its
 * cgroup and its counters are still there: the usage meter takes its last reading. */
typedef void (*runtime_removing_fn)(void *userdata, const char *name);
void runtime_set_removing_handler(struct runtime *rt, runtime_removing_fn fn, void *userdata);

/* Per-workload cgroup counters, for health reports. */
struct workload_usage {
        char name[WORKLOAD_NAME_MAX + 1];
        char tenant[WORKLOAD_NAME_MAX + 1]; /* the spec's "tenant", "" none */
        char app[WORKLOAD_NAME_MAX + 1];    /* the spec's app name, "" none */
        bool running;
        uint64_t cpu_usec, memory_bytes, pids, oom_kills;
        uint64_t instance; /* which cgroup (the inode of its directory): a new one counts from zero */
};

/* Fill up to max entries; returns how many. */
size_t runtime_usage(struct runtime *rt, struct workload_usage *out, size_t max);

/* For the health gate: every critical workload that should run, runs and is not unhealthy. */
bool runtime_critical_workloads_ok(struct runtime *rt, char *why, size_t size);

/*
 * An app was switched (#19): restart every workload that should run with this app and no
 * version of its own (it follows the slot's "current"), so it runs the new tree, and
 * those the previous switch restarted that ended by themselves since. Returns how many;
 * their names, comma-separated, in names.
 */
int runtime_restart_app_users(struct runtime *rt, const char *app, char *names, size_t size);

/* The name of a workload whose tree is member ('A'/'B') of app, or NULL: one running from
 * it, or one pinned to its version waiting to be restarted (backoff). */
const char *runtime_app_member_user(struct runtime *rt, const char *app, char member);

/* For an app's trial: every such workload runs, and passed its probe when it has one; one
 * the switch restarted too, even when it ended "for good" since (until stopped on purpose). */
bool runtime_app_users_ok(struct runtime *rt, const char *app, char *why, size_t size);

/* ---- levers for the thermal and power policy -------------------------------------- */

/*
 * run_when "sunlit" workloads (#19 item 4): wait_reason NULL or "" lets them run (they
 * start again where they should run), anything else stops them first and holds their
 * starts with the reason ("in eclipse", "level warm"). The health monitor calls this at
 * every evaluation; only a change acts.
 */
void runtime_set_sunlit(struct runtime *rt, const char *wait_reason);
/* Why run_when "sunlit" work waits now ("in eclipse", "level warm", "no power reading
 * yet"), or "" when it may run. */
const char *runtime_sunlit_wait(const struct runtime *rt);

/* Limit every workload of a class to percent of its normal cpu (0 or 100: no limit). */
int runtime_class_throttle(struct runtime *rt, enum workload_priority p, unsigned percent);
/* Freeze or thaw every workload of a class. */
int runtime_class_freeze(struct runtime *rt, enum workload_priority p, bool frozen);
/* Stop every workload of a class and refuse its starts, or lift that and restart them. */
int runtime_class_stop(struct runtime *rt, enum workload_priority p, bool stopped);
/* Refuse or admit new best-effort workloads (the reason is given to whoever asks). */
void runtime_best_effort_admission(struct runtime *rt, bool open);
