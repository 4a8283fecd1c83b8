/* Unit tests for the install engine on plain files: fresh, delta, resume, repair, refusal, cancel. */
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

#include <ftw.h>

#include "update/bundle.h"
#include "lib/fileio.h"
#include "update/install.h"
#include "update/manifest.h"
#include "update/slot.h"
#include "test-util.h"

#define CHUNK 4096
#define N_CHUNKS 40
#define SIZE (N_CHUNKS * CHUNK - 1000) /* the last chunk is short */

struct fixture {
        char *dir;
        char image_path[512], slot_path[512], active_path[512];
        uint8_t image[SIZE], active[SIZE];
        struct manifest_image img;
        /* what the source was asked for */
        uint64_t source_reads, source_bytes;
        int fail_source_at; /* -1: never */
        bool corrupt_source_chunk_7;
        unsigned checkpoints;
        unsigned checkpoints_flushed; /* asked to be durable on return */
        bool last_flushed;            /* the latest checkpoint was */
        int checkpoint_error;
        unsigned checkpoints_before_error; /* that succeed before checkpoint_error applies */
        bool record_in_cache;              /* the latest checkpoint was not flushed */
        unsigned syncs_at_record;          /* slot syncs when it was made */
        unsigned both_in_cache; /* checkpoints made with no slot sync since one not flushed */
        uint8_t saved[(N_CHUNKS + 7) / 8]; /* the bitmap of the last checkpoint that succeeded */
        atomic_int cancel;
        uint64_t cancel_after_bytes;
};

static int source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct fixture *f = userdata;
        assert_true(offset + len <= SIZE);
        if (f->fail_source_at >= 0 && offset / CHUNK == (uint64_t) f->fail_source_at)
                return -EIO;
        memcpy(buf, f->image + offset, len);
        if (f->corrupt_source_chunk_7 && offset / CHUNK == 7)
                ((uint8_t *) buf)[10] ^= 0x40;
        f->source_reads++;
        f->source_bytes += len;
        if (f->cancel_after_bytes && f->source_bytes >= f->cancel_after_bytes)
                f->cancel = 1;
        return 0;
}

/* The slot's syncs, counted (the test is linked with --wrap=fdatasync): a checkpoint that
 * was not flushed must be followed by one before the next checkpoint overwrites the other
 * copy of the record (lib/statefile.h), else a power cut can find both in the disk's cache. */
static atomic_uint slot_syncs;
static atomic_int counted_fd = -1;
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd) {
        if (fd == atomic_load(&counted_fd))
                atomic_fetch_add(&slot_syncs, 1);
        return __real_fdatasync(fd);
}

static int checkpoint(void *userdata, const uint8_t *done, const struct install_stats *st, bool flush) {
        struct fixture *f = userdata;
        unsigned syncs = atomic_load(&slot_syncs);
        if (f->record_in_cache && syncs == f->syncs_at_record)
                f->both_in_cache++;
        f->record_in_cache = !flush;
        f->syncs_at_record = syncs;
        f->checkpoints++;
        f->checkpoints_flushed += flush;
        f->last_flushed = flush;
        if (f->checkpoint_error && f->checkpoints > f->checkpoints_before_error)
                return f->checkpoint_error;
        memcpy(f->saved, done, sizeof(f->saved));
        return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed) {
        for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                p[i] = (uint8_t) (seed >> 16);
        }
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        f->dir = test_mkdtemp();
        assert_non_null(f->dir);
        snprintf(f->image_path, sizeof(f->image_path), "%s/image", f->dir);
        snprintf(f->slot_path, sizeof(f->slot_path), "%s/slot-b", f->dir);
        snprintf(f->active_path, sizeof(f->active_path), "%s/slot-a", f->dir);
        fill(f->image, SIZE, 1);
        /* The active slot holds an older image: the same except chunks 3, 17 and 39, and
         * chunk 20's content moved to chunk 25 (found by hash, not position). */
        memcpy(f->active, f->image, SIZE);
        fill(f->active + 3 * CHUNK, CHUNK, 2);
        fill(f->active + 17 * CHUNK, CHUNK, 3);
        fill(f->active + 39 * CHUNK, SIZE - 39 * CHUNK, 4);
        fill(f->active + 20 * CHUNK, CHUNK, 5);
        memcpy(f->active + 25 * CHUNK, f->image + 20 * CHUNK, CHUNK);
        fill(f->image + 25 * CHUNK, CHUNK, 6); /* ...and chunk 25 of the new image is new */
        assert_int_equal(write_file_durable(f->image_path, f->image, SIZE, 0644), 0);
        assert_int_equal(write_file_durable(f->active_path, f->active, SIZE, 0644), 0);
        char *reason = NULL;
        int r = bundle_hash_image(f->image_path, "rootfs", CHUNK, &f->img, &reason);
        if (r < 0)
                fail_msg("%s", reason);
        assert_int_equal(f->img.n_chunks, N_CHUNKS);
        f->fail_source_at = -1;
        *state = f;
        return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path);
}

