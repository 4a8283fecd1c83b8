/* Deployments: parsing, placement and a member's state (controller/deployment.h). Pure. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/api.h"
#include "controller/deployment.h"
#include "proto/usage-record.h"
#include "lib/ident.h"
#include "lib/macro.h"
#include "lib/message.h"

void deployment_options_done(struct deployment_options *o) {
        if (!o)
                return;
        json_decref(o->spec);
        o->spec = NULL;
}

int deployment_level_from_string(const char *s) {
        static const char *const names[] = {"nominal", "warm", "hot", "critical"};
        for (size_t i = 0; s && i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        return -1;
}

static const char *level_name(int l) {
        static const char *const names[] = {"nominal", "warm", "hot", "critical"};
        return l >= 0 && (size_t) l < ELEMENTSOF(names) ? names[l] : "unknown";
}

/* "deployment: <what>: <text>" */
static int bad(char **ret_message, const char *text, const char *what) {
        return message_set(ret_message, -EINVAL, "deployment: %s: %s", what, text);
}

static int constraints_parse(json_t *v, struct deployment_constraints *k, char **ret_message) {
        *k = (struct deployment_constraints){.max_level = -1};
        if (!v)
                return 0;
        if (!json_is_object(v))
                return bad(ret_message, "expected an object", "constraints");
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x) {
                if (streq(key, "min_free_mib") || streq(key, "min_battery_percent")) {
                        int64_t max = streq(key, "min_free_mib") ? INT64_C(1) << 40 : 100;
                        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > max)
                                return message_set(ret_message, -EINVAL,
                                                   "deployment: constraints.%s: expected an integer in 0..%" PRId64, key,
                                                   max);
                        if (streq(key, "min_free_mib"))
                                k->min_free_mib = json_integer_value(x);
                        else
                                k->min_battery_percent = json_integer_value(x);
                } else if (streq(key, "max_level")) {
                        int l = deployment_level_from_string(json_string_value(x));
                        if (l < 0 || l > 2)
                                return message_set(ret_message, -EINVAL, "deployment: constraints.%s: expected \"nominal\", "
                                                   "\"warm\" or \"hot\"", key);
                        k->max_level = l;
                } else
                        return message_set(ret_message, -EINVAL,
                                           "deployment: constraints.%.64s: unknown key (min_free_mib, max_level, "
                                           "min_battery_percent)", key);
        }
        return 0;
}

