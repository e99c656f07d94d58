/* An Azure page blob as the destination: the requests are described by
 * src/azure and sent by src/net on the engine's HTTP client. */
#include "azure/azure.h"
#include "net/http.h"
#include "upload/job_int.h"
#include "upload/target.h"
#include "util/alloc.h"
#include "util/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 24
#define RANGES_BATCH 256

typedef struct az_sink az_sink;

/* One request of the sink: a page write, or a step of prepare/finish. */
typedef struct az_op {
  az_sink *s;
  struct az_op *prev, *next;
  vhdup__az_request req;
  vhdup__http_header hdrs[MAX_HEADERS];
  vhdup__http_xfer *x;
  vhdup__sink_write *w; /* NULL for control requests */
  const void *body;
  void (*done)(struct az_op *op, const vhdup__http_resp *r);
  void (*then)(struct az_sink *s, int error, const char *message); /* list_batch's */
} az_op;

struct az_sink {
  vhdup__sink base;
  vhdup_job *j;
  vhdup__http *http;
  vhdup__az_blob blob;
  az_op *ops; /* in flight, for abort */
  unsigned n_ops;
  int closing;
  void (*close_cb)(vhdup__sink *s);

  /* prepare and finish */
  uint64_t size;
  vhdup__sink_cb cb;
  void *cb_data;
  char marker[VHDUP__AZ_MARKER_MAX + 1];
  vhdup__az_page_range ranges[RANGES_BATCH];
  size_t n_ranges, next_range;
  int listing_done;
  int created_by_us;
  int container_tried;
  /* A plain upload creates first (If-None-Match: *) and asks what is there
   * only when that is refused, to say why: one round trip less when it
   * succeeds. The refusal, for when the blob turns out not to exist. */
  int create_error;
  char create_msg[VHDUP__ERRMSG_MAX];

  /* verify */
  vhdup__sink_verify *v;
  vhdup__md5_ctx vmd5;
  uint8_t *vbuf;
  size_t vbuf_len;
  uint64_t vpos;   /* blob offset hashed up to */
  uint64_t vchunk; /* bytes of the current range already read */
  uv_work_t vwork;
  char msg[VHDUP__ERRMSG_MAX];
};

static void sink_maybe_closed(az_sink *s);
static void start_container(az_sink *s);

static void op_free(az_op *op) {
  az_sink *s = op->s;
  if (op->prev != NULL)
    op->prev->next = op->next;
  else
    s->ops = op->next;
  if (op->next != NULL)
    op->next->prev = op->prev;
  s->n_ops--;
  vhdup__az_request_free(&op->req);
  vhdup__free(op);
}

static void http_done(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  az_op *op = data;
  az_sink *s = op->s;
  (void)x;
  op->x = NULL;
  op->done(op, r);
  op_free(op);
  sink_maybe_closed(s);
}

/* Sends op->req with body; on failure to start, returns the error. */
static int op_send(az_op *op, const void *body) {
  az_sink *s = op->s;
  if (op->req.nheaders > MAX_HEADERS)
    return VHDUP_ELIMIT;
  for (size_t i = 0; i < op->req.nheaders; i++) {
    op->hdrs[i].name = op->req.headers[i].name;
    op->hdrs[i].value = op->req.headers[i].value;
  }
  vhdup__http_req hr = {
      .method = op->req.method,
      .url = op->req.url,
      .headers = op->hdrs,
      .n_headers = op->req.nheaders,
      .body = body,
      .body_len = op->req.content_length,
  };
  op->body = body;
  return vhdup__http_submit(s->http, &hr, http_done, op, &op->x);
}

static az_op *op_new(az_sink *s, void (*done)(az_op *, const vhdup__http_resp *)) {
  az_op *op = vhdup__calloc(1, sizeof(*op));
  if (op == NULL)
    return NULL;
  op->s = s;
  op->done = done;
  op->next = s->ops;
  if (s->ops != NULL)
    s->ops->prev = op;
  s->ops = op;
  s->n_ops++;
  return op;
}

