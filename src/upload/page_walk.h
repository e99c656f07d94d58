/* Walking a blob's page ranges a segment at a time. Get Page Ranges on a
 * large, fragmented blob can time out, so the span asked for is cut into
 * segments (x-ms-range) of about 150 MiB (docs/azure.md, "Get Page Ranges"), each
 * possibly answered in several pages (marker). The service clips ranges to
 * the range asked, so a range crossing a segment boundary comes back in two
 * pieces: the walk clips, stitches the pieces and hands out each range once,
 * whole, in order. Pure: no I/O. */
#ifndef VHDUP_UPLOAD_PAGE_WALK_H
#define VHDUP_UPLOAD_PAGE_WALK_H

#include <stdint.h>

typedef struct vhdup__page_span {
  uint64_t start; /* first byte, a multiple of 512 */
  uint64_t end;   /* last byte (inclusive), 511 mod 512 */
} vhdup__page_span;

typedef struct vhdup__page_walk {
  uint64_t end;       /* the walk covers [start, end) */
  uint64_t segment;   /* bytes per segment */
  uint64_t seg_start; /* the segment being asked: [seg_start, seg_end) */
  uint64_t seg_end;
  int has_pending; /* a range held back: the next may continue it */
  vhdup__page_span pending;
} vhdup__page_walk;

/* Starts a walk over [offset, offset + length). offset, length and segment
 * must be multiples of 512, segment at least 512, and the span must not
 * wrap; length 0 is an empty walk. Returns 0 or VHDUP_EINVAL. */
int vhdup__page_walk_init(vhdup__page_walk *w, uint64_t offset, uint64_t length, uint64_t segment)
    __attribute__((warn_unused_result));

/* The segment to ask for next: 1 with [*offset, *offset + *length), or 0
 * when every segment has been answered. */
int vhdup__page_walk_segment(const vhdup__page_walk *w, uint64_t *offset, uint64_t *length);

/* The current segment's answer is complete (its last page had no marker). */
void vhdup__page_walk_next(vhdup__page_walk *w);

/* The current segment's answer was too large (an old service version
 * cannot page it): ask for half of the segment instead, and use that size
 * from now on. Only before any range of the segment was added. Returns 0, or
 * VHDUP_ELIMIT when the segment is a single page already. */
int vhdup__page_walk_shrink(vhdup__page_walk *w);

/* One range of the current segment's answer, [start, end] inclusive.
 * Clipped to the segment; a range that continues or overlaps the one held
 * back is merged into it. Returns 1 when a finished range is in *out, 0
 * when there is nothing to hand out yet, or VHDUP_EFORMAT when the range is
 * misaligned, inverted, or starts before the previous one. */
int vhdup__page_walk_add(vhdup__page_walk *w, uint64_t start, uint64_t end, vhdup__page_span *out);

/* After the last segment: 1 with the range still held back in *out, or 0. */
int vhdup__page_walk_flush(vhdup__page_walk *w, vhdup__page_span *out);

#endif
