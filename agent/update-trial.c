/* The update manager's trial: the health gate, commit and rollback, the models' links, the
 * reboot (see update-internal.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/update-internal.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/statefile.h"
#include "update/slot.h"

#define GATE_TICK_USEC (500 * 1000ULL)
#define REBOOT_DELAY_USEC (1000 * 1000ULL)

/* ---- reboot -------------------------------------------------------------------------- */

static int on_reboot_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        struct update_manager *m = userdata;
        if (si->si_code != CLD_EXITED || si->si_status != 0)
                log_error("update: the reboot command failed (status %d)", si->si_status);
        m->reboot_pid = 0;
        sd_event_source_unref(s);
        return 0;
}

static int on_reboot_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct update_manager *m = userdata;
        m->reboot_timer = sd_event_source_unref(m->reboot_timer);
        const struct agent_update_config *u = &m->cfg->update;
        if (u->n_reboot_args == 0) {
                log_notice("update: a reboot is needed to continue (no update.reboot_command set)");
                return 0;
        }
        log_notice("update: rebooting with %s", u->reboot_command[0]);
        pid_t pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "update: cannot fork for the reboot command");
        if (pid == 0) {
                sigset_t all;
                sigemptyset(&all);
                (void) sigprocmask(SIG_SETMASK, &all, NULL);
                (void) setsid();
                execv(u->reboot_command[0], u->reboot_command);
                _exit(127);
        }
        m->reboot_pid = pid;
        (void) sd_event_add_child(m->event, NULL, pid, WEXITED, on_reboot_child, m);
        return 0;
}

void um_request_reboot(struct update_manager *m) {
        m->reboot_required = true;
        if (m->reboot_timer)
                return;
        (void) sd_event_add_time_relative(m->event, &m->reboot_timer, CLOCK_MONOTONIC,
                                          REBOOT_DELAY_USEC, 0, on_reboot_timer, m);
}

/* ---- models --------------------------------------------------------------------------- */

static void restart_model_users(struct update_manager *m, const char *name) {
        if (!m->runtime)
                return;
        char dir[PATH_MAX], names[512];
        snprintf(dir, sizeof(dir), "%s/%s", m->cfg->update.models_dir, name);
        int n = runtime_restart_using_path(m->runtime, dir, names, sizeof(names));
        if (n > 0)
                log_notice("update: model %s switched; restarted %s", name, names);
}

/* Point every model of the update at target (forward) or back at previous. */
static int models_switch(struct update_manager *m, bool forward, char *msg, size_t size) {
        int result = 0;
        for (size_t i = 0; i < m->state.n_models; i++) {
                const struct update_model_target *t = &m->state.models[i];
                char want = forward ? t->target : t->previous, now = 0;
                int r = model_slot_current(m->cfg->update.models_dir, t->name, &now);
                if (r >= 0 && now == want)
                        continue;
                if (want)
                        r = model_slot_switch(m->cfg->update.models_dir, t->name, want);
                else {
                        /* a new model rolled back: no previous version to return to */
                        char link[PATH_MAX * 2];
                        snprintf(link, sizeof(link), "%s/%s/%s", m->cfg->update.models_dir, t->name,
                                 SLOT_MODEL_CURRENT);
                        r = unlink(link) < 0 && errno != ENOENT ? negative_errno() : 0;
                        if (r >= 0)
                                r = fsync_parent_dir(link);
                }
                if (r < 0) {
                        snprintf(msg, size, "model %s: cannot switch to %s: %s", t->name,
                                 want ? um_slot_str(want) : "none", strerror(-r));
                        result = r;
                        continue;
                }
                restart_model_users(m, t->name);
        }
        return result;
}

/* ---- the trial ------------------------------------------------------------------------ */

void um_stop_gate(struct update_manager *m) {
        m->gate_timer = sd_event_source_disable_unref(m->gate_timer);
}

