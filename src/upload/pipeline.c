#include "upload/pipeline.h"

#include "upload/file_src.h"
#include "upload/scan.h"
#include "azure/azure.h"
#include "util/alloc.h"
#include "util/crypto.h"
#include "util/md5x.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* A piece may gather data from several extents (differencing chains mix
 * layers sector by sector); past this many it ends early. */
#define MAX_SUBREADS 16
/* Zero extents shorter than this inside a piece are filled in memory rather
 * than ending the piece, so one read buffer covers them. */
#define INLINE_ZERO_MAX (64u * 1024)

static const uint8_t zeros[64 * 1024];

typedef struct piece piece;
typedef struct pagewrite pagewrite;

typedef struct subread {
  uv_fs_t req;
  piece *p;
  int fd;
  size_t buf_off;
  size_t len;
  uint64_t file_off;
} subread;

/* A piece is read, then scanned into runs; with batched MD5 (below) its
 * runs then wait in PIECE_HASHING until every one has its digest. */
enum { PIECE_FREE = 0, PIECE_READING, PIECE_SCANNING, PIECE_HASHING, PIECE_READY };

/* Batched MD5: one job on the thread pool at a time takes up to this many
 * runs waiting, from the oldest piece on, and hashes them VHDUP__MD5X_MAX
 * side by side (util/md5x.h). While hashing keeps up, jobs are small and
 * follow the reads closely; when it is the bottleneck, runs pile up and
 * every lane is used. */
#define HASH_JOB_RUNS 64
/* A job holds its pieces from sending, and must leave the pool room to
 * read and send others: it takes at most a quarter of the pool's bytes, and
 * requests are cut at 2 MiB, so that 8 lanes fill with 16 MiB (below 16
 * connections, half the pool; see advance_hash). (Measured:
 * 1 GiB dense, 16 connections, the loopback sink, 64 MiB pool: 4 MiB
 * requests in 32 MiB jobs 1.28 s, in 16 MiB jobs 1.33 s; 2 MiB requests in
 * 16 MiB jobs 1.17 s; 1 MiB in 8 MiB 1.22 s; two jobs at once 1.3 s.)
 * But each request also costs a round trip, which few connections do not
 * hide: over 80 ms at 100 MB/s, 2 MiB requests made 20, 40, 78 and 87 MB/s
 * at 1, 2, 4 and 8 connections against 32, 62, 80 and 92 with 4 MiB, and
 * the same 92 at 16. So the cut is at 2 MiB only while HASH_CUT_CONNS or
 * more requests may be in flight; below that, jobs may take half the pool,
 * so that 8 requests of 4 MiB fill the lanes (to the loopback sink, 1 GiB
 * dense: 1.09, 1.12 and 1.11 s at 1, 4 and 8 connections against 1.19,
 * 1.25 and 1.22 s with a quarter, and 1.6 against 1.8 CPU s, medians of
 * 5 in turn; over a long round trip hashing is far ahead and jobs small). */
#define HASH_RUN_MAX (2u * 1024 * 1024)
#define HASH_CUT_CONNS 16

struct piece {
  vhdup__pipeline *pl; /* the owner while taken from the budget */
  piece *next_free;    /* in one of the budget's free lists */
  piece *next_active;  /* in the owner's list, in plan order */
  uint8_t *buf;
  void *buf_base; /* what buf was allocated as (see piece_buf_new) */
  int touched;    /* written since its buffers were allocated: they hold pages */
  int state;
  uint64_t seq;
  uint64_t voff;
  size_t len;
  unsigned n_sub;
  unsigned reads_pending;
  int read_error;
  subread sub[MAX_SUBREADS];
  uv_work_t scan_work;
  size_t run_max; /* a request's most bytes, set when the scan is queued */
  vhdup__run *runs;
  uint8_t (*md5s)[16];
  uint64_t *crcs;
  size_t n_runs;
  size_t next_run;
  size_t next_hash;   /* PIECE_HASHING: runs from here on are in no job yet */
  size_t runs_hashed; /* PIECE_HASHING: runs with their MD5 */
  unsigned hash_jobs; /* jobs holding runs of this piece */
  unsigned writes_alive;
  int digested;
};

typedef struct hashjob {
  uv_work_t work;
  vhdup__pipeline *pl;
  size_t n;
  piece *p[HASH_JOB_RUNS];
  size_t run[HASH_JOB_RUNS];
} hashjob;

struct pagewrite {
  vhdup__sink_write sw;
  vhdup__pipeline *pl;
  piece *p; /* NULL for the footer */
  unsigned attempts;
  uint64_t started; /* loop ms, for --connections auto's latency */
  uint64_t due;
  pagewrite *next;
};

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
  piece *active_head, *active_tail; /* pieces taken, in plan order */
  unsigned n_held;
  unsigned cap;               /* this blob's requests in flight at most */
  vhdup__pipeline *wait_next; /* in the budget's queue of waiters */
  int waiting;
  int wants_slot, wants_piece;
  int registered; /* counted among the budget's running pipelines */
  uint64_t next_seq;

  pagewrite *free_writes;
  pagewrite *retry_head; /* sorted by due time */
  unsigned in_flight;
  unsigned writes_alive;
  uv_timer_t retry_timer;
  int timer_inited;

  int digest_on;
  vhdup__md5_ctx digest;
  uv_work_t digest_work;
  int digest_busy;
  uint64_t digest_seq;
  uint64_t digest_pos;
  piece *digest_piece;
  int digest_tail_done;

  int md5_batched; /* per-run MD5s by hash jobs rather than by scan_work */
  int hash_busy;
  hashjob hash;

  unsigned works_pending;
  unsigned reads_pending;

  int phase;
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
  uint64_t rng;
  void (*close_cb)(vhdup__pipeline *p);
};

static void pump(vhdup__pipeline *pl);

/* ---- the budget: requests in flight and read buffers, shared by every
 * pipeline of an engine (a manifest of 50 disks at 64 connections holds at
 * most 64 requests and one pool). Fairness: while some pipeline waits, the
 * others may not go beyond their fair share (total / running pipelines), and
 * freed resources go to waiters first, in arrival order. ---- */

