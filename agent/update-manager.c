/* The update manager: the state machine on the event loop; each step of a job on a worker
 * thread (see update-internal.h for how the files divide the work). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "agent/link-cert.h"
#include "agent/update-internal.h"
#include "agent/trusted-time.h"
#include "agent/trust-store.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/message.h"
#include "lib/statefile.h"
#include "update/slot.h"

/* An older agent kept a fetched head here, as a sparse file the bundle's size. */
#define OLD_DOWNLOAD_FILE "download.obundle"

/* The time of the update's records and state changes: trusted time (agent/trusted-time.h),
 * not an RTC that may say 1970. */
uint64_t um_realtime_usec(void) {
        return (uint64_t) trusted_clock_now_usec();
}

uint64_t um_monotonic_usec(struct update_manager *m) {
        uint64_t t = 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &t);
        return t;
}

const char *um_slot_str(char s) {
        return s == 'A' ? "A" : s == 'B' ? "B" : NULL;
}

/* ---- persistence and reports -------------------------------------------------------- */

static int state_save(struct update_manager *m) {
        _cleanup_free_ char *text = NULL;
        int r = update_state_format(&m->state, &text);
        if (r < 0)
                return r;
        r = mkdir_parents(m->cfg->update.work_dir, 0700);
        if (r >= 0)
                r = statefile_save(m->cfg->update.work_dir, UM_STATE_FILE, text, strlen(text));
        if (r < 0)
                log_error("update: cannot save the update state in %s: %s", m->cfg->update.work_dir,
                          strerror(-r));
        return r;
}

static void report_reason(struct update_manager *m, enum event_priority p, const char *kind,
                          const char *reason) {
        json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s?}", "phase",
                                 update_phase_to_string(m->state.phase), "bundle_id",
                                 m->state.bundle_id, "version", m->state.version,
                                 "security_version", (json_int_t) m->state.security_version,
                                 "reason", reason, "slot",
                                 m->state.has_rootfs ? um_slot_str(m->state.rootfs_target) : NULL);
        if (body)
                (void) event_queue_push(m->events, p, kind, body, um_realtime_usec(), um_monotonic_usec(m));
}

static void report(struct update_manager *m, enum event_priority p, const char *kind) {
        report_reason(m, p, kind, m->state.reason);
}

/* Persist a transition, then report it. Ends (committed, rolled back, failed) are
 * critical: an operator must learn of every one. */
int um_set_phase(struct update_manager *m, enum update_phase to, const char *fmt, ...) {
        char reason[UPDATE_REASON_MAX] = "";
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(reason, sizeof(reason), fmt, ap);
                va_end(ap);
        }
        enum update_phase from = m->state.phase;
        int r = update_state_set_phase(&m->state, to, reason, um_realtime_usec());
        if (r < 0) {
                log_error("update: refused transition %s -> %s", update_phase_to_string(from),
                          update_phase_to_string(to));
                return r;
        }
        r = state_save(m);
        bool outcome = to == UPDATE_COMMITTED || to == UPDATE_ROLLED_BACK || to == UPDATE_FAILED;
        char kind[48];
        snprintf(kind, sizeof(kind), "update.%s", update_phase_to_string(to));
        if (to == UPDATE_FAILED || to == UPDATE_ROLLED_BACK)
                log_error("update %s %s: %s%s%s", m->state.bundle_id, m->state.version,
                          update_phase_to_string(to), reason[0] ? ": " : "", reason);
        else
                log_notice("update %s %s: %s -> %s%s%s", m->state.bundle_id, m->state.version,
                           update_phase_to_string(from), update_phase_to_string(to),
                           reason[0] ? ": " : "", reason);
        report(m, outcome ? EVENT_CRITICAL : EVENT_HIGH, kind);
        return r;
}

/* The record of what a slot holds: the manifest of the bundle installed there. */
void um_slot_file_name(const char *slot_class, char slot, const char *kind, char *buf, size_t size) {
        snprintf(buf, size, "slot-%s-%c.%s", slot_class, slot, kind);
        for (char *p = buf; *p; p++)
                if (*p == ':' || *p == '/')
                        *p = '_';
}

void um_record_name(const char *slot_class, char slot, char *buf, size_t size) {
        um_slot_file_name(slot_class, slot, UM_SLOT_RECORD, buf, size);
}

/* The last good copy first: a power cut in between must not leave a .prev that a load
 * would restore (a slot no longer trusted, trusted again). */
void um_record_remove(const char *work_dir, const char *name) {
        int r = statefile_remove(work_dir, name);
        if (r < 0)
                log_warning_errno(r, "update: cannot remove %s/%s", work_dir, name);
}

void um_slot_forget(const char *work_dir, const char *slot_class, char slot) {
        static const char *const kinds[] = {UM_SLOT_RECORD, UM_SLOT_DAMAGED, UM_SLOT_SOURCE, UM_SLOT_SCAN};
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                char name[PATH_MAX];
                um_slot_file_name(slot_class, slot, kinds[i], name, sizeof(name));
                um_record_remove(work_dir, name);
        }
}

/*
 * Where a slot's bundle came from, kept beside its record: a damaged chunk that no copy on
 * the node can replace is fetched from there again (update-scrub.c). The digest ties it to
 * the record it was written with; a local bundle has no url.
 */
static void slot_source_save(struct job *j, const struct job_image *ji, const char *mtext, size_t mlen) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE], name[PATH_MAX];
        sha256_buffer(mtext, mlen, digest);
        sha256_to_hex(digest, hex);
        um_slot_file_name(ji->image->slot_class, ji->target, UM_SLOT_SOURCE, name, sizeof(name));
        const struct manifest *mf = bundle_manifest(j->bundle);
        json_auto_t *o = json_pack("{s:i, s:s, s:s, s:I}", "format", 1, "record_sha256", hex, "bundle_id",
                                   mf->bundle_id, "payload_offset", (json_int_t) ji->bundle_offset);
        if (o && j->fetcher)
                (void) json_object_set_new(o, "url", json_string(fetcher_url(j->fetcher)));
        if (o && j->fetcher && fetcher_etag(j->fetcher)[0])
                (void) json_object_set_new(o, "etag", json_string(fetcher_etag(j->fetcher)));
        int r = o ? statefile_save_json(j->work_dir, name, o) : -ENOMEM;
        if (r < 0)
                log_warning("update: cannot record where the content of slot %c came from (a damaged "
                            "chunk cannot be fetched again): %s", ji->target, strerror(-r));
}

void um_fetch_tls(struct update_manager *m, struct fetch_tls *ret) {
        const struct agent_link_config *lc = &m->cfg->link;
        *ret = (struct fetch_tls){
                .connect_timeout_sec = (long) lc->connect_timeout_sec,
                .max_recv_bytes_per_sec = lc->max_recv_bytes_per_sec,
        };
        snprintf(ret->ca, sizeof(ret->ca), "%s", lc->ca ? lc->ca : "");
        /* the client certificate the link syncs with: a renewed one once it was used in a
         * good sync (agent/link-cert.h) */
        struct link_cert_choice cc;
        link_cert_choose(m->cfg->state_dir, lc->cert, lc->key, m->cfg->node_id, false, &cc);
        snprintf(ret->cert, sizeof(ret->cert), "%s", cc.cert);
        snprintf(ret->key, sizeof(ret->key), "%s", cc.key);
}

/* ---- the boot environment (on the loop only) ----------------------------------------- */

int um_boot_read(struct update_manager *m, struct boot_state *ret) {
        if (!m->bootenv)
                return -ENODEV;
        int r = bootenv_read(m->bootenv, ret);
        if (r == -ENOENT || r == -ENODATA) {
                /* Never written: the node has only ever booted what it runs now. */
                if (!m->booted)
                        return -ENOENT;
                return boot_state_init(ret, m->booted);
        }
        return r;
}

