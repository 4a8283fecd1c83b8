/* Fetching a bundle from the controller by HTTP ranges (see update-fetch.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/update-fetch.h"
#include "agent/tls-time.h"
#include "agent/trusted-time.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"

#define HEAD_FETCH (64 * 1024)
#define HEAD_MAX (MANIFEST_MAX_SIZE + SIGNATURE_MAX_SIZE + 4 * 512)
#define FETCH_ATTEMPTS 4

struct fetcher {
        char url[2048];
        struct fetch_tls tls;
        char etag[160];      /* of the first answer: later ranges must come from the same file */
        uint64_t size;       /* of the whole bundle, from Content-Range */
        struct link_pass *pass; /* this contact's budget and end; NULL: no limits */
        const atomic_int *cancel;
        _Atomic uint64_t *counter; /* the usage meter's count of what was fetched for an app; NULL none */
        CURL *curl;
};

void fetcher_count_into(struct fetcher *f, _Atomic uint64_t *counter) {
        f->counter = counter;
}

int fetcher_new(const char *url, const struct fetch_tls *tls, struct link_pass *pass, const atomic_int *cancel,
                struct fetcher **ret) {
        if (strlen(url) >= sizeof(((struct fetcher *) NULL)->url))
                return -ENAMETOOLONG;
        struct fetcher *f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        snprintf(f->url, sizeof(f->url), "%s", url);
        f->tls = *tls;
        f->pass = pass;
        f->cancel = cancel;
        *ret = f;
        return 0;
}

void fetcher_free(struct fetcher *f) {
        if (!f)
                return;
        if (f->curl)
                curl_easy_cleanup(f->curl);
        free(f);
}

const char *fetcher_url(const struct fetcher *f) {
        return f->url;
}

const char *fetcher_etag(const struct fetcher *f) {
        return f->etag;
}

int fetcher_pin(struct fetcher *f, const char *etag) {
        if (!etag || strlen(etag) >= sizeof(f->etag))
                return -EINVAL;
        snprintf(f->etag, sizeof(f->etag), "%s", etag);
        return 0;
}

struct fetch {
        uint8_t *out;
        size_t want, got;
        bool overflow;
        char etag[160];
        uint64_t total;
        const atomic_int *cancel;
        struct link_pass *pass;
        curl_off_t seen;          /* bytes at the last call */
        uint64_t last_byte_usec;  /* CLOCK_MONOTONIC */
        bool silent;              /* given up: silent while the link works (link_pass_range_silent) */
};

static uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/* Called by libcurl during a transfer (also while it waits for bytes, about once a
 * second): a cancel stops the transfer there, not after it; so does a range left silent
 * by a cut once syncs go through again. */
static int fetch_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow) {
        struct fetch *f = userdata;
        if (atomic_load_explicit(f->cancel, memory_order_relaxed))
                return 1;
        uint64_t now = mono_usec();
        if (dlnow > f->seen) {
                f->seen = dlnow;
                f->last_byte_usec = now;
        }
        if (link_pass_range_silent(f->pass, f->last_byte_usec, now)) {
                f->silent = true;
                return 1;
        }
        return 0;
}

static size_t fetch_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct fetch *f = userdata;
        size_t n = size * nmemb;
        if (f->got + n > f->want) {
                f->overflow = true;
                return 0;
        }
        memcpy(f->out + f->got, ptr, n);
        f->got += n;
        return n;
}

static size_t fetch_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct fetch *f = userdata;
        size_t n = size * nmemb;
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int) (n < sizeof(line) - 1 ? n : sizeof(line) - 1), ptr);
        line[strcspn(line, "\r\n")] = '\0';
        if (strncasecmp(line, "etag:", 5) == 0) {
                const char *v = line + 5;
                while (*v == ' ')
                        v++;
                size_t len = strlen(v);
                if (len < sizeof(f->etag)) /* a longer tag is not ours: If-Range then fails safe */
                        memcpy(f->etag, v, len + 1);
        } else if (strncasecmp(line, "content-range:", 14) == 0) {
                const char *slash = strrchr(line, '/');
                if (slash)
                        f->total = strtoull(slash + 1, NULL, 10);
        }
        return n;
}

