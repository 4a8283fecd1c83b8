/*
 * The controller's database address (--database, docs/storage.md): which backend, and
 * what it connects to. Pure: no database is touched.
 *
 *   sqlite:PATH              SQLite, the file PATH (created if absent)
 *   PATH                     the same (what store_open took before: a path alone)
 *   postgresql://...         PostgreSQL (also postgres://), libpq's URI as it is:
 *                            [user[:password]@][host][:port][,...][/dbname][?param=value&...]
 */
#pragma once

enum store_kind {
        STORE_SQLITE,
        STORE_POSTGRESQL,
};

struct store_address {
        enum store_kind kind;
        const char *target; /* in address: SQLite's path, or the whole PostgreSQL URI */
};

/* Parse address; -EINVAL with a message naming the part that is wrong. Messages never
 * quote a PostgreSQL URI whole (it may hold a password). */
int store_address_parse(const char *address, struct store_address *ret, char **ret_reason);
