/* Unit tests for state files: encoding, checksum checks, durable save, recovery. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/sha256.h"
#include "lib/statefile.h"
#include "test-util.h"

static void test_encode_decode_roundtrip(void **state) {
        const char payload[] = "{\"boot_epoch\":42}";
        char *enc;
        size_t enc_len;
        assert_int_equal(statefile_encode(payload, strlen(payload), &enc, &enc_len), 0);
        assert_true(strncmp(enc, "orbit-state 1 17 ", 17) == 0);
        assert_int_equal(statefile_encoded_size(strlen(payload)), enc_len);

        const char *out;
        size_t out_len;
        assert_int_equal(statefile_decode(enc, enc_len, &out, &out_len), 0);
        assert_int_equal(out_len, strlen(payload));
        assert_memory_equal(out, payload, out_len);
        free(enc);
}

static void test_decode_empty_payload(void **state) {
        char *enc;
        size_t enc_len;
        assert_int_equal(statefile_encode("", 0, &enc, &enc_len), 0);
        assert_int_equal(statefile_encoded_size(0), enc_len);
        const char *out;
        size_t out_len = 99;
        assert_int_equal(statefile_decode(enc, enc_len, &out, &out_len), 0);
        assert_int_equal(out_len, 0);
        free(enc);
}

static void test_decode_rejects_every_single_bit_flip(void **state) {
        const char payload[] = "{\"node_id\":\"sat-001\",\"format\":1}";
        char *enc;
        size_t enc_len;
        assert_int_equal(statefile_encode(payload, strlen(payload), &enc, &enc_len), 0);
        /* Radiation flips one bit anywhere: header, length, checksum or payload. */
        for (size_t i = 0; i < enc_len; i++)
                for (int bit = 0; bit < 8; bit++) {
                        enc[i] ^= (char) (1 << bit);
                        const char *out;
                        size_t out_len;
                        int r = statefile_decode(enc, enc_len, &out, &out_len);
                        assert_true(r == -EBADMSG || r == -ENODATA);
                        enc[i] ^= (char) (1 << bit);
                }
        free(enc);
}

static void test_decode_truncated_at_every_length(void **state) {
        const char payload[] = "some state worth keeping";
        char *enc;
        size_t enc_len;
        assert_int_equal(statefile_encode(payload, strlen(payload), &enc, &enc_len), 0);
        for (size_t n = 0; n < enc_len; n++) {
                const char *out;
                size_t out_len;
                int r = statefile_decode(enc, n, &out, &out_len);
                assert_true(r == -EBADMSG || r == -ENODATA);
        }
        free(enc);
}

static void test_decode_rejects_trailing_garbage_and_bad_headers(void **state) {
        const char *out;
        size_t out_len;
        char *enc;
        size_t enc_len;
        assert_int_equal(statefile_encode("abc", 3, &enc, &enc_len), 0);
        char *longer = malloc(enc_len + 2);
        memcpy(longer, enc, enc_len);
        memcpy(longer + enc_len, "xy", 2);
        assert_int_equal(statefile_decode(longer, enc_len + 2, &out, &out_len), -EBADMSG);
        free(longer);
        free(enc);

        const char *bad[] = {
                "garbage",
                "orbit-state 2 3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nabc",
                "orbit-state 1 3ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nabc",
                "orbit-state 1 3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2\nabc",
                "orbit-state 1 99999999999 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nabc",
                "orbit-state 1 3 zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nabc",
                "orbit-state 1  ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nabc",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(statefile_decode(bad[i], strlen(bad[i]), &out, &out_len), -EBADMSG);

        /* The correct checksum of "abc" decodes. */
        const char *good = "orbit-state 1 3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nabc";
        assert_int_equal(statefile_decode(good, strlen(good), &out, &out_len), 0);
        assert_int_equal(out_len, 3);
}

static void test_save_load_roundtrip(void **state) {
        char *dir = test_mkdtemp();
        assert_non_null(dir);
        assert_int_equal(statefile_save(dir, "thing", "hello", 5), 0);

        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "thing");
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        test_path(path, sizeof(path), dir, "thing.tmp");
        assert_false(test_exists(path));
        test_path(path, sizeof(path), dir, "thing.prev");
        assert_false(test_exists(path)); /* nothing older to keep yet */

        char *payload;
        size_t len;
        enum statefile_source src;
        assert_int_equal(statefile_load(dir, "thing", &payload, &len, &src), 0);
        assert_int_equal(src, STATEFILE_SOURCE_CURRENT);
        assert_int_equal(len, 5);
        assert_string_equal(payload, "hello");
        free(payload);
        test_rmdir(dir);
}

