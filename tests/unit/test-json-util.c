/* Unit tests for strict JSON input: locating keys, line:column, dispatch problems. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/json-util.h"

static void locate(const char *text, const struct json_path_segment *path, size_t depth,
                   unsigned *kl, unsigned *kc, unsigned *vl, unsigned *vc) {
        size_t k, v;
        assert_int_equal(json_locate(text, strlen(text), path, depth, &k, &v), 0);
        json_offset_to_line_column(text, strlen(text), k, kl, kc);
        json_offset_to_line_column(text, strlen(text), v, vl, vc);
}

static void test_locate_nested_keys_and_arrays(void **state) {
        const char *text = "{\n"
                           "  \"a\": 1,\n"
                           "  \"b\": {\"c\": [10, {\"d\": \"x\"}, 30]},\n"
                           "  \"e\" :   true\n"
                           "}\n";
        unsigned kl, kc, vl, vc;
        struct json_path_segment p1[] = {{"a", 0}};
        locate(text, p1, 1, &kl, &kc, &vl, &vc);
        assert_int_equal(kl, 2);
        assert_int_equal(kc, 3);
        assert_int_equal(vl, 2);
        assert_int_equal(vc, 8);

        struct json_path_segment p2[] = {{"b", 0}, {"c", 0}, {NULL, 1}, {"d", 0}};
        locate(text, p2, 4, &kl, &kc, &vl, &vc);
        assert_int_equal(kl, 3);
        assert_int_equal(kc, 20);
        assert_int_equal(vc, 25);

        struct json_path_segment p3[] = {{"b", 0}, {"c", 0}, {NULL, 2}};
        locate(text, p3, 3, &kl, &kc, &vl, &vc);
        assert_int_equal(vc, 31);

        struct json_path_segment p4[] = {{"e", 0}};
        locate(text, p4, 1, &kl, &kc, &vl, &vc);
        assert_int_equal(kl, 4);
        assert_int_equal(kc, 3);
        assert_int_equal(vc, 11);

        size_t k, v;
        struct json_path_segment missing[] = {{"b", 0}, {"zz", 0}};
        assert_int_equal(json_locate(text, strlen(text), missing, 2, &k, &v), -ENOENT);
        struct json_path_segment past[] = {{"b", 0}, {"c", 0}, {NULL, 3}};
        assert_int_equal(json_locate(text, strlen(text), past, 3, &k, &v), -ENOENT);
}

static void test_locate_escaped_keys_and_utf8_columns(void **state) {
        /* "é" is two bytes but one column; the key "q\"k" needs unescaping. */
        const char *text = "{\"n\": \"\xc3\xa9\xc3\xa9\", \"q\\\"k\": 5, \"\\u0041\": 6}";
        unsigned kl, kc, vl, vc;
        struct json_path_segment p[] = {{"q\"k", 0}};
        locate(text, p, 1, &kl, &kc, &vl, &vc);
        assert_int_equal(kl, 1);
        assert_int_equal(kc, 13);
        struct json_path_segment a[] = {{"A", 0}};
        locate(text, a, 1, &kl, &kc, &vl, &vc);
        assert_int_equal(vc, 34);
}

static void test_locate_never_crashes_on_truncated_text(void **state) {
        const char *text = "{\"a\": {\"b\": [1, 2, {\"c\": \"x\\\"y\"}]}, \"d\": null}";
        struct json_path_segment p[] = {{"a", 0}, {"b", 0}, {NULL, 2}, {"c", 0}};
        struct json_path_segment d[] = {{"d", 0}};
        for (size_t n = 0; n <= strlen(text); n++) {
                size_t k, v;
                (void) json_locate(text, n, p, 4, &k, &v);
                int r = json_locate(text, n, d, 1, &k, &v);
                if (r == 0)
                        assert_true(v <= n);
        }
}

static void test_edit_distance(void **state) {
        assert_int_equal(json_edit_distance("state_dir", "state_dir"), 0);
        assert_int_equal(json_edit_distance("stat_dir", "state_dir"), 1);
        assert_int_equal(json_edit_distance("sate_dri", "state_dir"), 3);
        assert_int_equal(json_edit_distance("", "abc"), 3);
}

struct sample {
        char *name;
        int64_t count;
        bool flag;
        struct {
                char *path;
        } inner;
};

static const struct json_field inner_fields[] = {
        {"path", json_dispatch_absolute_path, offsetof(struct sample, inner.path) - offsetof(struct sample, inner), JSON_REQUIRED, NULL, 0, 0},
        {},
};

static const struct json_field sample_fields[] = {
        {"name", json_dispatch_string, offsetof(struct sample, name), JSON_REQUIRED, NULL, 1, 16},
        {"count", json_dispatch_int64, offsetof(struct sample, count), 0, NULL, 0, 10},
        {"flag", json_dispatch_bool, offsetof(struct sample, flag), 0, NULL, 0, 0},
        {"inner", json_dispatch_nested, offsetof(struct sample, inner), 0, inner_fields, 0, 0},
        {},
};

static int run(const char *text, struct sample *s, struct json_problems *ps, struct json_ctx *ctx) {
        memset(ps, 0, sizeof(*ps));
        *ctx = (struct json_ctx){.source = "t.json", .text = text, .text_len = strlen(text), .problems = ps};
        json_t *root = (json_t *) 1;
        int r = json_parse_dispatch(ctx, sample_fields, s, &root);
        /* The root is kept unless the text is not an object: dispatchers may borrow. */
        if (ps->count > 0 && ps->items[0].path[0] == '\0' &&
            (strstr(ps->items[0].message, "invalid JSON") ||
             strstr(ps->items[0].message, "top level")))
                assert_null(root);
        else
                assert_non_null(root);
        json_decref(root);
        return r;
}

