/* Bundle manifests: strict parsing and canonical writing of the signed JSON (pure). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ident.h"
#include "update/manifest.h"
#include "lib/message.h"

/* ---- names and versions ------------------------------------------------------------ */

/* 1-MANIFEST_NAME_MAX of A-Z a-z 0-9 . _ -, not starting with '.' or '-'. */
static bool name_is_valid(const char *s) {
        return ident_is_valid(s, MANIFEST_NAME_MAX, 0);
}

bool manifest_file_name_is_valid(const char *s) {
        if (!name_is_valid(s))
                return false;
        /* The two members that are not payloads cannot be images. */
        return !streq(s, MANIFEST_MEMBER_NAME) && !streq(s, SIGNATURE_MEMBER_NAME);
}

bool manifest_slot_class_is_valid(const char *s) {
        if (!s)
                return false;
        if (streq(s, "rootfs"))
                return true;
        if (strncmp(s, "model:", 6) == 0)
                return name_is_valid(s + 6);
        /* an app's name is also what a workload spec names (at most 64 characters there) */
        if (strncmp(s, "app:", 4) == 0)
                return ident_is_valid(s + 4, MANIFEST_APP_NAME_MAX, 0);
        return false;
}

/* One numeric semver identifier: digits, no leading zero (except "0"). */
static bool numeric_identifier(const char *s, size_t n) {
        if (n == 0 || n > 18)
                return false;
        if (n > 1 && s[0] == '0')
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static bool is_alnum_hyphen(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-';
}

/* Dot-separated identifiers of [0-9A-Za-z-]; numeric ones without leading zeros if strict. */
static bool identifiers_valid(const char *s, size_t n, bool strict_numeric) {
        size_t start = 0;
        if (n == 0)
                return false;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.') {
                        if (!is_alnum_hyphen(s[i]))
                                return false;
                        continue;
                }
                size_t len = i - start;
                if (len == 0)
                        return false;
                bool all_digits = true;
                for (size_t k = start; k < i; k++)
                        if (s[k] < '0' || s[k] > '9')
                                all_digits = false;
                if (strict_numeric && all_digits && len > 1 && s[start] == '0')
                        return false;
                start = i + 1;
        }
        return true;
}

struct semver {
        uint64_t core[3];
        const char *pre; /* NULL when absent */
        size_t pre_len;
};

static int semver_parse(const char *s, struct semver *ret) {
        if (!s || strlen(s) > MANIFEST_NAME_MAX)
                return -EINVAL;
        struct semver v = {0};
        const char *p = s;
        for (int i = 0; i < 3; i++) {
                size_t n = strspn(p, "0123456789");
                if (!numeric_identifier(p, n))
                        return -EINVAL;
                v.core[i] = strtoull(p, NULL, 10);
                p += n;
                if (i < 2) {
                        if (*p != '.')
                                return -EINVAL;
                        p++;
                }
        }
        if (*p == '-') {
                p++;
                size_t n = strcspn(p, "+");
                if (!identifiers_valid(p, n, true))
                        return -EINVAL;
                v.pre = p;
                v.pre_len = n;
                p += n;
        }
        if (*p == '+') {
                p++;
                if (!identifiers_valid(p, strlen(p), false))
                        return -EINVAL;
                p += strlen(p);
        }
        if (*p)
                return -EINVAL;
        *ret = v;
        return 0;
}

bool manifest_version_is_valid(const char *s) {
        struct semver v;
        return semver_parse(s, &v) >= 0;
}

static int compare_u64(uint64_t a, uint64_t b) {
        return a < b ? -1 : a > b ? 1 : 0;
}

