/* Health collectors, I/O part: read sysfs and procfs under the configured roots. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "health/collect.h"
#include "lib/log.h"
#include "lib/macro.h"

/* Every sysfs value and every procfs line we use fits; /proc/stat's first line too. */
#define HEALTH_READ_MAX 4096
/* /proc/meminfo and /proc/self/status are a few KiB; the keys we use come early. */
#define HEALTH_READ_PROC_MAX 16384
/* The kernel marks a disabled trip point with this temperature (THERMAL_TEMP_INVALID). */
#define THERMAL_TEMP_INVALID_MC (-274000)
/* Names we list from a sysfs class directory (power supplies), before sorting. */
#define HEALTH_NAME_MAX 64

struct health_collector {
        char *sysfs_root;
        char *procfs_root;
        char *disks[HEALTH_MAX_DISKS];
        size_t n_disks;

        struct cpu_times prev_cpu;
        bool has_prev_cpu;
        uint64_t loop_lag_max_usec;

        /* The problems of the previous snapshot: logged once, not at every collection. */
        char logged[HEALTH_MAX_PROBLEMS][HEALTH_PROBLEM_MAX];
        size_t n_logged;
};

/* ---- small helpers ------------------------------------------------------------------ */

static void problem(struct health_snapshot *s, const char *fmt, ...) _printf_(2, 3);

static void problem(struct health_snapshot *s, const char *fmt, ...) {
        if (s->n_problems >= HEALTH_MAX_PROBLEMS) {
                s->problems_dropped++;
                return;
        }
        va_list ap;
        va_start(ap, fmt);
        /* Truncation is fine: a problem line is for people. */
        (void) vsnprintf(s->problems[s->n_problems], HEALTH_PROBLEM_MAX, fmt, ap);
        va_end(ap);
        s->n_problems++;
}

/* Format a path; -ENAMETOOLONG rather than a truncated path that names something else. */
static int path_format(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);

