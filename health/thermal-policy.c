/* The thermal and power policy, pure: levels with hysteresis and dwell, and the actions. */
#include "config.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "lib/macro.h"
#include "health/thermal-policy.h"

static const char *const level_names[_HEALTH_LEVEL_MAX] = {
        [HEALTH_NOMINAL] = "nominal",
        [HEALTH_WARM] = "warm",
        [HEALTH_HOT] = "hot",
        [HEALTH_CRITICAL] = "critical",
};

const char *health_level_to_string(enum health_level l) {
        return (unsigned) l < _HEALTH_LEVEL_MAX ? level_names[l] : "unknown";
}

struct health_actions health_level_actions(const struct health_policy_config *c, enum health_level l) {
        struct health_actions a = {0};
        if (l >= HEALTH_WARM) {
                a.best_effort_cpu_percent = c->throttle_best_effort_percent;
                a.best_effort_admission_closed = true;
        }
        if (l >= HEALTH_HOT) {
                a.best_effort_frozen = true;
                a.normal_cpu_percent = c->throttle_normal_percent;
        }
        if (l >= HEALTH_CRITICAL)
                a.non_critical_stopped = true;
        return a;
}

enum health_level level_with_hysteresis(enum health_level current, int64_t value, int64_t warm,
                                        int64_t hot, int64_t critical, int64_t hyst) {
        const int64_t thr[_HEALTH_LEVEL_MAX] = {INT64_MIN, warm, hot, critical};
        /* Up: to the highest threshold reached. */
        enum health_level up = HEALTH_NOMINAL;
        for (int l = HEALTH_WARM; l < _HEALTH_LEVEL_MAX; l++)
                if (value >= thr[l])
                        up = (enum health_level) l;
        if (up >= current)
                return up;
        /* Down: only below the threshold of the current level minus the hysteresis. */
        enum health_level l = current;
        while (l > HEALTH_NOMINAL && value < thr[l] - hyst)
                l--;
        return l;
}

static const struct thermal_limits *limits_for(const struct health_policy_config *c,
                                               const struct zone_reading *z, struct thermal_limits *trip) {
        for (size_t i = 0; i < c->n_rules; i++) {
                const char *m = c->rules[i].match;
                if ((z->name && fnmatch(m, z->name, 0) == 0) || (z->type && fnmatch(m, z->type, 0) == 0))
                        return &c->rules[i].limits;
        }
        if (c->have_default)
                return &c->default_limits;
        if (c->use_trip_points && z->trip_critical_mc != INT64_MIN) {
                trip->critical_mc = z->trip_critical_mc;
                trip->hot_mc = z->trip_hot_mc != INT64_MIN ? z->trip_hot_mc : z->trip_critical_mc;
                trip->warm_mc = z->trip_warm_mc != INT64_MIN ? z->trip_warm_mc : trip->hot_mc;
                trip->hyst_mc = z->trip_hyst_mc != INT64_MIN ? z->trip_hyst_mc : 2000;
                return trip;
        }
        return NULL; /* no limits known: the zone is reported, not acted on */
}

static struct zone_state *zone_state_for(struct health_policy *p, const char *name) {
        for (size_t i = 0; i < p->n_zones; i++)
                if (streq(p->zones[i].name, name))
                        return &p->zones[i];
        if (p->n_zones >= POLICY_MAX_ZONES)
                return NULL;
        struct zone_state *z = &p->zones[p->n_zones++];
        memset(z, 0, sizeof(*z));
        snprintf(z->name, sizeof(z->name), "%s", name);
        return z;
}

void health_policy_init(struct health_policy *p, const struct health_policy_config *c, uint64_t now_usec) {
        memset(p, 0, sizeof(*p));
        p->config = *c;
        p->level = HEALTH_NOMINAL;
        p->level_since_usec = now_usec;
        snprintf(p->driver, sizeof(p->driver), "no readings yet");
}

void health_policy_step(struct health_policy *p, const struct policy_input *in, struct policy_decision *out) {
        const struct health_policy_config *c = &p->config;
        enum health_level wanted = HEALTH_NOMINAL;
        char driver[96] = "all zones nominal";

        for (size_t i = 0; i < in->n_zones; i++) {
                const struct zone_reading *r = &in->zones[i];
                struct zone_state *z = zone_state_for(p, r->name ? r->name : "?");
                if (!z)
                        continue;
                struct thermal_limits trip;
                const struct thermal_limits *lim = limits_for(c, r, &trip);
                if (lim && r->valid) {
                        z->level = level_with_hysteresis(z->level, r->temp_mc, lim->warm_mc, lim->hot_mc,
                                                         lim->critical_mc, lim->hyst_mc);
                        z->seen = true;
                }
                /* An invalid reading keeps the zone's last level. */
                if (z->level > wanted) {
                        wanted = z->level;
                        if (r->valid)
                                snprintf(driver, sizeof(driver), "zone %s (%s) at %.1f C", z->name,
                                         r->type ? r->type : "?", (double) r->temp_mc / 1000.0);
                        else
                                snprintf(driver, sizeof(driver), "zone %s: no valid reading, kept at %s",
                                         z->name, health_level_to_string(z->level));
                }
        }

        if (c->power.enabled) {
                if (in->on_battery && in->battery_capacity >= 0) {
                        /* Lower capacity is worse: negate to reuse the rising thresholds. */
                        p->power_level = level_with_hysteresis(p->power_level, -(int64_t) in->battery_capacity,
                                                               -(int64_t) c->power.warm_pct, -(int64_t) c->power.hot_pct,
                                                               -(int64_t) c->power.critical_pct, c->power.hyst_pct);
                } else if (!in->on_battery)
                        p->power_level = HEALTH_NOMINAL; /* in sunlight: charging */
                if (p->power_level > wanted) {
                        wanted = p->power_level;
                        snprintf(driver, sizeof(driver), "battery at %d%% in eclipse", in->battery_capacity);
                }
        }

        out->changed = false;
        out->from = p->level;
        out->to = p->level;
        out->reason[0] = '\0';

        enum health_level next = p->level;
        if (wanted > p->level)
                next = wanted; /* heat does not wait */
        else if (wanted < p->level && in->now_usec - p->level_since_usec >= c->min_dwell_usec)
                next = (enum health_level) (p->level - 1); /* one step at a time */

        snprintf(p->driver, sizeof(p->driver), "%s", driver);
        if (next == p->level)
                return;
        out->changed = true;
        out->to = next;
        snprintf(out->reason, sizeof(out->reason), "%s -> %s: %s", health_level_to_string(p->level),
                 health_level_to_string(next), driver);
        p->level = next;
        p->level_since_usec = in->now_usec;
}
