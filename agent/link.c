/* The controller link: syncs over HTTPS (curl multi on sd-event), commands, contact plan. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/random.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "proto/body-codec.h"
#include "proto/command.h"
#include "proto/sync-answer.h"
#include "agent/link.h"
#include "agent/link-cert.h"
#include "agent/link-pace.h"
#include "agent/link-transport.h"
#include "agent/tls-time.h"
#include "agent/trusted-time.h"
#include "agent/trust-store.h"
#include "update/trust.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "lib/statefile.h"

#define LINK_STATE_FILE "link"
/* Envelopes that do not verify, reported per answer at most (the rest counted, logged). */
#define UNTRUSTED_REPORTS_PER_ANSWER 8
#define RESPONSE_MAX (8 * 1024 * 1024)
#define RESPONSE_STEP (256 * 1024) /* made writable at a time (pages) */
/* The largest answer the protocol allows has about 6500: acks of 1024 records each of
 * another boot (5 each), 64 envelopes (4 each), 256 windows (4 each). */
#define RESPONSE_VALUES_MAX 16384
/* At most this much of an answer is taken in one dispatch of the event loop; the transfer
 * is paused and resumed at the next one, so a controller sending fast never holds the
 * loop (each byte is scanned and copied: tens of ms per MiB in a sanitizer build). */
#define RESPONSE_BYTES_PER_DISPATCH (256 * 1024)
/* After a renewal in the window failed with an answer (a controller that does not renew,
 * or refused): the next try (agent/link-cert.h). */
#define RENEW_RETRY_USEC (3600ULL * 1000000ULL)
#define RENEW_ANSWER_MAX (64 * 1024)

/* A record in flight: only those can be acknowledged by the answer. */
struct sent_key {
        uint64_t boot_epoch, seq;
        char boot_id[33];
        bool acked; /* by this answer already: a copy costs nothing more */
};

static int sent_key_compare(const void *a, const void *b) {
        const struct sent_key *x = a, *y = b;
        if (x->boot_epoch != y->boot_epoch)
                return x->boot_epoch < y->boot_epoch ? -1 : 1;
        int c = strcmp(x->boot_id, y->boot_id);
        if (c != 0)
                return c;
        return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

struct link {
        sd_event *event;
        struct link_hooks h;
        CURLM *multi; /* its connection cache keeps the TLS connection between syncs */
        CURLSH *share; /* TLS sessions, so a new connection (the next pass) resumes one */
        sd_event_source *curl_timer, *sync_timer;

        /* the sync in flight */
        CURL *easy;
        struct curl_slist *headers;
        char curl_error[CURL_ERROR_SIZE]; /* curl's own words on why the sync failed */
        char *request;
        size_t request_len, request_plain_len;
        char *response;
        size_t response_len; /* in a mapping of RESPONSE_MAX + 1 bytes: never copied */
        size_t response_writable; /* its first bytes made writable so far */
        bool response_too_big;
        /* A zstd answer: its bytes as they came (in a mapping of RESPONSE_MAX), decoded into
         * response as the dispatch budget allows; the transfer waits (paused, or its end
         * held back in done_result) while some are left. */
        struct body_decoder *decoder;
        char *wire;
        size_t wire_len, wire_decoded;
        size_t wire_writable; /* as response_writable */
        bool decode_pending, done_pending;
        CURLcode done_result;
        char *answer_problem; /* why the answer's coding was refused, or NULL */
        /* the answer's headers */
        enum body_coding answer_coding;
        char answer_coding_name[32]; /* an unknown coding, for the message */
        bool answer_coding_unknown, answer_headers, answer_accepts_zstd;
        uint32_t answer_dictionary_id;
        bool answer_said;           /* it said what the controller takes */
        unsigned answer_sync_format; /* its Orbit-Sync */
        uint64_t answer_retry_after_sec; /* its Retry-After, 0: none */
        /* how this sync's request went */
        bool request_compact; /* in format 2 */
        bool request_boot;    /* with the boot */
        bool request_said;    /* with what the node takes (docs/protocol.md, "Format 2") */
        bool request_zstd;
        uint32_t request_dictionary_id;
        size_t received_this_dispatch;
        sd_event_source *resume_defer; /* resumes a transfer paused for the budget above */
        struct link_json_scan response_scan;
        size_t records_in_flight;
        size_t acked_this_sync;
        bool batch_cut;          /* the batch in flight left records behind */
        double compress_ratio;   /* JSON bytes per wire byte of the last compressed request */
        struct link_pace pace;   /* the upload goodput: how much the next batch carries */
        struct link_pass *pass;  /* the contact now: h.pass, or own_pass without one */
        struct link_pass own_pass;
        bool upload_spent;       /* this pass's upload budget stopped records (logged once) */
        struct sent_key *sent; /* the keys of the records in flight, sorted */
        bool status_in_flight;
        uint64_t sync_started_usec; /* monotonic: when the sync in flight began */
        uint64_t last_sync_usec;    /* how long the last sync that ended took, ok or failed */

        /* zstd (docs/protocol.md, "Compression"): what the controller at peer_url said in
         * the headers of its last answer, for this run only: every start begins plain. */
        char *peer_url;
        struct link_zstd_peer peer;
        bool zstd_retrying;     /* this sync repeats one the controller refused for its coding */
        bool boot_told;         /* a good sync told peer_url this boot (format 2 leaves it out) */
        /* the trust document (#18 item 2): the id of the one refused last ("" none), and what
         * a good sync told peer_url (version -1: nothing yet); format 2 says them when they change */
        char trust_refused[TRUST_ID_LEN + 1], trust_told_refused[TRUST_ID_LEN + 1];
        char trust_failed[TRUST_ID_LEN + 1]; /* the last one this node could not save (told once) */
        int64_t trust_told_version;
        int64_t request_trust_version; /* what this sync says, -1 nothing */
        /* the desired state (#19 item 3): what the controller was told, what this sync says
         * (-1: nothing) */
        int64_t desired_told_version, desired_told_refused;
        int64_t request_desired_version, request_desired_refused;
        char request_trust_refused[TRUST_ID_LEN + 1];
        char tag[SYNC_TAG_LEN + 1]; /* of the standing part of its last answer with one; "" none */
        struct body_dictionary *dictionary; /* link.zstd_dictionary, loaded */
        char *dictionary_path;              /* ... from this path (reloads compare) */

        /* persisted */
        uint64_t last_command_seq;
        char link_epoch[COMMAND_LINK_EPOCH_MAX + 1]; /* this link state's id (proto/command.h) */
        /* Payloads without an epoch are taken only by a link state that predates epochs (an
         * upgraded node, until its first command signed for its epoch): one made anew cannot
         * tell them from envelopes signed before it lost its state. */
        bool unepoched_ok;
        json_t *plan;

        /* scheduling */
        unsigned failures;
        bool sync_again; /* more records wait, or something asked for a sync */
        bool send_status;
        uint64_t next_sync_usec;
        int64_t next_sync_sec; /* from the controller */

        /* The commands of the last answer, verified and applied one per dispatch so that
         * an answer full of envelopes never holds the event loop (each costs a signature
         * check); the next sync is scheduled once they are all done. */
        json_t *pending_commands;
        size_t pending_next;
        sd_event_source *command_defer;
        struct signature_keyring *answer_keyring; /* loaded once per answer */
        char *answer_keyring_error;               /* why it could not be, or NULL */
        uint64_t after_commands_delay_usec;

        /* envelopes refused before their signature verified, reported once per run */
        uint64_t refused[64];
        size_t n_refused, refused_next;
        unsigned untrusted_this_answer;

        /* statistics */
        uint64_t acks_ignored;
        uint64_t syncs_ok, syncs_failed, records_acked, commands_done, commands_failed,
                commands_rejected, bytes_up, bytes_down;
        uint64_t requests_zstd, answers_zstd, bytes_up_plain, bytes_down_plain;
        uint64_t last_ok_realtime_usec;
        int64_t peer_not_after; /* notAfter of the controller's certificate (tls-time.h) */
        char last_error[512];
        uint64_t connections_opened; /* TCP (and TLS) connections the syncs opened */
        char tcp_congestion[LINK_TCP_CONGESTION_MAX + 1]; /* on the last one, as the kernel says */
        char congestion_warned[LINK_TCP_CONGESTION_MAX + 1]; /* said once per name */

        /* The client certificate (agent/link-cert.h, docs/security.md "Node certificates") */
        struct link_cert_choice cert; /* in use */
        char *cert_cfg_seen;          /* link.cert when it was chosen: a reload may change it */
        bool cert_fresh;              /* another certificate: a new connection, no session resumed */
        bool cert_expired_said;       /* the controller answered "certificate-expired" */
        bool renewing;                /* the request in flight asks for a certificate */
        bool renew_skip_once;         /* a renewal of an expired one failed: a sync, then again */
        uint64_t renew_not_before_usec; /* monotonic: after a refused renewal in the window */
        char *renew_answer;
        size_t renew_answer_len;
        char renew_error[256];        /* why the last renewal failed, "" none */
        char renewed_from[LINK_CERT_SERIAL_MAX + 1]; /* the serial a trial replaces */
};

static uint64_t now_mono(struct link *l) {
        uint64_t t = 0;
        (void) sd_event_now(l->event, CLOCK_MONOTONIC, &t);
        return t;
}

/* The time of the link's records (agent/trusted-time.h). */
static uint64_t now_real_usec(void) {
        return (uint64_t) trusted_clock_now_usec();
}

/* ---- pure pieces ----------------------------------------------------------------------- */

uint64_t link_backoff_usec(unsigned failures, uint64_t min_usec, uint64_t max_usec, double random01) {
        uint64_t d = min_usec;
        for (unsigned i = 1; i < failures && d < max_usec; i++)
                d *= 2;
        if (d > max_usec)
                d = max_usec;
        if (random01 < 0 || random01 >= 1)
                random01 = 0.5;
        return (uint64_t) ((double) d * (0.5 + random01));
}

int link_retry_after_parse(const char *value, uint64_t *ret_sec) {
        if (!value || *value < '0' || *value > '9')
                return -EINVAL;
        uint64_t v = 0;
        for (; *value >= '0' && *value <= '9'; value++)
                v = v > 86400 ? v : v * 10 + (uint64_t) (*value - '0');
        value += strspn(value, " \t");
        if (*value)
                return -EINVAL;
        *ret_sec = v > 86400 ? 86400 : v;
        return 0;
}

uint64_t link_retry_wait_usec(uint64_t backoff_usec, uint64_t retry_after_sec, uint64_t max_usec) {
        uint64_t d = backoff_usec;
        if (retry_after_sec > 0 && retry_after_sec * 1000000ULL > d)
                d = retry_after_sec * 1000000ULL;
        return d > max_usec ? max_usec : d;
}

bool link_plan_is_open(json_t *plan, int64_t now, int64_t *ret_next_start) {
        json_t *windows = plan ? json_object_get(plan, "windows") : NULL;
        int64_t next = -1;
        if (!json_is_array(windows) || json_array_size(windows) == 0) {
                if (ret_next_start)
                        *ret_next_start = -1;
                return true;
        }
        size_t i;
        json_t *w;
        json_array_foreach(windows, i, w) {
                int64_t start = json_integer_value(json_object_get(w, "start"));
                int64_t end = json_integer_value(json_object_get(w, "end"));
                if (start <= now && now < end) {
                        if (ret_next_start)
                                *ret_next_start = -1;
                        return true;
                }
                if (start > now && (next < 0 || start < next))
                        next = start;
        }
        if (ret_next_start)
                *ret_next_start = next;
        return false;
}

bool link_plan_window_within(json_t *plan, int64_t from, int64_t until, int64_t *ret_start, int64_t *ret_end) {
        json_t *windows = plan ? json_object_get(plan, "windows") : NULL;
        bool found = false;
        int64_t best_start = 0, best_end = 0;
        size_t i;
        json_t *w;
        json_array_foreach(windows, i, w) {
                int64_t start = json_integer_value(json_object_get(w, "start"));
                int64_t end = json_integer_value(json_object_get(w, "end"));
                if (start >= until || end <= from || end <= start)
                        continue;
                if (!found || end > best_end) {
                        best_start = start;
                        best_end = end;
                        found = true;
                }
        }
        if (ret_start)
                *ret_start = best_start;
        if (ret_end)
                *ret_end = best_end;
        return found;
}

/* The contact window open now: its start (-1: no plan, or no window open) and end. */
static int64_t plan_open_window(json_t *plan, int64_t now, int64_t *ret_end) {
        int64_t start;
        if (!link_plan_window_within(plan, now, now + 1, &start, ret_end)) {
                *ret_end = -1;
                return -1;
        }
        return start;
}

/* Which pass this is (link-pass.h), with the budgets as configured now (a reload or a
 * config.set changes them). A learned pass ends after a pause of two sync intervals (the
 * controller's next_sync_sec, else poll_interval_sec) and a timeout without a good sync:
 * syncs at the pace the controller asked for are one contact, not a pass each. */
static void pass_track(struct link *l) {
        const struct agent_link_config *c = &l->h.cfg->link;
        l->pass->up_budget = (uint64_t) c->upload_budget_kib * 1024;
        atomic_store(&l->pass->down_budget, (uint64_t) c->download_budget_mib * 1024 * 1024);
        int64_t end, start = plan_open_window(l->plan, trusted_clock_now(NULL), &end);
        int64_t interval = l->next_sync_sec ? l->next_sync_sec : c->poll_interval_sec;
        if (interval < c->min_sync_interval_sec)
                interval = c->min_sync_interval_sec;
        uint64_t gap = (uint64_t) (2 * interval + c->timeout_sec) * 1000000ULL;
        if (link_pass_track(l->pass, start, end, now_mono(l), gap, (uint64_t) c->pass_max_sec * 1000000ULL)) {
                l->upload_spent = false;
                log_debug("link: pass %" PRIu64 " begins (%s)", (uint64_t) atomic_load(&l->pass->number),
                          start >= 0 ? "a window of the contact plan" : "learned");
        }
}

void link_json_scan_feed(struct link_json_scan *s, const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char c = p[i];
                if (s->in_string) {
                        if (s->escaped)
                                s->escaped = false;
                        else if (c == '\\')
                                s->escaped = true;
                        else if (c == '"')
                                s->in_string = false;
                } else if (c == '"')
                        s->in_string = true;
                else if (c == '[' || c == '{' || c == ',')
                        s->values++;
        }
}

