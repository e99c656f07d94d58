/* The extent iterator: the virtual disk as runs of "read these file bytes"
 * and "zeros", resolved through the differencing chain child first. A
 * sector belongs to the first layer that has it: a VHD layer whose BAT
 * entry is allocated and whose sector bitmap bit is set (VHD spec "Block
 * Bitmap": MSB first, bit 7 of byte 0 is the block's first sector); a VHDX
 * layer whose block is fully present, or partially present with the
 * sector's bit set ([MS-VHDX] 2.4: LSB first, bit 0 of byte 0 is the first
 * sector), or that says the block is zero; a raw layer outside the holes
 * its source reports. Below the last layer it is zero. A VHDX layer's data
 * that its replayed log wrote (2.3) comes from the log, in memory. */
#include "vhd/vhd_int.h"

#include "util/alloc.h"

#include <inttypes.h>
#include <string.h>

#define UNALLOCATED 0xffffffffu

typedef struct layer {
  const vhdup__disk *d;
  uint8_t *bitmap;       /* VHD: bitmap_size bytes; VHDX: bitmap_span, for block cached_block */
  uint64_t cached_block; /* UINT64_MAX: none */
  /* Raw: [asked, data_start) is a hole and [data_start, data_end) data, as
   * the source last answered for offset asked; no_holes once it cannot
   * tell (everything from there on is data). */
  uint64_t asked, data_start, data_end;
  int no_holes;
} layer;

struct vhdup__extent_iter {
  uint64_t pos;
  uint64_t vsize;
  uint64_t max_len;
  unsigned nlayers;
  layer layers[VHDUP__MAX_CHAIN_DEPTH];
};

int vhdup__extent_iter_new(const vhdup__disk *d, uint64_t max_len, vhdup__extent_iter **out) {
  vhdup__extent_iter *it = vhdup__calloc(1, sizeof(*it));
  *out = NULL;
  if (it == NULL)
    return VHDUP_ENOMEM;
  it->vsize = d->info.virtual_size;
  it->max_len = max_len == 0 ? UINT64_MAX : max_len / VHDUP__SECTOR * VHDUP__SECTOR;
  if (it->max_len == 0)
    it->max_len = VHDUP__SECTOR;
  for (const vhdup__disk *l = d; l != NULL && it->nlayers < VHDUP__MAX_CHAIN_DEPTH; l = l->parent) {
    layer *y = &it->layers[it->nlayers++];
    y->d = l;
    y->cached_block = UINT64_MAX;
    size_t bm = l->bat != NULL ? l->bitmap_size : l->x.bitmaps != NULL ? l->x.bitmap_span : 0;
    if (bm > 0) {
      y->bitmap = vhdup__malloc(bm);
      if (y->bitmap == NULL) {
        vhdup__extent_iter_free(it);
        return VHDUP_ENOMEM;
      }
    }
  }
  *out = it;
  return 0;
}

void vhdup__extent_iter_free(vhdup__extent_iter *it) {
  if (it == NULL)
    return;
  for (unsigned i = 0; i < it->nlayers; i++)
    vhdup__free(it->layers[i].bitmap);
  vhdup__free(it);
}

/* Sector s's bit: MSB first (VHD) or LSB first (VHDX). */
static int bit(const uint8_t *bm, uint64_t s, int lsb) {
  return (bm[s / 8] >> (lsb ? s % 8 : 7 - s % 8)) & 1;
}

/* How many sectors from s (below n) share s's bit value. Whole bytes of
 * 0x00 or 0xff are skipped at once. */
static uint64_t run_of(const uint8_t *bm, uint64_t s, uint64_t n, int v, int lsb) {
  uint64_t i = s;
  uint8_t full = v ? 0xff : 0x00;
  while (i < n) {
    if (i % 8 == 0 && n - i >= 8 && bm[i / 8] == full) {
      i += 8;
      continue;
    }
    if (bit(bm, i, lsb) != v)
      break;
    i++;
  }
  return i - s;
}

enum { LOOK_BELOW = 0, LOOK_DATA, LOOK_ZERO };

