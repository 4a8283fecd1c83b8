/* Boot selection: variable lists, the A/B boot state machine, its mapping onto each
 * backend's variables, the kernel command line, and dispatch to the backends' I/O. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootenv-backend.h"
#include "bootenv.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

/* ---- env_vars ---------------------------------------------------------------------- */

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

/* ---- the boot state ---------------------------------------------------------------- */

int boot_slot_index(char slot) {
        if (slot == 'A')
                return 0;
        if (slot == 'B')
                return 1;
        return -EINVAL;
}

static char boot_slot_other(char slot) {
        return slot == 'A' ? 'B' : 'A';
}

int boot_state_init(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        *s = (struct boot_state){.primary = slot};
        s->slot[i].good = true;
        return 0;
}

int boot_state_try_slot(struct boot_state *s, char slot, int tries) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        if (tries < 1 || tries > BOOT_TRIES_MAX)
                return -ERANGE;
        s->primary = slot;
        s->slot[i] = (struct boot_slot_state){.good = false, .tries_left = tries};
        return 0;
}

int boot_state_mark_good(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        s->slot[i] = (struct boot_slot_state){.good = true, .tries_left = 0};
        return 0;
}

int boot_state_mark_bad(struct boot_state *s, char slot) {
        int i = boot_slot_index(slot);
        if (i < 0)
                return i;
        s->slot[i] = (struct boot_slot_state){.good = false, .tries_left = 0};
        if (s->primary == slot)
                s->primary = boot_slot_other(slot);
        return 0;
}

int boot_state_simulate_boot(struct boot_state *s, char *ret_slot) {
        if (boot_slot_index(s->primary) < 0)
                return -EINVAL;
        const char order[2] = {s->primary, boot_slot_other(s->primary)};
        for (size_t k = 0; k < 2; k++) {
                struct boot_slot_state *slot = &s->slot[boot_slot_index(order[k])];
                if (slot->good) {
                        *ret_slot = order[k];
                        return 0;
                }
                if (slot->tries_left > 0) {
                        slot->tries_left--;
                        *ret_slot = order[k];
                        return 0;
                }
        }
        return -ENOENT;
}

int boot_state_outcome(const struct boot_state *s, char booted, enum boot_outcome *ret) {
        int i = boot_slot_index(booted);
        if (i < 0 || boot_slot_index(s->primary) < 0)
                return -EINVAL;
        if (booted != s->primary)
                *ret = BOOT_OUTCOME_FALLBACK;
        else if (s->slot[i].good)
                *ret = BOOT_OUTCOME_GOOD;
        else
                *ret = BOOT_OUTCOME_TRIAL;
        return 0;
}

/* ---- variables per backend --------------------------------------------------------- */

struct bootenv_names {
        const char *order;
        const char *ok[2];
        const char *tries[2];
};

static const struct bootenv_names grub_names = {
        .order = "ORBIT_ORDER",
        .ok = {"ORBIT_A_OK", "ORBIT_B_OK"},
        .tries = {"ORBIT_A_TRIES", "ORBIT_B_TRIES"},
};

static const struct bootenv_names uboot_names = {
        .order = "BOOT_ORDER",
        .ok = {"BOOT_A_OK", "BOOT_B_OK"},
        .tries = {"BOOT_A_LEFT", "BOOT_B_LEFT"},
};

static const struct bootenv_names *bootenv_names_of(enum bootenv_kind kind) {
        return kind == BOOTENV_UBOOT ? &uboot_names : &grub_names;
}

const char *bootenv_kind_to_string(enum bootenv_kind kind) {
        switch (kind) {
        case BOOTENV_GRUB:
                return "grub";
        case BOOTENV_UBOOT:
                return "uboot";
        case BOOTENV_FILE:
                return "file";
        }
        return "unknown";
}

int bootenv_kind_from_string(const char *s, enum bootenv_kind *ret) {
        if (streq(s, "grub"))
                *ret = BOOTENV_GRUB;
        else if (streq(s, "uboot"))
                *ret = BOOTENV_UBOOT;
        else if (streq(s, "file"))
                *ret = BOOTENV_FILE;
        else
                return -EINVAL;
        return 0;
}

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

