/* Unit tests of controller/conn-guard.c: which unauthenticated connections are shed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "controller/conn-guard.h"
#include "lib/macro.h"

#define SEC 1000000LL

static struct conn_track *track(struct conn_track *t, int fd, int64_t started) {
        memset(t, 0, sizeof(*t));
        t->fd = fd;
        t->started_usec = started;
        return t;
}

/* Past the soft limit the oldest unauthenticated connection goes, never a trusted one and
 * never the newcomer; a shed connection is not counted again, nor shed twice. */
static void test_shed_when_full(void **state) {
        struct conn_guard g;
        struct conn_track t[8];
        conn_guard_init(&g, 4, 0, 0);
        for (int i = 0; i < 4; i++)
                assert_int_equal(conn_guard_add(&g, track(&t[i], 100 + i, i * SEC)), -1);
        assert_int_equal(g.open, 4);
        conn_guard_trust(&g, &t[0]); /* a node: kept */
        assert_int_equal(conn_guard_add(&g, track(&t[4], 104, 4 * SEC)), 101);
        assert_true(t[1].shed);
        assert_int_equal(g.open, 4);
        assert_int_equal(conn_guard_add(&g, track(&t[5], 105, 5 * SEC)), 102);
        /* the shed ones close: their removal does not count them again */
        conn_guard_remove(&g, &t[1]);
        conn_guard_remove(&g, &t[2]);
        assert_int_equal(g.open, 4);
        /* room again after a close that was not shed */
        conn_guard_remove(&g, &t[3]);
        assert_int_equal(g.open, 3);
        assert_int_equal(conn_guard_add(&g, track(&t[6], 106, 6 * SEC)), -1);
        assert_int_equal(g.open, 4);
        /* all trusted but the newcomer: nobody to shed, and no hard limit */
        conn_guard_trust(&g, &t[4]);
        conn_guard_trust(&g, &t[5]);
        conn_guard_trust(&g, &t[6]);
        assert_int_equal(conn_guard_add(&g, track(&t[7], 107, 7 * SEC)), -1);
        assert_int_equal(g.open, 5);
}

/* Past the hard limit with everybody else trusted, the newcomer itself goes, and is not
 * counted again when it closes. */
static void test_hard_limit(void **state) {
        struct conn_guard g;
        struct conn_track t[5];
        conn_guard_init(&g, 2, 3, 0);
        for (int i = 0; i < 3; i++) {
                conn_guard_add(&g, track(&t[i], i, i));
                conn_guard_trust(&g, &t[i]);
        }
        assert_int_equal(g.open, 3); /* past the soft limit, but nobody to shed */
        assert_int_equal(conn_guard_add(&g, track(&t[3], 3, 3)), 3);
        assert_true(t[3].shed);
        assert_int_equal(g.open, 3);
        conn_guard_remove(&g, &t[3]);
        assert_int_equal(g.open, 3);
        /* one that is not trusted goes first when there is one */
        t[1].trusted = false;
        assert_int_equal(conn_guard_add(&g, track(&t[4], 4, 4)), 1);
        assert_int_equal(g.open, 3);
}

/* The deadline closes unauthenticated connections however busy, oldest first, each once;
 * trusted ones between them stay; 0 turns it off. */
static void test_deadline(void **state) {
        struct conn_guard g;
        struct conn_track t[5];
        int fds[8];
        conn_guard_init(&g, 0, 0, 10 * SEC);
        for (int i = 0; i < 5; i++)
                assert_int_equal(conn_guard_add(&g, track(&t[i], 10 + i, i * SEC)), -1);
        conn_guard_trust(&g, &t[1]);
        assert_int_equal(conn_guard_expired(&g, 9 * SEC, fds, ELEMENTSOF(fds)), 0);
        assert_int_equal(conn_guard_expired(&g, 12 * SEC, fds, ELEMENTSOF(fds)), 2);
        assert_int_equal(fds[0], 10);
        assert_int_equal(fds[1], 12);
        assert_int_equal(g.open, 3);
        assert_int_equal(conn_guard_expired(&g, 12 * SEC, fds, ELEMENTSOF(fds)), 0); /* each once */
        /* at most max at a time */
        assert_int_equal(conn_guard_expired(&g, 100 * SEC, fds, 1), 1);
        assert_int_equal(fds[0], 13);
        assert_int_equal(conn_guard_expired(&g, 100 * SEC, fds, ELEMENTSOF(fds)), 1);
        assert_int_equal(fds[0], 14);
        assert_int_equal(g.open, 1); /* the trusted one */
        for (int i = 0; i < 5; i++)
                conn_guard_remove(&g, &t[i]);
        assert_int_equal(g.open, 0);
        assert_null(g.head);
        assert_null(g.tail);

        conn_guard_init(&g, 0, 0, 0);
        assert_int_equal(conn_guard_add(&g, track(&t[0], 10, 0)), -1);
        assert_int_equal(conn_guard_expired(&g, 1000 * SEC, fds, ELEMENTSOF(fds)), 0);
}

/* Removal from the head, the middle and the tail keeps the list whole. */
static void test_list(void **state) {
        struct conn_guard g;
        struct conn_track t[3];
        conn_guard_init(&g, 0, 0, 0);
        for (int i = 0; i < 3; i++)
                conn_guard_add(&g, track(&t[i], i, i));
        conn_guard_remove(&g, &t[1]);
        assert_ptr_equal(g.head, &t[0]);
        assert_ptr_equal(t[0].next, &t[2]);
        assert_ptr_equal(t[2].prev, &t[0]);
        conn_guard_remove(&g, &t[0]);
        assert_ptr_equal(g.head, &t[2]);
        assert_null(t[2].prev);
        conn_guard_remove(&g, &t[2]);
        assert_null(g.head);
        assert_null(g.tail);
        assert_int_equal(g.open, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shed_when_full),
                cmocka_unit_test(test_hard_limit),
                cmocka_unit_test(test_deadline),
                cmocka_unit_test(test_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
