/* The trust document: parse, check k-of-n root signatures, build keyrings (update/trust.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/macro.h"
#include "lib/message.h"
#include "lib/sha256.h"
#include "update/trust.h"

void trust_free(struct trust *t) {
        if (!t)
                return;
        free(t->root_keys);
        free(t->revoked);
        free(t->roots_pem);
        free(t->release_pem);
        free(t->command_pem);
        free(t->text);
        free(t);
}

static void format_time(int64_t t, char *buf, size_t size) {
        time_t tt = (time_t)t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                snprintf(buf, size, "@%" PRId64, t);
}

/* ---- the document ------------------------------------------------------------------ */

static const char *const document_keys[] = {
        "type",    "format",  "version", "expires", "threshold",        "roots",
        "release", "command", "revoked", "time_floor_reset", NULL,
};

static int get_int(json_t *doc, const char *key, bool required, int64_t min, int64_t max,
                   int64_t *ret, char **ret_reason) {
        json_t *v = json_object_get(doc, key);
        if (!v) {
                if (required)
                        return message_set(ret_reason, -EBADMSG,
                                           "trust document: \"%s\" is missing", key);
                *ret = 0;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return message_set(ret_reason, -EBADMSG,
                                   "trust document: \"%s\" must be an integer from %" PRId64
                                   " to %" PRId64,
                                   key, min, max);
        *ret = json_integer_value(v);
        return 0;
}

/* A list of PEM certificates, concatenated into *ret; each one's info to check(). */
static int get_certs(json_t *doc, const char *key, size_t max, enum signature_role role,
                     bool roots, char **ret_pem, size_t *ret_len, size_t *ret_n,
                     uint8_t (**ret_keys)[32], char **ret_reason) {
        json_t *a = json_object_get(doc, key);
        if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > max)
                return message_set(ret_reason, -EBADMSG,
                                   "trust document: \"%s\" must be an array of 1 to %zu PEM "
                                   "certificates",
                                   key, max);
        size_t n = json_array_size(a), total = 0;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(a, i);
                if (!json_is_string(e) || json_string_length(e) > TRUST_CERT_MAX_SIZE)
                        return message_set(ret_reason, -EBADMSG,
                                           "trust document: \"%s\"[%zu]: expected a PEM "
                                           "certificate of at most %d bytes",
                                           key, i, TRUST_CERT_MAX_SIZE);
                total += json_string_length(e) + 1;
        }
        _cleanup_free_ char *pem = malloc(total + 1);
        _cleanup_free_ uint8_t(*keys)[32] = calloc(n, sizeof(*keys));
        if (!pem || !keys)
                return -ENOMEM;
        /* every anchor must load as mbedtls will load it for verification, one per entry */
        _cleanup_keyring_ struct signature_keyring *kr = signature_keyring_new();
        if (!kr)
                return -ENOMEM;
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(a, i);
                const char *s = json_string_value(e);
                size_t l = json_string_length(e);
                struct signature_cert_info info;
                _cleanup_free_ char *why = NULL, *why_load = NULL;
                /* A root's role, key and self-signature are checked; an anchor (a CA, a
                 * signer) only loads: its self-signature, if any, is nobody's business, and
                 * checking it is an ECDSA verification an unsigned document could ask 64 of. */
                if (!memmem(s, l, "-----BEGIN CERTIFICATE-----", 27) ||
                    (roots && signature_cert_info(s, l, &info, &why) < 0))
                        return message_set(ret_reason, -EBADMSG,
                                           "trust document: \"%s\"[%zu]: not a PEM certificate%s%s",
                                           key, i, why ? ": " : "", why ? why : "");
                if (roots && (info.role != role || !info.self_signed || !info.p256))
                        return message_set(ret_reason, -EBADMSG,
                                           "trust document: \"%s\"[%zu] (\"%s\"): a root must be "
                                           "a self-signed P-256 certificate in the root role",
                                           key, i, info.subject);
                for (size_t k = 0; roots && k < i; k++)
                        if (memcmp(keys[k], info.key_sha256, 32) == 0)
                                return message_set(ret_reason, -EBADMSG,
                                                   "trust document: \"%s\"[%zu] repeats the key "
                                                   "of \"%s\"[%zu]",
                                                   key, i, key, k);
                size_t before = signature_keyring_count(kr);
                char source[64];
                snprintf(source, sizeof(source), "\"%s\"[%zu]", key, i);
                int r = signature_keyring_add(kr, s, l, source, &why_load);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return message_set(ret_reason, -EBADMSG, "trust document: %s",
                                           why_load ? why_load : source);
                if (signature_keyring_count(kr) - before != 1)
                        return message_set(ret_reason, -EBADMSG,
                                           "trust document: \"%s\"[%zu]: holds %zu certificates, "
                                           "not one",
                                           key, i, signature_keyring_count(kr) - before);
                if (roots)
                        memcpy(keys[i], info.key_sha256, 32);
                memcpy(pem + off, s, l);
                off += l;
                pem[off++] = '\n';
        }
        pem[off] = '\0';
        *ret_pem = TAKE_PTR(pem);
        *ret_len = off;
        *ret_n = n;
        if (ret_keys)
                *ret_keys = TAKE_PTR(keys);
        return 0;
}