static int teardown(void **state) {
        struct fixture *f = *state;
        assert_int_equal(nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(f->dir);
        free(f->img.slot_class);
        free(f->img.file);
        free(f->img.chunks);
        free(f);
        return 0;
}

static struct install_request request(struct fixture *f, int slot_fd, uint8_t *done) {
        return (struct install_request){
                .image = &f->img,
                .slot_fd = slot_fd,
                .active_fd = -1,
                .source = {.read = source_read, .userdata = f},
                .done = done,
                .checkpoint = checkpoint,
                .userdata = f,
                .checkpoint_bytes = 5 * CHUNK,
                .cancel = &f->cancel,
        };
}

static void assert_slot_is_image(struct fixture *f) {
        char *data;
        size_t n;
        assert_int_equal(read_file_bounded(f->slot_path, SIZE * 2, &data, &n), 0);
        assert_int_equal(n, SIZE);
        assert_memory_equal(data, f->image, SIZE);
        free(data);
}

static void test_fresh_install(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        struct install_request req = request(f, fd, done);
        struct install_stats st;
        int r = install_image(&req, &st, &reason);
        if (r < 0)
                fail_msg("%s", reason);
        close(fd);
        assert_int_equal(st.chunks_total, N_CHUNKS);
        assert_int_equal(st.chunks_from_source, N_CHUNKS);
        assert_int_equal(st.bytes_from_source, SIZE);
        assert_int_equal(st.bytes_written, SIZE);
        assert_int_equal(st.bytes_done, SIZE);
        assert_int_equal(install_bitmap_count(done, N_CHUNKS), N_CHUNKS);
        assert_true(f->checkpoints >= N_CHUNKS / 5);
        assert_slot_is_image(f);
}

/* A record on the slot's disk rides the next sync's flush: only a pass's last checkpoint
 * must flush on its own (after a source that failed too). Elsewhere every one must. */
static void test_checkpoint_flush(void **state) {
        struct fixture *f = *state;
        for (int on_slot_disk = 0; on_slot_disk < 2; on_slot_disk++) {
                for (int fail = 0; fail < 2; fail++) {
                        int fd;
                        char *reason = NULL;
                        (void) unlink(f->slot_path);
                        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
                        uint8_t done[install_bitmap_size(N_CHUNKS)];
                        memset(done, 0, sizeof(done));
                        f->checkpoints = f->checkpoints_flushed = f->both_in_cache = 0;
                        f->record_in_cache = false;
                        f->fail_source_at = fail ? 23 : -1;
                        atomic_store(&counted_fd, fd);
                        struct install_request req = request(f, fd, done);
                        req.checkpoint_on_slot_disk = on_slot_disk;
                        struct install_stats st;
                        int r = install_image(&req, &st, &reason);
                        atomic_store(&counted_fd, -1);
                        close(fd);
                        assert_int_equal(f->both_in_cache, 0);
                        assert_int_equal(r, fail ? -EIO : 0);
                        free(reason);
                        assert_true(f->checkpoints >= (fail ? 4u : N_CHUNKS / 5));
                        assert_true(f->last_flushed);
                        assert_int_equal(f->checkpoints_flushed, on_slot_disk ? 1 : f->checkpoints);
                        /* what the last one recorded: every chunk written, up to the failure */
                        assert_int_equal(install_bitmap_count(f->saved, N_CHUNKS), fail ? 23 : N_CHUNKS);
                }
        }
}

/* A pass whose last chunks were all handed to the syncer ends with a checkpoint that has
 * nothing left to sync (here every chunk is a checkpoint of its own): the slot is synced
 * all the same, so the record the syncer left in the disk's cache is flushed before the
 * last one overwrites the other copy. Also after a cancel. */
static void test_checkpoint_nothing_left_to_sync(void **state) {
        struct fixture *f = *state;
        for (int cancel = 0; cancel < 2; cancel++) {
                int fd;
                char *reason = NULL;
                (void) unlink(f->slot_path);
                assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
                uint8_t done[install_bitmap_size(N_CHUNKS)];
                memset(done, 0, sizeof(done));
                f->checkpoints = f->checkpoints_flushed = f->both_in_cache = 0;
                f->record_in_cache = false;
                f->cancel = 0;
                f->source_bytes = 0;
                f->cancel_after_bytes = cancel ? 12 * CHUNK : 0;
                atomic_store(&counted_fd, fd);
                struct install_request req = request(f, fd, done);
                req.checkpoint_on_slot_disk = true;
                req.checkpoint_bytes = 1;
                struct install_stats st;
                int r = install_image(&req, &st, &reason);
                atomic_store(&counted_fd, -1);
                close(fd);
                assert_int_equal(r, cancel ? -ECANCELED : 0);
                free(reason);
                assert_true(f->checkpoints >= (cancel ? 4u : N_CHUNKS));
                assert_true(f->last_flushed);
                assert_int_equal(f->checkpoints_flushed, 1);
                assert_int_equal(f->both_in_cache, 0);
                if (!cancel)
                        assert_int_equal(install_bitmap_count(f->saved, N_CHUNKS), N_CHUNKS);
        }
}

static void test_delta_from_active(void **state) {
        struct fixture *f = *state;
        int fd, afd;
        uint64_t asize;
        char *reason = NULL;
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        assert_int_equal(slot_open_read(f->active_path, &afd, &asize, &reason), 0);
        assert_int_equal(asize, SIZE);
        /* by scanning the active slot (what a factory image needs) */
        struct install_index *ix;
        assert_int_equal(install_index_scan(afd, asize, CHUNK, NULL, &ix), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        struct install_request req = request(f, fd, done);
        req.active_fd = afd;
        req.active = ix;
        struct install_stats st;
        assert_int_equal(install_image(&req, &st, &reason), 0);
        /* changed: 3, 17, 20 (moved away... its content is at 25 in the active slot, so
         * found), 25 (new), 39 (the short tail never matches a whole-chunk scan) */
        assert_int_equal(st.chunks_from_source, 4);
        assert_int_equal(f->source_reads, 4);
        assert_int_equal(st.bytes_from_source, 3 * CHUNK + (SIZE - 39 * CHUNK));
        assert_int_equal(st.chunks_from_active, N_CHUNKS - 4);
        assert_slot_is_image(f);
        install_index_free(ix);

        /* by the active slot's manifest: the same result, no scan */
        struct manifest_image old;
        assert_int_equal(bundle_hash_image(f->active_path, "rootfs", CHUNK, &old, &reason), 0);
        assert_int_equal(install_index_from_image(&old, &ix), 0);
        /* a wrong record must not poison the slot: claim chunk 3's new hash is at chunk 0 */
        memcpy(old.chunks[0], f->img.chunks[3], 32);
        install_index_free(ix);
        assert_int_equal(install_index_from_image(&old, &ix), 0);
        assert_int_equal(install_index_lookup(ix, f->img.chunks[3]), 0);
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(ftruncate(fd, SIZE), 0);
        memset(done, 0, sizeof(done));
        f->source_reads = 0;
        req.active = ix;
        assert_int_equal(install_image(&req, &st, &reason), 0);
        /* chunk 3 was checked after reading it from the active slot, found wrong, and
         * fetched from the source: 4 changed chunks + the bad record; tail included */
        assert_int_equal(st.chunks_from_source, 5);
        assert_slot_is_image(f);
        install_index_free(ix);
        free(old.slot_class);
        free(old.file);
        free(old.chunks);
        close(fd);
        close(afd);
}

/* A scan kept as bytes (the agent's slot-<class>-<slot>.scan) and read back: the same
 * lookups, and an install from it the same as from the scan; bytes of another scan, or
 * no scan's, refused with the reason. */
static void test_index_kept(void **state) {
        struct fixture *f = *state;
        int fd, afd;
        uint64_t asize;
        char *reason = NULL;
        assert_int_equal(slot_open_read(f->active_path, &afd, &asize, &reason), 0);
        struct install_index *ix, *back;
        assert_int_equal(install_index_scan(afd, asize, CHUNK, NULL, &ix), 0);
        uint8_t *bytes;
        size_t len;
        assert_int_equal(install_index_encode(ix, CHUNK, asize, &bytes, &len), 0);
        char *why = NULL;
        assert_int_equal(install_index_decode(bytes, len, CHUNK, asize, &back, &why), 0);
        assert_int_equal(install_index_count(back), install_index_count(ix));
        assert_true(install_index_count(ix) > 0);
        for (uint64_t i = 0; i < N_CHUNKS; i++)
                assert_int_equal(install_index_lookup(back, f->img.chunks[i]), install_index_lookup(ix, f->img.chunks[i]));
        install_index_free(ix);

        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        struct install_request req = request(f, fd, done);
        req.active_fd = afd;
        req.active = back;
        struct install_stats st;
        assert_int_equal(install_image(&req, &st, &reason), 0);
        assert_int_equal(st.chunks_from_source, 4); /* as test_delta_from_active's scan */
        assert_int_equal(st.chunks_from_active, N_CHUNKS - 4);
        assert_slot_is_image(f);
        install_index_free(back);

        /* another chunk size, another size: not this scan */
        assert_int_equal(install_index_decode(bytes, len, CHUNK * 2, asize, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "not"));
        free(why);
        why = NULL;
        assert_int_equal(install_index_decode(bytes, len, CHUNK, asize - CHUNK, &back, &why), -EBADMSG);
        free(why);
        why = NULL;
        /* cut short, a byte more, no header, a chunk past the scanned ones */
        assert_int_equal(install_index_decode(bytes, len - 1, CHUNK, asize, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "bytes for"));
        free(why);
        why = NULL;
        uint8_t *more = malloc(len + 1);
        assert_non_null(more);
        memcpy(more, bytes, len);
        more[len] = 0;
        assert_int_equal(install_index_decode(more, len + 1, CHUNK, asize, &back, &why), -EBADMSG);
        free(why);
        why = NULL;
        free(more);
        assert_int_equal(install_index_decode("orbit-scan 2 chunk_size=1\n", 26, CHUNK, asize, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "not a scan's index"));
        free(why);
        why = NULL;
        assert_int_equal(install_index_decode(bytes, 10, CHUNK, asize, &back, &why), -EBADMSG);
        free(why);
        why = NULL;
        uint8_t *nl = memchr(bytes, '\n', len);
        nl[1 + 32 + 7] = 0x40; /* the first pair's chunk, high byte */
        assert_int_equal(install_index_decode(bytes, len, CHUNK, asize, &back, &why), -EBADMSG);
        assert_non_null(strstr(why, "pair 0: chunk"));
        free(why);
        free(bytes);
        close(fd);
        close(afd);
}

static void test_resume_and_repair(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        /* a slot half written by an earlier run: chunks 0-19 are in and marked done */
        assert_int_equal(write_file_durable(f->slot_path, f->image, 20 * CHUNK, 0644), 0);
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        for (int i = 0; i < 20; i++)
                install_bitmap_set(done, i, true);
        /* ...and a bit flipped in chunk 12 since it was written */
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, 12 * CHUNK + 5), 1);
        b ^= 1;
        assert_int_equal(pwrite(fd, &b, 1, 12 * CHUNK + 5), 1);
        f->source_reads = 0;
        struct install_request req = request(f, fd, done);
        struct install_stats st;
        int r = install_image(&req, &st, &reason);
        if (r < 0)
                fail_msg("%s", reason);
        close(fd);
        /* 20 chunks fetched in the first pass, chunk 12 again in the second */
        assert_int_equal(f->source_reads, 21);
        assert_int_equal(st.chunks_repaired, 1);
        assert_int_equal(install_bitmap_count(done, N_CHUNKS), N_CHUNKS);
        assert_slot_is_image(f);
}

