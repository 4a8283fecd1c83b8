/*
 * The agent's event loop, run one iteration at a time so that the time each dispatch
 * holds the loop is known: the CPU time of the loop's own thread (what an input costs,
 * whatever else the machine is doing) and the wall-clock time (what a client waited).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

/* A dispatch that holds the loop longer than this (CPU time) is logged. */
#define LOOP_HOLD_WARN_USEC (100 * 1000)

struct loop_stats {
        uint64_t iterations;       /* dispatches */
        uint64_t slowest_cpu_usec; /* the most CPU time one prepare + dispatch took */
        uint64_t slowest_usec;     /* the most wall-clock time one prepare + dispatch took */
        uint64_t held_over;        /* dispatches over LOOP_HOLD_WARN_USEC of CPU */
};

/*
 * Like sd_event_loop: run until sd_event_exit, then return the exit code (or a negative
 * errno from the loop itself), keeping *stats up to date after every dispatch.
 */
int loop_run(sd_event *e, struct loop_stats *stats);

/* Pure: fold one dispatch's costs into stats; true when it held the loop too long. */
bool loop_stats_add(struct loop_stats *stats, uint64_t cpu_usec, uint64_t wall_usec);

/* {"iterations", "slowest_cpu_ms", "slowest_ms", "held_over_100ms"}; NULL on ENOMEM. */
json_t *loop_stats_json(const struct loop_stats *stats);
