/*
 * Benchmark: sandbox start latency of orbit-agent's sandbox with its hardened defaults
 * (exec'd init, a user namespace on its own host id slice, the default seccomp filter,
 * /proc masks, a cgroup with its limits and device rules applied at every start, as the
 * runtime does) against bubblewrap with the same namespaces (user included) and binds,
 * measured interleaved in the same run. Prints p50/p99 in milliseconds.
 */
#include "config.h"

#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "runtime/id-range.h"
#include "lib/log.h"
#include "runtime/sandbox.h"
#include "runtime/seccomp-policy.h"
#include "runtime/workload-spec.h"

static const char spec_json[] =
        "{\"name\": \"bench\", \"exec\": [\"/bin/true\"],"
        " \"sandbox\": {\"ro_binds\": [\"/usr\", \"/bin\", \"/lib\", {\"source\": \"/lib64\", \"optional\": true}]}}";

/* The runtime's prestart: attach the sandbox's first process to the workload's cgroup. */
static int attach(pid_t pid, void *userdata) {
        return cgroup_attach_pid(userdata, pid);
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n) {
        qsort(v, (size_t) n, sizeof(uint64_t), cmp_u64);
        double p50 = (double) v[n / 2] / 1e6, p99 = (double) v[(n * 99) / 100 - (n >= 100 ? 0 : 0)] / 1e6;
        if ((n * 99) / 100 >= n)
                p99 = (double) v[n - 1] / 1e6;
        printf("%-44s p50 %7.3f ms   p99 %7.3f ms   (n=%d)\n", what, p50, p99, n);
}

