/*
 * Fuzz statefile_decode(): state files are read back after crashes and power cuts, so
 * any bytes at all may be on disk. Whatever decodes must encode back to a file that
 * decodes to the same payload; and any input, taken as a payload, must round-trip.
 */
#include "config.h"

#include "fuzz-util.h"
#include "lib/statefile.h"

static void check_round_trip(const char *payload, size_t len) {
        char *encoded = NULL;
        size_t encoded_len = 0;
        FUZZ_CHECK(statefile_encode(payload, len, &encoded, &encoded_len) == 0);
        FUZZ_CHECK(encoded[encoded_len] == '\0');

        const char *back = NULL;
        size_t back_len = 0;
        FUZZ_CHECK(statefile_decode(encoded, encoded_len, &back, &back_len) == 0);
        FUZZ_CHECK(back_len == len);
        FUZZ_CHECK(len == 0 || memcmp(back, payload, len) == 0);
        FUZZ_CHECK(back >= encoded && back + back_len <= encoded + encoded_len);

        /* Cut anywhere, the file is refused, never half-trusted. */
        for (size_t cut = 0; cut < encoded_len; cut += 1 + cut / 2)
                FUZZ_CHECK(statefile_decode(encoded, cut, &back, &back_len) < 0);
        free(encoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        char *raw = malloc(size ? size : 1);
        FUZZ_CHECK(raw);
        if (size)
                memcpy(raw, data, size);

        const char *payload = NULL;
        size_t len = 0;
        int r = statefile_decode(raw, size, &payload, &len);
        if (r == 0) {
                FUZZ_CHECK(payload >= raw && payload + len <= raw + size);
                check_round_trip(payload, len);
        } else
                FUZZ_CHECK(r == -EBADMSG || r == -ENODATA);

        /* The checksum keeps random bytes from decoding; this reaches the valid path. */
        check_round_trip(raw, size);
        free(raw);
        return 0;
}
