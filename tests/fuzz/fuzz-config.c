/* Fuzz config_parse(): agent.json, read at start and at every reload. */
#include "config.h"

#include "agent/agent-config.h"
#include "fuzz-util.h"

/* A SIGHUP from the default config to this one: the restart keys are listed and kept. */
static void check_reload(struct agent_config *next, struct json_problems *problems) {
        static const char defaults[] = "{\"config_version\": 1}";
        struct agent_config running = {0};
        FUZZ_CHECK(config_parse(NULL, defaults, sizeof(defaults) - 1, &running, problems) == 0);
        char small[12], big[1024];
        int n = config_restart_keys_changed(&running, next, big, sizeof(big));
        FUZZ_CHECK(config_restart_keys_changed(&running, next, small, sizeof(small)) == n);
        FUZZ_CHECK(memchr(small, '\0', sizeof(small)));
        FUZZ_CHECK(n == 0 || big[0] != '\0');
        config_keep_restart_keys(next, &running);
        /* Only runtime.enabled is not swapped back. */
        struct agent_config fresh = {0};
        FUZZ_CHECK(config_parse(NULL, defaults, sizeof(defaults) - 1, &fresh, problems) == 0);
        FUZZ_CHECK(config_restart_keys_changed(&fresh, next, big, sizeof(big)) ==
                   (fresh.runtime.enabled != next->runtime.enabled));
        config_free(&fresh);
        config_free(&running);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        /* An exact-size heap copy: ASan catches any read past len. */
        char *text = malloc(size ? size : 1);
        FUZZ_CHECK(text);
        if (size)
                memcpy(text, data, size);

        struct json_problems *problems = calloc(1, sizeof(*problems));
        FUZZ_CHECK(problems);
        struct agent_config c = {0};
        int r = config_parse("fuzz.json", text, size, &c, problems);
        if (r == 0) {
                FUZZ_CHECK(c.state_dir && c.runtime_dir);
                FUZZ_CHECK(c.health.n_zones <= HEALTH_CONFIG_MAX_ZONES);
                FUZZ_CHECK(c.health.n_disks <= HEALTH_CONFIG_MAX_DISKS);
                FUZZ_CHECK(!c.node_id || node_id_is_valid(c.node_id));
                check_reload(&c, problems);
                config_free(&c);
        } else {
                FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
                FUZZ_CHECK(r == -ENOMEM || problems->count > 0);
                FUZZ_CHECK(problems->count <= JSON_MAX_PROBLEMS);
                /* The message the operator reads is built from these: it must format. */
                char *msg = json_problems_to_message("fuzz.json", problems);
                FUZZ_CHECK(msg);
                free(msg);
        }
        free(problems);
        free(text);
        return 0;
}
