/* The usage meter's arithmetic and its state: see agent/usage-meter.h. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/usage-meter.h"
#include "lib/macro.h"
#include "lib/message.h"

bool usage_meter_id_is_valid(const char *id) {
        if (!id || strlen(id) != USAGE_METER_ID_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static const char *or_empty(const char *s) {
        return s ? s : "";
}

/* NULL and "" are none; anything else must be a name. */
static bool optional_name_ok(const char *s) {
        return !s || !s[0] || usage_name_is_valid(s);
}

void usage_meter_init(struct usage_meter *m, const char *meter_id, int64_t now) {
        *m = (struct usage_meter){.started = now, .last_report = now};
        snprintf(m->meter, sizeof(m->meter), "%s", meter_id);
}

static struct usage_meter_entry *find_entry(struct usage_meter *m, const char *workload, const char *tenant,
                                      const char *deployment, const char *app) {
        for (size_t i = 0; i < m->n_entries; i++) {
                struct usage_meter_entry *e = &m->entries[i];
                if (streq(e->workload, or_empty(workload)) && streq(e->tenant, or_empty(tenant)) &&
                    streq(e->deployment, or_empty(deployment)) && streq(e->app, or_empty(app)))
                        return e;
        }
        return NULL;
}

/* The entry holding this workload's cgroup baseline, whatever its tenant now. */
static struct usage_meter_entry *find_baseline(struct usage_meter *m, const char *workload) {
        for (size_t i = 0; i < m->n_entries; i++)
                if (m->entries[i].have_last && streq(m->entries[i].workload, workload))
                        return &m->entries[i];
        return NULL;
}

static struct usage_meter_entry *add_entry(struct usage_meter *m, const char *workload, const char *tenant,
                                     const char *deployment, const char *app) {
        struct usage_meter_entry *e = &m->entries[m->n_entries++];
        *e = (struct usage_meter_entry){0};
        snprintf(e->workload, sizeof(e->workload), "%s", or_empty(workload));
        snprintf(e->tenant, sizeof(e->tenant), "%s", or_empty(tenant));
        snprintf(e->deployment, sizeof(e->deployment), "%s", or_empty(deployment));
        snprintf(e->app, sizeof(e->app), "%s", or_empty(app));
        return e;
}

static uint64_t cpu_busy_ticks(const struct cpu_times *c) {
        return c->user + c->nice + c->system + c->irq + c->softirq + c->steal;
}

static bool power_is_plausible(double w) {
        return isfinite(w) && w >= 0 && w <= USAGE_POWER_MAX_W;
}

static uint64_t clamp_memory(const struct usage_sample *s, uint64_t bytes) {
        return s->mem_total_bytes > 0 && bytes > s->mem_total_bytes ? s->mem_total_bytes : bytes;
}

/* The most one sample can add, against the bounds: would a total pass its share of one? */
static bool amount_near_bound(double total, double add) {
        /* a meter with nothing counted yet takes the sample whatever it adds (held to the
         * bound below): rotating it again would not help */
        return total > 0 && total + add >= USAGE_AMOUNT_MAX * USAGE_TOTAL_ROTATE;
}

static void add_amount(double *total, double add) {
        *total = fmin(*total + add, USAGE_AMOUNT_MAX);
}

static bool would_pass_bound(const struct usage_meter *m, const struct usage_sample *s) {
        /* what the sample can add at most: the bounds it is held to, over the longest time
         * it can count (since the boot, after a reboot) */
        double dt_max = (double) s->mono_usec / 1e6;
        if (m->have_last && s->mono_usec > m->last_mono_usec && streq(m->boot_id, or_empty(s->boot_id)))
                dt_max = (double) (s->mono_usec - m->last_mono_usec) / 1e6;
        /* a bound not known: what the totals are now is all that can be judged */
        double cpu_max = s->n_cpus > 0 ? dt_max * s->n_cpus : 0;
        double mem_max = s->mem_total_bytes > 0 ? (double) s->mem_total_bytes * dt_max : 0;
        double energy_max = USAGE_POWER_MAX_W * dt_max;
        if (amount_near_bound(m->board_energy_j, energy_max))
                return true;
        for (size_t i = 0; i < m->n_entries; i++) {
                const struct usage_totals *t = &m->entries[i].total;
                if (amount_near_bound(t->cpu_sec, cpu_max) || amount_near_bound(t->memory_byte_sec, mem_max) ||
                    amount_near_bound(t->energy_j, energy_max))
                        return true;
        }
        return false;
}

