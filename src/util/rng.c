#include "util/rng.h"

#include <time.h>

void vhdup__rng_seed(vhdup__rng *r) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t s = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  s ^= (uint64_t)(uintptr_t)r * 0x9E3779B97F4A7C15ull;
  r->state = s | 1; /* xorshift must never hold 0 */
}

uint64_t vhdup__rng_next(void *ctx) {
  vhdup__rng *r = ctx;
  uint64_t x = r->state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->state = x;
  return x * 0x2545F4914F6CDD1Dull;
}
