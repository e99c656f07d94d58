/* The disk format core: VHD (footers, dynamic headers, BATs, sector
 * bitmaps, differencing chains), VHDX (vhdx.h) and raw images behind one
 * opened-disk type; an extent iterator over the virtual disk; fixed-footer
 * synthesis. Pure: all input arrives through vhdup__src
 * read callbacks (memory buffers in tests and fuzzing, pread in the tools),
 * no libuv, no curl. Spec: Microsoft "Virtual Hard Disk Image Format
 * Specification" 1.0 (footer, dynamic header, BAT, block bitmaps, CHS
 * algorithm in appendix). All on-disk integers are big-endian. */
#ifndef VHDUP_VHD_H
#define VHDUP_VHD_H

#include "util/err.h"
#include "vhd/vhdx.h"
#include "vhdup_enums.h"

#include <stddef.h>
#include <stdint.h>

#define VHDUP__SECTOR 512u
#define VHDUP__FOOTER_SIZE 512u
#define VHDUP__DYNHDR_SIZE 1024u
#define VHDUP__MAX_CHAIN_DEPTH 16u
/* Page blobs are at most 8 TiB, footer included (docs/azure.md, "Page blobs"). Larger claims
 * are refused during validation. */
#define VHDUP__MAX_VIRTUAL_SIZE (8ull * 1024 * 1024 * 1024 * 1024 - 512)

enum {
  VHDUP__DISK_NONE = 0,
  VHDUP__DISK_FIXED = 2,
  VHDUP__DISK_DYNAMIC = 3,
  VHDUP__DISK_DIFFERENCING = 4,
};

/* How the source is to be taken: the public vhdup_format. AUTO: a file that
 * starts with the VHDX file identifier "vhdxfile" is a VHDX; else a file
 * with a valid (or recoverable) VHD footer is a VHD; a file with neither is
 * raw only when its name ends in .raw/.img/.bin (case-insensitive);
 * anything else is an error. VHD, VHDX, RAW: take the file as that. */

/* A random-access byte source. read() fills exactly len bytes at off and
 * returns 0, or a negative error (a read past src->size is
 * VHDUP_ETRUNCATED). name is used in messages.
 *
 * next_data (optional, NULL: every byte may hold data) says where the
 * source's holes are, as lseek(2)'s SEEK_DATA and SEEK_HOLE do: it sets
 * [*start, *end), the first stretch at or after off that may hold data
 * (off <= *start <= *end <= size; *start == *end == size when only a hole
 * follows), and returns 0. A hole reads as zeros. A negative return means
 * the source cannot tell: the caller takes everything as data. Only raw
 * images use it (a raw image is its file). */
typedef struct vhdup__src {
  void *ctx;
  const char *name;
  uint64_t size;
  int (*read)(const struct vhdup__src *src, uint64_t off, void *buf, size_t len);
  int (*next_data)(const struct vhdup__src *src, uint64_t off, uint64_t *start, uint64_t *end);
} vhdup__src;

typedef struct vhdup__footer {
  uint8_t cookie[8];
  uint32_t features;
  uint32_t version;
  uint64_t data_offset;
  uint32_t timestamp; /* seconds since 2000-01-01 00:00:00 UTC */
  uint8_t creator_app[4];
  uint32_t creator_version;
  uint8_t creator_os[4];
  uint64_t original_size;
  uint64_t current_size;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors_per_track;
  uint32_t disk_type;
  uint32_t checksum;
  uint8_t uuid[16];
  uint8_t saved_state;
} vhdup__footer;

#define VHDUP__PARENT_LOCATORS 8
typedef struct vhdup__locator {
  uint8_t platform_code[4]; /* "W2ru", "W2ku", "MacX", or zeros */
  uint32_t data_space;      /* sectors reserved */
  uint32_t data_length;     /* bytes of locator data */
  uint64_t data_offset;     /* absolute file offset */
} vhdup__locator;

typedef struct vhdup__dynhdr {
  uint8_t cookie[8];
  uint64_t data_offset;
  uint64_t table_offset;
  uint32_t header_version;
  uint32_t max_table_entries;
  uint32_t block_size;
  uint32_t checksum;
  uint8_t parent_uuid[16];
  uint32_t parent_timestamp;
  uint16_t parent_name[256]; /* UTF-16BE code units as stored, host order here */
  vhdup__locator locators[VHDUP__PARENT_LOCATORS];
} vhdup__dynhdr;

