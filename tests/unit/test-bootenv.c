/* Unit tests for the boot environment: grubenv and U-Boot formats, redundant copies,
 * the boot state in each backend's variables, the kernel command line, and file I/O
 * through the backends' ops (the state machine alone: test-boot-state.c). */
#include "config.h"

#include <fcntl.h>
#include <mtd/mtd-abi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "update/bootenv.h"
#include "update/bootenv-io.h"
#include "update/bootenv-mtd.h"
#include "update/crc32.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "test-util.h"

static void vars_set(struct env_vars *v, const char *name, const char *value) {
        assert_int_equal(env_vars_set(v, name, value), 0);
}

/* ---- env_vars ---------------------------------------------------------------------- */

static void test_vars_set_get_unset(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "a", "1");
        vars_set(&v, "b", "2");
        vars_set(&v, "a", "3"); /* replaced in place */
        assert_int_equal(v.count, 2);
        assert_string_equal(v.items[0].name, "a");
        assert_string_equal(env_vars_get(&v, "a"), "3");
        assert_null(env_vars_get(&v, "c"));
        assert_int_equal(env_vars_set(&v, "", "x"), -EINVAL);
        assert_int_equal(env_vars_set(&v, "x=y", "x"), -EINVAL);
        assert_int_equal(env_vars_set(&v, "x\ny", "x"), -EINVAL);
        assert_int_equal(env_vars_set(&v, "#x", "x"), -EINVAL);
        assert_int_equal(env_vars_unset(&v, "a"), 0);
        assert_int_equal(env_vars_unset(&v, "a"), 0);
        assert_int_equal(v.count, 1);
        assert_string_equal(v.items[0].name, "b");

        _cleanup_env_vars_ struct env_vars w = {};
        assert_int_equal(env_vars_copy(&v, &w), 0);
        assert_true(env_vars_equal(&v, &w));
        vars_set(&w, "b", "9");
        assert_false(env_vars_equal(&v, &w));
}

/* ---- grubenv ----------------------------------------------------------------------- */

static void test_grubenv_exact_layout(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "ORBIT_ORDER", "A B");
        vars_set(&v, "X", "");
        char block[GRUBENV_SIZE];
        assert_int_equal(grubenv_format(&v, block), 0);

        const char expect[] = "# GRUB Environment Block\nORBIT_ORDER=A B\nX=\n";
        size_t n = strlen(expect);
        assert_memory_equal(block, expect, n);
        for (size_t i = n; i < GRUBENV_SIZE; i++)
                assert_int_equal(block[i], '#');
}

/*
 * A distribution's long variable before ours: ours are written first, so the boot state
 * stays in the first 512-byte sector and its changes are written in place.
 */
static void test_grubenv_ours_first(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        char longv[700];
        memset(longv, 'k', sizeof(longv) - 1);
        longv[sizeof(longv) - 1] = '\0';
        vars_set(&v, "kernelopts", longv);
        vars_set(&v, "ORBIT_ORDER", "A B");
        vars_set(&v, "saved_entry", "0");
        vars_set(&v, "ORBIT_A_OK", "1");
        char block[GRUBENV_SIZE];
        assert_int_equal(grubenv_format(&v, block), 0);
        const char expect[] = "# GRUB Environment Block\nORBIT_ORDER=A B\nORBIT_A_OK=1\nkernelopts=k";
        assert_memory_equal(block, expect, strlen(expect));
        assert_non_null(memmem(block, sizeof(block), "k\nsaved_entry=0\n", 16));
        /* and back: the same variables */
        _cleanup_env_vars_ struct env_vars back = {};
        assert_int_equal(grubenv_parse(block, sizeof(block), &back, NULL), 0);
        assert_true(env_vars_equal(&v, &back));
        /* the trial's change of ORBIT_ORDER lies in the first sector */
        vars_set(&v, "ORBIT_ORDER", "B A");
        char block2[GRUBENV_SIZE];
        assert_int_equal(grubenv_format(&v, block2), 0);
        size_t sector = 9;
        assert_int_equal(bootenv_sector_changed((const uint8_t *) block, (const uint8_t *) block2,
                                                GRUBENV_SIZE, &sector),
                         1);
        assert_int_equal(sector, 0);
}

static void test_grubenv_roundtrip_with_escapes(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "plain", "value with spaces = and #");
        vars_set(&v, "bs", "a\\b");
        vars_set(&v, "nl", "line1\nline2");
        vars_set(&v, "empty", "");
        char block[GRUBENV_SIZE];
        assert_int_equal(grubenv_format(&v, block), 0);
        /* grub-editenv writes a backslash before '\' and newline. */
        assert_non_null(memmem(block, sizeof(block), "bs=a\\\\b\n", 8));
        assert_non_null(memmem(block, sizeof(block), "nl=line1\\\nline2\n", 16));

        _cleanup_env_vars_ struct env_vars back = {};
        assert_int_equal(grubenv_parse(block, sizeof(block), &back, NULL), 0);
        assert_true(env_vars_equal(&v, &back));
        assert_string_equal(back.items[2].name, "nl"); /* order kept */
}

static void test_grubenv_comments_as_debian_writes(void **state) {
        char block[GRUBENV_SIZE];
        memset(block, '#', sizeof(block));
        const char text[] = "# GRUB Environment Block\n"
                            "# WARNING: Do not edit this file by tools other than "
                            "grub-editenv!!!\nA=1\nB=x\\\\y\n";
        memcpy(block, text, strlen(text));
        _cleanup_env_vars_ struct env_vars v = {};
        assert_int_equal(grubenv_parse(block, sizeof(block), &v, NULL), 0);
        assert_int_equal(v.count, 2);
        assert_string_equal(env_vars_get(&v, "A"), "1");
        assert_string_equal(env_vars_get(&v, "B"), "x\\y");
}

static void test_grubenv_rejects_bad_blocks(void **state) {
        _cleanup_env_vars_ struct env_vars empty = {};
        char good[GRUBENV_SIZE], block[GRUBENV_SIZE];
        assert_int_equal(grubenv_format(&empty, good), 0);
        _cleanup_env_vars_ struct env_vars v = {};
        const char *reason = NULL;

        assert_int_equal(grubenv_parse(good, sizeof(good), &v, NULL), 0);
        assert_int_equal(v.count, 0);

        /* wrong size, both ways */
        assert_int_equal(grubenv_parse(good, 1023, &v, &reason), -ENODATA);
        assert_non_null(reason);
        char big[GRUBENV_SIZE + 1];
        memcpy(big, good, sizeof(good));
        big[GRUBENV_SIZE] = '#';
        assert_int_equal(grubenv_parse(big, sizeof(big), &v, NULL), -ENODATA);

        /* bad header */
        memcpy(block, good, sizeof(block));
        block[2] = 'g';
        assert_int_equal(grubenv_parse(block, sizeof(block), &v, &reason), -EBADMSG);
        assert_non_null(strstr(reason, "GRUB Environment Block"));

        /* a line without '=' */
        memcpy(block, good, sizeof(block));
        memcpy(block + 25, "A=1\nnoequals\n", 13);
        assert_int_equal(grubenv_parse(block, sizeof(block), &v, &reason), -EBADMSG);
        assert_string_equal(reason, "a line has no '='");
        assert_int_equal(v.count, 0);

        /* an empty line (no name, no '=') and an empty name */
        memcpy(block, good, sizeof(block));
        memcpy(block + 25, "\nA=1\n", 5);
        assert_int_equal(grubenv_parse(block, sizeof(block), &v, NULL), -EBADMSG);
        memcpy(block, good, sizeof(block));
        memcpy(block + 25, "=1\n", 3);
        assert_int_equal(grubenv_parse(block, sizeof(block), &v, NULL), -EBADMSG);

        /* a NUL byte, e.g. a block zeroed by a failed write */
        memcpy(block, good, sizeof(block));
        block[600] = '\0';
        assert_int_equal(grubenv_parse(block, sizeof(block), &v, NULL), -EBADMSG);

        /* a value running into the end without a newline */
        memcpy(block, good, sizeof(block));
        memset(block + 25, 'x', sizeof(block) - 25);
        block[26] = '=';
        assert_int_equal(grubenv_parse(block, sizeof(block), &v, NULL), -EBADMSG);
}

