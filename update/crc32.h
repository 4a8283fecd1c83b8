/* CRC-32 (IEEE 802.3, as zlib's crc32() and U-Boot's environment use it). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Continue a CRC-32 over buf: start with crc = 0, feed the result back for the next
 * piece. crc32_update(0, "123456789", 9) == 0xcbf43926, like zlib's crc32().
 */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);
