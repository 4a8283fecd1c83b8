/* Health collectors: read thermal, power, CPU, memory, PSI, disk and self metrics. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Fixed upper bounds: what the kernel shows beyond them is ignored and reported. */
#define HEALTH_MAX_ZONES 64
#define HEALTH_MAX_TRIPS 16
#define HEALTH_MAX_HWMON 64
#define HEALTH_MAX_POWER 16
#define HEALTH_POWER_MAX_UW 10000000000ULL /* 10 kW: anything above is not a board */
#define HEALTH_MAX_SUPPLIES 16
#define HEALTH_MAX_DISKS 8
#define HEALTH_MAX_PROBLEMS 32
#define HEALTH_PROBLEM_MAX 160 /* bytes of one problem line, NUL included */

/* Temperatures outside this range are driver garbage, not weather (millidegrees C). */
#define HEALTH_TEMP_MIN_MC (-273150)
#define HEALTH_TEMP_MAX_MC 500000

/*
 * Where to read. NULL roots mean "/sys" and "/proc"; a simulated node or a test passes
 * fake trees. The agent's own metrics always come from the real /proc/self, whatever
 * procfs_root says: a fake tree has no process of ours in it.
 */
struct health_paths {
        const char *sysfs_root;
        const char *procfs_root;
        const char *disk_paths[HEALTH_MAX_DISKS]; /* state and slot filesystems */
        size_t n_disks;
};

struct thermal_trip {
        char type[16];   /* "passive", "active", "hot", "critical" */
        int64_t temp_mc; /* millidegrees Celsius */
        int64_t hyst_mc; /* meaningful only when has_hyst */
        bool has_hyst;
};

struct thermal_zone {
        char name[32];   /* "thermal_zone0" */
        char type[48];   /* "x86_pkg_temp", "cpu-thermal"... "" when unreadable */
        int64_t temp_mc; /* meaningful only when valid; may be negative */
        bool valid;      /* false: temp unreadable, garbage or implausible */
        struct thermal_trip trips[HEALTH_MAX_TRIPS];
        size_t n_trips;
};

struct hwmon_temp {
        char device[16]; /* "hwmon2" */
        char chip[48];   /* contents of "name": "coretemp", "nvme"... */
        char label[48];  /* tempN_label, or "tempN" when there is none */
        int64_t temp_mc;
        bool valid;
};

/* A hwmon power sensor, powerN_input in microwatts (INA219/INA226 and the like). */
struct hwmon_power {
        char device[16]; /* "hwmon3" */
        char chip[48];   /* contents of "name": "ina226" */
        char label[48];  /* powerN_label, or "powerN" when there is none */
        uint64_t power_uw;
        bool valid;
};

struct power_supply {
        char name[48];     /* "BAT0", "AC", "solar" */
        char type[16];     /* "Battery", "Mains", "USB", "UPS"... */
        char status[24];   /* batteries: "Charging", "Discharging", "Full"...; "" if none */
        int capacity;      /* percent 0..100, -1 unknown */
        int online;        /* 1, 0, -1 unknown (batteries usually have none) */
        bool device_scope; /* scope "Device": a peripheral's battery, not the node's */
};

/* One line of a /proc/pressure file; averages in percent of wall time. */
struct psi_line {
        bool valid;
        double avg10, avg60, avg300;
        uint64_t total_usec;
};

/* The aggregate "cpu" line of /proc/stat, in USER_HZ ticks. */
struct cpu_times {
        uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
};

struct disk_space {
        char path[256];                    /* as configured, truncated for display */
        uint64_t total_bytes, avail_bytes; /* avail: what an unprivileged writer gets */
        bool valid;
};

struct health_self {
        uint64_t rss_bytes;
        unsigned open_fds;
        bool valid;             /* rss and fds were read */
        uint64_t loop_lag_usec; /* largest lag noted since the previous snapshot */
};

/* All plain data, no pointers; about 64 KiB, so keep it on the heap or in a long-lived struct. */
struct health_snapshot {
        uint64_t monotonic_usec; /* CLOCK_MONOTONIC when collected */

        struct thermal_zone zones[HEALTH_MAX_ZONES]; /* in zone number order */
        size_t n_zones;
        struct hwmon_temp hwmon[HEALTH_MAX_HWMON];
        size_t n_hwmon;
        struct hwmon_power powers[HEALTH_MAX_POWER]; /* hwmon power sensors, in device order */
        size_t n_powers;
        struct power_supply supplies[HEALTH_MAX_SUPPLIES]; /* sorted by name */
        size_t n_supplies;
        bool on_battery;      /* eclipse: see health_supplies_on_battery() */
        int battery_capacity; /* lowest capacity of the node's batteries, -1 none */

        double cpu_busy_percent; /* since the previous snapshot; -1 unknown (first) */
        bool cpu_valid;
        struct cpu_times cpu; /* /proc/stat's "cpu" line now (for the usage meter) */
        bool mem_valid;
        uint64_t mem_total, mem_available; /* bytes */
        bool load_valid;
        double load1, load5, load15;
        struct psi_line psi_cpu_some, psi_mem_some, psi_mem_full, psi_io_some, psi_io_full;

