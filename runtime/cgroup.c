/* cgroups: probe for v1 or v2, dispatch to the backend, pure helpers, file access. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup-internal.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"

/* cgroup files are small; cgroup.procs of a big group is the largest we read. */
#define CGROUP_FILE_MAX (4u * 1024 * 1024)
#define CGROUP_PIDS_MAX (1u << 20)
#define CGROUP_PARENT_MAX 256
#define CGROUP_WEIGHT_MIN 1
#define CGROUP_WEIGHT_MAX 10000
#define CGROUP_WEIGHT_DEFAULT 100
#define CGROUP_CPU_PERIOD_USEC 100000
#define CGROUP_POLL_USEC 10000

/* ---- pure helpers ------------------------------------------------------------------- */

bool cgroup_name_is_valid(const char *name) {
        if (!name)
                return false;
        size_t n = strlen(name);
        if (n == 0 || n > CGROUP_NAME_MAX)
                return false;
        if (streq(name, ".") || streq(name, ".."))
                return false;
        for (const char *p = name; *p; p++) {
                char c = *p;
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '@' ||
                          c == ':';
                if (!ok)
                        return false;
        }
        /* Names the kernel or our own layout uses for files of its own. */
        if (strncmp(name, "cgroup.", 7) == 0)
                return false;
        return true;
}

static bool weight_is_valid(uint64_t w) {
        return w == 0 || (w >= CGROUP_WEIGHT_MIN && w <= CGROUP_WEIGHT_MAX);
}

int cgroup_limits_validate(const struct cgroup_limits *l, unsigned ncpu) {
        if (!l)
                return -EINVAL;
        if (!weight_is_valid(l->cpu_weight))
                return log_error_errno(EINVAL, "cgroup: cpu_weight %llu out of range 1..%d",
                                       (unsigned long long) l->cpu_weight, CGROUP_WEIGHT_MAX);
        if (!weight_is_valid(l->io_weight))
                return log_error_errno(EINVAL, "cgroup: io_weight %llu out of range 1..%d",
                                       (unsigned long long) l->io_weight, CGROUP_WEIGHT_MAX);
        uint64_t max_percent = 100ULL * (ncpu > 0 ? ncpu : 1);
        if (l->cpu_max_percent > max_percent)
                return log_error_errno(EINVAL,
                                       "cgroup: cpu_max_percent %llu out of range 1..%llu "
                                       "(%u CPUs)",
                                       (unsigned long long) l->cpu_max_percent,
                                       (unsigned long long) max_percent, ncpu);
        /* The kernel keeps limits in signed 64-bit numbers; refuse what it cannot hold. */
        if (l->memory_max > (uint64_t) INT64_MAX)
                return log_error_errno(EINVAL, "cgroup: memory_max %llu too large",
                                       (unsigned long long) l->memory_max);
        if (l->pids_max > (uint64_t) INT32_MAX)
                return log_error_errno(EINVAL, "cgroup: pids_max %llu too large",
                                       (unsigned long long) l->pids_max);
        return 0;
}

/* A cgroup v2 weight (1-10000, 0: the default 100) onto a v1 scale whose default is
 * at_default, clamped to [lo, hi], as systemd maps them. */
static uint64_t weight_scaled(uint64_t weight, uint64_t at_default, uint64_t lo, uint64_t hi) {
        if (weight == 0)
                weight = CGROUP_WEIGHT_DEFAULT;
        if (weight > CGROUP_WEIGHT_MAX)
                weight = CGROUP_WEIGHT_MAX;
        uint64_t v = weight * at_default / CGROUP_WEIGHT_DEFAULT;
        return v < lo ? lo : v > hi ? hi : v;
}

uint64_t cgroup_weight_to_shares(uint64_t weight) {
        return weight_scaled(weight, 1024, 2, 262144);
}

/* Default 100 <-> blkio default 500, clamped to blkio's 10-1000. */
uint64_t cgroup_weight_to_blkio(uint64_t weight) {
        return weight_scaled(weight, 500, 10, 1000);
}

uint64_t cgroup_cpu_quota_usec(uint64_t percent) {
        return percent * (CGROUP_CPU_PERIOD_USEC / 100);
}