static void test_save_keeps_previous_good_copy(void **state) {
        char *dir = test_mkdtemp();
        assert_int_equal(statefile_save(dir, "s", "one", 3), 0);
        assert_int_equal(statefile_save(dir, "s", "two", 3), 0);
        assert_int_equal(statefile_save(dir, "s", "three", 5), 0);

        char path[PATH_MAX], buf[256];
        test_path(path, sizeof(path), dir, "s.prev");
        assert_true(test_read(path, buf, sizeof(buf)) > 0);
        const char *out;
        size_t out_len;
        assert_int_equal(statefile_decode(buf, strlen(buf), &out, &out_len), 0);
        assert_int_equal(out_len, 3);
        assert_memory_equal(out, "two", 3);
        test_rmdir(dir);
}

/* statefile_remove: the file and its last good copy gone, the copy first: when the file
 * cannot be removed (here a directory stands in its name), the copy is gone already, so
 * no load brings the removed file back from it. */
static void test_remove(void **state) {
        char *dir = test_mkdtemp();
        char path[PATH_MAX], prev[PATH_MAX];
        test_path(path, sizeof(path), dir, "s");
        test_path(prev, sizeof(prev), dir, "s.prev");
        assert_int_equal(statefile_save(dir, "s", "one", 3), 0);
        assert_int_equal(statefile_save(dir, "s", "two", 3), 0);
        assert_int_equal(access(prev, F_OK), 0);
        assert_int_equal(statefile_remove(dir, "s"), 0);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(access(prev, F_OK), -1);
        char *payload = NULL;
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), -ENOENT);
        assert_int_equal(statefile_remove(dir, "s"), 0); /* nothing there: fine */

        assert_int_equal(statefile_save(dir, "s", "one", 3), 0); /* no copy yet */
        assert_int_equal(statefile_remove(dir, "s"), 0);
        assert_int_equal(access(path, F_OK), -1);

        assert_int_equal(test_write(prev, "x", 1), 0);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_true(statefile_remove(dir, "s") < 0);
        assert_int_equal(access(prev, F_OK), -1);
        assert_int_equal(rmdir(path), 0);
        test_rmdir(dir);
}

static void corrupt_byte(const char *path, long offset_from_end) {
        char buf[4096];
        long n = test_read(path, buf, sizeof(buf));
        assert_true(n > offset_from_end);
        buf[n - 1 - offset_from_end] ^= 0x10;
        assert_int_equal(test_write(path, buf, (size_t) n), 0);
}

static void test_load_recovers_from_corrupt_current(void **state) {
        char *dir = test_mkdtemp();
        assert_int_equal(statefile_save(dir, "s", "good-old", 8), 0);
        assert_int_equal(statefile_save(dir, "s", "good-new", 8), 0);
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "s");
        corrupt_byte(path, 2);

        char *payload;
        size_t len;
        enum statefile_source src;
        assert_int_equal(statefile_load(dir, "s", &payload, &len, &src), 0);
        assert_int_equal(src, STATEFILE_SOURCE_PREVIOUS);
        assert_string_equal(payload, "good-old");
        free(payload);

        /* The bad file is kept aside and the good copy written back as current. */
        test_path(path, sizeof(path), dir, "s.corrupt");
        assert_true(test_exists(path));
        assert_int_equal(statefile_load(dir, "s", &payload, &len, &src), 0);
        assert_int_equal(src, STATEFILE_SOURCE_CURRENT);
        assert_string_equal(payload, "good-old");
        free(payload);
        test_rmdir(dir);
}

static void test_load_recovers_from_truncated_current(void **state) {
        char *dir = test_mkdtemp();
        assert_int_equal(statefile_save(dir, "s", "first", 5), 0);
        assert_int_equal(statefile_save(dir, "s", "second-version", 14), 0);
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "s");
        assert_int_equal(truncate(path, 20), 0);

        char *payload;
        enum statefile_source src;
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, &src), 0);
        assert_int_equal(src, STATEFILE_SOURCE_PREVIOUS);
        assert_string_equal(payload, "first");
        free(payload);
        test_rmdir(dir);
}

static void test_load_missing_current_uses_previous(void **state) {
        char *dir = test_mkdtemp();
        assert_int_equal(statefile_save(dir, "s", "a", 1), 0);
        assert_int_equal(statefile_save(dir, "s", "b", 1), 0);
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "s");
        assert_int_equal(unlink(path), 0);
        char *payload;
        enum statefile_source src;
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, &src), 0);
        assert_int_equal(src, STATEFILE_SOURCE_PREVIOUS);
        assert_string_equal(payload, "a");
        free(payload);
        assert_true(test_exists(path));
        test_rmdir(dir);
}

static void test_load_both_bad_is_an_error(void **state) {
        char *dir = test_mkdtemp();
        char *payload = NULL;
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), -ENOENT);

        assert_int_equal(statefile_save(dir, "s", "a", 1), 0);
        assert_int_equal(statefile_save(dir, "s", "b", 1), 0);
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "s");
        corrupt_byte(path, 0);
        test_path(path, sizeof(path), dir, "s.prev");
        corrupt_byte(path, 0);
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), -EBADMSG);
        assert_null(payload);
        test_rmdir(dir);
}