static void test_forged_source_refused(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        f->corrupt_source_chunk_7 = true;
        struct install_request req = request(f, fd, done);
        struct install_stats st;
        assert_int_equal(install_image(&req, &st, &reason), -EBADMSG);
        assert_non_null(strstr(reason, "chunk 7"));
        free(reason);
        reason = NULL;
        /* only verified chunks are marked; the bad one never is */
        assert_false(install_bitmap_get(done, 7));
        for (int i = 8; i < N_CHUNKS; i++)
                assert_false(install_bitmap_get(done, i));
        f->corrupt_source_chunk_7 = false;

        /* an unreadable source fails with the chunk named; what came before it is kept
         * (a link lost, a pass's budget spent: the next pass fetches only the rest) */
        f->fail_source_at = 9;
        assert_int_equal(install_image(&req, &st, &reason), -EIO);
        assert_non_null(strstr(reason, "chunk 9"));
        free(reason);
        reason = NULL;
        for (int i = 0; i < N_CHUNKS; i++)
                assert_int_equal(install_bitmap_get(done, i), i < 9);
        f->fail_source_at = -1;
        f->source_reads = 0;
        assert_int_equal(install_image(&req, &st, &reason), 0);
        assert_int_equal(st.chunks_resumed, 9);
        close(fd);
}