static int parse_document(const char *text, size_t len, struct trust *t, char **ret_reason) {
        json_error_t err;
        json_auto_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!doc || !json_is_object(doc))
                return message_set(ret_reason, -EBADMSG, "trust document: %s (line %d)",
                                   doc ? "not a JSON object" : err.text, err.line);
        const char *k;
        json_t *v;
        json_object_foreach(doc, k, v) {
                bool known = false;
                for (size_t i = 0; document_keys[i]; i++)
                        known = known || streq(k, document_keys[i]);
                if (!known)
                        return message_set(ret_reason, -EBADMSG,
                                           "trust document: unknown key \"%s\"", k);
        }
        json_t *type = json_object_get(doc, "type");
        if (!json_is_string(type) || !streq(json_string_value(type), "orbit-trust"))
                return message_set(ret_reason, -EBADMSG,
                                   "trust document: \"type\" must be \"orbit-trust\"");
        int64_t format;
        int r = get_int(doc, "format", true, TRUST_FORMAT, TRUST_FORMAT, &format, ret_reason);
        if (r < 0)
                return r;
        if ((r = get_int(doc, "version", true, 1, INT64_MAX, &t->version, ret_reason)) < 0 ||
            (r = get_int(doc, "expires", true, 1, INT64_MAX, &t->expires, ret_reason)) < 0 ||
            (r = get_int(doc, "threshold", true, 1, TRUST_MAX_ROOTS, &t->threshold,
                         ret_reason)) < 0 ||
            (r = get_int(doc, "time_floor_reset", false, 1, INT64_MAX, &t->time_floor_reset,
                         ret_reason)) < 0)
                return r;
        r = get_certs(doc, "roots", TRUST_MAX_ROOTS, SIGNATURE_ROLE_ROOT, true, &t->roots_pem,
                      &t->roots_pem_len, &t->n_roots, &t->root_keys, ret_reason);
        if (r < 0)
                return r;
        if ((size_t)t->threshold > t->n_roots)
                return message_set(ret_reason, -EBADMSG,
                                   "trust document: \"threshold\" %" PRId64
                                   " is more than the %zu roots",
                                   t->threshold, t->n_roots);
        r = get_certs(doc, "release", TRUST_MAX_ANCHORS, SIGNATURE_ROLE_NONE, false,
                      &t->release_pem, &t->release_pem_len, &t->n_release, NULL, ret_reason);
        if (r < 0)
                return r;
        r = get_certs(doc, "command", TRUST_MAX_ANCHORS, SIGNATURE_ROLE_NONE, false,
                      &t->command_pem, &t->command_pem_len, &t->n_command, NULL, ret_reason);
        if (r < 0)
                return r;
        json_t *rv = json_object_get(doc, "revoked");
        if (rv) {
                if (!json_is_array(rv) || json_array_size(rv) > TRUST_MAX_REVOKED)
                        return message_set(ret_reason, -EBADMSG,
                                           "trust document: \"revoked\" must be an array of at "
                                           "most %d key fingerprints",
                                           TRUST_MAX_REVOKED);
                t->n_revoked = json_array_size(rv);
                t->revoked = calloc(t->n_revoked ? t->n_revoked : 1, sizeof(*t->revoked));
                if (!t->revoked)
                        return -ENOMEM;
                for (size_t i = 0; i < t->n_revoked; i++) {
                        json_t *e = json_array_get(rv, i);
                        if (!json_is_string(e) || json_string_length(e) != 64 ||
                            sha256_from_hex(json_string_value(e), t->revoked[i]) < 0)
                                return message_set(ret_reason, -EBADMSG,
                                                   "trust document: \"revoked\"[%zu]: expected "
                                                   "64 hex digits (SHA-256 of a key)",
                                                   i);
                }
        }
        return 0;
}

/* ---- the envelope ------------------------------------------------------------------ */

