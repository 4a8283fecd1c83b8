/* The controller's store, its core: the schema and its migrations, open and close,
 * the settings, the node rows every concern shares. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/command.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/rollout.h"
#include "controller/store-address.h"
#include "controller/store-backend.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"

/* ---- schema ------------------------------------------------------------------------- */

/* Migration i brings the schema from version i to i + 1. Never edit one; append. */
/* The SET clause that adds (sign "+") or takes away ("-") one member row ("new" or
 * "old") from its stage's counts: one text for the three triggers of schema 5. */
#define STAGE_COUNTS_DELTA(sign, row)                                                              \
        " pending = pending " sign " (" row ".state = 'pending'), "                                \
        " told = told " sign " (" row ".state = 'told'), "                                         \
        " installing = installing " sign " (" row ".state = 'installing'), "                       \
        " committed = committed " sign " (" row ".state = 'committed'), "                          \
        " failed = failed " sign " (" row ".state = 'failed'), "                                   \
        " rolled_back = rolled_back " sign " (" row ".state = 'rolled-back'), "                    \
        " skipped = skipped " sign " (" row ".state = 'skipped'), "                                \
        " overdue = overdue " sign " (" row ".state = 'overdue'), "                                \
        " held = held " sign " (" row ".state = 'committed' AND " row ".held), "                   \
        " out = out " sign " (" row ".out AND (" row ".state IN ('told', 'installing') OR "        \
        " (" row ".state = 'committed' AND NOT " row ".held))) "

