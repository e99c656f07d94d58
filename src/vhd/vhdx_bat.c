/* The VHDX BAT ([MS-VHDX] 2.5): payload block entries interleaved with
 * sector bitmap block entries, one of those after every chunk ratio
 * payload entries. Read in 1 MiB pieces; only the payload entries (and,
 * for a differencing disk, the sector bitmap entries) are kept, and the
 * region's length was checked against the file's size, so memory follows
 * the real file. Every allocated block is checked to lie in the file and
 * apart from every other block and region. */
#include "vhd/vhd_int.h"

#include "util/alloc.h"
#include "util/le.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB VHDUP__VHDX_MIB
#define PIECE (MIB / 8) /* entries read at a time */

static const char *nm(const vhdup__disk *d) {
  return d->src.name != NULL ? d->src.name : "(unnamed)";
}

typedef struct span {
  uint64_t start, end;
  uint64_t index; /* BAT entry, or UINT64_MAX for a region */
  const char *what;
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->start != y->start)
    return x->start < y->start ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index; /* a stable message */
}

static void span_text(const span *s, uint64_t bat_off, char *out, size_t cap) {
  if (s->index == UINT64_MAX)
    snprintf(out, cap, "the %s [%" PRIu64 ", %" PRIu64 ")", s->what, s->start, s->end);
  else
    snprintf(out, cap,
             "%s of BAT entry %" PRIu64 " (at offset %" PRIu64 ") at [%" PRIu64 ", %" PRIu64 ")",
             s->what, s->index, bat_off + 8 * s->index, s->start, s->end);
}

/* Checks one entry; adds its block to spans. i: payload block or chunk. */
static int check_entry(vhdup__disk *d, uint64_t e, uint64_t j, int is_bitmap, uint64_t i,
                       span *spans, size_t *nspans, vhdup__err *err) {
  const vhdup__vhdx_info *x = &d->info.vhdx;
  uint64_t at = x->regions.bat_offset + 8 * j;
  unsigned state = (unsigned)(e & 7);
  uint64_t off = (e >> 20) * MIB;
  uint64_t len = MIB;
  if (is_bitmap) {
    if (state != VHDUP__VHDX_NOT_PRESENT && state != VHDUP__VHDX_SB_PRESENT)
      return vhdup__errf(err, VHDUP_EFORMAT,
                         "%s: BAT entry %" PRIu64 " at offset %" PRIu64
                         ": sector bitmap state %u is neither NOT_PRESENT (0) nor PRESENT (6)",
                         nm(d), j, at, state);
    if (state != VHDUP__VHDX_SB_PRESENT)
      return 0;
  } else {
    if (state == 4 || state == 5)
      return vhdup__errf(err, VHDUP_EFORMAT,
                         "%s: BAT entry %" PRIu64 " at offset %" PRIu64
                         ": payload state %u is reserved",
                         nm(d), j, at, state);
    if (state == VHDUP__VHDX_PARTIALLY_PRESENT && !x->has_parent)
      return vhdup__errf(err, VHDUP_EFORMAT,
                         "%s: BAT entry %" PRIu64 " at offset %" PRIu64
                         ": PARTIALLY_PRESENT in a disk without a parent",
                         nm(d), j, at);
    if (state < VHDUP__VHDX_FULLY_PRESENT)
      return 0;
    uint64_t bs = d->info.block_size, vs = d->info.virtual_size;
    len = vs - i * bs < bs ? vs - i * bs : bs;
  }
  if (off < MIB || off > d->src.size || d->src.size - off < len)
    return vhdup__errf(err, off < MIB ? VHDUP_EFORMAT : VHDUP_ETRUNCATED,
                       "%s: BAT entry %" PRIu64 " at offset %" PRIu64 ": %s at file offset %" PRIu64
                       " (%" PRIu64 " bytes) is %s (file size %" PRIu64 ")",
                       nm(d), j, at, is_bitmap ? "sector bitmap block" : "payload block", off, len,
                       off < MIB ? "inside the header section" : "past the end of the file",
                       d->src.size);
  spans[(*nspans)++] =
      (span){off, off + len, j, is_bitmap ? "sector bitmap block" : "payload block"};
  return 0;
}

/* Reads entry j of the BAT through a 1 MiB window. */
static int entry_at(vhdup__disk *d, uint8_t *win, uint64_t *win_first, uint64_t j, uint64_t total,
                    uint64_t *e, vhdup__err *err) {
  if (*win_first == UINT64_MAX || j < *win_first || j >= *win_first + PIECE) {
    uint64_t first = j / PIECE * PIECE;
    uint64_t n = total - first < PIECE ? total - first : PIECE;
    int rc = vhdup__disk_read(&d->x.meta_src, d->info.vhdx.regions.bat_offset + 8 * first, win,
                              n * 8, "VHDX BAT", err);
    if (rc < 0)
      return rc;
    *win_first = first;
  }
  *e = vhdup__le64(win + 8 * (j - *win_first));
  return 0;
}

static int check_overlaps(vhdup__disk *d, span *spans, size_t n, vhdup__err *err) {
  qsort(spans, n, sizeof(*spans), span_cmp);
  for (size_t i = 1; i < n; i++) {
    if (spans[i].start < spans[i - 1].end) {
      char a[200], b[200];
      span_text(&spans[i - 1], d->info.vhdx.regions.bat_offset, a, sizeof(a));
      span_text(&spans[i], d->info.vhdx.regions.bat_offset, b, sizeof(b));
      return vhdup__errf(err, VHDUP_EFORMAT, "%s: %s overlaps %s", nm(d), a, b);
    }
  }
  return 0;
}

