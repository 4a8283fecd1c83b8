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
#include "lib/log.h"
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

/* Blocks of one span unlocked for a write, to be locked again after it. */
#define MTD_LOCK_BLOCKS_MAX 64
struct mtd_unlocked {
        size_t n;
        uint32_t start[MTD_LOCK_BLOCKS_MAX];
        uint32_t size;
};

/* Each erase block of [start, start + len) that the chip says is locked, unlocked, and
 * remembered in *u to be locked again. Asked block by block: MEMISLOCKED answers for a
 * range as "any block locked" on CFI chips and "every block locked" on SPI NOR. Blocks not
 * locked, and chips without locking, are left alone. */
static int mtd_unlock_locked(int fd, uint64_t start, uint64_t len, uint32_t erasesize, struct mtd_unlocked *u) {
        *u = (struct mtd_unlocked){.size = erasesize};
        if (erasesize == 0 || start > UINT32_MAX || len > UINT32_MAX - start || len / erasesize > MTD_LOCK_BLOCKS_MAX)
                return 0; /* the lock ioctls take 32-bit offsets: nothing can be asked */
        for (uint64_t b = start; b < start + len; b += erasesize) {
                struct erase_info_user ei = {.start = (uint32_t) b, .length = erasesize};
                if (ioctl(fd, MEMISLOCKED, &ei) <= 0)
                        continue;
                if (ioctl(fd, MEMUNLOCK, &ei) < 0)
                        return negative_errno();
                u->start[u->n++] = (uint32_t) b;
        }
        return 0;
}

/* The blocks unlocked for the write locked again; a failure is logged (the write stands,
 * the blocks stay writeable). */
static void mtd_relock(int fd, const char *path, const struct mtd_unlocked *u) {
        for (size_t i = 0; i < u->n; i++) {
                struct erase_info_user ei = {.start = u->start[i], .length = u->size};
                if (ioctl(fd, MEMLOCK, &ei) < 0)
                        log_warning_errno(negative_errno(), "U-Boot env %s: the block at 0x%" PRIx32
                                          " stays unlocked after the write (MEMLOCK)", path, u->start[i]);
        }
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
        struct mtd_unlocked unlocked;
        r = mtd_unlock_locked(fd, start, span, m.erasesize, &unlocked);
        if (r < 0) {
                mtd_relock(fd, path, &unlocked);
                return r;
        }
        r = mtd_program(fd, path, offset, data, len, erase, start, span, hook);
        mtd_relock(fd, path, &unlocked);
        if (r < 0)
                return r;
        int cfd = TAKE_FD(fd);
        if (close(cfd) < 0)
                return negative_errno();
        durable_hook_call(hook, path, DURABLE_SYNCED);
        return 0;
}
