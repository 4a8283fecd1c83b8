/* The update manager's worker: each step of a job on its own thread, on the job's own copy
 * of what it needs (see update-internal.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/update-internal.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/message.h"
#include "lib/statefile.h"
#include "update/app-tree.h"
#include "update/slot.h"

/* Tell the loop the step is over. */
static void job_wake(struct job *j) {
        uint64_t one = 1;
        if (write(j->wake_fd, &one, sizeof(one)) < 0)
                log_error("update: cannot wake the event loop: %m");
}

struct job *job_new(struct update_manager *m, enum job_step step) {
        const struct agent_update_config *u = &m->cfg->update;
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return NULL;
        j->step = step;
        j->cancel = &m->cancel;
        j->wake_fd = m->efd;
        pthread_mutex_init(&j->lock, NULL);
        j->progress_file = (struct statefile_pair) STATEFILE_PAIR_INIT;
        snprintf(j->work_dir, sizeof(j->work_dir), "%s", u->work_dir);
        snprintf(j->models_dir, sizeof(j->models_dir), "%s", u->models_dir ? u->models_dir : "");
        snprintf(j->apps_dir, sizeof(j->apps_dir), "%s", u->apps_dir ? u->apps_dir : "");
        snprintf(j->progress_path, sizeof(j->progress_path), "%s/%s", u->work_dir, UM_PROGRESS_FILE);
        j->scrub_bytes_per_sec = (uint64_t) u->scrub_mib_per_sec * 1024 * 1024;
        j->checkpoint_bytes = (uint64_t) u->checkpoint_mib * 1024 * 1024;
        j->delta_scan = u->delta_scan;
        j->verify_first = u->verify_before_write;
        j->stall_percent = m->stall_percent;
        snprintf(j->stall_file, sizeof(j->stall_file), "%s", m->stall_file);
        j->tear_percent = m->tear_percent;
        snprintf(j->tear_file, sizeof(j->tear_file), "%s", m->tear_file);
        return j;
}

void job_free(struct job *j) {
        if (!j)
                return;
        for (size_t i = 0; i < j->n_images; i++) {
                free(j->images[i].done);
                install_index_free(j->images[i].index);
                if (j->images[i].slot_fd >= 0)
                        close(j->images[i].slot_fd);
                if (j->images[i].active_fd >= 0)
                        close(j->images[i].active_fd);
        }
        for (size_t i = 0; i < MANIFEST_MAX_IMAGES; i++) {
                free(j->scrub_slots[i].manifest_text);
                free(j->scrub_slots[i].left_bad);
        }
        for (size_t i = 0; i < MANIFEST_MAX_IMAGES; i++)
                if (j->scrub_manifests[i]) {
                        manifest_free(j->scrub_manifests[i]);
                        free(j->scrub_manifests[i]);
                }
        bundle_close(j->bundle); /* before the fetcher its reader uses */
        fetcher_free(j->fetcher);
        free(j->head);
        free(j->reason);
        statefile_pair_close(&j->progress_file);
        pthread_mutex_destroy(&j->lock);
        free(j);
}

static int progress_save(struct job *j, bool flush) {
        json_t *images = json_array();
        if (!images)
                return -ENOMEM;
        for (size_t i = 0; i < j->n_images; i++) {
                const struct job_image *ji = &j->images[i];
                _cleanup_free_ char *hex = NULL;
                int r = install_bitmap_to_hex(ji->done, ji->image->n_chunks, &hex);
                if (r < 0 || json_array_append_new(images, json_pack("{s:s, s:s, s:I, s:I, s:s}",
                                "slot_class", ji->image->slot_class, "target", um_slot_str(ji->target),
                                "chunk_size", (json_int_t) ji->image->chunk_size,
                                "n_chunks", (json_int_t) ji->image->n_chunks, "done", hex)) < 0) {
                        json_decref(images);
                        return -ENOMEM;
                }
        }
        json_auto_t *o = json_pack("{s:i, s:s, s:o}", "format", 1, "manifest_sha256",
                                   j->manifest_sha256, "images", images);
        if (!o)
                return -ENOMEM;
        _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        /* in place, and flushed with the slot's next sync when on its disk (lib/statefile.h) */
        return statefile_pair_save(&j->progress_file, j->work_dir, UM_PROGRESS_FILE, text, strlen(text), flush);
}

