/*
 * Seccomp policies for workloads: the built-in ones and strict JSON policy files, as plain
 * data; compiled to a BPF program in the agent, installed by the sandboxed child.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/filter.h>

#include "lib/json-util.h"

/* Fixed bounds on what a policy file may hold. */
#define SECCOMP_POLICY_FILE_MAX_SIZE (1024 * 1024)
#define SECCOMP_POLICY_MAX_ENTRIES 1024 /* objects in "syscalls" */
#define SECCOMP_POLICY_MAX_NAMES 512    /* names in one object */
#define SECCOMP_POLICY_MAX_RULES 2048   /* syscall rules in the whole policy */
#define SECCOMP_POLICY_MAX_ARGS 6       /* argument conditions in one rule */
#define SECCOMP_SYSCALL_NAME_MAX 64

enum seccomp_policy_action {
        SECCOMP_POLICY_ALLOW,
        SECCOMP_POLICY_ERRNO, /* fail the call with an errno, the process goes on */
        SECCOMP_POLICY_KILL,  /* kill the whole process (SIGSYS, as if not caught) */
        SECCOMP_POLICY_LOG,   /* allow, and log to the kernel audit log */
};

/* Comparison of one syscall argument, as libseccomp's SCMP_CMP_*. */
enum seccomp_policy_op {
        SECCOMP_POLICY_OP_EQ,
        SECCOMP_POLICY_OP_NE,
        SECCOMP_POLICY_OP_LT,
        SECCOMP_POLICY_OP_LE,
        SECCOMP_POLICY_OP_GT,
        SECCOMP_POLICY_OP_GE,
        SECCOMP_POLICY_OP_MASKED_EQ, /* (arg & mask) == value */
};

struct seccomp_policy_condition {
        unsigned index; /* 0..5 */
        enum seccomp_policy_op op;
        uint64_t value;
        uint64_t mask; /* only for SECCOMP_POLICY_OP_MASKED_EQ */
};

/*
 * One syscall and what happens when it is called. A syscall may have several rules only
 * if every one of them has conditions; the conditions of one rule must all hold.
 */
struct seccomp_policy_rule {
        char name[SECCOMP_SYSCALL_NAME_MAX];
        int number; /* native number; negative when the syscall does not exist here */
        enum seccomp_policy_action action;
        int errno_value; /* for SECCOMP_POLICY_ERRNO */
        struct seccomp_policy_condition conditions[SECCOMP_POLICY_MAX_ARGS];
        size_t n_conditions;
};

/* A parsed policy: plain data, owned by whoever holds the pointer. */
struct seccomp_policy {
        char *name;  /* "default", "strict", "none", or the file it came from */
        bool filter; /* false only for "none": no filter at all */
        enum seccomp_policy_action default_action;
        int default_errno; /* for SECCOMP_POLICY_ERRNO */
        struct seccomp_policy_rule *rules;
        size_t n_rules;
};

/* A compiled filter, ready for prctl(PR_SET_SECCOMP). prog.filter is owned by it. */
struct seccomp_program {
        struct sock_fprog prog;
        char *policy_name;
};

/*
 * Build one of the built-in policies: "default" (an allow-list for servers), "strict"
 * (batch jobs: no network sockets) or "none" (no filter). -ENOENT for any other name.
 */
int seccomp_policy_builtin(const char *name, struct seccomp_policy **ret);

/*
 * Pure: parse a JSON policy. source names it in problems ("file:line:column: key: what").
 * Returns -EINVAL with the problems recorded, -ENOMEM, or 0.
 */
int seccomp_policy_parse(const char *source, const char *text, size_t len,
                         struct seccomp_policy **ret, struct json_problems *problems);

/*
 * Read and parse a JSON policy file (at most SECCOMP_POLICY_FILE_MAX_SIZE). On failure
 * *ret_message (caller frees; may be NULL when out of memory) has one line per problem.
 */
int seccomp_policy_load_file(const char *path, struct seccomp_policy **ret, char **ret_message);

/*
 * What a workload spec names: an absolute path is a policy file, anything else a built-in
 * name. Unknown names fail with -ENOENT. On failure *ret_message says why (caller frees).
 */
int seccomp_policy_resolve(const char *name_or_path, struct seccomp_policy **ret,
                           char **ret_message);

/*
 * Pure: can a call of this syscall be allowed (or logged and allowed) by the policy, for
 * some arguments? True for every syscall of "none".
 */
bool seccomp_policy_may_allow(const struct seccomp_policy *p, const char *syscall_name);

/* Pure: the rule that names this syscall without conditions, or NULL. */
const struct seccomp_policy_rule *seccomp_policy_find_rule(const struct seccomp_policy *p,
                                                           const char *syscall_name);

void seccomp_policy_free(struct seccomp_policy *p);

/*
 * Compile a policy to BPF for the native architecture; calls of any other architecture
 * (i386 "int 0x80", x32 on x86_64) kill the process. For "none", *ret is NULL and 0 is
 * returned: no filter. Run it in the agent, before fork/clone, never in the child.
 */
int seccomp_policy_compile(const struct seccomp_policy *p, struct seccomp_program **ret);

/*
 * Install a compiled program in the calling thread: set no_new_privs, then the filter.
 * Async-signal-safe (two prctl calls, no allocation), for the child right before execve;
 * every syscall after it must be allowed by the policy. NULL installs nothing.
 * Returns 0 or a negative errno.
 */
int seccomp_program_install(const struct seccomp_program *prog);

void seccomp_program_free(struct seccomp_program *prog);

/* Pure: "EPERM" → EPERM for the errno names a policy may use; -EINVAL if unknown. */
int seccomp_errno_from_name(const char *name);

/* Pure: EPERM → "EPERM"; NULL if not one a policy may use. */
const char *seccomp_errno_to_name(int errno_value);

const char *seccomp_policy_action_to_string(enum seccomp_policy_action a);

static inline void seccomp_policy_freep(struct seccomp_policy **p) {
        seccomp_policy_free(*p);
}
static inline void seccomp_program_freep(struct seccomp_program **p) {
        seccomp_program_free(*p);
}
#define _cleanup_seccomp_policy_ _cleanup_(seccomp_policy_freep)
#define _cleanup_seccomp_program_ _cleanup_(seccomp_program_freep)