static void test_cancel_keeps_progress(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        unlink(f->slot_path);
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        f->cancel_after_bytes = 12 * CHUNK;
        struct install_request req = request(f, fd, done);
        struct install_stats st;
        assert_int_equal(install_image(&req, &st, &reason), -ECANCELED);
        free(reason);
        reason = NULL;
        /* what was written before the cancel is synced and marked, nothing beyond */
        uint64_t n = install_bitmap_count(done, N_CHUNKS);
        assert_int_equal(n, 12);
        /* resume: only the rest is fetched */
        f->cancel = 0;
        f->cancel_after_bytes = 0;
        f->source_reads = 0;
        assert_int_equal(install_image(&req, &st, &reason), 0);
        assert_int_equal(f->source_reads, N_CHUNKS - 12);
        assert_int_equal(st.chunks_resumed, 12);
        close(fd);
        assert_slot_is_image(f);
}

static void test_checkpoint_failure_stops(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        f->checkpoint_error = -ENOSPC;
        struct install_request req = request(f, fd, done);
        struct install_stats st;
        assert_int_equal(install_image(&req, &st, &reason), -ENOSPC);
        assert_non_null(strstr(reason, "progress"));
        free(reason);
        f->checkpoint_error = 0;
        close(fd);
}

/* The disk with the progress file fills up mid-install: the install stops naming the file;
 * when space returns, a new run from the last saved bitmap fetches only the rest. */
