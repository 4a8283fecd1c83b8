/* The store's PostgreSQL backend through libpq (docs/storage.md). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
#define PG_BYTEA_OID 17

/*
 * The statements this session has prepared on the server, by text and parameter types: a
 * statement run again is neither parsed nor analysed again, and after a few runs the
 * server plans it once (its generic plan) instead of at each run. A sync is some twenty
 * small statements, so that is most of the server's CPU per sync (issue #22 item 5).
 * Prepared statements live as long as the session (not rolled back with a transaction);
 * a connection made again starts with none. Full: the rest run unprepared.
 */
#define PG_CACHE_SLOTS 1024
#define PG_CACHE_MAX 768

struct pg_cached {
        char *sql; /* NULL: a free slot */
        unsigned *types;
        int n_params;
        unsigned name;
};

/*
 * A statement of a transaction whose result nobody reads (store_exec_later) is sent and not
 * waited for: libpq's pipeline mode holds it, and the next statement that waits (a query,
 * the COMMIT) goes with it and waits for both, one round trip instead of two. A sync is a
 * dozen statements, and each round trip costs the controller and the server a wake-up and
 * a few system calls (issue #22 item 5). The statements sent, as the store wrote them, name
 * a failure; a prepared statement's PREPARE sent in the pipeline is one of them.
 */
struct pg_sent {
        char *what;
        bool prepare; /* the PREPARE of cache entry name: forgotten if it fails */
        unsigned name;
        bool counted; /* its changes go to the store's count (store_exec_later_counted) */
};

struct pg_conn {
        PGconn *conn;
        char *error; /* the last failure's message, when libpq's is not it */
        int64_t changes;
        bool in_transaction; /* a BEGIN went through, no COMMIT or ROLLBACK since */
        bool pipeline;       /* in pipeline mode: sent holds statements not waited for */
        int held;            /* a failure of a statement sent, found by pg_changes: the next one's */
        struct pg_sent *sent;
        size_t n_sent, cap_sent;
        unsigned n_cached, next_name;
        struct pg_cached cache[PG_CACHE_SLOTS];
};

/* Bounds on every wait, set on each session (a writer holding the lock, a statement that
 * never ends, a client gone in the middle of a transaction): a sync fails and is tried
 * again, as with SQLite's busy timeout, instead of piling up the server's threads. The
 * server's own keepalives (ignored on a Unix socket): a controller cut off is found gone
 * within about a minute, not the system's two hours, and its session ended, with the
 * lead of the periodic jobs it may hold (store_lead). */
#define PG_SESSION_SETUP                                                                                \
        "SET client_min_messages = warning; SET lock_timeout = '10s'; SET statement_timeout = '60s'; " \
        "SET idle_in_transaction_session_timeout = '60s'; SET tcp_keepalives_idle = 30; "               \
        "SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3"

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

/* libpq's message without a password it may quote (its URI parser quotes a token it
 * cannot decode): every occurrence of the address's password, as written, replaced. */
static char *redacted(const char *message, const char *uri) {
        char *m = strdup(message);
        if (!m)
                return NULL;
        size_t n = strlen(m);
        if (n && m[n - 1] == '\n')
                m[n - 1] = 0;
        const char *at_scheme = strstr(uri, "://");
        const char *start = at_scheme ? at_scheme + 3 : uri;
        const char *at = strrchr(start, '@');
        const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
        if (!colon || colon + 1 >= at)
                return m;
        size_t plen = (size_t)(at - colon - 1);
        for (char *p = m; (p = memmem(p, strlen(p), colon + 1, plen));)
                memset(p, '*', plen);
        return m;
}

static int session_setup(struct pg_conn *c) {
        PGresult *res = PQexec(c->conn, PG_SESSION_SETUP);
        int r = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -EIO;
        PQclear(res);
        return r;
}

