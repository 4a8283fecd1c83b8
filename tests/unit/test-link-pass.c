/* Passes and their budgets: tests/unit for agent/link-pass.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/link-pass.h"

#define KIB 1024ULL
#define MIB (1024 * 1024ULL)
#define SEC 1000000ULL
#define GAP (300 * SEC)
#define MAX (1200 * SEC)

static void test_window_is_one_pass(void **state) {
        (void) state;
        struct link_pass p;
        link_pass_init(&p, 0, 10 * MIB);
        /* the window [1000, 1600): every sync in it is the same pass, whatever the link did */
        assert_true(link_pass_track(&p, 1000, 1600, 5 * SEC, GAP, MAX));
        assert_int_equal(atomic_load(&p.number), 1);
        assert_int_equal(atomic_load(&p.los_usec), 1600 * (int64_t) SEC);
        link_pass_downloaded(&p, 6 * MIB, 60 * SEC);
        link_pass_sync_failed(&p, 1000);
        /* reconnecting within the window gives no new budget (was: every good sync did) */
        assert_false(link_pass_track(&p, 1000, 1600, 500 * SEC, GAP, MAX));
        assert_int_equal(atomic_load(&p.down_used), 6 * MIB);
        assert_int_equal(link_pass_may_download(&p, 5 * MIB, 1100 * (int64_t) SEC), -EDQUOT);
        assert_int_equal(link_pass_may_download(&p, 4 * MIB, 1100 * (int64_t) SEC), 0);
        /* the next window: a new pass, the budget whole again */
        assert_true(link_pass_track(&p, 7000, 7600, 6100 * SEC, GAP, MAX));
        assert_int_equal(atomic_load(&p.number), 2);
        assert_int_equal(atomic_load(&p.down_used), 0);
        assert_int_equal(link_pass_may_download(&p, 10 * MIB, 7100 * (int64_t) SEC), 0);
}

static void test_learned_pass(void **state) {
        (void) state;
        struct link_pass p;
        link_pass_init(&p, 64 * KIB, 0);
        assert_true(link_pass_track(&p, -1, -1, 10 * SEC, GAP, MAX));
        assert_int_equal(atomic_load(&p.los_usec), 0); /* no plan: the end is not known */
        link_pass_sync_ok(&p, 20 * SEC, 40 * KIB);
        assert_int_equal(link_pass_upload_room(&p), 24 * KIB);
        /* good syncs a minute apart: one pass */
        assert_false(link_pass_track(&p, -1, -1, 80 * SEC, GAP, MAX));
        link_pass_sync_ok(&p, 90 * SEC, 30 * KIB);
        assert_int_equal(link_pass_upload_room(&p), 0);
        /* a failure, then the link back within the gap: the same pass, still spent */
        link_pass_sync_failed(&p, 2 * KIB);
        assert_false(link_pass_track(&p, -1, -1, 90 * SEC + GAP, GAP, MAX));
        assert_int_equal(link_pass_upload_room(&p), 0);
        /* silence longer than the gap: the ground went away, this is the next pass */
        assert_true(link_pass_track(&p, -1, -1, 91 * SEC + GAP, GAP, MAX));
        assert_int_equal(link_pass_upload_room(&p), 64 * KIB);
        /* a link that never drops still gets a new pass after max (else one pass for ever,
         * and a budget that is a lifetime cap) */
        uint64_t t = 91 * SEC + GAP;
        for (int i = 1; i * 60 * SEC <= MAX; i++) {
                link_pass_sync_ok(&p, t + i * 60 * SEC, KIB);
                assert_false(link_pass_track(&p, -1, -1, t + i * 60 * SEC, GAP, MAX));
        }
        assert_true(link_pass_track(&p, -1, -1, t + MAX + 61 * SEC, GAP, MAX));
        /* no budget: no limit */
        link_pass_init(&p, 0, 0);
        assert_int_equal(link_pass_upload_room(&p), SIZE_MAX);
}

static void test_plan_ends_link_goes_on(void **state) {
        (void) state;
        struct link_pass p;
        link_pass_init(&p, 0, MIB);
        assert_true(link_pass_track(&p, 1000, 1600, 5 * SEC, GAP, MAX));
        link_pass_downloaded(&p, MIB, 10 * SEC);
        /* the plan is stale (no window open) but the link works: a learned pass, not the
         * spent window's, and no end known */
        assert_true(link_pass_track(&p, -1, -1, 700 * SEC, GAP, MAX));
        assert_int_equal(atomic_load(&p.los_usec), 0);
        assert_int_equal(link_pass_may_download(&p, MIB, 1700 * (int64_t) SEC), 0);
}

