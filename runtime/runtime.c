/* The workload runtime: supervision of sandboxed workloads on the agent's event loop. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/message.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"
#include "runtime/seccomp-policy.h"
#include "lib/statefile.h"
#include "runtime/supervise-policy.h"
#include "runtime/workload-log.h"

#define RECORDS_SUBDIR "workloads"
#define MAX_WORKLOADS 256
#define ID_RANGES_FILE "id-ranges" /* in state_dir: which workload owns which host id slice */
#define PROTECTED_MAX 32
#define BIND_ALLOWED_MAX 8

enum workload_state {
        WORKLOAD_STOPPED,  /* not running, and not meant to */
        WORKLOAD_RUNNING,
        WORKLOAD_STOPPING, /* SIGTERM sent, SIGKILL on the grace timer */
        WORKLOAD_BACKOFF,  /* waiting to restart */
        WORKLOAD_FAILED,   /* crash loop or a start that cannot succeed */
        _WORKLOAD_STATE_MAX,
};

static const char *const state_names[_WORKLOAD_STATE_MAX] = {
        [WORKLOAD_STOPPED] = "stopped",   [WORKLOAD_RUNNING] = "running",
        [WORKLOAD_STOPPING] = "stopping", [WORKLOAD_BACKOFF] = "backoff",
        [WORKLOAD_FAILED] = "failed",
};

struct workload {
        struct runtime *rt;
        struct workload *next;
        struct workload_spec spec;
        char *spec_text, *source;
        enum workload_state state;
        bool want_running;    /* persisted: start it when the agent starts */
        bool stop_requested;  /* the exit that follows is the one we asked for */
        bool restart_after_stop;
        bool adopted;         /* running since before this agent started */
        struct cgroup *cg;
        struct sandbox_process proc;
        bool have_proc;
        sd_event_source *exit_source, *timer;
        struct workload_log *log;
        struct restart_tracker tracker;
        uint64_t started_usec;
        uint64_t oom_kills_at_start;
        unsigned restarts, starts;
        struct seccomp_program *seccomp;
        uid_t uid;
        gid_t gid;
        /* health probe */
        sd_event_source *probe_timer, *probe_exit, *probe_deadline;
        int probe_pidfd;
        pid_t probe_pid;
        unsigned probe_failures; /* consecutive */
        uint64_t probes_run, probes_failed;
        int health;              /* -1 unknown (no probe yet or none), 0 unhealthy, 1 healthy */
        bool unhealthy_stop;     /* we are stopping it because the probe kept failing */
        char last_probe[640];
        char last_exit[160];
        char last_error[512];
        /* the app slot member this run binds ('A'/'B', 0: no app) and its version */
        char app_member;
        char app_version[129];
        /* restarted by its app's last switch: its trial holds it to running even when it
         * ends "for good" (exit 0 under on-failure, any exit under "no") */
        bool app_held;
};

struct runtime {
        sd_event *event;
        struct runtime_config cfg; /* strings owned */
        struct cgroup_manager *cgroups;
        char unavailable[256];     /* why workloads cannot run here, or "" */
        struct workload *workloads;
        unsigned n_workloads;
        unsigned ncpu;
        struct class_control classes[_WORKLOAD_PRIORITY_MAX];
        bool best_effort_closed;
        /* run_when "sunlit" workloads wait while this says why ("" : they may run) */
        char sunlit_wait[128];
        runtime_event_fn event_fn;
        void *event_userdata;
        runtime_removing_fn removing_fn;
        void *removing_userdata;
        struct runtime_policy policy;
        struct id_allocations *ids; /* persisted in <state_dir>/id-ranges */
        struct workload_protected_path protected_paths[PROTECTED_MAX]; /* paths and labels owned */
        size_t n_protected;
        char *bind_allowed[BIND_ALLOWED_MAX + 1]; /* NULL-ended */
        size_t n_bind_allowed;
};

void runtime_set_event_handler(struct runtime *rt, runtime_event_fn fn, void *userdata) {
        rt->event_fn = fn;
        rt->event_userdata = userdata;
}

void runtime_set_removing_handler(struct runtime *rt, runtime_removing_fn fn, void *userdata) {
        rt->removing_fn = fn;
        rt->removing_userdata = userdata;
}

static void emit(struct runtime *rt, int priority, const char *kind, json_t *body) {
        if (rt->event_fn && body)
                rt->event_fn(rt->event_userdata, priority, kind, body);
        else
                json_decref(body);
}

static int workload_start(struct workload *w, char **ret_message);
static void probe_reset(struct workload *w);
static void workload_arm_restart(struct workload *w, uint64_t delay_usec);

static uint64_t now_usec(struct runtime *rt) {
        uint64_t t = 0;
        (void) sd_event_now(rt->event, CLOCK_MONOTONIC, &t);
        return t;
}


static struct workload *find(struct runtime *rt, const char *name) {
        for (struct workload *w = rt->workloads; w; w = w->next)
                if (streq(w->spec.name, name))
                        return w;
        return NULL;
}

/* ---- persisted records ------------------------------------------------------------ */

static int records_dir(struct runtime *rt, char *buf, size_t size) {
        if (snprintf(buf, size, "%s/" RECORDS_SUBDIR, rt->cfg.state_dir) >= (int) size)
                return -ENAMETOOLONG;
        return mkdir_parents(buf, 0700);
}

static int workload_save(struct workload *w) {
        char dir[PATH_MAX];
        int r = records_dir(w->rt, dir, sizeof(dir));
        if (r < 0)
                return log_error_errno(r, "workload %s: cannot create %s", w->spec.name, dir);
        json_t *rec = json_pack("{s:i,s:s,s:s,s:b}", "format", 1, "source", w->source, "spec",
                                w->spec_text, "want_running", w->want_running);
        if (!rec)
                return -ENOMEM;
        char *text = json_dumps(rec, JSON_COMPACT);
        json_decref(rec);
        if (!text)
                return -ENOMEM;
        r = statefile_save(dir, w->spec.name, text, strlen(text));
        free(text);
        return r;
}

/* ---- workloads: create, free ------------------------------------------------------ */

static void workload_free(struct workload *w) {
        if (!w)
                return;
        probe_reset(w);
        sd_event_source_disable_unref(w->exit_source);
        sd_event_source_disable_unref(w->timer);
        if (w->have_proc)
                sandbox_process_close(&w->proc);
        workload_log_free(w->log);
        cgroup_free(w->cg);
        seccomp_program_free(w->seccomp);
        workload_spec_free(&w->spec);
        free(w->spec_text);
        free(w->source);
        free(w);
}

static void workload_unlink(struct workload *w) {
        struct runtime *rt = w->rt;
        for (struct workload **p = &rt->workloads; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        rt->n_workloads--;
                        return;
                }
}

static int workload_new(struct runtime *rt, struct workload_spec *spec, const char *source,
                        const char *text, size_t len, struct workload **ret) {
        struct workload *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->rt = rt;
        w->probe_pidfd = -1;
        w->health = -1;
        w->spec = *spec;
        memset(spec, 0, sizeof(*spec));
        w->source = strdup(source);
        w->spec_text = strndup(text, len);
        struct workload_log_config lc = {
                .journal = rt->cfg.journal,
                .file_dir = rt->cfg.log_dir,
                .file_max_bytes = 1024 * 1024,
                .lines_per_sec = 1000,
        };
        int r = (w->source && w->spec_text) ? workload_log_new(rt->event, w->spec.name, &lc, &w->log) : -ENOMEM;
        if (r < 0) {
                workload_free(w);
                return r;
        }
        w->next = rt->workloads;
        rt->workloads = w;
        rt->n_workloads++;
        *ret = w;
        return 0;
}

/* ---- exit handling ---------------------------------------------------------------- */

static void workload_event(struct workload *w, int level, const char *fmt, ...) _printf_(3, 4);
static void workload_event(struct workload *w, int level, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_full(level, "workload %s: %s", w->spec.name, msg);
        workload_log_note(w->log, msg);
}

/* Reap a killed probe once it is gone: a probe in a frozen cgroup cannot die until the
 * group thaws, and the loop must never wait for that. The source owns the pidfd. */
static int on_probe_reaped(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) revents;
        (void) userdata;
        siginfo_t si = {0};
        if (waitid(P_PIDFD, (id_t) fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0)
                sd_event_source_disable_unref(s);
        return 0;
}