static int pg_open(struct store *s, const char *uri, char **ret_reason) {
        struct pg_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        s->conn = c;
        /* defaults first: what the address says overrides them (expand_dbname) */
        const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                    "keepalives_count", "dbname", NULL};
        const char *const values[] = {"10", "1", "30", "10", "3", uri, NULL};
        c->conn = PQconnectdbParams(keys, values, 1);
        if (!c->conn)
                return -ENOMEM;
        if (PQstatus(c->conn) != CONNECTION_OK) {
                _cleanup_free_ char *m = redacted(PQerrorMessage(c->conn), uri);
                return message_set(ret_reason, -ECONNREFUSED, "cannot connect to PostgreSQL: %s",
                                   m ? m : "(no memory for the message)");
        }
        /* 12: a sync sets plan_cache_mode (sync_settings); the schema needs 11 */
        int v = PQserverVersion(c->conn);
        if (v < 120000)
                return message_set(ret_reason, -EPROTONOSUPPORT,
                                   "the PostgreSQL server is version %d.%d: orbit-controller needs 12 or later",
                                   v / 10000, v >= 100000 ? v % 10000 : v / 100 % 100);
        if (session_setup(c) < 0)
                return message_set(ret_reason, -EIO, "PostgreSQL: cannot set the session's timeouts: %s",
                                   PQerrorMessage(c->conn));
        return 0;
}

/*
 * A connection lost (the server restarted, the network cut) is made again before the next
 * statement, never inside a transaction: a statement of a transaction whose connection is
 * gone fails (its caller rolls back), and the ROLLBACK or COMMIT that ends it finds the
 * connection again, so nothing of a half transaction is ever run on its own.
 */
static bool is_end(const char *sql) {
        return strncmp(sql, "COMMIT", 6) == 0 || strncmp(sql, "ROLLBACK", 8) == 0;
}

/* The statement just failed because the connection is gone, and no transaction had its
 * earlier statements on it: the statement may run again on a new one. */
static bool lost_outside_transaction(const struct pg_conn *c) {
        return PQstatus(c->conn) == CONNECTION_BAD && !c->in_transaction;
}

static void cache_clear(struct pg_conn *c) {
        for (size_t i = 0; i < PG_CACHE_SLOTS; i++) {
                free(c->cache[i].sql);
                free(c->cache[i].types);
                c->cache[i] = (struct pg_cached){0};
        }
        c->n_cached = 0;
}

/* Out of pipeline mode with nothing sent (the connection made again, or closed). */
static void sent_clear(struct pg_conn *c) {
        for (size_t i = 0; i < c->n_sent; i++)
                free(c->sent[i].what);
        c->n_sent = 0;
        c->pipeline = false;
}

static int connection_check(struct store *s, const char *sql) {
        struct pg_conn *c = pg(s);
        bool end = is_end(sql);
        if (PQstatus(c->conn) == CONNECTION_OK)
                return 0;
        if (c->in_transaction && !end) {
                set_error(s, "the connection to PostgreSQL was lost in a transaction");
                return -EIO;
        }
        c->in_transaction = false;
        c->held = 0;
        sent_clear(c); /* what was sent went with the session, and its transaction */
        cache_clear(c); /* the server's prepared statements went with the session */
        PQreset(c->conn);
        if (PQstatus(c->conn) != CONNECTION_OK || session_setup(c) < 0) {
                set_error(s, "the connection to PostgreSQL was lost and cannot be made again: %s",
                          PQerrorMessage(c->conn));
                return -EIO;
        }
        return 0;
}

static void pg_close(struct store *s) {
        struct pg_conn *c = pg(s);
        if (!c)
                return;
        PQfinish(c->conn);
        sent_clear(c);
        free(c->sent);
        cache_clear(c);
        free(c->error);
        free(c);
        s->conn = NULL;
}

static int pg_prepare(struct store *s, const char *sql, struct store_stmt **ret);
static void pg_finalize(struct store_stmt *h);
static int pipeline_finish(struct store *s, struct pg_stmt *st, PGresult **ret);

/* A COMMIT that failed: the transaction, if the server still has it open, rolled back. */
static void commit_failed(struct pg_conn *c) {
        if (PQtransactionStatus(c->conn) != PQTRANS_IDLE)
                PQclear(PQexec(c->conn, "ROLLBACK"));
        c->in_transaction = false;
}

/*
 * The COMMIT of a transaction with statements sent: it goes with them (one round trip).
 * One of them failed: the COMMIT did not run, the transaction is rolled back here.
 */
