/* The agent's configuration: strict parsing of agent.json into plain data. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent-config.h"
#include "lib/ident.h"
#include "lib/fileio.h"
#include "lib/message.h"
#include "agent/link-transport.h"

bool node_id_is_valid(const char *s) {
        return ident_is_valid(s, NODE_ID_MAX, 0);
}

static int dispatch_node_id(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        if (!node_id_is_valid(*(char **) dest))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"%s\" is not a valid node id (1-%d characters of "
                                        "A-Z a-z 0-9 . _ -, not starting with . or -)",
                                        *(char **) dest, NODE_ID_MAX);
        return 0;
}

static int dispatch_log_level(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        if (log_level_from_string(*(char **) dest) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unknown log level \"%s\" (use debug, info, notice, "
                                        "warning or error)",
                                        *(char **) dest);
        return 0;
}

static int dispatch_log_target(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        enum log_target t;
        if (log_target_from_string(*(char **) dest, &t) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unknown log target \"%s\" (use auto, journal or stderr)",
                                        *(char **) dest);
        return 0;
}

static int dispatch_config_version(struct json_ctx *ctx, json_t *v, void *dest,
                                   const struct json_field *f) {
        int r = json_dispatch_int64(ctx, v, dest, f);
        if (r < 0)
                return r;
        if (*(int64_t *) dest != CONFIG_VERSION)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "config_version %lld is not supported by this agent "
                                        "(it reads version %d)",
                                        (long long) *(int64_t *) dest, CONFIG_VERSION);
        return 0;
}

#define FIELD(s, m) offsetof(s, m)

static const struct json_field control_fields[] = {
        {"max_request_bytes", json_dispatch_int64, FIELD(struct agent_control_config, max_request_bytes), 0, NULL, 256, 1024 * 1024},
        {"max_clients", json_dispatch_int64, FIELD(struct agent_control_config, max_clients), 0, NULL, 1, 256},
        {"idle_timeout_sec", json_dispatch_int64, FIELD(struct agent_control_config, idle_timeout_sec), 0, NULL, 1, 3600},
        {},
};

static const struct json_field paths_fields[] = {
        {"sysfs_root", json_dispatch_absolute_path, FIELD(struct agent_paths_config, sysfs_root), 0, NULL, 0, 0},
        {"procfs_root", json_dispatch_absolute_path, FIELD(struct agent_paths_config, procfs_root), 0, NULL, 0, 0},
        {"cgroup_root", json_dispatch_absolute_path, FIELD(struct agent_paths_config, cgroup_root), 0, NULL, 0, 0},
        {"kernel_cmdline", json_dispatch_absolute_path, FIELD(struct agent_paths_config, kernel_cmdline), 0, NULL, 0, 0},
        {},
};

static int dispatch_cgroup_parent(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        const char *p = *(char **) dest;
        if (p[0] == '/' || strstr(p, "..") || strstr(p, "//") || p[strlen(p) - 1] == '/')
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"%s\" must be a relative path under the cgroup root, without ..", p);
        return 0;
}

static const struct json_field runtime_fields[] = {
        {"enabled", json_dispatch_bool, FIELD(struct agent_runtime_config, enabled), 0, NULL, 0, 0},
        {"cgroup_parent", dispatch_cgroup_parent, FIELD(struct agent_runtime_config, cgroup_parent), 0, NULL, 1, 255},
        {"log_dir", json_dispatch_absolute_path, FIELD(struct agent_runtime_config, log_dir), 0, NULL, 0, 0},
        {"stop_workloads_on_exit", json_dispatch_bool, FIELD(struct agent_runtime_config, stop_workloads_on_exit), 0, NULL, 0, 0},
        {"sandbox_init", json_dispatch_absolute_path, FIELD(struct agent_runtime_config, sandbox_init), 0, NULL, 0, 0},
        {},
};

/* ---- health ---------------------------------------------------------------------- */

/* Degrees Celsius (integer or fraction) into millidegrees. */
static int dispatch_celsius(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_number(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected degrees Celsius, got %s", json_type_name(v));
        double c = json_number_value(v);
        if (c < -273.0 || c > 1000.0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "%.1f C is not a plausible temperature", c);
        *(int64_t *) dest = (int64_t) (c * 1000.0 + (c >= 0 ? 0.5 : -0.5));
        return 0;
}

struct zone_config_tmp {
        char *match;
        int64_t warm, hot, critical, hyst;
};

static const struct json_field zone_fields[] = {
        {"match", json_dispatch_string, offsetof(struct zone_config_tmp, match), JSON_REQUIRED, NULL, 1, 47},
        {"warm_c", dispatch_celsius, offsetof(struct zone_config_tmp, warm), JSON_REQUIRED, NULL, 0, 0},
        {"hot_c", dispatch_celsius, offsetof(struct zone_config_tmp, hot), JSON_REQUIRED, NULL, 0, 0},
        {"critical_c", dispatch_celsius, offsetof(struct zone_config_tmp, critical), JSON_REQUIRED, NULL, 0, 0},
        {"hysteresis_c", dispatch_celsius, offsetof(struct zone_config_tmp, hyst), 0, NULL, 0, 0},
        {},
};

static int zone_from_json(struct json_ctx *ctx, json_t *v, struct health_zone_config *out, bool need_match) {
        struct zone_config_tmp t = {.hyst = 2000};
        int r = json_dispatch_object(ctx, v, zone_fields + (need_match ? 0 : 1), &t);
        if (r >= 0 && !(t.warm < t.hot && t.hot < t.critical))
                r = json_ctx_problem(ctx, JSON_AT_VALUE, "needs warm_c < hot_c < critical_c");
        if (r >= 0 && t.hyst < 0)
                r = json_ctx_problem(ctx, JSON_AT_VALUE, "hysteresis_c must not be negative");
        if (r < 0) {
                free(t.match);
                return r;
        }
        *out = (struct health_zone_config){.match = t.match, .warm_mc = t.warm, .hot_mc = t.hot,
                                           .critical_mc = t.critical, .hyst_mc = t.hyst};
        return 0;
}

static int zone_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct agent_health_config *h = userdata;
        int r = zone_from_json(ctx, e, &h->zones[h->n_zones], true);
        if (r >= 0)
                h->n_zones++;
        return r;
}

