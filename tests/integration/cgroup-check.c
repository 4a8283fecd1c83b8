/*
 * Integration checks of runtime/cgroup on the real kernel, one scenario per run:
 * "cgroup-check SCENARIO ROOT PARENT" exits 0 (pass), 1 (fail) or 77 (skip).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "lib/log.h"
#include "lib/macro.h"

#define MIB (1024ULL * 1024)

static const char *root, *parent;
static int failures;

#define CHECK(cond, ...)                                                                           \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        printf("# FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
                        printf(__VA_ARGS__);                                                       \
                        printf("\n");                                                              \
                        failures++;                                                                \
                }                                                                                  \
        } while (0)

/* Setup that must work for the rest to make sense; cond is evaluated once. */
#define REQUIRE(cond, ...)                                                                         \
        do {                                                                                       \
                bool _ok_ = (cond);                                                                \
                CHECK(_ok_, __VA_ARGS__);                                                          \
                if (!_ok_)                                                                         \
                        return;                                                                    \
        } while (0)

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/*
 * How long a wait for an event (processes appearing, dying, a group emptying) may take
 * before it counts as never: long, since a loaded machine or a TCG guest reaps slowly; the
 * waits end as soon as the event is there.
 */
#define EVENT_WAIT_USEC (30 * 1000000ULL)

static void sleep_ms(unsigned ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- children ----------------------------------------------------------------------- */

enum action {
        ACTION_PAUSE,
        ACTION_BUSY,
        ACTION_ALLOC_64M,
        ACTION_FORK_MANY,
        ACTION_FORK_3_AND_PAUSE,
        ACTION_OPEN_DEVICES,
};

/*
 * Devices the group may and may not open, with the errno of each open as exit-code bits:
 * bit 0 /dev/null rw failed, bit 1 /dev/urandom r failed, bit 2 /dev/kmsg r was not EPERM,
 * bit 3 /dev/mem r was not EPERM, bit 4 /dev/loop-control rw was not EPERM (when present).
 */
static int open_errno(const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC);
        if (fd < 0)
                return errno;
        close(fd);
        return 0;
}

static int open_devices(void) {
        int bits = 0;
        if (open_errno("/dev/null", O_RDWR) != 0)
                bits |= 1;
        if (open_errno("/dev/urandom", O_RDONLY) != 0)
                bits |= 2;
        if (open_errno("/dev/kmsg", O_RDONLY) != EPERM)
                bits |= 4;
        if (access("/dev/mem", F_OK) == 0 && open_errno("/dev/mem", O_RDONLY) != EPERM)
                bits |= 8;
        if (access("/dev/loop-control", F_OK) == 0 &&
            open_errno("/dev/loop-control", O_RDWR) != EPERM)
                bits |= 16;
        return bits;
}

static void child_run(enum action action) {
        switch (action) {
        case ACTION_PAUSE:
                for (;;)
                        pause();
        case ACTION_BUSY: {
                volatile uint64_t n = 0;
                for (;;)
                        n++;
        }
        case ACTION_ALLOC_64M: {
                /* Touch every page so it is charged; the OOM killer should stop us. */
                for (unsigned i = 0; i < 64; i++) {
                        char *p = malloc(MIB);
                        if (!p)
                                _exit(2);
                        memset(p, 0x5a, MIB);
                }
                _exit(0);
        }
        case ACTION_FORK_MANY: {
                /* Exit code: forks that worked; 255 if a fork failed other than EAGAIN. */
                int n = 0;
                for (; n < 200; n++) {
                        pid_t p = fork();
                        if (p < 0)
                                _exit(errno == EAGAIN ? n : 255);
                        if (p == 0)
                                for (;;)
                                        pause();
                }
                _exit(n);
        }
        case ACTION_OPEN_DEVICES:
                _exit(open_devices());
        case ACTION_FORK_3_AND_PAUSE:
                for (int i = 0; i < 3; i++)
                        if (fork() == 0)
                                break;
                for (;;)
                        pause();
        }
        _exit(3);
}

/* Fork a child that waits until it is in the group, then runs action. */
static pid_t spawn_in(struct cgroup *cg, enum action action) {
        int p[2];
        if (pipe(p) < 0)
                return -1;
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                char c;
                close(p[1]);
                if (read(p[0], &c, 1) != 1)
                        _exit(4);
                close(p[0]);
                child_run(action);
        }
        close(p[0]);
        int r = cgroup_attach_pid(cg, pid);
        if (r < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                close(p[1]);
                return -1;
        }
        if (write(p[1], "g", 1) != 1) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                close(p[1]);
                return -1;
        }
        close(p[1]);
        return pid;
}

