/* The store's SQL binder: prepare and bind by a format string, step, typed columns. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "lib/log.h"
#include "controller/store-backend.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"

/* Log "store: <what>: <the database's message>" and return r. */
static int store_fail(struct store *s, int r, const char *what) {
        log_error("store: %s: %s", what, s->backend->errmsg(s));
        return r;
}

int store_script(struct store *s, const char *sql) {
        int r = s->backend->script(s, sql);
        return r < 0 ? store_fail(s, r, sql) : 0;
}

int store_begin(struct store *s) {
        int r = store_script(s, s->backend->begin);
        /* A begin of several statements (PostgreSQL's takes a lock after BEGIN) may fail
         * half way, the transaction open: closed here, or the connection would refuse every
         * later statement (a caller's guard exists only once the begin succeeded). */
        if (r < 0 && strchr(s->backend->begin, ';'))
                (void) store_script(s, "ROLLBACK");
        return r;
}

int store_begin_node(struct store *s, const char *node) {
        const struct store_backend *b = s->backend;
        if (!b->begin_node)
                return store_begin(s);
        /* all go with the sync's first query: a failure then is the sync's (a connection
         * found lost there: store_connection_lost) */
        int r = b->begin_send(s, b->begin_node);
        if (r < 0)
                (void) store_fail(s, r, b->begin_node);
        if (r >= 0)
                r = store_exec_later(s, b->lock_shared, "");
        if (r >= 0)
                r = store_exec_later(s, b->lock_node, "t", node);
        if (r >= 0 && b->sync_settings)
                r = store_exec_later(s, b->sync_settings, "");
        if (r < 0) {
                (void) store_script(s, "ROLLBACK");
                return r;
        }
        return 0;
}

bool store_connection_lost(struct store *s) {
        return s->backend->lost && s->backend->lost(s);
}

bool store_locks_rollouts(const struct store *s) {
        return s->backend->lock_rollouts != NULL;
}

int store_lock_rollouts(struct store *s, bool involved, bool *ret_may) {
        const struct store_backend *b = s->backend;
        *ret_may = true;
        if (!b->lock_rollouts)
                return 0;
        *ret_may = involved;
        if (!involved)
                return 0;
        /* sent with the sync's next statement, which the server runs once it holds the lock:
         * nothing the sync reads after this comes before it, and no round trip of its own */
        return store_exec_later(s, b->lock_rollouts, "");
}

void store_stmt_finalize(struct store_stmt *st) {
        st->backend->finalize(st);
}

static int bindv(struct store *s, struct store_stmt *st, const char *fmt, va_list ap) {
        const struct store_backend *b = st->backend;
        int i = 0;
        for (const char *f = fmt; *f; f++) {
                int r;
                i++;
                switch (*f) {
                case 't':
                        r = b->bind_text(st, i, va_arg(ap, const char *), false);
                        break;
                case 'T':
                        r = b->bind_text(st, i, va_arg(ap, const char *), true);
                        break;
                case 'i':
                        r = b->bind_int64(st, i, va_arg(ap, int64_t));
                        break;
                case 'd':
                        r = b->bind_int64(st, i, va_arg(ap, int));
                        break;
                case 'f':
                        r = b->bind_double(st, i, va_arg(ap, double));
                        break;
                case 'b': {
                        const void *data = va_arg(ap, const void *);
                        r = b->bind_blob(st, i, data, va_arg(ap, size_t));
                        break;
                }
                case 'j': {
                        json_t *v = va_arg(ap, json_t *);
                        _cleanup_free_ char *text =
                                v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
                        if (v && !text)
                                return -ENOMEM;
                        r = b->bind_text(st, i, text, true);
                        break;
                }
                default:
                        log_error("store: %s: bad parameter format '%c' in \"%s\"", b->sql(st), *f,
                                  fmt);
                        return -EINVAL;
                }
                if (r < 0) {
                        log_error("store: %s: parameter %d: %s", b->sql(st), i,
                                  s->backend->errmsg(s));
                        return r;
                }
        }
        return 0;
}

static int queryv(struct store *s, struct store_stmt **ret, const char *sql, const char *fmt,
                  va_list ap) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = s->backend->prepare(s, sql, &st);
        if (r < 0)
                return store_fail(s, r, sql);
        r = bindv(s, st, fmt, ap);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(st);
        return 0;
}

