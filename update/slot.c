/* Slots: rootfs members (block devices or files) and model directories with a current link. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "update/slot.h"

char slot_other(char slot) {
        return slot == 'A' ? 'B' : slot == 'B' ? 'A' : 0;
}

const char *slot_class_model_name(const char *slot_class) {
        size_t n = strlen(SLOT_MODEL_PREFIX);
        if (!slot_class || strncmp(slot_class, SLOT_MODEL_PREFIX, n) != 0 || !slot_class[n])
                return NULL;
        return slot_class + n;
}

const char *slot_class_app_name(const char *slot_class) {
        size_t n = strlen(SLOT_APP_PREFIX);
        if (!slot_class || strncmp(slot_class, SLOT_APP_PREFIX, n) != 0 || !slot_class[n])
                return NULL;
        return slot_class + n;
}

int model_slot_dir(const char *models_dir, const char *name, char slot, char *buf, size_t size) {
        if (slot != 'A' && slot != 'B')
                return -EINVAL;
        int n = snprintf(buf, size, "%s/%s/%c", models_dir, name, slot == 'A' ? 'a' : 'b');
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

int model_slot_image(const char *models_dir, const char *name, char slot, char *buf, size_t size) {
        if (slot != 'A' && slot != 'B')
                return -EINVAL;
        int n = snprintf(buf, size, "%s/%s/%c/%s", models_dir, name, slot == 'A' ? 'a' : 'b',
                         SLOT_MODEL_IMAGE);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

int model_slot_current(const char *models_dir, const char *name, char *ret_slot) {
        char link[PATH_MAX], target[8];
        int n = snprintf(link, sizeof(link), "%s/%s/%s", models_dir, name, SLOT_MODEL_CURRENT);
        if (n < 0 || (size_t) n >= sizeof(link))
                return -ENAMETOOLONG;
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len < 0)
                return errno == EINVAL ? -EBADMSG : negative_errno();
        target[len] = '\0';
        if (streq(target, "a"))
                *ret_slot = 'A';
        else if (streq(target, "b"))
                *ret_slot = 'B';
        else
                return -EBADMSG;
        return 0;
}

int app_slot_clear_version(const char *apps_dir, const char *name, char slot) {
        char path[PATH_MAX];
        int r = model_slot_dir(apps_dir, name, slot, path, sizeof(path));
        if (r < 0)
                return r;
        if (strlen(path) + sizeof("/" SLOT_APP_VERSION) > sizeof(path))
                return -ENAMETOOLONG;
        strcat(path, "/" SLOT_APP_VERSION);
        if (unlink(path) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        return fsync_parent_dir(path);
}

int model_slot_prepare(const char *models_dir, const char *name, char slot) {
        char dir[PATH_MAX];
        int r = model_slot_dir(models_dir, name, slot, dir, sizeof(dir));
        if (r < 0)
                return r;
        return mkdir_parents(dir, 0755);
}

int model_slot_switch(const char *models_dir, const char *name, char slot) {
        char dir[PATH_MAX], tmp[PATH_MAX + 32], link[PATH_MAX + 32];
        if (slot != 'A' && slot != 'B')
                return -EINVAL;
        int n = snprintf(dir, sizeof(dir), "%s/%s", models_dir, name);
        if (n < 0 || (size_t) n >= sizeof(dir))
                return -ENAMETOOLONG;
        snprintf(tmp, sizeof(tmp), "%s/.%s.new", dir, SLOT_MODEL_CURRENT);
        snprintf(link, sizeof(link), "%s/%s", dir, SLOT_MODEL_CURRENT);
        (void) unlink(tmp);
        if (symlink(slot == 'A' ? "a" : "b", tmp) < 0)
                return negative_errno();
        if (rename(tmp, link) < 0) {
                int r = negative_errno();
                (void) unlink(tmp);
                return r;
        }
        return fsync_parent_dir(link);
}

int slot_open_write(const char *path, uint64_t size, int *ret_fd, char **ret_reason) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                int r = negative_errno();
                return message_set(ret_reason, r, "slot %s: cannot open for writing: %s", path,
                                   strerror(-r));
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return message_set(ret_reason, negative_errno(), "slot %s: %m", path);
        if (S_ISBLK(st.st_mode)) {
                uint64_t dev_size = 0;
                if (ioctl(fd, BLKGETSIZE64, &dev_size) < 0)
                        return message_set(ret_reason, negative_errno(),
                                           "slot %s: cannot read the device size: %m", path);
                /* Not a full filesystem that may drain: this device can never hold it. */
                if (dev_size < size)
                        return message_set(ret_reason, -EFBIG,
                                           "slot %s: device holds %" PRIu64
                                           " bytes, the image needs %" PRIu64,
                                           path, dev_size, size);
        } else if (S_ISREG(st.st_mode)) {
                if ((uint64_t) st.st_size != size && ftruncate(fd, (off_t) size) < 0) {
                        int r = negative_errno();
                        return message_set(ret_reason, r, "slot %s: cannot size it to %" PRIu64
                                           " bytes: %s", path, size, strerror(-r));
                }
                /* Claim the blocks now: a filesystem that fills up stops the install here,
                 * before a chunk is written, not in the middle. A filesystem that cannot
                 * reserve is written as before. Data already in the file is kept. */
                if (size > 0 && fallocate(fd, 0, 0, (off_t) size) < 0 && errno != EOPNOTSUPP &&
                    errno != EINVAL && errno != ENOSYS) {
                        int r = negative_errno();
                        return message_set(ret_reason, r, "slot %s: cannot reserve %" PRIu64
                                           " bytes: %s", path, size, strerror(-r));
                }
        } else
                return message_set(ret_reason, -EINVAL,
                                   "slot %s: neither a block device nor a regular file", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int slot_open_read(const char *path, int *ret_fd, uint64_t *ret_size, char **ret_reason) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = negative_errno();
                return message_set(ret_reason, r, "slot %s: cannot open: %s", path, strerror(-r));
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return message_set(ret_reason, negative_errno(), "slot %s: %m", path);
        uint64_t size;
        if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, &size) < 0)
                        return message_set(ret_reason, negative_errno(),
                                           "slot %s: cannot read the device size: %m", path);
        } else if (S_ISREG(st.st_mode))
                size = (uint64_t) st.st_size;
        else
                return message_set(ret_reason, -EINVAL,
                                   "slot %s: neither a block device nor a regular file", path);
        *ret_fd = TAKE_FD(fd);
        *ret_size = size;
        return 0;
}
