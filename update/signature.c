/* Detached manifest signatures with mbedTLS 2.28: sign, verify against a keyring, make keys. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "lib/fileio.h"
#include "lib/json-util.h"
#include "lib/sha256.h"
#include "update/signature.h"
#include "lib/message.h"

/* An ECDSA P-256 signature in DER is at most 72 bytes; a certificate a few KiB. */
#define SIGNATURE_DER_MAX 160
#define CERT_DER_MAX (16 * 1024)


static const char *mbedtls_reason(int err, char *buf, size_t size) {
        mbedtls_strerror(err, buf, size);
        return buf;
}

/* ---- roles and purposes ------------------------------------------------------------ */

/* DER contents of the role OIDs SIGNATURE_OID_ARC.1-3 (20 bytes each, the last is the role). */
#define ROLE_OID_ARC_DER "\x69\x88\xbb\x82\xe9\xae\xeb\xa2\xa4\xe3\xb0\xb8\xd4\x96\x8e\x92\x98\xab\x4c"
#define ROLE_OID_LEN 20

static const char *const role_names[_SIGNATURE_ROLE_MAX] = {
        [SIGNATURE_ROLE_NONE] = "none",
        [SIGNATURE_ROLE_RELEASE] = "release",
        [SIGNATURE_ROLE_COMMAND] = "command",
        [SIGNATURE_ROLE_ROOT] = "root",
};

static const struct {
        const char *context;
        enum signature_role role;
} purposes[_SIGNATURE_FOR_MAX] = {
        [SIGNATURE_FOR_BUNDLE] = {"orbit bundle manifest", SIGNATURE_ROLE_RELEASE},
        [SIGNATURE_FOR_COMMAND] = {"orbit command", SIGNATURE_ROLE_COMMAND},
        [SIGNATURE_FOR_TRUST] = {"orbit trust document", SIGNATURE_ROLE_ROOT},
        [SIGNATURE_FOR_ROLLBACK] = {"orbit rollback authorization", SIGNATURE_ROLE_RELEASE},
        [SIGNATURE_FOR_DESIRED] = {"orbit desired state", SIGNATURE_ROLE_COMMAND},
};

const char *signature_role_name(enum signature_role role) {
        return role >= 0 && role < _SIGNATURE_ROLE_MAX ? role_names[role] : "?";
}

enum signature_role signature_role_from_name(const char *name) {
        for (int i = SIGNATURE_ROLE_RELEASE; i < _SIGNATURE_ROLE_MAX; i++)
                if (name && streq(name, role_names[i]))
                        return (enum signature_role)i;
        return SIGNATURE_ROLE_NONE;
}

const char *signature_purpose_context(enum signature_purpose p) {
        return p >= 0 && p < _SIGNATURE_FOR_MAX ? purposes[p].context : "?";
}

enum signature_role signature_purpose_role(enum signature_purpose p) {
        return p >= 0 && p < _SIGNATURE_FOR_MAX ? purposes[p].role : SIGNATURE_ROLE_NONE;
}

/* What a certificate's extended key usage says of its role. */
struct cert_roles {
        enum signature_role role; /* the last orbit role found */
        unsigned n_roles;         /* how many orbit roles */
        bool tls_or_any;          /* serverAuth, clientAuth or anyExtendedKeyUsage */
};

static struct cert_roles cert_roles(const mbedtls_x509_crt *c) {
        struct cert_roles cr = {0};
        if (!(c->ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE))
                return cr;
        for (const mbedtls_x509_sequence *s = &c->ext_key_usage; s && s->buf.p; s = s->next) {
                if (s->buf.len == ROLE_OID_LEN &&
                    memcmp(s->buf.p, ROLE_OID_ARC_DER, ROLE_OID_LEN - 1) == 0 &&
                    s->buf.p[ROLE_OID_LEN - 1] >= SIGNATURE_ROLE_RELEASE &&
                    s->buf.p[ROLE_OID_LEN - 1] < _SIGNATURE_ROLE_MAX) {
                        cr.role = (enum signature_role)s->buf.p[ROLE_OID_LEN - 1];
                        cr.n_roles++;
                } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_SERVER_AUTH, &s->buf) == 0 ||
                           MBEDTLS_OID_CMP(MBEDTLS_OID_CLIENT_AUTH, &s->buf) == 0 ||
                           MBEDTLS_OID_CMP(MBEDTLS_OID_ANY_EXTENDED_KEY_USAGE, &s->buf) == 0)
                        cr.tls_or_any = true;
        }
        return cr;
}

/* 0, or -EKEYREJECTED with a reason when the certificate may not sign for purpose. */
static int check_role(const mbedtls_x509_crt *c, const char *who, enum signature_purpose purpose,
                      char **ret_reason) {
        struct cert_roles cr = cert_roles(c);
        enum signature_role want = signature_purpose_role(purpose);
        if (cr.n_roles > 1)
                return message_set(ret_reason, -EKEYREJECTED,
                                   "signer \"%s\" holds %u roles: one key, one role", who,
                                   cr.n_roles);
        if (cr.tls_or_any)
                return message_set(ret_reason, -EKEYREJECTED,
                                   "signer \"%s\" is also a TLS (or any-purpose) key: one key, "
                                   "one role",
                                   who);
        if (cr.role != want)
                return message_set(
                        ret_reason, -EKEYREJECTED,
                        "signer \"%s\" is %s%s, not a %s signer (extended key usage %s.%d): "
                        "it may not sign an %s",
                        who, cr.role ? "a " : "", cr.role ? signature_role_name(cr.role) : "in no role",
                        signature_role_name(want), SIGNATURE_OID_ARC, (int)want,
                        signature_purpose_context(purpose));
        return 0;
}

