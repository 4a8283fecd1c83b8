/* Staged rollouts, pure: options, stage assignment, node states and the decisions. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/api.h"
#include "lib/json-util.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/rollout.h"
#include "lib/sha256.h"

/* ---- names -------------------------------------------------------------------------- */

static const char *const state_names[_ROLLOUT_STATE_MAX] = {
        [ROLLOUT_CREATED] = "created",     [ROLLOUT_RUNNING] = "running",
        [ROLLOUT_PAUSED] = "paused",       [ROLLOUT_HALTED] = "halted",
        [ROLLOUT_COMPLETED] = "completed", [ROLLOUT_ABORTED] = "aborted",
};

static const char *const node_state_names[_ROLLOUT_NODE_STATE_MAX] = {
        [ROLLOUT_NODE_PENDING] = "pending",         [ROLLOUT_NODE_TOLD] = "told",
        [ROLLOUT_NODE_INSTALLING] = "installing",   [ROLLOUT_NODE_COMMITTED] = "committed",
        [ROLLOUT_NODE_FAILED] = "failed",           [ROLLOUT_NODE_ROLLED_BACK] = "rolled-back",
        [ROLLOUT_NODE_SKIPPED] = "skipped",         [ROLLOUT_NODE_OVERDUE] = "overdue",
};

const char *rollout_state_to_string(enum rollout_state s) {
        return s < _ROLLOUT_STATE_MAX ? state_names[s] : "?";
}

int rollout_state_from_string(const char *s) {
        return string_table_lookup(state_names, ELEMENTSOF(state_names), s);
}

const char *rollout_node_state_to_string(enum rollout_node_state s) {
        return s < _ROLLOUT_NODE_STATE_MAX ? node_state_names[s] : "?";
}

int rollout_node_state_from_string(const char *s) {
        return string_table_lookup(node_state_names, ELEMENTSOF(node_state_names), s);
}

bool rollout_state_is_live(enum rollout_state s) {
        return s == ROLLOUT_RUNNING || s == ROLLOUT_PAUSED || s == ROLLOUT_HALTED ||
               s == ROLLOUT_ABORTED;
}

bool rollout_state_holds_nodes(enum rollout_state s) {
        return s == ROLLOUT_CREATED || s == ROLLOUT_RUNNING || s == ROLLOUT_PAUSED;
}

bool rollout_node_state_is_final(enum rollout_node_state s) {
        return s == ROLLOUT_NODE_FAILED || s == ROLLOUT_NODE_ROLLED_BACK ||
               s == ROLLOUT_NODE_SKIPPED;
}

bool rollout_node_state_is_failure(enum rollout_node_state s) {
        return s == ROLLOUT_NODE_FAILED || s == ROLLOUT_NODE_ROLLED_BACK ||
               s == ROLLOUT_NODE_OVERDUE;
}

/* ---- options ------------------------------------------------------------------------ */

/* A decimal number at the start of p (no sign, no space) of at most max; *ret_end points
 * after it. -EINVAL when p does not start with a digit, -ERANGE when the number is larger. */