/* semver.org rule 11: identifiers compared one by one; numeric < alphanumeric. */
static int compare_prerelease(const char *a, size_t an, const char *b, size_t bn) {
        size_t i = 0, j = 0;
        for (;;) {
                if (i >= an && j >= bn)
                        return 0;
                if (i >= an)
                        return -1; /* fewer identifiers: lower */
                if (j >= bn)
                        return 1;
                size_t ie = i, je = j;
                while (ie < an && a[ie] != '.')
                        ie++;
                while (je < bn && b[je] != '.')
                        je++;
                bool a_num = numeric_identifier(a + i, ie - i);
                bool b_num = numeric_identifier(b + j, je - j);
                int c;
                if (a_num && b_num)
                        c = compare_u64(strtoull(a + i, NULL, 10), strtoull(b + j, NULL, 10));
                else if (a_num != b_num)
                        c = a_num ? -1 : 1;
                else {
                        size_t la = ie - i, lb = je - j;
                        c = memcmp(a + i, b + j, la < lb ? la : lb);
                        if (c == 0)
                                c = compare_u64(la, lb);
                        c = c < 0 ? -1 : c > 0 ? 1 : 0;
                }
                if (c != 0)
                        return c;
                i = ie + 1;
                j = je + 1;
                if (ie >= an)
                        i = an;
                if (je >= bn)
                        j = bn;
        }
}

int manifest_version_compare(const char *a, const char *b, int *ret) {
        struct semver va, vb;
        if (semver_parse(a, &va) < 0 || semver_parse(b, &vb) < 0)
                return -EINVAL;
        for (int i = 0; i < 3; i++) {
                int c = compare_u64(va.core[i], vb.core[i]);
                if (c != 0) {
                        *ret = c;
                        return 0;
                }
        }
        if (!va.pre || !vb.pre)
                *ret = va.pre ? -1 : vb.pre ? 1 : 0; /* a pre-release is below its release */
        else
                *ret = compare_prerelease(va.pre, va.pre_len, vb.pre, vb.pre_len);
        return 0;
}

/* ---- chunks ------------------------------------------------------------------------ */

uint64_t manifest_chunk_count(uint64_t size, uint64_t chunk_size) {
        if (chunk_size == 0)
                return 0;
        return size / chunk_size + (size % chunk_size ? 1 : 0);
}

size_t manifest_chunk_length(const struct manifest_image *img, uint64_t index) {
        if (index >= img->n_chunks)
                return 0;
        uint64_t offset = index * img->chunk_size;
        uint64_t left = img->size - offset;
        return (size_t) (left < img->chunk_size ? left : img->chunk_size);
}

int manifest_check_chunk(const struct manifest_image *img, uint64_t index, const void *data,
                         size_t len) {
        if (index >= img->n_chunks || len != manifest_chunk_length(img, index))
                return -EBADMSG;
        uint8_t digest[SHA256_DIGEST_SIZE];
        sha256_buffer(data, len, digest);
        return memcmp(digest, img->chunks[index], SHA256_DIGEST_SIZE) == 0 ? 0 : -EBADMSG;
}

/* ---- policy ------------------------------------------------------------------------ */

bool manifest_is_compatible(const struct manifest *m, const char *hardware) {
        if (!hardware)
                return false;
        for (size_t i = 0; i < m->n_compatible; i++)
                if (streq(m->compatible[i], hardware))
                        return true;
        return false;
}

int manifest_check_policy(const struct manifest *m, const char *hardware,
                          uint64_t min_security_version, char **ret_reason) {
        if (hardware && !manifest_is_compatible(m, hardware))
                return message_set(
                        ret_reason, -ENOTSUP,
                        "incompatible hardware: this node is \"%s\", the bundle is for %s%s%s",
                        hardware, m->n_compatible ? "\"" : "",
                        m->n_compatible ? m->compatible[0] : "nothing",
                        m->n_compatible > 1 ? "\" and others" : "\"");
        if (m->security_version < min_security_version)
                return message_set(ret_reason, -EPERM,
                                   "rollback refused: security_version %" PRIu64
                                   " is below this node's minimum %" PRIu64,
                                   m->security_version, min_security_version);
        return 0;
}

const struct manifest_image *manifest_find_image(const struct manifest *m, const char *slot_class) {
        for (size_t i = 0; i < m->n_images; i++)
                if (streq(m->images[i].slot_class, slot_class))
                        return &m->images[i];
        return NULL;
}

/* ---- parsing ----------------------------------------------------------------------- */

