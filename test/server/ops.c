/* The Azure page-blob operations and the /_control API.
 *
 * Error choices (Microsoft REST docs; "Blob service error codes"):
 * - misaligned Put Page range: 400 InvalidHeaderValue naming the header, as
 *   Azure answers `Range: bytes=0-3` on a page blob;
 * - range past the blob's end: 416 InvalidPageRange;
 * - body over 4 MiB: 413 RequestBodyTooLarge;
 * - Content-MD5 mismatch: 400 Md5Mismatch; malformed: 400 InvalidMd5;
 * - x-ms-content-crc64 mismatch: 400 Crc64Mismatch;
 * - managed-disk mode: creating or deleting the blob is refused with 403
 *   AuthorizationPermissionMismatch (an upload SAS grants writing pages, not
 *   creating blobs), Set Blob Properties/metadata with 400 UnsupportedHeader
 *   (such endpoints take no blob properties). These two are our choice: the
 *   managed-disk endpoint's exact answers are not documented. */
#include "server.h"

#include "util/crypto.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TS_MAX_BLOB_SIZE (UINT64_C(8) << 40)

static const char *reason(int status) {
  switch (status) {
#define XX(num, name, string)                                                                      \
  case num:                                                                                        \
    return #string;
    HTTP_STATUS_MAP(XX)
#undef XX
  default:
    return "Unknown";
  }
}

static void http_date(char *out, size_t size) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void ts_resp_begin(ts_server *srv, ts_response *resp, int status) {
  char date[64];
  http_date(date, sizeof(date));
  uint64_t id = ++srv->request_seq;
  resp->status = status;
  sbuf_clear(&resp->head);
  sbuf_printf(&resp->head,
              "HTTP/1.1 %d %s\r\nServer: vhdup-testserver\r\nDate: %s\r\n"
              "x-ms-request-id: 7e57%04x-0000-4000-8000-%012" PRIx64 "\r\n"
              "x-ms-version: 2021-08-06\r\n",
              status, reason(status), date, (unsigned)(srv->request_seq >> 48) & 0xffff,
              id & UINT64_C(0xffffffffffff));
}

static void xml_escape(sbuf *out, const char *s) {
  for (; *s != '\0'; s++) {
    switch (*s) {
    case '<':
      sbuf_puts(out, "&lt;");
      break;
    case '>':
      sbuf_puts(out, "&gt;");
      break;
    case '&':
      sbuf_puts(out, "&amp;");
      break;
    case '"':
      sbuf_puts(out, "&quot;");
      break;
    default:
      sbuf_append(out, s, 1);
    }
  }
}

static void error_v(ts_server *srv, ts_response *resp, int status, const char *code,
                    const char *extra_xml, const char *fmt, va_list ap) {
  char msg[2048];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  ts_resp_begin(srv, resp, status);
  resp->error_code = code;
  sbuf_printf(&resp->head, "x-ms-error-code: %s\r\nContent-Type: application/xml\r\n", code);
  sbuf_clear(&resp->body);
  sbuf_printf(&resp->body,
              "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>", code);
  xml_escape(&resp->body, msg);
  sbuf_puts(&resp->body, "</Message>");
  if (extra_xml != NULL)
    sbuf_puts(&resp->body, extra_xml);
  sbuf_puts(&resp->body, "</Error>");
}

void ts_resp_error(ts_server *srv, ts_response *resp, int status, const char *code, const char *fmt,
                   ...) {
  va_list ap;
  va_start(ap, fmt);
  error_v(srv, resp, status, code, NULL, fmt, ap);
  va_end(ap);
}

static void header_error(ts_server *srv, ts_response *resp, const char *code, const char *name,
                         const char *value) {
  sbuf extra;
  sbuf_init(&extra);
  sbuf_puts(&extra, "<HeaderName>");
  xml_escape(&extra, name);
  sbuf_puts(&extra, "</HeaderName><HeaderValue>");
  xml_escape(&extra, value ? value : "");
  sbuf_puts(&extra, "</HeaderValue>");
  const char *msg = strcmp(code, "MissingRequiredHeader") == 0
                        ? "An HTTP header that's mandatory for this request is not specified."
                        : "The value for one of the HTTP headers is not in the correct format.";
  ts_resp_error(srv, resp, 400, code, "%s", msg);
  /* Re-render with the header details inside <Error>. */
  sbuf_clear(&resp->body);
  sbuf_printf(&resp->body,
              "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s"
              "</Message>%s</Error>",
              code, msg, extra.p);
  sbuf_free(&extra);
}

void ts_resp_finish(ts_response *resp) {
  uint64_t len = resp->body.len + resp->file_len;
  sbuf_printf(&resp->head, "Content-Length: %" PRIu64 "\r\n", len);
  if (resp->close)
    sbuf_puts(&resp->head, "Connection: close\r\n");
  sbuf_puts(&resp->head, "\r\n");
}

static void etag_headers(ts_response *resp, const ts_blob *b) {
  char date[64];
  http_date(date, sizeof(date));
  sbuf_printf(&resp->head, "ETag: \"0x8D%014" PRIX64 "\"\r\nLast-Modified: %s\r\n", b->etag, date);
}