int fetcher_range(struct fetcher *j, uint64_t offset, size_t len, void *out, size_t *ret_got) {
        const struct fetch_tls *lc = &j->tls;
        int r = link_pass_may_download(j->pass, len, trusted_clock_now_usec());
        if (r < 0)
                return r;
        if (!j->curl && !(j->curl = curl_easy_init()))
                return -ENOMEM;
        r = -ENOLINK;
        bool retry_now = false;
        for (unsigned attempt = 0; attempt < FETCH_ATTEMPTS; attempt++) {
                if (atomic_load(j->cancel))
                        return -ECANCELED;
                /* the pause before a retry, cut short by a cancel; none after a silent range:
                 * the link is known to work */
                for (unsigned ms = 0; attempt > 0 && !retry_now && ms < (1000u << (attempt - 1)) &&
                                      !atomic_load(j->cancel);
                     ms += 50)
                        usleep(50 * 1000);
                retry_now = false;
                /* each try charges the pass: a retried range must not overshoot its budget */
                if (attempt > 0 && (r = link_pass_may_download(j->pass, len, trusted_clock_now_usec())) < 0)
                        return r;
                struct fetch f = {.out = out, .want = len, .cancel = j->cancel, .pass = j->pass,
                                  .last_byte_usec = mono_usec()};
                char range[64], if_range[200];
                snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
                struct curl_slist *hdrs = NULL;
                if (j->etag[0]) {
                        snprintf(if_range, sizeof(if_range), "If-Range: %s", j->etag);
                        hdrs = curl_slist_append(NULL, if_range);
                }
                CURL *e = j->curl;
                curl_easy_reset(e);
                (void) curl_easy_setopt(e, CURLOPT_URL, j->url);
                (void) curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
                (void) curl_easy_setopt(e, CURLOPT_RANGE, range);
                (void) curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
                (void) curl_easy_setopt(e, CURLOPT_CAINFO, lc->ca[0] ? lc->ca : NULL);
                (void) curl_easy_setopt(e, CURLOPT_SSLCERT, lc->cert[0] ? lc->cert : NULL);
                (void) curl_easy_setopt(e, CURLOPT_SSLKEY, lc->key[0] ? lc->key : NULL);
                (void) tls_time_setup(e, NULL);
                (void) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, lc->connect_timeout_sec);
                (void) curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
                (void) curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
                (void) curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
                if (lc->max_recv_bytes_per_sec > 0)
                        (void) curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE,
                                                (curl_off_t) lc->max_recv_bytes_per_sec);
                (void) curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_data);
                (void) curl_easy_setopt(e, CURLOPT_WRITEDATA, &f);
                (void) curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, fetch_header);
                (void) curl_easy_setopt(e, CURLOPT_HEADERDATA, &f);
                (void) curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, fetch_progress);
                (void) curl_easy_setopt(e, CURLOPT_XFERINFODATA, &f);
                (void) curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
                CURLcode cr = curl_easy_perform(e);
                curl_slist_free_all(hdrs);
                long status = 0;
                curl_off_t down = 0, took = 0;
                (void) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
                (void) curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &down);
                (void) curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &took);
                link_pass_downloaded(j->pass, (uint64_t) down, (uint64_t) took);
                if (j->counter && down > 0)
                        atomic_fetch_add(j->counter, (uint64_t) down);
                if (cr == CURLE_OK && status == 206) {
                        if (!j->etag[0])
                                snprintf(j->etag, sizeof(j->etag), "%s", f.etag);
                        if (f.total)
                                j->size = f.total;
                        if (ret_got) {
                                *ret_got = f.got;
                                return 0;
                        }
                        if (f.got != len)
                                return -EBADMSG;
                        return 0;
                }
                if (cr == CURLE_OK && status == 200 && j->etag[0])
                        return -ESTALE; /* If-Range did not match: the bundle was replaced */
                /* 410: the controller kept the bundle's id but no longer has its file. */
                if (cr == CURLE_OK && (status == 404 || status == 410 || status == 403 || status == 416 ||
                                       status == 200))
                        return status == 404 || status == 410 ? -ENOENT : status == 403 ? -EACCES : -EBADMSG;
                if (cr == CURLE_WRITE_ERROR && f.overflow)
                        return -EBADMSG;
                if (cr == CURLE_ABORTED_BY_CALLBACK && f.silent) {
                        log_info("update: fetching bytes %s of %s: silent since the link came back (a good sync "
                                 "%.1f s after its last byte): given up, fetched again now (attempt %u, %" PRIu64
                                 " bytes thrown away)",
                                 range, j->url,
                                 (double) (atomic_load(&j->pass->sync_ok_usec) - f.last_byte_usec) / 1e6,
                                 attempt + 1, (uint64_t) down);
                        retry_now = true;
                        r = -ENOLINK;
                        continue;
                }
                if (cr == CURLE_ABORTED_BY_CALLBACK)
                        return -ECANCELED;
                r = -ENOLINK;
                log_info("update: fetching bytes %s of %s: %s (attempt %u, %" PRIu64 " bytes thrown away)",
                         range, j->url, cr != CURLE_OK ? curl_easy_strerror(cr) : "unexpected status",
                         attempt + 1, (uint64_t) down);
        }
        return r;
}

int fetcher_head(struct fetcher *j, uint8_t **ret_head, size_t *ret_len, char **ret_reason) {
        _cleanup_free_ uint8_t *head = malloc(HEAD_MAX);
        if (!head)
                return -ENOMEM;
        size_t got = 0;
        int r = fetcher_range(j, 0, HEAD_FETCH, head, &got);
        if (r < 0)
                return message_set(ret_reason, r, "%s: %s", j->url,
                                   r == -ENOLINK ? "the controller cannot be reached" : strerror(-r));
        if (!j->size)
                return message_set(ret_reason, -EBADMSG, "%s: no size in the answer", j->url);
        for (;;) {
                uint64_t need;
                r = bundle_head_length(head, got, &need);
                if (r == -EAGAIN && need <= HEAD_MAX && need <= j->size) {
                        r = fetcher_range(j, got, need - got, head + got, NULL);
                        if (r < 0)
                                return message_set(ret_reason, r, "%s: %s", j->url, strerror(-r));
                        got = need;
                        continue;
                }
                if (r < 0 || need > got)
                        return message_set(ret_reason, -EBADMSG,
                                           "%s: does not start with a bundle's manifest and signature",
                                           j->url);
                got = need; /* the rest of the first range is payload: not kept */
                break;
        }
        log_info("update: fetched the manifest of %s (%" PRIu64 " bytes; the bundle is %" PRIu64 ")",
                 j->url, (uint64_t) got, j->size);
        *ret_head = TAKE_PTR(head);
        *ret_len = got;
        return 0;
}

static int fetcher_pread(void *userdata, uint64_t offset, void *buf, size_t len) {
        return fetcher_range(userdata, offset, len, buf, NULL);
}

struct bundle_reader fetcher_reader(struct fetcher *f) {
        return (struct bundle_reader){.pread = fetcher_pread, .userdata = f, .size = f->size};
}
