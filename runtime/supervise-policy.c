/* Supervision decisions, pure: restart or not and when, how an exit reads, class controls. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "runtime/supervise-policy.h"

void restart_tracker_note_start(struct restart_tracker *t, const struct workload_spec *s,
                                uint64_t now_usec) {
        uint64_t window = (uint64_t) s->restart.window_sec * 1000000ULL;
        size_t keep = 0;
        for (size_t i = 0; i < t->n_starts; i++)
                if (now_usec - t->starts_usec[i] < window)
                        t->starts_usec[keep++] = t->starts_usec[i];
        t->n_starts = keep;
        if (t->n_starts == RESTART_HISTORY_MAX) {
                memmove(t->starts_usec, t->starts_usec + 1, (RESTART_HISTORY_MAX - 1) * sizeof(uint64_t));
                t->n_starts--;
        }
        t->starts_usec[t->n_starts++] = now_usec;
}

bool workload_exit_is_failure(const struct workload_exit *e) {
        if (e->oom_killed || e->unhealthy)
                return true;
        if (WIFEXITED(e->status))
                return WEXITSTATUS(e->status) != 0;
        if (WIFSIGNALED(e->status) && e->stop_requested)
                return false; /* our own SIGTERM or SIGKILL after the grace period */
        return true;
}

enum restart_action restart_decide(const struct workload_spec *s, struct restart_tracker *t,
                                   const struct workload_exit *e, uint64_t now_usec,
                                   uint64_t *ret_delay_usec) {
        bool failed = workload_exit_is_failure(e);
        *ret_delay_usec = 0;

        if (e->ran_usec >= (uint64_t) s->restart.max_delay_ms * 1000ULL)
                t->consecutive_failures = 0;
        if (failed)
                t->consecutive_failures++;
        else
                t->consecutive_failures = 0;

        if (e->stop_requested || s->restart.policy == WORKLOAD_RESTART_NO)
                return RESTART_NONE;
        if (s->restart.policy == WORKLOAD_RESTART_ON_FAILURE && !failed)
                return RESTART_NONE;

        /* Restarts already made within the window (the first start is not a restart). */
        uint64_t window = (uint64_t) s->restart.window_sec * 1000000ULL;
        size_t recent = 0;
        for (size_t i = 0; i < t->n_starts; i++)
                if (now_usec - t->starts_usec[i] < window)
                        recent++;
        size_t restarts = recent > 0 ? recent - 1 : 0;
        if (restarts >= (size_t) s->restart.max_restarts)
                return RESTART_GIVE_UP;

        unsigned n = t->consecutive_failures > 0 ? t->consecutive_failures : 1;
        *ret_delay_usec = workload_restart_delay_ms(s, n) * 1000ULL;
        return RESTART_AFTER_DELAY;
}

void workload_exit_describe(const struct workload_exit *e, char *buf, size_t size) {
        if (e->unhealthy) {
                if (WIFSIGNALED(e->status))
                        snprintf(buf, size, "stopped after failing its health probe (signal %d)", WTERMSIG(e->status));
                else
                        snprintf(buf, size, "stopped after failing its health probe (exit code %d)", WEXITSTATUS(e->status));
        } else if (WIFEXITED(e->status) && !e->oom_killed)
                snprintf(buf, size, "exited with code %d", WEXITSTATUS(e->status));
        else if (WIFSIGNALED(e->status)) {
                int sig = WTERMSIG(e->status);
                const char *name = sigabbrev_np(sig);
                if (e->oom_killed)
                        snprintf(buf, size, "killed by the OOM killer (signal %d)", sig);
                else
                        snprintf(buf, size, "killed by signal %d (%s)%s", sig, name ? name : "?",
                                 e->stop_requested ? " as asked" : "");
        } else if (e->oom_killed)
                snprintf(buf, size, "exited with code %d after an OOM kill in its cgroup",
                         WEXITSTATUS(e->status));
        else
                snprintf(buf, size, "ended with wait status 0x%x", (unsigned) e->status);
}

uint64_t workload_effective_cpu_max(int64_t spec_max_percent, unsigned ncpu,
                                    const struct class_control *cc) {
        if (!cc || cc->cpu_percent == 0 || cc->cpu_percent >= 100)
                return spec_max_percent > 0 ? (uint64_t) spec_max_percent : 0;
        uint64_t base = spec_max_percent > 0 ? (uint64_t) spec_max_percent : (uint64_t) (ncpu ? ncpu : 1) * 100;
        uint64_t v = base * cc->cpu_percent / 100;
        return v > 0 ? v : 1;
}

bool workload_admit(enum workload_priority p, const struct class_control classes[_WORKLOAD_PRIORITY_MAX],
                    bool best_effort_admission_closed, char *reason, size_t size) {
        const struct class_control *cc = &classes[p];
        if (cc->stopped) {
                snprintf(reason, size, "%s workloads are stopped by the thermal/power policy",
                         workload_priority_to_string(p));
                return false;
        }
        if (p == WORKLOAD_PRIORITY_BEST_EFFORT && (best_effort_admission_closed || cc->frozen)) {
                snprintf(reason, size, "best-effort workloads are not admitted now (%s)",
                         cc->frozen ? "the class is frozen" : "the board is shedding load");
                return false;
        }
        return true;
}

bool workload_privilege_allowed(bool privileged, bool from_link, bool allow_privileged,
                                bool allow_privileged_from_link, char *reason, size_t size) {
        if (!privileged)
                return true;
        if (!allow_privileged) {
                snprintf(reason, size, "privileged specs are refused by this node's policy (sandbox.allow_privileged)");
                return false;
        }
        if (from_link && !allow_privileged_from_link) {
                snprintf(reason, size, "this node does not start privileged workloads for the controller "
                                       "(sandbox.allow_privileged_from_link)");
                return false;
        }
        return true;
}