int usage_meter_sample(struct usage_meter *m, const struct usage_sample *s) {
        if (!m || !s || (s->n_workloads > 0 && !s->workloads))
                return -EINVAL;
        /* First: every name checked and room for every new entry, so a refusal changes nothing. */
        size_t needed = 0;
        for (size_t i = 0; i < s->n_workloads; i++) {
                const struct usage_workload_sample *w = &s->workloads[i];
                if (!usage_name_is_valid(w->workload) || !optional_name_ok(w->tenant) ||
                    !optional_name_ok(w->deployment) || !optional_name_ok(w->app))
                        return -EINVAL;
                if (!find_entry(m, w->workload, w->tenant, w->deployment, w->app))
                        needed++;
        }
        if (m->n_entries + needed > USAGE_MAX_ENTRIES)
                return -ENOSPC;
        if (would_pass_bound(m, s))
                return -ENOSPC;

        bool same_boot = m->have_last && streq(m->boot_id, or_empty(s->boot_id));
        /* A new meter counts nothing it did not see begin: its first sample takes baselines. */
        bool counting = m->have_last;
        /* After a reboot, the monotonic clock, /proc/stat and every cgroup began at the boot. */
        double dt = !counting ? 0.0
                    : same_boot ? (s->mono_usec > m->last_mono_usec ? (double) (s->mono_usec - m->last_mono_usec) / 1e6 : 0.0)
                                : (double) s->mono_usec / 1e6;
        /* Energy only between two good readings of one boot: the power sensor's, and
         * /proc/stat's for the shares. A gap (an agent restart before the first health poll,
         * a sensor gone) is not guessed: the board's energy over it is unknown. */
        bool power_valid = s->power_valid && power_is_plausible(s->power_w);
        bool have_power = counting && same_boot && power_valid && m->have_power;
        double power = have_power ? (s->power_w + m->last_power_w) / 2 : 0.0;
        if (have_power)
                add_amount(&m->board_energy_j, power * dt);
        double node_busy_usec = 0;
        bool shares = have_power && s->cpu_valid && m->have_cpu && s->clk_tck > 0;
        if (shares) {
                uint64_t now = cpu_busy_ticks(&s->cpu), before = cpu_busy_ticks(&m->last_cpu);
                if (now >= before)
                        node_busy_usec = (double) (now - before) * 1e6 / (double) s->clk_tck;
        }

        /* Each workload's CPU since the last sample, then the energy shares. */
        double cpu_d[USAGE_MAX_ENTRIES] = {0}, cpu_sum = 0;
        struct usage_meter_entry *ent[USAGE_MAX_ENTRIES] = {0};
        size_t n = s->n_workloads < USAGE_MAX_ENTRIES ? s->n_workloads : USAGE_MAX_ENTRIES;
        for (size_t i = 0; i < n; i++) {
                const struct usage_workload_sample *w = &s->workloads[i];
                struct usage_meter_entry *base = find_baseline(m, w->workload);
                struct usage_meter_entry *e = find_entry(m, w->workload, w->tenant, w->deployment, w->app);
                if (!e)
                        e = add_entry(m, w->workload, w->tenant, w->deployment, w->app);
                double mem_avg;
                uint64_t mem_now = clamp_memory(s, w->memory_bytes);
                if (base && same_boot && base->last_instance == w->instance && w->cpu_usec >= base->last_cpu_usec) {
                        cpu_d[i] = (double) (w->cpu_usec - base->last_cpu_usec);
                        mem_avg = ((double) clamp_memory(s, base->last_memory_bytes) + (double) mem_now) / 2;
                } else {
                        /* a cgroup the meter has not seen (new, or after a reboot): all of it */
                        cpu_d[i] = (double) w->cpu_usec;
                        mem_avg = (double) mem_now / 2;
                }
                if (!counting)
                        cpu_d[i] = 0;
                /* at most every CPU of the node for the whole time: more is not a reading */
                if (s->n_cpus > 0 && cpu_d[i] > dt * 1e6 * s->n_cpus)
                        cpu_d[i] = dt * 1e6 * s->n_cpus;
                if (base && base != e)
                        base->have_last = false; /* the baseline moves to its entry now */
                e->have_last = true;
                e->last_cpu_usec = w->cpu_usec;
                e->last_memory_bytes = w->memory_bytes;
                e->last_instance = w->instance;
                add_amount(&e->total.cpu_sec, cpu_d[i] / 1e6);
                add_amount(&e->total.memory_byte_sec, mem_avg * dt);
                cpu_sum += cpu_d[i];
                ent[i] = e;
        }
        double denom = node_busy_usec > cpu_sum ? node_busy_usec : cpu_sum;
        if (shares && denom > 0)
                for (size_t i = 0; i < n; i++)
                        add_amount(&ent[i]->total.energy_j, power * dt * cpu_d[i] / denom);
        /* After a reboot no cgroup of before exists: the baselines of workloads not seen
         * now go (a rotation would carry them on forever otherwise). */
        if (!same_boot)
                for (size_t k = 0; k < m->n_entries; k++) {
                        bool seen = false;
                        for (size_t i = 0; i < n && !seen; i++)
                                seen = ent[i] == &m->entries[k];
                        if (!seen)
                                m->entries[k].have_last = false;
                }

        m->have_last = true;
        m->last_mono_usec = s->mono_usec;
        snprintf(m->boot_id, sizeof(m->boot_id), "%s", or_empty(s->boot_id));
        m->have_cpu = s->cpu_valid;
        if (s->cpu_valid)
                m->last_cpu = s->cpu;
        m->have_power = power_valid;
        if (power_valid)
                m->last_power_w = s->power_w;
        return 0;
}

