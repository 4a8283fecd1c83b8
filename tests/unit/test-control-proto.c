/* Unit tests for the control protocol: request parsing, responses, line framing, status. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/control-proto.h"
#include "lib/linebuf.h"
#include "agent/status.h"

/* The wire code on failure, -1 on success; *msg (freed by the caller) says why. */
static int parse(const char *line, struct control_request *req, char **msg) {
        enum control_error code;
        int r = control_request_parse(line, strlen(line), req, &code, msg);
        if (r == 0) {
                assert_null(*msg);
                return -1;
        }
        assert_int_equal(r, -EINVAL);
        assert_non_null(*msg);
        return (int) code;
}

static void test_parse_valid_requests(void **state) {
        struct control_request req;
        char *msg = NULL;
        assert_int_equal(parse("{\"method\": \"status\"}", &req, &msg), -1);
        assert_string_equal(req.method, "status");
        assert_null(req.id);
        assert_true(json_is_object(req.params));
        assert_int_equal(json_object_size(req.params), 0);
        control_request_done(&req);

        assert_int_equal(parse("{\"id\": \"abc\", \"method\": \"workload.start\", \"params\": {\"x\": 1}}", &req, &msg), -1);
        assert_string_equal(json_string_value(req.id), "abc");
        assert_string_equal(req.method, "workload.start");
        assert_int_equal(json_integer_value(json_object_get(req.params, "x")), 1);
        control_request_done(&req);

        assert_int_equal(parse("{\"id\": 7, \"method\": \"ping\"}", &req, &msg), -1);
        assert_int_equal(json_integer_value(req.id), 7);
        control_request_done(&req);
}

static void expect_error(const char *line, enum control_error kind, const char *text) {
        struct control_request req;
        char *msg = NULL;
        assert_int_equal(parse(line, &req, &msg), (int) kind);
        assert_non_null(strstr(msg, text));
        free(msg);
        control_request_done(&req);
}