static int leading_number(const char *p, unsigned long long max, unsigned long long *ret,
                          char **ret_end) {
        if (*p < '0' || *p > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(p, ret_end, 10);
        if (errno || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int rollout_stages_parse(const char *text, unsigned *stages, size_t *n, char **ret_message) {
        *n = 0;
        const char *p = text ? text : "";
        unsigned previous = 0;
        for (;;) {
                char *end;
                unsigned long long v;
                int r = leading_number(p, 100, &v, &end);
                if (r == -EINVAL)
                        return message_set(ret_message, -EINVAL,
                                           "stages: expected increasing percentages 1-100 "
                                           "separated by commas, ending with 100 (\"1,10,50,100\")");
                if (r < 0 || v < 1 || v <= previous)
                        return message_set(ret_message, -EINVAL,
                                           "stages: each percentage must be 1-100 and larger than "
                                           "the one before it");
                if (*n == ROLLOUT_STAGES_MAX)
                        return message_set(ret_message, -EINVAL, "stages: at most %d",
                                           ROLLOUT_STAGES_MAX);
                stages[(*n)++] = (unsigned) v;
                previous = (unsigned) v;
                if (*end == '\0')
                        break;
                if (*end != ',')
                        return message_set(ret_message, -EINVAL,
                                           "stages: unexpected \"%c\" (use commas)", *end);
                p = end + 1;
        }
        if (previous != 100)
                return message_set(ret_message, -EINVAL,
                                   "stages: the last stage must be 100 (every node of the target)");
        return 0;
}

int rollout_gate_parse(const char *what, const char *text, bool allow_zero,
                       struct rollout_gate *ret, char **ret_message) {
        const char *p = text ? text : "";
        char *end;
        unsigned long long v;
        if (leading_number(p, 100000000ULL, &v, &end) < 0)
                goto bad;
        struct rollout_gate g = {.kind = ROLLOUT_GATE_CONTACTS, .value = (int64_t) v};
        if (*end) {
                static const struct {
                        char suffix;
                        int64_t mult;
                } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
                size_t i;
                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (end[0] == units[i].suffix && end[1] == '\0')
                                break;
                if (i == ELEMENTSOF(units))
                        goto bad;
                g.kind = ROLLOUT_GATE_SECONDS;
                g.value = (int64_t) v * units[i].mult;
        }
        if (g.value == 0 && !allow_zero)
                goto bad;
        *ret = g;
        return 0;
bad:
        return message_set(ret_message, -EINVAL,
                           "%s: expected a number of contacts (\"3\") or a duration (\"30s\", "
                           "\"10m\", \"2h\", \"1d\")%s, got \"%.64s\"",
                           what, allow_zero ? "" : " above zero", p);
}

int rollout_threshold_parse(const char *text, struct rollout_threshold *ret, char **ret_message) {
        const char *p = text ? text : "";
        char *end;
        unsigned long long v;
        if (leading_number(p, ROLLOUT_NODES_MAX, &v, &end) < 0)
                goto bad;
        if (streq(end, "%")) {
                if (v > 100)
                        goto bad;
                *ret = (struct rollout_threshold){.percent = true, .value = (int64_t) v};
                return 0;
        }
        if (*end)
                goto bad;
        *ret = (struct rollout_threshold){.percent = false, .value = (int64_t) v};
        return 0;
bad:
        return message_set(ret_message, -EINVAL,
                           "max_failures: expected a number of nodes (\"2\") or a percentage of "
                           "the nodes told (\"10%%\"), got \"%.64s\"",
                           p);
}

void rollout_gate_format(const struct rollout_gate *g, char *buf, size_t size) {
        if (g->kind == ROLLOUT_GATE_CONTACTS)
                snprintf(buf, size, "%lld", (long long) g->value);
        else
                snprintf(buf, size, "%llds", (long long) g->value);
}

void rollout_threshold_format(const struct rollout_threshold *t, char *buf, size_t size) {
        snprintf(buf, size, "%lld%s", (long long) t->value, t->percent ? "%" : "");
}

void rollout_stages_format(const unsigned *stages, size_t n, char *buf, size_t size) {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n && used < size; i++) {
                int w = snprintf(buf + used, size - used, "%s%u", i ? "," : "", stages[i]);
                if (w < 0)
                        break;
                used += (size_t) w;
        }
}

/* ---- the create request ----------------------------------------------------------------- */

static int dispatch_name(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (!s || strlen(s) != json_string_length(v) || !api_id_is_valid(s, (size_t) f->max))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a name (1-%lld of A-Z a-z 0-9 . _ -, not "
                                        "starting with . or -)",
                                        (long long) f->max);
        snprintf(dest, (size_t) f->max + 1, "%s", s);
        return 0;
}

static int dispatch_stages(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct rollout_options *o = dest;
        char text[256] = "";
        if (json_is_string(v))
                snprintf(text, sizeof(text), "%s", json_string_value(v));
        else if (json_is_array(v) && json_array_size(v) <= ROLLOUT_STAGES_MAX) {
                size_t i;
                json_t *e;
                unsigned u[ROLLOUT_STAGES_MAX];
                json_array_foreach(v, i, e) {
                        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
                            json_integer_value(e) > 100)
                                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                                        "expected percentages 1-100");
                        u[i] = (unsigned) json_integer_value(e);
                }
                rollout_stages_format(u, json_array_size(v), text, sizeof(text));
        } else
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected an array of percentages or \"1,10,50,100\"");
        _cleanup_free_ char *m = NULL;
        if (rollout_stages_parse(text, o->stages, &o->n_stages, &m) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "%s", m ? m : "bad stages");
        return 0;
}

