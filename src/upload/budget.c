#include "upload/budget.h"

#include "upload/autotune.h"
#include "util/alloc.h"
#include "vhdup_errno.h"

#include <sys/mman.h>

struct vhdup__budget {
  vhdup__piece *pieces;
  unsigned n_pieces; /* allocated: memory / 4 MiB, at least 2 */
  vhdup__list free;  /* touched pieces, the last returned first */
  unsigned n_free;
  vhdup__list fresh; /* pieces never written, so not resident */
  unsigned n_fresh;
  unsigned n_touched;        /* taken, or free and touched */
  size_t memory;             /* what the touched pieces and the requests' state may use */
  unsigned requests_peak;    /* the most requests in flight so far: their state stays */
  unsigned requests_charged; /* the most asked for so far, which memory must cover */
  unsigned limit;            /* requests in flight at most */
  unsigned requests;         /* requests in flight */
  unsigned n_running;
  vhdup__list waiters; /* vhdup__budget_user.wait_link, in arrival order */
  unsigned n_waiting;
  int waking;
  int auto_on;
  vhdup__autotune autotune;
};

/* Memory is charged as it is used, so the process's footprint stays where
 * --memory puts it whatever the workload: a touched piece costs its 4 MiB,
 * and each request in flight at once, at the most so far, costs
 * VHDUP__REQUEST_BYTES. Rounded down: 64 MiB makes 15 pieces. Dense data
 * keeps few requests in flight and keeps every piece; small islands at 256
 * requests in flight trim one or two pieces to pay for 10 MiB of request
 * state. */
static unsigned pieces_for(size_t memory, unsigned requests) {
  size_t state = (size_t)requests * VHDUP__REQUEST_BYTES;
  size_t n = memory > state ? (memory - state) / VHDUP__PIECE_MAX : 0;
  return n < 2 ? 2 : (unsigned)n;
}

static unsigned pieces_allowed(const vhdup__budget *b, unsigned requests) {
  return pieces_for(b->memory, requests);
}

/* A piece's read buffer, on 2 MiB boundaries and, where the system has
 * them, in transparent huge pages: every byte is copied twice (read into
 * it, then into libcurl's upload buffer) from buffers larger than the
 * caches, and with 4 KiB pages the TLB misses of those copies cost a
 * noticeable share of the CPU of a dense upload (docs/measurements.md). */
static uint8_t *piece_buf_new(void **base) {
  uint8_t *buf = vhdup__malloc_aligned(VHDUP__PIECE_MAX, 2u * 1024 * 1024, base);
#ifdef MADV_HUGEPAGE
  if (buf != NULL)
    (void)madvise(buf, VHDUP__PIECE_MAX, MADV_HUGEPAGE); /* advice only */
#endif
  return buf;
}

int vhdup__budget_new(size_t memory, unsigned limit, vhdup__budget **out) {
  *out = NULL;
  if (limit == 0)
    return VHDUP_EINVAL;
  vhdup__budget *b = vhdup__calloc(1, sizeof(*b));
  if (b == NULL)
    return VHDUP_ENOMEM;
  vhdup__list_init(&b->free);
  vhdup__list_init(&b->fresh);
  vhdup__list_init(&b->waiters);
  b->limit = limit;
  b->memory = memory;
  b->requests_charged = 1; /* the first request's state is always needed */
  b->n_pieces = pieces_for(memory, 1);
  b->pieces = vhdup__calloc(b->n_pieces, sizeof(vhdup__piece));
  if (b->pieces == NULL) {
    vhdup__free(b);
    return VHDUP_ENOMEM;
  }
  for (unsigned i = 0; i < b->n_pieces; i++) {
    vhdup__piece *p = &b->pieces[i];
    p->buf = piece_buf_new(&p->buf_base);
    p->runs = vhdup__malloc(VHDUP__PIECE_RUNS_MAX * sizeof(*p->runs));
    p->md5s = vhdup__malloc(VHDUP__PIECE_RUNS_MAX * sizeof(*p->md5s));
    p->crcs = vhdup__malloc(VHDUP__PIECE_RUNS_MAX * sizeof(*p->crcs));
    if (p->buf == NULL || p->runs == NULL || p->md5s == NULL || p->crcs == NULL) {
      vhdup__budget_free(b);
      return VHDUP_ENOMEM;
    }
    vhdup__list_push_head(&b->fresh, &p->link);
    b->n_fresh++;
  }
  *out = b;
  return 0;
}

