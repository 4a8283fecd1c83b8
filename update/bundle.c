/* Bundles on disk: a strict libarchive tar reader that verifies by chunk, and the writer. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "update/bundle.h"
#include "lib/message.h"
#include "lib/fileio.h"


/* ---- reading ----------------------------------------------------------------------- */

struct bundle {
        struct bundle_reader reader;
        int fd; /* a file's, for its reader; -1 otherwise */
        bool own_fd;
        const uint8_t *head; /* opened from a fetched head: the caller's, only while opening */
        size_t head_len;
        uint64_t pos; /* of the next byte libarchive gets */
        char *name;
        struct archive *archive;
        uint8_t *read_buf;
        bool first_block_seen;
        const char *compression; /* set when the input turned out to be compressed */
        int read_errno;

        struct manifest manifest;
        struct signature_info signer;
        char *manifest_text; /* the exact signed bytes, NUL-terminated */
        size_t manifest_len;
        char *sig_text; /* manifest.sig as read: checked again before a slot is armed */
        size_t sig_len;
        uint8_t manifest_digest[SHA256_DIGEST_SIZE];

        /* streaming state */
        size_t image;        /* current image */
        bool member_open;    /* its tar header has been read and checked */
        uint64_t next_chunk; /* next chunk of the current image */
        struct sha256_ctx image_hash; /* live while member_open */
        uint8_t *chunk_buf;
        bool finished;
        int failed; /* the first error, sticky */
};

static const struct {
        const char *name;
        const uint8_t magic[6];
        size_t len;
} compression_magics[] = {
        {"gzip", {0x1f, 0x8b}, 2},
        {"compress", {0x1f, 0x9d}, 2},
        {"bzip2", {'B', 'Z', 'h'}, 3},
        {"xz", {0xfd, '7', 'z', 'X', 'Z', 0x00}, 6},
        {"zstd", {0x28, 0xb5, 0x2f, 0xfd}, 4},
        {"lz4", {0x04, 0x22, 0x4d, 0x18}, 4},
        {"lzma", {0x5d, 0x00, 0x00}, 3},
        {"lzip", {'L', 'Z', 'I', 'P'}, 4},
};

static const char *sniff_compression(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(compression_magics); i++)
                if (n >= compression_magics[i].len &&
                    memcmp(p, compression_magics[i].magic, compression_magics[i].len) == 0)
                        return compression_magics[i].name;
        return NULL;
}

/* libarchive's read callback: our own, so compressed input is refused before any filter. */
static la_ssize_t read_callback(struct archive *a, void *userdata, const void **buffer) {
        struct bundle *b = userdata;
        size_t n;
        if (b->head) {
                /* Opening from a fetched head: it holds all that opening reads; past it is
                 * the end, never a fetch on the caller's thread. */
                n = b->pos < b->head_len ? b->head_len - (size_t) b->pos : 0;
                if (n > BUNDLE_READ_BLOCK)
                        n = BUNDLE_READ_BLOCK;
                memcpy(b->read_buf, b->head + b->pos, n);
        } else {
                uint64_t left = b->reader.size > b->pos ? b->reader.size - b->pos : 0;
                n = left < BUNDLE_READ_BLOCK ? (size_t) left : BUNDLE_READ_BLOCK;
                int r = n ? b->reader.pread(b->reader.userdata, b->pos, b->read_buf, n) : 0;
                if (r < 0) {
                        b->read_errno = -r;
                        archive_set_error(a, -r, "read failed");
                        return -1;
                }
        }
        b->pos += n;
        if (!b->first_block_seen) {
                b->first_block_seen = true;
                b->compression = sniff_compression(b->read_buf, n);
                if (b->compression) {
                        archive_set_error(a, ENOTSUP, "compressed");
                        return -1;
                }
        }
        *buffer = b->read_buf;
        return (la_ssize_t) n;
}

/* Describe what libarchive says went wrong, distinguishing the cases we set ourselves. */
static int archive_failure(struct bundle *b, char **ret_reason, const char *what) {
        if (b->compression)
                return message_set(ret_reason, -ENOTSUP,
                                  "%s: compressed (%s) bundle refused without decompressing: "
                                  "bundles are plain tar",
                                  b->name, b->compression);
        if (b->read_errno)
                return message_set(ret_reason, -b->read_errno, "%s: %s: %s", b->name, what,
                                  strerror(b->read_errno));
        const char *msg = archive_error_string(b->archive);
        return message_set(ret_reason, -EBADMSG, "%s: truncated or damaged tar while %s: %s",
                          b->name, what, msg ? msg : "unknown error");
}

static bool path_is_unsafe(const char *p) {
        if (p[0] == '/')
                return true;
        for (const char *c = p; *c;) {
                const char *e = strchrnul(c, '/');
                if (e - c == 2 && c[0] == '.' && c[1] == '.')
                        return true;
                c = *e ? e + 1 : e;
        }
        return false;
}

static const char *filetype_name(mode_t t) {
        switch (t) {
        case AE_IFLNK:
                return "a symbolic link";
        case AE_IFDIR:
                return "a directory";
        case AE_IFCHR:
                return "a character device";
        case AE_IFBLK:
                return "a block device";
        case AE_IFIFO:
                return "a FIFO";
        case AE_IFSOCK:
                return "a socket";
        default:
                return "not a regular file";
        }
}

/*
 * Check the member just read: a regular file named exactly expected, of exactly
 * expected_size bytes (or at most max_size when expected_size is UINT64_MAX).
 */
