/* The node's client certificate, renewed over the link (agent/link-cert.h), with mbedTLS. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "agent/link-cert.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"

enum link_cert_renewal link_cert_renewal_at(int64_t now, int64_t not_before, int64_t not_after,
                                            int64_t renew_before_sec) {
        if (now >= not_after)
                return LINK_CERT_EXPIRED;
        if (renew_before_sec <= 0)
                return LINK_CERT_VALID;
        int64_t left = not_after - now, lifetime = not_after > not_before ? not_after - not_before : 0;
        return left <= renew_before_sec && left <= lifetime / 2 ? LINK_CERT_DUE : LINK_CERT_VALID;
}

const char *link_cert_renewal_to_string(enum link_cert_renewal r) {
        return r == LINK_CERT_EXPIRED ? "expired" : r == LINK_CERT_DUE ? "due" : "valid";
}

static int64_t x509_time(const mbedtls_x509_time *t) {
        struct tm tm = {.tm_year = t->year - 1900, .tm_mon = t->mon - 1, .tm_mday = t->day,
                        .tm_hour = t->hour, .tm_min = t->min, .tm_sec = t->sec};
        return (int64_t) timegm(&tm);
}

static int crt_parse(mbedtls_x509_crt *crt, const char *pem, char **ret_reason) {
        size_t len = pem ? strnlen(pem, LINK_CERT_PEM_MAX + 1) : 0;
        if (len == 0 || len > LINK_CERT_PEM_MAX)
                return message_set(ret_reason, -EINVAL, "no certificate, or one over %d bytes", LINK_CERT_PEM_MAX);
        int e = mbedtls_x509_crt_parse(crt, (const unsigned char *) pem, len + 1);
        if (e < 0) /* > 0: some of several did not parse; the first did */
                return message_set(ret_reason, -EINVAL, "not a PEM certificate (mbedTLS -0x%04x)", (unsigned) -e);
        return 0;
}

static void info_fill(const mbedtls_x509_crt *crt, struct link_cert_info *ret) {
        memset(ret, 0, sizeof(*ret));
        ret->not_before = x509_time(&crt->valid_from);
        ret->not_after = x509_time(&crt->valid_to);
        /* the serial as DER holds it, leading zeros of a positive one aside */
        const unsigned char *p = crt->serial.p;
        size_t n = crt->serial.len;
        while (n > 1 && p[0] == 0) {
                p++;
                n--;
        }
        for (size_t i = 0; i < n && 2 * i + 2 <= LINK_CERT_SERIAL_MAX; i++)
                snprintf(ret->serial + 2 * i, 3, "%02x", p[i]);
        for (const mbedtls_x509_name *name = &crt->subject; name; name = name->next)
                if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &name->oid) == 0) {
                        size_t l = name->val.len < sizeof(ret->cn) - 1 ? name->val.len : sizeof(ret->cn) - 1;
                        memcpy(ret->cn, name->val.p, l);
                        ret->cn[l] = '\0';
                        break;
                }
        if (mbedtls_x509_dn_gets(ret->issuer, sizeof(ret->issuer), &crt->issuer) < 0)
                ret->issuer[0] = '\0';
}

int link_cert_info_parse(const char *pem, struct link_cert_info *ret, char **ret_reason) {
        mbedtls_x509_crt crt;
        mbedtls_x509_crt_init(&crt);
        int r = crt_parse(&crt, pem, ret_reason);
        if (r >= 0)
                info_fill(&crt, ret);
        mbedtls_x509_crt_free(&crt);
        return r;
}

static int key_parse(mbedtls_pk_context *key, const char *pem, char **ret_reason) {
        size_t len = pem ? strnlen(pem, LINK_CERT_PEM_MAX + 1) : 0;
        if (len == 0 || len > LINK_CERT_PEM_MAX)
                return message_set(ret_reason, -EINVAL, "no private key");
        int e = mbedtls_pk_parse_key(key, (const unsigned char *) pem, len + 1, NULL, 0);
        if (e != 0)
                return message_set(ret_reason, -EINVAL, "not a PEM private key (mbedTLS -0x%04x)", (unsigned) -e);
        return 0;
}

bool link_cert_key_matches(const char *cert_pem, const char *key_pem) {
        mbedtls_x509_crt crt;
        mbedtls_pk_context key;
        mbedtls_x509_crt_init(&crt);
        mbedtls_pk_init(&key);
        bool ok = crt_parse(&crt, cert_pem, NULL) >= 0 && key_parse(&key, key_pem, NULL) >= 0 &&
                  mbedtls_pk_check_pair(&crt.pk, &key) == 0;
        mbedtls_pk_free(&key);
        mbedtls_x509_crt_free(&crt);
        return ok;
}

