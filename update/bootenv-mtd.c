/* U-Boot's environment in NOR flash through MTD character devices (see bootenv-mtd.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mtd/mtd-user.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "update/bootenv-mtd.h"

#define MTD_CHAR_MAJOR 90

bool bootenv_is_mtd(const char *path) {
        struct stat st;
        return path && stat(path, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == MTD_CHAR_MAJOR;
}

bool bootenv_mtd_same_device(const char *a, const char *b) {
        struct stat sa, sb;
        return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_rdev == sb.st_rdev;
}

/* The device's size from sysfs: MEMGETINFO's is 32 bits wide. 0 when it cannot be read. */
static uint64_t mtd_sysfs_size(int fd) {
        struct stat st;
        char path[64];
        if (fstat(fd, &st) < 0)
                return 0;
        snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/size", major(st.st_rdev), minor(st.st_rdev));
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        uint64_t size = 0;
        if (!f || fscanf(f, "%" SCNu64, &size) != 1)
                return 0;
        return size;
}

static int mtd_info_fd(int fd, uint64_t offset, struct bootenv_mtd *ret) {
        struct mtd_info_user info = {};
        if (ioctl(fd, MEMGETINFO, &info) < 0)
                return negative_errno();
        uint64_t size = mtd_sysfs_size(fd);
        *ret = (struct bootenv_mtd){.type = info.type,
                                    .flags = info.flags,
                                    .size = size ? size : info.size,
                                    .erasesize = info.erasesize,
                                    .writesize = info.writesize};
        ret->region_end = ret->size;
        /* Flash with blocks of several sizes (parallel NOR's boot sectors): MEMGETINFO
         * gives the largest; the region holding offset says what an erase there takes. */
        int regions = 0;
        if (ioctl(fd, MEMGETREGIONCOUNT, &regions) < 0 || regions <= 0)
                return 0;
        for (int i = 0; i < regions; i++) {
                struct region_info_user r = {.regionindex = (uint32_t) i};
                if (ioctl(fd, MEMGETREGIONINFO, &r) < 0)
                        return negative_errno();
                uint64_t end = (uint64_t) r.offset + (uint64_t) r.erasesize * r.numblocks;
                if (offset >= r.offset && offset < end) {
                        ret->erasesize = r.erasesize;
                        ret->region_end = end;
                        break;
                }
        }
        return 0;
}

int bootenv_mtd_info(const char *path, uint64_t offset, struct bootenv_mtd *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return mtd_info_fd(fd, offset, ret);
}

int bootenv_mtd_span(const struct bootenv_mtd *m, uint64_t offset, size_t size, uint64_t *ret_start,
                     uint64_t *ret_len, const char **ret_why) {
        *ret_why = NULL;
        if (m->type == MTD_NANDFLASH || m->type == MTD_MLCNANDFLASH || m->writesize != 1 ||
            !(m->flags & MTD_BIT_WRITEABLE)) {
                *ret_why = "not NOR flash: its bits cannot be programmed a byte at a time (NAND is written "
                           "a page at a time), which the copies' flags need";
                return -EOPNOTSUPP;
        }
        if (!(m->flags & MTD_WRITEABLE)) {
                *ret_why = "the device is read-only";
                return -EROFS;
        }
        if (size == 0) {
                *ret_why = "a copy of no bytes";
                return -EINVAL;
        }
        if (m->erasesize == 0 || offset % m->erasesize != 0) {
                *ret_why = "the copy's offset is not at the start of an erase block";
                return -EINVAL;
        }
        uint64_t len = (((uint64_t) size + m->erasesize - 1) / m->erasesize) * m->erasesize;
        uint64_t end = m->region_end && m->region_end < m->size ? m->region_end : m->size;
        if (offset > end || len > end - offset) {
                *ret_why = end < m->size ? "the copy's erase blocks pass the end of its region of blocks"
                                         : "the copy's erase blocks pass the device's end";
                return -ERANGE;
        }
        *ret_start = offset;
        *ret_len = len;
        return 0;
}

bool bootenv_mtd_spans_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a < b + blen && b < a + alen;
}

bool bootenv_mtd_erased(const uint8_t *p, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (p[i] != 0xff)
                        return false;
        return true;
}

/* The blocks [start, start + len) unlocked when the chip says they are locked: 1 (lock
 * them again after), 0 (left alone: not locked, or the chip has no locking). */
static int mtd_unlock_if_locked(int fd, uint64_t start, uint64_t len) {
        if (start > UINT32_MAX || len > UINT32_MAX - start)
                return 0; /* the lock ioctls take 32-bit offsets: nothing can be asked */
        struct erase_info_user ei = {.start = (uint32_t) start, .length = (uint32_t) len};
        if (ioctl(fd, MEMISLOCKED, &ei) <= 0)
                return 0;
        if (ioctl(fd, MEMUNLOCK, &ei) < 0)
                return negative_errno();
        return 1;
}

static void mtd_relock(int fd, uint64_t start, uint64_t len) {
        struct erase_info_user ei = {.start = (uint32_t) start, .length = (uint32_t) len};
        (void) ioctl(fd, MEMLOCK, &ei);
}

/* The write itself, once the blocks [start, start + span) are writeable. */
static int mtd_program(int fd, const char *path, uint64_t offset, const void *data, size_t len, bool erase,
                       uint64_t start, uint64_t span, const struct durable_hook *hook) {
        if (erase) {
                struct erase_info_user64 ei = {.start = start, .length = span};
                if (ioctl(fd, MEMERASE64, &ei) < 0)
                        return negative_errno();
                durable_hook_call(hook, path, DURABLE_ERASED);
        }
        int r = pwrite_all(fd, data, len, offset);
        if (r < 0)
                return r;
        durable_hook_call(hook, path, DURABLE_OVERWRITTEN);
        return 0;
}

int bootenv_mtd_write(const char *path, uint64_t offset, const void *data, size_t len, bool erase,
                      const struct durable_hook *hook) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        struct bootenv_mtd m;
        int r = mtd_info_fd(fd, offset, &m);
        if (r < 0)
                return r;
        uint64_t start, span;
        if (erase) {
                const char *why;
                r = bootenv_mtd_span(&m, offset, len, &start, &span, &why);
                if (r < 0)
                        return r;
                /* What the blocks hold past the copy would go with the erase: U-Boot's
                 * own save keeps it, this writer refuses it (its copies own their blocks) */
                size_t tail = (size_t) (start + span - offset - len);
                _cleanup_free_ uint8_t *rest = malloc(tail ? tail : 1);
                if (!rest)
                        return -ENOMEM;
                r = pread_all(fd, rest, tail, offset + len);
                if (r < 0)
                        return r;
                if (!bootenv_mtd_erased(rest, tail))
                        return -ENOTEMPTY;
        } else {
                if (m.erasesize == 0)
                        return -EINVAL;
                start = offset - offset % m.erasesize; /* the block the bytes are in */
                span = m.erasesize;
        }
        durable_hook_call(hook, path, DURABLE_WRITTEN);
        int locked = mtd_unlock_if_locked(fd, start, span);
        if (locked < 0)
                return locked;
        r = mtd_program(fd, path, offset, data, len, erase, start, span, hook);
        if (locked)
                mtd_relock(fd, start, span);
        if (r < 0)
                return r;
        int cfd = TAKE_FD(fd);
        if (close(cfd) < 0)
                return negative_errno();
        durable_hook_call(hook, path, DURABLE_SYNCED);
        return 0;
}