int cgroup_format_cpu_max(uint64_t percent, char *buf, size_t size) {
        int n;
        if (percent == 0)
                n = snprintf(buf, size, "max %d", CGROUP_CPU_PERIOD_USEC);
        else
                n = snprintf(buf, size, "%llu %d",
                             (unsigned long long) cgroup_cpu_quota_usec(percent),
                             CGROUP_CPU_PERIOD_USEC);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return 0;
}

/* Parse an unsigned decimal that ends at end (exclusive). */
static int parse_u64_range(const char *s, const char *end, uint64_t *ret) {
        if (s == end)
                return -EINVAL;
        uint64_t v = 0;
        for (const char *p = s; p < end; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                unsigned d = (unsigned) (*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int cgroup_parse_u64(const char *text, uint64_t *ret) {
        if (!text)
                return -EINVAL;
        const char *end = text + strlen(text);
        while (end > text && (end[-1] == '\n' || end[-1] == ' '))
                end--;
        return parse_u64_range(text, end, ret);
}

int cgroup_parse_cpu_max(const char *text, uint64_t *ret_quota, uint64_t *ret_period) {
        if (!text)
                return -EINVAL;
        const char *sp = strchr(text, ' ');
        if (!sp)
                return -EINVAL;
        uint64_t quota = 0, period;
        if (!(sp - text == 3 && strncmp(text, "max", 3) == 0)) {
                int r = parse_u64_range(text, sp, &quota);
                if (r < 0)
                        return r;
                if (quota == 0)
                        return -EINVAL;
        }
        int r = cgroup_parse_u64(sp + 1, &period);
        if (r < 0)
                return r;
        if (period == 0)
                return -EINVAL;
        *ret_quota = quota;
        *ret_period = period;
        return 0;
}

int cgroup_parse_keyed(const char *text, const char *key, uint64_t *ret) {
        if (!text || !key || !*key)
                return -EINVAL;
        size_t klen = strlen(key);
        const char *line = text;
        while (*line) {
                const char *eol = strchr(line, '\n');
                if (!eol)
                        eol = line + strlen(line);
                if ((size_t) (eol - line) > klen && strncmp(line, key, klen) == 0 &&
                    line[klen] == ' ') {
                        const char *v = line + klen + 1;
                        const char *end = eol;
                        while (end > v && end[-1] == ' ')
                                end--;
                        return parse_u64_range(v, end, ret);
                }
                line = *eol ? eol + 1 : eol;
        }
        return -ENOENT;
}

int cgroup_parse_pids(const char *text, pid_t **ret_pids, size_t *ret_n) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0, cap = 0;
        const char *line = text ? text : "";
        while (*line) {
                const char *eol = strchr(line, '\n');
                if (!eol)
                        eol = line + strlen(line);
                if (eol > line) {
                        uint64_t v;
                        int r = parse_u64_range(line, eol, &v);
                        if (r < 0 || v == 0 || v > INT32_MAX)
                                return -EINVAL;
                        if (n >= CGROUP_PIDS_MAX)
                                return -E2BIG;
                        if (n == cap) {
                                size_t ncap = cap ? cap * 2 : 16;
                                pid_t *np = realloc(pids, ncap * sizeof(pid_t));
                                if (!np)
                                        return -ENOMEM;
                                pids = np;
                                cap = ncap;
                        }
                        pids[n++] = (pid_t) v;
                }
                line = *eol ? eol + 1 : eol;
        }
        *ret_pids = TAKE_PTR(pids);
        *ret_n = n;
        return 0;
}

/* ---- file access shared by the backends --------------------------------------------- */

static const char *const controller_names_v1[CGROUP_CONTROLLER_MAX] = {
        [CGROUP_CONTROLLER_CPU] = "cpu",         [CGROUP_CONTROLLER_CPUACCT] = "cpuacct",
        [CGROUP_CONTROLLER_MEMORY] = "memory",   [CGROUP_CONTROLLER_PIDS] = "pids",
        [CGROUP_CONTROLLER_FREEZER] = "freezer", [CGROUP_CONTROLLER_IO] = "blkio",
        [CGROUP_CONTROLLER_DEVICES] = "devices",
};

static const char *const controller_names_v2[CGROUP_CONTROLLER_MAX] = {
        [CGROUP_CONTROLLER_CPU] = "cpu",       [CGROUP_CONTROLLER_CPUACCT] = NULL,
        [CGROUP_CONTROLLER_MEMORY] = "memory", [CGROUP_CONTROLLER_PIDS] = "pids",
        [CGROUP_CONTROLLER_FREEZER] = NULL,    [CGROUP_CONTROLLER_IO] = "io",
};

const char *cgroup_controller_name(enum cgroup_version v, enum cgroup_controller c) {
        if ((unsigned) c >= CGROUP_CONTROLLER_MAX)
                return NULL;
        return v == CGROUP_V1 ? controller_names_v1[c] : controller_names_v2[c];
}

char *cgroup_join(const char *dir, const char *file) {
        char *p;
        if (asprintf(&p, "%s/%s", dir, file) < 0)
                return NULL;
        if (strlen(p) >= PATH_MAX) {
                free(p);
                return NULL;
        }
        return p;
}

bool cgroup_file_exists(const char *dir, const char *file) {
        _cleanup_free_ char *p = cgroup_join(dir, file);
        return p && access(p, F_OK) == 0;
}

int cgroup_write(const char *dir, const char *file, const char *value) {
        _cleanup_free_ char *p = cgroup_join(dir, file);
        if (!p)
                return log_error_errno(ENOMEM, "cgroup: path %s/%s", dir, file);
        /* O_TRUNC is a no-op on cgroupfs (runc does the same) and keeps fake trees exact. */
        _cleanup_close_ int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return log_error_errno(errno, "cgroup: open %s for writing", p);
        /* One write: the kernel takes the value as a whole or refuses it. */
        size_t len = strlen(value);
        ssize_t n;
        do
                n = write(fd, value, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return log_error_errno(errno, "cgroup: write \"%s\" to %s", value, p);
        if ((size_t) n != len)
                return log_error_errno(EIO, "cgroup: short write of \"%s\" to %s", value, p);
        int cfd = TAKE_FD(fd);
        if (close(cfd) < 0 && errno != EINTR)
                return log_error_errno(errno, "cgroup: close %s after writing \"%s\"", p, value);
        return 0;
}

int cgroup_writef(const char *dir, const char *file, const char *fmt, ...) {
        char buf[128];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(buf))
                return log_error_errno(ENOBUFS, "cgroup: value for %s/%s too long", dir, file);
        return cgroup_write(dir, file, buf);
}

int cgroup_read(const char *dir, const char *file, bool quiet, char **ret) {
        _cleanup_free_ char *p = cgroup_join(dir, file);
        if (!p)
                return log_error_errno(ENOMEM, "cgroup: path %s/%s", dir, file);
        int r = read_file_bounded(p, CGROUP_FILE_MAX, ret, NULL);
        if (r < 0 && !quiet)
                return log_error_errno(r, "cgroup: read %s", p);
        return r;
}

int cgroup_read_u64(const char *dir, const char *file, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r = cgroup_read(dir, file, false, &text);
        if (r < 0)
                return r;
        r = cgroup_parse_u64(text, ret);
        if (r < 0)
                return log_error_errno(r, "cgroup: parse %s/%s: not a number", dir, file);
        return 0;
}

int cgroup_read_keyed(const char *dir, const char *file, const char *key, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r = cgroup_read(dir, file, false, &text);
        if (r < 0)
                return r;
        r = cgroup_parse_keyed(text, key, ret);
        if (r < 0)
                return log_error_errno(r, "cgroup: parse \"%s\" in %s/%s", key, dir, file);
        return 0;
}

int cgroup_read_pids(const char *dir, pid_t **ret_pids, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        int r = cgroup_read(dir, "cgroup.procs", false, &text);
        if (r < 0)
                return r;
        r = cgroup_parse_pids(text, ret_pids, ret_n);
        if (r < 0)
                return log_error_errno(r, "cgroup: parse %s/cgroup.procs", dir);
        return 0;
}

int cgroup_signal_procs(const char *dir, int sig) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n;
        int r = cgroup_read_pids(dir, &pids, &n);
        if (r < 0)
                return r;
        int count = 0;
        for (size_t i = 0; i < n; i++) {
                if (kill(pids[i], sig) < 0) {
                        if (errno == ESRCH)
                                continue;
                        return log_error_errno(errno, "cgroup: kill %d with signal %d (%s)",
                                               (int) pids[i], sig, dir);
                }
                count++;
        }
        return count;
}

int cgroup_mkdir(const char *path) {
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "cgroup: mkdir %s", path);
        struct stat st;
        if (stat(path, &st) < 0)
                return log_error_errno(errno, "cgroup: stat %s", path);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(ENOTDIR, "cgroup: %s", path);
        return 0;
}

