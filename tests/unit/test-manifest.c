/* Unit tests for bundle manifests: strict parsing, writing, chunks, versions and policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "update/manifest.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* A valid manifest: rootfs of 10000 bytes in chunks of 4096 (3 chunks), one model. */
static const char *valid_manifest =
        "{\n"
        "  \"format\": 1,\n"
        "  \"bundle_id\": \"fleet-2024.06\",\n"
        "  \"version\": \"1.4.0-rc.1+build.7\",\n"
        "  \"security_version\": 12,\n"
        "  \"description\": \"June update\",\n"
        "  \"compatible\": [\"orbit-board-v1\", \"orbit-board-v2\"],\n"
        "  \"images\": [\n"
        "    {\"slot_class\": \"rootfs\", \"file\": \"rootfs.img\", \"size\": 10000,\n"
        "     \"sha256\": \"" HASH_A "\", \"chunk_size\": 4096,\n"
        "     \"chunks\": [\"" HASH_A "\", \"" HASH_B "\", \"" HASH_A "\"]},\n"
        "    {\"slot_class\": \"model:yolo\", \"file\": \"model-yolo.img\", \"size\": 0,\n"
        "     \"sha256\": \"" HASH_B "\", \"chunk_size\": 8192, \"chunks\": []}\n"
        "  ]\n"
        "}\n";

static int parse(const char *text, unsigned flags, struct manifest *m, char **msg) {
        struct json_problems ps = {0};
        int r = manifest_parse("manifest.json", text, strlen(text), flags, m, &ps);
        *msg = json_problems_to_message("manifest.json", &ps);
        return r;
}

/* Parse text with one substitution applied, expect failure, and return the message. */
static char *parse_bad(const char *from, const char *to) {
        const char *at = strstr(valid_manifest, from);
        assert_non_null(at);
        size_t n = strlen(valid_manifest) - strlen(from) + strlen(to) + 1;
        char *text = malloc(n);
        assert_non_null(text);
        snprintf(text, n, "%.*s%s%s", (int)(at - valid_manifest), valid_manifest, to,
                 at + strlen(from));
        struct manifest m;
        char *msg;
        int r = parse(text, 0, &m, &msg);
        if (r == 0)
                fprintf(stderr, "unexpectedly valid:\n%s\n", text);
        assert_int_equal(r, -EINVAL);
        free(text);
        return msg;
}

static void expect_bad(const char *from, const char *to, const char *expected) {
        char *msg = parse_bad(from, to);
        if (!strstr(msg, expected))
                fprintf(stderr, "message \"%s\" lacks \"%s\"\n", msg, expected);
        assert_non_null(strstr(msg, expected));
        free(msg);
}

static void test_valid(void **state) {
        struct manifest m;
        char *msg;
        int r = parse(valid_manifest, 0, &m, &msg);
        if (r < 0)
                fprintf(stderr, "%s\n", msg);
        free(msg);
        assert_int_equal(r, 0);
        assert_string_equal(m.bundle_id, "fleet-2024.06");
        assert_string_equal(m.version, "1.4.0-rc.1+build.7");
        assert_int_equal(m.security_version, 12);
        assert_string_equal(m.description, "June update");
        assert_int_equal(m.n_compatible, 2);
        assert_string_equal(m.compatible[1], "orbit-board-v2");
        assert_null(m.compatible[2]);
        assert_int_equal(m.n_images, 2);
        assert_string_equal(m.images[0].slot_class, "rootfs");
        assert_int_equal(m.images[0].size, 10000);
        assert_int_equal(m.images[0].n_chunks, 3);
        assert_int_equal(m.images[0].chunks[1][0], 0xbb);
        assert_int_equal(m.images[1].n_chunks, 0);
        assert_ptr_equal(manifest_find_image(&m, "model:yolo"), &m.images[1]);
        assert_null(manifest_find_image(&m, "model:other"));
        assert_true(manifest_is_compatible(&m, "orbit-board-v1"));
        assert_false(manifest_is_compatible(&m, "orbit-board-v3"));
        manifest_free(&m);
}

