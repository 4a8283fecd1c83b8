/* Logging with levels: journal (native protocol, structured fields) or stderr. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "lib/log.h"

static const char *log_ident = "orbit-agent";
static int log_max_level = LOG_INFO;
static enum log_target log_target = LOG_TARGET_STDERR;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "error",       [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",       [LOG_DEBUG] = "debug",
};

static bool journal_available(void) {
        return access("/run/systemd/journal/socket", W_OK) == 0;
}

void log_setup(const char *ident, enum log_target target) {
        if (ident)
                log_ident = ident;
        if (target == LOG_TARGET_AUTO)
                target = journal_available() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
        log_target = target;
}

void log_set_max_level(int level) {
        if (level >= LOG_EMERG && level <= LOG_DEBUG)
                log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

enum log_target log_get_target(void) {
        return log_target;
}

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "err") == 0)
                return LOG_ERR;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t) level >= ELEMENTSOF(level_names))
                return "unknown";
        return level_names[level];
}

int log_target_from_string(const char *s, enum log_target *ret) {
        if (streq(s, "auto"))
                *ret = LOG_TARGET_AUTO;
        else if (streq(s, "journal"))
                *ret = LOG_TARGET_JOURNAL;
        else if (streq(s, "stderr"))
                *ret = LOG_TARGET_STDERR;
        else
                return -EINVAL;
        return 0;
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) {
        int saved_errno = errno;
        if (error < 0)
                error = -error;

        if (level > log_max_level) {
                errno = saved_errno;
                return -error;
        }

        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (n < 0)
                snprintf(msg, sizeof(msg), "(unformattable log message)");

        if (error != 0) {
                size_t len = strlen(msg);
                snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(error));
        }

        if (log_target == LOG_TARGET_JOURNAL) {
                char code_file[256], code_line[32];
                snprintf(code_file, sizeof(code_file), "CODE_FILE=%s", file);
                snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
                int r = sd_journal_send_with_location(code_file, code_line, func,
                                                      "MESSAGE=%s", msg, "PRIORITY=%i", level,
                                                      "SYSLOG_IDENTIFIER=%s", log_ident,
                                                      error ? "ERRNO=%i" : NULL, error, NULL);
                if (r >= 0) {
                        errno = saved_errno;
                        return -error;
                }
                /* The journal went away: fall through to stderr rather than lose it. */
        }

        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: <%s> %s\n",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, log_ident, (int) getpid(), log_level_to_string(level), msg);
        fflush(stderr);
        errno = saved_errno;
        return -error;
}
