/* The update manager: the state machine on the event loop, the install on a worker thread. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "update/bootenv.h"
#include "update/bundle.h"
#include "lib/fileio.h"
#include "update/install.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "update/slot.h"
#include "lib/statefile.h"
#include "agent/update-manager.h"
#include "update/update-state.h"

#define STATE_FILE "state"
#define PROGRESS_FILE "progress"
#define GATE_TICK_USEC (500 * 1000ULL)
#define REBOOT_DELAY_USEC (1000 * 1000ULL)
#define DOWNLOAD_FILE "download.obundle"
#define HEAD_FETCH (64 * 1024)
#define HEAD_MAX (MANIFEST_MAX_SIZE + SIGNATURE_MAX_SIZE + 4 * 512)
#define FETCH_ATTEMPTS 4
#define SCRUB_FILE "scrub"
#define TRIAL_FILE "trial"
#define SCRUB_RETRY_USEC (600 * 1000000ULL) /* busy (an install, a trial): try again then */

/* One image of the install in progress: owned by the worker while it runs. */
struct job_image {
        const struct manifest_image *image; /* in the bundle's manifest */
        char slot_path[PATH_MAX];
        char active_path[PATH_MAX]; /* "" when there is none */
        char target;
        char record[PATH_MAX]; /* the state file name of the slot's manifest record */
        char active_record[PATH_MAX];
        uint8_t *done;
        uint64_t bundle_offset;
        int slot_fd, active_fd;
        struct install_index *index;
};

struct job {
        struct update_manager *m;
        struct bundle *bundle;
        struct job_image images[MANIFEST_MAX_IMAGES];
        size_t n_images;
        char manifest_sha256[SHA256_HEX_SIZE];
        char work_dir[PATH_MAX];
        /* Of the configuration, what the worker reads, copied when the job is prepared: a
         * reload (SIGHUP) frees and replaces the configuration while the worker runs. */
        char models_dir[PATH_MAX];
        uint64_t scrub_bytes_per_sec;
        uint64_t checkpoint_bytes;
        bool delta_scan;
        bool verify_first;
        bool has_rootfs;
        char rootfs_target;
        size_t current; /* image being written */
        uint64_t repaired_logged; /* of the image being written */
        int result;
        char *reason;
        /* a bundle fetched from the controller by ranges */
        bool remote;
        bool head_only; /* this run only fetches the manifest and signature */
        char url[2048];
        char etag[160];
        uint64_t remote_size;
        uint64_t fetched, budget; /* bytes this contact */
        CURL *curl;
        /* What the worker needs of the link's configuration, copied: a reload (SIGHUP) frees
         * and replaces the configuration's strings while the worker runs. */
        struct job_link {
                char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
                long connect_timeout_sec;
                int64_t max_recv_bytes_per_sec;
        } link;
        char head_path[PATH_MAX];
        /* a scrub: each image is a slot's kept manifest, checked against the slot */
        bool scrub;
        struct manifest *scrub_manifests[MANIFEST_MAX_IMAGES];
        struct install_scrub_stats scrub_stats[MANIFEST_MAX_IMAGES];
        char scrub_errors[MANIFEST_MAX_IMAGES][256];
        uint64_t scrub_started_usec;
        char progress_path[PATH_MAX + 16]; /* for messages */
};

struct update_manager {
        sd_event *event;
        const struct agent_config *cfg;
        const struct node_state *node;
        struct event_queue *events;
        struct runtime *runtime;
        struct health_monitor *health;

        struct update_state state;
        struct bootenv *bootenv; /* NULL: no rootfs slots on this node */
        char *boot_path;         /* its path, for messages from the worker: never m->cfg's,
                                  * which a reload frees while the worker runs */
        char booted;             /* from the kernel command line; 0 unknown */
        char boot_error[256];

        /* the worker */
        struct job *job;
        pthread_t thread;
        bool worker_running;
        atomic_int cancel; /* set on the loop, seen by the worker, its threads, its transfers */
        int efd;
        sd_event_source *efd_source;
        pthread_mutex_t lock; /* guards progress */
        pthread_mutex_t boot_lock; /* the worker takes the target out of the boot choices */
        struct install_stats progress;
        uint64_t progress_total, progress_before; /* bytes of all images; of images finished */
        /* Tests only (ORBIT_FAILPOINT_INSTALL_STALL_PERCENT): an install stops going on once
         * this much of it is durable, until cancelled, so a test can kill it exactly there. */
        double stall_percent;
        bool stall_logged;

        /* the trial */
        sd_event_source *gate_timer;
        uint64_t trial_started_usec, gate_ok_since_usec;
        char gate_why[256];

        sd_event_source *reboot_timer;
        sd_event_source *scrub_timer;
        json_t *scrub_last; /* the last scrub's result (persisted in SCRUB_FILE) */
        bool paused;           /* an install waits: a remote one for the link, any for space */
        bool paused_for_space; /* this pause (or the retry running now) is for lack of space */
        sd_event_source *space_timer; /* retries an install paused for space */
        bool reboot_required;
        pid_t reboot_pid;
        char last_error[UPDATE_REASON_MAX];
};

static uint64_t realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t monotonic_usec(struct update_manager *m) {
        uint64_t t = 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &t);
        return t;
}

static const char *slot_str(char s) {
        return s == 'A' ? "A" : s == 'B' ? "B" : NULL;
}

/* ---- persistence and reports -------------------------------------------------------- */

static int state_save(struct update_manager *m) {
        _cleanup_free_ char *text = NULL;
        int r = update_state_format(&m->state, &text);
        if (r < 0)
                return r;
        r = mkdir_parents(m->cfg->update.work_dir, 0700);
        if (r >= 0)
                r = statefile_save(m->cfg->update.work_dir, STATE_FILE, text, strlen(text));
        if (r < 0)
                log_error("update: cannot save the update state in %s: %s", m->cfg->update.work_dir,
                          strerror(-r));
        return r;
}

static void report_reason(struct update_manager *m, enum event_priority p, const char *kind,
                          const char *reason) {
        json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s?}", "phase",
                                 update_phase_to_string(m->state.phase), "bundle_id",
                                 m->state.bundle_id, "version", m->state.version,
                                 "security_version", (json_int_t) m->state.security_version,
                                 "reason", reason, "slot",
                                 m->state.has_rootfs ? slot_str(m->state.rootfs_target) : NULL);
        if (body)
                (void) event_queue_push(m->events, p, kind, body, realtime_usec(), monotonic_usec(m));
}

static void report(struct update_manager *m, enum event_priority p, const char *kind) {
        report_reason(m, p, kind, m->state.reason);
}

/* Persist a transition, then report it. Ends (committed, rolled back, failed) are
 * critical: an operator must learn of every one. */
static int set_phase(struct update_manager *m, enum update_phase to, const char *fmt, ...)
        _printf_(3, 4);
static int set_phase(struct update_manager *m, enum update_phase to, const char *fmt, ...) {
        char reason[UPDATE_REASON_MAX] = "";
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(reason, sizeof(reason), fmt, ap);
                va_end(ap);
        }
        enum update_phase from = m->state.phase;
        int r = update_state_set_phase(&m->state, to, reason, realtime_usec());
        if (r < 0) {
                log_error("update: refused transition %s -> %s", update_phase_to_string(from),
                          update_phase_to_string(to));
                return r;
        }
        r = state_save(m);
        bool outcome = to == UPDATE_COMMITTED || to == UPDATE_ROLLED_BACK || to == UPDATE_FAILED;
        char kind[48];
        snprintf(kind, sizeof(kind), "update.%s", update_phase_to_string(to));
        if (to == UPDATE_FAILED || to == UPDATE_ROLLED_BACK)
                log_error("update %s %s: %s%s%s", m->state.bundle_id, m->state.version,
                          update_phase_to_string(to), reason[0] ? ": " : "", reason);
        else
                log_notice("update %s %s: %s -> %s%s%s", m->state.bundle_id, m->state.version,
                           update_phase_to_string(from), update_phase_to_string(to),
                           reason[0] ? ": " : "", reason);
        report(m, outcome ? EVENT_CRITICAL : EVENT_HIGH, kind);
        return r;
}

/* The record of what a slot holds: the manifest of the bundle installed there. */
static void record_name(const char *slot_class, char slot, char *buf, size_t size) {
        snprintf(buf, size, "slot-%s-%c.manifest", slot_class, slot);
        for (char *p = buf; *p; p++)
                if (*p == ':' || *p == '/')
                        *p = '_';
}

/* The last good copy first: a power cut in between must not leave a .prev that a load
 * would restore (a slot no longer trusted, trusted again). */
static void record_remove(const char *work_dir, const char *name) {
        char path[PATH_MAX * 2 + 16];
        snprintf(path, sizeof(path), "%s/%s.prev", work_dir, name);
        (void) unlink(path);
        snprintf(path, sizeof(path), "%s/%s", work_dir, name);
        if (unlink(path) >= 0)
                (void) fsync_parent_dir(path);
}

/* ---- the boot environment ----------------------------------------------------------- */

static int boot_read(struct update_manager *m, struct boot_state *ret) {
        if (!m->bootenv)
                return -ENODEV;
        int r = bootenv_read(m->bootenv, ret);
        if (r == -ENOENT || r == -ENODATA) {
                /* Never written: the node has only ever booted what it runs now. */
                if (!m->booted)
                        return -ENOENT;
                return boot_state_init(ret, m->booted);
        }
        return r;
}

enum boot_op {
        BOOT_TRY,      /* arm slot for a trial of the configured boots */
        BOOT_GOOD,     /* commit slot */
        BOOT_BAD,      /* abandon slot: the other becomes primary */
        BOOT_FORGET,   /* take slot out of the choices before its content changes */
};

static int boot_forget(struct boot_state *s, char slot);

/* Read, change and write back (bootenv_write reads back and compares). */
static int boot_update(struct update_manager *m, enum boot_op op, char slot, char *msg, size_t size) {
        struct boot_state bs;
        pthread_mutex_lock(&m->boot_lock);
        int r = boot_read(m, &bs);
        if (r >= 0) {
                switch (op) {
                case BOOT_TRY:
                        r = boot_state_try_slot(&bs, slot, (int) m->cfg->update.boot_tries);
                        break;
                case BOOT_GOOD:
                        r = boot_state_mark_good(&bs, slot);
                        break;
                case BOOT_BAD:
                        r = boot_state_mark_bad(&bs, slot);
                        break;
                case BOOT_FORGET:
                        r = boot_forget(&bs, slot);
                        break;
                }
        }
        if (r >= 0)
                r = bootenv_write(m->bootenv, &bs);
        pthread_mutex_unlock(&m->boot_lock);
        if (r < 0)
                snprintf(msg, size, "boot environment %s: %s", m->boot_path ? m->boot_path : "?",
                         strerror(-r));
        return r;
}

static int boot_read_locked(struct update_manager *m, struct boot_state *ret) {
        pthread_mutex_lock(&m->boot_lock);
        int r = boot_read(m, ret);
        pthread_mutex_unlock(&m->boot_lock);
        return r;
}

