/*
 * Staged rollouts, pure: the options an operator gives, the stage every node falls in,
 * the state machine of one node in a rollout, and the decisions (advance a stage, halt,
 * tell a node, roll it back). No I/O: store.c applies the decisions (docs/rollouts.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define ROLLOUT_ID_MAX 64
#define ROLLOUT_GROUP_MAX 64
#define ROLLOUT_STAGES_MAX 10
#define ROLLOUT_NODES_MAX 100000 /* members of one rollout */
#define ROLLOUT_REASON_MAX 256

enum rollout_state {
        ROLLOUT_CREATED,   /* made, nothing told yet */
        ROLLOUT_RUNNING,   /* telling the nodes of the current stage and earlier ones */
        ROLLOUT_PAUSED,    /* nothing new told; states still follow the nodes' reports */
        ROLLOUT_HALTED,    /* the failure threshold was crossed: nothing new told, ever */
        ROLLOUT_COMPLETED, /* the last stage passed its gate */
        ROLLOUT_ABORTED,   /* the operator gave up: updated nodes are told to roll back */
        _ROLLOUT_STATE_MAX,
};

enum rollout_node_state {
        ROLLOUT_NODE_PENDING,     /* not told yet (its stage has not come, or paused) */
        ROLLOUT_NODE_TOLD,        /* update.install queued or sent, no report yet */
        ROLLOUT_NODE_INSTALLING,  /* the node reports fetching, installing, ready or trial */
        ROLLOUT_NODE_COMMITTED,   /* the node booted the bundle and passed its health gate */
        ROLLOUT_NODE_FAILED,      /* the install failed, or the node refused the command */
        ROLLOUT_NODE_ROLLED_BACK, /* the node went back to its previous slot */
        ROLLOUT_NODE_SKIPPED,     /* never told: it rolled back from this bundle before */
        ROLLOUT_NODE_OVERDUE,     /* told, and not heard from within the report deadline: a
                                   * failure until a report of the install arrives */
        _ROLLOUT_NODE_STATE_MAX,
};

const char *rollout_state_to_string(enum rollout_state s);
int rollout_state_from_string(const char *s); /* -EINVAL if unknown */
const char *rollout_node_state_to_string(enum rollout_node_state s);
int rollout_node_state_from_string(const char *s);

/* Do the rollout's nodes still follow it (states updated, commands driven)? */
bool rollout_state_is_live(enum rollout_state s);
/* Does the rollout hold its nodes (no other rollout may take them)? */
bool rollout_state_holds_nodes(enum rollout_state s);
/* A node state that no report changes any more (within this rollout). */
bool rollout_node_state_is_final(enum rollout_node_state s);

/* Does the state count against the failure threshold (failed, rolled back, overdue)? */
bool rollout_node_state_is_failure(enum rollout_node_state s);

/*
 * A gate: "N" passes of the node, or a duration "Ns", "Nm", "Nh", "Nd". value 0 means
 * none. A pass is the node's own: its syncs closer together than the controller's pass
 * gap, or inside one window of its contact plan, are one pass (rollout_pass_is_new).
 */
enum rollout_gate_kind {
        ROLLOUT_GATE_CONTACTS, /* passes of the node itself */
        ROLLOUT_GATE_SECONDS,
};
struct rollout_gate {
        enum rollout_gate_kind kind;
        int64_t value;
};

/* A failure threshold: at most N failed nodes, or at most P% of the nodes told so far. */
struct rollout_threshold {
        bool percent;
        int64_t value;
};

struct rollout_options {
        char id[ROLLOUT_ID_MAX + 1];        /* "" : the store names it */
        char bundle_id[129];
        char target[ROLLOUT_GROUP_MAX + 1]; /* a group, or "all" */
        unsigned stages[ROLLOUT_STAGES_MAX]; /* cumulative percentages, increasing, last 100 */
        size_t n_stages;
        struct rollout_gate success_after;  /* per node: its own passes after its commit */
        int64_t min_healthy_time;           /* per node: seconds after its commit, too; 0: none */
        struct rollout_gate stage_timeout;  /* per stage; value 0: none */
        struct rollout_gate report_deadline; /* per told node; value 0: none */
        struct rollout_threshold max_failures;
        bool auto_revert;                   /* on halt, committed nodes are told to roll back */
};