static int check_member(struct bundle *b, struct archive_entry *e, const char *expected,
                        uint64_t expected_size, uint64_t max_size, char **ret_reason) {
        const char *name = archive_entry_pathname(e);
        if (!name || !*name)
                return message_set(ret_reason, -EBADMSG, "%s: member without a name (expected %s)",
                                  b->name, expected);
        if (path_is_unsafe(name))
                return message_set(ret_reason, -EBADMSG,
                                  "%s: member \"%s\" has an unsafe path (absolute or ..)", b->name,
                                  name);
        if (archive_entry_hardlink(e))
                return message_set(ret_reason, -EBADMSG,
                                  "%s: member \"%s\" is a hard link to \"%s\"", b->name, name,
                                  archive_entry_hardlink(e));
        if (archive_entry_filetype(e) != AE_IFREG) {
                const char *target = archive_entry_symlink(e);
                return message_set(ret_reason, -EBADMSG,
                                  "%s: member \"%s\" is %s%s%s%s, only regular files are allowed",
                                  b->name, name, filetype_name(archive_entry_filetype(e)),
                                  target ? " to \"" : "", target ? target : "", target ? "\"" : "");
        }
        if (archive_entry_sparse_reset(e) > 0)
                return message_set(ret_reason, -EBADMSG, "%s: member \"%s\" is a sparse file",
                                  b->name, name);
        if (!streq(name, expected)) {
                bool known =
                        streq(name, MANIFEST_MEMBER_NAME) || streq(name, SIGNATURE_MEMBER_NAME);
                for (size_t i = 0; !known && i < b->manifest.n_images; i++)
                        known = streq(name, b->manifest.images[i].file);
                return message_set(ret_reason, -EBADMSG,
                                  "%s: %s: expected member \"%s\", found \"%s\"", b->name,
                                  known ? "members out of order" : "unexpected member", expected,
                                  name);
        }
        if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
                return message_set(ret_reason, -EBADMSG, "%s: member \"%s\" has no size", b->name,
                                  name);
        uint64_t size = (uint64_t)archive_entry_size(e);
        if (expected_size != UINT64_MAX && size != expected_size)
                return message_set(ret_reason, -EBADMSG,
                                  "%s: member \"%s\" is %" PRIu64
                                  " bytes, the manifest says %" PRIu64,
                                  b->name, name, size, expected_size);
        if (expected_size == UINT64_MAX && size > max_size)
                return message_set(ret_reason, -EBADMSG,
                                  "%s: member \"%s\" is %" PRIu64 " bytes, more than the %" PRIu64
                                  " allowed",
                                  b->name, name, size, max_size);
        return 0;
}

static int next_header(struct bundle *b, struct archive_entry **e, const char *expected,
                       char **ret_reason) {
        int r = archive_read_next_header(b->archive, e);
        if (r == ARCHIVE_OK)
                return 0;
        if (r == ARCHIVE_EOF)
                return message_set(ret_reason, -EBADMSG,
                                  "%s: truncated: the archive ends before member \"%s\"", b->name,
                                  expected);
        char what[256];
        snprintf(what, sizeof(what), "reading the header of \"%s\"", expected);
        return archive_failure(b, ret_reason, what);
}

/* Read exactly len bytes of the current member's data. */
static int read_exactly(struct bundle *b, void *buf, size_t len, const char *member,
                        char **ret_reason) {
        size_t got = 0;
        while (got < len) {
                la_ssize_t n = archive_read_data(b->archive, (uint8_t *)buf + got, len - got);
                if (n < 0) {
                        char what[256];
                        snprintf(what, sizeof(what), "reading \"%s\"", member);
                        return archive_failure(b, ret_reason, what);
                }
                if (n == 0)
                        return message_set(ret_reason, -EBADMSG,
                                          "%s: truncated: member \"%s\" ends early", b->name,
                                          member);
                got += (size_t)n;
        }
        return 0;
}

/* Read a whole small member into a NUL-terminated heap buffer. */
static int read_small_member(struct bundle *b, const char *expected, uint64_t max_size,
                             char **ret_data, size_t *ret_len, char **ret_reason) {
        struct archive_entry *e;
        int r = next_header(b, &e, expected, ret_reason);
        if (r < 0)
                return r;
        r = check_member(b, e, expected, UINT64_MAX, max_size, ret_reason);
        if (r < 0)
                return r;
        size_t len = (size_t)archive_entry_size(e);
        char *data = malloc(len + 1);
        if (!data)
                return -ENOMEM;
        r = read_exactly(b, data, len, expected, ret_reason);
        if (r < 0) {
                free(data);
                return r;
        }
        data[len] = '\0';
        *ret_data = data;
        *ret_len = len;
        return 0;
}

void bundle_close(struct bundle *b) {
        if (!b)
                return;
        if (b->archive)
                archive_read_free(b->archive);
        if (b->own_fd && b->fd >= 0)
                (void)close(b->fd);
        if (b->member_open)
                sha256_discard(&b->image_hash);
        manifest_free(&b->manifest);
        free(b->manifest_text);
        free(b->sig_text);
        free(b->read_buf);
        free(b->chunk_buf);
        free(b->name);
        free(b);
}

/* Open the tar, read and return manifest.json and manifest.sig (nothing verified yet). */
static int bundle_start(const struct bundle_reader *reader, const void *head, size_t head_len,
                        const char *name, struct bundle **ret, char **ret_manifest,
                        size_t *ret_manifest_len, char **ret_sig, size_t *ret_sig_len,
                        char **ret_reason) {
        struct bundle *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->reader = *reader;
        b->fd = -1;
        b->head = head;
        b->head_len = head_len;
        b->name = strdup(name);
        b->read_buf = malloc(BUNDLE_READ_BLOCK);
        b->archive = archive_read_new();
        if (!b->name || !b->read_buf || !b->archive) {
                bundle_close(b);
                return -ENOMEM;
        }
        /* tar only, no decompression filters: nothing can expand beyond the file itself. */
        if (archive_read_support_format_tar(b->archive) != ARCHIVE_OK ||
            archive_read_support_filter_none(b->archive) != ARCHIVE_OK) {
                bundle_close(b);
                return -ENOMEM;
        }
        if (archive_read_open(b->archive, b, NULL, read_callback, NULL) != ARCHIVE_OK) {
                int r = archive_failure(b, ret_reason, "opening");
                bundle_close(b);
                return r;
        }
        char *manifest = NULL, *sig = NULL;
        size_t manifest_len = 0, sig_len = 0;
        int r = read_small_member(b, MANIFEST_MEMBER_NAME, MANIFEST_MAX_SIZE, &manifest,
                                  &manifest_len, ret_reason);
        if (r >= 0 && (archive_filter_count(b->archive) != 1 ||
                       archive_filter_code(b->archive, 0) != ARCHIVE_FILTER_NONE))
                r = message_set(ret_reason, -ENOTSUP, "%s: compressed bundles are refused", name);
        if (r >= 0)
                r = read_small_member(b, SIGNATURE_MEMBER_NAME, SIGNATURE_MAX_SIZE, &sig, &sig_len,
                                      ret_reason);
        if (r < 0) {
                free(manifest);
                bundle_close(b);
                return r;
        }
        *ret = b;
        *ret_manifest = manifest;
        *ret_manifest_len = manifest_len;
        *ret_sig = sig;
        *ret_sig_len = sig_len;
        return 0;
}

