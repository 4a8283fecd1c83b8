/* SHA-256 over buffers and streams (OpenSSL libcrypto, mbedTLS as the fallback), with hex helpers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/sha256.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE (SHA256_DIGEST_SIZE * 2 + 1)

/* Incremental hashing, for streams: init, update any number of times, final. */
struct evp_md_ctx_st;
struct sha256_ctx {
        struct evp_md_ctx_st *evp;   /* libcrypto (CPU SHA instructions), or NULL: */
        mbedtls_sha256_context mbed; /* the portable fallback */
};
void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Write the digest and release the context (init again to reuse it). */
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE]);
/* Release the context without a digest (a stream abandoned half-way). */
void sha256_discard(struct sha256_ctx *c);

void sha256_buffer(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]);
/*
 * n buffers of the same length, out[i] the digest of data[i]: with the x86 SHA extensions
 * up to SHA256_LANES of them hashed at once on this core (about 1.8x the speed of one at a
 * time), else one after the other. Any n; groups of SHA256_LANES are the fastest.
 */
#define SHA256_LANES 4
void sha256_buffers(const void *const data[], size_t len, size_t n,
                    uint8_t out[][SHA256_DIGEST_SIZE]);
/* Tests: sha256_buffers one buffer at a time through sha256_buffer, whatever the CPU. */
void sha256_buffers_force_fallback(bool on);
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]);
/* Parse 64 hex digits (either case); -EINVAL on anything else. */
int sha256_from_hex(const char *hex, uint8_t out[SHA256_DIGEST_SIZE]);
