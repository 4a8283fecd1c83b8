/* The node's desired state, kept and reconciled (agent/desired.h, docs/deployments.md). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/desired-plan.h"
#include "agent/desired.h"
#include "agent/trust-store.h"
#include "agent/trusted-time.h"
#include "health/collect.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "lib/sha256.h"
#include "lib/statefile.h"
#include "proto/desired-state.h"
#include "runtime/workload-spec.h"

#define STATE_NAME "desired-state"
/* The source of every workload a desired state made: how the node tells its own apart. */
#define SOURCE_PREFIX "desired state"
#define TICK_PENDING_USEC (1000000ULL)
#define TICK_IDLE_USEC (30 * 1000000ULL)
#define REASON_MAX 512

struct desired {
        sd_event *event;
        struct desired_hooks h;
        sd_event_source *timer;
        json_t *envelope;           /* the document in force, verified; NULL none */
        struct desired_state doc;   /* parsed from it */
        bool unverified;            /* one was kept but no longer verifies: nothing is done */
        int64_t refused;            /* the last version refused, 0 none */
        json_t *failed;             /* {"<bundle>": "why"}: installs that failed for this document */
        /* {"<name>": "<sha256 of the spec>"}: workloads this reconciler stopped to replace them
         * by that spec, kept before the stop, so that what is stopped either gets its
         * replacement or runs again, across a restart too */
        json_t *replacing;
        char installing[DESIRED_BUNDLE_ID_MAX + 1]; /* the bundle being installed for it, "" none */
        char *texts[DESIRED_MAX_WORKLOADS];  /* each entry's spec as the runtime keeps it */
        char *refusals[DESIRED_MAX_WORKLOADS]; /* a start refused for this document */
        json_t *reported;           /* the last desired.state body queued */
        /* failpoint (tests): while this file exists, no step follows a stop (a reboot lands
         * between stopping the old workload and starting the new) */
        char *hold_file;
        bool held;
        json_t *status;             /* the last look, for the status document */
        /* {"<name>": "<deployment>"}: workloads of a deployment an earlier document listed and
         * the one in force does not, until they are removed: their usage until then is still
         * that deployment's (the usage meter asks; not kept across a restart) */
        json_t *leaving;
};

static uint64_t now_mono(struct desired *d) {
        uint64_t t = 0;
        (void) sd_event_now(d->event, CLOCK_MONOTONIC, &t);
        return t;
}

static void push(struct desired *d, enum event_priority p, const char *kind, json_t *body) {
        if (body)
                (void) event_queue_push(d->h.events, p, kind, body, (uint64_t) trusted_clock_now_usec(), now_mono(d));
}

/* ---- the kept state ---------------------------------------------------------------------- */

static int save(struct desired *d) {
        json_auto_t *o = json_pack("{s:i, s:O?, s:I, s:O, s:s, s:O}", "format", 1, "envelope", d->envelope, "refused",
                                   (json_int_t) d->refused, "failed", d->failed, "installing", d->installing,
                                   "replacing", d->replacing);
        if (!o)
                return -ENOMEM;
        int r = statefile_save_json(d->h.cfg->state_dir, STATE_NAME, o);
        if (r < 0)
                log_error_errno(r, "desired state: cannot save %s/%s", d->h.cfg->state_dir, STATE_NAME);
        return r;
}

static void doc_clear(struct desired *d) {
        desired_state_done(&d->doc);
        json_decref(d->envelope);
        d->envelope = NULL;
        for (size_t i = 0; i < DESIRED_MAX_WORKLOADS; i++) {
                free(d->texts[i]);
                free(d->refusals[i]);
                d->texts[i] = d->refusals[i] = NULL;
        }
}

