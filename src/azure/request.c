/* Request descriptions for the Blob operations vhdup uses. Each builder
 * produces method, URL (operation query, ?timeout, then the SAS verbatim)
 * and headers (x-ms-date, x-ms-version, x-ms-client-request-id, the
 * operation's own, and Authorization for Shared Key). */
#include "azure/azure.h"

#include "azure/internal.h"
#include "util/secret.h"
#include "util/alloc.h"
#include "util/crypto.h"

#include <string.h>
#include <time.h>

static int valid_version(const char *v) {
  /* "YYYY-MM-DD" */
  if (strlen(v) != 10 || v[4] != '-' || v[7] != '-')
    return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (v[i] < '0' || v[i] > '9'))
      return 0;
  return 1;
}

static char *dup_or_null(const char *s, int *oom) {
  if (s == NULL)
    return NULL;
  char *d = vhdup__strdup(s);
  if (d == NULL)
    *oom = 1;
  return d;
}

/* The value of query parameter name in q (raw, not decoded), or NULL. */
static const char *query_param(const char *q, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (const char *p = q; p != NULL && *p != '\0';) {
    size_t l = strcspn(p, "&");
    if (l > nl && p[nl] == '=' && vhdup__az_strncaseeq(p, name, nl)) {
      *len = l - nl - 1;
      return p + nl + 1;
    }
    p = p[l] == '&' ? p + l + 1 : NULL;
  }
  return NULL;
}

int vhdup__az_sas_signed(const char *query) {
  size_t l;
  return query_param(query, "sig", &l) != NULL && l > 0;
}

void vhdup__az_blob_free(vhdup__az_blob *b) {
  if (b == NULL)
    return;
  vhdup__az_url_free(&b->url);
  vhdup__free(b->sign_account);
  vhdup__secret_free(b->sas);
  vhdup__free(b->client_id_prefix);
  vhdup__wipe(b, sizeof(*b));
}

/* The options' version and client request id prefix, or their defaults,
 * checked. */
static int check_opts(const vhdup__az_blob_opts *opts, const char **version, const char **prefix,
                      vhdup__err *err) {
  *version = opts->version ? opts->version : VHDUP__AZ_DEFAULT_VERSION;
  if (!valid_version(*version))
    return vhdup__errf(err, VHDUP_EINVAL, "service version '%.32s' is not YYYY-MM-DD", *version);
  *prefix = opts->client_id_prefix ? opts->client_id_prefix : "vhdup";
  if (strlen(*prefix) > 512)
    return vhdup__errf(err, VHDUP_EINVAL, "client request id prefix is too long");
  for (const char *c = *prefix; *c != '\0'; c++)
    if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
      return vhdup__errf(err, VHDUP_EINVAL, "client request id prefix has a bad character");
  return 0;
}

static void copy_url(vhdup__az_url *to, const vhdup__az_url *from, int *oom) {
  to->scheme = dup_or_null(from->scheme, oom);
  to->host = dup_or_null(from->host, oom);
  to->port = from->port;
  to->port_explicit = from->port_explicit;
  to->path_style = from->path_style;
  to->account = dup_or_null(from->account, oom);
  to->container = dup_or_null(from->container, oom);
  to->blob = dup_or_null(from->blob, oom);
}

/* Shared Key: the resource signed is "/" + the credential's account + the
 * path, so a key for another account than the URL's can only fail; say so
 * before sending. */
static int use_key(vhdup__az_blob *b, const vhdup__az_url *url, const vhdup__az_cred *cred,
                   int *oom, vhdup__err *err) {
  int standard_host = !url->path_style && url->account != NULL &&
                      strncmp(url->host + strlen(url->account), ".blob.", 6) == 0;
  if ((url->path_style || standard_host) && strcmp(url->account, cred->account) != 0)
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "the account key is for account '%s' but the URL names account '%s'",
                       cred->account, url->account);
  b->auth = VHDUP__AZ_AUTH_SHARED_KEY;
  b->sign_account = dup_or_null(cred->account, oom);
  memcpy(b->key, cred->key, cred->key_len);
  b->key_len = cred->key_len;
  return 0;
}

/* The authorisation, resolved once: the URL's SAS, else the credential's
 * key or SAS. */
