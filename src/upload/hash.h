/* The hashing of one pipeline, on libuv's thread pool:
 * - batched MD5 of the runs (Content-MD5 of each request): one job at a
 *   time takes up to VHDUP__HASH_JOB_RUNS runs waiting, from the oldest
 *   piece on, and hashes them VHDUP__MD5X_MAX side by side (util/md5x.h).
 *   While hashing keeps up, jobs are small and follow the reads closely;
 *   when it is the bottleneck, runs pile up and every lane is used;
 * - the whole-disk digest (the blob's Content-MD5): every piece in plan
 *   order, the zeros between them, then the footer.
 * The owner (the pipeline) keeps its pieces in a list in plan order and
 * passes it in; each job's end is reported through done(). */
#ifndef VHDUP_UPLOAD_HASH_H
#define VHDUP_UPLOAD_HASH_H

#include "upload/piece.h"
#include "util/crypto.h"
#include "util/list.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define VHDUP__HASH_JOB_RUNS 64

typedef struct vhdup__hash vhdup__hash;

struct vhdup__hash {
  uv_loop_t *loop;
  /* After each job (runs or digest) has ended: the owner goes on. */
  void (*done)(vhdup__hash *h);
  int batched; /* per-run MD5s by jobs here rather than by the scan */
  /* The runs' job, one at a time; its runs are grouped by piece. */
  int job_busy;
  uv_work_t job_work;
  size_t job_n;
  vhdup__piece *job_piece[VHDUP__HASH_JOB_RUNS];
  size_t job_run[VHDUP__HASH_JOB_RUNS];
  /* The whole-disk digest. */
  int digest_on;
  vhdup__md5_ctx digest;
  uv_work_t digest_work;
  int digest_busy;
  uint64_t digest_seq;        /* the next piece it takes, by plan order */
  uint64_t digest_pos;        /* virtual offset hashed up to */
  vhdup__piece *digest_piece; /* in the job; NULL for the tail */
  int digest_final;           /* disk_md5 holds the whole blob's */
  uint64_t data_end;          /* where the footer (or the blob) begins */
  const uint8_t *footer;      /* NULL when the blob has none */
  size_t footer_len;
  uint8_t disk_md5[VHDUP__MD5_LEN];
};

/* batched: MD5 each run in jobs here; digest: the whole-disk MD5 of a blob
 * of data_end bytes then the footer (read when the tail is hashed). done is
 * called on the loop after each job. Returns 0 or VHDUP_ENOMEM; free with
 * vhdup__hash_free even then. */
int vhdup__hash_init(vhdup__hash *h, uv_loop_t *loop, int batched, int digest, uint64_t data_end,
                     const uint8_t *footer, size_t footer_len, void (*done)(vhdup__hash *h))
    __attribute__((warn_unused_result));
void vhdup__hash_free(vhdup__hash *h);

/* A request's most bytes for a piece scanned now, while at most
 * requests_max requests may be in flight (the engine's limit and the
 * pipeline's cap, the lower). */
size_t vhdup__hash_run_max(const vhdup__hash *h, unsigned requests_max);

/* Each returns 1 when it queued a job (done() follows), 0 when there was
 * nothing to do or a job is running, or a libuv error when it could not
 * queue one. */
/* Runs of the HASHING pieces of active, within a share of a pool of
 * pool_pieces. A piece turns READY when its last run is hashed. */
int vhdup__hash_advance(vhdup__hash *h, const vhdup__list *active, unsigned pool_pieces,
                        unsigned requests_max);
/* The next piece in plan order, once read (it is then marked digested). */
int vhdup__hash_digest_advance(vhdup__hash *h, const vhdup__list *active);
/* The zeros after the last piece, the footer, and the final digest. */
int vhdup__hash_digest_tail(vhdup__hash *h);
/* No digest asked for, or the whole blob's is done. */
int vhdup__hash_digest_complete(const vhdup__hash *h);

#endif
