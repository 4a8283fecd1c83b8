/*
 * A board whose RTC is wrong, for one process: LD_PRELOAD this with ORBIT_FAKE_RTC set to
 * "@SECONDS" (the realtime clock starts there and runs on) or "+SECONDS" / "-SECONDS" (an
 * offset). Only the realtime clock moves (time, gettimeofday, clock_gettime of
 * CLOCK_REALTIME*), as with a bad RTC: the monotonic and boot clocks, and the timers
 * sd-event arms on them, stay true. (libfaketime also rewrites timerfd_settime's absolute
 * times as if every timer were a realtime one, which breaks sd-event's monotonic timers.)
 * Used by tests/integration/test-link-time.sh; built without the sanitizers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int64_t offset_ns;

static void setup(void) {
        if (real_clock_gettime)
                return;
        real_clock_gettime = (int (*)(clockid_t, struct timespec *)) dlsym(RTLD_NEXT, "clock_gettime");
        const char *v = getenv("ORBIT_FAKE_RTC");
        if (!v || !*v)
                return;
        struct timespec now;
        real_clock_gettime(CLOCK_REALTIME, &now);
        int64_t now_ns = (int64_t) now.tv_sec * 1000000000LL + now.tv_nsec;
        if (*v == '@')
                offset_ns = strtoll(v + 1, NULL, 10) * 1000000000LL - now_ns;
        else
                offset_ns = strtoll(v, NULL, 10) * 1000000000LL;
}

__attribute__((constructor)) static void init(void) {
        setup();
}

static void shift(struct timespec *ts) {
        int64_t ns = (int64_t) ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
        ts->tv_sec = (time_t) (ns / 1000000000LL);
        ts->tv_nsec = (long) (ns % 1000000000LL);
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
        setup();
        int r = real_clock_gettime(clock, ts);
        if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
                shift(ts);
        return r;
}

time_t time(time_t *t) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (t)
                *t = ts.tv_sec;
        return ts.tv_sec;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
        (void) tz;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct timeval *volatile out = tv; /* glibc declares it nonnull; callers pass NULL anyway */
        if (out) {
                out->tv_sec = ts.tv_sec;
                out->tv_usec = ts.tv_nsec / 1000;
        }
        return 0;
}