static int dispatch_zones(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return json_dispatch_array(ctx, v, "an array of zone limits", HEALTH_CONFIG_MAX_ZONES, "zone rules",
                                   zone_element, dest);
}

static int dispatch_default_zone(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct agent_health_config *h = dest;
        int r = zone_from_json(ctx, v, &h->default_zone, false);
        if (r >= 0)
                h->have_default_zone = true;
        return r;
}

struct power_tmp {
        int64_t warm, hot, critical, hyst;
};

static const struct json_field power_fields[] = {
        {"warm_percent", json_dispatch_int64, offsetof(struct power_tmp, warm), JSON_REQUIRED, NULL, 0, 100},
        {"hot_percent", json_dispatch_int64, offsetof(struct power_tmp, hot), JSON_REQUIRED, NULL, 0, 100},
        {"critical_percent", json_dispatch_int64, offsetof(struct power_tmp, critical), JSON_REQUIRED, NULL, 0, 100},
        {"hysteresis_percent", json_dispatch_int64, offsetof(struct power_tmp, hyst), 0, NULL, 0, 50},
        {},
};

static int dispatch_power(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct agent_health_config *h = dest;
        struct power_tmp t = {.hyst = 5};
        int r = json_dispatch_object(ctx, v, power_fields, &t);
        if (r >= 0 && !(t.warm > t.hot && t.hot > t.critical))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "needs warm_percent > hot_percent > critical_percent (lower charge is worse)");
        if (r < 0)
                return r;
        h->power_enabled = true;
        h->power_warm_pct = t.warm;
        h->power_hot_pct = t.hot;
        h->power_critical_pct = t.critical;
        h->power_hyst_pct = t.hyst;
        return 0;
}

static const struct json_field throttle_fields[] = {
        {"best_effort_percent", json_dispatch_int64, offsetof(struct agent_health_config, throttle_best_effort_pct), 0, NULL, 1, 99},
        {"normal_percent", json_dispatch_int64, offsetof(struct agent_health_config, throttle_normal_pct), 0, NULL, 1, 99},
        {},
};

static int dispatch_throttle(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return json_dispatch_object(ctx, v, throttle_fields, dest);
}

static int disk_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct agent_health_config *h = userdata;
        if (!json_is_string(e) || json_string_value(e)[0] != '/')
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an absolute path");
        if (!(h->disks[h->n_disks] = strdup(json_string_value(e))))
                return -ENOMEM;
        h->n_disks++;
        return 0;
}

static int dispatch_disks(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return json_dispatch_array(ctx, v, "an array of paths", HEALTH_CONFIG_MAX_DISKS, "paths",
                                   disk_element, dest);
}

#define HFIELD(m) offsetof(struct agent_health_config, m)
static const struct json_field health_fields[] = {
        {"enabled", json_dispatch_bool, HFIELD(enabled), 0, NULL, 0, 0},
        {"poll_interval_ms", json_dispatch_int64, HFIELD(poll_interval_ms), 0, NULL, 100, 60000},
        {"report_interval_sec", json_dispatch_int64, HFIELD(report_interval_sec), 0, NULL, 1, 86400},
        {"min_dwell_sec", json_dispatch_int64, HFIELD(min_dwell_sec), 0, NULL, 0, 3600},
        {"use_trip_points", json_dispatch_bool, HFIELD(use_trip_points), 0, NULL, 0, 0},
        {"zones", dispatch_zones, 0, 0, NULL, 0, 0},
        {"default_zone", dispatch_default_zone, 0, 0, NULL, 0, 0},
        {"power", dispatch_power, 0, 0, NULL, 0, 0},
        {"throttle", dispatch_throttle, 0, 0, NULL, 0, 0},
        {"disks", dispatch_disks, 0, 0, NULL, 0, 0},
        {},
};

/* ---- update ---------------------------------------------------------------------- */

static int dispatch_bootloader_kind(struct json_ctx *ctx, json_t *v, void *dest,
                                    const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        const char *k = *(char **) dest;
        if (!streq(k, "grub") && !streq(k, "uboot") && !streq(k, "file"))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unknown bootloader \"%s\" (use grub, uboot or file)", k);
        return 0;
}

static int dispatch_hardware(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        /* the rule of bundle ids and hardware names in manifests (docs/bundle-format.md) */
        if (!node_id_is_valid(*(char **) dest))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"%s\" is not a valid hardware name (1-64 characters of "
                                        "A-Z a-z 0-9 . _ -, not starting with . or -)",
                                        *(char **) dest);
        return 0;
}

#define UFIELD(m) offsetof(struct agent_update_config, m)
static const struct json_field bootloader_fields[] = {
        {"kind", dispatch_bootloader_kind, UFIELD(bootloader_kind), JSON_REQUIRED, NULL, 0, 0},
        {"path", json_dispatch_absolute_path, UFIELD(bootloader_path), JSON_REQUIRED, NULL, 0, 0},
        {"path_redundant", json_dispatch_absolute_path, UFIELD(bootloader_path_redundant), 0, NULL, 0, 0},
        {"offset", json_dispatch_int64, UFIELD(bootloader_offset), 0, NULL, 0, INT64_MAX / 2},
        {"offset_redundant", json_dispatch_int64, UFIELD(bootloader_offset_redundant), 0, NULL, 0, INT64_MAX / 2},
        {"size", json_dispatch_int64, UFIELD(bootloader_size), 0, NULL, 16, 1024 * 1024},
        {"flags", json_dispatch_string, UFIELD(bootloader_flags), 0, NULL, 0, 0},
        {},
};