void link_result_reason(const char *why, char reason[static LINK_RESULT_REASON_MAX + 1]) {
        snprintf(reason, LINK_RESULT_REASON_MAX + 1, "%s", why ? why : "");
        size_t n = strlen(reason);
        if (why && n < strlen(why) && ((unsigned char) why[n] & 0xC0) == 0x80) {
                while (n > 0 && ((unsigned char) reason[n - 1] & 0xC0) == 0x80)
                        n--;
                if (n > 0)
                        n--; /* the lead byte of the character cut */
                reason[n] = '\0';
        }
}

bool link_zstd_learn(struct link_zstd_peer *p, long status, bool takes_zstd, uint32_t dictionary_id,
                     bool request_zstd, uint32_t request_dictionary_id) {
        p->takes_zstd = takes_zstd;
        p->dictionary_id = dictionary_id;
        bool good = status == 200 || status == 204;
        if (good)
                p->refusals = 0;
        if (!request_zstd || good)
                return false;
        if (status == 415) {
                if (++p->refusals >= 2)
                        p->off = true;
                return true;
        }
        return !takes_zstd || (request_dictionary_id && request_dictionary_id != dictionary_id);
}

bool link_sync_format_learn(struct link_zstd_peer *p, long status, unsigned said_format, bool request_compact) {
        p->sync_format = said_format;
        return request_compact && status >= 300 && said_format < SYNC_FORMAT_COMPACT;
}

bool link_request_says(const struct link_zstd_peer *p, bool zstd, uint32_t dictionary_id) {
        return p->sync_format < SYNC_FORMAT_COMPACT || !p->knows_us || p->said_zstd != zstd ||
               p->said_dictionary_id != dictionary_id;
}

void link_request_said(struct link_zstd_peer *p, long status, bool request_said, bool zstd,
                       uint32_t dictionary_id, bool answer_said) {
        if (!request_said) {
                if (answer_said) /* it does not know us (restarted): say it again */
                        p->knows_us = false;
                return;
        }
        if (status >= 200 && status < 300 && p->sync_format >= SYNC_FORMAT_COMPACT) {
                p->knows_us = true;
                p->said_zstd = zstd;
                p->said_dictionary_id = dictionary_id;
        }
}

bool link_zstd_request(const struct link_zstd_peer *p, bool enabled, uint32_t our_dictionary_id,
                       uint32_t *ret_dictionary_id) {
        *ret_dictionary_id = our_dictionary_id && p->dictionary_id == our_dictionary_id ? our_dictionary_id : 0;
        return enabled && p->takes_zstd && !p->off;
}

/* ---- persisted state -------------------------------------------------------------------- */

static int state_save(struct link *l) {
        json_auto_t *o = json_pack("{s:i, s:I, s:s, s:b, s:O?}", "format", 1, "last_command_seq",
                                   (json_int_t) l->last_command_seq, "link_epoch", l->link_epoch,
                                   "unepoched_ok", l->unepoched_ok, "contact_plan", l->plan);
        if (!o)
                return -ENOMEM;
        int r = statefile_save_json(l->h.cfg->state_dir, LINK_STATE_FILE, o);
        if (r < 0)
                log_error("link: cannot save %s/%s: %s", l->h.cfg->state_dir, LINK_STATE_FILE,
                          strerror(-r));
        return r;
}

/* A new link epoch: commands signed for the old one are refused from now on, whatever
 * their seq, so losing last_command_seq can no longer let a captured command run twice. */
static int epoch_new(struct link *l, const char *why) {
        uint8_t b[COMMAND_LINK_EPOCH_MAX / 2];
        size_t done = 0;
        while (done < sizeof(b)) {
                ssize_t n = getrandom(b + done, sizeof(b) - done, 0);
                if (n < 0 && errno != EINTR)
                        return log_error_errno(errno, "link: getrandom");
                done += n > 0 ? (size_t) n : 0;
        }
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(l->link_epoch + 2 * i, 3, "%02x", b[i]);
        if (why)
                log_warning("link: %s: starting link epoch %s with command sequence %" PRIu64
                            "; the controller re-signs what it has not sent for it, and commands "
                            "signed for the old epoch are refused",
                            why, l->link_epoch, l->last_command_seq);
        else
                log_info("link: link epoch %s", l->link_epoch);
        return state_save(l);
}

static int state_load(struct link *l) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        enum statefile_source source = STATEFILE_SOURCE_CURRENT;
        int r = statefile_load(l->h.cfg->state_dir, LINK_STATE_FILE, &text, &len, &source);
        if (r == -ENOENT)
                return epoch_new(l, NULL);
        char why[PATH_MAX + 128];
        if (r < 0) {
                /* The last applied seq is unknown: safe with a new epoch (it was a refusal to
                 * start, which cut the node off for good). */
                snprintf(why, sizeof(why), "%s/%s: no copy verifies (%s), the last applied command is unknown",
                         l->h.cfg->state_dir, LINK_STATE_FILE, strerror(-r));
                return epoch_new(l, why);
        }
        json_error_t err;
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err), *plan = NULL;
        int format;
        json_int_t seq;
        const char *epoch = NULL;
        int unepoched_ok = 0;
        if (!o || json_unpack_ex(o, &err, JSON_STRICT, "{s:i, s:I, s?s, s?b, s?o}", "format", &format,
                                 "last_command_seq", &seq, "link_epoch", &epoch, "unepoched_ok", &unepoched_ok,
                                 "contact_plan", &plan) < 0 ||
            format != 1 || seq < 0 || (epoch && !command_link_epoch_is_valid(epoch))) {
                json_decref(o);
                snprintf(why, sizeof(why), "%s/%s: malformed (%s), the last applied command is unknown",
                         l->h.cfg->state_dir, LINK_STATE_FILE, o ? err.text : "not JSON");
                return epoch_new(l, why);
        }
        l->last_command_seq = (uint64_t) seq;
        if (plan && json_is_object(plan))
                l->plan = json_incref(plan);
        if (epoch)
                snprintf(l->link_epoch, sizeof(l->link_epoch), "%s", epoch);
        l->unepoched_ok = unepoched_ok;
        json_decref(o);
        if (!epoch) {
                /* a state from before epochs: its seq holds, so the commands of a controller
                 * from before epochs too, until one signed for the new epoch comes */
                l->unepoched_ok = true;
                return epoch_new(l, NULL);
        }
        if (source == STATEFILE_SOURCE_PREVIOUS) {
                /* The last good copy may be one command behind the one that was lost. */
                l->unepoched_ok = false;
                snprintf(why, sizeof(why), "%s/%s was restored from its previous copy, which may miss "
                         "the last applied command", l->h.cfg->state_dir, LINK_STATE_FILE);
                return epoch_new(l, why);
        }
        return 0;
}

/* ---- the client certificate (agent/link-cert.h) ------------------------------------------ */

static void cert_state_path(struct link *l, const char *name, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s", l->h.cfg->state_dir, name);
}

