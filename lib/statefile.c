/* State files: durable writes with a checksum, recovery from the last good copy. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/sha256.h"
#include "lib/statefile.h"

#define STATEFILE_MAGIC "orbit-state 1 "
#define STATEFILE_HEADER_MAX 128

size_t statefile_encoded_size(size_t len) {
        size_t digits = 1;
        for (size_t v = len; v >= 10; v /= 10)
                digits++;
        return strlen(STATEFILE_MAGIC) + digits + 1 + SHA256_DIGEST_SIZE * 2 + 1 + len;
}

int statefile_encode(const void *payload, size_t len, char **ret, size_t *ret_len) {
        if (len > STATEFILE_MAX_PAYLOAD)
                return -EFBIG;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_buffer(payload, len, digest);
        sha256_to_hex(digest, hex);

        char header[STATEFILE_HEADER_MAX];
        int hlen = snprintf(header, sizeof(header), STATEFILE_MAGIC "%zu %s\n", len, hex);
        if (hlen < 0 || hlen >= (int) sizeof(header))
                return -EINVAL;

        char *buf = malloc((size_t) hlen + len + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, header, (size_t) hlen);
        if (len > 0)
                memcpy(buf + hlen, payload, len);
        buf[hlen + len] = '\0';
        *ret = buf;
        *ret_len = (size_t) hlen + len;
        return 0;
}

int statefile_decode(const char *data, size_t len, const char **ret_payload, size_t *ret_len) {
        size_t magic_len = strlen(STATEFILE_MAGIC);
        if (len < magic_len)
                return len == 0 ? -ENODATA : -EBADMSG;
        if (memcmp(data, STATEFILE_MAGIC, magic_len) != 0)
                return -EBADMSG;

        const char *nl = memchr(data, '\n', len < STATEFILE_HEADER_MAX ? len : STATEFILE_HEADER_MAX);
        if (!nl)
                return -EBADMSG;

        /* "<length> <64 hex>" and nothing else between magic and newline. */
        const char *p = data + magic_len;
        uint64_t payload_len = 0;
        size_t digits = 0;
        while (p < nl && *p >= '0' && *p <= '9') {
                if (payload_len > STATEFILE_MAX_PAYLOAD)
                        return -EBADMSG;
                payload_len = payload_len * 10 + (uint64_t) (*p - '0');
                p++;
                digits++;
        }
        if (digits == 0 || digits > 10 || p >= nl || *p != ' ')
                return -EBADMSG;
        p++;
        if (nl - p != SHA256_DIGEST_SIZE * 2)
                return -EBADMSG;
        /* Lower-case only, as written: then no flipped bit anywhere can go unnoticed. */
        for (size_t i = 0; i < SHA256_DIGEST_SIZE * 2; i++)
                if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
                        return -EBADMSG;
        char hex[SHA256_HEX_SIZE];
        memcpy(hex, p, SHA256_DIGEST_SIZE * 2);
        hex[SHA256_DIGEST_SIZE * 2] = '\0';
        uint8_t expected[SHA256_DIGEST_SIZE];
        if (sha256_from_hex(hex, expected) < 0)
                return -EBADMSG;
        if (payload_len > STATEFILE_MAX_PAYLOAD)
                return -EBADMSG;

        const char *payload = nl + 1;
        size_t have = len - (size_t) (payload - data);
        if (have < payload_len)
                return -ENODATA;
        if (have > payload_len)
                return -EBADMSG;

        uint8_t actual[SHA256_DIGEST_SIZE];
        sha256_buffer(payload, (size_t) payload_len, actual);
        if (memcmp(actual, expected, SHA256_DIGEST_SIZE) != 0)
                return -EBADMSG;

        *ret_payload = payload;
        *ret_len = (size_t) payload_len;
        return 0;
}

static int build_path(char *buf, size_t size, const char *dir, const char *name,
                      const char *suffix) {
        if (snprintf(buf, size, "%s/%s%s", dir, name, suffix) >= (int) size)
                return -ENAMETOOLONG;
        return 0;
}