/* Pure parsers, each -EINVAL with *ret_message (caller frees) naming the option. */
int rollout_stages_parse(const char *text, unsigned *stages, size_t *n, char **ret_message);
int rollout_gate_parse(const char *what, const char *text, bool allow_zero,
                       struct rollout_gate *ret, char **ret_message);
int rollout_threshold_parse(const char *text, struct rollout_threshold *ret, char **ret_message);

/* Formatting back to the same syntax ("3", "30s", "2", "10%", "1,10,50,100"). */
void rollout_gate_format(const struct rollout_gate *g, char *buf, size_t size);
void rollout_threshold_format(const struct rollout_threshold *t, char *buf, size_t size);
void rollout_stages_format(const unsigned *stages, size_t n, char *buf, size_t size);

/*
 * Pure: the operator's create request
 * {"id"?, "bundle_id", "target", "stages": [..] | "1,10,50,100", "success_after": "3"|"10m",
 *  "min_healthy_time"?: "10m", "stage_timeout"?: "50"|"1h", "report_deadline"?: "3"|"2h",
 *  "max_failures": "2"|"10%", "auto_revert"?: bool}.
 * Defaults: target "all", stages 1,10,50,100, success_after 1 pass, no min healthy time,
 * no stage timeout, no report deadline, max_failures 0, no auto revert. -EINVAL with
 * *ret_message naming each problem.
 */
int rollout_request_parse(const char *text, size_t len, struct rollout_options *ret,
                          char **ret_message);

/* The options as the API shows them (a new reference). */
json_t *rollout_options_to_json(const struct rollout_options *o);

/*
 * Pure: the place of a node in a rollout's order: SHA-256 of "<rollout_id>:<node_id>",
 * its first 8 bytes as a big-endian number. Same ids, same key, on every controller.
 */
uint64_t rollout_node_key(const char *rollout_id, const char *node_id);

/*
 * Pure: stage of every member. Members are ordered by rollout_node_key (then by id); the
 * first ceil(stages[0] * n / 100) are stage 0, up to ceil(stages[1] * n / 100) stage 1,
 * and so on: each stage gets its exact share, a 1% canary stage has at least one node
 * when there is one, and the order never depends on anything but the ids.
 * ret_stage[i] is the stage (0-based) of node_ids[i].
 */
void rollout_assign_stages(const char *rollout_id, const char *const *node_ids, size_t n,
                           const unsigned *stages, size_t n_stages, unsigned *ret_stage);

/*
 * Pure: a node's state after one of its update.* records for this rollout's bundle
 * ("update.fetching" ... "update.committed"). Final states stay, except that a committed
 * node can still roll back (an operator, an abort, or a later check).
 */
enum rollout_node_state rollout_node_after_update(enum rollout_node_state cur, const char *kind);

/* Pure: after the command.result of the node's update.install ("done", "failed", "rejected"). */
enum rollout_node_state rollout_node_after_install_result(enum rollout_node_state cur,
                                                          const char *status);

/* Pure: has the rollout crossed its failure threshold? told counts the nodes told so far. */
bool rollout_failures_exceeded(const struct rollout_threshold *t, int64_t failures, int64_t told);

/* One member as the decisions see it. Every pass counted here is the member's own. */
struct rollout_member {
        unsigned stage;
        enum rollout_node_state state;
        int64_t committed_time;      /* when its commit arrived */
        int64_t passes_since_commit; /* its passes after the one that carried the commit */
        int64_t passes_since_told;   /* its passes after the one it was told in */
        int64_t last_heard;          /* told, or its last report of the install (time) */
        int64_t passes_unheard;      /* its passes since then without such a report, plus
                                      * the windows of its contact plan that ended since
                                      * then (passes it missed) */
};

/*
 * Pure: a committed member that has held: success_after (its own passes, or a duration)
 * and min_healthy_time (wall clock), both counted from its commit.
 */
bool rollout_member_held(const struct rollout_member *m, const struct rollout_options *o,
                         int64_t now);

