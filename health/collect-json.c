/* Health collectors: a snapshot as JSON with stable keys, for orbitctl and reports. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "health/collect.h"
#include "lib/macro.h"

/*
 * Builders that never leak: json_object_set_new() takes its value even when it fails
 * (and fails on a NULL value), so one flag per object tells whether anything went wrong.
 */
struct builder {
        json_t *obj;
        bool failed;
};

static struct builder builder_start(void) {
        json_t *o = json_object();
        return (struct builder){.obj = o, .failed = !o};
}

static void put(struct builder *b, const char *key, json_t *value) {
        if (!b->obj) {
                json_decref(value);
                return;
        }
        if (json_object_set_new(b->obj, key, value) < 0)
                b->failed = true;
}

static json_t *builder_finish(struct builder *b) {
        if (b->failed) {
                json_decref(b->obj);
                return NULL;
        }
        return b->obj;
}

static json_t *json_u64(uint64_t v) {
        return json_integer(v > (uint64_t) INT64_MAX ? INT64_MAX : (json_int_t) v);
}

static void append(json_t *array, json_t *item, bool *failed) {
        if (json_array_append_new(array, item) < 0)
                *failed = true;
}

static json_t *trip_to_json(const struct thermal_trip *t) {
        struct builder b = builder_start();
        put(&b, "type", json_string(t->type));
        put(&b, "temp_mc", json_integer(t->temp_mc));
        put(&b, "hyst_mc", t->has_hyst ? json_integer(t->hyst_mc) : json_null());
        return builder_finish(&b);
}

static json_t *zone_to_json(const struct thermal_zone *z) {
        struct builder b = builder_start();
        put(&b, "name", json_string(z->name));
        put(&b, "type", json_string(z->type));
        put(&b, "valid", json_boolean(z->valid));
        put(&b, "temp_mc", z->valid ? json_integer(z->temp_mc) : json_null());
        json_t *trips = json_array();
        for (size_t i = 0; trips && i < z->n_trips; i++)
                append(trips, trip_to_json(&z->trips[i]), &b.failed);
        put(&b, "trips", trips);
        return builder_finish(&b);
}

static json_t *hwmon_to_json(const struct hwmon_temp *t) {
        struct builder b = builder_start();
        put(&b, "device", json_string(t->device));
        put(&b, "chip", json_string(t->chip));
        put(&b, "label", json_string(t->label));
        put(&b, "valid", json_boolean(t->valid));
        put(&b, "temp_mc", t->valid ? json_integer(t->temp_mc) : json_null());
        return builder_finish(&b);
}

static json_t *supply_to_json(const struct power_supply *p) {
        struct builder b = builder_start();
        put(&b, "name", json_string(p->name));
        put(&b, "type", json_string(p->type));
        put(&b, "status", json_string(p->status));
        put(&b, "capacity", p->capacity >= 0 ? json_integer(p->capacity) : json_null());
        put(&b, "online", p->online >= 0 ? json_boolean(p->online == 1) : json_null());
        put(&b, "device_scope", json_boolean(p->device_scope));
        return builder_finish(&b);
}

static json_t *psi_to_json(const struct psi_line *l) {
        if (!l->valid)
                return json_null();
        struct builder b = builder_start();
        put(&b, "avg10", json_real(l->avg10));
        put(&b, "avg60", json_real(l->avg60));
        put(&b, "avg300", json_real(l->avg300));
        put(&b, "total_usec", json_u64(l->total_usec));
        return builder_finish(&b);
}

static json_t *psi_pair_to_json(const struct psi_line *some, const struct psi_line *full) {
        struct builder b = builder_start();
        put(&b, "some", psi_to_json(some));
        if (full)
                put(&b, "full", psi_to_json(full));
        return builder_finish(&b);
}

static json_t *disk_to_json(const struct disk_space *d) {
        struct builder b = builder_start();
        put(&b, "path", json_string(d->path));
        put(&b, "valid", json_boolean(d->valid));
        put(&b, "total_bytes", d->valid ? json_u64(d->total_bytes) : json_null());
        put(&b, "available_bytes", d->valid ? json_u64(d->avail_bytes) : json_null());
        return builder_finish(&b);
}

json_t *health_snapshot_to_json(const struct health_snapshot *s) {
        if (!s)
                return NULL;
        struct builder b = builder_start();
        put(&b, "monotonic_usec", json_u64(s->monotonic_usec));

        json_t *zones = json_array(), *hwmon = json_array(), *supplies = json_array();
        json_t *disks = json_array(), *problems = json_array();
        for (size_t i = 0; zones && i < s->n_zones; i++)
                append(zones, zone_to_json(&s->zones[i]), &b.failed);
        for (size_t i = 0; hwmon && i < s->n_hwmon; i++)
                append(hwmon, hwmon_to_json(&s->hwmon[i]), &b.failed);
        for (size_t i = 0; supplies && i < s->n_supplies; i++)
                append(supplies, supply_to_json(&s->supplies[i]), &b.failed);
        for (size_t i = 0; disks && i < s->n_disks; i++)
                append(disks, disk_to_json(&s->disks[i]), &b.failed);
        for (size_t i = 0; problems && i < s->n_problems; i++)
                append(problems, json_string(s->problems[i]), &b.failed);

        put(&b, "thermal_zones", zones);
        put(&b, "hwmon", hwmon);
        put(&b, "power_supplies", supplies);
        put(&b, "on_battery", json_boolean(s->on_battery));
        put(&b, "battery_capacity",
            s->battery_capacity >= 0 ? json_integer(s->battery_capacity) : json_null());

        put(&b, "cpu_busy_percent",
            s->cpu_busy_percent >= 0 ? json_real(s->cpu_busy_percent) : json_null());

        struct builder mem = builder_start();
        put(&mem, "total_bytes", s->mem_valid ? json_u64(s->mem_total) : json_null());
        put(&mem, "available_bytes", s->mem_valid ? json_u64(s->mem_available) : json_null());
        put(&b, "memory", builder_finish(&mem));

        struct builder load = builder_start();
        put(&load, "avg1", s->load_valid ? json_real(s->load1) : json_null());
        put(&load, "avg5", s->load_valid ? json_real(s->load5) : json_null());
        put(&load, "avg15", s->load_valid ? json_real(s->load15) : json_null());
        put(&b, "load", builder_finish(&load));

        struct builder psi = builder_start();
        put(&psi, "cpu", psi_pair_to_json(&s->psi_cpu_some, NULL));
        put(&psi, "memory", psi_pair_to_json(&s->psi_mem_some, &s->psi_mem_full));
        put(&psi, "io", psi_pair_to_json(&s->psi_io_some, &s->psi_io_full));
        put(&b, "pressure", builder_finish(&psi));

        put(&b, "disks", disks);

        struct builder self = builder_start();
        put(&self, "rss_bytes", s->self.valid ? json_u64(s->self.rss_bytes) : json_null());
        put(&self, "open_fds", s->self.valid ? json_integer(s->self.open_fds) : json_null());
        put(&self, "loop_lag_usec", json_u64(s->self.loop_lag_usec));
        put(&b, "self", builder_finish(&self));

        put(&b, "problems", problems);
        put(&b, "problems_dropped", json_u64(s->problems_dropped));
        return builder_finish(&b);
}
