/* Unit tests for the TLS 1.2 session cache: stored, fetched, replaced, expired, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "controller/tls-cache.h"

static void test_store_fetch(void **state) {
        (void) state;
        struct tls_cache c;
        assert_int_equal(tls_cache_init(&c, 4, 100), 0);
        assert_null(tls_cache_fetch(&c, "id-1", 4, 0));
        assert_int_equal(tls_cache_store(&c, "id-1", 4, "session one", 11, 10), 0);
        const struct tls_cache_entry *e = tls_cache_fetch(&c, "id-1", 4, 20);
        assert_non_null(e);
        assert_int_equal(e->data_len, 11);
        assert_memory_equal(e->data, "session one", 11);
        assert_null(tls_cache_fetch(&c, "id-", 3, 20)); /* a prefix is another key */
        assert_null(tls_cache_fetch(&c, "id-2", 4, 20));
        /* the same id again replaces it */
        assert_int_equal(tls_cache_store(&c, "id-1", 4, "two", 3, 30), 0);
        e = tls_cache_fetch(&c, "id-1", 4, 30);
        assert_non_null(e);
        assert_memory_equal(e->data, "two", 3);
        /* older than its lifetime: gone; from the future (a clock set back): gone */
        assert_non_null(tls_cache_fetch(&c, "id-1", 4, 130));
        assert_null(tls_cache_fetch(&c, "id-1", 4, 131));
        assert_null(tls_cache_fetch(&c, "id-1", 4, 29));
        assert_int_equal(tls_cache_remove(&c, "id-1", 4), 0);
        assert_int_equal(tls_cache_remove(&c, "id-1", 4), -ENOENT);
        assert_null(tls_cache_fetch(&c, "id-1", 4, 30));
        tls_cache_done(&c);
}

static void test_bounds(void **state) {
        (void) state;
        struct tls_cache c;
        static char big[TLS_CACHE_DATA_MAX + 1];
        char key[TLS_CACHE_KEY_MAX + 1] = {0};
        assert_int_equal(tls_cache_init(&c, 3, 100), 0);
        assert_int_equal(tls_cache_store(&c, "k", 1, big, sizeof(big), 0), -EINVAL);
        assert_int_equal(tls_cache_store(&c, "k", 1, big, 0, 0), -EINVAL);
        assert_int_equal(tls_cache_store(&c, key, sizeof(key), "x", 1, 0), -EINVAL);
        assert_int_equal(tls_cache_store(&c, "", 0, "x", 1, 0), -EINVAL);
        assert_int_equal(tls_cache_store(&c, key, TLS_CACHE_KEY_MAX, big, TLS_CACHE_DATA_MAX, 0), 0);
        /* full: the oldest goes, the others stay */
        assert_int_equal(tls_cache_store(&c, "a", 1, "1", 1, 5), 0);
        assert_int_equal(tls_cache_store(&c, "b", 1, "2", 1, 6), 0);
        assert_int_equal(tls_cache_store(&c, "c", 1, "3", 1, 7), 0);
        assert_null(tls_cache_fetch(&c, key, TLS_CACHE_KEY_MAX, 7)); /* stored at 0: the oldest */
        assert_non_null(tls_cache_fetch(&c, "a", 1, 7));
        assert_non_null(tls_cache_fetch(&c, "b", 1, 7));
        assert_non_null(tls_cache_fetch(&c, "c", 1, 7));
        assert_int_equal(tls_cache_store(&c, "d", 1, "4", 1, 8), 0);
        assert_null(tls_cache_fetch(&c, "a", 1, 8));
        assert_non_null(tls_cache_fetch(&c, "d", 1, 8));
        tls_cache_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_store_fetch),
                cmocka_unit_test(test_bounds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
