/*
 * The controller's state in SQL (SQLite in WAL, the default; PostgreSQL: docs/storage.md):
 * nodes, their outbox records, command queues, contact plans and uploaded bundles. One
 * connection, used from one thread at a time.
 * The decisions it applies (what a record changes, command states) are pure, in api.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "controller/api.h"
#include "controller/rollout.h"

#define STORE_SCHEMA_VERSION 15

struct store;

/* Open (creating, migrating) the database at address (store-address.h: sqlite:PATH, a
 * path alone, postgresql://...). *ret_reason (caller frees) on failure. */
int store_open(const char *address, struct store **ret, char **ret_reason);
void store_close(struct store *s);
static inline void store_closep(struct store **s) {
        store_close(*s);
}
#define _cleanup_store_ __attribute__((cleanup(store_closep)))

int store_schema_version(struct store *s);

/*
 * Copy the SQLite store at from (sqlite:PATH, brought to the current schema first) into the
 * empty PostgreSQL store at to (postgresql://..., its schema made if the database is empty),
 * in one transaction, each table read back and compared before the commit (docs/storage.md,
 * "Moving from SQLite to PostgreSQL"). *ret_report: {"schema", "tables": [{"table",
 * "sqlite_rows", "postgresql_rows", "digest", "match"}], "rows"}. -EBUSY: from is open in
 * another process; -ENOTEMPTY: to has rows; -EINVAL: a value does not convert (the message
 * names table, row and column). Nothing is left in to on failure.
 */
int store_migrate(const char *from, const char *to, json_t **ret_report, char **ret_reason);

/*
 * Several controllers on one database (docs/storage.md, "Several controllers"): does this
 * connection lead the periodic jobs (the rollout tick, the deployments' drive, retention,
 * usage thinning)? 1: it does (taking the lead when no connection has it), 0: another
 * connection has it, -errno. The lead lasts as long as the connection: one that ends
 * (its controller killed) leaves it to the next to ask. On SQLite always 1. The jobs are
 * safe to run twice (each is a transaction under the store's one lock): the lead saves
 * the work, it is not what keeps them right.
 */
int store_lead(struct store *s);

/*
 * Apply a parsed sync in one transaction: the node row (last sync, boot, last applied
 * command, status), every record once (INSERT OR IGNORE on (node, boot_epoch, boot_id,
 * seq)) and its effects for records stored now (command results, update state, last
 * health); then up to max_commands commands with seq > last_command_seq that have not
 * expired, oldest first, as envelopes (marked sent). *ret_commands is a new array;
 * *ret_stored (may be NULL) counts the records new to the store.
 */
/*
 * Records kept per node (default STORE_RECORD_QUOTA_DEFAULT; 0: no bound): past it, a sync
 * that stored records deletes that node's oldest, droppable ones first (then the oldest
 * critical and update.* ones), so one node cannot fill the ground's disk (#18 item 7).
 */
#define STORE_RECORD_QUOTA_DEFAULT 100000
void store_set_record_quota(struct store *s, int64_t quota);

/* Pure: the priority a record of kind is stored with, when the node asked for priority:
 * only command.result and update.* records may be critical (never pruned by age); the
 * node's other "critical" ones are stored as "high". */
const char *store_record_priority(const char *kind, const char *priority);

/* The audit log (#18 item 6): who asked the operator API to change what. */
int store_audit_add(struct store *s, int64_t now, const char *who, const char *role, const char *method,
                    const char *path);
/* The newest limit entries, newest first: [{time, who, role, method, path}]. */
int store_audit_list(struct store *s, int64_t limit, json_t **ret);

/*
 * Node certificates (#18 item 3, docs/security.md). An operator's leave for the node whose
 * certificate expired to have it renewed until `until` (the node row is made if need be);
 * whether it holds at now (*ret_until, may be NULL: the time it ends); a certificate issued
 * (kept with its serial); the certificate a node synced with: 1 when it is another than
 * the last (its leave, if any, ends: the new certificate is in use), else 0.
 */
int store_node_renew_allow(struct store *s, const char *node, int64_t until, int64_t now);
int store_node_renew_allowed(struct store *s, const char *node, int64_t now, int64_t *ret_until);
/*
 * Revoke every certificate of node made (notBefore) at or before `before` (#18 item 3): a
 * stolen key stops at the next request, whatever its serial. The time only moves forward.
 */
int store_node_certs_revoke(struct store *s, const char *node, int64_t before, int64_t now);
/* The node's revocation time into *ret (0: none). */
int store_node_certs_revoked_before(struct store *s, const char *node, int64_t *ret);
/*
 * A certificate issued to node, kept unless max_per_day (0: no bound) were issued to it
 * in the day before now: -EDQUOT then, and the certificate must not be handed out. The
 * count and the row in one transaction: the bound holds with several controllers.
 */
