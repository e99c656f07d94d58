/* --connections auto: how many requests may be in flight, chosen from what
 * finished requests show. Pure (no libuv, no budget): fed the loop's time
 * and each completion, it only moves its limit. The budget (budget.h) owns
 * one and reads its limit; test/unit/test_auto.c drives one against models
 * of a link.
 *
 * AIMD on measured goodput, counted as bytes plus a fixed cost per request
 * (see AUTO_REQUEST_COST in autotune.c). A window of completions lasts at
 * least 50 ms and as many completions as requests were in flight (a round:
 * one slow request cannot steer it, and after big requests give way to
 * small ones, the small ones end it quickly). The first completion only
 * opens the first window: counted, n completions over the n - 1 gaps
 * between them read the rate high, and a probe down judged against that
 * rate returned where it found the same. At a window's end, in this order
 * (the first two rules pass over a window with a throttle in it):
 * - when the requests changed kind (a disk's big runs, of AUTO_BIG or more,
 *   giving way to small islands, whose rate grows with every request in
 *   flight while the runs' rate is bound by bandwidth and the pool), rates
 *   and latencies are no longer comparable: the window is dropped, a growth
 *   not yet confirmed by a window of its own is undone (the last measured
 *   limit returns), and slow start begins again from there. Without the
 *   undo, a disk whose requests keep changing keeps every fourfold probe
 *   unjudged and ends at the maximum even where requests in flight cost CPU
 *   and gain nothing;
 * - a window whose requests differ in mean size by more than 1.5x from the
 *   previous window's is not compared with it (its rate says more about
 *   the mix than about the limit): the limit stays, but a second such
 *   window in a row undoes a growth, or a probe down, not yet judged;
 * - a throttle or a failed request (503, 429, 500, reset, timeout) in the
 *   window halves the limit, and that cut stands (slow start ends, and a
 *   later change of kind does not return to a limit from before it);
 * - a window in which the limit never held requests back (the memory pool,
 *   the disk or the reads did) teaches nothing about more requests, but
 *   fewer may do as well or better (where sending costs CPU, as on
 *   loopback, each request in flight costs some): the limit is cut to half
 *   the requests that were in flight, once. The next window judges it: kept
 *   if the rate stayed within 5% (slow start ends there; the limit now
 *   binds, so the rules below apply), halved again if it grew by more than
 *   10%, else the limit returns. Over a link that bandwidth bounds, the half
 *   keeps the rate and is kept: still several times the requests a round
 *   trip needs. When the requests then change kind, slow start begins again
 *   from the limit before the first probe down, not from what it cut:
 *   islands after big runs need many requests in flight;
 * - otherwise, from the start, slow start: the limit grows fourfold while
 *   latency stays within a quarter of its best (requests are bound by round
 *   trips, not queued behind each other, so by Little's law more of them in
 *   flight are more served), else twofold while throughput grows by more
 *   than 10%; then it returns to the best limit seen (of two within 5%, the
 *   smaller) and moves by an eighth: up while throughput still grows by 5%,
 *   down when latency has doubled over its best without a gain.
 * Bounded by max, and in effect by the memory pool (each request in flight
 * holds part of a piece). How these rules came to be, with what was
 * measured on the way: docs/measurements.md. */
#ifndef VHDUP_UPLOAD_AUTOTUNE_H
#define VHDUP_UPLOAD_AUTOTUNE_H

#include <stdint.h>

typedef struct vhdup__autotune {
  unsigned limit; /* requests in flight allowed now: the output */
  unsigned max;
  int slow_start;
  /* The window being measured. */
  uint64_t win_start; /* ms; 0: no window open */
  uint64_t win_work;  /* bytes, plus AUTO_REQUEST_COST per request */
  unsigned win_done;
  unsigned win_in_flight; /* the most requests in flight seen in the window */
  uint64_t win_latency;   /* ms, summed */
  int win_congested;
  double prev_rate, prev_size, best_rate, min_latency;
  double judged_size; /* mean request size of the last window judged */
  unsigned skipped;   /* windows in a row not compared with the one before */
  unsigned best_limit;
  unsigned base_limit; /* the last limit whose rate was measured, not probed */
  /* A probe down: the rate it must keep, 0 when none is out; the limit to
   * return to; no more until the requests change kind; the limit before the
   * first one, which islands start from again. */
  double probe_rate;
  unsigned probe_limit;
  int probe_done;
  unsigned probe_origin;
} vhdup__autotune;

/* Starts in slow start at VHDUP__AUTO_START_CONNECTIONS (util/defaults.h),
 * or at max if that is lower; the limit then stays within 1..max (max >= 1). */
void vhdup__autotune_init(vhdup__autotune *a, unsigned max);

/* One finished request: at time now (ms, any monotonic origin above 0),
 * bytes written (0 if it failed), its latency, whether it was throttled or
 * failed, and how many requests are still in flight. */
void vhdup__autotune_observe(vhdup__autotune *a, uint64_t now_ms, uint64_t bytes,
                             uint64_t latency_ms, int congested, unsigned in_flight);

static inline unsigned vhdup__autotune_limit(const vhdup__autotune *a) {
  return a->limit;
}

#endif