bool ts_ops_is_control(const ts_request *r) {
  return r->path.p != NULL && strncmp(r->path.p, "/_control/", 10) == 0;
}

static bool query_is(const ts_request *r, const char *name, const char *value) {
  sbuf v;
  sbuf_init(&v);
  bool ok = ts_req_query(r, name, &v) && strcmp(v.p, value) == 0;
  sbuf_free(&v);
  return ok;
}

bool ts_ops_is_put_page(const ts_request *r) {
  return r->method == HTTP_PUT && query_is(r, "comp", "page");
}

/* True if the path names a blob (/ACCOUNT/CONTAINER/BLOB), not a container. */
static bool path_has_blob(const ts_request *r) {
  const char *p = r->path.p ? r->path.p : "";
  const char *c = *p == '/' ? strchr(p + 1, '/') : NULL; /* before CONTAINER */
  const char *b = c != NULL ? strchr(c + 1, '/') : NULL; /* before BLOB */
  return b != NULL && b[1] != '\0';
}

ts_fault_op ts_ops_fault_op(const ts_request *r) {
  sbuf comp;
  sbuf_init(&comp);
  bool has_comp = ts_req_query(r, "comp", &comp);
  const char *c = has_comp ? comp.p : "";
  ts_fault_op op = TS_OP_OTHER;
  if (!path_has_blob(r)) {
    if (r->method == HTTP_PUT && query_is(r, "restype", "container"))
      op = TS_OP_CONTAINER;
  } else if (r->method == HTTP_PUT && strcmp(c, "page") == 0) {
    const char *mode = ts_req_header(r, "x-ms-page-write");
    op = mode != NULL && strcasecmp(mode, "clear") == 0 ? TS_OP_CLEAR : TS_OP_PUT;
  } else if (r->method == HTTP_PUT) {
    op = !has_comp                      ? TS_OP_CREATE
         : strcmp(c, "properties") == 0 ? TS_OP_PROPS
         : strcmp(c, "lease") == 0      ? TS_OP_LEASE
                                        : TS_OP_OTHER;
  } else if (r->method == HTTP_GET) {
    op = !has_comp ? TS_OP_GET : strcmp(c, "pagelist") == 0 ? TS_OP_RANGES : TS_OP_OTHER;
  } else if (r->method == HTTP_HEAD && !has_comp) {
    op = TS_OP_HEAD;
  } else if (r->method == HTTP_DELETE && !has_comp) {
    op = TS_OP_DELETE;
  }
  sbuf_free(&comp);
  return op;
}

static bool parse_u64(const char *s, uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9')
    return false;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0')
    return false;
  *out = v;
  return true;
}

/* "bytes=S-E" or "bytes=S-" (open end: *has_end false). */
static bool parse_range(const char *v, uint64_t *start, uint64_t *end, bool *has_end) {
  if (v == NULL || strncmp(v, "bytes=", 6) != 0)
    return false;
  const char *p = v + 6;
  char *e;
  if (*p < '0' || *p > '9')
    return false;
  *start = strtoull(p, &e, 10);
  if (*e != '-')
    return false;
  p = e + 1;
  if (*p == '\0') {
    *has_end = false;
    return true;
  }
  if (*p < '0' || *p > '9')
    return false;
  *end = strtoull(p, &e, 10);
  *has_end = true;
  return *e == '\0' && *end >= *start;
}

static const char *range_header(const ts_request *r, const char **name) {
  const char *v = ts_req_header(r, "x-ms-range");
  *name = "x-ms-range";
  if (v == NULL) {
    v = ts_req_header(r, "Range");
    *name = "Range";
  }
  return v;
}

/* ---- control API ---- */

static void stats_json(ts_server *srv, sbuf *out) {
  const ts_stats *s = &srv->stats;
  sbuf_printf(out,
              "{\"requests\":%" PRIu64 ",\"put_pages\":%" PRIu64 ",\"put_page_bytes\":%" PRIu64
              ",\"max_inflight\":%" PRIu64 ",\"inflight\":%" PRIu64 ",\"faults_injected\":%" PRIu64
              ",\"md5_missing\":%" PRIu64 ",\"max_body\":%" PRIu64 ",\"status_counts\":{",
              s->requests, s->put_pages, s->put_page_bytes, s->max_inflight, s->inflight,
              s->faults_injected, s->md5_missing, s->max_body);
  bool first = true;
  for (int i = 0; i < TS_STATUS_SLOTS; i++) {
    if (s->status_counts[i] == 0)
      continue;
    sbuf_printf(out, "%s\"%d\":%" PRIu64, first ? "" : ",", i, s->status_counts[i]);
    first = false;
  }
  sbuf_puts(out, "},\"faults_by_op\":{");
  for (int i = 0; i < TS_OP_ANY; i++)
    sbuf_printf(out, "%s\"%s\":%" PRIu64, i ? "," : "", ts_fault_op_name((ts_fault_op)i),
                s->faults_by_op[i]);
  const ts_model_stats *m = &srv->model.stats;
  sbuf_printf(out,
              "},\"model\":{\"on\":%s,\"busy_blob\":%" PRIu64 ",\"busy_account\":%" PRIu64
              ",\"timed_out\":%" PRIu64 ",\"queued\":%" PRIu64 ",\"wait_ms_total\":%" PRIu64
              ",\"max_wait_ms\":%" PRIu64 ",\"admitted\":%" PRIu64 ",\"admitted_bytes\":%" PRIu64
              ",\"span_ms\":%.3f}}\n",
              srv->model.cfg.on ? "true" : "false", m->busy_blob, m->busy_account, m->timed_out,
              m->queued, m->wait_ms_total, m->max_wait_ms, m->admitted, m->admitted_bytes,
              m->admitted > 1 ? (double)(m->last_ns - m->first_ns) / 1e6 : 0.0);
}

