/* Nodes in the store: the operator's views and the contact plans. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/command.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/rollout.h"
#include "controller/store-internal.h"
#include "controller/store-sql.h"
#include "controller/store.h"

/* ---- views -------------------------------------------------------------------------- */

static const char node_columns[] =
        "id, created, last_sync, syncs, boot_epoch, boot_id, last_command_seq, "
        "next_command_seq - 1, status, status_time, health, health_time, update_kind, "
        "update_body, update_time, "
        "(SELECT count(*) FROM records r WHERE r.node = nodes.id), "
        "(SELECT count(*) FROM commands c WHERE c.node = nodes.id AND c.state IN "
        "('queued', 'sent')), passes, link_epoch, link_resets, cert_serial, cert_not_after, "
        "renew_expired_until ";

/* What a fleet table shows of a node: booted slot and version (its status), level and
 * power (its last health report). */
static json_t *node_summary(json_t *status, json_t *health) {
        json_t *u = json_object_get(json_object_get(status, "subsystems"), "update");
        json_t *battery = json_object_get(
                json_object_get(json_object_get(health, "metrics"), "battery.capacity_percent"),
                "last");
        return json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "slot", json_object_get(u, "booted_slot"),
                         "version", json_object_get(u, "version"), "update_phase",
                         json_object_get(u, "phase"), "level", json_object_get(health, "level"),
                         "battery_percent", battery);
}

static json_t *node_row(struct store_stmt *st, bool full) {
        json_t *o = json_pack(
                "{s:s,s:I,s:o,s:I,s:o,s:o,s:I,s:I,s:I,s:I}", "id",
                store_col_text(st, 0), "created",
                (json_int_t) store_col_int64(st, 1), "last_sync", store_col_int_or_null(st, 2),
                "syncs", (json_int_t) store_col_int64(st, 3), "boot_epoch",
                store_col_int_or_null(st, 4), "boot_id", store_col_string_or_null(st, 5),
                "last_command_seq", (json_int_t) store_col_int64(st, 6), "last_queued_seq",
                (json_int_t) store_col_int64(st, 7), "records",
                (json_int_t) store_col_int64(st, 15), "commands_pending",
                (json_int_t) store_col_int64(st, 16));
        if (!o)
                return NULL;
        json_object_set_new(o, "update",
                            store_col_is_null(st, 12)
                                    ? json_null()
                                    : json_pack("{s:o,s:o,s:o}", "kind",
                                                store_col_string_or_null(st, 12), "body",
                                                store_col_json(st, 13), "time",
                                                store_col_int_or_null(st, 14)));
        json_object_set_new(o, "health_time", store_col_int_or_null(st, 11));
        json_object_set_new(o, "passes", json_integer(store_col_int64(st, 17)));
        /* a new link epoch: the node lost its link state (controller/store-sync.c) */
        json_object_set_new(o, "link_epoch", store_col_string_or_null(st, 18));
        json_object_set_new(o, "link_resets", json_integer(store_col_int64(st, 19)));
        /* the client certificate of its last sync, and an operator's leave to renew an
         * expired one (controller/node-cert.h) */
        json_object_set_new(o, "certificate",
                            json_pack("{s:o, s:o, s:o}", "serial", store_col_string_or_null(st, 20), "not_after",
                                      store_col_int_or_null(st, 21), "renew_expired_until",
                                      store_col_int_or_null(st, 22)));
        {
                json_auto_t *status = store_col_json(st, 8), *health = store_col_packed(st, 10);
                json_object_set_new(o, "summary", node_summary(status, health));
        }
        if (full) {
                json_object_set_new(o, "status", store_col_json(st, 8));
                json_object_set_new(o, "status_time", store_col_int_or_null(st, 9));
                json_object_set_new(o, "health", store_col_packed(st, 10));
        }
        return o;
}

static json_t *node_summary_row(struct store_stmt *st) {
        return node_row(st, false);
}

int store_nodes_list(struct store *s, json_t **ret) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "SELECT %s FROM nodes ORDER BY id", node_columns);
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st, sql, "");
        if (r < 0)
                return r;
        return store_rows_json(s, st, node_summary_row, ret);
}

int store_node_show(struct store *s, const char *node, json_t **ret) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "SELECT %s FROM nodes WHERE id = ?", node_columns);
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(s, &st, sql, "t", node);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        _cleanup_(json_decrefp) json_t *o = node_row(st, true);
        if (!o)
                return -ENOMEM;
        json_t *commands = NULL, *plan = NULL;
        r = store_commands_list(s, node, &commands);
        if (r < 0)
                return r;
        json_object_set_new(o, "commands", commands);
        r = store_contact_plan_get(s, node, &plan);
        if (r < 0)
                return r;
        json_object_set_new(o, "contact_plan", plan);
        json_t *groups = NULL;
        r = store_node_groups(s, node, &groups);
        if (r < 0)
                return r;
        json_object_set_new(o, "groups", groups);

        /* Records by kind, so an operator sees what the node has been saying. */
        _cleanup_stmt_ struct store_stmt *kinds = NULL;
        r = store_query(s, &kinds,
                        "SELECT kind, count(*) FROM records WHERE node = ? GROUP BY kind "
                        "ORDER BY kind",
                        "t", node);
        if (r < 0)
                return r;
        json_t *by_kind = json_object();
        if (!by_kind)
                return -ENOMEM;
        json_object_set_new(o, "records_by_kind", by_kind);
        while ((r = store_step(s, kinds)) > 0)
                json_object_set_new(by_kind, store_col_text(kinds, 0),
                                    json_integer(store_col_int64(kinds, 1)));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- contact plans ------------------------------------------------------------------ */

