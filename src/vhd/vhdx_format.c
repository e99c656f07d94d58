/* VHDX structures that decode from a buffer alone: headers (2.2.2), the
 * region table (2.2.3), the metadata table (2.6.1) and the parent locator
 * (2.6.2.6). Section numbers are [MS-VHDX]'s. */
#include "vhd/vhdx.h"

#include "util/crc32c.h"
#include "util/le.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* 2.2.3.1 known regions; 2.6.2 known metadata items; 2.6.2.6 locator type. */
#define GUID_BAT "{2DC27766-F623-4200-9D64-115E9BFD4A08}"
#define GUID_METADATA "{8B7CA206-4790-4B9A-B8FE-575F050F886E}"
#define GUID_LOCATOR_TYPE "{B04AEFB7-D19E-4A81-B789-25B8E9445913}"
static const char *const item_guids[VHDUP__VHDX_ITEMS] = {
    "{CAA16737-FA36-4D43-B3B6-33F0AA44E76B}", /* 2.6.2.1 file parameters */
    "{2FA54224-CD1B-4876-B211-5DBED83BF4B8}", /* 2.6.2.2 virtual disk size */
    "{BECA12AB-B2E6-4523-93EF-C309E000C746}", /* 2.6.2.3 page 83 data */
    "{8141BF1D-A96F-4709-BA47-F233A8FAAB5F}", /* 2.6.2.4 logical sector size */
    "{CDA348C7-445D-4471-9CC9-E9885251C556}", /* 2.6.2.5 physical sector size */
    "{A8D35F2D-B30B-454D-ABF7-D3D84834AB0C}", /* 2.6.2.6 parent locator */
};
static const char *const item_names[VHDUP__VHDX_ITEMS] = {
    "file parameters",     "virtual disk size",    "page 83 data",
    "logical sector size", "physical sector size", "parent locator",
};

void vhdup__vhdx_guid_text(const uint8_t g[16], char out[39]) {
  snprintf(out, 39, "{%08" PRIX32 "-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}", vhdup__le32(g),
           vhdup__le16(g + 4), vhdup__le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14],
           g[15]);
}

static int guid_is(const uint8_t g[16], const char *text) {
  char t[39];
  vhdup__vhdx_guid_text(g, t);
  return strcasecmp(t, text) == 0;
}

int vhdup__vhdx_header_decode(const uint8_t buf[VHDUP__VHDX_HEADER_SIZE], vhdup__vhdx_header *h,
                              vhdup__err *err) {
  if (memcmp(buf, "head", 4) != 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "signature (byte 0) is not 'head'");
  h->checksum = vhdup__le32(buf + 4);
  uint32_t crc = vhdup__crc32c_skip(buf, VHDUP__VHDX_HEADER_SIZE, 4);
  if (crc != h->checksum)
    return vhdup__errf(err, VHDUP_ECHECKSUM,
                       "checksum (byte 4) 0x%08" PRIx32 " is not the CRC-32C 0x%08" PRIx32,
                       h->checksum, crc);
  h->sequence_number = vhdup__le64(buf + 8);
  memcpy(h->file_write_guid, buf + 16, 16);
  memcpy(h->data_write_guid, buf + 32, 16);
  memcpy(h->log_guid, buf + 48, 16);
  h->log_version = vhdup__le16(buf + 64);
  h->version = vhdup__le16(buf + 66);
  h->log_length = vhdup__le32(buf + 68);
  h->log_offset = vhdup__le64(buf + 72);
  if (h->version != 1)
    return vhdup__errf(err, VHDUP_EUNSUPPORTED, "version (byte 66) is %u, not 1", h->version);
  if (h->log_version != 0)
    return vhdup__errf(err, VHDUP_EUNSUPPORTED, "log version (byte 64) is %u, not 0",
                       h->log_version);
  if (h->log_length % VHDUP__VHDX_MIB != 0 || h->log_offset % VHDUP__VHDX_MIB != 0)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "log offset %" PRIu64 " (byte 72) or length %" PRIu32
                       " (byte 68) is not a multiple of 1 MiB",
                       h->log_offset, h->log_length);
  if (h->log_length != 0 && h->log_offset < VHDUP__VHDX_MIB)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "log offset %" PRIu64 " (byte 72) lies in the header section",
                       h->log_offset);
  return 0;
}

