/*
 * Containerless sandboxes. The order follows crun and bubblewrap: clone into new
 * namespaces, let the agent attach the cgroup and write id maps, build the root from
 * binds, pivot_root, set limits, drop to the user, drop capabilities, close inherited
 * fds, no_new_privs, seccomp last, then exec the sandbox's init (orbit-sandbox-init, a
 * small static binary opened before pivot_root), which forks and execs the workload,
 * forwards signals, reaps orphans and reports the workload's exit status. Nothing of
 * the agent's memory, environment or descriptors stays inside the sandbox.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/seccomp.h>

#include "lib/log.h"
#include "lib/procfs.h"
#include "runtime/sandbox-init.h"
#include "runtime/sandbox-masks.h"
#include "runtime/sandbox.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* clone3's arguments, version 0 layout (64 bytes), to avoid linux/sched.h clashes. */
struct clone_args_v0 {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* Fixed descriptors of the sandbox's init: see sandbox-init.h. */
#define FD_ERROR SANDBOX_INIT_FD_ERROR
#define FD_STATUS SANDBOX_INIT_FD_STATUS
#define FD_KEEP_STATUS SANDBOX_INIT_FD_KEEP_STATUS
#define FD_KEEP_STDOUT SANDBOX_INIT_FD_KEEP_STDOUT
#define FD_KEEP_STDERR SANDBOX_INIT_FD_KEEP_STDERR
/* The init's executable, opened before pivot_root; close-on-exec. */
#define FD_INIT_EXE (SANDBOX_INIT_FD_LAST + 1)
#define SANDBOX_NOBODY 65534

_Static_assert(sizeof(struct sandbox_error) == sizeof(struct sandbox_init_report) &&
                       offsetof(struct sandbox_error, message) ==
                               offsetof(struct sandbox_init_report, message),
               "the init's start report and struct sandbox_error share one layout");

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

struct spawn_ctx {
        const struct sandbox_params *p;
        int sync_read;  /* the child reads a byte here once its ids are mapped, and a
                         * second once the agent has attached it to the workload's cgroup */
        int error_write;
        int status_write;
        int status_read;
        int init_fd;        /* O_PATH descriptor of the init binary */
        char **init_argv;   /* SANDBOX_INIT_COMM, then the workload's argv */
        int idmap_read; /* one message per bind: a mount fd from the agent, or none (-1 if unused) */
};

/* ---- errors from the child -------------------------------------------------------- */

static _Noreturn void child_fail(int fd, int error, const char *fmt, ...) _printf_(3, 4);
static _Noreturn void child_fail(int fd, int error, const char *fmt, ...) {
        struct sandbox_error e = {.error = error > 0 ? error : EIO};
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e.message, sizeof(e.message), fmt, ap);
        va_end(ap);
        /* One write of a small struct to a pipe is atomic. */
        ssize_t n = write(fd, &e, sizeof(e));
        (void) n;
        _exit(127);
}

#define FAIL(...) child_fail(c->error_write, errno, __VA_ARGS__)

/* ---- mounts ----------------------------------------------------------------------- */

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

struct mount_attr_v0 {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static int mkdir_p(const char *path, mode_t mode) {
        char buf[PATH_MAX];
        if (snprintf(buf, sizeof(buf), "%s", path) >= (int) sizeof(buf))
                return -ENAMETOOLONG;
        for (char *s = buf + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/*
 * Open the parent directory of target under root_fd, creating directories as needed,
 * without following any symlink: each component is opened O_NOFOLLOW relative to the
 * one before. A link a workload left in one of its writable binds can therefore never
 * send the agent's mkdir or mount outside the sandbox root. *last gets the last
 * component. Returns an fd or a negative errno (-ELOOP/-ENOTDIR for a planted link).
 */
static int open_parent_in_root(int root_fd, const char *target, char *last, size_t last_size) {
        char buf[PATH_MAX];
        if (snprintf(buf, sizeof(buf), "%s", target) >= (int) sizeof(buf))
                return -ENAMETOOLONG;
        int dir = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        if (dir < 0)
                return -errno;
        char *save = NULL, *comp = strtok_r(buf, "/", &save);
        while (comp) {
                char *next = strtok_r(NULL, "/", &save);
                if (!next) {
                        snprintf(last, last_size, "%s", comp);
                        return dir;
                }
                if (mkdirat(dir, comp, 0755) < 0 && errno != EEXIST) {
                        int r = -errno;
                        close(dir);
                        return r;
                }
                int sub = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int r = -errno;
                close(dir);
                if (sub < 0)
                        return r;
                dir = sub;
                comp = next;
        }
        close(dir);
        return -EINVAL; /* "/" itself: refused by the spec parser already */
}

/* Create the mount point (a directory or an empty file) in parent; O_PATH fd to it. */
static int make_mount_point(int parent, const char *name, bool directory) {
        if (directory) {
                if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
                        return -errno;
                int fd = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                return fd < 0 ? -errno : fd;
        }
        int fd = openat(parent, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST && errno != EISDIR)
                return -errno;
        if (fd >= 0)
                close(fd);
        fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode)) {
                close(fd);
                return -ELOOP;
        }
        return fd;
}

static void fd_path(int fd, char *buf, size_t size) {
        snprintf(buf, size, "/proc/self/fd/%d", fd);
}

/*
 * Make the mount at fd (and every mount below it) read-only if asked, nosuid and nodev.
 * mount_setattr with AT_RECURSIVE reaches submounts a plain remount would leave writable.
 */
static int restrict_mount(int fd, bool read_only) {
        struct mount_attr_v0 attr = {
                .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (read_only ? MOUNT_ATTR_RDONLY : 0),
        };
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) == 0)
                return 0;
        if (errno != ENOSYS)
                return -errno;
        /* Kernels before 5.12: the top mount only. */
        char p[64];
        fd_path(fd, p, sizeof(p));
        struct statvfs sv;
        unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
        if (statvfs(p, &sv) == 0) {
                if (sv.f_flag & ST_NOEXEC)
                        flags |= MS_NOEXEC;
                if (sv.f_flag & ST_NOATIME)
                        flags |= MS_NOATIME;
        }
        return mount(NULL, p, NULL, flags, NULL) < 0 ? -errno : 0;
}