/* An option given as a JSON number (3) or as the CLI's text ("10m", "10%"): the text the
 * option's parser reads. false when v is neither, or the text is over 63 bytes. */
static bool option_text(json_t *v, char text[static 64]) {
        if (json_is_integer(v) && json_integer_value(v) >= 0)
                snprintf(text, 64, "%lld", (long long) json_integer_value(v));
        else if (json_is_string(v) && json_string_length(v) < 64)
                snprintf(text, 64, "%s", json_string_value(v));
        else
                return false;
        return true;
}

static int gate_from_json(struct json_ctx *ctx, json_t *v, const char *what, bool allow_zero,
                          struct rollout_gate *g) {
        char text[64];
        if (!option_text(v, text))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected contacts (3) or a duration (\"10m\")");
        _cleanup_free_ char *m = NULL;
        if (rollout_gate_parse(what, text, allow_zero, g, &m) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "%s", m ? m : "bad value");
        return 0;
}

static int dispatch_success(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return gate_from_json(ctx, v, "success_after", false, dest);
}

static int dispatch_timeout(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return gate_from_json(ctx, v, "stage_timeout", true, dest);
}

static int dispatch_deadline(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return gate_from_json(ctx, v, "report_deadline", true, dest);
}

static int dispatch_min_healthy(struct json_ctx *ctx, json_t *v, void *dest,
                                const struct json_field *f) {
        struct rollout_gate g;
        int r = gate_from_json(ctx, v, "min_healthy_time", true, &g);
        if (r < 0)
                return r;
        if (g.kind != ROLLOUT_GATE_SECONDS && g.value != 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "min_healthy_time: expected a duration (\"10m\")");
        *(int64_t *) dest = g.value;
        return 0;
}

static int dispatch_bool(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_boolean(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected true or false");
        *(bool *) dest = json_is_true(v);
        return 0;
}

static int dispatch_threshold(struct json_ctx *ctx, json_t *v, void *dest,
                              const struct json_field *f) {
        char text[64];
        if (!option_text(v, text))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected 2 or \"10%%\"");
        _cleanup_free_ char *m = NULL;
        if (rollout_threshold_parse(text, dest, &m) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "%s", m ? m : "bad value");
        return 0;
}

