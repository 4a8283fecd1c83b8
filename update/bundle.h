/* Bundles: the signed tar of a manifest, its signature and the images; read securely, streamed by
 * chunk. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "update/manifest.h"
#include "update/signature.h"

/* The bundle reader's read size; also the granularity at which compression is sniffed. */
#define BUNDLE_READ_BLOCK (64 * 1024)

struct bundle_verify_options {
        const struct signature_keyring *keyring; /* trust anchors; required */
        const char *hardware; /* this node's hardware name; NULL: not checked (ground tools) */
        uint64_t min_security_version; /* bundles below it are refused (anti-rollback) */
        time_t now;                    /* for certificate validity, or SIGNATURE_NOW_UNKNOWN */
        bool now_is_lower_bound;       /* now only bounds the time: "not yet valid" not judged */
};

/* An open bundle whose manifest is verified; its payloads are verified as they are read. */
struct bundle;

/*
 * Open a bundle and verify everything that comes before the payloads, in this order:
 *  1. the file is a plain tar: compressed input (gzip, xz, bzip2, zstd, lz4, lzma,
 *     compress) is refused without decompressing a byte, so no decompression bomb;
 *  2. the first member is manifest.json (at most MANIFEST_MAX_SIZE), the second
 *     manifest.sig (at most SIGNATURE_MAX_SIZE); both regular files;
 *  3. the signature over the exact manifest bytes (signature_verify);
 *  4. the manifest parses strictly (only now: unsigned JSON is never parsed);
 *  5. the policy: compatible hardware and anti-rollback (manifest_check_policy).
 * Every member must be a regular file with a plain relative name; links, devices,
 * directories, sparse files, absolute or ".." paths, members out of order, sizes that
 * differ from the manifest and anything after the last image are refused.
 * Returns 0 with *ret (free with bundle_close); on failure a negative errno
 * (-EBADMSG bad or hostile content, -ENOTSUP compressed or incompatible, -EPERM
 * rollback, -EKEYREJECTED/-EKEYEXPIRED signer) and *ret_reason (caller frees).
 */
int bundle_open(const char *path, const struct bundle_verify_options *o, struct bundle **ret,
                char **ret_reason);

/* As bundle_open, reading a regular file's fd from its start; fd stays the caller's. */
int bundle_open_fd(int fd, const char *name, const struct bundle_verify_options *o,
                   struct bundle **ret, char **ret_reason);

/*
 * Random access to a bundle's bytes, wherever they are: a local file (pread) or a bundle
 * fetched from the controller by ranges. One reader serves opening, locating the payloads
 * and the install's chunk reads alike.
 */
struct bundle_reader {
        /* Exactly len bytes at offset into buf: 0, or a negative errno (-ENODATA: the
         * bundle is shorter than it said). */
        int (*pread)(void *userdata, uint64_t offset, void *buf, size_t len);
        void *userdata;
        uint64_t size;   /* of the whole bundle, in bytes */
        bool concurrent; /* pread may run on several threads at once */
};

/*
 * As bundle_open, through a reader (*r is copied; its userdata must outlive the bundle).
 * With head (the first head_len bytes, from bundle_head_length: a fetch by ranges), the
 * manifest and signature are read from it and the reader is never called while opening,
 * so a remote bundle is verified without a byte of I/O; its payloads are then read by
 * offset only (bundle_locate_payloads), never streamed. Without head, from the reader.
 */
int bundle_open_reader(const struct bundle_reader *r, const char *name, const void *head,
                       size_t head_len, const struct bundle_verify_options *o, struct bundle **ret,
                       char **ret_reason);

void bundle_close(struct bundle *b);
static inline void bundle_closep(struct bundle **b) {
        bundle_close(*b);
}
#define _cleanup_bundle_ __attribute__((cleanup(bundle_closep)))

/* The verified manifest; owned by the bundle. */
const struct manifest *bundle_manifest(const struct bundle *b);

/* Who signed it (verified). */
const struct signature_info *bundle_signer(const struct bundle *b);

