#include "upload/pipeline.h"

#include "upload/file_src.h"
#include "upload/hash.h"
#include "upload/piece.h"
#include "upload/scan.h"
#include "azure/azure.h"
#include "util/alloc.h"
#include "util/crypto.h"
#include "util/defaults.h"
#include "util/list.h"
#include "util/md5x.h"
#include "util/rng.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Zero extents shorter than this inside a piece are filled in memory rather
 * than ending the piece, so one read buffer covers them. */
#define INLINE_ZERO_MAX (64u * 1024)

/* A write: one run, or the footer, bound for one offset of the blob. */
typedef struct pagewrite {
  vhdup__sink_write sw;
  vhdup__pipeline *pl;
  vhdup__piece *p; /* NULL for the footer */
  unsigned attempts;
  uint64_t started; /* loop ms, for --connections auto's latency */
  uint64_t due;     /* loop ms, while it waits for a retry */
  vhdup__list link; /* in the free list, or the retry list */
} pagewrite;

struct vhdup__pipeline {
  uv_loop_t *loop;
  const vhdup__disk *disk;
  vhdup__sink *sink;
  vhdup__pipeline_opts o;
  uint64_t virtual_size;

  vhdup__extent_iter *it;
  vhdup__extent cur; /* the extent being consumed, from cur_used on */
  int have_cur;
  uint64_t cur_used;
  int plan_done;

  vhdup__budget *budget;
  int own_budget;
  vhdup__budget_user user; /* its cap, requests in flight and pieces */
  vhdup__list active;      /* pieces taken, in plan order */
  uint64_t next_seq;

  vhdup__list free_writes;
  vhdup__list retries; /* writes waiting for a retry, by due time */
  unsigned writes_alive;
  uv_timer_t retry_timer; /* the first retry's due time */
  uv_timer_t kick_timer;  /* the first reads, on the loop's next turn */
  uv_timer_t done_timer;  /* done_cb, on the loop's next turn */
  unsigned closes_pending;

  vhdup__hash hash;
  unsigned works_pending; /* prepare, scans, hash jobs, finish */
  unsigned reads_pending;

  vhdup_phase phase;
  int started;
  int stopping;
  int status;
  char message[VHDUP__ERRMSG_MAX];
  int pumping;
  int pump_again;
  int done_fired;
  int done_pending;
  vhdup__pipeline_done_cb done_cb;
  void *done_data;

  pagewrite footer;
  int footer_started;
  uint8_t footer_buf[VHDUP__FOOTER_SIZE];

  vhdup__pipeline_stats st;
  vhdup__rng rng; /* backoff jitter */
  void (*close_cb)(vhdup__pipeline *p);
};

static void pump(vhdup__pipeline *pl);

void vhdup__pipeline_opts_init(vhdup__pipeline_opts *o) {
  memset(o, 0, sizeof(*o));
  o->memory = VHDUP__DEFAULT_MEMORY;
  o->cap = VHDUP__DEFAULT_CONNECTIONS;
  o->merge_gap = VHDUP__DEFAULT_MERGE_GAP;
  o->md5 = 1;
  o->disk_md5 = 1;
  o->max_attempts = VHDUP__DEFAULT_MAX_ATTEMPTS;
  o->backoff_base_ms = VHDUP__DEFAULT_BACKOFF_BASE_MS;
  o->backoff_cap_ms = VHDUP__DEFAULT_BACKOFF_CAP_MS;
  o->write_footer = 1;
}

static void fail(vhdup__pipeline *pl, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(vhdup__pipeline *pl, int status, const char *fmt, ...) {
  if (pl->status == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pl->message, sizeof(pl->message), fmt, ap);
    va_end(ap);
    pl->status = status;
  }
  /* A failure found inside pump() (a write or read that could not even
   * start) must bring it round to the stopping branch, which ends the job:
   * with nothing in flight, no later callback would. */
  pl->pump_again = 1;
  if (!pl->stopping) {
    pl->stopping = 1;
    if (pl->sink->ops->abort != NULL && pl->user.requests > 0)
      pl->sink->ops->abort(pl->sink);
  }
}

/* The budget found what this pipeline waited for. */
static void budget_wake(vhdup__budget_user *u) {
  pump((vhdup__pipeline *)((char *)u - offsetof(vhdup__pipeline, user)));
}