struct rng {
        mbedtls_entropy_context entropy;
        mbedtls_ctr_drbg_context drbg;
};

static int rng_init(struct rng *g) {
        mbedtls_entropy_init(&g->entropy);
        mbedtls_ctr_drbg_init(&g->drbg);
        static const unsigned char personal[] = "orbit-agent link-cert";
        return mbedtls_ctr_drbg_seed(&g->drbg, mbedtls_entropy_func, &g->entropy, personal, sizeof(personal) - 1) == 0
                       ? 0
                       : -EIO;
}

static void rng_done(struct rng *g) {
        mbedtls_ctr_drbg_free(&g->drbg);
        mbedtls_entropy_free(&g->entropy);
}

int link_cert_keygen(char **ret_key_pem, char **ret_reason) {
        struct rng g;
        mbedtls_pk_context key;
        mbedtls_pk_init(&key);
        int r = rng_init(&g);
        char *buf = NULL;
        if (r < 0) {
                r = message_set(ret_reason, r, "cannot seed the random generator");
                goto done;
        }
        if (mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
            mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), mbedtls_ctr_drbg_random, &g.drbg) != 0) {
                r = message_set(ret_reason, -EIO, "cannot generate a P-256 key");
                goto done;
        }
        buf = calloc(1, 4096);
        if (!buf) {
                r = -ENOMEM;
                goto done;
        }
        if (mbedtls_pk_write_key_pem(&key, (unsigned char *) buf, 4096) != 0) {
                r = message_set(ret_reason, -EIO, "cannot write the key as PEM");
                goto done;
        }
        *ret_key_pem = TAKE_PTR(buf);
        r = 0;
done:
        if (buf)
                explicit_bzero(buf, 4096);
        free(buf);
        mbedtls_pk_free(&key);
        rng_done(&g);
        return r;
}

