/*
 * The update state machine, persisted as a state file so that an install survives
 * kills and power cuts:
 *
 *   idle -> fetching -> installing -> ready -> trial -> committed
 *              |            |           |        `--> rolled-back
 *              `------------+-----------+--> failed     (ready -> rolled-back too)
 *
 * committed, rolled-back and failed are ends: the next install starts from them as
 * from idle. Pure: no I/O here; the agent's update manager does the work and calls
 * update_state_set_phase for each transition.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "update/boot-state.h"
#include "update/manifest.h"
#include "lib/sha256.h"

enum update_phase {
        UPDATE_IDLE,
        UPDATE_FETCHING,   /* the bundle is being fetched or its manifest verified */
        UPDATE_INSTALLING, /* images are being written into inactive slots */
        UPDATE_READY,      /* every image verified in its slot; waiting for the switch/reboot */
        UPDATE_TRIAL,      /* running the new slots; the health gate decides */
        UPDATE_COMMITTED,
        UPDATE_ROLLED_BACK,
        UPDATE_FAILED,
        _UPDATE_PHASE_MAX,
};

const char *update_phase_to_string(enum update_phase p);
int update_phase_from_string(const char *s, enum update_phase *ret);
/* Pure: may the machine go from -> to? */
bool update_transition_allowed(enum update_phase from, enum update_phase to);
/* Pure: committed, rolled-back, failed or idle: no install in progress. */
bool update_phase_is_final(enum update_phase p);

#define UPDATE_MAX_MODELS MANIFEST_MAX_IMAGES
#define UPDATE_REASON_MAX 1024

struct update_model_target {
        char name[MANIFEST_NAME_MAX + 1];
        char target;   /* 'A' or 'B': the member being installed */
        char previous; /* the member that was current, or 0 when the model is new */
        bool app;      /* an "app:<name>" slot (under apps_dir) rather than a model */
};

struct update_state {
        enum update_phase phase;
        /* the bundle of the current (or last) install; empty when there never was one */
        char bundle_path[PATH_MAX];
        char bundle_id[MANIFEST_NAME_MAX + 1];
        char version[MANIFEST_NAME_MAX + 1];
        uint64_t security_version;
        char manifest_sha256[SHA256_HEX_SIZE]; /* identifies the exact signed manifest */
        bool has_rootfs;
        char rootfs_target, rootfs_previous; /* 'A'/'B' */
        struct update_model_target models[UPDATE_MAX_MODELS];
        size_t n_models;
        char reason[UPDATE_REASON_MAX]; /* why the last transition happened */
        /* the install may only hold images of class "app:<only_app>" ("" any): one the desired
         * state asked for (#19), which must never bring a rootfs or a model */
        char only_app[MANIFEST_NAME_MAX + 1];
        uint64_t min_security_version;  /* anti-rollback floor, raised on commit */
        uint64_t installs;              /* installs started, ever */
        uint64_t changed_realtime_usec; /* when the phase last changed */
};

/* Pure: a fresh state (idle, floor 0). */
void update_state_init(struct update_state *s);

/*
 * Pure: move to `to`, recording reason (may be NULL) and the time. -EINVAL when the
 * transition is not allowed (the state is unchanged).
 */
int update_state_set_phase(struct update_state *s, enum update_phase to, const char *reason,
                           uint64_t realtime_usec);

/* Pure: the persisted form (JSON text; caller frees) and back. Parsing is strict; on
 * failure *ret_reason (caller frees) names the key. */
int update_state_format(const struct update_state *s, char **ret);
int update_state_parse(const char *text, size_t len, struct update_state *ret, char **ret_reason);

/* What the agent must do about an update when it starts (after a reboot or a restart). */
enum update_start_action {
        UPDATE_START_NOTHING,      /* no install in progress */
        UPDATE_START_RESUME,       /* fetching/installing: resume the install */
        UPDATE_START_WAIT_REBOOT,  /* ready: the new rootfs waits for the reboot */
        UPDATE_START_BEGIN_TRIAL,  /* booted into the new slots (or models only): run the gate */
        UPDATE_START_COMMITTED,    /* the slot is already good: record the commit */
        UPDATE_START_ROLLED_BACK,  /* the bootloader fell back: report the rollback */
};

const char *update_start_action_to_string(enum update_start_action a);

/*
 * Pure: decide from the persisted state, the bootloader's state (NULL when the update
 * has no rootfs image), the booted slot and whether every target holds this update's
 * content record (written: the install had finished writing them). *ret_why (a static
 * string) explains rollbacks, and an install taken for finished.
 */
enum update_start_action update_decide_at_start(const struct update_state *s,
                                                const struct boot_state *boot, char booted,
                                                bool written, const char **ret_why);

/* What an install that stopped with an error becomes. */
enum update_stop_action {
        UPDATE_STOP_FAIL,        /* it cannot succeed as it is: failed, with the reason */
        UPDATE_STOP_KEEP,        /* cancelled because the agent stops: resumed at the next start */
        UPDATE_STOP_PAUSE_LINK,  /* a download out of contact or over budget: the next contact */
        UPDATE_STOP_PAUSE_SPACE, /* no space left on a filesystem: paused, retried until there is */
};

/*
 * Pure: decide from the worker's error r (< 0) and whether the bundle comes over the
 * link. Only -ENOSPC means a full filesystem; -EDQUOT is the download's own "this
 * pass's byte budget is spent" (a disk quota on a local install fails it), -ETIME its
 * "the pass ends before this range could".
 */
enum update_stop_action update_decide_on_stop(int r, bool remote);
