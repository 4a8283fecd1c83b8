/* Health collectors, pure part: parsers of sysfs and procfs text, supply logic. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "health/collect.h"
#include "lib/macro.h"

/* ---- number scanners ---------------------------------------------------------------- */

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *p) {
        while (is_blank(*p))
                p++;
        return p;
}

/* Unsigned decimal at *p; advances *p past it. -EINVAL if no digit, -ERANGE on overflow. */
static int scan_u64(const char **p, uint64_t *ret) {
        const char *s = *p;
        if (!is_digit(*s))
                return -EINVAL;
        uint64_t v = 0;
        for (; is_digit(*s); s++) {
                unsigned d = (unsigned) (*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *p = s;
        *ret = v;
        return 0;
}

/*
 * Non-negative decimal such as "0.52" or "12"; advances *p. Our own scanner rather than
 * strtod(), whose idea of the decimal point follows the locale.
 */
static int scan_decimal(const char **p, double *ret) {
        const char *s = *p;
        uint64_t whole;
        int r = scan_u64(&s, &whole);
        if (r < 0)
                return r;
        double v = (double) whole;
        if (*s == '.') {
                s++;
                if (!is_digit(*s))
                        return -EINVAL;
                /* One division, so "0.75" is the double nearest 0.75. Digits past
                 * the ninth cannot matter for percentages and loads; they are skipped. */
                uint64_t fraction = 0, scale = 1;
                for (; is_digit(*s); s++) {
                        if (scale >= 1000000000)
                                continue;
                        fraction = fraction * 10 + (uint64_t) (*s - '0');
                        scale *= 10;
                }
                v += (double) fraction / (double) scale;
        }
        *p = s;
        *ret = v;
        return 0;
}

/* True at the end of a line or of the text. */
static bool at_line_end(const char *p) {
        return *p == '\0' || *p == '\n';
}

static const char *next_line(const char *p) {
        const char *eol = strchr(p, '\n');
        return eol ? eol + 1 : p + strlen(p);
}

/* ---- temperatures ------------------------------------------------------------------- */

/* "[-]digits[\n]" and nothing else, as sysfs writes one value. */
static int scan_sysfs_integer(const char *text, bool allow_negative, bool *ret_negative, uint64_t *ret_magnitude) {
        const char *p = text;
        *ret_negative = allow_negative && *p == '-';
        if (*ret_negative)
                p++;
        int r = scan_u64(&p, ret_magnitude);
        if (r < 0)
                return r;
        if (*p == '\n')
                p++;
        return *p == '\0' ? 0 : -EINVAL;
}

int health_parse_microwatts(const char *text, uint64_t *ret) {
        if (!text || !ret)
                return -EINVAL;
        bool negative;
        uint64_t v;
        int r = scan_sysfs_integer(text, false, &negative, &v);
        if (r < 0)
                return r;
        if (v > HEALTH_POWER_MAX_UW)
                return -ERANGE;
        *ret = v;
        return 0;
}

int health_parse_millicelsius(const char *text, int64_t *ret) {
        if (!text || !ret)
                return -EINVAL;
        bool negative;
        uint64_t magnitude;
        int r = scan_sysfs_integer(text, true, &negative, &magnitude);
        if (r < 0)
                return r;
        if (negative) {
                if (magnitude > (uint64_t) INT64_MAX + 1)
                        return -ERANGE;
                *ret = magnitude == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) magnitude;
        } else {
                if (magnitude > (uint64_t) INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t) magnitude;
        }
        return 0;
}

bool health_temp_is_plausible(int64_t temp_mc) {
        return temp_mc >= HEALTH_TEMP_MIN_MC && temp_mc <= HEALTH_TEMP_MAX_MC;
}

/* ---- CPU ---------------------------------------------------------------------------- */

int health_parse_proc_stat_cpu(const char *text, struct cpu_times *ret) {
        if (!text || !ret)
                return -EINVAL;
        if (strncmp(text, "cpu", 3) != 0 || !is_blank(text[3]))
                return -EINVAL;
        uint64_t v[8] = {0};
        size_t n = 0;
        const char *p = text + 3;
        for (;;) {
                p = skip_blanks(p);
                if (at_line_end(p))
                        break;
                uint64_t x;
                int r = scan_u64(&p, &x);
                if (r < 0)
                        return r;
                if (!is_blank(*p) && !at_line_end(p))
                        return -EINVAL;
                /* guest and guest_nice are already part of user and nice. */
                if (n < ELEMENTSOF(v))
                        v[n] = x;
                n++;
        }
        if (n < 4)
                return -EINVAL;
        *ret = (struct cpu_times){
                .user = v[0],
                .nice = v[1],
                .system = v[2],
                .idle = v[3],
                .iowait = v[4],
                .irq = v[5],
                .softirq = v[6],
                .steal = v[7],
        };
        return 0;
}

static bool cpu_times_sum(const struct cpu_times *t, uint64_t *total, uint64_t *idle) {
        const uint64_t parts[] = {t->user,   t->nice, t->system,  t->idle,
                                  t->iowait, t->irq,  t->softirq, t->steal};
        uint64_t sum = 0;
        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                if (sum > UINT64_MAX - parts[i])
                        return false;
                sum += parts[i];
        }
        *total = sum;
        *idle = t->idle + t->iowait; /* both already in sum, so this cannot overflow */
        return true;
}

