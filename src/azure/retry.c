/* Which failures to retry and how long to wait (docs/azure.md, "Errors and
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

static int two_digits(const char *v, int *out) {
  if (v[0] < '0' || v[0] > '9' || v[1] < '0' || v[1] > '9')
    return -1;
  *out = (v[0] - '0') * 10 + (v[1] - '0');
  return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (the
 * era arithmetic of H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int64_t vhdup__az_http_date(const char *v) {
  static const char days[] = "MonTueWedThuFriSatSun";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  /* "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters, fixed positions. */
  if (v == NULL || strlen(v) != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' ||
      v[16] != ' ' || v[19] != ':' || v[22] != ':' || strcmp(v + 25, " GMT") != 0)
    return -1;
  int wday_ok = 0;
  for (int i = 0; i < 7; i++)
    wday_ok |= memcmp(v, days + 3 * i, 3) == 0;
  int mon = 0;
  for (int i = 0; i < 12; i++)
    if (memcmp(v + 8, months + 3 * i, 3) == 0)
      mon = i + 1;
  int day, yh, yl, hh, mm, ss;
  if (!wday_ok || mon == 0 || two_digits(v + 5, &day) || two_digits(v + 12, &yh) ||
      two_digits(v + 14, &yl) || two_digits(v + 17, &hh) || two_digits(v + 20, &mm) ||
      two_digits(v + 23, &ss))
    return -1;
  int year = yh * 100 + yl;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day < 1 || day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap) || hh > 23 || mm > 59 ||
      ss > 60)
    return -1;
  return days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
}

long vhdup__az_retry_after(const vhdup__az_header *h, size_t n, int64_t now_unix) {
  const char *v = vhdup__az_header_find(h, n, "Retry-After");
  if (v == NULL)
    return -1;
  while (*v == ' ' || *v == '\t')
    v++;
  if (*v < '0' || *v > '9') {
    int64_t at = vhdup__az_http_date(v);
    if (at < 0)
      return -1;
    int64_t now = vhdup__az_http_date(vhdup__az_header_find(h, n, "Date"));
    if (now < 0)
      now = now_unix;
    int64_t d = at - now;
    return d <= 0 ? 0 : d > 999999999 ? 999999999 : (long)d;
  }
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