static int set_auth(vhdup__az_blob *b, const vhdup__az_url *url, const vhdup__az_cred *cred,
                    int *oom, vhdup__err *err) {
  if (url->sas != NULL) {
    if (!vhdup__az_sas_signed(url->sas))
      return vhdup__errf(err, VHDUP_EURL, "URL has a query that is not a SAS (no sig field)");
    b->auth = VHDUP__AZ_AUTH_SAS;
    b->sas = dup_or_null(url->sas, oom);
    return 0;
  }
  if (cred != NULL && cred->kind == VHDUP__AZ_AUTH_SHARED_KEY)
    return use_key(b, url, cred, oom, err);
  if (cred != NULL && cred->kind == VHDUP__AZ_AUTH_SAS) {
    b->auth = VHDUP__AZ_AUTH_SAS;
    b->sas = dup_or_null(cred->sas, oom);
    return 0;
  }
  return vhdup__errf(err, VHDUP_ECREDENTIAL,
                     "no credential: give a SAS URL, or set AZURE_STORAGE_CONNECTION_STRING, "
                     "or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or "
                     "AZURE_STORAGE_SAS_TOKEN");
}

/* x-ms-version is the configured version; the applied one is the SAS's sv
 * when there is one (previous-azure-storage-service-versions). */
static int set_versions(vhdup__az_blob *b, const char *version, vhdup__err *err) {
  memcpy(b->header_version, version, 11);
  memcpy(b->version, version, 11);
  size_t svl;
  const char *sv = b->sas ? query_param(b->sas, "sv", &svl) : NULL;
  if (sv == NULL)
    return 0;
  if (svl != 10)
    return vhdup__errf(err, VHDUP_EURL, "SAS has a malformed sv (signed version) field");
  memcpy(b->version, sv, 10);
  b->version[10] = '\0';
  if (!valid_version(b->version))
    return vhdup__errf(err, VHDUP_EURL, "SAS has a malformed sv (signed version) field");
  b->version_from_sas = 1;
  return 0;
}

int vhdup__az_blob_init(vhdup__az_blob *b, const vhdup__az_url *url, const vhdup__az_cred *cred,
                        const vhdup__az_blob_opts *opts, vhdup__err *err) {
  static const vhdup__az_blob_opts no_opts;
  memset(b, 0, sizeof(*b));
  if (opts == NULL)
    opts = &no_opts;
  const char *version = NULL, *prefix = NULL;
  int rc = check_opts(opts, &version, &prefix, err);
  if (rc != 0)
    return rc;
  int oom = 0;
  copy_url(&b->url, url, &oom);
  b->client_id_prefix = dup_or_null(prefix, &oom);
  if (!oom)
    rc = set_auth(b, url, cred, &oom, err);
  if (rc == 0 && oom)
    rc = vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  if (rc == 0)
    rc = set_versions(b, version, err);
  if (rc != 0) {
    vhdup__az_blob_free(b);
    return rc;
  }
  b->timeout_s = opts->timeout_s;
  b->clock = opts->clock;
  b->clock_ctx = opts->clock_ctx;
  b->next_request = 1;
  return 0;
}

int vhdup__az_blob_version_at_least(const vhdup__az_blob *b, const char *min) {
  /* ISO dates compare as strings. */
  return strcmp(b->version, min) >= 0;
}

static void add_base(vhdup__az_sb *sb, const vhdup__az_blob *b, int with_blob) {
  vhdup__az_sb_add(sb, b->url.scheme);
  vhdup__az_sb_add(sb, "://");
  vhdup__az_sb_add(sb, b->url.host);
  if (b->url.port_explicit) {
    vhdup__az_sb_addc(sb, ':');
    vhdup__az_sb_addu64(sb, b->url.port);
  }
  vhdup__az_sb_addc(sb, '/');
  if (b->url.path_style) {
    vhdup__az_sb_add(sb, b->url.account);
    vhdup__az_sb_addc(sb, '/');
  }
  vhdup__az_sb_add(sb, b->url.container);
  if (with_blob && b->url.blob != NULL) {
    vhdup__az_sb_addc(sb, '/');
    vhdup__az_sb_add(sb, b->url.blob);
  }
}

char *vhdup__az_blob_display_url(const vhdup__az_blob *b) {
  vhdup__az_sb sb = {0};
  add_base(&sb, b, 1);
  if (b->sas != NULL) {
    vhdup__az_sb_addc(&sb, '?');
    vhdup__az_sb_add(&sb, b->sas);
  }
  char *s = vhdup__az_sb_take(&sb);
  if (s == NULL)
    return NULL;
  char *r = vhdup__redact_dup(s);
  vhdup__secret_free(s);
  return r;
}

