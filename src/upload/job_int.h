/* What a job holds (job.c); the engine's own state is in engine.h. */
#ifndef VHDUP_UPLOAD_JOB_INT_H
#define VHDUP_UPLOAD_JOB_INT_H

#include "vhdup.h"

#include "upload/engine.h"
#include "upload/file_src.h"
#include "upload/journal.h"
#include "upload/pipeline.h"
#include "upload/sink.h"
#include "util/list.h"

#define JOB_STRINGS 8

struct vhdup_job {
  vhdup_engine *e;
  vhdup__list node;    /* in e->jobs */
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
  uint64_t last_progress;   /* loop time of the last progress callback */
  uint64_t control_retries; /* retried control requests (create, HEAD, ...) */
  double seconds;
  int started;
  int done;
  int closing;
  int pl_closing;
  vhdup__resume resume; /* the journal and the rules for resuming */
  int verifying;
  int verified;
  vhdup__sink_verify verify;
  vhdup_job_cb done_cb;
  vhdup_job_close_cb close_cb;
  char message[VHDUP__ERRMSG_MAX];
};

#endif
