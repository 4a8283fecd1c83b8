/*
 * Unit tests for the node's trust store (agent/trust-store.c) against radiation and power
 * cuts: a flipped bit in <state_dir>/trust must not bring back an older document (whose
 * revocations the newer one added), and a floor reset a document carries must not be lost
 * to a power cut between saving the document and applying it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/trust-store.h"
#include "agent/trusted-time.h"
#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/statefile.h"
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

static void keygen(const char *name, const char *subject, bool ca, enum signature_role role) {
        struct signature_keygen_options o = {
                .subject = subject, .ca = ca, .role = role, .not_before = T - 86400, .days = 365};
        _cleanup_free_ char *reason = NULL;
        char k[PATH_MAX], c[PATH_MAX];
        snprintf(k, sizeof(k), "%s/%s.key", dir, name);
        snprintf(c, sizeof(c), "%s/%s.pem", dir, name);
        int r = signature_keygen(&o, k, c, &reason);
        if (r < 0)
                fail_msg("keygen %s: %s", name, reason);
}

static char *slurp(const char *p) {
        char *text = NULL;
        size_t l = 0;
        assert_int_equal(read_file_bounded(p, 1 << 20, &text, &l), 0);
        return text;
}

/* Version v signed by root1 (threshold 1), with a floor reset when reset > 0. */
static char *make(int64_t v, int64_t reset) {
        _cleanup_free_ char *root = slurp(path("root1.pem")), *rel = slurp(path("rel-ca.pem")),
                            *cmd = slurp(path("cmd-ca.pem"));
        struct trust_document_spec s = {.version = v,
                                        .expires = T + 86400 * 365,
                                        .threshold = 1,
                                        .time_floor_reset = reset,
                                        .roots = (const char *const[]){root, NULL},
                                        .release = (const char *const[]){rel, NULL},
                                        .command = (const char *const[]){cmd, NULL},
                                        .revoked = (const char *const[]){NULL}};
        char *env = NULL, *why = NULL, *text = NULL, *sig = NULL, *next = NULL;
        size_t len, sig_len;
        if (trust_envelope_new(&s, &env, &why) < 0)
                fail_msg("envelope: %s", why);
        assert_int_equal(trust_envelope_signed_text(env, strlen(env), &text, &len, NULL), 0);
        if (signature_sign(SIGNATURE_FOR_TRUST, text, len, path("root1.key"), path("root1.pem"), &sig,
                           &sig_len, &why) < 0)
                fail_msg("sign: %s", why);
        assert_int_equal(trust_envelope_add_signature(env, strlen(env), sig, sig_len, &next, NULL), 0);
        free(env);
        free(text);
        free(sig);
        return next;
}

static void offer(const char *env, int want) {
        int64_t v;
        _cleanup_free_ char *why = NULL;
        int r = trust_store_offer(env, strlen(env), &v, &why);
        if (r != want)
                fail_msg("offer: %d, expected %d (%s)", r, want, why ? why : "");
}

/* A bit flipped in a state file's payload (its checksum then fails). */
static void flip(const char *name) {
        char *p = path(name);
        _cleanup_free_ char *raw = NULL;
        size_t len;
        assert_int_equal(read_file_bounded(p, 1 << 20, &raw, &len), 0);
        raw[len - 2] ^= 0x04;
        assert_int_equal(write_file_durable(p, raw, len, 0600), 0);
}

static void copy(const char *from, const char *to) {
        _cleanup_free_ char *raw = NULL;
        size_t len;
        assert_int_equal(read_file_bounded(path(from), 1 << 20, &raw, &len), 0);
        assert_int_equal(write_file_durable(path(to), raw, len, 0600), 0);
}

static void restart(void) {
        trust_store_done();
        assert_int_equal(trust_store_init(dir, path("image.json")), 0);
}

static int setup(void **state) {
        (void) state;
        T = time(NULL);
        dir = test_mkdtemp();
        assert_non_null(dir);
        keygen("root1", "CN=root 1", false, SIGNATURE_ROLE_ROOT);
        keygen("rel-ca", "CN=release CA", true, SIGNATURE_ROLE_NONE);
        keygen("cmd-ca", "CN=command CA", true, SIGNATURE_ROLE_NONE);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        trust_store_done();
        (void) rmdir(path("trust.tmp")); /* a failed test_floor_reset_... */
        (void) rmdir(path("time.tmp"));
        test_rmdir(dir);
        return 0;
}

static void test_bit_flip_does_not_bring_back_an_older_document(void **state) {
        (void) state;
        _cleanup_free_ char *v1 = make(1, 0), *v2 = make(2, 0), *v3 = make(3, 0);
        assert_int_equal(write_file_durable(path("image.json"), v1, strlen(v1), 0644), 0);
        restart();
        assert_int_equal(trust_store_version(), 1);
        offer(v2, 1);
        copy("trust", "trust-v2"); /* what the first save of v3 leaves as .prev */
        offer(v3, 1);
        assert_int_equal(trust_store_version(), 3);
        /* the saved v3 takes a hit: v3 again, not v2 (whose anchors v3 may revoke) */
        flip("trust");
        restart();
        assert_int_equal(trust_store_version(), 3);
        /* the last good copy takes one */
        flip("trust.prev");
        restart();
        assert_int_equal(trust_store_version(), 3);
        /* a power cut left the previous document as the last good copy: the next start
         * makes it the one in force again, and then a hit on the file costs nothing */
        copy("trust-v2", "trust.prev");
        restart();
        assert_int_equal(trust_store_version(), 3);
        flip("trust");
        restart();
        assert_int_equal(trust_store_version(), 3);
        /* and the link cannot bring v2 back */
        offer(v2, -ESTALE);
        unlink(path("trust"));
        unlink(path("trust.prev"));
        unlink(path("trust-v2"));
        unlink(path("image.json"));
}