/* The agent's word on the next bind: a detached mount of it (an fd), or -1: bind it plainly. */
static int receive_tree(struct spawn_ctx *c) {
        char byte;
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {0};
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                            .msg_controllen = sizeof(control.buf)};
        ssize_t n;
        do
                n = recvmsg(c->idmap_read, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n != 1)
                FAIL("receive the bind mounts from the agent");
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        if (byte != 'I' || !cm || cm->cmsg_type != SCM_RIGHTS)
                return -1;
        int fd;
        memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
        return fd;
}

static void mount_bind(struct spawn_ctx *c, const struct workload_mount *m, int root_fd) {
        int tree = -1;
        if (c->idmap_read >= 0)
                tree = receive_tree(c);
        struct stat st;
        /* A tree from the agent is used through its fd: the path may be one this process,
         * a user namespace's root, cannot reach (the agent's own 0700 state dir). */
        if (tree >= 0 ? fstat(tree, &st) < 0 : lstat(m->source, &st) < 0) {
                if (errno == ENOENT && m->optional)
                        return;
                FAIL("bind %s to %s: cannot use the source%s", m->source, m->target,
                     errno == EACCES && (c->p->spec->sandbox.namespaces & WORKLOAD_NS_USER)
                             ? " (with a user namespace, it must be reachable by the workload's user)"
                             : "");
        }
        char last[NAME_MAX + 1];
        int parent = open_parent_in_root(root_fd, m->target, last, sizeof(last));
        if (parent < 0) {
                errno = -parent;
                FAIL("bind %s to %s: cannot create the mount point (a symlink on the way?)", m->source,
                     m->target);
        }
        if (S_ISLNK(st.st_mode)) {
                /* Debian's /bin, /lib... are symlinks into /usr: keep them links. */
                char target[PATH_MAX];
                ssize_t n = readlink(m->source, target, sizeof(target) - 1);
                if (n < 0)
                        FAIL("bind %s: cannot read the symlink", m->source);
                target[n] = '\0';
                (void) unlinkat(parent, last, 0);
                if (symlinkat(target, parent, last) < 0)
                        FAIL("bind %s: cannot create the symlink %s -> %s", m->source, m->target, target);
                close(parent);
                return;
        }
        int mp = make_mount_point(parent, last, S_ISDIR(st.st_mode));
        if (mp < 0) {
                errno = -mp;
                FAIL("bind %s to %s: cannot create the mount point", m->source, m->target);
        }
        char p[64];
        fd_path(mp, p, sizeof(p));
        if (tree >= 0) {
                /* Made by the agent (an idmapping, or a path only host root reaches): attach it. */
                if (syscall(SYS_move_mount, tree, "", mp, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        FAIL("bind %s to %s (attach the mount the agent made)", m->source, m->target);
                close(tree);
        } else if (mount(m->source, p, NULL, MS_BIND | MS_REC, NULL) < 0)
                FAIL("bind %s to %s", m->source, m->target);
        close(mp);
        /* Open again: the path now leads to the new mount's root, not what it covers. */
        int fd = openat(parent, last, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                FAIL("bind %s to %s: cannot open the new mount", m->source, m->target);
        int r = restrict_mount(fd, m->kind == WORKLOAD_MOUNT_RO_BIND);
        if (r < 0) {
                errno = -r;
                FAIL("remount %s %s", m->target, m->kind == WORKLOAD_MOUNT_RO_BIND ? "read-only" : "nosuid,nodev");
        }
        close(fd);
        close(parent);
}

static void mount_tmpfs(struct spawn_ctx *c, const struct workload_mount *m, int root_fd) {
        char opts[64];
        bool sticky = streq(m->target, "/tmp") || streq(m->target, "/var/tmp");
        if (m->size > 0)
                snprintf(opts, sizeof(opts), "mode=%s,size=%llu", sticky ? "1777" : "0755",
                         (unsigned long long) m->size);
        else
                snprintf(opts, sizeof(opts), "mode=%s,size=64m", sticky ? "1777" : "0755");
        char last[NAME_MAX + 1];
        int parent = open_parent_in_root(root_fd, m->target, last, sizeof(last));
        int mp = parent >= 0 ? make_mount_point(parent, last, true) : parent;
        if (mp < 0) {
                errno = -mp;
                FAIL("tmpfs %s: cannot create the mount point (a symlink on the way?)", m->target);
        }
        char p[64];
        fd_path(mp, p, sizeof(p));
        if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                FAIL("tmpfs %s (%s)", m->target, opts);
        close(mp);
        close(parent);
}

/*
 * Hide what a process that is uid 0 (even with no capabilities) could use against the
 * host through /proc and /sys (sandbox-masks.c, crun's list and more): sysctls, sysrq,
 * irq and bus settings read-only; kcore, keys, timer lists... covered by /dev/null,
 * directories (acpi, asound, scsi, /sys/firmware) by an empty read-only tmpfs.
 */
static void mask_paths(struct spawn_ctx *c, const char *root) {
        char p[PATH_MAX + 64], real_root[PATH_MAX];
        if (!realpath(root, real_root))
                FAIL("resolve the sandbox root %s", root);
        for (size_t i = 0; i < sandbox_n_read_only_paths; i++) {
                snprintf(p, sizeof(p), "%s%s", root, sandbox_read_only_paths[i]);
                if (access(p, F_OK) < 0)
                        continue;
                if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
                        FAIL("bind %s read-only", sandbox_read_only_paths[i]);
                int fd = open(p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                int r = fd < 0 ? -errno : restrict_mount(fd, true);
                if (fd >= 0)
                        close(fd);
                if (r < 0) {
                        errno = -r;
                        FAIL("make %s read-only", sandbox_read_only_paths[i]);
                }
        }
        for (size_t i = 0; i < sandbox_n_masked_paths; i++) {
                struct stat st;
                char real[PATH_MAX], want[PATH_MAX + 64];
                snprintf(p, sizeof(p), "%s%s", real_root, sandbox_masked_paths[i]);
                snprintf(want, sizeof(want), "%s", p);
                /* Not there, or reached through a link (a bind's, for /sys): nothing to hide.
                 * The /proc paths are in the proc mount we just made: no link on the way. */
                bool ours = strncmp(sandbox_masked_paths[i], "/proc/", 6) == 0;
                if (lstat(p, &st) < 0 || S_ISLNK(st.st_mode) || (!ours && (!realpath(p, real) || !streq(real, want))))
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                  "mode=0555,size=4k") < 0)
                                FAIL("hide %s", sandbox_masked_paths[i]);
                } else if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0)
                        FAIL("hide %s", sandbox_masked_paths[i]);
        }
}