int store_contact_plan_set(struct store *s, const char *node, json_t *plan, int64_t now) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = store_node_ensure(s, node, now);
        if (r < 0)
                return r;
        r = store_exec(s, "UPDATE nodes SET contact_plan = ? WHERE id = ?", "jt", plan, node);
        if (r < 0)
                return r;
        /* its windows move the report deadlines of its memberships (their due times) */
        r = store_node_memberships_refresh(s, node, now);
        if (r < 0)
                return r;
        return commit(&guard);
}

json_t *store_col_contact_plan(struct store_stmt *st, int i) {
        json_t *plan = st ? store_col_json(st, i) : json_null();
        if (!json_is_object(plan)) {
                json_decref(plan);
                plan = json_pack("{s:[]}", "windows");
        }
        return plan;
}

int store_contact_plan_get(struct store *s, const char *node, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query_row(s, &st, "SELECT contact_plan FROM nodes WHERE id = ?", "t", node);
        if (r < 0)
                return r;
        json_t *plan = store_col_contact_plan(r > 0 ? st : NULL, 0);
        if (!plan)
                return -ENOMEM;
        *ret = plan;
        return 0;
}

/* ---- certificates ------------------------------------------------------------------- */

/* In one transaction, the node made if new, then sql run with (value, node). */
static int node_update(struct store *s, const char *node, int64_t now, const char *sql, int64_t value) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        r = store_node_ensure(s, node, now);
        if (r < 0)
                return r;
        r = store_exec(s, sql, "it", value, node);
        if (r < 0)
                return r;
        return commit(&guard);
}

int store_node_renew_allow(struct store *s, const char *node, int64_t until, int64_t now) {
        return node_update(s, node, now, "UPDATE nodes SET renew_expired_until = ? WHERE id = ?", until);
}

int store_node_certs_revoke(struct store *s, const char *node, int64_t before, int64_t now) {
        return node_update(s, node, now,
                           "UPDATE nodes SET certs_revoked_before = max(?1, coalesce(certs_revoked_before, 0)) "
                           "WHERE id = ?2",
                           before);
}

int store_node_certs_revoked_before(struct store *s, const char *node, int64_t *ret) {
        *ret = 0;
        int r = store_get_int64(s, ret, "SELECT coalesce(certs_revoked_before, 0) FROM nodes WHERE id = ?", "t", node);
        return r < 0 ? r : 0;
}

int store_node_renew_allowed(struct store *s, const char *node, int64_t now, int64_t *ret_until) {
        int64_t until = 0;
        int r = store_get_int64(s, &until, "SELECT renew_expired_until FROM nodes WHERE id = ? AND "
                                "renew_expired_until IS NOT NULL", "t", node);
        if (r < 0)
                return r;
        if (ret_until)
                *ret_until = r > 0 ? until : 0;
        return r > 0 && until > now;
}

int store_node_cert_issued(struct store *s, const char *node, const char *serial, int64_t not_after,
                           int64_t now, bool expired_renewal, int64_t max_per_day) {
        int r = store_begin(s);
        if (r < 0)
                return r;
        _cleanup_transaction_ struct store *guard = s;
        int64_t recent = 0;
        if (max_per_day > 0 && (r = store_node_certs_since(s, node, now - 86400, &recent)) < 0)
                return r;
        if (max_per_day > 0 && recent >= max_per_day)
                return -EDQUOT;
        r = store_exec(s, "INSERT INTO node_certs (node, serial, issued, not_after, expired_renewal) "
                       "VALUES (?, ?, ?, ?, ?)", "ttiii", node, serial, now, not_after,
                       (int64_t) expired_renewal);
        if (r < 0)
                return r;
        return commit(&guard);
}

int store_node_certs_since(struct store *s, const char *node, int64_t since, int64_t *ret) {
        *ret = 0;
        int r = store_get_int64(s, ret, "SELECT count(*) FROM node_certs WHERE node = ? AND issued > ?", "ti", node,
                                since);
        return r < 0 ? r : 0;
}

/* ---- the audit log ------------------------------------------------------------------- */

int store_audit_add(struct store *s, int64_t now, const char *who, const char *role, const char *method,
                    const char *path) {
        return store_exec(s, "INSERT INTO audit (time, who, role, method, path) VALUES (?, ?, ?, ?, ?)", "itttt",
                          now, who, role, method, path);
}

static json_t *audit_row(struct store_stmt *st) {
        return json_pack("{s:I, s:s, s:s, s:s, s:s}", "time", (json_int_t) store_col_int64(st, 0), "who",
                         store_col_text(st, 1), "role", store_col_text(st, 2),
                         "method", store_col_text(st, 3), "path",
                         store_col_text(st, 4));
}

int store_audit_list(struct store *s, int64_t limit, json_t **ret) {
        _cleanup_stmt_ struct store_stmt *st = NULL;
        int r = store_query(s, &st, "SELECT time, who, role, method, path FROM audit ORDER BY id DESC LIMIT ?", "i",
                            limit);
        if (r < 0)
                return r;
        return store_rows_json(s, st, audit_row, ret);
}
