/*
 * The trust document (#18 item 2): which keys sign releases and which sign commands, which
 * keys are revoked, signed by k of n roots of trust and versioned, TUF-root-like
 * (docs/security.md, "The trust document").
 *
 * On the wire and on disk it is an envelope:
 *   {"signed": "<the document, a JSON text>", "signatures": ["<signature file>", ...]}
 * where each signature file (update/signature.h, purpose SIGNATURE_FOR_TRUST) is made over
 * the exact bytes of "signed" by a root key. The document:
 *   {"type": "orbit-trust", "format": 1, "version": N, "expires": EPOCH, "threshold": K,
 *    "roots": [PEM...], "release": [PEM...], "command": [PEM...], "revoked": [HEX...],
 *    "time_floor_reset": EPOCH (optional)}
 * roots are self-signed certificates in the root role; release and command are the trust
 * anchors (CAs or signers) for bundles and for commands; revoked are key fingerprints
 * (SHA-256 of a SubjectPublicKeyInfo, signature_key_fingerprint), refused anywhere on a
 * chain and not counted as roots.
 *
 * Everything here is pure (no I/O, no clock): the caller gives the time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "update/signature.h"

#define TRUST_FORMAT 1
#define TRUST_MAX_SIZE (128 * 1024)
#define TRUST_MAX_ROOTS 16
#define TRUST_MAX_ANCHORS 32
#define TRUST_MAX_REVOKED 1024
#define TRUST_MAX_SIGNATURES 16
#define TRUST_CERT_MAX_SIZE (16 * 1024)

struct trust {
        int64_t version;
        int64_t expires;          /* seconds since the epoch */
        int64_t threshold;        /* of roots that must sign the next document */
        int64_t time_floor_reset; /* 0: none; else the trusted-time floor is lowered to it */
        size_t n_roots;
        uint8_t (*root_keys)[32];
        size_t n_revoked;
        uint8_t (*revoked)[32];
        char *roots_pem, *release_pem, *command_pem; /* concatenated PEM */
        size_t roots_pem_len, release_pem_len, command_pem_len;
        size_t n_release, n_command;
        char *text; /* the envelope as given: what a node saves and passes on */
        size_t text_len;
};

void trust_free(struct trust *t);
static inline void trust_freep(struct trust **t) {
        trust_free(*t);
}
#define _cleanup_trust_ __attribute__((cleanup(trust_freep)))

enum trust_check {
        /* a document offered to a node that has one in force: it must be newer, signed by
         * threshold of the roots in force and by threshold of its own roots, not expired */
        TRUST_CHECK_UPDATE,
        /* the node's first document (from its image), or one it saved itself: signed by
         * threshold of its own roots; its expiry is not judged (a node in orbit is not cut off
         * by a calendar: docs/security.md) */
        TRUST_CHECK_SELF,
};

/*
 * Parse and check an envelope. current: the document in force (TRUST_CHECK_UPDATE), else
 * NULL. now: a lower bound of the time (SIGNATURE_NOW_UNKNOWN: validity and expiry are not
 * judged). Returns 0 and *ret, or: -EBADMSG malformed (the reason names the field), -ESTALE
 * not newer than the one in force, -EKEYREJECTED too few good root signatures (each bad
 * one's reason is given), -EKEYEXPIRED the document expired. *ret_reason (caller frees).
 */
int trust_parse(const char *text, size_t len, enum trust_check check, const struct trust *current,
                time_t now, struct trust **ret, char **ret_reason);

/*
 * New keyrings of the release or command anchors with every revocation: each caller (the
 * update worker, the link) gets its own. -ENOMEM or -EINVAL.
 */
int trust_release_keyring(const struct trust *t, struct signature_keyring **ret);
int trust_command_keyring(const struct trust *t, struct signature_keyring **ret);

/* Whether a key fingerprint is revoked by t. */
bool trust_revokes(const struct trust *t, const uint8_t key_sha256[32]);

/*
 * For the ground tool: a new unsigned envelope of a document (its fields in d; the PEM
 * lists as NULL-terminated arrays of texts, revoked as hex), or a signature added to an
 * envelope. *ret (caller frees) is the new envelope text.
 */
struct trust_document_spec {
        int64_t version, expires, threshold, time_floor_reset;
        const char *const *roots, *const *release, *const *command, *const *revoked;
};
int trust_envelope_new(const struct trust_document_spec *d, char **ret, char **ret_reason);
int trust_envelope_add_signature(const char *text, size_t len, const char *sig, size_t sig_len,
                                 char **ret, char **ret_reason);
/* Pure: what names one envelope's text (a node says which one it refused): 16 lower-case hex
 * digits of its SHA-256. */
#define TRUST_ID_LEN 16
void trust_text_id(const char *text, size_t len, char out[static TRUST_ID_LEN + 1]);

/* Pure: the version an envelope's document names, without checking anything (-1: none). */
int64_t trust_peek_version(const char *text, size_t len);

/* The "signed" text of an envelope, borrowed into *ret (caller frees). */
int trust_envelope_signed_text(const char *text, size_t len, char **ret, size_t *ret_len,
                               char **ret_reason);