static void probe_reset(struct workload *w) {
        w->probe_timer = sd_event_source_disable_unref(w->probe_timer);
        w->probe_exit = sd_event_source_disable_unref(w->probe_exit);
        w->probe_deadline = sd_event_source_disable_unref(w->probe_deadline);
        if (w->probe_pid > 0 && w->probe_pidfd >= 0) {
                (void) syscall(SYS_pidfd_send_signal, w->probe_pidfd, SIGKILL, NULL, 0);
                siginfo_t si = {0};
                if (waitid(P_PIDFD, (id_t) w->probe_pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0) {
                        sd_event_source *reaper = NULL;
                        if (sd_event_add_io(w->rt->event, &reaper, w->probe_pidfd, EPOLLIN, on_probe_reaped, NULL) >= 0 &&
                            sd_event_source_set_io_fd_own(reaper, true) >= 0 &&
                            sd_event_source_set_floating(reaper, true) >= 0) {
                                sd_event_source_unref(reaper);
                                w->probe_pidfd = -1; /* the reaper's now */
                        } else
                                sd_event_source_disable_unref(reaper);
                }
        } else if (w->probe_pid > 0) {
                kill(w->probe_pid, SIGKILL);
                (void) waitpid(w->probe_pid, NULL, WNOHANG);
        }
        if (w->probe_pidfd >= 0)
                close(w->probe_pidfd);
        w->probe_pidfd = -1;
        w->probe_pid = 0;
}

static void workload_clear_process(struct workload *w) {
        probe_reset(w);
        w->exit_source = sd_event_source_disable_unref(w->exit_source);
        w->timer = sd_event_source_disable_unref(w->timer);
        if (w->have_proc)
                sandbox_process_close(&w->proc);
        w->have_proc = false;
        workload_log_detach(w->log);
}

static void workload_handle_exit(struct workload *w, int init_status) {
        struct runtime *rt = w->rt;
        int status = sandbox_collect_status(&w->proc, init_status);

        struct cgroup_stats st = {0};
        bool oom = false;
        if (w->cg && cgroup_get_stats(w->cg, &st) >= 0)
                oom = st.oom_kills > w->oom_kills_at_start;
        /* Without a pid namespace strays may outlive the init: the cgroup ends them. */
        if (w->cg && cgroup_is_empty(w->cg) == 0)
                (void) cgroup_kill_all(w->cg, SIGKILL);

        struct workload_exit e = {
                .status = status,
                .oom_killed = oom,
                .stop_requested = w->stop_requested && !w->unhealthy_stop,
                .unhealthy = w->unhealthy_stop,
                .ran_usec = now_usec(rt) - w->started_usec,
        };
        workload_exit_describe(&e, w->last_exit, sizeof(w->last_exit));
        workload_clear_process(w);
        w->adopted = false;

        bool failure = workload_exit_is_failure(&e);
        workload_event(w, failure ? LOG_WARNING : LOG_INFO, "%s after %.1f s", w->last_exit,
                       (double) e.ran_usec / 1e6);
        emit(rt, 1, "workload.exit",
             json_pack("{s:s,s:s,s:b,s:b,s:f,s:i}", "workload", w->spec.name, "exit", w->last_exit, "failure", failure,
                       "oom_killed", oom, "ran_sec", (double) e.ran_usec / 1e6, "wait_status", status));

        if (w->unhealthy_stop) {
                w->unhealthy_stop = false;
                w->stop_requested = false;
        }
        if (w->stop_requested) {
                w->stop_requested = false;
                w->state = WORKLOAD_STOPPED;
                if (w->restart_after_stop) {
                        w->restart_after_stop = false;
                        char *msg = NULL;
                        if (workload_start(w, &msg) < 0)
                                log_error("workload %s: restart failed: %s", w->spec.name, msg ? msg : "?");
                        free(msg);
                }
                return;
        }

        uint64_t delay;
        switch (restart_decide(&w->spec, &w->tracker, &e, now_usec(rt), &delay)) {
        case RESTART_NONE:
                /* Done for good (a finished batch job): not started again by the next agent. */
                w->state = WORKLOAD_STOPPED;
                w->want_running = false;
                (void) workload_save(w);
                break;
        case RESTART_GIVE_UP:
                w->state = WORKLOAD_FAILED;
                snprintf(w->last_error, sizeof(w->last_error),
                         "crash loop: %lld restarts within %lld s, not restarting again",
                         (long long) w->spec.restart.max_restarts, (long long) w->spec.restart.window_sec);
                workload_event(w, LOG_ERR, "%s", w->last_error);
                emit(rt, 2, "workload.crash_loop", json_pack("{s:s,s:s}", "workload", w->spec.name, "reason", w->last_error));
                break;
        case RESTART_AFTER_DELAY:
                workload_arm_restart(w, delay);
                break;
        }
}

static int on_exit_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct workload *w = userdata;
        siginfo_t si = {0};
        /* Our own child: reap it. An adopted one is not our child: its pipe tells all, and
         * an init that died without reporting (killed) counts as killed, not as success. */
        int init_status = SIGKILL;
        if (waitid(P_PIDFD, (id_t) fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0)
                init_status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
        workload_handle_exit(w, init_status);
        return 0;
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct workload *w = userdata;
        w->timer = sd_event_source_disable_unref(w->timer);
        w->restarts++;
        char *msg = NULL;
        if (workload_start(w, &msg) < 0 && w->state != WORKLOAD_FAILED) {
                /* A refused start (e.g. the class is stopped) waits for the next chance. */
                log_warning("workload %s: restart refused: %s", w->spec.name, msg ? msg : "?");
        }
        free(msg);
        return 0;
}

static void workload_arm_restart(struct workload *w, uint64_t delay_usec) {
        w->state = WORKLOAD_BACKOFF;
        workload_event(w, LOG_NOTICE, "restarting in %.1f s", (double) delay_usec / 1e6);
        int r = sd_event_add_time_relative(w->rt->event, &w->timer, CLOCK_MONOTONIC, delay_usec,
                                           10000, on_restart_timer, w);
        if (r < 0) {
                w->state = WORKLOAD_FAILED;
                snprintf(w->last_error, sizeof(w->last_error), "cannot arm the restart timer: %s", strerror(-r));
        }
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct workload *w = userdata;
        w->timer = sd_event_source_disable_unref(w->timer);
        workload_event(w, LOG_WARNING, "did not stop within %lld s, sending SIGKILL",
                       (long long) w->spec.stop_timeout_sec);
        if (w->cg)
                (void) cgroup_kill_all(w->cg, SIGKILL);
        if (w->have_proc)
                (void) syscall(SYS_pidfd_send_signal, w->proc.pidfd, SIGKILL, NULL, 0);
        return 0;
}

/* ---- health probe ----------------------------------------------------------------- */

static int attach_to_cgroup(pid_t pid, void *userdata);
static int workload_request_stop(struct workload *w);
static void probe_schedule(struct workload *w);

static void probe_finished(struct workload *w, bool ok, const char *what) {
        probe_reset(w);
        w->probes_run++;
        snprintf(w->last_probe, sizeof(w->last_probe), "%s", what);
        if (ok) {
                if (w->health == 0)
                        workload_event(w, LOG_NOTICE, "healthy again: %s", what);
                w->health = 1;
                w->probe_failures = 0;
        } else {
                w->probes_failed++;
                w->probe_failures++;
                workload_event(w, LOG_WARNING, "health probe failed (%u of %lld): %s", w->probe_failures,
                               (long long) w->spec.probe.failures, what);
                if (w->probe_failures >= (unsigned) w->spec.probe.failures) {
                        w->health = 0;
                        w->probe_failures = 0;
                        if (w->state == WORKLOAD_RUNNING) {
                                workload_event(w, LOG_ERR, "unhealthy: stopping it so it restarts");
                                emit(w->rt, 2, "workload.unhealthy", json_pack("{s:s,s:s}", "workload", w->spec.name,
                                                                             "probe", what));
                                (void) workload_request_stop(w);
                                w->unhealthy_stop = true;
                                return;
                        }
                }
        }
        probe_schedule(w);
}

static int on_probe_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct workload *w = userdata;
        siginfo_t si = {0};
        char what[640];
        bool ok = false;
        if (waitid(P_PIDFD, (id_t) fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0) {
                w->probe_pid = 0; /* reaped */
                if (si.si_code == CLD_EXITED && si.si_status == 0) {
                        ok = true;
                        snprintf(what, sizeof(what), "probe exited 0");
                } else if (si.si_code == CLD_EXITED)
                        snprintf(what, sizeof(what), "probe exited with code %d", si.si_status);
                else
                        snprintf(what, sizeof(what), "probe killed by signal %d", si.si_status);
        } else
                snprintf(what, sizeof(what), "probe status unknown");
        probe_finished(w, ok, what);
        return 0;
}

static int on_probe_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        struct workload *w = userdata;
        char what[96];
        snprintf(what, sizeof(what), "probe timed out after %lld s", (long long) w->spec.probe.timeout_sec);
        probe_finished(w, false, what);
        return 0;
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct workload *w = userdata;
        w->probe_timer = sd_event_source_disable_unref(w->probe_timer);
        if (!w->have_proc || w->state != WORKLOAD_RUNNING)
                return 0;
        if (w->rt->classes[w->spec.priority].frozen) {
                /* Frozen by the thermal policy: not unhealthy, and a probe would freeze too. */
                probe_schedule(w);
                return 0;
        }
        struct sandbox_params p = {
                .spec = &w->spec,
                .uid = w->uid,
                .gid = w->gid,
                .seccomp = w->seccomp ? &w->seccomp->prog : NULL,
                .prestart = attach_to_cgroup,
                .prestart_userdata = w,
        };
        struct sandbox_error err = {0};
        int r = sandbox_exec_in(&w->proc, &p, w->spec.probe.exec, &w->probe_pid, &w->probe_pidfd, &err);
        if (r < 0) {
                char what[640];
                snprintf(what, sizeof(what), "%s: %s", err.message, strerror(err.error));
                probe_finished(w, false, what);
                return 0;
        }
        if (sd_event_add_io(w->rt->event, &w->probe_exit, w->probe_pidfd, EPOLLIN, on_probe_exit, w) < 0 ||
            sd_event_add_time_relative(w->rt->event, &w->probe_deadline, CLOCK_MONOTONIC,
                                       (uint64_t) w->spec.probe.timeout_sec * 1000000ULL, 10000,
                                       on_probe_deadline, w) < 0)
                probe_finished(w, false, "cannot watch the probe");
        return 0;
}

static void probe_schedule(struct workload *w) {
        if (!w->spec.probe.enabled || !w->have_proc || w->probe_timer)
                return;
        if (sd_event_add_time_relative(w->rt->event, &w->probe_timer, CLOCK_MONOTONIC,
                                       (uint64_t) w->spec.probe.interval_sec * 1000000ULL, 100000,
                                       on_probe_timer, w) < 0)
                log_warning("workload %s: cannot schedule its health probe", w->spec.name);
}

/* ---- start ------------------------------------------------------------------------ */