static void format_utc(int64_t t, char buf[static 32]) {
        struct tm tm;
        time_t tt = (time_t) t;
        if (!gmtime_r(&tt, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, 32, "%lld", (long long) t);
}

static void cert_choose(struct link *l) {
        const struct agent_link_config *c = &l->h.cfg->link;
        struct link_cert_choice was = l->cert;
        link_cert_choose(l->h.cfg->state_dir, c->cert, c->key, l->h.node->node_id, true, &l->cert);
        free(l->cert_cfg_seen);
        l->cert_cfg_seen = c->cert ? strdup(c->cert) : NULL;
        if (streq(was.cert, l->cert.cert) && streq(was.info.serial, l->cert.info.serial))
                return;
        if (was.cert[0] && !streq(was.info.serial, l->cert.info.serial))
                l->cert_fresh = true; /* not a session of the last one: the controller would see it */
        char when[32];
        format_utc(l->cert.info.not_after, when);
        if (l->cert.known)
                log_info("link: client certificate %s: serial %s, not after %s%s", l->cert.cert, l->cert.info.serial,
                         when, l->cert.trial ? " (renewed, not yet used)" : "");
}

/* The certificate in use, by trusted time and what the controller said. */
static enum link_cert_renewal cert_renewal(struct link *l) {
        if (l->cert_expired_said)
                return LINK_CERT_EXPIRED;
        if (!l->cert.known)
                return LINK_CERT_VALID; /* nothing to judge: curl says what is wrong */
        return link_cert_renewal_at(trusted_clock_now(NULL), l->cert.info.not_before, l->cert.info.not_after,
                                    l->h.cfg->link.renew_before_days * 86400);
}

static bool renew_wanted(struct link *l) {
        const char *cfg = l->h.cfg->link.cert;
        if (!cfg != !l->cert_cfg_seen || (cfg && !streq(cfg, l->cert_cfg_seen)))
                cert_choose(l); /* a reload changed link.cert */
        if (l->cert.trial)
                return false; /* the renewed one is tried first */
        enum link_cert_renewal r = cert_renewal(l);
        /* in the window, only once the certificate in use synced this run: a link that does
         * not work is not the certificate's fault, and renewing cannot mend it */
        if (r == LINK_CERT_VALID || (r == LINK_CERT_DUE && l->syncs_ok == 0))
                return false;
        if (l->renew_skip_once) {
                l->renew_skip_once = false;
                return false;
        }
        return now_mono(l) >= l->renew_not_before_usec;
}

/* A sync with the renewed certificate was good: it is the one in use from now on. */
static void cert_promote(struct link *l) {
        char next[PATH_MAX], cur[PATH_MAX], when[32];
        cert_state_path(l, LINK_CERT_NEXT_FILE, next, sizeof(next));
        cert_state_path(l, LINK_CERT_FILE, cur, sizeof(cur));
        if (rename(next, cur) < 0) {
                log_warning("link: cannot rename %s to %s: %m; it is tried again", next, cur);
                return;
        }
        /* a key left by a power cut before it was unlinked is this certificate's: the next
         * renewal makes a new one */
        char key_next[PATH_MAX];
        cert_state_path(l, LINK_CERT_NEXT_KEY_FILE, key_next, sizeof(key_next));
        (void) unlink(key_next);
        (void) fsync_parent_dir(cur);
        struct link_cert_info info = l->cert.info;
        format_utc(info.not_after, when);
        log_notice("link: client certificate serial %s (not after %s) in use%s%s", info.serial, when,
                   l->renewed_from[0] ? "; it replaces serial " : "", l->renewed_from);
        json_t *body = json_pack("{s:s, s:I, s:s?}", "serial", info.serial, "not_after", (json_int_t) info.not_after,
                                 "replaces", l->renewed_from[0] ? l->renewed_from : NULL);
        if (body)
                (void) event_queue_push(l->h.events, EVENT_HIGH, "link.cert_renewed", body, now_real_usec(),
                                        now_mono(l));
        l->renewed_from[0] = '\0';
        cert_choose(l);
}

/* The controller refused the renewed certificate: back to the one that works. */
static void cert_drop_trial(struct link *l, const char *why) {
        char next[PATH_MAX];
        cert_state_path(l, LINK_CERT_NEXT_FILE, next, sizeof(next));
        log_warning("link: the controller refused the renewed certificate serial %s (%s): removed; the last one "
                    "is used", l->cert.info.serial, why);
        json_t *body = json_pack("{s:s, s:s}", "serial", l->cert.info.serial, "reason", why);
        if (body)
                (void) event_queue_push(l->h.events, EVENT_HIGH, "link.cert_refused", body, now_real_usec(),
                                        now_mono(l));
        (void) unlink(next);
        (void) fsync_parent_dir(next);
        l->renew_not_before_usec = now_mono(l) + RENEW_RETRY_USEC;
        cert_choose(l);
}

/* ---- commands ----------------------------------------------------------------------------- */

/* The result of a command: critical (never dropped) for what a signer we trust sent;
 * high for envelopes that did not verify, so that a controller sending forgeries cannot
 * fill the outbox with records that are never dropped. */
static void push_result_prio(struct link *l, enum event_priority prio, uint64_t seq, const char *action,
                             const char *status, const char *why) {
        char reason[LINK_RESULT_REASON_MAX + 1];
        link_result_reason(why, reason);
        json_t *body = json_pack("{s:I, s:s, s:s*}", "seq", (json_int_t) seq, "status", status,
                                 "reason", reason[0] ? reason : NULL);
        if (body)
                (void) event_queue_push(l->h.events, prio, "command.result", body,
                                        now_real_usec(), now_mono(l));
        if (streq(status, "done"))
                l->commands_done++;
        else if (streq(status, "failed"))
                l->commands_failed++;
        else
                l->commands_rejected++;
        log_notice("link: command %" PRIu64 " (%s): %s%s%s", seq, action ? action : "?", status,
                   reason[0] ? ": " : "", reason);
}

static void push_result(struct link *l, uint64_t seq, const char *action, const char *status,
                        const char *reason) {
        push_result_prio(l, EVENT_CRITICAL, seq, action, status, reason);
}

/* Returns whether a command.result was queued (a replay already answered queues none). */
static bool handle_command(struct link *l, json_t *envelope, struct signature_keyring *kr,
                           const char *keyring_error) {
        _cleanup_free_ char *why = NULL;
        json_int_t env_seq = json_integer_value(json_object_get(envelope, "seq"));
        int r;
        if (!kr) {
                char reason[512];
                snprintf(reason, sizeof(reason), "command keyring %s: %s",
                         l->h.cfg->link.command_keyring_dir, keyring_error ? keyring_error : "not loaded");
                push_result(l, (uint64_t) env_seq, NULL, "rejected", reason);
                return false; /* our own configuration: nothing to hurry up */
        }
        struct command c = {};
        struct command_verify_options o = {
                .node = l->h.node->node_id,
                .last_applied_seq = l->last_command_seq,
                .link_epoch = l->link_epoch,
                .require_epoch = !l->unepoched_ok,
                .now = l->h.cfg->link.check_command_time ? trusted_clock_now(NULL) : SIGNATURE_NOW_UNKNOWN,
                .clock_skew_sec = l->h.cfg->link.clock_skew_sec,
                .keyring = kr,
        };
        r = command_envelope_verify(envelope, &o, &c, &why);
        if (r < 0) {
                /*
                 * A signed, parsed command for us that is only out of time or malformed in
                 * its params still moves the seq on, so it is not offered again. Anything
                 * whose signature did not verify never moves it: a forged seq must not
                 * block the real commands.
                 */
                /* command_envelope_verify fills the seq only for such a command (after
                 * its signature, node and seq checks), whatever errno it returns */
                bool trusted = c.seq != 0;
                if (trusted && c.seq > l->last_command_seq) {
                        l->last_command_seq = c.seq;
                        (void) state_save(l);
                } else if (!trusted) {
                        /* It will be offered again at every sync: say so once, a few per
                         * answer at most, and never hurry a sync for it. */
                        for (size_t i = 0; i < l->n_refused; i++)
                                if (l->refused[i] == (uint64_t) env_seq) {
                                        command_done(&c);
                                        return false;
                                }
                        l->refused[l->refused_next] = (uint64_t) env_seq;
                        l->refused_next = (l->refused_next + 1) % ELEMENTSOF(l->refused);
                        if (l->n_refused < ELEMENTSOF(l->refused))
                                l->n_refused++;
                        if (++l->untrusted_this_answer > UNTRUSTED_REPORTS_PER_ANSWER) {
                                l->commands_rejected++;
                                log_debug("link: command %" PRIu64 " refused (%s); not reported: too many this answer",
                                          (uint64_t) env_seq, why ? why : strerror(-r));
                                command_done(&c);
                                return false;
                        }
                        push_result_prio(l, EVENT_HIGH, c.seq ? c.seq : (uint64_t) env_seq,
                                         c.action[0] ? c.action : NULL, "rejected", why ? why : strerror(-r));
                        command_done(&c);
                        return false;
                }
                push_result(l, c.seq ? c.seq : (uint64_t) env_seq, c.action[0] ? c.action : NULL,
                            "rejected", why ? why : strerror(-r));
                command_done(&c);
                return true;
        }
        /* Persist before acting: a crash now loses the command, never runs it twice. */
        uint64_t previous = l->last_command_seq;
        l->last_command_seq = c.seq;
        if (c.link_epoch[0])
                l->unepoched_ok = false; /* the controller signs for epochs: no more without */
        if (state_save(l) < 0) {
                l->last_command_seq = previous;
                push_result(l, c.seq, c.action, "failed", "cannot persist the command sequence");
                command_done(&c);
                return true;
        }
        _cleanup_free_ char *message = NULL;
        r = l->h.command(l->h.userdata, c.action, c.params, &message);
        push_result(l, c.seq, c.action, r >= 0 ? "done" : "failed", message ? message : r < 0 ? strerror(-r) : "");
        command_done(&c);
        return true;
}

/* ---- the sync ------------------------------------------------------------------------------ */

static void schedule(struct link *l, uint64_t delay_usec);
static int easy_common(struct link *l, CURL *e, const char *url);

/*
 * One reservation of an answer's largest size, nothing behind it yet: a growing heap
 * buffer copied itself (4 MiB, then 8 MiB) within one dispatch, over 100 ms of CPU in a
 * slow build. PROT_NONE is not counted against the commit limit (vm.overcommit_memory=2
 * on a flight image): grow makes the part in use writable as the answer arrives.
 */
static char *reserve(size_t size) {
        void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

/* The first need bytes of a reservation of RESPONSE_MAX + 1 writable, in RESPONSE_STEP
 * steps; false (logged) when the kernel has no memory for them. */
static bool grow(char *base, size_t *writable, size_t need) {
        if (need <= *writable)
                return true;
        size_t want = (need + RESPONSE_STEP - 1) / RESPONSE_STEP * RESPONSE_STEP;
        if (want > RESPONSE_MAX + 1)
                want = RESPONSE_MAX + 1;
        if (mprotect(base, want, PROT_READ | PROT_WRITE) < 0) {
                log_warning("link: no memory for the answer's next %zu bytes: %m", want - *writable);
                return false;
        }
        *writable = want;
        return true;
}

_printf_(2, 3) static void answer_refused(struct link *l, const char *fmt, ...) {
        va_list ap;
        free(l->answer_problem);
        va_start(ap, fmt);
        if (vasprintf(&l->answer_problem, fmt, ap) < 0)
                l->answer_problem = NULL;
        va_end(ap);
}

/*
 * Decodes what waits of a zstd answer, at most the dispatch's budget of output (each
 * byte is scanned like a plain answer's); what is left waits for on_resume. The decoder
 * writes at most RESPONSE_MAX + 1 bytes into the mapping of that size, so a bomb is cut
 * there. false: the answer is refused and the transfer is to end.
 */
static bool decode_step(struct link *l) {
        while (l->received_this_dispatch < RESPONSE_BYTES_PER_DISPATCH) {
                if (l->wire_decoded == l->wire_len && !body_decoder_has_output(l->decoder))
                        break;
                size_t used = 0, made = 0, room = RESPONSE_BYTES_PER_DISPATCH - l->received_this_dispatch;
                _cleanup_free_ char *why = NULL;
                size_t need = l->response_len + room + 1;
                if (!grow(l->response, &l->response_writable, need < RESPONSE_MAX + 1 ? need : RESPONSE_MAX + 1)) {
                        l->decode_pending = false;
                        answer_refused(l, "no memory for the answer");
                        return false;
                }
                int r = body_decoder_feed(l->decoder, l->wire + l->wire_decoded, l->wire_len - l->wire_decoded,
                                          &used, l->response + l->response_len, room, &made, &why);
                link_json_scan_feed(&l->response_scan, l->response + l->response_len, made);
                l->wire_decoded += used;
                l->response_len += made;
                l->received_this_dispatch += made;
                if (r < 0) {
                        l->decode_pending = false;
                        l->response_too_big = r == -EFBIG;
                        answer_refused(l, "%s: %s", r == -EFBIG ? "answer too big" : "malformed zstd answer",
                                       why ? why : strerror(-r));
                        return false;
                }
                if (l->response_scan.values > RESPONSE_VALUES_MAX) {
                        l->decode_pending = false;
                        l->response_too_big = true;
                        return false;
                }
                if (used == 0 && made == 0)
                        break;
        }
        l->response[l->response_len] = '\0'; /* the decoder stopped at RESPONSE_MAX */
        l->decode_pending = l->wire_decoded < l->wire_len || body_decoder_has_output(l->decoder);
        if (l->decode_pending)
                (void) sd_event_source_set_enabled(l->resume_defer, SD_EVENT_ONESHOT);
        return true;
}

static size_t on_response_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct link *l = userdata;
        size_t n = size * nmemb;
        if (l->received_this_dispatch >= RESPONSE_BYTES_PER_DISPATCH || l->decode_pending) {
                /* curl keeps this chunk and hands it over again after on_resume */
                (void) sd_event_source_set_enabled(l->resume_defer, SD_EVENT_ONESHOT);
                return CURL_WRITEFUNC_PAUSE;
        }
        if (l->answer_coding_unknown) {
                answer_refused(l, "malformed answer: in a content coding this node does not take (%s)",
                               l->answer_coding_name);
                return 0;
        }
        if (!l->response) {
                if (!(l->response = reserve(RESPONSE_MAX + 1)))
                        return 0;
                l->response_writable = 0;
        }
        l->received_this_dispatch += n;
        if (l->answer_coding == BODY_CODING_ZSTD) {
                if (l->wire_len + n > RESPONSE_MAX) {
                        l->response_too_big = true;
                        return 0;
                }
                if (!l->wire) {
                        if (!(l->wire = reserve(RESPONSE_MAX + 1)))
                                return 0;
                        l->wire_writable = 0;
                }
                if (!grow(l->wire, &l->wire_writable, l->wire_len + n))
                        return 0;
                if (!l->decoder && body_decoder_new(RESPONSE_MAX, l->dictionary, &l->decoder) < 0)
                        return 0;
                memcpy(l->wire + l->wire_len, ptr, n);
                l->wire_len += n;
                return decode_step(l) ? n : 0;
        }
        link_json_scan_feed(&l->response_scan, ptr, n);
        if (l->response_len + n > RESPONSE_MAX || l->response_scan.values > RESPONSE_VALUES_MAX) {
                l->response_too_big = true;
                return 0; /* abort the transfer */
        }
        if (!grow(l->response, &l->response_writable, l->response_len + n + 1))
                return 0; /* abort the transfer: the sync fails, nothing is lost */
        memcpy(l->response + l->response_len, ptr, n);
        l->response_len += n;
        l->response[l->response_len] = '\0';
        return n;
}

/* The answer's headers: its content coding, and what the controller takes (remembered
 * when the sync ends). Each response after a 1xx starts again. */
static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata) {
        struct link *l = userdata;
        size_t n = size * nitems;
        char line[512];
        if (n >= 5 && memcmp(buffer, "HTTP/", 5) == 0) {
                l->answer_headers = true;
                l->answer_coding = BODY_CODING_IDENTITY;
                l->answer_coding_unknown = l->answer_accepts_zstd = l->answer_said = false;
                l->answer_coding_name[0] = '\0';
                l->answer_dictionary_id = 0;
                l->answer_sync_format = 0;
                l->answer_retry_after_sec = 0;
                return n;
        }
        if (n >= sizeof(line))
                return n; /* none of ours is that long */
        memcpy(line, buffer, n);
        line[n] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        char *value = strchr(line, ':');
        if (!value)
                return n;
        *value++ = '\0';
        value += strspn(value, " \t");
        if (strcasecmp(line, "Content-Encoding") == 0) {
                /* one coding, said once: anything else is not for us to guess */
                enum body_coding c;
                if (l->answer_coding_name[0] || body_coding_parse(value, &c) < 0)
                        l->answer_coding_unknown = true;
                else
                        l->answer_coding = c;
                snprintf(l->answer_coding_name, sizeof(l->answer_coding_name), "%s", value);
        } else if (strcasecmp(line, "Accept-Encoding") == 0) {
                l->answer_accepts_zstd = l->answer_accepts_zstd || body_codec_accepts_zstd(value);
                l->answer_said = true;
        } else if (strcasecmp(line, BODY_CODEC_DICTIONARY_HEADER) == 0) {
                uint32_t id;
                if (body_dictionary_id_parse(value, &id) >= 0)
                        l->answer_dictionary_id = id;
                l->answer_said = true;
        } else if (strcasecmp(line, SYNC_FORMAT_HEADER) == 0) {
                l->answer_sync_format = streq(value, "2") ? SYNC_FORMAT_COMPACT : 1;
                l->answer_said = true;
        } else if (strcasecmp(line, "Retry-After") == 0) {
                uint64_t sec;
                if (link_retry_after_parse(value, &sec) >= 0)
                        l->answer_retry_after_sec = sec;
        }
        return n;
}