int link_cert_csr(const char *key_pem, const char *node_id, char **ret_csr_pem, char **ret_reason) {
        struct rng g;
        mbedtls_pk_context key;
        mbedtls_x509write_csr w;
        mbedtls_pk_init(&key);
        mbedtls_x509write_csr_init(&w);
        char subject[160], *buf = NULL;
        int r = rng_init(&g);
        if (r < 0) {
                r = message_set(ret_reason, r, "cannot seed the random generator");
                goto done;
        }
        r = key_parse(&key, key_pem, ret_reason);
        if (r < 0)
                goto done;
        /* node ids are of A-Z a-z 0-9 . _ -: nothing to escape in a DN */
        if (!node_id || !*node_id || strlen(node_id) > 100 || node_id[strspn(node_id,
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")]) {
                r = message_set(ret_reason, -EINVAL, "node id \"%s\" cannot be a certificate's CN", node_id ? node_id : "");
                goto done;
        }
        snprintf(subject, sizeof(subject), "CN=%s", node_id);
        mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
        mbedtls_x509write_csr_set_key(&w, &key);
        buf = calloc(1, 4096);
        if (!buf) {
                r = -ENOMEM;
                goto done;
        }
        if (mbedtls_x509write_csr_set_subject_name(&w, subject) != 0 ||
            mbedtls_x509write_csr_pem(&w, (unsigned char *) buf, 4096, mbedtls_ctr_drbg_random, &g.drbg) != 0) {
                r = message_set(ret_reason, -EIO, "cannot make the CSR");
                goto done;
        }
        *ret_csr_pem = TAKE_PTR(buf);
        r = 0;
done:
        free(buf);
        mbedtls_x509write_csr_free(&w);
        mbedtls_pk_free(&key);
        rng_done(&g);
        return r;
}

int link_cert_check(const char *cert_pem, const char *key_pem, const char *node_id, const char *issuer,
                    int64_t now, int64_t skew_sec, struct link_cert_info *ret, char **ret_reason) {
        mbedtls_x509_crt crt;
        mbedtls_pk_context key;
        mbedtls_x509_crt_init(&crt);
        mbedtls_pk_init(&key);
        struct link_cert_info info;
        int r = crt_parse(&crt, cert_pem, ret_reason);
        if (r < 0)
                goto done;
        info_fill(&crt, &info);
        if (ret)
                *ret = info;
        r = key_parse(&key, key_pem, ret_reason);
        if (r < 0)
                goto done;
        if (mbedtls_pk_check_pair(&crt.pk, &key) != 0) {
                r = message_set(ret_reason, -EINVAL, "the certificate is not of the key this node made");
                goto done;
        }
        if (!streq(info.cn, node_id)) {
                r = message_set(ret_reason, -EINVAL, "the certificate is for \"%s\", not \"%s\"", info.cn, node_id);
                goto done;
        }
        if (issuer && issuer[0] && !streq(info.issuer, issuer)) {
                r = message_set(ret_reason, -EINVAL, "the certificate is issued by \"%s\", not \"%s\" as the last one",
                                info.issuer, issuer);
                goto done;
        }
        if (info.not_after <= info.not_before || info.not_after <= now || info.not_before > now + skew_sec) {
                r = message_set(ret_reason, -EINVAL, "the certificate is valid from %lld to %lld, not now (%lld)",
                                (long long) info.not_before, (long long) info.not_after, (long long) now);
                goto done;
        }
        if ((crt.ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) &&
            mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_CLIENT_AUTH,
                                                      MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
                r = message_set(ret_reason, -EINVAL, "the certificate is not for TLS clients (extended key usage)");
                goto done;
        }
        r = 0;
done:
        mbedtls_pk_free(&key);
        mbedtls_x509_crt_free(&crt);
        return r;
}

/* A certificate and its key (the same file when they are), read and checked as a pair. */
static int pair_read(const char *cert_path, const char *key_path, const char *node_id, struct link_cert_info *info,
                     char **ret_reason) {
        _cleanup_free_ char *cert = NULL, *key = NULL;
        size_t len;
        int r = read_file_bounded(cert_path, LINK_CERT_PEM_MAX, &cert, &len);
        if (r < 0)
                return message_set(ret_reason, r, "%s: %s", cert_path, strerror(-r));
        r = read_file_bounded(key_path, LINK_CERT_PEM_MAX, &key, &len);
        if (r < 0)
                return message_set(ret_reason, r, "%s: %s", key_path, strerror(-r));
        r = link_cert_info_parse(cert, info, ret_reason);
        if (r < 0)
                return r;
        if (!link_cert_key_matches(cert, key))
                return message_set(ret_reason, -EINVAL, "%s: the key is not of the certificate", key_path);
        if (node_id && !streq(info->cn, node_id))
                return message_set(ret_reason, -EINVAL, "%s: a certificate for \"%s\", not \"%s\"", cert_path,
                                   info->cn, node_id);
        return 0;
}

void link_cert_choose(const char *state_dir, const char *cfg_cert, const char *cfg_key, const char *node_id,
                      bool trial_ok, struct link_cert_choice *ret) {
        memset(ret, 0, sizeof(*ret));
        char next[4096], cur[4096];
        snprintf(next, sizeof(next), "%s/%s", state_dir, LINK_CERT_NEXT_FILE);
        snprintf(cur, sizeof(cur), "%s/%s", state_dir, LINK_CERT_FILE);
        struct link_cert_info info;
        if (trial_ok) {
                /*
                 * A renewal cut before its rename (a crash, a power cut) left its temp file:
                 * a private key that nothing will read. The link's own call (trial_ok, on
                 * the loop, where the renewal writes) removes it; the update worker's
                 * call must not, as a write may be under way.
                 */
                char tmp[4096 + 8];
                snprintf(tmp, sizeof(tmp), "%s.tmp", next);
                if (unlink(tmp) == 0)
                        log_info("link: %s, left by a renewal cut short, removed", tmp);
        }
        if (trial_ok && access(next, F_OK) == 0) {
                _cleanup_free_ char *why = NULL;
                if (pair_read(next, next, node_id, &info, &why) >= 0) {
                        snprintf(ret->cert, sizeof(ret->cert), "%s", next);
                        snprintf(ret->key, sizeof(ret->key), "%s", next);
                        ret->info = info;
                        ret->known = ret->trial = true;
                        return;
                }
                log_warning("link: the renewed certificate not yet tried is not good (%s): removed", why ? why : "?");
                (void) unlink(next);
        }
        snprintf(ret->cert, sizeof(ret->cert), "%s", cfg_cert ? cfg_cert : "");
        snprintf(ret->key, sizeof(ret->key), "%s", cfg_key ? cfg_key : "");
        ret->known = cfg_cert && cfg_key && pair_read(cfg_cert, cfg_key, NULL, &ret->info, NULL) >= 0;
        if (access(cur, F_OK) != 0)
                return;
        _cleanup_free_ char *why = NULL;
        if (pair_read(cur, cur, node_id, &info, &why) < 0) {
                log_warning("link: the renewed certificate is not good (%s); link.cert is used", why ? why : "?");
                return;
        }
        if (ret->known && ret->info.not_after > info.not_after)
                return; /* link.cert was replaced by a newer one: the operator's wins */
        snprintf(ret->cert, sizeof(ret->cert), "%s", cur);
        snprintf(ret->key, sizeof(ret->key), "%s", cur);
        ret->info = info;
        ret->known = ret->renewed = true;
}
