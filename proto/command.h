/*
 * Signed commands from the ground: payload building, parameter checks and envelope
 * verification. Pure except for the signature calls (update/signature.h), so the agent
 * links the same verifier the controller's tests exercise (docs/protocol.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "update/signature.h"

#define COMMAND_FORMAT 1
#define COMMAND_NODE_MAX 64
#define COMMAND_ACTION_MAX 32
#define COMMAND_PAYLOAD_MAX (16 * 1024)       /* the signed JSON text */
#define COMMAND_PARAMS_MAX (8 * 1024)         /* params, serialized compactly */
#define COMMAND_ENVELOPE_MAX (COMMAND_PAYLOAD_MAX + SIGNATURE_MAX_SIZE + 256)
#define COMMAND_CONFIG_KEY_MAX 128
#define COMMAND_URL_MAX 1024
#define COMMAND_NAME_MAX 128
#define COMMAND_LINK_EPOCH_MAX 32 /* lowercase hex: a random 128-bit id */

/* A command as signed. params is owned (json_decref through command_done). */
struct command {
        char node[COMMAND_NODE_MAX + 1];
        /* The node's link state this command was signed for ("": none, from a controller
         * that predates epochs). A node that lost its link state starts a new epoch, so what
         * was signed for the old one (and captured) cannot run again when its seq restarts. */
        char link_epoch[COMMAND_LINK_EPOCH_MAX + 1];
        uint64_t seq;
        int64_t not_before, expires; /* unix seconds */
        char action[COMMAND_ACTION_MAX + 1];
        json_t *params;
};

void command_done(struct command *c);

/* Pure: node ids and bundle ids share one rule: 1-64 (ids) of A-Z a-z 0-9 . _ -, not
 * starting with . or -. max is the length bound. */
bool command_name_is_valid(const char *s, size_t max);

/* Pure: a bundle URL a command may carry: https://, at most COMMAND_URL_MAX bytes, only
 * printable ASCII without spaces. */
bool command_url_is_valid(const char *s);

/* Pure: a link epoch as nodes make them: 1-32 characters of 0-9 a-f. */
bool command_link_epoch_is_valid(const char *s);

/* Pure: is action one we know? */
bool command_action_is_known(const char *action);

/*
 * Pure: check the parameters of an action strictly (unknown keys, types, bounds).
 * -EINVAL with *ret_reason (caller frees) naming the action and the key.
 */
int command_params_check(const char *action, json_t *params, char **ret_reason);

/*
 * Pure: the exact payload text to sign: compact JSON with keys in a fixed order
 * (format, node, seq, not_before, expires, action, params). Checks everything first.
 */
int command_payload_build(const struct command *c, char **ret_text, char **ret_reason);

/* Pure: parse a payload text strictly into *ret (command_done it). -EBADMSG on error. */
int command_payload_parse(const char *text, size_t len, struct command *ret, char **ret_reason);

/* Pure: the envelope object {"seq","payload","signature"} (a new reference). */
json_t *command_envelope_new(uint64_t seq, const char *payload, const char *signature);

struct command_verify_options {
        const char *node;                        /* this node's id */
        const char *link_epoch;                  /* this node's link epoch (NULL: none) */
        bool require_epoch;                      /* refuse payloads without one (below) */
        uint64_t last_applied_seq;               /* the highest seq acted on (0: none) */
        time_t now;                              /* or SIGNATURE_NOW_UNKNOWN */
        int64_t clock_skew_sec;                  /* tolerance on not_before and expires */
        const struct signature_keyring *keyring; /* the command signers' anchors */
};

/*
 * Verify an envelope as the agent must before acting on it, in this order:
 *  1. the envelope is {"seq":N,"payload":"...","signature":"..."}, nothing else, bounded;
 *  2. the signature over the exact payload bytes chains to the keyring
 *     (-EBADMSG bad signature, -EKEYREJECTED untrusted signer, -EKEYEXPIRED);
 *  3. only then the payload is parsed strictly, and its seq equals the envelope's
 *     (-EBADMSG);
 *  4. the command is for this node (-EXDEV), and for its link epoch when the payload
 *     names one (-ESTALE: signed before the node lost its link state); a payload without
 *     one is refused as well when require_epoch (-ESTALE: a node whose link state was made
 *     anew cannot tell it from one signed before the loss);
 *  5. seq > last_applied_seq (-ESTALE: a replay);
 *  6. not_before - skew <= now < expires + skew (-EAGAIN not yet valid, -ETIME expired;
 *     skipped when now is SIGNATURE_NOW_UNKNOWN);
 *  7. the action is known and its params check (-EOPNOTSUPP unknown action, -EINVAL).
 * Returns 0 with *ret filled (command_done it), or a negative errno with *ret_reason
 * (caller frees) saying why, suitable for the command.result record. On -ETIME,
 * -EOPNOTSUPP and -EINVAL (steps 6 and 7: signed for this node, newer than the last
 * applied) ret->seq and ret->action are set and nothing else, so the caller can move its
 * last applied seq past a command it will never run.
 */
int command_envelope_verify(json_t *envelope, const struct command_verify_options *o,
                            struct command *ret, char **ret_reason);