/* Take a slot out of the bootloader's choices before its content changes. */
static int boot_forget(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        if (!s->slot[i].good && s->slot[i].tries_left == 0 && s->primary != slot)
                return 0;
        return boot_state_mark_bad(s, slot);
}

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

static void request_reboot(struct update_manager *m) {
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
                                 want ? slot_str(want) : "none", strerror(-r));
                        result = r;
                        continue;
                }
                restart_model_users(m, t->name);
        }
        return result;
}

/* ---- the trial ------------------------------------------------------------------------ */

static void stop_gate(struct update_manager *m) {
        m->gate_timer = sd_event_source_disable_unref(m->gate_timer);
}

/*
 * When this trial began, on this kernel boot's CLOCK_MONOTONIC, kept in TRIAL_FILE across
 * restarts of the agent: an agent that crashes (or is killed by its watchdog) before the
 * gate holds must not keep the trial open for ever by starting its timeout again each
 * time. A new kernel boot (its boot_id) or another bundle starts a new trial clock.
 */
static uint64_t trial_begin_usec(struct update_manager *m) {
        uint64_t now = monotonic_usec(m);
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
        if (statefile_load(m->cfg->update.work_dir, TRIAL_FILE, &text, &len, NULL) >= 0) {
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
        _cleanup_free_ char *dump = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!dump || statefile_save(m->cfg->update.work_dir, TRIAL_FILE, dump, strlen(dump)) < 0)
                log_warning("update: cannot keep the trial's start: its timeout restarts with the agent");
        return now;
}

static int do_commit(struct update_manager *m, const char *why, char *msg, size_t size) {
        stop_gate(m);
        if (m->state.has_rootfs) {
                int r = boot_update(m, BOOT_GOOD, m->state.rootfs_target, msg, size);
                if (r < 0)
                        return r;
        }
        if (m->state.security_version > m->state.min_security_version)
                m->state.min_security_version = m->state.security_version;
        m->reboot_required = false;
        int r = set_phase(m, UPDATE_COMMITTED, "%s", why);
        if (r >= 0)
                record_remove(m->cfg->update.work_dir, TRIAL_FILE); /* only once it is over */
        return r;
}

static int do_rollback(struct update_manager *m, bool reboot, const char *fmt, ...) _printf_(3, 4);
static int do_rollback(struct update_manager *m, bool reboot, const char *fmt, ...) {
        char reason[UPDATE_REASON_MAX], msg[512] = "";
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        stop_gate(m);
        int r = 0;
        if (m->state.has_rootfs) {
                r = boot_update(m, BOOT_BAD, m->state.rootfs_target, msg, sizeof(msg));
                if (r < 0)
                        log_error("update: rollback: %s", msg);
        }
        if (models_switch(m, false, msg, sizeof(msg)) < 0)
                log_error("update: rollback: %s", msg);
        int q = set_phase(m, UPDATE_ROLLED_BACK, "%s", reason);
        if (q >= 0)
                record_remove(m->cfg->update.work_dir, TRIAL_FILE);
        if (reboot && m->state.has_rootfs && m->booted == m->state.rootfs_target)
                request_reboot(m);
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
        uint64_t now = monotonic_usec(m);
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
                        if (do_commit(m, reason, msg, sizeof(msg)) < 0)
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
                (void) do_rollback(m, true,
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

static int begin_trial(struct update_manager *m) {
        char msg[512] = "";
        if (models_switch(m, true, msg, sizeof(msg)) < 0)
                return do_rollback(m, true, "%s", msg);
        if (m->state.phase == UPDATE_READY) {
                int r = set_phase(m, UPDATE_TRIAL, m->state.has_rootfs ? "booted slot %c" : "models switched",
                                  m->booted);
                if (r < 0)
                        return r;
        }
        m->reboot_required = false;
        m->trial_started_usec = trial_begin_usec(m);
        m->gate_ok_since_usec = 0;
        m->gate_why[0] = '\0';
        stop_gate(m);
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

/* ---- the worker ------------------------------------------------------------------------ */

static void job_free(struct job *j) {
        if (!j)
                return;
        for (size_t i = 0; i < j->n_images; i++) {
                free(j->images[i].done);
                install_index_free(j->images[i].index);
                if (j->images[i].slot_fd >= 0)
                        close(j->images[i].slot_fd);
                if (j->images[i].active_fd >= 0)
                        close(j->images[i].active_fd);
        }
        for (size_t i = 0; i < MANIFEST_MAX_IMAGES; i++)
                if (j->scrub_manifests[i]) {
                        manifest_free(j->scrub_manifests[i]);
                        free(j->scrub_manifests[i]);
                }
        bundle_close(j->bundle);
        if (j->curl)
                curl_easy_cleanup(j->curl);
        free(j->reason);
        free(j);
}

/* ---- fetching by ranges (on the worker thread: blocking, bounded, retried) ---------------- */

struct fetch {
        uint8_t *out;
        size_t want, got;
        bool overflow;
        char etag[160];
        uint64_t total;
        const atomic_int *cancel;
};

/* Called by libcurl during a transfer (also while it waits for bytes, about once a
 * second): a cancel stops the transfer there, not after it. */
static int fetch_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow) {
        const struct fetch *f = userdata;
        return atomic_load_explicit(f->cancel, memory_order_relaxed) ? 1 : 0;
}

static size_t fetch_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct fetch *f = userdata;
        size_t n = size * nmemb;
        if (f->got + n > f->want) {
                f->overflow = true;
                return 0;
        }
        memcpy(f->out + f->got, ptr, n);
        f->got += n;
        return n;
}

static size_t fetch_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct fetch *f = userdata;
        size_t n = size * nmemb;
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int) (n < sizeof(line) - 1 ? n : sizeof(line) - 1), ptr);
        line[strcspn(line, "\r\n")] = '\0';
        if (strncasecmp(line, "etag:", 5) == 0) {
                const char *v = line + 5;
                while (*v == ' ')
                        v++;
                size_t len = strlen(v);
                if (len < sizeof(f->etag)) /* a longer tag is not ours: If-Range then fails safe */
                        memcpy(f->etag, v, len + 1);
        } else if (strncasecmp(line, "content-range:", 14) == 0) {
                const char *slash = strrchr(line, '/');
                if (slash)
                        f->total = strtoull(slash + 1, NULL, 10);
        }
        return n;
}

/* Bytes [offset, offset + len) of the remote bundle into out; -ENOLINK when the link is
 * down after retries, -EDQUOT over this contact's budget, -ESTALE when the file changed. */
static int fetch_range(struct job *j, uint64_t offset, size_t len, void *out, size_t *ret_got) {
        const struct job_link *lc = &j->link;
        if (j->budget && j->fetched + len > j->budget)
                return -EDQUOT;
        if (!j->curl && !(j->curl = curl_easy_init()))
                return -ENOMEM;
        int r = -ENOLINK;
        for (unsigned attempt = 0; attempt < FETCH_ATTEMPTS; attempt++) {
                if (j->m->cancel)
                        return -ECANCELED;
                /* the pause before a retry, cut short by a cancel */
                for (unsigned ms = 0; attempt > 0 && ms < (1000u << (attempt - 1)) && !j->m->cancel; ms += 50)
                        usleep(50 * 1000);
                struct fetch f = {.out = out, .want = len, .cancel = &j->m->cancel};
                char range[64], if_range[200];
                snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
                struct curl_slist *hdrs = NULL;
                if (j->etag[0]) {
                        snprintf(if_range, sizeof(if_range), "If-Range: %s", j->etag);
                        hdrs = curl_slist_append(NULL, if_range);
                }
                CURL *e = j->curl;
                curl_easy_reset(e);
                (void) curl_easy_setopt(e, CURLOPT_URL, j->url);
                (void) curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
                (void) curl_easy_setopt(e, CURLOPT_RANGE, range);
                (void) curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
                (void) curl_easy_setopt(e, CURLOPT_CAINFO, lc->ca[0] ? lc->ca : NULL);
                (void) curl_easy_setopt(e, CURLOPT_SSLCERT, lc->cert[0] ? lc->cert : NULL);
                (void) curl_easy_setopt(e, CURLOPT_SSLKEY, lc->key[0] ? lc->key : NULL);
                (void) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, lc->connect_timeout_sec);
                (void) curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
                (void) curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
                (void) curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
                if (lc->max_recv_bytes_per_sec > 0)
                        (void) curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE,
                                                (curl_off_t) lc->max_recv_bytes_per_sec);
                (void) curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_data);
                (void) curl_easy_setopt(e, CURLOPT_WRITEDATA, &f);
                (void) curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, fetch_header);
                (void) curl_easy_setopt(e, CURLOPT_HEADERDATA, &f);
                (void) curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, fetch_progress);
                (void) curl_easy_setopt(e, CURLOPT_XFERINFODATA, &f);
                (void) curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
                CURLcode cr = curl_easy_perform(e);
                curl_slist_free_all(hdrs);
                long status = 0;
                curl_off_t down = 0;
                (void) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
                (void) curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &down);
                j->fetched += (uint64_t) down;
                if (cr == CURLE_OK && status == 206) {
                        if (!j->etag[0])
                                snprintf(j->etag, sizeof(j->etag), "%s", f.etag);
                        if (f.total)
                                j->remote_size = f.total;
                        if (ret_got) {
                                *ret_got = f.got;
                                return 0;
                        }
                        if (f.got != len)
                                return -EBADMSG;
                        return 0;
                }
                if (cr == CURLE_OK && status == 200 && j->etag[0])
                        return -ESTALE; /* If-Range did not match: the bundle was replaced */
                if (cr == CURLE_OK && (status == 404 || status == 403 || status == 416 || status == 200))
                        return status == 404 ? -ENOENT : status == 403 ? -EACCES : -EBADMSG;
                if (cr == CURLE_WRITE_ERROR && f.overflow)
                        return -EBADMSG;
                if (cr == CURLE_ABORTED_BY_CALLBACK)
                        return -ECANCELED;
                r = -ENOLINK;
                log_info("update: fetching bytes %s of %s: %s (attempt %u, %" PRIu64 " bytes thrown away)",
                         range, j->url, cr != CURLE_OK ? curl_easy_strerror(cr) : "unexpected status",
                         attempt + 1, (uint64_t) down);
        }
        return r;
}

/* The manifest and signature (the first two members) into a sparse local file the size of
 * the bundle, which bundle_open then verifies like a local one. */
