/* Seccomp policies: built-in tables, strict JSON files, compilation to BPF, installation. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/seccomp.h>
#include <seccomp.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/message.h"
#include "runtime/seccomp-policy.h"

/* ---- errno names ------------------------------------------------------------------- */

#define ERRNO_ENTRY(e) {#e, e}

static const struct {
        const char *name;
        int value;
} errno_names[] = {
        ERRNO_ENTRY(EPERM),      ERRNO_ENTRY(ENOENT),       ERRNO_ENTRY(ESRCH),
        ERRNO_ENTRY(EINTR),      ERRNO_ENTRY(EIO),          ERRNO_ENTRY(ENXIO),
        ERRNO_ENTRY(E2BIG),      ERRNO_ENTRY(ENOEXEC),      ERRNO_ENTRY(EBADF),
        ERRNO_ENTRY(ECHILD),     ERRNO_ENTRY(EAGAIN),       ERRNO_ENTRY(ENOMEM),
        ERRNO_ENTRY(EACCES),     ERRNO_ENTRY(EFAULT),       ERRNO_ENTRY(EBUSY),
        ERRNO_ENTRY(EEXIST),     ERRNO_ENTRY(EXDEV),        ERRNO_ENTRY(ENODEV),
        ERRNO_ENTRY(ENOTDIR),    ERRNO_ENTRY(EISDIR),       ERRNO_ENTRY(EINVAL),
        ERRNO_ENTRY(ENFILE),     ERRNO_ENTRY(EMFILE),       ERRNO_ENTRY(ENOTTY),
        ERRNO_ENTRY(EFBIG),      ERRNO_ENTRY(ENOSPC),       ERRNO_ENTRY(ESPIPE),
        ERRNO_ENTRY(EROFS),      ERRNO_ENTRY(EMLINK),       ERRNO_ENTRY(EPIPE),
        ERRNO_ENTRY(ERANGE),     ERRNO_ENTRY(ENAMETOOLONG), ERRNO_ENTRY(ENOSYS),
        ERRNO_ENTRY(ENOTSUP),    ERRNO_ENTRY(EOPNOTSUPP),   ERRNO_ENTRY(EAFNOSUPPORT),
        ERRNO_ENTRY(EPROTONOSUPPORT), ERRNO_ENTRY(ENOTSOCK), ERRNO_ENTRY(EADDRNOTAVAIL),
        ERRNO_ENTRY(ENETUNREACH), ERRNO_ENTRY(ECONNREFUSED), ERRNO_ENTRY(ETIMEDOUT),
};

int seccomp_errno_from_name(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(errno_names); i++)
                if (streq(errno_names[i].name, name))
                        return errno_names[i].value;
        return -EINVAL;
}

const char *seccomp_errno_to_name(int errno_value) {
        for (size_t i = 0; i < ELEMENTSOF(errno_names); i++)
                if (errno_names[i].value == errno_value)
                        return errno_names[i].name;
        return NULL;
}

static const char *const action_names[] = {
        [SECCOMP_POLICY_ALLOW] = "allow",
        [SECCOMP_POLICY_ERRNO] = "errno",
        [SECCOMP_POLICY_KILL] = "kill",
        [SECCOMP_POLICY_LOG] = "log",
};

const char *seccomp_policy_action_to_string(enum seccomp_policy_action a) {
        if ((size_t) a >= ELEMENTSOF(action_names))
                return "unknown";
        return action_names[a];
}

static int action_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(action_names); i++)
                if (streq(action_names[i], s))
                        return (int) i;
        return -EINVAL;
}

static const char *const op_names[] = {
        [SECCOMP_POLICY_OP_EQ] = "eq",
        [SECCOMP_POLICY_OP_NE] = "ne",
        [SECCOMP_POLICY_OP_LT] = "lt",
        [SECCOMP_POLICY_OP_LE] = "le",
        [SECCOMP_POLICY_OP_GT] = "gt",
        [SECCOMP_POLICY_OP_GE] = "ge",
        [SECCOMP_POLICY_OP_MASKED_EQ] = "masked_eq",
};

static int op_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(op_names); i++)
                if (streq(op_names[i], s))
                        return (int) i;
        return -EINVAL;
}

/* ---- the model --------------------------------------------------------------------- */

static struct seccomp_policy *policy_new(const char *name) {
        struct seccomp_policy *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->name = strdup(name);
        if (!p->name) {
                free(p);
                return NULL;
        }
        p->filter = true;
        p->default_action = SECCOMP_POLICY_ERRNO;
        p->default_errno = EPERM;
        return p;
}

void seccomp_policy_free(struct seccomp_policy *p) {
        if (!p)
                return;
        free(p->name);
        free(p->rules);
        free(p);
}

/*
 * A syscall may be named by several rules only when all of them have conditions:
 * libseccomp silently lets an unconditional rule win over conditional ones.
 */