/* POST /_control/model: body = a --model SPEC, or "off". Buckets start
 * full; the model's statistics start again. */
static void set_model(ts_server *srv, ts_request *r, ts_response *resp) {
  char err[256];
  sbuf spec;
  sbuf_init(&spec);
  sbuf_append(&spec, r->body, r->body_len);
  ts_model_cfg m;
  ts_model_cfg_default(&m);
  if (spec.len > 0 && strcmp(spec.p, "off") != 0 &&
      ts_model_parse(&m, spec.p, err, sizeof(err)) != 0) {
    ts_resp_error(srv, resp, 400, "InvalidModelSpec", "%s", err);
  } else {
    ts_model_free(&srv->model);
    ts_model_init(&srv->model, &m, uv_hrtime());
    ts_resp_begin(srv, resp, 204);
  }
  sbuf_free(&spec);
}

static void handle_control(ts_server *srv, ts_request *r, ts_response *resp) {
  const char *what = r->path.p + strlen("/_control/");
  if (strcmp(what, "stats") == 0 && r->method == HTTP_GET) {
    ts_resp_begin(srv, resp, 200);
    sbuf_puts(&resp->head, "Content-Type: application/json\r\n");
    stats_json(srv, &resp->body);
  } else if (strcmp(what, "reset-stats") == 0 && r->method == HTTP_POST) {
    /* In-flight requests are still in flight: keep that count true. */
    uint64_t inflight = srv->stats.inflight;
    memset(&srv->stats, 0, sizeof(srv->stats));
    srv->stats.inflight = inflight;
    srv->stats.max_inflight = inflight;
    memset(&srv->model.stats, 0, sizeof(srv->model.stats));
    ts_resp_begin(srv, resp, 204);
  } else if (strcmp(what, "faults") == 0 && r->method == HTTP_POST) {
    char err[256];
    sbuf spec;
    sbuf_init(&spec);
    sbuf_append(&spec, r->body, r->body_len);
    if (ts_faults_parse(&srv->faults, spec.p, err, sizeof(err)) != 0)
      ts_resp_error(srv, resp, 400, "InvalidFaultSpec", "%s", err);
    else
      ts_resp_begin(srv, resp, 204);
    sbuf_free(&spec);
  } else if (strcmp(what, "model") == 0 && r->method == HTTP_POST) {
    set_model(srv, r, resp);
  } else {
    ts_resp_error(srv, resp, 404, "ResourceNotFound", "No such control endpoint.");
  }
}

/* ---- blob operations ---- */

typedef struct target {
  char *container; /* NULL: account-level */
  char *blob;      /* NULL: container-level */
} target;

static void target_free(target *t) {
  free(t->container);
  free(t->blob);
}

/* Splits /ACCOUNT/CONTAINER/BLOB; refuses names that would escape --store. */
static bool parse_target(const ts_server *srv, const ts_request *r, target *t) {
  memset(t, 0, sizeof(*t));
  const char *p = r->path.p ? r->path.p : "";
  size_t alen = strlen(srv->cfg.account);
  if (p[0] != '/' || strncmp(p + 1, srv->cfg.account, alen) != 0 ||
      (p[1 + alen] != '/' && p[1 + alen] != '\0'))
    return false;
  p += 1 + alen;
  if (*p == '\0' || p[1] == '\0')
    return true;
  p++;
  size_t clen = strcspn(p, "/");
  sbuf c;
  sbuf_init(&c);
  ts_url_decode(&c, p, clen);
  t->container = c.p;
  if (c.len == 0 || strchr(c.p, '/') != NULL || strcmp(c.p, ".") == 0 || strcmp(c.p, "..") == 0)
    return false;
  p += clen;
  if (*p == '\0' || p[1] == '\0')
    return true;
  sbuf b;
  sbuf_init(&b);
  ts_url_decode(&b, p + 1, strlen(p + 1));
  t->blob = b.p;
  /* Every segment must be a plain name: no "", ".", "..". */
  const char *s = b.p;
  while (true) {
    size_t n = strcspn(s, "/");
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
      return false;
    s += n;
    if (*s == '\0')
      break;
    s++;
  }
  return true;
}

