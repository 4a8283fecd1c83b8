/*
 * Test helper: run a program under a seccomp policy the way the sandbox does (compile in
 * the parent, install in the child right before execve), or probe syscalls from inside.
 *
 *   seccomp-helper POLICY -- PROG [ARGS...]   exit status is PROG's, or 128+signal
 *   seccomp-helper --probe CALL...            print "CALL: ok" or "CALL: EPERM" per call
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/seccomp-policy.h"

/* Each probe is a call that, without a filter, fails harmlessly with some other errno
 * (bad pointers, bad flags) or does nothing lasting, even as root. */
static long probe(const char *name) {
        if (streq(name, "mount"))
                return mount(NULL, NULL, NULL, 0, NULL); /* EFAULT */
        if (streq(name, "umount2"))
                return umount2((const char *) 1, 0); /* EFAULT */
        if (streq(name, "ptrace"))
                return syscall(SYS_ptrace, 0x7fff, -1, NULL, NULL); /* ESRCH */
        if (streq(name, "bpf"))
                return syscall(SYS_bpf, -1, NULL, 0); /* EINVAL */
        if (streq(name, "unshare"))
                return unshare(0x7fffffff); /* EINVAL: unknown flags */
        if (streq(name, "setns"))
                return setns(-1, 0); /* EBADF */
        if (streq(name, "keyctl"))
                return syscall(SYS_keyctl, -1, 0, 0, 0, 0); /* EOPNOTSUPP */
        if (streq(name, "kexec_load"))
                return syscall(SYS_kexec_load, 0, 0, NULL, 0xffff0000UL); /* EINVAL */
        if (streq(name, "init_module"))
                return syscall(SYS_init_module, NULL, 0, ""); /* EFAULT or ENOEXEC */
        if (streq(name, "perf_event_open"))
                return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); /* EFAULT */
        if (streq(name, "reboot"))
                return syscall(SYS_reboot, 0, 0, 0, NULL); /* EINVAL: bad magic */
        if (streq(name, "personality-aslr")) /* would turn off ASLR */
                return syscall(SYS_personality, (unsigned long) ADDR_NO_RANDOMIZE);
        if (streq(name, "personality-query"))
                return syscall(SYS_personality, 0xffffffffUL);
        if (streq(name, "clone-newuser")) /* EINVAL: NEWUSER with FS is invalid */
                return syscall(SYS_clone, (unsigned long) (CLONE_NEWUSER | CLONE_FS), NULL, NULL,
                               NULL, NULL);
        if (streq(name, "clone3"))
                return syscall(SYS_clone3, NULL, 0); /* EINVAL (or ENOSYS from the filter) */
        if (streq(name, "socket-inet") || streq(name, "socket-unix")) {
                int fd = socket(streq(name, "socket-inet") ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
                if (fd >= 0)
                        (void) close(fd);
                return fd;
        }
        if (streq(name, "socket-packet") || streq(name, "socket-vsock") || streq(name, "socket-raw") ||
            streq(name, "socket-netlink-route") || streq(name, "socket-netlink-audit")) {
                int fd = streq(name, "socket-packet")          ? socket(AF_PACKET, SOCK_RAW, 0)
                         : streq(name, "socket-vsock")         ? socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)
                         : streq(name, "socket-raw")           ? socket(AF_INET, SOCK_RAW, 1 /* ICMP */)
                         : streq(name, "socket-netlink-route") ? socket(AF_NETLINK, SOCK_RAW, 0)
                                                               : socket(AF_NETLINK, SOCK_RAW, 9 /* AUDIT */);
                if (fd >= 0)
                        (void) close(fd);
                return fd;
        }
        if (streq(name, "mknod-char")) /* /dev/null's numbers, in the working directory */
                return syscall(SYS_mknodat, AT_FDCWD, "orbit-probe-null", S_IFCHR | 0600, makedev(1, 3));
#if defined(__x86_64__)
        if (streq(name, "x32"))
                return syscall(0x40000000 | SYS_getpid); /* __X32_SYSCALL_BIT */
        if (streq(name, "i386")) {
                long ret;
                __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory"); /* getpid */
                return ret;
        }
#endif
        errno = EDOM;
        return -2;
}

static int run_probes(int argc, char **argv) {
        for (int i = 0; i < argc; i++) {
                errno = 0;
                long r = probe(argv[i]);
                if (r == -2 && errno == EDOM) {
                        fprintf(stderr, "seccomp-helper: unknown probe %s\n", argv[i]);
                        fflush(stdout);
                        _exit(2);
                }
                if (r < 0) {
                        const char *e = seccomp_errno_to_name(errno);
                        if (e)
                                printf("%s: %s\n", argv[i], e);
                        else
                                printf("%s: errno %d\n", argv[i], errno);
                } else
                        printf("%s: ok\n", argv[i]);
        }
        fflush(stdout);
        /* A raw exit_group: sanitizer runtimes hook exit and _exit and make calls there
         * (ptrace for LeakSanitizer, sigaltstack) that a policy may deny. */
        (void) syscall(SYS_exit_group, 0);
        _exit(0); /* not reached */
}

int main(int argc, char **argv) {
        log_setup("seccomp-helper", LOG_TARGET_STDERR);
        if (argc >= 2 && streq(argv[1], "--probe"))
                return run_probes(argc - 2, argv + 2);
        if (argc < 4 || !streq(argv[2], "--")) {
                fprintf(stderr, "usage: %s POLICY -- PROG [ARGS...]\n"
                                "       %s --probe CALL...\n",
                        argv[0], argv[0]);
                return 2;
        }

        struct seccomp_policy *policy = NULL;
        char *message = NULL;
        int r = seccomp_policy_resolve(argv[1], &policy, &message);
        if (r < 0) {
                fprintf(stderr, "%s\n", message ? message : strerror(-r));
                free(message);
                return 3;
        }
        struct seccomp_program *prog = NULL;
        r = seccomp_policy_compile(policy, &prog);
        seccomp_policy_free(policy);
        if (r < 0) {
                fprintf(stderr, "seccomp-helper: compiling %s: %s\n", argv[1], strerror(-r));
                return 3;
        }

        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                perror("fork");
                seccomp_program_free(prog);
                return 3;
        }
        if (pid == 0) {
                /* SIGSYS dumps core by default; nothing to learn from those cores here. */
                struct rlimit no_core = {0, 0};
                (void) setrlimit(RLIMIT_CORE, &no_core);
                r = seccomp_program_install(prog);
                if (r < 0) {
                        static const char msg[] = "seccomp-helper: installing the filter failed\n";
                        (void) !write(STDERR_FILENO, msg, sizeof(msg) - 1);
                        _exit(126);
                }
                execvp(argv[3], argv + 3);
                _exit(errno == ENOENT ? 127 : 126);
        }
        seccomp_program_free(prog);

        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        perror("waitpid");
                        return 3;
                }
        if (WIFSIGNALED(status)) {
                fprintf(stderr, "seccomp-helper: %s killed by signal %d\n", argv[3],
                        WTERMSIG(status));
                return 128 + WTERMSIG(status);
        }
        return WEXITSTATUS(status);
}
