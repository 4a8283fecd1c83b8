/*
 * orbit-controller migrate (docs/storage.md, "Moving from SQLite to PostgreSQL"): every
 * table of a SQLite store, brought to the current schema as opening it does, copied into
 * an empty PostgreSQL store in one transaction, then read back and compared table by
 * table before the commit. Either all of it lands or nothing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/macro.h"
#include "lib/message.h"
#include "controller/store-address.h"
#include "controller/store-backend.h"
#include "controller/store-convert.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"

/*
 * The tables at STORE_SCHEMA_VERSION, each after those its foreign keys name (PostgreSQL's
 * are checked row by row). A table on either side and not here is refused: a migration of
 * the schema that adds one must add it here (test-store-migrate.sh would fail otherwise).
 */
static const char *const tables[] = {
        "nodes",         "bundles",        "node_groups",     "commands",
        "records",       "rollouts",       "rollout_nodes",   "rollout_events",
        "rollout_stage_counts", "node_bundle_blocks", "audit", "node_certs",
        "desired_states", "deployments",   "deployment_nodes", "usage_reports",
        "usage",         "usage_latest",
};
#define N_TABLES ELEMENTSOF(tables)

#define MIGRATE_MAX_COLUMNS 64
#define VERIFY_BATCH "1000"

struct column {
        char name[64];
        enum store_pg_type type;
        bool identity;
};

struct table_copy {
        const char *name;
        struct column cols[MIGRATE_MAX_COLUMNS];
        int n_cols;
        int label[4]; /* the columns that name a row in messages: SQLite's primary key */
        int n_label;
        struct store_digest copied, read_back;
};

/* "name" quoted for both databases' SQL (the store's names never hold a quote). */
static int quote_into(FILE *f, const char *name) {
        return fprintf(f, "\"%s\"", name);
}

/*
 * A controller (or anything else) has the SQLite file open: every connection to a WAL
 * database holds a read lock on the "deadman switch" byte of its -shm file (byte 128,
 * SQLite's os_unix.c) for as long as it is open. Checked before this process opens the
 * file: closing a descriptor of the -shm here would drop SQLite's own locks on it.
 */
static int source_in_use(const char *path, pid_t *ret_pid) {
        _cleanup_free_ char *shm = NULL;
        if (asprintf(&shm, "%s-shm", path) < 0)
                return -ENOMEM;
        int fd = open(shm, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 128, .l_len = 1};
        int r = fcntl(fd, F_GETLK, &l);
        r = r < 0 ? -errno : l.l_type != F_UNLCK;
        if (r > 0)
                *ret_pid = l.l_pid;
        close(fd);
        return r;
}

static int table_names_check(struct store *src, struct store *dst, char **ret_reason) {
        static const char *const sql[2] = {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
                "AND name <> 'schema_version'",
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE' AND table_name <> 'schema_version'",
        };
        struct store *side[2] = {src, dst};
        for (int k = 0; k < 2; k++) {
                _cleanup_stmt_ struct store_stmt *st = NULL;
                int r = store_query(side[k], &st, sql[k], ""), n = 0;
                while (r >= 0 && (r = store_step(side[k], st)) > 0) {
                        const char *name = store_col_str(st, 0);
                        if (string_table_lookup(tables, N_TABLES, name) < 0)
                                return message_set(ret_reason, -EPROTO, "table %s of the %s database: this "
                                                   "migration knows no such table (schema %d)", name,
                                                   k ? "PostgreSQL" : "SQLite", STORE_SCHEMA_VERSION);
                        n++;
                }
                if (r < 0)
                        return message_set(ret_reason, r, "cannot list the tables of the %s database",
                                           k ? "PostgreSQL" : "SQLite");
                if (n != (int)N_TABLES)
                        return message_set(ret_reason, -EPROTO, "the %s database has %d of the store's %zu "
                                           "tables", k ? "PostgreSQL" : "SQLite", n, N_TABLES);
        }
        return 0;
}

