/*
 * The control protocol, pure: one JSON object per line each way.
 *   request:  {"id": <string|integer>, "method": "status", "params": {...}}
 *   response: {"id": ..., "ok": true, "result": {...}}
 *             {"id": ..., "ok": false, "error": {"code": "...", "message": "..."}}
 * "id" and "params" are optional; the id is echoed unchanged.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

#define CONTROL_METHOD_MAX 64

enum control_error {
        CONTROL_ERROR_PARSE,          /* not JSON */
        CONTROL_ERROR_INVALID,        /* JSON, but not a request */
        CONTROL_ERROR_UNKNOWN_METHOD,
        CONTROL_ERROR_INVALID_PARAMS,
        CONTROL_ERROR_TOO_LARGE,
        CONTROL_ERROR_BUSY,
        CONTROL_ERROR_INTERNAL,
        CONTROL_ERROR_NOT_IMPLEMENTED,
        CONTROL_ERROR_FORBIDDEN, /* the peer may not use the socket (agent/control-peer.h) */
        _CONTROL_ERROR_MAX,
};

struct control_request {
        json_t *id;     /* borrowed reference into root, or NULL */
        char method[CONTROL_METHOD_MAX + 1];
        json_t *params; /* borrowed; an empty object when absent */
        json_t *root;   /* owns the above */
};

const char *control_error_to_string(enum control_error e);

/*
 * The one mapping from what an action returned (agent/actions.h: a negative errno) to the
 * wire code: -EBADRQC unknown-method (no such method, or not one the socket offers),
 * -ENOSYS not-implemented (the subsystem is disabled on this node), -EINVAL, -ENOENT,
 * -EEXIST, -EBUSY, -EBADMSG, -EPERM, -EOPNOTSUPP and the key errors invalid-params (the
 * request cannot be carried out as asked), anything else internal.
 */
enum control_error control_error_from_errno(int r);

/*
 * Parse one request line: 0, or -EINVAL with the wire code in *ret_code and
 * *ret_message (caller frees) naming what is wrong; ret->id may still be set so that
 * the error response can carry it. control_request_done(ret) either way.
 */
int control_request_parse(const char *line, size_t len, struct control_request *ret,
                          enum control_error *ret_code, char **ret_message);
void control_request_done(struct control_request *req);

/* Build response lines (with the trailing newline). Caller frees. NULL on ENOMEM. */
char *control_response_ok(json_t *id, json_t *result);
char *control_response_error(json_t *id, enum control_error code, const char *message);
