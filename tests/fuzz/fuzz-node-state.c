/*
 * Fuzz node_identity_parse() and boot_epoch_parse(): the payloads of the identity and
 * boot state files. What parses must format and parse back to the same value.
 */
#include "config.h"

#include "fuzz-util.h"
#include "agent/node-state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        /* statefile_load() hands out NUL-terminated payloads; bytes after a NUL are unseen. */
        char *payload = fuzz_strndup(data, size);
        FUZZ_CHECK(payload);

        char node_id[NODE_ID_MAX + 1];
        memset(node_id, 0x55, sizeof(node_id));
        if (node_identity_parse(payload, node_id, sizeof(node_id)) == 0) {
                FUZZ_CHECK(memchr(node_id, '\0', sizeof(node_id)));
                FUZZ_CHECK(node_id_is_valid(node_id));
                char *again = NULL;
                FUZZ_CHECK(node_identity_format(node_id, &again) == 0);
                char id2[NODE_ID_MAX + 1];
                FUZZ_CHECK(node_identity_parse(again, id2, sizeof(id2)) == 0);
                FUZZ_CHECK(strcmp(node_id, id2) == 0);
                free(again);
        }
        /* A buffer too small for the id must be refused, not overrun. */
        char small[8];
        if (node_identity_parse(payload, small, sizeof(small)) == 0)
                FUZZ_CHECK(strlen(small) < sizeof(small));

        uint64_t epoch = 0;
        if (boot_epoch_parse(payload, &epoch) == 0) {
                char *again = NULL;
                FUZZ_CHECK(boot_epoch_format(epoch, &again) == 0);
                uint64_t epoch2 = 0;
                FUZZ_CHECK(boot_epoch_parse(again, &epoch2) == 0);
                FUZZ_CHECK(epoch == epoch2);
                free(again);
        }
        free(payload);
        return 0;
}
