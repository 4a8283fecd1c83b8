/* The update manager's scrub: the inactive slots read back against their kept manifests, on
 * the worker, with what it finds judged and reported on the loop (see update-internal.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/update-internal.h"
#include "lib/log.h"
#include "lib/message.h"
#include "lib/sha256.h"
#include "lib/statefile.h"
#include "update/slot.h"

#define SCRUB_RETRY_USEC (600 * 1000000ULL) /* busy (an install, a trial): try again then */

static void scrub_schedule(struct update_manager *m, uint64_t delay_usec) {
        if (!m->scrub_timer)
                return;
        (void) sd_event_source_set_time(m->scrub_timer, um_monotonic_usec(m) + delay_usec);
        (void) sd_event_source_set_enabled(m->scrub_timer, SD_EVENT_ONESHOT);
}

/* Where the slot's bundle came from: its source record, when it was written with this
 * manifest. Otherwise ss->no_source says why there is none. */
static void scrub_load_source(struct job *j, struct job_scrub_slot *ss, const char *slot_class, char target) {
        char name[PATH_MAX];
        um_slot_file_name(slot_class, target, UM_SLOT_SOURCE, name, sizeof(name));
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = statefile_load(j->work_dir, name, &text, &len, NULL);
        if (r < 0) {
                snprintf(ss->no_source, sizeof(ss->no_source), "no source to repair from (%s)",
                         r == -ENOENT ? "the slot's record does not say where its bundle came from"
                                      : "the record of where its bundle came from does not verify");
                return;
        }
        json_auto_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        const char *digest = NULL, *url = NULL, *etag = NULL;
        json_int_t offset = -1;
        int format = 0;
        /* Not strict: a later agent may add keys. */
        if (!o || json_unpack(o, "{s:i, s:s, s?s, s?s, s:I}", "format", &format, "record_sha256", &digest,
                              "url", &url, "etag", &etag, "payload_offset", &offset) < 0 ||
            format != 1 || offset < 0) {
                snprintf(ss->no_source, sizeof(ss->no_source),
                         "no source to repair from (the record of where its bundle came from is malformed)");
                return;
        }
        uint8_t d[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_buffer(ss->manifest_text, ss->manifest_len, d);
        sha256_to_hex(d, hex);
        if (!streq(hex, digest)) {
                snprintf(ss->no_source, sizeof(ss->no_source),
                         "no source to repair from (the record of where its bundle came from is another install's)");
                return;
        }
        if (!url || strncmp(url, "https://", 8) != 0 || strlen(url) >= sizeof(ss->url) ||
            (etag && strlen(etag) >= sizeof(ss->etag))) {
                snprintf(ss->no_source, sizeof(ss->no_source),
                         "no source to repair from (%s)", url ? "the bundle's address is not usable" :
                         "the slot was installed from a local file");
                return;
        }
        snprintf(ss->url, sizeof(ss->url), "%s", url);
        snprintf(ss->etag, sizeof(ss->etag), "%s", etag ? etag : "");
        ss->payload_offset = (uint64_t) offset;
}

/*
 * A damaged slot's kept manifest: {"format": 1, "boot_good": B, "manifest": TEXT}, where
 * boot_good says whether it was a good fallback before (what a repair gives back).
 */
static int scrub_load_damaged(struct job *j, const char *slot_class, char target, struct job_scrub_slot *ss) {
        char name[PATH_MAX];
        um_slot_file_name(slot_class, target, UM_SLOT_DAMAGED, name, sizeof(name));
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = statefile_load(j->work_dir, name, &text, &len, NULL);
        if (r < 0)
                return r;
        json_auto_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        const char *manifest;
        int format = 0, good = 0;
        if (!o || json_unpack(o, "{s:i, s:b, s:s}", "format", &format, "boot_good", &good, "manifest", &manifest) < 0 ||
            format != 1) {
                log_warning("update: scrub: the kept manifest of damaged slot %s %c is malformed: removed",
                            slot_class, target);
                um_slot_forget(j->work_dir, slot_class, target);
                return -ENOENT;
        }
        ss->manifest_text = strdup(manifest);
        if (!ss->manifest_text)
                return -ENOMEM;
        ss->manifest_len = strlen(manifest);
        ss->was_damaged = true;
        ss->boot_good = good;
        return 0;
}

/* One slot to check: what its record says it holds (or, for a slot an earlier scrub found
 * damaged, the manifest kept for its repair). No record: nothing to check against. */
static int scrub_add(struct job *j, const char *slot_class, char target, const char *slot_path,
                     char active, const char *active_path) {
        if (j->n_images >= MANIFEST_MAX_IMAGES)
                return 0;
        struct job_image *ji = &j->images[j->n_images];
        struct job_scrub_slot *ss = &j->scrub_slots[j->n_images];
        char record[PATH_MAX];
        um_record_name(slot_class, target, record, sizeof(record));
        _cleanup_free_ char *why = NULL;
        int r = statefile_load(j->work_dir, record, &ss->manifest_text, &ss->manifest_len, NULL);
        if (r == -ENOENT) {
                r = scrub_load_damaged(j, slot_class, target, ss);
                if (r == -ENOENT)
                        return 0;
        }
        if (r == -EBADMSG || r == -ENODATA) {
                log_warning("update: scrub: no copy of the record of slot %s %c verifies: removed, the "
                            "slot's content is no longer trusted", slot_class, target);
                um_slot_forget(j->work_dir, slot_class, target);
                return 0;
        }
        if (r < 0) {
                log_warning("update: scrub: the record of slot %s %c: %s; tried again next time",
                            slot_class, target, strerror(-r));
                r = r == -ENOMEM ? r : 0;
                goto drop;
        }
        struct manifest *mf = calloc(1, sizeof(*mf));
        if (!mf) {
                r = -ENOMEM;
                goto drop;
        }
        const struct manifest_image *img = NULL;
        if (manifest_parse_text(record, ss->manifest_text, ss->manifest_len, 0, mf, &why) >= 0)
                img = manifest_find_image(mf, slot_class);
        if (!img) {
                log_warning("update: scrub: the record of slot %s %c does not describe it (%s)", slot_class,
                            target, why ? why : "no such image");
                manifest_free(mf);
                free(mf);
                r = 0;
                goto drop;
        }
        ss->left_bad = calloc(1, install_bitmap_size(img->n_chunks) + 1);
        if (!ss->left_bad) {
                manifest_free(mf);
                free(mf);
                r = -ENOMEM;
                goto drop;
        }
        *ji = (struct job_image){.image = img, .target = target, .slot_fd = -1, .active_fd = -1};
        j->scrub_manifests[j->n_images] = mf;
        snprintf(ji->slot_path, sizeof(ji->slot_path), "%s", slot_path);
        snprintf(ji->record, sizeof(ji->record), "%s", record);
        if (active && active_path) {
                snprintf(ji->active_path, sizeof(ji->active_path), "%s", active_path);
                um_record_name(slot_class, active, ji->active_record, sizeof(ji->active_record));
        }
        scrub_load_source(j, ss, slot_class, target);
        j->n_images++;
        return 0;
drop:
        free(ss->manifest_text);
        *ss = (struct job_scrub_slot){};
        return r;
}

/* The inactive rootfs slot and the inactive member of every model and app that has one. */
static int scrub_prepare(struct update_manager *m, struct job **ret) {
        const struct agent_update_config *u = &m->cfg->update;
        struct job *j = job_new(m, JOB_SCRUB);
        if (!j)
                return -ENOMEM;
        int r = 0;
        struct boot_state bs;
        /* Only at rest: the bootloader boots what runs. After a rollback that still waits for
         * its reboot, "the other slot" is the one to go back to: never touched. */
        if (m->bootenv && m->booted && u->rootfs_a && !m->reboot_required &&
            um_boot_read(m, &bs) >= 0 && bs.primary == m->booted) {
                char inactive = slot_other(m->booted);
                r = scrub_add(j, "rootfs", inactive, inactive == 'A' ? u->rootfs_a : u->rootfs_b, m->booted,
                              m->booted == 'A' ? u->rootfs_a : u->rootfs_b);
        }
        /* Models, then apps (#19: their images; the trees unpacked from them are not read). */
        for (int kind = 0; kind < 2 && r >= 0; kind++) {
                const char *base = kind ? u->apps_dir : u->models_dir;
                const char *prefix = kind ? SLOT_APP_PREFIX : SLOT_MODEL_PREFIX;
                DIR *d = base ? opendir(base) : NULL;
                struct dirent *de;
                while (r >= 0 && d && (de = readdir(d))) {
                        char cur, cls[sizeof(SLOT_MODEL_PREFIX) + sizeof(de->d_name)], slot_path[PATH_MAX],
                                active_path[PATH_MAX];
                        if (de->d_name[0] == '.' || model_slot_current(base, de->d_name, &cur) < 0)
                                continue;
                        if (model_slot_image(base, de->d_name, slot_other(cur), slot_path, sizeof(slot_path)) < 0 ||
                            model_slot_image(base, de->d_name, cur, active_path, sizeof(active_path)) < 0)
                                continue;
                        snprintf(cls, sizeof(cls), "%s%s", prefix, de->d_name);
                        r = scrub_add(j, cls, slot_other(cur), slot_path, cur, active_path);
                }
                if (d)
                        closedir(d);
        }
        if (r < 0 || j->n_images == 0) {
                job_free(j);
                return r < 0 ? r : -ENOENT;
        }
        *ret = j;
        return 0;
}

int um_scrub_start(struct update_manager *m, char *msg, size_t size) {
        if (m->worker_running) {
                snprintf(msg, size, "%s is running",
                         m->job && (m->job->step == JOB_SCRUB || m->job->step == JOB_REPAIR) ? "a scrub"
                                                                                              : "an install");
                return -EBUSY;
        }
        if (!update_phase_is_final(m->state.phase)) {
                snprintf(msg, size, "an update is %s: the inactive slot is not at rest",
                         update_phase_to_string(m->state.phase));
                return -EBUSY;
        }
        struct job *j;
        int r = scrub_prepare(m, &j);
        if (r == -ENOENT) {
                snprintf(msg, size, "nothing to scrub: no inactive slot has a kept manifest (a factory "
                         "image has none; a slot gets one when the agent installs it)");
                return r;
        }
        if (r < 0) {
                snprintf(msg, size, "%s", strerror(-r));
                return r;
        }
        j->scrub_started_usec = um_monotonic_usec(m);
        r = worker_start(m, j);
        if (r < 0) {
                snprintf(msg, size, "cannot start the scrub thread: %s", strerror(-r));
                job_free(j);
                return r;
        }
        log_info("update: scrubbing %zu inactive slot%s", j->n_images, j->n_images == 1 ? "" : "s");
        return 0;
}

static void scrub_report(struct update_manager *m, struct job *j, char actions[][256]);

/* An install, a rollback or a stop needs the worker: a scrub (or its repair) gives way at once. */
void um_scrub_stop(struct update_manager *m) {
        if (!m->worker_running || !m->job || (m->job->step != JOB_SCRUB && m->job->step != JOB_REPAIR))
                return;
        atomic_store(&m->cancel, 1);
        worker_join(m);
        struct job *j = TAKE_PTR(m->job);
        if (j->step == JOB_REPAIR) {
                /* The damage was found and set aside: the ground still learns of it. */
                for (size_t i = 0; i < j->n_images; i++)
                        if (j->scrub_slots[i].repair && !j->scrub_slots[i].verified)
                                snprintf(j->scrub_slots[i].ground, sizeof(j->scrub_slots[i].ground),
                                         "damaged: the repair from the ground gave way to an update; "
                                         "tried again at the next scrub");
                for (size_t i = 0; i < j->n_images; i++)
                        j->scrub_slots[i].verified = false;
                scrub_report(m, j, j->scrub_actions);
        }
        job_free(j);
        log_info("update: scrub stopped (the slots are needed)");
        scrub_schedule(m, SCRUB_RETRY_USEC);
}

/* Whether an earlier set-aside of this very content (its .damaged record, same manifest)
 * found the slot a good fallback: a power cut after it took the slot out of the boot
 * choices, before its record went, must not lose that. */
static bool scrub_damaged_was_good(const char *work_dir, const char *slot_class, char target,
                                   const struct job_scrub_slot *ss) {
        char name[PATH_MAX];
        um_slot_file_name(slot_class, target, UM_SLOT_DAMAGED, name, sizeof(name));
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (statefile_load(work_dir, name, &text, &len, NULL) < 0)
                return false;
        json_auto_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        const char *manifest = NULL;
        int good = 0;
        if (!o || json_unpack(o, "{s:b, s:s}", "boot_good", &good, "manifest", &manifest) < 0)
                return false;
        return good && strlen(manifest) == ss->manifest_len && memcmp(manifest, ss->manifest_text, ss->manifest_len) == 0;
}

/*
 * A slot with chunks no copy on the node could replace: never trusted again as it is (not
 * as a delta source, not as a fallback). With a source to repair from, its manifest is
 * kept aside (UM_SLOT_DAMAGED) for the repair; else everything kept of it goes and the next
 * install rewrites it whole. Out of the boot choices first, its record last: a power cut
 * (or a boot environment that cannot be written) in between leaves the record, and the
 * next scrub finds the damage again; never a damaged slot left a fallback with nothing
 * kept that would make a scrub look at it again.
 */
static void scrub_set_aside(struct update_manager *m, struct job *j, size_t i, bool keep, char *action,
                            size_t size) {
        struct job_image *ji = &j->images[i];
        struct job_scrub_slot *ss = &j->scrub_slots[i];
        bool rootfs = streq(ji->image->slot_class, "rootfs");
        struct boot_state bs;
        bool have_boot = rootfs && um_boot_read(m, &bs) >= 0;
        int k = boot_slot_index(ji->target);
        ss->boot_good = (have_boot && k >= 0 && bs.slot[k].good) ||
                        (rootfs && scrub_damaged_was_good(j->work_dir, ji->image->slot_class, ji->target, ss));
        bool kept = false;
        if (keep) {
                char name[PATH_MAX];
                um_slot_file_name(ji->image->slot_class, ji->target, UM_SLOT_DAMAGED, name, sizeof(name));
                json_auto_t *o = json_pack("{s:i, s:b, s:s%}", "format", 1, "boot_good", ss->boot_good,
                                           "manifest", ss->manifest_text, ss->manifest_len);
                int r = o ? statefile_save_json(j->work_dir, name, o) : -ENOMEM;
                if (r >= 0)
                        kept = true;
                else
                        log_warning("update: cannot keep the manifest of damaged slot %s %c in %s: %s",
                                    ji->image->slot_class, ji->target, j->work_dir, strerror(-r));
        }
        const char *what = kept ? "its manifest kept for a repair from the ground" : "its record removed";
        if (have_boot && bs.primary == ji->target)
                /* what the bootloader boots next: never taken away here */
                snprintf(action, size, "%s; the bootloader's primary, so left in the boot choices", what);
        else if (rootfs) {
                char why[200];
                int r = um_boot_update(m, UM_BOOT_FORGET, ji->target, why, sizeof(why));
                if (r < 0) {
                        /* still bootable: the record stays, the next scrub finds the damage again */
                        snprintf(action, size, "not taken out of the boot choices (%s); its record kept", why);
                        return;
                }
                snprintf(action, size, "taken out of the boot choices, %s", what);
        } else
                snprintf(action, size, "%s", what);
        um_record_remove(j->work_dir, ji->record);
        if (!keep)
                um_slot_forget(j->work_dir, ji->image->slot_class, ji->target);
}

/* A damaged slot that reads back whole again: recorded as trusted, a fallback again if it
 * was one. The same state a clean scrub leaves. */
static void scrub_trust_again(struct update_manager *m, struct job *j, size_t i, char *action, size_t size) {
        struct job_image *ji = &j->images[i];
        struct job_scrub_slot *ss = &j->scrub_slots[i];
        int r = statefile_save(j->work_dir, ji->record, ss->manifest_text, ss->manifest_len);
        if (r < 0) {
                snprintf(action, size, "cannot record it again in %.128s: %.64s; still not trusted", j->work_dir,
                         strerror(-r));
                return;
        }
        char name[PATH_MAX];
        um_slot_file_name(ji->image->slot_class, ji->target, UM_SLOT_DAMAGED, name, sizeof(name));
        um_record_remove(j->work_dir, name);
        ss->was_damaged = false;
        snprintf(action, size, "trusted again");
        if (streq(ji->image->slot_class, "rootfs") && ss->boot_good) {
                char why[256];
                if (um_boot_update(m, UM_BOOT_GOOD, ji->target, why, sizeof(why)) < 0)
                        snprintf(action, size, "trusted again; %.200s", why);
                else
                        snprintf(action, size, "trusted again, a good fallback again");
        }
}

/* What the scrub found, per slot: set aside what stays damaged, trust again what a copy on
 * the node repaired, and say which slots the ground can repair. True when one can. */
static bool scrub_judge(struct update_manager *m, struct job *j, char actions[][256]) {
        bool link = m->cfg->link.enabled && m->cfg->link.url;
        bool any = false;
        for (size_t i = 0; i < j->n_images; i++) {
                struct job_scrub_slot *ss = &j->scrub_slots[i];
                const struct install_scrub_stats *st = &j->scrub_stats[i];
                uint64_t unrepaired = st->chunks_bad - st->chunks_repaired;
                if (j->scrub_errors[i][0])
                        continue; /* not looked at: tried again next time */
                if (!unrepaired) {
                        if (ss->was_damaged)
                                scrub_trust_again(m, j, i, actions[i], sizeof(actions[i]));
                        continue;
                }
                if (ss->url[0] && !link)
                        snprintf(ss->no_source, sizeof(ss->no_source),
                                 "no source to repair from (the controller link is not configured)");
                bool ground = ss->url[0] && link;
                if (!ss->was_damaged)
                        scrub_set_aside(m, j, i, ground, actions[i], sizeof(actions[i]));
                if (ground) {
                        ss->repair = true;
                        any = true;
                } else
                        snprintf(ss->ground, sizeof(ss->ground), "damaged, %s", ss->no_source);
        }
        return any;
}

/* What the repair from the ground did, per slot it tried. */
static void repair_judge(struct update_manager *m, struct job *j, char actions[][256]) {
        for (size_t i = 0; i < j->n_images; i++) {
                struct job_image *ji = &j->images[i];
                struct job_scrub_slot *ss = &j->scrub_slots[i];
                const struct repair_stats *rs = &ss->repair_stats;
                if (!ss->repair)
                        continue;
                if (ss->verified) {
                        snprintf(ss->ground, sizeof(ss->ground), "repaired from the ground: %" PRIu64 " chunks",
                                 rs->chunks_written);
                        scrub_trust_again(m, j, i, actions[i], sizeof(actions[i]));
                        log_notice("update: slot %s %c repaired from the ground: %" PRIu64 " chunks (%" PRIu64
                                   " bytes in %" PRIu64 " ranges of %s), verified whole",
                                   ji->image->slot_class, ji->target, rs->chunks_written, rs->bytes_fetched,
                                   rs->ranges, ss->url);
                        continue;
                }
                if (ss->repair_result == -ENOENT)
                        snprintf(ss->ground, sizeof(ss->ground),
                                 "damaged: the bundle that installed slot %s %c is gone from the controller "
                                 "(%.200s); tried again at the next scrub",
                                 ji->image->slot_class, ji->target, ss->url);
                else if (rs->chunks_refused)
                        snprintf(ss->ground, sizeof(ss->ground),
                                 "damaged: %" PRIu64 " chunks from the ground refused, they do not match the "
                                 "slot's manifest (first: chunk %" PRId64 "); %" PRIu64 " written",
                                 rs->chunks_refused, rs->first_refused, rs->chunks_written);
                else if (ss->repair_result == -ENOLINK)
                        snprintf(ss->ground, sizeof(ss->ground),
                                 "damaged: the controller cannot be reached; tried again at the next scrub");
                else if (ss->repair_result == -EDQUOT)
                        snprintf(ss->ground, sizeof(ss->ground),
                                 "damaged: the repair is over this pass's download budget "
                                 "(link.download_budget_mib); tried again at the next scrub");
                else if (ss->repair_result == -ETIME)
                        snprintf(ss->ground, sizeof(ss->ground),
                                 "damaged: the contact window closes before the repair could finish; "
                                 "tried again at the next scrub");
                else if (ss->repair_result == -ESTALE)
                        snprintf(ss->ground, sizeof(ss->ground),
                                 "damaged: the bundle on the controller is no longer the one that installed "
                                 "slot %s %c", ji->image->slot_class, ji->target);
                else
                        snprintf(ss->ground, sizeof(ss->ground), "damaged: the repair from the ground failed: %s",
                                 ss->repair_error[0] ? ss->repair_error : strerror(-ss->repair_result));
                log_error("update: slot %s %c: %s", ji->image->slot_class, ji->target, ss->ground);
        }
}

/* The result of a scrub (and of the repair that followed it): status, log, one record. */
static void scrub_report(struct update_manager *m, struct job *j, char actions[][256]) {
        json_t *slots = json_array();
        enum event_priority prio = EVENT_LOW;
        uint64_t bad_total = 0;
        for (size_t i = 0; slots && i < j->n_images; i++) {
                struct job_image *ji = &j->images[i];
                const struct install_scrub_stats *st = &j->scrub_stats[i];
                const struct job_scrub_slot *ss = &j->scrub_slots[i];
                uint64_t from_ground = ss->verified ? ss->repair_stats.chunks_written : 0;
                uint64_t unrepaired = st->chunks_bad - st->chunks_repaired - from_ground;
                const char *result = j->scrub_errors[i][0] ? "error" : unrepaired ? "damaged" :
                                     st->chunks_bad ? "repaired" : "clean";
                const char *action = actions[i];
                bad_total += st->chunks_bad;
                if (unrepaired)
                        prio = EVENT_CRITICAL;
                else if ((st->chunks_bad || j->scrub_errors[i][0]) && prio < EVENT_HIGH)
                        prio = EVENT_HIGH; /* an error: reported, tried again next time */
                json_t *first = json_array();
                for (size_t k = 0; first && k < st->n_listed; k++)
                        json_array_append_new(first, json_integer((json_int_t) st->bad[k]));
                json_array_append_new(slots,
                        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o*, s:s*, s:s*, s:s*}",
                                  "slot_class", ji->image->slot_class, "slot", um_slot_str(ji->target),
                                  "path", ji->slot_path, "result", result,
                                  "chunks", (json_int_t) st->chunks_total, "bad", (json_int_t) st->chunks_bad,
                                  "repaired", (json_int_t) (st->chunks_repaired + from_ground),
                                  "repaired_from_active", (json_int_t) st->chunks_from_active,
                                  "repaired_from_ground", (json_int_t) from_ground,
                                  "refused_from_ground", (json_int_t) ss->repair_stats.chunks_refused,
                                  "unrepaired", (json_int_t) unrepaired, "first_bad", first,
                                  "error", j->scrub_errors[i][0] ? j->scrub_errors[i] : NULL,
                                  "action", action[0] ? action : NULL,
                                  "ground", ss->ground[0] ? ss->ground : NULL));
                if (j->scrub_errors[i][0])
                        log_error("update: scrub of slot %s %c: %s; %s", ji->image->slot_class, ji->target,
                                  j->scrub_errors[i], action);
                else if (st->chunks_bad)
                        log_full(unrepaired ? LOG_ERR : LOG_WARNING,
                                 "update: scrub of slot %s %c (%s): %" PRIu64 " of %" PRIu64
                                 " chunks changed on the medium, %" PRIu64 " repaired (%" PRIu64
                                 " from the active slot), %" PRIu64 " without a good copy on the node%s%s%s%s",
                                 ji->image->slot_class, ji->target, ji->slot_path, st->chunks_bad,
                                 st->chunks_total, st->chunks_repaired, st->chunks_from_active,
                                 st->chunks_bad - st->chunks_repaired, action[0] ? ": " : "", action,
                                 ss->ground[0] ? "; " : "", ss->ground);
                else
                        log_info("update: scrub of slot %s %c: %" PRIu64 " chunks, all good%s%s",
                                 ji->image->slot_class, ji->target, st->chunks_total, action[0] ? "; " : "", action);
        }
        json_t *doc = slots ? json_pack("{s:i, s:I, s:f, s:o}", "format", 1, "um_realtime_usec",
                                        (json_int_t) um_realtime_usec(), "duration_sec",
                                        (double) (um_monotonic_usec(m) - j->scrub_started_usec) / 1e6, "slots",
                                        slots)
                            : NULL;
        if (doc) {
                json_decref(m->scrub_last);
                m->scrub_last = doc;
                if (statefile_save_json(m->cfg->update.work_dir, UM_SCRUB_FILE, doc) < 0)
                        log_warning("update: cannot save the scrub result in %s", m->cfg->update.work_dir);
                (void) event_queue_push(m->events, prio, "update.scrub", json_incref(doc), um_realtime_usec(),
                                        um_monotonic_usec(m));
        }
        if (bad_total == 0)
                log_debug("update: scrub clean");
        if (m->cfg->update.scrub_interval_sec > 0)
                scrub_schedule(m, (uint64_t) m->cfg->update.scrub_interval_sec * 1000000ULL);
}