int cgroup_rmdir(const char *path) {
        if (rmdir(path) < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno == EBUSY)
                        return log_error_errno(EBUSY, "cgroup: rmdir %s: processes still in it",
                                               path);
                return log_error_errno(errno, "cgroup: rmdir %s", path);
        }
        return 0;
}

int cgroup_require_controller(struct cgroup *cg, enum cgroup_controller c, const char *what) {
        struct cgroup_manager *m = cg->manager;
        if (m->controllers & CGROUP_MASK(c))
                return 0;
        return log_error_errno(EOPNOTSUPP,
                               "cgroup: cannot %s for %s: controller \"%s\" is not available "
                               "under %s",
                               what, cg->path, cgroup_controller_name(m->version, c), m->root);
}

int cgroup_require_limit_controllers(struct cgroup *cg, const struct cgroup_limits *l) {
        int r;
        if (l->cpu_weight > 0 &&
            (r = cgroup_require_controller(cg, CGROUP_CONTROLLER_CPU, "set cpu_weight")) < 0)
                return r;
        if (l->cpu_max_percent > 0 &&
            (r = cgroup_require_controller(cg, CGROUP_CONTROLLER_CPU, "set cpu_max")) < 0)
                return r;
        if (l->memory_max > 0 &&
            (r = cgroup_require_controller(cg, CGROUP_CONTROLLER_MEMORY, "set memory_max")) < 0)
                return r;
        if (l->pids_max > 0 &&
            (r = cgroup_require_controller(cg, CGROUP_CONTROLLER_PIDS, "set pids_max")) < 0)
                return r;
        return 0;
}