static int bitmap_failed(const vhdup__disk *d, uint64_t b, uint64_t off, size_t len, int rc,
                         vhdup__err *err) {
  return vhdup__errf(err, rc,
                     "%s: sector bitmap of block %" PRIu64 " at offset %" PRIu64
                     ": read of %zu bytes failed (error %d)",
                     d->src.name != NULL ? d->src.name : "(unnamed)", b, off, len, rc);
}

/* What VHDX layer y says about pos ([MS-VHDX] 2.5.1.1): LOOK_DATA with
 * *file_off, LOOK_ZERO, or LOOK_BELOW (the parent's, or zeros without one:
 * NOT_PRESENT and UNDEFINED hold nothing of this file's); *limit is cut
 * to where that answer holds, or a negative error. */
static int look_vhdx(layer *y, uint64_t pos, uint64_t *limit, uint64_t *file_off, vhdup__err *err) {
  const vhdup__disk *d = y->d;
  uint64_t bs = d->info.block_size, lss = d->info.logical_sector_size;
  uint64_t b = pos / bs, in = pos - b * bs;
  if (bs - in < *limit)
    *limit = bs - in;
  uint64_t e = d->x.payload[b];
  uint64_t boff = (e >> 20) * VHDUP__VHDX_MIB;
  switch ((unsigned)(e & 7)) {
  case VHDUP__VHDX_FULLY_PRESENT:
    *file_off = boff + in;
    return LOOK_DATA;
  case VHDUP__VHDX_ZERO:
  case VHDUP__VHDX_UNMAPPED:
    return LOOK_ZERO;
  case VHDUP__VHDX_PARTIALLY_PRESENT:
    break;
  default:
    return LOOK_BELOW;
  }
  uint64_t cr = d->info.vhdx.chunk_ratio;
  if (y->cached_block != b) {
    uint64_t moff = (d->x.bitmaps[b / cr] >> 20) * VHDUP__VHDX_MIB + (b % cr) * d->x.bitmap_span;
    int rc = d->x.meta_src.read(&d->x.meta_src, moff, y->bitmap, d->x.bitmap_span);
    if (rc < 0) {
      y->cached_block = UINT64_MAX;
      return bitmap_failed(d, b, moff, d->x.bitmap_span, rc, err);
    }
    y->cached_block = b;
  }
  uint64_t s = in / lss, end_s = (in + *limit + lss - 1) / lss;
  int v = bit(y->bitmap, s, 1);
  uint64_t run = (s + run_of(y->bitmap, s, end_s, v, 1)) * lss - in;
  if (run < *limit)
    *limit = run;
  *file_off = boff + in;
  return v ? LOOK_DATA : LOOK_BELOW;
}

/* Whether raw layer y holds data at pos (1) or a hole (0), asking its
 * source only when pos is past what it last answered; *limit is cut to
 * where that holds. */
static int look_raw(layer *y, uint64_t pos, uint64_t *limit) {
  const vhdup__src *src = &y->d->src;
  if (src->next_data == NULL || y->no_holes)
    return 1;
  if (pos < y->asked || pos >= y->data_end) {
    uint64_t s, e;
    if (vhdup__raw_next_data(src, pos, &s, &e) < 0 || (s == e && s < src->size)) {
      y->no_holes = 1;
      return 1;
    }
    y->asked = pos;
    y->data_start = s;
    y->data_end = s == e ? UINT64_MAX : e; /* only a hole follows */
  }
  uint64_t until = pos < y->data_start ? y->data_start : y->data_end;
  if (until - pos < *limit)
    *limit = until - pos;
  return pos >= y->data_start;
}

/* Where the bytes at pos come from: *src NULL for zeros. Returns the length
 * (at most want) for which that answer holds with contiguous file offsets,
 * or a negative error. Bounding by want keeps bitmap scans in proportion
 * to what is handed out, even with 2 GiB blocks. */
