/* The controller's sync answer, checked before anything acts on it. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json-util.h"
#include "proto/sync-answer.h"
#include "proto/sync-request.h"
#include "proto/desired-state.h"
#include "update/trust.h"
#include "lib/macro.h"
#include "lib/message.h"

#define SOURCE "sync answer"

static int dispatch_boot_id(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        const char *s = json_string_value(v);
        if (!s || !sync_boot_id_is_valid(s, json_string_length(v)))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a boot id of 32 lower-case hex digits");
        return 0;
}

/* ---- acked -------------------------------------------------------------------------------- */

struct ack_group {
        int64_t boot_epoch;
        json_t *seqs;
};

static int seq_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        if (!json_is_integer(e) || json_integer_value(e) < 1)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an integer in 1..., got %s",
                                        json_is_integer(e) ? "a smaller one" : json_type_name(e));
        return 0;
}

static int dispatch_seqs(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_array(ctx, v, "an array of record seqs", LINK_ANSWER_MAX_ACKED_SEQS,
                                    "seqs", seq_element, NULL);
        if (r >= 0)
                *(json_t **) dest = v;
        return r;
}

static const struct json_field ack_group_fields[] = {
        {"boot_epoch", json_dispatch_int64, offsetof(struct ack_group, boot_epoch), JSON_REQUIRED,
         NULL, 0, INT64_MAX},
        {"boot_id", dispatch_boot_id, 0, JSON_REQUIRED, NULL, 0, 0},
        {"seq", dispatch_seqs, offsetof(struct ack_group, seqs), JSON_REQUIRED, NULL, 0, 0},
        {},
};

static int ack_group_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct link_answer *a = userdata;
        struct ack_group g = {};
        int r = json_dispatch_object(ctx, e, ack_group_fields, &g);
        if (r < 0)
                return r;
        a->n_acked_seqs += json_array_size(g.seqs);
        if (a->n_acked_seqs > LINK_ANSWER_MAX_ACKED_SEQS)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "more than %d acknowledged seqs in all",
                                        LINK_ANSWER_MAX_ACKED_SEQS);
        return 0;
}

static int dispatch_acked(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct link_answer *a = (struct link_answer *) f->arg;
        int r = json_dispatch_array(ctx, v, "an array of acknowledgements", LINK_ANSWER_MAX_ACK_GROUPS,
                                    "acknowledgement groups", ack_group_element, a);
        if (r >= 0)
                a->acked = v;
        return r;
}

/* ---- commands ----------------------------------------------------------------------------- */

static int command_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        /* An envelope's content is command_envelope_verify's to judge, with its reason in a
         * command.result; here only that it is one. */
        if (!json_is_object(e))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a command envelope (an object), got %s",
                                        json_type_name(e));
        return 0;
}

static int dispatch_commands(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_array(ctx, v, "an array of command envelopes", LINK_ANSWER_MAX_COMMANDS,
                                    "commands", command_element, NULL);
        if (r >= 0)
                *(json_t **) dest = v;
        return r;
}

/* A trust document: its text, checked by the agent's trust store (update/trust.h). */
static int dispatch_trust(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > TRUST_MAX_SIZE)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a trust envelope's text of 1-%d bytes",
                                        TRUST_MAX_SIZE);
        *(json_t **) dest = v;
        return 0;
}

/* A desired state's envelope (proto/desired-state.h): an object of two strings, within the
 * document's bound; its signature and document are checked by the node before any use. */
static int dispatch_desired(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        json_t *doc = json_object_get(v, "document"), *sig = json_object_get(v, "signature");
        if (!json_is_object(v) || json_object_size(v) != 2 || !json_is_string(doc) || !json_is_string(sig) ||
            json_string_length(doc) > DESIRED_TEXT_MAX || json_string_length(sig) > DESIRED_TEXT_MAX)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a desired state's envelope {\"document\", \"signature\"} of at most "
                                        "%d bytes each", DESIRED_TEXT_MAX);
        *(json_t **) dest = v;
        return 0;
}

/* ---- contact plan --------------------------------------------------------------------------- */

struct window {
        int64_t start, end, rate_bps;
};

static const struct json_field window_fields[] = {
        {"start", json_dispatch_int64, offsetof(struct window, start), JSON_REQUIRED, NULL, 0,
         LINK_ANSWER_MAX_PLAN_TIME},
        {"end", json_dispatch_int64, offsetof(struct window, end), JSON_REQUIRED, NULL, 0,
         LINK_ANSWER_MAX_PLAN_TIME},
        {"rate_bps", json_dispatch_int64, offsetof(struct window, rate_bps), JSON_REQUIRED, NULL, 0,
         INT64_C(1000000000000)},
        {},
};

