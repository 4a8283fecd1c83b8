/* Desired states in the store (#19 item 3, docs/deployments.md). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "proto/desired-state.h"

/* Each bundle an entry names is here, and of the version its spec pins. */
static int bundles_check(struct store *s, json_t *workloads, char **ret_reason) {
        size_t i;
        json_t *w;
        json_array_foreach(workloads, i, w) {
                const char *id = json_string_value(json_object_get(w, "bundle"));
                if (!id)
                        continue;
                struct store_bundle b;
                int r = store_bundle_get(s, id, &b);
                if (r == -ENOENT)
                        return message_set(ret_reason, -EINVAL,
                                           "workloads[%zu].bundle: no bundle \"%s\" on this controller "
                                           "(orbit-controller bundle upload)", i, id);
                if (r < 0)
                        return r;
                const char *pinned = json_string_value(json_object_get(
                        json_object_get(json_object_get(w, "spec"), "app"), "version"));
                if (pinned && !streq(pinned, b.version))
                        return message_set(ret_reason, -EINVAL,
                                           "workloads[%zu].bundle: bundle \"%s\" holds version %s, the spec pins %s", i,
                                           id, b.version, pinned);
        }
        return 0;
}

int store_desired_set_locked(struct store *s, const char *node, json_t *workloads, int64_t if_version, int64_t now,
                             const char *by, store_sign_fn sign, void *userdata, int64_t *ret_version,
                             char **ret_reason) {
        if (!sign)
                return message_set(ret_reason, -ENOKEY, "this controller signs nothing (it runs without --command-key)");
        int r = store_node_ensure(s, node, now);
        if (r < 0)
                return r;
        int64_t current = 0;
        r = store_get_int64(s, &current, "SELECT coalesce(max(version), 0) FROM desired_states WHERE node = ?", "t",
                            node);
        if (r < 0)
                return r;
        if (if_version >= 0 && if_version != current)
                return message_set(ret_reason, -ESTALE, "the desired state of %s is at v%" PRId64 ", not v%" PRId64,
                                   node, current, if_version);
        /* The next version is above what the node says it has in force too: after a restore
         * of an older database, a version the node has already would be dropped by it as
         * "already in force", its content never acted on, and an older one refused. */
        int64_t said = 0;
        r = store_get_int64(s, &said, "SELECT coalesce(desired_version, 0) FROM nodes WHERE id = ?", "t", node);
        if (r < 0)
                return r;
        int64_t next = (said > current ? said : current);
        if (next >= INT64_MAX)
                return message_set(ret_reason, -EINVAL, "the desired state of %s: no version after v%" PRId64, node,
                                   next);
        next++;
        if (!json_is_array(workloads))
                return message_set(ret_reason, -EINVAL, "workloads: expected an array");
        _cleanup_free_ char *text = NULL, *signature = NULL;
        r = desired_document_build(node, (uint64_t) next, workloads, &text, ret_reason);
        if (r < 0)
                return r;
        r = bundles_check(s, workloads, ret_reason);
        if (r < 0)
                return r;
        r = sign(userdata, text, &signature, ret_reason);
        if (r < 0)
                return r;
        r = store_exec(s, "INSERT INTO desired_states (node, version, document, signature, created, by) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                       "tittit", node, next, text, signature, now, by);
        if (r < 0)
                return r;
        *ret_version = next;
        return 0;
}

int store_desired_set(struct store *s, const char *node, json_t *workloads, int64_t if_version, int64_t now,
                      const char *by, store_sign_fn sign, void *userdata, json_t **ret, char **ret_reason) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        int64_t version = 0;
        r = store_desired_set_locked(s, node, workloads, if_version, now, by, sign, userdata, &version, ret_reason);
        if (r < 0)
                return r;
        r = commit(&guard);
        if (r < 0)
                return r;
        if (ret)
                *ret = json_pack("{s:s, s:I, s:I}", "node", node, "version", (json_int_t) version, "workloads",
                                 (json_int_t) json_array_size(workloads));
        return 0;
}