static int commit_sent(struct store *s, const char *sql) {
        struct pg_conn *c = pg(s);
        struct store_stmt *h = NULL;
        PGresult *res = NULL;
        int r = pg_prepare(s, sql, &h);
        if (r < 0) /* no memory: what was sent is waited for all the same */
                (void) pipeline_finish(s, NULL, NULL);
        else
                r = pipeline_finish(s, (struct pg_stmt *) h, &res);
        if (h)
                pg_finalize(h);
        if (r >= 0 && res && !streq(PQcmdStatus(res), "COMMIT")) {
                set_error(s, "the transaction was rolled back (%s): a statement in it had failed", PQcmdStatus(res));
                r = -EIO;
        }
        PQclear(res);
        if (r < 0)
                commit_failed(c);
        c->in_transaction = false;
        return r;
}

static int pg_script(struct store *s, const char *sql) {
        struct pg_conn *c = pg(s);
        bool end = is_end(sql);
        if (c->held < 0 || c->pipeline) {
                int held = c->held;
                c->held = 0;
                bool commit = strncmp(sql, "COMMIT", 6) == 0 && !strchr(sql, ';');
                if (c->pipeline && held >= 0 && commit)
                        return commit_sent(s, sql);
                /* anything else waits for what was sent first (a ROLLBACK cannot go in a
                 * pipeline a failure aborted: it would not run) */
                int r = c->pipeline ? pipeline_finish(s, NULL, NULL) : 0;
                if (held < 0)
                        r = held;
                if (r < 0 && commit) {
                        commit_failed(c);
                        return r;
                }
                if (r < 0 && !end)
                        return r;
        }
        int r = connection_check(s, sql);
        if (r < 0)
                return r;
        if (end && !c->in_transaction && PQtransactionStatus(c->conn) == PQTRANS_IDLE)
                return 0; /* a connection made again: the transaction went with the old one */
        PGresult *res = PQexec(c->conn, sql);
        ExecStatusType t = PQresultStatus(res);
        if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK && lost_outside_transaction(c) && !end) {
                /* the server went away since the last statement: libpq learns it now */
                PQclear(res);
                if ((r = connection_check(s, sql)) < 0)
                        return r;
                res = PQexec(c->conn, sql);
                t = PQresultStatus(res);
        }
        r = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? 0 : result_errno(s, res);
        if (r >= 0 && strncmp(sql, "COMMIT", 6) == 0 && streq(PQcmdStatus(res), "ROLLBACK")) {
                /* the server ends a failed transaction so, without an error */
                set_error(s, "the transaction was rolled back: a statement in it had failed");
                r = -EIO;
        }
        PQclear(res);
        if (end)
                c->in_transaction = false;
        else if (r >= 0 && strncmp(sql, "BEGIN", 5) == 0)
                c->in_transaction = true;
        else if (strncmp(sql, "BEGIN", 5) == 0)
                c->in_transaction = PQtransactionStatus(c->conn) != PQTRANS_IDLE;
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

/* In bytea's hex input form ("\\x" and two digits a byte): text parameters stay text. */
static int pg_bind_blob(struct store_stmt *st, int i, const void *data, size_t len) {
        static const char digits[] = "0123456789abcdef";
        if (!data)
                return param_set(st, i, PG_BYTEA_OID, NULL);
        char *t = malloc(2 * len + 3);
        if (!t)
                return -ENOMEM;
        const unsigned char *p = data;
        t[0] = '\\';
        t[1] = 'x';
        for (size_t k = 0; k < len; k++) {
                t[2 + 2 * k] = digits[p[k] >> 4];
                t[3 + 2 * k] = digits[p[k] & 15];
        }
        t[2 + 2 * len] = 0;
        return param_set(st, i, PG_BYTEA_OID, t);
}

/* Only what reads or writes rows is kept: a statement that changes the schema may change
 * the result of one prepared before it, which the server then refuses to run. */
static bool cacheable(const char *sql) {
        static const char *const verbs[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"};
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strncasecmp(sql, verbs[i], strlen(verbs[i])) == 0)
                        return true;
        return false;
}

static struct pg_cached *cache_slot(struct pg_conn *c, const struct pg_stmt *st) {
        uint32_t h = 2166136261u; /* FNV-1a over the text and the types */
        for (const char *p = st->sql; *p; p++)
                h = (h ^ (uint8_t) *p) * 16777619u;
        for (int i = 0; i < st->n_params; i++)
                h = (h ^ st->types[i]) * 16777619u;
        for (size_t i = 0; i < PG_CACHE_SLOTS; i++) {
                struct pg_cached *e = &c->cache[(h + i) % PG_CACHE_SLOTS];
                if (!e->sql || (e->n_params == st->n_params && streq(e->sql, st->sql) &&
                                (st->n_params == 0 ||
                                 memcmp(e->types, st->types, sizeof(unsigned) * (size_t) st->n_params) == 0)))
                        return e;
        }
        return NULL;
}

