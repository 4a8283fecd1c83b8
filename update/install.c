/* The install engine: verified chunks into the inactive slot, resumable, whole hash on a second thread. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "install.h"
#include "macro.h"
#include "message.h"
#include "sha256.h"

#define RING_SIZE 4
#define DEFAULT_CHECKPOINT_BYTES (8u * 1024u * 1024u)
#define MAX_PASSES 3

uint64_t install_bitmap_count(const uint8_t *map, uint64_t n_chunks) {
        uint64_t n = 0;
        for (uint64_t i = 0; i < n_chunks; i++)
                n += install_bitmap_get(map, i);
        return n;
}

int install_bitmap_to_hex(const uint8_t *map, uint64_t n_chunks, char **ret) {
        static const char hex[] = "0123456789abcdef";
        size_t n = install_bitmap_size(n_chunks);
        char *s = malloc(2 * n + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                s[2 * i] = hex[map[i] >> 4];
                s[2 * i + 1] = hex[map[i] & 0xf];
        }
        s[2 * n] = '\0';
        *ret = s;
        return 0;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int install_bitmap_from_hex(const char *hex, uint64_t n_chunks, uint8_t **ret) {
        size_t n = install_bitmap_size(n_chunks);
        if (!hex || strlen(hex) != 2 * n)
                return -EINVAL;
        _cleanup_free_ uint8_t *map = calloc(1, n ? n : 1);
        if (!map)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                map[i] = (uint8_t) (hi << 4 | lo);
        }
        /* Bits past the last chunk would claim chunks that do not exist. */
        if (n_chunks % 8 && (map[n - 1] >> (n_chunks % 8)))
                return -EINVAL;
        *ret = TAKE_PTR(map);
        return 0;
}

/* ---- the active slot's chunks, by hash ------------------------------------------------ */

struct install_index {
        size_t capacity; /* power of two */
        struct {
                uint8_t hash[SHA256_DIGEST_SIZE];
                int64_t chunk; /* -1: empty */
        } *slots;
};

static uint64_t hash_key(const uint8_t h[SHA256_DIGEST_SIZE]) {
        uint64_t k;
        memcpy(&k, h, sizeof(k));
        return k;
}

static int index_new(uint64_t n_chunks, struct install_index **ret) {
        struct install_index *ix = calloc(1, sizeof(*ix));
        if (!ix)
                return -ENOMEM;
        ix->capacity = 16;
        while (ix->capacity < 2 * n_chunks)
                ix->capacity *= 2;
        ix->slots = malloc(ix->capacity * sizeof(*ix->slots));
        if (!ix->slots) {
                free(ix);
                return -ENOMEM;
        }
        for (size_t i = 0; i < ix->capacity; i++)
                ix->slots[i].chunk = -1;
        *ret = ix;
        return 0;
}

/* The first chunk with a hash wins: any copy is as good as another. */
static void index_add(struct install_index *ix, const uint8_t h[SHA256_DIGEST_SIZE], int64_t chunk) {
        size_t mask = ix->capacity - 1;
        for (size_t i = hash_key(h) & mask;; i = (i + 1) & mask) {
                if (ix->slots[i].chunk < 0) {
                        memcpy(ix->slots[i].hash, h, SHA256_DIGEST_SIZE);
                        ix->slots[i].chunk = chunk;
                        return;
                }
                if (memcmp(ix->slots[i].hash, h, SHA256_DIGEST_SIZE) == 0)
                        return;
        }
}

int64_t install_index_lookup(const struct install_index *ix, const uint8_t hash[32]) {
        if (!ix)
                return -ENOENT;
        size_t mask = ix->capacity - 1;
        for (size_t i = hash_key(hash) & mask;; i = (i + 1) & mask) {
                if (ix->slots[i].chunk < 0)
                        return -ENOENT;
                if (memcmp(ix->slots[i].hash, hash, SHA256_DIGEST_SIZE) == 0)
                        return ix->slots[i].chunk;
        }
}

void install_index_free(struct install_index *ix) {
        if (!ix)
                return;
        free(ix->slots);
        free(ix);
}

