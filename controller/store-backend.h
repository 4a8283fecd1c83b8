/*
 * The store's database backends (docs/storage.md): the binder (store-sql.c) drives one
 * through this table of operations, the concern files never see it. Every operation that
 * can fail returns -errno; the binder logs the failure with errmsg(), naming the statement.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* A column's value as the database holds it (the migration reads them, docs/storage.md). */
enum store_value_kind {
        STORE_VALUE_NULL,
        STORE_VALUE_INTEGER,
        STORE_VALUE_FLOAT,
        STORE_VALUE_TEXT,
        STORE_VALUE_BLOB,
};

struct store_value {
        enum store_value_kind kind;
        int64_t i;         /* INTEGER */
        double f;          /* FLOAT */
        const char *bytes; /* TEXT, BLOB: len bytes (not NUL-terminated for a BLOB), the statement's */
        size_t len;
};

/* A prepared statement. A backend allocates its own, this header first. */
struct store_stmt {
        const struct store_backend *backend;
        struct store *s;
        bool counted; /* store_exec_later_counted: its changes are added to the store's count */
};

struct store_backend {
        const char *name;
        /* Connect to target (what follows the scheme of the database's address) and set
         * s->conn; on failure a message naming target and the cause. */
        int (*open)(struct store *s, const char *target, char **ret_reason);
        void (*close)(struct store *s);
        /* SQL that starts a transaction that writes: taken at once, never upgraded. */
        const char *begin;
        /* A node's sync, beside other nodes' syncs (docs/storage.md, "Several controllers"):
         * begin_node starts the transaction (sent by begin_send), lock_shared takes the
         * writers' lock shared, lock_node ($1: the node's id) then the node's own lock, and
         * lock_rollouts the one lock of the rollouts, for a sync that may move one. NULL:
         * begin (one writer at a time). */
        const char *begin_node, *lock_shared, *lock_node, *lock_rollouts;
        /* Settings of a sync's transaction, sent with its locks (NULL: none). */
        const char *sync_settings;
        /* Start a transaction with sql (one statement), sent with the next statement that
         * waits, as send does. NULL with begin_node NULL. */
        int (*begin_send)(struct store *s, const char *sql);
        /* Whether the connection to the database is known lost (a statement just failed
         * for it). NULL: never (a file). */
        bool (*lost)(struct store *s);
        /* SQL of one row and one boolean column: true when this connection leads the
         * controllers on the database (docs/storage.md, "Several controllers"), taking the
         * lead when nobody has it; held until the connection ends. NULL: always leads. */
        const char *lead;
        /* The whole schema at STORE_SCHEMA_VERSION, for an empty database; NULL: SQLite's
         * migrations from version 0 (store.c). */
        const char *schema;
        /* Migration i brings a store of this backend from version migrations_from + i to
         * the next; below migrations_from (or NULL), SQLite's migrations run (store.c). */
        const char *const *migrations;
        int migrations_from;
        /* Run SQL text without parameters or rows, one or more statements. */
        int (*script)(struct store *s, const char *sql);
        int (*prepare)(struct store *s, const char *sql, struct store_stmt **ret);
        void (*finalize)(struct store_stmt *st);
        /* The statement's SQL text, for messages. */
        const char *(*sql)(struct store_stmt *st);
        /* Parameters, numbered from 1. bind_text copies text when copy is set, else
         * borrows it until the statement is reset or finalized; NULL binds SQL NULL. */
        int (*bind_text)(struct store_stmt *st, int i, const char *text, bool copy);
        int (*bind_int64)(struct store_stmt *st, int i, int64_t v);
        int (*bind_double)(struct store_stmt *st, int i, double v);
        /* len bytes as a blob (PostgreSQL: bytea), copied; NULL binds SQL NULL. */
        int (*bind_blob)(struct store_stmt *st, int i, const void *data, size_t len);
        /* 1 with a row, 0 when done. */
        int (*step)(struct store_stmt *st);
        /* Run the statement, its rows unread, perhaps not yet: in a transaction it may run
         * with the next statement that waits (or the COMMIT), whose failure is then its
         * own (store_exec_later): 1 sent, 0 run at once. A counted statement sent adds its
         * changes to s->counted when it has run. NULL: the binder steps it to its end at once. */
        int (*send)(struct store_stmt *st);
        /* Back to before the first step, the parameters kept. */
        void (*reset)(struct store_stmt *st);
        /* Every parameter back to NULL. */
        void (*clear)(struct store_stmt *st);
        /* Columns of the current row, numbered from 0. */
        const char *(*col_text)(struct store_stmt *st, int i);
        int64_t (*col_int64)(struct store_stmt *st, int i);
        double (*col_double)(struct store_stmt *st, int i);
        bool (*col_is_null)(struct store_stmt *st, int i);
        bool (*col_is_text)(struct store_stmt *st, int i);
        /* The value with its storage class and length (SQLite: as stored; PostgreSQL: NULL or
         * the text form), valid until the next step. */
        void (*col_value)(struct store_stmt *st, int i, struct store_value *ret);
        /* The bytes of a blob (PostgreSQL: bytea) or text column, a heap copy with a NUL
         * after them (caller frees); NULL and 0 for SQL NULL. */
        int (*col_blob)(struct store_stmt *st, int i, char **ret, size_t *ret_len);
        /* Rows the last INSERT, UPDATE or DELETE changed. */
        int64_t (*changes)(struct store *s);
        /* The connection's message for its last failure. */
        const char *(*errmsg)(struct store *s);
};

extern const struct store_backend store_backend_sqlite;
#if HAVE_LIBPQ
extern const struct store_backend store_backend_postgresql;
extern const char store_schema_postgresql[];
extern const char *const store_migrations_postgresql[];
#endif