/* SHA-256 over "orbit-signature" NUL context NUL data. */
static void signed_digest(enum signature_purpose purpose, const void *data, size_t len,
                          uint8_t out[SHA256_DIGEST_SIZE]) {
        static const char prefix[] = "orbit-signature"; /* with its NUL */
        const char *context = signature_purpose_context(purpose);
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, prefix, sizeof(prefix));
        sha256_update(&c, context, strlen(context) + 1);
        sha256_update(&c, data, len);
        sha256_final(&c, out);
}

/* ---- keyring ----------------------------------------------------------------------- */

struct signature_keyring {
        mbedtls_x509_crt anchors;
        size_t count;
        uint8_t (*revoked)[32];
        size_t n_revoked;
};

int signature_keyring_revoke(struct signature_keyring *kr, const uint8_t key_sha256[32]) {
        uint8_t (*n)[32] = realloc(kr->revoked, (kr->n_revoked + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        memcpy(n[kr->n_revoked++], key_sha256, 32);
        kr->revoked = n;
        return 0;
}

size_t signature_keyring_revoked_count(const struct signature_keyring *kr) {
        return kr ? kr->n_revoked : 0;
}

static bool keyring_revokes(const struct signature_keyring *kr, const mbedtls_x509_crt *c) {
        if (!kr || kr->n_revoked == 0)
                return false;
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_buffer(c->pk_raw.p, c->pk_raw.len, d);
        for (size_t i = 0; i < kr->n_revoked; i++)
                if (memcmp(kr->revoked[i], d, sizeof(d)) == 0)
                        return true;
        return false;
}

struct signature_keyring *signature_keyring_new(void) {
        struct signature_keyring *kr = calloc(1, sizeof(*kr));
        if (kr)
                mbedtls_x509_crt_init(&kr->anchors);
        return kr;
}

void signature_keyring_free(struct signature_keyring *kr) {
        if (!kr)
                return;
        mbedtls_x509_crt_free(&kr->anchors);
        free(kr->revoked);
        free(kr);
}

size_t signature_keyring_count(const struct signature_keyring *kr) {
        return kr ? kr->count : 0;
}

static size_t chain_length(const mbedtls_x509_crt *c) {
        size_t n = 0;
        for (; c && c->raw.p; c = c->next)
                n++;
        return n;
}

/* mbedtls wants PEM NUL-terminated with the NUL counted; DER as it is. */
static int parse_certificates(mbedtls_x509_crt *chain, const void *data, size_t len) {
        if (len > 0 && memmem(data, len, "-----BEGIN", 10)) {
                _cleanup_free_ char *copy = malloc(len + 1);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, data, len);
                copy[len] = '\0';
                return mbedtls_x509_crt_parse(chain, (const unsigned char *)copy, len + 1);
        }
        return mbedtls_x509_crt_parse_der(chain, data, len);
}

static bool key_is_p256(const mbedtls_pk_context *pk);

/*
 * 0, or -EINVAL with a reason, when using a certificate's key could hold the CPU. An RSA
 * public operation costs time in the exponent's length, and mbedtls takes any odd exponent
 * below the modulus (8192 bits: over half a second per operation on a PC, far more on a
 * board); an ECDSA verification on brainpoolP512r1 takes 19 ms on a PC, twenty times
 * P-256's. Certificates a controller sends (in a trust document, in a signature file's
 * chain) are used before any signature over them is known good (self-signatures, mbedTLS
 * path validation, which checks a parent's signature before it refuses the parent's key by
 * the profile), so such keys are refused on sight. EC keys: the curves verify_profile
 * allows on a chain (no chain through another curve ever verified).
 */
#define RSA_MAX_EXPONENT_BITS 32
static int check_key_cost(const mbedtls_x509_crt *c, char **ret_reason) {
        const char *what = NULL;
        size_t bits = 0;
        if (mbedtls_pk_get_type(&c->pk) == MBEDTLS_PK_RSA) {
                bits = mbedtls_mpi_bitlen(&mbedtls_pk_rsa(c->pk)->E);
                if (bits > RSA_MAX_EXPONENT_BITS)
                        what = "an RSA public exponent";
        } else if (mbedtls_pk_can_do(&c->pk, MBEDTLS_PK_ECKEY)) {
                mbedtls_ecp_group_id id = mbedtls_pk_ec(c->pk)->grp.id;
                if (id != MBEDTLS_ECP_DP_SECP256R1 && id != MBEDTLS_ECP_DP_SECP384R1)
                        what = "an EC key on a curve other than P-256 and P-384";
        }
        if (!what)
                return 0;
        char subject[256];
        if (mbedtls_x509_dn_gets(subject, sizeof(subject), &c->subject) < 0)
                snprintf(subject, sizeof(subject), "?");
        if (bits)
                return message_set(ret_reason, -EINVAL,
                                   "certificate \"%s\": %s of %zu bits (at most %d)", subject,
                                   what, bits, RSA_MAX_EXPONENT_BITS);
        return message_set(ret_reason, -EINVAL, "certificate \"%s\": %s", subject, what);
}

/* Whether the certificate's signature is made by its own key. */
static bool signed_by_own_key(const mbedtls_x509_crt *c) {
        const mbedtls_md_info_t *md = mbedtls_md_info_from_type(c->sig_md);
        unsigned char hash[MBEDTLS_MD_MAX_SIZE];
        if (!md || mbedtls_md(md, c->tbs.p, c->tbs.len, hash) != 0)
                return false;
        return mbedtls_pk_verify_ext(c->sig_pk, c->sig_opts, (mbedtls_pk_context *)&c->pk,
                                     c->sig_md, hash, mbedtls_md_get_size(md), c->sig.p,
                                     c->sig.len) == 0;
}

int signature_cert_info(const void *data, size_t len, struct signature_cert_info *ret,
                        char **ret_reason) {
        mbedtls_x509_crt c;
        mbedtls_x509_crt_init(&c);
        int r = parse_certificates(&c, data, len);
        if (r == -ENOMEM)
                return r;
        if (r != 0 || !c.raw.p) {
                mbedtls_x509_crt_free(&c);
                return message_set(ret_reason, -EINVAL, "not an X.509 certificate (PEM or DER)");
        }
        r = check_key_cost(&c, ret_reason);
        if (r < 0) {
                mbedtls_x509_crt_free(&c);
                return r;
        }
        memset(ret, 0, sizeof(*ret));
        sha256_buffer(c.pk_raw.p, c.pk_raw.len, ret->key_sha256);
        struct cert_roles cr = cert_roles(&c);
        ret->role = cr.n_roles == 1 && !cr.tls_or_any ? cr.role : SIGNATURE_ROLE_NONE;
        ret->p256 = key_is_p256(&c.pk);
        ret->self_signed = c.issuer_raw.len == c.subject_raw.len &&
                           memcmp(c.issuer_raw.p, c.subject_raw.p, c.subject_raw.len) == 0 &&
                           signed_by_own_key(&c);
        if (mbedtls_x509_dn_gets(ret->subject, sizeof(ret->subject), &c.subject) < 0)
                snprintf(ret->subject, sizeof(ret->subject), "?");
        mbedtls_x509_crt_free(&c);
        return 0;
}

int signature_key_fingerprint(const void *data, size_t len, uint8_t out[32], char **ret_reason) {
        struct signature_cert_info info;
        int r = signature_cert_info(data, len, &info, ret_reason);
        if (r >= 0)
                memcpy(out, info.key_sha256, 32);
        return r;
}

int signature_keyring_add(struct signature_keyring *kr, const void *data, size_t len,
                          const char *source, char **ret_reason) {
        mbedtls_x509_crt parsed;
        mbedtls_x509_crt_init(&parsed);
        int r = parse_certificates(&parsed, data, len);
        if (r == -ENOMEM)
                return r;
        if (r != 0 || chain_length(&parsed) == 0) {
                char buf[128];
                mbedtls_x509_crt_free(&parsed);
                return message_set(ret_reason, -EINVAL,
                                  "%s: not a certificate (or not all of it parses): %s", source,
                                  r < 0 ? mbedtls_reason(r, buf, sizeof(buf))
                                        : "some blocks are bad");
        }
        for (mbedtls_x509_crt *c = &parsed; c && c->raw.p; c = c->next) {
                _cleanup_free_ char *why = NULL;
                r = check_key_cost(c, &why);
                if (r < 0) {
                        mbedtls_x509_crt_free(&parsed);
                        return message_set(ret_reason, r, "%s: %s", source, why ? why : "refused");
                }
        }
        /* Re-add each DER into the keyring's own list, so parsed can be freed as one. */
        for (mbedtls_x509_crt *c = &parsed; c && c->raw.p; c = c->next) {
                r = mbedtls_x509_crt_parse_der(&kr->anchors, c->raw.p, c->raw.len);
                if (r != 0) {
                        mbedtls_x509_crt_free(&parsed);
                        return message_set(ret_reason, -EINVAL, "%s: cannot add certificate",
                                          source);
                }
                kr->count++;
        }
        mbedtls_x509_crt_free(&parsed);
        return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n > m && streq(s + n - m, suffix);
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read a key or certificate file of at most max bytes; a failure says "<what> <path>:
 * <cause>" in *ret_reason. */
static int pem_file_read(const char *what, const char *path, size_t max, char **ret_text,
                         size_t *ret_len, char **ret_reason) {
        int r = read_file_bounded(path, max, ret_text, ret_len);
        if (r < 0)
                return message_set(ret_reason, r, "%s %s: %s", what, path,
                                   r == -EFBIG ? "file too large" : strerror(-r));
        return 0;
}

int signature_keyring_load_dir(const char *dir, struct signature_keyring **ret, char **ret_reason) {
        DIR *d = opendir(dir);
        if (!d) {
                int r = negative_errno();
                return message_set(ret_reason, r, "keyring %s: %s", dir, strerror(-r));
        }
        char *names[SIGNATURE_KEYRING_MAX_FILES];
        size_t n = 0;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' ||
                    !(has_suffix(de->d_name, ".pem") || has_suffix(de->d_name, ".crt")))
                        continue;
                if (n >= SIGNATURE_KEYRING_MAX_FILES) {
                        r = message_set(ret_reason, -E2BIG,
                                       "keyring %s: more than %d certificate files", dir,
                                       SIGNATURE_KEYRING_MAX_FILES);
                        break;
                }
                if (!(names[n] = strdup(de->d_name))) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);
        /* Sorted, so messages and behaviour do not depend on directory order. */
        qsort(names, n, sizeof(char *), name_compare);

        struct signature_keyring *kr = r >= 0 ? signature_keyring_new() : NULL;
        if (r >= 0 && !kr)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                size_t len;
                if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
                        r = -ENOMEM;
                        break;
                }
                r = pem_file_read("keyring", path, SIGNATURE_KEYRING_FILE_MAX_SIZE, &text, &len,
                                  ret_reason);
                if (r < 0)
                        break;
                r = signature_keyring_add(kr, text, len, path, ret_reason);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        if (r >= 0 && kr->count == 0)
                r = message_set(ret_reason, -ENOKEY,
                               "keyring %s: no trust anchors (*.pem or *.crt files)", dir);
        if (r < 0) {
                signature_keyring_free(kr);
                return r;
        }
        *ret = kr;
        return 0;
}