static int attach_to_cgroup(pid_t pid, void *userdata) {
        struct workload *w = userdata;
        return w->cg ? cgroup_attach_pid(w->cg, pid) : 0;
}

static struct cgroup_limits workload_limits(struct workload *w) {
        struct runtime *rt = w->rt;
        return (struct cgroup_limits){
                .cpu_weight = (uint64_t) w->spec.resources.cpu_weight,
                .cpu_max_percent = workload_effective_cpu_max(w->spec.resources.cpu_max_percent, rt->ncpu,
                                                              &rt->classes[w->spec.priority]),
                .memory_max = (uint64_t) w->spec.resources.memory_max,
                .pids_max = (uint64_t) w->spec.resources.pids_max,
                .io_weight = (uint64_t) w->spec.resources.io_weight,
        };
}

/* A start that can never work (bad spec for this node) fails the workload for good. */
static int start_failed(struct workload *w, char **ret_message, bool permanent, int r,
                        const char *fmt, ...) _printf_(5, 6);
static int start_failed(struct workload *w, char **ret_message, bool permanent, int r,
                        const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->last_error, sizeof(w->last_error), fmt, ap);
        va_end(ap);
        workload_event(w, LOG_ERR, "start failed: %s", w->last_error);
        emit(w->rt, 2, "workload.start_failed",
             json_pack("{s:s,s:s,s:b}", "workload", w->spec.name, "reason", w->last_error, "permanent", permanent));
        message_set(ret_message, 0, "workload %s: %s", w->spec.name, w->last_error);
        if (permanent)
                w->state = WORKLOAD_FAILED;
        else if (w->want_running) {
                /* Something passing (memory, descriptors, a slow kernel): try again later. */
                uint64_t delay = workload_restart_delay_ms(&w->spec, ++w->tracker.consecutive_failures) * 1000ULL;
                w->timer = sd_event_source_disable_unref(w->timer);
                workload_arm_restart(w, delay);
        }
        return r < 0 ? r : -EINVAL;
}

static int check_binds(struct runtime *rt, const char *source, const struct workload_spec *spec,
                       char **ret_message);

static int save_id_allocations(struct runtime *rt) {
        _cleanup_free_ char *text = id_allocations_format(rt->ids, &rt->policy.ids);
        if (!text)
                return -ENOMEM;
        return statefile_save(rt->cfg.state_dir, ID_RANGES_FILE, text, strlen(text));
}

/* The workload's host id slice: the one it had (its files stay its own), else a new one,
 * recorded durably before it is used. -ENOSPC, or -EIO when it cannot be recorded. */
static int workload_host_ids(struct workload *w, uint32_t *ret_base) {
        struct runtime *rt = w->rt;
        bool changed;
        int r = id_allocations_assign(rt->ids, &rt->policy.ids, w->spec.name, ret_base, &changed);
        if (r < 0)
                return r == -E2BIG ? -ENOSPC : r;
        if (!changed)
                return 0;
        r = save_id_allocations(rt);
        if (r < 0) {
                log_error_errno(r, "workload %s: cannot save %s/%s", w->spec.name, rt->cfg.state_dir, ID_RANGES_FILE);
                (void) id_allocations_release(rt->ids, w->spec.name);
                return -EIO;
        }
        log_info("workload %s: host ids %u-%u for its user namespace", w->spec.name, *ret_base,
                 *ret_base + rt->policy.ids.size - 1);
        return 0;
}

/* The version an app slot member holds: written last by the update manager, so a member
 * without it holds no complete tree. */
static int app_member_version(const char *apps_dir, const char *name, char member, char *buf, size_t size) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/%c/version", apps_dir, name, member == 'A' ? 'a' : 'b');
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file_bounded(path, 256, &text, &len);
        if (r < 0)
                return r;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
                text[--len] = '\0';
        if (len == 0 || len >= size)
                return -EBADMSG;
        memcpy(buf, text, len + 1);
        return 0;
}

/*
 * Point the spec's app mount at the member to run: the one holding the spec's version,
 * or without a version the one "current" names. Done at every start, so a restart after
 * the update manager switched the app picks the new tree. -ENOENT with msg when there is
 * none (not installed, or not that version).
 */
static int resolve_app(struct workload *w, char *msg, size_t size) {
        struct runtime *rt = w->rt;
        const char *name = w->spec.app.name;
        w->app_member = 0;
        w->app_version[0] = '\0';
        if (!rt->cfg.apps_dir) {
                snprintf(msg, size, "app %s: this node has no app slots", name);
                return -EOPNOTSUPP;
        }
        char versions[2][129] = {"", ""};
        char member = 0;
        for (int i = 0; i < 2; i++)
                if (app_member_version(rt->cfg.apps_dir, name, "AB"[i], versions[i], sizeof(versions[i])) < 0)
                        versions[i][0] = '\0';
        if (w->spec.app.version) {
                for (int i = 0; i < 2 && !member; i++)
                        if (streq(versions[i], w->spec.app.version))
                                member = "AB"[i];
        } else {
                char link[PATH_MAX], target[8];
                snprintf(link, sizeof(link), "%s/%s/current", rt->cfg.apps_dir, name);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                if (n == 1 && (target[0] == 'a' || target[0] == 'b') && versions[target[0] == 'b'][0])
                        member = target[0] == 'a' ? 'A' : 'B';
        }
        if (!member) {
                const char *a = versions[0][0] ? versions[0] : "nothing", *b = versions[1][0] ? versions[1] : "nothing";
                if (w->spec.app.version)
                        snprintf(msg, size, "app %s %s is not installed here (its slots hold %s and %s)", name,
                                 w->spec.app.version, a, b);
                else
                        snprintf(msg, size, "app %s is not installed here (no complete current member in %s/%s)",
                                 name, rt->cfg.apps_dir, name);
                return -ENOENT;
        }
        char root[PATH_MAX];
        snprintf(root, sizeof(root), "%s/%s/%c/root", rt->cfg.apps_dir, name, member == 'A' ? 'a' : 'b');
        for (size_t i = 0; i < w->spec.sandbox.n_mounts; i++) {
                struct workload_mount *m = &w->spec.sandbox.mounts[i];
                if (!m->app)
                        continue;
                char *s = strdup(root);
                if (!s)
                        return -ENOMEM;
                free(m->source);
                m->source = s;
        }
        w->app_member = member;
        snprintf(w->app_version, sizeof(w->app_version), "%s", versions[member == 'B']);
        return 0;
}