static const char *const boot_op_names[] = {
        [UM_BOOT_TRY] = "try",
        [UM_BOOT_GOOD] = "good",
        [UM_BOOT_BAD] = "bad",
        [UM_BOOT_FORGET] = "forget",
};

/*
 * Tests only: the bootloader environment's write held at one step while a file exists
 * (the virtual board cuts the power there: docs/board.md). It runs on the loop, which
 * is held too, so it feeds systemd's watchdog itself: the hold is the test's, not a hung
 * agent's. Two keys, as for the other failpoints: the variable and the file.
 */
static void failpoint_bootenv_stall(const char *path, enum durable_step step, void *userdata) {
        struct update_manager *m = userdata;
        if (m->boot_op_now != m->bootenv_stall_op || step != m->bootenv_stall_step ||
            ++m->bootenv_stall_seen != m->bootenv_stall_nth || access(m->bootenv_stall_file, F_OK) < 0)
                return;
        log_notice("update: failpoint: the boot environment write (%s) of %s stalled %s, while %s "
                   "exists (write %u of the operation)", boot_op_names[m->boot_op_now], path,
                   durable_step_to_string(step), m->bootenv_stall_file, m->bootenv_stall_nth);
        const struct timespec step_time = {.tv_nsec = 100 * 1000 * 1000};
        while (access(m->bootenv_stall_file, F_OK) == 0) {
                (void) sd_notify(false, "WATCHDOG=1");
                (void) nanosleep(&step_time, NULL);
        }
        log_notice("update: failpoint: the boot environment write goes on");
}

/* "OP:STEP[:N]" (try|good|bad|forget : written|renamed|overwritten|synced|erased : 1, 2...) into m;
 * -EINVAL otherwise. */
static int failpoint_bootenv_parse(struct update_manager *m, const char *at) {
        const char *colon = strchr(at, ':');
        if (!colon)
                return -EINVAL;
        unsigned nth = 1;
        const char *step_name = colon + 1, *end = strchr(step_name, ':');
        size_t step_len = end ? (size_t) (end - step_name) : strlen(step_name);
        if (end) {
                if (!isdigit((unsigned char) end[1]))
                        return -EINVAL;
                char *e = NULL;
                errno = 0;
                unsigned long v = strtoul(end + 1, &e, 10);
                if (errno || *e || v < 1 || v > 16)
                        return -EINVAL;
                nth = (unsigned) v;
        }
        size_t n = (size_t) (colon - at);
        int op = -1;
        for (size_t i = 0; i < ELEMENTSOF(boot_op_names); i++)
                if (strlen(boot_op_names[i]) == n && strncmp(at, boot_op_names[i], n) == 0)
                        op = (int) i;
        if (op < 0)
                return -EINVAL;
        int step = -1;
        for (int i = DURABLE_WRITTEN; i <= DURABLE_STEP_LAST; i++) {
                const char *name = durable_step_to_string((enum durable_step) i);
                if (strlen(name) == step_len && strncmp(step_name, name, step_len) == 0)
                        step = i;
        }
        if (step < 0)
                return -EINVAL;
        m->bootenv_stall_step = (enum durable_step) step;
        m->bootenv_stall_op = op;
        m->bootenv_stall_nth = nth;
        return 0;
}

/* Take a slot out of the bootloader's choices before its content changes. */
static int boot_forget(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        if (!s->slot[i].good && s->slot[i].tries_left == 0 && s->primary != slot)
                return 0;
        return boot_state_mark_bad(s, slot);
}

/* Read, change and write back (bootenv_write reads back and compares). */
int um_boot_update(struct update_manager *m, enum um_boot_op op, char slot, char *msg, size_t size) {
        struct boot_state bs;
        int r = um_boot_read(m, &bs);
        if (r >= 0) {
                switch (op) {
                case UM_BOOT_TRY:
                        r = boot_state_try_slot(&bs, slot, (int) m->cfg->update.boot_tries);
                        break;
                case UM_BOOT_GOOD:
                        r = boot_state_mark_good(&bs, slot);
                        break;
                case UM_BOOT_BAD:
                        r = boot_state_mark_bad(&bs, slot);
                        break;
                case UM_BOOT_FORGET:
                        r = boot_forget(&bs, slot);
                        break;
                }
        }
        if (r >= 0) {
                m->boot_op_now = (int) op;
                m->bootenv_stall_seen = 0;
                r = bootenv_write(m->bootenv, &bs);
                m->boot_op_now = -1;
        }
        if (r < 0)
                snprintf(msg, size, "boot environment %s: %s",
                         m->cfg->update.bootloader_path ? m->cfg->update.bootloader_path : "?", strerror(-r));
        return r;
}

/* ---- opening bundles and preparing jobs ------------------------------------------------ */

/* Verify a bundle: a local file (path), or a remote one from the head its job fetched. */
static int open_bundle(struct update_manager *m, const char *path, struct job *remote, struct bundle **ret,
                       char *msg, size_t size) {
        const struct agent_update_config *u = &m->cfg->update;
        _cleanup_keyring_ struct signature_keyring *kr = NULL;
        _cleanup_free_ char *why = NULL;
        int r = trust_store_release_keyring(u->keyring_dir, &kr, &why);
        if (r < 0) {
                snprintf(msg, size, "bundle keyring %s: %s", u->keyring_dir, why ? why : strerror(-r));
                return r;
        }
        /* Before the controller told the time, now is a floor or the RTC: a signer issued after
         * it may be valid (a local install, or one resumed at boot, before any sync). */
        enum trusted_time_source source;
        time_t now = trusted_clock_now(&source);
        struct bundle_verify_options o = {
                .keyring = kr,
                .hardware = u->hardware,
                .min_security_version = m->state.min_security_version,
                .now = u->check_certificate_time ? now : SIGNATURE_NOW_UNKNOWN,
                .now_is_lower_bound = source != TRUSTED_TIME_CONTROLLER,
        };
        if (remote) {
                struct bundle_reader reader = fetcher_reader(remote->fetcher);
                r = bundle_open_reader(&reader, path, remote->head, remote->head_len, &o, ret, &why);
        } else
                r = bundle_open(path, &o, ret, &why);
        if (r < 0)
                snprintf(msg, size, "%s", why ? why : strerror(-r));
        return r;
}

/* What identifies the bundle now being installed, into the state. */
static void state_take_bundle(struct update_manager *m, const struct bundle *b) {
        const struct manifest *mf = bundle_manifest(b);
        snprintf(m->state.bundle_id, sizeof(m->state.bundle_id), "%s", mf->bundle_id);
        snprintf(m->state.version, sizeof(m->state.version), "%s", mf->version);
        m->state.security_version = mf->security_version;
        sha256_to_hex(bundle_manifest_digest(b), m->state.manifest_sha256);
}

/* Fill j's images for its bundle, with targets from the state (resume) or chosen now. */
/* An app member a workload runs from (or, pinned to its version, waits to restart from)
 * is not written under it: its files would change as it runs. -EBUSY with msg. */
static int app_member_busy(struct update_manager *m, const char *app, char member, char *msg, size_t size) {
        const char *user = m->runtime ? runtime_app_member_user(m->runtime, app, member) : NULL;
        if (!user)
                return 0;
        snprintf(msg, size, "app %s: slot %c holds the version workload %s runs; stop it or move it to another "
                 "version first", app, member, user);
        return -EBUSY;
}