/* Take a verified document: the spec texts the runtime will keep, byte for byte. */
static int doc_take(struct desired *d, json_t *envelope, struct desired_state *doc) {
        if (!d->leaving)
                d->leaving = json_object();
        for (size_t i = 0; d->leaving && i < d->doc.n_workloads; i++) {
                const struct desired_workload *w = &d->doc.workloads[i];
                bool kept = false;
                for (size_t k = 0; k < doc->n_workloads && !kept; k++)
                        kept = streq(doc->workloads[k].name, w->name);
                if (!kept && w->deployment[0])
                        (void) json_object_set_new(d->leaving, w->name, json_string(w->deployment));
        }
        for (size_t k = 0; d->leaving && k < doc->n_workloads; k++)
                (void) json_object_del(d->leaving, doc->workloads[k].name);
        doc_clear(d);
        d->doc = *doc;
        *doc = (struct desired_state){0};
        d->envelope = json_incref(envelope);
        for (size_t i = 0; i < d->doc.n_workloads; i++) {
                d->texts[i] = json_dumps(d->doc.workloads[i].spec, JSON_COMPACT | JSON_SORT_KEYS);
                if (!d->texts[i])
                        return -ENOMEM;
        }
        return 0;
}

static int keyring(struct desired *d, struct signature_keyring **ret, char **ret_reason) {
        return trust_store_command_keyring(d->h.cfg->link.command_keyring_dir, ret, ret_reason);
}

static int verify(struct desired *d, json_t *envelope, uint64_t current, time_t now, struct desired_state *ret,
                  char **ret_reason) {
        struct signature_keyring *kr = NULL;
        int r = keyring(d, &kr, ret_reason);
        if (r < 0)
                return r;
        struct desired_verify_options o = {
                .node = d->h.node->node_id, .current_version = current, .now = now, .keyring = kr};
        r = desired_envelope_verify(envelope, &o, ret, ret_reason);
        signature_keyring_free(kr);
        return r;
}

static void load(struct desired *d) {
        _cleanup_free_ char *text = NULL;
        int r = statefile_load(d->h.cfg->state_dir, STATE_NAME, &text, NULL, NULL);
        if (r == -ENOENT)
                return;
        json_auto_t *o = r >= 0 ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
        json_t *envelope = json_object_get(o, "envelope"), *failed = json_object_get(o, "failed");
        const char *installing = json_string_value(json_object_get(o, "installing"));
        if (!json_is_object(o) || !json_is_integer(json_object_get(o, "refused")) || !json_is_object(failed) ||
            !installing) {
                log_error("desired state: %s/%s is not a desired state record; none is in force until the controller "
                          "sends one", d->h.cfg->state_dir, STATE_NAME);
                return;
        }
        d->refused = json_integer_value(json_object_get(o, "refused"));
        json_decref(d->failed);
        d->failed = json_incref(failed);
        snprintf(d->installing, sizeof(d->installing), "%s", installing);
        json_t *replacing = json_object_get(o, "replacing"); /* absent in a record of before */
        if (json_is_object(replacing)) {
                json_decref(d->replacing);
                d->replacing = json_incref(replacing);
        }
        if (!json_is_object(envelope))
                return;
        /* Verified again: a bit flipped on the medium, or a signer revoked since, is never
         * acted on. Its time was judged when it came. */
        struct desired_state doc;
        _cleanup_free_ char *why = NULL;
        r = verify(d, envelope, 0, SIGNATURE_NOW_UNKNOWN, &doc, &why);
        if (r < 0) {
                d->unverified = true;
                log_error("desired state: the one kept no longer verifies (%s): workloads stay as they are until "
                          "the controller sends one that does", why ? why : strerror(-r));
                push(d, EVENT_CRITICAL, "desired.refused",
                     json_pack("{s:s, s:s}", "reason", why ? why : strerror(-r), "what", "the desired state kept"));
                return;
        }
        if (doc_take(d, envelope, &doc) < 0)
                doc_clear(d);
        else
                log_info("desired state: v%" PRIu64 " in force, %zu workloads", d->doc.version, d->doc.n_workloads);
}

/* ---- looking ----------------------------------------------------------------------------- */

