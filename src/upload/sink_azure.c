/* An Azure page blob as the destination: the requests are described by
 * src/azure and sent on the owner's HTTP client. Control steps (create,
 * HEAD, container, Get Page Ranges, clear, properties, verify's reads) go
 * through one retrying runner (az_call.h); Put Page writes are sent once
 * and classified the same way, the pipeline owning their retries. */
#include "upload/sink_azure.h"

#include "azure/azure.h"
#include "util/alloc.h"
#include "util/crypto.h"
#include "util/list.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANGES_BATCH 256

typedef struct az_sink az_sink;

/* One page write in flight. */
typedef struct az_write_op {
  az_sink *s;
  vhdup__list node; /* in s->writes, for abort */
  vhdup__az_request req;
  vhdup__http_header hdrs[VHDUP__AZ_MAX_HEADERS];
  vhdup__http_xfer *x;
  vhdup__sink_write *w;
} az_write_op;

typedef void (*batch_cb)(az_sink *s, int error, const char *message);

struct az_sink {
  vhdup__sink base;
  vhdup__azure_sink_opts o;
  char *shown; /* the destination, sig=REDACTED */
  vhdup__az_blob blob;
  vhdup__az_call *ctl; /* control requests, one at a time */
  vhdup__list writes;
  unsigned pending; /* writes, hash work and the runner's close */
  int closing;
  int aborted; /* no further control step starts */
  void (*close_cb)(vhdup__sink *s);

  /* prepare and finish */
  uint64_t size;
  vhdup__sink_cb cb;
  void *cb_data;
  char marker[VHDUP__AZ_MARKER_MAX + 1];
  vhdup__az_page_range ranges[RANGES_BATCH];
  size_t n_ranges, next_range;
  batch_cb list_then;
  int listing_done;
  int created_by_us;
  int container_tried;
  /* A plain upload creates first (If-None-Match: *) and asks what is there
   * only when that is refused, to say why: one round trip less when it
   * succeeds. The refusal, for when the blob turns out not to exist. */
  int create_error;
  char create_msg[VHDUP__ERRMSG_MAX];
  /* The create was refused as existing after an earlier try of it got no
   * usable answer: that try may have made the blob. */
  int create_maybe_ours;
  uint8_t disk_md5[16];

  /* verify */
  vhdup__sink_verify *v;
  vhdup__md5_ctx vmd5;
  uint8_t *vbuf;
  size_t vbuf_len;
  uint64_t vpos;   /* blob offset hashed up to */
  uint64_t vchunk; /* bytes of the current range already read */
  uint64_t vlen;   /* bytes the read in flight asks for */
  uv_work_t vwork;
  char msg[VHDUP__ERRMSG_MAX];
};

static void sink_maybe_closed(az_sink *s);
static void start_container(az_sink *s);
static void start_create(az_sink *s);
static void start_head(az_sink *s);
static void start_list(az_sink *s);

static void vresult(az_sink *s, int error, const char *fmt, va_list ap) {
  vhdup__sink_result r = {.error = error};
  if (error != 0 && fmt != NULL) {
    char tmp[VHDUP__ERRMSG_MAX];
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    snprintf(s->msg, sizeof(s->msg), "%s", tmp);
    r.message = s->msg;
  }
  s->cb(&s->base, &r, s->cb_data);
}