static int fetch_head(struct job *j) {
        _cleanup_free_ uint8_t *head = malloc(HEAD_MAX);
        if (!head)
                return -ENOMEM;
        size_t got = 0;
        int r = fetch_range(j, 0, HEAD_FETCH, head, &got);
        if (r < 0)
                return message_set(&j->reason, r, "%s: %s", j->url,
                                   r == -ENOLINK ? "the controller cannot be reached" : strerror(-r));
        if (!j->remote_size)
                return message_set(&j->reason, -EBADMSG, "%s: no size in the answer", j->url);
        for (;;) {
                uint64_t need;
                r = bundle_head_length(head, got, &need);
                if (r == -EAGAIN && need <= HEAD_MAX && need <= j->remote_size) {
                        r = fetch_range(j, got, need - got, head + got, NULL);
                        if (r < 0)
                                return message_set(&j->reason, r, "%s: %s", j->url, strerror(-r));
                        got = need;
                        continue;
                }
                if (r < 0 || need > got)
                        return message_set(&j->reason, -EBADMSG,
                                           "%s: does not start with a bundle's manifest and signature",
                                           j->url);
                got = need; /* the rest of the first range is payload: not kept */
                break;
        }
        _cleanup_close_ int fd = open(j->head_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                r = negative_errno();
        else if (ftruncate(fd, (off_t) j->remote_size) < 0)
                r = negative_errno();
        else
                r = pwrite_all(fd, head, got, 0);
        if (r < 0)
                return message_set(&j->reason, r, "%s: saving its manifest and signature to %s: %s",
                                   j->url, j->head_path, strerror(-r));
        log_info("update: fetched the manifest of %s (%" PRIu64 " bytes; the bundle is %" PRIu64 ")",
                 j->url, (uint64_t) got, j->remote_size);
        return 0;
}

static int remote_locate_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        return fetch_range(userdata, offset, len, buf, NULL);
}

static int progress_save(struct job *j) {
        json_t *images = json_array();
        if (!images)
                return -ENOMEM;
        for (size_t i = 0; i < j->n_images; i++) {
                const struct job_image *ji = &j->images[i];
                _cleanup_free_ char *hex = NULL;
                int r = install_bitmap_to_hex(ji->done, ji->image->n_chunks, &hex);
                if (r < 0 || json_array_append_new(images, json_pack("{s:s, s:s, s:I, s:I, s:s}",
                                "slot_class", ji->image->slot_class, "target", slot_str(ji->target),
                                "chunk_size", (json_int_t) ji->image->chunk_size,
                                "n_chunks", (json_int_t) ji->image->n_chunks, "done", hex)) < 0) {
                        json_decref(images);
                        return -ENOMEM;
                }
        }
        json_t *o = json_pack("{s:i, s:s, s:o}", "format", 1, "manifest_sha256", j->manifest_sha256,
                              "images", images);
        if (!o)
                return -ENOMEM;
        _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        return statefile_save(j->work_dir, PROGRESS_FILE, text, strlen(text));
}

/* Take the bitmaps of an earlier run of the same install; anything else starts from zero. */
static void progress_load(struct job *j) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = statefile_load(j->work_dir, PROGRESS_FILE, &text, &len, NULL);
        if (r < 0) {
                if (r != -ENOENT)
                        log_warning("update: install progress unreadable (%s): starting over",
                                    strerror(-r));
                return;
        }
        json_error_t err;
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err), *images;
        const char *digest;
        int format;
        if (!o || json_unpack_ex(o, &err, JSON_STRICT, "{s:i, s:s, s:o}", "format", &format,
                                 "manifest_sha256", &digest, "images", &images) < 0 ||
            format != 1 || !json_is_array(images)) {
                log_warning("update: install progress malformed: starting over");
                json_decref(o);
                return;
        }
        if (!streq(digest, j->manifest_sha256)) {
                json_decref(o);
                return; /* another bundle's */
        }
        size_t i;
        json_t *e;
        json_array_foreach(images, i, e) {
                const char *cls, *target, *hex;
                json_int_t cs, n;
                if (json_unpack_ex(e, &err, JSON_STRICT, "{s:s, s:s, s:I, s:I, s:s}", "slot_class",
                                   &cls, "target", &target, "chunk_size", &cs, "n_chunks", &n, "done",
                                   &hex) < 0)
                        continue;
                for (size_t k = 0; k < j->n_images; k++) {
                        struct job_image *ji = &j->images[k];
                        if (!streq(ji->image->slot_class, cls) || !slot_str(ji->target) ||
                            !streq(slot_str(ji->target), target) ||
                            (uint64_t) cs != ji->image->chunk_size || (uint64_t) n != ji->image->n_chunks)
                                continue;
                        uint8_t *map;
                        if (install_bitmap_from_hex(hex, ji->image->n_chunks, &map) < 0) {
                                log_warning("update: progress of %s malformed: rewriting it", cls);
                                continue;
                        }
                        free(ji->done);
                        ji->done = map;
                        log_info("update: resuming %s: %" PRIu64 " of %" PRIu64 " chunks already in slot %c",
                                 cls, install_bitmap_count(map, ji->image->n_chunks), ji->image->n_chunks,
                                 ji->target);
                }
        }
        json_decref(o);
}

static int job_checkpoint(void *userdata, const uint8_t *done, const struct install_stats *st) {
        struct job *j = userdata;
        if (st->chunks_repaired > j->repaired_logged) {
                log_warning("update: %s: %" PRIu64 " chunks written to slot %c before changed on the medium "
                            "since: written again",
                            j->images[j->current].image->slot_class, st->chunks_repaired - j->repaired_logged,
                            j->images[j->current].target);
                j->repaired_logged = st->chunks_repaired;
        }
        return progress_save(j);
}

static void job_progress(void *userdata, const struct install_stats *st) {
        struct job *j = userdata;
        struct update_manager *m = j->m;
        pthread_mutex_lock(&m->lock);
        m->progress = *st;
        uint64_t done = m->progress_before + st->bytes_done, total = m->progress_total;
        pthread_mutex_unlock(&m->lock);
        if (m->stall_percent > 0 && total && 100.0 * (double) done / (double) total >= m->stall_percent) {
                if (!m->stall_logged)
                        log_notice("update: failpoint: install stalled at %.1f%% (%" PRIu64 " of %" PRIu64
                                   " bytes durable)", 100.0 * (double) done / (double) total, done, total);
                m->stall_logged = true;
                while (!m->cancel)
                        usleep(10 * 1000);
        }
}

struct bundle_source {
        int fd;
        uint64_t offset;
        struct job *job;
};

static int bundle_source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct bundle_source *s = userdata;
        return pread_all(s->fd, buf, len, s->offset + offset); /* -ENODATA: the file shrank */
}

/* What the active slot holds: its record when it has one with the same chunk size, else a scan. */
static int job_active_index(struct job *j, struct job_image *ji, int active_fd, uint64_t active_size,
                            struct install_index **ret) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (ji->active_record[0] &&
            statefile_load(j->work_dir, ji->active_record, &text, &len, NULL) >= 0) {
                struct manifest mf = {};
                _cleanup_free_ char *why = NULL;
                if (manifest_parse_text(ji->active_record, text, len, 0, &mf, &why) >= 0) {
                        const struct manifest_image *img = manifest_find_image(&mf, ji->image->slot_class);
                        int r = -ENOENT;
                        if (img && img->chunk_size == ji->image->chunk_size)
                                r = install_index_from_image(img, ret);
                        manifest_free(&mf);
                        if (r >= 0)
                                return 0;
                }
        }
        if (!j->delta_scan)
                return -ENOENT;
        uint64_t size = active_size < ji->image->size ? active_size : ji->image->size;
        log_info("update: hashing the active slot %s to find reusable chunks", ji->active_path);
        return install_index_scan(active_fd, size, ji->image->chunk_size, &j->m->cancel, ret);
}

static int remote_source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct bundle_source *s = userdata;
        return fetch_range(s->job, s->offset + offset, len, buf, NULL);
}

static struct install_request job_request(struct job *j, struct job_image *ji, struct bundle_source *src) {
        src->fd = j->remote ? -1 : bundle_fd(j->bundle);
        src->offset = ji->bundle_offset;
        src->job = j;
        return (struct install_request){
                .image = ji->image,
                .slot_fd = ji->slot_fd,
                .active_fd = ji->index ? ji->active_fd : -1,
                .active = ji->index,
                .source = {.read = j->remote ? remote_source_read : bundle_source_read, .userdata = src,
                           .concurrent = !j->remote}, /* pread: any number at once */
                .done = ji->done,
                .checkpoint = job_checkpoint,
                .progress = job_progress,
                .userdata = j,
                .checkpoint_bytes = j->checkpoint_bytes,
                .checkpoint_coalesce = true,
                /* the local bundle's chunks, checked by install_verify_source just before */
                .source_verified = j->verify_first && !j->remote,
                .cancel = &j->m->cancel,
                .drop_cache = true,
                .slot_path = ji->slot_path,
                .checkpoint_path = j->progress_path,
        };
}

/* Open the active slot and learn what it holds: the delta source. Never fatal. */
static int job_open_active(struct job *j, struct job_image *ji) {
        if (!ji->active_path[0])
                return 0;
        uint64_t active_size;
        _cleanup_free_ char *why = NULL;
        if (slot_open_read(ji->active_path, &ji->active_fd, &active_size, &why) < 0) {
                log_warning("update: no delta from the active slot: %s", why ? why : "?");
                return 0;
        }
        int r = job_active_index(j, ji, ji->active_fd, active_size, &ji->index);
        if (r == -ECANCELED)
                return message_set(&j->reason, r, "install cancelled");
        return 0;
}

static int job_install_image(struct job *j, struct job_image *ji) {
        const char *model = slot_class_model_name(ji->image->slot_class);
        int r;
        if (model) {
                r = model_slot_prepare(j->models_dir, model, ji->target);
                if (r < 0)
                        return message_set(&j->reason, r,
                                           "model %s: cannot create slot %c in %s: %s", model,
                                           ji->target, j->models_dir, strerror(-r));
        }
        r = slot_open_write(ji->slot_path, ji->image->size, &ji->slot_fd, &j->reason);
        if (r < 0)
                return r;
        struct bundle_source src;
        struct install_request req = job_request(j, ji, &src);
        struct install_stats st;
        r = install_image(&req, &st, &j->reason);
        log_info("update: %s into slot %c: %s; %" PRIu64 " chunks: %" PRIu64 " resumed, %" PRIu64
                 " from the active slot, %" PRIu64 " from the bundle (%" PRIu64 " bytes), %" PRIu64
                 " repaired",
                 ji->image->slot_class, ji->target, r < 0 ? "stopped" : "verified", st.chunks_total,
                 st.chunks_resumed, st.chunks_from_active, st.chunks_from_source,
                 st.bytes_from_source, st.chunks_repaired);
        return r;
}

