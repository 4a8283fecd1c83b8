/*
 * Benchmark: multi-buffer SHA-256 (issue #16), in one run, medians of 5.
 *
 *  hash    GB/s on one core over 256 MiB in 1 MiB chunks: sha256_buffer per chunk
 *          (OpenSSL), then sha256_buffers four chunks at a time;
 *  verify  install_verify_source (the check before writing) over a 512 MiB image of
 *          1 MiB chunks from a memfd read with pread (as a warm bundle file), on the
 *          agent's threads (one per CPU, at most 4): with sha256_buffers forced to its
 *          fallback (one chunk at a time through OpenSSL: the hashing before #16), then
 *          with the SHA extensions;
 *  scan    install_index_scan of the same memfd (a factory image indexed for a delta:
 *          one thread), the same two ways.
 *
 * Without the x86 SHA extensions (another CPU, or under valgrind, whose CPUID hides
 * them) both sides are the same code: said so, figures still printed. Figures, not a
 * test: exit status 0 unless the bench could not run.
 *
 * usage: sha256-buffers [--size-mib N]
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/bench-util.h"
#include "lib/fileio.h"
#include "lib/sha256.h"
#include "lib/sha256-x86.h"
#include "update/install.h"
#include "update/manifest.h"

#define CHUNK (1u << 20)
#define RUNS 5
#define HASH_MIB 256

static double median(double v[RUNS]) {
        qsort(v, RUNS, sizeof(v[0]), cmp_double);
        return v[RUNS / 2];
}

static uint8_t *pattern(size_t size) {
        uint8_t *p = malloc(size);
        if (!p)
                die("no memory for %zu bytes", size);
        uint64_t x = 0x0b17a9e5eedULL;
        for (size_t i = 0; i < size; i += 8) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                memcpy(p + i, &x, size - i < 8 ? size - i : 8);
        }
        return p;
}

/* GB/s of one core hashing size bytes in 1 MiB chunks, lanes at a time (1: sha256_buffer). */
static double hash_rate(const uint8_t *p, size_t size, unsigned lanes) {
        uint8_t out[SHA256_LANES][SHA256_DIGEST_SIZE];
        double t0 = now_s();
        for (size_t off = 0; off + (size_t) lanes * CHUNK <= size; off += (size_t) lanes * CHUNK) {
                if (lanes == 1) {
                        sha256_buffer(p + off, CHUNK, out[0]);
                        continue;
                }
                const void *data[SHA256_LANES];
                for (unsigned l = 0; l < lanes; l++)
                        data[l] = p + off + (size_t) l * CHUNK;
                sha256_buffers(data, CHUNK, lanes, out);
        }
        return (double) size / (now_s() - t0) / 1e9;
}

static int memfd_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        int fd = *(int *) userdata;
        return pread_all(fd, buf, len, offset);
}

static double verify_seconds(const struct manifest_image *img, int fd) {
        uint8_t *done = calloc(1, install_bitmap_size(img->n_chunks));
        if (!done)
                die("no memory");
        struct install_request req = {
                .image = img,
                .slot_fd = -1,
                .active_fd = -1,
                .source = {.read = memfd_read, .userdata = &fd, .concurrent = true},
                .done = done,
        };
        struct install_stats st;
        char *reason = NULL;
        double t0 = now_s();
        int r = install_verify_source(&req, &st, &reason);
        double t = now_s() - t0;
        if (r < 0 || st.bytes_from_source != img->size)
                die("install_verify_source: %s", reason ? reason : strerror(-r));
        free(done);
        return t;
}

static double scan_seconds(int fd, uint64_t size) {
        struct install_index *ix;
        double t0 = now_s();
        int r = install_index_scan(fd, size, CHUNK, NULL, &ix);
        double t = now_s() - t0;
        if (r < 0)
                die("install_index_scan: %s", strerror(-r));
        install_index_free(ix);
        return t;
}

int main(int argc, char **argv) {
        size_t size_mib = 512;
        bench_name = "sha256-buffers";
        if (argc == 3 && strcmp(argv[1], "--size-mib") == 0)
                size_mib = strtoul(argv[2], NULL, 10);
        else if (argc != 1)
                die("usage: sha256-buffers [--size-mib N]");
        if (size_mib < 1)
                die("--size-mib: at least 1");
        bool sha = sha256_x86_usable();
        printf("SHA-256, 1 MiB chunks, medians of %d; x86 SHA extensions: %s\n", RUNS,
               sha ? "yes" : "no (both sides the fallback)");

        uint8_t *p = pattern((size_t) HASH_MIB << 20);
        double one[RUNS], four[RUNS];
        for (int k = 0; k < RUNS; k++) {
                one[k] = hash_rate(p, (size_t) HASH_MIB << 20, 1);
                four[k] = hash_rate(p, (size_t) HASH_MIB << 20, SHA256_LANES);
        }
        double m1 = median(one), m4 = median(four);
        printf("hash    one core: sha256_buffer %.2f GB/s, sha256_buffers x%d %.2f GB/s (%.2fx)\n",
               m1, SHA256_LANES, m4, m4 / m1);
        free(p);

        /* the image, its chunk hashes as a manifest would list them */
        size_t size = size_mib << 20;
        p = pattern(size);
        struct manifest_image img = {.slot_class = (char *) "rootfs", .size = size,
                                     .chunk_size = CHUNK, .n_chunks = size_mib};
        img.chunks = malloc(img.n_chunks * SHA256_DIGEST_SIZE);
        if (!img.chunks)
                die("no memory");
        for (uint64_t i = 0; i < img.n_chunks; i++)
                sha256_buffer(p + i * CHUNK, CHUNK, img.chunks[i]);
        int fd = memfd_create("sha256-buffers", MFD_CLOEXEC);
        if (fd < 0 || write_all(fd, p, size) < 0)
                die("memfd: %m");
        free(p);

        double before[RUNS], after[RUNS];
        for (int k = 0; k < RUNS; k++) {
                sha256_buffers_force_fallback(true);
                before[k] = verify_seconds(&img, fd);
                sha256_buffers_force_fallback(false);
                after[k] = verify_seconds(&img, fd);
        }
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        double b = median(before), a = median(after);
        printf("verify  install_verify_source, %zu MiB, %ld CPUs: one at a time %.3f s, "
               "sha256_buffers %.3f s (%.2fx, %.3f s saved)\n",
               size_mib, cpus, b, a, b / a, b - a);
        for (int k = 0; k < RUNS; k++) {
                sha256_buffers_force_fallback(true);
                before[k] = scan_seconds(fd, size);
                sha256_buffers_force_fallback(false);
                after[k] = scan_seconds(fd, size);
        }
        b = median(before);
        a = median(after);
        printf("scan    install_index_scan, %zu MiB, one thread: one at a time %.3f s, "
               "sha256_buffers %.3f s (%.2fx)\n",
               size_mib, b, a, b / a);
        close(fd);
        free(img.chunks);
        return 0;
}