static void prepare_result(az_sink *s, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void prepare_result(az_sink *s, int error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vresult(s, error, fmt, ap);
  va_end(ap);
}

static void on_retry(vhdup__az_call *c, const vhdup__az_retry_note *n, void *data) {
  az_sink *s = data;
  (void)c;
  if (s->o.retry_cb != NULL)
    s->o.retry_cb(s->o.ctx, n->text);
}

/* Runs one control request through the runner. Returns 0, or the error
 * that kept it from starting (the sink is closing). */
static int control(az_sink *s, const char *step, vhdup__az_build_fn build,
                   vhdup__az_call_done_fn done) {
  if (s->closing || s->aborted)
    return VHDUP_ECANCELED;
  vhdup__az_call_req r = {
      .step = step,
      .build = build,
      .build_ctx = s,
      .done = done,
      .data = s,
  };
  return vhdup__az_call_start(s->ctl, &r);
}

/* ---- listing page ranges, a batch at a time (overwrite, resume, verify) ---- */

static int build_list(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  az_sink *s = ctx;
  int paged = vhdup__az_blob_version_at_least(&s->blob, VHDUP__AZ_VERSION_MARKER);
  return vhdup__az_req_get_page_ranges(&s->blob, 0, 0, s->marker[0] ? s->marker : NULL,
                                       paged ? RANGES_BATCH : 0, NULL, req, err);
}

static void batch_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  az_sink *s = data;
  (void)c;
  if (r->error != 0) {
    s->list_then(s, r->error, r->message);
    return;
  }
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc =
      vhdup__az_page_list_parse_array(r->resp->body, r->resp->body_len, 0, s->ranges, RANGES_BATCH,
                                      &s->n_ranges, s->marker, sizeof(s->marker), &err);
  if (rc == 0 && r->resp->body_truncated)
    rc = VHDUP_ELIMIT;
  s->list_then(s, rc, rc ? (err.msg[0] ? err.msg : "answer too large") : NULL);
}

/* Asks for the next batch of page ranges (from s->marker, or the start when
 * it is empty); then() runs when s->ranges, n_ranges and marker hold it. */
static void list_batch(az_sink *s, batch_cb then) {
  s->list_then = then;
  int rc = control(s, "Get Page Ranges", build_list, batch_done);
  if (rc != 0)
    then(s, rc, vhdup_strerror(rc));
}

/* ---- prepare: create, or HEAD, check size and clear stale ranges ---- */

static int build_clear(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  az_sink *s = ctx;
  const vhdup__az_page_range *pr = &s->ranges[s->next_range - 1];
  return vhdup__az_req_clear_pages(&s->blob, pr->start, pr->end + 1 - pr->start, NULL, req, err);
}

static void clear_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  az_sink *s = data;
  (void)c;
  if (r->error != 0) {
    prepare_result(s, r->error, "clearing stale pages of the existing blob: %s", r->message);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range - 1];
  s->base.info.cleared_bytes += pr->end + 1 - pr->start;
  start_list(s);
}

static void next_clear(az_sink *s) {
  if (s->closing || s->aborted) {
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
  s->next_range++;
  int rc = control(s, "clearing stale pages", build_clear, clear_done);
  if (rc != 0)
    prepare_result(s, rc, "clearing stale pages: %s", vhdup_strerror(rc));
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

static int build_create(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  az_sink *s = ctx;
  return vhdup__az_req_create_page_blob(&s->blob, s->size, 1, NULL, req, err);
}

static void create_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  az_sink *s = data;
  (void)c;
  if (r->error == 0) {
    s->created_by_us = 1;
    s->base.info.size = s->size;
    prepare_result(s, 0, NULL);
    return;
  }
  if (r->error == VHDUP_ENOTFOUND && s->o.create_container && !s->container_tried)
    start_container(s);
  else if (r->error == VHDUP_ENOTFOUND)
    prepare_result(s, r->error,
                   "creating the blob: %s (does the container exist? --create-container makes it)",
                   r->message);
  else if (s->create_error == 0 && r->http_status >= 400 && r->error != VHDUP_ECANCELED) {
    /* Exists already, a managed disk that refuses Put Blob, a key or SAS
     * that may not create: what is there says which. */
    s->create_error = r->error;
    s->create_maybe_ours = r->error == VHDUP_EEXIST && r->attempts > 1;
    snprintf(s->create_msg, sizeof(s->create_msg), "%s", r->message);
    start_head(s);
  } else
    prepare_result(s, r->error, "creating the blob: %s", r->message);
}

static int build_container(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  az_sink *s = ctx;
  return vhdup__az_req_create_container(&s->blob, NULL, req, err);
}

static void container_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  az_sink *s = data;
  (void)c;
  if (r->error != 0 && r->error != VHDUP_EEXIST) {
    prepare_result(s, r->error, "creating the container: %s", r->message);
    return;
  }
  start_create(s);
}

