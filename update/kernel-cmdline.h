/* Which slot the running system booted from: "orbit.slot=A" on the kernel command line,
 * put there by the bootloader scripts of docs/bootloader.md. */
#pragma once

/* Pure: the slot in "orbit.slot=A" on a kernel command line; the last one counts.
 * -ENOENT when absent, -EINVAL when the value is not exactly A or B. */
int kernel_cmdline_booted_slot(const char *cmdline, char *ret_slot);

/* Read the booted slot from a kernel command line file (/proc/cmdline); logs why not. */
int bootenv_booted_slot(const char *cmdline_path, char *ret_slot);