void vhdup__az_request_free(vhdup__az_request *r) {
  if (r == NULL)
    return;
  vhdup__secret_free(r->url);
  for (size_t i = 0; i < r->nheaders; i++) {
    vhdup__free(r->headers[i].name);
    vhdup__free(r->headers[i].value);
  }
  vhdup__free(r->headers);
  memset(r, 0, sizeof(*r));
}

const char *vhdup__az_request_header(const vhdup__az_request *r, const char *name) {
  return vhdup__az_header_find(r->headers, r->nheaders, name);
}

static int add_header(vhdup__az_request *r, const char *name, const char *value) {
  if (r->nheaders == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    vhdup__az_header *h = vhdup__realloc(r->headers, cap * sizeof(*h));
    if (h == NULL)
      return VHDUP_ENOMEM;
    r->headers = h;
    r->cap = cap;
  }
  char *n = vhdup__strdup(name), *v = vhdup__strdup(value);
  if (n == NULL || v == NULL) {
    vhdup__free(n);
    vhdup__free(v);
    return VHDUP_ENOMEM;
  }
  r->headers[r->nheaders].name = n;
  r->headers[r->nheaders].value = v;
  r->nheaders++;
  return 0;
}

static int add_header_u64(vhdup__az_request *r, const char *name, uint64_t v) {
  char buf[24];
  size_t i = sizeof(buf) - 1;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return add_header(r, name, buf + i);
}

static int add_range(vhdup__az_request *r, uint64_t offset, uint64_t len) {
  vhdup__az_sb sb = {0};
  vhdup__az_sb_add(&sb, "bytes=");
  vhdup__az_sb_addu64(&sb, offset);
  vhdup__az_sb_addc(&sb, '-');
  vhdup__az_sb_addu64(&sb, offset + len - 1);
  char *s = vhdup__az_sb_take(&sb);
  if (s == NULL)
    return VHDUP_ENOMEM;
  int rc = add_header(r, "x-ms-range", s);
  vhdup__free(s);
  return rc;
}

static int client_id_ok(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > VHDUP__AZ_CLIENT_ID_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)id[i] < 0x20 || (unsigned char)id[i] > 0x7e)
      return 0;
  return 1;
}

/* Starts a request: URL with the operation's query (already encoded), then
 * timeout and SAS; the headers every request carries. */
