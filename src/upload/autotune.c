/* --connections auto: the rules are described in autotune.h. */
#include "upload/autotune.h"

#include "util/defaults.h"

/* What auto counts a request as worth besides its bytes: a request costs a
 * round trip and a server's per-request work whatever it carries (Azure's
 * targets for one page blob are about 500 requests/s and 60 MiB/s, so one
 * request is worth some 120 KiB of data there). Counted so, islands of
 * 4 KiB and of 20 KiB measure alike (68 and 84 KiB), and windows of either
 * can be compared. */
#define AUTO_REQUEST_COST (64u * 1024)
/* Requests from this size (counted as above) are big runs: few of them fill
 * the memory pool before any limit binds. Smaller ones are islands, bound by
 * round trips, whose rate follows the limit. */
#define AUTO_BIG (1024.0 * 1024)
/* Where auto starts. Requests in flight cost 40 KiB each and big runs are
 * held back by the memory pool (15 pieces with --memory 64M) whatever the
 * limit, so a high start costs little; small islands over a long round trip
 * gain from it at once, and throttling halves it. */
#define AUTO_START VHDUP__AUTO_START_CONNECTIONS

static void window_reset(vhdup__autotune *a, uint64_t now) {
  a->win_start = now;
  a->win_work = 0;
  a->win_done = 0;
  a->win_in_flight = 0;
  a->win_latency = 0;
  a->win_congested = 0;
}

void vhdup__autotune_init(vhdup__autotune *a, unsigned max) {
  *a = (vhdup__autotune){0};
  a->max = max ? max : 1;
  a->limit = a->max < AUTO_START ? a->max : AUTO_START;
  a->base_limit = a->limit;
  a->slow_start = 1;
}

/* What a window measured when it ended. */
typedef struct window_result {
  double rate;    /* work per second */
  double size;    /* mean work per request */
  double latency; /* mean ms */
  int limited;    /* the limit held requests back at some point */
} window_result;

/* Counts one completion into the window. Returns 1 when that ends the
 * window (at least 50 ms and a round of completions), with w filled. */
static int window_add(vhdup__autotune *a, uint64_t now, uint64_t bytes, uint64_t latency_ms,
                      int congested, unsigned in_flight, window_result *w) {
  a->win_work += bytes + AUTO_REQUEST_COST;
  a->win_done++;
  a->win_latency += latency_ms;
  a->win_congested |= congested;
  unsigned busy = in_flight + 1; /* the finished request was in flight too */
  if (busy > a->win_in_flight)
    a->win_in_flight = busy;
  uint64_t elapsed = now - a->win_start;
  w->latency = (double)a->win_latency / a->win_done;
  if (elapsed < 50 || a->win_done < a->win_in_flight)
    return 0;
  w->rate = (double)a->win_work * 1000.0 / (double)elapsed;
  w->size = (double)a->win_work / a->win_done;
  w->limited = a->win_in_flight >= a->limit;
  return 1;
}

/* Big runs gave way to small islands, or the other way round. */
static int kind_changed(const vhdup__autotune *a, double size) {
  return a->judged_size > 0 && (size >= AUTO_BIG) != (a->judged_size >= AUTO_BIG);
}

/* Mean request sizes within 1.5x of the previous window's. */
static int size_comparable(const vhdup__autotune *a, double size) {
  return a->prev_size == 0 || (size <= 1.5 * a->prev_size && 1.5 * size >= a->prev_size);
}

/* Rule 1: the requests changed kind; the window is dropped, an unjudged
 * growth undone, and slow start begins again. */
static void restart_after_kind_change(vhdup__autotune *a, double size) {
  a->slow_start = 1;
  a->prev_rate = a->best_rate = a->min_latency = 0;
  a->probe_rate = 0;
  a->probe_done = 0;
  a->judged_size = size;
  a->limit = a->base_limit > a->probe_origin ? a->base_limit : a->probe_origin;
  a->probe_origin = 0;
}

/* Rule 2: a window not comparable with the one before; the second in a row
 * undoes what cannot be judged. */
static void skip_incomparable(vhdup__autotune *a, double rate) {
  a->prev_rate = rate; /* the next window is judged against this one */
  if (++a->skipped >= 2 && a->probe_rate > 0) {
    a->limit = a->probe_limit; /* a probe down that cannot be judged */
    a->probe_rate = 0;
  } else if (a->skipped >= 2 && a->slow_start) {
    a->limit = a->base_limit; /* a probe that cannot be judged */
  }
}

