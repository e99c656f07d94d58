/* On-disk structures of the VHD format: footer, dynamic header, checksum,
 * CHS geometry, fixed-footer synthesis (spec sections "Hard Disk Footer
 * Format", "Dynamic Disk Header Format", appendix "CHS Calculation"). */
#include "vhd/vhd.h"

#include "util/be.h"

#include <stdio.h>
#include <string.h>

uint32_t vhdup__vhd_checksum(const uint8_t *buf, size_t len, size_t cksum_off) {
  uint32_t sum = 0;
  for (size_t i = 0; i < len; i++) {
    if (i >= cksum_off && i < cksum_off + 4)
      continue;
    sum += buf[i];
  }
  return ~sum;
}

static void hex_bytes(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t w = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n && w + 4 < cap; i++)
    w += (size_t)snprintf(out + w, cap - w, i ? " %02x" : "%02x", p[i]);
}

int vhdup__footer_decode(const uint8_t buf[VHDUP__FOOTER_SIZE], vhdup__footer *f, vhdup__err *err) {
  if (memcmp(buf, "conectix", 8) != 0) {
    char hex[40];
    hex_bytes(buf, 8, hex, sizeof(hex));
    return vhdup__errf(err, VHDUP_EFORMAT, "no 'conectix' cookie (found bytes %s)", hex);
  }
  memset(f, 0, sizeof(*f));
  memcpy(f->cookie, buf, 8);
  f->features = vhdup__be32(buf + 8);
  f->version = vhdup__be32(buf + 12);
  f->data_offset = vhdup__be64(buf + 16);
  f->timestamp = vhdup__be32(buf + 24);
  memcpy(f->creator_app, buf + 28, 4);
  f->creator_version = vhdup__be32(buf + 32);
  memcpy(f->creator_os, buf + 36, 4);
  f->original_size = vhdup__be64(buf + 40);
  f->current_size = vhdup__be64(buf + 48);
  f->cylinders = vhdup__be16(buf + 56);
  f->heads = buf[58];
  f->sectors_per_track = buf[59];
  f->disk_type = vhdup__be32(buf + 60);
  f->checksum = vhdup__be32(buf + 64);
  memcpy(f->uuid, buf + 68, 16);
  f->saved_state = buf[84];
  uint32_t want = vhdup__vhd_checksum(buf, VHDUP__FOOTER_SIZE, 64);
  if (want != f->checksum)
    return vhdup__errf(err, VHDUP_ECHECKSUM, "checksum (byte 64) is 0x%08x, expected 0x%08x",
                       f->checksum, want);
  return 0;
}

void vhdup__footer_encode(const vhdup__footer *f, uint8_t buf[VHDUP__FOOTER_SIZE]) {
  memset(buf, 0, VHDUP__FOOTER_SIZE);
  memcpy(buf, f->cookie, 8);
  vhdup__put_be32(buf + 8, f->features);
  vhdup__put_be32(buf + 12, f->version);
  vhdup__put_be64(buf + 16, f->data_offset);
  vhdup__put_be32(buf + 24, f->timestamp);
  memcpy(buf + 28, f->creator_app, 4);
  vhdup__put_be32(buf + 32, f->creator_version);
  memcpy(buf + 36, f->creator_os, 4);
  vhdup__put_be64(buf + 40, f->original_size);
  vhdup__put_be64(buf + 48, f->current_size);
  vhdup__put_be16(buf + 56, f->cylinders);
  buf[58] = f->heads;
  buf[59] = f->sectors_per_track;
  vhdup__put_be32(buf + 60, f->disk_type);
  memcpy(buf + 68, f->uuid, 16);
  buf[84] = f->saved_state;
  vhdup__put_be32(buf + 64, vhdup__vhd_checksum(buf, VHDUP__FOOTER_SIZE, 64));
}

/* Parent locator entries start at byte 576 of the dynamic header, 24 bytes
 * each (spec, "Dynamic Disk Header Format"). */
#define LOCATOR_BASE 576u
#define LOCATOR_SIZE 24u

int vhdup__dynhdr_decode(const uint8_t buf[VHDUP__DYNHDR_SIZE], vhdup__dynhdr *h, vhdup__err *err) {
  if (memcmp(buf, "cxsparse", 8) != 0) {
    char hex[40];
    hex_bytes(buf, 8, hex, sizeof(hex));
    return vhdup__errf(err, VHDUP_EFORMAT, "no 'cxsparse' cookie (found bytes %s)", hex);
  }
  memset(h, 0, sizeof(*h));
  memcpy(h->cookie, buf, 8);
  h->data_offset = vhdup__be64(buf + 8);
  h->table_offset = vhdup__be64(buf + 16);
  h->header_version = vhdup__be32(buf + 24);
  h->max_table_entries = vhdup__be32(buf + 28);
  h->block_size = vhdup__be32(buf + 32);
  h->checksum = vhdup__be32(buf + 36);
  memcpy(h->parent_uuid, buf + 40, 16);
  h->parent_timestamp = vhdup__be32(buf + 56);
  for (size_t i = 0; i < 256; i++)
    h->parent_name[i] = vhdup__be16(buf + 64 + 2 * i);
  for (size_t i = 0; i < VHDUP__PARENT_LOCATORS; i++) {
    const uint8_t *p = buf + LOCATOR_BASE + LOCATOR_SIZE * i;
    memcpy(h->locators[i].platform_code, p, 4);
    h->locators[i].data_space = vhdup__be32(p + 4);
    h->locators[i].data_length = vhdup__be32(p + 8);
    h->locators[i].data_offset = vhdup__be64(p + 16);
  }
  uint32_t want = vhdup__vhd_checksum(buf, VHDUP__DYNHDR_SIZE, 36);
  if (want != h->checksum)
    return vhdup__errf(err, VHDUP_ECHECKSUM, "checksum (byte 36) is 0x%08x, expected 0x%08x",
                       h->checksum, want);
  return 0;
}