/*
 * When this trial began, on this kernel boot's CLOCK_MONOTONIC, kept in UM_TRIAL_FILE across
 * restarts of the agent: an agent that crashes (or is killed by its watchdog) before the
 * gate holds must not keep the trial open for ever by starting its timeout again each
 * time. A new kernel boot (its boot_id) or another bundle starts a new trial clock.
 */
static uint64_t trial_begin_usec(struct update_manager *m) {
        uint64_t now = um_monotonic_usec(m);
        char path[PATH_MAX], kboot[64] = "";
        snprintf(path, sizeof(path), "%s/sys/kernel/random/boot_id", m->cfg->paths.procfs_root);
        _cleanup_free_ char *id = NULL;
        size_t n;
        if (read_file_bounded(path, sizeof(kboot) - 1, &id, &n) < 0 || n < 8) {
                log_warning("update: %s unreadable: the trial timeout restarts with the agent", path);
                return now;
        }
        snprintf(kboot, sizeof(kboot), "%.*s", (int) strcspn(id, "\n"), id);
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (statefile_load(m->cfg->update.work_dir, UM_TRIAL_FILE, &text, &len, NULL) >= 0) {
                json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
                const char *b = json_string_value(json_object_get(o, "kernel_boot_id"));
                const char *d = json_string_value(json_object_get(o, "manifest_sha256"));
                json_int_t t = json_integer_value(json_object_get(o, "started_monotonic_usec"));
                bool same = b && d && streq(b, kboot) && streq(d, m->state.manifest_sha256) && t > 0 &&
                            (uint64_t) t <= now;
                json_decref(o);
                if (same) {
                        log_notice("update: the trial began %.1f s ago, before the agent restarted",
                                   (double) (now - (uint64_t) t) / 1e6);
                        return (uint64_t) t;
                }
        }
        json_t *o = json_pack("{s:i, s:s, s:s, s:I}", "format", 1, "kernel_boot_id", kboot, "manifest_sha256",
                              m->state.manifest_sha256, "started_monotonic_usec", (json_int_t) now);
        int r = o ? statefile_save_json(m->cfg->update.work_dir, UM_TRIAL_FILE, o) : -ENOMEM;
        json_decref(o);
        if (r < 0)
                log_warning("update: cannot keep the trial's start: its timeout restarts with the agent");
        return now;
}

int um_do_commit(struct update_manager *m, const char *why, char *msg, size_t size) {
        um_stop_gate(m);
        if (m->state.has_rootfs) {
                int r = um_boot_update(m, UM_BOOT_GOOD, m->state.rootfs_target, msg, size);
                if (r < 0)
                        return r;
        }
        if (m->state.security_version > m->state.min_security_version)
                m->state.min_security_version = m->state.security_version;
        m->reboot_required = false;
        int r = um_set_phase(m, UPDATE_COMMITTED, "%s", why);
        if (r >= 0)
                um_record_remove(m->cfg->update.work_dir, UM_TRIAL_FILE); /* only once it is over */
        return r;
}

int um_do_rollback(struct update_manager *m, bool reboot, const char *fmt, ...) {
        char reason[UPDATE_REASON_MAX], msg[512] = "";
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        um_stop_gate(m);
        int r = 0;
        if (m->state.has_rootfs) {
                r = um_boot_update(m, UM_BOOT_BAD, m->state.rootfs_target, msg, sizeof(msg));
                if (r < 0)
                        log_error("update: rollback: %s", msg);
        }
        if (models_switch(m, false, msg, sizeof(msg)) < 0)
                log_error("update: rollback: %s", msg);
        int q = um_set_phase(m, UPDATE_ROLLED_BACK, "%s", reason);
        if (q >= 0)
                um_record_remove(m->cfg->update.work_dir, UM_TRIAL_FILE);
        if (reboot && m->state.has_rootfs && m->booted == m->state.rootfs_target)
                um_request_reboot(m);
        return r < 0 ? r : q;
}

