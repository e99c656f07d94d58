/* The public blob operations (vhdup.h "Blob operations"): Get Blob
 * Properties and a segmented, paged Get Page Ranges, described by src/azure
 * and run by the Azure request runner (az_call.h: retries, backoff, retry
 * notices) on the engine's HTTP client, one request at a time per
 * operation. Each operation also owns a timer, to report an early error
 * from the loop (never from inside the starting call); it is freed once
 * both the timer and the runner are closed, and only then does the engine
 * stop waiting for it. */
#include "vhdup.h"

#include "azure/azure.h"
#include "net/http.h"
#include "upload/az_call.h"
#include "upload/engine.h"
#include "upload/page_walk.h"
#include "upload/target.h"
#include "util/alloc.h"
#include "util/crypto.h"
#include "util/defaults.h"
#include "util/list.h"
#include "util/secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OP_INFO, OP_RANGES } op_kind;

typedef enum {
  STEP_HEAD, /* Get Blob Properties */
  STEP_LIST, /* Get Page Ranges of the walk's current segment */
} op_step;

struct vhdup_blob_op {
  vhdup_engine *e;
  vhdup__list node; /* in e->blob_ops */
  op_kind kind;
  op_step step;
  vhdup__az_call *call;
  vhdup__az_blob blob;
  int blob_inited;
  char *shown; /* the blob's URL, sig=REDACTED */
  uv_timer_t timer;
  unsigned closes; /* handles still closing: the timer and the runner */
  unsigned max_attempts;
  vhdup_blob_notice_cb notice_cb;
  int canceled;
  int finished;
  int status; /* for an end reported from the timer */
  vhdup_blob_info_cb info_cb;
  vhdup_blob_range_cb range_cb;
  vhdup_blob_done_cb done_cb;
  void *data;
  /* ranges */
  vhdup_blob_ranges_options ro;
  vhdup__page_walk walk;
  char marker[VHDUP__AZ_MARKER_MAX + 1];
  int stop; /* range_cb's nonzero value */
  char msg[VHDUP__ERRMSG_MAX];
};

void vhdup_blob_target_init(vhdup_blob_target *t) {
  memset(t, 0, sizeof(*t));
  t->use_environment = 1;
  t->max_attempts = VHDUP__DEFAULT_BLOB_OP_ATTEMPTS;
}

void vhdup_blob_ranges_options_init(vhdup_blob_ranges_options *o) {
  memset(o, 0, sizeof(*o));
  o->segment_size = VHDUP__DEFAULT_RANGES_SEGMENT;
  o->max_results = VHDUP__DEFAULT_RANGES_MAX_RESULTS;
}

static void op_closed(vhdup_blob_op *op) {
  if (--op->closes > 0)
    return;
  vhdup_engine *e = op->e;
  vhdup__list_remove(&op->node);
  if (op->blob_inited)
    vhdup__az_blob_free(&op->blob);
  vhdup__free(op->shown);
  vhdup__free(op);
  vhdup__engine_job_gone(e);
}

static void timer_closed(uv_handle_t *h) {
  op_closed(h->data);
}

static void call_closed(vhdup__az_call *c, void *data) {
  (void)c;
  op_closed(data);
}

/* Reports the end once, then closes the timer and the runner; the op is
 * freed after both. */
static void finish(vhdup_blob_op *op, int status, const vhdup_blob_info *info) {
  if (op->finished)
    return;
  op->finished = 1;
  if (status == 0)
    op->msg[0] = '\0';
  else if (op->msg[0] == '\0')
    snprintf(op->msg, sizeof(op->msg), "%s: %s", op->shown, vhdup_strerror(status));
  uv_timer_stop(&op->timer);
  if (op->kind == OP_INFO)
    op->info_cb(op, status, status == 0 ? info : NULL, op->msg, op->data);
  else
    op->done_cb(op, status, op->msg, op->data);
  op->closes = op->call != NULL ? 2 : 1;
  uv_close((uv_handle_t *)&op->timer, timer_closed);
  if (op->call != NULL)
    vhdup__az_call_close(op->call, call_closed, op);
}

