/* Azure Storage's CRC64, as sent in x-ms-content-crc64 (put-page, from
 * version 2019-02-02). It is CRC-64/NVME: reflected, polynomial
 * 0x9A6C9329AC4BC9B5 in LSB-first form, init and xorout all ones, check
 * value 0xAE8B14860A799888 for "123456789". Slicing-by-8: eight bytes per
 * step through eight tables, several times faster than a byte at a time.
 *
 * crc64_table.h was generated with:
 *   R = 0x9A6C9329AC4BC9B5
 *   t0[i] = i shifted right 8 times, xoring R whenever the low bit was set
 *   tk[i] = (t(k-1)[i] >> 8) ^ t0[t(k-1)[i] & 0xff]
 */
#include "azure/azure.h"

#include "util/crypto.h"

#include "azure/crc64_table.h"

uint64_t vhdup__crc64(uint64_t crc, const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t c = ~crc;
  while (len >= 8) {
    /* Little-endian load: the reflected CRC consumes the lowest byte first. */
    uint64_t w = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
                 (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
                 (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
    c ^= w;
    c = crc64_table[7][c & 0xff] ^ crc64_table[6][(c >> 8) & 0xff] ^
        crc64_table[5][(c >> 16) & 0xff] ^ crc64_table[4][(c >> 24) & 0xff] ^
        crc64_table[3][(c >> 32) & 0xff] ^ crc64_table[2][(c >> 40) & 0xff] ^
        crc64_table[1][(c >> 48) & 0xff] ^ crc64_table[0][c >> 56];
    p += 8;
    len -= 8;
  }
  while (len-- > 0)
    c = (c >> 8) ^ crc64_table[0][(c ^ *p++) & 0xff];
  return ~c;
}

void vhdup__crc64_base64(uint64_t crc, char out[13]) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++)
    le[i] = (uint8_t)(crc >> (8 * i));
  /* 8 bytes always fit in 12 base64 characters + NUL. */
  if (vhdup__base64_encode(le, sizeof(le), out, 13) < 0)
    out[0] = '\0';
}
