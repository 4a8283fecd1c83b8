/*
 * Fuzz the bundle reader: bundles arrive from the ground, fetched over links anyone may
 * tamper with. The input is the bundle file (a memfd), opened and verified as the agent
 * does (keyring tests/fuzz/keys/ca.pem: the seeds signed by its release signer pass the
 * signature, so the mutations reach the payloads), read chunk by chunk to the end, located
 * for random access, and read unverified as "orbit-bundle info" does.
 */
#include "config.h"

#include <sys/mman.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "fuzz-keys.h"
#include "update/bundle.h"

/* Bundles are larger than the other inputs; more would only slow the runs down. */
#define FUZZ_BUNDLE_MAX_INPUT (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_BUNDLE_MAX_INPUT)
                return 0;
        int fd = memfd_create("fuzz-bundle", MFD_CLOEXEC);
        FUZZ_CHECK(fd >= 0);
        FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t) size);
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

        struct bundle_verify_options o = {.keyring = fuzz_keyring(), .hardware = "orbit-board-v2",
                                          .min_security_version = 0,
                                          .now = SIGNATURE_NOW_UNKNOWN};
        for (int pass = 0; pass < 2; pass++) {
                FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
                struct bundle *b = NULL;
                char *reason = NULL;
                int r = bundle_open_fd(fd, "fuzz", &o, &b, &reason);
                if (r < 0) {
                        FUZZ_CHECK(reason != NULL);
                        free(reason);
                        break;
                }
                const struct manifest *m = bundle_manifest(b);
                FUZZ_CHECK(m && m->n_images <= MANIFEST_MAX_IMAGES);
                if (pass == 0) {
                        uint64_t offsets[MANIFEST_MAX_IMAGES];
                        r = bundle_locate_payloads(b, offsets, &reason);
                        if (r == 0)
                                for (size_t i = 0; i < m->n_images; i++)
                                        FUZZ_CHECK(offsets[i] + m->images[i].size <= size);
                        free(reason);
                        reason = NULL;
                        r = bundle_verify_payloads(b, &reason);
                        FUZZ_CHECK(r >= 0 || reason);
                } else {
                        struct bundle_chunk c;
                        while ((r = bundle_next_chunk(b, &c, &reason)) == 1) {
                                FUZZ_CHECK(c.image < m->n_images);
                                FUZZ_CHECK(c.offset + c.len <= m->images[c.image].size);
                        }
                        FUZZ_CHECK(r == 0 || reason);
                }
                free(reason);
                bundle_close(b);
        }

        struct manifest m = {0};
        struct signature_info signer;
        char *reason = NULL;
        if (bundle_read_unverified(path, &m, &signer, &reason) == 0)
                manifest_free(&m);
        free(reason);
        close(fd);
        return 0;
}