static int job_prepare(struct update_manager *m, struct job *j, bool resume, char *msg, size_t size) {
        const struct agent_update_config *u = &m->cfg->update;
        const struct manifest *mf = bundle_manifest(j->bundle);
        sha256_to_hex(bundle_manifest_digest(j->bundle), j->manifest_sha256);
        /* Over the link each chunk is verified as it arrives: a verify pass first would fetch
         * every byte twice. */
        if (j->fetcher)
                j->verify_first = false;
        struct update_state next = m->state;
        if (!resume) {
                next.has_rootfs = false;
                next.n_models = 0;
        }
        int r;
        for (size_t i = 0; i < mf->n_images; i++) {
                const struct manifest_image *img = &mf->images[i];
                struct job_image *ji = &j->images[j->n_images];
                const char *app = slot_class_app_name(img->slot_class);
                if (m->state.only_app[0] && (!app || !streq(app, m->state.only_app))) {
                        r = -EPERM;
                        snprintf(msg, size, "the bundle holds an image of class %s: this install (for the desired "
                                 "state) takes app:%s only", img->slot_class, m->state.only_app);
                        goto fail;
                }
                const char *model = app ? app : slot_class_model_name(img->slot_class);
                const char *base = um_slots_dir(u, app != NULL);
                const char *kind = um_slots_kind(app != NULL);
                ji->image = img;
                ji->slot_fd = ji->active_fd = -1;
                if (streq(img->slot_class, "rootfs")) {
                        if (!u->rootfs_a || !m->bootenv) {
                                r = -ENOTSUP;
                                snprintf(msg, size, "the bundle has a rootfs image but this node has no "
                                         "rootfs slots (update.rootfs)");
                                goto fail;
                        }
                        if (!m->booted) {
                                r = -ENXIO;
                                snprintf(msg, size, "the booted slot is unknown (no orbit.slot= in %s): "
                                         "refusing to write either rootfs slot",
                                         m->cfg->paths.kernel_cmdline);
                                goto fail;
                        }
                        if (!resume) {
                                next.has_rootfs = true;
                                next.rootfs_previous = m->booted;
                                next.rootfs_target = slot_other(m->booted);
                        }
                        if (next.rootfs_target == m->booted) {
                                r = -EBUSY;
                                snprintf(msg, size, "slot %c is the booted slot: it cannot be written",
                                         m->booted);
                                goto fail;
                        }
                        ji->target = next.rootfs_target;
                        snprintf(ji->slot_path, sizeof(ji->slot_path), "%s",
                                 ji->target == 'A' ? u->rootfs_a : u->rootfs_b);
                        snprintf(ji->active_path, sizeof(ji->active_path), "%s",
                                 m->booted == 'A' ? u->rootfs_a : u->rootfs_b);
                        um_record_name(img->slot_class, m->booted, ji->active_record, sizeof(ji->active_record));
                        um_slot_file_name(img->slot_class, m->booted, UM_SLOT_SCAN, ji->active_scan,
                                          sizeof(ji->active_scan));
                } else if (model) {
                        struct update_model_target *t = NULL;
                        for (size_t k = 0; k < next.n_models; k++)
                                if (streq(next.models[k].name, model) && next.models[k].app == (app != NULL))
                                        t = &next.models[k];
                        if (!t) {
                                if (resume) {
                                        r = -EBADMSG;
                                        snprintf(msg, size, "%s %s is not in the saved install state", kind, model);
                                        goto fail;
                                }
                                t = &next.models[next.n_models++];
                                snprintf(t->name, sizeof(t->name), "%s", model);
                                t->app = app != NULL;
                                char cur = 0;
                                r = model_slot_current(base, model, &cur);
                                if (r < 0 && r != -ENOENT) {
                                        snprintf(msg, size, "%s %s: its current link is broken: %s", kind,
                                                 model, strerror(-r));
                                        goto fail;
                                }
                                t->previous = r >= 0 ? cur : 0;
                                t->target = r >= 0 ? slot_other(cur) : 'A';
                                /* An app whose other member a pinned workload runs while nothing
                                 * runs the current one (a desired state went back a version): the
                                 * new version goes over the current member, and the one in use is
                                 * where the trial would go back to. */
                                if (app && r >= 0 && m->runtime && runtime_app_member_user(m->runtime, app, t->target) &&
                                    !runtime_app_member_user(m->runtime, app, cur)) {
                                        t->previous = t->target;
                                        t->target = cur;
                                }
                        }
                        if (app && (r = app_member_busy(m, app, t->target, msg, size)) < 0)
                                goto fail;
                        ji->target = t->target;
                        r = model_slot_image(base, model, t->target, ji->slot_path,
                                             sizeof(ji->slot_path));
                        if (r >= 0 && t->previous)
                                r = model_slot_image(base, model, t->previous, ji->active_path,
                                                     sizeof(ji->active_path));
                        if (r < 0) {
                                snprintf(msg, size, "%s %s: path too long", kind, model);
                                goto fail;
                        }
                        if (t->previous) {
                                um_record_name(img->slot_class, t->previous, ji->active_record,
                                               sizeof(ji->active_record));
                                um_slot_file_name(img->slot_class, t->previous, UM_SLOT_SCAN, ji->active_scan,
                                                  sizeof(ji->active_scan));
                        }
                } else {
                        r = -ENOTSUP;
                        snprintf(msg, size, "image %s: this agent installs rootfs, model:<name> and app:<name> images only",
                                 img->slot_class);
                        goto fail;
                }
                um_record_name(img->slot_class, ji->target, ji->record, sizeof(ji->record));
                ji->done = calloc(1, install_bitmap_size(img->n_chunks) + 1);
                if (!ji->done) {
                        r = -ENOMEM;
                        goto fail;
                }
                j->n_images++;
        }
        m->state = next;
        for (size_t i = 0; i < j->n_images; i++)
                j->progress_total += j->images[i].image->size;
        return 0;
fail:
        for (size_t i = 0; i < j->n_images; i++) {
                free(j->images[i].done);
                j->images[i].done = NULL;
        }
        j->n_images = 0;
        return r;
}

static int fail_now(struct update_manager *m, int r, const char *msg) {
        (void) um_set_phase(m, UPDATE_FAILED, "%s", msg);
        return r;
}

/*
 * Prepare the job for a verified bundle and start its CHECK step; j is the remote job
 * whose head was fetched, or NULL for a local file. Takes b and j, also on failure.
 */
static void pause_for_space(struct update_manager *m, const char *reason);

static int begin_install(struct update_manager *m, struct bundle *b, bool resume, struct job *j, char *msg,
                         size_t size) {
        struct update_state before = m->state;
        if (!j && !(j = job_new(m, JOB_CHECK))) {
                bundle_close(b);
                snprintf(msg, size, "out of memory");
                return -ENOMEM;
        }
        j->step = JOB_CHECK;
        j->bundle = b;
        free(j->head); /* opened: not needed again */
        j->head = NULL;
        int r = job_prepare(m, j, resume, msg, size);
        if (r < 0) {
                job_free(j);
                return r;
        }
        job_progress_load(j);
        if (!resume) {
                m->state.installs++;
                r = um_set_phase(m, UPDATE_INSTALLING, "into %s%s%s", m->state.has_rootfs ? "rootfs slot " : "",
                                 m->state.has_rootfs ? um_slot_str(m->state.rootfs_target) : "",
                                 m->state.n_models ? (m->state.has_rootfs ? " and model slots" : "model slots") : "");
                if (r < 0) {
                        /* Not begun: the phase stays as saved. A full disk is waited out
                         * (the space timer, the next contact) like any other. */
                        m->state = before;
                        snprintf(msg, size, "cannot save the update state in %.512s: %s", j->work_dir,
                                 strerror(-r));
                        job_free(j);
                        if (update_decide_on_stop(r, false) == UPDATE_STOP_PAUSE_SPACE) {
                                pause_for_space(m, msg);
                                return 0;
                        }
                        return r;
                }
        }
        r = worker_start(m, j);
        if (r < 0) {
                snprintf(msg, size, "cannot start the install thread: %s", strerror(-r));
                job_free(j);
        }
        return r;
}

/* ---- the steps' ends, on the loop ------------------------------------------------------- */

