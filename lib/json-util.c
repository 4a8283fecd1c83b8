/* Strict JSON input: jansson for parsing, a small scanner for line:column of keys. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json-util.h"

/* ---- locating keys in raw text ---------------------------------------------------- */

struct scanner {
        const char *text;
        size_t len, pos;
        unsigned depth;
};

static void skip_ws(struct scanner *s) {
        while (s->pos < s->len) {
                char c = s->text[s->pos];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                        break;
                s->pos++;
        }
}

static int hex4(const char *p, unsigned *ret) {
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
                char c = p[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (unsigned) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (unsigned) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (unsigned) (c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

/*
 * Scan a string token; if out is not NULL, decode it (ASCII escapes only; anything else
 * marks it undecodable, which only means it cannot match a key we look for).
 */
static int scan_string(struct scanner *s, char *out, size_t out_size, bool *decodable) {
        size_t n = 0;
        if (decodable)
                *decodable = true;
        if (s->pos >= s->len || s->text[s->pos] != '"')
                return -EINVAL;
        s->pos++;
        while (s->pos < s->len) {
                char c = s->text[s->pos++];
                if (c == '"') {
                        if (out)
                                out[n < out_size ? n : out_size - 1] = '\0';
                        return 0;
                }
                if (c == '\\') {
                        if (s->pos >= s->len)
                                return -EINVAL;
                        char e = s->text[s->pos++];
                        switch (e) {
                        case 'n': c = '\n'; break;
                        case 't': c = '\t'; break;
                        case 'r': c = '\r'; break;
                        case 'b': c = '\b'; break;
                        case 'f': c = '\f'; break;
                        case '"': case '\\': case '/': c = e; break;
                        case 'u': {
                                unsigned u;
                                if (s->pos + 4 > s->len || hex4(s->text + s->pos, &u) < 0)
                                        return -EINVAL;
                                s->pos += 4;
                                if (u == 0 || u > 0x7f) {
                                        if (decodable)
                                                *decodable = false;
                                        c = '?';
                                } else
                                        c = (char) u;
                                break;
                        }
                        default:
                                return -EINVAL;
                        }
                }
                if (out) {
                        if (n + 1 < out_size)
                                out[n++] = c;
                        else if (decodable)
                                *decodable = false;
                }
        }
        return -EINVAL;
}

static int skip_value(struct scanner *s);

static int skip_container(struct scanner *s, char open, char close) {
        if (++s->depth > 512)
                return -E2BIG;
        s->pos++; /* the opening bracket */
        (void) open;
        skip_ws(s);
        if (s->pos < s->len && s->text[s->pos] == close) {
                s->pos++;
                s->depth--;
                return 0;
        }
        for (;;) {
                int r;
                if (close == '}') {
                        r = scan_string(s, NULL, 0, NULL);
                        if (r < 0)
                                return r;
                        skip_ws(s);
                        if (s->pos >= s->len || s->text[s->pos] != ':')
                                return -EINVAL;
                        s->pos++;
                }
                r = skip_value(s);
                if (r < 0)
                        return r;
                skip_ws(s);
                if (s->pos >= s->len)
                        return -EINVAL;
                char c = s->text[s->pos++];
                if (c == close) {
                        s->depth--;
                        return 0;
                }
                if (c != ',')
                        return -EINVAL;
                skip_ws(s);
        }
}

static int skip_value(struct scanner *s) {
        skip_ws(s);
        if (s->pos >= s->len)
                return -EINVAL;
        char c = s->text[s->pos];
        if (c == '{')
                return skip_container(s, '{', '}');
        if (c == '[')
                return skip_container(s, '[', ']');
        if (c == '"')
                return scan_string(s, NULL, 0, NULL);
        /* number or literal: run to the next delimiter */
        size_t start = s->pos;
        while (s->pos < s->len) {
                c = s->text[s->pos];
                if (c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' ||
                    c == '\r')
                        break;
                s->pos++;
        }
        return s->pos > start ? 0 : -EINVAL;
}

/* Past the value at s and the comma after it, to the next member or element; -ENOENT
 * when the container ends there or the text is not JSON. */
static int skip_to_next(struct scanner *s) {
        if (skip_value(s) < 0)
                return -ENOENT;
        skip_ws(s);
        if (s->pos >= s->len || s->text[s->pos] != ',')
                return -ENOENT;
        s->pos++;
        return 0;
}

int json_locate(const char *text, size_t len, const struct json_path_segment *path,
                size_t depth, size_t *key_offset, size_t *value_offset) {
        struct scanner s = {.text = text, .len = len};
        skip_ws(&s);
        size_t key_at = s.pos;

        for (size_t level = 0; level < depth; level++) {
                const struct json_path_segment *seg = &path[level];
                skip_ws(&s);
                if (s.pos >= s.len)
                        return -ENOENT;
                bool found = false;
                if (seg->key) {
                        if (s.text[s.pos] != '{')
                                return -ENOENT;
                        s.pos++;
                        skip_ws(&s);
                        if (s.pos < s.len && s.text[s.pos] == '}')
                                return -ENOENT;
                        for (;;) {
                                char key[256];
                                bool decodable;
                                skip_ws(&s);
                                size_t this_key = s.pos;
                                if (scan_string(&s, key, sizeof(key), &decodable) < 0)
                                        return -ENOENT;
                                skip_ws(&s);
                                if (s.pos >= s.len || s.text[s.pos] != ':')
                                        return -ENOENT;
                                s.pos++;
                                skip_ws(&s);
                                if (decodable && streq(key, seg->key)) {
                                        key_at = this_key;
                                        found = true;
                                        break;
                                }
                                if (skip_to_next(&s) < 0)
                                        return -ENOENT;
                        }
                } else {
                        if (s.text[s.pos] != '[')
                                return -ENOENT;
                        s.pos++;
                        for (size_t i = 0;; i++) {
                                skip_ws(&s);
                                if (s.pos >= s.len || s.text[s.pos] == ']')
                                        return -ENOENT;
                                if (i == seg->index) {
                                        key_at = s.pos;
                                        found = true;
                                        break;
                                }
                                if (skip_to_next(&s) < 0)
                                        return -ENOENT;
                        }
                }
                if (!found)
                        return -ENOENT;
        }
        skip_ws(&s);
        if (key_offset)
                *key_offset = key_at;
        if (value_offset)
                *value_offset = s.pos;
        return 0;
}

void json_offset_to_line_column(const char *text, size_t len, size_t offset, unsigned *line,
                                unsigned *column) {
        unsigned l = 1, c = 1;
        if (offset > len)
                offset = len;
        for (size_t i = 0; i < offset; i++) {
                unsigned char ch = (unsigned char) text[i];
                if (ch == '\n') {
                        l++;
                        c = 1;
                } else if ((ch & 0xc0) != 0x80) {
                        c++;
                }
        }
        *line = l;
        *column = c;
}

void json_path_format(const struct json_path_segment *path, size_t depth, char *buf,
                      size_t size) {
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < depth && n < size; i++) {
                int w;
                if (path[i].key)
                        w = snprintf(buf + n, size - n, "%s%s", i > 0 ? "." : "", path[i].key);
                else
                        w = snprintf(buf + n, size - n, "[%zu]", path[i].index);
                if (w < 0)
                        break;
                n += (size_t) w;
        }
}

/* ---- problems --------------------------------------------------------------------- */

static struct json_problem *problem_add(struct json_ctx *ctx) {
        struct json_problems *ps = ctx->problems;
        if (!ps)
                return NULL;
        if (ps->count >= JSON_MAX_PROBLEMS) {
                ps->dropped++;
                return NULL;
        }
        struct json_problem *p = &ps->items[ps->count++];
        memset(p, 0, sizeof(*p));
        return p;
}

int json_ctx_problem(struct json_ctx *ctx, enum json_where where, const char *fmt, ...) {
        struct json_problem *p = problem_add(ctx);
        if (!p)
                return -EINVAL;
        json_path_format(ctx->path, ctx->depth, p->path, sizeof(p->path));
        if (ctx->text) {
                size_t key_at, value_at;
                if (json_locate(ctx->text, ctx->text_len, ctx->path, ctx->depth, &key_at,
                                &value_at) >= 0)
                        json_offset_to_line_column(ctx->text, ctx->text_len,
                                                   where == JSON_AT_KEY ? key_at : value_at,
                                                   &p->line, &p->column);
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->message, sizeof(p->message), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

void json_problem_format(const struct json_ctx *ctx, const struct json_problem *p, char *buf,
                         size_t size) {
        const char *src = ctx->source ? ctx->source : "<input>";
        if (p->line > 0 && p->path[0])
                snprintf(buf, size, "%s:%u:%u: %s: %s", src, p->line, p->column, p->path,
                         p->message);
        else if (p->line > 0)
                snprintf(buf, size, "%s:%u:%u: %s", src, p->line, p->column, p->message);
        else if (p->path[0])
                snprintf(buf, size, "%s: %s: %s", src, p->path, p->message);
        else
                snprintf(buf, size, "%s: %s", src, p->message);
}

char *json_problems_to_message(const char *source, const struct json_problems *ps) {
        struct json_ctx ctx = {.source = source};
        size_t cap = (ps->count + 2) * 1024, n = 0;
        char *msg = malloc(cap);
        if (!msg)
                return NULL;
        msg[0] = '\0';
        for (size_t i = 0; i < ps->count; i++) {
                char line[1024];
                json_problem_format(&ctx, &ps->items[i], line, sizeof(line));
                n += (size_t) snprintf(msg + n, cap - n, "%s%s", i ? "\n" : "", line);
        }
        if (ps->dropped)
                snprintf(msg + n, cap - n, "\n%s: %zu more problems not shown", source ? source : "<input>",
                         ps->dropped);
        return msg;
}

json_t *json_parse_object(struct json_ctx *ctx) {
        json_error_t err;
        json_t *root = json_loadb(ctx->text ? ctx->text : "", ctx->text ? ctx->text_len : 0,
                                  JSON_REJECT_DUPLICATES, &err);
        if (!root) {
                struct json_problem *p = problem_add(ctx);
                if (p) {
                        p->line = err.line > 0 ? (unsigned) err.line : 0;
                        p->column = err.column > 0 ? (unsigned) err.column : 1;
                        if (p->line == 0 && ctx->text_len == 0)
                                p->line = p->column = 1;
                        snprintf(p->message, sizeof(p->message), "invalid JSON: %s", err.text);
                }
                return NULL;
        }
        if (!json_is_object(root)) {
                ctx->depth = 0;
                json_ctx_problem(ctx, JSON_AT_VALUE, "expected a JSON object at the top level");
                json_decref(root);
                return NULL;
        }
        return root;
}

/* ---- dispatch --------------------------------------------------------------------- */

int json_parse_dispatch(struct json_ctx *ctx, const struct json_field *fields, void *base,
                        json_t **ret_root) {
        *ret_root = json_parse_object(ctx);
        if (!*ret_root)
                return -EINVAL;
        int r = json_dispatch_object(ctx, *ret_root, fields, base);
        if (r < 0)
                return r;
        return ctx->problems->count > 0 ? -EINVAL : 0;
}

const char *json_type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number with a fraction";
        case JSON_TRUE: case JSON_FALSE: return "a boolean";
        case JSON_NULL: return "null";
        }
        return "something unknown";
}

size_t json_edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > 64 || lb > 64)
                return (size_t) -1;
        size_t row[65];
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
                        size_t best = diag + cost;
                        if (row[j] + 1 < best)
                                best = row[j] + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

static bool path_push(struct json_ctx *ctx, const char *key, size_t index) {
        if (ctx->depth >= JSON_MAX_DEPTH) {
                json_ctx_problem(ctx, JSON_AT_VALUE, "nested too deeply");
                return false;
        }
        ctx->path[ctx->depth].key = key;
        ctx->path[ctx->depth].index = index;
        ctx->depth++;
        return true;
}

bool json_ctx_push_key(struct json_ctx *ctx, const char *key) {
        return path_push(ctx, key, 0);
}

bool json_ctx_push_index(struct json_ctx *ctx, size_t index) {
        return path_push(ctx, NULL, index);
}

void json_ctx_pop(struct json_ctx *ctx) {
        if (ctx->depth > 0)
                ctx->depth--;
}

int json_dispatch_object(struct json_ctx *ctx, json_t *obj, const struct json_field *fields,
                         void *base) {
        int result = 0;
        if (!json_is_object(obj))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an object, got %s",
                                        json_type_name(obj));

        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value) {
                const struct json_field *f = NULL;
                for (const struct json_field *i = fields; i->name; i++)
                        if (streq(i->name, key)) {
                                f = i;
                                break;
                        }
                if (!json_ctx_push_key(ctx, key)) {
                        result = -EINVAL;
                        break;
                }
                if (!f) {
                        const char *best = NULL;
                        size_t best_distance = 3; /* suggest only close matches */
                        for (const struct json_field *i = fields; i->name; i++) {
                                size_t d = json_edit_distance(key, i->name);
                                if (d < best_distance) {
                                        best_distance = d;
                                        best = i->name;
                                }
                        }
                        if (best)
                                result = json_ctx_problem(ctx, JSON_AT_KEY,
                                                          "unknown key (did you mean \"%s\"?)", best);
                        else
                                result = json_ctx_problem(ctx, JSON_AT_KEY, "unknown key");
                } else if (json_is_null(value) && (f->flags & JSON_NULLABLE)) {
                        /* keep the default */
                } else {
                        int r = f->dispatch(ctx, value, (char *) base + f->offset, f);
                        if (r < 0)
                                result = r;
                }
                ctx->depth--;
        }

        for (const struct json_field *f = fields; f->name; f++) {
                if (!(f->flags & JSON_REQUIRED) || json_object_get(obj, f->name))
                        continue;
                result = json_ctx_problem(ctx, JSON_AT_VALUE, "missing required key \"%s\"",
                                          f->name);
        }
        return result;
}

