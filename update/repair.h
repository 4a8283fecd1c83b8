/*
 * Repairing a damaged slot from the bundle that installed it: the chunks a scrub left
 * bad, fetched by ranges (adjacent chunks merged), each checked against the slot's kept
 * manifest before it is written, the slot synced and read back after.
 *
 * The plan is pure (repair_plan: which byte ranges of the image cover the bad chunks);
 * repair_chunks reads through an install_source (a ranged download in the agent, a file
 * in the tests) and never writes a byte that does not hash to its chunk.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "update/install.h"
#include "update/manifest.h"

/* Bytes one range may span when the caller does not say: adjacent chunks are merged up
 * to this (a chunk larger than this is one range on its own). */
#define REPAIR_RANGE_DEFAULT (1024 * 1024)
/* Ranges one plan may hold: a slot with more bad runs than this is repaired in parts
 * (the rest at the next scrub). */
#define REPAIR_RANGES_MAX 4096

/* Chunks [first, first + count) of the image: bytes [offset, offset + length). */
struct repair_range {
        uint64_t first, count;
        uint64_t offset, length;
};

/*
 * Pure: the ranges of the image that cover every chunk set in bad (a bitmap of n_chunks,
 * as install_bitmap_*), in order; a run of adjacent bad chunks is one range unless it
 * would pass max_length bytes (0: REPAIR_RANGE_DEFAULT), then several. At most max_ranges
 * are planned (*ret_more says chunks were left out). Returns the number of ranges written
 * to ranges (0 when nothing is bad), -EINVAL for an image whose chunks do not cover its
 * size or a bad bit past n_chunks.
 */
int repair_plan(const struct manifest_image *img, const uint8_t *bad, uint64_t max_length,
                struct repair_range *ranges, size_t max_ranges, bool *ret_more);

struct repair_stats {
        uint64_t chunks_wanted;  /* set in bad */
        uint64_t chunks_fetched; /* read from the source and matching their hash */
        uint64_t chunks_written; /* written, synced, read back and matching */
        uint64_t chunks_refused; /* read, but not the bytes the manifest names: never written */
        uint64_t ranges, bytes_fetched;
        int64_t first_refused; /* -1: none */
};

/*
 * Fetch every chunk set in bad from req->source (offsets relative to the image, as
 * install_image reads it), by the ranges repair_plan makes, and write those that match
 * the manifest into req->slot_fd; fdatasync after each range, then read each written
 * chunk back. Chunks that did not match stay as they are (nothing good is overwritten: a
 * chunk is written only after its bytes hashed right). Returns 0 when every range was
 * read (the stats say what was refused), the source's error (the rest not tried; the
 * chunks written so far stay), -ECANCELED, -EIO from the slot. *ret_reason (caller frees)
 * names the chunk and the cause.
 */
int repair_chunks(const struct install_request *req, const uint8_t *bad, uint64_t max_range,
                  struct repair_stats *stats, char **ret_reason);
