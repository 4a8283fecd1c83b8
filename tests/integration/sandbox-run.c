/* Test helper: run one workload spec in a sandbox, wait, and print how it ended. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/id-range.h"
#include "lib/log.h"
#include "runtime/sandbox.h"
#include "runtime/seccomp-policy.h"
#include "runtime/workload-spec.h"

/* --prestart-wait-exit: the cgroup attach (the prestart) outlasts a child that fails while
 * it builds its root: the release after the attach then meets a child already gone. */
static int prestart_wait_exit(pid_t pid, void *userdata) {
        (void) userdata;
        siginfo_t si;
        while (waitid(P_PID, (id_t) pid, &si, WEXITED | WNOWAIT) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static const char *init_path(void) {
        const char *p = getenv("ORBIT_SANDBOX_INIT");
        return p && *p ? p : SANDBOX_INIT_BUILD_PATH;
}

int main(int argc, char *argv[]) {
        const char *leak = NULL;
        bool wait_exit = false;
        /* The user namespace's host ids: the default pool's last slice unless told. */
        unsigned long id_base = ID_RANGE_DEFAULT_START + ID_RANGE_DEFAULT_COUNT - ID_RANGE_DEFAULT_SIZE;
        int i = 1;
        for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
                if (streq(argv[i], "--leak-fd") && i + 1 < argc)
                        leak = argv[++i];
                else if (streq(argv[i], "--ids") && i + 1 < argc)
                        id_base = strtoul(argv[++i], NULL, 10);
                else if (streq(argv[i], "--prestart-wait-exit"))
                        wait_exit = true;
                else {
                        fprintf(stderr, "usage: sandbox-run [--leak-fd PATH] [--ids HOST_BASE] [--prestart-wait-exit] SPEC.json ROOT_DIR\n");
                        return 2;
                }
        }
        if (argc - i != 2) {
                fprintf(stderr, "usage: sandbox-run [--leak-fd PATH] [--ids HOST_BASE] [--prestart-wait-exit] SPEC.json ROOT_DIR\n");
                return 2;
        }
        log_setup("sandbox-run", LOG_TARGET_STDERR);

        struct workload_spec spec;
        char *msg = NULL;
        if (workload_spec_load_file(argv[i], &spec, &msg) < 0) {
                fprintf(stderr, "spec error: %s\n", msg ? msg : "?");
                free(msg);
                return 2;
        }
        workload_spec_apply_defaults(&spec, NULL); /* as the agent does, with its built-in defaults */

        /* A descriptor the agent holds without close-on-exec must not reach the workload. */
        if (leak) {
                int fd = open(leak, O_RDONLY); /* deliberately without O_CLOEXEC */
                if (fd < 0 || dup2(fd, 7) < 0) {
                        perror("leak fd");
                        return 2;
                }
        }

        /* The spec's seccomp policy, compiled here as the agent does (none when unset). */
        struct seccomp_program *prog = NULL;
        if (spec.sandbox.seccomp) {
                struct seccomp_policy *policy = NULL;
                char *pmsg = NULL;
                if (seccomp_policy_resolve(spec.sandbox.seccomp, &policy, &pmsg) < 0 ||
                    seccomp_policy_compile(policy, &prog) < 0) {
                        fprintf(stderr, "start failed: seccomp policy: %s\n", pmsg ? pmsg : "?");
                        return 3;
                }
                free(pmsg);
                seccomp_policy_free(policy);
        }

        struct sandbox_params p = {
                .seccomp = prog ? &prog->prog : NULL,
                .spec = &spec,
                .root_dir = argv[i + 1],
                /* the build tree's, not the installed one; the virtual board runs this
                 * binary against the installed one (ORBIT_SANDBOX_INIT, docs/board.md) */
                .init_path = init_path(),
                .stdout_fd = 1,
                .stderr_fd = 2,
                .stdout_read_fd = -1,
                .stderr_read_fd = -1,
                .host_id_base = (uint32_t) id_base,
                .host_id_count = ID_RANGE_DEFAULT_SIZE,
                .prestart = wait_exit ? prestart_wait_exit : NULL,
        };
        char emsg[256];
        if (sandbox_resolve_ids(&spec, &p.uid, &p.gid, emsg, sizeof(emsg)) < 0) {
                fprintf(stderr, "start failed: %s\n", emsg);
                workload_spec_free(&spec);
                return 3;
        }
        struct sandbox_process proc;
        struct sandbox_error err = {0};
        int r = sandbox_spawn(&p, &proc, &err);
        if (r < 0) {
                fprintf(stderr, "start failed: %s: %s\n", err.message, strerror(err.error));
                workload_spec_free(&spec);
                return 3;
        }
        int st;
        while (waitpid(proc.pid, &st, 0) < 0)
                if (errno != EINTR) {
                        perror("waitpid");
                        return 2;
                }
        st = sandbox_collect_status(&proc, st);
        sandbox_process_close(&proc);
        seccomp_program_free(prog);
        workload_spec_free(&spec);
        if (WIFEXITED(st)) {
                fprintf(stderr, "exit=%d\n", WEXITSTATUS(st));
                return WEXITSTATUS(st);
        }
        fprintf(stderr, "signal=%d\n", WTERMSIG(st));
        return 128 + WTERMSIG(st);
}
