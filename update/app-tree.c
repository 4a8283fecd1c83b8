/* App slots (#19): unpack the tar payload of an "app:<name>" image into a tree. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/macro.h"
#include "lib/message.h"
#include "update/app-tree.h"

#define APP_TREE_NAME_MAX 1024

const char *app_tree_name_problem(const char *name) {
        if (!name || !*name)
                return "an empty name";
        if (strlen(name) > APP_TREE_NAME_MAX)
                return "a name longer than 1024 bytes";
        if (name[0] == '/')
                return "an absolute name";
        const char *p = name;
        if (p[0] == '.' && p[1] == '/')
                p += 2;
        if (!*p)
                return "the tree's own root";
        unsigned depth = 0;
        while (*p) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);
                if (len == 0)
                        return "an empty path component";
                if (len == 1 && p[0] == '.')
                        return "a \".\" component";
                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return "a \"..\" component: a path that leaves the tree";
                if (++depth > APP_TREE_MAX_DEPTH)
                        return "more than 64 levels";
                if (!slash)
                        break;
                p = slash + 1; /* a trailing '/' ends the loop here: a directory */
        }
        return NULL;
}

static const char *type_name(mode_t type) {
        switch (type) {
        case AE_IFCHR: return "a character device";
        case AE_IFBLK: return "a block device";
        case AE_IFIFO: return "a fifo";
        case AE_IFSOCK: return "a socket";
        default: return "an unknown kind of file";
        }
}

static int archive_problem(struct archive *a, const char *entry, char **ret_reason, const char *what) {
        int e = archive_errno(a);
        const char *msg = archive_error_string(a);
        if (entry)
                return message_set(ret_reason, e > 0 ? -e : -EBADMSG, "entry '%s': %s: %s", entry, what,
                                   msg ? msg : "failed");
        return message_set(ret_reason, e > 0 ? -e : -EBADMSG, "%s: %s", what, msg ? msg : "failed");
}

