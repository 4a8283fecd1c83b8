/* Trusted time (agent/trusted-time.h). */
#include "config.h"

#include "agent/trusted-time.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/macro.h"
#include "lib/statefile.h"

/* ---- pure ------------------------------------------------------------------------------- */

static int64_t elapsed_usec(uint64_t from_usec, uint64_t to_usec) {
        return to_usec > from_usec ? (int64_t) (to_usec - from_usec) : 0;
}

void tt_init(struct trusted_time *t, int64_t min_floor_sec, int64_t loaded_floor_sec, uint64_t mono_usec,
             int64_t max_rtc_ahead_sec) {
        if (loaded_floor_sec > TRUSTED_TIME_MAX_SEC)
                loaded_floor_sec = 0; /* nonsense (see TRUSTED_TIME_MAX_SEC) */
        *t = (struct trusted_time){
                .floor_sec = loaded_floor_sec > min_floor_sec ? loaded_floor_sec : min_floor_sec,
                .floor_mono_usec = mono_usec,
                .max_rtc_ahead_sec = max_rtc_ahead_sec,
                .saved_floor_sec = loaded_floor_sec,
        };
}

/* from_sec (>= 0) + the time since from_usec, in µs, never past TRUSTED_TIME_MAX_SEC (nor
 * overflowing) */
static int64_t carried_usec(int64_t from_sec, uint64_t from_usec, uint64_t to_usec) {
        const int64_t max = TRUSTED_TIME_MAX_SEC * 1000000LL;
        int64_t e = elapsed_usec(from_usec, to_usec);
        int64_t from = from_sec >= TRUSTED_TIME_MAX_SEC ? max : from_sec * 1000000LL;
        return e > max - from ? max : from + e;
}

int64_t tt_floor(const struct trusted_time *t, uint64_t mono_usec) {
        return carried_usec(t->floor_sec, t->floor_mono_usec, mono_usec) / 1000000LL;
}

int64_t tt_now_usec(const struct trusted_time *t, int64_t rtc_usec, uint64_t mono_usec,
                    enum trusted_time_source *ret_source) {
        int64_t floor = carried_usec(t->floor_sec, t->floor_mono_usec, mono_usec), now = floor;
        enum trusted_time_source source = TRUSTED_TIME_FLOOR;
        if (t->told) {
                int64_t told = carried_usec(t->told_sec, t->told_mono_usec, mono_usec);
                int64_t d = rtc_usec - told;
                now = d >= -TRUSTED_TIME_AGREE_USEC && d <= TRUSTED_TIME_AGREE_USEC ? rtc_usec : told;
                source = TRUSTED_TIME_CONTROLLER;
        } else if (rtc_usec >= floor && rtc_usec - floor <= t->max_rtc_ahead_sec * 1000000LL) {
                now = rtc_usec;
                source = TRUSTED_TIME_RTC;
        }
        if (now < floor) /* the controller's clock may have gone back; the floor never does */
                now = floor;
        if (ret_source)
                *ret_source = source;
        return now;
}

int64_t tt_now(const struct trusted_time *t, int64_t rtc_sec, uint64_t mono_usec,
               enum trusted_time_source *ret_source) {
        int64_t usec = tt_now_usec(t, rtc_sec * 1000000LL, mono_usec, ret_source);
        return usec >= 0 ? usec / 1000000LL : -((-usec + 999999) / 1000000LL);
}

int64_t tt_told(struct trusted_time *t, int64_t server_sec, int64_t rtc_sec, uint64_t mono_usec) {
        if (server_sec <= 0 || server_sec > TRUSTED_TIME_MAX_SEC)
                return 0;
        t->told = true;
        t->told_sec = server_sec;
        t->told_mono_usec = mono_usec;
        if (server_sec > tt_floor(t, mono_usec)) {
                t->floor_sec = server_sec;
                t->floor_mono_usec = mono_usec;
        }
        return server_sec - rtc_sec;
}

bool tt_should_save(const struct trusted_time *t, uint64_t mono_usec) {
        return tt_floor(t, mono_usec) - t->saved_floor_sec >= TRUSTED_TIME_SAVE_STEP_SEC;
}

const char *trusted_time_source_name(enum trusted_time_source s) {
        switch (s) {
        case TRUSTED_TIME_CONTROLLER:
                return "controller";
        case TRUSTED_TIME_RTC:
                return "rtc";
        case TRUSTED_TIME_FLOOR:
                return "floor";
        }
        return "?";
}

