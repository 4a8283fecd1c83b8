/*
 * Unit tests for sha256_buffers (lib/sha256.c, lib/sha256-x86.c): known vectors, then every
 * count of buffers against sha256_buffer over short, block-edge, ~1 MiB and odd lengths at
 * misaligned addresses; each on the SHA-extension path (where the CPU has one) and on the
 * forced fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/sha256.h"
#include "lib/sha256-x86.h"

#define MAX_BUFFERS 9 /* two full groups of SHA256_LANES and one lane more */

/* data[i] = base + i * stride + skew, so the buffers overlap nothing of their digests */
static void check_against_single(const uint8_t *base, size_t stride, size_t skew, size_t len,
                                 size_t n) {
        const void *data[MAX_BUFFERS];
        uint8_t out[MAX_BUFFERS][SHA256_DIGEST_SIZE], want[SHA256_DIGEST_SIZE];
        for (size_t i = 0; i < n; i++)
                data[i] = base + i * stride + skew + i; /* a different alignment per lane */
        memset(out, 0xa5, sizeof(out));
        sha256_buffers(data, len, n, out);
        for (size_t i = 0; i < n; i++) {
                sha256_buffer(data[i], len, want);
                if (memcmp(out[i], want, SHA256_DIGEST_SIZE) != 0)
                        fail_msg("len %zu, %zu buffers, skew %zu: buffer %zu differs", len, n, skew, i);
        }
}

static uint8_t *pattern(size_t size) {
        uint8_t *p = malloc(size);
        assert_non_null(p);
        for (size_t i = 0; i < size; i++)
                p[i] = (uint8_t) ((i * 2654435761u) >> 13);
        return p;
}

static void test_known_vectors(void **state) {
        static const struct {
                const char *msg, *hex;
        } v[] = {
                {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
                {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
                /* 56 bytes: the length no longer fits the first padding block */
                {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
                /* 112 bytes: two full blocks and a block of padding alone */
                {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
                 "lmnopqrsmnopqrstnopqrstu",
                 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
        };
        for (int fallback = 0; fallback < 2; fallback++) {
                sha256_buffers_force_fallback(fallback);
                for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
                        size_t len = strlen(v[k].msg);
                        for (size_t n = 1; n <= SHA256_LANES + 1; n++) {
                                char copies[SHA256_LANES + 1][128];
                                const void *data[SHA256_LANES + 1];
                                uint8_t out[SHA256_LANES + 1][SHA256_DIGEST_SIZE];
                                char hex[SHA256_HEX_SIZE];
                                for (size_t i = 0; i < n; i++) {
                                        memcpy(copies[i] + i, v[k].msg, len);
                                        data[i] = copies[i] + i;
                                }
                                sha256_buffers(data, len, n, out);
                                for (size_t i = 0; i < n; i++) {
                                        sha256_to_hex(out[i], hex);
                                        assert_string_equal(hex, v[k].hex);
                                }
                        }
                }
        }
        sha256_buffers_force_fallback(false);
}

static void test_short_lengths(void **state) {
        uint8_t *p = pattern(MAX_BUFFERS * 400);
        for (int fallback = 0; fallback < 2; fallback++) {
                sha256_buffers_force_fallback(fallback);
                for (size_t n = 1; n <= MAX_BUFFERS; n++)
                        for (size_t len = 0; len <= 300; len++)
                                check_against_single(p, 400 - MAX_BUFFERS, len % 5, len, n);
        }
        sha256_buffers_force_fallback(false);
        free(p);
}

static void test_long_lengths(void **state) {
        static const size_t lens[] = {
                1u << 20, (1u << 20) + 1, (1u << 20) - 9, (1u << 20) + 55, (1u << 20) + 63, 777777,
        };
        size_t stride = (1u << 20) + 128;
        uint8_t *p = pattern(SHA256_LANES * stride + 64);
        for (int fallback = 0; fallback < 2; fallback++) {
                sha256_buffers_force_fallback(fallback);
                for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
                        for (size_t n = 1; n <= SHA256_LANES; n++)
                                check_against_single(p, stride, k, lens[k], n);
        }
        sha256_buffers_force_fallback(false);
        free(p);
}

/* One damaged byte in one lane changes that lane's digest alone. */
static void test_lanes_independent(void **state) {
        size_t len = 4096 + 17;
        uint8_t *p = pattern(SHA256_LANES * len);
        const void *data[SHA256_LANES];
        uint8_t before[SHA256_LANES][SHA256_DIGEST_SIZE], after[SHA256_LANES][SHA256_DIGEST_SIZE];
        for (size_t i = 0; i < SHA256_LANES; i++)
                data[i] = p + i * len;
        sha256_buffers(data, len, SHA256_LANES, before);
        p[2 * len + 1000] ^= 1;
        sha256_buffers(data, len, SHA256_LANES, after);
        for (size_t i = 0; i < SHA256_LANES; i++)
                assert_true((memcmp(before[i], after[i], SHA256_DIGEST_SIZE) != 0) == (i == 2));
        free(p);
}

int main(void) {
        /* under valgrind CPUID hides the SHA extensions: the fallback twice, said here */
        fprintf(stderr, "sha256_buffers: %s\n",
                sha256_x86_usable() ? "x86 SHA extensions and the fallback" : "the fallback only");
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_vectors),
                cmocka_unit_test(test_short_lengths),
                cmocka_unit_test(test_long_lengths),
                cmocka_unit_test(test_lanes_independent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
