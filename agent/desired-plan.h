/*
 * The desired-state reconciler's next step (#19 item 3, docs/deployments.md). Pure: the
 * agent (agent/desired.c) looks at the runtime and the update manager, describes what it
 * saw, and carries out the one step this returns; a step at a time, on the event loop, so
 * a kill or a reboot between two steps only means the next look starts from what is there.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* One workload the document lists, as the node sees it now. */
struct desired_entry_view {
        const char *name;
        bool exists;        /* the runtime has a workload of that name */
        bool ours;          /* made from a desired state (not workloads.d, not an operator's) */
        bool same_spec;     /* and its spec is the document's, byte for byte */
        bool busy;          /* it has a process, or is stopping */
        bool stopping;      /* a stop was asked and is under way */
        bool app_missing;   /* the spec pins an app version no member of the app holds */
        bool replacing;     /* the reconciler stopped it to replace it (kept across restarts) */
        const char *bundle; /* the bundle that brings it, "" none */
        const char *refusal; /* why it cannot be met (a check, a failed install or start); NULL none */
};

/* A workload an earlier desired state made that this one no longer lists. */
struct desired_extra_view {
        const char *name;
        bool busy, stopping;
};

struct desired_view {
        const struct desired_entry_view *entries;
        size_t n_entries;
        const struct desired_extra_view *extras;
        size_t n_extras;
        bool update_busy;       /* an install, trial or scrub of the update manager is under way */
        const char *installing; /* the bundle this reconciler had installed and waits for; NULL none */
};

enum desired_step_kind {
        DESIRED_STEP_NONE,    /* nothing left to do: reached, or all that is left is refused */
        DESIRED_STEP_WAIT,    /* something is under way (an install, a stop) */
        DESIRED_STEP_INSTALL, /* entries[index].bundle */
        DESIRED_STEP_STOP,    /* entries[index] (to replace it) or extras[index] (extra) */
        DESIRED_STEP_SUBMIT,  /* entries[index]: create or replace it, and start it */
        DESIRED_STEP_REMOVE,  /* extras[index]: stopped, forget it */
        DESIRED_STEP_RESTORE, /* entries[index]: stopped to be replaced, and the replacement cannot
                               * follow now (refused, or its app version to fetch first): start
                               * what ran again */
};

enum desired_entry_state {
        DESIRED_ENTRY_DONE,    /* runs (or was made) from this document's spec */
        DESIRED_ENTRY_PENDING, /* a step is still to come */
        DESIRED_ENTRY_REFUSED, /* cannot be met; what ran before keeps running */
};

struct desired_step {
        enum desired_step_kind kind;
        size_t index;
        bool extra;
        const char *why; /* for a refusal the plan itself makes (a name the node's own workload has) */
};

/*
 * The next step: first what is no longer listed goes (stopped, then removed), which frees
 * what the new may need; then each entry in the document's order: a missing app version
 * installed (one install at a time), the old workload stopped, the new one submitted. A
 * refused entry is skipped, so one that cannot be met never stops what runs under its name;
 * and what was stopped for a replacement that can no longer follow at once (the entry refused
 * since, by a newer document or a check, or its app version to be fetched first) is started
 * again.
 * states (n_entries) gets each entry's state; refusals[i] (n_entries, may be NULL) the
 * reason of those the plan refuses.
 */
void desired_plan(const struct desired_view *v, struct desired_step *ret, enum desired_entry_state *states,
                  const char **refusals);

const char *desired_entry_state_to_string(enum desired_entry_state s);