static void test_save_over_corrupt_current_keeps_good_previous(void **state) {
        char *dir = test_mkdtemp();
        assert_int_equal(statefile_save(dir, "s", "good", 4), 0);
        assert_int_equal(statefile_save(dir, "s", "newer", 5), 0);
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "s");
        corrupt_byte(path, 1);
        /* A save now must not rotate the corrupt file into .prev. */
        assert_int_equal(statefile_save(dir, "s", "latest", 6), 0);
        test_path(path, sizeof(path), dir, "s");
        corrupt_byte(path, 1);
        char *payload;
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), 0);
        assert_string_equal(payload, "good");
        free(payload);
        test_rmdir(dir);
}

static void test_oversized_payload_refused(void **state) {
        char *enc;
        size_t enc_len;
        assert_int_equal(statefile_encode("x", STATEFILE_MAX_PAYLOAD + 1, &enc, &enc_len), -EFBIG);
}

/* A disk that fills during a save (here a file size limit: the write fails the same way
 * as with ENOSPC, without root): the saved state stays loadable, no temp file is left. */
static void test_failed_write_keeps_the_saved_state(void **state) {
        char *dir = test_mkdtemp();
        assert_int_equal(statefile_save(dir, "s", "old", 3), 0);
        char big[2000];
        memset(big, 'x', sizeof(big));

        struct rlimit before, small = {.rlim_cur = 512, .rlim_max = RLIM_INFINITY};
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &before), 0);
        small.rlim_max = before.rlim_max;
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
        int r = statefile_save(dir, "s", big, sizeof(big));
        /* and again, as a retry would: .prev already is the current file now */
        int r2 = statefile_save(dir, "s", big, sizeof(big));
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &before), 0);
        signal(SIGXFSZ, old_handler);
        assert_int_equal(r, -EFBIG);
        assert_int_equal(r2, -EFBIG);

        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "s.tmp");
        assert_false(test_exists(path));
        test_path(path, sizeof(path), dir, "s.prev.tmp");
        assert_false(test_exists(path));
        char *payload;
        size_t len;
        enum statefile_source src;
        assert_int_equal(statefile_load(dir, "s", &payload, &len, &src), 0);
        assert_int_equal(src, STATEFILE_SOURCE_CURRENT);
        assert_string_equal(payload, "old");
        free(payload);
        /* space back: the next save goes through, the old state becomes the last good copy */
        assert_int_equal(statefile_save(dir, "s", big, sizeof(big)), 0);
        assert_int_equal(statefile_load(dir, "s", &payload, &len, &src), 0);
        assert_int_equal(len, sizeof(big));
        free(payload);
        test_rmdir(dir);
}

static void test_save_into_missing_dir_fails_cleanly(void **state) {
        assert_true(statefile_save("/nonexistent/orbit-test-dir", "s", "a", 1) < 0);
}

static void test_problems_are_kept_for_the_report(void **state) {
        struct statefile_problem ps[STATEFILE_PROBLEMS_MAX + 1];
        size_t dropped = 99;
        (void) statefile_take_problems(ps, ELEMENTSOF(ps), &dropped); /* earlier tests' */
        char *dir = test_mkdtemp();
        char path[PATH_MAX], *payload;
        /* a clean load: nothing to report */
        assert_int_equal(statefile_save(dir, "s", "a", 1), 0);
        assert_int_equal(statefile_save(dir, "s", "b", 1), 0);
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), 0);
        free(payload);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 0);
        assert_int_equal(dropped, 0);
        /* a flipped current: restored, reported once */
        test_path(path, sizeof(path), dir, "s");
        corrupt_byte(path, 5);
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), 0);
        free(payload);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 1);
        assert_string_equal(ps[0].path, path);
        assert_string_equal(ps[0].problem, "bad header or checksum");
        assert_true(ps[0].restored);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 0);
        /* both copies bad: reported as not restored */
        corrupt_byte(path, 0);
        test_path(path, sizeof(path), dir, "s.prev");
        corrupt_byte(path, 0);
        payload = NULL;
        assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), -EBADMSG);
        assert_int_equal(statefile_take_problems(ps, 1, &dropped), 1);
        assert_false(ps[0].restored);
        assert_non_null(strstr(ps[0].problem, "last good copy"));
        /* a file with no good copy is found again at every load: noted once */
        for (int i = 0; i < 5; i++)
                assert_int_equal(statefile_load(dir, "s", &payload, NULL, NULL), -EBADMSG);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 0);
        /* bounded: the rest counted */
        for (int i = 0; i < STATEFILE_PROBLEMS_MAX + 3; i++) {
                char name[32];
                snprintf(name, sizeof(name), "f%d", i);
                assert_int_equal(statefile_save(dir, name, "a", 1), 0);
                assert_int_equal(statefile_save(dir, name, "b", 1), 0);
                test_path(path, sizeof(path), dir, name);
                corrupt_byte(path, 3);
                assert_int_equal(statefile_load(dir, name, &payload, NULL, NULL), 0);
                free(payload);
        }
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), STATEFILE_PROBLEMS_MAX);
        assert_int_equal(dropped, 3);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 0);
        assert_int_equal(dropped, 0);
        test_rmdir(dir);
}

