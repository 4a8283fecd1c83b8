/* The node's trust document in force: agent/trust-store.h. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/trust-store.h"
#include "agent/trusted-time.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "lib/statefile.h"
#include "update/trust.h"

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct trust *in_force;
static char store_dir[4096];
static const char *in_force_source = "none";

static int load_image(const char *path, struct trust **ret) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        int r = read_file_bounded(path, TRUST_MAX_SIZE, &text, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "trust: cannot read %s", path);
        r = trust_parse(text, len, TRUST_CHECK_SELF, NULL, SIGNATURE_NOW_UNKNOWN, ret, &why);
        if (r < 0)
                return log_error_errno(r, "trust: %s: refused: %s", path, why ? why : "?");
        return 1;
}

static int load_saved(const char *dir, struct trust **ret) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        int r = statefile_load(dir, TRUST_STORE_FILE, &text, &len, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "trust: cannot load %s/%s", dir, TRUST_STORE_FILE);
        /* It was checked against the document then in force when it came; now it must still
         * hold its own roots' signatures (a bit flip past the checksum is refused here). */
        r = trust_parse(text, len, TRUST_CHECK_SELF, NULL, SIGNATURE_NOW_UNKNOWN, ret, &why);
        if (r < 0)
                return log_error_errno(r, "trust: %s/%s: refused: %s", dir, TRUST_STORE_FILE,
                                       why ? why : "?");
        return 1;
}

/* Whether <dir>/trust.prev is a good copy of exactly text. */
static bool prev_holds(const char *dir, const char *text, size_t len) {
        char p[4200];
        if (snprintf(p, sizeof(p), "%s/%s.prev", dir, TRUST_STORE_FILE) >= (int) sizeof(p))
                return false;
        _cleanup_free_ char *raw = NULL;
        size_t raw_len;
        const char *payload;
        size_t payload_len;
        return read_file_bounded(p, statefile_encoded_size(TRUST_MAX_SIZE), &raw, &raw_len) >= 0 &&
               statefile_decode(raw, raw_len, &payload, &payload_len) >= 0 && payload_len == len &&
               memcmp(payload, text, len) == 0;
}

/*
 * Save a document so that the file and its last good copy both hold it. The state file's
 * last good copy is otherwise the document before it: a bit flip in the file would bring
 * that one back at the next start, with the anchors this one revoked (a downgrade no root
 * signed). The first save is what counts: after it the document is the saved one.
 */
static int save_both(const char *dir, const char *text, size_t len) {
        int r = statefile_save(dir, TRUST_STORE_FILE, text, len);
        if (r < 0)
                return r;
        if (!prev_holds(dir, text, len) && statefile_save(dir, TRUST_STORE_FILE, text, len) < 0)
                log_warning("trust: %s/%s: its last good copy still holds an older document",
                            dir, TRUST_STORE_FILE);
        return 0;
}

int trust_store_init(const char *state_dir, const char *image_path) {
        struct trust *image = NULL, *saved = NULL;
        (void) load_image(image_path, &image);
        (void) load_saved(state_dir, &saved);
        pthread_mutex_lock(&store_lock);
        snprintf(store_dir, sizeof(store_dir), "%s", state_dir);
        trust_free(in_force);
        if (saved && (!image || saved->version >= image->version)) {
                /* a power cut between the two saves of save_both left the older one there */
                if (!prev_holds(state_dir, saved->text, saved->text_len))
                        (void) save_both(state_dir, saved->text, saved->text_len);
                in_force = saved;
                /* the image's own, saved by an earlier start (below) */
                bool same = image && image->text_len == saved->text_len &&
                            memcmp(image->text, saved->text, saved->text_len) == 0;
                in_force_source = same ? "image" : "link";
                trust_free(image);
        } else {
                /* An image newer than what the link brought: a release shipped it. Saved, so
                 * that a rollback to the previous slot (an older image, an older document or
                 * none) does not take the node back to the older saved one, whose anchors
                 * this one may revoke. */
                if (image && save_both(state_dir, image->text, image->text_len) < 0)
                        log_error("trust: cannot save the image's document v%" PRId64 " in %s/%s: a "
                                  "rollback to an older image would bring back an older one",
                                  image->version, state_dir, TRUST_STORE_FILE);
                in_force = image;
                in_force_source = image ? "image" : "none";
                trust_free(saved);
        }
        int64_t v = in_force ? in_force->version : 0;
        pthread_mutex_unlock(&store_lock);
        if (v > 0)
                log_info("trust: document v%" PRId64 " in force (from the %s)", v, in_force_source);
        else
                log_info("trust: no trust document: the keyring directories are the anchors");
        return 0;
}

