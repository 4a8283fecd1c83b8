/*
 * What a sandbox hides or freezes under its /proc and /sys: the masks of crun and runc
 * (the OCI runtime defaults) and a few more. Pure tables; runtime/sandbox.c applies them
 * to whichever of these paths exist in the sandbox's root.
 */
#pragma once

#include <stddef.h>

/*
 * Covered so the workload sees nothing there: a directory by an empty read-only tmpfs,
 * a file by a bind of /dev/null. Absolute paths inside the sandbox.
 */
extern const char *const sandbox_masked_paths[];
extern const size_t sandbox_n_masked_paths;

/* Bound onto themselves read-only (recursively): readable, never writable. */
extern const char *const sandbox_read_only_paths[];
extern const size_t sandbox_n_read_only_paths;
