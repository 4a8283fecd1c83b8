/* The agent's configuration: strict parsing of agent.json into plain data. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/id-range.h"
#include "lib/json-util.h"
#include "lib/log.h"
#include "runtime/workload-spec.h"

#define CONFIG_VERSION 1
#define CONFIG_MAX_SIZE (1024 * 1024)
#define NODE_ID_MAX 64

struct agent_control_config {
        int64_t max_request_bytes; /* longest request line accepted */
        int64_t max_clients;       /* connections served at once */
        int64_t idle_timeout_sec;  /* a silent client is dropped after this */
};

struct agent_paths_config {
        char *sysfs_root;
        char *procfs_root;
        char *cgroup_root;
        char *kernel_cmdline;
};

struct agent_runtime_config {
        bool enabled;
        char *cgroup_parent; /* the agent's subtree under paths.cgroup_root */
        char *log_dir;       /* workload log files when there is no journal */
        bool stop_workloads_on_exit; /* default: workloads outlive the agent and are adopted */
        char *sandbox_init;  /* the sandbox's init binary (orbit-sandbox-init) */
};

#define HEALTH_CONFIG_MAX_ZONES 32
#define HEALTH_CONFIG_MAX_DISKS 8

/* Thresholds in millidegrees, as the policy takes them (the file says degrees). */
struct health_zone_config {
        char *match;
        int64_t warm_mc, hot_mc, critical_mc, hyst_mc;
};

struct agent_health_config {
        bool enabled;
        int64_t poll_interval_ms;
        int64_t report_interval_sec;
        int64_t min_dwell_sec;
        bool use_trip_points;
        struct health_zone_config zones[HEALTH_CONFIG_MAX_ZONES];
        size_t n_zones;
        bool have_default_zone;
        struct health_zone_config default_zone;
        bool power_enabled;
        int64_t power_warm_pct, power_hot_pct, power_critical_pct, power_hyst_pct;
        int64_t throttle_best_effort_pct, throttle_normal_pct;
        char *disks[HEALTH_CONFIG_MAX_DISKS];
        size_t n_disks;
};

#define UPDATE_CONFIG_MAX_ARGS 16

struct agent_update_config {
        bool enabled;
        char *hardware;    /* this board's name, matched against a bundle's "compatible" */
        char *keyring_dir; /* trust anchors for bundles; default <config_dir>/keys/bundles */
        char *work_dir;    /* install state, progress, slot manifests; default <state_dir>/update */
        /* bootloader */
        char *bootloader_kind; /* "grub", "uboot", "file"; NULL: no rootfs slots */
        char *bootloader_path;
        char *bootloader_path_redundant;
        int64_t bootloader_offset, bootloader_offset_redundant, bootloader_size;
        char *bootloader_flags; /* uboot, two copies: "incremental" (NULL) or "boolean" */
        /* slots */
        char *rootfs_a, *rootfs_b; /* NULL: this node takes no rootfs images */
        char *models_dir;          /* default <state_dir>/models */
        char *apps_dir;            /* app slots (#19), default <state_dir>/apps */
        /* commit */
        int64_t boot_tries;        /* boots a new rootfs slot gets before the bootloader gives up */
        int64_t gate_sec;          /* the health gate must hold this long to commit */
        int64_t trial_timeout_sec; /* a trial that has not passed the gate by then rolls back */
        /* with the link enabled, a rootfs trial also waits for a good sync from the new slot:
         * this long when no contact pass is planned in the trial window (agent/trial-gate.h) */
        int64_t controller_wait_sec;
        bool commit_without_controller; /* the old gate (boards with no link to the ground) */
        int64_t scrub_interval_sec; /* re-read the inactive slots this often; 0: never */
        int64_t scrub_mib_per_sec;  /* pace of a scrub's reads; 0: unpaced */
        char *reboot_command[UPDATE_CONFIG_MAX_ARGS + 1]; /* argv, NULL-terminated; none: wait */
        size_t n_reboot_args;
        /* install */
        int64_t checkpoint_mib;      /* sync the slot and save progress this often */
        int64_t space_retry_sec;     /* retry an install paused for lack of space this often */
        bool delta_scan;             /* hash the active slot when what it holds is unknown */
        bool verify_before_write;    /* check every chunk to be read from the bundle first */
        bool check_certificate_time; /* check signer validity against the clock */
};