static const struct seccomp_policy_rule *policy_conflict(const struct seccomp_policy *p,
                                                         const char *name, bool conditional) {
        for (size_t i = 0; i < p->n_rules; i++)
                if (streq(p->rules[i].name, name) &&
                    (!conditional || p->rules[i].n_conditions == 0))
                        return &p->rules[i];
        return NULL;
}

/*
 * Append a rule. -ENOENT: libseccomp knows no syscall of that name (on any architecture);
 * -EEXIST: it conflicts with an earlier rule; -E2BIG: too many rules.
 */
static int policy_add_rule(struct seccomp_policy *p, const char *name,
                           enum seccomp_policy_action action, int errno_value,
                           const struct seccomp_policy_condition *conditions,
                           size_t n_conditions) {
        if (strlen(name) >= SECCOMP_SYSCALL_NAME_MAX || n_conditions > SECCOMP_POLICY_MAX_ARGS)
                return -EINVAL;
        int number = seccomp_syscall_resolve_name(name);
        if (number == __NR_SCMP_ERROR)
                return -ENOENT;
        if (policy_conflict(p, name, n_conditions > 0))
                return -EEXIST;
        if (p->n_rules >= SECCOMP_POLICY_MAX_RULES)
                return -E2BIG;

        /* Grow by doubling; the bound above keeps the size small. */
        if ((p->n_rules & (p->n_rules - 1)) == 0) {
                size_t cap = p->n_rules ? p->n_rules * 2 : 16;
                struct seccomp_policy_rule *rules = realloc(p->rules, cap * sizeof(*rules));
                if (!rules)
                        return -ENOMEM;
                p->rules = rules;
        }
        struct seccomp_policy_rule *r = &p->rules[p->n_rules++];
        memset(r, 0, sizeof(*r));
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->number = number;
        r->action = action;
        r->errno_value = action == SECCOMP_POLICY_ERRNO ? errno_value : 0;
        if (n_conditions > 0)
                memcpy(r->conditions, conditions, n_conditions * sizeof(*conditions));
        r->n_conditions = n_conditions;
        return 0;
}

static bool action_allows(enum seccomp_policy_action a) {
        return a == SECCOMP_POLICY_ALLOW || a == SECCOMP_POLICY_LOG;
}

bool seccomp_policy_may_allow(const struct seccomp_policy *p, const char *syscall_name) {
        if (!p->filter)
                return true;
        bool named = false;
        for (size_t i = 0; i < p->n_rules; i++) {
                if (!streq(p->rules[i].name, syscall_name))
                        continue;
                named = true;
                if (action_allows(p->rules[i].action))
                        return true;
        }
        /* Conditional rules fall through to the default when no condition matches. */
        if (named) {
                const struct seccomp_policy_rule *r = seccomp_policy_find_rule(p, syscall_name);
                if (r)
                        return false;
        }
        return action_allows(p->default_action);
}

const struct seccomp_policy_rule *seccomp_policy_find_rule(const struct seccomp_policy *p,
                                                           const char *syscall_name) {
        for (size_t i = 0; i < p->n_rules; i++)
                if (p->rules[i].n_conditions == 0 && streq(p->rules[i].name, syscall_name))
                        return &p->rules[i];
        return NULL;
}

/* ---- built-in policies ------------------------------------------------------------- */

/*
 * Allowed by both "default" and "strict": what a dynamically linked program, a shell with
 * coreutils and python3 need for files, memory, threads, signals, time and AF_UNIX IPC.
 * Names that do not exist on the build architecture are kept in the model and skipped
 * when compiling. docs/seccomp.md explains what is left out, and why.
 */
static const char *const common_allow[] = {
        "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "capget",
        "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep",
        "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2",
        "epoll_wait", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
        "faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat",
        "fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr",
        "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate",
        "futex", "futex_waitv", "futimesat", "get_mempolicy", "get_robust_list", "getcpu",
        "getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
        "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
        "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage", "getsid",
        "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getxattr",
        "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "ioctl",
        "ioprio_get", "kill", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen",
        "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise",
        "map_shadow_stack", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat",
        "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
        "mq_timedsend", "mq_unlink", "mremap", "msync", "munmap", "nanosleep", "newfstatat",
        "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe",
        "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl",
        "pread64", "preadv", "preadv2", "prlimit64", "pselect6", "pwrite64", "pwritev",
        "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom",
        "recvmmsg", "recvmsg", "removexattr", "rename", "renameat", "renameat2",
        "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
        "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max",
        "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
        "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity", "sched_yield",
        "seccomp", "select", "sendfile", "sendmmsg", "sendmsg", "sendto", "set_robust_list",
        "set_tid_address", "setitimer", "setpgid", "setrlimit", "setsid", "setsockopt",
        "setxattr", "shutdown", "sigaltstack", "signalfd", "signalfd4", "splice", "stat",
        "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
        "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
        "timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create",
        "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask", "uname",
        "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork", "wait4", "waitid",
        "write", "writev",
};

