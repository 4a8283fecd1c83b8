/*
 * Unit tests for signed commands: params checks, payload build and strict parse, and the
 * envelope verifier the agent uses: good, replayed, expired, not yet valid, wrong node,
 * tampered payload, untrusted signer, envelope/payload mismatches.
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

#include "proto/command.h"
#include "lib/fileio.h"
#include "lib/macro.h"
#include "test-util.h"

static char *dir;
static char ca_key[PATH_MAX], ca_cert[PATH_MAX], key[PATH_MAX], cert[PATH_MAX];
static char other_key[PATH_MAX], other_cert[PATH_MAX];
static struct signature_keyring *keyring;
static int64_t T; /* now, when the test keys were made */

static void keygen(const char *subject, bool ca, const char *ik, const char *ic, const char *k,
                   const char *c) {
        struct signature_keygen_options o = {.subject = subject, .ca = ca, .role = ca ? SIGNATURE_ROLE_NONE : SIGNATURE_ROLE_COMMAND, .issuer_key_path = ik,
                                             .issuer_cert_path = ic, .days = 30,
                                             .not_before = time(NULL) - 86400};
        char *reason = NULL;
        int r = signature_keygen(&o, k, c, &reason);
        if (r < 0)
                fprintf(stderr, "keygen: %s\n", reason);
        assert_int_equal(r, 0);
}

static int setup(void **state) {
        T = (int64_t) time(NULL);
        dir = test_mkdtemp();
        assert_non_null(dir);
        test_path(ca_key, sizeof(ca_key), dir, "ca.key");
        test_path(ca_cert, sizeof(ca_cert), dir, "ca.pem");
        test_path(key, sizeof(key), dir, "signer.key");
        test_path(cert, sizeof(cert), dir, "signer.pem");
        test_path(other_key, sizeof(other_key), dir, "other.key");
        test_path(other_cert, sizeof(other_cert), dir, "other.pem");
        keygen("CN=command CA", true, NULL, NULL, ca_key, ca_cert);
        keygen("CN=command signer", false, ca_key, ca_cert, key, cert);
        keygen("CN=someone else", false, NULL, NULL, other_key, other_cert);
        char *text = NULL, *reason = NULL;
        size_t len;
        assert_int_equal(read_file_bounded(ca_cert, 65536, &text, &len), 0);
        keyring = signature_keyring_new();
        assert_int_equal(signature_keyring_add(keyring, text, len, "ca.pem", &reason), 0);
        free(text);
        return 0;
}

static int teardown(void **state) {
        signature_keyring_free(keyring);
        test_rmdir(dir);
        return 0;
}

/* A signed envelope for node, seq, [not_before, expires), signed with k/c. */
static json_t *envelope(const char *node, uint64_t seq, int64_t not_before, int64_t expires,
                        const char *action, const char *params, const char *k, const char *c,
                        char **ret_payload) {
        struct command cmd = {.seq = seq, .not_before = not_before, .expires = expires,
                              .params = json_loads(params, 0, NULL)};
        snprintf(cmd.node, sizeof(cmd.node), "%s", node);
        snprintf(cmd.action, sizeof(cmd.action), "%s", action);
        char *payload = NULL, *sig = NULL, *reason = NULL;
        size_t len;
        assert_int_equal(command_payload_build(&cmd, &payload, &reason), 0);
        assert_int_equal(signature_sign(SIGNATURE_FOR_COMMAND, payload, strlen(payload), k, c, &sig, &len, &reason), 0);
        json_t *e = command_envelope_new(seq, payload, sig);
        command_done(&cmd);
        free(sig);
        if (ret_payload)
                *ret_payload = payload;
        else
                free(payload);
        return e;
}

static int verify(json_t *e, const char *node, uint64_t last, int64_t now, char **reason) {
        struct command_verify_options o = {.node = node, .last_applied_seq = last, .now = (time_t) now,
                                           .clock_skew_sec = 30, .keyring = keyring};
        struct command c;
        *reason = NULL;
        int r = command_envelope_verify(e, &o, &c, reason);
        if (r >= 0)
                command_done(&c);
        return r;
}