int json_dispatch_array(struct json_ctx *ctx, json_t *v, const char *what, size_t max,
                        const char *noun, json_element_fn element, void *userdata) {
        if (!json_is_array(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected %s, got %s", what, json_type_name(v));
        if (max > 0 && json_array_size(v) > max)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "more than %zu %s", max, noun);
        int result = 0;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
                if (!json_ctx_push_index(ctx, i))
                        return -EINVAL;
                int r = element(ctx, e, i, userdata);
                json_ctx_pop(ctx);
                if (r < 0)
                        result = r;
                if (r == -ENOMEM)
                        break;
        }
        return result;
}

int json_dispatch_string(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        char **s = dest;
        if (!json_is_string(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a string, got %s",
                                        json_type_name(v));
        size_t max = f->max > 0 ? (size_t) f->max : 4096;
        if (json_string_length(v) > max)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "string longer than %zu bytes", max);
        if (json_string_length(v) < (size_t) (f->min > 0 ? f->min : 0))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "string shorter than %lld bytes",
                                        (long long) f->min);
        char *copy = strdup(json_string_value(v));
        if (!copy)
                return -ENOMEM;
        free(*s);
        *s = copy;
        return 0;
}

int json_dispatch_absolute_path(struct json_ctx *ctx, json_t *v, void *dest,
                                const struct json_field *f) {
        if (!json_is_string(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a path string, got %s",
                                        json_type_name(v));
        const char *p = json_string_value(v);
        if (p[0] != '/')
                return json_ctx_problem(ctx, JSON_AT_VALUE, "\"%s\" is not an absolute path", p);
        if (json_string_length(v) >= 4096)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "path too long");
        return json_dispatch_string(ctx, v, dest, f);
}

int json_dispatch_bool(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_boolean(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected true or false, got %s",
                                        json_type_name(v));
        *(bool *) dest = json_is_true(v);
        return 0;
}

int json_dispatch_int64(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_integer(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an integer, got %s",
                                        json_type_name(v));
        json_int_t i = json_integer_value(v);
        if (f->min != f->max && (i < f->min || i > f->max))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "%lld is out of range [%lld, %lld]",
                                        (long long) i, (long long) f->min, (long long) f->max);
        *(int64_t *) dest = (int64_t) i;
        return 0;
}

int json_dispatch_nested(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return json_dispatch_object(ctx, v, f->arg, dest);
}

const char *json_first_unknown_key(json_t *o, const char *const *keys) {
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                bool known = false;
                for (const char *const *k = keys; *k && !known; k++)
                        known = strcmp(key, *k) == 0;
                if (!known)
                        return key;
        }
        return NULL;
}
