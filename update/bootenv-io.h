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

/*
 * The whole-file backends (grubenv, JSON file): read the file, at most BOOTENV_FILE_MAX
 * bytes. -ENOENT when it does not exist (not logged: the caller decides); any other
 * failure is logged as "<what> <path>: ...". *ret_data is NUL-terminated, caller frees.
 */
int bootenv_load_file(const char *what, const char *path, char **ret_data, size_t *ret_len);

/* Replace the file durably with data, then read it back and compare (-EIO on a
 * mismatch); every failure is logged as "<what> <path>: ...". hook: the config's
 * write_hook (NULL: none). */
struct durable_hook;
int bootenv_store_file(const char *what, const char *path, const void *data, size_t len,
                       const struct durable_hook *hook);

/*
 * Make durable whatever of path sits in the page cache (fdatasync of a read-only fd): a
 * write a crashed process left there. 0 when path does not exist or cannot be synced (a
 * character device); else 0 or the negative errno.
 */
int bootenv_flush_file(const char *path);

/* The unit a disk writes whole, or not at all, when the power goes: a sector. */
#define BOOTENV_SECTOR 512

/*
 * Where old and new (len bytes each) differ: 0 nowhere; 1 within one BOOTENV_SECTOR-byte
 * sector, its index in *ret_sector; 2 across more than one.
 */
int bootenv_sector_changed(const uint8_t *old, const uint8_t *new, size_t len, size_t *ret_sector);

/*
 * The grubenv's write, as GRUB's own save_env does it: the file's bytes overwritten in
 * place, so no cluster is allocated or freed and (on FAT) the allocation table does not
 * change (the directory entry's mtime is written back later, one sector). Only the one
 * sector that changes is written (fdatasync, read back): after a power cut the file holds
 * the old or the new block. A symlink is followed once. Cached content is flushed first,
 * so an unchanged file (on the medium) is not written. A missing file is created, and a
 * file of another size, one that cannot be read, or a change across sectors is replaced
 * whole (bootenv_store_file), with a notice. hook: as for bootenv_store_file.
 */
int bootenv_store_file_in_place(const char *what, const char *path, const void *data, size_t len,
                                const struct durable_hook *hook);
