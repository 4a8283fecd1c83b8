/*
 * The controller link: the agent's side of docs/protocol.md. One idempotent sync per
 * contact over HTTPS with mutual TLS (libcurl's multi interface on the agent's sd-event
 * loop, no threads): the outbox records the controller has not acknowledged go up in
 * priority order, acknowledged ones are removed, signed commands come down and are
 * verified, persisted (last applied seq) before they are acted on, and answered with a
 * command.result record. The controller being unreachable is normal: the link backs off
 * with jitter and tries again, and follows the contact plan it was given.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "agent/agent-config.h"
#include "agent/events.h"
#include "agent/link-pass.h"
#include "agent/node-state.h"

struct link;

/* What the link needs from the rest of the agent. */
struct link_hooks {
        const struct agent_config *cfg; /* stays valid; replaced in place on reload */
        const struct node_state *node;
        struct event_queue *events;
        /* after every good sync (an answer parsed and accepted); may be NULL. The agent tells
         * the update manager (a paused install resumes; a trial learns the controller was
         * reached from this slot). */
        void (*synced)(void *userdata);
        struct link_pass *pass; /* the contact now: the link starts passes, both charge it;
                                 * initialised by the caller (NULL: the link's own) */
        /* the full status document for status.send (a new reference) */
        json_t *(*status)(void *userdata);
        /* carry out a verified command (agent/actions.h): 0 or -errno, and *ret_message
         * (caller frees, may stay NULL) goes up as the command.result's reason */
        int (*command)(void *userdata, const char *action, json_t *params, char **ret_message);
        /* the desired state (#19 item 3; may be NULL): an envelope an answer carried (borrowed),
         * and what the syncs say: the version in force and the last refused (false: nothing) */
        void (*desired_offer)(void *userdata, json_t *envelope);
        bool (*desired_said)(void *userdata, int64_t *ret_version, int64_t *ret_refused);
        void *userdata;
};

int link_new(sd_event *event, const struct link_hooks *hooks, struct link **ret);
void link_free(struct link *l);

/* Sync as soon as possible (new critical records, an operator asking). */
void link_sync_now(struct link *l);

/* Send the status document with the next sync, and sync soon (status.send). */
void link_send_status(struct link *l);

/* For orbitctl status and `orbitctl link`. */
json_t *link_status_json(struct link *l);

/* The window of the contact plan the link follows now that link_plan_window_within finds. */
bool link_contact_window(struct link *l, int64_t from, int64_t until, int64_t *ret_start, int64_t *ret_end);

/* ---- pure pieces, unit-tested --------------------------------------------------------- */

/*
 * The delay before the next attempt after `failures` consecutive failures: min * 2^(n-1),
 * capped at max, times a jitter factor in [0.5, 1.5) from `random01` (in [0, 1)).
 */
uint64_t link_backoff_usec(unsigned failures, uint64_t min_usec, uint64_t max_usec, double random01);

/*
 * Pure: a Retry-After header's value in seconds (RFC 9110 10.2.3, the delay-seconds form:
 * what the controller sends with 429 and 503); -EINVAL for anything else (an HTTP date, a
 * sign, junk). Values above a day are cut to a day.
 */
int link_retry_after_parse(const char *value, uint64_t *ret_sec);

/*
 * Pure: the wait after a failed sync: the backoff, or the controller's Retry-After when
 * longer (0: none said), never above max_usec (a controller cannot silence a node for longer
 * than its own backoff bound allows).
 */
uint64_t link_retry_wait_usec(uint64_t backoff_usec, uint64_t retry_after_sec, uint64_t max_usec);

/*
 * From a contact plan {"windows":[{"start","end","rate_bps"}]} (unix seconds; empty or
 * NULL: always open) and the time now, whether a window is open and, if not, the seconds
 * until the next one opens (-1: no window ahead).
 */
bool link_plan_is_open(json_t *plan, int64_t now, int64_t *ret_next_start);

/*
 * Of the plan's windows that overlap [from, until) (unix seconds), the one that closes
 * last: *ret_start and *ret_end. false when none does, or there is no plan (an empty or
 * missing plan is "always open", which is no planned pass).
 */
