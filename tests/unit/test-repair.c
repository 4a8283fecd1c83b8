/* Unit tests for the repair of a slot from its bundle: the range plan (pure) and the
 * chunks fetched, checked, written and read back (on plain files). */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "update/bundle.h"
#include "update/install.h"
#include "update/manifest.h"
#include "update/repair.h"
#include "test-util.h"

#define CHUNK 4096
#define N_CHUNKS 20
#define SIZE (N_CHUNKS * CHUNK - 100) /* the last chunk is short */

/* ---- the plan ------------------------------------------------------------------------ */

static struct manifest_image plan_image(uint64_t chunk_size, uint64_t size) {
        return (struct manifest_image){.chunk_size = chunk_size,
                                       .size = size,
                                       .n_chunks = (size + chunk_size - 1) / chunk_size};
}

static void set_bits(uint8_t *map, const uint64_t *bits, size_t n) {
        for (size_t i = 0; i < n; i++)
                install_bitmap_set(map, bits[i], true);
}

static void test_plan_nothing_bad(void **state) {
        struct manifest_image img = plan_image(CHUNK, SIZE);
        uint8_t bad[3] = {0};
        struct repair_range r[4];
        bool more = true;
        assert_int_equal(repair_plan(&img, bad, 0, r, 4, &more), 0);
        assert_false(more);
}

static void test_plan_merges_adjacent(void **state) {
        struct manifest_image img = plan_image(CHUNK, SIZE);
        uint8_t bad[3] = {0};
        /* 2, 3, 4 adjacent; 7 alone; 18, 19 adjacent and 19 the short last chunk */
        set_bits(bad, (uint64_t[]){2, 3, 4, 7, 18, 19}, 6);
        struct repair_range r[8];
        assert_int_equal(repair_plan(&img, bad, 0, r, 8, NULL), 3);
        assert_int_equal(r[0].first, 2);
        assert_int_equal(r[0].count, 3);
        assert_int_equal(r[0].offset, 2 * CHUNK);
        assert_int_equal(r[0].length, 3 * CHUNK);
        assert_int_equal(r[1].first, 7);
        assert_int_equal(r[1].count, 1);
        assert_int_equal(r[1].length, CHUNK);
        assert_int_equal(r[2].first, 18);
        assert_int_equal(r[2].count, 2);
        assert_int_equal(r[2].offset, 18 * CHUNK);
        assert_int_equal(r[2].length, SIZE - 18 * CHUNK); /* ends at the image's end */
}

static void test_plan_bounds(void **state) {
        struct manifest_image img = plan_image(CHUNK, SIZE);
        uint8_t bad[3] = {0};
        for (uint64_t i = 0; i < N_CHUNKS; i++)
                install_bitmap_set(bad, i, true);
        struct repair_range r[32];
        /* a run longer than a range may be: cut into ranges of 3 chunks */
        assert_int_equal(repair_plan(&img, bad, 3 * CHUNK + 10, r, 32, NULL), 7);
        for (int k = 0; k < 6; k++) {
                assert_int_equal(r[k].first, 3 * k);
                assert_int_equal(r[k].count, 3);
                assert_int_equal(r[k].length, 3 * CHUNK);
        }
        assert_int_equal(r[6].first, 18);
        assert_int_equal(r[6].count, 2);
        /* a limit below one chunk still fetches whole chunks, one per range */
        assert_int_equal(repair_plan(&img, bad, 100, r, 32, NULL), N_CHUNKS);
        assert_int_equal(r[5].first, 5);
        assert_int_equal(r[5].length, CHUNK);
        /* no room for every range: the first ones, and says so */
        bool more = false;
        assert_int_equal(repair_plan(&img, bad, CHUNK, r, 4, &more), 4);
        assert_true(more);
        assert_int_equal(r[3].first, 3);
}

static void test_plan_refuses_foreign_bitmap(void **state) {
        struct manifest_image img = plan_image(CHUNK, SIZE);
        uint8_t bad[3] = {0};
        install_bitmap_set(bad, N_CHUNKS + 1, true); /* past the last chunk */
        struct repair_range r[4];
        assert_int_equal(repair_plan(&img, bad, 0, r, 4, NULL), -EINVAL);
        /* chunks that do not cover the size */
        struct manifest_image odd = {.chunk_size = CHUNK, .size = SIZE, .n_chunks = N_CHUNKS + 1};
        memset(bad, 0, sizeof(bad));
        assert_int_equal(repair_plan(&odd, bad, 0, r, 4, NULL), -EINVAL);
        struct manifest_image zero = {.chunk_size = 0, .size = SIZE, .n_chunks = N_CHUNKS};
        assert_int_equal(repair_plan(&zero, bad, 0, r, 4, NULL), -EINVAL);
}

