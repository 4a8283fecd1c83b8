/*
 * The store's SQL binder: a statement prepared and its parameters bound in one call from
 * a format string, one letter per parameter (?1, ?2, ... in order):
 *
 *   t  const char *  text, borrowed: it must live until the statement is finalized or
 *                    rebound (NULL binds SQL NULL)
 *   T  const char *  text, copied (NULL binds SQL NULL)
 *   i  int64_t       an integer; cast any other integer type (the arguments are varargs)
 *   d  int           an integer (bools and enums are ints)
 *   f  double        a real
 *   j  json_t *      JSON, stored as its compact text (NULL binds SQL NULL)
 *
 * Every failure is logged naming the statement and SQLite's message, and returned as
 * -errno (store_errno).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "lib/macro.h"

struct store;

static inline void store_stmt_finalizep(sqlite3_stmt **st) {
        if (*st)
                (void) sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(store_stmt_finalizep)

/* SQLite result codes to -errno: busy, full and constraint are worth telling apart. */
int store_errno(int rc);

/* Log "store: <what>: <SQLite's message>" and return store_errno(rc). */
int store_fail(struct store *s, int rc, const char *what);

/* Run SQL text without parameters or rows (pragmas, transactions, the migrations). */
int store_script(struct store *s, const char *sql);

/* Prepare sql and bind its parameters by fmt: *ret is the statement, ready to step. */
int store_query(struct store *s, sqlite3_stmt **ret, const char *sql, const char *fmt, ...);

/*
 * store_query, then one step: 1 with the first row in *ret, 0 when there is none, -errno
 * on failure. *ret is set in both the first cases (the caller's to finalize).
 */
int store_query_row(struct store *s, sqlite3_stmt **ret, const char *sql, const char *fmt, ...);

/* Reset a prepared statement and bind new parameters by fmt (a statement run in a loop). */
int store_rebind(struct store *s, sqlite3_stmt *st, const char *fmt, ...);

/* Step: 1 with a row, 0 when done, -errno (logged, naming the statement) on failure. */
int store_step(struct store *s, sqlite3_stmt *st);

/* Step a statement that returns no rows to its end. */
int store_step_done(struct store *s, sqlite3_stmt *st);

/* Prepare, bind, run to completion: for statements without rows. */
int store_exec(struct store *s, const char *sql, const char *fmt, ...);

/*
 * The first column of the first row as an integer: 1 with *ret set, 0 when there is no
 * row (*ret untouched), -errno on failure. ret may be NULL (an existence test).
 */
int store_get_int64(struct store *s, int64_t *ret, const char *sql, const char *fmt, ...);

/*
 * Step every row of st into a new JSON array (*ret): row(st) makes each element, a new
 * reference (NULL: -ENOMEM).
 */
int store_rows_json(struct store *s, sqlite3_stmt *st, json_t *(*row)(sqlite3_stmt *st),
                    json_t **ret);

/* Number of rows the last INSERT, UPDATE or DELETE changed. */
int64_t store_changes(struct store *s);

/* Typed column getters. */
static inline const char *store_col_text(sqlite3_stmt *st, int i) {
        return (const char *) sqlite3_column_text(st, i);
}
/* The text, or "" for NULL. */
static inline const char *store_col_str(sqlite3_stmt *st, int i) {
        const char *t = store_col_text(st, i);
        return t ? t : "";
}
static inline int64_t store_col_int64(sqlite3_stmt *st, int i) {
        return sqlite3_column_int64(st, i);
}
static inline bool store_col_is_null(sqlite3_stmt *st, int i) {
        return sqlite3_column_type(st, i) == SQLITE_NULL;
}
/* A stored JSON text as a value (null if absent or unparsable); a new reference. */
json_t *store_col_json(sqlite3_stmt *st, int i);
/* Column 0 as store_col_json, store_col_string_or_null: row functions for store_rows_json. */
json_t *store_col_json_0(sqlite3_stmt *st);
json_t *store_col_string_or_null_0(sqlite3_stmt *st);
/* The text as a JSON string, or null; the integer as a JSON integer, or null. */
json_t *store_col_string_or_null(sqlite3_stmt *st, int i);
json_t *store_col_int_or_null(sqlite3_stmt *st, int i);