/* Every image of a scrub job, each on its own: one slot's trouble does not hide another's. */
static int job_scrub(struct job *j) {
        uint64_t rate = j->scrub_bytes_per_sec;
        for (size_t i = 0; i < j->n_images; i++) {
                struct job_image *ji = &j->images[i];
                if (j->m->cancel)
                        return -ECANCELED;
                ji->slot_fd = open(ji->slot_path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (ji->slot_fd < 0) {
                        snprintf(j->scrub_errors[i], sizeof(j->scrub_errors[i]), "%s: %m", ji->slot_path);
                        continue;
                }
                (void) job_open_active(j, ji);
                struct bundle_source src = {.fd = -1};
                struct install_request req = {
                        .image = ji->image,
                        .slot_fd = ji->slot_fd,
                        .active_fd = ji->index ? ji->active_fd : -1,
                        .active = ji->index,
                        .source = {.read = NULL, .userdata = &src},
                        .cancel = &j->m->cancel,
                };
                _cleanup_free_ char *why = NULL;
                int r = install_scrub(&req, true, rate, &j->scrub_stats[i], &why);
                if (r == -ECANCELED)
                        return r;
                if (r < 0)
                        snprintf(j->scrub_errors[i], sizeof(j->scrub_errors[i]), "%s",
                                 why ? why : strerror(-r));
        }
        return 0;
}

static int job_run(struct job *j) {
        struct update_manager *m = j->m;
        int r;
        if (j->head_only)
                return fetch_head(j);
        if (j->scrub)
                return job_scrub(j);
        if (j->remote) {
                uint64_t offsets[MANIFEST_MAX_IMAGES];
                r = bundle_locate_payloads_with(j->bundle, j->remote_size, remote_locate_read, j,
                                                offsets, &j->reason);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < j->n_images; i++)
                        j->images[i].bundle_offset = offsets[i];
        }
        for (size_t i = 0; i < j->n_images; i++)
                if ((r = job_open_active(j, &j->images[i])) < 0)
                        return r;
        /* A forged or damaged bundle is refused here, before any slot changes. */
        for (size_t i = 0; j->verify_first && i < j->n_images; i++) {
                struct bundle_source src;
                struct install_request req = job_request(j, &j->images[i], &src);
                struct install_stats st;
                r = install_verify_source(&req, &st, &j->reason);
                if (r < 0)
                        return r;
                log_info("update: %s: %" PRIu64 " chunks to take from the bundle verified first "
                         "(%" PRIu64 " bytes)",
                         j->images[i].image->slot_class, st.chunks_from_source, st.bytes_from_source);
        }
        /* Now the targets change: first out of the boot choices, their content records gone. */
        if (j->has_rootfs) {
                char msg[512];
                r = boot_update(m, BOOT_FORGET, j->rootfs_target, msg, sizeof(msg));
                if (r < 0)
                        return message_set(&j->reason, r, "%s", msg);
        }
        for (size_t i = 0; i < j->n_images; i++)
                record_remove(j->work_dir, j->images[i].record);
        uint64_t before = 0;
        for (size_t i = 0; i < j->n_images; i++) {
                pthread_mutex_lock(&m->lock);
                j->current = i;
                j->repaired_logged = 0;
                m->progress_before = before;
                memset(&m->progress, 0, sizeof(m->progress));
                pthread_mutex_unlock(&m->lock);
                r = job_install_image(j, &j->images[i]);
                if (r < 0)
                        return r;
                before += j->images[i].image->size;
        }
        return 0;
}

static void *worker_main(void *userdata) {
        struct job *j = userdata;
        struct update_manager *m = j->m;
        j->result = job_run(j);
        uint64_t one = 1;
        if (write(m->efd, &one, sizeof(one)) < 0)
                log_error("update: cannot wake the event loop: %m");
        return NULL;
}

static void worker_join(struct update_manager *m) {
        if (!m->worker_running)
                return;
        (void) pthread_join(m->thread, NULL);
        m->worker_running = false;
        uint64_t v;
        (void) !read(m->efd, &v, sizeof(v));
}

static int open_bundle(struct update_manager *m, const char *path, struct bundle **ret, char *msg,
                       size_t size);
static int fail_now(struct update_manager *m, int r, const char *msg);
static int begin_install(struct update_manager *m, struct bundle *b, bool resume,
                         const struct job *remote, char *msg, size_t size);
static int resume_install(struct update_manager *m);

static void head_fetched(struct update_manager *m, struct job *head) {
        char msg[UPDATE_REASON_MAX] = "";
        struct bundle *b;
        int r = open_bundle(m, head->head_path, &b, msg, sizeof(msg));
        if (r < 0) {
                (void) fail_now(m, r, msg);
                return;
        }
        char digest[SHA256_HEX_SIZE];
        sha256_to_hex(bundle_manifest_digest(b), digest);
        bool resume = m->state.phase == UPDATE_INSTALLING;
        if (resume && !streq(digest, m->state.manifest_sha256)) {
                bundle_close(b);
                (void) fail_now(m, -ESTALE, "the bundle on the controller changed since the install began");
                return;
        }
        if (!resume) {
                const struct manifest *mf = bundle_manifest(b);
                snprintf(m->state.bundle_id, sizeof(m->state.bundle_id), "%s", mf->bundle_id);
                snprintf(m->state.version, sizeof(m->state.version), "%s", mf->version);
                m->state.security_version = mf->security_version;
                snprintf(m->state.manifest_sha256, sizeof(m->state.manifest_sha256), "%s", digest);
        }
        r = begin_install(m, b, resume, head, msg, sizeof(msg));
        if (r < 0)
                (void) fail_now(m, r, msg);
}

static void scrub_finished(struct update_manager *m, struct job *j);

static int on_space_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct update_manager *m = userdata;
        m->space_timer = sd_event_source_disable_unref(m->space_timer);
        if (!m->paused || !m->paused_for_space || m->worker_running)
                return 0; /* resumed already (the link came up) */
        m->paused = false;
        (void) resume_install(m);
        return 0;
}

/*
 * A filesystem the install writes to is full. Nothing is lost by waiting: the phase
 * stays, the slot keeps its chunks and the progress file its last good copy. Reported
 * once per pause; the retries that find no space yet are the same pause.
 */
static void pause_for_space(struct update_manager *m, const char *reason) {
        bool again = m->paused_for_space, same = again && streq(m->last_error, reason);
        int64_t every = m->cfg->update.space_retry_sec;
        m->paused = true;
        m->paused_for_space = true;
        snprintf(m->last_error, sizeof(m->last_error), "%s", reason);
        if (!again) {
                log_warning("update: install%s%s paused: %s; retried every %" PRId64
                            " s until there is space",
                            m->state.bundle_id[0] ? " of " : "", m->state.bundle_id, m->last_error,
                            every);
                report_reason(m, EVENT_HIGH, "update.paused", m->last_error);
        } else if (!same)
                log_notice("update: still paused: %s", m->last_error);
        else
                log_debug("update: still no space: %s", m->last_error);
        m->space_timer = sd_event_source_disable_unref(m->space_timer);
        int r = sd_event_add_time_relative(m->event, &m->space_timer, CLOCK_MONOTONIC,
                                           (uint64_t) every * 1000000ULL, 0, on_space_retry, m);
        if (r < 0)
                log_error_errno(r, "update: cannot arm the retry timer; the install continues at "
                                   "the next start");
}

static void install_finished(struct update_manager *m) {
        struct job *j = m->job;
        m->job = NULL;
        char msg[512] = "";
        if (j->scrub) {
                scrub_finished(m, j);
                job_free(j);
                return;
        }
        enum update_stop_action stop = j->result < 0 ? update_decide_on_stop(j->result, j->remote)
                                                     : UPDATE_STOP_FAIL;
        if (j->result < 0 && stop == UPDATE_STOP_PAUSE_SPACE) {
                pause_for_space(m, j->reason ? j->reason : strerror(-j->result));
                job_free(j);
                return;
        }
        if (!(j->head_only && j->result >= 0) && stop != UPDATE_STOP_KEEP)
                m->paused_for_space = false; /* the pause, if any, is over */
        if (j->result < 0 && stop == UPDATE_STOP_PAUSE_LINK) {
                /* Out of contact or out of this contact's budget: wait for the next one. */
                m->paused = true;
                snprintf(m->last_error, sizeof(m->last_error), "%s", j->reason ? j->reason : strerror(-j->result));
                log_notice("update: download paused (%s); it continues at the next contact",
                           j->result == -EDQUOT ? "this contact's byte budget is spent" : m->last_error);
                job_free(j);
                return;
        }
        if (j->head_only && j->result >= 0) {
                head_fetched(m, j);
                job_free(j);
                return;
        }
        if (j->result < 0) {
                if (stop == UPDATE_STOP_KEEP) {
                        job_free(j);
                        return; /* stopping: resumed at the next start */
                }
                (void) set_phase(m, UPDATE_FAILED, "%s", j->reason ? j->reason : strerror(-j->result));
                job_free(j);
                return;
        }
        /* Every image verified in its slot: record what each slot now holds. */
        size_t mlen;
        const char *mtext = bundle_manifest_text(j->bundle, &mlen);
        for (size_t i = 0; i < j->n_images; i++) {
                int r = statefile_save(j->work_dir, j->images[i].record, mtext, mlen);
                if (r < 0)
                        log_warning("update: cannot record the content of slot %c: %s",
                                    j->images[i].target, strerror(-r));
        }
        record_remove(j->work_dir, PROGRESS_FILE);
        job_free(j);
        if (m->state.has_rootfs) {
                int r = boot_update(m, BOOT_TRY, m->state.rootfs_target, msg, sizeof(msg));
                if (r < 0) {
                        (void) set_phase(m, UPDATE_FAILED, "cannot arm the new slot: %s", msg);
                        return;
                }
        }
        if (set_phase(m, UPDATE_READY,
                      m->state.has_rootfs ? "slot %c armed for %" PRId64 " trial boots" : "images verified",
                      m->state.rootfs_target, m->cfg->update.boot_tries) < 0)
                return;
        if (m->state.has_rootfs)
                request_reboot(m);
        else
                (void) begin_trial(m);
}

static int on_worker_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct update_manager *m = userdata;
        /* A wake-up already taken by a join elsewhere (a scrub stopped for an install) must
         * not join the worker started since: that would block the loop for the install. */
        uint64_t v;
        if (read(m->efd, &v, sizeof(v)) != (ssize_t) sizeof(v))
                return 0;
        worker_join(m);
        if (m->job)
                install_finished(m);
        return 0;
}

/* ---- scrub: the inactive slots read back against their kept manifests ----------------------- */

static int start_worker(struct update_manager *m, struct job *j);

static void scrub_schedule(struct update_manager *m, uint64_t delay_usec) {
        if (!m->scrub_timer)
                return;
        (void) sd_event_source_set_time(m->scrub_timer, monotonic_usec(m) + delay_usec);
        (void) sd_event_source_set_enabled(m->scrub_timer, SD_EVENT_ONESHOT);
}