/* Wait for our child up to timeout_ms; 0 and *status, or -ETIMEDOUT (then it is killed). */
static int wait_child(pid_t pid, unsigned timeout_ms, int *status) {
        uint64_t deadline = now_usec() + (uint64_t) timeout_ms * 1000;
        for (;;) {
                pid_t r = waitpid(pid, status, WNOHANG);
                if (r == pid)
                        return 0;
                if (r < 0)
                        return -errno;
                if (now_usec() >= deadline)
                        break;
                sleep_ms(10);
        }
        kill(pid, SIGKILL);
        waitpid(pid, status, 0);
        return -ETIMEDOUT;
}

/* Reap whatever exited (we are a subreaper, so grandchildren come to us). */
static void reap_all(void) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

/* Kill, wait empty, destroy: the teardown every scenario ends with. */
static void teardown(struct cgroup *cg) {
        if (!cg)
                return;
        int r = cgroup_kill_all(cg, SIGKILL);
        CHECK(r >= 0, "kill_all: %s", strerror(-r));
        uint64_t deadline = now_usec() + EVENT_WAIT_USEC;
        while (cgroup_is_empty(cg) == 0 && now_usec() < deadline) {
                reap_all();
                sleep_ms(10);
        }
        reap_all();
        r = cgroup_wait_empty(cg, EVENT_WAIT_USEC);
        CHECK(r == 0, "wait_empty: %s", strerror(-r));
        r = cgroup_destroy(cg);
        CHECK(r == 0, "destroy %s: %s", cgroup_path(cg), strerror(-r));
        CHECK(access(cgroup_path(cg), F_OK) < 0, "%s still exists", cgroup_path(cg));
        cgroup_free(cg);
}

static struct cgroup_manager *manager(unsigned flags) {
        struct cgroup_manager *m;
        int r = cgroup_manager_new(root, parent, flags, &m);
        if (r < 0) {
                printf("# manager for %s: %s\n", root, strerror(-r));
                return NULL;
        }
        return m;
}

static int stats(struct cgroup *cg, struct cgroup_stats *st) {
        int r = cgroup_get_stats(cg, st);
        CHECK(r == 0, "stats of %s: %s", cgroup_path(cg), strerror(-r));
        return r;
}

/*
 * Poll the group's counters until at least periods CFS periods went by since *from, in
 * at least one of which the group ran out of quota, and *to holds the counters then.
 * Both are the kernel's own events; the clock only bounds a wait that would otherwise
 * hang (the scenario's timeout is 120 s, times ORBIT_TEST_SLOW).
 */
static int wait_throttled(struct cgroup *cg, const struct cgroup_stats *from, uint64_t periods,
                          struct cgroup_stats *to) {
        uint64_t deadline = now_usec() + 40 * 1000000ULL;
        for (;;) {
                if (stats(cg, to) < 0)
                        return -EIO;
                if (to->cpu_periods >= from->cpu_periods + periods &&
                    to->cpu_throttled > from->cpu_throttled)
                        return 0;
                if (now_usec() > deadline)
                        return -ETIMEDOUT;
                sleep_ms(50);
        }
}

/*
 * A limit of quota per period holds when, over the n periods that elapsed between two
 * readings, the group used no more than n quotas, plus what the bandwidth accounting may
 * lend at the edges: one quota of the period in course, a slice held by each CPU's run
 * queue (5 ms by default) and one scheduler tick of overrun that the next period repays.
 */
static uint64_t cpu_bound_usec(const struct cgroup_stats *a, const struct cgroup_stats *b) {
        uint64_t n = b->cpu_periods - a->cpu_periods;
        return (n + 2) * b->cpu_quota_usec + 5000 * (uint64_t) sysconf(_SC_NPROCESSORS_ONLN) +
               10000;
}

/*
 * Check the limit in force is percent of a core, and that the kernel held the group to it.
 * The usage and the periods come from two files (v1: two controllers), read one after the
 * other: each end of the window is read twice, and the periods taken from the reading
 * outside the usage's, so that the n periods counted cover the whole span the usage was
 * counted over, however long this process was preempted between two reads.
 */
