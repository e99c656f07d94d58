/* Which failures to retry and how long to wait (AZURE.md "Errors and
 * retries"; status-and-error-codes2; blob-service-error-codes). */
#include "azure/azure.h"

#include "azure/internal.h"

#include <string.h>

static int code_is(const char *code, const char *want) {
  return code != NULL && strcmp(code, want) == 0;
}

vhdup__az_class vhdup__az_classify(int status, const char *code) {
  (void)code;
  if (status >= 200 && status <= 299)
    return VHDUP__AZ_OK;
  if (status == 401 || status == 403)
    return VHDUP__AZ_AUTH;
  /* 408/429: the request never ran; 500 InternalError/OperationTimedOut,
   * 503 ServerBusy: the service asks to come back later. 501 and 505 will
   * answer the same every time. */
  if (status == 408 || status == 429)
    return VHDUP__AZ_RETRY;
  if (status >= 500 && status <= 599 && status != 501 && status != 505)
    return VHDUP__AZ_RETRY;
  return VHDUP__AZ_FATAL;
}

vhdup__az_class vhdup__az_classify_transport(int err) {
  if (err == 0)
    return VHDUP__AZ_OK;
  if (err == VHDUP_ENET || err == VHDUP_ETIMEDOUT)
    return VHDUP__AZ_RETRY;
  return VHDUP__AZ_FATAL;
}

int vhdup__az_status_errno(int status, const char *code) {
  if (status >= 200 && status <= 299)
    return 0;
  if (status == 401 || status == 403)
    return VHDUP_EAUTH;
  if (status == 404)
    return VHDUP_ENOTFOUND;
  if ((status == 409 &&
       (code_is(code, "BlobAlreadyExists") || code_is(code, "ContainerAlreadyExists"))) ||
      (status == 412 && code_is(code, "ConditionNotMet")))
    return VHDUP_EEXIST;
  if (code_is(code, "OperationTimedOut") || status == 408 || status == 504)
    return VHDUP_ETIMEDOUT;
  return VHDUP_EHTTP;
}

long vhdup__az_retry_after(const vhdup__az_header *h, size_t n) {
  const char *v = vhdup__az_header_find(h, n, "Retry-After");
  if (v == NULL)
    return -1;
  while (*v == ' ' || *v == '\t')
    v++;
  long r = 0;
  int digits = 0;
  for (; *v >= '0' && *v <= '9'; v++) {
    if (++digits > 9)
      return -1;
    r = r * 10 + (*v - '0');
  }
  while (*v == ' ' || *v == '\t')
    v++;
  return (digits == 0 || *v != '\0') ? -1 : r;
}

uint32_t vhdup__az_backoff_ms(unsigned attempt, uint32_t base_ms, uint32_t cap_ms,
                              long retry_after_s, vhdup__az_random_fn rnd, void *rnd_ctx) {
  uint64_t ceiling = cap_ms;
  if (attempt < 32 && ((uint64_t)base_ms << attempt) < cap_ms)
    ceiling = (uint64_t)base_ms << attempt;
  /* Full jitter (uniform in [0, ceiling]) spreads clients that failed
   * together, so they do not come back together. */
  uint64_t delay = ceiling;
  if (rnd != NULL)
    delay = rnd(rnd_ctx) % (ceiling + 1);
  if (retry_after_s >= 0) {
    uint64_t ra = (uint64_t)retry_after_s >= VHDUP__AZ_RETRY_AFTER_CAP_MS / 1000
                      ? VHDUP__AZ_RETRY_AFTER_CAP_MS
                      : (uint64_t)retry_after_s * 1000;
    if (ra > delay)
      delay = ra;
  }
  return (uint32_t)delay;
}
