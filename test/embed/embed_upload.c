/* Embedding vhdup: an application that already runs a libuv loop for its
 * own work (here a TCP echo server on loopback and a 10 ms timer) uploads two
 * disks on that same loop with one engine, and reads the progress from its
 * own timer. The timer records how late it ever fired: vhdup must not hold
 * the loop. Everything closes like libuv handles, also in the middle of an
 * upload (--close-midway), and the loop closes with nothing left open.
 *
 *   embed_upload [--close-midway] [--close-after-ms MS] [--wait-clients N]
 *                DISK1 URL1 DISK2 URL2
 *
 * Credentials come from the environment (AZURE_STORAGE_CONNECTION_STRING,
 * ...), as for `vhdup upload`. Prints "listening 127.0.0.1:PORT" first.
 * Normally it runs until both uploads are done and N echo clients have come
 * and gone, and exits 0 if both succeeded. With --close-midway it closes the
 * jobs, the engine, the server and the timer from the timer's callback once
 * both jobs have sent data (or after MS), and exits 0 if the loop then
 * closes cleanly. */
#include "vhdup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 10
#define REPORT_MS 250
#define NUPLOADS 2

typedef struct app app;

typedef struct upload {
  app *a;
  int index;
  vhdup_job *job;
  int running;
  int status;
} upload;

typedef struct echo_conn {
  uv_tcp_t tcp;
  app *a;
  struct echo_conn *prev, *next;
  int closing;
  char buf[16384];
} echo_conn;

typedef struct echo_write {
  uv_write_t req;
  char data[];
} echo_write;

struct app {
  uv_loop_t loop;
  uv_tcp_t server;
  uv_timer_t tick;
  vhdup_engine *engine;
  upload uploads[NUPLOADS];
  echo_conn *conns;
  int close_midway;
  uint64_t close_after_ms;
  unsigned wait_clients;
  unsigned clients_done;
  int shutting_down;
  int closed_midway;
  int engine_closed;
  unsigned jobs_closed;
  /* The tick timer's record. */
  uint64_t start_ms, last_tick_ms, next_report_ms, ticks, worst_late_ms, worst_late_at_ms;
  /* CPU time of the loop's thread at the last tick, and in the worst
   * interval: a late tick with little CPU means the machine, not the loop's
   * callbacks, held it up. */
  uint64_t last_tick_cpu_us, worst_late_cpu_us;
  /* The echo server's. */
  unsigned connections;
  uint64_t echoed, echoed_while_uploading;
};

static int uploads_running(const app *a) {
  int n = 0;
  for (int i = 0; i < NUPLOADS; i++)
    n += a->uploads[i].running;
  return n;
}

static const char *phase_name(vhdup_phase p) {
  static const char *const names[] = {"open",   "prepare", "data", "footer",
                                      "finish", "verify",  "done"};
  return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}

static void print_progress(app *a, const char *what) {
  printf("%s t=%" PRIu64 "ms", what, uv_now(&a->loop) - a->start_ms);
  for (int i = 0; i < NUPLOADS; i++) {
    vhdup_job_stats st;
    if (a->uploads[i].job == NULL)
      continue;
    vhdup_job_get_stats(a->uploads[i].job, &st);
    printf(" | disk%d %s sent=%" PRIu64 "/%" PRIu64 " in_flight=%u", i + 1, phase_name(st.phase),
           st.bytes_sent, st.bytes_allocated, st.in_flight);
  }
  printf("\n");
  fflush(stdout);
}