static void sync_cleanup(struct link *l) {
        if (l->resume_defer)
                (void) sd_event_source_set_enabled(l->resume_defer, SD_EVENT_OFF);
        l->received_this_dispatch = 0;
        if (l->easy) {
                curl_multi_remove_handle(l->multi, l->easy);
                curl_easy_cleanup(l->easy);
                l->easy = NULL;
        }
        curl_slist_free_all(l->headers);
        l->headers = NULL;
        free(l->request);
        l->request = NULL;
        free(l->sent);
        l->sent = NULL;
        l->acked_this_sync = 0;
        if (l->response)
                (void) munmap(l->response, RESPONSE_MAX + 1);
        l->response = NULL;
        l->response_len = 0;
        l->response_too_big = false;
        body_decoder_free(l->decoder);
        l->decoder = NULL;
        if (l->wire)
                (void) munmap(l->wire, RESPONSE_MAX + 1);
        l->wire = NULL;
        l->wire_len = l->wire_decoded = 0;
        l->decode_pending = l->done_pending = false;
        free(l->answer_problem);
        l->answer_problem = NULL;
        l->answer_headers = l->answer_accepts_zstd = l->answer_coding_unknown = false;
        l->answer_coding = BODY_CODING_IDENTITY;
        l->answer_coding_name[0] = '\0';
        l->answer_dictionary_id = 0;
        l->answer_said = false;
        l->answer_sync_format = 0;
        l->request_compact = l->request_boot = l->request_said = false;
        l->request_zstd = false;
        l->request_dictionary_id = 0;
        l->response_scan = (struct link_json_scan) {};
        l->status_in_flight = false;
        free(l->renew_answer);
        l->renew_answer = NULL;
        l->renew_answer_len = 0;
        l->renewing = false;
}

static json_t *json_decref_null(json_t *v) {
        json_decref(v);
        return NULL;
}

static json_t *status_summary(struct link *l) {
        if (l->send_status && l->h.status)
                return l->h.status(l->h.userdata);
        return NULL;
}

/* link.zstd_dictionary, loaded when its path changes (at the first sync, after a reload);
 * a dictionary that cannot be loaded leaves zstd without one, never the link down. */
static void dictionary_update(struct link *l) {
        const char *path = l->h.cfg->link.zstd_dictionary;
        if ((!path && !l->dictionary_path) || (path && l->dictionary_path && streq(path, l->dictionary_path)))
                return;
        body_dictionary_free(l->dictionary);
        l->dictionary = NULL;
        free(l->dictionary_path);
        l->dictionary_path = path ? strdup(path) : NULL;
        if (!path)
                return;
        _cleanup_free_ char *why = NULL;
        int r = body_dictionary_load(path, &l->dictionary, &why);
        if (r < 0)
                log_warning("link: %s; zstd goes on without a dictionary", why ? why : strerror(-r));
        else
                log_info("link: zstd dictionary %" PRIu32 " from %s", body_dictionary_id(l->dictionary), path);
}

/* The request body in zstd if the controller said it takes it, with the dictionary if it
 * named ours; plain otherwise, or when that is no larger. */
static int request_encode(struct link *l) {
        uint32_t dict_id;
        l->compress_ratio = 1; /* sent as it is, unless compressed below */
        if (!link_zstd_request(&l->peer, l->h.cfg->link.compress, body_dictionary_id(l->dictionary), &dict_id))
                return 0;
        const struct body_dictionary *dict = dict_id ? l->dictionary : NULL;
        char *z = NULL;
        size_t zlen = 0;
        int r = body_compress(l->request, l->request_len, dict, BODY_CODEC_LEVEL, &z, &zlen);
        if (r < 0)
                return r;
        if (zlen + BODY_CODEC_HEADER_COST >= l->request_len) { /* a tiny body goes plain */
                free(z);
                return 0;
        }
        free(l->request);
        l->request = z;
        l->compress_ratio = (double) l->request_len / (double) zlen;
        l->request_len = zlen;
        l->request_zstd = true;
        l->request_dictionary_id = body_dictionary_id(dict);
        return 0;
}

/*
 * Each new connection's congestion control (link.tcp_congestion): what the node sends is
 * most of a pass, and Reno or CUBIC at 10% loss carry a tenth of the link. A name the
 * kernel does not offer leaves its default, said once with what it offers.
 */
static int on_socket_options(void *userdata, curl_socket_t fd, curlsocktype purpose) {
        struct link *l = userdata;
        const char *want = l->h.cfg->link.tcp_congestion;
        if (purpose != CURLSOCKTYPE_IPCXN)
                return CURL_SOCKOPT_OK;
        if (want[0] && !streq(want, LINK_TCP_CONGESTION_KERNEL) &&
            setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, want, (socklen_t) strlen(want)) < 0 &&
            !streq(l->congestion_warned, want)) {
                int e = errno;
                char offered[256] = "";
                _cleanup_fclose_ FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_congestion_control", "re");
                if (f && fgets(offered, sizeof(offered), f))
                        offered[strcspn(offered, "\n")] = '\0';
                char hint[64] = "";
                if (!link_tcp_congestion_offered(offered, want))
                        snprintf(hint, sizeof(hint), " (not loaded: modprobe tcp_%s)", want);
                log_warning("link: tcp_congestion \"%s\": %s%s; the kernel offers: %s; using its default",
                            want, strerror(e), hint, offered[0] ? offered : "(unknown)");
                snprintf(l->congestion_warned, sizeof(l->congestion_warned), "%s", want);
        }
        socklen_t len = sizeof(l->tcp_congestion) - 1;
        if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, l->tcp_congestion, &len) < 0)
                len = 0;
        l->tcp_congestion[len] = '\0';
        return CURL_SOCKOPT_OK;
}

/* A window's last seconds that no batch starts in: an answer must come back before it closes. */
#define LOS_MARGIN_USEC (5 * 1000000ULL)

/* -EAGAIN: the contact window closes before the smallest batch could go. */
/* What a good answer to this sync means the controller now knows. */
static void request_told(struct link *l) {
        if (l->request_boot)
                l->boot_told = true;
        if (l->request_trust_version >= 0) {
                l->trust_told_version = l->request_trust_version;
                snprintf(l->trust_told_refused, sizeof(l->trust_told_refused), "%s", l->request_trust_refused);
        }
        if (l->request_desired_version >= 0) {
                l->desired_told_version = l->request_desired_version;
                l->desired_told_refused = l->request_desired_refused;
        }
}

/* What this sync says of the desired state: format 1 always, format 2 when it changed. */
static void request_desired(struct link *l, bool compact) {
        int64_t v = -1, refused = 0;
        l->request_desired_version = -1;
        l->request_desired_refused = 0;
        if (!l->h.desired_said || !l->h.desired_said(l->h.userdata, &v, &refused))
                return;
        if (compact && !l->request_boot && v == l->desired_told_version && refused == l->desired_told_refused)
                return;
        l->request_desired_version = v;
        l->request_desired_refused = refused;
}

static json_t *request_desired_add(struct link *l, json_t *o) {
        if (o && l->request_desired_version >= 0 &&
            (json_object_set_new(o, "desired_version", json_integer(l->request_desired_version)) < 0 ||
             (l->request_desired_refused > 0 &&
              json_object_set_new(o, "desired_refused", json_integer(l->request_desired_refused)) < 0)))
                return json_decref_null(o);
        return o;
}

/* A trust document a sync answer carried: applied, or refused once per version (a record
 * either way; the controller hears the refusal in the next sync and stops sending it). */
static void trust_offered(struct link *l, const char *text, size_t len) {
        _cleanup_free_ char *why = NULL;
        int64_t version = -1, previous = trust_store_version();
        int r = trust_store_offer(text, len, &version, &why);
        if (r == 0)
                return;
        json_t *body;
        if (r > 0) {
                body = json_pack("{s:I, s:I}", "version", (json_int_t) version, "previous", (json_int_t) previous);
                if (body)
                        (void) event_queue_push(l->h.events, EVENT_CRITICAL, "trust.updated", body, now_real_usec(),
                                                now_mono(l));
                /* the next answer's commands: with the new anchors */
                signature_keyring_free(l->answer_keyring);
                l->answer_keyring = NULL;
                free(l->answer_keyring_error);
                l->answer_keyring_error = NULL;
                return;
        }
        log_warning("link: trust document v%" PRId64 " refused: %s", version, why ? why : strerror(-r));
        char id[TRUST_ID_LEN + 1];
        trust_text_id(text, len, id);
        /* What the document earned is said to the controller (its id), which stops sending it.
         * What this node failed to do (save it, or its floor reset: a full or read-only disk)
         * is not: the document comes again, and is applied once the node can save it. */
        bool earned = r == -EBADMSG || r == -ESTALE || r == -EKEYREJECTED || r == -EKEYEXPIRED ||
                      r == -EKEYREVOKED;
        char *seen = earned ? l->trust_refused : l->trust_failed;
        if (streq(id, seen))
                return;
        snprintf(seen, TRUST_ID_LEN + 1, "%s", id);
        char reason[LINK_RESULT_REASON_MAX + 1];
        link_result_reason(why ? why : strerror(-r), reason);
        body = json_pack("{s:I, s:s, s:I, s:s}", "version", (json_int_t) version, "id", id, "in_force",
                         (json_int_t) previous, "reason", reason);
        if (body)
                (void) event_queue_push(l->h.events, EVENT_HIGH, "trust.refused", body, now_real_usec(), now_mono(l));
}

