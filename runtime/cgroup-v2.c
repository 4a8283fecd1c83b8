/* cgroup v2 backend: one unified tree, controllers enabled down to the agent's subtree. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/cgroup-internal.h"
#include "lib/log.h"
#include "lib/macro.h"

/* The controllers we drive on v2; io is optional everywhere (best-effort weights). */
static const enum cgroup_controller v2_wanted[] = {
        CGROUP_CONTROLLER_CPU,
        CGROUP_CONTROLLER_MEMORY,
        CGROUP_CONTROLLER_PIDS,
        CGROUP_CONTROLLER_IO,
};

/* Is word one of the space-separated words of list? */
static bool word_in_list(const char *list, const char *word) {
        size_t n = strlen(word);
        const char *p = list;
        while (*p) {
                while (*p == ' ' || *p == '\n')
                        p++;
                const char *end = p;
                while (*end && *end != ' ' && *end != '\n')
                        end++;
                if ((size_t) (end - p) == n && strncmp(p, word, n) == 0)
                        return true;
                p = end;
        }
        return false;
}

/* Enable in dir/cgroup.subtree_control what m->controllers has and it lacks. */
static int enable_controllers(struct cgroup_manager *m, const char *dir) {
        _cleanup_free_ char *enabled = NULL;
        int r = cgroup_read(dir, "cgroup.subtree_control", false, &enabled);
        if (r < 0)
                return r;

        char request[128] = "";
        for (size_t i = 0; i < ELEMENTSOF(v2_wanted); i++) {
                enum cgroup_controller c = v2_wanted[i];
                const char *name = cgroup_controller_name(CGROUP_V2, c);
                if (!(m->controllers & CGROUP_MASK(c)) || word_in_list(enabled, name))
                        continue;
                if (*request)
                        strcat(request, " ");
                strcat(request, "+");
                strcat(request, name);
        }
        if (!*request)
                return 0;

        /* One write: the kernel enables all of them or none. */
        r = cgroup_write(dir, "cgroup.subtree_control", request);
        if (r == -EBUSY)
                log_error("cgroup: %s holds processes itself, so it cannot hand controllers "
                          "to children (no-internal-process rule): move them to a leaf",
                          dir);
        return r;
}

