/*
 * Unit tests for key roles, signature purposes, revocation (update/signature.c) and the
 * trust document (update/trust.c): every cross-role attempt refused, whether made by the
 * tools (which refuse to sign outside a key's role) or forged by hand; k-of-n root
 * signatures, versions, root rotation, expiry, a time-floor reset, revocations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/sha256.h"
#include "update/signature.h"
#include "update/trust.h"
#include "test-util.h"

static char *dir;
static time_t T;

static char *path(const char *name) {
        static char buf[8][PATH_MAX];
        static int i;
        i = (i + 1) % 8;
        test_path(buf[i], sizeof(buf[i]), dir, name);
        return buf[i];
}

static void keygen(const char *name, const char *subject, bool ca, enum signature_role role,
                   const char *issuer, time_t not_before, unsigned days) {
        char k[PATH_MAX], c[PATH_MAX], ik[PATH_MAX], ic[PATH_MAX];
        snprintf(k, sizeof(k), "%s/%s.key", dir, name);
        snprintf(c, sizeof(c), "%s/%s.pem", dir, name);
        if (issuer) {
                snprintf(ik, sizeof(ik), "%s/%s.key", dir, issuer);
                snprintf(ic, sizeof(ic), "%s/%s.pem", dir, issuer);
        }
        struct signature_keygen_options o = {.subject = subject,
                                             .ca = ca,
                                             .role = role,
                                             .issuer_key_path = issuer ? ik : NULL,
                                             .issuer_cert_path = issuer ? ic : NULL,
                                             .not_before = not_before ? not_before : T - 86400,
                                             .days = days ? days : 365};
        _cleanup_free_ char *reason = NULL;
        int r = signature_keygen(&o, k, c, &reason);
        if (r < 0)
                fprintf(stderr, "keygen %s: %s\n", name, reason);
        assert_int_equal(r, 0);
}

static char *slurp(const char *p, size_t *len) {
        char *text = NULL;
        size_t l = 0;
        assert_int_equal(read_file_bounded(p, 1 << 20, &text, &l), 0);
        if (len)
                *len = l;
        return text;
}

static struct signature_keyring *keyring_of(const char *name) {
        struct signature_keyring *kr = signature_keyring_new();
        size_t len;
        _cleanup_free_ char *text = slurp(path(name), &len);
        assert_int_equal(signature_keyring_add(kr, text, len, name, NULL), 0);
        return kr;
}

static char *sign(enum signature_purpose p, const char *data, const char *key) {
        char k[PATH_MAX], c[PATH_MAX];
        snprintf(k, sizeof(k), "%s/%s.key", dir, key);
        snprintf(c, sizeof(c), "%s/%s.pem", dir, key);
        char *sig = NULL, *reason = NULL;
        size_t len;
        int r = signature_sign(p, data, strlen(data), k, c, &sig, &len, &reason);
        if (r < 0)
                fprintf(stderr, "sign with %s: %s\n", key, reason);
        free(reason);
        assert_int_equal(r, 0);
        return sig;
}

/* What an attacker holding a key could make by hand: any context, any certificate. */
static char *forge(const char *context, const char *data, const char *key, const char *cert) {
        mbedtls_pk_context pk;
        mbedtls_x509_crt crt;
        mbedtls_entropy_context ent;
        mbedtls_ctr_drbg_context drbg;
        mbedtls_pk_init(&pk);
        mbedtls_x509_crt_init(&crt);
        mbedtls_entropy_init(&ent);
        mbedtls_ctr_drbg_init(&drbg);
        assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
        assert_int_equal(mbedtls_pk_parse_keyfile(&pk, key, NULL), 0);
        assert_int_equal(mbedtls_x509_crt_parse_file(&crt, cert), 0);
        struct sha256_ctx c;
        uint8_t d[32];
        sha256_init(&c);
        sha256_update(&c, "orbit-signature", 16);
        sha256_update(&c, context, strlen(context) + 1);
        sha256_update(&c, data, strlen(data));
        sha256_final(&c, d);
        unsigned char der[MBEDTLS_ECDSA_MAX_LEN], b64[256], cb64[8192];
        size_t der_len, b64_len, cb64_len;
        assert_int_equal(mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, d, 32, der, &der_len,
                                         mbedtls_ctr_drbg_random, &drbg),
                         0);
        assert_int_equal(mbedtls_base64_encode(b64, sizeof(b64), &b64_len, der, der_len), 0);
        assert_int_equal(
                mbedtls_base64_encode(cb64, sizeof(cb64), &cb64_len, crt.raw.p, crt.raw.len), 0);
        json_t *j = json_pack("{s:i, s:s, s:s, s:s#, s:[s#]}", "format", 2, "algorithm",
                              SIGNATURE_ALGORITHM, "context", context, "signature", b64, b64_len,
                              "certificates", cb64, cb64_len);
        char *text = json_dumps(j, 0);
        json_decref(j);
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&ent);
        mbedtls_x509_crt_free(&crt);
        mbedtls_pk_free(&pk);
        return text;
}

/* A self-signed certificate with a hand-made extended key usage (DER of the extension). */
static void cert_with_eku(const char *name, const unsigned char *eku, size_t eku_len) {
        mbedtls_pk_context pk;
        mbedtls_x509write_cert w;
        mbedtls_entropy_context ent;
        mbedtls_ctr_drbg_context drbg;
        mbedtls_mpi serial;
        mbedtls_pk_init(&pk);
        mbedtls_x509write_crt_init(&w);
        mbedtls_entropy_init(&ent);
        mbedtls_ctr_drbg_init(&drbg);
        mbedtls_mpi_init(&serial);
        assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
        assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
        assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk),
                                             mbedtls_ctr_drbg_random, &drbg),
                         0);
        mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
        mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
        mbedtls_x509write_crt_set_subject_key(&w, &pk);
        mbedtls_x509write_crt_set_issuer_key(&w, &pk);
        mbedtls_mpi_lset(&serial, 7);
        assert_int_equal(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
        assert_int_equal(mbedtls_x509write_crt_set_validity(&w, "20200101000000", "20991231000000"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w, "CN=two hats"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w, "CN=two hats"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_extension(
                                 &w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, eku, eku_len),
                         0);
        unsigned char buf[4096];
        assert_int_equal(mbedtls_pk_write_key_pem(&pk, buf, sizeof(buf)), 0);
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s.key", dir, name);
        assert_int_equal(write_file_durable(p, buf, strlen((char *)buf), 0600), 0);
        assert_int_equal(mbedtls_x509write_crt_pem(&w, buf, sizeof(buf), mbedtls_ctr_drbg_random,
                                                   &drbg),
                         0);
        snprintf(p, sizeof(p), "%s/%s.pem", dir, name);
        assert_int_equal(write_file_durable(p, buf, strlen((char *)buf), 0644), 0);
        mbedtls_mpi_free(&serial);
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&ent);
        mbedtls_x509write_crt_free(&w);
        mbedtls_pk_free(&pk);
}

