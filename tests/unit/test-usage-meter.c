/* The usage meter's arithmetic and state (agent/usage-meter.c). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/usage-meter.h"

#define ID1 "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"
#define SEC 1000000ULL

static void assert_near(double got, double want) {
        if (fabs(got - want) > 1e-6 * (fabs(want) + 1)) {
                print_error("got %.9g, want %.9g\n", got, want);
                fail();
        }
}

/* /proc/stat with busy ticks (100 per second) */
static struct cpu_times busy(uint64_t ticks) {
        return (struct cpu_times){.user = ticks, .idle = 1000000};
}

static struct usage_meter_entry *entry(struct usage_meter *m, const char *workload, const char *app) {
        for (size_t i = 0; i < m->n_entries; i++)
                if (strcmp(m->entries[i].workload, workload ? workload : "") == 0 &&
                    strcmp(m->entries[i].app, app ? app : "") == 0)
                        return &m->entries[i];
        return NULL;
}

static int sample(struct usage_meter *m, uint64_t mono, const char *boot, uint64_t busy_ticks, double power,
                  const struct usage_workload_sample *w, size_t n) {
        struct usage_sample s = {.mono_usec = mono, .boot_id = boot, .cpu_valid = true, .cpu = busy(busy_ticks),
                                 .clk_tck = 100, .power_valid = power >= 0, .power_w = power, .workloads = w,
                                 .n_workloads = n};
        return usage_meter_sample(m, &s);
}

/* Two workloads over 10 s: CPU from the counters, memory by the mean, energy by CPU share. */
static void test_counts(void **state) {
        (void) state;
        struct usage_meter m;
        usage_meter_init(&m, ID1, 1000);
        struct usage_workload_sample w[2] = {
                {.workload = "det", .tenant = "acme", .deployment = "dep-a", .app = "hello", .cpu_usec = 50 * SEC,
                 .memory_bytes = 1000, .instance = 7},
                {.workload = "batch", .cpu_usec = 5 * SEC, .memory_bytes = 4000, .instance = 8},
        };
        /* the first sample of a new meter: baselines only, nothing it did not see is counted */
        assert_int_equal(sample(&m, 100 * SEC, "boot1", 10000, 10.0, w, 2), 0);
        assert_near(entry(&m, "det", "hello")->total.cpu_sec, 0);
        assert_near(entry(&m, "batch", NULL)->total.memory_byte_sec, 0);
        assert_near(m.board_energy_j, 0);

        /* 10 s later: det used 6 s of CPU, batch 2 s; the node 10 s (1000 ticks) */
        w[0].cpu_usec += 6 * SEC;
        w[0].memory_bytes = 3000;
        w[1].cpu_usec += 2 * SEC;
        assert_int_equal(sample(&m, 110 * SEC, "boot1", 11000, 20.0, w, 2), 0);
        struct usage_meter_entry *det = entry(&m, "det", "hello"), *batch = entry(&m, "batch", NULL);
        assert_near(det->total.cpu_sec, 6);
        assert_near(batch->total.cpu_sec, 2);
        assert_near(det->total.memory_byte_sec, 2000.0 * 10);
        assert_near(batch->total.memory_byte_sec, 4000.0 * 10);
        /* mean power 15 W for 10 s = 150 J; det 6/10 of the node's CPU, batch 2/10 */
        assert_near(m.board_energy_j, 150);
        assert_near(det->total.energy_j, 90);
        assert_near(batch->total.energy_j, 30);
        assert_string_equal(det->tenant, "acme");
        assert_string_equal(det->deployment, "dep-a");

        /* workloads' CPU above what /proc/stat says (sampling skew): shares never pass 1 */
        w[0].cpu_usec += 3 * SEC;
        w[1].cpu_usec += 3 * SEC;
        assert_int_equal(sample(&m, 112 * SEC, "boot1", 11100, 10.0, w, 2), 0);
        /* mean power 15 W for 2 s: all 30 J to the two, shared by their 6 s of CPU */
        assert_near(m.board_energy_j, 150 + 30);
        assert_near(det->total.energy_j, 90 + 15);
        assert_near(batch->total.energy_j, 30 + 15);
}

