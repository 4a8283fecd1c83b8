/* The GRUB backend: the grubenv block that load_env/save_env and grub-editenv use.
 * It has no checksum, so every write is read back and compared byte for byte. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "update/bootenv-grub.h"
#include "update/bootenv-io.h"
#include "update/boot-vars.h"
#include "lib/log.h"
#include "lib/macro.h"

int grubenv_parse(const char *buf, size_t len, struct env_vars *ret, const char **ret_reason) {
        const char *reason;
        int r;
        struct env_vars vars = {};
        _cleanup_free_ char *value = NULL;

        if (len != GRUBENV_SIZE) {
                if (ret_reason)
                        *ret_reason = "the block is not exactly 1024 bytes";
                return -ENODATA;
        }
        if (memchr(buf, '\0', len)) {
                reason = "the block holds a NUL byte";
                goto bad;
        }
        size_t header_len = strlen(GRUBENV_HEADER);
        if (memcmp(buf, GRUBENV_HEADER, header_len) != 0) {
                reason = "the block does not start with \"# GRUB Environment Block\"";
                goto bad;
        }

        value = malloc(len);
        if (!value)
                return -ENOMEM;

        const char *p = buf + header_len, *end = buf + len;
        while (p < end) {
                if (*p == '#') {
                        /* A comment, or the padding that runs to the end. */
                        const char *nl = memchr(p, '\n', (size_t) (end - p));
                        p = nl ? nl + 1 : end;
                        continue;
                }

                const char *eq = NULL;
                for (const char *q = p; q < end && *q != '\n'; q++)
                        if (*q == '=') {
                                eq = q;
                                break;
                        }
                if (!eq) {
                        reason = "a line has no '='";
                        goto bad;
                }
                if (eq == p) {
                        reason = "a line has an empty name";
                        goto bad;
                }
                size_t name_len = (size_t) (eq - p);
                if (name_len > ENV_NAME_MAX) {
                        reason = "a variable name is too long";
                        goto bad;
                }

                /* The value runs to an unescaped newline; '\' takes the next byte as is. */
                size_t n = 0;
                const char *q = eq + 1;
                for (; q < end && *q != '\n'; q++) {
                        if (*q == '\\') {
                                q++;
                                if (q >= end)
                                        break;
                        }
                        value[n++] = *q;
                }
                if (q >= end) {
                        reason = "the last line does not end with a newline";
                        goto bad;
                }
                value[n] = '\0';

                char name[ENV_NAME_MAX + 1];
                memcpy(name, p, name_len);
                name[name_len] = '\0';
                r = env_vars_set(&vars, name, value);
                if (r == -EINVAL) {
                        reason = "a variable name is not valid";
                        goto bad;
                }
                if (r < 0) {
                        env_vars_clear(&vars);
                        return r;
                }
                p = q + 1;
        }
        *ret = vars;
        return 0;

bad:
        env_vars_clear(&vars);
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

/*
 * The agent's own variables (ORBIT_*) first, then the others in their order: however long
 * the others (a distribution's kernelopts, saved_entry), the boot state stays in the
 * block's first 512-byte sector, so its writes change one sector, in place
 * (bootenv_store_file_in_place). GRUB reads the variables in any order.
 */
static bool grubenv_is_ours(const char *name) {
        return strncmp(name, "ORBIT_", 6) == 0;
}

int grubenv_format(const struct env_vars *vars, char out[GRUBENV_SIZE]) {
        size_t n = strlen(GRUBENV_HEADER);
        memcpy(out, GRUBENV_HEADER, n);

        for (size_t k = 0; k < 2 * vars->count; k++) {
                size_t i = k % vars->count;
                if (grubenv_is_ours(vars->items[i].name) != (k < vars->count))
                        continue;
                const char *name = vars->items[i].name;
                const char *value = vars->items[i].value;
                size_t name_len = strlen(name);
                if (name_len == 0 || strpbrk(name, "=\n") || name[0] == '#')
                        return -EINVAL;
                if (n + name_len + 1 > GRUBENV_SIZE)
                        return -ENOSPC;
                memcpy(out + n, name, name_len);
                n += name_len;
                out[n++] = '=';
                for (const char *v = value; *v; v++) {
                        bool escape = *v == '\\' || *v == '\n';
                        if (n + 1 + escape > GRUBENV_SIZE)
                                return -ENOSPC;
                        if (escape)
                                out[n++] = '\\';
                        out[n++] = *v;
                }
                if (n + 1 > GRUBENV_SIZE)
                        return -ENOSPC;
                out[n++] = '\n';
        }
        memset(out + n, '#', GRUBENV_SIZE - n);
        return 0;
}

/* A grubenv has one copy and no offset: the redundant-copy fields make no sense. */
static int grub_check(const struct bootenv_config *c) {
        return c->path_redundant ? -EINVAL : 0;
}

static int grub_load(const struct bootenv_config *c, struct env_vars *ret) {
        const char *path = c->path;
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = bootenv_load_file("grubenv", path, &data, &len);
        if (r < 0)
                return r;

        const char *reason = NULL;
        r = grubenv_parse(data, len, ret, &reason);
        if (r == -ENODATA)
                return log_error_errno(r, "grubenv %s: %zu bytes, not %d: truncated or not "
                                       "a grubenv", path, len, GRUBENV_SIZE);
        if (r < 0)
                return log_error_errno(r, "grubenv %s: %s", path, reason ? reason : "bad");
        return 0;
}

static int grub_store(const struct bootenv_config *c, const struct env_vars *vars) {
        const char *path = c->path;
        char block[GRUBENV_SIZE];
        int r = grubenv_format(vars, block);
        if (r == -ENOSPC)
                return log_error_errno(r, "grubenv %s: the variables do not fit in %d bytes",
                                       path, GRUBENV_SIZE);
        if (r < 0)
                return log_error_errno(r, "grubenv %s: cannot format the variables", path);

        /*
         * In place, like GRUB: renaming a new file over the old one rewrote the ESP's FAT
         * and directory, and a power cut there left the grubenv unreadable, so GRUB booted
         * the factory slot (board.sh test-powercut, docs/bootloader.md). No checksum in
         * the format: only the byte compare after the write catches a bad one.
         */
        return bootenv_store_file_in_place("grubenv", path, block, sizeof(block), c->write_hook);
}

const struct bootenv_ops bootenv_grub_ops = {
        .name = "grub",
        .names = &boot_var_names_orbit,
        .created_on_write = true, /* the grubenv is ours alone: load_env tolerates none */
        .check = grub_check,
        .load = grub_load,
        .store = grub_store,
};
