/* A piece: one 4 MiB read buffer of the budget's pool with the runs found in
 * it. The budget allocates pieces and keeps the free ones; a pipeline takes
 * one, reads a stretch of the disk into it, scans it into runs, has them
 * hashed and sends them, and returns it once every write of it is
 * confirmed (and the whole-disk digest has passed over it). Shared by
 * budget.c, hash.c and pipeline.c. */
#ifndef VHDUP_UPLOAD_PIECE_H
#define VHDUP_UPLOAD_PIECE_H

#include "upload/scan.h"
#include "util/list.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define VHDUP__PIECE_MAX (4u * 1024 * 1024) /* Put Page's body limit */
/* Two runs are at least one zero sector apart, so a piece holds at most
 * this many: its run tables never overflow. */
#define VHDUP__PIECE_RUNS_MAX (VHDUP__PIECE_MAX / 1024 + 1)
/* A piece may gather data from several extents (differencing chains mix
 * layers sector by sector); past this many it ends early. */
#define VHDUP__PIECE_SUBREADS 16

typedef struct vhdup__pipeline vhdup__pipeline;
typedef struct vhdup__piece vhdup__piece;

/* One uv_fs_read into part of a piece's buffer. */
typedef struct vhdup__subread {
  uv_fs_t req;
  vhdup__piece *p;
  int fd;
  size_t buf_off;
  size_t len;
  uint64_t file_off;
} vhdup__subread;

/* A piece is read, then scanned into runs; with batched MD5 (hash.h) its
 * runs then wait in HASHING until every one has its digest. FREE: in the
 * budget. */
enum {
  VHDUP__PIECE_FREE = 0,
  VHDUP__PIECE_READING,
  VHDUP__PIECE_SCANNING,
  VHDUP__PIECE_HASHING,
  VHDUP__PIECE_READY,
};

struct vhdup__piece {
  vhdup__pipeline *pl; /* the owner while taken from the budget */
  /* Free: in one of the budget's lists (free or fresh). Taken: in the
   * owner's list of active pieces, in plan order. Never in both. */
  vhdup__list link;
  /* Owned by the budget. */
  uint8_t *buf;
  void *buf_base; /* what buf was allocated as (see budget.c) */
  int touched;    /* written since its buffers were allocated: they hold pages */
  /* Owned by the pipeline that took it. */
  int state; /* VHDUP__PIECE_* */
  uint64_t seq;
  uint64_t voff;
  size_t len;
  unsigned n_sub;
  unsigned reads_pending;
  int read_error;
  vhdup__subread sub[VHDUP__PIECE_SUBREADS];
  uv_work_t scan_work;
  size_t run_max; /* a request's most bytes, set when the scan is queued */
  vhdup__run *runs;
  uint8_t (*md5s)[16];
  uint64_t *crcs;
  size_t n_runs;
  size_t next_run;
  size_t next_hash;   /* HASHING: runs from here on are in no hash job yet */
  size_t runs_hashed; /* HASHING: runs with their MD5 */
  unsigned hash_jobs; /* hash jobs holding runs of this piece */
  unsigned writes_alive;
  int digested; /* the whole-disk digest has passed over it (or needs not) */
};

static inline vhdup__piece *vhdup__piece_of(vhdup__list *node) {
  return vhdup__list_entry(node, vhdup__piece, link);
}

#endif