/* Take the bitmaps of an earlier run of the same install; anything else starts from zero. */
void job_progress_load(struct job *j) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = statefile_pair_load(j->work_dir, UM_PROGRESS_FILE, &text, &len);
        if (r < 0) {
                if (r != -ENOENT)
                        log_warning("update: install progress unreadable (%s): starting over",
                                    strerror(-r));
                return;
        }
        json_error_t err;
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err), *images;
        const char *digest;
        int format;
        if (!o || json_unpack_ex(o, &err, JSON_STRICT, "{s:i, s:s, s:o}", "format", &format,
                                 "manifest_sha256", &digest, "images", &images) < 0 ||
            format != 1 || !json_is_array(images)) {
                log_warning("update: install progress malformed: starting over");
                json_decref(o);
                return;
        }
        if (!streq(digest, j->manifest_sha256)) {
                json_decref(o);
                return; /* another bundle's */
        }
        size_t i;
        json_t *e;
        json_array_foreach(images, i, e) {
                const char *cls, *target, *hex;
                json_int_t cs, n;
                if (json_unpack_ex(e, &err, JSON_STRICT, "{s:s, s:s, s:I, s:I, s:s}", "slot_class",
                                   &cls, "target", &target, "chunk_size", &cs, "n_chunks", &n, "done",
                                   &hex) < 0)
                        continue;
                for (size_t k = 0; k < j->n_images; k++) {
                        struct job_image *ji = &j->images[k];
                        if (!streq(ji->image->slot_class, cls) || !um_slot_str(ji->target) ||
                            !streq(um_slot_str(ji->target), target) ||
                            (uint64_t) cs != ji->image->chunk_size || (uint64_t) n != ji->image->n_chunks)
                                continue;
                        uint8_t *map;
                        if (install_bitmap_from_hex(hex, ji->image->n_chunks, &map) < 0) {
                                log_warning("update: progress of %s malformed: rewriting it", cls);
                                continue;
                        }
                        free(ji->done);
                        ji->done = map;
                        log_info("update: resuming %s: %" PRIu64 " of %" PRIu64 " chunks already in slot %c",
                                 cls, install_bitmap_count(map, ji->image->n_chunks), ji->image->n_chunks,
                                 ji->target);
                }
        }
        json_decref(o);
}

/* Tests only (ORBIT_FAILPOINT_INSTALL_STALL_PERCENT): stop once that much is durable, until
 * cancelled. Seen after each chunk and after each checkpoint: the bytes durable grow at
 * checkpoints, and on a fast slot every one may end after the writer's last chunk. */
static void job_stall_at_percent(struct job *j, uint64_t done, uint64_t total) {
        if (j->stall_percent <= 0 || !total || 100.0 * (double) done / (double) total < j->stall_percent)
                return;
        if (!atomic_exchange(&j->stall_logged, true))
                log_notice("update: failpoint: install stalled at %.1f%% (%" PRIu64 " of %" PRIu64
                           " bytes durable)", 100.0 * (double) done / (double) total, done, total);
        while (!atomic_load(j->cancel))
                usleep(10 * 1000);
}

/* Tests only (ORBIT_FAILPOINT_PROGRESS_TEAR_PERCENT): the progress save is torn; hold there
 * while the file exists, for the test to cut the power (or kill the agent). */
static void job_tear_hold(void *userdata, const char *path, uint64_t seq, size_t written, size_t block) {
        struct job *j = userdata;
        const struct job_image *ji = &j->images[j->current];
        j->torn = true;
        log_notice("update: failpoint: the install progress save torn (%s: %" PRIu64 " of %" PRIu64
                   " chunks in slot %c): %zu of %zu bytes of copy %" PRIu64 " in %s written, while %s exists",
                   ji->image->slot_class, install_bitmap_count(ji->done, ji->image->n_chunks),
                   ji->image->n_chunks, ji->target, written, block, seq % 2, path, j->tear_file);
        while (!atomic_load(j->cancel) && access(j->tear_file, F_OK) == 0)
                usleep(10 * 1000);
        log_notice("update: failpoint: the progress save goes on");
}