static ts_blob *need_blob(ts_server *srv, const target *t, ts_response *resp) {
  if (!ts_store_has_container(&srv->store, t->container)) {
    ts_resp_error(srv, resp, 404, "ContainerNotFound", "The specified container does not exist.");
    return NULL;
  }
  ts_blob *b = ts_store_find(&srv->store, t->container, t->blob);
  if (b == NULL)
    ts_resp_error(srv, resp, 404, "BlobNotFound", "The specified blob does not exist.");
  return b;
}

/* Azure's container naming rules ("Naming and referencing containers"):
 * 3-63 characters of lowercase letters, digits and single hyphens, starting
 * and ending with a letter or digit. Azurite enforces them too. */
static bool container_name_ok(ts_server *srv, const char *name, ts_response *resp) {
  size_t n = strlen(name);
  if (n < 3 || n > 63) {
    ts_resp_error(srv, resp, 400, "OutOfRangeInput",
                  "The specified resource name length is not within the permissible limits.");
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool ok = alnum || (c == '-' && i > 0 && i + 1 < n && name[i - 1] != '-');
    if (!ok) {
      ts_resp_error(srv, resp, 400, "InvalidResourceName",
                    "The specified resource name contains invalid characters.");
      return false;
    }
  }
  return true;
}

static void create_container(ts_server *srv, const target *t, ts_response *resp) {
  if (!container_name_ok(srv, t->container, resp))
    return;
  int rc = ts_store_create_container(&srv->store, t->container);
  if (rc == 1)
    ts_resp_error(srv, resp, 409, "ContainerAlreadyExists",
                  "The specified container already exists.");
  else if (rc < 0)
    ts_resp_error(srv, resp, 500, "InternalError", "mkdir failed: %s", strerror(-rc));
  else
    ts_resp_begin(srv, resp, 201);
}

static void put_blob(ts_server *srv, const ts_request *r, const target *t, ts_response *resp) {
  ts_blob *existing = ts_store_find(&srv->store, t->container, t->blob);
  if (existing != NULL && existing->managed) {
    ts_resp_error(srv, resp, 403, "AuthorizationPermissionMismatch",
                  "This request is not authorized to perform this operation using this "
                  "permission (managed disk: the blob already exists at its final size).");
    return;
  }
  const char *type = ts_req_header(r, "x-ms-blob-type");
  if (type == NULL) {
    header_error(srv, resp, "MissingRequiredHeader", "x-ms-blob-type", "");
    return;
  }
  if (strcmp(type, "PageBlob") != 0) {
    header_error(srv, resp, "InvalidHeaderValue", "x-ms-blob-type", type);
    return;
  }
  const char *len = ts_req_header(r, "x-ms-blob-content-length");
  uint64_t size;
  if (len == NULL) {
    header_error(srv, resp, "MissingRequiredHeader", "x-ms-blob-content-length", "");
    return;
  }
  if (!parse_u64(len, &size) || size % 512 != 0 || size > TS_MAX_BLOB_SIZE) {
    header_error(srv, resp, "InvalidHeaderValue", "x-ms-blob-content-length", len);
    return;
  }
  if (strlen(t->blob) > 1024) {
    ts_resp_error(srv, resp, 400, "OutOfRangeInput",
                  "The specified resource name length is not within the permissible limits.");
    return;
  }
  if (r->content_length != 0) {
    header_error(srv, resp, "InvalidHeaderValue", "Content-Length", "page blob body");
    return;
  }
  if (!ts_store_has_container(&srv->store, t->container)) {
    ts_resp_error(srv, resp, 404, "ContainerNotFound", "The specified container does not exist.");
    return;
  }
  const char *inm = ts_req_header(r, "If-None-Match");
  if (existing != NULL && inm != NULL && strcmp(inm, "*") == 0) {
    ts_resp_error(srv, resp, 409, "BlobAlreadyExists", "The specified blob already exists.");
    return;
  }
  ts_blob *b = ts_store_create_blob(&srv->store, t->container, t->blob, size);
  if (b == NULL) {
    ts_resp_error(srv, resp, 500, "InternalError", "cannot create blob file");
    return;
  }
  ts_resp_begin(srv, resp, 201);
  etag_headers(resp, b);
  sbuf_puts(&resp->head, "x-ms-request-server-encrypted: true\r\n");
}

/* Decodes a base64 digest header of exactly want bytes. */
static bool decode_digest(const char *v, uint8_t *out, size_t want) {
  uint8_t buf[64];
  long n = vhdup__base64_decode(v, strlen(v), buf, sizeof(buf));
  if (n != (long)want)
    return false;
  memcpy(out, buf, want);
  return true;
}

