/* The HTTP engine alone: R Put Page requests of one static buffer through
 * N connections, as fast as the engine and the server allow. Prints one
 * line: connections, requests, MiB/s, requests/s, CPU seconds per GiB sent,
 * peak RSS, connections opened, and requests sent again after a failure
 * (a transport error or a status other than 201).
 *
 * usage: bench_engine --url BASE --conns N --requests R [--size BYTES]
 *                     [--window W] [--upload-buffer BYTES] [--sig SIG]
 * BASE is the account URL of a vhdup-testserver (best with --sink), e.g.
 * http://127.0.0.1:PORT/devstoreaccount1. The container and blob are
 * created first; then W requests (default N) are kept in flight. */
#include "net/http.h"
#include "vhdup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#define MIB (1024u * 1024u)
#define SLOTS 256u /* the blob holds SLOTS pieces; requests cycle over them */

typedef struct bench {
  uv_loop_t loop;
  vhdup__http *h;
  const char *base, *sig;
  unsigned char *buf;
  size_t size;
  unsigned requests, window, next, done, failed;
  char page_url[512];
  int step_done;
  long step_status;
  int closed;
} bench;

typedef struct slot {
  bench *b;
  char range[64];
  vhdup__http_header hdrs[2];
} slot;

static void on_step(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  bench *b = data;
  (void)x;
  b->step_status = r->error != 0 ? r->error : r->status;
  b->step_done = 1;
}

/* One setup request, run to completion; returns the status or an error. */
static long step(bench *b, const char *method, const char *url, const vhdup__http_header *h,
                 size_t n) {
  vhdup__http_req rq;
  memset(&rq, 0, sizeof(rq));
  rq.method = method;
  rq.url = url;
  rq.headers = h;
  rq.n_headers = n;
  b->step_done = 0;
  if (vhdup__http_submit(b->h, &rq, on_step, b, NULL) != 0)
    return -1;
  while (!b->step_done)
    uv_run(&b->loop, UV_RUN_ONCE);
  return b->step_status;
}

static void submit_next(bench *b, slot *s);

static void on_page(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  slot *s = data;
  bench *b = s->b;
  (void)x;
  if (r->error != 0 || r->status != 201) {
    /* Send it again, as the pipeline would; count it. */
    if (b->failed++ < 3)
      fprintf(stderr, "bench_engine: retrying: error %d status %ld %s\n", r->error, r->status,
              r->error_detail);
    if (b->failed > b->requests) {
      fprintf(stderr, "bench_engine: too many failures\n");
      exit(1);
    }
    b->next--;
    submit_next(b, s);
    return;
  }
  b->done++;
  if (b->next < b->requests)
    submit_next(b, s);
}

static void submit_next(bench *b, slot *s) {
  vhdup__http_req rq;
  uint64_t off = (uint64_t)(b->next % SLOTS) * b->size;
  snprintf(s->range, sizeof(s->range), "bytes=%" PRIu64 "-%" PRIu64, off, off + b->size - 1);
  s->hdrs[0].name = "x-ms-page-write";
  s->hdrs[0].value = "update";
  s->hdrs[1].name = "x-ms-range";
  s->hdrs[1].value = s->range;
  memset(&rq, 0, sizeof(rq));
  rq.method = "PUT";
  rq.url = b->page_url;
  rq.headers = s->hdrs;
  rq.n_headers = 2;
  rq.body = b->buf;
  rq.body_len = b->size;
  b->next++;
  if (vhdup__http_submit(b->h, &rq, on_page, s, NULL) != 0) {
    fprintf(stderr, "bench_engine: submit failed\n");
    exit(1);
  }
}

static void on_closed(vhdup__http *h) {
  (void)h;
}

