/* Unit tests for node identity and the boot epoch, on a temp state dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/node-state.h"
#include "lib/statefile.h"
#include "test-util.h"

static void test_payload_formats(void **state) {
        char *s;
        assert_int_equal(node_identity_format("sat-1", &s), 0);
        assert_string_equal(s, "{\"format\":1,\"node_id\":\"sat-1\"}");
        char id[NODE_ID_MAX + 1];
        assert_int_equal(node_identity_parse(s, id, sizeof(id)), 0);
        assert_string_equal(id, "sat-1");
        free(s);

        assert_int_equal(boot_epoch_format(77, &s), 0);
        assert_string_equal(s, "{\"boot_epoch\":77,\"format\":1}");
        uint64_t e;
        assert_int_equal(boot_epoch_parse(s, &e), 0);
        assert_int_equal(e, 77);
        free(s);

        assert_int_equal(node_identity_parse("{\"format\":2,\"node_id\":\"a\"}", id, sizeof(id)), -EBADMSG);
        assert_int_equal(node_identity_parse("{\"format\":1,\"node_id\":\"a b\"}", id, sizeof(id)), -EBADMSG);
        assert_int_equal(node_identity_parse("nonsense", id, sizeof(id)), -EBADMSG);
        assert_int_equal(boot_epoch_parse("{\"format\":1,\"boot_epoch\":-1}", &e), -EBADMSG);
        assert_int_equal(boot_epoch_parse("{\"format\":1}", &e), -EBADMSG);
        assert_int_equal(boot_epoch_parse("{\"format\":1,\"boot_epoch\":\"3\"}", &e), -EBADMSG);
}

static void test_generated_node_id(void **state) {
        const uint8_t rnd[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
        char id[NODE_ID_MAX + 1];
        node_id_generate(rnd, id, sizeof(id));
        assert_string_equal(id, "node-0123456789abcdef");
        assert_true(node_id_is_valid(id));
}

static void test_epoch_counts_every_start_and_identity_is_kept(void **state) {
        char *dir = test_mkdtemp();
        struct agent_config cfg = {.state_dir = dir};
        struct node_state st, first;
        assert_int_equal(node_state_start(&cfg, &first), 0);
        assert_int_equal(first.boot_epoch, 1);
        assert_false(first.node_id_from_config);
        assert_true(strncmp(first.node_id, "node-", 5) == 0);
        assert_int_equal(strlen(first.boot_id), 32);

        for (uint64_t i = 2; i <= 5; i++) {
                assert_int_equal(node_state_start(&cfg, &st), 0);
                assert_int_equal(st.boot_epoch, i);
                assert_string_equal(st.node_id, first.node_id);
                assert_string_not_equal(st.boot_id, first.boot_id);
                assert_false(st.boot_epoch_recovered);
                assert_false(st.boot_epoch_reset);
        }

        char cfg_id[] = "sat-42";
        cfg.node_id = cfg_id;
        assert_int_equal(node_state_start(&cfg, &st), 0);
        assert_string_equal(st.node_id, "sat-42");
        assert_true(st.node_id_from_config);
        assert_int_equal(st.boot_epoch, 6);
        test_rmdir(dir);
}

static void flip(const char *dir, const char *name) {
        char path[PATH_MAX], buf[1024];
        test_path(path, sizeof(path), dir, name);
        long n = test_read(path, buf, sizeof(buf));
        assert_true(n > 2);
        buf[n - 2] ^= 0x01;
        assert_int_equal(test_write(path, buf, (size_t) n), 0);
}

static void test_corrupt_epoch_recovers_from_previous(void **state) {
        char *dir = test_mkdtemp();
        struct agent_config cfg = {.state_dir = dir};
        struct node_state st;
        for (int i = 0; i < 3; i++)
                assert_int_equal(node_state_start(&cfg, &st), 0);
        /* boot holds 3, boot.prev holds 2: a flipped bit in boot falls back to 2. */
        flip(dir, "boot");
        assert_int_equal(node_state_start(&cfg, &st), 0);
        assert_int_equal(st.boot_epoch, 3);
        assert_true(st.boot_epoch_recovered);
        assert_false(st.boot_epoch_reset);
        assert_int_equal(node_state_start(&cfg, &st), 0);
        assert_int_equal(st.boot_epoch, 4);
        assert_false(st.boot_epoch_recovered);
        test_rmdir(dir);
}

static void test_both_epoch_copies_lost_resets_and_says_so(void **state) {
        char *dir = test_mkdtemp();
        struct agent_config cfg = {.state_dir = dir};
        struct node_state st;
        for (int i = 0; i < 3; i++)
                assert_int_equal(node_state_start(&cfg, &st), 0);
        flip(dir, "boot");
        flip(dir, "boot.prev");
        assert_int_equal(node_state_start(&cfg, &st), 0);
        assert_int_equal(st.boot_epoch, 1);
        assert_true(st.boot_epoch_reset);
        test_rmdir(dir);
}

static void test_valid_checksum_bad_content_not_trusted(void **state) {
        char *dir = test_mkdtemp();
        struct agent_config cfg = {.state_dir = dir};
        const char *bogus = "{\"format\":1,\"boot_epoch\":\"lots\"}";
        assert_int_equal(statefile_save(dir, "boot", bogus, strlen(bogus)), 0);
        struct node_state st;
        assert_int_equal(node_state_start(&cfg, &st), 0);
        assert_int_equal(st.boot_epoch, 1);
        assert_true(st.boot_epoch_reset);
        test_rmdir(dir);
}

static void test_identity_survives_one_flip_and_is_regenerated_when_lost(void **state) {
        char *dir = test_mkdtemp();
        struct agent_config cfg = {.state_dir = dir};
        struct node_state a, b;
        assert_int_equal(node_state_start(&cfg, &a), 0);
        flip(dir, "identity");
        assert_int_equal(node_state_start(&cfg, &b), 0);
        assert_string_equal(a.node_id, b.node_id);

        /* Both copies lost: the identity cannot be trusted, so a new one is made. */
        flip(dir, "identity");
        flip(dir, "identity.prev");
        assert_int_equal(node_state_start(&cfg, &b), 0);
        assert_string_not_equal(a.node_id, b.node_id);
        assert_true(node_id_is_valid(b.node_id));
        test_rmdir(dir);
}

int main(void) {
        log_set_max_level(LOG_CRIT);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_payload_formats),
                cmocka_unit_test(test_generated_node_id),
                cmocka_unit_test(test_epoch_counts_every_start_and_identity_is_kept),
                cmocka_unit_test(test_corrupt_epoch_recovers_from_previous),
                cmocka_unit_test(test_both_epoch_copies_lost_resets_and_says_so),
                cmocka_unit_test(test_valid_checksum_bad_content_not_trusted),
                cmocka_unit_test(test_identity_survives_one_flip_and_is_regenerated_when_lost),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