static int workload_start(struct workload *w, char **ret_message) {
        struct runtime *rt = w->rt;
        int r;

        if (w->have_proc)
                return 0; /* already running */
        if (rt->unavailable[0])
                return start_failed(w, ret_message, true, -EOPNOTSUPP, "%s", rt->unavailable);
        if (w->spec.sunlit_only && rt->sunlit_wait[0]) {
                w->state = WORKLOAD_STOPPED;
                snprintf(w->last_error, sizeof(w->last_error), "run_when sunlit: waiting (%s)", rt->sunlit_wait);
                workload_event(w, LOG_INFO, "not started: %s", w->last_error);
                message_set(ret_message, 0, "workload %s not started: %s", w->spec.name, w->last_error);
                return -EBUSY;
        }
        if (rt->classes[w->spec.priority].stopped) {
                w->state = WORKLOAD_STOPPED;
                snprintf(w->last_error, sizeof(w->last_error), "%s workloads are stopped by the thermal/power policy",
                         workload_priority_to_string(w->spec.priority));
                message_set(ret_message, 0, "workload %s not started: %s", w->spec.name, w->last_error);
                return -EBUSY;
        }

        char refusal[160];
        if (!workload_privilege_allowed(w->spec.privileged, false, rt->policy.allow_privileged,
                                        rt->policy.allow_privileged_from_link, refusal, sizeof(refusal)))
                return start_failed(w, ret_message, true, -EPERM, "%s", refusal);
        if (w->spec.app.name) {
                char why[512];
                r = resolve_app(w, why, sizeof(why));
                if (r < 0)
                        return start_failed(w, ret_message, true, r, "%s", why);
        }
        /* Again at every start: a symlink on a bind's way may have changed since the spec
         * was loaded (one planted by a workload in a dir it can write). */
        _cleanup_free_ char *bind_problem = NULL;
        if (check_binds(rt, w->source, &w->spec, &bind_problem) < 0)
                return start_failed(w, ret_message, true, -EPERM, "%s", bind_problem ? bind_problem : "a bind is refused");

        if (!w->cg && (r = cgroup_create(rt->cgroups, w->spec.name, &w->cg)) < 0)
                return start_failed(w, ret_message, false, r, "cannot create its cgroup: %s", strerror(-r));
        if (cgroup_is_empty(w->cg) == 0) {
                /* Leftovers of an earlier run must not share the new run's limits. */
                (void) cgroup_kill_all(w->cg, SIGKILL);
                (void) cgroup_wait_empty(w->cg, 2000000);
        }
        /* A group frozen while its last process was exiting stays frozen, empty (v1: its
         * freezer.state; v2: cgroup.freeze): the new run's first process would freeze
         * before it execs, and the start would never finish. Thawed here; a class that is
         * frozen freezes the new run once it has started (below). */
        struct cgroup_stats cs;
        if (cgroup_get_stats(w->cg, &cs) >= 0 && cs.frozen && (r = cgroup_set_frozen(w->cg, false)) < 0)
                return start_failed(w, ret_message, false, r, "cannot thaw its cgroup %s: %s", cgroup_path(w->cg),
                                    strerror(-r));
        struct cgroup_limits limits = workload_limits(w);
        if (limits.cpu_max_percent > (uint64_t) rt->ncpu * 100)
                return start_failed(w, ret_message, true, -EINVAL,
                                    "resources.cpu_max_percent %llu is more than this node has (%u cores = %u)",
                                    (unsigned long long) limits.cpu_max_percent, rt->ncpu, rt->ncpu * 100);
        r = cgroup_apply_limits(w->cg, &limits);
        if (r < 0)
                return start_failed(w, ret_message, true, r,
                                    "the kernel refused its limits in %s (%s); the agent log names the file",
                                    cgroup_path(w->cg), strerror(-r));
        /* Only the nodes a sandbox binds into /dev, whatever else a workload might reach. */
        r = cgroup_restrict_devices(w->cg, cgroup_sandbox_devices, cgroup_n_sandbox_devices);
        if (r == -EOPNOTSUPP)
                log_warning("workload %s: no device cgroup on this node (v1 without the devices "
                            "controller, or no cgroup BPF); /dev is nodev but devices are not denied "
                            "by the cgroup", w->spec.name);
        else if (r < 0)
                return start_failed(w, ret_message, false, r, "cannot restrict its devices in %s: %s",
                                    cgroup_path(w->cg), strerror(-r));

        if (!w->seccomp) {
                struct seccomp_policy *policy = NULL;
                char *msg = NULL;
                r = seccomp_policy_resolve(w->spec.sandbox.seccomp ? w->spec.sandbox.seccomp : "default", &policy, &msg);
                if (r >= 0)
                        r = seccomp_policy_compile(policy, &w->seccomp);
                seccomp_policy_free(policy);
                if (r < 0) {
                        int q = start_failed(w, ret_message, true, r, "seccomp policy: %s", msg ? msg : strerror(-r));
                        free(msg);
                        return q;
                }
                free(msg);
        }

        struct sandbox_params p = {
                .spec = &w->spec,
                .seccomp = w->seccomp ? &w->seccomp->prog : NULL,
                .prestart = attach_to_cgroup,
                .prestart_userdata = w,
                .init_path = rt->cfg.sandbox_init,
                .handed = (const char *const *) rt->bind_allowed,
        };
        char msg[256];
        r = sandbox_resolve_ids(&w->spec, &p.uid, &p.gid, msg, sizeof(msg));
        if (r < 0)
                return start_failed(w, ret_message, true, r, "%s", msg);
        if (w->spec.sandbox.namespaces & WORKLOAD_NS_USER) {
                r = workload_host_ids(w, &p.host_id_base);
                if (r == -ENOSPC)
                        return start_failed(w, ret_message, true, r,
                                            "no free host id slice for its user namespace (sandbox.id_ranges "
                                            "has %zu, all taken)", id_pool_slices(&rt->policy.ids));
                if (r < 0)
                        return start_failed(w, ret_message, false, r, "cannot record its host id slice in %s/%s",
                                            rt->cfg.state_dir, ID_RANGES_FILE);
                p.host_id_count = rt->policy.ids.size;
                if (p.uid >= p.host_id_count || p.gid >= p.host_id_count)
                        return start_failed(w, ret_message, true, -EINVAL,
                                            "user %u / group %u is outside its user namespace (ids 0-%u; "
                                            "sandbox.ids_per_workload)",
                                            (unsigned) p.uid, (unsigned) p.gid, p.host_id_count - 1);
        }

        /* Searchable (0711), not listable: a user-namespace root must reach its own root dir. */
        char root[PATH_MAX];
        snprintf(root, sizeof(root), "%s/sandboxes", rt->cfg.runtime_dir);
        if (mkdir_parents(root, 0711) >= 0)
                (void) chmod(root, 0711);
        snprintf(root, sizeof(root), "%s/sandboxes/%s", rt->cfg.runtime_dir, w->spec.name);
        if ((r = mkdir_parents(root, 0700)) < 0)
                return start_failed(w, ret_message, false, r, "cannot create %s: %s", root, strerror(-r));
        p.root_dir = root;

        int out[2], err[2];
        if (pipe2(out, O_CLOEXEC) < 0)
                return start_failed(w, ret_message, false, -errno, "pipe: %s", strerror(errno));
        if (pipe2(err, O_CLOEXEC) < 0) {
                r = -errno;
                close(out[0]);
                close(out[1]);
                return start_failed(w, ret_message, false, r, "pipe: %s", strerror(-r));
        }
        p.stdout_fd = out[1];
        p.stderr_fd = err[1];
        p.stdout_read_fd = out[0];
        p.stderr_read_fd = err[0];

        struct cgroup_stats st = {0};
        (void) cgroup_get_stats(w->cg, &st);
        w->oom_kills_at_start = st.oom_kills;

        struct sandbox_error serr = {0};
        r = sandbox_spawn(&p, &w->proc, &serr);
        close(out[1]);
        close(err[1]);
        if (r < 0) {
                close(out[0]);
                close(err[0]);
                /* A missing path, a refused permission or a bad value is about this spec on
                 * this node and will not go away; anything else may. */
                bool permanent = serr.error == ENOENT || serr.error == EACCES || serr.error == ENOTDIR ||
                                 serr.error == ELOOP || serr.error == EPERM || serr.error == EINVAL ||
                                 serr.error == ENAMETOOLONG || serr.error == ENOEXEC || serr.error == ESRCH;
                return start_failed(w, ret_message, permanent, r, "%s: %s", serr.message, strerror(serr.error));
        }
        w->have_proc = true;
        (void) workload_log_attach(w->log, out[0], err[0]);
        r = sd_event_add_io(rt->event, &w->exit_source, w->proc.pidfd, EPOLLIN, on_exit_event, w);
        if (r < 0)
                log_error_errno(r, "workload %s: cannot watch its process", w->spec.name);

        w->state = WORKLOAD_RUNNING;
        w->uid = p.uid;
        w->gid = p.gid;
        w->health = -1;
        w->probe_failures = 0;
        probe_schedule(w);
        w->started_usec = now_usec(rt);
        w->starts++;
        w->last_error[0] = '\0';
        restart_tracker_note_start(&w->tracker, &w->spec, w->started_usec);
        workload_event(w, LOG_INFO, "started, pid %d", (int) w->proc.pid);
        emit(rt, 1, "workload.start", json_pack("{s:s,s:i,s:I}", "workload", w->spec.name, "pid", (int) w->proc.pid,
                                                "restarts", (json_int_t) w->restarts));
        /* A class frozen by the thermal policy stays frozen for what starts in it. */
        if (rt->classes[w->spec.priority].frozen && cgroup_set_frozen(w->cg, true) >= 0)
                workload_event(w, LOG_NOTICE, "frozen at start: its class is frozen");
        return 0;
}

static int workload_request_stop(struct workload *w) {
        w->timer = sd_event_source_disable_unref(w->timer);
        if (!w->have_proc) {
                if (w->state == WORKLOAD_BACKOFF || w->state == WORKLOAD_FAILED)
                        w->state = WORKLOAD_STOPPED;
                return 0;
        }
        if (w->state == WORKLOAD_STOPPING)
                return 0;
        w->stop_requested = true;
        w->state = WORKLOAD_STOPPING;
        if (w->cg)
                (void) cgroup_set_frozen(w->cg, false); /* a frozen process cannot act on SIGTERM */
        (void) syscall(SYS_pidfd_send_signal, w->proc.pidfd, SIGTERM, NULL, 0);
        workload_event(w, LOG_INFO, "stopping (SIGTERM, SIGKILL after %lld s)", (long long) w->spec.stop_timeout_sec);
        return sd_event_add_time_relative(w->rt->event, &w->timer, CLOCK_MONOTONIC,
                                          (uint64_t) w->spec.stop_timeout_sec * 1000000ULL, 10000,
                                          on_stop_timeout, w);
}

/* ---- adoption after an agent restart ---------------------------------------------- */

static pid_t parent_pid(pid_t pid) {
        char path[64], line[128];
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        pid_t ppid = -1;
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "PPid:", 5) == 0) {
                        ppid = (pid_t) strtol(line + 5, NULL, 10);
                        break;
                }
        fclose(f);
        return ppid;
}

static bool adopt(struct workload *w) {
        struct runtime *rt = w->rt;
        if (cgroup_open(rt->cgroups, w->spec.name, &w->cg) < 0)
                return false;
        pid_t *pids = NULL;
        size_t n = 0;
        if (cgroup_get_pids(w->cg, &pids, &n) < 0 || n == 0) {
                free(pids);
                return false;
        }
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++) {
                int out = -1, err = -1;
                /* The init's parent is outside the group (an agent, or the host's init). */
                pid_t ppid = parent_pid(pids[i]);
                bool parent_inside = false;
                for (size_t k = 0; k < n; k++)
                        parent_inside |= pids[k] == ppid;
                if (ppid <= 0 || parent_inside)
                        continue;
                if (sandbox_adopt(pids[i], w->spec.sandbox.namespaces & WORKLOAD_NS_PID, &w->proc, &out, &err) < 0)
                        continue;
                w->have_proc = true;
                (void) workload_log_attach(w->log, out, err);
                if (sd_event_add_io(rt->event, &w->exit_source, w->proc.pidfd, EPOLLIN, on_exit_event, w) < 0)
                        log_warning("workload %s: cannot watch adopted pid %d", w->spec.name, (int) pids[i]);
                w->state = WORKLOAD_RUNNING;
                w->adopted = true;
                char msg[512];
                /* The member it runs from, as its start chose it (for the update manager's
                 * "in use" check); nothing is started, so a failure only leaves it unknown. */
                if (w->spec.app.name && resolve_app(w, msg, sizeof(msg)) < 0)
                        log_warning("workload %s: %s", w->spec.name, msg);
                if (sandbox_resolve_ids(&w->spec, &w->uid, &w->gid, msg, sizeof(msg)) >= 0 && !w->seccomp) {
                        struct seccomp_policy *policy = NULL;
                        char *pmsg = NULL;
                        if (seccomp_policy_resolve(w->spec.sandbox.seccomp ? w->spec.sandbox.seccomp : "default",
                                                   &policy, &pmsg) >= 0)
                                (void) seccomp_policy_compile(policy, &w->seccomp);
                        seccomp_policy_free(policy);
                        free(pmsg);
                }
                probe_schedule(w);
                w->started_usec = now_usec(rt);
                struct cgroup_stats st = {0};
                (void) cgroup_get_stats(w->cg, &st);
                w->oom_kills_at_start = st.oom_kills;
                restart_tracker_note_start(&w->tracker, &w->spec, w->started_usec);
                workload_event(w, LOG_NOTICE, "adopted, still running as pid %d", (int) pids[i]);
                ok = true;
        }
        free(pids);
        return ok;
}

