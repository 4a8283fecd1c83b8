/* The sandbox's /proc and /sys masks: crun's list at least, well-formed, no duplicates. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/macro.h"
#include "runtime/sandbox-masks.h"

static bool listed(const char *const *list, size_t n, const char *path) {
        for (size_t i = 0; i < n; i++)
                if (streq(list[i], path))
                        return true;
        return false;
}

static void test_crun_masks_are_all_there(void **state) {
        /* crun's and runc's default masked paths, and the ones the issue named. */
        static const char *const wanted[] = {
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/proc/kpageflags", "/proc/kpagecount", "/proc/key-users",
        };
        for (size_t i = 0; i < ELEMENTSOF(wanted); i++)
                if (!listed(sandbox_masked_paths, sandbox_n_masked_paths, wanted[i]))
                        fail_msg("%s is not masked", wanted[i]);
        static const char *const read_only[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                "/proc/sysrq-trigger"};
        for (size_t i = 0; i < ELEMENTSOF(read_only); i++)
                if (!listed(sandbox_read_only_paths, sandbox_n_read_only_paths, read_only[i]))
                        fail_msg("%s is not read-only", read_only[i]);
}

static void check_list(const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const char *p = list[i];
                /* Absolute, under /proc or /sys, no "..", no trailing slash, no doubles. */
                assert_true(strncmp(p, "/proc/", 6) == 0 || strncmp(p, "/sys/", 5) == 0);
                assert_null(strstr(p, ".."));
                assert_null(strstr(p, "//"));
                assert_true(p[strlen(p) - 1] != '/');
                for (size_t k = i + 1; k < n; k++)
                        if (streq(p, list[k]))
                                fail_msg("%s listed twice", p);
        }
}

static void test_lists_are_well_formed(void **state) {
        check_list(sandbox_masked_paths, sandbox_n_masked_paths);
        check_list(sandbox_read_only_paths, sandbox_n_read_only_paths);
        /* A path is either hidden or read-only, never both. */
        for (size_t i = 0; i < sandbox_n_masked_paths; i++)
                assert_false(listed(sandbox_read_only_paths, sandbox_n_read_only_paths, sandbox_masked_paths[i]));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crun_masks_are_all_there),
                cmocka_unit_test(test_lists_are_well_formed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