static void start_container(az_sink *s) {
  s->container_tried = 1;
  int rc = control(s, "the container create", build_container, container_done);
  if (rc != 0)
    prepare_result(s, rc, "creating the container: %s", vhdup_strerror(rc));
}

static void start_create(az_sink *s) {
  int rc = control(s, "the blob create", build_create, create_done);
  if (rc != 0)
    prepare_result(s, rc, "creating the blob: %s", vhdup_strerror(rc));
}

/* ---- resume: keep only the journal's ranges the blob really holds ---- */

static void resume_batch(az_sink *s, int error, const char *message) {
  if (error != 0) {
    prepare_result(s, error, "listing the blob's pages to resume: %s", message);
    return;
  }
  int rc = 0;
  for (size_t i = 0; i < s->n_ranges && rc == 0; i++)
    rc = vhdup__journal_restrict_add(s->o.journal, s->ranges[i].start, s->ranges[i].end);
  if (rc != 0) {
    prepare_result(s, rc, "out of memory");
    return;
  }
  if (s->marker[0] != '\0') {
    list_batch(s, resume_batch);
    return;
  }
  vhdup__journal_restrict_end(s->o.journal);
  prepare_result(s, 0, NULL);
}

/* The journal says what finished; the blob must agree: only what both hold
 * counts as done (a journal line without the pages behind it, say after
 * someone cleared the blob, is sent again). */
static void resume_list(az_sink *s) {
  if (s->o.journal == NULL) {
    prepare_result(s, 0, NULL);
    return;
  }
  s->marker[0] = '\0';
  list_batch(s, resume_batch);
}

/* Refused, yet not there: the refusal is the answer. */
static void create_refused(az_sink *s) {
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
}

/* A blob that an earlier try of our create may have made: ours when it is
 * an empty page blob of our size (writing into that destroys nothing). */
static void ours_batch(az_sink *s, int error, const char *message) {
  if (error != 0) {
    prepare_result(s, error, "listing the blob's pages: %s", message);
  } else if (s->n_ranges == 0 && s->marker[0] == '\0') {
    s->created_by_us = 1;
    s->base.info.existed = 0;
    prepare_result(s, 0, NULL);
  } else {
    prepare_result(s, VHDUP_EEXIST,
                   "%s already exists (%llu bytes); use --overwrite to replace its content, or "
                   "--resume to continue an interrupted upload",
                   s->shown, (unsigned long long)s->size);
  }
}

/* The blob exists: is it one this upload may write into? */
static void existing_blob(az_sink *s, const vhdup__http_resp *resp) {
  s->base.info.existed = 1;
  const char *type = vhdup__http_header_get(resp, "x-ms-blob-type");
  const char *len = vhdup__http_header_get(resp, "Content-Length");
  uint64_t size = len != NULL ? strtoull(len, NULL, 10) : 0;
  s->base.info.size = size;
  if (type != NULL && strcmp(type, "PageBlob") != 0) {
    prepare_result(s, VHDUP_EEXIST, "%s exists and is a %s, not a page blob; delete it first",
                   s->shown, type);
    return;
  }
  if (!s->o.overwrite && !s->o.resume && s->create_maybe_ours && size == s->size) {
    s->marker[0] = '\0';
    list_batch(s, ours_batch);
    return;
  }
  if (!s->o.overwrite && !s->o.resume) {
    prepare_result(s, VHDUP_EEXIST,
                   "%s already exists (%llu bytes); use --overwrite to replace its content, or "
                   "--resume to continue an interrupted upload",
                   s->shown, (unsigned long long)size);
    return;
  }
  if (size != s->size) {
    prepare_result(s, VHDUP_ESIZE,
                   "%s is %llu bytes but this disk needs exactly %llu (virtual size %llu + 512 "
                   "footer); for a managed disk create it with `az disk create "
                   "--upload-type Upload --upload-size-bytes %llu`",
                   s->shown, (unsigned long long)size, (unsigned long long)s->size,
                   (unsigned long long)(s->size - 512), (unsigned long long)s->size);
    return;
  }
  if (s->o.resume) {
    resume_list(s);
    return;
  }
  s->n_ranges = s->next_range = 0;
  start_list(s);
}