/* A hash job has ended (hash.h). */
static void hash_done(vhdup__hash *h) {
  vhdup__pipeline *pl = (vhdup__pipeline *)((char *)h - offsetof(vhdup__pipeline, hash));
  pl->works_pending--;
  if (h->digest_final && !pl->st.has_disk_md5) {
    memcpy(pl->st.disk_md5, h->disk_md5, sizeof(pl->st.disk_md5));
    pl->st.has_disk_md5 = 1;
  }
  pump(pl);
}

/* What asking the hash for a job returned: one more work pending, or a
 * failure. */
static void hash_queued(vhdup__pipeline *pl, int rc) {
  if (rc > 0)
    pl->works_pending++;
  else if (rc < 0)
    fail(pl, rc, "cannot queue work: %s", uv_strerror(rc));
}

int vhdup__pipeline_new(uv_loop_t *loop, const vhdup__disk *d, vhdup__sink *s,
                        const vhdup__pipeline_opts *o, vhdup__pipeline **out) {
  *out = NULL;
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  if (o->cap == 0 ||
      o->blob_size < info.virtual_size + (o->write_footer ? VHDUP__FOOTER_SIZE : 0) ||
      o->blob_size % 512 != 0 || o->merge_gap % 512 != 0)
    return VHDUP_EINVAL;
  vhdup__pipeline *pl = vhdup__calloc(1, sizeof(*pl));
  if (pl == NULL)
    return VHDUP_ENOMEM;
  pl->loop = loop;
  pl->disk = d;
  pl->sink = s;
  pl->o = *o;
  pl->virtual_size = info.virtual_size;
  vhdup__budget_user_init(&pl->user, o->cap, budget_wake);
  vhdup__list_init(&pl->active);
  vhdup__list_init(&pl->free_writes);
  vhdup__list_init(&pl->retries);
  vhdup__rng_seed(&pl->rng);
  pl->st.virtual_size = info.virtual_size;
  pl->st.blob_size = o->blob_size;
  int rc = 0;
  if (o->budget != NULL) {
    pl->budget = o->budget;
  } else {
    rc = vhdup__budget_new(o->memory, o->cap, &pl->budget);
    pl->own_budget = 1;
  }
  if (rc == 0) {
    size_t footer_len = o->write_footer ? VHDUP__FOOTER_SIZE : 0;
    rc = vhdup__hash_init(&pl->hash, loop, o->md5 && !o->crc64 && vhdup__md5x_lanes() > 1,
                          o->disk_md5, o->blob_size - footer_len,
                          o->write_footer ? pl->footer_buf : NULL, footer_len, hash_done);
  }
  if (rc == 0)
    rc = vhdup__extent_iter_new(d, VHDUP__PIECE_MAX, &pl->it);
  if (rc != 0) {
    if (pl->own_budget)
      vhdup__budget_free(pl->budget);
    vhdup__hash_free(&pl->hash);
    if (pl->it != NULL)
      vhdup__extent_iter_free(pl->it);
    vhdup__free(pl);
    return rc;
  }
  /* uv_timer_init only fills the handle in: it cannot fail. */
  uv_timer_t *timers[] = {&pl->retry_timer, &pl->kick_timer, &pl->done_timer};
  for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
    (void)uv_timer_init(loop, timers[i]);
    timers[i]->data = pl;
  }
  *out = pl;
  return 0;
}

/* ---- writes ---- */

static pagewrite *write_of(vhdup__list *node) {
  return vhdup__list_entry(node, pagewrite, link);
}

static pagewrite *write_get(vhdup__pipeline *pl) {
  vhdup__list *n = vhdup__list_pop_head(&pl->free_writes);
  pagewrite *w = n != NULL ? write_of(n) : vhdup__malloc(sizeof(*w));
  if (w == NULL)
    return NULL;
  memset(w, 0, sizeof(*w));
  vhdup__list_init(&w->link);
  w->pl = pl;
  pl->writes_alive++;
  return w;
}

static void write_put(vhdup__pipeline *pl, pagewrite *w) {
  pl->writes_alive--;
  if (w == &pl->footer)
    return;
  if (w->p != NULL)
    w->p->writes_alive--;
  vhdup__list_push_head(&pl->free_writes, &w->link);
}

/* Exponential backoff with full jitter, never less than the server's
 * Retry-After (src/azure's policy; attempt counts from 1 here). */
