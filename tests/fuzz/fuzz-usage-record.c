/*
 * Fuzz the usage.report body parser (#19 item 5): written by a node (hostile or broken),
 * counted by the controller for billing. It must never crash, leak or accept a body that
 * breaks what the store relies on: a 32-hex meter, an interval >= 1, at most 64 entries each
 * with a unique non-empty key, names of the usage rule, amounts finite and in bounds.
 */
#include "config.h"

#include <math.h>

#include "fuzz-util.h"
#include "proto/usage-record.h"

static bool name_ok(const char *s) {
        return s[0] == '\0' || usage_name_is_valid(s);
}

static bool amount_ok(double v, double max) {
        return isfinite(v) && v >= 0 && v <= max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        /* NULs inside strings allowed: stricter than a sync body, which refuses them */
        json_t *body = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        if (!body)
                return 0;
        static struct usage_record u;
        char *reason = NULL;
        if (usage_record_parse(body, &u, &reason) == 0) {
                FUZZ_CHECK(reason == NULL);
                FUZZ_CHECK(strlen(u.meter) == USAGE_METER_LEN);
                FUZZ_CHECK(u.interval >= 1);
                FUZZ_CHECK(u.start >= 0 && u.start <= USAGE_TIME_MAX && u.end >= 0 && u.end <= USAGE_TIME_MAX);
                FUZZ_CHECK(amount_ok(u.duration_sec, USAGE_DURATION_MAX));
                FUZZ_CHECK(amount_ok(u.board_energy_j, USAGE_AMOUNT_MAX));
                FUZZ_CHECK(u.has_board_energy || u.board_energy_j == 0);
                FUZZ_CHECK(u.n_entries <= USAGE_ENTRIES_MAX);
                for (size_t i = 0; i < u.n_entries; i++) {
                        const struct usage_entry *e = &u.entries[i];
                        FUZZ_CHECK(e->workload[0] || e->app[0]);
                        FUZZ_CHECK(name_ok(e->workload) && name_ok(e->tenant) && name_ok(e->deployment) &&
                                   name_ok(e->app));
                        /* the key: the workload (else "app:<app>"), then |tenant|deployment|app */
                        char key[USAGE_ENTRY_KEY_MAX + 1];
                        snprintf(key, sizeof(key), "%s%s|%s|%s|%s", e->workload[0] ? "" : "app:",
                                 e->workload[0] ? e->workload : e->app, e->tenant, e->deployment, e->app);
                        FUZZ_CHECK(strcmp(e->key, key) == 0);
                        FUZZ_CHECK(amount_ok(e->cpu_sec, USAGE_AMOUNT_MAX) &&
                                   amount_ok(e->memory_byte_sec, USAGE_AMOUNT_MAX) &&
                                   amount_ok(e->energy_j, USAGE_AMOUNT_MAX));
                        FUZZ_CHECK(e->link_bytes >= 0 && e->link_bytes <= USAGE_LINK_BYTES_MAX);
                        FUZZ_CHECK((e->has & USAGE_HAS_CPU) || e->cpu_sec == 0);
                        FUZZ_CHECK((e->has & USAGE_HAS_LINK) || e->link_bytes == 0);
                        for (size_t k = 0; k < i; k++)
                                FUZZ_CHECK(strcmp(u.entries[k].key, e->key) != 0);
                }
        } else
                FUZZ_CHECK(reason != NULL);
        free(reason);
        json_decref(body);
        return 0;
}
