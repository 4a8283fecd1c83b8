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
 *   b  const void *, size_t   a blob (PostgreSQL: bytea) of that many bytes, copied
 *                    (NULL binds SQL NULL)
 *
 * Every failure is logged naming the statement and the database's message, and returned
 * as -errno. The statement runs on the store's backend (store-backend.h, docs/storage.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/macro.h"

struct store;
struct store_stmt;

void store_stmt_finalize(struct store_stmt *st);
static inline void store_stmt_finalizep(struct store_stmt **st) {
        if (*st)
                store_stmt_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(store_stmt_finalizep)

/* Run SQL text without parameters or rows (transactions, the migrations). */
int store_script(struct store *s, const char *sql);

/* Start a transaction that writes, its lock taken at once (SQLite: BEGIN IMMEDIATE). */
int store_begin(struct store *s);

/*
 * Start a node's sync: with SQLite, store_begin; with PostgreSQL, beside the syncs of other
 * nodes (every other writer still waits for it), and not waited for: the BEGIN and the
 * locks go with the sync's first query. Before it reads or writes a rollout, the
 * sync calls store_lock_rollouts.
 */
int store_begin_node(struct store *s, const char *node);

/* Whether the connection to the database is known lost: a statement just failed for it.
 * Ended by the ROLLBACK (or COMMIT), the next statement runs on a new one. */
bool store_connection_lost(struct store *s);

/*
 * Whether node ?1 may move a rollout: it is a member of one not ended (or of one aborted or
 * halted that has to tell it to roll back), or a target of one that may take it. An SQL
 * expression (1 or 0), read with the node's row at the start of its sync, where the backend
 * locks rollouts (store_locks_rollouts).
 *
 * An aborted or halted rollout never moves again; its member's sync has to tell the node to
 * roll back at most (needs_rollback), else it writes only its own rows: a rollout ended
 * that way does not hold every later sync of its members to the lock. Stable while the
 * sync holds the writers' lock shared (store_begin_node): rollouts are created, started,
 * ended and given members by writers that take it whole, and other nodes' syncs move only
 * rollouts this node is not in (they take the rollouts' lock for theirs).
 */
#define STORE_ROLLOUTS_INVOLVED_SQL                                                                            \
        "CASE WHEN EXISTS (SELECT 1 FROM rollout_nodes rn JOIN rollouts r ON r.id = rn.rollout "              \
        "WHERE rn.node = ?1 AND (r.state IN ('created', 'running', 'paused') OR "                              \
        "(r.state IN ('aborted', 'halted') AND rn.needs_rollback <> 0))) "                                     \
        "OR EXISTS (SELECT 1 FROM rollouts r WHERE r.state IN ('created', 'running', 'paused') AND "            \
        "(r.target = 'all' OR r.target IN (SELECT name FROM node_groups WHERE node = ?1))) "                    \
        "THEN 1 ELSE 0 END"

/* Whether the backend locks rollouts apart from the node (PostgreSQL): then a sync reads
 * STORE_ROLLOUTS_INVOLVED_SQL with the node's row and calls store_lock_rollouts. */
bool store_locks_rollouts(const struct store *s);

/* In a sync begun by store_begin_node: take the rollouts' lock if this node's sync may move
 * a rollout (involved, as STORE_ROLLOUTS_INVOLVED_SQL read it); *ret_may says whether it
 * may (always true on SQLite, which does not ask: one writer at a time). The lock is sent
 * with the sync's next statement (store_exec_later): held before that statement runs, and
 * a failure to take it (a lock timeout) is that statement's. */
int store_lock_rollouts(struct store *s, bool involved, bool *ret_may);

/* Prepare sql and bind its parameters by fmt: *ret is the statement, ready to step. */
int store_query(struct store *s, struct store_stmt **ret, const char *sql, const char *fmt, ...);

/*
 * store_query, then one step: 1 with the first row in *ret, 0 when there is none, -errno
 * on failure. *ret is set in both the first cases (the caller's to finalize).
 */
int store_query_row(struct store *s, struct store_stmt **ret, const char *sql, const char *fmt, ...);

/* Reset a prepared statement and bind new parameters by fmt (a statement run in a loop). */
int store_rebind(struct store *s, struct store_stmt *st, const char *fmt, ...);

/* Back to before the first step, the parameters kept (releases what a read holds). */
void store_reset(struct store_stmt *st);

/* Step: 1 with a row, 0 when done, -errno (logged, naming the statement) on failure. */
int store_step(struct store *s, struct store_stmt *st);

/* Step a statement that returns no rows to its end. */
int store_step_done(struct store *s, struct store_stmt *st);

/* Prepare, bind, run to completion: for statements without rows. */
int store_exec(struct store *s, const char *sql, const char *fmt, ...);

/*
 * store_exec for a statement whose outcome the caller does not look at (its rows, if any,
 * are not read): in a transaction, PostgreSQL sends it and runs it with the next statement
 * that waits for its result, or the COMMIT: one round trip for both. A failure of it is
 * then that statement's (and is named in its message); the transaction fails either way.
 * store_changes after it waits for it. Elsewhere (SQLite, outside a transaction) it runs
 * at once.
 */
int store_exec_later(struct store *s, const char *sql, const char *fmt, ...);

/* store_exec_later whose changes (rows inserted, updated, deleted) are added to s->counted
 * once it has run: at once, or with the statement that waits after it. */
int store_exec_later_counted(struct store *s, const char *sql, const char *fmt, ...);

/* Whether store_exec_later may send a statement in a transaction and not wait for it
 * (PostgreSQL): what a caller sends then need not be written for SQLite too. */
bool store_sends_later(const struct store *s);

/*
 * The first column of the first row as an integer: 1 with *ret set, 0 when there is no
 * row (*ret untouched), -errno on failure. ret may be NULL (an existence test).
 */
int store_get_int64(struct store *s, int64_t *ret, const char *sql, const char *fmt, ...);

/*
 * Step every row of st into a new JSON array (*ret): row(st) makes each element, a new
 * reference (NULL: -ENOMEM).
 */
int store_rows_json(struct store *s, struct store_stmt *st, json_t *(*row)(struct store_stmt *st),
                    json_t **ret);

/* Number of rows the last INSERT, UPDATE or DELETE changed. */
int64_t store_changes(struct store *s);

/* Typed column getters. */
const char *store_col_text(struct store_stmt *st, int i);
/* The text, or "" for NULL. */
static inline const char *store_col_str(struct store_stmt *st, int i) {
        const char *t = store_col_text(st, i);
        return t ? t : "";
}
int64_t store_col_int64(struct store_stmt *st, int i);
static inline int store_col_int(struct store_stmt *st, int i) {
        return (int) store_col_int64(st, i);
}
double store_col_double(struct store_stmt *st, int i);
bool store_col_is_null(struct store_stmt *st, int i);
/* A text value (not NULL, not a number SQLite was given as one). */
bool store_col_is_text(struct store_stmt *st, int i);
/* A stored JSON text as a value (null if absent or unparsable); a new reference. */
json_t *store_col_json(struct store_stmt *st, int i);
/* A blob's (or text's) bytes, a heap copy with a NUL after them (caller frees); NULL for
 * SQL NULL. */
int store_col_blob(struct store_stmt *st, int i, char **ret, size_t *ret_len);
/* Column 0 as store_col_json, store_col_string_or_null: row functions for store_rows_json. */
json_t *store_col_json_0(struct store_stmt *st);
json_t *store_col_string_or_null_0(struct store_stmt *st);
/* The text as a JSON string, or null; the integer as a JSON integer, or null. */
json_t *store_col_string_or_null(struct store_stmt *st, int i);
json_t *store_col_int_or_null(struct store_stmt *st, int i);
