/* The update state machine and its persisted form (pure). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/macro.h"
#include "lib/message.h"
#include "update/slot.h"
#include "update/update-state.h"

static const char *const phase_names[_UPDATE_PHASE_MAX] = {
        [UPDATE_IDLE] = "idle",
        [UPDATE_FETCHING] = "fetching",
        [UPDATE_INSTALLING] = "installing",
        [UPDATE_READY] = "ready",
        [UPDATE_TRIAL] = "trial",
        [UPDATE_COMMITTED] = "committed",
        [UPDATE_ROLLED_BACK] = "rolled-back",
        [UPDATE_FAILED] = "failed",
};

const char *update_phase_to_string(enum update_phase p) {
        return p < _UPDATE_PHASE_MAX ? phase_names[p] : "?";
}

int update_phase_from_string(const char *s, enum update_phase *ret) {
        for (int p = 0; p < _UPDATE_PHASE_MAX; p++)
                if (s && streq(s, phase_names[p])) {
                        *ret = (enum update_phase) p;
                        return 0;
                }
        return -EINVAL;
}

bool update_phase_is_final(enum update_phase p) {
        return p == UPDATE_IDLE || p == UPDATE_COMMITTED || p == UPDATE_ROLLED_BACK ||
               p == UPDATE_FAILED;
}

bool update_transition_allowed(enum update_phase from, enum update_phase to) {
        switch (from) {
        case UPDATE_IDLE:
        case UPDATE_COMMITTED:
                /* an operator rollback of a committed update leaves from committed */
                return to == UPDATE_FETCHING || (from == UPDATE_COMMITTED && to == UPDATE_ROLLED_BACK);
        case UPDATE_ROLLED_BACK:
        case UPDATE_FAILED:
                return to == UPDATE_FETCHING;
        case UPDATE_FETCHING:
                return to == UPDATE_INSTALLING || to == UPDATE_FAILED;
        case UPDATE_INSTALLING:
                return to == UPDATE_READY || to == UPDATE_FAILED;
        case UPDATE_READY:
                return to == UPDATE_TRIAL || to == UPDATE_ROLLED_BACK || to == UPDATE_COMMITTED ||
                       to == UPDATE_FAILED;
        case UPDATE_TRIAL:
                return to == UPDATE_COMMITTED || to == UPDATE_ROLLED_BACK;
        default:
                return false;
        }
}

void update_state_init(struct update_state *s) {
        memset(s, 0, sizeof(*s));
        s->phase = UPDATE_IDLE;
}

int update_state_set_phase(struct update_state *s, enum update_phase to, const char *reason,
                           uint64_t realtime_usec) {
        if (!update_transition_allowed(s->phase, to))
                return -EINVAL;
        s->phase = to;
        snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
        s->changed_realtime_usec = realtime_usec;
        return 0;
}

static const char *slot_string(char slot) {
        return slot == 'A' ? "A" : slot == 'B' ? "B" : NULL;
}

int update_state_format(const struct update_state *s, char **ret) {
        json_t *models = json_array();
        if (!models)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_models; i++) {
                const struct update_model_target *m = &s->models[i];
                /* "kind" only for apps: a state file of an agent before #19 reads the same. */
                if (json_array_append_new(models, json_pack("{s:s, s:s, s:o, s:s*}", "name", m->name,
                                                            "target", slot_string(m->target),
                                                            "previous",
                                                            m->previous ? json_string(slot_string(m->previous))
                                                                        : json_null(),
                                                            "kind", m->app ? "app" : NULL)) < 0) {
                        json_decref(models);
                        return -ENOMEM;
                }
        }
        json_t *rootfs = s->has_rootfs ? json_pack("{s:s, s:s}", "target", slot_string(s->rootfs_target),
                                                   "previous", slot_string(s->rootfs_previous))
                                       : json_null();
        json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:s, s:I, s:I, s:I, s:s*}",
                              "format", 1, "phase", update_phase_to_string(s->phase),
                              "bundle_path", s->bundle_path, "bundle_id", s->bundle_id,
                              "version", s->version,
                              "security_version", (json_int_t) s->security_version,
                              "manifest_sha256", s->manifest_sha256, "rootfs", rootfs,
                              "models", models, "reason", s->reason,
                              "min_security_version", (json_int_t) s->min_security_version,
                              "installs", (json_int_t) s->installs,
                              "changed_realtime_usec", (json_int_t) s->changed_realtime_usec,
                              "only_app", s->only_app[0] ? s->only_app : NULL);
        if (!o)
                return -ENOMEM;
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

