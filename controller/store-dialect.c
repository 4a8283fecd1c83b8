/* The PostgreSQL dialect of the store's SQL (store-dialect.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/macro.h"
#include "controller/store-dialect.h"

static bool is_word(char c) {
        return isalnum((unsigned char)c) || c == '_';
}

/* The words of kw (single spaces between them) at p, on word boundaries: the length
 * matched in p (any white space between the words), or 0. */
static size_t match_words(const char *start, const char *p, const char *kw) {
        if (p > start && is_word(p[-1]))
                return 0;
        const char *q = p;
        for (const char *k = kw; *k;) {
                if (*k == ' ') {
                        if (!isspace((unsigned char)*q))
                                return 0;
                        while (isspace((unsigned char)*q))
                                q++;
                        k++;
                        continue;
                }
                if (tolower((unsigned char)*q) != tolower((unsigned char)*k))
                        return 0;
                q++, k++;
        }
        return is_word(*q) ? 0 : (size_t)(q - p);
}

int store_sql_postgresql(const char *sql, char **ret, int *ret_params) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&buf, &size);
        if (!out)
                return -ENOMEM;
        int bare = 0, highest = 0;
        bool ignore = false;
        long returning_at = -1; /* where RETURNING begins in the output, if it does */
        for (const char *p = sql; *p;) {
                size_t n;
                if (*p == '\'' || *p == '"') {
                        const char *e = p + 1;
                        while (*e && !(*e == *p && e[1] != *p))
                                e += *e == *p ? 2 : 1;
                        if (*e)
                                e++;
                        fwrite(p, 1, (size_t)(e - p), out);
                        p = e;
                } else if (*p == '?') {
                        /* ?NNN: digits only (strtol would take a sign or spaces: "? -1") */
                        char *end = (char *)p + 1;
                        long v = 0;
                        if (*end >= '0' && *end <= '9')
                                v = strtol(p + 1, &end, 10);
                        else
                                v = ++bare;
                        if (v > highest)
                                highest = (int)v;
                        fprintf(out, "$%ld", v);
                        p = end;
                } else if ((n = match_words(sql, p, "INSERT OR IGNORE INTO"))) {
                        fputs("INSERT INTO", out);
                        ignore = true;
                        p += n;
                } else if ((n = match_words(sql, p, "RETURNING")) && ignore && returning_at < 0) {
                        /* ON CONFLICT comes before RETURNING */
                        (void) fflush(out);
                        returning_at = (long)size;
                        fwrite(p, 1, n, out);
                        p += n;
                } else if ((n = match_words(sql, p, "IS NOT")) && !match_words(sql, p, "IS NOT NULL") &&
                           !match_words(sql, p, "IS NOT DISTINCT") && !match_words(sql, p, "IS NOT TRUE") &&
                           !match_words(sql, p, "IS NOT FALSE") && !match_words(sql, p, "IS NOT UNKNOWN")) {
                        fputs("IS DISTINCT FROM", out);
                        p += n;
                } else {
                        /* a whole word at once: no keyword starts inside one */
                        const char *e = p + 1;
                        if (is_word(*p))
                                while (is_word(*e))
                                        e++;
                        fwrite(p, 1, (size_t)(e - p), out);
                        p = e;
                }
        }
        if (ignore && returning_at < 0)
                fputs(" ON CONFLICT DO NOTHING", out);
        if (fclose(out) != 0)
                return -ENOMEM;
        if (ignore && returning_at >= 0) {
                char *spliced = NULL;
                if (asprintf(&spliced, "%.*sON CONFLICT DO NOTHING %s", (int)returning_at, buf, buf + returning_at) < 0)
                        return -ENOMEM;
                free(buf);
                buf = spliced;
        }
        *ret = TAKE_PTR(buf);
        *ret_params = highest;
        return 0;
}
