/* File I/O that does not lose data: full reads and writes, durable replacement. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/macro.h"

int write_all(int fd, const void *buf, size_t len) {
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int read_file_bounded(const char *path, size_t max_size, char **ret_data, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();

        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max_size)
                return -EFBIG;

        /* Read until EOF rather than trusting st_size: the file may change under us. */
        size_t cap = (size_t) st.st_size + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len + 1 >= cap) {
                        if (cap > max_size)
                                return -EFBIG;
                        size_t ncap = cap * 2 > max_size + 1 ? max_size + 1 : cap * 2;
                        if (ncap <= cap)
                                ncap = cap + 1;
                        char *nbuf = realloc(buf, ncap);
                        if (!nbuf)
                                return -ENOMEM;
                        buf = nbuf;
                        cap = ncap;
                }
                ssize_t n = read(fd, buf + len, cap - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max_size)
                        return -EFBIG;
        }
        buf[len] = '\0';
        *ret_data = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int fsync_parent_dir(const char *path) {
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == path)
                strcpy(dir, "/");
        else {
                size_t n = (size_t) (slash - path);
                if (n >= sizeof(dir))
                        return -ENAMETOOLONG;
                memcpy(dir, path, n);
                dir[n] = '\0';
        }
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

const char *durable_step_to_string(enum durable_step step) {
        switch (step) {
        case DURABLE_WRITTEN:
                return "written";
        case DURABLE_RENAMED:
                return "renamed";
        case DURABLE_OVERWRITTEN:
                return "overwritten";
        case DURABLE_SYNCED:
                return "synced";
        case DURABLE_ERASED:
                return "erased";
        }
        return "?";
}

/*
 * Tests only: ORBIT_FAILPOINT_WRITE_STALL_AT=PATTERN:STEP with ORBIT_FAILPOINT_WRITE_STALL_FILE=F
 * in the environment holds every durable write of a file whose path matches the shell
 * PATTERN (fnmatch without flags: '*' matches '/' too) at STEP, while F exists. A kill -9
 * there is a crash exactly between two steps of that write, where a test wants it, not
 * where a sleep happened to end. Read once, at the first write. The hold may be on the
 * event loop: the tests that use it run the agent without systemd's watchdog. Said on
 * stderr, not with lib/log.h: the tools that link this file without the journal's library
 * (orbitctl, orbit-bundle) would need it.
 */
static pthread_once_t write_stall_once = PTHREAD_ONCE_INIT;
static char write_stall_pattern[PATH_MAX], write_stall_step[16], write_stall_file[PATH_MAX];

static void write_stall_parse(void) {
        const char *at = getenv("ORBIT_FAILPOINT_WRITE_STALL_AT");
        const char *file = getenv("ORBIT_FAILPOINT_WRITE_STALL_FILE");
        if (!at || !*at || !file || !*file)
                return;
        const char *colon = strrchr(at, ':'); /* the pattern may hold one */
        if (!colon || colon == at || !colon[1] || strlen(colon + 1) >= sizeof(write_stall_step) ||
            (size_t) (colon - at) >= sizeof(write_stall_pattern) ||
            strlen(file) >= sizeof(write_stall_file)) {
                fprintf(stderr, "ORBIT_FAILPOINT_WRITE_STALL_AT=%s: not PATTERN:STEP; ignored\n",
                        at);
                return;
        }
        memcpy(write_stall_pattern, at, (size_t) (colon - at));
        write_stall_pattern[colon - at] = '\0';
        snprintf(write_stall_step, sizeof(write_stall_step), "%s", colon + 1);
        snprintf(write_stall_file, sizeof(write_stall_file), "%s", file);
}

void durable_failpoint(const char *path, const char *step) {
        (void) pthread_once(&write_stall_once, write_stall_parse);
        if (!write_stall_pattern[0] || strcmp(step, write_stall_step) != 0 ||
            fnmatch(write_stall_pattern, path, 0) != 0 || access(write_stall_file, F_OK) < 0)
                return;
        fprintf(stderr, "failpoint: the write of %s held %s, while %s exists\n", path, step,
                write_stall_file);
        const struct timespec step_time = {.tv_nsec = 50 * 1000 * 1000};
        while (access(write_stall_file, F_OK) == 0)
                (void) nanosleep(&step_time, NULL);
        fprintf(stderr, "failpoint: the write of %s goes on\n", path);
}

void durable_hook_call(const struct durable_hook *hook, const char *path, enum durable_step step) {
        if (hook && hook->fn)
                hook->fn(path, step, hook->userdata);
        durable_failpoint(path, durable_step_to_string(step));
}

int write_file_durable(const char *path, const void *data, size_t len, mode_t mode) {
        return write_file_durable_hooked(path, data, len, mode, NULL);
}

