/*
 * Up to four SHA-256 streams hashed at once on one x86-64 core with the SHA extensions.
 *
 * sha256rnds2 has a latency longer than its issue interval, so one stream leaves the unit
 * idle between its dependent rounds: OpenSSL reaches 1.7 GB/s per core on an AMD EPYC,
 * four independent streams interleaved here about 3 GB/s. No library Debian 12 ships
 * offers this (OpenSSL has no multi-buffer SHA-256 API; isa-l_crypto is not packaged).
 *
 * The kernel is written once for n lanes and always inlined into one function per n, so
 * that every lane loop unrolls and each lane's state stays in registers. Only this file is
 * compiled for the SHA instructions (the target attribute); the caller checks CPUID first.
 */
#include "config.h"

#include <string.h>

#include "lib/sha256-x86.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>

#define KERNEL __attribute__((target("sha,ssse3,sse4.1")))
#define INLINE_KERNEL KERNEL inline __attribute__((always_inline))

static const uint32_t K[64] __attribute__((aligned(16))) = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/*
 * nblocks 64-byte blocks of each lane's p[l] into its state, kept as sha256rnds2 wants it:
 * a = ABEF, c = CDGH. Rounds go four at a time (two sha256rnds2), message words four at a
 * time (sha256msg1/msg2), every step done for all lanes before the next, so the lanes'
 * independent instructions fill each other's latency.
 */
INLINE_KERNEL static void blocks(unsigned n, __m128i a[], __m128i c[], const uint8_t *p[],
                                 size_t nblocks) {
        const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
        for (size_t b = 0; b < nblocks; b++) {
                __m128i sa[4], sc[4], w[4][4], x[4];
#pragma GCC unroll 4
                for (unsigned l = 0; l < n; l++) {
                        sa[l] = a[l];
                        sc[l] = c[l];
                }
#pragma GCC unroll 16
                for (unsigned g = 0; g < 16; g++) {
                        __m128i k = _mm_load_si128((const __m128i *) &K[4 * g]);
#pragma GCC unroll 4
                        for (unsigned l = 0; l < n; l++) {
                                if (g < 4) {
                                        __m128i m = _mm_loadu_si128((const __m128i *) (p[l] + 64 * b + 16 * g));
                                        w[l][g] = _mm_shuffle_epi8(m, bswap);
                                } else {
                                        /* W[t..t+3] from W[t-16..t-1], four words in a row */
                                        __m128i m = _mm_sha256msg1_epu32(w[l][g & 3], w[l][(g + 1) & 3]);
                                        m = _mm_add_epi32(m, _mm_alignr_epi8(w[l][(g + 3) & 3],
                                                                             w[l][(g + 2) & 3], 4));
                                        w[l][g & 3] = _mm_sha256msg2_epu32(m, w[l][(g + 3) & 3]);
                                }
                                x[l] = _mm_add_epi32(w[l][g & 3], k);
                        }
#pragma GCC unroll 4
                        for (unsigned l = 0; l < n; l++)
                                c[l] = _mm_sha256rnds2_epu32(c[l], a[l], x[l]);
#pragma GCC unroll 4
                        for (unsigned l = 0; l < n; l++)
                                a[l] = _mm_sha256rnds2_epu32(a[l], c[l], _mm_shuffle_epi32(x[l], 0x0e));
                }
#pragma GCC unroll 4
                for (unsigned l = 0; l < n; l++) {
                        a[l] = _mm_add_epi32(a[l], sa[l]);
                        c[l] = _mm_add_epi32(c[l], sc[l]);
                }
        }
}

/*
 * Whole messages of len bytes: the full blocks straight from the buffers, then one or two
 * padding blocks per lane built on the stack (the same count for all: equal lengths give
 * equal padding).
 */