void vhdup__dynhdr_encode(const vhdup__dynhdr *h, uint8_t buf[VHDUP__DYNHDR_SIZE]) {
  memset(buf, 0, VHDUP__DYNHDR_SIZE);
  memcpy(buf, h->cookie, 8);
  vhdup__put_be64(buf + 8, h->data_offset);
  vhdup__put_be64(buf + 16, h->table_offset);
  vhdup__put_be32(buf + 24, h->header_version);
  vhdup__put_be32(buf + 28, h->max_table_entries);
  vhdup__put_be32(buf + 32, h->block_size);
  memcpy(buf + 40, h->parent_uuid, 16);
  vhdup__put_be32(buf + 56, h->parent_timestamp);
  for (size_t i = 0; i < 256; i++)
    vhdup__put_be16(buf + 64 + 2 * i, h->parent_name[i]);
  for (size_t i = 0; i < VHDUP__PARENT_LOCATORS; i++) {
    uint8_t *p = buf + LOCATOR_BASE + LOCATOR_SIZE * i;
    memcpy(p, h->locators[i].platform_code, 4);
    vhdup__put_be32(p + 4, h->locators[i].data_space);
    vhdup__put_be32(p + 8, h->locators[i].data_length);
    vhdup__put_be64(p + 16, h->locators[i].data_offset);
  }
  vhdup__put_be32(buf + 36, vhdup__vhd_checksum(buf, VHDUP__DYNHDR_SIZE, 36));
}

/* The spec appendix "CHS Calculation", step for step; sizes past
 * 65535*16*255 sectors are capped there. */
void vhdup__chs(uint64_t size, uint16_t *cylinders, uint8_t *heads, uint8_t *spt) {
  uint64_t total = size / VHDUP__SECTOR;
  uint64_t s, h, cth;
  if (total > 65535ull * 16 * 255)
    total = 65535ull * 16 * 255;
  if (total >= 65535ull * 16 * 63) {
    s = 255;
    h = 16;
    cth = total / s;
  } else {
    s = 17;
    cth = total / s;
    h = (cth + 1023) / 1024;
    if (h < 4)
      h = 4;
    if (cth >= h * 1024 || h > 16) {
      s = 31;
      h = 16;
      cth = total / s;
    }
    if (cth >= h * 1024) {
      s = 63;
      h = 16;
      cth = total / s;
    }
  }
  *cylinders = (uint16_t)(cth / h);
  *heads = (uint8_t)h;
  *spt = (uint8_t)s;
}

void vhdup__fixed_footer(const vhdup__footer *src, uint64_t vsize, vhdup__footer *out) {
  uint8_t buf[VHDUP__FOOTER_SIZE];
  memset(out, 0, sizeof(*out));
  memcpy(out->cookie, "conectix", 8);
  out->features = 2;
  out->version = 0x00010000;
  out->data_offset = UINT64_MAX;
  /* Azure ignores the creator, but qemu trusts the current size only for a
   * few creators and reads everything else by its CHS geometry, which
   * rounds down: a "vhdp" footer made qemu-img read a 64 MiB disk as
   * 67055616 bytes. Hyper-V's "win " (version 10.0) is read correctly by
   * qemu, Hyper-V and Azure alike. */
  memcpy(out->creator_app, "win ", 4);
  out->creator_version = 0x000a0000;
  memcpy(out->creator_os, "Wi2k", 4);
  out->original_size = vsize;
  out->current_size = vsize;
  vhdup__chs(vsize, &out->cylinders, &out->heads, &out->sectors_per_track);
  out->disk_type = VHDUP__DISK_FIXED;
  if (src != NULL) {
    out->timestamp = src->timestamp;
    memcpy(out->uuid, src->uuid, 16);
  }
  vhdup__footer_encode(out, buf);
  out->checksum = vhdup__be32(buf + 64);
}

static int buffer_read(const vhdup__src *src, uint64_t off, void *buf, size_t len) {
  if (off > src->size || len > src->size - off)
    return VHDUP_ETRUNCATED;
  if (len > 0)
    memcpy(buf, (const uint8_t *)src->ctx + off, len);
  return 0;
}

void vhdup__src_from_buffer(vhdup__src *src, const char *name, const uint8_t *buf, size_t len) {
  src->ctx = (void *)(uintptr_t)buf;
  src->name = name;
  src->size = len;
  src->read = buffer_read;
  src->next_data = NULL;
}