static void expect(json_t *e, const char *node, uint64_t last, int64_t now, int want_r,
                   const char *want_reason) {
        char *reason;
        int r = verify(e, node, last, now, &reason);
        if (r != want_r)
                fail_msg("got %d (%s), expected %d", r, reason ? reason : "", want_r);
        if (want_reason && (!reason || !strstr(reason, want_reason)))
                fail_msg("reason \"%s\" lacks \"%s\"", reason ? reason : "", want_reason);
        free(reason);
}

static void test_payload_exact_bytes(void **state) {
        char *payload;
        json_t *e = envelope("node-1", 3, T, T + 1000, "workload.start", "{\"name\":\"cam\"}", key,
                             cert, &payload);
        char want[512];
        snprintf(want, sizeof(want),
                 "{\"format\":1,\"node\":\"node-1\",\"seq\":3,\"not_before\":%lld,"
                 "\"expires\":%lld,\"action\":\"workload.start\",\"params\":{\"name\":\"cam\"}}",
                 (long long) T, (long long) T + 1000);
        assert_string_equal(payload, want);
        assert_string_equal(json_string_value(json_object_get(e, "payload")), payload);
        assert_int_equal(json_integer_value(json_object_get(e, "seq")), 3);
        free(payload);

        /* Verified: the command comes back as signed. */
        struct command_verify_options o = {.node = "node-1", .last_applied_seq = 2, .now = (time_t) T + 500,
                                           .keyring = keyring};
        struct command c;
        char *reason = NULL;
        assert_int_equal(command_envelope_verify(e, &o, &c, &reason), 0);
        assert_int_equal(c.seq, 3);
        assert_string_equal(c.action, "workload.start");
        assert_string_equal(json_string_value(json_object_get(c.params, "name")), "cam");
        assert_int_equal(c.not_before, T);
        assert_int_equal(c.expires, T + 1000);
        command_done(&c);
        json_decref(e);
}

static void test_verify_refusals(void **state) {
        json_t *e = envelope("node-1", 5, T, T + 1000, "reboot", "{}", key, cert, NULL);
        expect(e, "node-1", 4, T + 500, 0, NULL);
        expect(e, "node-1", 5, T + 500, -ESTALE, "command 5 replayed: commands up to 5 were already applied");
        expect(e, "node-1", 9, T + 500, -ESTALE, "replayed");
        expect(e, "node-2", 0, T + 500, -EXDEV, "command 5 is for node \"node-1\", not \"node-2\"");
        expect(e, "node-1", 0, T + 1030, -ETIME, "command 5 expired at");
        {
                /* Expired but signed for us and new: the caller learns its seq and action,
                 * to move past it (a replayed expired command must not be reported and
                 * hurried forever). Refused before that point: nothing learnt. */
                struct command_verify_options o = {.node = "node-1", .last_applied_seq = 0,
                                                   .now = (time_t) T + 1030, .clock_skew_sec = 30,
                                                   .keyring = keyring};
                struct command c;
                char *reason = NULL;
                assert_int_equal(command_envelope_verify(e, &o, &c, &reason), -ETIME);
                assert_int_equal(c.seq, 5);
                assert_string_equal(c.action, "reboot");
                assert_null(c.params);
                free(reason);
                o.node = "node-2";
                assert_int_equal(command_envelope_verify(e, &o, &c, &reason), -EXDEV);
                assert_int_equal(c.seq, 0);
                free(reason);
                o.node = "node-1";
                o.last_applied_seq = 5;
                assert_int_equal(command_envelope_verify(e, &o, &c, &reason), -ESTALE);
                assert_int_equal(c.seq, 0);
                free(reason);
        }
        expect(e, "node-1", 0, T + 1029, 0, NULL); /* within the skew */
        expect(e, "node-1", 0, T - 31, -EAGAIN, "command 5 is not valid before");
        expect(e, "node-1", 0, T - 30, 0, NULL);
        expect(e, "node-1", 0, SIGNATURE_NOW_UNKNOWN, 0, NULL); /* no trusted clock */

        /* A payload changed after signing. */
        const char *p = json_string_value(json_object_get(e, "payload"));
        char *tampered = strdup(p);
        char *at = strstr(tampered, "\"reboot\"");
        memcpy(at, "\"rebooT\"", 8);
        json_t *t = json_deep_copy(e);
        json_object_set_new(t, "payload", json_string(tampered));
        expect(t, "node-1", 0, T + 500, -EBADMSG, "command 5");
        json_decref(t);
        free(tampered);

        /* The envelope's seq must be the signed one. */
        t = json_deep_copy(e);
        json_object_set_new(t, "seq", json_integer(6));
        expect(t, "node-1", 0, T + 500, -EBADMSG, "the signed payload says seq 5");
        json_decref(t);
        t = json_deep_copy(e);
        json_object_set_new(t, "extra", json_true());
        expect(t, "node-1", 0, T + 500, -EBADMSG, "envelope: unknown key \"extra\"");
        json_decref(t);
        t = json_deep_copy(e);
        json_object_del(t, "signature");
        expect(t, "node-1", 0, T + 500, -EBADMSG, "\"signature\" must be a string");
        json_decref(t);
        json_decref(e);

        /* Signed by a key the keyring does not trust. */
        e = envelope("node-1", 5, T, T + 1000, "reboot", "{}", other_key, other_cert, NULL);
        expect(e, "node-1", 0, T + 500, -EKEYREJECTED, NULL);
        json_decref(e);
}

