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

#include "lib/fileio.h"
#include "update/install.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "lib/sha256.h"

#define DEFAULT_CHECKPOINT_BYTES (8u * 1024u * 1024u)
#define MAX_PASSES 3

static bool cancelled(const atomic_int *cancel) {
        return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

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

size_t install_index_count(const struct install_index *ix) {
        size_t n = 0;
        for (size_t i = 0; ix && i < ix->capacity; i++)
                n += ix->slots[i].chunk >= 0;
        return n;
}

#define INDEX_MAGIC "orbit-scan 1"
#define INDEX_PAIR (SHA256_DIGEST_SIZE + 8)

int install_index_encode(const struct install_index *ix, uint64_t chunk_size, uint64_t size, uint8_t **ret,
                         size_t *ret_len) {
        char head[128];
        size_t n = install_index_count(ix);
        int hl = snprintf(head, sizeof(head), INDEX_MAGIC " chunk_size=%" PRIu64 " size=%" PRIu64 " chunks=%zu\n",
                          chunk_size, size, n);
        uint8_t *buf = malloc((size_t) hl + n * INDEX_PAIR);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, head, (size_t) hl);
        uint8_t *p = buf + hl;
        for (size_t i = 0; ix && i < ix->capacity; i++) {
                if (ix->slots[i].chunk < 0)
                        continue;
                memcpy(p, ix->slots[i].hash, SHA256_DIGEST_SIZE);
                uint64_t c = (uint64_t) ix->slots[i].chunk;
                for (int k = 0; k < 8; k++)
                        p[SHA256_DIGEST_SIZE + k] = (uint8_t) (c >> (8 * k));
                p += INDEX_PAIR;
        }
        *ret = buf;
        *ret_len = (size_t) (p - buf);
        return 0;
}

