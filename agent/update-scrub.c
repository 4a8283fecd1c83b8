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
#include "lib/statefile.h"
#include "update/slot.h"

#define SCRUB_RETRY_USEC (600 * 1000000ULL) /* busy (an install, a trial): try again then */

static void scrub_schedule(struct update_manager *m, uint64_t delay_usec) {
        if (!m->scrub_timer)
                return;
        (void) sd_event_source_set_time(m->scrub_timer, um_monotonic_usec(m) + delay_usec);
        (void) sd_event_source_set_enabled(m->scrub_timer, SD_EVENT_ONESHOT);
}

/* One slot to check: what its record says it holds. No record: nothing to check against. */
static int scrub_add(struct job *j, const char *slot_class, char target, const char *slot_path,
                     char active, const char *active_path) {
        if (j->n_images >= MANIFEST_MAX_IMAGES)
                return 0;
        struct job_image *ji = &j->images[j->n_images];
        char record[PATH_MAX];
        um_record_name(slot_class, target, record, sizeof(record));
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        int r = statefile_load(j->work_dir, record, &text, &len, NULL);
        if (r == -ENOENT)
                return 0;
        if (r == -EBADMSG || r == -ENODATA) {
                log_warning("update: scrub: no copy of the record of slot %s %c verifies: removed, the "
                            "slot's content is no longer trusted", slot_class, target);
                um_record_remove(j->work_dir, record);
                return 0;
        }
        if (r < 0) {
                log_warning("update: scrub: the record of slot %s %c: %s; tried again next time",
                            slot_class, target, strerror(-r));
                return 0;
        }
        struct manifest *mf = calloc(1, sizeof(*mf));
        if (!mf)
                return -ENOMEM;
        const struct manifest_image *img = NULL;
        if (manifest_parse_text(record, text, len, 0, mf, &why) >= 0)
                img = manifest_find_image(mf, slot_class);
        if (!img) {
                log_warning("update: scrub: the record of slot %s %c does not describe it (%s)", slot_class,
                            target, why ? why : "no such image");
                manifest_free(mf);
                free(mf);
                return 0;
        }
        *ji = (struct job_image){.image = img, .target = target, .slot_fd = -1, .active_fd = -1};
        j->scrub_manifests[j->n_images] = mf;
        snprintf(ji->slot_path, sizeof(ji->slot_path), "%s", slot_path);
        snprintf(ji->record, sizeof(ji->record), "%s", record);
        if (active && active_path) {
                snprintf(ji->active_path, sizeof(ji->active_path), "%s", active_path);
                um_record_name(slot_class, active, ji->active_record, sizeof(ji->active_record));
        }
        j->n_images++;
        return 0;
}

/* The inactive rootfs slot and the inactive member of every model that has one. */
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
        DIR *d = r >= 0 ? opendir(u->models_dir) : NULL;
        struct dirent *de;
        while (r >= 0 && d && (de = readdir(d))) {
                char cur, cls[sizeof(SLOT_MODEL_PREFIX) + sizeof(de->d_name)], slot_path[PATH_MAX],
                        active_path[PATH_MAX];
                if (de->d_name[0] == '.' || model_slot_current(u->models_dir, de->d_name, &cur) < 0)
                        continue;
                if (model_slot_image(u->models_dir, de->d_name, slot_other(cur), slot_path, sizeof(slot_path)) < 0 ||
                    model_slot_image(u->models_dir, de->d_name, cur, active_path, sizeof(active_path)) < 0)
                        continue;
                snprintf(cls, sizeof(cls), "%s%s", SLOT_MODEL_PREFIX, de->d_name);
                r = scrub_add(j, cls, slot_other(cur), slot_path, cur, active_path);
        }
        if (d)
                closedir(d);
        if (r < 0 || j->n_images == 0) {
                job_free(j);
                return r < 0 ? r : -ENOENT;
        }
        *ret = j;
        return 0;
}

