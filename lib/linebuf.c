/* A bounded buffer that splits a byte stream into lines (JSON-lines framing). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/linebuf.h"

void linebuf_init(struct linebuf *b, size_t max_line) {
        memset(b, 0, sizeof(*b));
        b->max_line = max_line;
}

void linebuf_free(struct linebuf *b) {
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

int linebuf_feed(struct linebuf *b, const void *data, size_t n) {
        if (n == 0)
                return 0;
        /* Room for a full line, its newline and a little of the next one, no more. */
        size_t limit = b->max_line * 2 + 2;
        bool untaken = b->len > 0 && memchr(b->data, '\n', b->len);
        if (b->len + n > limit) {
                if (!untaken && !memchr(data, '\n', n))
                        return -EMSGSIZE;
                /*
                 * Cap only what piles up when complete lines were left untaken. A caller
                 * that takes every line after each feed keeps at most the start of one
                 * line here, and one read of many short pipelined requests is fine however
                 * long it is (found by fuzzing: with a small max_line, one 4 KiB read of
                 * short requests was refused as "too large").
                 */
                if (untaken && b->len + n > limit * 2)
                        return -EMSGSIZE;
        }
        if (b->len + n > b->cap) {
                size_t ncap = b->cap ? b->cap : 256;
                while (ncap < b->len + n)
                        ncap *= 2;
                char *nd = realloc(b->data, ncap);
                if (!nd)
                        return -ENOMEM;
                b->data = nd;
                b->cap = ncap;
        }
        memcpy(b->data + b->len, data, n);
        b->len += n;
        if (!memchr(b->data, '\n', b->len) && b->len > b->max_line)
                return -EMSGSIZE;
        return 0;
}

int linebuf_take_line(struct linebuf *b, char **ret_line, size_t *ret_len) {
        if (b->len == 0)
                return 0;
        char *nl = memchr(b->data, '\n', b->len);
        if (!nl)
                return 0;
        size_t line_len = (size_t) (nl - b->data);
        size_t consumed = line_len + 1;
        int r = 1;
        char *line = NULL;
        if (line_len > 0 && b->data[line_len - 1] == '\r')
                line_len--;
        if (line_len > b->max_line)
                r = -EMSGSIZE;
        else {
                line = malloc(line_len + 1);
                if (!line)
                        return -ENOMEM;
                memcpy(line, b->data, line_len);
                line[line_len] = '\0';
        }
        memmove(b->data, b->data + consumed, b->len - consumed);
        b->len -= consumed;
        if (r < 0)
                return r;
        *ret_line = line;
        if (ret_len)
                *ret_len = line_len;
        return 1;
}