void vhdup__budget_free(vhdup__budget *b) {
  if (b == NULL)
    return;
  for (unsigned i = 0; i < b->n_pieces; i++) {
    vhdup__free(b->pieces[i].buf_base);
    vhdup__free(b->pieces[i].runs);
    vhdup__free(b->pieces[i].md5s);
    vhdup__free(b->pieces[i].crcs);
  }
  vhdup__free(b->pieces);
  vhdup__free(b);
}

void vhdup__budget_set_auto(vhdup__budget *b, unsigned max) {
  b->auto_on = 1;
  vhdup__autotune_init(&b->autotune, max ? max : b->limit);
  b->limit = vhdup__autotune_limit(&b->autotune);
}

unsigned vhdup__budget_limit(const vhdup__budget *b) {
  return b->limit;
}

void vhdup__budget_observe(vhdup__budget *b, uint64_t now, uint64_t bytes, uint64_t latency_ms,
                           int congested) {
  if (!b->auto_on)
    return;
  vhdup__autotune_observe(&b->autotune, now, bytes, latency_ms, congested, b->requests);
  b->limit = vhdup__autotune_limit(&b->autotune);
}

unsigned vhdup__budget_pieces(const vhdup__budget *b) {
  return b->n_pieces;
}

/* ---- pieces ---- */

static unsigned fair(unsigned total, unsigned running) {
  unsigned share = running ? total / running : total;
  return share ? share : 1;
}

static int piece_available(const vhdup__budget *b) {
  return b->n_free > 0 || (b->n_fresh > 0 && b->n_touched < pieces_allowed(b, b->requests_charged));
}

/* Gives the pages of the last free touched piece back to the system: it
 * gets new, untouched buffers and becomes fresh. If the allocation fails it
 * just stays as it is. */
static void trim_piece(vhdup__budget *b) {
  vhdup__piece *p = vhdup__piece_of(vhdup__list_first(&b->free));
  void *base;
  uint8_t *buf = piece_buf_new(&base);
  vhdup__run *runs = vhdup__malloc(VHDUP__PIECE_RUNS_MAX * sizeof(*runs));
  uint8_t(*md5s)[16] = vhdup__malloc(VHDUP__PIECE_RUNS_MAX * sizeof(*md5s));
  uint64_t *crcs = vhdup__malloc(VHDUP__PIECE_RUNS_MAX * sizeof(*crcs));
  if (buf == NULL || runs == NULL || md5s == NULL || crcs == NULL) {
    vhdup__free(base);
    vhdup__free(runs);
    vhdup__free(md5s);
    vhdup__free(crcs);
    return;
  }
  vhdup__free(p->buf_base);
  vhdup__free(p->runs);
  vhdup__free(p->md5s);
  vhdup__free(p->crcs);
  p->buf = buf;
  p->buf_base = base;
  p->runs = runs;
  p->md5s = md5s;
  p->crcs = crcs;
  vhdup__list_remove(&p->link);
  b->n_free--;
  p->touched = 0;
  b->n_touched--;
  vhdup__list_push_head(&b->fresh, &p->link);
  b->n_fresh++;
}

/* Trims free pieces while more are touched than the requests asked for
 * leave room for. */
static void trim(vhdup__budget *b) {
  while (b->n_touched > pieces_allowed(b, b->requests_charged) && b->n_free > 0) {
    unsigned before = b->n_free;
    trim_piece(b);
    if (b->n_free == before)
      break; /* out of memory: keep the pages */
  }
}

/* ---- the queue of waiters ---- */

static void wait_for(vhdup__budget *b, vhdup__budget_user *u, int request) {
  if (request)
    u->wants_request = 1;
  else
    u->wants_piece = 1;
  if (vhdup__list_linked(&u->wait_link))
    return;
  b->n_waiting++;
  vhdup__list_push_tail(&b->waiters, &u->wait_link);
}

static void unwait(vhdup__budget *b, vhdup__budget_user *u) {
  if (!vhdup__list_linked(&u->wait_link))
    return;
  vhdup__list_remove(&u->wait_link);
  b->n_waiting--;
  u->wants_request = u->wants_piece = 0;
}