static int sync_start(struct link *l) {
        const struct agent_link_config *c = &l->h.cfg->link;
        if (!l->peer_url || !streq(l->peer_url, c->url)) {
                /* another controller: plain until it says otherwise */
                free(l->peer_url);
                l->peer_url = strdup(c->url);
                l->peer = (struct link_zstd_peer) {};
                l->boot_told = false;
                l->trust_told_version = -1;
                l->trust_told_refused[0] = '\0';
                l->desired_told_version = -1;
                l->tag[0] = '\0';
        }
        dictionary_update(l);
        pass_track(l);
        int64_t end, now = trusted_clock_now(NULL), left = plan_open_window(l->plan, now, &end) >= 0 ? end - now : -1;
        /* Sized to finish in a quarter of the timeout at the measured goodput, and before the
         * window closes: a batch cut by the timeout is lost whole and sent again. */
        /* (a plan kept from before its times were bounded may end too far to count in µs) */
        int64_t left_usec = left < 0 ? -1 : left > INT64_MAX / 1000000 ? INT64_MAX : left * 1000000LL;
        size_t budget = link_pace_batch_bytes(&l->pace, SIZE_MAX / 64, (uint64_t) c->timeout_sec * 1000000ULL / 4,
                                              left_usec, LOS_MARGIN_USEC);
        /* the goodput is of bytes on the wire; the batch is cut in JSON bytes: zstd makes
         * the same upload carry this many times more (the last request's ratio) */
        double plain = (double) budget * (l->compress_ratio > 1 ? l->compress_ratio : 1);
        /* room for the rest of the request, but never less than one batch: with
         * link.max_sync_kib 4 (the least it takes) a batch of 0 bytes read as "the window
         * closes too soon", and the node never synced while it had records */
        size_t max_plain = (size_t) c->max_sync_kib * 1024 - 4096;
        if (max_plain < LINK_PACE_MIN_BYTES)
                max_plain = LINK_PACE_MIN_BYTES;
        budget = plain > (double) max_plain ? max_plain : (size_t) plain;
        if (budget == 0 && event_queue_count(l->h.events) > 0)
                return -EAGAIN;
        /* what this pass may still upload: without room, a sync carries no records (it
         * still brings the commands down and says the node lives) */
        size_t room = link_pass_upload_room(l->pass);
        bool no_room = room < LINK_PACE_MIN_BYTES;
        if (no_room && !l->upload_spent && event_queue_count(l->h.events) > 0) {
                l->upload_spent = true;
                log_notice("link: this pass's upload budget is spent (link.upload_budget_kib = %" PRId64
                           "): records wait for the next pass", c->upload_budget_kib);
        }
        if (room < budget)
                budget = room;
        json_t *records = no_room ? json_array()
                                  : event_queue_batch_json(l->h.events, (size_t) c->max_records_per_sync,
                                                           budget ? budget : LINK_PACE_MIN_BYTES);
        if (!records)
                return -ENOMEM;
        l->records_in_flight = json_array_size(records);
        l->batch_cut = event_queue_count(l->h.events) > l->records_in_flight;
        l->sent = calloc(l->records_in_flight + 1, sizeof(*l->sent));
        if (!l->sent) {
                json_decref(records);
                return -ENOMEM;
        }
        size_t ri;
        json_t *rec;
        json_array_foreach(records, ri, rec) {
                json_t *key = json_object_get(rec, "key");
                l->sent[ri].boot_epoch = (uint64_t) json_integer_value(json_object_get(key, "boot_epoch"));
                l->sent[ri].seq = (uint64_t) json_integer_value(json_object_get(key, "seq"));
                snprintf(l->sent[ri].boot_id, sizeof(l->sent[ri].boot_id), "%s",
                         json_string_value(json_object_get(key, "boot_id")) ?: "");
        }
        qsort(l->sent, l->records_in_flight, sizeof(*l->sent), sent_key_compare);
        json_t *status = status_summary(l);
        l->status_in_flight = status != NULL;
        json_t *o;
        l->request_compact = l->peer.sync_format >= SYNC_FORMAT_COMPACT;
        if (l->request_compact) {
                /* format 2: only what the controller does not have (docs/protocol.md) */
                l->request_boot = !l->boot_told;
                int64_t tv = trust_store_version();
                bool trust = l->request_boot || tv != l->trust_told_version ||
                             !streq(l->trust_refused, l->trust_told_refused);
                l->request_trust_version = trust ? tv : -1;
                snprintf(l->request_trust_refused, sizeof(l->request_trust_refused), "%s",
                         trust ? l->trust_refused : "");
                o = json_pack("{s:i, s:I}", "format", SYNC_FORMAT_COMPACT, "last_command_seq",
                              (json_int_t) l->last_command_seq);
                /* the link epoch goes with the boot: it changes only when the agent starts */
                if (o && l->request_boot &&
                    (json_object_set_new(o, "boot_epoch", json_integer((json_int_t) l->h.node->boot_epoch)) < 0 ||
                     json_object_set_new(o, "boot_id", json_string(l->h.node->boot_id)) < 0 ||
                     json_object_set_new(o, "link_epoch", json_string(l->link_epoch)) < 0))
                        o = json_decref_null(o);
                if (o && json_array_size(records) > 0 && json_object_set(o, "records", records) < 0)
                        o = json_decref_null(o);
                if (o && status && json_object_set(o, "status", status) < 0)
                        o = json_decref_null(o);
                if (o && l->tag[0] && json_object_set_new(o, "known", json_string(l->tag)) < 0)
                        o = json_decref_null(o);
                if (o && l->request_trust_version >= 0 &&
                    json_object_set_new(o, "trust_version", json_integer(l->request_trust_version)) < 0)
                        o = json_decref_null(o);
                if (o && l->request_trust_refused[0] &&
                    json_object_set_new(o, "trust_refused", json_string(l->request_trust_refused)) < 0)
                        o = json_decref_null(o);
                request_desired(l, true);
                o = request_desired_add(l, o);
                json_decref(records);
                json_decref(status);
        } else {
                l->request_boot = true;
                l->request_trust_version = trust_store_version();
                snprintf(l->request_trust_refused, sizeof(l->request_trust_refused), "%s", l->trust_refused);
                o = json_pack("{s:i, s:s, s:I, s:s, s:I, s:s, s:I, s:o, s:o?}", "format", 1, "node",
                              l->h.node->node_id, "boot_epoch", (json_int_t) l->h.node->boot_epoch, "boot_id",
                              l->h.node->boot_id, "last_command_seq", (json_int_t) l->last_command_seq,
                              "link_epoch", l->link_epoch, "trust_version",
                              (json_int_t) l->request_trust_version, "records", records, "status", status);
                if (o && l->trust_refused[0] &&
                    json_object_set_new(o, "trust_refused", json_string(l->trust_refused)) < 0)
                        o = json_decref_null(o);
                request_desired(l, false);
                o = request_desired_add(l, o);
        }
        if (!o)
                return -ENOMEM;
        l->request = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(o);
        if (!l->request)
                return -ENOMEM;
        l->request_len = strlen(l->request);
        l->request_plain_len = l->request_len;
        int r = request_encode(l);
        if (r < 0)
                return r;

        char url[2048];
        snprintf(url, sizeof(url), "%s/v1/nodes/%s/sync", c->url, l->h.node->node_id);
        l->curl_error[0] = '\0';
        l->easy = curl_easy_init();
        if (!l->easy)
                return -ENOMEM;
        for (size_t i = 0; link_request_headers[i]; i++) {
                struct curl_slist *h = curl_slist_append(l->headers, link_request_headers[i]);
                if (!h)
                        return -ENOMEM;
                l->headers = h;
        }
        {
                /* What the node takes, said until the controller keeps it (format 2: once) */
                uint32_t dict_id = c->compress ? body_dictionary_id(l->dictionary) : 0;
                l->request_said = link_request_says(&l->peer, c->compress, dict_id);
                char h[64];
                const char *said[4] = {SYNC_FORMAT_HEADER ": 2", NULL, NULL, NULL};
                size_t n_said = 1;
                if (c->compress) {
                        said[n_said++] = "Accept-Encoding: zstd";
                        if (dict_id) {
                                snprintf(h, sizeof(h), BODY_CODEC_DICTIONARY_HEADER ": %" PRIu32, dict_id);
                                said[n_said++] = h;
                        }
                }
                for (size_t i = 0; l->request_said && i < n_said; i++) {
                        struct curl_slist *n = curl_slist_append(l->headers, said[i]);
                        if (!n)
                                return -ENOMEM;
                        l->headers = n;
                }
                if (l->request_zstd) {
                        struct curl_slist *n = curl_slist_append(l->headers, "Content-Encoding: zstd");
                        if (!n)
                                return -ENOMEM;
                        l->headers = n;
                }
        }
        CURL *e = l->easy;
        if (easy_common(l, e, url) < 0 ||
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, l->headers) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response_data) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, l) != CURLE_OK ||
            /* the answer's coding is ours to undo, bounded (on_response_data), never curl's */
            curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERDATA, l) != CURLE_OK)
                return -EINVAL;
        if (curl_multi_add_handle(l->multi, e) != CURLM_OK)
                return -EIO;
        l->sync_started_usec = now_mono(l);
        return 0;
}

/* What a sync and a certificate request share: the POST of l->request to url over the
 * link's TLS, with the client certificate in use. */
static int easy_common(struct link *l, CURL *e, const char *url) {
        const struct agent_link_config *c = &l->h.cfg->link;
        if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, l->request) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) l->request_len) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CAINFO, c->ca) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSLCERT, l->cert.cert) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSLKEY, l->cert.key) != CURLE_OK ||
            /* another certificate than the connection's (or the session's) was made with:
             * a new connection and a full handshake, so the controller sees the new one.
             * (curl 7.88 already matches connections and sessions by the certificate's
             * path, and a renewed one is always at another path; not every curl did.) */
            curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, l->cert_fresh ? 1L : 0L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, l->cert_fresh ? 0L : 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
            tls_time_setup(e, &l->peer_not_after) != CURLE_OK ||
            /* HTTP/1.1 is all the controller speaks: no ALPN list in every ClientHello */
            curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSL_ENABLE_ALPN, 0L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSLVERSION,
                             c->tls_max_minor == 2 ? (long) (CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2)
                                                   : (long) CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long) c->connect_timeout_sec) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TIMEOUT, (long) c->timeout_sec) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PRIVATE, l) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_ERRORBUFFER, l->curl_error) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SHARE, l->share) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_socket_options) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, l) != CURLE_OK)
                return -EINVAL;
        return 0;
}

/* ---- certificate renewal (docs/protocol.md, "Certificate renewal") ------------------------- */

static size_t on_renew_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct link *l = userdata;
        size_t n = size * nmemb;
        if (l->renew_answer_len + n > RENEW_ANSWER_MAX)
                return 0;
        char *b = realloc(l->renew_answer, l->renew_answer_len + n + 1);
        if (!b)
                return 0;
        memcpy(b + l->renew_answer_len, ptr, n);
        l->renew_answer = b;
        l->renew_answer_len += n;
        b[l->renew_answer_len] = '\0';
        return n;
}

/* The key of the renewal: the one made for it before (a power cut, a lost answer), or a
 * new P-256 key, on disk (0600, durably) before its CSR leaves. */
static int renew_key(struct link *l, char **ret, char **ret_reason) {
        char path[PATH_MAX], tmp[PATH_MAX + 8];
        cert_state_path(l, LINK_CERT_NEXT_KEY_FILE, path, sizeof(path));
        size_t len;
        _cleanup_free_ char *key = NULL;
        if (read_file_bounded(path, LINK_CERT_PEM_MAX, &key, &len) >= 0) {
                _cleanup_free_ char *csr = NULL;
                if (link_cert_csr(key, l->h.node->node_id, &csr, NULL) >= 0) {
                        *ret = TAKE_PTR(key);
                        return 0;
                }
                log_warning("link: %s is not a good key: a new one", path);
        }
        free(key);
        key = NULL;
        int r = link_cert_keygen(&key, ret_reason);
        if (r < 0)
                return r;
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        (void) unlink(tmp); /* made anew with the mode below */
        r = write_file_durable(path, key, strlen(key), 0600);
        if (r < 0) {
                explicit_bzero(key, strlen(key));
                return message_set(ret_reason, r, "cannot write %s: %s", path, strerror(-r));
        }
        log_info("link: a new key for the renewal of the client certificate: %s", path);
        *ret = TAKE_PTR(key);
        return 0;
}