static uint64_t backoff_ms(vhdup__pipeline *pl, unsigned attempt, uint64_t hint_ms) {
  long hint_s = hint_ms > 0 ? (long)((hint_ms + 999) / 1000) : -1;
  return vhdup__az_backoff_ms(attempt > 0 ? attempt - 1 : 0, (uint32_t)pl->o.backoff_base_ms,
                              (uint32_t)pl->o.backoff_cap_ms, hint_s, vhdup__rng_next, &pl->rng);
}

static void retry_timer_cb(uv_timer_t *t) {
  pump(t->data);
}

static void arm_retry_timer(vhdup__pipeline *pl) {
  vhdup__list *first = vhdup__list_first(&pl->retries);
  if (first == NULL) {
    uv_timer_stop(&pl->retry_timer);
    return;
  }
  uint64_t now = uv_now(pl->loop);
  uint64_t due = write_of(first)->due;
  /* A retry that is due but found no request free is sent when one is
   * returned (write_done or the budget's wake-up pumps): no timer, no spin. */
  if (due <= now) {
    uv_timer_stop(&pl->retry_timer);
    return;
  }
  uv_timer_start(&pl->retry_timer, retry_timer_cb, due - now, 0);
}

/* After the writes already due then or earlier. */
static void schedule_retry(vhdup__pipeline *pl, pagewrite *w, uint64_t delay) {
  w->due = uv_now(pl->loop) + delay;
  vhdup__list *pos = &pl->retries;
  vhdup__list_foreach(n, &pl->retries) {
    if (write_of(n)->due > w->due) {
      pos = n;
      break;
    }
  }
  vhdup__list_insert_before(pos, &w->link);
  arm_retry_timer(pl);
}

static void write_done(vhdup__sink_write *sw, const vhdup__sink_result *r) {
  pagewrite *w = sw->owner;
  vhdup__pipeline *pl = w->pl;
  vhdup__budget_return_request(pl->budget, &pl->user);
  uint64_t now = uv_now(pl->loop);
  vhdup__budget_observe(pl->budget, now, r->error == 0 ? sw->length : 0, now - w->started,
                        r->error != 0 && r->retryable);
  if (r->error == 0) {
    pl->st.bytes_sent += sw->length;
    if (pl->o.on_written != NULL && w->p != NULL)
      pl->o.on_written(pl->o.journal_ctx, sw->offset, sw->length);
    write_put(pl, w);
  } else if (pl->stopping) {
    write_put(pl, w);
  } else if (r->retryable && w->attempts < pl->o.max_attempts) {
    pl->st.retries++;
    schedule_retry(pl, w, backoff_ms(pl, w->attempts, r->retry_after_ms));
  } else {
    fail(pl, r->error, "writing bytes %llu-%llu%s: %s", (unsigned long long)sw->offset,
         (unsigned long long)(sw->offset + sw->length - 1),
         r->retryable ? " (gave up after retries)" : "", r->message ? r->message : "failed");
    write_put(pl, w);
  }
  pump(pl);
  vhdup__budget_wake(pl->budget);
}

/* Sends w as a request; the caller has taken one from the budget. */
static void start_write(vhdup__pipeline *pl, pagewrite *w) {
  w->attempts++;
  w->started = uv_now(pl->loop);
  w->sw.cb = write_done;
  w->sw.owner = w;
  pl->st.requests++;
  if (pl->user.requests > pl->st.max_in_flight)
    pl->st.max_in_flight = pl->user.requests;
  int rc = pl->sink->ops->write(pl->sink, &w->sw);
  if (rc != 0) {
    vhdup__budget_return_request(pl->budget, &pl->user);
    fail(pl, rc, "cannot start a write at offset %llu: %s", (unsigned long long)w->sw.offset,
         vhdup_strerror(rc));
    write_put(pl, w);
  }
}

/* ---- pieces: taking, reading, scanning ---- */

static vhdup__piece *take_piece(vhdup__pipeline *pl) {
  vhdup__piece *p = vhdup__budget_take_piece(pl->budget, &pl->user);
  if (p != NULL) {
    p->pl = pl;
    vhdup__list_push_tail(&pl->active, &p->link);
  }
  return p;
}

