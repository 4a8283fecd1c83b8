/*
 * The fuzz PKI (tests/fuzz/keys, test-only, valid 2020 to 2119): the CA ca.pem issued the
 * release signer release.pem (the bundle and signature seeds) and the command signer
 * command.pem (the command envelopes); root.pem is a self-signed root of trust that signs
 * the trust documents. tests/fuzz/make-seeds.sh re-makes the seeds from these keys and,
 * with --keys, new keys and the two texts embedded here.
 */
#pragma once

static const char FUZZ_CA_PEM[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIBujCCAV6gAwIBAgIQe3AGS4mMbIK3xGQaE0O1uzAMBggqhkjOPQQDAgUAMCgx\n"
        "FjAUBgNVBAMMDW9yYml0IGZ1enogQ0ExDjAMBgNVBAoMBW9yYml0MCAXDTIwMDEw\n"
        "MTAwMDAwMFoYDzIxMTkxMjA4MDAwMDAwWjAoMRYwFAYDVQQDDA1vcmJpdCBmdXp6\n"
        "IENBMQ4wDAYDVQQKDAVvcmJpdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABLYK\n"
        "R625/S07go2S+uCm4APkZ+LSXLFYvOMBQLwe8wlyLenRMjtdtwqwOxaJMxDdMoW9\n"
        "JVdFpYlQjReiLQ/5ynSjZjBkMBIGA1UdEwEB/wQIMAYBAf8CAQEwHQYDVR0OBBYE\n"
        "FKp7ehd6AHFYMJexqe2o4UorxRhgMB8GA1UdIwQYMBaAFKp7ehd6AHFYMJexqe2o\n"
        "4UorxRhgMA4GA1UdDwEB/wQEAwIBBjAMBggqhkjOPQQDAgUAA0gAMEUCIQDb28aW\n"
        "R8Q/x6XVEKR/xh3Ze7kASTfrxzysx3E6fLMNDwIgWlvVF7lk+j+NNoEMo8CKRy8H\n"
        "YnSUUzEbKVfFS1zHoVY=\n"
        "-----END CERTIFICATE-----\n"
        ;

/* The trust document in force for fuzz-trust: corpus/fuzz-trust/valid-v1.json (version 1,
 * root root.pem, threshold 1, the CA as release and command anchor). */
static const char FUZZ_TRUST_IN_FORCE[] =
        "{\n"
        " \"signed\": \"{\\n \\\"type\\\": \\\"orbit-trust\\\",\\n \\\"format\\\": 1,\\n \\\"version\\"
        "\": 1,\\n \\\"expires\\\": 4000000000,\\n \\\"threshold\\\": 1,\\n \\\"roots\\\": [\\n  \\"
        "\"-----BEGIN CERTIFICATE-----\\\\nMIIB1zCCAXqgAwIBAgIQWXskApSEQ+kthLixlEQEF"
        "jAMBggqhkjOPQQDAgUAMCox\\\\nGDAWBgNVBAMMD29yYml0IGZ1enogcm9vdDEOMAwGA1UECg"
        "wFb3JiaXQwIBcNMjAw\\\\nMTAxMDAwMDAwWhgPMjExOTEyMDgwMDAwMDBaMCoxGDAWBgNVBAM"
        "MD29yYml0IGZ1\\\\nenogcm9vdDEOMAwGA1UECgwFb3JiaXQwWTATBgcqhkjOPQIBBggqhkjO"
        "PQMBBwNC\\\\nAATwPi8I5ZQBzpMYvJik2xxAwauBHE//Yvu/dkNW5bBfybTkgHRJsv0J/5GPG"
        "7rw\\\\nPuApYE606siFIDFYBKlRwHRNo34wfDAJBgNVHRMEAjAAMB0GA1UdDgQWBBSu5VVG\\\\"
        "nJ47ni9K0H5PUJbJMoZt05jAfBgNVHSMEGDAWgBSu5VVGJ47ni9K0H5PUJbJMoZt0\\\\n5jAO"
        "BgNVHQ8BAf8EBAMCB4AwHwYDVR0lBBgwFgYUaYi7gumu66Kk47C41JaOkpir\\\\nTAMwDAYIK"
        "oZIzj0EAwIFAANJADBGAiEA7Klax9GXriKQggiAU27APWBVZsjynvll\\\\nb08GQsHPezgCIQ"
        "CJ5LgpgiZLRpr6AnZlXcIbYIx6izMTrdRtiMiIro8+ww==\\\\n-----END CERTIFICATE---"
        "--\\\\n\\\"\\n ],\\n \\\"release\\\": [\\n  \\\"-----BEGIN CERTIFICATE-----\\\\nMIIBujC"
        "CAV6gAwIBAgIQe3AGS4mMbIK3xGQaE0O1uzAMBggqhkjOPQQDAgUAMCgx\\\\nFjAUBgNVBAMM"
        "DW9yYml0IGZ1enogQ0ExDjAMBgNVBAoMBW9yYml0MCAXDTIwMDEw\\\\nMTAwMDAwMFoYDzIxM"
        "TkxMjA4MDAwMDAwWjAoMRYwFAYDVQQDDA1vcmJpdCBmdXp6\\\\nIENBMQ4wDAYDVQQKDAVvcm"
        "JpdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABLYK\\\\nR625/S07go2S+uCm4APkZ+LSXLF"
        "YvOMBQLwe8wlyLenRMjtdtwqwOxaJMxDdMoW9\\\\nJVdFpYlQjReiLQ/5ynSjZjBkMBIGA1Ud"
        "EwEB/wQIMAYBAf8CAQEwHQYDVR0OBBYE\\\\nFKp7ehd6AHFYMJexqe2o4UorxRhgMB8GA1UdI"
        "wQYMBaAFKp7ehd6AHFYMJexqe2o\\\\n4UorxRhgMA4GA1UdDwEB/wQEAwIBBjAMBggqhkjOPQ"
        "QDAgUAA0gAMEUCIQDb28aW\\\\nR8Q/x6XVEKR/xh3Ze7kASTfrxzysx3E6fLMNDwIgWlvVF7l"
        "k+j+NNoEMo8CKRy8H\\\\nYnSUUzEbKVfFS1zHoVY=\\\\n-----END CERTIFICATE-----\\\\n\\"
        "\"\\n ],\\n \\\"command\\\": [\\n  \\\"-----BEGIN CERTIFICATE-----\\\\nMIIBujCCAV6gA"
        "wIBAgIQe3AGS4mMbIK3xGQaE0O1uzAMBggqhkjOPQQDAgUAMCgx\\\\nFjAUBgNVBAMMDW9yYm"
        "l0IGZ1enogQ0ExDjAMBgNVBAoMBW9yYml0MCAXDTIwMDEw\\\\nMTAwMDAwMFoYDzIxMTkxMjA"
        "4MDAwMDAwWjAoMRYwFAYDVQQDDA1vcmJpdCBmdXp6\\\\nIENBMQ4wDAYDVQQKDAVvcmJpdDBZ"
        "MBMGByqGSM49AgEGCCqGSM49AwEHA0IABLYK\\\\nR625/S07go2S+uCm4APkZ+LSXLFYvOMBQ"
        "Lwe8wlyLenRMjtdtwqwOxaJMxDdMoW9\\\\nJVdFpYlQjReiLQ/5ynSjZjBkMBIGA1UdEwEB/w"
        "QIMAYBAf8CAQEwHQYDVR0OBBYE\\\\nFKp7ehd6AHFYMJexqe2o4UorxRhgMB8GA1UdIwQYMBa"
        "AFKp7ehd6AHFYMJexqe2o\\\\n4UorxRhgMA4GA1UdDwEB/wQEAwIBBjAMBggqhkjOPQQDAgUA"
        "A0gAMEUCIQDb28aW\\\\nR8Q/x6XVEKR/xh3Ze7kASTfrxzysx3E6fLMNDwIgWlvVF7lk+j+NN"
        "oEMo8CKRy8H\\\\nYnSUUzEbKVfFS1zHoVY=\\\\n-----END CERTIFICATE-----\\\\n\\\"\\n ],"
        "\\n \\\"revoked\\\": []\\n}\",\n"
        " \"signatures\": [\n"
        "  \"{\\n  \\\"format\\\": 2,\\n  \\\"algorithm\\\": \\\"ecdsa-p256-sha256\\\",\\n  \\\"con"
        "text\\\": \\\"orbit trust document\\\",\\n  \\\"signature\\\": \\\"MEUCIQCCNr2KoOmfQw"
        "/URtA0HqvCXb1nFh297NjS/lXxGZlldAIgQNpECbwWntxr8k+bqAGihsJz1yyWLL1OuCLDB4"
        "Vw0fk=\\\",\\n  \\\"certificates\\\": [\\n    \\\"MIIB1zCCAXqgAwIBAgIQWXskApSEQ+kt"
        "hLixlEQEFjAMBggqhkjOPQQDAgUAMCoxGDAWBgNVBAMMD29yYml0IGZ1enogcm9vdDEOMAwG"
        "A1UECgwFb3JiaXQwIBcNMjAwMTAxMDAwMDAwWhgPMjExOTEyMDgwMDAwMDBaMCoxGDAWBgNV"
        "BAMMD29yYml0IGZ1enogcm9vdDEOMAwGA1UECgwFb3JiaXQwWTATBgcqhkjOPQIBBggqhkjO"
        "PQMBBwNCAATwPi8I5ZQBzpMYvJik2xxAwauBHE//Yvu/dkNW5bBfybTkgHRJsv0J/5GPG7rw"
        "PuApYE606siFIDFYBKlRwHRNo34wfDAJBgNVHRMEAjAAMB0GA1UdDgQWBBSu5VVGJ47ni9K0"
        "H5PUJbJMoZt05jAfBgNVHSMEGDAWgBSu5VVGJ47ni9K0H5PUJbJMoZt05jAOBgNVHQ8BAf8E"
        "BAMCB4AwHwYDVR0lBBgwFgYUaYi7gumu66Kk47C41JaOkpirTAMwDAYIKoZIzj0EAwIFAANJ"
        "ADBGAiEA7Klax9GXriKQggiAU27APWBVZsjynvllb08GQsHPezgCIQCJ5LgpgiZLRpr6AnZl"
        "XcIbYIx6izMTrdRtiMiIro8+ww==\\\"\\n  ]\\n}\"\n"
        " ]\n"
        "}\n"
        ;

#include "update/signature.h"

/* The keyring of FUZZ_CA_PEM; made once, aborts if the embedded certificate does not load. */
static inline struct signature_keyring *fuzz_keyring(void) {
        static struct signature_keyring *kr;
        if (!kr) {
                char *reason = NULL;
                kr = signature_keyring_new();
                if (!kr || signature_keyring_add(kr, FUZZ_CA_PEM, strlen(FUZZ_CA_PEM), "fuzz-ca.pem",
                                                 &reason) < 0) {
                        fprintf(stderr, "fuzz keyring: %s\n", reason ? reason : "out of memory");
                        abort();
                }
        }
        return kr;
}