static void check_cpu_limit(struct cgroup *cg, uint64_t percent) {
        struct cgroup_stats a0, a, b, b1;
        if (stats(cg, &a0) < 0 || stats(cg, &a) < 0)
                return;
        a.cpu_periods = a0.cpu_periods;
        CHECK(a.cpu_period_usec == 100000 && a.cpu_quota_usec == percent * 1000,
              "the kernel holds quota %llu per period %llu, want %llu per 100000",
              (unsigned long long) a.cpu_quota_usec, (unsigned long long) a.cpu_period_usec,
              (unsigned long long) percent * 1000);
        int r = wait_throttled(cg, &a, 10, &b);
        CHECK(r == 0,
              "at %llu%%: in 40 s, no 10 periods with a throttled one (periods %llu -> "
              "%llu, throttled %llu -> %llu)",
              (unsigned long long) percent, (unsigned long long) a.cpu_periods,
              (unsigned long long) b.cpu_periods, (unsigned long long) a.cpu_throttled,
              (unsigned long long) b.cpu_throttled);
        if (r < 0 || stats(cg, &b1) < 0)
                return;
        b.cpu_periods = b1.cpu_periods;
        uint64_t used = b.cpu_usage_usec - a.cpu_usage_usec, bound = cpu_bound_usec(&a, &b);
        uint64_t n = b.cpu_periods - a.cpu_periods;
        printf("# busy loop at cpu_max %llu%%: %llu us used in %llu periods (%.1f%% of one core by "
               "the kernel's periods; %llu throttled), bound %llu us\n",
               (unsigned long long) percent, (unsigned long long) used, (unsigned long long) n,
               100.0 * (double) used / (double) (n * b.cpu_period_usec),
               (unsigned long long) (b.cpu_throttled - a.cpu_throttled),
               (unsigned long long) bound);
        CHECK(used <= bound, "%llu us used in %llu periods of %llu us quota: above the bound %llu",
              (unsigned long long) used, (unsigned long long) n,
              (unsigned long long) b.cpu_quota_usec, (unsigned long long) bound);
}

/* This process's own CPU time, in microseconds. */
static uint64_t own_cpu_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/*
 * Run on the CPU until this process got usec of CPU time: an interval in which the
 * scheduler demonstrably ran a busy process, however loaded the machine is.
 */
static void burn_cpu(uint64_t usec) {
        uint64_t until = own_cpu_usec() + usec;
        volatile uint64_t n = 0;
        while (own_cpu_usec() < until)
                n++;
}

/* ---- scenarios ---------------------------------------------------------------------- */

static void scenario_memory(void) {
        struct cgroup_manager *m = manager(0);
        REQUIRE(m, "no manager");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "mem", &cg) == 0, "create");
        struct cgroup_limits l = {.memory_max = 32 * MIB, .pids_max = 16, .io_weight = 200};
        int r = cgroup_apply_limits(cg, &l);
        CHECK(r >= 0, "apply_limits: %s", strerror(-r));
        if (r & CGROUP_SKIPPED_IO_WEIGHT)
                printf("# io_weight skipped: no io.weight / blkio.weight here\n");
        if (r & CGROUP_SKIPPED_NO_SWAP)
                printf("# no swap limit: no memory.swap.max / memsw here\n");

        pid_t pid = spawn_in(cg, ACTION_ALLOC_64M);
        CHECK(pid > 0, "spawn");
        if (pid > 0) {
                int status = 0;
                r = wait_child(pid, 20000, &status);
                CHECK(r == 0, "child did not finish");
                CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "child status 0x%x, want killed by SIGKILL", status);
                struct cgroup_stats st;
                r = cgroup_get_stats(cg, &st);
                CHECK(r == 0, "stats: %s", strerror(-r));
                CHECK(st.oom_kills >= 1, "oom_kills %llu", (unsigned long long) st.oom_kills);
                CHECK(st.memory_peak <= 32 * MIB + 4096, "peak %llu above the limit",
                      (unsigned long long) st.memory_peak);
                printf("# oom_kills %llu, memory peak %llu KiB\n",
                       (unsigned long long) st.oom_kills,
                       (unsigned long long) st.memory_peak / 1024);
        }
        teardown(cg);
        cgroup_manager_free(m);
}