/* ---- the signature file ------------------------------------------------------------ */

struct signature_file {
        int64_t format;
        char *algorithm;
        char *context;
        char *signature;     /* base64 */
        char **certificates; /* base64 DER, NULL-terminated */
};

static void signature_file_free(struct signature_file *f) {
        free(f->algorithm);
        free(f->context);
        free(f->signature);
        if (f->certificates)
                for (size_t i = 0; f->certificates[i]; i++)
                        free(f->certificates[i]);
        free(f->certificates);
}

static int dispatch_format(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (json_is_integer(v) && json_integer_value(v) == 1)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "signature format 1 names no purpose and is no longer "
                                        "accepted: sign again (format %d, docs/security.md)",
                                        SIGNATURE_FORMAT);
        if (!json_is_integer(v) || json_integer_value(v) != SIGNATURE_FORMAT)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unsupported signature format (expected %d)",
                                        SIGNATURE_FORMAT);
        *(int64_t *)dest = SIGNATURE_FORMAT;
        return 0;
}

static int dispatch_algorithm(struct json_ctx *ctx, json_t *v, void *dest,
                              const struct json_field *f) {
        if (!json_is_string(v) || !streq(json_string_value(v), SIGNATURE_ALGORITHM))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unsupported algorithm (expected \"%s\")",
                                        SIGNATURE_ALGORITHM);
        return json_dispatch_string(ctx, v, dest, f);
}