/* Every table of the target empty (a store just made, or one a failed migration left). */
static int target_empty_check(struct store *dst, char **ret_reason) {
        for (size_t i = 0; i < N_TABLES; i++) {
                char sql[160];
                snprintf(sql, sizeof(sql), "SELECT count(*) FROM (SELECT 1 FROM \"%s\" LIMIT 1) AS x", tables[i]);
                int64_t n = 0;
                int r = store_get_int64(dst, &n, sql, "");
                if (r < 0)
                        return message_set(ret_reason, r, "cannot read table %s of the PostgreSQL database",
                                           tables[i]);
                if (n > 0)
                        return message_set(ret_reason, -ENOTEMPTY,
                                           "the PostgreSQL database is not empty (table %s has rows): migrate "
                                           "copies into an empty store only", tables[i]);
        }
        return 0;
}

/* The columns of t on PostgreSQL, each checked against SQLite's, and the primary key. */
static int columns_load(struct store *src, struct store *dst, struct table_copy *t, char **ret_reason) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(dst, &st,
                            "SELECT column_name, data_type, is_identity FROM information_schema.columns "
                            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
                            "t", t->name);
        while (r >= 0 && (r = store_step(dst, st)) > 0) {
                struct column *c = &t->cols[t->n_cols];
                const char *type = store_col_str(st, 1);
                if (t->n_cols == MIGRATE_MAX_COLUMNS || strlen(store_col_str(st, 0)) >= sizeof(c->name))
                        return message_set(ret_reason, -E2BIG, "table %s: too many columns or too long a name",
                                           t->name);
                snprintf(c->name, sizeof(c->name), "%s", store_col_str(st, 0));
                int k = store_pg_type_from_name(type);
                if (k < 0)
                        return message_set(ret_reason, -EPROTO, "table %s, column %s: no conversion to "
                                           "PostgreSQL's %s", t->name, c->name, type);
                c->type = k;
                c->identity = streq(store_col_str(st, 2), "YES");
                t->n_cols++;
        }
        if (r < 0)
                return message_set(ret_reason, r, "cannot read the columns of table %s on PostgreSQL", t->name);

        _cleanup_stmt_ struct store_stmt *lite = NULL;
        r = store_query(src, &lite, "SELECT name, pk FROM pragma_table_info(?) ORDER BY pk", "t", t->name);
        int seen = 0;
        while (r >= 0 && (r = store_step(src, lite)) > 0) {
                const char *name = store_col_str(lite, 0);
                int k = 0;
                while (k < t->n_cols && !streq(t->cols[k].name, name))
                        k++;
                if (k == t->n_cols)
                        return message_set(ret_reason, -EPROTO, "table %s, column %s: PostgreSQL's table has "
                                           "no such column", t->name, name);
                if (store_col_int64(lite, 1) > 0 && t->n_label < (int)ELEMENTSOF(t->label))
                        t->label[t->n_label++] = k;
                seen++;
        }
        if (r < 0)
                return message_set(ret_reason, r, "cannot read the columns of table %s on SQLite", t->name);
        /* SQLite's implicit rowid is a column of PostgreSQL's (the identity named rowid) */
        for (int k = 0; k < t->n_cols; k++)
                if (streq(t->cols[k].name, "rowid")) {
                        seen++;
                        if (t->n_label == 0)
                                t->label[t->n_label++] = k;
                }
        if (seen != t->n_cols)
                return message_set(ret_reason, -EPROTO, "table %s: PostgreSQL's has %d columns, SQLite's %d",
                                   t->name, t->n_cols, seen);
        return 0;
}