/* ---- manager ------------------------------------------------------------------------ */

static bool parent_is_valid(const char *parent) {
        if (!parent || !*parent || strlen(parent) > CGROUP_PARENT_MAX)
                return false;
        char buf[CGROUP_PARENT_MAX + 1];
        strcpy(buf, parent);
        char *save = NULL;
        size_t parts = 0;
        for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                if (!cgroup_name_is_valid(tok))
                        return false;
                parts++;
        }
        return parts > 0 && parent[0] != '/';
}

/* Strip trailing slashes into a heap copy ("/" stays "/"). */
static char *path_normalize(const char *path) {
        char *p = strdup(path);
        if (!p)
                return NULL;
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
                p[--n] = '\0';
        return p;
}

static unsigned cpu_count(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned) n : 1;
}

int cgroup_manager_new(const char *cgroup_root, const char *parent, unsigned flags,
                       struct cgroup_manager **ret) {
        if (!cgroup_root || !*cgroup_root || !ret)
                return -EINVAL;
        if (!parent_is_valid(parent))
                return log_error_errno(EINVAL,
                                       "cgroup: invalid parent \"%s\": want a relative "
                                       "path of valid names",
                                       parent ? parent : "(null)");

        struct cgroup_manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(m->hierarchy_of); i++)
                m->hierarchy_of[i] = -1;
        m->ncpu = cpu_count();
        m->freeze_timeout_usec = CGROUP_FREEZE_TIMEOUT_USEC;
        m->root = path_normalize(cgroup_root);
        m->parent = path_normalize(parent);
        if (!m->root || !m->parent) {
                cgroup_manager_free(m);
                return -ENOMEM;
        }

        struct stat st;
        int r = 0;
        if (stat(m->root, &st) < 0)
                r = errno == ENOENT ? -ENOMEDIUM : negative_errno();
        else if (!S_ISDIR(st.st_mode))
                r = -ENOTDIR;
        if (r < 0) {
                log_error_errno(r, "cgroup: root %s", m->root);
                cgroup_manager_free(m);
                return r;
        }

        if (cgroup_file_exists(m->root, "cgroup.controllers")) {
                m->version = CGROUP_V2;
                m->backend = &cgroup_backend_v2;
        } else {
                m->version = CGROUP_V1;
                m->backend = &cgroup_backend_v1;
        }

        r = m->backend->manager_init(m, flags);
        if (r < 0) {
                cgroup_manager_free(m);
                return r;
        }
        log_debug("cgroup: using v%d under %s, parent %s", (int) m->version, m->root, m->parent);
        *ret = m;
        return 0;
}