/* ---- two copies in one file -------------------------------------------------------------- */

static void flip_at(const char *path, off_t at) {
        int fd = open(path, O_RDWR);
        assert_true(fd >= 0);
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, at), 1);
        b ^= 0x08;
        assert_int_equal(pwrite(fd, &b, 1, at), 1);
        close(fd);
}

/* Every bit of a written block matters, its zeros too; a block of zeros is "never written". */
static void test_pair_block_every_bit_flip(void **state) {
        const char payload[] = "{\"format\":1,\"done\":\"ff0f\"}";
        size_t block = statefile_pair_block_size(strlen(payload));
        assert_int_equal(block, STATEFILE_PAIR_ALIGN);
        char *blk = malloc(block);
        assert_int_equal(statefile_pair_encode(1234567, payload, strlen(payload), blk, block), 0);
        uint64_t seq;
        const char *out;
        size_t len;
        assert_int_equal(statefile_pair_decode(blk, block, &seq, &out, &len), 0);
        assert_int_equal(seq, 1234567);
        assert_int_equal(len, strlen(payload));
        assert_memory_equal(out, payload, len);
        for (size_t i = 0; i < block * 8; i++) {
                blk[i / 8] ^= (char) (1 << (i % 8));
                if (statefile_pair_decode(blk, block, &seq, &out, &len) != -EBADMSG)
                        fail_msg("bit %zu flipped: not caught", i);
                blk[i / 8] ^= (char) (1 << (i % 8));
        }
        /* too small a block for the payload */
        assert_int_equal(statefile_pair_encode(1, payload, strlen(payload), blk, 64), -EFBIG);
        memset(blk, 0, block);
        assert_int_equal(statefile_pair_decode(blk, block, &seq, &out, &len), -ENODATA);
        free(blk);
}

/* Saves alternate between the blocks in place (one file, its size fixed); the newest is
 * loaded, through the same handle or after it is gone. */
static void test_pair_save_load(void **state) {
        char *dir = test_mkdtemp(), path[PATH_MAX], *payload = NULL;
        test_path(path, sizeof(path), dir, "progress");
        size_t len;
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, &len), -ENOENT);
        struct statefile_pair p = STATEFILE_PAIR_INIT;
        struct stat st0, st;
        for (int i = 0; i < 6; i++) {
                char text[32];
                snprintf(text, sizeof(text), "save %d", i);
                assert_int_equal(statefile_pair_save(&p, dir, "progress", text, strlen(text), i % 2), 0);
                assert_int_equal(stat(path, &st), 0);
                if (i == 0)
                        st0 = st;
                assert_int_equal(st.st_ino, st0.st_ino); /* in place after the first */
                assert_int_equal(st.st_size, 2 * STATEFILE_PAIR_ALIGN);
                assert_int_equal(st.st_mode & 0777, 0600);
                assert_int_equal(statefile_pair_load(dir, "progress", &payload, &len), 0);
                assert_string_equal(payload, text);
                free(payload);
        }
        statefile_pair_close(&p);
        /* a new handle writes the file anew, whatever it held, then goes on in place */
        struct statefile_pair q = STATEFILE_PAIR_INIT;
        assert_int_equal(statefile_pair_save(&q, dir, "progress", "again", 5, false), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_ino != st0.st_ino);
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, &len), 0);
        assert_string_equal(payload, "again");
        free(payload);
        /* a payload larger than the block: the file anew, with larger blocks */
        char big[6000];
        memset(big, 'x', sizeof(big));
        assert_int_equal(statefile_pair_save(&q, dir, "progress", big, sizeof(big), false), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 2 * statefile_pair_block_size(sizeof(big)));
        assert_int_equal(statefile_pair_save(&q, dir, "progress", "small", 5, false), 0);
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, &len), 0);
        assert_string_equal(payload, "small");
        free(payload);
        statefile_pair_close(&q);
        test_rmdir(dir);
}

/* A flipped bit (or a torn write) in the newest copy: the other is used and the problem
 * noted as restored; in both: no good copy, noted once; the older agent's format read. */