int store_desired_workloads(struct store *s, const char *node, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *d = NULL;
        int r = store_query_row(s, &d, "SELECT document FROM desired_states WHERE node = ? ORDER BY version DESC LIMIT 1",
                                "t", node);
        if (r < 0)
                return r;
        json_t *doc = r > 0 ? json_loads(store_col_str(d, 0), 0, NULL) : NULL;
        json_t *w = json_object_get(doc, "workloads");
        *ret = json_is_array(w) ? json_deep_copy(w) : json_array();
        json_decref(doc);
        return *ret ? 0 : -ENOMEM;
}

int store_desired_report(struct store *s, const char *node, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *rec = NULL;
        int r = store_query_row(s, &rec,
                                "SELECT record FROM records WHERE node = ? AND "
                                "kind = 'desired.state' ORDER BY boot_epoch DESC, seq DESC LIMIT 1",
                                "t", node);
        if (r < 0)
                return r;
        json_t *raw = NULL;
        if (r > 0 && store_col_record(rec, 0, &raw) == -ENOMEM)
                return -ENOMEM;
        /* a record that does not read back says nothing, as one without a body */
        json_t *body = json_object_get(raw, "body");
        *ret = body ? json_incref(body) : NULL;
        json_decref(raw);
        return 0;
}

int store_desired_get(struct store *s, const char *node, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *n = NULL, *d = NULL;
        int r = store_query_row(s, &n, "SELECT desired_version, desired_refused FROM nodes WHERE id = ?", "t", node);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        json_auto_t *o = json_pack("{s:s, s:o, s:I}", "node", node, "node_version", store_col_int_or_null(n, 0),
                                   "node_refused", (json_int_t) store_col_int64(n, 1));
        if (!o)
                return -ENOMEM;
        r = store_query_row(s, &d,
                            "SELECT version, document, created, by FROM desired_states WHERE node = ? "
                            "ORDER BY version DESC LIMIT 1",
                            "t", node);
        if (r < 0)
                return r;
        json_t *doc = r > 0 ? json_loads(store_col_str(d, 1), 0, NULL) : json_null();
        if (json_object_set_new(o, "version", json_integer(r > 0 ? store_col_int64(d, 0) : 0)) < 0 ||
            json_object_set_new(o, "document", doc ? doc : json_null()) < 0 ||
            json_object_set_new(o, "created", r > 0 ? json_integer(store_col_int64(d, 2)) : json_null()) < 0 ||
            json_object_set_new(o, "by", r > 0 ? store_col_string_or_null(d, 3) : json_null()) < 0)
                return -ENOMEM;
        json_t *report = NULL;
        r = store_desired_report(s, node, &report);
        if (r < 0)
                return r;
        if (json_object_set_new(o, "report", report ? report : json_null()) < 0)
                return -ENOMEM;
        *ret = json_incref(o);
        return 0;
}

/* store_node_desired_apply (store-internal.h): what the node told is sent with the next
 * statement. */
int store_node_desired_apply(struct store *s, const char *node, int64_t has, int64_t refused,
                             int64_t told_version, int64_t told_refused, json_t **ret_envelope,
                             int64_t *ret_refused, bool *ret_newly_refused) {
        *ret_envelope = NULL;
        *ret_newly_refused = false;
        if (told_version >= 0) {
                int r = store_exec_later(s, "UPDATE nodes SET desired_version = ?, desired_refused = ? WHERE id = ?",
                                         "iit", told_version, told_refused, node);
                if (r < 0)
                        return r;
                *ret_newly_refused = told_refused > 0 && told_refused != refused;
                has = told_version;
                refused = told_refused;
        }
        *ret_refused = refused;
        if (has < 0) /* a node that never said: it predates desired states */
                return 0;
        _cleanup_stmt_ struct store_stmt *d = NULL;
        int r = store_query_row(s, &d,
                                "SELECT version, document, signature FROM desired_states WHERE node = ? "
                                "ORDER BY version DESC LIMIT 1",
                                "t", node);
        if (r <= 0)
                return r;
        int64_t newest = store_col_int64(d, 0);
        if (newest <= has || newest == refused)
                return 0;
        *ret_envelope = desired_envelope_new(store_col_str(d, 1), store_col_str(d, 2));
        return *ret_envelope ? 1 : -ENOMEM;
}
