/*
 * The thermal and power policy, pure: readings in, a level and the load-shedding
 * actions for it out. Levels rise at once and fall one step at a time, after the
 * hysteresis and a minimum dwell, so the board neither cooks nor flaps.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_MAX_RULES 32
#define POLICY_MAX_ZONES 64

enum health_level {
        HEALTH_NOMINAL,
        HEALTH_WARM,
        HEALTH_HOT,
        HEALTH_CRITICAL,
        _HEALTH_LEVEL_MAX,
};

const char *health_level_to_string(enum health_level l);

/* Thresholds for one zone, in millidegrees Celsius; a zone leaves a level below
 * its threshold minus hyst_mc. */
struct thermal_limits {
        int64_t warm_mc, hot_mc, critical_mc, hyst_mc;
};

struct zone_rule {
        char match[48]; /* a zone name (thermal_zone0) or type (cpu-thermal); fnmatch patterns */
        struct thermal_limits limits;
};

/* Battery capacity in percent while on battery (eclipse); leaves a level above it + hyst. */
struct power_limits {
        bool enabled;
        int warm_pct, hot_pct, critical_pct, hyst_pct;
};

struct health_policy_config {
        struct zone_rule rules[POLICY_MAX_RULES];
        size_t n_rules;
        bool have_default;             /* limits for zones no rule matches */
        struct thermal_limits default_limits;
        bool use_trip_points;          /* else: unmatched zones use the kernel's trip points */
        struct power_limits power;
        uint64_t min_dwell_usec;       /* time at a level before stepping down from it */
        unsigned throttle_best_effort_percent; /* cpu left to best-effort when throttled */
        unsigned throttle_normal_percent;
};

/* What the runtime must do at a level: the steps, cumulative. */
struct health_actions {
        unsigned best_effort_cpu_percent; /* 0: no throttle */
        bool best_effort_frozen;
        unsigned normal_cpu_percent;      /* 0: no throttle */
        bool non_critical_stopped;        /* normal and best-effort stopped, starts refused */
        bool best_effort_admission_closed;
};

/*
 * The steps: warm throttles best-effort; hot also freezes best-effort and throttles
 * normal; critical stops everything but critical workloads.
 */
struct health_actions health_level_actions(const struct health_policy_config *c, enum health_level l);

struct zone_reading {
        const char *name, *type;
        int64_t temp_mc;
        bool valid;
        /* kernel trip points, for use_trip_points: passive/active -> warm, hot, critical */
        int64_t trip_warm_mc, trip_hot_mc, trip_critical_mc, trip_hyst_mc; /* INT64_MIN: none */
};

struct policy_input {
        uint64_t now_usec;
        const struct zone_reading *zones;
        size_t n_zones;
        bool on_battery;
        int battery_capacity; /* -1 unknown */
};

struct zone_state {
        char name[48];
        enum health_level level;
        bool seen;
};

struct health_policy {
        struct health_policy_config config;
        struct zone_state zones[POLICY_MAX_ZONES];
        size_t n_zones;
        enum health_level power_level;
        enum health_level level;      /* the level in force */
        uint64_t level_since_usec;
        char driver[96];              /* what drives the level now: "zone cpu-thermal 82.0 C" */
};

struct policy_decision {
        bool changed;
        enum health_level from, to;
        char reason[160];
};

void health_policy_init(struct health_policy *p, const struct health_policy_config *c, uint64_t now_usec);

/*
 * Feed one round of readings. Each zone's level follows its limits with hysteresis (an
 * invalid reading keeps the zone's last level: a failing sensor never cools the board);
 * the wanted level is the highest of zones and power. Rising takes effect at once;
 * falling goes one level per call and only after min_dwell at the current level.
 */
void health_policy_step(struct health_policy *p, const struct policy_input *in, struct policy_decision *out);

/* Pure helper: the level of one value against rising thresholds with hysteresis. */
enum health_level level_with_hysteresis(enum health_level current, int64_t value, int64_t warm,
                                        int64_t hot, int64_t critical, int64_t hyst);
