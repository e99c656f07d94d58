/* Internals shared by the disk module's files: the opened disk layer, VHD,
 * VHDX or raw (a tagged union: info.format says which fields hold). */
#ifndef VHDUP_VHD_INT_H
#define VHDUP_VHD_INT_H

#include "vhd/vhd.h"

#define VHDUP__VHD_MAX_WARNINGS 6
#define VHDUP__VHD_WARNING_LEN 512

/* A VHDX layer's block map ([MS-VHDX] 2.5): the payload entries only, one
 * per block, and for a differencing disk one sector bitmap entry per
 * chunk. Entries are kept as stored (state in bits 0-2, FileOffsetMB in
 * bits 20-63) and were all checked when the disk was opened. */
typedef struct vhdup__vhdx_map {
  /* Where the metadata, the BAT and sector bitmaps are read: the file, or
   * the file under the replayed log (vhdx_log.c). */
  vhdup__src meta_src;
  struct vhdup__vhdx_log *log; /* NULL unless a log was replayed */
  uint64_t *payload;           /* nblocks entries */
  uint64_t *bitmaps;           /* nchunks entries; NULL unless has_parent */
  uint64_t nblocks;            /* ceil(virtual size / block size) */
  uint64_t nchunks;            /* ceil(nblocks / chunk ratio) */
  uint32_t bitmap_span;        /* bytes of sector bitmap per block: block size / sector / 8 */
} vhdup__vhdx_map;

struct vhdup__disk {
  vhdup__src src;       /* this layer's source (a copy of the caller's) */
  int owns_src;         /* opened through parent_io: close it on free */
  vhdup__parent_io pio; /* how to close src when owns_src */
  vhdup__disk_info info;
  uint32_t *bat;        /* VHD: host order, bat_len entries; NULL for fixed/raw/VHDX */
  uint32_t bat_len;     /* ceil(virtual size / block size), <= max_table_entries */
  uint32_t bitmap_size; /* bytes of sector bitmap ahead of each block */
  vhdup__vhdx_map x;    /* VHDX only */
  struct vhdup__disk *parent;
  char *parent_path;
  size_t nwarnings;
  char warnings[VHDUP__VHD_MAX_WARNINGS][VHDUP__VHD_WARNING_LEN];
};

/* Records a warning on d (dropped past VHDUP__VHD_MAX_WARNINGS). */
void vhdup__disk_warn(vhdup__disk *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads len bytes at off of src; on failure err names the file, what and
 * the offset. */
int vhdup__disk_read(const vhdup__src *src, uint64_t off, void *buf, size_t len, const char *what,
                     vhdup__err *err);

/* The file identifier at 0 ([MS-VHDX] 2.2.1): does src start with
 * "vhdxfile"? 0 or 1, or a negative read error. */
int vhdup__vhdx_sniff(const vhdup__src *src);

/* Opens VHDX layer d (src, file size set; parents are the caller's):
 * identifier, headers, log, region tables, metadata, BAT; fills d->info and
 * d->x. Errors name file, field and byte offset. */
int vhdup__vhdx_open_layer(vhdup__disk *d, vhdup__err *err);

/* What a parent must be, as its child says: the child's name and virtual
 * size, and either the VHD child's parent UUID (the parent must be a VHD
 * with that footer UUID) or the VHDX child's parent_linkage (and
 * parent_linkage2) that the parent's DataWriteGuid (a VHD parent's footer
 * UUID) must match, [MS-VHDX] 2.6.2.6.1. */
typedef struct vhdup__parent_expect {
  const char *child_name;
  uint64_t size;
  const uint8_t *vhd_uuid;
  const char *linkage, *linkage2;
  uint32_t sector_size; /* the VHDX child's logical sector size */
} vhdup__parent_expect;

/* Opens one layer of any format (by opts->format, or for a parent by its
 * child's kind) and, below it, its parents. ex: NULL for the top. */
int vhdup__open_layer(const vhdup__src *src, const vhdup__open_opts *opts, const char *dir,
                      const char *override, unsigned depth, const vhdup__parent_expect *ex,
                      vhdup__disk **out, vhdup__err *err);

/* Tries path (owned) as d's parent: 1 opened, 0 not found (noted in
 * tried), negative: an error. */
int vhdup__try_parent(vhdup__disk *d, const vhdup__open_opts *opts, char *path, unsigned depth,
                      const vhdup__parent_expect *ex, char *tried, size_t tried_cap, size_t *tw,
                      vhdup__err *err);

/* The folder part of path (NULL when it has none). */
char *vhdup__dir_of(const char *path);

/* Opens VHDX layer d and, for a differencing one, its parents. */
int vhdup__vhdx_open_chain(vhdup__disk *d, const vhdup__open_opts *opts, const char *dir,
                           const char *override, unsigned depth, vhdup__err *err);

/* Checks an opened parent d against its VHDX child's expectations. */
int vhdup__vhdx_check_parent(const vhdup__disk *d, const vhdup__parent_expect *ex, vhdup__err *err);

/* Reads and checks the BAT (2.5) into d->x; metadata already read. */
int vhdup__vhdx_read_bat(vhdup__disk *d, vhdup__err *err);

/* The log of a VHDX whose current header has a non-zero LogGuid (2.3):
 * finds the active sequence, flattens its writes and makes d->x.meta_src
 * read through them. */
int vhdup__vhdx_log_replay(vhdup__disk *d, vhdup__err *err);

/* What the replayed log holds at file offset off: VHDUP__LOG_FILE (the
 * file's bytes: no write there), VHDUP__LOG_ZERO, or VHDUP__LOG_MEMORY
 * with *mem pointing at the bytes (the log owns them until the disk is
 * freed). *limit is cut to where that answer holds. */
enum { VHDUP__LOG_FILE = 0, VHDUP__LOG_ZERO, VHDUP__LOG_MEMORY };
int vhdup__vhdx_log_lookup(const struct vhdup__vhdx_log *lg, uint64_t off, uint64_t *limit,
                           const uint8_t **mem);
void vhdup__vhdx_log_free(struct vhdup__vhdx_log *lg);

/* A raw source's next stretch of data at or after off (vhd.h, next_data),
 * widened to whole sectors. 0, or a negative error when the source cannot
 * tell (no next_data, or its answer failed or made no sense). */
int vhdup__raw_next_data(const vhdup__src *src, uint64_t off, uint64_t *start, uint64_t *end);

/* Sets a raw layer's bytes_allocated and data_regions from its holes. */
void vhdup__raw_count(vhdup__disk *d);

/* Frees what vhdup__vhdx_open_layer allocated in d->x. */
void vhdup__vhdx_map_free(vhdup__vhdx_map *x);

#endif
