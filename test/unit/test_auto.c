/* --connections auto on models of what requests go through, in simulated
 * milliseconds: the controller (upload/autotune.h) sees exactly what the
 * budget reports of a pipeline's requests, so its choices can be checked
 * without a network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "upload/autotune.h"

/* Requests always wait to go, so the limit is always full. A request takes
 * rtt_ms with nothing queued; the far end serves at most per_ms requests a
 * millisecond (0: no limit, as over a long link where round trips bound
 * everything). By Little's law each one's latency is then in flight /
 * served rate. pool: the most requests the memory pool lets out at once
 * (big runs: 15 pieces of 4 MiB), 0 for no bound. */
typedef struct model {
  double rtt_ms;
  double per_ms;
  unsigned pool;
  /* Where each request in flight costs the far end's rate some CPU (both
   * ends on two cores): per_ms / (1 + crowd * in flight). */
  double crowd;
  /* Noise as on a shared machine: the far end's rate is scaled by a factor
   * drawn from [1 - noise, 1 + noise] every 50 ms (a fixed sequence). */
  double noise;
} model;

typedef struct sim {
  vhdup__autotune a;
  double now;
  unsigned lowest;  /* the lowest limit of the last run() */
  unsigned highest; /* and the highest */
  uint32_t seed;    /* for model.noise */
  double factor;
  double factor_until;
} sim;

static void sim_init(sim *s) {
  vhdup__autotune_init(&s->a, 256);
  s->now = 1000;
  s->seed = 12345;
  s->factor = 1;
  s->factor_until = 0;
}

static double noise_factor(sim *s, const model *m) {
  if (m->noise == 0)
    return 1;
  if (s->now >= s->factor_until) {
    s->seed = s->seed * 1103515245u + 12345u;
    s->factor = 1 - m->noise + 2 * m->noise * (double)(s->seed >> 8) / (double)(1u << 24);
    s->factor_until = s->now + 50;
  }
  return s->factor;
}

/* ms of simulated time with requests of size bytes; returns the limit. */
static unsigned run(sim *s, const model *m, double ms, uint64_t size) {
  double end = s->now + ms;
  s->lowest = s->highest = vhdup__autotune_limit(&s->a);
  while (s->now < end) {
    unsigned n = vhdup__autotune_limit(&s->a);
    if (m->pool > 0 && n > m->pool)
      n = m->pool;
    double served = n / m->rtt_ms, cap = m->per_ms / (1 + m->crowd * n);
    if (m->per_ms > 0 && served > cap)
      served = cap;
    served *= noise_factor(s, m);
    s->now += 1.0 / served;
    vhdup__autotune_observe(&s->a, (uint64_t)s->now, size, (uint64_t)(n / served + 0.5), 0, n - 1);
    if (vhdup__autotune_limit(&s->a) < s->lowest)
      s->lowest = vhdup__autotune_limit(&s->a);
    if (vhdup__autotune_limit(&s->a) > s->highest)
      s->highest = vhdup__autotune_limit(&s->a);
  }
  return vhdup__autotune_limit(&s->a);
}

/* Small islands over an 80 ms path: latency stays at the round trip however
 * many are in flight, so auto climbs to the maximum. */
static void test_round_trip_bound_climbs(void **state) {
  (void)state;
  sim s;
  sim_init(&s);
  model wan = {80, 0, 0, 0, 0};
  assert_int_equal(run(&s, &wan, 5000, 4096), 256);
}

/* A far end that serves 2000 requests a second whatever the count (CPU on
 * loopback, a single-threaded emulator): more connections only queue, so
 * auto probes once and comes back to where it started. */
static void test_queueing_stays_low(void **state) {
  (void)state;
  sim s;
  sim_init(&s);
  model cpu = {1, 2, 0, 0, 0};
  assert_true(run(&s, &cpu, 5000, 4096) <= 64);
}

/* The same far end, with request sizes that keep changing kind (islands of
 * 4 KiB, then merged runs of 1 MiB): every change restarts slow start, and
 * a probe cut short must be undone, or the limit ratchets up to the
 * maximum: every stretch (long enough for a window at 256 to end) comes
 * back to where auto started. */
static void test_size_changes_do_not_ratchet(void **state) {
  (void)state;
  sim s;
  sim_init(&s);
  model cpu = {1, 2, 0, 0, 0};
  for (int i = 0; i < 40; i++) {
    run(&s, &cpu, 400, i % 2 ? 1u << 20 : 4096);
    assert_true(s.lowest <= 64);
  }
}

