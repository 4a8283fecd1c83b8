/* Unit tests for seccomp policies: built-ins, strict policy files, compiled filters in a child. */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "runtime/seccomp-policy.h"
#include "test-util.h"

#define SOURCE "/etc/orbit-agent/seccomp/test.json"

/* What no built-in policy may ever allow: docs/seccomp.md gives the reasons. */
static const char *const dangerous[] = {
        "mount", "umount2", "pivot_root", "kexec_load", "kexec_file_load", "init_module",
        "finit_module", "delete_module", "bpf", "perf_event_open", "ptrace",
        "process_vm_readv", "process_vm_writev", "keyctl", "add_key", "request_key",
        "reboot", "swapon", "swapoff", "settimeofday", "clock_settime", "adjtimex",
        "clock_adjtime", "unshare", "setns", "open_by_handle_at", "name_to_handle_at",
        "userfaultfd", "acct", "quotactl", "syslog", "iopl", "ioperm", "lookup_dcookie",
        "fanotify_init", "uselib", "vhangup", "nfsservctl", "chroot", "modify_ldt", "kcmp",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "fsopen", "fsconfig",
        "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "_sysctl",
        "sethostname", "setdomainname", "pidfd_getfd", "process_madvise", "move_pages",
        "migrate_pages", "create_module", "query_module", "get_kernel_syms", "sysfs", "ustat",
        "umount", "vm86", "vm86old",
};

static bool allows(enum seccomp_policy_action a) {
        return a == SECCOMP_POLICY_ALLOW || a == SECCOMP_POLICY_LOG;
}

/* Parse text; the problems, formatted and joined by '\n', go to buf. */
static int parse(const char *text, struct seccomp_policy **p, char *buf, size_t size) {
        struct json_problems ps = {0};
        int r = seccomp_policy_parse(SOURCE, text, strlen(text), p, &ps);
        struct json_ctx ctx = {.source = SOURCE};
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < ps.count && n < size; i++) {
                char line[1024];
                json_problem_format(&ctx, &ps.items[i], line, sizeof(line));
                n += (size_t) snprintf(buf + n, size - n, "%s%s", i ? "\n" : "", line);
        }
        return r;
}

static void test_builtin_policies_build_and_compile(void **state) {
        const char *names[] = {"default", "strict"};
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_seccomp_policy_ struct seccomp_policy *p = NULL;
                _cleanup_seccomp_program_ struct seccomp_program *prog = NULL;
                assert_int_equal(seccomp_policy_builtin(names[i], &p), 0);
                assert_string_equal(p->name, names[i]);
                assert_true(p->filter);
                assert_int_equal(p->default_action, SECCOMP_POLICY_ERRNO);
                assert_int_equal(p->default_errno, EPERM);
                assert_true(p->n_rules > 150);
                assert_int_equal(seccomp_policy_compile(p, &prog), 0);
                assert_non_null(prog);
                assert_non_null(prog->prog.filter);
                assert_true(prog->prog.len > 10);
                assert_string_equal(prog->policy_name, names[i]);
        }

        _cleanup_seccomp_policy_ struct seccomp_policy *none = NULL;
        struct seccomp_program *prog = (struct seccomp_program *) 1;
        assert_int_equal(seccomp_policy_builtin("none", &none), 0);
        assert_false(none->filter);
        assert_int_equal(seccomp_policy_compile(none, &prog), 0);
        assert_null(prog);
        assert_int_equal(seccomp_program_install(NULL), 0);
        assert_true(seccomp_policy_may_allow(none, "mount"));

        struct seccomp_policy *p = NULL;
        assert_int_equal(seccomp_policy_builtin("Default", &p), -ENOENT);
        assert_int_equal(seccomp_policy_builtin("", &p), -ENOENT);
        assert_null(p);
}