/* Read and verify one file; returns a NUL-terminated copy of its payload. */
static int load_one(const char *path, char **ret_payload, size_t *ret_len) {
        _cleanup_free_ char *raw = NULL;
        size_t raw_len = 0;
        int r = read_file_bounded(path, STATEFILE_MAX_PAYLOAD + STATEFILE_HEADER_MAX, &raw,
                                  &raw_len);
        if (r < 0)
                return r;
        const char *payload;
        size_t len;
        r = statefile_decode(raw, raw_len, &payload, &len);
        if (r < 0)
                return r;
        char *copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, payload, len);
        copy[len] = '\0';
        *ret_payload = copy;
        *ret_len = len;
        return 0;
}

static const char *describe(int r) {
        switch (r) {
        case -EBADMSG:
                return "bad header or checksum";
        case -ENODATA:
                return "truncated";
        case -EFBIG:
                return "larger than any state file";
        default:
                return strerror(-r);
        }
}

int statefile_remove(const char *dir, const char *name) {
        char path[PATH_MAX], prev[PATH_MAX];
        int r;
        if ((r = build_path(path, sizeof(path), dir, name, "")) < 0 ||
            (r = build_path(prev, sizeof(prev), dir, name, ".prev")) < 0)
                return r;
        bool removed = false;
        if (unlink(prev) >= 0)
                removed = true;
        else if (errno != ENOENT)
                return -errno;
        /* the copy's removal durable before the file's: else a cut could keep the copy */
        if (removed && (r = fsync_parent_dir(prev)) < 0)
                return r;
        if (unlink(path) < 0)
                return errno == ENOENT ? 0 : -errno;
        return fsync_parent_dir(path);
}

int statefile_save_json(const char *dir, const char *name, const json_t *doc) {
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        return statefile_save(dir, name, text, strlen(text));
}

int statefile_save(const char *dir, const char *name, const void *payload, size_t len) {
        char path[PATH_MAX], prev[PATH_MAX], prev_tmp[PATH_MAX];
        int r;
        if ((r = build_path(path, sizeof(path), dir, name, "")) < 0 ||
            (r = build_path(prev, sizeof(prev), dir, name, ".prev")) < 0 ||
            (r = build_path(prev_tmp, sizeof(prev_tmp), dir, name, ".prev.tmp")) < 0)
                return r;

        _cleanup_free_ char *encoded = NULL;
        size_t encoded_len;
        r = statefile_encode(payload, len, &encoded, &encoded_len);
        if (r < 0)
                return r;

        /*
         * Keep the current file as the last good copy, but only when it verifies: a
         * corrupt current file must never overwrite a good .prev. A hard link plus
         * rename replaces .prev atomically while the current file stays in place.
         */
        _cleanup_free_ char *current = NULL;
        size_t current_len;
        if (load_one(path, &current, &current_len) >= 0) {
                (void) unlink(prev_tmp);
                if (link(path, prev_tmp) < 0)
                        return log_error_errno(negative_errno(), "state %s/%s: cannot link last good copy", dir, name);
                durable_failpoint(path, "linked");
                if (rename(prev_tmp, prev) < 0) {
                        r = negative_errno();
                        (void) unlink(prev_tmp);
                        return log_error_errno(r, "state %s/%s: cannot keep last good copy", dir, name);
                }
                durable_failpoint(path, "kept");
                /* When .prev already is this file (the last save failed after this step, a
                 * full disk say), rename does nothing and leaves the extra name behind. */
                (void) unlink(prev_tmp);
        }

        r = write_file_durable(path, encoded, encoded_len, 0600);
        if (r < 0)
                return log_error_errno(r, "state %s/%s: durable write failed", dir, name);
        return 0;
}

