/*
 * Unit tests for signed bundles: keys, bundles and hostile archives are built here at
 * test time; each hostile bundle must be refused with its own reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "update/bundle.h"
#include "lib/fileio.h"
#include "test-util.h"

#define ROOTFS_SIZE 100000 /* 25 chunks of 4096, the last one short */
#define MODEL_SIZE 5000
#define CHUNK 4096

struct fixture {
        char *dir;
        char path[8][512];
        uint8_t rootfs[ROOTFS_SIZE], model[MODEL_SIZE];
        struct signature_keyring *keyring;       /* the CA that signed the signer */
        struct signature_keyring *other_keyring; /* an unrelated CA */
        char *manifest, *sig;                    /* members of the good bundle */
        size_t manifest_len, sig_len;
};

enum { CA_KEY, CA_CERT, SIGNER_KEY, SIGNER_CERT, OTHER_KEY, OTHER_CERT, GOOD, SCRATCH };

static const char *file(struct fixture *f, const char *name) {
        snprintf(f->path[SCRATCH], sizeof(f->path[SCRATCH]), "%s/%s", f->dir, name);
        return f->path[SCRATCH];
}

static struct signature_keyring *keyring_of(const char *cert_path) {
        char *text = NULL;
        size_t len;
        assert_int_equal(read_file_bounded(cert_path, 65536, &text, &len), 0);
        struct signature_keyring *kr = signature_keyring_new();
        assert_non_null(kr);
        assert_int_equal(signature_keyring_add(kr, text, len, cert_path, NULL), 0);
        free(text);
        return kr;
}

static void keygen(const char *subject, bool ca, const char *issuer_key, const char *issuer_cert,
                   time_t not_before, unsigned days, const char *key, const char *cert) {
        struct signature_keygen_options o = {.subject = subject,
                                             .ca = ca,
                                             .role = ca ? SIGNATURE_ROLE_NONE : SIGNATURE_ROLE_RELEASE,
                                             .issuer_key_path = issuer_key,
                                             .issuer_cert_path = issuer_cert,
                                             .not_before = not_before,
                                             .days = days};
        char *reason = NULL;
        int r = signature_keygen(&o, key, cert, &reason);
        if (r < 0)
                fprintf(stderr, "keygen: %s\n", reason);
        assert_int_equal(r, 0);
}

static struct manifest *template(void) {
        static struct manifest t;
        static char *compatible[] = {"orbit-board-v1", "orbit-board-v2", NULL};
        t = (struct manifest){.bundle_id = "test-bundle",
                              .version = "1.2.0",
                              .security_version = 5,
                              .compatible = compatible,
                              .n_compatible = 2};
        return &t;
}

static int create(struct fixture *f, const char *out, const char *key, const char *cert,
                  char **reason) {
        char rootfs_path[512], model_path[512], out_path[512];
        snprintf(rootfs_path, sizeof(rootfs_path), "%s/rootfs.src", f->dir);
        snprintf(model_path, sizeof(model_path), "%s/model.src", f->dir);
        snprintf(out_path, sizeof(out_path), "%s", out);
        const struct bundle_image_source images[] = {
                {"rootfs", rootfs_path},
                {"model:yolo", model_path},
        };
        return bundle_create(out_path, template(), images, 2, CHUNK, key, cert, reason);
}