static int parse_envelope(const char *text, size_t len, json_t **ret_root, char **ret_reason) {
        if (len > TRUST_MAX_SIZE)
                return message_set(ret_reason, -EBADMSG, "trust envelope larger than %d bytes",
                                   TRUST_MAX_SIZE);
        json_error_t err;
        json_auto_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!root || !json_is_object(root))
                return message_set(ret_reason, -EBADMSG, "trust envelope: %s (line %d)",
                                   root ? "not a JSON object" : err.text, err.line);
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v)
                if (!streq(k, "signed") && !streq(k, "signatures"))
                        return message_set(ret_reason, -EBADMSG,
                                           "trust envelope: unknown key \"%s\"", k);
        json_t *s = json_object_get(root, "signed"), *sigs = json_object_get(root, "signatures");
        if (!json_is_string(s) || json_string_length(s) == 0)
                return message_set(ret_reason, -EBADMSG,
                                   "trust envelope: \"signed\" must be the document's text");
        if (!json_is_array(sigs) || json_array_size(sigs) > TRUST_MAX_SIGNATURES)
                return message_set(ret_reason, -EBADMSG,
                                   "trust envelope: \"signatures\" must be an array of at most %d "
                                   "signature files",
                                   TRUST_MAX_SIGNATURES);
        for (size_t i = 0; i < json_array_size(sigs); i++)
                if (!json_is_string(json_array_get(sigs, i)))
                        return message_set(ret_reason, -EBADMSG,
                                           "trust envelope: \"signatures\"[%zu] must be a "
                                           "signature file's text",
                                           i);
        *ret_root = TAKE_PTR(root);
        return 0;
}

bool trust_revokes(const struct trust *t, const uint8_t key_sha256[32]) {
        for (size_t i = 0; t && i < t->n_revoked; i++)
                if (memcmp(t->revoked[i], key_sha256, 32) == 0)
                        return true;
        return false;
}

static bool has_key(uint8_t (*keys)[32], size_t n, const uint8_t key[32]) {
        for (size_t i = 0; i < n; i++)
                if (memcmp(keys[i], key, 32) == 0)
                        return true;
        return false;
}

/*
 * How many distinct roots of set (keys + keyring), not revoked by doc nor by in_force (the
 * document in force, or NULL), made a good signature over signed_text. The first bad
 * signature's reason goes to *why.
 */
static int count_signers(json_t *sigs, const char *signed_text, size_t signed_len,
                         const char *roots_pem, size_t roots_pem_len, uint8_t (*keys)[32],
                         size_t n_keys, const struct trust *doc, const struct trust *in_force,
                         time_t now, size_t *ret_count, char **why) {
        _cleanup_keyring_ struct signature_keyring *kr = signature_keyring_new();
        if (!kr)
                return -ENOMEM;
        int r = signature_keyring_add(kr, roots_pem, roots_pem_len, "roots", why);
        if (r < 0)
                return r;
        uint8_t seen[TRUST_MAX_SIGNATURES][32];
        size_t n_seen = 0;
        for (size_t i = 0; i < json_array_size(sigs); i++) {
                json_t *s = json_array_get(sigs, i);
                struct signature_info info;
                _cleanup_free_ char *reason = NULL;
                /* Who signed, read before anything is verified: a signer that is no root of
                 * the set costs a parse, not a chain check and an ECDSA verification (a
                 * hostile controller's document full of signatures holds the loop less). */
                r = signature_describe(json_string_value(s), json_string_length(s), &info, &reason);
                if (r >= 0 && !has_key(keys, n_keys, info.key_sha256)) {
                        r = -EKEYREJECTED;
                        free(reason);
                        reason = NULL;
                        if (message_set(&reason, r, "signed by \"%s\", which is not a root of this set",
                                        info.signer) == -ENOMEM)
                                return -ENOMEM;
                }
                if (r >= 0)
                        r = signature_verify_at_least(SIGNATURE_FOR_TRUST, signed_text, signed_len,
                                                      json_string_value(s), json_string_length(s), kr,
                                                      now, &info, &reason);
                if (r >= 0 && !has_key(keys, n_keys, info.key_sha256)) {
                        r = -EKEYREJECTED;
                        free(reason);
                        reason = strdup("signed by a certificate that is not itself a root");
                } else if (r >= 0 && (trust_revokes(doc, info.key_sha256) ||
                                      trust_revokes(in_force, info.key_sha256))) {
                        r = -EKEYREVOKED;
                        free(reason);
                        reason = strdup("signed by a revoked root key");
                }
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (!*why && message_set(why, r, "signature %zu: %s", i,
                                                 reason ? reason : "refused") == -ENOMEM)
                                return -ENOMEM;
                        continue;
                }
                if (!has_key(seen, n_seen, info.key_sha256))
                        memcpy(seen[n_seen++], info.key_sha256, 32);
        }
        *ret_count = n_seen;
        return 0;
}

