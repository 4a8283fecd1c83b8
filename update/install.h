/*
 * The install engine: write one image into the inactive slot, chunk by chunk.
 *
 * Each chunk the slot still needs is taken from the active slot when a chunk with the
 * same hash is there (a delta for free), else from the source (the bundle file now, the
 * network later); either way it is hashed and compared with the signed manifest before
 * it is written. Written chunks are synced, then recorded in a progress bitmap that the
 * caller persists (checkpoint), so after a kill or a power cut the install resumes
 * without rewriting verified chunks. The whole-image SHA-256 is computed in image order,
 * over the bytes written (or, for chunks written before a restart, read back from the
 * slot and checked against their chunk hash again: a chunk that changed on the medium is
 * rewritten). install_image returns 0 only when the whole slot matches the manifest.
 *
 * The work is a pipeline (install.c): a reader thread fetches and checks chunks ahead, the
 * caller's thread writes them, a hasher thread keeps the whole hash, a syncer thread makes
 * written chunks durable and calls checkpoint while writing goes on. So the source's read
 * runs on the reader thread and checkpoint on the syncer (one call at a time each), while
 * progress runs on the caller's thread.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "update/manifest.h"

/* Where chunk bytes come from when the active slot does not have them. */
struct install_source {
        /* Read exactly len bytes of the image at offset into buf; 0 or a negative errno. */
        int (*read)(void *userdata, uint64_t offset, void *buf, size_t len);
        void *userdata;
        /* read may be called from several threads at once (pread on a file): the check
         * before writing then spreads over the CPUs. Otherwise one thread at a time. */
        bool concurrent;
};

struct install_stats {
        uint64_t chunks_total;
        uint64_t chunks_resumed;     /* already in the slot (bitmap), re-verified */
        uint64_t chunks_from_active; /* copied from the active slot */
        uint64_t chunks_from_source; /* read from the source (bundle, network) */
        uint64_t chunks_repaired;    /* resumed chunks that no longer verified: rewritten */
        uint64_t bytes_from_source;
        uint64_t bytes_from_active;
        uint64_t bytes_written;
        uint64_t bytes_done; /* of the image, verified and durable so far (progress) */
};

/* A bitmap of n chunks: the bytes it needs, and its bits. */
static inline size_t install_bitmap_size(uint64_t n_chunks) {
        return (size_t) ((n_chunks + 7) / 8);
}
static inline bool install_bitmap_get(const uint8_t *map, uint64_t i) {
        return map[i / 8] & (1u << (i % 8));
}
static inline void install_bitmap_set(uint8_t *map, uint64_t i, bool v) {
        if (v)
                map[i / 8] |= (uint8_t) (1u << (i % 8));
        else
                map[i / 8] &= (uint8_t) ~(1u << (i % 8));
}
uint64_t install_bitmap_count(const uint8_t *map, uint64_t n_chunks);

/* Pure: the bitmap as lowercase hex (2 digits per byte), and back (-EINVAL if malformed
 * or of the wrong length, or with bits set past n_chunks). */
int install_bitmap_to_hex(const uint8_t *map, uint64_t n_chunks, char **ret);
int install_bitmap_from_hex(const char *hex, uint64_t n_chunks, uint8_t **ret);

/*
 * What the active slot holds, by chunk hash: built from the manifest of the image
 * installed there (kept by the agent), or by hashing the slot (install_index_scan).
 * Only chunks of the same chunk size can be reused.
 */
struct install_index;
int install_index_from_image(const struct manifest_image *img, struct install_index **ret);
/* Hash the first `size` bytes of fd in chunks of chunk_size; cancel as in the request. */
int install_index_scan(int fd, uint64_t size, uint64_t chunk_size, const atomic_int *cancel,
                       struct install_index **ret);
void install_index_free(struct install_index *ix);
/*
 * Pure: a scan's index as bytes, to keep it (the agent's slot-<class>-<slot>.scan) so a
 * resumed install does not hash the active slot again: a text line naming the chunk size
 * and the bytes scanned, then each (hash, chunk) pair, the chunk as 8 bytes little-endian.
 * A kept scan may be stale (the slot changed since): every chunk taken from the active
 * slot is checked against its hash when read, as for a scan just made.
 */
int install_index_encode(const struct install_index *ix, uint64_t chunk_size, uint64_t size, uint8_t **ret,
                         size_t *ret_len);
/* -EBADMSG (why) when the bytes are no index, or one of another chunk size or size. */
int install_index_decode(const void *data, size_t len, uint64_t chunk_size, uint64_t size,
                         struct install_index **ret, char **why);
/* How many chunks the index holds (distinct hashes). */
size_t install_index_count(const struct install_index *ix);
/* Pure: the chunk index in the active slot holding this hash, or -ENOENT. */
int64_t install_index_lookup(const struct install_index *ix, const uint8_t hash[32]);

