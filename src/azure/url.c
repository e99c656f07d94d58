/* Blob URLs: parsing destinations, joining endpoints, and printing them
 * without secrets. Endpoint styles per the REST reference's request URIs
 * (put-page: "https://myaccount.blob.core.windows.net/mycontainer/myblob",
 * emulated "http://127.0.0.1:10000/devstoreaccount1/mycontainer/myblob"). */
#include "azure/azure.h"

#include "azure/internal.h"
#include "util/alloc.h"
#include "util/secret.h"

#include <string.h>

long vhdup__az_url_decode(const char *s, size_t len, char *out, size_t out_size) {
  size_t o = 0;
  if (out_size < len + 1)
    return VHDUP_ELIMIT;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= len)
        return VHDUP_EFORMAT;
      int hi = vhdup__az_hexval(s[i + 1]), lo = vhdup__az_hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return VHDUP_EFORMAT;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    out[o++] = c;
  }
  out[o] = '\0';
  return (long)o;
}

void vhdup__az_url_free(vhdup__az_url *u) {
  if (u == NULL)
    return;
  vhdup__free(u->scheme);
  vhdup__free(u->host);
  vhdup__free(u->account);
  vhdup__free(u->container);
  vhdup__free(u->blob);
  vhdup__secret_free(u->sas); /* the query may hold a SAS signature */
  memset(u, 0, sizeof(*u));
}

static int is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Characters that may stand unencoded in a path (RFC 3986 pchar and '/'). */
static int path_char_ok(char c) {
  return is_alnum(c) || (c != '\0' && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

static int is_ipv4(const char *h) {
  int parts = 0, digits = 0;
  unsigned v = 0;
  for (const char *p = h;; p++) {
    if (*p >= '0' && *p <= '9') {
      v = v * 10 + (unsigned)(*p - '0');
      if (++digits > 3 || v > 255)
        return 0;
    } else if (*p == '.' || *p == '\0') {
      if (digits == 0)
        return 0;
      parts++;
      digits = 0;
      v = 0;
      if (*p == '\0')
        break;
    } else {
      return 0;
    }
  }
  return parts == 4;
}

static int is_loopback(const char *host) {
  return strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
         (is_ipv4(host) && strncmp(host, "127.", 4) == 0);
}

/* Copies path[0..len) percent-encoding what may not appear raw; refuses bad
 * escapes and dot segments (curl would collapse them, changing the path
 * that was signed). */
static int encode_path(const char *p, size_t len, char **out, vhdup__err *err) {
  static const char hex[] = "0123456789ABCDEF";
  vhdup__az_sb sb = {0};
  size_t seg_start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || p[i] == '/') {
      size_t sl = i - seg_start;
      if ((sl == 1 && p[seg_start] == '.') ||
          (sl == 2 && p[seg_start] == '.' && p[seg_start + 1] == '.')) {
        vhdup__az_sb_free(&sb);
        return vhdup__errf(err, VHDUP_EURL, "URL path has a '.' or '..' segment");
      }
      seg_start = i + 1;
      if (i == len)
        break;
    }
    char c = p[i];
    if (c == '%') {
      if (i + 2 >= len || vhdup__az_hexval(p[i + 1]) < 0 || vhdup__az_hexval(p[i + 2]) < 0) {
        vhdup__az_sb_free(&sb);
        return vhdup__errf(err, VHDUP_EURL, "URL path has a malformed %%-escape at offset %zu", i);
      }
      vhdup__az_sb_addn(&sb, p + i, 3);
      i += 2;
    } else if (path_char_ok(c)) {
      vhdup__az_sb_addc(&sb, c);
    } else {
      unsigned char u = (unsigned char)c;
      char e[3] = {'%', hex[u >> 4], hex[u & 15]};
      vhdup__az_sb_addn(&sb, e, 3);
    }
  }
  *out = vhdup__az_sb_take(&sb);
  return *out == NULL ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory") : 0;
}

