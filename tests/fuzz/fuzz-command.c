/*
 * Fuzz signed command verification: envelopes come from the controller (and whoever sits
 * between). The input is parsed as JSON and verified as the agent does
 * (command_envelope_verify, keyring tests/fuzz/keys/ca.pem, now unknown so the run is
 * deterministic; the seeds are signed by its command signer, tests/fuzz/keys/command.key);
 * the raw input also goes to command_payload_parse, the strict parser that otherwise only
 * sees signed text.
 */
#include "config.h"

#include <jansson.h>

#include "fuzz-util.h"
#include "fuzz-keys.h"
#include "proto/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        const struct signature_keyring *kr = fuzz_keyring();

        json_t *e = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (e) {
                struct command_verify_options o = {.node = "node-1", .last_applied_seq = 2,
                                                   .now = SIGNATURE_NOW_UNKNOWN,
                                                   .clock_skew_sec = 30, .keyring = kr};
                struct command c;
                char *reason = NULL;
                int r = command_envelope_verify(e, &o, &c, &reason);
                if (r == 0) {
                        FUZZ_CHECK(strcmp(c.node, "node-1") == 0);
                        FUZZ_CHECK(c.seq > 2);
                        FUZZ_CHECK(command_action_is_known(c.action));
                        command_done(&c);
                } else
                        FUZZ_CHECK(r < 0 && reason);
                free(reason);
                json_decref(e);
        }

        char *text = malloc(size ? size : 1);
        FUZZ_CHECK(text);
        if (size)
                memcpy(text, data, size);
        struct command c;
        char *reason = NULL;
        if (command_payload_parse(text, size, &c, &reason) == 0) {
                FUZZ_CHECK(memchr(c.node, 0, sizeof(c.node)));
                FUZZ_CHECK(memchr(c.action, 0, sizeof(c.action)));
                command_done(&c);
        } else
                FUZZ_CHECK(reason != NULL);
        free(reason);
        free(text);
        return 0;
}
