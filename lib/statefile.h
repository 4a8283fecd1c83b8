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