struct vhdup__budget {
  piece *pieces;
  unsigned n_pieces; /* allocated: memory / 4 MiB, at least 2 */
  piece *free;       /* touched pieces, the last given back first */
  unsigned n_free;
  piece *fresh; /* pieces never written, so not resident */
  unsigned n_fresh;
  unsigned n_touched;     /* held, or free and touched */
  size_t memory;          /* what the touched pieces and the slots' state may use */
  unsigned slots_peak;    /* the most requests in flight so far: their state stays */
  unsigned slots_charged; /* the most asked for so far, which memory must cover */
  size_t max_runs;
  unsigned slots_total;
  unsigned slots_used;
  unsigned n_running;
  vhdup__pipeline *wait_head, *wait_tail;
  unsigned n_waiting;
  int waking;
  /* --connections auto: slots_total moves between 1 and auto_max. */
  int auto_on;
  unsigned auto_max;
  int slow_start;
  uint64_t win_start; /* loop ms; 0: no window open */
  uint64_t win_work;  /* bytes, plus AUTO_REQUEST_COST per request */
  unsigned win_done;
  unsigned win_busy;    /* the most requests in flight seen in the window */
  uint64_t win_latency; /* ms, summed */
  int win_congested;
  double prev_rate, prev_size, best_rate, min_latency;
  double judged_size; /* mean request size of the last window judged */
  unsigned skipped;   /* windows in a row not compared with the one before */
  unsigned best_limit;
  unsigned base_limit; /* the last limit whose rate was measured, not probed */
  /* A probe down (see below): the rate it must keep, 0 when none is out;
   * the limit to return to; no more until the requests change kind; the
   * limit before the first one, which islands start from again. */
  double probe_rate;
  unsigned probe_limit;
  int probe_done;
  unsigned probe_origin;
};

/* --connections auto, AIMD on measured goodput, counted as bytes plus
 * AUTO_REQUEST_COST per request. A window of completions lasts at least
 * 50 ms and as many completions as requests were in flight (a round: one
 * slow request cannot steer it, and after big requests give way to small
 * ones, the small ones end it quickly). At its end, in this order (the
 * first two rules pass over a window with a throttle in it):
 * - when the requests changed kind (a disk's big runs, of AUTO_BIG or more,
 *   giving way to small islands, whose rate grows with every connection
 *   while the runs' rate is bound by bandwidth and the pool), rates and
 *   latencies are no longer comparable: the window is dropped, a growth
 *   not yet confirmed by a window of its own is undone (the last measured
 *   limit returns), and slow start begins again from there. Without the
 *   undo, a disk whose requests keep changing kept every fourfold probe
 *   unjudged and ended at the maximum even where connections cost CPU and
 *   gained nothing (the reference disk to the loopback sink:
 *   84% of the rate at 4 connections);
 * - a window whose requests differ in mean size by more than 1.5x from the
 *   previous window's is not compared with it (its rate says more about
 *   the mix than about the limit): the limit stays, but a second such
 *   window in a row undoes a growth not yet judged;
 * - a throttle or a failed request (503, 429, 500, reset, timeout) in the
 *   window halves the limit;
 * - a window in which the limit never held requests back (the memory pool,
 *   the disk or the reads did) teaches nothing about more connections, but
 *   fewer may do as well or better (where sending costs CPU, as on
 *   loopback, each request in flight costs some: 1 GiB of dense data went
 *   about 10% faster at 4 connections than at the 15 the pool let out):
 *   the limit is cut to half the requests that were in flight, once. The
 *   next window judges it: kept if the rate stayed within 5% (slow start
 *   ends there; the limit now binds, so the rules below apply), halved
 *   again if it grew by more than 10%, else the limit returns. Over a link
 *   that bandwidth bounds, the half keeps the rate and is kept: still
 *   several times the requests a round trip needs. When the requests then
 *   change kind, slow start begins again from the limit before the first
 *   probe down, not from what it cut: islands after big runs need many
 *   connections (the reference disk over 20 ms began its islands from 12
 *   in a trace, and one run of sweep #15 ended at 7, highest 92, at 77%
 *   of the best fixed count);
 * - otherwise, from AUTO_START requests, slow start: the limit grows fourfold
 *   while latency stays within a quarter of its best (requests are bound by
 *   round trips, not queued behind each other, so by Little's law more of
 *   them in flight are more served), else twofold while throughput grows by
 *   more than 10%; then it returns to the best limit seen (of two within
 *   5%, the smaller) and moves by an eighth: up while throughput still
 *   grows by 5%, down when latency has doubled over its best without a
 *   gain.
 * Bounded by auto_max, and in effect by the memory pool (each request in
 * flight holds part of a piece). test/unit/test_auto.c runs it against
 * models of a link. */
/* What auto counts a request as worth besides its bytes: a request costs a
 * round trip and a server's per-request work whatever it carries (a page
 * blob takes about 500 requests/s and 60 MiB/s, so one request is worth
 * some 120 KiB of data there). Counted so, islands of 4 KiB and of 20 KiB
 * measure alike (68 and 84 KiB), and windows of either can be compared. */
#define AUTO_REQUEST_COST (64u * 1024)
/* Requests from this size (counted as above) are big runs: few of them fill
 * the memory pool before any limit of connections binds. Smaller ones are
 * islands, bound by round trips, whose rate follows the limit. */
#define AUTO_BIG (1024.0 * 1024)
/* Where auto starts. Connections cost 40 KiB each and big runs are held
 * back by the memory pool (15 pieces with --memory 64M) whatever the limit,
 * so a high start costs little; small islands over a long round trip gain
 * from it at once (the reference disk over an 80 ms path: 3.6 s from 16, as
 * fast as a fixed 256 from 64), and throttling halves it. */
#define AUTO_START 64u

static void window_reset(vhdup__budget *b, uint64_t now) {
  b->win_start = now;
  b->win_work = 0;
  b->win_done = 0;
  b->win_busy = 0;
  b->win_latency = 0;
  b->win_congested = 0;
}

