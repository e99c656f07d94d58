/* The Azure page-blob sink: what it needs from its owner, and no more (the
 * target, the policies an upload chose, the HTTP client and where to report
 * notices and retries), so it depends on neither the job nor the engine. */
#ifndef VHDUP_UPLOAD_SINK_AZURE_H
#define VHDUP_UPLOAD_SINK_AZURE_H

#include "net/http.h"
#include "upload/az_call.h"
#include "upload/journal.h"
#include "upload/sink.h"
#include "upload/target.h"
#include "util/err.h"

typedef struct vhdup__azure_sink_opts {
  uv_loop_t *loop;
  vhdup__http *http;
  vhdup__target target;        /* where and as whom; copied strings are not kept */
  const char *service_version; /* x-ms-version override, or NULL */
  int crc64;                   /* writes carry x-ms-content-crc64 (from 2019-02-02) */
  /* Blob size policy: a new blob is created at prepare's size; an existing
   * one is accepted only with overwrite or resume, and only at exactly that
   * size (a managed disk's upload is sized when it is created). */
  int overwrite;
  int resume;
  int create_container; /* create the container when the create finds none */
  /* With resume: narrowed to the ranges the blob really holds. */
  vhdup__journal *journal;
  vhdup__az_retry_policy retry; /* control requests' tries and backoff */
  /* Notices ("the whole-disk MD5 was not stored") and each control retry
   * ("retrying the blob create after ..."); either may be NULL. */
  void (*notice_cb)(void *ctx, const char *message);
  void (*retry_cb)(void *ctx, const char *message);
  void *ctx;
} vhdup__azure_sink_opts;

/* A sink writing to o->target's page blob. */
int vhdup__azure_sink_new(const vhdup__azure_sink_opts *o, vhdup__sink **out, vhdup__err *err)
    __attribute__((warn_unused_result));

#endif
