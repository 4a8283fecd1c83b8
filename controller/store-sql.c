/* The store's SQL binder: prepare and bind by a format string, step, typed columns. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "lib/log.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"

int store_errno(int rc) {
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

int store_fail(struct store *s, int rc, const char *what) {
        log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
        return store_errno(rc);
}

int store_script(struct store *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                log_error("store: %s: %s", sql, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return store_errno(rc);
        }
        return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *text, sqlite3_destructor_type how) {
        return text ? sqlite3_bind_text(st, i, text, -1, how) : sqlite3_bind_null(st, i);
}

static int bindv(struct store *s, sqlite3_stmt *st, const char *fmt, va_list ap) {
        int i = 0;
        for (const char *f = fmt; *f; f++) {
                int rc;
                i++;
                switch (*f) {
                case 't':
                        rc = bind_text(st, i, va_arg(ap, const char *), SQLITE_STATIC);
                        break;
                case 'T':
                        rc = bind_text(st, i, va_arg(ap, const char *), SQLITE_TRANSIENT);
                        break;
                case 'i':
                        rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
                        break;
                case 'd':
                        rc = sqlite3_bind_int(st, i, va_arg(ap, int));
                        break;
                case 'f':
                        rc = sqlite3_bind_double(st, i, va_arg(ap, double));
                        break;
                case 'j': {
                        json_t *v = va_arg(ap, json_t *);
                        if (!v) {
                                rc = sqlite3_bind_null(st, i);
                                break;
                        }
                        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                        if (!text)
                                return -ENOMEM;
                        rc = sqlite3_bind_text(st, i, text, -1, free);
                        break;
                }
                default:
                        log_error("store: %s: bad parameter format '%c' in \"%s\"", sqlite3_sql(st),
                                  *f, fmt);
                        return -EINVAL;
                }
                if (rc != SQLITE_OK) {
                        log_error("store: %s: parameter %d: %s", sqlite3_sql(st), i,
                                  sqlite3_errmsg(s->db));
                        return store_errno(rc);
                }
        }
        return 0;
}

static int queryv(struct store *s, sqlite3_stmt **ret, const char *sql, const char *fmt,
                  va_list ap) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_fail(s, rc, sql);
        int r = bindv(s, st, fmt, ap);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(st);
        return 0;
}

int store_query(struct store *s, sqlite3_stmt **ret, const char *sql, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, ret, sql, fmt, ap);
        va_end(ap);
        return r;
}

int store_query_row(struct store *s, sqlite3_stmt **ret, const char *sql, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, ret, sql, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        return store_step(s, *ret);
}

int store_rebind(struct store *s, sqlite3_stmt *st, const char *fmt, ...) {
        (void) sqlite3_reset(st);
        (void) sqlite3_clear_bindings(st);
        va_list ap;
        va_start(ap, fmt);
        int r = bindv(s, st, fmt, ap);
        va_end(ap);
        return r;
}

int store_step(struct store *s, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return store_fail(s, rc, sqlite3_sql(st));
}

int store_step_done(struct store *s, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_fail(s, rc, sqlite3_sql(st));
        return 0;
}

int store_exec(struct store *s, const char *sql, const char *fmt, ...) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, &st, sql, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        return store_step_done(s, st);
}

int store_get_int64(struct store *s, int64_t *ret, const char *sql, const char *fmt, ...) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, &st, sql, fmt, ap);
        va_end(ap);
        if (r >= 0)
                r = store_step(s, st);
        if (r > 0 && ret)
                *ret = sqlite3_column_int64(st, 0);
        return r;
}

int store_rows_json(struct store *s, sqlite3_stmt *st, json_t *(*row)(sqlite3_stmt *st),
                    json_t **ret) {
        _cleanup_(json_decrefp) json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        int r;
        while ((r = store_step(s, st)) > 0) {
                json_t *e = row(st);
                if (!e || json_array_append_new(a, e) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int64_t store_changes(struct store *s) {
        return sqlite3_changes(s->db);
}

json_t *store_col_json(sqlite3_stmt *st, int i) {
        const char *text = store_col_text(st, i);
        if (!text)
                return json_null();
        json_t *v = json_loads(text, 0, NULL);
        return v ? v : json_null();
}

json_t *store_col_string_or_null(sqlite3_stmt *st, int i) {
        const char *text = store_col_text(st, i);
        return text ? json_string(text) : json_null();
}

json_t *store_col_int_or_null(sqlite3_stmt *st, int i) {
        if (store_col_is_null(st, i))
                return json_null();
        return json_integer(sqlite3_column_int64(st, i));
}

json_t *store_col_json_0(sqlite3_stmt *st) {
        return store_col_json(st, 0);
}

json_t *store_col_string_or_null_0(sqlite3_stmt *st) {
        return store_col_string_or_null(st, 0);
}