static void test_builtin_policies_deny_dangerous_syscalls(void **state) {
        _cleanup_seccomp_policy_ struct seccomp_policy *def = NULL, *strict = NULL;
        assert_int_equal(seccomp_policy_builtin("default", &def), 0);
        assert_int_equal(seccomp_policy_builtin("strict", &strict), 0);
        for (size_t i = 0; i < ELEMENTSOF(dangerous); i++) {
                /* A typo in the list above would make the check pass for nothing. */
                if (seccomp_syscall_resolve_name(dangerous[i]) == __NR_SCMP_ERROR)
                        fail_msg("libseccomp does not know \"%s\"", dangerous[i]);
                if (seccomp_policy_may_allow(def, dangerous[i]))
                        fail_msg("default allows %s", dangerous[i]);
                if (seccomp_policy_may_allow(strict, dangerous[i]))
                        fail_msg("strict allows %s", dangerous[i]);
        }
        /* personality only with harmless personas; clone only without namespaces. */
        for (size_t i = 0; i < def->n_rules; i++) {
                const struct seccomp_policy_rule *r = &def->rules[i];
                if (streq(r->name, "personality")) {
                        assert_int_equal(r->n_conditions, 1);
                        assert_int_equal(r->conditions[0].op, SECCOMP_POLICY_OP_EQ);
                        /* 0xffffffff only asks for the current persona */
                        if (r->conditions[0].value != 0xffffffff)
                                assert_int_equal(r->conditions[0].value & ADDR_NO_RANDOMIZE, 0);
                }
        }
        assert_null(seccomp_policy_find_rule(def, "personality"));
        assert_null(seccomp_policy_find_rule(def, "clone"));
        const struct seccomp_policy_rule *clone3 = seccomp_policy_find_rule(def, "clone3");
        assert_non_null(clone3);
        assert_int_equal(clone3->action, SECCOMP_POLICY_ERRNO);
        assert_int_equal(clone3->errno_value, ENOSYS);
}

static void test_builtin_policies_allow_what_servers_need(void **state) {
        _cleanup_seccomp_policy_ struct seccomp_policy *def = NULL, *strict = NULL;
        assert_int_equal(seccomp_policy_builtin("default", &def), 0);
        assert_int_equal(seccomp_policy_builtin("strict", &strict), 0);
        const char *needed[] = {"read", "write", "openat", "mmap", "mprotect", "futex",
                                "clone", "execve", "epoll_wait", "epoll_ctl", "getrandom",
                                "prctl", "rt_sigaction", "timerfd_create", "exit_group",
                                "rseq", "close_range"};
        for (size_t i = 0; i < ELEMENTSOF(needed); i++) {
                assert_true(seccomp_policy_may_allow(def, needed[i]));
                assert_true(seccomp_policy_may_allow(strict, needed[i]));
        }
        const char *server_only[] = {"accept4", "listen", "bind"};
        for (size_t i = 0; i < ELEMENTSOF(server_only); i++)
                assert_true(seccomp_policy_may_allow(def, server_only[i]));

        /* Sockets by family and type in default, AF_UNIX only in strict; mknod with
         * conditions in default, not at all in strict. Nothing strict allows that default
         * does not also allow. */
        assert_null(seccomp_policy_find_rule(def, "socket"));
        assert_true(seccomp_policy_may_allow(def, "socket")); /* with conditions */
        assert_null(seccomp_policy_find_rule(def, "mknodat"));
        assert_true(seccomp_policy_may_allow(def, "mknodat")); /* FIFOs */
        assert_false(seccomp_policy_may_allow(strict, "mknodat"));
        assert_null(seccomp_policy_find_rule(strict, "socket"));
        assert_true(seccomp_policy_may_allow(strict, "socket")); /* with conditions */
        assert_false(seccomp_policy_may_allow(strict, "mlock"));
        assert_false(seccomp_policy_may_allow(strict, "setuid"));
        assert_false(seccomp_policy_may_allow(strict, "shmget"));
        for (size_t i = 0; i < strict->n_rules; i++)
                assert_true(seccomp_policy_may_allow(def, strict->rules[i].name) ||
                            !allows(strict->rules[i].action));
}

/*
 * Whether the kernel under this process has seccomp: always on the kernels the agent
 * runs on, but not under a user-mode emulator (qemu-user runs the aarch64 build's unit
 * tests on an x86_64 host and implements no seccomp(2)), where neither a filter nor
 * libseccomp's newer actions (log) can be had. The tests that need it say so and skip
 * there; the aarch64 board runs them on a real kernel.
 */
static bool kernel_has_seccomp(void) {
        unsigned action = SECCOMP_RET_LOG;
        return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0 || errno != ENOSYS;
}

