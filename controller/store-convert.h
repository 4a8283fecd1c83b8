/*
 * The migration's conversions (docs/storage.md, "Moving from SQLite to PostgreSQL"): a
 * value as SQLite stored it to the text PostgreSQL reads for a column of a given type, and
 * the digest both sides of a copied table are compared by. Pure: no database is touched.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "controller/store-backend.h"

/* The PostgreSQL column types a store's column may have (information_schema's data_type). */
enum store_pg_type {
        STORE_PG_BIGINT,
        STORE_PG_DOUBLE,
        STORE_PG_TEXT,
        STORE_PG_BOOLEAN,
        STORE_PG_JSONB,
        STORE_PG_BYTEA,
        _STORE_PG_TYPE_MAX,
};

/* "bigint", "double precision", ...: the type, or -EINVAL for one the migration cannot fill. */
int store_pg_type_from_name(const char *name);
const char *store_pg_type_name(enum store_pg_type t);

/*
 * v for a column of type t: *ret the text PostgreSQL reads (NULL for SQL NULL), the
 * caller's to free. -EINVAL with *ret_why (the caller's to free) saying what the value is
 * and why it does not fit (a real number in an integer column, text that is not UTF-8 or
 * holds a NUL, an integer other than 0 or 1 in a boolean, text that is not JSON, ...).
 */
int store_value_to_pg(enum store_pg_type t, const struct store_value *v, char **ret, char **ret_why);

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF) and no
 * NUL: 0, or -EILSEQ with *ret_at the offset of the first byte at fault. */
int store_utf8_check(const char *p, size_t len, size_t *ret_at);

/*
 * A table's digest: the rows counted and their hashes summed, so that the order the rows
 * are read in does not matter. A row's hash covers each column's value as its type reads
 * it (a double by its value, not its spelling: PostgreSQL prints 0.1 where 0.1000...01 was
 * sent; JSON by its canonical form), NULL apart from every value.
 */
struct store_digest {
        uint64_t rows;
        uint64_t sum;
};

#define STORE_ROW_HASH_INIT UINT64_C(0xcbf29ce484222325) /* FNV-1a's offset basis */

/* Add one column's value (text as store_value_to_pg made it, or as PostgreSQL gives it
 * back; NULL for SQL NULL) to a row's hash. */
void store_row_hash_add(uint64_t *h, enum store_pg_type t, const char *text);

void store_digest_add(struct store_digest *d, uint64_t row_hash);