/* The VHD checksum: one's complement of the byte sum of buf with the 4 bytes
 * at cksum_off taken as zero. */
uint32_t vhdup__vhd_checksum(const uint8_t *buf, size_t len, size_t cksum_off);

/* Decodes a 512-byte footer. Checks cookie and checksum; err names the
 * field (and, through what, the file and offset the caller gives in
 * its own message). Returns 0, VHDUP_EFORMAT (cookie) or VHDUP_ECHECKSUM. */
int vhdup__footer_decode(const uint8_t buf[VHDUP__FOOTER_SIZE], vhdup__footer *f, vhdup__err *err);

/* Encodes f into buf, computing the checksum (f->checksum is ignored). */
void vhdup__footer_encode(const vhdup__footer *f, uint8_t buf[VHDUP__FOOTER_SIZE]);

/* Decodes a 1024-byte dynamic header (cookie, checksum). Same returns. */
int vhdup__dynhdr_decode(const uint8_t buf[VHDUP__DYNHDR_SIZE], vhdup__dynhdr *h, vhdup__err *err);
void vhdup__dynhdr_encode(const vhdup__dynhdr *h, uint8_t buf[VHDUP__DYNHDR_SIZE]);

/* The size qemu's vpc driver reads for this footer: the current size for
 * the creators it trusts ("win ", "qem2", "d2v ", "CTXS", "tap\0") or a
 * maximal geometry, otherwise the CHS product. vhdup and Azure always use
 * the current size; inspect shows both when they differ. */
uint64_t vhdup__qemu_virtual_size(const vhdup__footer *f);

/* CHS geometry for a size in bytes, by the spec's appendix algorithm. */
void vhdup__chs(uint64_t size, uint16_t *cylinders, uint8_t *heads, uint8_t *spt);

/* The fixed-disk footer an upload writes last: type 2, data offset all
 * ones, current and original size = vsize, geometry from vhdup__chs(),
 * creator "win " (version 10.0, host OS "Wi2k": qemu trusts the current size
 * of Hyper-V's disks and reads others by CHS), features 2, version
 * 0x00010000, checksum filled in. UUID and timestamp are
 * taken from src when given (so the uploaded disk keeps its identity),
 * else left zero; saved_state 0. */
void vhdup__fixed_footer(const vhdup__footer *src, uint64_t vsize, vhdup__footer *out);

/* An opened, validated disk (one layer plus its parents). */
typedef struct vhdup__disk vhdup__disk;

/* Opens parents of a differencing disk: given a candidate path (already
 * resolved: relative W2ru paths joined to the child's folder), fill *out and
 * return 0, or return a negative error (UV_ENOENT when absent); a failing
 * candidate is not fatal, the next locator is tried. close_parent releases
 * what open_parent made (it gets a copy of the vhdup__src open_parent
 * filled, same ctx). Locators are tried W2ru, W2ku, MacX; the first path
 * that opens is the parent (a mismatch there is an error, not a reason to
 * guess on). */
typedef struct vhdup__parent_io {
  void *ctx;
  int (*open_parent)(void *ctx, const char *path, vhdup__src *out);
  void (*close_parent)(void *ctx, vhdup__src *src);
} vhdup__parent_io;

typedef struct vhdup__open_opts {
  vhdup_format format;
  const vhdup__parent_io *parent_io; /* NULL: differencing disks fail with EPARENT */
  const char *parent_override;       /* --parent PATH for the first parent */
  /* Folder of the file (for W2ru relative locators); NULL means ".". */
  const char *dir;
} vhdup__open_opts;

/* Validates everything before anything else (footer and its copy, dynamic
 * header, BAT bounds/overlaps, block size, bitmaps' places, parent chain)
 * and opens the disk. Memory is bounded by the file's real size, never by
 * what its headers claim. On failure *out is NULL and err->msg names file
 * (src->name), field and byte offset. Returns 0, VHDUP_EFORMAT,
 * VHDUP_ECHECKSUM, VHDUP_ETRUNCATED, VHDUP_EPARENT, VHDUP_ELIMIT,
 * VHDUP_EUNSUPPORTED, VHDUP_ENOMEM, or a read error. */
int vhdup__disk_open(const vhdup__src *src, const vhdup__open_opts *opts, vhdup__disk **out,
                     vhdup__err *err) __attribute__((warn_unused_result));

/* Frees the disk and closes parents it opened (through close_parent). */
void vhdup__disk_free(vhdup__disk *d);