bool um_scrub_finished(struct update_manager *m, struct job *j) {
        if (j->result == -ECANCELED)
                return false;
        /* the actions taken, per slot, kept in the job across the repair */
        char (*actions)[256] = j->scrub_actions;
        if (j->step == JOB_SCRUB) {
                if (scrub_judge(m, j, actions)) {
                        /* The repair runs on the worker like the scrub, and gives way like it. */
                        j->step = JOB_REPAIR;
                        um_fetch_tls(m, &j->tls);
                        j->pass = m->pass;
                        int r = worker_start(m, j);
                        if (r >= 0) {
                                log_info("update: fetching the damaged chunks from the ground");
                                return true;
                        }
                        for (size_t i = 0; i < j->n_images; i++)
                                if (j->scrub_slots[i].repair) {
                                        j->scrub_slots[i].repair = false;
                                        snprintf(j->scrub_slots[i].ground, sizeof(j->scrub_slots[i].ground),
                                                 "damaged: cannot start the repair thread: %s", strerror(-r));
                                }
                }
        } else
                repair_judge(m, j, actions);
        scrub_report(m, j, actions);
        return false;
}

static int on_scrub_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct update_manager *m = userdata;
        if (m->cfg->update.scrub_interval_sec <= 0)
                return 0;
        char msg[256];
        int r = um_scrub_start(m, msg, sizeof(msg));
        if (r == -EBUSY) {
                uint64_t interval = (uint64_t) m->cfg->update.scrub_interval_sec * 1000000ULL;
                scrub_schedule(m, interval < SCRUB_RETRY_USEC ? interval : SCRUB_RETRY_USEC);
        } else if (r < 0) {
                log_debug("update: scrub: %s", msg);
                scrub_schedule(m, (uint64_t) m->cfg->update.scrub_interval_sec * 1000000ULL);
        }
        return 0;
}