int rollout_request_parse(const char *text, size_t len, struct rollout_options *ret,
                          char **ret_message) {
        *ret = (struct rollout_options){
                .target = "all",
                .stages = {1, 10, 50, 100},
                .n_stages = 4,
                .success_after = {.kind = ROLLOUT_GATE_CONTACTS, .value = 1},
                .stage_timeout = {.kind = ROLLOUT_GATE_CONTACTS, .value = 0},
                .report_deadline = {.kind = ROLLOUT_GATE_CONTACTS, .value = 0},
                .max_failures = {.percent = false, .value = 0},
        };
        if (len > OPERATOR_BODY_MAX)
                return message_set(ret_message, -EFBIG, "rollout: body larger than %d bytes",
                                   OPERATOR_BODY_MAX);
        struct json_problems problems = {};
        struct json_ctx ctx = {.source = "rollout", .text = text, .text_len = len,
                               .problems = &problems};
        _cleanup_(json_decrefp) json_t *root = json_parse_object(&ctx);
#define RO_OFF(x) offsetof(struct rollout_options, x)
        static const struct json_field fields[] = {
                {"id", dispatch_name, RO_OFF(id), 0, NULL, 0, ROLLOUT_ID_MAX},
                {"bundle_id", dispatch_name, RO_OFF(bundle_id), JSON_REQUIRED, NULL, 0,
                 API_BUNDLE_ID_MAX},
                {"target", dispatch_name, RO_OFF(target), 0, NULL, 0, ROLLOUT_GROUP_MAX},
                {"stages", dispatch_stages, 0, 0, NULL, 0, 0},
                {"success_after", dispatch_success, RO_OFF(success_after), 0, NULL, 0, 0},
                {"stage_timeout", dispatch_timeout, RO_OFF(stage_timeout), 0, NULL, 0, 0},
                {"max_failures", dispatch_threshold, RO_OFF(max_failures), 0, NULL, 0, 0},
                {"min_healthy_time", dispatch_min_healthy, RO_OFF(min_healthy_time), 0, NULL, 0, 0},
                {"report_deadline", dispatch_deadline, RO_OFF(report_deadline), 0, NULL, 0, 0},
                {"auto_revert", dispatch_bool, RO_OFF(auto_revert), 0, NULL, 0, 0},
                {},
        };
        int r = root ? json_dispatch_object(&ctx, root, fields, ret) : -EINVAL;
        if (r == -ENOMEM)
                return r;
        if (r < 0 || problems.count > 0) {
                if (ret_message)
                        *ret_message = json_problems_to_message("rollout", &problems);
                return -EINVAL;
        }
        return 0;
}

json_t *rollout_options_to_json(const struct rollout_options *o) {
        char stages[64], success[32], timeout[32], failures[32], deadline[32];
        rollout_stages_format(o->stages, o->n_stages, stages, sizeof(stages));
        rollout_gate_format(&o->success_after, success, sizeof(success));
        rollout_gate_format(&o->stage_timeout, timeout, sizeof(timeout));
        rollout_gate_format(&o->report_deadline, deadline, sizeof(deadline));
        rollout_threshold_format(&o->max_failures, failures, sizeof(failures));
        json_t *a = json_array();
        for (size_t i = 0; a && i < o->n_stages; i++)
                json_array_append_new(a, json_integer(o->stages[i]));
        return json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:I,s:o,s:o,s:s,s:b}", "id", o->id,
                         "bundle_id", o->bundle_id, "target", o->target, "stages", a,
                         "stages_text", stages, "success_after", success, "min_healthy_time",
                         (json_int_t) o->min_healthy_time, "stage_timeout",
                         o->stage_timeout.value > 0 ? json_string(timeout) : json_null(),
                         "report_deadline",
                         o->report_deadline.value > 0 ? json_string(deadline) : json_null(),
                         "max_failures", failures, "auto_revert", o->auto_revert);
}

/* ---- stages ------------------------------------------------------------------------- */

uint64_t rollout_node_key(const char *rollout_id, const char *node_id) {
        struct sha256_ctx c;
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_init(&c);
        sha256_update(&c, rollout_id, strlen(rollout_id));
        sha256_update(&c, ":", 1);
        sha256_update(&c, node_id, strlen(node_id));
        sha256_final(&c, d);
        uint64_t k = 0;
        for (int i = 0; i < 8; i++)
                k = (k << 8) | d[i];
        return k;
}

struct keyed {
        uint64_t key;
        const char *id;
        size_t index;
};

static int keyed_compare(const void *a, const void *b) {
        const struct keyed *x = a, *y = b;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return strcmp(x->id, y->id);
}

