/* Detached signatures: ECDSA P-256 with an X.509 chain to a keyring (mbedTLS), each key in one
 * role and each signature bound to what it is for (docs/security.md, "Key roles").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <stdint.h>

#define SIGNATURE_FORMAT 2
#define SIGNATURE_ALGORITHM "ecdsa-p256-sha256"
#define SIGNATURE_MAX_SIZE (64 * 1024)
#define SIGNATURE_MAX_CERTS 4 /* the signer and up to three intermediates */
#define SIGNATURE_KEYRING_MAX_FILES 64
#define SIGNATURE_KEYRING_FILE_MAX_SIZE (256 * 1024)
#define SIGNATURE_KEY_FILE_MAX_SIZE (64 * 1024)

/* Pass as "now" on a node that has no time it can trust: validity periods are then not checked. */
#define SIGNATURE_NOW_UNKNOWN ((time_t)-1)

/*
 * Key roles (#18 item 1). A signing certificate names its role by an extended key usage under
 * the arc SIGNATURE_OID_ARC (a UUID OID, ITU-T X.667, needing no registration): .1 release
 * signer (bundles), .2 command signer, .3 root of trust (trust documents). A signer holds
 * exactly one of them and no TLS usage; CAs above it are not constrained.
 */
enum signature_role {
        SIGNATURE_ROLE_NONE = 0, /* a CA, or a key that signs nothing */
        SIGNATURE_ROLE_RELEASE,
        SIGNATURE_ROLE_COMMAND,
        SIGNATURE_ROLE_ROOT,
        _SIGNATURE_ROLE_MAX,
};
#define SIGNATURE_OID_ARC "2.25.5623372019225234889473442596077835724"

/*
 * What a signature is for. Its context string is signed with the data (SHA-256 of
 * "orbit-signature" NUL context NUL data), so a signature made for one purpose never
 * verifies for another, and the signer must hold the purpose's role.
 */
enum signature_purpose {
        SIGNATURE_FOR_BUNDLE,   /* "orbit bundle manifest": release */
        SIGNATURE_FOR_COMMAND,  /* "orbit command": command */
        SIGNATURE_FOR_TRUST,    /* "orbit trust document": root */
        SIGNATURE_FOR_ROLLBACK, /* "orbit rollback authorization": release */
        SIGNATURE_FOR_DESIRED,  /* "orbit desired state": command (#19) */
        _SIGNATURE_FOR_MAX,
};

const char *signature_role_name(enum signature_role role);        /* "release", ... */
enum signature_role signature_role_from_name(const char *name); /* NONE if unknown */
const char *signature_purpose_context(enum signature_purpose p);
enum signature_role signature_purpose_role(enum signature_purpose p);

/* Who signed, as the signature file says (verified or not: see where it came from). */
struct signature_info {
        char signer[256]; /* subject of the signer certificate, "CN=release signer, O=orbit" */
        char issuer[256];
        time_t not_before, not_after;
        size_t n_certificates;
        enum signature_role role;        /* of the signer certificate, NONE when it holds none */
        uint8_t key_sha256[32];          /* SHA-256 of the signer's SubjectPublicKeyInfo */
        char context[64];                /* as the signature file says */
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
 * Refuse any chain through a certificate whose key (SHA-256 of its SubjectPublicKeyInfo, as
 * signature_key_fingerprint gives) is this one: a revocation (trust documents). -ENOMEM.
 */
int signature_keyring_revoke(struct signature_keyring *kr, const uint8_t key_sha256[32]);
size_t signature_keyring_revoked_count(const struct signature_keyring *kr);

/* Pure: the key fingerprint of the first certificate of a PEM (or DER) text. */
int signature_key_fingerprint(const void *data, size_t len, uint8_t out[32], char **ret_reason);

/*
 * Pure: the first certificate of a PEM (or DER) text: its key fingerprint, its role (NONE
 * unless it holds exactly one and no TLS usage), whether it is self-signed by its own key
 * (a root) and its subject. -EINVAL when it does not parse.
 */
struct signature_cert_info {
        uint8_t key_sha256[32];
        enum signature_role role;
        bool self_signed;
        bool p256;
        char subject[256];
};
int signature_cert_info(const void *data, size_t len, struct signature_cert_info *ret,
                        char **ret_reason);

/*
 * Pure: verify a signature file (its text, as read) over data, for purpose:
 *  - the file parses strictly (format, algorithm, context, base64 DER signature,
 *    certificates), and its context is the purpose's;
 *  - the signer certificate (the first) holds an EC P-256 key, allows digitalSignature
 *    when it has a key usage extension, and holds the purpose's role and no other role,
 *    serverAuth, clientAuth or anyExtendedKeyUsage;
 *  - no certificate of the file holds a key whose use costs unbounded time (an RSA
 *    public exponent over 32 bits, an EC curve other than P-256 and P-384): -EBADMSG,
 *    before anything uses it (signature_keyring_add and signature_cert_info refuse such
 *    certificates too, -EINVAL);
 *  - the chain reaches a certificate of the keyring (mbedTLS path validation: CA
 *    constraints, signatures, SHA-256 or better, P-256/P-384 or RSA >= 2048 above the
 *    signer);
 *  - every certificate on the path is valid at now (unless SIGNATURE_NOW_UNKNOWN), and
 *    none holds a key the keyring revokes;
 *  - the ECDSA signature matches the context and exactly data.
 * Returns 0 (and *ret_info if not NULL), or: -EBADMSG malformed file or bad signature,
 * -EKEYREJECTED untrusted chain or unsuitable key, -EKEYEXPIRED outside a validity
 * period. *ret_reason (caller frees) says which, naming the certificate.
 */
int signature_verify(enum signature_purpose purpose, const void *data, size_t len, const char *sig_text, size_t sig_len,
                     const struct signature_keyring *kr, time_t now,
                     struct signature_info *ret_info, char **ret_reason);

/*
 * As signature_verify, when now only bounds the time from below (the agent's trusted time
 * from a floor or the RTC, before the controller told it: agent/trusted-time.h): expiry is
 * judged at now, "not yet valid" is not, since a certificate issued after now may be valid.
 */
int signature_verify_at_least(enum signature_purpose purpose, const void *data, size_t len, const char *sig_text, size_t sig_len,
                              const struct signature_keyring *kr, time_t now,
                              struct signature_info *ret_info, char **ret_reason);

/* Pure: parse a signature file and describe its signer without verifying anything. */
int signature_describe(const char *sig_text, size_t sig_len, struct signature_info *ret_info,
                       char **ret_reason);

/*
 * Sign data with a P-256 private key (PEM or DER, SEC1 or PKCS#8, as mbedtls or openssl
 * write them) and its certificate file (PEM: the signer first, then any intermediates).
 * The key must match the certificate, which must hold the purpose's role (a key is not
 * used outside its role, even to sign). *ret_text (caller frees) is the signature file.
 */
int signature_sign(enum signature_purpose purpose, const void *data, size_t len, const char *key_path, const char *cert_path,
                   char **ret_text, size_t *ret_len, char **ret_reason);

struct signature_keygen_options {
        const char *subject;          /* distinguished name, "CN=orbit release CA,O=orbit" */
        bool ca;                      /* a CA (keyCertSign, cRLSign) rather than a signer */
        enum signature_role role;     /* a signer's role (required unless ca) */
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
