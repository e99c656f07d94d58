/* Shared Key authorization (authorize-with-shared-key, "Blob, Queue, and
 * File services (Shared Key authorization)"):
 *   StringToSign = VERB \n Content-Encoding \n Content-Language \n
 *                  Content-Length (empty when zero, versions >= 2015-02-21) \n
 *                  Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n
 *                  If-Match \n If-None-Match \n If-Unmodified-Since \n Range \n
 *                  CanonicalizedHeaders CanonicalizedResource
 * CanonicalizedHeaders: every x-ms-* header, name lower-cased, sorted by
 * name, value with leading/trailing whitespace removed and inner runs folded
 * to one space, as "name:value\n". CanonicalizedResource: "/" account, the
 * encoded URI path, then per query parameter (name lower-cased, name and
 * value URL-decoded, sorted by name) "\nname:v1,v2" with values sorted.
 * Signature = Base64(HMAC-SHA256(Base64Decode(key), UTF-8(StringToSign))). */
#include "azure/azure.h"

#include "azure/internal.h"
#include "util/alloc.h"
#include "util/crypto.h"

#include <stdlib.h>
#include <string.h>

typedef struct pair {
  char *name;
  char *value;
} pair;

static int pair_cmp(const void *a, const void *b) {
  const pair *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c != 0 ? c : strcmp(x->value, y->value);
}

static void pairs_free(pair *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    vhdup__free(p[i].name);
    vhdup__free(p[i].value);
  }
  vhdup__free(p);
}

/* Trim and fold whitespace (authorize-with-shared-key, "Constructing the
 * canonicalized headers string", step 4). */
static void add_folded(vhdup__az_sb *sb, const char *v) {
  while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
    v++;
  int pending = 0;
  for (; *v != '\0'; v++) {
    if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
      pending = 1;
      continue;
    }
    if (pending)
      vhdup__az_sb_addc(sb, ' ');
    pending = 0;
    vhdup__az_sb_addc(sb, *v);
  }
}

static int add_headers(vhdup__az_sb *sb, const vhdup__az_header *h, size_t n) {
  pair *ps = vhdup__calloc(n ? n : 1, sizeof(*ps));
  size_t np = 0;
  if (ps == NULL)
    return VHDUP_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!vhdup__az_strncaseeq(h[i].name, "x-ms-", 5))
      continue;
    ps[np].name = vhdup__strdup(h[i].name);
    ps[np].value = vhdup__strdup(h[i].value);
    np++;
    if (ps[np - 1].name == NULL || ps[np - 1].value == NULL) {
      pairs_free(ps, np);
      return VHDUP_ENOMEM;
    }
    for (char *c = ps[np - 1].name; *c != '\0'; c++)
      *c = vhdup__az_lower(*c);
  }
  qsort(ps, np, sizeof(*ps), pair_cmp);
  for (size_t i = 0; i < np; i++) {
    vhdup__az_sb_add(sb, ps[i].name);
    vhdup__az_sb_addc(sb, ':');
    add_folded(sb, ps[i].value);
    vhdup__az_sb_addc(sb, '\n');
  }
  pairs_free(ps, np);
  return 0;
}

static int decode_dup(const char *s, size_t len, int lower, char **out) {
  char *d = vhdup__malloc(len + 1);
  *out = NULL;
  if (d == NULL)
    return VHDUP_ENOMEM;
  if (vhdup__az_url_decode(s, len, d, len + 1) < 0) {
    vhdup__free(d);
    return VHDUP_EURL;
  }
  if (lower)
    for (char *c = d; *c != '\0'; c++)
      *c = vhdup__az_lower(*c);
  *out = d;
  return 0;
}

