/* The controller's SQLite store: schema and migrations, syncs, commands, views. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "command.h"
#include "log.h"
#include "macro.h"
#include "message.h"
#include "rollout.h"
#include "store.h"

struct store {
        sqlite3 *db;
        int64_t pass_gap; /* syncs of a node at most this far apart are one pass */
        /* The rollouts a sync changed something in (a member's state, a member now held):
         * the only ones it evaluates, so a sync costs O(the node's memberships) unless it
         * moved something. Time gates move at store_rollouts_tick. */
        char dirty[16][ROLLOUT_ID_MAX + 1];
        size_t n_dirty;
        bool dirty_overflow;
        store_sign_fn sign; /* for the commands rollouts queue; NULL: rollouts not driven */
        void *sign_userdata;
};

static void finalizep(sqlite3_stmt **st) {
        if (*st)
                (void) sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(finalizep)

/* SQLite result codes to errno: busy and full are worth telling apart. */
static int sqlite_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

static int db_fail(struct store *s, int rc, const char *what) {
        log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
        return sqlite_errno(rc);
}

static int exec_sql(struct store *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                log_error("store: %s: %s", sql, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return sqlite_errno(rc);
        }
        return 0;
}

static int prepare(struct store *s, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(s->db, sql, -1, ret, NULL);
        if (rc != SQLITE_OK)
                return db_fail(s, rc, sql);
        return 0;
}

/* Step a statement that returns no rows. */
static int step_done(struct store *s, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, sqlite3_sql(st));
        return 0;
}

static void rollbackp(struct store **s) {
        if (*s)
                (void) exec_sql(*s, "ROLLBACK");
}
/* A transaction rolled back unless committed with commit() (which clears the guard). */
#define _cleanup_transaction_ _cleanup_(rollbackp)

static int commit(struct store **guard) {
        int r = exec_sql(*guard, "COMMIT");
        if (r >= 0)
                *guard = NULL;
        return r;
}

/* ---- schema ------------------------------------------------------------------------- */

/* Migration i brings the schema from version i to i + 1. Never edit one; append. */
/* The SET clause that adds (sign "+") or takes away ("-") one member row ("new" or
 * "old") from its stage's counts: one text for the three triggers of schema 5. */
#define STAGE_COUNTS_DELTA(sign, row) \
        " pending = pending " sign " (" row ".state = 'pending'), " \
        " told = told " sign " (" row ".state = 'told'), " \
        " installing = installing " sign " (" row ".state = 'installing'), " \
        " committed = committed " sign " (" row ".state = 'committed'), " \
        " failed = failed " sign " (" row ".state = 'failed'), " \
        " rolled_back = rolled_back " sign " (" row ".state = 'rolled-back'), " \
        " skipped = skipped " sign " (" row ".state = 'skipped'), " \
        " overdue = overdue " sign " (" row ".state = 'overdue'), " \
        " held = held " sign " (" row ".state = 'committed' AND " row ".held), " \
        " out = out " sign " (" row ".out AND (" row ".state IN ('told', 'installing') OR " \
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
        " UPDATE rollout_stage_counts SET "
        STAGE_COUNTS_DELTA("+", "new")
        " WHERE rollout = new.rollout AND stage = new.stage; END;"
        "CREATE TRIGGER rollout_nodes_count_update "
        "AFTER UPDATE OF rollout, stage, state, held, out ON rollout_nodes "
        "WHEN old.rollout IS NOT new.rollout OR old.stage IS NOT new.stage OR "
        "old.state IS NOT new.state OR old.held IS NOT new.held OR old.out IS NOT new.out BEGIN "
        " UPDATE rollout_stage_counts SET "
        STAGE_COUNTS_DELTA("-", "old")
        " WHERE rollout = old.rollout AND stage = old.stage; "
        " INSERT OR IGNORE INTO rollout_stage_counts (rollout, stage) "
        " VALUES (new.rollout, new.stage); "
        " UPDATE rollout_stage_counts SET "
        STAGE_COUNTS_DELTA("+", "new")
        " WHERE rollout = new.rollout AND stage = new.stage; END;"
        "CREATE TRIGGER rollout_nodes_count_delete AFTER DELETE ON rollout_nodes BEGIN "
        " UPDATE rollout_stage_counts SET "
        STAGE_COUNTS_DELTA("-", "old")
        " WHERE rollout = old.rollout AND stage = old.stage; END;"
        "INSERT INTO rollout_stage_counts SELECT rollout, stage, "
        "sum(state = 'pending'), "
        "sum(state = 'told'), "
        "sum(state = 'installing'), "
        "sum(state = 'committed'), "
        "sum(state = 'failed'), "
        "sum(state = 'rolled-back'), "
        "sum(state = 'skipped'), "
        "sum(state = 'overdue'), "
        "0, 0 FROM rollout_nodes GROUP BY rollout, stage;"
        "UPDATE rollout_nodes SET due = 0 WHERE state IN ('told', 'installing', 'committed') "
        "AND rollout IN (SELECT id FROM rollouts WHERE state IN ('running', 'paused'));",
};

static int schema_version_read(struct store *s, int *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT version FROM schema_version", &st);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret = sqlite3_column_int(st, 0);
                return 0;
        }
        if (rc == SQLITE_DONE) {
                *ret = 0;
                return 0;
        }
        return db_fail(s, rc, "read the schema version");
}

static int migrate(struct store *s, char **ret_reason) {
        int r = exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
        if (r < 0)
                return message_set(ret_reason, r, "cannot create the schema_version table");
        for (;;) {
                r = exec_sql(s, "BEGIN IMMEDIATE");
                if (r < 0)
                        return message_set(ret_reason, r, "cannot start a migration");
                _cleanup_transaction_ struct store *guard = s;
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
                r = exec_sql(s, migrations[version]);
                if (r < 0)
                        return message_set(ret_reason, r, "migration to schema version %d failed",
                                           version + 1);
                char sql[128];
                snprintf(sql, sizeof(sql), "DELETE FROM schema_version; "
                                           "INSERT INTO schema_version VALUES (%d)", version + 1);
                r = exec_sql(s, sql);
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

int store_open(const char *path, struct store **ret, char **ret_reason) {
        struct store *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        _cleanup_store_ struct store *owned = s;
        int rc = sqlite3_open_v2(path, &s->db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 NULL);
        if (rc != SQLITE_OK)
                return message_set(ret_reason, sqlite_errno(rc), "cannot open %s: %s", path,
                                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        (void) sqlite3_busy_timeout(s->db, 5000);
        (void) sqlite3_extended_result_codes(s->db, 1);
        int r = exec_sql(s, "PRAGMA journal_mode=WAL");
        if (r >= 0)
                r = exec_sql(s, "PRAGMA synchronous=NORMAL");
        if (r >= 0)
                r = exec_sql(s, "PRAGMA foreign_keys=ON");
        if (r < 0)
                return message_set(ret_reason, r, "cannot set up %s: %s", path,
                                   sqlite3_errmsg(s->db));
        r = migrate(s, ret_reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(owned);
        return 0;
}

void store_close(struct store *s) {
        if (!s)
                return;
        if (s->db && sqlite3_close(s->db) != SQLITE_OK)
                log_warning("store: close: %s", sqlite3_errmsg(s->db));
        free(s);
}

int store_schema_version(struct store *s) {
        int v;
        int r = schema_version_read(s, &v);
        return r < 0 ? r : v;
}

/* ---- helpers ------------------------------------------------------------------------ */

static int node_ensure(struct store *s, const char *node, int64_t now) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "INSERT OR IGNORE INTO nodes (id, created) VALUES (?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        return step_done(s, st);
}

static int node_exists(struct store *s, const char *node) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT 1 FROM nodes WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return db_fail(s, rc, "look up a node");
}

/* A stored JSON text as a value (null if absent or unparsable). */
static json_t *column_json(sqlite3_stmt *st, int i) {
        const char *text = (const char *) sqlite3_column_text(st, i);
        if (!text)
                return json_null();
        json_t *v = json_loads(text, 0, NULL);
        return v ? v : json_null();
}

static json_t *column_string_or_null(sqlite3_stmt *st, int i) {
        const char *text = (const char *) sqlite3_column_text(st, i);
        return text ? json_string(text) : json_null();
}

static json_t *column_int_or_null(sqlite3_stmt *st, int i) {
        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return json_null();
        return json_integer(sqlite3_column_int64(st, i));
}

static int bind_json(sqlite3_stmt *st, int i, json_t *v) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
                return -ENOMEM;
        sqlite3_bind_text(st, i, text, -1, free);
        return 0;
}

/* ---- sync --------------------------------------------------------------------------- */

static int apply_command_result(struct store *s, const char *node, json_t *body, int64_t now) {
        struct command_result res;
        if (command_result_parse(body, &res) < 0) {
                log_warning("store: node %s: a command.result record with a malformed body is "
                            "stored but changes no command",
                            node);
                return 0;
        }
        _cleanup_stmt_ sqlite3_stmt *get = NULL;
        int r = prepare(s, "SELECT state FROM commands WHERE node = ? AND seq = ?", &get);
        if (r < 0)
                return r;
        sqlite3_bind_text(get, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(get, 2, res.seq);
        int rc = sqlite3_step(get);
        if (rc == SQLITE_DONE) {
                log_warning("store: node %s reports a result for unknown command %lld", node,
                            (long long) res.seq);
                return 0;
        }
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "read a command");
        const char *next = command_state_after_result((const char *) sqlite3_column_text(get, 0),
                                                      res.status);
        if (!next)
                return 0;
        _cleanup_stmt_ sqlite3_stmt *set = NULL;
        r = prepare(s, "UPDATE commands SET state = ?, result_time = ?, result_reason = ? "
                       "WHERE node = ? AND seq = ?",
                    &set);
        if (r < 0)
                return r;
        sqlite3_bind_text(set, 1, next, -1, SQLITE_STATIC);
        sqlite3_bind_int64(set, 2, now);
        sqlite3_bind_text(set, 3, res.reason, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(set, 4, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(set, 5, res.seq);
        return step_done(s, set);
}

static int apply_effect(struct store *s, const struct sync_record *rec, int64_t now) {
        enum record_effect e = record_effect_of(rec->kind);
        if (e == RECORD_EFFECT_COMMAND_RESULT)
                return apply_command_result(s, rec->node, rec->body, now);
        if (e == RECORD_EFFECT_NONE)
                return 0;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s,
                        e == RECORD_EFFECT_HEALTH
                                ? "UPDATE nodes SET health = ?1, health_time = ?2 WHERE id = ?3"
                                : "UPDATE nodes SET update_body = ?1, update_time = ?2, "
                                  "update_kind = ?4 WHERE id = ?3",
                        &st);
        if (r < 0)
                return r;
        r = bind_json(st, 1, rec->body);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_text(st, 3, rec->node, -1, SQLITE_STATIC);
        if (e == RECORD_EFFECT_UPDATE)
                sqlite3_bind_text(st, 4, rec->kind, -1, SQLITE_STATIC);
        return step_done(s, st);
}

static int commands_due(struct store *s, const char *node, int64_t after_seq, int64_t now,
                        size_t max, json_t *out) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT seq, payload, signature, expires, state FROM commands "
                           "WHERE node = ? AND seq > ? ORDER BY seq",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, after_seq);
        _cleanup_stmt_ sqlite3_stmt *mark = NULL;
        r = prepare(s, "UPDATE commands SET state = ?, sent_time = coalesce(sent_time, ?) "
                       "WHERE node = ? AND seq = ?",
                    &mark);
        if (r < 0)
                return r;
        int rc;
        while (json_array_size(out) < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t seq = sqlite3_column_int64(st, 0);
                const char *state = (const char *) sqlite3_column_text(st, 4);
                bool open = streq(state, "queued") || streq(state, "sent");
                if (!open)
                        continue; /* already finished (a result came in) or expired */
                bool expired = sqlite3_column_int64(st, 3) <= now;
                if (!expired) {
                        json_t *env = command_envelope_new(
                                (uint64_t) seq, (const char *) sqlite3_column_text(st, 1),
                                (const char *) sqlite3_column_text(st, 2));
                        if (!env || json_array_append_new(out, env) < 0)
                                return -ENOMEM;
                }
                sqlite3_reset(mark);
                sqlite3_bind_text(mark, 1, expired ? "expired" : "sent", -1, SQLITE_STATIC);
                sqlite3_bind_int64(mark, 2, now);
                sqlite3_bind_text(mark, 3, node, -1, SQLITE_STATIC);
                sqlite3_bind_int64(mark, 4, seq);
                r = step_done(s, mark);
                if (r < 0)
                        return r;
        }
        if (json_array_size(out) < max && rc != SQLITE_DONE)
                return db_fail(s, rc, "read due commands");
        return 0;
}

static int node_pass_count(struct store *s, const char *node, int64_t now, bool *ret_new);

/* Note that this sync changed something in a rollout (see struct store). */
static void rollout_dirty(struct store *s, const char *rollout) {
        for (size_t i = 0; i < s->n_dirty; i++)
                if (streq(s->dirty[i], rollout))
                        return;
        if (s->n_dirty == ELEMENTSOF(s->dirty)) {
                s->dirty_overflow = true;
                return;
        }
        snprintf(s->dirty[s->n_dirty++], sizeof(s->dirty[0]), "%s", rollout);
}
static int rollouts_join_late(struct store *s, const char *node, int64_t now);
static int member_refresh_by_id(struct store *s, const char *rollout, const char *node,
                                int64_t now);
