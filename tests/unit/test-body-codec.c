/* Unit tests for the zstd coding of the link's bodies: the headers, round trips with and
 * without a dictionary, the fallbacks, and the bounds on what a hostile body can make. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zdict.h>
#include <zstd.h>

#include "lib/macro.h"
#include "proto/body-codec.h"

static void test_accept_encoding(void **state) {
        assert_true(body_codec_accepts_zstd("zstd"));
        assert_true(body_codec_accepts_zstd("gzip, zstd"));
        assert_true(body_codec_accepts_zstd("gzip,ZSTD;q=0.5"));
        assert_true(body_codec_accepts_zstd(" zstd ; q=1"));
        assert_true(body_codec_accepts_zstd("*"));
        assert_true(body_codec_accepts_zstd("zstd;q=0.001"));
        assert_false(body_codec_accepts_zstd(NULL));
        assert_false(body_codec_accepts_zstd(""));
        assert_false(body_codec_accepts_zstd("gzip, br"));
        assert_false(body_codec_accepts_zstd("zstd;q=0"));
        assert_false(body_codec_accepts_zstd("zstd; q=0.000"));
        assert_false(body_codec_accepts_zstd("*;q=0"));
        assert_false(body_codec_accepts_zstd("*, zstd;q=0"));
        assert_false(body_codec_accepts_zstd("zstdx, xzstd, zst"));
        assert_false(body_codec_accepts_zstd("identity"));
}

static void test_content_encoding(void **state) {
        enum body_coding c = BODY_CODING_ZSTD;
        assert_int_equal(body_coding_parse(NULL, &c), 0);
        assert_int_equal(c, BODY_CODING_IDENTITY);
        assert_int_equal(body_coding_parse(" zstd ", &c), 0);
        assert_int_equal(c, BODY_CODING_ZSTD);
        assert_int_equal(body_coding_parse("ZSTD", &c), 0);
        assert_int_equal(c, BODY_CODING_ZSTD);
        assert_int_equal(body_coding_parse("identity", &c), 0);
        assert_int_equal(c, BODY_CODING_IDENTITY);
        assert_int_equal(body_coding_parse("", &c), 0);
        assert_int_equal(c, BODY_CODING_IDENTITY);
        assert_int_equal(body_coding_parse("gzip", &c), -EOPNOTSUPP);
        assert_int_equal(body_coding_parse("zstd, gzip", &c), -EOPNOTSUPP);
        assert_int_equal(body_coding_parse("zstd;q=1", &c), -EOPNOTSUPP);
}

static void test_dictionary_id(void **state) {
        uint32_t id = 0;
        assert_int_equal(body_dictionary_id_parse("1", &id), 0);
        assert_int_equal(id, 1);
        assert_int_equal(body_dictionary_id_parse(" 4294967295 ", &id), 0);
        assert_int_equal(id, 4294967295u);
        assert_int_equal(body_dictionary_id_parse("4294967296", &id), -EINVAL);
        assert_int_equal(body_dictionary_id_parse("0", &id), -EINVAL);
        assert_int_equal(body_dictionary_id_parse("", &id), -EINVAL);
        assert_int_equal(body_dictionary_id_parse("12a", &id), -EINVAL);
        assert_int_equal(body_dictionary_id_parse("-1", &id), -EINVAL);
        assert_int_equal(body_dictionary_id_parse("00000000001", &id), -EINVAL);
        assert_int_equal(body_dictionary_id_parse(NULL, &id), -EINVAL);
}

/* A health report like the agent's, varied by i. */
static int record_text(char *buf, size_t size, unsigned i) {
        return snprintf(buf, size,
                        "{\"format\":1,\"key\":{\"node\":\"sat-%u\",\"boot_epoch\":%u,\"boot_id\":"
                        "\"0123456789abcdef0123456789abcd%02x\",\"seq\":%u},\"priority\":\"normal\","
                        "\"kind\":\"health.report\",\"time_usec\":17180000%08u,\"monotonic_usec\":%u,"
                        "\"body\":{\"level\":\"normal\",\"cpu\":{\"busy_pct\":%u.%u,\"load1\":0.%u},"
                        "\"memory\":{\"total_kib\":4030000,\"available_kib\":%u},\"thermal\":[{\"zone\":"
                        "\"cpu-thermal\",\"temp_c\":%u.%u}],\"workloads\":{\"running\":%u,\"stopped\":0}}}",
                        i % 7, i % 3, i % 256, i, i * 7919u % 100000000u, i * 1000u, i % 100, i % 10,
                        i % 97, 3000000 + i * 37, 40 + i % 30, i % 10, i % 5);
}

