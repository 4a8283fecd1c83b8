/* A node's desired state (#19): the signed document, parsed and verified (pure but for
 * the signature check). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/ident.h"
#include "lib/json-util.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "proto/desired-state.h"

void desired_state_done(struct desired_state *d) {
        if (!d)
                return;
        json_decref(d->root);
        memset(d, 0, sizeof(*d));
}

static int copy_id(const char *s, char *buf, size_t size, unsigned flags) {
        if (!s || strlen(s) >= size || !ident_is_valid(s, size - 1, flags))
                return -EINVAL;
        snprintf(buf, size, "%s", s);
        return 0;
}

static bool only_keys(json_t *o, const char *const *keys, const char **ret_unknown) {
        *ret_unknown = json_first_unknown_key(o, keys);
        return !*ret_unknown;
}

static int parse_workload(json_t *w, size_t i, struct desired_workload *ret, char **ret_reason) {
        static const char *const keys[] = {"name", "spec", "deployment", "bundle", NULL};
        const char *unknown;
        if (!json_is_object(w))
                return message_set(ret_reason, -EBADMSG, "workloads[%zu]: expected an object", i);
        if (!only_keys(w, keys, &unknown))
                return message_set(ret_reason, -EBADMSG, "workloads[%zu].%.64s: unknown key", i, unknown);
        /* a workload name is also a cgroup: no dots */
        if (copy_id(json_string_value(json_object_get(w, "name")), ret->name, sizeof(ret->name), IDENT_NO_DOT) < 0)
                return message_set(ret_reason, -EBADMSG,
                                   "workloads[%zu].name: expected a workload name (1-64 of A-Z a-z 0-9 _ -)", i);
        json_t *v = json_object_get(w, "deployment");
        if (v && copy_id(json_string_value(v), ret->deployment, sizeof(ret->deployment), 0) < 0)
                return message_set(ret_reason, -EBADMSG, "workloads[%zu].deployment: expected an id", i);
        v = json_object_get(w, "bundle");
        if (v && copy_id(json_string_value(v), ret->bundle, sizeof(ret->bundle), 0) < 0)
                return message_set(ret_reason, -EBADMSG,
                                   "workloads[%zu].bundle: expected a bundle id (1-%d of A-Z a-z 0-9 . _ -)", i,
                                   DESIRED_BUNDLE_ID_MAX);
        json_t *spec = json_object_get(w, "spec");
        if (!json_is_object(spec))
                return message_set(ret_reason, -EBADMSG, "workloads[%zu].spec: expected a workload spec (an object)", i);
        const char *spec_name = json_string_value(json_object_get(spec, "name"));
        if (!spec_name || !streq(spec_name, ret->name))
                return message_set(ret_reason, -EBADMSG, "workloads[%zu].spec.name: must be \"%s\", the entry's name", i,
                                   ret->name);
        /* The bundle is what the node fetches for the spec's app: pinned, so the node
         * knows which member runs it before and after. */
        json_t *app = json_object_get(spec, "app");
        if (ret->bundle[0] && (!json_is_object(app) || !json_is_string(json_object_get(app, "version"))))
                return message_set(ret_reason, -EBADMSG,
                                   "workloads[%zu].bundle: the spec must name its app with a version (spec.app.version)",
                                   i);
        ret->spec = spec;
        return 0;
}

int desired_state_parse(const char *text, size_t len, struct desired_state *ret, char **ret_reason) {
        struct desired_state d = {0};
        if (len > DESIRED_TEXT_MAX)
                return message_set(ret_reason, -EBADMSG, "desired state: larger than %d bytes", DESIRED_TEXT_MAX);
        json_error_t err;
        d.root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!d.root)
                return message_set(ret_reason, -EBADMSG, "desired state:%d:%d: %s", err.line, err.column, err.text);
        static const char *const keys[] = {"format", "node", "version", "workloads", NULL};
        const char *unknown;
        int r;
        json_t *format = json_object_get(d.root, "format"), *version = json_object_get(d.root, "version"),
               *workloads = json_object_get(d.root, "workloads");
        if (!json_is_object(d.root))
                r = message_set(ret_reason, -EBADMSG, "desired state: expected an object");
        else if (!only_keys(d.root, keys, &unknown))
                r = message_set(ret_reason, -EBADMSG, "desired state: %.64s: unknown key", unknown);
        else if (!json_is_integer(format) || json_integer_value(format) != DESIRED_FORMAT)
                r = message_set(ret_reason, -EBADMSG, "desired state: format: expected %d", DESIRED_FORMAT);
        else if (copy_id(json_string_value(json_object_get(d.root, "node")), d.node, sizeof(d.node), 0) < 0)
                r = message_set(ret_reason, -EBADMSG, "desired state: node: expected a node id");
        else if (!json_is_integer(version) || json_integer_value(version) < 1)
                r = message_set(ret_reason, -EBADMSG, "desired state: version: expected an integer >= 1");
        else if (!json_is_array(workloads) || json_array_size(workloads) > DESIRED_MAX_WORKLOADS)
                r = message_set(ret_reason, -EBADMSG, "desired state: workloads: expected an array of at most %d",
                                DESIRED_MAX_WORKLOADS);
        else
                r = 0;
        if (r < 0) {
                desired_state_done(&d);
                return r;
        }
        d.version = (uint64_t) json_integer_value(version);
        size_t i;
        json_t *w;
        json_array_foreach(workloads, i, w) {
                r = parse_workload(w, i, &d.workloads[i], ret_reason);
                for (size_t k = 0; r >= 0 && k < i; k++)
                        if (streq(d.workloads[k].name, d.workloads[i].name))
                                r = message_set(ret_reason, -EBADMSG, "workloads[%zu].name: \"%s\" is listed twice", i,
                                                d.workloads[i].name);
                if (r < 0) {
                        desired_state_done(&d);
                        return r;
                }
                d.n_workloads++;
        }
        *ret = d;
        return 0;
}