static int window_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        int64_t *previous_end = userdata;
        struct window w = {};
        int r = json_dispatch_object(ctx, e, window_fields, &w);
        if (r < 0)
                return r;
        if (w.start >= w.end)
                r = json_ctx_problem(ctx, JSON_AT_VALUE, "start must come before end");
        else if (w.start < *previous_end)
                r = json_ctx_problem(ctx, JSON_AT_VALUE, "windows must be sorted by start and not overlap");
        *previous_end = w.end;
        return r;
}

int contact_plan_dispatch_windows(struct json_ctx *ctx, json_t *v, void *dest,
                                  const struct json_field *f) {
        (void) dest;
        (void) f;
        int64_t previous_end = -1;
        return json_dispatch_array(ctx, v, "an array of windows", LINK_ANSWER_MAX_WINDOWS, "windows",
                                   window_element, &previous_end);
}

static const struct json_field plan_fields[] = {
        {"windows", contact_plan_dispatch_windows, 0, JSON_REQUIRED, NULL, 0, 0},
        {},
};

static int dispatch_plan(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        char unused; /* the windows are checked, not copied */
        int r = json_dispatch_object(ctx, v, plan_fields, &unused);
        if (r >= 0)
                *(json_t **) dest = v;
        return r;
}

/* ---- the answer ------------------------------------------------------------------------------ */

void link_answer_done(struct link_answer *a) {
        if (!a)
                return;
        json_decref(a->root);
        *a = (struct link_answer){};
}

int link_answer_parse(const char *text, size_t len, struct link_answer *ret, char **ret_message) {
        *ret = (struct link_answer){};
        struct json_problems problems = {};
        struct json_ctx ctx = {.source = SOURCE, .text = text, .text_len = len, .problems = &problems};
#define OFF(x) offsetof(struct link_answer, x)
        const struct json_field fields[] = {
                {"format", sync_dispatch_format, OFF(format), JSON_REQUIRED, NULL, 0, 0},
                {"acked", dispatch_acked, 0, JSON_REQUIRED, ret, 0, 0},
                {"commands", dispatch_commands, OFF(commands), JSON_REQUIRED, NULL, 0, 0},
                {"contact_plan", dispatch_plan, OFF(plan), JSON_REQUIRED, NULL, 0, 0},
                {"next_sync_sec", json_dispatch_int64, OFF(next_sync_sec), JSON_REQUIRED, NULL, 0,
                 LINK_ANSWER_MAX_NEXT_SYNC_SEC},
                {"server_time", json_dispatch_int64, OFF(server_time), JSON_REQUIRED, NULL, 0, INT64_MAX},
                {"trust", dispatch_trust, OFF(trust), 0, NULL, 0, 0},
                {"desired", dispatch_desired, OFF(desired), 0, NULL, 0, 0},
                {},
        };
        /* Format 2 says only what changed: the rest stays as the last answer left it. */
        const struct json_field fields_compact[] = {
                {"format", sync_dispatch_format, OFF(format), JSON_REQUIRED, NULL, 0, 0},
                {"acked", dispatch_acked, 0, 0, ret, 0, 0},
                {"commands", dispatch_commands, OFF(commands), 0, NULL, 0, 0},
                {"contact_plan", dispatch_plan, OFF(plan), 0, NULL, 0, 0},
                {"next_sync_sec", json_dispatch_int64, OFF(next_sync_sec), 0, NULL, 0,
                 LINK_ANSWER_MAX_NEXT_SYNC_SEC},
                {"tag", sync_dispatch_tag, OFF(tag), 0, NULL, 0, 0},
                {"server_time", json_dispatch_int64, OFF(server_time), 0, NULL, 0, INT64_MAX},
                {"trust", dispatch_trust, OFF(trust), 0, NULL, 0, 0},
                {"desired", dispatch_desired, OFF(desired), 0, NULL, 0, 0},
                {},
        };
#undef OFF
        int r = -EINVAL;
        ret->root = json_parse_object(&ctx);
        if (ret->root) {
                json_t *format = json_object_get(ret->root, "format");
                bool compact = json_is_integer(format) && json_integer_value(format) == SYNC_FORMAT_COMPACT;
                r = json_dispatch_object(&ctx, ret->root, compact ? fields_compact : fields, ret);
                int standing = !!ret->plan + !!json_object_get(ret->root, "next_sync_sec") + !!ret->tag[0];
                if (r >= 0 && compact && standing != 0 && standing != 3)
                        r = json_ctx_problem(&ctx, JSON_AT_VALUE,
                                             "contact_plan, next_sync_sec and tag go together");
                ret->standing = !compact || standing == 3;
                if (r >= 0 && problems.count > 0)
                        r = -EINVAL;
        }
        if (r >= 0)
                return 0;
        if (r != -ENOMEM)
                r = -EBADMSG;
        if (ret_message) {
                *ret_message = NULL;
                if (r != -ENOMEM) {
                        *ret_message = json_problems_to_message(SOURCE, &problems);
                        if (!*ret_message)
                                r = -ENOMEM;
                }
        }
        link_answer_done(ret);
        return r;
}