/* Index entries remember the chunk size through the lookup's caller: the request's image. */
int install_index_from_image(const struct manifest_image *img, struct install_index **ret) {
        struct install_index *ix;
        int r = index_new(img->n_chunks, &ix);
        if (r < 0)
                return r;
        for (uint64_t i = 0; i < img->n_chunks; i++)
                index_add(ix, img->chunks[i], (int64_t) i);
        *ret = ix;
        return 0;
}

int install_index_scan(int fd, uint64_t size, uint64_t chunk_size, const volatile int *cancel,
                       struct install_index **ret) {
        if (chunk_size == 0)
                return -EINVAL;
        uint64_t n = size / chunk_size; /* whole chunks only: a short tail cannot match */
        _cleanup_free_ uint8_t *buf = malloc(chunk_size);
        if (!buf)
                return -ENOMEM;
        struct install_index *ix;
        int r = index_new(n, &ix);
        if (r < 0)
                return r;
        for (uint64_t i = 0; i < n; i++) {
                if (cancel && *cancel) {
                        install_index_free(ix);
                        return -ECANCELED;
                }
                r = pread_all(fd, buf, chunk_size, i * chunk_size);
                if (r < 0) {
                        install_index_free(ix);
                        return r;
                }
                uint8_t h[SHA256_DIGEST_SIZE];
                sha256_buffer(buf, chunk_size, h);
                index_add(ix, h, (int64_t) i);
        }
        *ret = ix;
        return 0;
}

/* ---- the pipeline: the writer thread feeds the whole-image hasher in order ---------- */

struct ring_entry {
        uint64_t index;
        size_t len;
        bool from_slot; /* written before: the hasher reads it back and checks its hash */
        uint8_t *buf;
};

struct pipeline {
        pthread_mutex_t lock;
        pthread_cond_t changed;
        struct ring_entry ring[RING_SIZE];
        size_t head, tail, count;
        bool producer_done, abort;

        const struct manifest_image *img;
        int slot_fd;
        struct sha256_ctx whole;
        uint64_t *bad; /* resumed chunks whose bytes in the slot no longer verify */
        size_t n_bad;
        int error;
        char *reason;
};

static void *hasher_main(void *userdata) {
        struct pipeline *p = userdata;
        for (;;) {
                pthread_mutex_lock(&p->lock);
                while (p->count == 0 && !p->producer_done && !p->abort)
                        pthread_cond_wait(&p->changed, &p->lock);
                if (p->abort || (p->count == 0 && p->producer_done)) {
                        pthread_mutex_unlock(&p->lock);
                        return NULL;
                }
                struct ring_entry *e = &p->ring[p->tail];
                pthread_mutex_unlock(&p->lock);

                if (e->from_slot) {
                        uint64_t off = e->index * p->img->chunk_size;
                        int r = pread_all(p->slot_fd, e->buf, e->len, off);
                        if (r < 0) {
                                pthread_mutex_lock(&p->lock);
                                p->error = r;
                                (void) message_set(&p->reason, r,
                                                   "reading chunk %" PRIu64 " back from the slot: %s",
                                                   e->index, strerror(-r));
                                p->abort = true;
                                pthread_cond_broadcast(&p->changed);
                                pthread_mutex_unlock(&p->lock);
                                return NULL;
                        }
                        if (manifest_check_chunk(p->img, e->index, e->buf, e->len) < 0)
                                p->bad[p->n_bad++] = e->index;
                }
                sha256_update(&p->whole, e->buf, e->len);

                pthread_mutex_lock(&p->lock);
                p->tail = (p->tail + 1) % RING_SIZE;
                p->count--;
                pthread_cond_broadcast(&p->changed);
                pthread_mutex_unlock(&p->lock);
        }
}

/* Wait for a free ring entry; NULL when the hasher gave up. */
static struct ring_entry *ring_reserve(struct pipeline *p) {
        pthread_mutex_lock(&p->lock);
        while (p->count == RING_SIZE && !p->abort)
                pthread_cond_wait(&p->changed, &p->lock);
        struct ring_entry *e = p->abort ? NULL : &p->ring[p->head];
        pthread_mutex_unlock(&p->lock);
        return e;
}

