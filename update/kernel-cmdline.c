/* The booted slot from the kernel command line ("orbit.slot=A"), as the kernel splits it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "update/boot-state.h"
#include "lib/fileio.h"
#include "update/kernel-cmdline.h"
#include "lib/log.h"
#include "lib/macro.h"

#define CMDLINE_KEY "orbit.slot"

int kernel_cmdline_booted_slot(const char *cmdline, char *ret_slot) {
        int r = -ENOENT;
        char found = 0;
        const char *p = cmdline;

        for (;;) {
                while (*p && isspace((unsigned char) *p))
                        p++;
                if (!*p)
                        break;

                /* One word; double quotes group blanks, as the kernel's parser does. */
                const char *start = p;
                bool quoted = false;
                while (*p && (quoted || !isspace((unsigned char) *p))) {
                        if (*p == '"')
                                quoted = !quoted;
                        p++;
                }
                size_t len = (size_t) (p - start);
                size_t key_len = strlen(CMDLINE_KEY);
                if (len < key_len || strncmp(start, CMDLINE_KEY, key_len) != 0)
                        continue;
                if (len == key_len) {
                        r = -EINVAL; /* "orbit.slot" without a value */
                        continue;
                }
                if (start[key_len] != '=')
                        continue; /* "orbit.slotx=...": another parameter */

                const char *value = start + key_len + 1;
                size_t value_len = len - key_len - 1;
                if (value_len >= 2 && value[0] == '"' && value[value_len - 1] == '"') {
                        value++;
                        value_len -= 2;
                }
                if (value_len == 1 && boot_slot_index(value[0]) >= 0) {
                        found = value[0];
                        r = 0;
                } else
                        r = -EINVAL;
        }
        if (r == 0)
                *ret_slot = found;
        return r;
}

int bootenv_booted_slot(const char *cmdline_path, char *ret_slot) {
        _cleanup_free_ char *text = NULL;
        int r = read_file_bounded(cmdline_path, 64 * 1024, &text, NULL);
        if (r < 0)
                return log_error_errno(r, "kernel command line %s: cannot read it",
                                       cmdline_path);
        r = kernel_cmdline_booted_slot(text, ret_slot);
        if (r == -ENOENT)
                return log_error_errno(r, "kernel command line %s: no " CMDLINE_KEY "=",
                                       cmdline_path);
        if (r < 0)
                return log_error_errno(r, "kernel command line %s: " CMDLINE_KEY
                                       " is not A or B", cmdline_path);
        return 0;
}
