/*
 * A node's sync request (docs/protocol.md): its outbox records, boot, last command and
 * status, parsed strictly by the controller; the answer's "acked" list and the answer as
 * the controller builds it (proto/sync-answer.h parses it on the node). Pure.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define API_FORMAT 1
/* The compact sync of format 2 (docs/protocol.md, "Format 2"): a node sends it only to a
 * controller that announced it (SYNC_FORMAT_HEADER), and gets a format 2 answer or 204. */
#define SYNC_FORMAT_COMPACT 2
#define SYNC_FORMAT_HEADER "Orbit-Sync"
#define SYNC_TAG_LEN 16 /* hex digits of the tag of an answer's standing part */
#define API_ID_MAX 64 /* node ids */
#define SYNC_BODY_MAX (4 * 1024 * 1024)
#define SYNC_RECORDS_MAX 1024
#define SYNC_STATUS_MAX (64 * 1024) /* the status object, serialized */
#define SYNC_COMMANDS_MAX 32        /* envelopes in one answer */
#define RECORD_KIND_MAX 47
#define RECORD_BODY_MAX (256 * 1024)

/* One outbox record of a sync request (pointers borrow from the request's root). */
struct sync_record {
        char node[API_ID_MAX + 1];
        int64_t boot_epoch;
        char boot_id[33];
        int64_t seq;
        char priority[9];
        char kind[RECORD_KIND_MAX + 1];
        int64_t time_usec, monotonic_usec;
        json_t *body; /* borrowed */
        json_t *raw;  /* the whole record, borrowed */
        int64_t format;
};

struct sync_request {
        json_t *root; /* owned */
        int64_t format;
        char node[API_ID_MAX + 1];
        int64_t boot_epoch;
        char boot_id[33];
        int64_t last_command_seq;
        char link_epoch[33]; /* the node's link state ("": a node that predates epochs) */
        struct sync_record *records; /* owned array */
        size_t n_records;
        json_t *status; /* borrowed; NULL when absent */
        bool has_boot;  /* boot_epoch and boot_id were sent (format 2 may leave them out) */
        char known[SYNC_TAG_LEN + 1]; /* format 2: the tag the node holds; "" none */
        /* the node's trust document in force (0: none; -1: not said: format 2 says it when it
         * changes) and the id of the last one it refused (update/trust.h; "" none) */
        int64_t trust_version;
        char trust_refused[17];
        /* the node's desired state (#19 item 3, proto/desired-state.h): the version in force
         * (0: none; -1: not said, as trust_version) and the last version it refused (0 none) */
        int64_t desired_version;
        int64_t desired_refused;
};

void sync_request_done(struct sync_request *r);

/*
 * Pure: parse a sync body strictly, of format 1 or 2 (its "format" says): unknown keys, wrong types, out-of-range numbers,
 * more than SYNC_RECORDS_MAX records, a status over SYNC_STATUS_MAX, and a node (of the
 * request or any record key) other than url_node are all refused. Format 2 may leave out
 * node (url_node), boot_epoch with boot_id (has_boot false), records (none) and carries
 * known. -EINVAL with
 * *ret_message (caller frees): every problem as "sync:line:column: path: message".
 */
int sync_request_parse(const char *text, size_t len, const char *url_node, struct sync_request *ret,
                       char **ret_message);

/*
 * Pure: a boot id as a sync carries it, in the records and in the answer's acks: 32
 * lower-case hex digits. len is the JSON string's length (it may hold a NUL).
 */
bool sync_boot_id_is_valid(const char *s, size_t len);

/*
 * Pure: the "acked" list of the answer: one entry per (boot_epoch, boot_id) in order of
 * first appearance, its seqs without duplicates, in request order.
 */
json_t *sync_acked_build(const struct sync_request *r);

/* json_parse_dispatch field handlers both ends share (lib/json-util.h): a sync "format"
 * (1 or 2) into an int64_t, and a tag of SYNC_TAG_LEN lower-case hex digits into a char
 * array of SYNC_TAG_LEN + 1. */
struct json_ctx;
struct json_field;
int sync_dispatch_format(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f);
int sync_dispatch_tag(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f);

/* Pure: the whole answer (references to acked, commands, contact_plan are taken). */
json_t *sync_response_new(json_t *acked, json_t *commands, json_t *contact_plan,
                          int64_t next_sync_sec, int64_t server_time);

/*
 * Pure: the tag of an answer's standing part, what stays the same from sync to sync (the
 * contact plan and next_sync_sec): 16 lower-case hex digits of FNV-1a 64 over the plan's
 * compact JSON with sorted keys and the decimal next_sync_sec. A format 2 answer carries
 * the standing part, with its tag, only when the node's "known" is another.
 */
void sync_answer_tag(const json_t *contact_plan, int64_t next_sync_sec, char ret[static SYNC_TAG_LEN + 1]);

/*
 * Pure: a format 2 answer to a request that knows the tag known ("" none): only what the
 * node does not have: acked and commands when not empty, the standing part with its tag
 * and server_time when the tag changed. *ret NULL: nothing to say (the answer is 204).
 * References to acked, commands, contact_plan are taken. 0 or -ENOMEM.
 */
int sync_response_compact(json_t *acked, json_t *commands, json_t *contact_plan, int64_t next_sync_sec,
                          int64_t server_time, const char *known, json_t **ret);
