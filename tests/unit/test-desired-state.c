/* The desired state document (#19 item 3): strict parsing, its own signature purpose,
 * for this node only, never older than the one in force. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "proto/desired-state.h"
#include "update/manifest.h"
#include "test-util.h"

static char *dir;
static time_t T;

static void keygen(const char *name, const char *subject, bool ca, enum signature_role role, const char *issuer) {
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
                                             .not_before = T - 86400,
                                             .days = 30};
        char *reason = NULL;
        int r = signature_keygen(&o, k, c, &reason);
        if (r < 0)
                fprintf(stderr, "keygen %s: %s\n", name, reason);
        free(reason);
        assert_int_equal(r, 0);
}

static int setup(void **state) {
        (void) state;
        T = time(NULL);
        dir = test_mkdtemp();
        assert_non_null(dir);
        keygen("cmd-ca", "CN=command CA", true, SIGNATURE_ROLE_NONE, NULL);
        keygen("cmd", "CN=command signer", false, SIGNATURE_ROLE_COMMAND, "cmd-ca");
        keygen("rel", "CN=release signer", false, SIGNATURE_ROLE_RELEASE, "cmd-ca");
        return 0;
}

static int teardown(void **state) {
        (void) state;
        test_rmdir(dir);
        return 0;
}

static char *sign(enum signature_purpose p, const char *data, const char *key) {
        char k[PATH_MAX], c[PATH_MAX];
        snprintf(k, sizeof(k), "%s/%s.key", dir, key);
        snprintf(c, sizeof(c), "%s/%s.pem", dir, key);
        char *sig = NULL, *reason = NULL;
        size_t len;
        int r = signature_sign(p, data, strlen(data), k, c, &sig, &len, &reason);
        free(reason);
        assert_int_equal(r, 0);
        return sig;
}

static struct signature_keyring *keyring(void) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/cmd-ca.pem", dir);
        char *text = NULL;
        size_t len;
        assert_int_equal(read_file_bounded(p, 1 << 20, &text, &len), 0);
        struct signature_keyring *kr = signature_keyring_new();
        assert_int_equal(signature_keyring_add(kr, text, len, "cmd-ca.pem", NULL), 0);
        free(text);
        return kr;
}

#define DOC(version, workloads) \
        "{\"format\": 1, \"node\": \"sat-7\", \"version\": " version ", \"workloads\": [" workloads "]}"
#define DET "{\"name\": \"det\", \"deployment\": \"det-prod\", \"bundle\": \"detector-1.4.0\", " \
            "\"spec\": {\"name\": \"det\", \"exec\": [\"/app/bin/serve\"], " \
            "\"app\": {\"name\": \"detector\", \"version\": \"1.4.0\"}}}"

static void expect_bad(const char *text, const char *want) {
        struct desired_state d;
        char *why = NULL;
        int r = desired_state_parse(text, strlen(text), &d, &why);
        if (r != -EBADMSG || !why || !strstr(why, want))
                fail_msg("expected -EBADMSG \"%s\", got %d \"%s\"", want, r, why ? why : "");
        free(why);
}

static void test_parse(void **state) {
        (void) state;
        struct desired_state d;
        char *why = NULL;
        const char *text = DOC("3", DET ", {\"name\": \"probe\", \"spec\": {\"name\": \"probe\", \"exec\": [\"/bin/true\"]}}");
        assert_int_equal(desired_state_parse(text, strlen(text), &d, &why), 0);
        assert_null(why);
        assert_string_equal(d.node, "sat-7");
        assert_int_equal(d.version, 3);
        assert_int_equal(d.n_workloads, 2);
        assert_string_equal(d.workloads[0].name, "det");
        assert_string_equal(d.workloads[0].deployment, "det-prod");
        assert_string_equal(d.workloads[0].bundle, "detector-1.4.0");
        assert_string_equal(json_string_value(json_object_get(d.workloads[0].spec, "name")), "det");
        assert_string_equal(d.workloads[1].bundle, "");
        assert_string_equal(d.workloads[1].deployment, "");
        desired_state_done(&d);
        text = DOC("1", "");
        assert_int_equal(desired_state_parse(text, strlen(text), &d, &why), 0);
        assert_int_equal(d.n_workloads, 0); /* nothing wanted: stop what an earlier one started */
        desired_state_done(&d);

        expect_bad("[]", "expected an object");
        expect_bad("{\"format\": 1", "desired state:1:");
        expect_bad(DOC("0", ""), "version: expected an integer >= 1");
        expect_bad("{\"format\": 2, \"node\": \"n\", \"version\": 1, \"workloads\": []}", "format: expected 1");
        expect_bad("{\"format\": 1, \"node\": \"../n\", \"version\": 1, \"workloads\": []}", "node: expected a node id");
        expect_bad("{\"format\": 1, \"node\": \"n\", \"version\": 1, \"workloads\": [], \"extra\": 1}",
                   "extra: unknown key");
        expect_bad("{\"format\": 1, \"node\": \"n\", \"version\": 1, \"version\": 2, \"workloads\": []}",
                   "duplicate object key");
        expect_bad(DOC("1", "{\"name\": \"a.b\", \"spec\": {\"name\": \"a.b\"}}"), "workloads[0].name");
        expect_bad(DOC("1", "{\"name\": \"a\", \"spec\": {\"name\": \"b\"}}"),
                   "workloads[0].spec.name: must be \"a\"");
        expect_bad(DOC("1", "{\"name\": \"a\", \"spec\": [1]}"), "workloads[0].spec: expected a workload spec");
        expect_bad(DOC("1", "{\"name\": \"a\", \"spec\": {\"name\": \"a\"}, \"image\": \"x\"}"),
                   "workloads[0].image: unknown key");
        expect_bad(DOC("1", "{\"name\": \"a\", \"bundle\": \"b-1\", \"spec\": {\"name\": \"a\", \"app\": {\"name\": \"x\"}}}"),
                   "workloads[0].bundle: the spec must name its app with a version");
        expect_bad(DOC("1", DET ", " DET), "workloads[1].name: \"det\" is listed twice");
        char big[DESIRED_MAX_WORKLOADS * 64 + 256] = "";
        size_t n = 0;
        n += (size_t) snprintf(big + n, sizeof(big) - n, "{\"format\": 1, \"node\": \"n\", \"version\": 1, \"workloads\": [");
        for (int i = 0; i <= DESIRED_MAX_WORKLOADS; i++)
                n += (size_t) snprintf(big + n, sizeof(big) - n, "%s{\"name\": \"w%d\", \"spec\": {\"name\": \"w%d\"}}",
                                       i ? "," : "", i, i);
        snprintf(big + n, sizeof(big) - n, "]}");
        expect_bad(big, "workloads: expected an array of at most 32");
}