/* One slot to check: what its record says it holds. No record: nothing to check against. */
static int scrub_add(struct job *j, const char *slot_class, char target, const char *slot_path,
                     char active, const char *active_path) {
        if (j->n_images >= MANIFEST_MAX_IMAGES)
                return 0;
        struct job_image *ji = &j->images[j->n_images];
        char record[PATH_MAX];
        record_name(slot_class, target, record, sizeof(record));
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        int r = statefile_load(j->work_dir, record, &text, &len, NULL);
        if (r == -ENOENT)
                return 0;
        if (r == -EBADMSG || r == -ENODATA) {
                log_warning("update: scrub: no copy of the record of slot %s %c verifies: removed, the "
                            "slot's content is no longer trusted", slot_class, target);
                record_remove(j->work_dir, record);
                return 0;
        }
        if (r < 0) {
                log_warning("update: scrub: the record of slot %s %c: %s; tried again next time",
                            slot_class, target, strerror(-r));
                return 0;
        }
        struct manifest *mf = calloc(1, sizeof(*mf));
        if (!mf)
                return -ENOMEM;
        const struct manifest_image *img = NULL;
        if (manifest_parse_text(record, text, len, 0, mf, &why) >= 0)
                img = manifest_find_image(mf, slot_class);
        if (!img) {
                log_warning("update: scrub: the record of slot %s %c does not describe it (%s)", slot_class,
                            target, why ? why : "no such image");
                manifest_free(mf);
                free(mf);
                return 0;
        }
        *ji = (struct job_image){.image = img, .target = target, .slot_fd = -1, .active_fd = -1};
        j->scrub_manifests[j->n_images] = mf;
        snprintf(ji->slot_path, sizeof(ji->slot_path), "%s", slot_path);
        snprintf(ji->record, sizeof(ji->record), "%s", record);
        if (active && active_path) {
                snprintf(ji->active_path, sizeof(ji->active_path), "%s", active_path);
                record_name(slot_class, active, ji->active_record, sizeof(ji->active_record));
        }
        j->n_images++;
        return 0;
}

/* The inactive rootfs slot and the inactive member of every model that has one. */
static int scrub_prepare(struct update_manager *m, struct job **ret) {
        const struct agent_update_config *u = &m->cfg->update;
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->m = m;
        j->scrub = true;
        snprintf(j->work_dir, sizeof(j->work_dir), "%s", u->work_dir);
        snprintf(j->models_dir, sizeof(j->models_dir), "%s", u->models_dir ? u->models_dir : "");
        j->scrub_bytes_per_sec = (uint64_t) u->scrub_mib_per_sec * 1024 * 1024;
        int r = 0;
        struct boot_state bs;
        /* Only at rest: the bootloader boots what runs. After a rollback that still waits for
         * its reboot, "the other slot" is the one to go back to: never touched. */
        if (m->bootenv && m->booted && u->rootfs_a && !m->reboot_required &&
            boot_read_locked(m, &bs) >= 0 && bs.primary == m->booted) {
                char inactive = slot_other(m->booted);
                r = scrub_add(j, "rootfs", inactive, inactive == 'A' ? u->rootfs_a : u->rootfs_b, m->booted,
                              m->booted == 'A' ? u->rootfs_a : u->rootfs_b);
        }
        DIR *d = r >= 0 ? opendir(u->models_dir) : NULL;
        struct dirent *de;
        while (r >= 0 && d && (de = readdir(d))) {
                char cur, cls[sizeof(SLOT_MODEL_PREFIX) + sizeof(de->d_name)], slot_path[PATH_MAX],
                        active_path[PATH_MAX];
                if (de->d_name[0] == '.' || model_slot_current(u->models_dir, de->d_name, &cur) < 0)
                        continue;
                if (model_slot_image(u->models_dir, de->d_name, slot_other(cur), slot_path, sizeof(slot_path)) < 0 ||
                    model_slot_image(u->models_dir, de->d_name, cur, active_path, sizeof(active_path)) < 0)
                        continue;
                snprintf(cls, sizeof(cls), "%s%s", SLOT_MODEL_PREFIX, de->d_name);
                r = scrub_add(j, cls, slot_other(cur), slot_path, cur, active_path);
        }
        if (d)
                closedir(d);
        if (r < 0 || j->n_images == 0) {
                job_free(j);
                return r < 0 ? r : -ENOENT;
        }
        *ret = j;
        return 0;
}

static int scrub_start(struct update_manager *m, char *msg, size_t size) {
        if (m->worker_running) {
                snprintf(msg, size, "%s is running", m->job && m->job->scrub ? "a scrub" : "an install");
                return -EBUSY;
        }
        if (!update_phase_is_final(m->state.phase)) {
                snprintf(msg, size, "an update is %s: the inactive slot is not at rest",
                         update_phase_to_string(m->state.phase));
                return -EBUSY;
        }
        struct job *j;
        int r = scrub_prepare(m, &j);
        if (r == -ENOENT) {
                snprintf(msg, size, "nothing to scrub: no inactive slot has a kept manifest (a factory "
                         "image has none; a slot gets one when the agent installs it)");
                return r;
        }
        if (r < 0) {
                snprintf(msg, size, "%s", strerror(-r));
                return r;
        }
        j->scrub_started_usec = monotonic_usec(m);
        r = start_worker(m, j);
        if (r < 0) {
                snprintf(msg, size, "cannot start the scrub thread: %s", strerror(-r));
                job_free(j);
                return r;
        }
        log_info("update: scrubbing %zu inactive slot%s", j->n_images, j->n_images == 1 ? "" : "s");
        return 0;
}

/* An install, a rollback or a stop needs the worker: a scrub gives way at once. */
static void scrub_stop(struct update_manager *m) {
        if (!m->worker_running || !m->job || !m->job->scrub)
                return;
        m->cancel = 1;
        worker_join(m);
        job_free(m->job);
        m->job = NULL;
        log_info("update: scrub stopped (the slots are needed)");
        scrub_schedule(m, SCRUB_RETRY_USEC);
}

static void scrub_finished(struct update_manager *m, struct job *j) {
        if (j->result == -ECANCELED)
                return;
        json_t *slots = json_array();
        enum event_priority prio = EVENT_LOW;
        uint64_t bad_total = 0;
        for (size_t i = 0; slots && i < j->n_images; i++) {
                struct job_image *ji = &j->images[i];
                const struct install_scrub_stats *st = &j->scrub_stats[i];
                uint64_t unrepaired = st->chunks_bad - st->chunks_repaired;
                const char *result = j->scrub_errors[i][0] ? "error" : unrepaired ? "damaged" :
                                     st->chunks_bad ? "repaired" : "clean";
                char action[256] = "";
                bad_total += st->chunks_bad;
                if (unrepaired) {
                        /* Never trusted again: not as a delta source, not as a fallback. A new
                         * install into it rewrites it whole. */
                        record_remove(j->work_dir, ji->record);
                        snprintf(action, sizeof(action), "its record removed");
                        struct boot_state bs;
                        if (streq(ji->image->slot_class, "rootfs") && boot_read_locked(m, &bs) >= 0 &&
                            bs.primary == ji->target) {
                                /* what the bootloader boots next: never taken away here */
                                snprintf(action, sizeof(action), "its record removed; the bootloader's "
                                         "primary, so left in the boot choices");
                        } else if (streq(ji->image->slot_class, "rootfs")) {
                                char why[256];
                                int r = boot_update(m, BOOT_FORGET, ji->target, why, sizeof(why));
                                snprintf(action, sizeof(action), "%s",
                                         r < 0 ? why : "taken out of the boot choices, its record removed");
                        }
                        prio = EVENT_CRITICAL;
                } else if ((st->chunks_bad || j->scrub_errors[i][0]) && prio < EVENT_HIGH)
                        prio = EVENT_HIGH; /* an error: reported, tried again next time */
                json_t *first = json_array();
                for (size_t k = 0; first && k < st->n_listed; k++)
                        json_array_append_new(first, json_integer((json_int_t) st->bad[k]));
                json_array_append_new(slots,
                        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o*, s:s*, s:s*}",
                                  "slot_class", ji->image->slot_class, "slot", slot_str(ji->target),
                                  "path", ji->slot_path, "result", result,
                                  "chunks", (json_int_t) st->chunks_total, "bad", (json_int_t) st->chunks_bad,
                                  "repaired", (json_int_t) st->chunks_repaired,
                                  "repaired_from_active", (json_int_t) st->chunks_from_active,
                                  "unrepaired", (json_int_t) unrepaired, "first_bad", first,
                                  "error", j->scrub_errors[i][0] ? j->scrub_errors[i] : NULL,
                                  "action", action[0] ? action : NULL));
                if (j->scrub_errors[i][0])
                        log_error("update: scrub of slot %s %c: %s; %s", ji->image->slot_class, ji->target,
                                  j->scrub_errors[i], action);
                else if (st->chunks_bad)
                        log_full(unrepaired ? LOG_ERR : LOG_WARNING,
                                 "update: scrub of slot %s %c (%s): %" PRIu64 " of %" PRIu64
                                 " chunks changed on the medium, %" PRIu64 " repaired (%" PRIu64
                                 " from the active slot), %" PRIu64 " without a good copy on the node%s%s",
                                 ji->image->slot_class, ji->target, ji->slot_path, st->chunks_bad,
                                 st->chunks_total, st->chunks_repaired, st->chunks_from_active, unrepaired,
                                 action[0] ? ": " : "", action);
                else
                        log_info("update: scrub of slot %s %c: %" PRIu64 " chunks, all good",
                                 ji->image->slot_class, ji->target, st->chunks_total);
        }
        json_t *doc = slots ? json_pack("{s:i, s:I, s:f, s:o}", "format", 1, "realtime_usec",
                                        (json_int_t) realtime_usec(), "duration_sec",
                                        (double) (monotonic_usec(m) - j->scrub_started_usec) / 1e6, "slots",
                                        slots)
                            : NULL;
        if (doc) {
                json_decref(m->scrub_last);
                m->scrub_last = doc;
                _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
                if (text && statefile_save(m->cfg->update.work_dir, SCRUB_FILE, text, strlen(text)) < 0)
                        log_warning("update: cannot save the scrub result in %s", m->cfg->update.work_dir);
                (void) event_queue_push(m->events, prio, "update.scrub", json_incref(doc), realtime_usec(),
                                        monotonic_usec(m));
        }
        if (bad_total == 0)
                log_debug("update: scrub clean");
        if (m->cfg->update.scrub_interval_sec > 0)
                scrub_schedule(m, (uint64_t) m->cfg->update.scrub_interval_sec * 1000000ULL);
}

static int on_scrub_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct update_manager *m = userdata;
        if (m->cfg->update.scrub_interval_sec <= 0)
                return 0;
        char msg[256];
        int r = scrub_start(m, msg, sizeof(msg));
        if (r == -EBUSY) {
                uint64_t interval = (uint64_t) m->cfg->update.scrub_interval_sec * 1000000ULL;
                scrub_schedule(m, interval < SCRUB_RETRY_USEC ? interval : SCRUB_RETRY_USEC);
        } else if (r < 0) {
                log_debug("update: scrub: %s", msg);
                scrub_schedule(m, (uint64_t) m->cfg->update.scrub_interval_sec * 1000000ULL);
        }
        return 0;
}