double health_cpu_busy_between(const struct cpu_times *a, const struct cpu_times *b) {
        if (!a || !b)
                return -1;
        uint64_t total_a, idle_a, total_b, idle_b;
        if (!cpu_times_sum(a, &total_a, &idle_a) || !cpu_times_sum(b, &total_b, &idle_b))
                return -1;
        /* iowait may go backwards on some kernels; CPU hot-unplug can shrink totals. */
        if (total_b <= total_a || idle_b < idle_a)
                return -1;
        uint64_t total = total_b - total_a, idle = idle_b - idle_a;
        if (idle > total)
                return 0;
        /* The ratio first: 100.0 * x / x rounds to 100.00000000000001 for some huge x
         * (a fuzzer's find); a fraction of at most 1 times 100 stays in range. */
        double busy = 100.0 * ((double) (total - idle) / (double) total);
        return busy > 100.0 ? 100.0 : busy;
}

/* ---- memory and load ---------------------------------------------------------------- */

/* Value of "Key:   1234 kB" in bytes, from the line that starts at p. */
static int meminfo_value(const char *p, uint64_t *ret) {
        uint64_t kib;
        p = skip_blanks(p);
        int r = scan_u64(&p, &kib);
        if (r < 0)
                return r;
        p = skip_blanks(p);
        if (strncmp(p, "kB", 2) == 0)
                p += 2;
        else
                return -EINVAL;
        if (!at_line_end(p))
                return -EINVAL;
        if (kib > UINT64_MAX / 1024)
                return -ERANGE;
        *ret = kib * 1024;
        return 0;
}

int health_parse_meminfo(const char *text, uint64_t *total, uint64_t *available) {
        if (!text || !total || !available)
                return -EINVAL;
        static const char *const keys[] = {
                "MemTotal:", "MemAvailable:", "MemFree:", "Buffers:", "Cached:"};
        uint64_t values[ELEMENTSOF(keys)] = {0};
        bool seen[ELEMENTSOF(keys)] = {false};
        for (const char *line = text; *line; line = next_line(line)) {
                for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                        size_t len = strlen(keys[k]);
                        if (seen[k] || strncmp(line, keys[k], len) != 0)
                                continue;
                        int r = meminfo_value(line + len, &values[k]);
                        if (r < 0)
                                return r;
                        seen[k] = true;
                }
        }
        if (!seen[0])
                return -ENOENT;
        uint64_t avail;
        if (seen[1])
                avail = values[1];
        else if (seen[2]) {
                avail = values[2];
                /* Each term is at most MemTotal-sized; a bogus file cannot wrap this. */
                for (size_t k = 3; k < ELEMENTSOF(keys); k++)
                        avail = values[k] > UINT64_MAX - avail ? UINT64_MAX : avail + values[k];
        } else
                return -ENOENT;
        *total = values[0];
        *available = avail < values[0] ? avail : values[0];
        return 0;
}

