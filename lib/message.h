/* Messages for callers: a formatted heap string handed back with an error code. */
#pragma once

#include "lib/macro.h"

/*
 * If ret is not NULL, set *ret to a newly allocated formatted message (NULL when out of
 * memory); return r either way, so "return message_set(ret, -EINVAL, ...)" explains and
 * fails in one line.
 */
int message_set(char **ret, int r, const char *fmt, ...) _printf_(3, 4);