static void test_pair_damage(void **state) {
        struct statefile_problem ps[STATEFILE_PROBLEMS_MAX];
        size_t dropped;
        (void) statefile_take_problems(ps, ELEMENTSOF(ps), &dropped); /* earlier tests' */
        char *dir = test_mkdtemp(), path[PATH_MAX], *payload = NULL;
        test_path(path, sizeof(path), dir, "progress");
        struct statefile_pair p = STATEFILE_PAIR_INIT;
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "older", 5, true), 0);
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "newer", 5, true), 0);
        off_t newest = (off_t) ((p.seq % 2) * p.block), other = (off_t) (((p.seq + 1) % 2) * p.block);
        /* a bit in the newest's zeros */
        flip_at(path, newest + 2000);
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), 0);
        assert_string_equal(payload, "older");
        free(payload);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 1);
        assert_string_equal(ps[0].path, path);
        assert_true(ps[0].restored);
        assert_non_null(strstr(ps[0].problem, "bad header or checksum"));
        /* a job loads, then saves through its own handle: the whole file anew, good again */
        statefile_pair_close(&p);
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "newer", 5, true), 0);
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "newest", 6, false), 0);
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), 0);
        assert_string_equal(payload, "newest");
        free(payload);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 0);
        /* a torn write: the first half of the newest block from another copy */
        newest = (off_t) ((p.seq % 2) * p.block);
        other = (off_t) (((p.seq + 1) % 2) * p.block);
        {
                int fd = open(path, O_RDWR);
                char half[STATEFILE_PAIR_ALIGN / 2];
                assert_int_equal(pread(fd, half, sizeof(half), other), (ssize_t) sizeof(half));
                assert_int_equal(pwrite(fd, half, sizeof(half), newest), (ssize_t) sizeof(half));
                close(fd);
        }
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), 0);
        assert_string_equal(payload, "newer");
        free(payload);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 1);
        assert_true(ps[0].restored);
        /* both bad: no good copy, noted once however often it is loaded */
        flip_at(path, other + 20);
        for (int i = 0; i < 3; i++)
                assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), -EBADMSG);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 1);
        assert_false(ps[0].restored);
        /* ...and the handle's next save starts a good file anyway */
        statefile_pair_close(&p);
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "fresh", 5, false), 0);
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), 0);
        assert_string_equal(payload, "fresh");
        free(payload);
        statefile_pair_close(&p);
        /* not two blocks: refused (another file: this one was noted unusable above) */
        char junk[PATH_MAX];
        test_path(junk, sizeof(junk), dir, "junk");
        assert_int_equal(test_write(junk, "junk", 4), 0);
        assert_int_equal(statefile_pair_load(dir, "junk", &payload, NULL), -EBADMSG);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 1);
        assert_string_equal(ps[0].problem, "not two copies");
        /* an older agent's progress (statefile_save's format) is read */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(statefile_save(dir, "progress", "old format", 10), 0);
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), 0);
        assert_string_equal(payload, "old format");
        free(payload);
        test_rmdir(dir);
}

/* The tear failpoint (struct statefile_pair_tear): in its hook the newer copy is in part on
 * the disk, the rest of its block the older copy it overwrites; a load then (a cut there)
 * finds it corrupt and takes the other copy. After the hook the save completes. */
struct tear_seen {
        char dir[PATH_MAX];
        int calls;
        size_t written, block;
        uint64_t seq;
        char *loaded;
        size_t problems;
        bool restored;
};

static void tear_hook(void *userdata, const char *path, uint64_t seq, size_t written, size_t block) {
        struct tear_seen *t = userdata;
        struct statefile_problem ps[STATEFILE_PROBLEMS_MAX];
        size_t dropped;
        t->calls++;
        t->seq = seq;
        t->written = written;
        t->block = block;
        /* what a restarted agent would read: the file as the disk has it now */
        if (statefile_pair_load(t->dir, "progress", &t->loaded, NULL) < 0)
                t->loaded = NULL;
        t->problems = statefile_take_problems(ps, ELEMENTSOF(ps), &dropped);
        t->restored = t->problems == 1 && ps[0].restored && strstr(ps[0].path, "progress") != NULL;
        (void) path;
}

static void test_pair_tear_failpoint(void **state) {
        struct statefile_problem ps[STATEFILE_PROBLEMS_MAX];
        size_t dropped;
        (void) statefile_take_problems(ps, ELEMENTSOF(ps), &dropped); /* earlier tests' */
        char *dir = test_mkdtemp(), path[PATH_MAX], *payload = NULL;
        test_path(path, sizeof(path), dir, "progress");
        /* payloads of one letter each: the tear falls at the end of the payload */
        char a[1500], b[1500], c[1500];
        memset(a, 'a', sizeof(a) - 1), a[sizeof(a) - 1] = 0;
        memset(b, 'b', sizeof(b) - 1), b[sizeof(b) - 1] = 0;
        memset(c, 'c', sizeof(c) - 1), c[sizeof(c) - 1] = 0;
        struct tear_seen seen = {0};
        snprintf(seen.dir, sizeof(seen.dir), "%s", dir);
        struct statefile_pair_tear tear = {.fn = tear_hook, .userdata = &seen};
        struct statefile_pair p = STATEFILE_PAIR_INIT;
        /* the first save of a handle is a new file (renamed into place): it never tears */
        p.tear = &tear;
        assert_int_equal(statefile_pair_save(&p, dir, "progress", a, strlen(a), true), 0);
        assert_int_equal(seen.calls, 0);
        p.tear = NULL;
        assert_int_equal(statefile_pair_save(&p, dir, "progress", b, strlen(b), false), 0);
        /* copy 3 goes over copy 1 ("aaa..."): torn, then completed */
        p.tear = &tear;
        assert_int_equal(statefile_pair_save(&p, dir, "progress", c, strlen(c), false), 0);
        p.tear = NULL;
        assert_int_equal(seen.calls, 1);
        assert_int_equal(seen.seq, 3);
        assert_int_equal(seen.block, STATEFILE_PAIR_ALIGN);
        /* up to the last byte of 'c's, which is an 'a' on the disk */
        assert_true(seen.written > 1400 && seen.written < 1700);
        /* in the hook: the torn copy not trusted, noted as restored, copy 2 loaded */
        assert_non_null(seen.loaded);
        assert_string_equal(seen.loaded, b);
        free(seen.loaded);
        assert_int_equal(seen.problems, 1);
        assert_true(seen.restored);
        /* after it: copy 3 whole */
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), 0);
        assert_string_equal(payload, c);
        free(payload);
        assert_int_equal(statefile_take_problems(ps, ELEMENTSOF(ps), &dropped), 0);
        statefile_pair_close(&p);
        /* the size: what comes before the last difference */
        assert_int_equal(statefile_pair_tear_size("abcdef", "abXdef", 6), 2);
        assert_int_equal(statefile_pair_tear_size("abcdef", "Xbcdef", 6), 0);
        assert_int_equal(statefile_pair_tear_size("abcdef", "abcdeX", 6), 5);
        assert_int_equal(statefile_pair_tear_size("abXdeY", "abcdef", 6), 5);
        assert_int_equal(statefile_pair_tear_size("abcdef", "abcdef", 6), 0);
        test_rmdir(dir);
}