int trust_parse(const char *text, size_t len, enum trust_check check, const struct trust *current,
                time_t now, struct trust **ret, char **ret_reason) {
        if (check == TRUST_CHECK_UPDATE && !current)
                return message_set(ret_reason, -EINVAL, "trust: no document in force to update");
        json_auto_t *root = NULL;
        int r = parse_envelope(text, len, &root, ret_reason);
        if (r < 0)
                return r;
        json_t *signed_v = json_object_get(root, "signed");
        const char *signed_text = json_string_value(signed_v);
        size_t signed_len = json_string_length(signed_v);
        json_t *sigs = json_object_get(root, "signatures");

        /* An update must carry the threshold of the roots in force: counted first, before the
         * document's certificates are parsed (what a hostile controller can make cost most),
         * validity not judged yet (a floor reset in the document may change the time). */
        if (check == TRUST_CHECK_UPDATE) {
                size_t n = 0;
                _cleanup_free_ char *why = NULL;
                r = count_signers(sigs, signed_text, signed_len, current->roots_pem, current->roots_pem_len,
                                  current->root_keys, current->n_roots, NULL, current, SIGNATURE_NOW_UNKNOWN,
                                  &n, &why);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0 && (int64_t)n < current->threshold)
                        return message_set(ret_reason, -EKEYREJECTED,
                                           "trust document v%" PRId64 ": %zu good signature%s of "
                                           "the roots in force (v%" PRId64 "), %" PRId64 " needed%s%s",
                                           trust_peek_version(text, len), n, n == 1 ? "" : "s",
                                           current->version, current->threshold, why ? "; " : "",
                                           why ? why : "");
        }

        struct trust *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        _cleanup_trust_ struct trust *owned = t;
        r = parse_document(signed_text, signed_len, t, ret_reason);
        if (r < 0)
                return r;

        if (check == TRUST_CHECK_UPDATE && t->version <= current->version)
                return message_set(ret_reason, -ESTALE,
                                   "trust document v%" PRId64
                                   " is not newer than the one in force (v%" PRId64 ")",
                                   t->version, current->version);

        /* Judged at the time the document itself sets, if it lowers the floor. */
        time_t at = now;
        if (now != SIGNATURE_NOW_UNKNOWN && t->time_floor_reset && (int64_t)now > t->time_floor_reset)
                at = (time_t)t->time_floor_reset;

        size_t n_new = 0, n_old = 0;
        _cleanup_free_ char *why_new = NULL, *why_old = NULL;
        r = count_signers(sigs, signed_text, signed_len, t->roots_pem, t->roots_pem_len,
                          t->root_keys, t->n_roots, t, NULL, at, &n_new, &why_new);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return message_set(ret_reason, -EBADMSG, "trust document v%" PRId64 ": %s",
                                   t->version, why_new ? why_new : "roots do not load");
        if ((int64_t)n_new < t->threshold)
                return message_set(ret_reason, -EKEYREJECTED,
                                   "trust document v%" PRId64 ": %zu good signature%s of its own "
                                   "roots, %" PRId64 " needed%s%s",
                                   t->version, n_new, n_new == 1 ? "" : "s", t->threshold,
                                   why_new ? "; " : "", why_new ? why_new : "");
        if (check == TRUST_CHECK_UPDATE) {
                r = count_signers(sigs, signed_text, signed_len, current->roots_pem,
                                  current->roots_pem_len, current->root_keys, current->n_roots, t,
                                  current, at, &n_old, &why_old);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0 && (int64_t)n_old < current->threshold)
                        r = -EKEYREJECTED;
                if (r < 0)
                        return message_set(ret_reason, -EKEYREJECTED,
                                           "trust document v%" PRId64 ": %zu good signature%s of "
                                           "the roots in force (v%" PRId64 "), %" PRId64
                                           " needed%s%s",
                                           t->version, n_old, n_old == 1 ? "" : "s",
                                           current->version, current->threshold,
                                           why_old ? "; " : "", why_old ? why_old : "");
                if (at != SIGNATURE_NOW_UNKNOWN && (int64_t)at > t->expires) {
                        char when[64];
                        format_time(t->expires, when, sizeof(when));
                        return message_set(ret_reason, -EKEYEXPIRED,
                                           "trust document v%" PRId64 " expired on %s",
                                           t->version, when);
                }
        }
        t->text = malloc(len + 1);
        if (!t->text)
                return -ENOMEM;
        memcpy(t->text, text, len);
        t->text[len] = '\0';
        t->text_len = len;
        *ret = TAKE_PTR(owned);
        return 0;
}