static void test_grubenv_overflow(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        char block[GRUBENV_SIZE];
        char value[1024];
        /* header 25 + "V=" 2 + value + "\n" 1 == 1024 exactly fits */
        memset(value, 'x', 996);
        value[996] = '\0';
        vars_set(&v, "V", value);
        assert_int_equal(grubenv_format(&v, block), 0);
        assert_int_equal(block[GRUBENV_SIZE - 1], '\n');
        _cleanup_env_vars_ struct env_vars back = {};
        assert_int_equal(grubenv_parse(block, sizeof(block), &back, NULL), 0);
        assert_true(env_vars_equal(&v, &back));

        value[996] = 'x';
        value[997] = '\0';
        vars_set(&v, "V", value);
        assert_int_equal(grubenv_format(&v, block), -ENOSPC);

        /* escapes count too */
        memset(value, '\\', 500);
        value[500] = '\0';
        vars_set(&v, "V", value);
        assert_int_equal(grubenv_format(&v, block), -ENOSPC);
}

/* ---- U-Boot ------------------------------------------------------------------------ */

static void test_crc32_known_value(void **state) {
        assert_int_equal(crc32_update(0, "123456789", 9), 0xcbf43926);
        assert_int_equal(crc32_update(crc32_update(0, "1234", 4), "56789", 5), 0xcbf43926);
        assert_int_equal(crc32_update(0, "", 0), 0);
}

static void test_ubootenv_roundtrip_and_layout(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "bootcmd", "run orbit_boot");
        vars_set(&v, "BOOT_ORDER", "A B");
        vars_set(&v, "multi", "line1\nline2");
        uint8_t buf[256];
        for (int redundant = 0; redundant <= 1; redundant++) {
                assert_int_equal(ubootenv_format(&v, sizeof(buf), redundant, 7, buf), 0);
                size_t hdr = redundant ? 5 : 4;
                const char expect[] = "bootcmd=run orbit_boot\0BOOT_ORDER=A B\0"
                                      "multi=line1\nline2\0";
                assert_memory_equal(buf + hdr, expect, sizeof(expect));
                for (size_t i = hdr + sizeof(expect); i < sizeof(buf); i++)
                        assert_int_equal(buf[i], 0);
                uint32_t crc = crc32_update(0, buf + hdr, sizeof(buf) - hdr);
                assert_int_equal(buf[0] | buf[1] << 8 | buf[2] << 16 | (uint32_t) buf[3] << 24,
                                 crc);
                if (redundant)
                        assert_int_equal(buf[4], 7);

                _cleanup_env_vars_ struct env_vars back = {};
                uint8_t flags = 0;
                assert_int_equal(ubootenv_parse(buf, sizeof(buf), sizeof(buf), redundant,
                                                &back, &flags, NULL),
                                 0);
                assert_true(env_vars_equal(&v, &back));
                assert_int_equal(flags, redundant ? 7 : 0);
        }
}

static void test_ubootenv_every_bit_flip_detected(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "BOOT_ORDER", "B A");
        vars_set(&v, "BOOT_B_LEFT", "3");
        uint8_t buf[64];
        assert_int_equal(ubootenv_format(&v, sizeof(buf), true, 1, buf), 0);
        for (size_t i = 0; i < sizeof(buf); i++)
                for (int bit = 0; bit < 8; bit++) {
                        buf[i] ^= (uint8_t) (1 << bit);
                        _cleanup_env_vars_ struct env_vars back = {};
                        const char *reason = NULL;
                        int r = ubootenv_parse(buf, sizeof(buf), sizeof(buf), true, &back,
                                               NULL, &reason);
                        if (i == 4)
                                /* the flags byte is outside the CRC, as in U-Boot */
                                assert_int_equal(r, 0);
                        else {
                                assert_int_equal(r, -EBADMSG);
                                assert_string_equal(reason, "CRC32 mismatch");
                                assert_int_equal(back.count, 0);
                        }
                        buf[i] ^= (uint8_t) (1 << bit);
                }
}

static void test_ubootenv_truncated_and_malformed(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        _cleanup_env_vars_ struct env_vars back = {};
        vars_set(&v, "a", "1");
        uint8_t buf[64];
        assert_int_equal(ubootenv_format(&v, sizeof(buf), false, 0, buf), 0);
        assert_int_equal(ubootenv_parse(buf, 63, sizeof(buf), false, &back, NULL, NULL),
                         -ENODATA);

        /* an entry without '=' under a valid CRC */
        memset(buf, 0, sizeof(buf));
        memcpy(buf + 4, "noequals", 8);
        uint32_t crc = crc32_update(0, buf + 4, sizeof(buf) - 4);
        memcpy(buf, &crc, 4); /* little-endian host */
        assert_int_equal(ubootenv_parse(buf, sizeof(buf), sizeof(buf), false, &back, NULL,
                                        NULL),
                         -EBADMSG);

        /* no terminating empty entry: the data area ends inside an entry */
        memset(buf, 'x', sizeof(buf));
        buf[6] = '=';
        crc = crc32_update(0, buf + 4, sizeof(buf) - 4);
        memcpy(buf, &crc, 4);
        assert_int_equal(ubootenv_parse(buf, sizeof(buf), sizeof(buf), false, &back, NULL,
                                        NULL),
                         -EBADMSG);

        /* an empty environment is valid */
        _cleanup_env_vars_ struct env_vars none = {};
        assert_int_equal(ubootenv_format(&none, sizeof(buf), false, 0, buf), 0);
        assert_int_equal(ubootenv_parse(buf, sizeof(buf), sizeof(buf), false, &back, NULL,
                                        NULL),
                         0);
        assert_int_equal(back.count, 0);
}

