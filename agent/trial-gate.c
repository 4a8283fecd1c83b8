/* When a trial commits or rolls back: the health gate and the controller (trial-gate.h). */
#include "config.h"

#include "agent/trial-gate.h"

const char *trial_gate_deadline_kind_to_string(enum trial_gate_deadline_kind k) {
        switch (k) {
        case TRIAL_GATE_DEADLINE_NONE:
                return "none";
        case TRIAL_GATE_DEADLINE_PASS:
                return "contact-pass";
        case TRIAL_GATE_DEADLINE_LIMIT:
                return "controller-wait-limit";
        }
        return "unknown";
}

struct trial_gate_decision trial_gate_decide(const struct trial_gate_input *in) {
        struct trial_gate_decision d = {.verdict = TRIAL_GATE_WAIT, .health_held = in->health_held};
        uint64_t health_deadline = in->started + in->timeout;

        bool holding = in->health_passing && in->now >= in->health_since &&
                       in->now - in->health_since >= in->gate;
        if (holding)
                d.health_held = true;

        if (in->controller_required) {
                /* A pass is due when it overlaps the trial window: the node had its chance in it.
                 */
                if (in->has_window && in->window_start < health_deadline &&
                    in->window_end > in->started && in->window_end >= in->window_start) {
                        /* The pass counts for at most controller_wait once it opens (or
                         * once the trial began, when it was open then): a plan whose window
                         * never closes must not keep a broken image on trial for ever. */
                        uint64_t opens =
                                in->window_start > in->started ? in->window_start : in->started;
                        uint64_t end = in->window_end - opens > in->controller_wait
                                               ? opens + in->controller_wait
                                               : in->window_end;
                        d.deadline_kind = TRIAL_GATE_DEADLINE_PASS;
                        d.controller_deadline = end + in->window_grace;
                } else {
                        d.deadline_kind = TRIAL_GATE_DEADLINE_LIMIT;
                        d.controller_deadline = in->started + in->controller_wait;
                }
        }
        bool controller_ok = !in->controller_required || in->controller_reached;

        if (d.health_held && in->health_passing && controller_ok) {
                d.verdict = TRIAL_GATE_COMMIT;
                return d;
        }
        if (!d.health_held && in->now >= health_deadline) {
                d.verdict = TRIAL_GATE_ROLLBACK_HEALTH;
                return d;
        }
        if (!controller_ok) {
                if (in->now >= d.controller_deadline) {
                        d.verdict = TRIAL_GATE_ROLLBACK_CONTROLLER;
                        return d;
                }
                d.waiting_for_controller = d.health_held;
                return d;
        }
        /* The controller was reached and the gate held once, but it is not passing now: it
         * has until the later of the two deadlines to pass again. */
        uint64_t last = health_deadline;
        if (in->controller_required && d.controller_deadline > last)
                last = d.controller_deadline;
        if (in->now >= last)
                d.verdict = TRIAL_GATE_ROLLBACK_HEALTH;
        return d;
}