static void scenario_pids(void) {
        struct cgroup_manager *m = manager(0);
        REQUIRE(m, "no manager");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "pids", &cg) == 0, "create");
        struct cgroup_limits l = {.pids_max = 8};
        int r = cgroup_apply_limits(cg, &l);
        CHECK(r == 0, "apply_limits: %d", r);
        pid_t pid = spawn_in(cg, ACTION_FORK_MANY);
        CHECK(pid > 0, "spawn");
        if (pid > 0) {
                int status = 0;
                r = wait_child(pid, 10000, &status);
                CHECK(r == 0, "child did not finish");
                CHECK(WIFEXITED(status), "status 0x%x", status);
                int forks = WEXITSTATUS(status);
                /* The child itself is one of the 8. */
                CHECK(forks == 7, "forked %d before EAGAIN, want 7 (255: other errno)", forks);
                printf("# forks before EAGAIN: %d (pids_max 8)\n", forks);
                struct cgroup_stats st;
                CHECK(cgroup_get_stats(cg, &st) == 0, "stats");
                CHECK(st.pids_current == 7, "pids_current %llu, want the 7 grandchildren",
                      (unsigned long long) st.pids_current);
        }
        teardown(cg);
        cgroup_manager_free(m);
}

static void scenario_cpu(void) {
        struct cgroup_manager *m = manager(0);
        REQUIRE(m, "no manager");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "cpu", &cg) == 0, "create");
        struct cgroup_limits l = {.cpu_max_percent = 20, .cpu_weight = 100};
        int r = cgroup_apply_limits(cg, &l);
        CHECK(r == 0, "apply_limits: %d", r);
        pid_t pid = spawn_in(cg, ACTION_BUSY);
        CHECK(pid > 0, "spawn");
        if (pid > 0) {
                check_cpu_limit(cg, 20);
                /* Throttle: lower the limit on the running workload. */
                l.cpu_max_percent = 5;
                r = cgroup_apply_limits(cg, &l);
                CHECK(r == 0, "throttle: %d", r);
                check_cpu_limit(cg, 5);
        }
        teardown(cg);
        cgroup_manager_free(m);
}

/*
 * Freeze stops the clock of a busy process: while this process gets 200 ms of CPU, the
 * frozen group gets none. Thaw starts it again: its usage grows.
 */
static void check_freeze_thaw(struct cgroup *cg) {
        int r = cgroup_set_frozen(cg, true);
        CHECK(r == 0, "freeze: %s", strerror(-r));
        struct cgroup_stats a, b;
        REQUIRE(stats(cg, &a) == 0, "stats");
        CHECK(a.frozen, "stats do not say frozen");
        burn_cpu(200000);
        REQUIRE(stats(cg, &b) == 0, "stats");
        printf("# frozen: %llu us used while this process used 200000 us\n",
               (unsigned long long) (b.cpu_usage_usec - a.cpu_usage_usec));
        CHECK(b.cpu_usage_usec - a.cpu_usage_usec < 1000, "frozen group used %llu us",
              (unsigned long long) (b.cpu_usage_usec - a.cpu_usage_usec));

        r = cgroup_set_frozen(cg, false);
        CHECK(r == 0, "thaw: %s", strerror(-r));
        REQUIRE(stats(cg, &a) == 0, "stats");
        CHECK(!a.frozen, "stats still say frozen");
        /* Thawed, it runs: wait for 100 ms of use (the clock only bounds the wait). */
        uint64_t deadline = now_usec() + 40 * 1000000ULL;
        while (stats(cg, &b) == 0 && b.cpu_usage_usec < a.cpu_usage_usec + 100000 &&
               now_usec() < deadline)
                sleep_ms(20);
        printf("# thawed: %llu us used since the thaw\n",
               (unsigned long long) (b.cpu_usage_usec - a.cpu_usage_usec));
        CHECK(b.cpu_usage_usec >= a.cpu_usage_usec + 100000,
              "thawed group used only %llu us in 40 s",
              (unsigned long long) (b.cpu_usage_usec - a.cpu_usage_usec));
}

static void scenario_freeze(unsigned flags) {
        struct cgroup_manager *m = manager(flags);
        REQUIRE(m, "no manager");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "freeze", &cg) == 0, "create");
        pid_t pid = spawn_in(cg, ACTION_BUSY);
        CHECK(pid > 0, "spawn");
        if (pid > 0) {
                /* Running first, so that the freeze stops a process that ran. */
                struct cgroup_stats st;
                uint64_t deadline = now_usec() + 40 * 1000000ULL;
                while (stats(cg, &st) == 0 && st.cpu_usage_usec < 10000 && now_usec() < deadline)
                        sleep_ms(20);
                check_freeze_thaw(cg);
        }
        teardown(cg);
        cgroup_manager_free(m);
}

