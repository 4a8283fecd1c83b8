/*
 * State files: small records written durably with a checksum and a last-good copy.
 *
 * On disk a state file is a header line followed by the payload:
 *     "orbit-state 1 <payload-length> <sha256-hex>\n" <payload>
 * Beside it, "<name>.prev" holds the previous verified version. A file whose header,
 * length or checksum does not match is never trusted: the load falls back to the
 * previous copy and restores it.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define STATEFILE_MAX_PAYLOAD (4u * 1024u * 1024u)

enum statefile_source {
        STATEFILE_SOURCE_CURRENT,  /* the file itself verified */
        STATEFILE_SOURCE_PREVIOUS, /* the file was bad or missing; restored from .prev */
};

/* Pure: how many bytes statefile_encode makes of a payload of len bytes. */
size_t statefile_encoded_size(size_t len);

/* Pure: build the on-disk bytes for a payload. Caller frees *ret. */
int statefile_encode(const void *payload, size_t len, char **ret, size_t *ret_len);

/*
 * Pure: check on-disk bytes and return a pointer/length into data for the payload.
 * -EBADMSG for a bad header or checksum, -ENODATA for a truncated file.
 */
int statefile_decode(const char *data, size_t len, const char **ret_payload, size_t *ret_len);

/*
 * Save payload as dir/name durably. The current file, if it verifies, becomes
 * name.prev first, so a bad new write can always fall back to the last good state.
 */
int statefile_save(const char *dir, const char *name, const void *payload, size_t len);

/*
 * Remove dir/name and its last good copy, durably and in that order: the copy first, so a
 * power cut between the two leaves the file alone (removed at the next try), never the
 * copy alone, which statefile_load would bring back as the file. 0 (also when neither
 * exists), or -errno of the first failure.
 */
int statefile_remove(const char *dir, const char *name);

/* statefile_save of a JSON document, as compact text. -ENOMEM when it cannot be dumped. */
int statefile_save_json(const char *dir, const char *name, const json_t *doc);

/*
 * Load dir/name. A corrupt or missing current file is logged, and the .prev copy is
 * used and written back as current. -ENOENT when neither exists, -EBADMSG when
 * nothing verifies. The returned payload is NUL-terminated; caller frees it.
 */
int statefile_load(const char *dir, const char *name, char **ret_payload, size_t *ret_len,
                   enum statefile_source *ret_source);

/*
 * Two copies in one file, overwritten in place: for a record saved often, such as an
 * install's progress at every checkpoint. statefile_save's way (a last good copy linked
 * aside, a temp file, renames, three fsyncs) commits the filesystem's journal each time,
 * and on ext4 a commit waits for the data other files wrote meanwhile: the slot the install
 * is writing. A copy written in place over bytes already allocated needs one fdatasync and
 * no journal commit.
 *
 * The file is two blocks of the same size (a multiple of 4096 bytes, so a torn write of one
 * never reaches the other). A block holds
 *     "orbit-pair 1 <seq> <payload-length> <sha256-hex>\n" <payload> <zeros to its end>
 * where the digest covers "<seq> <payload-length>\n" and the payload, and the zeros are
 * checked: a flipped bit anywhere in a block that was written is found. A block of zeros
 * was never written. Copy seq lives in block seq % 2, so a save overwrites the older copy
 * and a cut during it leaves the newer one. The first save through a handle writes the
 * whole file anew (temp file and rename: durable, whatever was there), the next ones in
 * place. A handle does not read back: a copy damaged on the medium after it was written
 * is found at the next load, which a job does before it saves through a new handle.
 */
#define STATEFILE_PAIR_ALIGN 4096u

/*
 * Tests only: a save in place that tears. The new copy is written and made durable up to its
 * last byte that differs from the older copy it overwrites (statefile_pair_tear_size), the
 * rest of the block still that older copy; then fn is called, and a test kills the writer
 * there (a power cut inside the write). When fn returns, the save goes on. Torn anywhere
 * else, a copy could read whole (the bytes not written the same in both) and the test would
 * not see the torn copy refused.
 */
struct statefile_pair_tear {
        void (*fn)(void *userdata, const char *path, uint64_t seq, size_t written, size_t block);
        void *userdata;
};

struct statefile_pair {
        int fd;       /* -1 until the first save */
        size_t block; /* bytes per copy */
        uint64_t seq; /* of the newest copy */
        bool unflushed; /* the newest copy was saved without a flush */
        const struct statefile_pair_tear *tear; /* tests only: NULL */
};
#define STATEFILE_PAIR_INIT {.fd = -1}

/* Pure: the block size for a payload of len bytes. */
size_t statefile_pair_block_size(size_t len);

/* Pure: how many bytes of the new block a tear writes over the old one (statefile_pair_tear):
 * those before the last byte in which the two differ; 0 when they are the same. */
size_t statefile_pair_tear_size(const char *old_blk, const char *new_blk, size_t block);

/* Pure: copy seq of payload into out, block bytes (at least statefile_pair_block_size(len)). */
int statefile_pair_encode(uint64_t seq, const void *payload, size_t len, char *out, size_t block);

/* Pure: check one block. -ENODATA: all zeros (never written); -EBADMSG: anything else wrong. */
int statefile_pair_decode(const char *blk, size_t block, uint64_t *ret_seq, const char **ret_payload,
                          size_t *ret_len);

/*
 * Save payload as the newest copy of dir/name, through p (see above). With flush the copy
 * is durable on return (fdatasync). Without, it is written through to the disk and waited
 * for, but left in the disk's volatile cache: for a caller that flushes that same disk
 * before it relies on the copy (an install: the slot's next sync), and before its next
 * save through p: that one overwrites the other block, and with both in the cache a cut
 * could lose one and tear the other (no good copy). A flush costs most when
 * the disk is busy, which is when checkpoints come. The first save of a handle is always
 * durable. On an error the handle writes the whole file anew at its next save.
 */
int statefile_pair_save(struct statefile_pair *p, const char *dir, const char *name, const void *payload,
                        size_t len, bool flush);
void statefile_pair_close(struct statefile_pair *p);

/*
 * Load the newest good copy of dir/name; a file in statefile_save's format (an older
 * agent's) is read by statefile_load. A block that is neither good nor empty is noted as a
 * problem (restored when the other copy is good). -ENOENT: no file or nothing ever
 * written; -EBADMSG: no good copy. The payload is NUL-terminated; the caller frees it.
 */
int statefile_pair_load(const char *dir, const char *name, char **ret_payload, size_t *ret_len);

/*
 * Every state file that statefile_load found corrupt (or missing beside a good last
 * copy), from any thread, kept until taken: the agent reports them to the ground, where
 * bit flips across a fleet are worth counting. Up to STATEFILE_PROBLEMS_MAX wait; more
 * are counted in *ret_dropped. Returns how many were copied to out (and forgotten).
 */
#define STATEFILE_PROBLEMS_MAX 32
#define STATEFILE_PROBLEM_MAX 96
struct statefile_problem {
        char path[PATH_MAX];
        char problem[STATEFILE_PROBLEM_MAX]; /* "bad checksum", "missing", ... */
        bool restored;                       /* the last good copy was used */
};
size_t statefile_take_problems(struct statefile_problem *out, size_t max, size_t *ret_dropped);

/* An eventfd written (1) each time a problem is noted, from whatever thread noted it, so
 * the agent reports it at once: a kill moments later must not lose it. -1: none. */
void statefile_set_problem_fd(int fd);
