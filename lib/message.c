/* Messages for callers: a formatted heap string handed back with an error code. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "lib/message.h"

int message_set(char **ret, int r, const char *fmt, ...) {
        if (!ret)
                return r;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(ret, fmt, ap) < 0)
                *ret = NULL;
        va_end(ap);
        return r;
}