static const struct json_field rootfs_fields[] = {
        {"a", json_dispatch_absolute_path, UFIELD(rootfs_a), JSON_REQUIRED, NULL, 0, 0},
        {"b", json_dispatch_absolute_path, UFIELD(rootfs_b), JSON_REQUIRED, NULL, 0, 0},
        {},
};

static int dispatch_bootloader(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct agent_update_config *u = dest;
        int r = json_dispatch_object(ctx, v, bootloader_fields, u);
        if (r < 0)
                return r;
        if (streq(u->bootloader_kind, "uboot") && u->bootloader_size == 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "a uboot environment needs \"size\" (bytes of one copy)");
        if (!streq(u->bootloader_kind, "uboot") &&
            (u->bootloader_path_redundant || u->bootloader_size || u->bootloader_offset ||
             u->bootloader_offset_redundant || u->bootloader_flags))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "path_redundant, offset, offset_redundant, size and flags are for "
                                        "a uboot environment only");
        if (u->bootloader_flags && !streq(u->bootloader_flags, "incremental") &&
            !streq(u->bootloader_flags, "boolean"))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "flags \"%s\": incremental (a counter: MMC, SPI flash, NAND, UBI, "
                                        "files) or boolean (U-Boot's environment in parallel NOR flash)",
                                        u->bootloader_flags);
        if (u->bootloader_flags && !u->bootloader_path_redundant)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "flags are for two copies of the environment (path_redundant)");
        return 0;
}

static int dispatch_rootfs(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct agent_update_config *u = dest;
        int r = json_dispatch_object(ctx, v, rootfs_fields, u);
        if (r >= 0 && streq(u->rootfs_a, u->rootfs_b))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "slots a and b are the same path");
        return r;
}

static int reboot_arg_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct agent_update_config *u = userdata;
        if (!json_is_string(e) || json_string_length(e) == 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a non-empty string");
        if (index == 0 && json_string_value(e)[0] != '/')
                return json_ctx_problem(ctx, JSON_AT_VALUE, "the command must be an absolute path");
        if (!(u->reboot_command[u->n_reboot_args] = strdup(json_string_value(e))))
                return -ENOMEM;
        u->n_reboot_args++;
        return 0;
}

static int dispatch_reboot_command(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return json_dispatch_array(ctx, v, "an argv array", UPDATE_CONFIG_MAX_ARGS, "arguments",
                                   reboot_arg_element, dest);
}

static const struct json_field update_fields[] = {
        {"enabled", json_dispatch_bool, UFIELD(enabled), 0, NULL, 0, 0},
        {"hardware", dispatch_hardware, UFIELD(hardware), 0, NULL, 0, 64},
        {"keyring_dir", json_dispatch_absolute_path, UFIELD(keyring_dir), 0, NULL, 0, 0},
        {"work_dir", json_dispatch_absolute_path, UFIELD(work_dir), 0, NULL, 0, 0},
        {"bootloader", dispatch_bootloader, 0, 0, NULL, 0, 0},
        {"rootfs", dispatch_rootfs, 0, 0, NULL, 0, 0},
        {"models_dir", json_dispatch_absolute_path, UFIELD(models_dir), 0, NULL, 0, 0},
        {"apps_dir", json_dispatch_absolute_path, UFIELD(apps_dir), 0, NULL, 0, 0},
        {"boot_tries", json_dispatch_int64, UFIELD(boot_tries), 0, NULL, 1, 9},
        {"gate_sec", json_dispatch_int64, UFIELD(gate_sec), 0, NULL, 0, 86400},
        {"trial_timeout_sec", json_dispatch_int64, UFIELD(trial_timeout_sec), 0, NULL, 1, 7 * 86400},
        {"controller_wait_sec", json_dispatch_int64, UFIELD(controller_wait_sec), 0, NULL, 1, 30 * 86400},
        {"commit_without_controller", json_dispatch_bool, UFIELD(commit_without_controller), 0, NULL, 0, 0},
        {"scrub_interval_sec", json_dispatch_int64, UFIELD(scrub_interval_sec), 0, NULL, 0, 30 * 86400},
        {"scrub_mib_per_sec", json_dispatch_int64, UFIELD(scrub_mib_per_sec), 0, NULL, 0, 4096},
        {"reboot_command", dispatch_reboot_command, 0, 0, NULL, 0, 0},
        {"checkpoint_mib", json_dispatch_int64, UFIELD(checkpoint_mib), 0, NULL, 1, 1024},
        {"space_retry_sec", json_dispatch_int64, UFIELD(space_retry_sec), 0, NULL, 1, 86400},
        {"delta_scan", json_dispatch_bool, UFIELD(delta_scan), 0, NULL, 0, 0},
        {"verify_before_write", json_dispatch_bool, UFIELD(verify_before_write), 0, NULL, 0, 0},
        {"check_certificate_time", json_dispatch_bool, UFIELD(check_certificate_time), 0, NULL, 0, 0},
        {},
};

