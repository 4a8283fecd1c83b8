/* A pass and its budgets (see link-pass.h). */
#include "config.h"

#include <errno.h>

#include "agent/link-pass.h"

void link_pass_init(struct link_pass *p, uint64_t up_budget, uint64_t down_budget) {
        atomic_store(&p->number, 0);
        atomic_store(&p->los_usec, 0);
        atomic_store(&p->down_budget, down_budget);
        atomic_store(&p->down_used, 0);
        atomic_store(&p->down_rate, 0);
        p->up_budget = up_budget;
        p->up_used = 0;
        p->window_start = -1;
        p->started_usec = 0;
        p->last_ok_usec = 0;
}

static void begin(struct link_pass *p, int64_t window_start, uint64_t now_usec) {
        /* what a download resumed at start took before the first sync is the first pass's */
        if (atomic_fetch_add(&p->number, 1) > 0)
                atomic_store(&p->down_used, 0);
        p->up_used = 0;
        p->window_start = window_start;
        p->started_usec = now_usec;
        p->last_ok_usec = 0;
}

bool link_pass_track(struct link_pass *p, int64_t window_start, int64_t window_end, uint64_t now_usec,
                     uint64_t gap_usec, uint64_t max_usec) {
        bool new_pass;
        if (window_start >= 0)
                /* the plan says which contact this is; a window longer than max_usec (a plan
                 * that says "always in contact") is several passes, else its budgets would be
                 * spent once and never whole again */
                new_pass = atomic_load(&p->number) == 0 || p->window_start != window_start ||
                           now_usec - p->started_usec > max_usec;
        else if (atomic_load(&p->number) == 0 || p->window_start >= 0)
                /* the first contact, or the plan's window is over and the link still works */
                new_pass = true;
        else {
                /* learned: a pause longer than the gap, or a pass longer than a pass can be */
                uint64_t last = p->last_ok_usec ? p->last_ok_usec : p->started_usec;
                new_pass = now_usec - last > gap_usec || now_usec - p->started_usec > max_usec;
        }
        if (new_pass)
                begin(p, window_start, now_usec);
        /* an end too far to count in µs is as good as not known (it must not wrap) */
        bool known =
                window_start >= 0 && window_end > window_start && window_end <= INT64_MAX / 1000000;
        atomic_store(&p->los_usec, known ? window_end * 1000000LL : 0);
        return new_pass;
}

void link_pass_sync_ok(struct link_pass *p, uint64_t now_usec, uint64_t up_bytes) {
        p->last_ok_usec = now_usec;
        p->up_used += up_bytes;
}

void link_pass_sync_failed(struct link_pass *p, uint64_t up_bytes) {
        p->up_used += up_bytes;
}

size_t link_pass_upload_room(const struct link_pass *p) {
        if (!p->up_budget)
                return SIZE_MAX;
        return p->up_used >= p->up_budget ? 0 : (size_t) (p->up_budget - p->up_used);
}

int link_pass_may_download(struct link_pass *p, uint64_t len, int64_t now_usec) {
        if (!p)
                return 0;
        uint64_t budget = atomic_load(&p->down_budget), used = atomic_load(&p->down_used);
        /* A range of more than half the budget may not fit next to a resumed download's
         * head in any pass: one such range may cross the budget while it is not spent, else
         * a bundle whose chunks are as big as the budget would never move. */
        if (budget && used + len > budget && (used >= budget || len <= budget / 2))
                return -EDQUOT;
        int64_t los = atomic_load(&p->los_usec);
        uint64_t rate = atomic_load(&p->down_rate);
        if (los > 0) {
                if (now_usec + LINK_PASS_LOS_MARGIN_USEC >= los)
                        return -ETIME;
                /* not measured yet: the first range measures it */
                if (rate > 0 && (double) len / (double) rate * 1e6 > (double) (los - now_usec - LINK_PASS_LOS_MARGIN_USEC))
                        return -ETIME;
        }
        return 0;
}

bool link_pass_may_resume(struct link_pass *p, uint64_t paused_in, int64_t now_usec) {
        if (!p)
                return true;
        if (paused_in && atomic_load(&p->number) == paused_in)
                return false;
        return link_pass_may_download(p, LINK_PASS_RESUME_MIN_BYTES, now_usec) == 0;
}

void link_pass_downloaded(struct link_pass *p, uint64_t bytes, uint64_t usec) {
        if (!p)
                return;
        atomic_fetch_add(&p->down_used, bytes);
        if (bytes < LINK_PASS_RATE_MIN_BYTES || usec == 0)
                return;
        uint64_t rate = (uint64_t) ((double) bytes * 1e6 / (double) usec);
        uint64_t old = atomic_load(&p->down_rate);
        /* the newest counts half: the rate changes within a pass */
        atomic_store(&p->down_rate, old ? (old + rate) / 2 : rate);
}