/* Problems seen by any thread, until the agent takes them (to report them to the ground). */
static pthread_mutex_t problems_lock = PTHREAD_MUTEX_INITIALIZER;
static struct statefile_problem problems[STATEFILE_PROBLEMS_MAX];
static size_t n_problems, n_dropped;
/* Files with no good copy stay as they are and are found again at every load: noted once. */
static char unusable[STATEFILE_PROBLEMS_MAX][PATH_MAX];
static size_t n_unusable;

static int problems_fd = -1; /* under problems_lock */

void statefile_set_problem_fd(int fd) {
        pthread_mutex_lock(&problems_lock);
        problems_fd = fd;
        pthread_mutex_unlock(&problems_lock);
}

static void problem_note(const char *path, const char *what, bool restored) {
        pthread_mutex_lock(&problems_lock);
        if (!restored) {
                for (size_t i = 0; i < n_unusable; i++)
                        if (streq(unusable[i], path)) {
                                pthread_mutex_unlock(&problems_lock);
                                return;
                        }
                if (n_unusable < STATEFILE_PROBLEMS_MAX)
                        snprintf(unusable[n_unusable++], PATH_MAX, "%s", path);
        }
        if (n_problems < STATEFILE_PROBLEMS_MAX) {
                struct statefile_problem *p = &problems[n_problems++];
                snprintf(p->path, sizeof(p->path), "%s", path);
                snprintf(p->problem, sizeof(p->problem), "%s", what);
                p->restored = restored;
        } else
                n_dropped++;
        if (problems_fd >= 0) {
                uint64_t one = 1;
                (void) !write(problems_fd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&problems_lock);
}

size_t statefile_take_problems(struct statefile_problem *out, size_t max, size_t *ret_dropped) {
        pthread_mutex_lock(&problems_lock);
        size_t n = n_problems < max ? n_problems : max;
        memcpy(out, problems, n * sizeof(*out));
        memmove(problems, problems + n, (n_problems - n) * sizeof(*out));
        n_problems -= n;
        if (ret_dropped)
                *ret_dropped = n_dropped;
        n_dropped = 0;
        pthread_mutex_unlock(&problems_lock);
        return n;
}

int statefile_load(const char *dir, const char *name, char **ret_payload, size_t *ret_len,
                   enum statefile_source *ret_source) {
        char path[PATH_MAX], prev[PATH_MAX];
        int r;
        if ((r = build_path(path, sizeof(path), dir, name, "")) < 0 ||
            (r = build_path(prev, sizeof(prev), dir, name, ".prev")) < 0)
                return r;

        char *payload = NULL;
        size_t len = 0;
        int r_cur = load_one(path, &payload, &len);
        if (r_cur >= 0) {
                *ret_payload = payload;
                if (ret_len)
                        *ret_len = len;
                if (ret_source)
                        *ret_source = STATEFILE_SOURCE_CURRENT;
                return 0;
        }

        int r_prev = load_one(prev, &payload, &len);
        if (r_prev < 0) {
                if (r_cur == -ENOENT && r_prev == -ENOENT)
                        return -ENOENT;
                log_error("state %s: unusable (%s), and last good copy %s unusable (%s)", path,
                          describe(r_cur), prev, describe(r_prev));
                char what[STATEFILE_PROBLEM_MAX];
                snprintf(what, sizeof(what), "%s; last good copy %s", describe(r_cur), describe(r_prev));
                problem_note(path, what, false);
                return r_cur == -ENOENT ? r_prev : -EBADMSG;
        }

        if (r_cur == -ENOENT)
                log_warning("state %s: missing, restoring last good copy %s", path, prev);
        else
                log_error("state %s: corrupt (%s), not trusted; restoring last good copy %s",
                          path, describe(r_cur), prev);

        problem_note(path, r_cur == -ENOENT ? "missing" : describe(r_cur), true);

        /* Write the good copy back as current; keep the bad file aside for inspection. */
        if (r_cur != -ENOENT) {
                char bad[PATH_MAX];
                if (build_path(bad, sizeof(bad), dir, name, ".corrupt") >= 0)
                        (void) rename(path, bad);
        }
        _cleanup_free_ char *encoded = NULL;
        size_t encoded_len;
        r = statefile_encode(payload, len, &encoded, &encoded_len);
        if (r >= 0)
                r = write_file_durable(path, encoded, encoded_len, 0600);
        if (r < 0)
                log_warning_errno(r, "state %s: could not write restored copy back", path);

        *ret_payload = payload;
        if (ret_len)
                *ret_len = len;
        if (ret_source)
                *ret_source = STATEFILE_SOURCE_PREVIOUS;
        return 0;
}

/* ---- two copies in one file, overwritten in place -------------------------------------- */

#define PAIR_MAGIC "orbit-pair 1 "

size_t statefile_pair_block_size(size_t len) {
        size_t need = STATEFILE_HEADER_MAX + len;
        return (need + STATEFILE_PAIR_ALIGN - 1) / STATEFILE_PAIR_ALIGN * STATEFILE_PAIR_ALIGN;
}

size_t statefile_pair_tear_size(const char *old_blk, const char *new_blk, size_t block) {
        size_t at = block;
        while (at > 0 && old_blk[at - 1] == new_blk[at - 1])
                at--;
        return at ? at - 1 : 0;
}

static void pair_digest(uint64_t seq, const void *payload, size_t len, uint8_t out[SHA256_DIGEST_SIZE]) {
        char covered[48];
        int n = snprintf(covered, sizeof(covered), "%" PRIu64 " %zu\n", seq, len);
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, covered, (size_t) n);
        sha256_update(&c, payload, len);
        sha256_final(&c, out);
}

