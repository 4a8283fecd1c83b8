/*
 * Deployments (#19 item 2, docs/deployments.md): a workload spec and the app bundle it runs,
 * put on a target of nodes through their desired states, stage by stage with the rollout
 * machinery's strategy (controller/rollout.h: stages, success gate, stage timeout, report
 * deadline, failure threshold, auto-revert). Pure: parsing, placement and a member's state
 * from its node's reports; controller/store-deployments.c keeps and drives them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "controller/rollout.h"

#define DEPLOYMENT_ID_MAX ROLLOUT_ID_MAX

/* What a node must have for a deployment to place its workload there, from its last reports. */
struct deployment_constraints {
        int64_t min_free_mib;      /* memory available, 0: no bound */
        int max_level;             /* highest thermal level allowed (0 normal, 1 warm, 2 hot), -1: no bound */
        int64_t min_battery_percent; /* 0: no bound */
};

struct deployment_options {
        struct rollout_options strategy; /* id, bundle_id, target and the strategy */
        char workload[65];               /* the spec's name */
        json_t *spec;                    /* the workload spec (an object, owned) */
        int64_t count;                   /* nodes to run it on, 0: every node of the target */
        struct deployment_constraints constraints;
};

void deployment_options_done(struct deployment_options *o);

/*
 * Pure: the operator's create request: a rollout request's keys (rollout_request_parse:
 * "id"?, "bundle_id", "target", "stages", "success_after", "min_healthy_time",
 * "stage_timeout", "report_deadline", "max_failures", "auto_revert") and "spec" (a workload
 * spec naming its app with a version), "count"? (>= 0), "constraints"?
 * {"min_free_mib", "max_level" ("normal", "warm", "hot"), "min_battery_percent"}. -EINVAL with
 * *ret_message naming each problem.
 */
int deployment_request_parse(const char *text, size_t len, struct deployment_options *ret, char **ret_message);

/* The options as the API shows them (a new reference). */
json_t *deployment_options_to_json(const struct deployment_options *o);

/* A node the deployment may be placed on, as its last reports show it. */
struct deployment_candidate {
        const char *node;
        bool known;             /* a health report was seen */
        int64_t free_mib;       /* memory available */
        int level;              /* thermal level, 0 normal ... 3 critical */
        int64_t battery_percent; /* -1: not reported */
        bool has_it;            /* it already runs this deployment (a member): kept first */
};

/*
 * Pure: which candidates get the workload. Those that meet the constraints (a node with no
 * report does not, when there is a constraint), members first, then by headroom: the
 * lowest thermal level, the most free memory, the fullest battery, then the deployment's
 * own order of ids (rollout_node_key). count 0: all that qualify. ret_chosen[i] for each
 * candidate; returns how many were chosen. why (may be NULL) gets why the first
 * candidate left out was left out.
 */
size_t deployment_place(const char *deployment_id, const struct deployment_candidate *c, size_t n, int64_t count,
                        const struct deployment_constraints *k, bool *ret_chosen, char *why, size_t why_size);

/*
 * Pure: a member's state from its node's last desired.state report (may be NULL): the
 * node reached a desired state version >= told_version, and there the workload is done and
 * running (healthy, if it has a probe) -> COMMITTED; refused, or failed -> FAILED (reason
 * in why); still on its way -> INSTALLING; a report of an older version -> TOLD. A final
 * state other than COMMITTED stays.
 */
enum rollout_node_state deployment_member_from_report(enum rollout_node_state cur, int64_t told_version,
                                                      json_t *report, const char *workload, char *why,
                                                      size_t why_size);

/* Pure: thermal level names as health reports give them. -1: unknown. */
int deployment_level_from_string(const char *s);