static int path_format(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

/*
 * Read at most size - 1 bytes of a file into buf, NUL-terminated. Not read_file_bounded():
 * sysfs and procfs files report sizes that are not their lengths, /proc/stat grows with
 * the number of interrupts, and a bounded prefix is all we need. No allocation.
 * O_NONBLOCK: a FIFO planted in a misconfigured tree must not stall the agent's loop.
 */
static int read_text(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        size_t len = 0;
        while (len + 1 < size) {
                ssize_t n = read(fd, buf + len, size - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        return 0;
}

/* Copy one line of sysfs text for display: up to the newline, printable ASCII only. */
static void copy_value(char *dst, size_t size, const char *src) {
        size_t i = 0;
        for (; src[i] && src[i] != '\n' && i + 1 < size; i++) {
                char ch = src[i];
                dst[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
        }
        dst[i] = '\0';
        while (i > 0 && dst[i - 1] == ' ')
                dst[--i] = '\0';
}

/* Read a one-line attribute for display. */
static int read_attribute(const char *path, char *dst, size_t size) {
        char buf[HEALTH_READ_MAX];
        int r = read_text(path, buf, sizeof(buf));
        if (r < 0)
                return r;
        copy_value(dst, size, buf);
        return 0;
}

/* Parse a small non-negative decimal attribute ("87\n"). */
static int parse_small_int(const char *text, int max, int *ret) {
        int64_t v;
        int r = health_parse_millicelsius(text, &v);
        if (r < 0)
                return r;
        if (v < 0 || v > max)
                return -ERANGE;
        *ret = (int) v;
        return 0;
}

static int compare_unsigned(const void *a, const void *b) {
        unsigned x = *(const unsigned *) a, y = *(const unsigned *) b;
        return x < y ? -1 : x > y;
}

/* "<prefix><digits><suffix>" → digits; false for anything else. */
static bool name_index(const char *name, const char *prefix, const char *suffix, unsigned *ret) {
        size_t plen = strlen(prefix);
        if (strncmp(name, prefix, plen) != 0)
                return false;
        const char *p = name + plen;
        if (*p < '0' || *p > '9')
                return false;
        unsigned long v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (unsigned long) (*p - '0');
                if (v > UINT_MAX / 10)
                        return false;
        }
        if (!streq(p, suffix))
                return false;
        *ret = (unsigned) v;
        return true;
}

/*
 * The indexes of the entries "<prefix>N<suffix>" of a directory, sorted; the lowest max
 * of them when there are more (counted in *ignored). Sysfs class entries are symlinks
 * and fake trees use directories: we look at names only.
 */
static int list_numbered(const char *dir, const char *prefix, const char *suffix, unsigned *idx,
                         size_t max, size_t *ret_n, size_t *ignored) {
        DIR *d = opendir(dir);
        if (!d)
                return negative_errno();
        size_t n = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                unsigned v;
                if (!name_index(de->d_name, prefix, suffix, &v))
                        continue;
                if (n < max) {
                        idx[n++] = v;
                        continue;
                }
                (*ignored)++;
                /* Keep the lowest numbers, whatever order readdir gives. */
                size_t highest = 0;
                for (size_t i = 1; i < n; i++)
                        if (idx[i] > idx[highest])
                                highest = i;
                if (n > 0 && v < idx[highest])
                        idx[highest] = v;
        }
        int r = errno > 0 ? -errno : 0;
        closedir(d);
        if (r < 0)
                return r;
        qsort(idx, n, sizeof(idx[0]), compare_unsigned);
        *ret_n = n;
        return 0;
}

/* ---- thermal zones ------------------------------------------------------------------ */

/* Flags for read_temperature(). */
enum {
        TEMP_QUIET_MISSING = 1 << 0, /* -ENOENT without a problem: an optional file */
        TEMP_TRIP = 1 << 1,          /* a trip point: the "disabled" marker is fine */
};

/*
 * Read and check a temperature file. On failure a problem "<what>: ..." is recorded and
 * a negative errno returned.
 */
static int read_temperature(struct health_snapshot *s, const char *path, const char *what,
                            unsigned flags, int64_t *ret) {
        char buf[HEALTH_READ_MAX];
        int r = read_text(path, buf, sizeof(buf));
        if (r == -ENOENT && (flags & TEMP_QUIET_MISSING))
                return r;
        if (r == -ENOENT) {
                problem(s, "%s: missing", what);
                return r;
        }
        if (r < 0) {
                problem(s, "%s: unreadable: %s", what, strerror(-r));
                return r;
        }
        int64_t v;
        r = health_parse_millicelsius(buf, &v);
        if (r < 0) {
                problem(s, "%s: not a temperature", what);
                return r;
        }
        bool disabled_trip = (flags & TEMP_TRIP) && v == THERMAL_TEMP_INVALID_MC;
        if (!disabled_trip && !health_temp_is_plausible(v)) {
                problem(s, "%s: implausible temperature", what);
                return -ERANGE;
        }
        *ret = v;
        return 0;
}

static void collect_trips(struct health_snapshot *s, const char *zone_dir, struct thermal_zone *z) {
        char path[PATH_MAX], what[96];
        for (unsigned k = 0; k <= HEALTH_MAX_TRIPS; k++) {
                if (path_format(path, sizeof(path), "%s/trip_point_%u_temp", zone_dir, k) < 0)
                        return;
                if (k == HEALTH_MAX_TRIPS) {
                        if (access(path, F_OK) == 0)
                                problem(s, "%s: more than %d trip points, ignored the rest",
                                        z->name, HEALTH_MAX_TRIPS);
                        return;
                }
                snprintf(what, sizeof(what), "%s/trip_point_%u_temp", z->name, k);
                int64_t temp;
                int r = read_temperature(s, path, what, TEMP_QUIET_MISSING | TEMP_TRIP, &temp);
                if (r == -ENOENT)
                        return; /* trip points are numbered from 0 without gaps */
                if (r < 0 || temp == THERMAL_TEMP_INVALID_MC)
                        continue;

                struct thermal_trip *t = &z->trips[z->n_trips];
                *t = (struct thermal_trip){.temp_mc = temp};
                if (path_format(path, sizeof(path), "%s/trip_point_%u_type", zone_dir, k) < 0)
                        return;
                r = read_attribute(path, t->type, sizeof(t->type));
                if (r < 0)
                        problem(s, "%s/trip_point_%u_type: unreadable: %s", z->name, k,
                                strerror(-r));

                if (path_format(path, sizeof(path), "%s/trip_point_%u_hyst", zone_dir, k) < 0)
                        return;
                snprintf(what, sizeof(what), "%s/trip_point_%u_hyst", z->name, k);
                int64_t hyst;
                r = read_temperature(s, path, what, TEMP_QUIET_MISSING, &hyst);
                if (r >= 0 && hyst >= 0) {
                        t->hyst_mc = hyst;
                        t->has_hyst = true;
                } else if (r >= 0)
                        problem(s, "%s: negative hysteresis", what);
                z->n_trips++;
        }
}

static void collect_zone(struct health_snapshot *s, const char *class_dir, unsigned index) {
        struct thermal_zone *z = &s->zones[s->n_zones++];
        *z = (struct thermal_zone){0};
        snprintf(z->name, sizeof(z->name), "thermal_zone%u", index);

        char dir[PATH_MAX], path[PATH_MAX], what[64];
        if (path_format(dir, sizeof(dir), "%s/%s", class_dir, z->name) < 0) {
                problem(s, "%s: path too long", z->name);
                return;
        }

        if (path_format(path, sizeof(path), "%s/type", dir) == 0) {
                int r = read_attribute(path, z->type, sizeof(z->type));
                if (r < 0)
                        problem(s, "%s/type: unreadable: %s", z->name, strerror(-r));
        }

        if (path_format(path, sizeof(path), "%s/temp", dir) == 0) {
                snprintf(what, sizeof(what), "%s/temp", z->name);
                z->valid = read_temperature(s, path, what, 0, &z->temp_mc) >= 0;
        }

        collect_trips(s, dir, z);
}

static void collect_thermal(struct health_collector *c, struct health_snapshot *s) {
        char dir[PATH_MAX];
        if (path_format(dir, sizeof(dir), "%s/class/thermal", c->sysfs_root) < 0) {
                problem(s, "/sys/class/thermal: path too long");
                return;
        }
        unsigned idx[HEALTH_MAX_ZONES];
        size_t n = 0, ignored = 0;
        int r = list_numbered(dir, "thermal_zone", "", idx, HEALTH_MAX_ZONES, &n, &ignored);
        if (r < 0 && r != -ENOENT) {
                problem(s, "/sys/class/thermal: cannot list: %s", strerror(-r));
                return;
        }
        if (n == 0) {
                problem(s, "no thermal zones under /sys/class/thermal");
                return;
        }
        if (ignored > 0)
                problem(s, "/sys/class/thermal: %zu zones beyond %d ignored", ignored,
                        HEALTH_MAX_ZONES);
        for (size_t i = 0; i < n; i++)
                collect_zone(s, dir, idx[i]);
}

/* ---- hwmon -------------------------------------------------------------------------- */

static void collect_hwmon_chip(struct health_snapshot *s, const char *class_dir, unsigned index,
                               size_t *ignored) {
        char device[16], base[PATH_MAX], path[PATH_MAX], chip[48] = "";
        snprintf(device, sizeof(device), "hwmon%u", index);
        if (path_format(base, sizeof(base), "%s/%s", class_dir, device) < 0)
                return;

        /* Old drivers keep their attributes in the parent device's directory. */
        if (path_format(path, sizeof(path), "%s/name", base) < 0)
                return;
        if (access(path, F_OK) < 0) {
                char legacy[PATH_MAX];
                if (path_format(legacy, sizeof(legacy), "%s/device", base) == 0 &&
                    path_format(path, sizeof(path), "%s/name", legacy) == 0 &&
                    access(path, F_OK) == 0)
                        memcpy(base, legacy, sizeof(base));
        }
        if (path_format(path, sizeof(path), "%s/name", base) == 0) {
                int r = read_attribute(path, chip, sizeof(chip));
                if (r < 0)
                        problem(s, "%s/name: unreadable: %s", device, strerror(-r));
        }

        unsigned temps[HEALTH_MAX_HWMON];
        size_t n = 0, room = HEALTH_MAX_HWMON - s->n_hwmon;
        int r = list_numbered(base, "temp", "_input", temps, room, &n, ignored);
        if (r < 0) {
                problem(s, "%s: cannot list: %s", device, strerror(-r));
                return;
        }
        for (size_t i = 0; i < n; i++) {
                struct hwmon_temp *t = &s->hwmon[s->n_hwmon++];
                *t = (struct hwmon_temp){0};
                memcpy(t->device, device, sizeof(t->device));
                memcpy(t->chip, chip, sizeof(t->chip));

                if (path_format(path, sizeof(path), "%s/temp%u_label", base, temps[i]) < 0 ||
                    read_attribute(path, t->label, sizeof(t->label)) < 0 || !t->label[0])
                        snprintf(t->label, sizeof(t->label), "temp%u", temps[i]);

                char what[64];
                snprintf(what, sizeof(what), "%s/temp%u_input", device, temps[i]);
                if (path_format(path, sizeof(path), "%s/temp%u_input", base, temps[i]) < 0)
                        continue;
                t->valid = read_temperature(s, path, what, 0, &t->temp_mc) >= 0;
        }

        /* Power sensors: the board's measured power, for the usage meter's energy. */
        unsigned powers[HEALTH_MAX_POWER];
        size_t np = 0, power_ignored = 0;
        r = list_numbered(base, "power", "_input", powers, HEALTH_MAX_POWER - s->n_powers, &np, &power_ignored);
        if (r < 0)
                return;
        if (power_ignored > 0)
                problem(s, "%s: %zu power sensors beyond %d ignored", device, power_ignored, HEALTH_MAX_POWER);
        for (size_t i = 0; i < np; i++) {
                struct hwmon_power *w = &s->powers[s->n_powers++];
                *w = (struct hwmon_power){0};
                memcpy(w->device, device, sizeof(w->device));
                memcpy(w->chip, chip, sizeof(w->chip));
                if (path_format(path, sizeof(path), "%s/power%u_label", base, powers[i]) < 0 ||
                    read_attribute(path, w->label, sizeof(w->label)) < 0 || !w->label[0])
                        snprintf(w->label, sizeof(w->label), "power%u", powers[i]);
                char buf[HEALTH_READ_MAX];
                if (path_format(path, sizeof(path), "%s/power%u_input", base, powers[i]) < 0)
                        continue;
                r = read_text(path, buf, sizeof(buf));
                if (r < 0)
                        problem(s, "%s/power%u_input: unreadable: %s", device, powers[i], strerror(-r));
                else if (health_parse_microwatts(buf, &w->power_uw) < 0)
                        problem(s, "%s/power%u_input: not a power in microwatts", device, powers[i]);
                else
                        w->valid = true;
        }
}

static void collect_hwmon(struct health_collector *c, struct health_snapshot *s) {
        char dir[PATH_MAX];
        if (path_format(dir, sizeof(dir), "%s/class/hwmon", c->sysfs_root) < 0)
                return;
        unsigned idx[HEALTH_MAX_HWMON];
        size_t n = 0, ignored = 0;
        int r = list_numbered(dir, "hwmon", "", idx, HEALTH_MAX_HWMON, &n, &ignored);
        if (r == -ENOENT)
                return; /* no hwmon drivers: thermal zones are what we rely on */
        if (r < 0) {
                problem(s, "/sys/class/hwmon: cannot list: %s", strerror(-r));
                return;
        }
        for (size_t i = 0; i < n; i++)
                collect_hwmon_chip(s, dir, idx[i], &ignored);
        if (ignored > 0)
                problem(s, "/sys/class/hwmon: %zu entries beyond %d temperatures ignored", ignored,
                        HEALTH_MAX_HWMON);
}

/* ---- power supplies ----------------------------------------------------------------- */

static int compare_names(const void *a, const void *b) {
        return strcmp((const char *) a, (const char *) b);
}

/* Read an optional integer attribute: -1 when absent, a problem when odd. */
static int read_optional_int(struct health_snapshot *s, const char *dir, const char *name,
                             const char *attribute, int max) {
        char path[PATH_MAX], buf[HEALTH_READ_MAX];
        if (path_format(path, sizeof(path), "%s/%s", dir, attribute) < 0)
                return -1;
        int r = read_text(path, buf, sizeof(buf));
        if (r == -ENOENT)
                return -1;
        if (r < 0) {
                problem(s, "power_supply/%s/%s: unreadable: %s", name, attribute, strerror(-r));
                return -1;
        }
        int v;
        if (parse_small_int(buf, max, &v) < 0) {
                problem(s, "power_supply/%s/%s: not a number in 0..%d", name, attribute, max);
                return -1;
        }
        return v;
}

static void collect_supply(struct health_snapshot *s, const char *class_dir, const char *name) {
        struct power_supply *p = &s->supplies[s->n_supplies++];
        *p = (struct power_supply){.capacity = -1, .online = -1};
        copy_value(p->name, sizeof(p->name), name);

        char dir[PATH_MAX], path[PATH_MAX];
        if (path_format(dir, sizeof(dir), "%s/%s", class_dir, name) < 0)
                return;

        if (path_format(path, sizeof(path), "%s/type", dir) == 0) {
                int r = read_attribute(path, p->type, sizeof(p->type));
                if (r < 0)
                        problem(s, "power_supply/%s/type: unreadable: %s", p->name, strerror(-r));
        }
        if (path_format(path, sizeof(path), "%s/status", dir) == 0) {
                int r = read_attribute(path, p->status, sizeof(p->status));
                if (r < 0 && r != -ENOENT)
                        problem(s, "power_supply/%s/status: unreadable: %s", p->name, strerror(-r));
        }
        if (path_format(path, sizeof(path), "%s/scope", dir) == 0) {
                char scope[16] = "";
                if (read_attribute(path, scope, sizeof(scope)) == 0)
                        p->device_scope = streq(scope, "Device");
        }
        p->capacity = read_optional_int(s, dir, p->name, "capacity", 100);
        p->online = read_optional_int(s, dir, p->name, "online", 1);
        if (health_supply_is_node_battery(p) && p->capacity < 0)
                problem(s, "power_supply/%s: battery without a capacity", p->name);
}

static void collect_power(struct health_collector *c, struct health_snapshot *s) {
        char dir[PATH_MAX];
        if (path_format(dir, sizeof(dir), "%s/class/power_supply", c->sysfs_root) < 0)
                return;
        DIR *d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        problem(s, "/sys/class/power_supply: cannot list: %s", strerror(errno));
                return; /* no supplies known to the kernel: powered, as far as we can tell */
        }
        char names[HEALTH_MAX_SUPPLIES][HEALTH_NAME_MAX];
        size_t n = 0, ignored = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (strlen(de->d_name) >= HEALTH_NAME_MAX || n >= HEALTH_MAX_SUPPLIES) {
                        ignored++;
                        continue;
                }
                memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
        }
        closedir(d);
        if (ignored > 0)
                problem(s, "/sys/class/power_supply: %zu supplies ignored (at most %d)", ignored,
                        HEALTH_MAX_SUPPLIES);
        qsort(names, n, sizeof(names[0]), compare_names);
        for (size_t i = 0; i < n; i++)
                collect_supply(s, dir, names[i]);
        s->on_battery = health_supplies_on_battery(s->supplies, s->n_supplies);
        s->battery_capacity = health_supplies_battery_capacity(s->supplies, s->n_supplies);
}

