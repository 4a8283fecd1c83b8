/* cgroup v1 backend: one directory per workload in each controller hierarchy. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/cgroup-internal.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"

/* What the kernel reads back from memory.limit_in_bytes when there is no limit. */
#define V1_UNLIMITED UINT64_MAX

static const unsigned v1_required =
        CGROUP_MASK(CGROUP_CONTROLLER_CPU) | CGROUP_MASK(CGROUP_CONTROLLER_CPUACCT) |
        CGROUP_MASK(CGROUP_CONTROLLER_MEMORY) | CGROUP_MASK(CGROUP_CONTROLLER_PIDS) |
        CGROUP_MASK(CGROUP_CONTROLLER_FREEZER);

/* Is dir a mounted hierarchy (or a fake one): a directory with cgroup.procs? */
static bool is_hierarchy(const char *dir, struct stat *ret_st) {
        if (stat(dir, ret_st) < 0 || !S_ISDIR(ret_st->st_mode))
                return false;
        return cgroup_file_exists(dir, "cgroup.procs");
}

/* Does the comma-separated mount name ("cpu,cpuacct") list the controller? */
static bool name_lists_controller(const char *mount_name, const char *controller) {
        size_t n = strlen(controller);
        const char *p = mount_name;
        for (;;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t) (comma - p) : strlen(p);
                if (len == n && strncmp(p, controller, n) == 0)
                        return true;
                if (!comma)
                        return false;
                p = comma + 1;
        }
}

/*
 * Find where the controller is mounted: <root>/<name> first (Debian, systemd and most
 * tools make that, possibly as a symlink), else a co-mounted "<root>/a,b".
 */
static int find_hierarchy(const char *root, const char *controller, char **ret_dir,
                          struct stat *ret_st) {
        _cleanup_free_ char *direct = cgroup_join(root, controller);
        if (!direct)
                return -ENOMEM;
        if (is_hierarchy(direct, ret_st)) {
                *ret_dir = TAKE_PTR(direct);
                return 1;
        }
        DIR *d = opendir(root);
        if (!d)
                return log_error_errno(errno, "cgroup: open directory %s", root);
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strchr(de->d_name, ',') || !name_lists_controller(de->d_name, controller))
                        continue;
                char *p = cgroup_join(root, de->d_name);
                if (!p) {
                        r = -ENOMEM;
                        break;
                }
                if (is_hierarchy(p, ret_st)) {
                        *ret_dir = p;
                        r = 1;
                        break;
                }
                free(p);
        }
        closedir(d);
        return r;
}

static int v1_manager_init(struct cgroup_manager *m, unsigned flags) {
        dev_t dev[CGROUP_CONTROLLER_MAX];
        ino_t ino[CGROUP_CONTROLLER_MAX];
        char *mount_dir[CGROUP_CONTROLLER_MAX] = {};
        char missing[128] = "";
        int r = 0;

        for (unsigned c = 0; c < CGROUP_CONTROLLER_MAX; c++) {
                const char *name = cgroup_controller_name(CGROUP_V1, c);
                char *dir = NULL;
                struct stat st;
                r = find_hierarchy(m->root, name, &dir, &st);
                if (r < 0)
                        goto out;
                if (r == 0) {
                        if (v1_required & CGROUP_MASK(c)) {
                                if (*missing)
                                        strcat(missing, ", ");
                                strcat(missing, name);
                        }
                        continue;
                }
                m->controllers |= CGROUP_MASK(c);
                /* Co-mounted controllers (cpu,cpuacct; or a symlink) share a hierarchy. */
                size_t i;
                for (i = 0; i < m->n_hierarchies; i++)
                        if (dev[i] == st.st_dev && ino[i] == st.st_ino)
                                break;
                if (i == m->n_hierarchies) {
                        dev[i] = st.st_dev;
                        ino[i] = st.st_ino;
                        mount_dir[i] = dir;
                        m->n_hierarchies++;
                } else
                        free(dir);
                m->hierarchy_of[c] = (int) i;
        }
        r = 0;

        if (m->n_hierarchies == 0) {
                r = log_error_errno(ENOMEDIUM,
                                    "cgroup: %s holds neither cgroup v2 "
                                    "(cgroup.controllers) nor v1 controller hierarchies",
                                    m->root);
                goto out;
        }
        if (*missing) {
                if (!(flags & CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS)) {
                        r = log_error_errno(EOPNOTSUPP, "cgroup: v1 at %s lacks controller(s) %s",
                                            m->root, missing);
                        goto out;
                }
                log_notice("cgroup: v1 at %s lacks controller(s) %s; operations needing them "
                           "will fail",
                           m->root, missing);
        }

        for (size_t i = 0; i < m->n_hierarchies; i++) {
                m->hierarchy_dir[i] = cgroup_join(mount_dir[i], m->parent);
                if (!m->hierarchy_dir[i]) {
                        r = -ENOMEM;
                        goto out;
                }
                r = mkdir_parents(m->hierarchy_dir[i], 0755);
                if (r < 0) {
                        log_error_errno(r, "cgroup: mkdir %s", m->hierarchy_dir[i]);
                        goto out;
                }
        }
out:
        for (size_t i = 0; i < ELEMENTSOF(mount_dir); i++)
                free(mount_dir[i]);
        return r;
}

