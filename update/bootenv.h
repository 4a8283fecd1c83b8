/*
 * Boot selection through the bootloader's environment: A/B slot order, boot counting
 * and commit, stored in a grubenv, a U-Boot environment or a JSON file (simulation).
 * See docs/bootloader.md for the variables and the bootloader scripts that use them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* ---- variables: an ordered list of name=value pairs ------------------------------- */

#define ENV_VARS_MAX 1024         /* entries; more is refused as -E2BIG */
#define ENV_NAME_MAX 256          /* bytes of a name, without the NUL */
#define ENV_VALUE_MAX (64 * 1024) /* bytes of a value, without the NUL */

struct env_var {
        char *name;
        char *value;
};

/* The environment as the bootloader sees it, in file order. Owns its strings. */
struct env_vars {
        struct env_var *items;
        size_t count;
};

/* Free all entries and reset to empty. */
void env_vars_clear(struct env_vars *vars);

/* The value of name, or NULL when unset. The pointer lives until the next change. */
const char *env_vars_get(const struct env_vars *vars, const char *name);

/*
 * Set name to value: replaced in place when present, else appended (what grub-editenv
 * does). -EINVAL for a name that is empty or holds '=', '\n' or a leading '#'.
 */
int env_vars_set(struct env_vars *vars, const char *name, const char *value);

/* Remove name; 0 whether or not it was there. */
int env_vars_unset(struct env_vars *vars, const char *name);

/* Same names with the same values, in any order. */
bool env_vars_equal(const struct env_vars *a, const struct env_vars *b);

/* Deep copy of src into an empty *ret. */
int env_vars_copy(const struct env_vars *src, struct env_vars *ret);

/* ---- GRUB: the grubenv block (pure) ------------------------------------------------ */

#define GRUBENV_SIZE 1024
#define GRUBENV_HEADER "# GRUB Environment Block\n"

/*
 * Parse a grubenv: exactly GRUBENV_SIZE bytes, the header line, then "name=value\n"
 * lines ('\' escapes the next byte, as grub-editenv writes '\\' and '\n') and '#'
 * comment or padding lines. -ENODATA for a wrong size, -EBADMSG for a bad header,
 * a NUL byte, a line without '=' or an unterminated line. *ret must be empty; on
 * failure it stays empty. ret_reason, when not NULL, gets a static description.
 */
int grubenv_parse(const char *buf, size_t len, struct env_vars *ret, const char **ret_reason);

/* Format vars as a grubenv block padded with '#'. -ENOSPC when they do not fit. */
int grubenv_format(const struct env_vars *vars, char out[GRUBENV_SIZE]);

/* ---- U-Boot: one copy of the environment (pure) ------------------------------------ */

#define UBOOTENV_SIZE_MIN 16
#define UBOOTENV_SIZE_MAX (1024 * 1024)

/*
 * Parse one copy of `size` bytes: a little-endian CRC32 of the data area, a flags byte
 * when redundant, then "name=value\0" entries ended by an empty one. -EBADMSG for a
 * CRC mismatch or a malformed entry, -ENODATA when len < size.
 */
int ubootenv_parse(const uint8_t *buf, size_t len, size_t size, bool redundant,
                   struct env_vars *ret, uint8_t *ret_flags, const char **ret_reason);

/* Format vars into out[size], zero padded, with the CRC and flags. -ENOSPC if too big. */
int ubootenv_format(const struct env_vars *vars, size_t size, bool redundant, uint8_t flags,
                    uint8_t *out);

/*
 * Which of two redundant copies U-Boot uses: 0 or 1, or -EBADMSG when neither is valid.
 * Both valid: the one with the higher flags byte, except that 0 after 255 is newer
 * (the flags counter wrapped). Equal flags: copy 0, as U-Boot does.
 */
int ubootenv_select_copy(const bool valid[2], const uint8_t flags[2]);

/* ---- the boot state and what the bootloader does with it (pure) -------------------- */

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

/* ---- mapping the state to each backend's variables (pure) ------------------------- */

enum bootenv_kind {
        BOOTENV_GRUB,  /* grubenv, ORBIT_* variables */
        BOOTENV_UBOOT, /* U-Boot environment, BOOT_* variables (RAUC's names) */
        BOOTENV_FILE,  /* JSON object of strings, ORBIT_* variables, for simulated nodes */
};

/* "grub", "uboot", "file"; and back (-EINVAL when unknown). */
const char *bootenv_kind_to_string(enum bootenv_kind kind);
int bootenv_kind_from_string(const char *s, enum bootenv_kind *ret);

/*
 * Read the state from the variables of a backend. -ENODATA when the order variable is
 * not set (never initialised), -EINVAL for a malformed value (ret_reason says which).
 * A slot missing from the order is neither good nor has tries.
 */
int boot_state_from_vars(enum bootenv_kind kind, const struct env_vars *vars,
                         struct boot_state *ret, const char **ret_reason);

/* Set the backend's variables for s in vars, leaving every other variable alone. */
int boot_state_to_vars(enum bootenv_kind kind, const struct boot_state *s,
                       struct env_vars *vars);

/* Pure: the slot in "orbit.slot=A" on a kernel command line; the last one counts.
 * -ENOENT when absent, -EINVAL when the value is not exactly A or B. */
int kernel_cmdline_booted_slot(const char *cmdline, char *ret_slot);

/* ---- I/O: a backend bound to its files --------------------------------------------- */

struct bootenv_config {
        enum bootenv_kind kind;
        const char *path;           /* grubenv, JSON file, or the first U-Boot copy */
        const char *path_redundant; /* uboot: the second copy, NULL for a single one */
        uint64_t offset;            /* uboot: where the copy starts in path */
        uint64_t offset_redundant;  /* uboot: where the copy starts in path_redundant */
        size_t size;                /* uboot: bytes of one copy, header included */
};

struct bootenv;

/* Check the config and bind a backend to it; nothing is read yet. Paths are copied. */
int bootenv_open(const struct bootenv_config *config, struct bootenv **ret);
void bootenv_free(struct bootenv *b);

/*
 * Read all variables. Problems are logged naming the file and the cause. -ENOENT when
 * the environment does not exist, -EBADMSG / -ENODATA when no copy verifies. For a
 * redundant U-Boot env a bad copy is logged as a warning and the good one used.
 */
int bootenv_read_vars(struct bootenv *b, struct env_vars *ret);

/*
 * Replace all variables durably, then read back and compare (-EIO on a mismatch).
 * Redundant U-Boot: only the copy not in use is written, with flags + 1, so a power
 * cut leaves the other valid. When no copy is valid, both are written.
 */
int bootenv_write_vars(struct bootenv *b, const struct env_vars *vars);

/* Read the boot state: bootenv_read_vars + boot_state_from_vars. */
int bootenv_read(struct bootenv *b, struct boot_state *ret);

/*
 * Write the boot state, keeping every other variable. A grubenv or JSON file that does
 * not exist yet is created; a U-Boot environment must exist (it carries bootcmd).
 */
int bootenv_write(struct bootenv *b, const struct boot_state *s);

/* Read the booted slot from a kernel command line file (/proc/cmdline). */
int bootenv_booted_slot(const char *cmdline_path, char *ret_slot);

#define _cleanup_bootenv_ _cleanup_(bootenv_freep)
static inline void bootenv_freep(struct bootenv **b) {
        bootenv_free(*b);
}
#define _cleanup_env_vars_ _cleanup_(env_vars_clear)