static int join(char *buf, size_t size, const char *dir, const char *name) {
        if (name[0] == '.' && name[1] == '/')
                name += 2;
        int n = snprintf(buf, size, "%s/%s", dir, name);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* Every directory of the tree 0755, never through a link; takes fd. */
static int dirs_0755(int fd, unsigned depth) {
        if (fchmod(fd, 0755) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        if (depth > APP_TREE_MAX_DEPTH) {
                close(fd);
                return -ELOOP;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        int r = 0;
        struct dirent *de;
        while ((errno = 0, de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
                    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
                        continue;
                int c = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (c < 0) {
                        if (errno == ENOTDIR || errno == ELOOP)
                                continue;
                        r = negative_errno();
                        break;
                }
                if ((r = dirs_0755(c, depth + 1)) < 0)
                        break;
        }
        if (r >= 0 && errno != 0)
                r = negative_errno();
        closedir(d);
        return r;
}

int app_tree_extract(int image_fd, const char *dest_dir, struct app_tree_stats *ret_stats,
                     char **ret_reason) {
        struct app_tree_stats st = {0};
        struct stat img;
        if (fstat(image_fd, &img) < 0)
                return message_set(ret_reason, negative_errno(), "cannot stat the image: %m");
        if (lseek(image_fd, 0, SEEK_SET) < 0)
                return message_set(ret_reason, negative_errno(), "cannot seek the image: %m");
        /* Entries are given to libarchive as absolute paths under the tree (no chdir: the
         * agent has threads), and SECURE_SYMLINKS refuses a link anywhere on that path: the
         * tree's own path is resolved first, so a link above it (/var/run) does no harm. */
        char real[PATH_MAX];
        const char *base = strrchr(dest_dir, '/');
        if (!base || base == dest_dir || !base[1])
                return message_set(ret_reason, -EINVAL, "%s: not an absolute path below a directory", dest_dir);
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%.*s", (int) (base - dest_dir), dest_dir);
        if (!realpath(parent, real))
                return message_set(ret_reason, negative_errno(), "cannot resolve %s: %m", parent);
        char dest[PATH_MAX];
        if (snprintf(dest, sizeof(dest), "%s%s", real, base) >= (int) sizeof(dest))
                return message_set(ret_reason, -ENAMETOOLONG, "%s: name too long", dest_dir);
        dest_dir = dest;
        if (mkdir(dest_dir, 0755) < 0)
                return message_set(ret_reason, negative_errno(), "cannot create %s: %m", dest_dir);

        struct archive *in = archive_read_new();
        struct archive *out = archive_write_disk_new();
        struct archive_entry *e;
        int r = 0;
        if (!in || !out) {
                r = message_set(ret_reason, -ENOMEM, "out of memory");
                goto done;
        }
        /* A plain tar only: a compressed payload would defeat the chunk-by-chunk delta, and
         * without a decompressor no entry can claim more bytes than the image holds. */
        archive_read_support_format_tar(in);
        archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                    ARCHIVE_EXTRACT_NO_OVERWRITE | ARCHIVE_EXTRACT_PERM |
                                                    ARCHIVE_EXTRACT_TIME);
        if (archive_read_open_fd(in, image_fd, 64 * 1024) != ARCHIVE_OK) {
                r = archive_problem(in, NULL, ret_reason, "not an uncompressed tar");
                goto done;
        }
        for (;;) {
                int h = archive_read_next_header(in, &e);
                if (h == ARCHIVE_EOF)
                        break;
                if (h != ARCHIVE_OK) {
                        r = archive_problem(in, NULL, ret_reason,
                                            st.entries ? "a damaged tar header" : "not an uncompressed tar");
                        goto done;
                }
                const char *name = archive_entry_pathname(e);
                char shown[128];
                snprintf(shown, sizeof(shown), "%s", name ? name : "");
                if (++st.entries > APP_TREE_MAX_ENTRIES) {
                        r = message_set(ret_reason, -E2BIG, "more than %d entries", APP_TREE_MAX_ENTRIES);
                        goto done;
                }
                /* "./", what tar -C dir . writes first: the tree itself, made above */
                if (name && (streq(name, ".") || streq(name, "./")) && archive_entry_filetype(e) == AE_IFDIR &&
                    !archive_entry_hardlink(e)) {
                        st.dirs++;
                        continue;
                }
                const char *problem = app_tree_name_problem(name);
                if (problem) {
                        r = message_set(ret_reason, -EPERM, "entry '%s': %s", shown, problem);
                        goto done;
                }
                const char *hardlink = archive_entry_hardlink(e);
                mode_t type = archive_entry_filetype(e);
                mode_t perm = archive_entry_perm(e);
                if (hardlink) {
                        problem = app_tree_name_problem(hardlink);
                        if (problem) {
                                r = message_set(ret_reason, -EPERM, "entry '%s': a hard link to '%.128s': %s",
                                                shown, hardlink, problem);
                                goto done;
                        }
                        char target[PATH_MAX];
                        if (join(target, sizeof(target), dest_dir, hardlink) < 0) {
                                r = message_set(ret_reason, -ENAMETOOLONG, "entry '%s': name too long", shown);
                                goto done;
                        }
                        struct stat t;
                        if (lstat(target, &t) < 0 || !S_ISREG(t.st_mode)) {
                                r = message_set(ret_reason, -EPERM,
                                                "entry '%s': a hard link to '%.128s', which is not a file "
                                                "unpacked before it", shown, hardlink);
                                goto done;
                        }
                        /* pax lets a hard link carry a body: libarchive would then truncate
                         * the file linked to and apply the entry's mode (setuid) to it */
                        if (archive_entry_size_is_set(e) && archive_entry_size(e) != 0) {
                                r = message_set(ret_reason, -EPERM, "entry '%s': a hard link to '%.128s' "
                                                "with data of its own", shown, hardlink);
                                goto done;
                        }
                        perm = t.st_mode & 07777; /* the file's, already normalized */
                        archive_entry_set_hardlink(e, target);
                        st.links++;
                } else if (type == AE_IFDIR) {
                        perm = 0755;
                        st.dirs++;
                } else if (type == AE_IFREG) {
                        perm = (perm & 0111) ? 0755 : 0644;
                        st.files++;
                } else if (type == AE_IFLNK) {
                        st.links++;
                } else {
                        r = message_set(ret_reason, -EPERM, "entry '%s': %s: an app holds directories, "
                                        "files and links only", shown, type_name(type));
                        goto done;
                }
                if (archive_entry_sparse_count(e) > 0) {
                        r = message_set(ret_reason, -EPERM, "entry '%s': a sparse file", shown);
                        goto done;
                }
                if (type == AE_IFREG && !hardlink) {
                        int64_t size = archive_entry_size(e);
                        if (size < 0 || st.bytes + (uint64_t) size > (uint64_t) img.st_size) {
                                r = message_set(ret_reason, -EFBIG, "entry '%s': claims more bytes than "
                                                "the image holds", shown);
                                goto done;
                        }
                }
                char path[PATH_MAX];
                if (join(path, sizeof(path), dest_dir, name) < 0) {
                        r = message_set(ret_reason, -ENAMETOOLONG, "entry '%s': name too long", shown);
                        goto done;
                }
                archive_entry_set_pathname(e, path);
                if (type != AE_IFLNK)
                        archive_entry_set_perm(e, perm);
                archive_entry_set_uid(e, 0);
                archive_entry_set_gid(e, 0);
                archive_entry_xattr_clear(e);
                archive_entry_acl_clear(e);
                archive_entry_set_fflags(e, 0, 0);
                if (archive_write_header(out, e) != ARCHIVE_OK) {
                        r = archive_problem(out, shown, ret_reason, "cannot unpack");
                        goto done;
                }
                if (type == AE_IFREG && !hardlink) {
                        const void *buf;
                        size_t len;
                        la_int64_t off;
                        for (;;) {
                                int b = archive_read_data_block(in, &buf, &len, &off);
                                if (b == ARCHIVE_EOF)
                                        break;
                                if (b != ARCHIVE_OK) {
                                        r = archive_problem(in, shown, ret_reason, "cannot read");
                                        goto done;
                                }
                                if (archive_write_data_block(out, buf, len, off) != ARCHIVE_OK) {
                                        r = archive_problem(out, shown, ret_reason, "cannot write");
                                        goto done;
                                }
                                st.bytes += len;
                        }
                }
                if (archive_write_finish_entry(out) != ARCHIVE_OK) {
                        r = archive_problem(out, shown, ret_reason, "cannot finish");
                        goto done;
                }
        }
        if (archive_write_close(out) != ARCHIVE_OK) {
                r = archive_problem(out, NULL, ret_reason, "cannot finish the tree");
                goto done;
        }
        /* Directories the tar names only as parents were made with the agent's umask,
         * and an entry for one that exists already leaves its mode alone. */
        int top = open(dest_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (top < 0) {
                r = message_set(ret_reason, negative_errno(), "cannot open %s: %m", dest_dir);
                goto done;
        }
        r = dirs_0755(top, 0);
        if (r < 0) {
                r = message_set(ret_reason, r, "cannot set the modes of the directories in %s: %s", dest_dir,
                                strerror(-r));
                goto done;
        }
        /* The tree is on disk before the slot can be switched to it. */
        int fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syncfs(fd) < 0) {
                r = message_set(ret_reason, negative_errno(), "cannot sync %s: %m", dest_dir);
                if (fd >= 0)
                        close(fd);
                goto done;
        }
        close(fd);
done:
        if (in)
                archive_read_free(in);
        if (out)
                archive_write_free(out);
        if (ret_stats)
                *ret_stats = st;
        return r;
}
