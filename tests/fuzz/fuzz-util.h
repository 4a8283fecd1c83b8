/* Shared bits of the libFuzzer harnesses: input bounds, quiet logs, checks that abort. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

/* Far above any real input of these parsers' shapes, small enough to keep runs fast. */
#define FUZZ_MAX_INPUT (64 * 1024)

/* A broken invariant is a finding: say which, then abort so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                                           \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__,      \
                                #cond);                                                            \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        /* Parsers log what they reject; a run of millions of inputs must not. */
        log_set_max_level(LOG_CRIT);
        return 0;
}

/* A NUL-terminated heap copy, for the parsers that take C strings. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return NULL;
        if (size > 0)
                memcpy(s, data, size);
        s[size] = '\0';
        return s;
}
