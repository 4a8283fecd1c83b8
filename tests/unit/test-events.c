/* Unit tests for the event queue: record format, bounds, what is dropped first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "events.h"

static json_t *body(int i) {
        return json_pack("{s:i}", "i", i);
}

static void test_record_format(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(4, "sat-1", 7, "abcd", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(1), 1000, 5), 1);
        json_t *t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_array_size(t), 1);
        char *s = json_dumps(json_array_get(t, 0), JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(s, "{\"body\":{\"i\":1},\"format\":1,\"key\":{\"boot_epoch\":7,\"boot_id\":\"abcd\","
                               "\"node\":\"sat-1\",\"seq\":1},\"kind\":\"health.level\",\"monotonic_usec\":5,"
                               "\"priority\":\"high\",\"time_usec\":1000}");
        free(s);
        json_decref(t);
        event_queue_free(q);
}

static void test_oldest_lowest_priority_dropped_first(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(3, "n", 1, "b", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(2), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(3), 0, 0), 1);
        /* Full: a normal event pushes out the oldest low one (1). */
        assert_int_equal(event_queue_push(q, EVENT_NORMAL, "workload.exit", body(4), 0, 0), 1);
        json_t *t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_array_size(t), 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "body"), "i")), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 1), "body"), "i")), 3);
        json_decref(t);
        assert_int_equal(event_queue_dropped(q), 1);
        /* Low ones replace the oldest low one; high and normal stay. */
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(5), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(6), 0, 0), 1);
        assert_int_equal(event_queue_dropped(q), 3);
        t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "body"), "i")), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 1), "body"), "i")), 4);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 2), "body"), "i")), 6);
        json_decref(t);

        /* Only high records left, and a low one arrives: it is the one that goes. */
        event_queue_free(q);
        assert_int_equal(event_queue_new(1, "n", 1, "b", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(7), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_LOW, "health.report", body(8), 0, 0), 0);
        assert_int_equal(event_queue_count(q), 1);
        assert_int_equal(event_queue_dropped(q), 1);
        event_queue_free(q);
}

static void test_critical_records_never_dropped(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(2, "n", 1, "b", &q), 0);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(1), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(2), 0, 0), 1);
        assert_int_equal(event_queue_push(q, EVENT_HIGH, "health.level", body(3), 0, 0), 0);
        assert_int_equal(event_queue_push(q, EVENT_CRITICAL, "command.result", body(4), 0, 0), -ENOBUFS);
        json_t *t = event_queue_tail_json(q, 10, NULL);
        assert_int_equal(json_array_size(t), 2);
        json_decref(t);
        /* Sequence numbers only count what was queued. */
        t = event_queue_tail_json(q, 1, "command.");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "key"), "seq")), 2);
        json_decref(t);
        event_queue_free(q);
}

static void test_tail_filters_by_kind(void **state) {
        struct event_queue *q;
        assert_int_equal(event_queue_new(10, "n", 1, "b", &q), 0);
        for (int i = 0; i < 6; i++)
                assert_int_equal(event_queue_push(q, EVENT_NORMAL, i % 2 ? "health.level" : "workload.exit", body(i), 0, 0), 1);
        json_t *t = event_queue_tail_json(q, 2, "health.");
        assert_int_equal(json_array_size(t), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 0), "body"), "i")), 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(t, 1), "body"), "i")), 5);
        json_decref(t);
        event_queue_free(q);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_record_format),
                cmocka_unit_test(test_oldest_lowest_priority_dropped_first),
                cmocka_unit_test(test_critical_records_never_dropped),
                cmocka_unit_test(test_tail_filters_by_kind),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
