/*
 * SHA-256. OpenSSL's libcrypto does the work where it can: it uses the CPU's SHA
 * instructions (x86 SHA-NI, ARMv8 crypto extensions), about six times the speed of
 * mbedTLS 2.28's portable C on the same machine (bench/update-install), and hashing is
 * most of the cost of an install. mbedTLS remains the fallback if libcrypto cannot give
 * a context (out of memory, no provider), so a hash never fails.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/sha256.h"
#include "lib/sha256-x86.h"

void sha256_init(struct sha256_ctx *c) {
        c->evp = EVP_MD_CTX_new();
        if (c->evp && EVP_DigestInit_ex(c->evp, EVP_sha256(), NULL) == 1)
                return;
        EVP_MD_CTX_free(c->evp);
        c->evp = NULL;
        mbedtls_sha256_init(&c->mbed);
        (void) mbedtls_sha256_starts_ret(&c->mbed, 0);
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len) {
        if (c->evp) {
                if (EVP_DigestUpdate(c->evp, data, len) == 1)
                        return;
                /* never seen with a working provider; a wrong digest is caught by its user */
        }
        (void) mbedtls_sha256_update_ret(&c->mbed, data, len);
}

void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE]) {
        if (c->evp) {
                unsigned n = 0;
                if (EVP_DigestFinal_ex(c->evp, out, &n) != 1 || n != SHA256_DIGEST_SIZE)
                        memset(out, 0, SHA256_DIGEST_SIZE); /* matches nothing */
                EVP_MD_CTX_free(c->evp);
                c->evp = NULL;
                return;
        }
        (void) mbedtls_sha256_finish_ret(&c->mbed, out);
        mbedtls_sha256_free(&c->mbed);
}

void sha256_discard(struct sha256_ctx *c) {
        uint8_t ignored[SHA256_DIGEST_SIZE];
        sha256_final(c, ignored);
}

void sha256_buffer(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]) {
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, data, len);
        sha256_final(&c, out);
}

static bool buffers_fallback; /* the test hook */

void sha256_buffers_force_fallback(bool on) {
        __atomic_store_n(&buffers_fallback, on, __ATOMIC_RELAXED);
}

void sha256_buffers(const void *const data[], size_t len, size_t n,
                    uint8_t out[][SHA256_DIGEST_SIZE]) {
        /* one buffer is as fast through OpenSSL, which knows more CPUs */
        if (n > 1 && !__atomic_load_n(&buffers_fallback, __ATOMIC_RELAXED) && sha256_x86_usable()) {
                for (size_t i = 0; i < n; i += SHA256_LANES) {
                        size_t lanes = n - i < SHA256_LANES ? n - i : SHA256_LANES;
                        sha256_x86_lanes(data + i, len, (unsigned) lanes, out + i);
                }
                return;
        }
        for (size_t i = 0; i < n; i++)
                sha256_buffer(data[i], len, out[i]);
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
