/* Detached signatures over manifest bytes: ECDSA P-256 with an X.509 chain to a keyring (mbedTLS).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define SIGNATURE_FORMAT 1
#define SIGNATURE_ALGORITHM "ecdsa-p256-sha256"
#define SIGNATURE_MAX_SIZE (64 * 1024)
#define SIGNATURE_MAX_CERTS 4 /* the signer and up to three intermediates */
#define SIGNATURE_KEYRING_MAX_FILES 64
#define SIGNATURE_KEYRING_FILE_MAX_SIZE (256 * 1024)
#define SIGNATURE_KEY_FILE_MAX_SIZE (64 * 1024)

/* Pass as "now" on a node that has no time it can trust: validity periods are then not checked. */
#define SIGNATURE_NOW_UNKNOWN ((time_t)-1)

/* Who signed, as the signature file says (verified or not: see where it came from). */
struct signature_info {
        char signer[256]; /* subject of the signer certificate, "CN=release signer, O=orbit" */
        char issuer[256];
        time_t not_before, not_after;
        size_t n_certificates;
};

/* The trust anchors of a node: every certificate is a root the signer may chain to. */
struct signature_keyring;

struct signature_keyring *signature_keyring_new(void);
void signature_keyring_free(struct signature_keyring *kr);
static inline void signature_keyring_freep(struct signature_keyring **kr) {
        signature_keyring_free(*kr);
}
#define _cleanup_keyring_ __attribute__((cleanup(signature_keyring_freep)))

/*
 * Pure: add every certificate of a PEM (or one DER) text. source names it in messages.
 * -EINVAL with *ret_reason (caller frees) if any certificate in it does not parse.
 */
int signature_keyring_add(struct signature_keyring *kr, const void *data, size_t len,
                          const char *source, char **ret_reason);

/*
 * Load every "*.pem" and "*.crt" file of a directory (other names are ignored). A file
 * that does not parse fails the load; so does a directory without any certificate
 * (-ENOKEY): a node must never trust an empty keyring by accident.
 */
int signature_keyring_load_dir(const char *dir, struct signature_keyring **ret, char **ret_reason);

/* Number of certificates in the keyring. */
size_t signature_keyring_count(const struct signature_keyring *kr);

/*
 * Pure: verify a signature file (its text, as read) over data:
 *  - the file parses strictly (format, algorithm, base64 DER signature, certificates);
 *  - the signer certificate (the first) holds an EC P-256 key, allows digitalSignature
 *    when it has a key usage extension, and codeSigning when it has an extended one;
 *  - the chain reaches a certificate of the keyring (mbedTLS path validation: CA
 *    constraints, signatures, SHA-256 or better, P-256/P-384 or RSA >= 2048 above the
 *    signer);
 *  - every certificate on the path is valid at now (unless SIGNATURE_NOW_UNKNOWN);
 *  - the ECDSA signature matches SHA-256 of exactly data.
 * Returns 0 (and *ret_info if not NULL), or: -EBADMSG malformed file or bad signature,
 * -EKEYREJECTED untrusted chain or unsuitable key, -EKEYEXPIRED outside a validity
 * period. *ret_reason (caller frees) says which, naming the certificate.
 */
int signature_verify(const void *data, size_t len, const char *sig_text, size_t sig_len,
                     const struct signature_keyring *kr, time_t now,
                     struct signature_info *ret_info, char **ret_reason);

/*
 * As signature_verify, when now only bounds the time from below (the agent's trusted time
 * from a floor or the RTC, before the controller told it: agent/trusted-time.h): expiry is
 * judged at now, "not yet valid" is not, since a certificate issued after now may be valid.
 */
int signature_verify_at_least(const void *data, size_t len, const char *sig_text, size_t sig_len,
                              const struct signature_keyring *kr, time_t now,
                              struct signature_info *ret_info, char **ret_reason);

/* Pure: parse a signature file and describe its signer without verifying anything. */
int signature_describe(const char *sig_text, size_t sig_len, struct signature_info *ret_info,
                       char **ret_reason);

/*
 * Sign data with a P-256 private key (PEM or DER, SEC1 or PKCS#8, as mbedtls or openssl
 * write them) and its certificate file (PEM: the signer first, then any intermediates).
 * The key must match the certificate. *ret_text (caller frees) is the signature file.
 */
int signature_sign(const void *data, size_t len, const char *key_path, const char *cert_path,
                   char **ret_text, size_t *ret_len, char **ret_reason);

struct signature_keygen_options {
        const char *subject;          /* distinguished name, "CN=orbit release CA,O=orbit" */
        bool ca;                      /* a CA (keyCertSign, cRLSign) rather than a signer */
        const char *issuer_key_path;  /* NULL: self-signed */
        const char *issuer_cert_path; /* with issuer_key_path */
        time_t not_before;            /* 0: now */
        unsigned days;                /* validity length, >= 1 */
};

/*
 * Make a new P-256 key (written to key_path, mode 0600, PEM) and a certificate for it
 * (cert_path, PEM), self-signed or issued by the given issuer key and certificate.
 * Meant for tests and small fleets; real fleets may use openssl or their own PKI.
 */
int signature_keygen(const struct signature_keygen_options *o, const char *key_path,
                     const char *cert_path, char **ret_reason);