int store_node_cert_issued(struct store *s, const char *node, const char *serial, int64_t not_after,
                           int64_t now, bool expired_renewal, int64_t max_per_day);
/* How many certificates were issued to node after since. */
int store_node_certs_since(struct store *s, const char *node, int64_t since, int64_t *ret);

int store_sync(struct store *s, const struct sync_request *req, int64_t now, size_t max_commands,
               json_t **ret_commands, size_t *ret_stored);

/*
 * What else a sync tells of its node and needs of its row, in the sync's transaction: the
 * row is read once and the writes go with the sync's next statements (a sync is a dozen
 * statements, each round trip to PostgreSQL costs both ends: issue #22 item 5).
 */
struct store_sync_node {
        /* in */
        const char *cert_serial; /* the client certificate the node syncs with; NULL: none */
        int64_t cert_not_after;
        bool keep_trust; /* the controller hands out a trust document: keep what the node said */
        /* refuse the sync (-EKEYREVOKED, revoked_before set) when an operator revoked the
         * node's certificates made until a time at or after cert_not_before (the check the
         * server makes before a request, read here with the node's row) */
        bool check_revoked;
        int64_t cert_not_before;
        /* out (the json_t are the caller's) */
        int64_t revoked_before;
        bool cert_new; /* a certificate not seen before (an operator's leave for its renewal ends) */
        json_t *plan;  /* as store_contact_plan_get */
        /* when keep_trust (#18 item 2): the trust document the node has (-1: it never said; it
         * predates them), the id of the one it refused last ("" none), and whether this sync
         * said a refusal not said before */
        int64_t trust_version;
        char trust_refused[17];
        bool trust_newly_refused;
        /* the desired state (#19 item 3): the newest signed envelope when the node has an older
         * one (NULL: none to send, or a node that predates them), the version it refused last,
         * and whether this sync said a refusal not said before */
        json_t *desired;
        int64_t desired_refused;
        bool desired_newly_refused;
};

/* store_sync, with the rest of what the node said and the answer needs (node may be NULL). */
int store_sync_node(struct store *s, const struct sync_request *req, int64_t now, size_t max_commands,
                    struct store_sync_node *node, json_t **ret_commands, size_t *ret_stored);

/* Sign a payload: *ret_signature (caller frees) is the signature file text. */
typedef int (*store_sign_fn)(void *userdata, const char *payload, char **ret_signature,
                             char **ret_reason);

/*
 * Queue a command: the next per-node seq (1, 2, ...) is taken, the payload built and
 * signed and the row written in one IMMEDIATE transaction, so seqs never repeat, across
 * restarts too. params is borrowed. *ret (may be NULL) describes the queued command.
 */
int store_command_queue(struct store *s, const char *node, const char *action, json_t *params,
                        int64_t now, int64_t expires_in_sec, store_sign_fn sign, void *userdata,
                        json_t **ret, char **ret_reason);

/* ---- desired states (#19 item 3, docs/deployments.md) --------------------------------- */

/*
 * A new desired state for node: the next version (1, 2, ...), built from workloads (an array
 * of {"name", "spec", "deployment"?, "bundle"?}, borrowed) and checked as a node would
 * (proto/desired-state.h), each bundle named there on this controller and of the version
 * its spec pins, signed by sign (the desired state's purpose) and kept, in one IMMEDIATE
 * transaction. if_version >= 0: only over that version (-ESTALE otherwise, a lost race
 * between two operators). -EINVAL or -ENOENT with *ret_reason naming where. *ret (may be
 * NULL): {"node", "version", "workloads"}.
 */
int store_desired_set(struct store *s, const char *node, json_t *workloads, int64_t if_version, int64_t now,
                      const char *by, store_sign_fn sign, void *userdata, json_t **ret, char **ret_reason);

/*
 * The operator's view of a node's desired state: {"node", "version" (0: none), "document",
 * "created", "by", "node_version" (what the node said it has in force, null until it said),
 * "node_refused" (the last version it refused, 0 none), "report" (its last desired.state
 * record's body, or null)}. -ENOENT for an unknown node.
 */
int store_desired_get(struct store *s, const char *node, json_t **ret);

/* ---- deployments (#19 item 2, docs/deployments.md) ------------------------------------- */

/* The signer of the desired states deployments make; without one they are not driven. */
void store_set_desired_signer(struct store *s, store_sign_fn sign, void *userdata);

