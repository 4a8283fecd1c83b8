/* A node's sync request, parsed strictly; the answer built (sync-request.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ident.h"
#include "lib/json-util.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "proto/command.h"
#include "proto/sync-request.h"

/* ---- sync requests ------------------------------------------------------------------- */

void sync_request_done(struct sync_request *r) {
        if (!r)
                return;
        free(r->records);
        json_decref(r->root);
        memset(r, 0, sizeof(*r));
}

static int dispatch_format(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (!json_is_integer(v) || json_integer_value(v) != API_FORMAT)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected format %d, got %s",
                                        API_FORMAT,
                                        json_is_integer(v) ? "another" : json_type_name(v));
        *(int64_t *) dest = API_FORMAT;
        return 0;
}

static int dispatch_node_id(struct json_ctx *ctx, json_t *v, void *dest,
                            const struct json_field *f) {
        if (!json_is_string(v) || !ident_is_valid(json_string_value(v), API_ID_MAX, 0) ||
            strlen(json_string_value(v)) != json_string_length(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a node id (1-%d of A-Z a-z 0-9 . _ -, not "
                                        "starting with . or -)",
                                        API_ID_MAX);
        snprintf(dest, API_ID_MAX + 1, "%s", json_string_value(v));
        return 0;
}

bool sync_boot_id_is_valid(const char *s, size_t len) {
        if (len != 32)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static int dispatch_boot_id(struct json_ctx *ctx, json_t *v, void *dest,
                            const struct json_field *f) {
        const char *s = json_string_value(v);
        if (!s || !sync_boot_id_is_valid(s, json_string_length(v)))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a boot id of 32 lower-case hex digits");
        memcpy(dest, s, 33);
        return 0;
}

/* The id of a trust document (update/trust.h): 16 lower-case hex digits. */
static int dispatch_trust_id(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        const char *s = json_string_value(v);
        if (!s || json_string_length(v) != 16 || strspn(s, "0123456789abcdef") != 16)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected 16 lower-case hex digits");
        memcpy(dest, s, 17);
        return 0;
}

static int dispatch_link_epoch(struct json_ctx *ctx, json_t *v, void *dest,
                               const struct json_field *f) {
        const char *s = json_string_value(v);
        if (!s || strlen(s) != json_string_length(v) || !command_link_epoch_is_valid(s))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a link epoch of 1-32 lower-case hex digits");
        snprintf(dest, COMMAND_LINK_EPOCH_MAX + 1, "%s", s);
        return 0;
}

static int dispatch_priority(struct json_ctx *ctx, json_t *v, void *dest,
                             const struct json_field *f) {
        static const char *const names[] = {"low", "normal", "high", "critical"};
        if (json_is_string(v))
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        if (streq(json_string_value(v), names[i])) {
                                snprintf(dest, 9, "%s", names[i]);
                                return 0;
                        }
        return json_ctx_problem(ctx, JSON_AT_VALUE,
                                "expected \"low\", \"normal\", \"high\" or \"critical\"");
}

static int dispatch_kind(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        size_t n = s ? json_string_length(v) : 0;
        bool ok = s && n >= 1 && n <= RECORD_KIND_MAX && strlen(s) == n;
        for (size_t i = 0; ok && i < n; i++)
                ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
                     s[i] == '_' || s[i] == '-';
        if (!ok)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a kind (1-%d of a-z 0-9 . _ -)", RECORD_KIND_MAX);
        snprintf(dest, RECORD_KIND_MAX + 1, "%s", s);
        return 0;
}

/* Borrow an object, bounded by its compact size (f->max). */
static int dispatch_object_borrow(struct json_ctx *ctx, json_t *v, void *dest,
                                  const struct json_field *f) {
        if (!json_is_object(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an object, got %s",
                                        json_type_name(v));
        _cleanup_free_ char *dump = json_dumps(v, JSON_COMPACT);
        if (!dump)
                return -ENOMEM;
        if (strlen(dump) > (size_t) f->max)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "object larger than %lld bytes",
                                        (long long) f->max);
        *(json_t **)dest = v;
        return 0;
}

#define REC_OFF(x) offsetof(struct sync_record, x)

static const struct json_field record_key_fields[] = {
        {"node", dispatch_node_id, REC_OFF(node), JSON_REQUIRED, NULL, 0, 0},
        {"boot_epoch", json_dispatch_int64, REC_OFF(boot_epoch), JSON_REQUIRED, NULL, 0, INT64_MAX},
        {"boot_id", dispatch_boot_id, REC_OFF(boot_id), JSON_REQUIRED, NULL, 0, 0},
        {"seq", json_dispatch_int64, REC_OFF(seq), JSON_REQUIRED, NULL, 1, INT64_MAX},
        {},
};

/* The key's fields live in the record itself: the "key" field has offset 0, so dest is
 * the record. */
static int dispatch_record_key(struct json_ctx *ctx, json_t *v, void *dest,
                               const struct json_field *f) {
        return json_dispatch_object(ctx, v, record_key_fields, dest);
}

static const struct json_field record_fields[] = {
        {"format", dispatch_format, REC_OFF(format), JSON_REQUIRED, NULL, 0, 0},
        {"key", dispatch_record_key, 0, JSON_REQUIRED, NULL, 0, 0},
        {"priority", dispatch_priority, REC_OFF(priority), JSON_REQUIRED, NULL, 0, 0},
        {"kind", dispatch_kind, REC_OFF(kind), JSON_REQUIRED, NULL, 0, 0},
        {"time_usec", json_dispatch_int64, REC_OFF(time_usec), JSON_REQUIRED, NULL, 0, INT64_MAX},
        {"monotonic_usec", json_dispatch_int64, REC_OFF(monotonic_usec), JSON_REQUIRED, NULL, 0,
         INT64_MAX},
        {"body", dispatch_object_borrow, REC_OFF(body), JSON_REQUIRED, NULL, 0, RECORD_BODY_MAX},
        {},
};

struct records_walk {
        struct sync_request *req;
        const char *url_node;
};

static int record_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct records_walk *w = userdata;
        struct sync_record *rec = &w->req->records[index];
        struct sync_record tmp = {};
        int r = json_dispatch_object(ctx, e, record_fields, &tmp);
        if (r < 0)
                return r;
        if (!streq(tmp.node, w->url_node)) {
                json_ctx_push_key(ctx, "key");
                json_ctx_push_key(ctx, "node");
                r = json_ctx_problem(ctx, JSON_AT_VALUE,
                                     "record of node \"%s\" in a sync of \"%s\"", tmp.node,
                                     w->url_node);
                json_ctx_pop(ctx);
                json_ctx_pop(ctx);
                return r;
        }
        tmp.raw = e;
        *rec = tmp;
        return 0;
}

static int dispatch_records(struct json_ctx *ctx, json_t *v, void *dest,
                            const struct json_field *f) {
        struct records_walk *w = (struct records_walk *) f->arg;
        if (json_is_array(v) && json_array_size(v) > 0 && json_array_size(v) <= SYNC_RECORDS_MAX) {
                w->req->records = calloc(json_array_size(v), sizeof(struct sync_record));
                if (!w->req->records)
                        return -ENOMEM;
        }
        int r = json_dispatch_array(ctx, v, "an array of records", SYNC_RECORDS_MAX, "records",
                                    record_element, w);
        if (r >= 0 && json_is_array(v))
                w->req->n_records = json_array_size(v);
        return r;
}

int sync_dispatch_format(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_integer(v) ||
            (json_integer_value(v) != API_FORMAT && json_integer_value(v) != SYNC_FORMAT_COMPACT))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected format %d or %d, got %s", API_FORMAT,
                                        SYNC_FORMAT_COMPACT, json_is_integer(v) ? "another" : json_type_name(v));
        *(int64_t *) dest = json_integer_value(v);
        return 0;
}