int deployment_request_parse(const char *text, size_t len, struct deployment_options *ret, char **ret_message) {
        *ret = (struct deployment_options){.constraints = {.max_level = -1}};
        _cleanup_free_ char *rest = NULL, *why = NULL;
        if (len > OPERATOR_BODY_MAX)
                return message_set(ret_message, -EFBIG, "deployment: body larger than %d bytes", OPERATOR_BODY_MAX);
        json_error_t err;
        json_auto_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(root))
                return message_set(ret_message, -EINVAL, "deployment:%d:%d: %s", root ? 1 : err.line,
                                   root ? 1 : err.column, root ? "expected an object" : err.text);
        /* What is a deployment's own comes out; the rest is a rollout's request. */
        json_t *spec = json_incref(json_object_get(root, "spec")), *count = json_object_get(root, "count");
        json_auto_t *constraints = json_incref(json_object_get(root, "constraints"));
        int64_t n = 0;
        if (count && (!json_is_integer(count) || json_integer_value(count) < 0 ||
                      json_integer_value(count) > ROLLOUT_NODES_MAX)) {
                json_decref(spec);
                return message_set(ret_message, -EINVAL, "deployment: count: expected an integer in 0..%d (0: every node)",
                                   ROLLOUT_NODES_MAX);
        }
        n = count ? json_integer_value(count) : 0;
        (void) json_object_del(root, "spec");
        (void) json_object_del(root, "count");
        (void) json_object_del(root, "constraints");
        ret->spec = spec;
        ret->count = n;
        int r = constraints_parse(constraints, &ret->constraints, ret_message);
        if (r < 0)
                goto fail;
        const char *name = json_string_value(json_object_get(spec, "name"));
        json_t *app = json_object_get(spec, "app");
        if (!json_is_object(spec) || !name || !ident_is_valid(name, 64, IDENT_NO_DOT)) {
                r = bad(ret_message, "expected a workload spec with a \"name\" (1-64 of A-Z a-z 0-9 _ -)", "spec");
                goto fail;
        }
        if (!json_is_object(app) || !json_is_string(json_object_get(app, "version"))) {
                r = bad(ret_message, "the spec must name its app with a version (spec.app.version)", "spec.app");
                goto fail;
        }
        /* whom its usage is billed to (#19 item 5): the controller's word over the node's */
        json_t *tenant = json_object_get(spec, "tenant");
        if (tenant && (!json_is_string(tenant) || strlen(json_string_value(tenant)) != json_string_length(tenant) ||
                       !usage_name_is_valid(json_string_value(tenant)))) {
                r = bad(ret_message, "expected a tenant name (1-64 of A-Z a-z 0-9 . _ -)", "spec.tenant");
                goto fail;
        }
        snprintf(ret->workload, sizeof(ret->workload), "%s", name);
        rest = json_dumps(root, JSON_COMPACT);
        if (!rest) {
                r = -ENOMEM;
                goto fail;
        }
        r = rollout_request_parse(rest, strlen(rest), &ret->strategy, &why);
        if (r < 0) {
                /* the same problems, said of a deployment */
                message_set(ret_message, r, "deployment: %s", why && strncmp(why, "rollout", 7) == 0 ? why + 7 : why ? why : "");
                goto fail;
        }
        return 0;
fail:
        deployment_options_done(ret);
        return r;
}

json_t *deployment_options_to_json(const struct deployment_options *o) {
        json_t *j = rollout_options_to_json(&o->strategy);
        if (!j)
                return NULL;
        json_t *k = json_object();
        if (k && o->constraints.min_free_mib)
                json_object_set_new(k, "min_free_mib", json_integer(o->constraints.min_free_mib));
        if (k && o->constraints.max_level >= 0)
                json_object_set_new(k, "max_level", json_string(level_name(o->constraints.max_level)));
        if (k && o->constraints.min_battery_percent)
                json_object_set_new(k, "min_battery_percent", json_integer(o->constraints.min_battery_percent));
        if (json_object_set_new(j, "workload", json_string(o->workload)) < 0 ||
            json_object_set(j, "spec", o->spec ? o->spec : json_null()) < 0 ||
            json_object_set_new(j, "count", json_integer(o->count)) < 0 ||
            json_object_set_new(j, "constraints", k ? k : json_object()) < 0) {
                json_decref(j);
                return NULL;
        }
        return j;
}

/* ---- placement --------------------------------------------------------------------------- */

static bool meets(const struct deployment_candidate *c, const struct deployment_constraints *k, char *why,
                  size_t size) {
        bool any = k->min_free_mib > 0 || k->max_level >= 0 || k->min_battery_percent > 0;
        if (!any)
                return true;
        if (!c->known)
                return snprintf(why, size, "%s: no health report yet", c->node), false;
        if (k->max_level >= 0 && c->level > k->max_level)
                return snprintf(why, size, "%s: thermal level %s, above %s", c->node, level_name(c->level),
                                level_name(k->max_level)),
                       false;
        if (k->min_free_mib > 0 && c->free_mib < k->min_free_mib)
                return snprintf(why, size, "%s: %" PRId64 " MiB free, below %" PRId64, c->node, c->free_mib,
                                k->min_free_mib),
                       false;
        if (k->min_battery_percent > 0 && (c->battery_percent < 0 || c->battery_percent < k->min_battery_percent))
                return snprintf(why, size, "%s: battery %" PRId64 "%%, below %" PRId64 "%%", c->node, c->battery_percent,
                                k->min_battery_percent),
                       false;
        return true;
}

struct ranked {
        const struct deployment_candidate *c;
        size_t index;
        uint64_t key;
};