static int64_t resolve(vhdup__extent_iter *it, uint64_t pos, uint64_t want, const vhdup__src **src,
                       uint64_t *file_off, const uint8_t **mem, vhdup__err *err) {
  uint64_t limit = it->vsize - pos < want ? it->vsize - pos : want;
  *mem = NULL;
  for (unsigned k = 0; k < it->nlayers; k++) {
    layer *y = &it->layers[k];
    const vhdup__disk *d = y->d;
    if (d->info.format == VHDUP_FORMAT_VHDX) {
      int look = look_vhdx(y, pos, &limit, file_off, err);
      if (look < 0)
        return look;
      /* Payload the replayed log wrote is its bytes, not the file's. */
      if (look == LOOK_DATA && d->x.log != NULL &&
          vhdup__vhdx_log_lookup(d->x.log, *file_off, &limit, mem) == VHDUP__LOG_ZERO)
        break;
      if (look == LOOK_DATA) {
        *src = &d->src;
        return (int64_t)limit;
      }
      if (look == LOOK_ZERO)
        break;
      continue;
    }
    if (d->bat == NULL) {
      if (d->info.is_raw && !look_raw(y, pos, &limit))
        break; /* a hole: zeros */
      *src = &d->src;
      *file_off = pos;
      return (int64_t)limit;
    }
    uint64_t bs = d->info.block_size;
    uint64_t b = pos / bs;
    uint64_t in = pos - b * bs;
    if (bs - in < limit)
      limit = bs - in;
    uint32_t e = b < d->bat_len ? d->bat[b] : UNALLOCATED;
    if (e == UNALLOCATED)
      continue;
    uint64_t boff = (uint64_t)e * VHDUP__SECTOR;
    if (y->cached_block != b) {
      int rc = d->src.read(&d->src, boff, y->bitmap, d->bitmap_size);
      if (rc < 0) {
        y->cached_block = UINT64_MAX;
        return bitmap_failed(d, b, boff, d->bitmap_size, rc, err);
      }
      y->cached_block = b;
    }
    uint64_t s = in / VHDUP__SECTOR;
    uint64_t end_s = (in + limit + VHDUP__SECTOR - 1) / VHDUP__SECTOR;
    int v = bit(y->bitmap, s, 0);
    uint64_t run = run_of(y->bitmap, s, end_s, v, 0) * VHDUP__SECTOR;
    if (run < limit)
      limit = run;
    if (v) {
      *src = &d->src;
      *file_off = boff + d->bitmap_size + in;
      return (int64_t)limit;
    }
  }
  *src = NULL;
  *file_off = 0;
  return (int64_t)limit;
}

int vhdup__extent_next(vhdup__extent_iter *it, vhdup__extent *e, vhdup__err *err) {
  if (it->pos >= it->vsize)
    return 0;
  const vhdup__src *src;
  const uint8_t *mem;
  uint64_t off;
  int64_t n = resolve(it, it->pos, it->max_len, &src, &off, &mem, err);
  if (n < 0)
    return (int)n;
  uint64_t len = (uint64_t)n < it->max_len ? (uint64_t)n : it->max_len;
  e->virtual_offset = it->pos;
  e->src = src;
  e->file_offset = off;
  e->mem = mem;
  it->pos += len;
  /* Merge what follows while it is the same kind and, for data, the same
   * file at the next offset. A run that does not continue is resolved again
   * by the next call, from the cached bitmaps. */
  while (len < it->max_len && it->pos < it->vsize) {
    const vhdup__src *src2;
    const uint8_t *mem2;
    uint64_t off2;
    /* A failure here ends the merge; the next call meets it again and
     * reports it, so the extent already found is not lost. */
    n = resolve(it, it->pos, it->max_len - len, &src2, &off2, &mem2, err);
    if (n < 0)
      break;
    if (src2 != src || (src != NULL && off2 != off + len) || (mem == NULL) != (mem2 == NULL) ||
        (mem != NULL && mem2 != mem + len))
      break;
    uint64_t take = (uint64_t)n < it->max_len - len ? (uint64_t)n : it->max_len - len;
    len += take;
    it->pos += take;
  }
  e->length = len;
  return 1;
}