static int dispatch_update(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct agent_update_config *u = dest;
        int r = json_dispatch_object(ctx, v, update_fields, u);
        if (r < 0)
                return r;
        if (u->enabled && !u->hardware)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"hardware\" is required when updates are enabled");
        if (!!u->rootfs_a != !!u->bootloader_kind)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"rootfs\" slots and a \"bootloader\" go together");
        if (u->gate_sec >= u->trial_timeout_sec)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "gate_sec must be shorter than trial_timeout_sec");
        return 0;
}

/* ---- link ------------------------------------------------------------------------- */

static int dispatch_https_url(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        const char *u = *(char **) dest;
        if (strncmp(u, "https://", 8) != 0 || !u[8] || strpbrk(u, " \t\r\n\"?#"))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"%s\" is not an https:// URL (the link is HTTPS only)", u);
        return 0;
}

static int dispatch_tcp_congestion(struct json_ctx *ctx, json_t *v, void *dest,
                                   const struct json_field *f) {
        (void) f;
        const char *name = json_string_value(v);
        if (!link_tcp_congestion_name_is_valid(name))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a TCP congestion control name of 1-%d characters "
                                        "a-z 0-9 _ - (\"bbr\", \"cubic\") or \"%s\"",
                                        LINK_TCP_CONGESTION_MAX, LINK_TCP_CONGESTION_KERNEL);
        snprintf(dest, LINK_TCP_CONGESTION_MAX + 1, "%s", name);
        return 0;
}

static int dispatch_tls_max(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        (void) f;
        const char *s = json_string_value(v);
        if (!s || (!streq(s, "1.2") && !streq(s, "1.3")))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected \"1.2\" or \"1.3\"");
        *(int64_t *) dest = s[2] - '0';
        return 0;
}

#define LFIELD(m) offsetof(struct agent_link_config, m)
static const struct json_field link_fields[] = {
        {"enabled", json_dispatch_bool, LFIELD(enabled), 0, NULL, 0, 0},
        {"url", dispatch_https_url, LFIELD(url), 0, NULL, 9, 1024},
        {"ca", json_dispatch_absolute_path, LFIELD(ca), 0, NULL, 0, 0},
        {"cert", json_dispatch_absolute_path, LFIELD(cert), 0, NULL, 0, 0},
        {"key", json_dispatch_absolute_path, LFIELD(key), 0, NULL, 0, 0},
        {"command_keyring_dir", json_dispatch_absolute_path, LFIELD(command_keyring_dir), 0, NULL, 0, 0},
        {"trust_document", json_dispatch_absolute_path, LFIELD(trust_document), 0, NULL, 0, 0},
        {"poll_interval_sec", json_dispatch_int64, LFIELD(poll_interval_sec), 0, NULL, 1, 86400},
        {"connect_timeout_sec", json_dispatch_int64, LFIELD(connect_timeout_sec), 0, NULL, 1, 600},
        {"timeout_sec", json_dispatch_int64, LFIELD(timeout_sec), 0, NULL, 1, 3600},
        {"backoff_min_sec", json_dispatch_int64, LFIELD(backoff_min_sec), 0, NULL, 1, 3600},
        {"backoff_max_sec", json_dispatch_int64, LFIELD(backoff_max_sec), 0, NULL, 1, 86400},
        {"max_records_per_sync", json_dispatch_int64, LFIELD(max_records_per_sync), 0, NULL, 1, 1024},
        {"max_sync_kib", json_dispatch_int64, LFIELD(max_sync_kib), 0, NULL, 4, 4000},
        {"download_budget_mib", json_dispatch_int64, LFIELD(download_budget_mib), 0, NULL, 1, 1024 * 1024},
        {"upload_budget_kib", json_dispatch_int64, LFIELD(upload_budget_kib), 0, NULL, 0, 1024 * 1024 * 1024},
        {"pass_max_sec", json_dispatch_int64, LFIELD(pass_max_sec), 0, NULL, 60, 86400},
        {"min_sync_interval_sec", json_dispatch_int64, LFIELD(min_sync_interval_sec), 0, NULL, 1, 3600},
        {"max_recv_bytes_per_sec", json_dispatch_int64, LFIELD(max_recv_bytes_per_sec), 0, NULL, 0, INT64_MAX / 2},
        {"clock_skew_sec", json_dispatch_int64, LFIELD(clock_skew_sec), 0, NULL, 0, 86400},
        {"check_command_time", json_dispatch_bool, LFIELD(check_command_time), 0, NULL, 0, 0},
        {"max_rtc_ahead_days", json_dispatch_int64, LFIELD(max_rtc_ahead_days), 0, NULL, 1, 3650},
        {"compress", json_dispatch_bool, LFIELD(compress), 0, NULL, 0, 0},
        {"zstd_dictionary", json_dispatch_absolute_path, LFIELD(zstd_dictionary), 0, NULL, 0, 0},
        {"tcp_congestion", dispatch_tcp_congestion, LFIELD(tcp_congestion), 0, NULL, 0, 0},
        {"tls_max", dispatch_tls_max, LFIELD(tls_max_minor), 0, NULL, 0, 0},
        {"renew_before_days", json_dispatch_int64, LFIELD(renew_before_days), 0, NULL, 0, 3650},
        {},
};

static int dispatch_link(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct agent_link_config *l = dest;
        int r = json_dispatch_object(ctx, v, link_fields, l);
        if (r < 0)
                return r;
        if (l->enabled && (!l->url || !l->ca || !l->cert || !l->key))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "an enabled link needs \"url\", \"ca\", \"cert\" and \"key\"");
        if (l->backoff_min_sec > l->backoff_max_sec)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "backoff_min_sec must not exceed backoff_max_sec");
        /* a sync carries records only with room for one batch (LINK_PACE_MIN_BYTES) */
        if (l->upload_budget_kib > 0 && l->upload_budget_kib < 4)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "upload_budget_kib must be 0 (no budget) or at least 4 (one batch of records)");
        return 0;
}

