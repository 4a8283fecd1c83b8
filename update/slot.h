/*
 * Slots: where images are installed. A slot class has two members, A and B:
 *  - "rootfs": two block devices (or plain files on a simulated node), chosen at boot
 *    by the bootloader (bootenv.h);
 *  - "model:<name>": two directories <models_dir>/<name>/{a,b}, each holding the image
 *    as a file named "image", and a "current" symbolic link naming the active one,
 *    swapped atomically (rename) so a reader sees the old model or the new, never a mix.
 *  - "app:<name>" (#19): the same two directories and link under <apps_dir>/<name>; the
 *    image is an uncompressed tar, unpacked beside it into "root" (app-tree.h), and the
 *    bundle's version is written to "version" once the tree is complete.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLOT_MODEL_PREFIX "model:"
#define SLOT_MODEL_IMAGE "image"
#define SLOT_MODEL_CURRENT "current"
#define SLOT_APP_PREFIX "app:"
#define SLOT_APP_ROOT "root"
#define SLOT_APP_VERSION "version"

/* Pure: 'A' -> 'B' and back; 0 for anything else. */
char slot_other(char slot);

/* Pure: the model name of "model:<name>", or NULL for any other class. */
const char *slot_class_model_name(const char *slot_class);

/* Pure: the app name of "app:<name>", or NULL for any other class. */
const char *slot_class_app_name(const char *slot_class);

/* Pure: "<models_dir>/<name>/<a|b>" and "<models_dir>/<name>/<a|b>/image" into buf. */
int model_slot_dir(const char *models_dir, const char *name, char slot, char *buf, size_t size);
/* Remove an app member's version file, durably (the member then holds no whole version and
 * no workload starts from it); 0 when there was none. */
int app_slot_clear_version(const char *apps_dir, const char *name, char slot);
int model_slot_image(const char *models_dir, const char *name, char slot, char *buf, size_t size);

/*
 * The active member of a model: the target of <models_dir>/<name>/current ("a" or
 * "b"), returned as 'A' or 'B'. -ENOENT when the model has never been installed (no
 * link), -EBADMSG when the link names anything else.
 */
int model_slot_current(const char *models_dir, const char *name, char *ret_slot);

/*
 * Make slot the active member of a model: a new link beside "current", renamed over it,
 * then the directory synced. Readers see the old or the new target, never none.
 */
int model_slot_switch(const char *models_dir, const char *name, char slot);

/* Create <models_dir>/<name>/<a|b> (and parents) when missing, mode 0755. */
int model_slot_prepare(const char *models_dir, const char *name, char slot);

/*
 * Open a slot to install an image of `size` bytes into it. A block device must be at
 * least that big (-EFBIG otherwise); a plain file is created when missing, given exactly
 * that size (its first bytes are kept, so an interrupted install can resume) and its
 * blocks reserved (fallocate; -ENOSPC when the filesystem has no room for them, skipped
 * on a filesystem that cannot reserve).
 * Anything else (a directory, a FIFO) is refused with -EINVAL. *ret_reason (caller
 * frees) names the slot and the cause.
 */
int slot_open_write(const char *path, uint64_t size, int *ret_fd, char **ret_reason);

/* Open a slot for reading; *ret_size is the device or file size. */
int slot_open_read(const char *path, int *ret_fd, uint64_t *ret_size, char **ret_reason);