static void return_piece(vhdup__pipeline *pl, vhdup__piece *p) {
  vhdup__list_remove(&p->link);
  vhdup__budget_return_piece(pl->budget, &pl->user, p);
}

/* The most requests this pipeline may have in flight now: the engine's
 * limit (fixed or auto's) or its own cap, the lower. Requests are cut and
 * hash jobs sized by it (hash.h). */
static unsigned requests_max(const vhdup__pipeline *pl) {
  unsigned limit = vhdup__budget_limit(pl->budget);
  return pl->user.cap < limit ? pl->user.cap : limit;
}

static void scan_work(uv_work_t *req) {
  vhdup__piece *p = req->data;
  vhdup__pipeline *pl = p->pl;
  p->n_runs =
      vhdup__scan_runs(p->buf, p->len, pl->o.merge_gap, p->run_max, p->runs, VHDUP__PIECE_RUNS_MAX);
  if (pl->o.crc64) {
    for (size_t i = 0; i < p->n_runs; i++)
      p->crcs[i] = vhdup__crc64(0, p->buf + p->runs[i].offset, p->runs[i].length);
  }
  if (pl->o.md5 && !pl->hash.batched) {
    for (size_t i = 0; i < p->n_runs; i++)
      (void)vhdup__md5_digest(p->buf + p->runs[i].offset, p->runs[i].length, p->md5s[i]);
  }
}

static void scan_done(uv_work_t *req, int status) {
  vhdup__piece *p = req->data;
  vhdup__pipeline *pl = p->pl;
  pl->works_pending--;
  (void)status;
  p->state = pl->hash.batched && p->n_runs > 0 && !pl->stopping ? VHDUP__PIECE_HASHING
                                                                : VHDUP__PIECE_READY;
  p->next_run = p->next_hash = p->runs_hashed = 0;
  size_t nonzero = 0;
  for (size_t i = 0; i < p->n_runs; i++)
    nonzero += p->runs[i].length;
  pl->st.bytes_skipped += p->len - nonzero;
  pump(pl);
}

static void start_read(vhdup__pipeline *pl, vhdup__subread *s);
static void piece_filled(vhdup__pipeline *pl, vhdup__piece *p);

static void read_done(uv_fs_t *req) {
  vhdup__subread *s = req->data;
  vhdup__piece *p = s->p;
  vhdup__pipeline *pl = p->pl;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  pl->reads_pending--;
  if (n < 0) {
    p->read_error = (int)n;
    fail(pl, (int)n, "reading %zu bytes at offset %llu: %s", s->len,
         (unsigned long long)s->file_off, uv_strerror((int)n));
  } else if (n == 0) {
    p->read_error = VHDUP_ETRUNCATED;
    fail(pl, VHDUP_ETRUNCATED, "file ended while reading offset %llu (was it truncated?)",
         (unsigned long long)s->file_off);
  } else {
    pl->st.bytes_read += (uint64_t)n;
    if ((size_t)n < s->len) {
      /* Short read: ask for the rest. */
      s->buf_off += (size_t)n;
      s->file_off += (uint64_t)n;
      s->len -= (size_t)n;
      start_read(pl, s);
      return;
    }
  }
  if (--p->reads_pending > 0)
    return;
  piece_filled(pl, p);
}

/* Every read of p has ended (or it needed none: all its data was in
 * memory): scan it on the thread pool. */
static void piece_filled(vhdup__pipeline *pl, vhdup__piece *p) {
  if (p->read_error != 0 || pl->stopping) {
    p->state = VHDUP__PIECE_READY;
    p->n_runs = 0;
    p->digested = 1;
    pump(pl);
    return;
  }
  p->state = VHDUP__PIECE_SCANNING;
  p->scan_work.data = p;
  p->run_max = vhdup__hash_run_max(&pl->hash, requests_max(pl));
  pl->works_pending++;
  int rc = uv_queue_work(pl->loop, &p->scan_work, scan_work, scan_done);
  if (rc != 0) {
    pl->works_pending--;
    p->state = VHDUP__PIECE_READY;
    p->n_runs = 0;
    fail(pl, rc, "cannot queue work: %s", uv_strerror(rc));
  }
  pump(pl);
}