static int resume_install(struct update_manager *m);

static void head_fetched(struct update_manager *m, struct job *j) {
        char msg[UPDATE_REASON_MAX] = "";
        struct bundle *b;
        int r = open_bundle(m, fetcher_url(j->fetcher), j, &b, msg, sizeof(msg));
        if (r < 0) {
                job_free(j);
                (void) fail_now(m, r, msg);
                return;
        }
        char digest[SHA256_HEX_SIZE];
        sha256_to_hex(bundle_manifest_digest(b), digest);
        bool resume = m->state.phase == UPDATE_INSTALLING;
        if (resume && !streq(digest, m->state.manifest_sha256)) {
                bundle_close(b);
                job_free(j);
                (void) fail_now(m, -ESTALE, "the bundle on the controller changed since the install began");
                return;
        }
        if (!resume)
                state_take_bundle(m, b);
        r = begin_install(m, b, resume, j, msg, sizeof(msg));
        if (r < 0)
                (void) fail_now(m, r, msg);
}

/*
 * The bundle passed the check: now the targets change. First out of the boot choices,
 * their content records gone, so a half-written slot can never be booted or trusted as a
 * delta source; then the WRITE step.
 */
static void check_finished(struct update_manager *m, struct job *j) {
        char msg[512] = "";
        int r = 0;
        if (m->state.has_rootfs)
                r = um_boot_update(m, UM_BOOT_FORGET, m->state.rootfs_target, msg, sizeof(msg));
        if (r < 0) {
                job_free(j);
                (void) fail_now(m, r, msg);
                return;
        }
        for (size_t i = 0; i < j->n_images; i++)
                um_slot_forget(j->work_dir, j->images[i].image->slot_class, j->images[i].target);
        /* An app member: checked again for a workload that runs from it (one may have
         * started, or been waiting to restart, since the install was prepared), and its
         * version removed here, on the loop, so that none starts from it from now on. */
        for (size_t i = 0; i < j->n_images; i++) {
                const char *app = slot_class_app_name(j->images[i].image->slot_class);
                if (!app)
                        continue;
                char target = j->images[i].target;
                r = app_member_busy(m, app, target, msg, sizeof(msg));
                if (r >= 0 && (r = app_slot_clear_version(m->cfg->update.apps_dir, app, target)) < 0)
                        snprintf(msg, sizeof(msg), "app %s: cannot clear slot %c's version: %s", app, target,
                                 strerror(-r));
                if (r < 0) {
                        job_free(j);
                        (void) fail_now(m, r, msg);
                        return;
                }
        }
        j->step = JOB_WRITE;
        r = worker_start(m, j);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "cannot start the install thread: %s", strerror(-r));
                job_free(j);
                (void) fail_now(m, r, msg);
        }
}

/* Every image verified in its slot: record what each slot now holds, arm the new slot. */
/*
 * The bundle's signature checked again against the anchors in force now: a trust document
 * that came while the install ran may have revoked its signer, and a revoked signer's
 * image must not be armed (the check at open time is not enough). 0 or -errno with msg.
 */
static int signer_still_trusted(struct update_manager *m, struct job *j, char *msg, size_t size) {
        const struct agent_update_config *u = &m->cfg->update;
        _cleanup_keyring_ struct signature_keyring *kr = NULL;
        _cleanup_free_ char *why = NULL;
        int r = trust_store_release_keyring(u->keyring_dir, &kr, &why);
        if (r >= 0) {
                enum trusted_time_source source;
                time_t now = trusted_clock_now(&source);
                r = bundle_recheck_signature(j->bundle, kr, u->check_certificate_time ? now : SIGNATURE_NOW_UNKNOWN,
                                             source != TRUSTED_TIME_CONTROLLER, &why);
        }
        if (r < 0)
                snprintf(msg, size, "not armed: checked again before arming, %s", why ? why : strerror(-r));
        return r;
}

static void write_finished(struct update_manager *m, struct job *j) {
        char msg[512] = "";
        if (signer_still_trusted(m, j, msg, sizeof(msg)) < 0) {
                job_free(j);
                (void) um_set_phase(m, UPDATE_FAILED, "%s", msg);
                return;
        }
        size_t mlen;
        const char *mtext = bundle_manifest_text(j->bundle, &mlen);
        for (size_t i = 0; i < j->n_images; i++) {
                int r = statefile_save(j->work_dir, j->images[i].record, mtext, mlen);
                if (r < 0)
                        log_warning("update: cannot record the content of slot %c: %s",
                                    j->images[i].target, strerror(-r));
                else
                        slot_source_save(j, &j->images[i], mtext, mlen);
        }
        job_free(j);
        if (m->state.has_rootfs) {
                int r = um_boot_update(m, UM_BOOT_TRY, m->state.rootfs_target, msg, sizeof(msg));
                if (r < 0) {
                        (void) um_set_phase(m, UPDATE_FAILED, "cannot arm the new slot: %s", msg);
                        return;
                }
        }
        if (um_set_phase(m, UPDATE_READY,
                         m->state.has_rootfs ? "slot %c armed for %" PRId64 " trial boots" : "images verified",
                         m->state.rootfs_target, m->cfg->update.boot_tries) < 0)
                return;
        /* Only now: a power cut that loses the arm resumes with every chunk kept (read
         * back and checked), not with a slot to write again (docs/board.md). */
        um_record_remove(m->cfg->update.work_dir, UM_PROGRESS_FILE);
        if (m->state.has_rootfs)
                um_request_reboot(m);
        else
                (void) um_begin_trial(m);
}

static int on_space_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct update_manager *m = userdata;
        m->space_timer = sd_event_source_disable_unref(m->space_timer);
        if (!m->paused || !m->paused_for_space || m->worker_running)
                return 0; /* resumed already (the link came up) */
        m->paused = false;
        (void) resume_install(m);
        return 0;
}

/*
 * A filesystem the install writes to is full. Nothing is lost by waiting: the phase
 * stays, the slot keeps its chunks and the progress file its last good copy. Reported
 * once per pause; the retries that find no space yet are the same pause.
 */
static void pause_for_space(struct update_manager *m, const char *reason) {
        bool again = m->paused_for_space, same = again && streq(m->last_error, reason);
        int64_t every = m->cfg->update.space_retry_sec;
        m->paused = true;
        m->paused_for_space = true;
        m->paused_in_pass = 0;
        snprintf(m->last_error, sizeof(m->last_error), "%s", reason);
        if (!again) {
                log_warning("update: install%s%s paused: %s; retried every %" PRId64
                            " s until there is space",
                            m->state.bundle_id[0] ? " of " : "", m->state.bundle_id, m->last_error,
                            every);
                report_reason(m, EVENT_HIGH, "update.paused", m->last_error);
        } else if (!same)
                log_notice("update: still paused: %s", m->last_error);
        else
                log_debug("update: still no space: %s", m->last_error);
        m->space_timer = sd_event_source_disable_unref(m->space_timer);
        int r = sd_event_add_time_relative(m->event, &m->space_timer, CLOCK_MONOTONIC,
                                           (uint64_t) every * 1000000ULL, 0, on_space_retry, m);
        if (r < 0)
                log_error_errno(r, "update: cannot arm the retry timer; the install continues at "
                                   "the next start");
}