/* A block written by hand: the header's fields as given, the digest over them as written
 * (as a writer of another format would make it). */
static void pair_craft(char *blk, size_t block, const char *seq, const char *len, const char *payload,
                       size_t payload_len) {
        char covered[64], hex[SHA256_HEX_SIZE];
        snprintf(covered, sizeof(covered), "%s %s\n", seq, len);
        struct sha256_ctx c;
        uint8_t digest[SHA256_DIGEST_SIZE];
        sha256_init(&c);
        sha256_update(&c, covered, strlen(covered));
        sha256_update(&c, payload, payload_len);
        sha256_final(&c, digest);
        sha256_to_hex(digest, hex);
        memset(blk, 0, block);
        int n = snprintf(blk, block, "orbit-pair 1 %s %s %s\n", seq, len, hex);
        assert_true(n > 0 && (size_t) n + payload_len <= block);
        memcpy(blk + n, payload, payload_len);
}

/* The decoder takes exactly the blocks the encoder makes: a checksum that matches is not
 * enough for a header the writer never writes (a leading zero, a seq past 2^64-1, more
 * digits, a payload too long for the block's header room). */
static void test_pair_decode_only_what_encode_makes(void **state) {
        const size_t block = STATEFILE_PAIR_ALIGN;
        char *blk = malloc(block), *payload = malloc(block);
        memset(payload, 'p', block);
        uint64_t seq;
        const char *out;
        size_t len;
        /* as encode writes it: decodes */
        pair_craft(blk, block, "5", "100", payload, 100);
        assert_int_equal(statefile_pair_decode(blk, block, &seq, &out, &len), 0);
        assert_int_equal(seq, 5);
        assert_int_equal(len, 100);
        pair_craft(blk, block, "18446744073709551615", "100", payload, 100);
        assert_int_equal(statefile_pair_decode(blk, block, &seq, &out, &len), 0);
        assert_true(seq == UINT64_MAX);
        /* not as encode writes it */
        static const char *const bad[][2] = {
                {"05", "100"}, {"5", "0100"}, {"18446744073709551616", "100"},
                {"99999999999999999999", "100"}, {"123456789012345678901", "100"},
                {"5", "12345678901"}, {"5", "4194305"}, {"-5", "100"}, {"5", "+100"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                pair_craft(blk, block, bad[i][0], bad[i][1], payload, 100);
                if (statefile_pair_decode(blk, block, &seq, &out, &len) != -EBADMSG)
                        fail_msg("seq \"%s\", length \"%s\": decoded", bad[i][0], bad[i][1]);
        }
        /* a payload that leaves the header less room than encode keeps: encode refuses that
         * block size, so no block of it was ever written */
        size_t n = block - strlen("orbit-pair 1 5 4011 ") - SHA256_DIGEST_SIZE * 2 - 1;
        assert_int_equal(n, 4011);
        assert_int_equal(statefile_pair_encode(5, payload, n, blk, block), -EFBIG);
        pair_craft(blk, block, "5", "4011", payload, n);
        assert_int_equal(statefile_pair_decode(blk, block, &seq, &out, &len), -EBADMSG);
        free(blk);
        free(payload);
}

static uint64_t next_random(uint64_t *x) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

/* Random copies: one byte changed anywhere never decodes; a block torn at a sector between
 * the copy it held and the one written over it decodes only as one of the two. */
static void test_pair_decode_random_damage(void **state) {
        uint64_t x = 0x9e3779b97f4a7c15u;
        const size_t max_block = 3 * STATEFILE_PAIR_ALIGN;
        char *a = malloc(max_block), *b = malloc(max_block), *m = malloc(max_block);
        char *payload = malloc(max_block);
        for (int iter = 0; iter < 2000; iter++) {
                size_t len = next_random(&x) % (max_block - 128 + 1);
                size_t block = statefile_pair_block_size(len);
                uint64_t seq = next_random(&x);
                for (size_t i = 0; i < len; i++)
                        payload[i] = (char) next_random(&x);
                assert_int_equal(statefile_pair_encode(seq, payload, len, a, block), 0);
                uint64_t s;
                const char *out;
                size_t l;
                assert_int_equal(statefile_pair_decode(a, block, &s, &out, &l), 0);
                assert_true(s == seq && l == len);
                assert_memory_equal(out, payload, len);
                memcpy(m, a, block);
                size_t at = next_random(&x) % block;
                m[at] ^= (char) (1 + next_random(&x) % 255);
                if (statefile_pair_decode(m, block, &s, &out, &l) != -EBADMSG)
                        fail_msg("iteration %d: byte %zu of %zu changed, decoded", iter, at, block);
                /* the next copy of this block: seq + 2, a payload one byte different */
                if (len > 0)
                        payload[next_random(&x) % len] ^= 0x20;
                assert_int_equal(statefile_pair_encode(seq + 2, payload, len, b, block), 0);
                size_t tear = 512 * (1 + next_random(&x) % (block / 512 - 1));
                for (int k = 0; k < 2; k++) {
                        memcpy(m, k ? b : a, tear);
                        memcpy(m + tear, (k ? a : b) + tear, block - tear);
                        if (statefile_pair_decode(m, block, &s, &out, &l) == 0 && memcmp(m, a, block) != 0 &&
                            memcmp(m, b, block) != 0)
                                fail_msg("iteration %d: torn at %zu, decoded as neither copy", iter, tear);
                }
        }
        free(a);
        free(b);
        free(m);
        free(payload);
}

/* Flushes of the pair file, counted (the test is linked with --wrap=fdatasync). */
static unsigned pair_flushes;
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd) {
        pair_flushes++;
        return __real_fdatasync(fd);
}