/* ---- the repair ---------------------------------------------------------------------- */

struct fixture {
        char *dir;
        char image_path[512], slot_path[512];
        uint8_t image[SIZE];
        struct manifest_image img;
        unsigned reads;
        uint64_t read_offsets[64], read_lengths[64];
        int64_t corrupt_chunk; /* -1: the source serves the image as it is */
        int fail_with;         /* nonzero: every read fails with it */
        atomic_int cancel;
};

static int source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct fixture *f = userdata;
        assert_true(offset + len <= SIZE);
        if (f->fail_with)
                return f->fail_with;
        if (f->reads < 64) {
                f->read_offsets[f->reads] = offset;
                f->read_lengths[f->reads] = len;
        }
        f->reads++;
        memcpy(buf, f->image + offset, len);
        if (f->corrupt_chunk >= 0 && (uint64_t)f->corrupt_chunk * CHUNK >= offset &&
            (uint64_t)f->corrupt_chunk * CHUNK < offset + len)
                ((uint8_t *)buf)[(uint64_t)f->corrupt_chunk * CHUNK - offset + 7] ^= 0x20;
        return 0;
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        f->dir = test_mkdtemp();
        assert_non_null(f->dir);
        snprintf(f->image_path, sizeof(f->image_path), "%s/image", f->dir);
        snprintf(f->slot_path, sizeof(f->slot_path), "%s/slot", f->dir);
        unsigned seed = 7;
        for (size_t i = 0; i < SIZE; i++) {
                seed = seed * 1103515245u + 12345u;
                f->image[i] = (uint8_t)(seed >> 16);
        }
        assert_int_equal(write_file_durable(f->image_path, f->image, SIZE, 0644), 0);
        assert_int_equal(write_file_durable(f->slot_path, f->image, SIZE, 0644), 0);
        char *reason = NULL;
        if (bundle_hash_image(f->image_path, "rootfs", CHUNK, &f->img, &reason) < 0)
                fail_msg("%s", reason);
        f->corrupt_chunk = -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        (void)unlink(f->image_path);
        (void)unlink(f->slot_path);
        (void)rmdir(f->dir);
        free(f->dir);
        free(f->img.slot_class);
        free(f->img.file);
        free(f->img.chunks);
        free(f);
        return 0;
}

/* Damage chunk i of the slot (one byte). */
static void damage(struct fixture *f, uint64_t i) {
        int fd = open(f->slot_path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, (off_t)(i * CHUNK + 3)), 1);
        b ^= 0x01;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)(i * CHUNK + 3)), 1);
        close(fd);
}

static bool slot_chunk_is(struct fixture *f, uint64_t i, bool good) {
        _cleanup_free_ char *data = NULL;
        size_t n;
        assert_int_equal(read_file_bounded(f->slot_path, SIZE * 2, &data, &n), 0);
        assert_int_equal(n, SIZE);
        size_t len = manifest_chunk_length(&f->img, i);
        return (memcmp(data + i * CHUNK, f->image + i * CHUNK, len) == 0) == good;
}

static struct install_request request(struct fixture *f, int fd) {
        return (struct install_request){
                .image = &f->img,
                .slot_fd = fd,
                .active_fd = -1,
                .source = {.read = source_read, .userdata = f},
                .cancel = &f->cancel,
                .slot_path = f->slot_path,
        };
}

