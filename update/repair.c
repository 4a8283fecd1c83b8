/* Repairing a slot's bad chunks from the bundle that installed it (see repair.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "update/repair.h"

int repair_plan(const struct manifest_image *img, const uint8_t *bad, uint64_t max_length,
                struct repair_range *ranges, size_t max_ranges, bool *ret_more) {
        if (img->chunk_size == 0 || img->n_chunks == 0 ||
            (img->size + img->chunk_size - 1) / img->chunk_size != img->n_chunks)
                return -EINVAL;
        /* Bits past the last chunk in the bitmap's last byte: a bitmap of another image. */
        for (uint64_t i = img->n_chunks; i < (uint64_t)install_bitmap_size(img->n_chunks) * 8; i++)
                if (install_bitmap_get(bad, i))
                        return -EINVAL;
        if (max_length == 0)
                max_length = REPAIR_RANGE_DEFAULT;
        /* At least one chunk per range, however large the chunk. */
        uint64_t per_range = max_length / img->chunk_size ? max_length / img->chunk_size : 1;
        size_t n = 0;
        bool more = false;
        for (uint64_t i = 0; i < img->n_chunks;) {
                if (!install_bitmap_get(bad, i)) {
                        i++;
                        continue;
                }
                if (n == max_ranges) {
                        more = true;
                        break;
                }
                uint64_t first = i;
                while (i < img->n_chunks && install_bitmap_get(bad, i) && i - first < per_range)
                        i++;
                uint64_t end = i * img->chunk_size < img->size ? i * img->chunk_size : img->size;
                ranges[n++] = (struct repair_range){
                        .first = first,
                        .count = i - first,
                        .offset = first * img->chunk_size,
                        .length = end - first * img->chunk_size,
                };
        }
        if (ret_more)
                *ret_more = more;
        return (int)n;
}

int repair_chunks(const struct install_request *req, const uint8_t *bad, uint64_t max_range,
                  struct repair_stats *stats, char **ret_reason) {
        const struct manifest_image *img = req->image;
        struct repair_stats st = {.first_refused = -1};
        st.chunks_wanted = install_bitmap_count(bad, img->n_chunks);
        if (stats)
                *stats = st;
        if (img->chunk_size == 0 || img->chunk_size > MANIFEST_CHUNK_SIZE_MAX)
                return message_set(ret_reason, -EINVAL, "image %s: bad chunk size",
                                   img->slot_class);
        if (!req->source.read)
                return message_set(ret_reason, -ENOENT, "image %s: no source to repair from",
                                   img->slot_class);
        if (max_range == 0)
                max_range = REPAIR_RANGE_DEFAULT;
        if (max_range > MANIFEST_CHUNK_SIZE_MAX)
                max_range = MANIFEST_CHUNK_SIZE_MAX;
        _cleanup_free_ struct repair_range *ranges = calloc(REPAIR_RANGES_MAX, sizeof(*ranges));
        _cleanup_free_ uint8_t *buf =
                malloc(max_range > img->chunk_size ? max_range : img->chunk_size);
        _cleanup_free_ uint8_t *check = malloc(img->chunk_size);
        _cleanup_free_ uint8_t *written = calloc(1, install_bitmap_size(img->n_chunks));
        if (!ranges || !buf || !check || !written)
                return message_set(ret_reason, -ENOMEM, "image %s: no memory for a repair",
                                   img->slot_class);
        int n = repair_plan(img, bad, max_range, ranges, REPAIR_RANGES_MAX, NULL);
        if (n < 0)
                return message_set(ret_reason, n, "image %s: the bad chunks do not fit the image",
                                   img->slot_class);
        int r = 0;
        for (int k = 0; k < n; k++) {
                const struct repair_range *rg = &ranges[k];
                if (req->cancel && atomic_load(req->cancel)) {
                        r = message_set(ret_reason, -ECANCELED, "repair of %s cancelled",
                                        img->slot_class);
                        break;
                }
                r = req->source.read(req->source.userdata, rg->offset, buf, (size_t)rg->length);
                if (r < 0) {
                        r = message_set(ret_reason, r,
                                        "image %s: chunks %" PRIu64 "-%" PRIu64 ": %s",
                                        img->slot_class, rg->first, rg->first + rg->count - 1,
                                        strerror(-r));
                        break;
                }
                st.ranges++;
                st.bytes_fetched += rg->length;
                bool wrote = false;
                for (uint64_t i = rg->first; i < rg->first + rg->count; i++) {
                        const uint8_t *chunk = buf + (i - rg->first) * img->chunk_size;
                        size_t len = manifest_chunk_length(img, i);
                        if (manifest_check_chunk(img, i, chunk, len) < 0) {
                                /* Not the bytes the kept manifest names: never written. */
                                st.chunks_refused++;
                                if (st.first_refused < 0)
                                        st.first_refused = (int64_t)i;
                                continue;
                        }
                        st.chunks_fetched++;
                        r = pwrite_all(req->slot_fd, chunk, len, i * img->chunk_size);
                        if (r < 0) {
                                r = message_set(ret_reason, r,
                                                "image %s: writing chunk %" PRIu64 " to %s: %s",
                                                img->slot_class, i,
                                                req->slot_path ? req->slot_path : "the slot",
                                                strerror(-r));
                                goto out;
                        }
                        install_bitmap_set(written, i, true);
                        wrote = true;
                }
                if (wrote && fdatasync(req->slot_fd) < 0) {
                        r = message_set(ret_reason, -errno, "image %s: syncing %s: %m",
                                        img->slot_class,
                                        req->slot_path ? req->slot_path : "the slot");
                        break;
                }
                /* Trust the medium only after reading it back. */
                for (uint64_t i = rg->first; wrote && i < rg->first + rg->count; i++)
                        if (install_bitmap_get(written, i) &&
                            install_read_back_chunk(req->slot_fd, img, i, check) >= 0)
                                st.chunks_written++;
        }
out:
        if (stats)
                *stats = st;
        return r;
}
