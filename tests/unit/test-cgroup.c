/* Unit tests for cgroups: pure helpers, and both backends driven over fake cgroupfs trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <linux/bpf.h>

#include <cmocka.h>

#include "runtime/cgroup.h"
#include "lib/log.h"
#include "test-util.h"

/* ---- fake cgroupfs ------------------------------------------------------------------ */

/* snprintf into an array that must not truncate. */
#define FMT(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int) sizeof(buf))

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup_tree(void **state) {
        char *dir = test_mkdtemp();
        assert_non_null(dir);
        *state = dir;
        return 0;
}

static int teardown_tree(void **state) {
        char *dir = *state;
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
        return 0;
}

/* Path below the fake root; a few static buffers so calls can be nested in one line. */
static const char *fp(const char *root, const char *rel) {
        static char bufs[4][PATH_MAX];
        static unsigned next;
        char *b = bufs[next++ % 4];
        assert_true(snprintf(b, PATH_MAX, "%s/%s", root, rel) < PATH_MAX);
        return b;
}

static void fake_mkdir(const char *root, const char *rel) {
        assert_int_equal(mkdir(fp(root, rel), 0755), 0);
}

static void fake_write(const char *root, const char *rel, const char *content) {
        const char *p = fp(root, rel);
        assert_int_equal(test_write(p, content, strlen(content)), 0);
}

/* Read a fake file; a missing file reads as "<missing>". */
static const char *fake_read(const char *root, const char *rel) {
        static char bufs[2][4096];
        static unsigned next;
        char *b = bufs[next++ % 2];
        if (test_read(fp(root, rel), b, sizeof(bufs[0])) < 0)
                strcpy(b, "<missing>");
        return b;
}

/* Create empty control files in root/<dir>, as the kernel does at mkdir. */
static void fake_files(const char *root, const char *dir, const char *const *files) {
        char rel[PATH_MAX];
        for (; *files; files++) {
                FMT(rel, "%s/%s", dir, *files);
                fake_write(root, rel, "");
        }
}

static const char *const v2_group_files[] = {
        "cgroup.procs",    "cgroup.freeze",  "cgroup.events", "cgroup.kill",
        "cpu.weight",      "cpu.max",        "cpu.stat",      "memory.max",
        "memory.swap.max", "memory.current", "memory.peak",   "memory.events",
        "pids.max",        "pids.current",   "io.weight",     NULL,
};

/* A v2 root with the given controllers, and the agent's parent already there. */
static void fake_v2_root(const char *root, const char *controllers) {
        fake_write(root, "cgroup.controllers", controllers);
        fake_write(root, "cgroup.subtree_control", "");
        fake_write(root, "cgroup.procs", "1\n");
        fake_mkdir(root, "orbit-agent");
        fake_write(root, "orbit-agent/cgroup.controllers", controllers);
        fake_write(root, "orbit-agent/cgroup.subtree_control", "");
        fake_write(root, "orbit-agent/cgroup.procs", "");
}

static const char *const v1_hierarchies[] = {
        "cpu", "cpuacct", "memory", "pids", "freezer", "blkio", NULL,
};

static void fake_v1_root(const char *root, const char *const *hierarchies) {
        for (; *hierarchies; hierarchies++) {
                char rel[PATH_MAX];
                fake_mkdir(root, *hierarchies);
                FMT(rel, "%s/cgroup.procs", *hierarchies);
                fake_write(root, rel, "1\n");
        }
}

/* Control files a v1 group has, per hierarchy. */
static void fake_v1_group(const char *root, const char *name, bool with_memsw, bool with_blkio) {
        char dir[PATH_MAX];
        static const char *const cpu[] = {"cgroup.procs", "cpu.shares", "cpu.cfs_period_us",
                                          "cpu.cfs_quota_us", NULL};
        static const char *const cpuacct[] = {"cgroup.procs", "cpuacct.usage", NULL};
        static const char *const memory[] = {"cgroup.procs",          "memory.limit_in_bytes",
                                             "memory.usage_in_bytes", "memory.max_usage_in_bytes",
                                             "memory.oom_control",    NULL};
        static const char *const pids[] = {"cgroup.procs", "pids.max", "pids.current", NULL};
        static const char *const freezer[] = {"cgroup.procs", "freezer.state", NULL};
        static const char *const blkio[] = {"cgroup.procs", NULL};

        FMT(dir, "cpu/orbit-agent/%s", name);
        fake_files(root, dir, cpu);
        FMT(dir, "cpuacct/orbit-agent/%s", name);
        fake_files(root, dir, cpuacct);
        FMT(dir, "memory/orbit-agent/%s", name);
        fake_files(root, dir, memory);
        if (with_memsw) {
                char rel[PATH_MAX];
                FMT(rel, "%s/memory.memsw.limit_in_bytes", dir);
                fake_write(root, rel, "9223372036854771712\n");
        }
        FMT(dir, "pids/orbit-agent/%s", name);
        fake_files(root, dir, pids);
        FMT(dir, "freezer/orbit-agent/%s", name);
        fake_files(root, dir, freezer);
        FMT(dir, "blkio/orbit-agent/%s", name);
        fake_files(root, dir, blkio);
        if (with_blkio) {
                char rel[PATH_MAX];
                FMT(rel, "%s/blkio.weight", dir);
                fake_write(root, rel, "500\n");
        }
}

/* ---- pure helpers ------------------------------------------------------------------- */

static void test_weight_conversions(void **state) {
        assert_int_equal(cgroup_weight_to_shares(0), 1024);
        assert_int_equal(cgroup_weight_to_shares(100), 1024);
        assert_int_equal(cgroup_weight_to_shares(200), 2048);
        assert_int_equal(cgroup_weight_to_shares(1), 10);
        assert_int_equal(cgroup_weight_to_shares(10000), 102400);
        assert_int_equal(cgroup_weight_to_shares(99999), 102400);

        assert_int_equal(cgroup_weight_to_blkio(0), 500);
        assert_int_equal(cgroup_weight_to_blkio(100), 500);
        assert_int_equal(cgroup_weight_to_blkio(50), 250);
        assert_int_equal(cgroup_weight_to_blkio(1), 10);
        assert_int_equal(cgroup_weight_to_blkio(200), 1000);
        assert_int_equal(cgroup_weight_to_blkio(10000), 1000);
}

