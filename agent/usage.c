/* The usage meter on the agent's loop: see agent/usage.h and docs/usage.md. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/trusted-time.h"
#include "agent/usage-meter.h"
#include "agent/usage.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/statefile.h"
#include "update/manifest.h"

#define STATE_NAME "usage"

struct usage {
        sd_event *event;
        struct usage_hooks h;
        sd_event_source *timer;
        struct usage_meter meter;
        char boot_id[USAGE_BOOT_ID_MAX + 1];
        uint64_t next_report_usec; /* CLOCK_MONOTONIC */
        uint64_t last_report_usec;
        bool full_warned;
};

static uint64_t now_mono(struct usage *u) {
        uint64_t t = 0;
        (void) sd_event_now(u->event, CLOCK_MONOTONIC, &t);
        return t;
}

static int64_t now_sec(void) {
        return trusted_clock_now_usec() / 1000000;
}

static int new_meter_id(char id[USAGE_METER_ID_LEN + 1]) {
        uint8_t b[USAGE_METER_ID_LEN / 2];
        size_t done = 0;
        while (done < sizeof(b)) {
                ssize_t n = getrandom(b + done, sizeof(b) - done, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) n;
        }
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(id + 2 * i, 3, "%02x", b[i]);
        return 0;
}

/* The kernel's boot id: the monotonic clock, /proc/stat and the cgroups began with it. */
static void read_boot_id(struct usage *u) {
        if (read_kernel_boot_id(u->h.cfg->paths.procfs_root, u->boot_id, sizeof(u->boot_id)) < 0) {
                u->boot_id[0] = '\0';
                log_warning("usage: cannot read %s/sys/kernel/random/boot_id: a reboot is told from an agent restart "
                            "by the clock only", u->h.cfg->paths.procfs_root);
        }
}

static void save(struct usage *u) {
        json_t *j = usage_meter_to_json(&u->meter);
        int r = j ? statefile_save_json(u->h.cfg->state_dir, STATE_NAME, j) : -ENOMEM;
        json_decref(j);
        if (r < 0)
                log_error_errno(r, "usage: cannot save %s/%s", u->h.cfg->state_dir, STATE_NAME);
}

/* The board's power: the configured hwmon sensors of the latest health snapshot. */
static bool board_power(struct usage *u, const struct health_snapshot *s, double *ret_w) {
        const char *chip = u->h.cfg->usage.board_power_chip, *label = u->h.cfg->usage.board_power_label;
        if (!chip || !s)
                return false;
        uint64_t uw = 0;
        bool found = false;
        for (size_t i = 0; i < s->n_powers; i++) {
                const struct hwmon_power *p = &s->powers[i];
                if (!p->valid || !streq(p->chip, chip) || (label && !streq(p->label, label)))
                        continue;
                uw += p->power_uw;
                found = true;
        }
        *ret_w = (double) uw / 1e6;
        return found;
}

static void report(struct usage *u, enum event_priority p) {
        uint64_t now = now_mono(u);
        double interval = u->last_report_usec ? (double) (now - u->last_report_usec) / 1e6 : 0.0;
        json_t *body = usage_meter_report(&u->meter, now_sec(), interval);
        if (!body) {
                log_error("usage: cannot build the report");
                return;
        }
        u->last_report_usec = now;
        /* Kept first: a report number is never used twice (one skipped changes nothing, the
         * totals are cumulative). */
        save(u);
        int r = event_queue_push(u->h.events, p, "usage.report", body, (uint64_t) trusted_clock_now_usec(), now);
        if (r < 0)
                log_warning_errno(r, "usage: report %" PRIu64 " of meter %s not queued", u->meter.reports,
                                  u->meter.meter);
}

/* A new meter when the entries are full: the old one's last totals go up first, critical;
 * the new one keeps the baselines of the workloads in present (NULL: all it has). */
static int rotate(struct usage *u, const struct usage_sample *present) {
        char id[USAGE_METER_ID_LEN + 1];
        int r = new_meter_id(id);
        if (r < 0)
                return log_error_errno(r, "usage: cannot make a meter id");
        report(u, EVENT_CRITICAL);
        log_notice("usage: meter %s is full (%d entries): meter %s goes on", u->meter.meter, USAGE_MAX_ENTRIES, id);
        r = usage_meter_rotate(&u->meter, id, now_sec(), present);
        if (r >= 0)
                save(u);
        return r;
}