void cgroup_manager_free(struct cgroup_manager *m) {
        if (!m)
                return;
        free(m->root);
        free(m->parent);
        free(m->parent_dir);
        for (size_t i = 0; i < ELEMENTSOF(m->hierarchy_dir); i++)
                free(m->hierarchy_dir[i]);
        free(m);
}

enum cgroup_version cgroup_manager_version(const struct cgroup_manager *m) {
        return m->version;
}

bool cgroup_manager_has_controller(const struct cgroup_manager *m, const char *controller) {
        if (!controller)
                return false;
        for (unsigned c = 0; c < CGROUP_CONTROLLER_MAX; c++) {
                const char *n = cgroup_controller_name(m->version, c);
                if (n && streq(n, controller))
                        return (m->controllers & CGROUP_MASK(c)) != 0;
        }
        return false;
}

void cgroup_manager_set_freeze_timeout(struct cgroup_manager *m, uint64_t usec) {
        m->freeze_timeout_usec = usec;
}

void cgroup_strv_free(char **strv) {
        if (!strv)
                return;
        for (char **s = strv; *s; s++)
                free(*s);
        free(strv);
}

static int strv_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The directory holding the workload groups (v1: in the first hierarchy). */
static const char *manager_list_dir(const struct cgroup_manager *m) {
        return m->version == CGROUP_V2 ? m->parent_dir : m->hierarchy_dir[0];
}

int cgroup_manager_list(struct cgroup_manager *m, char ***ret_names) {
        const char *dir = manager_list_dir(m);
        DIR *d = opendir(dir);
        if (!d)
                return log_error_errno(errno, "cgroup: open directory %s", dir);

        char **names = NULL;
        size_t n = 0, cap = 0;
        int r = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
                        continue;
                if (!cgroup_name_is_valid(de->d_name))
                        continue;
                if (de->d_type == DT_UNKNOWN) {
                        struct stat st;
                        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                            !S_ISDIR(st.st_mode))
                                continue;
                }
                if (n >= 65536) {
                        r = log_error_errno(E2BIG, "cgroup: too many groups in %s", dir);
                        break;
                }
                if (n + 1 >= cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        char **nn = realloc(names, ncap * sizeof(char *));
                        if (!nn) {
                                r = -ENOMEM;
                                break;
                        }
                        names = nn;
                        cap = ncap;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                names[++n] = NULL;
        }
        if (r == 0 && errno != 0)
                r = log_error_errno(errno, "cgroup: read directory %s", dir);
        closedir(d);
        if (r == 0 && !names) {
                names = calloc(1, sizeof(char *));
                if (!names)
                        r = -ENOMEM;
        }
        if (r < 0) {
                if (names)
                        names[n] = NULL;
                cgroup_strv_free(names);
                return r;
        }
        qsort(names, n, sizeof(char *), strv_cmp);
        *ret_names = names;
        return (int) n;
}

/* ---- groups ------------------------------------------------------------------------- */

static int group_new(struct cgroup_manager *m, const char *name, bool create, struct cgroup **ret) {
        if (!m || !ret)
                return -EINVAL;
        if (!cgroup_name_is_valid(name))
                return log_error_errno(EINVAL, "cgroup: invalid group name \"%s\"",
                                       name ? name : "(null)");
        struct cgroup *cg = calloc(1, sizeof(*cg));
        if (!cg)
                return -ENOMEM;
        cg->manager = m;
        cg->name = strdup(name);
        if (!cg->name) {
                cgroup_free(cg);
                return -ENOMEM;
        }
        int r = m->backend->group_init(cg, create);
        if (r < 0) {
                cgroup_free(cg);
                return r;
        }
        *ret = cg;
        return 0;
}