/*
 * A floor reset is applied before its document is saved. The other way round, a power cut
 * after the save lost it for good: at the next start the document is in force, the
 * controller stops sending it, and the floor a hostile controller pushed ahead stays. A
 * save that fails stands for the cut here.
 */
static void test_floor_reset_not_lost_to_a_cut_after_the_save(void **state) {
        (void) state;
        json_t *floor = json_pack("{s:I}", "floor", (json_int_t) (T + 365 * 86400));
        assert_int_equal(statefile_save_json(dir, TRUSTED_TIME_FILE, floor), 0);
        json_decref(floor);
        assert_int_equal(trusted_clock_init(dir, 30 * 86400), 0);
        assert_true(trusted_clock_now(NULL) >= T + 365 * 86400);
        _cleanup_free_ char *v1 = make(1, 0), *v2 = make(2, T - 60);
        assert_int_equal(write_file_durable(path("image.json"), v1, strlen(v1), 0644), 0);
        restart();
        assert_int_equal(trust_store_version(), 1);
        assert_int_equal(mkdir(path("trust.tmp"), 0700), 0); /* the save fails */
        offer(v2, -EISDIR);
        assert_int_equal(trust_store_version(), 1);
        assert_true(trusted_clock_now(NULL) < T + 86400);
        assert_int_equal(rmdir(path("trust.tmp")), 0);
        offer(v2, 1);
        assert_int_equal(trust_store_version(), 2);
        assert_true(trusted_clock_now(NULL) < T + 86400);
        unlink(path("trust"));
        unlink(path("trust.prev"));
        unlink(path("image.json"));
}

/*
 * A release's image brought v5 (newer than the v3 the link brought): it is in force. The
 * update then rolls back to the previous slot, whose image has v1: v5 must stay in force,
 * not the saved v3 (whose anchors v5 may revoke).
 */
static void test_rollback_to_an_older_image_keeps_its_document(void **state) {
        (void) state;
        _cleanup_free_ char *v1 = make(1, 0), *v2 = make(2, 0), *v3 = make(3, 0), *v5 = make(5, 0);
        assert_int_equal(write_file_durable(path("image.json"), v1, strlen(v1), 0644), 0);
        restart();
        offer(v2, 1);
        offer(v3, 1);
        assert_int_equal(write_file_durable(path("image.json"), v5, strlen(v5), 0644), 0);
        restart();
        assert_int_equal(trust_store_version(), 5);
        assert_int_equal(write_file_durable(path("image.json"), v1, strlen(v1), 0644), 0);
        restart();
        assert_int_equal(trust_store_version(), 5);
        offer(v3, -ESTALE);
        unlink(path("trust"));
        unlink(path("trust.prev"));
        unlink(path("image.json"));
}

/*
 * The lowered floor is what the time file and its last good copy hold: a bit flip in the
 * file must not bring back the floor from before the reset (the last good copy of a
 * single save). And a reset that cannot be saved refuses its document, which comes again.
 */
static void test_floor_reset_survives_a_bit_flip(void **state) {
        (void) state;
        json_t *floor = json_pack("{s:I}", "floor", (json_int_t) (T + 365 * 86400));
        assert_int_equal(statefile_save_json(dir, TRUSTED_TIME_FILE, floor), 0);
        json_decref(floor);
        assert_int_equal(trusted_clock_init(dir, 30 * 86400), 0);
        _cleanup_free_ char *v1 = make(1, 0), *v2 = make(2, T - 60);
        assert_int_equal(write_file_durable(path("image.json"), v1, strlen(v1), 0644), 0);
        restart();
        assert_int_equal(mkdir(path("time.tmp"), 0700), 0); /* the floor cannot be saved */
        offer(v2, -EISDIR);
        assert_int_equal(trust_store_version(), 1);
        assert_int_equal(rmdir(path("time.tmp")), 0);
        offer(v2, 1);
        assert_true(trusted_clock_now(NULL) < T + 86400);
        flip(TRUSTED_TIME_FILE);
        assert_int_equal(trusted_clock_init(dir, 30 * 86400), 0);
        assert_true(trusted_clock_now(NULL) < T + 86400);
        unlink(path("trust"));
        unlink(path("trust.prev"));
        unlink(path("image.json"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bit_flip_does_not_bring_back_an_older_document),
                cmocka_unit_test(test_floor_reset_not_lost_to_a_cut_after_the_save),
                cmocka_unit_test(test_rollback_to_an_older_image_keeps_its_document),
                cmocka_unit_test(test_floor_reset_survives_a_bit_flip),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