static bool ours(const struct runtime_workload_info *info) {
        return info->source && strncmp(info->source, SOURCE_PREFIX, strlen(SOURCE_PREFIX)) == 0;
}

/* MemAvailable in bytes, from <procfs_root>/meminfo by the health collector's parser; -1 unknown. */
static int64_t mem_available(struct desired *d) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/meminfo", d->h.cfg->paths.procfs_root);
        uint64_t total, avail;
        if (read_file_bounded(path, 64 * 1024, &text, NULL) < 0 || health_parse_meminfo(text, &total, &avail) < 0)
                return -1;
        return avail > INT64_MAX ? INT64_MAX : (int64_t) avail;
}

/*
 * What would refuse the entry before anything is stopped for it: what the runtime's submit
 * would refuse (syntax, binds, a privileged spec from the ground), a memory limit the node
 * cannot give (not judged again once the old one was stopped for this very spec). reason
 * gets it ("" none).
 */
static void check_entry(struct desired *d, size_t i, const struct runtime_workload_info *old, bool stopped_for_it,
                        char *reason, size_t size) {
        reason[0] = '\0';
        struct workload_spec spec;
        _cleanup_free_ char *why = NULL;
        char source[64];
        snprintf(source, sizeof(source), "workloads[%zu].spec", i);
        /* what the runtime's submit would refuse (binds, privileged), refused before the stop */
        if (runtime_workload_check(d->h.runtime, RUNTIME_ORIGIN_LINK, source, d->texts[i], strlen(d->texts[i]),
                                   &why) < 0 ||
            workload_spec_parse_text(source, d->texts[i], strlen(d->texts[i]), &spec, NULL) < 0) {
                snprintf(reason, size, "%s", why ? why : "an invalid spec");
                return;
        }
        int64_t need = spec.resources.memory_max, avail = mem_available(d);
        /* Judged before the stop, with what the old one held: once it is stopped for this
         * entry, what it held is no longer told apart from what the node has. */
        if (!reason[0] && !stopped_for_it && need > 0 && need != WORKLOAD_LIMIT_MAX && avail >= 0) {
                int64_t held = 0;
                json_auto_t *w = old ? runtime_workload_json(d->h.runtime, d->doc.workloads[i].name) : NULL;
                held = json_integer_value(json_object_get(json_object_get(w, "usage"), "memory_bytes"));
                if (need > avail + held)
                        /* not what is available: the reason goes up in a record whenever
                         * it changes, and that figure changes at every look */
                        snprintf(reason, size, "not enough memory: its memory_max is %" PRId64
                                 " MiB, more than the node has available", need >> 20);
        }
        workload_spec_free(&spec);
}

static const char *app_version(json_t *spec, const char **ret_name) {
        json_t *app = json_object_get(spec, "app");
        *ret_name = json_string_value(json_object_get(app, "name"));
        return json_string_value(json_object_get(app, "version"));
}

/* The spec's "tenant", NULL none. */
static const char *spec_tenant(json_t *spec) {
        return json_string_value(json_object_get(spec, "tenant"));
}

/* An install this reconciler asked for has ended: the version is there, or it failed. */
static void install_ended(struct desired *d) {
        if (!d->installing[0] || !d->h.update)
                return;
        struct update_view uv;
        update_manager_view(d->h.update, &uv);
        if (uv.busy)
                return;
        for (size_t i = 0; i < d->doc.n_workloads; i++) {
                if (!streq(d->doc.workloads[i].bundle, d->installing))
                        continue;
                const char *name, *version = app_version(d->doc.workloads[i].spec, &name);
                if (name && version && !runtime_app_has_version(d->h.runtime, name, version)) {
                        char why[REASON_MAX];
                        snprintf(why, sizeof(why), "its artifact (bundle %s) was refused: %s", d->installing,
                                 uv.phase == UPDATE_COMMITTED ? "the install ended without that version"
                                                              : uv.reason[0] ? uv.reason : "the install failed");
                        log_warning("desired state v%" PRIu64 ": workload %s: %s", d->doc.version,
                                    d->doc.workloads[i].name, why);
                        (void) json_object_set_new(d->failed, d->installing, json_string(why));
                }
                break;
        }
        d->installing[0] = '\0';
        (void) save(d);
}

