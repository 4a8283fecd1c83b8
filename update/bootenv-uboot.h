/* The U-Boot backend: one or two copies of the environment (CRC32, flags byte when
 * redundant), in files or on block devices, as U-Boot and fw_printenv read them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "update/bootenv-backend.h"
#include "update/bootenv-vars.h"

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
 * Which of two redundant copies U-Boot uses: 0 or 1, or -EBADMSG when it takes neither.
 * One valid: that one. Both valid, by the flags:
 *   incremental (U-Boot's env_import_redund() and libubootenv's FLAGS_INCREMENTAL: MMC,
 *   SPI flash, NAND, UBI, files): the higher, except that 0 after 255 is newer (the
 *   counter wrapped); equal: copy 0.
 *   boolean (env/flash.c's env_flash_init(): an environment in parallel NOR flash, where a
 *   save programs the new copy 1, "active", then the old one's flags 0, "obsolete"): 1 and
 *   0 the active one; equal, copy 0; else a copy whose flags are 0xff (erased); any other
 *   pair (a counter's 1 and 2, say) copy 1: env_flash_init() matches none, env_init() then
 *   points at the built-in environment, and env_flash_load(), finding that address not
 *   copy 0's, loads copy 1 (and programs copy 0 obsolete). U-Boot 2023.01.
 */
int ubootenv_select_copy(const bool valid[2], const uint8_t flags[2], bool boolean);
#define UBOOTENV_FLAG_ACTIVE 1   /* boolean flags: the copy in use */
#define UBOOTENV_FLAG_OBSOLETE 0 /* boolean flags: the other one */

/* "uboot": config->path (+ path_redundant), offsets and size; BOOT_* variables. */
extern const struct bootenv_ops bootenv_uboot_ops;