static void fail(vhdup_blob_op *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(vhdup_blob_op *op, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(op->msg, sizeof(op->msg), fmt, ap);
  va_end(ap);
  finish(op, status, NULL);
}

static void on_timer(uv_timer_t *t);

/* Goes on from the loop, a moment from now: sends the current step's
 * request (status 0) or ends with status (and op->msg). */
static void later(vhdup_blob_op *op, int status) {
  op->status = status;
  uv_timer_start(&op->timer, on_timer, 0, 0);
}

static void call_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data);

/* Describes the current step's request; called for every attempt. */
static int build_step(void *ctx, vhdup__az_request *req, vhdup__err *err) {
  vhdup_blob_op *op = ctx;
  if (op->step == STEP_HEAD)
    return vhdup__az_req_get_properties(&op->blob, NULL, req, err);
  uint64_t off = 0, len = 0;
  (void)vhdup__page_walk_segment(&op->walk, &off, &len);
  int paged = vhdup__az_blob_version_at_least(&op->blob, VHDUP__AZ_VERSION_MARKER);
  return vhdup__az_req_get_page_ranges(&op->blob, off, len,
                                       paged && op->marker[0] ? op->marker : NULL,
                                       paged ? op->ro.max_results : 0, NULL, req, err);
}

/* Runs the current step's request. */
static void send_step(vhdup_blob_op *op) {
  vhdup__az_call_req r = {
      .step = op->step == STEP_HEAD ? "Get Blob Properties" : "Get Page Ranges",
      .build = build_step,
      .build_ctx = op,
      .max_response_body = VHDUP__AZ_PAGELIST_BODY_MAX,
      .done = call_done,
      .data = op,
  };
  int rc = vhdup__az_call_start(op->call, &r);
  if (rc != 0)
    fail(op, rc, "%s: cannot send the request: %s", op->shown, vhdup_strerror(rc));
}

static void on_timer(uv_timer_t *t) {
  vhdup_blob_op *op = t->data;
  if (op->canceled) {
    op->msg[0] = '\0';
    finish(op, VHDUP_ECANCELED, NULL);
  } else if (op->status != 0)
    finish(op, op->status, NULL);
  else
    send_step(op);
}

static const char *header(const vhdup__http_resp *r, const char *name) {
  const char *v = vhdup__http_header_get(r, name);
  return v != NULL ? v : "";
}

static void info_answer(vhdup_blob_op *op, const vhdup__http_resp *r) {
  vhdup_blob_info info;
  memset(&info, 0, sizeof(info));
  info.url = op->shown;
  info.size = strtoull(header(r, "Content-Length"), NULL, 10);
  info.blob_type = header(r, "x-ms-blob-type");
  info.etag = header(r, "ETag");
  info.last_modified = header(r, "Last-Modified");
  info.creation_time = header(r, "x-ms-creation-time");
  info.content_type = header(r, "Content-Type");
  info.content_md5_base64 = header(r, "Content-MD5");
  uint8_t md5[24];
  long n = vhdup__base64_decode(info.content_md5_base64, strlen(info.content_md5_base64), md5,
                                sizeof(md5));
  if (n == 16) {
    info.has_content_md5 = 1;
    memcpy(info.content_md5, md5, 16);
  }
  info.lease_state = header(r, "x-ms-lease-state");
  info.lease_status = header(r, "x-ms-lease-status");
  info.lease_duration = header(r, "x-ms-lease-duration");
  const char *seq = vhdup__http_header_get(r, "x-ms-blob-sequence-number");
  if (seq != NULL) {
    info.has_sequence_number = 1;
    info.sequence_number = strtoull(seq, NULL, 10);
  }
  if (op->kind == OP_INFO) {
    finish(op, 0, &info);
    return;
  }
  /* Listing to the blob's end: now its size is known. */
  if (strcmp(info.blob_type, "PageBlob") != 0) {
    fail(op, VHDUP_EUNSUPPORTED, "%s is a %s, not a page blob: it has no page ranges", op->shown,
         info.blob_type[0] ? info.blob_type : "blob of unknown type");
    return;
  }
  if (op->ro.offset > info.size) {
    fail(op, VHDUP_EINVAL, "%s: offset %llu is beyond the blob's end (%llu bytes)", op->shown,
         (unsigned long long)op->ro.offset, (unsigned long long)info.size);
    return;
  }
  if (vhdup__page_walk_init(&op->walk, op->ro.offset, info.size - op->ro.offset,
                            op->ro.segment_size) != 0) {
    fail(op, VHDUP_EFORMAT, "%s: the blob's size %llu is not a multiple of 512", op->shown,
         (unsigned long long)info.size);
    return;
  }
  op->step = STEP_LIST;
  op->marker[0] = '\0';
  if (vhdup__page_walk_segment(&op->walk, &(uint64_t){0}, &(uint64_t){0}))
    send_step(op);
  else
    finish(op, 0, NULL);
}

