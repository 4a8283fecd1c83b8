/*
 * Boot selection through the bootloader's environment: A/B slot order, boot counting
 * and commit, stored in a grubenv, a U-Boot environment or a JSON file (simulation).
 * See docs/bootloader.md for the variables and the bootloader scripts that use them.
 *
 * This header is the module's public face: it pulls in the pure pieces (variables,
 * the boot state machine, its encoding, the kernel command line, the backends' formats)
 * and declares the I/O that binds a backend (struct bootenv_ops) to its files.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "update/boot-state.h"
#include "update/boot-vars.h"
#include "update/bootenv-backend.h"
#include "update/bootenv-file.h"
#include "update/bootenv-grub.h"
#include "update/bootenv-uboot.h"
#include "update/bootenv-vars.h"
#include "update/kernel-cmdline.h"
#include "lib/macro.h"

/* "grub", "uboot", "file" (the backends' names); and back (-EINVAL when unknown). */
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

/* ---- I/O: a backend bound to its files --------------------------------------------- */

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
 * Redundant U-Boot: only the copy not in use is written, with flags + 1 (boolean flags:
 * 1, then the old copy's 0), so a power cut leaves the other valid. When no copy is
 * valid, both are written.
 */
int bootenv_write_vars(struct bootenv *b, const struct env_vars *vars);

/* Read the boot state: bootenv_read_vars + boot_state_from_vars. */
int bootenv_read(struct bootenv *b, struct boot_state *ret);

/*
 * Write the boot state, keeping every other variable. A grubenv or JSON file that does
 * not exist yet is created; a U-Boot environment must exist (it carries bootcmd).
 */
int bootenv_write(struct bootenv *b, const struct boot_state *s);

#define _cleanup_bootenv_ _cleanup_(bootenv_freep)
static inline void bootenv_freep(struct bootenv **b) {
        bootenv_free(*b);
}