/*
 * Create a deployment from the operator's request (controller/deployment.h), place it on
 * nodes of its target that meet its constraints and assign their stages, in one
 * transaction; then drive it. -EINVAL (422) with *ret_reason, -EEXIST (409): the id, or a
 * live deployment of the same workload. *ret (may be NULL): store_deployment_get's view.
 */
int store_deployment_create(struct store *s, const char *text, size_t len, int64_t now, const char *by, json_t **ret,
                            char **ret_reason);
/* Its options, state, stage, counts by member state, and members. -ENOENT. */
int store_deployment_get(struct store *s, const char *id, json_t **ret);
int store_deployments_list(struct store *s, json_t **ret);
/* "pause", "resume", "delete" (its workload taken off its nodes, what a later deployment put
 * there kept). -EINVAL with *ret_reason when the verb does not apply. */
int store_deployment_verb(struct store *s, const char *id, const char *verb, int64_t now, json_t **ret,
                          char **ret_reason);
/*
 * Move every live deployment: members follow their nodes' desired.state reports (committed
 * when the workload runs healthy at the version told, failed when refused, failed or
 * unhealthy, overdue past the report deadline); the failure threshold halts (and with
 * auto_revert puts back each member's previous entry); a stage that passed lets the next
 * be told (each member's desired state gets the deployment's entry). A completed deployment
 * still follows its members that had not committed (told, installing, overdue), so a node
 * offline through it is committed once it converges. At syncs and ticks.
 */
int store_deployments_drive(struct store *s, int64_t now);

/* ---- usage metering (#19 item 5, docs/deployments.md) ------------------------------------ */

/*
 * A sync's usage.report records are counted in its transaction (store_sync): each
 * (node, meter, interval) once, whatever record key brought it, each entry under its key
 * (workload, or "app:<app>") unless a report of a later interval of it is kept already
 * (totals are cumulative); the latest of each entry is kept in usage_latest. An entry is
 * billed to a tenant only on this controller's knowledge: one naming a deployment it knows
 * that has the node as a member, to that deployment's spec "tenant" (none if it has none);
 * any other to no tenant, the node's word kept as its claimed tenant and tenant_from saying
 * why (docs/usage.md). A body that does not parse is stored as a record, counted as refused
 * for the node, and sums nothing. What is counted is never pruned with the records
 * (store_usage_thin thins it).
 *
 * Sum what was counted by q->by, filtered by q's tenant (billed, never claimed), deployment
 * and node, received in [since, until): *ret is a new array, one object per group, ordered
 * by it: {"<by>": name|null, "cpu_sec", "memory_byte_sec", "memory_gib_hours", "energy_j",
 *  "energy_wh", "link_bytes", "entries", "meters", "nodes"}, an amount an entry did not
 * carry counting 0 ("entries": entries summed, "meters": distinct (node, meter)); by
 * tenant, also "claimed_tenant": the tenant nodes claimed for usage billed to none and not
 * by a deployment of the node's (a row of its own per claimed tenant, "tenant" null), null
 * otherwise.
 */
int store_usage_sum(struct store *s, const struct usage_query *q, json_t **ret);

/*
 * Thin each node's usage reports (docs/usage.md): those received before 00:00 UTC
 * exact_days days before now's day, and then, while a node keeps more than
 * max_rows_per_node (0: no cap) entry reports, its oldest days one at a time up to today,
 * to the last report of each entry each UTC day. Sums over windows whose edges are each at
 * 00:00 UTC, or after the node's thinned part, stay exact. One transaction per node.
 */
#define STORE_USAGE_EXACT_DAYS_DEFAULT 35
#define STORE_USAGE_ROWS_PER_NODE_DEFAULT 200000
int store_usage_thin(struct store *s, int64_t now, int64_t exact_days, int64_t max_rows_per_node,
                     int64_t *ret_deleted);

/* Operator views (new references). -ENOENT for an unknown node. */
int store_nodes_list(struct store *s, json_t **ret);
int store_node_show(struct store *s, const char *node, json_t **ret);
int store_commands_list(struct store *s, const char *node, json_t **ret);
int store_records_list(struct store *s, const char *node, const char *kind, size_t limit,
                       json_t **ret);
/* Number of records stored for a node. */
int store_records_count(struct store *s, const char *node, int64_t *ret);

/*
 * Retention: delete up to `limit` records received before `before` (unix seconds), oldest
 * first, in one short transaction. Kept: critical records (command results, update
 * outcomes) and every update.* record, the records a sync acts on (node update state,
 * rollouts): one stored again after its removal (its ack was lost, the node sent it
 * again) would act twice. What is deleted (reports, workload events) only adds a row.
 * *ret_deleted (may be NULL) counts them.
 */
int store_records_prune(struct store *s, int64_t before, size_t limit, int64_t *ret_deleted);

