/* The bounded pipeline of one disk: plan (extent iterator) -> pieces read
 * with uv_fs_read into buffers of a fixed pool -> zero scan and per-request
 * hashing on libuv's thread pool -> writes to a sink, at most `connections`
 * at once, retried with backoff -> the footer last -> finish. Memory is the
 * pool plus per-piece run tables, bounded at creation: it does not grow with
 * the disk or the connection count. */
#ifndef VHDUP_UPLOAD_PIPELINE_H
#define VHDUP_UPLOAD_PIPELINE_H

#include "upload/sink.h"
#include "vhd/vhd.h"

#include <uv.h>

#define VHDUP__PIECE_MAX (4u * 1024 * 1024) /* Put Page's body limit */
/* What a request in flight holds outside the read buffers (see pieces_allowed). */
#define VHDUP__SLOT_BYTES (40u * 1024)

typedef struct vhdup__pipeline vhdup__pipeline;

/* Requests in flight and read buffers shared by pipelines (an engine's). */
typedef struct vhdup__budget vhdup__budget;

/* Buffers of 4 MiB and the state of requests in flight, within memory
 * (at least 2 buffers), slots requests. Returns 0,
 * VHDUP_EINVAL or VHDUP_ENOMEM. Free only when no pipeline uses it. */
int vhdup__budget_new(size_t memory, unsigned slots, vhdup__budget **out)
    __attribute__((warn_unused_result));
void vhdup__budget_free(vhdup__budget *b);

/* --connections auto: the slot count starts at 64 and follows measured
 * goodput up to max (see vhdup__budget_observe in pipeline.c). */
void vhdup__budget_set_auto(vhdup__budget *b, unsigned max);
/* Requests in flight allowed now (the fixed count, or auto's choice). */
unsigned vhdup__budget_limit(const vhdup__budget *b);
/* What --connections auto sees of one finished request: at loop time now
 * (ms), bytes written (0 if it failed), its latency, whether it was
 * throttled or failed, and how many requests are still in flight. The
 * pipeline calls it on every completion; unit tests drive it with a model
 * of a link. */
void vhdup__budget_observe(vhdup__budget *b, uint64_t now, uint64_t bytes, uint64_t latency_ms,
                           int congested, unsigned in_flight);

typedef struct vhdup__pipeline_opts {
  /* Shared budget, or NULL for one of the pipeline's own made from memory
   * (see vhdup__budget_new) and connections. */
  vhdup__budget *budget;
  size_t memory;
  unsigned connections; /* this pipeline's writes in flight at most */
  size_t merge_gap;     /* zero bytes between two runs that still make one write */
  int md5;              /* Content-MD5 on every write */
  int crc64;            /* x-ms-content-crc64 on every write */
  int disk_md5;         /* whole-blob MD5, handed to the sink's finish */
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
  uint64_t requests;      /* writes started, retries included */
  uint64_t retries;
  unsigned in_flight;
  unsigned max_in_flight;
  int phase; /* VHDUP__PHASE_* */
  uint8_t disk_md5[16];
  int has_disk_md5;
} vhdup__pipeline_stats;

enum {
  VHDUP__PHASE_PREPARE = 0,
  VHDUP__PHASE_DATA,
  VHDUP__PHASE_FOOTER,
  VHDUP__PHASE_FINISH,
  VHDUP__PHASE_DONE,
};

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
 * retry timer is closed first, so close_cb runs on a later loop turn; the
 * pipeline is freed when close_cb returns. */
void vhdup__pipeline_close(vhdup__pipeline *p, void (*close_cb)(vhdup__pipeline *p));

#endif