/* Tests only: arm the tear for this save once tear_percent of the install is durable. */
static bool job_tear_due(struct job *j, const struct install_stats *st) {
        if (j->tear_percent <= 0 || j->torn || access(j->tear_file, F_OK) < 0)
                return false;
        pthread_mutex_lock(&j->lock);
        uint64_t durable = j->progress_before + st->bytes_done, total = j->progress_total;
        pthread_mutex_unlock(&j->lock);
        return total && 100.0 * (double) durable / (double) total >= j->tear_percent;
}

static int job_checkpoint(void *userdata, const uint8_t *done, const struct install_stats *st, bool flush) {
        struct job *j = userdata;
        if (st->chunks_repaired > j->repaired_logged) {
                log_warning("update: %s: %" PRIu64 " chunks written to slot %c before changed on the medium "
                            "since: written again",
                            j->images[j->current].image->slot_class, st->chunks_repaired - j->repaired_logged,
                            j->images[j->current].target);
                j->repaired_logged = st->chunks_repaired;
        }
        if (job_tear_due(j, st)) {
                /* only a save in place tears (the first of a handle is a new file) */
                j->tear = (struct statefile_pair_tear){.fn = job_tear_hold, .userdata = j};
                j->progress_file.tear = &j->tear;
        }
        int r = progress_save(j, flush);
        j->progress_file.tear = NULL;
        if (r < 0)
                return r;
        pthread_mutex_lock(&j->lock);
        uint64_t durable = j->progress_before + st->bytes_done, total = j->progress_total;
        pthread_mutex_unlock(&j->lock);
        job_stall_at_percent(j, durable, total);
        return 0;
}

/* The worker's progress, kept in the job for the status to read (the loop has nothing
 * to do on progress: no wake-up for it). */
static void job_progress(void *userdata, const struct install_stats *st) {
        struct job *j = userdata;
        pthread_mutex_lock(&j->lock);
        j->progress = *st;
        uint64_t done = j->progress_before + st->bytes_done, total = j->progress_total;
        pthread_mutex_unlock(&j->lock);
        job_stall_at_percent(j, done, total);
        if (j->stall_file[0] && access(j->stall_file, F_OK) == 0) {
                log_notice("update: failpoint: install stalled while %s exists (%" PRIu64 " of %" PRIu64
                           " bytes durable)", j->stall_file, done, total);
                while (!atomic_load(j->cancel) && access(j->stall_file, F_OK) == 0)
                        usleep(10 * 1000);
                log_notice("update: failpoint: install goes on");
        }
}

void job_progress_get(struct job *j, struct install_stats *ret, uint64_t *ret_done, uint64_t *ret_total) {
        pthread_mutex_lock(&j->lock);
        *ret = j->progress;
        *ret_done = j->progress_before + j->progress.bytes_done;
        *ret_total = j->progress_total;
        pthread_mutex_unlock(&j->lock);
}

/* An image's payload in the bundle, through the bundle's reader: a local file or ranges. */
struct bundle_source {
        const struct bundle_reader *reader;
        uint64_t offset;
};

static int bundle_source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct bundle_source *s = userdata;
        return s->reader->pread(s->reader->userdata, s->offset + offset, buf, len);
}