static void add_link_bytes(struct usage *u, const char *app, const char *tenant, const char *deployment,
                           uint64_t bytes) {
        int r = usage_meter_add_link_bytes(&u->meter, app, tenant, deployment, bytes);
        if (r == -ENOSPC && rotate(u, NULL) >= 0)
                r = usage_meter_add_link_bytes(&u->meter, app, tenant, deployment, bytes);
        if (r < 0)
                log_warning_errno(r, "usage: %" PRIu64 " bytes fetched for app %s (tenant \"%s\", deployment \"%s\") "
                                  "not counted", bytes, app, tenant, deployment);
}

/* An app's downloads are shared evenly by the deployments and tenants whose workloads use
 * it (the first takes what does not divide): one bundle serves them all. */
static void take_link_bytes(struct usage *u) {
        char app[MANIFEST_NAME_MAX + 1];
        uint64_t bytes = update_manager_take_fetched(u->h.update, app, sizeof(app));
        if (bytes == 0 || !app[0])
                return; /* the node's own (firmware, an operator's bundle): not metered */
        struct desired_usage_label labels[DESIRED_MAX_WORKLOADS];
        size_t n = desired_usage_app_labels(u->h.desired, app, labels, ELEMENTSOF(labels));
        if (n == 0) {
                add_link_bytes(u, app, "", "", bytes);
                return;
        }
        for (size_t i = 0; i < n; i++)
                add_link_bytes(u, app, labels[i].tenant, labels[i].deployment,
                               bytes / n + (i == 0 ? bytes % n : 0));
}

static void fetch_starting(void *userdata) {
        struct usage *u = userdata;
        take_link_bytes(u);
}

/* What one sample reads: on the heap, not the stack (about 200 KiB). */
struct sample_buffers {
        struct workload_usage w[USAGE_MAX_ENTRIES];
        struct usage_workload_sample ws[USAGE_MAX_ENTRIES];
        char deployments[USAGE_MAX_ENTRIES][USAGE_NAME_MAX + 1];
};

static void sample(struct usage *u) {
        _cleanup_free_ struct sample_buffers *b = malloc(sizeof(*b));
        if (!b) {
                log_error("usage: no memory for a sample");
                return;
        }
        struct workload_usage *w = b->w;
        struct usage_workload_sample *ws = b->ws;
        char (*deployments)[USAGE_NAME_MAX + 1] = b->deployments;
        size_t n = runtime_usage(u->h.runtime, w, USAGE_MAX_ENTRIES);
        for (size_t i = 0; i < n; i++) {
                char tenant[USAGE_NAME_MAX + 1];
                desired_usage_labels(u->h.desired, w[i].name, deployments[i], sizeof(deployments[i]), tenant,
                                     sizeof(tenant));
                ws[i] = (struct usage_workload_sample){.workload = w[i].name, .tenant = w[i].tenant,
                                                       .deployment = deployments[i], .app = w[i].app,
                                                       .cpu_usec = w[i].cpu_usec, .memory_bytes = w[i].memory_bytes,
                                                       .instance = w[i].instance};
        }
        const struct health_snapshot *snap = health_monitor_snapshot(u->h.health);
        struct usage_sample s = {.mono_usec = now_mono(u), .boot_id = u->boot_id, .workloads = ws, .n_workloads = n,
                                 .clk_tck = sysconf(_SC_CLK_TCK)};
        if (snap && snap->cpu_valid) {
                s.cpu_valid = true;
                s.cpu = snap->cpu;
        }
        /* the bounds a reading is held to (usage_meter_sample) */
        long ncpu = sysconf(_SC_NPROCESSORS_CONF);
        s.n_cpus = ncpu > 0 ? (unsigned) ncpu : 0;
        if (snap && snap->mem_valid)
                s.mem_total_bytes = snap->mem_total;
        s.power_valid = board_power(u, snap, &s.power_w);
        int r = usage_meter_sample(&u->meter, &s);
        if (r == -ENOSPC && rotate(u, &s) >= 0)
                r = usage_meter_sample(&u->meter, &s);
        if (r < 0 && !u->full_warned) {
                log_warning_errno(r, "usage: a sample of %zu workloads not taken", n);
                u->full_warned = true;
        } else if (r >= 0)
                u->full_warned = false;
        take_link_bytes(u);
        /* Not kept here: at each report (and at exit). Totals and baselines are kept
         * together, so an older state counts again from its older baselines, never twice;
         * a power cut loses at most report_sec. Flash is spared a write every sample. */
}

/* A workload is about to be forgotten with its cgroup: what it used since the last sample
 * is read now, or it would be lost. */