int boot_state_from_vars(enum bootenv_kind kind, const struct env_vars *vars,
                         struct boot_state *ret, const char **ret_reason) {
        const struct bootenv_names *names = bootenv_names_of(kind);
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

int boot_state_to_vars(enum bootenv_kind kind, const struct boot_state *s,
                       struct env_vars *vars) {
        const struct bootenv_names *names = bootenv_names_of(kind);
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

/* ---- kernel command line ------------------------------------------------------------ */

#define CMDLINE_KEY "orbit.slot"

int kernel_cmdline_booted_slot(const char *cmdline, char *ret_slot) {
        int r = -ENOENT;
        char found = 0;
        const char *p = cmdline;

        for (;;) {
                while (*p && isspace((unsigned char) *p))
                        p++;
                if (!*p)
                        break;

                /* One word; double quotes group blanks, as the kernel's parser does. */
                const char *start = p;
                bool quoted = false;
                while (*p && (quoted || !isspace((unsigned char) *p))) {
                        if (*p == '"')
                                quoted = !quoted;
                        p++;
                }
                size_t len = (size_t) (p - start);
                size_t key_len = strlen(CMDLINE_KEY);
                if (len < key_len || strncmp(start, CMDLINE_KEY, key_len) != 0)
                        continue;
                if (len == key_len) {
                        r = -EINVAL; /* "orbit.slot" without a value */
                        continue;
                }
                if (start[key_len] != '=')
                        continue; /* "orbit.slotx=...": another parameter */

                const char *value = start + key_len + 1;
                size_t value_len = len - key_len - 1;
                if (value_len >= 2 && value[0] == '"' && value[value_len - 1] == '"') {
                        value++;
                        value_len -= 2;
                }
                if (value_len == 1 && boot_slot_index(value[0]) >= 0) {
                        found = value[0];
                        r = 0;
                } else
                        r = -EINVAL;
        }
        if (r == 0)
                *ret_slot = found;
        return r;
}

/* Read `size` bytes at offset, uncached, so we see what is on the device. */
int bootenv_read_region(const char *path, uint64_t offset, size_t size, uint8_t *buf) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        /* Drop clean cached pages first, so a read-back checks the medium. */
        (void) posix_fadvise(fd, (off_t) offset, (off_t) size, POSIX_FADV_DONTNEED);
        return pread_all(fd, buf, size, offset);
}

int bootenv_verify_file(const char *path, const void *data, size_t len) {
        struct stat st;
        if (stat(path, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != len)
                return -EIO;
        _cleanup_free_ uint8_t *back = malloc(len ? len : 1);
        if (!back)
                return -ENOMEM;
        int r = bootenv_read_region(path, 0, len, back);
        if (r < 0)
                return r;
        return memcmp(back, data, len) == 0 ? 0 : -EIO;
}

/* ---- dispatch ---------------------------------------------------------------------- */

struct bootenv {
        struct bootenv_config config;
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
        if (!config->path || !config->path[0])
                return -EINVAL;
        switch (config->kind) {
        case BOOTENV_GRUB:
        case BOOTENV_FILE:
                if (config->path_redundant)
                        return -EINVAL;
                break;
        case BOOTENV_UBOOT:
                if (config->size < UBOOTENV_SIZE_MIN || config->size > UBOOTENV_SIZE_MAX)
                        return -ERANGE;
                break;
        default:
                return -EINVAL;
        }

        _cleanup_bootenv_ struct bootenv *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
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
        *ret = TAKE_PTR(b);
        return 0;
}

int bootenv_read_vars(struct bootenv *b, struct env_vars *ret) {
        switch (b->config.kind) {
        case BOOTENV_GRUB:
                return bootenv_grub_load(b->path, ret);
        case BOOTENV_UBOOT:
                return bootenv_uboot_load(&b->config, ret);
        case BOOTENV_FILE:
                return bootenv_file_load(b->path, ret);
        }
        return -EINVAL;
}

int bootenv_write_vars(struct bootenv *b, const struct env_vars *vars) {
        int r;
        switch (b->config.kind) {
        case BOOTENV_GRUB:
                r = bootenv_grub_store(b->path, vars);
                break;
        case BOOTENV_UBOOT:
                r = bootenv_uboot_store(&b->config, vars);
                break;
        case BOOTENV_FILE:
                r = bootenv_file_store(b->path, vars);
                break;
        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;

        /* The backends compare the bytes they wrote; this compares what a reader gets,
         * through the same path the next boot's agent takes. */
        _cleanup_env_vars_ struct env_vars back = {};
        r = bootenv_read_vars(b, &back);
        if (r < 0)
                return log_error_errno(r, "%s env %s: reading back after the write failed",
                                       bootenv_kind_to_string(b->config.kind), b->path);
        if (!env_vars_equal(vars, &back))
                return log_error_errno(-EIO, "%s env %s: read back differs from what was "
                                       "written", bootenv_kind_to_string(b->config.kind),
                                       b->path);
        return 0;
}

int bootenv_read(struct bootenv *b, struct boot_state *ret) {
        _cleanup_env_vars_ struct env_vars vars = {};
        int r = bootenv_read_vars(b, &vars);
        if (r < 0)
                return r;
        const char *reason = NULL;
        r = boot_state_from_vars(b->config.kind, &vars, ret, &reason);
        if (r == -EINVAL)
                return log_error_errno(r, "%s env %s: %s",
                                       bootenv_kind_to_string(b->config.kind), b->path,
                                       reason);
        return r;
}

int bootenv_write(struct bootenv *b, const struct boot_state *s) {
        _cleanup_env_vars_ struct env_vars vars = {};
        int r = bootenv_read_vars(b, &vars);
        /* A grubenv or JSON file is ours alone and may start empty; a U-Boot
         * environment also carries bootcmd and friends, which we must never drop. */
        if (r == -ENOENT && b->config.kind != BOOTENV_UBOOT)
                r = 0;
        if (r < 0)
                return r;
        r = boot_state_to_vars(b->config.kind, s, &vars);
        if (r < 0)
                return r;
        return bootenv_write_vars(b, &vars);
}

int bootenv_booted_slot(const char *cmdline_path, char *ret_slot) {
        _cleanup_free_ char *text = NULL;
        int r = read_file_bounded(cmdline_path, 64 * 1024, &text, NULL);
        if (r < 0)
                return log_error_errno(r, "kernel command line %s: cannot read it",
                                       cmdline_path);
        r = kernel_cmdline_booted_slot(text, ret_slot);
        if (r == -ENOENT)
                return log_error_errno(r, "kernel command line %s: no " CMDLINE_KEY "=",
                                       cmdline_path);
        if (r < 0)
                return log_error_errno(r, "kernel command line %s: " CMDLINE_KEY
                                       " is not A or B", cmdline_path);
        return 0;
}