static int renew_start(struct link *l) {
        _cleanup_free_ char *key = NULL, *csr = NULL, *why = NULL;
        int r = renew_key(l, &key, &why);
        if (r >= 0)
                r = link_cert_csr(key, l->h.node->node_id, &csr, &why);
        if (key)
                explicit_bzero(key, strlen(key));
        if (r < 0) {
                snprintf(l->renew_error, sizeof(l->renew_error), "%s", why ? why : strerror(-r));
                log_warning("link: cannot ask for a new client certificate: %s", l->renew_error);
                return r;
        }
        json_t *o = json_pack("{s:i, s:s}", "format", 1, "csr", csr);
        l->request = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!l->request)
                return -ENOMEM;
        l->request_len = l->request_plain_len = strlen(l->request);
        char url[2048];
        snprintf(url, sizeof(url), "%s/v1/nodes/%s/certificate", l->h.cfg->link.url, l->h.node->node_id);
        l->curl_error[0] = '\0';
        l->easy = curl_easy_init();
        if (!l->easy)
                return -ENOMEM;
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        if (!h)
                return -ENOMEM;
        l->headers = h;
        if (easy_common(l, l->easy, url) < 0 ||
            curl_easy_setopt(l->easy, CURLOPT_HTTPHEADER, l->headers) != CURLE_OK ||
            curl_easy_setopt(l->easy, CURLOPT_WRITEFUNCTION, on_renew_data) != CURLE_OK ||
            curl_easy_setopt(l->easy, CURLOPT_WRITEDATA, l) != CURLE_OK)
                return -EINVAL;
        if (curl_multi_add_handle(l->multi, l->easy) != CURLM_OK)
                return -EIO;
        l->renewing = true;
        l->sync_started_usec = now_mono(l);
        char when[32];
        format_utc(l->cert.info.not_after, when);
        log_notice("link: asking the controller for a new client certificate (serial %s %s %s)",
                   l->cert.info.serial, cert_renewal(l) == LINK_CERT_EXPIRED ? "expired at" : "expires at", when);
        return 0;
}

/* The controller's answer to a certificate request: a certificate checked and stored for
 * the next sync to try, or why not. */
static void renew_finished(struct link *l, CURLcode result) {
        long status = 0, connects = 0;
        (void) curl_easy_getinfo(l->easy, CURLINFO_RESPONSE_CODE, &status);
        (void) curl_easy_getinfo(l->easy, CURLINFO_NUM_CONNECTS, &connects);
        if (connects > 0)
                l->connections_opened += (uint64_t) connects;
        char why[512] = "";
        json_t *a = l->renew_answer ? json_loadb(l->renew_answer, l->renew_answer_len, 0, NULL) : NULL;
        bool ok = false;
        if (result != CURLE_OK)
                snprintf(why, sizeof(why), "%s%s%s", curl_easy_strerror(result), l->curl_error[0] ? ": " : "",
                         l->curl_error);
        else if (status != 200) {
                snprintf(why, sizeof(why), "HTTP %ld: %s", status,
                         json_string_value(json_object_get(a, "message")) ?: "no message");
        } else {
                char key_path[PATH_MAX], next[PATH_MAX];
                cert_state_path(l, LINK_CERT_NEXT_KEY_FILE, key_path, sizeof(key_path));
                cert_state_path(l, LINK_CERT_NEXT_FILE, next, sizeof(next));
                const char *pem = json_string_value(json_object_get(a, "certificate"));
                _cleanup_free_ char *key = NULL, *problem = NULL, *both = NULL;
                size_t len;
                struct link_cert_info info;
                int r = read_file_bounded(key_path, LINK_CERT_PEM_MAX, &key, &len);
                if (r < 0)
                        snprintf(why, sizeof(why), "%.300s: %s", key_path, strerror(-r));
                /* The issuer is not held to the last one's: a controller may sign with a
                 * renewal CA of its own under the node CA (docs/security.md). One the
                 * controller does not take is dropped at its first sync (cert_drop_trial). */
                else if ((r = link_cert_check(pem, key, l->h.node->node_id, NULL,
                                              trusted_clock_now(NULL), l->h.cfg->link.clock_skew_sec, &info,
                                              &problem)) < 0)
                        snprintf(why, sizeof(why), "the certificate returned is refused: %s",
                                 problem ? problem : strerror(-r));
                else if (asprintf(&both, "%s%s%s", pem, pem[strlen(pem) - 1] == '\n' ? "" : "\n", key) < 0)
                        snprintf(why, sizeof(why), "out of memory");
                else {
                        char tmp[PATH_MAX + 8];
                        snprintf(tmp, sizeof(tmp), "%s.tmp", next);
                        (void) unlink(tmp);
                        r = write_file_durable(next, both, strlen(both), 0600);
                        explicit_bzero(both, strlen(both));
                        if (r < 0)
                                snprintf(why, sizeof(why), "cannot write %.300s: %s", next, strerror(-r));
                        else {
                                /* the pair is whole in one file: the key alone is of no more use */
                                (void) unlink(key_path);
                                (void) fsync_parent_dir(key_path);
                                ok = true;
                                char when[32];
                                format_utc(info.not_after, when);
                                log_notice("link: the controller issued client certificate serial %s (not after %s); "
                                           "the next sync uses it", info.serial, when);
                        }
                }
                if (key)
                        explicit_bzero(key, strlen(key));
        }
        bool expired_answer = status == 403 &&
                              streq(json_string_value(json_object_get(a, "error")) ?: "", "certificate-expired");
        json_decref(a);
        free(l->renew_answer);
        l->renew_answer = NULL;
        l->renew_answer_len = 0;
        l->renewing = false;
        if (status != 0)
                l->cert_fresh = false; /* that connection was made with the certificate in use */
        sync_cleanup(l);
        if (ok) {
                l->renew_error[0] = '\0';
                snprintf(l->renewed_from, sizeof(l->renewed_from), "%s", l->cert.info.serial);
                cert_choose(l);
                schedule(l, 0);
                return;
        }
        snprintf(l->renew_error, sizeof(l->renew_error), "%s", why);
        log_info("link: certificate renewal failed (%s)", why);
        if (expired_answer)
                l->cert_expired_said = true;
        if (cert_renewal(l) == LINK_CERT_EXPIRED) {
                /* nothing else works: a sync (which may say more), then the renewal again */
                l->renew_skip_once = true;
                l->failures++;
                l->syncs_failed++;
                snprintf(l->last_error, sizeof(l->last_error), "certificate renewal: %s", why);
                schedule(l, link_backoff_usec(l->failures, (uint64_t) l->h.cfg->link.backoff_min_sec * 1000000ULL,
                                              (uint64_t) l->h.cfg->link.backoff_max_sec * 1000000ULL,
                                              (double) random() / ((double) RAND_MAX + 1.0)));
                return;
        }
        /* in the window: the certificate still works; syncs go on, the renewal is tried later */
        l->renew_not_before_usec = now_mono(l) + RENEW_RETRY_USEC;
        schedule(l, 0);
}

/* The answer is checked whole (link-answer.c) before anything acts on it. */
static int sync_answer(struct link *l, long status, char *why, size_t size) {
        struct link_answer a;
        _cleanup_free_ char *problem = NULL;
        if (status == 204) {
                /* format 2: nothing the node does not have (204 to format 1 is not an answer) */
                if (!l->request_compact) {
                        snprintf(why, size, "malformed answer: 204 to a sync of format 1");
                        return -EBADMSG;
                }
                request_told(l);
                return 0;
        }
        int r = link_answer_parse(l->response ? l->response : "", l->response_len, &a, &problem);
        if (r >= 0 && a.format != (l->request_compact ? SYNC_FORMAT_COMPACT : API_FORMAT)) {
                snprintf(why, size, "malformed answer: format %" PRId64 " to a sync of format %d", a.format,
                         l->request_compact ? SYNC_FORMAT_COMPACT : API_FORMAT);
                link_answer_done(&a);
                return -EBADMSG;
        }
        if (r < 0) {
                /* The first problem is enough for the status line; the log has them all, once
                 * per run of failures (a broken controller answers the same at every retry). */
                if (problem && l->failures == 0)
                        log_warning("link: refused the controller's answer (%zu bytes):\n%s",
                                    l->response_len, problem);
                if (problem)
                        snprintf(why, size, "malformed answer: %.*s", (int) strcspn(problem, "\n"), problem);
                else
                        snprintf(why, size, "malformed answer: %s", strerror(-r));
                return r;
        }
        size_t i, k;
        json_t *g, *s;
        /* Only what this sync carried leaves the outbox: an ack of anything else (a confused
         * or hostile controller) would drop records the ground never stored. */
        size_t foreign = 0;
        json_array_foreach(a.acked, i, g) {
                struct sent_key key = {.boot_epoch = (uint64_t) json_integer_value(json_object_get(g, "boot_epoch"))};
                snprintf(key.boot_id, sizeof(key.boot_id), "%s", json_string_value(json_object_get(g, "boot_id")));
                json_array_foreach(json_object_get(g, "seq"), k, s) {
                        key.seq = (uint64_t) json_integer_value(s);
                        struct sent_key *hit = l->sent ? bsearch(&key, l->sent, l->records_in_flight,
                                                                 sizeof(key), sent_key_compare) : NULL;
                        if (!hit) {
                                foreign++;
                                continue;
                        }
                        if (hit->acked)
                                continue;
                        hit->acked = true;
                        if (event_queue_ack(l->h.events, key.boot_epoch, key.boot_id, key.seq) >= 0) {
                                l->records_acked++;
                                l->acked_this_sync++;
                        }
                }
        }
        if (foreign > 0) {
                l->acks_ignored += foreign;
                log_warning("link: the controller acknowledged %zu records this sync did not carry: ignored", foreign);
        }
        request_told(l);
        if (a.standing && !json_equal(a.plan, l->plan)) {
                json_decref(l->plan);
                l->plan = json_incref(a.plan);
                (void) state_save(l);
                log_info("link: new contact plan: %zu windows", json_array_size(json_object_get(a.plan, "windows")));
        }
        if (a.standing) {
                l->next_sync_sec = a.next_sync_sec;
                snprintf(l->tag, sizeof(l->tag), "%s", a.tag); /* "" in format 1 */
        }
        /* The controller's time, over TLS with its certificate verified: the node's trusted
         * time from now on (agent/trusted-time.h), before its commands are judged by it.
         * (An answer without a body, 204, tells none: the last one carries on.) */
        if (a.server_time > 0)
                trusted_clock_told(a.server_time, l->peer_not_after);
        trusted_clock_maybe_save();
        /* A newer trust document: applied before this answer's commands, which may be signed
         * by a key it brings (a rotation), and which its revocations may refuse. */
        if (a.trust)
                trust_offered(l, json_string_value(a.trust), json_string_length(a.trust));
        /* A newer desired state: verified and kept by its owner (agent/desired.h), after the
         * trust document, whose keys may be the ones that signed it. */
        if (a.desired && l->h.desired_offer) {
                l->h.desired_offer(l->h.userdata, a.desired);
                /* The controller believes this node behind: the next sync says again what it
                 * has (a compact one says it only when it changed, and the controller's record
                 * of it may be older: else it would send the one in force at every sync). */
                l->desired_told_version = -1;
        }
        /* Their results go up at once; a replay already answered asks for nothing (else a
         * controller repeating one would have the node sync back to back). They are
         * handled one per dispatch (commands_step), after this answer is done with. */
        l->untrusted_this_answer = 0;
        if (json_array_size(a.commands) > 0) {
                l->pending_commands = json_incref(a.commands);
                l->pending_next = 0;
        }
        link_answer_done(&a);
        return 0;
}

static void pending_commands_clear(struct link *l) {
        json_decref(l->pending_commands);
        l->pending_commands = NULL;
        l->pending_next = 0;
        signature_keyring_free(l->answer_keyring);
        l->answer_keyring = NULL;
        free(l->answer_keyring_error);
        l->answer_keyring_error = NULL;
        if (l->command_defer)
                (void) sd_event_source_set_enabled(l->command_defer, SD_EVENT_OFF);
}

