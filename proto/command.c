/* Signed commands: build and check payloads, verify envelopes (pure but for signatures). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/command.h"
#include "lib/ident.h"
#include "lib/macro.h"
#include "lib/message.h"

void command_done(struct command *c) {
        if (!c)
                return;
        json_decref(c->params);
        c->params = NULL;
}

bool command_name_is_valid(const char *s, size_t max) {
        return ident_is_valid(s, max, 0);
}

/* Workload names as runtime/workload-spec.c accepts them: no dots (they are cgroups). */
static bool workload_name_ok(const char *s) {
        return command_name_is_valid(s, 64) && !strchr(s, '.');
}

static bool config_key_ok(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > COMMAND_CONFIG_KEY_MAX || s[0] == '.' || s[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
                        return false;
                if (c == '.' && s[i + 1] == '.')
                        return false;
        }
        return true;
}

bool command_url_is_valid(const char *s) {
        size_t n = strlen(s);
        if (n <= strlen("https://") || n > COMMAND_URL_MAX || strncmp(s, "https://", 8) != 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] <= ' ' || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

enum param_kind {
        PARAM_NONE,
        PARAM_WORKLOAD, /* {"name"} */
        PARAM_INSTALL,  /* {"bundle_id"} or {"url"} */
        PARAM_CONFIG,   /* {"key","value"} */
};

static const struct {
        const char *action;
        enum param_kind kind;
} actions[] = {
        {"workload.start", PARAM_WORKLOAD},
        {"workload.stop", PARAM_WORKLOAD},
        {"workload.restart", PARAM_WORKLOAD},
        {"update.install", PARAM_INSTALL},
        {"update.mark-good", PARAM_NONE},
        {"update.rollback", PARAM_NONE},
        {"reboot", PARAM_NONE},
        {"config.set", PARAM_CONFIG},
        {"status.send", PARAM_NONE},
};

static int action_kind(const char *action) {
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                if (streq(actions[i].action, action))
                        return (int) actions[i].kind;
        return -1;
}

bool command_action_is_known(const char *action) {
        return action && action_kind(action) >= 0;
}

/* Every key of params must be one of allowed (a NULL-terminated list). */
static int check_keys(const char *action, json_t *params, const char *const *allowed,
                      char **ret_reason) {
        const char *key;
        json_t *v;
        json_object_foreach(params, key, v) {
                bool ok = false;
                for (size_t i = 0; allowed[i]; i++)
                        if (streq(allowed[i], key))
                                ok = true;
                if (!ok)
                        return message_set(ret_reason, -EINVAL, "%s: unknown parameter \"%.64s\"",
                                           action, key);
        }
        return 0;
}

static const char *string_param(json_t *params, const char *key) {
        json_t *v = json_object_get(params, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

int command_params_check(const char *action, json_t *params, char **ret_reason) {
        int kind = action ? action_kind(action) : -1;
        if (kind < 0)
                return message_set(ret_reason, -EOPNOTSUPP,
                                   "unknown action \"%.64s\" (known: workload.start, workload.stop, "
                                   "workload.restart, update.install, update.mark-good, "
                                   "update.rollback, reboot, config.set, status.send)",
                                   action ? action : "");
        if (!json_is_object(params))
                return message_set(ret_reason, -EINVAL, "%s: params must be an object", action);
        _cleanup_free_ char *dump = json_dumps(params, JSON_COMPACT);
        if (!dump)
                return -ENOMEM;
        if (strlen(dump) > COMMAND_PARAMS_MAX)
                return message_set(ret_reason, -EINVAL, "%s: params longer than %d bytes", action,
                                   COMMAND_PARAMS_MAX);

        switch ((enum param_kind) kind) {
        case PARAM_NONE:
                if (json_object_size(params) > 0)
                        return check_keys(action, params, (const char *const[]){NULL}, ret_reason);
                return 0;
        case PARAM_WORKLOAD: {
                int r = check_keys(action, params, (const char *const[]){"name", NULL}, ret_reason);
                if (r < 0)
                        return r;
                const char *name = string_param(params, "name");
                if (!json_object_get(params, "name"))
                        return message_set(ret_reason, -EINVAL, "%s: missing parameter \"name\"",
                                           action);
                if (!name || !workload_name_ok(name))
                        return message_set(ret_reason, -EINVAL,
                                           "%s: \"name\" must be a workload name (1-64 of A-Z a-z "
                                           "0-9 _ -, not starting with -)",
                                           action);
                return 0;
        }
        case PARAM_INSTALL: {
                int r = check_keys(action, params, (const char *const[]){"bundle_id", "url", NULL},
                                   ret_reason);
                if (r < 0)
                        return r;
                bool has_id = json_object_get(params, "bundle_id"),
                     has_url = json_object_get(params, "url");
                if (has_id == has_url)
                        return message_set(ret_reason, -EINVAL,
                                           "%s: give exactly one of \"bundle_id\" and \"url\"",
                                           action);
                if (has_id) {
                        const char *id = string_param(params, "bundle_id");
                        if (!id || !command_name_is_valid(id, COMMAND_NAME_MAX))
                                return message_set(ret_reason, -EINVAL,
                                                   "%s: \"bundle_id\" must be a bundle id (1-%d of "
                                                   "A-Z a-z 0-9 . _ -, not starting with . or -)",
                                                   action, COMMAND_NAME_MAX);
                } else {
                        const char *url = string_param(params, "url");
                        if (!url || !command_url_is_valid(url))
                                return message_set(ret_reason, -EINVAL,
                                                   "%s: \"url\" must be an https:// URL of at most "
                                                   "%d printable characters",
                                                   action, COMMAND_URL_MAX);
                }
                return 0;
        }
        case PARAM_CONFIG: {
                int r = check_keys(action, params, (const char *const[]){"key", "value", NULL},
                                   ret_reason);
                if (r < 0)
                        return r;
                const char *key = string_param(params, "key");
                if (!json_object_get(params, "key") || !json_object_get(params, "value"))
                        return message_set(ret_reason, -EINVAL,
                                           "%s: needs both \"key\" and \"value\"", action);
                if (!key || !config_key_ok(key))
                        return message_set(ret_reason, -EINVAL,
                                           "%s: \"key\" must be a dotted config key (1-%d of a-z "
                                           "0-9 _ .)",
                                           action, COMMAND_CONFIG_KEY_MAX);
                return 0;
        }
        }
        return -EINVAL;
}

bool command_link_epoch_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > COMMAND_LINK_EPOCH_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int command_payload_build(const struct command *c, char **ret_text, char **ret_reason) {
        if (!command_name_is_valid(c->node, COMMAND_NODE_MAX))
                return message_set(ret_reason, -EINVAL, "invalid node id \"%.64s\"", c->node);
        if (c->link_epoch[0] && !command_link_epoch_is_valid(c->link_epoch))
                return message_set(ret_reason, -EINVAL, "invalid link epoch \"%.40s\"", c->link_epoch);
        if (c->seq == 0 || c->seq > (uint64_t) INT64_MAX)
                return message_set(ret_reason, -EINVAL, "seq must be at least 1");
        if (c->not_before < 0 || c->expires <= c->not_before)
                return message_set(ret_reason, -EINVAL, "expires must come after not_before");
        int r = command_params_check(c->action, c->params, ret_reason);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *o = json_pack("{s:i,s:s}", "format", COMMAND_FORMAT, "node", c->node);
        if (!o || (c->link_epoch[0] && json_object_set_new(o, "link_epoch", json_string(c->link_epoch)) < 0) ||
            json_object_set_new(o, "seq", json_integer((json_int_t) c->seq)) < 0 ||
            json_object_set_new(o, "not_before", json_integer((json_int_t) c->not_before)) < 0 ||
            json_object_set_new(o, "expires", json_integer((json_int_t) c->expires)) < 0 ||
            json_object_set_new(o, "action", json_string(c->action)) < 0 ||
            json_object_set(o, "params", c->params) < 0)
                return -ENOMEM;
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        if (strlen(text) > COMMAND_PAYLOAD_MAX) {
                free(text);
                return message_set(ret_reason, -EINVAL, "payload longer than %d bytes",
                                   COMMAND_PAYLOAD_MAX);
        }
        *ret_text = text;
        return 0;
}

static int get_int(json_t *o, const char *key, int64_t min, int64_t *ret, char **ret_reason) {
        json_t *v = json_object_get(o, key);
        if (!v)
                return message_set(ret_reason, -EBADMSG, "payload: missing \"%s\"", key);
        if (!json_is_integer(v) || json_integer_value(v) < min)
                return message_set(ret_reason, -EBADMSG,
                                   "payload: \"%s\" must be an integer of at least %lld", key,
                                   (long long) min);
        *ret = (int64_t) json_integer_value(v);
        return 0;
}

static int get_string(json_t *o, const char *key, char *buf, size_t size, char **ret_reason) {
        json_t *v = json_object_get(o, key);
        if (!v)
                return message_set(ret_reason, -EBADMSG, "payload: missing \"%s\"", key);
        if (!json_is_string(v) || json_string_length(v) >= size ||
            strlen(json_string_value(v)) != json_string_length(v))
                return message_set(ret_reason, -EBADMSG,
                                   "payload: \"%s\" must be a string of at most %zu bytes", key,
                                   size - 1);
        memcpy(buf, json_string_value(v), json_string_length(v) + 1);
        return 0;
}

int command_payload_parse(const char *text, size_t len, struct command *ret, char **ret_reason) {
        memset(ret, 0, sizeof(*ret));
        if (len > COMMAND_PAYLOAD_MAX)
                return message_set(ret_reason, -EBADMSG, "payload longer than %d bytes",
                                   COMMAND_PAYLOAD_MAX);
        json_error_t err;
        _cleanup_(json_decrefp) json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!o)
                return message_set(ret_reason, -EBADMSG, "payload is not valid JSON: %s", err.text);
        if (!json_is_object(o))
                return message_set(ret_reason, -EBADMSG, "payload is not a JSON object");
        static const char *const keys[] = {"format", "node", "link_epoch", "seq", "not_before",
                                           "expires", "action", "params"};
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (streq(keys[i], key))
                                ok = true;
                if (!ok)
                        return message_set(ret_reason, -EBADMSG, "payload: unknown key \"%.64s\"",
                                           key);
        }
        int64_t format, seq;
        int r = get_int(o, "format", 0, &format, ret_reason);
        if (r < 0)
                return r;
        if (format != COMMAND_FORMAT)
                return message_set(ret_reason, -EBADMSG, "payload: unsupported format %lld",
                                   (long long) format);
        if ((r = get_int(o, "seq", 1, &seq, ret_reason)) < 0 ||
            (r = get_int(o, "not_before", 0, &ret->not_before, ret_reason)) < 0 ||
            (r = get_int(o, "expires", 0, &ret->expires, ret_reason)) < 0 ||
            (r = get_string(o, "node", ret->node, sizeof(ret->node), ret_reason)) < 0 ||
            (r = get_string(o, "action", ret->action, sizeof(ret->action), ret_reason)) < 0)
                return r;
        ret->seq = (uint64_t) seq;
        if (!command_name_is_valid(ret->node, COMMAND_NODE_MAX))
                return message_set(ret_reason, -EBADMSG, "payload: invalid node id");
        if (json_object_get(o, "link_epoch") &&
            ((r = get_string(o, "link_epoch", ret->link_epoch, sizeof(ret->link_epoch), ret_reason)) < 0 ||
             !command_link_epoch_is_valid(ret->link_epoch)))
                return r < 0 ? r : message_set(ret_reason, -EBADMSG, "payload: invalid link_epoch");
        if (ret->expires <= ret->not_before)
                return message_set(ret_reason, -EBADMSG,
                                   "payload: expires must come after not_before");
        json_t *params = json_object_get(o, "params");
        if (!json_is_object(params))
                return message_set(ret_reason, -EBADMSG, "payload: \"params\" must be an object");
        ret->params = json_incref(params);
        return 0;
}

json_t *command_envelope_new(uint64_t seq, const char *payload, const char *signature) {
        return json_pack("{s:I,s:s,s:s}", "seq", (json_int_t) seq, "payload", payload,
                         "signature", signature);
}

/* A command signed for this node and newer than the last applied, refused for its time or
 * params: the caller learns its seq and action, so it can move past it (a replay of it is
 * then a plain -ESTALE, reported once). */
static int refuse_signed(struct command *c, struct command *ret, int r) {
        ret->seq = c->seq;
        memcpy(ret->action, c->action, sizeof(ret->action));
        command_done(c);
        return r;
}

int command_envelope_verify(json_t *envelope, const struct command_verify_options *o,
                            struct command *ret, char **ret_reason) {
        memset(ret, 0, sizeof(*ret));
        if (!json_is_object(envelope))
                return message_set(ret_reason, -EBADMSG, "envelope is not a JSON object");
        const char *key;
        json_t *v;
        json_object_foreach(envelope, key, v) {
                if (!streq(key, "seq") && !streq(key, "payload") && !streq(key, "signature"))
                        return message_set(ret_reason, -EBADMSG, "envelope: unknown key \"%.64s\"",
                                           key);
        }
        json_t *seq = json_object_get(envelope, "seq"),
               *payload = json_object_get(envelope, "payload"),
               *signature = json_object_get(envelope, "signature");
        if (!json_is_integer(seq) || json_integer_value(seq) < 1)
                return message_set(ret_reason, -EBADMSG, "envelope: \"seq\" must be an integer >= 1");
        if (!json_is_string(payload) || json_string_length(payload) > COMMAND_PAYLOAD_MAX)
                return message_set(ret_reason, -EBADMSG,
                                   "envelope: \"payload\" must be a string of at most %d bytes",
                                   COMMAND_PAYLOAD_MAX);
        if (!json_is_string(signature) || json_string_length(signature) > SIGNATURE_MAX_SIZE)
                return message_set(ret_reason, -EBADMSG,
                                   "envelope: \"signature\" must be a string of at most %d bytes",
                                   SIGNATURE_MAX_SIZE);
        uint64_t envelope_seq = (uint64_t) json_integer_value(seq);

        /* The signature first: unsigned JSON is never parsed. */
        _cleanup_free_ char *sig_reason = NULL;
        int r = signature_verify(SIGNATURE_FOR_COMMAND, json_string_value(payload), json_string_length(payload),
                                 json_string_value(signature), json_string_length(signature),
                                 o->keyring, o->now, NULL, &sig_reason);
        if (r < 0)
                return message_set(ret_reason, r, "command %llu: %s",
                                   (unsigned long long) envelope_seq,
                                   sig_reason ? sig_reason : "signature does not verify");

        struct command c;
        _cleanup_free_ char *parse_reason = NULL;
        r = command_payload_parse(json_string_value(payload), json_string_length(payload), &c,
                                  &parse_reason);
        if (r < 0)
                return message_set(ret_reason, r, "command %llu: %s",
                                   (unsigned long long) envelope_seq,
                                   parse_reason ? parse_reason : "bad payload");
        if (c.seq != envelope_seq) {
                command_done(&c);
                return message_set(ret_reason, -EBADMSG,
                                   "command %llu: the signed payload says seq %llu",
                                   (unsigned long long) envelope_seq, (unsigned long long) c.seq);
        }
        if (!o->node || !streq(c.node, o->node)) {
                r = message_set(ret_reason, -EXDEV, "command %llu is for node \"%s\", not \"%s\"",
                                (unsigned long long) c.seq, c.node, o->node ? o->node : "");
                command_done(&c);
                return r;
        }
        if (c.link_epoch[0] && (!o->link_epoch || !streq(c.link_epoch, o->link_epoch))) {
                r = message_set(ret_reason, -ESTALE,
                                "command %llu was signed for link epoch %s, this node is at %s "
                                "(its link state was lost and started again)",
                                (unsigned long long) c.seq, c.link_epoch,
                                o->link_epoch ? o->link_epoch : "none");
                command_done(&c);
                return r;
        }
        if (!c.link_epoch[0] && o->require_epoch) {
                r = message_set(ret_reason, -ESTALE,
                                "command %llu names no link epoch, and this node's link state was made anew "
                                "(epoch %s): it takes only commands signed for it (a controller that "
                                "predates link epochs must be upgraded)",
                                (unsigned long long) c.seq, o->link_epoch ? o->link_epoch : "none");
                command_done(&c);
                return r;
        }
        if (c.seq <= o->last_applied_seq) {
                r = message_set(ret_reason, -ESTALE,
                                "command %llu replayed: commands up to %llu were already applied",
                                (unsigned long long) c.seq,
                                (unsigned long long) o->last_applied_seq);
                command_done(&c);
                return r;
        }
        if (o->now != SIGNATURE_NOW_UNKNOWN) {
                int64_t now = (int64_t) o->now, skew = o->clock_skew_sec > 0 ? o->clock_skew_sec : 0;
                if (now + skew < c.not_before) {
                        r = message_set(ret_reason, -EAGAIN,
                                        "command %llu is not valid before %lld (now %lld)",
                                        (unsigned long long) c.seq, (long long) c.not_before,
                                        (long long) now);
                        command_done(&c);
                        return r;
                }
                if (now - skew >= c.expires) {
                        r = message_set(ret_reason, -ETIME,
                                        "command %llu expired at %lld (now %lld)",
                                        (unsigned long long) c.seq, (long long) c.expires,
                                        (long long) now);
                        return refuse_signed(&c, ret, r);
                }
        }
        _cleanup_free_ char *params_reason = NULL;
        r = command_params_check(c.action, c.params, &params_reason);
        if (r < 0) {
                r = message_set(ret_reason, r, "command %llu: %s", (unsigned long long) c.seq,
                                params_reason ? params_reason : "bad parameters");
                return refuse_signed(&c, ret, r);
        }
        *ret = c;
        return 0;
}