static void test_nothing_starts_that_los_would_cut(void **state) {
        (void) state;
        struct link_pass p;
        link_pass_init(&p, 0, 0);
        link_pass_track(&p, 1000, 1600, 5 * SEC, GAP, MAX);
        /* rate unknown: the first range goes (it measures it) */
        assert_int_equal(link_pass_may_download(&p, 4 * MIB, 1500 * (int64_t) SEC), 0);
        /* 32 KB/s, the link */
        link_pass_downloaded(&p, 320 * KIB, 10 * SEC);
        assert_int_equal(atomic_load(&p.down_rate), 32 * KIB);
        /* 100 s left less the margin: 1 MiB (32 s) goes, 4 MiB (128 s) does not */
        assert_int_equal(link_pass_may_download(&p, MIB, 1500 * (int64_t) SEC), 0);
        assert_int_equal(link_pass_may_download(&p, 4 * MIB, 1500 * (int64_t) SEC), -ETIME);
        /* inside the margin nothing starts; after the end neither */
        assert_int_equal(link_pass_may_download(&p, 1, 1596 * (int64_t) SEC), -ETIME);
        assert_int_equal(link_pass_may_download(&p, 1, 1700 * (int64_t) SEC), -ETIME);
        /* a small download says nothing of the rate */
        link_pass_downloaded(&p, 2 * KIB, 10 * SEC);
        assert_int_equal(atomic_load(&p.down_rate), 32 * KIB);
        /* the newest counts half */
        link_pass_downloaded(&p, 640 * KIB, 10 * SEC);
        assert_int_equal(atomic_load(&p.down_rate), 48 * KIB);
        /* no pass at all: no limits */
        assert_int_equal(link_pass_may_download(NULL, 1ULL << 40, 0), 0);
}

static void test_a_window_closing_in_a_far_future(void **state) {
        (void) state;
        struct link_pass p;
        link_pass_init(&p, 0, 10 * MIB);
        /* A window that a controller says closes in 584,000 years: its end in µs does not fit
         * an int64 (it wrapped to 0.45 s after 1970, and every range was "too late" for a
         * window that is open). The end is not known then, as without a plan. */
        const int64_t end = 18446744073710LL;
        assert_true(link_pass_track(&p, 1000, end, 5 * SEC, GAP, MAX));
        assert_int_equal(link_pass_may_download(&p, MIB, 1100 * (int64_t) SEC), 0);
        link_pass_downloaded(&p, MIB, 10 * SEC);
        assert_int_equal(link_pass_may_download(&p, MIB, 1200 * (int64_t) SEC), 0);
        assert_true(atomic_load(&p.los_usec) == 0 || atomic_load(&p.los_usec) > 1200 * (int64_t) SEC);
}

static void test_a_long_window_is_several_passes(void **state) {
        (void) state;
        struct link_pass p;
        link_pass_init(&p, 64 * KIB, MIB);
        /* a window of ten days (a plan that says "always in contact"): a pass lasts at most
         * max in it too, else its budgets are spent once and never whole again */
        const int64_t start = 1000, end = 1000 + 10 * 86400;
        assert_true(link_pass_track(&p, start, end, 5 * SEC, GAP, MAX));
        link_pass_downloaded(&p, MIB, 60 * SEC);
        link_pass_sync_ok(&p, 10 * SEC, 64 * KIB);
        assert_int_equal(link_pass_may_download(&p, 64 * KIB, 1100 * (int64_t) SEC), -EDQUOT);
        assert_int_equal(link_pass_upload_room(&p), 0);
        assert_false(link_pass_track(&p, start, end, 5 * SEC + MAX, GAP, MAX));
        assert_true(link_pass_track(&p, start, end, 6 * SEC + MAX, GAP, MAX));
        assert_int_equal(atomic_load(&p.number), 2);
        assert_int_equal(link_pass_may_download(&p, 64 * KIB, 2300 * (int64_t) SEC), 0);
        assert_int_equal(link_pass_upload_room(&p), 64 * KIB);
        /* still the window's pass: its end is the loss of signal */
        assert_int_equal(atomic_load(&p.los_usec), end * (int64_t) SEC);
        assert_false(link_pass_track(&p, start, end, 7 * SEC + MAX, GAP, MAX));
}

