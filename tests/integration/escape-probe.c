/*
 * The hostile tenant: run inside a workload, it tries what issue 14 found worked and
 * prints one line per attempt, "HELD <attack>: <detail>" when the sandbox stopped it and
 * "ESCAPED <attack>: <detail>" when it did not. test-sandbox-escape.sh reads the lines.
 * Each attack is a subcommand; none of them needs more than libc.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static int escaped;

static void held(const char *attack, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void held(const char *attack, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        printf("HELD %s: ", attack);
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        fflush(stdout);
}

static void escape(const char *attack, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void escape(const char *attack, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        printf("ESCAPED %s: ", attack);
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        fflush(stdout);
        escaped++;
}

/* Print the lines of a /proc status file that tell confinement, as "INFO key value". */
static void print_status(const char *who, const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) {
                printf("INFO %s unreadable: %s\n", who, strerror(errno));
                return;
        }
        char line[512];
        static const char *const keys[] = {"Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:", "CapBnd:",
                                           "CapAmb:", "NoNewPrivs:", "Seccomp:"};
        while (fgets(line, sizeof(line), f))
                for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
                        if (strncmp(line, keys[i], strlen(keys[i])) == 0) {
                                line[strcspn(line, "\n")] = '\0';
                                char *v = line + strlen(keys[i]);
                                v += strspn(v, " \t");
                                printf("INFO %s %.*s %s\n", who, (int) strlen(keys[i]) - 1, keys[i], v);
                        }
        fclose(f);
        fflush(stdout);
}

/* ---- pid 1: the sandbox's init -------------------------------------------------------- */

static int attack_pid1(void) {
        print_status("pid1", "/proc/1/status");

        int fd = open("/proc/1/mem", O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                escape("pid1-mem-write", "opened /proc/1/mem read-write");
                close(fd);
        } else
                held("pid1-mem-write", "open /proc/1/mem O_RDWR: %s", strerror(errno));

        fd = open("/proc/1/mem", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                char buf[64];
                /* Any mapped page will do: the first line of /proc/1/maps would need read
                 * access too, so try the usual text bases. */
                ssize_t n = pread(fd, buf, sizeof(buf), 0x400000);
                escape("pid1-mem-read", "opened /proc/1/mem for reading (pread %zd)", n);
                close(fd);
        } else
                held("pid1-mem-read", "open /proc/1/mem: %s", strerror(errno));

        fd = open("/proc/1/environ", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                char buf[8192];
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n > 0) {
                        buf[n] = '\0';
                        for (ssize_t i = 0; i < n; i++)
                                if (buf[i] == '\0')
                                        buf[i] = ' ';
                        if (strstr(buf, "ORBIT_AGENT_SECRET"))
                                escape("pid1-environ", "the agent's environment: %.200s", buf);
                        else
                                held("pid1-environ", "readable but holds nothing of the agent's (%zd bytes)", n);
                } else
                        held("pid1-environ", "read: %s", n < 0 ? strerror(errno) : "empty");
        } else
                held("pid1-environ", "open /proc/1/environ: %s", strerror(errno));

        /* The numbers in /proc/1/fd may be listable (the directory belongs to root of the
         * user namespace); what matters is that none can be followed, read or written. */
        DIR *d = opendir("/proc/1/fd");
        if (d) {
                int count = 0, followed = 0;
                struct dirent *e;
                while ((e = readdir(d))) {
                        if (e->d_name[0] == '.')
                                continue;
                        count++;
                        char p[300], target[256];
                        snprintf(p, sizeof(p), "/proc/1/fd/%s", e->d_name);
                        ssize_t n = readlink(p, target, sizeof(target) - 1);
                        int ffd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
                        if (n >= 0 || ffd >= 0) {
                                followed++;
                                target[n >= 0 ? n : 0] = '\0';
                                escape("pid1-fds", "followed pid 1's descriptor %s (%s)", e->d_name, target);
                        }
                        if (ffd >= 0)
                                close(ffd);
                }
                closedir(d);
                if (!followed)
                        held("pid1-fds", "none of the %d descriptors listed in /proc/1/fd can be followed", count);
        } else
                held("pid1-fds", "opendir /proc/1/fd: %s", strerror(errno));

        if (ptrace(PTRACE_ATTACH, 1, NULL, NULL) == 0) {
                escape("pid1-ptrace", "PTRACE_ATTACH to pid 1 succeeded");
                (void) ptrace(PTRACE_DETACH, 1, NULL, NULL);
        } else
                held("pid1-ptrace", "PTRACE_ATTACH: %s", strerror(errno));

        char probe[16];
        struct iovec local = {.iov_base = probe, .iov_len = sizeof(probe)};
        struct iovec remote = {.iov_base = (void *) 0x400000, .iov_len = sizeof(probe)};
        errno = 0;
        ssize_t n = process_vm_writev(1, &local, 1, &remote, 1, 0);
        if (n >= 0 || (errno != EPERM && errno != EACCES && errno != ENOSYS))
                escape("pid1-vm-write", "process_vm_writev reached pid 1 (%zd, %s)", n, strerror(errno));
        else
                held("pid1-vm-write", "process_vm_writev: %s", strerror(errno));
        return 0;
}