static int copy_string(char *dst, size_t size, const char *src) {
        if (strlen(src) >= size)
                return -E2BIG;
        memcpy(dst, src, strlen(src) + 1);
        return 0;
}

static int parse_slot(const char *s, char *ret) {
        if (!s || strlen(s) != 1 || (s[0] != 'A' && s[0] != 'B'))
                return -EINVAL;
        *ret = s[0];
        return 0;
}

int update_state_parse(const char *text, size_t len, struct update_state *ret, char **ret_reason) {
        json_error_t err;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!root)
                return message_set(ret_reason, -EBADMSG, "line %d column %d: %s", err.line,
                                   err.column, err.text);
        struct update_state s;
        update_state_init(&s);
        int format;
        const char *phase, *path, *id, *version, *digest, *reason, *only_app = NULL;
        json_int_t sv, min_sv, installs, changed;
        json_t *rootfs, *models;
        int r = 0;
        if (json_unpack_ex(root, &err, JSON_STRICT,
                           "{s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:s, s:I, s:I, s:I, s?s}",
                           "format", &format, "phase", &phase, "bundle_path", &path, "bundle_id",
                           &id, "version", &version, "security_version", &sv, "manifest_sha256",
                           &digest, "rootfs", &rootfs, "models", &models, "reason", &reason,
                           "min_security_version", &min_sv, "installs", &installs,
                           "changed_realtime_usec", &changed, "only_app", &only_app) < 0) {
                r = message_set(ret_reason, -EBADMSG, "%s", err.text);
                goto out;
        }
        if (format != 1) {
                r = message_set(ret_reason, -EBADMSG, "format %d is not 1", format);
                goto out;
        }
        if (update_phase_from_string(phase, &s.phase) < 0) {
                r = message_set(ret_reason, -EBADMSG, "phase: unknown \"%s\"", phase);
                goto out;
        }
        if (sv < 0 || min_sv < 0 || installs < 0 || changed < 0) {
                r = message_set(ret_reason, -EBADMSG, "a counter is negative");
                goto out;
        }
        if (copy_string(s.bundle_path, sizeof(s.bundle_path), path) < 0 ||
            copy_string(s.bundle_id, sizeof(s.bundle_id), id) < 0 ||
            copy_string(s.version, sizeof(s.version), version) < 0 ||
            copy_string(s.manifest_sha256, sizeof(s.manifest_sha256), digest) < 0 ||
            copy_string(s.reason, sizeof(s.reason), reason) < 0 ||
            (only_app && copy_string(s.only_app, sizeof(s.only_app), only_app) < 0)) {
                r = message_set(ret_reason, -EBADMSG, "a string is too long");
                goto out;
        }
        s.security_version = (uint64_t) sv;
        s.min_security_version = (uint64_t) min_sv;
        s.installs = (uint64_t) installs;
        s.changed_realtime_usec = (uint64_t) changed;
        if (!json_is_null(rootfs)) {
                const char *target, *previous;
                if (json_unpack_ex(rootfs, &err, JSON_STRICT, "{s:s, s:s}", "target", &target,
                                   "previous", &previous) < 0 ||
                    parse_slot(target, &s.rootfs_target) < 0 ||
                    parse_slot(previous, &s.rootfs_previous) < 0 ||
                    s.rootfs_target == s.rootfs_previous) {
                        r = message_set(ret_reason, -EBADMSG, "rootfs: bad slots");
                        goto out;
                }
                s.has_rootfs = true;
        }
        if (!json_is_array(models) || json_array_size(models) > UPDATE_MAX_MODELS) {
                r = message_set(ret_reason, -EBADMSG, "models: not an array of at most %d",
                                UPDATE_MAX_MODELS);
                goto out;
        }
        size_t i;
        json_t *m;
        json_array_foreach(models, i, m) {
                struct update_model_target *t = &s.models[s.n_models];
                const char *name, *target, *kind = NULL;
                json_t *previous;
                if (json_unpack_ex(m, &err, JSON_STRICT, "{s:s, s:s, s:o, s?s}", "name", &name,
                                   "target", &target, "previous", &previous, "kind", &kind) < 0 ||
                    (kind && !streq(kind, "app")) ||
                    copy_string(t->name, sizeof(t->name), name) < 0 ||
                    parse_slot(target, &t->target) < 0 ||
                    (!json_is_null(previous) &&
                     parse_slot(json_string_value(previous), &t->previous) < 0)) {
                        r = message_set(ret_reason, -EBADMSG, "models[%zu]: malformed", i);
                        goto out;
                }
                t->app = kind != NULL;
                s.n_models++;
        }
        *ret = s;