int usage_meter_add_link_bytes(struct usage_meter *m, const char *app, const char *tenant, const char *deployment,
                               uint64_t bytes) {
        if (!m || !usage_name_is_valid(app) || !optional_name_ok(tenant) || !optional_name_ok(deployment))
                return -EINVAL;
        struct usage_meter_entry *e = find_entry(m, NULL, tenant, deployment, app);
        if (!e) {
                if (m->n_entries >= USAGE_MAX_ENTRIES)
                        return -ENOSPC;
                e = add_entry(m, NULL, tenant, deployment, app);
        }
        uint64_t limit = (uint64_t) ((double) USAGE_LINK_BYTES_MAX * USAGE_TOTAL_ROTATE);
        if (e->total.link_bytes >= limit || bytes > limit - e->total.link_bytes)
                return -ENOSPC; /* a new meter: this one's reports would be refused */
        e->total.link_bytes += bytes;
        return 0;
}

static bool present_in(const struct usage_sample *present, const char *workload) {
        if (!present)
                return true;
        for (size_t i = 0; i < present->n_workloads; i++)
                if (streq(present->workloads[i].workload, workload))
                        return true;
        return false;
}

int usage_meter_rotate(struct usage_meter *m, const char *new_id, int64_t now, const struct usage_sample *present) {
        /* about 170 KiB: not on the stack */
        _cleanup_free_ struct usage_meter *old = malloc(sizeof(*old));
        if (!old)
                return -ENOMEM;
        *old = *m;
        usage_meter_init(m, new_id, now);
        snprintf(m->boot_id, sizeof(m->boot_id), "%s", old->boot_id);
        m->have_last = old->have_last;
        m->last_mono_usec = old->last_mono_usec;
        m->have_cpu = old->have_cpu;
        m->last_cpu = old->last_cpu;
        m->have_power = old->have_power;
        m->last_power_w = old->last_power_w;
        /* only the baselines go on: one entry per workload cgroup the old meter knew */
        for (size_t i = 0; i < old->n_entries; i++) {
                const struct usage_meter_entry *o = &old->entries[i];
                if (!o->have_last || !present_in(present, o->workload))
                        continue;
                struct usage_meter_entry *e = add_entry(m, o->workload, o->tenant, o->deployment, o->app);
                e->have_last = true;
                e->last_cpu_usec = o->last_cpu_usec;
                e->last_memory_bytes = o->last_memory_bytes;
                e->last_instance = o->last_instance;
        }
        return 0;
}

