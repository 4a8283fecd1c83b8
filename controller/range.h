/* HTTP single-range requests (RFC 9110 section 14), pure: the Range and If-Range decisions. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_RANGE_HEADER_MAX 256

struct http_range {
        uint64_t start;  /* first byte */
        uint64_t length; /* >= 1 */
};

/*
 * Parse a Range header for a representation of size bytes. Accepted forms, one range
 * only: "bytes=a-b", "bytes=a-", "bytes=-n" (the unit is case-insensitive, no spaces).
 * Returns 1 with *ret (clamped to the file) for a satisfiable range; -ERANGE when the
 * range cannot be satisfied (the answer is 416 with "Content-Range: bytes *\/size");
 * -EINVAL for a header that is malformed, has several ranges or another unit (the
 * server then ignores it and sends the whole file, as RFC 9110 allows).
 */
int http_range_parse(const char *header, uint64_t size, struct http_range *ret);

/*
 * If-Range: the range applies only when the validator is exactly our strong ETag.
 * Dates and weak tags never match (we serve no Last-Modified), so the whole file is sent.
 */
bool http_if_range_matches(const char *if_range, const char *etag);

/* "bytes a-b/size" into buf. */
void http_content_range_format(const struct http_range *r, uint64_t size, char *buf, size_t n);
