/*
 * What the update manager's files share (agent/update-*.c): the manager's state on the
 * event loop, the job a worker thread runs, and the loop-side steps each file owns.
 * Not for use outside them: update-manager.h is the API.
 *
 *   update-manager.c  the state machine: starting, resuming and finishing installs, the
 *                     boot environment (written on the loop only), status, life cycle
 *   update-worker.c   the job: each step a worker thread runs, on its own snapshot
 *   update-fetch.c    the ranged client a remote job reads the bundle through
 *   update-scrub.c    the inactive slots read back against their kept manifests
 *   update-trial.c    the trial, the health gate, commit and rollback, models, reboot
 */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "agent/update-fetch.h"
#include "agent/trial-gate.h"
#include "agent/update-manager.h"
#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/statefile.h"
#include "update/bootenv.h"
#include "update/bundle.h"
#include "update/install.h"
#include "update/repair.h"
#include "update/update-state.h"

#define UM_STATE_FILE "state"
#define UM_PROGRESS_FILE "progress"
#define UM_SCRUB_FILE "scrub"
#define UM_TRIAL_FILE "trial"
/* Per slot, beside its record (slot-<class>-<slot>.manifest, the manifest it holds): */
#define UM_SLOT_RECORD "manifest" /* trusted: what the slot holds, checked */
#define UM_SLOT_SOURCE "source"   /* where its bundle came from (docs/state-files.md) */
#define UM_SLOT_DAMAGED "damaged" /* a scrub found it damaged: its manifest kept for a repair */
#define UM_SLOT_SCAN "scan"       /* its chunks' hashes, as a delta install's scan found them */

/* One image of a job: owned by the worker while a step runs. */
struct job_image {
        const struct manifest_image *image; /* in the bundle's manifest (a scrub: the record's) */
        char slot_path[PATH_MAX];
        char active_path[PATH_MAX]; /* "" when there is none */
        char target;
        char record[PATH_MAX]; /* the state file name of the slot's manifest record */
        char active_record[PATH_MAX];
        char active_scan[PATH_MAX]; /* where its scan is kept ("": not kept) */
        uint8_t *done;
        uint64_t bundle_offset;
        int slot_fd, active_fd;
        struct install_index *index;
};

/*
 * The steps of a job, each run by a worker thread and then handed back to the loop,
 * which decides the next: an install is FETCH_HEAD (remote only) -> CHECK -> WRITE; the
 * loop takes the targets out of the boot choices between CHECK and WRITE, so a bundle
 * refused by the check changes nothing, and the boot environment is only ever written on
 * the loop.
 */
enum job_step {
        JOB_FETCH_HEAD, /* the manifest and signature, by ranges */
        JOB_CHECK,      /* find the payloads, index the active slots, verify before writing */
        JOB_WRITE,      /* every image into its slot, checkpointed */
        JOB_SCRUB,      /* read the inactive slots back, repair from the active ones */
        JOB_REPAIR,     /* what a scrub left bad, from the bundle on the controller */
};

/* A slot a scrub looks at: what it holds, where that came from, and what the repair did. */
struct job_scrub_slot {
        char *manifest_text; /* the kept manifest, to record again once repaired */
        size_t manifest_len;
        bool was_damaged; /* its record was already set aside by an earlier scrub */
        bool boot_good;   /* rootfs: a good fallback before it was found damaged */
        uint8_t *left_bad; /* the chunks the scrub could not repair on the node */
        /* the bundle that installed it: url "" when there is none (why says so) */
        char url[2048];
        char etag[160];
        uint64_t payload_offset;
        char no_source[160];
        /* the repair from the ground */
        bool repair;
        int repair_result;
        char repair_error[256];
        struct repair_stats repair_stats;
        bool verified; /* read back whole after the repair, every chunk matching */
        char ground[384]; /* what the scrub's report says of it */
};

/*
 * A job: everything a worker reads, copied from the configuration when the job is made
 * (a reload frees and replaces the configuration while a worker runs), with no pointer
 * back to the manager. Shared with the loop: cancel (atomic), progress (under lock), and
 * finished, set before the eventfd wakes the loop at the end of a step.
 */
/* Where a model or an app (#19) has its two members, and which it is, for messages. */
static inline const char *um_slots_dir(const struct agent_update_config *u, bool app) {
        return app ? u->apps_dir : u->models_dir;
}
static inline const char *um_slots_kind(bool app) {
        return app ? "app" : "model";
}

struct job {
        enum job_step step;
        const atomic_int *cancel;
        int wake_fd; /* the manager's eventfd */
        atomic_bool finished;
        int result;
        char *reason;