/* ---- a forged exit status: write "exited 0" to every descriptor of pid 1, exit 3 -------- */

static int attack_forge(void) {
        int opened = 0;
        for (int i = 0; i < 64; i++) {
                char p[64];
                snprintf(p, sizeof(p), "/proc/1/fd/%d", i);
                int fd = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0)
                        continue;
                int fake = 0; /* a wait status of "exited with code 0" */
                if (write(fd, &fake, sizeof(fake)) == (ssize_t) sizeof(fake))
                        opened++;
                close(fd);
        }
        if (opened)
                escape("forge-status", "wrote a fake status into %d of pid 1's descriptors", opened);
        else
                held("forge-status", "no descriptor of pid 1 could be written");
        fflush(stdout);
        return 3;
}

/* ---- the agent's control socket ------------------------------------------------------- */

static int attack_control(const char *path, const char *request) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                held("control", "socket: %s", strerror(errno));
                return 0;
        }
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                held("control", "connect %s: %s", path, strerror(errno));
                close(fd);
                return 0;
        }
        char req[4096];
        int len = snprintf(req, sizeof(req), "%s\n", request);
        if (write(fd, req, (size_t) len) != len) {
                held("control", "write: %s", strerror(errno));
                close(fd);
                return 0;
        }
        char buf[4096] = "";
        size_t got = 0;
        for (;;) {
                ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t) n;
                if (memchr(buf, '\n', got) || got == sizeof(buf) - 1)
                        break;
        }
        buf[got] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        close(fd);
        printf("INFO control answer %s\n", got ? buf : "(none: closed)");
        if (strstr(buf, "\"ok\":true") || strstr(buf, "\"ok\": true"))
                escape("control", "the agent served a workload: %.300s", buf);
        else
                held("control", "refused: %.300s", got ? buf : "closed without an answer");
        return 0;
}

/* ---- devices -------------------------------------------------------------------------- */

static int attack_devices(void) {
        static const struct {
                const char *path;
                unsigned major, minor;
        } nodes[] = {{"/dev/orbit-kmsg", 1, 11}, {"/tmp/orbit-kmsg", 1, 11}, {"/tmp/orbit-mem", 1, 1}};
        for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
                if (mknod(nodes[i].path, S_IFCHR | 0600, makedev(nodes[i].major, nodes[i].minor)) == 0) {
                        int fd = open(nodes[i].path, O_WRONLY | O_CLOEXEC);
                        if (fd >= 0) {
                                escape("mknod", "made and opened %s (%u:%u)", nodes[i].path, nodes[i].major,
                                       nodes[i].minor);
                                close(fd);
                        } else
                                escape("mknod", "made %s (open: %s)", nodes[i].path, strerror(errno));
                        unlink(nodes[i].path);
                } else
                        held("mknod", "mknod %s: %s", nodes[i].path, strerror(errno));
                if (syscall(SYS_mknodat, AT_FDCWD, nodes[i].path, S_IFCHR | 0600,
                            makedev(nodes[i].major, nodes[i].minor)) == 0) {
                        escape("mknodat", "made %s", nodes[i].path);
                        unlink(nodes[i].path);
                } else
                        held("mknodat", "mknodat %s: %s", nodes[i].path, strerror(errno));
        }
        /* Mount flags of / and /dev: nodev and noexec on /dev, every mount below / read-only
         * unless it is a writable bind or tmpfs the spec asked for. */
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[1024];
        while (f && fgets(line, sizeof(line), f)) {
                char mp[512], opts[256];
                if (sscanf(line, "%*s %*s %*s %*s %511s %255s", mp, opts) != 2)
                        continue;
                printf("INFO mount %s %s\n", mp, opts);
        }
        if (f)
                fclose(f);
        fflush(stdout);
        return 0;
}

/* ---- socket families ------------------------------------------------------------------- */