/* A restarted cgroup, an agent restart (same boot) and a reboot: nothing lost, nothing twice. */
static void test_instances_and_reboots(void **state) {
        (void) state;
        struct usage_meter m;
        usage_meter_init(&m, ID1, 1000);
        struct usage_workload_sample w = {.workload = "det", .cpu_usec = 100 * SEC, .memory_bytes = 0, .instance = 1};
        assert_int_equal(sample(&m, 10 * SEC, "b1", 0, -1, &w, 1), 0);
        w.cpu_usec = 104 * SEC;
        assert_int_equal(sample(&m, 20 * SEC, "b1", 0, -1, &w, 1), 0);
        assert_near(entry(&m, "det", NULL)->total.cpu_sec, 4);
        /* a new cgroup of the same workload (removed and made again): counted from zero */
        w.instance = 2;
        w.cpu_usec = 1 * SEC;
        assert_int_equal(sample(&m, 30 * SEC, "b1", 0, -1, &w, 1), 0);
        assert_near(entry(&m, "det", NULL)->total.cpu_sec, 5);

        /* the state goes to the file and comes back (an agent restart): the counters go on */
        json_t *j = usage_meter_to_json(&m);
        assert_non_null(j);
        struct usage_meter back;
        char *why = NULL;
        assert_int_equal(usage_meter_from_json(j, &back, &why), 0);
        json_decref(j);
        w.cpu_usec = 3 * SEC;
        assert_int_equal(sample(&back, 40 * SEC, "b1", 0, -1, &w, 1), 0);
        assert_near(entry(&back, "det", NULL)->total.cpu_sec, 7);

        /* a reboot: the new boot's cgroup counts from zero even with the same inode number */
        w.cpu_usec = 2 * SEC;
        assert_int_equal(sample(&back, 5 * SEC, "b2", 0, -1, &w, 1), 0);
        assert_near(entry(&back, "det", NULL)->total.cpu_sec, 9);
        assert_false(back.have_power);
}

/* A workload moved to another tenant: a new entry, the baseline moves, the old totals stay. */
static void test_tenant_change_and_rotation(void **state) {
        (void) state;
        struct usage_meter m;
        usage_meter_init(&m, ID1, 1000);
        struct usage_workload_sample w = {.workload = "det", .tenant = "acme", .cpu_usec = 10 * SEC, .instance = 1};
        assert_int_equal(sample(&m, 1 * SEC, "b", 0, -1, &w, 1), 0);
        w.cpu_usec = 12 * SEC;
        assert_int_equal(sample(&m, 2 * SEC, "b", 0, -1, &w, 1), 0);
        w.tenant = "globex";
        w.cpu_usec = 15 * SEC;
        assert_int_equal(sample(&m, 3 * SEC, "b", 0, -1, &w, 1), 0);
        assert_int_equal(m.n_entries, 2);
        assert_near(m.entries[0].total.cpu_sec, 2);
        assert_false(m.entries[0].have_last);
        assert_string_equal(m.entries[1].tenant, "globex");
        assert_near(m.entries[1].total.cpu_sec, 3);

        /* full: -ENOSPC and nothing changed; a rotation keeps the baselines, not the totals */
        struct usage_workload_sample many[USAGE_MAX_ENTRIES];
        char names[USAGE_MAX_ENTRIES][16];
        for (size_t i = 0; i < USAGE_MAX_ENTRIES; i++) {
                snprintf(names[i], sizeof(names[i]), "w%zu", i);
                many[i] = (struct usage_workload_sample){.workload = names[i], .cpu_usec = SEC, .instance = 3};
        }
        many[0] = w;
        many[0].cpu_usec = 16 * SEC;
        assert_int_equal(sample(&m, 4 * SEC, "b", 0, -1, many, USAGE_MAX_ENTRIES), -ENOSPC);
        assert_int_equal(m.n_entries, 2);
        assert_int_equal(usage_meter_rotate(&m, ID2, 2000, NULL), 0);
        assert_string_equal(m.meter, ID2);
        assert_int_equal(m.n_entries, 1);
        assert_int_equal(m.reports, 0);
        assert_int_equal(sample(&m, 4 * SEC, "b", 0, -1, many, USAGE_MAX_ENTRIES), 0);
        /* globex's det goes on from its baseline: 1 s, not 16 */
        assert_near(entry(&m, "det", NULL)->total.cpu_sec, 1);
        /* the others are cgroups the meter had not seen in this boot: all of their CPU */
        assert_near(entry(&m, "w1", NULL)->total.cpu_sec, 1);
}