static void test_signed_but_bad_payload(void **state) {
        /* A signer could sign garbage: the verifier still refuses it after the signature. */
        static const struct {
                const char *payload, *want;
        } cases[] = {
                {"{\"format\":1,\"node\":\"node-1\",\"seq\":5,\"not_before\":0,\"expires\":9,"
                 "\"action\":\"reboot\",\"params\":{},\"x\":1}",
                 "payload: unknown key \"x\""},
                {"{\"format\":2,\"node\":\"node-1\",\"seq\":5,\"not_before\":0,\"expires\":9,"
                 "\"action\":\"reboot\",\"params\":{}}",
                 "unsupported format 2"},
                {"{\"format\":1,\"node\":\"node-1\",\"seq\":5,\"not_before\":9,\"expires\":9,"
                 "\"action\":\"reboot\",\"params\":{}}",
                 "expires must come after not_before"},
                {"{\"format\":1,\"node\":\"node-1\",\"seq\":5,\"not_before\":0,\"expires\":9,"
                 "\"action\":\"self-destruct\",\"params\":{}}",
                 "unknown action \"self-destruct\""},
                {"{\"format\":1,\"node\":\"node-1\",\"seq\":5,\"not_before\":0,\"expires\":9,"
                 "\"action\":\"reboot\",\"params\":{\"now\":true}}",
                 "reboot: unknown parameter \"now\""},
                {"not json", "not valid JSON"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *sig = NULL, *reason = NULL;
                size_t len;
                assert_int_equal(signature_sign(SIGNATURE_FOR_COMMAND, cases[i].payload, strlen(cases[i].payload), key,
                                                cert, &sig, &len, &reason), 0);
                json_t *e = command_envelope_new(5, cases[i].payload, sig);
                char *why;
                int r = verify(e, "node-1", 0, SIGNATURE_NOW_UNKNOWN, &why);
                assert_true(r < 0);
                if (!why || !strstr(why, cases[i].want))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, why ? why : "", cases[i].want);
                free(why);
                free(sig);
                json_decref(e);
        }
}

static void expect_params(const char *action, const char *params, int want, const char *reason_part) {
        json_t *p = json_loads(params, 0, NULL);
        assert_non_null(p);
        char *reason = NULL;
        int r = command_params_check(action, p, &reason);
        if (r != want)
                fail_msg("%s %s: got %d (%s), expected %d", action, params, r, reason ? reason : "", want);
        if (reason_part && (!reason || !strstr(reason, reason_part)))
                fail_msg("%s %s: \"%s\" lacks \"%s\"", action, params, reason ? reason : "", reason_part);
        free(reason);
        json_decref(p);
}