static void test_ubootenv_overflow(void **state) {
        _cleanup_env_vars_ struct env_vars v = {};
        uint8_t buf[32];
        /* 4 header + "a=" + 24 + NUL + final NUL = 32 */
        vars_set(&v, "a", "xxxxxxxxxxxxxxxxxxxxxxxx");
        assert_int_equal(ubootenv_format(&v, sizeof(buf), false, 0, buf), 0);
        assert_int_equal(ubootenv_format(&v, sizeof(buf), true, 0, buf), -ENOSPC);
        vars_set(&v, "a", "xxxxxxxxxxxxxxxxxxxxxxxxx");
        assert_int_equal(ubootenv_format(&v, sizeof(buf), false, 0, buf), -ENOSPC);
}

static void test_ubootenv_select_copy(void **state) {
        const bool both[2] = {true, true}, only0[2] = {true, false}, only1[2] = {false, true},
                   none[2] = {false, false};
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){1, 2}, false), 1);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){3, 2}, false), 0);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){5, 5}, false), 0);
        /* wrap-around: 0 written after 255 is the newer */
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){255, 0}, false), 1);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){0, 255}, false), 0);
        /* a torn copy loses whatever its flags say */
        assert_int_equal(ubootenv_select_copy(only0, (uint8_t[]){1, 200}, false), 0);
        assert_int_equal(ubootenv_select_copy(only1, (uint8_t[]){200, 1}, false), 1);
        assert_int_equal(ubootenv_select_copy(none, (uint8_t[]){1, 2}, false), -EBADMSG);

        /* boolean (U-Boot's env/flash.c, env_flash_init): 1 active, 0 obsolete */
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){1, 0}, true), 0);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){0, 1}, true), 1);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){1, 1}, true), 0); /* a save cut before it marked */
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){0, 0}, true), 0);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){0xff, 1}, true), 0); /* erased flags */
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){1, 0xff}, true), 1);
        /* a pair env_flash_init() matches none of (a counter's): U-Boot 2023.01 loads copy 1 */
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){1, 2}, true), 1);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){3, 2}, true), 1);
        assert_int_equal(ubootenv_select_copy(both, (uint8_t[]){0, 2}, true), 1);
        assert_int_equal(ubootenv_select_copy(only1, (uint8_t[]){1, 7}, true), 1);
        assert_int_equal(ubootenv_select_copy(none, (uint8_t[]){1, 0}, true), -EBADMSG);
}

/* ---- boot state <-> variables ------------------------------------------------- */

static void test_state_vars_mapping(void **state) {
        struct boot_state s, back;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(boot_state_try_slot(&s, 'B', 3), 0);

        _cleanup_env_vars_ struct env_vars g = {};
        vars_set(&g, "saved_entry", "0");
        assert_int_equal(boot_state_to_vars(BOOTENV_GRUB, &s, &g), 0);
        assert_string_equal(env_vars_get(&g, "saved_entry"), "0"); /* others kept */
        assert_string_equal(env_vars_get(&g, "ORBIT_ORDER"), "B A");
        assert_string_equal(env_vars_get(&g, "ORBIT_A_OK"), "1");
        assert_string_equal(env_vars_get(&g, "ORBIT_A_TRIES"), "0");
        assert_string_equal(env_vars_get(&g, "ORBIT_B_OK"), "0");
        assert_string_equal(env_vars_get(&g, "ORBIT_B_TRIES"), "3");
        assert_int_equal(boot_state_from_vars(BOOTENV_GRUB, &g, &back, NULL), 0);
        assert_memory_equal(&s, &back, sizeof(s));

        _cleanup_env_vars_ struct env_vars u = {};
        assert_int_equal(boot_state_to_vars(BOOTENV_UBOOT, &s, &u), 0);
        assert_string_equal(env_vars_get(&u, "BOOT_ORDER"), "B A");
        assert_string_equal(env_vars_get(&u, "BOOT_B_LEFT"), "3");
        assert_string_equal(env_vars_get(&u, "BOOT_A_OK"), "1");
        assert_null(env_vars_get(&u, "ORBIT_ORDER"));
        assert_int_equal(boot_state_from_vars(BOOTENV_UBOOT, &u, &back, NULL), 0);
        assert_memory_equal(&s, &back, sizeof(s));
        /* the U-Boot names are not the GRUB ones */
        assert_int_equal(boot_state_from_vars(BOOTENV_GRUB, &u, &back, NULL), -ENODATA);

        s.slot[0].tries_left = 10;
        assert_int_equal(boot_state_to_vars(BOOTENV_GRUB, &s, &g), -ERANGE);
}

static void test_state_from_odd_vars(void **state) {
        struct boot_state s;
        const char *reason;
        _cleanup_env_vars_ struct env_vars v = {};

        /* a slot left out of the order is not bootable, whatever its variables say */
        vars_set(&v, "ORBIT_ORDER", "B");
        vars_set(&v, "ORBIT_A_OK", "1");
        vars_set(&v, "ORBIT_B_OK", "1");
        assert_int_equal(boot_state_from_vars(BOOTENV_FILE, &v, &s, NULL), 0);
        assert_int_equal(s.primary, 'B');
        assert_false(s.slot[0].good);
        assert_true(s.slot[1].good);

        /* missing per-slot variables: not good, no tries */
        vars_set(&v, "ORBIT_ORDER", "  A\tB ");
        assert_int_equal(env_vars_unset(&v, "ORBIT_B_OK"), 0);
        assert_int_equal(boot_state_from_vars(BOOTENV_FILE, &v, &s, NULL), 0);
        assert_int_equal(s.primary, 'A');
        assert_false(s.slot[1].good);
        assert_int_equal(s.slot[1].tries_left, 0);

        static const char *bad_orders[] = {"", " ", "AB", "A A", "A B A", "C", "a b", "A,B"};
        for (size_t i = 0; i < ELEMENTSOF(bad_orders); i++) {
                vars_set(&v, "ORBIT_ORDER", bad_orders[i]);
                reason = NULL;
                assert_int_equal(boot_state_from_vars(BOOTENV_FILE, &v, &s, &reason), -EINVAL);
                assert_non_null(reason);
        }
        vars_set(&v, "ORBIT_ORDER", "A B");
        static const char *bad_tries[] = {"", "10", "-1", "x", "3 "};
        for (size_t i = 0; i < ELEMENTSOF(bad_tries); i++) {
                vars_set(&v, "ORBIT_A_TRIES", bad_tries[i]);
                assert_int_equal(boot_state_from_vars(BOOTENV_FILE, &v, &s, NULL), -EINVAL);
        }
        vars_set(&v, "ORBIT_A_TRIES", "9");
        vars_set(&v, "ORBIT_A_OK", "yes");
        assert_int_equal(boot_state_from_vars(BOOTENV_FILE, &v, &s, NULL), -EINVAL);
        assert_int_equal(env_vars_unset(&v, "ORBIT_ORDER"), 0);
        assert_int_equal(boot_state_from_vars(BOOTENV_FILE, &v, &s, NULL), -ENODATA);
}

/* ---- kernel command line ----------------------------------------------------------- */

