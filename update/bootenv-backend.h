/*
 * What a bootloader backend provides to update/bootenv.c: a struct bootenv_ops with
 * its name, its variable names and its load/store. Backends include this header and
 * update/bootenv-io.h, never bootenv.h: the dependencies run one way.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "update/boot-vars.h"
#include "update/bootenv-vars.h"

struct durable_hook;

enum bootenv_kind {
        BOOTENV_GRUB,  /* grubenv, ORBIT_* variables */
        BOOTENV_UBOOT, /* U-Boot environment, BOOT_* variables (RAUC's names) */
        BOOTENV_FILE,  /* JSON object of strings, ORBIT_* variables, for simulated nodes */
};

struct bootenv_config {
        enum bootenv_kind kind;
        const char *path;           /* grubenv, JSON file, or the first U-Boot copy */
        const char *path_redundant; /* uboot: the second copy, NULL for a single one */
        uint64_t offset;            /* uboot: where the copy starts in path */
        uint64_t offset_redundant;  /* uboot: where the copy starts in path_redundant */
        size_t size;                /* uboot: bytes of one copy, header included */
        /* uboot, two copies: their flags bytes are U-Boot's scheme for an environment in
         * parallel NOR flash (CONFIG_ENV_IS_IN_FLASH: 1 active, 0 obsolete), not the
         * counter of every other medium (MMC, SPI flash, NAND, UBI, files) */
        bool flags_boolean;
        /* Tests only (failpoints): called inside the grubenv's and the JSON file's durable
         * replacement (lib/fileio.h), NULL otherwise; not copied, it must outlive the env. */
        const struct durable_hook *write_hook;
};

struct bootenv_ops {
        const char *name;                   /* "grub": the bootloader.kind config value */
        const struct boot_var_names *names; /* where the boot state lives */
        bool created_on_write;              /* a missing env is created by the first
                                             * store; false when it must exist (U-Boot's
                                             * also carries bootcmd, never ours to make) */
        /* The config's fields this backend needs, checked before anything is read:
         * -EINVAL or -ERANGE. config->path is set (bootenv_open checks it). */
        int (*check)(const struct bootenv_config *config);
        /* All variables. -ENOENT when the env does not exist (not logged: the caller
         * decides); any other problem is logged naming the file and the cause. */
        int (*load)(const struct bootenv_config *config, struct env_vars *ret);
        /* Replace all variables durably and compare what the medium holds afterwards. */
        int (*store)(const struct bootenv_config *config, const struct env_vars *vars);
};