typedef struct vhdup__disk_info {
  vhdup_format format;   /* VHD, VHDX or RAW: what the file was taken as */
  int type;              /* VHDUP__DISK_FIXED/DYNAMIC/DIFFERENCING; raw reports FIXED */
  int is_raw;            /* no VHD footer at all (format RAW) */
  uint64_t virtual_size; /* VHD: the footer's current size, always; VHDX: VirtualDiskSize */
  uint64_t file_size;
  uint32_t block_size;          /* dynamic/differencing */
  uint32_t max_table_entries;   /* VHDX: BAT entries, payload and sector bitmap */
  uint32_t blocks_allocated;    /* BAT entries in use (this layer; VHDX: payload blocks
                                   fully or partially present) */
  uint64_t bytes_allocated;     /* blocks_allocated * block_size, clipped to virtual size;
                                   fixed: the virtual size; raw: the bytes outside the
                                   holes its source reports (all of it without next_data) */
  uint64_t data_regions;        /* raw with next_data: stretches of data found, else 0 */
  unsigned chain_depth;         /* 1 for no parent */
  int footer_recovered;         /* the footer at the end was bad; the copy at 0 was used */
  uint32_t logical_sector_size; /* 512 but for a VHDX that says 4096 */
  /* VHD: the footer. VHDX: a footer made up for it (current size, the
   * page 83 identifier as the UUID), so what takes a disk's identity from
   * the footer works for both. */
  vhdup__footer footer;
  vhdup__dynhdr header;  /* valid for VHD dynamic/differencing */
  vhdup__vhdx_info vhdx; /* valid for VHDX */
} vhdup__disk_info;

void vhdup__disk_get_info(const vhdup__disk *d, vhdup__disk_info *info);

/* The parent of d, or NULL. */
const vhdup__disk *vhdup__disk_parent(const vhdup__disk *d);
/* The path the parent was opened from (NULL without parent). */
const char *vhdup__disk_parent_path(const vhdup__disk *d);
/* This layer's source. */
const vhdup__src *vhdup__disk_src(const vhdup__disk *d);

/* Warnings found while opening (footer recovered from the copy, CHS or
 * original size disagreeing with the current size, and what qemu would
 * take as the size instead, ...). Index from 0; NULL past the end. */
const char *vhdup__disk_warning(const vhdup__disk *d, size_t i);

/* One run of the virtual disk, of one of three kinds:
 * - zeros: src NULL;
 * - file data: src set, mem NULL: its bytes are src's bytes
 *   [file_offset, file_offset + length);
 * - data in memory: mem set: its bytes are mem[0, length), held by the
 *   disk until vhdup__disk_free (a VHDX log's data sectors, replayed in
 *   memory, [MS-VHDX] 2.3). src and file_offset still name the layer and
 *   where the bytes belong in its file, which holds older ones. */
typedef struct vhdup__extent {
  uint64_t virtual_offset;
  uint64_t length;
  const vhdup__src *src;
  uint64_t file_offset;
  const uint8_t *mem;
} vhdup__extent;

/* Walks the virtual disk in offset order, from 0 to the virtual size, with
 * adjacent extents of the same kind merged (a zero extent follows a data
 * extent, a data extent continues only while file offsets are contiguous
 * in the same file, and memory while it is contiguous in memory). Extents never exceed max_len (0:
 * no limit; otherwise rounded down to a multiple of 512, at least 512) and every offset and length
 * is a multiple of 512. Memory: a bitmap per chain layer, nothing in proportion to the disk. */
typedef struct vhdup__extent_iter vhdup__extent_iter;

int vhdup__extent_iter_new(const vhdup__disk *d, uint64_t max_len, vhdup__extent_iter **out)
    __attribute__((warn_unused_result));
/* Returns 1 with *e filled, 0 at the end, or a negative error (a bitmap read
 * failed: err says which file and offset). A read failing while an extent
 * is being extended just ends that extent; the next call reports it.
 * vhdup__extent_iter_new returns 0 or VHDUP_ENOMEM. */
int vhdup__extent_next(vhdup__extent_iter *it, vhdup__extent *e, vhdup__err *err);
void vhdup__extent_iter_free(vhdup__extent_iter *it);

/* An in-memory source over a caller-owned buffer (tests, fuzzing). */
void vhdup__src_from_buffer(vhdup__src *src, const char *name, const uint8_t *buf, size_t len);

#endif
