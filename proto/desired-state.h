/*
 * A node's desired state (#19 item 3, docs/deployments.md): the workloads the ground wants
 * a node to run, as a document the controller signs under its own purpose ("orbit
 * desired state", the command signer's role) and the node verifies before it keeps or
 * acts on any of it. Pure but for the signature check; both ends link it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "update/signature.h"

#define DESIRED_FORMAT 1
#define DESIRED_MAX_WORKLOADS 32
#define DESIRED_TEXT_MAX (256 * 1024) /* the signed document */
#define DESIRED_ID_MAX 64             /* node, workload and deployment ids */
#define DESIRED_BUNDLE_ID_MAX 128     /* any bundle id a manifest may have (MANIFEST_NAME_MAX) */

struct desired_workload {
        char name[DESIRED_ID_MAX + 1];
        char deployment[DESIRED_ID_MAX + 1]; /* "" when none */
        char bundle[DESIRED_BUNDLE_ID_MAX + 1]; /* the bundle carrying its app, "" when none */
        json_t *spec;                        /* the workload spec (an object), owned by root */
};

struct desired_state {
        json_t *root; /* owns everything */
        char node[DESIRED_ID_MAX + 1];
        uint64_t version;
        struct desired_workload workloads[DESIRED_MAX_WORKLOADS];
        size_t n_workloads;
};

/*
 * Pure: parse a document strictly: {"format": 1, "node", "version" >= 1, "workloads":
 * [{"name", "spec", "deployment"?, "bundle"?}]}; unknown keys, wrong types, a spec whose
 * "name" is not its entry's, a name twice, a bundle without an app in its spec all refused
 * with where ("workloads[2].bundle: ..."). 0, or -EBADMSG / -ENOMEM with *ret_reason.
 */
int desired_state_parse(const char *text, size_t len, struct desired_state *ret, char **ret_reason);

void desired_state_done(struct desired_state *d);

/*
 * Pure: the document the controller signs for node at version, from an array of workload
 * entries ({"name", "spec", "deployment"?, "bundle"?}); judged by desired_state_parse, so a
 * document a node would refuse is never made. 0 with *ret_text (caller frees), or -EINVAL
 * with *ret_reason naming where ("workloads[1].spec.name: ...").
 */
int desired_document_build(const char *node, uint64_t version, json_t *workloads, char **ret_text,
                           char **ret_reason);

/* Pure: the envelope {"document": text, "signature": sig} (a new reference). */
json_t *desired_envelope_new(const char *text, const char *signature);

struct desired_verify_options {
        const char *node;                        /* this node's id */
        uint64_t current_version;                /* the version in force (0: none) */
        time_t now;                              /* or SIGNATURE_NOW_UNKNOWN */
        const struct signature_keyring *keyring; /* the command signers' anchors */
};

/*
 * Verify an envelope before keeping it, in this order: its shape (exactly "document" and
 * "signature", bounded); the signature over the exact document bytes for the desired
 * state's purpose (a command signature never verifies here); only then the document,
 * parsed strictly; for this node (-EXDEV); newer than the one in force (-ESTALE: a replay
 * or an older one; -EALREADY: the same version). 0 with *ret (desired_state_done it).
 */
int desired_envelope_verify(json_t *envelope, const struct desired_verify_options *o, struct desired_state *ret,
                            char **ret_reason);