/*
 * Only in "default": System V IPC, Linux AIO, memory locking and NUMA placement,
 * scheduling changes, id changes (which need capabilities a workload does not keep
 * anyway). Sockets and mknod are allowed with conditions (default_conditional).
 */
static const char *const server_allow[] = {
        "capset", "io_cancel", "io_destroy", "io_getevents",
        "io_pgetevents", "io_setup", "io_submit", "ioprio_set", "mbind",
        "mlock", "mlock2", "mlockall", "msgctl", "msgget", "msgrcv", "msgsnd", "munlock",
        "munlockall", "sched_setattr", "sched_setparam", "sched_setscheduler", "semctl",
        "semget", "semop", "semtimedop", "set_mempolicy", "setfsgid", "setfsuid", "setgid",
        "setgroups", "setpriority", "setregid", "setresgid", "setresuid", "setreuid",
        "setuid", "shmat", "shmctl", "shmdt", "shmget", "vmsplice",
};

/* Namespace flags clone(2) may not carry: new namespaces are the sandbox's business. */
/* NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET */
#define CLONE_NAMESPACE_FLAGS 0x7e020000ULL

struct builtin_rule {
        const char *name;
        enum seccomp_policy_action action;
        int errno_value;
        size_t n_conditions;
        struct seccomp_policy_condition conditions[3];
};

#define ARG0_EQ(v) 1, {{.index = 0, .op = SECCOMP_POLICY_OP_EQ, .value = (v)}}
#define COND_EQ(i, v) {.index = (i), .op = SECCOMP_POLICY_OP_EQ, .value = (v)}
#define COND_MASKED(i, m, v) {.index = (i), .op = SECCOMP_POLICY_OP_MASKED_EQ, .mask = (m), .value = (v)}

/* socket(2)'s type without SOCK_NONBLOCK and SOCK_CLOEXEC. */
#define SOCKET_TYPE_MASK 0xf
/* The file type bits of a mode. */
#define MODE_TYPE_MASK 0170000

static const struct builtin_rule common_conditional[] = {
        /* Threads and fork, but no new namespaces (unshare and setns are denied too). */
        {"clone", SECCOMP_POLICY_ALLOW, 0, 1,
         {{.index = 0, .op = SECCOMP_POLICY_OP_MASKED_EQ, .mask = CLONE_NAMESPACE_FLAGS,
           .value = 0}}},
        /* clone3 passes its flags in memory, out of a filter's sight: ENOSYS makes glibc
         * fall back to clone, whose flags we can check. */
        {"clone3", SECCOMP_POLICY_ERRNO, ENOSYS, 0, {{0}}},
        /* personality: Linux and 32-bit Linux, UNAME26, and the query; never
         * ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC. */
        {"personality", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(0x0)},
        {"personality", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(0x0008)},
        {"personality", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(0x20000)},
        {"personality", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(0x20008)},
        {"personality", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(0xffffffff)},
};

/*
 * "default": sockets of the families a server needs, never raw ones. AF_UNIX of any
 * type; AF_INET and AF_INET6 streams and datagrams (TCP, UDP, ICMP echo sockets), not
 * SOCK_RAW, not SOCK_SEQPACKET (SCTP, a module the kernel would load on demand);
 * AF_NETLINK only NETLINK_ROUTE, which glibc's getaddrinfo (AI_ADDRCONFIG) and
 * if_nameindex read, as Docker's and crun's default profiles allow it. Every other
 * family (AF_PACKET, AF_VSOCK, AF_ALG, AF_KEY, AF_BLUETOOTH, AF_CAN, AF_XDP, ...) and
 * every other netlink protocol get the default EPERM. The family and type are ints:
 * garbage in the upper 32 bits makes an eq miss, so these fail closed.
 * mknod only for FIFOs and regular files: device nodes are refused whatever the
 * capabilities (the mode is the 2nd argument of mknod, the 3rd of mknodat).
 */
