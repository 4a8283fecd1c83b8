/* The controller's API, pure: routes, strict request bodies, the answers' shapes. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json-util.h"
#include "macro.h"
#include "message.h"

/* ---- routes ------------------------------------------------------------------------ */

bool api_id_is_valid(const char *s, size_t max) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

bool api_route_is_node(enum api_route r) {
        return r == API_ROUTE_SYNC || r == API_ROUTE_BUNDLE_DOWNLOAD;
}

const char *api_role_to_string(enum api_role r) {
        return r == API_ROLE_OPERATOR ? "operator" : r == API_ROLE_VIEWER ? "viewer" : "none";
}

bool api_role_allows(enum api_role role, enum api_route route, const char *method) {
        if (route == API_ROUTE_WEB)
                return true;
        if (role == API_ROLE_OPERATOR)
                return true;
        return role == API_ROLE_VIEWER && (streq(method, "GET") || streq(method, "HEAD"));
}

/* A dashboard file name: [a-z0-9-] words joined by single dots, no slash, no leading dot. */
static bool web_name_is_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '.' && s[i + 1] == '.')
                        return false;
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return false;
        }
        return true;
}

#define PATH_SEGMENTS_MAX 4

int api_route_match(const char *method, const char *path, struct api_match *ret) {
        memset(ret, 0, sizeof(*ret));
        bool read = method && (streq(method, "GET") || streq(method, "HEAD"));
        if (path && (streq(path, "/") || streq(path, "/ui") || streq(path, "/ui/"))) {
                ret->route = API_ROUTE_WEB;
                snprintf(ret->id, sizeof(ret->id), "index.html");
                return read ? 0 : -EOPNOTSUPP;
        }
        if (path && strncmp(path, "/ui/", 4) == 0) {
                if (!web_name_is_valid(path + 4))
                        return -ENOENT;
                ret->route = API_ROUTE_WEB;
                snprintf(ret->id, sizeof(ret->id), "%s", path + 4);
                return read ? 0 : -EOPNOTSUPP;
        }
        if (path && streq(path, "/metrics")) {
                ret->route = API_ROUTE_METRICS;
                return read ? 0 : -EOPNOTSUPP;
        }
        if (path && streq(path, "/v1/whoami")) {
                ret->route = API_ROUTE_WHOAMI;
                return read ? 0 : -EOPNOTSUPP;
        }
        if (!path || strncmp(path, "/v1/", 4) != 0 || strlen(path) > 512)
                return -ENOENT;
        char seg[PATH_SEGMENTS_MAX][API_BUNDLE_ID_MAX + 2];
        size_t n = 0;
        const char *p = path + 4;
        while (*p) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);
                if (n == PATH_SEGMENTS_MAX || len == 0 || len > API_BUNDLE_ID_MAX + 1)
                        return -ENOENT;
                memcpy(seg[n], p, len);
                seg[n][len] = '\0';
                n++;
                p += len;
                if (*p == '/')
                        p++;
                if (slash && !*p) /* trailing slash */
                        return -ENOENT;
        }
        bool get = streq(method, "GET"), head = streq(method, "HEAD"),
             post = streq(method, "POST"), put = streq(method, "PUT");

        if (n >= 1 && streq(seg[0], "bundles")) {
                if (n == 1) {
                        ret->route = API_ROUTE_BUNDLES;
                        return get || post ? 0 : -EOPNOTSUPP;
                }
                if (n != 2)
                        return -ENOENT;
                if (!api_id_is_valid(seg[1], API_BUNDLE_ID_MAX))
                        return -EINVAL;
                ret->route = API_ROUTE_BUNDLE_DOWNLOAD;
                memcpy(ret->id, seg[1], strlen(seg[1]) + 1); /* valid: at most the id max */
                return get || head ? 0 : -EOPNOTSUPP;
        }
        if (n >= 1 && streq(seg[0], "rollouts")) {
                if (n == 1) {
                        ret->route = API_ROUTE_ROLLOUTS;
                        return get || post ? 0 : -EOPNOTSUPP;
                }
                if (!api_id_is_valid(seg[1], API_ID_MAX))
                        return -EINVAL;
                memcpy(ret->id, seg[1], strlen(seg[1]) + 1);
                if (n == 2) {
                        ret->route = API_ROUTE_ROLLOUT;
                        return get ? 0 : -EOPNOTSUPP;
                }
                static const char *const verbs[] = {"start", "pause", "resume", "abort"};
                for (size_t i = 0; n == 3 && i < ELEMENTSOF(verbs); i++)
                        if (streq(seg[2], verbs[i])) {
                                ret->route = API_ROUTE_ROLLOUT_VERB;
                                snprintf(ret->verb, sizeof(ret->verb), "%s", verbs[i]);
                                return post ? 0 : -EOPNOTSUPP;
                        }
                return -ENOENT;
        }
        if (n < 1 || !streq(seg[0], "nodes") || n > 3)
                return -ENOENT;
        if (n == 1) {
                ret->route = API_ROUTE_NODES;
                return get ? 0 : -EOPNOTSUPP;
        }
        if (!api_id_is_valid(seg[1], API_ID_MAX))
                return -EINVAL;
        memcpy(ret->id, seg[1], strlen(seg[1]) + 1);
        if (n == 2) {
                ret->route = API_ROUTE_NODE;
                return get ? 0 : -EOPNOTSUPP;
        }
        static const struct {
                const char *name;
                enum api_route route;
                bool get, post, put;
        } subs[] = {
                {"sync", API_ROUTE_SYNC, false, true, false},
                {"commands", API_ROUTE_NODE_COMMANDS, true, true, false},
                {"records", API_ROUTE_NODE_RECORDS, true, false, false},
                {"contact-plan", API_ROUTE_NODE_CONTACT_PLAN, true, false, true},
                {"groups", API_ROUTE_NODE_GROUPS, true, true, false},
        };
        for (size_t i = 0; i < ELEMENTSOF(subs); i++) {
                if (!streq(seg[2], subs[i].name))
                        continue;
                ret->route = subs[i].route;
                if ((get && subs[i].get) || (post && subs[i].post) || (put && subs[i].put))
                        return 0;
                if (streq(method, "DELETE") && subs[i].route == API_ROUTE_NODE_GROUPS)
                        return 0;
                return -EOPNOTSUPP;
        }
        return -ENOENT;
}