static int dispatch_certificates(struct json_ctx *ctx, json_t *v, void *dest,
                                 const struct json_field *f) {
        char ***certs = dest;
        if (!json_is_array(v) || json_array_size(v) == 0 ||
            json_array_size(v) > SIGNATURE_MAX_CERTS)
                return json_ctx_problem(
                        ctx, JSON_AT_VALUE,
                        "expected an array of 1-%d base64 DER certificates, signer first",
                        SIGNATURE_MAX_CERTS);
        size_t n = json_array_size(v);
        char **list = calloc(n + 1, sizeof(char *));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                if (!json_is_string(e) || json_string_length(e) > CERT_DER_MAX * 4 / 3 + 4) {
                        for (size_t k = 0; k < i; k++)
                                free(list[k]);
                        free(list);
                        json_ctx_push_index(ctx, i);
                        int r = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                 "expected a base64 string of at most %d bytes",
                                                 CERT_DER_MAX * 4 / 3 + 4);
                        json_ctx_pop(ctx);
                        return r;
                }
                list[i] = strdup(json_string_value(e));
                if (!list[i]) {
                        for (size_t k = 0; k < i; k++)
                                free(list[k]);
                        free(list);
                        return -ENOMEM;
                }
        }
        *certs = list;
        return 0;
}

#define SOFF(m) offsetof(struct signature_file, m)

static const struct json_field signature_fields[] = {
        {"format", dispatch_format, SOFF(format), JSON_REQUIRED, NULL, 0, 0},
        {"algorithm", dispatch_algorithm, SOFF(algorithm), JSON_REQUIRED, NULL, 0, 0},
        {"context", json_dispatch_string, SOFF(context), JSON_REQUIRED, NULL, 1, 63},
        {"signature", json_dispatch_string, SOFF(signature), JSON_REQUIRED, NULL, 1, 1024},
        {"certificates", dispatch_certificates, SOFF(certificates), JSON_REQUIRED, NULL, 0, 0},
        {},
};

/* What a parsed signature file holds, decoded. */
struct parsed_signature {
        char context[64];
        unsigned char der[SIGNATURE_DER_MAX];
        size_t der_len;
        mbedtls_x509_crt chain; /* the signer first */
};

static void parsed_signature_done(struct parsed_signature *p) {
        mbedtls_x509_crt_free(&p->chain);
}

static int parse_signature_file(const char *text, size_t len, struct parsed_signature *ret,
                                char **ret_reason) {
        mbedtls_x509_crt_init(&ret->chain);
        if (len > SIGNATURE_MAX_SIZE)
                return message_set(ret_reason, -EBADMSG, "signature file larger than %d bytes",
                                  SIGNATURE_MAX_SIZE);
        struct json_problems *ps = calloc(1, sizeof(*ps));
        if (!ps)
                return -ENOMEM;
        struct signature_file f = {0};
        struct json_ctx ctx = {
                .source = "signature", .text = text, .text_len = len, .problems = ps};
        int r = -EINVAL;
        if (!memchr(text, '\0', len)) {
                json_t *root = json_parse_object(&ctx);
                if (root) {
                        r = json_dispatch_object(&ctx, root, signature_fields, &f);
                        json_decref(root);
                }
        } else
                json_ctx_problem(&ctx, JSON_AT_VALUE, "contains a NUL byte");
        if (r < 0) {
                _cleanup_free_ char *msg =
                        ps->count ? json_problems_to_message(ctx.source, ps) : NULL;
                free(ps);
                signature_file_free(&f);
                if (r == -ENOMEM)
                        return r;
                return message_set(ret_reason, -EBADMSG, "malformed signature file: %s",
                                  msg ? msg : "?");
        }
        free(ps);
        snprintf(ret->context, sizeof(ret->context), "%s", f.context);

        if (mbedtls_base64_decode(ret->der, sizeof(ret->der), &ret->der_len,
                                  (const unsigned char *)f.signature, strlen(f.signature)) != 0) {
                signature_file_free(&f);
                return message_set(ret_reason, -EBADMSG,
                                  "malformed signature file: signature is not valid base64 DER");
        }
        for (size_t i = 0; f.certificates[i]; i++) {
                size_t b64_len = strlen(f.certificates[i]), der_len = 0;
                _cleanup_free_ unsigned char *der = malloc(b64_len / 4 * 3 + 3);
                if (!der) {
                        signature_file_free(&f);
                        return -ENOMEM;
                }
                if (mbedtls_base64_decode(der, b64_len / 4 * 3 + 3, &der_len,
                                          (const unsigned char *)f.certificates[i], b64_len) != 0 ||
                    mbedtls_x509_crt_parse_der(&ret->chain, der, der_len) != 0) {
                        signature_file_free(&f);
                        mbedtls_x509_crt_free(&ret->chain);
                        return message_set(ret_reason, -EBADMSG,
                                          "malformed signature file: certificate %zu is not a "
                                          "base64 DER X.509 certificate",
                                          i);
                }
        }
        signature_file_free(&f);
        /* before anything uses their keys (mbedTLS path validation) */
        for (const mbedtls_x509_crt *c = &ret->chain; c && c->raw.p; c = c->next) {
                _cleanup_free_ char *why = NULL;
                if (check_key_cost(c, &why) < 0) {
                        mbedtls_x509_crt_free(&ret->chain);
                        return message_set(ret_reason, -EBADMSG, "malformed signature file: %s",
                                           why ? why : "a certificate's key is refused");
                }
        }
        return 0;
}