/* A step ended: what the result means, and the next step. Takes j. */
static void step_finished(struct update_manager *m, struct job *j) {
        if (j->step == JOB_SCRUB || j->step == JOB_REPAIR) {
                if (!um_scrub_finished(m, j))
                        job_free(j);
                return;
        }
        if (j->result >= 0) {
                switch (j->step) {
                case JOB_FETCH_HEAD:
                        head_fetched(m, j);
                        return;
                case JOB_CHECK:
                        check_finished(m, j);
                        return;
                case JOB_WRITE:
                        m->paused_for_space = false; /* the pause, if any, is over */
                        write_finished(m, j);
                        return;
                case JOB_SCRUB:
                case JOB_REPAIR:
                        break;
                }
        }
        enum update_stop_action stop = update_decide_on_stop(j->result, j->fetcher != NULL);
        const char *reason = j->reason ? j->reason : strerror(-j->result);
        if (stop == UPDATE_STOP_PAUSE_SPACE) {
                pause_for_space(m, reason);
        } else if (stop == UPDATE_STOP_KEEP) {
                /* stopping: resumed at the next start */
        } else if (stop == UPDATE_STOP_PAUSE_LINK) {
                /* Out of contact, out of this pass's budget or of its time: the next one. */
                m->paused_for_space = false;
                m->paused = true;
                /* for the pass's budget or time: not again before the next pass */
                m->paused_in_pass = m->pass && (j->result == -EDQUOT || j->result == -ETIME)
                                            ? atomic_load(&m->pass->number)
                                            : 0;
                if (j->result == -EDQUOT)
                        reason = "this pass's download budget is spent (link.download_budget_mib)";
                else if (j->result == -ETIME)
                        reason = "the contact window closes before the next range could arrive";
                snprintf(m->last_error, sizeof(m->last_error), "%s", reason);
                log_notice("update: download paused (%s); it continues at the next contact", m->last_error);
        } else {
                m->paused_for_space = false;
                (void) um_set_phase(m, UPDATE_FAILED, "%s", reason);
        }
        job_free(j);
}

static int on_worker_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct update_manager *m = userdata;
        uint64_t v;
        (void) !read(m->efd, &v, sizeof(v));
        /* A wake-up from a job already joined elsewhere (a scrub stopped for an install)
         * must not join the job started since: only a finished one is joined. */
        if (!m->job || !atomic_load(&m->job->finished))
                return 0;
        worker_join(m);
        step_finished(m, TAKE_PTR(m->job));
        return 0;
}

/* ---- starting an install -------------------------------------------------------------- */

/* A new install of source (a file or a URL): what the last one said no longer applies. */
static int begin_fetching(struct update_manager *m, const char *source, const char *doing, const char *only_app,
                          char **ret_message) {
        struct update_state before = m->state;
        m->paused_for_space = false;
        snprintf(m->state.only_app, sizeof(m->state.only_app), "%s", only_app ? only_app : "");
        snprintf(m->state.bundle_path, sizeof(m->state.bundle_path), "%s", source);
        m->state.bundle_id[0] = m->state.version[0] = m->state.manifest_sha256[0] = '\0';
        m->state.security_version = 0;
        m->state.has_rootfs = false;
        m->state.n_models = 0;
        int r = um_set_phase(m, UPDATE_FETCHING, "%s %s", doing, source);
        if (r < 0) {
                /* Not begun (a full disk, say): the last update's state stands, so the
                 * next install is not refused as "in progress". */
                m->state = before;
                return message_set(ret_message, r, "cannot save the update state in %s: %s",
                                   m->cfg->update.work_dir, strerror(-r));
        }
        return 0;
}

int update_manager_install(struct update_manager *m, const char *bundle_path, json_t **ret,
                           char **ret_message) {
        if (!update_phase_is_final(m->state.phase))
                return message_set(ret_message, -EBUSY, "an update is in progress (%s %s, %s)",
                                   m->state.bundle_id, m->state.version,
                                   update_phase_to_string(m->state.phase));
        um_scrub_stop(m);
        char abs[PATH_MAX], msg[UPDATE_REASON_MAX] = "";
        if (!realpath(bundle_path, abs)) {
                int r = negative_errno();
                return message_set(ret_message, r, "%s: %s", bundle_path, strerror(-r));
        }
        int r = begin_fetching(m, abs, "verifying", NULL, ret_message);
        if (r < 0)
                return r;
        struct bundle *b;
        r = open_bundle(m, abs, NULL, &b, msg, sizeof(msg));
        if (r < 0)
                return message_set(ret_message, fail_now(m, r, msg), "%s", msg);
        state_take_bundle(m, b);
        r = begin_install(m, b, false, NULL, msg, sizeof(msg));
        if (r < 0)
                return message_set(ret_message, fail_now(m, r, msg), "%s", msg);
        *ret = json_pack("{s:s, s:s, s:s, s:I}", "phase", update_phase_to_string(m->state.phase),
                         "bundle_id", m->state.bundle_id, "version", m->state.version,
                         "security_version", (json_int_t) m->state.security_version);
        return *ret ? 0 : -ENOMEM;
}

/* An install interrupted by a stop, a kill or a power cut: verify again and go on. */
static int start_head_fetch(struct update_manager *m, const char *url);

static int resume_install(struct update_manager *m) {
        char msg[UPDATE_REASON_MAX] = "";
        if (!m->state.bundle_path[0])
                return fail_now(m, -ENOENT, "interrupted before the bundle was known");
        if (strncmp(m->state.bundle_path, "https://", 8) == 0) {
                log_notice("update: resuming the download of %s", m->state.bundle_path);
                int r = start_head_fetch(m, m->state.bundle_path);
                return r < 0 ? fail_now(m, r, "cannot start the download") : 0;
        }
        struct bundle *b;
        int r = open_bundle(m, m->state.bundle_path, NULL, &b, msg, sizeof(msg));
        if (r < 0)
                return fail_now(m, r, msg);
        char digest[SHA256_HEX_SIZE];
        sha256_to_hex(bundle_manifest_digest(b), digest);
        if (m->state.manifest_sha256[0] && !streq(digest, m->state.manifest_sha256)) {
                bundle_close(b);
                return fail_now(m, -ESTALE, "the bundle file changed since the install began");
        }
        if (m->state.phase == UPDATE_FETCHING) {
                /* stopped between verifying and installing: start the install properly */
                state_take_bundle(m, b);
                r = begin_install(m, b, false, NULL, msg, sizeof(msg));
        } else {
                log_notice("update: resuming the install of %s %s", m->state.bundle_id, m->state.version);
                r = begin_install(m, b, true, NULL, msg, sizeof(msg));
        }
        if (r < 0)
                return fail_now(m, r, msg);
        return 0;
}

static int start_head_fetch(struct update_manager *m, const char *url) {
        struct fetch_tls tls;
        um_fetch_tls(m, &tls);
        struct job *j = job_new(m, JOB_FETCH_HEAD);
        if (!j)
                return -ENOMEM;
        int r = fetcher_new(url, &tls, m->pass, &m->cancel, &j->fetcher);
        if (r >= 0) {
                if (m->fetch_starting)
                        m->fetch_starting(m->fetch_starting_userdata);
                (void) atomic_exchange(&m->fetched, 0); /* left untaken: nobody asks */
                snprintf(m->fetched_app, sizeof(m->fetched_app), "%s", m->state.only_app);
                fetcher_count_into(j->fetcher, &m->fetched);
                m->paused = false;
                r = worker_start(m, j);
        }
        if (r < 0)
                job_free(j);
        return r;
}

static int install_remote(struct update_manager *m, const char *url, const char *only_app, json_t **ret,
                          char **ret_message) {
        if (!m->cfg->link.enabled || !m->cfg->link.url)
                return message_set(ret_message, -ENOTSUP, "the controller link is not configured (link.enabled)");
        if (!url || strncmp(url, "https://", 8) != 0 || strlen(url) >= sizeof(m->state.bundle_path))
                return message_set(ret_message, -EINVAL, "bundles are fetched over https only");
        if (!update_phase_is_final(m->state.phase))
                return message_set(ret_message, -EBUSY, "an update is in progress (%s %s, %s)",
                                   m->state.bundle_id, m->state.version,
                                   update_phase_to_string(m->state.phase));
        um_scrub_stop(m);
        int r = begin_fetching(m, url, "fetching the manifest from", only_app, ret_message);
        if (r < 0)
                return r;
        r = start_head_fetch(m, url);
        if (r < 0) {
                char msg[256];
                snprintf(msg, sizeof(msg), "cannot start the download: %s", strerror(-r));
                return message_set(ret_message, fail_now(m, r, msg), "%s", msg);
        }
        *ret = json_pack("{s:s, s:s}", "phase", update_phase_to_string(m->state.phase), "url", url);
        return *ret ? 0 : -ENOMEM;
}