static bool gate_ok(struct update_manager *m, char *why, size_t size) {
        if (m->health)
                return health_monitor_gate(m->health, why, size);
        if (m->runtime)
                return runtime_critical_workloads_ok(m->runtime, why, size);
        return true;
}

static int on_gate_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        struct update_manager *m = userdata;
        uint64_t now = um_monotonic_usec(m);
        const struct agent_update_config *u = &m->cfg->update;
        char why[256] = "";
        if (gate_ok(m, why, sizeof(why))) {
                if (!m->gate_ok_since_usec)
                        m->gate_ok_since_usec = now;
                m->gate_why[0] = '\0';
                if (now - m->gate_ok_since_usec >= (uint64_t) u->gate_sec * 1000000ULL) {
                        char msg[512] = "";
                        char reason[128];
                        snprintf(reason, sizeof(reason), "the health gate held for %" PRId64 " s",
                                 u->gate_sec);
                        if (um_do_commit(m, reason, msg, sizeof(msg)) < 0)
                                log_error("update: commit failed: %s", msg);
                        return 0;
                }
        } else {
                if (m->gate_ok_since_usec || strcmp(why, m->gate_why) != 0)
                        log_warning("update: health gate not passing: %s", why);
                m->gate_ok_since_usec = 0;
                snprintf(m->gate_why, sizeof(m->gate_why), "%s", why);
        }
        if (now - m->trial_started_usec >= (uint64_t) u->trial_timeout_sec * 1000000ULL) {
                (void) um_do_rollback(m, true,
                                   "the health gate did not hold for %" PRId64 " s within %" PRId64
                                   " s: %s",
                                   u->gate_sec, u->trial_timeout_sec,
                                   m->gate_why[0] ? m->gate_why : "no reason given");
                return 0;
        }
        (void) sd_event_source_set_time_relative(s, GATE_TICK_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

int um_begin_trial(struct update_manager *m) {
        char msg[512] = "";
        if (models_switch(m, true, msg, sizeof(msg)) < 0)
                return um_do_rollback(m, true, "%s", msg);
        if (m->state.phase == UPDATE_READY) {
                int r = um_set_phase(m, UPDATE_TRIAL, m->state.has_rootfs ? "booted slot %c" : "models switched",
                                  m->booted);
                if (r < 0)
                        return r;
        }
        m->reboot_required = false;
        m->trial_started_usec = trial_begin_usec(m);
        m->gate_ok_since_usec = 0;
        m->gate_why[0] = '\0';
        um_stop_gate(m);
        int r = sd_event_add_time_relative(m->event, &m->gate_timer, CLOCK_MONOTONIC, 0, 0,
                                           on_gate_tick, m);
        if (r < 0)
                return log_error_errno(r, "update: cannot start the health gate timer");
        log_notice("update: trial of %s %s: committing after the health gate holds %" PRId64
                   " s (timeout %" PRId64 " s)",
                   m->state.bundle_id, m->state.version, m->cfg->update.gate_sec,
                   m->cfg->update.trial_timeout_sec);
        return 0;
}

json_t *um_trial_status_json(struct update_manager *m) {
        if (m->state.phase != UPDATE_TRIAL || !m->gate_timer)
                return NULL;
        uint64_t now = um_monotonic_usec(m);
        return json_pack("{s:I, s:I, s:I, s:I, s:s?}", "elapsed_sec",
                         (json_int_t) ((now - m->trial_started_usec) / 1000000), "gate_ok_for_sec",
                         (json_int_t) (m->gate_ok_since_usec ? (now - m->gate_ok_since_usec) / 1000000 : 0),
                         "gate_sec", (json_int_t) m->cfg->update.gate_sec, "timeout_sec",
                         (json_int_t) m->cfg->update.trial_timeout_sec, "gate_failing",
                         m->gate_why[0] ? m->gate_why : NULL);
}
