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

/* Characters that may stand unencoded in a path (RFC 3986 pchar and '/'). */
static int path_char_ok(char c) {
  return vhdup__az_alnum(c) || (c != '\0' && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
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

/* "https://" or "http://" (any case); *rest is what follows. */
static int parse_scheme(const char *url, int *https, const char **rest, vhdup__err *err) {
  if (vhdup__az_strncaseeq(url, "https://", 8)) {
    *https = 1;
    *rest = url + 8;
    return 0;
  }
  if (vhdup__az_strncaseeq(url, "http://", 7)) {
    *https = 0;
    *rest = url + 7;
    return 0;
  }
  return vhdup__errf(err, VHDUP_EURL,
                     "URL must start with https:// (or http:// for a local emulator)");
}

/* Spaces and non-ASCII bytes in the path are percent-encoded later; in the
 * host and the query (a SAS, kept verbatim) they are refused. Controls and
 * fragments are refused anywhere. */
static int check_url_chars(const char *url, vhdup__err *err) {
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
  return 0;
}

/* The authority auth[0..alen) split into host and port: the host in
 * [host, host + host_len), the port explicit or the scheme's default. */
typedef struct authority {
  const char *host;
  size_t host_len;
  unsigned port;
  int port_explicit;
} authority;

/* Finds where the host ends: after the ']' of an IPv6 literal, else at the
 * first ':'. Checks the literal's characters. */
static int find_host_end(const char *auth, size_t alen, const char **hend, vhdup__err *err) {
  if (alen > 0 && auth[0] == '[') {
    const char *rb = memchr(auth, ']', alen);
    if (rb == NULL)
      return vhdup__errf(err, VHDUP_EURL, "URL has an unterminated IPv6 address");
    for (const char *q = auth + 1; q < rb; q++)
      if (!(vhdup__az_hexval(*q) >= 0 || *q == ':' || *q == '.'))
        return vhdup__errf(err, VHDUP_EURL, "URL has a malformed IPv6 address");
    *hend = rb + 1;
    return 0;
  }
  const char *e = auth;
  while (e < auth + alen && *e != ':')
    e++;
  *hend = e;
  return 0;
}

/* ":PORT" in [p, end), decimal 1-65535. */
static int parse_port(const char *p, const char *end, unsigned *port, vhdup__err *err) {
  if (*p != ':')
    return vhdup__errf(err, VHDUP_EURL, "URL has garbage after the host");
  const char *q = p + 1;
  if (q == end)
    return vhdup__errf(err, VHDUP_EURL, "URL has an empty port");
  unsigned v = 0;
  for (; q < end; q++) {
    if (*q < '0' || *q > '9')
      return vhdup__errf(err, VHDUP_EURL, "URL port is not a number");
    v = v * 10 + (unsigned)(*q - '0');
    if (v > 65535)
      return vhdup__errf(err, VHDUP_EURL, "URL port is out of range");
  }
  if (v == 0)
    return vhdup__errf(err, VHDUP_EURL, "URL port is out of range");
  *port = v;
  return 0;
}

/* The authority of url (starting at auth, alen bytes): no user information,
 * a host name or IP literal, an optional port. Offsets in messages count
 * from the start of url. */
static int parse_authority(const char *url, const char *auth, size_t alen, int https, authority *a,
                           vhdup__err *err) {
  if (memchr(auth, '@', alen) != NULL)
    return vhdup__errf(err, VHDUP_EURL,
                       "URL has user information ('@' before the host); "
                       "give credentials separately");
  const char *hend = auth;
  int rc = find_host_end(auth, alen, &hend, err);
  if (rc != 0)
    return rc;
  size_t hlen = (size_t)(hend - auth);
  if (hlen == 0 || hlen > 253)
    return vhdup__errf(err, VHDUP_EURL, "URL has no host name");
  if (auth[0] != '[')
    for (size_t i = 0; i < hlen; i++)
      if (!vhdup__az_host_char(auth[i]))
        return vhdup__errf(err, VHDUP_EURL, "URL host has an invalid character at offset %zu",
                           (size_t)(auth + i - url));
  a->host = auth;
  a->host_len = hlen;
  a->port = https ? 443 : 80;
  a->port_explicit = 0;
  if (hend < auth + alen) {
    rc = parse_port(hend, auth + alen, &a->port, err);
    if (rc != 0)
      return rc;
    a->port_explicit = 1;
  }
  return 0;
}

/* Fills scheme, host (lowercased), port; refuses plain http to anything but
 * a loopback address unless the caller allows it. */
static int set_origin(vhdup__az_url *out, int https, const authority *a, unsigned flags,
                      vhdup__err *err) {
  out->host = vhdup__strndup(a->host, a->host_len);
  out->scheme = vhdup__strdup(https ? "https" : "http");
  if (out->host == NULL || out->scheme == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  for (char *h = out->host; *h != '\0'; h++)
    *h = vhdup__az_lower(*h);
  out->port = (uint16_t)a->port;
  out->port_explicit = a->port_explicit;
  if (!https && !(flags & VHDUP__AZ_URL_ALLOW_HTTP) && !is_loopback(out->host))
    /* The host is not a secret (the SAS is in the query, never quoted). */
    return vhdup__errf(err, VHDUP_EURL,
                       "refusing plain http:// to %s, which is not a loopback address: the data "
                       "and the credential would cross the network unencrypted (use https://, or "
                       "--allow-http / allow_http: true if you mean it)",
                       out->host);
  return 0;
}

/* IP-style endpoints put the account in the path (the SDKs' rule: an IP
 * host, or one of the emulator's ports). */
static int is_path_style(const vhdup__az_url *u) {
  return u->host[0] == '[' || is_ipv4(u->host) || strcmp(u->host, "localhost") == 0 ||
         (u->port_explicit && u->port >= 10000 && u->port <= 10002);
}

/* The account: the path's first segment (path style; *seg moves past it) or
 * the host's first label. */
static int set_account(vhdup__az_url *out, const char **seg, const char *pend, vhdup__err *err) {
  if (out->path_style) {
    const char *slash = memchr(*seg, '/', (size_t)(pend - *seg));
    size_t l = slash ? (size_t)(slash - *seg) : (size_t)(pend - *seg);
    if (l == 0)
      return vhdup__errf(err, VHDUP_EURL,
                         "URL has no account name in its path (emulator style is "
                         "http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB)");
    out->account = vhdup__strndup(*seg, l);
    *seg = slash ? slash + 1 : pend;
  } else {
    out->account = vhdup__strndup(out->host, strcspn(out->host, "."));
  }
  return out->account == NULL ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory") : 0;
}

/* "CONTAINER/BLOB" in [seg, pend), each encoded; both must be non-empty. */
static int set_container_and_blob(vhdup__az_url *out, const char *seg, const char *pend,
                                  vhdup__err *err) {
  const char *slash = seg < pend ? memchr(seg, '/', (size_t)(pend - seg)) : NULL;
  size_t l = slash ? (size_t)(slash - seg) : (size_t)(pend - seg);
  if (l == 0)
    return vhdup__errf(err, VHDUP_EURL, "URL names no container (expected .../CONTAINER/BLOB)");
  int rc = encode_path(seg, l, &out->container, err);
  if (rc != 0)
    return rc;
  const char *b = slash ? slash + 1 : pend;
  if (b >= pend)
    return vhdup__errf(err, VHDUP_EURL, "URL names no blob (expected .../CONTAINER/BLOB)");
  return encode_path(b, (size_t)(pend - b), &out->blob, err);
}

/* Path (account, container, blob) and query of the part after the
 * authority; the query, if not empty, is kept verbatim as the SAS. */
static int set_path_and_query(vhdup__az_url *out, const char *path, vhdup__err *err) {
  size_t plen = strcspn(path, "?");
  const char *query = path[plen] == '?' ? path + plen + 1 : NULL;
  const char *seg = plen > 0 ? path + 1 : path; /* past the leading '/' */
  const char *pend = path + plen;
  int rc = set_account(out, &seg, pend, err);
  if (rc == 0)
    rc = set_container_and_blob(out, seg, pend, err);
  if (rc == 0 && query != NULL && *query != '\0') {
    out->sas = vhdup__strdup(query);
    if (out->sas == NULL)
      rc = vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  return rc;
}

static int parse(const char *url, unsigned flags, vhdup__az_url *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  int https = 0;
  const char *auth = url;
  int rc = parse_scheme(url, &https, &auth, err);
  if (rc == 0)
    rc = check_url_chars(url, err);
  if (rc != 0)
    return rc;
  size_t alen = strcspn(auth, "/?");
  authority a = {0};
  rc = parse_authority(url, auth, alen, https, &a, err);
  if (rc != 0)
    return rc;
  rc = set_origin(out, https, &a, flags, err);
  if (rc == 0) {
    out->path_style = is_path_style(out);
    rc = set_path_and_query(out, auth + alen, err);
  }
  if (rc != 0)
    vhdup__az_url_free(out);
  return rc;
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