void vhdup__budget_observe(vhdup__budget *b, uint64_t now, uint64_t bytes, uint64_t latency_ms,
                           int congested, unsigned in_flight) {
  if (!b->auto_on)
    return;
  if (b->win_start == 0) {
    /* The first completion opens the first window and is not counted in
     * it: counted, n completions over the n - 1 gaps between them read
     * high (a fifteenth with 15 in flight), and a probe down judged
     * against that rate returned where it found the same. */
    b->win_start = now;
    return;
  }
  b->win_work += bytes + AUTO_REQUEST_COST;
  b->win_done++;
  b->win_latency += latency_ms;
  b->win_congested |= congested;
  unsigned busy = in_flight + 1; /* the finished request had its slot */
  if (busy > b->win_busy)
    b->win_busy = busy;
  uint64_t elapsed = now - b->win_start;
  double latency = (double)b->win_latency / b->win_done;
  if (elapsed < 50 || b->win_done < b->win_busy)
    return;
  double rate = (double)b->win_work * 1000.0 / (double)elapsed;
  double size = (double)b->win_work / b->win_done;
  int limited = b->win_busy >= b->slots_total;
  int resized = b->judged_size > 0 && (size >= AUTO_BIG) != (b->judged_size >= AUTO_BIG);
  int comparable = b->prev_size == 0 || (size <= 1.5 * b->prev_size && 1.5 * size >= b->prev_size);
  b->prev_size = size;
  if (resized && !b->win_congested) {
    b->slow_start = 1;
    b->prev_rate = b->best_rate = b->min_latency = 0;
    b->probe_rate = 0;
    b->probe_done = 0;
    b->judged_size = size;
    b->slots_total = b->base_limit > b->probe_origin ? b->base_limit : b->probe_origin;
    b->probe_origin = 0;
    window_reset(b, now);
    return;
  }
  if (!comparable && !b->win_congested) {
    b->prev_rate = rate; /* the next window is judged against this one */
    if (++b->skipped >= 2 && b->probe_rate > 0) {
      b->slots_total = b->probe_limit; /* a probe down that cannot be judged */
      b->probe_rate = 0;
    } else if (b->skipped >= 2 && b->slow_start) {
      b->slots_total = b->base_limit; /* a probe that cannot be judged */
    }
    window_reset(b, now);
    return;
  }
  b->judged_size = size;
  b->skipped = 0;
  if (b->min_latency == 0 || latency < b->min_latency)
    b->min_latency = latency;
  if (rate > 1.05 * b->best_rate) { /* within 5%, the fewer connections */
    b->best_rate = rate;
    b->best_limit = b->slots_total;
  }
  unsigned limit = b->slots_total;
  unsigned step = limit / 8 ? limit / 8 : 1;
  if (b->win_congested) {
    limit = limit / 2 ? limit / 2 : 1;
    b->slow_start = 0;
    b->probe_rate = 0;
    b->probe_origin = 0; /* a throttle's cut stands */
  } else if (b->probe_rate > 0) {
    if (rate < 0.95 * b->probe_rate) {
      limit = b->probe_limit;
      b->probe_rate = 0;
      b->probe_done = 1;
    } else {
      b->slow_start = 0;
      b->base_limit = limit;
      if (rate > 1.10 * b->probe_rate && limit > 1) {
        b->probe_rate = rate;
        b->probe_limit = limit;
        limit /= 2;
      } else {
        b->probe_rate = 0;
        b->probe_done = 1;
      }
    }
  } else if (!limited) {
    if (!b->probe_done && b->win_busy > 1) {
      b->probe_rate = rate;
      b->probe_limit = limit;
      if (b->probe_origin == 0)
        b->probe_origin = limit;
      limit = b->win_busy / 2;
    }
  } else if (b->slow_start) {
    if (latency <= 1.25 * b->min_latency) {
      b->base_limit = limit;
      limit *= 4;
    } else if (rate > b->prev_rate * 1.10) {
      b->base_limit = limit;
      limit *= 2;
    } else {
      b->slow_start = 0;
      limit = b->best_limit;
    }
  } else if (rate > b->prev_rate * 1.05) {
    limit += step;
  } else if (latency > 2 * b->min_latency && limit > 1) {
    limit -= step;
  }
  if (limit > b->auto_max)
    limit = b->auto_max;
  if (limit < 1)
    limit = 1;
  if (!b->slow_start)
    b->base_limit = limit; /* small steps: taken as measured */
  b->slots_total = limit;
  b->prev_rate = rate;
  window_reset(b, now);
}

void vhdup__budget_set_auto(vhdup__budget *b, unsigned max) {
  b->auto_on = 1;
  b->auto_max = max ? max : b->slots_total;
  b->slots_total = b->auto_max < AUTO_START ? b->auto_max : AUTO_START;
  b->base_limit = b->slots_total;
  b->slow_start = 1;
}

unsigned vhdup__budget_limit(const vhdup__budget *b) {
  return b->slots_total;
}

/* Memory is charged as it is used, so the process's footprint stays where
 * --memory puts it whatever the workload: a touched piece costs its 4 MiB,
 * and each request in flight at once, at the most so far, costs the state
 * kept for it, mostly libcurl's transfer and its upload buffer
 * (VHDUP__SLOT_BYTES: peak RSS grows by 40 KiB per request between 4 and
 * 64 in flight with the pieces held equal). Rounded down: 64 MiB makes 15
 * pieces. Dense data keeps few requests in flight and keeps them all; small
 * islands at 256 connections give one or two back to pay for 10 MiB of
 * requests. */
static unsigned pieces_for(size_t memory, unsigned slots) {
  size_t state = (size_t)slots * VHDUP__SLOT_BYTES;
  size_t n = memory > state ? (memory - state) / VHDUP__PIECE_MAX : 0;
  return n < 2 ? 2 : (unsigned)n;
}

static unsigned pieces_allowed(const vhdup__budget *b, unsigned slots) {
  return pieces_for(b->memory, slots);
}

/* A piece's read buffer, on 2 MiB boundaries and, where the system has
 * them, in transparent huge pages: every byte is copied twice (read into
 * it, then into libcurl's upload buffer) from buffers larger than the
 * caches, and with 4 KiB pages the TLB misses of those copies cost about a
 * tenth of the CPU of a dense upload without MD5 (measured: 0.91 vs 0.81
 * CPU s per GiB, median of 6 each, interleaved). */
static uint8_t *piece_buf_new(void **base) {
  uint8_t *buf = vhdup__malloc_aligned(VHDUP__PIECE_MAX, 2u * 1024 * 1024, base);
#ifdef MADV_HUGEPAGE
  if (buf != NULL)
    (void)madvise(buf, VHDUP__PIECE_MAX, MADV_HUGEPAGE); /* advice only */
#endif
  return buf;
}