        struct bundle *bundle;
        struct job_image images[MANIFEST_MAX_IMAGES];
        size_t n_images;
        char manifest_sha256[SHA256_HEX_SIZE];

        /* the configuration, copied */
        char work_dir[PATH_MAX];
        char models_dir[PATH_MAX];
        char apps_dir[PATH_MAX];
        char progress_path[PATH_MAX + 16]; /* for messages */
        struct statefile_pair progress_file; /* saved by the worker at each checkpoint */
        uint64_t scrub_bytes_per_sec;
        uint64_t checkpoint_bytes;
        bool delta_scan;
        bool verify_first;
        double stall_percent; /* tests only: see update_manager.stall_percent */
        char stall_file[PATH_MAX]; /* tests only: see update_manager.stall_file */
        double tear_percent;       /* tests only: see update_manager.tear_percent */
        char tear_file[PATH_MAX];  /* tests only: see update_manager.tear_file */
        struct statefile_pair_tear tear; /* tests only: job_checkpoint arms it once */
        bool torn;                 /* tests only: that save has torn */

        /* a bundle fetched from the controller by ranges */
        struct fetcher *fetcher; /* NULL: a local file */
        uint8_t *head;           /* FETCH_HEAD's result, opened on the loop */
        size_t head_len;

        /* the progress of WRITE, for the loop */
        pthread_mutex_t lock;
        struct install_stats progress;
        uint64_t progress_before, progress_total; /* bytes of images finished; of all */
        size_t current;            /* image being written */
        uint64_t repaired_logged;  /* of the image being written */
        atomic_bool stall_logged; /* the writer's and the syncer's (job_stall_at_percent) */

        /* a scrub: each image is a slot's kept manifest, checked against the slot */
        struct manifest *scrub_manifests[MANIFEST_MAX_IMAGES];
        struct install_scrub_stats scrub_stats[MANIFEST_MAX_IMAGES];
        char scrub_errors[MANIFEST_MAX_IMAGES][256];
        struct job_scrub_slot scrub_slots[MANIFEST_MAX_IMAGES];
        char scrub_actions[MANIFEST_MAX_IMAGES][256]; /* what the loop did with each slot */
        uint64_t scrub_started_usec;
        /* a repair fetches like an install: the link's TLS settings (copied) and its pass
         * (the agent's, it outlives every job) */
        struct fetch_tls tls;
        struct link_pass *pass;
};

struct update_manager {
        sd_event *event;
        const struct agent_config *cfg;
        const struct node_state *node;
        struct event_queue *events;
        struct runtime *runtime;
        struct health_monitor *health;
        struct link_pass *pass; /* NULL: no link, downloads have no budget */

        struct update_state state;
        struct bootenv *bootenv; /* NULL: no rootfs slots on this node */
        char booted;             /* from the kernel command line; 0 unknown */
        char boot_error[256];

        /* the worker */
        struct job *job;
        pthread_t thread;
        bool worker_running;
        atomic_int cancel; /* set on the loop, seen by the worker, its threads, its transfers */
        int efd;
        sd_event_source *efd_source;
        /* Tests only (ORBIT_FAILPOINT_INSTALL_STALL_PERCENT): an install stops going on once
         * this much of it is durable, until cancelled, so a test can kill it exactly there. */
        double stall_percent;
        /* Tests only (ORBIT_FAILPOINT_INSTALL_STALL_FILE): an install stops going on while
         * this file exists, and goes on when the test removes it ("" none). */
        char stall_file[PATH_MAX];
        /* Tests only (ORBIT_FAILPOINT_PROGRESS_TEAR_PERCENT and _FILE): the first save in
         * place of the install's progress once this much of it is durable tears (the new
         * copy written up to its last byte that differs from the older one: struct
         * statefile_pair_tear) and holds while the file exists, so a test can cut the power
         * inside that write. */
        double tear_percent;
        char tear_file[PATH_MAX];
        /* Tests only (ORBIT_FAILPOINT_BOOTENV_STALL_AT=OP:STEP[:N] and _FILE): the
         * bootloader environment's write for one um_boot_op (-1: none) holds at one step of
         * its durable replacement (the Nth time the write reaches that step, default the
         * first: a redundant U-Boot environment writes a copy, then marks the other
         * obsolete) while the file exists, so a test can cut the power there. */
        int bootenv_stall_op;
        enum durable_step bootenv_stall_step;
        unsigned bootenv_stall_nth;  /* N, from 1 */
        unsigned bootenv_stall_seen; /* the times this write reached the step so far */
        char bootenv_stall_file[PATH_MAX];
        struct durable_hook bootenv_hook;
        int boot_op_now; /* the um_boot_op being written, -1 between writes */