/* A flushing save after one that was not makes that copy durable first, by a flush of
 * its own, before it overwrites the other: the two copies are never both in the disk's
 * cache, even where the caller's flush in between did not reach the disk. */
static void test_pair_flush_order(void **state) {
        char *dir = test_mkdtemp(), *payload = NULL;
        struct statefile_pair p = STATEFILE_PAIR_INIT;
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "first", 5, true), 0); /* file anew */
        pair_flushes = 0;
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "flushed", 7, true), 0);
        assert_int_equal(pair_flushes, 1);
        assert_false(p.unflushed);
        pair_flushes = 0;
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "in cache", 8, false), 0);
        assert_int_equal(pair_flushes, 0);
        assert_true(p.unflushed);
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "in cache too", 12, false), 0);
        assert_int_equal(pair_flushes, 0); /* the caller flushes between these (the slot's sync) */
        assert_int_equal(statefile_pair_save(&p, dir, "progress", "last", 4, true), 0);
        assert_int_equal(pair_flushes, 2); /* the copy before it, then its own */
        assert_false(p.unflushed);
        assert_int_equal(statefile_pair_load(dir, "progress", &payload, NULL), 0);
        assert_string_equal(payload, "last");
        free(payload);
        statefile_pair_close(&p);
        test_rmdir(dir);
}

/* A file and the directory it is in share their disk; a virtual filesystem has none. */
static void test_same_disk(void **state) {
        char *dir = test_mkdtemp(), path[PATH_MAX];
        test_path(path, sizeof(path), dir, "slot");
        assert_int_equal(test_write(path, "x", 1), 0);
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        assert_true(same_disk(fd, dir, "/sys"));
        assert_false(same_disk(fd, "/proc", "/sys"));
        close(fd);
        fd = open("/proc/self/status", O_RDONLY);
        assert_false(same_disk(fd, dir, "/sys"));
        close(fd);
        test_rmdir(dir);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path);
}

/* A sysfs entry of the test's own tree: dev/block/M:m links to a device directory, with a
 * "partition" file when it is a partition. */