/* The server no longer has what this session prepared as it was: a statement dropped
 * (DEALLOCATE, a pooler's other session: 26000, 42P05), or one whose result changed with
 * the schema (another controller's migration: 0A000, "cached plan must not change result
 * type"). */
static bool stale(const PGresult *res) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        return state && (streq(state, "0A000") || streq(state, "26000") || streq(state, "42P05"));
}

static PGresult *exec_unprepared(struct pg_conn *c, struct pg_stmt *st) {
        return PQexecParams(c->conn, st->sql, st->n_params, st->types, (const char *const *) st->values, NULL,
                            NULL, 0);
}

/*
 * Run the statement: prepared on the server the first time, by its name after. A stale
 * one empties the cache (everything is prepared again, under new names) and, outside a
 * transaction, runs once more unprepared; in one, the transaction has failed anyway and
 * its caller tries again.
 */
/* Remember in the free cache slot e that st is prepared on the server as "o<id>":
 * -ENOMEM (e left free) when there is no room for its copy. */
static int cache_remember(struct pg_conn *c, struct pg_cached *e, const struct pg_stmt *st, unsigned id) {
        char *sql = strdup(st->sql);
        unsigned *types = st->n_params ? malloc(sizeof(unsigned) * (size_t) st->n_params) : NULL;
        if (!sql || (st->n_params && !types)) {
                free(sql);
                free(types);
                return -ENOMEM;
        }
        if (st->n_params)
                memcpy(types, st->types, sizeof(unsigned) * (size_t) st->n_params);
        *e = (struct pg_cached){.sql = sql, .types = types, .n_params = st->n_params, .name = id};
        c->n_cached++;
        return 0;
}

static PGresult *exec_stmt(struct pg_conn *c, struct pg_stmt *st) {
        const char *const *values = (const char *const *) st->values;
        struct pg_cached *e = cacheable(st->sql) ? cache_slot(c, st) : NULL;
        if (!e || (!e->sql && c->n_cached >= PG_CACHE_MAX))
                return exec_unprepared(c, st);
        char name[16];
        if (!e->sql) {
                unsigned id = c->next_name++; /* a name is never tried twice */
                snprintf(name, sizeof(name), "o%u", id);
                PGresult *res = PQprepare(c->conn, name, st->sql, st->n_params, st->types);
                if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                        if (!stale(res) || c->in_transaction)
                                return res; /* its error is the statement's */
                        PQclear(res);
                        return exec_unprepared(c, st);
                }
                PQclear(res);
                if (cache_remember(c, e, st, id) < 0)
                        return exec_unprepared(c, st); /* prepared, but not remembered */
        }
        snprintf(name, sizeof(name), "o%u", e->name);
        PGresult *res = PQexecPrepared(c->conn, name, st->n_params, values, NULL, NULL, 0);
        ExecStatusType t = PQresultStatus(res);
        if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK || !stale(res))
                return res;
        log_warning("store: PostgreSQL: this session's prepared statement %s is stale (%s): every "
                    "statement is prepared again",
                    name, PQresultErrorField(res, PG_DIAG_SQLSTATE));
        cache_clear(c);
        if (c->in_transaction)
                return res;
        PQclear(res);
        return exec_unprepared(c, st);
}