static int attack_sockets(void) {
        static const struct {
                const char *name;
                int family, type, protocol;
        } tries[] = {
                {"AF_VSOCK", AF_VSOCK, SOCK_STREAM, 0},
                {"AF_PACKET", AF_PACKET, SOCK_RAW, 0},
                {"AF_PACKET-dgram", AF_PACKET, SOCK_DGRAM, 0},
                {"AF_INET-raw", AF_INET, SOCK_RAW, 1 /* ICMP */},
                {"AF_INET6-raw", AF_INET6, SOCK_RAW, 58 /* ICMPv6 */},
                {"AF_BLUETOOTH", 31, SOCK_RAW, 0},
                {"AF_CAN", 29, SOCK_RAW, 1},
                {"AF_KEY", 15, SOCK_RAW, 2},
        };
        for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
                int fd = socket(tries[i].family, tries[i].type | SOCK_CLOEXEC, tries[i].protocol);
                if (fd >= 0) {
                        escape("socket", "%s opened", tries[i].name);
                        close(fd);
                } else
                        held("socket", "%s: %s", tries[i].name, strerror(errno));
        }
        /* The families a normal program needs still work. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        printf("INFO tcp socket %s\n", fd >= 0 ? "ok" : strerror(errno));
        if (fd >= 0)
                close(fd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        printf("INFO unix socket %s\n", fd >= 0 ? "ok" : strerror(errno));
        if (fd >= 0)
                close(fd);
        fflush(stdout);
        return 0;
}

/* ---- new namespaces, mounts, privileges ------------------------------------------------ */

static int attack_namespaces(void) {
        static const struct {
                const char *name;
                int flags;
        } tries[] = {{"CLONE_NEWUSER", CLONE_NEWUSER},
                     {"CLONE_NEWNS", CLONE_NEWNS},
                     {"CLONE_NEWNET", CLONE_NEWNET},
                     {"CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET}};
        for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
                pid_t pid = fork();
                if (pid == 0) {
                        /* In a child: a successful unshare must not change the prober. */
                        if (unshare(tries[i].flags) < 0)
                                _exit(errno & 0xff);
                        if (mount("tmpfs", "/tmp", "tmpfs", 0, NULL) == 0)
                                _exit(254);
                        _exit(0);
                }
                int st = 0;
                waitpid(pid, &st, 0);
                int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
                if (code == 0)
                        escape("unshare", "%s succeeded", tries[i].name);
                else if (code == 254)
                        escape("unshare", "%s succeeded and mounted a tmpfs", tries[i].name);
                else
                        held("unshare", "%s: %s", tries[i].name, code > 0 ? strerror(code) : "killed");
        }
        if (mount("tmpfs", "/tmp", "tmpfs", 0, NULL) == 0)
                escape("mount", "mounted a tmpfs on /tmp");
        else
                held("mount", "mount tmpfs: %s", strerror(errno));
        return 0;
}

/* ---- what the workload itself is ------------------------------------------------------ */

static void print_file(const char *label, const char *path) {
        FILE *f = fopen(path, "re");
        char line[512];
        if (!f) {
                printf("INFO %s unreadable: %s\n", label, strerror(errno));
                return;
        }
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = '\0';
                printf("INFO %s %s\n", label, line);
        }
        fclose(f);
}

static int attack_self(void) {
        print_status("self", "/proc/self/status");
        print_file("uid_map", "/proc/self/uid_map");
        print_file("gid_map", "/proc/self/gid_map");
        print_file("cgroup", "/proc/self/cgroup");
        mode_t old = umask(0);
        umask(old);
        printf("INFO umask %04o\n", (unsigned) old);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                printf("INFO nofile %llu %llu\n", (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
        /* Open descriptors beyond the standard three: nothing of the agent's. */
        DIR *d = opendir("/proc/self/fd");
        int extra = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
                if (e->d_name[0] != '.' && atoi(e->d_name) > 2 && atoi(e->d_name) != dirfd(d))
                        extra++;
        if (d)
                closedir(d);
        printf("INFO extra-fds %d\n", extra);
        extern char **environ;
        for (char **v = environ; *v; v++)
                if (strstr(*v, "ORBIT_AGENT_SECRET"))
                        escape("environ", "the workload inherited %s", *v);
        print_file("pid1-cmdline", "/proc/1/cmdline");
        fflush(stdout);
        return 0;
}

/* Paths crun masks: each must be empty or unreadable inside. */
static int attack_procmask(void) {
        static const char *const paths[] = {
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/proc/kpageflags", "/proc/kpagecount", "/proc/key-users", "/proc/kallsyms",
                "/sys/firmware",
        };
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                struct stat st;
                if (stat(paths[i], &st) < 0) {
                        held("procmask", "%s: %s", paths[i], strerror(errno));
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        DIR *d = opendir(paths[i]);
                        int n = 0;
                        struct dirent *e;
                        while (d && (e = readdir(d)))
                                if (e->d_name[0] != '.')
                                        n++;
                        if (d)
                                closedir(d);
                        if (n)
                                escape("procmask", "%s lists %d entries", paths[i], n);
                        else
                                held("procmask", "%s is empty", paths[i]);
                        continue;
                }
                int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        held("procmask", "%s: %s", paths[i], strerror(errno));
                        continue;
                }
                char buf[64];
                ssize_t n = read(fd, buf, sizeof(buf));
                close(fd);
                if (n > 0)
                        escape("procmask", "%s readable (%zd bytes)", paths[i], n);
                else
                        held("procmask", "%s reads empty", paths[i]);
        }
        return 0;
}

