/*
 * Fuzz seccomp_policy_parse(): policy files an operator (or a bundle) ships. What
 * parses must also compile to BPF: a policy accepted at load time but refused when a
 * workload starts would be a late surprise.
 */
#include "config.h"

#include "fuzz-util.h"
#include "runtime/seccomp-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        char *text = malloc(size ? size : 1);
        FUZZ_CHECK(text);
        if (size)
                memcpy(text, data, size);

        struct json_problems *problems = calloc(1, sizeof(*problems));
        FUZZ_CHECK(problems);
        struct seccomp_policy *p = NULL;
        int r = seccomp_policy_parse("fuzz.json", text, size, &p, problems);
        if (r == 0) {
                FUZZ_CHECK(p && p->filter);
                FUZZ_CHECK(p->n_rules <= SECCOMP_POLICY_MAX_RULES);
                FUZZ_CHECK(seccomp_policy_may_allow(p, "execve"));
                for (size_t i = 0; i < p->n_rules; i++) {
                        const struct seccomp_policy_rule *rule = &p->rules[i];
                        FUZZ_CHECK(memchr(rule->name, '\0', sizeof(rule->name)));
                        FUZZ_CHECK(rule->n_conditions <= SECCOMP_POLICY_MAX_ARGS);
                        for (size_t j = 0; j < rule->n_conditions; j++)
                                FUZZ_CHECK(rule->conditions[j].index < 6);
                        FUZZ_CHECK(seccomp_policy_action_to_string(rule->action));
                }
                struct seccomp_program *prog = NULL;
                int c = seccomp_policy_compile(p, &prog);
                FUZZ_CHECK(c == 0 || c == -ENOMEM);
                FUZZ_CHECK(c < 0 || (prog && prog->prog.len > 0 && prog->prog.filter));
                seccomp_program_free(prog);
                seccomp_policy_free(p);
        } else {
                FUZZ_CHECK(!p);
                FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
                FUZZ_CHECK(r == -ENOMEM || problems->count > 0);
                char *msg = json_problems_to_message("fuzz.json", problems);
                FUZZ_CHECK(msg);
                free(msg);
        }
        free(problems);
        free(text);
        return 0;
}