int sync_dispatch_tag(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        const char *s = json_string_value(v);
        bool ok = s && json_string_length(v) == SYNC_TAG_LEN;
        for (size_t i = 0; ok && i < SYNC_TAG_LEN; i++)
                ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
        if (!ok)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a tag of %d lower-case hex digits",
                                        SYNC_TAG_LEN);
        memcpy(dest, s, SYNC_TAG_LEN + 1);
        return 0;
}

int sync_request_parse(const char *text, size_t len, const char *url_node, struct sync_request *ret,
                       char **ret_message) {
        memset(ret, 0, sizeof(*ret));
        ret->trust_version = -1;
        ret->desired_version = -1;
        if (len > SYNC_BODY_MAX)
                return message_set(ret_message, -EFBIG, "sync body larger than %d bytes",
                                   SYNC_BODY_MAX);
        struct json_problems problems = {};
        struct json_ctx ctx = {
                .source = "sync", .text = text, .text_len = len, .problems = &problems};
        struct records_walk walk = {.req = ret, .url_node = url_node};

        /* Format 1 names everything in every request; format 2 leaves out what the
         * controller has (docs/protocol.md, "Format 2"). */
#define REQ_OFF(x) offsetof(struct sync_request, x)
        const struct json_field fields[] = {
                {"format", sync_dispatch_format, REQ_OFF(format), JSON_REQUIRED, NULL, 0, 0},
                {"node", dispatch_node_id, REQ_OFF(node), JSON_REQUIRED, NULL, 0, 0},
                {"boot_epoch", json_dispatch_int64, REQ_OFF(boot_epoch), JSON_REQUIRED, NULL, 0,
                 INT64_MAX},
                {"boot_id", dispatch_boot_id, REQ_OFF(boot_id), JSON_REQUIRED, NULL, 0, 0},
                {"last_command_seq", json_dispatch_int64, REQ_OFF(last_command_seq), JSON_REQUIRED,
                 NULL, 0, INT64_MAX},
                {"link_epoch", dispatch_link_epoch, REQ_OFF(link_epoch), 0, NULL, 0, 0},
                {"trust_version", json_dispatch_int64, REQ_OFF(trust_version), 0, NULL, 0, INT64_MAX},
                {"trust_refused", dispatch_trust_id, REQ_OFF(trust_refused), 0, NULL, 0, 0},
                {"desired_version", json_dispatch_int64, REQ_OFF(desired_version), 0, NULL, 0, INT64_MAX},
                {"desired_refused", json_dispatch_int64, REQ_OFF(desired_refused), 0, NULL, 0, INT64_MAX},
                {"records", dispatch_records, 0, JSON_REQUIRED, &walk, 0, 0},
                {"status", dispatch_object_borrow, REQ_OFF(status), JSON_NULLABLE, NULL, 0,
                 SYNC_STATUS_MAX},
                {},
        };
        const struct json_field fields_compact[] = {
                {"format", sync_dispatch_format, REQ_OFF(format), JSON_REQUIRED, NULL, 0, 0},
                {"node", dispatch_node_id, REQ_OFF(node), 0, NULL, 0, 0},
                {"boot_epoch", json_dispatch_int64, REQ_OFF(boot_epoch), 0, NULL, 0, INT64_MAX},
                {"boot_id", dispatch_boot_id, REQ_OFF(boot_id), 0, NULL, 0, 0},
                {"last_command_seq", json_dispatch_int64, REQ_OFF(last_command_seq), JSON_REQUIRED,
                 NULL, 0, INT64_MAX},
                /* with the boot (a run's first good sync in format 2: its format 1 one failed) */
                {"link_epoch", dispatch_link_epoch, REQ_OFF(link_epoch), 0, NULL, 0, 0},
                {"records", dispatch_records, 0, 0, &walk, 0, 0},
                {"status", dispatch_object_borrow, REQ_OFF(status), JSON_NULLABLE, NULL, 0,
                 SYNC_STATUS_MAX},
                {"known", sync_dispatch_tag, REQ_OFF(known), 0, NULL, 0, 0},
                {"trust_version", json_dispatch_int64, REQ_OFF(trust_version), 0, NULL, 0, INT64_MAX},
                {"trust_refused", dispatch_trust_id, REQ_OFF(trust_refused), 0, NULL, 0, 0},
                {"desired_version", json_dispatch_int64, REQ_OFF(desired_version), 0, NULL, 0, INT64_MAX},
                {"desired_refused", json_dispatch_int64, REQ_OFF(desired_refused), 0, NULL, 0, INT64_MAX},
                {},
        };
#undef REQ_OFF
        int r = -EINVAL;
        ret->root = json_parse_object(&ctx);
        if (ret->root) {
                json_t *format = json_object_get(ret->root, "format");
                bool compact = json_is_integer(format) && json_integer_value(format) == SYNC_FORMAT_COMPACT;
                r = json_dispatch_object(&ctx, ret->root, compact ? fields_compact : fields, ret);
                if (r >= 0 && compact && !json_object_get(ret->root, "node"))
                        snprintf(ret->node, sizeof(ret->node), "%s", url_node);
                ret->has_boot = json_object_get(ret->root, "boot_id") != NULL;
                if (r >= 0 && compact && ret->has_boot != (json_object_get(ret->root, "boot_epoch") != NULL)) {
                        json_ctx_push_key(&ctx, ret->has_boot ? "boot_id" : "boot_epoch");
                        json_ctx_problem(&ctx, JSON_AT_KEY, "boot_epoch and boot_id go together");
                        json_ctx_pop(&ctx);
                }
        }
        if (r == -ENOMEM)
                goto fail;
        if (r >= 0 && !streq(ret->node, url_node)) {
                json_ctx_push_key(&ctx, "node");
                json_ctx_problem(&ctx, JSON_AT_VALUE, "\"%s\" is not the node of the URL (\"%s\")",
                                 ret->node, url_node);
                json_ctx_pop(&ctx);
        }
        if (problems.count == 0 && r >= 0)
                return 0;
        r = -EINVAL;
fail:
        if (ret_message)
                *ret_message = r == -ENOMEM ? NULL : json_problems_to_message("sync", &problems);
        sync_request_done(ret);
        return r;
}

