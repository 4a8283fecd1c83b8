/*
 * A pass: one contact with the ground, and what it may move (pure but for the atomics:
 * tests/unit/test-link-pass). The link decides where passes begin: a window of the
 * contact plan is one pass (a window longer than max_usec several); without a plan (or
 * outside every window while the link works), a learned pass lasts while good syncs
 * follow each other and at most max_usec.
 * Byte budgets count per pass, not per sync: a node whose link comes and goes inside one
 * pass does not get its budget back each time it reconnects. What the worker downloads
 * before the first pass began (a download resumed at start) counts in the first pass.
 *
 * The update worker's thread reads and charges the download side while the loop's
 * thread starts passes, so those fields are atomics; a pass that begins while a range
 * is in flight charges that range to the new pass, which is what was sent in it.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* No range starts that would end less than this before loss of signal. */
#define LINK_PASS_LOS_MARGIN_USEC (5 * 1000000LL)
/* A resumed download begins with the bundle's head (64 KiB): less left is not worth a try. */
#define LINK_PASS_RESUME_MIN_BYTES (64 * 1024)
/* Smaller downloads say little about the rate (a request's round trips dominate). */
#define LINK_PASS_RATE_MIN_BYTES (16 * 1024)

struct link_pass {
        /* shared with the update worker */
        _Atomic uint64_t number;      /* passes begun since the agent started; 0: none yet */
        _Atomic int64_t los_usec;     /* CLOCK_REALTIME µs the window closes; 0: not known */
        _Atomic uint64_t down_budget; /* bytes a pass may download; 0: no limit */
        _Atomic uint64_t down_used;
        _Atomic uint64_t down_rate; /* bytes per second of downloads, smoothed; 0: not measured */
        /* the loop's only */
        uint64_t up_budget, up_used; /* bytes of upload a pass may carry (0: no limit), carried */
        int64_t window_start;        /* the plan's window this pass is; -1: a learned pass */
        uint64_t started_usec;       /* CLOCK_MONOTONIC */
        uint64_t last_ok_usec;       /* the last good sync, CLOCK_MONOTONIC; 0: none in this pass */
};

void link_pass_init(struct link_pass *p, uint64_t up_budget, uint64_t down_budget);

/*
 * Before a sync, and after a good one: begins a new pass when this is not the same
 * contact. window_start: the start of the plan's window open now, -1 when none is; end:
 * its end (CLOCK_REALTIME s). A learned pass ends when no good sync came for gap_usec;
 * any pass when it began more than max_usec ago. Returns true when a new pass began (the budgets
 * are whole again).
 */
bool link_pass_track(struct link_pass *p, int64_t window_start, int64_t window_end, uint64_t now_usec,
                     uint64_t gap_usec, uint64_t max_usec);

/* A good sync at now_usec (CLOCK_MONOTONIC) that carried up_bytes on the wire. */
void link_pass_sync_ok(struct link_pass *p, uint64_t now_usec, uint64_t up_bytes);

/* A sync that failed after sending up_bytes: they count against the budget as well. */
void link_pass_sync_failed(struct link_pass *p, uint64_t up_bytes);

/* Bytes of records the next sync may still carry in this pass (SIZE_MAX: no limit). */
size_t link_pass_upload_room(const struct link_pass *p);

/*
 * May the update worker download len bytes now (now_usec: CLOCK_REALTIME µs)? 0: yes;
 * -EDQUOT: over this pass's budget (a range of more than half the budget may cross it
 * while it is not spent: a chunk as big as the budget moves one a pass); -ETIME: at the measured
 * rate the range would not finish before loss of signal (less LINK_PASS_LOS_MARGIN_USEC). Both wait
 * for the next contact. A NULL pass has no limits.
 */
int link_pass_may_download(struct link_pass *p, uint64_t len, int64_t now_usec);

/*
 * After a download paused: may it resume now (now_usec: CLOCK_REALTIME µs)? paused_in: the
 * pass it paused in for this pass's budget or time (-EDQUOT, -ETIME), 0 when it paused
 * for the link. Not in the same pass (its next range would be refused again, after the
 * bundle's head was fetched once more), nor when a resume's head would not fit.
 */
bool link_pass_may_resume(struct link_pass *p, uint64_t paused_in, int64_t now_usec);

/* The worker downloaded bytes in usec. */
void link_pass_downloaded(struct link_pass *p, uint64_t bytes, uint64_t usec);