static void setup_dev(struct spawn_ctx *c, const char *root) {
        static const char *const devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
        char dev[PATH_MAX], p[PATH_MAX + 64], host[64];
        snprintf(dev, sizeof(dev), "%s/dev", root);
        if (mkdir_p(dev, 0755) < 0)
                FAIL("create /dev");
        /* nodev: only the nodes bound in below (mounts of their own) can be opened. */
        if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
                FAIL("mount tmpfs on /dev");
        for (size_t i = 0; i < ELEMENTSOF(devices); i++) {
                snprintf(p, sizeof(p), "%s/%s", dev, devices[i]);
                snprintf(host, sizeof(host), "/dev/%s", devices[i]);
                int fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0 || close(fd) < 0 || mount(host, p, NULL, MS_BIND, NULL) < 0)
                        FAIL("bind %s into the sandbox", host);
        }
        snprintf(p, sizeof(p), "%s/shm", dev);
        if (mkdir(p, 01777) < 0 || mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m") < 0)
                FAIL("mount /dev/shm");
        static const char *const links[][2] = {
                {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
        };
        for (size_t i = 0; i < ELEMENTSOF(links); i++) {
                snprintf(p, sizeof(p), "%s/%s", dev, links[i][0]);
                if (symlink(links[i][1], p) < 0)
                        FAIL("create /dev/%s", links[i][0]);
        }
        /* Then read-only: nothing new can appear in /dev (its shm stays writable). */
        if (mount(NULL, dev, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                FAIL("remount /dev read-only");
}

static void setup_root(struct spawn_ctx *c) {
        const struct workload_spec *s = c->p->spec;
        const char *root = c->p->root_dir;

        /* Nothing we mount may propagate back to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                FAIL("make the mount tree private");
        if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
                FAIL("mount the sandbox root on %s%s", root,
                     errno == EACCES && (s->sandbox.namespaces & WORKLOAD_NS_USER)
                             ? " (with a user namespace, paths must be reachable by the workload's user)"
                             : "");
        int root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                FAIL("open the sandbox root %s", root);

        for (size_t i = 0; i < s->sandbox.n_mounts; i++) {
                const struct workload_mount *m = &s->sandbox.mounts[i];
                if (m->kind == WORKLOAD_MOUNT_TMPFS)
                        mount_tmpfs(c, m, root_fd);
                else
                        mount_bind(c, m, root_fd);
        }

        /* /proc and /dev are made by us in the fresh root tmpfs: no workload path on the way. */
        if (mkdirat(root_fd, "proc", 0555) < 0 && errno != EEXIST)
                FAIL("create /proc");
        char proc[PATH_MAX];
        snprintf(proc, sizeof(proc), "%s/proc", root);
        if (s->sandbox.namespaces & WORKLOAD_NS_PID) {
                if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                        FAIL("mount /proc for the pid namespace");
        } else if (mount("/proc", proc, NULL, MS_BIND | MS_REC, NULL) < 0)
                FAIL("bind /proc");
        mask_paths(c, root);
        setup_dev(c, root);
        close(root_fd);

        /* pivot_root(".", ".") then detach the old root: no path back to the host tree. */
        if (chdir(root) < 0)
                FAIL("chdir %s", root);
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                FAIL("pivot_root into %s", root);
        if (umount2(".", MNT_DETACH) < 0)
                FAIL("detach the host root");
        if (chdir("/") < 0)
                FAIL("chdir /");
        if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
                FAIL("remount the sandbox root read-only");
}

static void loopback_up(struct spawn_ctx *c) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                FAIL("socket for the loopback interface");
        struct ifreq ifr = {0};
        strcpy(ifr.ifr_name, "lo");
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                FAIL("read the loopback interface flags");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                FAIL("bring the loopback interface up");
        close(fd);
}

/* ---- credentials and capabilities ------------------------------------------------- */

/* Capabilities are numbered below 64 (two 32-bit words); the kernel's last one is lower:
 * a drop past it is EINVAL, cheaper than reading /proc/sys/kernel/cap_last_cap (~2 ms in
 * a new network namespace). */
#define CAP_NUMBER_MAX 63

static void drop_privileges(struct spawn_ctx *c) {
        const struct workload_spec *s = c->p->spec;
        uint64_t keep = s->sandbox.capabilities;
        /* With a user namespace these are ids inside it (the agent mapped a whole slice). */
        uid_t uid = c->p->uid;
        gid_t gid = c->p->gid;

        /* The bounding set first, while we still hold CAP_SETPCAP. */
        for (int cap = 0; cap <= CAP_NUMBER_MAX; cap++)
                if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                        FAIL("drop capability %d from the bounding set", cap);

        if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                FAIL("keep capabilities across the user change");
        if (setgroups(0, NULL) < 0)
                FAIL("drop supplementary groups");
        if (setresgid(gid, gid, gid) < 0)
                FAIL("set group id %u", (unsigned) gid);
        if (setresuid(uid, uid, uid) < 0)
                FAIL("set user id %u", (unsigned) uid);

        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[2] = {{0}};
        data[0].effective = data[0].permitted = data[0].inheritable = (uint32_t) keep;
        data[1].effective = data[1].permitted = data[1].inheritable = (uint32_t) (keep >> 32);
        if (syscall(SYS_capset, &hdr, data) < 0)
                FAIL("set capabilities");
        /* Ambient capabilities carry the kept ones across exec for a non-root user. */
        for (int cap = 0; cap <= CAP_NUMBER_MAX; cap++)
                if ((keep & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
                        FAIL("raise ambient capability %d", cap);
}

/* ---- the sandbox's processes ------------------------------------------------------ */

/* The spec's resource limits, for the workload and its probe alike. */
static void apply_limits(struct spawn_ctx *c) {
        const struct workload_spec *s = c->p->spec;
        for (size_t i = 0; i < s->sandbox.n_rlimits; i++) {
                struct rlimit rl = {.rlim_cur = s->sandbox.rlimits[i].soft, .rlim_max = s->sandbox.rlimits[i].hard};
                if (setrlimit(s->sandbox.rlimits[i].resource, &rl) < 0)
                        FAIL("set resource limit %d to %llu/%llu", s->sandbox.rlimits[i].resource,
                             (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
        }
        if (s->sandbox.umask >= 0)
                umask((mode_t) s->sandbox.umask);
}

/*
 * no_new_privs and the seccomp filter, the last step before exec: whatever runs in the
 * sandbox (its init, the workload, a probe) runs under both. The filter must therefore
 * allow what the init needs (docs/seccomp.md).
 */
static void confine(struct spawn_ctx *c) {
        const struct workload_spec *s = c->p->spec;
        if ((s->sandbox.no_new_privs || c->p->seccomp) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                FAIL("set no_new_privs");
        if (c->p->seccomp && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, c->p->seccomp, 0, 0) < 0)
                FAIL("install the seccomp filter");
}

/* Exec the init from the descriptor opened on the host: the sandbox root need not hold it. */
static _Noreturn void exec_init(struct spawn_ctx *c) {
        char *const *env = c->p->spec->env;
        syscall(SYS_execveat, FD_INIT_EXE, "", c->init_argv, env, AT_EMPTY_PATH);
        /* Kernels before 3.19, or a policy without execveat: through /proc (an ELF binary
         * runs fine from a close-on-exec descriptor). */
        int saved = errno;
        char path[64];
        fd_path(FD_INIT_EXE, path, sizeof(path));
        execve(path, c->init_argv, env);
        if (errno == ENOENT)
                errno = saved;
        FAIL("exec the sandbox init %s", c->p->init_path ? c->p->init_path : SANDBOX_INIT_PATH);
}

static _Noreturn void child_main(struct spawn_ctx *c) {
        const struct workload_spec *s = c->p->spec;
        char byte;

        /* Wait for the agent: id maps written. EOF means give up. */
        if (read(c->sync_read, &byte, 1) != 1)
                _exit(127);

        /* In a user namespace our ids are unmapped until we take the mapped root. */
        if (s->sandbox.namespaces & WORKLOAD_NS_USER) {
                if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                        FAIL("become root of the user namespace");
                if (setgroups(0, NULL) < 0)
                        FAIL("drop supplementary groups");
        }

        if (s->sandbox.namespaces & WORKLOAD_NS_MOUNT)
                setup_root(c);
        if (s->sandbox.namespaces & WORKLOAD_NS_UTS) {
                const char *h = s->sandbox.hostname ? s->sandbox.hostname : s->name;
                if (sethostname(h, strlen(h)) < 0)
                        FAIL("set host name %s", h);
        }
        if (s->sandbox.namespaces & WORKLOAD_NS_NET)
                loopback_up(c);
        apply_limits(c);
        /* The agent attached the cgroup meanwhile (v1 writes wait for RCU grace periods:
         * done in parallel with the mounts above, they cost the start nothing). Nothing
         * of the workload has run yet. The cgroup namespace is rooted where we are now:
         * only after the attach. */
        if (read(c->sync_read, &byte, 1) != 1)
                _exit(127);
        close(c->sync_read);
        if ((s->sandbox.namespaces & WORKLOAD_NS_CGROUP) && unshare(CLONE_NEWCGROUP) < 0)
                FAIL("enter a new cgroup namespace");
        drop_privileges(c);
        if (chdir(s->cwd ? s->cwd : "/") < 0)
                FAIL("chdir %s", s->cwd ? s->cwd : "/");

        /* Standard streams, the init's descriptors at fixed numbers, then none. */
        int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
                FAIL("open /dev/null");
        int out = c->p->stdout_fd >= 0 ? c->p->stdout_fd : null_fd;
        int err = c->p->stderr_fd >= 0 ? c->p->stderr_fd : null_fd;
        /* Move the pipes above the fixed numbers first, so dup2 never clobbers one. */
        int ew = fcntl(c->error_write, F_DUPFD_CLOEXEC, 10);
        int sw = fcntl(c->status_write, F_DUPFD_CLOEXEC, 10);
        int sr = fcntl(c->status_read, F_DUPFD_CLOEXEC, 10);
        int o = fcntl(out, F_DUPFD_CLOEXEC, 10);
        int e = fcntl(err, F_DUPFD_CLOEXEC, 10);
        int ko = fcntl(c->p->stdout_read_fd >= 0 ? c->p->stdout_read_fd : null_fd, F_DUPFD_CLOEXEC, 10);
        int ke = fcntl(c->p->stderr_read_fd >= 0 ? c->p->stderr_read_fd : null_fd, F_DUPFD_CLOEXEC, 10);
        int ie = fcntl(c->init_fd, F_DUPFD_CLOEXEC, 10);
        if (ew < 0 || sw < 0 || sr < 0 || o < 0 || e < 0 || ko < 0 || ke < 0 || ie < 0)
                FAIL("arrange descriptors");
        c->error_write = ew;
        /* 3-7 survive the exec (the init marks them close-on-exec at once); the init's
         * executable does not. */
        if (dup2(null_fd, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || dup2(ew, FD_ERROR) < 0 ||
            dup2(sw, FD_STATUS) < 0 || dup2(sr, FD_KEEP_STATUS) < 0 || dup2(ko, FD_KEEP_STDOUT) < 0 ||
            dup2(ke, FD_KEEP_STDERR) < 0 || dup3(ie, FD_INIT_EXE, O_CLOEXEC) < 0)
                FAIL("arrange descriptors");
        c->error_write = FD_ERROR;
        /* Everything else the agent had open (sockets, the state lock...) is closed. */
        if (syscall(SYS_close_range, FD_INIT_EXE + 1, ~0U, 0) < 0)
                FAIL("close inherited descriptors");

        confine(c);
        exec_init(c);
}

/* ---- the agent's side ------------------------------------------------------------- */

int sandbox_resolve_ids(const struct workload_spec *spec, uid_t *ret_uid, gid_t *ret_gid,
                        char *msg, size_t msg_size) {
        uid_t uid = 0;
        gid_t gid = 0;
        char buf[16384];
        if (spec->user) {
                char *end;
                unsigned long v = strtoul(spec->user, &end, 10);
                struct passwd pw, *res = NULL;
                if (*spec->user && !*end) {
                        uid = (uid_t) v;
                        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
                                gid = pw.pw_gid;
                        else
                                gid = (gid_t) v;
                } else {
                        int r = getpwnam_r(spec->user, &pw, buf, sizeof(buf), &res);
                        if (r != 0 || !res) {
                                snprintf(msg, msg_size, "user \"%s\" does not exist on this node", spec->user);
                                return -ESRCH;
                        }
                        uid = pw.pw_uid;
                        gid = pw.pw_gid;
                }
        }
        if (spec->group) {
                char *end;
                unsigned long v = strtoul(spec->group, &end, 10);
                if (*spec->group && !*end)
                        gid = (gid_t) v;
                else {
                        struct group gr, *res = NULL;
                        int r = getgrnam_r(spec->group, &gr, buf, sizeof(buf), &res);
                        if (r != 0 || !res) {
                                snprintf(msg, msg_size, "group \"%s\" does not exist on this node", spec->group);
                                return -ESRCH;
                        }
                        gid = gr.gr_gid;
                }
        }
        *ret_uid = uid;
        *ret_gid = gid;
        return 0;
}

static int write_id_map(pid_t pid, const char *file, uint32_t outside, uint32_t count) {
        char path[64], line[64];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        int n = snprintf(line, sizeof(line), "0 %u %u\n", outside, count);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = write(fd, line, (size_t) n) == n ? 0 : -errno;
        close(fd);
        return r;
}

/*
 * clone3 with CLONE_PIDFD; where clone3 is missing (kernels before 5.3, valgrind) the
 * classic clone, fork-like with no new stack, then pidfd_open on the child, which stays
 * ours (a zombie at worst) until we reap it, so the pid cannot be reused in between.
 */
static pid_t clone_with_pidfd(struct clone_args_v0 *args, int *pidfd) {
        pid_t pid = (pid_t) syscall(SYS_clone3, args, sizeof(*args));
        if (pid >= 0 || errno != ENOSYS)
                return pid;
        unsigned long flags = (unsigned long) (args->flags & ~(uint64_t) CLONE_PIDFD) | SIGCHLD;
        pid = (pid_t) syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
        if (pid <= 0)
                return pid;
        *pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (*pidfd < 0) {
                int saved = errno;
                kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                errno = saved;
                return -1;
        }
        return pid;
}

static unsigned clone_flags(unsigned ns) {
        unsigned f = 0;
        if (ns & WORKLOAD_NS_PID)
                f |= CLONE_NEWPID;
        if (ns & WORKLOAD_NS_MOUNT)
                f |= CLONE_NEWNS;
        if (ns & WORKLOAD_NS_IPC)
                f |= CLONE_NEWIPC;
        if (ns & WORKLOAD_NS_UTS)
                f |= CLONE_NEWUTS;
        if (ns & WORKLOAD_NS_NET)
                f |= CLONE_NEWNET;
        if (ns & WORKLOAD_NS_USER)
                f |= CLONE_NEWUSER;
        /* The cgroup namespace is entered after the agent attached the cgroup. */
        return f;
}

static void set_error(struct sandbox_error *err, int error, const char *fmt, ...) _printf_(3, 4);
static void set_error(struct sandbox_error *err, int error, const char *fmt, ...) {
        if (!err)
                return;
        err->error = error;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
}

/* A detached copy of the tree at source, as it is (no idmapping): for a path only host root reaches. */
static int plain_tree(const char *source) {
        int fd = (int) syscall(SYS_open_tree, AT_FDCWD, source,
                               OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

/* A detached copy of the tree at source whose ids go through the user namespace at userns_fd. */
static int idmapped_tree(const char *source, int userns_fd) {
        int fd = plain_tree(source);
        if (fd < 0)
                return fd;
        struct mount_attr_v0 attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t) userns_fd};
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static bool dir_is_empty(int dir_fd) {
        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return false;
        }
        bool empty = true;
        struct dirent *de;
        while (empty && (de = readdir(d)))
                empty = streq(de->d_name, ".") || streq(de->d_name, "..");
        closedir(d);
        return empty;
}

/*
 * The agent hands this bind over as a tree it opened: the app's tree, or a path in
 * params->handed. Returns the resolved path to open (free it), or NULL: the child binds it.
 */
static char *bind_handed(const struct sandbox_params *p, const struct workload_mount *m) {
        if (!m->source)
                return NULL;
        char *real = realpath(m->source, NULL);
        if (!real)
                return NULL;
        if (m->app)
                return real;
        for (const char *const *h = p->handed; h && *h; h++)
                if (workload_path_is_under(real, *h))
                        return real;
        free(real);
        return NULL;
}

/*
 * One message per bind of a workload with a user namespace, in the order the child mounts
 * them: a detached mount fd ('I') the child attaches, or none ('P'): it binds the path.
 *
 * Read-only binds: the app's tree and paths in params->handed (the agent's models dir)
 * live in the agent's state dir, which stays 0700: the agent opens them as host root and
 * hands the tree over. Any other path is bound by the child, and must be reachable by the
 * workload's user: a spec cannot reach through a host directory closed to it.
 *
 * The ownership rule for rw binds (docs/workload-spec.md):
 *  - a directory already owned by one of the workload's host ids: a plain bind; what the
 *    workload writes there is owned by its own host ids, kept across restarts;
 *  - an empty directory owned by host root (made for this workload): given to the
 *    workload's user (its host ids), then a plain bind;
 *  - anything else (host data): an idmapped mount through the workload's user namespace
 *    where the kernel and the filesystem have them, so host ids 0..count-1 show as the
 *    workload's own; else a plain bind, where the workload is "nobody" to those files.
 */
static int send_binds(const struct sandbox_params *p, pid_t pid, int sock, struct sandbox_error *err) {
        const struct workload_spec *s = p->spec;
        if (sock < 0)
                return 0;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
        int userns_fd = -1;
        for (size_t i = 0; i < s->sandbox.n_mounts; i++) {
                const struct workload_mount *m = &s->sandbox.mounts[i];
                if (m->kind == WORKLOAD_MOUNT_TMPFS)
                        continue;
                int tree = -1;
                if (m->kind == WORKLOAD_MOUNT_RW_BIND) {
                        int dir = open(m->source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        struct stat st;
                        if (dir >= 0 && fstat(dir, &st) == 0) {
                                bool own = st.st_uid >= p->host_id_base &&
                                           st.st_uid - p->host_id_base < p->host_id_count;
                                if (!own && st.st_uid == 0 && dir_is_empty(dir)) {
                                        if (fchown(dir, p->host_id_base + p->uid, p->host_id_base + p->gid) < 0)
                                                log_warning_errno(errno, "sandbox: cannot give %s to host uid %u",
                                                                  m->source, p->host_id_base + p->uid);
                                        else
                                                own = true;
                                }
                                if (!own) {
                                        if (userns_fd < 0)
                                                userns_fd = open(path, O_RDONLY | O_CLOEXEC);
                                        tree = userns_fd >= 0 ? idmapped_tree(m->source, userns_fd) : -errno;
                                        if (tree < 0)
                                                log_info("sandbox: %s: no idmapped mount (%s); a plain bind, where "
                                                         "the workload owns nothing", m->source, strerror(-tree));
                                }
                        }
                        if (dir >= 0)
                                close(dir);
                }
                struct stat st;
                /* A symlink stays the child's: it copies the link, never mounts it. */
                _cleanup_free_ char *handed = NULL;
                if (tree < 0 && m->source && lstat(m->source, &st) == 0 && !S_ISLNK(st.st_mode) && (handed = bind_handed(p, m))) {
                        tree = plain_tree(handed);
                        if (tree < 0)
                                log_warning_errno(-tree, "sandbox: cannot open the tree of %s for the workload",
                                                  handed);
                }
                char byte = tree >= 0 ? 'I' : 'P';
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int))];
                } control = {0};
                struct iovec iov = {.iov_base = &byte, .iov_len = 1};
                struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                if (tree >= 0) {
                        mh.msg_control = control.buf;
                        mh.msg_controllen = sizeof(control.buf);
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(cm), &tree, sizeof(int));
                }
                ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
                int saved = errno;
                if (tree >= 0)
                        close(tree);
                if (n != 1) {
                        if (userns_fd >= 0)
                                close(userns_fd);
                        set_error(err, saved, "pass the mount of %s to the sandbox", m->source);
                        return -saved;
                }
        }
        if (userns_fd >= 0)
                close(userns_fd);
        return 0;
}

/*
 * One sync byte to the child. A child that failed while building its root (in parallel
 * with the cgroup attach) has written its report and exited: its report, not "Broken
 * pipe", says what went wrong.
 */
static int release_child(int sync_fd, int error_fd, struct sandbox_error *err) {
        if (send(sync_fd, "x", 1, MSG_NOSIGNAL) == 1)
                return 0;
        int r = -errno;
        struct sandbox_error child_err;
        struct pollfd pfd = {.fd = error_fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) == 1 && read(error_fd, &child_err, sizeof(child_err)) == (ssize_t) sizeof(child_err)) {
                child_err.message[sizeof(child_err.message) - 1] = '\0';
                if (err)
                        *err = child_err;
                return child_err.error > 0 ? -child_err.error : -EIO;
        }
        set_error(err, -r, "release the sandbox");
        return r;
}

int sandbox_spawn(const struct sandbox_params *p, struct sandbox_process *ret,
                  struct sandbox_error *err) {
        const struct workload_spec *s = p->spec;
        int sync_pipe[2] = {-1, -1}, error_pipe[2] = {-1, -1}, status_pipe[2] = {-1, -1};
        _cleanup_close_ int init_fd = -1;
        int idmap_pair[2] = {-1, -1};
        int pidfd = -1, r;

        if ((s->sandbox.namespaces & WORKLOAD_NS_MOUNT) && !p->root_dir) {
                set_error(err, EINVAL, "no directory to build the sandbox root in");
                return -EINVAL;
        }
        /* The init's argv, built here: the child only makes syscalls. */
        size_t n_args = 0;
        while (s->exec[n_args])
                n_args++;
        _cleanup_free_ char **init_argv = calloc(n_args + 2, sizeof(char *));
        if (!init_argv) {
                set_error(err, ENOMEM, "allocate the init's arguments");
                return -ENOMEM;
        }
        init_argv[0] = (char *) SANDBOX_INIT_COMM;
        memcpy(init_argv + 1, s->exec, n_args * sizeof(char *));

        const char *init_path = p->init_path ? p->init_path : SANDBOX_INIT_PATH;
        init_fd = open(init_path, O_PATH | O_CLOEXEC);
        if (init_fd < 0) {
                r = -errno;
                set_error(err, -r, "open the sandbox init %s (runtime.sandbox_init)", init_path);
                return r;
        }
        bool userns = s->sandbox.namespaces & WORKLOAD_NS_USER;
        if (userns && (p->host_id_count == 0 || p->uid >= p->host_id_count || p->gid >= p->host_id_count ||
                       (uint64_t) p->host_id_base + p->host_id_count > UINT32_MAX || p->host_id_base == 0)) {
                set_error(err, EINVAL, "user %u, group %u: not inside the workload's %u host ids from %u",
                          (unsigned) p->uid, (unsigned) p->gid, p->host_id_count, p->host_id_base);
                return -EINVAL;
        }
        if (userns && (s->sandbox.namespaces & WORKLOAD_NS_MOUNT) &&
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, idmap_pair) < 0) {
                r = -errno;
                set_error(err, -r, "create a socket pair");
                return r;
        }
        /* The sync channel a socket pair: send(MSG_NOSIGNAL) to a child already gone is
         * EPIPE, never a SIGPIPE in a caller that does not ignore it. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_pipe) < 0 ||
            pipe2(error_pipe, O_CLOEXEC) < 0 ||
            pipe2(status_pipe, O_CLOEXEC) < 0) {
                r = -errno;
                set_error(err, -r, "create pipes");
                goto fail;
        }

        struct spawn_ctx c = {
                .p = p,
                .sync_read = sync_pipe[0],
                .error_write = error_pipe[1],
                .status_write = status_pipe[1],
                .status_read = status_pipe[0],
                .init_fd = init_fd,
                .init_argv = init_argv,
                .idmap_read = idmap_pair[1],
        };
        struct clone_args_v0 args = {
                .flags = clone_flags(s->sandbox.namespaces) | CLONE_PIDFD,
                .pidfd = (uint64_t) (uintptr_t) &pidfd,
                .exit_signal = SIGCHLD,
        };
        pid_t pid = clone_with_pidfd(&args, &pidfd);
        if (pid < 0) {
                r = -errno;
                set_error(err, -r, "create the sandbox (clone with namespaces 0x%llx)",
                          (unsigned long long) args.flags);
                goto fail;
        }
        if (pid == 0) {
                close(sync_pipe[1]);
                close(error_pipe[0]);
                if (idmap_pair[0] >= 0)
                        close(idmap_pair[0]);
                child_main(&c);
        }
        if (idmap_pair[1] >= 0)
                close(idmap_pair[1]);
        idmap_pair[1] = -1;

        close(sync_pipe[0]);
        close(error_pipe[1]);
        close(status_pipe[1]);
        sync_pipe[0] = error_pipe[1] = status_pipe[1] = -1;

        if (s->sandbox.namespaces & WORKLOAD_NS_USER) {
                /* Inside ids 0..count-1 are the workload's own host slice, never host root. */
                if ((r = write_id_map(pid, "uid_map", p->host_id_base, p->host_id_count)) < 0 ||
                    (r = write_id_map(pid, "gid_map", p->host_id_base, p->host_id_count)) < 0) {
                        set_error(err, -r, "write the user namespace id maps of pid %d (host ids %u-%u)",
                                  (int) pid, p->host_id_base, p->host_id_base + p->host_id_count - 1);
                        goto fail_kill;
                }
                if ((r = send_binds(p, pid, idmap_pair[0], err)) < 0)
                        goto fail_kill;
        }
        /* The ids are there: the child builds its root while we attach the cgroup. */
        if ((r = release_child(sync_pipe[1], error_pipe[0], err)) < 0)
                goto fail_kill;
        if (p->prestart && (r = p->prestart(pid, p->prestart_userdata)) < 0) {
                set_error(err, -r, "prepare the sandbox of pid %d (cgroup)", (int) pid);
                goto fail_kill;
        }
        if ((r = release_child(sync_pipe[1], error_pipe[0], err)) < 0)
                goto fail_kill;
        close(sync_pipe[1]);
        sync_pipe[1] = -1;

        /* EOF: the workload exec'd. A struct: what failed. Bounded, never hangs the loop. */
        struct sandbox_error child_err;
        struct pollfd pfd = {.fd = error_pipe[0], .events = POLLIN};
        int pr;
        do
                pr = poll(&pfd, 1, 10000);
        while (pr < 0 && errno == EINTR);
        if (pr == 0) {
                r = -ETIMEDOUT;
                set_error(err, ETIMEDOUT, "the sandbox did not start within 10 s");
                goto fail_kill;
        }
        ssize_t n;
        do
                n = read(error_pipe[0], &child_err, sizeof(child_err));
        while (n < 0 && errno == EINTR);
        if (n != 0 && n != (ssize_t) sizeof(child_err)) {
                /* Neither a clean EOF (exec done) nor a whole report: do not call it started. */
                r = n < 0 ? -errno : -EIO;
                set_error(err, -r, "read the sandbox's start report");
                goto fail_kill;
        }
        if (n == (ssize_t) sizeof(child_err)) {
                child_err.message[sizeof(child_err.message) - 1] = '\0';
                if (err)
                        *err = child_err;
                r = -child_err.error;
                (void) waitpid(pid, NULL, 0);
                goto fail;
        }
        close(error_pipe[0]);
        error_pipe[0] = -1;
        if (idmap_pair[0] >= 0)
                close(idmap_pair[0]);

        /* Never block the loop on it: a status comes at once or not at all. */
        (void) fcntl(status_pipe[0], F_SETFL, O_NONBLOCK);
        ret->pid = pid;
        ret->pidfd = pidfd;
        ret->status_fd = status_pipe[0];
        return 0;

fail_kill:
        kill(pid, SIGKILL);
        /* Bounded: a child in a frozen cgroup does not die until the group thaws, and the
         * loop must not wait for that (the runtime kills the group's leftovers, thawing it,
         * before the next start). Not reaped then: a zombie until the agent exits. */
        {
                struct pollfd dead = {.fd = pidfd, .events = POLLIN};
                int q;
                do
                        q = pidfd >= 0 ? poll(&dead, 1, 2000) : 0;
                while (q < 0 && errno == EINTR);
                if (pidfd < 0 || q > 0)
                        (void) waitpid(pid, NULL, pidfd < 0 ? 0 : WNOHANG);
                else
                        log_warning("sandbox: pid %d did not die within 2 s of SIGKILL (a frozen cgroup?); "
                                    "left to be reaped later", (int) pid);
        }
fail:
        for (int i = 0; i < 2; i++) {
                if (sync_pipe[i] >= 0)
                        close(sync_pipe[i]);
                if (error_pipe[i] >= 0)
                        close(error_pipe[i]);
                if (status_pipe[i] >= 0)
                        close(status_pipe[i]);
                if (idmap_pair[i] >= 0)
                        close(idmap_pair[i]);
        }
        if (pidfd >= 0)
                close(pidfd);
        return r;
}