/* Note a statement sent; -ENOMEM (nothing noted) when there is no room. */
static int sent_add(struct pg_conn *c, const char *what, bool prepare, unsigned name, bool counted) {
        if (c->n_sent == c->cap_sent) {
                size_t cap = c->cap_sent ? 2 * c->cap_sent : 16;
                struct pg_sent *v = realloc(c->sent, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                c->sent = v;
                c->cap_sent = cap;
        }
        char *w = strdup(what);
        if (!w)
                return -ENOMEM;
        c->sent[c->n_sent++] = (struct pg_sent){.what = w, .prepare = prepare, .name = name, .counted = counted};
        return 0;
}

/* Send st in pipeline mode (prepared on the server the first time, in the pipeline too). */
static int send_stmt(struct store *s, struct pg_stmt *st) {
        struct pg_conn *c = pg(s);
        const char *const *values = (const char *const *) st->values;
        struct pg_cached *e = cacheable(st->sql) ? cache_slot(c, st) : NULL;
        if (e && !e->sql && c->n_cached < PG_CACHE_MAX) {
                unsigned id = c->next_name++; /* a name is never tried twice */
                char name[16];
                snprintf(name, sizeof(name), "o%u", id);
                if (sent_add(c, st->original, true, id, false) < 0)
                        return -ENOMEM;
                if (PQsendPrepare(c->conn, name, st->sql, st->n_params, st->types) != 1) {
                        free(c->sent[--c->n_sent].what);
                        set_error(s, "%s", PQerrorMessage(c->conn));
                        return -EIO;
                }
                if (cache_remember(c, e, st, id) < 0) /* prepared, but not remembered */
                        e = NULL;
        }
        int ok;
        if (e && e->sql) {
                char name[16];
                snprintf(name, sizeof(name), "o%u", e->name);
                ok = PQsendQueryPrepared(c->conn, name, st->n_params, values, NULL, NULL, 0);
        } else
                ok = PQsendQueryParams(c->conn, st->sql, st->n_params, st->types, values, NULL, NULL, 0);
        if (ok != 1) {
                set_error(s, "%s", PQerrorMessage(c->conn));
                return -EIO;
        }
        return 0;
}

/* The failure of a statement sent before the one that waits: named, with its cause. */
static int sent_failed(struct store *s, PGresult *res, const struct pg_sent *what) {
        int r = result_errno(s, res);
        if (what->prepare) {
                /* the name was never made: the statement is prepared again next time */
                for (size_t i = 0; i < PG_CACHE_SLOTS; i++) {
                        struct pg_cached *e = &pg(s)->cache[i];
                        if (e->sql && e->name == what->name) {
                                free(e->sql);
                                free(e->types);
                                *e = (struct pg_cached){0};
                                pg(s)->n_cached--;
                        }
                }
        }
        _cleanup_free_ char *cause = TAKE_PTR(pg(s)->error); /* set_error frees the old one */
        set_error(s, "%s (in \"%s\", sent before it in this transaction%s)", cause ? cause : "", what->what,
                  what->prepare ? ", preparing it" : "");
        return r;
}

/*
 * Send st (NULL: none) after the statements sent, then wait for every one: one round
 * trip. The first failure is the result (every later statement did not run: the
 * transaction has failed); st's result, when it ran, in *ret. Back out of pipeline mode.
 */
static int pipeline_finish(struct store *s, struct pg_stmt *st, PGresult **ret) {
        struct pg_conn *c = pg(s);
        int r = st ? send_stmt(s, st) : 0;
        size_t n = c->n_sent;
        if (PQpipelineSync(c->conn) != 1 && r >= 0) {
                set_error(s, "%s", PQerrorMessage(c->conn));
                r = -EIO;
        }
        /* every statement's results, then NULL; st's last (unless its send failed) */
        size_t expected = n + (st && r >= 0);
        for (size_t i = 0; i < expected; i++) {
                PGresult *res = PQgetResult(c->conn);
                if (!res) {
                        if (r >= 0) {
                                set_error(s, "the connection to PostgreSQL was lost: %s", PQerrorMessage(c->conn));
                                r = -EIO;
                        }
                        break;
                }
                ExecStatusType t = PQresultStatus(res);
                if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
                        const char *tuples = PQcmdTuples(res);
                        c->changes = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
                        if (i < n && c->sent[i].counted)
                                s->counted += c->changes;
                        if (i == n && ret && r >= 0) {
                                *ret = res;
                                res = NULL;
                        }
                } else if (t != PGRES_PIPELINE_ABORTED && r >= 0) {
                        r = i < n ? sent_failed(s, res, &c->sent[i]) : result_errno(s, res);
                        if (stale(res))
                                cache_clear(c);
                }
                PQclear(res);
                while ((res = PQgetResult(c->conn)))
                        PQclear(res);
        }
        /* the sync point, and out of pipeline mode (on a connection lost: made again later) */
        for (int k = 0; k < 8 && !PQexitPipelineMode(c->conn); k++) {
                PGresult *res = PQgetResult(c->conn);
                if (!res && PQstatus(c->conn) != CONNECTION_OK)
                        break;
                PQclear(res);
        }
        sent_clear(c);
        c->pipeline = PQpipelineStatus(c->conn) != PQ_PIPELINE_OFF;
        if (r < 0 && ret && *ret) {
                PQclear(*ret);
                *ret = NULL;
        }
        return r;
}

