/* Fuzz workload_spec_parse(): specs come from workloads.d/ and from the control socket. */
#include "config.h"

#include "fuzz-util.h"
#include "runtime/workload-spec.h"

static size_t strv_length(char **v) {
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        char *text = malloc(size ? size : 1);
        FUZZ_CHECK(text);
        if (size)
                memcpy(text, data, size);

        struct workload_spec s = {0};
        char *message = NULL;
        int r = workload_spec_parse_text("fuzz.json", text, size, &s, &message);
        if (r == 0) {
                FUZZ_CHECK(!message);
                FUZZ_CHECK(s.name && workload_name_is_valid(s.name));
                FUZZ_CHECK(s.exec && s.exec[0] && s.exec[0][0] == '/');
                FUZZ_CHECK(strv_length(s.exec) <= WORKLOAD_MAX_ARGS);
                FUZZ_CHECK(s.env && strv_length(s.env) <= WORKLOAD_MAX_ENV);
                FUZZ_CHECK(s.models && strv_length(s.models) <= WORKLOAD_MAX_MODELS);
                FUZZ_CHECK(s.sandbox.n_mounts <= WORKLOAD_MAX_MOUNTS);
                FUZZ_CHECK(s.sandbox.n_rlimits <= 16);
                FUZZ_CHECK(s.restart.initial_delay_ms <= s.restart.max_delay_ms);
                /* The supervisor asks for delays far past any real restart count. */
                for (unsigned n = 1; n < 80; n += 7)
                        FUZZ_CHECK(workload_restart_delay_ms(&s, n) <=
                                   (uint64_t)s.restart.max_delay_ms);
                FUZZ_CHECK(workload_priority_to_string(s.priority));
                FUZZ_CHECK(workload_restart_to_string(s.restart.policy));
                workload_spec_free(&s);
        } else {
                FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
                FUZZ_CHECK(r == -ENOMEM || message);
        }
        free(message);
        free(text);
        return 0;
}
