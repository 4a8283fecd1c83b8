/*
 * Fuzz trust_parse(): a trust document comes from the ground (an update offered over the
 * link) or from the node's own disk, and decides which keys the node trusts. The input is
 * the envelope's text, checked twice at a fixed time: as the node's own document
 * (TRUST_CHECK_SELF) and as an update of a fixed document in force (TRUST_CHECK_UPDATE;
 * FUZZ_TRUST_IN_FORCE, version 1, root tests/fuzz/keys/root.pem, made at start from the seed
 * corpus/fuzz-trust/valid-v1.json). The seeds are signed by that root, so the mutations
 * reach the document's fields and the update rules.
 */
#include "config.h"

#include "fuzz-util.h"
#include "fuzz-keys.h"
#include "update/trust.h"

/* 2026-01-01: inside the fuzz PKI's validity and before the seeds' expiry (2096). */
#define FUZZ_TRUST_NOW ((time_t)1767225600)

static const struct trust *in_force(void) {
        static struct trust *t;
        if (!t) {
                char *reason = NULL;
                if (trust_parse(FUZZ_TRUST_IN_FORCE, strlen(FUZZ_TRUST_IN_FORCE), TRUST_CHECK_SELF,
                                NULL, FUZZ_TRUST_NOW, &t, &reason) < 0) {
                        fprintf(stderr, "fuzz trust document in force: %s\n",
                                reason ? reason : "out of memory");
                        abort();
                }
        }
        return t;
}

/* What parses holds what the node relies on; its keyrings build. */
static void check_parsed(const struct trust *t, const char *text, size_t size) {
        FUZZ_CHECK(t->version >= 1 && t->expires >= 1);
        FUZZ_CHECK(t->threshold >= 1 && (size_t)t->threshold <= t->n_roots);
        FUZZ_CHECK(t->n_roots <= TRUST_MAX_ROOTS && t->n_revoked <= TRUST_MAX_REVOKED);
        FUZZ_CHECK(t->n_release >= 1 && t->n_release <= TRUST_MAX_ANCHORS);
        FUZZ_CHECK(t->n_command >= 1 && t->n_command <= TRUST_MAX_ANCHORS);
        FUZZ_CHECK(t->text_len == size && memcmp(t->text, text, size) == 0);
        for (size_t i = 0; i < t->n_revoked; i++)
                FUZZ_CHECK(trust_revokes(t, t->revoked[i]));
        struct signature_keyring *kr = NULL;
        FUZZ_CHECK(trust_release_keyring(t, &kr) == 0);
        FUZZ_CHECK(signature_keyring_count(kr) >= t->n_release);
        FUZZ_CHECK(signature_keyring_revoked_count(kr) <= t->n_revoked);
        signature_keyring_free(kr);
        kr = NULL;
        FUZZ_CHECK(trust_command_keyring(t, &kr) == 0);
        FUZZ_CHECK(signature_keyring_count(kr) >= t->n_command);
        signature_keyring_free(kr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        const struct trust *current = in_force();
        /* An exact-size heap copy: any over-read is an ASan report. */
        char *text = malloc(size ? size : 1);
        FUZZ_CHECK(text);
        if (size)
                memcpy(text, data, size);

        struct trust *self = NULL;
        char *reason = NULL;
        int r_self =
                trust_parse(text, size, TRUST_CHECK_SELF, NULL, FUZZ_TRUST_NOW, &self, &reason);
        if (r_self == 0) {
                FUZZ_CHECK(self);
                check_parsed(self, text, size);
        } else {
                FUZZ_CHECK(!self);
                FUZZ_CHECK(r_self == -ENOMEM || (r_self < 0 && reason));
                FUZZ_CHECK(r_self != -ESTALE && r_self != -EKEYEXPIRED && r_self != -EINVAL);
        }
        free(reason);

        struct trust *next = NULL;
        reason = NULL;
        int r = trust_parse(text, size, TRUST_CHECK_UPDATE, current, FUZZ_TRUST_NOW, &next,
                            &reason);
        if (r == 0) {
                FUZZ_CHECK(next);
                check_parsed(next, text, size);
                /* An update is newer, unexpired, and would pass as the node's own document. */
                FUZZ_CHECK(next->version > current->version);
                int64_t at =
                        next->time_floor_reset && (int64_t)FUZZ_TRUST_NOW > next->time_floor_reset
                                ? next->time_floor_reset
                                : (int64_t)FUZZ_TRUST_NOW;
                FUZZ_CHECK(next->expires >= at);
                FUZZ_CHECK(r_self == 0 && self->version == next->version);
                trust_free(next);
        } else {
                FUZZ_CHECK(!next);
                FUZZ_CHECK(r == -ENOMEM || (r < 0 && reason));
                FUZZ_CHECK(r != -EINVAL);
        }
        free(reason);
        trust_free(self);
        free(text);
        return 0;
}