static double now_s(void) {
  return (double)uv_hrtime() / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  static bench b;
  vhdup__http_opts o;
  vhdup__http_stats st;
  slot *slots;
  unsigned conns = 0, i;
  long upload_buffer = 0;
  char url[512], len[32];
  double t0, c0, secs, cpu;
  struct rusage ru;
  int rc;

  b.size = 4 * MIB;
  b.sig = "testsig";
  for (i = 1; i + 1 < (unsigned)argc; i += 2) {
    if (strcmp(argv[i], "--url") == 0)
      b.base = argv[i + 1];
    else if (strcmp(argv[i], "--conns") == 0)
      conns = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--requests") == 0)
      b.requests = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--size") == 0)
      b.size = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--window") == 0)
      b.window = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--upload-buffer") == 0)
      upload_buffer = strtol(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--sig") == 0)
      b.sig = argv[i + 1];
    else
      break;
  }
  if (i != (unsigned)argc || b.base == NULL || conns == 0 || b.requests == 0 || b.size == 0 ||
      b.size % 512 != 0) {
    fprintf(stderr, "usage: bench_engine --url BASE --conns N --requests R [--size BYTES]\n"
                    "                    [--window W] [--upload-buffer BYTES] [--sig SIG]\n");
    return 2;
  }
  if (b.window == 0)
    b.window = conns;
  if (b.window > b.requests)
    b.window = b.requests;
  b.buf = malloc(b.size);
  slots = calloc(b.window, sizeof(*slots));
  if (b.buf == NULL || slots == NULL)
    return 1;
  /* Not zeros: a real disk piece, and nothing in the path can shortcut it. */
  for (i = 0; i < b.size; i++)
    b.buf[i] = (unsigned char)(i * 131u + 7u);

  uv_loop_init(&b.loop);
  memset(&o, 0, sizeof(o));
  o.max_connections = conns;
  o.upload_buffer_size = upload_buffer;
  rc = vhdup__http_new(&b.loop, &o, &b.h);
  if (rc != 0) {
    fprintf(stderr, "bench_engine: engine: error %d\n", rc);
    return 1;
  }

  snprintf(url, sizeof(url), "%s/bench?restype=container&sig=%s", b.base, b.sig);
  rc = (int)step(&b, "PUT", url, NULL, 0);
  if (rc != 201 && rc != 409) {
    fprintf(stderr, "bench_engine: create container: %d\n", rc);
    return 1;
  }
  {
    vhdup__http_header h[2] = {{"x-ms-blob-type", "PageBlob"}, {"x-ms-blob-content-length", len}};
    snprintf(len, sizeof(len), "%" PRIu64, (uint64_t)SLOTS * b.size);
    snprintf(url, sizeof(url), "%s/bench/c%u.vhd?sig=%s", b.base, conns, b.sig);
    rc = (int)step(&b, "PUT", url, h, 2);
    if (rc != 201) {
      fprintf(stderr, "bench_engine: create blob: %d\n", rc);
      return 1;
    }
  }
  snprintf(b.page_url, sizeof(b.page_url), "%s/bench/c%u.vhd?comp=page&sig=%s", b.base, conns,
           b.sig);

  t0 = now_s();
  c0 = cpu_s();
  for (i = 0; i < b.window; i++) {
    slots[i].b = &b;
    submit_next(&b, &slots[i]);
  }
  while (b.done < b.requests)
    uv_run(&b.loop, UV_RUN_ONCE);
  secs = now_s() - t0;
  cpu = cpu_s() - c0;
  vhdup__http_get_stats(b.h, &st);
  getrusage(RUSAGE_SELF, &ru);

  printf("engine conns=%u requests=%u size=%zu MiB/s=%.1f req/s=%.1f cpu_s/GiB=%.3f "
         "peak_rss_MiB=%.1f connections_opened=%" PRIu64 " retried=%u seconds=%.2f\n",
         conns, b.requests, b.size, (double)b.requests * (double)b.size / MIB / secs,
         b.requests / secs, cpu / ((double)b.requests * (double)b.size / (1024.0 * MIB)),
         (double)ru.ru_maxrss / 1024.0, st.connections_opened, b.failed, secs);

  vhdup__http_close(b.h, on_closed);
  uv_run(&b.loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&b.loop);
  free(slots);
  free(b.buf);
  return rc == 0 ? 0 : 1;
}