/* One command of the last answer per dispatch; the next sync once they are all done. */
static int on_command_step(sd_event_source *s, void *userdata) {
        struct link *l = userdata;
        (void) s;
        if (!l->pending_commands) {
                (void) sd_event_source_set_enabled(l->command_defer, SD_EVENT_OFF);
                return 0;
        }
        if (l->pending_next == 0 && !l->answer_keyring && !l->answer_keyring_error) {
                /* The keyring once per answer: it is files and X.509 parsing. */
                int r = trust_store_command_keyring(l->h.cfg->link.command_keyring_dir, &l->answer_keyring,
                                                    &l->answer_keyring_error);
                if (r < 0 && !l->answer_keyring_error)
                        l->answer_keyring_error = strdup(strerror(-r));
                return 0; /* the first command at the next dispatch */
        }
        json_t *g = json_array_get(l->pending_commands, l->pending_next++);
        if (g && handle_command(l, g, l->answer_keyring, l->answer_keyring_error))
                l->sync_again = true;
        if (l->pending_next < json_array_size(l->pending_commands))
                return 0;
        pending_commands_clear(l);
        schedule(l, l->sync_again ? 0 : l->after_commands_delay_usec);
        l->sync_again = false;
        return 0;
}

/*
 * What the controller takes, from the headers of any HTTP answer (an old controller's
 * says nothing: plain from then on). Returns whether a failed compressed request is worth
 * repeating at once: a 415, or an answer that no longer takes what it was sent.
 */
static bool answer_learn(struct link *l, long status) {
        if (status == 0 || !l->answer_headers)
                return false; /* no HTTP answer: nothing learnt */
        if (l->answer_coding == BODY_CODING_ZSTD && l->decoder)
                l->answers_zstd++;
        l->bytes_down_plain += l->response_len;
        if (l->request_zstd)
                l->requests_zstd++;
        l->bytes_up_plain += l->request_plain_len;
        /* A controller of format 2 says what it takes once a connection (and in errors):
         * an answer that says nothing leaves it as it was. */
        if (!l->answer_said && status < 300) {
                l->peer.refusals = 0;
                link_request_said(&l->peer, status, l->request_said, l->h.cfg->link.compress,
                                  l->h.cfg->link.compress ? body_dictionary_id(l->dictionary) : 0, false);
                return false;
        }
        if (l->peer.takes_zstd != l->answer_accepts_zstd || l->peer.dictionary_id != l->answer_dictionary_id ||
            l->peer.sync_format != l->answer_sync_format)
                log_info("link: the controller takes %s%s, sync format %u",
                         l->answer_accepts_zstd ? "zstd" : "plain bodies only",
                         l->answer_accepts_zstd && l->answer_dictionary_id ? " with a dictionary" : "",
                         l->answer_sync_format ? l->answer_sync_format : 1);
        bool was_off = l->peer.off;
        bool again = link_zstd_learn(&l->peer, status, l->answer_accepts_zstd, l->answer_dictionary_id,
                                     l->request_zstd, l->request_dictionary_id);
        if (link_sync_format_learn(&l->peer, status, l->answer_sync_format, l->request_compact))
                again = true;
        link_request_said(&l->peer, status, l->request_said, l->h.cfg->link.compress,
                          l->h.cfg->link.compress ? body_dictionary_id(l->dictionary) : 0, true);
        if (l->peer.off && !was_off)
                log_warning("link: the controller refused zstd requests twice; plain to %s until the agent restarts",
                            l->peer_url);
        return again;
}

static void sync_finished(struct link *l, CURLcode result) {
        uint64_t ended = now_mono(l);
        l->last_sync_usec = ended > l->sync_started_usec ? ended - l->sync_started_usec : 0;
        long status = 0;
        curl_off_t up = 0, down = 0;
        long connects = 0;
        (void) curl_easy_getinfo(l->easy, CURLINFO_NUM_CONNECTS, &connects);
        if (connects > 0)
                l->connections_opened += (uint64_t) connects;
        (void) curl_easy_getinfo(l->easy, CURLINFO_RESPONSE_CODE, &status);
        (void) curl_easy_getinfo(l->easy, CURLINFO_SIZE_UPLOAD_T, &up);
        (void) curl_easy_getinfo(l->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
        l->bytes_up += (uint64_t) up;
        l->bytes_down += (uint64_t) down;
        char why[512] = "";
        int r = 0;
        /* Taken as sent before the answer is read: a status.send in it asks for the next one. */
        bool status_sent = l->status_in_flight;
        if (status_sent)
                l->send_status = false;
        _cleanup_free_ char *coding_problem = NULL;
        if (result == CURLE_OK && l->decoder && body_decoder_finish(l->decoder, &coding_problem) < 0)
                answer_refused(l, "malformed zstd answer: %s", coding_problem ? coding_problem : "incomplete");
        bool zstd_retry = answer_learn(l, status);
        if (l->answer_problem)
                snprintf(why, sizeof(why), "%s", l->answer_problem);
        else if (result != CURLE_OK && l->response_too_big)
                snprintf(why, sizeof(why), "answer too big: over %d bytes or %d JSON values",
                         RESPONSE_MAX, RESPONSE_VALUES_MAX);
        else if (result != CURLE_OK)
                snprintf(why, sizeof(why), "%s%s%s", curl_easy_strerror(result),
                         l->curl_error[0] ? ": " : "", l->curl_error);
        else if (status != 200 && status != 204) {
                json_t *e = json_loadb(l->response ? l->response : "", l->response_len, 0, NULL);
                snprintf(why, sizeof(why), "HTTP %ld: %s", status,
                         json_string_value(json_object_get(e, "message")) ?: "no message");
                /* the client certificate expired (by the controller's clock): only its
                 * renewal can help now (docs/security.md, "Node certificates") */
                if (status == 403 && streq(json_string_value(json_object_get(e, "error")) ?: "", "certificate-expired") &&
                    !l->cert_expired_said) {
                        l->cert_expired_said = true;
                        log_warning("link: the controller says the client certificate expired: it asks for a new one");
                }
                json_decref(e);
        } else
                r = sync_answer(l, status, why, sizeof(why));
        bool ok = result == CURLE_OK && (status == 200 || status == 204) && r >= 0 && !why[0];
        size_t sent = l->records_in_flight, acked = l->acked_this_sync;
        if (ok) {
                /* the upload's goodput: from the request's first byte to the answer's */
                curl_off_t pre = 0, first = 0;
                (void) curl_easy_getinfo(l->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
                (void) curl_easy_getinfo(l->easy, CURLINFO_STARTTRANSFER_TIME_T, &first);
                if (first > pre)
                        link_pace_observe(&l->pace, (uint64_t) up, (uint64_t) (first - pre));
                link_pass_sync_ok(l->pass, now_mono(l), (uint64_t) up);
                pass_track(l); /* a good sync is the pass's news: where a learned one stands */
        } else
                link_pass_sync_failed(l->pass, (uint64_t) up);
        bool cut = l->batch_cut;
        if (status != 0)
                l->cert_fresh = false; /* that connection was made with the certificate in use */
        if (ok) {
                l->cert_expired_said = false;
                if (l->cert.trial)
                        cert_promote(l);
        } else if (l->cert.trial && (status == 401 || status == 403 || result == CURLE_SSL_CERTPROBLEM))
                cert_drop_trial(l, why);
        sync_cleanup(l);
        if (!ok && zstd_retry && !l->zstd_retrying) {
                /* Not a link problem: the controller changed (restarted without zstd, or with
                 * another dictionary) since it said what it takes. Once at once, as it now says. */
                l->zstd_retrying = true;
                if (status_sent)
                        l->send_status = true; /* not delivered: with the repeat */
                l->syncs_failed++;
                snprintf(l->last_error, sizeof(l->last_error), "%s", why);
                log_info("link: the controller refused the zstd request (%s); again at once%s", why,
                         l->peer.off || !l->peer.takes_zstd ? ", plain" : "");
                schedule(l, 0);
                return;
        }
        l->zstd_retrying = false;
        if (ok) {
                l->syncs_ok++;
                if (l->failures > 0)
                        log_notice("link: controller reachable again after %u failed attempts", l->failures);
                l->failures = 0;
                l->last_ok_realtime_usec = now_real_usec();
                l->last_error[0] = '\0';
                /* A full batch that the controller took means more may wait; one it did not
                 * take is not worth repeating at once (a controller that acks nothing would
                 * have the node sync back to back). */
                if (acked > 0 && event_queue_count(l->h.events) > 0 &&
                    (cut || sent >= (size_t) l->h.cfg->link.max_records_per_sync))
                        l->sync_again = true;
                if (l->h.synced)
                        l->h.synced(l->h.userdata);
                /* at most LINK_ANSWER_MAX_NEXT_SYNC_SEC: link_answer_parse refuses more; at
                 * least the configured floor: a controller cannot keep a node syncing back to
                 * back (its own backlog can: sync_again) */
                uint64_t next = (uint64_t) (l->next_sync_sec ? l->next_sync_sec : l->h.cfg->link.poll_interval_sec);
                if (next < (uint64_t) l->h.cfg->link.min_sync_interval_sec)
                        next = (uint64_t) l->h.cfg->link.min_sync_interval_sec;
                if (l->pending_commands) {
                        /* the commands first (on_command_step), then the next sync */
                        l->after_commands_delay_usec = next * 1000000ULL;
                        l->next_sync_usec = now_mono(l);
                        (void) sd_event_source_set_enabled(l->sync_timer, SD_EVENT_OFF);
                        (void) sd_event_source_set_enabled(l->command_defer, SD_EVENT_ON);
                        return;
                }
                schedule(l, l->sync_again ? 0 : next * 1000000ULL);
                l->sync_again = false;
                return;
        }
        if (status_sent)
                l->send_status = true; /* not delivered: with the next try */
        link_pace_failed(&l->pace);
        l->syncs_failed++;
        l->failures++;
        snprintf(l->last_error, sizeof(l->last_error), "%s", why);
        uint64_t max_usec = (uint64_t) l->h.cfg->link.backoff_max_sec * 1000000ULL;
        uint64_t d = link_backoff_usec(l->failures, (uint64_t) l->h.cfg->link.backoff_min_sec * 1000000ULL, max_usec,
                                       (double) random() / ((double) RAND_MAX + 1.0));
        /* 429 or 503 with Retry-After: the controller says when it can take the node again */
        uint64_t retry_after = (status == 429 || status == 503) ? l->answer_retry_after_sec : 0;
        d = link_retry_wait_usec(d, retry_after, max_usec);
        /* Being out of contact is the normal state of a satellite: not an error. */
        if (l->failures == 1 || l->failures % 10 == 0 || retry_after)
                log_info("link: sync failed (%s); next try in %.1f s%s", why, (double) d / 1e6,
                         retry_after ? " (the controller's Retry-After)" : "");
        schedule(l, d);
}

static void check_done(struct link *l) {
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(l->multi, &left)))
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == l->easy) {
                        if (l->renewing)
                                renew_finished(l, msg->data.result);
                        else if (l->decode_pending && msg->data.result == CURLE_OK) {
                                /* all of a zstd answer is here, not all of it decoded yet */
                                l->done_pending = true;
                                l->done_result = msg->data.result;
                                (void) sd_event_source_set_enabled(l->resume_defer, SD_EVENT_ONESHOT);
                        } else
                                sync_finished(l, msg->data.result);
                }
}

/* ---- curl on the event loop -------------------------------------------------------------- */

