/* Boot selection through a bootloader backend: pick the backend's ops by kind or name,
 * bind them to the configured files, and read or write the boot state through them.
 * The backends know nothing of this file (update/bootenv-backend.h is their interface). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "update/bootenv.h"
#include "update/bootenv-io.h"
#include "lib/log.h"
#include "lib/macro.h"

static const struct bootenv_ops *const backends[] = {
        [BOOTENV_GRUB] = &bootenv_grub_ops,
        [BOOTENV_UBOOT] = &bootenv_uboot_ops,
        [BOOTENV_FILE] = &bootenv_file_ops,
};

static const struct bootenv_ops *bootenv_ops_of(enum bootenv_kind kind) {
        if ((size_t) kind >= ELEMENTSOF(backends))
                return NULL;
        return backends[kind];
}

const char *bootenv_kind_to_string(enum bootenv_kind kind) {
        const struct bootenv_ops *ops = bootenv_ops_of(kind);
        return ops ? ops->name : "unknown";
}

int bootenv_kind_from_string(const char *s, enum bootenv_kind *ret) {
        for (size_t i = 0; i < ELEMENTSOF(backends); i++)
                if (streq(s, backends[i]->name)) {
                        *ret = (enum bootenv_kind) i;
                        return 0;
                }
        return -EINVAL;
}

int boot_state_from_vars(enum bootenv_kind kind, const struct env_vars *vars,
                         struct boot_state *ret, const char **ret_reason) {
        const struct bootenv_ops *ops = bootenv_ops_of(kind);
        if (!ops)
                return -EINVAL;
        return boot_vars_parse(ops->names, vars, ret, ret_reason);
}

int boot_state_to_vars(enum bootenv_kind kind, const struct boot_state *s,
                       struct env_vars *vars) {
        const struct bootenv_ops *ops = bootenv_ops_of(kind);
        if (!ops)
                return -EINVAL;
        return boot_vars_format(ops->names, s, vars);
}

/* ---- a backend bound to its files -------------------------------------------------- */

struct bootenv {
        const struct bootenv_ops *ops;
        struct bootenv_config config; /* its paths point at the copies below */
        char *path;
        char *path_redundant;
};

void bootenv_free(struct bootenv *b) {
        if (!b)
                return;
        free(b->path);
        free(b->path_redundant);
        free(b);
}

int bootenv_open(const struct bootenv_config *config, struct bootenv **ret) {
        const struct bootenv_ops *ops = bootenv_ops_of(config->kind);
        if (!ops || !config->path || !config->path[0])
                return -EINVAL;
        int r = ops->check(config);
        if (r < 0)
                return r;

        _cleanup_bootenv_ struct bootenv *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->ops = ops;
        b->config = *config;
        b->path = strdup(config->path);
        if (!b->path)
                return -ENOMEM;
        b->config.path = b->path;
        if (config->path_redundant) {
                b->path_redundant = strdup(config->path_redundant);
                if (!b->path_redundant)
                        return -ENOMEM;
                b->config.path_redundant = b->path_redundant;
        }
        /*
         * A write that a process killed before its fdatasync left in the page cache (the
         * agent's last run) is made durable before anything reads it: a start decision
         * read from the cache and then undone by a power cut would contradict the disk.
         */
        const char *paths[] = {b->path, b->path_redundant};
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                if (!paths[i])
                        continue;
                r = bootenv_flush_file(paths[i]);
                if (r < 0)
                        log_warning("%s env %s: cannot flush what is cached of it: %s", ops->name,
                                    paths[i], strerror(-r));
        }
        *ret = TAKE_PTR(b);
        return 0;
}

int bootenv_read_vars(struct bootenv *b, struct env_vars *ret) {
        return b->ops->load(&b->config, ret);
}

int bootenv_write_vars(struct bootenv *b, const struct env_vars *vars) {
        int r = b->ops->store(&b->config, vars);
        if (r < 0)
                return r;

        /* The backends compare the bytes they wrote; this compares what a reader gets,
         * through the same path the next boot's agent takes. */
        _cleanup_env_vars_ struct env_vars back = {};
        r = bootenv_read_vars(b, &back);
        if (r < 0)
                return log_error_errno(r, "%s env %s: reading back after the write failed",
                                       b->ops->name, b->path);
        if (!env_vars_equal(vars, &back))
                return log_error_errno(-EIO, "%s env %s: read back differs from what was "
                                       "written", b->ops->name, b->path);
        return 0;
}

int bootenv_read(struct bootenv *b, struct boot_state *ret) {
        _cleanup_env_vars_ struct env_vars vars = {};
        int r = bootenv_read_vars(b, &vars);
        if (r < 0)
                return r;
        const char *reason = NULL;
        r = boot_vars_parse(b->ops->names, &vars, ret, &reason);
        if (r == -EINVAL)
                return log_error_errno(r, "%s env %s: %s", b->ops->name, b->path, reason);
        return r;
}

int bootenv_write(struct bootenv *b, const struct boot_state *s) {
        _cleanup_env_vars_ struct env_vars vars = {};
        int r = bootenv_read_vars(b, &vars);
        if (r == -ENOENT && b->ops->created_on_write)
                r = 0;
        if (r < 0)
                return r;
        r = boot_vars_format(b->ops->names, s, &vars);
        if (r < 0)
                return r;
        return bootenv_write_vars(b, &vars);
}
