/* Bundle manifests: the signed JSON that names a bundle, its images and every chunk hash. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/json-util.h"
#include "lib/sha256.h"

#define MANIFEST_FORMAT 1
#define MANIFEST_MAX_SIZE (1024 * 1024)
#define MANIFEST_MAX_IMAGES 16
#define MANIFEST_MAX_COMPATIBLE 64
#define MANIFEST_NAME_MAX 128
#define MANIFEST_APP_NAME_MAX 64 /* "app:<name>": the name a workload spec's "app" gives */
#define MANIFEST_CHUNK_SIZE_MIN 4096
#define MANIFEST_CHUNK_SIZE_MAX (16 * 1024 * 1024)
#define MANIFEST_CHUNK_SIZE_DEFAULT (1024 * 1024)
/* Bounded in practice by MANIFEST_MAX_SIZE (about 70 bytes per chunk hash). */
#define MANIFEST_MAX_CHUNKS (1024 * 1024)

/* Member names in the bundle tar that are not images. */
#define MANIFEST_MEMBER_NAME "manifest.json"
#define SIGNATURE_MEMBER_NAME "manifest.sig"

struct manifest_image {
        char *slot_class; /* "rootfs", "model:<name>" or "app:<name>" */
        char *file;       /* tar member name of the payload: a plain file name */
        uint64_t size;    /* bytes */
        uint8_t sha256[SHA256_DIGEST_SIZE];
        uint64_t chunk_size;
        uint64_t n_chunks; /* always manifest_chunk_count(size, chunk_size) */
        uint8_t (*chunks)[SHA256_DIGEST_SIZE];
};

struct manifest {
        int64_t format; /* MANIFEST_FORMAT */
        char *bundle_id;
        char *version; /* semantic version, "1.4.0-rc.1+build.7" */
        uint64_t security_version;
        /* The release's word on going back (#18 item 6): a node that committed this bundle
         * may be rolled back on the controller's command to an image of at least this
         * security_version. Optional, <= security_version; absent: security_version (the
         * controller alone cannot take the node below it). has_rollback_floor says which. */
        uint64_t rollback_floor;
        bool has_rollback_floor;
        char *description; /* optional, NULL when absent */
        char **compatible; /* NULL-terminated hardware names */
        size_t n_compatible;
        struct manifest_image *images;
        size_t n_images;
};

enum {
        /* A template for "orbit-bundle create": everything but "images" (which is refused). */
        MANIFEST_PARSE_TEMPLATE = 1 << 0,
};

/*
 * Pure: parse and validate a manifest strictly (unknown keys, wrong types, bad hashes,
 * a chunk list that does not match size and chunk_size, duplicate slot classes or
 * files are all problems with source:line:column). Returns 0 with *ret filled, or
 * -EINVAL (-ENOMEM) with the problems recorded.
 */
int manifest_parse(const char *source, const char *text, size_t len, unsigned flags,
                   struct manifest *ret, struct json_problems *problems);

/* As manifest_parse; on failure *ret_message (caller frees) has one line per problem. */
int manifest_parse_text(const char *source, const char *text, size_t len, unsigned flags,
                        struct manifest *ret, char **ret_message);

/*
 * Pure: render a complete manifest as JSON (2-space indent, fixed key order, trailing
 * newline). The bytes returned are what gets signed. Caller frees *ret_text.
 */
int manifest_format(const struct manifest *m, char **ret_text, size_t *ret_len);

/* Free everything the manifest owns and zero it; safe on a zeroed struct. */
void manifest_free(struct manifest *m);

/* Pure: ceil(size / chunk_size); 0 for an empty image. */
uint64_t manifest_chunk_count(uint64_t size, uint64_t chunk_size);

/* Pure: the length of chunk index of img (the last one may be short); 0 if out of range. */
size_t manifest_chunk_length(const struct manifest_image *img, uint64_t index);

/* Pure: 0 if data (of manifest_chunk_length bytes) hashes to chunk index, else -EBADMSG. */
int manifest_check_chunk(const struct manifest_image *img, uint64_t index, const void *data,
                         size_t len);

/* Pure: does the manifest list this hardware name among "compatible"? */
bool manifest_is_compatible(const struct manifest *m, const char *hardware);

/*
 * Pure: the install policy checks: hardware (skipped when NULL) and anti-rollback
 * (security_version below min_security_version is refused). -ENOTSUP for incompatible
 * hardware, -EPERM for a rollback; *ret_reason (caller frees) says why.
 */
int manifest_check_policy(const struct manifest *m, const char *hardware,
                          uint64_t min_security_version, char **ret_reason);

/* Pure: the image for a slot class, or NULL. */
const struct manifest_image *manifest_find_image(const struct manifest *m, const char *slot_class);

/* Pure: is s a semantic version (semver.org 2.0: MAJOR.MINOR.PATCH[-pre][+build])? */
bool manifest_version_is_valid(const char *s);

/*
 * Pure: compare two semantic versions by semver precedence (build metadata ignored):
 * *ret is -1 when a < b, 0 when equal, 1 when a > b. -EINVAL if either is invalid.
 */
int manifest_version_compare(const char *a, const char *b, int *ret);

/* Pure: is s a valid slot class ("rootfs", "model:<name>", "app:<name>")? */
bool manifest_slot_class_is_valid(const char *s);

/* Pure: is s a valid payload member name (1-128 of A-Z a-z 0-9 . _ -, not starting with . or -)? */
bool manifest_file_name_is_valid(const char *s);