static const struct builtin_rule default_conditional[] = {
        {"socket", SECCOMP_POLICY_ALLOW, 0, 1, {COND_EQ(0, AF_UNIX)}},
        {"socket", SECCOMP_POLICY_ALLOW, 0, 2, {COND_EQ(0, AF_INET), COND_MASKED(1, SOCKET_TYPE_MASK, SOCK_STREAM)}},
        {"socket", SECCOMP_POLICY_ALLOW, 0, 2, {COND_EQ(0, AF_INET), COND_MASKED(1, SOCKET_TYPE_MASK, SOCK_DGRAM)}},
        {"socket", SECCOMP_POLICY_ALLOW, 0, 2, {COND_EQ(0, AF_INET6), COND_MASKED(1, SOCKET_TYPE_MASK, SOCK_STREAM)}},
        {"socket", SECCOMP_POLICY_ALLOW, 0, 2, {COND_EQ(0, AF_INET6), COND_MASKED(1, SOCKET_TYPE_MASK, SOCK_DGRAM)}},
        {"socket", SECCOMP_POLICY_ALLOW, 0, 2, {COND_EQ(0, AF_NETLINK), COND_EQ(2, 0 /* NETLINK_ROUTE */)}},
        {"socketpair", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(AF_UNIX)},
        {"mknod", SECCOMP_POLICY_ALLOW, 0, 1, {COND_MASKED(1, MODE_TYPE_MASK, 0010000 /* S_IFIFO */)}},
        {"mknod", SECCOMP_POLICY_ALLOW, 0, 1, {COND_MASKED(1, MODE_TYPE_MASK, 0100000 /* S_IFREG */)}},
        {"mknod", SECCOMP_POLICY_ALLOW, 0, 1, {COND_MASKED(1, MODE_TYPE_MASK, 0)}},
        {"mknodat", SECCOMP_POLICY_ALLOW, 0, 1, {COND_MASKED(2, MODE_TYPE_MASK, 0010000 /* S_IFIFO */)}},
        {"mknodat", SECCOMP_POLICY_ALLOW, 0, 1, {COND_MASKED(2, MODE_TYPE_MASK, 0100000 /* S_IFREG */)}},
        {"mknodat", SECCOMP_POLICY_ALLOW, 0, 1, {COND_MASKED(2, MODE_TYPE_MASK, 0)}},
};

static const struct builtin_rule strict_conditional[] = {
        {"socket", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(AF_UNIX)},
        {"socketpair", SECCOMP_POLICY_ALLOW, 0, ARG0_EQ(AF_UNIX)},
};

static int add_names(struct seccomp_policy *p, const char *const *names, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int r = policy_add_rule(p, names[i], SECCOMP_POLICY_ALLOW, 0, NULL, 0);
                if (r < 0)
                        return log_error_errno(r, "built-in seccomp policy %s: syscall %s",
                                               p->name, names[i]);
        }
        return 0;
}

static int add_builtin_rules(struct seccomp_policy *p, const struct builtin_rule *rules,
                             size_t n) {
        for (size_t i = 0; i < n; i++) {
                int r = policy_add_rule(p, rules[i].name, rules[i].action, rules[i].errno_value,
                                        rules[i].conditions, rules[i].n_conditions);
                if (r < 0)
                        return log_error_errno(r, "built-in seccomp policy %s: syscall %s",
                                               p->name, rules[i].name);
        }
        return 0;
}