/* The report: cumulative, numbered, names only where set; link bytes on app entries. */
static void test_report(void **state) {
        (void) state;
        struct usage_meter m;
        usage_meter_init(&m, ID1, 1000);
        struct usage_workload_sample w = {.workload = "det", .tenant = "acme", .app = "hello", .cpu_usec = SEC,
                                          .memory_bytes = 10, .instance = 1};
        assert_int_equal(sample(&m, 1 * SEC, "b", 100, 5.0, &w, 1), 0);
        w.cpu_usec = 2 * SEC;
        assert_int_equal(sample(&m, 2 * SEC, "b", 200, 5.0, &w, 1), 0);
        assert_int_equal(usage_meter_add_link_bytes(&m, "hello", "acme", "dep-a", 4096), 0);
        assert_int_equal(usage_meter_add_link_bytes(&m, "hello", "acme", "dep-a", 100), 0);
        assert_int_equal(usage_meter_add_link_bytes(&m, "bad/name", NULL, NULL, 1), -EINVAL);

        json_t *r1 = usage_meter_report(&m, 1300, 300.0);
        assert_non_null(r1);
        assert_int_equal(json_integer_value(json_object_get(r1, "interval")), 1);
        assert_string_equal(json_string_value(json_object_get(r1, "meter")), ID1);
        assert_int_equal(json_integer_value(json_object_get(r1, "start")), 1000);
        assert_int_equal(json_integer_value(json_object_get(r1, "end")), 1300);
        assert_near(json_number_value(json_object_get(r1, "board_energy_j")), 5.0);
        json_t *e = json_array_get(json_object_get(r1, "entries"), 0);
        assert_string_equal(json_string_value(json_object_get(e, "workload")), "det");
        assert_string_equal(json_string_value(json_object_get(e, "tenant")), "acme");
        assert_null(json_object_get(e, "deployment"));
        assert_near(json_number_value(json_object_get(e, "cpu_sec")), 1.0);
        json_t *a = json_array_get(json_object_get(r1, "entries"), 1);
        assert_null(json_object_get(a, "workload"));
        assert_null(json_object_get(a, "cpu_sec"));
        assert_string_equal(json_string_value(json_object_get(a, "app")), "hello");
        assert_int_equal(json_integer_value(json_object_get(a, "link_bytes")), 4196);
        /* what the node sends is what the controller takes (proto/usage-record.h) */
        struct usage_record *parsed = malloc(sizeof(*parsed));
        char *why = NULL;
        assert_int_equal(usage_record_parse(r1, parsed, &why), 0);
        assert_int_equal(parsed->interval, 1);
        assert_int_equal(parsed->n_entries, 2);
        assert_true(parsed->has_board_energy);
        assert_int_equal(parsed->entries[1].link_bytes, 4196);
        free(parsed);
        json_decref(r1);
        /* the next one carries the same totals (nothing new): numbered 2 */
        json_t *r2 = usage_meter_report(&m, 1600, 300.0);
        assert_int_equal(json_integer_value(json_object_get(r2, "interval")), 2);
        assert_near(json_number_value(json_object_get(json_array_get(json_object_get(r2, "entries"), 0), "cpu_sec")),
                    1.0);
        json_decref(r2);
        assert_int_equal(m.reports, 2);
}