/*
 * Only the sandbox's device nodes can be opened from the group: on v1 through the
 * devices controller, on v2 through the BPF program (any cgroup2 tree, no controller).
 * The same opens succeed from outside the group, so the refusals are the group's doing.
 */
static void scenario_devices(unsigned flags) {
        int outside_kmsg = open_errno("/dev/kmsg", O_RDONLY);
        REQUIRE(outside_kmsg == 0,
                "outside the group /dev/kmsg must open (got %s), or the check proves nothing",
                strerror(outside_kmsg));
        struct cgroup_manager *m = manager(flags);
        REQUIRE(m, "no manager");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "devices", &cg) == 0, "create");
        int r = cgroup_restrict_devices(cg, cgroup_sandbox_devices, cgroup_n_sandbox_devices);
        if (r == -EOPNOTSUPP) {
                printf("# no device cgroup here (v1 without devices, or no cgroup BPF)\n");
                teardown(cg);
                cgroup_manager_free(m);
                exit(77);
        }
        CHECK(r == 0, "restrict_devices: %s", strerror(-r));
        /* Twice: a restart applies it again (v2 replaces the program, v1 rewrites the list). */
        r = cgroup_restrict_devices(cg, cgroup_sandbox_devices, cgroup_n_sandbox_devices);
        CHECK(r == 0, "restrict_devices again: %s", strerror(-r));
        pid_t pid = spawn_in(cg, ACTION_OPEN_DEVICES);
        CHECK(pid > 0, "spawn");
        if (pid > 0) {
                int status = 0;
                CHECK(wait_child(pid, 10000, &status) == 0, "child did not finish");
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "device opens in the group: status 0x%x (bits: 1 null, 2 urandom, 4 kmsg "
                      "allowed, "
                      "8 mem allowed, 16 loop-control allowed)",
                      status);
                printf("# in the group: /dev/null and /dev/urandom open, /dev/kmsg and /dev/mem "
                       "get EPERM\n");
        }
        teardown(cg);
        cgroup_manager_free(m);
}

static bool pid_in_list(pid_t pid, const pid_t *pids, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

/* A tree of processes, killed as a whole; frozen first when asked (stop a paused one). */
static void scenario_kill(unsigned flags, bool frozen_first) {
        struct cgroup_manager *m = manager(flags);
        REQUIRE(m, "no manager");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "kill", &cg) == 0, "create");
        pid_t pid = spawn_in(cg, ACTION_FORK_3_AND_PAUSE);
        CHECK(pid > 0, "spawn");
        size_t n = 0;
        uint64_t deadline = now_usec() + EVENT_WAIT_USEC;
        while (now_usec() < deadline) {
                pid_t *pids = NULL;
                if (cgroup_get_pids(cg, &pids, &n) == 0)
                        free(pids);
                if (n >= 4)
                        break;
                sleep_ms(10);
        }
        CHECK(n == 4, "%zu processes in the group, want 4", n);
        if (frozen_first)
                CHECK(cgroup_set_frozen(cg, true) == 0, "freeze");

        int r = cgroup_kill_all(cg, SIGKILL);
        CHECK(r >= 0, "kill_all: %s", strerror(-r));
        int status = 0;
        if (pid > 0) {
                CHECK(wait_child(pid, EVENT_WAIT_USEC / 1000, &status) == 0, "child not dead");
                CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status 0x%x", status);
        }
        deadline = now_usec() + EVENT_WAIT_USEC;
        while (cgroup_is_empty(cg) == 0 && now_usec() < deadline) {
                reap_all();
                sleep_ms(10);
        }
        CHECK(cgroup_is_empty(cg) == 1, "group not empty after kill_all");
        r = cgroup_destroy(cg);
        CHECK(r == 0, "destroy: %s", strerror(-r));
        CHECK(access(cgroup_path(cg), F_OK) < 0, "%s still exists", cgroup_path(cg));
        /* Nothing left in any hierarchy: a fresh open must fail. */
        struct cgroup *again = NULL;
        CHECK(cgroup_open(m, "kill", &again) == -ENOENT, "group still there");
        cgroup_free(again);
        cgroup_free(cg);
        cgroup_manager_free(m);
}