/* Read one member of a tar into the heap. */
static void read_member(const char *path, const char *name, char **ret, size_t *ret_len) {
        struct archive *a = archive_read_new();
        archive_read_support_format_tar(a);
        assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
        struct archive_entry *e;
        while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
                if (strcmp(archive_entry_pathname(e), name) != 0)
                        continue;
                size_t len = (size_t)archive_entry_size(e);
                char *data = malloc(len + 1);
                assert_int_equal(archive_read_data(a, data, len), (la_ssize_t)len);
                data[len] = '\0';
                *ret = data;
                *ret_len = len;
                archive_read_free(a);
                return;
        }
        fail_msg("no member %s in %s", name, path);
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        f->dir = test_mkdtemp();
        assert_non_null(f->dir);
        static const char *names[] = {"ca.key",    "ca.pem",    "signer.key",  "signer.pem",
                                      "other.key", "other.pem", "good.obundle"};
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                snprintf(f->path[i], sizeof(f->path[i]), "%s/%s", f->dir, names[i]);
        for (size_t i = 0; i < ROOTFS_SIZE; i++)
                f->rootfs[i] = (uint8_t)(i * 31 + i / 4096);
        for (size_t i = 0; i < MODEL_SIZE; i++)
                f->model[i] = (uint8_t)(i ^ 0x5a);
        assert_int_equal(test_write(file(f, "rootfs.src"), f->rootfs, ROOTFS_SIZE), 0);
        assert_int_equal(test_write(file(f, "model.src"), f->model, MODEL_SIZE), 0);

        keygen("CN=test CA", true, NULL, NULL, 0, 30, f->path[CA_KEY], f->path[CA_CERT]);
        keygen("CN=test signer", false, f->path[CA_KEY], f->path[CA_CERT], 0, 30,
               f->path[SIGNER_KEY], f->path[SIGNER_CERT]);
        keygen("CN=other CA", true, NULL, NULL, 0, 30, f->path[OTHER_KEY], f->path[OTHER_CERT]);
        f->keyring = keyring_of(f->path[CA_CERT]);
        f->other_keyring = keyring_of(f->path[OTHER_CERT]);

        char *reason = NULL;
        int r = create(f, f->path[GOOD], f->path[SIGNER_KEY], f->path[SIGNER_CERT], &reason);
        if (r < 0)
                fprintf(stderr, "create: %s\n", reason);
        assert_int_equal(r, 0);
        read_member(f->path[GOOD], MANIFEST_MEMBER_NAME, &f->manifest, &f->manifest_len);
        read_member(f->path[GOOD], SIGNATURE_MEMBER_NAME, &f->sig, &f->sig_len);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        signature_keyring_free(f->keyring);
        signature_keyring_free(f->other_keyring);
        free(f->manifest);
        free(f->sig);
        test_rmdir(f->dir);
        free(f);
        return 0;
}

static struct bundle_verify_options options(struct fixture *f) {
        return (struct bundle_verify_options){.keyring = f->keyring,
                                              .hardware = "orbit-board-v2",
                                              .min_security_version = 5,
                                              .now = time(NULL)};
}

/* Open and read everything; returns the first error and its reason. */
static int verify(const char *path, const struct bundle_verify_options *o, char **reason) {
        struct bundle *b = NULL;
        *reason = NULL;
        int r = bundle_open(path, o, &b, reason);
        if (r >= 0)
                r = bundle_verify_payloads(b, reason);
        bundle_close(b);
        return r;
}

static void expect_refused(const char *path, const struct bundle_verify_options *o, int error,
                           const char *expected) {
        char *reason = NULL;
        int r = verify(path, o, &reason);
        if (r != error || !reason || !strstr(reason, expected))
                fprintf(stderr, "%s: got %d \"%s\", expected %d \"%s\"\n", path, r,
                        reason ? reason : "(none)", error, expected);
        assert_int_equal(r, error);
        assert_non_null(reason);
        assert_non_null(strstr(reason, expected));
        free(reason);
}

/* ---- hostile archives -------------------------------------------------------------- */

struct member {
        const char *name;
        mode_t type; /* AE_IFREG when 0 */
        const void *data;
        size_t len;
        const char *link; /* symlink target or hardlink source */
        bool hardlink;
};

static void write_tar(const char *path, bool gzip, const struct member *members, size_t n) {
        struct archive *a = archive_write_new();
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        if (gzip)
                assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                const struct member *m = &members[i];
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, m->name);
                archive_entry_set_filetype(e, m->type ? m->type : AE_IFREG);
                archive_entry_set_perm(e, 0644);
                if (m->link && m->hardlink)
                        archive_entry_set_hardlink(e, m->link);
                else if (m->link)
                        archive_entry_set_symlink(e, m->link);
                archive_entry_set_size(e,
                                       (la_int64_t)(m->type && m->type != AE_IFREG ? 0 : m->len));
                assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
                if ((!m->type || m->type == AE_IFREG) && !m->hardlink && m->len)
                        assert_int_equal(archive_write_data(a, m->data, m->len),
                                         (la_ssize_t)m->len);
                archive_entry_free(e);
        }
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
}