        /* the trial (kept in UM_TRIAL_FILE: its start, the health gate held, the controller
         * reached, so a restarted agent goes on from there) */
        sd_event_source *gate_timer;
        uint64_t trial_started_usec, gate_ok_since_usec;
        char gate_why[256];
        char trial_kernel_boot_id[64]; /* "": unknown (the trial restarts with the agent) */
        bool health_held;        /* the health gate held gate_sec once in this trial */
        uint64_t controller_reached_usec; /* the first good sync of the trial; 0: none yet */
        bool waiting_for_controller; /* the last tick: the health gate held, no sync yet */
        struct trial_gate_decision last_decision;
        update_contact_window_fn contact_window;
        void *contact_window_userdata;
        /* For the usage meter: bytes fetched by the install in progress, for fetched_app */
        _Atomic uint64_t fetched;
        char fetched_app[MANIFEST_NAME_MAX + 1]; /* its only_app, "" when not for one app */
        update_fetch_starting_fn fetch_starting;
        void *fetch_starting_userdata;

        sd_event_source *reboot_timer;
        sd_event_source *scrub_timer;
        json_t *scrub_last; /* the last scrub's result (persisted in UM_SCRUB_FILE) */
        bool paused;           /* an install waits: a remote one for the link, any for space */
        bool paused_for_space; /* this pause (or the retry running now) is for lack of space */
        uint64_t paused_in_pass; /* the pass (link-pass.h) it paused in for its budget or time; 0: other */
        sd_event_source *space_timer; /* retries an install paused for space */
        bool reboot_required;
        pid_t reboot_pid;
        char last_error[UPDATE_REASON_MAX];
};

/* update-manager.c */
uint64_t um_realtime_usec(void);
uint64_t um_monotonic_usec(struct update_manager *m);
const char *um_slot_str(char s);
int um_set_phase(struct update_manager *m, enum update_phase to, const char *fmt, ...) _printf_(3, 4);
void um_record_name(const char *slot_class, char slot, char *buf, size_t size);
/* The file beside a slot's record: kind is UM_SLOT_RECORD, UM_SLOT_SOURCE or UM_SLOT_DAMAGED. */
void um_slot_file_name(const char *slot_class, char slot, const char *kind, char *buf, size_t size);
void um_record_remove(const char *work_dir, const char *name);
/* Everything kept about a slot (record, source, damaged record): before its content changes. */
void um_slot_forget(const char *work_dir, const char *slot_class, char slot);
/* The link's TLS settings for a fetch, copied from the configuration. */
void um_fetch_tls(struct update_manager *m, struct fetch_tls *ret);
enum um_boot_op {
        UM_BOOT_TRY,    /* arm slot for a trial of the configured boots */
        UM_BOOT_GOOD,   /* commit slot */
        UM_BOOT_BAD,    /* abandon slot: the other becomes primary */
        UM_BOOT_FORGET, /* take slot out of the choices before its content changes */
};
int um_boot_read(struct update_manager *m, struct boot_state *ret);
int um_boot_update(struct update_manager *m, enum um_boot_op op, char slot, char *msg, size_t size);

/* update-worker.c */
struct job *job_new(struct update_manager *m, enum job_step step);
void job_free(struct job *j);
/* Run j's step on a new worker thread; the loop learns through m->efd. */
int worker_start(struct update_manager *m, struct job *j);
/* Wait for the worker (after a cancel, or once it said it finished). */
void worker_join(struct update_manager *m);
/* The chunks an earlier run of the same install left durable, from the progress file (on
 * the loop, before the first step: a corrupt copy is then reported before anything else). */
void job_progress_load(struct job *j);
/* The install's progress, for the status (on the loop). */
void job_progress_get(struct job *j, struct install_stats *ret, uint64_t *ret_done, uint64_t *ret_total);

/* update-scrub.c */
int um_scrub_setup(struct update_manager *m);
int um_scrub_start(struct update_manager *m, char *msg, size_t size);
void um_scrub_stop(struct update_manager *m);
/* A scrub or repair step ended; true when it went on with j (a repair from the ground). */
bool um_scrub_finished(struct update_manager *m, struct job *j);
void um_scrub_free(struct update_manager *m);
json_t *um_scrub_status_json(struct update_manager *m, bool running);

/* update-trial.c */
void um_request_reboot(struct update_manager *m);
int um_begin_trial(struct update_manager *m);
int um_do_commit(struct update_manager *m, const char *why, char *msg, size_t size);
int um_do_rollback(struct update_manager *m, bool reboot, const char *fmt, ...) _printf_(3, 4);
void um_stop_gate(struct update_manager *m);
void um_trial_controller_reached(struct update_manager *m);
json_t *um_trial_status_json(struct update_manager *m);