int seccomp_policy_builtin(const char *name, struct seccomp_policy **ret) {
        bool is_default = streq(name, "default"), is_strict = streq(name, "strict");
        if (!is_default && !is_strict && !streq(name, "none"))
                return -ENOENT;

        struct seccomp_policy *p = policy_new(name);
        if (!p)
                return -ENOMEM;
        int r = 0;
        if (is_default || is_strict) {
                r = add_names(p, common_allow, ELEMENTSOF(common_allow));
                if (r >= 0)
                        r = add_builtin_rules(p, common_conditional,
                                              ELEMENTSOF(common_conditional));
                if (r >= 0 && is_default)
                        r = add_names(p, server_allow, ELEMENTSOF(server_allow));
                if (r >= 0 && is_default)
                        r = add_builtin_rules(p, default_conditional,
                                              ELEMENTSOF(default_conditional));
                if (r >= 0 && is_strict)
                        r = add_builtin_rules(p, strict_conditional,
                                              ELEMENTSOF(strict_conditional));
        } else
                p->filter = false;
        if (r < 0) {
                seccomp_policy_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

/* ---- JSON policy files ------------------------------------------------------------- */

/* What the dispatch tables fill in; arrays are kept (borrowed) and walked afterwards. */
struct policy_spec {
        char *description;
        int default_action; /* -1 until set */
        int default_errno;  /* 0 until set */
        json_t *syscalls;
};

struct rule_spec {
        char *comment;
        json_t *names;
        int action; /* -1 until set */
        int errno_value;
        json_t *args;
};

struct condition_spec {
        int64_t index;
        char *op_name;
        int64_t value;
        int64_t mask;
        bool has_mask;
};

static int dispatch_action(struct json_ctx *ctx, json_t *v, void *dest,
                           const struct json_field *f) {
        if (!json_is_string(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected \"allow\", \"errno\", \"kill\" or \"log\"");
        int a = action_from_string(json_string_value(v));
        if (a < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unknown action \"%s\": expected \"allow\", \"errno\", "
                                        "\"kill\" or \"log\"",
                                        json_string_value(v));
        *(int *) dest = a;
        return 0;
}

static int dispatch_errno(struct json_ctx *ctx, json_t *v, void *dest,
                          const struct json_field *f) {
        if (!json_is_string(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected an errno name such as \"EPERM\"");
        int e = seccomp_errno_from_name(json_string_value(v));
        if (e < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unknown errno name \"%s\" (expected e.g. \"EPERM\", "
                                        "\"EACCES\", \"ENOSYS\")",
                                        json_string_value(v));
        *(int *) dest = e;
        return 0;
}

/* An array, kept borrowed for a second pass; f->max bounds its length. */
static int dispatch_array(struct json_ctx *ctx, json_t *v, void *dest,
                          const struct json_field *f) {
        if (!json_is_array(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an array");
        if (json_array_size(v) > (size_t) f->max)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "more than %lld elements",
                                        (long long) f->max);
        *(json_t **) dest = v;
        return 0;
}

static const struct json_field policy_fields[] = {
        {"description", json_dispatch_string, offsetof(struct policy_spec, description), 0, NULL, 0, 4096},
        {"default_action", dispatch_action, offsetof(struct policy_spec, default_action), JSON_REQUIRED, NULL, 0, 0},
        {"errno", dispatch_errno, offsetof(struct policy_spec, default_errno), 0, NULL, 0, 0},
        {"syscalls", dispatch_array, offsetof(struct policy_spec, syscalls), 0, NULL, 0, SECCOMP_POLICY_MAX_ENTRIES},
        {},
};

static const struct json_field rule_fields[] = {
        {"names", dispatch_array, offsetof(struct rule_spec, names), JSON_REQUIRED, NULL, 0, SECCOMP_POLICY_MAX_NAMES},
        {"action", dispatch_action, offsetof(struct rule_spec, action), JSON_REQUIRED, NULL, 0, 0},
        {"errno", dispatch_errno, offsetof(struct rule_spec, errno_value), 0, NULL, 0, 0},
        {"args", dispatch_array, offsetof(struct rule_spec, args), 0, NULL, 0, SECCOMP_POLICY_MAX_ARGS},
        {"comment", json_dispatch_string, offsetof(struct rule_spec, comment), 0, NULL, 0, 4096},
        {},
};

static const struct json_field condition_fields[] = {
        {"index", json_dispatch_int64, offsetof(struct condition_spec, index), JSON_REQUIRED, NULL, 0, 5},
        {"op", json_dispatch_string, offsetof(struct condition_spec, op_name), JSON_REQUIRED, NULL, 0, 16},
        {"value", json_dispatch_int64, offsetof(struct condition_spec, value), JSON_REQUIRED, NULL, 0, INT64_MAX},
        {"mask", json_dispatch_int64, offsetof(struct condition_spec, mask), 0, NULL, 0, INT64_MAX},
        {},
};

static bool ctx_push(struct json_ctx *ctx, const char *key, size_t index) {
        if (ctx->depth >= JSON_MAX_DEPTH)
                return false;
        ctx->path[ctx->depth].key = key;
        ctx->path[ctx->depth].index = index;
        ctx->depth++;
        return true;
}

/* Problem at the key "key" of the object at the current path. */
static int problem_at_key(struct json_ctx *ctx, const char *key, const char *message) {
        if (!ctx_push(ctx, key, 0))
                return -EINVAL;
        int r = json_ctx_problem(ctx, JSON_AT_KEY, "%s", message);
        ctx->depth--;
        return r;
}

static int parse_condition(struct json_ctx *ctx, json_t *v,
                           struct seccomp_policy_condition *ret) {
        struct condition_spec c = {0};
        int r = json_dispatch_object(ctx, v, condition_fields, &c);
        if (r < 0) {
                free(c.op_name);
                return r;
        }
        int op = op_from_string(c.op_name);
        if (op < 0) {
                if (ctx_push(ctx, "op", 0)) {
                        r = json_ctx_problem(ctx, JSON_AT_VALUE,
                                             "unknown operator \"%s\": expected eq, ne, lt, le, "
                                             "gt, ge or masked_eq",
                                             c.op_name);
                        ctx->depth--;
                }
                free(c.op_name);
                return -EINVAL;
        }
        free(c.op_name);
        c.has_mask = json_object_get(v, "mask") != NULL;
        if (op == SECCOMP_POLICY_OP_MASKED_EQ && !c.has_mask)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "operator \"masked_eq\" needs a \"mask\"");
        if (op != SECCOMP_POLICY_OP_MASKED_EQ && c.has_mask)
                return problem_at_key(ctx, "mask", "\"mask\" only applies to \"masked_eq\"");
        *ret = (struct seccomp_policy_condition){
                .index = (unsigned) c.index,
                .op = (enum seccomp_policy_op) op,
                .value = (uint64_t) c.value,
                .mask = (uint64_t) c.mask,
        };
        return 0;
}

/* Where an earlier element of "syscalls" names this syscall, as "syscalls[i].names[k]". */
static void describe_first_listing(json_t *syscalls, size_t before, const char *name,
                                   char *buf, size_t size) {
        snprintf(buf, size, "an earlier rule");
        for (size_t i = 0; i <= before && i < json_array_size(syscalls); i++) {
                json_t *names = json_object_get(json_array_get(syscalls, i), "names");
                for (size_t k = 0; k < json_array_size(names); k++) {
                        const char *s = json_string_value(json_array_get(names, k));
                        if (s && streq(s, name)) {
                                snprintf(buf, size, "syscalls[%zu].names[%zu]", i, k);
                                return;
                        }
                }
        }
}

static int parse_rule(struct json_ctx *ctx, json_t *syscalls, size_t entry,
                      struct seccomp_policy *p) {
        json_t *v = json_array_get(syscalls, entry);
        struct rule_spec spec = {.action = -1};
        int r = json_dispatch_object(ctx, v, rule_fields, &spec);
        free(spec.comment);
        if (r == -ENOMEM)
                return r;

        /* Go on after problems, to report every one; add rules only while there are none. */
        int result = r;
        if (spec.errno_value != 0 && spec.action >= 0 && spec.action != SECCOMP_POLICY_ERRNO)
                result = problem_at_key(ctx, "errno",
                                        "\"errno\" only applies to the action \"errno\"");
        int errno_value = spec.errno_value;
        if (errno_value == 0)
                errno_value = p->default_action == SECCOMP_POLICY_ERRNO ? p->default_errno : EPERM;

        struct seccomp_policy_condition conditions[SECCOMP_POLICY_MAX_ARGS];
        size_t n_conditions = json_array_size(spec.args);
        if (spec.args && ctx_push(ctx, "args", 0)) {
                for (size_t j = 0; j < n_conditions; j++) {
                        if (!ctx_push(ctx, NULL, j))
                                break;
                        r = parse_condition(ctx, json_array_get(spec.args, j), &conditions[j]);
                        if (r < 0)
                                result = r;
                        ctx->depth--;
                }
                ctx->depth--;
        }

        if (!spec.names)
                return result < 0 ? result : -EINVAL;
        if (json_array_size(spec.names) == 0)
                return problem_at_key(ctx, "names", "needs at least one syscall name");
        if (!ctx_push(ctx, "names", 0))
                return -EINVAL;
        for (size_t k = 0; k < json_array_size(spec.names); k++) {
                json_t *n = json_array_get(spec.names, k);
                if (!ctx_push(ctx, NULL, k))
                        break;
                if (!json_is_string(n))
                        result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                  "expected a syscall name string");
                else if (json_string_length(n) >= SECCOMP_SYSCALL_NAME_MAX)
                        result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                  "syscall name longer than %d bytes",
                                                  SECCOMP_SYSCALL_NAME_MAX - 1);
                else if (result >= 0) {
                        const char *name = json_string_value(n);
                        r = policy_add_rule(p, name, (enum seccomp_policy_action) spec.action,
                                            errno_value, conditions, n_conditions);
                        if (r == -ENOENT)
                                result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                          "unknown syscall \"%s\"", name);
                        else if (r == -EEXIST) {
                                char where[128];
                                describe_first_listing(syscalls, entry, name, where,
                                                       sizeof(where));
                                result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                          "syscall \"%s\" is already listed "
                                                          "at %s (a syscall may appear "
                                                          "twice only with \"args\" each time)",
                                                          name, where);
                        } else if (r == -E2BIG)
                                result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                          "more than %d syscall rules",
                                                          SECCOMP_POLICY_MAX_RULES);
                        else if (r < 0) {
                                ctx->depth -= 2;
                                return r;
                        }
                } else if (seccomp_syscall_resolve_name(json_string_value(n)) ==
                           __NR_SCMP_ERROR)
                        /* Earlier problems stop adding rules, not finding unknown names. */
                        result = json_ctx_problem(ctx, JSON_AT_VALUE, "unknown syscall \"%s\"",
                                                  json_string_value(n));
                ctx->depth--;
        }
        ctx->depth--;
        return result;
}