static void fake_block(const char *sys, unsigned ma, unsigned mi, const char *device, bool partition) {
        char path[PATH_MAX], link[PATH_MAX], target[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", sys, device);
        assert_int_equal(mkdir_parents(path, 0755), 0);
        if (partition) {
                snprintf(path, sizeof(path), "%s/%s/partition", sys, device);
                assert_int_equal(test_write(path, "2\n", 2), 0);
        }
        snprintf(path, sizeof(path), "%s/dev/block", sys);
        assert_int_equal(mkdir_parents(path, 0755), 0);
        snprintf(link, sizeof(link), "%s/dev/block/%u:%u", sys, ma, mi);
        snprintf(target, sizeof(target), "../../%s", device);
        assert_int_equal(symlink(target, link), 0);
}

/* A slot that is a block device: the same disk as the work dir's filesystem only when sysfs
 * puts both under one disk (a partition's parent, or the disk itself). Another disk, a
 * device mapper, a device sysfs does not know: not the same (each flushed on its own). */
static void test_same_disk_block_slot(void **state) {
        char *dir = test_mkdtemp(), sys[PATH_MAX], node[PATH_MAX];
        struct stat st;
        assert_int_equal(stat(dir, &st), 0);
        if (major(st.st_dev) == 0 || major(st.st_dev) == 240) {
                test_rmdir(dir);
                skip(); /* the temp dir is on no disk (tmpfs, overlay): nothing to compare */
        }
        snprintf(sys, sizeof(sys), "%s/sys", dir);
        /* the work dir (the temp dir's filesystem): partition 2 of disk "a" */
        fake_block(sys, major(st.st_dev), minor(st.st_dev), "devices/platform/a/block/a/a2", true);
        fake_block(sys, 240, 3, "devices/platform/a/block/a/a3", true);
        fake_block(sys, 240, 0, "devices/platform/a/block/a", false);
        fake_block(sys, 240, 17, "devices/platform/b/block/b/b1", true);
        fake_block(sys, 240, 16, "devices/platform/b/block/b", false);
        fake_block(sys, 240, 32, "devices/virtual/block/dm-0", false);
        static const struct {
                unsigned minor;
                bool same;
        } cases[] = {{3, true}, {0, true}, {17, false}, {16, false}, {32, false}, {99, false}};
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(node, sizeof(node), "%s/node-%u", dir, cases[i].minor);
                if (mknod(node, S_IFBLK | 0600, makedev(240, cases[i].minor)) < 0) {
                        assert_int_equal(errno, EPERM);
                        assert_int_equal(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
                        free(dir);
                        skip(); /* not root: no device node to open */
                }
                int fd = open(node, O_PATH | O_CLOEXEC);
                assert_true(fd >= 0);
                if (same_disk(fd, dir, sys) != cases[i].same)
                        fail_msg("slot 240:%u: same disk %s, expected %s", cases[i].minor,
                                 cases[i].same ? "false" : "true", cases[i].same ? "true" : "false");
                close(fd);
        }
        assert_int_equal(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(dir);
}

/* A JSON document is saved as its compact text; loading gives that text back. */
static void test_save_json_roundtrip(void **state) {
        char *dir = test_mkdtemp();
        assert_non_null(dir);
        json_t *doc = json_pack("{s:i, s:[s, s]}", "format", 1, "names", "a", "b");
        assert_non_null(doc);
        assert_int_equal(statefile_save_json(dir, "doc", doc), 0);
        json_decref(doc);

        char *payload;
        size_t len;
        assert_int_equal(statefile_load(dir, "doc", &payload, &len, NULL), 0);
        assert_string_equal(payload, "{\"format\":1,\"names\":[\"a\",\"b\"]}");
        assert_int_equal(len, strlen(payload));
        free(payload);
        test_rmdir(dir);
}

int main(void) {
        log_set_max_level(LOG_CRIT); /* the recovery paths log errors on purpose */
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encode_decode_roundtrip),
                cmocka_unit_test(test_problems_are_kept_for_the_report),
                cmocka_unit_test(test_decode_empty_payload),
                cmocka_unit_test(test_decode_rejects_every_single_bit_flip),
                cmocka_unit_test(test_decode_truncated_at_every_length),
                cmocka_unit_test(test_decode_rejects_trailing_garbage_and_bad_headers),
                cmocka_unit_test(test_save_load_roundtrip),
                cmocka_unit_test(test_save_json_roundtrip),
                cmocka_unit_test(test_save_keeps_previous_good_copy),
                cmocka_unit_test(test_remove),
                cmocka_unit_test(test_load_recovers_from_corrupt_current),
                cmocka_unit_test(test_load_recovers_from_truncated_current),
                cmocka_unit_test(test_load_missing_current_uses_previous),
                cmocka_unit_test(test_load_both_bad_is_an_error),
                cmocka_unit_test(test_save_over_corrupt_current_keeps_good_previous),
                cmocka_unit_test(test_oversized_payload_refused),
                cmocka_unit_test(test_failed_write_keeps_the_saved_state),
                cmocka_unit_test(test_save_into_missing_dir_fails_cleanly),
                cmocka_unit_test(test_pair_block_every_bit_flip),
                cmocka_unit_test(test_pair_save_load),
                cmocka_unit_test(test_pair_damage),
                cmocka_unit_test(test_pair_tear_failpoint),
                cmocka_unit_test(test_pair_flush_order),
                cmocka_unit_test(test_pair_decode_only_what_encode_makes),
                cmocka_unit_test(test_pair_decode_random_damage),
                cmocka_unit_test(test_same_disk),
                cmocka_unit_test(test_same_disk_block_slot),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
