/*
 * Verify a command envelope as the agent will: command-verify KEYRING_DIR NODE LAST_APPLIED
 * [ENVELOPE_FILE] (stdin when absent). Prints "ok SEQ ACTION PARAMS" or the reason; exit 0/1.
 * Or make one with the controller's key, any times included (an expired command for the
 * hostile-link test): command-verify --sign KEY CERT NODE[@LINK_EPOCH] SEQ NOT_BEFORE EXPIRES
 * ACTION PARAMS.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/macro.h"
#include "proto/command.h"
#include "update/signature.h"

static int sign(char *argv[]) {
        struct command c = {.seq = strtoull(argv[3], NULL, 10),
                            .not_before = strtoll(argv[4], NULL, 10),
                            .expires = strtoll(argv[5], NULL, 10),
                            .params = json_loads(argv[7], 0, NULL)};
        snprintf(c.node, sizeof(c.node), "%s", argv[2]);
        char *at = strchr(c.node, '@');
        if (at) {
                *at = '\0';
                snprintf(c.link_epoch, sizeof(c.link_epoch), "%s", strchr(argv[2], '@') + 1);
        }
        snprintf(c.action, sizeof(c.action), "%s", argv[6]);
        _cleanup_free_ char *payload = NULL, *sig = NULL, *reason = NULL;
        size_t len;
        if (command_payload_build(&c, &payload, &reason) < 0 ||
            signature_sign(SIGNATURE_FOR_COMMAND, payload, strlen(payload), argv[0], argv[1], &sig, &len, &reason) < 0) {
                fprintf(stderr, "command-verify --sign: %s\n", reason ? reason : "failed");
                command_done(&c);
                return 2;
        }
        command_done(&c);
        json_auto_t *e = command_envelope_new(c.seq, payload, sig);
        return e && json_dumpf(e, stdout, JSON_COMPACT) == 0 && putchar('\n') != EOF ? 0 : 2;
}

int main(int argc, char *argv[]) {
        if (argc == 10 && streq(argv[1], "--sign"))
                return sign(argv + 2);
        if (argc < 4 || argc > 5) {
                fprintf(stderr, "usage: command-verify KEYRING_DIR NODE LAST_APPLIED [ENVELOPE]\n");
                return 2;
        }
        _cleanup_keyring_ struct signature_keyring *kr = NULL;
        _cleanup_free_ char *reason = NULL;
        if (signature_keyring_load_dir(argv[1], &kr, &reason) < 0) {
                fprintf(stderr, "command-verify: keyring: %s\n", reason ? reason : "cannot load");
                return 2;
        }
        json_error_t err;
        json_auto_t *env = argc == 5 ? json_load_file(argv[4], 0, &err) : json_loadf(stdin, 0, &err);
        if (!env) {
                fprintf(stderr, "command-verify: envelope: %s\n", err.text);
                return 2;
        }
        struct command_verify_options o = {
                .node = argv[2],
                .last_applied_seq = strtoull(argv[3], NULL, 10),
                .now = time(NULL),
                .clock_skew_sec = 60,
                .keyring = kr,
        };
        struct command c;
        if (command_envelope_verify(env, &o, &c, &reason) < 0) {
                printf("refused: %s\n", reason ? reason : "?");
                return 1;
        }
        _cleanup_free_ char *params = json_dumps(c.params, JSON_COMPACT | JSON_SORT_KEYS);
        printf("ok %llu %s %s\n", (unsigned long long) c.seq, c.action, params ? params : "");
        command_done(&c);
        return 0;
}
