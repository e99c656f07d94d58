/* One Azure request runner for every control request (create, HEAD, Get
 * Page Ranges, clear, properties, reads): a builder describes the request
 * (src/azure) afresh for each attempt, so the date and signature are new;
 * the engine's HTTP client sends it; the answer is classified
 * (vhdup__target_classify); a retryable failure is tried again after an
 * exponential backoff with full jitter, never sooner than the server's
 * Retry-After. Azure may answer any operation with 500 or 503, and asks
 * clients to retry those (REST "Status and error codes", api-version
 * 2021-08-06). One call runs at a time per runner; the runner owns a timer
 * and is closed like a libuv handle. */
#ifndef VHDUP_UPLOAD_AZ_CALL_H
#define VHDUP_UPLOAD_AZ_CALL_H

#include "azure/azure.h"
#include "net/http.h"
#include "upload/target.h"
#include "util/err.h"

#include <stdint.h>

typedef struct vhdup__az_call vhdup__az_call;

/* The most headers one Azure request carries (the builders in src/azure
 * add at most a dozen). */
#define VHDUP__AZ_MAX_HEADERS 24

/* The HTTP request for Azure request r with body: its headers as pointers
 * into hdrs (VHDUP__AZ_MAX_HEADERS entries), which must outlive the
 * submit. Returns 0 or VHDUP_ELIMIT (too many headers). */
int vhdup__az_http_req(const vhdup__az_request *r, vhdup__http_header *hdrs, const void *body,
                       vhdup__http_req *out);

/* Tries and backoff; zero fields take the defaults (util/defaults.h). */
typedef struct vhdup__az_retry_policy {
  unsigned max_attempts; /* tries, the first included */
  uint32_t backoff_base_ms;
  uint32_t backoff_cap_ms;
} vhdup__az_retry_policy;

/* A retry about to wait: text is "retrying <step> after <what> (attempt K
 * of N)", K the attempt that follows the wait. Never holds a secret. */
typedef struct vhdup__az_retry_note {
  const char *step;
  const char *what;
  unsigned attempt;
  unsigned max_attempts;
  uint32_t delay_ms;
  const char *text;
} vhdup__az_retry_note;

/* How a call ended. Pointers are valid during the callback only. */
typedef struct vhdup__az_call_result {
  int error;                    /* 0: a 2xx answer */
  long http_status;             /* 0 without an answer */
  const char *code;             /* Azure's error code ("BlobNotFound"), or "" */
  const char *message;          /* what went wrong, "" on success; never a secret */
  unsigned attempts;            /* tries made */
  const vhdup__http_resp *resp; /* the last answer, NULL without one */
} vhdup__az_call_result;

/* Fills req for one attempt; returns 0 or an error with err's message. */
typedef int (*vhdup__az_build_fn)(void *ctx, vhdup__az_request *req, vhdup__err *err);
typedef void (*vhdup__az_call_done_fn)(vhdup__az_call *c, const vhdup__az_call_result *r,
                                       void *data);
typedef void (*vhdup__az_retry_fn)(vhdup__az_call *c, const vhdup__az_retry_note *n, void *data);

/* One request to run. */
typedef struct vhdup__az_call_req {
  const char *step;         /* in words: "the blob create", "Get Page Ranges" */
  vhdup__az_build_fn build; /* called once per attempt */
  void *build_ctx;
  const void *body;         /* valid until done; its length is the request's */
  size_t max_response_body; /* 0: the client's default */
  vhdup__az_call_done_fn done;
  void *data;
} vhdup__az_call_req;

/* A runner on http's loop; on_retry (may be NULL) hears of each retry. */
int vhdup__az_call_new(uv_loop_t *loop, vhdup__http *http, const vhdup__az_retry_policy *p,
                       vhdup__az_retry_fn on_retry, void *retry_data, vhdup__az_call **out)
    __attribute__((warn_unused_result));

/* Starts a request; done fires exactly once, from the loop, never from
 * inside this call (a build failure arrives through done too). Returns 0,
 * VHDUP_EBUSY (a call is running) or VHDUP_ECANCELED (closing). */
int vhdup__az_call_start(vhdup__az_call *c, const vhdup__az_call_req *r)
    __attribute__((warn_unused_result));

/* Non-zero while a call has not yet reported. */
int vhdup__az_call_busy(const vhdup__az_call *c);

/* Stops the running call, whether sending or waiting to retry: its done
 * fires from the loop with VHDUP_ECANCELED. Nothing running: no effect. */
void vhdup__az_call_cancel(vhdup__az_call *c);

/* Cancels what runs (its done still fires), closes the timer, then calls
 * close_cb (may be NULL); c is freed after it. Twice does nothing. */
void vhdup__az_call_close(vhdup__az_call *c, void (*close_cb)(vhdup__az_call *c, void *data),
                          void *data);

#endif
