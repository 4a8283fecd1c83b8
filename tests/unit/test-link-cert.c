/* The node's certificate renewal, the agent's side: tests/unit for agent/link-cert.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/link-cert.h"
#include "test-util.h"

#define DAY 86400
#define T0 1790000000

static void test_renewal_window(void **state) {
        (void) state;
        /* 90 days from T0, renewed 30 days before its end */
        int64_t nb = T0, na = T0 + 90 * DAY, before = 30 * DAY;
        assert_int_equal(link_cert_renewal_at(T0 + DAY, nb, na, before), LINK_CERT_VALID);
        assert_int_equal(link_cert_renewal_at(na - 30 * DAY - 1, nb, na, before), LINK_CERT_VALID);
        assert_int_equal(link_cert_renewal_at(na - 30 * DAY, nb, na, before), LINK_CERT_DUE);
        assert_int_equal(link_cert_renewal_at(na - 1, nb, na, before), LINK_CERT_DUE);
        assert_int_equal(link_cert_renewal_at(na, nb, na, before), LINK_CERT_EXPIRED);
        assert_int_equal(link_cert_renewal_at(na + 365 * DAY, nb, na, before), LINK_CERT_EXPIRED);
        /* renewal off: never due, still expired */
        assert_int_equal(link_cert_renewal_at(na - 1, nb, na, 0), LINK_CERT_VALID);
        assert_int_equal(link_cert_renewal_at(na, nb, na, 0), LINK_CERT_EXPIRED);
        /* a certificate shorter than the window (20 days, 30 ahead): due only in its second
         * half, so a new one of the same length is not due at once (no renewal at every sync) */
        na = T0 + 20 * DAY;
        assert_int_equal(link_cert_renewal_at(T0 + 300, nb, na, before), LINK_CERT_VALID);
        assert_int_equal(link_cert_renewal_at(T0 + 10 * DAY - 1, nb, na, before), LINK_CERT_VALID);
        assert_int_equal(link_cert_renewal_at(T0 + 10 * DAY, nb, na, before), LINK_CERT_DUE);
        /* nonsense validity (ends before it starts): expired or never due, no division trap */
        assert_int_equal(link_cert_renewal_at(T0, T0 + DAY, T0 + 10, before), LINK_CERT_VALID);
        assert_string_equal(link_cert_renewal_to_string(LINK_CERT_DUE), "due");
}

static void test_key_and_csr(void **state) {
        (void) state;
        char *key = NULL, *key2 = NULL, *csr = NULL, *why = NULL;
        assert_int_equal(link_cert_keygen(&key, &why), 0);
        assert_non_null(strstr(key, "-----BEGIN EC PRIVATE KEY-----"));
        assert_int_equal(link_cert_keygen(&key2, &why), 0);
        assert_string_not_equal(key, key2); /* a new key each time */
        assert_int_equal(link_cert_csr(key, "sat-1", &csr, &why), 0);
        assert_non_null(strstr(csr, "-----BEGIN CERTIFICATE REQUEST-----"));
        free(csr);
        csr = NULL;
        /* a node id that is no CN */
        assert_int_equal(link_cert_csr(key, "sat,CN=other", &csr, &why), -EINVAL);
        assert_non_null(why);
        free(why);
        why = NULL;
        assert_int_equal(link_cert_csr("not a key", "sat-1", &csr, &why), -EINVAL);
        free(why);
        why = NULL;
        /* not a certificate */
        struct link_cert_info info;
        assert_int_equal(link_cert_info_parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &info,
                                              &why),
                         -EINVAL);
        free(why);
        why = NULL;
        assert_int_equal(link_cert_check(NULL, key, "sat-1", NULL, T0, 300, NULL, &why), -EINVAL);
        free(why);
        assert_false(link_cert_key_matches("", key));
        free(key);
        free(key2);
}

/*
 * A renewal cut before its rename leaves link-next.pem.tmp, a private key nothing reads:
 * the link's own choice (trial_ok, on the loop) removes it; the update worker's (no
 * trial) leaves it, as the loop may be writing it.
 */
static void test_choose_removes_cut_renewal(void **state) {
        (void) state;
        char *dir = test_mkdtemp();
        char tmp[PATH_MAX];
        test_path(tmp, sizeof(tmp), dir, LINK_CERT_NEXT_FILE ".tmp");
        assert_int_equal(test_write(tmp, "half a pair\n", 12), 0);
        struct link_cert_choice c;
        link_cert_choose(dir, NULL, NULL, "sat-1", false, &c);
        assert_int_equal(access(tmp, F_OK), 0);
        assert_false(c.known);
        link_cert_choose(dir, NULL, NULL, "sat-1", true, &c);
        assert_int_equal(access(tmp, F_OK), -1);
        assert_false(c.known);
        assert_false(c.trial);
        test_rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_renewal_window),
                cmocka_unit_test(test_key_and_csr),
                cmocka_unit_test(test_choose_removes_cut_renewal),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