static const struct json_field outbox_fields[] = {
        {"max_records", json_dispatch_int64, FIELD(struct agent_outbox_config, max_records), 0, NULL, 100, 1000000},
        {"max_mib", json_dispatch_int64, FIELD(struct agent_outbox_config, max_mib), 0, NULL, 1, 4096},
        {},
};

/* ---- usage ------------------------------------------------------------------------ */

static int dispatch_hwmon_name(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        const char *t = json_is_string(v) ? json_string_value(v) : NULL;
        bool ok = t && t[0] && strlen(t) < 48;
        for (const char *p = t; ok && *p; p++)
                ok = *p > ' ' && *p < 0x7f && *p != '/';
        if (!ok)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a hwmon name: 1-47 printable characters, no /");
        return json_dispatch_string(ctx, v, dest, f);
}

#define UFIELD_(m) offsetof(struct agent_usage_config, m)
static const struct json_field board_power_fields[] = {
        {"chip", dispatch_hwmon_name, UFIELD_(board_power_chip), JSON_REQUIRED, NULL, 0, 0},
        {"label", dispatch_hwmon_name, UFIELD_(board_power_label), 0, NULL, 0, 0},
        {},
};

static const struct json_field usage_fields[] = {
        {"enabled", json_dispatch_bool, UFIELD_(enabled), 0, NULL, 0, 0},
        {"sample_sec", json_dispatch_int64, UFIELD_(sample_sec), 0, NULL, 1, 3600},
        {"report_sec", json_dispatch_int64, UFIELD_(report_sec), 0, NULL, 1, 86400},
        /* offsets in the same struct: the object only groups the two */
        {"board_power", json_dispatch_nested, 0, 0, board_power_fields, 0, 0},
        {},
};

/* ---- sandbox ---------------------------------------------------------------------- */

struct id_range_tmp {
        int64_t start, count;
};

static const struct json_field id_range_fields[] = {
        {"start", json_dispatch_int64, offsetof(struct id_range_tmp, start), JSON_REQUIRED, NULL, ID_RANGE_MIN_START, UINT32_MAX - 1},
        {"count", json_dispatch_int64, offsetof(struct id_range_tmp, count), JSON_REQUIRED, NULL, 1, UINT32_MAX},
        {},
};

static int id_range_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct id_pool *p = userdata;
        struct id_range_tmp t = {0};
        int r = json_dispatch_object(ctx, e, id_range_fields, &t);
        if (r < 0)
                return r;
        p->ranges[p->n_ranges++] = (struct id_range){.start = (uint32_t) t.start, .count = (uint32_t) t.count};
        return 0;
}

static int dispatch_id_ranges(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct id_pool *p = dest;
        p->n_ranges = 0;
        int r = json_dispatch_array(ctx, v, "an array of {\"start\": N, \"count\": N}", ID_RANGES_MAX, "id ranges",
                                    id_range_element, p);
        if (r >= 0 && p->n_ranges == 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "needs at least one range");
        return r;
}

static int dispatch_uint32(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int64_t x = 0;
        int r = json_dispatch_int64(ctx, v, &x, f);
        if (r >= 0)
                *(uint32_t *) dest = (uint32_t) x;
        return r;
}

/* An integer, or "max" for no limit (stored as 0). */
static int dispatch_limit(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (json_is_string(v) && streq(json_string_value(v), "max")) {
                *(int64_t *) dest = 0;
                return 0;
        }
        if (json_is_string(v) && f->arg) { /* a size */
                uint64_t bytes;
                if (parse_size(json_string_value(v), &bytes) < 0 || bytes < (uint64_t) f->min || bytes > INT64_MAX)
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a size of at least %lld bytes, or \"max\"",
                                                (long long) f->min);
                *(int64_t *) dest = (int64_t) bytes;
                return 0;
        }
        if (!json_is_integer(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected %s or \"max\", got %s",
                                        f->arg ? "a size" : "an integer", json_type_name(v));
        return json_dispatch_int64(ctx, v, dest, f);
}

static int dispatch_nofile(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int64_t x = 0;
        int r = json_dispatch_int64(ctx, v, &x, f);
        if (r >= 0)
                *(uint64_t *) dest = (uint64_t) x;
        return r;
}

static int dispatch_octal_umask(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        (void) f;
        if (workload_parse_umask(json_is_string(v) ? json_string_value(v) : NULL, dest) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an octal umask string such as \"0022\"");
        return 0;
}

static const int size_marker = 1;
#define DFIELD(m) offsetof(struct workload_defaults, m)
static const struct json_field sandbox_defaults_fields[] = {
        {"pids_max", dispatch_limit, DFIELD(pids_max), 0, NULL, 1, 4194304},
        {"memory_max", dispatch_limit, DFIELD(memory_max), 0, &size_marker, 1 << 20, INT64_MAX},
        {"nofile", dispatch_nofile, DFIELD(nofile), 0, NULL, 16, 1 << 20},
        {"umask", dispatch_octal_umask, DFIELD(umask), 0, NULL, 0, 0},
        {},
};

#define SFIELD(m) offsetof(struct agent_sandbox_config, m)
static const struct json_field sandbox_fields[] = {
        {"id_ranges", dispatch_id_ranges, SFIELD(ids), 0, NULL, 0, 0},
        {"ids_per_workload", dispatch_uint32, SFIELD(ids.size), 0, NULL, 1, 1 << 24},
        {"allow_privileged", json_dispatch_bool, SFIELD(allow_privileged), 0, NULL, 0, 0},
        {"allow_privileged_from_link", json_dispatch_bool, SFIELD(allow_privileged_from_link), 0, NULL, 0, 0},
        {"defaults", json_dispatch_nested, SFIELD(defaults), 0, sandbox_defaults_fields, 0, 0},
        {},
};