static void assert_problem(const struct json_ctx *ctx, const struct json_problem *p, const char *expected) {
        char buf[1024];
        json_problem_format(ctx, p, buf, sizeof(buf));
        assert_string_equal(buf, expected);
}

static void test_dispatch_good(void **state) {
        struct sample s = {0};
        struct json_problems ps;
        struct json_ctx ctx;
        assert_int_equal(run("{\"name\": \"x\", \"count\": 3, \"flag\": true, \"inner\": {\"path\": \"/a\"}}", &s, &ps, &ctx), 0);
        assert_string_equal(s.name, "x");
        assert_int_equal(s.count, 3);
        assert_true(s.flag);
        assert_string_equal(s.inner.path, "/a");
        assert_int_equal(ps.count, 0);
        free(s.name);
        free(s.inner.path);
}

static void test_dispatch_collects_every_problem(void **state) {
        struct sample s = {0};
        struct json_problems ps;
        struct json_ctx ctx;
        const char *text = "{\n"
                           "  \"nmae\": \"x\",\n"
                           "  \"count\": 11,\n"
                           "  \"flag\": \"yes\",\n"
                           "  \"inner\": {\"path\": \"rel\", \"zzz\": 1}\n"
                           "}";
        assert_int_equal(run(text, &s, &ps, &ctx), -EINVAL);
        assert_int_equal(ps.count, 6);
        assert_problem(&ctx, &ps.items[0], "t.json:2:3: nmae: unknown key (did you mean \"name\"?)");
        assert_problem(&ctx, &ps.items[1], "t.json:3:12: count: 11 is out of range [0, 10]");
        assert_problem(&ctx, &ps.items[2], "t.json:4:11: flag: expected true or false, got a string");
        assert_problem(&ctx, &ps.items[3], "t.json:5:21: inner.path: \"rel\" is not an absolute path");
        assert_problem(&ctx, &ps.items[4], "t.json:5:28: inner.zzz: unknown key");
        assert_problem(&ctx, &ps.items[5], "t.json:1:1: missing required key \"name\"");
        free(s.name);
        free(s.inner.path);
}

static void test_dispatch_missing_nested_required(void **state) {
        struct sample s = {0};
        struct json_problems ps;
        struct json_ctx ctx;
        assert_int_equal(run("{\"name\": \"n\",\n \"inner\": {}}", &s, &ps, &ctx), -EINVAL);
        assert_int_equal(ps.count, 1);
        assert_problem(&ctx, &ps.items[0], "t.json:2:11: inner: missing required key \"path\"");
        free(s.name);
}

static void test_parse_errors(void **state) {
        struct sample s = {0};
        struct json_problems ps;
        struct json_ctx ctx;
        assert_int_equal(run("{\"name\": \"a\",\n \"name\": \"b\"}", &s, &ps, &ctx), -EINVAL);
        assert_int_equal(ps.count, 1);
        assert_int_equal(ps.items[0].line, 2);
        assert_non_null(strstr(ps.items[0].message, "duplicate"));

        assert_int_equal(run("[1, 2]", &s, &ps, &ctx), -EINVAL);
        assert_problem(&ctx, &ps.items[0], "t.json:1:1: expected a JSON object at the top level");

        assert_int_equal(run("", &s, &ps, &ctx), -EINVAL);
        assert_int_equal(ps.items[0].line, 1);
        assert_non_null(strstr(ps.items[0].message, "invalid JSON"));

        assert_int_equal(run("{\"name\": \"a\", \"count\": 1.5}", &s, &ps, &ctx), -EINVAL);
        assert_problem(&ctx, &ps.items[0], "t.json:1:24: count: expected an integer, got a number with a fraction");
        free(s.name);
}

static void test_string_bounds(void **state) {
        struct sample s = {0};
        struct json_problems ps;
        struct json_ctx ctx;
        assert_int_equal(run("{\"name\": \"12345678901234567\"}", &s, &ps, &ctx), -EINVAL);
        assert_problem(&ctx, &ps.items[0], "t.json:1:10: name: string longer than 16 bytes");
        assert_int_equal(run("{\"name\": \"\"}", &s, &ps, &ctx), -EINVAL);
        assert_problem(&ctx, &ps.items[0], "t.json:1:10: name: string shorter than 1 bytes");
        assert_null(s.name);
}

static void test_problem_list_is_bounded(void **state) {
        char text[8192];
        size_t n = (size_t) snprintf(text, sizeof(text), "{\"name\": \"n\"");
        for (int i = 0; i < 50; i++)
                n += (size_t) snprintf(text + n, sizeof(text) - n, ", \"k%d\": %d", i, i);
        snprintf(text + n, sizeof(text) - n, "}");
        struct sample s = {0};
        struct json_problems ps;
        struct json_ctx ctx;
        assert_int_equal(run(text, &s, &ps, &ctx), -EINVAL);
        assert_int_equal(ps.count, JSON_MAX_PROBLEMS);
        assert_int_equal(ps.dropped, 50 - JSON_MAX_PROBLEMS);
        free(s.name);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_locate_nested_keys_and_arrays),
                cmocka_unit_test(test_locate_escaped_keys_and_utf8_columns),
                cmocka_unit_test(test_locate_never_crashes_on_truncated_text),
                cmocka_unit_test(test_edit_distance),
                cmocka_unit_test(test_dispatch_good),
                cmocka_unit_test(test_dispatch_collects_every_problem),
                cmocka_unit_test(test_dispatch_missing_nested_required),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_string_bounds),
                cmocka_unit_test(test_problem_list_is_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
