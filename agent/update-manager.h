/*
 * The update manager: drives the update state machine (update/update-state.h) on the
 * agent's event loop. Verifies bundles, runs the install engine on a worker thread,
 * flips the bootloader to the new rootfs slot and the models' current links, runs the
 * trial with the health gate, commits or rolls back, and reports each step as an event.
 * Everything it needs to continue is in state files, so a kill or a power cut at any
 * point resumes (see docs/update.md).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "agent/agent-config.h"
#include "agent/events.h"
#include "agent/health-monitor.h"
#include "agent/link-pass.h"
#include "agent/node-state.h"
#include "runtime/runtime.h"
#include "update/update-state.h"

struct update_manager;

/*
 * Load the update state, open the boot environment, read the booted slot, and do what
 * the state says at this start: resume an install, start a trial, record a commit or a
 * rollback. cfg must stay valid (the agent's config is replaced in place on reload).
 * runtime and health may be NULL. pass: the link's (downloads are charged to it, from the
 * install this start resumes on), NULL without a link.
 */
int update_manager_new(sd_event *event, const struct agent_config *cfg,
                       const struct node_state *node, struct event_queue *events,
                       struct runtime *runtime, struct health_monitor *health,
                       struct link_pass *pass, struct update_manager **ret);

/* Stop the worker (its progress is saved first) and free everything. */
void update_manager_free(struct update_manager *m);

/* For orbitctl update status and the status section. */
json_t *update_manager_status_json(struct update_manager *m);

/* Where the manager stands, for the desired-state reconciler (borrowed until the next dispatch). */
struct update_view {
        enum update_phase phase;
        const char *bundle_id; /* of the install now or last, "" none */
        const char *reason;    /* why it ended so (a failure's, a rollback's) */
        bool busy;             /* an install, a trial or a scrub is under way */
        uint64_t installs;     /* installs begun, ever: tells one install from the next */
};
void update_manager_view(struct update_manager *m, struct update_view *ret);

/*
 * Operator actions. Each returns 0 with *ret (a JSON result) or a negative errno with
 * *ret_message (caller frees; lib/message.h) explaining, in words an operator can act on.
 */
int update_manager_install(struct update_manager *m, const char *bundle_path, json_t **ret,
                           char **ret_message);
/*
 * Install a bundle from the controller (https URL, the link's TLS identity): the manifest
 * and signature are fetched and verified first, then only the chunks the active slots do
 * not have, by HTTP Range, each verified before it is written. A lost link, a pass's
 * spent download budget or a pass about to end pauses the install;
 * update_manager_link_up resumes it.
 */
int update_manager_install_remote(struct update_manager *m, const char *url, json_t **ret,
                                  char **ret_message);
/* The same for the desired state (#19): a bundle holding anything but app:<app> images is
 * refused before a byte is written. */
int update_manager_install_app_remote(struct update_manager *m, const char *url, const char *app, json_t **ret,
                                      char **ret_message);
void update_manager_link_up(struct update_manager *m);

/*
 * The commit gate's view of the controller (docs/update.md, "The commit gate"): with the
 * link enabled, a rootfs trial commits only once the controller was reached from the new
 * slot. controller_reached: a good sync just now (the link calls it after every one).
 * The window callback gives the contact plan's pass that overlaps [from, until) (unix
 * seconds), the one that closes last; false: none planned. Without one, no pass is known.
 */
void update_manager_controller_reached(struct update_manager *m);
typedef bool (*update_contact_window_fn)(void *userdata, int64_t from, int64_t until, int64_t *ret_start,
                                         int64_t *ret_end);
void update_manager_set_contact_window(struct update_manager *m, update_contact_window_fn fn, void *userdata);

/*
 * For the usage meter (#19 item 5): the bytes downloaded since the last take by the
 * install in progress (or the last one), and the app it installs (only_app; "" when the
 * bundle is not for one app: the node's own). fn is called just before a new download
 * begins, so what the last one left is taken under its own app.
 */
uint64_t update_manager_take_fetched(struct update_manager *m, char *app, size_t size);
typedef void (*update_fetch_starting_fn)(void *userdata);
void update_manager_set_fetch_starting(struct update_manager *m, update_fetch_starting_fn fn, void *userdata);

/* Run update.reboot_command (after a second). -ENOTSUP without one. */
int update_manager_request_reboot(struct update_manager *m, char **ret_message);

/* by: who asks ("the operator", "the controller"), for the reason kept and reported. */
int update_manager_mark_good(struct update_manager *m, const char *by, json_t **ret, char **ret_message);
int update_manager_mark_bad(struct update_manager *m, const char *by, json_t **ret, char **ret_message);
/* on_controller_word: a command from the link, which may not go below the committed release's
 * rollback_floor (#18 item 6; -EPERM); an operator on the node may. */
int update_manager_rollback(struct update_manager *m, const char *by, bool on_controller_word, json_t **ret,
                            char **ret_message);

/*
 * Scrub now: read the inactive rootfs slot and the inactive member of each model back
 * from the medium against the manifests kept when the agent installed them, repair what
 * changed from a verified copy on the node (the active slot, by chunk hash), and report
 * an update.scrub record (critical when a slot stays damaged: it is then taken out of
 * the boot choices and never trusted again). Also runs every update.scrub_interval_sec.
 * -EBUSY during an install or a trial; -ENOENT when no inactive slot has a record.
 */
int update_manager_scrub(struct update_manager *m, json_t **ret, char **ret_message);