#define NEEDS_KERNEL_SECCOMP()                                                                      \
        do {                                                                                        \
                if (!kernel_has_seccomp()) {                                                        \
                        print_message("no seccomp(2) here (an emulator?): not testable here\n"); \
                        skip();                                                                     \
                }                                                                                   \
        } while (0)

static void test_parse_valid_policy(void **state) {
        NEEDS_KERNEL_SECCOMP(); /* the log action needs the kernel's answer */
        const char *text =
                "{\"default_action\": \"errno\", \"errno\": \"EACCES\",\n"
                " \"description\": \"test\",\n"
                " \"syscalls\": [\n"
                "  {\"names\": [\"read\", \"write\", \"execve\"], \"action\": \"allow\"},\n"
                "  {\"names\": [\"ptrace\"], \"action\": \"kill\", \"comment\": \"no\"},\n"
                "  {\"names\": [\"mkdir\"], \"action\": \"errno\", \"errno\": \"EROFS\"},\n"
                "  {\"names\": [\"rmdir\"], \"action\": \"errno\"},\n"
                "  {\"names\": [\"getcwd\"], \"action\": \"log\"},\n"
                "  {\"names\": [\"socket\"], \"action\": \"allow\",\n"
                "   \"args\": [{\"index\": 0, \"op\": \"eq\", \"value\": 1}]},\n"
                "  {\"names\": [\"socket\"], \"action\": \"allow\",\n"
                "   \"args\": [{\"index\": 1, \"op\": \"masked_eq\", \"mask\": 15,\n"
                "              \"value\": 2}]}\n"
                " ]}\n";
        _cleanup_seccomp_policy_ struct seccomp_policy *p = NULL;
        char err[4096];
        assert_int_equal(parse(text, &p, err, sizeof(err)), 0);
        assert_string_equal(p->name, SOURCE);
        assert_true(p->filter);
        assert_int_equal(p->default_action, SECCOMP_POLICY_ERRNO);
        assert_int_equal(p->default_errno, EACCES);
        assert_int_equal(p->n_rules, 9);
        assert_int_equal(seccomp_policy_find_rule(p, "write")->action, SECCOMP_POLICY_ALLOW);
        assert_int_equal(seccomp_policy_find_rule(p, "ptrace")->action, SECCOMP_POLICY_KILL);
        assert_int_equal(seccomp_policy_find_rule(p, "mkdir")->errno_value, EROFS);
        /* A rule's errno defaults to the policy's. */
        assert_int_equal(seccomp_policy_find_rule(p, "rmdir")->errno_value, EACCES);
        assert_int_equal(seccomp_policy_find_rule(p, "getcwd")->action, SECCOMP_POLICY_LOG);
        assert_int_equal(p->rules[8].n_conditions, 1);
        assert_int_equal(p->rules[8].conditions[0].op, SECCOMP_POLICY_OP_MASKED_EQ);
        assert_int_equal(p->rules[8].conditions[0].mask, 15);
        assert_int_equal(p->rules[8].conditions[0].value, 2);
        assert_true(seccomp_policy_may_allow(p, "socket"));
        assert_false(seccomp_policy_may_allow(p, "ptrace"));
        assert_false(seccomp_policy_may_allow(p, "uname"));

        _cleanup_seccomp_program_ struct seccomp_program *prog = NULL;
        assert_int_equal(seccomp_policy_compile(p, &prog), 0);
        assert_true(prog->prog.len > 0);
}

struct error_case {
        const char *text;
        const char *message;
};