#define MANIFEST(f)                                                                                \
        { MANIFEST_MEMBER_NAME, 0, (f)->manifest, (f)->manifest_len, NULL, false }
#define SIG(f)                                                                                     \
        { SIGNATURE_MEMBER_NAME, 0, (f)->sig, (f)->sig_len, NULL, false }
#define ROOTFS(f)                                                                                  \
        { "rootfs.img", 0, (f)->rootfs, ROOTFS_SIZE, NULL, false }
#define MODEL(f)                                                                                   \
        { "model-yolo.img", 0, (f)->model, MODEL_SIZE, NULL, false }

/* ---- tests ------------------------------------------------------------------------- */

static void test_valid_bundle_streams_verified_chunks(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        struct bundle *b = NULL;
        char *reason = NULL;
        int r = bundle_open(f->path[GOOD], &o, &b, &reason);
        if (r < 0)
                fprintf(stderr, "%s\n", reason);
        assert_int_equal(r, 0);
        const struct manifest *m = bundle_manifest(b);
        assert_string_equal(m->bundle_id, "test-bundle");
        assert_int_equal(m->n_images, 2);
        assert_int_equal(m->images[0].n_chunks, 25);
        assert_string_equal(bundle_signer(b)->signer, "CN=test signer");

        static uint8_t rootfs[ROOTFS_SIZE], model[MODEL_SIZE];
        size_t n_chunks[2] = {0}, last_seen = 0;
        struct bundle_chunk c;
        while ((r = bundle_next_chunk(b, &c, &reason)) > 0) {
                assert_true(c.image < 2);
                assert_int_equal(c.index, n_chunks[c.image]);
                assert_int_equal(c.offset, c.index * CHUNK);
                uint8_t *dest = c.image == 0 ? rootfs : model;
                memcpy(dest + c.offset, c.data, c.len);
                n_chunks[c.image]++;
                if (c.last_in_image)
                        last_seen++;
        }
        assert_int_equal(r, 0);
        assert_int_equal(n_chunks[0], 25);
        assert_int_equal(n_chunks[1], 2);
        assert_int_equal(last_seen, 2);
        assert_memory_equal(rootfs, f->rootfs, ROOTFS_SIZE);
        assert_memory_equal(model, f->model, MODEL_SIZE);
        /* At the end it stays at the end. */
        assert_int_equal(bundle_next_chunk(b, &c, &reason), 0);
        bundle_close(b);

        /* Without a hardware check (ground tools) and with an unknown clock it verifies too. */
        o.hardware = NULL;
        o.now = SIGNATURE_NOW_UNKNOWN;
        assert_int_equal(verify(f->path[GOOD], &o, &reason), 0);

        /* info reads it without a keyring. */
        struct manifest um;
        struct signature_info si;
        assert_int_equal(bundle_read_unverified(f->path[GOOD], &um, &si, &reason), 0);
        assert_string_equal(um.version, "1.2.0");
        assert_string_equal(si.issuer, "CN=test CA");
        manifest_free(&um);
}

/* Random access for installers: the payload offsets hold exactly the image bytes. */

/* A bundle in memory behind a reader, counting its reads. */
struct mem_reader {
        const uint8_t *data;
        size_t len;
        unsigned calls;
        int fail; /* < 0: every read fails so */
};

static int mem_pread(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct mem_reader *m = userdata;
        m->calls++;
        if (m->fail)
                return m->fail;
        if (offset > m->len || len > m->len - offset)
                return -ENODATA;
        memcpy(buf, m->data + offset, len);
        return 0;
}