static int node_memberships_refresh(struct store *s, const char *node, int64_t now);
static int rollout_apply_record(struct store *s, const struct sync_record *rec, int64_t now);
static int rollouts_drive_node(struct store *s, const char *node, int64_t now);
static int rollout_apply_status(struct store *s, const char *node, json_t *status, int64_t now);

int store_sync(struct store *s, const struct sync_request *req, int64_t now,
               size_t max_commands, json_t **ret_commands, size_t *ret_stored) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = node_ensure(s, req->node, now);
        if (r < 0)
                return r;
        s->n_dirty = 0;
        s->dirty_overflow = false;
        /* Before last_sync moves: the pass is decided against the previous sync. */
        bool new_pass = false;
        r = node_pass_count(s, req->node, now, &new_pass);
        if (r < 0)
                return r;

        _cleanup_stmt_ sqlite3_stmt *node_st = NULL;
        r = prepare(s, "UPDATE nodes SET last_sync = ?1, syncs = syncs + 1, boot_epoch = ?2, "
                       "boot_id = ?3, last_command_seq = ?4, "
                       "status = coalesce(?5, status), "
                       "status_time = CASE WHEN ?5 IS NULL THEN status_time ELSE ?1 END "
                       "WHERE id = ?6",
                    &node_st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(node_st, 1, now);
        sqlite3_bind_int64(node_st, 2, req->boot_epoch);
        sqlite3_bind_text(node_st, 3, req->boot_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(node_st, 4, req->last_command_seq);
        if (req->status) {
                r = bind_json(node_st, 5, req->status);
                if (r < 0)
                        return r;
        }
        sqlite3_bind_text(node_st, 6, req->node, -1, SQLITE_STATIC);
        r = step_done(s, node_st);
        if (r < 0)
                return r;

        _cleanup_stmt_ sqlite3_stmt *ins = NULL;
        r = prepare(s, "INSERT OR IGNORE INTO records (node, boot_epoch, boot_id, seq, kind, "
                       "priority, time_usec, received, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &ins);
        if (r < 0)
                return r;
        size_t stored = 0;
        for (size_t i = 0; i < req->n_records; i++) {
                const struct sync_record *rec = &req->records[i];
                sqlite3_reset(ins);
                sqlite3_clear_bindings(ins);
                sqlite3_bind_text(ins, 1, rec->node, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 2, rec->boot_epoch);
                sqlite3_bind_text(ins, 3, rec->boot_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 4, rec->seq);
                sqlite3_bind_text(ins, 5, rec->kind, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 6, rec->priority, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 7, rec->time_usec);
                sqlite3_bind_int64(ins, 8, now);
                r = bind_json(ins, 9, rec->raw);
                if (r < 0)
                        return r;
                r = step_done(s, ins);
                if (r < 0)
                        return r;
                if (sqlite3_changes(s->db) == 0)
                        continue; /* already there: its effects were applied then */
                stored++;
                r = apply_effect(s, rec, now);
                if (r < 0)
                        return r;
                r = rollout_apply_record(s, rec, now);
                if (r < 0)
                        return r;
        }
        if (req->status) {
                r = rollout_apply_status(s, req->node, req->status, now);
                if (r < 0)
                        return r;
        }
        r = rollouts_join_late(s, req->node, now);
        if (r < 0)
                return r;
        r = rollouts_drive_node(s, req->node, now);
        if (r < 0)
                return r;

        _cleanup_(json_decrefp) json_t *commands = json_array();
        if (!commands)
                return -ENOMEM;
        r = commands_due(s, req->node, req->last_command_seq, now, max_commands, commands);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        *ret_commands = TAKE_PTR(commands);
        if (ret_stored)
                *ret_stored = stored;
        return 0;
}

/* ---- commands ----------------------------------------------------------------------- */

/* Queue a command inside the caller's transaction; *ret_seq is its seq. */
static int command_queue_locked(struct store *s, const char *node, const char *action,
                                json_t *params, int64_t now, int64_t expires_in_sec,
                                store_sign_fn sign, void *userdata, int64_t *ret_seq,
                                int64_t *ret_expires, char **ret_reason) {
        int r = command_params_check(action, params, ret_reason);
        if (r < 0)
                return r;
        if (expires_in_sec <= 0)
                return message_set(ret_reason, -EINVAL, "expires_in_sec must be positive");
        r = node_ensure(s, node, now);
        if (r < 0)
                return message_set(ret_reason, r, "cannot register node %s", node);

        _cleanup_stmt_ sqlite3_stmt *get = NULL;
        r = prepare(s, "SELECT next_command_seq FROM nodes WHERE id = ?", &get);
        if (r < 0)
                return message_set(ret_reason, r, "store error");
        sqlite3_bind_text(get, 1, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(get);
        if (rc != SQLITE_ROW)
                return message_set(ret_reason, db_fail(s, rc, "read the next command seq"),
                                   "store error");
        struct command c = {
                .seq = (uint64_t) sqlite3_column_int64(get, 0),
                .not_before = now,
                .expires = now + expires_in_sec,
                .params = params,
        };
        snprintf(c.node, sizeof(c.node), "%s", node);
        snprintf(c.action, sizeof(c.action), "%s", action);

        _cleanup_free_ char *payload = NULL, *signature = NULL;
        r = command_payload_build(&c, &payload, ret_reason);
        if (r < 0)
                return r;
        r = sign(userdata, payload, &signature, ret_reason);
        if (r < 0)
                return r;

        _cleanup_stmt_ sqlite3_stmt *ins = NULL;
        r = prepare(s, "INSERT INTO commands (node, seq, action, params, payload, signature, "
                       "created, not_before, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &ins);
        if (r < 0)
                return message_set(ret_reason, r, "store error");
        sqlite3_bind_text(ins, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, (int64_t) c.seq);
        sqlite3_bind_text(ins, 3, action, -1, SQLITE_STATIC);
        r = bind_json(ins, 4, params);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 5, payload, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, signature, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 7, now);
        sqlite3_bind_int64(ins, 8, c.not_before);
        sqlite3_bind_int64(ins, 9, c.expires);
        r = step_done(s, ins);
        if (r < 0)
                return message_set(ret_reason, r, "cannot store command %llu",
                                   (unsigned long long) c.seq);
        _cleanup_stmt_ sqlite3_stmt *bump = NULL;
        r = prepare(s, "UPDATE nodes SET next_command_seq = ? WHERE id = ?", &bump);
        if (r < 0)
                return message_set(ret_reason, r, "store error");
        sqlite3_bind_int64(bump, 1, (int64_t) c.seq + 1);
        sqlite3_bind_text(bump, 2, node, -1, SQLITE_STATIC);
        r = step_done(s, bump);
        if (r < 0)
                return message_set(ret_reason, r, "store error");
        *ret_seq = (int64_t) c.seq;
        if (ret_expires)
                *ret_expires = c.expires;
        return 0;
}

int store_command_queue(struct store *s, const char *node, const char *action, json_t *params,
                        int64_t now, int64_t expires_in_sec, store_sign_fn sign, void *userdata,
                        json_t **ret, char **ret_reason) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return message_set(ret_reason, r, "cannot start a transaction");
        _cleanup_transaction_ struct store *guard = s;
        int64_t seq = 0, expires = 0;
        r = command_queue_locked(s, node, action, params, now, expires_in_sec, sign, userdata,
                                 &seq, &expires, ret_reason);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return message_set(ret_reason, r, "cannot commit command %llu",
                                   (unsigned long long) seq);
        if (ret) {
                *ret = json_pack("{s:s,s:I,s:s,s:O,s:I,s:I,s:s}", "node", node, "seq",
                                 (json_int_t) seq, "action", action, "params", params,
                                 "not_before", (json_int_t) now, "expires",
                                 (json_int_t) expires, "state", "queued");
                if (!*ret)
                        return -ENOMEM;
        }
        return 0;
}

int store_commands_list(struct store *s, const char *node, json_t **ret) {
        int r = node_exists(s, node);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, "SELECT c.seq, c.action, c.params, c.created, c.not_before, c.expires, "
                       "c.state, c.sent_time, c.result_time, c.result_reason, "
                       "c.seq <= n.last_command_seq "
                       "FROM commands c JOIN nodes n ON n.id = c.node "
                       "WHERE c.node = ? ORDER BY c.seq",
                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *o = json_pack("{s:I,s:s,s:o,s:I,s:I,s:I,s:s,s:o,s:o,s:o,s:b}", "seq",
                                      (json_int_t) sqlite3_column_int64(st, 0), "action",
                                      (const char *) sqlite3_column_text(st, 1), "params",
                                      column_json(st, 2), "created",
                                      (json_int_t) sqlite3_column_int64(st, 3), "not_before",
                                      (json_int_t) sqlite3_column_int64(st, 4), "expires",
                                      (json_int_t) sqlite3_column_int64(st, 5), "state",
                                      (const char *) sqlite3_column_text(st, 6), "sent_time",
                                      column_int_or_null(st, 7), "result_time",
                                      column_int_or_null(st, 8), "result_reason",
                                      column_string_or_null(st, 9), "acked",
                                      sqlite3_column_int(st, 10));
                if (!o || json_array_append_new(a, o) < 0)
                        return -ENOMEM;
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "list commands");
        *ret = TAKE_PTR(a);
        return 0;
}

/* ---- views -------------------------------------------------------------------------- */

static const char node_columns[] =
        "id, created, last_sync, syncs, boot_epoch, boot_id, last_command_seq, "
        "next_command_seq - 1, status, status_time, health, health_time, update_kind, "
        "update_body, update_time, "
        "(SELECT count(*) FROM records r WHERE r.node = nodes.id), "
        "(SELECT count(*) FROM commands c WHERE c.node = nodes.id AND c.state IN "
        "('queued', 'sent')), passes ";

/* What a fleet table shows of a node: booted slot and version (its status), level and
 * power (its last health report). */
static json_t *node_summary(json_t *status, json_t *health) {
        json_t *u = json_object_get(json_object_get(status, "subsystems"), "update");
        json_t *battery = json_object_get(
                json_object_get(json_object_get(health, "metrics"), "battery.capacity_percent"),
                "last");
        return json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "slot", json_object_get(u, "booted_slot"),
                         "version", json_object_get(u, "version"), "update_phase",
                         json_object_get(u, "phase"), "level", json_object_get(health, "level"),
                         "battery_percent", battery);
}

static json_t *node_row(sqlite3_stmt *st, bool full) {
        json_t *o = json_pack("{s:s,s:I,s:o,s:I,s:o,s:o,s:I,s:I,s:I,s:I}", "id",
                              (const char *) sqlite3_column_text(st, 0), "created",
                              (json_int_t) sqlite3_column_int64(st, 1), "last_sync",
                              column_int_or_null(st, 2), "syncs",
                              (json_int_t) sqlite3_column_int64(st, 3), "boot_epoch",
                              column_int_or_null(st, 4), "boot_id", column_string_or_null(st, 5),
                              "last_command_seq", (json_int_t) sqlite3_column_int64(st, 6),
                              "last_queued_seq", (json_int_t) sqlite3_column_int64(st, 7),
                              "records", (json_int_t) sqlite3_column_int64(st, 15),
                              "commands_pending", (json_int_t) sqlite3_column_int64(st, 16));
        if (!o)
                return NULL;
        json_object_set_new(o, "update",
                            sqlite3_column_type(st, 12) == SQLITE_NULL
                                    ? json_null()
                                    : json_pack("{s:o,s:o,s:o}", "kind",
                                                column_string_or_null(st, 12), "body",
                                                column_json(st, 13), "time",
                                                column_int_or_null(st, 14)));
        json_object_set_new(o, "health_time", column_int_or_null(st, 11));
        json_object_set_new(o, "passes", json_integer(sqlite3_column_int64(st, 17)));
        {
                json_auto_t *status = column_json(st, 8), *health = column_json(st, 10);
                json_object_set_new(o, "summary", node_summary(status, health));
        }
        if (full) {
                json_object_set_new(o, "status", column_json(st, 8));
                json_object_set_new(o, "status_time", column_int_or_null(st, 9));
                json_object_set_new(o, "health", column_json(st, 10));
        }
        return o;
}

int store_nodes_list(struct store *s, json_t **ret) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "SELECT %s FROM nodes ORDER BY id", node_columns);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, sql, &st);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *o = node_row(st, false);
                if (!o || json_array_append_new(a, o) < 0)
                        return -ENOMEM;
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "list nodes");
        *ret = TAKE_PTR(a);
        return 0;
}

int store_node_show(struct store *s, const char *node, json_t **ret) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "SELECT %s FROM nodes WHERE id = ?", node_columns);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, sql, &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "show a node");
        _cleanup_(json_decrefp) json_t *o = node_row(st, true);
        if (!o)
                return -ENOMEM;
        json_t *commands = NULL, *plan = NULL;
        r = store_commands_list(s, node, &commands);
        if (r < 0)
                return r;
        json_object_set_new(o, "commands", commands);
        r = store_contact_plan_get(s, node, &plan);
        if (r < 0)
                return r;
        json_object_set_new(o, "contact_plan", plan);
        json_t *groups = NULL;
        r = store_node_groups(s, node, &groups);
        if (r < 0)
                return r;
        json_object_set_new(o, "groups", groups);

        /* Records by kind, so an operator sees what the node has been saying. */
        _cleanup_stmt_ sqlite3_stmt *kinds = NULL;
        r = prepare(s, "SELECT kind, count(*) FROM records WHERE node = ? GROUP BY kind "
                       "ORDER BY kind",
                    &kinds);
        if (r < 0)
                return r;
        sqlite3_bind_text(kinds, 1, node, -1, SQLITE_STATIC);
        json_t *by_kind = json_object();
        if (!by_kind)
                return -ENOMEM;
        json_object_set_new(o, "records_by_kind", by_kind);
        while ((rc = sqlite3_step(kinds)) == SQLITE_ROW)
                json_object_set_new(by_kind, (const char *) sqlite3_column_text(kinds, 0),
                                    json_integer(sqlite3_column_int64(kinds, 1)));
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "count records");
        *ret = TAKE_PTR(o);
        return 0;
}