static int rank_compare(const void *a, const void *b) {
        const struct ranked *x = a, *y = b;
        if (x->c->has_it != y->c->has_it)
                return x->c->has_it ? -1 : 1;
        if (x->c->level != y->c->level)
                return x->c->level < y->c->level ? -1 : 1;
        if (x->c->free_mib != y->c->free_mib)
                return x->c->free_mib > y->c->free_mib ? -1 : 1;
        if (x->c->battery_percent != y->c->battery_percent)
                return x->c->battery_percent > y->c->battery_percent ? -1 : 1;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return strcmp(x->c->node, y->c->node);
}

size_t deployment_place(const char *deployment_id, const struct deployment_candidate *c, size_t n, int64_t count,
                        const struct deployment_constraints *k, bool *ret_chosen, char *why, size_t why_size) {
        struct ranked *r = calloc(n ? n : 1, sizeof(*r));
        size_t m = 0, chosen = 0;
        char first[256] = "";
        for (size_t i = 0; i < n; i++) {
                ret_chosen[i] = false;
                char w[256];
                if (!meets(&c[i], k, w, sizeof(w))) {
                        if (!first[0])
                                snprintf(first, sizeof(first), "%s", w);
                        continue;
                }
                if (r)
                        r[m++] = (struct ranked){.c = &c[i], .index = i,
                                                 .key = rollout_node_key(deployment_id, c[i].node)};
        }
        if (r) {
                qsort(r, m, sizeof(*r), rank_compare);
                for (size_t i = 0; i < m && (count == 0 || (int64_t) chosen < count); i++) {
                        ret_chosen[r[i].index] = true;
                        chosen++;
                }
        }
        free(r);
        if (why && why_size)
                snprintf(why, why_size, "%s", first);
        return chosen;
}

/* ---- a member from its node's report ----------------------------------------------------- */

enum rollout_node_state deployment_member_from_report(enum rollout_node_state cur, int64_t told_version,
                                                      json_t *report, const char *workload, char *why,
                                                      size_t why_size) {
        if (rollout_node_state_is_final(cur) && cur != ROLLOUT_NODE_COMMITTED)
                return cur;
        if (cur == ROLLOUT_NODE_PENDING || !json_is_object(report))
                return cur;
        json_t *v = json_object_get(report, "version");
        if (!json_is_integer(v) || json_integer_value(v) < told_version)
                return cur == ROLLOUT_NODE_OVERDUE ? cur : ROLLOUT_NODE_TOLD;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(report, "workloads"), i, w) {
                if (!streq(json_string_value(json_object_get(w, "name")) ?: "", workload))
                        continue;
                const char *state = json_string_value(json_object_get(w, "state")) ?: "";
                const char *run = json_string_value(json_object_get(w, "workload")) ?: "";
                const char *health = json_string_value(json_object_get(w, "health")) ?: "";
                const char *reason = json_string_value(json_object_get(w, "reason"));
                if (streq(state, "refused")) {
                        snprintf(why, why_size, "refused: %s", reason ? reason : "no reason given");
                        return ROLLOUT_NODE_FAILED;
                }
                if (streq(state, "done") && streq(run, "failed")) {
                        snprintf(why, why_size, "the workload failed");
                        return ROLLOUT_NODE_FAILED;
                }
                if (streq(state, "done") && streq(health, "unhealthy")) {
                        snprintf(why, why_size, "the workload fails its health probe");
                        return ROLLOUT_NODE_FAILED;
                }
                if (streq(state, "done") && streq(run, "running") && streq(health, "healthy"))
                        return ROLLOUT_NODE_COMMITTED;
                /* a committed member whose workload stopped running is no longer committed */
                return cur == ROLLOUT_NODE_OVERDUE ? cur : ROLLOUT_NODE_INSTALLING;
        }
        snprintf(why, why_size, "the node's desired state v%" PRId64 " does not list %s",
                 (int64_t) json_integer_value(v), workload);
        return ROLLOUT_NODE_FAILED;
}