/* SELECT "a", "b" FROM "t" and INSERT INTO "t" ("a", "b") VALUES (CAST(?1 AS type), ...). */
static int statements_make(const struct table_copy *t, char **ret_select, char **ret_insert) {
        size_t ns = 0, ni = 0;
        _cleanup_free_ char *sel = NULL, *ins = NULL;
        FILE *s = open_memstream(&sel, &ns), *i = s ? open_memstream(&ins, &ni) : NULL;
        if (!s || !i) {
                if (s)
                        fclose(s);
                return -ENOMEM;
        }
        fputs("SELECT ", s);
        fputs("INSERT INTO ", i);
        quote_into(i, t->name);
        fputs(" (", i);
        for (int k = 0; k < t->n_cols; k++) {
                fputs(k ? ", " : "", s);
                quote_into(s, t->cols[k].name);
                fputs(k ? ", " : "", i);
                quote_into(i, t->cols[k].name);
        }
        fputs(" FROM ", s);
        quote_into(s, t->name);
        fputs(") VALUES (", i);
        for (int k = 0; k < t->n_cols; k++)
                fprintf(i, "%sCAST(?%d AS %s)", k ? ", " : "", k + 1, store_pg_type_name(t->cols[k].type));
        fputs(")", i);
        int r1 = fclose(s), r2 = fclose(i);
        if (r1 != 0 || r2 != 0)
                return -ENOMEM;
        *ret_select = TAKE_PTR(sel);
        *ret_insert = TAKE_PTR(ins);
        return 0;
}

/* "node=node-1 seq=3": the row's primary key, for messages. */
static void row_label(struct store_stmt *st, const struct table_copy *t, uint64_t ordinal, char *buf,
                      size_t size) {
        size_t n = 0;
        buf[0] = 0;
        for (int k = 0; k < t->n_label && n < size; k++) {
                const char *v = store_col_text(st, t->label[k]);
                n += (size_t)snprintf(buf + n, size - n, "%s%s=%.40s", k ? " " : "", t->cols[t->label[k]].name,
                                      v ? v : "NULL");
        }
        if (t->n_label == 0)
                snprintf(buf, size, "#%" PRIu64, ordinal);
}

static int table_copy(struct store *src, struct store *dst, struct table_copy *t, char **ret_reason) {
        _cleanup_free_ char *select = NULL, *insert = NULL;
        int r = statements_make(t, &select, &insert);
        if (r < 0)
                return message_set(ret_reason, r, "table %s: no memory for its statements", t->name);
        _cleanup_stmt_ struct store_stmt *from = NULL, *to = NULL;
        r = store_query(src, &from, select, "");
        if (r >= 0)
                r = store_query(dst, &to, insert, "");
        if (r < 0)
                return message_set(ret_reason, r, "table %s: cannot prepare the copy", t->name);
        const struct store_backend *b = dst->backend;
        while ((r = store_step(src, from)) > 0) {
                char label[200];
                uint64_t h = STORE_ROW_HASH_INIT;
                b->reset(to);
                b->clear(to);
                for (int k = 0; k < t->n_cols; k++) {
                        struct store_value v;
                        _cleanup_free_ char *text = NULL, *why = NULL;
                        src->backend->col_value(from, k, &v);
                        r = store_value_to_pg(t->cols[k].type, &v, &text, &why);
                        if (r < 0 || (r = b->bind_text(to, k + 1, text, true)) < 0) {
                                row_label(from, t, t->copied.rows + 1, label, sizeof(label));
                                return message_set(ret_reason, r, "table %s, row %s, column %s: %s", t->name,
                                                   label, t->cols[k].name, why ? why : "cannot bind it");
                        }
                        store_row_hash_add(&h, t->cols[k].type, text);
                }
                r = store_step(dst, to);
                if (r < 0) {
                        row_label(from, t, t->copied.rows + 1, label, sizeof(label));
                        return message_set(ret_reason, r, "table %s, row %s: PostgreSQL refused it: %s", t->name,
                                           label, b->errmsg(dst));
                }
                store_digest_add(&t->copied, h);
        }
        if (r < 0)
                return message_set(ret_reason, r, "table %s: cannot read it from SQLite", t->name);
        return 0;
}

