/* The U-Boot backend: one or two copies of the environment (CRC32, flags byte when
 * redundant), in files, on block devices or on NOR flash through MTD devices
 * (bootenv-mtd.c), as U-Boot and fw_printenv read them. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "update/bootenv-io.h"
#include "update/bootenv-mtd.h"
#include "update/bootenv-uboot.h"
#include "update/boot-vars.h"
#include "update/crc32.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"

static size_t header_size(bool redundant) {
        return redundant ? 5 : 4; /* CRC32, then the flags byte of redundant copies */
}

int ubootenv_parse(const uint8_t *buf, size_t len, size_t size, bool redundant,
                   struct env_vars *ret, uint8_t *ret_flags, const char **ret_reason) {
        const char *reason;
        size_t hdr = header_size(redundant);
        struct env_vars vars = {};

        if (size < UBOOTENV_SIZE_MIN || size > UBOOTENV_SIZE_MAX)
                return -ERANGE;
        if (len < size) {
                if (ret_reason)
                        *ret_reason = "shorter than the configured size (truncated)";
                return -ENODATA;
        }

        uint32_t stored = (uint32_t) buf[0] | (uint32_t) buf[1] << 8 |
                          (uint32_t) buf[2] << 16 | (uint32_t) buf[3] << 24;
        if (crc32_update(0, buf + hdr, size - hdr) != stored) {
                reason = "CRC32 mismatch";
                goto bad;
        }

        const char *p = (const char *) buf + hdr, *end = (const char *) buf + size;
        while (p < end && *p) {
                const char *nul = memchr(p, '\0', (size_t) (end - p));
                if (!nul || nul + 1 >= end) {
                        reason = "the entries do not end with an empty one";
                        goto bad;
                }
                const char *eq = memchr(p, '=', (size_t) (nul - p));
                if (!eq || eq == p || (size_t) (eq - p) > ENV_NAME_MAX) {
                        reason = "an entry is not name=value";
                        goto bad;
                }
                char name[ENV_NAME_MAX + 1];
                memcpy(name, p, (size_t) (eq - p));
                name[eq - p] = '\0';
                int r = env_vars_set(&vars, name, eq + 1);
                if (r == -EINVAL || r == -E2BIG) {
                        reason = "an entry has a bad name, a too long value, or too many "
                                 "entries";
                        goto bad;
                }
                if (r < 0) {
                        env_vars_clear(&vars);
                        return r;
                }
                p = nul + 1;
        }
        if (p >= end) {
                reason = "the entries do not end with an empty one";
                goto bad;
        }
        if (ret_flags)
                *ret_flags = redundant ? buf[4] : 0;
        *ret = vars;
        return 0;

bad:
        env_vars_clear(&vars);
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

int ubootenv_format(const struct env_vars *vars, size_t size, bool redundant, uint8_t flags,
                    uint8_t *out) {
        size_t hdr = header_size(redundant);
        if (size < UBOOTENV_SIZE_MIN || size > UBOOTENV_SIZE_MAX)
                return -ERANGE;

        memset(out, 0, size);
        size_t n = hdr;
        for (size_t i = 0; i < vars->count; i++) {
                const char *name = vars->items[i].name, *value = vars->items[i].value;
                size_t name_len = strlen(name), value_len = strlen(value);
                if (name_len == 0 || strchr(name, '='))
                        return -EINVAL;
                /* name '=' value NUL, and room left for the final empty entry. */
                if (name_len + value_len + 2 > size - n - 1)
                        return -ENOSPC;
                memcpy(out + n, name, name_len);
                n += name_len;
                out[n++] = '=';
                memcpy(out + n, value, value_len);
                n += value_len;
                out[n++] = '\0';
        }
        /* out[n] is already the NUL of the final empty entry. */
        if (redundant)
                out[4] = flags;
        uint32_t crc = crc32_update(0, out + hdr, size - hdr);
        out[0] = (uint8_t) crc;
        out[1] = (uint8_t) (crc >> 8);
        out[2] = (uint8_t) (crc >> 16);
        out[3] = (uint8_t) (crc >> 24);
        return 0;
}

int ubootenv_select_copy(const bool valid[2], const uint8_t flags[2], bool boolean) {
        if (!valid[0] && !valid[1])
                return -EBADMSG;
        if (!valid[1])
                return 0;
        if (!valid[0])
                return 1;
        if (boolean) {
                /* env_flash_init()'s branches, in its order */
                if (flags[0] == UBOOTENV_FLAG_ACTIVE && flags[1] == UBOOTENV_FLAG_OBSOLETE)
                        return 0;
                if (flags[0] == UBOOTENV_FLAG_OBSOLETE && flags[1] == UBOOTENV_FLAG_ACTIVE)
                        return 1;
                if (flags[0] == flags[1] || flags[0] == 0xff)
                        return 0;
                /* 0xff in copy 1, or a pair env_flash_init() matches none of: copy 1, as
                 * env_flash_load() then takes it (see the header) */
                return 1;
        }
        /* The same rule as U-Boot's env_import_redund() and libubootenv. */
        if (flags[0] == 0xff && flags[1] == 0)
                return 1;
        if (flags[1] == 0xff && flags[0] == 0)
                return 0;
        return flags[1] > flags[0] ? 1 : 0;
}

/* ---- I/O --------------------------------------------------------------------------- */

struct uboot_copy {
        const char *path;
        uint64_t offset;
        int status;         /* 0 valid, else negative errno */
        const char *reason; /* for status < 0 */
        uint8_t flags;
        struct env_vars vars;
};

static void uboot_copies_clear(struct uboot_copy copies[2]) {
        for (size_t i = 0; i < 2; i++)
                env_vars_clear(&copies[i].vars);
}

static void uboot_read_copy(const struct bootenv_config *c, struct uboot_copy *copy,
                            bool redundant, uint8_t *buf) {
        int r = bootenv_read_region(copy->path, copy->offset, c->size, buf);
        if (r == -ENODATA) {
                copy->status = r;
                copy->reason = "shorter than the configured size (truncated)";
                return;
        }
        if (r < 0) {
                copy->status = r;
                copy->reason = r == -ENOENT ? "does not exist" : "cannot be read";
                return;
        }
        copy->status = ubootenv_parse(buf, c->size, c->size, redundant, &copy->vars,
                                      &copy->flags, &copy->reason);
}

/* Read every configured copy; returns the number of copies (1 or 2). */
static int uboot_read_copies(const struct bootenv_config *c, struct uboot_copy copies[2]) {
        bool redundant = c->path_redundant != NULL;
        _cleanup_free_ uint8_t *buf = malloc(c->size);
        if (!buf)
                return -ENOMEM;
        copies[0] = (struct uboot_copy){.path = c->path, .offset = c->offset};
        copies[1] = (struct uboot_copy){.path = c->path_redundant,
                                        .offset = c->offset_redundant};
        uboot_read_copy(c, &copies[0], redundant, buf);
        if (!redundant)
                return 1;
        uboot_read_copy(c, &copies[1], redundant, buf);
        return 2;
}

static int uboot_current(const struct bootenv_config *c, const struct uboot_copy copies[2], int n) {
        if (n == 1)
                return copies[0].status == 0 ? 0 : -EBADMSG;
        const bool valid[2] = {copies[0].status == 0, copies[1].status == 0};
        const uint8_t flags[2] = {copies[0].flags, copies[1].flags};
        return ubootenv_select_copy(valid, flags, c->flags_boolean);
}

static void log_copy_problem(int level, const struct uboot_copy *copy, size_t size) {
        log_full_errno(level, copy->status,
                       "U-Boot env %s (offset 0x%" PRIx64 ", %zu bytes): %s", copy->path,
                       copy->offset, size, copy->reason ? copy->reason : "bad");
}

static int uboot_check(const struct bootenv_config *c) {
        if (c->size < UBOOTENV_SIZE_MIN || c->size > UBOOTENV_SIZE_MAX)
                return -ERANGE;
        return 0;
}

static int uboot_load(const struct bootenv_config *c, struct env_vars *ret) {
        struct uboot_copy copies[2];
        int n = uboot_read_copies(c, copies);
        if (n < 0)
                return n;

        int cur = uboot_current(c, copies, n);
        if (cur < 0) {
                int r = -ENOENT; /* unless some copy exists: then its error */
                for (int i = 0; i < n; i++) {
                        log_copy_problem(LOG_ERR, &copies[i], c->size);
                        if (r == -ENOENT)
                                r = copies[i].status;
                }
                uboot_copies_clear(copies);
                return r;
        }
        if (n == 2 && copies[1 - cur].status < 0)
                log_copy_problem(LOG_WARNING, &copies[1 - cur], c->size);

        *ret = copies[cur].vars;
        copies[cur].vars = (struct env_vars){};
        uboot_copies_clear(copies);
        return 0;
}

/* Write one copy: a whole regular file is replaced atomically, an MTD device (NOR flash)
 * erased (erase: a whole copy) and programmed, anything else (a region of a disk image, a
 * block device) written in place and fsynced. hook (the config's write_hook, a failpoint)
 * is told each step, as the other backends tell it. */
static int write_region(const char *path, uint64_t offset, const uint8_t *buf, size_t size, bool erase,
                        const struct durable_hook *hook) {
        if (bootenv_is_mtd(path))
                return bootenv_mtd_write(path, offset, buf, size, erase, hook);
        struct stat st;
        if (stat(path, &st) < 0) {
                if (errno != ENOENT || offset != 0)
                        return negative_errno();
                return write_file_durable_hooked(path, buf, size, 0644, hook);
        }
        if (S_ISREG(st.st_mode) && offset == 0 && (size_t) st.st_size == size)
                return write_file_durable_hooked(path, buf, size, st.st_mode & 07777, hook);

        return write_file_region_hooked(path, offset, buf, size, hook);
}

static int uboot_write_copy(const struct bootenv_config *c, const struct uboot_copy *copy,
                            const struct env_vars *vars, uint8_t flags) {
        bool redundant = c->path_redundant != NULL;
        _cleanup_free_ uint8_t *buf = malloc(c->size);
        _cleanup_free_ uint8_t *back = malloc(c->size);
        if (!buf || !back)
                return -ENOMEM;

        int r = ubootenv_format(vars, c->size, redundant, flags, buf);
        if (r == -ENOSPC)
                return log_error_errno(r, "U-Boot env %s: the variables do not fit in %zu "
                                       "bytes", copy->path, c->size);
        if (r < 0)
                return log_error_errno(r, "U-Boot env %s: cannot format the variables",
                                       copy->path);

        r = write_region(copy->path, copy->offset, buf, c->size, true, c->write_hook);
        if (r == -ENOTEMPTY)
                return log_error_errno(r, "U-Boot env %s (offset 0x%" PRIx64 ", %zu bytes): the erase blocks of "
                                       "the copy hold data past it (not 0xff), which an erase would destroy; "
                                       "nothing written",
                                       copy->path, copy->offset, c->size);
        if (r < 0)
                return log_error_errno(r, "U-Boot env %s (offset 0x%" PRIx64 "): write failed",
                                       copy->path, copy->offset);
        r = bootenv_read_region(copy->path, copy->offset, c->size, back);
        if (r < 0)
                return log_error_errno(r, "U-Boot env %s: reading back failed", copy->path);
        if (memcmp(buf, back, c->size) != 0)
                return log_error_errno(-EIO, "U-Boot env %s: read back differs from what was "
                                       "written", copy->path);
        return 0;
}

/* Boolean flags: the old copy marked obsolete once the new one is durable, as U-Boot's
 * env_flash_save() does; a cut before it leaves both active, and U-Boot takes copy 0. */
static int uboot_mark_obsolete(const struct bootenv_config *c, const struct uboot_copy *copy) {
        /* The flags byte after the CRC, written in place and fsynced like a copy. On flash
         * (MTD) as the first 32 bytes of the copy (any bus width up to 256 bits), the CRC
         * and the variables programmed again as they are, the flag 0 among them: what
         * U-Boot's own flash driver does (it merges a partial word with what the chip
         * holds), where Linux's CFI driver pads a byte's word with 0xff. Real NOR ANDs the
         * padding away; QEMU's pflash stores it, and the obsolete copy's CRC broke
         * (board.md, suite cfi). */
        uint8_t head[32] = {[4] = UBOOTENV_FLAG_OBSOLETE};
        uint64_t at = copy->offset + 4;
        size_t n = 1;
        const uint8_t *what = &head[4];
        if (bootenv_is_mtd(copy->path)) {
                n = c->size < sizeof(head) ? c->size : sizeof(head);
                int r = bootenv_read_region(copy->path, copy->offset, n, head);
                if (r < 0)
                        return log_error_errno(r, "U-Boot env %s (offset 0x%" PRIx64 "): reading the old copy's "
                                               "header failed", copy->path, copy->offset);
                head[4] = UBOOTENV_FLAG_OBSOLETE;
                at = copy->offset, what = head;
        }
        int r = write_region(copy->path, at, what, n, false, c->write_hook);
        if (r < 0)
                return log_error_errno(r, "U-Boot env %s (offset 0x%" PRIx64 "): marking the old copy "
                                       "obsolete failed", copy->path, copy->offset);
        return 0;
}

/* A copy on an MTD device: where its erase blocks lie, or why it cannot be kept there
 * (logged, naming the device, the offset and the flash's geometry). */
static int uboot_mtd_span(const char *path, uint64_t offset, size_t size, uint64_t *ret_start,
                          uint64_t *ret_len) {
        struct bootenv_mtd m;
        int r = bootenv_mtd_info(path, offset, &m);
        if (r < 0)
                return log_error_errno(r, "U-Boot env %s: not an MTD device we can query (MEMGETINFO)", path);
        const char *why;
        r = bootenv_mtd_span(&m, offset, size, ret_start, ret_len, &why);
        if (r < 0)
                return log_error_errno(r, "U-Boot env %s (offset 0x%" PRIx64 ", %zu bytes): %s (MTD type %u, "
                                       "%" PRIu64 " bytes, erase blocks of 0x%" PRIx32 ", writes of %" PRIu32 ")",
                                       path, offset, size, why, m.type, m.size, m.erasesize, m.writesize);
        return 0;
}

/* Before anything is written: each copy on NOR flash fits its own erase blocks, two
 * copies on one device share none (an erase of one would take the other with it), and
 * there are two (a single copy is erased before it is programmed: a power cut between
 * leaves no environment at all, and U-Boot boots its built-in one). */
static int uboot_mtd_check(const struct bootenv_config *c) {
        const char *paths[2] = {c->path, c->path_redundant};
        const uint64_t offsets[2] = {c->offset, c->offset_redundant};
        uint64_t start[2] = {0, 0}, len[2] = {0, 0};
        bool mtd[2] = {false, false};
        for (size_t i = 0; i < 2 && paths[i]; i++) {
                mtd[i] = bootenv_is_mtd(paths[i]);
                if (!mtd[i])
                        continue;
                int r = uboot_mtd_span(paths[i], offsets[i], c->size, &start[i], &len[i]);
                if (r < 0)
                        return r;
        }
        if (mtd[0] && !paths[1])
                return log_error_errno(-EINVAL, "U-Boot env %s: a single copy on flash: each write erases it before "
                                       "programming it, and a power cut between leaves no environment; "
                                       "configure a second copy (path_redundant, offset_redundant)",
                                       paths[0]);
        if (mtd[0] && mtd[1] && bootenv_mtd_same_device(paths[0], paths[1]) &&
            bootenv_mtd_spans_overlap(start[0], len[0], start[1], len[1]))
                return log_error_errno(-EINVAL, "U-Boot env %s: the copies at 0x%" PRIx64 " and 0x%" PRIx64
                                       " share an erase block (their blocks 0x%" PRIx64 "+0x%" PRIx64 " and 0x%" PRIx64
                                       "+0x%" PRIx64 "): erasing one would erase the other",
                                       paths[0], offsets[0], offsets[1], start[0], len[0], start[1], len[1]);
        return 0;
}

static int uboot_store(const struct bootenv_config *c, const struct env_vars *vars) {
        int r = uboot_mtd_check(c);
        if (r < 0)
                return r;
        struct uboot_copy copies[2];
        int n = uboot_read_copies(c, copies);
        if (n < 0)
                return n;
        int cur = uboot_current(c, copies, n);
        uint8_t cur_flags = cur >= 0 ? copies[cur].flags : 0;
        uboot_copies_clear(copies);

        if (n == 1)
                return uboot_write_copy(c, &copies[0], vars, 0);

        if (cur < 0) {
                /* Nothing valid to protect: write both, so both exist at full size
                 * (fw_printenv refuses a missing or short copy), copy 1 current (in
                 * either scheme: flags 0 and 1). */
                r = uboot_write_copy(c, &copies[0], vars, 0);
                if (r < 0)
                        return r;
                r = uboot_write_copy(c, &copies[1], vars, 1);
                if (r < 0)
                        return r;
                cur = 0; /* so the check below expects copy 1 */
        } else if (c->flags_boolean) {
                r = uboot_write_copy(c, &copies[1 - cur], vars, UBOOTENV_FLAG_ACTIVE);
                if (r < 0)
                        return r;
                r = uboot_mark_obsolete(c, &copies[cur]);
                if (r < 0)
                        return r;
        } else {
                /* Only the copy not in use; flags wrap 255 -> 0, which readers expect. */
                r = uboot_write_copy(c, &copies[1 - cur], vars, (uint8_t) (cur_flags + 1));
                if (r < 0)
                        return r;
        }

        /* The copy just written must be the one U-Boot picks at the next boot. */
        n = uboot_read_copies(c, copies);
        if (n < 0)
                return n;
        int now = uboot_current(c, copies, n);
        /* Boolean flags: the old copy, marked obsolete, must still verify: it is what a
         * cut in the next write leaves. Not an error (the new copy is in force), but the
         * board would lose its fallback copy: said. */
        bool old_lost = c->flags_boolean && now == 1 - cur && n == 2 &&
                        (copies[cur].status < 0 || copies[cur].flags != UBOOTENV_FLAG_OBSOLETE);
        if (old_lost)
                log_warning("U-Boot env %s (offset 0x%" PRIx64 "): the old copy, marked obsolete, reads back %s "
                            "(flags %u): until the next write there is no second copy to fall back on",
                            copies[cur].path, copies[cur].offset,
                            copies[cur].status < 0 ? (copies[cur].reason ? copies[cur].reason : "bad") : "whole",
                            copies[cur].flags);
        uboot_copies_clear(copies);
        if (now != 1 - cur)
                return log_error_errno(-EIO, "U-Boot env %s: after the write, copy %d is not "
                                       "the one in use", c->path, 1 - cur);
        return 0;
}

/* RAUC's names, so a board's existing U-Boot script (and RAUC's docs) apply as is. */
static const struct boot_var_names uboot_names = {
        .order = "BOOT_ORDER",
        .ok = {"BOOT_A_OK", "BOOT_B_OK"},
        .tries = {"BOOT_A_LEFT", "BOOT_B_LEFT"},
};

const struct bootenv_ops bootenv_uboot_ops = {
        .name = "uboot",
        .names = &uboot_names,
        .created_on_write = false, /* the env also carries bootcmd: never ours to create */
        .check = uboot_check,
        .load = uboot_load,
        .store = uboot_store,
};