/* The last result, and the first scrub of this run due one interval after the last one. */
static int scrub_setup(struct update_manager *m) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (statefile_load(m->cfg->update.work_dir, SCRUB_FILE, &text, &len, NULL) >= 0) {
                json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
                if (json_is_object(o) && json_is_integer(json_object_get(o, "realtime_usec")))
                        m->scrub_last = o;
                else
                        json_decref(o);
        }
        int r = sd_event_add_time(m->event, &m->scrub_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_scrub_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(m->scrub_timer, "update-scrub");
        (void) sd_event_source_set_enabled(m->scrub_timer, SD_EVENT_OFF);
        int64_t interval = m->cfg->update.scrub_interval_sec;
        if (interval <= 0)
                return 0;
        uint64_t delay = (uint64_t) interval * 1000000ULL;
        if (m->scrub_last) {
                uint64_t last = (uint64_t) json_integer_value(json_object_get(m->scrub_last, "realtime_usec"));
                uint64_t now = realtime_usec();
                if (last <= now)
                        delay = now - last >= delay ? 0 : delay - (now - last);
        }
        scrub_schedule(m, delay);
        return 0;
}

int update_manager_scrub(struct update_manager *m, json_t **ret, char *msg, size_t size) {
        int r = scrub_start(m, msg, size);
        if (r < 0)
                return r;
        *ret = json_pack("{s:s, s:I}", "scrub", "started", "slots", (json_int_t) m->job->n_images);
        return *ret ? 0 : -ENOMEM;
}

/* ---- starting an install -------------------------------------------------------------- */

static int open_bundle(struct update_manager *m, const char *path, struct bundle **ret, char *msg,
                       size_t size) {
        const struct agent_update_config *u = &m->cfg->update;
        _cleanup_keyring_ struct signature_keyring *kr = NULL;
        _cleanup_free_ char *why = NULL;
        int r = signature_keyring_load_dir(u->keyring_dir, &kr, &why);
        if (r < 0) {
                snprintf(msg, size, "bundle keyring %s: %s", u->keyring_dir, why ? why : strerror(-r));
                return r;
        }
        struct bundle_verify_options o = {
                .keyring = kr,
                .hardware = u->hardware,
                .min_security_version = m->state.min_security_version,
                .now = u->check_certificate_time ? time(NULL) : SIGNATURE_NOW_UNKNOWN,
        };
        r = bundle_open(path, &o, ret, &why);
        if (r < 0)
                snprintf(msg, size, "%s", why ? why : strerror(-r));
        return r;
}

/* Fill a job for the bundle, with targets from the state (resume) or chosen now. */
static int job_prepare(struct update_manager *m, struct bundle *b, bool resume,
                       const struct job *remote, struct job **ret, char *msg, size_t size) {
        const struct agent_update_config *u = &m->cfg->update;
        const struct manifest *mf = bundle_manifest(b);
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->m = m;
        j->checkpoint_bytes = (uint64_t) u->checkpoint_mib * 1024 * 1024;
        j->delta_scan = u->delta_scan;
        j->verify_first = u->verify_before_write;
        snprintf(j->work_dir, sizeof(j->work_dir), "%s", u->work_dir);
        snprintf(j->models_dir, sizeof(j->models_dir), "%s", u->models_dir ? u->models_dir : "");
        snprintf(j->progress_path, sizeof(j->progress_path), "%s/%s", u->work_dir, PROGRESS_FILE);
        sha256_to_hex(bundle_manifest_digest(b), j->manifest_sha256);
        uint64_t offsets[MANIFEST_MAX_IMAGES] = {};
        _cleanup_free_ char *why = NULL;
        int r = 0;
        if (remote) {
                /* Over the link the payload offsets are found by the worker, and each chunk is
                 * verified as it arrives: a verify pass first would fetch every byte twice. */
                j->remote = true;
                j->verify_first = false;
                j->link = remote->link;
                j->budget = remote->budget;
                j->remote_size = remote->remote_size;
                snprintf(j->url, sizeof(j->url), "%s", remote->url);
                snprintf(j->etag, sizeof(j->etag), "%s", remote->etag);
        } else
                r = bundle_locate_payloads(b, offsets, &why);
        if (r < 0) {
                snprintf(msg, size, "%s", why ? why : strerror(-r));
                free(j);
                return r;
        }
        struct update_state next = m->state;
        if (!resume) {
                next.has_rootfs = false;
                next.n_models = 0;
        }
        for (size_t i = 0; i < mf->n_images; i++) {
                const struct manifest_image *img = &mf->images[i];
                struct job_image *ji = &j->images[j->n_images];
                const char *model = slot_class_model_name(img->slot_class);
                ji->image = img;
                ji->bundle_offset = offsets[i];
                ji->slot_fd = ji->active_fd = -1;
                if (streq(img->slot_class, "rootfs")) {
                        if (!u->rootfs_a || !m->bootenv) {
                                r = -ENOTSUP;
                                snprintf(msg, size, "the bundle has a rootfs image but this node has no "
                                         "rootfs slots (update.rootfs)");
                                goto fail;
                        }
                        if (!m->booted) {
                                r = -ENXIO;
                                snprintf(msg, size, "the booted slot is unknown (no orbit.slot= in %s): "
                                         "refusing to write either rootfs slot",
                                         m->cfg->paths.kernel_cmdline);
                                goto fail;
                        }
                        if (!resume) {
                                next.has_rootfs = true;
                                next.rootfs_previous = m->booted;
                                next.rootfs_target = slot_other(m->booted);
                        }
                        if (next.rootfs_target == m->booted) {
                                r = -EBUSY;
                                snprintf(msg, size, "slot %c is the booted slot: it cannot be written",
                                         m->booted);
                                goto fail;
                        }
                        ji->target = next.rootfs_target;
                        snprintf(ji->slot_path, sizeof(ji->slot_path), "%s",
                                 ji->target == 'A' ? u->rootfs_a : u->rootfs_b);
                        snprintf(ji->active_path, sizeof(ji->active_path), "%s",
                                 m->booted == 'A' ? u->rootfs_a : u->rootfs_b);
                        record_name(img->slot_class, m->booted, ji->active_record, sizeof(ji->active_record));
                } else if (model) {
                        struct update_model_target *t = NULL;
                        for (size_t k = 0; k < next.n_models; k++)
                                if (streq(next.models[k].name, model))
                                        t = &next.models[k];
                        if (!t) {
                                if (resume) {
                                        r = -EBADMSG;
                                        snprintf(msg, size, "model %s is not in the saved install state", model);
                                        goto fail;
                                }
                                t = &next.models[next.n_models++];
                                snprintf(t->name, sizeof(t->name), "%s", model);
                                char cur = 0;
                                r = model_slot_current(u->models_dir, model, &cur);
                                if (r < 0 && r != -ENOENT) {
                                        snprintf(msg, size, "model %s: its current link is broken: %s",
                                                 model, strerror(-r));
                                        goto fail;
                                }
                                t->previous = r >= 0 ? cur : 0;
                                t->target = r >= 0 ? slot_other(cur) : 'A';
                        }
                        ji->target = t->target;
                        r = model_slot_image(u->models_dir, model, t->target, ji->slot_path,
                                             sizeof(ji->slot_path));
                        if (r >= 0 && t->previous)
                                r = model_slot_image(u->models_dir, model, t->previous, ji->active_path,
                                                     sizeof(ji->active_path));
                        if (r < 0) {
                                snprintf(msg, size, "model %s: path too long", model);
                                goto fail;
                        }
                        if (t->previous)
                                record_name(img->slot_class, t->previous, ji->active_record,
                                            sizeof(ji->active_record));
                } else {
                        r = -ENOTSUP;
                        snprintf(msg, size, "image %s: this agent installs rootfs and model:<name> images only",
                                 img->slot_class);
                        goto fail;
                }
                record_name(img->slot_class, ji->target, ji->record, sizeof(ji->record));
                ji->done = calloc(1, install_bitmap_size(img->n_chunks) + 1);
                if (!ji->done) {
                        r = -ENOMEM;
                        goto fail;
                }
                j->n_images++;
        }
        m->state = next;
        j->has_rootfs = next.has_rootfs;
        j->rootfs_target = next.rootfs_target;
        *ret = j;
        return 0;
fail:
        for (size_t i = 0; i < j->n_images; i++)
                free(j->images[i].done);
        free(j);
        return r;
}

static int start_worker(struct update_manager *m, struct job *j) {
        if (!j->scrub)
                progress_load(j);
        uint64_t total = 0;
        for (size_t i = 0; i < j->n_images; i++)
                total += j->images[i].image->size;
        pthread_mutex_lock(&m->lock);
        m->progress_total = total;
        m->progress_before = 0;
        memset(&m->progress, 0, sizeof(m->progress));
        pthread_mutex_unlock(&m->lock);
        m->cancel = 0;
        m->job = j;
        int r = -pthread_create(&m->thread, NULL, worker_main, j);
        if (r < 0) {
                m->job = NULL;
                return r;
        }
        m->worker_running = true;
        return 0;
}

/*
 * Prepare and start the worker for a verified bundle. Before any byte of a target slot
 * changes, the target is taken out of the bootloader's choices and its content record
 * removed: a half-written slot can never be booted or trusted as a delta source.
 */
static int begin_install(struct update_manager *m, struct bundle *b, bool resume,
                         const struct job *remote, char *msg, size_t size) {
        struct job *j;
        int r = job_prepare(m, b, resume, remote, &j, msg, size);
        if (r < 0) {
                bundle_close(b);
                return r;
        }
        j->bundle = b;
        if (!resume) {
                m->state.installs++;
                r = set_phase(m, UPDATE_INSTALLING, "into %s%s%s", m->state.has_rootfs ? "rootfs slot " : "",
                              m->state.has_rootfs ? slot_str(m->state.rootfs_target) : "",
                              m->state.n_models ? (m->state.has_rootfs ? " and model slots" : "model slots") : "");
                if (r < 0) {
                        snprintf(msg, size, "cannot save the update state: %s", strerror(-r));
                        job_free(j);
                        return r;
                }
        }
        r = start_worker(m, j);
        if (r < 0) {
                snprintf(msg, size, "cannot start the install thread: %s", strerror(-r));
                job_free(j);
        }
        return r;
}

static int fail_now(struct update_manager *m, int r, const char *msg) {
        (void) set_phase(m, UPDATE_FAILED, "%s", msg);
        return r;
}