static void ring_commit(struct pipeline *p) {
        pthread_mutex_lock(&p->lock);
        p->head = (p->head + 1) % RING_SIZE;
        p->count++;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
}

static void pipeline_stop(struct pipeline *p, pthread_t thread, bool abort) {
        pthread_mutex_lock(&p->lock);
        p->producer_done = true;
        if (abort)
                p->abort = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        (void) pthread_join(thread, NULL);
}

struct writer {
        const struct install_request *req;
        const struct manifest_image *img;
        struct install_stats *st;
        uint8_t *unsynced; /* written since the last checkpoint */
        uint64_t unsynced_bytes;
};

static uint64_t done_bytes(const struct manifest_image *img, const uint8_t *done) {
        uint64_t n = 0;
        for (uint64_t i = 0; i < img->n_chunks; i++)
                if (install_bitmap_get(done, i))
                        n += manifest_chunk_length(img, i);
        return n;
}

/* "slot <path>" or "the slot", and "<path>" or "the progress", for messages. */
static const char *slot_name(const struct install_request *req, char *buf, size_t size) {
        if (!req->slot_path)
                return "the slot";
        snprintf(buf, size, "slot %s", req->slot_path);
        return buf;
}

static int checkpoint_failed(const struct install_request *req, int r, char **ret_reason) {
        return message_set(ret_reason, r, "image %s: saving the install progress%s%s: %s",
                           req->image->slot_class, req->checkpoint_path ? " to " : "",
                           req->checkpoint_path ? req->checkpoint_path : "", strerror(-r));
}

static int writer_checkpoint(struct writer *w, char **ret_reason) {
        const struct install_request *req = w->req;
        if (w->unsynced_bytes > 0) {
                if (fdatasync(req->slot_fd) < 0) {
                        int r = negative_errno();
                        char name[PATH_MAX + 8];
                        return message_set(ret_reason, r, "image %s: syncing %s: %s",
                                           w->img->slot_class, slot_name(req, name, sizeof(name)),
                                           strerror(-r));
                }
                if (req->drop_cache)
                        (void) posix_fadvise(req->slot_fd, 0, 0, POSIX_FADV_DONTNEED);
                size_t n = install_bitmap_size(w->img->n_chunks);
                for (size_t i = 0; i < n; i++) {
                        req->done[i] |= w->unsynced[i];
                        w->unsynced[i] = 0;
                }
                w->st->bytes_done += w->unsynced_bytes;
                w->unsynced_bytes = 0;
        }
        if (req->checkpoint) {
                int r = req->checkpoint(req->userdata, req->done, w->st);
                if (r < 0)
                        return checkpoint_failed(req, r, ret_reason);
        }
        return 0;
}

/* Fill buf with chunk i: from the active slot when it has the hash, else from the source. */
static int writer_fetch(struct writer *w, uint64_t i, uint8_t *buf, size_t len, char **ret_reason) {
        const struct install_request *req = w->req;
        const struct manifest_image *img = w->img;
        if (req->active && req->active_fd >= 0) {
                int64_t j = install_index_lookup(req->active, img->chunks[i]);
                if (j >= 0 && pread_all(req->active_fd, buf, len, (uint64_t) j * img->chunk_size) >= 0 &&
                    manifest_check_chunk(img, i, buf, len) >= 0) {
                        w->st->chunks_from_active++;
                        w->st->bytes_from_active += len;
                        return 0;
                }
                /* Not there after all (the active slot changed): fall back to the source. */
        }
        int r = req->source.read(req->source.userdata, i * img->chunk_size, buf, len);
        if (r < 0)
                return message_set(ret_reason, r, "image %s: reading chunk %" PRIu64 ": %s",
                                   img->slot_class, i, strerror(-r));
        w->st->chunks_from_source++;
        w->st->bytes_from_source += len;
        if (manifest_check_chunk(img, i, buf, len) < 0)
                return message_set(ret_reason, -EBADMSG,
                                   "image %s: chunk %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
                                   ") does not match its hash in the signed manifest",
                                   img->slot_class, i, i * img->chunk_size,
                                   i * img->chunk_size + len - 1);
        return 0;
}

