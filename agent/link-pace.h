/*
 * How much a sync may carry (pure: tests/unit/test-link-pace). A sync's upload is cut at
 * the link's timeout, and a batch cut there is lost whole and sent again: on a slow, lossy
 * link a fixed batch of max_sync_kib never completes. So the batch follows the upload
 * goodput measured on earlier syncs, sized to finish well inside the timeout and before
 * the contact window closes; a batch that did not take the whole backlog is followed by
 * the next sync at once (link.c).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define LINK_PACE_MIN_BYTES (4 * 1024)     /* never less (one record of a few KB) */
#define LINK_PACE_FIRST_BYTES (32 * 1024)  /* before any measurement */
#define LINK_PACE_MEASURE_MIN LINK_PACE_MIN_BYTES /* smaller say little about the rate */

struct link_pace {
        double goodput; /* bytes per second of upload, smoothed; 0: not measured yet */
};

/* An upload of bytes that took usec (request sent until the answer's first byte). */
void link_pace_observe(struct link_pace *p, uint64_t bytes, uint64_t usec);

/* A sync that failed (timed out, cut, refused): the next batch is half as large; a
 * batch that did not go through at this rate would not at the next attempt either. */
void link_pace_failed(struct link_pace *p);

/*
 * The bytes the next batch may carry: what the measured goodput moves in target_usec
 * (a fraction of the timeout), at most max_bytes; with the window's end known
 * (usec_left >= 0), also what it moves before then, less margin_usec. 0: do not start
 * a sync now (the window closes first).
 */
size_t link_pace_batch_bytes(const struct link_pace *p, size_t max_bytes, uint64_t target_usec,
                             int64_t usec_left, uint64_t margin_usec);
