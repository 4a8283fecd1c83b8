/* The GRUB backend: the grubenv block that load_env/save_env and grub-editenv use. */
#pragma once

#include <stddef.h>

#include "update/bootenv-backend.h"
#include "update/bootenv-vars.h"

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

/*
 * Format vars as a grubenv block padded with '#': the agent's ORBIT_* variables first, so
 * that they stay in the block's first sector, then the others in their order. -ENOSPC
 * when they do not fit.
 */
int grubenv_format(const struct env_vars *vars, char out[GRUBENV_SIZE]);

/* "grub": a grubenv file at config->path, ORBIT_* variables. */
extern const struct bootenv_ops bootenv_grub_ops;