/* ---- limits: a fork bomb and a memory balloon ---------------------------------------- */

static int attack_forkbomb(long max) {
        long made = 0;
        int saved = 0;
        for (; made < max; made++) {
                pid_t pid = fork();
                if (pid < 0) {
                        saved = errno;
                        break;
                }
                if (pid == 0) {
                        pause();
                        _exit(0);
                }
        }
        printf("INFO forkbomb made %ld children (stopped by: %s)\n", made, saved ? strerror(saved) : "the cap");
        if (made >= max)
                escape("forkbomb", "%ld processes and no limit", made);
        else
                held("forkbomb", "fork failed after %ld children: %s", made, strerror(saved));
        fflush(stdout);
        signal(SIGTERM, SIG_IGN);
        kill(0, SIGTERM);
        while (wait(NULL) > 0)
                ;
        return 0;
}

static int attack_memory(long mib) {
        long touched = 0;
        for (; touched < mib; touched++) {
                char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        break;
                memset(p, 0x5a, 1 << 20);
                if (touched % 32 == 0) {
                        printf("INFO memory touched %ld MiB\n", touched);
                        fflush(stdout);
                }
        }
        if (touched >= mib)
                escape("memory", "touched %ld MiB with no limit", touched);
        else
                held("memory", "mmap failed after %ld MiB", touched);
        return 0;
}

/* ---- a neighbour: another workload's processes, environment and files ---------------- */

static int attack_neighbour(const char *marker) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        int seen = 0;
        while (d && (e = readdir(d))) {
                if (e->d_name[0] < '0' || e->d_name[0] > '9')
                        continue;
                char p[300], buf[8192];
                snprintf(p, sizeof(p), "/proc/%s/environ", e->d_name);
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                for (ssize_t i = 0; i < n; i++)
                        if (!buf[i])
                                buf[i] = ' ';
                if (strstr(buf, marker)) {
                        escape("neighbour", "pid %s holds %s", e->d_name, marker);
                        seen++;
                }
        }
        if (d)
                closedir(d);
        if (!seen)
                held("neighbour", "no process visible here holds %s", marker);
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: escape-probe pid1|forge|control SOCK REQ|devices|sockets|"
                                "namespaces|self|procmask|forkbomb N|memory MIB|neighbour MARKER|"
                                "all|sleep\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        const char *a = argv[1];
        int r = 0;
        if (!strcmp(a, "pid1"))
                r = attack_pid1();
        else if (!strcmp(a, "forge"))
                return attack_forge();
        else if (!strcmp(a, "control") && argc == 4)
                r = attack_control(argv[2], argv[3]);
        else if (!strcmp(a, "devices"))
                r = attack_devices();
        else if (!strcmp(a, "sockets"))
                r = attack_sockets();
        else if (!strcmp(a, "namespaces"))
                r = attack_namespaces();
        else if (!strcmp(a, "self"))
                r = attack_self();
        else if (!strcmp(a, "procmask"))
                r = attack_procmask();
        else if (!strcmp(a, "forkbomb") && argc == 3)
                r = attack_forkbomb(atol(argv[2]));
        else if (!strcmp(a, "memory") && argc == 3)
                r = attack_memory(atol(argv[2]));
        else if (!strcmp(a, "neighbour") && argc == 3)
                r = attack_neighbour(argv[2]);
        else if (!strcmp(a, "all")) {
                attack_self();
                attack_pid1();
                attack_devices();
                attack_sockets();
                attack_namespaces();
                attack_procmask();
        } else if (!strcmp(a, "sleep")) {
                for (;;)
                        pause();
        } else {
                fprintf(stderr, "escape-probe: unknown attack %s\n", a);
                return 2;
        }
        printf("DONE %s escaped=%d\n", a, escaped);
        return r;
}
