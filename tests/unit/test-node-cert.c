/*
 * Node certificates, both ends: the controller's issuing (controller/node-cert.c, GnuTLS)
 * of the agent's CSR (agent/link-cert.c, mbedTLS), and the agent's checks of what comes
 * back. The node CA is made here with GnuTLS.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "agent/link-cert.h"
#include "controller/node-cert.h"

#define DAY 86400

struct fixture {
        char dir[64], ca_path[128], key_path[128], other_key_path[128];
        int64_t now, ca_not_after;
        struct node_ca *ca;
};

static void write_datum(const char *path, gnutls_datum_t *d) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
        fclose(f);
        gnutls_free(d->data);
}

/* A self-signed node CA of key, valid from now - 1 day for days. */
static void make_ca(const char *key_path, const char *cert_path, int64_t now, int days) {
        gnutls_x509_privkey_t key;
        gnutls_x509_crt_t crt;
        gnutls_datum_t d;
        assert_int_equal(gnutls_x509_privkey_init(&key), 0);
        assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        unsigned char serial[] = {1};
        assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
        assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, 1), 0);
        assert_int_equal(gnutls_x509_crt_set_dn(crt, "CN=fleet node CA", NULL), 0);
        assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
        assert_int_equal(gnutls_x509_crt_set_activation_time(crt, (time_t) (now - DAY)), 0);
        assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, (time_t) (now - DAY + (int64_t) days * DAY)), 0);
        assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 1, -1), 0);
        assert_int_equal(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN), 0);
        assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
        assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
        write_datum(cert_path, &d);
        assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d), 0);
        write_datum(key_path, &d);
        gnutls_x509_crt_deinit(crt);
        gnutls_x509_privkey_deinit(key);
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-node-cert.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->ca_path, sizeof(f->ca_path), "%s/ca.pem", f->dir);
        snprintf(f->key_path, sizeof(f->key_path), "%s/ca.key", f->dir);
        snprintf(f->other_key_path, sizeof(f->other_key_path), "%s/other.key", f->dir);
        f->now = (int64_t) time(NULL);
        make_ca(f->key_path, f->ca_path, f->now, 365);
        char *why = NULL;
        assert_int_equal(node_ca_load(f->ca_path, f->key_path, &f->ca, &why), 0);
        f->ca_not_after = node_ca_not_after(f->ca);
        assert_true(f->ca_not_after > f->now + 300 * DAY);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        node_ca_free(f->ca);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static void test_issue_and_check(void **state) {
        struct fixture *f = *state;
        char *key = NULL, *csr = NULL, *why = NULL;
        assert_int_equal(link_cert_keygen(&key, &why), 0);
        assert_int_equal(link_cert_csr(key, "sat-1", &csr, &why), 0);
        struct node_cert_issued c;
        assert_int_equal(node_cert_issue(f->ca, csr, "sat-1", f->now, 90, &c, &why), 0);
        assert_int_equal(c.not_after, f->now + 90 * DAY);
        assert_int_equal(c.not_before, f->now - NODE_CERT_BACKDATE_SEC);
        assert_false(c.capped);
        assert_int_equal(strlen(c.serial), 32);
        /* the agent takes it: its key, its CN, the issuer of the last one, valid now */
        struct link_cert_info info;
        assert_int_equal(link_cert_check(c.pem, key, "sat-1", "CN=fleet node CA", f->now, 300, &info, &why), 0);
        assert_string_equal(info.serial, c.serial);
        assert_string_equal(info.cn, "sat-1");
        assert_int_equal(info.not_after, c.not_after);
        /* ... and refuses it for another node, another key, another issuer, or at a time it is not valid */
        assert_int_equal(link_cert_check(c.pem, key, "sat-2", NULL, f->now, 300, NULL, &why), -EINVAL);
        assert_non_null(strstr(why, "not \"sat-2\""));
        free(why);
        char *other = NULL;
        assert_int_equal(link_cert_keygen(&other, &why), 0);
        assert_int_equal(link_cert_check(c.pem, other, "sat-1", NULL, f->now, 300, NULL, &why), -EINVAL);
        assert_non_null(strstr(why, "not of the key"));
        free(why);
        assert_int_equal(link_cert_check(c.pem, key, "sat-1", "CN=another CA", f->now, 300, NULL, &why), -EINVAL);
        free(why);
        assert_int_equal(link_cert_check(c.pem, key, "sat-1", NULL, f->now + 91 * DAY, 300, NULL, &why), -EINVAL);
        free(why);
        assert_int_equal(link_cert_check(c.pem, key, "sat-1", NULL, f->now - DAY, 300, NULL, &why), -EINVAL);
        free(why);
        why = NULL;
        /* two certificates for one CSR: new serials */
        struct node_cert_issued c2;
        assert_int_equal(node_cert_issue(f->ca, csr, "sat-1", f->now, 90, &c2, &why), 0);
        assert_string_not_equal(c.serial, c2.serial);
        node_cert_issued_done(&c2);
        node_cert_issued_done(&c);
        free(other);
        free(csr);
        free(key);
}