static void test_no_space_then_resume(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        f->checkpoint_error = -ENOSPC;
        f->checkpoints_before_error = 2; /* every 5 chunks: 10 chunks saved */
        struct install_request req = request(f, fd, done);
        req.slot_path = f->slot_path;
        req.checkpoint_path = "/var/lib/orbit-agent/update/progress";
        struct install_stats st;
        assert_int_equal(install_image(&req, &st, &reason), -ENOSPC);
        assert_string_equal(reason, "image rootfs: saving the install progress to "
                                    "/var/lib/orbit-agent/update/progress: No space left on device");
        free(reason);
        reason = NULL;
        assert_int_equal(install_bitmap_count(f->saved, N_CHUNKS), 10);

        /* space back: the agent starts again from what the progress file says */
        memcpy(done, f->saved, sizeof(done));
        f->checkpoint_error = 0;
        f->source_reads = 0;
        int r = install_image(&req, &st, &reason);
        if (r < 0)
                fail_msg("%s", reason);
        assert_int_equal(st.chunks_resumed, 10);
        assert_int_equal(f->source_reads, N_CHUNKS - 10);
        close(fd);
        assert_slot_is_image(f);

        /* a chunk that cannot be written names the slot's file */
        assert_true((fd = open(f->slot_path, O_RDONLY)) >= 0);
        memset(done, 0, sizeof(done));
        req.slot_fd = fd;
        assert_int_equal(install_image(&req, &st, &reason), -EBADF);
        char want[600];
        snprintf(want, sizeof(want), "image rootfs: writing chunk 0 to slot %s: ", f->slot_path);
        assert_true(strncmp(reason, want, strlen(want)) == 0);
        free(reason);
        close(fd);
}

static void test_bitmap_hex(void **state) {
        uint8_t map[3] = {0x81, 0x00, 0x07};
        char *hex;
        assert_int_equal(install_bitmap_to_hex(map, 19, &hex), 0);
        assert_string_equal(hex, "810007");
        uint8_t *back;
        assert_int_equal(install_bitmap_from_hex(hex, 19, &back), 0);
        assert_memory_equal(back, map, 3);
        assert_int_equal(install_bitmap_count(back, 19), 5);
        free(back);
        free(hex);
        /* wrong length, bad digits, upper case, bits past the end */
        assert_int_equal(install_bitmap_from_hex("8100", 19, &back), -EINVAL);
        assert_int_equal(install_bitmap_from_hex("81000g", 19, &back), -EINVAL);
        assert_int_equal(install_bitmap_from_hex("8100A7", 19, &back), -EINVAL);
        assert_int_equal(install_bitmap_from_hex("810008", 19, &back), -EINVAL);
        assert_int_equal(install_bitmap_from_hex("", 0, &back), 0);
        free(back);
}

