/* Unit tests for the health collectors: the parsers, and collection over fake sysfs/procfs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ftw.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "health/collect.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "test-util.h"

/* ---- fake trees --------------------------------------------------------------------- */

struct tree {
        char *root;
        char sys[PATH_MAX], proc[PATH_MAX];
};

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup_tree(void **state) {
        struct tree *t = calloc(1, sizeof(*t));
        assert_non_null(t);
        t->root = test_mkdtemp();
        assert_non_null(t->root);
        test_path(t->sys, sizeof(t->sys), t->root, "sys");
        test_path(t->proc, sizeof(t->proc), t->root, "proc");
        assert_int_equal(mkdir(t->sys, 0755), 0);
        assert_int_equal(mkdir(t->proc, 0755), 0);
        *state = t;
        return 0;
}

static int teardown_tree(void **state) {
        struct tree *t = *state;
        nftw(t->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(t->root);
        free(t);
        return 0;
}

/* Write base/rel, making the directories on the way. */
static void tree_write(const char *base, const char *rel, const char *content) {
        char path[PATH_MAX];
        assert_true(snprintf(path, sizeof(path), "%s/%s", base, rel) < (int) sizeof(path));
        char *slash = strrchr(path, '/');
        *slash = '\0';
        assert_int_equal(mkdir_parents(path, 0755), 0);
        *slash = '/';
        assert_int_equal(test_write(path, content, strlen(content)), 0);
}

static void tree_mkdir(const char *base, const char *rel) {
        char path[PATH_MAX];
        assert_true(snprintf(path, sizeof(path), "%s/%s", base, rel) < (int) sizeof(path));
        assert_int_equal(mkdir_parents(path, 0755), 0);
}

static const char proc_stat_1[] = "cpu  1000 0 500 8000 500 0 0 0 0 0\n"
                                  "cpu0 500 0 250 4000 250 0 0 0 0 0\n"
                                  "intr 12345 0 0 0\n";
/* +300 busy ticks (user 200, system 100), +700 idle: 30% busy. */
static const char proc_stat_2[] = "cpu  1200 0 600 8700 500 0 0 0 0 0\n"
                                  "cpu0 600 0 300 4350 250 0 0 0 0 0\n";

static void fake_proc(const char *proc) {
        tree_write(proc, "stat", proc_stat_1);
        tree_write(proc, "meminfo",
                   "MemTotal:        2048000 kB\n"
                   "MemFree:          100000 kB\n"
                   "MemAvailable:    1024000 kB\n"
                   "Buffers:           10000 kB\n");
        tree_write(proc, "loadavg", "0.52 1.00 2.25 1/467 12345\n");
        tree_write(proc, "pressure/cpu",
                   "some avg10=1.50 avg60=0.75 avg300=0.10 total=123456\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        tree_write(proc, "pressure/memory",
                   "some avg10=2.00 avg60=1.00 avg300=0.50 total=1000\n"
                   "full avg10=1.00 avg60=0.50 avg300=0.25 total=500\n");
        tree_write(proc, "pressure/io",
                   "some avg10=10.00 avg60=5.00 avg300=2.50 total=99\n"
                   "full avg10=8.00 avg60=4.00 avg300=2.00 total=77\n");
}

/*
 * zone0: 45 C with a passive trip (2 C hysteresis) and a critical one (no hyst file);
 * zone1: -12.5 C, cold but fine; zone2: garbage; zone3: temp unreadable (a directory
 * reads as EISDIR, our stand-in for a driver's EIO); zone10 sorts after zone3.
 */
static void fake_sys(const char *sys) {
        tree_write(sys, "class/thermal/thermal_zone0/type", "cpu-thermal\n");
        tree_write(sys, "class/thermal/thermal_zone0/temp", "45000\n");
        tree_write(sys, "class/thermal/thermal_zone0/trip_point_0_type", "passive\n");
        tree_write(sys, "class/thermal/thermal_zone0/trip_point_0_temp", "80000\n");
        tree_write(sys, "class/thermal/thermal_zone0/trip_point_0_hyst", "2000\n");
        tree_write(sys, "class/thermal/thermal_zone0/trip_point_1_type", "critical\n");
        tree_write(sys, "class/thermal/thermal_zone0/trip_point_1_temp", "105000\n");
        tree_write(sys, "class/thermal/thermal_zone1/type", "battery-thermal\n");
        tree_write(sys, "class/thermal/thermal_zone1/temp", "-12500\n");
        tree_write(sys, "class/thermal/thermal_zone2/type", "gpu-thermal\n");
        tree_write(sys, "class/thermal/thermal_zone2/temp", "hot!\n");
        tree_write(sys, "class/thermal/thermal_zone3/type", "modem-thermal\n");
        tree_mkdir(sys, "class/thermal/thermal_zone3/temp");
        tree_write(sys, "class/thermal/thermal_zone10/type", "pmic\n");
        tree_write(sys, "class/thermal/thermal_zone10/temp", "30000\n");
        tree_write(sys, "class/thermal/cooling_device0/type", "fan\n");

        tree_write(sys, "class/hwmon/hwmon0/name", "coretemp\n");
        tree_write(sys, "class/hwmon/hwmon0/temp1_input", "50000\n");
        tree_write(sys, "class/hwmon/hwmon0/temp1_label", "Package id 0\n");
        tree_write(sys, "class/hwmon/hwmon0/temp2_input", "48000\n");
        tree_write(sys, "class/hwmon/hwmon0/temp2_label", "Core 0\n");
        /* An old driver: attributes in the device directory; temp3 without a label. */
        tree_write(sys, "class/hwmon/hwmon1/device/name", "lm75\n");
        tree_write(sys, "class/hwmon/hwmon1/device/temp3_input", "-5000\n");
        /* A power monitor (INA226): the board's input, and a rail without a label. */
        tree_write(sys, "class/hwmon/hwmon2/name", "ina226\n");
        tree_write(sys, "class/hwmon/hwmon2/power1_input", "6500000\n");
        tree_write(sys, "class/hwmon/hwmon2/power1_label", "vin\n");
        tree_write(sys, "class/hwmon/hwmon2/power2_input", "1250000\n");

        tree_write(sys, "class/power_supply/BAT0/type", "Battery\n");
        tree_write(sys, "class/power_supply/BAT0/status", "Discharging\n");
        tree_write(sys, "class/power_supply/BAT0/capacity", "87\n");
        tree_write(sys, "class/power_supply/solar/type", "Mains\n");
        tree_write(sys, "class/power_supply/solar/online", "0\n");
        /* A peripheral's battery: neither capacity nor eclipse logic looks at it. */
        tree_write(sys, "class/power_supply/hid-mouse/type", "Battery\n");
        tree_write(sys, "class/power_supply/hid-mouse/scope", "Device\n");
        tree_write(sys, "class/power_supply/hid-mouse/status", "Discharging\n");
        tree_write(sys, "class/power_supply/hid-mouse/capacity", "5\n");
}

static bool has_problem(const struct health_snapshot *s, const char *text) {
        for (size_t i = 0; i < s->n_problems; i++)
                if (streq(s->problems[i], text))
                        return true;
        return false;
}

static void print_problems(const struct health_snapshot *s) {
        for (size_t i = 0; i < s->n_problems; i++)
                print_message("problem: %s\n", s->problems[i]);
}

static struct health_collector *collector_for(const struct tree *t) {
        struct health_paths p = {.sysfs_root = t->sys, .procfs_root = t->proc};
        p.disk_paths[p.n_disks++] = t->root;
        struct health_collector *c = NULL;
        assert_int_equal(health_collector_new(&p, &c), 0);
        return c;
}

/* ---- parsers ------------------------------------------------------------------------ */

static void test_parse_millicelsius(void **state) {
        int64_t v;
        assert_int_equal(health_parse_millicelsius("45000\n", &v), 0);
        assert_int_equal(v, 45000);
        assert_int_equal(health_parse_millicelsius("-5000", &v), 0);
        assert_int_equal(v, -5000);
        assert_int_equal(health_parse_millicelsius("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(health_parse_millicelsius("9223372036854775807", &v), 0);
        assert_true(v == INT64_MAX);
        assert_int_equal(health_parse_millicelsius("-9223372036854775808", &v), 0);
        assert_true(v == INT64_MIN);

        assert_int_equal(health_parse_millicelsius("9223372036854775808", &v), -ERANGE);
        assert_int_equal(health_parse_millicelsius("-9223372036854775809", &v), -ERANGE);
        assert_int_equal(health_parse_millicelsius("99999999999999999999999", &v), -ERANGE);
        const char *bad[] = {"",          "\n",     "-",      "abc", "45.0", " 45000", "45000 ",
                             "45000\n\n", "+45000", "45000x", "--5", "4 5",  NULL};
        for (const char **b = bad; *b; b++)
                assert_int_equal(health_parse_millicelsius(*b, &v), -EINVAL);
        assert_int_equal(health_parse_millicelsius(NULL, &v), -EINVAL);
}

static void test_parse_microwatts(void **state) {
        uint64_t v;
        assert_int_equal(health_parse_microwatts("6500000\n", &v), 0);
        assert_int_equal(v, 6500000);
        assert_int_equal(health_parse_microwatts("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(health_parse_microwatts("10000000000", &v), 0); /* 10 kW */
        assert_int_equal(health_parse_microwatts("10000000001", &v), -ERANGE);
        const char *bad[] = {"", "-5", "6.5", " 1", "1 ", "1\n\n", "+1", "1x", NULL};
        for (const char **b = bad; *b; b++)
                assert_int_equal(health_parse_microwatts(*b, &v), -EINVAL);
        assert_int_equal(health_parse_microwatts(NULL, &v), -EINVAL);
}

static void test_temp_plausible(void **state) {
        assert_true(health_temp_is_plausible(-40000));
        assert_true(health_temp_is_plausible(-273150));
        assert_true(health_temp_is_plausible(125000));
        assert_false(health_temp_is_plausible(-274000));
        assert_false(health_temp_is_plausible(2147483647));
}

static void test_parse_proc_stat_cpu(void **state) {
        struct cpu_times t;
        assert_int_equal(health_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1\n", &t), 0);
        assert_true(t.user == 1 && t.nice == 2 && t.system == 3 && t.idle == 4);
        assert_true(t.iowait == 5 && t.irq == 6 && t.softirq == 7 && t.steal == 8);
        /* Old kernels: only four fields. */
        assert_int_equal(health_parse_proc_stat_cpu("cpu 10 20 30 40", &t), 0);
        assert_true(t.idle == 40 && t.iowait == 0 && t.steal == 0);

        const char *bad[] = {"",
                             "cpu",
                             "cpu  1 2 3\n",
                             "cpu0 1 2 3 4\n",
                             "intr 1 2 3 4\n",
                             "cpu 1 2 x 4\n",
                             "cpu 1 2 3 4x\n",
                             "cpu -1 2 3 4\n",
                             " cpu 1 2 3 4\n",
                             NULL};
        for (const char **b = bad; *b; b++)
                assert_int_equal(health_parse_proc_stat_cpu(*b, &t), -EINVAL);
        assert_int_equal(health_parse_proc_stat_cpu("cpu 1 2 3 99999999999999999999\n", &t),
                         -ERANGE);
}

static void test_cpu_busy_between(void **state) {
        struct cpu_times a = {.user = 100, .system = 100, .idle = 700, .iowait = 100};
        struct cpu_times b = a;
        b.user += 50;
        b.idle += 50;
        assert_true(health_cpu_busy_between(&a, &b) == 50.0);
        b = a;
        b.idle += 100;
        assert_true(health_cpu_busy_between(&a, &b) == 0.0);
        b = a;
        b.steal += 10;
        assert_true(health_cpu_busy_between(&a, &b) == 100.0);
        /* Nothing elapsed, or counters going back: unknown. */
        assert_true(health_cpu_busy_between(&a, &a) < 0);
        b = a;
        b.user -= 50;
        assert_true(health_cpu_busy_between(&a, &b) < 0);
        b = a;
        b.user += 100;
        b.iowait -= 10;
        assert_true(health_cpu_busy_between(&a, &b) < 0);
        assert_true(health_cpu_busy_between(NULL, &b) < 0);
        /* Huge counters all busy: 100, not 100.00000000000001 (fuzz-health-parse) */
        a = (struct cpu_times){.user = 1013215696, .nice = 308, .system = 2, .idle = 3};
        b = a;
        b.user = 101324682856615696ULL;
        assert_true(health_cpu_busy_between(&a, &b) == 100.0);
}

static void test_parse_meminfo(void **state) {
        uint64_t total, avail;
        assert_int_equal(health_parse_meminfo("MemTotal:  1000 kB\nMemFree: 100 kB\n"
                                              "MemAvailable:   600 kB\n",
                                              &total, &avail),
                         0);
        assert_true(total == 1000 * 1024 && avail == 600 * 1024);
        /* Before 3.14: estimated from free, buffers and cache. */
        assert_int_equal(health_parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\n"
                                              "Buffers: 20 kB\nCached: 300 kB\n"
                                              "SwapCached: 7 kB\n",
                                              &total, &avail),
                         0);
        assert_true(avail == 420 * 1024);
        /* Available never exceeds total. */
        assert_int_equal(
                health_parse_meminfo("MemTotal: 10 kB\nMemAvailable: 20 kB\n", &total, &avail), 0);
        assert_true(avail == total);

        assert_int_equal(health_parse_meminfo("MemFree: 100 kB\n", &total, &avail), -ENOENT);
        assert_int_equal(health_parse_meminfo("MemTotal: 100 kB\n", &total, &avail), -ENOENT);
        assert_int_equal(health_parse_meminfo("", &total, &avail), -ENOENT);
        assert_int_equal(health_parse_meminfo("MemTotal: lots\n", &total, &avail), -EINVAL);
        assert_int_equal(health_parse_meminfo("MemTotal: 100 MB\n", &total, &avail), -EINVAL);
        assert_int_equal(
                health_parse_meminfo("MemTotal: 100000000000000000000 kB\n", &total, &avail),
                -ERANGE);
}

static void test_parse_loadavg(void **state) {
        double a, b, c;
        assert_int_equal(health_parse_loadavg("0.52 1.00 12.25 1/467 12345\n", &a, &b, &c), 0);
        assert_true(a > 0.519 && a < 0.521);
        assert_true(b == 1.0);
        assert_true(c > 12.249 && c < 12.251);
        assert_int_equal(health_parse_loadavg("1 2 3", &a, &b, &c), 0);
        const char *bad[] = {"",         "0.52 1.00\n", "0,52 1,00 2,00\n", "a b c\n", "1. 2 3\n",
                             "-1 2 3\n", NULL};
        for (const char **x = bad; *x; x++)
                assert_int_equal(health_parse_loadavg(*x, &a, &b, &c), -EINVAL);
}

static void test_parse_psi(void **state) {
        struct psi_line some, full;
        assert_int_equal(health_parse_psi("some avg10=1.50 avg60=0.75 avg300=0.10 total=123456\n"
                                          "full avg10=0.25 avg60=0.00 avg300=0.00 total=7\n",
                                          &some, &full),
                         0);
        assert_true(some.valid && full.valid);
        assert_true(some.avg10 == 1.5 && some.avg60 == 0.75);
        assert_true(some.avg300 > 0.099 && some.avg300 < 0.101);
        assert_true(some.total_usec == 123456 && full.total_usec == 7);
        assert_true(full.avg10 == 0.25);

        /* cpu before 5.13: no full line. */
        assert_int_equal(
                health_parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", &some, &full),
                0);
        assert_true(some.valid && !full.valid);

        const char *bad[] = {
                "",
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
                "some avg10=0.00 avg60=0.00 total=0\n",
                "some avg10=x avg60=0.00 avg300=0.00 total=0\n",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0 extra\n",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull garbage\n",
                NULL,
        };
        for (const char **b = bad; *b; b++)
                assert_int_equal(health_parse_psi(*b, &some, &full), -EINVAL);
}

static void test_parse_status_rss(void **state) {
        uint64_t rss;
        assert_int_equal(health_parse_status_rss("Name:\tagent\nVmPeak:\t  9000 kB\n"
                                                 "VmRSS:\t    1234 kB\nThreads:\t1\n",
                                                 &rss),
                         0);
        assert_true(rss == 1234 * 1024);
        assert_int_equal(health_parse_status_rss("Name:\tkthreadd\nThreads:\t1\n", &rss), -ENOENT);
        assert_int_equal(health_parse_status_rss("VmRSS:\tmany kB\n", &rss), -EINVAL);
}

static void test_on_battery(void **state) {
        struct power_supply s[3] = {0};
        const struct power_supply bat_dis = {.name = "BAT0",
                                             .type = "Battery",
                                             .status = "Discharging",
                                             .capacity = 40,
                                             .online = -1};
        const struct power_supply mains_on = {
                .name = "AC", .type = "Mains", .capacity = -1, .online = 1};
        const struct power_supply mains_off = {
                .name = "AC", .type = "Mains", .capacity = -1, .online = 0};

        /* Nothing at all, or only mains: not on battery. */
        assert_false(health_supplies_on_battery(s, 0));
        s[0] = mains_on;
        assert_false(health_supplies_on_battery(s, 1));
        /* Discharging, no other supply: eclipse. */
        s[0] = bat_dis;
        assert_true(health_supplies_on_battery(s, 1));
        /* Discharging, the solar supply offline: eclipse. */
        s[1] = mains_off;
        assert_true(health_supplies_on_battery(s, 2));
        /* Discharging, but a supply is online (heavy load): not eclipse. */
        s[1] = mains_on;
        assert_false(health_supplies_on_battery(s, 2));
        /* Unknown online state does not count as online. */
        s[1] = mains_off;
        s[1].online = -1;
        assert_true(health_supplies_on_battery(s, 2));
        /* Charging or full battery with everything off: not discharging, not eclipse. */
        s[0] = bat_dis;
        strcpy(s[0].status, "Charging");
        s[1] = mains_off;
        assert_false(health_supplies_on_battery(s, 2));
        /* A peripheral's battery discharging is none of our business. */
        s[0] = bat_dis;
        s[0].device_scope = true;
        assert_false(health_supplies_on_battery(s, 1));
        assert_int_equal(health_supplies_battery_capacity(s, 1), -1);
        /* Lowest capacity of the node's batteries. */
        s[0] = bat_dis;
        s[1] = bat_dis;
        s[1].capacity = 25;
        s[2] = bat_dis;
        s[2].capacity = -1;
        assert_int_equal(health_supplies_battery_capacity(s, 3), 25);
        assert_false(health_supplies_on_battery(NULL, 3));
}

/* ---- collection over fake trees ----------------------------------------------------- */

static void test_collect_fake_tree(void **state) {
        struct tree *t = *state;
        fake_sys(t->sys);
        fake_proc(t->proc);
        struct health_collector *c = collector_for(t);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        assert_int_equal(health_collect(c, s), 0);
        print_problems(s);

        assert_true(s->monotonic_usec > 0);
        assert_int_equal(s->n_zones, 5);
        const char *names[] = {"thermal_zone0", "thermal_zone1", "thermal_zone2", "thermal_zone3",
                               "thermal_zone10"};
        for (size_t i = 0; i < 5; i++)
                assert_string_equal(s->zones[i].name, names[i]);

        const struct thermal_zone *z = &s->zones[0];
        assert_string_equal(z->type, "cpu-thermal");
        assert_true(z->valid);
        assert_int_equal(z->temp_mc, 45000);
        assert_int_equal(z->n_trips, 2);
        assert_string_equal(z->trips[0].type, "passive");
        assert_int_equal(z->trips[0].temp_mc, 80000);
        assert_true(z->trips[0].has_hyst);
        assert_int_equal(z->trips[0].hyst_mc, 2000);
        assert_string_equal(z->trips[1].type, "critical");
        assert_int_equal(z->trips[1].temp_mc, 105000);
        assert_false(z->trips[1].has_hyst);

        assert_true(s->zones[1].valid);
        assert_int_equal(s->zones[1].temp_mc, -12500);
        assert_false(s->zones[2].valid);
        assert_string_equal(s->zones[2].type, "gpu-thermal");
        assert_false(s->zones[3].valid);
        assert_true(s->zones[4].valid);
        assert_int_equal(s->zones[4].n_trips, 0);

        assert_int_equal(s->n_hwmon, 3);
        assert_string_equal(s->hwmon[0].device, "hwmon0");
        assert_string_equal(s->hwmon[0].chip, "coretemp");
        assert_string_equal(s->hwmon[0].label, "Package id 0");
        assert_int_equal(s->hwmon[0].temp_mc, 50000);
        assert_string_equal(s->hwmon[1].label, "Core 0");
        assert_int_equal(s->hwmon[1].temp_mc, 48000);
        assert_string_equal(s->hwmon[2].device, "hwmon1");
        assert_string_equal(s->hwmon[2].chip, "lm75");
        assert_string_equal(s->hwmon[2].label, "temp3");
        assert_true(s->hwmon[2].valid);
        assert_int_equal(s->hwmon[2].temp_mc, -5000);
        assert_int_equal(s->n_powers, 2);
        assert_string_equal(s->powers[0].device, "hwmon2");
        assert_string_equal(s->powers[0].chip, "ina226");
        assert_string_equal(s->powers[0].label, "vin");
        assert_true(s->powers[0].valid);
        assert_int_equal(s->powers[0].power_uw, 6500000);
        assert_string_equal(s->powers[1].label, "power2");
        assert_int_equal(s->powers[1].power_uw, 1250000);
        assert_true(s->cpu_valid);

        assert_int_equal(s->n_supplies, 3);
        assert_string_equal(s->supplies[0].name, "BAT0");
        assert_int_equal(s->supplies[0].capacity, 87);
        assert_string_equal(s->supplies[0].status, "Discharging");
        assert_int_equal(s->supplies[0].online, -1);
        assert_string_equal(s->supplies[1].name, "hid-mouse");
        assert_true(s->supplies[1].device_scope);
        assert_string_equal(s->supplies[2].name, "solar");
        assert_int_equal(s->supplies[2].online, 0);
        assert_int_equal(s->supplies[2].capacity, -1);
        assert_true(s->on_battery);
        assert_int_equal(s->battery_capacity, 87);

        assert_true(s->cpu_busy_percent < 0); /* first snapshot */
        assert_true(s->mem_valid);
        assert_true(s->mem_total == 2048000ULL * 1024);
        assert_true(s->mem_available == 1024000ULL * 1024);
        assert_true(s->load_valid);
        assert_true(s->load5 == 1.0);
        assert_true(s->psi_cpu_some.valid && s->psi_cpu_some.avg10 == 1.5);
        assert_true(s->psi_mem_some.valid && s->psi_mem_full.valid);
        assert_true(s->psi_mem_full.total_usec == 500);
        assert_true(s->psi_io_some.avg10 == 10.0 && s->psi_io_full.total_usec == 77);

        assert_int_equal(s->n_disks, 1);
        assert_true(s->disks[0].valid);
        assert_true(s->disks[0].total_bytes > 0);
        assert_true(s->disks[0].avail_bytes <= s->disks[0].total_bytes);

        /* Self metrics come from the real /proc/self, not the fake tree. */
        assert_true(s->self.valid);
        assert_true(s->self.rss_bytes > 0);
        assert_true(s->self.open_fds >= 3);

        assert_int_equal(s->n_problems, 2);
        assert_true(has_problem(s, "thermal_zone2/temp: not a temperature"));
        assert_true(has_problem(s, "thermal_zone3/temp: unreadable: Is a directory"));
        assert_int_equal(s->problems_dropped, 0);

        free(s);
        health_collector_free(c);
}

static void test_collect_empty_tree(void **state) {
        struct tree *t = *state;
        struct health_paths p = {.sysfs_root = t->sys, .procfs_root = t->proc};
        p.disk_paths[p.n_disks++] = "/nonexistent/orbit-state";
        struct health_collector *c = NULL;
        assert_int_equal(health_collector_new(&p, &c), 0);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        assert_int_equal(health_collect(c, s), 0);
        print_problems(s);

        assert_int_equal(s->n_zones, 0);
        assert_int_equal(s->n_hwmon, 0);
        assert_int_equal(s->n_supplies, 0);
        assert_false(s->on_battery);
        assert_int_equal(s->battery_capacity, -1);
        assert_true(s->cpu_busy_percent < 0);
        assert_false(s->mem_valid);
        assert_false(s->load_valid);
        assert_false(s->psi_cpu_some.valid);
        assert_false(s->disks[0].valid);
        assert_true(s->self.valid); /* the real /proc/self is still there */

        assert_true(has_problem(s, "no thermal zones under /sys/class/thermal"));
        assert_true(has_problem(s, "/proc/stat: unreadable: No such file or directory"));
        assert_true(has_problem(s, "/proc/meminfo: unreadable: No such file or directory"));
        assert_true(has_problem(s, "/proc/loadavg: unreadable: No such file or directory"));
        assert_true(has_problem(s, "/proc/pressure: not available (kernel without PSI)"));
        assert_true(has_problem(s, "disk /nonexistent/orbit-state: No such file or directory"));
        assert_int_equal(s->n_problems, 6);

        /* An empty class directory is the same as none. */
        tree_mkdir(t->sys, "class/thermal");
        assert_int_equal(health_collect(c, s), 0);
        assert_true(has_problem(s, "no thermal zones under /sys/class/thermal"));

        free(s);
        health_collector_free(c);
}

static void test_collect_odd_values(void **state) {
        struct tree *t = *state;
        fake_proc(t->proc);
        tree_write(t->sys, "class/thermal/thermal_zone0/type", "weird\xff\x01type\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/temp", "2147483647\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/trip_point_0_type", "passive\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/trip_point_0_temp", "-274000\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/trip_point_1_type", "hot\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/trip_point_1_temp", "bogus\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/trip_point_2_type", "critical\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/trip_point_2_temp", "100000\n");
        tree_write(t->sys, "class/thermal/thermal_zone0/trip_point_2_hyst", "-1\n");
        tree_write(t->sys, "class/thermal/thermal_zone1/type", "no-temp\n");
        tree_write(t->sys, "class/hwmon/hwmon0/name", "lm75\n");
        tree_write(t->sys, "class/hwmon/hwmon0/temp1_input", "-274000\n");
        tree_write(t->sys, "class/hwmon/hwmon0/power1_input", "-5\n");
        tree_write(t->sys, "class/power_supply/BAT0/type", "Battery\n");
        tree_write(t->sys, "class/power_supply/BAT0/status", "Discharging\n");
        tree_write(t->sys, "class/power_supply/BAT0/capacity", "150\n");
        tree_write(t->sys, "class/power_supply/AC/type", "Mains\n");
        tree_write(t->sys, "class/power_supply/AC/online", "yes\n");

        struct health_collector *c = collector_for(t);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        assert_int_equal(health_collect(c, s), 0);
        print_problems(s);

        assert_int_equal(s->n_zones, 2);
        assert_string_equal(s->zones[0].type, "weird??type");
        assert_false(s->zones[0].valid);
        /* The disabled trip is skipped quietly, the bogus one with a problem. */
        assert_int_equal(s->zones[0].n_trips, 1);
        assert_string_equal(s->zones[0].trips[0].type, "critical");
        assert_false(s->zones[0].trips[0].has_hyst);
        assert_false(s->zones[1].valid);

        assert_int_equal(s->n_hwmon, 1);
        assert_false(s->hwmon[0].valid);
        assert_int_equal(s->supplies[0].capacity, -1);
        assert_int_equal(s->supplies[1].online, -1);
        assert_true(s->on_battery);
        assert_int_equal(s->battery_capacity, -1);

        assert_true(has_problem(s, "thermal_zone0/temp: implausible temperature"));
        assert_true(has_problem(s, "thermal_zone0/trip_point_1_temp: not a temperature"));
        assert_true(has_problem(s, "thermal_zone0/trip_point_2_hyst: negative hysteresis"));
        assert_true(has_problem(s, "thermal_zone1/temp: missing"));
        assert_true(has_problem(s, "hwmon0/temp1_input: implausible temperature"));
        assert_int_equal(s->n_powers, 1);
        assert_false(s->powers[0].valid);
        assert_true(has_problem(s, "hwmon0/power1_input: not a power in microwatts"));
        assert_true(has_problem(s, "power_supply/BAT0/capacity: not a number in 0..100"));
        assert_true(has_problem(s, "power_supply/BAT0: battery without a capacity"));
        assert_true(has_problem(s, "power_supply/AC/online: not a number in 0..1"));
        assert_int_equal(s->n_problems, 9); /* the 8 above, and the power sensor */

        /* Whatever the tree holds, the JSON is valid (UTF-8 included). */
        json_t *j = health_snapshot_to_json(s);
        assert_non_null(j);
        json_decref(j);

        free(s);
        health_collector_free(c);
}

static void test_collect_bounds(void **state) {
        struct tree *t = *state;
        fake_proc(t->proc);
        char rel[128];
        /* More zones than we keep, created from the top so readdir order is not sorted. */
        for (int i = HEALTH_MAX_ZONES + 5; i >= 0; i--) {
                snprintf(rel, sizeof(rel), "class/thermal/thermal_zone%d/temp", i);
                tree_write(t->sys, rel, "20000\n");
        }
        for (int k = 0; k <= HEALTH_MAX_TRIPS; k++) {
                snprintf(rel, sizeof(rel), "class/thermal/thermal_zone0/trip_point_%d_temp", k);
                tree_write(t->sys, rel, "90000\n");
        }
        /* More problems than we keep: every zone above 63 is unreadable. */
        struct health_collector *c = collector_for(t);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        assert_int_equal(health_collect(c, s), 0);
        assert_int_equal(s->n_zones, HEALTH_MAX_ZONES);
        assert_string_equal(s->zones[0].name, "thermal_zone0");
        assert_string_equal(s->zones[HEALTH_MAX_ZONES - 1].name, "thermal_zone63");
        assert_int_equal(s->zones[0].n_trips, HEALTH_MAX_TRIPS);
        assert_true(has_problem(s, "/sys/class/thermal: 6 zones beyond 64 ignored"));
        assert_true(has_problem(s, "thermal_zone0: more than 16 trip points, ignored the rest"));

        /* Problems beyond the bound are counted, not stored. */
        for (int i = 0; i < HEALTH_MAX_ZONES; i++) {
                snprintf(rel, sizeof(rel), "class/thermal/thermal_zone%d/temp", i);
                tree_write(t->sys, rel, "x\n");
        }
        assert_int_equal(health_collect(c, s), 0);
        assert_int_equal(s->n_problems, HEALTH_MAX_PROBLEMS);
        assert_true(s->problems_dropped > 0);

        free(s);
        health_collector_free(c);
}

static void test_cpu_busy_two_snapshots(void **state) {
        struct tree *t = *state;
        fake_sys(t->sys);
        fake_proc(t->proc);
        struct health_collector *c = collector_for(t);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);

        assert_int_equal(health_collect(c, s), 0);
        assert_true(s->cpu_busy_percent < 0);
        tree_write(t->proc, "stat", proc_stat_2);
        assert_int_equal(health_collect(c, s), 0);
        assert_true(s->cpu_busy_percent > 29.999 && s->cpu_busy_percent < 30.001);
        /* No time passed: unknown, not 0%. */
        assert_int_equal(health_collect(c, s), 0);
        assert_true(s->cpu_busy_percent < 0);

        free(s);
        health_collector_free(c);
}

static void test_loop_lag(void **state) {
        struct tree *t = *state;
        struct health_collector *c = collector_for(t);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        health_collector_note_loop_lag(c, 1500);
        health_collector_note_loop_lag(c, 40000);
        health_collector_note_loop_lag(c, 200);
        assert_int_equal(health_collect(c, s), 0);
        assert_int_equal(s->self.loop_lag_usec, 40000);
        assert_int_equal(health_collect(c, s), 0);
        assert_int_equal(s->self.loop_lag_usec, 0);
        free(s);
        health_collector_free(c);
}

static void test_collector_new_checks(void **state) {
        struct health_collector *c = NULL;
        struct health_paths p = {.n_disks = HEALTH_MAX_DISKS + 1};
        assert_int_equal(health_collector_new(&p, &c), -EINVAL);
        p.n_disks = 1; /* disk_paths[0] is NULL */
        assert_int_equal(health_collector_new(&p, &c), -EINVAL);
        assert_int_equal(health_collector_new(NULL, &c), -EINVAL);
        assert_null(c);
        health_collector_free(NULL);
        assert_int_equal(health_collect(NULL, NULL), -EINVAL);
}

/* Keys of an object, sorted and joined with ',', for comparisons. */
static void keys_of(json_t *obj, char *buf, size_t size) {
        const char *keys[64];
        size_t n = 0;
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v) {
                assert_true(n < ELEMENTSOF(keys));
                keys[n++] = k;
        }
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
                        const char *x = keys[j];
                        keys[j] = keys[j - 1];
                        keys[j - 1] = x;
                }
        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                strncat(buf, keys[i], size - strlen(buf) - 1);
                if (i + 1 < n)
                        strncat(buf, ",", size - strlen(buf) - 1);
        }
}

static void test_snapshot_json(void **state) {
        struct tree *t = *state;
        fake_sys(t->sys);
        fake_proc(t->proc);
        struct health_collector *c = collector_for(t);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        assert_int_equal(health_collect(c, s), 0);
        json_t *j = health_snapshot_to_json(s);
        assert_non_null(j);

        char keys[1024];
        keys_of(j, keys, sizeof(keys));
        assert_string_equal(keys, "battery_capacity,cpu_busy_percent,disks,hwmon,load,memory,"
                                  "monotonic_usec,on_battery,power_supplies,pressure,problems,"
                                  "problems_dropped,self,thermal_zones");

        json_t *zones = json_object_get(j, "thermal_zones");
        assert_int_equal(json_array_size(zones), 5);
        json_t *z0 = json_array_get(zones, 0);
        keys_of(z0, keys, sizeof(keys));
        assert_string_equal(keys, "name,temp_mc,trips,type,valid");
        assert_int_equal(json_integer_value(json_object_get(z0, "temp_mc")), 45000);
        json_t *trip = json_array_get(json_object_get(z0, "trips"), 0);
        keys_of(trip, keys, sizeof(keys));
        assert_string_equal(keys, "hyst_mc,temp_mc,type");
        assert_int_equal(json_integer_value(json_object_get(trip, "hyst_mc")), 2000);
        trip = json_array_get(json_object_get(z0, "trips"), 1);
        assert_true(json_is_null(json_object_get(trip, "hyst_mc")));
        /* An invalid zone has a null temperature, never a made-up 0. */
        assert_true(json_is_null(json_object_get(json_array_get(zones, 2), "temp_mc")));

        keys_of(json_array_get(json_object_get(j, "hwmon"), 0), keys, sizeof(keys));
        assert_string_equal(keys, "chip,device,label,temp_mc,valid");
        keys_of(json_array_get(json_object_get(j, "power_supplies"), 0), keys, sizeof(keys));
        assert_string_equal(keys, "capacity,device_scope,name,online,status,type");
        keys_of(json_array_get(json_object_get(j, "disks"), 0), keys, sizeof(keys));
        assert_string_equal(keys, "available_bytes,path,total_bytes,valid");
        keys_of(json_object_get(j, "memory"), keys, sizeof(keys));
        assert_string_equal(keys, "available_bytes,total_bytes");
        keys_of(json_object_get(j, "load"), keys, sizeof(keys));
        assert_string_equal(keys, "avg1,avg15,avg5");
        json_t *psi = json_object_get(j, "pressure");
        keys_of(psi, keys, sizeof(keys));
        assert_string_equal(keys, "cpu,io,memory");
        keys_of(json_object_get(psi, "cpu"), keys, sizeof(keys));
        assert_string_equal(keys, "some");
        keys_of(json_object_get(psi, "io"), keys, sizeof(keys));
        assert_string_equal(keys, "full,some");
        keys_of(json_object_get(json_object_get(psi, "io"), "full"), keys, sizeof(keys));
        assert_string_equal(keys, "avg10,avg300,avg60,total_usec");
        keys_of(json_object_get(j, "self"), keys, sizeof(keys));
        assert_string_equal(keys, "loop_lag_usec,open_fds,rss_bytes");

        assert_true(json_is_true(json_object_get(j, "on_battery")));
        assert_int_equal(json_integer_value(json_object_get(j, "battery_capacity")), 87);
        assert_true(json_is_null(json_object_get(j, "cpu_busy_percent")));
        assert_int_equal(json_array_size(json_object_get(j, "problems")), 2);
        json_decref(j);

        /* An all-zero snapshot serialises too. */
        memset(s, 0, sizeof(*s));
        s->battery_capacity = -1;
        s->cpu_busy_percent = -1;
        j = health_snapshot_to_json(s);
        assert_non_null(j);
        assert_true(json_is_null(json_object_get(j, "battery_capacity")));
        assert_true(json_is_null(json_object_get(json_object_get(j, "memory"), "total_bytes")));
        assert_true(json_is_null(
                json_object_get(json_object_get(json_object_get(j, "pressure"), "cpu"), "some")));
        json_decref(j);

        free(s);
        health_collector_free(c);
}

/* Whatever this machine has, collecting from the real /sys and /proc works. */
static void test_collect_real_system(void **state) {
        struct health_paths p = {0};
        p.disk_paths[p.n_disks++] = "/";
        struct health_collector *c = NULL;
        assert_int_equal(health_collector_new(&p, &c), 0);
        struct health_snapshot *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        assert_int_equal(health_collect(c, s), 0);
        assert_int_equal(health_collect(c, s), 0);
        print_message("real: %zu zones, %zu hwmon, %zu supplies, cpu %.1f%%, %zu problems\n",
                      s->n_zones, s->n_hwmon, s->n_supplies, s->cpu_busy_percent, s->n_problems);
        print_problems(s);
        assert_true(s->n_zones <= HEALTH_MAX_ZONES);
        assert_true(s->mem_valid && s->mem_total > 0);
        assert_true(s->disks[0].valid);
        assert_true(s->self.valid);
        json_t *j = health_snapshot_to_json(s);
        assert_non_null(j);
        json_decref(j);
        free(s);
        health_collector_free(c);
}

#define TREE_TEST(f) cmocka_unit_test_setup_teardown(f, setup_tree, teardown_tree)

int main(void) {
        log_set_max_level(LOG_CRIT); /* problems are logged on purpose */
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_millicelsius),
                cmocka_unit_test(test_parse_microwatts),
                cmocka_unit_test(test_temp_plausible),
                cmocka_unit_test(test_parse_proc_stat_cpu),
                cmocka_unit_test(test_cpu_busy_between),
                cmocka_unit_test(test_parse_meminfo),
                cmocka_unit_test(test_parse_loadavg),
                cmocka_unit_test(test_parse_psi),
                cmocka_unit_test(test_parse_status_rss),
                cmocka_unit_test(test_on_battery),
                cmocka_unit_test(test_collector_new_checks),
                TREE_TEST(test_collect_fake_tree),
                TREE_TEST(test_collect_empty_tree),
                TREE_TEST(test_collect_odd_values),
                TREE_TEST(test_collect_bounds),
                TREE_TEST(test_cpu_busy_two_snapshots),
                TREE_TEST(test_loop_lag),
                TREE_TEST(test_snapshot_json),
                cmocka_unit_test(test_collect_real_system),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