/*
 * The probe's helper: a fork of the agent that enters the sandbox's namespaces, then
 * forks into its pid namespace. It holds the agent's memory, so first of all it is made
 * non-dumpable (nothing in the sandbox may ptrace it or read its /proc files), drops the
 * agent's supplementary groups (still the host's: a user namespace cannot drop them
 * later) and closes every agent descriptor. The probe itself then gets exactly the
 * workload's confinement: limits, user, capabilities, no_new_privs, seccomp, cgroup
 * (prestart attached the helper), the spec's environment and /dev/null as 0-2.
 */
static _Noreturn void probe_main(struct spawn_ctx *c, int target_pidfd, unsigned ns_flags,
                                 char *const argv[]) {
        const struct workload_spec *s = c->p->spec;
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                FAIL("make the probe's helper non-dumpable");
        /* Wait until the agent attached us to the workload's cgroup: the probe, forked
         * below, must start there. EOF means give up. */
        char byte;
        if (read(c->sync_read, &byte, 1) != 1)
                _exit(127);
        int ew = fcntl(c->error_write, F_DUPFD_CLOEXEC, 10);
        int tp = fcntl(target_pidfd, F_DUPFD_CLOEXEC, 10);
        if (ew < 0 || tp < 0 || dup3(ew, FD_ERROR, O_CLOEXEC) < 0 || dup3(tp, FD_ERROR + 1, O_CLOEXEC) < 0)
                FAIL("arrange descriptors");
        c->error_write = FD_ERROR;
        target_pidfd = FD_ERROR + 1;
        if (syscall(SYS_close_range, FD_ERROR + 2, ~0U, 0) < 0)
                FAIL("close inherited descriptors");
        if (setgroups(0, NULL) < 0)
                FAIL("drop supplementary groups");
        if (setns(target_pidfd, (int) ns_flags) < 0)
                FAIL("enter the namespaces of the workload");
        close(target_pidfd);
        pid_t child = fork(); /* only children join the pid namespace */
        if (child < 0)
                FAIL("fork the probe");
        if (child == 0) {
                apply_limits(c);
                drop_privileges(c);
                if (chdir(s->cwd ? s->cwd : "/") < 0 && chdir("/") < 0)
                        FAIL("chdir");
                int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0)
                        FAIL("arrange descriptors");
                if (syscall(SYS_close_range, FD_ERROR + 1, ~0U, 0) < 0)
                        FAIL("close inherited descriptors");
                confine(c);
                execve(argv[0], argv, s->env);
                FAIL("exec probe %s", argv[0]);
        }
        close(c->error_write);
        int st;
        while (waitpid(child, &st, 0) < 0)
                if (errno != EINTR)
                        _exit(127);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int sandbox_exec_in(const struct sandbox_process *target, const struct sandbox_params *params,
                    char *const argv[], pid_t *ret_pid, int *ret_pidfd, struct sandbox_error *err) {
        const struct workload_spec *s = params->spec;
        unsigned ns = 0;
        if (s->sandbox.namespaces & WORKLOAD_NS_USER)
                ns |= CLONE_NEWUSER;
        if (s->sandbox.namespaces & WORKLOAD_NS_MOUNT)
                ns |= CLONE_NEWNS;
        if (s->sandbox.namespaces & WORKLOAD_NS_PID)
                ns |= CLONE_NEWPID;
        if (s->sandbox.namespaces & WORKLOAD_NS_NET)
                ns |= CLONE_NEWNET;
        if (s->sandbox.namespaces & WORKLOAD_NS_IPC)
                ns |= CLONE_NEWIPC;
        if (s->sandbox.namespaces & WORKLOAD_NS_UTS)
                ns |= CLONE_NEWUTS;
        if (s->sandbox.namespaces & WORKLOAD_NS_CGROUP)
                ns |= CLONE_NEWCGROUP;

        int error_pipe[2], sync_pipe[2], pidfd = -1, r;
        if (pipe2(error_pipe, O_CLOEXEC) < 0) {
                set_error(err, errno, "create pipes");
                return -errno;
        }
        if (pipe2(sync_pipe, O_CLOEXEC) < 0) {
                r = -errno;
                close(error_pipe[0]);
                close(error_pipe[1]);
                set_error(err, -r, "create pipes");
                return r;
        }
        struct spawn_ctx c = {.p = params, .sync_read = sync_pipe[0], .error_write = error_pipe[1], .status_write = -1, .status_read = -1, .idmap_read = -1};
        struct clone_args_v0 args = {.flags = CLONE_PIDFD, .pidfd = (uint64_t) (uintptr_t) &pidfd, .exit_signal = SIGCHLD};
        pid_t pid = clone_with_pidfd(&args, &pidfd);
        if (pid < 0) {
                r = -errno;
                set_error(err, -r, "fork the probe");
                close(error_pipe[0]);
                close(error_pipe[1]);
                close(sync_pipe[0]);
                close(sync_pipe[1]);
                return r;
        }
        if (pid == 0) {
                close(error_pipe[0]);
                close(sync_pipe[1]);
                probe_main(&c, target->pidfd, ns, argv);
        }
        close(error_pipe[1]);
        close(sync_pipe[0]);
        /* Attach before it forks the probe: the probe counts against the workload's limits
         * and is subject to its device cgroup. */
        if ((params->prestart && (r = params->prestart(pid, params->prestart_userdata)) < 0) ||
            (r = write(sync_pipe[1], "x", 1) == 1 ? 0 : -EIO) < 0) {
                close(sync_pipe[1]);
                kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                close(error_pipe[0]);
                close(pidfd);
                set_error(err, -r, "attach the probe to the workload's cgroup");
                return r;
        }
        close(sync_pipe[1]);
        struct sandbox_error child_err;
        struct pollfd pfd = {.fd = error_pipe[0], .events = POLLIN};
        int pr;
        do
                pr = poll(&pfd, 1, 5000);
        while (pr < 0 && errno == EINTR);
        ssize_t n = pr > 0 ? read(error_pipe[0], &child_err, sizeof(child_err)) : -1;
        close(error_pipe[0]);
        if (n == (ssize_t) sizeof(child_err) || pr == 0) {
                kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                close(pidfd);
                if (pr == 0) {
                        set_error(err, ETIMEDOUT, "the probe did not start within 5 s");
                        return -ETIMEDOUT;
                }
                child_err.message[sizeof(child_err.message) - 1] = '\0';
                if (err)
                        *err = child_err;
                return -child_err.error;
        }
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        return 0;
}