static void put_page(ts_server *srv, const ts_request *r, const target *t, ts_response *resp) {
  ts_blob *b = need_blob(srv, t, resp);
  if (b == NULL)
    return;
  const char *mode = ts_req_header(r, "x-ms-page-write");
  if (mode == NULL) {
    header_error(srv, resp, "MissingRequiredHeader", "x-ms-page-write", "");
    return;
  }
  bool clear = strcasecmp(mode, "clear") == 0;
  if (!clear && strcasecmp(mode, "update") != 0) {
    header_error(srv, resp, "InvalidHeaderValue", "x-ms-page-write", mode);
    return;
  }
  const char *rname;
  const char *rv = range_header(r, &rname);
  uint64_t start, end;
  bool has_end;
  if (rv == NULL) {
    header_error(srv, resp, "MissingRequiredHeader", "x-ms-range", "");
    return;
  }
  if (!parse_range(rv, &start, &end, &has_end) || !has_end || start % 512 != 0 ||
      end % 512 != 511) {
    header_error(srv, resp, "InvalidHeaderValue", rname, rv);
    return;
  }
  if (end >= b->size) {
    ts_resp_error(srv, resp, 416, "InvalidPageRange", "The page range specified is invalid.");
    return;
  }
  uint64_t len = end - start + 1;
  if (clear) {
    if (r->content_length != 0) {
      header_error(srv, resp, "InvalidHeaderValue", "Content-Length", "clear needs 0");
      return;
    }
  } else {
    if (len > srv->cfg.max_body) {
      ts_resp_error(srv, resp, 413, "RequestBodyTooLarge",
                    "The request body is too large and exceeds the maximum permissible limit.");
      return;
    }
    if (r->body_len != len) {
      char got[32];
      snprintf(got, sizeof(got), "%zu", r->body_len);
      header_error(srv, resp, "InvalidHeaderValue", "Content-Length", got);
      return;
    }
    const char *md5 = ts_req_header(r, "Content-MD5");
    const char *crc = ts_req_header(r, "x-ms-content-crc64");
    if (md5 == NULL)
      srv->stats.md5_missing++;
    if (md5 == NULL && srv->cfg.require_md5) {
      header_error(srv, resp, "MissingRequiredHeader", "Content-MD5", "");
      return;
    }
    /* A malformed sum is refused in every mode; a sink without checks
     * (--sink-no-md5) only skips computing them, as Azure does that on its
     * own cores. */
    bool verify = !srv->cfg.sink || srv->cfg.sink_verify_sums;
    if (md5 != NULL) {
      uint8_t want[VHDUP__MD5_LEN], got[VHDUP__MD5_LEN];
      if (!decode_digest(md5, want, sizeof(want))) {
        header_error(srv, resp, "InvalidMd5", "Content-MD5", md5);
        return;
      }
      if (verify &&
          (vhdup__md5_digest(r->body, r->body_len, got) != 0 || memcmp(want, got, 16) != 0)) {
        char calc[32];
        if (vhdup__base64_encode(got, sizeof(got), calc, sizeof(calc)) < 0)
          calc[0] = '\0';
        ts_resp_error(srv, resp, 400, "Md5Mismatch",
                      "The MD5 value specified in the request did not match with the MD5 "
                      "value calculated by the server. Specified: %s Calculated: %s",
                      md5, calc);
        return;
      }
    }
    if (crc != NULL) {
      uint8_t want[8];
      if (!decode_digest(crc, want, sizeof(want))) {
        header_error(srv, resp, "InvalidHeaderValue", "x-ms-content-crc64", crc);
        return;
      }
      uint64_t w = 0;
      for (int i = 7; i >= 0; i--)
        w = (w << 8) | want[i];
      if (verify && w != ts_crc64(0, r->body, r->body_len)) {
        ts_resp_error(srv, resp, 400, "Crc64Mismatch",
                      "The CRC64 value specified in the request did not match with the CRC64 "
                      "value calculated by the server.");
        return;
      }
    }
  }
  int rc = ts_store_write(&srv->store, b, start, clear ? NULL : r->body, len);
  if (rc != 0) {
    ts_resp_error(srv, resp, 500, "InternalError", "write failed: %s", strerror(-rc));
    return;
  }
  if (!clear)
    srv->stats.put_page_bytes += len;
  ts_faults_note_good_put_page(&srv->faults);
  ts_resp_begin(srv, resp, 201);
  etag_headers(resp, b);
  sbuf_puts(&resp->head, "x-ms-blob-sequence-number: 0\r\nx-ms-request-server-encrypted: true\r\n");
  const char *md5 = ts_req_header(r, "Content-MD5");
  if (md5 != NULL && !clear)
    sbuf_printf(&resp->head, "Content-MD5: %s\r\n", md5);
}

