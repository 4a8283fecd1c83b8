/* App trees (#19): a signed app image is a tar unpacked into a slot; hostile ones refused. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/fileio.h"
#include "test-util.h"
#include "update/app-tree.h"

/* One tar entry to write: type 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c' char
 * device, 'p' fifo. */
struct ent {
        char type;
        const char *name;
        const char *data; /* file content, link target */
        mode_t perm;
};

struct fixture {
        char *dir;
        char tar[PATH_MAX], root[PATH_MAX], outside[PATH_MAX];
};

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        f->dir = test_mkdtemp();
        assert_non_null(f->dir);
        test_path(f->tar, sizeof(f->tar), f->dir, "image");
        test_path(f->root, sizeof(f->root), f->dir, "root");
        test_path(f->outside, sizeof(f->outside), f->dir, "outside");
        assert_int_equal(mkdir(f->outside, 0755), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        int fd = open("/", O_RDONLY | O_DIRECTORY);
        assert_int_equal(rm_tree_at(fd, f->dir), 0);
        close(fd);
        free(f->dir);
        free(f);
        return 0;
}

static void write_tar(const char *path, const struct ent *ents, size_t n, bool gzip) {
        struct archive *a = archive_write_new();
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        if (gzip)
                assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, ents[i].name);
                archive_entry_set_perm(e, ents[i].perm ? ents[i].perm : 0644);
                switch (ents[i].type) {
                case 'f':
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_size(e, (la_int64_t) strlen(ents[i].data));
                        break;
                case 'd':
                        archive_entry_set_filetype(e, AE_IFDIR);
                        break;
                case 'l':
                        archive_entry_set_filetype(e, AE_IFLNK);
                        archive_entry_set_symlink(e, ents[i].data);
                        break;
                case 'h':
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_hardlink(e, ents[i].data);
                        break;
                case 'c':
                        archive_entry_set_filetype(e, AE_IFCHR);
                        archive_entry_set_rdev(e, makedev(1, 3));
                        break;
                case 'p':
                        archive_entry_set_filetype(e, AE_IFIFO);
                        break;
                }
                assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
                if (ents[i].type == 'f')
                        assert_int_equal(archive_write_data(a, ents[i].data, strlen(ents[i].data)),
                                         (la_ssize_t) strlen(ents[i].data));
                archive_entry_free(e);
        }
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
}


/* ---- raw tar blocks, for entries libarchive's writer would never produce ---------------- */

/* width - 1 octal digits and a NUL, or the base-256 form (GNU) when they do not hold v */
static void raw_octal(char *field, size_t width, uint64_t v) {
        if (v >> (3 * (width - 1))) {
                memset(field, 0, width);
                field[0] = (char) 0x80;
                for (size_t i = width - 1; i > 0 && v; i--, v >>= 8)
                        field[i] = (char) (v & 0xff);
                return;
        }
        for (size_t i = width - 1; i > 0; i--, v >>= 3)
                field[i - 1] = (char) ('0' + (v & 7));
        field[width - 1] = '\0';
}

/* One ustar header of type typeflag with the given size field, then data (len bytes,
 * padded to the block), appended to fp. */
static void raw_entry(FILE *fp, char typeflag, const char *name, const char *linkname, mode_t mode,
                      uint64_t size_field, const void *data, size_t len) {
        char h[512];
        memset(h, 0, sizeof(h));
        assert_true(strlen(name) < 100);
        memcpy(h, name, strlen(name));
        raw_octal(h + 100, 8, mode);
        raw_octal(h + 108, 8, 0);
        raw_octal(h + 116, 8, 0);
        raw_octal(h + 124, 12, size_field);
        raw_octal(h + 136, 12, 1700000000);
        h[156] = typeflag;
        if (linkname) {
                assert_true(strlen(linkname) < 100);
                memcpy(h + 157, linkname, strlen(linkname));
        }
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (size_t i = 0; i < sizeof(h); i++)
                sum += (unsigned char) h[i];
        snprintf(h + 148, 8, "%06o", sum);
        assert_int_equal(fwrite(h, 1, sizeof(h), fp), sizeof(h));
        if (len) {
                assert_int_equal(fwrite(data, 1, len, fp), len);
                static const char zero[512];
                if (len % 512)
                        assert_int_equal(fwrite(zero, 1, 512 - len % 512, fp), 512 - len % 512);
        }
}

