/* The node status document: node identity, uptime, and one section per subsystem. */
#include "config.h"

#include "agent/status.h"

#include "agent/trusted-time.h"
#include "agent/trust-store.h"

/* What each subsystem can do in this build. Honest: what is not built says so. */
static const struct {
        const char *name;
        const char *state;
        const char *summary;
} subsystems[] = {
        {"runtime", "disabled", "sandboxed workloads: disabled in the configuration (runtime.enabled)"},
        {"update", "disabled", "A/B install, commit and rollback: disabled in the configuration (update.enabled)"},
        {"health", "disabled", "thermal and power policy: disabled in the configuration (health.enabled)"},
        {"link", "disabled", "controller sync over the delay-tolerant link: disabled in the configuration (link.enabled)"},
};

json_t *agent_status_build(const struct agent_status_input *in) {
        json_t *subs = json_object();
        if (!subs)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(subsystems); i++) {
                json_t *own = streq(subsystems[i].name, "runtime") ? in->runtime
                              : streq(subsystems[i].name, "health") ? in->health
                              : streq(subsystems[i].name, "update") ? in->update
                              : streq(subsystems[i].name, "link") ? in->link : NULL;
                if (own) {
                        if (json_object_set(subs, subsystems[i].name, own) < 0) {
                                json_decref(subs);
                                return NULL;
                        }
                        continue;
                }
                json_t *s = json_pack("{s:s,s:s}", "state", subsystems[i].state, "summary",
                                      subsystems[i].summary);
                if (!s || json_object_set_new(subs, subsystems[i].name, s) < 0) {
                        json_decref(subs);
                        return NULL;
                }
        }

        json_t *reload = json_pack("{s:I,s:I,s:s?}", "count", (json_int_t) in->config_reloads,
                                   "failures", (json_int_t) in->config_reload_failures,
                                   "last_error",
                                   in->last_reload_error && in->last_reload_error[0]
                                           ? in->last_reload_error
                                           : NULL);
        if (!reload) {
                json_decref(subs);
                return NULL;
        }

        return json_pack("{s:s,s:b,s:I,s:s,s:b,s:b,s:f,s:s,s:s,s:s,s:s,s:o,s:o,s:O?,s:o?,s:o?}",
                         "node_id", in->node->node_id,
                         "node_id_from_config", in->node->node_id_from_config,
                         "boot_epoch", (json_int_t) in->node->boot_epoch,
                         "boot_id", in->node->boot_id,
                         "boot_epoch_recovered", in->node->boot_epoch_recovered,
                         "boot_epoch_reset", in->node->boot_epoch_reset,
                         "uptime_sec", (double) in->uptime_usec / 1e6,
                         "agent_version", PACKAGE_VERSION,
                         "state_dir", in->config->state_dir,
                         "runtime_dir", in->config->runtime_dir,
                         "config_file", in->config->source ? in->config->source : "",
                         "config_reload", reload,
                         "subsystems", subs,
                         "loop", in->loop,
                         "time", trusted_clock_status_json(), "trust", trust_store_status_json());
}