static int dispatch_format(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (!json_is_integer(v) || json_integer_value(v) != MANIFEST_FORMAT)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unsupported manifest format (this build reads format %d)",
                                        MANIFEST_FORMAT);
        *(int64_t *) dest = MANIFEST_FORMAT;
        return 0;
}

static int dispatch_name(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_string(v) || !name_is_valid(json_string_value(v)))
                return json_ctx_problem(
                        ctx, JSON_AT_VALUE,
                        "expected a name of 1-%d of A-Z a-z 0-9 . _ -, not starting with . or -",
                        MANIFEST_NAME_MAX);
        return json_dispatch_string(ctx, v, dest, f);
}

static int dispatch_version(struct json_ctx *ctx, json_t *v, void *dest,
                            const struct json_field *f) {
        if (!json_is_string(v) || !manifest_version_is_valid(json_string_value(v)))
                return json_ctx_problem(
                        ctx, JSON_AT_VALUE,
                        "expected a semantic version such as \"1.4.0\" or \"2.0.0-rc.1\"");
        return json_dispatch_string(ctx, v, dest, f);
}

static int dispatch_uint64(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a non-negative integer, got %s",
                                        json_is_integer(v) ? "a negative one" : json_type_name(v));
        *(uint64_t *) dest = (uint64_t) json_integer_value(v);
        return 0;
}

/* Checked against security_version after the whole object (the order of keys is free). */
static int dispatch_rollback_floor(struct json_ctx *ctx, json_t *v, void *dest,
                                   const struct json_field *f) {
        int r = dispatch_uint64(ctx, v, dest, f);
        if (r >= 0)
                ((struct manifest *) ((char *) dest - offsetof(struct manifest, rollback_floor)))
                        ->has_rollback_floor = true;
        return r;
}

static int dispatch_chunk_size(struct json_ctx *ctx, json_t *v, void *dest,
                               const struct json_field *f) {
        int r = dispatch_uint64(ctx, v, dest, f);
        if (r < 0)
                return r;
        uint64_t c = *(uint64_t *) dest;
        if (c < MANIFEST_CHUNK_SIZE_MIN || c > MANIFEST_CHUNK_SIZE_MAX ||
            c % MANIFEST_CHUNK_SIZE_MIN)
                return json_ctx_problem(
                        ctx, JSON_AT_VALUE,
                        "chunk_size must be a multiple of %d between %d and %d bytes",
                        MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MAX);
        return 0;
}

static int dispatch_sha256(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (!json_is_string(v) || json_string_length(v) != 2 * SHA256_DIGEST_SIZE ||
            sha256_from_hex(json_string_value(v), dest) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a SHA-256 as 64 hex digits");
        return 0;
}

static int dispatch_slot_class(struct json_ctx *ctx, json_t *v, void *dest,
                               const struct json_field *f) {
        if (!json_is_string(v) || !manifest_slot_class_is_valid(json_string_value(v)))
                return json_ctx_problem(
                        ctx, JSON_AT_VALUE,
                        "expected a slot class: \"rootfs\", \"model:<name>\" or \"app:<name>\"");
        return json_dispatch_string(ctx, v, dest, f);
}

static int dispatch_file(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_string(v) || !manifest_file_name_is_valid(json_string_value(v)))
                return json_ctx_problem(
                        ctx, JSON_AT_VALUE,
                        "expected a plain file name (1-%d of A-Z a-z 0-9 . _ -, not starting "
                        "with . or -, not manifest.json or manifest.sig)",
                        MANIFEST_NAME_MAX);
        return json_dispatch_string(ctx, v, dest, f);
}

/* The arrays below go through json_dispatch_array: its type and size checks, its path. */
static int chunk_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        uint8_t(*chunks)[SHA256_DIGEST_SIZE] = userdata;
        return dispatch_sha256(ctx, e, chunks[index], NULL);
}

