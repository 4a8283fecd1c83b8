/* Supervision decisions, pure: restart or not and when, how an exit reads, class controls. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/workload-spec.h"

#define RESTART_HISTORY_MAX 64

/* What the supervisor remembers about a workload's recent starts. */
struct restart_tracker {
        uint64_t starts_usec[RESTART_HISTORY_MAX]; /* CLOCK_MONOTONIC, oldest first */
        size_t n_starts;
        unsigned consecutive_failures;
};

struct workload_exit {
        int status;            /* wait status of the workload */
        bool oom_killed;       /* the cgroup counted an OOM kill during this run */
        bool stop_requested;   /* the agent or an operator asked it to stop */
        bool unhealthy;        /* stopped by the agent because its health probe kept failing */
        uint64_t ran_usec;     /* how long this run lasted */
};

enum restart_action {
        RESTART_NONE,        /* leave it stopped: policy says so, or it was asked to stop */
        RESTART_AFTER_DELAY, /* start again after *ret_delay_usec */
        RESTART_GIVE_UP,     /* crash loop: too many restarts within the window */
};

/* Record a start at now_usec (drops history older than the spec's window). */
void restart_tracker_note_start(struct restart_tracker *t, const struct workload_spec *s,
                                uint64_t now_usec);

/* Decide what follows an exit. A run that lasted longer than max_delay_ms resets backoff. */
enum restart_action restart_decide(const struct workload_spec *s, struct restart_tracker *t,
                                   const struct workload_exit *e, uint64_t now_usec,
                                   uint64_t *ret_delay_usec);

/* "exited with code 3", "killed by signal 9 (KILL)", "killed by the OOM killer (signal 9)". */
void workload_exit_describe(const struct workload_exit *e, char *buf, size_t size);

/* A failed run: non-zero exit, a signal other than the stop we sent, or an OOM kill. */
bool workload_exit_is_failure(const struct workload_exit *e);

/* What the thermal and power policy asks of one priority class. */
struct class_control {
        unsigned cpu_percent; /* 0 = no throttle; else this % of the class's normal cpu */
        bool frozen;
        bool stopped;         /* stopped, and new starts of the class refused */
};

/*
 * The cpu max a workload should have, in percent of one core (0 = unlimited): the
 * spec's own max, or all cores when it has none, scaled by the class throttle. Never
 * below 1% so a throttled workload still makes progress.
 */
uint64_t workload_effective_cpu_max(int64_t spec_max_percent, unsigned ncpu,
                                    const struct class_control *cc);

/*
 * May a workload start under the node's privilege rules (agent config "sandbox")? A
 * privileged one needs allow_privileged, and when the controller asked (from_link) also
 * allow_privileged_from_link. false with the reason, naming the key, when refused.
 */
bool workload_privilege_allowed(bool privileged, bool from_link, bool allow_privileged,
                                bool allow_privileged_from_link, char *reason, size_t size);

/* May a new workload of this class start now? false with a reason when refused. */
bool workload_admit(enum workload_priority p, const struct class_control classes[_WORKLOAD_PRIORITY_MAX],
                    bool best_effort_admission_closed, char *reason, size_t size);
