/*
 * Usage metering (#19 item 5, docs/usage.md): the body of a node's "usage.report" record:
 * the totals one meter on the node has measured since it began, per workload and tenant
 * (CPU seconds, memory byte-seconds, an energy estimate) and per app (bytes moved over the
 * link). Both ends link it: the node's test checks what the node builds, the controller
 * takes what it sums. Pure: parse and validate only, no I/O, no allocation but the error
 * message.
 *
 *   {"meter": "<32 lower-case hex>", "interval": 7, "start": 1764930000, "end": 1764930300,
 *    "duration_sec": 300.0, "board_energy_j": 4500.0,
 *    "entries": [{"workload": "det", "tenant": "acme", "deployment": "dep-a", "app": "hello",
 *                 "cpu_sec": 12.5, "memory_byte_sec": 3.1e9, "energy_j": 180.2, "link_bytes": 0},
 *                {"app": "hello", "tenant": "acme", "deployment": "dep-a", "link_bytes": 123456}]}
 *
 * "interval" numbers the meter's reports. The totals are cumulative: a later report of the
 * same meter carries everything an earlier one did, so a report lost or received twice
 * changes no sum (the controller keeps the latest of each entry).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define USAGE_RECORD_KIND "usage.report"
#define USAGE_METER_LEN 32     /* lower-case hex digits of a meter id */
#define USAGE_ENTRIES_MAX 512  /* entries in one report: twice the runtime's 256 workloads */
#define USAGE_NAME_MAX 64      /* workload, tenant, deployment and app names */
/* An entry's key: its workload (or "app:<app>" for an app's downloads), then "|tenant|deployment|app":
 * one workload may have had entries under two tenants or deployments in one meter. */
#define USAGE_ENTRY_KEY_MAX (4 + 4 * (USAGE_NAME_MAX + 1))
#define USAGE_TIME_MAX INT64_C(253402300799) /* start, end: up to 9999-12-31 */
#define USAGE_DURATION_MAX 1e9               /* seconds (31 years) */
#define USAGE_AMOUNT_MAX 1e20                /* cpu_sec, memory_byte_sec, energy_j, board_energy_j */
#define USAGE_LINK_BYTES_MAX (INT64_C(1) << 53) /* exact in a double and in any JSON reader */

/* Which optional amounts an entry carries (an absent one is not a zero: it is unknown). */
enum {
        USAGE_HAS_CPU = 1 << 0,
        USAGE_HAS_MEMORY = 1 << 1,
        USAGE_HAS_ENERGY = 1 << 2,
        USAGE_HAS_LINK = 1 << 3,
};

struct usage_entry {
        char workload[USAGE_NAME_MAX + 1];   /* "" when none */
        char tenant[USAGE_NAME_MAX + 1];     /* "" when none: the node's word, see below */
        char deployment[USAGE_NAME_MAX + 1]; /* "" when none */
        char app[USAGE_NAME_MAX + 1];        /* "" when none */
        char key[USAGE_ENTRY_KEY_MAX + 1];   /* see USAGE_ENTRY_KEY_MAX; unique in a record */
        unsigned has;                        /* USAGE_HAS_* */
        double cpu_sec, memory_byte_sec, energy_j; /* 0 when absent */
        int64_t link_bytes;                        /* 0 when absent */
};

struct usage_record {
        char meter[USAGE_METER_LEN + 1];
        int64_t interval; /* the report's number in its meter: 1, 2, ... */
        int64_t start, end; /* the node's realtime clock: informative only */
        double duration_sec; /* the node's monotonic clock */
        bool has_board_energy;
        double board_energy_j; /* 0 when absent (no board power sensor) */
        struct usage_entry entries[USAGE_ENTRIES_MAX];
        size_t n_entries;
};

/*
 * Pure: a name as an entry carries it: 1-USAGE_NAME_MAX of A-Z a-z 0-9 . _ -.
 */
bool usage_name_is_valid(const char *s);

/*
 * Pure: parse a usage.report body strictly: unknown keys, wrong types, a meter that is not
 * 32 lower-case hex digits, an interval < 1, times or amounts out of bounds (negative, not
 * finite, over the maxima above), a bad name, more than USAGE_ENTRIES_MAX entries, an entry
 * with neither workload nor app, two entries of the same key. 0 with *ret filled, or
 * -EBADMSG with *ret_reason (caller frees; may be NULL) naming where
 * ("usage.report: entries[2].cpu_sec: expected a finite number from 0 to 1e+20").
 */
int usage_record_parse(json_t *body, struct usage_record *ret, char **ret_reason);