/*
 * Pure: verify the bundle's signature again, against kr at now (a trust document may have
 * revoked its signer since it was opened: the update manager asks before it arms a slot).
 * 0, or the error signature_verify gives, with *ret_reason.
 */
int bundle_recheck_signature(const struct bundle *b, const struct signature_keyring *kr, time_t now,
                             bool now_is_lower_bound, char **ret_reason);

/* The exact manifest bytes that were signed (NUL-terminated), and their SHA-256: what
 * identifies a bundle across restarts (the same id could be signed twice). */
const char *bundle_manifest_text(const struct bundle *b, size_t *ret_len);
const uint8_t *bundle_manifest_digest(const struct bundle *b);

/* The reader the bundle was opened with (for files: pread on its descriptor). */
const struct bundle_reader *bundle_get_reader(const struct bundle *b);

/*
 * Random access for installers: the byte offset in the bundle of each image's payload
 * (ret_offsets has bundle_manifest(b)->n_images entries), found by walking the tar
 * headers through the bundle's reader (ustar and pax). Checks names, order and sizes
 * against the manifest and that the bundle holds every payload. Chunks read at these
 * offsets must still be verified (manifest_check_chunk): the offsets are where to look,
 * not a promise about what is there.
 */
int bundle_locate_payloads(const struct bundle *b, uint64_t *ret_offsets, char **ret_reason);

/*
 * For fetching a bundle by ranges: from its first len bytes, the length of the part that
 * bundle_open reads (the manifest and signature members, padded). 0 with *ret_len; -EAGAIN
 * with *ret_len = the bytes needed to tell; -EBADMSG when the first members are not a
 * bundle's (bad header checksum, name, type, or a size over its bound). Nothing is trusted:
 * bundle_open verifies what was fetched.
 */
int bundle_head_length(const void *buf, size_t len, uint64_t *ret_len);

/* One verified chunk of one image, in bundle order. */
struct bundle_chunk {
        size_t image;        /* index into bundle_manifest(b)->images */
        uint64_t index;      /* chunk number within the image */
        uint64_t offset;     /* byte offset within the image: index * chunk_size */
        const uint8_t *data; /* valid until the next call or bundle_close */
        size_t len;
        bool last_in_image; /* the whole-image hash was checked too */
};

/*
 * Read the next chunk of the payloads. Each chunk is hashed and compared with the
 * manifest before it is returned; the last chunk of an image is returned only after
 * the whole image's SHA-256 matched as well. Returns 1 with *ret filled, 0 at the end
 * (when the archive is also verified to hold nothing more), or a negative errno with
 * *ret_reason naming the image, the chunk and what was wrong. After an error the
 * bundle only fails: an installer must treat the whole bundle as refused.
 */
int bundle_next_chunk(struct bundle *b, struct bundle_chunk *ret, char **ret_reason);

/* Read every chunk to the end, verifying as bundle_next_chunk does. */
int bundle_verify_payloads(struct bundle *b, char **ret_reason);

/*
 * For inspection only ("orbit-bundle info"): read the manifest and describe the signer
 * with the same structural checks as bundle_open but WITHOUT verifying the signature
 * or the payloads. Nothing returned here may be trusted.
 */
int bundle_read_unverified(const char *path, struct manifest *ret_manifest,
                           struct signature_info *ret_signer, char **ret_reason);

/*
 * Hash one image file for a manifest: size, SHA-256, and the SHA-256 of each chunk.
 * The member name is derived from the slot class ("rootfs.img", "model-<name>.img").
 */
int bundle_hash_image(const char *path, const char *slot_class, uint64_t chunk_size,
                      struct manifest_image *ret, char **ret_reason);

struct bundle_image_source {
        const char *slot_class; /* "rootfs", "model:<name>" */
        const char *path;       /* the image file */
};

/*
 * Build a signed bundle at output (written to a temp file, synced, renamed): the
 * template's fields plus one hashed image entry per source, signed with key and
 * certificate (signature_sign). A source that changes while being written fails it.
 */
int bundle_create(const char *output, const struct manifest *manifest_template,
                  const struct bundle_image_source *images, size_t n_images, uint64_t chunk_size,
                  const char *key_path, const char *cert_path, char **ret_reason);
