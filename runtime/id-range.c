/* Host uid/gid ranges for user namespaces: the pool and who owns which slice. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "runtime/id-range.h"

int id_pool_check(const struct id_pool *p, char *msg, size_t size) {
        if (p->size == 0) {
                snprintf(msg, size, "ids_per_workload must be at least 1");
                return -EINVAL;
        }
        if (p->n_ranges == 0 || p->n_ranges > ID_RANGES_MAX) {
                snprintf(msg, size, "need 1 to %d id ranges", ID_RANGES_MAX);
                return -EINVAL;
        }
        for (size_t i = 0; i < p->n_ranges; i++) {
                const struct id_range *r = &p->ranges[i];
                uint64_t end = (uint64_t) r->start + r->count; /* exclusive */
                if (r->start < ID_RANGE_MIN_START) {
                        snprintf(msg, size, "id range %zu starts at %u, below %u (the host's own users)", i,
                                 r->start, ID_RANGE_MIN_START);
                        return -EINVAL;
                }
                if (r->count < p->size) {
                        snprintf(msg, size, "id range %zu holds %u ids, fewer than one workload's %u", i,
                                 r->count, p->size);
                        return -EINVAL;
                }
                if (end > UINT32_MAX) {
                        snprintf(msg, size, "id range %zu ends past %u", i, UINT32_MAX - 1);
                        return -EINVAL;
                }
                for (size_t k = 0; k < i; k++) {
                        const struct id_range *o = &p->ranges[k];
                        if (r->start < (uint64_t) o->start + o->count && o->start < end) {
                                snprintf(msg, size, "id ranges %zu and %zu overlap", k, i);
                                return -EINVAL;
                        }
                }
        }
        return 0;
}

size_t id_pool_slices(const struct id_pool *p) {
        size_t n = 0;
        for (size_t i = 0; p->size > 0 && i < p->n_ranges; i++)
                n += p->ranges[i].count / p->size;
        return n;
}

bool id_pool_has_slice(const struct id_pool *p, uint32_t start) {
        for (size_t i = 0; p->size > 0 && i < p->n_ranges; i++) {
                const struct id_range *r = &p->ranges[i];
                if (start < r->start)
                        continue;
                uint64_t off = (uint64_t) start - r->start;
                if (off % p->size == 0 && off / p->size < r->count / p->size)
                        return true;
        }
        return false;
}

static struct id_allocation *find(struct id_allocations *a, const char *name) {
        for (size_t i = 0; i < a->n; i++)
                if (streq(a->items[i].name, name))
                        return &a->items[i];
        return NULL;
}

static bool slice_taken(const struct id_allocations *a, uint32_t start, const struct id_allocation *except) {
        for (size_t i = 0; i < a->n; i++)
                if (&a->items[i] != except && a->items[i].start == start)
                        return true;
        return false;
}

int id_allocations_find(const struct id_allocations *a, const char *name, uint32_t *ret_start) {
        struct id_allocation *e = find((struct id_allocations *) a, name);
        if (!e)
                return -ENOENT;
        *ret_start = e->start;
        return 0;
}

int id_allocations_assign(struct id_allocations *a, const struct id_pool *p, const char *name,
                          uint32_t *ret_start, bool *ret_changed) {
        *ret_changed = false;
        struct id_allocation *e = find(a, name);
        if (e && id_pool_has_slice(p, e->start) && !slice_taken(a, e->start, e)) {
                *ret_start = e->start;
                return 0;
        }
        /* Lowest free slice first: deterministic, and a small pool fills from its start. */
        for (size_t i = 0; p->size > 0 && i < p->n_ranges; i++) {
                const struct id_range *r = &p->ranges[i];
                for (uint64_t s = r->start; s + p->size <= (uint64_t) r->start + r->count; s += p->size) {
                        if (slice_taken(a, (uint32_t) s, e))
                                continue;
                        if (!e) {
                                if (a->n >= ID_ALLOCATIONS_MAX)
                                        return -E2BIG;
                                e = &a->items[a->n++];
                                snprintf(e->name, sizeof(e->name), "%s", name);
                        }
                        e->start = (uint32_t) s;
                        *ret_start = e->start;
                        *ret_changed = true;
                        return 0;
                }
        }
        return -ENOSPC;
}

int id_allocations_release(struct id_allocations *a, const char *name) {
        struct id_allocation *e = find(a, name);
        if (!e)
                return -ENOENT;
        *e = a->items[--a->n];
        return 0;
}

char *id_allocations_format(const struct id_allocations *a, const struct id_pool *p) {
        json_t *w = json_object();
        json_t *o = json_pack("{s:i,s:I,s:o}", "format", 1, "size", (json_int_t) p->size, "workloads", w);
        if (!o)
                return NULL;
        for (size_t i = 0; i < a->n; i++)
                if (json_object_set_new(w, a->items[i].name, json_integer(a->items[i].start)) < 0) {
                        json_decref(o);
                        return NULL;
                }
        char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        return text;
}

int id_allocations_parse(const char *text, size_t len, struct id_allocations *ret) {
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *w = o ? json_object_get(o, "workloads") : NULL;
        json_t *format = o ? json_object_get(o, "format") : NULL;
        if (!json_is_object(w) || !json_is_integer(format) || json_integer_value(format) != 1) {
                json_decref(o);
                return -EBADMSG;
        }
        ret->n = 0;
        const char *name;
        json_t *v;
        json_object_foreach(w, name, v) {
                json_int_t start = json_is_integer(v) ? json_integer_value(v) : -1;
                if (!workload_name_is_valid(name) || start < 0 || start > UINT32_MAX ||
                    slice_taken(ret, (uint32_t) start, NULL) || ret->n >= ID_ALLOCATIONS_MAX)
                        continue;
                struct id_allocation *e = &ret->items[ret->n++];
                snprintf(e->name, sizeof(e->name), "%s", name);
                e->start = (uint32_t) start;
        }
        json_decref(o);
        return 0;
}
