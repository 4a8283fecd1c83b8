/* A usage.report record's body (#19 item 5): parsed and validated, pure. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lib/json-util.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "proto/usage-record.h"

#define WHERE "usage.report: "

bool usage_name_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > USAGE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static bool meter_is_valid(json_t *v) {
        const char *s = json_string_value(v);
        if (!s || json_string_length(v) != USAGE_METER_LEN)
                return false;
        for (size_t i = 0; i < USAGE_METER_LEN; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}


/* A finite number in [0, max] (JSON integer or real). */
static bool amount(json_t *v, double max, double *ret) {
        if (!json_is_number(v))
                return false;
        double d = json_number_value(v);
        if (!isfinite(d) || d < 0 || d > max)
                return false;
        *ret = d;
        return true;
}

static bool integer(json_t *v, int64_t min, int64_t max, int64_t *ret) {
        if (!json_is_integer(v))
                return false;
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
                return false;
        *ret = (int64_t) i;
        return true;
}

/* An optional name into buf ("" when absent). */
static int name(json_t *entry, const char *key, size_t i, char buf[static USAGE_NAME_MAX + 1], char **ret_reason) {
        json_t *v = json_object_get(entry, key);
        buf[0] = '\0';
        if (!v)
                return 0;
        const char *s = json_string_value(v);
        /* a NUL inside the string would cut it short: its length must be strlen's */
        if (!s || strlen(s) != json_string_length(v) || !usage_name_is_valid(s))
                return message_set(ret_reason, -EBADMSG,
                                   WHERE "entries[%zu].%s: expected 1-%d of A-Z a-z 0-9 . _ -", i, key,
                                   USAGE_NAME_MAX);
        memcpy(buf, s, strlen(s) + 1);
        return 0;
}

static int parse_entry(json_t *e, size_t i, struct usage_entry *ret, char **ret_reason) {
        static const char *const keys[] = {"workload", "tenant", "deployment", "app", "cpu_sec",
                                           "memory_byte_sec", "energy_j", "link_bytes", NULL};
        *ret = (struct usage_entry){0};
        if (!json_is_object(e))
                return message_set(ret_reason, -EBADMSG, WHERE "entries[%zu]: expected an object", i);
        const char *unknown = json_first_unknown_key(e, keys);
        if (unknown)
                return message_set(ret_reason, -EBADMSG, WHERE "entries[%zu].%.64s: unknown key", i, unknown);
        int r = name(e, "workload", i, ret->workload, ret_reason);
        if (r >= 0)
                r = name(e, "tenant", i, ret->tenant, ret_reason);
        if (r >= 0)
                r = name(e, "deployment", i, ret->deployment, ret_reason);
        if (r >= 0)
                r = name(e, "app", i, ret->app, ret_reason);
        if (r < 0)
                return r;
        if (!ret->workload[0] && !ret->app[0])
                return message_set(ret_reason, -EBADMSG, WHERE "entries[%zu]: names neither a workload nor an app",
                                   i);
        snprintf(ret->key, sizeof(ret->key), "%s%s|%s|%s|%s", ret->workload[0] ? "" : "app:",
                 ret->workload[0] ? ret->workload : ret->app, ret->tenant, ret->deployment, ret->app);

        static const struct {
                const char *key;
                unsigned flag;
                size_t offset;
        } amounts[] = {
                {"cpu_sec", USAGE_HAS_CPU, offsetof(struct usage_entry, cpu_sec)},
                {"memory_byte_sec", USAGE_HAS_MEMORY, offsetof(struct usage_entry, memory_byte_sec)},
                {"energy_j", USAGE_HAS_ENERGY, offsetof(struct usage_entry, energy_j)},
        };
        for (size_t k = 0; k < ELEMENTSOF(amounts); k++) {
                json_t *v = json_object_get(e, amounts[k].key);
                if (!v)
                        continue;
                if (!amount(v, USAGE_AMOUNT_MAX, (double *) ((char *) ret + amounts[k].offset)))
                        return message_set(ret_reason, -EBADMSG,
                                           WHERE "entries[%zu].%s: expected a finite number from 0 to %g", i,
                                           amounts[k].key, USAGE_AMOUNT_MAX);
                ret->has |= amounts[k].flag;
        }
        json_t *v = json_object_get(e, "link_bytes");
        if (v) {
                if (!integer(v, 0, USAGE_LINK_BYTES_MAX, &ret->link_bytes))
                        return message_set(ret_reason, -EBADMSG,
                                           WHERE "entries[%zu].link_bytes: expected an integer from 0 to %" PRId64,
                                           i, USAGE_LINK_BYTES_MAX);
                ret->has |= USAGE_HAS_LINK;
        }
        return 0;
}

