/* Node certificates issued by the controller (controller/node-cert.h), with GnuTLS. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "controller/node-cert.h"
#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/message.h"

#define PEM_FILE_MAX (256 * 1024)

struct node_ca {
        gnutls_x509_crt_t cert;
        gnutls_x509_privkey_t key;
        int64_t not_after;
};

void node_ca_free(struct node_ca *ca) {
        if (!ca)
                return;
        if (ca->cert)
                gnutls_x509_crt_deinit(ca->cert);
        if (ca->key)
                gnutls_x509_privkey_deinit(ca->key);
        free(ca);
}

int64_t node_ca_not_after(const struct node_ca *ca) {
        return ca->not_after;
}

int node_ca_load(const char *ca_path, const char *key_path, struct node_ca **ret, char **ret_reason) {
        _cleanup_free_ char *ca_pem = NULL, *key_pem = NULL;
        size_t ca_len = 0, key_len = 0;
        int r = read_file_bounded(ca_path, PEM_FILE_MAX, &ca_pem, &ca_len);
        if (r < 0)
                return message_set(ret_reason, r, "cannot read the node CA %s: %s", ca_path, strerror(-r));
        r = read_file_bounded(key_path, PEM_FILE_MAX, &key_pem, &key_len);
        if (r < 0)
                return message_set(ret_reason, r, "cannot read the node CA key %s: %s", key_path, strerror(-r));
        struct node_ca *ca = calloc(1, sizeof(*ca));
        if (!ca)
                return -ENOMEM;
        gnutls_datum_t kd = {.data = (unsigned char *) key_pem, .size = (unsigned) key_len};
        if (gnutls_x509_privkey_init(&ca->key) < 0) {
                node_ca_free(ca);
                return -ENOMEM;
        }
        int g = gnutls_x509_privkey_import2(ca->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (g < 0) {
                node_ca_free(ca);
                return message_set(ret_reason, -EINVAL, "the node CA key %s: %s", key_path, gnutls_strerror(g));
        }
        unsigned char key_id[64], cert_id[64];
        size_t key_id_len = sizeof(key_id);
        g = gnutls_x509_privkey_get_key_id(ca->key, GNUTLS_KEYID_USE_SHA256, key_id, &key_id_len);
        if (g < 0) {
                node_ca_free(ca);
                return message_set(ret_reason, -EINVAL, "the node CA key %s: %s", key_path, gnutls_strerror(g));
        }
        gnutls_x509_crt_t *list = NULL;
        unsigned n = 0;
        gnutls_datum_t cd = {.data = (unsigned char *) ca_pem, .size = (unsigned) ca_len};
        g = gnutls_x509_crt_list_import2(&list, &n, &cd, GNUTLS_X509_FMT_PEM, 0);
        if (g < 0) {
                node_ca_free(ca);
                return message_set(ret_reason, -EINVAL, "the node CA %s: %s", ca_path, gnutls_strerror(g));
        }
        for (unsigned i = 0; i < n; i++) {
                size_t len = sizeof(cert_id);
                if (!ca->cert && gnutls_x509_crt_get_key_id(list[i], GNUTLS_KEYID_USE_SHA256, cert_id, &len) >= 0 &&
                    len == key_id_len && memcmp(cert_id, key_id, len) == 0)
                        ca->cert = list[i];
                else
                        gnutls_x509_crt_deinit(list[i]);
        }
        gnutls_free(list);
        if (!ca->cert) {
                node_ca_free(ca);
                return message_set(ret_reason, -EINVAL, "no certificate in the node CA %s is of the key %s",
                                   ca_path, key_path);
        }
        unsigned critical = 0;
        if (gnutls_x509_crt_get_basic_constraints(ca->cert, &critical, NULL, NULL) <= 0) {
                node_ca_free(ca);
                return message_set(ret_reason, -EINVAL, "the certificate of %s in %s is not a CA", key_path,
                                   ca_path);
        }
        ca->not_after = (int64_t) gnutls_x509_crt_get_expiration_time(ca->cert);
        *ret = ca;
        return 0;
}

void node_cert_issued_done(struct node_cert_issued *c) {
        free(c->pem);
        c->pem = NULL;
}

static int crq_check(gnutls_x509_crq_t crq, const char *node, char **ret_reason) {
        int g = gnutls_x509_crq_verify(crq, 0);
        if (g < 0)
                return message_set(ret_reason, -EINVAL, "the CSR's signature does not verify: %s", gnutls_strerror(g));
        /* the subject is exactly CN=<node>: nothing else rides along into a certificate */
        char dn[512], want[512];
        size_t size = sizeof(dn);
        g = gnutls_x509_crq_get_dn(crq, dn, &size);
        if (g < 0)
                return message_set(ret_reason, -EINVAL, "the CSR's subject: %s", gnutls_strerror(g));
        snprintf(want, sizeof(want), "CN=%s", node);
        if (!streq(dn, want))
                return message_set(ret_reason, -EINVAL, "the CSR's subject is \"%.200s\", not \"%s\"", dn, want);
        unsigned bits = 0;
        int pk = gnutls_x509_crq_get_pk_algorithm(crq, &bits);
        if (pk == GNUTLS_PK_ECDSA) {
                if (bits < 256)
                        return message_set(ret_reason, -EINVAL, "the CSR's EC key has %u bits: 256 or more", bits);
        } else if (pk == GNUTLS_PK_RSA) {
                if (bits < 2048)
                        return message_set(ret_reason, -EINVAL, "the CSR's RSA key has %u bits: 2048 or more", bits);
        } else
                return message_set(ret_reason, -EINVAL, "the CSR's key is of algorithm %d: EC or RSA only", pk);
        return 0;
}