void rollout_assign_stages(const char *rollout_id, const char *const *node_ids, size_t n,
                           const unsigned *stages, size_t n_stages, unsigned *ret_stage) {
        if (n == 0 || n_stages == 0)
                return;
        struct keyed *k = calloc(n, sizeof(*k));
        if (!k) {
                /* Without memory for the order, every node waits for the last stage. */
                for (size_t i = 0; i < n; i++)
                        ret_stage[i] = (unsigned) n_stages - 1;
                return;
        }
        for (size_t i = 0; i < n; i++)
                k[i] = (struct keyed){rollout_node_key(rollout_id, node_ids[i]), node_ids[i], i};
        qsort(k, n, sizeof(*k), keyed_compare);
        size_t stage = 0;
        for (size_t rank = 0; rank < n; rank++) {
                /* rank < ceil(stages[stage] * n / 100) */
                while (stage + 1 < n_stages && rank * 100 >= (size_t) stages[stage] * n)
                        stage++;
                ret_stage[k[rank].index] = (unsigned) stage;
        }
        free(k);
}

/* ---- node states -------------------------------------------------------------------- */

enum rollout_node_state rollout_node_after_update(enum rollout_node_state cur, const char *kind) {
        if (!kind || strncmp(kind, "update.", 7) != 0)
                return cur;
        const char *phase = kind + 7;
        if (cur == ROLLOUT_NODE_FAILED || cur == ROLLOUT_NODE_ROLLED_BACK ||
            cur == ROLLOUT_NODE_SKIPPED)
                return cur;
        if (streq(phase, "rolled-back"))
                return ROLLOUT_NODE_ROLLED_BACK;
        if (cur == ROLLOUT_NODE_COMMITTED)
                return cur; /* a late progress record of the same install changes nothing */
        /* an overdue node heard from again goes on from what it says */
        if (streq(phase, "committed"))
                return ROLLOUT_NODE_COMMITTED;
        if (streq(phase, "failed"))
                return ROLLOUT_NODE_FAILED;
        if (streq(phase, "fetching") || streq(phase, "installing") || streq(phase, "ready") ||
            streq(phase, "trial"))
                return ROLLOUT_NODE_INSTALLING;
        return cur;
}

enum rollout_node_state rollout_node_after_install_result(enum rollout_node_state cur,
                                                          const char *status) {
        if (cur != ROLLOUT_NODE_TOLD && cur != ROLLOUT_NODE_INSTALLING && cur != ROLLOUT_NODE_OVERDUE)
                return cur;
        if (status && (streq(status, "failed") || streq(status, "rejected")))
                return ROLLOUT_NODE_FAILED;
        return cur;
}

bool rollout_failures_exceeded(const struct rollout_threshold *t, int64_t failures, int64_t told) {
        if (failures <= 0)
                return false;
        if (!t->percent)
                return failures > t->value;
        /* failures / told > value / 100, without division */
        return failures * 100 > t->value * (told > 0 ? told : 0);
}

bool rollout_member_held(const struct rollout_member *m, const struct rollout_options *o,
                         int64_t now) {
        if (m->state != ROLLOUT_NODE_COMMITTED)
                return false;
        if (now - m->committed_time < o->min_healthy_time)
                return false;
        if (o->success_after.kind == ROLLOUT_GATE_CONTACTS)
                return m->passes_since_commit >= o->success_after.value;
        return now - m->committed_time >= o->success_after.value;
}

bool rollout_member_overdue(const struct rollout_member *m, const struct rollout_options *o,
                            int64_t now) {
        if (o->report_deadline.value <= 0)
                return false;
        if (m->state != ROLLOUT_NODE_TOLD && m->state != ROLLOUT_NODE_INSTALLING)
                return false;
        if (o->report_deadline.kind == ROLLOUT_GATE_CONTACTS)
                return m->passes_unheard >= o->report_deadline.value;
        return now - m->last_heard >= o->report_deadline.value;
}