static int walk_bat(vhdup__disk *d, uint64_t total, span *spans, size_t *nspans, vhdup__err *err) {
  vhdup__vhdx_map *m = &d->x;
  const vhdup__vhdx_info *x = &d->info.vhdx;
  uint64_t cr = x->chunk_ratio, win_first = UINT64_MAX;
  uint8_t *win = vhdup__malloc((size_t)PIECE * 8);
  int rc = 0;
  if (win == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory to read the BAT", nm(d));
  for (uint64_t c = 0; m->bitmaps != NULL && c < m->nchunks && rc == 0; c++) {
    uint64_t j = c * (cr + 1) + cr;
    if ((rc = entry_at(d, win, &win_first, j, total, &m->bitmaps[c], err)) == 0)
      rc = check_entry(d, m->bitmaps[c], j, 1, c, spans, nspans, err);
  }
  for (uint64_t i = 0; i < m->nblocks && rc == 0; i++) {
    uint64_t j = i + i / cr, e;
    if ((rc = entry_at(d, win, &win_first, j, total, &e, err)) < 0 ||
        (rc = check_entry(d, e, j, 0, i, spans, nspans, err)) < 0)
      break;
    m->payload[i] = e;
    unsigned st = (unsigned)(e & 7);
    if (st == VHDUP__VHDX_PARTIALLY_PRESENT && (m->bitmaps[i / cr] & 7) != VHDUP__VHDX_SB_PRESENT)
      rc = vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: BAT entry %" PRIu64 " at offset %" PRIu64
                       ": PARTIALLY_PRESENT, but the sector bitmap of chunk %" PRIu64
                       " is not present",
                       nm(d), j, x->regions.bat_offset + 8 * j, i / cr);
    if (st >= VHDUP__VHDX_FULLY_PRESENT) {
      uint64_t bs = d->info.block_size, vs = d->info.virtual_size;
      d->info.blocks_allocated++;
      d->info.bytes_allocated += vs - i * bs < bs ? vs - i * bs : bs;
    }
  }
  vhdup__free(win);
  return rc;
}

int vhdup__vhdx_read_bat(vhdup__disk *d, vhdup__err *err) {
  vhdup__vhdx_map *m = &d->x;
  const vhdup__vhdx_info *x = &d->info.vhdx;
  uint64_t bs = d->info.block_size, cr = x->chunk_ratio;
  m->nblocks = (d->info.virtual_size + bs - 1) / bs;
  m->nchunks = (m->nblocks + cr - 1) / cr;
  m->bitmap_span = (uint32_t)(bs / d->info.logical_sector_size / 8);
  /* 2.5: a differencing disk has every chunk's bitmap entry; others need
   * them only between payload entries. */
  uint64_t total = x->has_parent ? m->nchunks * (cr + 1) : m->nblocks + (m->nblocks - 1) / cr;
  if (total > x->regions.bat_length / 8)
    return vhdup__errf(
        err, VHDUP_EFORMAT,
        "%s: BAT region at offset %" PRIu64 " holds %" PRIu32 " entries, the virtual "
        "size %" PRIu64 " with block size %" PRIu64 " needs %" PRIu64,
        nm(d), x->regions.bat_offset, x->regions.bat_length / 8, d->info.virtual_size, bs, total);
  d->info.max_table_entries = (uint32_t)total;
  /* total <= bat_length / 8 <= file size / 8: allocations follow the file. */
  size_t nspans_max = (size_t)m->nblocks + (size_t)m->nchunks + 4;
  m->payload = vhdup__calloc((size_t)m->nblocks, sizeof(uint64_t));
  if (x->has_parent)
    m->bitmaps = vhdup__calloc((size_t)m->nchunks, sizeof(uint64_t));
  span *spans = vhdup__malloc(nspans_max * sizeof(span));
  int rc = 0;
  if (m->payload == NULL || spans == NULL || (x->has_parent && m->bitmaps == NULL))
    rc = vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for a BAT of %" PRIu64 " entries", nm(d),
                     total);
  size_t n = 0;
  if (rc == 0) {
    spans[n++] = (span){0, MIB, UINT64_MAX, "header section"};
    spans[n++] = (span){x->regions.bat_offset, x->regions.bat_offset + x->regions.bat_length,
                        UINT64_MAX, "BAT region"};
    spans[n++] = (span){x->regions.meta_offset, x->regions.meta_offset + x->regions.meta_length,
                        UINT64_MAX, "metadata region"};
    if (x->header.log_length != 0)
      spans[n++] = (span){x->header.log_offset, x->header.log_offset + x->header.log_length,
                          UINT64_MAX, "log"};
    rc = walk_bat(d, total, spans, &n, err);
  }
  if (rc == 0)
    rc = check_overlaps(d, spans, n, err);
  vhdup__free(spans);
  return rc;
}

void vhdup__vhdx_map_free(vhdup__vhdx_map *m) {
  vhdup__free(m->payload);
  vhdup__free(m->bitmaps);
  vhdup__vhdx_log_free(m->log);
  m->payload = m->bitmaps = NULL;
  m->log = NULL;
}
