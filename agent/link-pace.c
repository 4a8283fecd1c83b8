/* How much a sync may carry (see link-pace.h). */
#include "config.h"

#include "agent/link-pace.h"

void link_pace_observe(struct link_pace *p, uint64_t bytes, uint64_t usec) {
        if (bytes < LINK_PACE_MEASURE_MIN || usec == 0)
                return;
        double rate = (double) bytes * 1e6 / (double) usec;
        /* the newest counts half: a link's rate changes within a pass (elevation, loss) */
        p->goodput = p->goodput > 0 ? (p->goodput + rate) / 2 : rate;
}

void link_pace_failed(struct link_pace *p) {
        p->goodput /= 2;
}

size_t link_pace_batch_bytes(const struct link_pace *p, size_t max_bytes, uint64_t target_usec,
                             int64_t usec_left, uint64_t margin_usec) {
        double bytes = p->goodput > 0 ? p->goodput * (double) target_usec / 1e6 : LINK_PACE_FIRST_BYTES;
        if (usec_left >= 0) {
                if ((uint64_t) usec_left <= margin_usec)
                        return 0;
                if (p->goodput > 0) {
                        double before_los = p->goodput * (double) ((uint64_t) usec_left - margin_usec) / 1e6;
                        if (before_los < LINK_PACE_MIN_BYTES)
                                return 0;
                        if (before_los < bytes)
                                bytes = before_los;
                }
        }
        if (bytes < LINK_PACE_MIN_BYTES)
                bytes = LINK_PACE_MIN_BYTES;
        if (bytes > (double) max_bytes)
                bytes = (double) max_bytes;
        return (size_t) bytes;
}
