/*
 * The zstd content coding of the link's bodies (docs/protocol.md, "Compression"), for
 * both ends: the negotiation headers read, an optional dictionary both ends load from
 * the same file (known to each other by its dictionary id), one-shot compression, and a
 * decoder that writes at most a given number of bytes, so a body that expands past a
 * limit is cut with a message, never allocated whole. Pure but for body_dictionary_load.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The header each end sends with its dictionary's id (decimal), when it has one. */
#define BODY_CODEC_DICTIONARY_HEADER "Orbit-Zstd-Dictionary"
/* The bytes a body in zstd adds to its message's head: below that saving, plain is smaller. */
#define BODY_CODEC_HEADER_COST (sizeof("Content-Encoding: zstd\r\n") - 1)

/* Small and fast enough for the agent's loop: a 1 MiB sync of records in some 5 ms. */
#define BODY_CODEC_LEVEL 3

/* Frames needing a window over 8 MiB are refused: the decoder's memory stays bounded
 * (our bodies are at most 8 MiB, and level 3 uses a 2 MiB window at most). */
#define BODY_CODEC_WINDOW_LOG_MAX 23

/* A dictionary file larger than this is refused (zstd --train makes 110 KiB). */
#define BODY_DICTIONARY_MAX (1024 * 1024)

/* ---- negotiation ----------------------------------------------------------------------- */

/* Whether an Accept-Encoding value (NULL: no header) accepts zstd: a "zstd" coding (any
 * case) without "q=0", or "*" with a q above 0 and no "zstd;q=0". */
bool body_codec_accepts_zstd(const char *accept_encoding);

enum body_coding {
        BODY_CODING_IDENTITY, /* no header, "", or "identity" */
        BODY_CODING_ZSTD,
};

/* A Content-Encoding value (NULL: no header) as a coding; -EOPNOTSUPP for any other
 * coding or a list of several. */
int body_coding_parse(const char *content_encoding, enum body_coding *ret);

/* A dictionary header's value: a decimal id 1..4294967295; -EINVAL otherwise. */
int body_dictionary_id_parse(const char *value, uint32_t *ret);

/* ---- dictionaries ------------------------------------------------------------------------ */

struct body_dictionary;

/* A dictionary made by `zstd --train` (it must carry a dictionary id: a raw content file
 * has none, and could not be named to the peer). */
int body_dictionary_new(const void *data, size_t size, struct body_dictionary **ret, char **ret_message);

/* The same from a file of at most BODY_DICTIONARY_MAX bytes; the message names the file. */
int body_dictionary_load(const char *path, struct body_dictionary **ret, char **ret_message);

uint32_t body_dictionary_id(const struct body_dictionary *d);
void body_dictionary_free(struct body_dictionary *d);

/* ---- coding ------------------------------------------------------------------------------ */

/* One zstd frame holding src, with dict (NULL: none; else its id is in the frame header)
 * and the content size in the header. *ret (caller frees) is a heap buffer. */
int body_compress(const void *src, size_t len, const struct body_dictionary *dict, int level, char **ret,
                  size_t *ret_len);

/*
 * A streaming decoder that writes at most max_output bytes in all: a body whose frames
 * say (content size) or turn out to hold more fails with -EFBIG, before or as soon as the
 * limit is passed; the caller's buffers must leave room for max_output + 1 bytes in all
 * (one more is written to tell "exactly the limit" from "over it"). A frame made with
 * another dictionary than dict (or with one when dict is NULL) fails with -ENOKEY; a
 * window over 2^BODY_CODEC_WINDOW_LOG_MAX or damaged data with -EBADMSG. Every failure
 * sets *ret_message (caller frees; may be NULL) to one line saying why.
 */
struct body_decoder;
int body_decoder_new(size_t max_output, const struct body_dictionary *dict, struct body_decoder **ret);

/* Decode from in (in_len bytes) into out (out_size bytes): *in_used and *out_written say
 * how much was taken and made. Stops when the input is used up or out is full: call again
 * with the rest. */
int body_decoder_feed(struct body_decoder *d, const void *in, size_t in_len, size_t *in_used, void *out,
                      size_t out_size, size_t *out_written, char **ret_message);

/* Whether out filled up last time with more to come (call again with room, no input). */
bool body_decoder_has_output(const struct body_decoder *d);

/* The body is complete: -EBADMSG if it ended inside a frame or held no frame. */
int body_decoder_finish(struct body_decoder *d, char **ret_message);

uint64_t body_decoder_total_out(const struct body_decoder *d);
void body_decoder_free(struct body_decoder *d);

/* The dictionary id a zstd body's frame header names (0: none, or not a frame). */
uint32_t body_frame_dictionary_id(const void *body, size_t len);

/* The whole of in decoded into *ret (NUL-terminated heap buffer, caller frees), at most
 * max_output bytes; the errors of the decoder. */
int body_decompress(const void *in, size_t len, size_t max_output, const struct body_dictionary *dict, char **ret,
                    size_t *ret_len, char **ret_message);
