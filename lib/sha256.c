/* SHA-256 through mbedTLS, so one audited implementation serves every module. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "sha256.h"

void sha256_init(struct sha256_ctx *c) {
        mbedtls_sha256_init(&c->mbed);
        (void) mbedtls_sha256_starts_ret(&c->mbed, 0);
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len) {
        (void) mbedtls_sha256_update_ret(&c->mbed, data, len);
}

void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE]) {
        (void) mbedtls_sha256_finish_ret(&c->mbed, out);
        mbedtls_sha256_free(&c->mbed);
}

void sha256_buffer(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]) {
        mbedtls_sha256_context ctx;
        mbedtls_sha256_init(&ctx);
        (void) mbedtls_sha256_starts_ret(&ctx, 0);
        (void) mbedtls_sha256_update_ret(&ctx, data, len);
        (void) mbedtls_sha256_finish_ret(&ctx, out);
        mbedtls_sha256_free(&ctx);
}

void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++) {
                out[2 * i] = hex[digest[i] >> 4];
                out[2 * i + 1] = hex[digest[i] & 0xf];
        }
        out[SHA256_HEX_SIZE - 1] = '\0';
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int sha256_from_hex(const char *hex, uint8_t out[SHA256_DIGEST_SIZE]) {
        if (!hex || strlen(hex) != SHA256_DIGEST_SIZE * 2)
                return -EINVAL;
        for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++) {
                int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}