static void test_params(void **state) {
        expect_params("workload.start", "{\"name\":\"camera_1\"}", 0, NULL);
        expect_params("workload.stop", "{\"name\":\"a-b\"}", 0, NULL);
        expect_params("workload.restart", "{}", -EINVAL, "missing parameter \"name\"");
        expect_params("workload.start", "{\"name\":\"a.b\"}", -EINVAL, "workload name");
        expect_params("workload.start", "{\"name\":\"-a\"}", -EINVAL, "workload name");
        expect_params("workload.start", "{\"name\":3}", -EINVAL, "workload name");
        expect_params("workload.start", "{\"name\":\"a\",\"x\":1}", -EINVAL, "unknown parameter \"x\"");
        expect_params("update.install", "{\"bundle_id\":\"fleet-2024.06\"}", 0, NULL);
        expect_params("update.install", "{\"url\":\"https://ground/b.obundle\"}", 0, NULL);
        expect_params("update.install", "{\"url\":\"http://ground/b\"}", -EINVAL, "https://");
        expect_params("update.install", "{\"url\":\"https://a b\"}", -EINVAL, "https://");
        expect_params("update.install", "{}", -EINVAL, "exactly one of");
        expect_params("update.install", "{\"bundle_id\":\"a\",\"url\":\"https://x\"}", -EINVAL,
                      "exactly one of");
        expect_params("update.install", "{\"bundle_id\":\"../x\"}", -EINVAL, "bundle id");
        expect_params("update.mark-good", "{}", 0, NULL);
        expect_params("update.rollback", "{}", 0, NULL);
        expect_params("reboot", "{}", 0, NULL);
        expect_params("status.send", "{}", 0, NULL);
        expect_params("status.send", "{\"x\":1}", -EINVAL, "status.send: unknown parameter \"x\"");
        expect_params("config.set", "{\"key\":\"health.poll_interval_sec\",\"value\":5}", 0, NULL);
        expect_params("config.set", "{\"key\":\"a\",\"value\":{\"b\":[1]}}", 0, NULL);
        expect_params("config.set", "{\"key\":\"A\",\"value\":1}", -EINVAL, "dotted config key");
        expect_params("config.set", "{\"key\":\"a..b\",\"value\":1}", -EINVAL, "dotted config key");
        expect_params("config.set", "{\"key\":\"a\"}", -EINVAL, "needs both");
        expect_params("format.disk", "{}", -EOPNOTSUPP, "unknown action \"format.disk\"");
        assert_true(command_action_is_known("reboot"));
        assert_false(command_action_is_known("reboot2"));

        /* Payloads are refused before signing when the command makes no sense. */
        struct command c = {.seq = 0, .not_before = 1, .expires = 2, .params = json_object()};
        snprintf(c.node, sizeof(c.node), "n");
        snprintf(c.action, sizeof(c.action), "reboot");
        char *text = NULL, *reason = NULL;
        assert_int_equal(command_payload_build(&c, &text, &reason), -EINVAL);
        free(reason);
        c.seq = 1;
        c.expires = 1;
        reason = NULL;
        assert_int_equal(command_payload_build(&c, &text, &reason), -EINVAL);
        free(reason);
        c.expires = 2;
        snprintf(c.node, sizeof(c.node), "../n");
        reason = NULL;
        assert_int_equal(command_payload_build(&c, &text, &reason), -EINVAL);
        free(reason);
        command_done(&c);
}

/* Link epochs (#18 item 5): an envelope signed for the node's link state before it was lost
 * is refused whatever its seq, and never moves the node's last applied seq. */