static int verify(const char *text, const char *sig, uint64_t current, struct desired_state *d, char **why) {
        struct signature_keyring *kr = keyring();
        json_t *env = desired_envelope_new(text, sig);
        struct desired_verify_options o = {.node = "sat-7", .current_version = current, .now = T, .keyring = kr};
        int r = desired_envelope_verify(env, &o, d, why);
        json_decref(env);
        signature_keyring_free(kr);
        return r;
}

static void test_verify(void **state) {
        (void) state;
        const char *v2 = DOC("2", DET);
        char *sig = sign(SIGNATURE_FOR_DESIRED, v2, "cmd");
        struct desired_state d;
        char *why = NULL;
        assert_int_equal(verify(v2, sig, 1, &d, &why), 0);
        assert_int_equal(d.version, 2);
        desired_state_done(&d);
        /* the same again, an older one: refused */
        assert_int_equal(verify(v2, sig, 2, &d, &why), -EALREADY);
        free(why);
        why = NULL;
        assert_int_equal(verify(v2, sig, 5, &d, &why), -ESTALE);
        assert_non_null(strstr(why, "older than v5 in force"));
        free(why);
        why = NULL;
        /* one byte of the document changed */
        char *changed = strdup(v2);
        changed[strlen(changed) - 3] = ' ';
        assert_true(verify(changed, sig, 1, &d, &why) < 0);
        free(why);
        why = NULL;
        free(changed);
        free(sig);
        /* a command's signature over the same bytes is not a desired state's */
        sig = sign(SIGNATURE_FOR_COMMAND, v2, "cmd");
        assert_true(verify(v2, sig, 1, &d, &why) < 0);
        assert_non_null(why);
        free(why);
        why = NULL;
        free(sig);
        /* nor does a release key sign one */
        char k[PATH_MAX], c[PATH_MAX];
        snprintf(k, sizeof(k), "%s/rel.key", dir);
        snprintf(c, sizeof(c), "%s/rel.pem", dir);
        char *rsig = NULL;
        size_t len;
        assert_true(signature_sign(SIGNATURE_FOR_DESIRED, v2, strlen(v2), k, c, &rsig, &len, &why) < 0);
        free(why);
        why = NULL;
        /* another node's */
        const char *other = "{\"format\": 1, \"node\": \"sat-8\", \"version\": 9, \"workloads\": []}";
        sig = sign(SIGNATURE_FOR_DESIRED, other, "cmd");
        assert_int_equal(verify(other, sig, 1, &d, &why), -EXDEV);
        free(why);
        why = NULL;
        free(sig);
        /* the envelope's own shape */
        struct signature_keyring *kr = keyring();
        struct desired_verify_options o = {.node = "sat-7", .now = T, .keyring = kr};
        json_t *env = json_pack("{s:s, s:s, s:i}", "document", v2, "signature", "x", "seq", 1);
        assert_int_equal(desired_envelope_verify(env, &o, &d, &why), -EBADMSG);
        assert_non_null(strstr(why, "seq: unknown key"));
        free(why);
        why = NULL;
        json_decref(env);
        env = json_pack("{s:i, s:s}", "document", 1, "signature", "x");
        assert_int_equal(desired_envelope_verify(env, &o, &d, &why), -EBADMSG);
        free(why);
        json_decref(env);
        signature_keyring_free(kr);
}