bool rollout_pass_is_new(int64_t last_sync, int64_t now, int64_t gap,
                         const struct rollout_window *windows, size_t n_windows) {
        if (last_sync <= 0)
                return true;
        for (size_t i = 0; i < n_windows; i++) {
                bool had = last_sync >= windows[i].start && last_sync < windows[i].end;
                bool has = now >= windows[i].start && now < windows[i].end;
                if (had && has)
                        return false;
                if (had || has)
                        return true; /* one inside a window, the other elsewhere */
        }
        return now - last_sync > gap;
}

bool rollout_revert_allowed(json_t *update_status, char *ret_why, size_t size) {
        json_t *floor_v = json_object_get(update_status, "min_security_version");
        const char *booted = json_string_value(json_object_get(update_status, "booted_slot"));
        json_t *slots = json_object_get(update_status, "rootfs_slots");
        if (!json_is_integer(floor_v) || !booted || !json_is_object(slots))
                return true; /* nothing known: the node's own anti-rollback check decides */
        const char *other = streq(booted, "A") ? "B" : streq(booted, "B") ? "A" : NULL;
        json_t *sv = json_object_get(json_object_get(slots, other ? other : ""), "security_version");
        if (!json_is_integer(sv))
                return true;
        /* the running release's signed word on going back, as the node itself judges it */
        json_t *rf = json_object_get(json_object_get(slots, booted), "rollback_floor");
        if (json_is_integer(rf) && json_integer_value(rf) < json_integer_value(floor_v)) {
                if (json_integer_value(sv) >= json_integer_value(rf))
                        return true;
                snprintf(ret_why, size,
                         "not told to roll back: slot %s holds security_version %lld, below %lld, the "
                         "rollback_floor of the release in slot %s",
                         other, (long long) json_integer_value(sv), (long long) json_integer_value(rf), booted);
                return false;
        }
        if (json_integer_value(sv) >= json_integer_value(floor_v))
                return true;
        snprintf(ret_why, size,
                 "not told to roll back: slot %s holds security_version %lld, below the node's "
                 "floor %lld (anti-rollback)",
                 other, (long long) json_integer_value(sv), (long long) json_integer_value(floor_v));
        return false;
}

enum rollout_stage_decision rollout_stage_decide(const struct rollout_member *members, size_t n,
                                                 unsigned stage, const struct rollout_options *o,
                                                 int64_t stage_started, int64_t now) {
        bool done = true, all_out = true;
        for (size_t i = 0; i < n; i++) {
                const struct rollout_member *m = &members[i];
                if (m->stage != stage)
                        continue;
                if (rollout_node_state_is_final(m->state) || m->state == ROLLOUT_NODE_OVERDUE ||
                    rollout_member_held(m, o, now))
                        continue;
                done = false;
                /* still on its way: has it had its stage timeout's passes since told? */
                if (m->state == ROLLOUT_NODE_PENDING ||
                    m->passes_since_told < o->stage_timeout.value)
                        all_out = false;
        }
        if (done)
                return ROLLOUT_STAGE_ADVANCE;
        if (o->stage_timeout.value > 0) {
                bool out = o->stage_timeout.kind == ROLLOUT_GATE_CONTACTS
                                   ? all_out
                                   : now - stage_started >= o->stage_timeout.value;
                if (out)
                        return ROLLOUT_STAGE_TIMEOUT;
        }
        return ROLLOUT_STAGE_WAIT;
}

bool rollout_member_out(const struct rollout_member *m, bool held,
                        const struct rollout_options *o) {
        if (o->stage_timeout.kind != ROLLOUT_GATE_CONTACTS || o->stage_timeout.value <= 0)
                return false;
        bool on_way = m->state == ROLLOUT_NODE_TOLD || m->state == ROLLOUT_NODE_INSTALLING ||
                      (m->state == ROLLOUT_NODE_COMMITTED && !held);
        return on_way && m->passes_since_told >= o->stage_timeout.value;
}