#define ROLE_ARC "\x69\x88\xbb\x82\xe9\xae\xeb\xa2\xa4\xe3\xb0\xb8\xd4\x96\x8e\x92\x98\xab\x4c"

static int setup(void **state) {
        (void)state;
        T = time(NULL);
        dir = test_mkdtemp();
        assert_non_null(dir);
        keygen("rel-ca", "CN=release CA", true, SIGNATURE_ROLE_NONE, NULL, 0, 0);
        keygen("rel", "CN=release signer", false, SIGNATURE_ROLE_RELEASE, "rel-ca", 0, 0);
        keygen("cmd-ca", "CN=command CA", true, SIGNATURE_ROLE_NONE, NULL, 0, 0);
        keygen("cmd", "CN=command signer", false, SIGNATURE_ROLE_COMMAND, "cmd-ca", 0, 0);
        keygen("cmd2", "CN=command signer 2", false, SIGNATURE_ROLE_COMMAND, "cmd-ca", 0, 0);
        for (int i = 1; i <= 4; i++) {
                char n[16], s[32];
                snprintf(n, sizeof(n), "root%d", i);
                snprintf(s, sizeof(s), "CN=root %d", i);
                keygen(n, s, false, SIGNATURE_ROLE_ROOT, NULL, 0, 3650);
        }
        /* a release signer issued by the command CA: same CA, the wrong role for commands */
        keygen("rel-by-cmd-ca", "CN=release signer under the command CA", false,
               SIGNATURE_ROLE_RELEASE, "cmd-ca", 0, 0);
        /* two roles at once; a role and a TLS usage */
        unsigned char two[46] = {0x30, 44, 0x06, 20}, tls[34] = {0x30, 32, 0x06, 20};
        memcpy(two + 4, ROLE_ARC "\x01", 20);
        memcpy(two + 24, "\x06\x14" ROLE_ARC "\x02", 22);
        memcpy(tls + 4, ROLE_ARC "\x02", 20);
        memcpy(tls + 24, "\x06\x08\x2b\x06\x01\x05\x05\x07\x03\x02", 10);
        cert_with_eku("two-roles", two, sizeof(two));
        cert_with_eku("cmd-and-tls", tls, sizeof(tls));
        return 0;
}

static int teardown(void **state) {
        (void)state;
        test_rmdir(dir);
        return 0;
}

/* ---- key roles ------------------------------------------------------------------------ */

static void test_keygen_needs_a_role(void **state) {
        (void)state;
        struct signature_keygen_options o = {.subject = "CN=x", .days = 1};
        _cleanup_free_ char *why = NULL, *why2 = NULL;
        assert_int_equal(signature_keygen(&o, path("x.key"), path("x.pem"), &why), -EINVAL);
        assert_non_null(strstr(why, "needs a role"));
        o.ca = true;
        o.role = SIGNATURE_ROLE_COMMAND;
        assert_int_equal(signature_keygen(&o, path("x.key"), path("x.pem"), &why2), -EINVAL);
        assert_non_null(strstr(why2, "a CA holds no role"));
}

/* Each tool refuses to sign outside the key's role. */
static void test_sign_only_in_role(void **state) {
        (void)state;
        static const struct {
                const char *key;
                enum signature_role role;
        } keys[] = {{"rel", SIGNATURE_ROLE_RELEASE},
                    {"cmd", SIGNATURE_ROLE_COMMAND},
                    {"root1", SIGNATURE_ROLE_ROOT},
                    {"rel-ca", SIGNATURE_ROLE_NONE}};
        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                for (int p = 0; p < _SIGNATURE_FOR_MAX; p++) {
                        char *sig = NULL, *why = NULL;
                        size_t len;
                        char kp[PATH_MAX], cp[PATH_MAX];
                        snprintf(kp, sizeof(kp), "%s/%s.key", dir, keys[k].key);
                        snprintf(cp, sizeof(cp), "%s/%s.pem", dir, keys[k].key);
                        int r = signature_sign((enum signature_purpose)p, "data", 4, kp, cp, &sig,
                                               &len, &why);
                        bool want = signature_purpose_role((enum signature_purpose)p) == keys[k].role;
                        if ((r == 0) != want)
                                fail_msg("%s signing \"%s\": %d (%s)", keys[k].key,
                                         signature_purpose_context((enum signature_purpose)p), r,
                                         why ? why : "");
                        if (!want)
                                assert_non_null(strstr(why, "not a"));
                        free(sig);
                        free(why);
                }
}

static void expect_refused(enum signature_purpose p, const char *data, const char *sig,
                           const char *keyring, int want_r, const char *want) {
        _cleanup_keyring_ struct signature_keyring *kr = keyring_of(keyring);
        _cleanup_free_ char *why = NULL;
        int r = signature_verify(p, data, strlen(data), sig, strlen(sig), kr, T, NULL, &why);
        if (r != want_r || !why || !strstr(why, want))
                fail_msg("expected %d \"%s\", got %d \"%s\"", want_r, want, r, why ? why : "");
}

