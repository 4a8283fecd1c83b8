/* The environment's variables: an ordered name=value list with the bootloaders' limits. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "update/bootenv-vars.h"
#include "lib/macro.h"

void env_vars_clear(struct env_vars *vars) {
        for (size_t i = 0; i < vars->count; i++) {
                free(vars->items[i].name);
                free(vars->items[i].value);
        }
        free(vars->items);
        vars->items = NULL;
        vars->count = 0;
}

static struct env_var *env_vars_find(const struct env_vars *vars, const char *name) {
        for (size_t i = 0; i < vars->count; i++)
                if (streq(vars->items[i].name, name))
                        return &vars->items[i];
        return NULL;
}

const char *env_vars_get(const struct env_vars *vars, const char *name) {
        struct env_var *v = env_vars_find(vars, name);
        return v ? v->value : NULL;
}

static bool env_name_valid(const char *name) {
        size_t len = strlen(name);
        if (len == 0 || len > ENV_NAME_MAX || name[0] == '#')
                return false;
        return !strpbrk(name, "=\n");
}

int env_vars_set(struct env_vars *vars, const char *name, const char *value) {
        if (!env_name_valid(name))
                return -EINVAL;
        if (strlen(value) > ENV_VALUE_MAX)
                return -E2BIG;

        _cleanup_free_ char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;

        struct env_var *v = env_vars_find(vars, name);
        if (v) {
                free(v->value);
                v->value = TAKE_PTR(copy);
                return 0;
        }

        if (vars->count >= ENV_VARS_MAX)
                return -E2BIG;
        _cleanup_free_ char *name_copy = strdup(name);
        if (!name_copy)
                return -ENOMEM;
        struct env_var *items = realloc(vars->items, (vars->count + 1) * sizeof(*items));
        if (!items)
                return -ENOMEM;
        vars->items = items;
        items[vars->count].name = TAKE_PTR(name_copy);
        items[vars->count].value = TAKE_PTR(copy);
        vars->count++;
        return 0;
}

int env_vars_unset(struct env_vars *vars, const char *name) {
        struct env_var *v = env_vars_find(vars, name);
        if (!v)
                return 0;
        size_t i = (size_t) (v - vars->items);
        free(v->name);
        free(v->value);
        memmove(&vars->items[i], &vars->items[i + 1],
                (vars->count - i - 1) * sizeof(vars->items[0]));
        vars->count--;
        return 0;
}

bool env_vars_equal(const struct env_vars *a, const struct env_vars *b) {
        if (a->count != b->count)
                return false;
        for (size_t i = 0; i < a->count; i++) {
                const char *v = env_vars_get(b, a->items[i].name);
                if (!v || !streq(v, a->items[i].value))
                        return false;
        }
        return true;
}

int env_vars_copy(const struct env_vars *src, struct env_vars *ret) {
        struct env_vars copy = {};
        for (size_t i = 0; i < src->count; i++) {
                int r = env_vars_set(&copy, src->items[i].name, src->items[i].value);
                if (r < 0) {
                        env_vars_clear(&copy);
                        return r;
                }
        }
        *ret = copy;
        return 0;
}