/* ---- procfs ------------------------------------------------------------------------- */

/* Read <procfs_root>/<name>; a problem "/proc/<name>: ..." on failure. */
static int read_proc(struct health_snapshot *s, const char *root, const char *name, char *buf,
                     size_t size) {
        char path[PATH_MAX];
        int r = path_format(path, sizeof(path), "%s/%s", root, name);
        if (r >= 0)
                r = read_text(path, buf, size);
        if (r < 0)
                problem(s, "/proc/%s: unreadable: %s", name, strerror(-r));
        return r;
}

static void collect_cpu(struct health_collector *c, struct health_snapshot *s) {
        char buf[HEALTH_READ_MAX];
        if (read_proc(s, c->procfs_root, "stat", buf, sizeof(buf)) < 0)
                return;
        struct cpu_times now;
        if (health_parse_proc_stat_cpu(buf, &now) < 0) {
                problem(s, "/proc/stat: no cpu line");
                return;
        }
        s->cpu = now;
        s->cpu_valid = true;
        if (c->has_prev_cpu)
                s->cpu_busy_percent = health_cpu_busy_between(&c->prev_cpu, &now);
        c->prev_cpu = now;
        c->has_prev_cpu = true;
}

static void collect_memory_and_load(struct health_collector *c, struct health_snapshot *s) {
        char buf[HEALTH_READ_PROC_MAX];
        if (read_proc(s, c->procfs_root, "meminfo", buf, sizeof(buf)) >= 0) {
                s->mem_valid = health_parse_meminfo(buf, &s->mem_total, &s->mem_available) >= 0;
                if (!s->mem_valid)
                        problem(s, "/proc/meminfo: no MemTotal or malformed");
        }
        if (read_proc(s, c->procfs_root, "loadavg", buf, sizeof(buf)) >= 0) {
                s->load_valid = health_parse_loadavg(buf, &s->load1, &s->load5, &s->load15) >= 0;
                if (!s->load_valid)
                        problem(s, "/proc/loadavg: malformed");
        }
}

