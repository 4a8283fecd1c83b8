/*
 * Fuzz json_locate() and json_offset_to_line_column(): the scanner that points error
 * messages at a line:column runs on raw, possibly broken, text of configs, specs and
 * policies, and must never read past it. The first bytes make a key path; the rest is
 * the text.
 */
#include "config.h"

#include "fuzz-util.h"
#include "lib/json-util.h"

/* Keys that occur in the seed corpus, so that paths can match. */
static const char *const keys[] = {
        "",       "a",       "b",      "name",   "exec",    "env",      "sandbox",
        "mounts", "control", "paths",  "health", "zones",   "syscalls", "names",
        "args",   "id",      "method", "params", "restart", "x\"y",     "\xc3\xa9",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT || size < 1)
                return 0;
        size_t depth = data[0] % (JSON_MAX_DEPTH + 1);
        if (size < 1 + depth)
                return 0;
        struct json_path_segment path[JSON_MAX_DEPTH];
        for (size_t i = 0; i < depth; i++) {
                uint8_t b = data[1 + i];
                if (b & 0x80)
                        path[i] = (struct json_path_segment){.key = NULL, .index = b & 0x0f};
                else
                        path[i] = (struct json_path_segment){
                                .key = keys[b % (sizeof(keys) / sizeof(keys[0]))]};
        }
        size_t len = size - 1 - depth;
        /* An exact-size copy with no NUL after it: any over-read is an ASan report. */
        char *text = malloc(len ? len : 1);
        FUZZ_CHECK(text);
        if (len)
                memcpy(text, data + 1 + depth, len);

        size_t key_at = (size_t)-1, value_at = (size_t)-1;
        if (json_locate(text, len, path, depth, &key_at, &value_at) == 0) {
                FUZZ_CHECK(key_at <= len);
                FUZZ_CHECK(value_at <= len);
                if (depth > 0)
                        FUZZ_CHECK(key_at <= value_at);
                unsigned line = 0, column = 0;
                json_offset_to_line_column(text, len, value_at, &line, &column);
                FUZZ_CHECK(line >= 1 && column >= 1);
                FUZZ_CHECK(line <= len + 1 && column <= len + 1);
        }
        /* Offsets past the end are clamped. */
        unsigned line = 0, column = 0;
        json_offset_to_line_column(text, len, len + 10, &line, &column);
        FUZZ_CHECK(line >= 1 && line <= len + 1 && column >= 1);

        char buf[64];
        json_path_format(path, depth, buf, sizeof(buf));
        FUZZ_CHECK(memchr(buf, '\0', sizeof(buf)));
        free(text);
        return 0;
}