static int emit(vhdup_blob_op *op, const vhdup__page_span *s) {
  if (op->canceled)
    return VHDUP_ECANCELED;
  op->stop = op->range_cb(op, s->start, s->end, op->data);
  if (op->stop != 0)
    return op->stop;
  return op->canceled ? VHDUP_ECANCELED : 0;
}

static int on_range(void *ctx, const vhdup__az_page_range *r) {
  vhdup_blob_op *op = ctx;
  vhdup__page_span s;
  if (r->clear)
    return 0;
  int rc = vhdup__page_walk_add(&op->walk, r->start, r->end, &s);
  if (rc < 0)
    return rc;
  return rc == 1 ? emit(op, &s) : 0;
}

static void ranges_answer(vhdup_blob_op *op, const vhdup__http_resp *r) {
  if (r->body_truncated) {
    /* Without markers (service versions before 2020-10-02, as managed
     * disks' upload SAS URLs carry) a fragmented segment can answer more
     * than we keep: ask for half of it. Nothing of it was handed out. */
    if (op->marker[0] == '\0' && vhdup__page_walk_shrink(&op->walk) == 0) {
      send_step(op);
      return;
    }
    fail(op, VHDUP_ELIMIT, "%s: a Get Page Ranges answer exceeded %u bytes", op->shown,
         VHDUP__AZ_PAGELIST_BODY_MAX);
    return;
  }
  vhdup__err err;
  vhdup__err_clear(&err);
  char marker[VHDUP__AZ_MARKER_MAX + 1];
  int rc = vhdup__az_page_list_parse(r->body, r->body_len, 0, on_range, op, marker, sizeof(marker),
                                     &err);
  if (rc == 0 && marker[0] != '\0' && strcmp(marker, op->marker) == 0 && !op->canceled &&
      op->stop == 0) {
    fail(op, VHDUP_EFORMAT, "%s: the service answered the same NextMarker twice", op->shown);
    return;
  }
  if (rc == 0)
    memcpy(op->marker, marker, sizeof(marker));
  if (op->canceled && op->stop == 0) {
    finish(op, VHDUP_ECANCELED, NULL);
    return;
  }
  if (op->stop != 0) {
    fail(op, op->stop, "%s: stopped by the range callback", op->shown);
    return;
  }
  if (rc != 0) {
    fail(op, rc, "%s: page ranges: %s", op->shown,
         err.msg[0] ? err.msg : "ranges out of order or misaligned");
    return;
  }
  if (op->marker[0] == '\0') {
    vhdup__page_walk_next(&op->walk);
    if (!vhdup__page_walk_segment(&op->walk, &(uint64_t){0}, &(uint64_t){0})) {
      vhdup__page_span s;
      if (vhdup__page_walk_flush(&op->walk, &s) && emit(op, &s) != 0) {
        finish(op, op->stop != 0 ? op->stop : VHDUP_ECANCELED, NULL);
        return;
      }
      finish(op, 0, NULL);
      return;
    }
  }
  send_step(op);
}