static void test_locate_payloads(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        struct bundle *b = NULL;
        char *reason = NULL;
        assert_int_equal(bundle_open(f->path[GOOD], &o, &b, &reason), 0);
        uint64_t offsets[2];
        assert_int_equal(bundle_locate_payloads(b, offsets, &reason), 0);
        assert_true(offsets[1] > offsets[0] + ROOTFS_SIZE);
        static uint8_t buf[ROOTFS_SIZE];
        const struct bundle_reader *rd = bundle_get_reader(b);
        assert_true(rd->concurrent);
        assert_int_equal(rd->pread(rd->userdata, offsets[0], buf, ROOTFS_SIZE), 0);
        assert_memory_equal(buf, f->rootfs, ROOTFS_SIZE);
        assert_int_equal(rd->pread(rd->userdata, offsets[1], buf, MODEL_SIZE), 0);
        assert_memory_equal(buf, f->model, MODEL_SIZE);
        /* the signed bytes and their digest are available to identify the bundle */
        size_t len;
        const char *text = bundle_manifest_text(b, &len);
        assert_int_equal(len, f->manifest_len);
        assert_memory_equal(text, f->manifest, len);
        uint8_t digest[SHA256_DIGEST_SIZE];
        sha256_buffer(f->manifest, f->manifest_len, digest);
        assert_memory_equal(bundle_manifest_digest(b), digest, SHA256_DIGEST_SIZE);
        bundle_close(b);

        /* What a ranged fetch must get before bundle_open: exactly up to the first image's
         * header, learned in steps from the first bytes. */
        char *all;
        size_t all_len;
        assert_int_equal(read_file_bounded(f->path[GOOD], 1 << 24, &all, &all_len), 0);
        uint64_t need;
        assert_int_equal(bundle_head_length(all, 100, &need), -EAGAIN);
        assert_int_equal(need, 512);
        assert_int_equal(bundle_head_length(all, 512, &need), -EAGAIN);
        assert_true(need > 512 + f->manifest_len);
        /* the signature's header alone: its data is still missing */
        assert_int_equal(bundle_head_length(all, (size_t) need, &need), -EAGAIN);
        uint64_t head_end = need;
        assert_int_equal(bundle_head_length(all, (size_t) need, &need), 0);
        assert_int_equal(need, head_end);
        assert_int_equal(bundle_head_length(all, (size_t) need - 1, &need), -EAGAIN);
        assert_int_equal(bundle_head_length(all, all_len, &need), 0);
        assert_int_equal(need, head_end);
        /* the head ends where the first image's pax header (page padding) begins; its
         * data starts on a page */
        assert_int_equal(all[head_end + 156], 'x');
        assert_true(head_end < offsets[0] - 512);
        assert_int_equal(offsets[0] % 4096, 0);
        /* Opened from that head through a reader: the signature and manifest are checked
         * without one read, the payloads found through the reader, and a reader's own
         * failure (a link down) is passed on as it is, not as a damaged bundle. */
        struct mem_reader mr = {.data = (const uint8_t *) all, .len = all_len};
        struct bundle_reader mrd = {.pread = mem_pread, .userdata = &mr, .size = all_len};
        assert_int_equal(bundle_open_reader(&mrd, "remote", all, (size_t) need, &o, &b, &reason), 0);
        assert_int_equal(mr.calls, 0);
        assert_string_equal(bundle_manifest(b)->bundle_id, "test-bundle");
        uint64_t remote_offsets[2];
        assert_int_equal(bundle_locate_payloads(b, remote_offsets, &reason), 0);
        assert_true(mr.calls > 0);
        assert_memory_equal(remote_offsets, offsets, sizeof(offsets));
        mr.fail = -ENOLINK;
        assert_int_equal(bundle_locate_payloads(b, remote_offsets, &reason), -ENOLINK);
        free(reason);
        reason = NULL;
        bundle_close(b);
        /* a head cut inside the signature (its padding is at most 511 bytes) is refused,
         * and still nothing is read past it */
        mr.fail = 0;
        mr.calls = 0;
        assert_true(bundle_open_reader(&mrd, "remote", all, (size_t) need - 513, &o, &b, &reason) < 0);
        assert_non_null(strstr(reason, "truncated"));
        assert_int_equal(mr.calls, 0);
        free(reason);
        reason = NULL;
        all[148] ^= 1; /* the manifest header's checksum */
        assert_int_equal(bundle_head_length(all, all_len, &need), -EBADMSG);
        all[148] ^= 1;
        all[0] = 'x'; /* a damaged first header */
        assert_int_equal(bundle_head_length(all, all_len, &need), -EBADMSG);
        free(all);

        /* A bundle cut inside the last payload: refused, naming the member. */
        const char *cut = file(f, "cut.obundle");
        char *data;
        size_t n;
        assert_int_equal(read_file_bounded(f->path[GOOD], 1 << 24, &data, &n), 0);
        assert_int_equal(write_file_durable(cut, data, (size_t) offsets[1] + 100, 0644), 0);
        free(data);
        /* bundle_open reads only the manifest and signature, so it opens */
        assert_int_equal(bundle_open(cut, &o, &b, &reason), 0);
        assert_int_equal(bundle_locate_payloads(b, offsets, &reason), -EBADMSG);
        assert_non_null(strstr(reason, "truncated"));
        free(reason);
        bundle_close(b);
}