/* Islands of 4 and 20 KiB in turn over an 80 ms path: both are bound by
 * the round trip, so the mix must not stop auto from climbing, however long
 * each kind lasts. Windows then straddle the changes, and without the cost
 * counted per request (AUTO_REQUEST_COST) their mean sizes differ by more
 * than 1.5x, so none is compared: with stretches of 80 and 130 ms auto
 * stayed at its start. */
static void test_mixed_islands_climb(void **state) {
  (void)state;
  static const double stretch_ms[] = {50, 80, 130, 200};
  for (size_t k = 0; k < sizeof(stretch_ms) / sizeof(stretch_ms[0]); k++) {
    sim s;
    sim_init(&s);
    model wan = {80, 0, 0, 0, 0};
    for (int i = 0; i < (int)(8000 / stretch_ms[k]); i++)
      run(&s, &wan, stretch_ms[k], i % 2 ? 20480 : 4096);
    assert_int_equal(vhdup__autotune_limit(&s.a), 256);
  }
}

/* Big runs bound by bandwidth, then islands bound by round trips: slow
 * start begins again at the change and the islands get their connections. */
static void test_runs_then_islands(void **state) {
  (void)state;
  sim s;
  sim_init(&s);
  /* 4 MiB requests at 100 MB/s: 24 a second whatever the count, and the
   * pool lets out 15 at once. */
  model link = {80, 0.024, 15, 0, 0};
  unsigned runs = run(&s, &link, 3000, 4u << 20);
  assert_true(runs <= 64);
  /* The pool bound them, so auto tried half of what was in flight and kept
   * it (the same rate), but went no lower: 3 would not fill the link. */
  assert_true(runs >= 7);
  assert_true(s.lowest >= 7);
  model wan = {80, 0, 0, 0, 0};
  /* The islands start again from 64, where auto was before it probed
   * down, not from 7: there after their first window. */
  assert_true(run(&s, &wan, 120, 4096) >= 64);
  assert_int_equal(run(&s, &wan, 5000, 4096), 256);
}

/* Dense data to the loopback sink: the pool lets 15 requests out, far
 * below the limit, and each in flight costs the two cores some rate. Auto
 * probes down from what was in flight and keeps halving while the rate
 * grows, ending at 7 or fewer, not at its start of 64. Where fewer do no
 * better (a far end that serves a fixed rate) it halves once and stops. */
static void test_fewer_when_pool_bound(void **state) {
  (void)state;
  sim s;
  sim_init(&s);
  model cpu = {1, 1.6, 15, 0.03, 0};
  assert_true(run(&s, &cpu, 2000, 4u << 20) <= 7);
  sim_init(&s);
  model flat = {1, 1.6, 15, 0, 0};
  unsigned n = run(&s, &flat, 2000, 4u << 20);
  assert_true(n >= 7 && n <= 8);
}

/* The same far end with its rate moving +-25% from one 50 ms to the next,
 * as windows measured on loopback and over the emulated WAN do: the probe
 * down must still be kept, and noise alone must not walk the limit back up
 * (small steps up follow any window that reads 5% over the one before; the
 * latency rule brings them back, so here it wanders between 2 and 5). */
static void test_noise_does_not_creep(void **state) {
  (void)state;
  sim s;
  sim_init(&s);
  model cpu = {1, 1.6, 15, 0.03, 0.25};
  unsigned settled = run(&s, &cpu, 2000, 4u << 20);
  assert_true(settled <= 8);
  run(&s, &cpu, 10000, 4u << 20);
  print_message("settled at %u, then %u to %u\n", settled, s.lowest, s.highest);
  assert_true(s.highest <= settled + 2);
}

/* A throttled or failed request halves the limit at the end of its window. */
static void test_congestion_halves(void **state) {
  (void)state;
  sim s;
  sim_init(&s);
  model wan = {80, 0, 0, 0, 0};
  assert_int_equal(run(&s, &wan, 5000, 4096), 256);
  uint64_t t = (uint64_t)s.now;
  for (unsigned i = 0; i < 300; i++)
    vhdup__autotune_observe(&s.a, t + i, 0, 80, 1, 255);
  assert_true(vhdup__autotune_limit(&s.a) <= 128);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_bound_climbs),
      cmocka_unit_test(test_queueing_stays_low),
      cmocka_unit_test(test_size_changes_do_not_ratchet),
      cmocka_unit_test(test_mixed_islands_climb),
      cmocka_unit_test(test_runs_then_islands),
      cmocka_unit_test(test_fewer_when_pool_bound),
      cmocka_unit_test(test_noise_does_not_creep),
      cmocka_unit_test(test_congestion_halves),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
