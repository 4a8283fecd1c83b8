/*
 * Benchmark: install throughput of the update engine against the physical limit, in
 * one run on the same files.
 *
 *  limit  sha256sum IMAGE, cp IMAGE SLOT, fdatasync SLOT (the real binaries): reading,
 *         hashing and writing the image once, durably;
 *  fresh  bundle_open (signature) + bundle_locate_payloads + install_image into an empty
 *         file slot, checkpoints as the agent makes them (every 8 MiB: fdatasync, drop
 *         the written pages, progress state file); then the same with
 *         install_verify_source first (the agent's default: verify before write);
 *  delta  a second image with 5% of its chunks changed (fixed seed), installed into a
 *         fresh slot with the first image as the active slot, indexed from its manifest
 *         (as the agent keeps it) and by hashing the active slot (a factory image).
 *
 * The page cache is dropped before each phase when that is allowed (root), so the limit
 * and the engine both start cold; otherwise both run warm (their input read first).
 * Figures, not a test: goals are reported PASS/MISS and the exit status is 0 whatever
 * they say (nonzero only when the benchmark itself could not run).
 *
 * usage: update-install [--size-mib N] [--chunk-kib K] [--warm] [DIR]
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "update/bundle.h"
#include "lib/fileio.h"
#include "update/install.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "update/manifest.h"
#include "lib/sha256.h"
#include "update/signature.h"
#include "update/slot.h"
#include "lib/statefile.h"
#include "bench/bench-util.h"

#define MIB (1024.0 * 1024.0)
#define CHANGED_PERCENT 5
#define SEED 0x0b17a9e5eedULL
#define GOAL_RATIO 1.20

extern char **environ;

static char tmpdir[PATH_MAX];
static bool cache_drop; /* echo 3 > /proc/sys/vm/drop_caches works */

/* ---- small helpers ------------------------------------------------------------------- */

static void path_in(char *buf, const char *name) {
        int n = snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);
        if (n < 0 || n >= PATH_MAX)
                die("path too long: %s/%s", tmpdir, name);
}

/* Everything made here is a flat file in tmpdir (state files add ".prev" and ".tmp"). */
static void cleanup_tmpdir(void) {
        if (!tmpdir[0])
                return;
        DIR *d = opendir(tmpdir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        char p[PATH_MAX];
                        path_in(p, de->d_name);
                        (void) unlink(p);
                }
                closedir(d);
        }
        (void) rmdir(tmpdir);
        tmpdir[0] = '\0';
}

/* splitmix64: fast, seeded, good enough for incompressible test data. */
static uint64_t rng_next(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void rng_fill(uint64_t *s, uint8_t *buf, size_t len) {
        size_t i = 0;
        for (; i + 8 <= len; i += 8) {
                uint64_t v = rng_next(s);
                memcpy(buf + i, &v, 8);
        }
        for (; i < len; i++)
                buf[i] = (uint8_t) rng_next(s);
}

static void fdatasync_path(const char *path) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || fdatasync(fd) < 0)
                die("fdatasync %s: %m", path);
        close(fd);
}

/* Read a file to the end (warms the page cache). */
static void read_through(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                die("open %s: %m", path);
        static uint8_t buf[1 << 20];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        die("read %s: %m", path);
                if (n == 0)
                        break;
        }
        close(fd);
}

static bool drop_caches_probe(void) {
        return access("/proc/sys/vm/drop_caches", W_OK) == 0;
}

/* Before a phase: everything durable, then cold cache (or warm inputs). */
static void phase_start(const char *const *inputs) {
        sync();
        if (cache_drop) {
                int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
                if (fd >= 0 && write(fd, "3\n", 2) == 2) {
                        close(fd);
                        return;
                }
                die("drop_caches: %m");
        }
        for (size_t i = 0; inputs && inputs[i]; i++)
                read_through(inputs[i]);
}

/* ---- the data -------------------------------------------------------------------------- */

static void make_image(const char *path, uint64_t size, uint64_t seed) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                die("create %s: %m", path);
        static uint8_t buf[1 << 20];
        for (uint64_t off = 0; off < size;) {
                size_t n = size - off < sizeof(buf) ? (size_t) (size - off) : sizeof(buf);
                rng_fill(&seed, buf, n);
                if (write_all(fd, buf, n) < 0)
                        die("write %s: %m", path);
                off += n;
        }
        if (fsync(fd) < 0)
                die("fsync %s: %m", path);
        close(fd);
}

