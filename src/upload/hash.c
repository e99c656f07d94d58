#include "upload/hash.h"

#include "util/md5x.h"
#include "vhdup_errno.h"

#include <string.h>

/* Requests are cut at HASH_RUN_MAX while HASH_CUT_REQUESTS or more may be
 * in flight. A job holds its pieces from sending, and must leave the pool
 * room to read and send others: it takes at most a quarter of the pool's
 * bytes, and with requests of 2 MiB that is enough for the 8 lanes (16 MiB
 * of a 64 MiB pool). But each request also costs a round trip, which few
 * requests in flight do not hide: below HASH_CUT_REQUESTS, requests stay
 * whole (4 MiB) and a job may take half the pool, so that 8 of them fill
 * the lanes (over a long round trip hashing is far ahead and jobs stay
 * small anyway). How these sizes were chosen: docs/measurements.md. */
#define HASH_RUN_MAX (2u * 1024 * 1024)
#define HASH_CUT_REQUESTS 16

int vhdup__hash_init(vhdup__hash *h, uv_loop_t *loop, int batched, int digest, uint64_t data_end,
                     const uint8_t *footer, size_t footer_len, void (*done)(vhdup__hash *h)) {
  memset(h, 0, sizeof(*h));
  h->loop = loop;
  h->done = done;
  h->batched = batched;
  h->digest_on = digest;
  h->data_end = data_end;
  h->footer = footer;
  h->footer_len = footer_len;
  if (digest && vhdup__md5_init(&h->digest) != 0)
    return VHDUP_ENOMEM;
  return 0;
}

void vhdup__hash_free(vhdup__hash *h) {
  vhdup__md5_free(&h->digest);
}

static int cut(const vhdup__hash *h, unsigned requests_max) {
  return h->batched && requests_max >= HASH_CUT_REQUESTS;
}

size_t vhdup__hash_run_max(const vhdup__hash *h, unsigned requests_max) {
  return cut(h, requests_max) ? HASH_RUN_MAX : VHDUP__PIECE_MAX;
}

/* ---- batched MD5 of the runs ---- */

static const vhdup__run *job_run(const vhdup__hash *h, size_t i) {
  return &h->job_piece[i]->runs[h->job_run[i]];
}

