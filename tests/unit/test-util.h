/* Helpers shared by the unit tests: temporary directories and small file utilities. */
#pragma once

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Make a fresh temp dir; returns a heap path. */
static inline char *test_mkdtemp(void) {
        const char *base = getenv("TMPDIR");
        char tmpl[PATH_MAX];
        snprintf(tmpl, sizeof(tmpl), "%s/orbit-test-XXXXXX", base && *base ? base : "/tmp");
        char *d = mkdtemp(tmpl);
        return d ? strdup(d) : NULL;
}

/* Remove a flat temp dir and everything in it. */
static inline void test_rmdir(char *dir) {
        if (!dir)
                return;
        DIR *d = opendir(dir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        char p[PATH_MAX];
                        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                        unlink(p);
                }
                closedir(d);
        }
        rmdir(dir);
        free(dir);
}

static inline void test_path(char *buf, size_t size, const char *dir, const char *name) {
        snprintf(buf, size, "%s/%s", dir, name);
}

/* Read a whole small file; returns its length or -1. */
static inline long test_read(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "rb");
        if (!f)
                return -1;
        size_t n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        return (long) n;
}

static inline int test_write(const char *path, const void *data, size_t len) {
        FILE *f = fopen(path, "wb");
        if (!f)
                return -1;
        size_t n = fwrite(data, 1, len, f);
        fclose(f);
        return n == len ? 0 : -1;
}

static inline int test_exists(const char *path) {
        return access(path, F_OK) == 0;
}