/*
 * store_exec_later: in a transaction, the statement is sent and not waited for (its rows,
 * if any, unread); elsewhere it runs at once.
 */
static int pg_send(struct store_stmt *h) {
        struct pg_stmt *st = stmt(h);
        struct pg_conn *c = pg(h->s);
        int r;
        if (!c->in_transaction || c->held < 0) {
                while ((r = h->backend->step(h)) > 0)
                        ;
                return r;
        }
        if ((r = connection_check(h->s, st->sql)) < 0)
                return r;
        if (!c->pipeline) {
                if (PQenterPipelineMode(c->conn) != 1) {
                        while ((r = h->backend->step(h)) > 0)
                                ;
                        return r;
                }
                c->pipeline = true;
        }
        r = send_stmt(h->s, st);
        if (r >= 0)
                r = sent_add(c, st->original, false, 0, h->counted);
        if (r < 0) /* what was sent before is waited for, this failure is the result */
                (void) pipeline_finish(h->s, NULL, NULL);
        return r < 0 ? r : 1;
}

/*
 * A BEGIN not waited for: sent, in pipeline mode, with what follows up to the next
 * statement that waits. A connection lost since the last statement is then found there,
 * inside the transaction, where it cannot be made again: the caller may run the
 * transaction again once its ROLLBACK has (store_connection_lost).
 */