/* ---- one step ---------------------------------------------------------------------------- */

static void entry_refused(struct desired *d, size_t i, const char *why) {
        free(d->refusals[i]);
        d->refusals[i] = strdup(why);
        log_warning("desired state v%" PRIu64 ": workload %s refused: %s", d->doc.version, d->doc.workloads[i].name, why);
}

/* Mark name as stopped by this reconciler to replace it by spec text (NULL: forget the
 * mark): saved before the stop. */
static void replacing_set(struct desired *d, const char *name, const char *text) {
        char hex[SHA256_HEX_SIZE] = "";
        if (text) {
                uint8_t digest[SHA256_DIGEST_SIZE];
                sha256_buffer(text, strlen(text), digest);
                sha256_to_hex(digest, hex);
        }
        const char *now = json_string_value(json_object_get(d->replacing, name));
        if (text ? now && streq(now, hex) : !now)
                return;
        if (text)
                (void) json_object_set_new(d->replacing, name, json_string(hex));
        else
                (void) json_object_del(d->replacing, name);
        (void) save(d);
}

/* Was name stopped by this reconciler for exactly this spec text (its checks passed then)? */
static bool replacing_for(struct desired *d, const char *name, const char *text) {
        const char *was = json_string_value(json_object_get(d->replacing, name));
        if (!was)
                return false;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_buffer(text, strlen(text), digest);
        sha256_to_hex(digest, hex);
        return streq(was, hex);
}

static void do_submit(struct desired *d, size_t i, const struct runtime_workload_info *old) {
        const struct desired_workload *w = &d->doc.workloads[i];
        char source[64];
        snprintf(source, sizeof(source), SOURCE_PREFIX " v%" PRIu64, d->doc.version);
        _cleanup_free_ char *old_text = old ? strdup(old->spec_text) : NULL, *old_source = old ? strdup(old->source) : NULL;
        _cleanup_free_ char *why = NULL;
        int r = runtime_workload_submit_from(d->h.runtime, RUNTIME_ORIGIN_LINK, source, d->texts[i],
                                             strlen(d->texts[i]), &why);
        replacing_set(d, w->name, NULL);
        if (r >= 0) {
                log_info("desired state v%" PRIu64 ": workload %s %s", d->doc.version, w->name,
                         old ? "replaced and started" : "made and started");
                return;
        }
        char reason[REASON_MAX];
        snprintf(reason, sizeof(reason), "it could not start: %s", why ? why : strerror(-r));
        entry_refused(d, i, reason);
        if (old_text) {
                /* What ran before runs again: a replacement that cannot start never leaves the
                 * name without its workload. */
                _cleanup_free_ char *again = NULL;
                if (runtime_workload_submit_from(d->h.runtime, RUNTIME_ORIGIN_LINK, old_source, old_text,
                                                 strlen(old_text), &again) < 0)
                        log_error("desired state: workload %s: the previous spec could not start again either: %s",
                                  w->name, again ? again : "?");
        }
}

static void do_install(struct desired *d, size_t i) {
        const struct desired_workload *w = &d->doc.workloads[i];
        const char *app;
        (void) app_version(w->spec, &app);
        _cleanup_free_ char *url = NULL, *why = NULL;
        json_t *res = NULL;
        if (asprintf(&url, "%s/v1/bundles/%s", d->h.cfg->link.url ? d->h.cfg->link.url : "", w->bundle) < 0)
                return;
        int r = d->h.update ? update_manager_install_app_remote(d->h.update, url, app, &res, &why)
                            : message_set(&why, -ENOTSUP, "updates are disabled on this node (update.enabled)");
        json_decref(res);
        if (r == -EBUSY)
                return; /* another install: the next look waits for it */
        if (r < 0) {
                char reason[REASON_MAX];
                snprintf(reason, sizeof(reason), "its artifact (bundle %s) cannot be installed: %s", w->bundle,
                         why ? why : strerror(-r));
                (void) json_object_set_new(d->failed, w->bundle, json_string(reason));
        } else {
                log_info("desired state v%" PRIu64 ": installing bundle %s for workload %s", d->doc.version, w->bundle,
                         w->name);
                snprintf(d->installing, sizeof(d->installing), "%s", w->bundle);
        }
        (void) save(d);
}