/* ---- verification ------------------------------------------------------------------ */

static time_t x509_time_to_epoch(const mbedtls_x509_time *t) {
        struct tm tm = {
                .tm_year = t->year - 1900,
                .tm_mon = t->mon - 1,
                .tm_mday = t->day,
                .tm_hour = t->hour,
                .tm_min = t->min,
                .tm_sec = t->sec,
        };
        return timegm(&tm);
}

static void format_time(time_t t, char *buf, size_t size) {
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                snprintf(buf, size, "@%lld", (long long)t);
}

static void fill_info(const mbedtls_x509_crt *signer, struct signature_info *info) {
        memset(info, 0, sizeof(*info));
        if (mbedtls_x509_dn_gets(info->signer, sizeof(info->signer), &signer->subject) < 0)
                snprintf(info->signer, sizeof(info->signer), "?");
        if (mbedtls_x509_dn_gets(info->issuer, sizeof(info->issuer), &signer->issuer) < 0)
                snprintf(info->issuer, sizeof(info->issuer), "?");
        info->not_before = x509_time_to_epoch(&signer->valid_from);
        info->not_after = x509_time_to_epoch(&signer->valid_to);
        info->n_certificates = chain_length(signer);
        struct cert_roles cr = cert_roles(signer);
        info->role = cr.n_roles == 1 ? cr.role : SIGNATURE_ROLE_NONE;
        sha256_buffer(signer->pk_raw.p, signer->pk_raw.len, info->key_sha256);
}

struct verify_state {
        time_t now;
        /* The first certificate found outside its validity period (depth 0 = signer). */
        bool time_bad;
        bool expired;
        int depth;
        char subject[256];
        time_t when;
        bool now_is_lower_bound; /* "not yet valid" is not judged */
        const struct signature_keyring *kr;
        bool revoked; /* a certificate on the path holds a revoked key */
        char revoked_subject[256];
};

static int verify_callback(void *userdata, mbedtls_x509_crt *crt, int depth, uint32_t *flags) {
        struct verify_state *st = userdata;
        /* mbedtls checks validity against the system clock; we check against "now". */
        *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
        if (keyring_revokes(st->kr, crt)) {
                *flags |= MBEDTLS_X509_BADCERT_REVOKED;
                if (!st->revoked &&
                    mbedtls_x509_dn_gets(st->revoked_subject, sizeof(st->revoked_subject),
                                         &crt->subject) < 0)
                        snprintf(st->revoked_subject, sizeof(st->revoked_subject), "?");
                st->revoked = true;
        }
        if (st->now == SIGNATURE_NOW_UNKNOWN)
                return 0;
        time_t from = x509_time_to_epoch(&crt->valid_from), to = x509_time_to_epoch(&crt->valid_to);
        uint32_t bad = 0;
        if (st->now > to)
                bad = MBEDTLS_X509_BADCERT_EXPIRED;
        else if (st->now < from && !st->now_is_lower_bound)
                bad = MBEDTLS_X509_BADCERT_FUTURE;
        if (bad) {
                *flags |= bad;
                /* mbedtls calls from the root down: report the certificate nearest the signer. */
                if (!st->time_bad || depth < st->depth) {
                        st->time_bad = true;
                        st->expired = bad == MBEDTLS_X509_BADCERT_EXPIRED;
                        st->depth = depth;
                        st->when = st->expired ? to : from;
                        if (mbedtls_x509_dn_gets(st->subject, sizeof(st->subject), &crt->subject) <
                            0)
                                snprintf(st->subject, sizeof(st->subject), "?");
                }
        }
        return 0;
}

static const mbedtls_x509_crt_profile verify_profile = {
        .allowed_mds = MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) |
                       MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
                       MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
        .allowed_pks = MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECKEY) |
                       MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECDSA) |
                       MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_RSA),
        .allowed_curves = MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1) |
                          MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP384R1),
        .rsa_min_bitlen = 2048,
};

