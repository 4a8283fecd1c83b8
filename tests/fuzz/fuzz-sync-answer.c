/*
 * Fuzz link_answer_parse(): the controller's answer to a sync is the one document the
 * node acts on that arrives straight off the radio link (its commands are verified
 * later, one by one). Whatever parses must hold only what the agent relies on: bounded
 * arrays of the right types, a sorted contact plan, a next sync within 7 days; whatever
 * is refused must say why.
 */
#include "config.h"

#include "fuzz-util.h"
#include "proto/sync-answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        struct link_answer a;
        char *msg = NULL;
        int r = link_answer_parse((const char *) data, size, &a, &msg);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
                FUZZ_CHECK(r == -ENOMEM || msg != NULL);
                FUZZ_CHECK(a.root == NULL);
                free(msg);
                return 0;
        }
        FUZZ_CHECK(msg == NULL);
        FUZZ_CHECK(a.next_sync_sec >= 0 && a.next_sync_sec <= LINK_ANSWER_MAX_NEXT_SYNC_SEC);
        FUZZ_CHECK(a.server_time >= 0);
        FUZZ_CHECK(json_array_size(a.commands) <= LINK_ANSWER_MAX_COMMANDS);
        size_t i, k, seqs = 0;
        json_t *g, *s;
        json_array_foreach(a.commands, i, g)
                FUZZ_CHECK(json_is_object(g));
        FUZZ_CHECK(json_array_size(a.acked) <= LINK_ANSWER_MAX_ACK_GROUPS);
        json_array_foreach(a.acked, i, g) {
                FUZZ_CHECK(json_integer_value(json_object_get(g, "boot_epoch")) >= 0);
                const char *boot_id = json_string_value(json_object_get(g, "boot_id"));
                FUZZ_CHECK(boot_id && strlen(boot_id) == 32);
                json_array_foreach(json_object_get(g, "seq"), k, s) {
                        FUZZ_CHECK(json_integer_value(s) >= 1);
                        seqs++;
                }
        }
        FUZZ_CHECK(seqs == a.n_acked_seqs && seqs <= LINK_ANSWER_MAX_ACKED_SEQS);
        json_t *windows = json_object_get(a.plan, "windows");
        FUZZ_CHECK(json_array_size(windows) <= LINK_ANSWER_MAX_WINDOWS);
        json_int_t previous_end = -1;
        json_array_foreach(windows, i, g) {
                json_int_t start = json_integer_value(json_object_get(g, "start"));
                json_int_t end = json_integer_value(json_object_get(g, "end"));
                FUZZ_CHECK(start >= previous_end && start < end);
                previous_end = end;
        }
        link_answer_done(&a);
        FUZZ_CHECK(a.root == NULL);
        return 0;
}