static int v2_manager_init(struct cgroup_manager *m, unsigned flags) {
        _cleanup_free_ char *available = NULL;
        int r = cgroup_read(m->root, "cgroup.controllers", false, &available);
        if (r < 0)
                return r;

        char missing[128] = "";
        for (size_t i = 0; i < ELEMENTSOF(v2_wanted); i++) {
                enum cgroup_controller c = v2_wanted[i];
                const char *name = cgroup_controller_name(CGROUP_V2, c);
                if (word_in_list(available, name))
                        m->controllers |= CGROUP_MASK(c);
                else if (c != CGROUP_CONTROLLER_IO) {
                        if (*missing)
                                strcat(missing, ", ");
                        strcat(missing, name);
                }
        }
        if (*missing) {
                if (!(flags & CGROUP_MANAGER_ALLOW_MISSING_CONTROLLERS))
                        return log_error_errno(EOPNOTSUPP,
                                               "cgroup: v2 at %s lacks controller(s) %s", m->root,
                                               missing);
                log_notice("cgroup: v2 at %s lacks controller(s) %s; limits needing them "
                           "will fail",
                           m->root, missing);
        }

        /* Walk down from the root, enabling controllers at each level before the next. */
        _cleanup_free_ char *cur = strdup(m->root);
        _cleanup_free_ char *rest = strdup(m->parent);
        if (!cur || !rest)
                return -ENOMEM;
        char *save = NULL;
        for (char *tok = strtok_r(rest, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                r = enable_controllers(m, cur);
                if (r < 0)
                        return r;
                char *next = cgroup_join(cur, tok);
                if (!next)
                        return log_error_errno(ENAMETOOLONG, "cgroup: path %s/%s", cur, tok);
                free(cur);
                cur = next;
                r = cgroup_mkdir(cur);
                if (r < 0)
                        return r;
        }
        r = enable_controllers(m, cur);
        if (r < 0)
                return r;
        m->parent_dir = TAKE_PTR(cur);
        return 0;
}

static int v2_group_init(struct cgroup *cg, bool create) {
        cg->path = cgroup_join(cg->manager->parent_dir, cg->name);
        if (!cg->path)
                return -ENOMEM;
        if (create)
                return cgroup_mkdir(cg->path);
        struct stat st;
        if (stat(cg->path, &st) < 0)
                return log_error_errno(errno, "cgroup: open group %s", cg->path);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(ENOTDIR, "cgroup: open group %s", cg->path);
        return 0;
}

static int v2_apply_limits(struct cgroup *cg, const struct cgroup_limits *l) {
        struct cgroup_manager *m = cg->manager;
        bool has_cpu = m->controllers & CGROUP_MASK(CGROUP_CONTROLLER_CPU);
        bool has_memory = m->controllers & CGROUP_MASK(CGROUP_CONTROLLER_MEMORY);
        bool has_pids = m->controllers & CGROUP_MASK(CGROUP_CONTROLLER_PIDS);
        bool has_io = m->controllers & CGROUP_MASK(CGROUP_CONTROLLER_IO);
        int r, skipped = 0;

        /* Refuse before writing anything, so a missing controller changes nothing. */
        if ((r = cgroup_require_limit_controllers(cg, l)) < 0)
                return r;

        if (has_cpu) {
                r = cgroup_writef(cg->path, "cpu.weight", "%llu",
                                  (unsigned long long) (l->cpu_weight ? l->cpu_weight : 100));
                if (r < 0)
                        return r;
                char buf[64];
                r = cgroup_format_cpu_max(l->cpu_max_percent, buf, sizeof(buf));
                if (r < 0)
                        return r;
                r = cgroup_write(cg->path, "cpu.max", buf);
                if (r < 0)
                        return r;
        }

        if (has_memory) {
                if (l->memory_max > 0)
                        r = cgroup_writef(cg->path, "memory.max", "%llu",
                                          (unsigned long long) l->memory_max);
                else
                        r = cgroup_write(cg->path, "memory.max", "max");
                if (r < 0)
                        return r;
                /* Without swap accounting there is no memory.swap.max: say so. */
                if (cgroup_file_exists(cg->path, "memory.swap.max")) {
                        r = cgroup_write(cg->path, "memory.swap.max",
                                         l->memory_max > 0 ? "0" : "max");
                        if (r < 0)
                                return r;
                } else if (l->memory_max > 0) {
                        log_warning("cgroup: %s has no memory.swap.max: the workload may "
                                    "swap beyond memory_max",
                                    cg->path);
                        skipped |= CGROUP_SKIPPED_NO_SWAP;
                }
        }

        if (has_pids) {
                if (l->pids_max > 0)
                        r = cgroup_writef(cg->path, "pids.max", "%llu",
                                          (unsigned long long) l->pids_max);
                else
                        r = cgroup_write(cg->path, "pids.max", "max");
                if (r < 0)
                        return r;
        }

        if (has_io && cgroup_file_exists(cg->path, "io.weight")) {
                r = cgroup_writef(cg->path, "io.weight", "default %llu",
                                  (unsigned long long) (l->io_weight ? l->io_weight : 100));
                if (r < 0)
                        return r;
        } else if (l->io_weight > 0) {
                log_warning("cgroup: %s has no io.weight (%s): io_weight not applied", cg->path,
                            has_io ? "no weight-based I/O scheduler"
                                   : "io controller not available");
                skipped |= CGROUP_SKIPPED_IO_WEIGHT;
        }
        return skipped;
}

static int v2_attach_pid(struct cgroup *cg, pid_t pid) {
        return cgroup_writef(cg->path, "cgroup.procs", "%d", (int) pid);
}

static int v2_request_frozen(struct cgroup *cg, bool frozen) {
        if (!cgroup_file_exists(cg->path, "cgroup.freeze"))
                return log_error_errno(EOPNOTSUPP,
                                       "cgroup: %s has no cgroup.freeze "
                                       "(kernel before 5.2)",
                                       cg->path);
        return cgroup_write(cg->path, "cgroup.freeze", frozen ? "1" : "0");
}

static int v2_freeze_reached(struct cgroup *cg, bool frozen) {
        uint64_t v;
        int r = cgroup_read_keyed(cg->path, "cgroup.events", "frozen", &v);
        if (r < 0)
                return r;
        return (v != 0) == frozen;
}

/* Read "key value" from an optional file or key: absent reads as 0. */
static int read_keyed_optional(const char *dir, const char *file, const char *key, uint64_t *ret) {
        *ret = 0;
        if (!cgroup_file_exists(dir, file))
                return 0;
        _cleanup_free_ char *text = NULL;
        int r = cgroup_read(dir, file, false, &text);
        if (r < 0)
                return r;
        r = cgroup_parse_keyed(text, key, ret);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "cgroup: parse \"%s\" in %s/%s", key, dir, file);
        return 0;
}