static void start_read(vhdup__pipeline *pl, vhdup__subread *s) {
  uv_buf_t b = uv_buf_init((char *)s->p->buf + s->buf_off, (unsigned)s->len);
  s->req.data = s;
  pl->reads_pending++;
  int rc = uv_fs_read(pl->loop, &s->req, s->fd, &b, 1, (int64_t)s->file_off, read_done);
  if (rc != 0) {
    pl->reads_pending--;
    s->p->read_error = rc;
    fail(pl, rc, "cannot read: %s", uv_strerror(rc));
    /* Count this read as finished so the piece can be returned. */
    if (--s->p->reads_pending == 0) {
      s->p->state = VHDUP__PIECE_READY;
      s->p->n_runs = 0;
      s->p->digested = 1;
    }
  }
}

/* Takes the next extent from the plan into pl->cur. */
static int next_extent(vhdup__pipeline *pl) {
  if (pl->have_cur)
    return 1;
  if (pl->plan_done)
    return 0;
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = vhdup__extent_next(pl->it, &pl->cur, &err);
  if (rc < 0) {
    fail(pl, rc, "%s", err.msg[0] ? err.msg : vhdup_strerror(rc));
    pl->plan_done = 1;
    return 0;
  }
  if (rc == 0) {
    pl->plan_done = 1;
    pl->st.vbytes_done = pl->virtual_size;
    return 0;
  }
  pl->have_cur = 1;
  pl->cur_used = 0;
  return 1;
}

/* Fills one piece from the plan: it starts at a data extent and takes
 * following extents while they are contiguous, fit, and any zero extent in
 * between is short. File data becomes subreads; data in memory is copied
 * at once. Returns 0 when the plan has no more data. */
static int fill_piece(vhdup__pipeline *pl, vhdup__piece *p) {
  p->len = 0;
  p->n_sub = 0;
  while (next_extent(pl)) {
    vhdup__extent *e = &pl->cur;
    uint64_t left = e->length - pl->cur_used;
    uint64_t voff = e->virtual_offset + pl->cur_used;
    if (e->src == NULL) {
      pl->st.vbytes_done = voff + left;
      if (p->len == 0) {
        pl->have_cur = 0; /* zeros before any data: nothing to read */
        continue;
      }
      if (left > INLINE_ZERO_MAX || p->len + left > VHDUP__PIECE_MAX)
        break;
      memset(p->buf + p->len, 0, left);
      p->len += left;
      pl->have_cur = 0;
      continue;
    }
    if (p->len == 0)
      p->voff = voff;
    size_t room = VHDUP__PIECE_MAX - p->len;
    if (room == 0 || (e->mem == NULL && p->n_sub == VHDUP__PIECE_SUBREADS))
      break;
    size_t take = left < room ? (size_t)left : room;
    if (e->mem != NULL) {
      /* Data the disk holds in memory (a replayed VHDX log): copied in
       * place now, in order with the reads around it. */
      memcpy(p->buf + p->len, e->mem + pl->cur_used, take);
    } else {
      vhdup__subread *s = &p->sub[p->n_sub++];
      s->p = p;
      s->fd = vhdup__file_fd(e->src);
      s->buf_off = p->len;
      s->len = take;
      s->file_off = e->file_offset + pl->cur_used;
    }
    p->len += take;
    pl->cur_used += take;
    pl->st.bytes_planned += take;
    pl->st.vbytes_done = voff + take;
    if (pl->cur_used == e->length)
      pl->have_cur = 0;
  }
  return p->len > 0;
}

static void fill_pieces(vhdup__pipeline *pl) {
  while (!pl->stopping && !pl->plan_done) {
    /* Before the blob exists, one piece at a time (see pump). */
    if (pl->phase == VHDUP_PHASE_PREPARE && pl->reads_pending > 0)
      break;
    /* Peek at the plan first: a pipeline with nothing left to read must not
     * hold, or wait for, a piece. */
    if (!next_extent(pl))
      break;
    vhdup__piece *p = take_piece(pl);
    if (p == NULL)
      break;
    if (!fill_piece(pl, p)) {
      return_piece(pl, p);
      break;
    }
    p->state = VHDUP__PIECE_READING;
    p->seq = pl->next_seq++;
    p->read_error = 0;
    p->n_runs = p->next_run = 0;
    p->hash_jobs = 0;
    p->writes_alive = 0;
    p->digested = !pl->hash.digest_on;
    p->reads_pending = p->n_sub;
    for (unsigned i = 0; i < p->n_sub; i++)
      start_read(pl, &p->sub[i]);
    if (p->n_sub == 0)
      piece_filled(pl, p);
  }
}