int main(int argc, char *argv[]) {
        int n = argc > 1 ? atoi(argv[1]) : 200;
        const char *bwrap = argc > 2 ? argv[2] : "/usr/bin/bwrap";
        if (n < 10 || n > 100000) {
                fprintf(stderr, "usage: bench-sandbox-start [RUNS>=10] [BWRAP]\n");
                return 2;
        }
        log_setup("bench", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);

        struct workload_spec spec;
        struct json_problems ps = {0};
        if (workload_spec_parse("bench", spec_json, strlen(spec_json), &spec, &ps) < 0)
                return 1;
        workload_spec_apply_defaults(&spec, NULL);
        struct seccomp_policy *policy = NULL;
        struct seccomp_program *prog = NULL;
        char *msg = NULL;
        if (seccomp_policy_resolve("default", &policy, &msg) < 0 || seccomp_policy_compile(policy, &prog) < 0) {
                fprintf(stderr, "seccomp: %s\n", msg ? msg : "?");
                return 1;
        }
        char root[] = "/tmp/orbit-bench-XXXXXX";
        if (!mkdtemp(root))
                return 1;

        uint64_t *to_exec = calloc((size_t) n, sizeof(uint64_t));
        uint64_t *to_exit = calloc((size_t) n, sizeof(uint64_t));
        uint64_t *bw = calloc((size_t) n, sizeof(uint64_t));
        if (!to_exec || !to_exit || !bw)
                return 1;

        /* A cgroup under a bench parent, as the runtime makes one per workload. */
        char parent[64];
        snprintf(parent, sizeof(parent), "orbit-bench-%d", (int) getpid());
        struct cgroup_manager *cgm = NULL;
        struct cgroup *cg = NULL;
        if (cgroup_manager_new("/sys/fs/cgroup", parent, 0, &cgm) < 0 || cgroup_create(cgm, "bench", &cg) < 0) {
                fprintf(stderr, "cannot create the bench cgroup under /sys/fs/cgroup/.../%s (root?)\n", parent);
                return 1;
        }
        const struct cgroup_limits limits = {
                .memory_max = (uint64_t) spec.resources.memory_max,
                .pids_max = (uint64_t) spec.resources.pids_max,
        };
        bool devices = true;

        struct sandbox_params p = {
                .spec = &spec, .root_dir = root, .seccomp = &prog->prog,
                .init_path = SANDBOX_INIT_BUILD_PATH,
                .stdout_fd = -1, .stderr_fd = -1, .stdout_read_fd = -1, .stderr_read_fd = -1,
                /* a user namespace by default: the default pool's last slice */
                .host_id_base = ID_RANGE_DEFAULT_START + ID_RANGE_DEFAULT_COUNT - ID_RANGE_DEFAULT_SIZE,
                .host_id_count = ID_RANGE_DEFAULT_SIZE,
                .prestart = attach,
                .prestart_userdata = cg,
        };
        /* Interleave the two so machine noise hits both alike. */
        for (int i = 0; i < n; i++) {
                uint64_t t0 = now_ns();
                /* What the runtime does at every start: limits, device rules, then spawn. */
                if (cgroup_apply_limits(cg, &limits) < 0) {
                        fprintf(stderr, "cgroup limits refused\n");
                        return 1;
                }
                if (devices && cgroup_restrict_devices(cg, cgroup_sandbox_devices, cgroup_n_sandbox_devices) == -EOPNOTSUPP)
                        devices = false;
                struct sandbox_process proc;
                struct sandbox_error err = {0};
                if (sandbox_spawn(&p, &proc, &err) < 0) {
                        fprintf(stderr, "spawn: %s: %s\n", err.message, strerror(err.error));
                        return 1;
                }
                uint64_t t1 = now_ns();
                int st;
                while (waitpid(proc.pid, &st, 0) < 0 && errno == EINTR)
                        ;
                uint64_t t2 = now_ns();
                st = sandbox_collect_status(&proc, st);
                sandbox_process_close(&proc);
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        fprintf(stderr, "orbit sandbox run %d: status 0x%x\n", i, (unsigned) st);
                        return 1;
                }
                to_exec[i] = t1 - t0;
                to_exit[i] = t2 - t0;

                t0 = now_ns();
                pid_t pid = fork();
                if (pid == 0) {
                        execl(bwrap, "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                              "--unshare-net", "--unshare-cgroup", "--ro-bind", "/usr", "/usr",
                              "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                              "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
                              "--cap-drop", "ALL", "--new-session", "--die-with-parent",
                              "/bin/true", (char *) NULL);
                        _exit(127);
                }
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                bw[i] = now_ns() - t0;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        fprintf(stderr, "bwrap run %d: status 0x%x (is bubblewrap installed?)\n", i, (unsigned) st);
                        return 1;
                }
        }
        rmdir(root);

        printf("sandbox start latency, /bin/true, namespaces user+pid+mount+ipc+uts+net+cgroup, %d runs\n", n);
        printf("orbit-agent: exec'd init, user namespace (host ids %u+), default seccomp, /proc masks, "
               "cgroup limits%s at every start\n", p.host_id_base, devices ? " and device rules" : " (no device cgroup here)");
        report("orbit-agent: spawn to exec (what start waits)", to_exec, n);
        report("orbit-agent: spawn to exit", to_exit, n);
        report("bwrap (same namespaces): fork to exit", bw, n);
        double ratio = (double) to_exit[n / 2] / (double) bw[n / 2];
        printf("ratio orbit/bwrap at p50 (spawn to exit): %.2f (goal <= 0.70: %s)\n", ratio,
               ratio <= 0.70 ? "met" : "NOT met");
        cgroup_destroy(cg);
        cgroup_free(cg);
        cgroup_manager_free(cgm);
        /* and the bench parent in each hierarchy */
        glob_t g;
        char pattern[128];
        snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/*/%s", parent);
        if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc; i++)
                        (void) rmdir(g.gl_pathv[i]);
                globfree(&g);
        }
        snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/%s", parent);
        (void) rmdir(pattern);
        free(to_exec);
        free(to_exit);
        free(bw);
        seccomp_program_free(prog);
        seccomp_policy_free(policy);
        workload_spec_free(&spec);
        return 0;
}