/* The copied rows read back from PostgreSQL, through a cursor (a table may be large). */
static int table_read_back(struct store *dst, struct table_copy *t, char **ret_reason) {
        _cleanup_free_ char *select = NULL, *insert = NULL, *declare = NULL;
        int r = statements_make(t, &select, &insert);
        if (r < 0 || asprintf(&declare, "DECLARE orbit_migrate_verify NO SCROLL CURSOR FOR %s", select) < 0)
                return message_set(ret_reason, -ENOMEM, "table %s: no memory to read it back", t->name);
        r = store_script(dst, declare);
        for (int n = 1; r >= 0 && n > 0;) {
                _cleanup_stmt_ struct store_stmt *st = NULL;
                r = store_query(dst, &st, "FETCH " VERIFY_BATCH " FROM orbit_migrate_verify", "");
                for (n = 0; r >= 0 && (r = store_step(dst, st)) > 0; n++) {
                        uint64_t h = STORE_ROW_HASH_INIT;
                        for (int k = 0; k < t->n_cols; k++)
                                store_row_hash_add(&h, t->cols[k].type, store_col_text(st, k));
                        store_digest_add(&t->read_back, h);
                }
        }
        if (r >= 0)
                r = store_script(dst, "CLOSE orbit_migrate_verify");
        if (r < 0)
                return message_set(ret_reason, r, "table %s: cannot read it back from PostgreSQL", t->name);
        if (t->read_back.rows != t->copied.rows || t->read_back.sum != t->copied.sum)
                return message_set(ret_reason, -EIO, "table %s: %" PRIu64 " rows copied, %" PRIu64 " read back, "
                                   "digest %016" PRIx64 " copied, %016" PRIx64 " read back", t->name,
                                   t->copied.rows, t->read_back.rows, t->copied.sum, t->read_back.sum);
        return 0;
}

/* An identity column's sequence set to its greatest copied value: new rows come after. */
static int identities_advance(struct store *dst, const struct table_copy *t, char **ret_reason) {
        for (int k = 0; k < t->n_cols; k++) {
                if (!t->cols[k].identity)
                        continue;
                char sql[256], table[80];
                snprintf(table, sizeof(table), "\"%s\"", t->name);
                snprintf(sql, sizeof(sql), "SELECT setval(pg_get_serial_sequence(?1, ?2), max(\"%s\")) FROM \"%s\" "
                         "HAVING count(*) > 0", t->cols[k].name, t->name);
                int r = store_get_int64(dst, NULL, sql, "tt", table, t->cols[k].name);
                if (r < 0)
                        return message_set(ret_reason, r, "table %s, column %s: cannot set its sequence past the "
                                           "copied values", t->name, t->cols[k].name);
        }
        return 0;
}

/*
 * The stage counts are copied as they are, the triggers that keep them off during the
 * copy (they would count every member again); here they must equal what the members say,
 * as the triggers' function (store-schema-postgresql.c) counts them.
 */
