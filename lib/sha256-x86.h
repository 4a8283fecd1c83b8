/* Multi-buffer SHA-256 on x86-64 SHA extensions: lib/sha256.c's helper, not an API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/sha256.h"

/* Whether this CPU has SHA, SSSE3 and SSE4.1 (CPUID, asked once); false off x86-64. */
bool sha256_x86_usable(void);
/* n (1..4) buffers of len bytes each into out[0..n-1]; only when sha256_x86_usable(). */
void sha256_x86_lanes(const void *const data[], size_t len, unsigned n,
                      uint8_t out[][SHA256_DIGEST_SIZE]);
