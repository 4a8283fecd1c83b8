/*
 * The controller's answer to a sync (docs/protocol.md), parsed and checked before the
 * agent acts on any of it. Pure: no I/O, no state; fuzzed (tests/fuzz/fuzz-sync-answer).
 *
 * The answer comes from the other end of a radio link: everything is bounded, every
 * type and range checked, and one problem anywhere refuses the whole answer. Refusing
 * costs nothing: the same records go up again at the next sync and the controller
 * answers the same way (syncs are idempotent), while acting on half of a damaged answer
 * could drop records that were never stored.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto/sync-request.h"

#define LINK_ANSWER_MAX_COMMANDS 64
#define LINK_ANSWER_MAX_ACK_GROUPS 1024
#define LINK_ANSWER_MAX_ACKED_SEQS 100000
#define LINK_ANSWER_MAX_WINDOWS 256
/* The controller's own --poll-interval bound: a node told to wait longer could never be
 * reached again (nothing listens on the node). */
#define LINK_ANSWER_MAX_NEXT_SYNC_SEC (7 * 86400)
/* A contact window's start and end (unix seconds) are at most the last second of year 9999:
 * the agent turns them into microseconds on both clocks, which a larger time overflows
 * (a window "open until" 2^64 µs wrapped to 1970 and stopped every sync and download). */
#define LINK_ANSWER_MAX_PLAN_TIME INT64_C(253402300799)

struct json_ctx;
struct json_field;

/*
 * The "windows" of a contact plan, as a node takes them: an array of at most
 * LINK_ANSWER_MAX_WINDOWS {"start", "end", "rate_bps"} in range, start < end, sorted by
 * start and not overlapping. A json_field dispatcher (dest and f unused): the
 * controller checks an operator's plan with it, so it stores no plan a node refuses.
 */
int contact_plan_dispatch_windows(struct json_ctx *ctx, json_t *v, void *dest,
                                  const struct json_field *f);

struct link_answer {
        json_t *root;     /* owns everything below */
        int64_t format;   /* 1, or 2 (SYNC_FORMAT_COMPACT): what is absent did not change */
        json_t *acked;    /* [{"boot_epoch":N, "boot_id":"<32 hex>", "seq":[N, ...]}], checked */
        json_t *commands; /* envelopes (objects), verified later one by one */
        json_t *plan;     /* {"windows":[{"start","end","rate_bps"}]}, sorted, checked */
        int64_t next_sync_sec;
        int64_t server_time;
        size_t n_acked_seqs;
        /* plan and next_sync_sec are there (always in format 1); in format 2 with their tag */
        bool standing;
        json_t *trust; /* a newer trust document's envelope (a string), checked by the node; or NULL */
        json_t *desired; /* a newer desired state's envelope (an object), verified by the node; or NULL */
        char tag[SYNC_TAG_LEN + 1];
};

/*
 * Parse an answer body, of format 1 (every key there) or 2 (acked and commands when not
 * empty; contact_plan, next_sync_sec and tag together or not at all). 0, or -EBADMSG with *ret_message naming where and what ("sync
 * answer:1:57: acked[0].seq[2]: expected an integer in 1..., got a string"; a caller's
 * to free), or -ENOMEM. On success the caller owns *ret and frees it with
 * link_answer_done().
 */
int link_answer_parse(const char *text, size_t len, struct link_answer *ret, char **ret_message);

void link_answer_done(struct link_answer *a);