/* One region table entry's checks (2.2.3.2). */
static int region_entry(const uint8_t *e, uint32_t i, uint64_t file_size, vhdup__err *err) {
  uint64_t off = vhdup__le64(e + 16);
  uint32_t len = vhdup__le32(e + 24);
  uint32_t at = 16 + 32 * i;
  if (off % VHDUP__VHDX_MIB != 0 || off < VHDUP__VHDX_MIB)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "entry %" PRIu32 " (byte %" PRIu32 "): file offset %" PRIu64
                       " is not a multiple of 1 MiB past the header section",
                       i, at + 16, off);
  if (len == 0 || len % VHDUP__VHDX_MIB != 0)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "entry %" PRIu32 " (byte %" PRIu32 "): length %" PRIu32
                       " is not a non-zero multiple of 1 MiB",
                       i, at + 24, len);
  if (off > file_size || file_size - off < len)
    return vhdup__errf(err, VHDUP_ETRUNCATED,
                       "entry %" PRIu32 " (byte %" PRIu32 "): region [%" PRIu64 ", %" PRIu64
                       ") runs past the end of the file (size %" PRIu64 ")",
                       i, at + 16, off, off + len, file_size);
  return 0;
}

int vhdup__vhdx_regions_decode(const uint8_t buf[VHDUP__VHDX_REGION_SIZE], uint64_t file_size,
                               vhdup__vhdx_regions *r, vhdup__err *err) {
  memset(r, 0, sizeof(*r));
  if (memcmp(buf, "regi", 4) != 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "signature (byte 0) is not 'regi'");
  uint32_t sum = vhdup__le32(buf + 4);
  uint32_t crc = vhdup__crc32c_skip(buf, VHDUP__VHDX_REGION_SIZE, 4);
  if (crc != sum)
    return vhdup__errf(err, VHDUP_ECHECKSUM,
                       "checksum (byte 4) 0x%08" PRIx32 " is not the CRC-32C 0x%08" PRIx32, sum,
                       crc);
  r->count = vhdup__le32(buf + 8);
  if (r->count > VHDUP__VHDX_MAX_ENTRIES)
    return vhdup__errf(err, VHDUP_EFORMAT, "entry count %" PRIu32 " (byte 8) exceeds %u", r->count,
                       VHDUP__VHDX_MAX_ENTRIES);
  for (uint32_t i = 0; i < r->count; i++) {
    const uint8_t *e = buf + 16 + 32 * i;
    int rc = region_entry(e, i, file_size, err);
    if (rc < 0)
      return rc;
    uint64_t off = vhdup__le64(e + 16);
    uint32_t len = vhdup__le32(e + 24);
    for (uint32_t j = 0; j < i; j++) {
      const uint8_t *o = buf + 16 + 32 * j;
      uint64_t ooff = vhdup__le64(o + 16);
      uint32_t olen = vhdup__le32(o + 24);
      if (memcmp(o, e, 16) == 0)
        return vhdup__errf(err, VHDUP_EFORMAT,
                           "entry %" PRIu32 " (byte %" PRIu32
                           ") repeats the GUID of entry %" PRIu32,
                           i, 16 + 32 * i, j);
      if (off < ooff + olen && ooff < off + len)
        return vhdup__errf(err, VHDUP_EFORMAT,
                           "entry %" PRIu32 " (byte %" PRIu32 "): region [%" PRIu64 ", %" PRIu64
                           ") overlaps entry %" PRIu32 "'s [%" PRIu64 ", %" PRIu64 ")",
                           i, 16 + 32 * i, off, off + len, j, ooff, ooff + olen);
    }
    if (guid_is(e, GUID_BAT)) {
      r->bat_offset = off;
      r->bat_length = len;
    } else if (guid_is(e, GUID_METADATA)) {
      r->meta_offset = off;
      r->meta_length = len;
    } else if (vhdup__le32(e + 28) & 1) {
      char g[39];
      vhdup__vhdx_guid_text(e, g);
      return vhdup__errf(err, VHDUP_EUNSUPPORTED,
                         "entry %" PRIu32 " (byte %" PRIu32 "): unknown region %s is marked "
                         "required",
                         i, 16 + 32 * i, g);
    }
  }
  if (r->bat_length == 0 || r->meta_length == 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "no %s region (both BAT and metadata are required)",
                       r->bat_length == 0 ? "BAT" : "metadata");
  return 0;
}

