/*
 * Fuzz the update state file parser: the state is read back after kills and power cuts,
 * from a disk that may hold anything. Whatever parses must format back and parse to the
 * same state.
 */
#include "config.h"

#include "fuzz-util.h"
#include "update/update-state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        char *text = malloc(size ? size : 1);
        FUZZ_CHECK(text);
        if (size)
                memcpy(text, data, size);
        struct update_state s;
        char *reason = NULL;
        if (update_state_parse(text, size, &s, &reason) == 0) {
                FUZZ_CHECK((unsigned) s.phase < _UPDATE_PHASE_MAX);
                FUZZ_CHECK(s.n_models <= UPDATE_MAX_MODELS);
                char *out = NULL;
                FUZZ_CHECK(update_state_format(&s, &out) == 0);
                struct update_state back;
                char *reason2 = NULL;
                if (update_state_parse(out, strlen(out), &back, &reason2) != 0) {
                        fprintf(stderr, "re-parse failed: %s\n%s\n", reason2, out);
                        abort();
                }
                FUZZ_CHECK(back.phase == s.phase);
                FUZZ_CHECK(back.n_models == s.n_models);
                FUZZ_CHECK(back.security_version == s.security_version);
                FUZZ_CHECK(back.min_security_version == s.min_security_version);
                FUZZ_CHECK(back.installs == s.installs);
                FUZZ_CHECK(back.has_rootfs == s.has_rootfs);
                FUZZ_CHECK(strcmp(back.bundle_id, s.bundle_id) == 0);
                FUZZ_CHECK(strcmp(back.reason, s.reason) == 0);
                free(reason2);
                free(out);
        } else
                FUZZ_CHECK(reason != NULL);
        free(reason);
        free(text);
        return 0;
}