static int dispatch_chunks(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        struct manifest_image *img = dest;
        size_t n = json_is_array(v) ? json_array_size(v) : 0;
        _cleanup_free_ uint8_t(*chunks)[SHA256_DIGEST_SIZE] = NULL;
        if (n <= MANIFEST_MAX_CHUNKS && !(chunks = calloc(n ? n : 1, SHA256_DIGEST_SIZE)))
                return -ENOMEM;
        int r = json_dispatch_array(ctx, v, "an array of SHA-256 hex strings", MANIFEST_MAX_CHUNKS,
                                    "chunks", chunk_element, chunks);
        if (r < 0)
                return r;
        free(img->chunks);
        img->chunks = TAKE_PTR(chunks);
        img->n_chunks = n;
        return 0;
}

#define IOFF(m) offsetof(struct manifest_image, m)

static const struct json_field image_fields[] = {
        {"slot_class", dispatch_slot_class, IOFF(slot_class), JSON_REQUIRED, NULL, 0, 0},
        {"file", dispatch_file, IOFF(file), JSON_REQUIRED, NULL, 0, 0},
        {"size", dispatch_uint64, IOFF(size), JSON_REQUIRED, NULL, 0, 0},
        {"sha256", dispatch_sha256, IOFF(sha256), JSON_REQUIRED, NULL, 0, 0},
        {"chunk_size", dispatch_chunk_size, IOFF(chunk_size), JSON_REQUIRED, NULL, 0, 0},
        {"chunks", dispatch_chunks, 0, JSON_REQUIRED, NULL, 0, 0},
        {},
};

static void image_free(struct manifest_image *img) {
        free(img->slot_class);
        free(img->file);
        free(img->chunks);
        memset(img, 0, sizeof(*img));
}

static int check_image(struct json_ctx *ctx, const struct manifest *m,
                       const struct manifest_image *img, size_t index) {
        uint64_t expected = manifest_chunk_count(img->size, img->chunk_size);
        int result = 0;
        if (img->n_chunks != expected) {
                json_ctx_push_key(ctx, "chunks");
                result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                          "%" PRIu64 " chunk hashes, but size %" PRIu64
                                          " in chunks of %" PRIu64 " needs %" PRIu64,
                                          img->n_chunks, img->size, img->chunk_size, expected);
                json_ctx_pop(ctx);
        }
        for (size_t k = 0; k < index; k++) {
                /* earlier images that failed may lack fields: compare only what is set */
                if (m->images[k].slot_class && streq(m->images[k].slot_class, img->slot_class)) {
                        json_ctx_push_key(ctx, "slot_class");
                        result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                  "slot class \"%s\" appears twice",
                                                  img->slot_class);
                        json_ctx_pop(ctx);
                }
                if (m->images[k].file && streq(m->images[k].file, img->file)) {
                        json_ctx_push_key(ctx, "file");
                        result = json_ctx_problem(ctx, JSON_AT_VALUE, "file \"%s\" appears twice",
                                                  img->file);
                        json_ctx_pop(ctx);
                }
        }
        return result;
}

static int image_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct manifest *m = userdata;
        struct manifest_image *img = &m->images[index];
        int r = json_dispatch_object(ctx, e, image_fields, img);
        m->n_images = index + 1; /* so manifest_free frees what was set */
        return r < 0 ? r : check_image(ctx, m, img, index);
}

static int dispatch_images(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        struct manifest *m = dest;
        size_t n = json_is_array(v) ? json_array_size(v) : 0;
        if (json_is_array(v) && n == 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "a bundle needs at least one image");
        if (n > 0 && n <= MANIFEST_MAX_IMAGES &&
            !(m->images = calloc(n, sizeof(struct manifest_image))))
                return -ENOMEM;
        return json_dispatch_array(ctx, v, "an array of images", MANIFEST_MAX_IMAGES, "images",
                                   image_element, m);
}

static int compatible_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct manifest *m = userdata;
        static const struct json_field any_length = {0};
        char **name = &m->compatible[m->n_compatible];
        int r = dispatch_name(ctx, e, name, &any_length);
        if (r < 0)
                return r;
        for (size_t k = 0; k < m->n_compatible; k++)
                if (streq(m->compatible[k], *name)) {
                        free(*name);
                        *name = NULL;
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "listed twice");
                }
        m->n_compatible++;
        return 0;
}

