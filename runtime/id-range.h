/*
 * Host uid/gid ranges for the workloads' user namespaces: the pool the agent's
 * configuration gives (like /etc/subuid: ranges cut into equal slices) and which workload
 * owns which slice. Pure: the runtime keeps the allocations in a state file so a workload
 * keeps its slice, and the files it made stay its own, across agent restarts.
 *
 * On disk (state file "id-ranges", lib/statefile.h):
 *     {"format": 1, "size": 65536, "workloads": {"<name>": <first host id>, ...}}
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/workload-spec.h"

#define ID_RANGES_MAX 8
#define ID_ALLOCATIONS_MAX 1024
/* Host ids below this are the system's own (root, daemons, users, nobody). */
#define ID_RANGE_MIN_START 65536u
#define ID_RANGE_DEFAULT_START 0x70000000u /* above systemd-nspawn's container ranges */
#define ID_RANGE_DEFAULT_COUNT (256u * 65536u)
#define ID_RANGE_DEFAULT_SIZE 65536u

struct id_range {
        uint32_t start, count;
};

struct id_pool {
        struct id_range ranges[ID_RANGES_MAX];
        size_t n_ranges;
        uint32_t size; /* host ids per workload: inside ids 0..size-1 */
};

#define ID_POOL_DEFAULT                                                                   \
        ((struct id_pool){.ranges = {{ID_RANGE_DEFAULT_START, ID_RANGE_DEFAULT_COUNT}},  \
                          .n_ranges = 1, .size = ID_RANGE_DEFAULT_SIZE})

struct id_allocation {
        char name[WORKLOAD_NAME_MAX + 1];
        uint32_t start;
};

struct id_allocations {
        struct id_allocation items[ID_ALLOCATIONS_MAX];
        size_t n;
};

/*
 * Pure: is the pool usable? size >= 1, every range at least one slice, starting at or
 * above ID_RANGE_MIN_START, ending below 2^32-1 (never (uid_t) -1), ranges disjoint.
 * -EINVAL with the reason in msg.
 */
int id_pool_check(const struct id_pool *p, char *msg, size_t size);

/* Pure: how many slices the pool has. */
size_t id_pool_slices(const struct id_pool *p);

/* Pure: is start the first id of one of the pool's slices? */
bool id_pool_has_slice(const struct id_pool *p, uint32_t start);

/*
 * Pure: the slice of workload name: the one it already has if it is still one of the
 * pool's (and no other name holds it), else the lowest free slice, recorded. *ret_changed
 * is true when a was modified (save it before using the slice). -ENOSPC when every slice
 * is taken, -E2BIG past ID_ALLOCATIONS_MAX names.
 */
int id_allocations_assign(struct id_allocations *a, const struct id_pool *p, const char *name,
                          uint32_t *ret_start, bool *ret_changed);

/* Pure: forget name's slice. -ENOENT if it had none. */
int id_allocations_release(struct id_allocations *a, const char *name);

/* Pure: the slice of name, or -ENOENT. */
int id_allocations_find(const struct id_allocations *a, const char *name, uint32_t *ret_start);

/* Pure: the state file's payload. Caller frees. NULL on allocation failure. */
char *id_allocations_format(const struct id_allocations *a, const struct id_pool *p);

/*
 * Pure: read a payload. Entries with a bad name, a duplicate name or a start another
 * entry holds are dropped (they are reassigned on use). -EBADMSG for text that is not
 * such a document.
 */
int id_allocations_parse(const char *text, size_t len, struct id_allocations *ret);
