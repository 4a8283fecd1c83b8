/* The control protocol, pure: request parsing and response formatting. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/control-proto.h"
#include "lib/macro.h"
#include "lib/message.h"

static const char *const error_names[_CONTROL_ERROR_MAX] = {
        [CONTROL_ERROR_PARSE] = "parse-error",
        [CONTROL_ERROR_INVALID] = "invalid-request",
        [CONTROL_ERROR_UNKNOWN_METHOD] = "unknown-method",
        [CONTROL_ERROR_INVALID_PARAMS] = "invalid-params",
        [CONTROL_ERROR_TOO_LARGE] = "too-large",
        [CONTROL_ERROR_BUSY] = "busy",
        [CONTROL_ERROR_INTERNAL] = "internal",
        [CONTROL_ERROR_NOT_IMPLEMENTED] = "not-implemented",
        [CONTROL_ERROR_FORBIDDEN] = "forbidden",
};

const char *control_error_to_string(enum control_error e) {
        if ((unsigned) e >= _CONTROL_ERROR_MAX)
                return "internal";
        return error_names[e];
}

enum control_error control_error_from_errno(int r) {
        switch (r) {
        case -EBADRQC:
                return CONTROL_ERROR_UNKNOWN_METHOD;
        case -ENOSYS:
                return CONTROL_ERROR_NOT_IMPLEMENTED;
        case -EINVAL:
        case -ENOENT:
        case -EEXIST:
        case -EBUSY:
        case -EBADMSG:
        case -EPERM:
        case -EOPNOTSUPP:
        case -EKEYREJECTED:
        case -EKEYEXPIRED:
        case -ENOKEY:
                return CONTROL_ERROR_INVALID_PARAMS;
        default:
                return CONTROL_ERROR_INTERNAL;
        }
}

static bool method_name_is_valid(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
                      *s == '_' || *s == '.'))
                        return false;
        return true;
}

#define FAIL(kind, ...)                                                                  \
        do {                                                                             \
                *ret_code = (kind);                                                      \
                return message_set(ret_message, -EINVAL, __VA_ARGS__);                   \
        } while (0)

int control_request_parse(const char *line, size_t len, struct control_request *ret,
                          enum control_error *ret_code, char **ret_message) {
        memset(ret, 0, sizeof(*ret));
        *ret_message = NULL;
        json_error_t err;
        json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
        if (!root)
                FAIL(CONTROL_ERROR_PARSE, "request is not valid JSON: %s at column %d", err.text,
                     err.column);
        ret->root = root;
        if (!json_is_object(root))
                FAIL(CONTROL_ERROR_INVALID, "request must be a JSON object");

        json_t *id = json_object_get(root, "id");
        if (id) {
                if (!json_is_string(id) && !json_is_integer(id))
                        FAIL(CONTROL_ERROR_INVALID, "\"id\" must be a string or an integer");
                if (json_is_string(id) && json_string_length(id) > 128)
                        FAIL(CONTROL_ERROR_INVALID, "\"id\" longer than 128 bytes");
                ret->id = id;
        }

        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
                if (!streq(key, "id") && !streq(key, "method") && !streq(key, "params"))
                        FAIL(CONTROL_ERROR_INVALID,
                             "unknown key \"%.64s\" in request (allowed: id, method, params)", key);
        }

        json_t *method = json_object_get(root, "method");
        if (!method)
                FAIL(CONTROL_ERROR_INVALID, "missing \"method\"");
        if (!json_is_string(method))
                FAIL(CONTROL_ERROR_INVALID, "\"method\" must be a string");
        if (json_string_length(method) > CONTROL_METHOD_MAX ||
            !method_name_is_valid(json_string_value(method)))
                FAIL(CONTROL_ERROR_INVALID, "\"method\" is not a valid method name");
        snprintf(ret->method, sizeof(ret->method), "%s", json_string_value(method));

        json_t *params = json_object_get(root, "params");
        if (params && !json_is_object(params))
                FAIL(CONTROL_ERROR_INVALID_PARAMS, "\"params\" must be an object");
        if (!params) {
                params = json_object();
                if (!params || json_object_set_new(root, "params", params) < 0)
                {
                        *ret_code = CONTROL_ERROR_INTERNAL;
                        return -ENOMEM;
                }
        }
        ret->params = params;
        return 0;
}

void control_request_done(struct control_request *req) {
        json_decref(req->root);
        memset(req, 0, sizeof(*req));
}

static char *dump_line(json_t *obj) {
        char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12));
        if (!s)
                return NULL;
        size_t n = strlen(s);
        char *line = realloc(s, n + 2);
        if (!line) {
                free(s);
                return NULL;
        }
        line[n] = '\n';
        line[n + 1] = '\0';
        return line;
}

char *control_response_ok(json_t *id, json_t *result) {
        json_t *obj = json_pack("{s:O?,s:b,s:O}", "id", id, "ok", 1, "result",
                                result ? result : json_null());
        if (!obj)
                return NULL;
        char *line = dump_line(obj);
        json_decref(obj);
        return line;
}

char *control_response_error(json_t *id, enum control_error code, const char *message) {
        json_t *obj = json_pack("{s:O?,s:b,s:{s:s,s:s}}", "id", id, "ok", 0, "error", "code",
                                control_error_to_string(code), "message", message ? message : "");
        if (!obj) /* a message cut inside a UTF-8 sequence: send the code alone */
                obj = json_pack("{s:O?,s:b,s:{s:s,s:s}}", "id", id, "ok", 0, "error", "code",
                                control_error_to_string(code), "message", "(unprintable message)");
        if (!obj)
                return NULL;
        char *line = dump_line(obj);
        json_decref(obj);
        return line;
}