static void test_parse_errors_name_file_line_column_and_key(void **state) {
        static const struct error_case cases[] = {
                {"{\"default_action\": \"errno\",\n \"syscals\": []}",
                 SOURCE ":2:2: syscals: unknown key (did you mean \"syscalls\"?)"},
                {"{\"default_action\": \"deny\"}",
                 SOURCE ":1:20: default_action: unknown action \"deny\": expected \"allow\", "
                        "\"errno\", \"kill\" or \"log\""},
                {"{\"syscalls\": []}", SOURCE ":1:1: missing required key \"default_action\""},
                {"{\"default_action\": \"allow\",\n \"syscalls\": [\n"
                 "  {\"names\": [\"read\", \"frobnicate\"], \"action\": \"kill\"}]}",
                 SOURCE ":3:22: syscalls[0].names[1]: unknown syscall \"frobnicate\""},
                {"{\"default_action\": \"errno\", \"errno\": \"EWHATEVER\"}",
                 SOURCE ":1:38: errno: unknown errno name \"EWHATEVER\" (expected e.g. "
                        "\"EPERM\", \"EACCES\", \"ENOSYS\")"},
                {"{\"default_action\": \"errno\", \"errno\": 1}",
                 SOURCE ":1:38: errno: expected an errno name such as \"EPERM\""},
                {"{\"default_action\": \"allow\", \"syscalls\": {}}",
                 SOURCE ":1:41: syscalls: expected an array"},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": \"read\", "
                 "\"action\": \"kill\"}]}",
                 SOURCE ":1:52: syscalls[0].names: expected an array"},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [7], "
                 "\"action\": \"kill\"}]}",
                 SOURCE ":1:53: syscalls[0].names[0]: expected a syscall name string"},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [\"read\"], "
                 "\"action\": \"allow\", \"errno\": \"EPERM\"}]}",
                 SOURCE ":1:81: syscalls[0].errno: \"errno\" only applies to the action "
                        "\"errno\""},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [\"read\"]}]}",
                 SOURCE ":1:42: syscalls[0]: missing required key \"action\""},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [\"read\"], "
                 "\"action\": \"kill\"},\n {\"names\": [\"write\", \"read\"], "
                 "\"action\": \"allow\"}]}",
                 SOURCE ":2:22: syscalls[1].names[1]: syscall \"read\" is already listed at "
                        "syscalls[0].names[0] (a syscall may appear twice only with \"args\" "
                        "each time)"},
                {"{\"default_action\": \"kill\", \"syscalls\": [{\"names\": [\"read\"], "
                 "\"action\": \"allow\"}]}",
                 SOURCE ":1:28: syscalls: the policy does not allow \"execve\", so the "
                        "workload could never start"},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [\"read\"], "
                 "\"action\": \"allow\", \"args\": [{\"index\": 6, \"op\": \"eq\", "
                 "\"value\": 0}]}]}",
                 SOURCE ":1:100: syscalls[0].args[0].index: 6 is out of range [0, 5]"},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [\"read\"], "
                 "\"action\": \"allow\", \"args\": [{\"index\": 0, \"op\": \"bigger\", "
                 "\"value\": 0}]}]}",
                 SOURCE ":1:109: syscalls[0].args[0].op: unknown operator \"bigger\": "
                        "expected eq, ne, lt, le, gt, ge or masked_eq"},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [\"read\"], "
                 "\"action\": \"allow\", \"args\": [{\"index\": 0, \"op\": \"masked_eq\", "
                 "\"value\": 0}]}]}",
                 SOURCE ":1:90: syscalls[0].args[0]: operator \"masked_eq\" needs a \"mask\""},
                {"{\"default_action\": \"allow\", \"syscalls\": [{\"names\": [], "
                 "\"action\": \"allow\"}]}",
                 SOURCE ":1:43: syscalls[0].names: needs at least one syscall name"},
                {"{\"default_action\": \"log\", \"errno\": \"EPERM\"}",
                 SOURCE ":1:27: errno: \"errno\" only applies to the default_action \"errno\""},
                {"{\"default_action\": \"allow\",",
                 SOURCE ":1:27: invalid JSON: string or '}' expected near end of file"},
                {"[]", SOURCE ":1:1: expected a JSON object at the top level"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct seccomp_policy *p = NULL;
                char err[4096];
                int r = parse(cases[i].text, &p, err, sizeof(err));
                if (r != -EINVAL || !streq(err, cases[i].message))
                        fail_msg("case %zu: r=%d\n got: %s\nwant: %s", i, r, err,
                                 cases[i].message);
                assert_null(p);
        }
}