static void test_refusals(void **state) {
        struct fixture *f = *state;
        char *key = NULL, *csr = NULL, *why = NULL;
        struct node_cert_issued c;
        assert_int_equal(link_cert_keygen(&key, &why), 0);
        assert_int_equal(link_cert_csr(key, "sat-9", &csr, &why), 0);
        /* a CSR for another node than the one that asks */
        assert_int_equal(node_cert_issue(f->ca, csr, "sat-1", f->now, 90, &c, &why), -EINVAL);
        assert_non_null(strstr(why, "\"CN=sat-9\", not \"CN=sat-1\""));
        free(why);
        /* a CSR whose signature does not verify (a byte of its base64 changed) */
        char *bad = strdup(csr);
        char *body = strstr(bad, "\n") + 40;
        *body = *body == 'A' ? 'B' : 'A';
        assert_int_equal(node_cert_issue(f->ca, bad, "sat-9", f->now, 90, &c, &why), -EINVAL);
        free(why);
        assert_int_equal(node_cert_issue(f->ca, "junk", "sat-9", f->now, 90, &c, &why), -EINVAL);
        free(why);
        assert_int_equal(node_cert_issue(f->ca, "", "sat-9", f->now, 90, &c, &why), -EINVAL);
        free(why);
        assert_int_equal(node_cert_issue(f->ca, csr, "sat-9", f->now, 0, &c, &why), -EINVAL);
        free(why);
        /* never past the CA's end: cut to it, said so */
        assert_int_equal(node_cert_issue(f->ca, csr, "sat-9", f->now, 3000, &c, &why), 0);
        assert_true(c.capped);
        assert_int_equal(c.not_after, f->ca_not_after);
        node_cert_issued_done(&c);
        /* nothing from a CA that expired */
        assert_int_equal(node_cert_issue(f->ca, csr, "sat-9", f->ca_not_after, 90, &c, &why), -EKEYEXPIRED);
        free(why);
        free(bad);
        free(csr);
        free(key);
}

static void test_ca_load(void **state) {
        struct fixture *f = *state;
        char *why = NULL;
        struct node_ca *ca = NULL;
        /* a key that is not the CA's */
        char other_ca[160];
        snprintf(other_ca, sizeof(other_ca), "%s/other.pem", f->dir);
        make_ca(f->other_key_path, other_ca, f->now, 30);
        assert_int_equal(node_ca_load(f->ca_path, f->other_key_path, &ca, &why), -EINVAL);
        assert_non_null(strstr(why, "no certificate in the node CA"));
        free(why);
        why = NULL;
        /* the CA file may hold several: the key's is found */
        char both[160], cmd[512];
        snprintf(both, sizeof(both), "%s/both.pem", f->dir);
        snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", other_ca, f->ca_path, both);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(node_ca_load(both, f->key_path, &ca, &why), 0);
        assert_int_equal(node_ca_not_after(ca), f->ca_not_after);
        node_ca_free(ca);
        assert_int_equal(node_ca_load("/nonexistent", f->key_path, &ca, &why), -ENOENT);
        free(why);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_issue_and_check, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ca_load, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
