/* The one identifier rule (ident.h). */
#include "config.h"

#include <string.h>

#include "lib/ident.h"

bool ident_is_valid(const char *s, size_t max, unsigned flags) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                          (c == '.' && !(flags & IDENT_NO_DOT));
                if (!ok)
                        return false;
        }
        return true;
}
