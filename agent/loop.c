/* The agent's event loop with the cost of every dispatch measured (see loop.h). */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

/*
 * Where a slow dispatch spends its time. A CPU-time timer of the loop's thread, armed for
 * LOOP_HOLD_WARN_USEC at each dispatch, fires SIGPROF in a dispatch that gets that far; the
 * handler keeps the stack it interrupted, which the warning prints (as module+offset, for
 * addr2line). A thread's CPU time on a virtual machine also counts the time the host took
 * its CPU away: the stack tells a real cost (the same place every time) from that.
 */
#define SAMPLE_FRAMES 24
static void *sample_frames[SAMPLE_FRAMES];
static volatile sig_atomic_t sample_depth;

/* backtrace() is safe here once loaded (sampler_init calls it first): glibc >= 2.35 with
 * libgcc >= 12, as on Debian 12, unwinds without taking the loader's lock. */
static void on_sample(int sig) {
        (void) sig;
        int saved = errno;
        sample_depth = backtrace(sample_frames, SAMPLE_FRAMES);
        errno = saved;
}

struct sampler {
        bool armed;
        timer_t timer;
};

static void sampler_init(struct sampler *sp) {
        *sp = (struct sampler){0};
        void *warm[1];
        (void) backtrace(warm, 1); /* loads what backtrace needs now, not in the handler */
        struct sigaction sa = {.sa_handler = on_sample, .sa_flags = SA_RESTART};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGPROF, &sa, NULL) < 0)
                return;
        struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGPROF};
        sev._sigev_un._tid = (pid_t) syscall(SYS_gettid);
        if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &sp->timer) < 0) {
                log_debug_errno(errno, "event loop: no CPU-time timer: a slow dispatch will not say where it was");
                return;
        }
        sp->armed = true;
}

static void sampler_set(struct sampler *sp, uint64_t usec) {
        if (!sp->armed)
                return;
        struct itimerspec its = {.it_value = {.tv_sec = (time_t) (usec / 1000000ULL),
                                              .tv_nsec = (long) (usec % 1000000ULL) * 1000L}};
        (void) timer_settime(sp->timer, 0, &its, NULL);
}

static void sampler_free(struct sampler *sp) {
        if (sp->armed)
                (void) timer_delete(sp->timer);
        /* ignored, not the default (which ends the process): a signal still on its way */
        signal(SIGPROF, SIG_IGN);
}

/* The stack the sample took, as "symbol+0xoff" or "module+0xoff" frames (the first two are
 * the handler's and the signal's own). */
static void sample_describe(char *buf, size_t size) {
        int depth = sample_depth;
        size_t used = 0;
        buf[0] = '\0';
        for (int i = 2; i < depth && used + 1 < size; i++) {
                Dl_info info;
                const char *sep = i > 2 ? " < " : "";
                int n;
                if (dladdr(sample_frames[i], &info) && info.dli_fname) {
                        const char *mod = strrchr(info.dli_fname, '/');
                        mod = mod ? mod + 1 : info.dli_fname;
                        if (info.dli_sname)
                                n = snprintf(buf + used, size - used, "%s%s+0x%tx", sep, info.dli_sname,
                                             (char *) sample_frames[i] - (char *) info.dli_saddr);
                        else
                                n = snprintf(buf + used, size - used, "%s%s+0x%tx", sep, mod,
                                             (char *) sample_frames[i] - (char *) info.dli_fbase);
                } else
                        n = snprintf(buf + used, size - used, "%s%p", sep, sample_frames[i]);
                if (n < 0)
                        break;
                used += (size_t) n < size - used ? (size_t) n : size - used - 1;
        }
}

static int loop_run_sampled(sd_event *e, struct loop_stats *stats, struct sampler *sp);

int loop_run(sd_event *e, struct loop_stats *stats) {
        struct sampler sp;
        sampler_init(&sp);
        int ret = loop_run_sampled(e, stats, &sp);
        sampler_free(&sp);
        return ret;
}

static int loop_run_sampled(sd_event *e, struct loop_stats *stats, struct sampler *sp) {
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
                        sample_depth = 0;
                        sampler_set(sp, LOOP_HOLD_WARN_USEC);
                        r = sd_event_dispatch(e);
                        sampler_set(sp, 0);
                        uint64_t cpu = clock_usec(CLOCK_THREAD_CPUTIME_ID) - cpu0;
                        uint64_t wall = clock_usec(CLOCK_MONOTONIC) - wall0;
                        if (loop_stats_add(stats, cpu, wall)) {
                                uint64_t sys = system_usec() - sys0;
                                char where[1024] = "";
                                if (sample_depth > 0)
                                        sample_describe(where, sizeof(where));
                                log_warning("event loop: one dispatch held the loop for %.1f ms of CPU, %.1f ms "
                                            "of it in the kernel (%.1f ms wall clock)%s%s",
                                            (double) cpu / 1000.0, (double) (sys < cpu ? sys : cpu) / 1000.0,
                                            (double) wall / 1000.0, where[0] ? "; at " : "", where);
                        }
                }
                if (r < 0)
                        return r;
        }
        int code = 0;
        int r = sd_event_get_exit_code(e, &code);
        return r < 0 ? r : code;
}
