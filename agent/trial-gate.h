/*
 * When a trial commits or rolls back (pure: tests/unit/test-trial-gate). The health gate
 * alone cannot see an image whose network, TLS or link configuration is broken: such a
 * node passes it, commits, and is never heard from again. So a rootfs trial on a node
 * with a link also waits until the controller was reached from the new slot (a good sync
 * after the trial began), for as long as the contact plan gives it a chance to, and rolls
 * back when it was not (docs/update.md, "The commit gate").
 *
 * All times are microseconds on one clock (update-trial.c uses CLOCK_MONOTONIC and turns
 * the plan's unix seconds into it).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct trial_gate_input {
        uint64_t now, started; /* the trial began at started (now >= started) */
        uint64_t gate;         /* update.gate_sec: how long the health gate must hold */
        uint64_t timeout; /* update.trial_timeout_sec: it must have held by started + timeout */

        bool health_passing;   /* the health gate passes now ... */
        uint64_t health_since; /* ... without a break since then */
        bool health_held;      /* it has held `gate` once in this trial (kept across restarts) */

        bool controller_required; /* link enabled, a rootfs trial, no commit_without_controller */
        bool controller_reached;  /* a good sync since the trial began */
        /* The contact plan's pass that gives the trial its chance: the last window that opens
         * before started + timeout and closes after started (has_window false: none, or no
         * plan). */
        bool has_window;
        uint64_t window_start, window_end;
        uint64_t window_grace;    /* after the pass closes, for a sync begun in it to end */
        uint64_t controller_wait; /* update.controller_wait_sec: the limit without a pass, and
                                   * how long a pass counts once it opens */
};

enum trial_gate_verdict {
        TRIAL_GATE_WAIT,
        TRIAL_GATE_COMMIT,
        TRIAL_GATE_ROLLBACK_HEALTH,     /* the health gate did not hold (in time, or at the end) */
        TRIAL_GATE_ROLLBACK_CONTROLLER, /* the controller was not reached by the deadline */
};

enum trial_gate_deadline_kind {
        TRIAL_GATE_DEADLINE_NONE,  /* the controller is not required */
        TRIAL_GATE_DEADLINE_PASS,  /* the end of the planned pass (plus the grace) */
        TRIAL_GATE_DEADLINE_LIMIT, /* started + controller_wait: no pass due */
};

struct trial_gate_decision {
        enum trial_gate_verdict verdict;
        bool health_held;            /* the input's, or true from now on */
        bool waiting_for_controller; /* the health gate held, the controller is what is missing */
        enum trial_gate_deadline_kind deadline_kind;
        uint64_t controller_deadline; /* when DEADLINE_PASS or DEADLINE_LIMIT */
};

/*
 * Decide at one tick of the gate:
 * - COMMIT when the health gate has held `gate` (now or earlier in the trial), passes now,
 *   and the controller was reached (or is not required);
 * - ROLLBACK_HEALTH when it never held `gate` by started + timeout, or when it is not
 *   passing at the last deadline (the later of that and the controller's);
 * - ROLLBACK_CONTROLLER when the controller is required, was not reached, and its deadline
 *   passed: the end of the planned pass (plus grace) when one is due in the trial window,
 *   but at most controller_wait after it opened (or after started, when it was open then),
 *   else started + controller_wait;
 * - else WAIT.
 */
struct trial_gate_decision trial_gate_decide(const struct trial_gate_input *in);

const char *trial_gate_deadline_kind_to_string(enum trial_gate_deadline_kind k);