static void test_tampered_payload(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        f->rootfs[3 * CHUNK + 17] ^= 0x01;
        struct member ms[] = {MANIFEST(f), SIG(f), ROOTFS(f), MODEL(f)};
        write_tar(file(f, "bad.obundle"), false, ms, ELEMENTSOF(ms));
        f->rootfs[3 * CHUNK + 17] ^= 0x01;
        expect_refused(file(f, "bad.obundle"), &o, -EBADMSG,
                       "image 0 (rootfs, rootfs.img): chunk 3 (bytes 12288-16383) does not match "
                       "its SHA-256");

        /* The streaming API hands out chunks 0-2, then refuses, and stays refused. */
        struct bundle *b;
        char *reason = NULL;
        assert_int_equal(bundle_open(file(f, "bad.obundle"), &o, &b, &reason), 0);
        struct bundle_chunk c;
        for (int i = 0; i < 3; i++)
                assert_int_equal(bundle_next_chunk(b, &c, NULL), 1);
        assert_int_equal(bundle_next_chunk(b, &c, NULL), -EBADMSG);
        assert_int_equal(bundle_next_chunk(b, &c, NULL), -EBADMSG);
        bundle_close(b);
}

static void test_tampered_manifest(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        char *at = strstr(f->manifest, "\"security_version\": 5");
        assert_non_null(at);
        at[20] = '9';
        struct member ms[] = {MANIFEST(f), SIG(f), ROOTFS(f), MODEL(f)};
        write_tar(file(f, "bad.obundle"), false, ms, ELEMENTSOF(ms));
        at[20] = '5';
        expect_refused(file(f, "bad.obundle"), &o, -EBADMSG, "signature: bad signature");

        /* A tampered signature file is refused as malformed or bad, never trusted. */
        char *sig = strdup(f->sig);
        char *s = strstr(sig, "\"signature\": \"") + 14;
        s[4] = s[4] == 'A' ? 'B' : 'A';
        struct member ms2[] = {MANIFEST(f),
                               {SIGNATURE_MEMBER_NAME, 0, sig, f->sig_len, NULL, false},
                               ROOTFS(f),
                               MODEL(f)};
        write_tar(file(f, "bad2.obundle"), false, ms2, ELEMENTSOF(ms2));
        free(sig);
        char *reason = NULL;
        assert_int_equal(verify(file(f, "bad2.obundle"), &o, &reason), -EBADMSG);
        assert_non_null(strstr(reason, "signature"));
        free(reason);
}

static void test_wrong_key(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        o.keyring = f->other_keyring;
        expect_refused(f->path[GOOD], &o, -EKEYREJECTED,
                       "signer \"CN=test signer\" (issued by \"CN=test CA\") does not chain to a "
                       "trust anchor");

        /* A self-signed signer with the same name as ours is no better. */
        char key[512], cert[512], *reason = NULL;
        snprintf(key, sizeof(key), "%s/rogue.key", f->dir);
        snprintf(cert, sizeof(cert), "%s/rogue.pem", f->dir);
        keygen("CN=test signer", false, NULL, NULL, 0, 30, key, cert);
        assert_int_equal(create(f, file(f, "rogue.obundle"), key, cert, &reason), 0);
        o = options(f);
        expect_refused(file(f, "rogue.obundle"), &o, -EKEYREJECTED,
                       "does not chain to a trust anchor");
}

