/* Unit tests for what the controller keeps of what each node said it takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "controller/node-takes.h"

static void test_set_get(void **state) {
        (void) state;
        struct node_takes_table t;
        assert_int_equal(node_takes_init(&t, 2), 0);
        assert_null(node_takes_get(&t, "sat-1", 0)); /* never said: the controller says first */
        assert_int_equal(node_takes_set(&t, "sat-1", true, 7, 1), 0);
        const struct node_takes *e = node_takes_get(&t, "sat-1", 2);
        assert_non_null(e);
        assert_true(e->zstd);
        assert_int_equal(e->dictionary_id, 7);
        assert_null(node_takes_get(&t, "sat-", 2)); /* a prefix is another node */
        /* said again, otherwise: replaced */
        assert_int_equal(node_takes_set(&t, "sat-1", false, 0, 3), 0);
        e = node_takes_get(&t, "sat-1", 4);
        assert_false(e->zstd);
        assert_int_equal(e->dictionary_id, 0);
        assert_int_equal(node_takes_set(&t, "", true, 0, 3), -EINVAL);
        assert_int_equal(node_takes_set(&t, NULL, true, 0, 3), -EINVAL);
        char long_id[API_ID_MAX + 2];
        memset(long_id, 'a', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        assert_int_equal(node_takes_set(&t, long_id, true, 0, 3), -EINVAL);
        node_takes_done(&t);
}

static void test_bounded(void **state) {
        (void) state;
        struct node_takes_table t;
        assert_int_equal(node_takes_init(&t, 2), 0);
        assert_int_equal(node_takes_set(&t, "a", true, 1, 1), 0);
        assert_int_equal(node_takes_set(&t, "b", true, 2, 2), 0);
        assert_non_null(node_takes_get(&t, "a", 3)); /* a used at 3: b is now the oldest */
        assert_int_equal(node_takes_set(&t, "c", true, 3, 4), 0);
        assert_null(node_takes_get(&t, "b", 5)); /* forgotten: it will say again when told */
        assert_non_null(node_takes_get(&t, "a", 5));
        assert_non_null(node_takes_get(&t, "c", 5));
        node_takes_done(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_set_get),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