/* The group's directory in the hierarchy of controller c (the controller must exist). */
static const char *dir_of(struct cgroup *cg, enum cgroup_controller c) {
        return cg->dir[cg->manager->hierarchy_of[c]];
}

static bool has(struct cgroup *cg, enum cgroup_controller c) {
        return cg->manager->controllers & CGROUP_MASK(c);
}

static int v1_group_init(struct cgroup *cg, bool create) {
        struct cgroup_manager *m = cg->manager;
        for (size_t i = 0; i < m->n_hierarchies; i++) {
                cg->dir[i] = cgroup_join(m->hierarchy_dir[i], cg->name);
                if (!cg->dir[i])
                        return -ENOMEM;
        }
        cg->path = strdup(cg->dir[0]);
        if (!cg->path)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_hierarchies; i++) {
                if (create) {
                        int r = cgroup_mkdir(cg->dir[i]);
                        if (r < 0)
                                return r;
                        continue;
                }
                struct stat st;
                if (stat(cg->dir[i], &st) < 0)
                        return log_error_errno(errno, "cgroup: open group %s", cg->dir[i]);
                if (!S_ISDIR(st.st_mode))
                        return log_error_errno(ENOTDIR, "cgroup: open group %s", cg->dir[i]);
        }
        return 0;
}

/*
 * The kernel insists on memsw >= memory at every moment, so the order of the two writes
 * depends on whether the limit goes up or down.
 */
static int v1_apply_memory(struct cgroup *cg, uint64_t memory_max, int *skipped) {
        const char *dir = dir_of(cg, CGROUP_CONTROLLER_MEMORY);
        char value[32];
        if (memory_max > 0)
                snprintf(value, sizeof(value), "%llu", (unsigned long long) memory_max);
        else
                strcpy(value, "-1");

        if (!cgroup_file_exists(dir, "memory.memsw.limit_in_bytes")) {
                if (memory_max > 0) {
                        log_warning("cgroup: %s has no memory.memsw.* (swap accounting off): "
                                    "the workload may swap beyond memory_max",
                                    dir);
                        *skipped |= CGROUP_SKIPPED_NO_SWAP;
                }
                return cgroup_write(dir, "memory.limit_in_bytes", value);
        }

        uint64_t memsw_now;
        int r = cgroup_read_u64(dir, "memory.memsw.limit_in_bytes", &memsw_now);
        if (r < 0)
                return r;
        uint64_t wanted = memory_max > 0 ? memory_max : V1_UNLIMITED;
        if (wanted <= memsw_now) {
                r = cgroup_write(dir, "memory.limit_in_bytes", value);
                if (r < 0)
                        return r;
                return cgroup_write(dir, "memory.memsw.limit_in_bytes", value);
        }
        r = cgroup_write(dir, "memory.memsw.limit_in_bytes", value);
        if (r < 0)
                return r;
        return cgroup_write(dir, "memory.limit_in_bytes", value);
}

