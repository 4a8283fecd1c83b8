/* A usage.report record's body (#19 item 5): what parses, and every refusal naming where. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/usage-record.h"

#define METER "0123456789abcdef0123456789abcdef"

static json_t *load(const char *text) {
        json_error_t err;
        json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (!v)
                fail_msg("test JSON: %s: %s", err.text, text);
        return v;
}

static void test_parses_the_documented_body(void **state) {
        json_t *b = load("{\"meter\": \"" METER "\", \"interval\": 7, \"start\": 1764930000, \"end\": 1764930300,"
                         " \"duration_sec\": 300.0, \"board_energy_j\": 4500.0, \"entries\": ["
                         "  {\"workload\": \"det\", \"tenant\": \"acme\", \"deployment\": \"dep-a\", \"app\": \"hello\","
                         "   \"cpu_sec\": 12.5, \"memory_byte_sec\": 3.1e9, \"energy_j\": 180.2, \"link_bytes\": 0},"
                         "  {\"app\": \"hello\", \"link_bytes\": 123456}]}");
        struct usage_record *u = malloc(sizeof(*u));
        char *why = NULL;
        assert_int_equal(usage_record_parse(b, u, &why), 0);
        assert_null(why);
        assert_string_equal(u->meter, METER);
        assert_int_equal(u->interval, 7);
        assert_int_equal(u->start, 1764930000);
        assert_int_equal(u->end, 1764930300);
        assert_true(u->duration_sec == 300.0);
        assert_true(u->has_board_energy);
        assert_true(u->board_energy_j == 4500.0);
        assert_int_equal(u->n_entries, 2);
        const struct usage_entry *e = &u->entries[0];
        assert_string_equal(e->key, "det|acme|dep-a|hello");
        assert_string_equal(e->workload, "det");
        assert_string_equal(e->tenant, "acme");
        assert_string_equal(e->deployment, "dep-a");
        assert_string_equal(e->app, "hello");
        assert_int_equal(e->has, USAGE_HAS_CPU | USAGE_HAS_MEMORY | USAGE_HAS_ENERGY | USAGE_HAS_LINK);
        assert_true(e->cpu_sec == 12.5 && e->memory_byte_sec == 3.1e9 && e->energy_j == 180.2);
        assert_int_equal(e->link_bytes, 0);
        e = &u->entries[1];
        assert_string_equal(e->key, "app:hello|||hello");
        assert_string_equal(e->workload, "");
        assert_string_equal(e->tenant, "");
        assert_int_equal(e->has, USAGE_HAS_LINK);
        assert_int_equal(e->link_bytes, 123456);
        free(u);
        json_decref(b);

        /* one workload under two tenants in one meter (its spec changed): two entries */
        b = json_loads("{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                       " \"entries\": [{\"workload\": \"a\", \"tenant\": \"t\", \"cpu_sec\": 1},"
                       " {\"workload\": \"a\", \"tenant\": \"u\", \"cpu_sec\": 2}]}", 0, NULL);
        u = malloc(sizeof(*u));
        assert_int_equal(usage_record_parse(b, u, NULL), 0);
        assert_int_equal(u->n_entries, 2);
        assert_string_equal(u->entries[1].key, "a|u||");
        free(u);
        json_decref(b);
}

static void test_minimal_and_integers_as_numbers(void **state) {
        /* no board sensor, no entries (an idle node), amounts written as integers */
        json_t *b = load("{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0,"
                         " \"duration_sec\": 0, \"entries\": []}");
        struct usage_record *u = malloc(sizeof(*u));
        assert_int_equal(usage_record_parse(b, u, NULL), 0);
        assert_false(u->has_board_energy);
        assert_int_equal(u->n_entries, 0);
        json_decref(b);
        b = load("{\"meter\": \"" METER "\", \"interval\": 2, \"start\": 10, \"end\": 5, \"duration_sec\": 5,"
                 " \"entries\": [{\"workload\": \"a\", \"cpu_sec\": 3}]}");
        /* end before start: the node's clock was set; what was measured still counts */
        assert_int_equal(usage_record_parse(b, u, NULL), 0);
        assert_int_equal(u->entries[0].has, USAGE_HAS_CPU);
        assert_true(u->entries[0].cpu_sec == 3.0);
        json_decref(b);
        free(u);
}