static void test_expired_signer(void **state) {
        struct fixture *f = *state;
        char key[512], cert[512], *reason = NULL;
        snprintf(key, sizeof(key), "%s/expired.key", f->dir);
        snprintf(cert, sizeof(cert), "%s/expired.pem", f->dir);
        keygen("CN=expired signer", false, f->path[CA_KEY], f->path[CA_CERT],
               1577836800 /* 2020-01-01 */, 30, key, cert);
        assert_int_equal(create(f, file(f, "expired.obundle"), key, cert, &reason), 0);
        struct bundle_verify_options o = options(f);
        expect_refused(
                file(f, "expired.obundle"), &o, -EKEYEXPIRED,
                "signer certificate \"CN=expired signer\" expired on 2020-01-31 00:00:00 UTC");
        /* Valid at a time inside its period: the clock decides, as given. */
        o.now = 1577836800 + 86400;
        expect_refused(file(f, "expired.obundle"), &o, -EKEYEXPIRED,
                       "chain certificate \"CN=test CA\" is not valid before");
        /* The good signer, at a time before it existed. */
        o = options(f);
        o.now = 1577836800;
        expect_refused(f->path[GOOD], &o, -EKEYEXPIRED, "is not valid before");
        /* ... unless now only bounds the time from below (the agent's floor or RTC before the
         * controller told the time: agent/trusted-time.h), where a signer issued after it may
         * well be valid; expiry is judged all the same. */
        o.now_is_lower_bound = true;
        struct bundle *b = NULL;
        assert_int_equal(bundle_open(f->path[GOOD], &o, &b, &reason), 0);
        bundle_close(b);
        o = options(f);
        o.now_is_lower_bound = true;
        expect_refused(
                file(f, "expired.obundle"), &o, -EKEYEXPIRED,
                "signer certificate \"CN=expired signer\" expired on 2020-01-31 00:00:00 UTC");
}

/* An open bundle is checked again before a slot is armed: a signer revoked since is refused. */
static void test_recheck_after_revocation(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        struct bundle *b = NULL;
        char *reason = NULL, *text = NULL;
        size_t len;
        assert_int_equal(bundle_open(f->path[GOOD], &o, &b, &reason), 0);
        assert_int_equal(bundle_recheck_signature(b, f->keyring, o.now, false, &reason), 0);
        assert_int_equal(read_file_bounded(f->path[SIGNER_CERT], 65536, &text, &len), 0);
        uint8_t key[32];
        assert_int_equal(signature_key_fingerprint(text, len, key, NULL), 0);
        free(text);
        struct signature_keyring *kr = keyring_of(f->path[CA_CERT]);
        assert_int_equal(signature_keyring_revoke(kr, key), 0);
        assert_int_equal(bundle_recheck_signature(b, kr, o.now, false, &reason), -EKEYREVOKED);
        assert_non_null(strstr(reason, "holds a revoked key"));
        free(reason);
        reason = NULL;
        assert_int_equal(bundle_recheck_signature(b, f->other_keyring, o.now, false, &reason), -EKEYREJECTED);
        free(reason);
        signature_keyring_free(kr);
        bundle_close(b);
}

static void test_policy(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        o.hardware = "orbit-board-v3";
        expect_refused(f->path[GOOD], &o, -ENOTSUP,
                       "incompatible hardware: this node is \"orbit-board-v3\"");
        o = options(f);
        o.min_security_version = 6;
        expect_refused(f->path[GOOD], &o, -EPERM,
                       "security_version 5 is below this node's minimum 6");
}