        struct disk_space disks[HEALTH_MAX_DISKS]; /* in health_paths order */
        size_t n_disks;

        struct health_self self;

        /* "thermal_zone3/temp: unreadable: Input/output error"; stable across snapshots. */
        char problems[HEALTH_MAX_PROBLEMS][HEALTH_PROBLEM_MAX];
        size_t n_problems;
        size_t problems_dropped; /* beyond HEALTH_MAX_PROBLEMS */
};

/* Keeps the previous /proc/stat for CPU use, the loop lag, and which problems it logged. */
struct health_collector;

/*
 * Make a collector for the given paths (copied; p may go away). -EINVAL for more than
 * HEALTH_MAX_DISKS disks or a NULL disk path, -ENOMEM.
 */
int health_collector_new(const struct health_paths *p, struct health_collector **ret);

/* Free a collector; NULL is fine. */
void health_collector_free(struct health_collector *c);

/*
 * Record one event-loop lag measurement. The next snapshot carries the largest one noted
 * since the snapshot before it; the agent measures, the collector only reports.
 */
void health_collector_note_loop_lag(struct health_collector *c, uint64_t lag_usec);

/*
 * Fill out with what the node looks like now. Missing, unreadable or odd files never
 * fail the call: they become lines in out->problems and invalid fields. A problem is
 * logged (warning) when it first appears and (info) when it clears, not at every
 * collection. Returns 0, or -EINVAL for NULL arguments.
 */
int health_collect(struct health_collector *c, struct health_snapshot *out);

/*
 * The snapshot as a JSON object with stable keys (see docs/health-collectors.md); unknown
 * values are null. NULL on allocation failure. Caller owns the reference.
 */
json_t *health_snapshot_to_json(const struct health_snapshot *s);

/* ---- pure helpers, for the collectors and the tests ---------------------------------- */

/*
 * Parse a sysfs temperature: an optional '-', decimal digits, an optional newline.
 * -EINVAL for anything else (empty, spaces, "abc", "45.0"), -ERANGE beyond int64.
 * Plausibility is a separate question: health_temp_is_plausible().
 */
int health_parse_millicelsius(const char *text, int64_t *ret);

/* A power in microwatts (hwmon powerN_input), at most HEALTH_POWER_MAX_UW. */
int health_parse_microwatts(const char *text, uint64_t *ret);

/* Within HEALTH_TEMP_MIN_MC..HEALTH_TEMP_MAX_MC. Negative values are fine: space is cold. */
bool health_temp_is_plausible(int64_t temp_mc);

/*
 * Parse the first line of /proc/stat ("cpu  user nice system idle [iowait irq softirq
 * steal guest guest_nice]"). At least the first four numbers are needed; missing later
 * ones read as 0. -EINVAL if the text does not start with that line.
 */
int health_parse_proc_stat_cpu(const char *text, struct cpu_times *ret);

/*
 * Percent of CPU time busy between two samples (a earlier): 100 * (1 - idle share), where
 * idle is idle + iowait. -1 when nothing elapsed or a counter went backwards.
 */
double health_cpu_busy_between(const struct cpu_times *a, const struct cpu_times *b);

/*
 * Parse /proc/meminfo into bytes. MemTotal is required (-ENOENT without it). Kernels
 * before 3.14 lack MemAvailable: then it is estimated as MemFree + Buffers + Cached.
 * -EINVAL for a malformed value of a key we use.
 */
int health_parse_meminfo(const char *text, uint64_t *total, uint64_t *available);

/* Parse the three averages at the start of /proc/loadavg. -EINVAL otherwise. */
int health_parse_loadavg(const char *text, double *l1, double *l5, double *l15);

/*
 * Parse a /proc/pressure file. The "some" line is required; "full" is optional (absent
 * before Linux 5.13 for cpu): full->valid says whether it was there. Lines of other
 * kinds are ignored. -EINVAL if a line we use is malformed or "some" is missing.
 */
int health_parse_psi(const char *text, struct psi_line *some, struct psi_line *full);

/* Parse VmRSS from /proc/<pid>/status into bytes. -ENOENT if absent (kernel threads). */
int health_parse_status_rss(const char *text, uint64_t *rss_bytes);

/* A battery that supplies the node, not a peripheral's ("scope" Device). */
bool health_supply_is_node_battery(const struct power_supply *s);

/*
 * Eclipse: one of the node's batteries is discharging and no other supply (mains,
 * solar, USB...) says it is online. A supply whose online state is unknown does not
 * count as online. Without a node battery this is false.
 */
bool health_supplies_on_battery(const struct power_supply *s, size_t n);

/* Lowest known capacity among the node's batteries, -1 if none is known. */
int health_supplies_battery_capacity(const struct power_supply *s, size_t n);