/* A pax extended header ('x') holding the one record "key=value". */
static void raw_pax(FILE *fp, const char *key, const char *value) {
        char rec[8192];
        size_t body = strlen(key) + strlen(value) + 3; /* ' ', '=', '\n' */
        size_t n = body + 1;
        while (snprintf(NULL, 0, "%zu", n) + body != n)
                n++;
        snprintf(rec, sizeof(rec), "%zu %s=%s\n", n, key, value);
        raw_entry(fp, 'x', "PaxHeader", NULL, 0644, strlen(rec), rec, strlen(rec));
}

static void raw_end(FILE *fp) {
        static const char zero[1024];
        assert_int_equal(fwrite(zero, 1, sizeof(zero), fp), sizeof(zero));
        assert_int_equal(fclose(fp), 0);
}

/* Unpack f->tar into f->root; the reason (or "") in why. */
static int unpack(struct fixture *f, char *why, size_t size, struct app_tree_stats *st) {
        int fd = open(f->tar, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        char *reason = NULL;
        struct app_tree_stats ignored;
        int r = app_tree_extract(fd, f->root, st ? st : &ignored, &reason);
        close(fd);
        snprintf(why, size, "%s", reason ? reason : "");
        free(reason);
        return r;
}

static int refused(struct fixture *f, const struct ent *ents, size_t n, const char *expect) {
        write_tar(f->tar, ents, n, false);
        char why[512];
        int r = unpack(f, why, sizeof(why), NULL);
        if (r >= 0 || !strstr(why, expect))
                fail_msg("expected a refusal with \"%s\", got %d \"%s\"", expect, r, why);
        /* nothing was written outside the tree */
        DIR *d = opendir(f->outside);
        struct dirent *de;
        int n_out = 0;
        while ((de = readdir(d)))
                n_out += de->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n_out, 0);
        return r;
}

static mode_t mode_of(const char *root, const char *name) {
        char p[PATH_MAX * 2];
        snprintf(p, sizeof(p), "%s/%s", root, name);
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        return st.st_mode;
}

static void test_names(void **state) {
        (void) state;
        assert_null(app_tree_name_problem("bin/serve"));
        assert_null(app_tree_name_problem("./bin/serve"));
        assert_null(app_tree_name_problem("bin/"));
        assert_null(app_tree_name_problem("a..b/.hidden"));
        assert_non_null(app_tree_name_problem(""));
        assert_non_null(app_tree_name_problem("./"));
        assert_non_null(app_tree_name_problem("/etc/passwd"));
        assert_non_null(app_tree_name_problem("../x"));
        assert_non_null(app_tree_name_problem("a/../../x"));
        assert_non_null(app_tree_name_problem("a/./b"));
        assert_non_null(app_tree_name_problem("a//b"));
        assert_non_null(app_tree_name_problem("./."));
        assert_non_null(app_tree_name_problem(".//x"));
        assert_non_null(app_tree_name_problem("././x"));
        assert_non_null(app_tree_name_problem("x/."));
        assert_non_null(app_tree_name_problem("x/./"));
        assert_non_null(app_tree_name_problem("x//"));
        assert_non_null(app_tree_name_problem("."));
        assert_non_null(app_tree_name_problem(".."));
        char deep[2048] = "";
        for (int i = 0; i < 65; i++)
                strcat(deep, "d/");
        strcat(deep, "f");
        assert_non_null(app_tree_name_problem(deep));
        deep[strlen(deep) - 4] = '\0'; /* 64 levels: "d/" x 63 + "d" */
        assert_null(app_tree_name_problem(deep));
}