int seccomp_policy_parse(const char *source, const char *text, size_t len,
                         struct seccomp_policy **ret, struct json_problems *problems) {
        struct json_ctx ctx = {.source = source, .text = text, .text_len = len,
                               .problems = problems};
        json_t *root = json_parse_object(&ctx);
        if (!root)
                return -EINVAL;

        struct seccomp_policy *p = policy_new(source ? source : "<input>");
        if (!p) {
                json_decref(root);
                return -ENOMEM;
        }
        struct policy_spec spec = {.default_action = -1};
        int r = json_dispatch_object(&ctx, root, policy_fields, &spec);
        free(spec.description);
        if (spec.default_action >= 0) {
                p->default_action = (enum seccomp_policy_action) spec.default_action;
                if (spec.default_errno != 0 && p->default_action != SECCOMP_POLICY_ERRNO)
                        r = problem_at_key(&ctx, "errno",
                                           "\"errno\" only applies to the default_action "
                                           "\"errno\"");
                p->default_errno = spec.default_errno ? spec.default_errno : EPERM;
        }

        if (spec.syscalls && ctx_push(&ctx, "syscalls", 0)) {
                for (size_t i = 0; i < json_array_size(spec.syscalls); i++) {
                        if (!ctx_push(&ctx, NULL, i))
                                break;
                        int q = parse_rule(&ctx, spec.syscalls, i, p);
                        ctx.depth--;
                        if (q == -ENOMEM) {
                                r = q;
                                break;
                        }
                        if (q < 0)
                                r = q;
                }
                ctx.depth--;
        }

        /* The filter is installed before execve: a policy that denies it never starts. */
        if (r >= 0 && !seccomp_policy_may_allow(p, "execve"))
                r = problem_at_key(&ctx, spec.syscalls ? "syscalls" : "default_action",
                                   "the policy does not allow \"execve\", so the workload "
                                   "could never start");

        json_decref(root);
        if (r < 0) {
                seccomp_policy_free(p);
                return r;
        }
        *ret = p;
        return 0;
}