int store_query(struct store *s, struct store_stmt **ret, const char *sql, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, ret, sql, fmt, ap);
        va_end(ap);
        return r;
}

int store_query_row(struct store *s, struct store_stmt **ret, const char *sql, const char *fmt,
                    ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, ret, sql, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        return store_step(s, *ret);
}

int store_rebind(struct store *s, struct store_stmt *st, const char *fmt, ...) {
        st->backend->reset(st);
        st->backend->clear(st);
        va_list ap;
        va_start(ap, fmt);
        int r = bindv(s, st, fmt, ap);
        va_end(ap);
        return r;
}

void store_reset(struct store_stmt *st) {
        st->backend->reset(st);
}

int store_step(struct store *s, struct store_stmt *st) {
        int r = st->backend->step(st);
        return r < 0 ? store_fail(s, r, st->backend->sql(st)) : r;
}

int store_step_done(struct store *s, struct store_stmt *st) {
        int r = store_step(s, st);
        if (r > 0) {
                log_error("store: %s: returned a row", st->backend->sql(st));
                return -EIO;
        }
        return r;
}

int store_exec(struct store *s, const char *sql, const char *fmt, ...) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, &st, sql, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        return store_step_done(s, st);
}

static int exec_later(struct store *s, bool counted, const char *sql, const char *fmt, va_list ap) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = queryv(s, &st, sql, fmt, ap);
        if (r < 0)
                return r;
        st->counted = counted;
        if (st->backend->send)
                r = st->backend->send(st);
        else
                while ((r = st->backend->step(st)) > 0)
                        ;
        if (r < 0)
                return store_fail(s, r, sql);
        if (r == 0 && counted) /* it ran at once */
                s->counted += s->backend->changes(s);
        return 0;
}

int store_exec_later(struct store *s, const char *sql, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = exec_later(s, false, sql, fmt, ap);
        va_end(ap);
        return r;
}

int store_exec_later_counted(struct store *s, const char *sql, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = exec_later(s, true, sql, fmt, ap);
        va_end(ap);
        return r;
}

bool store_sends_later(const struct store *s) {
        return s->backend->send != NULL;
}

int store_get_int64(struct store *s, int64_t *ret, const char *sql, const char *fmt, ...) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = queryv(s, &st, sql, fmt, ap);
        va_end(ap);
        if (r >= 0)
                r = store_step(s, st);
        if (r > 0 && ret)
                *ret = store_col_int64(st, 0);
        return r;
}

int store_rows_json(struct store *s, struct store_stmt *st, json_t *(*row)(struct store_stmt *st),
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
        return s->backend->changes(s);
}

const char *store_col_text(struct store_stmt *st, int i) {
        return st->backend->col_text(st, i);
}

int64_t store_col_int64(struct store_stmt *st, int i) {
        return st->backend->col_int64(st, i);
}

double store_col_double(struct store_stmt *st, int i) {
        return st->backend->col_double(st, i);
}

bool store_col_is_null(struct store_stmt *st, int i) {
        return st->backend->col_is_null(st, i);
}

bool store_col_is_text(struct store_stmt *st, int i) {
        return st->backend->col_is_text(st, i);
}

json_t *store_col_json(struct store_stmt *st, int i) {
        const char *text = store_col_text(st, i);
        if (!text)
                return json_null();
        json_t *v = json_loads(text, 0, NULL);
        return v ? v : json_null();
}

int store_col_blob(struct store_stmt *st, int i, char **ret, size_t *ret_len) {
        return st->backend->col_blob(st, i, ret, ret_len);
}

json_t *store_col_string_or_null(struct store_stmt *st, int i) {
        const char *text = store_col_text(st, i);
        return text ? json_string(text) : json_null();
}

json_t *store_col_int_or_null(struct store_stmt *st, int i) {
        if (store_col_is_null(st, i))
                return json_null();
        return json_integer(store_col_int64(st, i));
}

json_t *store_col_json_0(struct store_stmt *st) {
        return store_col_json(st, 0);
}

json_t *store_col_string_or_null_0(struct store_stmt *st) {
        return store_col_string_or_null(st, 0);
}