static void test_kernel_cmdline(void **state) {
        char slot = 0;
        assert_int_equal(kernel_cmdline_booted_slot("root=/dev/sda2 orbit.slot=B quiet\n",
                                                    &slot),
                         0);
        assert_int_equal(slot, 'B');
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=A", &slot), 0);
        assert_int_equal(slot, 'A');
        assert_int_equal(kernel_cmdline_booted_slot("\torbit.slot=\"B\"\t", &slot), 0);
        assert_int_equal(slot, 'B');
        /* the last one counts, as for the kernel's own parameters */
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=A x orbit.slot=B", &slot), 0);
        assert_int_equal(slot, 'B');
        /* a quoted value of another parameter does not count */
        assert_int_equal(kernel_cmdline_booted_slot("x=\"a orbit.slot=A b\" y", &slot), -ENOENT);

        assert_int_equal(kernel_cmdline_booted_slot("", &slot), -ENOENT);
        assert_int_equal(kernel_cmdline_booted_slot("   \n", &slot), -ENOENT);
        assert_int_equal(kernel_cmdline_booted_slot("root=/dev/sda1", &slot), -ENOENT);
        assert_int_equal(kernel_cmdline_booted_slot("xorbit.slot=A", &slot), -ENOENT);
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slots=A", &slot), -ENOENT);
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot.x=A", &slot), -ENOENT);

        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot", &slot), -EINVAL);
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=", &slot), -EINVAL);
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=a", &slot), -EINVAL);
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=AB", &slot), -EINVAL);
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=C", &slot), -EINVAL);
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=\"\"", &slot), -EINVAL);
        /* a bad later value is not hidden by a good earlier one */
        assert_int_equal(kernel_cmdline_booted_slot("orbit.slot=A orbit.slot=Z", &slot),
                         -EINVAL);
}

/* ---- I/O through the backends ------------------------------------------------------ */

static void cycle_through(struct bootenv *b) {
        struct boot_state s;
        char slot;
        assert_int_equal(bootenv_read(b, &s), -ENOENT);
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(bootenv_write(b, &s), 0);
        assert_int_equal(boot_state_try_slot(&s, 'B', 3), 0);
        assert_int_equal(bootenv_write(b, &s), 0);
        for (int i = 0; i < 6; i++) {
                assert_int_equal(bootenv_read(b, &s), 0);
                assert_int_equal(boot_state_simulate_boot(&s, &slot), 0);
                assert_int_equal(bootenv_write(b, &s), 0);
                assert_int_equal(slot, i < 3 ? 'B' : 'A');
        }
}

static void test_io_grub_and_file(void **state) {
        char *dir = test_mkdtemp();
        char path[PATH_MAX], buf[2048];
        for (int kind = BOOTENV_GRUB; kind <= BOOTENV_FILE; kind += 2) {
                test_path(path, sizeof(path), dir, kind == BOOTENV_GRUB ? "grubenv" : "env.json");
                struct bootenv_config c = {.kind = kind, .path = path};
                _cleanup_bootenv_ struct bootenv *b = NULL;
                assert_int_equal(bootenv_open(&c, &b), 0);
                cycle_through(b);
                long n = test_read(path, buf, sizeof(buf));
                if (kind == BOOTENV_GRUB)
                        assert_int_equal(n, GRUBENV_SIZE);
                assert_non_null(strstr(buf, "ORBIT_ORDER=") || strstr(buf, "\"ORBIT_ORDER\""));
        }

        /* a truncated grubenv is refused, and a write does not paper over it */
        test_path(path, sizeof(path), dir, "grubenv");
        assert_int_equal(test_write(path, "# GRUB Environment Block\n", 25), 0);
        struct bootenv_config c = {.kind = BOOTENV_GRUB, .path = path};
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);
        struct boot_state s;
        assert_int_equal(bootenv_read(b, &s), -ENODATA);
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(bootenv_write(b, &s), -ENODATA);

        /* a JSON file with a non-string value */
        test_path(path, sizeof(path), dir, "env.json");
        assert_int_equal(test_write(path, "{\"ORBIT_ORDER\": 1}", 18), 0);
        _cleanup_bootenv_ struct bootenv *f = NULL;
        c = (struct bootenv_config){.kind = BOOTENV_FILE, .path = path};
        assert_int_equal(bootenv_open(&c, &f), 0);
        assert_int_equal(bootenv_read(f, &s), -EBADMSG);
        test_rmdir(dir);
}

/* What the grubenv and its temp file hold at each step of a write (the failpoint hook). */
struct hook_seen {
        int calls;
        enum durable_step steps[4];
        char primary[4];   /* the primary slot path's content gives at that step */
        bool tmp_there[4]; /* "<path>.tmp" exists at that step */
};

static void record_step(const char *path, enum durable_step step, void *userdata) {
        struct hook_seen *seen = userdata;
        assert_true(seen->calls < 4);
        int i = seen->calls++;
        seen->steps[i] = step;
        struct bootenv_config c = {.kind = BOOTENV_GRUB, .path = path};
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);
        struct boot_state s;
        int r = bootenv_read(b, &s);
        assert_true(r == 0 || r == -ENOENT);
        seen->primary[i] = r == 0 ? s.primary : '-'; /* '-': no grubenv yet */
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        seen->tmp_there[i] = access(tmp, F_OK) == 0;
}

static void test_io_write_hook(void **state) {
        char *dir = test_mkdtemp();
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "grubenv");
        struct boot_state s;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        struct bootenv_config c = {.kind = BOOTENV_GRUB, .path = path};
        _cleanup_bootenv_ struct bootenv *plain = NULL;
        assert_int_equal(bootenv_open(&c, &plain), 0);
        assert_int_equal(bootenv_write(plain, &s), 0);

        /*
         * The grubenv exists and is 1024 bytes: written in place, as GRUB does. The hook
         * sees the old content with no temp file, the new one over it, then synced; the
         * file keeps its inode (no rename: on FAT, neither entry nor table rewritten).
         */
        struct stat st0, st1;
        assert_int_equal(stat(path, &st0), 0);
        struct hook_seen seen = {};
        struct durable_hook hook = {.fn = record_step, .userdata = &seen};
        c.write_hook = &hook;
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);
        assert_int_equal(boot_state_try_slot(&s, 'B', 2), 0);
        assert_int_equal(bootenv_write(b, &s), 0);
        assert_int_equal(seen.calls, 3);
        assert_int_equal(seen.steps[0], DURABLE_WRITTEN);
        assert_int_equal(seen.primary[0], 'A');
        assert_false(seen.tmp_there[0]);
        assert_int_equal(seen.steps[1], DURABLE_OVERWRITTEN);
        assert_int_equal(seen.primary[1], 'B');
        assert_false(seen.tmp_there[1]);
        assert_int_equal(seen.steps[2], DURABLE_SYNCED);
        assert_int_equal(seen.primary[2], 'B');
        assert_int_equal(stat(path, &st1), 0);
        assert_int_equal(st1.st_ino, st0.st_ino);
        assert_int_equal(st1.st_size, 1024);
        assert_string_equal(durable_step_to_string(DURABLE_OVERWRITTEN), "overwritten");

        /* The same state again: nothing to write, the hook not called. */
        seen = (struct hook_seen){};
        assert_int_equal(bootenv_write(b, &s), 0);
        assert_int_equal(seen.calls, 0);

        /*
         * No grubenv (or one of another size): made whole, by a temp file and a rename:
         * the hook sees no grubenv, then the new one; the temp file gone.
         */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(boot_state_mark_good(&s, 'B'), 0);
        assert_int_equal(bootenv_write(b, &s), 0);
        assert_int_equal(seen.calls, 3);
        assert_int_equal(seen.steps[0], DURABLE_WRITTEN);
        assert_int_equal(seen.primary[0], '-');
        assert_true(seen.tmp_there[0]);
        assert_int_equal(seen.steps[1], DURABLE_RENAMED);
        assert_int_equal(seen.primary[1], 'B');
        assert_false(seen.tmp_there[1]);
        assert_int_equal(seen.steps[2], DURABLE_SYNCED);
        assert_string_equal(durable_step_to_string(DURABLE_RENAMED), "renamed");
        test_rmdir(dir);
}

