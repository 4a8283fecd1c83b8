/*
 * The PostgreSQL dialect of the store's SQL (docs/storage.md): the statements are written
 * once, for SQLite; this rewrites what PostgreSQL spells otherwise. Pure: text to text.
 *
 *   ?N, ?                        $N, $k (k counting the bare ones in order)
 *   INSERT OR IGNORE INTO ...    INSERT INTO ... ON CONFLICT DO NOTHING
 *   a IS NOT b                   a IS DISTINCT FROM b (IS NOT NULL stays)
 *
 * String literals and quoted names are copied as they are.
 */
#pragma once

/* *ret: the rewritten text (the caller frees); *ret_params: the highest parameter number. */
int store_sql_postgresql(const char *sql, char **ret, int *ret_params);