int store_records_list(struct store *s, const char *node, const char *kind, size_t limit,
                       json_t **ret) {
        int r = node_exists(s, node);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        bool prefix = kind && kind[0] && kind[strlen(kind) - 1] == '*';
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        /* The newest limit records, returned oldest first. */
        r = prepare(s,
                    !kind ? "SELECT record FROM (SELECT rowid, record FROM records WHERE node = ?1 "
                            "ORDER BY rowid DESC LIMIT ?3) ORDER BY rowid"
                    : prefix ? "SELECT record FROM (SELECT rowid, record FROM records WHERE node = ?1 "
                               "AND substr(kind, 1, length(?2)) = ?2 ORDER BY rowid DESC LIMIT ?3) "
                               "ORDER BY rowid"
                             : "SELECT record FROM (SELECT rowid, record FROM records WHERE node = ?1 "
                               "AND kind = ?2 ORDER BY rowid DESC LIMIT ?3) ORDER BY rowid",
                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        if (kind) {
                size_t n = strlen(kind) - (prefix ? 1 : 0);
                sqlite3_bind_text(st, 2, kind, (int) n, SQLITE_TRANSIENT);
        }
        sqlite3_bind_int64(st, 3, (int64_t) limit);
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(a, column_json(st, 0)) < 0)
                        return -ENOMEM;
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "list records");
        *ret = TAKE_PTR(a);
        return 0;
}

int store_records_count(struct store *s, const char *node, int64_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT count(*) FROM records WHERE node = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "count records");
        *ret = sqlite3_column_int64(st, 0);
        return 0;
}

int store_records_prune(struct store *s, int64_t before, size_t limit, int64_t *ret_deleted) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s,
                        "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records"
                        " WHERE received < ? AND priority != 'critical' AND kind NOT LIKE 'update.%'"
                        " ORDER BY received LIMIT ?)",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, before);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) limit);
        r = step_done(s, st);
        if (r < 0)
                return r;
        if (ret_deleted)
                *ret_deleted = sqlite3_changes(s->db);
        return 0;
}

/* ---- contact plans ------------------------------------------------------------------ */

int store_contact_plan_set(struct store *s, const char *node, json_t *plan, int64_t now) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = node_ensure(s, node, now);
        if (r < 0)
                return r;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, "UPDATE nodes SET contact_plan = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        r = bind_json(st, 1, plan);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
        r = step_done(s, st);
        if (r < 0)
                return r;
        /* its windows move the report deadlines of its memberships (their due times) */
        r = node_memberships_refresh(s, node, now);
        if (r < 0)
                return r;
        return commit(&guard);
}

int store_contact_plan_get(struct store *s, const char *node, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT contact_plan FROM nodes WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_fail(s, rc, "read a contact plan");
        json_t *plan = rc == SQLITE_ROW ? column_json(st, 0) : json_null();
        if (!json_is_object(plan)) {
                json_decref(plan);
                plan = json_pack("{s:[]}", "windows");
        }
        if (!plan)
                return -ENOMEM;
        *ret = plan;
        return 0;
}

/* ---- bundles ------------------------------------------------------------------------ */

int store_bundle_add(struct store *s, const struct store_bundle *b, const char *signer,
                     bool verified, int64_t now) {
        struct store_bundle old;
        int r = store_bundle_get(s, b->id, &old);
        if (r >= 0)
                return streq(old.sha256, b->sha256) ? 0 : -EEXIST;
        if (r != -ENOENT)
                return r;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, "INSERT INTO bundles (id, version, size, sha256, signer, verified, "
                       "uploaded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, b->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, b->version, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, b->size);
        sqlite3_bind_text(st, 4, b->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, signer, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, verified);
        sqlite3_bind_int64(st, 7, now);
        return step_done(s, st);
}

int store_bundle_get(struct store *s, const char *id, struct store_bundle *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT id, version, size, sha256 FROM bundles WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "read a bundle");
        memset(ret, 0, sizeof(*ret));
        snprintf(ret->id, sizeof(ret->id), "%s", (const char *) sqlite3_column_text(st, 0));
        snprintf(ret->version, sizeof(ret->version), "%s",
                 (const char *) sqlite3_column_text(st, 1));
        ret->size = sqlite3_column_int64(st, 2);
        snprintf(ret->sha256, sizeof(ret->sha256), "%s",
                 (const char *) sqlite3_column_text(st, 3));
        return 0;
}

int store_bundles_list(struct store *s, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT id, version, size, sha256, signer, verified, uploaded "
                           "FROM bundles ORDER BY uploaded, id",
                        &st);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o,s:b,s:I}", "id",
                                      (const char *) sqlite3_column_text(st, 0), "version",
                                      (const char *) sqlite3_column_text(st, 1), "size",
                                      (json_int_t) sqlite3_column_int64(st, 2), "sha256",
                                      (const char *) sqlite3_column_text(st, 3), "signer",
                                      column_string_or_null(st, 4), "verified",
                                      sqlite3_column_int(st, 5), "uploaded",
                                      (json_int_t) sqlite3_column_int64(st, 6));
                if (!o || json_array_append_new(a, o) < 0)
                        return -ENOMEM;
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "list bundles");
        *ret = TAKE_PTR(a);
        return 0;
}

/* ---- groups ------------------------------------------------------------------------- */

static int rollouts_evaluate_all(struct store *s, int64_t now);

void store_set_pass_gap(struct store *s, int64_t gap_sec) {
        s->pass_gap = gap_sec < 0 ? 0 : gap_sec;
}

void store_set_command_signer(struct store *s, store_sign_fn sign, void *userdata) {
        s->sign = sign;
        s->sign_userdata = userdata;
}

int store_node_group_add(struct store *s, const char *node, const char *group, int64_t now) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = node_ensure(s, node, now);
        if (r < 0)
                return r;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, "INSERT OR IGNORE INTO node_groups (node, name, added) VALUES (?, ?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, group, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now);
        r = step_done(s, st);
        if (r < 0)
                return r;
        return commit(&guard);
}

int store_node_group_remove(struct store *s, const char *node, const char *group) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "DELETE FROM node_groups WHERE node = ? AND name = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, group, -1, SQLITE_STATIC);
        r = step_done(s, st);
        if (r < 0)
                return r;
        return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

int store_node_groups(struct store *s, const char *node, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT name FROM node_groups WHERE node = ? ORDER BY name", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(a, json_string((const char *) sqlite3_column_text(st, 0))) < 0)
                        return -ENOMEM;
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "list groups");
        *ret = TAKE_PTR(a);
        return 0;
}

/* ---- rollouts ----------------------------------------------------------------------- */

/* Commands a rollout queues stay valid a week: long enough for a node between contacts. */
#define ROLLOUT_COMMAND_EXPIRES (7 * 24 * 3600)

struct rollout_row {
        struct rollout_options o;
        enum rollout_state state;
        unsigned current_stage;
        int64_t stage_started, created, started, finished;
        char reason[ROLLOUT_REASON_MAX];
};

static const char rollout_columns[] =
        "id, bundle_id, target, stages, success_after, stage_timeout, max_failures, state, "
        "current_stage, coalesce(stage_started, 0), min_healthy_time, created, "
        "coalesce(started, 0), coalesce(finished, 0), coalesce(reason, ''), report_deadline, "
        "auto_revert";

static const char *column_text(sqlite3_stmt *st, int i) {
        const char *t = (const char *) sqlite3_column_text(st, i);
        return t ? t : "";
}

/* A row of rollout_columns. What the store wrote parses; anything else is corruption. */
static int rollout_row_read(struct store *s, sqlite3_stmt *st, struct rollout_row *ret) {
        memset(ret, 0, sizeof(*ret));
        snprintf(ret->o.id, sizeof(ret->o.id), "%s", column_text(st, 0));
        snprintf(ret->o.bundle_id, sizeof(ret->o.bundle_id), "%s", column_text(st, 1));
        snprintf(ret->o.target, sizeof(ret->o.target), "%s", column_text(st, 2));
        int state = rollout_state_from_string(column_text(st, 7));
        if (rollout_stages_parse(column_text(st, 3), ret->o.stages, &ret->o.n_stages, NULL) < 0 ||
            rollout_gate_parse("success_after", column_text(st, 4), false, &ret->o.success_after,
                               NULL) < 0 ||
            rollout_gate_parse("stage_timeout", column_text(st, 5), true, &ret->o.stage_timeout,
                               NULL) < 0 ||
            rollout_threshold_parse(column_text(st, 6), &ret->o.max_failures, NULL) < 0 ||
            rollout_gate_parse("report_deadline", column_text(st, 15), true,
                               &ret->o.report_deadline, NULL) < 0 ||
            state < 0) {
                log_error("store: rollout %s: a stored field does not parse", ret->o.id);
                return -EBADMSG;
        }
        ret->state = (enum rollout_state) state;
        ret->current_stage = (unsigned) sqlite3_column_int(st, 8);
        if (ret->current_stage >= ret->o.n_stages)
                ret->current_stage = (unsigned) ret->o.n_stages - 1;
        ret->stage_started = sqlite3_column_int64(st, 9);
        ret->o.min_healthy_time = sqlite3_column_int64(st, 10);
        ret->o.auto_revert = sqlite3_column_int(st, 16) != 0;
        ret->created = sqlite3_column_int64(st, 11);
        ret->started = sqlite3_column_int64(st, 12);
        ret->finished = sqlite3_column_int64(st, 13);
        snprintf(ret->reason, sizeof(ret->reason), "%s", column_text(st, 14));
        (void) s;
        return 0;
}

static int rollout_load(struct store *s, const char *id, struct rollout_row *ret) {
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT %s FROM rollouts WHERE id = ?", rollout_columns);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, sql, &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "read a rollout");
        return rollout_row_read(s, st, ret);
}

static int rollout_save(struct store *s, const struct rollout_row *row) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "UPDATE rollouts SET state = ?, current_stage = ?, stage_started = ?, "
                           "started = nullif(?, 0), finished = nullif(?, 0), "
                           "reason = nullif(?, '') WHERE id = ?",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, rollout_state_to_string(row->state), -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int) row->current_stage);
        sqlite3_bind_int64(st, 3, row->stage_started);
        sqlite3_bind_int64(st, 4, row->started);
        sqlite3_bind_int64(st, 5, row->finished);
        sqlite3_bind_text(st, 6, row->reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, row->o.id, -1, SQLITE_STATIC);
        r = step_done(s, st);
        if (r < 0 || row->state == ROLLOUT_RUNNING || row->state == ROLLOUT_PAUSED)
                return r;
        /* Over: time changes nothing in its members any more (once per rollout). */
        _cleanup_stmt_ sqlite3_stmt *clear = NULL;
        r = prepare(s, "UPDATE rollout_nodes SET due = NULL WHERE rollout = ? AND due IS NOT NULL",
                    &clear);
        if (r < 0)
                return r;
        sqlite3_bind_text(clear, 1, row->o.id, -1, SQLITE_STATIC);
        return step_done(s, clear);
}

_printf_(6, 7) static int rollout_event(struct store *s, const char *id, int64_t now, int stage,
                                        const char *event, const char *fmt, ...) {
        char detail[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        log_info("rollout %s: %s%s%s", id, event, detail[0] ? ": " : "", detail);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "INSERT INTO rollout_events (rollout, time, stage, event, detail) "
                           "VALUES (?, ?, ?, ?, ?)",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        if (stage >= 0)
                sqlite3_bind_int(st, 3, stage + 1);
        sqlite3_bind_text(st, 4, event, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC);
        return step_done(s, st);
}

typedef char member_id[API_ID_MAX + 1];

/*
 * The members as the pure decisions see them (*ret: caller frees), and their node ids
 * when ret_ids is not NULL. A told or installing member's unheard passes are the larger
 * of its own passes without a report and the windows of its contact plan that ended since
 * it was last heard from: a silent node makes no passes of its own, its plan says which
 * it missed.
 */
static int rollout_members_load(struct store *s, const char *id, int64_t now,
                                struct rollout_member **ret, member_id **ret_ids, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT rn.stage, rn.state, coalesce(rn.committed_time, 0), "
                           "rn.contacts_since_commit, rn.passes_since_told, "
                           "coalesce(rn.last_heard, rn.told_time, 0), "
                           "CASE WHEN rn.state IN ('told', 'installing') THEN max(rn.passes_unheard, "
                           "(SELECT count(*) FROM nodes n, json_each(n.contact_plan, '$.windows') w "
                           "WHERE n.id = rn.node AND json_valid(n.contact_plan) AND "
                           "json_extract(w.value, '$.end') > coalesce(rn.last_heard, rn.told_time, 0) "
                           "AND json_extract(w.value, '$.end') <= ?2)) ELSE rn.passes_unheard END, "
                           "rn.node FROM rollout_nodes rn WHERE rn.rollout = ?1",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        _cleanup_free_ struct rollout_member *m = NULL;
        _cleanup_free_ member_id *ids = NULL;
        size_t n = 0, cap = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t c = cap ? cap * 2 : 64;
                        struct rollout_member *p = realloc(m, c * sizeof(*m));
                        if (!p)
                                return -ENOMEM;
                        m = p;
                        if (ret_ids) {
                                member_id *q = realloc(ids, c * sizeof(*ids));
                                if (!q)
                                        return -ENOMEM;
                                ids = q;
                        }
                        cap = c;
                }
                int state = rollout_node_state_from_string(column_text(st, 1));
                if (ret_ids)
                        snprintf(ids[n], sizeof(ids[n]), "%s", column_text(st, 7));
                m[n++] = (struct rollout_member){
                        .stage = (unsigned) sqlite3_column_int(st, 0),
                        .state = state < 0 ? ROLLOUT_NODE_PENDING : (enum rollout_node_state) state,
                        .committed_time = sqlite3_column_int64(st, 2),
                        .passes_since_commit = sqlite3_column_int64(st, 3),
                        .passes_since_told = sqlite3_column_int64(st, 4),
                        .last_heard = sqlite3_column_int64(st, 5),
                        .passes_unheard = sqlite3_column_int64(st, 6),
                };
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "read rollout members");
        *ret = TAKE_PTR(m);
        if (ret_ids)
                *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