enum rollout_stage_decision rollout_stage_decide_counts(const struct rollout_stage_counts *c,
                                                        const struct rollout_options *o,
                                                        int64_t stage_started, int64_t now) {
        int64_t pending = c->by_state[ROLLOUT_NODE_PENDING];
        int64_t on_way = c->by_state[ROLLOUT_NODE_TOLD] + c->by_state[ROLLOUT_NODE_INSTALLING] +
                         c->by_state[ROLLOUT_NODE_COMMITTED] - c->held;
        if (pending + on_way <= 0)
                return ROLLOUT_STAGE_ADVANCE;
        if (o->stage_timeout.value > 0) {
                bool out = o->stage_timeout.kind == ROLLOUT_GATE_CONTACTS
                                   ? pending == 0 && c->out >= on_way
                                   : now - stage_started >= o->stage_timeout.value;
                if (out)
                        return ROLLOUT_STAGE_TIMEOUT;
        }
        return ROLLOUT_STAGE_WAIT;
}

int64_t rollout_member_next_due(const struct rollout_member *m, const struct rollout_options *o,
                                const struct rollout_window *windows, size_t n_windows,
                                int64_t now) {
        if (m->state == ROLLOUT_NODE_COMMITTED) {
                if (rollout_member_held(m, o, now))
                        return 0;
                int64_t t = m->committed_time + o->min_healthy_time;
                if (o->success_after.kind == ROLLOUT_GATE_SECONDS &&
                    m->committed_time + o->success_after.value > t)
                        t = m->committed_time + o->success_after.value;
                return t > now ? t : 0; /* time has passed: its own passes are missing */
        }
        if ((m->state != ROLLOUT_NODE_TOLD && m->state != ROLLOUT_NODE_INSTALLING) ||
            o->report_deadline.value <= 0)
                return 0;
        if (o->report_deadline.kind == ROLLOUT_GATE_SECONDS)
                return m->last_heard + o->report_deadline.value;
        /* the end of the value-th window ending after last heard (ends in any order) */
        int64_t prev = m->last_heard, end = 0;
        for (int64_t k = 0; k < o->report_deadline.value; k++) {
                end = 0;
                for (size_t i = 0; i < n_windows; i++)
                        if (windows[i].end > prev && (end == 0 || windows[i].end < end))
                                end = windows[i].end;
                if (end == 0)
                        return 0;
                prev = end;
        }
        return end;
}

bool rollout_member_should_tell(enum rollout_state state, unsigned current_stage,
                                const struct rollout_member *m, bool blocked) {
        return state == ROLLOUT_RUNNING && m->stage <= current_stage &&
               m->state == ROLLOUT_NODE_PENDING && !blocked;
}

bool rollout_member_needs_rollback(enum rollout_node_state s) {
        return s == ROLLOUT_NODE_COMMITTED || s == ROLLOUT_NODE_INSTALLING ||
               s == ROLLOUT_NODE_OVERDUE;
}

int rollout_state_after_verb(enum rollout_state cur, const char *verb, const char **ret_reason) {
        const char *why = NULL;
        int to = -EINVAL;
        if (streq(verb, "start")) {
                if (cur == ROLLOUT_CREATED)
                        to = ROLLOUT_RUNNING;
                else
                        why = "only a created rollout can be started";
        } else if (streq(verb, "pause")) {
                if (cur == ROLLOUT_RUNNING || cur == ROLLOUT_PAUSED)
                        to = ROLLOUT_PAUSED;
                else
                        why = "only a running rollout can be paused";
        } else if (streq(verb, "resume")) {
                if (cur == ROLLOUT_PAUSED || cur == ROLLOUT_RUNNING)
                        to = ROLLOUT_RUNNING;
                else
                        why = "only a paused rollout can be resumed (a halted one stays "
                              "halted: abort it)";
        } else if (streq(verb, "abort")) {
                if (cur != ROLLOUT_COMPLETED && cur != ROLLOUT_ABORTED)
                        to = ROLLOUT_ABORTED;
                else
                        why = "the rollout is already over";
        } else
                why = "unknown verb (start, pause, resume, abort)";
        if (to < 0 && ret_reason)
                *ret_reason = why;
        return to;
}
