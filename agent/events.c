/* Events and reports: a bounded, priority-aware queue of outbox records. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "macro.h"

static const char *const priority_names[_EVENT_PRIORITY_MAX] = {
        [EVENT_LOW] = "low",
        [EVENT_NORMAL] = "normal",
        [EVENT_HIGH] = "high",
        [EVENT_CRITICAL] = "critical",
};

const char *event_priority_to_string(enum event_priority p) {
        return (unsigned) p < _EVENT_PRIORITY_MAX ? priority_names[p] : "unknown";
}

struct event_queue {
        struct event_record *records; /* oldest first */
        size_t count, max;
        uint64_t next_seq;
        uint64_t dropped;
        char node_id[65];
        uint64_t boot_epoch;
        char boot_id[33];
};

int event_queue_new(size_t max_records, const char *node_id, uint64_t boot_epoch,
                    const char *boot_id, struct event_queue **ret) {
        if (max_records == 0)
                return -EINVAL;
        struct event_queue *q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->records = calloc(max_records, sizeof(*q->records));
        if (!q->records) {
                free(q);
                return -ENOMEM;
        }
        q->max = max_records;
        q->next_seq = 1;
        snprintf(q->node_id, sizeof(q->node_id), "%s", node_id);
        snprintf(q->boot_id, sizeof(q->boot_id), "%s", boot_id);
        q->boot_epoch = boot_epoch;
        *ret = q;
        return 0;
}

void event_queue_free(struct event_queue *q) {
        if (!q)
                return;
        for (size_t i = 0; i < q->count; i++)
                json_decref(q->records[i].body);
        free(q->records);
        free(q);
}

static void drop_at(struct event_queue *q, size_t i) {
        json_decref(q->records[i].body);
        memmove(&q->records[i], &q->records[i + 1], (q->count - i - 1) * sizeof(*q->records));
        q->count--;
        q->dropped++;
}

int event_queue_push(struct event_queue *q, enum event_priority p, const char *kind, json_t *body,
                     uint64_t realtime_usec, uint64_t monotonic_usec) {
        if (!body)
                return -ENOMEM;
        if (q->count == q->max) {
                /* The oldest of the lowest priority goes, and never a critical one. */
                size_t victim = q->count;
                for (int level = EVENT_LOW; level < _EVENT_PRIORITY_MAX && victim == q->count; level++) {
                        if (level == EVENT_CRITICAL || level > (int) p)
                                break;
                        for (size_t i = 0; i < q->count; i++)
                                if ((int) q->records[i].priority == level) {
                                        victim = i;
                                        break;
                                }
                }
                if (victim == q->count) {
                        if (p == EVENT_CRITICAL) {
                                json_decref(body);
                                return -ENOBUFS;
                        }
                        /* Nothing less important is queued: this one is the least. */
                        q->dropped++;
                        json_decref(body);
                        return 0;
                }
                drop_at(q, victim);
        }
        struct event_record *r = &q->records[q->count++];
        memset(r, 0, sizeof(*r));
        r->seq = q->next_seq++;
        r->realtime_usec = realtime_usec;
        r->monotonic_usec = monotonic_usec;
        r->priority = p;
        snprintf(r->kind, sizeof(r->kind), "%s", kind);
        r->body = body;
        return 1;
}

size_t event_queue_count(const struct event_queue *q) {
        return q->count;
}

uint64_t event_queue_dropped(const struct event_queue *q) {
        return q->dropped;
}

json_t *event_record_to_json(const struct event_queue *q, const struct event_record *r) {
        return json_pack("{s:i,s:{s:s,s:I,s:s,s:I},s:s,s:s,s:I,s:I,s:O}",
                         "format", 1,
                         "key", "node", q->node_id, "boot_epoch", (json_int_t) q->boot_epoch,
                         "boot_id", q->boot_id, "seq", (json_int_t) r->seq,
                         "priority", event_priority_to_string(r->priority),
                         "kind", r->kind,
                         "time_usec", (json_int_t) r->realtime_usec,
                         "monotonic_usec", (json_int_t) r->monotonic_usec,
                         "body", r->body);
}

json_t *event_queue_tail_json(const struct event_queue *q, size_t n, const char *kind_prefix) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        /* Walk back to find the newest n matching, then emit oldest first. */
        size_t start = q->count, found = 0;
        while (start > 0 && found < n) {
                start--;
                if (!kind_prefix || strncmp(q->records[start].kind, kind_prefix, strlen(kind_prefix)) == 0)
                        found++;
        }
        for (size_t i = start; i < q->count; i++) {
                if (kind_prefix && strncmp(q->records[i].kind, kind_prefix, strlen(kind_prefix)) != 0)
                        continue;
                json_array_append_new(a, event_record_to_json(q, &q->records[i]));
        }
        return a;
}

json_t *event_queue_batch_json(struct event_queue *q, size_t max_records, size_t max_bytes) {
        json_t *a = json_array();
        size_t bytes = 0;
        for (int p = _EVENT_PRIORITY_MAX - 1; a && p >= EVENT_LOW; p--)
                for (size_t i = 0; i < q->count && json_array_size(a) < max_records; i++) {
                        if ((int) q->records[i].priority != p)
                                continue;
                        json_t *r = event_record_to_json(q, &q->records[i]);
                        char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
                        size_t n = s ? strlen(s) : 0;
                        free(s);
                        if (!r || (bytes + n > max_bytes && json_array_size(a) > 0)) {
                                json_decref(r);
                                return a;
                        }
                        bytes += n;
                        json_array_append_new(a, r);
                }
        return a;
}

int event_queue_ack(struct event_queue *q, uint64_t boot_epoch, const char *boot_id, uint64_t seq) {
        if (boot_epoch != q->boot_epoch || !boot_id || strcmp(boot_id, q->boot_id) != 0)
                return -ENOENT;
        for (size_t i = 0; i < q->count; i++)
                if (q->records[i].seq == seq) {
                        json_decref(q->records[i].body);
                        memmove(&q->records[i], &q->records[i + 1], (q->count - i - 1) * sizeof(*q->records));
                        q->count--;
                        return 0;
                }
        return -ENOENT;
}