int bundle_open_reader(const struct bundle_reader *reader, const char *name, const void *head,
                       size_t head_len, const struct bundle_verify_options *o, struct bundle **ret,
                       char **ret_reason) {
        struct bundle *b;
        _cleanup_free_ char *manifest_text = NULL, *sig = NULL, *message = NULL, *why = NULL;
        size_t manifest_len, sig_len;
        int r = bundle_start(reader, head, head_len, name, &b, &manifest_text, &manifest_len, &sig,
                             &sig_len, ret_reason);
        if (r < 0)
                return r;
        b->head = NULL; /* the caller's: not kept */

        r = (o->now_is_lower_bound ? signature_verify_at_least : signature_verify)(
                SIGNATURE_FOR_BUNDLE, manifest_text, manifest_len, sig, sig_len, o->keyring, o->now, &b->signer, &why);
        if (r < 0) {
                r = message_set(ret_reason, r, "%s: signature: %s", name, why ? why : "refused");
                goto fail;
        }
        r = manifest_parse_text(MANIFEST_MEMBER_NAME, manifest_text, manifest_len, 0, &b->manifest,
                                &message);
        if (r < 0) {
                /* Signed but malformed: the signer's tooling is broken; say where. */
                r = message_set(ret_reason, -EBADMSG, "%s: invalid manifest:\n%s", name,
                               message ? message : "?");
                goto fail;
        }
        r = manifest_check_policy(&b->manifest, o->hardware, o->min_security_version, &why);
        if (r < 0) {
                r = message_set(ret_reason, r, "%s: %s", name, why ? why : "refused by policy");
                goto fail;
        }
        sha256_buffer(manifest_text, manifest_len, b->manifest_digest);
        b->manifest_len = manifest_len;
        b->manifest_text = TAKE_PTR(manifest_text);
        b->sig_len = sig_len;
        b->sig_text = TAKE_PTR(sig);
        uint64_t max_chunk = 0;
        for (size_t i = 0; i < b->manifest.n_images; i++)
                if (b->manifest.images[i].chunk_size > max_chunk)
                        max_chunk = b->manifest.images[i].chunk_size;
        b->chunk_buf = malloc(max_chunk);
        if (!b->chunk_buf) {
                r = -ENOMEM;
                goto fail;
        }
        *ret = b;
        return 0;
fail:
        bundle_close(b);
        return r;
}

static int file_pread(void *userdata, uint64_t offset, void *buf, size_t len) {
        return pread_all((int) (intptr_t) userdata, buf, len, offset); /* -ENODATA: the file shrank */
}

static int file_reader(int fd, const char *name, struct bundle_reader *ret, char **ret_reason) {
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = negative_errno();
                return message_set(ret_reason, r, "%s: %s", name, strerror(-r));
        }
        if (!S_ISREG(st.st_mode))
                return message_set(ret_reason, -ESPIPE, "%s: not a regular file", name);
        *ret = (struct bundle_reader){.pread = file_pread, .userdata = (void *) (intptr_t) fd,
                                      .size = (uint64_t) st.st_size, .concurrent = true};
        return 0;
}

int bundle_open_fd(int fd, const char *name, const struct bundle_verify_options *o,
                   struct bundle **ret, char **ret_reason) {
        struct bundle_reader reader;
        struct bundle *b;
        int r = file_reader(fd, name, &reader, ret_reason);
        if (r >= 0)
                r = bundle_open_reader(&reader, name, NULL, 0, o, &b, ret_reason);
        if (r < 0)
                return r;
        b->fd = fd;
        *ret = b;
        return 0;
}

int bundle_open(const char *path, const struct bundle_verify_options *o, struct bundle **ret,
                char **ret_reason) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = negative_errno();
                return message_set(ret_reason, r, "%s: %s", path, strerror(-r));
        }
        /* Payloads are read front to back, in large pieces: a wider read-ahead. */
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        struct bundle *b;
        int r = bundle_open_fd(fd, path, o, &b, ret_reason);
        if (r < 0) {
                (void)close(fd);
                return r;
        }
        b->own_fd = true;
        *ret = b;
        return 0;
}

const struct manifest *bundle_manifest(const struct bundle *b) {
        return &b->manifest;
}

const struct signature_info *bundle_signer(const struct bundle *b) {
        return &b->signer;
}

int bundle_recheck_signature(const struct bundle *b, const struct signature_keyring *kr, time_t now,
                             bool now_is_lower_bound, char **ret_reason) {
        _cleanup_free_ char *why = NULL;
        if (!b->sig_text)
                return message_set(ret_reason, -EINVAL, "%s: no signature kept", b->name);
        int r = (now_is_lower_bound ? signature_verify_at_least : signature_verify)(
                SIGNATURE_FOR_BUNDLE, b->manifest_text, b->manifest_len, b->sig_text, b->sig_len, kr, now, NULL,
                &why);
        if (r < 0)
                return message_set(ret_reason, r, "%s: signature: %s", b->name, why ? why : "refused");
        return 0;
}

const char *bundle_manifest_text(const struct bundle *b, size_t *ret_len) {
        if (ret_len)
                *ret_len = b->manifest_len;
        return b->manifest_text;
}

const uint8_t *bundle_manifest_digest(const struct bundle *b) {
        return b->manifest_digest;
}

const struct bundle_reader *bundle_get_reader(const struct bundle *b) {
        return &b->reader;
}

/* ---- random access: where each payload starts in the file ---------------------------- */

#define TAR_BLOCK 512
#define TAR_PAX_MAX (64 * 1024)
#define TAR_MAX_HEADERS 128