/* One metadata table entry's checks (2.6.1.2); *known is its item index or
 * -1. */
static int meta_entry(const uint8_t *e, uint32_t i, uint32_t region_len, int *known,
                      vhdup__err *err) {
  uint32_t off = vhdup__le32(e + 16), len = vhdup__le32(e + 20), flags = vhdup__le32(e + 24);
  uint32_t at = 32 + 32 * i;
  char g[39];
  vhdup__vhdx_guid_text(e, g);
  *known = -1;
  if (len > VHDUP__VHDX_MAX_ITEM)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "entry %" PRIu32 " (byte %" PRIu32 ", item %s): length %" PRIu32
                       " exceeds 1 MiB",
                       i, at + 20, g, len);
  if (len != 0 && (off < VHDUP__VHDX_META_TABLE_SIZE || off > region_len || region_len - off < len))
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "entry %" PRIu32 " (byte %" PRIu32 ", item %s): [%" PRIu32 ", +%" PRIu32
                       ") is not between the table's end (65536) and the region's (%" PRIu32 ")",
                       i, at + 16, g, off, len, region_len);
  if (!(flags & 1))
    for (int k = 0; k < VHDUP__VHDX_ITEMS; k++)
      if (guid_is(e, item_guids[k]))
        *known = k;
  if (*known < 0 && (flags & 4))
    return vhdup__errf(err, VHDUP_EUNSUPPORTED,
                       "entry %" PRIu32 " (byte %" PRIu32 "): unknown metadata item %s is marked "
                       "required",
                       i, at + 24, g);
  return 0;
}

int vhdup__vhdx_meta_table_decode(const uint8_t buf[VHDUP__VHDX_META_TABLE_SIZE],
                                  uint32_t region_len, vhdup__vhdx_meta_table *t, vhdup__err *err) {
  memset(t, 0, sizeof(*t));
  if (memcmp(buf, "metadata", 8) != 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "signature (byte 0) is not 'metadata'");
  t->count = vhdup__le16(buf + 10);
  if (t->count > VHDUP__VHDX_MAX_ENTRIES)
    return vhdup__errf(err, VHDUP_EFORMAT, "entry count %" PRIu32 " (byte 10) exceeds %u", t->count,
                       VHDUP__VHDX_MAX_ENTRIES);
  int seen[VHDUP__VHDX_ITEMS] = {0};
  for (uint32_t i = 0; i < t->count; i++) {
    const uint8_t *e = buf + 32 + 32 * i;
    int k, rc = meta_entry(e, i, region_len, &k, err);
    if (rc < 0)
      return rc;
    uint32_t off = vhdup__le32(e + 16), len = vhdup__le32(e + 20);
    for (uint32_t j = 0; j < i; j++) {
      const uint8_t *o = buf + 32 + 32 * j;
      uint32_t ooff = vhdup__le32(o + 16), olen = vhdup__le32(o + 20);
      if (memcmp(o, e, 16) == 0 && ((vhdup__le32(o + 24) ^ vhdup__le32(e + 24)) & 1) == 0)
        return vhdup__errf(err, VHDUP_EFORMAT,
                           "entry %" PRIu32 " (byte %" PRIu32
                           ") repeats the item of entry %" PRIu32,
                           i, 32 + 32 * i, j);
      if (len != 0 && olen != 0 && off < ooff + olen && ooff < off + len)
        return vhdup__errf(err, VHDUP_EFORMAT,
                           "entry %" PRIu32 " (byte %" PRIu32 "): item [%" PRIu32 ", +%" PRIu32
                           ") overlaps entry %" PRIu32 "'s",
                           i, 32 + 32 * i + 16, off, len, j);
    }
    if (k >= 0) {
      seen[k] = 1;
      t->offset[k] = off;
      t->length[k] = len;
    }
  }
  for (int k = 0; k < VHDUP__VHDX_ITEMS; k++)
    if (k != VHDUP__VHDX_ITEM_PARENT_LOCATOR && !seen[k])
      return vhdup__errf(err, VHDUP_EFORMAT, "the required %s item %s is missing", item_names[k],
                         item_guids[k]);
  return 0;
}