int seccomp_policy_load_file(const char *path, struct seccomp_policy **ret,
                             char **ret_message) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (ret_message)
                *ret_message = NULL;
        int r = read_file_bounded(path, SECCOMP_POLICY_FILE_MAX_SIZE, &text, &len);
        if (r < 0) {
                message_set(ret_message, 0, "%s: cannot read seccomp policy: %s", path,
                            r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
                return r;
        }

        _cleanup_free_ struct json_problems *problems = calloc(1, sizeof(*problems));
        if (!problems)
                return -ENOMEM;
        r = seccomp_policy_parse(path, text, len, ret, problems);
        if (r < 0 && ret_message)
                *ret_message = problems->count > 0 ? json_problems_to_message(path, problems)
                                                   : strdup("out of memory");
        return r;
}

int seccomp_policy_resolve(const char *name_or_path, struct seccomp_policy **ret,
                           char **ret_message) {
        if (ret_message)
                *ret_message = NULL;
        if (!name_or_path || !*name_or_path) {
                message_set(ret_message, 0, "empty seccomp policy name");
                return -EINVAL;
        }
        if (name_or_path[0] == '/')
                return seccomp_policy_load_file(name_or_path, ret, ret_message);
        int r = seccomp_policy_builtin(name_or_path, ret);
        if (r == -ENOENT)
                message_set(ret_message, 0,
                            "unknown seccomp policy \"%s\": use \"default\", \"strict\", "
                            "\"none\" or the absolute path of a JSON policy file",
                            name_or_path);
        else if (r < 0)
                message_set(ret_message, 0, "seccomp policy \"%s\": %s", name_or_path,
                            strerror(-r));
        return r;
}

/* ---- compiling and installing ------------------------------------------------------ */

/*
 * Kill the whole process where the kernel can (4.14+, libseccomp API level 3); older
 * kernels only kill the calling thread. Asked once, the answer never changes.
 */
static uint32_t kill_action(void) {
        static int level = -1;
        if (level < 0)
                level = (int) seccomp_api_get();
        return level >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_KILL;
}

static uint32_t action_to_scmp(enum seccomp_policy_action a, int errno_value) {
        switch (a) {
        case SECCOMP_POLICY_ALLOW: return SCMP_ACT_ALLOW;
        case SECCOMP_POLICY_ERRNO: return SCMP_ACT_ERRNO((uint32_t) errno_value);
        case SECCOMP_POLICY_KILL: return kill_action();
        case SECCOMP_POLICY_LOG: return SCMP_ACT_LOG;
        }
        return kill_action();
}

static enum scmp_compare op_to_scmp(enum seccomp_policy_op op) {
        switch (op) {
        case SECCOMP_POLICY_OP_EQ: return SCMP_CMP_EQ;
        case SECCOMP_POLICY_OP_NE: return SCMP_CMP_NE;
        case SECCOMP_POLICY_OP_LT: return SCMP_CMP_LT;
        case SECCOMP_POLICY_OP_LE: return SCMP_CMP_LE;
        case SECCOMP_POLICY_OP_GT: return SCMP_CMP_GT;
        case SECCOMP_POLICY_OP_GE: return SCMP_CMP_GE;
        case SECCOMP_POLICY_OP_MASKED_EQ: return SCMP_CMP_MASKED_EQ;
        }
        return _SCMP_CMP_MIN; /* rejected by libseccomp */
}

static void seccomp_releasep(scmp_filter_ctx *ctx) {
        if (*ctx)
                seccomp_release(*ctx);
}