/* ---- the agent's instance ----------------------------------------------------------------- */

static pthread_mutex_t clock_lock = PTHREAD_MUTEX_INITIALIZER;
static struct trusted_time clock_state;
static bool clock_ready;
static char clock_dir[PATH_MAX];
static int64_t clock_offset_sec; /* the controller's time less the RTC, at the last answer */

static uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static int64_t rtc_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int64_t trusted_clock_build_epoch(void) {
        return (int64_t) ORBIT_TIME_EPOCH;
}

int trusted_clock_init(const char *state_dir, int64_t max_rtc_ahead_sec) {
        _cleanup_free_ char *text = NULL;
        int64_t loaded = 0;
        int r = statefile_load(state_dir, TRUSTED_TIME_FILE, &text, NULL, NULL);
        if (r >= 0) {
                json_error_t e;
                json_t *o = json_loads(text, 0, &e);
                json_t *f = o ? json_object_get(o, "floor") : NULL;
                if (json_is_integer(f) && json_integer_value(f) > 0 &&
                    json_integer_value(f) <= TRUSTED_TIME_MAX_SEC)
                        loaded = (int64_t) json_integer_value(f);
                else
                        log_warning("trusted time: %s/%s has no valid \"floor\": starting from the build time",
                                    state_dir, TRUSTED_TIME_FILE);
                json_decref(o);
        } else if (r != -ENOENT)
                log_warning("trusted time: cannot load %s/%s (%s): starting from the build time", state_dir,
                            TRUSTED_TIME_FILE, strerror(-r));
        pthread_mutex_lock(&clock_lock);
        snprintf(clock_dir, sizeof(clock_dir), "%s", state_dir);
        tt_init(&clock_state, trusted_clock_build_epoch(), loaded, mono_usec(), max_rtc_ahead_sec);
        clock_ready = true;
        enum trusted_time_source s;
        int64_t now = tt_now(&clock_state, (int64_t) time(NULL), mono_usec(), &s);
        pthread_mutex_unlock(&clock_lock);
        if (s != TRUSTED_TIME_RTC)
                log_warning("trusted time: the clock says %" PRId64 ", which is %s the floor %" PRId64
                            ": until the controller tells the time, the node takes %" PRId64,
                            (int64_t) time(NULL),
                            (int64_t) time(NULL) < now ? "below" : "too far above", now, now);
        return 0;
}

void trusted_clock_set_max_rtc_ahead(int64_t max_rtc_ahead_sec) {
        pthread_mutex_lock(&clock_lock);
        clock_state.max_rtc_ahead_sec = max_rtc_ahead_sec;
        pthread_mutex_unlock(&clock_lock);
}

int trusted_clock_save(void) {
        pthread_mutex_lock(&clock_lock);
        if (!clock_ready) {
                pthread_mutex_unlock(&clock_lock);
                return 0;
        }
        int64_t floor = tt_floor(&clock_state, mono_usec());
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", clock_dir);
        pthread_mutex_unlock(&clock_lock);

        json_t *o = json_pack("{s:I}", "floor", (json_int_t) floor);
        int r = o ? statefile_save_json(dir, TRUSTED_TIME_FILE, o) : -ENOMEM;
        json_decref(o);
        if (r < 0)
                return log_warning_errno(r, "trusted time: cannot save the floor in %s/%s", dir,
                                         TRUSTED_TIME_FILE);
        pthread_mutex_lock(&clock_lock);
        if (floor > clock_state.saved_floor_sec)
                clock_state.saved_floor_sec = floor;
        pthread_mutex_unlock(&clock_lock);
        return 0;
}

int64_t trusted_clock_now(enum trusted_time_source *ret_source) {
        pthread_mutex_lock(&clock_lock);
        int64_t now;
        if (clock_ready)
                now = tt_now_usec(&clock_state, rtc_usec(), mono_usec(), ret_source) / 1000000LL;
        else {
                /* tools and tests that never set it up: the clock as it is */
                now = (int64_t) time(NULL);
                if (ret_source)
                        *ret_source = TRUSTED_TIME_RTC;
        }
        pthread_mutex_unlock(&clock_lock);
        return now;
}