/* Sends an op whose request was built with result rc (op may be NULL: out
 * of memory). On any failure the op is freed and err holds a message. */
static int op_launch(az_op *op, int rc, const void *body, vhdup__err *err) {
  if (op == NULL)
    rc = VHDUP_ENOMEM;
  if (rc == 0)
    rc = op_send(op, body);
  if (rc != 0) {
    if (op != NULL)
      op_free(op);
    if (err->msg[0] == '\0')
      vhdup__errf(err, rc, "%s", vhdup_strerror(rc));
  }
  return rc;
}

/* Turns an answer into a sink result: success, or a classified error with
 * a message that names Azure's code, message and request id. */
static void classify(az_sink *s, const vhdup__http_resp *r, vhdup__sink_result *out) {
  vhdup__target_result t;
  vhdup__target_classify(r, &t, s->msg, sizeof(s->msg));
  memset(out, 0, sizeof(*out));
  out->http_status = t.http_status;
  out->error = t.error;
  if (t.error == 0)
    return;
  out->retryable = t.retryable;
  out->message = s->msg;
  if (t.retry_after_s > 0)
    out->retry_after_ms = (uint64_t)t.retry_after_s * 1000;
}

static void prepare_result(az_sink *s, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void prepare_result(az_sink *s, int error, const char *fmt, ...) {
  vhdup__sink_result r = {.error = error};
  if (error != 0 && fmt != NULL) {
    char tmp[VHDUP__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    snprintf(s->msg, sizeof(s->msg), "%s", tmp);
    r.message = s->msg;
  }
  s->cb(&s->base, &r, s->cb_data);
}

/* ---- listing page ranges, a batch at a time (overwrite, resume, verify) ---- */

typedef void (*batch_cb)(az_sink *s, int error, const char *message);

static void batch_done(az_op *op, const vhdup__http_resp *r) {
  az_sink *s = op->s;
  vhdup__sink_result res;
  classify(s, r, &res);
  if (res.error != 0) {
    op->then(s, res.error, res.message);
    return;
  }
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = vhdup__az_page_list_parse_array(r->body, r->body_len, 0, s->ranges, RANGES_BATCH,
                                           &s->n_ranges, s->marker, sizeof(s->marker), &err);
  if (rc == 0 && r->body_truncated)
    rc = VHDUP_ELIMIT;
  op->then(s, rc, rc ? (err.msg[0] ? err.msg : "answer too large") : NULL);
}

/* Asks for the next batch of page ranges (from s->marker, or the start when
 * it is empty); then() runs when s->ranges, n_ranges and marker hold it. */
static void list_batch(az_sink *s, batch_cb then) {
  az_op *op = op_new(s, batch_done);
  vhdup__err err;
  vhdup__err_clear(&err);
  int paged = vhdup__az_blob_version_at_least(&s->blob, VHDUP__AZ_VERSION_MARKER);
  int rc = VHDUP_ENOMEM;
  if (op != NULL) {
    op->then = then;
    rc = vhdup__az_req_get_page_ranges(&s->blob, 0, 0, s->marker[0] ? s->marker : NULL,
                                       paged ? RANGES_BATCH : 0, NULL, &op->req, &err);
  }
  if ((rc = op_launch(op, rc, NULL, &err)) != 0)
    then(s, rc, err.msg);
}

/* ---- prepare: HEAD, then create, or check size and clear stale ranges ---- */

static void start_list(az_sink *s);

static void clear_done(az_op *op, const vhdup__http_resp *r) {
  az_sink *s = op->s;
  vhdup__sink_result res;
  classify(s, r, &res);
  if (res.error != 0) {
    prepare_result(s, res.error, "clearing stale pages of the existing blob: %s", res.message);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range - 1];
  s->base.info.cleared_bytes += pr->end + 1 - pr->start;
  start_list(s);
}

static void next_clear(az_sink *s) {
  if (s->closing) {
    prepare_result(s, VHDUP_ECANCELED, "canceled");
    return;
  }
  if (s->next_range >= s->n_ranges) {
    if (s->listing_done) {
      prepare_result(s, 0, NULL);
      return;
    }
    start_list(s);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range++];
  vhdup__err err;
  vhdup__err_clear(&err);
  az_op *op = op_new(s, clear_done);
  int rc = op == NULL ? 0
                      : vhdup__az_req_clear_pages(&s->blob, pr->start, pr->end + 1 - pr->start,
                                                  NULL, &op->req, &err);
  if ((rc = op_launch(op, rc, NULL, &err)) != 0)
    prepare_result(s, rc, "clearing stale pages: %s", err.msg);
}

/* The overwrite path lists from the start after each batch is cleared
 * (cleared ranges no longer appear), so it never needs a marker. */
static void clear_batch(az_sink *s, int error, const char *message) {
  if (error != 0) {
    prepare_result(s, error, "listing the existing blob's pages: %s", message);
    return;
  }
  s->next_range = 0;
  s->listing_done = s->marker[0] == '\0';
  next_clear(s);
}

/* Lists the blob's ranges a batch at a time and clears them. */
static void start_list(az_sink *s) {
  if (s->next_range < s->n_ranges) {
    next_clear(s);
    return;
  }
  s->marker[0] = '\0';
  list_batch(s, clear_batch);
}

static void start_head(az_sink *s);

static void create_done(az_op *op, const vhdup__http_resp *r) {
  az_sink *s = op->s;
  vhdup__sink_result res;
  classify(s, r, &res);
  if (res.error == 0) {
    s->created_by_us = 1;
    s->base.info.size = s->size;
    prepare_result(s, 0, NULL);
    return;
  }
  if (res.error == VHDUP_ENOTFOUND && s->j->o.create_container && !s->container_tried)
    start_container(s);
  else if (res.error == VHDUP_ENOTFOUND)
    prepare_result(s, res.error,
                   "creating the blob: %s (does the container exist? --create-container makes it)",
                   res.message);
  else if (s->create_error == 0 && res.http_status >= 400) {
    /* Exists already, a managed disk that refuses Put Blob, a key or SAS
     * that may not create: what is there says which. */
    s->create_error = res.error;
    snprintf(s->create_msg, sizeof(s->create_msg), "%s", res.message ? res.message : "");
    start_head(s);
  } else
    prepare_result(s, res.error, "creating the blob: %s", res.message);
}

static void start_create(az_sink *s);

static void container_done(az_op *op, const vhdup__http_resp *r) {
  az_sink *s = op->s;
  vhdup__sink_result res;
  classify(s, r, &res);
  if (res.error != 0 && res.error != VHDUP_EEXIST) {
    prepare_result(s, res.error, "creating the container: %s", res.message);
    return;
  }
  start_create(s);
}

static void start_container(az_sink *s) {
  s->container_tried = 1;
  az_op *op = op_new(s, container_done);
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = op == NULL ? 0 : vhdup__az_req_create_container(&s->blob, NULL, &op->req, &err);
  if ((rc = op_launch(op, rc, NULL, &err)) != 0)
    prepare_result(s, rc, "creating the container: %s", err.msg);
}

static void start_create(az_sink *s) {
  az_op *op = op_new(s, create_done);
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc =
      op == NULL ? 0 : vhdup__az_req_create_page_blob(&s->blob, s->size, 1, NULL, &op->req, &err);
  if ((rc = op_launch(op, rc, NULL, &err)) != 0)
    prepare_result(s, rc, "creating the blob: %s", err.msg);
}

/* ---- resume: keep only the journal's ranges the blob really holds ---- */

static void resume_batch(az_sink *s, int error, const char *message) {
  if (error != 0) {
    prepare_result(s, error, "listing the blob's pages to resume: %s", message);
    return;
  }
  int rc = 0;
  for (size_t i = 0; i < s->n_ranges && rc == 0; i++)
    rc = vhdup__journal_restrict_add(s->j->journal, s->ranges[i].start, s->ranges[i].end);
  if (rc != 0) {
    prepare_result(s, rc, "out of memory");
    return;
  }
  if (s->marker[0] != '\0') {
    list_batch(s, resume_batch);
    return;
  }
  vhdup__journal_restrict_end(s->j->journal);
  prepare_result(s, 0, NULL);
}

static void resume_list(az_sink *s) {
  if (s->j->journal == NULL) {
    prepare_result(s, 0, NULL);
    return;
  }
  s->marker[0] = '\0';
  list_batch(s, resume_batch);
}

static void head_done(az_op *op, const vhdup__http_resp *r) {
  az_sink *s = op->s;
  vhdup_job *j = s->j;
  vhdup__sink_result res;
  classify(s, r, &res);
  if (res.error == VHDUP_ENOTFOUND && s->create_error != 0) {
    /* Refused, yet not there: the refusal is the answer. */
    if (s->create_error == VHDUP_EEXIST)
      prepare_result(s, s->create_error,
                     "the destination appeared and went again while starting (%s); try again",
                     s->create_msg);
    else if (s->create_error == VHDUP_EAUTH)
      prepare_result(s, s->create_error,
                     "creating the blob: %s (check the key or the SAS: is it valid, unexpired, "
                     "with create and write permission?)",
                     s->create_msg);
    else
      prepare_result(s, s->create_error, "creating the blob: %s", s->create_msg);
    return;
  }
  if (res.error == VHDUP_ENOTFOUND) {
    if (j->o.resume) {
      prepare_result(s, VHDUP_ENOTFOUND, "nothing to resume: %s does not exist", j->dest_shown);
      return;
    }
    start_create(s);
    return;
  }
  if (res.error != 0) {
    if (res.error == VHDUP_EAUTH)
      prepare_result(s, res.error,
                     "%s: %s (check the key or the SAS: is it valid, unexpired, "
                     "with read and write permission?)",
                     j->dest_shown, res.message);
    else
      prepare_result(s, res.error, "%s: %s", j->dest_shown, res.message);
    return;
  }
  s->base.info.existed = 1;
  const char *type = vhdup__http_header_get(r, "x-ms-blob-type");
  const char *len = vhdup__http_header_get(r, "Content-Length");
  uint64_t size = len != NULL ? strtoull(len, NULL, 10) : 0;
  s->base.info.size = size;
  if (type != NULL && strcmp(type, "PageBlob") != 0) {
    prepare_result(s, VHDUP_EEXIST, "%s exists and is a %s, not a page blob; delete it first",
                   j->dest_shown, type);
    return;
  }
  if (!j->o.overwrite && !j->o.resume) {
    prepare_result(s, VHDUP_EEXIST,
                   "%s already exists (%llu bytes); use --overwrite to replace its content, or "
                   "--resume to continue an interrupted upload",
                   j->dest_shown, (unsigned long long)size);
    return;
  }
  if (size != s->size) {
    prepare_result(s, VHDUP_ESIZE,
                   "%s is %llu bytes but this disk needs exactly %llu (virtual size %llu + 512 "
                   "footer); for a managed disk create it with `az disk create "
                   "--upload-type Upload --upload-size-bytes %llu`",
                   j->dest_shown, (unsigned long long)size, (unsigned long long)s->size,
                   (unsigned long long)(s->size - 512), (unsigned long long)s->size);
    return;
  }
  if (j->o.resume) {
    /* The journal says what finished; the blob must agree: only what both
     * hold counts as done (a journal line without the pages behind it, say
     * after someone cleared the blob, is sent again). */
    s->marker[0] = '\0';
    resume_list(s);
    return;
  }
  s->n_ranges = s->next_range = 0;
  start_list(s);
}

static void az_prepare(vhdup__sink *base, uint64_t size, vhdup__sink_cb cb, void *data) {
  az_sink *s = (az_sink *)base;
  s->size = size;
  s->cb = cb;
  s->cb_data = data;
  if (!s->j->o.overwrite && !s->j->o.resume)
    start_create(s); /* nothing may be there: create first, ask if refused */
  else
    start_head(s);
}

static void start_head(az_sink *s) {
  az_op *op = op_new(s, head_done);
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = op == NULL ? 0 : vhdup__az_req_get_properties(&s->blob, NULL, &op->req, &err);
  if ((rc = op_launch(op, rc, NULL, &err)) != 0)
    prepare_result(s, rc, "%s", err.msg);
}

/* ---- writes ---- */

static void write_done(az_op *op, const vhdup__http_resp *r) {
  vhdup__sink_result res;
  classify(op->s, r, &res);
  op->w->cb(op->w, &res);
}

static int az_write(vhdup__sink *base, vhdup__sink_write *w) {
  az_sink *s = (az_sink *)base;
  az_op *op = op_new(s, write_done);
  if (op == NULL)
    return VHDUP_ENOMEM;
  op->w = w;
  vhdup__az_sum sum = {.kind = VHDUP__AZ_SUM_NONE};
  if (w->has_md5) {
    sum.kind = VHDUP__AZ_SUM_MD5;
    memcpy(sum.md5, w->md5, 16);
  } else if (w->has_crc64) {
    sum.kind = VHDUP__AZ_SUM_CRC64;
    sum.crc64 = w->crc64;
  }
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = vhdup__az_req_put_page(&s->blob, w->offset, w->length, &sum, NULL, &op->req, &err);
  return op_launch(op, rc, w->data, &err);
}

/* ---- finish: the whole-blob MD5 as Content-MD5 ---- */

static void props_done(az_op *op, const vhdup__http_resp *r) {
  az_sink *s = op->s;
  vhdup__sink_result res;
  classify(s, r, &res);
  if (res.error != 0 && !s->created_by_us && res.http_status >= 400 && res.http_status < 500) {
    /* A destination we did not create (a managed disk's upload SAS) may
     * refuse properties; the data is complete, so this is not a failure. */
    if (s->j->o.notice_cb != NULL)
      s->j->o.notice_cb(s->j,
                        "note: the destination does not accept blob properties; the "
                        "whole-disk MD5 was not stored",
                        s->j->o.data);
    memset(&res, 0, sizeof(res));
  }
  s->cb(&s->base, &res, s->cb_data);
}

static void az_finish(vhdup__sink *base, const uint8_t *disk_md5, vhdup__sink_cb cb, void *data) {
  az_sink *s = (az_sink *)base;
  s->cb = cb;
  s->cb_data = data;
  if (disk_md5 == NULL || !s->base.info.can_set_properties) {
    prepare_result(s, 0, NULL);
    return;
  }
  az_op *op = op_new(s, props_done);
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = op == NULL ? 0 : vhdup__az_req_set_content_md5(&s->blob, disk_md5, NULL, &op->req, &err);
  if ((rc = op_launch(op, rc, NULL, &err)) != 0)
    prepare_result(s, rc, "setting the blob's MD5: %s", err.msg);
}

/* ---- verify: list the blob's page ranges; with content, read them back
 * in order and hash the whole blob (zeros between ranges included), for
 * comparison with the MD5 computed from the source ---- */

static const uint8_t zeros[64 * 1024];

static void verify_next(az_sink *s);
static void verify_list(az_sink *s);

static void verify_end(az_sink *s, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verify_end(az_sink *s, int error, const char *fmt, ...) {
  vhdup__sink_result r = {.error = error};
  if (error != 0) {
    char tmp[VHDUP__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    snprintf(s->msg, sizeof(s->msg), "%s", tmp);
    r.message = s->msg;
  }
  if (s->vmd5.md != NULL) {
    if (error == 0)
      vhdup__md5_final(&s->vmd5, s->v->md5);
    vhdup__md5_free(&s->vmd5);
  }
  vhdup__free(s->vbuf);
  s->vbuf = NULL;
  s->cb(&s->base, &r, s->cb_data);
}

static void hash_zeros(vhdup__md5_ctx *m, uint64_t n) {
  while (n > 0) {
    size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
    vhdup__md5_update(m, zeros, k);
    n -= k;
  }
}

/* Hashing runs on the thread pool: the zeros between ranges can be
 * gigabytes, and the loop may belong to someone else's program. */
static void verify_hash_work(uv_work_t *req) {
  az_sink *s = req->data;
  const vhdup__az_page_range *pr = &s->ranges[s->next_range];
  uint64_t off = pr->start + s->vchunk;
  hash_zeros(&s->vmd5, off - s->vpos);
  vhdup__md5_update(&s->vmd5, s->vbuf, s->vbuf_len);
  s->vpos = off + s->vbuf_len;
}

static void verify_hash_done(uv_work_t *req, int status) {
  az_sink *s = req->data;
  (void)status;
  s->n_ops--; /* the work counted as an operation, so close waits for it */
  if (s->closing) {
    verify_end(s, VHDUP_ECANCELED, "canceled");
    sink_maybe_closed(s);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range];
  s->vchunk += s->vbuf_len;
  if (s->vchunk == pr->end + 1 - pr->start) {
    s->v->ranges++;
    s->v->bytes += s->vchunk;
    s->vchunk = 0;
    s->next_range++;
  }
  verify_next(s);
}

static void verify_read_done(az_op *op, const vhdup__http_resp *r) {
  az_sink *s = op->s;
  vhdup__sink_result res;
  classify(s, r, &res);
  if (res.error != 0) {
    verify_end(s, res.error, "reading the blob back: %s", res.message);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range];
  uint64_t left = pr->end + 1 - pr->start - s->vchunk;
  size_t want = left < VHDUP__AZ_MAX_PUT_PAGE ? (size_t)left : VHDUP__AZ_MAX_PUT_PAGE;
  if (r->body_len != want || r->body_truncated) {
    verify_end(s, VHDUP_EVERIFY, "reading the blob back at offset %llu: got %zu bytes, not %zu",
               (unsigned long long)(pr->start + s->vchunk), r->body_len, want);
    return;
  }
  memcpy(s->vbuf, r->body, want);
  s->vbuf_len = want;
  s->vwork.data = s;
  s->n_ops++;
  int rc = uv_queue_work(s->j->e->loop, &s->vwork, verify_hash_work, verify_hash_done);
  if (rc != 0) {
    s->n_ops--;
    verify_end(s, rc, "cannot queue work: %s", uv_strerror(rc));
  }
}

static void verify_next(az_sink *s) {
  vhdup__sink_verify *v = s->v;
  if (s->closing) {
    verify_end(s, VHDUP_ECANCELED, "canceled");
    return;
  }
  if (!v->content) {
    for (; s->next_range < s->n_ranges; s->next_range++) {
      v->ranges++;
      v->bytes += s->ranges[s->next_range].end + 1 - s->ranges[s->next_range].start;
    }
  }
  if (s->next_range >= s->n_ranges) {
    if (s->marker[0] != '\0') {
      verify_list(s);
      return;
    }
    if (v->content && s->vpos < v->blob_size) {
      /* The tail after the last range is zeros (usually the footer is the
       * last range, so this is rare and short). */
      hash_zeros(&s->vmd5, v->blob_size - s->vpos);
      s->vpos = v->blob_size;
    }
    verify_end(s, 0, NULL);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range];
  uint64_t off = pr->start + s->vchunk;
  uint64_t left = pr->end + 1 - off;
  uint64_t len = left < VHDUP__AZ_MAX_PUT_PAGE ? left : VHDUP__AZ_MAX_PUT_PAGE;
  az_op *op = op_new(s, verify_read_done);
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = op == NULL ? 0 : vhdup__az_req_get_blob(&s->blob, off, len, NULL, &op->req, &err);
  if ((rc = op_launch(op, rc, NULL, &err)) != 0)
    verify_end(s, rc, "reading the blob back: %s", err.msg);
}

static void verify_batch(az_sink *s, int error, const char *message) {
  if (error != 0) {
    verify_end(s, error, "listing page ranges: %s", message);
    return;
  }
  s->next_range = 0;
  verify_next(s);
}

static void verify_list(az_sink *s) {
  list_batch(s, verify_batch);
}

static void az_verify(vhdup__sink *base, vhdup__sink_verify *v, vhdup__sink_cb cb, void *data) {
  az_sink *s = (az_sink *)base;
  s->cb = cb;
  s->cb_data = data;
  s->v = v;
  v->ranges = v->bytes = 0;
  s->marker[0] = '\0';
  s->n_ranges = s->next_range = 0;
  s->vpos = s->vchunk = 0;
  if (v->content) {
    s->vbuf = vhdup__malloc(VHDUP__AZ_MAX_PUT_PAGE);
    if (s->vbuf == NULL || vhdup__md5_init(&s->vmd5) != 0) {
      verify_end(s, VHDUP_ENOMEM, "out of memory");
      return;
    }
  }
  verify_list(s);
}

static void az_abort(vhdup__sink *base) {
  az_sink *s = (az_sink *)base;
  for (az_op *op = s->ops; op != NULL; op = op->next)
    if (op->x != NULL)
      vhdup__http_cancel(op->x);
}

static void sink_maybe_closed(az_sink *s) {
  if (!s->closing || s->n_ops > 0)
    return;
  if (s->close_cb != NULL)
    s->close_cb(&s->base);
  vhdup__az_blob_free(&s->blob);
  vhdup__free(s);
}

static void az_close(vhdup__sink *base, void (*close_cb)(vhdup__sink *s)) {
  az_sink *s = (az_sink *)base;
  s->closing = 1;
  s->close_cb = close_cb;
  az_abort(base);
  sink_maybe_closed(s);
}

static const vhdup__sink_ops az_sink_ops = {
    .prepare = az_prepare,
    .write = az_write,
    .finish = az_finish,
    .verify = az_verify,
    .abort = az_abort,
    .close = az_close,
};

int vhdup__azure_sink_new(vhdup_job *j, vhdup__sink **out, vhdup__err *err) {
  *out = NULL;
  vhdup__http *http;
  int rc = vhdup__engine_http(j->e, &http);
  if (rc != 0)
    return vhdup__errf(err, rc, "cannot start the HTTP client: %s", vhdup_strerror(rc));
  vhdup__az_url url;
  vhdup__az_cred cred;
  memset(&url, 0, sizeof(url));
  vhdup__target t = {
      .destination = j->o.destination,
      .shown = j->dest_shown,
      .connection_string = j->o.connection_string,
      .account_key = j->o.account_key,
      .sas_token = j->o.sas_token,
      .use_environment = j->o.use_environment,
      .allow_http = j->o.allow_http,
  };
  rc = vhdup__target_resolve(&t, &url, &cred, err);
  az_sink *s = NULL;
  if (rc == 0) {
    s = vhdup__calloc(1, sizeof(*s));
    if (s == NULL)
      rc = vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  if (rc == 0) {
    vhdup__az_blob_opts bo = {.version = j->o.service_version, .timeout_s = 0};
    rc = vhdup__az_blob_init(&s->blob, &url, &cred, &bo, err);
  }
  vhdup__az_url_free(&url);
  vhdup__az_cred_free(&cred);
  if (rc != 0) {
    vhdup__free(s);
    return rc;
  }
  s->j = j;
  s->http = http;
  s->base.ops = &az_sink_ops;
  s->base.max_in_flight = 0;
  /* Managed disks' upload endpoints (md-*.blob.storage.azure.net) take no
   * blob properties (AZURE.md); elsewhere the whole-disk MD5 is stored. */
  s->base.info.can_set_properties = strncmp(s->blob.url.host, "md-", 3) != 0;
  if (j->o.crc64 && !vhdup__az_blob_version_at_least(&s->blob, VHDUP__AZ_VERSION_CRC64)) {
    vhdup__errf(err, VHDUP_EUNSUPPORTED,
                "--crc64 needs service version %s or later; this destination uses %s",
                VHDUP__AZ_VERSION_CRC64, s->blob.version);
    vhdup__az_blob_free(&s->blob);
    vhdup__free(s);
    return VHDUP_EUNSUPPORTED;
  }
  *out = &s->base;
  return 0;
}
