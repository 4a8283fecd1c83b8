/*
 * Fuzz the bootloader environment parsers: a grubenv block and U-Boot environments
 * (single and redundant) are read from disks that power cuts and radiation may have
 * damaged. Whatever parses must format back and parse to the same variables (a grubenv
 * puts the agent's ORBIT_* ones first, the others keep their order), and formatting that
 * again must give the same bytes; the kernel command line parser must give A, B or an error.
 */
#include "config.h"

#include "update/bootenv.h"
#include "fuzz-util.h"

static void check_same(const struct env_vars *a, const struct env_vars *b) {
        FUZZ_CHECK(a->count == b->count);
        for (size_t i = 0; i < a->count; i++) {
                FUZZ_CHECK(strcmp(a->items[i].name, b->items[i].name) == 0);
                FUZZ_CHECK(strcmp(a->items[i].value, b->items[i].value) == 0);
        }
}

/* b is a grubenv's a after a round trip: a's ORBIT_* variables first, then the others. */
static void check_same_grub(const struct env_vars *a, const struct env_vars *b) {
        FUZZ_CHECK(a->count == b->count);
        size_t j = 0;
        for (int ours = 1; ours >= 0; ours--)
                for (size_t i = 0; i < a->count; i++) {
                        if ((strncmp(a->items[i].name, "ORBIT_", 6) == 0) != ours)
                                continue;
                        FUZZ_CHECK(j < b->count);
                        FUZZ_CHECK(strcmp(a->items[i].name, b->items[j].name) == 0);
                        FUZZ_CHECK(strcmp(a->items[i].value, b->items[j].value) == 0);
                        j++;
                }
        FUZZ_CHECK(j == b->count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        const char *reason = NULL;

        /* grubenv: exactly 1024 bytes are ever valid; any other size must be refused. */
        struct env_vars g = {0};
        if (grubenv_parse((const char *) data, size, &g, &reason) == 0) {
                FUZZ_CHECK(size == GRUBENV_SIZE);
                char out[GRUBENV_SIZE];
                FUZZ_CHECK(grubenv_format(&g, out) == 0);
                struct env_vars back = {0};
                FUZZ_CHECK(grubenv_parse(out, sizeof(out), &back, &reason) == 0);
                check_same_grub(&g, &back);
                char again[GRUBENV_SIZE];
                FUZZ_CHECK(grubenv_format(&back, again) == 0);
                FUZZ_CHECK(memcmp(out, again, sizeof(out)) == 0);
                env_vars_clear(&back);
        } else
                FUZZ_CHECK(reason != NULL);
        env_vars_clear(&g);

        /* U-Boot: the first byte picks single or redundant; the rest is the area. */
        if (size >= 1) {
                bool redundant = data[0] & 1;
                const uint8_t *area = data + 1;
                size_t len = size - 1;
                struct env_vars u = {0};
                uint8_t flags = 0;
                reason = NULL;
                if (ubootenv_parse(area, len, len, redundant, &u, &flags, &reason) == 0) {
                        uint8_t *out = malloc(len ? len : 1);
                        FUZZ_CHECK(out);
                        FUZZ_CHECK(ubootenv_format(&u, len, redundant, flags, out) == 0);
                        struct env_vars back = {0};
                        uint8_t back_flags = 0;
                        FUZZ_CHECK(ubootenv_parse(out, len, len, redundant, &back, &back_flags, &reason) == 0);
                        check_same(&u, &back);
                        FUZZ_CHECK(!redundant || back_flags == flags);
                        env_vars_clear(&back);
                        free(out);
                }
                env_vars_clear(&u);
        }

        char *cmdline = fuzz_strndup(data, size);
        FUZZ_CHECK(cmdline);
        char slot = 0;
        int r = kernel_cmdline_booted_slot(cmdline, &slot);
        FUZZ_CHECK(r < 0 || slot == 'A' || slot == 'B');
        free(cmdline);
        return 0;
}