INLINE_KERNEL static void hash_lanes(unsigned n, const void *const data[], size_t len,
                                     uint8_t out[][SHA256_DIGEST_SIZE]) {
        __m128i a[4], c[4];
        const uint8_t *p[4];
        uint8_t tail[4][128] __attribute__((aligned(16)));
        size_t full = len / 64, rest = len % 64, tail_blocks = rest < 56 ? 1 : 2;
        uint64_t bits = (uint64_t) len * 8;

#pragma GCC unroll 4
        for (unsigned l = 0; l < n; l++) {
                /* H0..H7 as ABEF and CDGH */
                __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) H0), 0xb1);
                c[l] = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) (H0 + 4)), 0x1b);
                a[l] = _mm_alignr_epi8(t, c[l], 8);
                c[l] = _mm_blend_epi16(c[l], t, 0xf0);
                p[l] = data[l];
        }
        blocks(n, a, c, p, full);

        for (unsigned l = 0; l < n; l++) {
                memset(tail[l], 0, sizeof(tail[l]));
                if (rest)
                        memcpy(tail[l], (const uint8_t *) data[l] + 64 * full, rest);
                tail[l][rest] = 0x80;
                for (unsigned i = 0; i < 8; i++)
                        tail[l][64 * tail_blocks - 1 - i] = (uint8_t) (bits >> (8 * i));
                p[l] = tail[l];
        }
        blocks(n, a, c, p, tail_blocks);

#pragma GCC unroll 4
        for (unsigned l = 0; l < n; l++) {
                /* back to H0..H7, each word big-endian */
                const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
                __m128i t = _mm_shuffle_epi32(a[l], 0x1b), u = _mm_shuffle_epi32(c[l], 0xb1);
                __m128i h0 = _mm_blend_epi16(t, u, 0xf0), h4 = _mm_alignr_epi8(u, t, 8);
                _mm_storeu_si128((__m128i *) out[l], _mm_shuffle_epi8(h0, bswap));
                _mm_storeu_si128((__m128i *) (out[l] + 16), _mm_shuffle_epi8(h4, bswap));
        }
}

KERNEL static void hash_x1(const void *const d[], size_t len, uint8_t out[][SHA256_DIGEST_SIZE]) {
        hash_lanes(1, d, len, out);
}

KERNEL static void hash_x2(const void *const d[], size_t len, uint8_t out[][SHA256_DIGEST_SIZE]) {
        hash_lanes(2, d, len, out);
}

KERNEL static void hash_x3(const void *const d[], size_t len, uint8_t out[][SHA256_DIGEST_SIZE]) {
        hash_lanes(3, d, len, out);
}

KERNEL static void hash_x4(const void *const d[], size_t len, uint8_t out[][SHA256_DIGEST_SIZE]) {
        hash_lanes(4, d, len, out);
}

/*
 * From CPUID, not /proc/cpuinfo: valgrind (the test suite runs under it) virtualizes CPUID
 * and hides what it cannot emulate, so the code under it takes the fallback.
 */
static bool cpu_has_sha(void) {
        unsigned eax, ebx, ecx, edx;
        if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_SSSE3) || !(ecx & bit_SSE4_1))
                return false;
        if (__get_cpuid_max(0, NULL) < 7)
                return false;
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        return ebx & bit_SHA;
}

bool sha256_x86_usable(void) {
        /* 0: not asked yet; racing threads ask twice and agree */
        static int usable;
        int u = __atomic_load_n(&usable, __ATOMIC_RELAXED);
        if (u == 0) {
                u = cpu_has_sha() ? 1 : -1;
                __atomic_store_n(&usable, u, __ATOMIC_RELAXED);
        }
        return u > 0;
}

void sha256_x86_lanes(const void *const data[], size_t len, unsigned n,
                      uint8_t out[][SHA256_DIGEST_SIZE]) {
        switch (n) {
        case 1:
                hash_x1(data, len, out);
                break;
        case 2:
                hash_x2(data, len, out);
                break;
        case 3:
                hash_x3(data, len, out);
                break;
        default:
                hash_x4(data, len, out);
                break;
        }
}

#else

bool sha256_x86_usable(void) {
        return false;
}

void sha256_x86_lanes(const void *const data[], size_t len, unsigned n,
                      uint8_t out[][SHA256_DIGEST_SIZE]) {
        /* never called: sha256_x86_usable() said no */
}

#endif