int cgroup_create(struct cgroup_manager *m, const char *name, struct cgroup **ret) {
        return group_new(m, name, true, ret);
}

int cgroup_open(struct cgroup_manager *m, const char *name, struct cgroup **ret) {
        return group_new(m, name, false, ret);
}

void cgroup_free(struct cgroup *cg) {
        if (!cg)
                return;
        free(cg->name);
        free(cg->path);
        for (size_t i = 0; i < ELEMENTSOF(cg->dir); i++)
                free(cg->dir[i]);
        free(cg);
}

const char *cgroup_path(const struct cgroup *cg) {
        return cg->path;
}

const char *cgroup_name(const struct cgroup *cg) {
        return cg->name;
}

int cgroup_apply_limits(struct cgroup *cg, const struct cgroup_limits *limits) {
        int r = cgroup_limits_validate(limits, cg->manager->ncpu);
        if (r < 0)
                return r;
        return cg->manager->backend->apply_limits(cg, limits);
}

int cgroup_restrict_devices(struct cgroup *cg, const struct cgroup_device_rule *allow, size_t n) {
        return cg->manager->backend->restrict_devices(cg, allow, n);
}

int cgroup_attach_pid(struct cgroup *cg, pid_t pid) {
        if (pid <= 0)
                return log_error_errno(EINVAL, "cgroup: attach pid %d to %s", (int) pid, cg->path);
        return cg->manager->backend->attach_pid(cg, pid);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = {
                .tv_sec = (time_t) (usec / 1000000),
                .tv_nsec = (long) (usec % 1000000) * 1000,
        };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int cgroup_set_frozen(struct cgroup *cg, bool frozen) {
        const struct cgroup_backend *b = cg->manager->backend;
        int r = b->request_frozen(cg, frozen);
        if (r < 0)
                return r;
        /* Polling is simple and works the same on a fake tree; the wait is short. */
        uint64_t deadline = now_usec() + cg->manager->freeze_timeout_usec;
        for (;;) {
                r = b->freeze_reached(cg, frozen);
                if (r != 0)
                        return r < 0 ? r : 0;
                if (now_usec() >= deadline)
                        break;
                sleep_usec(CGROUP_POLL_USEC);
        }
        return log_error_errno(ETIMEDOUT, "cgroup: %s did not become %s within %llu ms", cg->path,
                               frozen ? "frozen" : "thawed",
                               (unsigned long long) cg->manager->freeze_timeout_usec / 1000);
}

int cgroup_get_stats(struct cgroup *cg, struct cgroup_stats *ret) {
        if (!ret)
                return -EINVAL;
        struct cgroup_stats st = {};
        int r = cg->manager->backend->get_stats(cg, &st);
        if (r < 0)
                return r;
        *ret = st;
        return 0;
}

int cgroup_get_pids(struct cgroup *cg, pid_t **ret_pids, size_t *ret_n) {
        return cgroup_read_pids(cg->path, ret_pids, ret_n);
}

int cgroup_kill_all(struct cgroup *cg, int sig) {
        if (sig <= 0 || sig >= NSIG)
                return log_error_errno(EINVAL, "cgroup: invalid signal %d for %s", sig, cg->path);
        return cg->manager->backend->kill_all(cg, sig);
}

int cgroup_is_empty(struct cgroup *cg) {
        return cg->manager->backend->is_empty(cg);
}

int cgroup_wait_empty(struct cgroup *cg, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        for (;;) {
                int r = cgroup_is_empty(cg);
                if (r != 0)
                        return r < 0 ? r : 0;
                if (now_usec() >= deadline)
                        break;
                sleep_usec(CGROUP_POLL_USEC);
        }
        return log_error_errno(ETIMEDOUT, "cgroup: %s still has processes after %llu ms", cg->path,
                               (unsigned long long) timeout_usec / 1000);
}

int cgroup_destroy(struct cgroup *cg) {
        return cg->manager->backend->destroy(cg);
}
