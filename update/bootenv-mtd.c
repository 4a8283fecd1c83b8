/* U-Boot's environment in NOR flash through MTD character devices (see bootenv-mtd.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <mtd/mtd-user.h>
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

static int mtd_info_fd(int fd, struct bootenv_mtd *ret) {
        struct mtd_info_user info = {};
        if (ioctl(fd, MEMGETINFO, &info) < 0)
                return negative_errno();
        *ret = (struct bootenv_mtd){.type = info.type,
                                    .flags = info.flags,
                                    .size = info.size,
                                    .erasesize = info.erasesize,
                                    .writesize = info.writesize};
        return 0;
}

int bootenv_mtd_info(const char *path, struct bootenv_mtd *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return mtd_info_fd(fd, ret);
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
        if (m->erasesize == 0 || offset % m->erasesize != 0) {
                *ret_why = "the copy's offset is not at the start of an erase block";
                return -EINVAL;
        }
        uint64_t len = (((uint64_t) size + m->erasesize - 1) / m->erasesize) * m->erasesize;
        if (size == 0 || offset > m->size || len > m->size - offset) {
                *ret_why = "the copy's erase blocks pass the device's end";
                return -ERANGE;
        }
        *ret_start = offset;
        *ret_len = len;
        return 0;
}

bool bootenv_mtd_spans_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a < b + blen && b < a + alen;
}

int bootenv_mtd_write(const char *path, uint64_t offset, const void *data, size_t len, bool erase,
                      const struct durable_hook *hook) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        durable_hook_call(hook, path, DURABLE_WRITTEN);
        if (erase) {
                struct bootenv_mtd m;
                int r = mtd_info_fd(fd, &m);
                if (r < 0)
                        return r;
                uint64_t start, span;
                const char *why;
                r = bootenv_mtd_span(&m, offset, len, &start, &span, &why);
                if (r < 0)
                        return r;
                struct erase_info_user64 ei = {.start = start, .length = span};
                /* Chips that lock their blocks at power on (Intel's command set) need them
                 * unlocked; the others answer EOPNOTSUPP or ENOTTY, and the erase tells. */
                if (start + span <= UINT32_MAX)
                        (void) ioctl(fd, MEMUNLOCK, &(struct erase_info_user){.start = (uint32_t) start,
                                                                                .length = (uint32_t) span});
                if (ioctl(fd, MEMERASE64, &ei) < 0)
                        return negative_errno();
                durable_hook_call(hook, path, DURABLE_ERASED);
        }
        int r = pwrite_all(fd, data, len, offset);
        if (r < 0)
                return r;
        durable_hook_call(hook, path, DURABLE_OVERWRITTEN);
        int cfd = TAKE_FD(fd);
        if (close(cfd) < 0)
                return negative_errno();
        durable_hook_call(hook, path, DURABLE_SYNCED);
        return 0;
}
