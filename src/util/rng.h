/* The one pseudo-random source of vhdup: jitter for backoff and nothing
 * else (xorshift64*; no secret ever comes from it). Each owner keeps its
 * own state, so the library holds no global state. */
#ifndef VHDUP_UTIL_RNG_H
#define VHDUP_UTIL_RNG_H

#include <stdint.h>

typedef struct vhdup__rng {
  uint64_t state;
} vhdup__rng;

/* Seeds from the monotonic clock and the state's own address, so two
 * owners made in the same nanosecond still differ. */
void vhdup__rng_seed(vhdup__rng *r);
/* The next value; ctx is a vhdup__rng * (the shape of vhdup__az_random_fn). */
uint64_t vhdup__rng_next(void *ctx);

#endif
