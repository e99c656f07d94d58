/* The VHDX format ([MS-VHDX], Microsoft Open Specifications): the pieces
 * that decode from a buffer alone (file identifier, headers, region table,
 * metadata table, parent locator, BAT entries), and what an opened VHDX
 * layer reports. Opening and validating a whole file is vhdx_open.c's; the
 * disk type that wraps both formats is vhd.h's. All integers are
 * little-endian (2.1); GUIDs are kept as their 16 stored bytes. */
#ifndef VHDUP_VHDX_H
#define VHDUP_VHDX_H

#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

#define VHDUP__VHDX_KIB 1024u
#define VHDUP__VHDX_MIB (1024u * 1024u)
/* 2.2: the header section is the first 1 MiB: file identifier at 0,
 * headers at 64 KiB and 128 KiB, region tables at 192 KiB and 256 KiB. */
#define VHDUP__VHDX_HEADER1_OFF (64u * VHDUP__VHDX_KIB)
#define VHDUP__VHDX_HEADER2_OFF (128u * VHDUP__VHDX_KIB)
#define VHDUP__VHDX_HEADER_SIZE (4u * VHDUP__VHDX_KIB) /* checksummed part, 2.2.2 */
#define VHDUP__VHDX_REGION1_OFF (192u * VHDUP__VHDX_KIB)
#define VHDUP__VHDX_REGION2_OFF (256u * VHDUP__VHDX_KIB)
#define VHDUP__VHDX_REGION_SIZE (64u * VHDUP__VHDX_KIB)
#define VHDUP__VHDX_META_TABLE_SIZE (64u * VHDUP__VHDX_KIB) /* 2.6.1 */
#define VHDUP__VHDX_MAX_ENTRIES 2047u                       /* region and metadata tables */
#define VHDUP__VHDX_MAX_ITEM (1024u * VHDUP__VHDX_KIB)      /* 2.6.1.2: item Length */

/* 2.5.1.1 payload block states and 2.5.1.2 sector bitmap block states. */
enum {
  VHDUP__VHDX_NOT_PRESENT = 0,
  VHDUP__VHDX_UNDEFINED = 1,
  VHDUP__VHDX_ZERO = 2,
  VHDUP__VHDX_UNMAPPED = 3,
  VHDUP__VHDX_FULLY_PRESENT = 6,
  VHDUP__VHDX_PARTIALLY_PRESENT = 7,
  VHDUP__VHDX_SB_PRESENT = 6,
};

/* 2.2.2 Header. */
typedef struct vhdup__vhdx_header {
  uint32_t checksum;
  uint64_t sequence_number;
  uint8_t file_write_guid[16];
  uint8_t data_write_guid[16];
  uint8_t log_guid[16];
  uint16_t log_version;
  uint16_t version;
  uint32_t log_length;
  uint64_t log_offset;
} vhdup__vhdx_header;

/* Decodes and checks the first 4 KiB of a header: signature "head",
 * CRC-32C, Version 1, LogVersion 0, log offset and length multiples of
 * 1 MiB. err says which field and its byte offset within the header.
 * Returns 0, VHDUP_EFORMAT, VHDUP_ECHECKSUM or VHDUP_EUNSUPPORTED. */
int vhdup__vhdx_header_decode(const uint8_t buf[VHDUP__VHDX_HEADER_SIZE], vhdup__vhdx_header *h,
                              vhdup__err *err);

/* 2.2.3 Region table, reduced to what a reader needs. */
typedef struct vhdup__vhdx_regions {
  uint32_t count;
  uint64_t bat_offset, meta_offset;
  uint32_t bat_length, meta_length;
} vhdup__vhdx_regions;

/* Decodes and checks a 64 KiB region table: signature "regi", CRC-32C,
 * entry count <= 2047, each entry 1 MiB aligned past the first 1 MiB and
 * within file_size, no two entries with the same GUID or overlapping, no
 * unknown entry marked required, BAT and metadata present. */
int vhdup__vhdx_regions_decode(const uint8_t buf[VHDUP__VHDX_REGION_SIZE], uint64_t file_size,
                               vhdup__vhdx_regions *r, vhdup__err *err);

/* 2.6.1 Metadata table: where the known items are (offsets relative to
 * the metadata region; length 0: absent). */
enum {
  VHDUP__VHDX_ITEM_FILE_PARAMETERS = 0,
  VHDUP__VHDX_ITEM_VIRTUAL_SIZE,
  VHDUP__VHDX_ITEM_PAGE83,
  VHDUP__VHDX_ITEM_LOGICAL_SECTOR,
  VHDUP__VHDX_ITEM_PHYSICAL_SECTOR,
  VHDUP__VHDX_ITEM_PARENT_LOCATOR,
  VHDUP__VHDX_ITEMS
};
typedef struct vhdup__vhdx_meta_table {
  uint32_t count;
  uint32_t offset[VHDUP__VHDX_ITEMS];
  uint32_t length[VHDUP__VHDX_ITEMS];
} vhdup__vhdx_meta_table;

/* Decodes and checks a 64 KiB metadata table of a region of region_len
 * bytes: signature "metadata", count <= 2047, items past the table and
 * inside the region, at most 1 MiB, not overlapping, no duplicates, no
 * unknown required item (VHDUP_EUNSUPPORTED). */
int vhdup__vhdx_meta_table_decode(const uint8_t buf[VHDUP__VHDX_META_TABLE_SIZE],
                                  uint32_t region_len, vhdup__vhdx_meta_table *t, vhdup__err *err);

/* 2.6.2.6 Parent locator: the values of the keys vhdup uses, as UTF-8
 * (empty when absent). */
typedef struct vhdup__vhdx_locator {
  char parent_linkage[40];
  char parent_linkage2[40];
  char relative_path[1024];
  char volume_path[1024];
  char absolute_win32_path[1024];
} vhdup__vhdx_locator;

/* Decodes a parent locator item of len bytes: locator type
 * {B04AEFB7-D19E-4A81-B789-25B8E9445913}, key/value entries inside the
 * item, UTF-16LE keys and values, parent_linkage present. Returns 0,
 * VHDUP_EFORMAT or VHDUP_EUNSUPPORTED (another locator type). */
int vhdup__vhdx_locator_decode(const uint8_t *buf, size_t len, vhdup__vhdx_locator *l,
                               vhdup__err *err);

/* A GUID's stored bytes as text, "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}"
 * with the first three fields little-endian, as Windows writes them. */
void vhdup__vhdx_guid_text(const uint8_t g[16], char out[39]);

/* What an opened VHDX layer reports (vhdup__disk_info.vhdx). */
typedef struct vhdup__vhdx_info {
  unsigned header_index;       /* 1 or 2: the current header */
  uint64_t sequence_number;    /* of the current header */
  vhdup__vhdx_header header;   /* the current header */
  vhdup__vhdx_regions regions; /* from the region table used */
  unsigned region_table_index; /* 1 or 2 */
  uint32_t chunk_ratio;        /* 2.5: 2^23 * logical sector size / block size */
  uint32_t physical_sector_size;
  int leave_allocated, has_parent;
  uint8_t page83[16];          /* the virtual disk identifier, 2.6.2.5 */
  vhdup__vhdx_locator locator; /* has_parent only */
  uint32_t log_entries_replayed;
} vhdup__vhdx_info;

#endif