/* Hands the hash what is ready for it: runs to hash, the next piece of the
 * whole-disk digest. */
static void advance_hashing(vhdup__pipeline *pl) {
  if (!pl->stopping)
    hash_queued(pl, vhdup__hash_advance(&pl->hash, &pl->active, vhdup__budget_pieces(pl->budget),
                                        requests_max(pl)));
  if (!pl->stopping)
    hash_queued(pl, vhdup__hash_digest_advance(&pl->hash, &pl->active));
}

/* ---- sending ---- */

static vhdup__piece *oldest_with_runs(vhdup__pipeline *pl) {
  /* The active list is in plan order: the first with runs is the oldest. */
  vhdup__list_foreach(n, &pl->active) {
    vhdup__piece *p = vhdup__piece_of(n);
    if (p->state == VHDUP__PIECE_READY && p->next_run < p->n_runs)
      return p;
  }
  return NULL;
}

static void send_writes(vhdup__pipeline *pl) {
  uint64_t now = uv_now(pl->loop);
  vhdup__list *first;
  while (!pl->stopping && (first = vhdup__list_first(&pl->retries)) != NULL &&
         write_of(first)->due <= now && vhdup__budget_take_request(pl->budget, &pl->user)) {
    vhdup__list_remove(first);
    start_write(pl, write_of(first));
  }
  arm_retry_timer(pl);
  while (!pl->stopping) {
    vhdup__piece *p = oldest_with_runs(pl);
    if (p == NULL || !vhdup__budget_take_request(pl->budget, &pl->user))
      break;
    size_t i = p->next_run++;
    const vhdup__run *run = &p->runs[i];
    uint64_t off = p->voff + run->offset;
    if (pl->o.is_done != NULL && pl->o.is_done(pl->o.journal_ctx, off, run->length)) {
      pl->st.bytes_resumed += run->length;
      vhdup__budget_return_request(pl->budget, &pl->user);
      continue;
    }
    pagewrite *w = write_get(pl);
    if (w == NULL) {
      vhdup__budget_return_request(pl->budget, &pl->user);
      fail(pl, VHDUP_ENOMEM, "out of memory");
      break;
    }
    w->p = p;
    p->writes_alive++;
    w->sw.offset = off;
    w->sw.length = run->length;
    w->sw.data = p->buf + run->offset;
    if (pl->o.crc64) {
      w->sw.has_crc64 = 1;
      w->sw.crc64 = p->crcs[i];
    } else if (pl->o.md5) {
      w->sw.has_md5 = 1;
      memcpy(w->sw.md5, p->md5s[i], 16);
    }
    start_write(pl, w);
  }
}

/* Returns to the budget the pieces whose writes are all confirmed and that
 * the digest has passed over (all of them, once stopping, when nothing
 * holds them). */
static void return_pieces(vhdup__pipeline *pl) {
  vhdup__list_foreach_safe(n, &pl->active) {
    vhdup__piece *p = vhdup__piece_of(n);
    if (p->writes_alive > 0)
      continue;
    if (p->state == VHDUP__PIECE_HASHING && pl->stopping && p->hash_jobs == 0) {
      return_piece(pl, p);
      continue;
    }
    if (p->state != VHDUP__PIECE_READY)
      continue;
    if (pl->stopping || (p->next_run >= p->n_runs && p->digested))
      return_piece(pl, p);
  }
}

/* ---- phases ---- */

static int data_phase_over(vhdup__pipeline *pl) {
  if (!pl->plan_done || pl->writes_alive > 0 || pl->reads_pending > 0)
    return 0;
  return vhdup__list_empty(&pl->active);
}

static void start_footer(vhdup__pipeline *pl) {
  pl->footer_started = 1;
  pagewrite *w = &pl->footer;
  memset(w, 0, sizeof(*w));
  vhdup__list_init(&w->link);
  w->pl = pl;
  pl->writes_alive++;
  w->sw.offset = pl->o.blob_size - VHDUP__FOOTER_SIZE;
  w->sw.length = VHDUP__FOOTER_SIZE;
  w->sw.data = pl->footer_buf;
  if (pl->o.crc64) {
    w->sw.has_crc64 = 1;
    w->sw.crc64 = vhdup__crc64(0, pl->footer_buf, VHDUP__FOOTER_SIZE);
  } else if (pl->o.md5) {
    w->sw.has_md5 = 1;
    (void)vhdup__md5_digest(pl->footer_buf, VHDUP__FOOTER_SIZE, w->sw.md5);
  }
  start_write(pl, w);
}