static void collect_pressure(struct health_collector *c, struct health_snapshot *s) {
        static const char *const names[] = {"cpu", "memory", "io"};
        struct psi_line *some[] = {&s->psi_cpu_some, &s->psi_mem_some, &s->psi_io_some};
        struct psi_line cpu_full, *full[] = {&cpu_full, &s->psi_mem_full, &s->psi_io_full};

        char path[PATH_MAX];
        if (path_format(path, sizeof(path), "%s/pressure", c->procfs_root) < 0)
                return;
        if (access(path, F_OK) < 0) {
                problem(s, "/proc/pressure: not available (kernel without PSI)");
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char name[32], buf[HEALTH_READ_MAX];
                snprintf(name, sizeof(name), "pressure/%s", names[i]);
                if (read_proc(s, c->procfs_root, name, buf, sizeof(buf)) < 0)
                        continue;
                if (health_parse_psi(buf, some[i], full[i]) < 0)
                        problem(s, "/proc/%s: malformed", name);
        }
}

/* Always the real /proc/self: a fake procfs_root has no process of ours in it. */
static void collect_self(struct health_collector *c, struct health_snapshot *s) {
        char buf[HEALTH_READ_PROC_MAX];
        int r = read_text("/proc/self/status", buf, sizeof(buf));
        if (r < 0) {
                problem(s, "/proc/self/status: unreadable: %s", strerror(-r));
                return;
        }
        if (health_parse_status_rss(buf, &s->self.rss_bytes) < 0) {
                problem(s, "/proc/self/status: no VmRSS");
                return;
        }

        DIR *d = opendir("/proc/self/fd");
        if (!d) {
                problem(s, "/proc/self/fd: cannot list: %s", strerror(errno));
                return;
        }
        unsigned n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        s->self.open_fds = n > 0 ? n - 1 : 0; /* not the one we listed it with */
        s->self.valid = true;
}

