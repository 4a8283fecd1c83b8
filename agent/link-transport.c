/* The link's transport choices that are plain data: see link-transport.h. */
#include "config.h"

#include <string.h>

#include "agent/link-transport.h"

const char *const link_request_headers[] = {
        "Content-Type:", /* curl's form type removed: the controller takes the body as JSON */
        "Accept:", /* curl's "Accept" of any type removed: the answer is JSON whatever is asked */
        "Expect:", /* no 100-continue: its round trip is 1.5 s in orbit */
        NULL,
};

bool link_tcp_congestion_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;
        return n > 0 && n <= LINK_TCP_CONGESTION_MAX &&
               name[strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-")] == '\0';
}

bool link_tcp_congestion_offered(const char *offered, const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (!offered || n == 0)
                return false;
        const char *p = offered;
        while (*p) {
                p += strspn(p, " \t\n");
                size_t len = strcspn(p, " \t\n");
                if (len == n && memcmp(p, name, n) == 0)
                        return true;
                p += len;
        }
        return false;
}