static void test_errors_name_key_and_place(void **state) {
        /* An unknown key: line 3, column 3, with a hint. */
        expect_bad("\"bundle_id\"", "\"bundle_idd\"",
                   "manifest.json:3:3: bundle_idd: unknown key (did you mean \"bundle_id\"?)");
        expect_bad("\"format\": 1", "\"format\": 2", "format: unsupported manifest format");
        expect_bad("\"1.4.0-rc.1+build.7\"", "\"1.4\"", "version: expected a semantic version");
        expect_bad("\"1.4.0-rc.1+build.7\"", "\"01.4.0\"", "version: expected a semantic version");
        expect_bad("\"security_version\": 12", "\"security_version\": -1",
                   "security_version: expected a non-negative integer");
        expect_bad("\"orbit-board-v2\"]", "\"orbit-board-v1\"]", "compatible[1]: listed twice");
        expect_bad("[\"orbit-board-v1\", \"orbit-board-v2\"]", "[]",
                   "compatible: must name at least one hardware");
        expect_bad("\"slot_class\": \"rootfs\"", "\"slot_class\": \"bootloader\"",
                   "images[0].slot_class: expected a slot class");
        expect_bad("\"file\": \"rootfs.img\"", "\"file\": \"../rootfs.img\"",
                   "images[0].file: expected a plain file name");
        expect_bad("\"file\": \"rootfs.img\"", "\"file\": \"manifest.sig\"",
                   "images[0].file: expected a plain file name");
        expect_bad("\"file\": \"rootfs.img\"", "\"file\": \"a/b\"", "images[0].file");
        expect_bad("\"file\": \"model-yolo.img\"", "\"file\": \"rootfs.img\"",
                   "images[1].file: file \"rootfs.img\" appears twice");
        expect_bad("\"slot_class\": \"model:yolo\"", "\"slot_class\": \"rootfs\"",
                   "images[1].slot_class: slot class \"rootfs\" appears twice");
        expect_bad("\"size\": 10000", "\"size\": 20000",
                   "images[0].chunks: 3 chunk hashes, but size 20000 in chunks of 4096 needs 5");
        expect_bad("\"chunk_size\": 4096", "\"chunk_size\": 1000",
                   "images[0].chunk_size: chunk_size must be a multiple of 4096");
        expect_bad("\"chunk_size\": 8192", "\"chunk_size\": 33554432", "images[1].chunk_size");
        expect_bad("[\"" HASH_A "\", \"" HASH_B, "[\"" HASH_A "\", \"xyz",
                   "images[0].chunks[1]: expected a SHA-256 as 64 hex digits");
        expect_bad("\"sha256\": \"" HASH_B "\"", "\"sha256\": 5",
                   "images[1].sha256: expected a SHA-256");
        expect_bad("\"chunks\": []}", "\"chunks\": [], \"mode\": 1}",
                   "images[1].mode: unknown key");
        expect_bad(",\n    {\"slot_class\": \"model:yolo\"", "]}\n,{\"x\": 1", "invalid JSON");
        expect_bad("\"images\": [", "\"imagez\": [", "missing required key \"images\"");
        /* Duplicate keys are refused, not silently merged. */
        expect_bad("\"security_version\": 12,",
                   "\"security_version\": 12, \"security_version\": 1,", "invalid JSON");
}

