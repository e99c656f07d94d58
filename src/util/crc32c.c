/* CRC-32C, table-driven. The table is built on first use from the
 * polynomial; building it is idempotent, so two threads racing on it write
 * the same values. */
#include "util/crc32c.h"

#define POLY 0x82F63B78u

static uint32_t table[256];
static int table_ready;

static void build_table(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
    table[i] = c;
  }
  table_ready = 1;
}

uint32_t vhdup__crc32c(uint32_t crc, const void *buf, size_t len) {
  const uint8_t *p = buf;
  if (!table_ready)
    build_table();
  crc = ~crc;
  for (size_t i = 0; i < len; i++)
    crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t vhdup__crc32c_skip(const void *buf, size_t len, size_t skip_off) {
  static const uint8_t zero[4];
  const uint8_t *p = buf;
  uint32_t crc = vhdup__crc32c(0, p, skip_off);
  crc = vhdup__crc32c(crc, zero, 4);
  return vhdup__crc32c(crc, p + skip_off + 4, len - skip_off - 4);
}