/* Each body refused, and the start of its message. */
static void test_refusals_name_where(void **state) {
        static const struct {
                const char *body, *message;
        } cases[] = {
                {"[]", "usage.report: expected an object"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 0,"
                 " \"entries\": [], \"extra\": 1}",
                 "usage.report: extra: unknown key"},
                {"{\"meter\": \"0123456789ABCDEF0123456789abcdef\", \"interval\": 1, \"start\": 0, \"end\": 0,"
                 " \"duration_sec\": 0, \"entries\": []}",
                 "usage.report: meter: expected 32 lower-case hex digits"},
                {"{\"meter\": \"0123\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 0,"
                 " \"entries\": []}",
                 "usage.report: meter:"},
                {"{\"meter\": \"" METER "\", \"interval\": 0, \"start\": 0, \"end\": 0, \"duration_sec\": 0,"
                 " \"entries\": []}",
                 "usage.report: interval: expected an integer >= 1"},
                {"{\"meter\": \"" METER "\", \"interval\": 1.5, \"start\": 0, \"end\": 0, \"duration_sec\": 0,"
                 " \"entries\": []}",
                 "usage.report: interval:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": -1, \"end\": 0, \"duration_sec\": 0,"
                 " \"entries\": []}",
                 "usage.report: start:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"duration_sec\": 0, \"entries\": []}",
                 "usage.report: end:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": -1,"
                 " \"entries\": []}",
                 "usage.report: duration_sec:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"board_energy_j\": \"lots\", \"entries\": []}",
                 "usage.report: board_energy_j:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1}",
                 "usage.report: entries: expected an array"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\"}, {\"workload\": \"b\"}, {\"workload\": \"c\", \"cpu_sec\": -0.5}]}",
                 "usage.report: entries[2].cpu_sec: expected a finite number from 0 to 1e+20"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"memory_byte_sec\": 1e300}]}",
                 "usage.report: entries[0].memory_byte_sec:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"energy_j\": null}]}",
                 "usage.report: entries[0].energy_j:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"link_bytes\": 1.0}]}",
                 "usage.report: entries[0].link_bytes: expected an integer"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"link_bytes\": 9007199254740993}]}",
                 "usage.report: entries[0].link_bytes:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"tenant\": \"bad tenant\"}]}",
                 "usage.report: entries[0].tenant: expected 1-64 of A-Z a-z 0-9 . _ -"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"deployment\": \"\"}]}",
                 "usage.report: entries[0].deployment:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\\u0000b\"}]}",
                 "usage.report: entries[0].workload:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"app\": "
                 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "usage.report: entries[0].app:"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"tenant\": \"acme\", \"cpu_sec\": 1}]}",
                 "usage.report: entries[0]: names neither a workload nor an app"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"cpu\": 1}]}",
                 "usage.report: entries[0].cpu: unknown key"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"app\": \"x\"}, {\"workload\": \"a\"}, {\"app\": \"x\", \"link_bytes\": 1}]}",
                 "usage.report: entries[2]: app \"x\" again (entries[0] has it)"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [{\"workload\": \"a\", \"tenant\": \"t\"}, {\"workload\": \"a\", \"tenant\": \"t\", \"cpu_sec\": 1}]}",
                 "usage.report: entries[1]: workload \"a\" again (entries[0] has it)"},
                {"{\"meter\": \"" METER "\", \"interval\": 1, \"start\": 0, \"end\": 0, \"duration_sec\": 1,"
                 " \"entries\": [7]}",
                 "usage.report: entries[0]: expected an object"},
        };
        struct usage_record *u = malloc(sizeof(*u));
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *b = load(cases[i].body);
                char *why = NULL;
                int r = usage_record_parse(b, u, &why);
                if (r != -EBADMSG || !why || strncmp(why, cases[i].message, strlen(cases[i].message)) != 0)
                        fail_msg("case %zu: %d \"%s\", expected \"%s...\"", i, r, why ? why : "(none)",
                                 cases[i].message);
                free(why);
                json_decref(b);
        }
        free(u);
}

static void test_entries_bound(void **state) {
        json_t *entries = json_array();
        for (int i = 0; i < USAGE_ENTRIES_MAX + 1; i++) {
                char n[16];
                snprintf(n, sizeof(n), "w%d", i);
                json_array_append_new(entries, json_pack("{s:s, s:f}", "workload", n, "cpu_sec", 1.0));
        }
        json_t *b = json_pack("{s:s, s:i, s:i, s:i, s:f, s:O}", "meter", METER, "interval", 3, "start", 1, "end", 2,
                              "duration_sec", 1.0, "entries", entries);
        struct usage_record *u = malloc(sizeof(*u));
        char *why = NULL;
        assert_int_equal(usage_record_parse(b, u, &why), -EBADMSG);
        assert_non_null(strstr(why, "entries: expected an array of at most 512 entries"));
        free(why);
        /* exactly the bound parses */
        json_array_remove(entries, USAGE_ENTRIES_MAX);
        assert_int_equal(usage_record_parse(b, u, NULL), 0);
        assert_int_equal(u->n_entries, USAGE_ENTRIES_MAX);
        free(u);
        json_decref(entries);
        json_decref(b);
}

static void test_names(void **state) {
        assert_true(usage_name_is_valid("acme"));
        assert_true(usage_name_is_valid("-x.y_z"));
        assert_false(usage_name_is_valid(""));
        assert_false(usage_name_is_valid(NULL));
        assert_false(usage_name_is_valid("a:b"));
        assert_false(usage_name_is_valid("a/b"));
        assert_false(usage_name_is_valid("\x1b[31m"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parses_the_documented_body),
                cmocka_unit_test(test_minimal_and_integers_as_numbers),
                cmocka_unit_test(test_refusals_name_where),
                cmocka_unit_test(test_entries_bound),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
