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