void trust_store_done(void) {
        pthread_mutex_lock(&store_lock);
        trust_free(in_force);
        in_force = NULL;
        pthread_mutex_unlock(&store_lock);
}

int64_t trust_store_version(void) {
        pthread_mutex_lock(&store_lock);
        int64_t v = in_force ? in_force->version : 0;
        pthread_mutex_unlock(&store_lock);
        return v;
}

int trust_store_offer(const char *text, size_t len, int64_t *ret_version, char **ret_reason) {
        *ret_version = trust_peek_version(text, len);
        pthread_mutex_lock(&store_lock);
        if (in_force && in_force->text_len == len && memcmp(in_force->text, text, len) == 0) {
                pthread_mutex_unlock(&store_lock);
                return 0;
        }
        struct trust *t = NULL;
        /* the trusted time as a lower bound: a document that expired before it is refused */
        time_t now = (time_t) trusted_clock_now(NULL);
        int r = in_force ? trust_parse(text, len, TRUST_CHECK_UPDATE, in_force, now, &t, ret_reason)
                         : message_set(ret_reason, -EKEYREJECTED,
                                       "this node has no trust document (no roots) to check it against");
        /* Its floor reset first: a power cut between the save and the reset would lose the
         * reset for good (the document in force at the next start is not offered again). A
         * cut before the save repeats it with the document: the same value, harmless. */
        if (r >= 0 && t->time_floor_reset && (r = trusted_clock_reset_floor(t->time_floor_reset)) < 0) {
                r = message_set(ret_reason, r, "cannot save its trusted-time floor reset: %s", strerror(-r));
                trust_free(t);
        }
        if (r >= 0) {
                r = save_both(store_dir, text, len);
                if (r < 0) {
                        r = message_set(ret_reason, r, "cannot save it in %s/%s: %s", store_dir,
                                        TRUST_STORE_FILE, strerror(-r));
                        trust_free(t);
                }
        }
        int64_t previous = in_force ? in_force->version : 0;
        if (r >= 0) {
                trust_free(in_force);
                in_force = t;
                in_force_source = "link";
        }
        pthread_mutex_unlock(&store_lock);
        if (r < 0)
                return r;
        log_notice("trust: document v%" PRId64 " applied (was v%" PRId64 ")", *ret_version, previous);
        return 1;
}

static int keyring(bool command, const char *dir, struct signature_keyring **ret, char **ret_reason) {
        pthread_mutex_lock(&store_lock);
        int r;
        if (in_force) {
                r = command ? trust_command_keyring(in_force, ret) : trust_release_keyring(in_force, ret);
                if (r < 0 && r != -ENOMEM)
                        r = message_set(ret_reason, r, "trust document v%" PRId64 ": its %s anchors do not load",
                                        in_force->version, command ? "command" : "release");
        } else
                r = 1;
        pthread_mutex_unlock(&store_lock);
        if (r <= 0)
                return r;
        return signature_keyring_load_dir(dir, ret, ret_reason);
}

int trust_store_command_keyring(const char *dir, struct signature_keyring **ret, char **ret_reason) {
        return keyring(true, dir, ret, ret_reason);
}

int trust_store_release_keyring(const char *dir, struct signature_keyring **ret, char **ret_reason) {
        return keyring(false, dir, ret, ret_reason);
}

json_t *trust_store_status_json(void) {
        pthread_mutex_lock(&store_lock);
        json_t *o = in_force ? json_pack("{s:I, s:I, s:I, s:I, s:I, s:s}", "version", (json_int_t) in_force->version,
                                         "expires", (json_int_t) in_force->expires, "roots",
                                         (json_int_t) in_force->n_roots, "threshold", (json_int_t) in_force->threshold,
                                         "revoked", (json_int_t) in_force->n_revoked, "source", in_force_source)
                             : json_pack("{s:i}", "version", 0);
        pthread_mutex_unlock(&store_lock);
        return o;
}
