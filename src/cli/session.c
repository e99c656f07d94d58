/* The life of a command that works on a libuv loop of its own (upload,
 * expand, run, blob): one loop, one engine, SIGINT/SIGTERM turned into a
 * cancel, and the close chain that leaves nothing open, written once. */
#include "cli/cli.h"

#include <signal.h>
#include <string.h>

static void on_signal(uv_signal_t *h, int signum) {
  vhdup__cli_session *s = h->data;
  (void)signum;
  if (s->interrupted)
    return;
  s->interrupted = 1;
  s->on_interrupt(s->data);
}

int vhdup__cli_session_open(vhdup__cli_session *s, const char *cmd, const vhdup_engine_options *eo,
                            void (*on_interrupt)(void *data), void *data) {
  memset(s, 0, sizeof(*s));
  s->on_interrupt = on_interrupt;
  s->data = data;
  int rc = uv_loop_init(&s->loop);
  if (rc == 0) {
    rc = vhdup_engine_new(&s->loop, eo, &s->engine);
    if (rc != 0)
      uv_loop_close(&s->loop);
  }
  if (rc != 0) {
    fprintf(stderr, "vhdup: %s: %s\n", cmd, vhdup_strerror(rc));
    return vhdup__exit_code(rc);
  }
  uv_signal_init(&s->loop, &s->sigint);
  uv_signal_init(&s->loop, &s->sigterm);
  s->sigint.data = s->sigterm.data = s;
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  return 0;
}

static void job_closed(vhdup_job *job) {
  (void)job;
}

static void engine_closed(vhdup_engine *e) {
  (void)e;
}

void vhdup__cli_session_finish(vhdup__cli_session *s, vhdup_job *job) {
  if (s->finished)
    return;
  s->finished = 1;
  if (job != NULL)
    vhdup_job_close(job, job_closed);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  /* The engine closes once its jobs are gone, the one above included. */
  vhdup_engine_close(s->engine, engine_closed);
}

static void close_left(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

void vhdup__cli_session_run(vhdup__cli_session *s) {
  uv_run(&s->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&s->loop) == 0)
    return;
  /* A handle nobody closed is a bug; close it anyway so the loop can go. */
  fprintf(stderr, "vhdup: internal error: handles left open on the loop\n");
  uv_walk(&s->loop, close_left, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  (void)uv_loop_close(&s->loop);
}

int vhdup__cli_session_exit_code(const vhdup__cli_session *s, int status) {
  if (s->interrupted && status == VHDUP_ECANCELED)
    return VHDUP_EXIT_INTERRUPTED;
  return vhdup__exit_code(status);
}