struct install_request {
        const struct manifest_image *image; /* the verified manifest's entry */
        int slot_fd;                        /* the inactive slot, open for writing */
        int active_fd;                      /* the active slot, or -1: no delta */
        const struct install_index *active; /* its chunks; NULL: no delta */
        struct install_source source;
        uint8_t *done; /* in/out: install_bitmap_size(image->n_chunks) bytes */
        /* install_scrub only, may be NULL: out, a bitmap like done with a bit set for each
         * chunk the scrub left bad (not repaired), for a repair from elsewhere (repair.h). */
        uint8_t *left_bad;
        /*
         * Called after the slot was synced, with every chunk set in done durable on it.
         * A failure stops the install (the bitmap could not be kept). With flush, what it
         * records must be durable when it returns. Without (checkpoint_on_slot_disk, and not
         * a pass's last checkpoint), it may leave its record in the disk's cache: the next
         * checkpoint's sync of the slot flushes that disk before anything relies on it, and
         * before the next record is written (that sync is made even with nothing new to sync).
         */
        int (*checkpoint)(void *userdata, const uint8_t *done, const struct install_stats *st, bool flush);
        /* Called after each chunk (no I/O expected): progress for status. May be NULL.
         * It may run while checkpoint runs (on another thread). */
        void (*progress)(void *userdata, const struct install_stats *st);
        void *userdata;
        uint64_t checkpoint_bytes; /* sync + checkpoint after this many bytes written; 0: 8 MiB */
        /*
         * When a checkpoint is due while the one before it still runs (a slow sync or a slow
         * progress file), go on writing and let the next take every chunk written until then:
         * fewer, larger checkpoints (up to 4 x checkpoint_bytes), the same rule (a chunk is
         * recorded only after a sync that began after it was written). false: one every
         * checkpoint_bytes exactly.
         */
        bool checkpoint_coalesce;
        /*
         * checkpoint records on the disk the slot is on (one cache flush serves both): only
         * a pass's last checkpoint is asked to flush. A flush while the slot streams waits
         * for every write queued before it; one per checkpoint instead of two.
         */
        bool checkpoint_on_slot_disk;
        /*
         * install_verify_source checked every chunk this install takes from the source, just
         * before: they are not hashed again as they are written. The whole hash still covers
         * every byte written, so a source that changed since fails the install (-EBADMSG) before
         * the slot is ever accepted; chunks from the active slot or resumed are still checked.
         */
        bool source_verified;
        const atomic_int *cancel; /* nonzero: stop after a checkpoint, -ECANCELED; may be NULL */
        bool drop_cache;            /* advise the kernel to drop written pages after each sync */
        /* For messages only, may be NULL: the slot's path, and where checkpoint saves. */
        const char *slot_path;
        const char *checkpoint_path;
};

/*
 * Check, before anything is written, every chunk the install will read from the source:
 * those not yet done and not found (by hash) in the active slot. A forged or damaged
 * bundle is then refused with no slot changed. Reads only what the install will read
 * (the changed chunks of a delta). Same returns as install_image; stats count the
 * chunks and bytes checked.
 */
int install_verify_source(const struct install_request *req, struct install_stats *stats,
                          char **ret_reason);

/*
 * Install one image as described above. Returns 0 when the slot holds exactly the
 * image (every chunk and the whole hash verified); -EBADMSG when the source does not
 * match the manifest (a corrupt or forged bundle: the install must fail); -ECANCELED;
 * or an I/O error (-ENOSPC from the slot or the checkpoint: the chunks in done stay
 * valid, a later call goes on from them). *ret_reason (caller frees) names the image,
 * the chunk, the file and the cause.
 */
int install_image(const struct install_request *req, struct install_stats *stats,
                  char **ret_reason);

/*
 * Scrub: a slot that should hold image (its kept manifest), read back chunk by chunk from
 * the medium and checked against the chunk hashes, to find what radiation or a worn
 * flash changed in a slot nobody reads (the rollback target). With repair, each bad
 * chunk is rewritten from a good copy, the active slot's by hash (req->active) or the
 * source's (req->source.read, may be NULL), verified before it is written and read back
 * after. Reads are paced to max_bytes_per_sec (0: no limit): a scrub is background work
 * on a board short of power. Returns 0 when every chunk was looked at (the stats say
 * how many were bad and how many repaired), -ECANCELED (req->cancel), -ENOMEM.
 */
/* Chunk i of img as the medium holds it (its cached pages dropped first) into buf (at
 * least the chunk's length), checked: 0, -EBADMSG when it does not hash right, or the
 * read's error. What a scrub and a repair's read-back trust. */
int install_read_back_chunk(int fd, const struct manifest_image *img, uint64_t i, uint8_t *buf);

/* Of n chunks of img read into data[k] (indexes idx[k], ascending), the first that does not
 * match its hash in the manifest, or n: hashed several at once (sha256_buffers). */
size_t install_first_bad_chunk(const struct manifest_image *img, const uint64_t idx[],
                               const void *const data[], size_t n);

#define INSTALL_SCRUB_LISTED 16
struct install_scrub_stats {
        uint64_t chunks_total, chunks_bad, chunks_repaired;
        uint64_t chunks_from_active, chunks_from_source;
        uint64_t bytes_read;
        uint64_t bad[INSTALL_SCRUB_LISTED]; /* the first bad chunks */
        size_t n_listed;
};
int install_scrub(const struct install_request *req, bool repair, uint64_t max_bytes_per_sec,
                  struct install_scrub_stats *stats, char **ret_reason);