static void head_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  az_sink *s = data;
  (void)c;
  if (r->error == VHDUP_ENOTFOUND && s->create_error != 0) {
    create_refused(s);
  } else if (r->error == VHDUP_ENOTFOUND && s->o.resume) {
    prepare_result(s, VHDUP_ENOTFOUND, "nothing to resume: %s does not exist", s->shown);
  } else if (r->error == VHDUP_ENOTFOUND) {
    start_create(s);
  } else if (r->error == VHDUP_EAUTH) {
    prepare_result(s, r->error,
                   "%s: %s (check the key or the SAS: is it valid, unexpired, "
                   "with read and write permission?)",
                   s->shown, r->message);
  } else if (r->error != 0) {
    prepare_result(s, r->error, "%s: %s", s->shown, r->message);
  } else {
    existing_blob(s, r->resp);
  }
}

static int build_head(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  az_sink *s = ctx;
  return vhdup__az_req_get_properties(&s->blob, NULL, req, err);
}

static void start_head(az_sink *s) {
  int rc = control(s, "Get Blob Properties", build_head, head_done);
  if (rc != 0)
    prepare_result(s, rc, "%s: %s", s->shown, vhdup_strerror(rc));
}

static void az_prepare(vhdup__sink *base, uint64_t size, vhdup__sink_cb cb, void *data) {
  az_sink *s = (az_sink *)base;
  s->size = size;
  s->cb = cb;
  s->cb_data = data;
  if (!s->o.overwrite && !s->o.resume)
    start_create(s); /* nothing may be there: create first, ask if refused */
  else
    start_head(s);
}

/* ---- writes: sent once; the pipeline times their retries ---- */

static void write_free(az_write_op *op) {
  az_sink *s = op->s;
  vhdup__list_remove(&op->node);
  s->pending--;
  vhdup__az_request_free(&op->req);
  vhdup__free(op);
}

static void write_done(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  az_write_op *op = data;
  az_sink *s = op->s;
  (void)x;
  op->x = NULL;
  vhdup__target_result t;
  vhdup__target_classify(r, &t, s->msg, sizeof(s->msg));
  vhdup__sink_result res = {.error = t.error, .http_status = t.http_status};
  if (t.error != 0) {
    res.retryable = t.retryable;
    res.message = s->msg;
    if (t.retry_after_s > 0)
      res.retry_after_ms = (uint64_t)t.retry_after_s * 1000;
  }
  op->w->cb(op->w, &res);
  write_free(op);
  sink_maybe_closed(s);
}

static int write_send(az_write_op *op) {
  vhdup__http_req hr;
  int rc = vhdup__az_http_req(&op->req, op->hdrs, op->w->data, &hr);
  if (rc != 0)
    return rc;
  return vhdup__http_submit(op->s->o.http, &hr, write_done, op, &op->x);
}

static int az_write(vhdup__sink *base, vhdup__sink_write *w) {
  az_sink *s = (az_sink *)base;
  az_write_op *op = vhdup__calloc(1, sizeof(*op));
  if (op == NULL)
    return VHDUP_ENOMEM;
  op->s = s;
  op->w = w;
  vhdup__list_push_tail(&s->writes, &op->node);
  s->pending++;
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
  if (rc == 0)
    rc = write_send(op);
  if (rc != 0)
    write_free(op);
  return rc;
}

/* ---- finish: the whole-blob MD5 as Content-MD5 ---- */

static int build_props(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  az_sink *s = ctx;
  return vhdup__az_req_set_content_md5(&s->blob, s->disk_md5, NULL, req, err);
}

static void props_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  az_sink *s = data;
  (void)c;
  if (r->error != 0 && !s->created_by_us && r->http_status >= 400 && r->http_status < 500) {
    /* A destination we did not create (a managed disk's upload SAS) may
     * refuse properties; the data is complete, so this is not a failure. */
    if (s->o.notice_cb != NULL)
      s->o.notice_cb(s->o.ctx, "note: the destination does not accept blob properties; the "
                               "whole-disk MD5 was not stored");
    prepare_result(s, 0, NULL);
    return;
  }
  prepare_result(s, r->error, "setting the blob's MD5: %s", r->message);
}