int update_manager_install(struct update_manager *m, const char *bundle_path, json_t **ret,
                           char *msg, size_t size) {
        if (!update_phase_is_final(m->state.phase)) {
                snprintf(msg, size, "an update is in progress (%s %s, %s)", m->state.bundle_id,
                         m->state.version, update_phase_to_string(m->state.phase));
                return -EBUSY;
        }
        scrub_stop(m);
        char abs[PATH_MAX];
        if (!realpath(bundle_path, abs)) {
                int r = negative_errno();
                snprintf(msg, size, "%s: %s", bundle_path, strerror(-r));
                return r;
        }
        /* A new install: what the last one said no longer applies. */
        struct update_state before = m->state;
        m->paused_for_space = false;
        snprintf(m->state.bundle_path, sizeof(m->state.bundle_path), "%s", abs);
        m->state.bundle_id[0] = m->state.version[0] = m->state.manifest_sha256[0] = '\0';
        m->state.security_version = 0;
        m->state.has_rootfs = false;
        m->state.n_models = 0;
        int r = set_phase(m, UPDATE_FETCHING, "verifying %s", abs);
        if (r < 0) {
                /* Not begun (a full disk, say): the last update's state stands, so the
                 * next install is not refused as "in progress". */
                m->state = before;
                snprintf(msg, size, "cannot save the update state in %s: %s",
                         m->cfg->update.work_dir, strerror(-r));
                return r;
        }
        struct bundle *b;
        r = open_bundle(m, abs, &b, msg, size);
        if (r < 0)
                return fail_now(m, r, msg);
        const struct manifest *mf = bundle_manifest(b);
        snprintf(m->state.bundle_id, sizeof(m->state.bundle_id), "%s", mf->bundle_id);
        snprintf(m->state.version, sizeof(m->state.version), "%s", mf->version);
        m->state.security_version = mf->security_version;
        sha256_to_hex(bundle_manifest_digest(b), m->state.manifest_sha256);
        r = begin_install(m, b, false, NULL, msg, size);
        if (r < 0)
                return fail_now(m, r, msg);
        *ret = json_pack("{s:s, s:s, s:s, s:I}", "phase", update_phase_to_string(m->state.phase),
                         "bundle_id", m->state.bundle_id, "version", m->state.version,
                         "security_version", (json_int_t) m->state.security_version);
        return *ret ? 0 : -ENOMEM;
}

/* An install interrupted by a stop, a kill or a power cut: verify again and go on. */
static int start_head_fetch(struct update_manager *m, const char *url);

static int resume_install(struct update_manager *m) {
        char msg[UPDATE_REASON_MAX] = "";
        if (!m->state.bundle_path[0])
                return fail_now(m, -ENOENT, "interrupted before the bundle was known");
        if (strncmp(m->state.bundle_path, "https://", 8) == 0) {
                log_notice("update: resuming the download of %s", m->state.bundle_path);
                int r = start_head_fetch(m, m->state.bundle_path);
                return r < 0 ? fail_now(m, r, "cannot start the download") : 0;
        }
        struct bundle *b;
        int r = open_bundle(m, m->state.bundle_path, &b, msg, sizeof(msg));
        if (r < 0)
                return fail_now(m, r, msg);
        char digest[SHA256_HEX_SIZE];
        sha256_to_hex(bundle_manifest_digest(b), digest);
        if (m->state.manifest_sha256[0] && !streq(digest, m->state.manifest_sha256)) {
                bundle_close(b);
                return fail_now(m, -ESTALE, "the bundle file changed since the install began");
        }
        if (m->state.phase == UPDATE_FETCHING) {
                /* stopped between verifying and installing: start the install properly */
                const struct manifest *mf = bundle_manifest(b);
                snprintf(m->state.bundle_id, sizeof(m->state.bundle_id), "%s", mf->bundle_id);
                snprintf(m->state.version, sizeof(m->state.version), "%s", mf->version);
                m->state.security_version = mf->security_version;
                snprintf(m->state.manifest_sha256, sizeof(m->state.manifest_sha256), "%s", digest);
                r = begin_install(m, b, false, NULL, msg, sizeof(msg));
        } else {
                log_notice("update: resuming the install of %s %s", m->state.bundle_id, m->state.version);
                r = begin_install(m, b, true, NULL, msg, sizeof(msg));
        }
        if (r < 0)
                return fail_now(m, r, msg);
        return 0;
}

static int start_head_fetch(struct update_manager *m, const char *url) {
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->m = m;
        j->remote = true;
        j->head_only = true;
        const struct agent_link_config *lc = &m->cfg->link;
        snprintf(j->link.ca, sizeof(j->link.ca), "%s", lc->ca ? lc->ca : "");
        snprintf(j->link.cert, sizeof(j->link.cert), "%s", lc->cert ? lc->cert : "");
        snprintf(j->link.key, sizeof(j->link.key), "%s", lc->key ? lc->key : "");
        j->link.connect_timeout_sec = (long) lc->connect_timeout_sec;
        j->link.max_recv_bytes_per_sec = lc->max_recv_bytes_per_sec;
        j->budget = (uint64_t) m->cfg->link.download_budget_mib * 1024 * 1024;
        snprintf(j->url, sizeof(j->url), "%s", url);
        snprintf(j->work_dir, sizeof(j->work_dir), "%s", m->cfg->update.work_dir);
        snprintf(j->head_path, sizeof(j->head_path), "%s/%s", m->cfg->update.work_dir, DOWNLOAD_FILE);
        m->paused = false;
        int r = start_worker(m, j);
        if (r < 0)
                job_free(j);
        return r;
}

int update_manager_install_remote(struct update_manager *m, const char *url, json_t **ret, char *msg,
                                  size_t size) {
        if (!m->cfg->link.enabled || !m->cfg->link.url) {
                snprintf(msg, size, "the controller link is not configured (link.enabled)");
                return -ENOTSUP;
        }
        if (!url || strncmp(url, "https://", 8) != 0 || strlen(url) >= sizeof(m->state.bundle_path)) {
                snprintf(msg, size, "bundles are fetched over https only");
                return -EINVAL;
        }
        if (!update_phase_is_final(m->state.phase)) {
                snprintf(msg, size, "an update is in progress (%s %s, %s)", m->state.bundle_id,
                         m->state.version, update_phase_to_string(m->state.phase));
                return -EBUSY;
        }
        scrub_stop(m);
        struct update_state before = m->state;
        m->paused_for_space = false;
        snprintf(m->state.bundle_path, sizeof(m->state.bundle_path), "%s", url);
        m->state.bundle_id[0] = m->state.version[0] = m->state.manifest_sha256[0] = '\0';
        m->state.security_version = 0;
        m->state.has_rootfs = false;
        m->state.n_models = 0;
        int r = set_phase(m, UPDATE_FETCHING, "fetching the manifest from %s", url);
        if (r < 0) {
                m->state = before; /* not begun: see update_manager_install */
                snprintf(msg, size, "cannot save the update state in %s: %s",
                         m->cfg->update.work_dir, strerror(-r));
                return r;
        }
        r = start_head_fetch(m, url);
        if (r < 0) {
                snprintf(msg, size, "cannot start the download: %s", strerror(-r));
                return fail_now(m, r, msg);
        }
        *ret = json_pack("{s:s, s:s}", "phase", update_phase_to_string(m->state.phase), "url", url);
        return *ret ? 0 : -ENOMEM;
}

void update_manager_link_up(struct update_manager *m) {
        if (!m || !m->paused || m->worker_running)
                return;
        m->paused = false;
        (void) resume_install(m);
}

int update_manager_request_reboot(struct update_manager *m, char *msg, size_t size) {
        if (!m || m->cfg->update.n_reboot_args == 0) {
                snprintf(msg, size, "no reboot command is configured (update.reboot_command)");
                return -ENOTSUP;
        }
        request_reboot(m);
        snprintf(msg, size, "rebooting with %s", m->cfg->update.reboot_command[0]);
        return 0;
}

int update_manager_mark_good(struct update_manager *m, json_t **ret, char *msg, size_t size) {
        if (m->state.phase != UPDATE_TRIAL) {
                snprintf(msg, size, "nothing on trial (the update is %s)",
                         update_phase_to_string(m->state.phase));
                return -EINVAL;
        }
        int r = do_commit(m, "marked good by the operator", msg, size);
        if (r < 0)
                return r;
        *ret = json_pack("{s:s}", "phase", update_phase_to_string(m->state.phase));
        return *ret ? 0 : -ENOMEM;
}

int update_manager_mark_bad(struct update_manager *m, json_t **ret, char *msg, size_t size) {
        scrub_stop(m);
        if (m->state.phase != UPDATE_TRIAL && m->state.phase != UPDATE_READY) {
                snprintf(msg, size, "nothing on trial or waiting for a reboot (the update is %s)",
                         update_phase_to_string(m->state.phase));
                return -EINVAL;
        }
        int r = do_rollback(m, true, "marked bad by the operator");
        if (r < 0) {
                snprintf(msg, size, "rollback incomplete: %s", strerror(-r));
                return r;
        }
        *ret = json_pack("{s:s, s:b}", "phase", update_phase_to_string(m->state.phase),
                         "reboot_required", m->reboot_required);
        return *ret ? 0 : -ENOMEM;
}

int update_manager_rollback(struct update_manager *m, json_t **ret, char *msg, size_t size) {
        scrub_stop(m);
        if (m->state.phase == UPDATE_TRIAL || m->state.phase == UPDATE_READY)
                return update_manager_mark_bad(m, ret, msg, size);
        if (m->state.phase != UPDATE_COMMITTED) {
                snprintf(msg, size, "no committed update to roll back (the update is %s)",
                         update_phase_to_string(m->state.phase));
                return -EINVAL;
        }
        /* Going back is only safe to a slot that is still good and still holds the old image. */
        if (m->state.has_rootfs) {
                struct boot_state bs;
                int r = boot_read_locked(m, &bs), p = boot_slot_index(m->state.rootfs_previous);
                if (r < 0 || p < 0 || !bs.slot[p].good) {
                        snprintf(msg, size, "slot %c is not marked good: nothing safe to roll back to",
                                 m->state.rootfs_previous);
                        return -ENOENT;
                }
        }
        int r = do_rollback(m, true, "rolled back by the operator");
        if (r < 0) {
                snprintf(msg, size, "rollback incomplete: %s", strerror(-r));
                return r;
        }
        *ret = json_pack("{s:s, s:b}", "phase", update_phase_to_string(m->state.phase),
                         "reboot_required", m->reboot_required);
        return *ret ? 0 : -ENOMEM;
}

/* ---- status ------------------------------------------------------------------------------ */

static json_t *slot_records_json(struct update_manager *m, const char *slot_class) {
        json_t *o = json_object();
        for (char s = 'A'; o && s <= 'B'; s++) {
                char name[PATH_MAX];
                record_name(slot_class, s, name, sizeof(name));
                _cleanup_free_ char *text = NULL;
                size_t len;
                struct manifest mf = {};
                json_t *v = json_null();
                if (statefile_load(m->cfg->update.work_dir, name, &text, &len, NULL) >= 0 &&
                    manifest_parse_text(name, text, len, 0, &mf, NULL) >= 0) {
                        v = json_pack("{s:s, s:s, s:I}", "bundle_id", mf.bundle_id, "version",
                                      mf.version, "security_version", (json_int_t) mf.security_version);
                        manifest_free(&mf);
                }
                json_object_set_new(o, slot_str(s), v);
        }
        return o;
}