/* An agent restart: a new manager lists and adopts a group that still runs. */
static void scenario_adopt(unsigned flags) {
        struct cgroup_manager *m = manager(flags);
        REQUIRE(m, "no manager");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "adopt", &cg) == 0, "create");
        pid_t pid = spawn_in(cg, ACTION_PAUSE);
        CHECK(pid > 0, "spawn");
        cgroup_free(cg);
        cgroup_manager_free(m);

        m = manager(flags);
        REQUIRE(m, "no manager after restart");
        char **names = NULL;
        int n = cgroup_manager_list(m, &names);
        CHECK(n >= 1, "list: %d", n);
        bool found = false;
        for (int i = 0; n > 0 && i < n; i++)
                found = found || streq(names[i], "adopt");
        CHECK(found, "adopt not listed");
        cgroup_strv_free(names);

        REQUIRE(cgroup_create(m, "adopt", &cg) == 0, "re-create (adopt)");
        pid_t *pids = NULL;
        size_t np = 0;
        CHECK(cgroup_get_pids(cg, &pids, &np) == 0, "get_pids");
        CHECK(pid_in_list(pid, pids, np), "child %d not in the adopted group", (int) pid);
        free(pids);

        /* The kernel refuses a bad attach: clear error, nothing breaks. */
        int r = cgroup_attach_pid(cg, 0x3fffffff);
        CHECK(r == -ESRCH, "attach of a pid that cannot exist: %d", r);

        teardown(cg);
        reap_all();
        cgroup_manager_free(m);
}

/* Core-only v2 (controllers bound to v1): limits name the missing controller. */
static void scenario_v2_missing(void) {
        struct cgroup_manager *m = NULL;
        int r = cgroup_manager_new(root, parent, 0, &m);
        if (r == 0) {
                printf("# %s has the controllers: nothing missing to check\n", root);
                cgroup_manager_free(m);
                exit(77);
        }
        CHECK(r == -EOPNOTSUPP, "strict manager: %d", r);
        m = manager(CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS);
        REQUIRE(m, "no manager");
        CHECK(cgroup_manager_version(m) == CGROUP_V2, "not v2");
        struct cgroup *cg;
        REQUIRE(cgroup_create(m, "limits", &cg) == 0, "create");
        struct cgroup_limits l = {.memory_max = 32 * MIB};
        CHECK(cgroup_apply_limits(cg, &l) == -EOPNOTSUPP, "memory_max accepted");
        l = (struct cgroup_limits){.pids_max = 5};
        CHECK(cgroup_apply_limits(cg, &l) == -EOPNOTSUPP, "pids_max accepted");
        l = (struct cgroup_limits){};
        r = cgroup_apply_limits(cg, &l);
        CHECK(r >= 0, "empty limits: %d", r);
        teardown(cg);
        cgroup_manager_free(m);
}

int main(int argc, char **argv) {
        if (argc != 4) {
                fprintf(stderr, "usage: %s SCENARIO ROOT PARENT\n", argv[0]);
                return 2;
        }
        root = argv[2];
        parent = argv[3];
        log_setup("cgroup-check", LOG_TARGET_STDERR);
        setvbuf(stdout, NULL, _IOLBF, 0);
        /* Grandchildren come back to us, so nothing lingers as a zombie. */
        (void) prctl(PR_SET_CHILD_SUBREAPER, 1);

        const char *s = argv[1];
        const unsigned core = CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS;
        if (streq(s, "memory"))
                scenario_memory();
        else if (streq(s, "pids"))
                scenario_pids();
        else if (streq(s, "cpu"))
                scenario_cpu();
        else if (streq(s, "freeze"))
                scenario_freeze(0);
        else if (streq(s, "kill"))
                scenario_kill(0, false);
        else if (streq(s, "kill-frozen"))
                scenario_kill(0, true);
        else if (streq(s, "adopt"))
                scenario_adopt(0);
        else if (streq(s, "core-freeze"))
                scenario_freeze(core);
        else if (streq(s, "core-kill"))
                scenario_kill(core, false);
        else if (streq(s, "core-kill-frozen"))
                scenario_kill(core, true);
        else if (streq(s, "core-adopt"))
                scenario_adopt(core);
        else if (streq(s, "devices"))
                scenario_devices(0);
        else if (streq(s, "core-devices"))
                scenario_devices(core);
        else if (streq(s, "core-missing"))
                scenario_v2_missing();
        else {
                fprintf(stderr, "unknown scenario %s\n", s);
                return 2;
        }
        reap_all();
        return failures ? 1 : 0;
}