int install_index_decode(const void *data, size_t len, uint64_t chunk_size, uint64_t size,
                         struct install_index **ret, char **why) {
        const uint8_t *d = data;
        const uint8_t *nl = memchr(d, '\n', len < 128 ? len : 128);
        if (!nl)
                return message_set(why, -EBADMSG, "no header line");
        char head[128];
        memcpy(head, d, (size_t) (nl - d));
        head[nl - d] = '\0';
        uint64_t cs, sz;
        size_t n;
        int used = 0;
        if (sscanf(head, INDEX_MAGIC " chunk_size=%" SCNu64 " size=%" SCNu64 " chunks=%zu%n", &cs, &sz, &n, &used) !=
                    3 ||
            (size_t) used != strlen(head))
                return message_set(why, -EBADMSG, "not a scan's index: \"%.60s\"", head);
        if (cs != chunk_size || sz != size)
                return message_set(why, -EBADMSG,
                                   "a scan of %" PRIu64 " bytes in chunks of %" PRIu64 ", not %" PRIu64 " in %" PRIu64,
                                   sz, cs, size, chunk_size);
        uint64_t n_chunks = chunk_size ? size / chunk_size : 0;
        size_t body = len - (size_t) (nl + 1 - d);
        if (n > n_chunks || body / INDEX_PAIR != n || body % INDEX_PAIR)
                return message_set(why, -EBADMSG, "%zu bytes for %zu chunks (of at most %" PRIu64 ")", body, n,
                                   n_chunks);
        struct install_index *ix;
        int r = index_new(n, &ix);
        if (r < 0)
                return r;
        const uint8_t *p = nl + 1;
        for (size_t i = 0; i < n; i++, p += INDEX_PAIR) {
                uint64_t c = 0;
                for (int k = 7; k >= 0; k--)
                        c = c << 8 | p[SHA256_DIGEST_SIZE + k];
                if (c >= n_chunks) {
                        install_index_free(ix);
                        return message_set(why, -EBADMSG, "pair %zu: chunk %" PRIu64 " past the %" PRIu64 " scanned",
                                           i, c, n_chunks);
                }
                index_add(ix, p, (int64_t) c);
        }
        *ret = ix;
        return 0;
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

int install_index_scan(int fd, uint64_t size, uint64_t chunk_size, const atomic_int *cancel,
                       struct install_index **ret) {
        if (chunk_size == 0 || chunk_size > MANIFEST_CHUNK_SIZE_MAX)
                return -EINVAL;
        uint64_t n = size / chunk_size; /* whole chunks only: a short tail cannot match */
        /* SHA256_LANES adjacent chunks a read, hashed at once */
        _cleanup_free_ uint8_t *buf = malloc(SHA256_LANES * chunk_size);
        if (!buf)
                return -ENOMEM;
        struct install_index *ix;
        int r = index_new(n, &ix);
        if (r < 0)
                return r;
        for (uint64_t i = 0; i < n; i += SHA256_LANES) {
                if (cancelled(cancel)) {
                        install_index_free(ix);
                        return -ECANCELED;
                }
                size_t m = n - i < SHA256_LANES ? (size_t) (n - i) : SHA256_LANES;
                r = pread_all(fd, buf, m * chunk_size, i * chunk_size);
                if (r < 0) {
                        install_index_free(ix);
                        return r;
                }
                const void *data[SHA256_LANES];
                uint8_t h[SHA256_LANES][SHA256_DIGEST_SIZE];
                for (size_t k = 0; k < m; k++)
                        data[k] = buf + k * chunk_size;
                sha256_buffers(data, chunk_size, m, h);
                for (size_t k = 0; k < m; k++)
                        index_add(ix, h[k], (int64_t) (i + k));
        }
        *ret = ix;
        return 0;
}

/* ---- the pipeline ---------------------------------------------------------------------
 *
 * Four threads share a ring of chunk buffers, each stage in image order:
 *   the reader (a thread) fills an entry: the chunk from the active slot or the source,
 *     checked against its hash in the manifest (or, for a chunk written before a
 *     restart, read back from the slot and checked again);
 *   the writer (the caller's thread) writes it to the slot and counts it;
 *   the hasher (a thread) feeds it to the whole-image hash;
 *   the syncer (a thread) makes written chunks durable and records them (checkpoint)
 *     while the writer goes on.
 * An entry is free again once both the writer and the hasher are past it. Reading and
 * hashing, writing and syncing overlap; no chunk is written before it was checked.
 */

#define RING_SIZE 8
#define COALESCE_MAX 4

enum entry_kind { ENTRY_SOURCE, ENTRY_ACTIVE, ENTRY_RESUMED };

struct ring_entry {
        uint64_t index;
        size_t len;
        enum entry_kind kind;
        uint8_t *buf;
};

struct pipeline {
        pthread_mutex_t lock;
        pthread_cond_t changed;
        struct ring_entry ring[RING_SIZE];
        uint64_t n_read, n_written, n_hashed; /* entries past each stage, this pass */
        bool reader_done, writer_done, cancelled, stop;
        bool source_failed; /* the error is the reader's: what came before it is good */

        const struct install_request *req;
        const struct manifest_image *img;
        uint8_t *was_done; /* req->done when the pass began: the reader's copy */
        bool trust_source; /* the first pass after install_verify_source (source_verified) */
        struct sha256_ctx whole;
        uint64_t *bad; /* resumed chunks whose bytes in the slot no longer verify (reader) */
        size_t n_bad;
        int error; /* the first, with its reason */
        char *reason;

        /* the syncer: a checkpoint handed over, or none */
        bool sync_pending, sync_busy;
        uint8_t *sync_map; /* chunks written before the handover */
        uint64_t sync_bytes;
        struct install_stats sync_stats;
        uint64_t bytes_done; /* durable, for the progress */
        bool record_in_cache; /* the last checkpoint was not asked to flush (checkpoint_run) */
};

/* Record the first failure and stop every stage. Called with the lock held. */
static void pipeline_fail_locked(struct pipeline *p, int r, char *reason) {
        if (p->error == 0) {
                p->error = r;
                p->reason = reason;
        } else
                free(reason);
        p->stop = true;
        pthread_cond_broadcast(&p->changed);
}

static void pipeline_fail(struct pipeline *p, int r, char *reason) {
        pthread_mutex_lock(&p->lock);
        pipeline_fail_locked(p, r, reason);
        pthread_mutex_unlock(&p->lock);
}

/* "slot <path>" or "the slot", for messages. */
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

/* Make the chunks in map durable and record them: fdatasync, then the caller's checkpoint.
 * Only one runs at a time (the syncer's, or the writer's last with the syncer idle). */
static int checkpoint_run(struct pipeline *p, uint8_t *map, uint64_t bytes, struct install_stats *st,
                          bool last, char **ret_reason) {
        const struct install_request *req = p->req;
        /* With nothing written since (a pass's last checkpoint, when the syncer took every
         * chunk), the slot is still synced after a record left in the disk's cache: that
         * flush makes it durable before this one overwrites the other copy. */
        if ((bytes > 0 || p->record_in_cache) && fdatasync(req->slot_fd) < 0) {
                int r = negative_errno();
                char name[PATH_MAX + 8];
                return message_set(ret_reason, r, "image %s: syncing %s: %s", p->img->slot_class,
                                   slot_name(req, name, sizeof(name)), strerror(-r));
        }
        if (bytes > 0) {
                if (req->drop_cache)
                        (void) posix_fadvise(req->slot_fd, 0, 0, POSIX_FADV_DONTNEED);
                size_t n = install_bitmap_size(p->img->n_chunks);
                for (size_t i = 0; i < n; i++) {
                        req->done[i] |= map[i];
                        map[i] = 0;
                }
                pthread_mutex_lock(&p->lock);
                p->bytes_done += bytes;
                st->bytes_done = p->bytes_done;
                pthread_mutex_unlock(&p->lock);
        }
        if (req->checkpoint) {
                bool flush = last || !req->checkpoint_on_slot_disk;
                int r = req->checkpoint(req->userdata, req->done, st, flush);
                if (r < 0)
                        return checkpoint_failed(req, r, ret_reason);
                p->record_in_cache = !flush;
        }
        return 0;
}

static void *syncer_main(void *userdata) {
        struct pipeline *p = userdata;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->sync_pending && !p->stop && !p->writer_done)
                        pthread_cond_wait(&p->changed, &p->lock);
                if (!p->sync_pending)
                        break; /* stopped, or the writer is done: it makes the last one */
                p->sync_pending = false;
                p->sync_busy = true;
                uint64_t bytes = p->sync_bytes;
                struct install_stats st = p->sync_stats;
                pthread_mutex_unlock(&p->lock);
                char *reason = NULL;
                int r = checkpoint_run(p, p->sync_map, bytes, &st, false, &reason);
                pthread_mutex_lock(&p->lock);
                p->sync_busy = false;
                if (r < 0)
                        pipeline_fail_locked(p, r, reason);
                pthread_cond_broadcast(&p->changed);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void *hasher_main(void *userdata) {
        struct pipeline *p = userdata;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (p->n_hashed == p->n_read && !p->reader_done && !p->stop)
                        pthread_cond_wait(&p->changed, &p->lock);
                if (p->stop || p->n_hashed == p->n_read)
                        break;
                struct ring_entry *e = &p->ring[p->n_hashed % RING_SIZE];
                pthread_mutex_unlock(&p->lock);
                sha256_update(&p->whole, e->buf, e->len);
                pthread_mutex_lock(&p->lock);
                p->n_hashed++;
                pthread_cond_broadcast(&p->changed);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* Fill e with chunk i, checked: from the active slot when it has the hash, else the source. */
static int reader_fetch(struct pipeline *p, struct ring_entry *e, char **ret_reason) {
        const struct install_request *req = p->req;
        const struct manifest_image *img = p->img;
        uint64_t i = e->index;
        /* Checked just before by install_verify_source, which skipped what the active slot has. */
        bool checked = p->trust_source;
        if (req->active && req->active_fd >= 0) {
                int64_t j = install_index_lookup(req->active, img->chunks[i]);
                if (j >= 0)
                        checked = false;
                if (j >= 0 && pread_all(req->active_fd, e->buf, e->len, (uint64_t) j * img->chunk_size) >= 0 &&
                    manifest_check_chunk(img, i, e->buf, e->len) >= 0) {
                        e->kind = ENTRY_ACTIVE;
                        return 0;
                }
                /* Not there after all (the active slot changed): fall back to the source. */
        }
        int r = req->source.read(req->source.userdata, i * img->chunk_size, e->buf, e->len);
        if (r < 0)
                return message_set(ret_reason, r, "image %s: reading chunk %" PRIu64 ": %s",
                                   img->slot_class, i, strerror(-r));
        e->kind = ENTRY_SOURCE;
        if (!checked && manifest_check_chunk(img, i, e->buf, e->len) < 0)
                return message_set(ret_reason, -EBADMSG,
                                   "image %s: chunk %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
                                   ") does not match its hash in the signed manifest",
                                   img->slot_class, i, i * img->chunk_size,
                                   i * img->chunk_size + e->len - 1);
        return 0;
}

/* A chunk written before: read it back from the slot; one that changed is listed as bad. */
static int reader_resumed(struct pipeline *p, struct ring_entry *e, char **ret_reason) {
        const struct manifest_image *img = p->img;
        e->kind = ENTRY_RESUMED;
        int r = pread_all(p->req->slot_fd, e->buf, e->len, e->index * img->chunk_size);
        if (r < 0)
                return message_set(ret_reason, r, "image %s: reading chunk %" PRIu64 " back from the slot: %s",
                                   img->slot_class, e->index, strerror(-r));
        if (manifest_check_chunk(img, e->index, e->buf, e->len) < 0)
                p->bad[p->n_bad++] = e->index;
        return 0;
}

static void *reader_main(void *userdata) {
        struct pipeline *p = userdata;
        const struct install_request *req = p->req;
        bool locked = false; /* leaving the loop early, with the lock */
        for (uint64_t i = 0; i < p->img->n_chunks; i++) {
                pthread_mutex_lock(&p->lock);
                uint64_t oldest = p->n_written < p->n_hashed ? p->n_written : p->n_hashed;
                while (p->n_read - oldest == RING_SIZE && !p->stop) {
                        pthread_cond_wait(&p->changed, &p->lock);
                        oldest = p->n_written < p->n_hashed ? p->n_written : p->n_hashed;
                }
                bool stop = p->stop;
                pthread_mutex_unlock(&p->lock);
                if (stop)
                        return NULL;
                /* What was read before a cancel is written and recorded, nothing after. */
                if (cancelled(req->cancel)) {
                        pthread_mutex_lock(&p->lock);
                        p->cancelled = true;
                        locked = true;
                        break;
                }
                struct ring_entry *e = &p->ring[p->n_read % RING_SIZE];
                e->index = i;
                e->len = manifest_chunk_length(p->img, i);
                char *reason = NULL;
                int r = install_bitmap_get(p->was_done, i) ? reader_resumed(p, e, &reason)
                                                           : reader_fetch(p, e, &reason);
                pthread_mutex_lock(&p->lock);
                if (r < 0) {
                        /* the entries before it are still written: their checks passed */
                        if (p->error == 0) {
                                p->error = r;
                                p->reason = reason;
                                p->source_failed = true;
                        } else
                                free(reason);
                        locked = true;
                        break;
                }
                p->n_read++;
                pthread_cond_broadcast(&p->changed);
                pthread_mutex_unlock(&p->lock);
        }
        if (!locked)
                pthread_mutex_lock(&p->lock);
        p->reader_done = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static uint64_t done_bytes(const struct manifest_image *img, const uint8_t *done) {
        uint64_t n = 0;
        for (uint64_t i = 0; i < img->n_chunks; i++)
                if (install_bitmap_get(done, i))
                        n += manifest_chunk_length(img, i);
        return n;
}

/* The writer's side: hand the chunks written since the last checkpoint to the syncer,
 * after the one before it finished (one at a time: each records what was written then);
 * with checkpoint_coalesce, not now if the syncer is still busy, unless COALESCE_MAX
 * checkpoints' worth are waiting: what a kill can lose stays bounded. */
static void writer_hand_over(struct pipeline *p, uint8_t *pending, uint64_t *pending_bytes,
                             uint64_t every, const struct install_stats *st) {
        size_t n = install_bitmap_size(p->img->n_chunks);
        pthread_mutex_lock(&p->lock);
        if (p->req->checkpoint_coalesce && (p->sync_pending || p->sync_busy) &&
            *pending_bytes < COALESCE_MAX * every) {
                pthread_mutex_unlock(&p->lock);
                return; /* kept: the next hand-over takes these chunks too */
        }
        while ((p->sync_pending || p->sync_busy) && !p->stop)
                pthread_cond_wait(&p->changed, &p->lock);
        if (!p->stop) {
                memcpy(p->sync_map, pending, n);
                p->sync_bytes = *pending_bytes;
                p->sync_stats = *st;
                p->sync_pending = true;
                pthread_cond_broadcast(&p->changed);
        }
        pthread_mutex_unlock(&p->lock);
        memset(pending, 0, n);
        *pending_bytes = 0;
}

/* One pass over the image. *ret_bad gets the resumed chunks that failed their re-check. */
static int install_pass(const struct install_request *req, bool trust_source, struct install_stats *st,
                        uint8_t **bufs, uint64_t **ret_bad, size_t *ret_n_bad,
                        uint8_t digest[SHA256_DIGEST_SIZE], char **ret_reason) {
        const struct manifest_image *img = req->image;
        size_t map_size = install_bitmap_size(img->n_chunks) + 1;
        _cleanup_free_ uint8_t *pending = calloc(1, map_size);
        _cleanup_free_ uint8_t *sync_map = calloc(1, map_size);
        _cleanup_free_ uint8_t *was_done = malloc(map_size);
        uint64_t *bad = calloc(img->n_chunks + 1, sizeof(uint64_t));
        if (!pending || !sync_map || !was_done || !bad) {
                free(bad);
                return -ENOMEM;
        }
        memcpy(was_done, req->done, map_size - 1);
        struct pipeline p = {
                .req = req,
                .img = img,
                .was_done = was_done,
                .trust_source = trust_source,
                .bad = bad,
                .sync_map = sync_map,
                .bytes_done = done_bytes(img, req->done),
        };
        for (size_t k = 0; k < RING_SIZE; k++)
                p.ring[k].buf = bufs[k];
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.changed, NULL);
        sha256_init(&p.whole);

        pthread_t threads[3];
        void *(*mains[3])(void *) = {hasher_main, syncer_main, reader_main};
        size_t n_threads = 0;
        int r = 0;
        for (; n_threads < 3; n_threads++)
                if ((r = -pthread_create(&threads[n_threads], NULL, mains[n_threads], &p)) < 0) {
                        (void) message_set(ret_reason, r, "starting the install threads: %s", strerror(-r));
                        break;
                }
        if (r < 0)
                pipeline_fail(&p, r, NULL);

        st->bytes_done = p.bytes_done; /* then kept up to date at each checkpoint */
        uint64_t every = req->checkpoint_bytes ? req->checkpoint_bytes : DEFAULT_CHECKPOINT_BYTES;
        uint64_t pending_bytes = 0;
        for (;;) {
                pthread_mutex_lock(&p.lock);
                while (p.n_written == p.n_read && !p.reader_done && !p.stop)
                        pthread_cond_wait(&p.changed, &p.lock);
                bool more = !p.stop && p.n_written < p.n_read;
                pthread_mutex_unlock(&p.lock);
                if (!more)
                        break;
                struct ring_entry *e = &p.ring[p.n_written % RING_SIZE];
                switch (e->kind) {
                case ENTRY_RESUMED:
                        st->chunks_resumed++;
                        break;
                case ENTRY_ACTIVE:
                        st->chunks_from_active++;
                        st->bytes_from_active += e->len;
                        break;
                case ENTRY_SOURCE:
                        st->chunks_from_source++;
                        st->bytes_from_source += e->len;
                        break;
                }
                if (e->kind != ENTRY_RESUMED) {
                        r = pwrite_all(req->slot_fd, e->buf, e->len, e->index * img->chunk_size);
                        if (r < 0) {
                                char name[PATH_MAX + 8];
                                char *reason = NULL;
                                (void) message_set(&reason, r, "image %s: writing chunk %" PRIu64 " to %s: %s",
                                                   img->slot_class, e->index,
                                                   slot_name(req, name, sizeof(name)), strerror(-r));
                                pipeline_fail(&p, r, reason);
                                break;
                        }
                        /* Start writing these pages back now: the disk streams while the
                         * next chunks come, and the checkpoint's fdatasync finds most of them
                         * written (a whole image then synced at once waits for all of it). */
                        (void) sync_file_range(req->slot_fd, (off_t) (e->index * img->chunk_size),
                                               (off_t) e->len, SYNC_FILE_RANGE_WRITE);
                        st->bytes_written += e->len;
                        install_bitmap_set(pending, e->index, true);
                        pending_bytes += e->len;
                }
                pthread_mutex_lock(&p.lock);
                p.n_written++;
                st->bytes_done = p.bytes_done;
                pthread_cond_broadcast(&p.changed);
                pthread_mutex_unlock(&p.lock);
                if (pending_bytes >= every)
                        writer_hand_over(&p, pending, &pending_bytes, every, st);
                if (req->progress)
                        req->progress(req->userdata, st);
        }

        /* The last checkpoint, the syncer idle: after a cancel too, and after the source failed
         * (a link lost, a pass's budget spent, a chunk that does not verify): every chunk
         * written before it was checked, and a download that resumes must not fetch them
         * again. Not after the slot or a checkpoint failed. */
        pthread_mutex_lock(&p.lock);
        p.writer_done = true;
        pthread_cond_broadcast(&p.changed);
        while ((p.sync_pending || p.sync_busy) && !p.stop)
                pthread_cond_wait(&p.changed, &p.lock);
        bool keep = p.error == 0 || (p.source_failed && !p.stop);
        if (!keep)
                p.stop = true;
        pthread_cond_broadcast(&p.changed);
        pthread_mutex_unlock(&p.lock);
        if (keep) {
                /* the syncer has left (writer_done), or only waits to: this one is ours */
                char *reason = NULL;
                int k = checkpoint_run(&p, pending, pending_bytes, st, true, &reason);
                if (k < 0)
                        pipeline_fail(&p, k, reason);
        }
        for (size_t t = 0; t < n_threads; t++)
                (void) pthread_join(threads[t], NULL);
        sha256_final(&p.whole, digest);
        st->bytes_done = p.bytes_done;
        if (p.error < 0) {
                r = p.error;
                if (p.reason) {
                        free(*ret_reason);
                        *ret_reason = TAKE_PTR(p.reason);
                }
        } else if (p.cancelled)
                r = message_set(ret_reason, -ECANCELED, "install of %s cancelled", img->slot_class);
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

/* ---- the check before writing: chunks of the source on up to VERIFY_THREADS threads ---- */

#define VERIFY_THREADS 4
/* Chunks a thread reads, then hashes at once (sha256_buffers: SHA256_LANES on one core),
 * as many as fit in VERIFY_GROUP_BYTES (at least one): a thread holds one chunk, as before,
 * when chunks are over 2 MiB, at most 4 MiB when they are smaller. */
#define VERIFY_GROUP SHA256_LANES
#define VERIFY_GROUP_BYTES (4u << 20)

struct verifier {
        const struct install_request *req;
        pthread_mutex_t lock;
        uint64_t first_bad; /* the lowest chunk that failed so far, or n_chunks */
        int first_r;        /* and how: -EBADMSG, or the read's error */
        bool cancelled;
        unsigned n_threads;
        unsigned group; /* chunks a group: 1..VERIFY_GROUP */
};

struct verifier_thread {
        struct verifier *v;
        unsigned t;
        struct install_stats st;
        int r; /* setting up: no memory */
};

/*
 * Of n chunks read into data[k] (indexes idx[k], ascending), the first that does not match
 * its hash in the manifest, or n. Chunks of the full size are hashed SHA256_LANES at a time;
 * the image's short last chunk, if it is one of them, alone.
 */
size_t install_first_bad_chunk(const struct manifest_image *img, const uint64_t idx[],
                               const void *const data[], size_t n) {
        for (size_t k = 0; k < n; k += SHA256_LANES) {
                uint8_t digests[SHA256_LANES][SHA256_DIGEST_SIZE];
                size_t m = n - k < SHA256_LANES ? n - k : SHA256_LANES, m_full = m;
                size_t last_len = manifest_chunk_length(img, idx[k + m - 1]);
                if (last_len != img->chunk_size)
                        m_full--;
                sha256_buffers(data + k, img->chunk_size, m_full, digests);
                if (m_full < m)
                        sha256_buffer(data[k + m - 1], last_len, digests[m - 1]);
                for (size_t j = 0; j < m; j++)
                        if (memcmp(digests[j], img->chunks[idx[k + j]], SHA256_DIGEST_SIZE) != 0)
                                return k + j;
        }
        return n;
}

/* Chunks of group g this install takes from the source (not done, not in the active slot). */
static size_t verifier_group(const struct install_request *req, uint64_t g, unsigned group,
                             uint64_t idx[VERIFY_GROUP]) {
        const struct manifest_image *img = req->image;
        size_t n = 0;
        for (uint64_t i = g * group; i < img->n_chunks && i < (g + 1) * group; i++) {
                if (install_bitmap_get(req->done, i) ||
                    (req->active && req->active_fd >= 0 &&
                     install_index_lookup(req->active, img->chunks[i]) >= 0))
                        continue;
                idx[n++] = i;
        }
        return n;
}

static void verifier_failed(struct verifier *v, uint64_t i, int r) {
        pthread_mutex_lock(&v->lock);
        if (i < v->first_bad) {
                v->first_bad = i;
                v->first_r = r;
        }
        pthread_mutex_unlock(&v->lock);
}

/* Groups t, t + n_threads, ...: read, hash together, compare; stop at the first failure. */
static void *verifier_main(void *userdata) {
        struct verifier_thread *vt = userdata;
        struct verifier *v = vt->v;
        const struct install_request *req = v->req;
        const struct manifest_image *img = req->image;
        size_t size = img->chunk_size ? img->chunk_size : 1;
        _cleanup_free_ uint8_t *buf = malloc(v->group * size);
        if (!buf) {
                vt->r = -ENOMEM;
                return NULL;
        }
        uint64_t n_groups = (img->n_chunks + v->group - 1) / v->group;
        for (uint64_t g = vt->t; g < n_groups; g += v->n_threads) {
                pthread_mutex_lock(&v->lock);
                bool stop = g * v->group > v->first_bad || v->cancelled;
                if (!stop && cancelled(req->cancel))
                        stop = v->cancelled = true;
                pthread_mutex_unlock(&v->lock);
                if (stop)
                        break;
                uint64_t idx[VERIFY_GROUP];
                const void *data[VERIFY_GROUP];
                size_t n = verifier_group(req, g, v->group, idx), n_read = 0;
                int r = 0;
                for (; n_read < n; n_read++) {
                        size_t len = manifest_chunk_length(img, idx[n_read]);
                        data[n_read] = buf + n_read * size;
                        r = req->source.read(req->source.userdata, idx[n_read] * img->chunk_size,
                                             buf + n_read * size, len);
                        if (r < 0)
                                break;
                        vt->st.chunks_from_source++;
                        vt->st.bytes_from_source += len;
                }
                /* a chunk read before the one that failed may be the lower damage */
                size_t k = install_first_bad_chunk(img, idx, data, n_read);
                if (k < n_read) {
                        verifier_failed(v, idx[k], -EBADMSG);
                        break;
                }
                if (r < 0) {
                        verifier_failed(v, idx[n_read], r);
                        break;
                }
        }
        return NULL;
}

int install_verify_source(const struct install_request *req, struct install_stats *stats,
                          char **ret_reason) {
        const struct manifest_image *img = req->image;
        struct verifier v = {.req = req, .first_bad = img->n_chunks, .n_threads = 1,
                             .group = VERIFY_GROUP};
        if (img->chunk_size > VERIFY_GROUP_BYTES / VERIFY_GROUP)
                v.group = img->chunk_size > VERIFY_GROUP_BYTES
                                  ? 1
                                  : (unsigned) (VERIFY_GROUP_BYTES / img->chunk_size);
        if (req->source.concurrent) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                v.n_threads = n < 1 ? 1 : n > VERIFY_THREADS ? VERIFY_THREADS : (unsigned) n;
        }
        pthread_mutex_init(&v.lock, NULL);
        struct verifier_thread vt[VERIFY_THREADS] = {};
        pthread_t threads[VERIFY_THREADS];
        bool running[VERIFY_THREADS] = {};
        int r = 0;
        for (unsigned t = 0; t < v.n_threads; t++)
                vt[t] = (struct verifier_thread){.v = &v, .t = t};
        /* The first share on this thread, the others each on their own (or here after it,
         * when a thread cannot be had: every share is checked either way). */
        for (unsigned t = 1; t < v.n_threads; t++)
                running[t] = pthread_create(&threads[t], NULL, verifier_main, &vt[t]) == 0;
        for (unsigned t = 0; t < v.n_threads; t++)
                if (!running[t])
                        verifier_main(&vt[t]);
        for (unsigned t = 1; t < v.n_threads; t++)
                if (running[t])
                        (void) pthread_join(threads[t], NULL);
        pthread_mutex_destroy(&v.lock);

        struct install_stats st = {.chunks_total = img->n_chunks};
        for (unsigned t = 0; t < VERIFY_THREADS; t++) {
                st.chunks_from_source += vt[t].st.chunks_from_source;
                st.bytes_from_source += vt[t].st.bytes_from_source;
                if (vt[t].r < 0)
                        r = vt[t].r;
        }
        if (stats)
                *stats = st;
        if (r < 0)
                return r;
        uint64_t i = v.first_bad;
        if (i < img->n_chunks) {
                size_t len = manifest_chunk_length(img, i);
                if (v.first_r == -EBADMSG)
                        return message_set(ret_reason, -EBADMSG,
                                           "image %s: chunk %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
                                           ") does not match its hash in the signed manifest",
                                           img->slot_class, i, i * img->chunk_size,
                                           i * img->chunk_size + len - 1);
                return message_set(ret_reason, v.first_r, "image %s: reading chunk %" PRIu64 ": %s",
                                   img->slot_class, i, strerror(-v.first_r));
        }
        if (v.cancelled)
                return message_set(ret_reason, -ECANCELED, "verifying %s cancelled", img->slot_class);
        return 0;
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
                /* Chunks repaired in a later pass were never checked before: check them. */
                r = install_pass(req, req->source_verified && pass == 0, &st, bufs, &bad, &n_bad,
                                 digest, ret_reason);
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
                if (req->checkpoint && (r = req->checkpoint(req->userdata, req->done, &st, true)) < 0)
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

int install_read_back_chunk(int fd, const struct manifest_image *img, uint64_t i, uint8_t *buf) {
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
                       const atomic_int *cancel) {
        if (max_bytes_per_sec == 0)
                return;
        uint64_t due = start_usec + bytes * 1000000ULL / max_bytes_per_sec;
        for (;;) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= due || cancelled(cancel))
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
        if (req->left_bad)
                memset(req->left_bad, 0, install_bitmap_size(img->n_chunks));
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        int r = 0;
        for (uint64_t i = 0; i < img->n_chunks; i++) {
                if (cancelled(req->cancel)) {
                        r = message_set(ret_reason, -ECANCELED, "scrub of %s cancelled", img->slot_class);
                        break;
                }
                size_t len = manifest_chunk_length(img, i);
                st.bytes_read += len;
                int k = install_read_back_chunk(req->slot_fd, img, i, buf);
                scrub_pace(start, st.bytes_read, max_bytes_per_sec, req->cancel);
                if (k >= 0)
                        continue;
                /* A bad hash or an unreadable block: damaged either way. */
                if (st.n_listed < INSTALL_SCRUB_LISTED)
                        st.bad[st.n_listed++] = i;
                st.chunks_bad++;
                if (req->left_bad)
                        install_bitmap_set(req->left_bad, i, true);
                if (!repair || scrub_good_copy(req, i, buf, &st) < 0)
                        continue;
                if (pwrite_all(req->slot_fd, buf, len, i * img->chunk_size) < 0 || fdatasync(req->slot_fd) < 0)
                        continue; /* the medium refuses: stays damaged */
                /* Trust the medium only after reading it back. */
                if (install_read_back_chunk(req->slot_fd, img, i, buf) >= 0) {
                        st.chunks_repaired++;
                        if (req->left_bad)
                                install_bitmap_set(req->left_bad, i, false);
                }
        }
        if (stats)
                *stats = st;
        return r;
}
