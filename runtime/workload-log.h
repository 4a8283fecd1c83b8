/*
 * Workload output: stdout and stderr read line by line on the event loop, rate-limited,
 * kept in a small ring for `orbitctl workload logs`, and written to the journal with
 * the workload's name, or to a bounded, rotated log file when there is no journal.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#define WORKLOAD_LOG_LINE_MAX 4096

enum log_stream { LOG_STREAM_STDOUT, LOG_STREAM_STDERR };

/* Pure: at most burst lines per interval; the rest are counted, not kept. */
struct log_ratelimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t window_start;
        unsigned used;
        uint64_t suppressed;
};

/*
 * May a line go out at now_usec? When a new window opens after lines were dropped,
 * *ret_suppressed says how many (once), so the log can say so.
 */
bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_usec, uint64_t *ret_suppressed);

/* Pure: the last lines, bounded by count and bytes. */
struct log_ring;
int log_ring_new(size_t max_lines, size_t max_bytes, struct log_ring **ret);
void log_ring_push(struct log_ring *r, uint64_t realtime_usec, enum log_stream stream,
                   const char *line, size_t len);
size_t log_ring_count(const struct log_ring *r);
/* The i-th kept line, oldest first. */
const char *log_ring_get(const struct log_ring *r, size_t i, uint64_t *ret_realtime_usec,
                         enum log_stream *ret_stream);
void log_ring_free(struct log_ring *r);

/*
 * Pure line splitter: feed bytes, get lines. A line longer than WORKLOAD_LOG_LINE_MAX
 * is cut into pieces rather than dropped or grown without bound.
 */
struct line_splitter {
        char buf[WORKLOAD_LOG_LINE_MAX];
        size_t len;
};
typedef void (*line_fn)(const char *line, size_t len, void *userdata);
void line_splitter_feed(struct line_splitter *s, const char *data, size_t n, line_fn fn,
                        void *userdata);
/* Emit what is left without a newline (at end of stream). */
void line_splitter_flush(struct line_splitter *s, line_fn fn, void *userdata);

struct workload_log_config {
        bool journal;           /* send lines to the journal */
        const char *file_dir;   /* else append to <file_dir>/<name>.log (NULL: ring only) */
        uint64_t file_max_bytes; /* rotate to <name>.log.1 beyond this */
        unsigned lines_per_sec; /* rate limit, burst of the same size */
};

struct workload_log;

int workload_log_new(sd_event *event, const char *name, const struct workload_log_config *cfg,
                     struct workload_log **ret);

/* Start reading the two pipe read ends (ownership taken; -1 for none). */
int workload_log_attach(struct workload_log *l, int stdout_read, int stderr_read);

/* Read what is left in the pipes, emit partial lines, stop watching. */
void workload_log_detach(struct workload_log *l);

/* Log a line from the agent about this workload (start, exit...), into the same places. */
void workload_log_note(struct workload_log *l, const char *line);

/* The last n lines as a JSON array of {"time": usec, "stream": "stdout", "line": "..."}. */
json_t *workload_log_tail(const struct workload_log *l, size_t n);

uint64_t workload_log_suppressed(const struct workload_log *l);

void workload_log_free(struct workload_log *l);
