#include "util/crypto.h"

#include "util/alloc.h"
#include "vhdup_errno.h"

#include <mbedtls/base64.h>
#include <mbedtls/md.h>

int vhdup__md5_init(vhdup__md5_ctx *m) {
  mbedtls_md_context_t *ctx = vhdup__malloc(sizeof(*ctx));
  if (ctx == NULL)
    return VHDUP_ENOMEM;
  mbedtls_md_init(ctx);
  if (mbedtls_md_setup(ctx, mbedtls_md_info_from_type(MBEDTLS_MD_MD5), 0) != 0 ||
      mbedtls_md_starts(ctx) != 0) {
    mbedtls_md_free(ctx);
    vhdup__free(ctx);
    return VHDUP_ENOMEM;
  }
  m->md = ctx;
  return 0;
}

void vhdup__md5_update(vhdup__md5_ctx *m, const void *data, size_t len) {
  mbedtls_md_update(m->md, data, len);
}

void vhdup__md5_update_zeros(vhdup__md5_ctx *m, uint64_t n) {
  static const uint8_t zeros[64 * 1024];
  while (n > 0) {
    size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
    vhdup__md5_update(m, zeros, k);
    n -= k;
  }
}

void vhdup__md5_final(vhdup__md5_ctx *m, uint8_t out[VHDUP__MD5_LEN]) {
  mbedtls_md_finish(m->md, out);
}

void vhdup__md5_free(vhdup__md5_ctx *m) {
  if (m->md != NULL) {
    mbedtls_md_free(m->md);
    vhdup__free(m->md);
    m->md = NULL;
  }
}

static int digest(mbedtls_md_type_t type, const void *data, size_t len, uint8_t *out) {
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(type);
  if (info == NULL)
    return VHDUP_EINVAL;
  return mbedtls_md(info, data, len, out) == 0 ? 0 : VHDUP_EINVAL;
}

int vhdup__md5_digest(const void *data, size_t len, uint8_t out[VHDUP__MD5_LEN]) {
  return digest(MBEDTLS_MD_MD5, data, len, out);
}

int vhdup__sha256(const void *data, size_t len, uint8_t out[VHDUP__SHA256_LEN]) {
  return digest(MBEDTLS_MD_SHA256, data, len, out);
}

int vhdup__hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                       uint8_t out[VHDUP__SHA256_LEN]) {
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  if (info == NULL)
    return VHDUP_EINVAL;
  return mbedtls_md_hmac(info, key, key_len, data, len, out) == 0 ? 0 : VHDUP_EINVAL;
}

long vhdup__base64_encode(const void *data, size_t len, char *out, size_t out_size) {
  size_t olen = 0;
  if (mbedtls_base64_encode((unsigned char *)out, out_size, &olen, data, len) != 0)
    return VHDUP_ELIMIT;
  return (long)olen;
}

long vhdup__base64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size) {
  size_t olen = 0;
  int rc = mbedtls_base64_decode(out, out_size, &olen, (const unsigned char *)in, in_len);
  if (rc == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
    return VHDUP_ELIMIT;
  if (rc != 0)
    return VHDUP_EFORMAT;
  return (long)olen;
}