static void finish_cb(vhdup__sink *s, const vhdup__sink_result *r, void *data) {
  vhdup__pipeline *pl = data;
  (void)s;
  pl->works_pending--;
  if (r->error != 0)
    fail(pl, r->error, "finishing: %s", r->message ? r->message : vhdup_strerror(r->error));
  else
    pl->phase = VHDUP_PHASE_DONE;
  pump(pl);
}

static void prepare_cb(vhdup__sink *s, const vhdup__sink_result *r, void *data) {
  vhdup__pipeline *pl = data;
  (void)s;
  int rc;
  if (r->error != 0)
    fail(pl, r->error, "%s", r->message ? r->message : vhdup_strerror(r->error));
  else if (pl->o.on_prepared != NULL && !pl->stopping &&
           (rc = pl->o.on_prepared(pl->o.journal_ctx)) != 0)
    fail(pl, rc, "%s", vhdup_strerror(rc));
  else if (!pl->stopping)
    pl->phase = VHDUP_PHASE_DATA;
  pl->works_pending--;
  pump(pl);
}

static void fire_done(vhdup__pipeline *pl) {
  if (pl->done_fired)
    return;
  pl->done_fired = 1;
  pl->done_pending = 0;
  vhdup__budget_leave(pl->budget, &pl->user);
  if (pl->status == 0 && pl->phase != VHDUP_PHASE_DONE)
    pl->status = VHDUP_ECANCELED;
  pl->st.phase = pl->phase;
  if (pl->done_cb != NULL)
    pl->done_cb(pl, pl->status, pl->status ? pl->message : NULL, pl->done_data);
}

static void done_timer_cb(uv_timer_t *t) {
  fire_done(t->data);
}

/* done_cb runs from its timer, never from inside a call the owner made
 * (start, cancel) nor from inside a sink's callback. */
static void defer_done(vhdup__pipeline *pl) {
  if (pl->done_pending || pl->done_fired)
    return;
  pl->done_pending = 1;
  uv_timer_start(&pl->done_timer, done_timer_cb, 0, 0);
}

/* Stopping: waiting retries hold no request, so they are dropped; done once
 * nothing is out any more. */
static void pump_stopping(vhdup__pipeline *pl) {
  vhdup__list *n;
  while ((n = vhdup__list_pop_head(&pl->retries)) != NULL)
    write_put(pl, write_of(n));
  uv_timer_stop(&pl->retry_timer);
  return_pieces(pl);
  if (pl->user.requests == 0 && pl->works_pending == 0 && pl->reads_pending == 0)
    defer_done(pl);
}

/* While the blob is created (a round trip, more with a container or a
 * resume's page ranges), the first pieces are read, scanned and hashed
 * within the pipeline's share of the pool, so requests leave as soon as it
 * exists instead of after the first hash job's latency. Reads begin once the
 * create has gone out (see start) and one piece at a time, so they do not
 * crowd it off the two cores. Nothing is sent before the blob exists. */
static void pump_prepare(vhdup__pipeline *pl) {
  fill_pieces(pl);
  advance_hashing(pl);
  return_pieces(pl);
}

static void pump_data(vhdup__pipeline *pl) {
  fill_pieces(pl);
  advance_hashing(pl);
  send_writes(pl);
  return_pieces(pl);
  if (data_phase_over(pl) && !pl->stopping) {
    pl->phase = VHDUP_PHASE_FOOTER;
    pl->pump_again = 1;
  }
}

/* The disk's digest completes, then the footer goes out, then the sink
 * finishes. */
static void pump_footer(vhdup__pipeline *pl) {
  if (!vhdup__hash_digest_complete(&pl->hash)) {
    hash_queued(pl, vhdup__hash_digest_tail(&pl->hash));
    return;
  }
  if (!pl->o.write_footer || (pl->footer_started && pl->writes_alive == 0)) {
    pl->phase = VHDUP_PHASE_FINISH;
    pl->works_pending++;
    pl->sink->ops->finish(pl->sink, pl->st.has_disk_md5 ? pl->st.disk_md5 : NULL, finish_cb, pl);
    return;
  }
  if (!pl->footer_started && vhdup__budget_take_request(pl->budget, &pl->user))
    start_footer(pl);
  send_writes(pl); /* the footer's retries */
}