static void workload_removing(void *userdata, const char *name) {
        struct usage *u = userdata;
        log_debug("usage: workload %s is removed: a last sample of its cgroup", name);
        sample(u);
}

static int arm(struct usage *u);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        struct usage *u = userdata;
        sample(u);
        if (now_mono(u) >= u->next_report_usec) {
                report(u, EVENT_NORMAL);
                u->next_report_usec = now_mono(u) + (uint64_t) u->h.cfg->usage.report_sec * 1000000ULL;
        }
        return arm(u);
}

static int arm(struct usage *u) {
        uint64_t next = now_mono(u) + (uint64_t) u->h.cfg->usage.sample_sec * 1000000ULL;
        if (u->timer)
                return sd_event_source_set_time(u->timer, next) < 0 ||
                               sd_event_source_set_enabled(u->timer, SD_EVENT_ONESHOT) < 0
                           ? -EIO
                           : 0;
        return sd_event_add_time(u->event, &u->timer, CLOCK_MONOTONIC, next, 100000, on_timer, u);
}

static int load(struct usage *u) {
        _cleanup_free_ char *text = NULL;
        int r = statefile_load(u->h.cfg->state_dir, STATE_NAME, &text, NULL, NULL);
        if (r >= 0) {
                json_error_t e;
                json_t *j = json_loads(text, 0, &e);
                char *why = NULL;
                r = j ? usage_meter_from_json(j, &u->meter, &why) : -EBADMSG;
                json_decref(j);
                if (r >= 0)
                        return 0;
                log_warning("usage: %s/%s is not a meter state (%s): a new meter begins", u->h.cfg->state_dir,
                            STATE_NAME, why ? why : e.text);
                free(why);
        } else if (r != -ENOENT)
                log_warning_errno(r, "usage: cannot read %s/%s: a new meter begins", u->h.cfg->state_dir, STATE_NAME);
        char id[USAGE_METER_ID_LEN + 1];
        if ((r = new_meter_id(id)) < 0)
                return log_error_errno(r, "usage: cannot make a meter id");
        usage_meter_init(&u->meter, id, now_sec());
        log_info("usage: meter %s begins", id);
        return 0;
}

int usage_new(sd_event *event, const struct usage_hooks *hooks, struct usage **ret) {
        struct usage *u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->event = sd_event_ref(event);
        u->h = *hooks;
        read_boot_id(u);
        int r = load(u);
        if (r < 0) {
                usage_free(u);
                return r;
        }
        if (u->h.update)
                update_manager_set_fetch_starting(u->h.update, fetch_starting, u);
        if (u->h.runtime)
                runtime_set_removing_handler(u->h.runtime, workload_removing, u);
        u->last_report_usec = now_mono(u);
        u->next_report_usec = u->last_report_usec + (uint64_t) u->h.cfg->usage.report_sec * 1000000ULL;
        /* the first sample at once: after a restart the gap is counted now */
        sample(u);
        if ((r = arm(u)) < 0) {
                usage_free(u);
                return r;
        }
        *ret = u;
        return 0;
}

void usage_free(struct usage *u) {
        if (!u)
                return;
        if (u->timer) {
                sample(u);
                save(u);
        }
        if (u->h.update)
                update_manager_set_fetch_starting(u->h.update, NULL, NULL);
        if (u->h.runtime)
                runtime_set_removing_handler(u->h.runtime, NULL, NULL);
        sd_event_source_disable_unref(u->timer);
        sd_event_unref(u->event);
        free(u);
}

void usage_reconfigure(struct usage *u) {
        if (u && u->timer)
                (void) arm(u);
}

json_t *usage_status_json(struct usage *u) {
        json_t *entries = json_array();
        for (size_t i = 0; entries && i < u->meter.n_entries; i++) {
                const struct usage_meter_entry *e = &u->meter.entries[i];
                json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:f,s:I}", "workload", e->workload, "tenant", e->tenant,
                                      "deployment", e->deployment, "app", e->app, "cpu_sec", e->total.cpu_sec,
                                      "memory_byte_sec", e->total.memory_byte_sec, "energy_j", e->total.energy_j,
                                      "link_bytes", (json_int_t) e->total.link_bytes);
                if (o)
                        json_array_append_new(entries, o);
        }
        json_t *o = json_pack("{s:s,s:I,s:I,s:o}", "meter", u->meter.meter, "reports", (json_int_t) u->meter.reports,
                              "started", (json_int_t) u->meter.started, "entries", entries ? entries : json_array());
        if (o && u->meter.have_power)
                json_object_set_new(o, "board_energy_j", json_real(u->meter.board_energy_j));
        return o;
}
