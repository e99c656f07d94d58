/* The only place vhdup touches mbedTLS: MD5, SHA-256, HMAC-SHA256 and
 * base64, through the generic mbedtls_md API (the same in 2.x and 3.x). */
#ifndef VHDUP_UTIL_CRYPTO_H
#define VHDUP_UTIL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define VHDUP__MD5_LEN 16
#define VHDUP__SHA256_LEN 32

/* Streaming MD5; init allocates mbedTLS's context, free releases it. */
typedef struct vhdup__md5_ctx {
  void *md; /* mbedtls_md_context_t, allocated by init */
} vhdup__md5_ctx;

int vhdup__md5_init(vhdup__md5_ctx *m) __attribute__((warn_unused_result));
void vhdup__md5_update(vhdup__md5_ctx *m, const void *data, size_t len);
/* Feeds n zero bytes (the holes of a sparse disk) without a buffer of n. */
void vhdup__md5_update_zeros(vhdup__md5_ctx *m, uint64_t n);
void vhdup__md5_final(vhdup__md5_ctx *m, uint8_t out[VHDUP__MD5_LEN]);
void vhdup__md5_free(vhdup__md5_ctx *m);

/* One-shot digests. Return 0, or VHDUP_ENOMEM/VHDUP_EINVAL. */
int vhdup__md5_digest(const void *data, size_t len, uint8_t out[VHDUP__MD5_LEN]);
int vhdup__sha256(const void *data, size_t len, uint8_t out[VHDUP__SHA256_LEN]);
int vhdup__hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                       uint8_t out[VHDUP__SHA256_LEN]);

/* Base64 (standard alphabet, padded). encode writes a NUL-terminated string
 * into out (out_size >= 4 * ceil(len / 3) + 1) and returns its length, or
 * VHDUP_ELIMIT. decode returns the decoded length, VHDUP_ELIMIT if out is too
 * small, or VHDUP_EFORMAT for invalid base64. */
long vhdup__base64_encode(const void *data, size_t len, char *out, size_t out_size);
long vhdup__base64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size);

#endif