static int begin(vhdup__az_blob *b, const char *method, int with_blob, const char *op_query,
                 const char *client_id, vhdup__az_request *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  out->method = method;
  if (client_id != NULL) {
    if (!client_id_ok(client_id))
      return vhdup__errf(err, VHDUP_ELIMIT,
                         "client request id must be 1-1024 printable ASCII characters");
    memcpy(out->client_request_id, client_id, strlen(client_id) + 1);
  } else {
    vhdup__az_sb sb = {0};
    vhdup__az_sb_add(&sb, b->client_id_prefix);
    vhdup__az_sb_addc(&sb, '-');
    vhdup__az_sb_addu64(&sb, b->next_request++);
    char *id = vhdup__az_sb_take(&sb);
    if (id == NULL)
      return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
    memcpy(out->client_request_id, id, strlen(id) + 1);
    vhdup__free(id);
  }
  vhdup__az_sb sb = {0};
  add_base(&sb, b, with_blob);
  char sep = '?';
  if (op_query != NULL) {
    vhdup__az_sb_addc(&sb, sep);
    vhdup__az_sb_add(&sb, op_query);
    sep = '&';
  }
  if (b->timeout_s > 0) {
    vhdup__az_sb_addc(&sb, sep);
    vhdup__az_sb_add(&sb, "timeout=");
    vhdup__az_sb_addu64(&sb, b->timeout_s);
    sep = '&';
  }
  if (b->sas != NULL) {
    vhdup__az_sb_addc(&sb, sep);
    vhdup__az_sb_add(&sb, b->sas);
  }
  out->url = vhdup__az_sb_take(&sb);
  if (out->url == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");

  char date[30];
  int64_t now = b->clock ? b->clock(b->clock_ctx) : (int64_t)time(NULL);
  vhdup__az_rfc1123(now, date);
  if (add_header(out, "x-ms-date", date) != 0 ||
      add_header(out, "x-ms-version", b->header_version) != 0 ||
      add_header(out, "x-ms-client-request-id", out->client_request_id) != 0)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  return 0;
}

static int finish(vhdup__az_blob *b, vhdup__az_request *out, vhdup__err *err) {
  if (b->auth != VHDUP__AZ_AUTH_SHARED_KEY)
    return 0;
  char *auth = NULL;
  int rc = vhdup__az_shared_key_auth(out->method, out->url, out->headers, out->nheaders,
                                     out->content_length, b->sign_account, b->key, b->key_len,
                                     &auth, err);
  if (rc != 0)
    return rc;
  rc = add_header(out, "Authorization", auth);
  vhdup__free(auth);
  return rc != 0 ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory") : 0;
}

#define CHECK(expr)                                                                                \
  do {                                                                                             \
    int rc_ = (expr);                                                                              \
    if (rc_ != 0)                                                                                  \
      return rc_ == VHDUP_ENOMEM ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory") : rc_;          \
  } while (0)

/* A feature the applied service version may be too old for; the message
 * says where that version came from (a SAS's sv overrides x-ms-version). */
static int need_version(const vhdup__az_blob *b, const char *min, const char *feature,
                        const char *advice, vhdup__err *err) {
  if (vhdup__az_blob_version_at_least(b, min))
    return 0;
  return vhdup__errf(err, VHDUP_EUNSUPPORTED,
                     "%s needs service version %s or later (this request uses %s%s)%s", feature,
                     min, b->version, b->version_from_sas ? ", set by the SAS" : "", advice);
}

static int check_pages(uint64_t offset, uint64_t len, uint64_t max_len, const char *what,
                       vhdup__err *err) {
  if (len == 0 || offset % VHDUP__AZ_PAGE != 0 || len % VHDUP__AZ_PAGE != 0)
    return vhdup__errf(err, VHDUP_EINVAL,
                       "%s: range at %llu length %llu is not a non-empty multiple of 512 bytes",
                       what, (unsigned long long)offset, (unsigned long long)len);
  if (len > max_len || offset > VHDUP__AZ_MAX_BLOB_SIZE - len)
    return vhdup__errf(err, VHDUP_EINVAL, "%s: range at %llu length %llu is too large", what,
                       (unsigned long long)offset, (unsigned long long)len);
  return 0;
}

int vhdup__az_req_create_page_blob(vhdup__az_blob *b, uint64_t size, int if_none_match,
                                   const char *client_id, vhdup__az_request *out, vhdup__err *err) {
  if (size % VHDUP__AZ_PAGE != 0 || size > VHDUP__AZ_MAX_BLOB_SIZE) {
    memset(out, 0, sizeof(*out));
    return vhdup__errf(err, VHDUP_EINVAL,
                       "page blob size %llu is not a multiple of 512 up to 8 TiB",
                       (unsigned long long)size);
  }
  CHECK(begin(b, "PUT", 1, NULL, client_id, out, err));
  CHECK(add_header(out, "x-ms-blob-type", "PageBlob"));
  CHECK(add_header_u64(out, "x-ms-blob-content-length", size));
  if (if_none_match)
    CHECK(add_header(out, "If-None-Match", "*"));
  out->content_length = 0;
  return finish(b, out, err);
}

int vhdup__az_req_put_page(vhdup__az_blob *b, uint64_t offset, uint64_t len,
                           const vhdup__az_sum *sum, const char *client_id, vhdup__az_request *out,
                           vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  CHECK(check_pages(offset, len, VHDUP__AZ_MAX_PUT_PAGE, "Put Page", err));
  if (sum != NULL && sum->kind == VHDUP__AZ_SUM_CRC64)
    CHECK(need_version(b, VHDUP__AZ_VERSION_CRC64, "x-ms-content-crc64", "; use MD5", err));
  CHECK(begin(b, "PUT", 1, "comp=page", client_id, out, err));
  CHECK(add_range(out, offset, len));
  CHECK(add_header(out, "x-ms-page-write", "update"));
  if (sum != NULL && sum->kind == VHDUP__AZ_SUM_MD5) {
    char b64[32];
    vhdup__base64_encode(sum->md5, 16, b64, sizeof(b64));
    CHECK(add_header(out, "Content-MD5", b64));
  } else if (sum != NULL && sum->kind == VHDUP__AZ_SUM_CRC64) {
    char b64[13];
    vhdup__crc64_base64(sum->crc64, b64);
    CHECK(add_header(out, "x-ms-content-crc64", b64));
  }
  out->content_length = len;
  return finish(b, out, err);
}

int vhdup__az_req_clear_pages(vhdup__az_blob *b, uint64_t offset, uint64_t len,
                              const char *client_id, vhdup__az_request *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  CHECK(check_pages(offset, len, VHDUP__AZ_MAX_BLOB_SIZE, "Put Page (clear)", err));
  CHECK(begin(b, "PUT", 1, "comp=page", client_id, out, err));
  CHECK(add_range(out, offset, len));
  CHECK(add_header(out, "x-ms-page-write", "clear"));
  out->content_length = 0;
  return finish(b, out, err);
}

static void add_query_value(vhdup__az_sb *sb, const char *v) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *v != '\0'; v++) {
    char c = *v;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      vhdup__az_sb_addc(sb, c);
    } else {
      unsigned char u = (unsigned char)c;
      char e[3] = {'%', hex[u >> 4], hex[u & 15]};
      vhdup__az_sb_addn(sb, e, 3);
    }
  }
}