json_t *desired_envelope_new(const char *text, const char *signature) {
        return json_pack("{s:s, s:s}", "document", text, "signature", signature);
}

int desired_envelope_verify(json_t *envelope, const struct desired_verify_options *o, struct desired_state *ret,
                            char **ret_reason) {
        static const char *const keys[] = {"document", "signature", NULL};
        const char *unknown;
        if (!json_is_object(envelope))
                return message_set(ret_reason, -EBADMSG, "desired state envelope: expected an object");
        if (!only_keys(envelope, keys, &unknown))
                return message_set(ret_reason, -EBADMSG, "desired state envelope: %.64s: unknown key", unknown);
        json_t *doc = json_object_get(envelope, "document"), *sig = json_object_get(envelope, "signature");
        if (!json_is_string(doc) || json_string_length(doc) > DESIRED_TEXT_MAX)
                return message_set(ret_reason, -EBADMSG,
                                   "desired state envelope: \"document\" must be a string of at most %d bytes",
                                   DESIRED_TEXT_MAX);
        if (!json_is_string(sig) || json_string_length(sig) > SIGNATURE_MAX_SIZE)
                return message_set(ret_reason, -EBADMSG,
                                   "desired state envelope: \"signature\" must be a string of at most %d bytes",
                                   SIGNATURE_MAX_SIZE);
        /* The signature first: an unsigned document is never parsed. */
        _cleanup_free_ char *why = NULL;
        int r = signature_verify(SIGNATURE_FOR_DESIRED, json_string_value(doc), json_string_length(doc),
                                 json_string_value(sig), json_string_length(sig), o->keyring, o->now, NULL, &why);
        if (r < 0)
                return message_set(ret_reason, r, "desired state: %s", why ? why : "the signature does not verify");
        struct desired_state d;
        r = desired_state_parse(json_string_value(doc), json_string_length(doc), &d, ret_reason);
        if (r < 0)
                return r;
        if (!o->node || !streq(d.node, o->node))
                r = message_set(ret_reason, -EXDEV, "desired state v%" PRIu64 ": for node %s, not this one", d.version,
                                d.node);
        else if (d.version == o->current_version)
                r = message_set(ret_reason, -EALREADY, "desired state v%" PRIu64 ": already in force", d.version);
        else if (d.version < o->current_version)
                r = message_set(ret_reason, -ESTALE, "desired state v%" PRIu64 ": older than v%" PRIu64 " in force",
                                d.version, o->current_version);
        if (r < 0) {
                desired_state_done(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int desired_document_build(const char *node, uint64_t version, json_t *workloads, char **ret_text,
                           char **ret_reason) {
        if (version > INT64_MAX)
                return message_set(ret_reason, -EINVAL, "desired state: version out of range");
        json_auto_t *doc = json_pack("{s:i, s:s, s:I, s:O}", "format", DESIRED_FORMAT, "node", node ? node : "",
                                     "version", (json_int_t) version, "workloads", workloads ? workloads : json_null());
        if (!doc)
                return message_set(ret_reason, -EINVAL, "desired state: the node id or the workloads are not JSON");
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        /* What a node would refuse is never signed: the same parser judges it here. */
        struct desired_state d;
        int r = desired_state_parse(text, strlen(text), &d, ret_reason);
        if (r < 0)
                return r == -EBADMSG ? -EINVAL : r;
        desired_state_done(&d);
        *ret_text = TAKE_PTR(text);
        return 0;
}
