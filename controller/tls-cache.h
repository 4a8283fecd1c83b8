/*
 * A server-side cache of TLS 1.2 sessions (docs/protocol.md, "One connection a pass"):
 * GnuTLS stores a session under its id (at most 32 bytes) and a node that comes back with
 * the id resumes it, 32 bytes in its ClientHello where a ticket of GnuTLS 3.7 costs ~700
 * (the node's certificate is packed in it). Pure (the time is passed in) and not locked:
 * the caller locks. Bounded: at most max sessions of at most TLS_CACHE_DATA_MAX bytes; a
 * full cache drops its oldest session; one older than the lifetime is never returned.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TLS_CACHE_KEY_MAX 32     /* GNUTLS_MAX_SESSION_ID_SIZE */
#define TLS_CACHE_DATA_MAX 16384 /* a packed session with a chain of certificates */
#define TLS_CACHE_ENTRIES 1024   /* one a node, for a fleet of that many */
#define TLS_CACHE_LIFETIME_SEC (6 * 3600)

struct tls_cache_entry {
        uint8_t key[TLS_CACHE_KEY_MAX];
        size_t key_len;
        uint8_t *data; /* owned; NULL: a free slot */
        size_t data_len;
        int64_t stored;
};

struct tls_cache {
        struct tls_cache_entry *entries; /* owned, max of them */
        size_t max;
        int64_t lifetime_sec;
};

/* 0 or -ENOMEM. */
int tls_cache_init(struct tls_cache *c, size_t max, int64_t lifetime_sec);
void tls_cache_done(struct tls_cache *c);

/* Store (or replace) the session under key. -EINVAL: a key or data out of bounds; -ENOMEM. */
int tls_cache_store(struct tls_cache *c, const void *key, size_t key_len, const void *data,
                    size_t data_len, int64_t now);

/* The session under key, borrowed until the next change; NULL when absent or expired. */
const struct tls_cache_entry *tls_cache_fetch(const struct tls_cache *c, const void *key,
                                              size_t key_len, int64_t now);

/* 0, or -ENOENT when there is none under key. */
int tls_cache_remove(struct tls_cache *c, const void *key, size_t key_len);