/* Read the exported BPF back from the memfd into a heap buffer the program owns. */
static int read_back_bpf(int fd, struct sock_fprog *ret) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        size_t size = (size_t) st.st_size;
        if (size == 0 || size % sizeof(struct sock_filter) != 0 ||
            size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -E2BIG;
        _cleanup_free_ struct sock_filter *insns = malloc(size);
        if (!insns)
                return -ENOMEM;
        size_t done = 0;
        while (done < size) {
                ssize_t n = pread(fd, (char *) insns + done, size - done, (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                done += (size_t) n;
        }
        ret->len = (unsigned short) (size / sizeof(struct sock_filter));
        ret->filter = TAKE_PTR(insns);
        return 0;
}

int seccomp_policy_compile(const struct seccomp_policy *p, struct seccomp_program **ret) {
        if (!p->filter) {
                log_notice("seccomp policy \"%s\": no syscall filter for this workload", p->name);
                *ret = NULL;
                return 0;
        }

        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx =
                seccomp_init(action_to_scmp(p->default_action, p->default_errno));
        if (!ctx)
                return log_error_errno(-ENOMEM, "seccomp policy %s: seccomp_init", p->name);

        /* Another architecture's calls (i386 int 0x80, x32) get past no rule: kill. */
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, kill_action());
        /* We never seccomp_load(): the child sets no_new_privs itself, before installing. */
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return log_error_errno(r, "seccomp policy %s: setting filter attributes",
                                       p->name);
        /* Raw error codes only make messages clearer; older libseccomp lacks the knob. */
        (void) seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
        /* A binary tree keeps long allow-lists cheap; only an optimisation. */
        (void) seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

        uint32_t default_scmp = action_to_scmp(p->default_action, p->default_errno);
        for (size_t i = 0; i < p->n_rules; i++) {
                const struct seccomp_policy_rule *rule = &p->rules[i];
                /* Not a syscall of this architecture: nothing can call it. A rule that
                 * would deny it denies nothing here, while the C library reaches the same
                 * thing another way (aarch64 has no mkdir, open or rename: mkdirat,
                 * openat, renameat2): said, for a policy written on another board. */
                if (rule->number < 0) {
                        if (rule->action != SECCOMP_POLICY_ALLOW && p->default_action == SECCOMP_POLICY_ALLOW)
                                log_notice("seccomp policy %s: %s is no system call of this architecture: "
                                           "its rule denies nothing here (name its *at or newer form too)",
                                           p->name, rule->name);
                        continue;
                }
                uint32_t action = action_to_scmp(rule->action, rule->errno_value);
                /* Same as the default: libseccomp refuses it, and it changes nothing. */
                if (action == default_scmp)
                        continue;
                struct scmp_arg_cmp cmp[SECCOMP_POLICY_MAX_ARGS];
                for (size_t j = 0; j < rule->n_conditions; j++) {
                        const struct seccomp_policy_condition *c = &rule->conditions[j];
                        bool masked = c->op == SECCOMP_POLICY_OP_MASKED_EQ;
                        cmp[j] = (struct scmp_arg_cmp){
                                .arg = c->index,
                                .op = op_to_scmp(c->op),
                                .datum_a = masked ? c->mask : c->value,
                                .datum_b = masked ? c->value : 0,
                        };
                }
                r = seccomp_rule_add_array(ctx, action, rule->number,
                                           (unsigned) rule->n_conditions, cmp);
                if (r < 0)
                        return log_error_errno(r, "seccomp policy %s: adding the rule for %s",
                                               p->name, rule->name);
        }

        _cleanup_close_ int fd = memfd_create("orbit-seccomp-bpf", MFD_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "seccomp policy %s: memfd_create",
                                       p->name);
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return log_error_errno(r, "seccomp policy %s: exporting BPF", p->name);

        _cleanup_(seccomp_program_freep) struct seccomp_program *prog = calloc(1, sizeof(*prog));
        if (!prog || !(prog->policy_name = strdup(p->name)))
                return -ENOMEM;
        r = read_back_bpf(fd, &prog->prog);
        if (r < 0)
                return log_error_errno(r, "seccomp policy %s: reading back the BPF program",
                                       p->name);
        log_debug("seccomp policy %s: %zu rules, %u BPF instructions", p->name, p->n_rules,
                  prog->prog.len);
        *ret = TAKE_PTR(prog);
        return 0;
}

int seccomp_program_install(const struct seccomp_program *prog) {
        if (!prog)
                return 0;
        /* Without CAP_SYS_ADMIN the kernel accepts a filter only under no_new_privs. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0)
                return negative_errno();
        if (prctl(PR_SET_SECCOMP, (unsigned long) SECCOMP_MODE_FILTER, &prog->prog, 0UL, 0UL) <
            0)
                return negative_errno();
        return 0;
}

void seccomp_program_free(struct seccomp_program *prog) {
        if (!prog)
                return;
        free(prog->prog.filter);
        free(prog->policy_name);
        free(prog);
}