static void test_a_chunk_as_big_as_the_budget(void **state) {
        (void) state;
        struct link_pass p;
        /* link.download_budget_mib 1 and a bundle of 1 MiB chunks (the default): each pass
         * resumes with the bundle's head (64 KiB), and then the chunk did not fit what was
         * left: refused in every pass, the download never moved again */
        link_pass_init(&p, 0, MIB);
        for (int pass = 0; pass < 3; pass++) {
                assert_true(link_pass_track(&p, 1000 + 1000 * pass, 1600 + 1000 * pass, (uint64_t) (5 + 1000 * pass) * SEC,
                                            GAP, MAX));
                int64_t now = (1100 + 1000 * pass) * (int64_t) SEC;
                assert_int_equal(link_pass_may_download(&p, 64 * KIB, now), 0);
                link_pass_downloaded(&p, 64 * KIB, SEC / 10);
                /* one range that no pass could hold next to the head goes ... */
                assert_int_equal(link_pass_may_download(&p, MIB, now), 0);
                link_pass_downloaded(&p, MIB, SEC);
                /* ... and then the pass is spent */
                assert_int_equal(link_pass_may_download(&p, MIB, now), -EDQUOT);
                assert_int_equal(link_pass_may_download(&p, 64 * KIB, now), -EDQUOT);
        }
        /* a chunk larger than the whole budget (16 MiB chunks, 4 MiB a pass) as well */
        link_pass_init(&p, 0, 4 * MIB);
        assert_true(link_pass_track(&p, -1, -1, 5 * SEC, GAP, MAX));
        link_pass_downloaded(&p, 64 * KIB, SEC / 10);
        assert_int_equal(link_pass_may_download(&p, 16 * MIB, 0), 0);
        link_pass_downloaded(&p, 16 * MIB, 10 * SEC);
        assert_int_equal(link_pass_may_download(&p, 16 * MIB, 0), -EDQUOT);
}

static void test_no_resume_in_the_pass_that_paused(void **state) {
        (void) state;
        struct link_pass p;
        /* 10 MiB a pass, 1 MiB chunks: paused at 9.5 MiB, the next chunk over the budget */
        link_pass_init(&p, 0, 10 * MIB);
        assert_true(link_pass_track(&p, 1000, 9000, 5 * SEC, GAP, MAX));
        link_pass_downloaded(&p, 9 * MIB + 512 * KIB, 100 * SEC);
        int64_t now = 1200 * (int64_t) SEC;
        assert_int_equal(link_pass_may_download(&p, MIB, now), -EDQUOT);
        uint64_t paused_in = atomic_load(&p.number);
        /* a good sync in the same pass: a resume would fetch the head (it fits) and be
         * refused at the chunk again, at every sync (a 64 KiB probe said "go") */
        assert_int_equal(link_pass_may_download(&p, LINK_PASS_RESUME_MIN_BYTES, now), 0);
        assert_false(link_pass_may_resume(&p, paused_in, now));
        /* paused for the link (0): the link is back, go on */
        assert_true(link_pass_may_resume(&p, 0, now));
        /* the next pass */
        assert_true(link_pass_track(&p, 10000, 11000, 9100 * SEC, GAP, MAX));
        assert_true(link_pass_may_resume(&p, paused_in, 10100 * (int64_t) SEC));
        /* but not in its last seconds */
        assert_false(link_pass_may_resume(&p, paused_in, 10998 * (int64_t) SEC));
        assert_true(link_pass_may_resume(NULL, 1, 0));
}

static void test_downloads_before_the_first_pass(void **state) {
        (void) state;
        struct link_pass p;
        /* the agent started and resumed a download before the link's first sync: those
         * bytes are charged, and the first pass does not give them back */
        link_pass_init(&p, 0, MIB);
        assert_int_equal(link_pass_may_download(&p, 512 * KIB, 0), 0);
        link_pass_downloaded(&p, 900 * KIB, 10 * SEC);
        assert_int_equal(link_pass_may_download(&p, 256 * KIB, 0), -EDQUOT);
        assert_true(link_pass_track(&p, 1000, 1600, 15 * SEC, GAP, MAX));
        assert_int_equal(atomic_load(&p.down_used), 900 * KIB);
        assert_int_equal(link_pass_may_download(&p, 256 * KIB, 1100 * (int64_t) SEC), -EDQUOT);
        /* the next pass is whole */
        assert_true(link_pass_track(&p, 2000, 2600, 1015 * SEC, GAP, MAX));
        assert_int_equal(atomic_load(&p.down_used), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_window_is_one_pass),
                cmocka_unit_test(test_learned_pass),
                cmocka_unit_test(test_plan_ends_link_goes_on),
                cmocka_unit_test(test_nothing_starts_that_los_would_cut),
                cmocka_unit_test(test_a_window_closing_in_a_far_future),
                cmocka_unit_test(test_a_long_window_is_several_passes),
                cmocka_unit_test(test_a_chunk_as_big_as_the_budget),
                cmocka_unit_test(test_no_resume_in_the_pass_that_paused),
                cmocka_unit_test(test_downloads_before_the_first_pass),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
