/*
 * Fuzz statefile_pair_decode(): one block of the install's progress file, read back after
 * power cuts (a torn write), bit flips, or any bytes a bug left there. A block decodes
 * only when it is exactly what statefile_pair_encode() makes of what it decoded to: no
 * other bytes, no other block size. Any input, taken as a payload, round-trips, and a
 * changed byte, or a block torn between two copies, never decodes to something else.
 *
 * Input: byte 0 picks the block (4096 or 8192 bytes) and where a tear or a change falls;
 * the rest is the block, zero-padded (as the load sees a block: one half of the file).
 */
#include "config.h"

#include "fuzz-util.h"
#include "lib/statefile.h"

#define SECTOR 512

static void check_canonical(const char *blk, size_t block) {
        uint64_t seq = 0;
        const char *payload = NULL;
        size_t len = 0;
        int r = statefile_pair_decode(blk, block, &seq, &payload, &len);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ENODATA);
                if (r == -ENODATA)
                        for (size_t i = 0; i < block; i++)
                                FUZZ_CHECK(blk[i] == 0);
                return;
        }
        FUZZ_CHECK(payload > blk && payload + len <= blk + block);
        char *again = malloc(block);
        FUZZ_CHECK(again);
        FUZZ_CHECK(statefile_pair_encode(seq, payload, len, again, block) == 0);
        FUZZ_CHECK(memcmp(again, blk, block) == 0);
        free(again);
}

/* Copies seq and seq + 2 (the same block of the file) of two payloads, torn at a sector:
 * what decodes is one of them. */
static void check_torn(const char *a, size_t a_len, const char *b, size_t b_len, uint64_t seq, size_t block,
                       size_t at) {
        if (statefile_pair_block_size(a_len) > block || statefile_pair_block_size(b_len) > block)
                return;
        char *x = malloc(block), *y = malloc(block), *torn = malloc(block);
        FUZZ_CHECK(x && y && torn);
        FUZZ_CHECK(statefile_pair_encode(seq, a, a_len, x, block) == 0);
        FUZZ_CHECK(statefile_pair_encode(seq + 2, b, b_len, y, block) == 0);
        for (int k = 0; k < 2; k++) {
                memcpy(torn, k ? y : x, at);
                memcpy(torn + at, k ? x + at : y + at, block - at);
                uint64_t s;
                const char *p;
                size_t l;
                if (statefile_pair_decode(torn, block, &s, &p, &l) == 0)
                        FUZZ_CHECK(memcmp(torn, x, block) == 0 || memcmp(torn, y, block) == 0);
        }
        free(x);
        free(y);
        free(torn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > FUZZ_MAX_INPUT)
                return 0;
        uint8_t sel = data[0];
        data++;
        size--;
        size_t block = STATEFILE_PAIR_ALIGN * (1 + (sel & 1));
        char *blk = calloc(1, block);
        FUZZ_CHECK(blk);
        memcpy(blk, data, size < block ? size : block);
        check_canonical(blk, block);

        /* The input as a payload (its first 8 bytes the seq): every byte of the copy counts. */
        uint64_t seq = 0;
        memcpy(&seq, data, size < sizeof(seq) ? size : sizeof(seq));
        size_t len = size < block - 128 ? size : block - 128;
        char *enc = malloc(block);
        FUZZ_CHECK(enc);
        FUZZ_CHECK(statefile_pair_encode(seq, data, len, enc, block) == 0);
        uint64_t s;
        const char *p;
        size_t l;
        FUZZ_CHECK(statefile_pair_decode(enc, block, &s, &p, &l) == 0);
        FUZZ_CHECK(s == seq && l == len && (len == 0 || memcmp(p, data, len) == 0));
        size_t at = (size_t) (sel >> 1) * 37 % block;
        enc[at] ^= (char) (1 + (sel % 255));
        FUZZ_CHECK(statefile_pair_decode(enc, block, &s, &p, &l) == -EBADMSG);
        free(enc);

        /* Torn between the input's halves as two payloads, at a sector boundary. */
        size_t half = len / 2;
        check_torn((const char *) data, half, (const char *) data + half, len - half, seq, block,
                   SECTOR * (1 + (size_t) (sel >> 1) % (block / SECTOR - 1)));
        free(blk);
        return 0;
}