/* ---- sync requests ------------------------------------------------------------------- */

void sync_request_done(struct sync_request *r) {
        if (!r)
                return;
        free(r->records);
        json_decref(r->root);
        memset(r, 0, sizeof(*r));
}

static int dispatch_format(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_integer(v) || json_integer_value(v) != API_FORMAT)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected format %d, got %s",
                                        API_FORMAT, json_is_integer(v) ? "another" : json_type_name(v));
        *(int64_t *) dest = API_FORMAT;
        return 0;
}

static int dispatch_node_id(struct json_ctx *ctx, json_t *v, void *dest,
                            const struct json_field *f) {
        if (!json_is_string(v) || !api_id_is_valid(json_string_value(v), API_ID_MAX) ||
            strlen(json_string_value(v)) != json_string_length(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a node id (1-%d of A-Z a-z 0-9 . _ -, not "
                                        "starting with . or -)",
                                        API_ID_MAX);
        snprintf(dest, API_ID_MAX + 1, "%s", json_string_value(v));
        return 0;
}

static int dispatch_boot_id(struct json_ctx *ctx, json_t *v, void *dest,
                            const struct json_field *f) {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        bool ok = s && json_string_length(v) == 32;
        for (size_t i = 0; ok && i < 32; i++)
                ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
        if (!ok)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a boot id of 32 lower-case hex digits");
        memcpy(dest, s, 33);
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
        *(json_t **) dest = v;
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
                r = json_ctx_problem(ctx, JSON_AT_VALUE, "record of node \"%s\" in a sync of \"%s\"",
                                     tmp.node, w->url_node);
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

int sync_request_parse(const char *text, size_t len, const char *url_node,
                       struct sync_request *ret, char **ret_message) {
        memset(ret, 0, sizeof(*ret));
        if (len > SYNC_BODY_MAX)
                return message_set(ret_message, -EFBIG, "sync body larger than %d bytes",
                                   SYNC_BODY_MAX);
        struct json_problems problems = {};
        struct json_ctx ctx = {.source = "sync", .text = text, .text_len = len,
                               .problems = &problems};
        struct records_walk walk = {.req = ret, .url_node = url_node};

#define REQ_OFF(x) offsetof(struct sync_request, x)
        const struct json_field fields[] = {
                {"format", dispatch_format, REQ_OFF(format), JSON_REQUIRED, NULL, 0, 0},
                {"node", dispatch_node_id, REQ_OFF(node), JSON_REQUIRED, NULL, 0, 0},
                {"boot_epoch", json_dispatch_int64, REQ_OFF(boot_epoch), JSON_REQUIRED, NULL, 0,
                 INT64_MAX},
                {"boot_id", dispatch_boot_id, REQ_OFF(boot_id), JSON_REQUIRED, NULL, 0, 0},
                {"last_command_seq", json_dispatch_int64, REQ_OFF(last_command_seq),
                 JSON_REQUIRED, NULL, 0, INT64_MAX},
                {"records", dispatch_records, 0, JSON_REQUIRED, &walk, 0, 0},
                {"status", dispatch_object_borrow, REQ_OFF(status), JSON_NULLABLE, NULL, 0,
                 SYNC_STATUS_MAX},
                {},
        };
        int r;
        ret->root = json_parse_object(&ctx);
        if (!ret->root) {
                r = -EINVAL;
                goto fail;
        }
        r = json_dispatch_object(&ctx, ret->root, fields, ret);
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
                            streq(json_string_value(json_object_get(group, "boot_id")), rec->boot_id))
                                break;
                        group = NULL;
                }
                if (!group) {
                        group = json_pack("{s:I,s:s,s:[]}", "boot_epoch", (json_int_t) rec->boot_epoch,
                                          "boot_id", rec->boot_id, "seq");
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

/* ---- the store's decisions ------------------------------------------------------------ */

enum record_effect record_effect_of(const char *kind) {
        if (streq(kind, "command.result"))
                return RECORD_EFFECT_COMMAND_RESULT;
        if (strncmp(kind, "update.", 7) == 0 && kind[7])
                return RECORD_EFFECT_UPDATE;
        if (streq(kind, "health.report"))
                return RECORD_EFFECT_HEALTH;
        return RECORD_EFFECT_NONE;
}

int command_result_parse(json_t *body, struct command_result *ret) {
        memset(ret, 0, sizeof(*ret));
        if (!json_is_object(body))
                return -EINVAL;
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v) {
                if (!streq(key, "seq") && !streq(key, "status") && !streq(key, "reason"))
                        return -EINVAL;
        }
        json_t *seq = json_object_get(body, "seq"), *status = json_object_get(body, "status"),
               *reason = json_object_get(body, "reason");
        if (!json_is_integer(seq) || json_integer_value(seq) < 1 || !json_is_string(status))
                return -EINVAL;
        const char *s = json_string_value(status);
        if (!streq(s, "done") && !streq(s, "failed") && !streq(s, "rejected"))
                return -EINVAL;
        /* The agent writes "reason": null for a result without one. */
        if (json_is_null(reason))
                reason = NULL;
        if (reason && (!json_is_string(reason) || json_string_length(reason) > 1024))
                return -EINVAL;
        ret->seq = json_integer_value(seq);
        ret->status = s;
        ret->reason = reason ? json_string_value(reason) : "";
        return 0;
}

const char *command_state_after_result(const char *current, const char *result_status) {
        if (!current || !result_status)
                return NULL;
        if (!streq(current, "queued") && !streq(current, "sent"))
                return NULL; /* already final: the first result wins */
        if (streq(result_status, "done"))
                return "done";
        if (streq(result_status, "failed"))
                return "failed";
        if (streq(result_status, "rejected"))
                return "rejected";
        return NULL;
}

/* ---- operator bodies ------------------------------------------------------------------ */

static json_t *parse_operator_body(const char *source, const char *text, size_t len,
                                   char **ret_message) {
        struct json_problems problems = {};
        struct json_ctx ctx = {.source = source, .text = text, .text_len = len,
                               .problems = &problems};
        if (len > OPERATOR_BODY_MAX) {
                (void) message_set(ret_message, -EFBIG, "%s: body larger than %d bytes", source,
                                   OPERATOR_BODY_MAX);
                return NULL;
        }
        json_t *root = json_parse_object(&ctx);
        if (!root && ret_message)
                *ret_message = json_problems_to_message(source, &problems);
        return root;
}

struct window {
        int64_t start, end, rate_bps;
};

int contact_plan_parse(const char *text, size_t len, json_t **ret, char **ret_message) {
        _cleanup_(json_decrefp) json_t *root = parse_operator_body("contact-plan", text, len,
                                                                   ret_message);
        if (!root)
                return -EINVAL;
        struct json_problems problems = {};
        struct json_ctx ctx = {.source = "contact-plan", .text = text, .text_len = len,
                               .problems = &problems};
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
                if (!streq(key, "windows")) {
                        json_ctx_push_key(&ctx, key);
                        json_ctx_problem(&ctx, JSON_AT_KEY, "unknown key");
                        json_ctx_pop(&ctx);
                }
        }
        json_t *windows = json_object_get(root, "windows");
        if (!windows)
                json_ctx_problem(&ctx, JSON_AT_VALUE, "missing required key \"windows\"");
        else if (!json_is_array(windows) || json_array_size(windows) > CONTACT_PLAN_WINDOWS_MAX) {
                json_ctx_push_key(&ctx, "windows");
                json_ctx_problem(&ctx, JSON_AT_VALUE, "expected an array of at most %d windows",
                                 CONTACT_PLAN_WINDOWS_MAX);
                json_ctx_pop(&ctx);
        } else {
                static const struct json_field fields[] = {
                        {"start", json_dispatch_int64, offsetof(struct window, start),
                         JSON_REQUIRED, NULL, 0, INT64_MAX},
                        {"end", json_dispatch_int64, offsetof(struct window, end), JSON_REQUIRED,
                         NULL, 0, INT64_MAX},
                        {"rate_bps", json_dispatch_int64, offsetof(struct window, rate_bps),
                         JSON_REQUIRED, NULL, 0, INT64_C(1000000000000)},
                        {},
                };
                int64_t previous_end = -1;
                size_t i;
                json_t *w;
                json_ctx_push_key(&ctx, "windows");
                json_array_foreach(windows, i, w) {
                        struct window win = {};
                        json_ctx_push_index(&ctx, i);
                        if (json_dispatch_object(&ctx, w, fields, &win) >= 0) {
                                if (win.start >= win.end)
                                        json_ctx_problem(&ctx, JSON_AT_VALUE,
                                                         "start must come before end");
                                else if (win.start < previous_end)
                                        json_ctx_problem(&ctx, JSON_AT_VALUE,
                                                         "windows must be sorted by start and "
                                                         "not overlap");
                                previous_end = win.end;
                        }
                        json_ctx_pop(&ctx);
                }
                json_ctx_pop(&ctx);
        }
        if (problems.count > 0) {
                if (ret_message)
                        *ret_message = json_problems_to_message("contact-plan", &problems);
                return -EINVAL;
        }
        *ret = json_pack("{s:O}", "windows", windows);
        return *ret ? 0 : -ENOMEM;
}

void command_request_done(struct command_request *r) {
        if (!r)
                return;
        json_decref(r->params);
        r->params = NULL;
}

static int dispatch_action(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 32)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an action name");
        snprintf(dest, 33, "%s", json_string_value(v));
        return 0;
}