/* Where two blocks differ, by 512-byte sector; and which store writes in place. */
static void test_io_in_place(void **state) {
        uint8_t a[1024], b[1024];
        memset(a, '#', sizeof(a));
        memcpy(b, a, sizeof(b));
        size_t sector = 99;
        assert_int_equal(bootenv_sector_changed(a, b, sizeof(a), &sector), 0);
        b[0] = 'x';
        b[511] = 'y';
        assert_int_equal(bootenv_sector_changed(a, b, sizeof(a), &sector), 1);
        assert_int_equal(sector, 0);
        b[512] = 'z'; /* 511 and 512: across the boundary */
        assert_int_equal(bootenv_sector_changed(a, b, sizeof(a), &sector), 2);
        memcpy(b, a, sizeof(b));
        b[512] = 'z';
        b[1023] = 'z';
        assert_int_equal(bootenv_sector_changed(a, b, sizeof(a), &sector), 1);
        assert_int_equal(sector, 1);

        char *dir = test_mkdtemp();
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "grubenv");
        assert_int_equal(test_write(path, (const char *) a, sizeof(a)), 0);
        struct stat st0, st1;
        assert_int_equal(stat(path, &st0), 0);
        /* one sector changes: in place, the inode kept */
        assert_int_equal(bootenv_store_file_in_place("grubenv", path, b, sizeof(b), NULL), 0);
        assert_int_equal(stat(path, &st1), 0);
        assert_int_equal(st1.st_ino, st0.st_ino);
        assert_int_equal(bootenv_verify_file(path, b, sizeof(b)), 0);
        /* across the sector boundary: replaced whole (a new inode), never torn */
        memcpy(a, b, sizeof(a));
        a[511] = 'q';
        a[512] = 'q';
        assert_int_equal(bootenv_store_file_in_place("grubenv", path, a, sizeof(a), NULL), 0);
        assert_int_equal(stat(path, &st1), 0);
        assert_int_not_equal(st1.st_ino, st0.st_ino);
        assert_int_equal(bootenv_verify_file(path, a, sizeof(a)), 0);
        /* a file of another size: replaced whole */
        assert_int_equal(test_write(path, "short", 5), 0);
        assert_int_equal(bootenv_store_file_in_place("grubenv", path, b, sizeof(b), NULL), 0);
        assert_int_equal(bootenv_verify_file(path, b, sizeof(b)), 0);
        /* a symlink (a distribution's grubenv pointing into the ESP): its target written,
         * in place, and the link left a link */
        char target[PATH_MAX];
        test_path(target, sizeof(target), dir, "esp-grubenv");
        assert_int_equal(rename(path, target), 0);
        assert_int_equal(symlink("esp-grubenv", path), 0);
        assert_int_equal(stat(target, &st0), 0);
        uint8_t c[1024];
        memcpy(c, b, sizeof(c));
        c[100] = 'c'; /* one sector */
        assert_int_equal(bootenv_store_file_in_place("grubenv", path, c, sizeof(c), NULL), 0);
        struct stat lst;
        assert_int_equal(lstat(path, &lst), 0);
        assert_true(S_ISLNK(lst.st_mode));
        assert_int_equal(stat(target, &st1), 0);
        assert_int_equal(st1.st_ino, st0.st_ino);
        assert_int_equal(bootenv_verify_file(target, c, sizeof(c)), 0);
        /* replaced whole through the link too (another size): the target, not the link */
        assert_int_equal(test_write(target, "short", 5), 0);
        assert_int_equal(bootenv_store_file_in_place("grubenv", path, b, sizeof(b), NULL), 0);
        assert_int_equal(lstat(path, &lst), 0);
        assert_true(S_ISLNK(lst.st_mode));
        assert_int_equal(bootenv_verify_file(target, b, sizeof(b)), 0);
        assert_int_equal(unlink(target), 0);
        /* a directory where the file should be: an error, nothing replaced */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_true(bootenv_store_file_in_place("grubenv", path, b, sizeof(b), NULL) < 0);
        assert_int_equal(rmdir(path), 0);
        test_rmdir(dir);
}

static int read_flags(const char *path) {
        uint8_t buf[8];
        FILE *f = fopen(path, "rb");
        if (!f)
                return -1;
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        return n >= 5 ? buf[4] : -1;
}

static void test_io_uboot_redundant(void **state) {
        char *dir = test_mkdtemp();
        char p0[PATH_MAX], p1[PATH_MAX];
        test_path(p0, sizeof(p0), dir, "env0");
        test_path(p1, sizeof(p1), dir, "env1");
        struct bootenv_config c = {
                .kind = BOOTENV_UBOOT, .path = p0, .path_redundant = p1, .size = 4096};
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);

        /* no environment: the state is not written, bootcmd would be lost */
        struct boot_state s;
        assert_int_equal(boot_state_init(&s, 'A'), 0);
        assert_int_equal(bootenv_write(b, &s), -ENOENT);

        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "bootcmd", "run orbit_boot");
        assert_int_equal(bootenv_write_vars(b, &v), 0); /* both copies, copy 2 current */
        assert_int_equal(read_flags(p0), 0);
        assert_int_equal(read_flags(p1), 1);

        assert_int_equal(bootenv_write(b, &s), 0); /* goes to copy 1, flags 2 */
        assert_int_equal(read_flags(p0), 2);
        assert_int_equal(read_flags(p1), 1);
        assert_int_equal(boot_state_try_slot(&s, 'B', 3), 0);
        assert_int_equal(bootenv_write(b, &s), 0);
        assert_int_equal(read_flags(p0), 2);
        assert_int_equal(read_flags(p1), 3);

        _cleanup_env_vars_ struct env_vars back = {};
        assert_int_equal(bootenv_read_vars(b, &back), 0);
        assert_string_equal(env_vars_get(&back, "bootcmd"), "run orbit_boot");
        assert_string_equal(env_vars_get(&back, "BOOT_ORDER"), "B A");

        /* a torn write of copy 2 (the current one): copy 1 is used, the older state */
        FILE *f = fopen(p1, "r+b");
        assert_non_null(f);
        fseek(f, 100, SEEK_SET);
        fputc(0x55, f);
        fclose(f);
        struct boot_state now;
        assert_int_equal(bootenv_read(b, &now), 0);
        assert_int_equal(now.primary, 'A');
        /* the next write goes over the bad copy, and it becomes current again */
        assert_int_equal(bootenv_write(b, &s), 0);
        assert_int_equal(read_flags(p1), 3);
        assert_int_equal(bootenv_read(b, &now), 0);
        assert_int_equal(now.primary, 'B');

        /* a truncated copy is as bad as a bad CRC */
        assert_int_equal(truncate(p1, 1000), 0);
        assert_int_equal(bootenv_read(b, &now), 0);
        assert_int_equal(now.primary, 'A');

        /* both bad: an error, not a default */
        assert_int_equal(truncate(p0, 10), 0);
        assert_int_equal(bootenv_read(b, &now), -ENODATA);
        test_rmdir(dir);
}

