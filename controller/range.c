/* HTTP single-range requests: parsing and validator checks, no I/O. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/macro.h"
#include "controller/range.h"

/* Digits only, at least one, no overflow; *end after them. */
static int parse_u64(const char *s, uint64_t *ret, const char **end) {
        uint64_t v = 0;
        const char *p = s;
        if (*p < '0' || *p > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                unsigned d = (unsigned) (*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        *ret = v;
        *end = p;
        return 0;
}

int http_range_parse(const char *header, uint64_t size, struct http_range *ret) {
        if (!header || strlen(header) > HTTP_RANGE_HEADER_MAX)
                return -EINVAL;
        if (strncasecmp(header, "bytes=", 6) != 0)
                return -EINVAL;
        const char *p = header + 6, *end;
        uint64_t first, last;

        if (*p == '-') {
                /* suffix: the last n bytes */
                if (parse_u64(p + 1, &last, &end) < 0 || *end != '\0')
                        return -EINVAL;
                if (last == 0 || size == 0)
                        return -ERANGE;
                if (last > size)
                        last = size;
                ret->start = size - last;
                ret->length = last;
                return 1;
        }
        if (parse_u64(p, &first, &end) < 0 || *end != '-')
                return -EINVAL;
        p = end + 1;
        if (*p == '\0') {
                last = UINT64_MAX;
        } else {
                if (parse_u64(p, &last, &end) < 0 || *end != '\0')
                        return -EINVAL;
                if (last < first)
                        return -EINVAL;
        }
        if (first >= size)
                return -ERANGE;
        if (last >= size)
                last = size - 1;
        ret->start = first;
        ret->length = last - first + 1;
        return 1;
}

bool http_if_range_matches(const char *if_range, const char *etag) {
        if (!if_range || !etag || if_range[0] != '"')
                return false;
        return streq(if_range, etag);
}

void http_content_range_format(const struct http_range *r, uint64_t size, char *buf, size_t n) {
        snprintf(buf, n, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, r->start,
                 r->start + r->length - 1, size);
}
