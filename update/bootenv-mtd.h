/* U-Boot's environment in NOR flash through the kernel's MTD character devices
 * (/dev/mtdN): what a board with its environment in parallel or SPI NOR flash exposes. A
 * copy is written as U-Boot's env/flash.c and libubootenv write it: its erase blocks
 * erased, then programmed; the obsolete flag of the old copy programmed in place (NOR
 * turns bits from 1 to 0 without an erase). Pure geometry checks apart from the I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct durable_hook;

/* What MEMGETINFO (and MEMGETREGIONINFO, sysfs) say of a device at one offset. */
struct bootenv_mtd {
        uint8_t type;       /* MTD_NORFLASH, MTD_NANDFLASH, MTD_RAM... (mtd-abi.h) */
        uint32_t flags;     /* MTD_WRITEABLE, MTD_BIT_WRITEABLE... */
        uint64_t size;      /* the device's bytes */
        uint32_t erasesize; /* an erase block where the copy starts (its region's, on flash
                               with blocks of several sizes) */
        uint64_t region_end; /* where blocks of that size end (0 or size: one size throughout) */
        uint32_t writesize; /* the smallest write: 1 on NOR */
};

/* Whether path is an MTD character device (major 90); false when it cannot be stat'ed. */
bool bootenv_is_mtd(const char *path);

/* The geometry of path's device at offset; negative errno (-ENOTTY: not an MTD device). */
int bootenv_mtd_info(const char *path, uint64_t offset, struct bootenv_mtd *ret);

/*
 * Pure. Whether a copy of size bytes at offset can be kept on the device m: 0, or a
 * negative errno with *ret_why saying what is wrong (static text):
 * -EOPNOTSUPP a device whose bits cannot be programmed one byte at a time (NAND: its
 * pages are written whole, and U-Boot keeps no boolean-flag environment there), -EROFS
 * not writeable, -EINVAL an offset not at an erase block's start or a size of 0, -ERANGE
 * past the device's end or its region of blocks. *ret_start and *ret_len: the erase
 * blocks the copy spans.
 */
int bootenv_mtd_span(const struct bootenv_mtd *m, uint64_t offset, size_t size, uint64_t *ret_start,
                     uint64_t *ret_len, const char **ret_why);

/* Pure. Whether two spans [a, a + alen) and [b, b + blen) share an erase block. */
bool bootenv_mtd_spans_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen);

/* Pure. Whether the len bytes at p are all erased (0xff): the part of a copy's erase
 * blocks past the copy must be, or an erase would destroy what is there. */
bool bootenv_mtd_erased(const uint8_t *p, size_t len);

/*
 * Write len bytes at offset of the MTD device path. erase: a whole copy, size len: its erase
 * blocks (bootenv_mtd_span) erased first, after a check that the blocks hold nothing past
 * the copy (-ENOTEMPTY); without it the bytes are programmed over what is there (the
 * obsolete flag: only bits from 1 to 0). Blocks the chip reports locked (MEMISLOCKED) are
 * unlocked for the write and locked again after it, whatever its result; blocks not
 * locked are left alone. hook sees DURABLE_WRITTEN (nothing done yet), DURABLE_ERASED
 * (erase only), DURABLE_OVERWRITTEN and DURABLE_SYNCED (the same moment: an MTD write is
 * on the chip when it returns). Negative errno; the caller logs it.
 */
int bootenv_mtd_write(const char *path, uint64_t offset, const void *data, size_t len, bool erase,
                      const struct durable_hook *hook);

/* Whether two paths name the same device (st_rdev), for the copies' overlap check. */
bool bootenv_mtd_same_device(const char *a, const char *b);
