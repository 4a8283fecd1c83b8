/* The bootloader's environment as an ordered list of name=value pairs (pure). Every
 * backend reads and writes this list; nothing here knows a file format or a slot. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/macro.h"

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

#define _cleanup_env_vars_ _cleanup_(env_vars_clear)