/* One pass over the image. *ret_bad gets the resumed chunks that failed their re-check. */
static int install_pass(const struct install_request *req, struct install_stats *st,
                        uint8_t **bufs, uint64_t **ret_bad, size_t *ret_n_bad,
                        uint8_t digest[SHA256_DIGEST_SIZE], char **ret_reason) {
        const struct manifest_image *img = req->image;
        _cleanup_free_ uint8_t *unsynced = calloc(1, install_bitmap_size(img->n_chunks) + 1);
        uint64_t *bad = calloc(img->n_chunks + 1, sizeof(uint64_t));
        if (!unsynced || !bad) {
                free(bad);
                return -ENOMEM;
        }
        struct pipeline p = {
                .img = img,
                .slot_fd = req->slot_fd,
                .bad = bad,
        };
        for (size_t k = 0; k < RING_SIZE; k++)
                p.ring[k].buf = bufs[k];
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.changed, NULL);
        sha256_init(&p.whole);

        pthread_t thread;
        int r = -pthread_create(&thread, NULL, hasher_main, &p);
        if (r < 0) {
                sha256_final(&p.whole, digest);
                free(bad);
                return message_set(ret_reason, r, "starting the hash thread: %s", strerror(-r));
        }

        struct writer w = {.req = req, .img = img, .st = st, .unsynced = unsynced};
        st->bytes_done = done_bytes(img, req->done); /* then kept up to date at each checkpoint */
        uint64_t every = req->checkpoint_bytes ? req->checkpoint_bytes : DEFAULT_CHECKPOINT_BYTES;
        for (uint64_t i = 0; i < img->n_chunks && r >= 0; i++) {
                if (req->cancel && *req->cancel) {
                        r = writer_checkpoint(&w, ret_reason);
                        if (r >= 0)
                                r = message_set(ret_reason, -ECANCELED, "install of %s cancelled",
                                                img->slot_class);
                        break;
                }
                struct ring_entry *e = ring_reserve(&p);
                if (!e)
                        break; /* the hasher failed; its error is reported below */
                size_t len = manifest_chunk_length(img, i);
                e->index = i;
                e->len = len;
                e->from_slot = install_bitmap_get(req->done, i);
                if (!e->from_slot) {
                        r = writer_fetch(&w, i, e->buf, len, ret_reason);
                        if (r >= 0) {
                                r = pwrite_all(req->slot_fd, e->buf, len, i * img->chunk_size);
                                char name[PATH_MAX + 8];
                                if (r < 0)
                                        r = message_set(ret_reason, r,
                                                        "image %s: writing chunk %" PRIu64
                                                        " to %s: %s",
                                                        img->slot_class, i,
                                                        slot_name(req, name, sizeof(name)),
                                                        strerror(-r));
                        }
                        if (r < 0)
                                break;
                        st->bytes_written += len;
                        install_bitmap_set(unsynced, i, true);
                        w.unsynced_bytes += len;
                } else
                        st->chunks_resumed++;
                ring_commit(&p);
                if (w.unsynced_bytes >= every)
                        r = writer_checkpoint(&w, ret_reason);
                if (req->progress)
                        req->progress(req->userdata, st);
        }
        if (r >= 0 && !p.abort)
                r = writer_checkpoint(&w, ret_reason);
        pipeline_stop(&p, thread, r < 0);
        sha256_final(&p.whole, digest);
        if (r >= 0 && p.error < 0) {
                r = message_set(ret_reason, p.error, "image %s: %s", img->slot_class,
                                p.reason ? p.reason : strerror(-p.error));
        }
        free(p.reason);
        pthread_cond_destroy(&p.changed);
        pthread_mutex_destroy(&p.lock);
        if (r < 0) {
                free(bad);
                return r;
        }
        *ret_bad = bad;
        *ret_n_bad = p.n_bad;
        return 0;
}