static void test_limits(void **state) {
        /* Larger than the bound: refused before parsing. */
        size_t n = MANIFEST_MAX_SIZE + 2;
        char *big = malloc(n);
        assert_non_null(big);
        memset(big, ' ', n - 1);
        big[0] = '{';
        big[n - 3] = '}';
        big[n - 1] = '\0';
        struct manifest m;
        char *msg;
        assert_int_equal(parse(big, 0, &m, &msg), -EINVAL);
        assert_non_null(strstr(msg, "larger than"));
        free(msg);
        free(big);

        /* More images than allowed. */
        char text[16384];
        size_t off = (size_t)snprintf(text, sizeof(text),
                                      "{\"format\": 1, \"bundle_id\": \"b\", \"version\": "
                                      "\"1.0.0\", \"security_version\": 0,"
                                      " \"compatible\": [\"x\"], \"images\": [");
        for (int i = 0; i <= MANIFEST_MAX_IMAGES; i++)
                off += (size_t)snprintf(
                        text + off, sizeof(text) - off,
                        "%s{\"slot_class\": \"model:m%d\", \"file\": \"m%d\", \"size\": 0,"
                        " \"sha256\": \"" HASH_A "\", \"chunk_size\": 4096, \"chunks\": []}",
                        i ? "," : "", i, i);
        snprintf(text + off, sizeof(text) - off, "]}");
        assert_int_equal(parse(text, 0, &m, &msg), -EINVAL);
        assert_non_null(strstr(msg, "more than 16 images"));
        free(msg);
}

static void test_template(void **state) {
        struct manifest m;
        char *msg;
        const char *t = "{\"bundle_id\": \"b1\", \"version\": \"2.0.0\", \"security_version\": 3, "
                        "\"compatible\": [\"hw\"]}";
        assert_int_equal(parse(t, MANIFEST_PARSE_TEMPLATE, &m, &msg), 0);
        free(msg);
        assert_int_equal(m.n_images, 0);
        assert_int_equal(m.security_version, 3);
        manifest_free(&m);

        /* A template may not carry images, and a manifest needs them. */
        assert_int_equal(parse(valid_manifest, MANIFEST_PARSE_TEMPLATE, &m, &msg), -EINVAL);
        assert_non_null(strstr(msg, "images: unknown key"));
        free(msg);
        assert_int_equal(parse(t, 0, &m, &msg), -EINVAL);
        assert_non_null(strstr(msg, "missing required key \"images\""));
        assert_non_null(strstr(msg, "missing required key \"format\""));
        free(msg);
}

/* The release's floor for going back (#18 item 6): optional, at most security_version, kept
 * through a template and a round trip. */
static void test_rollback_floor(void **state) {
        struct manifest m, again;
        char *msg, *text;
        const char *t = "{\"bundle_id\": \"b1\", \"version\": \"2.0.0\", \"security_version\": 3, "
                        "\"rollback_floor\": 2, \"compatible\": [\"hw\"]}";
        assert_int_equal(parse(t, MANIFEST_PARSE_TEMPLATE, &m, &msg), 0);
        free(msg);
        assert_true(m.has_rollback_floor);
        assert_int_equal(m.rollback_floor, 2);
        manifest_free(&m);
        assert_int_equal(parse(valid_manifest, 0, &m, &msg), 0);
        free(msg);
        assert_false(m.has_rollback_floor);
        m.has_rollback_floor = true;
        m.rollback_floor = 0;
        assert_int_equal(manifest_format(&m, &text, NULL), 0);
        assert_non_null(strstr(text, "\"rollback_floor\": 0"));
        assert_int_equal(manifest_parse_text("again", text, strlen(text), 0, &again, &msg), 0);
        assert_true(again.has_rollback_floor);
        assert_int_equal(again.rollback_floor, 0);
        free(text);
        manifest_free(&again);
        manifest_free(&m);
        expect_bad("\"security_version\": 12,", "\"security_version\": 12, \"rollback_floor\": 13,",
                   "rollback_floor: 13 is above security_version 12");
        expect_bad("\"security_version\": 12,", "\"security_version\": 12, \"rollback_floor\": -1,",
                   "rollback_floor: expected a non-negative integer");
}

