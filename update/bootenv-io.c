/* File helpers shared by the bootloader backends: uncached reads for read-back checks. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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

int bootenv_store_file(const char *what, const char *path, const void *data, size_t len,
                       const struct durable_hook *hook) {
        int r = write_file_durable_hooked(path, data, len, 0644, hook);
        if (r < 0)
                return log_error_errno(r, "%s %s: write failed", what, path);
        r = bootenv_verify_file(path, data, len);
        if (r == -EIO)
                return log_error_errno(r, "%s %s: read back differs from what was written",
                                       what, path);
        if (r < 0)
                return log_error_errno(r, "%s %s: reading back failed", what, path);
        return 0;
}