static int tar_number(const uint8_t *field, size_t len, uint64_t *ret) {
        uint64_t v = 0;
        if (field[0] & 0x80) { /* base-256, for sizes of 8 GiB and more */
                if (field[0] != 0x80)
                        return -EBADMSG;
                for (size_t i = 1; i < len; i++) {
                        if (v >> 56)
                                return -EBADMSG;
                        v = v << 8 | field[i];
                }
                *ret = v;
                return 0;
        }
        size_t i = 0;
        while (i < len && field[i] == ' ')
                i++;
        bool digits = false;
        for (; i < len && field[i] >= '0' && field[i] <= '7'; i++) {
                if (v >> 60)
                        return -EBADMSG;
                v = v << 3 | (uint64_t) (field[i] - '0');
                digits = true;
        }
        for (; i < len; i++)
                if (field[i] != ' ' && field[i] != '\0')
                        return -EBADMSG;
        if (!digits)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static bool tar_header_checksum_ok(const uint8_t h[TAR_BLOCK]) {
        uint64_t want;
        if (tar_number(h + 148, 8, &want) < 0)
                return false;
        uint64_t sum = 0;
        for (size_t i = 0; i < TAR_BLOCK; i++)
                sum += (i >= 148 && i < 156) ? ' ' : h[i];
        return sum == want;
}

/* The data size of the plain ustar member whose header is at h (no pax: bundle_create
 * writes the manifest and signature members without one). */
static int tar_small_member_size(const uint8_t h[TAR_BLOCK], const char *name, uint64_t max,
                                 uint64_t *ret) {
        if (!tar_header_checksum_ok(h) || (h[156] != '0' && h[156] != '\0') ||
            strncmp((const char *) h, name, 100) != 0 || tar_number(h + 124, 12, ret) < 0 ||
            *ret > max)
                return -EBADMSG;
        return 0;
}

int bundle_head_length(const void *buf, size_t len, uint64_t *ret_len) {
        const uint8_t *p = buf;
        uint64_t msize, ssize;
        if (len < TAR_BLOCK) {
                *ret_len = TAR_BLOCK;
                return -EAGAIN;
        }
        if (tar_small_member_size(p, MANIFEST_MEMBER_NAME, MANIFEST_MAX_SIZE, &msize) < 0)
                return -EBADMSG;
        uint64_t sig_header = TAR_BLOCK + (msize + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        if (len < sig_header + TAR_BLOCK) {
                *ret_len = sig_header + TAR_BLOCK;
                return -EAGAIN;
        }
        if (tar_small_member_size(p + sig_header, SIGNATURE_MEMBER_NAME, SIGNATURE_MAX_SIZE, &ssize) < 0)
                return -EBADMSG;
        *ret_len = sig_header + TAR_BLOCK + (ssize + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        return len < *ret_len ? -EAGAIN : 0;
}

/* The "path" and "size" records of a pax extended header ("<len> key=value\n"...). */
static int tar_parse_pax(const char *data, size_t len, char *path, size_t path_size,
                         uint64_t *size, bool *have_size) {
        size_t pos = 0;
        while (pos < len) {
                char *end;
                errno = 0;
                unsigned long rec = strtoul(data + pos, &end, 10);
                if (errno || end == data + pos || *end != ' ' || rec == 0 || rec > len - pos)
                        return -EBADMSG;
                const char *kv = end + 1, *rec_end = data + pos + rec;
                if (rec_end[-1] != '\n' || kv >= rec_end)
                        return -EBADMSG;
                const char *eq = memchr(kv, '=', (size_t) (rec_end - kv));
                if (!eq)
                        return -EBADMSG;
                size_t klen = (size_t) (eq - kv), vlen = (size_t) (rec_end - 1 - (eq + 1));
                if (klen == 4 && memcmp(kv, "path", 4) == 0) {
                        if (vlen >= path_size)
                                return -ENAMETOOLONG;
                        memcpy(path, eq + 1, vlen);
                        path[vlen] = '\0';
                } else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
                        char num[32];
                        if (vlen == 0 || vlen >= sizeof(num))
                                return -EBADMSG;
                        memcpy(num, eq + 1, vlen);
                        num[vlen] = '\0';
                        errno = 0;
                        unsigned long long v = strtoull(num, &end, 10);
                        if (errno || *end || num[0] == '-')
                                return -EBADMSG;
                        *size = v;
                        *have_size = true;
                }
                pos += rec;
        }
        return 0;
}

/* Walks the tar headers through the bundle's reader. A reader's own failure (a link down, a
 * budget spent, a cancel) is passed on as it is, so the caller can wait and retry; only
 * what the bytes say is -EBADMSG. */
int bundle_locate_payloads(const struct bundle *b, uint64_t *ret_offsets, char **ret_reason) {
        const struct bundle_reader *rd = &b->reader;
        const struct manifest *m = &b->manifest;
        uint64_t pos = 0;
        size_t next = 0; /* members seen: 0 manifest, 1 signature, 2.. images */
        char pax_path[256] = "";
        uint64_t pax_size = 0;
        bool have_pax_size = false;
        for (unsigned h = 0; h < TAR_MAX_HEADERS && next < 2 + m->n_images; h++) {
                uint8_t hdr[TAR_BLOCK];
                int r = rd->pread(rd->userdata, pos, hdr, sizeof(hdr));
                if (r < 0)
                        return message_set(ret_reason, r == -ENODATA ? -EBADMSG : r,
                                           "%s: tar header at byte %" PRIu64 ": %s", b->name, pos,
                                           r == -ENODATA ? "file ends" : strerror(-r));
                if (!tar_header_checksum_ok(hdr))
                        return message_set(ret_reason, -EBADMSG,
                                           "%s: tar header at byte %" PRIu64 ": bad checksum",
                                           b->name, pos);
                uint64_t size;
                if (tar_number(hdr + 124, 12, &size) < 0 || size > (uint64_t) rd->size)
                        return message_set(ret_reason, -EBADMSG,
                                           "%s: tar header at byte %" PRIu64 ": bad size", b->name,
                                           pos);
                uint64_t data = pos + TAR_BLOCK;
                uint64_t padded = (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
                char type = (char) hdr[156];
                if (type == 'x' || type == 'g') {
                        if (size > TAR_PAX_MAX)
                                return message_set(ret_reason, -EBADMSG,
                                                   "%s: pax header at byte %" PRIu64 " too big",
                                                   b->name, pos);
                        if (type == 'x') {
                                _cleanup_free_ char *pax = malloc(size + 1);
                                if (!pax)
                                        return -ENOMEM;
                                r = rd->pread(rd->userdata, data, pax, size);
                                if (r < 0 && r != -ENODATA)
                                        return message_set(ret_reason, r,
                                                           "%s: pax header at byte %" PRIu64 ": %s",
                                                           b->name, pos, strerror(-r));
                                if (r >= 0)
                                        r = tar_parse_pax(pax, size, pax_path, sizeof(pax_path),
                                                          &pax_size, &have_pax_size);
                                if (r < 0)
                                        return message_set(ret_reason, -EBADMSG,
                                                           "%s: pax header at byte %" PRIu64
                                                           ": malformed",
                                                           b->name, pos);
                        }
                        pos = data + padded;
                        continue;
                }
                if (type != '0' && type != '\0')
                        return message_set(ret_reason, -EBADMSG,
                                           "%s: member at byte %" PRIu64 " is not a regular file",
                                           b->name, pos);
                char name[256];
                if (pax_path[0])
                        snprintf(name, sizeof(name), "%s", pax_path);
                else
                        snprintf(name, sizeof(name), "%.100s", (const char *) hdr);
                if (have_pax_size)
                        size = pax_size;
                padded = (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
                const char *want = next == 0   ? MANIFEST_MEMBER_NAME
                                   : next == 1 ? SIGNATURE_MEMBER_NAME
                                               : m->images[next - 2].file;
                if (!streq(name, want))
                        return message_set(ret_reason, -EBADMSG,
                                           "%s: member at byte %" PRIu64 " is \"%s\", expected \"%s\"",
                                           b->name, pos, name, want);
                if (next >= 2) {
                        const struct manifest_image *img = &m->images[next - 2];
                        if (size != img->size)
                                return message_set(ret_reason, -EBADMSG,
                                                   "%s: member %s holds %" PRIu64
                                                   " bytes, the manifest says %" PRIu64,
                                                   b->name, name, size, img->size);
                        if (data + size > (uint64_t) rd->size)
                                return message_set(ret_reason, -EBADMSG,
                                                   "%s: member %s: file ends early (truncated)",
                                                   b->name, name);
                        ret_offsets[next - 2] = data;
                }
                next++;
                pax_path[0] = '\0';
                have_pax_size = false;
                pos = data + padded;
        }
        if (next < 2 + m->n_images)
                return message_set(ret_reason, -EBADMSG, "%s: payloads not found", b->name);
        return 0;
}

/* Finish the current image: its whole hash must match. */
static int finish_image(struct bundle *b, const struct manifest_image *img, char **ret_reason) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        sha256_final(&b->image_hash, digest);
        b->member_open = false;
        if (memcmp(digest, img->sha256, SHA256_DIGEST_SIZE) != 0)
                return message_set(ret_reason, -EBADMSG,
                                  "%s: image %zu (%s, %s): the whole-image SHA-256 does not match "
                                  "the manifest",
                                  b->name, b->image, img->slot_class, img->file);
        b->image++;
        return 0;
}

static int next_chunk(struct bundle *b, struct bundle_chunk *ret, char **ret_reason) {
        int r;
        for (;;) {
                if (b->image >= b->manifest.n_images) {
                        struct archive_entry *e;
                        r = archive_read_next_header(b->archive, &e);
                        if (r == ARCHIVE_EOF) {
                                b->finished = true;
                                return 0;
                        }
                        if (r != ARCHIVE_OK)
                                return archive_failure(b, ret_reason,
                                                       "reading past the last image");
                        return message_set(
                                ret_reason, -EBADMSG,
                                "%s: unexpected member \"%s\" after the last image", b->name,
                                archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
                }
                const struct manifest_image *img = &b->manifest.images[b->image];
                if (!b->member_open) {
                        struct archive_entry *e;
                        r = next_header(b, &e, img->file, ret_reason);
                        if (r < 0)
                                return r;
                        r = check_member(b, e, img->file, img->size, 0, ret_reason);
                        if (r < 0)
                                return r;
                        sha256_init(&b->image_hash);
                        b->member_open = true;
                        b->next_chunk = 0;
                }
                if (b->next_chunk >= img->n_chunks) {
                        /* only for empty images: chunks finish their image themselves */
                        r = finish_image(b, img, ret_reason);
                        if (r < 0)
                                return r;
                        continue;
                }
                uint64_t index = b->next_chunk;
                size_t len = manifest_chunk_length(img, index);
                r = read_exactly(b, b->chunk_buf, len, img->file, ret_reason);
                if (r < 0)
                        return r;
                if (manifest_check_chunk(img, index, b->chunk_buf, len) < 0)
                        return message_set(
                                ret_reason, -EBADMSG,
                                "%s: image %zu (%s, %s): chunk %" PRIu64 " (bytes %" PRIu64
                                "-%" PRIu64 ") does not match its SHA-256 in the manifest",
                                b->name, b->image, img->slot_class, img->file, index,
                                index * img->chunk_size, index * img->chunk_size + len - 1);
                sha256_update(&b->image_hash, b->chunk_buf, len);
                b->next_chunk++;
                *ret = (struct bundle_chunk){
                        .image = b->image,
                        .index = index,
                        .offset = index * img->chunk_size,
                        .data = b->chunk_buf,
                        .len = len,
                        .last_in_image = b->next_chunk == img->n_chunks,
                };
                if (ret->last_in_image) {
                        r = finish_image(b, img, ret_reason);
                        if (r < 0)
                                return r;
                }
                return 1;
        }
}

int bundle_next_chunk(struct bundle *b, struct bundle_chunk *ret, char **ret_reason) {
        if (b->failed)
                return message_set(ret_reason, b->failed, "%s: already refused", b->name);
        if (b->finished)
                return 0;
        int r = next_chunk(b, ret, ret_reason);
        if (r < 0)
                b->failed = r;
        return r;
}

int bundle_verify_payloads(struct bundle *b, char **ret_reason) {
        struct bundle_chunk c;
        int r;
        while ((r = bundle_next_chunk(b, &c, ret_reason)) > 0)
                ;
        return r;
}

int bundle_read_unverified(const char *path, struct manifest *ret_manifest,
                           struct signature_info *ret_signer, char **ret_reason) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = negative_errno();
                return message_set(ret_reason, r, "%s: %s", path, strerror(-r));
        }
        struct bundle *b = NULL;
        _cleanup_free_ char *manifest_text = NULL, *sig = NULL, *message = NULL, *why = NULL;
        size_t manifest_len, sig_len;
        struct bundle_reader reader;
        int r = file_reader(fd, path, &reader, ret_reason);
        if (r >= 0)
                r = bundle_start(&reader, NULL, 0, path, &b, &manifest_text, &manifest_len, &sig,
                                 &sig_len, ret_reason);
        if (r >= 0) {
                r = manifest_parse_text(MANIFEST_MEMBER_NAME, manifest_text, manifest_len, 0,
                                        ret_manifest, &message);
                if (r < 0)
                        r = message_set(ret_reason, -EBADMSG, "%s: invalid manifest:\n%s", path,
                                       message ? message : "?");
        }
        if (r >= 0 && ret_signer) {
                r = signature_describe(sig, sig_len, ret_signer, &why);
                if (r < 0) {
                        manifest_free(ret_manifest);
                        r = message_set(ret_reason, r, "%s: %s", path,
                                       why ? why : "bad signature file");
                }
        }
        bundle_close(b);
        (void)close(fd);
        return r;
}

/* ---- writing ----------------------------------------------------------------------- */

static int image_file_name(const char *slot_class, char **ret) {
        char *name;
        if (streq(slot_class, "rootfs"))
                name = strdup("rootfs.img");
        else if (strncmp(slot_class, "model:", 6) == 0) {
                if (asprintf(&name, "model-%s.img", slot_class + 6) < 0)
                        name = NULL;
        } else if (strncmp(slot_class, "app:", 4) == 0) {
                if (asprintf(&name, "app-%s.tar", slot_class + 4) < 0)
                        name = NULL;
        } else
                return -EINVAL;
        if (!name)
                return -ENOMEM;
        if (!manifest_file_name_is_valid(name)) {
                free(name);
                return -EINVAL;
        }
        *ret = name;
        return 0;
}

/* Read up to len bytes; fewer only at end of file. */
static ssize_t read_full(int fd, void *buf, size_t len) {
        size_t got = 0;
        while (got < len) {
                ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

#define HASH_BLOCK (8u * 1024u * 1024u)

struct whole_job {
        struct sha256_ctx ctx;
        const uint8_t *data;
        size_t len;
};

static void *whole_main(void *userdata) {
        struct whole_job *w = userdata;
        sha256_update(&w->ctx, w->data, w->len);
        return NULL;
}

static int check_chunk_size(uint64_t chunk_size, char **ret_reason) {
        if (chunk_size < MANIFEST_CHUNK_SIZE_MIN || chunk_size > MANIFEST_CHUNK_SIZE_MAX ||
            chunk_size % MANIFEST_CHUNK_SIZE_MIN)
                return message_set(ret_reason, -EINVAL,
                                  "chunk size must be a multiple of %d between %d and %d",
                                  MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MIN,
                                  MANIFEST_CHUNK_SIZE_MAX);
        return 0;
}

/* An image to read: a regular file or a block device, and its size now. */
static int open_image(const char *path, int *ret_fd, uint64_t *ret_size, char **ret_reason) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                int r = negative_errno();
                return message_set(ret_reason, r, "%s: %s", path, strerror(-r));
        }
        uint64_t size = (uint64_t) st.st_size;
        if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
                        int r = negative_errno();
                        return message_set(ret_reason, r, "%s: its size: %s", path, strerror(-r));
                }
        } else if (!S_ISREG(st.st_mode))
                return message_set(ret_reason, -EINVAL, "%s: not a regular file or block device",
                                  path);
        /* Read front to back, in large pieces: a wider read-ahead. */
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        *ret_fd = TAKE_FD(fd);
        *ret_size = size;
        return 0;
}

