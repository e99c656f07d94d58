/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
 * VHDX headers, region tables and log entries ([MS-VHDX] 2.2.2, 2.2.3,
 * 2.3.1.1). Table-driven, one byte at a time: the structures it covers are
 * at most 64 KiB and are checksummed once per open. */
#ifndef VHDUP_UTIL_CRC32C_H
#define VHDUP_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc (start from 0) over buf. The check value of "123456789" is
 * 0xE3069283. */
uint32_t vhdup__crc32c(uint32_t crc, const void *buf, size_t len);

/* The CRC-32C of buf with the 4 bytes at skip_off taken as zero (the
 * checksum field of the structure itself). */
uint32_t vhdup__crc32c_skip(const void *buf, size_t len, size_t skip_off);

#endif
