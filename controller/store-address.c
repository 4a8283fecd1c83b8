/* The controller's database address (store-address.h). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/message.h"
#include "controller/store-address.h"

static bool is_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* The length of a URI scheme followed by ':' at the start of a (RFC 3986), or 0. */
static size_t scheme_length(const char *a) {
        if (!is_alpha(a[0]))
                return 0;
        size_t n = 1;
        while (is_alpha(a[n]) || is_digit(a[n]) || a[n] == '+' || a[n] == '-' || a[n] == '.')
                n++;
        return a[n] == ':' ? n : 0;
}

/* One host[:port] of the authority, [n bytes at h]: the port, if any, 1-65535. */
static int check_host(const char *h, size_t n, char **ret_reason) {
        const char *end = h + n, *colon = NULL;
        if (n > 0 && h[0] == '[') {
                const char *close = memchr(h, ']', n);
                if (!close)
                        return message_set(
                                ret_reason, -EINVAL,
                                "postgresql://: the host \"%.*s\" opens '[' and does not close it",
                                (int)n, h);
                if (close + 1 < end && close[1] != ':')
                        return message_set(
                                ret_reason, -EINVAL,
                                "postgresql://: \"%.*s\": only :PORT may follow an [IPv6] host",
                                (int)n, h);
                colon = close + 1 < end ? close + 1 : NULL;
        } else
                colon = memchr(h, ':', n);
        if (!colon)
                return 0;
        const char *p = colon + 1;
        size_t digits = (size_t)(end - p);
        unsigned long port = 0;
        bool ok = digits > 0 && digits <= 5;
        for (const char *q = p; ok && q < end; q++) {
                ok = is_digit(*q);
                port = port * 10 + (unsigned long)(*q - '0');
        }
        if (!ok || port < 1 || port > 65535)
                return message_set(ret_reason, -EINVAL,
                                   "postgresql://: the port \"%.*s\" is not a port (1-65535)",
                                   (int)digits, p);
        return 0;
}

static int parse_postgresql(const char *uri, const char *rest, char **ret_reason) {
        for (const char *c = uri; *c; c++)
                if ((unsigned char)*c <= ' ' || *c == 0x7f)
                        return message_set(
                                ret_reason, -EINVAL,
                                "postgresql://: a space or control character at offset %zu: "
                                "percent-encode it (%%20)",
                                (size_t)(c - uri));
        size_t n_auth = strcspn(rest, "/?");
        /* the user and password end at the last '@' of the authority */
        const char *hosts = rest;
        for (const char *c = rest; c < rest + n_auth; c++)
                if (*c == '@')
                        hosts = c + 1;
        const char *end = rest + n_auth;
        /* An '@' past the authority, none in it: a password holding a '/' or '?' unencoded.
         * Said without quoting a byte of the address (any of it may be the password). */
        if (hosts == rest && strchr(end, '@'))
                return message_set(ret_reason, -EINVAL,
                                   "postgresql://: an '@' after the host part: a user or password holding '/' "
                                   "or '?' must percent-encode them (%%2F, %%3F)");
        for (const char *h = hosts; h <= end;) {
                const char *comma = memchr(h, ',', (size_t)(end - h));
                const char *e = comma ? comma : end;
                int r = check_host(h, (size_t)(e - h), ret_reason);
                if (r < 0)
                        return r;
                h = e + 1;
        }
        const char *path = end;
        if (*path == '/') {
                size_t n_db = strcspn(path + 1, "?");
                if (memchr(path + 1, '/', n_db))
                        return message_set(ret_reason, -EINVAL,
                                           "postgresql://: the database name \"%.*s\" holds a '/'",
                                           (int)n_db, path + 1);
                path += 1 + n_db;
        }
        if (*path != '?')
                return 0;
        for (const char *p = path + 1; *p;) {
                size_t n = strcspn(p, "&");
                const char *eq = memchr(p, '=', n);
                if (!eq || eq == p)
                        return message_set(
                                ret_reason, -EINVAL,
                                "postgresql://: the parameter \"%.*s\" is not NAME=VALUE", (int)n,
                                p);
                p += n + (p[n] == '&');
        }
        return 0;
}

int store_address_parse(const char *address, struct store_address *ret, char **ret_reason) {
        if (!address || !address[0])
                return message_set(ret_reason, -EINVAL,
                                   "no database given: expected sqlite:PATH or postgresql://...");
        size_t n = scheme_length(address);
        if (n == 0) {
                *ret = (struct store_address){.kind = STORE_SQLITE, .target = address};
                return 0;
        }
        const char *rest = address + n + 1;
        if (n == strlen("sqlite") && strncmp(address, "sqlite", n) == 0) {
                if (!rest[0])
                        return message_set(ret_reason, -EINVAL,
                                           "sqlite: names no file: expected sqlite:PATH");
                if (strncmp(rest, "//", 2) == 0)
                        return message_set(ret_reason, -EINVAL,
                                           "\"%s\": expected sqlite:PATH (a file's path, as "
                                           "sqlite:/var/lib/x.db), "
                                           "not a URL",
                                           address);
                *ret = (struct store_address){.kind = STORE_SQLITE, .target = rest};
                return 0;
        }
        if ((n == strlen("postgresql") && strncmp(address, "postgresql", n) == 0) ||
            (n == strlen("postgres") && strncmp(address, "postgres", n) == 0)) {
                if (strncmp(rest, "//", 2) != 0)
                        return message_set(
                                ret_reason, -EINVAL,
                                "%.*s: expected postgresql://[user@]host[:port]/dbname[?...]",
                                (int)n, address);
                int r = parse_postgresql(address, rest + 2, ret_reason);
                if (r < 0)
                        return r;
                *ret = (struct store_address){.kind = STORE_POSTGRESQL, .target = address};
                return 0;
        }
        return message_set(
                ret_reason, -EINVAL,
                "unknown database kind \"%.*s\": expected sqlite:PATH or postgresql://...", (int)n,
                address);
}