static void test_slots(void **state) {
        struct fixture *f = *state;
        char dir[600], buf[700];
        snprintf(dir, sizeof(dir), "%s/models", f->dir);
        char cur;
        assert_int_equal(model_slot_current(dir, "yolo", &cur), -ENOENT);
        assert_int_equal(model_slot_prepare(dir, "yolo", 'B'), 0);
        assert_int_equal(model_slot_switch(dir, "yolo", 'B'), 0);
        assert_int_equal(model_slot_current(dir, "yolo", &cur), 0);
        assert_int_equal(cur, 'B');
        assert_int_equal(model_slot_switch(dir, "yolo", 'A'), 0);
        assert_int_equal(model_slot_current(dir, "yolo", &cur), 0);
        assert_int_equal(cur, 'A');
        assert_int_equal(model_slot_image(dir, "yolo", 'B', buf, sizeof(buf)), 0);
        assert_non_null(strstr(buf, "/models/yolo/b/image"));
        assert_int_equal(model_slot_switch(dir, "yolo", 'C'), -EINVAL);
        /* a current link pointing anywhere else is not trusted */
        snprintf(buf, sizeof(buf), "%s/yolo/current", dir);
        unlink(buf);
        assert_int_equal(symlink("/etc", buf), 0);
        assert_int_equal(model_slot_current(dir, "yolo", &cur), -EBADMSG);
        assert_string_equal(slot_class_model_name("model:yolo"), "yolo");
        assert_null(slot_class_model_name("rootfs"));
        assert_null(slot_class_model_name("model:"));
        assert_int_equal(slot_other('A'), 'B');
        assert_int_equal(slot_other('x'), 0);
        /* a directory is no slot */
        int fd;
        char *reason = NULL;
        assert_int_equal(slot_open_write(dir, 10, &fd, &reason), -EISDIR);
        free(reason);
        /* a file slot gets its blocks reserved up front, where the filesystem can */
        snprintf(buf, sizeof(buf), "%s/probe", f->dir);
        int probe = open(buf, O_RDWR | O_CREAT, 0600);
        assert_true(probe >= 0);
        bool can_reserve = fallocate(probe, 0, 0, 4096) == 0;
        close(probe);
        unlink(f->slot_path);
        assert_int_equal(slot_open_write(f->slot_path, 1 << 20, &fd, &reason), 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_size, 1 << 20);
        if (can_reserve)
                assert_true((uint64_t) st.st_blocks * 512 >= 1 << 20);
        close(fd);
}


static void flip(const char *path, uint64_t offset, uint8_t mask) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, (off_t) offset), 1);
        b ^= mask;
        assert_int_equal(pwrite(fd, &b, 1, (off_t) offset), 1);
        close(fd);
}