struct read_job {
        int fd;
        uint8_t *buf;
        size_t len;
        ssize_t got;
};

static void *read_main(void *userdata) {
        struct read_job *r = userdata;
        r->got = read_full(r->fd, r->buf, r->len);
        return NULL;
}

struct write_job {
        int fd;
        const uint8_t *buf;
        size_t len;
        uint64_t offset;
        int result;
};

static void *write_main(void *userdata) {
        struct write_job *w = userdata;
        w->result = pwrite_all(w->fd, w->buf, w->len, w->offset);
        if (w->result >= 0) /* to the medium now: the final fsync has little left */
                (void) sync_file_range(w->fd, (off_t) w->offset, (off_t) w->len, SYNC_FILE_RANGE_WRITE);
        return NULL;
}

/* Run fn on a thread, or here when no thread can be had. */
static bool run_async(pthread_t *t, void *(*fn)(void *), void *arg) {
        if (pthread_create(t, NULL, fn, arg) == 0)
                return true;
        fn(arg);
        return false;
}

/*
 * One pass over an image, pipelined by blocks of several chunks: while block k's chunks
 * are hashed (this thread), its whole-image hash goes on (a thread) and, with out_fd >=
 * 0, it is written at out_offset (a thread), block k + 1 is read (a thread). What is
 * written is the very buffer that was hashed, so the bundle holds what its manifest
 * says even if the image changes meanwhile. img->chunk_size set; fills size, n_chunks,
 * chunks and sha256.
 */
