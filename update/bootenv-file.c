/* The file backend for simulated nodes: the variables as a JSON object of strings,
 * written durably and read back like the real bootloader environments. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "update/bootenv-file.h"
#include "update/bootenv-io.h"
#include "update/boot-vars.h"
#include "lib/log.h"
#include "lib/macro.h"

/* One file, no offset: the redundant-copy fields make no sense. */
static int file_check(const struct bootenv_config *c) {
        return c->path_redundant ? -EINVAL : 0;
}

static int file_load(const struct bootenv_config *c, struct env_vars *ret) {
        const char *path = c->path;
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = bootenv_load_file("boot env file", path, &data, &len);
        if (r < 0)
                return r;

        json_error_t error;
        json_auto_t *root =
                json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
        if (!root)
                return log_error_errno(-EBADMSG, "boot env file %s:%d:%d: %s", path,
                                       error.line, error.column, error.text);
        if (!json_is_object(root))
                return log_error_errno(-EBADMSG, "boot env file %s: not a JSON object", path);

        struct env_vars vars = {};
        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
                if (!json_is_string(value)) {
                        env_vars_clear(&vars);
                        return log_error_errno(-EBADMSG, "boot env file %s: \"%s\" is not a "
                                               "string", path, key);
                }
                r = env_vars_set(&vars, key, json_string_value(value));
                if (r < 0) {
                        env_vars_clear(&vars);
                        return log_error_errno(r == -ENOMEM ? r : -EBADMSG,
                                               "boot env file %s: variable \"%s\" is not "
                                               "valid", path, key);
                }
        }
        *ret = vars;
        return 0;
}

static int file_store(const struct bootenv_config *c, const struct env_vars *vars) {
        const char *path = c->path;
        json_auto_t *root = json_object();
        if (!root)
                return -ENOMEM;
        for (size_t i = 0; i < vars->count; i++) {
                json_t *s = json_string(vars->items[i].value);
                if (!s || json_object_set_new(root, vars->items[i].name, s) < 0)
                        return log_error_errno(-EINVAL, "boot env file %s: variable \"%s\" "
                                               "is not valid UTF-8", path,
                                               vars->items[i].name);
        }
        _cleanup_free_ char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);

        _cleanup_free_ char *line = malloc(len + 2);
        if (!line)
                return -ENOMEM;
        memcpy(line, text, len);
        line[len] = '\n';

        return bootenv_store_file("boot env file", path, line, len + 1, c->write_hook);
}

const struct bootenv_ops bootenv_file_ops = {
        .name = "file",
        .names = &boot_var_names_orbit, /* the simulation runs the GRUB script's logic */
        .created_on_write = true,
        .check = file_check,
        .load = file_load,
        .store = file_store,
};
