/*
 * Everything a node can be asked, in one table: by an operator on the control socket
 * (agent/control.c, docs/control-protocol.md) and by the controller in a signed command
 * (agent/link.c, docs/protocol.md). Each entry names the action, the sources that may ask
 * for it, its parameters (checked strictly before the handler runs) and its handler.
 *
 * The one convention for every action: the handler returns 0 or a negative errno, and
 * *ret_message (allocated, the caller frees) says what was done or why not, in words that
 * name the object, the operation and the cause. The control socket turns the errno into
 * its wire code in one place (control_error_from_errno, agent/control-proto.h); the link
 * sends the message as the command.result's reason.
 */
#pragma once

#include <stdbool.h>

#include <jansson.h>

struct agent;

enum action_source {
        ACTION_FROM_CONTROL = 1u << 0, /* the control socket: host root on the node itself */
        ACTION_FROM_LINK = 1u << 1,    /* a command from the controller, signed and verified */
};

enum action_param_type {
        ACTION_PARAM_ANY,           /* any JSON value (config.set's value) */
        ACTION_PARAM_STRING,
        ACTION_PARAM_BOOLEAN,
        ACTION_PARAM_INTEGER,       /* within [min, max] */
        ACTION_PARAM_WORKLOAD_NAME, /* workload_name_is_valid */
        ACTION_PARAM_ABSOLUTE_PATH,
        ACTION_PARAM_BUNDLE_ID,     /* command_name_is_valid */
        ACTION_PARAM_URL,           /* command_url_is_valid: an https:// bundle URL */
        ACTION_PARAM_PRIORITY,      /* critical, normal, best-effort */
};

struct action_param {
        const char *key;
        enum action_param_type type;
        bool required;
        unsigned sources; /* who may pass it (enum action_source bits); 0: every source */
        long long min, max; /* ACTION_PARAM_INTEGER */
};

/* The subsystem an action cannot do without; disabled, the action fails with -ENOSYS. */
enum action_need {
        ACTION_NEEDS_NOTHING,
        ACTION_NEEDS_RUNTIME,
        ACTION_NEEDS_UPDATE,
        ACTION_NEEDS_HEALTH,
        ACTION_NEEDS_LINK,
};

/*
 * A handler: params are checked and the subsystem it needs is there. Returns 0 or -errno; *ret_result (a JSON result
 * for the control socket, may stay NULL: then {"done": true, "message": ...}) and
 * *ret_message (may stay NULL on success) belong to the caller.
 */
typedef int (*action_fn)(struct agent *a, enum action_source from, json_t *params, json_t **ret_result,
                         char **ret_message);

struct action {
        const char *name;
        unsigned sources; /* enum action_source bits */
        enum action_need needs;
        const struct action_param *params; /* ends with a NULL key; NULL: takes none */
        action_fn fn;
};

/* Pure: the entry named name, or NULL. */
const struct action *action_find(const char *name);

/* Pure: the whole table, ending with a NULL name (docs and tests walk it). */
const struct action *action_table(void);

/* Pure: may from ask for it? */
bool action_allowed(const struct action *ac, enum action_source from);

/*
 * Pure: check params (an object) against the entry strictly: unknown keys, keys this
 * source may not pass, missing required keys and wrong types are refused with -EINVAL
 * and a message naming the action and the key.
 */
int action_params_check(const struct action *ac, enum action_source from, json_t *params, char **ret_message);

/* Pure: the keys an operator may change through config.set. */
bool action_config_key_is_settable(const char *key);

/* The status document (orbitctl status, the link's status.send); NULL on ENOMEM. */
json_t *agent_status_document(struct agent *a);

/*
 * Look the action up, check that from may ask for it, its params and the subsystem it
 * needs (-ENOSYS when disabled, naming the key that enables it), and run it.
 * -EBADRQC for an action that does not exist or that from may not ask for (the control
 * socket answers "unknown-method"); otherwise what the handler returned.
 */
int action_call(struct agent *a, enum action_source from, const char *name, json_t *params, json_t **ret_result,
                char **ret_message);