static int hash_image_fd(int fd, const char *path, int out_fd, uint64_t out_offset, const char *out_name,
                         struct manifest_image *img, char **ret_reason) {
        uint64_t chunk_size = img->chunk_size;
        uint64_t per_block = chunk_size >= HASH_BLOCK ? 1 : HASH_BLOCK / chunk_size;
        size_t block = (size_t)(per_block * chunk_size);
        _cleanup_free_ uint8_t *buf0 = malloc(block), *buf1 = malloc(block);
        uint8_t *bufs[2] = {buf0, buf1};
        size_t capacity = 0;
        int r = 0;
        if (!buf0 || !buf1)
                return -ENOMEM;
        struct whole_job whole = {};
        sha256_init(&whole.ctx);
        ssize_t n = read_full(fd, bufs[0], block);
        for (unsigned cur = 0; n > 0 && r >= 0; cur ^= 1) {
                uint8_t *buf = bufs[cur];
                bool more = (size_t)n == block;
                struct read_job next = {.fd = fd, .buf = bufs[cur ^ 1], .len = block};
                struct write_job w = {.fd = out_fd, .buf = buf, .len = (size_t)n, .offset = out_offset + img->size};
                pthread_t t_read, t_whole, t_write;
                bool a_read = more && run_async(&t_read, read_main, &next);
                whole.data = buf;
                whole.len = (size_t)n;
                bool a_whole = run_async(&t_whole, whole_main, &whole);
                bool a_write = out_fd >= 0 && run_async(&t_write, write_main, &w);
                for (size_t off = 0; off < (size_t)n; off += chunk_size) {
                        size_t len = (size_t)n - off < chunk_size ? (size_t)n - off : (size_t)chunk_size;
                        if (img->n_chunks >= MANIFEST_MAX_CHUNKS) {
                                r = message_set(ret_reason, -EFBIG,
                                               "%s: more than %d chunks; use a larger chunk size", path,
                                               MANIFEST_MAX_CHUNKS);
                                break;
                        }
                        if (img->n_chunks == capacity) {
                                size_t c = capacity ? capacity * 2 : 64;
                                void *p = realloc(img->chunks, c * SHA256_DIGEST_SIZE);
                                if (!p) {
                                        r = -ENOMEM;
                                        break;
                                }
                                img->chunks = p;
                                capacity = c;
                        }
                        sha256_buffer(buf + off, len, img->chunks[img->n_chunks++]);
                        img->size += len;
                }
                if (a_whole)
                        (void)pthread_join(t_whole, NULL);
                if (a_write)
                        (void)pthread_join(t_write, NULL);
                if (a_read)
                        (void)pthread_join(t_read, NULL);
                if (r >= 0 && out_fd >= 0 && w.result < 0)
                        r = message_set(ret_reason, w.result, "%s: %s", out_name, strerror(-w.result));
                n = more ? next.got : 0;
        }
        if (r >= 0 && n < 0)
                r = message_set(ret_reason, (int)n, "%s: %s", path, strerror((int)-n));
        sha256_final(&whole.ctx, img->sha256);
        return r;
}

int bundle_hash_image(const char *path, const char *slot_class, uint64_t chunk_size,
                      struct manifest_image *ret, char **ret_reason) {
        if (!manifest_slot_class_is_valid(slot_class))
                return message_set(ret_reason, -EINVAL,
                                  "\"%s\" is not a slot class (rootfs, model:<name>, app:<name>)", slot_class);
        int r = check_chunk_size(chunk_size, ret_reason);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = -1;
        uint64_t size;
        r = open_image(path, &fd, &size, ret_reason);
        if (r < 0)
                return r;
        struct manifest_image img = {.chunk_size = chunk_size};
        r = image_file_name(slot_class, &img.file);
        if (r < 0)
                return message_set(ret_reason, r, "\"%s\": cannot make a member name from it",
                                  slot_class);
        img.slot_class = strdup(slot_class);
        r = img.slot_class ? hash_image_fd(fd, path, -1, 0, NULL, &img, ret_reason) : -ENOMEM;
        if (r < 0) {
                free(img.slot_class);
                free(img.file);
                free(img.chunks);
                return r;
        }
        *ret = img;
        return 0;
}

