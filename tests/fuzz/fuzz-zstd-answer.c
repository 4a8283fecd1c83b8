/*
 * Fuzz the agent's path for a zstd answer: body_decoder_feed() in pieces into a buffer of
 * exactly the limit plus one byte, at most a few KiB of output per call (the link decodes
 * a dispatch's budget at a time), then link_answer_parse() on what came out. Whatever the
 * input, the decoder never writes past the limit, fails at once and for good past it, and
 * says why it fails; a body it takes decodes the same in one piece (body_decompress) and
 * in many.
 *
 * Byte 0: bit 0, decode with the harness's dictionary (id 4242, built at start-up from a
 * sync answer); bits 1-7, the size of the input pieces (1-128 bytes). The rest is the body.
 */
#include "config.h"

#include <zdict.h>

#include "fuzz-util.h"
#include "proto/body-codec.h"
#include "proto/sync-answer.h"

/* Small enough to keep runs fast; the bound is what is checked, not its size. */
#define LIMIT (256 * 1024)
#define OUT_PER_CALL 4096

static struct body_dictionary *dictionary(void) {
        static struct body_dictionary *d;
        static const char content[] =
                "{\"format\":1,\"acked\":[{\"boot_epoch\":3,\"boot_id\":\"0123456789abcdef0123456789abcdef\","
                "\"seq\":[15,16,17]}],\"commands\":[],\"contact_plan\":{\"windows\":[]},\"next_sync_sec\":60,"
                "\"server_time\":1718000123}";
        if (d)
                return d;
        size_t sizes[8];
        char samples[8 * sizeof(content)];
        for (size_t i = 0; i < 8; i++) {
                memcpy(samples + i * (sizeof(content) - 1), content, sizeof(content) - 1);
                sizes[i] = sizeof(content) - 1;
        }
        char buf[4096];
        ZDICT_params_t p = {.compressionLevel = BODY_CODEC_LEVEL, .dictID = 4242};
        size_t n = ZDICT_finalizeDictionary(buf, sizeof(buf), content, sizeof(content) - 1, samples, sizes, 8, p);
        FUZZ_CHECK(!ZDICT_isError(n));
        FUZZ_CHECK(body_dictionary_new(buf, n, &d, NULL) == 0);
        return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > FUZZ_MAX_INPUT)
                return 0;
        const struct body_dictionary *dict = data[0] & 1 ? dictionary() : NULL;
        size_t piece = (size_t) (data[0] >> 1) + 1;
        const uint8_t *body = data + 1;
        size_t len = size - 1;

        struct body_decoder *d = NULL;
        FUZZ_CHECK(body_decoder_new(LIMIT, dict, &d) == 0);
        char *out = malloc(LIMIT + 1); /* exactly what the decoder may write: ASan sees an overrun */
        FUZZ_CHECK(out);
        size_t in = 0, pos = 0;
        unsigned stalls = 0;
        char *msg = NULL;
        int r = 0;
        while (r == 0) {
                size_t n = len - in < piece ? len - in : piece, used = 0, made = 0;
                size_t room = LIMIT + 1 - pos < OUT_PER_CALL ? LIMIT + 1 - pos : OUT_PER_CALL;
                r = body_decoder_feed(d, body + in, n, &used, out + pos, room, &made, &msg);
                FUZZ_CHECK(used <= n && made <= room);
                in += used;
                pos += made;
                FUZZ_CHECK(pos == body_decoder_total_out(d) && pos <= LIMIT + 1);
                if (r < 0)
                        break;
                FUZZ_CHECK(pos <= LIMIT);
                if (in == len && !body_decoder_has_output(d)) {
                        r = body_decoder_finish(d, &msg);
                        break;
                }
                /* zstd reports an error after 16 calls without progress: never a loop */
                stalls = used == 0 && made == 0 ? stalls + 1 : 0;
                FUZZ_CHECK(stalls < 32);
        }
        if (r < 0) {
                FUZZ_CHECK(r == -EFBIG || r == -EBADMSG || r == -ENOKEY || r == -ENOMEM);
                FUZZ_CHECK(msg != NULL);
                /* sticky: nothing more comes out */
                size_t used = 0, made = 0;
                FUZZ_CHECK(body_decoder_feed(d, body, len, &used, out, LIMIT + 1, &made, NULL) == r && made == 0);
        } else if (in == len) {
                /* the same in one piece */
                char *whole = NULL, *why = NULL;
                size_t whole_len = 0;
                FUZZ_CHECK(body_decompress(body, len, LIMIT, dict, &whole, &whole_len, &why) == 0);
                FUZZ_CHECK(whole_len == pos && memcmp(whole, out, pos) == 0);
                free(whole);
                free(why);
                struct link_answer a;
                char *problem = NULL;
                int p = link_answer_parse(out, pos, &a, &problem);
                if (p == 0) {
                        FUZZ_CHECK(a.next_sync_sec >= 0 && a.next_sync_sec <= LINK_ANSWER_MAX_NEXT_SYNC_SEC);
                        link_answer_done(&a);
                } else
                        FUZZ_CHECK(p == -ENOMEM || problem != NULL);
                free(problem);
        }
        free(msg);
        free(out);
        body_decoder_free(d);
        return 0;
}
