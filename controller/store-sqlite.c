/* The store's SQLite backend (docs/storage.md): the embedded default. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/store-backend.h"
#include "controller/store-internal.h"

struct sqlite_stmt {
        struct store_stmt head;
        sqlite3_stmt *st;
};

static sqlite3_stmt *stmt(struct store_stmt *st) {
        return ((struct sqlite_stmt *)st)->st;
}

static sqlite3 *db(struct store *s) {
        return s->conn;
}

/* SQLite result codes to -errno: busy, full and constraint are worth telling apart. */
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

static int ok(int rc) {
        return rc == SQLITE_OK ? 0 : sqlite_errno(rc);
}

static int sqlite_open(struct store *s, const char *path, char **ret_reason) {
        sqlite3 *d = NULL;
        int rc = sqlite3_open_v2(
                path, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        s->conn = d;
        if (rc != SQLITE_OK)
                return message_set(ret_reason, sqlite_errno(rc), "cannot open %s: %s", path,
                                   d ? sqlite3_errmsg(d) : sqlite3_errstr(rc));
        enum { BUSY_TIMEOUT_MS = 5000, BUSY_RETRY_MS = 50 };
        (void)sqlite3_busy_timeout(d, BUSY_TIMEOUT_MS);
        (void)sqlite3_extended_result_codes(d, 1);
        /* SQLite does not call the busy handler where waiting could deadlock (two openers of
         * a new file, each with a shared lock, both switching it to WAL): one gets
         * SQLITE_BUSY at once. The switch is idempotent: tried again, for as long as the
         * busy timeout. */
        for (int tries = 0;; tries++) {
                rc = sqlite3_exec(d, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON",
                                  NULL, NULL, NULL);
                if ((rc & 0xff) != SQLITE_BUSY || tries >= BUSY_TIMEOUT_MS / BUSY_RETRY_MS)
                        break;
                (void)usleep(BUSY_RETRY_MS * 1000);
        }
        if (rc != SQLITE_OK)
                return message_set(ret_reason, sqlite_errno(rc), "cannot set up %s: %s", path,
                                   sqlite3_errmsg(d));
        return 0;
}

static void sqlite_close(struct store *s) {
        if (s->conn && sqlite3_close(db(s)) != SQLITE_OK)
                log_warning("store: close: %s", sqlite3_errmsg(db(s)));
        s->conn = NULL;
}

static int sqlite_script(struct store *s, const char *sql) {
        return ok(sqlite3_exec(db(s), sql, NULL, NULL, NULL));
}

static int sqlite_prepare(struct store *s, const char *sql, struct store_stmt **ret) {
        struct sqlite_stmt *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        int rc = sqlite3_prepare_v2(db(s), sql, -1, &st->st, NULL);
        if (rc != SQLITE_OK) {
                free(st);
                return sqlite_errno(rc);
        }
        st->head = (struct store_stmt){.backend = &store_backend_sqlite, .s = s};
        *ret = &st->head;
        return 0;
}

static void sqlite_finalize(struct store_stmt *st) {
        (void)sqlite3_finalize(stmt(st));
        free(st);
}

static const char *sqlite_sql(struct store_stmt *st) {
        return sqlite3_sql(stmt(st));
}

static int sqlite_bind_text(struct store_stmt *st, int i, const char *text, bool copy) {
        if (!text)
                return ok(sqlite3_bind_null(stmt(st), i));
        return ok(
                sqlite3_bind_text(stmt(st), i, text, -1, copy ? SQLITE_TRANSIENT : SQLITE_STATIC));
}

static int sqlite_bind_int64(struct store_stmt *st, int i, int64_t v) {
        return ok(sqlite3_bind_int64(stmt(st), i, v));
}

static int sqlite_bind_double(struct store_stmt *st, int i, double v) {
        return ok(sqlite3_bind_double(stmt(st), i, v));
}

static int sqlite_bind_blob(struct store_stmt *st, int i, const void *data, size_t len) {
        return ok(sqlite3_bind_blob64(stmt(st), i, data, len, SQLITE_TRANSIENT));
}

static int sqlite_step(struct store_stmt *st) {
        int rc = sqlite3_step(stmt(st));
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return sqlite_errno(rc);
}

static void sqlite_reset(struct store_stmt *st) {
        (void)sqlite3_reset(stmt(st));
}

static void sqlite_clear(struct store_stmt *st) {
        (void)sqlite3_clear_bindings(stmt(st));
}

static const char *sqlite_col_text(struct store_stmt *st, int i) {
        return (const char *)sqlite3_column_text(stmt(st), i);
}

static int64_t sqlite_col_int64(struct store_stmt *st, int i) {
        return sqlite3_column_int64(stmt(st), i);
}

static double sqlite_col_double(struct store_stmt *st, int i) {
        return sqlite3_column_double(stmt(st), i);
}

static bool sqlite_col_is_null(struct store_stmt *st, int i) {
        return sqlite3_column_type(stmt(st), i) == SQLITE_NULL;
}

static bool sqlite_col_is_text(struct store_stmt *st, int i) {
        return sqlite3_column_type(stmt(st), i) == SQLITE_TEXT;
}

static void sqlite_col_value(struct store_stmt *st, int i, struct store_value *ret) {
        *ret = (struct store_value){.kind = STORE_VALUE_NULL};
        switch (sqlite3_column_type(stmt(st), i)) {
        case SQLITE_INTEGER:
                ret->kind = STORE_VALUE_INTEGER;
                ret->i = sqlite3_column_int64(stmt(st), i);
                break;
        case SQLITE_FLOAT:
                ret->kind = STORE_VALUE_FLOAT;
                ret->f = sqlite3_column_double(stmt(st), i);
                break;
        case SQLITE_TEXT:
                ret->kind = STORE_VALUE_TEXT;
                ret->bytes = (const char *)sqlite3_column_text(stmt(st), i);
                ret->len = (size_t)sqlite3_column_bytes(stmt(st), i);
                break;
        case SQLITE_BLOB:
                ret->kind = STORE_VALUE_BLOB;
                ret->bytes = sqlite3_column_blob(stmt(st), i);
                ret->len = (size_t)sqlite3_column_bytes(stmt(st), i);
                break;
        }
}

static int sqlite_col_blob(struct store_stmt *st, int i, char **ret, size_t *ret_len) {
        *ret = NULL;
        *ret_len = 0;
        if (sqlite3_column_type(stmt(st), i) == SQLITE_NULL)
                return 0;
        const void *p = sqlite3_column_blob(stmt(st), i);
        size_t len = (size_t)sqlite3_column_bytes(stmt(st), i);
        char *copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        if (len > 0)
                memcpy(copy, p, len);
        copy[len] = 0;
        *ret = copy;
        *ret_len = len;
        return 0;
}

static int64_t sqlite_changes(struct store *s) {
        return sqlite3_changes(db(s));
}

static const char *sqlite_errmsg(struct store *s) {
        return s->conn ? sqlite3_errmsg(db(s)) : "not open";
}

const struct store_backend store_backend_sqlite = {
        .name = "sqlite",
        .open = sqlite_open,
        .close = sqlite_close,
        .begin = "BEGIN IMMEDIATE",
        .script = sqlite_script,
        .prepare = sqlite_prepare,
        .finalize = sqlite_finalize,
        .sql = sqlite_sql,
        .bind_text = sqlite_bind_text,
        .bind_int64 = sqlite_bind_int64,
        .bind_double = sqlite_bind_double,
        .bind_blob = sqlite_bind_blob,
        .step = sqlite_step,
        .reset = sqlite_reset,
        .clear = sqlite_clear,
        .col_text = sqlite_col_text,
        .col_int64 = sqlite_col_int64,
        .col_double = sqlite_col_double,
        .col_is_null = sqlite_col_is_null,
        .col_is_text = sqlite_col_is_text,
        .col_value = sqlite_col_value,
        .col_blob = sqlite_col_blob,
        .changes = sqlite_changes,
        .errmsg = sqlite_errmsg,
};