static void get_page_ranges(ts_server *srv, const ts_request *r, const target *t,
                            ts_response *resp) {
  ts_blob *b = need_blob(srv, t, resp);
  if (b == NULL)
    return;
  uint64_t lo = 0, hi = b->size; /* [lo, hi) */
  const char *rname;
  const char *rv = range_header(r, &rname);
  if (rv != NULL) {
    uint64_t s, e;
    bool has_end;
    if (!parse_range(rv, &s, &e, &has_end) || s % 512 != 0 || (has_end && e % 512 != 511)) {
      header_error(srv, resp, "InvalidHeaderValue", rname, rv);
      return;
    }
    lo = s;
    if (has_end && e + 1 < hi)
      hi = e + 1;
  }
  sbuf v;
  sbuf_init(&v);
  uint64_t maxresults = UINT64_MAX, marker;
  if (ts_req_query(r, "maxresults", &v)) {
    if (!parse_u64(v.p, &maxresults) || maxresults == 0) {
      ts_resp_error(srv, resp, 400, "InvalidQueryParameterValue",
                    "Value for one of the query parameters specified in the request URI is "
                    "invalid (maxresults).");
      sbuf_free(&v);
      return;
    }
  }
  /* Our marker is the next start offset, in decimal; clients treat it as opaque. */
  if (ts_req_query(r, "marker", &v) && v.len > 0) {
    if (!parse_u64(v.p, &marker)) {
      ts_resp_error(srv, resp, 400, "InvalidQueryParameterValue",
                    "Value for one of the query parameters specified in the request URI is "
                    "invalid (marker).");
      sbuf_free(&v);
      return;
    }
    if (marker > lo)
      lo = marker;
  }
  sbuf_free(&v);
  ts_resp_begin(srv, resp, 200);
  etag_headers(resp, b);
  sbuf_printf(&resp->head, "x-ms-blob-content-length: %" PRIu64 "\r\n", b->size);
  sbuf_puts(&resp->head, "Content-Type: application/xml\r\n");
  sbuf_puts(&resp->body, "<?xml version=\"1.0\" encoding=\"utf-8\"?><PageList>");
  uint64_t count = 0;
  for (size_t i = 0; i < b->nranges && lo < hi; i++) {
    uint64_t s = b->ranges[i].start > lo ? b->ranges[i].start : lo;
    uint64_t e = b->ranges[i].end < hi ? b->ranges[i].end : hi;
    if (s >= e)
      continue;
    if (count == maxresults) {
      sbuf_printf(&resp->body, "<NextMarker>%" PRIu64 "</NextMarker>", s);
      break;
    }
    sbuf_printf(&resp->body,
                "<PageRange><Start>%" PRIu64 "</Start><End>%" PRIu64 "</End></PageRange>", s,
                e - 1);
    count++;
  }
  sbuf_puts(&resp->body, "</PageList>");
}

static void get_blob(ts_server *srv, const ts_request *r, const target *t, ts_response *resp,
                     bool head) {
  ts_blob *b = need_blob(srv, t, resp);
  if (b == NULL) {
    if (head)
      sbuf_clear(&resp->body);
    return;
  }
  uint64_t off = 0, len = b->size;
  bool ranged = false;
  const char *rname;
  const char *rv = head ? NULL : range_header(r, &rname);
  if (rv != NULL) {
    uint64_t s, e;
    bool has_end;
    if (!parse_range(rv, &s, &e, &has_end)) {
      header_error(srv, resp, "InvalidHeaderValue", rname, rv);
      return;
    }
    if (s >= b->size) {
      ts_resp_error(srv, resp, 416, "InvalidRange",
                    "The range specified is invalid for the current size of the resource.");
      return;
    }
    if (!has_end || e >= b->size)
      e = b->size - 1;
    off = s;
    len = e - s + 1;
    ranged = true;
  }
  ts_resp_begin(srv, resp, ranged ? 206 : 200);
  etag_headers(resp, b);
  sbuf_puts(&resp->head, "x-ms-blob-type: PageBlob\r\nx-ms-blob-sequence-number: 0\r\n"
                         "Accept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n"
                         "x-ms-server-encrypted: true\r\n");
  if (b->content_md5[0] != '\0') {
    /* Azure returns the blob's MD5 header only for whole-blob reads. */
    if (!ranged)
      sbuf_printf(&resp->head, "Content-MD5: %s\r\n", b->content_md5);
    else
      sbuf_printf(&resp->head, "x-ms-blob-content-md5: %s\r\n", b->content_md5);
  }
  if (ranged)
    sbuf_printf(&resp->head, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", off,
                off + len - 1, b->size);
  resp->file_len = len;
  resp->file_off = off;
  resp->head_only = head;
  if (!head)
    resp->file_blob = b;
}

static void set_properties(ts_server *srv, const ts_request *r, const target *t,
                           ts_response *resp) {
  ts_blob *b = need_blob(srv, t, resp);
  if (b == NULL)
    return;
  const char *md5 = ts_req_header(r, "x-ms-blob-content-md5");
  const char *len = ts_req_header(r, "x-ms-blob-content-length");
  if (b->managed) {
    ts_resp_error(srv, resp, 400, "UnsupportedHeader",
                  "One of the HTTP headers specified in the request is not supported "
                  "(managed disk: blob properties cannot be set).");
    return;
  }
  uint64_t size = b->size;
  if (len != NULL && (!parse_u64(len, &size) || size % 512 != 0 || size > TS_MAX_BLOB_SIZE)) {
    header_error(srv, resp, "InvalidHeaderValue", "x-ms-blob-content-length", len);
    return;
  }
  uint8_t digest[VHDUP__MD5_LEN];
  if (md5 != NULL && md5[0] != '\0' && !decode_digest(md5, digest, sizeof(digest))) {
    header_error(srv, resp, "InvalidMd5", "x-ms-blob-content-md5", md5);
    return;
  }
  if (len != NULL && ts_store_resize(&srv->store, b, size) != 0) {
    ts_resp_error(srv, resp, 500, "InternalError", "resize failed");
    return;
  }
  /* Set Blob Properties replaces all content headers: an absent MD5 clears it. */
  snprintf(b->content_md5, sizeof(b->content_md5), "%s", md5 ? md5 : "");
  ts_store_touch(&srv->store, b);
  ts_resp_begin(srv, resp, 200);
  etag_headers(resp, b);
  sbuf_puts(&resp->head, "x-ms-blob-sequence-number: 0\r\n");
}

