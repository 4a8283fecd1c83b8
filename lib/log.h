/* Logging with levels: to the systemd journal when it is there, else to stderr. */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "lib/macro.h"

enum log_target {
        LOG_TARGET_AUTO,    /* journal if its socket exists, else stderr */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
};

/* Set where messages go and the identifier they carry. */
void log_setup(const char *ident, enum log_target target);
void log_set_max_level(int level);
int log_get_max_level(void);
enum log_target log_get_target(void);

/* Parse "debug", "info", "notice", "warning", "error"... into a syslog level; -EINVAL if unknown. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);
int log_target_from_string(const char *s, enum log_target *ret);

/*
 * Log a message at the given level. If error is non-zero its strerror is appended and
 * the function returns -abs(error), so that "return log_error_errno(r, ...)" logs and
 * propagates in one line.
 */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                \
        log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)