int um_scrub_start(struct update_manager *m, char *msg, size_t size) {
        if (m->worker_running) {
                snprintf(msg, size, "%s is running", m->job && m->job->step == JOB_SCRUB ? "a scrub" : "an install");
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

/* An install, a rollback or a stop needs the worker: a scrub gives way at once. */
void um_scrub_stop(struct update_manager *m) {
        if (!m->worker_running || !m->job || m->job->step != JOB_SCRUB)
                return;
        atomic_store(&m->cancel, 1);
        worker_join(m);
        job_free(m->job);
        m->job = NULL;
        log_info("update: scrub stopped (the slots are needed)");
        scrub_schedule(m, SCRUB_RETRY_USEC);
}

void um_scrub_finished(struct update_manager *m, struct job *j) {
        if (j->result == -ECANCELED)
                return;
        json_t *slots = json_array();
        enum event_priority prio = EVENT_LOW;
        uint64_t bad_total = 0;
        for (size_t i = 0; slots && i < j->n_images; i++) {
                struct job_image *ji = &j->images[i];
                const struct install_scrub_stats *st = &j->scrub_stats[i];
                uint64_t unrepaired = st->chunks_bad - st->chunks_repaired;
                const char *result = j->scrub_errors[i][0] ? "error" : unrepaired ? "damaged" :
                                     st->chunks_bad ? "repaired" : "clean";
                char action[256] = "";
                bad_total += st->chunks_bad;
                if (unrepaired) {
                        /* Never trusted again: not as a delta source, not as a fallback. A new
                         * install into it rewrites it whole. */
                        um_record_remove(j->work_dir, ji->record);
                        snprintf(action, sizeof(action), "its record removed");
                        struct boot_state bs;
                        if (streq(ji->image->slot_class, "rootfs") && um_boot_read(m, &bs) >= 0 &&
                            bs.primary == ji->target) {
                                /* what the bootloader boots next: never taken away here */
                                snprintf(action, sizeof(action), "its record removed; the bootloader's "
                                         "primary, so left in the boot choices");
                        } else if (streq(ji->image->slot_class, "rootfs")) {
                                char why[256];
                                int r = um_boot_update(m, UM_BOOT_FORGET, ji->target, why, sizeof(why));
                                snprintf(action, sizeof(action), "%s",
                                         r < 0 ? why : "taken out of the boot choices, its record removed");
                        }
                        prio = EVENT_CRITICAL;
                } else if ((st->chunks_bad || j->scrub_errors[i][0]) && prio < EVENT_HIGH)
                        prio = EVENT_HIGH; /* an error: reported, tried again next time */
                json_t *first = json_array();
                for (size_t k = 0; first && k < st->n_listed; k++)
                        json_array_append_new(first, json_integer((json_int_t) st->bad[k]));
                json_array_append_new(slots,
                        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o*, s:s*, s:s*}",
                                  "slot_class", ji->image->slot_class, "slot", um_slot_str(ji->target),
                                  "path", ji->slot_path, "result", result,
                                  "chunks", (json_int_t) st->chunks_total, "bad", (json_int_t) st->chunks_bad,
                                  "repaired", (json_int_t) st->chunks_repaired,
                                  "repaired_from_active", (json_int_t) st->chunks_from_active,
                                  "unrepaired", (json_int_t) unrepaired, "first_bad", first,
                                  "error", j->scrub_errors[i][0] ? j->scrub_errors[i] : NULL,
                                  "action", action[0] ? action : NULL));
                if (j->scrub_errors[i][0])
                        log_error("update: scrub of slot %s %c: %s; %s", ji->image->slot_class, ji->target,
                                  j->scrub_errors[i], action);
                else if (st->chunks_bad)
                        log_full(unrepaired ? LOG_ERR : LOG_WARNING,
                                 "update: scrub of slot %s %c (%s): %" PRIu64 " of %" PRIu64
                                 " chunks changed on the medium, %" PRIu64 " repaired (%" PRIu64
                                 " from the active slot), %" PRIu64 " without a good copy on the node%s%s",
                                 ji->image->slot_class, ji->target, ji->slot_path, st->chunks_bad,
                                 st->chunks_total, st->chunks_repaired, st->chunks_from_active, unrepaired,
                                 action[0] ? ": " : "", action);
                else
                        log_info("update: scrub of slot %s %c: %" PRIu64 " chunks, all good",
                                 ji->image->slot_class, ji->target, st->chunks_total);
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
