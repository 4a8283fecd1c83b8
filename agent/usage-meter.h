/*
 * The usage meter (#19 item 5, docs/usage.md): per workload, CPU seconds, memory
 * byte-seconds and an energy estimate; per app, the bytes its bundles took over the link.
 * Totals are cumulative since the meter began (its "meter" id); every report carries
 * them all, so a report lost or received twice changes nothing: the controller keeps the
 * latest of each. Pure: the agent (agent/usage.c) samples, keeps the state file, reports.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "health/collect.h"
#include "proto/usage-record.h"

#define USAGE_MAX_ENTRIES USAGE_ENTRIES_MAX /* every workload the runtime can hold (256), twice */
#define USAGE_METER_ID_LEN USAGE_METER_LEN /* lowercase hex */
#define USAGE_BOOT_ID_MAX 36
/* A meter is rotated before any total passes this part of the parser's bound
 * (USAGE_AMOUNT_MAX, USAGE_LINK_BYTES_MAX): its reports are never refused for a total. */
#define USAGE_TOTAL_ROTATE 0.5
/* A board power reading above this is not a reading (a bit flip, a sensor's garbage):
 * the board's energy is not counted over it. */
#define USAGE_POWER_MAX_W 100000.0

struct usage_totals {
        double cpu_sec;
        double memory_byte_sec;
        double energy_j;
        uint64_t link_bytes;
};

/* One workload ("workload" set) or one app's downloads ("workload" empty, "app" set). */
struct usage_meter_entry {
        char workload[USAGE_NAME_MAX + 1];
        char tenant[USAGE_NAME_MAX + 1];     /* "" none */
        char deployment[USAGE_NAME_MAX + 1]; /* "" none */
        char app[USAGE_NAME_MAX + 1];        /* "" none */
        struct usage_totals total;
        /* its cgroup at the last sample: the counters, and which cgroup (its inode) */
        bool have_last;
        uint64_t last_cpu_usec, last_memory_bytes, last_instance;
};

struct usage_meter {
        char meter[USAGE_METER_ID_LEN + 1];
        uint64_t reports;          /* the last report's number, 0 none yet */
        int64_t started;           /* realtime seconds when the meter began */
        int64_t last_report;       /* realtime seconds of the last report (started before one) */
        char boot_id[USAGE_BOOT_ID_MAX + 1]; /* of the last sample: its monotonic time counts in that boot */
        bool have_last;
        uint64_t last_mono_usec;
        bool have_cpu;
        struct cpu_times last_cpu;
        bool have_power;
        double last_power_w;
        double board_energy_j;
        struct usage_meter_entry entries[USAGE_MAX_ENTRIES];
        size_t n_entries;
};

/* A running workload's cgroup now. */
struct usage_workload_sample {
        const char *workload, *tenant, *deployment, *app; /* NULL or "" for none */
        uint64_t cpu_usec, memory_bytes;
        uint64_t instance; /* which cgroup: a new one counts from zero */
};

struct usage_sample {
        uint64_t mono_usec;  /* CLOCK_MONOTONIC */
        const char *boot_id; /* this boot's id: across a reboot monotonic time and counters restart */
        bool cpu_valid;
        struct cpu_times cpu; /* /proc/stat "cpu", in ticks */
        long clk_tck;         /* ticks per second */
        /* What a reading can be, so a bogus one (a bit flipped in a counter, a sensor gone
         * mad) cannot make a total the controller's parser refuses: a workload's CPU grows by
         * at most n_cpus times the time between two samples, its memory is at most
         * mem_total_bytes. 0: that bound is not known (not applied). */
        unsigned n_cpus;
        uint64_t mem_total_bytes;
        bool power_valid;
        double power_w; /* the board's measured power now */
        const struct usage_workload_sample *workloads;
        size_t n_workloads;
};

/* A new meter with this id (32 lowercase hex) begun at realtime seconds now. */
void usage_meter_init(struct usage_meter *m, const char *meter_id, int64_t now);

/*
 * Add what happened since the last sample. CPU: the cgroup counter's growth (all of it for
 * a cgroup the meter has not seen, or after a reboot), at most n_cpus times the time
 * between. Memory: the mean of the last and this reading (each at most mem_total_bytes)
 * times the time between. Energy: the board's mean power (at most USAGE_POWER_MAX_W)
 * times that time, shared by each workload's part of the CPU time the node used. -ENOSPC
 * when a workload would need an entry beyond USAGE_MAX_ENTRIES, or a total would pass
 * USAGE_TOTAL_ROTATE of what the controller's parser takes (nothing changed: start a new
 * meter with usage_meter_rotate and sample again); -EINVAL for a name that is not one.
 */
int usage_meter_sample(struct usage_meter *m, const struct usage_sample *s);

/* Bytes downloaded for an app's bundle (its entry, made when needed). -ENOSPC, -EINVAL as
 * above (-ENOSPC also when the entry's total would pass USAGE_TOTAL_ROTATE of its bound). */
int usage_meter_add_link_bytes(struct usage_meter *m, const char *app, const char *tenant, const char *deployment,
                               uint64_t bytes);

/* A new meter (new id) keeping what the samples need: the last cgroup reading of each
 * workload in present (NULL: of every workload the meter has one of), the last CPU and
 * power, so nothing is counted in both meters. Totals restart. -ENOMEM. */
int usage_meter_rotate(struct usage_meter *m, const char *new_id, int64_t now, const struct usage_sample *present);

/*
 * The body of the next usage.report record (a new reference; NULL on ENOMEM): the
 * cumulative totals, numbered m->reports + 1, which it becomes. now: realtime seconds.
 */
json_t *usage_meter_report(struct usage_meter *m, int64_t now, double interval_sec);

/* The state file's JSON, and back (strict: a state that does not parse is refused with where). */
json_t *usage_meter_to_json(const struct usage_meter *m);
int usage_meter_from_json(json_t *j, struct usage_meter *m, char **ret_reason);

/* 32 lowercase hex characters? */
bool usage_meter_id_is_valid(const char *id);
/* Names: usage_name_is_valid() (proto/usage-record.h), as the controller judges them. */