static int others_wait(const vhdup__budget *b, const vhdup__budget_user *u) {
  const vhdup__list *first = vhdup__list_first(&b->waiters);
  return first != NULL && first != &u->wait_link;
}

/* One more request in flight fits if it is the only one, if it stays within
 * the most so far (its state is there already), or if the touched pieces
 * leave room for its state. Asking raises what memory must cover, so pieces
 * returned from now on are trimmed until it fits. */
static int request_fits(vhdup__budget *b) {
  unsigned want = b->requests + 1;
  if (b->requests == 0 || want <= b->requests_peak)
    return 1;
  if (want > b->requests_charged) {
    b->requests_charged = want;
    trim(b);
  }
  return b->n_touched <= pieces_allowed(b, want);
}

void vhdup__budget_wake(vhdup__budget *b) {
  if (b->waking || vhdup__list_empty(&b->waiters))
    return;
  b->waking = 1;
  for (unsigned n = b->n_waiting; n > 0 && !vhdup__list_empty(&b->waiters); n--) {
    vhdup__budget_user *u =
        vhdup__list_entry(vhdup__list_first(&b->waiters), vhdup__budget_user, wait_link);
    int can =
        (u->wants_piece && piece_available(b)) ||
        (u->wants_request && b->requests < b->limit && u->requests < u->cap && request_fits(b));
    int request = u->wants_request, piece = u->wants_piece;
    unwait(b, u);
    if (can) {
      u->wake(u); /* waits again, at the tail, if still short */
    } else {
      if (request)
        wait_for(b, u, 1);
      if (piece)
        wait_for(b, u, 0);
    }
  }
  b->waking = 0;
}

/* ---- users ---- */

void vhdup__budget_user_init(vhdup__budget_user *u, unsigned cap,
                             void (*wake)(vhdup__budget_user *u)) {
  *u = (vhdup__budget_user){0};
  vhdup__list_init(&u->wait_link);
  u->cap = cap;
  u->wake = wake;
}

void vhdup__budget_join(vhdup__budget *b, vhdup__budget_user *u) {
  if (!u->running) {
    u->running = 1;
    b->n_running++;
  }
}

void vhdup__budget_leave(vhdup__budget *b, vhdup__budget_user *u) {
  unwait(b, u);
  if (u->running) {
    u->running = 0;
    b->n_running--;
    vhdup__budget_wake(b);
  }
}

int vhdup__budget_take_request(vhdup__budget *b, vhdup__budget_user *u) {
  int full = b->requests >= b->limit;
  if (full || u->requests >= u->cap ||
      (others_wait(b, u) && u->requests >= fair(b->limit, b->n_running))) {
    if (full || others_wait(b, u))
      wait_for(b, u, 1);
    return 0;
  }
  if (!request_fits(b)) {
    wait_for(b, u, 1);
    return 0;
  }
  b->requests++;
  u->requests++;
  if (b->requests > b->requests_peak)
    b->requests_peak = b->requests;
  return 1;
}

void vhdup__budget_return_request(vhdup__budget *b, vhdup__budget_user *u) {
  u->requests--;
  b->requests--;
}

vhdup__piece *vhdup__budget_take_piece(vhdup__budget *b, vhdup__budget_user *u) {
  /* Pieces turn over slowly (one is held until all its writes are
   * confirmed), so a pipeline keeps to its fair share of them whenever
   * others run, not only once they wait: a job that starts second must not
   * find the whole pool taken for a second or more. */
  if (!piece_available(b) ||
      ((others_wait(b, u) || b->n_running > 1) &&
       u->pieces >= fair(pieces_allowed(b, b->requests_charged), b->n_running))) {
    wait_for(b, u, 0);
    return NULL;
  }
  vhdup__piece *p;
  if (b->n_free > 0) {
    p = vhdup__piece_of(vhdup__list_pop_head(&b->free));
    b->n_free--;
  } else {
    p = vhdup__piece_of(vhdup__list_pop_head(&b->fresh));
    b->n_fresh--;
    p->touched = 1;
    b->n_touched++;
  }
  u->pieces++;
  return p;
}

void vhdup__budget_return_piece(vhdup__budget *b, vhdup__budget_user *u, vhdup__piece *p) {
  u->pieces--;
  p->state = VHDUP__PIECE_FREE;
  p->pl = NULL;
  vhdup__list_push_head(&b->free, &p->link);
  b->n_free++;
  trim(b);
}
