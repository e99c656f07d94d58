/* What the engine and job objects hold, shared by job.c and the sinks. */
#ifndef VHDUP_UPLOAD_JOB_INT_H
#define VHDUP_UPLOAD_JOB_INT_H

#include "vhdup.h"

#include "net/http.h"
#include "upload/file_src.h"
#include "upload/journal.h"
#include "upload/pipeline.h"
#include "upload/sink.h"

struct vhdup_engine {
  uv_loop_t *loop;
  vhdup_engine_options o;
  char *ca_file;
  vhdup__http *http;     /* made by the first job that needs it */
  vhdup__budget *budget; /* requests and read buffers all jobs share */
  int http_closing;
  unsigned pending_closes;
  vhdup_job *jobs;
  struct vhdup_blob_op *blob_ops; /* running blob operations (blob_ops.c) */
  int closing;
  void (*close_cb)(vhdup_engine *e);
};

#define JOB_STRINGS 8

struct vhdup_job {
  vhdup_engine *e;
  vhdup_job *prev, *next;
  vhdup_job_options o; /* string fields point into strings[] */
  char *strings[JOB_STRINGS];
  char *dest_shown; /* destination with the SAS signature redacted */
  vhdup__file *file;
  vhdup__disk *disk;
  vhdup__sink *sink;
  vhdup__pipeline *pl;
  uint64_t blob_size;
  uint64_t data_bytes; /* allocated data the plan reads */
  uint64_t start_ns;
  uint64_t last_progress; /* loop time of the last progress callback */
  double seconds;
  int started;
  int done;
  int closing;
  int pl_closing;
  vhdup__journal *journal;
  vhdup__journal_id journal_id;
  char *journal_path;
  char *journal_dest; /* destination without its query */
  char *source_abs;
  int blob_resumable; /* the destination was prepared: a journal is worth keeping */
  int verifying;
  int verified;
  vhdup__sink_verify verify;
  vhdup_job_cb done_cb;
  void (*close_cb)(vhdup_job *job);
  char message[VHDUP__ERRMSG_MAX];
};

/* The engine's HTTP client, made on first use. */
int vhdup__engine_http(vhdup_engine *e, vhdup__http **out);
/* A job or blob operation left the engine's lists: finish a pending
 * engine close. */
void vhdup__engine_job_gone(vhdup_engine *e);
/* Cancels every running blob operation (engine close). */
void vhdup__blob_ops_cancel_all(vhdup_engine *e);

/* The Azure page-blob sink for job j (sink_azure.c). */
int vhdup__azure_sink_new(vhdup_job *j, vhdup__sink **out, vhdup__err *err)
    __attribute__((warn_unused_result));

#endif
