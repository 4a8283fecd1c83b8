/*
 * state-check: the agent's state files in each DIR, judged by the agent's own loaders
 * (lib/statefile.h), as its next start would find them.
 *
 *   state-check [--ignore NAME]... DIR...
 *
 * Every regular file directly in a DIR is a state file, but for temporary files (a name
 * ending in ".tmp": a save cut before its rename, deleted at the next start), a corrupt
 * copy the loader kept aside (".corrupt") and the names given with --ignore. A file beside
 * a last good copy (NAME.prev) is loaded by statefile_load; any other by
 * statefile_pair_load, which reads both formats. A file is good when the loader gets a
 * verified copy, restored when that was the last good copy; bad when nothing verifies, or
 * when the file holds no copy at all (empty, or zeros: the loaders count that as never
 * written, but the agent only creates a state file with a durable first copy in it, so
 * such a file is one whose data was lost). A last good copy alone is bad too:
 * statefile_save never leaves one (the file is replaced by a rename), only a removal that
 * took the file before its copy (statefile_remove takes the copy first), and the load
 * would bring the removed file back.
 *
 * A load may write (a restored copy back): run it on a copy of the state, as
 * scripts/board.sh's sweep does on the data partition of each flush point of a power cut.
 * One line per file on standard output, then the counts; exit status 1 when a file is bad,
 * 2 on a usage error or a directory that cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/statefile.h"

struct counts {
        unsigned files, good, restored, bad, temporary, ignored; /* temporary: .tmp and .corrupt */
};

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_regular(int dfd, const char *name) {
        struct stat st;
        return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static void judge(const char *dir, int dfd, const char *name, struct counts *c) {
        char base[NAME_MAX + 1], prev[NAME_MAX + 8];
        snprintf(base, sizeof(base), "%s", name);
        bool is_prev = ends_with(name, ".prev");
        if (is_prev) {
                base[strlen(base) - 5] = '\0';
                if (is_regular(dfd, base))
                        return; /* judged with its file */
        }
        snprintf(prev, sizeof(prev), "%s.prev", base);
        c->files++;
        if (is_prev) {
                c->bad++;
                printf("BAD %s/%s: its last good copy alone (a removal that took the file first): the load "
                       "would bring it back\n", dir, base);
                return;
        }
        bool has_prev = is_regular(dfd, prev);
        struct stat st;
        if (!has_prev && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_size == 0) {
                c->bad++;
                printf("BAD %s/%s: empty\n", dir, base);
                return;
        }
        char *payload = NULL;
        size_t len = 0;
        int r;
        enum statefile_source src = STATEFILE_SOURCE_CURRENT;
        if (has_prev)
                r = statefile_load(dir, base, &payload, &len, &src);
        else
                r = statefile_pair_load(dir, base, &payload, &len);
        free(payload);
        if (r == 0 && src == STATEFILE_SOURCE_CURRENT) {
                c->good++;
                printf("good %s/%s (%zu bytes)\n", dir, base, len);
        } else if (r == 0) {
                c->restored++;
                printf("restored %s/%s (its last good copy, %zu bytes)\n", dir, base, len);
        } else {
                c->bad++;
                printf("BAD %s/%s: %s\n", dir, base,
                       r == -ENOENT    ? "no copy in it (zeros)"
                       : r == -EBADMSG ? "no copy verifies"
                                       : strerror(-r));
        }
}

int main(int argc, char **argv) {
        const char *ignore[64];
        size_t nignore = 0;
        int i = 1;
        for (; i < argc && strcmp(argv[i], "--ignore") == 0; i += 2) {
                if (i + 1 >= argc || nignore == sizeof(ignore) / sizeof(ignore[0]))
                        break;
                ignore[nignore++] = argv[i + 1];
        }
        if (i >= argc || argv[i][0] == '-') {
                fputs("usage: state-check [--ignore NAME]... DIR...\n", stderr);
                return 2;
        }
        struct counts c = {0};
        for (; i < argc; i++) {
                const char *dir = argv[i];
                DIR *d = opendir(dir);
                if (!d) {
                        fprintf(stderr, "state-check: %s: %s\n", dir, strerror(errno));
                        return 2;
                }
                /* names first: a load may add or remove files in the directory */
                char **names = NULL;
                size_t n = 0, cap = 0;
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (!is_regular(dirfd(d), de->d_name))
                                continue;
                        if (n == cap) {
                                cap = cap ? cap * 2 : 64;
                                char **m = realloc(names, cap * sizeof(*m));
                                if (!m) {
                                        fprintf(stderr, "state-check: %s: out of memory\n", dir);
                                        return 2;
                                }
                                names = m;
                        }
                        if (!(names[n++] = strdup(de->d_name))) {
                                fprintf(stderr, "state-check: %s: out of memory\n", dir);
                                return 2;
                        }
                }
                for (size_t k = 0; k < n; k++) {
                        bool skip = false;
                        for (size_t g = 0; g < nignore && !skip; g++)
                                skip = strcmp(names[k], ignore[g]) == 0;
                        if (skip)
                                c.ignored++;
                        else if (ends_with(names[k], ".tmp") || ends_with(names[k], ".corrupt"))
                                c.temporary++;
                        else
                                judge(dir, dirfd(d), names[k], &c);
                        free(names[k]);
                }
                free(names);
                closedir(d);
        }
        printf("state-check: %u state files: %u good, %u restored from their last good copy, %u bad; "
               "%u temporary or kept corrupt, %u ignored\n",
               c.files, c.good, c.restored, c.bad, c.temporary, c.ignored);
        return c.bad ? 1 : 0;
}
