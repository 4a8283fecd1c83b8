/* Node identity and boot epoch, kept in the state dir as checksummed state files. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "lib/log.h"
#include "agent/node-state.h"
#include "lib/statefile.h"

#define IDENTITY_FILE "identity"
#define BOOT_FILE "boot"

int node_identity_format(const char *node_id, char **ret) {
        json_t *obj = json_pack("{s:i,s:s}", "format", 1, "node_id", node_id);
        if (!obj)
                return -EINVAL;
        *ret = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(obj);
        return *ret ? 0 : -ENOMEM;
}

int node_identity_parse(const char *payload, char *node_id, size_t size) {
        json_t *obj = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
        int r = -EBADMSG;
        const char *id = NULL;
        json_int_t format = 0;
        if (obj && json_unpack(obj, "{s:I,s:s}", "format", &format, "node_id", &id) == 0 &&
            format == 1 && node_id_is_valid(id) && strlen(id) < size) {
                snprintf(node_id, size, "%s", id);
                r = 0;
        }
        json_decref(obj);
        return r;
}

int boot_epoch_format(uint64_t epoch, char **ret) {
        json_t *obj = json_pack("{s:i,s:I}", "format", 1, "boot_epoch", (json_int_t) epoch);
        if (!obj)
                return -EINVAL;
        *ret = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(obj);
        return *ret ? 0 : -ENOMEM;
}

int boot_epoch_parse(const char *payload, uint64_t *ret) {
        json_t *obj = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
        int r = -EBADMSG;
        json_int_t format = 0, epoch = -1;
        if (obj && json_unpack(obj, "{s:I,s:I}", "format", &format, "boot_epoch", &epoch) == 0 &&
            format == 1 && epoch >= 0) {
                *ret = (uint64_t) epoch;
                r = 0;
        }
        json_decref(obj);
        return r;
}

void node_id_generate(const uint8_t random_bytes[8], char *buf, size_t size) {
        snprintf(buf, size, "node-%02x%02x%02x%02x%02x%02x%02x%02x", random_bytes[0],
                 random_bytes[1], random_bytes[2], random_bytes[3], random_bytes[4],
                 random_bytes[5], random_bytes[6], random_bytes[7]);
}

static int fill_random(void *buf, size_t len) {
        size_t done = 0;
        while (done < len) {
                ssize_t n = getrandom((char *) buf + done, len - done, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) n;
        }
        return 0;
}

static int load_or_create_identity(const struct agent_config *config, struct node_state *st) {
        _cleanup_free_ char *payload = NULL;
        int r = statefile_load(config->state_dir, IDENTITY_FILE, &payload, NULL, NULL);
        if (r >= 0) {
                r = node_identity_parse(payload, st->node_id, sizeof(st->node_id));
                if (r < 0)
                        log_error("state %s/%s: checksum good but content invalid; not trusted",
                                  config->state_dir, IDENTITY_FILE);
        }
        if (r >= 0)
                return 0;
        if (r != -ENOENT && r != -EBADMSG)
                return log_error_errno(r, "state %s/%s: cannot read node identity",
                                       config->state_dir, IDENTITY_FILE);
        if (r == -EBADMSG)
                log_error("node identity in %s lost; generating a new one", config->state_dir);

        uint8_t rnd[8];
        r = fill_random(rnd, sizeof(rnd));
        if (r < 0)
                return log_error_errno(r, "cannot get random bytes for a node id");
        node_id_generate(rnd, st->node_id, sizeof(st->node_id));

        _cleanup_free_ char *out = NULL;
        r = node_identity_format(st->node_id, &out);
        if (r < 0)
                return r;
        /* Saved twice so that .prev holds it too: one flipped bit must not change who we are. */
        for (int copy = 0; copy < 2; copy++) {
                r = statefile_save(config->state_dir, IDENTITY_FILE, out, strlen(out));
                if (r < 0)
                        return r;
        }
        log_notice("generated node id %s (kept in %s/%s)", st->node_id, config->state_dir,
                   IDENTITY_FILE);
        return 0;
}

int node_state_start(const struct agent_config *config, struct node_state *ret) {
        struct node_state st = {0};
        int r;

        uint8_t bid[16];
        r = fill_random(bid, sizeof(bid));
        if (r < 0)
                return log_error_errno(r, "cannot get random bytes for the boot id");
        for (size_t i = 0; i < sizeof(bid); i++)
                snprintf(st.boot_id + 2 * i, 3, "%02x", bid[i]);

        if (config->node_id) {
                snprintf(st.node_id, sizeof(st.node_id), "%s", config->node_id);
                st.node_id_from_config = true;
        } else {
                r = load_or_create_identity(config, &st);
                if (r < 0)
                        return r;
        }

        _cleanup_free_ char *payload = NULL;
        enum statefile_source source = STATEFILE_SOURCE_CURRENT;
        uint64_t epoch = 0;
        r = statefile_load(config->state_dir, BOOT_FILE, &payload, NULL, &source);
        if (r >= 0) {
                r = boot_epoch_parse(payload, &epoch);
                if (r < 0)
                        log_error("state %s/%s: checksum good but content invalid; not trusted",
                                  config->state_dir, BOOT_FILE);
        }
        if (r == -EBADMSG) {
                log_error("boot epoch in %s lost: counting starts again; records keep the "
                          "boot id %s to stay unique",
                          config->state_dir, st.boot_id);
                st.boot_epoch_reset = true;
                epoch = 0;
        } else if (r < 0 && r != -ENOENT)
                return log_error_errno(r, "state %s/%s: cannot read boot epoch", config->state_dir,
                                       BOOT_FILE);
        st.boot_epoch_recovered = source == STATEFILE_SOURCE_PREVIOUS;
        st.boot_epoch = epoch + 1;

        _cleanup_free_ char *out = NULL;
        r = boot_epoch_format(st.boot_epoch, &out);
        if (r < 0)
                return r;
        r = statefile_save(config->state_dir, BOOT_FILE, out, strlen(out));
        if (r < 0)
                return log_error_errno(r, "cannot record boot epoch %" PRIu64, st.boot_epoch);

        *ret = st;
        return 0;
}