static void test_format_round_trip(void **state) {
        struct manifest m, again;
        char *msg, *text;
        size_t len;
        assert_int_equal(parse(valid_manifest, 0, &m, &msg), 0);
        free(msg);
        assert_int_equal(manifest_format(&m, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        assert_int_equal(text[len - 1], '\n');
        assert_int_equal(manifest_parse_text("again", text, len, 0, &again, &msg), 0);
        assert_string_equal(again.bundle_id, m.bundle_id);
        assert_string_equal(again.version, m.version);
        assert_string_equal(again.description, m.description);
        assert_int_equal(again.security_version, m.security_version);
        assert_int_equal(again.n_images, 2);
        assert_memory_equal(again.images[0].chunks, m.images[0].chunks, 3 * SHA256_DIGEST_SIZE);
        assert_memory_equal(again.images[1].sha256, m.images[1].sha256, SHA256_DIGEST_SIZE);
        /* The same manifest always renders to the same bytes (what is signed). */
        char *text2;
        assert_int_equal(manifest_format(&again, &text2, NULL), 0);
        assert_string_equal(text, text2);
        free(text);
        free(text2);
        manifest_free(&again);
        manifest_free(&m);
}

static void test_chunks(void **state) {
        assert_int_equal(manifest_chunk_count(0, 4096), 0);
        assert_int_equal(manifest_chunk_count(1, 4096), 1);
        assert_int_equal(manifest_chunk_count(4096, 4096), 1);
        assert_int_equal(manifest_chunk_count(4097, 4096), 2);

        uint8_t data[10000];
        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 7 + i / 256);
        uint8_t hashes[3][SHA256_DIGEST_SIZE];
        sha256_buffer(data, 4096, hashes[0]);
        sha256_buffer(data + 4096, 4096, hashes[1]);
        sha256_buffer(data + 8192, 10000 - 8192, hashes[2]);
        struct manifest_image img = {
                .size = 10000, .chunk_size = 4096, .n_chunks = 3, .chunks = hashes};
        assert_int_equal(manifest_chunk_length(&img, 0), 4096);
        assert_int_equal(manifest_chunk_length(&img, 2), 10000 - 8192);
        assert_int_equal(manifest_chunk_length(&img, 3), 0);
        assert_int_equal(manifest_check_chunk(&img, 0, data, 4096), 0);
        assert_int_equal(manifest_check_chunk(&img, 2, data + 8192, 10000 - 8192), 0);
        assert_int_equal(manifest_check_chunk(&img, 1, data, 4096), -EBADMSG);
        assert_int_equal(manifest_check_chunk(&img, 2, data + 8192, 100), -EBADMSG);
        assert_int_equal(manifest_check_chunk(&img, 3, data, 0), -EBADMSG);
        data[5000] ^= 1;
        assert_int_equal(manifest_check_chunk(&img, 1, data + 4096, 4096), -EBADMSG);
}

static void test_versions(void **state) {
        static const char *valid[] = {"0.0.0",
                                      "1.2.3",
                                      "10.20.30",
                                      "1.0.0-alpha",
                                      "1.0.0-alpha.1",
                                      "1.0.0-0.3.7",
                                      "1.0.0-x.7.z.92",
                                      "1.0.0+20130313144700",
                                      "1.0.0-beta+exp.sha.5114f85",
                                      "1.0.0-x-y-z.--"};
        static const char *invalid[] = {"",       "1",        "1.2",         "1.2.3.4",
                                        "01.2.3", "1.02.3",   "1.2.03",      "v1.2.3",
                                        "1.2.3-", "1.2.3-01", "1.2.3+",      "1.2.3-a..b",
                                        "1.2.3 ", "-1.2.3",   "1.2.3-a+b+c", "1.2.3-é"};
        for (size_t i = 0; i < ELEMENTSOF(valid); i++) {
                if (!manifest_version_is_valid(valid[i]))
                        fprintf(stderr, "should be valid: %s\n", valid[i]);
                assert_true(manifest_version_is_valid(valid[i]));
        }
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                if (manifest_version_is_valid(invalid[i]))
                        fprintf(stderr, "should be invalid: %s\n", invalid[i]);
                assert_false(manifest_version_is_valid(invalid[i]));
        }
        /* semver.org's precedence example, in increasing order. */
        static const char *order[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                      "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                                      "1.0.0-rc.1",  "1.0.0",         "1.0.1",
                                      "1.1.0",       "2.0.0",         "10.0.0"};
        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                for (size_t j = 0; j < ELEMENTSOF(order); j++) {
                        int c;
                        assert_int_equal(manifest_version_compare(order[i], order[j], &c), 0);
                        assert_int_equal(c, i < j ? -1 : i > j ? 1 : 0);
                }
        int c;
        assert_int_equal(manifest_version_compare("1.0.0+a", "1.0.0+b", &c), 0);
        assert_int_equal(c, 0);
        assert_int_equal(manifest_version_compare("1.0", "1.0.0", &c), -EINVAL);
}