int write_file_durable_hooked(const char *path, const void *data, size_t len, mode_t mode,
                              const struct durable_hook *hook) {
        char tmp[PATH_MAX];
        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;

        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();

        int r = write_all(fd, data, len);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0)
                durable_hook_call(hook, path, DURABLE_WRITTEN);
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        durable_hook_call(hook, path, DURABLE_RENAMED);
        /*
         * The file once more, after the rename. On FAT (a grubenv on the EFI system
         * partition) a file's directory entry is its inode: renaming over a file moves the
         * new inode into the old entry, which is written with the inode, not with the
         * directory; the directory's fsync below writes the FAT, where the old file's
         * clusters are now free. Without this fsync a power cut left the entry pointing at
         * a freed cluster: an unreadable grubenv, so GRUB booted the factory slot
         * (scripts/board.sh test-rollout, docs/board.md). On ext4 nothing is left to write.
         */
        if (fsync(fd) < 0)
                return negative_errno();
        int cfd = TAKE_FD(fd);
        if (close(cfd) < 0)
                return negative_errno();
        r = fsync_parent_dir(path);
        if (r >= 0)
                durable_hook_call(hook, path, DURABLE_SYNCED);
        return r;
}

int write_file_region_hooked(const char *path, uint64_t offset, const void *data, size_t len,
                             const struct durable_hook *hook) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        durable_hook_call(hook, path, DURABLE_WRITTEN);
        int r = pwrite_all(fd, data, len, offset);
        if (r < 0)
                return r;
        durable_hook_call(hook, path, DURABLE_OVERWRITTEN);
        if (fdatasync(fd) < 0)
                return negative_errno();
        int cfd = TAKE_FD(fd);
        if (close(cfd) < 0)
                return negative_errno();
        durable_hook_call(hook, path, DURABLE_SYNCED);
        return 0;
}

/* The whole disk behind a block device number: its sysfs directory, with a partition's
 * parent taken for the partition. */
static int whole_disk(dev_t dev, const char *sysfs_root, char buf[static PATH_MAX]) {
        char link[PATH_MAX], part[PATH_MAX + 16];
        if (snprintf(link, sizeof(link), "%s/dev/block/%u:%u", sysfs_root, major(dev), minor(dev)) >=
            (int) sizeof(link))
                return -ENAMETOOLONG;
        if (!realpath(link, buf))
                return negative_errno();
        snprintf(part, sizeof(part), "%s/partition", buf);
        if (access(part, F_OK) == 0) {
                char *slash = strrchr(buf, '/');
                if (!slash || slash == buf)
                        return -EINVAL;
                *slash = '\0';
        }
        return 0;
}

bool same_disk(int fd, const char *path, const char *sysfs_root) {
        struct stat a, b;
        if (fstat(fd, &a) < 0 || stat(path, &b) < 0)
                return false;
        dev_t da = S_ISBLK(a.st_mode) ? a.st_rdev : a.st_dev;
        if (!S_ISBLK(a.st_mode) && da == b.st_dev)
                return true; /* one filesystem: one flush, whatever lies under it */
        char pa[PATH_MAX], pb[PATH_MAX];
        if (major(da) == 0 || major(b.st_dev) == 0) /* tmpfs, overlay, btrfs subvolumes...: no disk to name */
                return false;
        if (whole_disk(da, sysfs_root, pa) < 0 || whole_disk(b.st_dev, sysfs_root, pb) < 0)
                return false;
        return streq(pa, pb);
}

int mkdir_parents(const char *path, mode_t mode) {
        char buf[PATH_MAX];
        if (snprintf(buf, sizeof(buf), "%s", path) >= (int) sizeof(buf))
                return -ENAMETOOLONG;
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return negative_errno();
        struct stat st;
        if (stat(buf, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        return 0;
}

int pread_all(int fd, void *buf, size_t len, uint64_t offset) {
        size_t done = 0;
        while (done < len) {
                ssize_t n = pread(fd, (uint8_t *) buf + done, len - done, (off_t) (offset + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -ENODATA;
                done += (size_t) n;
        }
        return 0;
}

int pwrite_all(int fd, const void *buf, size_t len, uint64_t offset) {
        size_t done = 0;
        while (done < len) {
                ssize_t n = pwrite(fd, (const uint8_t *) buf + done, len - done,
                                   (off_t) (offset + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                done += (size_t) n;
        }
        return 0;
}

#define RM_TREE_DEPTH_MAX 512

static int rm_tree_inner(int parent, const char *name, unsigned depth) {
        if (unlinkat(parent, name, 0) >= 0)
                return 0;
        if (errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return negative_errno();
        if (depth >= RM_TREE_DEPTH_MAX)
                return -ELOOP;
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        int r = 0;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno)
                                r = negative_errno();
                        break;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                r = rm_tree_inner(dirfd(d), de->d_name, depth + 1);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0)
                return r;
        if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return negative_errno();
        return 0;
}

int rm_tree_at(int dirfd, const char *name) {
        return rm_tree_inner(dirfd, name, 0);
}

int read_kernel_boot_id(const char *procfs_root, char *buf, size_t size) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/sys/kernel/random/boot_id", procfs_root) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        _cleanup_free_ char *id = NULL;
        size_t n;
        int r = read_file_bounded(path, 128, &id, &n); /* 36 characters and a newline */
        if (r < 0)
                return r;
        size_t len = strcspn(id, "\n");
        if (len < 8 || len >= size)
                return -EBADMSG;
        memcpy(buf, id, len);
        buf[len] = '\0';
        return 0;
}