static int set_name(json_t *o, const char *key, const char *v) {
        return v[0] ? json_object_set_new(o, key, json_string(v)) : 0;
}

json_t *usage_meter_report(struct usage_meter *m, int64_t now, double interval_sec) {
        json_t *entries = json_array();
        if (!entries)
                return NULL;
        for (size_t i = 0; i < m->n_entries; i++) {
                const struct usage_meter_entry *e = &m->entries[i];
                json_t *o = json_object();
                int r = o ? 0 : -1;
                if (r == 0)
                        r = set_name(o, "workload", e->workload) | set_name(o, "tenant", e->tenant) |
                            set_name(o, "deployment", e->deployment) | set_name(o, "app", e->app);
                if (r == 0 && e->workload[0])
                        r = json_object_set_new(o, "cpu_sec", json_real(e->total.cpu_sec)) |
                            json_object_set_new(o, "memory_byte_sec", json_real(e->total.memory_byte_sec)) |
                            json_object_set_new(o, "energy_j", json_real(e->total.energy_j));
                if (r == 0)
                        r = json_object_set_new(o, "link_bytes", json_integer((json_int_t) e->total.link_bytes));
                if (r != 0 || json_array_append_new(entries, o) < 0) {
                        json_decref(o);
                        json_decref(entries);
                        return NULL;
                }
        }
        json_t *body = json_pack("{s:s,s:I,s:I,s:I,s:f,s:o}", "meter", m->meter, "interval",
                                 (json_int_t) (m->reports + 1), "start", (json_int_t) m->started, "end",
                                 (json_int_t) now, "duration_sec", interval_sec, "entries", entries);
        if (body && m->have_power && json_object_set_new(body, "board_energy_j", json_real(m->board_energy_j)) < 0) {
                json_decref(body);
                return NULL;
        }
        if (body) {
                m->reports++;
                m->last_report = now;
        }
        return body;
}

/* ---- the state file --------------------------------------------------------------- */

