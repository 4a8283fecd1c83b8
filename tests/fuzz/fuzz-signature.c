/*
 * Fuzz the signature file parser and verifier: manifest.sig comes from the ground inside
 * bundles and signs every command. The input is the signature file's text; the signed
 * data is fixed (the seeds in corpus/fuzz-signature sign exactly FUZZ_SIGNED_DATA for a
 * bundle with the release signer tests/fuzz/keys/release.key, made by make-seeds.sh), the
 * keyring is tests/fuzz/keys/ca.pem.
 */
#include "config.h"

#include "fuzz-util.h"
#include "fuzz-keys.h"
#include "update/signature.h"

#define FUZZ_SIGNED_DATA "orbit fuzz: the fixed data every fuzz-signature input signs\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        const struct signature_keyring *kr = fuzz_keyring();
        /* An exact-size heap copy: any over-read is an ASan report. */
        char *text = malloc(size ? size : 1);
        FUZZ_CHECK(text);
        if (size)
                memcpy(text, data, size);

        struct signature_info info;
        char *reason = NULL;
        int described = signature_describe(text, size, &info, &reason);
        if (described == 0) {
                FUZZ_CHECK(memchr(info.signer, 0, sizeof(info.signer)));
                FUZZ_CHECK(memchr(info.issuer, 0, sizeof(info.issuer)));
                FUZZ_CHECK(info.n_certificates >= 1 && info.n_certificates <= SIGNATURE_MAX_CERTS);
        } else
                FUZZ_CHECK(described < 0 && reason);
        free(reason);

        reason = NULL;
        int r = signature_verify(SIGNATURE_FOR_BUNDLE, FUZZ_SIGNED_DATA, strlen(FUZZ_SIGNED_DATA), text, size, kr,
                                 SIGNATURE_NOW_UNKNOWN, &info, &reason);
        if (r == 0)
                /* What verifies also parses. */
                FUZZ_CHECK(described == 0);
        else
                FUZZ_CHECK(r < 0 && reason);
        free(reason);

        /* The same signature over other data never verifies. */
        reason = NULL;
        FUZZ_CHECK(signature_verify(SIGNATURE_FOR_BUNDLE, "other data", 10, text, size, kr, SIGNATURE_NOW_UNKNOWN, NULL,
                                    &reason) < 0);
        free(reason);
        free(text);
        return 0;
}
