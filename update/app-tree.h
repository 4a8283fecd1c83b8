/* App slots (#19): the payload of an "app:<name>" image, an uncompressed tar, unpacked. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APP_TREE_MAX_ENTRIES 100000
#define APP_TREE_MAX_DEPTH 64

/*
 * Pure: the problem with one tar entry name, or NULL when it is a good relative path
 * inside the tree: not absolute, no "." or ".." component, no empty component, at most
 * APP_TREE_MAX_DEPTH components, at most 1024 bytes. A leading "./" and a trailing "/"
 * (a directory) are allowed and ignored.
 */
const char *app_tree_name_problem(const char *name);

struct app_tree_stats {
        uint64_t entries, files, dirs, links, bytes;
};

/*
 * Unpack the tar read from image_fd (from offset 0) into dest_dir, which must not exist;
 * it is created mode 0755. A "./" directory entry (tar -C dir .) is the tree itself. Only
 * directories, regular files, symbolic links and hard links (without data of their own)
 * to files of the same tree are accepted: devices, fifos, sockets, sparse files, names
 * that leave the tree, an entry that would be written through a symbolic link and an
 * archive that is compressed or not a tar are refused, each named in *ret_reason
 * ("entry 'x/../y': ..."). Ownership is host root; modes are normalized (directories 0755,
 * also those made only as parents, whatever the umask; files 0755 when the tar gives any
 * execute bit, else 0644: no setuid, setgid or sticky bit, nothing unreadable by the
 * workload); extended attributes and ACLs are never applied. The tree is synced to disk
 * before returning 0. On failure dest_dir may hold a partial tree: the caller removes it.
 */
int app_tree_extract(int image_fd, const char *dest_dir, struct app_tree_stats *ret_stats,
                     char **ret_reason);
