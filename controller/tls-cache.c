/* A bounded server-side cache of TLS 1.2 sessions: see tls-cache.h. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controller/tls-cache.h"

int tls_cache_init(struct tls_cache *c, size_t max, int64_t lifetime_sec) {
        *c = (struct tls_cache){.max = max, .lifetime_sec = lifetime_sec};
        c->entries = calloc(max ? max : 1, sizeof(*c->entries));
        return c->entries ? 0 : -ENOMEM;
}

static void entry_clear(struct tls_cache_entry *e) {
        if (e->data)
                explicit_bzero(e->data, e->data_len); /* session secrets */
        free(e->data);
        *e = (struct tls_cache_entry){};
}

void tls_cache_done(struct tls_cache *c) {
        for (size_t i = 0; c->entries && i < c->max; i++)
                entry_clear(&c->entries[i]);
        free(c->entries);
        *c = (struct tls_cache){};
}

static struct tls_cache_entry *find(const struct tls_cache *c, const void *key, size_t key_len) {
        for (size_t i = 0; i < c->max; i++) {
                struct tls_cache_entry *e = &c->entries[i];
                if (e->data && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
                        return e;
        }
        return NULL;
}

int tls_cache_store(struct tls_cache *c, const void *key, size_t key_len, const void *data,
                    size_t data_len, int64_t now) {
        if (key_len == 0 || key_len > TLS_CACHE_KEY_MAX || data_len == 0 ||
            data_len > TLS_CACHE_DATA_MAX || c->max == 0)
                return -EINVAL;
        uint8_t *copy = malloc(data_len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, data_len);
        struct tls_cache_entry *slot = find(c, key, key_len);
        for (size_t i = 0; !slot && i < c->max; i++)
                if (!c->entries[i].data)
                        slot = &c->entries[i];
        if (!slot) { /* full: the oldest goes */
                slot = &c->entries[0];
                for (size_t i = 1; i < c->max; i++)
                        if (c->entries[i].stored < slot->stored)
                                slot = &c->entries[i];
        }
        entry_clear(slot);
        memcpy(slot->key, key, key_len);
        slot->key_len = key_len;
        slot->data = copy;
        slot->data_len = data_len;
        slot->stored = now;
        return 0;
}

const struct tls_cache_entry *tls_cache_fetch(const struct tls_cache *c, const void *key,
                                              size_t key_len, int64_t now) {
        const struct tls_cache_entry *e = key_len ? find(c, key, key_len) : NULL;
        if (!e || now - e->stored > c->lifetime_sec || now < e->stored)
                return NULL;
        return e;
}

int tls_cache_remove(struct tls_cache *c, const void *key, size_t key_len) {
        struct tls_cache_entry *e = key_len ? find(c, key, key_len) : NULL;
        if (!e)
                return -ENOENT;
        entry_clear(e);
        return 0;
}