/* Groups under our parent that no known workload claims: end them, nothing runs unowned. */
static void reap_unknown_groups(struct runtime *rt) {
        char **names = NULL;
        if (cgroup_manager_list(rt->cgroups, &names) < 0)
                return;
        for (char **n = names; n && *n; n++) {
                struct workload *w = find(rt, *n);
                if (w && w->have_proc)
                        continue;
                struct cgroup *cg = NULL;
                if (cgroup_open(rt->cgroups, *n, &cg) < 0)
                        continue;
                if (cgroup_is_empty(cg) == 0) {
                        log_warning("cgroup %s: processes without a live sandbox init%s; killing them",
                                    cgroup_path(cg), w ? "" : " and no known workload");
                        (void) cgroup_kill_all(cg, SIGKILL);
                        (void) cgroup_wait_empty(cg, 2000000);
                }
                if (!w)
                        (void) cgroup_destroy(cg);
                cgroup_free(cg);
        }
        cgroup_strv_free(names);
}

/* ---- loading ---------------------------------------------------------------------- */

/* Binds against the agent's own paths and the host's /proc, /sys, /dev, symlinks resolved. */
static int check_binds(struct runtime *rt, const char *source, const struct workload_spec *spec,
                       char **ret_message) {
        char *resolved[WORKLOAD_MAX_MOUNTS] = {0};
        for (size_t i = 0; i < spec->sandbox.n_mounts; i++)
                if (spec->sandbox.mounts[i].source)
                        resolved[i] = realpath(spec->sandbox.mounts[i].source, NULL);
        const char *allowed[BIND_ALLOWED_MAX];
        for (size_t i = 0; i < rt->n_bind_allowed; i++)
                allowed[i] = rt->bind_allowed[i];
        int r = workload_spec_check_binds(source, spec, (const char *const *) resolved, rt->protected_paths,
                                          rt->n_protected, allowed, rt->n_bind_allowed, ret_message);
        for (size_t i = 0; i < spec->sandbox.n_mounts; i++)
                free(resolved[i]);
        return r;
}

/* The rules a spec must pass on this node beyond its own syntax: privilege, binds. */
static int check_spec(struct runtime *rt, const char *source, const struct workload_spec *spec,
                      char **ret_message) {
        if (spec->privileged && !rt->policy.allow_privileged) {
                message_set(ret_message, 0, "%s: workload %s is privileged; this node refuses privileged specs "
                            "(sandbox.allow_privileged)", source, spec->name);
                return -EPERM;
        }
        return check_binds(rt, source, spec, ret_message);
}

static int load_spec(struct runtime *rt, const char *source, const char *text, size_t len,
                     bool want_running, struct workload **ret, char **ret_message) {
        struct workload_spec spec;
        int r = workload_spec_parse_text(source, text, len, &spec, ret_message);
        if (r < 0)
                return r;
        r = check_spec(rt, source, &spec, ret_message);
        if (r < 0) {
                workload_spec_free(&spec);
                return r;
        }
        workload_spec_apply_defaults(&spec, &rt->policy.defaults);
        if (find(rt, spec.name)) {
                message_set(ret_message, 0, "%s: workload \"%s\" is defined twice", source, spec.name);
                workload_spec_free(&spec);
                return -EEXIST;
        }
        if (rt->n_workloads >= MAX_WORKLOADS) {
                message_set(ret_message, 0, "%s: more than %d workloads", source, MAX_WORKLOADS);
                workload_spec_free(&spec);
                return -E2BIG;
        }
        struct workload *w;
        r = workload_new(rt, &spec, source, text, len, &w);
        workload_spec_free(&spec);
        if (r < 0)
                return r;
        w->want_running = want_running;
        *ret = w;
        return 0;
}

static void load_records(struct runtime *rt) {
        char dir[PATH_MAX];
        if (records_dir(rt, dir, sizeof(dir)) < 0)
                return;
        DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                const char *n = de->d_name;
                if (n[0] == '.' || strchr(n, '.')) /* name.prev, name.tmp, name.corrupt */
                        continue;
                char *payload = NULL;
                if (statefile_load(dir, n, &payload, NULL, NULL) < 0)
                        continue;
                json_t *rec = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
                free(payload);
                const char *source = NULL, *spec = NULL;
                int want = 1;
                if (!rec || json_unpack(rec, "{s:s,s:s,s:b}", "source", &source, "spec", &spec,
                                        "want_running", &want) < 0) {
                        log_error("workload record %s/%s: not a record; ignored", dir, n);
                        json_decref(rec);
                        continue;
                }
                struct workload *w;
                char *msg = NULL;
                if (load_spec(rt, source, spec, strlen(spec), want, &w, &msg) < 0)
                        log_error("workload record %s/%s: %s", dir, n, msg ? msg : "cannot load");
                free(msg);
                json_decref(rec);
        }
        closedir(d);
}

