/*
 * Fuzz the desired state document parser (#19): the node parses it only once its
 * signature verified, but a controller's bug or a compromised command key must not make
 * it crash, leak or accept a document that breaks the parser's own promises.
 */
#include "config.h"

#include "fuzz-util.h"
#include "proto/desired-state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        struct desired_state d;
        char *reason = NULL;
        if (desired_state_parse((const char *) data, size, &d, &reason) == 0) {
                FUZZ_CHECK(d.version >= 1);
                FUZZ_CHECK(d.n_workloads <= DESIRED_MAX_WORKLOADS);
                FUZZ_CHECK(d.node[0] != '\0');
                for (size_t i = 0; i < d.n_workloads; i++) {
                        FUZZ_CHECK(json_is_object(d.workloads[i].spec));
                        FUZZ_CHECK(strcmp(json_string_value(json_object_get(d.workloads[i].spec, "name")),
                                          d.workloads[i].name) == 0);
                        for (size_t k = 0; k < i; k++)
                                FUZZ_CHECK(strcmp(d.workloads[k].name, d.workloads[i].name) != 0);
                }
                desired_state_done(&d);
        } else
                FUZZ_CHECK(reason != NULL);
        free(reason);
        return 0;
}