static int dispatch_compatible(struct json_ctx *ctx, json_t *v, void *dest,
                               const struct json_field *f) {
        struct manifest *m = dest;
        size_t n = json_is_array(v) ? json_array_size(v) : 0;
        if (json_is_array(v) && n == 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "must name at least one hardware");
        if (n > 0 && n <= MANIFEST_MAX_COMPATIBLE &&
            !(m->compatible = calloc(n + 1, sizeof(char *))))
                return -ENOMEM;
        return json_dispatch_array(ctx, v, "an array of hardware names", MANIFEST_MAX_COMPATIBLE,
                                   "entries", compatible_element, m);
}

static int dispatch_description(struct json_ctx *ctx, json_t *v, void *dest,
                                const struct json_field *f) {
        if (json_is_string(v) && json_string_length(v) > 1024)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "longer than 1024 bytes");
        return json_dispatch_string(ctx, v, dest, f);
}

#define OFF(m) offsetof(struct manifest, m)

static const struct json_field manifest_fields[] = {
        {"format", dispatch_format, OFF(format), JSON_REQUIRED, NULL, 0, 0},
        {"bundle_id", dispatch_name, OFF(bundle_id), JSON_REQUIRED, NULL, 0, 0},
        {"version", dispatch_version, OFF(version), JSON_REQUIRED, NULL, 0, 0},
        {"security_version", dispatch_uint64, OFF(security_version), JSON_REQUIRED, NULL, 0, 0},
        {"rollback_floor", dispatch_rollback_floor, OFF(rollback_floor), 0, NULL, 0, 0},
        {"description", dispatch_description, OFF(description), 0, NULL, 0, 0},
        {"compatible", dispatch_compatible, 0, JSON_REQUIRED, NULL, 0, 0},
        {"images", dispatch_images, 0, JSON_REQUIRED, NULL, 0, 0},
        {},
};

/* A template is a manifest without images; create hashes the payloads and adds them. */
static const struct json_field template_fields[] = {
        {"format", dispatch_format, OFF(format), 0, NULL, 0, 0},
        {"bundle_id", dispatch_name, OFF(bundle_id), JSON_REQUIRED, NULL, 0, 0},
        {"version", dispatch_version, OFF(version), JSON_REQUIRED, NULL, 0, 0},
        {"security_version", dispatch_uint64, OFF(security_version), JSON_REQUIRED, NULL, 0, 0},
        {"rollback_floor", dispatch_rollback_floor, OFF(rollback_floor), 0, NULL, 0, 0},
        {"description", dispatch_description, OFF(description), 0, NULL, 0, 0},
        {"compatible", dispatch_compatible, 0, JSON_REQUIRED, NULL, 0, 0},
        {},
};