struct agent_link_config {
        bool enabled;
        char *url;          /* the controller, "https://host:port" */
        char *ca;           /* the ground CA that issued the controller's certificate */
        char *cert, *key;   /* this node's client certificate (CN = node id) and key */
        char *command_keyring_dir; /* trust anchors of command signers; default <config_dir>/keys/commands */
        char *trust_document;      /* the image's trust document; default <config_dir>/keys/trust.json */
        int64_t poll_interval_sec; /* until the controller says otherwise */
        int64_t connect_timeout_sec, timeout_sec;
        int64_t backoff_min_sec, backoff_max_sec;
        int64_t max_records_per_sync;
        int64_t max_sync_kib;
        int64_t download_budget_mib; /* bundle bytes per pass (agent/link-pass.h) */
        int64_t upload_budget_kib;   /* bytes a pass's syncs may upload; 0: no limit */
        int64_t pass_max_sec;        /* a learned pass (no contact plan) is at most this long */
        int64_t min_sync_interval_sec; /* the floor under the controller's next_sync_sec */
        int64_t max_recv_bytes_per_sec; /* 0: no limit */
        int64_t clock_skew_sec;
        bool check_command_time; /* commands' not_before/expires against the clock */
        int64_t max_rtc_ahead_days; /* the RTC is believed up to this far above the time floor */
        bool compress;           /* zstd bodies with a controller that takes them */
        char *zstd_dictionary;   /* NULL: none; the controller's --zstd-dictionary file */
        /* TCP_CONGESTION of the link's sockets (agent/link-transport.h); "default": the kernel's */
        char tcp_congestion[16];
        /* the highest TLS version offered, 2 (1.2) or 3 (1.3): with 1.2 a controller with
         * --tls-session-cache resumes the session by its id (docs/protocol.md) */
        int64_t tls_max_minor;
        /* renew the client certificate over the link this many days before it expires
         * (agent/link-cert.h); 0: not ahead (an expired one is still recovered) */
        int64_t renew_before_days;
};

/* The workloads' sandboxes as a security boundary (docs/config.md, "sandbox"). */
struct agent_sandbox_config {
        struct id_pool ids;                /* id_ranges + ids_per_workload */
        struct workload_defaults defaults; /* limits a spec leaves unset */
        bool allow_privileged;             /* accept "privileged": true specs */
        bool allow_privileged_from_link;   /* start them when the controller asks */
};

/* The outbox of events and reports waiting for the controller (docs/outbox-format.md). */
struct agent_outbox_config {
        int64_t max_records;
        int64_t max_mib; /* bytes of record files on disk */
};

/* The usage meter (#19 item 5, docs/usage.md). */
struct agent_usage_config {
        bool enabled;
        int64_t sample_sec; /* how often each workload's cgroup is read (and the state file written) */
        int64_t report_sec; /* how often a usage.report record carries the totals */
        /* The hwmon sensor(s) measuring the board's power: chip name ("ina226"), and label
         * ("vin", or "power1" for one without a label; NULL: every sensor of the chip).
         * NULL chip: no energy figures. */
        char *board_power_chip, *board_power_label;
};

struct agent_config {
        char *source; /* the file it came from */
        int64_t config_version;
        char *node_id; /* NULL: generated once and kept in the state dir */
        char *state_dir;
        char *runtime_dir;
        char *config_dir; /* where workloads.d/ and keys live; default: the config's dir */
        char *log_level_name;
        int log_level;
        char *log_target_name;
        enum log_target log_target;
        struct agent_control_config control;
        struct agent_paths_config paths;
        struct agent_runtime_config runtime;
        struct agent_health_config health;
        struct agent_update_config update;
        struct agent_link_config link;
        struct agent_outbox_config outbox;
        struct agent_sandbox_config sandbox;
        struct agent_usage_config usage;
};

/*
 * Pure: parse and validate config text. Fills *ret (defaults applied) and returns 0, or
 * returns -EINVAL with every problem in *problems. source names the file in messages.
 */
int config_parse(const char *source, const char *text, size_t len, struct agent_config *ret,
                 struct json_problems *problems);

/*
 * Read and parse a config file. On failure *ret_message (caller frees) holds one line
 * per problem, "file:line:column: key: what is wrong".
 */
int config_load_file(const char *path, struct agent_config *ret, char **ret_message);

/*
 * Set key ("a.b.c", objects created on the way) to value in the config file at path, if
 * the agent's own parser takes the result; the file is replaced durably. The running
 * agent reloads it separately. -EINVAL with *ret_message (caller frees) naming each
 * problem when refused.
 */
int config_file_set(const char *path, const char *key, json_t *value, char **ret_message);

void config_free(struct agent_config *c);

/* Pure: is s a valid node id (1-64 of [A-Za-z0-9._-], not starting with '.' or '-')? */
bool node_id_is_valid(const char *s);

/*
 * Pure: list the keys that differ between two configs but only take effect after a
 * restart (paths, node id), comma-separated into buf. Returns how many.
 */
int config_restart_keys_changed(const struct agent_config *old, const struct agent_config *new,
                                char *buf, size_t size);

/* Pure: give next the running config's values for those keys (swapping the strings). */
void config_keep_restart_keys(struct agent_config *next, struct agent_config *running);