static int dispatch_sandbox(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct agent_sandbox_config *sb = dest;
        int r = json_dispatch_object(ctx, v, sandbox_fields, sb);
        if (r < 0)
                return r;
        char msg[256];
        if (id_pool_check(&sb->ids, msg, sizeof(msg)) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "%s", msg);
        return 0;
}

static const struct json_field top_fields[] = {
        {"config_version", dispatch_config_version, FIELD(struct agent_config, config_version), JSON_REQUIRED, NULL, 0, 0},
        {"node_id", dispatch_node_id, FIELD(struct agent_config, node_id), JSON_NULLABLE, NULL, 0, NODE_ID_MAX},
        {"state_dir", json_dispatch_absolute_path, FIELD(struct agent_config, state_dir), 0, NULL, 0, 0},
        {"runtime_dir", json_dispatch_absolute_path, FIELD(struct agent_config, runtime_dir), 0, NULL, 0, 0},
        {"config_dir", json_dispatch_absolute_path, FIELD(struct agent_config, config_dir), 0, NULL, 0, 0},
        {"log_level", dispatch_log_level, FIELD(struct agent_config, log_level_name), 0, NULL, 0, 0},
        {"log_target", dispatch_log_target, FIELD(struct agent_config, log_target_name), 0, NULL, 0, 0},
        {"control", json_dispatch_nested, FIELD(struct agent_config, control), 0, control_fields, 0, 0},
        {"paths", json_dispatch_nested, FIELD(struct agent_config, paths), 0, paths_fields, 0, 0},
        {"runtime", json_dispatch_nested, FIELD(struct agent_config, runtime), 0, runtime_fields, 0, 0},
        {"health", json_dispatch_nested, FIELD(struct agent_config, health), 0, health_fields, 0, 0},
        {"update", dispatch_update, FIELD(struct agent_config, update), 0, NULL, 0, 0},
        {"link", dispatch_link, FIELD(struct agent_config, link), 0, NULL, 0, 0},
        {"outbox", json_dispatch_nested, FIELD(struct agent_config, outbox), 0, outbox_fields, 0, 0},
        {"sandbox", dispatch_sandbox, FIELD(struct agent_config, sandbox), 0, NULL, 0, 0},
        {"usage", json_dispatch_nested, FIELD(struct agent_config, usage), 0, usage_fields, 0, 0},
        {},
};