static int pg_begin_send(struct store *s, const char *sql) {
        struct pg_conn *c = pg(s);
        if (c->in_transaction || c->pipeline || c->held < 0) {
                set_error(s, "a transaction is already open");
                return -EINVAL;
        }
        int r = connection_check(s, sql);
        if (r < 0)
                return r;
        if (PQenterPipelineMode(c->conn) != 1)
                return pg_script(s, sql); /* at once, then */
        c->pipeline = true;
        if (PQsendQueryParams(c->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
                set_error(s, "%s", PQerrorMessage(c->conn));
                (void) pipeline_finish(s, NULL, NULL);
                return -EIO;
        }
        r = sent_add(c, sql, false, 0, false);
        if (r < 0) {
                (void) pipeline_finish(s, NULL, NULL);
                return r;
        }
        c->in_transaction = true;
        return 0;
}

static bool pg_lost(struct store *s) {
        return PQstatus(pg(s)->conn) == CONNECTION_BAD;
}

static int pg_step(struct store_stmt *h) {
        struct pg_stmt *st = stmt(h);
        struct pg_conn *c = pg(h->s);
        if (!st->result && (c->pipeline || c->held < 0)) {
                /* the statements sent go with this one */
                int r = c->held;
                c->held = 0;
                if (r >= 0)
                        r = pipeline_finish(h->s, st, &st->result);
                else if (c->pipeline)
                        (void) pipeline_finish(h->s, NULL, NULL);
                if (r < 0)
                        return r;
                st->row = -1;
        }
        if (!st->result) {
                int r = connection_check(h->s, st->sql);
                if (r < 0)
                        return r;
                st->result = exec_stmt(c, st);
                ExecStatusType t = PQresultStatus(st->result);
                if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK && lost_outside_transaction(c)) {
                        /* the server went away since the last statement: once more, anew */
                        PQclear(st->result);
                        st->result = NULL;
                        if ((r = connection_check(h->s, st->sql)) < 0)
                                return r;
                        st->result = exec_stmt(c, st);
                        t = PQresultStatus(st->result);
                }
                if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
                        r = result_errno(h->s, st->result);
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

static void pg_col_value(struct store_stmt *h, int i, struct store_value *ret) {
        struct pg_stmt *st = stmt(h);
        *ret = (struct store_value){.kind = STORE_VALUE_NULL};
        if (!has_value(st, i))
                return;
        ret->kind = STORE_VALUE_TEXT;
        ret->bytes = PQgetvalue(st->result, st->row, i);
        ret->len = (size_t)PQgetlength(st->result, st->row, i);
}

static int hex_digit(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A bytea column comes in its hex output form (bytea_output's default, "\\x..."); any
 * other column as its text. */
static int pg_col_blob(struct store_stmt *h, int i, char **ret, size_t *ret_len) {
        struct pg_stmt *st = stmt(h);
        *ret = NULL;
        *ret_len = 0;
        if (!has_value(st, i))
                return 0;
        const char *t = PQgetvalue(st->result, st->row, i);
        size_t n = (size_t)PQgetlength(st->result, st->row, i);
        bool hex = PQftype(st->result, i) == PG_BYTEA_OID;
        if (hex && (n < 2 || t[0] != '\\' || t[1] != 'x' || n % 2 != 0)) {
                set_error(h->s, "column %d: bytea not in the hex form (bytea_output = escape?)", i);
                return -EBADMSG;
        }
        size_t len = hex ? (n - 2) / 2 : n;
        char *copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        for (size_t k = 0; k < len; k++) {
                if (!hex) {
                        copy[k] = t[k];
                        continue;
                }
                int a = hex_digit(t[2 + 2 * k]), b = hex_digit(t[3 + 2 * k]);
                if (a < 0 || b < 0) {
                        free(copy);
                        set_error(h->s, "column %d: a bytea with a bad hex digit", i);
                        return -EBADMSG;
                }
                copy[k] = (char)(a << 4 | b);
        }
        copy[len] = 0;
        *ret = copy;
        *ret_len = len;
        return 0;
}

/* After statements sent, their count once they ran (a failure then is the next statement's). */
static int64_t pg_changes(struct store *s) {
        struct pg_conn *c = pg(s);
        if (c->pipeline) {
                int r = pipeline_finish(s, NULL, NULL);
                if (r < 0 && c->held >= 0)
                        c->held = r;
        }
        return c->changes;
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
        .begin = "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(7420001)",
        /* A sync takes that lock shared: syncs of different nodes run side by side, every
         * other writer waits for them and they for it. The node's key (two int4 keys, so
         * apart from the one-bigint keys above) keeps two syncs of one node apart; a hash
         * collision only makes two nodes wait for each other. */
        .begin_node = "BEGIN ISOLATION LEVEL READ COMMITTED",
        .lock_shared = "SELECT pg_advisory_xact_lock_shared(7420001)",
        .lock_node = "SELECT pg_advisory_xact_lock(7420004, hashtext(?))",
        /* A sync's statements are keyed lookups whatever their values: their generic plan,
         * made once per session, is as good as one made for the values. Left to choose
         * (plan_cache_mode auto), the server kept planning the sync's first query for its
         * values: pg_stat_statements counted 17,897 plans of it in 50,000 runs, whose
         * planning cost three times its execution (docs/storage.md, "Plans"). Only the
         * sync's transaction: an operator's or a periodic job's query (records older than a
         * date) may want a plan for its values. */
        .sync_settings = "SET LOCAL plan_cache_mode = force_generic_plan",
        .begin_send = pg_begin_send,
        .lost = pg_lost,
        .lock_rollouts = "SELECT pg_advisory_xact_lock(7420003)",
        /* The lead of the periodic jobs: a session lock of another key, kept while the
         * connection lives (a controller killed, its connection cut: the server ends the
         * session and the next to ask takes it). Asked again every tick: held already by
         * this session (pg_locks), else tried, so that it is never taken twice over (a
         * session lock is counted) and is taken again on a connection made again. */
        .lead = "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted AND classid = 0 AND objid = 7420002 "
                "AND objsubid = 1) THEN true ELSE pg_try_advisory_lock(7420002) END",
        .schema = store_schema_postgresql,
        .migrations = store_migrations_postgresql,
        .migrations_from = 14,
        .script = pg_script,
        .prepare = pg_prepare,
        .finalize = pg_finalize,
        .sql = pg_sql,
        .bind_text = pg_bind_text,
        .bind_int64 = pg_bind_int64,
        .bind_double = pg_bind_double,
        .bind_blob = pg_bind_blob,
        .step = pg_step,
        .send = pg_send,
        .reset = pg_reset,
        .clear = pg_clear,
        .col_text = pg_col_text,
        .col_int64 = pg_col_int64,
        .col_double = pg_col_double,
        .col_is_null = pg_col_is_null,
        .col_is_text = pg_col_is_text,
        .col_value = pg_col_value,
        .col_blob = pg_col_blob,
        .changes = pg_changes,
        .errmsg = pg_errmsg,
};
