/* File helpers the bootloader backends share: reads that bypass our own page cache, so
 * a read-back after a write checks the medium. Below the backends, above lib/fileio. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest grubenv / JSON file we read; anything bigger is refused. */
#define BOOTENV_FILE_MAX (1024 * 1024)

/* Read size bytes at offset after dropping cached pages, so a read-back after fsync
 * sees the medium rather than our own page cache. -ENODATA when the file is short. */
int bootenv_read_region(const char *path, uint64_t offset, size_t size, uint8_t *buf);

/* Read back a whole file just written: -EIO unless it holds exactly data. */
int bootenv_verify_file(const char *path, const void *data, size_t len);
