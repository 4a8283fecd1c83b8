/* The agent's event loop with the cost of every dispatch measured (see loop.h). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <time.h>

#include "lib/log.h"
#include "agent/loop.h"

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;
        if (clock_gettime(id, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

bool loop_stats_add(struct loop_stats *stats, uint64_t cpu_usec, uint64_t wall_usec) {
        stats->iterations++;
        if (cpu_usec > stats->slowest_cpu_usec)
                stats->slowest_cpu_usec = cpu_usec;
        if (wall_usec > stats->slowest_usec)
                stats->slowest_usec = wall_usec;
        if (cpu_usec <= LOOP_HOLD_WARN_USEC)
                return false;
        stats->held_over++;
        return true;
}

json_t *loop_stats_json(const struct loop_stats *stats) {
        return json_pack("{s:I,s:f,s:f,s:I}", "iterations", (json_int_t) stats->iterations,
                         "slowest_cpu_ms", (double) stats->slowest_cpu_usec / 1000.0,
                         "slowest_ms", (double) stats->slowest_usec / 1000.0,
                         "held_over_100ms", (json_int_t) stats->held_over);
}

/* The loop thread's system time so far: a slow dispatch says how much of it was the kernel's
 * (page faults, file writes), which the machine's state moves more than the code does. */
static uint64_t system_usec(void) {
        struct rusage ru;
        if (getrusage(RUSAGE_THREAD, &ru) < 0)
                return 0;
        return (uint64_t) ru.ru_stime.tv_sec * 1000000ULL + (uint64_t) ru.ru_stime.tv_usec;
}

int loop_run(sd_event *e, struct loop_stats *stats) {
        for (;;) {
                int state = sd_event_get_state(e);
                if (state < 0)
                        return state;
                if (state == SD_EVENT_FINISHED)
                        break;
                uint64_t cpu0 = clock_usec(CLOCK_THREAD_CPUTIME_ID), wall0 = clock_usec(CLOCK_MONOTONIC);
                uint64_t sys0 = system_usec();
                int r = sd_event_prepare(e);
                if (r == 0) {
                        /* Nothing pending: the wait is idle time, not a cost of any input. */
                        r = sd_event_wait(e, UINT64_MAX);
                        cpu0 = clock_usec(CLOCK_THREAD_CPUTIME_ID);
                        wall0 = clock_usec(CLOCK_MONOTONIC);
                        sys0 = system_usec();
                }
                if (r > 0) {
                        r = sd_event_dispatch(e);
                        uint64_t cpu = clock_usec(CLOCK_THREAD_CPUTIME_ID) - cpu0;
                        uint64_t wall = clock_usec(CLOCK_MONOTONIC) - wall0;
                        if (loop_stats_add(stats, cpu, wall)) {
                                uint64_t sys = system_usec() - sys0;
                                log_warning("event loop: one dispatch held the loop for %.1f ms of CPU, %.1f ms "
                                            "of it in the kernel (%.1f ms wall clock)",
                                            (double) cpu / 1000.0, (double) (sys < cpu ? sys : cpu) / 1000.0,
                                            (double) wall / 1000.0);
                        }
                }
                if (r < 0)
                        return r;
        }
        int code = 0;
        int r = sd_event_get_exit_code(e, &code);
        return r < 0 ? r : code;
}