static int add_resource(vhdup__az_sb *sb, const char *account, const char *url, vhdup__err *err) {
  const char *p = strstr(url, "://");
  if (p == NULL)
    return vhdup__errf(err, VHDUP_EURL, "request URL has no scheme");
  p += 3;
  p += strcspn(p, "/?");
  size_t plen = strcspn(p, "?");
  vhdup__az_sb_addc(sb, '/');
  vhdup__az_sb_add(sb, account);
  if (plen == 0)
    vhdup__az_sb_addc(sb, '/');
  else
    vhdup__az_sb_addn(sb, p, plen);
  if (p[plen] != '?')
    return 0;
  const char *q = p + plen + 1;
  size_t nparams = 1;
  for (const char *c = q; *c != '\0'; c++)
    nparams += *c == '&';
  pair *ps = vhdup__calloc(nparams, sizeof(*ps));
  if (ps == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  size_t np = 0;
  for (;;) {
    size_t l = strcspn(q, "&");
    if (l > 0) {
      const char *eq = memchr(q, '=', l);
      size_t nl = eq ? (size_t)(eq - q) : l;
      int rc = decode_dup(q, nl, 1, &ps[np].name);
      if (rc == 0)
        rc = decode_dup(eq ? eq + 1 : "", eq ? l - nl - 1 : 0, 0, &ps[np].value);
      np++;
      if (rc != 0) {
        pairs_free(ps, np);
        return rc == VHDUP_ENOMEM
                   ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory")
                   : vhdup__errf(err, VHDUP_EURL, "request URL has a malformed query parameter");
      }
    }
    if (q[l] == '\0')
      break;
    q += l + 1;
  }
  qsort(ps, np, sizeof(*ps), pair_cmp);
  for (size_t i = 0; i < np; i++) {
    if (i > 0 && strcmp(ps[i].name, ps[i - 1].name) == 0) {
      vhdup__az_sb_addc(sb, ',');
    } else {
      vhdup__az_sb_addc(sb, '\n');
      vhdup__az_sb_add(sb, ps[i].name);
      vhdup__az_sb_addc(sb, ':');
    }
    vhdup__az_sb_add(sb, ps[i].value);
  }
  pairs_free(ps, np);
  return 0;
}

int vhdup__az_string_to_sign(const char *method, const char *url, const vhdup__az_header *h,
                             size_t n, uint64_t content_length, const char *account, char **out,
                             vhdup__err *err) {
  static const char *const standard[] = {
      "Content-Encoding",
      "Content-Language",
      NULL /* Content-Length */,
      "Content-MD5",
      "Content-Type",
      "Date",
      "If-Modified-Since",
      "If-Match",
      "If-None-Match",
      "If-Unmodified-Since",
      "Range",
  };
  vhdup__az_sb sb = {0};
  *out = NULL;
  vhdup__az_sb_add(&sb, method);
  vhdup__az_sb_addc(&sb, '\n');
  for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++) {
    if (standard[i] == NULL) {
      if (content_length > 0)
        vhdup__az_sb_addu64(&sb, content_length);
    } else {
      const char *v = vhdup__az_header_find(h, n, standard[i]);
      if (v != NULL)
        vhdup__az_sb_add(&sb, v);
    }
    vhdup__az_sb_addc(&sb, '\n');
  }
  if (add_headers(&sb, h, n) != 0) {
    vhdup__az_sb_free(&sb);
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  int rc = add_resource(&sb, account, url, err);
  if (rc != 0) {
    vhdup__az_sb_free(&sb);
    return rc;
  }
  *out = vhdup__az_sb_take(&sb);
  return *out == NULL ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory") : 0;
}

int vhdup__az_shared_key_auth(const char *method, const char *url, const vhdup__az_header *h,
                              size_t n, uint64_t content_length, const char *account,
                              const uint8_t *key, size_t key_len, char **out, vhdup__err *err) {
  char *sts = NULL;
  uint8_t mac[VHDUP__SHA256_LEN];
  char b64[64];
  *out = NULL;
  int rc = vhdup__az_string_to_sign(method, url, h, n, content_length, account, &sts, err);
  if (rc != 0)
    return rc;
  rc = vhdup__hmac_sha256(key, key_len, sts, strlen(sts), mac);
  vhdup__free(sts);
  if (rc != 0 || vhdup__base64_encode(mac, sizeof(mac), b64, sizeof(b64)) < 0)
    return vhdup__errf(err, VHDUP_EINVAL, "HMAC-SHA256 failed");
  vhdup__az_sb sb = {0};
  vhdup__az_sb_add(&sb, "SharedKey ");
  vhdup__az_sb_add(&sb, account);
  vhdup__az_sb_addc(&sb, ':');
  vhdup__az_sb_add(&sb, b64);
  *out = vhdup__az_sb_take(&sb);
  return *out == NULL ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory") : 0;
}

void vhdup__az_rfc1123(int64_t t, char out[30]) {
  static const char days[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (t < 0)
    t = 0;
  int64_t day = t / 86400, sec = t % 86400;
  int wday = (int)(day % 7); /* 1970-01-01 was a Thursday */
  /* Civil date from days since the epoch (Howard Hinnant's algorithm). */
  int64_t z = day + 719468;
  int64_t era = z / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2)
    y++;
  if (y > 9999)
    y = 9999;
  char *o = out;
  memcpy(o, days[wday], 3);
  o += 3;
  *o++ = ',';
  *o++ = ' ';
  *o++ = (char)('0' + d / 10);
  *o++ = (char)('0' + d % 10);
  *o++ = ' ';
  memcpy(o, months[m - 1], 3);
  o += 3;
  *o++ = ' ';
  *o++ = (char)('0' + y / 1000);
  *o++ = (char)('0' + y / 100 % 10);
  *o++ = (char)('0' + y / 10 % 10);
  *o++ = (char)('0' + y % 10);
  *o++ = ' ';
  int hh = (int)(sec / 3600), mm = (int)(sec / 60 % 60), ss = (int)(sec % 60);
  *o++ = (char)('0' + hh / 10);
  *o++ = (char)('0' + hh % 10);
  *o++ = ':';
  *o++ = (char)('0' + mm / 10);
  *o++ = (char)('0' + mm % 10);
  *o++ = ':';
  *o++ = (char)('0' + ss / 10);
  *o++ = (char)('0' + ss % 10);
  memcpy(o, " GMT", 5);
}