static int v1_apply_limits(struct cgroup *cg, const struct cgroup_limits *l) {
        int r, skipped = 0;

        if ((r = cgroup_require_limit_controllers(cg, l)) < 0)
                return r;

        if (has(cg, CGROUP_CONTROLLER_CPU)) {
                const char *dir = dir_of(cg, CGROUP_CONTROLLER_CPU);
                r = cgroup_writef(dir, "cpu.shares", "%llu",
                                  (unsigned long long) cgroup_weight_to_shares(l->cpu_weight));
                if (r < 0)
                        return r;
                r = cgroup_write(dir, "cpu.cfs_period_us", "100000");
                if (r < 0)
                        return r;
                if (l->cpu_max_percent > 0)
                        r = cgroup_writef(
                                dir, "cpu.cfs_quota_us", "%llu",
                                (unsigned long long) cgroup_cpu_quota_usec(l->cpu_max_percent));
                else
                        r = cgroup_write(dir, "cpu.cfs_quota_us", "-1");
                if (r < 0)
                        return r;
        }

        if (has(cg, CGROUP_CONTROLLER_MEMORY)) {
                r = v1_apply_memory(cg, l->memory_max, &skipped);
                if (r < 0)
                        return r;
        }

        if (has(cg, CGROUP_CONTROLLER_PIDS)) {
                const char *dir = dir_of(cg, CGROUP_CONTROLLER_PIDS);
                if (l->pids_max > 0)
                        r = cgroup_writef(dir, "pids.max", "%llu",
                                          (unsigned long long) l->pids_max);
                else
                        r = cgroup_write(dir, "pids.max", "max");
                if (r < 0)
                        return r;
        }

        /* blkio.weight needs CFQ (gone since 5.0); with BFQ or none there is no knob. */
        if (has(cg, CGROUP_CONTROLLER_IO) &&
            cgroup_file_exists(dir_of(cg, CGROUP_CONTROLLER_IO), "blkio.weight")) {
                r = cgroup_writef(dir_of(cg, CGROUP_CONTROLLER_IO), "blkio.weight", "%llu",
                                  (unsigned long long) cgroup_weight_to_blkio(l->io_weight));
                if (r < 0)
                        return r;
        } else if (l->io_weight > 0) {
                log_warning("cgroup: %s: no blkio.weight (%s): io_weight not applied", cg->path,
                            has(cg, CGROUP_CONTROLLER_IO) ? "no weight-based I/O scheduler"
                                                          : "blkio controller not mounted");
                skipped |= CGROUP_SKIPPED_IO_WEIGHT;
        }
        return skipped;
}