static void test_parse_reports_every_problem(void **state) {
        const char *text = "{\"default_action\": \"errno\", \"errno\": \"EPRM\",\n"
                           " \"syscalls\": [{\"names\": [\"nosuch1\", \"nosuch2\"],\n"
                           "                \"action\": \"kil\"}],\n"
                           " \"extra\": 1}";
        struct seccomp_policy *p = NULL;
        char err[8192];
        assert_int_equal(parse(text, &p, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, ":1:38: errno: unknown errno name \"EPRM\""));
        assert_non_null(strstr(err, ":3:27: syscalls[0].action: unknown action \"kil\""));
        assert_non_null(strstr(err, ":2:26: syscalls[0].names[0]: unknown syscall \"nosuch1\""));
        assert_non_null(strstr(err, ":2:37: syscalls[0].names[1]: unknown syscall \"nosuch2\""));
        assert_non_null(strstr(err, ":4:2: extra: unknown key"));
}

static void test_load_file_and_resolve(void **state) {
        char *dir = test_mkdtemp();
        assert_non_null(dir);
        char good[PATH_MAX], bad[PATH_MAX], missing[PATH_MAX];
        test_path(good, sizeof(good), dir, "good.json");
        test_path(bad, sizeof(bad), dir, "bad.json");
        test_path(missing, sizeof(missing), dir, "missing.json");
        const char *good_text = "{\"default_action\": \"allow\", \"syscalls\": "
                                "[{\"names\": [\"uname\"], \"action\": \"kill\"}]}\n";
        const char *bad_text = "{\"default_action\": \"allow\",\n \"syscalls\": "
                               "[{\"names\": [\"unamee\"], \"action\": \"kill\"}]}\n";
        assert_int_equal(test_write(good, good_text, strlen(good_text)), 0);
        assert_int_equal(test_write(bad, bad_text, strlen(bad_text)), 0);

        struct seccomp_policy *p = NULL;
        char *msg = NULL;
        assert_int_equal(seccomp_policy_resolve(good, &p, &msg), 0);
        assert_null(msg);
        assert_string_equal(p->name, good);
        assert_int_equal(seccomp_policy_find_rule(p, "uname")->action, SECCOMP_POLICY_KILL);
        seccomp_policy_free(p);
        p = NULL;

        assert_int_equal(seccomp_policy_resolve(bad, &p, &msg), -EINVAL);
        assert_null(p);
        char want[PATH_MAX + 128];
        snprintf(want, sizeof(want), "%s:2:26: syscalls[0].names[0]: unknown syscall \"unamee\"",
                 bad);
        assert_string_equal(msg, want);
        free(msg);

        assert_int_equal(seccomp_policy_resolve(missing, &p, &msg), -ENOENT);
        assert_non_null(strstr(msg, "cannot read seccomp policy: No such file or directory"));
        free(msg);

        assert_int_equal(seccomp_policy_resolve("strictest", &p, &msg), -ENOENT);
        assert_string_equal(msg, "unknown seccomp policy \"strictest\": use \"default\", "
                                 "\"strict\", \"none\" or the absolute path of a JSON policy "
                                 "file");
        free(msg);
        assert_int_equal(seccomp_policy_resolve("policies/x.json", &p, &msg), -ENOENT);
        free(msg);
        assert_int_equal(seccomp_policy_resolve("", &p, &msg), -EINVAL);
        free(msg);

        assert_int_equal(seccomp_policy_resolve("none", &p, &msg), 0);
        assert_false(p->filter);
        seccomp_policy_free(p);
        test_rmdir(dir);
}

static void test_errno_names(void **state) {
        assert_int_equal(seccomp_errno_from_name("EPERM"), EPERM);
        assert_int_equal(seccomp_errno_from_name("ENOSYS"), ENOSYS);
        assert_int_equal(seccomp_errno_from_name("eperm"), -EINVAL);
        assert_int_equal(seccomp_errno_from_name(NULL), -EINVAL);
        assert_string_equal(seccomp_errno_to_name(EACCES), "EACCES");
        assert_null(seccomp_errno_to_name(0));
        assert_string_equal(seccomp_policy_action_to_string(SECCOMP_POLICY_KILL), "kill");
}

/* ---- filters installed for real, in a forked child -------------------------------- */

typedef int (*child_fn)(void);

/*
 * The child of a test starts as the kernel would start a program: every signal at its
 * default action and none blocked. cmocka catches SIGSEGV, SIGILL, SIGBUS... in the test
 * process; a child that kept those handlers would run cmocka's handler (and return into
 * cmocka) instead of dying of the signal its wait status must show.
 */
