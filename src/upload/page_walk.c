/* Segmenting and stitching Get Page Ranges answers (page_walk.h). */
#include "upload/page_walk.h"

#include "vhdup_errno.h"

#define PAGE 512u

int vhdup__page_walk_init(vhdup__page_walk *w, uint64_t offset, uint64_t length, uint64_t segment) {
  if (offset % PAGE != 0 || length % PAGE != 0 || segment < PAGE || segment % PAGE != 0 ||
      length > UINT64_MAX - offset)
    return VHDUP_EINVAL;
  w->end = offset + length;
  w->segment = segment;
  w->seg_start = offset;
  w->seg_end = length < segment ? w->end : offset + segment;
  w->has_pending = 0;
  w->pending.start = w->pending.end = 0;
  return 0;
}

int vhdup__page_walk_segment(const vhdup__page_walk *w, uint64_t *offset, uint64_t *length) {
  if (w->seg_start >= w->end)
    return 0;
  *offset = w->seg_start;
  *length = w->seg_end - w->seg_start;
  return 1;
}

void vhdup__page_walk_next(vhdup__page_walk *w) {
  w->seg_start = w->seg_end;
  w->seg_end = w->end - w->seg_start < w->segment ? w->end : w->seg_start + w->segment;
}

int vhdup__page_walk_shrink(vhdup__page_walk *w) {
  uint64_t len = w->seg_end - w->seg_start;
  if (len <= PAGE)
    return VHDUP_ELIMIT;
  uint64_t half = (len / 2 + PAGE - 1) / PAGE * PAGE;
  w->segment = half;
  w->seg_end = w->seg_start + half;
  return 0;
}

int vhdup__page_walk_add(vhdup__page_walk *w, uint64_t start, uint64_t end, vhdup__page_span *out) {
  if (start % PAGE != 0 || end % PAGE != PAGE - 1 || end < start)
    return VHDUP_EFORMAT;
  if (w->seg_start >= w->seg_end)
    return 0;
  if (start < w->seg_start)
    start = w->seg_start;
  if (end > w->seg_end - 1)
    end = w->seg_end - 1;
  if (start > end)
    return 0; /* nothing of it inside the segment */
  if (w->has_pending) {
    if (start < w->pending.start)
      return VHDUP_EFORMAT;
    /* Contiguous or overlapping: the same range, continued. */
    if (start <= w->pending.end + 1) {
      if (end > w->pending.end)
        w->pending.end = end;
      return 0;
    }
    *out = w->pending;
    w->pending.start = start;
    w->pending.end = end;
    return 1;
  }
  w->has_pending = 1;
  w->pending.start = start;
  w->pending.end = end;
  return 0;
}

int vhdup__page_walk_flush(vhdup__page_walk *w, vhdup__page_span *out) {
  if (!w->has_pending)
    return 0;
  *out = w->pending;
  w->has_pending = 0;
  return 1;
}