static int v2_get_stats(struct cgroup *cg, struct cgroup_stats *st) {
        struct cgroup_manager *m = cg->manager;
        int r;

        /*
         * cpu.stat's usage_usec is core since 4.20, there without the cpu controller; its
         * nr_periods and nr_throttled lines come with the controller.
         */
        if (cgroup_file_exists(cg->path, "cpu.stat")) {
                _cleanup_free_ char *text = NULL;
                r = cgroup_read(cg->path, "cpu.stat", false, &text);
                if (r < 0)
                        return r;
                static const char *const keys[] = {"usage_usec", "nr_periods", "nr_throttled"};
                uint64_t *fields[] = {&st->cpu_usage_usec, &st->cpu_periods, &st->cpu_throttled};
                for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                        r = cgroup_parse_keyed(text, keys[i], fields[i]);
                        if (r < 0 && r != -ENOENT)
                                return log_error_errno(r, "cgroup: parse \"%s\" in %s/cpu.stat",
                                                       keys[i], cg->path);
                }
        }

        if ((m->controllers & CGROUP_MASK(CGROUP_CONTROLLER_CPU)) &&
            cgroup_file_exists(cg->path, "cpu.max")) { /* absent without CFS bandwidth */
                _cleanup_free_ char *max = NULL;
                r = cgroup_read(cg->path, "cpu.max", false, &max);
                if (r < 0)
                        return r;
                r = cgroup_parse_cpu_max(max, &st->cpu_quota_usec, &st->cpu_period_usec);
                if (r < 0)
                        return log_error_errno(r, "cgroup: parse %s/cpu.max", cg->path);
        }

        if (m->controllers & CGROUP_MASK(CGROUP_CONTROLLER_MEMORY)) {
                r = cgroup_read_u64(cg->path, "memory.current", &st->memory_current);
                if (r < 0)
                        return r;
                if (cgroup_file_exists(cg->path, "memory.peak")) { /* 5.19 and later */
                        r = cgroup_read_u64(cg->path, "memory.peak", &st->memory_peak);
                        if (r < 0)
                                return r;
                }
                r = read_keyed_optional(cg->path, "memory.events", "oom_kill", &st->oom_kills);
                if (r < 0)
                        return r;
        }

        if (m->controllers & CGROUP_MASK(CGROUP_CONTROLLER_PIDS)) {
                r = cgroup_read_u64(cg->path, "pids.current", &st->pids_current);
                if (r < 0)
                        return r;
        }

        uint64_t frozen;
        r = read_keyed_optional(cg->path, "cgroup.events", "frozen", &frozen);
        if (r < 0)
                return r;
        st->frozen = frozen != 0;
        return 0;
}

static int v2_kill_all(struct cgroup *cg, int sig) {
        /* cgroup.kill (5.14) kills atomically, forks in flight included. */
        if (sig == SIGKILL && cgroup_file_exists(cg->path, "cgroup.kill")) {
                int r = cgroup_write(cg->path, "cgroup.kill", "1");
                return r < 0 ? r : 0;
        }
        return cgroup_signal_procs(cg->path, sig);
}

static int v2_is_empty(struct cgroup *cg) {
        if (cgroup_file_exists(cg->path, "cgroup.events")) {
                uint64_t populated;
                int r = cgroup_read_keyed(cg->path, "cgroup.events", "populated", &populated);
                if (r < 0)
                        return r;
                return populated == 0;
        }
        _cleanup_free_ pid_t *pids = NULL;
        size_t n;
        int r = cgroup_read_pids(cg->path, &pids, &n);
        if (r < 0)
                return r;
        return n == 0;
}

static int v2_destroy(struct cgroup *cg) {
        return cgroup_rmdir(cg->path);
}

/* No controller: a BPF program attached to the group (any cgroup2 tree takes one). */
static int v2_restrict_devices(struct cgroup *cg, const struct cgroup_device_rule *allow,
                               size_t n) {
        int r = cgroup_device_program_attach(cg->path, allow, n);
        /* A kernel without CONFIG_CGROUP_BPF: say it as a missing feature. */
        return r == -EINVAL || r == -ENOSYS ? -EOPNOTSUPP : r;
}

const struct cgroup_backend cgroup_backend_v2 = {
        .manager_init = v2_manager_init,
        .group_init = v2_group_init,
        .apply_limits = v2_apply_limits,
        .attach_pid = v2_attach_pid,
        .request_frozen = v2_request_frozen,
        .freeze_reached = v2_freeze_reached,
        .get_stats = v2_get_stats,
        .kill_all = v2_kill_all,
        .is_empty = v2_is_empty,
        .destroy = v2_destroy,
        .restrict_devices = v2_restrict_devices,
};
