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

static void restart_model_users(struct update_manager *m, const struct update_model_target *t) {
        if (!m->runtime)
                return;
        char dir[PATH_MAX], names[512];
        snprintf(dir, sizeof(dir), "%s/%s", um_slots_dir(&m->cfg->update, t->app), t->name);
        /* An app's workloads that follow its current member; a model's, by their binds. */
        int n = t->app ? runtime_restart_app_users(m->runtime, t->name, names, sizeof(names))
                       : runtime_restart_using_path(m->runtime, dir, names, sizeof(names));
        if (n > 0)
                log_notice("update: %s %s switched; restarted %s", um_slots_kind(t->app), t->name, names);
}

/* Point every model of the update at target (forward) or back at previous. */
static int models_switch(struct update_manager *m, bool forward, char *msg, size_t size) {
        int result = 0;
        for (size_t i = 0; i < m->state.n_models; i++) {
                const struct update_model_target *t = &m->state.models[i];
                const char *base = um_slots_dir(&m->cfg->update, t->app);
                char want = forward ? t->target : t->previous, now = 0;
                int r = model_slot_current(base, t->name, &now);
                if (r >= 0 && now == want)
                        continue;
                if (want)
                        r = model_slot_switch(base, t->name, want);
                else {
                        /* a new model rolled back: no previous version to return to */
                        char link[PATH_MAX * 2];
                        snprintf(link, sizeof(link), "%s/%s/%s", base, t->name, SLOT_MODEL_CURRENT);
                        r = unlink(link) < 0 && errno != ENOENT ? negative_errno() : 0;
                        if (r >= 0)
                                r = fsync_parent_dir(link);
                }
                if (r < 0) {
                        snprintf(msg, size, "%s %s: cannot switch to %s: %s", um_slots_kind(t->app), t->name,
                                 want ? um_slot_str(want) : "none", strerror(-r));
                        result = r;
                        continue;
                }
                restart_model_users(m, t);
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
 * time. A new kernel boot (its boot_id) or another bundle starts a new trial clock. The
 * file also keeps what the trial learnt (the health gate held once, the controller
 * reached from this slot), so a restart during a long wait for the controller goes on.
 */
static void trial_save(struct update_manager *m) {
        if (!m->trial_kernel_boot_id[0])
                return;
        json_t *o = json_pack("{s:i, s:s, s:s, s:I, s:b, s:I}", "format", 1, "kernel_boot_id",
                              m->trial_kernel_boot_id, "manifest_sha256", m->state.manifest_sha256,
                              "started_monotonic_usec", (json_int_t) m->trial_started_usec, "health_held",
                              m->health_held, "controller_reached_monotonic_usec",
                              (json_int_t) m->controller_reached_usec);
        int r = o ? statefile_save_json(m->cfg->update.work_dir, UM_TRIAL_FILE, o) : -ENOMEM;
        json_decref(o);
        if (r < 0)
                log_warning("update: cannot keep the trial's state: it starts again with the agent");
}

static void trial_load(struct update_manager *m) {
        uint64_t now = um_monotonic_usec(m);
        m->trial_started_usec = now;
        m->health_held = false;
        m->controller_reached_usec = 0;
        m->trial_kernel_boot_id[0] = '\0';
        if (read_kernel_boot_id(m->cfg->paths.procfs_root, m->trial_kernel_boot_id,
                                sizeof(m->trial_kernel_boot_id)) < 0) {
                m->trial_kernel_boot_id[0] = '\0';
                log_warning("update: %s/sys/kernel/random/boot_id unreadable: the trial timeout restarts with the agent",
                            m->cfg->paths.procfs_root);
                return;
        }
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (statefile_load(m->cfg->update.work_dir, UM_TRIAL_FILE, &text, &len, NULL) >= 0) {
                json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
                const char *b = json_string_value(json_object_get(o, "kernel_boot_id"));
                const char *d = json_string_value(json_object_get(o, "manifest_sha256"));
                json_int_t t = json_integer_value(json_object_get(o, "started_monotonic_usec"));
                json_int_t c = json_integer_value(json_object_get(o, "controller_reached_monotonic_usec"));
                bool same = b && d && streq(b, m->trial_kernel_boot_id) && streq(d, m->state.manifest_sha256) &&
                            t > 0 && (uint64_t) t <= now;
                if (same) {
                        m->trial_started_usec = (uint64_t) t;
                        m->health_held = json_is_true(json_object_get(o, "health_held"));
                        if (c >= t && (uint64_t) c <= now)
                                m->controller_reached_usec = (uint64_t) c;
                        log_notice("update: the trial began %.1f s ago, before the agent restarted%s%s",
                                   (double) (now - (uint64_t) t) / 1e6,
                                   m->health_held ? "; the health gate had held" : "",
                                   m->controller_reached_usec ? "; the controller had been reached" : "");
                }
                json_decref(o);
                if (same)
                        return;
        }
        trial_save(m);
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
        /* An app's trial also holds its own workloads to it: each one following the new
         * member runs and passes its probe, or the app goes back. */
        for (size_t i = 0; m->runtime && i < m->state.n_models; i++)
                if (m->state.models[i].app && !runtime_app_users_ok(m->runtime, m->state.models[i].name, why, size))
                        return false;
        if (m->health)
                return health_monitor_gate(m->health, why, size);
        if (m->runtime)
                return runtime_critical_workloads_ok(m->runtime, why, size);
        return true;
}

/*
 * Whether this trial waits for the controller, and if not, why (for the log and the
 * status). Only a rootfs trial does: a new slot brings its own network, TLS and link
 * configuration, which the health gate cannot see.
 */
static bool controller_required(struct update_manager *m, const char **ret_why_not) {
        const char *why = NULL;
        if (!m->state.has_rootfs)
                why = "a models-only trial (the link runs from the same slot)";
        else if (!m->cfg->link.enabled)
                why = "the link is disabled (link.enabled)";
        else if (m->cfg->update.commit_without_controller)
                why = "update.commit_without_controller is set";
        if (ret_why_not)
                *ret_why_not = why;
        return !why;
}

static void report_gate(struct update_manager *m, const char *state, const char *fmt, ...) _printf_(3, 4);
static void report_gate(struct update_manager *m, const char *state, const char *fmt, ...) {
        char reason[UPDATE_REASON_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        log_notice("update: %s", reason);
        json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s?}", "state", state, "bundle_id", m->state.bundle_id,
                                 "version", m->state.version, "reason", reason, "slot",
                                 m->state.has_rootfs ? um_slot_str(m->state.rootfs_target) : NULL);
        if (body)
                (void) event_queue_push(m->events, EVENT_NORMAL, "update.gate", body, um_realtime_usec(),
                                        um_monotonic_usec(m));
}

/* A monotonic time as unix seconds (the plan's clock), to the nearest second, and back. */
static int64_t mono_to_unix(uint64_t mono, uint64_t now_mono) {
        int64_t real = (int64_t) um_realtime_usec() + ((int64_t) mono - (int64_t) now_mono);
        return (real + 500000) / 1000000;
}

static uint64_t unix_to_mono(int64_t t, uint64_t now_mono) {
        int64_t m = (int64_t) now_mono + t * 1000000 - (int64_t) um_realtime_usec();
        return m > 0 ? (uint64_t) m : 0;
}

static struct trial_gate_decision gate_decide(struct update_manager *m, uint64_t now, bool passing) {
        const struct agent_update_config *u = &m->cfg->update;
        struct trial_gate_input in = {
                .now = now,
                .started = m->trial_started_usec,
                .gate = (uint64_t) u->gate_sec * 1000000ULL,
                .timeout = (uint64_t) u->trial_timeout_sec * 1000000ULL,
                .health_passing = passing,
                .health_since = m->gate_ok_since_usec,
                .health_held = m->health_held,
                .controller_required = controller_required(m, NULL),
                .controller_reached = m->controller_reached_usec != 0,
                .window_grace = (uint64_t) m->cfg->link.timeout_sec * 1000000ULL,
                .controller_wait = (uint64_t) u->controller_wait_sec * 1000000ULL,
        };
        if (in.controller_required && m->contact_window) {
                int64_t from = mono_to_unix(m->trial_started_usec, now);
                int64_t start, end;
                if (m->contact_window(m->contact_window_userdata, from, from + u->trial_timeout_sec, &start,
                                      &end)) {
                        in.has_window = true;
                        in.window_start = unix_to_mono(start, now);
                        in.window_end = unix_to_mono(end, now);
                }
        }
        return trial_gate_decide(&in);
}

static int on_gate_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        struct update_manager *m = userdata;
        uint64_t now = um_monotonic_usec(m);
        const struct agent_update_config *u = &m->cfg->update;
        char why[256] = "";
        bool passing = gate_ok(m, why, sizeof(why));
        if (passing) {
                if (!m->gate_ok_since_usec)
                        m->gate_ok_since_usec = now;
                m->gate_why[0] = '\0';
        } else {
                if (m->gate_ok_since_usec || strcmp(why, m->gate_why) != 0)
                        log_warning("update: health gate not passing: %s", why);
                m->gate_ok_since_usec = 0;
                snprintf(m->gate_why, sizeof(m->gate_why), "%s", why);
        }
        struct trial_gate_decision d = gate_decide(m, now, passing);
        m->last_decision = d;
        if (d.health_held && !m->health_held) {
                m->health_held = true;
                trial_save(m);
        }
        const char *slot = m->state.has_rootfs ? um_slot_str(m->state.rootfs_target) : "?";
        switch (d.verdict) {
        case TRIAL_GATE_COMMIT: {
                char msg[512] = "", reason[160];
                if (controller_required(m, NULL))
                        snprintf(reason, sizeof(reason),
                                 "the health gate held for %" PRId64 " s and the controller was reached from slot %s",
                                 u->gate_sec, slot);
                else
                        snprintf(reason, sizeof(reason), "the health gate held for %" PRId64 " s", u->gate_sec);
                if (um_do_commit(m, reason, msg, sizeof(msg)) < 0)
                        log_error("update: commit failed: %s", msg);
                return 0;
        }
        case TRIAL_GATE_ROLLBACK_HEALTH:
                if (!m->health_held)
                        (void) um_do_rollback(m, true,
                                              "the health gate did not hold for %" PRId64 " s within %" PRId64
                                              " s: %s",
                                              u->gate_sec, u->trial_timeout_sec,
                                              m->gate_why[0] ? m->gate_why : "no reason given");
                else
                        (void) um_do_rollback(m, true,
                                              "the health gate was not passing when the trial ended, %" PRIu64
                                              " s after it began: %s",
                                              (now - m->trial_started_usec) / 1000000,
                                              m->gate_why[0] ? m->gate_why : "no reason given");
                return 0;
        case TRIAL_GATE_ROLLBACK_CONTROLLER:
                (void) um_do_rollback(m, true, "the controller was not reached from slot %s within %" PRIu64 " s (%s)",
                                      slot, (d.controller_deadline - m->trial_started_usec) / 1000000,
                                      d.deadline_kind == TRIAL_GATE_DEADLINE_PASS
                                              ? "the contact pass planned in the trial window is over"
                                              : "no contact pass planned in the trial window: update.controller_wait_sec");
                return 0;
        case TRIAL_GATE_WAIT:
                break;
        }
        if (d.waiting_for_controller && !m->waiting_for_controller)
                report_gate(m, "waiting-for-controller",
                            "the health gate held for %" PRId64 " s; the commit waits for the controller to be reached "
                            "from slot %s, at most %" PRIu64 " s more",
                            u->gate_sec, slot, d.controller_deadline > now ? (d.controller_deadline - now) / 1000000 : 0);
        m->waiting_for_controller = d.waiting_for_controller;
        (void) sd_event_source_set_time_relative(s, GATE_TICK_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

void um_trial_controller_reached(struct update_manager *m) {
        if (m->state.phase != UPDATE_TRIAL || !m->gate_timer || m->controller_reached_usec)
                return;
        if (!controller_required(m, NULL))
                return;
        uint64_t now = um_monotonic_usec(m);
        m->controller_reached_usec = now > m->trial_started_usec ? now : m->trial_started_usec + 1;
        trial_save(m);
        report_gate(m, "controller-reached", "the controller was reached from slot %s, %.1f s into the trial",
                    um_slot_str(m->state.rootfs_target), (double) (now - m->trial_started_usec) / 1e6);
        /* decide now, not at the next tick */
        (void) sd_event_source_set_time_relative(m->gate_timer, 0);
        (void) sd_event_source_set_enabled(m->gate_timer, SD_EVENT_ON);
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
        trial_load(m);
        m->gate_ok_since_usec = 0;
        m->gate_why[0] = '\0';
        m->waiting_for_controller = false;
        m->last_decision = (struct trial_gate_decision){};
        um_stop_gate(m);
        int r = sd_event_add_time_relative(m->event, &m->gate_timer, CLOCK_MONOTONIC, 0, 0,
                                           on_gate_tick, m);
        if (r < 0)
                return log_error_errno(r, "update: cannot start the health gate timer");
        const char *why_not = NULL;
        if (controller_required(m, &why_not))
                log_notice("update: trial of %s %s: committing after the health gate holds %" PRId64
                           " s (timeout %" PRId64 " s) and the controller is reached from slot %s (a contact "
                           "pass planned in the trial window, else at most %" PRId64 " s)",
                           m->state.bundle_id, m->state.version, m->cfg->update.gate_sec,
                           m->cfg->update.trial_timeout_sec, um_slot_str(m->state.rootfs_target),
                           m->cfg->update.controller_wait_sec);
        else
                log_notice("update: trial of %s %s: committing after the health gate holds %" PRId64
                           " s (timeout %" PRId64 " s); the controller is not waited for: %s",
                           m->state.bundle_id, m->state.version, m->cfg->update.gate_sec,
                           m->cfg->update.trial_timeout_sec, why_not);
        return 0;
}

/* What the commit gate waits for: the controller's part, for the status. */
static json_t *controller_status_json(struct update_manager *m, uint64_t now, char *summary, size_t size) {
        const char *why_not = NULL;
        if (!controller_required(m, &why_not)) {
                snprintf(summary, size, "not waited for: %s", why_not);
                return json_pack("{s:b, s:b, s:s}", "required", false, "reached", false, "not_required", why_not);
        }
        if (m->controller_reached_usec) {
                snprintf(summary, size, "reached from slot %s, %" PRIu64 " s into the trial",
                         um_slot_str(m->state.rootfs_target), (m->controller_reached_usec - m->trial_started_usec) / 1000000);
                return json_pack("{s:b, s:b, s:I}", "required", true, "reached", true, "reached_after_sec",
                                 (json_int_t) ((m->controller_reached_usec - m->trial_started_usec) / 1000000));
        }
        /* before the first tick: what it will decide */
        struct trial_gate_decision d = m->last_decision.deadline_kind != TRIAL_GATE_DEADLINE_NONE
                                               ? m->last_decision
                                               : gate_decide(m, now, m->gate_ok_since_usec != 0);
        int64_t until = mono_to_unix(d.controller_deadline, now);
        const char *by = d.deadline_kind == TRIAL_GATE_DEADLINE_PASS ? "the end of the contact pass planned in the trial window"
                                                                     : "update.controller_wait_sec";
        snprintf(summary, size, "not reached yet; waits %" PRIu64 " s more (%s), then rolls back",
                 d.controller_deadline > now ? (d.controller_deadline - now) / 1000000 : 0, by);
        return json_pack("{s:b, s:b, s:I, s:I, s:s}", "required", true, "reached", false, "waits_until",
                         (json_int_t) until, "waits_sec",
                         (json_int_t) (d.controller_deadline > now ? (d.controller_deadline - now) / 1000000 : 0),
                         "waits_for", trial_gate_deadline_kind_to_string(d.deadline_kind));
}

json_t *um_trial_status_json(struct update_manager *m) {
        if (m->state.phase != UPDATE_TRIAL || !m->gate_timer)
                return NULL;
        uint64_t now = um_monotonic_usec(m);
        char summary[256];
        json_t *controller = controller_status_json(m, now, summary, sizeof(summary));
        return json_pack("{s:I, s:I, s:I, s:I, s:s?, s:b, s:s, s:o?, s:s}", "elapsed_sec",
                         (json_int_t) ((now - m->trial_started_usec) / 1000000), "gate_ok_for_sec",
                         (json_int_t) (m->gate_ok_since_usec ? (now - m->gate_ok_since_usec) / 1000000 : 0),
                         "gate_sec", (json_int_t) m->cfg->update.gate_sec, "timeout_sec",
                         (json_int_t) m->cfg->update.trial_timeout_sec, "gate_failing",
                         m->gate_why[0] ? m->gate_why : NULL, "health_held", m->health_held, "waiting_for",
                         m->waiting_for_controller ? "controller" : "health-gate", "controller", controller,
                         "controller_summary", summary);
}