int statefile_pair_encode(uint64_t seq, const void *payload, size_t len, char *out, size_t block) {
        if (len > STATEFILE_MAX_PAYLOAD || block < statefile_pair_block_size(len))
                return -EFBIG;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        pair_digest(seq, payload, len, digest);
        sha256_to_hex(digest, hex);
        int hlen = snprintf(out, STATEFILE_HEADER_MAX, PAIR_MAGIC "%" PRIu64 " %zu %s\n", seq, len, hex);
        if (hlen < 0 || hlen >= STATEFILE_HEADER_MAX)
                return -EINVAL;
        if (len > 0)
                memcpy(out + hlen, payload, len);
        memset(out + hlen + len, 0, block - (size_t) hlen - len);
        return 0;
}

/* Decimal digits up to a space; at most max_digits, no leading zero but "0". */
static const char *parse_decimal(const char *p, const char *end, size_t max_digits, uint64_t *ret) {
        uint64_t v = 0;
        size_t digits = 0;
        while (p < end && *p >= '0' && *p <= '9') {
                if (digits == max_digits || (digits == 1 && v == 0))
                        return NULL;
                uint64_t d = (uint64_t) (*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return NULL;
                v = v * 10 + d;
                p++;
                digits++;
        }
        if (digits == 0 || p >= end || *p != ' ')
                return NULL;
        *ret = v;
        return p + 1;
}

int statefile_pair_decode(const char *blk, size_t block, uint64_t *ret_seq, const char **ret_payload,
                          size_t *ret_len) {
        bool zero = true;
        for (size_t i = 0; i < block && zero; i++)
                zero = blk[i] == 0;
        if (zero)
                return -ENODATA;
        size_t magic_len = strlen(PAIR_MAGIC);
        if (block < STATEFILE_HEADER_MAX || memcmp(blk, PAIR_MAGIC, magic_len) != 0)
                return -EBADMSG;
        const char *nl = memchr(blk, '\n', STATEFILE_HEADER_MAX);
        if (!nl)
                return -EBADMSG;
        uint64_t seq, len;
        const char *p = parse_decimal(blk + magic_len, nl, 20, &seq);
        if (!p || !(p = parse_decimal(p, nl, 10, &len)) || nl - p != SHA256_DIGEST_SIZE * 2)
                return -EBADMSG;
        for (const char *h = p; h < nl; h++)
                if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f')))
                        return -EBADMSG;
        /* the room statefile_pair_encode keeps for the header: a longer payload in this
         * block was never written by it, whatever its checksum says */
        const char *payload = nl + 1;
        if (len > STATEFILE_MAX_PAYLOAD || len > block - STATEFILE_HEADER_MAX)
                return -EBADMSG;
        for (const char *z = payload + len; z < blk + block; z++)
                if (*z != 0)
                        return -EBADMSG;
        char hex[SHA256_HEX_SIZE];
        memcpy(hex, p, SHA256_DIGEST_SIZE * 2);
        hex[SHA256_DIGEST_SIZE * 2] = '\0';
        uint8_t expected[SHA256_DIGEST_SIZE], actual[SHA256_DIGEST_SIZE];
        if (sha256_from_hex(hex, expected) < 0)
                return -EBADMSG;
        pair_digest(seq, payload, (size_t) len, actual);
        if (memcmp(actual, expected, SHA256_DIGEST_SIZE) != 0)
                return -EBADMSG;
        *ret_seq = seq;
        *ret_payload = payload;
        *ret_len = (size_t) len;
        return 0;
}

void statefile_pair_close(struct statefile_pair *p) {
        if (p->fd >= 0)
                (void) close(p->fd);
        p->fd = -1;
}

/* The whole file anew: the copy in its block, the other block zeros; then opened for the
 * next saves. */
static int pair_create(struct statefile_pair *p, const char *path, const void *payload, size_t len) {
        size_t block = statefile_pair_block_size(len);
        uint64_t seq = p->seq + 1;
        _cleanup_free_ char *buf = calloc(2, block);
        if (!buf)
                return -ENOMEM;
        int r = statefile_pair_encode(seq, payload, len, buf + (seq % 2) * block, block);
        if (r < 0)
                return r;
        if ((r = write_file_durable(path, buf, 2 * block, 0600)) < 0)
                return r;
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        p->fd = fd;
        p->block = block;
        p->seq = seq;
        p->unflushed = false;
        return 0;
}

/* Tests only (struct statefile_pair_tear): the copy's first part durable over the older
 * copy, and the test's hook called there; the caller then writes the whole block. */
static int pair_tear(struct statefile_pair *p, const char *path, uint64_t seq, const char *buf, off_t at) {
        _cleanup_free_ char *old = malloc(p->block);
        if (!old)
                return -ENOMEM;
        ssize_t n = pread(p->fd, old, p->block, at);
        if (n < 0)
                return negative_errno();
        if ((size_t) n < p->block)
                memset(old + n, 0, p->block - (size_t) n);
        size_t part = statefile_pair_tear_size(old, buf, p->block);
        int r = pwrite_all(p->fd, buf, part, (uint64_t) at);
        if (r >= 0 && fdatasync(p->fd) < 0)
                r = negative_errno();
        if (r < 0)
                return r;
        p->tear->fn(p->tear->userdata, path, seq, part, p->block);
        return 0;
}

int statefile_pair_save(struct statefile_pair *p, const char *dir, const char *name, const void *payload,
                        size_t len, bool flush) {
        char path[PATH_MAX];
        int r = build_path(path, sizeof(path), dir, name, "");
        if (r < 0)
                return r;
        if (len > STATEFILE_MAX_PAYLOAD)
                return -EFBIG;
        if (p->fd < 0 || statefile_pair_block_size(len) > p->block) {
                statefile_pair_close(p);
                return pair_create(p, path, payload, len);
        }
        uint64_t seq = p->seq + 1;
        _cleanup_free_ char *buf = malloc(p->block);
        if (!buf)
                return -ENOMEM;
        if ((r = statefile_pair_encode(seq, payload, len, buf, p->block)) < 0)
                return r;
        off_t at = (off_t) ((seq % 2) * p->block);
        /* A flushing save after one that was not: that copy made durable first, by this
         * file's own flush, before its partner is overwritten. The caller's flush should
         * have done it already; where that cannot be relied on (a filesystem that skips
         * the disk's flush on a sync with nothing new, f2fs or btrfs) it costs one flush
         * of an idle disk per pass. */
        r = flush && p->unflushed && fdatasync(p->fd) < 0 ? negative_errno() : 0;
        if (r >= 0 && p->tear)
                r = pair_tear(p, path, seq, buf, at);
        if (r >= 0)
                r = pwrite_all(p->fd, buf, p->block, (uint64_t) at);
        if (r >= 0 && flush && fdatasync(p->fd) < 0)
                r = negative_errno();
        /* written through to the disk, not flushed from its cache: the caller's next flush of
         * that disk makes it durable (lib/statefile.h) */
        if (r >= 0 && !flush &&
            sync_file_range(p->fd, at, (off_t) p->block,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0)
                r = negative_errno();
        if (r < 0) {
                /* what that block holds now is unknown: the next save starts a file anew */
                statefile_pair_close(p);
                return r;
        }
        p->seq = seq;
        p->unflushed = !flush;
        return 0;
}

int statefile_pair_load(const char *dir, const char *name, char **ret_payload, size_t *ret_len) {
        char path[PATH_MAX];
        int r = build_path(path, sizeof(path), dir, name, "");
        if (r < 0)
                return r;
        size_t max_block = statefile_pair_block_size(STATEFILE_MAX_PAYLOAD);
        _cleanup_free_ char *raw = NULL;
        size_t raw_len = 0;
        if ((r = read_file_bounded(path, 2 * max_block, &raw, &raw_len)) < 0) {
                if (r == -ENOENT)
                        return r;
                if (r != -EFBIG)
                        return log_error_errno(r, "state %s: cannot read", path);
                raw_len = 0; /* larger than any: noted below */
        }
        if (raw_len >= strlen(STATEFILE_MAGIC) && memcmp(raw, STATEFILE_MAGIC, strlen(STATEFILE_MAGIC)) == 0)
                return statefile_load(dir, name, ret_payload, ret_len, NULL);

        size_t block = raw_len / 2;
        if (raw_len == 0 || raw_len % 2 || block % STATEFILE_PAIR_ALIGN) {
                log_error("state %s: unusable (%zu bytes: not two copies)", path, raw_len);
                problem_note(path, "not two copies", false);
                return -EBADMSG;
        }
        uint64_t seq[2];
        const char *payload[2];
        size_t len[2];
        int got[2];
        for (int k = 0; k < 2; k++)
                got[k] = statefile_pair_decode(raw + (size_t) k * block, block, &seq[k], &payload[k], &len[k]);
        /* a good copy in the wrong block is no copy of this format */
        for (int k = 0; k < 2; k++)
                if (got[k] >= 0 && seq[k] % 2 != (uint64_t) k)
                        got[k] = -EBADMSG;
        int newest = got[0] >= 0 && (got[1] < 0 || seq[0] > seq[1]) ? 0 : got[1] >= 0 ? 1 : -1;
        for (int k = 0; k < 2; k++)
                if (got[k] == -EBADMSG) {
                        char what[STATEFILE_PROBLEM_MAX];
                        snprintf(what, sizeof(what), "copy %d: %s", k, describe(got[k]));
                        if (newest >= 0)
                                log_error("state %s: copy %d corrupt (%s), not trusted; using copy %d", path, k,
                                          describe(got[k]), newest);
                        else
                                log_error("state %s: copy %d corrupt (%s), and no good copy", path, k,
                                          describe(got[k]));
                        problem_note(path, what, newest >= 0);
                }
        if (newest < 0)
                return got[0] == -ENODATA && got[1] == -ENODATA ? -ENOENT : -EBADMSG;
        char *copy = malloc(len[newest] + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, payload[newest], len[newest]);
        copy[len[newest]] = '\0';
        *ret_payload = copy;
        if (ret_len)
                *ret_len = len[newest];
        return 0;
}