static void az_finish(vhdup__sink *base, const uint8_t *disk_md5, vhdup__sink_cb cb, void *data) {
  az_sink *s = (az_sink *)base;
  s->cb = cb;
  s->cb_data = data;
  if (disk_md5 == NULL || !s->base.info.can_set_properties) {
    prepare_result(s, 0, NULL);
    return;
  }
  memcpy(s->disk_md5, disk_md5, 16);
  int rc = control(s, "setting the blob's MD5", build_props, props_done);
  if (rc != 0)
    prepare_result(s, rc, "setting the blob's MD5: %s", vhdup_strerror(rc));
}

/* ---- verify: list the blob's page ranges; with content, read them back
 * in order and hash the whole blob (zeros between ranges included), for
 * comparison with the MD5 computed from the source ---- */

static void verify_next(az_sink *s);
static void verify_list(az_sink *s);

static void verify_end(az_sink *s, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verify_end(az_sink *s, int error, const char *fmt, ...) {
  if (s->vmd5.md != NULL) {
    if (error == 0)
      vhdup__md5_final(&s->vmd5, s->v->md5);
    vhdup__md5_free(&s->vmd5);
  }
  vhdup__free(s->vbuf);
  s->vbuf = NULL;
  va_list ap;
  va_start(ap, fmt);
  vresult(s, error, fmt, ap);
  va_end(ap);
}

/* Hashing runs on the thread pool: the zeros between ranges can be
 * gigabytes, and the loop may belong to someone else's program. */
static void verify_hash_work(uv_work_t *req) {
  az_sink *s = req->data;
  const vhdup__az_page_range *pr = &s->ranges[s->next_range];
  uint64_t off = pr->start + s->vchunk;
  vhdup__md5_update_zeros(&s->vmd5, off - s->vpos);
  vhdup__md5_update(&s->vmd5, s->vbuf, s->vbuf_len);
  s->vpos = off + s->vbuf_len;
}

static void verify_hash_done(uv_work_t *req, int status) {
  az_sink *s = req->data;
  (void)status;
  s->pending--; /* the work counted, so close waits for it */
  if (s->closing || s->aborted) {
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

static void verify_read_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  az_sink *s = data;
  (void)c;
  if (r->error != 0) {
    verify_end(s, r->error, "reading the blob back: %s", r->message);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range];
  size_t want = (size_t)s->vlen;
  if (r->resp->body_len != want || r->resp->body_truncated) {
    verify_end(s, VHDUP_EVERIFY, "reading the blob back at offset %llu: got %zu bytes, not %zu",
               (unsigned long long)(pr->start + s->vchunk), r->resp->body_len, want);
    return;
  }
  memcpy(s->vbuf, r->resp->body, want);
  s->vbuf_len = want;
  s->vwork.data = s;
  s->pending++;
  int rc = uv_queue_work(s->o.loop, &s->vwork, verify_hash_work, verify_hash_done);
  if (rc != 0) {
    s->pending--;
    verify_end(s, rc, "cannot queue work: %s", uv_strerror(rc));
  }
}

static int build_read(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  az_sink *s = ctx;
  uint64_t off = s->ranges[s->next_range].start + s->vchunk;
  return vhdup__az_req_get_blob(&s->blob, off, s->vlen, NULL, req, err);
}

static void verify_next(az_sink *s) {
  vhdup__sink_verify *v = s->v;
  if (s->closing || s->aborted) {
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
      vhdup__md5_update_zeros(&s->vmd5, v->blob_size - s->vpos);
      s->vpos = v->blob_size;
    }
    verify_end(s, 0, NULL);
    return;
  }
  const vhdup__az_page_range *pr = &s->ranges[s->next_range];
  uint64_t left = pr->end + 1 - (pr->start + s->vchunk);
  s->vlen = left < VHDUP__AZ_MAX_PUT_PAGE ? left : VHDUP__AZ_MAX_PUT_PAGE;
  int rc = control(s, "reading the blob back (Get Blob)", build_read, verify_read_done);
  if (rc != 0)
    verify_end(s, rc, "reading the blob back: %s", vhdup_strerror(rc));
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

/* ---- abort and close ---- */

static void az_abort(vhdup__sink *base) {
  az_sink *s = (az_sink *)base;
  s->aborted = 1;
  vhdup__list_foreach(node, &s->writes) {
    az_write_op *op = vhdup__list_entry(node, az_write_op, node);
    if (op->x != NULL)
      vhdup__http_cancel(op->x);
  }
  vhdup__az_call_cancel(s->ctl);
}

static void sink_maybe_closed(az_sink *s) {
  if (!s->closing || s->pending > 0)
    return;
  if (s->close_cb != NULL)
    s->close_cb(&s->base);
  vhdup__az_blob_free(&s->blob);
  vhdup__free(s->shown);
  vhdup__free(s);
}

static void ctl_closed(vhdup__az_call *c, void *data) {
  az_sink *s = data;
  (void)c;
  s->ctl = NULL;
  s->pending--;
  sink_maybe_closed(s);
}

static void az_close(vhdup__sink *base, void (*close_cb)(vhdup__sink *s)) {
  az_sink *s = (az_sink *)base;
  if (s->closing)
    return;
  s->closing = 1;
  s->close_cb = close_cb;
  az_abort(base);
  s->pending++; /* the runner's timer */
  vhdup__az_call_close(s->ctl, ctl_closed, s);
}

static const vhdup__sink_ops az_sink_ops = {
    .prepare = az_prepare,
    .write = az_write,
    .finish = az_finish,
    .verify = az_verify,
    .abort = az_abort,
    .close = az_close,
};

/* Parses the target into s->blob and checks what the options need. */
static int blob_setup(az_sink *s, const vhdup__azure_sink_opts *o, vhdup__err *err) {
  vhdup__az_url url;
  vhdup__az_cred cred;
  memset(&url, 0, sizeof(url));
  int rc = vhdup__target_resolve(&o->target, &url, &cred, err);
  if (rc == 0) {
    vhdup__az_blob_opts bo = {.version = o->service_version, .timeout_s = 0};
    rc = vhdup__az_blob_init(&s->blob, &url, &cred, &bo, err);
  }
  vhdup__az_url_free(&url);
  vhdup__az_cred_free(&cred);
  if (rc != 0)
    return rc;
  if (o->crc64 && !vhdup__az_blob_version_at_least(&s->blob, VHDUP__AZ_VERSION_CRC64)) {
    vhdup__az_blob_free(&s->blob);
    return vhdup__errf(err, VHDUP_EUNSUPPORTED,
                       "--crc64 needs service version %s or later; this destination uses %s",
                       VHDUP__AZ_VERSION_CRC64, s->blob.version);
  }
  return 0;
}

int vhdup__azure_sink_new(const vhdup__azure_sink_opts *o, vhdup__sink **out, vhdup__err *err) {
  *out = NULL;
  az_sink *s = vhdup__calloc(1, sizeof(*s));
  const char *shown = o->target.shown != NULL ? o->target.shown : o->target.destination;
  if (s == NULL || (s->shown = vhdup__strdup(shown)) == NULL) {
    vhdup__free(s);
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  int rc = blob_setup(s, o, err);
  if (rc == 0) {
    rc = vhdup__az_call_new(o->loop, o->http, &o->retry, on_retry, s, &s->ctl);
    if (rc != 0) {
      vhdup__az_blob_free(&s->blob);
      vhdup__errf(err, rc, "%s", vhdup_strerror(rc));
    }
  }
  if (rc != 0) {
    vhdup__free(s->shown);
    vhdup__free(s);
    return rc;
  }
  s->o = *o;
  s->o.target.shown = s->shown;
  s->o.target.destination = NULL; /* the owner's; not kept */
  s->o.target.connection_string = s->o.target.account_key = s->o.target.sas_token = NULL;
  vhdup__list_init(&s->writes);
  s->base.ops = &az_sink_ops;
  s->base.max_in_flight = 0;
  /* Managed disks' upload endpoints (md-*.blob.storage.azure.net) take no
   * blob properties; elsewhere the whole-disk MD5 is stored. */
  s->base.info.can_set_properties = strncmp(s->blob.url.host, "md-", 3) != 0;
  *out = &s->base;
  return 0;
}
