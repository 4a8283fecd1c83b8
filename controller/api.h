/*
 * The controller's HTTP API, pure: routes, strict request parsing with bounds, the
 * sync answer, and the decisions the store applies (docs/protocol.md). No I/O here.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto/sync-answer.h"
#include "proto/sync-request.h"

#define API_BUNDLE_ID_MAX 128     /* bundle ids (as the manifest allows) */
#define OPERATOR_BODY_MAX (64 * 1024)
#define CONTACT_PLAN_WINDOWS_MAX LINK_ANSWER_MAX_WINDOWS /* what a node takes */
#define RECORDS_LIMIT_DEFAULT 100
#define RECORDS_LIMIT_MAX 1000
#define COMMAND_EXPIRES_DEFAULT (24 * 3600)
#define COMMAND_EXPIRES_MIN 60
#define COMMAND_EXPIRES_MAX (30 * 24 * 3600)
#define API_TOKEN_MAX 512

enum api_route {
        API_ROUTE_SYNC,               /* POST /v1/nodes/{id}/sync            node */
        API_ROUTE_BUNDLE_DOWNLOAD,    /* GET|HEAD /v1/bundles/{id}           node or operator */
        API_ROUTE_NODES,              /* GET /v1/nodes                       operator */
        API_ROUTE_NODE,               /* GET /v1/nodes/{id} */
        API_ROUTE_NODE_COMMANDS,      /* GET|POST /v1/nodes/{id}/commands */
        API_ROUTE_NODE_RECORDS,       /* GET /v1/nodes/{id}/records */
        API_ROUTE_NODE_CONTACT_PLAN,  /* GET|PUT /v1/nodes/{id}/contact-plan */
        API_ROUTE_BUNDLES,            /* GET|POST /v1/bundles */
        API_ROUTE_NODE_GROUPS,        /* GET|POST|DELETE /v1/nodes/{id}/groups   operator */
        API_ROUTE_NODE_CERTIFICATE,   /* POST /v1/nodes/{id}/certificate: a CSR     node */
        API_ROUTE_NODE_ALLOW_RENEW,   /* POST /v1/nodes/{id}/allow-renew      operator */
        API_ROUTE_NODE_REVOKE_CERTS,  /* POST /v1/nodes/{id}/revoke-certificates  operator */
        API_ROUTE_NODE_DESIRED,       /* GET|PUT /v1/nodes/{id}/desired: its desired state (#19) */
        API_ROUTE_ROLLOUTS,           /* GET|POST /v1/rollouts */
        API_ROUTE_ROLLOUT,            /* GET /v1/rollouts/{id} */
        API_ROUTE_ROLLOUT_VERB,       /* POST /v1/rollouts/{id}/{start|pause|resume|abort} */
        API_ROUTE_DEPLOYMENTS,        /* GET|POST /v1/deployments (#19) */
        API_ROUTE_DEPLOYMENT,         /* GET|DELETE /v1/deployments/{id} */
        API_ROUTE_DEPLOYMENT_VERB,    /* POST /v1/deployments/{id}/{pause|resume} */
        API_ROUTE_USAGE,              /* GET /v1/usage: metered usage summed (#19)  operator or viewer */
        API_ROUTE_WHOAMI,             /* GET /v1/whoami                      operator or viewer */
        API_ROUTE_AUDIT,              /* GET /v1/audit: who asked what       operator or viewer */
        API_ROUTE_METRICS,            /* GET /metrics (Prometheus text)      operator or viewer */
        API_ROUTE_WEB,                /* GET / and /ui/{file}: the dashboard's static files, open */
        _API_ROUTE_MAX,
};

struct api_match {
        enum api_route route;
        char id[API_BUNDLE_ID_MAX + 1]; /* the {id} of the path, "" if none */
        char verb[8];                   /* API_ROUTE_ROLLOUT_VERB: start, pause, resume, abort */
};

/*
 * Pure: match a method and a path (without query). Returns 0 with *ret; -ENOENT no such
 * path (404); -EOPNOTSUPP known path, other method (405); -EINVAL bad id in the path (400).
 */
int api_route_match(const char *method, const char *path, struct api_match *ret);

/* Does the route belong to nodes (mTLS with a node certificate) rather than operators? */
bool api_route_is_node(enum api_route r);

/*
 * Roles on the operator API (docs/security.md, "Operators"), each holding the one before:
 * - a viewer may only read: GET and HEAD requests;
 * - an operator may also change how the fleet runs: commands to nodes, contact plans,
 *   groups, renewal leave, and a rollout's pause, resume and abort (an abort's rollbacks stay
 *   above the floor the release key signed);
 * - a release manager may also put software on the fleet: upload bundles, create and start
 *   rollouts, and send update.install and update.mark-good.
 * Bearer tokens get their role from the option that names their file; operator CA client
 * certificates from their subject's organizational unit (OU=viewer, operator or
 * release-manager; none of these: operator). The dashboard's static files need no role:
 * they hold no data, every request they make carries the role's credential.
 */