json_t *usage_meter_to_json(const struct usage_meter *m) {
        json_t *entries = json_array();
        for (size_t i = 0; entries && i < m->n_entries; i++) {
                const struct usage_meter_entry *e = &m->entries[i];
                json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:f,s:I,s:b,s:I,s:I,s:I}", "workload", e->workload,
                                      "tenant", e->tenant, "deployment", e->deployment, "app", e->app, "cpu_sec",
                                      e->total.cpu_sec, "memory_byte_sec", e->total.memory_byte_sec, "energy_j",
                                      e->total.energy_j, "link_bytes", (json_int_t) e->total.link_bytes, "have_last",
                                      e->have_last, "last_cpu_usec", (json_int_t) e->last_cpu_usec,
                                      "last_memory_bytes", (json_int_t) e->last_memory_bytes, "last_instance",
                                      (json_int_t) e->last_instance);
                if (!o || json_array_append_new(entries, o) < 0) {
                        json_decref(o);
                        json_decref(entries);
                        return NULL;
                }
        }
        if (!entries)
                return NULL;
        const struct cpu_times *c = &m->last_cpu;
        return json_pack("{s:i,s:s,s:I,s:I,s:I,s:s,s:b,s:I,s:b,s:[I,I,I,I,I,I,I,I],s:b,s:f,s:f,s:o}", "format", 1,
                         "meter", m->meter, "reports", (json_int_t) m->reports, "started", (json_int_t) m->started,
                         "last_report", (json_int_t) m->last_report, "boot_id", m->boot_id, "have_last", m->have_last,
                         "last_mono_usec", (json_int_t) m->last_mono_usec, "have_cpu", m->have_cpu, "last_cpu",
                         (json_int_t) c->user, (json_int_t) c->nice, (json_int_t) c->system, (json_int_t) c->idle,
                         (json_int_t) c->iowait, (json_int_t) c->irq, (json_int_t) c->softirq, (json_int_t) c->steal,
                         "have_power", m->have_power, "last_power_w", m->last_power_w, "board_energy_j",
                         m->board_energy_j, "entries", entries);
}