int vhdup__az_req_get_page_ranges(vhdup__az_blob *b, uint64_t offset, uint64_t len,
                                  const char *marker, unsigned maxresults, const char *client_id,
                                  vhdup__az_request *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  if (len > 0)
    CHECK(check_pages(offset, len, VHDUP__AZ_MAX_BLOB_SIZE, "Get Page Ranges", err));
  if (marker != NULL || maxresults > 0)
    CHECK(need_version(b, VHDUP__AZ_VERSION_MARKER, "Get Page Ranges paging (marker, maxresults)",
                       "", err));
  if (marker != NULL && strlen(marker) > VHDUP__AZ_MARKER_MAX)
    return vhdup__errf(err, VHDUP_ELIMIT, "Get Page Ranges marker is too long");
  vhdup__az_sb q = {0};
  vhdup__az_sb_add(&q, "comp=pagelist");
  if (marker != NULL && *marker != '\0') {
    vhdup__az_sb_add(&q, "&marker=");
    add_query_value(&q, marker);
  }
  if (maxresults > 0) {
    vhdup__az_sb_add(&q, "&maxresults=");
    vhdup__az_sb_addu64(&q, maxresults);
  }
  char *query = vhdup__az_sb_take(&q);
  if (query == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  int rc = begin(b, "GET", 1, query, client_id, out, err);
  vhdup__free(query);
  CHECK(rc);
  if (len > 0)
    CHECK(add_range(out, offset, len));
  return finish(b, out, err);
}

int vhdup__az_req_get_properties(vhdup__az_blob *b, const char *client_id, vhdup__az_request *out,
                                 vhdup__err *err) {
  CHECK(begin(b, "HEAD", 1, NULL, client_id, out, err));
  return finish(b, out, err);
}

int vhdup__az_req_set_content_md5(vhdup__az_blob *b, const uint8_t md5[16], const char *client_id,
                                  vhdup__az_request *out, vhdup__err *err) {
  char b64[32];
  CHECK(begin(b, "PUT", 1, "comp=properties", client_id, out, err));
  vhdup__base64_encode(md5, 16, b64, sizeof(b64));
  CHECK(add_header(out, "x-ms-blob-content-md5", b64));
  out->content_length = 0;
  return finish(b, out, err);
}

int vhdup__az_req_get_blob(vhdup__az_blob *b, uint64_t offset, uint64_t len, const char *client_id,
                           vhdup__az_request *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  if (len > 0 && offset > UINT64_MAX - len)
    return vhdup__errf(err, VHDUP_EINVAL, "Get Blob: range overflows");
  CHECK(begin(b, "GET", 1, NULL, client_id, out, err));
  if (len > 0)
    CHECK(add_range(out, offset, len));
  return finish(b, out, err);
}

int vhdup__az_req_create_container(vhdup__az_blob *b, const char *client_id, vhdup__az_request *out,
                                   vhdup__err *err) {
  CHECK(begin(b, "PUT", 0, "restype=container", client_id, out, err));
  out->content_length = 0;
  return finish(b, out, err);
}
