/* Finding the data worth sending in a buffer read from the disk: runs of
 * non-zero 512-byte sectors, with small zero gaps merged when one request is
 * cheaper than two. Pure: no libuv, no curl. */
#ifndef VHDUP_UPLOAD_SCAN_H
#define VHDUP_UPLOAD_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct vhdup__run {
  size_t offset; /* in the buffer, multiple of 512 */
  size_t length; /* multiple of 512, > 0 */
} vhdup__run;

/* Non-zero if the 512 bytes at p are all zero. */
int vhdup__sector_is_zero(const uint8_t *p);

/* Scans buf (len a multiple of 512) for runs of non-zero sectors. Two runs
 * separated by at most merge_gap zero bytes become one. Runs are capped at
 * max_run bytes (a multiple of 512; 0 means no cap). At most max_runs are
 * stored; the return value is the number found, which may exceed max_runs
 * (then only the first max_runs were stored and the caller must scan the
 * rest again from runs[max_runs - 1]'s end). */
size_t vhdup__scan_runs(const uint8_t *buf, size_t len, size_t merge_gap, size_t max_run,
                        vhdup__run *runs, size_t max_runs);

#endif
