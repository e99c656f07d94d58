/* What a person or a program watching an upload sees: a progress bar on a
 * terminal, JSON lines for machines, notes, and the closing summary. */
#ifndef VHDUP_CLI_PROGRESS_H
#define VHDUP_CLI_PROGRESS_H

#include "vhdup.h"

enum {
  VHDUP__PROGRESS_AUTO = 0, /* a bar when stderr is a terminal, else nothing */
  VHDUP__PROGRESS_BAR,
  VHDUP__PROGRESS_JSON, /* one JSON object per line on stdout */
  VHDUP__PROGRESS_NONE,
};

typedef struct vhdup__progress {
  uv_timer_t timer;
  int timer_inited;
  vhdup_job *job;
  int mode;
  int quiet;
  int bar_shown;
  uint64_t last_bytes;
  double last_seconds;
  double rate; /* bytes/s, smoothed */
} vhdup__progress;

int vhdup__progress_parse_mode(const char *s, int *mode);
void vhdup__progress_init(vhdup__progress *p, uv_loop_t *loop, vhdup_job *job, int mode, int quiet);
void vhdup__progress_start(vhdup__progress *p);
/* A note or warning (stderr), keeping the bar intact. */
void vhdup__progress_note(vhdup__progress *p, const char *msg);
/* The summary (stdout) or the error (stderr) once the job is done. */
void vhdup__progress_finish(vhdup__progress *p, vhdup_job *job, int status, const char *source);
void vhdup__progress_close(vhdup__progress *p);

#endif