static char *records_json(unsigned n, size_t *ret_len) {
        size_t cap = (size_t) n * 700 + 64, len = 0;
        char *s = malloc(cap);
        assert_non_null(s);
        len += (size_t) snprintf(s, cap, "{\"format\":1,\"records\":[");
        for (unsigned i = 0; i < n; i++) {
                if (i)
                        s[len++] = ',';
                len += (size_t) record_text(s + len, cap - len, i);
        }
        len += (size_t) snprintf(s + len, cap - len, "]}");
        *ret_len = len;
        return s;
}

/* A dictionary trained on records like the agent's, with the given id. */
static struct body_dictionary *train(uint32_t id) {
        enum { SAMPLES = 400 };
        static char samples[SAMPLES * 700];
        size_t sizes[SAMPLES], len = 0;
        for (unsigned i = 0; i < SAMPLES; i++) {
                sizes[i] = (size_t) record_text(samples + len, sizeof(samples) - len, i * 13 + 5);
                len += sizes[i];
        }
        char dict[16384];
        ZDICT_params_t p = {.compressionLevel = BODY_CODEC_LEVEL, .dictID = id};
        size_t n = ZDICT_finalizeDictionary(dict, sizeof(dict), samples, 8192, samples, sizes, SAMPLES, p);
        assert_false(ZDICT_isError(n));
        struct body_dictionary *d = NULL;
        assert_int_equal(body_dictionary_new(dict, n, &d, NULL), 0);
        assert_int_equal(body_dictionary_id(d), id);
        return d;
}

static void roundtrip(const char *text, size_t len, const struct body_dictionary *enc,
                      const struct body_dictionary *dec, size_t *ret_compressed) {
        _cleanup_free_ char *z = NULL, *out = NULL, *msg = NULL;
        size_t zlen = 0, olen = 0;
        assert_int_equal(body_compress(text, len, enc, BODY_CODEC_LEVEL, &z, &zlen), 0);
        assert_int_equal(body_decompress(z, zlen, len, dec, &out, &olen, &msg), 0);
        assert_null(msg);
        assert_int_equal(olen, len);
        assert_memory_equal(out, text, len);
        assert_int_equal(out[olen], '\0');
        if (ret_compressed)
                *ret_compressed = zlen;
}

static void test_roundtrip(void **state) {
        size_t len, plain_z, dict_z;
        _cleanup_free_ char *text = records_json(50, &len);
        struct body_dictionary *d = train(1234567);
        roundtrip(text, len, NULL, NULL, &plain_z);
        roundtrip(text, len, d, d, &dict_z);
        assert_true(plain_z < len / 4);
        /* a frame made without a dictionary decodes at an end that has one */
        roundtrip(text, len, NULL, d, NULL);
        /* one small record: the dictionary is what makes it small */
        char one[1024];
        int n = record_text(one, sizeof(one), 4242);
        roundtrip(one, (size_t) n, NULL, NULL, &plain_z);
        roundtrip(one, (size_t) n, d, d, &dict_z);
        assert_true(dict_z < plain_z);
        /* empty content is a valid frame */
        roundtrip("", 0, NULL, NULL, NULL);
        body_dictionary_free(d);
}

