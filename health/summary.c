/* Periodic report statistics, pure: min, max, mean and last of each metric. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/macro.h"
#include "health/summary.h"

void summary_add(struct summary_set *s, const char *name, double value) {
        if (isnan(value) || isinf(value))
                return;
        struct metric_summary *m = NULL;
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->metrics[i].name, name)) {
                        m = &s->metrics[i];
                        break;
                }
        if (!m) {
                if (s->n >= SUMMARY_MAX_METRICS) {
                        s->dropped++;
                        return;
                }
                m = &s->metrics[s->n++];
                memset(m, 0, sizeof(*m));
                snprintf(m->name, sizeof(m->name), "%s", name);
                m->min = m->max = value;
        }
        if (value < m->min)
                m->min = value;
        if (value > m->max)
                m->max = value;
        m->sum += value;
        m->last = value;
        m->count++;
}

static double round3(double v) {
        return round(v * 1000.0) / 1000.0;
}

json_t *summary_to_json(const struct summary_set *s) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < s->n; i++) {
                const struct metric_summary *m = &s->metrics[i];
                json_object_set_new(o, m->name,
                                    json_pack("{s:f,s:f,s:f,s:f,s:i}", "min", round3(m->min), "max", round3(m->max),
                                              "mean", round3(m->sum / (m->count ? m->count : 1)), "last",
                                              round3(m->last), "n", (int) m->count));
        }
        return o;
}

void summary_reset(struct summary_set *s) {
        s->n = 0;
        s->dropped = 0;
}
