/* The bounded pipeline of one disk: plan (extent iterator) -> pieces read
 * with uv_fs_read -> zero scan into runs on libuv's thread pool -> MD5 of
 * the runs and of the whole disk (hash.h) -> page writes to a sink, at most
 * the limit and the cap at once, retried with backoff -> the footer last ->
 * finish. Memory is the budget's pool plus per-piece run tables, bounded at
 * creation: it does not grow with the disk or the limit.
 *
 * The words of the upload pipeline (pipeline, budget, autotune, hash, piece):
 * - request: one Put Page (a sink write) in flight;
 * - limit: how many requests an engine lets be in flight at once, across
 *   its pipelines: --connections N, or auto's choice (autotune.h);
 * - cap: a pipeline's own maximum of requests in flight (per blob);
 * - budget: what an engine's pipelines share (budget.h): the limit, the
 *   pool of pieces and the memory they and the requests may use;
 * - piece: a 4 MiB read buffer of the pool with the runs found in it
 *   (piece.h); pipelines take pieces from the budget and return them when
 *   every write of theirs is confirmed;
 * - run: a stretch of non-zero data in a piece (scan.h);
 * - write: one run, or the footer, bound for one offset of the blob: sent
 *   as a request, and as one more on each retry;
 * - trim: the budget gives a free piece's pages back to the system when the
 *   memory must pay for more requests' state;
 * - waiter: a pipeline queued at the budget for a request or a piece, woken
 *   when one may be there. */
#ifndef VHDUP_UPLOAD_PIPELINE_H
#define VHDUP_UPLOAD_PIPELINE_H

#include "vhdup_enums.h"

#include "upload/budget.h"
#include "upload/sink.h"
#include "vhd/vhd.h"

#include <uv.h>

typedef struct vhdup__pipeline vhdup__pipeline;

typedef struct vhdup__pipeline_opts {
  /* Shared budget, or NULL for one of the pipeline's own made from memory
   * (see vhdup__budget_new), with cap as its limit. */
  vhdup__budget *budget;
  size_t memory;
  unsigned cap;     /* this pipeline's requests in flight at most */
  size_t merge_gap; /* zero bytes between two runs that still make one write */
  int md5;          /* Content-MD5 on every write */
  int crc64;        /* x-ms-content-crc64 on every write */
  int disk_md5;     /* whole-blob MD5, handed to the sink's finish */
  unsigned max_attempts;
  uint64_t backoff_base_ms;
  uint64_t backoff_cap_ms;
  uint64_t blob_size; /* bytes, footer included */
  int write_footer;   /* 0 for raw output without footer (never for VHD) */
  uint8_t footer[VHDUP__FOOTER_SIZE];
  /* Pieces already on the destination (resume): the pipeline asks before
   * sending each run, and reports each finished write. Both may be NULL. */
  int (*is_done)(void *ctx, uint64_t offset, uint64_t length);
  void (*on_written)(void *ctx, uint64_t offset, uint64_t length);
  /* After the sink's prepare succeeded, before any data: a non-zero return
   * stops the pipeline with that error (the journal is made here, so a
   * refused destination never replaces an earlier upload's journal). */
  int (*on_prepared)(void *ctx);
  void *journal_ctx;
} vhdup__pipeline_opts;

void vhdup__pipeline_opts_init(vhdup__pipeline_opts *o);

typedef struct vhdup__pipeline_stats {
  uint64_t virtual_size;
  uint64_t blob_size;
  uint64_t bytes_planned; /* data extents' bytes read so far (allocated data) */
  uint64_t bytes_sent;    /* payload acknowledged by the sink */
  uint64_t bytes_skipped; /* zeros found in allocated data */
  uint64_t bytes_resumed; /* data already on the destination (resume) */
  uint64_t bytes_read;    /* bytes read from the source files */
  uint64_t vbytes_done;   /* virtual offset up to which everything is planned */
  uint64_t requests;      /* requests sent, retries included */
  uint64_t retries;
  unsigned in_flight; /* requests */
  unsigned max_in_flight;
  vhdup_phase phase; /* PREPARE, DATA, FOOTER, FINISH, DONE */
  uint8_t disk_md5[16];
  int has_disk_md5;
} vhdup__pipeline_stats;

typedef void (*vhdup__pipeline_done_cb)(vhdup__pipeline *p, int status, const char *message,
                                        void *data);

/* Creates the pipeline (allocating the pool) for disk d into sink s. The
 * disk and sink must outlive it. Returns 0, VHDUP_ENOMEM, VHDUP_EINVAL. */
int vhdup__pipeline_new(uv_loop_t *loop, const vhdup__disk *d, vhdup__sink *s,
                        const vhdup__pipeline_opts *o, vhdup__pipeline **out)
    __attribute__((warn_unused_result));

/* Starts: sink prepare, data, footer, finish. done_cb fires exactly once
 * (status 0, a vhdup error, or VHDUP_ECANCELED after cancel). */
int vhdup__pipeline_start(vhdup__pipeline *p, vhdup__pipeline_done_cb cb, void *data);

/* Stops issuing work; outstanding reads and writes finish or are abandoned,
 * then done_cb fires with VHDUP_ECANCELED. Safe from any vhdup callback. */
void vhdup__pipeline_cancel(vhdup__pipeline *p);

/* The data given to vhdup__pipeline_start(). */
void *vhdup__pipeline_data(const vhdup__pipeline *p);

void vhdup__pipeline_get_stats(const vhdup__pipeline *p, vhdup__pipeline_stats *st);

/* Frees a pipeline whose done_cb has fired (or that never started). Its
 * timers are closed first, so close_cb runs on a later loop turn; the
 * pipeline is freed when close_cb returns. */
void vhdup__pipeline_close(vhdup__pipeline *p, void (*close_cb)(vhdup__pipeline *p));

#endif