static void test_link_epoch(void **state) {
        (void) state;
        struct command cmd = {.seq = 1, .not_before = T, .expires = T + 1000, .params = json_object()};
        snprintf(cmd.node, sizeof(cmd.node), "node-1");
        snprintf(cmd.action, sizeof(cmd.action), "reboot");
        snprintf(cmd.link_epoch, sizeof(cmd.link_epoch), "0123456789abcdef0123456789abcdef");
        char *payload = NULL, *sig = NULL, *reason = NULL;
        size_t len;
        assert_int_equal(command_payload_build(&cmd, &payload, &reason), 0);
        char want[512];
        snprintf(want, sizeof(want),
                 "{\"format\":1,\"node\":\"node-1\",\"link_epoch\":\"0123456789abcdef0123456789abcdef\","
                 "\"seq\":1,\"not_before\":%lld,\"expires\":%lld,\"action\":\"reboot\",\"params\":{}}",
                 (long long) T, (long long) T + 1000);
        assert_string_equal(payload, want);
        assert_int_equal(signature_sign(SIGNATURE_FOR_COMMAND, payload, strlen(payload), key, cert, &sig, &len, &reason), 0);
        json_t *e = command_envelope_new(1, payload, sig);

        struct command_verify_options o = {.node = "node-1", .link_epoch = "0123456789abcdef0123456789abcdef",
                                           .now = (time_t) T + 10, .keyring = keyring};
        struct command c;
        assert_int_equal(command_envelope_verify(e, &o, &c, &reason), 0);
        assert_string_equal(c.link_epoch, "0123456789abcdef0123456789abcdef");
        command_done(&c);
        /* the node lost its link state: a new epoch, seq back at 0; the old envelope is dead */
        o.link_epoch = "fedcba9876543210fedcba9876543210";
        memset(&c, 0, sizeof(c));
        assert_int_equal(command_envelope_verify(e, &o, &c, &reason), -ESTALE);
        assert_non_null(strstr(reason, "signed for link epoch 0123456789abcdef0123456789abcdef, this node is at fedcba"));
        assert_int_equal(c.seq, 0); /* not trusted to move the last applied seq */
        free(reason);
        reason = NULL;
        o.link_epoch = NULL;
        assert_int_equal(command_envelope_verify(e, &o, &c, &reason), -ESTALE);
        free(reason);
        reason = NULL;
        json_decref(e);
        free(sig);
        free(payload);

        /* a payload without an epoch (a controller from before epochs) verifies on a node
         * whose link state predates epochs, and not on one whose state was made anew */
        e = envelope("node-1", 2, T, T + 1000, "reboot", "{}", key, cert, NULL);
        o.link_epoch = "fedcba9876543210fedcba9876543210";
        assert_int_equal(command_envelope_verify(e, &o, &c, &reason), 0);
        assert_string_equal(c.link_epoch, "");
        command_done(&c);
        o.require_epoch = true;
        memset(&c, 0, sizeof(c));
        assert_int_equal(command_envelope_verify(e, &o, &c, &reason), -ESTALE);
        assert_non_null(strstr(reason, "names no link epoch"));
        assert_int_equal(c.seq, 0);
        free(reason);
        reason = NULL;
        json_decref(e);

        /* epochs are lower-case hex, 1-32 characters: built and parsed alike */
        snprintf(cmd.link_epoch, sizeof(cmd.link_epoch), "ABC");
        assert_int_equal(command_payload_build(&cmd, &payload, &reason), -EINVAL);
        free(reason);
        reason = NULL;
        assert_false(command_link_epoch_is_valid(""));
        assert_false(command_link_epoch_is_valid("0123456789abcdef0123456789abcdef0"));
        assert_true(command_link_epoch_is_valid("0"));
        const char *bad = "{\"format\":1,\"node\":\"n\",\"link_epoch\":\"x y\",\"seq\":1,\"not_before\":1,"
                          "\"expires\":2,\"action\":\"reboot\",\"params\":{}}";
        assert_int_equal(command_payload_parse(bad, strlen(bad), &c, &reason), -EBADMSG);
        command_done(&c);
        free(reason);
        command_done(&cmd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_link_epoch),
                cmocka_unit_test(test_payload_exact_bytes),
                cmocka_unit_test(test_verify_refusals),
                cmocka_unit_test(test_signed_but_bad_payload),
                cmocka_unit_test(test_params),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
