/*
 * Device access of a workload's group: the v1 `devices` controller's allow list, and
 * for cgroup v2 a BPF_CGROUP_DEVICE program built here (no libbpf) and attached to the
 * group with the raw bpf(2) syscall. The program builder and the v1 line format are
 * pure and unit-tested; see docs/cgroups.md.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#include "runtime/cgroup-internal.h"
#include "lib/log.h"
#include "lib/macro.h"

const struct cgroup_device_rule cgroup_sandbox_devices[] = {
        {'c', 1, 3, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE}, /* null */
        {'c', 1, 5, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE}, /* zero */
        {'c', 1, 7, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE}, /* full */
        {'c', 1, 8, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE}, /* random */
        {'c', 1, 9, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE}, /* urandom */
        {'c', 5, 0, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE}, /* tty */
};
const size_t cgroup_n_sandbox_devices = ELEMENTSOF(cgroup_sandbox_devices);

static bool rule_is_valid(const struct cgroup_device_rule *r) {
        return (r->type == 'c' || r->type == 'b') && r->major >= -1 && r->major <= UINT32_MAX &&
               r->minor >= -1 && r->minor <= UINT32_MAX && r->access != 0 &&
               (r->access & ~(unsigned) (CGROUP_DEVICE_MKNOD | CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE)) == 0;
}

int cgroup_device_rule_format(const struct cgroup_device_rule *r, char *buf, size_t size) {
        if (!rule_is_valid(r))
                return -EINVAL;
        char major[24] = "*", minor[24] = "*";
        if (r->major >= 0)
                snprintf(major, sizeof(major), "%lld", (long long) r->major);
        if (r->minor >= 0)
                snprintf(minor, sizeof(minor), "%lld", (long long) r->minor);
        int n = snprintf(buf, size, "%c %s:%s %s%s%s", r->type, major, minor,
                         r->access & CGROUP_DEVICE_READ ? "r" : "", r->access & CGROUP_DEVICE_WRITE ? "w" : "",
                         r->access & CGROUP_DEVICE_MKNOD ? "m" : "");
        return n < 0 || (size_t) n >= size ? -ENOBUFS : 0;
}

/* ---- the BPF program ---------------------------------------------------------------- */

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

/*
 * The program gets struct bpf_cgroup_dev_ctx: access_type (type in the low 16 bits,
 * BPF_DEVCG_ACC_* in the high 16), major, minor. Registers: r2 type, r3 access, r4
 * major, r5 minor. Each rule is one block that jumps to the next block on any
 * mismatch and returns 1 when everything matched; after the last block, 0 (deny).
 * A request is allowed when its access bits are all in the rule's.
 */
int cgroup_device_program_build(const struct cgroup_device_rule *allow, size_t n,
                                struct bpf_insn *insns, size_t max) {
        size_t len = 0;
#define EMIT(x)                                  \
        do {                                     \
                struct bpf_insn _insn_ = (x);    \
                if (len >= max)                  \
                        return -E2BIG;           \
                insns[len] = _insn_;             \
                len++;                           \
        } while (0)
        EMIT(INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0));
        EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0));
        EMIT(INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff));
        EMIT(INSN(BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16));
        EMIT(INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, major), 0));
        EMIT(INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0));
        for (size_t i = 0; i < n; i++) {
                const struct cgroup_device_rule *r = &allow[i];
                if (!rule_is_valid(r))
                        return -EINVAL;
                /* Block: type check, major, minor, access subset, return 1. */
                size_t block = 1 + (r->major >= 0) + (r->minor >= 0) + 3 + 2;
                size_t start = len;
                /* Jump offsets count from the next instruction to the next block. */
#define TO_NEXT() ((short) (start + block - (len + 1)))
                EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, TO_NEXT(),
                          r->type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
                if (r->major >= 0)
                        EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, TO_NEXT(), (int32_t) r->major));
                if (r->minor >= 0)
                        EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, TO_NEXT(), (int32_t) r->minor));
                EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_0, BPF_REG_3, 0, 0));
                EMIT(INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_0, 0, 0, (int32_t) ~r->access & 0xffff));
                EMIT(INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_0, 0, TO_NEXT(), 0));
                EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1));
                EMIT(INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
#undef TO_NEXT
        }
        EMIT(INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0));
        EMIT(INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
#undef EMIT
        return (int) len;
}

/* ---- v2: load and attach ----------------------------------------------------------- */

static int bpf(int cmd, union bpf_attr *attr) {
        long r = syscall(SYS_bpf, cmd, attr, sizeof(*attr));
        return r < 0 ? -errno : (int) r;
}

int cgroup_device_program_attach(const char *group_dir, const struct cgroup_device_rule *allow, size_t n) {
        struct bpf_insn insns[CGROUP_DEVICE_MAX_RULES * 10 + 8];
        if (n > CGROUP_DEVICE_MAX_RULES)
                return log_error_errno(E2BIG, "cgroup: %s: more than %d device rules", group_dir,
                                       CGROUP_DEVICE_MAX_RULES);
        int len = cgroup_device_program_build(allow, n, insns, ELEMENTSOF(insns));
        if (len < 0)
                return log_error_errno(len, "cgroup: %s: build the device program", group_dir);

        char verifier_log[1024] = "";
        union bpf_attr load = {0};
        load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        load.insns = (uint64_t) (uintptr_t) insns;
        load.insn_cnt = (uint32_t) len;
        load.license = (uint64_t) (uintptr_t) "GPL";
        load.log_buf = (uint64_t) (uintptr_t) verifier_log;
        load.log_size = sizeof(verifier_log);
        load.log_level = 1;
        int prog = bpf(BPF_PROG_LOAD, &load);
        if (prog < 0) {
                /* Retry without a log: a full log buffer alone fails the load (ENOSPC). */
                load.log_buf = 0;
                load.log_size = 0;
                load.log_level = 0;
                prog = bpf(BPF_PROG_LOAD, &load);
        }
        if (prog < 0)
                return log_error_errno(prog, "cgroup: %s: load the device program (bpf BPF_PROG_LOAD)%s%s",
                                       group_dir, *verifier_log ? ": " : "", verifier_log);
        int dir = open(group_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) {
                int r = -errno;
                close(prog);
                return log_error_errno(r, "cgroup: open %s", group_dir);
        }
        /* No BPF_F_ALLOW_MULTI/OVERRIDE: attaching again (a restart) replaces the program,
         * and nothing below the group can add one. */
        union bpf_attr attach = {0};
        attach.target_fd = (uint32_t) dir;
        attach.attach_bpf_fd = (uint32_t) prog;
        attach.attach_type = BPF_CGROUP_DEVICE;
        attach.attach_flags = 0;
        int r = bpf(BPF_PROG_ATTACH, &attach);
        close(dir);
        close(prog); /* the attachment keeps the program */
        if (r < 0)
                return log_error_errno(r, "cgroup: %s: attach the device program (bpf BPF_PROG_ATTACH)", group_dir);
        return 0;
}

/* ---- v1: the devices controller ------------------------------------------------------ */

int cgroup_device_v1_apply(const char *group_dir, const struct cgroup_device_rule *allow, size_t n) {
        /* Deny everything first ("a" = all devices, all access), then allow the list. */
        int r = cgroup_write(group_dir, "devices.deny", "a");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                char line[64];
                r = cgroup_device_rule_format(&allow[i], line, sizeof(line));
                if (r < 0)
                        return log_error_errno(r, "cgroup: %s: device rule %zu", group_dir, i);
                r = cgroup_write(group_dir, "devices.allow", line);
                if (r < 0)
                        return r;
        }
        return 0;
}