static int dispatch_params(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (!json_is_object(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an object, got %s",
                                        json_type_name(v));
        json_decref(*(json_t **) dest);
        *(json_t **) dest = json_incref(v);
        return 0;
}

int command_request_parse(const char *text, size_t len, struct command_request *ret,
                          char **ret_message) {
        memset(ret, 0, sizeof(*ret));
        ret->expires_in_sec = COMMAND_EXPIRES_DEFAULT;
        _cleanup_(json_decrefp) json_t *root = parse_operator_body("command", text, len,
                                                                   ret_message);
        if (!root)
                return -EINVAL;
        struct json_problems problems = {};
        struct json_ctx ctx = {.source = "command", .text = text, .text_len = len,
                               .problems = &problems};
#define CMD_OFF(x) offsetof(struct command_request, x)
        static const struct json_field fields[] = {
                {"action", dispatch_action, CMD_OFF(action), JSON_REQUIRED, NULL, 0, 0},
                {"params", dispatch_params, CMD_OFF(params), 0, NULL, 0, 0},
                {"expires_in_sec", json_dispatch_int64, CMD_OFF(expires_in_sec), 0, NULL,
                 COMMAND_EXPIRES_MIN, COMMAND_EXPIRES_MAX},
                {},
        };
        int r = json_dispatch_object(&ctx, root, fields, ret);
        if (r == -ENOMEM || problems.count > 0 || r < 0) {
                if (ret_message && r != -ENOMEM)
                        *ret_message = json_problems_to_message("command", &problems);
                command_request_done(ret);
                return r == -ENOMEM ? r : -EINVAL;
        }
        if (!ret->params && !(ret->params = json_object())) {
                return -ENOMEM;
        }
        return 0;
}

int records_query_check(const char *kind, const char *limit, size_t *ret_limit,
                        char **ret_message) {
        if (kind) {
                size_t n = strlen(kind);
                bool ok = n >= 1 && n <= RECORD_KIND_MAX;
                for (size_t i = 0; ok && i < n; i++) {
                        char c = kind[i];
                        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                             c == '_' || c == '-' || (c == '*' && i == n - 1);
                }
                if (!ok)
                        return message_set(ret_message, -EINVAL,
                                           "kind: expected 1-%d of a-z 0-9 . _ -, optionally "
                                           "ending in * for a prefix",
                                           RECORD_KIND_MAX);
        }
        *ret_limit = RECORDS_LIMIT_DEFAULT;
        if (limit) {
                char *end;
                errno = 0;
                unsigned long v = strtoul(limit, &end, 10);
                if (limit[0] < '0' || limit[0] > '9' || *end || errno || v < 1 ||
                    v > RECORDS_LIMIT_MAX)
                        return message_set(ret_message, -EINVAL,
                                           "limit: expected an integer from 1 to %d",
                                           RECORDS_LIMIT_MAX);
                *ret_limit = v;
        }
        return 0;
}

int group_request_parse(const char *text, size_t len, char *ret_group, size_t size,
                        char **ret_message) {
        _cleanup_(json_decrefp) json_t *root = parse_operator_body("group", text, len,
                                                                   ret_message);
        if (!root)
                return -EINVAL;
        json_t *g = json_object_get(root, "group");
        const char *name = json_string_value(g);
        if (json_object_size(root) != 1 || !name || strlen(name) != json_string_length(g) ||
            !api_id_is_valid(name, API_ID_MAX) || streq(name, "all") || strlen(name) >= size)
                return message_set(ret_message, -EINVAL,
                                   "group: expected {\"group\": NAME}, NAME 1-%d of A-Z a-z 0-9 "
                                   ". _ - (not \"all\", which means every node)",
                                   API_ID_MAX);
        snprintf(ret_group, size, "%s", name);
        return 0;
}

const char *api_bearer_token(const char *authorization) {
        if (!authorization || strncmp(authorization, "Bearer ", 7) != 0)
                return NULL;
        const char *t = authorization + 7;
        while (*t == ' ')
                t++;
        return *t ? t : NULL;
}

bool api_secret_equal(const char *a, size_t a_len, const char *b, size_t b_len) {
        size_t n = a_len > b_len ? a_len : b_len;
        unsigned char diff = a_len != b_len;
        for (size_t i = 0; i < n; i++) {
                unsigned char x = i < a_len ? (unsigned char) a[i] : 0;
                unsigned char y = i < b_len ? (unsigned char) b[i] : 0;
                diff |= x ^ y;
        }
        /* Keep the compiler from turning the loop into an early exit. */
        __asm__ volatile("" : "+r"(diff));
        return diff == 0;
}

char *api_error_body(const char *code, const char *message) {
        _cleanup_(json_decrefp) json_t *o = json_pack("{s:s,s:s}", "error", code, "message",
                                                      message ? message : "");
        return o ? json_dumps(o, JSON_COMPACT) : NULL;
}