int install_verify_source(const struct install_request *req, struct install_stats *stats,
                          char **ret_reason) {
        const struct manifest_image *img = req->image;
        struct install_stats st = {.chunks_total = img->n_chunks};
        _cleanup_free_ uint8_t *buf = malloc(img->chunk_size ? img->chunk_size : 1);
        if (!buf)
                return -ENOMEM;
        int r = 0;
        for (uint64_t i = 0; i < img->n_chunks && r >= 0; i++) {
                if (req->cancel && *req->cancel) {
                        r = message_set(ret_reason, -ECANCELED, "verifying %s cancelled",
                                        img->slot_class);
                        break;
                }
                if (install_bitmap_get(req->done, i) ||
                    (req->active && req->active_fd >= 0 &&
                     install_index_lookup(req->active, img->chunks[i]) >= 0))
                        continue;
                size_t len = manifest_chunk_length(img, i);
                r = req->source.read(req->source.userdata, i * img->chunk_size, buf, len);
                if (r < 0) {
                        r = message_set(ret_reason, r, "image %s: reading chunk %" PRIu64 ": %s",
                                        img->slot_class, i, strerror(-r));
                        break;
                }
                st.chunks_from_source++;
                st.bytes_from_source += len;
                if (manifest_check_chunk(img, i, buf, len) < 0)
                        r = message_set(ret_reason, -EBADMSG,
                                        "image %s: chunk %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
                                        ") does not match its hash in the signed manifest",
                                        img->slot_class, i, i * img->chunk_size,
                                        i * img->chunk_size + len - 1);
        }
        if (stats)
                *stats = st;
        return r;
}

int install_image(const struct install_request *req, struct install_stats *stats,
                  char **ret_reason) {
        const struct manifest_image *img = req->image;
        struct install_stats st = {.chunks_total = img->n_chunks};
        if (img->chunk_size == 0 || img->chunk_size > MANIFEST_CHUNK_SIZE_MAX)
                return message_set(ret_reason, -EINVAL, "image %s: bad chunk size", img->slot_class);

        uint8_t *bufs[RING_SIZE] = {};
        int r = 0;
        for (size_t k = 0; k < RING_SIZE; k++)
                if (!(bufs[k] = malloc(img->chunk_size)))
                        r = -ENOMEM;

        for (unsigned pass = 0; r >= 0; pass++) {
                if (pass == MAX_PASSES) {
                        r = message_set(ret_reason, -EIO,
                                        "image %s: chunks in the slot keep changing after they "
                                        "are written: the medium is failing",
                                        img->slot_class);
                        break;
                }
                _cleanup_free_ uint64_t *bad = NULL;
                size_t n_bad = 0;
                uint8_t digest[SHA256_DIGEST_SIZE];
                st.chunks_resumed = 0;
                r = install_pass(req, &st, bufs, &bad, &n_bad, digest, ret_reason);
                if (r < 0)
                        break;
                if (n_bad == 0) {
                        if (memcmp(digest, img->sha256, SHA256_DIGEST_SIZE) != 0)
                                r = message_set(ret_reason, -EBADMSG,
                                                "image %s: the whole image does not match its "
                                                "SHA-256 in the manifest",
                                                img->slot_class);
                        break;
                }
                /* Chunks written before a restart that changed on the medium: write again. */
                for (size_t k = 0; k < n_bad; k++)
                        install_bitmap_set(req->done, bad[k], false);
                st.chunks_repaired += n_bad;
                st.bytes_done = done_bytes(img, req->done);
                if (req->checkpoint && (r = req->checkpoint(req->userdata, req->done, &st)) < 0)
                        r = checkpoint_failed(req, r, ret_reason);
        }
        for (size_t k = 0; k < RING_SIZE; k++)
                free(bufs[k]);
        if (stats)
                *stats = st;
        return r;
}