static void test_hostile_structure(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        static const char zeros[64] = {0};

        struct member traversal[] = {
                {"../x", 0, "x", 1, NULL, false}, MANIFEST(f), SIG(f), ROOTFS(f), MODEL(f)};
        write_tar(file(f, "h.obundle"), false, traversal, ELEMENTSOF(traversal));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG, "member \"../x\" has an unsafe path");

        struct member traversal2[] = {
                MANIFEST(f),
                SIG(f),
                {"sub/../../rootfs.img", 0, f->rootfs, ROOTFS_SIZE, NULL, false}};
        write_tar(file(f, "h.obundle"), false, traversal2, ELEMENTSOF(traversal2));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG, "unsafe path");

        struct member absolute[] = {{"/etc/passwd", 0, "x", 1, NULL, false}};
        write_tar(file(f, "h.obundle"), false, absolute, ELEMENTSOF(absolute));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "member \"/etc/passwd\" has an unsafe path");

        struct member symlink[] = {MANIFEST(f),
                                   SIG(f),
                                   {"rootfs.img", AE_IFLNK, NULL, 0, "/dev/sda", false},
                                   MODEL(f)};
        write_tar(file(f, "h.obundle"), false, symlink, ELEMENTSOF(symlink));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "member \"rootfs.img\" is a symbolic link to \"/dev/sda\"");

        struct member hardlink[] = {
                MANIFEST(f), SIG(f), {"rootfs.img", 0, NULL, 0, "manifest.json", true}, MODEL(f)};
        write_tar(file(f, "h.obundle"), false, hardlink, ELEMENTSOF(hardlink));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG, "member \"rootfs.img\" is a hard link");

        struct member dir[] = {{"manifest.json", AE_IFDIR, NULL, 0, NULL, false}};
        write_tar(file(f, "h.obundle"), false, dir, ELEMENTSOF(dir));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG, "is a directory");

        struct member order[] = {MANIFEST(f), SIG(f), MODEL(f), ROOTFS(f)};
        write_tar(file(f, "h.obundle"), false, order, ELEMENTSOF(order));
        expect_refused(
                file(f, "h.obundle"), &o, -EBADMSG,
                "members out of order: expected member \"rootfs.img\", found \"model-yolo.img\"");

        struct member sig_first[] = {SIG(f), MANIFEST(f), ROOTFS(f), MODEL(f)};
        write_tar(file(f, "h.obundle"), false, sig_first, ELEMENTSOF(sig_first));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "members out of order: expected member \"manifest.json\"");

        struct member size_lie[] = {MANIFEST(f),
                                    SIG(f),
                                    {"rootfs.img", 0, f->rootfs, ROOTFS_SIZE, NULL, false},
                                    MODEL(f),
                                    {"extra", 0, zeros, sizeof(zeros), NULL, false}};
        size_lie[2].len = ROOTFS_SIZE - 1; /* one byte short */
        write_tar(file(f, "h.obundle"), false, size_lie, ELEMENTSOF(size_lie));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "member \"rootfs.img\" is 99999 bytes, the manifest says 100000");

        static uint8_t bigger[ROOTFS_SIZE + 4096];
        memcpy(bigger, f->rootfs, ROOTFS_SIZE);
        struct member size_lie2[] = {MANIFEST(f),
                                     SIG(f),
                                     {"rootfs.img", 0, bigger, sizeof(bigger), NULL, false},
                                     MODEL(f)};
        write_tar(file(f, "h.obundle"), false, size_lie2, ELEMENTSOF(size_lie2));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "member \"rootfs.img\" is 104096 bytes, the manifest says 100000");

        struct member extra[] = {MANIFEST(f),
                                 SIG(f),
                                 ROOTFS(f),
                                 MODEL(f),
                                 {"run-me.sh", 0, "#!/bin/sh\n", 10, NULL, false}};
        write_tar(file(f, "h.obundle"), false, extra, ELEMENTSOF(extra));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "unexpected member \"run-me.sh\" after the last image");

        struct member missing[] = {MANIFEST(f), SIG(f), ROOTFS(f)};
        write_tar(file(f, "h.obundle"), false, missing, ELEMENTSOF(missing));
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "the archive ends before member \"model-yolo.img\"");

        /* A manifest member bigger than the bound is refused before it is read. */
        size_t big_len = MANIFEST_MAX_SIZE + 1;
        char *big = calloc(1, big_len);
        struct member big_manifest[] = {{MANIFEST_MEMBER_NAME, 0, big, big_len, NULL, false},
                                        SIG(f)};
        write_tar(file(f, "h.obundle"), false, big_manifest, ELEMENTSOF(big_manifest));
        free(big);
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG,
                       "member \"manifest.json\" is 1048577 bytes, more than the 1048576 allowed");

        assert_int_equal(test_write(file(f, "h.obundle"), "", 0), 0);
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG, "h.obundle");
        assert_int_equal(
                test_write(file(f, "h.obundle"), "not a tar archive at all, just some text\n", 41),
                0);
        expect_refused(file(f, "h.obundle"), &o, -EBADMSG, "truncated or damaged tar");
}

