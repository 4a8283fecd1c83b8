/*
 * Trusted time: what the node believes the time is, when its clock may be wrong (#18 item 4).
 *
 * A board in orbit can boot with its RTC at 1970 (a flat backup cell), or years ahead (a
 * flipped bit); curl, the command checks and the signer checks all judged time by that
 * clock, so one bad RTC cut the node off or used up every command as "expired". Now:
 *
 *  - The floor: the node knows the time is at least this. It starts at the agent's build
 *    time, is kept in state_dir/time, rises with the monotonic clock while the agent
 *    runs, and with every time the controller tells (the server_time of each sync answer,
 *    authenticated by the TLS session with the controller's verified certificate). It never
 *    goes down, and the RTC never raises it.
 *  - Now: the controller's last time plus the monotonic time since, once a sync this boot
 *    told it; before that, the RTC when it lies between the floor and the floor plus
 *    max_rtc_ahead_sec; else the floor.
 *  - Certificates are judged against now; "not valid yet" only against the controller's
 *    time (a floor or an RTC only bounds the time from below, so a certificate issued after
 *    it may well be valid).
 *
 * The pure part (struct trusted_time and tt_*) takes the clocks as arguments and is
 * unit-tested (tests/unit/test-trusted-time); trusted_clock_* is the agent's one instance,
 * thread-safe (the update worker and curl's TLS callbacks read it off the loop).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define TRUSTED_TIME_FILE "time"
/* Persist the floor when it rose by this much since it was last saved (flash wear). */
#define TRUSTED_TIME_SAVE_STEP_SEC 3600
/* The RTC is believed up to this far above the floor (a node can be out of contact long). */
#define TRUSTED_TIME_MAX_RTC_AHEAD_SEC_DEFAULT (30 * 86400)
/* The last second of year 9999 (as far as X.509 and contact plans go): a time told or a
 * floor loaded past it is nonsense and ignored, and the floor never runs past it. */
#define TRUSTED_TIME_MAX_SEC INT64_C(253402300799)

enum trusted_time_source {
        TRUSTED_TIME_FLOOR,      /* no better source: the least the time can be */
        TRUSTED_TIME_RTC,        /* the board's clock, plausible against the floor */
        TRUSTED_TIME_CONTROLLER, /* the controller's time, carried on by the monotonic clock */
};

struct trusted_time {
        int64_t floor_sec;        /* the time is at least this at floor_mono_usec */
        uint64_t floor_mono_usec; /* CLOCK_MONOTONIC µs when floor_sec was set */
        bool told;                /* a controller time this boot */
        int64_t told_sec;
        uint64_t told_mono_usec;
        int64_t max_rtc_ahead_sec;
        int64_t saved_floor_sec; /* what time holds */
};

/* A floor of at least min_floor_sec (the build time) or loaded_floor_sec (from disk), at mono. */
void tt_init(struct trusted_time *t, int64_t min_floor_sec, int64_t loaded_floor_sec, uint64_t mono_usec,
             int64_t max_rtc_ahead_sec);

/* The floor now: floor_sec carried on by the monotonic time since it was set. */
int64_t tt_floor(const struct trusted_time *t, uint64_t mono_usec);

/* The RTC agreeing with the controller's time within this is taken as it is (the controller
 * tells whole seconds; the RTC is finer): a good board's timestamps stay its own. */
#define TRUSTED_TIME_AGREE_USEC (2 * 1000000LL)

/*
 * The time now (µs), and where it came from: once a controller told the time, its time
 * carried on by the monotonic clock, or the RTC when they agree within
 * TRUSTED_TIME_AGREE_USEC (source "controller" either way: confirmed by it); before that,
 * the RTC when it lies between the floor and the floor plus max_rtc_ahead_sec ("rtc"),
 * else the floor ("floor"). Never below the floor. Monotonic within one source.
 */
int64_t tt_now_usec(const struct trusted_time *t, int64_t rtc_usec, uint64_t mono_usec,
                    enum trusted_time_source *ret_source);
/* The same in seconds, from the RTC's seconds. */
int64_t tt_now(const struct trusted_time *t, int64_t rtc_sec, uint64_t mono_usec,
               enum trusted_time_source *ret_source);

/*
 * The controller said server_sec at mono_usec. It becomes now's source and raises the floor
 * (never lowers it). Returns the controller's offset from the RTC (server - rtc), which the
 * caller may report. server_sec <= 0 or past TRUSTED_TIME_MAX_SEC is ignored (returns 0).
 */
int64_t tt_told(struct trusted_time *t, int64_t server_sec, int64_t rtc_sec, uint64_t mono_usec);

/*
 * A root-signed trust document's floor reset (#18 item 2): a floor (or a controller time)
 * above reset_sec is taken down to it, since a holder of the controller's TLS key could have
 * pushed it into the future. Returns whether anything changed.
 */
bool tt_reset_floor(struct trusted_time *t, int64_t reset_sec, uint64_t mono_usec);

/* Whether the floor rose far enough above what was saved to be worth a write. */
bool tt_should_save(const struct trusted_time *t, uint64_t mono_usec);

const char *trusted_time_source_name(enum trusted_time_source s);

/* ---- the agent's instance ------------------------------------------------------------ */

/* Load state_dir/time (a missing or corrupt file: the build time is the floor). */
int trusted_clock_init(const char *state_dir, int64_t max_rtc_ahead_sec);
void trusted_clock_set_max_rtc_ahead(int64_t max_rtc_ahead_sec);
/* Write the floor (at exit, and when tt_should_save says so). */
int trusted_clock_save(void);

int64_t trusted_clock_now(enum trusted_time_source *ret_source);
/* The same in µs: loss-of-signal arithmetic, and the time of the node's records. */
int64_t trusted_clock_now_usec(void);
/*
 * A sync answer's server_time; saves the floor when it rose by TRUSTED_TIME_SAVE_STEP_SEC.
 * peer_not_after (0: not known) is the notAfter of the controller's certificate that carried
 * it (tls_time_setup): a time past it is ignored, since as a floor it would have the node
 * judge that certificate expired for good (a controller whose clock ran ahead, or was set
 * ahead: an operator's slip, a forged NTP answer on the ground).
 */
void trusted_clock_told(int64_t server_sec, int64_t peer_not_after);

/* tt_reset_floor on the agent's instance, saved at once (the file and its last good copy
 * both): 0, or -errno when it could not be saved. */
int trusted_clock_reset_floor(int64_t reset_sec);

/* Save the floor when it rose by TRUSTED_TIME_SAVE_STEP_SEC since it was saved (the link
 * calls it after each good sync: a format 2 answer tells the time only when its standing
 * part changed, and a crash must not lose a day of floor). */
void trusted_clock_maybe_save(void);

/* {"now", "source", "floor", "rtc", "controller_offset_sec"} for orbitctl status. */
json_t *trusted_clock_status_json(void);

/* The build time the floor starts from (configure's ORBIT_TIME_EPOCH). */
int64_t trusted_clock_build_epoch(void);
