/* The /proc and /sys masks of a sandbox (see sandbox-masks.h). */
#include "config.h"

#include "lib/macro.h"
#include "runtime/sandbox-masks.h"

const char *const sandbox_masked_paths[] = {
        /* crun's and runc's defaults */
        "/proc/acpi",           /* ACPI tables and controls */
        "/proc/asound",         /* sound cards */
        "/proc/kcore",          /* the kernel's memory as an ELF core */
        "/proc/keys",           /* every key the kernel holds that the caller can see */
        "/proc/latency_stats",  /* kernel stack traces */
        "/proc/timer_list",     /* every timer of the host, with task names */
        "/proc/timer_stats",    /* older kernels: the same */
        "/proc/sched_debug",    /* every task of the host */
        "/proc/scsi",           /* SCSI devices, writable controls */
        "/sys/firmware",        /* ACPI tables, EFI variables (when /sys is bound) */
        "/sys/devices/virtual/powercap", /* RAPL energy counters: a power side channel */
        /* and more */
        "/proc/key-users",      /* key quotas of every user */
        "/proc/kallsyms",       /* kernel symbol addresses */
        "/proc/kpagecount",     /* physical page map: side channels */
        "/proc/kpageflags",
        "/proc/kpagecgroup",
        "/proc/interrupts",     /* per-CPU interrupt counts: a keystroke/IO side channel */
};
const size_t sandbox_n_masked_paths = ELEMENTSOF(sandbox_masked_paths);

const char *const sandbox_read_only_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};
const size_t sandbox_n_read_only_paths = ELEMENTSOF(sandbox_read_only_paths);