int64_t trusted_clock_now_usec(void) {
        pthread_mutex_lock(&clock_lock);
        int64_t now = clock_ready ? tt_now_usec(&clock_state, rtc_usec(), mono_usec(), NULL) : rtc_usec();
        pthread_mutex_unlock(&clock_lock);
        return now;
}

void trusted_clock_told(int64_t server_sec, int64_t peer_not_after) {
        if (peer_not_after > 0 && server_sec > peer_not_after) {
                /* Its certificate expired by its own clock: that clock is wrong (or the time is
                 * a lie). Taken, it would become a floor that never goes down, at which this very
                 * certificate is expired: the node cut off for good. */
                log_warning("trusted time: the controller says %" PRId64 ", after its own certificate "
                            "expired (%" PRId64 "): its clock is wrong; ignored",
                            server_sec, peer_not_after);
                return;
        }
        pthread_mutex_lock(&clock_lock);
        if (!clock_ready || server_sec <= 0 || server_sec > TRUSTED_TIME_MAX_SEC) {
                pthread_mutex_unlock(&clock_lock);
                if (server_sec > TRUSTED_TIME_MAX_SEC)
                        log_warning("trusted time: the controller says %" PRId64
                                    ", past the year 9999: ignored",
                                    server_sec);
                return;
        }
        bool first = !clock_state.told;
        int64_t offset = tt_told(&clock_state, server_sec, (int64_t) time(NULL), mono_usec());
        bool save = tt_should_save(&clock_state, mono_usec());
        int64_t previous = clock_offset_sec;
        clock_offset_sec = offset;
        pthread_mutex_unlock(&clock_lock);
        /* Say it when the board's clock is off by more than a minute, once per boot and
         * whenever that changes by another minute. */
        int64_t d = offset - previous;
        if ((offset > 60 || offset < -60) && (first || d > 60 || d < -60))
                log_notice("trusted time: the controller's time is %" PRId64 " s %s the board's clock; "
                           "certificates and commands are judged by the controller's",
                           offset > 0 ? offset : -offset, offset > 0 ? "ahead of" : "behind");
        if (save)
                (void) trusted_clock_save();
}

bool tt_reset_floor(struct trusted_time *t, int64_t reset_sec, uint64_t mono_usec) {
        bool changed = false;
        if (reset_sec <= 0)
                return false;
        if (tt_floor(t, mono_usec) > reset_sec) {
                t->floor_sec = reset_sec;
                t->floor_mono_usec = mono_usec;
                t->saved_floor_sec = 0; /* written at once */
                changed = true;
        }
        if (t->told && carried_usec(t->told_sec, t->told_mono_usec, mono_usec) / 1000000LL > reset_sec) {
                t->told = false; /* the next sync tells it again */
                changed = true;
        }
        return changed;
}

int trusted_clock_reset_floor(int64_t reset_sec) {
        pthread_mutex_lock(&clock_lock);
        bool changed = clock_ready && tt_reset_floor(&clock_state, reset_sec, mono_usec());
        pthread_mutex_unlock(&clock_lock);
        if (changed)
                log_warning("trusted time: the trust document resets the floor to %" PRId64, reset_sec);
        /* Saved twice, changed or not (an earlier try may have lowered it and failed to save):
         * the file's last good copy must not be the floor from before the reset, which a bit
         * flip in the file would bring back. */
        int r = trusted_clock_save();
        if (r >= 0)
                r = trusted_clock_save();
        return r;
}

void trusted_clock_maybe_save(void) {
        pthread_mutex_lock(&clock_lock);
        bool save = clock_ready && tt_should_save(&clock_state, mono_usec());
        pthread_mutex_unlock(&clock_lock);
        if (save)
                (void) trusted_clock_save();
}

json_t *trusted_clock_status_json(void) {
        enum trusted_time_source s;
        int64_t now = trusted_clock_now(&s);
        pthread_mutex_lock(&clock_lock);
        int64_t floor = clock_ready ? tt_floor(&clock_state, mono_usec()) : 0;
        bool told = clock_ready && clock_state.told;
        int64_t offset = clock_offset_sec;
        pthread_mutex_unlock(&clock_lock);
        return json_pack("{s:I, s:s, s:I, s:I, s:o}", "now", (json_int_t) now, "source",
                         trusted_time_source_name(s), "floor", (json_int_t) floor, "rtc",
                         (json_int_t) time(NULL), "controller_offset_sec",
                         told ? json_integer(offset) : json_null());
}
