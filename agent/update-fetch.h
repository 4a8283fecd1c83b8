/*
 * Fetching a bundle from the controller by HTTP ranges, on the update worker's thread:
 * blocking, bounded (a byte budget per pass, nothing started that loss of signal would cut), retried, and stopped mid-transfer by a
 * cancel. A bundle_reader over it serves bundle_locate_payloads and the install's chunk
 * reads, exactly as a local file's does.
 */
#pragma once

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/link-pass.h"
#include "update/bundle.h"

/* The link's TLS settings, copied by value: a reload (SIGHUP) frees the configuration's
 * strings while a transfer runs. "" = not set. */
struct fetch_tls {
        char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
        long connect_timeout_sec;
        int64_t max_recv_bytes_per_sec; /* 0: unlimited */
};

struct fetcher;

/* pass: what this contact may still fetch and until when (NULL: no limits); cancel is read
 * during transfers. */
int fetcher_new(const char *url, const struct fetch_tls *tls, struct link_pass *pass, const atomic_int *cancel,
                struct fetcher **ret);
void fetcher_free(struct fetcher *f);

/*
 * Bytes [offset, offset + len) of the remote bundle into out (all of them, or with
 * ret_got what the server sent of them). -ENOLINK when the controller cannot be reached
 * after retries, -EDQUOT over this pass's budget, -ETIME when the range would not finish
 * before loss of signal (link_pass_may_download), -ESTALE when the file changed since
 * the first fetch (If-Range), -ECANCELED, -ENOENT when the controller has no such bundle
 * (404) or no longer has it (410), -EACCES (403), -EBADMSG for an answer that is not the
 * range asked for.
 */
int fetcher_range(struct fetcher *f, uint64_t offset, size_t len, void *out, size_t *ret_got);

/*
 * The bundle's head: its manifest and signature members, learned from the first bytes
 * (bundle_head_length), in one or two fetches; also learns the bundle's size and ETag.
 * The caller frees *ret_head. Nothing is trusted: bundle_open_reader verifies it.
 */
int fetcher_head(struct fetcher *f, uint8_t **ret_head, size_t *ret_len, char **ret_reason);

/* A reader over the remote bundle (its size known once fetcher_head succeeded); one
 * transfer at a time. */
struct bundle_reader fetcher_reader(struct fetcher *f);

/* Every byte this fetcher downloads is added to *counter too (NULL: none); set before use. */
void fetcher_count_into(struct fetcher *f, _Atomic uint64_t *counter);

const char *fetcher_url(const struct fetcher *f);
/* The ETag of the bundle served by the first fetch ("" before one). */
const char *fetcher_etag(const struct fetcher *f);
/* Fetch from the bundle with this ETag only (If-Range from the first range on): a repair
 * long after the install reads the very file the slot was installed from, or gets -ESTALE.
 * -EINVAL when the tag is too long to be one the controller sent. */
int fetcher_pin(struct fetcher *f, const char *etag);
