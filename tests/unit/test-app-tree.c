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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test_setup_teardown(test_good_tree, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dest_must_not_exist, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_a_plain_tar, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