static int v1_attach_pid(struct cgroup *cg, pid_t pid) {
        for (size_t i = 0; i < cg->manager->n_hierarchies; i++) {
                int r = cgroup_writef(cg->dir[i], "cgroup.procs", "%d", (int) pid);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v1_request_frozen(struct cgroup *cg, bool frozen) {
        int r = cgroup_require_controller(cg, CGROUP_CONTROLLER_FREEZER,
                                          frozen ? "freeze" : "thaw");
        if (r < 0)
                return r;
        return cgroup_write(dir_of(cg, CGROUP_CONTROLLER_FREEZER), "freezer.state",
                            frozen ? "FROZEN" : "THAWED");
}

/* freezer.state reads FREEZING until every task is in the refrigerator. */
static int v1_freeze_reached(struct cgroup *cg, bool frozen) {
        _cleanup_free_ char *state = NULL;
        int r = cgroup_read(dir_of(cg, CGROUP_CONTROLLER_FREEZER), "freezer.state", false, &state);
        if (r < 0)
                return r;
        state[strcspn(state, "\n")] = '\0';
        return streq(state, frozen ? "FROZEN" : "THAWED");
}

static int v1_get_stats(struct cgroup *cg, struct cgroup_stats *st) {
        int r;
        if (has(cg, CGROUP_CONTROLLER_CPUACCT)) {
                uint64_t ns;
                r = cgroup_read_u64(dir_of(cg, CGROUP_CONTROLLER_CPUACCT), "cpuacct.usage", &ns);
                if (r < 0)
                        return r;
                st->cpu_usage_usec = ns / 1000;
        }
        if (has(cg, CGROUP_CONTROLLER_CPU)) {
                const char *dir = dir_of(cg, CGROUP_CONTROLLER_CPU);
                /* No CFS bandwidth in the kernel: no quota files, nothing to report. */
                if (cgroup_file_exists(dir, "cpu.cfs_quota_us")) {
                        /* cfs_quota_us is signed: -1 is no limit. */
                        _cleanup_free_ char *quota = NULL;
                        r = cgroup_read(dir, "cpu.cfs_quota_us", false, &quota);
                        if (r < 0)
                                return r;
                        if (strncmp(quota, "-1", 2) != 0 &&
                            (r = cgroup_parse_u64(quota, &st->cpu_quota_usec)) < 0)
                                return log_error_errno(r, "cgroup: parse %s/cpu.cfs_quota_us", dir);
                        r = cgroup_read_u64(dir, "cpu.cfs_period_us", &st->cpu_period_usec);
                        if (r < 0)
                                return r;
                }
                if (cgroup_file_exists(dir, "cpu.stat")) {
                        _cleanup_free_ char *text = NULL;
                        r = cgroup_read(dir, "cpu.stat", false, &text);
                        if (r < 0)
                                return r;
                        r = cgroup_parse_keyed(text, "nr_periods", &st->cpu_periods);
                        if (r == 0)
                                r = cgroup_parse_keyed(text, "nr_throttled", &st->cpu_throttled);
                        if (r < 0 && r != -ENOENT)
                                return log_error_errno(r, "cgroup: parse %s/cpu.stat", dir);
                }
        }
        if (has(cg, CGROUP_CONTROLLER_MEMORY)) {
                const char *dir = dir_of(cg, CGROUP_CONTROLLER_MEMORY);
                r = cgroup_read_u64(dir, "memory.usage_in_bytes", &st->memory_current);
                if (r < 0)
                        return r;
                r = cgroup_read_u64(dir, "memory.max_usage_in_bytes", &st->memory_peak);
                if (r < 0)
                        return r;
                /* The oom_kill line came with 4.13; older kernels only say under_oom. */
                _cleanup_free_ char *text = NULL;
                r = cgroup_read(dir, "memory.oom_control", false, &text);
                if (r < 0)
                        return r;
                r = cgroup_parse_keyed(text, "oom_kill", &st->oom_kills);
                if (r < 0 && r != -ENOENT)
                        return log_error_errno(r, "cgroup: parse %s/memory.oom_control", dir);
        }
        if (has(cg, CGROUP_CONTROLLER_PIDS)) {
                r = cgroup_read_u64(dir_of(cg, CGROUP_CONTROLLER_PIDS), "pids.current",
                                    &st->pids_current);
                if (r < 0)
                        return r;
        }
        if (has(cg, CGROUP_CONTROLLER_FREEZER)) {
                r = v1_freeze_reached(cg, true);
                if (r < 0)
                        return r;
                st->frozen = r > 0;
        }
        return 0;
}

static int v1_kill_all(struct cgroup *cg, int sig) {
        if (sig != SIGKILL || !has(cg, CGROUP_CONTROLLER_FREEZER))
                return cgroup_signal_procs(cg->path, sig);

        /*
         * v1 has no cgroup.kill: freeze first so no process forks behind our back, kill
         * them all, thaw so they can die. Like runc and crun do.
         */
        int r = cgroup_set_frozen(cg, true);
        if (r < 0)
                log_warning_errno(r, "cgroup: %s: killing without freezing first", cg->path);
        int count = cgroup_signal_procs(dir_of(cg, CGROUP_CONTROLLER_FREEZER), sig);
        r = cgroup_set_frozen(cg, false);
        if (count < 0)
                return count;
        return r < 0 ? r : count;
}

static int v1_is_empty(struct cgroup *cg) {
        for (size_t i = 0; i < cg->manager->n_hierarchies; i++) {
                _cleanup_free_ pid_t *pids = NULL;
                size_t n;
                int r = cgroup_read_pids(cg->dir[i], &pids, &n);
                if (r < 0)
                        return r;
                if (n > 0)
                        return 0;
        }
        return 1;
}

static int v1_destroy(struct cgroup *cg) {
        int ret = 0;
        for (size_t i = 0; i < cg->manager->n_hierarchies; i++) {
                int r = cgroup_rmdir(cg->dir[i]);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

static int v1_restrict_devices(struct cgroup *cg, const struct cgroup_device_rule *allow,
                               size_t n) {
        int r = cgroup_require_controller(cg, CGROUP_CONTROLLER_DEVICES, "restrict devices");
        if (r < 0)
                return r;
        return cgroup_device_v1_apply(dir_of(cg, CGROUP_CONTROLLER_DEVICES), allow, n);
}

const struct cgroup_backend cgroup_backend_v1 = {
        .manager_init = v1_manager_init,
        .group_init = v1_group_init,
        .apply_limits = v1_apply_limits,
        .attach_pid = v1_attach_pid,
        .request_frozen = v1_request_frozen,
        .freeze_reached = v1_freeze_reached,
        .get_stats = v1_get_stats,
        .kill_all = v1_kill_all,
        .is_empty = v1_is_empty,
        .destroy = v1_destroy,
        .restrict_devices = v1_restrict_devices,
};
