/* Single-core hashing rates of what vhdup computes per request: MD5 one
 * message at a time (vhdup__md5_digest, mbedTLS behind src/util/crypto.c:
 * what "one core's MD5 rate" usually means), MD5 of VHDUP__MD5X_MAX
 * messages at once (vhdup__md5x, src/util/md5x.c: what the upload pipeline
 * uses when the CPU has AVX2; "md5x lanes=1" without it) and Azure's CRC64
 * (vhdup__crc64, src/azure/crc64.c, with PCLMULQDQ where the CPU has it;
 * crc64-tables: its portable path), over 4 MiB of pseudo-random bytes (for
 * md5x, VHDUP__MD5X_MAX messages of 512 KiB) for about SECONDS seconds
 * (default 2). Prints one line per hash: "md5 MB/s=... bytes=...
 * seconds=..." (MB = 10^6 bytes), the format bench/upload.sh parses.
 *   bench_hashrate [SECONDS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "azure/azure.h"
#include "util/crypto.h"
#include "util/md5x.h"

#define BUF_LEN (4u << 20)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint64_t sink; /* keeps the results alive */

static void run_md5(const uint8_t *buf, double secs) {
  uint8_t out[VHDUP__MD5_LEN];
  uint64_t bytes = 0;
  double t0 = now(), t;
  do {
    if (vhdup__md5_digest(buf, BUF_LEN, out) != 0) {
      fprintf(stderr, "bench_hashrate: md5 failed\n");
      exit(1);
    }
    sink ^= out[0];
    bytes += BUF_LEN;
    t = now() - t0;
  } while (t < secs);
  printf("md5 MB/s=%.1f bytes=%llu seconds=%.3f\n", (double)bytes / t / 1e6,
         (unsigned long long)bytes, t);
}

static void run_md5x(const uint8_t *buf, double secs) {
  const uint8_t *data[VHDUP__MD5X_MAX];
  size_t len[VHDUP__MD5X_MAX];
  uint8_t out[VHDUP__MD5X_MAX][VHDUP__MD5_LEN];
  for (size_t i = 0; i < VHDUP__MD5X_MAX; i++) {
    len[i] = BUF_LEN / VHDUP__MD5X_MAX;
    data[i] = buf + i * len[i];
  }
  uint64_t bytes = 0;
  double t0 = now(), t;
  do {
    vhdup__md5x(VHDUP__MD5X_MAX, data, len, out);
    sink ^= out[0][0];
    bytes += BUF_LEN;
    t = now() - t0;
  } while (t < secs);
  printf("md5x MB/s=%.1f bytes=%llu seconds=%.3f lanes=%d\n", (double)bytes / t / 1e6,
         (unsigned long long)bytes, t, vhdup__md5x_lanes());
}

static void run_crc64(const char *name, uint64_t (*crc)(uint64_t, const void *, size_t),
                      const uint8_t *buf, double secs) {
  uint64_t bytes = 0;
  double t0 = now(), t;
  do {
    sink ^= crc(0, buf, BUF_LEN);
    bytes += BUF_LEN;
    t = now() - t0;
  } while (t < secs);
  printf("%s MB/s=%.1f bytes=%llu seconds=%.3f\n", name, (double)bytes / t / 1e6,
         (unsigned long long)bytes, t);
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 2.0;
  if (!(secs > 0 && secs <= 60)) {
    fprintf(stderr, "usage: bench_hashrate [SECONDS (0-60]]\n");
    return 2;
  }
  uint8_t *buf = malloc(BUF_LEN);
  if (buf == NULL) {
    fprintf(stderr, "bench_hashrate: out of memory\n");
    return 1;
  }
  uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64: data that is not zeros */
  for (size_t i = 0; i < BUF_LEN; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  run_md5(buf, secs);
  run_md5x(buf, secs);
  run_crc64("crc64", vhdup__crc64, buf, secs);
  run_crc64("crc64-tables", vhdup__crc64_tables, buf, secs);
  fflush(stdout);
  free(buf);
  return 0;
}