/* UTF-16LE to UTF-8 (unpaired surrogates become U+FFFD); always
 * NUL-terminated, truncated to cap. */
static void utf16le_to_utf8(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t w = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    uint32_t c = vhdup__le16(p + i);
    if (c >= 0xd800 && c < 0xdc00 && i + 3 < n && vhdup__le16(p + i + 2) >= 0xdc00 &&
        vhdup__le16(p + i + 2) < 0xe000) {
      c = 0x10000 + ((c - 0xd800) << 10) + (vhdup__le16(p + i + 2) - 0xdc00u);
      i += 2;
    } else if (c >= 0xd800 && c < 0xe000) {
      c = 0xfffd;
    }
    uint8_t b[4];
    size_t k = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (k == 1)
      b[0] = (uint8_t)c;
    else {
      for (size_t j = k - 1; j > 0; j--, c >>= 6)
        b[j] = (uint8_t)(0x80 | (c & 0x3f));
      b[0] = (uint8_t)((k == 2 ? 0xc0 : k == 3 ? 0xe0 : 0xf0) | c);
    }
    if (w + k + 1 > cap)
      break;
    memcpy(out + w, b, k);
    w += k;
  }
  out[w] = '\0';
}

int vhdup__vhdx_locator_decode(const uint8_t *buf, size_t len, vhdup__vhdx_locator *l,
                               vhdup__err *err) {
  memset(l, 0, sizeof(*l));
  if (len < 20)
    return vhdup__errf(err, VHDUP_EFORMAT, "%zu bytes are too few for its 20-byte header", len);
  if (!guid_is(buf, GUID_LOCATOR_TYPE)) {
    char g[39];
    vhdup__vhdx_guid_text(buf, g);
    return vhdup__errf(err, VHDUP_EUNSUPPORTED, "locator type %s (byte 0) is not VHDX's %s", g,
                       GUID_LOCATOR_TYPE);
  }
  uint16_t n = vhdup__le16(buf + 18);
  if (20 + (size_t)n * 12 > len)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%u key/value entries (byte 18) do not fit in its %zu bytes", n, len);
  for (uint16_t i = 0; i < n; i++) {
    const uint8_t *e = buf + 20 + 12 * i;
    uint32_t ko = vhdup__le32(e), vo = vhdup__le32(e + 4);
    uint16_t kl = vhdup__le16(e + 8), vl = vhdup__le16(e + 10);
    if (kl == 0 || vl == 0 || ko > len || len - ko < kl || vo > len || len - vo < vl)
      return vhdup__errf(err, VHDUP_EFORMAT,
                         "entry %u (byte %u): key [%" PRIu32 ", +%u) or value [%" PRIu32
                         ", +%u) is empty or outside its %zu bytes",
                         i, 20 + 12 * i, ko, kl, vo, vl, len);
    char key[64];
    utf16le_to_utf8(buf + ko, kl, key, sizeof(key));
    char *dst = NULL;
    size_t cap = 0;
    if (strcmp(key, "parent_linkage") == 0)
      dst = l->parent_linkage, cap = sizeof(l->parent_linkage);
    else if (strcmp(key, "parent_linkage2") == 0)
      dst = l->parent_linkage2, cap = sizeof(l->parent_linkage2);
    else if (strcmp(key, "relative_path") == 0)
      dst = l->relative_path, cap = sizeof(l->relative_path);
    else if (strcmp(key, "volume_path") == 0)
      dst = l->volume_path, cap = sizeof(l->volume_path);
    else if (strcmp(key, "absolute_win32_path") == 0)
      dst = l->absolute_win32_path, cap = sizeof(l->absolute_win32_path);
    if (dst != NULL && dst[0] != '\0')
      return vhdup__errf(err, VHDUP_EFORMAT, "entry %u (byte %u): key '%s' appears twice", i,
                         20 + 12 * i, key);
    if (dst != NULL)
      utf16le_to_utf8(buf + vo, vl, dst, cap);
  }
  if (l->parent_linkage[0] == '\0')
    return vhdup__errf(err, VHDUP_EFORMAT, "no parent_linkage key (2.6.2.6.1 requires it)");
  return 0;
}
