/*
 * Fuzz the health collectors' pure parsers: sysfs and procfs text is outside input (a
 * driver's garbage, a fake tree, a kernel of another age). Every parser sees every
 * input; the results must be in range whenever a parser accepts.
 */
#include "config.h"

#include <math.h>

#include "health/collect.h"
#include "fuzz-util.h"

static void check_psi(const struct psi_line *l) {
        if (!l->valid)
                return;
        FUZZ_CHECK(l->avg10 >= 0 && isfinite(l->avg10));
        FUZZ_CHECK(l->avg60 >= 0 && isfinite(l->avg60));
        FUZZ_CHECK(l->avg300 >= 0 && isfinite(l->avg300));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        /* The collectors read files into NUL-terminated buffers. */
        char *text = fuzz_strndup(data, size);
        FUZZ_CHECK(text);

        int64_t mc;
        if (health_parse_millicelsius(text, &mc) == 0)
                (void)health_temp_is_plausible(mc);

        struct cpu_times a, b;
        if (health_parse_proc_stat_cpu(text, &a) == 0) {
                /* A second sample: the text after the first blank line, if any. */
                const char *second = strstr(text, "\n\n");
                if (second && health_parse_proc_stat_cpu(second + 2, &b) == 0) {
                        double busy = health_cpu_busy_between(&a, &b);
                        FUZZ_CHECK(busy == -1 || (busy >= 0 && busy <= 100));
                }
                double self = health_cpu_busy_between(&a, &a);
                FUZZ_CHECK(self == -1);
        }

        uint64_t total, available;
        if (health_parse_meminfo(text, &total, &available) == 0)
                FUZZ_CHECK(available <= total);

        double l1, l5, l15;
        if (health_parse_loadavg(text, &l1, &l5, &l15) == 0)
                FUZZ_CHECK(l1 >= 0 && l5 >= 0 && l15 >= 0 && isfinite(l1) && isfinite(l5) &&
                           isfinite(l15));

        struct psi_line some, full;
        if (health_parse_psi(text, &some, &full) == 0) {
                FUZZ_CHECK(some.valid);
                check_psi(&some);
                check_psi(&full);
        }

        uint64_t rss;
        (void)health_parse_status_rss(text, &rss);
        free(text);
        return 0;
}
