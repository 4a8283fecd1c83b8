/*
 * The one identifier rule of the project: node ids, bundle ids, group and rollout names,
 * workload names, command actions, manifest names. 1 to max characters of A-Z a-z 0-9
 * . _ -, not starting with '.' or '-'; IDENT_NO_DOT refuses '.' anywhere (names that are
 * also cgroups, whose control files have dots). Pure.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum {
        IDENT_NO_DOT = 1 << 0,
};

bool ident_is_valid(const char *s, size_t max, unsigned flags);
