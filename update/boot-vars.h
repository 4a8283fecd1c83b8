/* The boot state as a backend's variables (pure): which variable names a backend
 * uses is the backend's business (struct boot_var_names); the encoding is shared. */
#pragma once

#include "update/boot-state.h"
#include "update/bootenv-vars.h"

struct boot_var_names {
        const char *order;    /* "B A": the primary first */
        const char *ok[2];    /* "1" when the slot is committed */
        const char *tries[2]; /* one digit: boots left on trial */
};

/*
 * Read the state from vars. -ENODATA when the order variable is not set (never
 * initialised), -EINVAL for a malformed value (ret_reason says which). A slot missing
 * from the order is neither good nor has tries.
 */
int boot_vars_parse(const struct boot_var_names *names, const struct env_vars *vars,
                    struct boot_state *ret, const char **ret_reason);

/* Set the variables for s in vars, leaving every other variable alone. */
int boot_vars_format(const struct boot_var_names *names, const struct boot_state *s,
                     struct env_vars *vars);

/* The project's own names (ORBIT_ORDER, ORBIT_A_OK, ORBIT_A_TRIES...), for backends
 * whose bootloader script we write ourselves (GRUB, the simulation file). */
extern const struct boot_var_names boot_var_names_orbit;