static void test_good_tree(void **state) {
        struct fixture *f = *state;
        const struct ent ents[] = {
                {'d', "./", NULL, 0700},
                {'d', "bin", NULL, 0700},
                {'f', "bin/serve", "#!/bin/sh\necho v1\n", 0700},
                {'f', "bin/suid", "x", 04755},
                {'f', "etc/secret.conf", "k=v\n", 0600}, /* parent dir made implicitly */
                {'l', "lib", "/usr/lib", 0},
                {'l', "bin/run", "serve", 0},
                {'h', "bin/serve2", "bin/serve", 0},
                {'d', "etc", NULL, 0700},             /* after its child: fine */
        };
        write_tar(f->tar, ents, sizeof(ents) / sizeof(ents[0]), false);
        char why[512];
        struct app_tree_stats st;
        assert_int_equal(unpack(f, why, sizeof(why), &st), 0);
        assert_int_equal(st.files, 3);
        assert_int_equal(st.dirs, 3);
        assert_int_equal(mode_of(f->root, ".") & 07777, 0755);
        assert_int_equal(st.links, 3);
        assert_int_equal(mode_of(f->root, "bin") & 07777, 0755);
        assert_int_equal(mode_of(f->root, "etc") & 07777, 0755);
        assert_int_equal(mode_of(f->root, "bin/serve") & 07777, 0755);
        assert_int_equal(mode_of(f->root, "bin/suid") & 07777, 0755); /* no setuid */
        assert_int_equal(mode_of(f->root, "etc/secret.conf") & 07777, 0644);
        assert_true(S_ISLNK(mode_of(f->root, "lib")));
        char buf[256], p[PATH_MAX * 2];
        snprintf(p, sizeof(p), "%s/lib", f->root);
        ssize_t n = readlink(p, buf, sizeof(buf) - 1);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_string_equal(buf, "/usr/lib"); /* kept as written: it points inside the sandbox */
        snprintf(p, sizeof(p), "%s/bin/serve2", f->root);
        assert_true(test_read(p, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, "#!/bin/sh\necho v1\n");
        struct stat a, b;
        snprintf(p, sizeof(p), "%s/bin/serve", f->root);
        assert_int_equal(stat(p, &a), 0);
        snprintf(p, sizeof(p), "%s/bin/serve2", f->root);
        assert_int_equal(stat(p, &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        assert_int_equal(a.st_uid, getuid());
}

static void test_dest_must_not_exist(void **state) {
        struct fixture *f = *state;
        const struct ent ents[] = {{'f', "a", "x", 0}};
        write_tar(f->tar, ents, 1, false);
        assert_int_equal(mkdir(f->root, 0755), 0);
        char why[512];
        assert_int_equal(unpack(f, why, sizeof(why), NULL), -EEXIST);
}

static void test_refusals(void **state) {
        struct fixture *f = *state;
        char link_out[PATH_MAX + 16], victim[PATH_MAX + 16];
        snprintf(link_out, sizeof(link_out), "%s", f->outside);
        snprintf(victim, sizeof(victim), "%s/victim", f->outside);
        const struct ent dotdot[] = {{'f', "../escape", "x", 0}};
        refused(f, dotdot, 1, "entry '../escape': a \"..\" component");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent absolute[] = {{'f', "/tmp/orbit-app-tree-abs", "x", 0}};
        refused(f, absolute, 1, "an absolute name");
        assert_int_equal(access("/tmp/orbit-app-tree-abs", F_OK), -1);
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent through_link[] = {{'l', "d", link_out, 0}, {'f', "d/evil", "x", 0}};
        refused(f, through_link, 2, "entry 'd/evil'");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        /* A later entry replaces an earlier one (tar's rule): the link itself, never what
         * it points to. */
        const struct ent over_link[] = {{'l', "x", victim, 0}, {'f', "x", "overwritten", 0}};
        write_tar(f->tar, over_link, 2, false);
        char why[512], p[PATH_MAX * 2], buf[64];
        assert_int_equal(unpack(f, why, sizeof(why), NULL), 0);
        assert_int_equal(access(victim, F_OK), -1);
        assert_true(S_ISREG(mode_of(f->root, "x")));
        snprintf(p, sizeof(p), "%s/x", f->root);
        assert_true(test_read(p, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, "overwritten");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent device[] = {{'c', "dev/null", NULL, 0666}};
        refused(f, device, 1, "entry 'dev/null': a character device");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent fifo[] = {{'p', "fifo", NULL, 0644}};
        refused(f, fifo, 1, "entry 'fifo': a fifo");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent hard_abs[] = {{'h', "pw", "/etc/passwd", 0}};
        refused(f, hard_abs, 1, "a hard link to '/etc/passwd': an absolute name");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent hard_up[] = {{'h', "pw", "../outside/x", 0}};
        refused(f, hard_up, 1, "a hard link to '../outside/x'");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent hard_to_link[] = {{'l', "l", victim, 0}, {'h', "h", "l", 0}};
        refused(f, hard_to_link, 2, "which is not a file unpacked before it");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
}

static void test_not_a_plain_tar(void **state) {
        struct fixture *f = *state;
        const struct ent ents[] = {{'f', "a", "hello", 0}};
        write_tar(f->tar, ents, 1, true);
        char why[512];
        assert_true(unpack(f, why, sizeof(why), NULL) < 0);
        assert_non_null(strstr(why, "not an uncompressed tar"));
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);

        assert_int_equal(test_write(f->tar, "this is not a tar at all, just some text that goes on\n", 55), 0);
        assert_true(unpack(f, why, sizeof(why), NULL) < 0);
        assert_non_null(strstr(why, "not an uncompressed tar"));
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);

        /* cut in the middle of a file's data */
        char big[20000];
        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        const struct ent large[] = {{'f', "big", big, 0}};
        write_tar(f->tar, large, 1, false);
        assert_int_equal(truncate(f->tar, 512 * 3 + 8000), 0);
        assert_true(unpack(f, why, sizeof(why), NULL) < 0);
        assert_non_null(strstr(why, "big"));
}


/* ---- attacks (#19 review): a hostile but signed tar ----------------------------------- */

static FILE *raw_open(struct fixture *f) {
        FILE *fp = fopen(f->tar, "we");
        assert_non_null(fp);
        return fp;
}

static void must_read(const char *path, const char *expect) {
        char buf[256];
        assert_true(test_read(path, buf, sizeof(buf)) >= 0);
        assert_string_equal(buf, expect);
}

/* A pax hard link may carry a body (POSIX 2001): libarchive then opens the target for
 * writing, truncates it, and applies the entry's mode to it. Neither a setuid bit nor a
 * rewrite of an earlier file may come of it. */
static void test_hardlink_with_data(void **state) {
        struct fixture *f = *state;
        FILE *fp = raw_open(f);
        raw_entry(fp, '0', "f", NULL, 0644, 5, "hello", 5);
        raw_pax(fp, "mtime", "1");
        raw_entry(fp, '1', "h", "f", 06755, 5, "PWNED", 5);
        raw_end(fp);
        char why[512], p[PATH_MAX * 2];
        int r = unpack(f, why, sizeof(why), NULL);
        assert_true(r < 0);
        assert_non_null(strstr(why, "entry 'h': a hard link to 'f' with data of its own"));
        assert_int_equal(mode_of(f->root, "f") & 07777, 0644);
        snprintf(p, sizeof(p), "%s/f", f->root);
        must_read(p, "hello");
}

/* A hard link whose target path goes through a symbolic link of the tree: lstat() follows
 * the link on the way, so the file outside looks like "a file unpacked before it". */
static void test_hardlink_through_symlink(void **state) {
        struct fixture *f = *state;
        char victim[PATH_MAX + 16];
        snprintf(victim, sizeof(victim), "%s/victim", f->outside);
        assert_int_equal(test_write(victim, "original", 8), 0);
        const struct ent ents[] = {{'l', "l", f->outside, 0}, {'h', "h", "l/victim", 0}};
        write_tar(f->tar, ents, 2, false);
        char why[512];
        int r = unpack(f, why, sizeof(why), NULL);
        struct stat st;
        assert_int_equal(stat(victim, &st), 0);
        assert_int_equal(st.st_nlink, 1); /* no link to it in the tree */
        assert_true(r < 0);
        assert_non_null(strstr(why, "entry 'h'"));
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);

        /* the same with a body: the file outside would be truncated and rewritten */
        FILE *fp = raw_open(f);
        raw_entry(fp, '2', "l", f->outside, 0777, 0, NULL, 0);
        raw_pax(fp, "mtime", "1");
        raw_entry(fp, '1', "h", "l/victim", 04755, 5, "PWNED", 5);
        raw_end(fp);
        r = unpack(f, why, sizeof(why), NULL);
        assert_true(r < 0);
        must_read(victim, "original");
        assert_int_equal(stat(victim, &st), 0);
        assert_int_equal(st.st_nlink, 1);
        assert_int_equal(st.st_mode & 07777, 0644);
}

/* Directories the tar names only as parents ("a/b/c" alone) are made by libarchive with
 * the process umask: the agent's may be anything (control.c even narrows it for a moment),
 * and a tree the workload cannot walk is no tree. */
static void test_implicit_dirs_whatever_the_umask(void **state) {
        struct fixture *f = *state;
        const struct ent ents[] = {{'f', "a/b/c", "x", 0644}};
        write_tar(f->tar, ents, 1, false);
        mode_t old = umask(0177);
        char why[512];
        int r = unpack(f, why, sizeof(why), NULL);
        umask(old);
        assert_int_equal(r, 0);
        assert_int_equal(mode_of(f->root, "a") & 07777, 0755);
        assert_int_equal(mode_of(f->root, "a/b") & 07777, 0755);
        assert_int_equal(mode_of(f->root, "a/b/c") & 07777, 0644);
}

/* A directory entry after a symbolic link of the same name, then a file below it: the
 * file lands in the tree or nowhere. */
static void test_dir_after_symlink(void **state) {
        struct fixture *f = *state;
        const struct ent ents[] = {{'l', "d", f->outside, 0}, {'d', "d", NULL, 0755}, {'f', "d/x", "x", 0}};
        write_tar(f->tar, ents, 3, false);
        char why[512];
        int r = unpack(f, why, sizeof(why), NULL);
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/x", f->outside);
        assert_int_equal(access(p, F_OK), -1);
        if (r >= 0)
                assert_true(S_ISDIR(mode_of(f->root, "d")));
}

/* Links that loop, and a hard link to a directory: refused, no hang. */
static void test_link_loops(void **state) {
        struct fixture *f = *state;
        const struct ent loop[] = {{'l', "a", "b", 0}, {'l', "b", "a", 0}, {'f', "a/x", "x", 0}};
        refused(f, loop, 3, "entry 'a/x'");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent self[] = {{'l', "s", "s", 0}, {'f', "s/x", "x", 0}};
        refused(f, self, 2, "entry 's/x'");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent hard_dir[] = {{'d', "d", NULL, 0755}, {'h', "h", "d", 0}};
        refused(f, hard_dir, 2, "which is not a file unpacked before it");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent hard_root[] = {{'h', "h", "./", 0}};
        refused(f, hard_root, 1, "the tree's own root");
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        const struct ent dot_file[] = {{'f', ".", "x", 0}};
        refused(f, dot_file, 1, "a \".\" component");
}

/* Headers that claim more than the image holds: refused before anything is allocated or
 * written for them. */
static void test_huge_claims(void **state) {
        struct fixture *f = *state;
        char why[512];
        /* a file whose pax size is a terabyte */
        FILE *fp = raw_open(f);
        raw_pax(fp, "size", "1099511627776");
        raw_entry(fp, '0', "big", NULL, 0644, 0, NULL, 0);
        raw_end(fp);
        assert_true(unpack(f, why, sizeof(why), NULL) < 0);
        assert_non_null(strstr(why, "entry 'big': claims more bytes than the image holds"));
        assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        /* a pax header, and a GNU long name, each of a terabyte */
        char types[] = {'x', 'L', 'K'};
        for (size_t i = 0; i < sizeof(types); i++) {
                fp = raw_open(f);
                raw_entry(fp, types[i], "././@LongLink", NULL, 0644, (uint64_t) 1 << 40, NULL, 0);
                raw_entry(fp, '0', "a", NULL, 0644, 0, NULL, 0);
                raw_end(fp);
                assert_true(unpack(f, why, sizeof(why), NULL) < 0);
                assert_int_equal(rm_tree_at(AT_FDCWD, f->root), 0);
        }
        /* a 5000-byte name (pax path) */
        char longname[5001];
        memset(longname, 'n', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        fp = raw_open(f);
        raw_pax(fp, "path", longname);
        raw_entry(fp, '0', "short", NULL, 0644, 0, NULL, 0);
        raw_end(fp);
        assert_true(unpack(f, why, sizeof(why), NULL) < 0);
        if (!strstr(why, "a name longer than 1024 bytes"))
                fail_msg("got %s", why);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test_setup_teardown(test_good_tree, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dest_must_not_exist, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_a_plain_tar, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hardlink_with_data, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hardlink_through_symlink, setup, teardown),
                cmocka_unit_test_setup_teardown(test_implicit_dirs_whatever_the_umask, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dir_after_symlink, setup, teardown),
                cmocka_unit_test_setup_teardown(test_link_loops, setup, teardown),
                cmocka_unit_test_setup_teardown(test_huge_claims, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
