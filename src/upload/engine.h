/* The engine: one loop, one HTTP client and one memory/connection budget
 * shared by every job and blob operation started on it. Jobs (job.c) and
 * blob operations (blob_ops.c) link themselves into its lists; the engine
 * closes its HTTP client once both lists are empty and a close was asked. */
#ifndef VHDUP_UPLOAD_ENGINE_H
#define VHDUP_UPLOAD_ENGINE_H

#include "vhdup.h"

#include "net/http.h"
#include "upload/pipeline.h"
#include "util/list.h"

struct vhdup_engine {
  uv_loop_t *loop;
  vhdup_engine_options o;
  char *ca_file;
  vhdup__http *http;     /* made by the first job that needs it */
  vhdup__budget *budget; /* requests and read buffers all jobs share */
  int http_closing;
  unsigned pending_closes;
  vhdup__list jobs;     /* vhdup_job.node (job.c) */
  vhdup__list blob_ops; /* vhdup_blob_op.node (blob_ops.c) */
  int closing;
  vhdup_engine_close_cb close_cb;
};

/* The engine's HTTP client, made on first use. */
int vhdup__engine_http(vhdup_engine *e, vhdup__http **out) __attribute__((warn_unused_result));
/* A job or blob operation left the engine's lists: finish a pending
 * engine close. */
void vhdup__engine_job_gone(vhdup_engine *e);

/* Cancels every running job (job.c) or blob operation (blob_ops.c), for
 * the engine's close. */
void vhdup__jobs_cancel_all(vhdup_engine *e);
void vhdup__blob_ops_cancel_all(vhdup_engine *e);

#endif
