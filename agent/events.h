/*
 * Events and reports on their way to the ground: a bounded in-process queue of records
 * in the outbox format (docs/outbox-format.md). The controller link sends them; until
 * then they wait here, the oldest low-priority ones dropped first under pressure, and
 * records that must never be lost (command results, update outcomes) never dropped.
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

struct event_record {
        uint64_t seq;           /* per boot epoch, from 1 */
        uint64_t realtime_usec; /* when it happened, by the node's clock (may be wrong) */
        uint64_t monotonic_usec;
        enum event_priority priority;
        char kind[48];          /* "health.level", "health.report", "workload.exit"... */
        json_t *body;           /* owned */
};

struct event_queue;

/* max_records bounds the queue; node_id and boot ids key every record. */
int event_queue_new(size_t max_records, const char *node_id, uint64_t boot_epoch,
                    const char *boot_id, struct event_queue **ret);
void event_queue_free(struct event_queue *q);

/*
 * Append an event (body ownership taken, even on failure). When full, the oldest record
 * of the lowest priority below this one's is dropped and counted; if none can go (all
 * are critical and so is this), -ENOBUFS and nothing is lost that was already queued.
 */
int event_queue_push(struct event_queue *q, enum event_priority p, const char *kind, json_t *body,
                     uint64_t realtime_usec, uint64_t monotonic_usec);

size_t event_queue_count(const struct event_queue *q);
uint64_t event_queue_dropped(const struct event_queue *q);

/* The record in its outbox form (a JSON object; caller owns it). */
json_t *event_record_to_json(const struct event_queue *q, const struct event_record *r);

/*
 * For the link: the records to send, highest priority first and oldest first within a
 * priority, at most max_records and about max_bytes of compact JSON (a single larger
 * record still goes alone, so nothing wedges the queue). A JSON array (caller owns).
 */
json_t *event_queue_batch_json(struct event_queue *q, size_t max_records, size_t max_bytes);

/* The controller acknowledged a record: remove it. -ENOENT when unknown (a duplicate ack). */
int event_queue_ack(struct event_queue *q, uint64_t boot_epoch, const char *boot_id, uint64_t seq);

/* The newest n records, newest last, optionally only kinds starting with prefix. */
json_t *event_queue_tail_json(const struct event_queue *q, size_t n, const char *kind_prefix);