int node_cert_issue(const struct node_ca *ca, const char *csr_pem, const char *node, int64_t now, unsigned days,
                    struct node_cert_issued *ret, char **ret_reason) {
        memset(ret, 0, sizeof(*ret));
        size_t len = csr_pem ? strnlen(csr_pem, NODE_CSR_MAX + 1) : 0;
        if (len == 0 || len > NODE_CSR_MAX)
                return message_set(ret_reason, -EINVAL, "the CSR is empty or over %d bytes", NODE_CSR_MAX);
        if (days == 0 || days > 3650)
                return message_set(ret_reason, -EINVAL, "certificates of %u days: 1 to 3650", days);
        int64_t not_before = now - NODE_CERT_BACKDATE_SEC, not_after = now + (int64_t) days * 86400;
        bool capped = false;
        if (not_after > ca->not_after) {
                not_after = ca->not_after;
                capped = true;
        }
        if (not_after <= now)
                return message_set(ret_reason, -EKEYEXPIRED, "the node CA expired at %lld: it issues nothing",
                                   (long long) ca->not_after);
        gnutls_x509_crq_t crq = NULL;
        gnutls_x509_crt_t crt = NULL;
        gnutls_datum_t out = {};
        int r;
        if (gnutls_x509_crq_init(&crq) < 0 || gnutls_x509_crt_init(&crt) < 0) {
                r = -ENOMEM;
                goto done;
        }
        gnutls_datum_t d = {.data = (unsigned char *) csr_pem, .size = (unsigned) len};
        int g = gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM);
        if (g < 0) {
                r = message_set(ret_reason, -EINVAL, "not a PEM CSR: %s", gnutls_strerror(g));
                goto done;
        }
        r = crq_check(crq, node, ret_reason);
        if (r < 0)
                goto done;
        unsigned char serial[16], key_id[64];
        size_t key_id_len = sizeof(key_id);
        if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0) {
                r = message_set(ret_reason, -EIO, "no random serial");
                goto done;
        }
        serial[0] = (unsigned char) ((serial[0] & 0x7f) | 0x01); /* positive, 16 bytes */
        /* the CSR's subject and key; nothing of its extensions */
        if ((g = gnutls_x509_crt_set_crq(crt, crq)) < 0 || (g = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
            (g = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
            (g = gnutls_x509_crt_set_activation_time(crt, (time_t) not_before)) < 0 ||
            (g = gnutls_x509_crt_set_expiration_time(crt, (time_t) not_after)) < 0 ||
            (g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
            (g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
            (g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 1)) < 0 ||
            (g = gnutls_x509_crt_get_key_id(crt, 0, key_id, &key_id_len)) < 0 ||
            (g = gnutls_x509_crt_set_subject_key_id(crt, key_id, key_id_len)) < 0 ||
            (g = gnutls_x509_crt_sign2(crt, ca->cert, ca->key, GNUTLS_DIG_SHA256, 0)) < 0 ||
            (g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out)) < 0) {
                r = message_set(ret_reason, -EIO, "cannot sign the certificate: %s", gnutls_strerror(g));
                goto done;
        }
        ret->pem = strndup((const char *) out.data, out.size);
        if (!ret->pem) {
                r = -ENOMEM;
                goto done;
        }
        for (size_t i = 0; i < sizeof(serial); i++)
                snprintf(ret->serial + 2 * i, 3, "%02x", serial[i]);
        ret->not_before = not_before;
        ret->not_after = not_after;
        ret->capped = capped;
        r = 0;
done:
        gnutls_free(out.data);
        if (crt)
                gnutls_x509_crt_deinit(crt);
        if (crq)
                gnutls_x509_crq_deinit(crq);
        return r;
}