/* The last result, and the first scrub of this run due one interval after the last one. */
int um_scrub_setup(struct update_manager *m) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (statefile_load(m->cfg->update.work_dir, UM_SCRUB_FILE, &text, &len, NULL) >= 0) {
                json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
                if (json_is_object(o) && json_is_integer(json_object_get(o, "um_realtime_usec")))
                        m->scrub_last = o;
                else
                        json_decref(o);
        }
        int r = sd_event_add_time(m->event, &m->scrub_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_scrub_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(m->scrub_timer, "update-scrub");
        (void) sd_event_source_set_enabled(m->scrub_timer, SD_EVENT_OFF);
        int64_t interval = m->cfg->update.scrub_interval_sec;
        if (interval <= 0)
                return 0;
        uint64_t delay = (uint64_t) interval * 1000000ULL;
        if (m->scrub_last) {
                uint64_t last = (uint64_t) json_integer_value(json_object_get(m->scrub_last, "um_realtime_usec"));
                uint64_t now = um_realtime_usec();
                if (last <= now)
                        delay = now - last >= delay ? 0 : delay - (now - last);
        }
        scrub_schedule(m, delay);
        return 0;
}

int update_manager_scrub(struct update_manager *m, json_t **ret, char **ret_message) {
        char msg[512] = "";
        int r = um_scrub_start(m, msg, sizeof(msg));
        if (r < 0)
                return message_set(ret_message, r, "%s", msg[0] ? msg : strerror(-r));
        *ret = json_pack("{s:s, s:I}", "scrub", "started", "slots", (json_int_t) m->job->n_images);
        return *ret ? 0 : -ENOMEM;
}

json_t *um_scrub_status_json(struct update_manager *m, bool running) {
        uint64_t next = 0, now = um_monotonic_usec(m);
        int enabled = SD_EVENT_OFF;
        if (m->scrub_timer && sd_event_source_get_enabled(m->scrub_timer, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF)
                (void) sd_event_source_get_time(m->scrub_timer, &next);
        return json_pack("{s:b, s:O?, s:o?}", "running", running, "last", m->scrub_last, "next_in_sec",
                         next ? json_real(next > now ? (double) (next - now) / 1e6 : 0.0) : NULL);
}

void um_scrub_free(struct update_manager *m) {
        m->scrub_timer = sd_event_source_disable_unref(m->scrub_timer);
        json_decref(m->scrub_last);
        m->scrub_last = NULL;
}