int manifest_parse(const char *source, const char *text, size_t len, unsigned flags,
                   struct manifest *ret, struct json_problems *problems) {
        struct manifest m = {.format = MANIFEST_FORMAT};
        struct json_ctx ctx = {
                .source = source, .text = text, .text_len = len, .problems = problems};
        if (len > MANIFEST_MAX_SIZE) {
                json_ctx_problem(&ctx, JSON_AT_VALUE, "larger than %d bytes", MANIFEST_MAX_SIZE);
                return -EINVAL;
        }
        if (memchr(text, '\0', len)) {
                json_ctx_problem(&ctx, JSON_AT_VALUE, "contains a NUL byte");
                return -EINVAL;
        }
        json_t *root = json_parse_object(&ctx);
        if (!root)
                return -EINVAL;
        const struct json_field *fields =
                (flags & MANIFEST_PARSE_TEMPLATE) ? template_fields : manifest_fields;
        int r = json_dispatch_object(&ctx, root, fields, &m);
        if (r >= 0 && m.has_rollback_floor && m.rollback_floor > m.security_version) {
                json_ctx_push_key(&ctx, "rollback_floor");
                r = json_ctx_problem(&ctx, JSON_AT_VALUE,
                                     "%" PRIu64 " is above security_version %" PRIu64
                                     ": a floor for going back cannot be higher than the release",
                                     m.rollback_floor, m.security_version);
                json_ctx_pop(&ctx);
        }
        json_decref(root);
        if (r < 0) {
                manifest_free(&m);
                return r;
        }
        if (!m.compatible && !(m.compatible = calloc(1, sizeof(char *)))) {
                manifest_free(&m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

int manifest_parse_text(const char *source, const char *text, size_t len, unsigned flags,
                        struct manifest *ret, char **ret_message) {
        struct json_problems *ps = calloc(1, sizeof(*ps));
        if (!ps)
                return -ENOMEM;
        int r = manifest_parse(source, text, len, flags, ret, ps);
        if (r < 0 && ret_message)
                *ret_message = ps->count > 0 ? json_problems_to_message(source, ps)
                                             : strdup("out of memory");
        free(ps);
        return r;
}

void manifest_free(struct manifest *m) {
        if (!m)
                return;
        free(m->bundle_id);
        free(m->version);
        free(m->description);
        if (m->compatible)
                for (size_t i = 0; m->compatible[i]; i++)
                        free(m->compatible[i]);
        free(m->compatible);
        for (size_t i = 0; i < m->n_images; i++)
                image_free(&m->images[i]);
        free(m->images);
        memset(m, 0, sizeof(*m));
}

/* ---- writing ----------------------------------------------------------------------- */

static json_t *hex_string(const uint8_t digest[SHA256_DIGEST_SIZE]) {
        char hex[SHA256_HEX_SIZE];
        sha256_to_hex(digest, hex);
        return json_string(hex);
}

static json_t *image_to_json(const struct manifest_image *img) {
        json_t *chunks = json_array();
        if (!chunks)
                return NULL;
        for (uint64_t i = 0; i < img->n_chunks; i++)
                if (json_array_append_new(chunks, hex_string(img->chunks[i])) < 0) {
                        json_decref(chunks);
                        return NULL;
                }
        return json_pack("{s:s, s:s, s:I, s:o, s:I, s:o}", "slot_class", img->slot_class, "file",
                         img->file, "size", (json_int_t) img->size, "sha256",
                         hex_string(img->sha256), "chunk_size", (json_int_t) img->chunk_size,
                         "chunks", chunks);
}

int manifest_format(const struct manifest *m, char **ret_text, size_t *ret_len) {
        if (!m->bundle_id || !m->version || m->n_images == 0 || m->n_compatible == 0 ||
            m->security_version > (uint64_t) INT64_MAX)
                return -EINVAL;
        json_t *root = json_pack("{s:i, s:s, s:s, s:I}", "format", MANIFEST_FORMAT, "bundle_id",
                                 m->bundle_id, "version", m->version, "security_version",
                                 (json_int_t) m->security_version);
        if (!root)
                return -ENOMEM;
        int r = 0;
        if (m->has_rollback_floor &&
            json_object_set_new(root, "rollback_floor",
                                json_integer((json_int_t) m->rollback_floor)) < 0)
                r = -ENOMEM;
        if (m->description &&
            json_object_set_new(root, "description", json_string(m->description)) < 0)
                r = -ENOMEM;
        /* set_new takes the reference even on failure, so nothing leaks on these paths. */
        json_t *compatible = json_array();
        if (json_object_set_new(root, "compatible", compatible) < 0)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < m->n_compatible; i++)
                if (json_array_append_new(compatible, json_string(m->compatible[i])) < 0)
                        r = -ENOMEM;
        json_t *images = json_array();
        if (json_object_set_new(root, "images", images) < 0)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < m->n_images; i++)
                if (json_array_append_new(images, image_to_json(&m->images[i])) < 0)
                        r = -ENOMEM;
        if (r < 0) {
                json_decref(root);
                return r;
        }
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        char *with_newline = realloc(text, len + 2);
        if (!with_newline) {
                free(text);
                return -ENOMEM;
        }
        with_newline[len++] = '\n';
        with_newline[len] = '\0';
        *ret_text = with_newline;
        if (ret_len)
                *ret_len = len;
        return 0;
}