json_t *sync_acked_build(const struct sync_request *r) {
        json_t *acked = json_array();
        if (!acked)
                return NULL;
        for (size_t i = 0; i < r->n_records; i++) {
                const struct sync_record *rec = &r->records[i];
                json_t *group = NULL, *seqs;
                size_t g;
                json_array_foreach(acked, g, group) {
                        if (json_integer_value(json_object_get(group, "boot_epoch")) ==
                                    rec->boot_epoch &&
                            streq(json_string_value(json_object_get(group, "boot_id")),
                                  rec->boot_id))
                                break;
                        group = NULL;
                }
                if (!group) {
                        group = json_pack("{s:I,s:s,s:[]}", "boot_epoch",
                                          (json_int_t) rec->boot_epoch, "boot_id", rec->boot_id,
                                          "seq");
                        if (!group || json_array_append_new(acked, group) < 0) {
                                json_decref(acked);
                                return NULL;
                        }
                }
                seqs = json_object_get(group, "seq");
                bool seen = false;
                json_t *s;
                size_t k;
                json_array_foreach(seqs, k, s) {
                        if (json_integer_value(s) == rec->seq) {
                                seen = true;
                                break;
                        }
                }
                if (!seen && json_array_append_new(seqs, json_integer(rec->seq)) < 0) {
                        json_decref(acked);
                        return NULL;
                }
        }
        return acked;
}

