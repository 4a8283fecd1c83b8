/*
 * Fuzz the control socket's line framing: the input is cut into chunks whose sizes
 * come from the input itself, as recv() would (up to agent/control.c's 4 KiB), and fed
 * and drained the way agent/control.c does. No line handed out may be longer than
 * max_line, the buffer stays bounded, and a stream is refused as too long only if one
 * of its lines really is.
 */
#include "config.h"

#include "fuzz-util.h"
#include "lib/linebuf.h"

#define READ_CHUNK 4096 /* CONTROL_READ_CHUNK in agent/control.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT || size < 3)
                return 0;
        /* First byte: max_line 1..256, small so that long lines are easy to reach. */
        size_t max_line = (size_t)data[0] + 1;
        /* Second and third bytes: seed of the chunk sizes. */
        unsigned seed = (unsigned)data[1] << 8 | data[2];
        data += 3;
        size -= 3;

        struct linebuf b;
        linebuf_init(&b, max_line);
        size_t pos = 0;
        size_t line_so_far = 0; /* bytes since the last newline, the oracle's view */
        bool seen_long = false; /* a line (without its newline) longer than max_line */
        while (pos < size) {
                seed = seed * 1103515245u + 12345u;
                /* Mostly small reads, sometimes a full one. */
                size_t chunk = (seed >> 16) % 4 == 0 ? READ_CHUNK : 1 + (seed >> 18) % 64;
                if (chunk > size - pos)
                        chunk = size - pos;
                for (size_t i = pos; i < pos + chunk; i++) {
                        if (data[i] == '\n') {
                                line_so_far = 0;
                                continue;
                        }
                        if (++line_so_far > max_line)
                                seen_long = true;
                }
                size_t before = b.len;
                int r = linebuf_feed(&b, data + pos, chunk);
                pos += chunk;
                FUZZ_CHECK(r == 0 || r == -EMSGSIZE);
                /* What was buffered, what was read, nothing more. */
                FUZZ_CHECK(b.len <= before + chunk);
                if (r == -EMSGSIZE)
                        FUZZ_CHECK(seen_long);
                for (;;) {
                        char *line = NULL;
                        size_t len = 0;
                        int t = linebuf_take_line(&b, &line, &len);
                        if (t == 0)
                                break;
                        if (t == -EMSGSIZE) {
                                FUZZ_CHECK(seen_long);
                                r = t;
                                break;
                        }
                        FUZZ_CHECK(t == 1);
                        FUZZ_CHECK(line);
                        FUZZ_CHECK(len <= max_line);
                        FUZZ_CHECK(line[len] == '\0');
                        FUZZ_CHECK(memchr(line, '\n', len) == NULL);
                        free(line);
                }
                /* Drained: only the start of one line is left, at most max_line long or,
                 * if longer, all from this read (the next feed refuses it). */
                FUZZ_CHECK(r == -EMSGSIZE || b.len <= max_line || b.len <= chunk);
                if (r == -EMSGSIZE)
                        break; /* the agent answers "too-large" and closes the connection */
        }
        linebuf_free(&b);
        return 0;
}
