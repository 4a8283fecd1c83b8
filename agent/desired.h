/*
 * The node's desired state (#19 item 3, docs/deployments.md): the signed document the
 * controller delivers in sync answers, verified, kept in <state_dir>/desired-state and
 * verified again at every start, and reconciled on the agent's loop, a step at a time
 * (agent/desired-plan.h), between passes and across reboots: a missing app version
 * installed from the controller, each listed workload made or replaced and started, what
 * an earlier document made and this one no longer lists stopped and removed. Workloads of
 * the node's own (workloads.d, an operator's) are never touched. What it reached goes up
 * as desired.state records; the syncs say the version in force and the last refused.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "agent/agent-config.h"
#include "agent/events.h"
#include "agent/node-state.h"
#include "agent/update-manager.h"
#include "proto/desired-state.h"
#include "runtime/runtime.h"

struct desired;

struct desired_hooks {
        const struct agent_config *cfg; /* stays valid; replaced in place on reload */
        const struct node_state *node;
        struct event_queue *events;
        struct runtime *runtime;       /* required */
        struct update_manager *update; /* NULL: app versions that are missing cannot be fetched */
};

/* Load and verify the kept document (one that no longer verifies is not acted on, and the
 * node reports version 0, so the controller sends its newest) and start reconciling. */
int desired_new(sd_event *event, const struct desired_hooks *hooks, struct desired **ret);
void desired_free(struct desired *d);

/* An envelope from a sync answer (borrowed): verified, kept and reconciled, or refused
 * with a desired.refused record. */
void desired_offer(struct desired *d, json_t *envelope);

/* For the sync: the version in force (0 none) and the last version refused (0 none). */
void desired_said(struct desired *d, int64_t *ret_version, int64_t *ret_refused);

/* Reconcile now (an install ended, a workload stopped): one step at the next dispatch. */
void desired_kick(struct desired *d);

/* For the status document: {"version", "reached", "refused", "workloads": [...]}. */
json_t *desired_status_json(struct desired *d);

/*
 * For the usage meter: the deployment of the document's workload of this name and that
 * spec's tenant; "" each when the document in force has none. A workload an earlier
 * document's deployment put there, which the one in force no longer lists, keeps that
 * deployment until it is removed (its last sample, at the removal, is still billed to it).
 * d may be NULL.
 */
void desired_usage_labels(struct desired *d, const char *workload, char *deployment, size_t dsize, char *tenant,
                          size_t tsize);

/* The distinct (deployment, tenant) pairs of the document's workloads whose spec uses this
 * app, at most max of them into out: how many. An app's downloads are shared by them. */
struct desired_usage_label {
        char deployment[DESIRED_ID_MAX + 1];
        char tenant[DESIRED_ID_MAX + 1];
};
size_t desired_usage_app_labels(struct desired *d, const char *app, struct desired_usage_label *out, size_t max);
