/* The controller's API, pure: routes, strict request bodies, the answers' shapes. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/api.h"
#include "lib/ident.h"
#include "lib/json-util.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "proto/sync-answer.h"
#include "proto/usage-record.h"

/* ---- routes ------------------------------------------------------------------------ */

bool api_id_is_valid(const char *s, size_t max) {
        return ident_is_valid(s, max, 0);
}

bool api_route_is_node(enum api_route r) {
        return r == API_ROUTE_SYNC || r == API_ROUTE_BUNDLE_DOWNLOAD || r == API_ROUTE_NODE_CERTIFICATE;
}

static const char *const role_names[] = {
        [API_ROLE_NONE] = "none",
        [API_ROLE_VIEWER] = "viewer",
        [API_ROLE_OPERATOR] = "operator",
        [API_ROLE_RELEASE_MANAGER] = "release-manager",
};

const char *api_role_to_string(enum api_role r) {
        return (size_t) r < ELEMENTSOF(role_names) ? role_names[r] : "none";
}

enum api_role api_role_from_string(const char *s) {
        for (size_t i = API_ROLE_VIEWER; s && i < ELEMENTSOF(role_names); i++)
                if (streq(s, role_names[i]))
                        return (enum api_role) i;
        return API_ROLE_NONE;
}

enum api_role api_role_needed(const struct api_match *m, const char *method) {
        if (m->route == API_ROUTE_WEB)
                return API_ROLE_NONE;
        if (streq(method, "GET") || streq(method, "HEAD"))
                return API_ROLE_VIEWER;
        switch (m->route) {
        case API_ROUTE_BUNDLES: /* upload: what nodes may install */
        case API_ROUTE_ROLLOUTS: /* create: which nodes install it, in what order */
        case API_ROUTE_NODE_DESIRED: /* what a node runs, and the artifacts it installs for it */
        case API_ROUTE_DEPLOYMENTS:  /* create: what runs where */
        case API_ROUTE_DEPLOYMENT:   /* delete: its workload leaves its nodes */
                return API_ROLE_RELEASE_MANAGER;
        case API_ROUTE_ROLLOUT_VERB:
                /* start sets a release going; pause, resume and abort steer one under way */
                return streq(m->verb, "start") ? API_ROLE_RELEASE_MANAGER : API_ROLE_OPERATOR;
        default:
                /* commands: the action is in the body (api_role_needed_for_action) */
                return API_ROLE_OPERATOR;
        }
}

enum api_role api_role_needed_for_action(const char *action) {
        /* what a node installs or commits is a release's; a rollback is bounded by the
         * release's rollback_floor on the node, so an operator may ask for it */
        if (action && (streq(action, "update.install") || streq(action, "update.mark-good")))
                return API_ROLE_RELEASE_MANAGER;
        return API_ROLE_OPERATOR;
}

