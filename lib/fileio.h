/* File I/O that does not lose data: full reads and writes, durable replacement. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all of buf, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);

/* Read exactly len bytes at offset (retrying short reads and EINTR); -ENODATA at end of file. */
int pread_all(int fd, void *buf, size_t len, uint64_t offset);

/* Write exactly len bytes at offset (retrying short writes and EINTR). */
int pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);

/*
 * Read a whole file into a NUL-terminated heap buffer. Files larger than max_size fail
 * with -EFBIG, so nothing from outside can make us allocate without bound.
 */
int read_file_bounded(const char *path, size_t max_size, char **ret_data, size_t *ret_len);

/* The kernel's boot id (<procfs_root>/sys/kernel/random/boot_id, its newline dropped) into
 * buf; -EBADMSG when it is shorter than 8 characters or does not fit, or the read's error. */
int read_kernel_boot_id(const char *procfs_root, char *buf, size_t size);

/* fsync the directory that holds path, so a rename inside it is on disk. */
int fsync_parent_dir(const char *path);

/*
 * Replace path with data durably: write "<path>.tmp", fsync it, rename over path, fsync
 * the directory. After a power cut the file holds either the old or the new content.
 */
int write_file_durable(const char *path, const void *data, size_t len, mode_t mode);

/* The points of write_file_durable a hook sees (tests only: failpoints that hold a write
 * there so a power cut can land exactly between two of its steps). */
enum durable_step {
        DURABLE_WRITTEN,     /* the new content ready, path untouched: "<path>.tmp" written
                                and fsynced (in place: nothing written yet) */
        DURABLE_RENAMED,     /* renamed over path; neither the file nor its directory
                                fsynced again */
        DURABLE_OVERWRITTEN, /* in place: written over path's bytes, not fsynced yet */
        DURABLE_SYNCED,      /* all done: the new content durable, the caller not told yet */
        DURABLE_ERASED,      /* in place on flash (an MTD device): the region erased, nothing
                                written yet (update/bootenv-mtd.c) */
};
#define DURABLE_STEP_LAST DURABLE_ERASED
struct durable_hook {
        void (*fn)(const char *path, enum durable_step step, void *userdata);
        void *userdata;
};
const char *durable_step_to_string(enum durable_step step);

/* Tests only: the failpoint ORBIT_FAILPOINT_WRITE_STALL_AT=PATTERN:STEP (with
 * ORBIT_FAILPOINT_WRITE_STALL_FILE=F) holds a write of a path matching PATTERN at STEP while
 * F exists. write_file_durable_hooked and write_file_region_hooked call it at each of their
 * steps (durable_step_to_string), statefile_save at its own ("linked", "kept"). */
void durable_failpoint(const char *path, const char *step);

/* A writer's step told: hook (NULL: none), then the failpoint above. For writers outside
 * this file (update/bootenv-mtd.c). */
void durable_hook_call(const struct durable_hook *hook, const char *path, enum durable_step step);

/* write_file_durable calling hook (NULL: none) at each step. */
int write_file_durable_hooked(const char *path, const void *data, size_t len, mode_t mode,
                              const struct durable_hook *hook);

/*
 * Overwrite len bytes of the existing file (or device) path at offset, in place: no temp
 * file, no rename, the file keeps its blocks and its directory entry; then fdatasync.
 * What a bootloader that cannot allocate does (GRUB's save_env, U-Boot's saveenv). After
 * a power cut the bytes hold the old or the new content only when they lie in one device
 * sector: the caller sees to that. hook (NULL: none) sees DURABLE_WRITTEN (nothing
 * written yet), DURABLE_OVERWRITTEN and DURABLE_SYNCED.
 */
int write_file_region_hooked(const char *path, uint64_t offset, const void *data, size_t len,
                             const struct durable_hook *hook);

/*
 * Whether a cache flush of the disk behind fd (a block device, or a file's filesystem)
 * also flushes the disk that holds path's filesystem: the same filesystem, or partitions
 * of one disk (sysfs_root "/sys" on a board: its dev/block links). false when it cannot
 * tell (a virtual filesystem, a device mapper stack): then each must be flushed on its own.
 */
bool same_disk(int fd, const char *path, const char *sysfs_root);

/* mkdir -p with the given mode for the directories it creates. */
int mkdir_parents(const char *path, mode_t mode);

/*
 * Remove name (a file, a symbolic link or a whole directory tree) under the directory
 * dirfd, never following a symbolic link: what a link points to is left alone. 0 when
 * name did not exist. Trees deeper than 512 levels fail with -ELOOP.
 */
int rm_tree_at(int dirfd, const char *name);
