/*
 * What /proc/PID/status says of a process's pid namespaces: its NSpid line, one pid per
 * level from the reader's /proc down to the process's own namespace. The runtime asks
 * whether a process is the init of its sandbox (its last pid is 1); the control socket
 * asks whether a peer is as deep as the agent. The parser is pure.
 */
#pragma once

#include <stddef.h>

/* The NSpid line of status text: its pids, outermost first, the first max of them into
 * pids (may be NULL with max 0). Returns how many the line holds (max or more: the rest
 * are not stored), -ENOENT without the line (kernels before 4.1), -EINVAL if it is not
 * pids. */
int procfs_nspid_parse(const char *status, long *pids, size_t max);

/* The same, read from /proc/<who>/status (who: a pid or "self"); -errno if unreadable. */
int procfs_nspid(const char *who, long *pids, size_t max);
