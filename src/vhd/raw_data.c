/* Where a raw image holds data: the holes its source reports (vhdup__src
 * next_data, lseek(2)'s SEEK_DATA and SEEK_HOLE in the tool) read as zeros
 * and need not be read at all. Answers are widened to whole 512-byte
 * sectors, so a sector that holds any data is data. */
#include "vhd/vhd_int.h"

int vhdup__raw_next_data(const vhdup__src *src, uint64_t off, uint64_t *start, uint64_t *end) {
  if (src->next_data == NULL)
    return VHDUP_EUNSUPPORTED;
  uint64_t s = 0, e = 0;
  int rc = src->next_data(src, off, &s, &e);
  if (rc < 0)
    return rc;
  if (s < off || e < s || e > src->size)
    return VHDUP_EFORMAT; /* an answer that makes no sense: trust none */
  s = s / VHDUP__SECTOR * VHDUP__SECTOR;
  e = (e + VHDUP__SECTOR - 1) / VHDUP__SECTOR * VHDUP__SECTOR;
  *start = s < off ? off : s;
  *end = e > src->size ? src->size : e;
  return 0;
}

void vhdup__raw_count(vhdup__disk *d) {
  uint64_t size = d->info.virtual_size, pos = 0, total = 0, regions = 0;
  while (pos < size) {
    uint64_t s, e;
    if (vhdup__raw_next_data(&d->src, pos, &s, &e) < 0) {
      /* Cannot tell from here on: the rest is data. */
      total += size - pos;
      regions += d->src.next_data != NULL;
      break;
    }
    if (s >= size || e <= s)
      break;
    total += (e > size ? size : e) - s;
    regions++;
    pos = e;
  }
  d->info.bytes_allocated = total;
  d->info.data_regions = d->src.next_data != NULL ? regions : 0;
}