static void call_done(vhdup__az_call *c, const vhdup__az_call_result *r, void *data) {
  vhdup_blob_op *op = data;
  (void)c;
  if (op->canceled) {
    op->msg[0] = '\0';
    finish(op, VHDUP_ECANCELED, NULL);
  } else if (r->error == VHDUP_ENOTFOUND) {
    fail(op, r->error, "%s: %s (no such %s)", op->shown, r->message,
         strcmp(r->code, "ContainerNotFound") == 0 ? "container" : "blob");
  } else if (r->error == VHDUP_EAUTH) {
    fail(op, r->error,
         "%s: %s (check the key or the SAS: is it valid, unexpired, with read permission?)",
         op->shown, r->message);
  } else if (r->error != 0 && r->attempts > 1) {
    fail(op, r->error, "%s: %s (after %u attempts)", op->shown, r->message, r->attempts);
  } else if (r->error != 0) {
    fail(op, r->error, "%s: %s", op->shown, r->message);
  } else if (op->step == STEP_HEAD) {
    info_answer(op, r->resp);
  } else {
    ranges_answer(op, r->resp);
  }
}

/* Each retry goes to the owner's notice callback, worded like an upload's. */
static void on_retry(vhdup__az_call *c, const vhdup__az_retry_note *n, void *data) {
  vhdup_blob_op *op = data;
  (void)c;
  if (op->notice_cb != NULL && !op->canceled)
    op->notice_cb(op, n->text, op->data);
}

static int op_start(vhdup_engine *e, const vhdup_blob_target *t, vhdup_blob_op *op) {
  op->e = e;
  op->max_attempts = t->max_attempts > 0 ? t->max_attempts : VHDUP__DEFAULT_BLOB_OP_ATTEMPTS;
  char *shown = vhdup__redact_dup(t->url);
  if (shown == NULL)
    return VHDUP_ENOMEM;
  int rc = uv_timer_init(e->loop, &op->timer);
  if (rc != 0) {
    vhdup__free(shown);
    return rc;
  }
  op->timer.data = op;
  op->shown = shown;
  vhdup__list_push_head(&e->blob_ops, &op->node);

  /* From here on every failure is reported through the callback. */
  vhdup__err err;
  vhdup__err_clear(&err);
  vhdup__http *http;
  rc = vhdup__engine_http(e, &http);
  if (rc == 0) {
    vhdup__az_retry_policy p = {.max_attempts = op->max_attempts};
    rc = vhdup__az_call_new(e->loop, http, &p, on_retry, op, &op->call);
  }
  if (rc != 0) {
    snprintf(op->msg, sizeof(op->msg), "cannot start the HTTP client: %s", vhdup_strerror(rc));
    later(op, rc);
    return 0;
  }
  vhdup__target tg;
  vhdup__target_from_blob(t, op->shown, &tg);
  vhdup__az_url url;
  vhdup__az_cred cred;
  memset(&url, 0, sizeof(url));
  rc = vhdup__target_resolve(&tg, &url, &cred, &err);
  if (rc == 0) {
    vhdup__az_blob_opts bo = {.version = t->service_version, .client_id_prefix = "vhdup-blob"};
    rc = vhdup__az_blob_init(&op->blob, &url, &cred, &bo, &err);
    op->blob_inited = rc == 0;
  }
  vhdup__az_url_free(&url);
  vhdup__az_cred_free(&cred);
  if (rc == 0 && op->blob_inited) {
    char *display = vhdup__az_blob_display_url(&op->blob);
    if (display != NULL) {
      vhdup__free(op->shown);
      op->shown = display;
    }
  }
  if (rc != 0) {
    snprintf(op->msg, sizeof(op->msg), "%s", err.msg[0] ? err.msg : vhdup_strerror(rc));
    later(op, rc);
    return 0;
  }
  later(op, 0); /* the first request, from the loop */
  return 0;
}

