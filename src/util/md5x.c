#include "util/md5x.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define MD5X_AVX2 1
#include <immintrin.h>
#else
#define MD5X_AVX2 0
#endif

static void md5x_scalar(size_t n, const uint8_t *const data[], const size_t len[],
                        uint8_t out[][VHDUP__MD5_LEN]) {
  static const uint8_t none[1];
  for (size_t i = 0; i < n; i++)
    (void)vhdup__md5_digest(len[i] != 0 ? data[i] : none, len[i], out[i]);
}

#if MD5X_AVX2

/* RFC 1321 3.4's table T[1..64], here K[0..63]: K[i] = floor(2^32 * |sin(i + 1)|). */
static const uint32_t K[64] = {
    0xd76aa478u, 0xe8c7b756u, 0x242070dbu, 0xc1bdceeeu, 0xf57c0fafu, 0x4787c62au, 0xa8304613u,
    0xfd469501u, 0x698098d8u, 0x8b44f7afu, 0xffff5bb1u, 0x895cd7beu, 0x6b901122u, 0xfd987193u,
    0xa679438eu, 0x49b40821u, 0xf61e2562u, 0xc040b340u, 0x265e5a51u, 0xe9b6c7aau, 0xd62f105du,
    0x02441453u, 0xd8a1e681u, 0xe7d3fbc8u, 0x21e1cde6u, 0xc33707d6u, 0xf4d50d87u, 0x455a14edu,
    0xa9e3e905u, 0xfcefa3f8u, 0x676f02d9u, 0x8d2a4c8au, 0xfffa3942u, 0x8771f681u, 0x6d9d6122u,
    0xfde5380cu, 0xa4beea44u, 0x4bdecfa9u, 0xf6bb4b60u, 0xbebfbc70u, 0x289b7ec6u, 0xeaa127fau,
    0xd4ef3085u, 0x04881d05u, 0xd9d4d039u, 0xe6db99e5u, 0x1fa27cf8u, 0xc4ac5665u, 0xf4292244u,
    0x432aff97u, 0xab9423a7u, 0xfc93a039u, 0x655b59c3u, 0x8f0ccc92u, 0xffeff47du, 0x85845dd1u,
    0x6fa87e4fu, 0xfe2ce6e0u, 0xa3014314u, 0x4e0811a1u, 0xf7537e82u, 0xbd3af235u, 0x2ad7d2bbu,
    0xeb86d391u,
};

/* Each lane's message is its whole 64-byte blocks, read in place, then one
 * or two blocks of its own: the last partial block, 0x80, zeros and the
 * length in bits (RFC 1321 3.1-3.2). */
typedef struct lane {
  const uint8_t *data;
  size_t full;  /* whole blocks in data */
  size_t total; /* full + 1 or 2 padding blocks */
  uint8_t pad[128];
} lane;

static void lane_init(lane *l, const uint8_t *data, size_t len) {
  size_t rem = len % 64;
  l->data = data;
  l->full = len / 64;
  size_t npad = rem < 56 ? 1 : 2;
  l->total = l->full + npad;
  memset(l->pad, 0, sizeof(l->pad));
  if (rem != 0)
    memcpy(l->pad, data + l->full * 64, rem);
  l->pad[rem] = 0x80;
  uint64_t bits = (uint64_t)len * 8u;
  for (int i = 0; i < 8; i++)
    l->pad[npad * 64 - 8 + (size_t)i] = (uint8_t)(bits >> (8 * i));
}

#define AVX2 __attribute__((target("avx2")))

#define XOR _mm256_xor_si256
#define AND _mm256_and_si256
#define OR _mm256_or_si256
#define ADD _mm256_add_epi32
#define F(b, c, d) XOR(d, AND(b, XOR(c, d)))
#define H(b, c, d) XOR(b, XOR(c, d))
#define I(b, c, d) XOR(c, OR(b, XOR(d, ones)))
/* G(b, c, d) = (b & d) | (c & ~d), two terms with no bit in common, so
 * their sum: the second does not need b and joins the sum below early. */
#define G(b, c, d) AND(b, d)
#define G_EARLY(c, d) _mm256_andnot_si256(d, c)
#define F_EARLY(c, d) _mm256_setzero_si256()
#define H_EARLY(c, d) _mm256_setzero_si256()
#define I_EARLY(c, d) _mm256_setzero_si256()
/* pre = a + M[w] + K[i] (+ G's early term) does not wait on b, the step
 * before's result; the empty asm keeps the compiler from re-associating
 * the sum so that it does, which makes each step's chain a cycle longer. */
