/* Private to update/bootenv*.c: the file I/O of each backend, called by bootenv.c. */
#pragma once

#include "bootenv.h"

/* Largest grubenv / JSON file we read; anything bigger is refused. */
#define BOOTENV_FILE_MAX (1024 * 1024)

/* Read size bytes at offset after dropping cached pages, so a read-back after fsync
 * sees the medium rather than our own page cache. -ENODATA when the file is short. */
int bootenv_read_region(const char *path, uint64_t offset, size_t size, uint8_t *buf);

/* Read back a whole file just written: -EIO unless it holds exactly data. */
int bootenv_verify_file(const char *path, const void *data, size_t len);

/* grubenv at path: load (-ENOENT when missing) and store (durable, read back). */
int bootenv_grub_load(const char *path, struct env_vars *ret);
int bootenv_grub_store(const char *path, const struct env_vars *vars);

/* U-Boot env, one or two copies as configured. */
int bootenv_uboot_load(const struct bootenv_config *c, struct env_vars *ret);
int bootenv_uboot_store(const struct bootenv_config *c, const struct env_vars *vars);

/* JSON object of strings at path. */
int bootenv_file_load(const char *path, struct env_vars *ret);
int bootenv_file_store(const char *path, const struct env_vars *vars);
