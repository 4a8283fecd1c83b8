/*
 * orbit-sandbox-init: the first process of a sandbox. The agent's clone child builds the
 * sandbox (namespaces, root, ids, capabilities, no_new_privs, seccomp) and execs this
 * small static binary, so nothing of the agent (heap, environment, descriptors) stays
 * inside. It forks the workload, forwards signals to it, reaps orphans, and writes the
 * workload's wait status to the agent on a descriptor the workload never holds.
 *
 * It makes itself non-dumpable first: the workload, which runs as the same user, can
 * then neither ptrace it nor open /proc/1/mem, /proc/1/environ or /proc/1/fd/N.
 * Linked statically and without sanitizers: it runs in whatever root the sandbox has.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/sandbox-init.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static volatile pid_t workload_pid;

/* Report what failed to the agent (one atomic pipe write) and leave. */
static _Noreturn void fail(int error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void fail(int error, const char *fmt, ...) {
        struct sandbox_init_report rep = {.error = error > 0 ? error : EIO};
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rep.message, sizeof(rep.message), fmt, ap);
        va_end(ap);
        ssize_t n = write(SANDBOX_INIT_FD_ERROR, &rep, sizeof(rep));
        (void) n;
        _exit(127);
}

static void forward_signal(int sig) {
        int saved = errno;
        if (workload_pid > 0)
                kill(workload_pid, sig);
        errno = saved;
}

/* Every descriptor above 2 close-on-exec: the workload gets 0-2 and nothing else. */
static int cloexec_above_stdio(void) {
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
                return 0;
        /* Kernels before 5.11 (or a policy without close_range): the known ones. */
        for (int fd = 3; fd <= SANDBOX_INIT_FD_LAST; fd++)
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF)
                        return -errno;
        return 0;
}

static _Noreturn void exec_workload(char *const argv[]) {
        for (int sig = 1; sig < NSIG; sig++)
                (void) signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (setsid() < 0)
                fail(errno, "setsid");
        execv(argv[0], argv); /* the init's environment is the workload's */
        fail(errno, "exec %s%s", argv[0],
             errno == ENOENT ? " (is it, and its directory, bound into the sandbox?)" : "");
}

int main(int argc, char *argv[]) {
        /* Before anything the workload could see: not dumpable, so not ptrace-able and
         * its /proc files are out of the workload's reach. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                fail(errno, "sandbox init: make itself non-dumpable");
        (void) prctl(PR_SET_NAME, SANDBOX_INIT_COMM, 0, 0, 0);
        if (cloexec_above_stdio() < 0)
                fail(errno, "sandbox init: mark its descriptors close-on-exec");
        if (argc < 2 || argv[1][0] != '/')
                fail(EINVAL, "sandbox init: usage: %s /path/to/workload [ARGS...]", SANDBOX_INIT_COMM);

        /* Without a pid namespace we are not pid 1: adopt orphans ourselves. */
        if (getpid() != 1)
                (void) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

        /* Blocked across the fork, so no signal is lost before workload_pid is known. */
        static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &all, NULL);
        struct sigaction sa = {.sa_handler = forward_signal, .sa_flags = SA_RESTART};
        sigfillset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                if (sigaction(forwarded[i], &sa, NULL) < 0)
                        fail(errno, "sandbox init: handle signal %d", forwarded[i]);

        pid_t child = fork();
        if (child < 0)
                fail(errno, "fork the workload");
        if (child == 0)
                exec_workload(argv + 1);
        workload_pid = child;
        close(SANDBOX_INIT_FD_ERROR); /* the agent sees EOF once the workload has exec'd */
        sigprocmask(SIG_SETMASK, &none, NULL);

        for (;;) {
                int st;
                pid_t p = waitpid(-1, &st, 0);
                if (p < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(127); /* no children left and the workload never reported */
                }
                if (p == child) {
                        ssize_t n = write(SANDBOX_INIT_FD_STATUS, &st, sizeof(st));
                        (void) n;
                        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                }
        }
}