static void load_workloads_dir(struct runtime *rt) {
        if (!rt->cfg.workloads_dir)
                return;
        DIR *d = opendir(rt->cfg.workloads_dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (de->d_name[0] == '.' || l < 6 || !streq(de->d_name + l - 5, ".json"))
                        continue;
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/%s", rt->cfg.workloads_dir, de->d_name);
                char *text = NULL;
                size_t len;
                int r = read_file_bounded(path, WORKLOAD_SPEC_MAX_SIZE, &text, &len);
                if (r < 0) {
                        log_error_errno(r, "workload spec %s: cannot read", path);
                        continue;
                }
                /* The file is the truth for its workload; a record only keeps stopped/running. */
                struct json_problems ps = {0};
                struct workload_spec probe;
                bool want = true;
                if (workload_spec_parse(path, text, len, &probe, &ps) >= 0) {
                        struct workload *old = find(rt, probe.name);
                        if (old) {
                                want = old->want_running;
                                workload_unlink(old);
                                workload_free(old);
                        }
                        workload_spec_free(&probe);
                }
                struct workload *w;
                char *msg = NULL;
                r = load_spec(rt, path, text, len, want, &w, &msg);
                if (r < 0) {
                        /* One bad spec never keeps the others from running. */
                        char *save = NULL;
                        for (char *line = msg ? strtok_r(msg, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
                                log_error("invalid workload spec: %s", line);
                } else
                        (void) workload_save(w);
                free(msg);
                free(text);
        }
        closedir(d);
}

static unsigned count_cpus(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned) n : 1;
}

static int protect(struct runtime *rt, const char *path, const char *what) {
        if (!path || rt->n_protected >= PROTECTED_MAX)
                return 0;
        char *real = realpath(path, NULL);
        if (!real && !(real = strdup(path)))
                return -ENOMEM;
        char *label = strdup(what);
        if (!label) {
                free(real);
                return -ENOMEM;
        }
        rt->protected_paths[rt->n_protected++] = (struct workload_protected_path){.path = real, .what = label};
        return 0;
}

static int runtime_protect_paths(struct runtime *rt, const struct runtime_config *cfg) {
        int r;
        char sock[PATH_MAX];
        snprintf(sock, sizeof(sock), "%s/control.sock", cfg->runtime_dir);
        if ((r = protect(rt, cfg->runtime_dir, "the agent's runtime dir")) < 0 ||
            (r = protect(rt, sock, "the agent's control socket")) < 0 ||
            (r = protect(rt, cfg->state_dir, "the agent's state dir")) < 0 ||
            /* wherever it is (a bind inside the default one is named by the state dir) */
            (r = protect(rt, cfg->apps_dir, "the app slots, bound through \"app\" only")) < 0 ||
            (r = protect(rt, "/proc", "the host's /proc")) < 0 || (r = protect(rt, "/sys", "the host's /sys")) < 0 ||
            (r = protect(rt, "/dev", "the host's /dev")) < 0)
                return r;
        for (const struct workload_protected_path *pp = cfg->protected_paths; pp && pp->path; pp++)
                if ((r = protect(rt, pp->path, pp->what)) < 0)
                        return r;
        for (const char *const *a = cfg->bind_allowed; a && *a && rt->n_bind_allowed < BIND_ALLOWED_MAX; a++) {
                char *real = realpath(*a, NULL);
                if (!real && !(real = strdup(*a)))
                        return -ENOMEM;
                rt->bind_allowed[rt->n_bind_allowed++] = real;
        }
        return 0;
}

void runtime_set_policy(struct runtime *rt, const struct runtime_policy *policy) {
        rt->policy = *policy;
}

int runtime_new(sd_event *event, const struct runtime_config *cfg, struct runtime **ret) {
        struct runtime *rt = calloc(1, sizeof(*rt));
        if (!rt)
                return -ENOMEM;
        rt->event = sd_event_ref(event);
        rt->ncpu = count_cpus();
        rt->cfg.cgroup_root = strdup(cfg->cgroup_root);
        rt->cfg.cgroup_parent = strdup(cfg->cgroup_parent);
        rt->cfg.runtime_dir = strdup(cfg->runtime_dir);
        rt->cfg.state_dir = strdup(cfg->state_dir);
        rt->cfg.workloads_dir = cfg->workloads_dir ? strdup(cfg->workloads_dir) : NULL;
        rt->cfg.log_dir = cfg->log_dir ? strdup(cfg->log_dir) : NULL;
        rt->cfg.apps_dir = cfg->apps_dir ? strdup(cfg->apps_dir) : NULL;
        if (cfg->sunlit_needs_reading)
                snprintf(rt->sunlit_wait, sizeof(rt->sunlit_wait), "no power reading yet");
        rt->cfg.journal = cfg->journal;
        rt->cfg.sandbox_init = strdup(cfg->sandbox_init ? cfg->sandbox_init : SANDBOX_INIT_PATH);
        if (!rt->cfg.cgroup_root || !rt->cfg.cgroup_parent || !rt->cfg.runtime_dir || !rt->cfg.state_dir ||
            !rt->cfg.sandbox_init) {
                runtime_free(rt);
                return -ENOMEM;
        }
        if (rt->cfg.log_dir)
                (void) mkdir_parents(rt->cfg.log_dir, 0750);
        rt->policy = cfg->policy ? *cfg->policy : RUNTIME_POLICY_DEFAULT;
        int r = runtime_protect_paths(rt, cfg);
        if (r < 0) {
                runtime_free(rt);
                return r;
        }
        if (!(rt->ids = calloc(1, sizeof(*rt->ids)))) {
                runtime_free(rt);
                return -ENOMEM;
        }
        _cleanup_free_ char *ids_text = NULL;
        size_t ids_len = 0;
        r = statefile_load(rt->cfg.state_dir, ID_RANGES_FILE, &ids_text, &ids_len, NULL);
        if (r >= 0 && id_allocations_parse(ids_text, ids_len, rt->ids) < 0)
                log_error("runtime: %s/%s is not an id allocation record; starting afresh", rt->cfg.state_dir,
                          ID_RANGES_FILE);
        else if (r < 0 && r != -ENOENT)
                log_error_errno(r, "runtime: cannot read %s/%s; starting afresh", rt->cfg.state_dir, ID_RANGES_FILE);
        /* A workload in a user namespace is not host root: it must reach its sandbox root. */
        struct stat rst;
        if (stat(rt->cfg.runtime_dir, &rst) == 0 && (rst.st_mode & 0111) != 0111 &&
            chmod(rt->cfg.runtime_dir, (rst.st_mode & 07777) | 0111) < 0)
                log_warning_errno(errno, "runtime: cannot make %s searchable", rt->cfg.runtime_dir);

        r = cgroup_manager_new(rt->cfg.cgroup_root, rt->cfg.cgroup_parent, 0, &rt->cgroups);
        if (r < 0) {
                snprintf(rt->unavailable, sizeof(rt->unavailable),
                         "no usable cgroups under %s (%s): workloads cannot run on this node",
                         rt->cfg.cgroup_root, strerror(-r));
                log_error("runtime: %s", rt->unavailable);
        } else
                log_info("runtime: cgroup v%d under %s, subtree %s", (int) cgroup_manager_version(rt->cgroups),
                         rt->cfg.cgroup_root, rt->cfg.cgroup_parent);

        load_records(rt);
        load_workloads_dir(rt);
        if (rt->cgroups) {
                char **groups = NULL;
                if (cgroup_manager_list(rt->cgroups, &groups) >= 0)
                        for (char **g = groups; g && *g; g++) {
                                struct workload *w = find(rt, *g);
                                if (w)
                                        (void) adopt(w);
                        }
                cgroup_strv_free(groups);
                reap_unknown_groups(rt);
        }
        for (struct workload *w = rt->workloads; w; w = w->next)
                if (w->want_running && !w->have_proc) {
                        char *msg = NULL;
                        (void) workload_start(w, &msg);
                        free(msg);
                }
        *ret = rt;
        return 0;
}

void runtime_kill_all(struct runtime *rt) {
        for (struct workload *w = rt->workloads; w; w = w->next) {
                if (!w->cg)
                        continue;
                (void) cgroup_kill_all(w->cg, SIGKILL);
                (void) cgroup_wait_empty(w->cg, 2000000);
                if (w->have_proc) {
                        siginfo_t si;
                        (void) waitid(P_PIDFD, (id_t) w->proc.pidfd, &si, WEXITED | WNOHANG);
                }
                workload_clear_process(w);
                if (cgroup_destroy(w->cg) >= 0) {
                        cgroup_free(w->cg);
                        w->cg = NULL;
                }
                w->state = WORKLOAD_STOPPED;
        }
}

void runtime_free(struct runtime *rt) {
        if (!rt)
                return;
        while (rt->workloads) {
                struct workload *w = rt->workloads;
                rt->workloads = w->next;
                workload_free(w);
        }
        cgroup_manager_free(rt->cgroups);
        sd_event_unref(rt->event);
        for (size_t i = 0; i < rt->n_protected; i++) {
                free((char *) rt->protected_paths[i].path);
                free((char *) rt->protected_paths[i].what);
        }
        for (size_t i = 0; i < rt->n_bind_allowed; i++)
                free(rt->bind_allowed[i]);
        free(rt->ids);
        free((char *) rt->cfg.cgroup_root);
        free((char *) rt->cfg.cgroup_parent);
        free((char *) rt->cfg.runtime_dir);
        free((char *) rt->cfg.state_dir);
        free((char *) rt->cfg.workloads_dir);
        free((char *) rt->cfg.log_dir);
        free((char *) rt->cfg.apps_dir);
        free((char *) rt->cfg.sandbox_init);
        free(rt);
}

/* ---- operations ------------------------------------------------------------------- */

/*
 * Admission applies to new work an operator asks for; a workload that is already wanted
 * (a restart, the end of a class stop) is not new and comes back when its class may run.
 */
static int admit(struct runtime *rt, enum workload_priority p, const char *name, char **ret_message) {
        char reason[256];
        if (workload_admit(p, rt->classes, rt->best_effort_closed, reason, sizeof(reason)))
                return 0;
        message_set(ret_message, 0, "workload %s not admitted: %s", name, reason);
        return -EBUSY;
}

int runtime_workload_submit(struct runtime *rt, const char *source, const char *text, size_t len,
                            char **ret_message) {
        struct workload_spec spec;
        int r = workload_spec_parse_text(source, text, len, &spec, ret_message);
        if (r < 0)
                return r;
        struct workload *old = find(rt, spec.name);
        if (old && (old->have_proc || old->state == WORKLOAD_STOPPING)) {
                message_set(ret_message, 0, "workload %s is running: stop it before replacing its spec", spec.name);
                workload_spec_free(&spec);
                return -EBUSY;
        }
        r = admit(rt, spec.priority, spec.name, ret_message);
        if (r < 0) {
                workload_spec_free(&spec);
                return r;
        }
        if (old) {
                workload_unlink(old);
                workload_free(old);
        }
        workload_spec_free(&spec);
        struct workload *w;
        r = load_spec(rt, source, text, len, true, &w, ret_message);
        if (r < 0)
                return r;
        r = workload_start(w, ret_message);
        if (r == -EBUSY && w->spec.sunlit_only && rt->sunlit_wait[0]) {
                /* run_when sunlit, out of sunlight: kept, waiting; it starts in sunlight (as one
                 * from workloads.d does). A desired state that lists it has it, not a refusal. */
                r = 0;
        } else if (r == -EBUSY) {
                /* Not admitted: the operator asks again later; nothing is kept. */
                workload_unlink(w);
                workload_free(w);
                return r;
        }
        (void) workload_save(w);
        return r;
}

int runtime_workload_check(struct runtime *rt, enum runtime_origin origin, const char *source, const char *text,
                           size_t len, char **ret_message) {
        struct workload_spec spec;
        int r = workload_spec_parse_text(source, text, len, &spec, ret_message);
        if (r < 0)
                return r;
        r = check_spec(rt, source, &spec, ret_message);
        char why[160];
        if (r >= 0 && origin == RUNTIME_ORIGIN_LINK &&
            !workload_privilege_allowed(spec.privileged, true, rt->policy.allow_privileged,
                                        rt->policy.allow_privileged_from_link, why, sizeof(why)))
                r = message_set(ret_message, -EPERM, "workload %s is privileged; %s", spec.name, why);
        if (r >= 0)
                r = admit(rt, spec.priority, spec.name, ret_message);
        workload_spec_free(&spec);
        return r;
}

int runtime_workload_submit_from(struct runtime *rt, enum runtime_origin origin, const char *source, const char *text,
                                 size_t len, char **ret_message) {
        if (origin == RUNTIME_ORIGIN_LINK) {
                int r = runtime_workload_check(rt, origin, source, text, len, ret_message);
                if (r < 0)
                        return r;
        }
        return runtime_workload_submit(rt, source, text, len, ret_message);
}

int runtime_workload_remove(struct runtime *rt, const char *name, char **ret_message) {
        struct workload *w = find(rt, name);
        if (!w)
                return message_set(ret_message, 0, "no workload named \"%s\"", name), -ENOENT;
        if (w->have_proc || w->state == WORKLOAD_STOPPING)
                return message_set(ret_message, 0, "workload %s is running: stop it before removing it", name), -EBUSY;
        if (rt->removing_fn)
                rt->removing_fn(rt->removing_userdata, name);
        if (w->cg && cgroup_destroy(w->cg) < 0)
                log_warning("workload %s: its cgroup stays (not empty?)", name);
        /* its last good copy first (statefile_remove): the record removed and its copy
         * left by a power cut would bring the removed workload back at the next start */
        char dir[PATH_MAX];
        int r;
        if (records_dir(rt, dir, sizeof(dir)) >= 0 && (r = statefile_remove(dir, name)) < 0)
                log_warning_errno(r, "workload %s: cannot remove its record in %s", name, dir);
        if (id_allocations_release(rt->ids, name) >= 0)
                (void) save_id_allocations(rt);
        log_info("workload %s: removed", name);
        workload_unlink(w);
        workload_free(w);
        return 0;
}

bool runtime_app_has_version(struct runtime *rt, const char *app, const char *version) {
        char v[129];
        for (int i = 0; rt->cfg.apps_dir && i < 2; i++)
                if (app_member_version(rt->cfg.apps_dir, app, "AB"[i], v, sizeof(v)) >= 0 && streq(v, version))
                        return true;
        return false;
}

bool runtime_workload_info(struct runtime *rt, const char *name, struct runtime_workload_info *ret) {
        struct workload *w = find(rt, name);
        if (!w)
                return false;
        *ret = (struct runtime_workload_info){
                .source = w->source,
                .spec_text = w->spec_text,
                .state = state_names[w->state],
                .want_running = w->want_running,
                .busy = w->have_proc || w->state == WORKLOAD_STOPPING,
                .running = w->state == WORKLOAD_RUNNING,
                .health = !w->spec.probe.enabled ? 1 : w->health,
                .last_error = w->last_error[0] ? w->last_error : w->last_exit[0] ? w->last_exit : NULL,
        };
        return true;
}

int runtime_workload_start(struct runtime *rt, const char *name, char **ret_message) {
        struct workload *w = find(rt, name);
        if (!w)
                return message_set(ret_message, 0, "no workload named \"%s\"", name), -ENOENT;
        if (!w->have_proc && w->state != WORKLOAD_STOPPING) {
                int r = admit(rt, w->spec.priority, name, ret_message);
                if (r < 0)
                        return r;
        }
        w->want_running = true;
        (void) workload_save(w);
        if (w->state == WORKLOAD_STOPPING) {
                w->restart_after_stop = true;
                return 0;
        }
        w->timer = sd_event_source_disable_unref(w->timer);
        memset(&w->tracker, 0, sizeof(w->tracker)); /* an operator's start forgives a crash loop */
        return workload_start(w, ret_message);
}

static int refuse_remote_privileged(struct runtime *rt, const char *name, enum runtime_origin origin,
                                    char **ret_message) {
        struct workload *w = find(rt, name);
        char why[160];
        if (!w || workload_privilege_allowed(w->spec.privileged, origin == RUNTIME_ORIGIN_LINK,
                                             rt->policy.allow_privileged, rt->policy.allow_privileged_from_link,
                                             why, sizeof(why)))
                return 0;
        log_warning("workload %s: start refused: it is privileged, and %s", name, why);
        message_set(ret_message, 0, "workload %s is privileged; %s", name, why);
        return -EPERM;
}

int runtime_workload_start_from(struct runtime *rt, const char *name, enum runtime_origin origin,
                                char **ret_message) {
        int r = refuse_remote_privileged(rt, name, origin, ret_message);
        return r < 0 ? r : runtime_workload_start(rt, name, ret_message);
}

int runtime_workload_restart_from(struct runtime *rt, const char *name, enum runtime_origin origin,
                                  char **ret_message) {
        int r = refuse_remote_privileged(rt, name, origin, ret_message);
        return r < 0 ? r : runtime_workload_restart(rt, name, ret_message);
}

int runtime_workload_stop(struct runtime *rt, const char *name, char **ret_message) {
        struct workload *w = find(rt, name);
        if (!w)
                return message_set(ret_message, 0, "no workload named \"%s\"", name), -ENOENT;
        w->want_running = false;
        w->restart_after_stop = false;
        w->app_held = false; /* stopped on purpose: no trial waits for it */
        (void) workload_save(w);
        return workload_request_stop(w);
}

int runtime_workload_restart(struct runtime *rt, const char *name, char **ret_message) {
        struct workload *w = find(rt, name);
        if (!w)
                return message_set(ret_message, 0, "no workload named \"%s\"", name), -ENOENT;
        w->want_running = true;
        (void) workload_save(w);
        if (!w->have_proc)
                return runtime_workload_start(rt, name, ret_message);
        w->restart_after_stop = true;
        return workload_request_stop(w);
}

static bool path_is_under(const char *path, const char *dir) {
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
                n--;
        return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* "a,b,c" in names (size bytes, used so far in *used), truncated when it does not fit. */
static void names_append(char *names, size_t size, size_t *used, int count, const char *name) {
        if (*used >= size)
                return;
        int n = snprintf(names + *used, size - *used, "%s%s", count ? "," : "", name);
        if (n > 0)
                *used += (size_t) n;
}

int runtime_restart_using_path(struct runtime *rt, const char *dir, char *names, size_t size) {
        int count = 0;
        size_t used = 0;
        if (size > 0)
                names[0] = '\0';
        for (struct workload *w = rt->workloads; w; w = w->next) {
                bool uses = false;
                for (size_t i = 0; i < w->spec.sandbox.n_mounts && !uses; i++) {
                        const char *src = w->spec.sandbox.mounts[i].source;
                        uses = src && path_is_under(src, dir);
                }
                if (!uses || !w->want_running)
                        continue;
                _cleanup_free_ char *msg = NULL;
                int r = runtime_workload_restart(rt, w->spec.name, &msg);
                if (r < 0) {
                        log_warning("workload %s: restart for %s: %s", w->spec.name, dir,
                                    msg ? msg : strerror(-r));
                        continue;
                }
                names_append(names, size, &used, count++, w->spec.name);
        }
        return count;
}

/* ---- reports ---------------------------------------------------------------------- */

static json_t *workload_json(struct workload *w, bool detail) {
        struct cgroup_stats st = {0};
        bool have_stats = w->cg && cgroup_get_stats(w->cg, &st) >= 0;
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:i,s:I,s:I,s:s?,s:s?}",
                              "name", w->spec.name,
                              "health", !w->spec.probe.enabled ? "no-probe" : w->health < 0 ? "unknown"
                                        : w->health ? "healthy" : "unhealthy",
                              "state", state_names[w->state],
                              "priority", workload_priority_to_string(w->spec.priority),
                              "frozen", have_stats && st.frozen,
                              "adopted", w->adopted,
                              "pid", w->have_proc ? (int) w->proc.pid : 0,
                              "starts", (json_int_t) w->starts,
                              "restarts", (json_int_t) w->restarts,
                              "last_exit", w->last_exit[0] ? w->last_exit : NULL,
                              "last_error", w->last_error[0] ? w->last_error : NULL);
        if (!o || !detail)
                return o;
        json_t *extra = json_pack("{s:s,s:s,s:f,s:{s:I,s:I,s:I,s:I,s:I},s:I}",
                                  "source", w->source,
                                  "cgroup", w->cg ? cgroup_path(w->cg) : "",
                                  "uptime_sec", w->have_proc ? (double) (now_usec(w->rt) - w->started_usec) / 1e6 : 0.0,
                                  "usage",
                                  "cpu_usec", (json_int_t) st.cpu_usage_usec,
                                  "memory_bytes", (json_int_t) st.memory_current,
                                  "memory_peak_bytes", (json_int_t) st.memory_peak,
                                  "pids", (json_int_t) st.pids_current,
                                  "oom_kills", (json_int_t) st.oom_kills,
                                  "log_lines_suppressed", (json_int_t) workload_log_suppressed(w->log));
        json_t *spec = json_loads(w->spec_text, 0, NULL);
        uint32_t base;
        if (extra)
                json_object_set_new(extra, "privileged", json_boolean(w->spec.privileged));
        if (extra && (w->spec.sandbox.namespaces & WORKLOAD_NS_USER) &&
            id_allocations_find(w->rt->ids, w->spec.name, &base) >= 0)
                json_object_set_new(extra, "host_ids", json_pack("{s:I,s:I}", "first", (json_int_t) base, "count",
                                                                (json_int_t) w->rt->policy.ids.size));
        if (extra && w->spec.app.name)
                json_object_set_new(extra, "app", json_pack("{s:s,s:s*,s:s*,s:s*}", "name", w->spec.app.name,
                                                            "wants", w->spec.app.version, "version",
                                                            w->app_member ? w->app_version : NULL, "member",
                                                            w->app_member == 'A' ? "A" : w->app_member == 'B' ? "B" : NULL));
        if (extra && w->spec.probe.enabled)
                json_object_set_new(extra, "probe", json_pack("{s:I,s:I,s:s?}", "runs", (json_int_t) w->probes_run,
                                                              "failed", (json_int_t) w->probes_failed, "last",
                                                              w->last_probe[0] ? w->last_probe : NULL));
        if (extra)
                json_object_update(o, extra);
        json_decref(extra);
        if (spec)
                json_object_set_new(o, "spec", spec);
        return o;
}

