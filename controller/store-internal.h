/*
 * What the store's files share (controller/store*.c): the connection and its state, the
 * transaction guard, the node rows and the rollout machinery a sync and the operator's
 * verbs both drive. Not for use outside the store: store.h is its API.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "controller/api.h"
#include "controller/rollout.h"
#include "controller/store-sql.h"
#include "controller/store.h"

struct store {
        const struct store_backend *backend;
        void *conn; /* the backend's connection */
        int64_t pass_gap; /* syncs of a node at most this far apart are one pass */
        int64_t record_quota; /* records kept per node; past it the oldest go (0: no bound) */
        /* The rollouts a sync changed something in (a member's state, a member now held):
         * the only ones it evaluates, so a sync costs O(the node's memberships) unless it
         * moved something. Time gates move at store_rollouts_tick. */
        char dirty[16][ROLLOUT_ID_MAX + 1];
        size_t n_dirty;
        bool dirty_overflow;
        store_sign_fn sign; /* for the commands rollouts queue; NULL: rollouts not driven */
        void *sign_userdata;
        store_sign_fn sign_desired; /* for the desired states deployments make; NULL: not driven */
        void *sign_desired_userdata;
        int64_t counted; /* the changes of the counted statements (store_exec_later_counted) */
        int64_t commands_queued; /* commands queued by this store, ever (a sync's test for new ones) */
};

static inline void store_rollbackp(struct store **s) {
        if (*s)
                (void) store_script(*s, "ROLLBACK");
}
/* A transaction rolled back unless committed with commit() (which clears the guard). */
#define _cleanup_transaction_ _cleanup_(store_rollbackp)

static inline int commit(struct store **guard) {
        int r = store_script(*guard, "COMMIT");
        if (r >= 0)
                *guard = NULL;
        return r;
}

/* Commands the rollouts queue expire after a week unless they are sent. */
#define ROLLOUT_COMMAND_EXPIRES (7 * 24 * 3600)
struct rollout_row {
        struct rollout_options o;
        enum rollout_state state;
        unsigned current_stage;
        int64_t stage_started, created, started, finished;
        char reason[ROLLOUT_REASON_MAX];
};
typedef char member_id[API_ID_MAX + 1];

struct member_counts {
        int64_t total, told, failures;
        int64_t by_state[_ROLLOUT_NODE_STATE_MAX];
};

int store_node_ensure(struct store *s, const char *node, int64_t now);

/* store_desired_set within the caller's transaction; *ret_version the new version. */
int store_desired_set_locked(struct store *s, const char *node, json_t *workloads, int64_t if_version, int64_t now,
                             const char *by, store_sign_fn sign, void *userdata, int64_t *ret_version,
                             char **ret_reason);
/* The workloads of the node's newest desired state (a new array; empty when none). */
int store_desired_workloads(struct store *s, const char *node, json_t **ret);
/* The body of the node's last desired.state record (a new reference), or NULL. */
int store_desired_report(struct store *s, const char *node, json_t **ret);

int store_node_exists(struct store *s, const char *node);

void store_rollout_dirty(struct store *s, const char *rollout);

int store_member_refresh_by_id(struct store *s, const char *rollout, const char *node, int64_t now);

int store_command_queue_locked(struct store *s, const char *node, const char *action,
                               json_t *params, int64_t now, int64_t expires_in_sec,
                               store_sign_fn sign, void *userdata, int64_t *ret_seq,
                               int64_t *ret_expires, char **ret_reason);

extern const char store_rollout_columns[];

int store_rollout_row_read(struct store *s, struct store_stmt *st, struct rollout_row *ret);

int store_rollout_load(struct store *s, const char *id, struct rollout_row *ret);

int store_rollout_save(struct store *s, const struct rollout_row *row);

_printf_(6, 7) int store_rollout_event(struct store *s, const char *id, int64_t now, int stage,
                                       const char *event, const char *fmt, ...);

