/* Little-endian field access for on-disk structures (VHDX is little-endian,
 * [MS-VHDX] 2.1; VHD is big-endian: be.h). */
#ifndef VHDUP_UTIL_LE_H
#define VHDUP_UTIL_LE_H

#include <stdint.h>

static inline uint16_t vhdup__le16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t vhdup__le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t vhdup__le64(const uint8_t *p) {
  return (uint64_t)vhdup__le32(p) | ((uint64_t)vhdup__le32(p + 4) << 32);
}

static inline void vhdup__put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static inline void vhdup__put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static inline void vhdup__put_le64(uint8_t *p, uint64_t v) {
  vhdup__put_le32(p, (uint32_t)v);
  vhdup__put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