int health_parse_loadavg(const char *text, double *l1, double *l5, double *l15) {
        if (!text || !l1 || !l5 || !l15)
                return -EINVAL;
        double v[3];
        const char *p = text;
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                p = skip_blanks(p);
                int r = scan_decimal(&p, &v[i]);
                if (r < 0)
                        return -EINVAL;
                if (!is_blank(*p) && !at_line_end(p))
                        return -EINVAL;
        }
        *l1 = v[0];
        *l5 = v[1];
        *l15 = v[2];
        return 0;
}

/* ---- pressure ----------------------------------------------------------------------- */

/* "avg10=0.00 avg60=0.00 avg300=0.00 total=0", fields in the kernel's fixed order. */
static int parse_psi_fields(const char *p, struct psi_line *ret) {
        static const char *const names[] = {"avg10=", "avg60=", "avg300="};
        double avg[ELEMENTSOF(names)];
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                p = skip_blanks(p);
                size_t len = strlen(names[i]);
                if (strncmp(p, names[i], len) != 0)
                        return -EINVAL;
                p += len;
                if (scan_decimal(&p, &avg[i]) < 0 || !is_blank(*p))
                        return -EINVAL;
        }
        p = skip_blanks(p);
        if (strncmp(p, "total=", 6) != 0)
                return -EINVAL;
        p += 6;
        uint64_t total;
        int r = scan_u64(&p, &total);
        if (r < 0)
                return r;
        p = skip_blanks(p);
        if (!at_line_end(p))
                return -EINVAL;
        *ret = (struct psi_line){
                .valid = true,
                .avg10 = avg[0],
                .avg60 = avg[1],
                .avg300 = avg[2],
                .total_usec = total,
        };
        return 0;
}

int health_parse_psi(const char *text, struct psi_line *some, struct psi_line *full) {
        if (!text || !some || !full)
                return -EINVAL;
        struct psi_line s = {0}, f = {0};
        for (const char *line = text; *line; line = next_line(line)) {
                int r = 0;
                if (strncmp(line, "some ", 5) == 0 && !s.valid)
                        r = parse_psi_fields(line + 5, &s);
                else if (strncmp(line, "full ", 5) == 0 && !f.valid)
                        r = parse_psi_fields(line + 5, &f);
                if (r < 0)
                        return r;
        }
        if (!s.valid)
                return -EINVAL;
        *some = s;
        *full = f;
        return 0;
}

/* ---- self --------------------------------------------------------------------------- */

int health_parse_status_rss(const char *text, uint64_t *rss_bytes) {
        if (!text || !rss_bytes)
                return -EINVAL;
        for (const char *line = text; *line; line = next_line(line))
                if (strncmp(line, "VmRSS:", 6) == 0)
                        return meminfo_value(line + 6, rss_bytes);
        return -ENOENT;
}

/* ---- power supplies ----------------------------------------------------------------- */

bool health_supply_is_node_battery(const struct power_supply *s) {
        return s && streq(s->type, "Battery") && !s->device_scope;
}

bool health_supplies_on_battery(const struct power_supply *s, size_t n) {
        if (!s)
                return false;
        bool discharging = false, external_online = false;
        for (size_t i = 0; i < n; i++) {
                if (health_supply_is_node_battery(&s[i])) {
                        if (streq(s[i].status, "Discharging"))
                                discharging = true;
                } else if (!s[i].device_scope && !streq(s[i].type, "Battery") && s[i].online == 1)
                        external_online = true;
        }
        return discharging && !external_online;
}

int health_supplies_battery_capacity(const struct power_supply *s, size_t n) {
        int lowest = -1;
        if (!s)
                return -1;
        for (size_t i = 0; i < n; i++) {
                if (!health_supply_is_node_battery(&s[i]) || s[i].capacity < 0)
                        continue;
                if (lowest < 0 || s[i].capacity < lowest)
                        lowest = s[i].capacity;
        }
        return lowest;
}
