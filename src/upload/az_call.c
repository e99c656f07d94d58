/* The Azure request runner (az_call.h). */
#include "upload/az_call.h"

#include "util/alloc.h"
#include "util/defaults.h"
#include "util/rng.h"

#include <stdio.h>
#include <string.h>

struct vhdup__az_call {
  uv_loop_t *loop;
  vhdup__http *http;
  vhdup__az_retry_policy p;
  vhdup__az_retry_fn on_retry;
  void *retry_data;
  vhdup__rng rng;
  uv_timer_t timer;
  vhdup__http_xfer *x;
  vhdup__az_request req;
  vhdup__http_header hdrs[VHDUP__AZ_MAX_HEADERS];
  vhdup__az_call_req cur;
  unsigned attempt;
  int running;
  int canceled;
  int pending_error; /* an end found while starting, reported from the timer */
  int closing;
  int timer_closing;
  void (*close_cb)(vhdup__az_call *c, void *data);
  void *close_data;
  char code[64];
  char msg[VHDUP__ERRMSG_MAX];
};

int vhdup__az_http_req(const vhdup__az_request *r, vhdup__http_header *hdrs, const void *body,
                       vhdup__http_req *out) {
  if (r->nheaders > VHDUP__AZ_MAX_HEADERS)
    return VHDUP_ELIMIT;
  for (size_t i = 0; i < r->nheaders; i++) {
    hdrs[i].name = r->headers[i].name;
    hdrs[i].value = r->headers[i].value;
  }
  *out = (vhdup__http_req){.method = r->method,
                           .url = r->url,
                           .headers = hdrs,
                           .n_headers = r->nheaders,
                           .body = body,
                           .body_len = r->content_length};
  return 0;
}

int vhdup__az_call_new(uv_loop_t *loop, vhdup__http *http, const vhdup__az_retry_policy *p,
                       vhdup__az_retry_fn on_retry, void *retry_data, vhdup__az_call **out) {
  *out = NULL;
  vhdup__az_call *c = vhdup__calloc(1, sizeof(*c));
  if (c == NULL)
    return VHDUP_ENOMEM;
  int rc = uv_timer_init(loop, &c->timer);
  if (rc != 0) {
    vhdup__free(c);
    return rc;
  }
  c->timer.data = c;
  c->loop = loop;
  c->http = http;
  if (p != NULL)
    c->p = *p;
  if (c->p.max_attempts == 0)
    c->p.max_attempts = VHDUP__DEFAULT_MAX_ATTEMPTS;
  if (c->p.backoff_base_ms == 0)
    c->p.backoff_base_ms = VHDUP__DEFAULT_BACKOFF_BASE_MS;
  if (c->p.backoff_cap_ms == 0)
    c->p.backoff_cap_ms = VHDUP__DEFAULT_BACKOFF_CAP_MS;
  c->on_retry = on_retry;
  c->retry_data = retry_data;
  vhdup__rng_seed(&c->rng);
  *out = c;
  return 0;
}

static void timer_closed(uv_handle_t *h) {
  vhdup__az_call *c = h->data;
  if (c->close_cb != NULL)
    c->close_cb(c, c->close_data);
  vhdup__az_request_free(&c->req);
  vhdup__free(c);
}

static void close_timer(vhdup__az_call *c) {
  if (c->timer_closing)
    return;
  c->timer_closing = 1;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, timer_closed);
}

/* Ends the call: done fires once; a close asked meanwhile goes on after. */
static void report(vhdup__az_call *c, int error, const vhdup__http_resp *resp) {
  vhdup__az_call_result r = {
      .error = error,
      .http_status = resp != NULL ? resp->status : 0,
      .code = c->code,
      .message = error != 0 ? c->msg : "",
      .attempts = c->attempt,
      .resp = resp,
  };
  c->running = 0;
  c->cur.done(c, &r, c->cur.data);
  if (c->closing && !c->running)
    close_timer(c);
}

static void on_timer(uv_timer_t *t);