#define STEP_(f, early, a, b, c, d, i, w, s)                                                       \
  do {                                                                                             \
    __m256i pre = ADD(ADD(a, early(c, d)), ADD(m[w], _mm256_set1_epi32((int)K[i])));               \
    __asm__("" : "+x"(pre));                                                                       \
    a = ADD(pre, f(b, c, d));                                                                      \
    a = ADD(b, OR(_mm256_slli_epi32(a, s), _mm256_srli_epi32(a, 32 - (s))));                       \
  } while (0)
#define STEP(f, a, b, c, d, i, w, s) STEP_(f, f##_EARLY, a, b, c, d, i, w, s)

/* Words 8*half .. 8*half+7 of each lane's block, one vector per word with
 * lane j in element j: an 8x8 transpose of 32-bit words. */
AVX2 static void load_words(const uint8_t *const p[8], int half, __m256i *m) {
  __m256i r[8], t[8], u[8];
  for (int j = 0; j < 8; j++)
    r[j] = _mm256_loadu_si256((const __m256i *)(const void *)(p[j] + 32 * half));
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_epi32(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_epi32(r[j], r[j + 1]);
  }
  for (int j = 0; j < 8; j += 4) {
    u[j] = _mm256_unpacklo_epi64(t[j], t[j + 2]);
    u[j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 2]);
    u[j + 2] = _mm256_unpacklo_epi64(t[j + 1], t[j + 3]);
    u[j + 3] = _mm256_unpackhi_epi64(t[j + 1], t[j + 3]);
  }
  for (int w = 0; w < 4; w++) {
    m[w] = _mm256_permute2x128_si256(u[w], u[w + 4], 0x20);
    m[w + 4] = _mm256_permute2x128_si256(u[w], u[w + 4], 0x31);
  }
}

