/* The store's PostgreSQL backend through libpq (docs/storage.md). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/store-backend.h"
#include "controller/store-dialect.h"
#include "controller/store-internal.h"

/* The type OIDs of pg_type.h the binder gives its parameters. */
#define PG_TEXT_OID 25
#define PG_INT8_OID 20
#define PG_FLOAT8_OID 701
#define PG_VARCHAR_OID 1043

struct pg_conn {
        PGconn *conn;
        char *error; /* the last failure's message, when libpq's is not it */
        int64_t changes;
};

struct pg_stmt {
        struct store_stmt head;
        char *original; /* as the store wrote it, for messages */
        char *sql;      /* in PostgreSQL's dialect */
        int n_params;
        char **values; /* n_params texts (NULL: SQL NULL), owned */
        unsigned *types;
        PGresult *result;
        int row; /* the current row of result; -1 before the first step */
};

static struct pg_conn *pg(struct store *s) {
        return s->conn;
}

static struct pg_stmt *stmt(struct store_stmt *st) {
        return (struct pg_stmt *)st;
}

static void set_error(struct store *s, const char *fmt, ...) _printf_(2, 3);
static void set_error(struct store *s, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        free(pg(s)->error);
        if (vasprintf(&pg(s)->error, fmt, ap) < 0)
                pg(s)->error = NULL;
        va_end(ap);
}

/* A failed result to -errno by its SQLSTATE class (the message stays in the result). */
static int result_errno(struct store *s, PGresult *res) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        set_error(s, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(pg(s)->conn));
        /* one line: libpq ends its messages with a newline */
        size_t n = strlen(pg(s)->error ?: "");
        if (n && pg(s)->error[n - 1] == '\n')
                pg(s)->error[n - 1] = 0;
        if (!state)
                return -EIO;
        if (strncmp(state, "23", 2) == 0)
                return -EEXIST;
        if (strncmp(state, "40", 2) == 0 || strcmp(state, "55P03") == 0)
                return -EBUSY;
        if (strcmp(state, "53100") == 0)
                return -ENOSPC;
        if (strncmp(state, "53", 2) == 0)
                return -ENOMEM;
        if (strcmp(state, "42501") == 0 || strncmp(state, "28", 2) == 0)
                return -EACCES;
        return -EIO;
}

static int pg_open(struct store *s, const char *uri, char **ret_reason) {
        struct pg_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        s->conn = c;
        c->conn = PQconnectdb(uri);
        if (!c->conn)
                return -ENOMEM;
        if (PQstatus(c->conn) != CONNECTION_OK) {
                /* libpq's message names the host, never the password */
                char *m = PQerrorMessage(c->conn);
                size_t n = strlen(m);
                return message_set(ret_reason, -ECONNREFUSED, "cannot connect to PostgreSQL: %.*s",
                                   (int)(n && m[n - 1] == '\n' ? n - 1 : n), m);
        }
        PGresult *res = PQexec(c->conn, "SET client_min_messages = warning");
        PQclear(res);
        return 0;
}

static void pg_close(struct store *s) {
        struct pg_conn *c = pg(s);
        if (!c)
                return;
        PQfinish(c->conn);
        free(c->error);
        free(c);
        s->conn = NULL;
}

static int pg_script(struct store *s, const char *sql) {
        PGresult *res = PQexec(pg(s)->conn, sql);
        ExecStatusType t = PQresultStatus(res);
        int r = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? 0 : result_errno(s, res);
        PQclear(res);
        return r;
}

static void params_free(struct pg_stmt *st) {
        for (int i = 0; i < st->n_params; i++) {
                free(st->values[i]);
                st->values[i] = NULL;
        }
}

static void pg_finalize(struct store_stmt *h) {
        struct pg_stmt *st = stmt(h);
        PQclear(st->result);
        params_free(st);
        free(st->values);
        free(st->types);
        free(st->sql);
        free(st->original);
        free(st);
}

static int pg_prepare(struct store *s, const char *sql, struct store_stmt **ret) {
        struct pg_stmt *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->head = (struct store_stmt){.backend = &store_backend_postgresql, .s = s};
        st->row = -1;
        int r = store_sql_postgresql(sql, &st->sql, &st->n_params);
        st->original = strdup(sql);
        if (r >= 0 && !st->original)
                r = -ENOMEM;
        if (r >= 0 && st->n_params > 0) {
                st->values = calloc((size_t)st->n_params, sizeof(*st->values));
                st->types = calloc((size_t)st->n_params, sizeof(*st->types));
                if (!st->values || !st->types)
                        r = -ENOMEM;
        }
        if (r < 0) {
                set_error(s, "cannot rewrite the statement for PostgreSQL");
                pg_finalize(&st->head);
                return r;
        }
        for (int i = 0; i < st->n_params; i++)
                st->types[i] = PG_TEXT_OID;
        *ret = &st->head;
        return 0;
}

static const char *pg_sql(struct store_stmt *st) {
        return stmt(st)->original;
}