static int on_curl_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct link *l = userdata;
        int action = (revents & EPOLLIN ? CURL_CSELECT_IN : 0) | (revents & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                     (revents & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        int running;
        l->received_this_dispatch = 0;
        (void) curl_multi_socket_action(l->multi, fd, action, &running);
        check_done(l);
        return 0;
}

static int on_resume(sd_event_source *s, void *userdata) {
        struct link *l = userdata;
        (void) s;
        if (!l->easy)
                return 0;
        l->received_this_dispatch = 0;
        if (l->decode_pending) {
                if (!decode_step(l)) {
                        sync_finished(l, CURLE_WRITE_ERROR);
                        return 0;
                }
                if (l->decode_pending)
                        return 0; /* decode_step comes back at the next dispatch */
                if (l->done_pending) {
                        l->done_pending = false;
                        sync_finished(l, l->done_result);
                        return 0;
                }
        }
        (void) curl_easy_pause(l->easy, CURLPAUSE_CONT);
        check_done(l);
        return 0;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        struct link *l = userp;
        sd_event_source *io = socketp;
        if (what == CURL_POLL_REMOVE) {
                if (io) {
                        sd_event_source_disable_unref(io);
                        (void) curl_multi_assign(l->multi, fd, NULL);
                }
                return 0;
        }
        uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
        if (io) {
                if (sd_event_source_set_io_events(io, events) < 0 ||
                    sd_event_source_set_enabled(io, SD_EVENT_ON) < 0)
                        return -1;
                return 0;
        }
        if (sd_event_add_io(l->event, &io, fd, events, on_curl_io, l) < 0)
                return -1;
        (void) sd_event_source_set_description(io, "link-curl-io");
        if (curl_multi_assign(l->multi, fd, io) != CURLM_OK) {
                sd_event_source_disable_unref(io);
                return -1;
        }
        return 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct link *l = userdata;
        int running;
        l->received_this_dispatch = 0;
        (void) curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(l);
        return 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        struct link *l = userp;
        if (timeout_ms < 0)
                return sd_event_source_set_enabled(l->curl_timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_source_set_time(l->curl_timer, now_mono(l) + (uint64_t) timeout_ms * 1000ULL) < 0 ||
            sd_event_source_set_enabled(l->curl_timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

/* ---- scheduling ------------------------------------------------------------------------------ */

static int on_sync_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct link *l = userdata;
        if (l->easy || l->pending_commands)
                return 0; /* one sync at a time; the running one (or its commands) reschedules */
        int64_t next_start;
        int64_t now = trusted_clock_now(NULL);
        if (!link_plan_is_open(l->plan, now, &next_start) && l->failures > 0) {
                /* Outside every window and the link was down: wait for the next window
                 * (or probe rarely, in case the plan is stale). */
                uint64_t probe = (uint64_t) l->h.cfg->link.backoff_max_sec * 1000000ULL;
                uint64_t until = next_start > 0 ? (uint64_t) (next_start - now) * 1000000ULL : probe;
                schedule(l, until < probe ? until : probe);
                l->failures = 0; /* a missed contact is not a failure */
                return 0;
        }
        if (renew_wanted(l)) {
                int rr = renew_start(l);
                if (rr >= 0)
                        return 0;
                sync_cleanup(l);
                l->renewing = false;
                l->renew_not_before_usec = now_mono(l) + RENEW_RETRY_USEC;
                snprintf(l->renew_error, sizeof(l->renew_error), "cannot start: %s", strerror(-rr));
        }
        int r = sync_start(l);
        if (r == -EAGAIN) {
                /* The window closes before a batch could be answered: the next one. */
                sync_cleanup(l);
                uint64_t probe = (uint64_t) l->h.cfg->link.backoff_max_sec * 1000000ULL;
                log_info("link: the contact window closes too soon for a batch; waiting for the next");
                schedule(l, probe);
                return 0;
        }
        if (r < 0) {
                snprintf(l->last_error, sizeof(l->last_error), "cannot start a sync: %s", strerror(-r));
                log_error("link: %s", l->last_error);
                sync_cleanup(l);
                l->failures++;
                schedule(l, link_backoff_usec(l->failures, (uint64_t) l->h.cfg->link.backoff_min_sec * 1000000ULL,
                                              (uint64_t) l->h.cfg->link.backoff_max_sec * 1000000ULL, 0.5));
        }
        return 0;
}

static void schedule(struct link *l, uint64_t delay_usec) {
        l->next_sync_usec = now_mono(l) + delay_usec;
        (void) sd_event_source_set_time(l->sync_timer, l->next_sync_usec);
        (void) sd_event_source_set_enabled(l->sync_timer, SD_EVENT_ONESHOT);
}

void link_send_status(struct link *l) {
        l->send_status = true;
        link_sync_now(l);
}

void link_sync_now(struct link *l) {
        if (!l)
                return;
        if (l->easy || l->pending_commands) {
                l->sync_again = true;
                return;
        }
        schedule(l, 0);
}

bool link_contact_window(struct link *l, int64_t from, int64_t until, int64_t *ret_start, int64_t *ret_end) {
        return link_plan_window_within(l ? l->plan : NULL, from, until, ret_start, ret_end);
}

json_t *link_status_json(struct link *l) {
        uint64_t now = now_mono(l);
        int64_t next_start;
        bool open = link_plan_is_open(l->plan, trusted_clock_now(NULL), &next_start);
        char summary[768];
        snprintf(summary, sizeof(summary), "%s; %" PRIu64 " syncs ok, %" PRIu64 " failed%s%s",
                 l->failures ? "controller unreachable" : l->syncs_ok ? "in contact" : "not synced yet",
                 l->syncs_ok, l->syncs_failed, l->last_error[0] ? "; last error: " : "", l->last_error);
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:f, s:b, s:I, s:s?, s:I, s:I, s:I, s:s?}",
                         "state", l->failures ? "unreachable" : "active", "summary", summary,
                         "url", l->h.cfg->link.url, "syncs_ok", (json_int_t) l->syncs_ok,
                         "syncs_failed", (json_int_t) l->syncs_failed,
                         "consecutive_failures", (json_int_t) l->failures,
                         "records_acked", (json_int_t) l->records_acked,
                         "records_queued", (json_int_t) event_queue_count(l->h.events),
                         "commands_done", (json_int_t) l->commands_done,
                         "commands_failed", (json_int_t) l->commands_failed,
                         "commands_rejected", (json_int_t) l->commands_rejected,
                         "last_command_seq", (json_int_t) l->last_command_seq,
                         "link_epoch", l->link_epoch,
                         "bytes_up", (json_int_t) l->bytes_up,
                         "next_sync_in_sec",
                         l->next_sync_usec > now ? (double) (l->next_sync_usec - now) / 1e6 : 0.0,
                         "window_open", open, "next_window_start", (json_int_t) next_start,
                         "last_error", l->last_error[0] ? l->last_error : NULL,
                         "bytes_down", (json_int_t) l->bytes_down,
                         "acks_ignored", (json_int_t) l->acks_ignored,
                         "connections_opened", (json_int_t) l->connections_opened,
                         "tcp_congestion", l->tcp_congestion[0] ? l->tcp_congestion : NULL);
        if (o) /* a sync that ended by link.timeout_sec took that long, by the agent's clock */
                json_object_set_new(o, "last_sync_sec", json_real((double) l->last_sync_usec / 1e6));
        if (o) /* the controller's sync format, as it said (1 until it says 2) */
                json_object_set_new(o, "sync_format", json_integer(l->peer.sync_format ? l->peer.sync_format : 1));
        json_t *dict_id = l->dictionary ? json_integer(body_dictionary_id(l->dictionary)) : json_null();
        json_t *peer_dict_id = l->peer.dictionary_id ? json_integer(l->peer.dictionary_id) : json_null();
        if (o)
                json_object_set_new(o, "compression",
                                    json_pack("{s:b, s:b, s:o, s:o, s:I, s:I, s:I, s:I}", "enabled",
                                              l->h.cfg->link.compress && !l->peer.off, "controller_takes_zstd",
                                              l->peer.takes_zstd, "dictionary_id", dict_id, "controller_dictionary_id",
                                              peer_dict_id, "requests_zstd", (json_int_t) l->requests_zstd,
                                              "answers_zstd", (json_int_t) l->answers_zstd, "bytes_up_plain",
                                              (json_int_t) l->bytes_up_plain, "bytes_down_plain",
                                              (json_int_t) l->bytes_down_plain));
        else {
                json_decref(dict_id);
                json_decref(peer_dict_id);
        }
        /* the sync in flight: a test cuts the link under it, an operator sees a slow one */
        if (o && l->easy) {
                uint64_t age = now > l->sync_started_usec ? now - l->sync_started_usec : 0;
                json_object_set_new(o, "sync_in_flight",
                                    json_pack("{s:I, s:I, s:f}", "records", (json_int_t) l->records_in_flight,
                                              "bytes", (json_int_t) l->request_len, "age_sec", (double) age / 1e6));
        } else if (o)
                json_object_set_new(o, "sync_in_flight", json_null());
        if (o)
                json_object_set_new(o, "certificate",
                                    json_pack("{s:s, s:o, s:o, s:s, s:b, s:b, s:s?}", "path", l->cert.cert, "serial",
                                              l->cert.known ? json_string(l->cert.info.serial) : json_null(),
                                              "not_after",
                                              l->cert.known ? json_integer(l->cert.info.not_after) : json_null(),
                                              "renewal", link_cert_renewal_to_string(cert_renewal(l)), "trial",
                                              l->cert.trial, "renewed", l->cert.renewed, "renewal_error",
                                              l->renew_error[0] ? l->renew_error : NULL));
        struct link_pass *p = l->pass;
        int64_t los = atomic_load(&p->los_usec);
        if (o)
                json_object_set_new(o, "pass",
                                    json_pack("{s:I, s:s, s:o?, s:I, s:I, s:I, s:I, s:I}", "number",
                                              (json_int_t) atomic_load(&p->number), "kind",
                                              p->window_start >= 0 ? "window" : "learned", "ends",
                                              los > 0 ? json_integer(los / 1000000) : NULL, "upload_bytes",
                                              (json_int_t) p->up_used, "upload_budget", (json_int_t) p->up_budget,
                                              "download_bytes", (json_int_t) atomic_load(&p->down_used),
                                              "download_budget", (json_int_t) atomic_load(&p->down_budget),
                                              "download_rate", (json_int_t) atomic_load(&p->down_rate)));
        return o;
}

int link_new(sd_event *event, const struct link_hooks *hooks, struct link **ret) {
        struct link *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(event);
        l->h = *hooks;
        /* a pass given is the caller's to set up (the update worker may charge it already) */
        l->pass = hooks->pass ? hooks->pass : &l->own_pass;
        if (!hooks->pass)
                link_pass_init(l->pass, 0, 0);
        int r = state_load(l);
        if (r < 0)
                goto fail;
        cert_choose(l);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                r = -EIO;
                goto fail;
        }
        l->multi = curl_multi_init();
        if (!l->multi) {
                r = -ENOMEM;
                goto fail;
        }
        /* One thread: the share needs no lock functions. */
        l->share = curl_share_init();
        if (!l->share || curl_share_setopt(l->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
                r = -ENOMEM;
                goto fail;
        }
        if (curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
            curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l) != CURLM_OK ||
            curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
            curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l) != CURLM_OK) {
                r = -EIO;
                goto fail;
        }
        r = sd_event_add_time(event, &l->curl_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_curl_timer, l);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->curl_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time(event, &l->sync_timer, CLOCK_MONOTONIC, 0, 0, on_sync_timer, l);
        /* The two steppers run at idle priority: an enabled defer source stays pending
         * with the iteration it was first enabled in, so at the default priority it is
         * dispatched before every io and timer event that became pending since, for as
         * long as it stays on. A flood of (forged) commands, each a signature check,
         * would starve the control socket and the watchdog's timer. At idle, every other
         * pending event runs between two steps. */
        if (r >= 0)
                r = sd_event_add_defer(event, &l->command_defer, on_command_step, l);
        if (r >= 0)
                r = sd_event_source_set_priority(l->command_defer, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->command_defer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(event, &l->resume_defer, on_resume, l);
        if (r >= 0)
                r = sd_event_source_set_priority(l->resume_defer, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->resume_defer, SD_EVENT_OFF);
        if (r < 0)
                goto fail;
        l->send_status = true; /* the first contact after a start says who we are */
        log_info("link: controller %s, last applied command %" PRIu64, hooks->cfg->link.url,
                 l->last_command_seq);
        *ret = l;
        return 0;
fail:
        link_free(l);
        return r;
}

void link_free(struct link *l) {
        if (!l)
                return;
        sync_cleanup(l);
        pending_commands_clear(l);
        l->command_defer = sd_event_source_disable_unref(l->command_defer);
        l->resume_defer = sd_event_source_disable_unref(l->resume_defer);
        l->sync_timer = sd_event_source_disable_unref(l->sync_timer);
        if (l->multi)
                curl_multi_cleanup(l->multi);
        if (l->share)
                curl_share_cleanup(l->share); /* after every easy handle that used it */
        l->curl_timer = sd_event_source_disable_unref(l->curl_timer);
        json_decref(l->plan);
        body_dictionary_free(l->dictionary);
        free(l->dictionary_path);
        free(l->peer_url);
        free(l->cert_cfg_seen);
        sd_event_unref(l->event);
        free(l);
}
