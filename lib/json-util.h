/*
 * Strict JSON input: parse with jansson, then dispatch objects against field tables.
 * Every problem names the source, line:column, the key path and what was expected, so
 * an operator can fix a config or a spec without reading our code.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/macro.h"

#define JSON_MAX_DEPTH 16
#define JSON_MAX_PROBLEMS 32

struct json_problem {
        unsigned line, column; /* 1-based; 0 when unknown */
        char path[256];        /* "control.max_clients", "" for the document */
        char message[512];
};

struct json_problems {
        struct json_problem items[JSON_MAX_PROBLEMS];
        size_t count;
        size_t dropped; /* problems beyond JSON_MAX_PROBLEMS */
};

struct json_path_segment {
        const char *key; /* NULL for an array element */
        size_t index;
};

struct json_ctx {
        const char *source; /* file name or "<request>", for messages */
        const char *text;   /* the raw text, for line:column lookups; may be NULL */
        size_t text_len;
        struct json_path_segment path[JSON_MAX_DEPTH];
        size_t depth;
        struct json_problems *problems;
};

/*
 * Pure: find a key path in raw JSON text. On success *key_offset is the byte offset of
 * the key token (or the element for array indexes) and *value_offset of its value.
 * An empty path gives the document's top value. -ENOENT if not found.
 */
int json_locate(const char *text, size_t len, const struct json_path_segment *path,
                size_t depth, size_t *key_offset, size_t *value_offset);

/* Pure: 1-based line and character column of a byte offset (UTF-8 aware). */
void json_offset_to_line_column(const char *text, size_t len, size_t offset, unsigned *line,
                                unsigned *column);

/* Render the path as "a.b[3].c". */
void json_path_format(const struct json_path_segment *path, size_t depth, char *buf,
                      size_t size);

enum json_where {
        JSON_AT_KEY,   /* point at the key of the current path */
        JSON_AT_VALUE, /* point at its value */
};

/* Record a problem at the current path. Always returns -EINVAL. */
int json_ctx_problem(struct json_ctx *ctx, enum json_where where, const char *fmt, ...)
        _printf_(3, 4);

/* Descend into a key or an array element of the current path, for dispatchers of
 * containers; false when nested too deeply (a problem is recorded). Pop to go back. */
bool json_ctx_push_key(struct json_ctx *ctx, const char *key);
bool json_ctx_push_index(struct json_ctx *ctx, size_t index);
void json_ctx_pop(struct json_ctx *ctx);

/* Name of a JSON value's type for messages: "a string", "an integer"... */
const char *json_type_name(const json_t *v);

/* Format problem i as "source:line:column: path: message". */
void json_problem_format(const struct json_ctx *ctx, const struct json_problem *p, char *buf,
                         size_t size);

/* All problems, one "source:line:column: path: message" line each. Caller frees. */
char *json_problems_to_message(const char *source, const struct json_problems *ps);

/*
 * Parse text into a JSON object. Syntax errors, duplicate keys and a top level that is
 * not an object become problems with jansson's line:column. NULL on failure.
 */
json_t *json_parse_object(struct json_ctx *ctx);

struct json_field;
typedef int (*json_dispatch_fn)(struct json_ctx *ctx, json_t *value, void *dest,
                                const struct json_field *field);

enum {
        JSON_REQUIRED = 1 << 0,
        JSON_NULLABLE = 1 << 1, /* null means "leave the default" */
};

struct json_field {
        const char *name;
        json_dispatch_fn dispatch;
        size_t offset;
        unsigned flags;
        const void *arg;    /* dispatcher-specific: a sub-table, bounds... */
        int64_t min, max;   /* for integers */
};

/*
 * Check every member of obj against fields: unknown keys, wrong types and missing
 * required keys all become problems (dispatch goes on to find them all). Returns
 * -EINVAL if any problem was found in this object or below.
 */
int json_dispatch_object(struct json_ctx *ctx, json_t *obj, const struct json_field *fields,
                         void *base);

/*
 * Parse text (ctx->text) as one object and check it against fields: json_parse_object,
 * then json_dispatch_object. *ret_root is the root (caller unrefs; NULL when the text is
 * not a JSON object), kept even when fields have problems, since dispatchers may borrow
 * from it. Returns 0, -ENOMEM, or -EINVAL when ctx->problems holds any problem.
 */
int json_parse_dispatch(struct json_ctx *ctx, const struct json_field *fields, void *base,
                        json_t **ret_root);

/* Standard dispatchers; dest is base + field->offset. */
int json_dispatch_string(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f);
int json_dispatch_absolute_path(struct json_ctx *ctx, json_t *v, void *dest,
                                const struct json_field *f);
int json_dispatch_bool(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f);
/* Integer within [min, max]; stored as int64_t. */
int json_dispatch_int64(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f);
/* A nested object whose fields are the json_field table in arg, dest is its struct. */
int json_dispatch_nested(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f);

/*
 * Walk an array: a problem "expected <what>, got ..." if v is not one, "more than <max>
 * <noun>" past max (0: no bound), else element(ctx, e, i, userdata) for each element with
 * the path at [i]. Every element is checked (problems are collected); -ENOMEM stops.
 * Returns 0 or the last negative result.
 */
typedef int (*json_element_fn)(struct json_ctx *ctx, json_t *e, size_t index, void *userdata);
int json_dispatch_array(struct json_ctx *ctx, json_t *v, const char *what, size_t max,
                        const char *noun, json_element_fn element, void *userdata);

/* Pure: edit distance, for "did you mean" hints. */
size_t json_edit_distance(const char *a, const char *b);

/* The first member of o whose key is not in keys (NULL-ended), or NULL when all are known. */
const char *json_first_unknown_key(json_t *o, const char *const *keys);