static void test_truncated(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        char *data = NULL;
        size_t len;
        assert_int_equal(read_file_bounded(f->path[GOOD], 1 << 20, &data, &len), 0);
        /* In the middle of the rootfs payload, and in the middle of the signature. */
        assert_int_equal(test_write(file(f, "t.obundle"), data, len / 2), 0);
        expect_refused(file(f, "t.obundle"), &o, -EBADMSG,
                       "truncated or damaged tar while reading \"rootfs.img\"");
        assert_int_equal(test_write(file(f, "t.obundle"), data, 3 * 512 + f->manifest_len), 0);
        expect_refused(file(f, "t.obundle"), &o, -EBADMSG, "manifest.sig");
        free(data);
}

static void test_decompression_bomb(void **state) {
        struct fixture *f = *state;
        struct bundle_verify_options o = options(f);
        /* 256 MiB of zeros behind a valid manifest compress to a few hundred KiB. */
        size_t huge = 256u << 20;
        void *zeros = calloc(1, huge);
        assert_non_null(zeros);
        struct member bomb[] = {MANIFEST(f), SIG(f), {"rootfs.img", 0, zeros, huge, NULL, false}};
        write_tar(file(f, "bomb.obundle"), true, bomb, ELEMENTSOF(bomb));
        free(zeros);
        struct stat st;
        assert_int_equal(stat(file(f, "bomb.obundle"), &st), 0);
        assert_true(st.st_size < (off_t)(huge / 100));
        expect_refused(file(f, "bomb.obundle"), &o, -ENOTSUP,
                       "compressed (gzip) bundle refused without decompressing");
        assert_int_equal(unlink(file(f, "bomb.obundle")), 0);
}

static void test_keyring(void **state) {
        struct fixture *f = *state;
        char *reason = NULL;
        struct signature_keyring *kr = NULL;
        /* An empty directory is not a keyring. */
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/kr", f->dir);
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(signature_keyring_load_dir(dir, &kr, &reason), -ENOKEY);
        assert_non_null(strstr(reason, "no trust anchors"));
        free(reason);
        /* A broken *.pem is an error, naming the file; other names are ignored. */
        char p[600];
        snprintf(p, sizeof(p), "%s/README", dir);
        assert_int_equal(test_write(p, "hello", 5), 0);
        snprintf(p, sizeof(p), "%s/broken.pem", dir);
        assert_int_equal(
                test_write(p, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 58),
                0);
        assert_int_equal(signature_keyring_load_dir(dir, &kr, &reason), -EINVAL);
        assert_non_null(strstr(reason, "broken.pem"));
        free(reason);
        unlink(p);
        char *text;
        size_t len;
        assert_int_equal(read_file_bounded(f->path[CA_CERT], 65536, &text, &len), 0);
        snprintf(p, sizeof(p), "%s/ca.crt", dir);
        assert_int_equal(test_write(p, text, len), 0);
        free(text);
        assert_int_equal(signature_keyring_load_dir(dir, &kr, &reason), 0);
        assert_int_equal(signature_keyring_count(kr), 1);
        signature_keyring_free(kr);
        unlink(p);
        snprintf(p, sizeof(p), "%s/README", dir);
        unlink(p);
        rmdir(dir);

        /* Signing refuses a key that does not match the certificate. */
        assert_int_equal(
                create(f, file(f, "x.obundle"), f->path[OTHER_KEY], f->path[SIGNER_CERT], &reason),
                -EINVAL);
        assert_non_null(strstr(reason, "does not match"));
        free(reason);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_bundle_streams_verified_chunks),
        cmocka_unit_test(test_locate_payloads),
                cmocka_unit_test(test_tampered_payload),
                cmocka_unit_test(test_tampered_manifest),
                cmocka_unit_test(test_wrong_key),
                cmocka_unit_test(test_expired_signer),
                cmocka_unit_test(test_recheck_after_revocation),
                cmocka_unit_test(test_policy),
                cmocka_unit_test(test_hostile_structure),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_decompression_bomb),
                cmocka_unit_test(test_keyring),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
