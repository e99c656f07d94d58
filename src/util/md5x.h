/* MD5 of several independent buffers at once, one per lane of a SIMD
 * register: MD5 is a serial chain within one message, so a core hashing one
 * buffer waits on each step's latency; eight messages side by side in AVX2
 * fill that wait with work. vhdup hashes one Content-MD5 per Put Page, so
 * there are always independent messages to put side by side.
 *
 * The digests are exactly MD5's (RFC 1321), checked against mbedTLS in
 * test_util. Without AVX2 (another architecture, an old CPU, or
 * VHDUP_MD5X=scalar in the environment) each buffer goes through
 * vhdup__md5_digest (mbedTLS) in turn. */
#ifndef VHDUP_UTIL_MD5X_H
#define VHDUP_UTIL_MD5X_H

#include <stddef.h>
#include <stdint.h>

#include "util/crypto.h"

#define VHDUP__MD5X_MAX 8

/* How many buffers one call hashes for the price of one on this CPU: 8
 * with AVX2, else 1. Decided once, on the first call. */
int vhdup__md5x_lanes(void);

/* out[i] = MD5(data[i], len[i]) for i < n, 1 <= n <= VHDUP__MD5X_MAX.
 * Buffers may have any lengths (lanes that finish early idle); a buffer of
 * length 0 may be NULL. */
void vhdup__md5x(size_t n, const uint8_t *const data[], const size_t len[],
                 uint8_t out[][VHDUP__MD5_LEN]);

#endif