static int param_set(struct store_stmt *h, int i, unsigned type, char *text) {
        struct pg_stmt *st = stmt(h);
        if (i < 1 || i > st->n_params) {
                free(text);
                set_error(h->s, "no parameter %d (the statement has %d)", i, st->n_params);
                return -EINVAL;
        }
        free(st->values[i - 1]);
        st->values[i - 1] = text;
        st->types[i - 1] = type;
        return 0;
}

static int pg_bind_text(struct store_stmt *st, int i, const char *text, bool copy) {
        char *t = NULL;
        if (text && !(t = strdup(text)))
                return -ENOMEM;
        return param_set(st, i, PG_TEXT_OID, t);
}

static int pg_bind_int64(struct store_stmt *st, int i, int64_t v) {
        char *t;
        if (asprintf(&t, "%" PRId64, v) < 0)
                return -ENOMEM;
        return param_set(st, i, PG_INT8_OID, t);
}

static int pg_bind_double(struct store_stmt *st, int i, double v) {
        char *t;
        if (asprintf(&t, "%.17g", v) < 0)
                return -ENOMEM;
        return param_set(st, i, PG_FLOAT8_OID, t);
}

static int pg_step(struct store_stmt *h) {
        struct pg_stmt *st = stmt(h);
        struct pg_conn *c = pg(h->s);
        if (!st->result) {
                st->result = PQexecParams(c->conn, st->sql, st->n_params, st->types,
                                          (const char *const *)st->values, NULL, NULL, 0);
                ExecStatusType t = PQresultStatus(st->result);
                if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
                        int r = result_errno(h->s, st->result);
                        PQclear(st->result);
                        st->result = NULL;
                        return r;
                }
                const char *n = PQcmdTuples(st->result);
                c->changes = n && *n ? strtoll(n, NULL, 10) : 0;
                st->row = -1;
        }
        if (st->row + 1 < PQntuples(st->result)) {
                st->row++;
                return 1;
        }
        st->row = PQntuples(st->result);
        return 0;
}

static void pg_reset(struct store_stmt *h) {
        struct pg_stmt *st = stmt(h);
        PQclear(st->result);
        st->result = NULL;
        st->row = -1;
}

static void pg_clear(struct store_stmt *h) {
        struct pg_stmt *st = stmt(h);
        params_free(st);
        for (int i = 0; i < st->n_params; i++)
                st->types[i] = PG_TEXT_OID;
}

static bool has_value(struct pg_stmt *st, int i) {
        return st->result && st->row >= 0 && st->row < PQntuples(st->result) &&
               i < PQnfields(st->result) && !PQgetisnull(st->result, st->row, i);
}

static const char *pg_col_text(struct store_stmt *h, int i) {
        struct pg_stmt *st = stmt(h);
        return has_value(st, i) ? PQgetvalue(st->result, st->row, i) : NULL;
}

static int64_t pg_col_int64(struct store_stmt *h, int i) {
        const char *t = pg_col_text(h, i);
        if (!t)
                return 0;
        if (t[0] == 't' && !t[1]) /* a boolean, as SQLite would give it */
                return 1;
        if (t[0] == 'f' && !t[1])
                return 0;
        return strtoll(t, NULL, 10);
}

static double pg_col_double(struct store_stmt *h, int i) {
        const char *t = pg_col_text(h, i);
        return t ? strtod(t, NULL) : 0;
}

static bool pg_col_is_null(struct store_stmt *h, int i) {
        return !has_value(stmt(h), i);
}

static bool pg_col_is_text(struct store_stmt *h, int i) {
        struct pg_stmt *st = stmt(h);
        if (!has_value(st, i))
                return false;
        Oid t = PQftype(st->result, i);
        return t == PG_TEXT_OID || t == PG_VARCHAR_OID;
}

static int64_t pg_changes(struct store *s) {
        return pg(s)->changes;
}

static const char *pg_errmsg(struct store *s) {
        if (!pg(s))
                return "not open";
        return pg(s)->error ? pg(s)->error : PQerrorMessage(pg(s)->conn);
}

const struct store_backend store_backend_postgresql = {
        .name = "postgresql",
        .open = pg_open,
        .close = pg_close,
        /* SQLite's one writer at a time, across every connection and controller: a
         * transaction-scoped advisory lock (docs/storage.md) */
        .begin = "BEGIN; SELECT pg_advisory_xact_lock(7420001)",
        .schema = store_schema_postgresql,
        .script = pg_script,
        .prepare = pg_prepare,
        .finalize = pg_finalize,
        .sql = pg_sql,
        .bind_text = pg_bind_text,
        .bind_int64 = pg_bind_int64,
        .bind_double = pg_bind_double,
        .step = pg_step,
        .reset = pg_reset,
        .clear = pg_clear,
        .col_text = pg_col_text,
        .col_int64 = pg_col_int64,
        .col_double = pg_col_double,
        .col_is_null = pg_col_is_null,
        .col_is_text = pg_col_is_text,
        .changes = pg_changes,
        .errmsg = pg_errmsg,
};