static bool key_is_p256(const mbedtls_pk_context *pk) {
        if (!mbedtls_pk_can_do(pk, MBEDTLS_PK_ECDSA))
                return false;
        return mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

int signature_describe(const char *sig_text, size_t sig_len, struct signature_info *ret_info,
                       char **ret_reason) {
        struct parsed_signature p;
        int r = parse_signature_file(sig_text, sig_len, &p, ret_reason);
        if (r < 0)
                return r;
        fill_info(&p.chain, ret_info);
        snprintf(ret_info->context, sizeof(ret_info->context), "%s", p.context);
        parsed_signature_done(&p);
        return 0;
}

static int verify(enum signature_purpose purpose, const void *data, size_t len, const char *sig_text, size_t sig_len,
                  const struct signature_keyring *kr, time_t now, bool now_is_lower_bound,
                  struct signature_info *ret_info, char **ret_reason) {
        struct parsed_signature p;
        int r = parse_signature_file(sig_text, sig_len, &p, ret_reason);
        if (r < 0)
                return r;
        mbedtls_x509_crt *signer = &p.chain;
        struct signature_info info;
        fill_info(signer, &info);
        snprintf(info.context, sizeof(info.context), "%s", p.context);

        if (!streq(p.context, signature_purpose_context(purpose))) {
                r = message_set(ret_reason, -EKEYREJECTED,
                                "signed as \"%s\", not as \"%s\": a signature is good for one "
                                "purpose only",
                                p.context, signature_purpose_context(purpose));
                goto done;
        }

        if (!key_is_p256(&signer->pk)) {
                r = message_set(ret_reason, -EKEYREJECTED,
                               "signer \"%s\" does not hold an EC P-256 key", info.signer);
                goto done;
        }
        if (mbedtls_x509_crt_check_key_usage(signer, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0) {
                r = message_set(ret_reason, -EKEYREJECTED,
                               "signer \"%s\": key usage does not allow digitalSignature",
                               info.signer);
                goto done;
        }
        r = check_role(signer, info.signer, purpose, ret_reason);
        if (r < 0)
                goto done;
        if (!kr || kr->count == 0) {
                r = message_set(ret_reason, -EKEYREJECTED,
                               "no trust anchors to verify \"%s\" against", info.signer);
                goto done;
        }

        struct verify_state st = {.now = now, .now_is_lower_bound = now_is_lower_bound, .kr = kr};
        uint32_t flags = 0;
        /* mbedtls does not modify the anchors; its API just is not const. */
        int vr = mbedtls_x509_crt_verify_with_profile(signer, (mbedtls_x509_crt *)&kr->anchors,
                                                      NULL, &verify_profile, NULL, &flags,
                                                      verify_callback, &st);
        if (vr != 0 || flags != 0) {
                char when[64];
                format_time(st.when, when, sizeof(when));
                if (st.revoked)
                        r = message_set(ret_reason, -EKEYREVOKED,
                                        "%s certificate \"%s\" holds a revoked key (trust "
                                        "document)",
                                        streq(st.revoked_subject, info.signer) ? "signer" : "chain",
                                        st.revoked_subject);
                else if (st.time_bad && !(flags & ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED |
                                                         MBEDTLS_X509_BADCERT_FUTURE)))
                        r = message_set(ret_reason, -EKEYEXPIRED, "%s certificate \"%s\" %s %s",
                                       st.depth == 0 ? "signer" : "chain", st.subject,
                                       st.expired ? "expired on" : "is not valid before", when);
                else if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
                        r = message_set(ret_reason, -EKEYREJECTED,
                                       "signer \"%s\" (issued by \"%s\") does not chain to a trust "
                                       "anchor in the keyring",
                                       info.signer, info.issuer);
                else {
                        char buf[512];
                        if (flags) {
                                int n = mbedtls_x509_crt_verify_info(buf, sizeof(buf), "", flags);
                                /* one line: the info is newline-separated */
                                for (int i = 0; i < n && buf[i]; i++)
                                        if (buf[i] == '\n')
                                                buf[i] = (i == n - 1) ? '\0' : ';';
                        } else
                                mbedtls_reason(vr, buf, sizeof(buf));
                        r = message_set(ret_reason, -EKEYREJECTED,
                                       "certificate chain of \"%s\" rejected: %s", info.signer,
                                       buf);
                }
                goto done;
        }

        uint8_t digest[SHA256_DIGEST_SIZE];
        signed_digest(purpose, data, len, digest);
        if (mbedtls_pk_verify(&signer->pk, MBEDTLS_MD_SHA256, digest, sizeof(digest), p.der,
                              p.der_len) != 0) {
                r = message_set(ret_reason, -EBADMSG,
                                "bad signature: the %s was not signed by \"%s\" (tampered with?)",
                                purpose == SIGNATURE_FOR_BUNDLE ? "manifest"
                                                                : signature_purpose_context(purpose),
                                info.signer);
                goto done;
        }
        if (ret_info)
                *ret_info = info;
        r = 0;
done:
        parsed_signature_done(&p);
        return r;
}

int signature_verify(enum signature_purpose purpose, const void *data, size_t len,
                     const char *sig_text, size_t sig_len, const struct signature_keyring *kr,
                     time_t now, struct signature_info *ret_info, char **ret_reason) {
        return verify(purpose, data, len, sig_text, sig_len, kr, now, false, ret_info, ret_reason);
}

int signature_verify_at_least(enum signature_purpose purpose, const void *data, size_t len,
                              const char *sig_text, size_t sig_len,
                              const struct signature_keyring *kr, time_t now,
                              struct signature_info *ret_info, char **ret_reason) {
        return verify(purpose, data, len, sig_text, sig_len, kr, now, true, ret_info, ret_reason);
}

/* ---- signing and keys -------------------------------------------------------------- */

struct rng {
        mbedtls_entropy_context entropy;
        mbedtls_ctr_drbg_context drbg;
};

static int rng_init(struct rng *g) {
        static const char personalization[] = "orbit-bundle";
        mbedtls_entropy_init(&g->entropy);
        mbedtls_ctr_drbg_init(&g->drbg);
        if (mbedtls_ctr_drbg_seed(&g->drbg, mbedtls_entropy_func, &g->entropy,
                                  (const unsigned char *)personalization,
                                  sizeof(personalization) - 1) != 0)
                return -EIO;
        return 0;
}

static void rng_done(struct rng *g) {
        mbedtls_ctr_drbg_free(&g->drbg);
        mbedtls_entropy_free(&g->entropy);
}

static int load_key(const char *path, mbedtls_pk_context *key, char **ret_reason) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = pem_file_read("key", path, SIGNATURE_KEY_FILE_MAX_SIZE, &text, &len, ret_reason);
        if (r < 0)
                return r;
        /* PEM needs the terminating NUL counted; DER must not have it. */
        size_t parse_len = memmem(text, len, "-----BEGIN", 10) ? len + 1 : len;
        r = mbedtls_pk_parse_key(key, (const unsigned char *)text, parse_len, NULL, 0);
        explicit_bzero(text, len);
        if (r != 0) {
                char buf[128];
                return message_set(ret_reason, -EINVAL,
                                  "key %s: cannot parse (encrypted keys are not supported): %s",
                                  path, mbedtls_reason(r, buf, sizeof(buf)));
        }
        return 0;
}