/* What the active slot holds: its record when it has one with the same chunk size, else a scan. */
static int job_active_index(struct job *j, struct job_image *ji, int active_fd, uint64_t active_size,
                            struct install_index **ret) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (ji->active_record[0] &&
            statefile_load(j->work_dir, ji->active_record, &text, &len, NULL) >= 0) {
                struct manifest mf = {};
                _cleanup_free_ char *why = NULL;
                if (manifest_parse_text(ji->active_record, text, len, 0, &mf, &why) >= 0) {
                        const struct manifest_image *img = manifest_find_image(&mf, ji->image->slot_class);
                        int r = -ENOENT;
                        if (img && img->chunk_size == ji->image->chunk_size)
                                r = install_index_from_image(img, ret);
                        manifest_free(&mf);
                        if (r >= 0)
                                return 0;
                }
        }
        if (!j->delta_scan)
                return -ENOENT;
        uint64_t size = active_size < ji->image->size ? active_size : ji->image->size;
        /* A scan kept by an install this one resumes (or an earlier one from the same slot):
         * hashing a slot of a GiB takes a minute on a slow board, at every start of the agent
         * that a power cut or a reboot brings. Stale chunks cost nothing but a fetch: each
         * is checked against its hash when read. */
        _cleanup_free_ char *kept = NULL;
        size_t kept_len;
        if (ji->active_scan[0] && statefile_load(j->work_dir, ji->active_scan, &kept, &kept_len, NULL) >= 0) {
                _cleanup_free_ char *why = NULL;
                if (install_index_decode(kept, kept_len, ji->image->chunk_size, size, ret, &why) >= 0) {
                        log_info("update: the active slot %s as its scan kept it (%zu chunks in %s): not hashed again",
                                 ji->active_path, install_index_count(*ret), ji->active_scan);
                        return 0;
                }
                log_info("update: the kept scan %s is of no use here (%s): hashing again", ji->active_scan,
                         why ? why : "?");
        }
        log_info("update: hashing the active slot %s to find reusable chunks", ji->active_path);
        int r = install_index_scan(active_fd, size, ji->image->chunk_size, j->cancel, ret);
        if (r < 0 || !ji->active_scan[0])
                return r;
        _cleanup_free_ uint8_t *bytes = NULL;
        size_t n = 0;
        int k = install_index_encode(*ret, ji->image->chunk_size, size, &bytes, &n);
        if (k >= 0)
                k = statefile_save(j->work_dir, ji->active_scan, bytes, n);
        if (k < 0) /* the install goes on: a later start hashes again */
                log_warning("update: cannot keep the active slot's scan in %s/%s: %s", j->work_dir, ji->active_scan,
                            strerror(-k));
        return 0;
}

static struct install_request job_request(struct job *j, struct job_image *ji, struct bundle_source *src) {
        src->reader = bundle_get_reader(j->bundle);
        src->offset = ji->bundle_offset;
        return (struct install_request){
                .image = ji->image,
                .slot_fd = ji->slot_fd,
                .active_fd = ji->index ? ji->active_fd : -1,
                .active = ji->index,
                .source = {.read = bundle_source_read, .userdata = src, .concurrent = src->reader->concurrent},
                .done = ji->done,
                .checkpoint = job_checkpoint,
                .progress = job_progress,
                .userdata = j,
                .checkpoint_bytes = j->checkpoint_bytes,
                .checkpoint_coalesce = true,
                .checkpoint_on_slot_disk = same_disk(ji->slot_fd, j->work_dir, "/sys"),
                /* the bundle's chunks, checked by install_verify_source in the CHECK step */
                .source_verified = j->verify_first,
                .cancel = j->cancel,
                .drop_cache = true,
                .slot_path = ji->slot_path,
                .checkpoint_path = j->progress_path,
        };
}

/* Open the active slot and learn what it holds: the delta source. Never fatal. */
static int job_open_active(struct job *j, struct job_image *ji) {
        if (!ji->active_path[0])
                return 0;
        uint64_t active_size;
        _cleanup_free_ char *why = NULL;
        if (slot_open_read(ji->active_path, &ji->active_fd, &active_size, &why) < 0) {
                log_warning("update: no delta from the active slot: %s", why ? why : "?");
                return 0;
        }
        int r = job_active_index(j, ji, ji->active_fd, active_size, &ji->index);
        if (r == -ECANCELED)
                return message_set(&j->reason, r, "install cancelled");
        return 0;
}

/*
 * An app member's tree (#19), once its image is verified: unpacked into "root.new", then
 * renamed over "root", then "version" written: a member with a version file holds a whole
 * tree of that version (the runtime starts nothing from one without). Done again on a
 * resumed install, so a cut anywhere here ends in a whole tree or none.
 */
