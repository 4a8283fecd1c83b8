/* SHA-256 over buffers and files (mbedTLS), with hex helpers. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE (SHA256_DIGEST_SIZE * 2 + 1)

void sha256_buffer(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]);
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]);
/* Parse 64 hex digits (either case); -EINVAL on anything else. */
int sha256_from_hex(const char *hex, uint8_t out[SHA256_DIGEST_SIZE]);