static void test_cross_role_refused(void **state) {
        (void)state;
        const char *data = "{\"payload\": 1}";
        /* genuine signatures, presented for another purpose */
        _cleanup_free_ char *cmd_sig = sign(SIGNATURE_FOR_COMMAND, data, "cmd");
        _cleanup_free_ char *rel_sig = sign(SIGNATURE_FOR_BUNDLE, data, "rel");
        _cleanup_free_ char *rb_sig = sign(SIGNATURE_FOR_ROLLBACK, data, "rel");
        _cleanup_free_ char *root_sig = sign(SIGNATURE_FOR_TRUST, data, "root1");
        _cleanup_keyring_ struct signature_keyring *ok = keyring_of("cmd-ca.pem");
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, data, strlen(data), cmd_sig,
                                          strlen(cmd_sig), ok, T, NULL, NULL),
                         0);
        expect_refused(SIGNATURE_FOR_BUNDLE, data, cmd_sig, "cmd-ca.pem", -EKEYREJECTED,
                       "signed as \"orbit command\", not as \"orbit bundle manifest\"");
        expect_refused(SIGNATURE_FOR_COMMAND, data, rel_sig, "rel-ca.pem", -EKEYREJECTED,
                       "signed as \"orbit bundle manifest\"");
        expect_refused(SIGNATURE_FOR_BUNDLE, data, rb_sig, "rel-ca.pem", -EKEYREJECTED,
                       "signed as \"orbit rollback authorization\"");
        expect_refused(SIGNATURE_FOR_COMMAND, data, root_sig, "root1.pem", -EKEYREJECTED,
                       "signed as \"orbit trust document\"");
        /* forged by a key holder: the right context, the wrong role */
        char k[PATH_MAX], c[PATH_MAX];
        snprintf(k, sizeof(k), "%s/cmd.key", dir);
        snprintf(c, sizeof(c), "%s/cmd.pem", dir);
        _cleanup_free_ char *f1 = forge("orbit bundle manifest", data, k, c);
        expect_refused(SIGNATURE_FOR_BUNDLE, data, f1, "cmd-ca.pem", -EKEYREJECTED,
                       "is a command, not a release signer");
        _cleanup_free_ char *f2 = forge("orbit trust document", data, k, c);
        expect_refused(SIGNATURE_FOR_TRUST, data, f2, "cmd-ca.pem", -EKEYREJECTED,
                       "is a command, not a root signer");
        snprintf(k, sizeof(k), "%s/rel-by-cmd-ca.key", dir);
        snprintf(c, sizeof(c), "%s/rel-by-cmd-ca.pem", dir);
        _cleanup_free_ char *f3 = forge("orbit command", data, k, c);
        expect_refused(SIGNATURE_FOR_COMMAND, data, f3, "cmd-ca.pem", -EKEYREJECTED,
                       "is a release, not a command signer");
        snprintf(k, sizeof(k), "%s/root1.key", dir);
        snprintf(c, sizeof(c), "%s/root1.pem", dir);
        _cleanup_free_ char *f4 = forge("orbit command", data, k, c);
        expect_refused(SIGNATURE_FOR_COMMAND, data, f4, "root1.pem", -EKEYREJECTED,
                       "is a root, not a command signer");
        /* a context the verifier does not expect, even with the right role */
        snprintf(k, sizeof(k), "%s/cmd.key", dir);
        snprintf(c, sizeof(c), "%s/cmd.pem", dir);
        _cleanup_free_ char *f5 = forge("orbit something", data, k, c);
        expect_refused(SIGNATURE_FOR_COMMAND, data, f5, "cmd-ca.pem", -EKEYREJECTED,
                       "signed as \"orbit something\"");
        /* the right context and role, but signed over another context's bytes */
        _cleanup_free_ char *f6 = forge("orbit command", data, k, c);
        json_t *j = json_loads(f6, 0, NULL);
        json_object_set_new(j, "context", json_string("orbit bundle manifest"));
        _cleanup_free_ char *f6b = json_dumps(j, 0);
        json_decref(j);
        expect_refused(SIGNATURE_FOR_BUNDLE, data, f6b, "cmd-ca.pem", -EKEYREJECTED,
                       "is a command, not a release signer");
        /* two roles, or a role and TLS */
        snprintf(k, sizeof(k), "%s/two-roles.key", dir);
        snprintf(c, sizeof(c), "%s/two-roles.pem", dir);
        _cleanup_free_ char *f7 = forge("orbit bundle manifest", data, k, c);
        expect_refused(SIGNATURE_FOR_BUNDLE, data, f7, "two-roles.pem", -EKEYREJECTED,
                       "holds 2 roles: one key, one role");
        snprintf(k, sizeof(k), "%s/cmd-and-tls.key", dir);
        snprintf(c, sizeof(c), "%s/cmd-and-tls.pem", dir);
        _cleanup_free_ char *f8 = forge("orbit command", data, k, c);
        expect_refused(SIGNATURE_FOR_COMMAND, data, f8, "cmd-and-tls.pem", -EKEYREJECTED,
                       "is also a TLS");
        /* the tool refuses those keys too */
        char *sig = NULL, *why = NULL;
        size_t len;
        assert_int_equal(signature_sign(SIGNATURE_FOR_COMMAND, data, strlen(data), k, c, &sig,
                                        &len, &why),
                         -EINVAL);
        free(why);
}

static void test_format_1_refused(void **state) {
        (void)state;
        _cleanup_free_ char *sig = sign(SIGNATURE_FOR_COMMAND, "x", "cmd");
        json_t *j = json_loads(sig, 0, NULL);
        json_object_set_new(j, "format", json_integer(1));
        json_object_del(j, "context");
        _cleanup_free_ char *old = json_dumps(j, 0);
        json_decref(j);
        expect_refused(SIGNATURE_FOR_COMMAND, "x", old, "cmd-ca.pem", -EBADMSG,
                       "signature format 1 names no purpose");
}