int update_manager_install_remote(struct update_manager *m, const char *url, json_t **ret,
                                  char **ret_message) {
        return install_remote(m, url, NULL, ret, ret_message);
}

int update_manager_install_app_remote(struct update_manager *m, const char *url, const char *app, json_t **ret,
                                      char **ret_message) {
        if (!app || !*app)
                return message_set(ret_message, -EINVAL, "no app named");
        return install_remote(m, url, app, ret, ret_message);
}

void update_manager_link_up(struct update_manager *m) {
        if (!m || !m->paused || m->worker_running)
                return;
        /* the same pass, still spent or still closing: not another try each sync */
        if (m->pass && !link_pass_may_resume(m->pass, m->paused_in_pass, trusted_clock_now_usec()))
                return;
        m->paused = false;
        m->paused_in_pass = 0;
        (void) resume_install(m);
}

void update_manager_controller_reached(struct update_manager *m) {
        if (m)
                um_trial_controller_reached(m);
}

void update_manager_set_contact_window(struct update_manager *m, update_contact_window_fn fn, void *userdata) {
        if (!m)
                return;
        m->contact_window = fn;
        m->contact_window_userdata = userdata;
}

int update_manager_request_reboot(struct update_manager *m, char **ret_message) {
        if (!m || m->cfg->update.n_reboot_args == 0)
                return message_set(ret_message, -ENOTSUP,
                                   "no reboot command is configured (update.reboot_command)");
        um_request_reboot(m);
        return message_set(ret_message, 0, "rebooting with %s", m->cfg->update.reboot_command[0]);
}

int update_manager_mark_good(struct update_manager *m, const char *by, json_t **ret, char **ret_message) {
        if (m->state.phase != UPDATE_TRIAL)
                return message_set(ret_message, -EINVAL, "nothing on trial (the update is %s)",
                                   update_phase_to_string(m->state.phase));
        char why[128], msg[512] = "";
        snprintf(why, sizeof(why), "marked good by %s", by);
        int r = um_do_commit(m, why, msg, sizeof(msg));
        if (r < 0)
                return message_set(ret_message, r, "%s", msg[0] ? msg : strerror(-r));
        *ret = json_pack("{s:s}", "phase", update_phase_to_string(m->state.phase));
        return *ret ? 0 : -ENOMEM;
}

static int rolled_back(struct update_manager *m, int r, json_t **ret, char **ret_message) {
        if (r < 0)
                return message_set(ret_message, r, "rollback incomplete: %s", strerror(-r));
        *ret = json_pack("{s:s, s:b}", "phase", update_phase_to_string(m->state.phase),
                         "reboot_required", m->reboot_required);
        return *ret ? 0 : -ENOMEM;
}

int update_manager_mark_bad(struct update_manager *m, const char *by, json_t **ret, char **ret_message) {
        um_scrub_stop(m);
        if (m->state.phase != UPDATE_TRIAL && m->state.phase != UPDATE_READY)
                return message_set(ret_message, -EINVAL,
                                   "nothing on trial or waiting for a reboot (the update is %s)",
                                   update_phase_to_string(m->state.phase));
        return rolled_back(m, um_do_rollback(m, true, "marked bad by %s", by), ret, ret_message);
}

/* The manifest a slot's content record holds (what was installed there), or -errno. */
static int slot_manifest(struct update_manager *m, const char *slot_class, char slot, struct manifest *ret) {
        char name[PATH_MAX];
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (!slot)
                return -ENOENT;
        um_record_name(slot_class, slot, name, sizeof(name));
        int r = statefile_load(m->cfg->update.work_dir, name, &text, &len, NULL);
        if (r < 0)
                return r;
        return manifest_parse_text(name, text, len, 0, ret, NULL);
}

/*
 * A rollback the controller asks for (#18 item 6) goes no lower than the committed release
 * allows: its signed manifest's rollback_floor (its own security_version without one). The
 * controller's command key is online; the release key that signed the manifest is not.
 * 0, or -EPERM with the reason.
 */
static int rollback_allowed_by_release(struct update_manager *m, char **ret_message) {
        const struct update_state *s = &m->state;
        const char *cls = s->has_rootfs ? "rootfs" : NULL;
        char model_class[MANIFEST_NAME_MAX + 16];
        char now_slot = s->has_rootfs ? s->rootfs_target : 0, back_slot = s->has_rootfs ? s->rootfs_previous : 0;
        if (!s->has_rootfs && s->n_models > 0) {
                snprintf(model_class, sizeof(model_class), "model:%s", s->models[0].name);
                cls = model_class;
                now_slot = s->models[0].target;
                back_slot = s->models[0].previous;
        }
        if (!cls)
                return 0;
        struct manifest now = {}, back = {};
        uint64_t floor = s->security_version, target = 0;
        if (slot_manifest(m, cls, now_slot, &now) >= 0) {
                floor = now.has_rollback_floor ? now.rollback_floor : now.security_version;
                manifest_free(&now);
        }
        bool known = slot_manifest(m, cls, back_slot, &back) >= 0;
        if (known) {
                target = back.security_version;
                manifest_free(&back);
        }
        if (target >= floor)
                return 0;
        return message_set(ret_message, -EPERM,
                           "rollback refused: it would take the node to security_version %" PRIu64 "%s, below "
                           "%" PRIu64 ", the lowest the committed release (%s %s, signed) allows going back to; "
                           "a release with a lower rollback_floor, or an operator on the node, can",
                           target, known ? "" : " (an image without a record: taken as 0)", floor, s->bundle_id,
                           s->version);
}

int update_manager_rollback(struct update_manager *m, const char *by, bool on_controller_word, json_t **ret,
                            char **ret_message) {
        um_scrub_stop(m);
        if (m->state.phase == UPDATE_TRIAL || m->state.phase == UPDATE_READY)
                return update_manager_mark_bad(m, by, ret, ret_message);
        if (m->state.phase != UPDATE_COMMITTED)
                return message_set(ret_message, -EINVAL, "no committed update to roll back (the update is %s)",
                                   update_phase_to_string(m->state.phase));
        /* Going back is only safe to a slot that is still good and still holds the old image. */
        if (m->state.has_rootfs) {
                struct boot_state bs;
                int r = um_boot_read(m, &bs), p = boot_slot_index(m->state.rootfs_previous);
                if (r < 0 || p < 0 || !bs.slot[p].good)
                        return message_set(ret_message, -ENOENT,
                                           "slot %c is not marked good: nothing safe to roll back to",
                                           m->state.rootfs_previous);
        }
        if (on_controller_word) {
                int r = rollback_allowed_by_release(m, ret_message);
                if (r < 0)
                        return r;
        }
        return rolled_back(m, um_do_rollback(m, true, "rolled back by %s", by), ret, ret_message);
}

/* ---- status ------------------------------------------------------------------------------ */