static void test_io_uboot_flags_wrap(void **state) {
        char *dir = test_mkdtemp();
        char p0[PATH_MAX], p1[PATH_MAX];
        test_path(p0, sizeof(p0), dir, "env0");
        test_path(p1, sizeof(p1), dir, "env1");
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "n", "0");
        uint8_t img[256];
        assert_int_equal(ubootenv_format(&v, sizeof(img), true, 254, img), 0);
        assert_int_equal(test_write(p0, img, sizeof(img)), 0);
        assert_int_equal(ubootenv_format(&v, sizeof(img), true, 253, img), 0);
        assert_int_equal(test_write(p1, img, sizeof(img)), 0);

        struct bootenv_config c = {
                .kind = BOOTENV_UBOOT, .path = p0, .path_redundant = p1, .size = sizeof(img)};
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);
        const int expect[][2] = {{254, 255}, {0, 255}, {0, 1}, {2, 1}};
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                char value[8];
                snprintf(value, sizeof(value), "%zu", i + 1);
                vars_set(&v, "n", value);
                assert_int_equal(bootenv_write_vars(b, &v), 0);
                assert_int_equal(read_flags(p0), expect[i][0]);
                assert_int_equal(read_flags(p1), expect[i][1]);
                _cleanup_env_vars_ struct env_vars back = {};
                assert_int_equal(bootenv_read_vars(b, &back), 0);
                assert_string_equal(env_vars_get(&back, "n"), value);
        }
        test_rmdir(dir);
}

/* Two copies in one flash image (the board's second pflash bank), boolean flags: each write
 * programs the unused copy active and then the old one obsolete, as U-Boot's saveenv does;
 * a counter's flags (2) never appear, which U-Boot's flash driver would refuse. */
static int flag_at(const char *path, off_t at) {
        uint8_t c;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? pread(fd, &c, 1, at + 4) : -1;
        if (fd >= 0)
                close(fd);
        return n == 1 ? c : -1;
}

/* The board's layout in small: two copies of 4 KiB in one flash file, boolean flags. */
static struct bootenv_config flash_config(const char *path) {
        return (struct bootenv_config){.kind = BOOTENV_UBOOT, .path = path, .path_redundant = path,
                                       .offset = 0, .offset_redundant = 4096, .size = 4096,
                                       .flags_boolean = true};
}

static void erase_flash(const char *path) {
        uint8_t flash[2 * 4096];
        memset(flash, 0xff, sizeof(flash));
        assert_int_equal(test_write(path, flash, sizeof(flash)), 0);
}

static void test_io_uboot_boolean_flags(void **state) {
        char *dir = test_mkdtemp();
        char p[PATH_MAX];
        test_path(p, sizeof(p), dir, "flash.img");
        erase_flash(p);
        struct bootenv_config c = flash_config(p);
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "bootcmd", "run orbit_boot");
        assert_int_equal(bootenv_write_vars(b, &v), 0); /* both written: 0 obsolete, 1 active */
        assert_int_equal(flag_at(p, 0), 0);
        assert_int_equal(flag_at(p, 4096), 1);
        const int expect[][2] = {{1, 0}, {0, 1}, {1, 0}};
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                char value[8];
                snprintf(value, sizeof(value), "%zu", i + 1);
                vars_set(&v, "n", value);
                assert_int_equal(bootenv_write_vars(b, &v), 0);
                assert_int_equal(flag_at(p, 0), expect[i][0]);
                assert_int_equal(flag_at(p, 4096), expect[i][1]);
                _cleanup_env_vars_ struct env_vars back = {};
                assert_int_equal(bootenv_read_vars(b, &back), 0);
                assert_string_equal(env_vars_get(&back, "n"), value);
        }
        /* a save cut before the old copy was marked: both active, copy 0 wins (U-Boot's
         * rule), here the newer one; the next write goes to copy 1 and marks copy 0 */
        assert_int_equal(flag_at(p, 0), 1);
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, (uint8_t[]){1}, 1, 4096 + 4), 1);
        close(fd);
        _cleanup_env_vars_ struct env_vars back = {};
        assert_int_equal(bootenv_read_vars(b, &back), 0);
        assert_string_equal(env_vars_get(&back, "n"), "3");
        vars_set(&v, "n", "4");
        assert_int_equal(bootenv_write_vars(b, &v), 0);
        assert_int_equal(flag_at(p, 0), 0);
        assert_int_equal(flag_at(p, 4096), 1);
        /* flags a counter wrote (1 and 2, copy 1 the newer): U-Boot's flash driver matches
         * neither rule and loads copy 1, and so does the agent; its next write goes to copy
         * 0 and leaves the pair U-Boot's own */
        vars_set(&v, "n", "5");
        assert_int_equal(bootenv_write_vars(b, &v), 0); /* copy 0 now (1, 0) */
        vars_set(&v, "n", "6");
        assert_int_equal(bootenv_write_vars(b, &v), 0); /* copy 1: (0, 1) */
        fd = open(p, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, (uint8_t[]){2}, 1, 4096 + 4), 1);
        assert_int_equal(pwrite(fd, (uint8_t[]){1}, 1, 4), 1);
        close(fd);
        _cleanup_env_vars_ struct env_vars odd = {};
        assert_int_equal(bootenv_read_vars(b, &odd), 0);
        assert_string_equal(env_vars_get(&odd, "n"), "6");
        vars_set(&v, "n", "7");
        assert_int_equal(bootenv_write_vars(b, &v), 0);
        assert_int_equal(flag_at(p, 0), 1);
        assert_int_equal(flag_at(p, 4096), 0);
        _cleanup_env_vars_ struct env_vars again = {};
        assert_int_equal(bootenv_read_vars(b, &again), 0);
        assert_string_equal(env_vars_get(&again, "n"), "7");
        test_rmdir(dir);
}

/* What a reader (U-Boot's rule: bootenv_read_vars) takes at each step of a redundant
 * U-Boot write: the failpoint hook's view, a power cut's. */