struct member_counts {
        int64_t total, told, failures;
        int64_t by_state[_ROLLOUT_NODE_STATE_MAX];
};

static void members_count(const struct rollout_member *m, size_t n, int stage,
                          struct member_counts *c) {
        memset(c, 0, sizeof(*c));
        for (size_t i = 0; i < n; i++) {
                if (stage >= 0 && m[i].stage != (unsigned) stage)
                        continue;
                c->total++;
                c->by_state[m[i].state]++;
                if (m[i].state != ROLLOUT_NODE_PENDING && m[i].state != ROLLOUT_NODE_SKIPPED)
                        c->told++;
                if (rollout_node_state_is_failure(m[i].state))
                        c->failures++;
        }
}

static int rollout_node_set(struct store *s, const char *rollout, const char *node,
                            enum rollout_node_state to, bool rollback_wanted, const char *reason,
                            int64_t now);

/*
 * Take back what a rollout gave: installs queued and not yet sent are cancelled (their
 * nodes go back to pending), every member that got one is marked for update.rollback,
 * queued at its next sync (within the anti-rollback rule, checked then).
 */
static int rollout_take_back(struct store *s, const char *id, const char *why, int64_t now,
                             int *ret_cancelled, int *ret_marked) {
        _cleanup_stmt_ sqlite3_stmt *cancel = NULL, *back = NULL, *mark = NULL;
        int r = prepare(s, "UPDATE commands SET state = 'cancelled', result_time = ?2, "
                           "result_reason = 'cancelled: rollout ' || ?1 || ' ' || ?3 "
                           "WHERE state = 'queued' AND action = 'update.install' AND "
                           "(node, seq) IN (SELECT node, install_seq FROM rollout_nodes "
                           "WHERE rollout = ?1 AND state IN ('told', 'overdue'))",
                        &cancel);
        if (r < 0)
                return r;
        sqlite3_bind_text(cancel, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(cancel, 2, now);
        sqlite3_bind_text(cancel, 3, why, -1, SQLITE_STATIC);
        r = step_done(s, cancel);
        if (r < 0)
                return r;
        *ret_cancelled = sqlite3_changes(s->db);
        r = prepare(s, "UPDATE rollout_nodes SET state = 'pending', updated = ?2, due = NULL, "
                       "reason = 'install cancelled: the rollout ' || ?3 WHERE rollout = ?1 AND "
                       "state IN ('told', 'overdue') AND EXISTS (SELECT 1 FROM commands c WHERE "
                       "c.node = rollout_nodes.node AND c.seq = rollout_nodes.install_seq "
                       "AND c.state = 'cancelled')",
                    &back);
        if (r < 0)
                return r;
        sqlite3_bind_text(back, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(back, 2, now);
        sqlite3_bind_text(back, 3, why, -1, SQLITE_STATIC);
        r = step_done(s, back);
        if (r < 0)
                return r;
        r = prepare(s, "UPDATE rollout_nodes SET needs_rollback = 1, updated = ?2 "
                       "WHERE rollout = ?1 AND state IN ('told', 'installing', 'committed', "
                       "'overdue')",
                    &mark);
        if (r < 0)
                return r;
        sqlite3_bind_text(mark, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(mark, 2, now);
        r = step_done(s, mark);
        if (r < 0)
                return r;
        *ret_marked = sqlite3_changes(s->db);
        return 0;
}

static int member_refresh(struct store *s, const struct rollout_row *row, const char *node,
                          int64_t now);

/* Members of the rollout whose due time has passed: refreshed. Through the index on due
 * ("+rollout": not the primary key's, which would walk every member of the rollout). */
static int rollout_members_due(struct store *s, const struct rollout_row *row, int64_t now) {
        member_id ids[256];
        for (;;) {
                size_t n = 0;
                {
                        _cleanup_stmt_ sqlite3_stmt *st = NULL;
                        int r = prepare(s, "SELECT node FROM rollout_nodes WHERE due IS NOT NULL "
                                           "AND due <= ?2 AND +rollout = ?1 LIMIT 256",
                                        &st);
                        if (r < 0)
                                return r;
                        sqlite3_bind_text(st, 1, row->o.id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(st, 2, now);
                        int rc;
                        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                                snprintf(ids[n++], sizeof(ids[0]), "%s", column_text(st, 0));
                        if (rc != SQLITE_DONE)
                                return db_fail(s, rc, "read the members due");
                }
                for (size_t i = 0; i < n; i++) {
                        int r = member_refresh(s, row, ids[i], now);
                        if (r < 0)
                                return r;
                }
                if (n < ELEMENTSOF(ids))
                        return 0;
        }
}

static void counts_from_stage(const struct rollout_stage_counts *sc, struct member_counts *c) {
        memset(c, 0, sizeof(*c));
        for (int i = 0; i < _ROLLOUT_NODE_STATE_MAX; i++) {
                c->by_state[i] = sc->by_state[i];
                c->total += sc->by_state[i];
                if (i != ROLLOUT_NODE_PENDING && i != ROLLOUT_NODE_SKIPPED)
                        c->told += sc->by_state[i];
                if (rollout_node_state_is_failure((enum rollout_node_state) i))
                        c->failures += sc->by_state[i];
        }
}

static const char stage_count_columns[] =
        "stage, pending, told, installing, committed, failed, rolled_back, skipped, overdue, "
        "held, out";

/* The rollout's per-stage counts (kept by triggers, schema 5), and their sum in *all. */
static int rollout_stage_counts_load(struct store *s, const char *id,
                                     struct rollout_stage_counts c[ROLLOUT_STAGES_MAX],
                                     struct member_counts *all) {
        memset(c, 0, sizeof(c[0]) * ROLLOUT_STAGES_MAX);
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT %s FROM rollout_stage_counts WHERE rollout = ?",
                 stage_count_columns);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, sql, &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        struct rollout_stage_counts sum = {};
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int stage = sqlite3_column_int(st, 0);
                if (stage < 0 || stage >= ROLLOUT_STAGES_MAX)
                        continue;
                for (int i = 0; i < _ROLLOUT_NODE_STATE_MAX; i++) {
                        c[stage].by_state[i] = sqlite3_column_int64(st, 1 + i);
                        sum.by_state[i] += c[stage].by_state[i];
                }
                c[stage].held = sqlite3_column_int64(st, 1 + _ROLLOUT_NODE_STATE_MAX);
                c[stage].out = sqlite3_column_int64(st, 2 + _ROLLOUT_NODE_STATE_MAX);
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "read a rollout's counts");
        if (all)
                counts_from_stage(&sum, all);
        return 0;
}

/*
 * Halt past the threshold, or move through the stages whose gate has passed: from the
 * per-stage counts, after the members whose due time passed were refreshed. O(stages)
 * plus the members due, never O(members).
 */
static int rollout_evaluate(struct store *s, struct rollout_row *row, int64_t now) {
        for (;;) {
                if (row->state != ROLLOUT_RUNNING && row->state != ROLLOUT_PAUSED)
                        return 0;
                int r = rollout_members_due(s, row, now);
                if (r < 0)
                        return r;
                struct rollout_stage_counts sc[ROLLOUT_STAGES_MAX];
                struct member_counts all;
                r = rollout_stage_counts_load(s, row->o.id, sc, &all);
                if (r < 0)
                        return r;
                if (rollout_failures_exceeded(&row->o.max_failures, all.failures, all.told)) {
                        char t[32];
                        rollout_threshold_format(&row->o.max_failures, t, sizeof(t));
                        row->state = ROLLOUT_HALTED;
                        row->finished = now;
                        int cancelled = 0, marked = 0;
                        if (row->o.auto_revert) {
                                r = rollout_take_back(s, row->o.id, "halted", now, &cancelled,
                                                      &marked);
                                if (r < 0)
                                        return r;
                        }
                        snprintf(row->reason, sizeof(row->reason),
                                 "%lld of %lld nodes told failed, rolled back or overdue, over "
                                 "the threshold of %s%s",
                                 (long long) all.failures, (long long) all.told, t,
                                 row->o.auto_revert ? "; auto-revert: the nodes that got the "
                                                      "bundle are told to roll back"
                                                    : "");
                        log_warning("rollout %s halted in stage %u: %s", row->o.id,
                                    row->current_stage + 1, row->reason);
                        r = rollout_event(s, row->o.id, now, (int) row->current_stage, "halted",
                                          "%s; no further node is told to install", row->reason);
                        if (r >= 0 && row->o.auto_revert)
                                r = rollout_event(s, row->o.id, now, (int) row->current_stage,
                                                  "auto-revert",
                                                  "%d installs not yet sent cancelled; %d nodes "
                                                  "will be told to roll back at their next contact",
                                                  cancelled, marked);
                        return r < 0 ? r : rollout_save(s, row);
                }
                if (row->state == ROLLOUT_PAUSED)
                        return 0;
                enum rollout_stage_decision d = rollout_stage_decide_counts(
                        &sc[row->current_stage], &row->o, row->stage_started, now);
                if (d == ROLLOUT_STAGE_WAIT)
                        return 0;
                struct member_counts st;
                counts_from_stage(&sc[row->current_stage], &st);
                r = rollout_event(s, row->o.id, now, (int) row->current_stage,
                                  d == ROLLOUT_STAGE_ADVANCE ? "stage passed" : "stage timed out",
                                  "stage %u (%u%%): %lld nodes, %lld committed, %lld failed, "
                                  "rolled back or overdue, %lld skipped, %lld still on their way",
                                  row->current_stage + 1, row->o.stages[row->current_stage],
                                  (long long) st.total,
                                  (long long) st.by_state[ROLLOUT_NODE_COMMITTED],
                                  (long long) st.failures,
                                  (long long) st.by_state[ROLLOUT_NODE_SKIPPED],
                                  (long long) (st.by_state[ROLLOUT_NODE_PENDING] +
                                               st.by_state[ROLLOUT_NODE_TOLD] +
                                               st.by_state[ROLLOUT_NODE_INSTALLING]));
                if (r < 0)
                        return r;
                if (row->current_stage + 1 >= row->o.n_stages) {
                        row->state = ROLLOUT_COMPLETED;
                        row->finished = now;
                        r = rollout_event(s, row->o.id, now, (int) row->current_stage, "completed",
                                          "%lld of %lld nodes committed, %lld failed or rolled back",
                                          (long long) all.by_state[ROLLOUT_NODE_COMMITTED],
                                          (long long) all.total, (long long) all.failures);
                        return r < 0 ? r : rollout_save(s, row);
                }
                row->current_stage++;
                row->stage_started = now;
                counts_from_stage(&sc[row->current_stage], &st);
                r = rollout_event(s, row->o.id, now, (int) row->current_stage, "stage started",
                                  "stage %u (%u%%): %lld nodes", row->current_stage + 1,
                                  row->o.stages[row->current_stage], (long long) st.total);
                if (r < 0)
                        return r;
                r = rollout_save(s, row);
                if (r < 0)
                        return r;
        }
}

static int rollouts_evaluate_all(struct store *s, int64_t now) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT id FROM rollouts WHERE state IN ('running', 'paused') "
                           "ORDER BY created, id",
                        &st);
        if (r < 0)
                return r;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct rollout_row row;
                r = rollout_load(s, column_text(st, 0), &row);
                if (r >= 0)
                        r = rollout_evaluate(s, &row, now);
                if (r < 0)
                        return r;
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "list running rollouts");
        return 0;
}

/*
 * At a node's sync: does it begin a new pass of the node (its previous sync and its
 * contact plan decide), and if so count the pass in every rollout the node is in: after
 * its commit, after it was told, and without a report. Counted before the records, so
 * the pass that carries a commit is not a pass after it. Other nodes' syncs count nothing.
 */