static int job_unpack_app(struct job *j, struct job_image *ji, const char *app) {
        char dir[PATH_MAX], fresh[PATH_MAX + 16];
        int r = model_slot_dir(j->apps_dir, app, ji->target, dir, sizeof(dir));
        if (r < 0)
                return message_set(&j->reason, r, "app %s: slot path too long", app);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return message_set(&j->reason, negative_errno(), "app %s: %s: %m", app, dir);
        if ((r = rm_tree_at(dfd, SLOT_APP_ROOT ".new")) < 0)
                return message_set(&j->reason, r, "app %s: cannot clear %s/%s.new: %s", app, dir, SLOT_APP_ROOT,
                                   strerror(-r));
        snprintf(fresh, sizeof(fresh), "%s/%s.new", dir, SLOT_APP_ROOT);
        struct app_tree_stats st;
        _cleanup_free_ char *why = NULL;
        r = app_tree_extract(ji->slot_fd, fresh, &st, &why);
        if (r < 0) {
                (void) rm_tree_at(dfd, SLOT_APP_ROOT ".new");
                return message_set(&j->reason, r, "app %s: the image is not a tree an app can have: %s", app,
                                   why ? why : strerror(-r));
        }
        if ((r = rm_tree_at(dfd, SLOT_APP_ROOT)) < 0)
                return message_set(&j->reason, r, "app %s: cannot remove the old tree in %s: %s", app, dir,
                                   strerror(-r));
        if (renameat(dfd, SLOT_APP_ROOT ".new", dfd, SLOT_APP_ROOT) < 0 || fsync(dfd) < 0)
                return message_set(&j->reason, negative_errno(), "app %s: cannot put the new tree in place in %s: %m",
                                   app, dir);
        char version[PATH_MAX + 16], text[MANIFEST_NAME_MAX + 2];
        snprintf(version, sizeof(version), "%s/%s", dir, SLOT_APP_VERSION);
        int n = snprintf(text, sizeof(text), "%s\n", bundle_manifest(j->bundle)->version);
        r = write_file_durable(version, text, (size_t) n, 0644);
        if (r < 0)
                return message_set(&j->reason, r, "app %s: cannot write %s: %s", app, version, strerror(-r));
        log_info("update: app %s: slot %c holds %s: %" PRIu64 " files, %" PRIu64 " directories, %" PRIu64
                 " links, %" PRIu64 " bytes",
                 app, ji->target, bundle_manifest(j->bundle)->version, st.files, st.dirs, st.links, st.bytes);
        return 0;
}

static int job_install_image(struct job *j, struct job_image *ji) {
        const char *app = slot_class_app_name(ji->image->slot_class);
        const char *model = app ? app : slot_class_model_name(ji->image->slot_class);
        const char *base = app ? j->apps_dir : j->models_dir;
        int r;
        if (model) {
                r = model_slot_prepare(base, model, ji->target);
                if (r < 0)
                        return message_set(&j->reason, r,
                                           "%s %s: cannot create slot %c in %s: %s", app ? "app" : "model", model,
                                           ji->target, base, strerror(-r));
        }
        /* An app member's version is already gone: check_finished removed it on the loop,
         * and every write job passes there before the first byte is written. */
        r = slot_open_write(ji->slot_path, ji->image->size, &ji->slot_fd, &j->reason);
        if (r < 0)
                return r;
        /* A model is read by the workloads it is bound into, each its own user in a user
         * namespace: readable by all (it is signed content, never a secret). An app's image
         * stays the agent's: workloads see its unpacked tree only. */
        if (model && !app && fchmod(ji->slot_fd, 0644) < 0)
                return message_set(&j->reason, negative_errno(), "model %s: slot %c: cannot make %s readable: %m",
                                   model, ji->target, ji->slot_path);
        struct bundle_source src;
        struct install_request req = job_request(j, ji, &src);
        struct install_stats st;
        r = install_image(&req, &st, &j->reason);
        log_info("update: %s into slot %c: %s; %" PRIu64 " chunks: %" PRIu64 " resumed, %" PRIu64
                 " from the active slot, %" PRIu64 " from the bundle (%" PRIu64 " bytes), %" PRIu64
                 " repaired",
                 ji->image->slot_class, ji->target, r < 0 ? "stopped" : "verified", st.chunks_total,
                 st.chunks_resumed, st.chunks_from_active, st.chunks_from_source,
                 st.bytes_from_source, st.chunks_repaired);
        if (r >= 0 && app)
                r = job_unpack_app(j, ji, app);
        return r;
}