/* ---- scrub ------------------------------------------------------------------------------- */

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* Read chunk i from fd as the medium holds it (cached pages dropped first), and check it. */
static int scrub_read_check(int fd, const struct manifest_image *img, uint64_t i, uint8_t *buf) {
        size_t len = manifest_chunk_length(img, i);
        uint64_t offset = i * img->chunk_size;
        (void) posix_fadvise(fd, (off_t) offset, (off_t) len, POSIX_FADV_DONTNEED);
        int r = pread_all(fd, buf, len, offset);
        if (r < 0)
                return r;
        return manifest_check_chunk(img, i, buf, len);
}

/* A good copy of chunk i into buf: from the active slot by hash, else from the source. */
static int scrub_good_copy(const struct install_request *req, uint64_t i, uint8_t *buf,
                           struct install_scrub_stats *st) {
        const struct manifest_image *img = req->image;
        size_t len = manifest_chunk_length(img, i);
        if (req->active && req->active_fd >= 0) {
                int64_t j = install_index_lookup(req->active, img->chunks[i]);
                if (j >= 0 && pread_all(req->active_fd, buf, len, (uint64_t) j * img->chunk_size) >= 0 &&
                    manifest_check_chunk(img, i, buf, len) >= 0) {
                        st->chunks_from_active++;
                        return 0;
                }
        }
        if (req->source.read && req->source.read(req->source.userdata, i * img->chunk_size, buf, len) >= 0 &&
            manifest_check_chunk(img, i, buf, len) >= 0) {
                st->chunks_from_source++;
                return 0;
        }
        return -ENOENT;
}

static void scrub_pace(uint64_t start_usec, uint64_t bytes, uint64_t max_bytes_per_sec,
                       const volatile int *cancel) {
        if (max_bytes_per_sec == 0)
                return;
        uint64_t due = start_usec + bytes * 1000000ULL / max_bytes_per_sec;
        for (;;) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= due || (cancel && *cancel))
                        return;
                uint64_t d = due - now;
                usleep((useconds_t) (d > 100000 ? 100000 : d));
        }
}

int install_scrub(const struct install_request *req, bool repair, uint64_t max_bytes_per_sec,
                  struct install_scrub_stats *stats, char **ret_reason) {
        const struct manifest_image *img = req->image;
        struct install_scrub_stats st = {.chunks_total = img->n_chunks};
        if (img->chunk_size == 0 || img->chunk_size > MANIFEST_CHUNK_SIZE_MAX) {
                if (stats)
                        *stats = st;
                return message_set(ret_reason, -EINVAL, "image %s: bad chunk size", img->slot_class);
        }
        _cleanup_free_ uint8_t *buf = malloc(img->chunk_size);
        if (!buf)
                return message_set(ret_reason, -ENOMEM, "image %s: no memory for a chunk", img->slot_class);
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        int r = 0;
        for (uint64_t i = 0; i < img->n_chunks; i++) {
                if (req->cancel && *req->cancel) {
                        r = message_set(ret_reason, -ECANCELED, "scrub of %s cancelled", img->slot_class);
                        break;
                }
                size_t len = manifest_chunk_length(img, i);
                st.bytes_read += len;
                int k = scrub_read_check(req->slot_fd, img, i, buf);
                scrub_pace(start, st.bytes_read, max_bytes_per_sec, req->cancel);
                if (k >= 0)
                        continue;
                /* A bad hash or an unreadable block: damaged either way. */
                if (st.n_listed < INSTALL_SCRUB_LISTED)
                        st.bad[st.n_listed++] = i;
                st.chunks_bad++;
                if (!repair || scrub_good_copy(req, i, buf, &st) < 0)
                        continue;
                if (pwrite_all(req->slot_fd, buf, len, i * img->chunk_size) < 0 || fdatasync(req->slot_fd) < 0)
                        continue; /* the medium refuses: stays damaged */
                /* Trust the medium only after reading it back. */
                if (scrub_read_check(req->slot_fd, img, i, buf) >= 0)
                        st.chunks_repaired++;
        }
        if (stats)
                *stats = st;
        return r;
}