/* The image written to the slot, then damaged in three chunks. */
static int scrub_slot(struct fixture *f) {
        assert_int_equal(write_file_durable(f->slot_path, f->image, SIZE, 0644), 0);
        flip(f->slot_path, 0 * CHUNK + 5, 0x01);   /* the same in the active slot */
        flip(f->slot_path, 3 * CHUNK + 100, 0x80); /* changed since the active slot's image */
        flip(f->slot_path, SIZE - 1, 0x10);        /* the short last chunk, also changed */
        int fd = open(f->slot_path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void test_scrub(void **state) {
        struct fixture *f = *state;
        char *reason = NULL;
        struct install_scrub_stats st;

        /* a clean slot: nothing bad, nothing written */
        assert_int_equal(write_file_durable(f->slot_path, f->image, SIZE, 0644), 0);
        int fd = open(f->slot_path, O_RDWR | O_CLOEXEC);
        struct install_request req = request(f, fd, NULL);
        assert_int_equal(install_scrub(&req, true, 0, &st, &reason), 0);
        assert_int_equal(st.chunks_total, N_CHUNKS);
        assert_int_equal(st.chunks_bad, 0);
        assert_int_equal(st.bytes_read, SIZE);
        assert_int_equal(f->source_reads, 0);
        close(fd);

        /* detect only: every damaged chunk found and listed, the slot left as it is */
        fd = scrub_slot(f);
        req = request(f, fd, NULL);
        assert_int_equal(install_scrub(&req, false, 0, &st, &reason), 0);
        assert_int_equal(st.chunks_bad, 3);
        assert_int_equal(st.chunks_repaired, 0);
        assert_int_equal(st.n_listed, 3);
        assert_int_equal(st.bad[0], 0);
        assert_int_equal(st.bad[1], 3);
        assert_int_equal(st.bad[2], N_CHUNKS - 1);
        assert_int_equal(f->source_reads, 0);

        /* repair with only the active slot: chunk 0 is there, 3 and the tail are not */
        int afd;
        uint64_t asize;
        assert_int_equal(slot_open_read(f->active_path, &afd, &asize, &reason), 0);
        struct install_index *ix;
        assert_int_equal(install_index_scan(afd, asize, CHUNK, NULL, &ix), 0);
        req.active_fd = afd;
        req.active = ix;
        req.source.read = NULL;
        uint8_t left_bad[(N_CHUNKS + 7) / 8];
        memset(left_bad, 0xff, sizeof(left_bad));
        req.left_bad = left_bad;
        assert_int_equal(install_scrub(&req, true, 0, &st, &reason), 0);
        assert_int_equal(st.chunks_bad, 3);
        assert_int_equal(st.chunks_repaired, 1);
        assert_int_equal(st.chunks_from_active, 1);
        /* what is left for a repair from elsewhere: exactly the two without a copy */
        assert_int_equal(install_bitmap_count(left_bad, N_CHUNKS), 2);
        assert_true(install_bitmap_get(left_bad, 3));
        assert_true(install_bitmap_get(left_bad, N_CHUNKS - 1));
        req.left_bad = NULL;
        /* again: only the two unrepaired remain */
        assert_int_equal(install_scrub(&req, true, 0, &st, &reason), 0);
        assert_int_equal(st.chunks_bad, 2);
        assert_int_equal(st.bad[0], 3);

        /* a source that lies is not trusted: nothing written from it */
        req.source.read = source_read;
        f->corrupt_source_chunk_7 = false;
        f->fail_source_at = 3;
        assert_int_equal(install_scrub(&req, true, 0, &st, &reason), 0);
        assert_int_equal(st.chunks_bad, 2);
        assert_int_equal(st.chunks_repaired, 1); /* the tail; chunk 3's read failed */
        f->fail_source_at = -1;
        assert_int_equal(install_scrub(&req, true, 0, &st, &reason), 0);
        assert_int_equal(st.chunks_bad, 1);
        assert_int_equal(st.chunks_repaired, 1);
        assert_int_equal(st.chunks_from_source, 1);
        assert_slot_is_image(f);
        assert_int_equal(install_scrub(&req, true, 0, &st, &reason), 0);
        assert_int_equal(st.chunks_bad, 0);

        /* cancelled: stops, says so */
        f->cancel = 1;
        assert_int_equal(install_scrub(&req, true, 0, &st, &reason), -ECANCELED);
        assert_non_null(reason);
        free(reason);
        f->cancel = 0;
        install_index_free(ix);
        close(afd);
        close(fd);
}

/* Checked just before (source_verified): a source that changed since is not written as
 * good: the whole hash over what was written fails the install. */
static void test_source_verified_whole_hash(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        struct install_request req = request(f, fd, done);
        req.source_verified = true;
        struct install_stats st;
        assert_int_equal(install_verify_source(&req, &st, &reason), 0);
        f->corrupt_source_chunk_7 = true; /* changed after the check */
        assert_int_equal(install_image(&req, &st, &reason), -EBADMSG);
        assert_non_null(strstr(reason, "whole image"));
        free(reason);
        reason = NULL;
        /* the next run re-reads what it wrote: chunk 7 no longer verifies and comes again */
        f->corrupt_source_chunk_7 = false;
        f->source_reads = 0;
        req.source_verified = false;
        int r = install_image(&req, &st, &reason);
        if (r < 0)
                fail_msg("%s", reason);
        assert_int_equal(st.chunks_repaired, 1);
        assert_int_equal(f->source_reads, 1);
        close(fd);
        assert_slot_is_image(f);
}

/* Coalesced checkpoints: fewer when the syncer lags, the same result and every chunk marked. */
static void test_checkpoint_coalesce(void **state) {
        struct fixture *f = *state;
        int fd;
        char *reason = NULL;
        assert_int_equal(slot_open_write(f->slot_path, SIZE, &fd, &reason), 0);
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        memset(done, 0, sizeof(done));
        struct install_request req = request(f, fd, done);
        req.checkpoint_coalesce = true;
        req.checkpoint_bytes = CHUNK; /* one due after every chunk */
        struct install_stats st;
        int r = install_image(&req, &st, &reason);
        if (r < 0)
                fail_msg("%s", reason);
        assert_true(f->checkpoints >= 1 && f->checkpoints <= N_CHUNKS + 1);
        assert_int_equal(install_bitmap_count(f->saved, N_CHUNKS), N_CHUNKS);
        assert_int_equal(st.bytes_done, SIZE);
        close(fd);
        assert_slot_is_image(f);
}

/* A source that any number of threads may read at once: the image with chunks 10 and 23
 * damaged, no counters. */
static int damaged_source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct fixture *f = userdata;
        memcpy(buf, f->image + offset, len);
        if (offset / CHUNK == 10 || offset / CHUNK == 23)
                ((uint8_t *) buf)[3] ^= 0x01;
        return 0;
}

/* The check before writing spreads over threads when the source allows it; it names the
 * first damaged chunk either way, and skips what is done or in the active slot. */
static void test_verify_source(void **state) {
        struct fixture *f = *state;
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        for (int concurrent = 0; concurrent <= 1; concurrent++) {
                memset(done, 0, sizeof(done));
                struct install_request req = request(f, -1, done);
                struct install_stats st;
                char *reason = NULL;
                req.source.concurrent = concurrent;
                f->source_reads = 0;
                if (!concurrent)
                        assert_int_equal(install_verify_source(&req, &st, &reason), 0);
                else
                        assert_int_equal(install_verify_source(&req, &st, NULL), 0);
                assert_int_equal(st.chunks_from_source, N_CHUNKS);
                assert_int_equal(st.bytes_from_source, SIZE);
                if (!concurrent)
                        assert_int_equal(f->source_reads, N_CHUNKS);

                req.source = (struct install_source){.read = damaged_source_read, .userdata = f,
                                                     .concurrent = concurrent};
                assert_int_equal(install_verify_source(&req, &st, &reason), -EBADMSG);
                assert_non_null(strstr(reason, "chunk 10 "));
                free(reason);
                reason = NULL;

                /* chunk 10 done already: 23 is the first left to check */
                install_bitmap_set(done, 10, true);
                assert_int_equal(install_verify_source(&req, &st, &reason), -EBADMSG);
                assert_non_null(strstr(reason, "chunk 23 "));
                free(reason);
                reason = NULL;
                install_bitmap_set(done, 23, true);
                assert_int_equal(install_verify_source(&req, &st, &reason), 0);
                assert_int_equal(st.chunks_from_source, N_CHUNKS - 2);
        }
}

/* Chunks the next source damages and the one whose read fails (-1: none); read only while
 * the verifier threads run. */
static int damaged_chunks[2] = {-1, -1}, failing_chunk = -1;

static int group_source_read(void *userdata, uint64_t offset, void *buf, size_t len) {
        struct fixture *f = userdata;
        int i = (int) (offset / CHUNK);
        if (i == failing_chunk)
                return -EIO;
        memcpy(buf, f->image + offset, len);
        if (i == damaged_chunks[0] || i == damaged_chunks[1])
                ((uint8_t *) buf)[len - 1] ^= 0x80;
        return 0;
}

/* Chunks are hashed four at a time (sha256_buffers): the lowest damaged chunk is named
 * wherever it sits in its group, the short last chunk too, and a chunk read before one whose
 * read fails is still checked. */
static void test_verify_source_groups(void **state) {
        struct fixture *f = *state;
        static const struct {
                int damaged[2], failing, skipped;
                const char *want; /* in the reason */
        } cases[] = {
                {{13, -1}, -1, -1, "chunk 13 (bytes 53248-57343) does not match"}, /* a group's middle */
                {{39, -1}, -1, -1, "chunk 39 (bytes 159744-162839) does not match"}, /* the short last */
                {{14, 29}, -1, -1, "chunk 14 "},
                {{14, -1}, 15, -1, "chunk 14 "},          /* damaged before a failed read */
                {{14, -1}, 13, -1, "reading chunk 13: "}, /* a failed read before the damage */
                {{14, -1}, -1, 13, "chunk 14 "},          /* a group with a chunk done */
                {{-1, -1}, 38, -1, "reading chunk 38: "},
        };
        uint8_t done[install_bitmap_size(N_CHUNKS)];
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
                for (int concurrent = 0; concurrent <= 1; concurrent++) {
                        memset(done, 0, sizeof(done));
                        if (cases[c].skipped >= 0)
                                install_bitmap_set(done, cases[c].skipped, true);
                        struct install_request req = request(f, -1, done);
                        req.source = (struct install_source){.read = group_source_read, .userdata = f,
                                                             .concurrent = concurrent};
                        memcpy(damaged_chunks, cases[c].damaged, sizeof(damaged_chunks));
                        failing_chunk = cases[c].failing;
                        struct install_stats st;
                        char *reason = NULL;
                        int want_r = strstr(cases[c].want, "reading") ? -EIO : -EBADMSG;
                        assert_int_equal(install_verify_source(&req, &st, &reason), want_r);
                        if (!strstr(reason, cases[c].want))
                                fail_msg("case %zu, concurrent %d: \"%s\"", c, concurrent, reason);
                        free(reason);
                }
        damaged_chunks[0] = damaged_chunks[1] = failing_chunk = -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_fresh_install, setup, teardown),
                cmocka_unit_test_setup_teardown(test_checkpoint_flush, setup, teardown),
                cmocka_unit_test_setup_teardown(test_checkpoint_nothing_left_to_sync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delta_from_active, setup, teardown),
                cmocka_unit_test_setup_teardown(test_index_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resume_and_repair, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forged_source_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_verify_source, setup, teardown),
                cmocka_unit_test_setup_teardown(test_verify_source_groups, setup, teardown),
                cmocka_unit_test_setup_teardown(test_source_verified_whole_hash, setup, teardown),
                cmocka_unit_test_setup_teardown(test_checkpoint_coalesce, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_keeps_progress, setup, teardown),
                cmocka_unit_test_setup_teardown(test_checkpoint_failure_stops, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_space_then_resume, setup, teardown),
                cmocka_unit_test(test_bitmap_hex),
                cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
                cmocka_unit_test_setup_teardown(test_scrub, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