static int node_pass_count(struct store *s, const char *node, int64_t now, bool *ret_new) {
        _cleanup_stmt_ sqlite3_stmt *get = NULL;
        int r = prepare(s, "SELECT coalesce(last_sync, 0), contact_plan FROM nodes WHERE id = ?",
                        &get);
        if (r < 0)
                return r;
        sqlite3_bind_text(get, 1, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(get);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -ENOENT : db_fail(s, rc, "read a node's last sync");
        int64_t last = sqlite3_column_int64(get, 0);
        struct rollout_window w[CONTACT_PLAN_WINDOWS_MAX];
        size_t n = 0;
        json_auto_t *plan = column_json(get, 1);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(plan, "windows"), i, e) {
                if (n == CONTACT_PLAN_WINDOWS_MAX)
                        break;
                w[n++] = (struct rollout_window){
                        json_integer_value(json_object_get(e, "start")),
                        json_integer_value(json_object_get(e, "end"))};
        }
        *ret_new = rollout_pass_is_new(last, now, s->pass_gap, w, n);
        if (!*ret_new)
                return 0;
        _cleanup_stmt_ sqlite3_stmt *a = NULL, *b = NULL;
        r = prepare(s, "UPDATE nodes SET passes = passes + 1 WHERE id = ?", &a);
        if (r < 0)
                return r;
        sqlite3_bind_text(a, 1, node, -1, SQLITE_STATIC);
        r = step_done(s, a);
        if (r < 0)
                return r;
        r = prepare(s, "UPDATE rollout_nodes SET "
                       "contacts_since_commit = contacts_since_commit + (state = 'committed'), "
                       "passes_since_told = passes_since_told + 1, "
                       "passes_unheard = passes_unheard + (state IN ('told', 'installing')) "
                       "WHERE node = ? AND state NOT IN ('pending', 'skipped')",
                    &b);
        if (r < 0)
                return r;
        sqlite3_bind_text(b, 1, node, -1, SQLITE_STATIC);
        r = step_done(s, b);
        if (r < 0)
                return r;
        /* A committed member whose pass met success_after may end its stage; a member
         * still on its way may have had its stage timeout's passes, or its report
         * deadline's: its flags say so (member_refresh), the counts follow. */
        return node_memberships_refresh(s, node, now);
}

/* A report of the install arrived from the node: it is heard from. */
static int rollout_node_heard(struct store *s, const char *rollout, const char *node, int64_t now) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "UPDATE rollout_nodes SET last_heard = ?1, passes_unheard = 0 "
                           "WHERE rollout = ?2 AND node = ?3",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_text(st, 2, rollout, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, node, -1, SQLITE_STATIC);
        r = step_done(s, st);
        return r < 0 ? r : member_refresh_by_id(s, rollout, node, now); /* its due moved */
}

#define ROWS_PER_NODE_MAX 64

struct node_row_ref {
        char rollout[ROLLOUT_ID_MAX + 1];
        enum rollout_node_state state;
        enum rollout_state rollout_state;
        bool auto_revert;
};

/* Does the rollout take back what it gave: aborted, or halted with auto-revert? */
static bool rollout_reverting(enum rollout_state state, bool auto_revert) {
        return state == ROLLOUT_ABORTED || (state == ROLLOUT_HALTED && auto_revert);
}

static int node_state_write(struct store *s, const char *rollout, const char *node,
                            enum rollout_node_state to, bool rollback_wanted, const char *reason,
                            int64_t now) {
        rollout_dirty(s, rollout);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "UPDATE rollout_nodes SET state = ?1, updated = ?2, "
                           "reason = coalesce(?3, reason), "
                           "committed_time = CASE WHEN ?1 = 'committed' THEN ?2 ELSE committed_time END, "
                           "contacts_since_commit = CASE WHEN ?1 = 'committed' THEN 0 "
                           "ELSE contacts_since_commit END, "
                           "passes_unheard = CASE WHEN ?1 = 'overdue' THEN passes_unheard "
                           "ELSE 0 END, "
                           "needs_rollback = CASE WHEN ?4 THEN 1 ELSE needs_rollback END "
                           "WHERE rollout = ?5 AND node = ?6",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, rollout_node_state_to_string(to), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        if (reason && reason[0])
                sqlite3_bind_text(st, 3, reason, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, rollback_wanted);
        sqlite3_bind_text(st, 5, rollout, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, node, -1, SQLITE_STATIC);
        return step_done(s, st);
}

/*
 * One member, as time and its own passes left it: overdue past the report deadline (while
 * the rollout is running or paused; an event), and its held and out flags and due time
 * (the per-stage counts follow by trigger). The rollout is dirty when a flag moved.
 */
static int member_refresh(struct store *s, const struct rollout_row *row, const char *node,
                          int64_t now) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT rn.stage, rn.state, coalesce(rn.committed_time, 0), "
                           "rn.contacts_since_commit, rn.passes_since_told, "
                           "coalesce(rn.last_heard, rn.told_time, 0), rn.passes_unheard, "
                           "rn.held, rn.out, coalesce(rn.due, -1), n.contact_plan "
                           "FROM rollout_nodes rn JOIN nodes n ON n.id = rn.node "
                           "WHERE rn.rollout = ?1 AND rn.node = ?2",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, row->o.id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "read a rollout member");
        int state = rollout_node_state_from_string(column_text(st, 1));
        struct rollout_member m = {
                .stage = (unsigned) sqlite3_column_int(st, 0),
                .state = state < 0 ? ROLLOUT_NODE_PENDING : (enum rollout_node_state) state,
                .committed_time = sqlite3_column_int64(st, 2),
                .passes_since_commit = sqlite3_column_int64(st, 3),
                .passes_since_told = sqlite3_column_int64(st, 4),
                .last_heard = sqlite3_column_int64(st, 5),
                .passes_unheard = sqlite3_column_int64(st, 6),
        };
        bool was_held = sqlite3_column_int(st, 7) != 0, was_out = sqlite3_column_int(st, 8) != 0;
        int64_t was_due = sqlite3_column_int64(st, 9);
        struct rollout_window w[CONTACT_PLAN_WINDOWS_MAX];
        size_t n_w = 0;
        {
                json_auto_t *plan = column_json(st, 10);
                size_t i;
                json_t *e;
                json_array_foreach(json_object_get(plan, "windows"), i, e) {
                        if (n_w == CONTACT_PLAN_WINDOWS_MAX)
                                break;
                        w[n_w++] = (struct rollout_window){
                                json_integer_value(json_object_get(e, "start")),
                                json_integer_value(json_object_get(e, "end"))};
                }
        }
        sqlite3_reset(st);
        /* a silent node makes no passes of its own: its plan says which it missed */
        if (m.state == ROLLOUT_NODE_TOLD || m.state == ROLLOUT_NODE_INSTALLING) {
                int64_t missed = 0;
                for (size_t i = 0; i < n_w; i++)
                        if (w[i].end > m.last_heard && w[i].end <= now)
                                missed++;
                if (missed > m.passes_unheard)
                        m.passes_unheard = missed;
        }
        bool live = row->state == ROLLOUT_RUNNING || row->state == ROLLOUT_PAUSED;
        if (live && rollout_member_overdue(&m, &row->o, now)) {
                char deadline[32], why[160];
                rollout_gate_format(&row->o.report_deadline, deadline, sizeof(deadline));
                if (row->o.report_deadline.kind == ROLLOUT_GATE_CONTACTS)
                        snprintf(why, sizeof(why), "no report of the install in %lld passes "
                                 "(deadline %s)", (long long) m.passes_unheard, deadline);
                else
                        snprintf(why, sizeof(why), "no report of the install for %llds "
                                 "(deadline %s)", (long long) (now - m.last_heard), deadline);
                r = node_state_write(s, row->o.id, node, ROLLOUT_NODE_OVERDUE, false, why, now);
                if (r < 0)
                        return r;
                r = rollout_event(s, row->o.id, now, (int) m.stage, "overdue", "node %s: %s",
                                  node, why);
                if (r < 0)
                        return r;
                m.state = ROLLOUT_NODE_OVERDUE;
        }
        bool held = rollout_member_held(&m, &row->o, now);
        bool out = rollout_member_out(&m, held, &row->o);
        int64_t due = live ? rollout_member_next_due(&m, &row->o, w, n_w, now) : 0;
        if (held == was_held && out == was_out && (due ? due : -1) == was_due)
                return 0;
        if (held != was_held || out != was_out)
                rollout_dirty(s, row->o.id);
        _cleanup_stmt_ sqlite3_stmt *u = NULL;
        r = prepare(s, "UPDATE rollout_nodes SET held = ?1, out = ?2, due = nullif(?3, 0) "
                       "WHERE rollout = ?4 AND node = ?5",
                    &u);
        if (r < 0)
                return r;
        sqlite3_bind_int(u, 1, held);
        sqlite3_bind_int(u, 2, out);
        sqlite3_bind_int64(u, 3, due);
        sqlite3_bind_text(u, 4, row->o.id, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 5, node, -1, SQLITE_STATIC);
        return step_done(s, u);
}

/* member_refresh, loading the rollout first. */
static int member_refresh_by_id(struct store *s, const char *rollout, const char *node,
                                int64_t now) {
        struct rollout_row row;
        int r = rollout_load(s, rollout, &row);
        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : member_refresh(s, &row, node, now);
}

/* A member's new state, then what it changes in its flags (member_refresh). */
static int rollout_node_set(struct store *s, const char *rollout, const char *node,
                            enum rollout_node_state to, bool rollback_wanted, const char *reason,
                            int64_t now) {
        int r = node_state_write(s, rollout, node, to, rollback_wanted, reason, now);
        return r < 0 ? r : member_refresh_by_id(s, rollout, node, now);
}

/* The node's memberships in rollouts still driven: refreshed (member_refresh). */
static int node_memberships_refresh(struct store *s, const char *node, int64_t now) {
        char ids[ROWS_PER_NODE_MAX][ROLLOUT_ID_MAX + 1];
        size_t n = 0;
        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                int r = prepare(s, "SELECT rn.rollout FROM rollout_nodes rn "
                                   "JOIN rollouts r ON r.id = rn.rollout "
                                   "WHERE rn.node = ? AND r.state IN ('running', 'paused') AND "
                                   "rn.state IN ('committed', 'told', 'installing')",
                                &st);
                if (r < 0)
                        return r;
                sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
                int rc;
                while (n < ROWS_PER_NODE_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW)
                        snprintf(ids[n++], sizeof(ids[0]), "%s", column_text(st, 0));
                if (n < ROWS_PER_NODE_MAX && rc != SQLITE_DONE)
                        return db_fail(s, rc, "read the node's memberships");
        }
        for (size_t i = 0; i < n; i++) {
                int r = member_refresh_by_id(s, ids[i], node, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The rows (rollout, node state) a query with node (and maybe a second parameter) selects. */
static int node_rows_collect(struct store *s, sqlite3_stmt *st, struct node_row_ref *rows,
                             size_t *n) {
        int rc;
        *n = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < ROWS_PER_NODE_MAX) {
                int ns = rollout_node_state_from_string(column_text(st, 1));
                int rs = rollout_state_from_string(column_text(st, 2));
                if (ns < 0 || rs < 0)
                        continue;
                struct node_row_ref *x = &rows[(*n)++];
                snprintf(x->rollout, sizeof(x->rollout), "%s", column_text(st, 0));
                x->state = (enum rollout_node_state) ns;
                x->rollout_state = (enum rollout_state) rs;
                x->auto_revert = sqlite3_column_int(st, 3) != 0;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return db_fail(s, rc, "read rollout nodes");
        return 0;
}

/*
 * An update.<phase> of a node for bundle: the node's state in every rollout of that bundle
 * (that has started), and a block when it rolled back from it.
 */
static int rollout_apply_update(struct store *s, const char *node, const char *kind,
                                const char *bundle, const char *reason, int64_t now) {
        struct node_row_ref rows[ROWS_PER_NODE_MAX];
        size_t n = 0;
        int r;
        if (!bundle || !bundle[0])
                return 0;
        if (streq(kind, "update.rolled-back")) {
                /* Never again: the node is not told to install this bundle any more. */
                _cleanup_stmt_ sqlite3_stmt *block = NULL;
                r = prepare(s, "INSERT OR IGNORE INTO node_bundle_blocks (node, bundle_id, "
                               "time, reason) VALUES (?, ?, ?, ?)",
                            &block);
                if (r < 0)
                        return r;
                sqlite3_bind_text(block, 1, node, -1, SQLITE_STATIC);
                sqlite3_bind_text(block, 2, bundle, -1, SQLITE_STATIC);
                sqlite3_bind_int64(block, 3, now);
                sqlite3_bind_text(block, 4, reason ? reason : "", -1, SQLITE_TRANSIENT);
                r = step_done(s, block);
                if (r < 0)
                        return r;
        }
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, "SELECT rn.rollout, rn.state, r.state, r.auto_revert FROM rollout_nodes rn "
                       "JOIN rollouts r ON r.id = rn.rollout "
                       "WHERE rn.node = ? AND r.bundle_id = ? AND r.state != 'created'",
                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, bundle, -1, SQLITE_STATIC);
        r = node_rows_collect(s, st, rows, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = rollout_node_heard(s, rows[i].rollout, node, now);
                if (r < 0)
                        return r;
                enum rollout_node_state to = rollout_node_after_update(rows[i].state, kind);
                if (to == rows[i].state)
                        continue;
                /* A node that commits after an abort or an auto-revert is told to go back too. */
                bool rollback = to == ROLLOUT_NODE_COMMITTED &&
                                rollout_reverting(rows[i].rollout_state, rows[i].auto_revert);
                r = rollout_node_set(s, rows[i].rollout, node, to, rollback, reason, now);
                if (r < 0)
                        return r;
                log_info("rollout %s: node %s %s -> %s", rows[i].rollout, node,
                         rollout_node_state_to_string(rows[i].state),
                         rollout_node_state_to_string(to));
        }
        return 0;
}

/*
 * The update outcome in a node's status document (sent at the first sync after every
 * start): a rollback decided just before a reboot may reach the ground this way first.
 */
static int rollout_apply_status(struct store *s, const char *node, json_t *status, int64_t now) {
        json_t *u = json_object_get(json_object_get(status, "subsystems"), "update");
        const char *phase = json_string_value(json_object_get(u, "phase"));
        if (!phase || !(streq(phase, "committed") || streq(phase, "rolled-back") ||
                        streq(phase, "failed")))
                return 0;
        char kind[32];
        snprintf(kind, sizeof(kind), "update.%s", phase);
        return rollout_apply_update(s, node, kind,
                                    json_string_value(json_object_get(u, "bundle_id")),
                                    json_string_value(json_object_get(u, "reason")), now);
}

/* What a newly stored record of a node changes in the rollouts it belongs to. */
static int rollout_apply_record(struct store *s, const struct sync_record *rec, int64_t now) {
        enum record_effect e = record_effect_of(rec->kind);
        struct node_row_ref rows[ROWS_PER_NODE_MAX];
        size_t n = 0;
        int r;
        if (e == RECORD_EFFECT_UPDATE)
                return rollout_apply_update(
                        s, rec->node, rec->kind,
                        json_string_value(json_object_get(rec->body, "bundle_id")),
                        json_string_value(json_object_get(rec->body, "reason")), now);
        if (e == RECORD_EFFECT_COMMAND_RESULT) {
                struct command_result res;
                if (command_result_parse(rec->body, &res) < 0)
                        return 0;
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = prepare(s, "SELECT rn.rollout, rn.state, r.state, r.auto_revert FROM rollout_nodes rn "
                               "JOIN rollouts r ON r.id = rn.rollout "
                               "WHERE rn.node = ? AND rn.install_seq = ?",
                            &st);
                if (r < 0)
                        return r;
                sqlite3_bind_text(st, 1, rec->node, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, res.seq);
                r = node_rows_collect(s, st, rows, &n);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        r = rollout_node_heard(s, rows[i].rollout, rec->node, now);
                        if (r < 0)
                                return r;
                        enum rollout_node_state to =
                                rollout_node_after_install_result(rows[i].state, res.status);
                        if (to == rows[i].state)
                                continue;
                        char why[1100];
                        snprintf(why, sizeof(why), "update.install %s: %s", res.status, res.reason);
                        r = rollout_node_set(s, rows[i].rollout, rec->node, to, false, why, now);
                        if (r < 0)
                                return r;
                        log_info("rollout %s: node %s %s", rows[i].rollout, rec->node, why);
                }
        }
        return 0;
}