static void pump_phase(vhdup__pipeline *pl) {
  switch (pl->phase) {
  case VHDUP_PHASE_PREPARE:
    pump_prepare(pl);
    break;
  case VHDUP_PHASE_DATA:
    pump_data(pl);
    break;
  case VHDUP_PHASE_FOOTER:
    pump_footer(pl);
    break;
  case VHDUP_PHASE_DONE:
    defer_done(pl);
    break;
  default:
    break;
  }
}

/* Moves the pipeline as far as it can go now. Re-entered calls (from the
 * callbacks it makes) only ask for another turn of the loop below. */
static void pump(vhdup__pipeline *pl) {
  if (pl->pumping) {
    pl->pump_again = 1;
    return;
  }
  pl->pumping = 1;
  do {
    pl->pump_again = 0;
    if (pl->stopping)
      pump_stopping(pl);
    else
      pump_phase(pl);
  } while (pl->pump_again);
  pl->pumping = 0;
  /* Pieces or requests returned above may be what another pipeline waits for. */
  vhdup__budget_wake(pl->budget);
}

/* The first reads, on the loop's next turn (see vhdup__pipeline_start);
 * moot once the blob exists (every event pumps from then on) or once the
 * pipeline stops. */
static void kick_timer_cb(uv_timer_t *t) {
  vhdup__pipeline *pl = t->data;
  if (pl->phase == VHDUP_PHASE_PREPARE && !pl->stopping)
    pump(pl);
}

int vhdup__pipeline_start(vhdup__pipeline *pl, vhdup__pipeline_done_cb cb, void *data) {
  if (pl->started)
    return VHDUP_EBUSY;
  pl->started = 1;
  pl->done_cb = cb;
  pl->done_data = data;
  memcpy(pl->footer_buf, pl->o.footer, sizeof(pl->footer_buf));
  pl->phase = VHDUP_PHASE_PREPARE;
  vhdup__budget_join(pl->budget, &pl->user);
  pl->works_pending++;
  pl->sink->ops->prepare(pl->sink, pl->o.blob_size, prepare_cb, pl);
  /* Reads begin from the loop's next turn, after the HTTP layer's own timer
   * (started first, with the same timeout) has sent the create on its way. */
  if (!pl->done_pending)
    uv_timer_start(&pl->kick_timer, kick_timer_cb, 0, 0);
  return 0;
}

void vhdup__pipeline_cancel(vhdup__pipeline *pl) {
  if (!pl->started || pl->done_fired)
    return;
  fail(pl, VHDUP_ECANCELED, "canceled");
  pump(pl);
}

void *vhdup__pipeline_data(const vhdup__pipeline *pl) {
  return pl->done_data;
}

void vhdup__pipeline_get_stats(const vhdup__pipeline *pl, vhdup__pipeline_stats *st) {
  *st = pl->st;
  st->in_flight = pl->user.requests;
  st->phase = pl->phase;
}

static void timer_closed(uv_handle_t *h) {
  vhdup__pipeline *pl = h->data;
  if (--pl->closes_pending > 0)
    return;
  if (pl->close_cb != NULL)
    pl->close_cb(pl);
  vhdup__budget_leave(pl->budget, &pl->user);
  if (pl->own_budget)
    vhdup__budget_free(pl->budget);
  vhdup__list *n;
  while ((n = vhdup__list_pop_head(&pl->free_writes)) != NULL)
    vhdup__free(write_of(n));
  vhdup__hash_free(&pl->hash);
  vhdup__extent_iter_free(pl->it);
  vhdup__free(pl);
}

void vhdup__pipeline_close(vhdup__pipeline *pl, void (*close_cb)(vhdup__pipeline *p)) {
  pl->close_cb = close_cb;
  pl->closes_pending = 3;
  uv_close((uv_handle_t *)&pl->retry_timer, timer_closed);
  uv_close((uv_handle_t *)&pl->kick_timer, timer_closed);
  uv_close((uv_handle_t *)&pl->done_timer, timer_closed);
}