json_t *runtime_workloads_json(struct runtime *rt) {
        json_t *a = json_array();
        for (struct workload *w = rt->workloads; a && w; w = w->next)
                json_array_append_new(a, workload_json(w, false));
        return a;
}

json_t *runtime_workload_json(struct runtime *rt, const char *name) {
        struct workload *w = find(rt, name);
        return w ? workload_json(w, true) : NULL;
}

json_t *runtime_workload_logs_json(struct runtime *rt, const char *name, size_t lines) {
        struct workload *w = find(rt, name);
        return w ? workload_log_tail(w->log, lines) : NULL;
}

json_t *runtime_status_json(struct runtime *rt) {
        unsigned running = 0, failed = 0;
        for (struct workload *w = rt->workloads; w; w = w->next) {
                running += w->state == WORKLOAD_RUNNING;
                failed += w->state == WORKLOAD_FAILED;
        }
        char summary[320];
        if (rt->unavailable[0])
                snprintf(summary, sizeof(summary), "%s", rt->unavailable);
        else
                snprintf(summary, sizeof(summary), "%u workloads: %u running, %u failed; cgroup v%d",
                         rt->n_workloads, running, failed, (int) cgroup_manager_version(rt->cgroups));
        json_t *classes = json_object();
        for (int p = 0; classes && p < _WORKLOAD_PRIORITY_MAX; p++)
                json_object_set_new(classes, workload_priority_to_string((enum workload_priority) p),
                                    json_pack("{s:i,s:b,s:b}", "cpu_percent", (int) rt->classes[p].cpu_percent,
                                              "frozen", rt->classes[p].frozen, "stopped", rt->classes[p].stopped));
        return json_pack("{s:s,s:s,s:i,s:i,s:i,s:o,s:b}", "state", rt->unavailable[0] ? "unavailable" : "active",
                         "summary", summary, "workloads", (int) rt->n_workloads, "running", (int) running,
                         "failed", (int) failed, "classes", classes, "best_effort_admission", !rt->best_effort_closed);
}

