#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/procfs.h"

int procfs_nspid_parse(const char *status, long *pids, size_t max) {
        const char *l = status;
        while (l && strncmp(l, "NSpid:", 6) != 0) {
                l = strchr(l, '\n');
                if (l)
                        l++;
        }
        if (!l)
                return -ENOENT;
        int n = 0;
        for (l += 6;;) {
                while (*l == ' ' || *l == '\t')
                        l++;
                if (*l == '\n' || *l == '\0')
                        return n > 0 ? n : -EINVAL;
                if (*l < '0' || *l > '9')
                        return -EINVAL;
                char *end;
                errno = 0;
                long v = strtol(l, &end, 10);
                if (errno != 0 || (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\0'))
                        return -EINVAL;
                if ((size_t) n < max)
                        pids[n] = v;
                if (n == 64) /* deeper than the kernel's 32 levels: not a status file */
                        return -EINVAL;
                n++;
                l = end;
        }
}

int procfs_nspid(const char *who, long *pids, size_t max) {
        char path[64];
        _cleanup_free_ char *text = NULL;
        size_t len;
        snprintf(path, sizeof(path), "/proc/%.20s/status", who);
        int r = read_file_bounded(path, 16384, &text, &len);
        if (r < 0)
                return r;
        return procfs_nspid_parse(text, pids, max);
}