static bool get_u64(json_t *o, const char *key, uint64_t *ret) {
        json_t *v = json_object_get(o, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return false;
        *ret = (uint64_t) json_integer_value(v);
        return true;
}

static bool get_double(json_t *o, const char *key, double *ret) {
        json_t *v = json_object_get(o, key);
        if (!json_is_number(v))
                return false;
        double d = json_number_value(v);
        if (!isfinite(d) || d < 0)
                return false;
        *ret = d;
        return true;
}

static bool get_bool(json_t *o, const char *key, bool *ret) {
        json_t *v = json_object_get(o, key);
        if (!json_is_boolean(v))
                return false;
        *ret = json_is_true(v);
        return true;
}

static bool get_str(json_t *o, const char *key, char *buf, size_t size, bool name) {
        json_t *v = json_object_get(o, key);
        const char *s = json_string_value(v);
        if (!s || strlen(s) >= size || (name && s[0] && !usage_name_is_valid(s)))
                return false;
        snprintf(buf, size, "%s", s);
        return true;
}

int usage_meter_from_json(json_t *j, struct usage_meter *m, char **ret_reason) {
        /* about 170 KiB: not on the stack */
        _cleanup_free_ struct usage_meter *tp = calloc(1, sizeof(*tp));
        if (!tp)
                return -ENOMEM;
        struct usage_meter *t = tp;
        uint64_t u;
        json_t *fmt = json_object_get(j, "format");
        if (!json_is_object(j) || !json_is_integer(fmt) || json_integer_value(fmt) != 1)
                return message_set(ret_reason, -EBADMSG, "not a usage meter state of format 1");
        if (!get_str(j, "meter", t->meter, sizeof(t->meter), false) || !usage_meter_id_is_valid(t->meter))
                return message_set(ret_reason, -EBADMSG, "meter: expected 32 lowercase hex characters");
        if (!get_u64(j, "reports", &t->reports))
                return message_set(ret_reason, -EBADMSG, "reports: expected a count");
        if (!get_u64(j, "started", &u) || (t->started = (int64_t) u, !get_u64(j, "last_report", &u)))
                return message_set(ret_reason, -EBADMSG, "started, last_report: expected times in seconds");
        t->last_report = (int64_t) u;
        if (!get_str(j, "boot_id", t->boot_id, sizeof(t->boot_id), false))
                return message_set(ret_reason, -EBADMSG, "boot_id: expected a boot id");
        if (!get_bool(j, "have_last", &t->have_last) || !get_u64(j, "last_mono_usec", &t->last_mono_usec))
                return message_set(ret_reason, -EBADMSG, "have_last, last_mono_usec: missing or wrong");
        json_t *c = json_object_get(j, "last_cpu");
        uint64_t *cf[] = {&t->last_cpu.user, &t->last_cpu.nice,    &t->last_cpu.system,  &t->last_cpu.idle,
                          &t->last_cpu.iowait, &t->last_cpu.irq, &t->last_cpu.softirq, &t->last_cpu.steal};
        if (!get_bool(j, "have_cpu", &t->have_cpu) || !json_is_array(c) || json_array_size(c) != ELEMENTSOF(cf))
                return message_set(ret_reason, -EBADMSG, "have_cpu, last_cpu: missing or wrong");
        for (size_t i = 0; i < ELEMENTSOF(cf); i++) {
                json_t *v = json_array_get(c, i);
                if (!json_is_integer(v) || json_integer_value(v) < 0)
                        return message_set(ret_reason, -EBADMSG, "last_cpu[%zu]: expected a tick count", i);
                *cf[i] = (uint64_t) json_integer_value(v);
        }
        if (!get_bool(j, "have_power", &t->have_power) || !get_double(j, "last_power_w", &t->last_power_w) ||
            !get_double(j, "board_energy_j", &t->board_energy_j) || t->board_energy_j > USAGE_AMOUNT_MAX)
                return message_set(ret_reason, -EBADMSG, "have_power, last_power_w, board_energy_j: missing or wrong");
        json_t *entries = json_object_get(j, "entries");
        if (!json_is_array(entries) || json_array_size(entries) > USAGE_MAX_ENTRIES)
                return message_set(ret_reason, -EBADMSG, "entries: expected at most %d", USAGE_MAX_ENTRIES);
        size_t i;
        json_t *o;
        json_array_foreach(entries, i, o) {
                struct usage_meter_entry *e = &t->entries[t->n_entries++];
                if (!json_is_object(o) || !get_str(o, "workload", e->workload, sizeof(e->workload), true) ||
                    !get_str(o, "tenant", e->tenant, sizeof(e->tenant), true) ||
                    !get_str(o, "deployment", e->deployment, sizeof(e->deployment), true) ||
                    !get_str(o, "app", e->app, sizeof(e->app), true) || (!e->workload[0] && !e->app[0]))
                        return message_set(ret_reason, -EBADMSG, "entries[%zu]: its names are missing or wrong", i);
                if (!get_double(o, "cpu_sec", &e->total.cpu_sec) ||
                    !get_double(o, "memory_byte_sec", &e->total.memory_byte_sec) ||
                    !get_double(o, "energy_j", &e->total.energy_j) || !get_u64(o, "link_bytes", &e->total.link_bytes) ||
                    e->total.cpu_sec > USAGE_AMOUNT_MAX || e->total.memory_byte_sec > USAGE_AMOUNT_MAX ||
                    e->total.energy_j > USAGE_AMOUNT_MAX || e->total.link_bytes > (uint64_t) USAGE_LINK_BYTES_MAX)
                        return message_set(ret_reason, -EBADMSG, "entries[%zu]: its totals are missing or wrong", i);
                if (!get_bool(o, "have_last", &e->have_last) || !get_u64(o, "last_cpu_usec", &e->last_cpu_usec) ||
                    !get_u64(o, "last_memory_bytes", &e->last_memory_bytes) ||
                    !get_u64(o, "last_instance", &e->last_instance))
                        return message_set(ret_reason, -EBADMSG, "entries[%zu]: its last sample is missing or wrong", i);
                for (size_t k = 0; k + 1 < t->n_entries; k++)
                        if (streq(t->entries[k].workload, e->workload) && streq(t->entries[k].tenant, e->tenant) &&
                            streq(t->entries[k].deployment, e->deployment) && streq(t->entries[k].app, e->app))
                                return message_set(ret_reason, -EBADMSG, "entries[%zu]: the same as entries[%zu]", i, k);
        }
        *m = *t;
        return 0;
}
