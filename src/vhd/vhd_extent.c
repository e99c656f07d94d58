/* The extent iterator: the virtual disk as runs of "read these file bytes"
 * and "zeros", resolved through the differencing chain child first. A
 * sector belongs to the first layer whose BAT entry is allocated and whose
 * sector bitmap bit is set (spec "Block Bitmap": MSB first, bit 7 of byte 0
 * is the block's first sector); below the last layer it is zero. */
#include "vhd/vhd_int.h"

#include "util/alloc.h"

#include <inttypes.h>
#include <string.h>

#define UNALLOCATED 0xffffffffu

typedef struct layer {
  const vhdup__disk *d;
  uint8_t *bitmap;       /* bitmap_size bytes, for block cached_block */
  uint64_t cached_block; /* UINT64_MAX: none */
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
    if (l->bat != NULL) {
      y->bitmap = vhdup__malloc(l->bitmap_size);
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

static int bit(const uint8_t *bm, uint64_t s) {
  return (bm[s / 8] >> (7 - s % 8)) & 1;
}

/* How many sectors from s (below n) share s's bit value. Whole bytes of
 * 0x00 or 0xff are skipped at once. */
static uint64_t run_of(const uint8_t *bm, uint64_t s, uint64_t n, int v) {
  uint64_t i = s;
  uint8_t full = v ? 0xff : 0x00;
  while (i < n) {
    if (i % 8 == 0 && n - i >= 8 && bm[i / 8] == full) {
      i += 8;
      continue;
    }
    if (bit(bm, i) != v)
      break;
    i++;
  }
  return i - s;
}

/* Where the bytes at pos come from: *src NULL for zeros. Returns the length
 * (at most want) for which that answer holds with contiguous file offsets,
 * or a negative error. Bounding by want keeps bitmap scans in proportion
 * to what is handed out, even with 2 GiB blocks. */
static int64_t resolve(vhdup__extent_iter *it, uint64_t pos, uint64_t want, const vhdup__src **src,
                       uint64_t *file_off, vhdup__err *err) {
  uint64_t limit = it->vsize - pos < want ? it->vsize - pos : want;
  for (unsigned k = 0; k < it->nlayers; k++) {
    layer *y = &it->layers[k];
    const vhdup__disk *d = y->d;
    if (d->bat == NULL) {
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
        return vhdup__errf(err, rc,
                           "%s: sector bitmap of block %" PRIu64 " at offset %" PRIu64
                           ": read of %" PRIu32 " bytes failed (error %d)",
                           d->src.name != NULL ? d->src.name : "(unnamed)", b, boff, d->bitmap_size,
                           rc);
      }
      y->cached_block = b;
    }
    uint64_t s = in / VHDUP__SECTOR;
    uint64_t end_s = (in + limit + VHDUP__SECTOR - 1) / VHDUP__SECTOR;
    int v = bit(y->bitmap, s);
    uint64_t run = run_of(y->bitmap, s, end_s, v) * VHDUP__SECTOR;
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
  uint64_t off;
  int64_t n = resolve(it, it->pos, it->max_len, &src, &off, err);
  if (n < 0)
    return (int)n;
  uint64_t len = (uint64_t)n < it->max_len ? (uint64_t)n : it->max_len;
  e->virtual_offset = it->pos;
  e->src = src;
  e->file_offset = off;
  it->pos += len;
  /* Merge what follows while it is the same kind and, for data, the same
   * file at the next offset. A run that does not continue is resolved again
   * by the next call, from the cached bitmaps. */
  while (len < it->max_len && it->pos < it->vsize) {
    const vhdup__src *src2;
    uint64_t off2;
    /* A failure here ends the merge; the next call meets it again and
     * reports it, so the extent already found is not lost. */
    n = resolve(it, it->pos, it->max_len - len, &src2, &off2, err);
    if (n < 0)
      break;
    if (src2 != src || (src != NULL && off2 != off + len))
      break;
    uint64_t take = (uint64_t)n < it->max_len - len ? (uint64_t)n : it->max_len - len;
    len += take;
    it->pos += take;
  }
  e->length = len;
  return 1;
}
