/* The zstd content coding of the link's bodies: negotiation, dictionaries, bounded decoding. */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "proto/body-codec.h"

/* The longest zstd frame header (ZSTD_FRAMEHEADERSIZE_MAX, not in the stable API). */
#define FRAME_HEADER_MAX 18

/* ---- negotiation ----------------------------------------------------------------------- */

static const char *skip_space(const char *p, const char *end) {
        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        return p;
}

/* One element of a list header, "coding *( OWS ; OWS param )": its coding and whether a
 * q parameter of zero refuses it. */
static void parse_element(const char *p, const char *end, const char **ret_coding, size_t *ret_len,
                          bool *ret_refused) {
        p = skip_space(p, end);
        const char *c = p;
        while (p < end && *p != ';' && *p != ' ' && *p != '\t')
                p++;
        *ret_coding = c;
        *ret_len = (size_t) (p - c);
        *ret_refused = false;
        while (p < end) {
                p = skip_space(p, end);
                if (p < end && *p == ';')
                        p = skip_space(p + 1, end);
                if (p + 2 <= end && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                        /* "q=0", "q=0.", "q=0.000": zero; anything else, some weight */
                        const char *v = p + 2;
                        bool zero = v < end && *v == '0';
                        for (v++; zero && v < end && *v != ';' && *v != ' ' && *v != '\t'; v++)
                                if (*v != '.' && *v != '0')
                                        zero = false;
                        *ret_refused = zero;
                }
                while (p < end && *p != ';')
                        p++;
        }
}

bool body_codec_accepts_zstd(const char *value) {
        if (!value)
                return false;
        bool zstd = false, zstd_refused = false, star = false;
        const char *p = value;
        for (;;) {
                const char *end = strchr(p, ',');
                if (!end)
                        end = p + strlen(p);
                const char *coding;
                size_t len;
                bool refused;
                parse_element(p, end, &coding, &len, &refused);
                if (len == 4 && strncasecmp(coding, "zstd", 4) == 0) {
                        if (refused)
                                zstd_refused = true;
                        else
                                zstd = true;
                } else if (len == 1 && coding[0] == '*' && !refused)
                        star = true;
                if (!*end)
                        break;
                p = end + 1;
        }
        return !zstd_refused && (zstd || star);
}

int body_coding_parse(const char *value, enum body_coding *ret) {
        if (!value) {
                *ret = BODY_CODING_IDENTITY;
                return 0;
        }
        const char *end = value + strlen(value);
        const char *p = skip_space(value, end);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        size_t len = (size_t) (end - p);
        if (len == 0 || (len == 8 && strncasecmp(p, "identity", 8) == 0))
                *ret = BODY_CODING_IDENTITY;
        else if (len == 4 && strncasecmp(p, "zstd", 4) == 0)
                *ret = BODY_CODING_ZSTD;
        else
                return -EOPNOTSUPP;
        return 0;
}

int body_dictionary_id_parse(const char *value, uint32_t *ret) {
        if (!value)
                return -EINVAL;
        while (*value == ' ' || *value == '\t')
                value++;
        uint64_t id = 0;
        size_t digits = 0;
        for (; isdigit((unsigned char) *value); value++) {
                if (++digits > 10)
                        return -EINVAL;
                id = id * 10 + (uint64_t) (*value - '0');
        }
        while (*value == ' ' || *value == '\t')
                value++;
        if (digits == 0 || *value || id == 0 || id > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) id;
        return 0;
}

/* ---- dictionaries ------------------------------------------------------------------------ */

struct body_dictionary {
        ZSTD_CDict *cdict;
        ZSTD_DDict *ddict;
        uint32_t id;
};

int body_dictionary_new(const void *data, size_t size, struct body_dictionary **ret, char **ret_message) {
        if (size > BODY_DICTIONARY_MAX)
                return message_set(ret_message, -EFBIG, "%zu bytes, over the limit of %d", size,
                                   BODY_DICTIONARY_MAX);
        uint32_t id = (uint32_t) ZSTD_getDictID_fromDict(data, size);
        if (id == 0)
                return message_set(ret_message, -EINVAL,
                                   "not a zstd dictionary (no dictionary id; make one with zstd --train)");
        struct body_dictionary *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->id = id;
        d->cdict = ZSTD_createCDict(data, size, BODY_CODEC_LEVEL);
        d->ddict = ZSTD_createDDict(data, size);
        if (!d->cdict || !d->ddict) {
                body_dictionary_free(d);
                return message_set(ret_message, -EINVAL, "zstd cannot load it as a dictionary");
        }
        *ret = d;
        return 0;
}