/* Every image of a scrub job, each on its own: one slot's trouble does not hide another's. */
static int job_scrub(struct job *j) {
        uint64_t rate = j->scrub_bytes_per_sec;
        for (size_t i = 0; i < j->n_images; i++) {
                struct job_image *ji = &j->images[i];
                if (atomic_load(j->cancel))
                        return -ECANCELED;
                ji->slot_fd = open(ji->slot_path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (ji->slot_fd < 0) {
                        snprintf(j->scrub_errors[i], sizeof(j->scrub_errors[i]), "%s: %m", ji->slot_path);
                        continue;
                }
                (void) job_open_active(j, ji);
                struct bundle_source src = {.reader = NULL};
                struct install_request req = {
                        .image = ji->image,
                        .slot_fd = ji->slot_fd,
                        .active_fd = ji->index ? ji->active_fd : -1,
                        .active = ji->index,
                        .source = {.read = NULL, .userdata = &src},
                        .left_bad = j->scrub_slots[i].left_bad,
                        .cancel = j->cancel,
                };
                _cleanup_free_ char *why = NULL;
                int r = install_scrub(&req, true, rate, &j->scrub_stats[i], &why);
                if (r == -ECANCELED)
                        return r;
                if (r < 0)
                        snprintf(j->scrub_errors[i], sizeof(j->scrub_errors[i]), "%s",
                                 why ? why : strerror(-r));
        }
        return 0;
}

/* A payload in a bundle on the controller, by ranges of its own fetcher. */
struct remote_payload {
        struct fetcher *fetcher;
        uint64_t offset;
};

static int remote_payload_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct remote_payload *p = userdata;
        return fetcher_range(p->fetcher, p->offset + offset, len, buf, NULL);
}

/*
 * The chunks a scrub left bad, from the bundle that installed the slot: by ranges of that
 * very file (pinned by its ETag), each checked against the slot's kept manifest before it
 * is written; then the whole slot read back. Each slot on its own: one slot's trouble
 * (a bundle gone, a wrong chunk) does not stop another's repair.
 */
static int job_repair(struct job *j) {
        for (size_t i = 0; i < j->n_images; i++) {
                struct job_image *ji = &j->images[i];
                struct job_scrub_slot *ss = &j->scrub_slots[i];
                if (!ss->repair)
                        continue;
                if (atomic_load(j->cancel))
                        return -ECANCELED;
                _cleanup_free_ char *why = NULL;
                struct fetcher *f = NULL;
                int r = fetcher_new(ss->url, &j->tls, j->pass, j->cancel, &f);
                if (r >= 0 && ss->etag[0])
                        r = fetcher_pin(f, ss->etag);
                if (r < 0) {
                        fetcher_free(f);
                        ss->repair_result = r;
                        snprintf(ss->repair_error, sizeof(ss->repair_error), "%s", strerror(-r));
                        continue;
                }
                struct remote_payload src = {.fetcher = f, .offset = ss->payload_offset};
                struct install_request req = {
                        .image = ji->image,
                        .slot_fd = ji->slot_fd,
                        .active_fd = -1,
                        .source = {.read = remote_payload_read, .userdata = &src},
                        .cancel = j->cancel,
                        .slot_path = ji->slot_path,
                };
                r = repair_chunks(&req, ss->left_bad, 0, &ss->repair_stats, &why);
                fetcher_free(f);
                if (r == -ECANCELED)
                        return r;
                ss->repair_result = r;
                if (r < 0) {
                        snprintf(ss->repair_error, sizeof(ss->repair_error), "%s", why ? why : strerror(-r));
                        continue;
                }
                if (ss->repair_stats.chunks_written != ss->repair_stats.chunks_wanted)
                        continue; /* still damaged: nothing to verify */
                /* Trusted again only when the whole slot reads back as its manifest says. */
                struct install_scrub_stats st;
                free(why);
                why = NULL;
                req.source.read = NULL;
                r = install_scrub(&req, false, j->scrub_bytes_per_sec, &st, &why);
                if (r == -ECANCELED)
                        return r;
                ss->verified = r >= 0 && st.chunks_bad == 0;
                if (r < 0)
                        snprintf(ss->repair_error, sizeof(ss->repair_error), "%s", why ? why : strerror(-r));
                else if (st.chunks_bad)
                        snprintf(ss->repair_error, sizeof(ss->repair_error),
                                 "%" PRIu64 " chunks bad when read back after the repair", st.chunks_bad);
        }
        return 0;
}