static void test_revoked_keys(void **state) {
        (void)state;
        _cleanup_free_ char *sig = sign(SIGNATURE_FOR_COMMAND, "x", "cmd");
        uint8_t cmd_key[32], ca_key[32];
        size_t len;
        _cleanup_free_ char *cmd_pem = slurp(path("cmd.pem"), &len);
        assert_int_equal(signature_key_fingerprint(cmd_pem, len, cmd_key, NULL), 0);
        _cleanup_free_ char *ca_pem = slurp(path("cmd-ca.pem"), &len);
        assert_int_equal(signature_key_fingerprint(ca_pem, len, ca_key, NULL), 0);

        _cleanup_keyring_ struct signature_keyring *kr = keyring_of("cmd-ca.pem");
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, sig, strlen(sig), kr, T,
                                          NULL, NULL),
                         0);
        assert_int_equal(signature_keyring_revoke(kr, cmd_key), 0);
        _cleanup_free_ char *why = NULL, *why2 = NULL;
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, sig, strlen(sig), kr, T,
                                          NULL, &why),
                         -EKEYREVOKED);
        assert_non_null(strstr(why, "signer certificate \"CN=command signer\" holds a revoked key"));

        _cleanup_keyring_ struct signature_keyring *kr2 = keyring_of("cmd-ca.pem");
        assert_int_equal(signature_keyring_revoke(kr2, ca_key), 0);
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, sig, strlen(sig), kr2, T,
                                          NULL, &why2),
                         -EKEYREVOKED);
        assert_non_null(strstr(why2, "chain certificate \"CN=command CA\" holds a revoked key"));
}

/* ---- the trust document ------------------------------------------------------------------ */

static char *pem(const char *name) {
        return slurp(path(name), NULL);
}

static char *hex_key(const char *name) {
        size_t len;
        _cleanup_free_ char *p = slurp(path(name), &len);
        uint8_t k[32];
        assert_int_equal(signature_key_fingerprint(p, len, k, NULL), 0);
        char *hex = malloc(SHA256_HEX_SIZE);
        sha256_to_hex(k, hex);
        return hex;
}

struct doc {
        int64_t version, expires, threshold, reset;
        const char *roots[5], *release[3], *command[3], *revoked[4];
};

/* An envelope of d signed by each key named in signers (NULL-terminated). */
static char *make(const struct doc *d, const char *const *signers) {
        char *roots[5] = {0}, *release[3] = {0}, *command[3] = {0}, *revoked[4] = {0};
        for (int i = 0; d->roots[i]; i++)
                roots[i] = pem(d->roots[i]);
        for (int i = 0; d->release[i]; i++)
                release[i] = pem(d->release[i]);
        for (int i = 0; d->command[i]; i++)
                command[i] = pem(d->command[i]);
        for (int i = 0; d->revoked[i]; i++)
                revoked[i] = hex_key(d->revoked[i]);
        struct trust_document_spec s = {
                .version = d->version,
                .expires = d->expires ? d->expires : T + 86400 * 365,
                .threshold = d->threshold,
                .time_floor_reset = d->reset,
                .roots = (const char *const *)roots,
                .release = (const char *const *)release,
                .command = (const char *const *)command,
                .revoked = (const char *const *)revoked,
        };
        char *env = NULL, *why = NULL;
        int r = trust_envelope_new(&s, &env, &why);
        if (r < 0)
                fail_msg("envelope: %s", why);
        for (int i = 0; i < 5; i++)
                free(roots[i]);
        for (int i = 0; i < 3; i++)
                free(release[i]), free(command[i]);
        for (int i = 0; i < 4; i++)
                free(revoked[i]);
        for (size_t i = 0; signers && signers[i]; i++) {
                char *text = NULL, *next = NULL;
                size_t len;
                assert_int_equal(trust_envelope_signed_text(env, strlen(env), &text, &len, NULL), 0);
                _cleanup_free_ char *sig = sign(SIGNATURE_FOR_TRUST, text, signers[i]);
                free(text);
                assert_int_equal(trust_envelope_add_signature(env, strlen(env), sig, strlen(sig),
                                                              &next, NULL),
                                 0);
                free(env);
                env = next;
        }
        return env;
}

static struct trust *accept(const char *env, enum trust_check check, const struct trust *cur,
                            time_t now) {
        struct trust *t = NULL;
        char *why = NULL;
        int r = trust_parse(env, strlen(env), check, cur, now, &t, &why);
        if (r < 0)
                fail_msg("trust refused: %s", why);
        return t;
}

static void refuse(const char *env, enum trust_check check, const struct trust *cur, time_t now,
                   int want_r, const char *want) {
        struct trust *t = NULL;
        _cleanup_free_ char *why = NULL;
        int r = trust_parse(env, strlen(env), check, cur, now, &t, &why);
        if (r != want_r || !why || !strstr(why, want))
                fail_msg("expected %d \"%s\", got %d \"%s\"", want_r, want, r, why ? why : "");
        assert_null(t);
}

#define ROOTS12 {"root1.pem", "root2.pem", "root3.pem"}
#define SIGNERS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_threshold(void **state) {
        (void)state;
        struct doc d = {.version = 1, .threshold = 2, .roots = ROOTS12,
                        .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *two = make(&d, SIGNERS("root1", "root3"));
        _cleanup_free_ char *one = make(&d, SIGNERS("root2"));
        _cleanup_free_ char *same_twice = make(&d, SIGNERS("root1", "root1"));
        _cleanup_free_ char *outsider = make(&d, SIGNERS("root1", "root4"));
        _cleanup_free_ char *none = make(&d, NULL);
        _cleanup_trust_ struct trust *t = accept(two, TRUST_CHECK_SELF, NULL, T);
        assert_int_equal(t->version, 1);
        assert_int_equal(t->n_roots, 3);
        assert_int_equal(t->n_release, 1);
        refuse(one, TRUST_CHECK_SELF, NULL, T, -EKEYREJECTED,
               "1 good signature of its own roots, 2 needed");
        refuse(same_twice, TRUST_CHECK_SELF, NULL, T, -EKEYREJECTED,
               "1 good signature of its own roots, 2 needed");
        refuse(outsider, TRUST_CHECK_SELF, NULL, T, -EKEYREJECTED,
               "signature 1: signed by \"CN=root 4\", which is not a root of this set");
        refuse(none, TRUST_CHECK_SELF, NULL, T, -EKEYREJECTED, "0 good signatures");
        /* a signature over other bytes does not count */
        json_t *j = json_loads(two, 0, NULL);
        const char *s = json_string_value(json_object_get(j, "signed"));
        char *changed = strdup(s);
        changed[strlen(changed) - 3] ^= 1;
        json_object_set_new(j, "signed", json_string(changed));
        free(changed);
        _cleanup_free_ char *tampered = json_dumps(j, 0);
        json_decref(j);
        refuse(tampered, TRUST_CHECK_SELF, NULL, T, -EBADMSG, "trust document");
}