static json_t *slot_records_json(struct update_manager *m, const char *slot_class) {
        json_t *o = json_object();
        for (char s = 'A'; o && s <= 'B'; s++) {
                char name[PATH_MAX];
                um_record_name(slot_class, s, name, sizeof(name));
                _cleanup_free_ char *text = NULL;
                size_t len;
                struct manifest mf = {};
                json_t *v = json_null();
                if (statefile_load(m->cfg->update.work_dir, name, &text, &len, NULL) >= 0 &&
                    manifest_parse_text(name, text, len, 0, &mf, NULL) >= 0) {
                        v = json_pack("{s:s, s:s, s:I}", "bundle_id", mf.bundle_id, "version",
                                      mf.version, "security_version", (json_int_t) mf.security_version);
                        if (v && mf.has_rollback_floor)
                                json_object_set_new(v, "rollback_floor", json_integer((json_int_t) mf.rollback_floor));
                        manifest_free(&mf);
                } else {
                        /* set aside by a scrub, waiting for a repair from the ground */
                        _cleanup_free_ char *damaged = NULL;
                        um_slot_file_name(slot_class, s, UM_SLOT_DAMAGED, name, sizeof(name));
                        if (statefile_load(m->cfg->update.work_dir, name, &damaged, &len, NULL) >= 0)
                                v = json_pack("{s:b}", "damaged", true);
                }
                json_object_set_new(o, um_slot_str(s), v);
        }
        return o;
}

void update_manager_view(struct update_manager *m, struct update_view *ret) {
        *ret = (struct update_view){
                .phase = m->state.phase,
                .bundle_id = m->state.bundle_id,
                .reason = m->state.reason,
                .busy = m->worker_running || !update_phase_is_final(m->state.phase),
                .installs = m->state.installs,
        };
}

json_t *update_manager_status_json(struct update_manager *m) {
        const struct update_state *s = &m->state;
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s?, s:b, s:I}",
                              "phase", update_phase_to_string(s->phase), "bundle_id", s->bundle_id,
                              "version", s->version, "security_version", (json_int_t) s->security_version,
                              "min_security_version", (json_int_t) s->min_security_version,
                              "reason", s->reason, "changed_realtime_usec",
                              (json_int_t) s->changed_realtime_usec, "booted_slot", um_slot_str(m->booted),
                              "reboot_required", m->reboot_required, "installs",
                              (json_int_t) s->installs);
        if (!o)
                return NULL;
        /* the status document's common fields for a subsystem */
        char summary[512];
        snprintf(summary, sizeof(summary), "%s%s%s%s%s%s; booted slot %s%s",
                 update_phase_to_string(s->phase),
                 s->bundle_id[0] ? " " : "", s->bundle_id, s->version[0] ? " " : "", s->version,
                 !m->paused ? "" : m->paused_for_space ? " (paused: no space)" : " (paused: link)",
                 m->booted ? um_slot_str(m->booted) : "unknown", m->reboot_required ? "; reboot required" : "");
        bool scrubbing = m->worker_running && m->job &&
                         (m->job->step == JOB_SCRUB || m->job->step == JOB_REPAIR);
        json_object_set_new(o, "state", json_string(scrubbing ? "scrubbing" : m->worker_running ? "installing" : "active"));
        json_object_set_new(o, "scrub", um_scrub_status_json(m, scrubbing));
        json_object_set_new(o, "paused", json_boolean(m->paused));
        if (m->paused) {
                json_object_set_new(o, "paused_reason", json_string(m->last_error));
                json_object_set_new(o, "paused_for",
                                    json_string(m->paused_for_space ? "space" : "link"));
        }
        json_object_set_new(o, "summary", json_string(summary));
        if (s->has_rootfs)
                json_object_set_new(o, "rootfs", json_pack("{s:s, s:s}", "target", um_slot_str(s->rootfs_target),
                                                           "previous", um_slot_str(s->rootfs_previous)));
        json_t *models = json_array();
        for (size_t i = 0; models && i < s->n_models; i++) {
                char cur = 0;
                bool have = model_slot_current(um_slots_dir(&m->cfg->update, s->models[i].app), s->models[i].name,
                                               &cur) >= 0;
                json_array_append_new(models, json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "name", s->models[i].name,
                                                        "target", um_slot_str(s->models[i].target),
                                                        "previous", um_slot_str(s->models[i].previous),
                                                        "current", have ? um_slot_str(cur) : NULL, "kind",
                                                        um_slots_kind(s->models[i].app)));
        }
        json_object_set_new(o, "models", models);
        if (m->bootenv) {
                struct boot_state bs;
                json_t *b;
                if (um_boot_read(m, &bs) >= 0)
                        b = json_pack("{s:s, s:s, s:{s:b, s:i}, s:{s:b, s:i}}", "kind",
                                      m->cfg->update.bootloader_kind, "primary", um_slot_str(bs.primary),
                                      "A", "good", bs.slot[0].good, "tries_left", bs.slot[0].tries_left,
                                      "B", "good", bs.slot[1].good, "tries_left", bs.slot[1].tries_left);
                else
                        b = json_pack("{s:s, s:s}", "kind", m->cfg->update.bootloader_kind, "error",
                                      "unreadable");
                json_object_set_new(o, "boot", b);
                json_object_set_new(o, "rootfs_slots", slot_records_json(m, "rootfs"));
        }
        if (m->worker_running && !scrubbing) {
                struct install_stats st;
                uint64_t done, total;
                job_progress_get(m->job, &st, &done, &total);
                json_object_set_new(o, "progress",
                                    json_pack("{s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I}", "bytes_done",
                                              (json_int_t) done, "bytes_total", (json_int_t) total,
                                              "percent", total ? 100.0 * (double) done / (double) total : 100.0,
                                              "chunks_resumed", (json_int_t) st.chunks_resumed,
                                              "chunks_from_active", (json_int_t) st.chunks_from_active,
                                              "chunks_from_bundle", (json_int_t) st.chunks_from_source,
                                              "bytes_from_bundle", (json_int_t) st.bytes_from_source,
                                              "chunks_repaired", (json_int_t) st.chunks_repaired));
        }
        json_t *trial = um_trial_status_json(m);
        if (trial)
                json_object_set_new(o, "trial", trial);
        return o;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static int state_load(struct update_manager *m) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        enum statefile_source src;
        update_state_init(&m->state);
        int r = statefile_load(m->cfg->update.work_dir, UM_STATE_FILE, &text, &len, &src);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "update: the update state in %s/%s cannot be trusted "
                                       "(no copy verifies); refusing updates until it is repaired",
                                       m->cfg->update.work_dir, UM_STATE_FILE);
        r = update_state_parse(text, len, &m->state, &why);
        if (r < 0)
                return log_error_errno(r, "update: %s/%s: %s", m->cfg->update.work_dir, UM_STATE_FILE,
                                       why ? why : "malformed");
        if (src == STATEFILE_SOURCE_PREVIOUS)
                log_warning("update: the update state was restored from its last good copy");
        return 0;
}

/* Whether a target slot holds this update's content record: the install wrote it. */
static bool slot_holds_update(struct update_manager *m, const char *slot_class, char slot) {
        char name[PATH_MAX];
        _cleanup_free_ char *text = NULL;
        size_t len;
        um_record_name(slot_class, slot, name, sizeof(name));
        if (statefile_load(m->cfg->update.work_dir, name, &text, &len, NULL) < 0)
                return false;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_buffer(text, len, digest);
        sha256_to_hex(digest, hex);
        return streq(hex, m->state.manifest_sha256);
}

/* Every target of the install in progress holds its content record (write_finished saves
 * them all before it arms the rootfs slot). */
static bool install_written(struct update_manager *m) {
        const struct update_state *s = &m->state;
        if (s->phase != UPDATE_INSTALLING || !s->manifest_sha256[0])
                return false;
        if (s->has_rootfs && !slot_holds_update(m, "rootfs", s->rootfs_target))
                return false;
        for (size_t i = 0; i < s->n_models; i++) {
                char cls[MANIFEST_NAME_MAX + 16];
                snprintf(cls, sizeof(cls), "%s:%s", s->models[i].app ? "app" : "model", s->models[i].name);
                if (!slot_holds_update(m, cls, s->models[i].target))
                        return false;
        }
        return true;
}