/*
 * A member from the first seven columns of a row: stage, state, committed_time,
 * passes_since_commit, passes_since_told, last_heard, passes_unheard.
 */
struct rollout_member store_member_read(struct store_stmt *st);

int store_rollout_members_load(struct store *s, const char *id, int64_t now,
                               struct rollout_member **ret, member_id **ret_ids, size_t *ret_n);

void store_members_count(const struct rollout_member *m, size_t n, int stage,
                         struct member_counts *c);

int store_rollout_node_set(struct store *s, const char *rollout, const char *node,
                           enum rollout_node_state to, bool rollback_wanted, const char *reason,
                           int64_t now);

int store_rollout_take_back(struct store *s, const char *id, const char *why, int64_t now,
                            int *ret_cancelled, int *ret_marked);

int store_member_refresh(struct store *s, const struct rollout_row *row, const char *node,
                         int64_t now);

void store_counts_from_stage(const struct rollout_stage_counts *sc, struct member_counts *c);

int store_rollout_stage_counts_load(struct store *s, const char *id,
                                    struct rollout_stage_counts c[ROLLOUT_STAGES_MAX],
                                    struct member_counts *all);

int store_rollout_evaluate(struct store *s, struct rollout_row *row, int64_t now);

/* The ids of the rollouts still driven (running or paused), oldest first; *ret_ids is the
 * caller's to free (NULL when there are none). */
int store_live_rollout_ids(struct store *s, char (**ret_ids)[ROLLOUT_ID_MAX + 1], size_t *ret_n);

int store_rollouts_evaluate_all(struct store *s, int64_t now);

/* Count the node's pass if this sync begins one: row's columns col and col + 1 hold its
 * last_sync (before this sync) and contact_plan. */
/* A node's contact_plan column i as its plan (a new reference; {"windows": []} when it has
 * none or st is NULL; NULL: no memory). */
json_t *store_col_contact_plan(struct store_stmt *st, int i);

/*
 * At a sync (store_sync_node), from the node's row as read (has -1: it never said): keep what
 * the node said (told_version -1: nothing), and give the envelope to send (*ret_envelope, a new
 * reference, NULL when none is due: the node has the newest, or refused it).
 * *ret_newly_refused: this sync said a refusal not said before.
 */
int store_node_desired_apply(struct store *s, const char *node, int64_t has, int64_t refused,
                             int64_t told_version, int64_t told_refused, json_t **ret_envelope,
                             int64_t *ret_refused, bool *ret_newly_refused);
int store_node_pass_count(struct store *s, const char *node, struct store_stmt *row, int col, int64_t now,
                          bool *ret_new);

int store_node_memberships_refresh(struct store *s, const char *node, int64_t now);

int store_rollout_apply_status(struct store *s, const char *node, json_t *status, int64_t now);

int store_rollout_apply_record(struct store *s, const struct sync_record *rec, int64_t now);

/* member: the node may be in a rollout that tells it something (store_lock_rollouts) */
int store_rollouts_drive_node(struct store *s, const char *node, bool member, int64_t now);

void store_order_key_text(const char *rollout, const char *node, char buf[17]);

int store_rollouts_join_late(struct store *s, const char *node, int64_t now);

/* Count a usage.report record stored now (store-usage.c; see store_usage_sum). */
int store_usage_apply_record(struct store *s, const struct sync_record *rec, int64_t now);
/* Count the usage.report records stored before schema 13 (in the transaction of the migration
 * to 14; nothing if the store counted usage already). */
int store_usage_backfill(struct store *s);
/* Column i of st, a record as stored (store-record-form.h), as its JSON: *ret NULL for SQL
 * NULL; -EBADMSG for one that does not read back (logged). */
int store_col_record(struct store_stmt *st, int i, json_t **ret);
/* The same for a JSON value kept packed (a node's last health report): null for SQL NULL
 * or one that does not read back, as store_col_json; NULL only without memory. */
json_t *store_col_packed(struct store_stmt *st, int i);