/* Where each payload is, what the active slots hold, and (verify_first) every chunk the
 * bundle must give checked before the loop lets a slot change. */
static int job_check(struct job *j) {
        uint64_t offsets[MANIFEST_MAX_IMAGES];
        int r = bundle_locate_payloads(j->bundle, offsets, &j->reason);
        if (r < 0)
                return r;
        for (size_t i = 0; i < j->n_images; i++)
                j->images[i].bundle_offset = offsets[i];
        for (size_t i = 0; i < j->n_images; i++)
                if ((r = job_open_active(j, &j->images[i])) < 0)
                        return r;
        /* A forged or damaged bundle is refused here, before any slot changes. */
        for (size_t i = 0; j->verify_first && i < j->n_images; i++) {
                struct bundle_source src;
                struct install_request req = job_request(j, &j->images[i], &src);
                struct install_stats st;
                r = install_verify_source(&req, &st, &j->reason);
                if (r < 0)
                        return r;
                log_info("update: %s: %" PRIu64 " chunks to take from the bundle verified first "
                         "(%" PRIu64 " bytes)",
                         j->images[i].image->slot_class, st.chunks_from_source, st.bytes_from_source);
        }
        return 0;
}

static int job_write(struct job *j) {
        /* The progress file written anew now, before the slot streams: the checkpoints then
         * save in place. A new file during the install waits for a journal commit, and on
         * ext4 that waits for the slot's data written so far (lib/statefile.h). */
        int r = j->n_images ? progress_save(j, true) : 0;
        if (r < 0)
                return message_set(&j->reason, r, "image %s: saving the install progress to %s: %s",
                                   j->images[0].image->slot_class, j->progress_path, strerror(-r));
        uint64_t before = 0;
        for (size_t i = 0; i < j->n_images; i++) {
                pthread_mutex_lock(&j->lock);
                j->current = i;
                j->repaired_logged = 0;
                j->progress_before = before;
                memset(&j->progress, 0, sizeof(j->progress));
                pthread_mutex_unlock(&j->lock);
                r = job_install_image(j, &j->images[i]);
                if (r < 0)
                        return r;
                before += j->images[i].image->size;
        }
        return 0;
}

static int job_run(struct job *j) {
        switch (j->step) {
        case JOB_FETCH_HEAD:
                return fetcher_head(j->fetcher, &j->head, &j->head_len, &j->reason);
        case JOB_CHECK:
                return job_check(j);
        case JOB_WRITE:
                return job_write(j);
        case JOB_SCRUB:
                return job_scrub(j);
        case JOB_REPAIR:
                return job_repair(j);
        }
        return -EINVAL;
}

static void *worker_main(void *userdata) {
        struct job *j = userdata;
        j->result = job_run(j);
        atomic_store(&j->finished, true);
        job_wake(j);
        return NULL;
}

int worker_start(struct update_manager *m, struct job *j) {
        atomic_store(&m->cancel, 0);
        atomic_store(&j->finished, false);
        j->result = 0;
        m->job = j;
        int r = -pthread_create(&m->thread, NULL, worker_main, j);
        if (r < 0) {
                m->job = NULL;
                return r;
        }
        m->worker_running = true;
        return 0;
}

void worker_join(struct update_manager *m) {
        if (!m->worker_running)
                return;
        (void) pthread_join(m->thread, NULL);
        m->worker_running = false;
}