static int start_action(struct update_manager *m) {
        struct boot_state bs, *bp = NULL;
        if (m->state.has_rootfs && um_boot_read(m, &bs) >= 0)
                bp = &bs;
        const char *why = "";
        enum update_start_action a = update_decide_at_start(&m->state, bp, m->booted, install_written(m), &why);
        if (a != UPDATE_START_NOTHING)
                log_info("update: at start, %s %s is %s: %s", m->state.bundle_id, m->state.version,
                         update_phase_to_string(m->state.phase), update_start_action_to_string(a));
        char msg[512] = "";
        if (m->state.phase == UPDATE_INSTALLING &&
            (a == UPDATE_START_BEGIN_TRIAL || a == UPDATE_START_COMMITTED)) {
                /* What write_finished did not get to: the progress file gone, "ready". */
                um_record_remove(m->cfg->update.work_dir, UM_PROGRESS_FILE);
                int r = um_set_phase(m, UPDATE_READY, "%s", why);
                if (r < 0)
                        return r;
        }
        switch (a) {
        case UPDATE_START_NOTHING:
                return 0;
        case UPDATE_START_RESUME:
                return resume_install(m);
        case UPDATE_START_WAIT_REBOOT:
                m->reboot_required = true;
                log_notice("update: slot %c is armed; waiting for a reboot", m->state.rootfs_target);
                return 0;
        case UPDATE_START_BEGIN_TRIAL:
                return um_begin_trial(m);
        case UPDATE_START_COMMITTED:
                if (m->state.phase == UPDATE_READY)
                        (void) um_set_phase(m, UPDATE_TRIAL, "booted slot %c", m->booted);
                return um_do_commit(m, "the slot was already committed", msg, sizeof(msg));
        case UPDATE_START_ROLLED_BACK:
                return um_do_rollback(m, false, "%s (running slot %c)", why, m->booted ? m->booted : '?');
        }
        return 0;
}

int update_manager_new(sd_event *event, const struct agent_config *cfg,
                       const struct node_state *node, struct event_queue *events,
                       struct runtime *runtime, struct health_monitor *health,
                       struct link_pass *pass, struct update_manager **ret) {
        struct update_manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->cfg = cfg;
        m->pass = pass; /* before start_action: a download resumed now is charged too */
        const char *stall = getenv("ORBIT_FAILPOINT_INSTALL_STALL_PERCENT");
        if (stall && *stall)
                m->stall_percent = strtod(stall, NULL);
        const char *stall_file = getenv("ORBIT_FAILPOINT_INSTALL_STALL_FILE");
        if (stall_file && *stall_file)
                snprintf(m->stall_file, sizeof(m->stall_file), "%s", stall_file);
        const char *tear = getenv("ORBIT_FAILPOINT_PROGRESS_TEAR_PERCENT");
        const char *tear_file = getenv("ORBIT_FAILPOINT_PROGRESS_TEAR_FILE");
        if (tear && *tear && tear_file && *tear_file) {
                m->tear_percent = strtod(tear, NULL);
                snprintf(m->tear_file, sizeof(m->tear_file), "%s", tear_file);
        }
        m->bootenv_stall_op = -1;
        m->boot_op_now = -1;
        const char *bstall = getenv("ORBIT_FAILPOINT_BOOTENV_STALL_AT");
        const char *bstall_file = getenv("ORBIT_FAILPOINT_BOOTENV_STALL_FILE");
        if (bstall && *bstall && bstall_file && *bstall_file) {
                if (failpoint_bootenv_parse(m, bstall) < 0)
                        log_warning("update: ORBIT_FAILPOINT_BOOTENV_STALL_AT=%s: not OP:STEP[:N] "
                                    "(try|good|bad|forget : written|renamed|overwritten|synced : 1-16); "
                                    "ignored", bstall);
                snprintf(m->bootenv_stall_file, sizeof(m->bootenv_stall_file), "%s", bstall_file);
                m->bootenv_hook = (struct durable_hook){.fn = failpoint_bootenv_stall, .userdata = m};
        }
        m->node = node;
        m->events = events;
        m->runtime = runtime;
        m->health = health;
        m->efd = -1;
        const struct agent_update_config *u = &cfg->update;
        int r = mkdir_parents(u->work_dir, 0700);
        if (r < 0) {
                log_error_errno(r, "update: cannot create %s", u->work_dir);
                goto fail;
        }
        m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->efd < 0) {
                r = log_error_errno(errno, "update: eventfd");
                goto fail;
        }
        r = sd_event_add_io(event, &m->efd_source, m->efd, EPOLLIN, on_worker_event, m);
        if (r < 0)
                goto fail;
        if (u->bootloader_kind) {
                struct bootenv_config bc = {
                        .path = u->bootloader_path,
                        .path_redundant = u->bootloader_path_redundant,
                        .offset = (uint64_t) u->bootloader_offset,
                        .offset_redundant = (uint64_t) u->bootloader_offset_redundant,
                        .size = (size_t) u->bootloader_size,
                        .flags_boolean = u->bootloader_flags && streq(u->bootloader_flags, "boolean"),
                        .write_hook = m->bootenv_stall_op >= 0 ? &m->bootenv_hook : NULL,
                };
                (void) bootenv_kind_from_string(u->bootloader_kind, &bc.kind);
                r = bootenv_open(&bc, &m->bootenv);
                if (r < 0) {
                        log_error_errno(r, "update: bootloader %s at %s", u->bootloader_kind, u->bootloader_path);
                        goto fail;
                }
                r = bootenv_booted_slot(cfg->paths.kernel_cmdline, &m->booted);
                if (r < 0) {
                        m->booted = 0;
                        snprintf(m->boot_error, sizeof(m->boot_error), "no orbit.slot= in %s",
                                 cfg->paths.kernel_cmdline);
                        log_warning("update: the booted slot is unknown (%s): rootfs installs are refused",
                                    m->boot_error);
                }
        }
        r = state_load(m);
        if (r < 0)
                goto fail;
        um_record_remove(u->work_dir, OLD_DOWNLOAD_FILE);
        r = um_scrub_setup(m);
        if (r < 0)
                goto fail;
        r = start_action(m);
        if (r < 0)
                log_warning("update: the start action did not complete: %s", strerror(-r));
        log_info("update: ready; booted slot %s, floor security_version %" PRIu64 ", last update %s",
                 m->booted ? um_slot_str(m->booted) : "unknown", m->state.min_security_version,
                 update_phase_to_string(m->state.phase));
        *ret = m;
        return 0;
fail:
        update_manager_free(m);
        return r;
}

void update_manager_free(struct update_manager *m) {
        if (!m)
                return;
        if (m->worker_running) {
                atomic_store(&m->cancel, 1);
                worker_join(m);
                if (m->job) {
                        if (m->job->step != JOB_SCRUB && m->job->step != JOB_REPAIR)
                                log_notice("update: install stopped; progress saved, it resumes at the next start");
                        job_free(m->job);
                        m->job = NULL;
                }
        }
        um_stop_gate(m);
        m->reboot_timer = sd_event_source_disable_unref(m->reboot_timer);
        um_scrub_free(m);
        m->space_timer = sd_event_source_disable_unref(m->space_timer);
        m->efd_source = sd_event_source_disable_unref(m->efd_source);
        if (m->efd >= 0)
                close(m->efd);
        bootenv_free(m->bootenv);
        sd_event_unref(m->event);
        free(m);
}

uint64_t update_manager_take_fetched(struct update_manager *m, char *app, size_t size) {
        if (size > 0)
                snprintf(app, size, "%s", m ? m->fetched_app : "");
        return m ? atomic_exchange(&m->fetched, 0) : 0;
}

void update_manager_set_fetch_starting(struct update_manager *m, update_fetch_starting_fn fn, void *userdata) {
        m->fetch_starting = fn;
        m->fetch_starting_userdata = userdata;
}
