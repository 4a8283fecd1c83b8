/* A bounded buffer that splits a byte stream into lines (JSON-lines framing). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct linebuf {
        char *data;
        size_t len, cap;
        size_t max_line; /* longest line accepted, without its newline */
};

void linebuf_init(struct linebuf *b, size_t max_line);
void linebuf_free(struct linebuf *b);

/*
 * Append bytes. -EMSGSIZE when the buffered text holds no newline and is already longer
 * than max_line: the peer is sending a line we will never accept.
 */
int linebuf_feed(struct linebuf *b, const void *data, size_t n);

/*
 * Take the next complete line (without "\n" or a trailing "\r"), NUL-terminated, into
 * a heap string the caller frees. Returns 1 with a line, 0 when none is complete,
 * -EMSGSIZE for a complete line longer than max_line (it is dropped).
 */
int linebuf_take_line(struct linebuf *b, char **ret_line, size_t *ret_len);