json_t *update_manager_status_json(struct update_manager *m) {
        const struct update_state *s = &m->state;
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s?, s:b, s:I}",
                              "phase", update_phase_to_string(s->phase), "bundle_id", s->bundle_id,
                              "version", s->version, "security_version", (json_int_t) s->security_version,
                              "min_security_version", (json_int_t) s->min_security_version,
                              "reason", s->reason, "changed_realtime_usec",
                              (json_int_t) s->changed_realtime_usec, "booted_slot", slot_str(m->booted),
                              "reboot_required", m->reboot_required, "installs",
                              (json_int_t) s->installs);
        if (!o)
                return NULL;
        /* the status document's common fields for a subsystem */
        char summary[512];
        snprintf(summary, sizeof(summary), "%s%s%s%s%s%s; booted slot %s%s",
                 update_phase_to_string(s->phase),
                 s->bundle_id[0] ? " " : "", s->bundle_id, s->version[0] ? " " : "", s->version,
                 !m->paused ? "" : m->paused_for_space ? " (paused: no space)" : " (paused: link)",
                 m->booted ? slot_str(m->booted) : "unknown", m->reboot_required ? "; reboot required" : "");
        bool scrubbing = m->worker_running && m->job && m->job->scrub;
        json_object_set_new(o, "state", json_string(scrubbing ? "scrubbing" : m->worker_running ? "installing" : "active"));
        {
                uint64_t next = 0, now = monotonic_usec(m);
                int enabled = SD_EVENT_OFF;
                if (m->scrub_timer && sd_event_source_get_enabled(m->scrub_timer, &enabled) >= 0 &&
                    enabled != SD_EVENT_OFF)
                        (void) sd_event_source_get_time(m->scrub_timer, &next);
                json_object_set_new(o, "scrub", json_pack("{s:b, s:O?, s:o?}", "running", scrubbing, "last",
                                                          m->scrub_last, "next_in_sec",
                                                          next ? json_real(next > now ? (double) (next - now) / 1e6 : 0.0) : NULL));
        }
        json_object_set_new(o, "paused", json_boolean(m->paused));
        if (m->paused) {
                json_object_set_new(o, "paused_reason", json_string(m->last_error));
                json_object_set_new(o, "paused_for",
                                    json_string(m->paused_for_space ? "space" : "link"));
        }
        json_object_set_new(o, "summary", json_string(summary));
        if (s->has_rootfs)
                json_object_set_new(o, "rootfs", json_pack("{s:s, s:s}", "target", slot_str(s->rootfs_target),
                                                           "previous", slot_str(s->rootfs_previous)));
        json_t *models = json_array();
        for (size_t i = 0; models && i < s->n_models; i++) {
                char cur = 0;
                bool have = model_slot_current(m->cfg->update.models_dir, s->models[i].name, &cur) >= 0;
                json_array_append_new(models, json_pack("{s:s, s:s, s:s?, s:s?}", "name", s->models[i].name,
                                                        "target", slot_str(s->models[i].target),
                                                        "previous", slot_str(s->models[i].previous),
                                                        "current", have ? slot_str(cur) : NULL));
        }
        json_object_set_new(o, "models", models);
        if (m->bootenv) {
                struct boot_state bs;
                json_t *b;
                if (boot_read_locked(m, &bs) >= 0)
                        b = json_pack("{s:s, s:s, s:{s:b, s:i}, s:{s:b, s:i}}", "kind",
                                      m->cfg->update.bootloader_kind, "primary", slot_str(bs.primary),
                                      "A", "good", bs.slot[0].good, "tries_left", bs.slot[0].tries_left,
                                      "B", "good", bs.slot[1].good, "tries_left", bs.slot[1].tries_left);
                else
                        b = json_pack("{s:s, s:s}", "kind", m->cfg->update.bootloader_kind, "error",
                                      "unreadable");
                json_object_set_new(o, "boot", b);
                json_object_set_new(o, "rootfs_slots", slot_records_json(m, "rootfs"));
        }
        if (m->worker_running && !scrubbing) {
                pthread_mutex_lock(&m->lock);
                struct install_stats st = m->progress;
                uint64_t before = m->progress_before, total = m->progress_total;
                pthread_mutex_unlock(&m->lock);
                uint64_t done = before + st.bytes_done;
                json_object_set_new(o, "progress",
                                    json_pack("{s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I}", "bytes_done",
                                              (json_int_t) done, "bytes_total", (json_int_t) total,
                                              "percent", total ? 100.0 * (double) done / (double) total : 100.0,
                                              "chunks_resumed", (json_int_t) st.chunks_resumed,
                                              "chunks_from_active", (json_int_t) st.chunks_from_active,
                                              "chunks_from_bundle", (json_int_t) st.chunks_from_source,
                                              "bytes_from_bundle", (json_int_t) st.bytes_from_source,
                                              "chunks_repaired", (json_int_t) st.chunks_repaired));
        }
        if (s->phase == UPDATE_TRIAL && m->gate_timer) {
                uint64_t now = monotonic_usec(m);
                json_object_set_new(o, "trial",
                                    json_pack("{s:I, s:I, s:I, s:I, s:s?}", "elapsed_sec",
                                              (json_int_t) ((now - m->trial_started_usec) / 1000000),
                                              "gate_ok_for_sec",
                                              (json_int_t) (m->gate_ok_since_usec ? (now - m->gate_ok_since_usec) / 1000000 : 0),
                                              "gate_sec", (json_int_t) m->cfg->update.gate_sec,
                                              "timeout_sec", (json_int_t) m->cfg->update.trial_timeout_sec,
                                              "gate_failing", m->gate_why[0] ? m->gate_why : NULL));
        }
        return o;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static int state_load(struct update_manager *m) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        enum statefile_source src;
        update_state_init(&m->state);
        int r = statefile_load(m->cfg->update.work_dir, STATE_FILE, &text, &len, &src);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "update: the update state in %s/%s cannot be trusted "
                                       "(no copy verifies); refusing updates until it is repaired",
                                       m->cfg->update.work_dir, STATE_FILE);
        r = update_state_parse(text, len, &m->state, &why);
        if (r < 0)
                return log_error_errno(r, "update: %s/%s: %s", m->cfg->update.work_dir, STATE_FILE,
                                       why ? why : "malformed");
        if (src == STATEFILE_SOURCE_PREVIOUS)
                log_warning("update: the update state was restored from its last good copy");
        return 0;
}

static int start_action(struct update_manager *m) {
        struct boot_state bs, *bp = NULL;
        if (m->state.has_rootfs && boot_read_locked(m, &bs) >= 0)
                bp = &bs;
        const char *why = "";
        enum update_start_action a = update_decide_at_start(&m->state, bp, m->booted, &why);
        if (a != UPDATE_START_NOTHING)
                log_info("update: at start, %s %s is %s: %s", m->state.bundle_id, m->state.version,
                         update_phase_to_string(m->state.phase), update_start_action_to_string(a));
        char msg[512] = "";
        switch (a) {
        case UPDATE_START_NOTHING:
                return 0;
        case UPDATE_START_RESUME:
                return resume_install(m);
        case UPDATE_START_WAIT_REBOOT:
                m->reboot_required = true;
                log_notice("update: slot %c is armed; waiting for a reboot", m->state.rootfs_target);
                return 0;
        case UPDATE_START_BEGIN_TRIAL:
                return begin_trial(m);
        case UPDATE_START_COMMITTED:
                if (m->state.phase == UPDATE_READY)
                        (void) set_phase(m, UPDATE_TRIAL, "booted slot %c", m->booted);
                return do_commit(m, "the slot was already committed", msg, sizeof(msg));
        case UPDATE_START_ROLLED_BACK:
                return do_rollback(m, false, "%s (running slot %c)", why, m->booted ? m->booted : '?');
        }
        return 0;
}

int update_manager_new(sd_event *event, const struct agent_config *cfg,
                       const struct node_state *node, struct event_queue *events,
                       struct runtime *runtime, struct health_monitor *health,
                       struct update_manager **ret) {
        struct update_manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->cfg = cfg;
        const char *stall = getenv("ORBIT_FAILPOINT_INSTALL_STALL_PERCENT");
        if (stall && *stall)
                m->stall_percent = strtod(stall, NULL);
        m->node = node;
        m->events = events;
        m->runtime = runtime;
        m->health = health;
        m->efd = -1;
        pthread_mutex_init(&m->lock, NULL);
        pthread_mutex_init(&m->boot_lock, NULL);
        const struct agent_update_config *u = &cfg->update;
        int r = mkdir_parents(u->work_dir, 0700);
        if (r < 0) {
                log_error_errno(r, "update: cannot create %s", u->work_dir);
                goto fail;
        }
        m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->efd < 0) {
                r = log_error_errno(errno, "update: eventfd");
                goto fail;
        }
        r = sd_event_add_io(event, &m->efd_source, m->efd, EPOLLIN, on_worker_done, m);
        if (r < 0)
                goto fail;
        if (u->bootloader_kind) {
                struct bootenv_config bc = {
                        .path = u->bootloader_path,
                        .path_redundant = u->bootloader_path_redundant,
                        .offset = (uint64_t) u->bootloader_offset,
                        .offset_redundant = (uint64_t) u->bootloader_offset_redundant,
                        .size = (size_t) u->bootloader_size,
                };
                (void) bootenv_kind_from_string(u->bootloader_kind, &bc.kind);
                r = bootenv_open(&bc, &m->bootenv);
                if (r < 0) {
                        log_error_errno(r, "update: bootloader %s at %s", u->bootloader_kind, u->bootloader_path);
                        goto fail;
                }
                m->boot_path = strdup(u->bootloader_path ? u->bootloader_path : "");
                if (!m->boot_path) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = bootenv_booted_slot(cfg->paths.kernel_cmdline, &m->booted);
                if (r < 0) {
                        m->booted = 0;
                        snprintf(m->boot_error, sizeof(m->boot_error), "no orbit.slot= in %s",
                                 cfg->paths.kernel_cmdline);
                        log_warning("update: the booted slot is unknown (%s): rootfs installs are refused",
                                    m->boot_error);
                }
        }
        r = state_load(m);
        if (r < 0)
                goto fail;
        r = scrub_setup(m);
        if (r < 0)
                goto fail;
        r = start_action(m);
        if (r < 0)
                log_warning("update: the start action did not complete: %s", strerror(-r));
        log_info("update: ready; booted slot %s, floor security_version %" PRIu64 ", last update %s",
                 m->booted ? slot_str(m->booted) : "unknown", m->state.min_security_version,
                 update_phase_to_string(m->state.phase));
        *ret = m;
        return 0;
fail:
        update_manager_free(m);
        return r;
}

void update_manager_free(struct update_manager *m) {
        if (!m)
                return;
        if (m->worker_running) {
                m->cancel = 1;
                worker_join(m);
                if (m->job) {
                        if (!m->job->scrub)
                                log_notice("update: install stopped; progress saved, it resumes at the next start");
                        job_free(m->job);
                        m->job = NULL;
                }
        }
        stop_gate(m);
        m->reboot_timer = sd_event_source_disable_unref(m->reboot_timer);
        m->scrub_timer = sd_event_source_disable_unref(m->scrub_timer);
        json_decref(m->scrub_last);
        m->space_timer = sd_event_source_disable_unref(m->space_timer);
        m->efd_source = sd_event_source_disable_unref(m->efd_source);
        if (m->efd >= 0)
                close(m->efd);
        bootenv_free(m->bootenv);
        pthread_mutex_destroy(&m->lock);
        pthread_mutex_destroy(&m->boot_lock);
        free(m->boot_path);
        sd_event_unref(m->event);
        free(m);
}