/* A new operation on e, unless the engine is closing. */
static int op_alloc(vhdup_engine *e, vhdup_blob_op **op) {
  if (e->closing)
    return VHDUP_ECANCELED;
  *op = vhdup__calloc(1, sizeof(**op));
  return *op == NULL ? VHDUP_ENOMEM : 0;
}

/* Starts op (filled in by the caller) and hands it out; frees it when it
 * could not start. */
static int op_launch(vhdup_engine *e, const vhdup_blob_target *t, vhdup_blob_op *op,
                     vhdup_blob_op **out) {
  int rc = op_start(e, t, op);
  if (rc != 0) {
    vhdup__free(op);
    return rc;
  }
  if (out != NULL)
    *out = op;
  return 0;
}

int vhdup_blob_get_info(vhdup_engine *e, const vhdup_blob_target *t, vhdup_blob_info_cb done_cb,
                        void *data, vhdup_blob_op **out) {
  if (out != NULL)
    *out = NULL;
  if (e == NULL || t == NULL || t->url == NULL || done_cb == NULL)
    return VHDUP_EINVAL;
  vhdup_blob_op *op;
  int rc = op_alloc(e, &op);
  if (rc != 0)
    return rc;
  op->kind = OP_INFO;
  op->step = STEP_HEAD;
  op->info_cb = done_cb;
  op->data = data;
  return op_launch(e, t, op, out);
}

int vhdup_blob_get_ranges(vhdup_engine *e, const vhdup_blob_target *t,
                          const vhdup_blob_ranges_options *o, vhdup_blob_range_cb range_cb,
                          vhdup_blob_done_cb done_cb, void *data, vhdup_blob_op **out) {
  if (out != NULL)
    *out = NULL;
  vhdup_blob_ranges_options ro;
  vhdup_blob_ranges_options_init(&ro);
  if (o != NULL) {
    ro.offset = o->offset;
    ro.length = o->length;
    if (o->segment_size != 0)
      ro.segment_size = o->segment_size;
    if (o->max_results != 0)
      ro.max_results = o->max_results;
  }
  if (e == NULL || t == NULL || t->url == NULL || range_cb == NULL || done_cb == NULL ||
      ro.offset % 512 != 0 || ro.length % 512 != 0 || ro.segment_size % 512 != 0 ||
      ro.length > UINT64_MAX - ro.offset)
    return VHDUP_EINVAL;
  vhdup_blob_op *op;
  int rc = op_alloc(e, &op);
  if (rc != 0)
    return rc;
  op->kind = OP_RANGES;
  op->ro = ro;
  op->range_cb = range_cb;
  op->done_cb = done_cb;
  op->data = data;
  if (ro.length == 0) {
    op->step = STEP_HEAD; /* the size first */
  } else {
    op->step = STEP_LIST;
    if (vhdup__page_walk_init(&op->walk, ro.offset, ro.length, ro.segment_size) != 0) {
      vhdup__free(op);
      return VHDUP_EINVAL;
    }
  }
  return op_launch(e, t, op, out);
}

void vhdup_blob_cancel(vhdup_blob_op *op) {
  if (op->finished || op->canceled)
    return;
  op->canceled = 1;
  if (op->call != NULL && vhdup__az_call_busy(op->call))
    vhdup__az_call_cancel(op->call); /* call_done finishes */
  else
    uv_timer_start(&op->timer, on_timer, 0, 0);
}

void vhdup_blob_set_notice_cb(vhdup_blob_op *op, vhdup_blob_notice_cb notice_cb) {
  op->notice_cb = notice_cb;
}

void vhdup__blob_ops_cancel_all(vhdup_engine *e) {
  vhdup__list_foreach_safe(node, &e->blob_ops) {
    vhdup_blob_cancel(vhdup__list_entry(node, vhdup_blob_op, node));
  }
}
