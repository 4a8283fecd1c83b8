/*
 * Fuzz control_request_parse() and the answer built from it: any line a local client
 * sends gets exactly one well-formed response line, never a crash or a second line.
 */
#include "config.h"

#include <jansson.h>

#include "agent/control-proto.h"
#include "fuzz-util.h"

static void check_response_line(char *line) {
        FUZZ_CHECK(line);
        size_t n = strlen(line);
        FUZZ_CHECK(n >= 2 && line[n - 1] == '\n');
        FUZZ_CHECK(memchr(line, '\n', n - 1) == NULL);
        json_t *back = json_loadb(line, n - 1, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(back && json_is_object(back));
        json_decref(back);
        free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        char *line = malloc(size ? size : 1);
        FUZZ_CHECK(line);
        if (size)
                memcpy(line, data, size);

        struct control_request req;
        enum control_error code = _CONTROL_ERROR_MAX;
        char *msg = NULL;
        int r = control_request_parse(line, size, &req, &code, &msg);
        FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == 0) {
                FUZZ_CHECK(!msg);
                FUZZ_CHECK(req.root && req.params && json_is_object(req.params));
                FUZZ_CHECK(req.method[0] != '\0');
                FUZZ_CHECK(strlen(req.method) <= CONTROL_METHOD_MAX);
                FUZZ_CHECK(!req.id || json_is_string(req.id) || json_is_integer(req.id));
                /* Echo the params back, as a handler that returns its input would. */
                check_response_line(control_response_ok(req.id, req.params));
        } else {
                FUZZ_CHECK(code < _CONTROL_ERROR_MAX);
                FUZZ_CHECK(r == -ENOMEM || (msg && msg[0] != '\0'));
                FUZZ_CHECK(!req.id || json_is_string(req.id) || json_is_integer(req.id));
                check_response_line(control_response_error(req.id, code, msg));
        }
        free(msg);
        control_request_done(&req);
        free(line);
        return 0;
}
