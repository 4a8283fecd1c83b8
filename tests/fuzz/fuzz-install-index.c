/*
 * Fuzz install_index_decode(): the kept scan of a factory slot (slot-<class>-<slot>.scan,
 * docs/update.md), read back at every resumed install. Its state file's checksum holds
 * against a bit flip on the medium, not against any bytes an older or buggy agent wrote
 * there. Any input either is refused with a reason or decodes to an index whose every
 * chunk lies inside the slot, every hash of which the lookup finds (at a chunk that holds
 * it: duplicates keep one), and whose encoding decodes again to the same index.
 *
 * Input: byte 0 picks the scan's size (1 to 64 chunks of 4096 bytes, plus a short tail
 * from its high bits); the rest is the kept bytes. The header names a size and a chunk
 * size: a seed's header matches byte 0's choice.
 */
#include "config.h"

#include "fuzz-util.h"
#include "lib/sha256.h"
#include "update/install.h"

#define CHUNK 4096u
#define INDEX_PAIR (SHA256_DIGEST_SIZE + 8)

static size_t header_len(const uint8_t *d, size_t len) {
        const uint8_t *nl = memchr(d, '\n', len);
        return nl ? (size_t) (nl + 1 - d) : len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT || size < 1)
                return 0;
        uint64_t n_chunks = 1 + (data[0] & 63), tail = (data[0] >> 6) * 1000u;
        uint64_t slot = n_chunks * CHUNK + tail;
        data++;
        size--;

        struct install_index *ix = NULL;
        char *why = NULL;
        int r = install_index_decode(data, size, CHUNK, slot, &ix, &why);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
                FUZZ_CHECK(r == -ENOMEM || (why && *why));
                FUZZ_CHECK(!ix);
                free(why);
                return 0;
        }
        FUZZ_CHECK(ix);
        /* every pair: its chunk inside the slot's whole chunks, its hash found */
        size_t h = header_len(data, size), pairs = (size - h) / INDEX_PAIR;
        FUZZ_CHECK((size - h) % INDEX_PAIR == 0);
        size_t count = install_index_count(ix);
        FUZZ_CHECK(count <= pairs);
        for (size_t i = 0; i < pairs; i++) {
                const uint8_t *p = data + h + i * INDEX_PAIR;
                int64_t c = install_index_lookup(ix, p);
                FUZZ_CHECK(c >= 0 && (uint64_t) c < n_chunks);
                /* the chunk the lookup gives holds that hash in the kept bytes too */
                bool held = false;
                for (size_t j = 0; j < pairs && !held; j++) {
                        const uint8_t *q = data + h + j * INDEX_PAIR;
                        uint64_t cj = 0;
                        for (int k = 7; k >= 0; k--)
                                cj = cj << 8 | q[SHA256_DIGEST_SIZE + k];
                        held = cj == (uint64_t) c && memcmp(q, p, SHA256_DIGEST_SIZE) == 0;
                }
                FUZZ_CHECK(held);
        }
        /* its encoding decodes to the same index */
        uint8_t *enc = NULL;
        size_t enc_len = 0;
        FUZZ_CHECK(install_index_encode(ix, CHUNK, slot, &enc, &enc_len) == 0);
        struct install_index *again = NULL;
        FUZZ_CHECK(install_index_decode(enc, enc_len, CHUNK, slot, &again, &why) == 0);
        FUZZ_CHECK(install_index_count(again) == count);
        size_t eh = header_len(enc, enc_len);
        FUZZ_CHECK((enc_len - eh) / INDEX_PAIR == count);
        for (size_t i = 0; i < count; i++) {
                const uint8_t *p = enc + eh + i * INDEX_PAIR;
                FUZZ_CHECK(install_index_lookup(again, p) == install_index_lookup(ix, p));
        }
        /* another chunk size, or another size: refused */
        struct install_index *other = NULL;
        FUZZ_CHECK(install_index_decode(enc, enc_len, CHUNK * 2, slot, &other, &why) == -EBADMSG);
        free(why);
        why = NULL;
        FUZZ_CHECK(install_index_decode(enc, enc_len, CHUNK, slot + 1, &other, &why) == -EBADMSG);
        free(why);
        free(enc);
        install_index_free(again);
        install_index_free(ix);
        return 0;
}