static const char *const migrations[STORE_SCHEMA_VERSION] = {
        "CREATE TABLE nodes ("
        " id TEXT PRIMARY KEY NOT NULL,"
        " created INTEGER NOT NULL,"
        " last_sync INTEGER,"
        " syncs INTEGER NOT NULL DEFAULT 0,"
        " boot_epoch INTEGER,"
        " boot_id TEXT,"
        " last_command_seq INTEGER NOT NULL DEFAULT 0,"
        " next_command_seq INTEGER NOT NULL DEFAULT 1,"
        " status TEXT, status_time INTEGER,"
        " health TEXT, health_time INTEGER,"
        " update_kind TEXT, update_body TEXT, update_time INTEGER,"
        " contact_plan TEXT);"
        "CREATE TABLE records ("
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " boot_epoch INTEGER NOT NULL,"
        " boot_id TEXT NOT NULL,"
        " seq INTEGER NOT NULL,"
        " kind TEXT NOT NULL,"
        " priority TEXT NOT NULL,"
        " time_usec INTEGER NOT NULL,"
        " received INTEGER NOT NULL,"
        " record TEXT NOT NULL,"
        " PRIMARY KEY (node, boot_epoch, boot_id, seq));"
        "CREATE INDEX records_by_kind ON records(node, kind);"
        "CREATE TABLE commands ("
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " seq INTEGER NOT NULL,"
        " action TEXT NOT NULL,"
        " params TEXT NOT NULL,"
        " payload TEXT NOT NULL,"
        " signature TEXT NOT NULL,"
        " created INTEGER NOT NULL,"
        " not_before INTEGER NOT NULL,"
        " expires INTEGER NOT NULL,"
        " state TEXT NOT NULL DEFAULT 'queued',"
        " sent_time INTEGER,"
        " result_time INTEGER,"
        " result_reason TEXT,"
        " PRIMARY KEY (node, seq));"
        "CREATE TABLE bundles ("
        " id TEXT PRIMARY KEY NOT NULL,"
        " version TEXT NOT NULL,"
        " size INTEGER NOT NULL,"
        " sha256 TEXT NOT NULL,"
        " signer TEXT,"
        " verified INTEGER NOT NULL,"
        " uploaded INTEGER NOT NULL);",
        /* 2: groups and staged rollouts (docs/rollouts.md) */
        "CREATE TABLE node_groups ("
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " name TEXT NOT NULL,"
        " added INTEGER NOT NULL,"
        " PRIMARY KEY (node, name));"
        "CREATE INDEX node_groups_by_name ON node_groups(name);"
        "CREATE TABLE rollouts ("
        " id TEXT PRIMARY KEY NOT NULL,"
        " bundle_id TEXT NOT NULL,"
        " target TEXT NOT NULL,"
        " stages TEXT NOT NULL,"
        " success_after TEXT NOT NULL,"
        " stage_timeout TEXT NOT NULL,"
        " max_failures TEXT NOT NULL,"
        " state TEXT NOT NULL DEFAULT 'created',"
        " current_stage INTEGER NOT NULL DEFAULT 0,"
        " stage_started INTEGER,"
        " stage_contacts INTEGER NOT NULL DEFAULT 0,"
        " created INTEGER NOT NULL,"
        " started INTEGER,"
        " finished INTEGER,"
        " reason TEXT);"
        "CREATE TABLE rollout_nodes ("
        " rollout TEXT NOT NULL REFERENCES rollouts(id),"
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " stage INTEGER NOT NULL,"
        " state TEXT NOT NULL DEFAULT 'pending',"
        " install_seq INTEGER,"
        " told_time INTEGER,"
        " committed_time INTEGER,"
        " contacts_since_commit INTEGER NOT NULL DEFAULT 0,"
        " needs_rollback INTEGER NOT NULL DEFAULT 0,"
        " rollback_seq INTEGER,"
        " reason TEXT,"
        " updated INTEGER NOT NULL,"
        " PRIMARY KEY (rollout, node));"
        "CREATE INDEX rollout_nodes_by_node ON rollout_nodes(node);"
        "CREATE TABLE rollout_events ("
        " rollout TEXT NOT NULL REFERENCES rollouts(id),"
        " time INTEGER NOT NULL,"
        " stage INTEGER,"
        " event TEXT NOT NULL,"
        " detail TEXT NOT NULL);"
        "CREATE INDEX rollout_events_by_rollout ON rollout_events(rollout);"
        "CREATE TABLE node_bundle_blocks ("
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " bundle_id TEXT NOT NULL,"
        " time INTEGER NOT NULL,"
        " reason TEXT,"
        " PRIMARY KEY (node, bundle_id));",
        /* 3: record retention walks the records it may delete by age */
        "CREATE INDEX records_by_received ON records(received) WHERE priority != 'critical';",
        /* 4: a node's own passes; report deadlines, min healthy time, auto-revert, late
         * members (docs/rollouts.md). rollout_nodes.contacts_since_commit counts the node's
         * passes after its commit from now on; rollouts.stage_contacts is no longer used. */
        "ALTER TABLE nodes ADD COLUMN passes INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE rollouts ADD COLUMN min_healthy_time INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE rollouts ADD COLUMN report_deadline TEXT NOT NULL DEFAULT '0';"
        "ALTER TABLE rollouts ADD COLUMN auto_revert INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE rollout_nodes ADD COLUMN passes_since_told INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE rollout_nodes ADD COLUMN passes_unheard INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE rollout_nodes ADD COLUMN last_heard INTEGER;"
        "ALTER TABLE rollout_nodes ADD COLUMN order_key TEXT;"
        "CREATE INDEX rollout_nodes_by_state ON rollout_nodes(rollout, state);"
        "CREATE INDEX rollout_nodes_by_key ON rollout_nodes(rollout, order_key);",
        /* 5: driving a rollout costs O(the syncing node's memberships): per-stage counts
         * kept by triggers in the transaction of every member change; a member's "held"
         * and "out" flags (struct rollout_stage_counts) kept by the store; "due", the time
         * at which time alone changes the member (rollout_member_next_due), indexed so
         * that the tick touches only those. due 0: refreshed at the first tick. */
        "CREATE TABLE rollout_stage_counts (rollout TEXT NOT NULL REFERENCES rollouts(id), "
        "stage INTEGER NOT NULL, "
        "pending INTEGER NOT NULL DEFAULT 0, "
        "told INTEGER NOT NULL DEFAULT 0, "
        "installing INTEGER NOT NULL DEFAULT 0, "
        "committed INTEGER NOT NULL DEFAULT 0, "
        "failed INTEGER NOT NULL DEFAULT 0, "
        "rolled_back INTEGER NOT NULL DEFAULT 0, "
        "skipped INTEGER NOT NULL DEFAULT 0, "
        "overdue INTEGER NOT NULL DEFAULT 0, "
        "held INTEGER NOT NULL DEFAULT 0, out INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (rollout, stage)) WITHOUT ROWID;"
        "ALTER TABLE rollout_nodes ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE rollout_nodes ADD COLUMN out INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE rollout_nodes ADD COLUMN due INTEGER;"
        "CREATE INDEX rollout_nodes_by_due ON rollout_nodes(due) WHERE due IS NOT NULL;"
        "CREATE TRIGGER rollout_nodes_count_insert AFTER INSERT ON rollout_nodes BEGIN "
        " INSERT OR IGNORE INTO rollout_stage_counts (rollout, stage) "
        " VALUES (new.rollout, new.stage); "
        " UPDATE rollout_stage_counts SET " STAGE_COUNTS_DELTA(
                "+",
                "new") " WHERE rollout = new.rollout AND stage = new.stage; END;"
                       "CREATE TRIGGER rollout_nodes_count_update "
                       "AFTER UPDATE OF rollout, stage, state, held, out ON rollout_nodes "
                       "WHEN old.rollout IS NOT new.rollout OR old.stage IS NOT new.stage OR "
                       "old.state IS NOT new.state OR old.held IS NOT new.held OR old.out IS NOT "
                       "new.out BEGIN "
                       " UPDATE rollout_stage_counts SET " STAGE_COUNTS_DELTA(
                               "-",
                               "old") " WHERE rollout = old.rollout AND stage = old.stage; "
                                      " INSERT OR IGNORE INTO rollout_stage_counts (rollout, "
                                      "stage) "
                                      " VALUES (new.rollout, new.stage); "
                                      " UPDATE rollout_stage_counts SET " STAGE_COUNTS_DELTA(
                                              "+",
                                              "new") " WHERE rollout = new.rollout AND stage = "
                                                     "new.stage; END;"
                                                     "CREATE TRIGGER rollout_nodes_count_delete "
                                                     "AFTER DELETE ON rollout_nodes BEGIN "
                                                     " UPDATE rollout_stage_counts "
                                                     "SET " STAGE_COUNTS_DELTA(
                                                             "-",
                                                             "old") " WHERE rollout = old.rollout "
                                                                    "AND stage = old.stage; END;"
                                                                    "INSERT INTO "
                                                                    "rollout_stage_counts SELECT "
                                                                    "rollout, stage, "
                                                                    "sum(state = 'pending'), "
                                                                    "sum(state = 'told'), "
                                                                    "sum(state = 'installing'), "
                                                                    "sum(state = 'committed'), "
                                                                    "sum(state = 'failed'), "
                                                                    "sum(state = 'rolled-back'), "
                                                                    "sum(state = 'skipped'), "
                                                                    "sum(state = 'overdue'), "
                                                                    "0, 0 FROM rollout_nodes GROUP "
                                                                    "BY rollout, stage;"
                                                                    "UPDATE rollout_nodes SET due "
                                                                    "= 0 WHERE state IN ('told', "
                                                                    "'installing', 'committed') "
                                                                    "AND rollout IN (SELECT id "
                                                                    "FROM rollouts WHERE state IN "
                                                                    "('running', 'paused'));",
        /* 6: a node's link epoch (#18 item 5): a new one means it lost its link state */
        "ALTER TABLE nodes ADD COLUMN link_epoch TEXT;"
        "ALTER TABLE nodes ADD COLUMN link_resets INTEGER NOT NULL DEFAULT 0;",
        /* 7: the audit log: every change an operator asked for, and who asked */
        "CREATE TABLE audit ("
        " id INTEGER PRIMARY KEY,"
        " time INTEGER NOT NULL,"
        " who TEXT NOT NULL,"
        " role TEXT NOT NULL,"
        " method TEXT NOT NULL,"
        " path TEXT NOT NULL);",
        /* 8: node certificates (#18 item 3): the one a node syncs with, those issued to it,
         * and an operator's leave for an expired one to be renewed */
        "ALTER TABLE nodes ADD COLUMN cert_serial TEXT;"
        "ALTER TABLE nodes ADD COLUMN cert_not_after INTEGER;"
        "ALTER TABLE nodes ADD COLUMN renew_expired_until INTEGER;"
        "CREATE TABLE node_certs ("
        " id INTEGER PRIMARY KEY,"
        " node TEXT NOT NULL,"
        " serial TEXT NOT NULL,"
        " issued INTEGER NOT NULL,"
        " not_after INTEGER NOT NULL,"
        " expired_renewal INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX node_certs_by_node ON node_certs(node);",
        /* 9: the trust document each node has (#18 item 2): NULL until it says */
        "ALTER TABLE nodes ADD COLUMN trust_version INTEGER;"
        "ALTER TABLE nodes ADD COLUMN trust_refused TEXT;",
        /* 10: a node's certificates made up to this time are refused (#18 item 3) */
        "ALTER TABLE nodes ADD COLUMN certs_revoked_before INTEGER;",
        /* 11: desired states (#19 item 3): every version signed for a node, and what the
         * node said it has in force and refused last (NULL until it says) */
        "CREATE TABLE desired_states ("
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " version INTEGER NOT NULL,"
        " document TEXT NOT NULL,"
        " signature TEXT NOT NULL,"
        " created INTEGER NOT NULL,"
        " by TEXT,"
        " PRIMARY KEY (node, version));"
        "ALTER TABLE nodes ADD COLUMN desired_version INTEGER;"
        "ALTER TABLE nodes ADD COLUMN desired_refused INTEGER;",
        /* 12: deployments (#19 item 2): the request as made, and each member's way */
        "CREATE TABLE deployments ("
        " id TEXT PRIMARY KEY NOT NULL,"
        " workload TEXT NOT NULL,"
        " request TEXT NOT NULL,"
        " state TEXT NOT NULL,"
        " current_stage INTEGER NOT NULL DEFAULT 0,"
        " stage_started INTEGER,"
        " created INTEGER NOT NULL,"
        " finished INTEGER,"
        " by TEXT,"
        " reason TEXT);"
        "CREATE TABLE deployment_nodes ("
        " deployment TEXT NOT NULL REFERENCES deployments(id),"
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " stage INTEGER NOT NULL,"
        " state TEXT NOT NULL DEFAULT 'pending',"
        " told_version INTEGER, told_time INTEGER, told_passes INTEGER,"
        " committed_time INTEGER, committed_passes INTEGER,"
        " previous TEXT,"
        " reason TEXT,"
        " PRIMARY KEY (deployment, node));",
        /* 13: usage metering (#19 item 5, docs/deployments.md): each interval of a node's
         * meter once, its entries once each (never pruned with the records that brought
         * them), and per node what was counted and what was refused */
        "CREATE TABLE usage_reports ("
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " meter TEXT NOT NULL,"
        " interval INTEGER NOT NULL,"
        " start_time INTEGER NOT NULL,"
        " end_time INTEGER NOT NULL,"
        " duration_sec REAL NOT NULL,"
        " board_energy_j REAL,"
        " entries INTEGER NOT NULL,"
        " received INTEGER NOT NULL,"
        " record_boot_epoch INTEGER NOT NULL, record_boot_id TEXT NOT NULL, record_seq INTEGER NOT NULL,"
        " PRIMARY KEY (node, meter, interval));"
        "CREATE TABLE usage ("
        " node TEXT NOT NULL REFERENCES nodes(id),"
        " meter TEXT NOT NULL,"
        " interval INTEGER NOT NULL,"
        " entry TEXT NOT NULL,"
        " workload TEXT, tenant TEXT, deployment TEXT, app TEXT,"
        " tenant_from TEXT,"
        " cpu_sec REAL, memory_byte_sec REAL, energy_j REAL, link_bytes INTEGER,"
        " start_time INTEGER NOT NULL,"
        " end_time INTEGER NOT NULL,"
        " received INTEGER NOT NULL,"
        " PRIMARY KEY (node, meter, interval, entry));"
        "CREATE INDEX usage_by_entry ON usage(node, meter, entry, interval);"
        "CREATE INDEX usage_by_received ON usage(received);"
        "CREATE INDEX usage_by_tenant ON usage(tenant, received);"
        "CREATE INDEX usage_by_deployment ON usage(deployment, received);"
        "ALTER TABLE nodes ADD COLUMN usage_reports INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE nodes ADD COLUMN usage_refused INTEGER NOT NULL DEFAULT 0;",
        /* 14: usage (docs/usage.md): a tenant only on the controller's own knowledge (the
         * node's word kept as claimed_tenant; rows of 13 billed on a node's word, or to a
         * deployment the node is no member of, bill no tenant now); the latest report of
         * each entry, kept on insert; a covering index for windows; how far each node's
         * reports are thinned */
        "ALTER TABLE usage ADD COLUMN claimed_tenant TEXT;"
        "UPDATE usage SET claimed_tenant = tenant, tenant = NULL, tenant_from = CASE "
        " WHEN deployment IS NOT NULL THEN 'unknown-deployment' WHEN tenant IS NOT NULL THEN "
        " 'unverified-node-claim' ELSE 'none' END WHERE tenant_from = 'node';"
        "UPDATE usage SET tenant = NULL, tenant_from = 'deployment-not-on-node' WHERE tenant_from = 'deployment' "
        " AND NOT EXISTS (SELECT 1 FROM deployment_nodes dn WHERE dn.deployment = usage.deployment "
        " AND dn.node = usage.node);"
        "CREATE TABLE usage_latest ("
        " node TEXT NOT NULL,"
        " meter TEXT NOT NULL,"
        " entry TEXT NOT NULL,"
        " interval INTEGER NOT NULL,"
        " received INTEGER NOT NULL,"
        " PRIMARY KEY (node, meter, entry)) WITHOUT ROWID;"
        /* max() makes the bare column (received) the one of the row of the greatest interval */
        "INSERT INTO usage_latest (node, meter, entry, interval, received) "
        " SELECT node, meter, entry, max(interval), received FROM usage GROUP BY node, meter, entry;"
        "DROP INDEX usage_by_entry;"
        "DROP INDEX usage_by_tenant;"
        "DROP INDEX usage_by_deployment;"
        "CREATE INDEX usage_window ON usage(node, meter, entry, received, interval);"
        "ALTER TABLE nodes ADD COLUMN usage_thinned_before INTEGER;",
        /* 15: a record is stored packed (store-record-form.h, docs/storage.md "A record as
         * stored"), a blob in records.record, and so is a node's last health report
         * (nodes.health): SQLite keeps a blob in a column declared TEXT as it is, so the
         * tables stay; what was stored before stays text, read as it is (records until
         * retention takes them, a node's health until its next report). The version alone keeps a controller that
         * would read a blob as text off the store. */
        "SELECT 1;",
};

