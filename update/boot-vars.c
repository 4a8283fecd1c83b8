/* The boot state encoded in a backend's variables: the order, and per slot an OK flag
 * and one digit of tries, the values the bootloader scripts can test and count. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "update/boot-vars.h"
#include "lib/macro.h"

const struct boot_var_names boot_var_names_orbit = {
        .order = "ORBIT_ORDER",
        .ok = {"ORBIT_A_OK", "ORBIT_B_OK"},
        .tries = {"ORBIT_A_TRIES", "ORBIT_B_TRIES"},
};

/* The order variable: one or two distinct slots separated by blanks. */
static int parse_order(const char *value, char order[2], size_t *ret_n) {
        size_t n = 0;
        for (const char *p = value; *p; p++) {
                if (*p == ' ' || *p == '\t')
                        continue;
                if (boot_slot_index(*p) < 0 || n >= 2)
                        return -EINVAL;
                if (p[1] && p[1] != ' ' && p[1] != '\t')
                        return -EINVAL;
                if (n == 1 && order[0] == *p)
                        return -EINVAL;
                order[n++] = *p;
        }
        if (n == 0)
                return -EINVAL;
        *ret_n = n;
        return 0;
}

int boot_vars_parse(const struct boot_var_names *names, const struct env_vars *vars,
                    struct boot_state *ret, const char **ret_reason) {
        const char *reason = NULL;
        struct boot_state s = {};

        const char *order_value = env_vars_get(vars, names->order);
        if (!order_value) {
                if (ret_reason)
                        *ret_reason = "the slot order variable is not set";
                return -ENODATA;
        }
        char order[2];
        size_t n;
        if (parse_order(order_value, order, &n) < 0) {
                reason = "the slot order is not \"A B\", \"B A\", \"A\" or \"B\"";
                goto invalid;
        }
        s.primary = order[0];

        for (size_t k = 0; k < n; k++) {
                int i = boot_slot_index(order[k]);
                const char *ok = env_vars_get(vars, names->ok[i]);
                const char *tries = env_vars_get(vars, names->tries[i]);
                if (ok && !streq(ok, "0") && !streq(ok, "1")) {
                        reason = "a slot's OK variable is not 0 or 1";
                        goto invalid;
                }
                /* One decimal digit, what the bootloader scripts can count down. */
                if (tries && (strlen(tries) != 1 || !isdigit((unsigned char) tries[0]))) {
                        reason = "a slot's tries variable is not a digit 0-9";
                        goto invalid;
                }
                s.slot[i].good = ok && streq(ok, "1");
                s.slot[i].tries_left = tries ? tries[0] - '0' : 0;
        }
        *ret = s;
        return 0;

invalid:
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}

int boot_vars_format(const struct boot_var_names *names, const struct boot_state *s,
                     struct env_vars *vars) {
        if (boot_slot_index(s->primary) < 0)
                return -EINVAL;
        for (size_t i = 0; i < 2; i++)
                if (s->slot[i].tries_left < 0 || s->slot[i].tries_left > BOOT_TRIES_MAX)
                        return -ERANGE;

        char order[4] = {s->primary, ' ', boot_slot_other(s->primary), '\0'};
        int r = env_vars_set(vars, names->order, order);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 2; i++) {
                char tries[2] = {(char) ('0' + s->slot[i].tries_left), '\0'};
                r = env_vars_set(vars, names->ok[i], s->slot[i].good ? "1" : "0");
                if (r < 0)
                        return r;
                r = env_vars_set(vars, names->tries[i], tries);
                if (r < 0)
                        return r;
        }
        return 0;
}
