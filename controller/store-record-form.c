/* The form a record is stored in (store-record-form.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/macro.h"
#include "proto/body-codec.h"
#include "controller/store-record-form.h"

/* zstd's frame magic number, 0xFD2FB528, as it is written (little-endian) */
static const unsigned char zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};

int record_form_pack(const json_t *raw, char **ret, size_t *ret_len) {
        *ret = NULL;
        *ret_len = 0;
        if (!raw)
                return 0;
        _cleanup_free_ char *text = json_dumps(raw, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text), zlen = 0;
        char *z = NULL;
        int r = body_compress(text, len, NULL, BODY_CODEC_LEVEL, &z, &zlen);
        if (r < 0)
                return r;
        /* a tiny record may come out larger in a frame (its header, a raw block) */
        if (zlen >= len) {
                free(z);
                *ret = TAKE_PTR(text);
                *ret_len = len;
                return 0;
        }
        *ret = z;
        *ret_len = zlen;
        return 0;
}

int record_form_unpack(const void *data, size_t len, json_t **ret) {
        _cleanup_free_ char *text = NULL;
        if (len >= sizeof(zstd_magic) && memcmp(data, zstd_magic, sizeof(zstd_magic)) == 0) {
                _cleanup_free_ char *why = NULL;
                int r = body_decompress(data, len, RECORD_FORM_TEXT_MAX, NULL, &text, &len, &why);
                if (r < 0) {
                        log_error("store: a stored record does not decode: %s", why ? why : strerror(-r));
                        return r == -ENOMEM ? r : -EBADMSG;
                }
                data = text;
        }
        json_error_t e;
        json_t *v = json_loadb(data, len, JSON_DECODE_ANY, &e);
        if (!v) {
                log_error("store: a stored record is not JSON: %s (byte %d)", e.text, e.position);
                return -EBADMSG;
        }
        *ret = v;
        return 0;
}
