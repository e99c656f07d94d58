/* Shared Key and SAS checks, written from Microsoft's "Authorize with Shared
 * Key" page independently of src/azure, so the two can catch each other's
 * mistakes. For path-style (Azurite-like) URLs the canonicalized resource is
 * "/ACCOUNT" followed by the path, which itself starts with "/ACCOUNT". */
#include "server.h"

#include "util/crypto.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct kv {
  char *k;
  char *v;
} kv;

static int kv_cmp(const void *a, const void *b) {
  const kv *x = a, *y = b;
  int c = strcmp(x->k, y->k);
  return c != 0 ? c : strcmp(x->v, y->v);
}

static char *lower_dup(const char *s, size_t n) {
  char *p = ts_xmalloc(n + 1);
  for (size_t i = 0; i < n; i++)
    p[i] = (char)tolower((unsigned char)s[i]);
  p[n] = '\0';
  return p;
}

/* Header value as Shared Key wants it: trimmed, inner runs of whitespace
 * folded to one space. */
static char *fold_value(const char *s) {
  size_t n = strlen(s);
  char *p = ts_xmalloc(n + 1);
  size_t o = 0;
  bool space = false;
  while (*s == ' ' || *s == '\t')
    s++;
  for (; *s != '\0'; s++) {
    if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
      space = true;
      continue;
    }
    if (space && o > 0)
      p[o++] = ' ';
    space = false;
    p[o++] = *s;
  }
  p[o] = '\0';
  return p;
}

static void std_header(sbuf *sts, const ts_request *r, const char *name) {
  const char *v = ts_req_header(r, name);
  if (v != NULL)
    sbuf_puts(sts, v);
  sbuf_puts(sts, "\n");
}

static void canonical_headers(sbuf *sts, const ts_request *r) {
  kv *list = ts_xmalloc((r->nheaders + 1) * sizeof(kv));
  size_t n = 0;
  for (size_t i = 0; i < r->nheaders; i++) {
    const char *name = r->headers[i].name.p;
    if (strncasecmp(name, "x-ms-", 5) != 0)
      continue;
    list[n].k = lower_dup(name, strlen(name));
    list[n].v = fold_value(r->headers[i].value.p ? r->headers[i].value.p : "");
    n++;
  }
  /* Sort by name only, keeping the order of repeated headers stable. */
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && strcmp(list[j - 1].k, list[j].k) > 0; j--) {
      kv t = list[j];
      list[j] = list[j - 1];
      list[j - 1] = t;
    }
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && strcmp(list[i - 1].k, list[i].k) == 0) {
      sts->len--; /* replace the previous '\n' with ",value\n" */
      sbuf_printf(sts, ",%s\n", list[i].v);
    } else {
      sbuf_printf(sts, "%s:%s\n", list[i].k, list[i].v);
    }
  }
  for (size_t i = 0; i < n; i++) {
    free(list[i].k);
    free(list[i].v);
  }
  free(list);
}

static void canonical_resource(sbuf *sts, const ts_config *cfg, const ts_request *r) {
  sbuf_printf(sts, "/%s%s", cfg->account, r->path.p ? r->path.p : "/");
  const char *q = r->query.p ? r->query.p : "";
  size_t cap = 8, n = 0;
  kv *list = ts_xmalloc(cap * sizeof(kv));
  while (*q != '\0') {
    size_t plen = strcspn(q, "&");
    if (plen > 0) {
      const char *eq = memchr(q, '=', plen);
      size_t klen = eq ? (size_t)(eq - q) : plen;
      sbuf k, v;
      sbuf_init(&k);
      sbuf_init(&v);
      ts_url_decode(&k, q, klen);
      if (eq != NULL)
        ts_url_decode(&v, eq + 1, plen - klen - 1);
      else
        sbuf_append(&v, "", 0);
      if (n == cap) {
        cap *= 2;
        list = ts_xrealloc(list, cap * sizeof(kv));
      }
      list[n].k = lower_dup(k.p, k.len);
      list[n].v = v.p;
      n++;
      sbuf_free(&k);
    }
    q += plen;
    if (*q == '&')
      q++;
  }
  qsort(list, n, sizeof(kv), kv_cmp);
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && strcmp(list[i - 1].k, list[i].k) == 0)
      sbuf_printf(sts, ",%s", list[i].v);
    else
      sbuf_printf(sts, "\n%s:%s", list[i].k, list[i].v);
  }
  for (size_t i = 0; i < n; i++) {
    free(list[i].k);
    free(list[i].v);
  }
  free(list);
}