static void set_metadata(ts_server *srv, const target *t, ts_response *resp) {
  ts_blob *b = need_blob(srv, t, resp);
  if (b == NULL)
    return;
  if (b->managed) {
    ts_resp_error(srv, resp, 400, "UnsupportedHeader",
                  "One of the HTTP headers specified in the request is not supported "
                  "(managed disk: no metadata).");
    return;
  }
  ts_store_touch(&srv->store, b);
  ts_resp_begin(srv, resp, 200);
  etag_headers(resp, b);
}

static void delete_blob(ts_server *srv, const target *t, ts_response *resp) {
  ts_blob *b = need_blob(srv, t, resp);
  if (b == NULL)
    return;
  if (b->managed) {
    ts_resp_error(srv, resp, 403, "AuthorizationPermissionMismatch",
                  "This request is not authorized to perform this operation using this "
                  "permission (managed disk).");
    return;
  }
  ts_store_delete_blob(&srv->store, b);
  ts_resp_begin(srv, resp, 202);
}

/* Injected answers are what Azure sends for that operation ("Status and
 * error codes", "Common REST API error codes" and "Blob service error
 * codes" in the Azure Storage REST reference, x-ms-version 2021-08-06, the
 * version this server reports): x-ms-error-code (2017-07-29 and later),
 * x-ms-request-id (ts_resp_begin) and an XML <Error> with <Code> and
 * <Message>, except on HEAD, whose answers have no body ("Get Blob
 * Properties": the code travels in x-ms-error-code only). Retry-After is
 * not documented for ServerBusy, but Microsoft's "Best practices for
 * transient fault handling" (learn.microsoft.com/azure/architecture/
 * best-practices/transient-faults) names "503 Service Unavailable with a
 * Retry-After header" as an answer that says how long to wait: 503 sends
 * Retry-After: 1, 503r a long Retry-After: 60 (a client must stay
 * interruptible while it waits), 503n none. */
static const char *not_found_code(ts_fault_op op) {
  return op == TS_OP_CONTAINER ? "ContainerNotFound" : "BlobNotFound";
}

/* 409 as each operation meets it: Create Container on an existing one
 * (ContainerAlreadyExists), Put Blob with If-None-Match: * on an existing
 * blob (BlobAlreadyExists), Delete Blob with snapshots (SnapshotsPresent),
 * Lease Blob on a leased blob (LeaseAlreadyPresent), and a page operation
 * on a blob replaced by a block blob (InvalidBlobType). */
static void conflict(ts_server *srv, ts_fault_op op, ts_response *resp) {
  switch (op) {
  case TS_OP_CONTAINER:
    ts_resp_error(srv, resp, 409, "ContainerAlreadyExists",
                  "The specified container already exists.");
    break;
  case TS_OP_CREATE:
    ts_resp_error(srv, resp, 409, "BlobAlreadyExists", "The specified blob already exists.");
    break;
  case TS_OP_DELETE:
    ts_resp_error(srv, resp, 409, "SnapshotsPresent",
                  "This operation is not permitted because the blob has snapshots.");
    break;
  case TS_OP_LEASE:
    ts_resp_error(srv, resp, 409, "LeaseAlreadyPresent", "There is already a lease present.");
    break;
  default:
    ts_resp_error(srv, resp, 409, "InvalidBlobType",
                  "The blob type is invalid for this operation.");
  }
}

static bool inject_fault(ts_server *srv, ts_fault_kind fault, ts_fault_op op, ts_response *resp) {
  switch (fault) {
  case TS_FAULT_503:
  case TS_FAULT_503N:
  case TS_FAULT_503R:
    ts_resp_error(srv, resp, 503, "ServerBusy",
                  "The server is currently unable to receive requests. Please retry your "
                  "request.");
    if (fault == TS_FAULT_503)
      sbuf_puts(&resp->head, "Retry-After: 1\r\n");
    else if (fault == TS_FAULT_503R)
      sbuf_puts(&resp->head, "Retry-After: 60\r\n");
    return true;
  case TS_FAULT_500:
    ts_resp_error(srv, resp, 500, "OperationTimedOut",
                  "The operation could not be completed within the permitted time.");
    return true;
  case TS_FAULT_500I:
    ts_resp_error(srv, resp, 500, "InternalError",
                  "The server encountered an internal error. Please retry the request.");
    return true;
  case TS_FAULT_400:
    ts_resp_error(srv, resp, 400, "InvalidHeaderValue",
                  "The value for one of the HTTP headers is not in the correct format.");
    return true;
  case TS_FAULT_404:
    ts_resp_error(srv, resp, 404, not_found_code(op),
                  op == TS_OP_CONTAINER ? "The specified container does not exist."
                                        : "The specified blob does not exist.");
    return true;
  case TS_FAULT_409:
    conflict(srv, op, resp);
    return true;
  case TS_FAULT_412:
    ts_resp_error(srv, resp, 412, "ConditionNotMet",
                  "The condition specified using HTTP conditional header(s) is not met.");
    return true;
  case TS_FAULT_STALL:
    resp->stall = true;
    return true;
  default:
    return false;
  }
}