int sandbox_collect_status(struct sandbox_process *p, int init_status) {
        int st = init_status;
        if (p->status_fd >= 0) {
                int reported;
                if (read(p->status_fd, &reported, sizeof(reported)) == (ssize_t) sizeof(reported))
                        st = reported;
                close(p->status_fd);
                p->status_fd = -1;
        }
        return st;
}

/* The last NSpid of pid: its pid in its own pid namespace; -1 if unknown. */
static long own_ns_pid(pid_t pid) {
        char who[24];
        long pids[32];
        snprintf(who, sizeof(who), "%d", (int) pid);
        int n = procfs_nspid(who, pids, ELEMENTSOF(pids));
        return n > 0 && (size_t) n <= ELEMENTSOF(pids) ? pids[n - 1] : -1;
}

int sandbox_adopt(pid_t pid, bool own_pid_namespace, struct sandbox_process *ret,
                  int *ret_stdout_read, int *ret_stderr_read) {
        /* The name alone can be forged by any workload process (PR_SET_NAME); the init of
         * a sandbox with a pid namespace is pid 1 there, which nothing else can be. */
        if (own_pid_namespace && own_ns_pid(pid) != 1)
                return -ESRCH;
        char path[64], comm[32] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -ESRCH;
        if (!fgets(comm, sizeof(comm), f))
                comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        if (!streq(comm, SANDBOX_INIT_COMM))
                return -ESRCH;

        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -errno;
        int fds[3] = {-1, -1, -1};
        const int wanted[3] = {FD_KEEP_STATUS, FD_KEEP_STDOUT, FD_KEEP_STDERR};
        for (int i = 0; i < 3; i++) {
                fds[i] = (int) syscall(SYS_pidfd_getfd, pidfd, wanted[i], 0);
                if (fds[i] < 0) {
                        int r = -errno;
                        for (int k = 0; k < i; k++)
                                close(fds[k]);
                        close(pidfd);
                        return r;
                }
                (void) fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        }
        (void) fcntl(fds[0], F_SETFL, O_NONBLOCK);
        ret->pid = pid;
        ret->pidfd = pidfd;
        ret->status_fd = fds[0];
        if (ret_stdout_read)
                *ret_stdout_read = fds[1];
        else
                close(fds[1]);
        if (ret_stderr_read)
                *ret_stderr_read = fds[2];
        else
                close(fds[2]);
        return 0;
}

void sandbox_process_close(struct sandbox_process *p) {
        if (p->pidfd >= 0)
                close(p->pidfd);
        if (p->status_fd >= 0)
                close(p->status_fd);
        p->pidfd = p->status_fd = -1;
}
