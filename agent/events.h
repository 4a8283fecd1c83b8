/*
 * The outbox: events and reports on their way to the ground, in the outbox format
 * (docs/outbox-format.md). Each record is written durably to its own file before it
 * counts as queued; the controller link sends them in priority order and removes each
 * one only when the controller acknowledges it. Bounded by count and bytes: the oldest
 * low-priority records are dropped first (and counted); records that must never be lost
 * (command results, update outcomes) are never dropped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum event_priority {
        EVENT_LOW,      /* periodic reports */
        EVENT_NORMAL,   /* workload starts and exits */
        EVENT_HIGH,     /* level changes, crash loops, rollbacks */
        EVENT_CRITICAL, /* command results, update outcomes: never dropped */
        _EVENT_PRIORITY_MAX,
};

const char *event_priority_to_string(enum event_priority p);

/* Limits of the sync protocol (docs/protocol.md): a record outside them would make the
 * controller refuse every sync, so the queue never takes one. */
#define EVENT_KIND_MAX 47
#define EVENT_BODY_MAX (256u * 1024u) /* serialized, compact */
#define EVENT_BOOT_ID_MAX 32

/* Files moved aside to <dir>/corrupt/ that are kept; older ones are deleted. */
#define EVENT_QUEUE_CORRUPT_KEEP 32

struct event_record {
        /* The key: (node, boot_epoch, boot_id, seq). Records loaded from disk keep the key
         * of the boot that made them; the node is the queue's. */
        uint64_t boot_epoch;
        char boot_id[EVENT_BOOT_ID_MAX + 1];
        uint64_t seq;           /* per boot, from 1 */
        uint64_t realtime_usec; /* when it happened, by the node's clock (may be wrong) */
        uint64_t monotonic_usec;
        enum event_priority priority;
        char kind[EVENT_KIND_MAX + 1]; /* "health.level", "health.report", "workload.exit"... */
        json_t *body;                  /* owned */
        size_t wire_bytes;             /* compact JSON of the record */
        uint64_t file_bytes;           /* its file: header + wire JSON */
        bool persisted;                /* false: held in memory only (disk full or failing) */
};

struct event_queue;

struct event_queue_config {
        const char *dir;    /* NULL: memory only (tests, tools) */
        size_t max_records; /* >= 1 */
        uint64_t max_bytes; /* of record files (persisted or not yet), 0 = unbounded by bytes */
        const char *node_id;
        uint64_t boot_epoch;
        const char *boot_id; /* with a dir: 1-32 of [0-9A-Za-z] (it is part of file names) */
};

/*
 * Open the queue. With a dir (created 0700 if missing), every record file there is
 * loaded with its own key and verified; a file that does not verify, does not parse, is
 * another node's or has a name that is not a record's is moved to <dir>/corrupt/ (at most
 * EVENT_QUEUE_CORRUPT_KEEP kept), counted, logged, and reported by an "outbox.corrupt"
 * record of priority high. Leftover "*.tmp" files (writes cut short) are deleted.
 * Returns 0, -EINVAL for a bad config, or the error opening the directory.
 */
int event_queue_open(const struct event_queue_config *c, struct event_queue **ret);

/* Memory-only shorthand for event_queue_open: no files, no byte bound. */
int event_queue_new(size_t max_records, const char *node_id, uint64_t boot_epoch,
                    const char *boot_id, struct event_queue **ret);

/* Free the memory; files stay for the next open. Records held only in memory get one
 * last try to reach the disk, and are logged when they cannot. */
void event_queue_free(struct event_queue *q);

/*
 * Append an event (body ownership taken, even on failure). With a dir, the record file
 * is durable (written, fsynced, renamed, directory fsynced) before this returns 1.
 * When a bound would be passed, the oldest records of the lowest priorities up to this
 * one's (never critical) are dropped and counted; if that cannot make room, this record
 * is the least important and is dropped (counted, returns 0), or, if it is critical,
 * -ENOBUFS and nothing already queued is lost.
 * A write that fails (full disk: after dropping such records to make room and one
 * retry) keeps the record in memory only, logged and counted; it is written on a later
 * push or ack. Returns 1 queued, 0 dropped, -EINVAL for a bad kind or priority,
 * -EMSGSIZE for a body over EVENT_BODY_MAX, -ENOBUFS, -ENOMEM.
 */
int event_queue_push(struct event_queue *q, enum event_priority p, const char *kind, json_t *body,
                     uint64_t realtime_usec, uint64_t monotonic_usec);

/*
 * For the controller link: the records to send, as a JSON array of outbox records
 * (event_record_to_json), highest priority first, oldest first within a priority. Stops
 * before max_records, and before the array's compact serialization would pass max_bytes;
 * a first record larger than max_bytes is still sent, alone, so the queue never wedges.
 * An empty array when nothing is queued; NULL on allocation failure.
 */
json_t *event_queue_batch_json(struct event_queue *q, size_t max_records, size_t max_bytes);

/*
 * The controller acknowledged this record: remove it from memory and disk. 0 removed,
 * -ENOENT when no such record is queued (a duplicate ack: not an error for the caller).
 * Records held only in memory are retried to disk afterwards.
 */
int event_queue_ack(struct event_queue *q, uint64_t boot_epoch, const char *boot_id, uint64_t seq);

/* New bounds (on reload); enforced from the next push on. */
void event_queue_set_limits(struct event_queue *q, size_t max_records, uint64_t max_bytes);

size_t event_queue_count(const struct event_queue *q);
/* Records dropped since open, of every priority. */
uint64_t event_queue_dropped(const struct event_queue *q);

/* {"queued", "bytes_on_disk", "dropped": {"low","normal","high"}, "memory_only", "corrupt"} */
json_t *event_queue_stats_json(const struct event_queue *q);

/* The record in its outbox form, with the record's own key (a JSON object; caller owns it). */
json_t *event_record_to_json(const struct event_queue *q, const struct event_record *r);

/* The newest n records, newest last, optionally only kinds starting with prefix; no more
 * than about EVENT_TAIL_MAX_BYTES of them (at least one). */
#define EVENT_TAIL_MAX_BYTES (1024 * 1024)
json_t *event_queue_tail_json(const struct event_queue *q, size_t n, const char *kind_prefix);