/* Pure: a told or installing member past o->report_deadline without a report. */
bool rollout_member_overdue(const struct rollout_member *m, const struct rollout_options *o,
                            int64_t now);

/* A window of a node's contact plan (unix seconds). */
struct rollout_window {
        int64_t start, end;
};

/*
 * Pure: does a sync at now begin a new pass of the node, whose previous sync was at
 * last_sync (0: never)? Both inside one window of its plan: the same pass. Otherwise the
 * same pass when at most gap seconds apart (gap 0: every sync is a pass of its own).
 */
bool rollout_pass_is_new(int64_t last_sync, int64_t now, int64_t gap,
                         const struct rollout_window *windows, size_t n_windows);

/*
 * Pure: may the node be told to roll back (anti-rollback)? update_status is the update
 * subsystem of its last status document (may be NULL). Refused, with *ret_why, when the
 * slot it would go back to holds a security_version below the node's floor
 * (min_security_version): the node would refuse to boot it, or must not.
 */
bool rollout_revert_allowed(json_t *update_status, char *ret_why, size_t size);

enum rollout_stage_decision {
        ROLLOUT_STAGE_WAIT,     /* nodes of the stage are still on their way */
        ROLLOUT_STAGE_ADVANCE,  /* every node of the stage committed and held */
        ROLLOUT_STAGE_TIMEOUT,  /* the stage ran out of time: advance anyway */
};

/*
 * Pure: may the current stage end? stage_started is its start time. A stage ends when
 * every member of it is committed and held, or has failed, rolled back, is overdue or was
 * skipped: the failure threshold, checked first, decides whether failures halt the
 * rollout; failures it tolerates do not hold the stage up. A stage with a member still on
 * its way (pending, told, installing, or committed but not held) waits, until its timeout:
 * a duration since the stage began, or N passes of every member still on its way since it
 * was told (a member never told has none: only a duration ends a stage it never reaches).
 */
enum rollout_stage_decision rollout_stage_decide(const struct rollout_member *members, size_t n,
                                                 unsigned stage, const struct rollout_options *o,
                                                 int64_t stage_started, int64_t now);

/*
 * What the store keeps of one stage, updated with every member change (so that a
 * decision costs O(1), not O(members)): members by state, the committed ones that have
 * held, and the ones on their way (told, installing, committed but not held) that had
 * the stage timeout's passes since they were told ("out").
 */
struct rollout_stage_counts {
        int64_t by_state[_ROLLOUT_NODE_STATE_MAX];
        int64_t held;
        int64_t out;
};

/* Pure: what rollout_stage_decide decides, from the stage's counts. */
enum rollout_stage_decision rollout_stage_decide_counts(const struct rollout_stage_counts *c,
                                                        const struct rollout_options *o,
                                                        int64_t stage_started, int64_t now);

/* Pure: does the member count as "out" (see struct rollout_stage_counts)? */
bool rollout_member_out(const struct rollout_member *m, bool held,
                        const struct rollout_options *o);

/*
 * Pure: when will time alone change what the decisions see of this member (unix seconds;
 * 0: never, only its own syncs can)? A committed member not held yet: when its min
 * healthy time (and a success_after duration) has passed. A told or installing member
 * with a report deadline: its duration after last heard, or the end of the window of its
 * contact plan that makes it miss the deadline's passes. windows: its plan's.
 */
int64_t rollout_member_next_due(const struct rollout_member *m, const struct rollout_options *o,
                                const struct rollout_window *windows, size_t n_windows,
                                int64_t now);

/* Pure: should this member be told to install now? */
bool rollout_member_should_tell(enum rollout_state state, unsigned current_stage,
                                const struct rollout_member *m, bool blocked);

/* Pure: on abort or an auto-revert (or a commit reported after it), does the member need
 * update.rollback? */
bool rollout_member_needs_rollback(enum rollout_node_state s);

/* Pure: the operator verbs. Returns the new state, or -EINVAL (with a reason) when the
 * verb does not apply ("start" a running rollout, "resume" a halted one, ...). */
int rollout_state_after_verb(enum rollout_state cur, const char *verb, const char **ret_reason);