static int keyring_of(const struct trust *t, const char *pem, size_t len, const char *what,
                      struct signature_keyring **ret) {
        _cleanup_keyring_ struct signature_keyring *kr = signature_keyring_new();
        if (!kr)
                return -ENOMEM;
        int r = signature_keyring_add(kr, pem, len, what, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < t->n_revoked; i++)
                if (signature_keyring_revoke(kr, t->revoked[i]) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(kr);
        return 0;
}

int trust_release_keyring(const struct trust *t, struct signature_keyring **ret) {
        return keyring_of(t, t->release_pem, t->release_pem_len, "trust release", ret);
}

int trust_command_keyring(const struct trust *t, struct signature_keyring **ret) {
        return keyring_of(t, t->command_pem, t->command_pem_len, "trust command", ret);
}

/* ---- the ground tool's side -------------------------------------------------------- */

static json_t *string_array(const char *const *list) {
        json_t *a = json_array();
        for (size_t i = 0; a && list && list[i]; i++)
                if (json_array_append_new(a, json_string(list[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

int trust_envelope_new(const struct trust_document_spec *d, char **ret, char **ret_reason) {
        json_auto_t *doc = json_pack("{s:s, s:i, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "type",
                                     "orbit-trust", "format", TRUST_FORMAT, "version",
                                     (json_int_t)d->version, "expires", (json_int_t)d->expires,
                                     "threshold", (json_int_t)d->threshold, "roots",
                                     string_array(d->roots), "release", string_array(d->release),
                                     "command", string_array(d->command), "revoked",
                                     string_array(d->revoked));
        if (!doc)
                return -ENOMEM;
        if (d->time_floor_reset &&
            json_object_set_new(doc, "time_floor_reset", json_integer(d->time_floor_reset)) < 0)
                return -ENOMEM;
        _cleanup_free_ char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        /* what a node would refuse is refused here, with the same words */
        struct trust check = {0};
        int r = parse_document(text, strlen(text), &check, ret_reason);
        free(check.root_keys);
        free(check.revoked);
        free(check.roots_pem);
        free(check.release_pem);
        free(check.command_pem);
        if (r < 0)
                return r;
        json_auto_t *env = json_pack("{s:s, s:[]}", "signed", text, "signatures");
        if (!env)
                return -ENOMEM;
        *ret = json_dumps(env, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        return *ret ? 0 : -ENOMEM;
}

void trust_text_id(const char *text, size_t len, char out[static TRUST_ID_LEN + 1]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_buffer(text, len, d);
        sha256_to_hex(d, hex);
        memcpy(out, hex, TRUST_ID_LEN);
        out[TRUST_ID_LEN] = '\0';
}

int64_t trust_peek_version(const char *text, size_t len) {
        json_auto_t *root = NULL;
        if (parse_envelope(text, len, &root, NULL) < 0)
                return -1;
        json_t *s = json_object_get(root, "signed");
        json_auto_t *doc = json_loadb(json_string_value(s), json_string_length(s), 0, NULL);
        json_t *v = json_object_get(doc, "version");
        return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : -1;
}

int trust_envelope_signed_text(const char *text, size_t len, char **ret, size_t *ret_len,
                               char **ret_reason) {
        json_auto_t *root = NULL;
        int r = parse_envelope(text, len, &root, ret_reason);
        if (r < 0)
                return r;
        json_t *s = json_object_get(root, "signed");
        *ret = strndup(json_string_value(s), json_string_length(s));
        if (!*ret)
                return -ENOMEM;
        *ret_len = json_string_length(s);
        return 0;
}

int trust_envelope_add_signature(const char *text, size_t len, const char *sig, size_t sig_len,
                                 char **ret, char **ret_reason) {
        json_auto_t *root = NULL;
        int r = parse_envelope(text, len, &root, ret_reason);
        if (r < 0)
                return r;
        json_t *sigs = json_object_get(root, "signatures");
        if (json_array_size(sigs) >= TRUST_MAX_SIGNATURES)
                return message_set(ret_reason, -E2BIG, "trust envelope: already %d signatures",
                                   TRUST_MAX_SIGNATURES);
        if (json_array_append_new(sigs, json_stringn(sig, sig_len)) < 0)
                return -ENOMEM;
        *ret = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        return *ret ? 0 : -ENOMEM;
}