/* The second image: the first with the chosen chunks replaced by other random bytes. */
static void make_changed_image(const char *from, const char *path, uint64_t size, uint64_t chunk,
                               const bool *changed) {
        int in = open(from, O_RDONLY | O_CLOEXEC);
        int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (in < 0 || out < 0)
                die("make %s: %m", path);
        uint8_t *buf = malloc(chunk);
        if (!buf)
                die("out of memory");
        uint64_t seed = SEED ^ 0xdeadbeefULL;
        for (uint64_t i = 0, off = 0; off < size; i++, off += chunk) {
                size_t n = size - off < chunk ? (size_t) (size - off) : (size_t) chunk;
                if (changed[i])
                        rng_fill(&seed, buf, n);
                else if (pread_all(in, buf, n, off) < 0)
                        die("read %s: %m", from);
                if (write_all(out, buf, n) < 0)
                        die("write %s: %m", path);
        }
        if (fsync(out) < 0)
                die("fsync %s: %m", path);
        free(buf);
        close(in);
        close(out);
}

static void keygen(const char *subject, bool ca, const char *issuer_key, const char *issuer_cert,
                   const char *key, const char *cert) {
        struct signature_keygen_options o = {
                .subject = subject,
                .ca = ca,
                .role = ca ? SIGNATURE_ROLE_NONE : SIGNATURE_ROLE_RELEASE,
                .issuer_key_path = issuer_key,
                .issuer_cert_path = issuer_cert,
                .days = 2,
        };
        char *reason = NULL;
        if (signature_keygen(&o, key, cert, &reason) < 0)
                die("keygen %s: %s", subject, reason ? reason : "?");
}

static void make_bundle(const char *out, const char *image, const char *version, uint64_t chunk,
                        const char *key, const char *cert) {
        static char *compatible[] = {"bench-board", NULL};
        struct manifest t = {
                .bundle_id = "bench-install",
                .version = (char *) version,
                .security_version = 1,
                .compatible = compatible,
                .n_compatible = 1,
        };
        const struct bundle_image_source src[] = {{"rootfs", image}};
        char *reason = NULL;
        if (bundle_create(out, &t, src, 1, chunk, key, cert, &reason) < 0)
                die("bundle_create %s: %s", out, reason ? reason : "?");
}

/* ---- the engine, driven as the agent drives it ---------------------------------------- */

struct source {
        const struct bundle_reader *reader; /* the bundle's, as the agent reads it */
        uint64_t offset; /* of the payload in the bundle */
        uint64_t chunk_size;
        uint64_t bytes, calls;
        bool *read_map; /* per chunk: read at least once */
        double seconds;
        pthread_mutex_t lock; /* read runs on several threads at once (concurrent) */
};

static int source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct source *s = userdata;
        double t0 = now_s();
        int r = s->reader->pread(s->reader->userdata, s->offset + offset, buf, len);
        pthread_mutex_lock(&s->lock);
        s->seconds += now_s() - t0;
        if (r >= 0) {
                s->bytes += len;
                s->calls++;
                if (s->read_map)
                        s->read_map[offset / s->chunk_size] = true;
        }
        pthread_mutex_unlock(&s->lock);
        return r < 0 ? r : 0;
}

struct ckpt {
        const struct manifest_image *img;
        unsigned count;
        double seconds;
        struct statefile_pair file;
};

/* As the agent: the bitmap as hex in a checksummed state file of two copies, written in place. */
static int checkpoint(void *userdata, const uint8_t *done, const struct install_stats *st, bool flush) {
        struct ckpt *c = userdata;
        double t0 = now_s();
        char *hex = NULL;
        int r = install_bitmap_to_hex(done, c->img->n_chunks, &hex);
        if (r < 0)
                return r;
        size_t len = strlen(hex) + 256;
        char *text = malloc(len);
        if (!text) {
                free(hex);
                return -ENOMEM;
        }
        snprintf(text, len,
                 "{\"format\":1,\"images\":[{\"slot_class\":\"%s\",\"chunk_size\":%" PRIu64
                 ",\"n_chunks\":%" PRIu64 ",\"bytes_done\":%" PRIu64 ",\"done\":\"%s\"}]}",
                 c->img->slot_class, c->img->chunk_size, c->img->n_chunks, st->bytes_done, hex);
        r = statefile_pair_save(&c->file, tmpdir, "progress", text, strlen(text), flush);
        free(text);
        free(hex);
        c->count++;
        c->seconds += now_s() - t0;
        return r;
}