struct uboot_seen {
        int calls;
        enum durable_step steps[8];
        char n[8][4];    /* the variable "n" the reader takes at that step */
        int flags[8][2]; /* the two copies' flags bytes */
};

static void record_uboot_step(const char *path, enum durable_step step, void *userdata) {
        struct uboot_seen *seen = userdata;
        assert_true(seen->calls < 8);
        int i = seen->calls++;
        seen->steps[i] = step;
        struct bootenv_config c = flash_config(path);
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);
        _cleanup_env_vars_ struct env_vars v = {};
        assert_int_equal(bootenv_read_vars(b, &v), 0);
        snprintf(seen->n[i], sizeof(seen->n[i]), "%s", env_vars_get(&v, "n"));
        seen->flags[i][0] = flag_at(path, 0);
        seen->flags[i][1] = flag_at(path, 4096);
}

static void test_io_uboot_write_hook(void **state) {
        char *dir = test_mkdtemp();
        char p[PATH_MAX];
        test_path(p, sizeof(p), dir, "flash.img");
        erase_flash(p);
        struct bootenv_config c = flash_config(p);
        _cleanup_bootenv_ struct bootenv *first = NULL;
        assert_int_equal(bootenv_open(&c, &first), 0);
        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "n", "1");
        assert_int_equal(bootenv_write_vars(first, &v), 0); /* both copies: 0 obsolete, 1 active */
        struct uboot_seen seen = {};
        struct durable_hook hook = {.fn = record_uboot_step, .userdata = &seen};
        c.write_hook = &hook;
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);

        /*
         * Into copy 0, then copy 1 marked obsolete: each write in place tells written,
         * overwritten, synced. Until copy 0 is whole a reader keeps "1"; once it is (both
         * active: copy 0 wins) it takes "2", before and after the mark.
         */
        vars_set(&v, "n", "2");
        assert_int_equal(bootenv_write_vars(b, &v), 0);
        assert_int_equal(seen.calls, 6);
        const enum durable_step steps[] = {DURABLE_WRITTEN, DURABLE_OVERWRITTEN, DURABLE_SYNCED};
        for (int i = 0; i < 6; i++)
                assert_int_equal(seen.steps[i], steps[i % 3]);
        assert_string_equal(seen.n[0], "1");
        assert_int_equal(seen.flags[0][1], 1);
        assert_string_equal(seen.n[1], "2"); /* the page cache: what the disk holds once synced */
        assert_int_equal(seen.flags[2][0], 1);
        assert_int_equal(seen.flags[2][1], 1);
        assert_string_equal(seen.n[2], "2");
        assert_int_equal(seen.flags[5][1], 0);
        assert_string_equal(seen.n[5], "2");

        /*
         * Into copy 1, then copy 0 marked: once copy 1 is whole both are active and
         * copy 0, the older, still wins: a cut there loses this write (U-Boot boots what
         * the last one said); the mark makes it take copy 1.
         */
        seen = (struct uboot_seen){};
        vars_set(&v, "n", "3");
        assert_int_equal(bootenv_write_vars(b, &v), 0);
        assert_int_equal(seen.calls, 6);
        assert_int_equal(seen.flags[2][0], 1);
        assert_int_equal(seen.flags[2][1], 1);
        assert_string_equal(seen.n[2], "2");
        assert_int_equal(seen.flags[5][0], 0);
        assert_string_equal(seen.n[5], "3");
        test_rmdir(dir);
}

static void test_io_uboot_single_with_offset(void **state) {
        char *dir = test_mkdtemp();
        char p[PATH_MAX];
        test_path(p, sizeof(p), dir, "disk.img");
        /* an "image" with other data around the environment at 0x1000 */
        uint8_t disk[3 * 4096];
        memset(disk, 0xa5, sizeof(disk));
        assert_int_equal(test_write(p, disk, sizeof(disk)), 0);

        struct bootenv_config c = {
                .kind = BOOTENV_UBOOT, .path = p, .offset = 4096, .size = 4096};
        _cleanup_bootenv_ struct bootenv *b = NULL;
        assert_int_equal(bootenv_open(&c, &b), 0);
        struct boot_state s;
        assert_int_equal(bootenv_read(b, &s), -EBADMSG);

        _cleanup_env_vars_ struct env_vars v = {};
        vars_set(&v, "bootcmd", "boot");
        assert_int_equal(bootenv_write_vars(b, &v), 0);
        assert_int_equal(boot_state_init(&s, 'B'), 0);
        assert_int_equal(bootenv_write(b, &s), 0);

        uint8_t after[sizeof(disk) + 1];
        assert_int_equal(test_read(p, (char *) after, sizeof(after)), sizeof(disk));
        for (size_t i = 0; i < 4096; i++) {
                assert_int_equal(after[i], 0xa5);
                assert_int_equal(after[2 * 4096 + i], 0xa5);
        }
        struct boot_state back;
        assert_int_equal(bootenv_read(b, &back), 0);
        assert_memory_equal(&s, &back, sizeof(s));
        test_rmdir(dir);
}

static void test_open_checks_config(void **state) {
        struct bootenv *b = NULL;
        struct bootenv_config c = {.kind = BOOTENV_UBOOT, .path = "/x", .size = 8};
        assert_int_equal(bootenv_open(&c, &b), -ERANGE);
        c = (struct bootenv_config){.kind = BOOTENV_GRUB, .path = "/x", .path_redundant = "/y"};
        assert_int_equal(bootenv_open(&c, &b), -EINVAL);
        c = (struct bootenv_config){.kind = BOOTENV_FILE};
        assert_int_equal(bootenv_open(&c, &b), -EINVAL);
        enum bootenv_kind k;
        assert_int_equal(bootenv_kind_from_string("uboot", &k), 0);
        assert_int_equal(k, BOOTENV_UBOOT);
        assert_string_equal(bootenv_kind_to_string(k), "uboot");
        assert_int_equal(bootenv_kind_from_string("lilo", &k), -EINVAL);
}