/* A state file that is not one is refused with where; nothing half-taken. */
static void test_bad_state(void **state) {
        (void) state;
        struct usage_meter m;
        usage_meter_init(&m, ID1, 1000);
        struct usage_workload_sample w = {.workload = "det", .cpu_usec = SEC, .instance = 1};
        assert_int_equal(sample(&m, 1 * SEC, "b", 100, 5.0, &w, 1), 0);
        json_t *j = usage_meter_to_json(&m);
        static const struct {
                const char *key, *value, *reason;
        } cases[] = {
                {"format", "2", "format 1"},
                {"meter", "\"XYZ\"", "meter: expected 32"},
                {"reports", "-1", "reports:"},
                {"last_cpu", "[1,2]", "last_cpu"},
                {"board_energy_j", "-5.0", "board_energy_j"},
                {"entries", "[{\"workload\": \"a/b\"}]", "entries[0]: its names"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *c = json_deep_copy(j);
                json_object_set_new(c, cases[i].key, json_loads(cases[i].value, JSON_DECODE_ANY, NULL));
                struct usage_meter out = m;
                char *why = NULL;
                assert_int_equal(usage_meter_from_json(c, &out, &why), -EBADMSG);
                if (!strstr(why, cases[i].reason)) {
                        print_error("case %zu: %s\n", i, why);
                        fail();
                }
                free(why);
                json_decref(c);
        }
        /* two entries with the same names */
        json_t *c = json_deep_copy(j);
        json_t *es = json_object_get(c, "entries");
        json_array_append_new(es, json_deep_copy(json_array_get(es, 0)));
        char *why = NULL;
        struct usage_meter out;
        assert_int_equal(usage_meter_from_json(c, &out, &why), -EBADMSG);
        assert_non_null(strstr(why, "the same as entries[0]"));
        free(why);
        json_decref(c);
        json_decref(j);
        assert_true(usage_meter_id_is_valid(ID1));
        assert_false(usage_meter_id_is_valid("0123456789ABCDEF0123456789abcdef"));
        /* invalid names in a sample: refused, nothing changed */
        struct usage_workload_sample bad = {.workload = "det", .tenant = "no tenant", .instance = 1};
        size_t n = m.n_entries;
        assert_int_equal(sample(&m, 2 * SEC, "b", 100, 5.0, &bad, 1), -EINVAL);
        assert_int_equal(m.n_entries, n);
}

/* Found by an attack review: dead workloads' baselines went on through every rotation and
 * reboot until the meter could hold nothing; energy was guessed across gaps. */
static void test_dead_baselines_and_gaps(void **state) {
        (void) state;
        struct usage_meter m;
        usage_meter_init(&m, ID1, 1000);
        struct usage_workload_sample w[2] = {{.workload = "a", .cpu_usec = SEC, .instance = 1},
                                             {.workload = "b", .cpu_usec = SEC, .instance = 2}};
        assert_int_equal(sample(&m, 1 * SEC, "b1", 100, 10.0, w, 2), 0);
        assert_int_equal(sample(&m, 2 * SEC, "b1", 200, 10.0, w, 2), 0);
        /* a rotation keeps the baselines of the workloads present only */
        struct usage_sample only_a = {.workloads = w, .n_workloads = 1};
        assert_int_equal(usage_meter_rotate(&m, ID2, 2000, &only_a), 0);
        assert_int_equal(m.n_entries, 1);
        assert_string_equal(m.entries[0].workload, "a");
        /* a reboot: a baseline of a workload not seen in the new boot goes */
        assert_int_equal(sample(&m, 3 * SEC, "b1", 300, 10.0, w, 2), 0);
        assert_int_equal(m.n_entries, 2);
        assert_int_equal(sample(&m, 1 * SEC, "b2", 10, 10.0, w, 1), 0);
        assert_true(entry(&m, "a", NULL)->have_last);
        assert_false(entry(&m, "b", NULL)->have_last);

        /* energy: nothing across a sample without power, nor right after one */
        struct usage_meter e;
        usage_meter_init(&e, ID1, 1000);
        struct usage_workload_sample x = {.workload = "x", .cpu_usec = 0, .instance = 1};
        assert_int_equal(sample(&e, 1 * SEC, "b", 0, 10.0, &x, 1), 0);
        x.cpu_usec = SEC;
        assert_int_equal(sample(&e, 2 * SEC, "b", 100, -1, &x, 1), 0); /* the sensor is gone */
        assert_false(e.have_power);
        x.cpu_usec = 2 * SEC;
        assert_int_equal(sample(&e, 3 * SEC, "b", 200, 10.0, &x, 1), 0); /* back: a first reading */
        assert_near(e.board_energy_j, 0);
        assert_near(entry(&e, "x", NULL)->total.energy_j, 0);
        x.cpu_usec = 3 * SEC;
        assert_int_equal(sample(&e, 4 * SEC, "b", 300, 10.0, &x, 1), 0);
        assert_near(e.board_energy_j, 10);
        assert_near(entry(&e, "x", NULL)->total.energy_j, 10);
        /* a sample without /proc/stat (an agent started before the health poll): the
         * board's energy counts, no share is guessed, and none for the interval after it */
        struct usage_sample nocpu = {.mono_usec = 5 * SEC, .boot_id = "b", .power_valid = true, .power_w = 10.0,
                                     .workloads = &x, .n_workloads = 1};
        x.cpu_usec = 4 * SEC;
        assert_int_equal(usage_meter_sample(&e, &nocpu), 0);
        assert_near(e.board_energy_j, 20);
        assert_near(entry(&e, "x", NULL)->total.energy_j, 10);
        x.cpu_usec = 5 * SEC;
        assert_int_equal(sample(&e, 6 * SEC, "b", 500, 10.0, &x, 1), 0);
        assert_near(e.board_energy_j, 30);
        assert_near(entry(&e, "x", NULL)->total.energy_j, 10);
        assert_near(entry(&e, "x", NULL)->total.cpu_sec, 5);
}

/* Bogus readings (a bit flipped in a counter, a sensor's garbage) are held to what can be,
 * and a meter is rotated before any total passes what the controller's parser takes. */
static void test_bounds(void **state) {
        (void) state;
        struct usage_meter m;
        usage_meter_init(&m, ID1, 1000);
        struct usage_workload_sample w = {.workload = "det", .cpu_usec = 1 * SEC, .memory_bytes = 1000, .instance = 7};
        struct usage_sample s = {.mono_usec = 100 * SEC, .boot_id = "boot1", .cpu_valid = true, .cpu = busy(10000),
                                 .clk_tck = 100, .power_valid = true, .power_w = 10.0, .workloads = &w,
                                 .n_workloads = 1, .n_cpus = 2, .mem_total_bytes = 1 << 20};
        assert_int_equal(usage_meter_sample(&m, &s), 0);
        /* 10 s later the counter jumped by 2^62 us and memory reads 2^60 bytes: at most 2 CPUs
         * for 10 s, at most the node's memory */
        w.cpu_usec += UINT64_C(1) << 62;
        w.memory_bytes = UINT64_C(1) << 60;
        s.mono_usec = 110 * SEC;
        s.cpu = busy(11000);
        assert_int_equal(usage_meter_sample(&m, &s), 0);
        struct usage_meter_entry *det = entry(&m, "det", NULL);
        assert_near(det->total.cpu_sec, 20);
        assert_near(det->total.memory_byte_sec, (1000.0 + (1 << 20)) / 2 * 10);
        /* a power reading of 1e30 W is not one: no board energy over it, nor over the next gap */
        double energy = m.board_energy_j;
        s.power_w = 1e30;
        s.mono_usec = 120 * SEC;
        s.cpu = busy(12000);
        assert_int_equal(usage_meter_sample(&m, &s), 0);
        assert_near(m.board_energy_j, energy);
        assert_false(m.have_power);
        s.power_w = 10.0;
        s.mono_usec = 130 * SEC;
        s.cpu = busy(13000);
        assert_int_equal(usage_meter_sample(&m, &s), 0);
        assert_near(m.board_energy_j, energy);
        assert_true(m.have_power);

        /* a total near the parser's bound (a state kept for ages, or restored): -ENOSPC, nothing
         * changed, and a new meter takes the sample; its reports always parse */
        det->total.cpu_sec = USAGE_AMOUNT_MAX * USAGE_TOTAL_ROTATE;
        w.cpu_usec += 5 * SEC;
        s.mono_usec = 140 * SEC;
        s.cpu = busy(14000);
        assert_int_equal(usage_meter_sample(&m, &s), -ENOSPC);
        assert_near(det->total.cpu_sec, USAGE_AMOUNT_MAX * USAGE_TOTAL_ROTATE);
        assert_int_equal(usage_meter_rotate(&m, ID2, 2000, &s), 0);
        assert_int_equal(usage_meter_sample(&m, &s), 0);
        assert_near(entry(&m, "det", NULL)->total.cpu_sec, 5);
        /* the same for an app's link bytes */
        assert_int_equal(usage_meter_add_link_bytes(&m, "hello", "acme", "", 1000), 0);
        entry(&m, NULL, "hello")->total.link_bytes = (uint64_t) USAGE_LINK_BYTES_MAX / 2 - 10;
        assert_int_equal(usage_meter_add_link_bytes(&m, "hello", "acme", "", 11), -ENOSPC);
        assert_int_equal(entry(&m, NULL, "hello")->total.link_bytes, (uint64_t) USAGE_LINK_BYTES_MAX / 2 - 10);
        assert_int_equal(usage_meter_add_link_bytes(&m, "hello", "acme", "", 10), 0);
        /* a total already past the rotation point (a state restored from an older build):
         * no wrap of the room left, a new meter */
        entry(&m, NULL, "hello")->total.link_bytes = (uint64_t) USAGE_LINK_BYTES_MAX - 1;
        assert_int_equal(usage_meter_add_link_bytes(&m, "hello", "acme", "", 1), -ENOSPC);

        /* a state file with a total past the bound is refused, saying where */
        entry(&m, "det", NULL)->total.energy_j = 2 * USAGE_AMOUNT_MAX;
        json_t *j = usage_meter_to_json(&m);
        struct usage_meter back;
        char *why = NULL;
        assert_int_equal(usage_meter_from_json(j, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "totals"));
        free(why);
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counts),
                cmocka_unit_test(test_instances_and_reboots),
                cmocka_unit_test(test_tenant_change_and_rotation),
                cmocka_unit_test(test_report),
                cmocka_unit_test(test_bad_state),
                cmocka_unit_test(test_dead_baselines_and_gaps),
                cmocka_unit_test(test_bounds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