int usage_record_parse(json_t *body, struct usage_record *ret, char **ret_reason) {
        static const char *const keys[] = {"meter", "interval", "start", "end", "duration_sec",
                                           "board_energy_j", "entries", NULL};
        if (!ret)
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        if (!json_is_object(body))
                return message_set(ret_reason, -EBADMSG, WHERE "expected an object");
        const char *unknown = json_first_unknown_key(body, keys);
        if (unknown)
                return message_set(ret_reason, -EBADMSG, WHERE "%.64s: unknown key", unknown);
        json_t *meter = json_object_get(body, "meter"), *entries = json_object_get(body, "entries"),
               *board = json_object_get(body, "board_energy_j");
        if (!meter_is_valid(meter))
                return message_set(ret_reason, -EBADMSG, WHERE "meter: expected %d lower-case hex digits",
                                   USAGE_METER_LEN);
        memcpy(ret->meter, json_string_value(meter), USAGE_METER_LEN + 1);
        if (!integer(json_object_get(body, "interval"), 1, INT64_MAX, &ret->interval))
                return message_set(ret_reason, -EBADMSG, WHERE "interval: expected an integer >= 1");
        if (!integer(json_object_get(body, "start"), 0, USAGE_TIME_MAX, &ret->start))
                return message_set(ret_reason, -EBADMSG, WHERE "start: expected unix seconds from 0 to %" PRId64,
                                   USAGE_TIME_MAX);
        /* the realtime clock may have been set during the interval: end before start is
         * the node's clock, not a reason to lose what was measured */
        if (!integer(json_object_get(body, "end"), 0, USAGE_TIME_MAX, &ret->end))
                return message_set(ret_reason, -EBADMSG, WHERE "end: expected unix seconds from 0 to %" PRId64,
                                   USAGE_TIME_MAX);
        if (!amount(json_object_get(body, "duration_sec"), USAGE_DURATION_MAX, &ret->duration_sec))
                return message_set(ret_reason, -EBADMSG, WHERE "duration_sec: expected a finite number from 0 to %g",
                                   USAGE_DURATION_MAX);
        if (board) {
                if (!amount(board, USAGE_AMOUNT_MAX, &ret->board_energy_j))
                        return message_set(ret_reason, -EBADMSG,
                                           WHERE "board_energy_j: expected a finite number from 0 to %g",
                                           USAGE_AMOUNT_MAX);
                ret->has_board_energy = true;
        }
        if (!json_is_array(entries) || json_array_size(entries) > USAGE_ENTRIES_MAX)
                return message_set(ret_reason, -EBADMSG, WHERE "entries: expected an array of at most %d entries",
                                   USAGE_ENTRIES_MAX);
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e) {
                int r = parse_entry(e, i, &ret->entries[i], ret_reason);
                if (r < 0)
                        return r;
                /* one row per key: a second would be dropped as counted already */
                for (size_t k = 0; k < i; k++)
                        if (streq(ret->entries[k].key, ret->entries[i].key))
                                return message_set(ret_reason, -EBADMSG,
                                                   WHERE "entries[%zu]: %s \"%s\" again (entries[%zu] has it)", i,
                                                   ret->entries[i].workload[0] ? "workload" : "app",
                                                   ret->entries[i].workload[0] ? ret->entries[i].workload
                                                                               : ret->entries[i].app,
                                                   k);
                ret->n_entries++;
        }
        return 0;
}