bool link_plan_window_within(json_t *plan, int64_t from, int64_t until, int64_t *ret_start, int64_t *ret_end);

/*
 * What parsing an answer will cost, counted as its text arrives: the places where one more
 * JSON value or member can start ('[', '{' and ',' outside strings), so that the tree a
 * parser builds stays bounded, not only the bytes (four million "0," are 8 MiB of text
 * and some 160 MiB of jansson values). Feed the chunks in order to one zeroed scan.
 */
struct link_json_scan {
        bool in_string, escaped;
        uint64_t values;
};
void link_json_scan_feed(struct link_json_scan *s, const char *p, size_t n);

/*
 * The reason a command.result carries: why, cut to the LINK_RESULT_REASON_MAX bytes the
 * controller takes (controller/api.c), never inside a UTF-8 sequence (the record could
 * not be encoded). NULL gives "".
 */
#define LINK_RESULT_REASON_MAX 1024
void link_result_reason(const char *why, char reason[static LINK_RESULT_REASON_MAX + 1]);

/*
 * What a node knows of its controller's zstd (docs/protocol.md, "Compression"), learnt
 * from the headers of each HTTP answer, for one controller URL and one run.
 */
struct link_zstd_peer {
        bool takes_zstd;        /* it said Accept-Encoding: zstd */
        uint32_t dictionary_id; /* the dictionary it named; 0: none */
        unsigned refusals;      /* 415s in a row to requests in zstd */
        bool off;               /* two of them: plain to it for the rest of the run */
        /* the sync format it said it takes (Orbit-Sync): 2 for the compact syncs of
         * docs/protocol.md, "Format 2"; 0 or 1: format 1 only */
        unsigned sync_format;
        /* it keeps what this node takes (said to it once, docs/protocol.md, "Format 2") */
        bool knows_us;
        bool said_zstd;        /* what the node said: Accept-Encoding: zstd */
        uint32_t said_dictionary_id; /* ... and its dictionary */
};

/*
 * After an HTTP answer (status, and what its headers said) to a request sent in zstd or
 * not (with the dictionary request_dictionary_id, 0: none): the peer updated; returns
 * whether to send again at once: a 415 to a request in zstd, or another failure of one
 * whose answer no longer takes what it was sent (zstd, or that dictionary).
 */
bool link_zstd_learn(struct link_zstd_peer *p, long status, bool takes_zstd, uint32_t dictionary_id,
                     bool request_zstd, uint32_t request_dictionary_id);

/*
 * After an HTTP answer whose headers said what the controller takes (said_format: its
 * Orbit-Sync, 0 when absent) to a request of format 2 (request_compact) or 1: the peer's
 * sync format updated; returns whether to send again at once, in format 1: a failed
 * request of format 2 to a controller that no longer takes it (downgraded, or another).
 */
bool link_sync_format_learn(struct link_zstd_peer *p, long status, unsigned said_format, bool request_compact);

/*
 * Whether the next request says what the node takes (Orbit-Sync, Accept-Encoding, its
 * dictionary; zstd: link.compress, dictionary_id: ours, 0 none): always to a controller of
 * before format 2 (it goes by each request's headers), else when it does not know it yet,
 * forgot it (it said what it takes to a request that did not), or the node takes
 * something else since (a reload).
 */
bool link_request_says(const struct link_zstd_peer *p, bool zstd, uint32_t dictionary_id);

/*
 * After an answer (status; said: its headers said what the controller takes) to a request
 * that said what the node takes (zstd, dictionary_id) or not: whether the controller now
 * keeps it. Call after the sync format was learnt.
 */
void link_request_said(struct link_zstd_peer *p, long status, bool request_said, bool zstd,
                       uint32_t dictionary_id, bool answer_said);

/*
 * Whether the next request goes in zstd (enabled: link.compress), and with which
 * dictionary (*ret_dictionary_id: ours when the peer named the same, else 0).
 */
bool link_zstd_request(const struct link_zstd_peer *p, bool enabled, uint32_t our_dictionary_id,
                       uint32_t *ret_dictionary_id);