static int stage_counts_check(struct store *dst, char **ret_reason) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(
                dst, &st,
                "WITH m AS (SELECT rollout, stage, "
                " count(*) FILTER (WHERE state = 'pending') AS pending, "
                " count(*) FILTER (WHERE state = 'told') AS told, "
                " count(*) FILTER (WHERE state = 'installing') AS installing, "
                " count(*) FILTER (WHERE state = 'committed') AS committed, "
                " count(*) FILTER (WHERE state = 'failed') AS failed, "
                " count(*) FILTER (WHERE state = 'rolled-back') AS rolled_back, "
                " count(*) FILTER (WHERE state = 'skipped') AS skipped, "
                " count(*) FILTER (WHERE state = 'overdue') AS overdue, "
                " count(*) FILTER (WHERE state = 'committed' AND held <> 0) AS held, "
                " count(*) FILTER (WHERE out <> 0 AND (state IN ('told', 'installing') OR "
                "  (state = 'committed' AND held = 0))) AS out "
                " FROM rollout_nodes GROUP BY rollout, stage) "
                "SELECT coalesce(c.rollout, m.rollout), coalesce(c.stage, m.stage) FROM rollout_stage_counts c "
                "FULL JOIN m ON m.rollout = c.rollout AND m.stage = c.stage "
                "WHERE (coalesce(c.pending, 0), coalesce(c.told, 0), coalesce(c.installing, 0), "
                " coalesce(c.committed, 0), coalesce(c.failed, 0), coalesce(c.rolled_back, 0), "
                " coalesce(c.skipped, 0), coalesce(c.overdue, 0), coalesce(c.held, 0), coalesce(c.out, 0)) "
                " IS DISTINCT FROM (coalesce(m.pending, 0), coalesce(m.told, 0), coalesce(m.installing, 0), "
                " coalesce(m.committed, 0), coalesce(m.failed, 0), coalesce(m.rolled_back, 0), "
                " coalesce(m.skipped, 0), coalesce(m.overdue, 0), coalesce(m.held, 0), coalesce(m.out, 0)) "
                "LIMIT 1",
                "");
        if (r < 0)
                return message_set(ret_reason, r, "cannot check the copied rollout_stage_counts");
        if (r > 0)
                return message_set(ret_reason, -EBADMSG, "table rollout_stage_counts, row rollout=%s stage=%" PRId64
                                   ": its counts are not its members' (rollout_nodes) in the SQLite store",
                                   store_col_str(st, 0), store_col_int64(st, 1));
        return 0;
}

