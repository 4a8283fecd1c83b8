/* The A/B boot state and what the bootloader scripts of docs/bootloader.md do with it:
 * slot order, boot counting, commit and rollback (pure: no I/O, no variables). */
#pragma once

#include <stdbool.h>

#define BOOT_TRIES_MAX 9 /* one digit: GRUB script and U-Boot's hex setexpr count it */

struct boot_slot_state {
        bool good;      /* committed: the bootloader boots it without counting */
        int tries_left; /* not good: boot attempts left, 0..BOOT_TRIES_MAX; 0 = unbootable */
};

struct boot_state {
        char primary; /* 'A' or 'B': the slot tried first */
        struct boot_slot_state slot[2]; /* [0] is A, [1] is B */
};

/* 0 for 'A', 1 for 'B', -EINVAL for anything else. */
int boot_slot_index(char slot);

/* The slot that is not `slot` ('A' <-> 'B'); slot must be valid. */
char boot_slot_other(char slot);

/* The state of a node that has only ever booted `slot`: primary, good; the other bad. */
int boot_state_init(struct boot_state *s, char slot);

/* Make slot primary for a trial with `tries` boots (1..BOOT_TRIES_MAX); the other keeps
 * its state, so it is the fallback when it is good. */
int boot_state_try_slot(struct boot_state *s, char slot, int tries);

/* Commit slot: it boots without counting from now on. Does not change the order. */
int boot_state_mark_good(struct boot_state *s, char slot);

/* Abandon slot: not good, no tries; when it was primary, the other one becomes primary. */
int boot_state_mark_bad(struct boot_state *s, char slot);

/*
 * What the bootloader scripts in docs/bootloader.md do at each boot: take the primary,
 * then the other slot; boot the first that is good, or that has tries left (using one).
 * -ENOENT when no slot is bootable (s is unchanged).
 */
int boot_state_simulate_boot(struct boot_state *s, char *ret_slot);

enum boot_outcome {
        BOOT_OUTCOME_GOOD,     /* booted a committed slot that is primary: nothing to do */
        BOOT_OUTCOME_TRIAL,    /* booted the primary on trial: run the health gate */
        BOOT_OUTCOME_FALLBACK, /* booted other than the primary: the primary failed */
};

/* Classify the boot the agent is running in, from the state and the booted slot. */
int boot_state_outcome(const struct boot_state *s, char booted, enum boot_outcome *ret);