int vhdup__budget_new(size_t memory, unsigned slots, vhdup__budget **out) {
  *out = NULL;
  if (slots == 0)
    return VHDUP_EINVAL;
  vhdup__budget *b = vhdup__calloc(1, sizeof(*b));
  if (b == NULL)
    return VHDUP_ENOMEM;
  b->slots_total = slots;
  b->memory = memory;
  b->slots_charged = 1; /* the first request's state is always needed */
  b->n_pieces = pieces_for(memory, 1);
  /* Two runs are at least one zero sector apart, so a piece holds at most
   * this many: the table never overflows. */
  b->max_runs = VHDUP__PIECE_MAX / 1024 + 1;
  b->pieces = vhdup__calloc(b->n_pieces, sizeof(piece));
  if (b->pieces == NULL) {
    vhdup__free(b);
    return VHDUP_ENOMEM;
  }
  for (unsigned i = 0; i < b->n_pieces; i++) {
    piece *p = &b->pieces[i];
    p->buf = piece_buf_new(&p->buf_base);
    p->runs = vhdup__malloc(b->max_runs * sizeof(*p->runs));
    p->md5s = vhdup__malloc(b->max_runs * sizeof(*p->md5s));
    p->crcs = vhdup__malloc(b->max_runs * sizeof(*p->crcs));
    if (p->buf == NULL || p->runs == NULL || p->md5s == NULL || p->crcs == NULL) {
      vhdup__budget_free(b);
      return VHDUP_ENOMEM;
    }
    p->next_free = b->fresh;
    b->fresh = p;
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

static unsigned fair(unsigned total, unsigned running) {
  unsigned share = running ? total / running : total;
  return share ? share : 1;
}

static int piece_available(const vhdup__budget *b) {
  return b->n_free > 0 || (b->n_fresh > 0 && b->n_touched < pieces_allowed(b, b->slots_charged));
}

/* A free touched piece gets new, untouched buffers, and its pages go back
 * to the system. If the allocation fails it just stays as it is. */
static void release_piece(vhdup__budget *b) {
  piece *p = b->free;
  void *base;
  uint8_t *buf = piece_buf_new(&base);
  vhdup__run *runs = vhdup__malloc(b->max_runs * sizeof(*runs));
  uint8_t(*md5s)[16] = vhdup__malloc(b->max_runs * sizeof(*md5s));
  uint64_t *crcs = vhdup__malloc(b->max_runs * sizeof(*crcs));
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
  b->free = p->next_free;
  b->n_free--;
  p->touched = 0;
  b->n_touched--;
  p->next_free = b->fresh;
  b->fresh = p;
  b->n_fresh++;
}

/* Gives free pieces' pages back while more are touched than the slots
 * asked for leave room for. */
static void trim_pieces(vhdup__budget *b) {
  while (b->n_touched > pieces_allowed(b, b->slots_charged) && b->n_free > 0) {
    unsigned before = b->n_free;
    release_piece(b);
    if (b->n_free == before)
      break; /* out of memory: keep the pages */
  }
}

/* One more request in flight fits if it is the only one, if it stays within
 * the most so far (its state is there already), or if the touched pieces
 * leave room for its state. Asking raises what memory must cover, so pieces
 * given back from now on are released until it fits. */
static int slot_fits(vhdup__budget *b) {
  unsigned want = b->slots_used + 1;
  if (b->slots_used == 0 || want <= b->slots_peak)
    return 1;
  if (want > b->slots_charged) {
    b->slots_charged = want;
    trim_pieces(b);
  }
  return b->n_touched <= pieces_allowed(b, want);
}

static void wait_for_budget(vhdup__pipeline *pl, int slot) {
  vhdup__budget *b = pl->budget;
  if (slot)
    pl->wants_slot = 1;
  else
    pl->wants_piece = 1;
  if (pl->waiting)
    return;
  pl->waiting = 1;
  b->n_waiting++;
  pl->wait_next = NULL;
  if (b->wait_tail != NULL)
    b->wait_tail->wait_next = pl;
  else
    b->wait_head = pl;
  b->wait_tail = pl;
}

static void unwait(vhdup__pipeline *pl) {
  vhdup__budget *b = pl->budget;
  if (!pl->waiting)
    return;
  vhdup__pipeline **pp = &b->wait_head, *prev = NULL;
  while (*pp != NULL && *pp != pl) {
    prev = *pp;
    pp = &(*pp)->wait_next;
  }
  if (*pp == pl) {
    *pp = pl->wait_next;
    if (b->wait_tail == pl)
      b->wait_tail = prev;
  }
  b->n_waiting--;
  pl->waiting = 0;
  pl->wants_slot = pl->wants_piece = 0;
  pl->wait_next = NULL;
}

/* Hands freed resources to the waiters, oldest first: one pass over those
 * waiting now, each pumped only if what it waits for is there (otherwise it
 * keeps its place). Not reentrant: a pump inside the pass that frees
 * something leaves it to the next event. */
static void wake_waiters(vhdup__budget *b) {
  if (b->waking)
    return;
  b->waking = 1;
  for (unsigned n = b->n_waiting; n > 0 && b->wait_head != NULL; n--) {
    vhdup__pipeline *pl = b->wait_head;
    int can = (pl->wants_piece && piece_available(b)) ||
              (pl->wants_slot && b->slots_used < b->slots_total && pl->in_flight < pl->cap &&
               slot_fits(b));
    int slot = pl->wants_slot, pc = pl->wants_piece;
    unwait(pl);
    if (can) {
      pump(pl); /* waits again, at the tail, if still short */
    } else {
      if (slot)
        wait_for_budget(pl, 1);
      if (pc)
        wait_for_budget(pl, 0);
    }
  }
  b->waking = 0;
}

static int others_wait(const vhdup__pipeline *pl) {
  const vhdup__budget *b = pl->budget;
  return b->wait_head != NULL && b->wait_head != pl;
}

static int take_slot(vhdup__pipeline *pl) {
  vhdup__budget *b = pl->budget;
  int full = b->slots_used >= b->slots_total;
  if (full || pl->in_flight >= pl->cap ||
      (others_wait(pl) && pl->in_flight >= fair(b->slots_total, b->n_running))) {
    if (full || others_wait(pl))
      wait_for_budget(pl, 1);
    return 0;
  }
  if (!slot_fits(b)) {
    wait_for_budget(pl, 1);
    return 0;
  }
  b->slots_used++;
  pl->in_flight++;
  if (b->slots_used > b->slots_peak)
    b->slots_peak = b->slots_used;
  return 1;
}

static void give_slot(vhdup__pipeline *pl) {
  pl->in_flight--;
  pl->budget->slots_used--;
}

static piece *take_piece(vhdup__pipeline *pl) {
  vhdup__budget *b = pl->budget;
  /* Buffers turn over slowly (a piece is held until all its writes are
   * confirmed), so a pipeline keeps to its fair share of them whenever
   * others run, not only once they wait: a job that starts second must not
   * find the whole pool taken for a second or more. */
  if (!piece_available(b) ||
      ((others_wait(pl) || b->n_running > 1) &&
       pl->n_held >= fair(pieces_allowed(b, b->slots_charged), b->n_running))) {
    wait_for_budget(pl, 0);
    return NULL;
  }
  piece *p;
  if (b->n_free > 0) {
    p = b->free;
    b->free = p->next_free;
    b->n_free--;
  } else {
    p = b->fresh;
    b->fresh = p->next_free;
    b->n_fresh--;
    p->touched = 1;
    b->n_touched++;
  }
  p->pl = pl;
  p->next_active = NULL;
  if (pl->active_tail != NULL)
    pl->active_tail->next_active = p;
  else
    pl->active_head = p;
  pl->active_tail = p;
  pl->n_held++;
  return p;
}

static void give_piece(vhdup__pipeline *pl, piece *p) {
  vhdup__budget *b = pl->budget;
  piece **pp = &pl->active_head, *prev = NULL;
  while (*pp != p) {
    prev = *pp;
    pp = &(*pp)->next_active;
  }
  *pp = p->next_active;
  if (pl->active_tail == p)
    pl->active_tail = prev;
  pl->n_held--;
  p->state = PIECE_FREE;
  p->pl = NULL;
  p->next_free = b->free;
  b->free = p;
  b->n_free++;
  trim_pieces(b);
}

static void budget_register(vhdup__pipeline *pl) {
  if (!pl->registered) {
    pl->registered = 1;
    pl->budget->n_running++;
  }
}

static void budget_unregister(vhdup__pipeline *pl) {
  unwait(pl);
  if (pl->registered) {
    pl->registered = 0;
    pl->budget->n_running--;
    wake_waiters(pl->budget);
  }
}

void vhdup__pipeline_opts_init(vhdup__pipeline_opts *o) {
  memset(o, 0, sizeof(*o));
  o->memory = 64u * 1024 * 1024;
  o->connections = 16;
  o->merge_gap = 64u * 1024;
  o->md5 = 1;
  o->disk_md5 = 1;
  o->max_attempts = 8;
  o->backoff_base_ms = 500;
  o->backoff_cap_ms = 30000;
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
    if (pl->sink->ops->abort != NULL && pl->in_flight > 0)
      pl->sink->ops->abort(pl->sink);
  }
}

int vhdup__pipeline_new(uv_loop_t *loop, const vhdup__disk *d, vhdup__sink *s,
                        const vhdup__pipeline_opts *o, vhdup__pipeline **out) {
  *out = NULL;
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  if (o->connections == 0 || o->blob_size < info.virtual_size + (o->write_footer ? 512 : 0) ||
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
  pl->cap = o->connections;
  pl->digest_on = o->disk_md5;
  pl->md5_batched = o->md5 && !o->crc64 && vhdup__md5x_lanes() > 1;
  pl->rng = uv_hrtime() | 1;
  pl->st.virtual_size = info.virtual_size;
  pl->st.blob_size = o->blob_size;
  int rc = 0;
  if (o->budget != NULL) {
    pl->budget = o->budget;
  } else {
    rc = vhdup__budget_new(o->memory, o->connections, &pl->budget);
    pl->own_budget = 1;
  }
  if (rc == 0 && pl->digest_on && vhdup__md5_init(&pl->digest) != 0)
    rc = VHDUP_ENOMEM;
  if (rc == 0)
    rc = vhdup__extent_iter_new(d, VHDUP__PIECE_MAX, &pl->it);
  if (rc == 0)
    rc = uv_timer_init(loop, &pl->retry_timer);
  if (rc != 0) {
    if (pl->own_budget)
      vhdup__budget_free(pl->budget);
    if (pl->digest.md != NULL)
      vhdup__md5_free(&pl->digest);
    if (pl->it != NULL)
      vhdup__extent_iter_free(pl->it);
    vhdup__free(pl);
    return rc;
  }
  pl->retry_timer.data = pl;
  pl->timer_inited = 1;
  *out = pl;
  return 0;
}

/* ---- writes ---- */

static pagewrite *write_get(vhdup__pipeline *pl) {
  pagewrite *w = pl->free_writes;
  if (w != NULL) {
    pl->free_writes = w->next;
  } else {
    w = vhdup__malloc(sizeof(*w));
    if (w == NULL)
      return NULL;
  }
  memset(w, 0, sizeof(*w));
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
  w->next = pl->free_writes;
  pl->free_writes = w;
}

/* xorshift64*: jitter needs no quality beyond spreading retries apart, and a
 * per-pipeline state keeps the library free of global state. */
static uint64_t next_random(void *ctx) {
  vhdup__pipeline *pl = ctx;
  uint64_t x = pl->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  pl->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Exponential backoff with full jitter, never less than the server's
 * Retry-After (src/azure's policy; attempt counts from 1 here). */
static uint64_t backoff_ms(vhdup__pipeline *pl, unsigned attempt, uint64_t hint_ms) {
  long hint_s = hint_ms > 0 ? (long)((hint_ms + 999) / 1000) : -1;
  return vhdup__az_backoff_ms(attempt > 0 ? attempt - 1 : 0, (uint32_t)pl->o.backoff_base_ms,
                              (uint32_t)pl->o.backoff_cap_ms, hint_s, next_random, pl);
}

static void fire_done(vhdup__pipeline *pl);

static void retry_timer_cb(uv_timer_t *t) {
  vhdup__pipeline *pl = t->data;
  if (pl->done_pending)
    fire_done(pl);
  else
    pump(pl);
}

static void arm_timer(vhdup__pipeline *pl) {
  if (pl->done_pending)
    return;
  if (pl->retry_head == NULL) {
    uv_timer_stop(&pl->retry_timer);
    return;
  }
  uint64_t now = uv_now(pl->loop);
  uint64_t due = pl->retry_head->due;
  /* A retry that is due but found no free slot is sent when a slot comes
   * back (write_done or the budget's wake-up pumps): no timer, no spin. */
  if (due <= now) {
    uv_timer_stop(&pl->retry_timer);
    return;
  }
  uv_timer_start(&pl->retry_timer, retry_timer_cb, due - now, 0);
}

static void schedule_retry(vhdup__pipeline *pl, pagewrite *w, uint64_t delay) {
  w->due = uv_now(pl->loop) + delay;
  pagewrite **pp = &pl->retry_head;
  while (*pp != NULL && (*pp)->due <= w->due)
    pp = &(*pp)->next;
  w->next = *pp;
  *pp = w;
  arm_timer(pl);
}

static void start_write(vhdup__pipeline *pl, pagewrite *w);

static void write_done(vhdup__sink_write *sw, const vhdup__sink_result *r) {
  pagewrite *w = sw->owner;
  vhdup__pipeline *pl = w->pl;
  give_slot(pl);
  uint64_t now = uv_now(pl->loop);
  vhdup__budget_observe(pl->budget, now, r->error == 0 ? sw->length : 0, now - w->started,
                        r->error != 0 && r->retryable, pl->budget->slots_used);
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
  wake_waiters(pl->budget);
}

/* The caller holds a slot (take_slot). */
static void start_write(vhdup__pipeline *pl, pagewrite *w) {
  w->attempts++;
  w->started = uv_now(pl->loop);
  w->sw.cb = write_done;
  w->sw.owner = w;
  pl->st.requests++;
  if (pl->in_flight > pl->st.max_in_flight)
    pl->st.max_in_flight = pl->in_flight;
  int rc = pl->sink->ops->write(pl->sink, &w->sw);
  if (rc != 0) {
    give_slot(pl);
    fail(pl, rc, "cannot start a write at offset %llu: %s", (unsigned long long)w->sw.offset,
         vhdup_strerror(rc));
    write_put(pl, w);
  }
}

/* ---- reading and scanning ---- */

static void piece_release(vhdup__pipeline *pl, piece *p) {
  give_piece(pl, p);
}

static void scan_work(uv_work_t *req) {
  piece *p = req->data;
  vhdup__pipeline *pl = p->pl;
  p->n_runs =
      vhdup__scan_runs(p->buf, p->len, pl->o.merge_gap, p->run_max, p->runs, pl->budget->max_runs);
  if (pl->o.crc64) {
    for (size_t i = 0; i < p->n_runs; i++)
      p->crcs[i] = vhdup__crc64(0, p->buf + p->runs[i].offset, p->runs[i].length);
  }
  if (pl->o.md5 && !pl->md5_batched) {
    for (size_t i = 0; i < p->n_runs; i++)
      (void)vhdup__md5_digest(p->buf + p->runs[i].offset, p->runs[i].length, p->md5s[i]);
  }
}

static void scan_done(uv_work_t *req, int status) {
  piece *p = req->data;
  vhdup__pipeline *pl = p->pl;
  pl->works_pending--;
  (void)status;
  p->state = pl->md5_batched && p->n_runs > 0 && !pl->stopping ? PIECE_HASHING : PIECE_READY;
  p->next_run = p->next_hash = p->runs_hashed = 0;
  size_t nonzero = 0;
  for (size_t i = 0; i < p->n_runs; i++)
    nonzero += p->runs[i].length;
  pl->st.bytes_skipped += p->len - nonzero;
  pump(pl);
}

static void start_read(vhdup__pipeline *pl, subread *s);

/* Whether requests are cut at HASH_RUN_MAX now: with batched MD5, while
 * this pipeline may have HASH_CUT_CONNS or more in flight (the engine's
 * limit, fixed or auto's, and its own per-blob cap). Decided per piece
 * when its scan is queued; hash jobs size themselves by it too. */
static int runs_cut(const vhdup__pipeline *pl) {
  unsigned conns = vhdup__budget_limit(pl->budget);
  if (pl->cap < conns)
    conns = pl->cap;
  return pl->md5_batched && conns >= HASH_CUT_CONNS;
}

static void read_done(uv_fs_t *req) {
  subread *s = req->data;
  piece *p = s->p;
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
  if (p->read_error != 0 || pl->stopping) {
    p->state = PIECE_READY;
    p->n_runs = 0;
    p->digested = 1;
    pump(pl);
    return;
  }
  p->state = PIECE_SCANNING;
  p->scan_work.data = p;
  p->run_max = runs_cut(pl) ? HASH_RUN_MAX : VHDUP__PIECE_MAX;
  pl->works_pending++;
  int rc = uv_queue_work(pl->loop, &p->scan_work, scan_work, scan_done);
  if (rc != 0) {
    pl->works_pending--;
    p->state = PIECE_READY;
    p->n_runs = 0;
    fail(pl, rc, "cannot queue work: %s", uv_strerror(rc));
  }
  pump(pl);
}

static void start_read(vhdup__pipeline *pl, subread *s) {
  uv_buf_t b = uv_buf_init((char *)s->p->buf + s->buf_off, (unsigned)s->len);
  s->req.data = s;
  pl->reads_pending++;
  int rc = uv_fs_read(pl->loop, &s->req, s->fd, &b, 1, (int64_t)s->file_off, read_done);
  if (rc != 0) {
    pl->reads_pending--;
    s->p->read_error = rc;
    fail(pl, rc, "cannot read: %s", uv_strerror(rc));
    /* Count this read as finished so the piece can be released. */
    if (--s->p->reads_pending == 0) {
      s->p->state = PIECE_READY;
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
 * between is short. Returns 0 when the plan has no more data. */
static int fill_piece(vhdup__pipeline *pl, piece *p) {
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
    if (room == 0 || p->n_sub == MAX_SUBREADS)
      break;
    size_t take = left < room ? (size_t)left : room;
    subread *s = &p->sub[p->n_sub++];
    s->p = p;
    s->fd = vhdup__file_fd(e->src);
    s->buf_off = p->len;
    s->len = take;
    s->file_off = e->file_offset + pl->cur_used;
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
    if (pl->phase == VHDUP__PHASE_PREPARE && pl->reads_pending > 0)
      break;
    /* Peek at the plan first: a pipeline with nothing left to read must not
     * hold, or wait for, a buffer. */
    if (!next_extent(pl))
      break;
    piece *p = take_piece(pl);
    if (p == NULL)
      break;
    if (!fill_piece(pl, p)) {
      give_piece(pl, p);
      break;
    }
    p->state = PIECE_READING;
    p->seq = pl->next_seq++;
    p->read_error = 0;
    p->n_runs = p->next_run = 0;
    p->hash_jobs = 0;
    p->writes_alive = 0;
    p->digested = !pl->digest_on;
    p->reads_pending = p->n_sub;
    for (unsigned i = 0; i < p->n_sub; i++)
      start_read(pl, &p->sub[i]);
  }
}

/* ---- the whole-disk digest, in offset order on the thread pool ---- */

static void digest_zeros(vhdup__md5_ctx *m, uint64_t n) {
  while (n > 0) {
    size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
    vhdup__md5_update(m, zeros, k);
    n -= k;
  }
}

static void digest_work(uv_work_t *req) {
  vhdup__pipeline *pl = req->data;
  piece *p = pl->digest_piece;
  uint64_t upto = p != NULL ? p->voff : pl->o.blob_size - (pl->o.write_footer ? 512 : 0);
  digest_zeros(&pl->digest, upto - pl->digest_pos);
  if (p != NULL) {
    vhdup__md5_update(&pl->digest, p->buf, p->len);
    pl->digest_pos = p->voff + p->len;
  } else {
    if (pl->o.write_footer)
      vhdup__md5_update(&pl->digest, pl->footer_buf, sizeof(pl->footer_buf));
    vhdup__md5_final(&pl->digest, pl->st.disk_md5);
    pl->digest_pos = pl->o.blob_size;
  }
}

static void digest_done(uv_work_t *req, int status) {
  vhdup__pipeline *pl = req->data;
  (void)status;
  pl->works_pending--;
  pl->digest_busy = 0;
  if (pl->digest_piece != NULL) {
    pl->digest_piece->digested = 1;
    pl->digest_seq++;
  } else {
    pl->digest_tail_done = 1;
    pl->st.has_disk_md5 = 1;
  }
  pl->digest_piece = NULL;
  pump(pl);
}

static void start_digest(vhdup__pipeline *pl, piece *p) {
  pl->digest_piece = p;
  pl->digest_busy = 1;
  pl->digest_work.data = pl;
  pl->works_pending++;
  int rc = uv_queue_work(pl->loop, &pl->digest_work, digest_work, digest_done);
  if (rc != 0) {
    pl->works_pending--;
    pl->digest_busy = 0;
    fail(pl, rc, "cannot queue work: %s", uv_strerror(rc));
  }
}

static void advance_digest(vhdup__pipeline *pl) {
  if (!pl->digest_on || pl->digest_busy || pl->stopping)
    return;
  for (piece *p = pl->active_head; p != NULL; p = p->next_active) {
    if (p->state != PIECE_FREE && p->seq == pl->digest_seq && !p->digested &&
        (p->state == PIECE_SCANNING || p->state == PIECE_HASHING || p->state == PIECE_READY)) {
      start_digest(pl, p);
      return;
    }
  }
}

/* ---- batched MD5 of the runs, one job at a time on the thread pool ---- */

static void hash_work(uv_work_t *req) {
  hashjob *h = req->data;
  /* The lanes of one call are busy until the longest is done: hash the runs
   * in order of length, so runs of one size share a call. */
  size_t order[HASH_JOB_RUNS];
  for (size_t i = 0; i < h->n; i++) {
    size_t len = h->p[i]->runs[h->run[i]].length, j = i;
    for (; j > 0 && h->p[order[j - 1]]->runs[h->run[order[j - 1]]].length > len; j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
  for (size_t i = 0; i < h->n; i += VHDUP__MD5X_MAX) {
    size_t k = h->n - i < VHDUP__MD5X_MAX ? h->n - i : VHDUP__MD5X_MAX;
    const uint8_t *data[VHDUP__MD5X_MAX];
    size_t len[VHDUP__MD5X_MAX];
    uint8_t out[VHDUP__MD5X_MAX][VHDUP__MD5_LEN];
    for (size_t j = 0; j < k; j++) {
      const piece *p = h->p[order[i + j]];
      const vhdup__run *r = &p->runs[h->run[order[i + j]]];
      data[j] = p->buf + r->offset;
      len[j] = r->length;
    }
    vhdup__md5x(k, data, len, out);
    for (size_t j = 0; j < k; j++)
      memcpy(h->p[order[i + j]]->md5s[h->run[order[i + j]]], out[j], VHDUP__MD5_LEN);
  }
}

/* A job holds each of its pieces once, counted at the piece's first run in
 * it (a job's runs are grouped by piece). */
static void hash_unhold(hashjob *h) {
  for (size_t i = 0; i < h->n; i++)
    if (i + 1 == h->n || h->p[i + 1] != h->p[i])
      h->p[i]->hash_jobs--;
  h->n = 0;
}

static void hash_done(uv_work_t *req, int status) {
  hashjob *h = req->data;
  vhdup__pipeline *pl = h->pl;
  (void)status;
  pl->works_pending--;
  pl->hash_busy = 0;
  for (size_t i = 0; i < h->n; i++) {
    piece *p = h->p[i];
    if (++p->runs_hashed == p->n_runs && p->state == PIECE_HASHING)
      p->state = PIECE_READY;
  }
  hash_unhold(h);
  pump(pl);
}

static void advance_hash(vhdup__pipeline *pl) {
  if (!pl->md5_batched || pl->hash_busy || pl->stopping)
    return;
  hashjob *h = &pl->hash;
  /* Uncut, requests are 4 MiB, and a quarter of the pool holds only 4 of
   * them: half the lanes. Fewer requests in flight leave the pool room for
   * a job of half of it, which fills all 8. */
  unsigned share = runs_cut(pl) ? 4 : 2;
  uint64_t bytes = 0;
  uint64_t job_bytes = (uint64_t)(pl->budget->n_pieces + share - 1) / share * VHDUP__PIECE_MAX;
  h->n = 0;
  for (piece *p = pl->active_head; p != NULL && h->n < HASH_JOB_RUNS; p = p->next_active) {
    if (p->state != PIECE_HASHING)
      continue;
    while (p->next_hash < p->n_runs && h->n < HASH_JOB_RUNS) {
      size_t len = p->runs[p->next_hash].length;
      if (h->n > 0 && bytes + len > job_bytes)
        goto full;
      if (h->n == 0 || h->p[h->n - 1] != p)
        p->hash_jobs++;
      h->p[h->n] = p;
      h->run[h->n++] = p->next_hash++;
      bytes += len;
    }
  }
full:
  if (h->n == 0)
    return;
  h->pl = pl;
  h->work.data = h;
  pl->hash_busy = 1;
  pl->works_pending++;
  int rc = uv_queue_work(pl->loop, &h->work, hash_work, hash_done);
  if (rc != 0) {
    pl->works_pending--;
    pl->hash_busy = 0;
    hash_unhold(h);
    fail(pl, rc, "cannot queue work: %s", uv_strerror(rc));
  }
}

/* ---- sending ---- */

static piece *oldest_with_runs(vhdup__pipeline *pl) {
  /* The active list is in plan order: the first with runs is the oldest. */
  for (piece *p = pl->active_head; p != NULL; p = p->next_active)
    if (p->state == PIECE_READY && p->next_run < p->n_runs)
      return p;
  return NULL;
}

static void send_writes(vhdup__pipeline *pl) {
  uint64_t now = uv_now(pl->loop);
  while (!pl->stopping && pl->retry_head != NULL && pl->retry_head->due <= now && take_slot(pl)) {
    pagewrite *w = pl->retry_head;
    pl->retry_head = w->next;
    start_write(pl, w);
  }
  arm_timer(pl);
  while (!pl->stopping) {
    piece *p = oldest_with_runs(pl);
    if (p == NULL || !take_slot(pl))
      break;
    size_t i = p->next_run++;
    const vhdup__run *run = &p->runs[i];
    uint64_t off = p->voff + run->offset;
    if (pl->o.is_done != NULL && pl->o.is_done(pl->o.journal_ctx, off, run->length)) {
      pl->st.bytes_resumed += run->length;
      give_slot(pl);
      continue;
    }
    pagewrite *w = write_get(pl);
    if (w == NULL) {
      give_slot(pl);
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

static void release_pieces(vhdup__pipeline *pl) {
  piece *next;
  for (piece *p = pl->active_head; p != NULL; p = next) {
    next = p->next_active;
    if (p->writes_alive > 0)
      continue;
    if (p->state == PIECE_HASHING && pl->stopping && p->hash_jobs == 0) {
      piece_release(pl, p);
      continue;
    }
    if (p->state != PIECE_READY)
      continue;
    if (pl->stopping || (p->next_run >= p->n_runs && p->digested))
      piece_release(pl, p);
  }
}

static int data_phase_over(vhdup__pipeline *pl) {
  if (!pl->plan_done || pl->writes_alive > 0 || pl->reads_pending > 0)
    return 0;
  return pl->active_head == NULL;
}

static void finish_cb(vhdup__sink *s, const vhdup__sink_result *r, void *data) {
  vhdup__pipeline *pl = data;
  (void)s;
  pl->works_pending--;
  if (r->error != 0)
    fail(pl, r->error, "finishing: %s", r->message ? r->message : vhdup_strerror(r->error));
  else
    pl->phase = VHDUP__PHASE_DONE;
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
    pl->phase = VHDUP__PHASE_DATA;
  pl->works_pending--;
  pump(pl);
}

/* done_cb runs from the timer, never from inside a call the owner made
 * (start, cancel) nor from inside a sink's callback. */
static void defer_done(vhdup__pipeline *pl) {
  if (pl->done_pending || pl->done_fired)
    return;
  pl->done_pending = 1;
  uv_timer_stop(&pl->retry_timer);
  uv_timer_start(&pl->retry_timer, retry_timer_cb, 0, 0);
}

static void fire_done(vhdup__pipeline *pl) {
  if (pl->done_fired)
    return;
  pl->done_fired = 1;
  pl->done_pending = 0;
  budget_unregister(pl);
  if (pl->status == 0 && pl->phase != VHDUP__PHASE_DONE)
    pl->status = VHDUP_ECANCELED;
  pl->st.phase = pl->phase;
  if (pl->done_cb != NULL)
    pl->done_cb(pl, pl->status, pl->status ? pl->message : NULL, pl->done_data);
}

static void pump(vhdup__pipeline *pl) {
  if (pl->pumping) {
    pl->pump_again = 1;
    return;
  }
  pl->pumping = 1;
  do {
    pl->pump_again = 0;
    if (pl->stopping) {
      /* Waiting retries hold no request: drop them now. */
      while (pl->retry_head != NULL) {
        pagewrite *w = pl->retry_head;
        pl->retry_head = w->next;
        write_put(pl, w);
      }
      if (!pl->done_pending)
        uv_timer_stop(&pl->retry_timer);
      release_pieces(pl);
      if (pl->in_flight == 0 && pl->works_pending == 0 && pl->reads_pending == 0)
        defer_done(pl);
      continue;
    }
    switch (pl->phase) {
    case VHDUP__PHASE_PREPARE:
      /* While the blob is created (a round trip, more with a container or a
       * resume's page ranges), the first pieces are read, scanned and hashed
       * within the pipeline's share of the pool, so requests leave as soon
       * as it exists: over 20 ms, the first went 20 ms after the create's
       * response. Reads begin once the create has gone out (see start) and
       * one piece at a time, so they do not crowd it off the two cores.
       * Nothing is sent before the blob exists. */
      fill_pieces(pl);
      advance_hash(pl);
      advance_digest(pl);
      release_pieces(pl);
      break;
    case VHDUP__PHASE_DATA:
      fill_pieces(pl);
      advance_hash(pl);
      advance_digest(pl);
      send_writes(pl);
      release_pieces(pl);
      if (data_phase_over(pl) && !pl->stopping) {
        pl->phase = VHDUP__PHASE_FOOTER;
        pl->pump_again = 1;
      }
      break;
    case VHDUP__PHASE_FOOTER:
      if (pl->digest_on && !pl->digest_tail_done) {
        if (!pl->digest_busy)
          start_digest(pl, NULL);
        break;
      }
      if (!pl->o.write_footer || (pl->footer_started && pl->writes_alive == 0)) {
        pl->phase = VHDUP__PHASE_FINISH;
        pl->works_pending++;
        pl->sink->ops->finish(pl->sink, pl->st.has_disk_md5 ? pl->st.disk_md5 : NULL, finish_cb,
                              pl);
        break;
      }
      if (!pl->footer_started && take_slot(pl)) {
        pl->footer_started = 1;
        pagewrite *w = &pl->footer;
        memset(w, 0, sizeof(*w));
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
      send_writes(pl); /* the footer's retries */
      break;
    case VHDUP__PHASE_DONE:
      defer_done(pl);
      break;
    default:
      break;
    }
  } while (pl->pump_again);
  pl->pumping = 0;
  /* Pieces or slots given back above may be what another pipeline waits for. */
  if (pl->budget->wait_head != NULL)
    wake_waiters(pl->budget);
}

int vhdup__pipeline_start(vhdup__pipeline *pl, vhdup__pipeline_done_cb cb, void *data) {
  if (pl->started)
    return VHDUP_EBUSY;
  pl->started = 1;
  pl->done_cb = cb;
  pl->done_data = data;
  memcpy(pl->footer_buf, pl->o.footer, sizeof(pl->footer_buf));
  pl->phase = VHDUP__PHASE_PREPARE;
  budget_register(pl);
  pl->works_pending++;
  pl->sink->ops->prepare(pl->sink, pl->o.blob_size, prepare_cb, pl);
  /* Reads begin from the loop's next turn, after the HTTP layer's own timer
   * (started first, with the same timeout) has sent the create on its way. */
  if (!pl->done_pending)
    uv_timer_start(&pl->retry_timer, retry_timer_cb, 0, 0);
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
  st->in_flight = pl->in_flight;
  st->phase = pl->phase;
}

static void timer_closed(uv_handle_t *h) {
  vhdup__pipeline *pl = h->data;
  if (pl->close_cb != NULL)
    pl->close_cb(pl);
  budget_unregister(pl);
  if (pl->own_budget)
    vhdup__budget_free(pl->budget);
  while (pl->free_writes != NULL) {
    pagewrite *w = pl->free_writes;
    pl->free_writes = w->next;
    vhdup__free(w);
  }
  if (pl->digest_on)
    vhdup__md5_free(&pl->digest);
  vhdup__extent_iter_free(pl->it);
  vhdup__free(pl);
}

void vhdup__pipeline_close(vhdup__pipeline *pl, void (*close_cb)(vhdup__pipeline *p)) {
  pl->close_cb = close_cb;
  uv_close((uv_handle_t *)&pl->retry_timer, timer_closed);
}