static json_t *report_make(const struct table_copy *t, size_t n) {
        json_t *list = json_array();
        uint64_t total = 0;
        for (size_t i = 0; list && i < n; i++) {
                char digest[17];
                snprintf(digest, sizeof(digest), "%016" PRIx64, t[i].read_back.sum);
                total += t[i].copied.rows;
                if (json_array_append_new(list, json_pack("{s:s, s:I, s:I, s:s, s:b}", "table", t[i].name,
                                                          "sqlite_rows", (json_int_t)t[i].copied.rows,
                                                          "postgresql_rows", (json_int_t)t[i].read_back.rows,
                                                          "digest", digest,
                                                          "match", t[i].copied.sum == t[i].read_back.sum)) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        return list ? json_pack("{s:i, s:o, s:I}", "schema", STORE_SCHEMA_VERSION, "tables", list, "rows",
                                (json_int_t)total)
                    : NULL;
}

static int addresses_check(const char *from, const char *to, struct store_address *ret_from, char **ret_reason) {
        struct store_address a;
        int r = store_address_parse(from, ret_from, ret_reason);
        if (r < 0)
                return r;
        if (ret_from->kind != STORE_SQLITE)
                return message_set(ret_reason, -EINVAL, "--from: expected sqlite:PATH (migrate copies a SQLite "
                                   "store into PostgreSQL)");
        r = store_address_parse(to, &a, ret_reason);
        if (r < 0)
                return r;
        if (a.kind != STORE_POSTGRESQL)
                return message_set(ret_reason, -EINVAL, "--to: expected postgresql://...");
        struct stat stbuf;
        if (stat(ret_from->target, &stbuf) < 0)
                return message_set(ret_reason, -errno, "--from: %s: %m", ret_from->target);
        pid_t pid = 0;
        r = source_in_use(ret_from->target, &pid);
        if (r < 0)
                return message_set(ret_reason, r, "--from: cannot tell whether %s is in use: %s", ret_from->target,
                                   strerror(-r));
        if (r > 0)
                return message_set(ret_reason, -EBUSY, "--from: %s is open in process %d (a controller?): stop "
                                   "it first, the store must not change during the copy", ret_from->target,
                                   (int)pid);
        return 0;
}

static int encoding_check(struct store *dst, char **ret_reason) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(dst, &st, "SELECT current_setting('server_encoding')", "");
        if (r <= 0)
                return message_set(ret_reason, r < 0 ? r : -EIO, "cannot read the PostgreSQL database's encoding");
        if (!streq(store_col_str(st, 0), "UTF8"))
                return message_set(ret_reason, -EPROTO, "the PostgreSQL database's encoding is %s: the store's "
                                   "text is UTF-8 (CREATE DATABASE ... ENCODING 'UTF8')", store_col_str(st, 0));
        return store_script(dst, "SET client_encoding = 'UTF8'");
}

static int migrate_locked(struct store *src, struct store *dst, struct table_copy *t, char **ret_reason) {
        int r = table_names_check(src, dst, ret_reason);
        if (r < 0)
                return r;
        r = target_empty_check(dst, ret_reason);
        if (r < 0)
                return r;
        /* inside the transaction: a failed migration leaves them on */
        r = store_script(dst, "ALTER TABLE rollout_nodes DISABLE TRIGGER USER");
        if (r < 0)
                return message_set(ret_reason, r, "cannot turn the stage-count triggers off for the copy "
                                   "(the role must own the store's tables)");
        for (size_t i = 0; i < N_TABLES; i++) {
                t[i].name = tables[i];
                if ((r = columns_load(src, dst, &t[i], ret_reason)) < 0 ||
                    (r = table_copy(src, dst, &t[i], ret_reason)) < 0 ||
                    (r = identities_advance(dst, &t[i], ret_reason)) < 0)
                        return r;
        }
        r = store_script(dst, "ALTER TABLE rollout_nodes ENABLE TRIGGER USER");
        if (r < 0)
                return message_set(ret_reason, r, "cannot turn the stage-count triggers back on");
        r = stage_counts_check(dst, ret_reason);
        if (r < 0)
                return r;
        for (size_t i = 0; i < N_TABLES; i++)
                if ((r = table_read_back(dst, &t[i], ret_reason)) < 0)
                        return r;
        return 0;
}

int store_migrate(const char *from, const char *to, json_t **ret_report, char **ret_reason) {
        struct store_address a;
        int r = addresses_check(from, to, &a, ret_reason);
        if (r < 0)
                return r;
        _cleanup_free_ char *reason = NULL;
        _cleanup_store_ struct store *src = NULL, *dst = NULL;
        r = store_open(from, &src, &reason);
        if (r < 0)
                return message_set(ret_reason, r, "--from: %s", reason ? reason : strerror(-r));
        r = store_open(to, &dst, &reason);
        if (r < 0)
                return message_set(ret_reason, r, "--to: %s", reason ? reason : strerror(-r));
        r = encoding_check(dst, ret_reason);
        if (r < 0)
                return r;
        /* SQLite: the write lock for the whole copy, one snapshot of every table; PostgreSQL:
         * the store's writer lock, so a controller started on it waits for the commit */
        r = store_begin(src);
        if (r < 0)
                return message_set(ret_reason, r, "--from: cannot lock the SQLite store: %s",
                                   src->backend->errmsg(src));
        _cleanup_transaction_ struct store *src_guard = src;
        r = store_begin(dst);
        if (r < 0)
                return message_set(ret_reason, r, "--to: cannot start the transaction: %s", dst->backend->errmsg(dst));
        _cleanup_transaction_ struct store *dst_guard = dst;
        _cleanup_free_ struct table_copy *t = calloc(N_TABLES, sizeof(*t));
        if (!t)
                return -ENOMEM;
        r = migrate_locked(src, dst, t, ret_reason);
        if (r < 0)
                return r;
        const char *fail = getenv("ORBIT_MIGRATE_FAIL_BEFORE_COMMIT");
        if (fail && *fail)
                return message_set(ret_reason, -ECANCELED, "ORBIT_MIGRATE_FAIL_BEFORE_COMMIT is set (a test)");
        json_t *report = report_make(t, N_TABLES);
        if (!report)
                return -ENOMEM;
        r = commit(&dst_guard);
        if (r < 0) {
                json_decref(report);
                return message_set(ret_reason, r, "cannot commit the copy: %s", dst->backend->errmsg(dst));
        }
        *ret_report = report;
        return 0;
}