static int schema_version_read(struct store *s, int *ret) {
        int64_t v = 0;
        int r = store_get_int64(s, &v, "SELECT version FROM schema_version", "");
        if (r < 0)
                return r;
        *ret = (int) v;
        return 0;
}

static int migrate(struct store *s, char **ret_reason) {
        for (;;) {
                int r = store_begin(s);
                if (r < 0)
                        return message_set(ret_reason, r, "cannot start a migration");
                _cleanup_transaction_ struct store *guard = s;
                /* In the transaction, under its lock: controllers started at once on an
                 * empty database make the table (and the schema) one after the other, never
                 * side by side (PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe so). */
                r = store_script(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
                if (r < 0)
                        return message_set(ret_reason, r, "cannot create the schema_version table");
                int version;
                r = schema_version_read(s, &version);
                if (r < 0)
                        return message_set(ret_reason, r, "cannot read the schema version");
                if (version > STORE_SCHEMA_VERSION)
                        return message_set(ret_reason, -EPROTO,
                                           "the database has schema version %d; this controller "
                                           "knows up to %d (a newer controller made it)",
                                           version, STORE_SCHEMA_VERSION);
                if (version == STORE_SCHEMA_VERSION)
                        return commit(&guard);
                /* a backend with a schema of its own (PostgreSQL) makes an empty database the
                 * current version in one step */
                const char *schema = version == 0 && s->backend->schema ? s->backend->schema : NULL;
                /* and its own migrations from the version its schema started at */
                const char *step = migrations[version];
                if (s->backend->migrations && version >= s->backend->migrations_from)
                        step = s->backend->migrations[version - s->backend->migrations_from];
                r = store_script(s, schema ? schema : step);
                if (r < 0)
                        return message_set(ret_reason, r, "migration to schema version %d failed",
                                           version + 1);
                if (schema)
                        version = STORE_SCHEMA_VERSION - 1;
                /* usage.report records a controller of before 13 kept as records only
                 * (counted with the schema of now: a store that counted none yet) */
                else if (version + 1 == 14 && (r = store_usage_backfill(s)) < 0)
                        return message_set(ret_reason, r, "migration to schema version 14: cannot count "
                                                          "the usage records already stored");
                char sql[128];
                snprintf(sql, sizeof(sql),
                         "DELETE FROM schema_version; "
                         "INSERT INTO schema_version VALUES (%d)",
                         version + 1);
                r = store_script(s, sql);
                if (r < 0)
                        return message_set(ret_reason, r, "cannot record schema version %d",
                                           version + 1);
                r = commit(&guard);
                if (r < 0)
                        return message_set(ret_reason, r, "cannot commit schema version %d",
                                           version + 1);
                log_info("store: schema at version %d", version + 1);
        }
}

int store_open(const char *address, struct store **ret, char **ret_reason) {
        struct store_address where;
        int r = store_address_parse(address, &where, ret_reason);
        if (r < 0)
                return r;
#if HAVE_LIBPQ
        const struct store_backend *backend =
                where.kind == STORE_POSTGRESQL ? &store_backend_postgresql : &store_backend_sqlite;
#else
        if (where.kind != STORE_SQLITE)
                return message_set(ret_reason, -EPROTONOSUPPORT,
                                   "a postgresql:// database: this orbit-controller was built without PostgreSQL");
        const struct store_backend *backend = &store_backend_sqlite;
#endif
        struct store *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        _cleanup_store_ struct store *owned = s;
        s->record_quota = STORE_RECORD_QUOTA_DEFAULT;
        s->backend = backend;
        r = s->backend->open(s, where.target, ret_reason);
        if (r < 0)
                return r;
        r = migrate(s, ret_reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(owned);
        return 0;
}

void store_close(struct store *s) {
        if (!s)
                return;
        if (s->backend)
                s->backend->close(s);
        free(s);
}

int store_lead(struct store *s) {
        if (!s->backend->lead)
                return 1;
        int64_t v = 0;
        int r = store_get_int64(s, &v, s->backend->lead, "");
        if (r < 0)
                return r;
        return r > 0 && v != 0;
}

int store_schema_version(struct store *s) {
        int v;
        int r = schema_version_read(s, &v);
        return r < 0 ? r : v;
}

/* ---- helpers ------------------------------------------------------------------------ */

int store_node_ensure(struct store *s, const char *node, int64_t now) {
        return store_exec(s, "INSERT OR IGNORE INTO nodes (id, created) VALUES (?, ?)", "ti", node,
                          now);
}

int store_node_exists(struct store *s, const char *node) {
        return store_get_int64(s, NULL, "SELECT 1 FROM nodes WHERE id = ?", "t", node);
}

void store_set_pass_gap(struct store *s, int64_t gap_sec) {
        s->pass_gap = gap_sec < 0 ? 0 : gap_sec;
}

void store_set_command_signer(struct store *s, store_sign_fn sign, void *userdata) {
        s->sign = sign;
        s->sign_userdata = userdata;
}
