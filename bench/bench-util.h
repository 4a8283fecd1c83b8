/* What the benches share: dying with a message, timing, running a program, sorting. */
#pragma once

#include "lib/macro.h"

/* The bench's name for messages, and what to undo before exiting (a child to stop). */
extern const char *bench_name;
extern void (*bench_on_die)(void);

_printf_(1, 2) _Noreturn void die(const char *fmt, ...);
/* CLOCK_MONOTONIC in seconds. */
double now_s(void);
/* Run a program, stdout to /dev/null; die unless it exits 0. */
void run(char *const argv[]);
/* qsort comparator for doubles, ascending. */
int cmp_double(const void *a, const void *b);