/* ---- disks -------------------------------------------------------------------------- */

static void collect_disks(struct health_collector *c, struct health_snapshot *s) {
        for (size_t i = 0; i < c->n_disks; i++) {
                struct disk_space *d = &s->disks[s->n_disks++];
                *d = (struct disk_space){0};
                copy_value(d->path, sizeof(d->path), c->disks[i]);
                struct statvfs st;
                if (statvfs(c->disks[i], &st) < 0) {
                        problem(s, "disk %s: %s", d->path, strerror(errno));
                        continue;
                }
                uint64_t frsize = st.f_frsize ? st.f_frsize : st.f_bsize;
                d->total_bytes = (uint64_t) st.f_blocks * frsize;
                d->avail_bytes = (uint64_t) st.f_bavail * frsize;
                d->valid = true;
        }
}

/* ---- problems: log on change -------------------------------------------------------- */

static bool problem_in(const char list[][HEALTH_PROBLEM_MAX], size_t n, const char *p) {
        for (size_t i = 0; i < n; i++)
                if (streq(list[i], p))
                        return true;
        return false;
}

static void log_problem_changes(struct health_collector *c, const struct health_snapshot *s) {
        for (size_t i = 0; i < s->n_problems; i++)
                if (!problem_in(c->logged, c->n_logged, s->problems[i]))
                        log_warning("health: %s", s->problems[i]);
        for (size_t i = 0; i < c->n_logged; i++)
                if (!problem_in(s->problems, s->n_problems, c->logged[i]))
                        log_info("health: cleared: %s", c->logged[i]);
        memcpy(c->logged, s->problems, sizeof(c->logged));
        c->n_logged = s->n_problems;
}