int body_dictionary_load(const char *path, struct body_dictionary **ret, char **ret_message) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = read_file_bounded(path, BODY_DICTIONARY_MAX, &data, &len);
        if (r < 0)
                return message_set(ret_message, r, "zstd dictionary %s: %s", path,
                                   r == -EFBIG ? "over 1 MiB" : strerror(-r));
        _cleanup_free_ char *why = NULL;
        r = body_dictionary_new(data, len, ret, &why);
        if (r < 0)
                return message_set(ret_message, r, "zstd dictionary %s: %s", path, why ? why : strerror(-r));
        return 0;
}

uint32_t body_dictionary_id(const struct body_dictionary *d) {
        return d ? d->id : 0;
}

void body_dictionary_free(struct body_dictionary *d) {
        if (!d)
                return;
        ZSTD_freeCDict(d->cdict);
        ZSTD_freeDDict(d->ddict);
        free(d);
}

/* ---- coding ------------------------------------------------------------------------------ */

int body_compress(const void *src, size_t len, const struct body_dictionary *dict, int level, char **ret,
                  size_t *ret_len) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        if (!c)
                return -ENOMEM;
        size_t bound = ZSTD_compressBound(len);
        char *out = malloc(bound + 1);
        if (!out) {
                ZSTD_freeCCtx(c);
                return -ENOMEM;
        }
        size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(r))
                /* with a dictionary, its level (BODY_CODEC_LEVEL) is the one used */
                r = dict ? ZSTD_CCtx_refCDict(c, dict->cdict) : 0;
        if (!ZSTD_isError(r))
                r = ZSTD_compress2(c, out, bound, src, len);
        ZSTD_freeCCtx(c);
        if (ZSTD_isError(r)) {
                free(out);
                return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -EINVAL;
        }
        *ret = out;
        *ret_len = r;
        return 0;
}

struct body_decoder {
        ZSTD_DCtx *dctx;
        size_t max_output;
        uint64_t total_in, total_out;
        const struct body_dictionary *dict;
        /* The frame header, kept back until it is whole: its content size and dictionary
         * are checked before zstd sees a byte (a dictionary can only be chosen then). */
        unsigned char head[FRAME_HEADER_MAX];
        size_t head_len, head_fed;
        bool head_checked;
        size_t hint;   /* ZSTD_decompressStream's last answer: 0 at the end of the frame */
        bool out_full; /* the last call filled its output */
        int failed;    /* sticky */
};

