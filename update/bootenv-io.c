/* File helpers shared by the bootloader backends: uncached reads for read-back checks. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "update/bootenv-io.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"

/* Read `size` bytes at offset, uncached, so we see what is on the device. */
int bootenv_read_region(const char *path, uint64_t offset, size_t size, uint8_t *buf) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        /* Drop clean cached pages first, so a read-back checks the medium. */
        (void) posix_fadvise(fd, (off_t) offset, (off_t) size, POSIX_FADV_DONTNEED);
        return pread_all(fd, buf, size, offset);
}

int bootenv_verify_file(const char *path, const void *data, size_t len) {
        struct stat st;
        if (stat(path, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != len)
                return -EIO;
        _cleanup_free_ uint8_t *back = malloc(len ? len : 1);
        if (!back)
                return -ENOMEM;
        int r = bootenv_read_region(path, 0, len, back);
        if (r < 0)
                return r;
        return memcmp(back, data, len) == 0 ? 0 : -EIO;
}

int bootenv_load_file(const char *what, const char *path, char **ret_data, size_t *ret_len) {
        int r = read_file_bounded(path, BOOTENV_FILE_MAX, ret_data, ret_len);
        if (r == -ENOENT)
                return r; /* not created yet: the caller decides */
        if (r < 0)
                return log_error_errno(r, "%s %s: cannot read it", what, path);
        return 0;
}

static int verify_stored(const char *what, const char *path, const void *data, size_t len) {
        int r = bootenv_verify_file(path, data, len);
        if (r == -EIO)
                return log_error_errno(r, "%s %s: read back differs from what was written",
                                       what, path);
        if (r < 0)
                return log_error_errno(r, "%s %s: reading back failed", what, path);
        return 0;
}

int bootenv_store_file(const char *what, const char *path, const void *data, size_t len,
                       const struct durable_hook *hook) {
        int r = write_file_durable_hooked(path, data, len, 0644, hook);
        if (r < 0)
                return log_error_errno(r, "%s %s: write failed", what, path);
        return verify_stored(what, path, data, len);
}

int bootenv_sector_changed(const uint8_t *old, const uint8_t *new, size_t len, size_t *ret_sector) {
        size_t lo = 0, hi = len;
        while (lo < len && old[lo] == new[lo])
                lo++;
        if (lo == len)
                return 0;
        while (hi > lo && old[hi - 1] == new[hi - 1])
                hi--;
        if (lo / BOOTENV_SECTOR != (hi - 1) / BOOTENV_SECTOR)
                return 2;
        *ret_sector = lo / BOOTENV_SECTOR;
        return 1;
}

int bootenv_flush_file(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        /* EINVAL: a file that cannot be synced (a character device): nothing cached to lose */
        if (fdatasync(fd) < 0 && errno != EINVAL)
                return negative_errno();
        return 0;
}

int bootenv_store_file_in_place(const char *what, const char *path, const void *data, size_t len,
                                const struct durable_hook *hook) {
        /*
         * A symlink (a distribution's /boot/grub2/grubenv pointing into the ESP) is
         * followed once: the in-place write and a replacement both go to its target, the
         * file GRUB reads, not over the link.
         */
        char real[PATH_MAX];
        if (!realpath(path, real)) {
                if (errno != ENOENT)
                        return log_error_errno(errno, "%s %s: cannot resolve it", what, path);
                return bootenv_store_file(what, path, data, len, hook); /* created */
        }
        struct stat st;
        if (stat(real, &st) < 0)
                return log_error_errno(errno, "%s %s: cannot stat it", what, real);
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != len) {
                log_notice("%s %s: %lld bytes, not %zu: replaced whole, not written in place",
                           what, real, (long long) st.st_size, len);
                return bootenv_store_file(what, real, data, len, hook);
        }
        /*
         * What a writer before us left in the page cache (an agent killed between its
         * write and its fdatasync) made durable first: the uncached read below then sees
         * the medium, and "unchanged" means on the medium.
         */
        int r = bootenv_flush_file(real);
        if (r < 0)
                return log_error_errno(r, "%s %s: cannot flush what is cached of it", what, real);
        _cleanup_free_ uint8_t *old = malloc(len ? len : 1);
        if (!old)
                return -ENOMEM;
        r = bootenv_read_region(real, 0, len, old);
        if (r < 0) {
                /* a bad sector under the file: a new file, in fresh clusters */
                log_warning("%s %s: cannot read it (%s): replaced whole, not written in place",
                            what, real, strerror(-r));
                return bootenv_store_file(what, real, data, len, hook);
        }
        size_t sector = 0;
        r = bootenv_sector_changed(old, data, len, &sector);
        if (r == 0)
                return 0; /* the medium holds it already (flushed, then read uncached) */
        if (r > 1) {
                log_notice("%s %s: the change spans more than one %d-byte sector, which a power "
                           "cut could tear: replaced whole, not written in place",
                           what, real, BOOTENV_SECTOR);
                return bootenv_store_file(what, real, data, len, hook);
        }
        size_t off = sector * BOOTENV_SECTOR;
        size_t n = len - off < BOOTENV_SECTOR ? len - off : BOOTENV_SECTOR;
        r = write_file_region_hooked(real, off, (const uint8_t *) data + off, n, hook);
        if (r < 0)
                return log_error_errno(r, "%s %s: writing sector %zu in place failed", what, real,
                                       sector);
        return verify_stored(what, real, data, len);
}