/* A window that is judged: its size, the best latency and rate so far. */
static void note_judged(vhdup__autotune *a, const window_result *w) {
  a->judged_size = w->size;
  a->skipped = 0;
  if (a->min_latency == 0 || w->latency < a->min_latency)
    a->min_latency = w->latency;
  if (w->rate > 1.05 * a->best_rate) { /* within 5%, the smaller limit */
    a->best_rate = w->rate;
    a->best_limit = a->limit;
  }
}

/* Rule 3: a throttle or failure halves the limit, and the cut stands. */
static unsigned throttled(vhdup__autotune *a) {
  unsigned limit = a->limit;
  a->slow_start = 0;
  a->probe_rate = 0;
  a->probe_origin = 0; /* a throttle's cut stands */
  return limit / 2 ? limit / 2 : 1;
}

/* Rule 4: the window after a probe down judges it. */
static unsigned judge_probe_down(vhdup__autotune *a, double rate) {
  unsigned limit = a->limit;
  if (rate < 0.95 * a->probe_rate) {
    a->probe_rate = 0;
    a->probe_done = 1;
    return a->probe_limit;
  }
  a->slow_start = 0;
  a->base_limit = limit;
  if (rate > 1.10 * a->probe_rate && limit > 1) {
    a->probe_rate = rate;
    a->probe_limit = limit;
    return limit / 2;
  }
  a->probe_rate = 0;
  a->probe_done = 1;
  return limit;
}

/* Rule 5: the limit never bound; probe down to half the requests that were
 * in flight, once. */
static unsigned not_limited(vhdup__autotune *a, double rate) {
  unsigned limit = a->limit;
  if (a->probe_done || a->win_in_flight <= 1)
    return limit;
  a->probe_rate = rate;
  a->probe_limit = limit;
  if (a->probe_origin == 0)
    a->probe_origin = limit;
  return a->win_in_flight / 2;
}

/* Rule 6: fourfold while latency holds, twofold while the rate grows, then
 * back to the best limit seen. */
static unsigned slow_start_step(vhdup__autotune *a, const window_result *w) {
  unsigned limit = a->limit;
  if (w->latency <= 1.25 * a->min_latency) {
    a->base_limit = limit;
    return limit * 4;
  }
  if (w->rate > a->prev_rate * 1.10) {
    a->base_limit = limit;
    return limit * 2;
  }
  a->slow_start = 0;
  return a->best_limit;
}

/* Rule 7: an eighth up while the rate grows, down when latency doubled. */
static unsigned steady_step(const vhdup__autotune *a, const window_result *w) {
  unsigned limit = a->limit;
  unsigned step = limit / 8 ? limit / 8 : 1;
  if (w->rate > a->prev_rate * 1.05)
    return limit + step;
  if (w->latency > 2 * a->min_latency && limit > 1)
    return limit - step;
  return limit;
}

/* The limit a judged window leads to, by the first rule that applies. */
static unsigned next_limit(vhdup__autotune *a, const window_result *w) {
  if (a->win_congested)
    return throttled(a);
  if (a->probe_rate > 0)
    return judge_probe_down(a, w->rate);
  if (!w->limited)
    return not_limited(a, w->rate);
  if (a->slow_start)
    return slow_start_step(a, w);
  return steady_step(a, w);
}

static void set_limit(vhdup__autotune *a, unsigned limit) {
  if (limit > a->max)
    limit = a->max;
  if (limit < 1)
    limit = 1;
  if (!a->slow_start)
    a->base_limit = limit; /* small steps: taken as measured */
  a->limit = limit;
}

void vhdup__autotune_observe(vhdup__autotune *a, uint64_t now, uint64_t bytes, uint64_t latency_ms,
                             int congested, unsigned in_flight) {
  if (a->win_start == 0) {
    a->win_start = now; /* the first completion only opens the first window */
    return;
  }
  window_result w;
  if (!window_add(a, now, bytes, latency_ms, congested, in_flight, &w))
    return;
  int resized = kind_changed(a, w.size);
  int comparable = size_comparable(a, w.size);
  a->prev_size = w.size;
  if (resized && !a->win_congested)
    restart_after_kind_change(a, w.size);
  else if (!comparable && !a->win_congested)
    skip_incomparable(a, w.rate);
  else {
    note_judged(a, &w);
    set_limit(a, next_limit(a, &w));
    a->prev_rate = w.rate;
  }
  window_reset(a, now);
}