static int node_blocked(struct store *s, const char *node, const char *bundle) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT 1 FROM node_bundle_blocks WHERE node = ? AND bundle_id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, bundle, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return db_fail(s, rc, "read bundle blocks");
}

/* Queue a rollout's command for a node inside the sync's transaction. */
static int rollout_queue(struct store *s, const char *rollout, const char *node,
                         const char *action, json_t *params, int64_t now, int64_t *ret_seq) {
        _cleanup_free_ char *reason = NULL;
        int r = command_queue_locked(s, node, action, params, now, ROLLOUT_COMMAND_EXPIRES,
                                     s->sign, s->sign_userdata, ret_seq, NULL, &reason);
        if (r < 0)
                log_error("rollout %s: cannot queue %s for %s: %s", rollout, action, node,
                          reason ? reason : strerror(-r));
        return r;
}

/*
 * The rollouts of the node that this sync changed something in: evaluated at its sync
 * (all of the node's running or paused ones if more changed than the list holds).
 */
static int rollouts_evaluate_node(struct store *s, const char *node, int64_t now) {
        if (!s->dirty_overflow) {
                for (size_t i = 0; i < s->n_dirty; i++) {
                        struct rollout_row row;
                        int r = rollout_load(s, s->dirty[i], &row);
                        if (r == -ENOENT)
                                continue;
                        if (r >= 0)
                                r = rollout_evaluate(s, &row, now);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT r.id FROM rollout_nodes rn JOIN rollouts r ON r.id = rn.rollout "
                           "WHERE rn.node = ? AND r.state IN ('running', 'paused') "
                           "ORDER BY r.created, r.id",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        char ids[ROWS_PER_NODE_MAX][ROLLOUT_ID_MAX + 1];
        size_t n = 0;
        int rc;
        while (n < ROWS_PER_NODE_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW)
                snprintf(ids[n++], sizeof(ids[0]), "%s", column_text(st, 0));
        for (size_t i = 0; i < n; i++) {
                struct rollout_row row;
                r = rollout_load(s, ids[i], &row);
                if (r >= 0)
                        r = rollout_evaluate(s, &row, now);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The update subsystem of the node's last status document (a new reference, or NULL). */
static json_t *node_update_status(struct store *s, const char *node) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (prepare(s, "SELECT status FROM nodes WHERE id = ?", &st) < 0)
                return NULL;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return NULL;
        json_auto_t *status = column_json(st, 0);
        return json_incref(json_object_get(json_object_get(status, "subsystems"), "update"));
}

/* At a node's sync: move its rollouts on, then tell this node what its rollouts need. */
static int rollouts_drive_node(struct store *s, const char *node, int64_t now) {
        int r = rollouts_evaluate_node(s, node, now);
        if (r < 0)
                return r;
        if (!s->sign)
                return 0;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, "SELECT rn.rollout, rn.stage, rn.state, rn.needs_rollback, r.state, "
                       "r.current_stage, r.bundle_id, r.auto_revert FROM rollout_nodes rn "
                       "JOIN rollouts r ON r.id = rn.rollout "
                       "WHERE rn.node = ? AND r.state IN ('running', 'aborted', 'halted') "
                       "ORDER BY r.created, r.id",
                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        struct todo {
                char rollout[ROLLOUT_ID_MAX + 1], bundle[API_BUNDLE_ID_MAX + 1];
                struct rollout_member m;
                bool needs_rollback, auto_revert;
                enum rollout_state rollout_state;
                unsigned current_stage;
        } todo[ROWS_PER_NODE_MAX];
        size_t n = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < ROWS_PER_NODE_MAX) {
                int ns = rollout_node_state_from_string(column_text(st, 2));
                int rs = rollout_state_from_string(column_text(st, 4));
                if (ns < 0 || rs < 0)
                        continue;
                struct todo *t = &todo[n++];
                snprintf(t->rollout, sizeof(t->rollout), "%s", column_text(st, 0));
                snprintf(t->bundle, sizeof(t->bundle), "%s", column_text(st, 6));
                t->m = (struct rollout_member){.stage = (unsigned) sqlite3_column_int(st, 1),
                                               .state = (enum rollout_node_state) ns};
                t->needs_rollback = sqlite3_column_int(st, 3) != 0;
                t->rollout_state = (enum rollout_state) rs;
                t->current_stage = (unsigned) sqlite3_column_int(st, 5);
                t->auto_revert = sqlite3_column_int(st, 7) != 0;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return db_fail(s, rc, "read the node's rollouts");
        for (size_t i = 0; i < n; i++) {
                struct todo *t = &todo[i];
                if (rollout_reverting(t->rollout_state, t->auto_revert) && t->needs_rollback) {
                        json_auto_t *update = node_update_status(s, node);
                        char why[256];
                        if (!rollout_revert_allowed(update, why, sizeof(why))) {
                                r = rollout_node_set(s, t->rollout, node, t->m.state, false, why, now);
                                if (r >= 0)
                                        r = rollout_event(s, t->rollout, now, (int) t->m.stage,
                                                          "rollback refused", "node %s: %s", node, why);
                                if (r < 0)
                                        return r;
                                _cleanup_stmt_ sqlite3_stmt *clear = NULL;
                                r = prepare(s, "UPDATE rollout_nodes SET needs_rollback = 0 "
                                               "WHERE rollout = ? AND node = ?",
                                            &clear);
                                if (r < 0)
                                        return r;
                                sqlite3_bind_text(clear, 1, t->rollout, -1, SQLITE_STATIC);
                                sqlite3_bind_text(clear, 2, node, -1, SQLITE_STATIC);
                                r = step_done(s, clear);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        json_auto_t *params = json_object();
                        int64_t seq = 0;
                        if (!params)
                                return -ENOMEM;
                        r = rollout_queue(s, t->rollout, node, "update.rollback", params, now, &seq);
                        if (r < 0)
                                return r;
                        _cleanup_stmt_ sqlite3_stmt *u = NULL;
                        r = prepare(s, "UPDATE rollout_nodes SET needs_rollback = 0, "
                                       "rollback_seq = ?, updated = ? WHERE rollout = ? AND node = ?",
                                    &u);
                        if (r < 0)
                                return r;
                        sqlite3_bind_int64(u, 1, seq);
                        sqlite3_bind_int64(u, 2, now);
                        sqlite3_bind_text(u, 3, t->rollout, -1, SQLITE_STATIC);
                        sqlite3_bind_text(u, 4, node, -1, SQLITE_STATIC);
                        r = step_done(s, u);
                        if (r < 0)
                                return r;
                        log_info("rollout %s (%s): node %s told to roll back (command %lld)",
                                 t->rollout, rollout_state_to_string(t->rollout_state), node,
                                 (long long) seq);
                        continue;
                }
                if (t->m.state != ROLLOUT_NODE_PENDING)
                        continue;
                int blocked = node_blocked(s, node, t->bundle);
                if (blocked < 0)
                        return blocked;
                if (!rollout_member_should_tell(t->rollout_state, t->current_stage, &t->m,
                                                blocked > 0)) {
                        if (blocked > 0 && t->rollout_state == ROLLOUT_RUNNING) {
                                r = rollout_node_set(s, t->rollout, node, ROLLOUT_NODE_SKIPPED,
                                                     false, "rolled back from this bundle before",
                                                     now);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                json_auto_t *params = json_pack("{s:s}", "bundle_id", t->bundle);
                int64_t seq = 0;
                if (!params)
                        return -ENOMEM;
                r = rollout_queue(s, t->rollout, node, "update.install", params, now, &seq);
                if (r < 0)
                        return r;
                _cleanup_stmt_ sqlite3_stmt *u = NULL;
                r = prepare(s, "UPDATE rollout_nodes SET state = 'told', install_seq = ?1, "
                               "told_time = ?2, updated = ?2, last_heard = ?2, "
                               "passes_since_told = 0, passes_unheard = 0, held = 0, out = 0 "
                               "WHERE rollout = ?3 AND node = ?4",
                            &u);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(u, 1, seq);
                sqlite3_bind_int64(u, 2, now);
                sqlite3_bind_text(u, 3, t->rollout, -1, SQLITE_STATIC);
                sqlite3_bind_text(u, 4, node, -1, SQLITE_STATIC);
                r = step_done(s, u);
                if (r < 0)
                        return r;
                r = member_refresh_by_id(s, t->rollout, node, now); /* its report deadline */
                if (r < 0)
                        return r;
                log_info("rollout %s: node %s (stage %u) told to install %s (command %lld)",
                         t->rollout, node, t->m.stage + 1, t->bundle, (long long) seq);
        }
        return 0;
}

static void order_key_text(const char *rollout, const char *node, char buf[17]) {
        snprintf(buf, 17, "%016llx", (unsigned long long) rollout_node_key(rollout, node));
}

/*
 * A node of a rollout's target that is in no rollout holding nodes joins it at its sync
 * (it joined the group, or registered, after the create): in the stage of the member just
 * before it in the rollout's order (rollout_node_key), the first stage if none; skipped
 * when it rolled back from the bundle, committed when it runs the bundle already.
 */
static int rollouts_join_late(struct store *s, const char *node, int64_t now) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT r.id, r.bundle_id, (SELECT count(*) FROM node_bundle_blocks k "
                           "WHERE k.node = ?1 AND k.bundle_id = r.bundle_id), "
                           "(SELECT n.update_kind = 'update.committed' AND "
                           "json_extract(n.update_body, '$.bundle_id') = r.bundle_id FROM nodes n "
                           "WHERE n.id = ?1) FROM rollouts r "
                           "WHERE r.state IN ('created', 'running', 'paused') AND "
                           "(r.target = 'all' OR r.target IN (SELECT name FROM node_groups WHERE "
                           "node = ?1)) AND NOT EXISTS (SELECT 1 FROM rollout_nodes rn JOIN "
                           "rollouts h ON h.id = rn.rollout WHERE rn.node = ?1 AND h.state IN "
                           "('created', 'running', 'paused')) "
                           "ORDER BY r.created, r.id LIMIT 1",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return db_fail(s, rc, "look for rollouts to join");
        char id[ROLLOUT_ID_MAX + 1], key[17];
        snprintf(id, sizeof(id), "%s", column_text(st, 0));
        bool blocked = sqlite3_column_int(st, 2) > 0, already = sqlite3_column_int(st, 3) > 0;
        order_key_text(id, node, key);
        _cleanup_stmt_ sqlite3_stmt *before = NULL;
        r = prepare(s, "SELECT stage FROM rollout_nodes WHERE rollout = ? AND order_key < ? "
                       "ORDER BY order_key DESC LIMIT 1",
                    &before);
        if (r < 0)
                return r;
        sqlite3_bind_text(before, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(before, 2, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(before);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_fail(s, rc, "find a late member's stage");
        int stage = rc == SQLITE_ROW ? sqlite3_column_int(before, 0) : 0;
        const char *state = blocked ? "skipped" : already ? "committed" : "pending";
        _cleanup_stmt_ sqlite3_stmt *ins = NULL;
        r = prepare(s, "INSERT INTO rollout_nodes (rollout, node, stage, state, reason, "
                       "committed_time, contacts_since_commit, updated, order_key, held) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?4 = 'committed' THEN 0 END, "
                       "CASE WHEN ?4 = 'committed' THEN 2147483647 ELSE 0 END, ?6, ?7, "
                       "?4 = 'committed')",
                    &ins);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, node, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 3, stage);
        sqlite3_bind_text(ins, 4, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5,
                          blocked ? "joined late; rolled back from this bundle before"
                          : already ? "joined late; already committed this bundle"
                                    : "joined late",
                          -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 6, now);
        sqlite3_bind_text(ins, 7, key, -1, SQLITE_STATIC);
        r = step_done(s, ins);
        if (r < 0)
                return r;
        rollout_dirty(s, id);
        return rollout_event(s, id, now, stage, "member joined",
                             "node %s joined the target after the create: stage %d, %s", node,
                             stage + 1, state);
}

/* ---- rollouts: operator side -------------------------------------------------------- */

static int rollout_show_locked(struct store *s, const char *id, int64_t now, json_t **ret);

int store_rollout_create(struct store *s, const struct rollout_options *o, int64_t now,
                         json_t **ret, char **ret_reason) {
        struct store_bundle b;
        int r = store_bundle_get(s, o->bundle_id, &b);
        if (r == -ENOENT)
                return message_set(ret_reason, r, "no bundle \"%s\" was uploaded", o->bundle_id);
        if (r < 0)
                return message_set(ret_reason, r, "cannot read bundle %s", o->bundle_id);
        r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return message_set(ret_reason, r, "cannot start a transaction");
        _cleanup_transaction_ struct store *guard = s;

        char id[ROLLOUT_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s", o->id);
        struct rollout_row existing;
        if (!id[0]) {
                _cleanup_stmt_ sqlite3_stmt *count = NULL;
                r = prepare(s, "SELECT count(*) FROM rollouts", &count);
                if (r < 0 || sqlite3_step(count) != SQLITE_ROW)
                        return message_set(ret_reason, r < 0 ? r : -EIO, "store error");
                for (int64_t k = sqlite3_column_int64(count, 0) + 1;; k++) {
                        snprintf(id, sizeof(id), "rollout-%lld", (long long) k);
                        r = rollout_load(s, id, &existing);
                        if (r == -ENOENT)
                                break;
                        if (r < 0)
                                return message_set(ret_reason, r, "store error");
                }
        } else {
                r = rollout_load(s, id, &existing);
                if (r >= 0)
                        return message_set(ret_reason, -EEXIST, "rollout \"%s\" exists", id);
                if (r != -ENOENT)
                        return message_set(ret_reason, r, "store error");
        }

        /* The target's nodes that no other created, running or paused rollout holds. */
        _cleanup_stmt_ sqlite3_stmt *sel = NULL;
        r = prepare(s,
                    "SELECT n.id, (SELECT count(*) FROM rollout_nodes rn JOIN rollouts r ON "
                    "r.id = rn.rollout WHERE rn.node = n.id AND r.state IN ('created', "
                    "'running', 'paused')), "
                    "(SELECT count(*) FROM node_bundle_blocks k WHERE k.node = n.id AND "
                    "k.bundle_id = ?2), "
                    "n.update_kind = 'update.committed' AND "
                    "json_extract(n.update_body, '$.bundle_id') = ?2 "
                    "FROM nodes n WHERE ?1 = 'all' OR n.id IN (SELECT node FROM node_groups "
                    "WHERE name = ?1) ORDER BY n.id",
                    &sel);
        if (r < 0)
                return message_set(ret_reason, r, "store error");
        sqlite3_bind_text(sel, 1, o->target, -1, SQLITE_STATIC);
        sqlite3_bind_text(sel, 2, o->bundle_id, -1, SQLITE_STATIC);
        char **ids = NULL;
        bool *blocked = NULL, *already = NULL;
        size_t n = 0, cap = 0, held = 0;
        int rc;
        while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
                if (sqlite3_column_int(sel, 1) > 0) {
                        held++;
                        continue;
                }
                if (n == ROLLOUT_NODES_MAX)
                        break;
                if (n == cap) {
                        cap = cap ? cap * 2 : 64;
                        char **i2 = realloc(ids, cap * sizeof(*ids));
                        if (i2)
                                ids = i2;
                        bool *b2 = realloc(blocked, cap * sizeof(*blocked));
                        if (b2)
                                blocked = b2;
                        bool *a2 = realloc(already, cap * sizeof(*already));
                        if (a2)
                                already = a2;
                        if (!i2 || !b2 || !a2) {
                                r = -ENOMEM;
                                goto out;
                        }
                }
                ids[n] = strdup(column_text(sel, 0));
                blocked[n] = sqlite3_column_int(sel, 2) > 0;
                already[n] = sqlite3_column_int(sel, 3) > 0;
                if (!ids[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                r = message_set(ret_reason, db_fail(s, rc, "select the target"), "store error");
                goto out;
        }
        if (n == 0) {
                r = message_set(ret_reason, -ENODATA,
                                "target \"%s\" has no node to update%s", o->target,
                                held ? " (its nodes are in other rollouts)" : "");
                goto out;
        }
        {
                _cleanup_free_ unsigned *stage = calloc(n, sizeof(*stage));
                if (!stage) {
                        r = -ENOMEM;
                        goto out;
                }
                rollout_assign_stages(id, (const char *const *) ids, n, o->stages, o->n_stages,
                                      stage);
                char stages[64], success[32], timeout[32], failures[32];
                rollout_stages_format(o->stages, o->n_stages, stages, sizeof(stages));
                rollout_gate_format(&o->success_after, success, sizeof(success));
                rollout_gate_format(&o->stage_timeout, timeout, sizeof(timeout));
                rollout_threshold_format(&o->max_failures, failures, sizeof(failures));
                _cleanup_stmt_ sqlite3_stmt *ins = NULL;
                char deadline[32];
                rollout_gate_format(&o->report_deadline, deadline, sizeof(deadline));
                r = prepare(s, "INSERT INTO rollouts (id, bundle_id, target, stages, success_after, "
                               "stage_timeout, max_failures, created, min_healthy_time, "
                               "report_deadline, auto_revert) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            &ins);
                if (r < 0)
                        goto out;
                sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, o->bundle_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 3, o->target, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 4, stages, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 5, success, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 6, timeout, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 7, failures, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 8, now);
                sqlite3_bind_int64(ins, 9, o->min_healthy_time);
                sqlite3_bind_text(ins, 10, deadline, -1, SQLITE_STATIC);
                sqlite3_bind_int(ins, 11, o->auto_revert);
                r = step_done(s, ins);
                if (r < 0)
                        goto out;
                _cleanup_stmt_ sqlite3_stmt *mem = NULL;
                r = prepare(s, "INSERT INTO rollout_nodes (rollout, node, stage, state, reason, "
                               "committed_time, contacts_since_commit, updated, order_key, held) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?4 = 'committed')",
                            &mem);
                if (r < 0)
                        goto out;
                size_t per_stage[ROLLOUT_STAGES_MAX] = {};
                for (size_t i = 0; i < n; i++) {
                        sqlite3_reset(mem);
                        sqlite3_clear_bindings(mem);
                        per_stage[stage[i]]++;
                        sqlite3_bind_text(mem, 1, id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(mem, 2, ids[i], -1, SQLITE_STATIC);
                        sqlite3_bind_int(mem, 3, (int) stage[i]);
                        const char *state = "pending", *reason = NULL;
                        if (blocked[i]) {
                                state = "skipped";
                                reason = "rolled back from this bundle before";
                        } else if (already[i]) {
                                /* Already runs it: committed, and held long ago. */
                                state = "committed";
                                reason = "already committed this bundle";
                                sqlite3_bind_int64(mem, 6, 0);
                                sqlite3_bind_int64(mem, 7, INT32_MAX);
                        }
                        sqlite3_bind_text(mem, 4, state, -1, SQLITE_STATIC);
                        if (reason)
                                sqlite3_bind_text(mem, 5, reason, -1, SQLITE_STATIC);
                        if (!already[i] || blocked[i])
                                sqlite3_bind_int64(mem, 7, 0);
                        sqlite3_bind_int64(mem, 8, now);
                        char key[17];
                        order_key_text(id, ids[i], key);
                        sqlite3_bind_text(mem, 9, key, -1, SQLITE_TRANSIENT);
                        r = step_done(s, mem);
                        if (r < 0)
                                goto out;
                }
                char sizes[256] = "";
                size_t used = 0;
                for (size_t i = 0; i < o->n_stages && used < sizeof(sizes); i++) {
                        int w = snprintf(sizes + used, sizeof(sizes) - used, "%s%zu", i ? ", " : "",
                                         per_stage[i]);
                        if (w > 0)
                                used += (size_t) w;
                }
                r = rollout_event(s, id, now, -1, "created",
                                  "bundle %s to %s: %zu nodes in stages %s%% (%s nodes)%s", o->bundle_id,
                                  o->target, n, stages, sizes,
                                  held ? " (nodes in other rollouts left out)" : "");
                if (r < 0)
                        goto out;
        }
        r = commit(&guard);
        if (r < 0)
                goto out;
        r = ret ? rollout_show_locked(s, id, now, ret) : 0;
out:
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
        free(blocked);
        free(already);
        if (r < 0 && ret_reason && !*ret_reason)
                (void) message_set(ret_reason, r, "cannot create the rollout: %s", strerror(-r));
        return r;
}

int store_rollout_verb(struct store *s, const char *id, const char *verb, int64_t now,
                       json_t **ret, char **ret_reason) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return message_set(ret_reason, r, "cannot start a transaction");
        _cleanup_transaction_ struct store *guard = s;
        struct rollout_row row;
        r = rollout_load(s, id, &row);
        if (r == -ENOENT)
                return message_set(ret_reason, r, "no rollout \"%s\"", id);
        if (r < 0)
                return message_set(ret_reason, r, "cannot read rollout %s", id);
        const char *why = NULL;
        int to = rollout_state_after_verb(row.state, verb, &why);
        if (to < 0)
                return message_set(ret_reason, -EINVAL, "%s rollout %s: %s (it is %s)", verb, id,
                                   why, rollout_state_to_string(row.state));
        enum rollout_state from = row.state;
        row.state = (enum rollout_state) to;
        if (streq(verb, "start")) {
                row.started = now;
                row.current_stage = 0;
                row.stage_started = now;
                struct rollout_stage_counts sc[ROLLOUT_STAGES_MAX];
                r = rollout_stage_counts_load(s, id, sc, NULL);
                if (r < 0)
                        return r;
                struct member_counts c;
                counts_from_stage(&sc[0], &c);
                r = rollout_event(s, id, now, 0, "stage started", "stage 1 (%u%%): %lld nodes",
                                  row.o.stages[0], (long long) c.total);
        } else if (streq(verb, "abort")) {
                row.finished = now;
                snprintf(row.reason, sizeof(row.reason), "aborted by the operator");
                /* Installs not sent yet are taken back; nodes that got one are told to roll back. */
                int cancelled = 0, marked = 0;
                r = rollout_take_back(s, id, "aborted", now, &cancelled, &marked);
                if (r < 0)
                        return r;
                r = rollout_event(s, id, now, (int) row.current_stage, "aborted",
                                  "%d installs not yet sent cancelled; %d nodes will be told to "
                                  "roll back at their next contact",
                                  cancelled, marked);
        } else
                r = rollout_event(s, id, now, (int) row.current_stage, verb, "%s -> %s",
                                  rollout_state_to_string(from), rollout_state_to_string(row.state));
        if (r < 0)
                return r;
        r = rollout_save(s, &row);
        if (r < 0)
                return r;
        r = rollout_evaluate(s, &row, now); /* empty stages pass at once */
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return message_set(ret_reason, r, "cannot commit");
        return ret ? rollout_show_locked(s, id, now, ret) : 0;
}

static json_t *rollout_row_json(const struct rollout_row *row) {
        json_t *o = rollout_options_to_json(&row->o);
        if (!o)
                return NULL;
        json_object_set_new(o, "state", json_string(rollout_state_to_string(row->state)));
        json_object_set_new(o, "current_stage", json_integer(row->current_stage + 1));
        json_object_set_new(o, "created", json_integer(row->created));
        json_object_set_new(o, "started", row->started ? json_integer(row->started) : json_null());
        json_object_set_new(o, "finished",
                            row->finished ? json_integer(row->finished) : json_null());
        json_object_set_new(o, "stage_started",
                            row->stage_started ? json_integer(row->stage_started) : json_null());
        json_object_set_new(o, "reason", row->reason[0] ? json_string(row->reason) : json_null());
        return o;
}

static json_t *counts_json(const struct member_counts *c) {
        json_t *o = json_pack("{s:I,s:I,s:I}", "nodes", (json_int_t) c->total, "told_so_far",
                              (json_int_t) c->told, "failures", (json_int_t) c->failures);
        for (int i = 0; o && i < _ROLLOUT_NODE_STATE_MAX; i++)
                json_object_set_new(o, rollout_node_state_to_string(i),
                                    json_integer(c->by_state[i]));
        return o;
}

static int rollout_show_locked(struct store *s, const char *id, int64_t now, json_t **ret) {
        struct rollout_row row;
        int r = rollout_load(s, id, &row);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *o = rollout_row_json(&row);
        if (!o)
                return -ENOMEM;
        _cleanup_free_ struct rollout_member *m = NULL;
        size_t n = 0;
        r = rollout_members_load(s, id, now, &m, NULL, &n);
        if (r < 0)
                return r;
        struct member_counts all;
        members_count(m, n, -1, &all);
        json_object_set_new(o, "counts", counts_json(&all));
        json_object_set_new(o, "threshold_exceeded",
                            json_boolean(rollout_failures_exceeded(&row.o.max_failures,
                                                                   all.failures, all.told)));
        json_t *progress = json_array();
        for (size_t i = 0; progress && i < row.o.n_stages; i++) {
                struct member_counts c;
                members_count(m, n, (int) i, &c);
                int64_t held = 0;
                for (size_t k = 0; k < n; k++)
                        if (m[k].stage == i && rollout_member_held(&m[k], &row.o, now))
                                held++;
                const char *status = i < row.current_stage ? "passed"
                                     : i > row.current_stage ? "waiting"
                                     : row.state == ROLLOUT_COMPLETED ? "passed"
                                     : row.state == ROLLOUT_CREATED ? "waiting"
                                     : rollout_state_to_string(row.state);
                json_t *e = counts_json(&c);
                if (e) {
                        json_object_set_new(e, "stage", json_integer((json_int_t) i + 1));
                        json_object_set_new(e, "percent", json_integer(row.o.stages[i]));
                        json_object_set_new(e, "held", json_integer(held));
                        json_object_set_new(e, "status", json_string(status));
                }
                json_array_append_new(progress, e);
        }
        json_object_set_new(o, "stage_progress", progress);

        _cleanup_stmt_ sqlite3_stmt *ev = NULL;
        r = prepare(s, "SELECT time, stage, event, detail FROM rollout_events WHERE rollout = ? "
                       "ORDER BY rowid",
                    &ev);
        if (r < 0)
                return r;
        sqlite3_bind_text(ev, 1, id, -1, SQLITE_STATIC);
        json_t *events = json_array();
        int rc;
        while (events && (rc = sqlite3_step(ev)) == SQLITE_ROW)
                json_array_append_new(events,
                                      json_pack("{s:I,s:o,s:s,s:s}", "time",
                                                (json_int_t) sqlite3_column_int64(ev, 0), "stage",
                                                column_int_or_null(ev, 1), "event",
                                                column_text(ev, 2), "detail", column_text(ev, 3)));
        json_object_set_new(o, "events", events);

        _cleanup_stmt_ sqlite3_stmt *nodes = NULL;
        r = prepare(s, "SELECT node, stage, state, install_seq, told_time, committed_time, "
                       "contacts_since_commit, rollback_seq, reason, updated, passes_since_told, "
                       "last_heard FROM rollout_nodes "
                       "WHERE rollout = ? ORDER BY stage, node",
                    &nodes);
        if (r < 0)
                return r;
        sqlite3_bind_text(nodes, 1, id, -1, SQLITE_STATIC);
        json_t *list = json_array();
        while (list && (rc = sqlite3_step(nodes)) == SQLITE_ROW) {
                json_t *e = json_pack("{s:s,s:I,s:s,s:o,s:o,s:o,s:I,s:o,s:o,s:I}", "node",
                                        column_text(nodes, 0), "stage",
                                        (json_int_t) sqlite3_column_int(nodes, 1) + 1, "state",
                                        column_text(nodes, 2), "install_seq",
                                        column_int_or_null(nodes, 3), "told_time",
                                        column_int_or_null(nodes, 4), "committed_time",
                                        column_int_or_null(nodes, 5), "passes_since_commit",
                                        (json_int_t) sqlite3_column_int64(nodes, 6), "rollback_seq",
                                        column_int_or_null(nodes, 7), "reason",
                                        column_string_or_null(nodes, 8), "updated",
                                        (json_int_t) sqlite3_column_int64(nodes, 9));
                if (e) {
                        json_object_set_new(e, "passes_since_told",
                                            json_integer(sqlite3_column_int64(nodes, 10)));
                        json_object_set_new(e, "last_heard", column_int_or_null(nodes, 11));
                }
                json_array_append_new(list, e);
        }
        json_object_set_new(o, "nodes", list);
        if (!events || !list || !progress)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int store_rollout_show(struct store *s, const char *id, int64_t now, json_t **ret) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        struct rollout_row row;
        r = rollout_load(s, id, &row);
        if (r < 0)
                return r;
        r = rollout_evaluate(s, &row, now);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        return rollout_show_locked(s, id, now, ret);
}

int store_rollouts_list(struct store *s, int64_t now, json_t **ret) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = rollouts_evaluate_all(s, now);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT %s FROM rollouts ORDER BY created, id", rollout_columns);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, sql, &st);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct rollout_row row;
                r = rollout_row_read(s, st, &row);
                if (r < 0)
                        return r;
                json_t *o = rollout_row_json(&row);
                struct rollout_stage_counts sc[ROLLOUT_STAGES_MAX];
                struct member_counts c;
                r = rollout_stage_counts_load(s, row.o.id, sc, &c);
                if (r < 0) {
                        json_decref(o);
                        return r;
                }
                if (!o || json_object_set_new(o, "counts", counts_json(&c)) < 0 ||
                    json_array_append_new(a, o) < 0)
                        return -ENOMEM;
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "list rollouts");
        *ret = TAKE_PTR(a);
        return 0;
}

int store_rollouts_tick(struct store *s, int64_t now) {
        /* One short transaction per rollout: a sync waits for one rollout's evaluation at
         * most, not for all of them. */
        char (*ids)[ROLLOUT_ID_MAX + 1] = NULL;
        size_t n = 0, cap = 0;
        int r;
        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = prepare(s, "SELECT id FROM rollouts WHERE state IN ('running', 'paused') "
                               "ORDER BY created, id",
                            &st);
                if (r < 0)
                        return r;
                int rc;
                while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                        if (n == cap) {
                                size_t c = cap ? cap * 2 : 16;
                                void *p = realloc(ids, c * sizeof(*ids));
                                if (!p) {
                                        free(ids);
                                        return -ENOMEM;
                                }
                                ids = p;
                                cap = c;
                        }
                        snprintf(ids[n++], sizeof(ids[0]), "%s", column_text(st, 0));
                }
                if (rc != SQLITE_DONE) {
                        free(ids);
                        return db_fail(s, rc, "list running rollouts");
                }
        }
        for (size_t i = 0; i < n; i++) {
                r = exec_sql(s, "BEGIN IMMEDIATE");
                if (r < 0)
                        break;
                _cleanup_transaction_ struct store *guard = s;
                struct rollout_row row;
                r = rollout_load(s, ids[i], &row);
                if (r >= 0)
                        r = rollout_evaluate(s, &row, now);
                if (r >= 0)
                        r = commit(&guard);
                if (r < 0 && r != -ENOENT)
                        break;
                r = 0;
        }
        free(ids);
        return r;
}

int store_rollout_counts_check(struct store *s, const char *id, int64_t now, char **ret_reason) {
        struct rollout_row row;
        int r = rollout_load(s, id, &row);
        if (r < 0)
                return message_set(ret_reason, r, "rollout %s: cannot load it", id);
        struct rollout_stage_counts kept[ROLLOUT_STAGES_MAX], recount[ROLLOUT_STAGES_MAX] = {};
        r = rollout_stage_counts_load(s, id, kept, NULL);
        if (r < 0)
                return message_set(ret_reason, r, "rollout %s: cannot read its counts", id);
        _cleanup_free_ struct rollout_member *m = NULL;
        size_t n = 0;
        r = rollout_members_load(s, id, now, &m, NULL, &n);
        if (r < 0)
                return message_set(ret_reason, r, "rollout %s: cannot read its members", id);
        bool live = row.state == ROLLOUT_RUNNING || row.state == ROLLOUT_PAUSED;
        for (size_t i = 0; i < n; i++) {
                if (m[i].stage >= ROLLOUT_STAGES_MAX)
                        return message_set(ret_reason, -EBADMSG, "rollout %s: a member in stage %u",
                                           id, m[i].stage + 1);
                struct rollout_stage_counts *c = &recount[m[i].stage];
                c->by_state[m[i].state]++;
                bool held = rollout_member_held(&m[i], &row.o, now);
                c->held += held;
                c->out += rollout_member_out(&m[i], held, &row.o);
        }
        for (size_t k = 0; k < ROLLOUT_STAGES_MAX; k++) {
                for (int i = 0; i < _ROLLOUT_NODE_STATE_MAX; i++)
                        if (kept[k].by_state[i] != recount[k].by_state[i])
                                return message_set(ret_reason, -EBADMSG,
                                                   "rollout %s stage %zu: %lld %s kept, %lld "
                                                   "counted",
                                                   id, k + 1, (long long) kept[k].by_state[i],
                                                   rollout_node_state_to_string(i),
                                                   (long long) recount[k].by_state[i]);
                if (live && (kept[k].held != recount[k].held || kept[k].out != recount[k].out))
                        return message_set(ret_reason, -EBADMSG,
                                           "rollout %s stage %zu: held %lld, out %lld kept; "
                                           "held %lld, out %lld counted",
                                           id, k + 1, (long long) kept[k].held,
                                           (long long) kept[k].out, (long long) recount[k].held,
                                           (long long) recount[k].out);
        }
        if (!live)
                return 0;
        enum rollout_stage_decision a = rollout_stage_decide(m, n, row.current_stage, &row.o,
                                                             row.stage_started, now),
                                    b = rollout_stage_decide_counts(&kept[row.current_stage],
                                                                    &row.o, row.stage_started, now);
        if (a != b)
                return message_set(ret_reason, -EBADMSG,
                                   "rollout %s stage %u: decision %d from the members, %d from "
                                   "the counts",
                                   id, row.current_stage + 1, (int) a, (int) b);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        r = prepare(s, "SELECT count(*) FROM rollout_nodes WHERE rollout = ? AND due IS NOT NULL "
                       "AND due <= ?",
                    &st);
        if (r < 0)
                return message_set(ret_reason, r, "rollout %s: store error", id);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        if (sqlite3_step(st) != SQLITE_ROW)
                return message_set(ret_reason, -EIO, "rollout %s: store error", id);
        if (sqlite3_column_int64(st, 0) > 0)
                return message_set(ret_reason, -EBADMSG, "rollout %s: %lld members left due", id,
                                   (long long) sqlite3_column_int64(st, 0));
        return 0;
}

/* ---- metrics ------------------------------------------------------------------------ */

/* Rows of a two-column query (text key, integer count) into obj. */
static int counts_into(struct store *s, const char *sql, json_t *obj) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, sql, &st);
        if (r < 0)
                return r;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (json_object_set_new(obj, column_text(st, 0),
                                        json_integer(sqlite3_column_int64(st, 1))) < 0)
                        return -ENOMEM;
        return rc == SQLITE_DONE ? 0 : db_fail(s, rc, sql);
}

int store_metrics_collect(struct store *s, int64_t now, json_t **ret) {
        _cleanup_(json_decrefp) json_t *o = json_pack("{s:I,s:[],s:{},s:{},s:{},s:[]}", "now",
                                                      (json_int_t) now, "nodes", "records",
                                                      "record_lag", "commands", "rollouts");
        if (!o)
                return -ENOMEM;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, "SELECT id, last_sync, syncs, passes, health, update_kind FROM nodes "
                           "ORDER BY id",
                        &st);
        if (r < 0)
                return r;
        int rc;
        json_t *nodes = json_object_get(o, "nodes");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(
                            nodes, json_pack("{s:s,s:o,s:I,s:I,s:o,s:o}", "id", column_text(st, 0),
                                             "last_sync", column_int_or_null(st, 1), "syncs",
                                             (json_int_t) sqlite3_column_int64(st, 2), "passes",
                                             (json_int_t) sqlite3_column_int64(st, 3), "health",
                                             column_json(st, 4), "update_kind",
                                             column_string_or_null(st, 5))) < 0)
                        return -ENOMEM;
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "collect nodes");
        r = counts_into(s, "SELECT kind, count(*) FROM records GROUP BY kind",
                        json_object_get(o, "records"));
        if (r < 0)
                return r;
        r = counts_into(s, "SELECT state, count(*) FROM commands GROUP BY state",
                        json_object_get(o, "commands"));
        if (r < 0)
                return r;
        _cleanup_stmt_ sqlite3_stmt *lag = NULL;
        r = prepare(s, "SELECT kind, avg(received - time_usec / 1000000.0), "
                       "max(received - time_usec / 1000000.0), count(*) FROM records "
                       "WHERE received >= ? GROUP BY kind",
                    &lag);
        if (r < 0)
                return r;
        sqlite3_bind_int64(lag, 1, now - 3600);
        while ((rc = sqlite3_step(lag)) == SQLITE_ROW)
                json_object_set_new(json_object_get(o, "record_lag"), column_text(lag, 0),
                                    json_pack("{s:f,s:f,s:I}", "mean", sqlite3_column_double(lag, 1),
                                              "max", sqlite3_column_double(lag, 2), "n",
                                              (json_int_t) sqlite3_column_int64(lag, 3)));
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "collect record lag");
        _cleanup_stmt_ sqlite3_stmt *ro = NULL;
        r = prepare(s, "SELECT id, state, current_stage FROM rollouts ORDER BY created, id", &ro);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(ro)) == SQLITE_ROW) {
                json_t *e = json_pack("{s:s,s:s,s:I,s:{}}", "id", column_text(ro, 0), "state",
                                      column_text(ro, 1), "current_stage",
                                      (json_int_t) sqlite3_column_int(ro, 2) + 1, "nodes");
                if (!e || json_array_append_new(json_object_get(o, "rollouts"), e) < 0)
                        return -ENOMEM;
                _cleanup_stmt_ sqlite3_stmt *c = NULL;
                r = prepare(s, "SELECT state, count(*) FROM rollout_nodes WHERE rollout = ? "
                               "GROUP BY state",
                            &c);
                if (r < 0)
                        return r;
                sqlite3_bind_text(c, 1, column_text(ro, 0), -1, SQLITE_TRANSIENT);
                int rc2;
                while ((rc2 = sqlite3_step(c)) == SQLITE_ROW)
                        json_object_set_new(json_object_get(e, "nodes"), column_text(c, 0),
                                            json_integer(sqlite3_column_int64(c, 1)));
                if (rc2 != SQLITE_DONE)
                        return db_fail(s, rc2, "collect rollout nodes");
        }
        if (rc != SQLITE_DONE)
                return db_fail(s, rc, "collect rollouts");
        *ret = TAKE_PTR(o);
        return 0;
}
