/*
 * Fuzz sha256_buffers against sha256_buffer: the first byte gives the number of buffers
 * (1-9: up to two full groups of lanes and one more); the rest is cut into that many
 * equal-length buffers, each copied to an allocation of exactly its size at an address of
 * its own alignment, so a kernel reading past a buffer (the tail, the padding) is an ASan
 * report. Every digest must be sha256_buffer's.
 */
#include "config.h"

#include "fuzz-util.h"
#include "lib/sha256.h"

#define MAX_BUFFERS 9

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT || size < 1)
                return 0;
        size_t n = 1 + data[0] % MAX_BUFFERS;
        data++;
        size--;
        size_t len = size / n;

        uint8_t *copies[MAX_BUFFERS];
        const void *bufs[MAX_BUFFERS];
        uint8_t out[MAX_BUFFERS][SHA256_DIGEST_SIZE], want[SHA256_DIGEST_SIZE];
        for (size_t i = 0; i < n; i++) {
                /* i bytes in: lane i starts i bytes past malloc's alignment */
                copies[i] = malloc(len + i + 1);
                FUZZ_CHECK(copies[i]);
                if (len)
                        memcpy(copies[i] + i, data + i * len, len);
                bufs[i] = copies[i] + i;
        }
        sha256_buffers(bufs, len, n, out);
        for (size_t i = 0; i < n; i++) {
                sha256_buffer(bufs[i], len, want);
                FUZZ_CHECK(memcmp(out[i], want, SHA256_DIGEST_SIZE) == 0);
                free(copies[i]);
        }
        return 0;
}