static void test_dictionary_mismatch(void **state) {
        size_t len, zlen, olen;
        _cleanup_free_ char *text = records_json(5, &len);
        struct body_dictionary *a = train(1111), *b = train(2222);
        _cleanup_free_ char *z = NULL;
        assert_int_equal(body_compress(text, len, a, BODY_CODEC_LEVEL, &z, &zlen), 0);
        char *out = NULL, *msg = NULL;
        assert_int_equal(body_decompress(z, zlen, len, NULL, &out, &olen, &msg), -ENOKEY);
        assert_null(out);
        assert_non_null(strstr(msg, "dictionary 1111, this end has no dictionary"));
        free(msg);
        msg = NULL;
        assert_int_equal(body_decompress(z, zlen, len, b, &out, &olen, &msg), -ENOKEY);
        assert_non_null(strstr(msg, "dictionary 1111, this end has dictionary 2222"));
        free(msg);
        /* not a dictionary: raw content has no id to name it by */
        struct body_dictionary *none = NULL;
        assert_int_equal(body_dictionary_new("just some text", 14, &none, &msg), -EINVAL);
        assert_null(none);
        assert_non_null(strstr(msg, "no dictionary id"));
        free(msg);
        body_dictionary_free(a);
        body_dictionary_free(b);
}

/* zeros compressed by the streaming API: no content size in the header when unknown */
static char *zeros_frame(size_t n, bool content_size, int window_log, size_t *ret_len) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        assert_non_null(c);
        char *zero = calloc(1, n ? n : 1);
        size_t cap = ZSTD_compressBound(n) + 64;
        char *out = malloc(cap);
        assert_non_null(zero);
        assert_non_null(out);
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log)));
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size)));
        ZSTD_inBuffer ib = {zero, n, 0};
        ZSTD_outBuffer ob = {out, cap, 0};
        size_t r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
        assert_int_equal(r, 0);
        ZSTD_freeCCtx(c);
        free(zero);
        *ret_len = ob.pos;
        return out;
}

static void test_bomb(void **state) {
        const size_t max = 1024 * 1024;
        size_t zlen, olen;
        char *out = NULL, *msg = NULL;
        /* 64 MiB of zeros that says so: refused from its header, nothing decoded */
        _cleanup_free_ char *said = zeros_frame(64 * 1024 * 1024, true, 20, &zlen);
        assert_true(zlen < 64 * 1024);
        assert_int_equal(body_decompress(said, zlen, max, NULL, &out, &olen, &msg), -EFBIG);
        assert_non_null(strstr(msg, "holds 67108864 bytes, over the limit of 1048576"));
        free(msg);
        /* the same without a content size: cut one byte past the limit, into a buffer of
         * exactly max + 1 bytes fed in small pieces (an overrun is an ASan report) */
        _cleanup_free_ char *unsaid = zeros_frame(64 * 1024 * 1024, false, 20, &zlen);
        struct body_decoder *d = NULL;
        assert_int_equal(body_decoder_new(max, NULL, &d), 0);
        char *buf = malloc(max + 1);
        size_t pos = 0, in = 0, used, made;
        int r = 0;
        while (r == 0 && in < zlen) {
                size_t piece = zlen - in < 100 ? zlen - in : 100;
                r = body_decoder_feed(d, unsaid + in, piece, &used, buf + pos, max + 1 - pos, &made, &msg);
                in += used;
                pos += made;
                assert_true(pos <= max + 1);
        }
        assert_int_equal(r, -EFBIG);
        assert_non_null(strstr(msg, "over the limit of 1048576"));
        assert_int_equal(body_decoder_total_out(d), max + 1);
        free(msg);
        msg = NULL;
        /* sticky: nothing more comes out */
        assert_int_equal(body_decoder_feed(d, unsaid, zlen, &used, buf, max + 1, &made, NULL), -EFBIG);
        assert_int_equal(made, 0);
        body_decoder_free(d);
        free(buf);
        /* exactly the limit passes; one byte more does not */
        _cleanup_free_ char *exact = zeros_frame(max, false, 20, &zlen);
        assert_int_equal(body_decompress(exact, zlen, max, NULL, &out, &olen, NULL), 0);
        assert_int_equal(olen, max);
        free(out);
        out = NULL;
        _cleanup_free_ char *over = zeros_frame(max + 1, false, 20, &zlen);
        assert_int_equal(body_decompress(over, zlen, max, NULL, &out, &olen, NULL), -EFBIG);
        assert_null(out);
        /* a window of 128 MiB is refused before any memory is taken for it */
        /* (by hand: zstd shrinks the window to what it compresses): magic, descriptor
         * without content size, window 2^(10+17), one raw last block of one byte */
        static const char wide[] = {0x28, (char) 0xb5, 0x2f, (char) 0xfd, 0x00, (char) (17 << 3), 0x09, 0x00, 0x00, 'x'};
        assert_int_equal(body_decompress(wide, sizeof(wide), max, NULL, &out, &olen, &msg), -EBADMSG);
        assert_non_null(strstr(msg, "window"));
        free(msg);
}