/* Reports error (with c->msg) from the loop: never inside a caller's call. */
static void report_later(vhdup__az_call *c, int error) {
  c->pending_error = error;
  uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void http_done(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data);

/* Describes the request afresh (new date, new signature) and sends it. */
static void send_attempt(vhdup__az_call *c) {
  vhdup__err err;
  vhdup__err_clear(&err);
  vhdup__az_request_free(&c->req);
  memset(&c->req, 0, sizeof(c->req));
  c->attempt++;
  int rc = c->cur.build(c->cur.build_ctx, &c->req, &err);
  vhdup__http_req hr;
  if (rc == 0 && vhdup__az_http_req(&c->req, c->hdrs, c->cur.body, &hr) != 0)
    rc = vhdup__errf(&err, VHDUP_ELIMIT, "too many request headers");
  if (rc == 0) {
    hr.max_response_body = c->cur.max_response_body;
    rc = vhdup__http_submit(c->http, &hr, http_done, c, &c->x);
    if (rc != 0)
      vhdup__errf(&err, rc, "cannot send the request: %s", vhdup_strerror(rc));
  }
  if (rc != 0) {
    snprintf(c->msg, sizeof(c->msg), "%s", err.msg[0] ? err.msg : vhdup_strerror(rc));
    report_later(c, rc);
  }
}

static void on_timer(uv_timer_t *t) {
  vhdup__az_call *c = t->data;
  if (c->pending_error != 0) {
    int error = c->pending_error;
    c->pending_error = 0;
    report(c, error, NULL);
  } else if (c->canceled) {
    snprintf(c->msg, sizeof(c->msg), "canceled");
    report(c, VHDUP_ECANCELED, NULL);
  } else {
    send_attempt(c);
  }
}

/* Waits before the next attempt, and says so. */
static void retry_later(vhdup__az_call *c, long retry_after_s) {
  uint32_t ms = vhdup__az_backoff_ms(c->attempt - 1, c->p.backoff_base_ms, c->p.backoff_cap_ms,
                                     retry_after_s, vhdup__rng_next, &c->rng);
  if (c->on_retry != NULL) {
    char text[VHDUP__ERRMSG_MAX + 128];
    snprintf(text, sizeof(text), "retrying %s after %s (attempt %u of %u)", c->cur.step, c->msg,
             c->attempt + 1, c->p.max_attempts);
    vhdup__az_retry_note n = {
        .step = c->cur.step,
        .what = c->msg,
        .attempt = c->attempt + 1,
        .max_attempts = c->p.max_attempts,
        .delay_ms = ms,
        .text = text,
    };
    c->on_retry(c, &n, c->retry_data);
  }
  if (c->canceled) /* on_retry may cancel */
    ms = 0;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void http_done(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  vhdup__az_call *c = data;
  (void)x;
  c->x = NULL;
  c->code[0] = '\0';
  if (c->canceled) {
    snprintf(c->msg, sizeof(c->msg), "canceled");
    report(c, VHDUP_ECANCELED, r);
    return;
  }
  vhdup__target_result t;
  c->msg[0] = '\0';
  vhdup__target_classify(r, &t, c->msg, sizeof(c->msg));
  snprintf(c->code, sizeof(c->code), "%s", t.error_code);
  if (t.error != 0 && t.retryable && c->attempt < c->p.max_attempts) {
    retry_later(c, t.retry_after_s);
    return;
  }
  report(c, t.error, r);
}

int vhdup__az_call_start(vhdup__az_call *c, const vhdup__az_call_req *r) {
  if (c->closing)
    return VHDUP_ECANCELED;
  if (c->running)
    return VHDUP_EBUSY;
  c->cur = *r;
  if (c->cur.step == NULL)
    c->cur.step = "the request";
  c->attempt = 0;
  c->canceled = 0;
  c->pending_error = 0;
  c->code[0] = '\0';
  c->msg[0] = '\0';
  c->running = 1;
  send_attempt(c);
  return 0;
}

int vhdup__az_call_busy(const vhdup__az_call *c) {
  return c->running;
}

void vhdup__az_call_cancel(vhdup__az_call *c) {
  if (!c->running || c->canceled)
    return;
  c->canceled = 1;
  if (c->x != NULL)
    vhdup__http_cancel(c->x); /* http_done reports */
  else
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

void vhdup__az_call_close(vhdup__az_call *c, void (*close_cb)(vhdup__az_call *c, void *data),
                          void *data) {
  if (c->closing)
    return;
  c->closing = 1;
  c->close_cb = close_cb;
  c->close_data = data;
  if (c->running)
    vhdup__az_call_cancel(c); /* report() closes the timer after done */
  else
    close_timer(c);
}
