/*
 * The form a record is stored in (docs/storage.md, "A record as stored"): its JSON text in
 * one zstd frame (level 3, no dictionary), or the text itself when that is not larger (a
 * record stored before schema 15 is text too). Pure: no database.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

/* A stored record's text is at most this once unpacked (a sync body is at most 4 MiB). */
#define RECORD_FORM_TEXT_MAX (8 * 1024 * 1024)

/* The stored form of the record raw (or of any JSON value): *ret (caller frees) of
 * *ret_len bytes; NULL for NULL (binds SQL NULL). */
int record_form_pack(const json_t *raw, char **ret, size_t *ret_len);

/*
 * The record from its stored form: a zstd frame (it starts with zstd's magic number, which
 * no JSON text does) decoded first. -EBADMSG for a frame that does not decode or text that
 * is not JSON.
 */
int record_form_unpack(const void *data, size_t len, json_t **ret);
