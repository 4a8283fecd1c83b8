/* The A/B boot state machine: what the agent decides (try, commit, abandon) and what
 * the bootloader scripts do at each boot (count a try, fall back). No I/O. */
#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "update/boot-state.h"

int boot_slot_index(char slot) {
        if (slot == 'A')
                return 0;
        if (slot == 'B')
                return 1;
        return -EINVAL;
}

char boot_slot_other(char slot) {
        return slot == 'A' ? 'B' : 'A';
}

int boot_state_init(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        *s = (struct boot_state){.primary = slot};
        s->slot[i].good = true;
        return 0;
}

int boot_state_try_slot(struct boot_state *s, char slot, int tries) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        if (tries < 1 || tries > BOOT_TRIES_MAX)
                return -ERANGE;
        s->primary = slot;
        s->slot[i] = (struct boot_slot_state){.good = false, .tries_left = tries};
        return 0;
}

int boot_state_mark_good(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        s->slot[i] = (struct boot_slot_state){.good = true, .tries_left = 0};
        return 0;
}

int boot_state_mark_bad(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        s->slot[i] = (struct boot_slot_state){.good = false, .tries_left = 0};
        if (s->primary == slot)
                s->primary = boot_slot_other(slot);
        return 0;
}

int boot_state_simulate_boot(struct boot_state *s, char *ret_slot) {
        if (boot_slot_index(s->primary) < 0)
                return -EINVAL;
        const char order[2] = {s->primary, boot_slot_other(s->primary)};
        for (size_t k = 0; k < 2; k++) {
                struct boot_slot_state *slot = &s->slot[boot_slot_index(order[k])];
                if (slot->good) {
                        *ret_slot = order[k];
                        return 0;
                }
                if (slot->tries_left > 0) {
                        slot->tries_left--;
                        *ret_slot = order[k];
                        return 0;
                }
        }
        return -ENOENT;
}

int boot_state_outcome(const struct boot_state *s, char booted, enum boot_outcome *ret) {
        int i = boot_slot_index(booted);
        if (i < 0 || boot_slot_index(s->primary) < 0)
                return -EINVAL;
        if (booted != s->primary)
                *ret = BOOT_OUTCOME_FALLBACK;
        else if (s->slot[i].good)
                *ret = BOOT_OUTCOME_GOOD;
        else
                *ret = BOOT_OUTCOME_TRIAL;
        return 0;
}