static void test_repair_fetches_only_bad_chunks(void **state) {
        struct fixture *f = *state;
        uint8_t bad[3] = {0};
        set_bits(bad, (uint64_t[]){4, 5, 11, 19}, 4);
        damage(f, 4);
        damage(f, 5);
        damage(f, 11);
        damage(f, 19);
        int fd = open(f->slot_path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        struct install_request req = request(f, fd);
        struct repair_stats st;
        char *reason = NULL;
        assert_int_equal(repair_chunks(&req, bad, 0, &st, &reason), 0);
        assert_null(reason);
        close(fd);
        assert_int_equal(st.chunks_wanted, 4);
        assert_int_equal(st.chunks_fetched, 4);
        assert_int_equal(st.chunks_written, 4);
        assert_int_equal(st.chunks_refused, 0);
        assert_int_equal(st.first_refused, -1);
        /* three ranges: 4-5 merged, 11, and the short tail */
        assert_int_equal(f->reads, 3);
        assert_int_equal(st.ranges, 3);
        assert_int_equal(f->read_offsets[0], 4 * CHUNK);
        assert_int_equal(f->read_lengths[0], 2 * CHUNK);
        assert_int_equal(f->read_offsets[1], 11 * CHUNK);
        assert_int_equal(f->read_lengths[1], CHUNK);
        assert_int_equal(f->read_offsets[2], 19 * CHUNK);
        assert_int_equal(f->read_lengths[2], SIZE - 19 * CHUNK);
        assert_int_equal(st.bytes_fetched, 3 * CHUNK + SIZE - 19 * CHUNK);
        char *data;
        size_t n;
        assert_int_equal(read_file_bounded(f->slot_path, SIZE * 2, &data, &n), 0);
        assert_memory_equal(data, f->image, SIZE);
        free(data);
}

static void test_repair_refuses_wrong_bytes(void **state) {
        struct fixture *f = *state;
        uint8_t bad[3] = {0};
        set_bits(bad, (uint64_t[]){8, 9}, 2);
        damage(f, 8);
        damage(f, 9);
        /* chunk 9 is wrong at the source; 8, in the same range, is right */
        f->corrupt_chunk = 9;
        /* the damaged slot's chunk 9 as it is now: must stay so */
        _cleanup_free_ char *before = NULL;
        size_t n;
        assert_int_equal(read_file_bounded(f->slot_path, SIZE * 2, &before, &n), 0);
        int fd = open(f->slot_path, O_RDWR | O_CLOEXEC);
        struct install_request req = request(f, fd);
        struct repair_stats st;
        char *reason = NULL;
        assert_int_equal(repair_chunks(&req, bad, 0, &st, &reason), 0);
        close(fd);
        assert_int_equal(st.chunks_fetched, 1);
        assert_int_equal(st.chunks_written, 1);
        assert_int_equal(st.chunks_refused, 1);
        assert_int_equal(st.first_refused, 9);
        assert_true(slot_chunk_is(f, 8, true));
        assert_true(slot_chunk_is(f, 9, false));
        _cleanup_free_ char *after = NULL;
        assert_int_equal(read_file_bounded(f->slot_path, SIZE * 2, &after, &n), 0);
        assert_memory_equal(after + 9 * CHUNK, before + 9 * CHUNK, CHUNK); /* untouched */
        /* every other chunk untouched and good */
        for (uint64_t i = 0; i < N_CHUNKS; i++)
                if (i != 9)
                        assert_true(slot_chunk_is(f, i, true));
}

static void test_repair_source_fails(void **state) {
        struct fixture *f = *state;
        uint8_t bad[3] = {0};
        set_bits(bad, (uint64_t[]){1, 12}, 2);
        damage(f, 1);
        damage(f, 12);
        f->fail_with = -ENOENT; /* the bundle is gone */
        int fd = open(f->slot_path, O_RDWR | O_CLOEXEC);
        struct install_request req = request(f, fd);
        struct repair_stats st;
        char *reason = NULL;
        assert_int_equal(repair_chunks(&req, bad, 0, &st, &reason), -ENOENT);
        assert_non_null(reason);
        assert_non_null(strstr(reason, "chunks 1-1"));
        free(reason);
        reason = NULL;
        assert_int_equal(st.chunks_written, 0);
        assert_true(slot_chunk_is(f, 1, false));
        /* no source at all */
        req.source.read = NULL;
        assert_int_equal(repair_chunks(&req, bad, 0, &st, &reason), -ENOENT);
        assert_non_null(strstr(reason, "no source to repair from"));
        free(reason);
        reason = NULL;
        /* cancelled: nothing read */
        f->fail_with = 0;
        req.source.read = source_read;
        f->cancel = 1;
        assert_int_equal(repair_chunks(&req, bad, 0, &st, &reason), -ECANCELED);
        free(reason);
        assert_int_equal(f->reads, 0);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plan_nothing_bad),
                cmocka_unit_test(test_plan_merges_adjacent),
                cmocka_unit_test(test_plan_bounds),
                cmocka_unit_test(test_plan_refuses_foreign_bitmap),
                cmocka_unit_test_setup_teardown(test_repair_fetches_only_bad_chunks, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_repair_refuses_wrong_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repair_source_fails, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
