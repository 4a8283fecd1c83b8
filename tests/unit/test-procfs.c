/* Unit tests for the NSpid parser (lib/procfs.c) and the reader on this process. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/procfs.h"

static const char status[] = "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n"
                             "Ngid:\t0\nPid:\t4242\nPPid:\t1\nNStgid:\t4242\t17\t1\n"
                             "NSpid:\t4242\t17\t1\nNSpgid:\t4242\t17\t1\n";

static void test_levels_outermost_first(void **state) {
        long p[8] = {0};
        assert_int_equal(procfs_nspid_parse(status, p, 8), 3);
        assert_int_equal(p[0], 4242);
        assert_int_equal(p[1], 17);
        assert_int_equal(p[2], 1);
}

static void test_count_beyond_max(void **state) {
        long p[2] = {0};
        assert_int_equal(procfs_nspid_parse(status, p, 2), 3); /* the count, two stored */
        assert_int_equal(p[1], 17);
        assert_int_equal(procfs_nspid_parse(status, NULL, 0), 3);
}

static void test_line_first_and_last(void **state) {
        long p[4];
        assert_int_equal(procfs_nspid_parse("NSpid:\t9\n", p, 4), 1);
        assert_int_equal(p[0], 9);
        assert_int_equal(procfs_nspid_parse("Name:\tx\nNSpid:  7 1", p, 4), 2);
        assert_int_equal(p[1], 1);
}

static void test_not_the_line(void **state) {
        /* NStgid or a name that contains the word is not the line; none: -ENOENT */
        assert_int_equal(procfs_nspid_parse("Name:\tNSpid:\t1\nNStgid:\t5\n", NULL, 0), -ENOENT);
        assert_int_equal(procfs_nspid_parse("", NULL, 0), -ENOENT);
}

static void test_garbage_refused(void **state) {
        long p[4];
        assert_int_equal(procfs_nspid_parse("NSpid:\n", p, 4), -EINVAL);
        assert_int_equal(procfs_nspid_parse("NSpid:\t12x\t1\n", p, 4), -EINVAL);
        assert_int_equal(procfs_nspid_parse("NSpid:\t-1\n", p, 4), -EINVAL);
        assert_int_equal(procfs_nspid_parse("NSpid:\t99999999999999999999999\n", p, 4), -EINVAL);
        char deep[1024] = "NSpid:";
        for (int i = 0; i < 70; i++)
                strcat(deep, " 1");
        assert_int_equal(procfs_nspid_parse(deep, NULL, 0), -EINVAL);
}

static void test_self(void **state) {
        long p[32];
        int n = procfs_nspid("self", p, 32);
        assert_true(n >= 1);
        assert_int_equal(p[0], (long) getpid()); /* this /proc's own level first */
        assert_int_equal(procfs_nspid("0", p, 32), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_levels_outermost_first),
                cmocka_unit_test(test_count_beyond_max),
                cmocka_unit_test(test_line_first_and_last),
                cmocka_unit_test(test_not_the_line),
                cmocka_unit_test(test_garbage_refused),
                cmocka_unit_test(test_self),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