static int parse(const char *url, unsigned flags, vhdup__az_url *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  const char *p = url;
  int https;
  if (vhdup__az_strncaseeq(p, "https://", 8)) {
    https = 1;
    p += 8;
  } else if (vhdup__az_strncaseeq(p, "http://", 7)) {
    https = 0;
    p += 7;
  } else {
    return vhdup__errf(err, VHDUP_EURL,
                       "URL must start with https:// (or http:// for a local "
                       "emulator)");
  }
  /* Spaces and non-ASCII bytes in the path are percent-encoded below; in
   * the host and the query (a SAS, kept verbatim) they are refused. */
  const char *qmark = strchr(url, '?');
  for (const char *q = url; *q != '\0'; q++) {
    unsigned char c = (unsigned char)*q;
    if (c < 0x20 || c == 0x7f || ((c == 0x20 || c >= 0x80) && qmark != NULL && q > qmark))
      return vhdup__errf(err, VHDUP_EURL,
                         "URL contains a space, control or non-ASCII character at offset %zu "
                         "(percent-encode it)",
                         (size_t)(q - url));
    if (c == '#')
      return vhdup__errf(err, VHDUP_EURL, "URL has a '#' fragment, which Azure does not take");
  }
  const char *auth = p;
  size_t alen = strcspn(auth, "/?");
  if (memchr(auth, '@', alen) != NULL)
    return vhdup__errf(err, VHDUP_EURL,
                       "URL has user information ('@' before the host); "
                       "give credentials separately");
  const char *hend;
  if (alen > 0 && auth[0] == '[') {
    const char *rb = memchr(auth, ']', alen);
    if (rb == NULL)
      return vhdup__errf(err, VHDUP_EURL, "URL has an unterminated IPv6 address");
    for (const char *q = auth + 1; q < rb; q++)
      if (!(vhdup__az_hexval(*q) >= 0 || *q == ':' || *q == '.'))
        return vhdup__errf(err, VHDUP_EURL, "URL has a malformed IPv6 address");
    hend = rb + 1;
  } else {
    hend = auth;
    while (hend < auth + alen && *hend != ':')
      hend++;
  }
  size_t hlen = (size_t)(hend - auth);
  if (hlen == 0 || hlen > 253)
    return vhdup__errf(err, VHDUP_EURL, "URL has no host name");
  if (auth[0] != '[')
    for (size_t i = 0; i < hlen; i++)
      if (!(is_alnum(auth[i]) || auth[i] == '-' || auth[i] == '.'))
        return vhdup__errf(err, VHDUP_EURL, "URL host has an invalid character at offset %zu",
                           (size_t)(auth + i - url));
  unsigned port = https ? 443 : 80;
  int port_explicit = 0;
  if (hend < auth + alen) {
    if (*hend != ':')
      return vhdup__errf(err, VHDUP_EURL, "URL has garbage after the host");
    const char *q = hend + 1;
    if (q == auth + alen)
      return vhdup__errf(err, VHDUP_EURL, "URL has an empty port");
    port = 0;
    for (; q < auth + alen; q++) {
      if (*q < '0' || *q > '9')
        return vhdup__errf(err, VHDUP_EURL, "URL port is not a number");
      port = port * 10 + (unsigned)(*q - '0');
      if (port > 65535)
        return vhdup__errf(err, VHDUP_EURL, "URL port is out of range");
    }
    if (port == 0)
      return vhdup__errf(err, VHDUP_EURL, "URL port is out of range");
    port_explicit = 1;
  }
  out->host = vhdup__strndup(auth, hlen);
  out->scheme = vhdup__strdup(https ? "https" : "http");
  if (out->host == NULL || out->scheme == NULL)
    goto oom;
  for (char *h = out->host; *h != '\0'; h++)
    *h = vhdup__az_lower(*h);
  out->port = (uint16_t)port;
  out->port_explicit = port_explicit;

  if (!https && !(flags & VHDUP__AZ_URL_ALLOW_HTTP) && !is_loopback(out->host)) {
    /* The host is not a secret (the SAS is in the query, never quoted). */
    vhdup__errf(err, VHDUP_EURL,
                "refusing plain http:// to %s, which is not a loopback address: the data and "
                "the credential would cross the network unencrypted (use https://, or "
                "--allow-http / allow_http: true if you mean it)",
                out->host);
    vhdup__az_url_free(out);
    return VHDUP_EURL;
  }

  /* IP-style endpoints put the account in the path (the SDKs' rule: an IP
   * host, or one of the emulator's ports). */
  out->path_style = out->host[0] == '[' || is_ipv4(out->host) ||
                    strcmp(out->host, "localhost") == 0 ||
                    (port_explicit && port >= 10000 && port <= 10002);

  const char *path = auth + alen;
  size_t plen = strcspn(path, "?");
  const char *query = path[plen] == '?' ? path + plen + 1 : NULL;
  /* Skip the leading '/' and split off the account (path style). */
  const char *seg = plen > 0 ? path + 1 : path;
  const char *pend = path + plen;
  if (out->path_style) {
    const char *slash = memchr(seg, '/', (size_t)(pend - seg));
    size_t l = slash ? (size_t)(slash - seg) : (size_t)(pend - seg);
    if (l == 0) {
      vhdup__az_url_free(out);
      return vhdup__errf(err, VHDUP_EURL,
                         "URL has no account name in its path (emulator style is "
                         "http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB)");
    }
    out->account = vhdup__strndup(seg, l);
    seg = slash ? slash + 1 : pend;
  } else {
    size_t l = strcspn(out->host, ".");
    out->account = vhdup__strndup(out->host, l);
  }
  if (out->account == NULL)
    goto oom;
  {
    const char *slash = seg < pend ? memchr(seg, '/', (size_t)(pend - seg)) : NULL;
    size_t l = slash ? (size_t)(slash - seg) : (size_t)(pend - seg);
    if (l == 0) {
      vhdup__az_url_free(out);
      return vhdup__errf(err, VHDUP_EURL, "URL names no container (expected .../CONTAINER/BLOB)");
    }
    int rc = encode_path(seg, l, &out->container, err);
    if (rc != 0) {
      vhdup__az_url_free(out);
      return rc;
    }
    const char *b = slash ? slash + 1 : pend;
    if (b < pend) {
      rc = encode_path(b, (size_t)(pend - b), &out->blob, err);
      if (rc != 0) {
        vhdup__az_url_free(out);
        return rc;
      }
    } else {
      vhdup__az_url_free(out);
      return vhdup__errf(err, VHDUP_EURL, "URL names no blob (expected .../CONTAINER/BLOB)");
    }
  }
  if (query != NULL && *query != '\0') {
    out->sas = vhdup__strdup(query);
    if (out->sas == NULL)
      goto oom;
  }
  return 0;
oom:
  vhdup__az_url_free(out);
  return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
}

int vhdup__az_url_parse(const char *url, unsigned flags, vhdup__az_url *out, vhdup__err *err) {
  return parse(url, flags, out, err);
}

int vhdup__az_url_join(const char *endpoint, const char *container_and_blob, unsigned flags,
                       vhdup__az_url *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  if (strchr(endpoint, '?') != NULL)
    return vhdup__errf(err, VHDUP_EURL, "endpoint must not carry a query");
  size_t el = strlen(endpoint);
  while (el > 0 && endpoint[el - 1] == '/')
    el--;
  while (*container_and_blob == '/')
    container_and_blob++;
  vhdup__az_sb sb = {0};
  vhdup__az_sb_addn(&sb, endpoint, el);
  vhdup__az_sb_addc(&sb, '/');
  vhdup__az_sb_add(&sb, container_and_blob);
  char *s = vhdup__az_sb_take(&sb);
  if (s == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  int rc = parse(s, flags, out, err);
  vhdup__free(s);
  return rc;
}

int vhdup__az_query_has_sig(const char *query) {
  if (query == NULL)
    return 0;
  return vhdup__has_sig(query, strcspn(query, "#"));
}