static int set_default(char **field, const char *value) {
        if (*field)
                return 0;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

static int config_apply_defaults(struct agent_config *c) {
        int r;
        if ((r = set_default(&c->state_dir, "/var/lib/orbit-agent")) < 0 ||
            (r = set_default(&c->runtime_dir, "/run/orbit-agent")) < 0 ||
            (r = set_default(&c->log_level_name, "info")) < 0 ||
            (r = set_default(&c->log_target_name, "auto")) < 0 ||
            (r = set_default(&c->paths.sysfs_root, "/sys")) < 0 ||
            (r = set_default(&c->paths.procfs_root, "/proc")) < 0 ||
            (r = set_default(&c->paths.cgroup_root, "/sys/fs/cgroup")) < 0 ||
            (r = set_default(&c->paths.kernel_cmdline, "/proc/cmdline")) < 0 ||
            (r = set_default(&c->runtime.cgroup_parent, "orbit-agent")) < 0 ||
            (r = set_default(&c->runtime.sandbox_init, LIBEXECDIR "/orbit-agent/orbit-sandbox-init")) < 0)
                return r;
        if (!c->update.work_dir && asprintf(&c->update.work_dir, "%s/update", c->state_dir) < 0) {
                c->update.work_dir = NULL;
                return -ENOMEM;
        }
        if (!c->update.models_dir && asprintf(&c->update.models_dir, "%s/models", c->state_dir) < 0) {
                c->update.models_dir = NULL;
                return -ENOMEM;
        }
        if (!c->update.apps_dir && asprintf(&c->update.apps_dir, "%s/apps", c->state_dir) < 0) {
                c->update.apps_dir = NULL;
                return -ENOMEM;
        }
        if (!c->runtime.log_dir && asprintf(&c->runtime.log_dir, "%s/logs", c->state_dir) < 0) {
                c->runtime.log_dir = NULL;
                return -ENOMEM;
        }
        if (c->health.n_disks == 0) {
                c->health.disks[0] = strdup(c->state_dir);
                if (!c->health.disks[0])
                        return -ENOMEM;
                c->health.n_disks = 1;
        }
        if (!c->config_dir) {
                char buf[PATH_MAX];
                snprintf(buf, sizeof(buf), "%s", c->source ? c->source : "/etc/orbit-agent/agent.json");
                char *dir = dirname(buf);
                /* A relative config path still gives an absolute config dir. */
                if (dir[0] != '/') {
                        char cwd[PATH_MAX], abs[PATH_MAX * 2];
                        if (!getcwd(cwd, sizeof(cwd)))
                                return -errno;
                        snprintf(abs, sizeof(abs), "%s/%s", cwd, dir);
                        c->config_dir = strdup(abs);
                } else
                        c->config_dir = strdup(dir);
                if (!c->config_dir)
                        return -ENOMEM;
        }
        if (!c->update.keyring_dir &&
            asprintf(&c->update.keyring_dir, "%s/keys/bundles", c->config_dir) < 0) {
                c->update.keyring_dir = NULL;
                return -ENOMEM;
        }
        if (!c->link.command_keyring_dir &&
            asprintf(&c->link.command_keyring_dir, "%s/keys/commands", c->config_dir) < 0) {
                c->link.command_keyring_dir = NULL;
                return -ENOMEM;
        }
        if (!c->link.trust_document &&
            asprintf(&c->link.trust_document, "%s/keys/trust.json", c->config_dir) < 0) {
                c->link.trust_document = NULL;
                return -ENOMEM;
        }
        c->log_level = log_level_from_string(c->log_level_name);
        (void) log_target_from_string(c->log_target_name, &c->log_target);
        return 0;
}

int config_parse(const char *source, const char *text, size_t len, struct agent_config *ret,
                 struct json_problems *problems) {
        struct agent_config c = {
                .control = {.max_request_bytes = 65536, .max_clients = 16, .idle_timeout_sec = 30},
                .runtime = {.enabled = true},
                .health = {.enabled = true, .poll_interval_ms = 1000, .report_interval_sec = 60,
                           .min_dwell_sec = 30, .use_trip_points = true,
                           .throttle_best_effort_pct = 50, .throttle_normal_pct = 70},
                .update = {.boot_tries = 3, .gate_sec = 60, .trial_timeout_sec = 600, .controller_wait_sec = 86400,
                           .scrub_interval_sec = 86400, .scrub_mib_per_sec = 16,
                           .checkpoint_mib = 8, .space_retry_sec = 60, .delta_scan = true,
                           .verify_before_write = true, .check_certificate_time = true},
                .link = {.poll_interval_sec = 60, .connect_timeout_sec = 20, .timeout_sec = 120,
                         .backoff_min_sec = 5, .backoff_max_sec = 600, .max_records_per_sync = 256,
                         .max_sync_kib = 1024, .download_budget_mib = 256, .clock_skew_sec = 300,
                         .max_rtc_ahead_days = 30, .renew_before_days = 30,
                         .pass_max_sec = 1200, .min_sync_interval_sec = 5,
                         .check_command_time = true, .compress = true,
                         .tcp_congestion = LINK_TCP_CONGESTION_DEFAULT, .tls_max_minor = 3},
                .outbox = {.max_records = 10000, .max_mib = 16},
                .usage = {.enabled = true, .sample_sec = 30, .report_sec = 300},
                /* Privileged specs are the board operator's to write (workloads.d, the control
                 * socket, both host root only); the controller may forbid them
                 * (allow_privileged is settable over the link) but not start them. */
                .sandbox = {.ids = ID_POOL_DEFAULT, .defaults = WORKLOAD_DEFAULTS_INIT,
                            .allow_privileged = true, .allow_privileged_from_link = false},
        };
        struct json_ctx ctx = {.source = source, .text = text, .text_len = len, .problems = problems};

        if (source && !(c.source = strdup(source)))
                return -ENOMEM;

        json_t *root = json_parse_object(&ctx);
        if (!root) {
                config_free(&c);
                return -EINVAL;
        }
        int r = json_dispatch_object(&ctx, root, top_fields, &c);
        json_decref(root);
        if (r >= 0)
                r = config_apply_defaults(&c);
        if (r < 0) {
                config_free(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int config_load_file(const char *path, struct agent_config *ret, char **ret_message) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file_bounded(path, CONFIG_MAX_SIZE, &text, &len);
        if (r < 0) {
                if (ret_message && asprintf(ret_message, "%s: cannot read config: %s", path,
                                            r == -EFBIG ? "larger than 1 MiB" : strerror(-r)) < 0)
                        *ret_message = NULL;
                return r;
        }

        struct json_problems *problems = calloc(1, sizeof(*problems));
        if (!problems)
                return -ENOMEM;
        r = config_parse(path, text, len, ret, problems);
        if (r < 0 && ret_message) {
                *ret_message = problems->count > 0 ? json_problems_to_message(path, problems)
                                                   : strdup("out of memory");
        }
        free(problems);
        return r;
}

int config_file_set(const char *path, const char *key, json_t *value, char **ret_message) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file_bounded(path, CONFIG_MAX_SIZE, &text, &len);
        if (r < 0)
                return message_set(ret_message, r, "config file %s: cannot read: %s", path, strerror(-r));
        json_error_t err;
        json_t *root = json_loadb(text, len, 0, &err);
        if (!json_is_object(root)) {
                json_decref(root);
                return message_set(ret_message, -EBADMSG, "config file %s: not a JSON object: %s", path,
                                   root ? "another value" : err.text);
        }
        /* walk "a.b.c", creating objects on the way */
        _cleanup_free_ char *parts = strdup(key);
        if (!parts) {
                json_decref(root);
                return -ENOMEM;
        }
        json_t *obj = root;
        char *save = NULL;
        for (char *part = strtok_r(parts, ".", &save), *next; part; part = next) {
                next = strtok_r(NULL, ".", &save);
                if (!next) {
                        json_object_set(obj, part, value);
                        break;
                }
                json_t *child = json_object_get(obj, part);
                if (!json_is_object(child)) {
                        child = json_object();
                        json_object_set_new(obj, part, child);
                }
                obj = child;
        }
        _cleanup_free_ char *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!out)
                return -ENOMEM;
        /* the agent's own strict parser decides, before the file changes */
        struct json_problems *problems = calloc(1, sizeof(*problems));
        if (!problems)
                return -ENOMEM;
        struct agent_config check;
        r = config_parse(path, out, strlen(out), &check, problems);
        if (r < 0) {
                _cleanup_free_ char *why = problems->count ? json_problems_to_message(path, problems) : NULL;
                free(problems);
                return message_set(ret_message, -EINVAL, "config key %s: refused: %s", key,
                                   why ? why : "invalid value");
        }
        free(problems);
        config_free(&check);
        size_t olen = strlen(out);
        out[olen] = '\n';
        r = write_file_durable(path, out, olen + 1, 0644);
        if (r < 0)
                return message_set(ret_message, r, "config file %s: cannot write: %s", path, strerror(-r));
        return 0;
}

void config_free(struct agent_config *c) {
        if (!c)
                return;
        free(c->source);
        free(c->node_id);
        free(c->state_dir);
        free(c->runtime_dir);
        free(c->config_dir);
        free(c->log_level_name);
        free(c->log_target_name);
        free(c->paths.sysfs_root);
        free(c->paths.procfs_root);
        free(c->paths.cgroup_root);
        free(c->paths.kernel_cmdline);
        free(c->runtime.cgroup_parent);
        free(c->runtime.log_dir);
        free(c->runtime.sandbox_init);
        for (size_t i = 0; i < c->health.n_zones; i++)
                free(c->health.zones[i].match);
        free(c->health.default_zone.match);
        free(c->usage.board_power_chip);
        free(c->usage.board_power_label);
        for (size_t i = 0; i < c->health.n_disks; i++)
                free(c->health.disks[i]);
        free(c->update.hardware);
        free(c->update.keyring_dir);
        free(c->update.work_dir);
        free(c->update.bootloader_kind);
        free(c->update.bootloader_path);
        free(c->update.bootloader_path_redundant);
        free(c->update.bootloader_flags);
        free(c->update.rootfs_a);
        free(c->update.rootfs_b);
        free(c->update.models_dir);
        free(c->update.apps_dir);
        for (size_t i = 0; i < c->update.n_reboot_args; i++)
                free(c->update.reboot_command[i]);
        free(c->link.url);
        free(c->link.zstd_dictionary);
        free(c->link.ca);
        free(c->link.cert);
        free(c->link.key);
        free(c->link.command_keyring_dir);
        free(c->link.trust_document);
        memset(c, 0, sizeof(*c));
}

static bool str_differs(const char *a, const char *b) {
        if (!a || !b)
                return a != b;
        return !streq(a, b);
}

/* Keys that only take effect at the next start: moving state under a running agent is unsafe. */
static const struct {
        const char *key;
        size_t offset; /* of a char * in struct agent_config */
} restart_keys[] = {
        {"node_id", offsetof(struct agent_config, node_id)},
        {"state_dir", offsetof(struct agent_config, state_dir)},
        {"runtime_dir", offsetof(struct agent_config, runtime_dir)},
        {"config_dir", offsetof(struct agent_config, config_dir)},
        {"paths.sysfs_root", offsetof(struct agent_config, paths.sysfs_root)},
        {"paths.procfs_root", offsetof(struct agent_config, paths.procfs_root)},
        {"paths.cgroup_root", offsetof(struct agent_config, paths.cgroup_root)},
        {"paths.kernel_cmdline", offsetof(struct agent_config, paths.kernel_cmdline)},
        {"runtime.cgroup_parent", offsetof(struct agent_config, runtime.cgroup_parent)},
        {"runtime.log_dir", offsetof(struct agent_config, runtime.log_dir)},
        {"runtime.sandbox_init", offsetof(struct agent_config, runtime.sandbox_init)},
        {"update.work_dir", offsetof(struct agent_config, update.work_dir)},
        {"update.bootloader.kind", offsetof(struct agent_config, update.bootloader_kind)},
        {"update.bootloader.path", offsetof(struct agent_config, update.bootloader_path)},
        {"update.bootloader.path_redundant", offsetof(struct agent_config, update.bootloader_path_redundant)},
        {"update.bootloader.flags", offsetof(struct agent_config, update.bootloader_flags)},
        {"update.rootfs.a", offsetof(struct agent_config, update.rootfs_a)},
        {"update.rootfs.b", offsetof(struct agent_config, update.rootfs_b)},
        {"update.models_dir", offsetof(struct agent_config, update.models_dir)},
        {"update.apps_dir", offsetof(struct agent_config, update.apps_dir)},
        {"link.trust_document", offsetof(struct agent_config, link.trust_document)},
};

#define KEY_PTR(c, i) ((char **) ((char *) (c) + restart_keys[i].offset))

int config_restart_keys_changed(const struct agent_config *old, const struct agent_config *new,
                                char *buf, size_t size) {
        int count = 0;
        size_t n = 0;
        if (size > 0)
                buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(restart_keys); i++) {
                if (!str_differs(*KEY_PTR(old, i), *KEY_PTR(new, i)))
                        continue;
                if (n < size) {
                        int w = snprintf(buf + n, size - n, "%s%s", count ? ", " : "", restart_keys[i].key);
                        if (w > 0)
                                n += (size_t) w;
                }
                count++;
        }
        if (old->runtime.enabled != new->runtime.enabled) {
                if (n < size) {
                        int w = snprintf(buf + n, size - n, "%sruntime.enabled", count ? ", " : "");
                        if (w > 0)
                                n += (size_t) w;
                }
                count++;
        }
        if (old->update.enabled != new->update.enabled) {
                if (n < size)
                        snprintf(buf + n, size - n, "%supdate.enabled", count ? ", " : "");
                count++;
        }
        return count;
}

void config_keep_restart_keys(struct agent_config *next, struct agent_config *running) {
        for (size_t i = 0; i < ELEMENTSOF(restart_keys); i++) {
                char **dst = KEY_PTR(next, i), **src = KEY_PTR(running, i);
                char *tmp = *dst;
                *dst = *src;
                *src = tmp;
        }
        next->runtime.enabled = running->runtime.enabled;
        next->update.enabled = running->update.enabled;
}