static void test_update_versions_and_rotation(void **state) {
        (void)state;
        struct doc d = {.version = 1, .threshold = 2, .roots = ROOTS12,
                        .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *v1 = make(&d, SIGNERS("root1", "root2"));
        _cleanup_trust_ struct trust *t1 = accept(v1, TRUST_CHECK_SELF, NULL, T);
        refuse(v1, TRUST_CHECK_UPDATE, t1, T, -ESTALE, "v1 is not newer than the one in force (v1)");
        d.version = 2;
        _cleanup_free_ char *v2 = make(&d, SIGNERS("root2", "root3"));
        _cleanup_trust_ struct trust *t2 = accept(v2, TRUST_CHECK_UPDATE, t1, T);
        refuse(v1, TRUST_CHECK_UPDATE, t2, T, -ESTALE, "not newer");
        /* rotate the roots to {root3, root4}: the new set must sign, and the old set too */
        struct doc r = {.version = 3, .threshold = 2, .roots = {"root3.pem", "root4.pem"},
                        .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *only_new = make(&r, SIGNERS("root3", "root4"));
        refuse(only_new, TRUST_CHECK_UPDATE, t2, T, -EKEYREJECTED,
               "1 good signature of the roots in force (v2), 2 needed");
        _cleanup_free_ char *only_old = make(&r, SIGNERS("root1", "root2"));
        refuse(only_old, TRUST_CHECK_UPDATE, t2, T, -EKEYREJECTED,
               "0 good signatures of its own roots, 2 needed");
        _cleanup_free_ char *both = make(&r, SIGNERS("root1", "root3", "root4"));
        _cleanup_trust_ struct trust *t3 = accept(both, TRUST_CHECK_UPDATE, t2, T);
        /* root1 and root2 are out now: a document bringing them back needs root3 and root4 */
        struct doc back = {.version = 4, .threshold = 2, .roots = ROOTS12,
                           .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *by_old = make(&back, SIGNERS("root1", "root2"));
        refuse(by_old, TRUST_CHECK_UPDATE, t3, T, -EKEYREJECTED, "of the roots in force (v3)");
}

static void test_expiry_and_floor_reset(void **state) {
        (void)state;
        struct doc d = {.version = 1, .threshold = 1, .roots = {"root1.pem"},
                        .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}, .expires = T - 10};
        _cleanup_free_ char *v1 = make(&d, SIGNERS("root1"));
        /* the image's (or saved) document: its expiry is not judged */
        _cleanup_trust_ struct trust *t1 = accept(v1, TRUST_CHECK_SELF, NULL, T);
        d.version = 2;
        _cleanup_free_ char *v2 = make(&d, SIGNERS("root1"));
        refuse(v2, TRUST_CHECK_UPDATE, t1, T, -EKEYEXPIRED, "trust document v2 expired on");
        _cleanup_trust_ struct trust *any = accept(v2, TRUST_CHECK_UPDATE, t1, SIGNATURE_NOW_UNKNOWN);
        /* a node whose floor was pushed a year ahead: a document lowering it is judged there */
        d.version = 3;
        d.expires = T + 86400;
        _cleanup_free_ char *v3 = make(&d, SIGNERS("root1"));
        refuse(v3, TRUST_CHECK_UPDATE, t1, T + 2 * 86400, -EKEYEXPIRED, "expired");
        d.reset = T - 60;
        _cleanup_free_ char *v3b = make(&d, SIGNERS("root1"));
        _cleanup_trust_ struct trust *t3 = accept(v3b, TRUST_CHECK_UPDATE, t1, T + 365 * 86400);
        assert_int_equal(t3->time_floor_reset, T - 60);
}

static void test_revocation_through_document(void **state) {
        (void)state;
        struct doc d = {.version = 1, .threshold = 2, .roots = ROOTS12,
                        .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *v1 = make(&d, SIGNERS("root1", "root2"));
        _cleanup_trust_ struct trust *t1 = accept(v1, TRUST_CHECK_SELF, NULL, T);
        _cleanup_free_ char *old_sig = sign(SIGNATURE_FOR_COMMAND, "x", "cmd");
        _cleanup_free_ char *new_sig = sign(SIGNATURE_FOR_COMMAND, "x", "cmd2");
        _cleanup_free_ char *rel_sig = sign(SIGNATURE_FOR_BUNDLE, "x", "rel");
        _cleanup_keyring_ struct signature_keyring *c1 = NULL, *c2 = NULL, *r2 = NULL;
        assert_int_equal(trust_command_keyring(t1, &c1), 0);
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, old_sig, strlen(old_sig),
                                          c1, T, NULL, NULL),
                         0);
        /* v2 revokes the leaked command key and the release signer; root2 is revoked too */
        d.version = 2;
        d.revoked[0] = "cmd.pem";
        d.revoked[1] = "rel.pem";
        d.revoked[2] = "root2.pem";
        _cleanup_free_ char *by_revoked = make(&d, SIGNERS("root1", "root2"));
        refuse(by_revoked, TRUST_CHECK_UPDATE, t1, T, -EKEYREJECTED, "signed by a revoked root key");
        _cleanup_free_ char *v2 = make(&d, SIGNERS("root1", "root3"));
        _cleanup_trust_ struct trust *t2 = accept(v2, TRUST_CHECK_UPDATE, t1, T);
        assert_int_equal(t2->n_revoked, 3);
        assert_int_equal(trust_command_keyring(t2, &c2), 0);
        assert_int_equal(trust_release_keyring(t2, &r2), 0);
        _cleanup_free_ char *why = NULL, *why2 = NULL;
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, old_sig, strlen(old_sig),
                                          c2, T, NULL, &why),
                         -EKEYREVOKED);
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, new_sig, strlen(new_sig),
                                          c2, T, NULL, NULL),
                         0);
        assert_int_equal(signature_verify(SIGNATURE_FOR_BUNDLE, "x", 1, rel_sig, strlen(rel_sig),
                                          r2, T, NULL, &why2),
                         -EKEYREVOKED);
        /* a command key under another CA, rotated in: the old CA's signers are out */
        keygen("cmd3-ca", "CN=command CA 3", true, SIGNATURE_ROLE_NONE, NULL, 0, 0);
        keygen("cmd3", "CN=command signer 3", false, SIGNATURE_ROLE_COMMAND, "cmd3-ca", 0, 0);
        struct doc d3 = {.version = 3, .threshold = 2, .roots = ROOTS12,
                         .release = {"rel-ca.pem"}, .command = {"cmd3-ca.pem"}};
        _cleanup_free_ char *v3 = make(&d3, SIGNERS("root1", "root3"));
        _cleanup_trust_ struct trust *t3 = accept(v3, TRUST_CHECK_UPDATE, t2, T);
        _cleanup_keyring_ struct signature_keyring *c3 = NULL;
        assert_int_equal(trust_command_keyring(t3, &c3), 0);
        _cleanup_free_ char *sig3 = sign(SIGNATURE_FOR_COMMAND, "x", "cmd3");
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, sig3, strlen(sig3), c3, T,
                                          NULL, NULL),
                         0);
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, new_sig, strlen(new_sig),
                                          c3, T, NULL, NULL),
                         -EKEYREJECTED);
}

