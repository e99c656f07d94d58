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

void vhdup__autotune_observe(vhdup__autotune *a, uint64_t now, uint64_t bytes, uint64_t latency_ms,
                             int congested, unsigned in_flight) {
  if (a->win_start == 0) {
    a->win_start = now; /* the first completion only opens the first window */
    return;
  }
  a->win_work += bytes + AUTO_REQUEST_COST;
  a->win_done++;
  a->win_latency += latency_ms;
  a->win_congested |= congested;
  unsigned busy = in_flight + 1; /* the finished request was in flight too */
  if (busy > a->win_in_flight)
    a->win_in_flight = busy;
  uint64_t elapsed = now - a->win_start;
  double latency = (double)a->win_latency / a->win_done;
  if (elapsed < 50 || a->win_done < a->win_in_flight)
    return;
  double rate = (double)a->win_work * 1000.0 / (double)elapsed;
  double size = (double)a->win_work / a->win_done;
  int limited = a->win_in_flight >= a->limit;
  int resized = a->judged_size > 0 && (size >= AUTO_BIG) != (a->judged_size >= AUTO_BIG);
  int comparable = a->prev_size == 0 || (size <= 1.5 * a->prev_size && 1.5 * size >= a->prev_size);
  a->prev_size = size;
  if (resized && !a->win_congested) {
    a->slow_start = 1;
    a->prev_rate = a->best_rate = a->min_latency = 0;
    a->probe_rate = 0;
    a->probe_done = 0;
    a->judged_size = size;
    a->limit = a->base_limit > a->probe_origin ? a->base_limit : a->probe_origin;
    a->probe_origin = 0;
    window_reset(a, now);
    return;
  }
  if (!comparable && !a->win_congested) {
    a->prev_rate = rate; /* the next window is judged against this one */
    if (++a->skipped >= 2 && a->probe_rate > 0) {
      a->limit = a->probe_limit; /* a probe down that cannot be judged */
      a->probe_rate = 0;
    } else if (a->skipped >= 2 && a->slow_start) {
      a->limit = a->base_limit; /* a probe that cannot be judged */
    }
    window_reset(a, now);
    return;
  }
  a->judged_size = size;
  a->skipped = 0;
  if (a->min_latency == 0 || latency < a->min_latency)
    a->min_latency = latency;
  if (rate > 1.05 * a->best_rate) { /* within 5%, the smaller limit */
    a->best_rate = rate;
    a->best_limit = a->limit;
  }
  unsigned limit = a->limit;
  unsigned step = limit / 8 ? limit / 8 : 1;
  if (a->win_congested) {
    limit = limit / 2 ? limit / 2 : 1;
    a->slow_start = 0;
    a->probe_rate = 0;
    a->probe_origin = 0; /* a throttle's cut stands */
  } else if (a->probe_rate > 0) {
    if (rate < 0.95 * a->probe_rate) {
      limit = a->probe_limit;
      a->probe_rate = 0;
      a->probe_done = 1;
    } else {
      a->slow_start = 0;
      a->base_limit = limit;
      if (rate > 1.10 * a->probe_rate && limit > 1) {
        a->probe_rate = rate;
        a->probe_limit = limit;
        limit /= 2;
      } else {
        a->probe_rate = 0;
        a->probe_done = 1;
      }
    }
  } else if (!limited) {
    if (!a->probe_done && a->win_in_flight > 1) {
      a->probe_rate = rate;
      a->probe_limit = limit;
      if (a->probe_origin == 0)
        a->probe_origin = limit;
      limit = a->win_in_flight / 2;
    }
  } else if (a->slow_start) {
    if (latency <= 1.25 * a->min_latency) {
      a->base_limit = limit;
      limit *= 4;
    } else if (rate > a->prev_rate * 1.10) {
      a->base_limit = limit;
      limit *= 2;
    } else {
      a->slow_start = 0;
      limit = a->best_limit;
    }
  } else if (rate > a->prev_rate * 1.05) {
    limit += step;
  } else if (latency > 2 * a->min_latency && limit > 1) {
    limit -= step;
  }
  if (limit > a->max)
    limit = a->max;
  if (limit < 1)
    limit = 1;
  if (!a->slow_start)
    a->base_limit = limit; /* small steps: taken as measured */
  a->limit = limit;
  a->prev_rate = rate;
  window_reset(a, now);
}