json_t *sync_response_new(json_t *acked, json_t *commands, json_t *contact_plan,
                          int64_t next_sync_sec, int64_t server_time) {
        return json_pack("{s:i,s:o,s:o,s:o,s:I,s:I}", "format", API_FORMAT, "acked", acked,
                         "commands", commands, "contact_plan", contact_plan, "next_sync_sec",
                         (json_int_t) next_sync_sec, "server_time", (json_int_t) server_time);
}

void sync_answer_tag(const json_t *contact_plan, int64_t next_sync_sec, char ret[static SYNC_TAG_LEN + 1]) {
        uint64_t h = UINT64_C(14695981039346656037);
        _cleanup_free_ char *text = contact_plan ? json_dumps(contact_plan, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        char n[32];
        snprintf(n, sizeof(n), "/%" PRId64, next_sync_sec);
        for (const char *p = text ? text : "null"; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
        for (const char *p = n; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
        snprintf(ret, SYNC_TAG_LEN + 1, "%016" PRIx64, h);
}

int sync_response_compact(json_t *acked, json_t *commands, json_t *contact_plan, int64_t next_sync_sec,
                          int64_t server_time, const char *known, json_t **ret) {
        _cleanup_(json_decrefp) json_t *a = acked, *c = commands, *p = contact_plan;
        char tag[SYNC_TAG_LEN + 1];
        *ret = NULL;
        sync_answer_tag(p, next_sync_sec, tag);
        bool standing = !known || !streq(known, tag);
        if (json_array_size(a) == 0 && json_array_size(c) == 0 && !standing)
                return 0; /* 204 */
        _cleanup_(json_decrefp) json_t *o = json_pack("{s:i}", "format", SYNC_FORMAT_COMPACT);
        if (!o)
                return -ENOMEM;
        if ((json_array_size(a) > 0 && json_object_set(o, "acked", a) < 0) ||
            (json_array_size(c) > 0 && json_object_set(o, "commands", c) < 0))
                return -ENOMEM;
        if (standing && (json_object_set(o, "contact_plan", p) < 0 ||
                         json_object_set_new(o, "next_sync_sec", json_integer(next_sync_sec)) < 0 ||
                         json_object_set_new(o, "tag", json_string(tag)) < 0 ||
                         json_object_set_new(o, "server_time", json_integer(server_time)) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}