static void test_format_cpu_max(void **state) {
        char buf[32];
        assert_int_equal(cgroup_format_cpu_max(20, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "20000 100000");
        assert_int_equal(cgroup_format_cpu_max(0, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "max 100000");
        assert_int_equal(cgroup_format_cpu_max(1, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "1000 100000");
        assert_int_equal(cgroup_format_cpu_max(250, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "250000 100000");
        assert_int_equal(cgroup_format_cpu_max(20, buf, 6), -ENOBUFS);
        assert_int_equal(cgroup_cpu_quota_usec(20), 20000);
        assert_int_equal(cgroup_cpu_quota_usec(0), 0);
}

static void test_parse_cpu_max(void **state) {
        uint64_t q = 1, p = 1;
        assert_int_equal(cgroup_parse_cpu_max("20000 100000\n", &q, &p), 0);
        assert_int_equal(q, 20000);
        assert_int_equal(p, 100000);
        assert_int_equal(cgroup_parse_cpu_max("max 100000\n", &q, &p), 0);
        assert_int_equal(q, 0);
        assert_int_equal(p, 100000);
        assert_int_equal(cgroup_parse_cpu_max("max 250000", &q, &p), 0);
        assert_int_equal(p, 250000);
        /* Nothing else: one field, a zero, a sign, a word, an empty text. */
        q = p = 7;
        const char *bad[] = {"20000\n",        "0 100000", "20000 0", "-1 100000", "maxi 100000",
                             "20000 100000 1", "",         " 100000", "max"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(cgroup_parse_cpu_max(bad[i], &q, &p), -EINVAL);
        assert_int_equal(q, 7);
        assert_int_equal(p, 7);
        assert_int_equal(cgroup_parse_cpu_max(NULL, &q, &p), -EINVAL);
}

static void test_parse_keyed(void **state) {
        const char cpu_stat[] = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n";
        const char oom[] = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        uint64_t v;
        assert_int_equal(cgroup_parse_keyed(cpu_stat, "usage_usec", &v), 0);
        assert_int_equal(v, 123456);
        assert_int_equal(cgroup_parse_keyed(cpu_stat, "system_usec", &v), 0);
        assert_int_equal(v, 23456);
        /* A key is a whole word: "oom" must not match "oom_kill". */
        assert_int_equal(cgroup_parse_keyed(oom, "oom_kill", &v), 0);
        assert_int_equal(v, 3);
        assert_int_equal(cgroup_parse_keyed(oom, "oom", &v), -ENOENT);
        assert_int_equal(cgroup_parse_keyed(oom, "kill", &v), -ENOENT);
        /* Last line without newline. */
        assert_int_equal(cgroup_parse_keyed("populated 1\nfrozen 0", "frozen", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(cgroup_parse_keyed("max 12x\n", "max", &v), -EINVAL);
        assert_int_equal(cgroup_parse_keyed("max \n", "max", &v), -EINVAL);
        assert_int_equal(cgroup_parse_keyed("max 99999999999999999999\n", "max", &v), -ERANGE);
        assert_int_equal(cgroup_parse_keyed("", "max", &v), -ENOENT);

        assert_int_equal(cgroup_parse_u64("67108864\n", &v), 0);
        assert_int_equal(v, 67108864);
        assert_int_equal(cgroup_parse_u64("max\n", &v), -EINVAL);
        assert_int_equal(cgroup_parse_u64("", &v), -EINVAL);
}

static void test_parse_pids(void **state) {
        pid_t *pids;
        size_t n;
        assert_int_equal(cgroup_parse_pids("12\n345\n6\n", &pids, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(pids[0], 12);
        assert_int_equal(pids[1], 345);
        assert_int_equal(pids[2], 6);
        free(pids);
        assert_int_equal(cgroup_parse_pids("", &pids, &n), 0);
        assert_int_equal(n, 0);
        assert_null(pids);
        assert_int_equal(cgroup_parse_pids("12\nabc\n", &pids, &n), -EINVAL);
        assert_int_equal(cgroup_parse_pids("0\n", &pids, &n), -EINVAL);
        assert_int_equal(cgroup_parse_pids("99999999999\n", &pids, &n), -EINVAL);
}

static void test_names(void **state) {
        assert_true(cgroup_name_is_valid("web"));
        assert_true(cgroup_name_is_valid("model-runner_2.service@x:1"));
        assert_false(cgroup_name_is_valid(NULL));
        assert_false(cgroup_name_is_valid(""));
        assert_false(cgroup_name_is_valid("."));
        assert_false(cgroup_name_is_valid(".."));
        assert_false(cgroup_name_is_valid("a/b"));
        assert_false(cgroup_name_is_valid("../etc"));
        assert_false(cgroup_name_is_valid("a b"));
        assert_false(cgroup_name_is_valid("a\nb"));
        assert_false(cgroup_name_is_valid("cgroup.procs"));
        char longname[CGROUP_NAME_MAX + 2];
        memset(longname, 'a', sizeof(longname));
        longname[CGROUP_NAME_MAX] = '\0';
        assert_true(cgroup_name_is_valid(longname));
        longname[CGROUP_NAME_MAX] = 'a';
        longname[CGROUP_NAME_MAX + 1] = '\0';
        assert_false(cgroup_name_is_valid(longname));
}

static void test_limits_validate(void **state) {
        struct cgroup_limits l = {};
        assert_int_equal(cgroup_limits_validate(&l, 2), 0);
        l = (struct cgroup_limits){.cpu_weight = 1,
                                   .io_weight = 10000,
                                   .cpu_max_percent = 200,
                                   .memory_max = 1 << 20,
                                   .pids_max = 10};
        assert_int_equal(cgroup_limits_validate(&l, 2), 0);
        l.cpu_max_percent = 201;
        assert_int_equal(cgroup_limits_validate(&l, 2), -EINVAL);
        l.cpu_max_percent = 20;
        l.cpu_weight = 10001;
        assert_int_equal(cgroup_limits_validate(&l, 2), -EINVAL);
        l.cpu_weight = 0;
        l.io_weight = 20000;
        assert_int_equal(cgroup_limits_validate(&l, 2), -EINVAL);
        l.io_weight = 0;
        l.memory_max = UINT64_MAX;
        assert_int_equal(cgroup_limits_validate(&l, 2), -EINVAL);
}

/* ---- probe -------------------------------------------------------------------------- */

static void test_probe_nothing(void **state) {
        const char *root = *state;
        struct cgroup_manager *m = NULL;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), -ENOMEDIUM);
        assert_int_equal(cgroup_manager_new(fp(root, "absent"), "orbit-agent", 0, &m), -ENOMEDIUM);
        assert_int_equal(cgroup_manager_new(root, "../x", 0, &m), -EINVAL);
        assert_int_equal(cgroup_manager_new(root, "/abs", 0, &m), -EINVAL);
        assert_null(m);
}

/* ---- v2 over a fake tree ------------------------------------------------------------ */

static void test_v2_manager_enables_controllers(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpuset cpu io memory hugetlb pids rdma\n");
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        assert_int_equal(cgroup_manager_version(m), CGROUP_V2);
        assert_string_equal(fake_read(root, "cgroup.subtree_control"), "+cpu +memory +pids +io");
        assert_string_equal(fake_read(root, "orbit-agent/cgroup.subtree_control"),
                            "+cpu +memory +pids +io");
        assert_true(cgroup_manager_has_controller(m, "memory"));
        assert_true(cgroup_manager_has_controller(m, "io"));
        assert_false(cgroup_manager_has_controller(m, "freezer"));
        cgroup_manager_free(m);

        /* Already enabled: nothing is written again. */
        fake_write(root, "cgroup.subtree_control", "cpu io memory pids\n");
        fake_write(root, "orbit-agent/cgroup.subtree_control", "memory pids\n");
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        assert_string_equal(fake_read(root, "cgroup.subtree_control"), "cpu io memory pids\n");
        assert_string_equal(fake_read(root, "orbit-agent/cgroup.subtree_control"), "+cpu +io");
        cgroup_manager_free(m);
}

static void test_v2_missing_controllers(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpu hugetlb\n");
        struct cgroup_manager *m = NULL;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), -EOPNOTSUPP);
        assert_null(m);
        assert_int_equal(cgroup_manager_new(root, "orbit-agent",
                                            CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS, &m),
                         0);
        assert_false(cgroup_manager_has_controller(m, "memory"));
        assert_string_equal(fake_read(root, "orbit-agent/cgroup.subtree_control"), "+cpu");

        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "w", &cg), 0);
        fake_files(root, "orbit-agent/w", v2_group_files);
        struct cgroup_limits l = {.memory_max = 1 << 20};
        assert_int_equal(cgroup_apply_limits(cg, &l), -EOPNOTSUPP);
        assert_string_equal(fake_read(root, "orbit-agent/w/memory.max"), "");
        l = (struct cgroup_limits){.pids_max = 5};
        assert_int_equal(cgroup_apply_limits(cg, &l), -EOPNOTSUPP);
        /* Limits of missing controllers left at 0 are fine; the others are written. */
        l = (struct cgroup_limits){.cpu_max_percent = 50};
        assert_int_equal(cgroup_apply_limits(cg, &l), 0);
        assert_string_equal(fake_read(root, "orbit-agent/w/cpu.max"), "50000 100000");
        assert_string_equal(fake_read(root, "orbit-agent/w/pids.max"), "");
        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v2_group_lifecycle(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpu io memory pids\n");
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);

        struct cgroup *cg = NULL;
        assert_int_equal(cgroup_create(m, "../evil", &cg), -EINVAL);
        assert_int_equal(cgroup_create(m, "a/b", &cg), -EINVAL);
        assert_int_equal(cgroup_open(m, "web", &cg), -ENOENT);
        assert_null(cg);

        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        assert_true(test_exists(fp(root, "orbit-agent/web")));
        assert_string_equal(cgroup_path(cg), fp(root, "orbit-agent/web"));
        assert_string_equal(cgroup_name(cg), "web");
        cgroup_free(cg);

        /* Idempotent: a restarted agent finds its group again. */
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        cgroup_free(cg);
        assert_int_equal(cgroup_open(m, "web", &cg), 0);
        assert_int_equal(cgroup_destroy(cg), 0);
        assert_false(test_exists(fp(root, "orbit-agent/web")));
        assert_int_equal(cgroup_destroy(cg), 0); /* gone already: fine */
        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v2_apply_limits(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpu io memory pids\n");
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        fake_files(root, "orbit-agent/web", v2_group_files);

        struct cgroup_limits l = {
                .cpu_weight = 200,
                .cpu_max_percent = 20,
                .memory_max = 64ULL << 20,
                .pids_max = 100,
                .io_weight = 300,
        };
        assert_int_equal(cgroup_apply_limits(cg, &l), 0);
        assert_string_equal(fake_read(root, "orbit-agent/web/cpu.weight"), "200");
        assert_string_equal(fake_read(root, "orbit-agent/web/cpu.max"), "20000 100000");
        assert_string_equal(fake_read(root, "orbit-agent/web/memory.max"), "67108864");
        assert_string_equal(fake_read(root, "orbit-agent/web/memory.swap.max"), "0");
        assert_string_equal(fake_read(root, "orbit-agent/web/pids.max"), "100");
        assert_string_equal(fake_read(root, "orbit-agent/web/io.weight"), "default 300");

        /* Throttle: only cpu changes. */
        l.cpu_max_percent = 5;
        assert_int_equal(cgroup_apply_limits(cg, &l), 0);
        assert_string_equal(fake_read(root, "orbit-agent/web/cpu.max"), "5000 100000");

        /* Back to defaults. */
        l = (struct cgroup_limits){};
        assert_int_equal(cgroup_apply_limits(cg, &l), 0);
        assert_string_equal(fake_read(root, "orbit-agent/web/cpu.weight"), "100");
        assert_string_equal(fake_read(root, "orbit-agent/web/cpu.max"), "max 100000");
        assert_string_equal(fake_read(root, "orbit-agent/web/memory.max"), "max");
        assert_string_equal(fake_read(root, "orbit-agent/web/memory.swap.max"), "max");
        assert_string_equal(fake_read(root, "orbit-agent/web/pids.max"), "max");
        assert_string_equal(fake_read(root, "orbit-agent/web/io.weight"), "default 100");

        /* Invalid values: nothing is written. */
        fake_write(root, "orbit-agent/web/cpu.max", "untouched");
        l = (struct cgroup_limits){.cpu_max_percent = 100000};
        assert_int_equal(cgroup_apply_limits(cg, &l), -EINVAL);
        assert_string_equal(fake_read(root, "orbit-agent/web/cpu.max"), "untouched");

        /* Optional knobs absent: applied anyway, and the caller is told what was skipped. */
        unlink(fp(root, "orbit-agent/web/memory.swap.max"));
        unlink(fp(root, "orbit-agent/web/io.weight"));
        l = (struct cgroup_limits){.memory_max = 1 << 20, .io_weight = 50};
        assert_int_equal(cgroup_apply_limits(cg, &l),
                         CGROUP_SKIPPED_NO_SWAP | CGROUP_SKIPPED_IO_WEIGHT);
        assert_string_equal(fake_read(root, "orbit-agent/web/memory.max"), "1048576");

        /* A file the kernel would have is missing: a clear error, not a crash. */
        unlink(fp(root, "orbit-agent/web/pids.max"));
        l = (struct cgroup_limits){.pids_max = 10};
        assert_int_equal(cgroup_apply_limits(cg, &l), -ENOENT);

        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v2_attach_freeze_kill(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpu io memory pids\n");
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        cgroup_manager_set_freeze_timeout(m, 50000);
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        fake_files(root, "orbit-agent/web", v2_group_files);

        assert_int_equal(cgroup_attach_pid(cg, 4242), 0);
        assert_string_equal(fake_read(root, "orbit-agent/web/cgroup.procs"), "4242");
        assert_int_equal(cgroup_attach_pid(cg, 0), -EINVAL);

        /* The kernel reports the state in cgroup.events; the fake one says frozen. */
        fake_write(root, "orbit-agent/web/cgroup.events", "populated 1\nfrozen 1\n");
        assert_int_equal(cgroup_set_frozen(cg, true), 0);
        assert_string_equal(fake_read(root, "orbit-agent/web/cgroup.freeze"), "1");
        /* Thaw that the kernel never confirms: bounded wait, then -ETIMEDOUT. */
        assert_int_equal(cgroup_set_frozen(cg, false), -ETIMEDOUT);
        assert_string_equal(fake_read(root, "orbit-agent/web/cgroup.freeze"), "0");
        fake_write(root, "orbit-agent/web/cgroup.events", "populated 1\nfrozen 0\n");
        assert_int_equal(cgroup_set_frozen(cg, false), 0);

        assert_int_equal(cgroup_is_empty(cg), 0);
        assert_int_equal(cgroup_wait_empty(cg, 20000), -ETIMEDOUT);
        fake_write(root, "orbit-agent/web/cgroup.events", "populated 0\nfrozen 0\n");
        assert_int_equal(cgroup_is_empty(cg), 1);
        assert_int_equal(cgroup_wait_empty(cg, 20000), 0);

        assert_int_equal(cgroup_kill_all(cg, SIGKILL), 0);
        assert_string_equal(fake_read(root, "orbit-agent/web/cgroup.kill"), "1");

        /* Other signals go to each process of cgroup.procs: use a child of ours. */
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                pause();
                _exit(0);
        }
        char procs[32];
        FMT(procs, "%d\n", (int) child);
        fake_write(root, "orbit-agent/web/cgroup.procs", procs);
        pid_t *pids;
        size_t n;
        assert_int_equal(cgroup_get_pids(cg, &pids, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(pids[0], child);
        free(pids);
        assert_int_equal(cgroup_kill_all(cg, SIGTERM), 1);
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
        assert_int_equal(cgroup_kill_all(cg, 0), -EINVAL);

        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v2_stats(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpu io memory pids\n");
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        fake_files(root, "orbit-agent/web", v2_group_files);
        fake_write(root, "orbit-agent/web/cpu.stat",
                   "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
                   "nr_periods 40\nnr_throttled 31\nthrottled_usec 2400000\n");
        fake_write(root, "orbit-agent/web/cpu.max", "20000 100000\n");
        fake_write(root, "orbit-agent/web/memory.current", "1048576\n");
        fake_write(root, "orbit-agent/web/memory.peak", "2097152\n");
        fake_write(root, "orbit-agent/web/memory.events",
                   "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
        fake_write(root, "orbit-agent/web/pids.current", "3\n");
        fake_write(root, "orbit-agent/web/cgroup.events", "populated 1\nfrozen 1\n");

        struct cgroup_stats st;
        assert_int_equal(cgroup_get_stats(cg, &st), 0);
        assert_int_equal(st.cpu_usage_usec, 1500000);
        assert_int_equal(st.memory_current, 1048576);
        assert_int_equal(st.memory_peak, 2097152);
        assert_int_equal(st.oom_kills, 2);
        assert_int_equal(st.pids_current, 3);
        assert_true(st.frozen);
        assert_int_equal(st.cpu_quota_usec, 20000);
        assert_int_equal(st.cpu_period_usec, 100000);
        assert_int_equal(st.cpu_periods, 40);
        assert_int_equal(st.cpu_throttled, 31);

        /* No limit: quota 0; a cpu.max the parser cannot read is an error, not a 0. */
        fake_write(root, "orbit-agent/web/cpu.max", "max 100000\n");
        assert_int_equal(cgroup_get_stats(cg, &st), 0);
        assert_int_equal(st.cpu_quota_usec, 0);
        assert_int_equal(st.cpu_period_usec, 100000);
        fake_write(root, "orbit-agent/web/cpu.max", "20000\n");
        assert_int_equal(cgroup_get_stats(cg, &st), -EINVAL);
        /* A kernel without CFS bandwidth has no cpu.max: no limit to report. */
        unlink(fp(root, "orbit-agent/web/cpu.max"));
        assert_int_equal(cgroup_get_stats(cg, &st), 0);
        assert_int_equal(st.cpu_quota_usec, 0);
        assert_int_equal(st.cpu_period_usec, 0);
        fake_write(root, "orbit-agent/web/cpu.max", "max 100000\n");

        /* memory.peak came with 5.19: older kernels read as 0. */
        unlink(fp(root, "orbit-agent/web/memory.peak"));
        assert_int_equal(cgroup_get_stats(cg, &st), 0);
        assert_int_equal(st.memory_peak, 0);

        fake_write(root, "orbit-agent/web/memory.current", "garbage\n");
        assert_int_equal(cgroup_get_stats(cg, &st), -EINVAL);
        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v2_list(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpu io memory pids\n");
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        char **names;
        assert_int_equal(cgroup_manager_list(m, &names), 0);
        assert_null(names[0]);
        cgroup_strv_free(names);

        fake_mkdir(root, "orbit-agent/zeta");
        fake_mkdir(root, "orbit-agent/alpha");
        fake_mkdir(root, "orbit-agent/not valid");
        assert_int_equal(cgroup_manager_list(m, &names), 2);
        assert_string_equal(names[0], "alpha");
        assert_string_equal(names[1], "zeta");
        assert_null(names[2]);
        cgroup_strv_free(names);
        cgroup_manager_free(m);
}

static void test_v2_nested_parent(void **state) {
        const char *root = *state;
        fake_v2_root(root, "cpu memory pids\n");
        fake_mkdir(root, "orbit-agent/workloads");
        fake_write(root, "orbit-agent/workloads/cgroup.subtree_control", "");
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent/workloads/", 0, &m), 0);
        assert_string_equal(fake_read(root, "cgroup.subtree_control"), "+cpu +memory +pids");
        assert_string_equal(fake_read(root, "orbit-agent/cgroup.subtree_control"),
                            "+cpu +memory +pids");
        assert_string_equal(fake_read(root, "orbit-agent/workloads/cgroup.subtree_control"),
                            "+cpu +memory +pids");
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "x", &cg), 0);
        assert_string_equal(cgroup_path(cg), fp(root, "orbit-agent/workloads/x"));
        cgroup_free(cg);
        cgroup_manager_free(m);
}

/* ---- v1 over a fake tree ------------------------------------------------------------ */

static void test_v1_probe_and_create(void **state) {
        const char *root = *state;
        fake_v1_root(root, v1_hierarchies);
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        assert_int_equal(cgroup_manager_version(m), CGROUP_V1);
        assert_true(cgroup_manager_has_controller(m, "blkio"));
        assert_true(cgroup_manager_has_controller(m, "freezer"));
        for (const char *const *h = v1_hierarchies; *h; h++) {
                char rel[PATH_MAX];
                FMT(rel, "%s/orbit-agent", *h);
                assert_true(test_exists(fp(root, rel)));
        }

        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        for (const char *const *h = v1_hierarchies; *h; h++) {
                char rel[PATH_MAX];
                FMT(rel, "%s/orbit-agent/web", *h);
                assert_true(test_exists(fp(root, rel)));
        }
        assert_string_equal(cgroup_path(cg), fp(root, "cpu/orbit-agent/web"));

        char **names;
        assert_int_equal(cgroup_manager_list(m, &names), 1);
        assert_string_equal(names[0], "web");
        cgroup_strv_free(names);

        assert_int_equal(cgroup_destroy(cg), 0);
        for (const char *const *h = v1_hierarchies; *h; h++) {
                char rel[PATH_MAX];
                FMT(rel, "%s/orbit-agent/web", *h);
                assert_false(test_exists(fp(root, rel)));
        }
        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v1_missing_controllers(void **state) {
        const char *root = *state;
        static const char *const no_freezer[] = {"cpu", "cpuacct", "memory", "pids", NULL};
        fake_v1_root(root, no_freezer);
        struct cgroup_manager *m = NULL;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), -EOPNOTSUPP);
        assert_int_equal(cgroup_manager_new(root, "orbit-agent",
                                            CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS, &m),
                         0);
        assert_false(cgroup_manager_has_controller(m, "freezer"));
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "w", &cg), 0);
        assert_int_equal(cgroup_set_frozen(cg, true), -EOPNOTSUPP);
        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v1_comounted(void **state) {
        const char *root = *state;
        static const char *const h[] = {"cpu,cpuacct", "memory", "pids", "freezer", NULL};
        fake_v1_root(root, h);
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        assert_true(cgroup_manager_has_controller(m, "cpuacct"));
        assert_false(cgroup_manager_has_controller(m, "blkio"));
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        assert_string_equal(cgroup_path(cg), fp(root, "cpu,cpuacct/orbit-agent/web"));
        fake_write(root, "cpu,cpuacct/orbit-agent/web/cgroup.procs", "");
        fake_write(root, "memory/orbit-agent/web/cgroup.procs", "");
        fake_write(root, "pids/orbit-agent/web/cgroup.procs", "");
        fake_write(root, "freezer/orbit-agent/web/cgroup.procs", "");
        assert_int_equal(cgroup_attach_pid(cg, 77), 0);
        /* One write per hierarchy: cpu and cpuacct share theirs. */
        assert_string_equal(fake_read(root, "cpu,cpuacct/orbit-agent/web/cgroup.procs"), "77");
        assert_string_equal(fake_read(root, "memory/orbit-agent/web/cgroup.procs"), "77");
        assert_string_equal(fake_read(root, "freezer/orbit-agent/web/cgroup.procs"), "77");
        cgroup_free(cg);
        cgroup_manager_free(m);

        /* Symlinks "cpu" and "cpuacct" to the co-mount (what Debian makes): same result. */
        assert_int_equal(symlink("cpu,cpuacct", fp(root, "cpu")), 0);
        assert_int_equal(symlink("cpu,cpuacct", fp(root, "cpuacct")), 0);
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        assert_int_equal(cgroup_open(m, "web", &cg), 0);
        assert_string_equal(cgroup_path(cg), fp(root, "cpu/orbit-agent/web"));
        fake_write(root, "cpu,cpuacct/orbit-agent/web/cgroup.procs", "");
        assert_int_equal(cgroup_attach_pid(cg, 78), 0);
        assert_string_equal(fake_read(root, "cpu,cpuacct/orbit-agent/web/cgroup.procs"), "78");
        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v1_apply_limits(void **state) {
        const char *root = *state;
        fake_v1_root(root, v1_hierarchies);
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        fake_v1_group(root, "web", true, true);

        struct cgroup_limits l = {
                .cpu_weight = 200,
                .cpu_max_percent = 20,
                .memory_max = 64ULL << 20,
                .pids_max = 100,
                .io_weight = 50,
        };
        assert_int_equal(cgroup_apply_limits(cg, &l), 0);
        assert_string_equal(fake_read(root, "cpu/orbit-agent/web/cpu.shares"), "2048");
        assert_string_equal(fake_read(root, "cpu/orbit-agent/web/cpu.cfs_period_us"), "100000");
        assert_string_equal(fake_read(root, "cpu/orbit-agent/web/cpu.cfs_quota_us"), "20000");
        assert_string_equal(fake_read(root, "memory/orbit-agent/web/memory.limit_in_bytes"),
                            "67108864");
        assert_string_equal(fake_read(root, "memory/orbit-agent/web/memory.memsw.limit_in_bytes"),
                            "67108864");
        assert_string_equal(fake_read(root, "pids/orbit-agent/web/pids.max"), "100");
        assert_string_equal(fake_read(root, "blkio/orbit-agent/web/blkio.weight"), "250");

        l = (struct cgroup_limits){};
        assert_int_equal(cgroup_apply_limits(cg, &l), 0);
        assert_string_equal(fake_read(root, "cpu/orbit-agent/web/cpu.shares"), "1024");
        assert_string_equal(fake_read(root, "cpu/orbit-agent/web/cpu.cfs_quota_us"), "-1");
        assert_string_equal(fake_read(root, "memory/orbit-agent/web/memory.limit_in_bytes"), "-1");
        assert_string_equal(fake_read(root, "memory/orbit-agent/web/memory.memsw.limit_in_bytes"),
                            "-1");
        assert_string_equal(fake_read(root, "pids/orbit-agent/web/pids.max"), "max");
        assert_string_equal(fake_read(root, "blkio/orbit-agent/web/blkio.weight"), "500");

        cgroup_free(cg);

        /* No memsw (swap accounting off) and no blkio.weight (no CFQ): reported. */
        assert_int_equal(cgroup_create(m, "lean", &cg), 0);
        fake_v1_group(root, "lean", false, false);
        l = (struct cgroup_limits){.memory_max = 32ULL << 20, .io_weight = 100};
        assert_int_equal(cgroup_apply_limits(cg, &l),
                         CGROUP_SKIPPED_NO_SWAP | CGROUP_SKIPPED_IO_WEIGHT);
        assert_string_equal(fake_read(root, "memory/orbit-agent/lean/memory.limit_in_bytes"),
                            "33554432");
        cgroup_free(cg);
        cgroup_manager_free(m);
}

static void test_v1_attach_freeze_stats(void **state) {
        const char *root = *state;
        fake_v1_root(root, v1_hierarchies);
        struct cgroup_manager *m;
        assert_int_equal(cgroup_manager_new(root, "orbit-agent", 0, &m), 0);
        struct cgroup *cg;
        assert_int_equal(cgroup_create(m, "web", &cg), 0);
        fake_v1_group(root, "web", true, false);

        assert_int_equal(cgroup_is_empty(cg), 1);
        assert_int_equal(cgroup_attach_pid(cg, 4242), 0);
        for (const char *const *h = v1_hierarchies; *h; h++) {
                char rel[PATH_MAX];
                FMT(rel, "%s/orbit-agent/web/cgroup.procs", *h);
                assert_string_equal(fake_read(root, rel), "4242");
        }
        assert_int_equal(cgroup_is_empty(cg), 0);
        /* A process in one hierarchy only still counts. */
        for (const char *const *h = v1_hierarchies; *h; h++) {
                char rel[PATH_MAX];
                FMT(rel, "%s/orbit-agent/web/cgroup.procs", *h);
                fake_write(root, rel, streq(*h, "pids") ? "4242\n" : "");
        }
        assert_int_equal(cgroup_is_empty(cg), 0);

        /* The fake freezer.state reads back what was written: frozen at once. */
        assert_int_equal(cgroup_set_frozen(cg, true), 0);
        assert_string_equal(fake_read(root, "freezer/orbit-agent/web/freezer.state"), "FROZEN");

        fake_write(root, "cpuacct/orbit-agent/web/cpuacct.usage", "2500000000\n");
        fake_write(root, "cpu/orbit-agent/web/cpu.cfs_quota_us", "5000\n");
        fake_write(root, "cpu/orbit-agent/web/cpu.cfs_period_us", "100000\n");
        fake_write(root, "cpu/orbit-agent/web/cpu.stat",
                   "nr_periods 12\nnr_throttled 9\nthrottled_time 880000000\n");
        fake_write(root, "memory/orbit-agent/web/memory.usage_in_bytes", "4096\n");
        fake_write(root, "memory/orbit-agent/web/memory.max_usage_in_bytes", "8192\n");
        fake_write(root, "memory/orbit-agent/web/memory.oom_control",
                   "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
        fake_write(root, "pids/orbit-agent/web/pids.current", "2\n");
        struct cgroup_stats st;
        assert_int_equal(cgroup_get_stats(cg, &st), 0);
        assert_int_equal(st.cpu_usage_usec, 2500000);
        assert_int_equal(st.memory_current, 4096);
        assert_int_equal(st.memory_peak, 8192);
        assert_int_equal(st.oom_kills, 1);
        assert_int_equal(st.pids_current, 2);
        assert_true(st.frozen);
        assert_int_equal(st.cpu_quota_usec, 5000);
        assert_int_equal(st.cpu_period_usec, 100000);
        assert_int_equal(st.cpu_periods, 12);
        assert_int_equal(st.cpu_throttled, 9);

        assert_int_equal(cgroup_set_frozen(cg, false), 0);
        assert_string_equal(fake_read(root, "freezer/orbit-agent/web/freezer.state"), "THAWED");
        /* cfs_quota_us -1 is no limit. */
        fake_write(root, "cpu/orbit-agent/web/cpu.cfs_quota_us", "-1\n");
        /* Kernels before 4.13 have no oom_kill line: reads as 0. */
        fake_write(root, "memory/orbit-agent/web/memory.oom_control",
                   "oom_kill_disable 0\nunder_oom 0\n");
        assert_int_equal(cgroup_get_stats(cg, &st), 0);
        assert_int_equal(st.oom_kills, 0);
        assert_false(st.frozen);
        assert_int_equal(st.cpu_quota_usec, 0);

        cgroup_free(cg);
        cgroup_manager_free(m);
}

/* ---- device rules: the v1 lines and the BPF program ---------------------------------- */

static void test_device_rule_format(void **state) {
        char buf[64];
        struct cgroup_device_rule null_rw = {'c', 1, 3, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE};
        assert_int_equal(cgroup_device_rule_format(&null_rw, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "c 1:3 rw");
        struct cgroup_device_rule any_mknod = {'b', -1, -1, CGROUP_DEVICE_MKNOD};
        assert_int_equal(cgroup_device_rule_format(&any_mknod, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "b *:* m");
        struct cgroup_device_rule all = {'c', 136, -1, 7};
        assert_int_equal(cgroup_device_rule_format(&all, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "c 136:* rwm");
        struct cgroup_device_rule bad_type = {'x', 1, 3, CGROUP_DEVICE_READ};
        assert_int_equal(cgroup_device_rule_format(&bad_type, buf, sizeof(buf)), -EINVAL);
        struct cgroup_device_rule no_access = {'c', 1, 3, 0};
        assert_int_equal(cgroup_device_rule_format(&no_access, buf, sizeof(buf)), -EINVAL);
        struct cgroup_device_rule bad_access = {'c', 1, 3, 8};
        assert_int_equal(cgroup_device_rule_format(&bad_access, buf, sizeof(buf)), -EINVAL);
        struct cgroup_device_rule bad_major = {'c', -2, 3, CGROUP_DEVICE_READ};
        assert_int_equal(cgroup_device_rule_format(&bad_major, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(cgroup_device_rule_format(&null_rw, buf, 4), -ENOBUFS);
        /* The sandbox's list: the six nodes of its /dev, read and write, never mknod. */
        assert_int_equal(cgroup_n_sandbox_devices, 6);
        for (size_t i = 0; i < cgroup_n_sandbox_devices; i++) {
                assert_int_equal(cgroup_sandbox_devices[i].type, 'c');
                assert_int_equal(cgroup_sandbox_devices[i].access,
                                 CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE);
        }
}

/*
 * A small interpreter for the instructions the builder emits (what the kernel's
 * verifier and JIT will run), so the program's decisions are tested without root.
 * Any other instruction fails the test: the builder must stay within this subset.
 */
static int run_device_program(const struct bpf_insn *insns, int len, unsigned type, unsigned access,
                              uint32_t major, uint32_t minor) {
        struct bpf_cgroup_dev_ctx ctx = {
                .access_type = (access << 16) | type, .major = major, .minor = minor};
        uint64_t reg[11] = {0};
        int pc = 0, steps = 0;
        while (pc >= 0 && pc < len && steps++ < 10000) {
                const struct bpf_insn *in = &insns[pc++];
                switch (in->code) {
                case BPF_LDX | BPF_W | BPF_MEM:
                        assert_int_equal(in->src_reg, BPF_REG_1);
                        assert_true(in->off >= 0 && (size_t) in->off + 4 <= sizeof(ctx) &&
                                    in->off % 4 == 0);
                        reg[in->dst_reg] = *(uint32_t *) ((char *) &ctx + in->off);
                        break;
                case BPF_ALU64 | BPF_MOV | BPF_X:
                        reg[in->dst_reg] = reg[in->src_reg];
                        break;
                case BPF_ALU64 | BPF_MOV | BPF_K:
                        reg[in->dst_reg] = (uint64_t) (int64_t) in->imm;
                        break;
                case BPF_ALU64 | BPF_AND | BPF_K:
                        reg[in->dst_reg] &= (uint64_t) (int64_t) in->imm;
                        break;
                case BPF_ALU64 | BPF_RSH | BPF_K:
                        reg[in->dst_reg] >>= in->imm;
                        break;
                case BPF_JMP | BPF_JNE | BPF_K:
                        if (reg[in->dst_reg] != (uint64_t) (int64_t) in->imm)
                                pc += in->off;
                        break;
                case BPF_JMP | BPF_EXIT:
                        return (int) reg[0];
                default:
                        fail_msg("instruction 0x%02x at %d is outside the tested subset", in->code,
                                 pc - 1);
                }
        }
        fail_msg("the program ran off its end or looped (pc %d)", pc);
        return -1;
}

static void test_device_program(void **state) {
        struct bpf_insn insns[256];
        int len = cgroup_device_program_build(cgroup_sandbox_devices, cgroup_n_sandbox_devices,
                                              insns, ELEMENTSOF(insns));
        assert_true(len > 0);
        const unsigned C = BPF_DEVCG_DEV_CHAR, B = BPF_DEVCG_DEV_BLOCK;
        const unsigned R = BPF_DEVCG_ACC_READ, W = BPF_DEVCG_ACC_WRITE, M = BPF_DEVCG_ACC_MKNOD;
        /* Every node of the sandbox's /dev: read, write, both. */
        for (size_t i = 0; i < cgroup_n_sandbox_devices; i++) {
                uint32_t ma = (uint32_t) cgroup_sandbox_devices[i].major,
                         mi = (uint32_t) cgroup_sandbox_devices[i].minor;
                assert_int_equal(run_device_program(insns, len, C, R, ma, mi), 1);
                assert_int_equal(run_device_program(insns, len, C, W, ma, mi), 1);
                assert_int_equal(run_device_program(insns, len, C, R | W, ma, mi), 1);
                /* ...but never mknod, and not as a block device of the same numbers. */
                assert_int_equal(run_device_program(insns, len, C, M, ma, mi), 0);
                assert_int_equal(run_device_program(insns, len, C, R | M, ma, mi), 0);
                assert_int_equal(run_device_program(insns, len, B, R, ma, mi), 0);
        }
        /* Host devices a workload must not reach. */
        assert_int_equal(run_device_program(insns, len, C, R | W, 1, 11), 0);   /* kmsg */
        assert_int_equal(run_device_program(insns, len, C, R, 1, 1), 0);        /* mem */
        assert_int_equal(run_device_program(insns, len, C, R, 1, 2), 0);        /* kmem */
        assert_int_equal(run_device_program(insns, len, B, R | W, 8, 0), 0);    /* sda */
        assert_int_equal(run_device_program(insns, len, C, R | W, 10, 237), 0); /* loop-control */
        assert_int_equal(run_device_program(insns, len, C, R | W, 5, 1), 0);    /* console */
        assert_int_equal(run_device_program(insns, len, C, R | W, 4, 0), 0);    /* tty0 */

        /* Wildcards and access subsets. */
        struct cgroup_device_rule rules[] = {
                {'c', 136, -1, CGROUP_DEVICE_READ | CGROUP_DEVICE_WRITE}, /* any pts */
                {'b', -1, -1, CGROUP_DEVICE_MKNOD},                       /* mknod any block */
                {'c', 10, 200, CGROUP_DEVICE_READ},                       /* read-only tun */
        };
        len = cgroup_device_program_build(rules, ELEMENTSOF(rules), insns, ELEMENTSOF(insns));
        assert_true(len > 0);
        assert_int_equal(run_device_program(insns, len, C, R | W, 136, 0), 1);
        assert_int_equal(run_device_program(insns, len, C, R | W, 136, 4095), 1);
        assert_int_equal(run_device_program(insns, len, C, R | W, 137, 0), 0);
        assert_int_equal(run_device_program(insns, len, B, M, 8, 1), 1);
        assert_int_equal(run_device_program(insns, len, B, R, 8, 1), 0);
        assert_int_equal(run_device_program(insns, len, C, R, 10, 200), 1);
        assert_int_equal(run_device_program(insns, len, C, W, 10, 200), 0);
        assert_int_equal(run_device_program(insns, len, C, R | W, 10, 200), 0);

        /* No rule: everything denied. */
        len = cgroup_device_program_build(NULL, 0, insns, ELEMENTSOF(insns));
        assert_true(len > 0);
        assert_int_equal(run_device_program(insns, len, C, R, 1, 3), 0);
        /* Bad rules and too little room are errors, never a partial program. */
        struct cgroup_device_rule bad = {'x', 1, 3, CGROUP_DEVICE_READ};
        assert_int_equal(cgroup_device_program_build(&bad, 1, insns, ELEMENTSOF(insns)), -EINVAL);
        assert_int_equal(cgroup_device_program_build(cgroup_sandbox_devices,
                                                     cgroup_n_sandbox_devices, insns, 10),
                         -E2BIG);
}

int main(void) {
        log_set_max_level(LOG_CRIT); /* the error paths log on purpose */
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_weight_conversions),
                cmocka_unit_test(test_device_rule_format),
                cmocka_unit_test(test_device_program),
                cmocka_unit_test(test_format_cpu_max),
                cmocka_unit_test(test_parse_cpu_max),
                cmocka_unit_test(test_parse_keyed),
                cmocka_unit_test(test_parse_pids),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_limits_validate),
                cmocka_unit_test_setup_teardown(test_probe_nothing, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_manager_enables_controllers, setup_tree,
                                                teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_missing_controllers, setup_tree,
                                                teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_group_lifecycle, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_apply_limits, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_attach_freeze_kill, setup_tree,
                                                teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_stats, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_list, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v2_nested_parent, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v1_probe_and_create, setup_tree,
                                                teardown_tree),
                cmocka_unit_test_setup_teardown(test_v1_missing_controllers, setup_tree,
                                                teardown_tree),
                cmocka_unit_test_setup_teardown(test_v1_comounted, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v1_apply_limits, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_v1_attach_freeze_stats, setup_tree,
                                                teardown_tree),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
