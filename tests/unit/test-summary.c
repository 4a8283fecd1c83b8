/* Unit tests for report statistics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "health/summary.h"

static void test_min_max_mean_last(void **state) {
        struct summary_set *s = calloc(1, sizeof(*s));
        summary_add(s, "zone.cpu-thermal.temp_c", 40.0);
        summary_add(s, "zone.cpu-thermal.temp_c", 60.0);
        summary_add(s, "zone.cpu-thermal.temp_c", -5.5);
        summary_add(s, "cpu.busy_percent", 12.3456);
        summary_add(s, "cpu.busy_percent", 0.0 / 0.0); /* NaN is ignored */
        json_t *j = summary_to_json(s);
        char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
        assert_string_equal(txt, "{\"cpu.busy_percent\":{\"last\":12.346,\"max\":12.346,\"mean\":12.346,\"min\":12.346,\"n\":1},"
                                 "\"zone.cpu-thermal.temp_c\":{\"last\":-5.5,\"max\":60.0,\"mean\":31.5,\"min\":-5.5,\"n\":3}}");
        free(txt);
        json_decref(j);
        summary_reset(s);
        assert_int_equal(s->n, 0);
        free(s);
}

static void test_bounded(void **state) {
        struct summary_set *s = calloc(1, sizeof(*s));
        char name[32];
        for (int i = 0; i < SUMMARY_MAX_METRICS + 10; i++) {
                snprintf(name, sizeof(name), "m%d", i);
                summary_add(s, name, i);
        }
        assert_int_equal(s->n, SUMMARY_MAX_METRICS);
        assert_int_equal(s->dropped, 10);
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_min_max_mean_last),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