static void reset_signals(void) {
        for (int sig = 1; sig < NSIG; sig++)
                (void) signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        struct rlimit no_core = {0, 0};
        (void) setrlimit(RLIMIT_CORE, &no_core); /* SIGSYS and SIGSEGV would dump core */
}

/* Fork and run fn in the child with no filter; the child's wait status is returned. */
_unused_ static int run_unfiltered(child_fn fn) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                reset_signals();
                (void) syscall(SYS_exit_group, fn());
                _exit(101); /* not reached */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

/*
 * Compile policy text here, fork, install in the child and run fn there; the child's
 * wait status is returned. The child never returns into cmocka, and leaves by a raw
 * exit_group: sanitizer runtimes hook _exit() and make calls (sigaltstack, ptrace for
 * LeakSanitizer) that the tightest test policies deny.
 */
static int run_filtered(struct seccomp_policy *p, child_fn fn) {
        _cleanup_seccomp_program_ struct seccomp_program *prog = NULL;
        assert_int_equal(seccomp_policy_compile(p, &prog), 0);
        assert_non_null(prog);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                reset_signals();
                if (seccomp_program_install(prog) < 0)
                        _exit(100);
                (void) syscall(SYS_exit_group, fn());
                _exit(101); /* not reached */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static int run_filtered_text(const char *text, child_fn fn) {
        _cleanup_seccomp_policy_ struct seccomp_policy *p = NULL;
        char err[4096];
        int r = parse(text, &p, err, sizeof(err));
        if (r < 0)
                fail_msg("%s", err);
        return run_filtered(p, fn);
}

static int errno_of(long r) {
        return r < 0 ? errno : 0;
}

static int child_denied_calls_fail_with_eperm(void) {
        struct utsname u;
        if (errno_of(mkdir("/nonexistent-orbit-dir/x", 0700)) != EPERM)
                return 1;
        if (errno_of(uname(&u)) != EPERM)
                return 2;
        if (getpid() <= 0 || errno_of(write(STDOUT_FILENO, "", 0)) != 0)
                return 3;
        if (errno_of(syscall(SYS_getppid)) != 0)
                return 4;
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return 5;
        return 0;
}

/* mkdir() is the mkdir system call on x86_64 and mkdirat on aarch64, which has no mkdir:
 * a policy meant for both names both (the aarch64 board found a policy naming mkdir alone
 * denying nothing there). */
static void test_child_sees_errno_for_denied_syscalls(void **state) {
        NEEDS_KERNEL_SECCOMP();
        int status = run_filtered_text(
                "{\"default_action\": \"allow\", \"syscalls\": [\n"
                "  {\"names\": [\"mkdir\", \"mkdirat\", \"uname\"], \"action\": \"errno\",\n"
                "   \"errno\": \"EPERM\"},\n"
                "  {\"names\": [\"getcwd\"], \"action\": \"kill\"}]}",
                child_denied_calls_fail_with_eperm);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static int child_getcwd(void) {
        char buf[PATH_MAX];
        (void) syscall(SYS_getcwd, buf, sizeof(buf));
        return 0; /* not reached */
}

static void test_child_dies_of_sigsys_for_kill_action(void **state) {
        NEEDS_KERNEL_SECCOMP();
        int status = run_filtered_text(
                "{\"default_action\": \"allow\", \"syscalls\": [\n"
                "  {\"names\": [\"getcwd\"], \"action\": \"kill\"}]}",
                child_getcwd);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSYS);
}

static int child_default_errno(void) {
        if (errno_of(syscall(SYS_getppid)) != EACCES)
                return 1;
        if (errno_of(syscall(SYS_getpid)) != 0)
                return 2;
        return 0;
}

static void test_child_default_action_errno(void **state) {
        NEEDS_KERNEL_SECCOMP();
        int status = run_filtered_text(
                "{\"default_action\": \"errno\", \"errno\": \"EACCES\", \"syscalls\": [\n"
                "  {\"names\": [\"execve\", \"exit\", \"exit_group\", \"getpid\"], "
                "\"action\": \"allow\"}]}",
                child_default_errno);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void *thread_main(void *arg) {
        *(int *) arg = 42;
        return NULL;
}

static int child_under_default_policy(void) {
        /* Threads go through clone (glibc falls back from clone3 on ENOSYS). */
        pthread_t t;
        int value = 0;
        if (pthread_create(&t, NULL, thread_main, &value) != 0 || pthread_join(t, NULL) != 0 ||
            value != 42)
                return 1;
        if (errno_of(syscall(SYS_clone3, NULL, 0)) != ENOSYS)
                return 2;
        if (errno_of(unshare(CLONE_NEWUSER)) != EPERM)
                return 3;
        if (errno_of(mount(NULL, NULL, NULL, 0, NULL)) != EPERM)
                return 4;
        if (errno_of(syscall(SYS_personality, (unsigned long) ADDR_NO_RANDOMIZE)) != EPERM)
                return 5;
        if (errno_of(syscall(SYS_personality, 0xffffffffUL)) != 0)
                return 6;
        if (errno_of(syscall(SYS_ptrace, 0x7fff, -1, NULL, NULL)) != EPERM)
                return 7;
        /* A namespace flag in clone is denied before the kernel sees it (which would say
         * EINVAL to this combination, so nothing is ever created here). */
        if (errno_of(syscall(SYS_clone, (unsigned long) (CLONE_NEWUSER | CLONE_FS), NULL,
                             NULL, NULL, NULL)) != EPERM)
                return 8;
        char buf[64];
        if (errno_of(getrandom(buf, sizeof(buf), 0)) != 0)
                return 9;
        return 0;
}

static void test_child_under_default_policy(void **state) {
        NEEDS_KERNEL_SECCOMP();
        _cleanup_seccomp_policy_ struct seccomp_policy *p = NULL;
        assert_int_equal(seccomp_policy_builtin("default", &p), 0);
        int status = run_filtered(p, child_under_default_policy);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * Under "default": the socket families and types a server needs work, raw and unusual
 * ones fail with EPERM before the kernel sees them; device nodes cannot be made, FIFOs
 * can. Run as root, so without the filter the refused calls would mostly succeed.
 */
static char fifo_dir[64];

static int socket_errno(long family, long type, long protocol) {
        long fd = syscall(SYS_socket, family, type, protocol);
        if (fd >= 0) {
                close((int) fd);
                return 0;
        }
        return errno;
}

static int child_sockets_and_nodes(void) {
        if (socket_errno(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) != 0)
                return 1;
        if (socket_errno(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) != 0 ||
            socket_errno(AF_INET, SOCK_DGRAM, 0) != 0)
                return 2;
        /* IPv6 may be off in this kernel: the filter let it through if the errno is not EPERM */
        if (socket_errno(AF_INET6, SOCK_STREAM, 0) == EPERM || socket_errno(AF_INET6, SOCK_DGRAM, 0) == EPERM)
                return 3;
        if (socket_errno(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0 /* NETLINK_ROUTE */) != 0)
                return 4;
        if (socket_errno(AF_PACKET, SOCK_RAW, 0) != EPERM || socket_errno(AF_PACKET, SOCK_DGRAM, 0) != EPERM)
                return 5;
        if (socket_errno(40 /* AF_VSOCK */, SOCK_STREAM, 0) != EPERM)
                return 6;
        if (socket_errno(AF_INET, SOCK_RAW, 1 /* ICMP */) != EPERM || socket_errno(AF_INET6, SOCK_RAW, 58) != EPERM)
                return 7;
        if (socket_errno(AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */) != EPERM ||
            socket_errno(AF_NETLINK, SOCK_RAW, 12 /* NETLINK_NETFILTER */) != EPERM)
                return 8;
        if (socket_errno(38 /* AF_ALG */, SOCK_SEQPACKET, 0) != EPERM || socket_errno(AF_INET, SOCK_SEQPACKET, 132) != EPERM)
                return 9;
        /* The kernel reads an int: bits above 32 must not smuggle AF_PACKET past an eq. */
        if (socket_errno((long) ((1UL << 32) | AF_INET), SOCK_STREAM, 0) != EPERM)
                return 10;
        char path[128];
        snprintf(path, sizeof(path), "%s/null", fifo_dir);
        if (errno_of(syscall(SYS_mknodat, AT_FDCWD, path, S_IFCHR | 0666, makedev(1, 3))) != EPERM)
                return 11;
        if (errno_of(syscall(SYS_mknodat, AT_FDCWD, path, S_IFBLK | 0600, makedev(7, 0))) != EPERM)
                return 12;
#ifdef SYS_mknod /* not on aarch64, which has mknodat only */
        if (errno_of(syscall(SYS_mknod, path, S_IFCHR | 0666, makedev(1, 3))) != EPERM)
                return 13;
#endif
        snprintf(path, sizeof(path), "%s/fifo", fifo_dir);
        if (mkfifo(path, 0600) != 0)
                return 14;
        return 0;
}

static void test_child_default_policy_sockets_and_device_nodes(void **state) {
        NEEDS_KERNEL_SECCOMP();
        _cleanup_seccomp_policy_ struct seccomp_policy *p = NULL;
        assert_int_equal(seccomp_policy_builtin("default", &p), 0);
        snprintf(fifo_dir, sizeof(fifo_dir), "/tmp/orbit-seccomp-test.XXXXXX");
        assert_non_null(mkdtemp(fifo_dir));
        int status = run_filtered(p, child_sockets_and_nodes);
        char path[128];
        snprintf(path, sizeof(path), "%s/fifo", fifo_dir);
        struct stat st;
        bool fifo_made = stat(path, &st) == 0 && S_ISFIFO(st.st_mode);
        (void) unlink(path);
        snprintf(path, sizeof(path), "%s/null", fifo_dir);
        bool node_made = access(path, F_OK) == 0;
        (void) unlink(path);
        (void) rmdir(fifo_dir);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(fifo_made);
        assert_false(node_made);
}

#if defined(__x86_64__)
static int child_x32_call(void) {
        (void) syscall(0x40000000 | SYS_getpid); /* __X32_SYSCALL_BIT */
        return 0;
}

static int child_i386_call(void) {
        long ret;
        /* getpid is 20 on i386 */
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
        return ret > 0 ? 0 : 1;
}

/*
 * The filter kills a call made through another ABI, which no rule ever sees. x32 calls
 * reach seccomp whether or not the kernel has the x32 ABI. int 0x80 reaches it only where
 * the kernel has IA-32 emulation: without it (ia32_emulation=0, or a kernel built
 * without) the instruction faults with SIGSEGV before any syscall entry, so first ask
 * the kernel, without a filter, and prove the kill wherever the ABI exists.
 */
static void test_child_other_arch_calls_are_killed(void **state) {
        NEEDS_KERNEL_SECCOMP();
        _cleanup_seccomp_policy_ struct seccomp_policy *p = NULL;
        assert_int_equal(seccomp_policy_builtin("default", &p), 0);
        int status = run_filtered(p, child_x32_call);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSYS);

        status = run_unfiltered(child_i386_call);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
                print_message("no IA-32 emulation in this kernel: the int 0x80 kill is not "
                              "testable here\n");
                seccomp_policy_free(TAKE_PTR(p)); /* skip() longjmps past the cleanup */
                skip();
        }
        assert_true(WIFEXITED(status)); /* the i386 getpid worked without the filter */
        assert_int_equal(WEXITSTATUS(status), 0);
        status = run_filtered(p, child_i386_call);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSYS);
}
#endif

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builtin_policies_build_and_compile),
                cmocka_unit_test(test_builtin_policies_deny_dangerous_syscalls),
                cmocka_unit_test(test_builtin_policies_allow_what_servers_need),
                cmocka_unit_test(test_parse_valid_policy),
                cmocka_unit_test(test_parse_errors_name_file_line_column_and_key),
                cmocka_unit_test(test_parse_reports_every_problem),
                cmocka_unit_test(test_load_file_and_resolve),
                cmocka_unit_test(test_errno_names),
                cmocka_unit_test(test_child_sees_errno_for_denied_syscalls),
                cmocka_unit_test(test_child_dies_of_sigsys_for_kill_action),
                cmocka_unit_test(test_child_default_action_errno),
                cmocka_unit_test(test_child_under_default_policy),
                cmocka_unit_test(test_child_default_policy_sockets_and_device_nodes),
#if defined(__x86_64__)
                cmocka_unit_test(test_child_other_arch_calls_are_killed),
#endif
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
