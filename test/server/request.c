/* Request accessors: headers by name, query parameters, percent-decoding. */
#include "server.h"

#include <string.h>
#include <strings.h>

const char *ts_req_header(const ts_request *r, const char *name) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name.p, name) == 0)
      return r->headers[i].value.p ? r->headers[i].value.p : "";
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

void ts_url_decode(sbuf *out, const char *src, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (c == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
      char d = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
      sbuf_append(out, &d, 1);
      i += 2;
    } else if (c == '+') {
      /* Azure's query strings follow form encoding: '+' is a space. */
      sbuf_append(out, " ", 1);
    } else {
      sbuf_append(out, &c, 1);
    }
  }
  if (out->p == NULL)
    sbuf_append(out, "", 0);
}

bool ts_req_query(const ts_request *r, const char *name, sbuf *out) {
  const char *q = r->query.p ? r->query.p : "";
  size_t nlen = strlen(name);
  while (*q != '\0') {
    size_t plen = strcspn(q, "&");
    const char *eq = memchr(q, '=', plen);
    size_t klen = eq ? (size_t)(eq - q) : plen;
    sbuf key;
    sbuf_init(&key);
    ts_url_decode(&key, q, klen);
    bool match = key.len == nlen && strncasecmp(key.p, name, nlen) == 0;
    sbuf_free(&key);
    if (match) {
      sbuf_clear(out);
      if (eq != NULL)
        ts_url_decode(out, eq + 1, plen - klen - 1);
      else
        sbuf_append(out, "", 0);
      return true;
    }
    q += plen;
    if (*q == '&')
      q++;
  }
  return false;
}