out:
        json_decref(root);
        return r;
}

static const char *const action_names[] = {
        [UPDATE_START_NOTHING] = "nothing",
        [UPDATE_START_RESUME] = "resume",
        [UPDATE_START_WAIT_REBOOT] = "wait-reboot",
        [UPDATE_START_BEGIN_TRIAL] = "begin-trial",
        [UPDATE_START_COMMITTED] = "committed",
        [UPDATE_START_ROLLED_BACK] = "rolled-back",
};

const char *update_start_action_to_string(enum update_start_action a) {
        return a < ELEMENTSOF(action_names) ? action_names[a] : "?";
}

enum update_start_action update_decide_at_start(const struct update_state *s,
                                                const struct boot_state *boot, char booted,
                                                bool written, const char **ret_why) {
        const char *why = "";
        enum update_start_action a = UPDATE_START_NOTHING;
        int t;
        switch (s->phase) {
        case UPDATE_FETCHING:
                a = UPDATE_START_RESUME;
                break;
        case UPDATE_INSTALLING:
                /*
                 * The bootloader booted the target: only the arm after a finished write
                 * makes it bootable (the install took it out of the choices first), so
                 * the power went between the arm and saving "ready". Resuming would
                 * refuse to write the running slot and fail a good install: its trial.
                 */
                t = boot_slot_index(s->rootfs_target);
                if (s->has_rootfs && written && boot && t >= 0 && booted == s->rootfs_target) {
                        a = boot->slot[t].good ? UPDATE_START_COMMITTED : UPDATE_START_BEGIN_TRIAL;
                        why = "the install had armed the new slot, and the bootloader booted it";
                        break;
                }
                a = UPDATE_START_RESUME;
                break;
        case UPDATE_READY:
        case UPDATE_TRIAL:
                if (!s->has_rootfs) {
                        /* models only: no reboot involved; (re)run the trial */
                        a = UPDATE_START_BEGIN_TRIAL;
                        break;
                }
                if (!boot) {
                        a = UPDATE_START_ROLLED_BACK;
                        why = "the boot environment cannot be read";
                        break;
                }
                t = boot_slot_index(s->rootfs_target);
                if (t < 0) {
                        a = UPDATE_START_ROLLED_BACK;
                        why = "no target slot recorded";
                        break;
                }
                if (booted == s->rootfs_target) {
                        a = boot->slot[t].good ? UPDATE_START_COMMITTED : UPDATE_START_BEGIN_TRIAL;
                        break;
                }
                /* Still on the old slot. */
                if (s->phase == UPDATE_READY && boot->primary == s->rootfs_target &&
                    boot->slot[t].tries_left > 0 && !boot->slot[t].good) {
                        a = UPDATE_START_WAIT_REBOOT;
                        break;
                }
                a = UPDATE_START_ROLLED_BACK;
                why = s->phase == UPDATE_TRIAL
                              ? "the trial boot did not come back: the bootloader fell back"
                      : boot->slot[t].tries_left == 0 && !boot->slot[t].good
                              ? "the new slot's boot counter ran out: the bootloader fell back"
                              : "the new slot is no longer the bootloader's choice";
                break;
        default:
                break;
        }
        if (ret_why)
                *ret_why = why;
        return a;
}

enum update_stop_action update_decide_on_stop(int r, bool remote) {
        if (r == -ECANCELED)
                return UPDATE_STOP_KEEP;
        /* Space comes back (logs rotate, an operator cleans up); the slot and the verified
         * chunks stay as they are, so waiting loses nothing. */
        if (r == -ENOSPC)
                return UPDATE_STOP_PAUSE_SPACE;
        if (remote && (r == -ENOLINK || r == -EDQUOT || r == -ETIME || r == -ETIMEDOUT || r == -ECONNRESET))
                return UPDATE_STOP_PAUSE_LINK;
        return UPDATE_STOP_FAIL;
}