/* The names of the workloads an earlier desired state made that this one does not list. */
static size_t extras(struct desired *d, struct desired_extra_view *out, char names[][DESIRED_ID_MAX + 1], size_t max) {
        json_auto_t *all = runtime_workloads_json(d->h.runtime);
        size_t n = 0, i;
        json_t *w;
        json_array_foreach(json_object_get(all, "workloads") ?: all, i, w) {
                const char *name = json_string_value(json_object_get(w, "name"));
                struct runtime_workload_info info;
                if (!name || n >= max || !runtime_workload_info(d->h.runtime, name, &info) || !ours(&info))
                        continue;
                bool listed = false;
                for (size_t k = 0; k < d->doc.n_workloads && !listed; k++)
                        listed = streq(d->doc.workloads[k].name, name);
                if (listed)
                        continue;
                snprintf(names[n], DESIRED_ID_MAX + 1, "%s", name);
                out[n] = (struct desired_extra_view){
                        .name = names[n], .busy = info.busy, .stopping = info.busy && streq(info.state, "stopping")};
                n++;
        }
        return n;
}

#define MAX_EXTRAS 64

static bool step(struct desired *d) {
        if (d->held) {
                if (access(d->hold_file, F_OK) == 0)
                        return true;
                d->held = false;
                log_notice("failpoint: the desired state goes on");
        }
        install_ended(d);
        size_t n = d->doc.n_workloads;
        bool settling = false;
        struct desired_entry_view entries[DESIRED_MAX_WORKLOADS];
        struct runtime_workload_info infos[DESIRED_MAX_WORKLOADS];
        bool have[DESIRED_MAX_WORKLOADS];
        char checks[DESIRED_MAX_WORKLOADS][REASON_MAX];
        for (size_t i = 0; i < n; i++) {
                const struct desired_workload *w = &d->doc.workloads[i];
                have[i] = runtime_workload_info(d->h.runtime, w->name, &infos[i]);
                const char *app, *version = app_version(w->spec, &app);
                struct desired_entry_view *e = &entries[i];
                *e = (struct desired_entry_view){
                        .name = w->name,
                        .exists = have[i],
                        .ours = have[i] && ours(&infos[i]),
                        .same_spec = have[i] && infos[i].spec_text && streq(infos[i].spec_text, d->texts[i]),
                        .busy = have[i] && infos[i].busy,
                        .stopping = have[i] && infos[i].busy && streq(infos[i].state, "stopping"),
                        .app_missing = app && version && !runtime_app_has_version(d->h.runtime, app, version),
                        .bundle = w->bundle,
                        .refusal = d->refusals[i],
                        .replacing = json_object_get(d->replacing, w->name) != NULL,
                };
                if (!e->refusal && w->bundle[0])
                        e->refusal = json_string_value(json_object_get(d->failed, w->bundle));
                if (!e->refusal && !(e->ours && e->same_spec)) {
                        check_entry(d, i, have[i] ? &infos[i] : NULL,
                                    !e->busy && replacing_for(d, w->name, d->texts[i]), checks[i],
                                    sizeof(checks[i]));
                        if (checks[i][0])
                                e->refusal = checks[i];
                }
        }
        struct desired_extra_view xs[MAX_EXTRAS];
        char names[MAX_EXTRAS][DESIRED_ID_MAX + 1];
        struct update_view uv = {0};
        if (d->h.update)
                update_manager_view(d->h.update, &uv);
        struct desired_view v = {
                .entries = entries,
                .n_entries = n,
                .extras = xs,
                .n_extras = extras(d, xs, names, MAX_EXTRAS),
                .update_busy = uv.busy,
                .installing = d->installing[0] ? d->installing : NULL,
        };
        enum desired_entry_state states[DESIRED_MAX_WORKLOADS];
        const char *refusals[DESIRED_MAX_WORKLOADS];
        struct desired_step s;
        desired_plan(&v, &s, states, refusals);
        /* a mark outlives nothing it was for: a name done, gone, not listed, no longer ours,
         * or running (started again by someone: a stop for it sets the mark again) */
        const char *key;
        json_t *value, *tmp;
        json_object_foreach_safe(d->replacing, tmp, key, value) {
                bool keep = false;
                for (size_t i = 0; i < n && !keep; i++)
                        keep = streq(d->doc.workloads[i].name, key) && entries[i].exists && entries[i].ours &&
                               !entries[i].same_spec && !(entries[i].busy && !entries[i].stopping);
                if (!keep)
                        replacing_set(d, key, NULL);
        }

        /* what the node reached, and each workload's state: a record when it changes */
        bool reached = s.kind == DESIRED_STEP_NONE;
        json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++) {
                reached = reached && states[i] == DESIRED_ENTRY_DONE;
                bool done = states[i] == DESIRED_ENTRY_DONE && have[i];
                /* running, its first probe still to come: looked at every second, so its report
                 * (a deployment's stage waits for it) says healthy as soon as it is */
                settling = settling || (done && infos[i].health < 0 && streq(infos[i].state, "running"));
                json_t *o = json_pack("{s:s, s:s, s:s*, s:s*, s:s*}", "name", entries[i].name, "state",
                                      desired_entry_state_to_string(states[i]), "workload",
                                      done ? infos[i].state : NULL, "health",
                                      !done ? NULL : infos[i].health > 0 ? "healthy" : infos[i].health == 0 ? "unhealthy"
                                                                                                            : "unknown",
                                      "reason", refusals[i]);
                if (o)
                        json_array_append_new(list, o);
        }
        json_t *body = json_pack("{s:I, s:b, s:o*}", "version", (json_int_t) d->doc.version, "reached", reached,
                                 "workloads", list);
        if (body && !json_equal(body, d->reported)) {
                bool refused = false;
                for (size_t i = 0; i < n; i++)
                        refused = refused || states[i] == DESIRED_ENTRY_REFUSED;
                if (reached)
                        log_info("desired state v%" PRIu64 " reached: %zu workloads", d->doc.version, n);
                json_decref(d->reported);
                d->reported = json_incref(body);
                push(d, refused || reached ? EVENT_HIGH : EVENT_NORMAL, "desired.state", json_incref(body));
        }
        json_decref(d->status);
        d->status = body;

        const struct desired_workload *w = s.extra ? NULL : &d->doc.workloads[s.index];
        _cleanup_free_ char *why = NULL;
        switch (s.kind) {
        case DESIRED_STEP_NONE:
        case DESIRED_STEP_WAIT:
                break;
        case DESIRED_STEP_INSTALL:
                do_install(d, s.index);
                break;
        case DESIRED_STEP_STOP:
                log_info("desired state v%" PRIu64 ": stopping workload %s (%s)", d->doc.version,
                         s.extra ? xs[s.index].name : w->name, s.extra ? "no longer listed" : "to replace it");
                if (!s.extra)
                        replacing_set(d, w->name, d->texts[s.index]);
                (void) runtime_workload_stop(d->h.runtime, s.extra ? xs[s.index].name : w->name, &why);
                if (d->hold_file && access(d->hold_file, F_OK) == 0) {
                        d->held = true;
                        log_notice("failpoint: the desired state holds after stopping %s while %s exists",
                                   s.extra ? xs[s.index].name : w->name, d->hold_file);
                }
                break;
        case DESIRED_STEP_SUBMIT:
                do_submit(d, s.index, have[s.index] ? &infos[s.index] : NULL);
                break;
        case DESIRED_STEP_RESTORE:
                /* stopped for a replacement that cannot follow now: what ran runs again */
                if (runtime_workload_start_from(d->h.runtime, w->name, RUNTIME_ORIGIN_LINK, &why) < 0)
                        log_error("desired state: workload %s: stopped to be replaced, and cannot start again: %s",
                                  w->name, why ? why : "?");
                else
                        log_notice("desired state v%" PRIu64 ": workload %s started again: its replacement %s",
                                   d->doc.version, w->name,
                                   states[s.index] == DESIRED_ENTRY_REFUSED ? "was refused"
                                                                           : "waits for its app version");
                replacing_set(d, w->name, NULL);
                break;
        case DESIRED_STEP_REMOVE:
                if (runtime_workload_remove(d->h.runtime, xs[s.index].name, &why) < 0)
                        log_warning("desired state: workload %s: %s", xs[s.index].name, why ? why : "cannot remove");
                else if (d->leaving)
                        (void) json_object_del(d->leaving, xs[s.index].name); /* after its last sample */
                break;
        }
        return s.kind != DESIRED_STEP_NONE || settling;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct desired *d = userdata;
        bool more = d->envelope && !d->unverified ? step(d) : false;
        (void) sd_event_source_set_time(src, now_mono(d) + (more ? TICK_PENDING_USEC : TICK_IDLE_USEC));
        (void) sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