/* The controller's side: the document it signs is the one a node parses, and what a node
 * would refuse is never built. */
static void test_build(void **state) {
        (void) state;
        json_t *w = json_loads("[{\"name\": \"det\", \"bundle\": \"hello-1\", \"spec\": {\"name\": \"det\", "
                               "\"exec\": [\"/app/bin/serve\"], \"app\": {\"name\": \"hello\", \"version\": \"1.0.0\"}}}]",
                               0, NULL);
        assert_non_null(w);
        char *text = NULL, *why = NULL;
        assert_int_equal(desired_document_build("sat-7", 4, w, &text, &why), 0);
        assert_null(why);
        struct desired_state d;
        assert_int_equal(desired_state_parse(text, strlen(text), &d, &why), 0);
        assert_string_equal(d.node, "sat-7");
        assert_int_equal(d.version, 4);
        assert_int_equal(d.n_workloads, 1);
        assert_string_equal(d.workloads[0].bundle, "hello-1");
        desired_state_done(&d);
        /* the same input, the same bytes: what the node keeps compares equal */
        char *again = NULL;
        assert_int_equal(desired_document_build("sat-7", 4, w, &again, &why), 0);
        assert_string_equal(text, again);
        free(again);
        free(text);
        json_decref(w);

        w = json_loads("[{\"name\": \"det\", \"spec\": {\"name\": \"other\"}}]", 0, NULL);
        assert_int_equal(desired_document_build("sat-7", 1, w, &text, &why), -EINVAL);
        assert_non_null(strstr(why, "workloads[0].spec.name"));
        free(why);
        why = NULL;
        json_decref(w);
        w = json_loads("[{\"name\": \"det\", \"bundle\": \"b\", \"spec\": {\"name\": \"det\"}}]", 0, NULL);
        assert_int_equal(desired_document_build("sat-7", 1, w, &text, &why), -EINVAL);
        assert_non_null(strstr(why, "spec.app.version"));
        free(why);
        why = NULL;
        json_decref(w);
        w = json_array();
        assert_int_equal(desired_document_build("bad/node", 1, w, &text, &why), -EINVAL);
        assert_non_null(strstr(why, "node"));
        free(why);
        json_decref(w);
}

/* Any bundle the controller takes (a manifest's bundle_id: up to MANIFEST_NAME_MAX) can be
 * named; one longer is refused where it is. */
static void test_long_bundle_id(void **state) {
        (void) state;
        char id[MANIFEST_NAME_MAX + 2];
        memset(id, 'b', MANIFEST_NAME_MAX);
        id[MANIFEST_NAME_MAX] = '\0';
        json_t *w = json_pack("[{s:s, s:s, s:{s:s, s:[s], s:{s:s, s:s}}}]", "name", "det", "bundle", id, "spec",
                              "name", "det", "exec", "/app/bin/serve", "app", "name", "hello", "version", "1.0.0");
        assert_non_null(w);
        char *text = NULL, *why = NULL;
        assert_int_equal(desired_document_build("sat-7", 1, w, &text, &why), 0);
        struct desired_state d;
        assert_int_equal(desired_state_parse(text, strlen(text), &d, &why), 0);
        assert_string_equal(d.workloads[0].bundle, id);
        desired_state_done(&d);
        free(text);
        json_decref(w);
        id[MANIFEST_NAME_MAX] = 'b';
        id[MANIFEST_NAME_MAX + 1] = '\0';
        w = json_pack("[{s:s, s:s, s:{s:s, s:[s], s:{s:s, s:s}}}]", "name", "det", "bundle", id, "spec", "name",
                      "det", "exec", "/app/bin/serve", "app", "name", "hello", "version", "1.0.0");
        assert_int_equal(desired_document_build("sat-7", 1, w, &text, &why), -EINVAL);
        assert_non_null(strstr(why, "workloads[0].bundle"));
        free(why);
        json_decref(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_verify),
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_long_bundle_id),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