/* ---- the collector ------------------------------------------------------------------ */

int health_collector_new(const struct health_paths *p, struct health_collector **ret) {
        if (!p || !ret || p->n_disks > HEALTH_MAX_DISKS)
                return -EINVAL;
        for (size_t i = 0; i < p->n_disks; i++)
                if (!p->disk_paths[i])
                        return -EINVAL;

        struct health_collector *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->sysfs_root = strdup(p->sysfs_root ? p->sysfs_root : "/sys");
        c->procfs_root = strdup(p->procfs_root ? p->procfs_root : "/proc");
        bool failed = !c->sysfs_root || !c->procfs_root;
        for (size_t i = 0; i < p->n_disks && !failed; i++) {
                c->disks[i] = strdup(p->disk_paths[i]);
                failed = !c->disks[i];
                c->n_disks++;
        }
        if (failed) {
                health_collector_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

void health_collector_free(struct health_collector *c) {
        if (!c)
                return;
        free(c->sysfs_root);
        free(c->procfs_root);
        for (size_t i = 0; i < c->n_disks; i++)
                free(c->disks[i]);
        free(c);
}

void health_collector_note_loop_lag(struct health_collector *c, uint64_t lag_usec) {
        if (c && lag_usec > c->loop_lag_max_usec)
                c->loop_lag_max_usec = lag_usec;
}

int health_collect(struct health_collector *c, struct health_snapshot *out) {
        if (!c || !out)
                return -EINVAL;
        memset(out, 0, sizeof(*out));
        out->battery_capacity = -1;
        out->cpu_busy_percent = -1;

        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
                out->monotonic_usec =
                        (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;

        collect_thermal(c, out);
        collect_hwmon(c, out);
        collect_power(c, out);
        collect_cpu(c, out);
        collect_memory_and_load(c, out);
        collect_pressure(c, out);
        collect_disks(c, out);
        collect_self(c, out);

        out->self.loop_lag_usec = c->loop_lag_max_usec;
        c->loop_lag_max_usec = 0;

        log_problem_changes(c, out);
        return 0;
}
