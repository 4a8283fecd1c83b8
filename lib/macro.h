/* Small helpers every module uses: cleanup attributes, array sizes, errno helpers. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd);
                errno = saved;
        }
}

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership of a pointer to the caller: returns it and clears the local. */
#define TAKE_PTR(p)                                                                      \
        ({                                                                               \
                __typeof__(p) _tmp_ = (p);                                               \
                (p) = NULL;                                                              \
                _tmp_;                                                                   \
        })

#define TAKE_FD(fd)                                                                      \
        ({                                                                               \
                int _tmp_ = (fd);                                                        \
                (fd) = -1;                                                               \
                _tmp_;                                                                   \
        })

/* errno as a negative value, never 0 (some libc paths fail without setting it). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)

/* streq, where NULL equals only NULL. */
static inline bool streq_ptr(const char *a, const char *b) {
        return a && b ? streq(a, b) : a == b;
}

/* The index of s in table (n names, indexed by an enum; NULL entries never match), or
 * -EINVAL when s is NULL or not there: the inverse of an enum's names array. */
static inline int string_table_lookup(const char *const *table, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}