static void job_work(uv_work_t *req) {
  vhdup__hash *h = req->data;
  /* The lanes of one call are busy until the longest is done: hash the runs
   * in order of length, so runs of one size share a call. */
  size_t order[VHDUP__HASH_JOB_RUNS];
  for (size_t i = 0; i < h->job_n; i++) {
    size_t len = job_run(h, i)->length, j = i;
    for (; j > 0 && job_run(h, order[j - 1])->length > len; j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
  for (size_t i = 0; i < h->job_n; i += VHDUP__MD5X_MAX) {
    size_t k = h->job_n - i < VHDUP__MD5X_MAX ? h->job_n - i : VHDUP__MD5X_MAX;
    const uint8_t *data[VHDUP__MD5X_MAX];
    size_t len[VHDUP__MD5X_MAX];
    uint8_t out[VHDUP__MD5X_MAX][VHDUP__MD5_LEN];
    for (size_t j = 0; j < k; j++) {
      const vhdup__run *r = job_run(h, order[i + j]);
      data[j] = h->job_piece[order[i + j]]->buf + r->offset;
      len[j] = r->length;
    }
    vhdup__md5x(k, data, len, out);
    for (size_t j = 0; j < k; j++)
      memcpy(h->job_piece[order[i + j]]->md5s[h->job_run[order[i + j]]], out[j], VHDUP__MD5_LEN);
  }
}

/* A job holds each of its pieces once, counted at the piece's first run in
 * it (a job's runs are grouped by piece). */
static void job_unhold(vhdup__hash *h) {
  for (size_t i = 0; i < h->job_n; i++)
    if (i + 1 == h->job_n || h->job_piece[i + 1] != h->job_piece[i])
      h->job_piece[i]->hash_jobs--;
  h->job_n = 0;
}

static void job_done(uv_work_t *req, int status) {
  vhdup__hash *h = req->data;
  (void)status;
  h->job_busy = 0;
  for (size_t i = 0; i < h->job_n; i++) {
    vhdup__piece *p = h->job_piece[i];
    if (++p->runs_hashed == p->n_runs && p->state == VHDUP__PIECE_HASHING)
      p->state = VHDUP__PIECE_READY;
  }
  job_unhold(h);
  h->done(h);
}

int vhdup__hash_advance(vhdup__hash *h, const vhdup__list *active, unsigned pool_pieces,
                        unsigned requests_max) {
  if (!h->batched || h->job_busy)
    return 0;
  /* Uncut, requests are 4 MiB, and a quarter of the pool holds only 4 of
   * them: half the lanes. Fewer requests in flight leave the pool room for
   * a job of half of it, which fills all 8. */
  unsigned share = cut(h, requests_max) ? 4 : 2;
  uint64_t bytes = 0;
  uint64_t job_bytes = (uint64_t)(pool_pieces + share - 1) / share * VHDUP__PIECE_MAX;
  h->job_n = 0;
  vhdup__list_foreach(node, active) {
    if (h->job_n >= VHDUP__HASH_JOB_RUNS)
      break;
    vhdup__piece *p = vhdup__piece_of(node);
    if (p->state != VHDUP__PIECE_HASHING)
      continue;
    while (p->next_hash < p->n_runs && h->job_n < VHDUP__HASH_JOB_RUNS) {
      size_t len = p->runs[p->next_hash].length;
      if (h->job_n > 0 && bytes + len > job_bytes)
        goto full;
      if (h->job_n == 0 || h->job_piece[h->job_n - 1] != p)
        p->hash_jobs++;
      h->job_piece[h->job_n] = p;
      h->job_run[h->job_n++] = p->next_hash++;
      bytes += len;
    }
  }
full:
  if (h->job_n == 0)
    return 0;
  h->job_work.data = h;
  h->job_busy = 1;
  int rc = uv_queue_work(h->loop, &h->job_work, job_work, job_done);
  if (rc != 0) {
    h->job_busy = 0;
    job_unhold(h);
    return rc;
  }
  return 1;
}

/* ---- the whole-disk digest, in offset order ---- */

static void digest_work(uv_work_t *req) {
  vhdup__hash *h = req->data;
  vhdup__piece *p = h->digest_piece;
  uint64_t upto = p != NULL ? p->voff : h->data_end;
  vhdup__md5_update_zeros(&h->digest, upto - h->digest_pos);
  if (p != NULL) {
    vhdup__md5_update(&h->digest, p->buf, p->len);
    h->digest_pos = p->voff + p->len;
  } else {
    if (h->footer != NULL)
      vhdup__md5_update(&h->digest, h->footer, h->footer_len);
    vhdup__md5_final(&h->digest, h->disk_md5);
    h->digest_pos = h->data_end + h->footer_len;
  }
}

static void digest_done(uv_work_t *req, int status) {
  vhdup__hash *h = req->data;
  (void)status;
  h->digest_busy = 0;
  if (h->digest_piece != NULL) {
    h->digest_piece->digested = 1;
    h->digest_seq++;
  } else {
    h->digest_final = 1;
  }
  h->digest_piece = NULL;
  h->done(h);
}

static int digest_start(vhdup__hash *h, vhdup__piece *p) {
  h->digest_piece = p;
  h->digest_busy = 1;
  h->digest_work.data = h;
  int rc = uv_queue_work(h->loop, &h->digest_work, digest_work, digest_done);
  if (rc != 0) {
    h->digest_busy = 0;
    return rc;
  }
  return 1;
}

int vhdup__hash_digest_advance(vhdup__hash *h, const vhdup__list *active) {
  if (!h->digest_on || h->digest_busy)
    return 0;
  vhdup__list_foreach(node, active) {
    vhdup__piece *p = vhdup__piece_of(node);
    if (p->seq == h->digest_seq && !p->digested &&
        (p->state == VHDUP__PIECE_SCANNING || p->state == VHDUP__PIECE_HASHING ||
         p->state == VHDUP__PIECE_READY))
      return digest_start(h, p);
  }
  return 0;
}

int vhdup__hash_digest_tail(vhdup__hash *h) {
  if (!h->digest_on || h->digest_busy || h->digest_final)
    return 0;
  return digest_start(h, NULL);
}

int vhdup__hash_digest_complete(const vhdup__hash *h) {
  return !h->digest_on || h->digest_final;
}