static void test_parse_invalid_requests(void **state) {
        expect_error("not json", CONTROL_ERROR_PARSE, "request is not valid JSON");
        expect_error("", CONTROL_ERROR_PARSE, "request is not valid JSON");
        expect_error("{\"method\": \"a\"", CONTROL_ERROR_PARSE, "not valid JSON");
        expect_error("[1]", CONTROL_ERROR_INVALID, "must be a JSON object");
        expect_error("{}", CONTROL_ERROR_INVALID, "missing \"method\"");
        expect_error("{\"method\": 5}", CONTROL_ERROR_INVALID, "\"method\" must be a string");
        expect_error("{\"method\": \"Bad Name\"}", CONTROL_ERROR_INVALID, "not a valid method name");
        expect_error("{\"method\": \"\"}", CONTROL_ERROR_INVALID, "not a valid method name");
        expect_error("{\"id\": [1], \"method\": \"a\"}", CONTROL_ERROR_INVALID, "\"id\" must be a string or an integer");
        expect_error("{\"id\": 1.5, \"method\": \"a\"}", CONTROL_ERROR_INVALID, "\"id\" must be a string or an integer");
        expect_error("{\"method\": \"a\", \"params\": [1]}", CONTROL_ERROR_INVALID_PARAMS, "\"params\" must be an object");
        expect_error("{\"method\": \"a\", \"extra\": 1}", CONTROL_ERROR_INVALID, "unknown key \"extra\"");
        expect_error("{\"method\": \"a\", \"method\": \"b\"}", CONTROL_ERROR_PARSE, "duplicate");
        expect_error("{\"method\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                     CONTROL_ERROR_INVALID, "not a valid method name");
}

static void test_id_is_kept_for_error_responses(void **state) {
        struct control_request req;
        char *msg = NULL;
        assert_int_equal(parse("{\"id\": 42, \"method\": 1}", &req, &msg), CONTROL_ERROR_INVALID);
        assert_int_equal(json_integer_value(req.id), 42);
        char *line = control_response_error(req.id, CONTROL_ERROR_INVALID, msg);
        assert_string_equal(line, "{\"id\":42,\"ok\":false,\"error\":{\"code\":\"invalid-request\",\"message\":\"\\\"method\\\" must be a string\"}}\n");
        free(line);
        free(msg);
        control_request_done(&req);
}

static void test_responses(void **state) {
        json_t *id = json_string("x1");
        json_t *result = json_pack("{s:i}", "n", 3);
        char *line = control_response_ok(id, result);
        assert_string_equal(line, "{\"id\":\"x1\",\"ok\":true,\"result\":{\"n\":3}}\n");
        free(line);
        line = control_response_ok(NULL, NULL);
        assert_string_equal(line, "{\"id\":null,\"ok\":true,\"result\":null}\n");
        free(line);
        line = control_response_error(NULL, CONTROL_ERROR_BUSY, "full");
        assert_string_equal(line, "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"full\"}}\n");
        free(line);
        /* A message cut inside a UTF-8 sequence still gives a valid response. */
        line = control_response_error(id, CONTROL_ERROR_INVALID, "bad \xc3");
        assert_non_null(line);
        assert_non_null(strstr(line, "\"code\":\"invalid-request\""));
        free(line);
        assert_string_equal(control_error_to_string(CONTROL_ERROR_TOO_LARGE), "too-large");
        assert_string_equal(control_error_to_string((enum control_error) 99), "internal");
        json_decref(id);
        json_decref(result);
}

static void test_linebuf_framing(void **state) {
        struct linebuf b;
        linebuf_init(&b, 16);
        char *line;
        size_t len;
        assert_int_equal(linebuf_take_line(&b, &line, &len), 0);
        assert_int_equal(linebuf_feed(&b, "ab", 2), 0);
        assert_int_equal(linebuf_take_line(&b, &line, &len), 0);
        assert_int_equal(linebuf_feed(&b, "c\r\nde\nf", 7), 0);
        assert_int_equal(linebuf_take_line(&b, &line, &len), 1);
        assert_string_equal(line, "abc");
        assert_int_equal(len, 3);
        free(line);
        assert_int_equal(linebuf_take_line(&b, &line, &len), 1);
        assert_string_equal(line, "de");
        free(line);
        assert_int_equal(linebuf_take_line(&b, &line, &len), 0);
        assert_int_equal(linebuf_feed(&b, "\n", 1), 0);
        assert_int_equal(linebuf_take_line(&b, &line, &len), 1);
        assert_string_equal(line, "f");
        free(line);
        linebuf_free(&b);
}

static void test_linebuf_bounds(void **state) {
        struct linebuf b;
        linebuf_init(&b, 8);
        char *line;
        /* Exactly max is fine; one more with no newline in sight is refused at once. */
        assert_int_equal(linebuf_feed(&b, "12345678", 8), 0);
        assert_int_equal(linebuf_feed(&b, "9", 1), -EMSGSIZE);
        linebuf_free(&b);

        linebuf_init(&b, 8);
        /* A complete over-long line is dropped, and the next line still comes through. */
        assert_int_equal(linebuf_feed(&b, "1234567890\nok\n", 14), 0);
        assert_int_equal(linebuf_take_line(&b, &line, NULL), -EMSGSIZE);
        assert_int_equal(linebuf_take_line(&b, &line, NULL), 1);
        assert_string_equal(line, "ok");
        free(line);

        /* The buffer never grows without bound, however the bytes arrive. */
        char big[1000];
        memset(big, 'x', sizeof(big));
        int r = 0;
        for (int i = 0; i < 100 && r == 0; i++)
                r = linebuf_feed(&b, big, sizeof(big));
        assert_int_equal(r, -EMSGSIZE);
        assert_true(b.len <= 8 * 4 + 4);
        linebuf_free(&b);
}

static void test_status_document(void **state) {
        struct node_state node = {.node_id = "sat-9", .boot_epoch = 12, .boot_id = "00ff", .boot_epoch_reset = true};
        struct agent_config cfg = {.state_dir = "/s", .runtime_dir = "/r", .source = "/etc/a.json"};
        struct agent_status_input in = {.node = &node, .config = &cfg, .uptime_usec = 2500000, .config_reloads = 3,
                                        .config_reload_failures = 1, .last_reload_error = "bad"};
        json_t *s = agent_status_build(&in);
        assert_non_null(s);
        assert_string_equal(json_string_value(json_object_get(s, "node_id")), "sat-9");
        assert_int_equal(json_integer_value(json_object_get(s, "boot_epoch")), 12);
        assert_true(json_is_true(json_object_get(s, "boot_epoch_reset")));
        assert_true(json_number_value(json_object_get(s, "uptime_sec")) == 2.5);
        assert_string_equal(json_string_value(json_object_get(s, "agent_version")), PACKAGE_VERSION);
        assert_string_equal(json_string_value(json_object_get(s, "config_file")), "/etc/a.json");
        json_t *reload = json_object_get(s, "config_reload");
        assert_int_equal(json_integer_value(json_object_get(reload, "count")), 3);
        assert_string_equal(json_string_value(json_object_get(reload, "last_error")), "bad");
        json_t *subs = json_object_get(s, "subsystems");
        assert_string_equal(json_string_value(json_object_get(json_object_get(subs, "runtime"), "state")), "disabled");
        assert_string_equal(json_string_value(json_object_get(json_object_get(subs, "health"), "state")), "disabled");
        assert_string_equal(json_string_value(json_object_get(json_object_get(subs, "update"), "state")), "disabled");
        assert_non_null(strstr(json_string_value(json_object_get(json_object_get(subs, "update"), "summary")), "update.enabled"));
        assert_string_equal(json_string_value(json_object_get(json_object_get(subs, "link"), "state")), "disabled");
        assert_non_null(strstr(json_string_value(json_object_get(json_object_get(subs, "link"), "summary")), "link.enabled"));
        /* every subsystem is built now: none may claim otherwise */
        const char *key;
        json_t *sub;
        json_object_foreach(subs, key, sub)
                assert_string_not_equal(json_string_value(json_object_get(sub, "state")), "not-built");
        json_decref(s);

        /* A running runtime speaks for itself. */
        in.runtime = json_pack("{s:s,s:s}", "state", "active", "summary", "2 workloads");
        s = agent_status_build(&in);
        assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(s, "subsystems"), "runtime"), "summary")),
                            "2 workloads");
        json_decref(in.runtime);
        json_decref(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_valid_requests),
                cmocka_unit_test(test_parse_invalid_requests),
                cmocka_unit_test(test_id_is_kept_for_error_responses),
                cmocka_unit_test(test_responses),
                cmocka_unit_test(test_linebuf_framing),
                cmocka_unit_test(test_linebuf_bounds),
                cmocka_unit_test(test_status_document),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