/* The service model's verdict on a blob request (model.c): true when it
 * answered (503 ServerBusy, or 500 OperationTimedOut after holding the
 * request); else the request is served, after resp->delay_ms in queue
 * mode. Messages: "Common REST API error codes", see model.c. */
static bool model_gate(ts_server *srv, const ts_request *r, ts_response *resp) {
  uint64_t delay = 0;
  ts_model_verdict v =
      ts_model_admit(&srv->model, r->path.p, r->content_length, uv_hrtime(), &delay);
  resp->delay_ms = delay;
  switch (v) {
  case TS_MODEL_BUSY_BLOB:
    ts_resp_error(srv, resp, 503, "ServerBusy",
                  "The server is currently unable to receive requests. Please retry your "
                  "request.");
    return true;
  case TS_MODEL_BUSY_ACCOUNT:
    ts_resp_error(srv, resp, 503, "ServerBusy", "Ingress is over the account limit.");
    return true;
  case TS_MODEL_TIMEOUT:
    ts_resp_error(srv, resp, 500, "OperationTimedOut",
                  "The operation could not be completed within the permitted time.");
    return true;
  default:
    return false;
  }
}

void ts_ops_handle(ts_server *srv, ts_request *r, ts_fault_kind fault, ts_response *resp) {
  if (ts_ops_is_control(r)) {
    handle_control(srv, r, resp);
    return;
  }
  bool head = r->method == HTTP_HEAD;
  ts_fault_op op = ts_ops_fault_op(r);
  resp->trickle = fault == TS_FAULT_TRICKLE;
  char why[4096];
  if (inject_fault(srv, fault, op, resp)) {
    /* answered by the fault plan */
  } else if (ts_faults_expired(&srv->faults)) {
    srv->stats.faults_injected++;
    srv->stats.faults_by_op[op]++;
    ts_resp_error(srv, resp, 403, "AuthenticationFailed",
                  "Server failed to authenticate the request. Signed expiry time has passed.");
  } else if (ts_auth_check(&srv->cfg, r, why, sizeof(why)) != TS_AUTH_OK) {
    ts_resp_error(srv, resp, 403, "AuthenticationFailed",
                  "Server failed to authenticate the request. Make sure the value of "
                  "Authorization header is formed correctly including the signature. %s",
                  why);
  } else if (r->method == HTTP_PUT && ts_req_header(r, "Content-Length") == NULL) {
    /* Azure wants Content-Length on every write, even an empty one. */
    ts_resp_error(srv, resp, 411, "MissingContentLengthHeader",
                  "The Content-Length header was not specified.");
  } else {
    target t;
    if (!parse_target(srv, r, &t)) {
      ts_resp_error(srv, resp, 400, "InvalidUri",
                    "The requested URI does not represent any resource on the server.");
    } else if (t.container == NULL) {
      ts_resp_error(srv, resp, 400, "InvalidUri", "Account-level operations are not supported.");
    } else if (t.blob == NULL) {
      if (r->method == HTTP_PUT && query_is(r, "restype", "container"))
        create_container(srv, &t, resp);
      else
        ts_resp_error(srv, resp, 400, "InvalidQueryParameterValue",
                      "Only Create Container is supported at container level.");
    } else if (!model_gate(srv, r, resp)) {
      sbuf comp;
      sbuf_init(&comp);
      bool has_comp = ts_req_query(r, "comp", &comp);
      const char *c = has_comp ? comp.p : "";
      if (r->method == HTTP_PUT && !has_comp)
        put_blob(srv, r, &t, resp);
      else if (r->method == HTTP_PUT && strcmp(c, "page") == 0)
        put_page(srv, r, &t, resp);
      else if (r->method == HTTP_PUT && strcmp(c, "properties") == 0)
        set_properties(srv, r, &t, resp);
      else if (r->method == HTTP_PUT && strcmp(c, "metadata") == 0)
        set_metadata(srv, &t, resp);
      else if (r->method == HTTP_GET && strcmp(c, "pagelist") == 0)
        get_page_ranges(srv, r, &t, resp);
      else if (r->method == HTTP_GET && !has_comp)
        get_blob(srv, r, &t, resp, false);
      else if (head && !has_comp)
        get_blob(srv, r, &t, resp, true);
      else if (r->method == HTTP_DELETE && !has_comp)
        delete_blob(srv, &t, resp);
      else
        ts_resp_error(srv, resp, 400, "UnsupportedHttpVerb",
                      "The resource doesn't support the specified HTTP verb or comp.");
      sbuf_free(&comp);
    }
    target_free(&t);
  }
  if (head && resp->file_len == 0) {
    /* A HEAD answer has no body; the error code travels in x-ms-error-code. */
    sbuf_clear(&resp->body);
  }
  resp->head_only = head;
}