enum api_role {
        API_ROLE_NONE,
        API_ROLE_VIEWER,
        API_ROLE_OPERATOR,
        API_ROLE_RELEASE_MANAGER,
};
const char *api_role_to_string(enum api_role r);
/* Pure: the role an OU names, API_ROLE_NONE for any other text. */
enum api_role api_role_from_string(const char *s);
/* Pure: the least role that may make this request (method on a matched operator route). */
enum api_role api_role_needed(const struct api_match *m, const char *method);
/* Pure: the least role that may send this command action to a node. */
enum api_role api_role_needed_for_action(const char *action);
/* Pure: may this role make this request? */
bool api_role_allows(enum api_role role, const struct api_match *m, const char *method);

/* Pure: the id rule shared by nodes and bundles (1-max of A-Z a-z 0-9 . _ -, not . or - first). */
bool api_id_is_valid(const char *s, size_t max);

enum record_effect {
        RECORD_EFFECT_NONE,           /* stored only */
        RECORD_EFFECT_COMMAND_RESULT, /* "command.result": the command's outcome */
        RECORD_EFFECT_UPDATE,         /* "update.*": the node's update state */
        RECORD_EFFECT_HEALTH,         /* "health.report": the node's last health */
        RECORD_EFFECT_USAGE,          /* "usage.report": metered usage, counted once */
};

/* Pure: what a record of this kind changes in the node's view, besides being stored. */
enum record_effect record_effect_of(const char *kind);

struct command_result {
        int64_t seq;
        const char *status; /* "done", "failed", "rejected"; borrowed */
        const char *reason; /* borrowed; "" when absent */
};

/* Pure: parse a command.result body {"seq":N,"status":"..","reason":".."}; -EINVAL if not one. */
int command_result_parse(json_t *body, struct command_result *ret);

/*
 * Pure: the state a command takes when a result arrives. Commands go queued -> sent ->
 * done|failed|rejected; the first final result wins, so a replayed or late result
 * changes nothing. Returns the new state, or NULL when nothing changes.
 */
const char *command_state_after_result(const char *current, const char *result_status);

/*
 * Pure: a contact plan body {"windows":[{"start":s,"end":e,"rate_bps":n}...]}: at most
 * CONTACT_PLAN_WINDOWS_MAX windows, start < end, sorted by start and not overlapping.
 * *ret (a new reference) is the plan as stored and served.
 */
int contact_plan_parse(const char *text, size_t len, json_t **ret, char **ret_message);

/* Pure: an operator's command request {"action","params","expires_in_sec"}. */
struct command_request {
        char action[33];
        json_t *params; /* owned; {} when absent */
        int64_t expires_in_sec;
};
int command_request_parse(const char *text, size_t len, struct command_request *ret,
                          char **ret_message);
void command_request_done(struct command_request *r);

/* Pure: the records query (?kind=K&limit=N; either may be NULL). kind is exact, or a
 * prefix when it ends with '*' ("update.*"). -EINVAL with a message on bad input. */
int records_query_check(const char *kind, const char *limit, size_t *ret_limit,
                        char **ret_message);

/* ---- usage metering (#19 item 5, docs/deployments.md) ------------------------------------ */

/* What usage is summed by: one row per tenant, deployment, node or workload (an entry's
 * key: the workload's name, or "app:<app>" for an app's downloads no workload used yet). */
enum usage_by {
        USAGE_BY_TENANT,
        USAGE_BY_DEPLOYMENT,
        USAGE_BY_NODE,
        USAGE_BY_WORKLOAD,
        _USAGE_BY_MAX,
};
const char *usage_by_to_string(enum usage_by by);

struct usage_query {
        enum usage_by by;
        char tenant[65], deployment[65], node[API_ID_MAX + 1]; /* "" any */
        int64_t since, until; /* the controller's receipt time in [since, until); 0: open */
};

/*
 * Pure: the usage query (?by=tenant|deployment|node|workload&tenant=T&deployment=D&node=N
 * &since=S&until=U, each may be NULL): by defaults to tenant; names as a usage.report
 * record carries them; since and until unix seconds, since < until. -EINVAL with a message.
 */
int usage_query_parse(const char *by, const char *tenant, const char *deployment, const char *node,
                      const char *since, const char *until, struct usage_query *ret, char **ret_message);

/* Pure: a group request {"group": G} (G a name like a node id, not "all"). */
int group_request_parse(const char *text, size_t len, char *ret_group, size_t size,
                        char **ret_message);

/*
 * Pure: a node's certificate request {"format": 1, "csr": PEM} (docs/protocol.md,
 * "Certificate renewal"): *ret_csr points into body (alive while it is).
 */
int certificate_request_parse(json_t *body, const char **ret_csr, char **ret_message);

/* The longest leave an operator may give an expired certificate to be renewed. */
#define RENEW_ALLOW_MAX_SEC (30 * 86400)
/* Pure: an operator's {"until": unix seconds}: after now, at most RENEW_ALLOW_MAX_SEC ahead. */
int renew_allow_parse(const char *text, size_t len, int64_t now, int64_t *ret_until, char **ret_message);

/* Pure: "Bearer <token>" -> the token (pointer into header), or NULL. */
const char *api_bearer_token(const char *authorization);

/* Pure: compare two secrets in time that depends only on their lengths' maximum. */
bool api_secret_equal(const char *a, size_t a_len, const char *b, size_t b_len);

/* Pure: {"error": code, "message": message} as text (caller frees). */
char *api_error_body(const char *code, const char *message);
