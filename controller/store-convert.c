/* The migration's conversions and digests (store-convert.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/macro.h"
#include "lib/message.h"
#include "controller/store-convert.h"

static const char *const type_names[_STORE_PG_TYPE_MAX] = {
        [STORE_PG_BIGINT] = "bigint",   [STORE_PG_DOUBLE] = "double precision",
        [STORE_PG_TEXT] = "text",       [STORE_PG_BOOLEAN] = "boolean",
        [STORE_PG_JSONB] = "jsonb",     [STORE_PG_BYTEA] = "bytea",
};

int store_pg_type_from_name(const char *name) {
        for (int t = 0; t < _STORE_PG_TYPE_MAX; t++)
                if (strcmp(name, type_names[t]) == 0)
                        return t;
        return -EINVAL;
}

const char *store_pg_type_name(enum store_pg_type t) {
        return t >= 0 && t < _STORE_PG_TYPE_MAX ? type_names[t] : "?";
}

int store_utf8_check(const char *p, size_t len, size_t *ret_at) {
        const unsigned char *s = (const unsigned char *)p;
        for (size_t i = 0; i < len;) {
                unsigned c = s[i];
                size_t n;
                uint32_t cp, min;
                if (c == 0)
                        goto bad;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0)
                        n = 2, cp = c & 0x1f, min = 0x80;
                else if ((c & 0xf0) == 0xe0)
                        n = 3, cp = c & 0x0f, min = 0x800;
                else if ((c & 0xf8) == 0xf0)
                        n = 4, cp = c & 0x07, min = 0x10000;
                else
                        goto bad;
                if (i + n > len)
                        goto bad;
                for (size_t k = 1; k < n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                goto bad;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        goto bad;
                i += n;
                continue;
        bad:
                if (ret_at)
                        *ret_at = i;
                return -EILSEQ;
        }
        return 0;
}

static const char *kind_name(enum store_value_kind k) {
        switch (k) {
        case STORE_VALUE_NULL: return "NULL";
        case STORE_VALUE_INTEGER: return "an integer";
        case STORE_VALUE_FLOAT: return "a real number";
        case STORE_VALUE_TEXT: return "text";
        case STORE_VALUE_BLOB: return "a blob";
        }
        return "?";
}

/* The shortest text that reads back as the same double; infinities in PostgreSQL's words. */
static int double_text(double f, char **ret) {
        if (isinf(f))
                return (*ret = strdup(f > 0 ? "Infinity" : "-Infinity")) ? 0 : -ENOMEM;
        return asprintf(ret, "%.17g", f) < 0 ? -ENOMEM : 0;
}

static int text_value(const struct store_value *v, char **ret, char **ret_why) {
        size_t at;
        if (store_utf8_check(v->bytes, v->len, &at) < 0)
                return message_set(ret_why, -EINVAL, "%s of %zu bytes with %s at byte %zu (PostgreSQL's text "
                                   "holds UTF-8 without NUL)", kind_name(v->kind), v->len,
                                   ((const unsigned char *)v->bytes)[at] ? "bytes that are not UTF-8" : "a NUL",
                                   at);
        return (*ret = strndup(v->bytes, v->len)) ? 0 : -ENOMEM;
}

static int hex_value(const struct store_value *v, char **ret) {
        char *t = malloc(3 + 2 * v->len);
        if (!t)
                return -ENOMEM;
        strcpy(t, "\\x");
        for (size_t i = 0; i < v->len; i++)
                sprintf(t + 2 + 2 * i, "%02x", ((const unsigned char *)v->bytes)[i]);
        *ret = t;
        return 0;
}

static int refuse(const struct store_value *v, enum store_pg_type t, char **ret_why) {
        if (v->kind == STORE_VALUE_INTEGER)
                return message_set(ret_why, -EINVAL, "the integer %" PRId64 " does not fit a %s column", v->i,
                                   type_names[t]);
        if (v->kind == STORE_VALUE_FLOAT)
                return message_set(ret_why, -EINVAL, "the real number %.17g does not fit a %s column", v->f,
                                   type_names[t]);
        return message_set(ret_why, -EINVAL, "%s of %zu bytes does not fit a %s column", kind_name(v->kind),
                           v->len, type_names[t]);
}