static void test_malformed_documents(void **state) {
        (void)state;
        struct doc good = {.version = 1, .threshold = 1, .roots = {"root1.pem"},
                           .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *env = make(&good, SIGNERS("root1"));
        struct {
                const char *key;
                json_t *value;
                const char *want;
        } cases[] = {
                {"extra", json_true(), "unknown key \"extra\""},
                {"type", json_string("tuf-root"), "\"type\" must be \"orbit-trust\""},
                {"format", json_integer(2), "\"format\" must be an integer from 1 to 1"},
                {"version", json_integer(0), "\"version\" must be an integer from 1"},
                {"threshold", json_integer(2), "\"threshold\" 2 is more than the 1 roots"},
                {"revoked", json_pack("[s]", "abc"), "\"revoked\"[0]: expected 64 hex digits"},
                {"command", json_array(), "\"command\" must be an array of 1 to 32"},
                {"roots", json_pack("[s]", "not a cert"), "\"roots\"[0]: not a PEM certificate"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *e = json_loads(env, 0, NULL);
                json_t *doc = json_loads(json_string_value(json_object_get(e, "signed")), 0, NULL);
                json_object_set_new(doc, cases[i].key, cases[i].value);
                char *text = json_dumps(doc, 0);
                json_object_set_new(e, "signed", json_string(text));
                char *bad = json_dumps(e, 0);
                refuse(bad, TRUST_CHECK_SELF, NULL, T, -EBADMSG, cases[i].want);
                free(bad);
                free(text);
                json_decref(doc);
                json_decref(e);
        }
        /* a release signer is not a root */
        struct doc wrong = good;
        wrong.roots[0] = "rel.pem";
        char *env2 = NULL, *why = NULL;
        char *p = pem("rel.pem"), *r = pem("rel-ca.pem"), *c = pem("cmd-ca.pem");
        struct trust_document_spec s = {.version = 1, .expires = T + 10, .threshold = 1,
                                        .roots = (const char *const[]){p, NULL},
                                        .release = (const char *const[]){r, NULL},
                                        .command = (const char *const[]){c, NULL},
                                        .revoked = (const char *const[]){NULL}};
        assert_int_equal(trust_envelope_new(&s, &env2, &why), -EBADMSG);
        assert_non_null(strstr(why, "a root must be a self-signed P-256 certificate in the root role"));
        free(why), free(p), free(r), free(c);
        (void)wrong;
        refuse("{\"signed\": \"{}\", \"signatures\": [], \"x\": 1}", TRUST_CHECK_SELF, NULL, T,
               -EBADMSG, "trust envelope: unknown key \"x\"");
        refuse("[1]", TRUST_CHECK_SELF, NULL, T, -EBADMSG, "not a JSON object");
}

/* A root the document in force revokes does not count for the next one, even if that one
 * stops revoking it: else a holder of the revoked (leaked) key needs one root fewer. */
static void test_revoked_root_in_force_does_not_count(void **state) {
        (void)state;
        struct doc d = {.version = 1, .threshold = 2, .roots = ROOTS12,
                        .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *v1 = make(&d, SIGNERS("root1", "root2"));
        _cleanup_trust_ struct trust *t1 = accept(v1, TRUST_CHECK_SELF, NULL, T);
        d.version = 2;
        d.revoked[0] = "root2.pem";
        _cleanup_free_ char *v2 = make(&d, SIGNERS("root1", "root3"));
        _cleanup_trust_ struct trust *t2 = accept(v2, TRUST_CHECK_UPDATE, t1, T);
        /* v3 drops the revocation; root2's holder and one other root sign it */
        d.version = 3;
        d.revoked[0] = NULL;
        _cleanup_free_ char *v3 = make(&d, SIGNERS("root1", "root2"));
        refuse(v3, TRUST_CHECK_UPDATE, t2, T, -EKEYREJECTED,
               "1 good signature of the roots in force (v2), 2 needed");
        _cleanup_free_ char *v3b = make(&d, SIGNERS("root1", "root3"));
        _cleanup_trust_ struct trust *t3 = accept(v3b, TRUST_CHECK_UPDATE, t2, T);
        assert_int_equal(t3->n_revoked, 0);
}

/* Each entry of roots, release and command is one certificate: a second one in an entry
 * would be an anchor no count and no check saw (a root's entry smuggling in a CA). */
static void test_one_certificate_per_entry(void **state) {
        (void)state;
        _cleanup_free_ char *root = pem("root1.pem"), *ca = pem("cmd-ca.pem"), *rel = pem("rel-ca.pem");
        char two[16384];
        snprintf(two, sizeof(two), "%s%s", root, ca);
        const char *keys[] = {"roots", "command"};
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                struct trust_document_spec s = {
                        .version = 1, .expires = T + 86400, .threshold = 1,
                        .roots = (const char *const[]){i == 0 ? two : root, NULL},
                        .release = (const char *const[]){rel, NULL},
                        .command = (const char *const[]){i == 1 ? two : ca, NULL},
                        .revoked = (const char *const[]){NULL}};
                char *env = NULL, *why = NULL;
                assert_int_equal(trust_envelope_new(&s, &env, &why), -EBADMSG);
                char want[128];
                snprintf(want, sizeof(want), "\"%s\"[0]: holds 2 certificates, not one", keys[i]);
                if (!strstr(why, want))
                        fail_msg("expected \"%s\", got \"%s\"", want, why);
                free(why);
                free(env);
        }
        /* an anchor that does not parse, though it looks like PEM */
        const char *junk = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
        struct trust_document_spec s = {.version = 1, .expires = T + 86400, .threshold = 1,
                                        .roots = (const char *const[]){root, NULL},
                                        .release = (const char *const[]){junk, NULL},
                                        .command = (const char *const[]){ca, NULL},
                                        .revoked = (const char *const[]){NULL}};
        char *env = NULL, *why = NULL;
        assert_int_equal(trust_envelope_new(&s, &env, &why), -EBADMSG);
        if (!strstr(why, "\"release\"[0]: not a certificate"))
                fail_msg("junk anchor: \"%s\"", why);
        free(why);
}

/*
 * A certificate whose RSA key has a huge public exponent: each use of its key is a modular
 * exponentiation as long as the exponent (8192 bits: over half a second on a PC). A hostile
 * controller could fill a trust document's anchors (checked before any signature) or a
 * signature file's chain with them and hold the node's loop for minutes at every sync.
 * Issued (self-issued: the same name both sides) by root1's P-256 key, so it parses.
 */
static char *costly_rsa_cert(unsigned bits, unsigned exponent_bits) {
        mbedtls_pk_context rsa, issuer;
        mbedtls_x509write_cert w;
        mbedtls_entropy_context ent;
        mbedtls_ctr_drbg_context drbg;
        mbedtls_mpi serial, N, E;
        mbedtls_pk_init(&rsa);
        mbedtls_pk_init(&issuer);
        mbedtls_x509write_crt_init(&w);
        mbedtls_entropy_init(&ent);
        mbedtls_ctr_drbg_init(&drbg);
        mbedtls_mpi_init(&serial);
        mbedtls_mpi_init(&N);
        mbedtls_mpi_init(&E);
        assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
        /* any odd modulus and odd exponent below it: nothing checks they make a key pair */
        assert_int_equal(mbedtls_mpi_fill_random(&N, bits / 8, mbedtls_ctr_drbg_random, &drbg), 0);
        assert_int_equal(mbedtls_mpi_set_bit(&N, bits - 1, 1), 0);
        assert_int_equal(mbedtls_mpi_set_bit(&N, 0, 1), 0);
        assert_int_equal(mbedtls_mpi_fill_random(&E, exponent_bits / 8, mbedtls_ctr_drbg_random, &drbg), 0);
        assert_int_equal(mbedtls_mpi_set_bit(&E, exponent_bits - 1, 1), 0);
        assert_int_equal(mbedtls_mpi_set_bit(&E, 0, 1), 0);
        assert_int_equal(mbedtls_pk_setup(&rsa, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), 0);
        assert_int_equal(mbedtls_rsa_import(mbedtls_pk_rsa(rsa), &N, NULL, NULL, NULL, &E), 0);
        assert_int_equal(mbedtls_rsa_complete(mbedtls_pk_rsa(rsa)), 0);
        assert_int_equal(mbedtls_pk_parse_keyfile(&issuer, path("root1.key"), NULL), 0);
        mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
        mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
        mbedtls_x509write_crt_set_subject_key(&w, &rsa);
        mbedtls_x509write_crt_set_issuer_key(&w, &issuer);
        mbedtls_mpi_lset(&serial, 9);
        assert_int_equal(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
        assert_int_equal(mbedtls_x509write_crt_set_validity(&w, "20200101000000", "20991231000000"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w, "CN=costly"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w, "CN=costly"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_basic_constraints(&w, 1, -1), 0);
        unsigned char *buf = malloc(16384);
        assert_non_null(buf);
        assert_int_equal(mbedtls_x509write_crt_pem(&w, buf, 16384, mbedtls_ctr_drbg_random, &drbg), 0);
        mbedtls_mpi_free(&E);
        mbedtls_mpi_free(&N);
        mbedtls_mpi_free(&serial);
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&ent);
        mbedtls_x509write_crt_free(&w);
        mbedtls_pk_free(&issuer);
        mbedtls_pk_free(&rsa);
        return (char *)buf;
}

/* A self-signed certificate (signed by its own key) on curve id. */
static char *ec_cert(mbedtls_ecp_group_id id) {
        mbedtls_pk_context pk;
        mbedtls_x509write_cert w;
        mbedtls_entropy_context ent;
        mbedtls_ctr_drbg_context drbg;
        mbedtls_mpi serial;
        mbedtls_pk_init(&pk);
        mbedtls_x509write_crt_init(&w);
        mbedtls_entropy_init(&ent);
        mbedtls_ctr_drbg_init(&drbg);
        mbedtls_mpi_init(&serial);
        assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
        assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
        assert_int_equal(mbedtls_ecp_gen_key(id, mbedtls_pk_ec(pk), mbedtls_ctr_drbg_random, &drbg), 0);
        mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
        mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
        mbedtls_x509write_crt_set_subject_key(&w, &pk);
        mbedtls_x509write_crt_set_issuer_key(&w, &pk);
        mbedtls_mpi_lset(&serial, 11);
        assert_int_equal(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
        assert_int_equal(mbedtls_x509write_crt_set_validity(&w, "20200101000000", "20991231000000"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w, "CN=slow curve"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w, "CN=slow curve"), 0);
        assert_int_equal(mbedtls_x509write_crt_set_basic_constraints(&w, 1, -1), 0);
        unsigned char *buf = malloc(8192);
        assert_non_null(buf);
        assert_int_equal(mbedtls_x509write_crt_pem(&w, buf, 8192, mbedtls_ctr_drbg_random, &drbg), 0);
        mbedtls_mpi_free(&serial);
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&ent);
        mbedtls_x509write_crt_free(&w);
        mbedtls_pk_free(&pk);
        return (char *)buf;
}

static void test_costly_keys_refused(void **state) {
        (void)state;
        _cleanup_free_ char *costly = costly_rsa_cert(4096, 4000);
        _cleanup_free_ char *fine = costly_rsa_cert(2048, 17);
        struct signature_cert_info info;
        _cleanup_free_ char *why = NULL, *why2 = NULL, *why3 = NULL;
        assert_int_equal(signature_cert_info(fine, strlen(fine), &info, NULL), 0);
        assert_int_equal(signature_cert_info(costly, strlen(costly), &info, &why), -EINVAL);
        assert_non_null(strstr(why, "RSA public exponent of 4000 bits"));
        /* as an anchor */
        _cleanup_keyring_ struct signature_keyring *kr = signature_keyring_new();
        assert_int_equal(signature_keyring_add(kr, costly, strlen(costly), "costly", &why2), -EINVAL);
        assert_non_null(strstr(why2, "exponent"));
        assert_int_equal(signature_keyring_count(kr), 0);
        /* in a trust document's anchors, before any signature is checked */
        struct doc good = {.version = 1, .threshold = 1, .roots = {"root1.pem"},
                           .release = {"rel-ca.pem"}, .command = {"cmd-ca.pem"}};
        _cleanup_free_ char *env = make(&good, SIGNERS("root1"));
        json_t *e = json_loads(env, 0, NULL);
        json_t *doc = json_loads(json_string_value(json_object_get(e, "signed")), 0, NULL);
        json_object_set_new(doc, "release", json_pack("[s]", costly));
        char *text = json_dumps(doc, 0);
        json_object_set_new(e, "signed", json_string(text));
        char *bad = json_dumps(e, 0);
        refuse(bad, TRUST_CHECK_SELF, NULL, T, -EBADMSG, "\"release\"[0]: "
               "certificate \"CN=costly\": an RSA public exponent of 4000 bits");
        free(bad), free(text), json_decref(doc), json_decref(e);
        /* in a signature file's chain, before path validation uses it */
        _cleanup_free_ char *sig = sign(SIGNATURE_FOR_COMMAND, "x", "cmd");
        json_t *j = json_loads(sig, 0, NULL);
        mbedtls_x509_crt c;
        mbedtls_x509_crt_init(&c);
        assert_int_equal(mbedtls_x509_crt_parse(&c, (unsigned char *)costly, strlen(costly) + 1), 0);
        unsigned char b64[8192];
        size_t b64_len;
        assert_int_equal(mbedtls_base64_encode(b64, sizeof(b64), &b64_len, c.raw.p, c.raw.len), 0);
        mbedtls_x509_crt_free(&c);
        json_array_append_new(json_object_get(j, "certificates"), json_stringn((char *)b64, b64_len));
        _cleanup_free_ char *sig2 = json_dumps(j, 0);
        json_decref(j);
        _cleanup_keyring_ struct signature_keyring *ok = keyring_of("cmd-ca.pem");
        assert_int_equal(signature_verify(SIGNATURE_FOR_COMMAND, "x", 1, sig2, strlen(sig2), ok, T,
                                          NULL, &why3),
                         -EBADMSG);
        assert_non_null(strstr(why3, "malformed signature file: certificate \"CN=costly\": an RSA "
                                     "public exponent"));
        /* slow curves: refused on sight; P-384 (a CA may hold one) is not */
        _cleanup_free_ char *bp = ec_cert(MBEDTLS_ECP_DP_BP512R1), *p521 = ec_cert(MBEDTLS_ECP_DP_SECP521R1);
        _cleanup_free_ char *p384 = ec_cert(MBEDTLS_ECP_DP_SECP384R1);
        _cleanup_free_ char *why4 = NULL, *why5 = NULL;
        assert_int_equal(signature_cert_info(bp, strlen(bp), &info, &why4), -EINVAL);
        assert_non_null(strstr(why4, "an EC key on a curve other than P-256 and P-384"));
        assert_int_equal(signature_keyring_add(kr, p521, strlen(p521), "p521", &why5), -EINVAL);
        assert_non_null(strstr(why5, "curve other than"));
        assert_int_equal(signature_cert_info(p384, strlen(p384), &info, NULL), 0);
        assert_true(info.self_signed);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keygen_needs_a_role),
                cmocka_unit_test(test_sign_only_in_role),
                cmocka_unit_test(test_cross_role_refused),
                cmocka_unit_test(test_format_1_refused),
                cmocka_unit_test(test_revoked_keys),
                cmocka_unit_test(test_threshold),
                cmocka_unit_test(test_update_versions_and_rotation),
                cmocka_unit_test(test_expiry_and_floor_reset),
                cmocka_unit_test(test_revocation_through_document),
                cmocka_unit_test(test_malformed_documents),
                cmocka_unit_test(test_costly_keys_refused),
                cmocka_unit_test(test_revoked_root_in_force_does_not_count),
                cmocka_unit_test(test_one_certificate_per_entry),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