AVX2 static void md5x_avx2(size_t n, const uint8_t *const data[], const size_t len[],
                           uint8_t out[][VHDUP__MD5_LEN]) {
  static const uint8_t idle[64]; /* what a finished or unused lane reads */
  lane ln[VHDUP__MD5X_MAX];
  size_t most = 0, least = SIZE_MAX;
  for (size_t j = 0; j < n; j++) {
    lane_init(&ln[j], data[j], len[j]);
    most = ln[j].total > most ? ln[j].total : most;
    least = ln[j].total < least ? ln[j].total : least;
  }
  const __m256i ones = _mm256_set1_epi32(-1);
  __m256i A = _mm256_set1_epi32(0x67452301), B = _mm256_set1_epi32((int)0xefcdab89u);
  __m256i C = _mm256_set1_epi32((int)0x98badcfeu), D = _mm256_set1_epi32(0x10325476);
  const uint8_t *p[VHDUP__MD5X_MAX];
  for (size_t j = n; j < VHDUP__MD5X_MAX; j++)
    p[j] = idle;
  for (size_t k = 0; k < most; k++) {
    int32_t live[VHDUP__MD5X_MAX] = {-1, -1, -1, -1, -1, -1, -1, -1};
    for (size_t j = 0; j < n; j++) {
      const lane *l = &ln[j];
      if (k < l->full)
        p[j] = l->data + 64 * k;
      else if (k < l->total)
        p[j] = l->pad + 64 * (k - l->full);
      else {
        p[j] = idle;
        live[j] = 0;
      }
    }
    __m256i m[16];
    load_words(p, 0, m);
    load_words(p, 1, m + 8);
    __m256i a = A, b = B, c = C, d = D;
    STEP(F, a, b, c, d, 0, 0, 7);
    STEP(F, d, a, b, c, 1, 1, 12);
    STEP(F, c, d, a, b, 2, 2, 17);
    STEP(F, b, c, d, a, 3, 3, 22);
    STEP(F, a, b, c, d, 4, 4, 7);
    STEP(F, d, a, b, c, 5, 5, 12);
    STEP(F, c, d, a, b, 6, 6, 17);
    STEP(F, b, c, d, a, 7, 7, 22);
    STEP(F, a, b, c, d, 8, 8, 7);
    STEP(F, d, a, b, c, 9, 9, 12);
    STEP(F, c, d, a, b, 10, 10, 17);
    STEP(F, b, c, d, a, 11, 11, 22);
    STEP(F, a, b, c, d, 12, 12, 7);
    STEP(F, d, a, b, c, 13, 13, 12);
    STEP(F, c, d, a, b, 14, 14, 17);
    STEP(F, b, c, d, a, 15, 15, 22);
    STEP(G, a, b, c, d, 16, 1, 5);
    STEP(G, d, a, b, c, 17, 6, 9);
    STEP(G, c, d, a, b, 18, 11, 14);
    STEP(G, b, c, d, a, 19, 0, 20);
    STEP(G, a, b, c, d, 20, 5, 5);
    STEP(G, d, a, b, c, 21, 10, 9);
    STEP(G, c, d, a, b, 22, 15, 14);
    STEP(G, b, c, d, a, 23, 4, 20);
    STEP(G, a, b, c, d, 24, 9, 5);
    STEP(G, d, a, b, c, 25, 14, 9);
    STEP(G, c, d, a, b, 26, 3, 14);
    STEP(G, b, c, d, a, 27, 8, 20);
    STEP(G, a, b, c, d, 28, 13, 5);
    STEP(G, d, a, b, c, 29, 2, 9);
    STEP(G, c, d, a, b, 30, 7, 14);
    STEP(G, b, c, d, a, 31, 12, 20);
    STEP(H, a, b, c, d, 32, 5, 4);
    STEP(H, d, a, b, c, 33, 8, 11);
    STEP(H, c, d, a, b, 34, 11, 16);
    STEP(H, b, c, d, a, 35, 14, 23);
    STEP(H, a, b, c, d, 36, 1, 4);
    STEP(H, d, a, b, c, 37, 4, 11);
    STEP(H, c, d, a, b, 38, 7, 16);
    STEP(H, b, c, d, a, 39, 10, 23);
    STEP(H, a, b, c, d, 40, 13, 4);
    STEP(H, d, a, b, c, 41, 0, 11);
    STEP(H, c, d, a, b, 42, 3, 16);
    STEP(H, b, c, d, a, 43, 6, 23);
    STEP(H, a, b, c, d, 44, 9, 4);
    STEP(H, d, a, b, c, 45, 12, 11);
    STEP(H, c, d, a, b, 46, 15, 16);
    STEP(H, b, c, d, a, 47, 2, 23);
    STEP(I, a, b, c, d, 48, 0, 6);
    STEP(I, d, a, b, c, 49, 7, 10);
    STEP(I, c, d, a, b, 50, 14, 15);
    STEP(I, b, c, d, a, 51, 5, 21);
    STEP(I, a, b, c, d, 52, 12, 6);
    STEP(I, d, a, b, c, 53, 3, 10);
    STEP(I, c, d, a, b, 54, 10, 15);
    STEP(I, b, c, d, a, 55, 1, 21);
    STEP(I, a, b, c, d, 56, 8, 6);
    STEP(I, d, a, b, c, 57, 15, 10);
    STEP(I, c, d, a, b, 58, 6, 15);
    STEP(I, b, c, d, a, 59, 13, 21);
    STEP(I, a, b, c, d, 60, 4, 6);
    STEP(I, d, a, b, c, 61, 11, 10);
    STEP(I, c, d, a, b, 62, 2, 15);
    STEP(I, b, c, d, a, 63, 9, 21);
    if (k < least) {
      A = ADD(A, a);
      B = ADD(B, b);
      C = ADD(C, c);
      D = ADD(D, d);
    } else {
      /* Some lanes have finished: they keep their state. */
      __m256i keep = _mm256_loadu_si256((const __m256i *)(const void *)live);
      A = _mm256_blendv_epi8(A, ADD(A, a), keep);
      B = _mm256_blendv_epi8(B, ADD(B, b), keep);
      C = _mm256_blendv_epi8(C, ADD(C, c), keep);
      D = _mm256_blendv_epi8(D, ADD(D, d), keep);
    }
  }
  uint32_t st[4][VHDUP__MD5X_MAX];
  _mm256_storeu_si256((__m256i *)(void *)st[0], A);
  _mm256_storeu_si256((__m256i *)(void *)st[1], B);
  _mm256_storeu_si256((__m256i *)(void *)st[2], C);
  _mm256_storeu_si256((__m256i *)(void *)st[3], D);
  for (size_t j = 0; j < n; j++)
    for (int w = 0; w < 4; w++)
      for (int i = 0; i < 4; i++)
        out[j][4 * w + i] = (uint8_t)(st[w][j] >> (8 * i));
}

static int pick_lanes(void) {
  const char *e = getenv("VHDUP_MD5X");
  if (e != NULL && strcmp(e, "scalar") == 0)
    return 1;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") ? VHDUP__MD5X_MAX : 1;
}

#else
static int pick_lanes(void) {
  return 1;
}
#endif

/* Decided on the first call; threads racing to decide find the same. */
static atomic_int lanes;

int vhdup__md5x_lanes(void) {
  int l = atomic_load_explicit(&lanes, memory_order_relaxed);
  if (l == 0) {
    l = pick_lanes();
    atomic_store_explicit(&lanes, l, memory_order_relaxed);
  }
  return l;
}

void vhdup__md5x(size_t n, const uint8_t *const data[], const size_t len[],
                 uint8_t out[][VHDUP__MD5_LEN]) {
#if MD5X_AVX2
  if (n > 1 && vhdup__md5x_lanes() > 1) {
    md5x_avx2(n, data, len, out);
    return;
  }
#endif
  md5x_scalar(n, data, len, out);
}