/* ---- the tar a bundle is: written by hand, in one pass over each image ---------------- */

#define TAR_ALIGN 4096        /* each image's data starts on a page */
#define SIG_SLACK 256         /* room for a signature longer than the trial one */
#define USTAR_SIZE_MAX 077777777777ULL

static uint64_t pad512(uint64_t n) {
        return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

/* A ustar header (reproducible: mode 0644, owner 0, mtime 0); sizes past ustar's octal
 * field carry a pax size record instead (see pax_padding). */
static void tar_header(uint8_t h[TAR_BLOCK], const char *name, uint64_t size, char type) {
        memset(h, 0, TAR_BLOCK);
        snprintf((char *) h, 100, "%s", name);
        memcpy(h + 100, "0000644", 8);
        memcpy(h + 108, "0000000", 8);
        memcpy(h + 116, "0000000", 8);
        snprintf((char *) h + 124, 12, "%011llo", (unsigned long long) (size <= USTAR_SIZE_MAX ? size : 0));
        memcpy(h + 136, "00000000000", 12);
        h[156] = (uint8_t) type;
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (size_t i = 0; i < TAR_BLOCK; i++)
                sum += h[i];
        snprintf((char *) h + 148, 8, "%06o", sum);
}

static size_t decimal_digits(size_t n) {
        size_t d = 1;
        while (n >= 10) {
                n /= 10;
                d++;
        }
        return d;
}

/* One pax record "<len> <key>=<value>\n", len counting itself. value NULL: a filler value
 * ('0's) that makes the record exactly want_len bytes. Returns the length, 0 if too short. */
static size_t pax_record(char *out, const char *key, const char *value, size_t want_len) {
        size_t body = strlen(key) + 3 + (value ? strlen(value) : 0); /* ' ', '=', '\n' */
        size_t len = want_len;
        if (value)
                for (len = body + 1; len != body + decimal_digits(len);)
                        len = body + decimal_digits(len);
        else if (len < body + decimal_digits(len))
                return 0;
        int n = sprintf(out, "%zu %s=", len, key);
        if (value)
                n += sprintf(out + n, "%s", value);
        else {
                memset(out + n, '0', len - (size_t) n - 1);
                n = (int) len - 1;
        }
        out[n] = '\n';
        return len;
}

/*
 * The pax extended header before an image member: it fills the space between the end of
 * the member before and the image's page-aligned data (a comment, which readers ignore),
 * and carries the name and size of an image too long for ustar's fields. data_len: a
 * multiple of 512, at least 512.
 */
static int pax_padding(uint8_t *out, size_t data_len, const char *name, uint64_t image_size) {
        char *p = (char *) out + TAR_BLOCK;
        size_t used = 0;
        if (strlen(name) > 99)
                used += pax_record(p + used, "path", name, 0);
        if (image_size > USTAR_SIZE_MAX) {
                char v[32];
                snprintf(v, sizeof(v), "%llu", (unsigned long long) image_size);
                used += pax_record(p + used, "size", v, 0);
        }
        if (data_len < used + 16 || pax_record(p + used, "comment", NULL, data_len - used) != data_len - used)
                return -EINVAL;
        tar_header(out, "PaxHeader", data_len, 'x');
        return 0;
}

/* A member's header and data (padded) at offset off of fd. */
static int write_member(int fd, uint64_t off, const char *name, const void *data, size_t len) {
        uint8_t *b = calloc(1, TAR_BLOCK + pad512(len));
        if (!b)
                return -ENOMEM;
        tar_header(b, name, len, '0');
        memcpy(b + TAR_BLOCK, data, len);
        int r = pwrite_all(fd, b, TAR_BLOCK + pad512(len), off);
        free(b);
        return r;
}

static int copy_template(const struct manifest *t, struct manifest *m) {
        *m = (struct manifest){.format = MANIFEST_FORMAT, .security_version = t->security_version,
                            .rollback_floor = t->rollback_floor, .has_rollback_floor = t->has_rollback_floor};
        m->bundle_id = strdup(t->bundle_id);
        m->version = strdup(t->version);
        m->description = t->description ? strdup(t->description) : NULL;
        m->compatible = calloc(t->n_compatible + 1, sizeof(char *));
        if (!m->bundle_id || !m->version || (t->description && !m->description) || !m->compatible)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_compatible; i++) {
                if (!(m->compatible[i] = strdup(t->compatible[i])))
                        return -ENOMEM;
                m->n_compatible++;
        }
        return 0;
}