/* Contact plans; an unknown node or no plan gives {"windows":[]} (always open). */
int store_contact_plan_set(struct store *s, const char *node, json_t *plan, int64_t now);
int store_contact_plan_get(struct store *s, const char *node, json_t **ret);

struct store_bundle {
        char id[API_BUNDLE_ID_MAX + 1];
        char version[129];
        int64_t size;
        char sha256[65];
};

/* -EEXIST when a bundle of that id with another sha256 is there; 0 if added or the same. */
int store_bundle_add(struct store *s, const struct store_bundle *b, const char *signer,
                     bool verified, int64_t now);
int store_bundle_get(struct store *s, const char *id, struct store_bundle *ret);
/*
 * Whether the ground ever sent node a bundle to fetch: an update.install command for it
 * (by bundle_id, or by a URL of this controller's /v1/bundles/{id}), in any state (a node
 * repairs a slot from the bundle that installed it, long after), a rollout of it that
 * includes the node, or a desired state of the node that names it. 1 yes, 0 no, or -errno. Any node may not download any bundle (#18).
 */
int store_node_may_fetch_bundle(struct store *s, const char *node, const char *bundle);
int store_bundles_list(struct store *s, json_t **ret);

/* ---- groups and staged rollouts (docs/rollouts.md) ----------------------------------- */

/*
 * The signer for the commands that rollouts queue (update.install, update.rollback) from
 * store_sync and the rollout verbs. Without one, rollouts are stored but not driven.
 */
void store_set_command_signer(struct store *s, store_sign_fn sign, void *userdata);

/*
 * A node's syncs at most gap_sec apart (or inside one window of its contact plan) are one
 * pass of it (rollout_pass_is_new); rollout gates count passes. Default 0: every sync.
 */
void store_set_pass_gap(struct store *s, int64_t gap_sec);

/*
 * Move every running or paused rollout on at now: the time gates (durations, report
 * deadlines, min healthy time) of rollouts no member of which syncs. A sync evaluates
 * only the rollouts of the syncing node; the server calls this every few seconds.
 */
int store_rollouts_tick(struct store *s, int64_t now);

/*
 * For tests: recount the rollout's members one by one (as the pure decisions see them)
 * and compare with the per-stage counts the store keeps in every member change: 0 when
 * equal, -EBADMSG with *ret_reason (caller frees) naming the first difference. For a
 * running or paused rollout the held and out counts, the current stage's decision and
 * "no member left due" are compared too, as of a store_rollouts_tick at now.
 */
int store_rollout_counts_check(struct store *s, const char *id, int64_t now, char **ret_reason);

/* Put a node in a group (registering the node), or take it out (-ENOENT if not in it). */
int store_node_group_add(struct store *s, const char *node, const char *group, int64_t now);
int store_node_group_remove(struct store *s, const char *node, const char *group);
/* The node's groups, a new array of strings; an unknown node has none. */
int store_node_groups(struct store *s, const char *node, json_t **ret);

/*
 * Create a rollout of o->bundle_id over o->target ("all" or a group): the members are the
 * target's nodes not held by another created, running or paused rollout, each given its
 * stage (rollout_assign_stages) now and for good. o->id "" is named "rollout-N".
 * -ENOENT (unknown bundle), -EEXIST (the id is taken), -ENODATA (no node to update), each
 * with *ret_reason. *ret is the rollout as store_rollout_show gives it.
 */
int store_rollout_create(struct store *s, const struct rollout_options *o, int64_t now,
                         json_t **ret, char **ret_reason);

/*
 * "start", "pause", "resume" or "abort" (rollout_state_after_verb): -ENOENT for an
 * unknown rollout, -EINVAL with *ret_reason when the verb does not apply. Abort cancels
 * the install commands not yet sent and marks the nodes that got one for update.rollback
 * (queued at their next sync).
 */
int store_rollout_verb(struct store *s, const char *id, const char *verb, int64_t now, json_t **ret,
                       char **ret_reason);

/*
 * A rollout in full: options, state, stage by stage counts, failures and threshold, the
 * events (stage started, passed, timed out, halted...) and every member. The time gates
 * are evaluated first (at now), so a status read moves a stage whose time has come.
 */
int store_rollout_show(struct store *s, const char *id, int64_t now, json_t **ret);
int store_rollouts_list(struct store *s, int64_t now, json_t **ret);

/*
 * The figures GET /metrics shows (metrics_render documents the shape; "poll_interval" is
 * the server's to add): every node with its last sync, syncs, passes and last health
 * report; records by kind, and their lag (received minus created) over the last hour;
 * commands by state; rollouts with their state, stage and members by state.
 */
int store_metrics_collect(struct store *s, int64_t now, json_t **ret);