/* NOR flash as MEMGETINFO describes QEMU's pflash (256 KiB blocks) and SPI NOR (4 KiB). */
static void test_mtd_span(void **state) {
        (void) state;
        const struct bootenv_mtd nor = {.type = MTD_NORFLASH, .flags = MTD_CAP_NORFLASH,
                                        .size = 64 << 20, .erasesize = 256 << 10, .writesize = 1};
        uint64_t start = 1, len = 1;
        const char *why = "x";
        /* one copy of 8 KiB at a block's start: that block */
        assert_int_equal(bootenv_mtd_span(&nor, 256 << 10, 8192, &start, &len, &why), 0);
        assert_int_equal(start, 256 << 10);
        assert_int_equal(len, 256 << 10);
        assert_null(why);
        /* a copy larger than a block spans two */
        assert_int_equal(bootenv_mtd_span(&nor, 0, (256 << 10) + 1, &start, &len, &why), 0);
        assert_int_equal(len, 512 << 10);
        /* not at a block's start: refused, saying why */
        assert_int_equal(bootenv_mtd_span(&nor, 4096, 8192, &start, &len, &why), -EINVAL);
        assert_non_null(strstr(why, "erase block"));
        /* the last block: fits; one byte more does not */
        assert_int_equal(bootenv_mtd_span(&nor, (64 << 20) - (256 << 10), 256 << 10, &start, &len, &why), 0);
        assert_int_equal(bootenv_mtd_span(&nor, (64 << 20) - (256 << 10), (256 << 10) + 1, &start, &len, &why),
                         -ERANGE);
        assert_int_equal(bootenv_mtd_span(&nor, 128ULL << 20, 8192, &start, &len, &why), -ERANGE);
        assert_non_null(strstr(why, "device's end"));
        assert_int_equal(bootenv_mtd_span(&nor, 0, 0, &start, &len, &why), -EINVAL);
        assert_non_null(strstr(why, "no bytes"));

        /* parallel NOR with boot sectors: 8 x 8 KiB, then 64 KiB blocks. In the small
         * region a 16 KiB copy takes two sectors; it may not run into the large blocks. */
        const struct bootenv_mtd boot = {.type = MTD_NORFLASH, .flags = MTD_CAP_NORFLASH, .size = 4 << 20,
                                         .erasesize = 8192, .region_end = 65536, .writesize = 1};
        assert_int_equal(bootenv_mtd_span(&boot, 16384, 16384, &start, &len, &why), 0);
        assert_int_equal(len, 16384);
        assert_int_equal(bootenv_mtd_span(&boot, 57344, 16384, &start, &len, &why), -ERANGE);
        assert_non_null(strstr(why, "region"));

        /* SPI NOR: 4 KiB blocks, an 8 KiB copy spans two */
        const struct bootenv_mtd spi = {.type = MTD_NORFLASH, .flags = MTD_CAP_NORFLASH,
                                        .size = 16 << 20, .erasesize = 4096, .writesize = 1};
        assert_int_equal(bootenv_mtd_span(&spi, 0x10000, 8192, &start, &len, &why), 0);
        assert_int_equal(start, 0x10000);
        assert_int_equal(len, 8192);

        /* NAND (pages), and NOR read-only: refused */
        const struct bootenv_mtd nand = {.type = MTD_NANDFLASH, .flags = MTD_CAP_NANDFLASH,
                                         .size = 64 << 20, .erasesize = 128 << 10, .writesize = 2048};
        assert_int_equal(bootenv_mtd_span(&nand, 0, 8192, &start, &len, &why), -EOPNOTSUPP);
        assert_non_null(strstr(why, "NAND"));
        struct bootenv_mtd ro = nor;
        ro.flags &= ~(uint32_t) MTD_WRITEABLE;
        assert_int_equal(bootenv_mtd_span(&ro, 0, 8192, &start, &len, &why), -EROFS);
        /* RAM (mtdram): bit-writeable, one byte at a time */
        const struct bootenv_mtd ram = {.type = MTD_RAM, .flags = MTD_CAP_RAM,
                                        .size = 4 << 20, .erasesize = 128 << 10, .writesize = 1};
        assert_int_equal(bootenv_mtd_span(&ram, 128 << 10, 8192, &start, &len, &why), 0);
}

static void test_mtd_spans_overlap(void **state) {
        (void) state;
        /* two 256 KiB blocks side by side: apart */
        assert_false(bootenv_mtd_spans_overlap(0, 256 << 10, 256 << 10, 256 << 10));
        assert_false(bootenv_mtd_spans_overlap(256 << 10, 256 << 10, 0, 256 << 10));
        /* the same block, or one inside the other's two */
        assert_true(bootenv_mtd_spans_overlap(0, 256 << 10, 0, 256 << 10));
        assert_true(bootenv_mtd_spans_overlap(0, 512 << 10, 256 << 10, 256 << 10));
}

/* An erase block's rest past a copy: only all 0xff may be erased. */
static void test_mtd_erased(void **state) {
        (void) state;
        uint8_t b[64];
        memset(b, 0xff, sizeof(b));
        assert_true(bootenv_mtd_erased(b, sizeof(b)));
        assert_true(bootenv_mtd_erased(b, 0));
        b[63] = 0xfe; /* one bit programmed, at the end */
        assert_false(bootenv_mtd_erased(b, sizeof(b)));
        assert_true(bootenv_mtd_erased(b, 63));
}

/* What is not an MTD device (a character device of another major, a missing path) is
 * not taken for flash, and MEMGETINFO on it fails as not a tty. */
static void test_mtd_not_mtd(void **state) {
        (void) state;
        assert_false(bootenv_is_mtd("/dev/null"));
        assert_false(bootenv_is_mtd("/nonexistent/mtd0"));
        assert_false(bootenv_is_mtd(NULL));
        struct bootenv_mtd m;
        /* the kernel says ENOTTY; qemu-user, which does not know the ioctl, ENOSYS */
        int r = bootenv_mtd_info("/dev/null", 0, &m);
        assert_true(r == -ENOTTY || r == -ENOSYS);
        assert_true(bootenv_mtd_same_device("/dev/null", "/dev/null"));
        assert_false(bootenv_mtd_same_device("/dev/null", "/dev/zero"));
        assert_false(bootenv_mtd_same_device("/dev/null", NULL));
}

int main(void) {
        log_set_max_level(LOG_CRIT); /* the error paths log on purpose */
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vars_set_get_unset),
                cmocka_unit_test(test_grubenv_exact_layout),
                cmocka_unit_test(test_grubenv_ours_first),
                cmocka_unit_test(test_grubenv_roundtrip_with_escapes),
                cmocka_unit_test(test_grubenv_comments_as_debian_writes),
                cmocka_unit_test(test_grubenv_rejects_bad_blocks),
                cmocka_unit_test(test_grubenv_overflow),
                cmocka_unit_test(test_crc32_known_value),
                cmocka_unit_test(test_ubootenv_roundtrip_and_layout),
                cmocka_unit_test(test_ubootenv_every_bit_flip_detected),
                cmocka_unit_test(test_ubootenv_truncated_and_malformed),
                cmocka_unit_test(test_ubootenv_overflow),
                cmocka_unit_test(test_ubootenv_select_copy),
                cmocka_unit_test(test_state_vars_mapping),
                cmocka_unit_test(test_state_from_odd_vars),
                cmocka_unit_test(test_kernel_cmdline),
                cmocka_unit_test(test_io_grub_and_file),
                cmocka_unit_test(test_io_write_hook),
                cmocka_unit_test(test_io_in_place),
                cmocka_unit_test(test_io_uboot_redundant),
                cmocka_unit_test(test_io_uboot_boolean_flags),
                cmocka_unit_test(test_io_uboot_write_hook),
                cmocka_unit_test(test_io_uboot_flags_wrap),
                cmocka_unit_test(test_io_uboot_single_with_offset),
                cmocka_unit_test(test_open_checks_config),
                cmocka_unit_test(test_mtd_span),
                cmocka_unit_test(test_mtd_spans_overlap),
                cmocka_unit_test(test_mtd_erased),
                cmocka_unit_test(test_mtd_not_mtd),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