static int load_certificates(const char *path, mbedtls_x509_crt *chain, char **ret_reason) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = pem_file_read("certificate", path, SIGNATURE_KEYRING_FILE_MAX_SIZE, &text, &len,
                              ret_reason);
        if (r < 0)
                return r;
        r = parse_certificates(chain, text, len);
        if (r == -ENOMEM)
                return r;
        if (r != 0 || chain_length(chain) == 0) {
                char buf[128];
                return message_set(ret_reason, -EINVAL, "certificate %s: cannot parse: %s", path,
                                  r < 0 ? mbedtls_reason(r, buf, sizeof(buf))
                                        : "some blocks are bad");
        }
        return 0;
}

static char *base64_encode(const unsigned char *data, size_t len);

/* A new JSON string of the base64 of data; NULL on allocation failure. */
static json_t *base64_string(const unsigned char *data, size_t len) {
        char *b64 = base64_encode(data, len);
        json_t *s = b64 ? json_string(b64) : NULL;
        free(b64);
        return s;
}

static char *base64_encode(const unsigned char *data, size_t len) {
        size_t out_len = 0, size = (len + 2) / 3 * 4 + 1;
        char *out = malloc(size);
        if (!out)
                return NULL;
        if (mbedtls_base64_encode((unsigned char *)out, size, &out_len, data, len) != 0) {
                free(out);
                return NULL;
        }
        out[out_len] = '\0';
        return out;
}

int signature_sign(enum signature_purpose purpose, const void *data, size_t len,
                   const char *key_path, const char *cert_path, char **ret_text, size_t *ret_len,
                   char **ret_reason) {
        struct rng g;
        mbedtls_pk_context key;
        mbedtls_x509_crt chain;
        mbedtls_pk_init(&key);
        mbedtls_x509_crt_init(&chain);
        json_t *root = NULL, *certs = NULL;
        char *sig_b64 = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        unsigned char der[MBEDTLS_ECDSA_MAX_LEN];
        size_t der_len = 0;

        int r = rng_init(&g);
        if (r < 0) {
                r = message_set(ret_reason, r, "cannot seed the random generator");
                goto done;
        }
        r = load_key(key_path, &key, ret_reason);
        if (r < 0)
                goto done;
        r = load_certificates(cert_path, &chain, ret_reason);
        if (r < 0)
                goto done;
        if (!key_is_p256(&key)) {
                r = message_set(ret_reason, -EINVAL, "key %s is not an EC P-256 key", key_path);
                goto done;
        }
        if (chain_length(&chain) > SIGNATURE_MAX_CERTS) {
                r = message_set(ret_reason, -EINVAL, "certificate %s: more than %d certificates",
                               cert_path, SIGNATURE_MAX_CERTS);
                goto done;
        }
        if (mbedtls_pk_check_pair(&chain.pk, &key) != 0) {
                r = message_set(ret_reason, -EINVAL,
                               "key %s does not match the first certificate in %s", key_path,
                               cert_path);
                goto done;
        }
        r = check_role(&chain, cert_path, purpose, ret_reason);
        if (r < 0) {
                r = -EINVAL;
                goto done;
        }

        signed_digest(purpose, data, len, digest);
        if (mbedtls_pk_sign(&key, MBEDTLS_MD_SHA256, digest, sizeof(digest), der, &der_len,
                            mbedtls_ctr_drbg_random, &g.drbg) != 0) {
                r = message_set(ret_reason, -EIO, "signing with %s failed", key_path);
                goto done;
        }

        r = -ENOMEM;
        sig_b64 = base64_encode(der, der_len);
        certs = json_array();
        if (!sig_b64 || !certs)
                goto done;
        for (mbedtls_x509_crt *c = &chain; c && c->raw.p; c = c->next)
                if (json_array_append_new(certs, base64_string(c->raw.p, c->raw.len)) < 0)
                        goto done;
        root = json_pack("{s:i, s:s, s:s, s:s, s:O}", "format", SIGNATURE_FORMAT, "algorithm",
                         SIGNATURE_ALGORITHM, "context", signature_purpose_context(purpose),
                         "signature", sig_b64, "certificates", certs);
        if (!root)
                goto done;
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                goto done;
        *ret_text = text;
        if (ret_len)
                *ret_len = strlen(text);
        r = 0;
done:
        free(sig_b64);
        json_decref(certs);
        json_decref(root);
        mbedtls_x509_crt_free(&chain);
        mbedtls_pk_free(&key);
        rng_done(&g);
        return r;
}

/* The extended key usage extension holding one role OID: SEQUENCE { OID }. */
static int set_role(mbedtls_x509write_cert *w, enum signature_role role) {
        unsigned char eku[4 + ROLE_OID_LEN] = {0x30, 2 + ROLE_OID_LEN, 0x06, ROLE_OID_LEN};
        memcpy(eku + 4, ROLE_OID_ARC_DER, ROLE_OID_LEN - 1);
        eku[4 + ROLE_OID_LEN - 1] = (unsigned char)role;
        return mbedtls_x509write_crt_set_extension(w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                                   0, eku, sizeof(eku));
}

static int format_x509_time(time_t t, char out[16]) {
        struct tm tm;
        if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1950)
                return -ERANGE;
        return strftime(out, 16, "%Y%m%d%H%M%S", &tm) == 14 ? 0 : -ERANGE;
}

static int write_pem(const char *path, const unsigned char *pem, mode_t mode, char **ret_reason) {
        int r = write_file_durable(path, pem, strlen((const char *)pem), mode);
        if (r < 0)
                return message_set(ret_reason, r, "cannot write %s: %s", path, strerror(-r));
        return 0;
}