size_t runtime_usage(struct runtime *rt, struct workload_usage *out, size_t max) {
        size_t n = 0;
        for (struct workload *w = rt->workloads; w && n < max; w = w->next) {
                struct cgroup_stats st = {0};
                if (!w->cg || cgroup_get_stats(w->cg, &st) < 0)
                        continue;
                struct workload_usage *u = &out[n++];
                snprintf(u->name, sizeof(u->name), "%s", w->spec.name);
                snprintf(u->tenant, sizeof(u->tenant), "%s", w->spec.tenant ? w->spec.tenant : "");
                snprintf(u->app, sizeof(u->app), "%s", w->spec.app.name ? w->spec.app.name : "");
                struct stat cst;
                u->instance = stat(cgroup_path(w->cg), &cst) == 0 ? (uint64_t) cst.st_ino : 0;
                u->running = w->have_proc;
                u->cpu_usec = st.cpu_usage_usec;
                u->memory_bytes = st.memory_current;
                u->pids = st.pids_current;
                u->oom_kills = st.oom_kills;
        }
        return n;
}

int runtime_restart_app_users(struct runtime *rt, const char *app, char *names, size_t size) {
        int count = 0;
        size_t used = 0;
        if (size > 0)
                names[0] = '\0';
        for (struct workload *w = rt->workloads; w; w = w->next) {
                /* a spec pinned to a version keeps the member holding it */
                if (!w->spec.app.name || !streq(w->spec.app.name, app) || w->spec.app.version)
                        continue;
                /* one the last switch restarted and that then ended by itself (a rollback
                 * starts it again on the tree it left) */
                bool was_held = w->app_held;
                w->app_held = false;
                if (!w->want_running && !was_held)
                        continue;
                _cleanup_free_ char *msg = NULL;
                int r = runtime_workload_restart(rt, w->spec.name, &msg);
                if (r < 0) {
                        log_warning("workload %s: restart for app %s: %s", w->spec.name, app, msg ? msg : strerror(-r));
                        continue;
                }
                w->app_held = true;
                names_append(names, size, &used, count++, w->spec.name);
        }
        return count;
}

const char *runtime_app_member_user(struct runtime *rt, const char *app, char member) {
        for (struct workload *w = rt->workloads; w; w = w->next) {
                if (!w->spec.app.name || !streq(w->spec.app.name, app) || w->app_member != member)
                        continue;
                /* running from it, or pinned to it and waiting out a restart's delay: its
                 * next start would pick the same member */
                if (w->have_proc || (w->state == WORKLOAD_BACKOFF && w->spec.app.version))
                        return w->spec.name;
        }
        return NULL;
}

bool runtime_app_users_ok(struct runtime *rt, const char *app, char *why, size_t size) {
        for (struct workload *w = rt->workloads; w; w = w->next) {
                if (!w->spec.app.name || !streq(w->spec.app.name, app) || w->spec.app.version ||
                    (!w->want_running && !w->app_held))
                        continue;
                if (w->state != WORKLOAD_RUNNING) {
                        const char *detail = w->last_error[0] ? w->last_error : w->last_exit;
                        snprintf(why, size, "workload %s of app %s is %s%s%s", w->spec.name, app, state_names[w->state],
                                 detail[0] ? ": " : "", detail);
                        return false;
                }
                if (w->spec.probe.enabled && w->health != 1) {
                        /* a probe that fails is named as such before "failures" in a row
                         * make the workload unhealthy */
                        if (w->health == 0 || w->probe_failures > 0)
                                snprintf(why, size, "workload %s of app %s fails its health probe (%u in a row: %s)",
                                         w->spec.name, app, w->probe_failures, w->last_probe);
                        else
                                snprintf(why, size, "workload %s of app %s is not yet probed healthy", w->spec.name,
                                         app);
                        return false;
                }
        }
        return true;
}

bool runtime_critical_workloads_ok(struct runtime *rt, char *why, size_t size) {
        for (struct workload *w = rt->workloads; w; w = w->next) {
                if (w->spec.priority != WORKLOAD_PRIORITY_CRITICAL || !w->want_running)
                        continue;
                if (w->state != WORKLOAD_RUNNING) {
                        snprintf(why, size, "critical workload %s is %s", w->spec.name, state_names[w->state]);
                        return false;
                }
                if (w->health == 0) {
                        snprintf(why, size, "critical workload %s is unhealthy", w->spec.name);
                        return false;
                }
        }
        return true;
}

/* ---- levers ----------------------------------------------------------------------- */

int runtime_class_throttle(struct runtime *rt, enum workload_priority p, unsigned percent) {
        rt->classes[p].cpu_percent = percent >= 100 ? 0 : percent;
        int result = 0;
        for (struct workload *w = rt->workloads; w; w = w->next) {
                if (w->spec.priority != p || !w->cg)
                        continue;
                struct cgroup_limits l = workload_limits(w);
                int r = cgroup_apply_limits(w->cg, &l);
                if (r < 0)
                        result = r;
        }
        log_notice("runtime: %s workloads throttled to %u%% of their cpu", workload_priority_to_string(p),
                   rt->classes[p].cpu_percent ? rt->classes[p].cpu_percent : 100);
        return result;
}

int runtime_class_freeze(struct runtime *rt, enum workload_priority p, bool frozen) {
        rt->classes[p].frozen = frozen;
        if (frozen)
                /* A probe in flight is called off, not counted, before its group freezes. */
                for (struct workload *w = rt->workloads; w; w = w->next)
                        if (w->spec.priority == p && w->probe_pid > 0) {
                                probe_reset(w);
                                probe_schedule(w);
                        }
        int result = 0;
        for (struct workload *w = rt->workloads; w; w = w->next) {
                /* Thawed even without a process: one may have exited while frozen. */
                if (w->spec.priority != p || !w->cg || (frozen && !w->have_proc))
                        continue;
                int r = cgroup_set_frozen(w->cg, frozen);
                if (r < 0) {
                        log_error_errno(r, "workload %s: cannot %s", w->spec.name, frozen ? "freeze" : "thaw");
                        result = r;
                } else if (w->have_proc)
                        workload_event(w, LOG_NOTICE, "%s by the runtime policy", frozen ? "frozen" : "thawed");
        }
        return result;
}

/* A policy lever on one workload (its class stopped, sunlit work in eclipse): stopped
 * without losing that it should run, or started again once the lever is lifted. */
static void policy_stop(struct workload *w, bool stop) {
        if (stop) {
                w->restart_after_stop = false;
                (void) workload_request_stop(w);
        } else if (w->want_running && w->state == WORKLOAD_STOPPING) {
                w->restart_after_stop = true; /* lifted before it finished stopping */
        } else if (w->want_running && !w->have_proc) {
                char *msg = NULL;
                (void) workload_start(w, &msg);
                free(msg);
        }
}

int runtime_class_stop(struct runtime *rt, enum workload_priority p, bool stopped) {
        rt->classes[p].stopped = stopped;
        for (struct workload *w = rt->workloads; w; w = w->next)
                if (w->spec.priority == p)
                        policy_stop(w, stopped);
        return 0;
}

void runtime_set_sunlit(struct runtime *rt, const char *wait_reason) {
        const char *why = wait_reason ? wait_reason : "";
        bool was_waiting = rt->sunlit_wait[0] != '\0', waiting = why[0] != '\0';
        snprintf(rt->sunlit_wait, sizeof(rt->sunlit_wait), "%s", why);
        if (was_waiting == waiting)
                return;
        unsigned n = 0;
        for (struct workload *w = rt->workloads; w; w = w->next) {
                if (!w->spec.sunlit_only)
                        continue;
                n++;
                if (waiting && w->have_proc)
                        workload_event(w, LOG_NOTICE, "stopping: run_when sunlit (%s)", why);
                policy_stop(w, waiting);
                if (waiting)
                        snprintf(w->last_error, sizeof(w->last_error), "run_when sunlit: waiting (%s)", why);
        }
        if (n)
                log_notice("runtime: %u run_when sunlit workload%s %s", n, n == 1 ? "" : "s",
                           waiting ? "stopped" : "may run again");
        emit(rt, 1, "runtime.sunlit", json_pack("{s:b,s:s}", "may_run", !waiting, "reason", waiting ? why : "sunlit"));
}

const char *runtime_sunlit_wait(const struct runtime *rt) {
        return rt->sunlit_wait;
}

void runtime_best_effort_admission(struct runtime *rt, bool open) {
        rt->best_effort_closed = !open;
}
