/*
 * What tests/fuzz/make-seeds.sh needs beyond orbit-bundle and command-verify (built by
 * `make check`, with the normal compiler):
 *   seed-tool sign PURPOSE KEY CERT FILE
 *       a signature file over FILE's bytes (PURPOSE: bundle, command, trust, rollback)
 *   seed-tool trust-new VERSION EXPIRES THRESHOLD ROOT_PEM RELEASE_PEM COMMAND_PEM
 *       an unsigned trust envelope (each PEM file one certificate), no revocations
 *   seed-tool trust-sign ENVELOPE KEY CERT
 *       the envelope with a root signature over its "signed" text added
 * Everything goes to stdout; exit 0, or 2 with the reason on stderr.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/macro.h"
#include "update/signature.h"
#include "update/trust.h"

static char *slurp(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap + 1);
        size_t n;
        while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
                len += n;
                if (len == cap) {
                        char *b = realloc(buf, (cap *= 2) + 1);
                        if (!b) {
                                free(buf);
                                buf = NULL;
                        } else
                                buf = b;
                }
        }
        fclose(f);
        if (buf) {
                buf[len] = '\0';
                *ret_len = len;
        }
        return buf;
}

static int fail(const char *what, const char *reason) {
        fprintf(stderr, "seed-tool: %s: %s\n", what, reason ? reason : "failed");
        return 2;
}

static int put(const char *text) {
        return fputs(text, stdout) >= 0 && fflush(stdout) == 0 ? 0 : 2;
}

int main(int argc, char *argv[]) {
        _cleanup_free_ char *reason = NULL, *out = NULL;
        size_t len, out_len;
        if (argc == 6 && streq(argv[1], "sign")) {
                static const char *const purposes[] = {
                        [SIGNATURE_FOR_BUNDLE] = "bundle",
                        [SIGNATURE_FOR_COMMAND] = "command",
                        [SIGNATURE_FOR_TRUST] = "trust",
                        [SIGNATURE_FOR_ROLLBACK] = "rollback",
                        [SIGNATURE_FOR_DESIRED] = "desired",
                };
                int p = -1;
                for (size_t i = 0; i < ELEMENTSOF(purposes); i++)
                        if (streq(argv[2], purposes[i]))
                                p = (int)i;
                if (p < 0)
                        return fail("sign", "unknown purpose");
                _cleanup_free_ char *data = slurp(argv[5], &len);
                if (!data)
                        return fail(argv[5], "cannot read");
                if (signature_sign((enum signature_purpose)p, data, len, argv[3], argv[4], &out,
                                   &out_len, &reason) < 0)
                        return fail("sign", reason);
                return put(out);
        }
        if (argc == 8 && streq(argv[1], "trust-new")) {
                _cleanup_free_ char *root = slurp(argv[5], &len), *release = slurp(argv[6], &len),
                                    *command = slurp(argv[7], &len);
                if (!root || !release || !command)
                        return fail("trust-new", "cannot read a certificate");
                const char *roots[] = {root, NULL}, *releases[] = {release, NULL},
                           *commands[] = {command, NULL}, *revoked[] = {NULL};
                struct trust_document_spec d = {
                        .version = strtoll(argv[2], NULL, 10),
                        .expires = strtoll(argv[3], NULL, 10),
                        .threshold = strtoll(argv[4], NULL, 10),
                        .roots = roots,
                        .release = releases,
                        .command = commands,
                        .revoked = revoked,
                };
                if (trust_envelope_new(&d, &out, &reason) < 0)
                        return fail("trust-new", reason);
                return put(out) || put("\n");
        }
        if (argc == 5 && streq(argv[1], "trust-sign")) {
                _cleanup_free_ char *env = slurp(argv[2], &len), *text = NULL, *sig = NULL;
                size_t text_len, sig_len;
                if (!env)
                        return fail(argv[2], "cannot read");
                if (trust_envelope_signed_text(env, len, &text, &text_len, &reason) < 0 ||
                    signature_sign(SIGNATURE_FOR_TRUST, text, text_len, argv[3], argv[4], &sig,
                                   &sig_len, &reason) < 0 ||
                    trust_envelope_add_signature(env, len, sig, sig_len, &out, &reason) < 0)
                        return fail("trust-sign", reason);
                return put(out) || put("\n");
        }
        fprintf(stderr,
                "usage: seed-tool sign PURPOSE KEY CERT FILE\n"
                "       seed-tool trust-new VERSION EXPIRES THRESHOLD ROOT RELEASE COMMAND\n"
                "       seed-tool trust-sign ENVELOPE KEY CERT\n");
        return 2;
}