int store_value_to_pg(enum store_pg_type t, const struct store_value *v, char **ret, char **ret_why) {
        *ret = NULL;
        if (v->kind == STORE_VALUE_NULL)
                return 0;
        switch (t) {
        case STORE_PG_BIGINT:
                /* SQLite keeps a whole real given to an INTEGER column as an integer: a real
                 * there has a fraction or is out of range, and text there was no number */
                if (v->kind != STORE_VALUE_INTEGER)
                        return refuse(v, t, ret_why);
                return asprintf(ret, "%" PRId64, v->i) < 0 ? -ENOMEM : 0;
        case STORE_PG_DOUBLE:
                if (v->kind == STORE_VALUE_INTEGER)
                        return asprintf(ret, "%" PRId64, v->i) < 0 ? -ENOMEM : 0;
                if (v->kind != STORE_VALUE_FLOAT)
                        return refuse(v, t, ret_why);
                return double_text(v->f, ret);
        case STORE_PG_TEXT:
                if (v->kind == STORE_VALUE_INTEGER)
                        return asprintf(ret, "%" PRId64, v->i) < 0 ? -ENOMEM : 0;
                if (v->kind == STORE_VALUE_FLOAT)
                        return double_text(v->f, ret);
                /* a blob holding text (bound as one) is that text */
                return text_value(v, ret, ret_why);
        case STORE_PG_BOOLEAN:
                if (v->kind != STORE_VALUE_INTEGER || (v->i != 0 && v->i != 1))
                        return refuse(v, t, ret_why);
                return (*ret = strdup(v->i ? "t" : "f")) ? 0 : -ENOMEM;
        case STORE_PG_JSONB: {
                if (v->kind != STORE_VALUE_TEXT && v->kind != STORE_VALUE_BLOB)
                        return refuse(v, t, ret_why);
                int r = text_value(v, ret, ret_why);
                if (r < 0)
                        return r;
                json_error_t e;
                json_t *j = json_loadb(*ret, v->len, JSON_DECODE_ANY, &e);
                if (!j) {
                        free(*ret);
                        *ret = NULL;
                        return message_set(ret_why, -EINVAL, "text that is not JSON (%s, at byte %d)", e.text,
                                           e.position);
                }
                json_decref(j);
                return 0;
        }
        case STORE_PG_BYTEA:
                if (v->kind != STORE_VALUE_TEXT && v->kind != STORE_VALUE_BLOB)
                        return refuse(v, t, ret_why);
                return hex_value(v, ret);
        case _STORE_PG_TYPE_MAX:
                break;
        }
        return message_set(ret_why, -EINVAL, "no conversion to column type %d", (int)t);
}

static void fnv(uint64_t *h, const void *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                *h ^= ((const unsigned char *)p)[i];
                *h *= UINT64_C(0x100000001b3);
        }
}

void store_row_hash_add(uint64_t *h, enum store_pg_type t, const char *text) {
        unsigned char tag = text ? 1 : 0;
        fnv(h, &tag, 1);
        if (!text)
                return;
        _cleanup_free_ char *canonical = NULL;
        if (t == STORE_PG_DOUBLE) {
                double f = strtod(text, NULL);
                fnv(h, &f, sizeof(f));
                return;
        }
        if (t == STORE_PG_JSONB) {
                json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
                canonical = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
                json_decref(j);
                if (canonical)
                        text = canonical;
        }
        uint64_t n = strlen(text);
        fnv(h, &n, sizeof(n));
        fnv(h, text, n);
}

void store_digest_add(struct store_digest *d, uint64_t row_hash) {
        /* mixed (splitmix64's finalizer) before the sum: FNV's low bits alone would let
         * two changed rows cancel more easily */
        uint64_t z = row_hash + UINT64_C(0x9e3779b97f4a7c15);
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        d->sum += z ^ (z >> 31);
        d->rows++;
}