static void test_malformed(void **state) {
        size_t len, zlen, olen;
        char *out = NULL, *msg = NULL;
        _cleanup_free_ char *text = records_json(3, &len);
        _cleanup_free_ char *z = NULL;
        assert_int_equal(body_compress(text, len, NULL, BODY_CODEC_LEVEL, &z, &zlen), 0);
        /* cut anywhere: never accepted */
        for (size_t cut = 0; cut < zlen; cut += cut < 24 ? 1 : 37) {
                assert_int_equal(body_decompress(z, cut, len, NULL, &out, &olen, &msg), -EBADMSG);
                assert_non_null(msg);
                free(msg);
                msg = NULL;
        }
        /* JSON that was never compressed */
        assert_int_equal(body_decompress(text, len, len, NULL, &out, &olen, &msg), -EBADMSG);
        free(msg);
        msg = NULL;
        /* two frames: our bodies are one */
        char *two = malloc(zlen * 2);
        memcpy(two, z, zlen);
        memcpy(two + zlen, z, zlen);
        assert_int_equal(body_decompress(two, zlen * 2, 2 * len, NULL, &out, &olen, &msg), -EBADMSG);
        assert_non_null(strstr(msg, "after the zstd frame"));
        free(msg);
        free(two);
        /* a flipped byte in the middle: an error or other bytes, never past the bound */
        z[zlen / 2] ^= 0x55;
        if (body_decompress(z, zlen, len, NULL, &out, &olen, NULL) == 0) {
                assert_true(olen <= len);
                free(out);
        }
}

/* Fed a byte at a time into a few bytes of room: the same text comes out. */
static void test_streaming(void **state) {
        size_t len, zlen;
        _cleanup_free_ char *text = records_json(20, &len);
        struct body_dictionary *dict = train(777);
        _cleanup_free_ char *z = NULL;
        assert_int_equal(body_compress(text, len, dict, BODY_CODEC_LEVEL, &z, &zlen), 0);
        struct body_decoder *d = NULL;
        assert_int_equal(body_decoder_new(len, dict, &d), 0);
        _cleanup_free_ char *buf = malloc(len + 1);
        size_t in = 0, pos = 0, used, made;
        while (in < zlen || body_decoder_has_output(d)) {
                size_t room = len + 1 - pos < 7 ? len + 1 - pos : 7;
                assert_int_equal(body_decoder_feed(d, z + in, in < zlen ? 1 : 0, &used, buf + pos, room, &made, NULL),
                                 0);
                in += used;
                pos += made;
        }
        assert_int_equal(body_decoder_finish(d, NULL), 0);
        assert_int_equal(pos, len);
        assert_memory_equal(buf, text, len);
        body_decoder_free(d);
        body_dictionary_free(dict);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accept_encoding),
                cmocka_unit_test(test_content_encoding),
                cmocka_unit_test(test_dictionary_id),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_dictionary_mismatch),
                cmocka_unit_test(test_bomb),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_streaming),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