void desired_kick(struct desired *d) {
        if (!d || !d->timer)
                return;
        (void) sd_event_source_set_time(d->timer, now_mono(d));
        (void) sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

/* ---- the link's side ---------------------------------------------------------------------- */

/* The version a refused document claims, for the controller to stop sending it: read, never
 * trusted (an unverified document is not parsed for anything else). */
static int64_t claimed_version(json_t *envelope) {
        json_auto_t *doc = json_loads(json_string_value(json_object_get(envelope, "document")) ?: "", 0, NULL);
        json_t *v = json_object_get(doc, "version");
        return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

void desired_offer(struct desired *d, json_t *envelope) {
        if (!d)
                return;
        struct desired_state doc;
        _cleanup_free_ char *why = NULL;
        time_t now = d->h.cfg->link.check_command_time ? (time_t) trusted_clock_now(NULL) : SIGNATURE_NOW_UNKNOWN;
        uint64_t current = d->envelope && !d->unverified ? d->doc.version : 0;
        int r = verify(d, envelope, current, now, &doc, &why);
        if (r == -EALREADY)
                return;
        if (r < 0) {
                int64_t v = claimed_version(envelope);
                log_warning("desired state v%" PRId64 " refused: %s", v, why ? why : strerror(-r));
                if (v != d->refused) {
                        d->refused = v;
                        (void) save(d);
                        push(d, EVENT_HIGH, "desired.refused",
                             json_pack("{s:I, s:s}", "version", (json_int_t) v, "reason", why ? why : strerror(-r)));
                }
                return;
        }
        uint64_t version = doc.version;
        if (doc_take(d, envelope, &doc) < 0) {
                doc_clear(d);
                return;
        }
        d->unverified = false;
        json_decref(d->failed);
        d->failed = json_object();
        if (save(d) < 0)
                log_warning("desired state v%" PRIu64 ": not saved; it is acted on, and asked for again after a restart",
                            version);
        log_notice("desired state v%" PRIu64 " accepted: %zu workloads", version, d->doc.n_workloads);
        push(d, EVENT_HIGH, "desired.accepted",
             json_pack("{s:I, s:I}", "version", (json_int_t) version, "workloads", (json_int_t) d->doc.n_workloads));
        desired_kick(d);
}

void desired_said(struct desired *d, int64_t *ret_version, int64_t *ret_refused) {
        *ret_version = d->envelope && !d->unverified ? (int64_t) d->doc.version : 0;
        *ret_refused = d->refused;
}

json_t *desired_status_json(struct desired *d) {
        if (d->unverified)
                return json_pack("{s:i, s:s}", "version", 0, "summary", "the kept desired state no longer verifies");
        if (!d->envelope)
                return json_pack("{s:i, s:I, s:s}", "version", 0, "refused", (json_int_t) d->refused, "summary",
                                 "no desired state");
        json_t *o = d->status ? json_deep_copy(d->status)
                              : json_pack("{s:I, s:b}", "version", (json_int_t) d->doc.version, "reached", 0);
        if (o) {
                json_object_set_new(o, "refused", json_integer(d->refused));
                if (d->installing[0])
                        json_object_set_new(o, "installing", json_string(d->installing));
        }
        return o;
}

/* ---- life -------------------------------------------------------------------------------- */

int desired_new(sd_event *event, const struct desired_hooks *hooks, struct desired **ret) {
        struct desired *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->event = sd_event_ref(event);
        d->h = *hooks;
        d->failed = json_object();
        d->replacing = json_object();
        const char *hold = getenv("ORBIT_FAILPOINT_DESIRED_HOLD_FILE");
        if (hold && *hold)
                d->hold_file = strdup(hold);
        if (!d->failed || !d->replacing) {
                desired_free(d);
                return -ENOMEM;
        }
        load(d);
        int r = sd_event_add_time(event, &d->timer, CLOCK_MONOTONIC, now_mono(d), 0, on_timer, d);
        if (r < 0) {
                desired_free(d);
                return r;
        }
        (void) sd_event_source_set_description(d->timer, "desired-state");
        *ret = d;
        return 0;
}

void desired_free(struct desired *d) {
        if (!d)
                return;
        sd_event_source_disable_unref(d->timer);
        doc_clear(d);
        json_decref(d->failed);
        json_decref(d->replacing);
        json_decref(d->reported);
        json_decref(d->status);
        json_decref(d->leaving);
        free(d->hold_file);
        sd_event_unref(d->event);
        free(d);
}

void desired_usage_labels(struct desired *d, const char *workload, char *deployment, size_t dsize, char *tenant,
                          size_t tsize) {
        if (dsize > 0)
                deployment[0] = '\0';
        if (tsize > 0)
                tenant[0] = '\0';
        if (!d || !d->envelope || d->unverified)
                return;
        for (size_t i = 0; i < d->doc.n_workloads; i++) {
                const struct desired_workload *w = &d->doc.workloads[i];
                if (!streq(w->name, workload))
                        continue;
                const char *t = spec_tenant(w->spec);
                snprintf(deployment, dsize, "%s", w->deployment);
                snprintf(tenant, tsize, "%s", t ? t : "");
                return;
        }
        /* being taken off: its deployment's until it is removed (the tenant is its spec's) */
        const char *leaving = json_string_value(json_object_get(d->leaving, workload));
        if (leaving)
                snprintf(deployment, dsize, "%s", leaving);
}

size_t desired_usage_app_labels(struct desired *d, const char *app, struct desired_usage_label *out, size_t max) {
        size_t n = 0;
        if (!d || !d->envelope || d->unverified || !app)
                return 0;
        for (size_t i = 0; i < d->doc.n_workloads && n < max; i++) {
                const struct desired_workload *w = &d->doc.workloads[i];
                const char *wapp;
                (void) app_version(w->spec, &wapp);
                if (!wapp || !streq(wapp, app))
                        continue;
                const char *t = spec_tenant(w->spec);
                struct desired_usage_label l = {0};
                snprintf(l.deployment, sizeof(l.deployment), "%s", w->deployment);
                snprintf(l.tenant, sizeof(l.tenant), "%s", t ? t : "");
                bool seen = false;
                for (size_t k = 0; k < n && !seen; k++)
                        seen = streq(out[k].deployment, l.deployment) && streq(out[k].tenant, l.tenant);
                if (!seen)
                        out[n++] = l;
        }
        return n;
}
