/* The desired-state reconciler's next step: pure (agent/desired-plan.h). */
#include "config.h"

#include "agent/desired-plan.h"
#include "lib/macro.h"

const char *desired_entry_state_to_string(enum desired_entry_state s) {
        static const char *const names[] = {
                [DESIRED_ENTRY_DONE] = "done",
                [DESIRED_ENTRY_PENDING] = "pending",
                [DESIRED_ENTRY_REFUSED] = "refused",
        };
        return (size_t) s < ELEMENTSOF(names) ? names[s] : "?";
}

static void take(struct desired_step *ret, enum desired_step_kind kind, size_t index, bool extra) {
        if (ret->kind != DESIRED_STEP_NONE && ret->kind != DESIRED_STEP_WAIT)
                return; /* the first actionable step wins */
        if (kind == DESIRED_STEP_WAIT) {
                ret->kind = DESIRED_STEP_WAIT;
                return;
        }
        *ret = (struct desired_step){.kind = kind, .index = index, .extra = extra};
}

void desired_plan(const struct desired_view *v, struct desired_step *ret, enum desired_entry_state *states,
                  const char **refusals) {
        *ret = (struct desired_step){.kind = DESIRED_STEP_NONE};
        for (size_t i = 0; i < v->n_extras; i++)
                take(ret, v->extras[i].stopping ? DESIRED_STEP_WAIT : v->extras[i].busy ? DESIRED_STEP_STOP
                                                                                      : DESIRED_STEP_REMOVE,
                     i, true);
        for (size_t i = 0; i < v->n_entries; i++) {
                const struct desired_entry_view *e = &v->entries[i];
                if (refusals)
                        refusals[i] = e->refusal;
                /* stopped by this reconciler to be replaced, and the replacement does not follow
                 * at once: what ran starts again (a refusal never leaves a name without its
                 * workload; a download may take many passes) */
                bool restore = e->replacing && e->exists && e->ours && !e->same_spec;
                if (e->refusal) {
                        states[i] = DESIRED_ENTRY_REFUSED;
                        if (restore && e->stopping)
                                take(ret, DESIRED_STEP_WAIT, i, false);
                        else if (restore && !e->busy)
                                take(ret, DESIRED_STEP_RESTORE, i, false);
                        continue;
                }
                if (e->exists && !e->ours) {
                        states[i] = DESIRED_ENTRY_REFUSED;
                        if (refusals)
                                refusals[i] = "a workload of the node's own (workloads.d, or an operator's on the "
                                              "node) has this name";
                        continue;
                }
                if (e->exists && e->same_spec) {
                        states[i] = DESIRED_ENTRY_DONE;
                        continue;
                }
                states[i] = DESIRED_ENTRY_PENDING;
                if (e->app_missing) {
                        if (!e->bundle || !e->bundle[0]) {
                                states[i] = DESIRED_ENTRY_REFUSED;
                                if (refusals)
                                        refusals[i] = "its app version is not on the node and no bundle is named";
                        }
                        if (restore && !e->busy) {
                                take(ret, DESIRED_STEP_RESTORE, i, false);
                                continue;
                        }
                        if (states[i] == DESIRED_ENTRY_REFUSED)
                                continue;
                        if (v->installing || v->update_busy) {
                                if (ret->kind == DESIRED_STEP_NONE)
                                        ret->kind = DESIRED_STEP_WAIT;
                                continue;
                        }
                        take(ret, DESIRED_STEP_INSTALL, i, false);
                        continue;
                }
                if (e->exists && e->busy) {
                        take(ret, e->stopping ? DESIRED_STEP_WAIT : DESIRED_STEP_STOP, i, false);
                        continue;
                }
                take(ret, DESIRED_STEP_SUBMIT, i, false);
        }
}