int bundle_create(const char *output, const struct manifest *manifest_template,
                  const struct bundle_image_source *images, size_t n_images, uint64_t chunk_size,
                  const char *key_path, const char *cert_path, char **ret_reason) {
        struct manifest m = {0};
        _cleanup_free_ char *text = NULL, *sig = NULL, *tmp = NULL, *trial_text = NULL, *trial_sig = NULL;
        size_t text_len = 0, sig_len = 0, trial_len = 0, trial_sig_len = 0;
        int fds[MANIFEST_MAX_IMAGES];
        uint64_t data_off[MANIFEST_MAX_IMAGES], pax_off[MANIFEST_MAX_IMAGES];
        int fd = -1;
        int r;

        for (size_t i = 0; i < MANIFEST_MAX_IMAGES; i++)
                fds[i] = -1;
        if (n_images == 0 || n_images > MANIFEST_MAX_IMAGES)
                return message_set(ret_reason, -EINVAL, "a bundle holds 1-%d images",
                                  MANIFEST_MAX_IMAGES);
        r = check_chunk_size(chunk_size, ret_reason);
        if (r < 0)
                return r;
        r = copy_template(manifest_template, &m);
        if (r < 0)
                goto done;
        m.images = calloc(n_images, sizeof(struct manifest_image));
        if (!m.images) {
                r = -ENOMEM;
                goto done;
        }
        /* Each image's size now, and its manifest entry with placeholder hashes: the
         * manifest's length does not depend on the hashes, so the layout is known before
         * a byte is read, and each image is read once, hashed and written as it is read. */
        for (size_t i = 0; i < n_images; i++) {
                struct manifest_image *img = &m.images[i];
                for (size_t k = 0; k < i; k++)
                        if (streq(images[k].slot_class, images[i].slot_class)) {
                                r = message_set(ret_reason, -EINVAL, "slot class %s given twice",
                                               images[i].slot_class);
                                goto done;
                        }
                if (!manifest_slot_class_is_valid(images[i].slot_class)) {
                        r = message_set(ret_reason, -EINVAL,
                                        "\"%s\" is not a slot class (rootfs, model:<name>)",
                                        images[i].slot_class);
                        goto done;
                }
                uint64_t size;
                r = open_image(images[i].path, &fds[i], &size, ret_reason);
                if (r < 0)
                        goto done;
                m.n_images++;
                img->chunk_size = chunk_size;
                img->size = size;
                img->n_chunks = (size + chunk_size - 1) / chunk_size;
                if (img->n_chunks > MANIFEST_MAX_CHUNKS) {
                        r = message_set(ret_reason, -EFBIG, "%s: more than %d chunks; use a larger chunk size",
                                        images[i].path, MANIFEST_MAX_CHUNKS);
                        goto done;
                }
                img->slot_class = strdup(images[i].slot_class);
                img->chunks = calloc(img->n_chunks ? img->n_chunks : 1, SHA256_DIGEST_SIZE);
                r = image_file_name(images[i].slot_class, &img->file);
                if (r < 0 || !img->slot_class || !img->chunks) {
                        r = r < 0 ? message_set(ret_reason, r, "\"%s\": cannot make a member name from it",
                                                images[i].slot_class) : -ENOMEM;
                        goto done;
                }
        }
        r = manifest_format(&m, &trial_text, &trial_len);
        if (r < 0) {
                r = message_set(ret_reason, r, "cannot render the manifest");
                goto done;
        }
        /* the signature's length: a trial signature, and some room */
        r = signature_sign(SIGNATURE_FOR_BUNDLE, trial_text, trial_len, key_path, cert_path, &trial_sig, &trial_sig_len,
                           ret_reason);
        if (r < 0)
                goto done;
        uint64_t off = TAR_BLOCK + pad512(trial_len) + TAR_BLOCK + pad512(trial_sig_len + SIG_SLACK);
        for (size_t i = 0; i < n_images; i++) {
                /* a pax header and at least one block of its data (two: room for a long
                 * name), then the image header */
                uint64_t d = off + 4 * TAR_BLOCK;
                data_off[i] = (d + TAR_ALIGN - 1) / TAR_ALIGN * TAR_ALIGN;
                pax_off[i] = off; /* image 0's moves up to the signature's real end */
                off = data_off[i] + pad512(m.images[i].size);
        }

        if (asprintf(&tmp, "%s.tmp", output) < 0) {
                r = -ENOMEM;
                goto done;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
        if (fd < 0) {
                r = negative_errno();
                r = message_set(ret_reason, r, "%s: %s", tmp, strerror(-r));
                goto done;
        }
        for (size_t i = 0; i < n_images; i++) {
                struct manifest_image *img = &m.images[i];
                uint64_t size = img->size;
                img->size = img->n_chunks = 0;
                r = hash_image_fd(fds[i], images[i].path, fd, data_off[i], tmp, img, ret_reason);
                if (r < 0)
                        goto done;
                uint8_t extra;
                if (img->size != size || read_full(fds[i], &extra, 1) != 0) {
                        r = message_set(ret_reason, -EAGAIN, "%s changed while the bundle was written",
                                        images[i].path);
                        goto done;
                }
        }
        r = manifest_format(&m, &text, &text_len);
        if (r < 0) {
                r = message_set(ret_reason, r, "cannot render the manifest");
                goto done;
        }
        /* Our own output must pass our own parser, or no node would accept it. */
        {
                struct manifest check;
                _cleanup_free_ char *message = NULL;
                r = manifest_parse_text(MANIFEST_MEMBER_NAME, text, text_len, 0, &check, &message);
                if (r < 0) {
                        r = message_set(ret_reason, -EINVAL, "generated manifest is invalid:\n%s",
                                       message ? message : "?");
                        goto done;
                }
                manifest_free(&check);
        }
        r = signature_sign(SIGNATURE_FOR_BUNDLE, text, text_len, key_path, cert_path, &sig, &sig_len, ret_reason);
        if (r < 0)
                goto done;
        if (text_len != trial_len || sig_len > trial_sig_len + SIG_SLACK) {
                r = message_set(ret_reason, -EIO, "the manifest (%zu bytes, %zu planned) or signature "
                                "(%zu bytes, %zu planned) outgrew its place", text_len, trial_len,
                                sig_len, trial_sig_len + SIG_SLACK);
                goto done;
        }
        pax_off[0] = TAR_BLOCK + pad512(text_len) + TAR_BLOCK + pad512(sig_len);
        r = write_member(fd, 0, MANIFEST_MEMBER_NAME, text, text_len);
        if (r >= 0)
                r = write_member(fd, TAR_BLOCK + pad512(text_len), SIGNATURE_MEMBER_NAME, sig, sig_len);
        for (size_t i = 0; r >= 0 && i < n_images; i++) {
                /* the pax header, its data, the image's header; then the data's padding */
                size_t len = (size_t) (data_off[i] - pax_off[i]);
                uint8_t *b = calloc(1, len);
                if (!b) {
                        r = -ENOMEM;
                        break;
                }
                r = pax_padding(b, len - 2 * TAR_BLOCK, m.images[i].file, m.images[i].size);
                if (r >= 0) {
                        tar_header(b + len - TAR_BLOCK, m.images[i].file, m.images[i].size, '0');
                        r = pwrite_all(fd, b, len, pax_off[i]);
                }
                free(b);
                uint64_t end = data_off[i] + m.images[i].size, padded = data_off[i] + pad512(m.images[i].size);
                static const uint8_t zeros[2 * TAR_BLOCK];
                if (r >= 0 && padded > end)
                        r = pwrite_all(fd, zeros, (size_t) (padded - end), end);
                if (r >= 0 && i == n_images - 1) /* the end of the archive: two zero blocks */
                        r = pwrite_all(fd, zeros, sizeof(zeros), padded);
        }
        if (r < 0) {
                r = message_set(ret_reason, r, "%s: %s", tmp, strerror(-r));
                goto done;
        }
        if (fsync(fd) < 0 || close(TAKE_FD(fd)) < 0) {
                r = negative_errno();
                r = message_set(ret_reason, r, "%s: %s", tmp, strerror(-r));
                goto done;
        }
        if (rename(tmp, output) < 0) {
                r = negative_errno();
                r = message_set(ret_reason, r, "rename %s to %s: %s", tmp, output, strerror(-r));
                goto done;
        }
        (void)fsync_parent_dir(output);
        r = 0;
done:
        for (size_t i = 0; i < MANIFEST_MAX_IMAGES; i++)
                if (fds[i] >= 0)
                        (void)close(fds[i]);
        if (fd >= 0)
                (void)close(fd);
        if (r < 0 && tmp)
                (void)unlink(tmp);
        manifest_free(&m);
        return r;
}