static void string_to_sign(sbuf *sts, const ts_config *cfg, const ts_request *r) {
  sbuf_printf(sts, "%s\n", http_method_str(r->method));
  std_header(sts, r, "Content-Encoding");
  std_header(sts, r, "Content-Language");
  /* From version 2015-02-21 a zero Content-Length is signed as empty. */
  const char *cl = ts_req_header(r, "Content-Length");
  sbuf_printf(sts, "%s\n", cl != NULL && strcmp(cl, "0") != 0 ? cl : "");
  std_header(sts, r, "Content-MD5");
  std_header(sts, r, "Content-Type");
  /* With x-ms-date present the Date header is signed as empty. */
  if (ts_req_header(r, "x-ms-date") != NULL)
    sbuf_puts(sts, "\n");
  else
    std_header(sts, r, "Date");
  std_header(sts, r, "If-Modified-Since");
  std_header(sts, r, "If-Match");
  std_header(sts, r, "If-None-Match");
  std_header(sts, r, "If-Unmodified-Since");
  std_header(sts, r, "Range");
  canonical_headers(sts, r);
  canonical_resource(sts, cfg, r);
}

/* Shared Key requests must carry x-ms-date or Date, RFC 1123, within 15
 * minutes of the server's clock ("Authorize with Shared Key": "Specifying
 * the Date header"); Azure refuses older or unparsable ones with 403. */
static bool date_ok(const ts_request *r, char *why, size_t why_size) {
  const char *d = ts_req_header(r, "x-ms-date");
  if (d == NULL)
    d = ts_req_header(r, "Date");
  if (d == NULL) {
    snprintf(why, why_size, "Request date header not specified.");
    return false;
  }
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  const char *end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == NULL || *end != '\0') {
    snprintf(why, why_size, "The Date header in the request is incorrect.");
    return false;
  }
  time_t t = timegm(&tm);
  time_t now = time(NULL);
  if (t < now - 15 * 60 || t > now + 15 * 60) {
    snprintf(why, why_size, "Request date header too old or too far in the future: '%s'.", d);
    return false;
  }
  return true;
}

static ts_auth_result check_shared_key(const ts_config *cfg, const ts_request *r, const char *authz,
                                       char *why, size_t why_size) {
  static const char scheme[] = "SharedKey ";
  if (strncmp(authz, scheme, sizeof(scheme) - 1) != 0) {
    snprintf(why, why_size, "Authorization scheme is not SharedKey");
    return TS_AUTH_FAILED;
  }
  const char *acct = authz + sizeof(scheme) - 1;
  const char *colon = strchr(acct, ':');
  if (colon == NULL || (size_t)(colon - acct) != strlen(cfg->account) ||
      strncmp(acct, cfg->account, (size_t)(colon - acct)) != 0) {
    snprintf(why, why_size, "Authorization names another account");
    return TS_AUTH_FAILED;
  }
  if (!date_ok(r, why, why_size))
    return TS_AUTH_FAILED;
  sbuf sts;
  sbuf_init(&sts);
  string_to_sign(&sts, cfg, r);
  uint8_t mac[VHDUP__SHA256_LEN];
  char expect[64];
  int rc = vhdup__hmac_sha256(cfg->key, cfg->key_len, sts.p, sts.len, mac);
  if (rc == 0 && vhdup__base64_encode(mac, sizeof(mac), expect, sizeof(expect)) < 0)
    rc = -1;
  bool ok = rc == 0 && strcmp(expect, colon + 1) == 0;
  if (!ok) {
    /* Azure echoes the string it signed; tests diff it against the client's. */
    sbuf esc;
    sbuf_init(&esc);
    for (size_t i = 0; i < sts.len; i++) {
      if (sts.p[i] == '\n')
        sbuf_puts(&esc, "\\n");
      else
        sbuf_append(&esc, &sts.p[i], 1);
    }
    snprintf(why, why_size,
             "The MAC signature found in the HTTP request is not the same as any computed "
             "signature. Server used following string to sign: '%s'.",
             esc.p);
    sbuf_free(&esc);
  }
  sbuf_free(&sts);
  return ok ? TS_AUTH_OK : TS_AUTH_FAILED;
}

ts_auth_result ts_auth_check(const ts_config *cfg, const ts_request *r, char *why,
                             size_t why_size) {
  if (cfg->key_len == 0 && cfg->sas_sig == NULL)
    return TS_AUTH_OK;
  sbuf sig;
  sbuf_init(&sig);
  bool has_sig = ts_req_query(r, "sig", &sig);
  if (has_sig) {
    bool ok = cfg->sas_sig != NULL && strcmp(sig.p, cfg->sas_sig) == 0;
    sbuf_free(&sig);
    if (ok)
      return TS_AUTH_OK;
    snprintf(why, why_size, "Signature did not match (SAS)");
    return TS_AUTH_FAILED;
  }
  sbuf_free(&sig);
  const char *authz = ts_req_header(r, "Authorization");
  if (authz != NULL && cfg->key_len > 0)
    return check_shared_key(cfg, r, authz, why, why_size);
  snprintf(why, why_size, "Server failed to authenticate the request: no credentials");
  return TS_AUTH_FAILED;
}