int body_decoder_new(size_t max_output, const struct body_dictionary *dict, struct body_decoder **ret) {
        struct body_decoder *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->max_output = max_output;
        d->dict = dict;
        d->hint = 1;
        d->dctx = ZSTD_createDCtx();
        if (!d->dctx ||
            ZSTD_isError(ZSTD_DCtx_setParameter(d->dctx, ZSTD_d_windowLogMax, BODY_CODEC_WINDOW_LOG_MAX))) {
                body_decoder_free(d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

static int fail(struct body_decoder *d, int r, char **ret_message, const char *fmt, ...) _printf_(4, 5);
static int fail(struct body_decoder *d, int r, char **ret_message, const char *fmt, ...) {
        d->failed = r;
        if (ret_message) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(ret_message, fmt, ap) < 0)
                        *ret_message = NULL;
                va_end(ap);
        }
        return r;
}

/* How long the frame header that starts with h is (RFC 8878, 3.1.1.1): 5 until its
 * descriptor byte is there; 0 if h is not a zstd frame (zstd will say what it is). */
static size_t frame_header_size(const unsigned char *h, size_t len) {
        static const size_t dict_id_size[4] = {0, 1, 2, 4}, content_size_size[4] = {0, 2, 4, 8};
        if (len < 5)
                return 5;
        uint32_t magic = (uint32_t) h[0] | (uint32_t) h[1] << 8 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 24;
        if (magic != ZSTD_MAGICNUMBER)
                return 0;
        unsigned descriptor = h[4];
        bool single_segment = (descriptor >> 5) & 1;
        unsigned content_size_flag = descriptor >> 6;
        return 5 + !single_segment + dict_id_size[descriptor & 3] +
               (content_size_flag == 0 ? single_segment : content_size_size[content_size_flag]);
}

/* The whole frame header: what the frame says it holds and which dictionary it needs. */
static int check_head(struct body_decoder *d, char **ret_message) {
        d->head_checked = true;
        if (frame_header_size(d->head, d->head_len) == 0)
                return 0; /* not a zstd frame: ZSTD_decompressStream says so */
        unsigned long long size = ZSTD_getFrameContentSize(d->head, d->head_len);
        if (size != ZSTD_CONTENTSIZE_UNKNOWN && size != ZSTD_CONTENTSIZE_ERROR && size > d->max_output)
                return fail(d, -EFBIG, ret_message, "the zstd frame holds %llu bytes, over the limit of %zu",
                            size, d->max_output);
        uint32_t id = (uint32_t) ZSTD_getDictID_fromFrame(d->head, d->head_len);
        uint32_t ours = body_dictionary_id(d->dict);
        if (id == 0)
                return 0; /* a frame made without a dictionary is decoded without one */
        if (id != ours) {
                if (ours)
                        return fail(d, -ENOKEY, ret_message,
                                    "compressed with zstd dictionary %u, this end has dictionary %u", id, ours);
                return fail(d, -ENOKEY, ret_message,
                            "compressed with zstd dictionary %u, this end has no dictionary", id);
        }
        if (ZSTD_isError(ZSTD_DCtx_refDDict(d->dctx, d->dict->ddict)))
                return fail(d, -ENOMEM, ret_message, "zstd: cannot use the dictionary");
        return 0;
}

/* One call of zstd: from src into out, at most to one byte past the limit. */
static int decode(struct body_decoder *d, const void *src, size_t len, size_t *used, char *out, size_t out_size,
                  size_t *made, char **ret_message) {
        size_t room = d->max_output + 1 - (size_t) d->total_out;
        ZSTD_inBuffer ib = {.src = src, .size = len};
        ZSTD_outBuffer ob = {.dst = out, .size = out_size < room ? out_size : room};
        bool was_done = d->hint == 0;
        size_t r = ZSTD_decompressStream(d->dctx, &ob, &ib);
        *used = ib.pos;
        *made = ob.pos;
        d->total_out += ob.pos;
        d->out_full = ob.size > 0 && ob.pos == ob.size;
        if (ZSTD_isError(r)) {
                ZSTD_ErrorCode e = ZSTD_getErrorCode(r);
                if (e == ZSTD_error_dictionary_wrong)
                        return fail(d, -ENOKEY, ret_message, "zstd: %s", ZSTD_getErrorName(r));
                if (e == ZSTD_error_memory_allocation)
                        return fail(d, -ENOMEM, ret_message, "zstd: out of memory");
                if (e == ZSTD_error_frameParameter_windowTooLarge)
                        return fail(d, -EBADMSG, ret_message, "zstd: the frame needs a window over %d bytes",
                                    1 << BODY_CODEC_WINDOW_LOG_MAX);
                return fail(d, -EBADMSG, ret_message, "zstd: %s", ZSTD_getErrorName(r));
        }
        if (was_done && ib.pos > 0)
                /* our bodies are one frame: a second could need another dictionary */
                return fail(d, -EBADMSG, ret_message, "data after the zstd frame");
        d->hint = r;
        if (d->total_out > d->max_output)
                return fail(d, -EFBIG, ret_message, "decompressed, the body is over the limit of %zu bytes",
                            d->max_output);
        if (r == 0 && ib.pos < ib.size)
                return fail(d, -EBADMSG, ret_message, "data after the zstd frame");
        return 0;
}

int body_decoder_feed(struct body_decoder *d, const void *in, size_t in_len, size_t *in_used, void *out,
                      size_t out_size, size_t *out_written, char **ret_message) {
        const unsigned char *p = in;
        size_t taken = 0, written = 0;
        int r = 0;
        *in_used = *out_written = 0;
        if (d->failed)
                return d->failed;
        while (!d->head_checked) {
                size_t need = frame_header_size(d->head, d->head_len);
                if (need == 0 || d->head_len >= need) {
                        r = check_head(d, ret_message);
                        break;
                }
                if (taken == in_len)
                        break;
                size_t take = need - d->head_len < in_len - taken ? need - d->head_len : in_len - taken;
                memcpy(d->head + d->head_len, p + taken, take);
                d->head_len += take;
                taken += take;
        }
        d->total_in += taken;
        *in_used = taken;
        if (r < 0 || !d->head_checked)
                return r;
        size_t used = 0, made = 0;
        if (d->head_fed < d->head_len) {
                r = decode(d, d->head + d->head_fed, d->head_len - d->head_fed, &used, out, out_size, &made,
                           ret_message);
                d->head_fed += used;
                written = made;
                *out_written = written;
                if (r < 0 || d->head_fed < d->head_len)
                        return r;
        }
        r = decode(d, p + taken, in_len - taken, &used, (char *) out + written, out_size - written, &made,
                   ret_message);
        d->total_in += used;
        *in_used = taken + used;
        *out_written = written + made;
        return r;
}

bool body_decoder_has_output(const struct body_decoder *d) {
        return !d->failed && d->out_full;
}

int body_decoder_finish(struct body_decoder *d, char **ret_message) {
        if (d->failed)
                return message_set(ret_message, d->failed, "the zstd body was refused already");
        if (d->total_in == 0)
                return fail(d, -EBADMSG, ret_message, "an empty body said to be zstd");
        if (!d->head_checked || d->head_fed < d->head_len)
                return fail(d, -EBADMSG, ret_message, "the body ends inside a zstd frame header");
        if (d->hint != 0)
                return fail(d, -EBADMSG, ret_message, "the body ends inside a zstd frame (%" PRIu64 " bytes in)",
                            d->total_in);
        return 0;
}

uint64_t body_decoder_total_out(const struct body_decoder *d) {
        return d->total_out;
}

void body_decoder_free(struct body_decoder *d) {
        if (!d)
                return;
        ZSTD_freeDCtx(d->dctx);
        free(d);
}

uint32_t body_frame_dictionary_id(const void *body, size_t len) {
        return (uint32_t) ZSTD_getDictID_fromFrame(body, len);
}

int body_decompress(const void *in, size_t len, size_t max_output, const struct body_dictionary *dict, char **ret,
                    size_t *ret_len, char **ret_message) {
        struct body_decoder *d = NULL;
        int r = body_decoder_new(max_output, dict, &d);
        if (r < 0)
                return r;
        /* Grown as it fills, never past max_output + 2 (the byte that shows "over", a NUL). */
        size_t cap = len < max_output / 4 ? len * 4 + 64 : max_output + 1;
        if (cap > max_output + 1)
                cap = max_output + 1;
        char *out = malloc(cap + 1);
        size_t pos = 0, used_in = 0;
        if (!out) {
                body_decoder_free(d);
                return -ENOMEM;
        }
        for (;;) {
                size_t used = 0, made = 0;
                r = body_decoder_feed(d, (const char *) in + used_in, len - used_in, &used, out + pos, cap - pos,
                                      &made, ret_message);
                if (r < 0)
                        break;
                used_in += used;
                pos += made;
                if (used_in == len && !body_decoder_has_output(d)) {
                        r = body_decoder_finish(d, ret_message);
                        break;
                }
                if (pos == cap) {
                        /* cap is at most max_output + 1 and the decoder stops there */
                        size_t more = cap * 2 > max_output + 1 ? max_output + 1 : cap * 2;
                        char *p = realloc(out, more + 1);
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        out = p;
                        cap = more;
                } else if (used == 0 && made == 0) {
                        r = message_set(ret_message, -EBADMSG, "zstd: no progress");
                        break;
                }
        }
        body_decoder_free(d);
        if (r < 0) {
                free(out);
                return r;
        }
        out[pos] = '\0';
        *ret = out;
        *ret_len = pos;
        return 0;
}