struct run_result {
        double open_s, index_s, verify_s, install_s, total_s;
        uint64_t verify_bytes, install_bytes;
        struct install_stats st;
        unsigned checkpoints;
        double read_s, ckpt_s;
        bool read_only_changed; /* every chunk read from the bundle was a changed one, and each was read */
};

enum delta_kind { DELTA_NONE, DELTA_MANIFEST, DELTA_SCAN };

static void engine_install(const char *bundle_path, const struct signature_keyring *kr,
                           const char *slot_path, const char *active_path,
                           const char *active_manifest, enum delta_kind delta, bool verify_first,
                           const bool *changed, struct run_result *res) {
        memset(res, 0, sizeof(*res));
        struct bundle_verify_options vo = {
                .keyring = kr, .hardware = "bench-board", .now = time(NULL)};
        char *reason = NULL;
        double t0 = now_s();
        struct bundle *b = NULL;
        if (bundle_open(bundle_path, &vo, &b, &reason) < 0)
                die("bundle_open %s: %s", bundle_path, reason ? reason : "?");
        const struct manifest *m = bundle_manifest(b);
        uint64_t offsets[MANIFEST_MAX_IMAGES];
        if (bundle_locate_payloads(b, offsets, &reason) < 0)
                die("bundle_locate_payloads: %s", reason ? reason : "?");
        const struct manifest_image *img = &m->images[0];
        double t1 = now_s();
        res->open_s = t1 - t0;

        /* The active slot and what it holds. */
        int active_fd = -1;
        struct install_index *ix = NULL;
        if (delta != DELTA_NONE) {
                uint64_t active_size;
                if (slot_open_read(active_path, &active_fd, &active_size, &reason) < 0)
                        die("slot_open_read: %s", reason ? reason : "?");
                if (delta == DELTA_MANIFEST) {
                        struct manifest am = {};
                        if (manifest_parse_text("active", active_manifest, strlen(active_manifest), 0,
                                                &am, &reason) < 0)
                                die("active manifest: %s", reason ? reason : "?");
                        const struct manifest_image *ai = manifest_find_image(&am, "rootfs");
                        if (!ai || ai->chunk_size != img->chunk_size ||
                            install_index_from_image(ai, &ix) < 0)
                                die("install_index_from_image failed");
                        manifest_free(&am);
                } else {
                        uint64_t size = active_size < img->size ? active_size : img->size;
                        if (install_index_scan(active_fd, size, img->chunk_size, NULL, &ix) < 0)
                                die("install_index_scan failed");
                }
        }
        double t2 = now_s();
        res->index_s = t2 - t1;

        bool *read_map = calloc(img->n_chunks + 1, sizeof(bool));
        uint8_t *done = calloc(1, install_bitmap_size(img->n_chunks) + 1);
        if (!read_map || !done)
                die("out of memory");
        struct source src = {
                .reader = bundle_get_reader(b), .offset = offsets[0], .chunk_size = img->chunk_size,
                .read_map = read_map,
                .lock = PTHREAD_MUTEX_INITIALIZER,
        };
        struct ckpt ck = {.img = img, .file = STATEFILE_PAIR_INIT};
        int slot_fd;
        if (slot_open_write(slot_path, img->size, &slot_fd, &reason) < 0)
                die("slot_open_write: %s", reason ? reason : "?");
        struct install_request req = {
                .image = img,
                .slot_fd = slot_fd,
                .active_fd = ix ? active_fd : -1,
                .active = ix,
                .source = {.read = source_read, .userdata = &src, .concurrent = true},
                .done = done,
                .checkpoint = checkpoint,
                .userdata = &ck,
                .checkpoint_bytes = 8u * 1024u * 1024u,
                .checkpoint_coalesce = true, /* as the agent */
                .checkpoint_on_slot_disk = same_disk(slot_fd, tmpdir, "/sys"),
                .source_verified = verify_first,
                .drop_cache = true,
        };
        bool ok = true;
        if (verify_first) {
                struct install_stats vst;
                if (install_verify_source(&req, &vst, &reason) < 0)
                        die("install_verify_source: %s", reason ? reason : "?");
                res->verify_bytes = src.bytes;
                ok = ok && vst.bytes_from_source == src.bytes;
                for (uint64_t i = 0; i < img->n_chunks; i++)
                        if (read_map[i] != (changed ? changed[i] : true))
                                ok = false;
                memset(read_map, 0, img->n_chunks * sizeof(bool));
                src.bytes = 0;
                src.seconds = 0;
        }
        double t3 = now_s();
        res->verify_s = t3 - t2;
        /* as the agent: the progress file written anew before the slot streams */
        struct install_stats none = {0};
        if (checkpoint(&ck, done, &none, true) < 0)
                die("the first progress save: %m");
        if (install_image(&req, &res->st, &reason) < 0)
                die("install_image: %s", reason ? reason : "?");
        if (close(slot_fd) < 0)
                die("close slot: %m");
        double t4 = now_s();
        res->install_s = t4 - t3;
        res->total_s = t4 - t0;
        res->install_bytes = src.bytes;
        for (uint64_t i = 0; i < img->n_chunks; i++)
                if (read_map[i] != (changed ? changed[i] : true))
                        ok = false;
        res->read_only_changed = ok;
        res->checkpoints = ck.count;
        res->ckpt_s = ck.seconds;
        statefile_pair_close(&ck.file);
        res->read_s = src.seconds;
        install_index_free(ix);
        if (active_fd >= 0)
                close(active_fd);
        free(read_map);
        free(done);
        bundle_close(b);
}

