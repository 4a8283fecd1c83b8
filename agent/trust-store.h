/*
 * The node's trust document in force (#18 item 2; update/trust.h): loaded at start from the
 * image (link.trust_document) and from what the link applied since (<state_dir>/trust, a
 * checksummed state file with its previous copy), offered anew by sync answers.
 *
 * Without any document the node trusts its keyring directories (update.keyring_dir,
 * link.command_keyring_dir), as before; with one, the document's anchors and revocations
 * replace them. Thread-safe (the update worker may ask for the release keyring).
 */
#pragma once

#include <stdint.h>

#include <jansson.h>

#include "update/signature.h"

#define TRUST_STORE_FILE "trust"

/* Load the image's document (image_path; missing: none) and the saved one; the newer wins. */
int trust_store_init(const char *state_dir, const char *image_path);
void trust_store_done(void);

/* The version in force, 0 when none. */
int64_t trust_store_version(void);

/*
 * A document a sync answer carried. Returns 1 when it was applied (a floor reset it
 * carries first, saved, even if the document's save then fails: a reset that cannot be
 * saved refuses the document; then saved; then in force), 0 when it is
 * the one in force already, or -errno with
 * *ret_reason (caller frees) when refused; *ret_version is the version it names (-1 if it
 * cannot be read).
 */
int trust_store_offer(const char *text, size_t len, int64_t *ret_version, char **ret_reason);

/* The anchors for commands or bundles: the document's with its revocations, else the
 * directory's. Caller frees *ret. */
int trust_store_command_keyring(const char *dir, struct signature_keyring **ret, char **ret_reason);
int trust_store_release_keyring(const char *dir, struct signature_keyring **ret, char **ret_reason);

/* {"version", "expires", "roots", "threshold", "revoked", "source"} or {"version": 0} */
json_t *trust_store_status_json(void);
