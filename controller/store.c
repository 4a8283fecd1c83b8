/* The controller's SQLite store: schema and migrations, syncs, commands, views. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "command.h"
#include "log.h"
#include "macro.h"
#include "message.h"
#include "store.h"

struct store {
        sqlite3 *db;
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

int store_sync(struct store *s, const struct sync_request *req, int64_t now,
               size_t max_commands, json_t **ret_commands, size_t *ret_stored) {
        int r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = node_ensure(s, req->node, now);
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
        }

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

int store_command_queue(struct store *s, const char *node, const char *action, json_t *params,
                        int64_t now, int64_t expires_in_sec, store_sign_fn sign, void *userdata,
                        json_t **ret, char **ret_reason) {
        int r = command_params_check(action, params, ret_reason);
        if (r < 0)
                return r;
        if (expires_in_sec <= 0)
                return message_set(ret_reason, -EINVAL, "expires_in_sec must be positive");
        r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return message_set(ret_reason, r, "cannot start a transaction");
        _cleanup_transaction_ struct store *guard = s;
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
        r = commit(&guard);
        if (r < 0)
                return message_set(ret_reason, r, "cannot commit command %llu",
                                   (unsigned long long) c.seq);
        if (ret) {
                *ret = json_pack("{s:s,s:I,s:s,s:O,s:I,s:I,s:s}", "node", node, "seq",
                                 (json_int_t) c.seq, "action", action, "params", params,
                                 "not_before", (json_int_t) c.not_before, "expires",
                                 (json_int_t) c.expires, "state", "queued");
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
        "('queued', 'sent')) ";

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