/* ---- output ---------------------------------------------------------------------------- */

static double size_mib;

static void row(const char *what, double s, double limit_s) {
        if (limit_s > 0)
                printf("  %-52s %8.3f s %8.1f MiB/s %6.2fx\n", what, s, size_mib / s, s / limit_s);
        else if (s > 0)
                printf("  %-52s %8.3f s %8.1f MiB/s\n", what, s, size_mib / s);
        else
                printf("  %-52s %8.3f s\n", what, s);
}

static void row_part(const char *what, double s) {
        printf("    %-50s %8.3f s\n", what, s);
}

static void usage(void) {
        fprintf(stderr, "usage: update-install [--size-mib N] [--chunk-kib K] [--warm] [DIR]\n");
        exit(2);
}

int main(int argc, char *argv[]) {
        bench_name = "update-install";
        uint64_t mib = 512, chunk_kib = MANIFEST_CHUNK_SIZE_DEFAULT / 1024;
        bool warm = false;
        const char *base = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--size-mib") == 0 && i + 1 < argc)
                        mib = strtoull(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--chunk-kib") == 0 && i + 1 < argc)
                        chunk_kib = strtoull(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--warm") == 0)
                        warm = true;
                else if (argv[i][0] == '-' || base)
                        usage();
                else
                        base = argv[i];
        }
        if (mib < 1 || mib > 64 * 1024 || chunk_kib * 1024 < MANIFEST_CHUNK_SIZE_MIN ||
            chunk_kib * 1024 > MANIFEST_CHUNK_SIZE_MAX)
                usage();
        if (!base)
                base = getenv("TMPDIR");
        if (!base || !*base)
                base = "/tmp";
        log_setup("bench", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);

        const uint64_t size = mib * 1024 * 1024, chunk = chunk_kib * 1024;
        const uint64_t n_chunks = manifest_chunk_count(size, chunk);
        size_mib = (double) size / MIB;
        cache_drop = !warm && drop_caches_probe();

        snprintf(tmpdir, sizeof(tmpdir), "%s/orbit-bench-install-XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
                tmpdir[0] = '\0';
                die("mkdtemp in %s: %m", base);
        }
        atexit(cleanup_tmpdir);

        char image1[PATH_MAX], image2[PATH_MAX], bundle1[PATH_MAX], bundle2[PATH_MAX],
                ca_key[PATH_MAX], ca_cert[PATH_MAX], key[PATH_MAX], cert[PATH_MAX],
                slot_a[PATH_MAX], slot_b[PATH_MAX];
        path_in(image1, "image1.img");
        path_in(image2, "image2.img");
        path_in(bundle1, "image1.obundle");
        path_in(bundle2, "image2.obundle");
        path_in(ca_key, "ca.key");
        path_in(ca_cert, "ca.pem");
        path_in(key, "signer.key");
        path_in(cert, "signer.pem");
        path_in(slot_a, "slot-a");
        path_in(slot_b, "slot-b");

        /* Setup: images, keys, bundles. */
        double t0 = now_s();
        make_image(image1, size, SEED);
        bool *changed = calloc(n_chunks + 1, sizeof(bool));
        uint64_t *order = calloc(n_chunks + 1, sizeof(uint64_t));
        if (!changed || !order)
                die("out of memory");
        uint64_t n_changed = (n_chunks * CHANGED_PERCENT + 99) / 100, changed_bytes = 0;
        for (uint64_t i = 0; i < n_chunks; i++)
                order[i] = i;
        uint64_t seed = SEED;
        for (uint64_t i = 0; i < n_changed; i++) { /* a partial Fisher-Yates shuffle */
                uint64_t j = i + rng_next(&seed) % (n_chunks - i);
                uint64_t tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
                changed[order[i]] = true;
                changed_bytes += (order[i] + 1) * chunk <= size ? chunk : size - order[i] * chunk;
        }
        free(order);
        make_changed_image(image1, image2, size, chunk, changed);
        keygen("CN=bench release CA,O=orbit", true, NULL, NULL, ca_key, ca_cert);
        keygen("CN=bench release signer,O=orbit", false, ca_key, ca_cert, key, cert);
        make_bundle(bundle1, image1, "1.0.0", chunk, key, cert);
        make_bundle(bundle2, image2, "1.1.0", chunk, key, cert);
        struct signature_keyring *kr = signature_keyring_new();
        char *pem = NULL, *reason = NULL;
        size_t pem_len;
        if (!kr || read_file_bounded(ca_cert, SIGNATURE_KEYRING_FILE_MAX_SIZE, &pem, &pem_len) < 0 ||
            signature_keyring_add(kr, pem, pem_len, ca_cert, &reason) < 0)
                die("keyring: %s", reason ? reason : "?");
        free(pem);
        /* The active image's manifest, as the agent records it after an install. */
        char *active_manifest;
        {
                struct bundle_verify_options vo = {
                        .keyring = kr, .hardware = "bench-board", .now = time(NULL)};
                struct bundle *b = NULL;
                if (bundle_open(bundle1, &vo, &b, &reason) < 0)
                        die("bundle_open %s: %s", bundle1, reason ? reason : "?");
                size_t len;
                active_manifest = strdup(bundle_manifest_text(b, &len));
                if (!active_manifest)
                        die("out of memory");
                bundle_close(b);
        }
        double setup_s = now_s() - t0;

        /* What one core hashes in memory: the engine hashes every byte twice (chunk, whole). */
        double sha_mib_s;
        {
                const size_t len = 64u * 1024 * 1024;
                uint8_t *buf = malloc(len), digest[SHA256_DIGEST_SIZE];
                if (!buf)
                        die("out of memory");
                rng_fill(&seed, buf, len);
                double h0 = now_s();
                for (int k = 0; k < 2; k++)
                        sha256_buffer(buf, len, digest);
                sha_mib_s = 2.0 * (double) len / MIB / (now_s() - h0);
                free(buf);
        }

        printf("update install benchmark: %.0f MiB image, %" PRIu64 " KiB chunks (%" PRIu64
               " chunks), in %s\n",
               size_mib, chunk_kib, n_chunks, tmpdir);
        printf("setup (2 images, CA + signer keys, 2 signed bundles): %.1f s\n", setup_s);
        if (cache_drop)
                printf("page cache: dropped before every phase (sync; echo 3 > "
                       "/proc/sys/vm/drop_caches): all inputs start cold\n");
        else
                printf("page cache: not dropped (%s); every phase reads its input first: all "
                       "inputs start warm\n",
                       warm ? "--warm" : "/proc/sys/vm/drop_caches is not writable");
        printf("SHA-256 in memory, one core, lib/sha256 (libcrypto, mbedTLS fallback): %.0f MiB/s\n", sha_mib_s);
        printf("engine: checkpoint every 8 MiB (fdatasync + POSIX_FADV_DONTNEED + progress "
               "state file), as the agent\n\n");

        /* a. The limit: the real tools. */
        const char *in_image1[] = {image1, NULL};
        phase_start(in_image1);
        double a0 = now_s();
        run((char *const[]){"sha256sum", image1, NULL});
        double a1 = now_s();
        run((char *const[]){"cp", "--reflink=never", "--sparse=never", image1, slot_a, NULL});
        double a2 = now_s();
        fdatasync_path(slot_a);
        double a3 = now_s();
        double limit_s = a3 - a0;
        (void) unlink(slot_a);

        /* b. Fresh installs. */
        const char *in_bundle1[] = {bundle1, NULL};
        struct run_result fresh, fresh_v;
        phase_start(in_bundle1);
        engine_install(bundle1, kr, slot_a, NULL, NULL, DELTA_NONE, false, NULL, &fresh);
        (void) unlink(slot_a);
        phase_start(in_bundle1);
        engine_install(bundle1, kr, slot_a, NULL, NULL, DELTA_NONE, true, NULL, &fresh_v);
        /* slot_a now holds image 1: the active slot of the delta installs. */

        /* c. Deltas into slot B. */
        const char *in_delta[] = {bundle2, slot_a, NULL};
        struct run_result dm, ds;
        phase_start(in_delta);
        engine_install(bundle2, kr, slot_b, slot_a, active_manifest, DELTA_MANIFEST, true, changed, &dm);
        (void) unlink(slot_b);
        phase_start(in_delta);
        engine_install(bundle2, kr, slot_b, slot_a, NULL, DELTA_SCAN, true, changed, &ds);
        (void) unlink(slot_b);
        (void) unlink(slot_a);

        printf("%-54s %10s %15s %7s\n", "phase", "time", "throughput", "/limit");
        printf("limit: sha256sum + cp + fdatasync (coreutils binaries)\n");
        row_part("sha256sum IMAGE", a1 - a0);
        row_part("cp --reflink=never IMAGE SLOT", a2 - a1);
        row_part("fdatasync SLOT", a3 - a2);
        row("total", limit_s, 0);
        printf("fresh install, no verify pass\n");
        row_part("bundle_open (signature) + bundle_locate_payloads", fresh.open_s);
        row_part("install_image", fresh.install_s);
        printf("    %-50s %8.3f s  (%u checkpoints: %.3f s in the progress file)\n",
               "  of which reading the bundle", fresh.read_s, fresh.checkpoints, fresh.ckpt_s);
        row("total", fresh.total_s, limit_s);
        printf("fresh install, install_verify_source first (agent default)\n");
        row_part("bundle_open (signature) + bundle_locate_payloads", fresh_v.open_s);
        row_part("install_verify_source", fresh_v.verify_s);
        row_part("install_image", fresh_v.install_s);
        printf("    %-50s %8.3f s  (%u checkpoints: %.3f s in the progress file)\n",
               "  of which reading the bundle", fresh_v.read_s, fresh_v.checkpoints, fresh_v.ckpt_s);
        row("total", fresh_v.total_s, limit_s);

        const struct run_result *deltas[] = {&dm, &ds};
        const char *names[] = {"index from the active image's manifest (agent record)",
                               "index by install_index_scan of the active slot (factory)"};
        printf("delta: %" PRIu64 " of %" PRIu64 " chunks changed (%d%%): %.1f MiB had to move\n",
               n_changed, n_chunks, CHANGED_PERCENT, (double) changed_bytes / MIB);
        for (size_t k = 0; k < 2; k++) {
                const struct run_result *d = deltas[k];
                printf("  %s, verify first\n", names[k]);
                row_part("bundle_open + locate", d->open_s);
                row_part(k == 0 ? "install_index_from_image" : "install_index_scan", d->index_s);
                printf("    %-50s %8.3f s  read %.1f MiB from the bundle\n", "install_verify_source",
                       d->verify_s, (double) d->verify_bytes / MIB);
                printf("    %-50s %8.3f s  read %.1f MiB from the bundle; %" PRIu64
                       " chunks from the active slot, %" PRIu64 " from the bundle\n",
                       "install_image", d->install_s, (double) d->install_bytes / MIB,
                       d->st.chunks_from_active, d->st.chunks_from_source);
                row("total", d->total_s, limit_s);
        }

        printf("\ngoals\n");
        double ratio = fresh.total_s / limit_s, ratio_v = fresh_v.total_s / limit_s;
        printf("  %-4s install within 20%% of the limit (no verify pass): %.2fx the limit's time\n",
               ratio <= GOAL_RATIO ? "PASS" : "MISS", ratio);
        printf("  %-4s install within 20%% of the limit (verify first, agent default): %.2fx\n",
               ratio_v <= GOAL_RATIO ? "PASS" : "MISS", ratio_v);
        for (size_t k = 0; k < 2; k++) {
                const struct run_result *d = deltas[k];
                bool pass = d->read_only_changed && d->install_bytes == changed_bytes &&
                            d->verify_bytes == changed_bytes;
                printf("  %-4s delta reads only the changed chunks (%s): %.1f MiB read per pass, "
                       "%.1f MiB changed\n",
                       pass ? "PASS" : "MISS", k == 0 ? "manifest index" : "scan index",
                       (double) d->install_bytes / MIB, (double) changed_bytes / MIB);
        }
        free(changed);
        free(active_manifest);
        signature_keyring_free(kr);
        return 0;
}
