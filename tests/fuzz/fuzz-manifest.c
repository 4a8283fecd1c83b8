/*
 * Fuzz the bundle manifest parser: manifests arrive from the ground inside bundles,
 * and are parsed only after their signature verified, but a signing mistake must still
 * not crash the node. Whatever parses must format back and parse to the same manifest.
 */
#include "config.h"

#include "fuzz-util.h"
#include "update/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        for (unsigned flags = 0; flags <= MANIFEST_PARSE_TEMPLATE; flags += MANIFEST_PARSE_TEMPLATE) {
                struct manifest m = {0};
                char *msg = NULL;
                if (manifest_parse_text("fuzz", (const char *) data, size, flags, &m, &msg) == 0) {
                        char *text = NULL;
                        size_t len = 0;
                        if (manifest_format(&m, &text, &len) == 0) {
                                struct manifest back = {0};
                                char *msg2 = NULL;
                                FUZZ_CHECK(manifest_parse_text("fuzz", text, len, flags, &back, &msg2) == 0);
                                FUZZ_CHECK(back.n_images == m.n_images);
                                FUZZ_CHECK(back.security_version == m.security_version);
                                for (size_t i = 0; i < m.n_images; i++) {
                                        FUZZ_CHECK(back.images[i].size == m.images[i].size);
                                        FUZZ_CHECK(back.images[i].n_chunks == m.images[i].n_chunks);
                                }
                                manifest_free(&back);
                                free(msg2);
                                free(text);
                        }
                } else
                        FUZZ_CHECK(msg != NULL);
                manifest_free(&m);
                free(msg);
        }
        return 0;
}