static void test_policy(void **state) {
        struct manifest m;
        char *msg, *reason = NULL;
        assert_int_equal(parse(valid_manifest, 0, &m, &msg), 0);
        free(msg);
        assert_int_equal(manifest_check_policy(&m, "orbit-board-v2", 12, &reason), 0);
        assert_null(reason);
        assert_int_equal(manifest_check_policy(&m, NULL, 0, &reason), 0);
        assert_int_equal(manifest_check_policy(&m, "orbit-board-v9", 0, &reason), -ENOTSUP);
        assert_non_null(strstr(reason, "incompatible hardware: this node is \"orbit-board-v9\""));
        free(reason);
        assert_int_equal(manifest_check_policy(&m, "orbit-board-v1", 13, &reason), -EPERM);
        assert_non_null(strstr(reason, "security_version 12 is below this node's minimum 13"));
        free(reason);
        manifest_free(&m);
}

static void test_names(void **state) {
        assert_true(manifest_slot_class_is_valid("rootfs"));
        assert_true(manifest_slot_class_is_valid("model:yolo-v8.onnx"));
        assert_false(manifest_slot_class_is_valid("model:"));
        assert_false(manifest_slot_class_is_valid("model:../x"));
        assert_false(manifest_slot_class_is_valid("model:a/b"));
        assert_false(manifest_slot_class_is_valid("rootfs2"));
        /* an app's name is a directory under apps_dir: never one that leaves it */
        assert_true(manifest_slot_class_is_valid("app:detector"));
        assert_false(manifest_slot_class_is_valid("app:"));
        assert_false(manifest_slot_class_is_valid("app:.."));
        assert_false(manifest_slot_class_is_valid("app:../x"));
        assert_false(manifest_slot_class_is_valid("app:a/b"));
        assert_false(manifest_slot_class_is_valid("app:.hidden"));
        /* no longer than a spec's app name may be: an app no spec could name */
        char name[4 + 66] = "app:";
        memset(name + 4, 'a', 64);
        name[68] = '\0';
        assert_true(manifest_slot_class_is_valid(name));
        name[68] = 'a';
        name[69] = '\0';
        assert_false(manifest_slot_class_is_valid(name));
        assert_false(manifest_slot_class_is_valid("app"));
        assert_true(manifest_file_name_is_valid("rootfs.img"));
        assert_false(manifest_file_name_is_valid(".hidden"));
        assert_false(manifest_file_name_is_valid(".."));
        assert_false(manifest_file_name_is_valid("-rf"));
        assert_false(manifest_file_name_is_valid("manifest.json"));
        assert_false(manifest_file_name_is_valid(""));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_errors_name_key_and_place),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_template),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_rollback_floor),
                cmocka_unit_test(test_chunks),
                cmocka_unit_test(test_versions),
                cmocka_unit_test(test_policy),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