static uint64_t thread_cpu_us(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
    return 0;
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- Closing everything ------------------------------------------------ */

static void conn_closed(uv_handle_t *h) {
  echo_conn *c = h->data;
  app *a = c->a;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    a->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  free(c);
}

static void conn_close(echo_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void job_closed(vhdup_job *job) {
  upload *u = vhdup_job_get_data(job);
  u->job = NULL;
  u->a->jobs_closed++;
}

/* An engine carries no data pointer, so its close callback finds the one
 * application here. */
static app *the_app;

static void engine_closed(vhdup_engine *e) {
  (void)e;
  the_app->engine = NULL;
  the_app->engine_closed = 1;
}

/* Closes what the application and vhdup hold on the loop; after this the loop
 * runs out. Safe from any callback, vhdup's included. */
static void shutdown_all(app *a) {
  if (a->shutting_down)
    return;
  a->shutting_down = 1;
  for (int i = 0; i < NUPLOADS; i++)
    if (a->uploads[i].job != NULL)
      vhdup_job_close(a->uploads[i].job, job_closed);
  if (a->engine != NULL)
    vhdup_engine_close(a->engine, engine_closed);
  uv_close((uv_handle_t *)&a->tick, NULL);
  uv_close((uv_handle_t *)&a->server, NULL);
  for (echo_conn *c = a->conns; c != NULL; c = c->next)
    conn_close(c);
}

static void maybe_finish(app *a) {
  if (!a->close_midway && uploads_running(a) == 0 && a->clients_done >= a->wait_clients)
    shutdown_all(a);
}

/* ---- The application's own work: a timer and an echo server ----------- */

static void on_tick(uv_timer_t *t) {
  app *a = t->data;
  uint64_t now = uv_now(&a->loop);
  uint64_t cpu = thread_cpu_us();
  /* libuv schedules a repeating timer from when it last ran, so lateness is
   * measured against the previous tick, not against a fixed grid. */
  if (a->ticks > 0 && now > a->last_tick_ms + TICK_MS) {
    uint64_t late = now - (a->last_tick_ms + TICK_MS);
    if (late > a->worst_late_ms) {
      a->worst_late_ms = late;
      a->worst_late_at_ms = now - a->start_ms;
      a->worst_late_cpu_us = cpu - a->last_tick_cpu_us;
    }
  }
  a->last_tick_ms = now;
  a->last_tick_cpu_us = cpu;
  a->ticks++;

  if (a->close_midway) {
    int sent_by_all = 1;
    for (int i = 0; i < NUPLOADS; i++) {
      vhdup_job_stats st;
      if (a->uploads[i].job == NULL)
        continue;
      vhdup_job_get_stats(a->uploads[i].job, &st);
      if (st.bytes_sent == 0)
        sent_by_all = 0;
    }
    if (sent_by_all || now - a->start_ms >= a->close_after_ms) {
      print_progress(a, "closing midway");
      a->closed_midway = uploads_running(a) > 0;
      shutdown_all(a);
      return;
    }
  }
  if (now >= a->next_report_ms && uploads_running(a) > 0) {
    a->next_report_ms = now + REPORT_MS;
    print_progress(a, "progress");
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  echo_conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void on_written(uv_write_t *req, int status) {
  (void)status; /* UV_ECANCELED when the connection closed first */
  free(req->data);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  echo_conn *c = s->data;
  app *a = c->a;
  if (nread < 0) {
    /* The client is done (UV_EOF) or gone. */
    conn_close(c);
    a->clients_done++;
    maybe_finish(a);
    return;
  }
  if (nread == 0)
    return;
  echo_write *w = malloc(sizeof(*w) + (size_t)nread);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  memcpy(w->data, buf->base, (size_t)nread);
  w->req.data = w;
  uv_buf_t out = uv_buf_init(w->data, (unsigned)nread);
  if (uv_write(&w->req, s, &out, 1, on_written) != 0) {
    free(w);
    conn_close(c);
    return;
  }
  a->echoed += (uint64_t)nread;
  if (uploads_running(a) > 0)
    a->echoed_while_uploading += (uint64_t)nread;
}

static void on_connection(uv_stream_t *server, int status) {
  app *a = server->data;
  if (status != 0 || a->shutting_down)
    return;
  echo_conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  c->a = a;
  c->tcp.data = c;
  if (uv_tcp_init(&a->loop, &c->tcp) != 0) {
    free(c);
    return;
  }
  c->next = a->conns;
  if (a->conns != NULL)
    a->conns->prev = c;
  a->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  a->connections++;
}

/* ---- The uploads -------------------------------------------------------- */

static void on_notice(vhdup_job *job, const char *message, void *data) {
  upload *u = data;
  (void)job;
  printf("disk%d: note: %s\n", u->index + 1, message);
}

static void on_done(vhdup_job *job, int status, void *data) {
  upload *u = data;
  app *a = u->a;
  vhdup_job_stats st;
  vhdup_job_get_stats(job, &st);
  u->running = 0;
  u->status = status;
  if (status == 0)
    printf("disk%d: done: %" PRIu64 " bytes sent in %.2f s, %" PRIu64 " requests, %" PRIu64
           " retries\n",
           u->index + 1, st.bytes_sent, st.seconds, st.requests, st.retries);
  else
    printf("disk%d: %s: %s\n", u->index + 1, vhdup_err_name(status), vhdup_job_message(job));
  fflush(stdout);
  maybe_finish(a);
}

static int start_upload(app *a, int i, const char *source, const char *destination) {
  upload *u = &a->uploads[i];
  vhdup_job_options jo;
  vhdup_job_options_init(&jo);
  jo.source = source;
  jo.target.url = destination;
  jo.notice_cb = on_notice;
  jo.data = u;
  u->a = a;
  u->index = i;
  int rc = vhdup_job_new(a->engine, &jo, &u->job);
  if (rc != 0) {
    fprintf(stderr, "embed_upload: disk%d: %s\n", i + 1, vhdup_strerror(rc));
    return rc;
  }
  rc = vhdup_job_start(u->job, on_done);
  if (rc != 0) {
    fprintf(stderr, "embed_upload: disk%d: %s: %s\n", i + 1, vhdup_strerror(rc),
            vhdup_job_message(u->job));
    u->status = rc;
    return rc;
  }
  u->running = 1;
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: embed_upload [--close-midway] [--close-after-ms MS] [--wait-clients N] "
                  "DISK1 URL1 DISK2 URL2\n");
  return 2;
}

int main(int argc, char **argv) {
  static app a;
  int i = 1;
  the_app = &a;
  a.close_after_ms = 5000;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--close-midway") == 0)
      a.close_midway = 1;
    else if (strcmp(argv[i], "--close-after-ms") == 0 && i + 1 < argc)
      a.close_after_ms = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--wait-clients") == 0 && i + 1 < argc)
      a.wait_clients = (unsigned)strtoul(argv[++i], NULL, 10);
    else
      return usage();
  }
  if (argc - i != 2 * NUPLOADS)
    return usage();

  int rc = uv_loop_init(&a.loop);
  if (rc != 0) {
    fprintf(stderr, "embed_upload: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }

  /* The application's own handles first: the loop is theirs. */
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(&a.loop, &a.server);
  a.server.data = &a;
  if ((rc = uv_tcp_bind(&a.server, (const struct sockaddr *)&addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&a.server, 16, on_connection)) != 0 ||
      (rc = uv_tcp_getsockname(&a.server, (struct sockaddr *)&bound, &len)) != 0) {
    fprintf(stderr, "embed_upload: echo server: %s\n", uv_strerror(rc));
    return 1;
  }
  printf("listening 127.0.0.1:%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  uv_timer_init(&a.loop, &a.tick);
  a.tick.data = &a;
  uv_update_time(&a.loop);
  a.start_ms = uv_now(&a.loop);
  uv_timer_start(&a.tick, on_tick, TICK_MS, TICK_MS);

  /* Then vhdup, on the same loop. */
  vhdup_engine_options eo;
  vhdup_engine_options_init(&eo);
  rc = vhdup_engine_new(&a.loop, &eo, &a.engine);
  if (rc != 0)
    fprintf(stderr, "embed_upload: engine: %s\n", vhdup_strerror(rc));
  for (int k = 0; rc == 0 && k < NUPLOADS; k++)
    rc = start_upload(&a, k, argv[i + 2 * k], argv[i + 2 * k + 1]);
  if (rc != 0)
    shutdown_all(&a);

  uv_run(&a.loop, UV_RUN_DEFAULT);
  int loop_rc = uv_loop_close(&a.loop);

  printf("timer: worst lateness %" PRIu64 " ms (at t=%" PRIu64 "ms, the loop's thread ran %" PRIu64
         " ms of CPU in that interval) over %" PRIu64 " ticks of %d ms\n",
         a.worst_late_ms, a.worst_late_at_ms, a.worst_late_cpu_us / 1000, a.ticks, TICK_MS);
  printf("echo: %u connections, %" PRIu64 " bytes echoed, %" PRIu64 " while uploading\n",
         a.connections, a.echoed, a.echoed_while_uploading);
  printf("closed: %u jobs, engine %s, loop %s\n", a.jobs_closed, a.engine_closed ? "yes" : "no",
         loop_rc == 0 ? "closed" : uv_err_name(loop_rc));
  if (loop_rc != 0) {
    fprintf(stderr, "embed_upload: uv_loop_close: %s (handles left open)\n", uv_strerror(loop_rc));
    return 1;
  }
  if (rc != 0 || !a.engine_closed)
    return 1;
  if (a.close_midway) {
    printf("midway: %s\n", a.closed_midway ? "closed while uploading" : "uploads had ended");
    return a.closed_midway ? 0 : 1;
  }
  for (int k = 0; k < NUPLOADS; k++)
    if (a.uploads[k].status != 0)
      return 1;
  return 0;
}