bool api_role_allows(enum api_role role, const struct api_match *m, const char *method) {
        return role >= api_role_needed(m, method);
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
        if (path && streq(path, "/v1/audit")) {
                ret->route = API_ROUTE_AUDIT;
                return read ? 0 : -EOPNOTSUPP;
        }
        if (path && streq(path, "/v1/usage")) {
                ret->route = API_ROUTE_USAGE;
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
        if (n >= 1 && streq(seg[0], "deployments")) {
                if (n == 1) {
                        ret->route = API_ROUTE_DEPLOYMENTS;
                        return get || post ? 0 : -EOPNOTSUPP;
                }
                if (!api_id_is_valid(seg[1], API_ID_MAX))
                        return -EINVAL;
                memcpy(ret->id, seg[1], strlen(seg[1]) + 1);
                if (n == 2) {
                        ret->route = API_ROUTE_DEPLOYMENT;
                        return get || streq(method, "DELETE") ? 0 : -EOPNOTSUPP;
                }
                static const char *const dverbs[] = {"pause", "resume"};
                for (size_t i = 0; n == 3 && i < ELEMENTSOF(dverbs); i++)
                        if (streq(seg[2], dverbs[i])) {
                                ret->route = API_ROUTE_DEPLOYMENT_VERB;
                                snprintf(ret->verb, sizeof(ret->verb), "%s", dverbs[i]);
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
                {"certificate", API_ROUTE_NODE_CERTIFICATE, false, true, false},
                {"allow-renew", API_ROUTE_NODE_ALLOW_RENEW, false, true, false},
                {"revoke-certificates", API_ROUTE_NODE_REVOKE_CERTS, false, true, false},
                {"desired", API_ROUTE_NODE_DESIRED, true, false, true},
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

/* ---- the store's decisions ------------------------------------------------------------ */

enum record_effect record_effect_of(const char *kind) {
        if (streq(kind, "command.result"))
                return RECORD_EFFECT_COMMAND_RESULT;
        if (strncmp(kind, "update.", 7) == 0 && kind[7])
                return RECORD_EFFECT_UPDATE;
        if (streq(kind, "health.report"))
                return RECORD_EFFECT_HEALTH;
        if (streq(kind, USAGE_RECORD_KIND))
                return RECORD_EFFECT_USAGE;
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
        /* lost: the controller gave up on hearing of it (the node lost its link state, or
         * the controller its own); a result that comes in after all still says what happened */
        if (!streq(current, "queued") && !streq(current, "sent") && !streq(current, "lost"))
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
        else if (json_ctx_push_key(&ctx, "windows")) {
                /* the node's own check (proto/sync-answer.c): no plan stored that it refuses */
                (void) contact_plan_dispatch_windows(&ctx, windows, NULL, NULL);
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

/* ---- usage ---------------------------------------------------------------------------------- */

static const char *const usage_by_names[_USAGE_BY_MAX] = {
        [USAGE_BY_TENANT] = "tenant",
        [USAGE_BY_DEPLOYMENT] = "deployment",
        [USAGE_BY_NODE] = "node",
        [USAGE_BY_WORKLOAD] = "workload",
};

const char *usage_by_to_string(enum usage_by by) {
        return (size_t) by < ELEMENTSOF(usage_by_names) ? usage_by_names[by] : "?";
}

static int usage_time_parse(const char *what, const char *text, int64_t *ret, char **ret_message) {
        char *end = NULL;
        errno = 0;
        long long v = text ? strtoll(text, &end, 10) : 0;
        if (!text)
                return 0;
        if (text[0] < '0' || text[0] > '9' || *end || errno || v < 1 || v > USAGE_TIME_MAX)
                return message_set(ret_message, -EINVAL, "%s: expected unix seconds from 1 to %" PRId64, what,
                                   USAGE_TIME_MAX);
        *ret = (int64_t) v;
        return 0;
}

int usage_query_parse(const char *by, const char *tenant, const char *deployment, const char *node,
                      const char *since, const char *until, struct usage_query *ret, char **ret_message) {
        *ret = (struct usage_query){.by = USAGE_BY_TENANT};
        if (by) {
                int i = string_table_lookup(usage_by_names, ELEMENTSOF(usage_by_names), by);
                if (i < 0)
                        return message_set(ret_message, -EINVAL,
                                           "by: expected tenant, deployment, node or workload");
                ret->by = (enum usage_by) i;
        }
        const struct {
                const char *what, *value;
                char *dest;
                size_t size;
        } names[] = {
                {"tenant", tenant, ret->tenant, sizeof(ret->tenant)},
                {"deployment", deployment, ret->deployment, sizeof(ret->deployment)},
                {"node", node, ret->node, sizeof(ret->node)},
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                if (!names[i].value)
                        continue;
                if (!usage_name_is_valid(names[i].value) || strlen(names[i].value) >= names[i].size)
                        return message_set(ret_message, -EINVAL, "%s: expected 1-%d of A-Z a-z 0-9 . _ -",
                                           names[i].what, USAGE_NAME_MAX);
                memcpy(names[i].dest, names[i].value, strlen(names[i].value) + 1);
        }
        int r = usage_time_parse("since", since, &ret->since, ret_message);
        if (r >= 0)
                r = usage_time_parse("until", until, &ret->until, ret_message);
        if (r < 0)
                return r;
        if (ret->since && ret->until && ret->since >= ret->until)
                return message_set(ret_message, -EINVAL, "since must come before until");
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

/* ---- certificates ----------------------------------------------------------------------- */

int certificate_request_parse(json_t *body, const char **ret_csr, char **ret_message) {
        json_t *format = json_object_get(body, "format"), *csr = json_object_get(body, "csr");
        if (!json_is_object(body))
                return message_set(ret_message, -EINVAL, "certificate request: not a JSON object");
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
                if (!streq(key, "format") && !streq(key, "csr"))
                        return message_set(ret_message, -EINVAL, "certificate request: unknown field \"%.64s\"", key);
        if (!json_is_integer(format) || json_integer_value(format) != 1)
                return message_set(ret_message, -EINVAL, "certificate request: format must be 1");
        if (!json_is_string(csr) || json_string_length(csr) == 0)
                return message_set(ret_message, -EINVAL, "certificate request: csr must be a PEM text");
        *ret_csr = json_string_value(csr);
        return 0;
}

int renew_allow_parse(const char *text, size_t len, int64_t now, int64_t *ret_until, char **ret_message) {
        json_error_t err;
        json_auto_t *o = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &err);
        json_int_t until = 0;
        if (!o || json_unpack_ex(o, &err, JSON_STRICT, "{s:I}", "until", &until) < 0)
                return message_set(ret_message, -EINVAL, "expected {\"until\": unix seconds}: %s",
                                   o ? err.text : "not JSON");
        if (until <= now || until - now > RENEW_ALLOW_MAX_SEC)
                return message_set(ret_message, -EINVAL, "until must be after now and at most %d days ahead",
                                   RENEW_ALLOW_MAX_SEC / 86400);
        *ret_until = until;
        return 0;
}