int signature_keygen(const struct signature_keygen_options *o, const char *key_path,
                     const char *cert_path, char **ret_reason) {
        struct rng g;
        mbedtls_pk_context key, issuer_key_storage;
        mbedtls_x509_crt issuer_cert;
        mbedtls_x509write_cert w;
        mbedtls_mpi serial;
        mbedtls_pk_init(&key);
        mbedtls_pk_init(&issuer_key_storage);
        mbedtls_x509_crt_init(&issuer_cert);
        mbedtls_x509write_crt_init(&w);
        mbedtls_mpi_init(&serial);
        unsigned char *buf = NULL;
        int r;

        if (!o->subject || o->days == 0 || o->days > 100 * 366 ||
            !!o->issuer_key_path != !!o->issuer_cert_path) {
                r = message_set(ret_reason, -EINVAL,
                               "keygen: need a subject, 1-36600 days, and issuer key and "
                               "certificate together");
                goto init_failed;
        }
        if (o->ca ? o->role != SIGNATURE_ROLE_NONE
                  : (o->role <= SIGNATURE_ROLE_NONE || o->role >= _SIGNATURE_ROLE_MAX)) {
                r = message_set(ret_reason, -EINVAL,
                                o->ca ? "keygen: a CA holds no role (its signers do)"
                                      : "keygen: a signer needs a role: release, command or root");
                goto init_failed;
        }
        r = rng_init(&g);
        if (r < 0) {
                r = message_set(ret_reason, r, "cannot seed the random generator");
                goto done;
        }

        if (mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
            mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key),
                                mbedtls_ctr_drbg_random, &g.drbg) != 0) {
                r = message_set(ret_reason, -EIO, "cannot generate a P-256 key");
                goto done;
        }

        mbedtls_pk_context *issuer_key = &key;
        char issuer_name[512];
        snprintf(issuer_name, sizeof(issuer_name), "%s", o->subject);
        if (o->issuer_key_path) {
                r = load_key(o->issuer_key_path, &issuer_key_storage, ret_reason);
                if (r < 0)
                        goto done;
                r = load_certificates(o->issuer_cert_path, &issuer_cert, ret_reason);
                if (r < 0)
                        goto done;
                if (mbedtls_pk_check_pair(&issuer_cert.pk, &issuer_key_storage) != 0) {
                        r = message_set(ret_reason, -EINVAL, "issuer key %s does not match %s",
                                       o->issuer_key_path, o->issuer_cert_path);
                        goto done;
                }
                if (mbedtls_x509_dn_gets(issuer_name, sizeof(issuer_name), &issuer_cert.subject) <
                    0) {
                        r = message_set(ret_reason, -EINVAL, "issuer %s: subject too long",
                                       o->issuer_cert_path);
                        goto done;
                }
                issuer_key = &issuer_key_storage;
        }

        time_t from = o->not_before ? o->not_before : time(NULL);
        char not_before[16], not_after[16];
        if (format_x509_time(from, not_before) < 0 ||
            format_x509_time(from + (time_t)o->days * 86400, not_after) < 0) {
                r = message_set(ret_reason, -ERANGE, "keygen: validity outside the years 1950-9999");
                goto done;
        }

        unsigned char serial_bytes[16];
        if (mbedtls_ctr_drbg_random(&g.drbg, serial_bytes, sizeof(serial_bytes)) != 0) {
                r = message_set(ret_reason, -EIO, "cannot make a serial number");
                goto done;
        }
        serial_bytes[0] = (unsigned char)((serial_bytes[0] & 0x7f) | 0x01); /* positive, 16 bytes */

        mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
        mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
        mbedtls_x509write_crt_set_subject_key(&w, &key);
        mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
        unsigned usage = o->ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                               : MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
        if (mbedtls_mpi_read_binary(&serial, serial_bytes, sizeof(serial_bytes)) != 0 ||
            mbedtls_x509write_crt_set_serial(&w, &serial) != 0 ||
            mbedtls_x509write_crt_set_validity(&w, not_before, not_after) != 0 ||
            mbedtls_x509write_crt_set_basic_constraints(&w, o->ca ? 1 : 0, o->ca ? 1 : -1) != 0 ||
            mbedtls_x509write_crt_set_subject_key_identifier(&w) != 0 ||
            mbedtls_x509write_crt_set_authority_key_identifier(&w) != 0 ||
            mbedtls_x509write_crt_set_key_usage(&w, usage) != 0 ||
            (!o->ca && set_role(&w, o->role) != 0)) {
                r = message_set(ret_reason, -EINVAL, "keygen: cannot set the certificate fields");
                goto done;
        }
        if (mbedtls_x509write_crt_set_subject_name(&w, o->subject) != 0) {
                r = message_set(ret_reason, -EINVAL,
                               "keygen: \"%s\" is not a distinguished name (CN=...,O=...)",
                               o->subject);
                goto done;
        }
        if (mbedtls_x509write_crt_set_issuer_name(&w, issuer_name) != 0) {
                r = message_set(ret_reason, -EINVAL, "keygen: issuer name \"%s\" cannot be used",
                               issuer_name);
                goto done;
        }

        const size_t size = 8192;
        buf = calloc(1, size);
        if (!buf) {
                r = -ENOMEM;
                goto done;
        }
        if (mbedtls_pk_write_key_pem(&key, buf, size) != 0) {
                r = message_set(ret_reason, -EIO, "keygen: cannot encode the key");
                goto done;
        }
        r = write_pem(key_path, buf, 0600, ret_reason);
        explicit_bzero(buf, size);
        if (r < 0)
                goto done;
        if (mbedtls_x509write_crt_pem(&w, buf, size, mbedtls_ctr_drbg_random, &g.drbg) != 0) {
                r = message_set(ret_reason, -EIO, "keygen: cannot sign the certificate");
                goto done;
        }
        r = write_pem(cert_path, buf, 0644, ret_reason);
done:
        rng_done(&g);
init_failed:
        free(buf);
        mbedtls_mpi_free(&serial);
        mbedtls_x509write_crt_free(&w);
        mbedtls_x509_crt_free(&issuer_cert);
        mbedtls_pk_free(&issuer_key_storage);
        mbedtls_pk_free(&key);
        return r;
}
