/* The HTTP engine on a real libuv loop against real servers on loopback:
 * test/net/echo_server.py always ($VHDUP_ECHO_SERVER), and the C test
 * server ($VHDUP_TESTSERVER) when it is built. Both take the same
 * /_control/faults and /_control/stats requests. Every test ends with
 * uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <uv.h>

#include "net/http.h"
#include "util/crypto.h"
#include "vhdup.h"

extern char **environ;

#define MIB (1024u * 1024u)

/* ---- servers ---- */

typedef struct server {
  pid_t pid;
  int port;
  char dir[64];
} server;

static server echo_srv;
static server test_srv;
static char base_url[64];

/* Starts argv[0] with "@PORTFILE@" and "@STORE@" replaced by paths in a
 * fresh temporary directory, and waits for the port file. */
static int start_server(server *s, char *argv[]) {
  char port_file[128], store[128];
  FILE *f;
  int i;
  snprintf(s->dir, sizeof(s->dir), "/tmp/vhdup-net.XXXXXX");
  if (mkdtemp(s->dir) == NULL)
    return -1;
  snprintf(port_file, sizeof(port_file), "%s/port", s->dir);
  snprintf(store, sizeof(store), "%s/store", s->dir);
  if (mkdir(store, 0700) != 0)
    return -1;
  for (i = 0; argv[i] != NULL; i++) {
    if (strcmp(argv[i], "@PORTFILE@") == 0)
      argv[i] = port_file;
    else if (strcmp(argv[i], "@STORE@") == 0)
      argv[i] = store;
  }
  if (posix_spawn(&s->pid, argv[0], NULL, NULL, argv, environ) != 0)
    return -1;
  for (i = 0; i < 200; i++) {
    f = fopen(port_file, "r");
    if (f != NULL) {
      int ok = fscanf(f, "%d", &s->port) == 1;
      fclose(f);
      if (ok)
        return 0;
    }
    usleep(50 * 1000);
  }
  return -1;
}

static void stop_server(server *s) {
  char cmd[128];
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
  }
  if (s->dir[0] != '\0') {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", s->dir);
  }
}

static int group_setup(void **state) {
  const char *py = getenv("VHDUP_ECHO_SERVER");
  char *argv[] = {"/usr/bin/env", "python3",    (char *)py, "--port", "0",
                  "--port-file",  "@PORTFILE@", NULL};
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  if (py == NULL) {
    fprintf(stderr, "VHDUP_ECHO_SERVER is not set\n");
    return -1;
  }
  if (start_server(&echo_srv, argv) != 0)
    return -1;
  snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", echo_srv.port);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  stop_server(&echo_srv);
  stop_server(&test_srv);
  return 0;
}

/* ---- loop and engine helpers ---- */

typedef struct env {
  uv_loop_t loop;
  vhdup__http *h;
  int closed;
} env;

typedef struct result {
  int done;
  int error;
  int retryable;
  long status;
  char detail[512];
  unsigned char *body;
  size_t body_len;
  int truncated;
  double seconds;
  char hdr_names[1024]; /* "Name\n" for each header, as received */
  char want_value[256]; /* value of the header named in want */
  const char *want;
  int want_found;
} result;

static void result_free(result *r) {
  free(r->body);
  memset(r, 0, sizeof(*r));
}

static void env_init(env *e, const vhdup__http_opts *o) {
  vhdup__http_opts opts;
  memset(&opts, 0, sizeof(opts));
  if (o != NULL)
    opts = *o;
  /* VHDUP_TEST_VERBOSE=1 shows libcurl's (redacted) trace. */
  if (getenv("VHDUP_TEST_VERBOSE") != NULL)
    opts.verbose = 1;
  memset(e, 0, sizeof(*e));
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(vhdup__http_new(&e->loop, &opts, &e->h), 0);
}

static env *closing_env;

static void mark_closed(vhdup__http *h) {
  assert_ptr_equal(h, closing_env->h);
  closing_env->closed++;
}

/* Runs the loop until *flag becomes non-zero, failing after 30 s. */
static void run_until(env *e, const int *flag) {
  uint64_t start = uv_hrtime();
  while (!*flag) {
    uv_run(&e->loop, UV_RUN_ONCE);
    if (!*flag && uv_hrtime() - start > 30ull * 1000000000ull)
      fail_msg("loop did not finish in 30 s");
  }
}

static void env_close(env *e) {
  closing_env = e;
  vhdup__http_close(e->h, mark_closed);
  vhdup__http_close(e->h, mark_closed); /* a second close does nothing */
  assert_int_equal(e->closed, 0);       /* never from inside close */
  uv_run(&e->loop, UV_RUN_DEFAULT);
  assert_int_equal(e->closed, 1);
  assert_int_equal(uv_loop_close(&e->loop), 0);
}

static void on_done(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  result *res = data;
  size_t i, o = 0;
  (void)x;
  assert_int_equal(res->done, 0);
  res->done = 1;
  res->error = r->error;
  res->retryable = r->retryable;
  res->status = r->status;
  res->truncated = r->body_truncated;
  res->seconds = r->seconds;
  assert_non_null(r->error_detail);
  snprintf(res->detail, sizeof(res->detail), "%s", r->error_detail);
  res->body = malloc(r->body_len + 1);
  assert_non_null(res->body);
  memcpy(res->body, r->body, r->body_len);
  res->body[r->body_len] = '\0';
  assert_int_equal(r->body[r->body_len], '\0');
  res->body_len = r->body_len;
  for (i = 0; i < r->n_headers; i++)
    o += (size_t)snprintf(res->hdr_names + o,
                          o < sizeof(res->hdr_names) ? sizeof(res->hdr_names) - o : 0, "%s\n",
                          r->headers[i].name);
  if (res->want != NULL) {
    const char *v = vhdup__http_header_get(r, res->want);
    if (v != NULL) {
      res->want_found = 1;
      snprintf(res->want_value, sizeof(res->want_value), "%s", v);
    }
  }
}

static void submit(env *e, const char *method, const char *url, const void *body, size_t len,
                   const vhdup__http_header *hdrs, size_t n, result *res) {
  vhdup__http_req rq;
  memset(&rq, 0, sizeof(rq));
  rq.method = method;
  rq.url = url;
  rq.body = body;
  rq.body_len = len;
  rq.headers = hdrs;
  rq.n_headers = n;
  assert_int_equal(vhdup__http_submit(e->h, &rq, on_done, res, NULL), 0);
}

/* One request, run to completion. want: a header whose value to keep. */
static void request(env *e, const char *method, const char *path, const void *body, size_t len,
                    const char *want, result *res) {
  char url[512];
  memset(res, 0, sizeof(*res));
  res->want = want;
  snprintf(url, sizeof(url), "%s%s", base_url, path);
  submit(e, method, url, body, len, NULL, 0, res);
  assert_int_equal(res->done, 0);
  run_until(e, &res->done);
}

static void set_faults(env *e, const char *spec) {
  result r;
  request(e, "POST", "/_control/faults", spec, strlen(spec), NULL, &r);
  assert_int_equal(r.error, 0);
  assert_true(r.status == 200 || r.status == 204);
  result_free(&r);
}

/* A number from a server's /_control/stats JSON; base is the server's
 * scheme://host:port (anything after it is ignored). */
static long stat_field_at(env *e, const char *base, const char *name) {
  result r;
  char key[64], url[128];
  const char *p;
  long v;
  snprintf(url, sizeof(url), "%.*s/_control/stats", (int)strcspn(base + 7, "/") + 7, base);
  memset(&r, 0, sizeof(r));
  submit(e, "GET", url, NULL, 0, NULL, 0, &r);
  run_until(e, &r.done);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 200);
  snprintf(key, sizeof(key), "\"%s\"", name);
  p = strstr((char *)r.body, key);
  assert_non_null(p);
  p = strchr(p, ':');
  assert_non_null(p);
  v = strtol(p + 1, NULL, 10);
  result_free(&r);
  return v;
}

static long stat_field(env *e, const char *name) {
  return stat_field_at(e, base_url, name);
}

static void md5_hex(const void *data, size_t len, char out[33]) {
  uint8_t d[VHDUP__MD5_LEN];
  int i;
  assert_int_equal(vhdup__md5_digest(data, len, d), 0);
  for (i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void fill(unsigned char *b, size_t n, unsigned seed) {
  uint32_t x = seed * 2654435761u + 1;
  size_t i;
  for (i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    b[i] = (unsigned char)(x >> 16);
  }
}

/* ---- tests ---- */

static void test_methods(void **state) {
  env e;
  result r;
  unsigned char body[1000];
  (void)state;
  fill(body, sizeof(body), 1);
  env_init(&e, NULL);

  request(&e, "PUT", "/c/obj?comp=page&sig=x", body, sizeof(body), "x-received-length", &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 201);
  assert_string_equal(r.want_value, "1000");
  assert_non_null(strstr(r.hdr_names, "X-Received-Length\n")); /* case kept */
  result_free(&r);

  request(&e, "GET", "/c/obj", NULL, 0, "x-MIXED-case-header", &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, sizeof(body));
  assert_memory_equal(r.body, body, sizeof(body));
  assert_int_equal(r.truncated, 0);
  assert_string_equal(r.want_value, "Value");
  assert_true(r.seconds > 0 && r.seconds < 30);
  result_free(&r);

  request(&e, "HEAD", "/c/obj", NULL, 0, "content-length", &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 0);
  assert_string_equal(r.want_value, "1000");
  result_free(&r);

  request(&e, "DELETE", "/c/obj", NULL, 0, NULL, &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 202);
  result_free(&r);

  request(&e, "GET", "/c/obj", NULL, 0, "x-ms-error-code", &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.want_value, "BlobNotFound");
  assert_non_null(strstr((char *)r.body, "<Code>BlobNotFound</Code>"));
  result_free(&r);

  request(&e, "HEAD", "/c/obj", NULL, 0, NULL, &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 404);
  assert_int_equal(r.body_len, 0);
  result_free(&r);

  /* What goes on the wire: exact Content-Length, no Expect, no invented
   * Content-Type, empty PUT says Content-Length: 0. */
  request(&e, "PUT", "/_echo", body, 5, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "PUT /_echo\n"));
  assert_non_null(strstr((char *)r.body, "Content-Length: 5\n"));
  assert_non_null(strstr((char *)r.body, "body-length: 5\n"));
  assert_null(strstr((char *)r.body, "Expect"));
  assert_null(strstr((char *)r.body, "Content-Type"));
  assert_null(strstr((char *)r.body, "chunked"));
  result_free(&r);

  request(&e, "PUT", "/_echo", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "Content-Length: 0\n"));
  result_free(&r);

  request(&e, "POST", "/_echo", body, 7, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "POST /_echo\n"));
  assert_non_null(strstr((char *)r.body, "Content-Length: 7\n"));
  assert_null(strstr((char *)r.body, "Content-Type"));
  result_free(&r);

  request(&e, "POST", "/_echo", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "Content-Length: 0\n"));
  result_free(&r);

  request(&e, "DELETE", "/_echo", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "DELETE /_echo\n"));
  assert_null(strstr((char *)r.body, "Content-Length"));
  result_free(&r);

  request(&e, "GET", "/_echo", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "GET /_echo\n"));
  result_free(&r);

  /* A body on a method other than PUT/POST goes as an upload. */
  request(&e, "PATCH", "/_echo", body, 3, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "PATCH /_echo\n"));
  assert_non_null(strstr((char *)r.body, "body-length: 3\n"));
  result_free(&r);

  /* Caller headers, an empty value, and a matching Content-Length. */
  {
    const vhdup__http_header hdrs[] = {{"x-ms-page-write", "update"},
                                       {"X-Empty", ""},
                                       {"Content-Length", "4"},
                                       {"Content-Type", "application/octet-stream"}};
    char url[128];
    memset(&r, 0, sizeof(r));
    snprintf(url, sizeof(url), "%s/_echo", base_url);
    submit(&e, "POST", url, body, 4, hdrs, 4, &r);
    run_until(&e, &r.done);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((char *)r.body, "x-ms-page-write: update\n"));
    assert_non_null(strstr((char *)r.body, "X-Empty: \n"));
    assert_non_null(strstr((char *)r.body, "Content-Length: 4\n"));
    assert_non_null(strstr((char *)r.body, "Content-Type: application/octet-stream\n"));
    assert_null(strstr((char *)r.body, "urlencoded"));
    result_free(&r);
  }
  env_close(&e);
}

static void test_invalid_requests(void **state) {
  env e;
  vhdup__http_req rq;
  char url[128];
  const vhdup__http_header crlf[] = {{"X-A", "b\r\nX-Injected: 1"}};
  const vhdup__http_header badname[] = {{"X A", "b"}};
  const vhdup__http_header badlen[] = {{"Content-Length", "5"}};
  const vhdup__http_header te[] = {{"Transfer-Encoding", "chunked"}};
  result r;
  (void)state;
  memset(&r, 0, sizeof(r));
  env_init(&e, NULL);
  snprintf(url, sizeof(url), "%s/x", base_url);
  memset(&rq, 0, sizeof(rq));
  rq.method = "GET";
  rq.url = url;
  assert_int_equal(vhdup__http_submit(e.h, &rq, NULL, &r, NULL), VHDUP_EINVAL);
  rq.method = "GE T";
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  rq.method = "";
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  rq.method = "HEAD";
  rq.body = "abc";
  rq.body_len = 3;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  rq.method = "PUT";
  rq.body = NULL;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  rq.body = "abc";
  rq.url = "ftp://127.0.0.1/x";
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EURL);
  rq.url = url;
  rq.headers = crlf;
  rq.n_headers = 1;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  rq.headers = badname;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  rq.headers = badlen;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  rq.headers = te;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), VHDUP_EINVAL);
  assert_int_equal(r.done, 0);
  env_close(&e);

  {
    vhdup__http_opts o;
    vhdup__http *h = NULL;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = -1;
    assert_int_equal(vhdup__http_new(&loop, &o, &h), VHDUP_EINVAL);
    o.connect_timeout_ms = 0;
    o.upload_buffer_size = 100;
    assert_int_equal(vhdup__http_new(&loop, &o, &h), VHDUP_EINVAL);
    assert_int_equal(vhdup__http_new(NULL, NULL, &h), VHDUP_EINVAL);
    assert_null(h);
    assert_int_equal(uv_loop_close(&loop), 0);
  }
}

/* Many concurrent PUTs through a small cap: all bytes arrive intact, the
 * server never sees more than cap requests at once, and connections are
 * reused instead of opened per request. Larger upload buffers go to bodies
 * over 64 KiB, no larger than the body, while the total allows, and come
 * back when their transfers end. */
static void test_concurrent_puts(void **state) {
  enum { N = 48, CAP = 4 };
  const size_t big = 512 * 1024, total = MIB;
  env e;
  vhdup__http_opts o;
  vhdup__http_stats st;
  static result res[N];
  unsigned char *bufs[N];
  size_t lens[N], held = 0;
  char url[N][160], md5[33];
  long conns_before;
  unsigned i, given = 0;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.max_connections = CAP;
  o.upload_buffer_size = (long)big;
  o.upload_buffers_total = total;
  env_init(&e, &o);
  set_faults(&e, "");
  request(&e, "POST", "/_control/reset-stats", "", 0, NULL, &res[0]);
  result_free(&res[0]);
  conns_before = stat_field(&e, "connections");
  for (i = 0; i < N; i++) {
    /* Sizes from 1 byte to 4 MiB, some 512-aligned, some not. */
    lens[i] = i % 8 == 0 ? 4 * MIB : (i * 7919u * 512u + i) % (4 * MIB) + 1;
    bufs[i] = malloc(lens[i]);
    assert_non_null(bufs[i]);
    fill(bufs[i], lens[i], i + 100);
    snprintf(url[i], sizeof(url[i]), "%s/c/blob%u?comp=page&sig=s", base_url, i);
    memset(&res[i], 0, sizeof(res[i]));
    res[i].want = "X-Body-MD5";
    submit(&e, "PUT", url[i], bufs[i], lens[i], NULL, 0, &res[i]);
    if (lens[i] > 64 * 1024) {
      size_t want = (lens[i] + 16383) / 16384 * 16384;
      want = want < big ? want : big;
      if (held + want <= total) {
        held += want;
        given++;
      }
    }
  }
  vhdup__http_get_stats(e.h, &st);
  assert_int_equal(st.in_flight, N);
  /* Every buffer is charged at submit, so while all N wait, only the first
   * that fit in the total got one. */
  assert_true(given >= 2);
  assert_int_equal(st.upload_buffers, given);
  for (i = 0; i < N; i++)
    run_until(&e, &res[i].done);
  vhdup__http_get_stats(e.h, &st);
  assert_int_equal(st.in_flight, 0);
  for (i = 0; i < N; i++) {
    assert_int_equal(res[i].error, 0);
    assert_int_equal(res[i].status, 201);
    md5_hex(bufs[i], lens[i], md5);
    assert_string_equal(res[i].want_value, md5);
    result_free(&res[i]);
  }
  assert_true(stat_field(&e, "max_inflight") <= CAP);
  assert_true(stat_field(&e, "max_inflight") >= 2);
  vhdup__http_get_stats(e.h, &st);
  assert_true(st.connections_opened <= CAP);
  assert_true(stat_field(&e, "connections") - conns_before <= CAP);
  assert_true(st.bytes_sent >= 6 * 4 * MIB);
  /* All of them came back: two more 4 MiB bodies at once get one each. */
  for (i = 0; i < 2; i++) {
    memset(&res[i], 0, sizeof(res[i]));
    submit(&e, "PUT", url[0], bufs[0], lens[0], NULL, 0, &res[i]);
  }
  for (i = 0; i < 2; i++) {
    run_until(&e, &res[i].done);
    assert_int_equal(res[i].status, 201);
    result_free(&res[i]);
  }
  vhdup__http_get_stats(e.h, &st);
  assert_int_equal(st.upload_buffers, given + 2);

  /* Read two back. */
  for (i = 0; i < 2; i++) {
    result r;
    char path[160];
    vhdup__http_req rq;
    memset(&rq, 0, sizeof(rq));
    snprintf(path, sizeof(path), "%s/c/blob%u", base_url, i);
    rq.method = "GET";
    rq.url = path;
    rq.max_response_body = 4 * MIB;
    memset(&r, 0, sizeof(r));
    assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), 0);
    run_until(&e, &r.done);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, lens[i]);
    assert_memory_equal(r.body, bufs[i], lens[i]);
    result_free(&r);
  }
  for (i = 0; i < N; i++)
    free(bufs[i]);
  env_close(&e);
}

/* A request submitted from another's callback finds the upload buffer that
 * one held already free: the total here covers one. */
typedef struct resubmit {
  env *e;
  const char *url;
  const unsigned char *body;
  size_t len;
  result first, second;
} resubmit;

static void on_resubmit(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  resubmit *rs = data;
  on_done(x, r, &rs->first);
  submit(rs->e, "PUT", rs->url, rs->body, rs->len, NULL, 0, &rs->second);
}

static void test_upload_buffer_reuse(void **state) {
  env e;
  vhdup__http_opts o;
  vhdup__http_stats st;
  resubmit rs;
  char url[160];
  (void)state;
  memset(&o, 0, sizeof(o));
  o.upload_buffer_size = 512 * 1024;
  o.upload_buffers_total = 512 * 1024;
  env_init(&e, &o);
  set_faults(&e, "");
  memset(&rs, 0, sizeof(rs));
  rs.e = &e;
  rs.len = MIB;
  unsigned char *body = malloc(rs.len);
  assert_non_null(body);
  fill(body, rs.len, 7);
  rs.body = body;
  snprintf(url, sizeof(url), "%s/c/reuse?comp=page&sig=s", base_url);
  rs.url = url;
  vhdup__http_req rq;
  memset(&rq, 0, sizeof(rq));
  rq.method = "PUT";
  rq.url = url;
  rq.body = body;
  rq.body_len = rs.len;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_resubmit, &rs, NULL), 0);
  run_until(&e, &rs.second.done);
  assert_int_equal(rs.first.status, 201);
  assert_int_equal(rs.second.status, 201);
  vhdup__http_get_stats(e.h, &st);
  assert_int_equal(st.upload_buffers, 2);
  result_free(&rs.first);
  result_free(&rs.second);
  free(body);
  env_close(&e);
}

static void test_keepalive_reuse(void **state) {
  env e;
  vhdup__http_opts o;
  vhdup__http_stats st;
  result r;
  int i;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.max_connections = 2;
  env_init(&e, &o);
  for (i = 0; i < 20; i++) {
    request(&e, i % 2 ? "GET" : "HEAD", "/_bytes/3000", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    result_free(&r);
  }
  vhdup__http_get_stats(e.h, &st);
  assert_int_equal(st.connections_opened, 1);
  assert_int_equal(st.completed, 20);
  assert_int_equal(st.submitted, 20);
  assert_int_equal(st.peak_in_flight, 1);
  env_close(&e);
}

static void test_truncation(void **state) {
  env e;
  vhdup__http_opts o;
  vhdup__http_stats st;
  result r;
  size_t i;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.max_response_body = 1000;
  env_init(&e, &o);
  request(&e, "GET", "/_bytes/100000", NULL, 0, NULL, &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 1000);
  assert_int_equal(r.truncated, 1);
  for (i = 0; i < r.body_len; i++)
    assert_int_equal(r.body[i], i % 251);
  result_free(&r);
  request(&e, "GET", "/_bytes/1000", NULL, 0, NULL, &r);
  assert_int_equal(r.body_len, 1000);
  assert_int_equal(r.truncated, 0);
  result_free(&r);
  /* The rest of the truncated body was read, so the connection stays. */
  vhdup__http_get_stats(e.h, &st);
  assert_int_equal(st.connections_opened, 1);
  assert_true(st.bytes_received >= 101000);
  env_close(&e);
}

static void test_server_errors(void **state) {
  env e;
  result r;
  int i;
  (void)state;
  env_init(&e, NULL);
  set_faults(&e, "503:3");
  for (i = 0; i < 3; i++) {
    request(&e, "PUT", "/c/e?comp=page", "abc", 3, "x-ms-error-code", &r);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.want_value, "ServerBusy");
    assert_non_null(strstr((char *)r.body, "<Code>ServerBusy</Code>"));
    result_free(&r);
  }
  request(&e, "PUT", "/c/e?comp=page", "abc", 3, NULL, &r);
  assert_int_equal(r.status, 201);
  result_free(&r);
  set_faults(&e, "500:2");
  for (i = 0; i < 2; i++) {
    request(&e, "PUT", "/c/e?comp=page", "abc", 3, "x-ms-error-code", &r);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.want_value, "InternalError");
    result_free(&r);
  }
  set_faults(&e, "");
  env_close(&e);
}

static void test_reset(void **state) {
  env e, ctl;
  result r;
  unsigned char *body = malloc(MIB);
  (void)state;
  assert_non_null(body);
  fill(body, MIB, 7);
  env_init(&ctl, NULL);
  /* A fresh engine: libcurl resends by itself when a kept-alive
   * connection dies before answering, which would hide the reset. */
  set_faults(&ctl, "reset:1");
  env_init(&e, NULL);
  request(&e, "PUT", "/c/r?comp=page&sig=topsecret", body, MIB, NULL, &r);
  assert_int_equal(r.error, VHDUP_ENET);
  assert_int_equal(r.retryable, 1);
  assert_true(r.detail[0] != '\0');
  assert_null(strstr(r.detail, "topsecret"));
  result_free(&r);
  set_faults(&ctl, "");
  request(&e, "PUT", "/c/r?comp=page", body, MIB, NULL, &r);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 201);
  result_free(&r);
  env_close(&e);
  env_close(&ctl);
  free(body);
}

static void test_stall_times_out(void **state) {
  env e;
  vhdup__http_opts o;
  result r;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.low_speed_limit_bps = 1;
  o.low_speed_time_s = 1;
  env_init(&e, &o);
  set_faults(&e, "stall:1");
  request(&e, "PUT", "/c/s?comp=page", "abc", 3, NULL, &r);
  assert_int_equal(r.error, VHDUP_ETIMEDOUT);
  assert_int_equal(r.retryable, 1);
  /* libcurl averages speed over about 5 s, so the 3 bytes sent keep the
   * average above 1 B/s for a few seconds before the 1 s window starts. */
  assert_true(r.seconds >= 0.9 && r.seconds < 9);
  assert_non_null(strstr(r.detail, "curl error 28"));
  result_free(&r);
  env_close(&e);

  /* The whole-request timeout, per request. */
  env_init(&e, NULL);
  set_faults(&e, "stall:1");
  {
    vhdup__http_req rq;
    char url[128];
    memset(&rq, 0, sizeof(rq));
    memset(&r, 0, sizeof(r));
    snprintf(url, sizeof(url), "%s/_bytes/10", base_url);
    rq.method = "GET";
    rq.url = url;
    rq.total_timeout_ms = 700;
    assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, NULL), 0);
    run_until(&e, &r.done);
    assert_int_equal(r.error, VHDUP_ETIMEDOUT);
    assert_true(r.seconds >= 0.6 && r.seconds < 3);
    result_free(&r);
  }
  request(&e, "GET", "/_bytes/10", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  result_free(&r);
  env_close(&e);
}

typedef struct cancel_ctx {
  vhdup__http_xfer *x;
  uv_timer_t timer;
} cancel_ctx;

static void on_cancel_timer(uv_timer_t *t) {
  cancel_ctx *c = t->data;
  vhdup__http_cancel(c->x);
  vhdup__http_cancel(c->x); /* twice is harmless */
  uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(void **state) {
  env e;
  result r;
  cancel_ctx c;
  vhdup__http_req rq;
  char url[128];
  (void)state;
  env_init(&e, NULL);
  set_faults(&e, "stall:1");
  memset(&rq, 0, sizeof(rq));
  memset(&r, 0, sizeof(r));
  snprintf(url, sizeof(url), "%s/_bytes/10", base_url);
  rq.method = "GET";
  rq.url = url;
  /* Mid-transfer: the server holds the request; cancel 200 ms later. */
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, &c.x), 0);
  uv_timer_init(&e.loop, &c.timer);
  c.timer.data = &c;
  uv_timer_start(&c.timer, on_cancel_timer, 200, 0);
  run_until(&e, &r.done);
  assert_int_equal(r.error, VHDUP_ECANCELED);
  assert_int_equal(r.retryable, 0);
  assert_true(r.seconds >= 0.15);
  result_free(&r);

  /* Before it started: the callback still comes from the loop. */
  memset(&r, 0, sizeof(r));
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &r, &c.x), 0);
  vhdup__http_cancel(c.x);
  assert_int_equal(r.done, 0);
  run_until(&e, &r.done);
  assert_int_equal(r.error, VHDUP_ECANCELED);
  result_free(&r);

  /* The engine works on after cancellations. */
  request(&e, "GET", "/_bytes/10", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  result_free(&r);
  env_close(&e);
}

/* Completion callbacks submit the next request and cancel another one. */
typedef struct chain {
  env *e;
  int n, done;
  result victim;
  vhdup__http_xfer *victim_x;
  char url[128];
} chain;

static void on_chain_done(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  chain *c = data;
  vhdup__http_req rq;
  (void)x;
  assert_int_equal(r->error, 0);
  assert_int_equal(r->status, 200);
  if (c->n == 1)
    vhdup__http_cancel(c->victim_x); /* still stalled at the server */
  if (++c->n == 10) {
    c->done = 1;
    return;
  }
  memset(&rq, 0, sizeof(rq));
  rq.method = "GET";
  rq.url = c->url;
  assert_int_equal(vhdup__http_submit(c->e->h, &rq, on_chain_done, c, NULL), 0);
}

static void test_chain_from_callbacks(void **state) {
  env e;
  chain c;
  vhdup__http_req rq;
  (void)state;
  memset(&c, 0, sizeof(c));
  c.e = &e;
  env_init(&e, NULL);
  set_faults(&e, "stall:1");
  snprintf(c.url, sizeof(c.url), "%s/_bytes/100", base_url);
  memset(&rq, 0, sizeof(rq));
  rq.method = "GET";
  rq.url = c.url;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &c.victim, &c.victim_x), 0);
  /* Let the victim reach the server (and take the stall) first. */
  while (stat_field(&e, "inflight") < 1)
    ;
  assert_int_equal(vhdup__http_submit(e.h, &rq, on_chain_done, &c, NULL), 0);
  run_until(&e, &c.done);
  run_until(&e, &c.victim.done);
  assert_int_equal(c.n, 10);
  assert_int_equal(c.victim.error, VHDUP_ECANCELED);
  result_free(&c.victim);
  env_close(&e);
}

/* Closing from inside a completion callback while others are in flight. */
typedef struct close_ctx {
  env *e;
  result stalled[3];
  result last;
  int resubmit_rc;
  uv_timer_t timer;
} close_ctx;

static close_ctx *cc;

static void on_last_done(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data) {
  vhdup__http_req rq;
  on_done(x, r, data);
  closing_env = cc->e;
  vhdup__http_close(cc->e->h, mark_closed);
  /* Nothing may be called back from inside close. */
  assert_int_equal(cc->stalled[0].done + cc->stalled[1].done + cc->stalled[2].done, 0);
  assert_int_equal(cc->e->closed, 0);
  memset(&rq, 0, sizeof(rq));
  rq.method = "GET";
  rq.url = "http://127.0.0.1:1/";
  cc->resubmit_rc = vhdup__http_submit(cc->e->h, &rq, on_done, &cc->last, NULL);
}

static void on_submit_last(uv_timer_t *t) {
  vhdup__http_req rq;
  char url[128];
  memset(&rq, 0, sizeof(rq));
  snprintf(url, sizeof(url), "%s/_bytes/10", base_url);
  rq.method = "GET";
  rq.url = url;
  assert_int_equal(vhdup__http_submit(cc->e->h, &rq, on_last_done, &cc->last, NULL), 0);
  uv_close((uv_handle_t *)t, NULL);
}

static void test_close_from_callback(void **state) {
  env e;
  close_ctx c;
  vhdup__http_req rq;
  char url[128];
  int i;
  (void)state;
  memset(&c, 0, sizeof(c));
  cc = &c;
  c.e = &e;
  env_init(&e, NULL);
  set_faults(&e, "stall:3");
  memset(&rq, 0, sizeof(rq));
  snprintf(url, sizeof(url), "%s/_bytes/10", base_url);
  rq.method = "GET";
  rq.url = url;
  for (i = 0; i < 3; i++)
    assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &c.stalled[i], NULL), 0);
  /* Late enough for the three to have reached the server and stalled. */
  uv_timer_init(&e.loop, &c.timer);
  uv_timer_start(&c.timer, on_submit_last, 300, 0);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  assert_int_equal(c.last.done, 1);
  assert_int_equal(c.last.error, 0);
  assert_int_equal(c.last.status, 200);
  assert_int_equal(c.resubmit_rc, VHDUP_ECANCELED);
  for (i = 0; i < 3; i++) {
    assert_int_equal(c.stalled[i].done, 1);
    assert_int_equal(c.stalled[i].error, VHDUP_ECANCELED);
    result_free(&c.stalled[i]);
  }
  result_free(&c.last);
  assert_int_equal(e.closed, 1);
  assert_int_equal(uv_loop_close(&e.loop), 0);

  /* Close with requests submitted but never started. */
  env_init(&e, NULL);
  for (i = 0; i < 3; i++)
    assert_int_equal(vhdup__http_submit(e.h, &rq, on_done, &c.stalled[i], NULL), 0);
  env_close(&e);
  for (i = 0; i < 3; i++) {
    assert_int_equal(c.stalled[i].error, VHDUP_ECANCELED);
    result_free(&c.stalled[i]);
  }

  /* Close of an engine that never did anything. */
  env_init(&e, NULL);
  env_close(&e);
}

static void test_refused(void **state) {
  env e;
  result r;
  char url[128];
  int fd, port;
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  (void)state;
  /* A port that was just free: bound, not listening, then closed. */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  port = ntohs(a.sin_port);
  close(fd);
  env_init(&e, NULL);
  memset(&r, 0, sizeof(r));
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/c/b?comp=page&sig=topsecret", port);
  submit(&e, "PUT", url, "abc", 3, NULL, 0, &r);
  run_until(&e, &r.done);
  assert_int_equal(r.error, VHDUP_ENET);
  assert_int_equal(r.retryable, 1);
  assert_int_equal(r.status, 0);
  assert_non_null(strstr(r.detail, "curl error 7"));
  assert_null(strstr(r.detail, "topsecret"));
  result_free(&r);
  env_close(&e);
}

/* The verbose trace goes to stderr with the signature and Authorization
 * removed. */
static void test_verbose_redacts(void **state) {
  env e;
  vhdup__http_opts o;
  result r;
  char path[128], buf[65536];
  const vhdup__http_header auth[] = {{"Authorization", "SharedKey acct:S3CR3TKEY="}};
  int saved, fd;
  ssize_t n;
  char url[256];
  (void)state;
  snprintf(path, sizeof(path), "%s/trace", echo_srv.dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  fflush(stderr);
  saved = dup(2);
  dup2(fd, 2);
  memset(&o, 0, sizeof(o));
  o.verbose = 1;
  o.user_agent = "vhdup-test/1";
  env_init(&e, &o);
  memset(&r, 0, sizeof(r));
  snprintf(url, sizeof(url), "%s/c/v?comp=page&sig=topsecret%%3D&sv=1", base_url);
  submit(&e, "PUT", url, "abc", 3, auth, 1, &r);
  run_until(&e, &r.done);
  assert_int_equal(r.status, 201);
  result_free(&r);
  env_close(&e);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_non_null(strstr(buf, "sig=REDACTED&sv=1"));
  assert_non_null(strstr(buf, "Authorization: REDACTED"));
  assert_non_null(strstr(buf, "User-Agent: vhdup-test/1"));
  assert_null(strstr(buf, "topsecret"));
  assert_null(strstr(buf, "S3CR3TKEY"));
}

/* Every allocation the engine makes fails in turn: each failure comes back
 * as VHDUP_ENOMEM (or, for a socket's poll handle, as a failed transfer),
 * nothing leaks (ASan/valgrind), and the loop still closes. */
static long alloc_budget = -1;

static void *budget_malloc(size_t n) {
  if (alloc_budget == 0)
    return NULL;
  if (alloc_budget > 0)
    alloc_budget--;
  return malloc(n);
}

static void *budget_realloc(void *p, size_t n) {
  if (alloc_budget == 0)
    return NULL;
  if (alloc_budget > 0)
    alloc_budget--;
  return realloc(p, n);
}

static void *budget_calloc(size_t c, size_t n) {
  if (alloc_budget == 0)
    return NULL;
  if (alloc_budget > 0)
    alloc_budget--;
  return calloc(c, n);
}

static void test_alloc_failures(void **state) {
  const vhdup__http_header hdrs[] = {{"x-ms-version", "2021-08-06"}};
  vhdup__http_opts o;
  char url[128];
  long budget;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.ca_file = "/nonexistent/ca.pem"; /* one more string to copy; unused for http */
  o.user_agent = "vhdup-test";
  snprintf(url, sizeof(url), "%s/_bytes/3000", base_url);
  for (budget = 0; budget < 100; budget++) {
    env e;
    result r;
    vhdup__http_req rq;
    int rc;
    memset(&e, 0, sizeof(e));
    memset(&r, 0, sizeof(r));
    assert_int_equal(uv_loop_init(&e.loop), 0);
    alloc_budget = budget;
    assert_int_equal(vhdup_replace_allocator(budget_malloc, budget_realloc, budget_calloc, free),
                     0);
    rc = vhdup__http_new(&e.loop, &o, &e.h);
    if (rc != 0) {
      assert_int_equal(rc, VHDUP_ENOMEM);
      assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
      assert_int_equal(uv_loop_close(&e.loop), 0);
      continue;
    }
    memset(&rq, 0, sizeof(rq));
    rq.method = "GET";
    rq.url = url;
    rq.headers = hdrs;
    rq.n_headers = 1;
    rc = vhdup__http_submit(e.h, &rq, on_done, &r, NULL);
    if (rc != 0)
      assert_int_equal(rc, VHDUP_ENOMEM);
    else
      run_until(&e, &r.done);
    if (rc == 0 && r.error != 0)
      assert_true(r.error == VHDUP_ENOMEM || r.error == VHDUP_ENET);
    env_close(&e);
    assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
    if (rc == 0 && r.error == 0 && alloc_budget > 0) {
      assert_int_equal(r.status, 200);
      assert_int_equal(r.body_len, 3000);
      result_free(&r);
      break;
    }
    result_free(&r);
  }
  assert_true(budget > 3 && budget < 100);
}

/* ---- against the strict page-blob test server ---- */

static char ts_base[96];

static int start_testserver(void) {
  const char *bin = getenv("VHDUP_TESTSERVER");
  char *argv[] = {(char *)bin, "--port",    "0",       "--port-file", "@PORTFILE@", "--store",
                  "@STORE@",   "--sas-sig", "testsig", NULL,          NULL};
  if (getenv("VHDUP_TEST_VERBOSE") != NULL)
    argv[9] = "-v";
  if (bin == NULL || access(bin, X_OK) != 0)
    return -1;
  if (test_srv.pid == 0) {
    if (start_server(&test_srv, argv) != 0)
      return -1;
    snprintf(ts_base, sizeof(ts_base), "http://127.0.0.1:%d/devstoreaccount1", test_srv.port);
  }
  return 0;
}

static void ts_do(env *e, const char *method, const char *path, const vhdup__http_header *hdrs,
                  size_t n, const void *body, size_t len, long timeout_ms, result *res) {
  vhdup__http_req rq;
  char url[256];
  memset(res, 0, sizeof(*res));
  memset(&rq, 0, sizeof(rq));
  if (strncmp(path, "/_control/", 10) == 0) /* control is outside the account */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", test_srv.port, path);
  else
    snprintf(url, sizeof(url), "%s%s", ts_base, path);
  rq.method = method;
  rq.url = url;
  rq.headers = hdrs;
  rq.n_headers = n;
  rq.body = body;
  rq.body_len = len;
  rq.total_timeout_ms = timeout_ms;
  rq.max_response_body = 4 * MIB;
  assert_int_equal(vhdup__http_submit(e->h, &rq, on_done, res, NULL), 0);
}

typedef struct page {
  uint64_t off;
  size_t len;
  char range[64];
  char md5[32];
  vhdup__http_header hdrs[3];
  result res;
} page;

static void page_init(page *p, const unsigned char *image, uint64_t off, size_t len) {
  uint8_t d[VHDUP__MD5_LEN];
  p->off = off;
  p->len = len;
  snprintf(p->range, sizeof(p->range), "bytes=%llu-%llu", (unsigned long long)off,
           (unsigned long long)(off + len - 1));
  assert_int_equal(vhdup__md5_digest(image + off, len, d), 0);
  assert_true(vhdup__base64_encode(d, sizeof(d), p->md5, sizeof(p->md5)) > 0);
  p->hdrs[0].name = "x-ms-page-write";
  p->hdrs[0].value = "update";
  p->hdrs[1].name = "x-ms-range";
  p->hdrs[1].value = p->range;
  p->hdrs[2].name = "Content-MD5";
  p->hdrs[2].value = p->md5;
}

/* The upload pipeline's shape: create a page blob, then many concurrent
 * Put Page requests of up to 4 MiB through a capped pool, read back. */
static void test_testserver_put_pages(void **state) {
  enum { CAP = 4, NPAGES = 24 };
  const uint64_t blob_size = 64ull * MIB;
  const vhdup__http_header create[] = {{"x-ms-blob-type", "PageBlob"},
                                       {"x-ms-blob-content-length", "67108864"}};
  static page pages[NPAGES];
  env e;
  vhdup__http_opts o;
  vhdup__http_stats st;
  result r;
  unsigned char *image;
  uint64_t off = 0;
  unsigned i;
  (void)state;
  if (start_testserver() != 0) {
    skip();
    return;
  }
  image = calloc(1, blob_size);
  assert_non_null(image);
  memset(&o, 0, sizeof(o));
  o.max_connections = CAP;
  env_init(&e, &o);

  ts_do(&e, "PUT", "/vhds?restype=container&sig=testsig", NULL, 0, NULL, 0, 0, &r);
  run_until(&e, &r.done);
  if (r.status != 201 && r.status != 409)
    fail_msg("create container: error %d status %ld %s %s", r.error, r.status, r.detail,
             (char *)r.body);
  result_free(&r);
  ts_do(&e, "PUT", "/vhds/disk.vhd?sig=testsig", create, 2, NULL, 0, 0, &r);
  run_until(&e, &r.done);
  assert_int_equal(r.error, 0);
  assert_int_equal(r.status, 201);
  result_free(&r);
  ts_do(&e, "POST", "/_control/reset-stats", NULL, 0, "", 0, 0, &r);
  run_until(&e, &r.done);
  result_free(&r);

  for (i = 0; i < NPAGES; i++) {
    size_t len = i % 6 == 0 ? 4 * MIB : ((i * 2741u) % 8192u + 1u) * 512u;
    if (off + len > blob_size - 512)
      break;
    fill(image + off, len, i + 1000);
    page_init(&pages[i], image, off, len);
    ts_do(&e, "PUT", "/vhds/disk.vhd?comp=page&sig=testsig", pages[i].hdrs, 3, image + off, len, 0,
          &pages[i].res);
    off += len + (i % 3 == 0 ? 512 * 7 : 0); /* leave some gaps of zeros */
  }
  assert_int_equal(i, NPAGES);
  for (i = 0; i < NPAGES; i++)
    run_until(&e, &pages[i].res.done);
  /* Retry transport failures as the pipeline would: a server may drop a
   * kept-alive connection while libcurl is already sending on it (a send
   * error, which libcurl does not resend by itself). */
  for (i = 0; i < NPAGES; i++) {
    int tries;
    for (tries = 0; tries < 3 && pages[i].res.error != 0 && pages[i].res.retryable; tries++) {
      result_free(&pages[i].res);
      ts_do(&e, "PUT", "/vhds/disk.vhd?comp=page&sig=testsig", pages[i].hdrs, 3,
            image + pages[i].off, pages[i].len, 0, &pages[i].res);
      run_until(&e, &pages[i].res.done);
    }
  }
  for (i = 0; i < NPAGES; i++) {
    if (pages[i].res.status != 201)
      fail_msg("page %u: error %d status %ld %s %s", i, pages[i].res.error, pages[i].res.status,
               pages[i].res.detail, (char *)pages[i].res.body);
    result_free(&pages[i].res);
  }
  /* The server never saw more than CAP requests at once. Connections are
   * reused, but not always exactly CAP of them: when the server drops a
   * kept-alive connection, libcurl resends on a new one. */
  vhdup__http_get_stats(e.h, &st);
  assert_true(st.connections_opened < NPAGES / 2);
  assert_true(stat_field_at(&e, ts_base, "max_inflight") <= CAP);
  assert_true(stat_field_at(&e, ts_base, "put_pages") >= NPAGES);

  /* Read the whole blob back in 4 MiB ranges. */
  for (off = 0; off < blob_size; off += 4 * MIB) {
    char range[64];
    const vhdup__http_header h[] = {{"x-ms-range", range}};
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
             (unsigned long long)(off + 4 * MIB - 1));
    ts_do(&e, "GET", "/vhds/disk.vhd?sig=testsig", h, 1, NULL, 0, 0, &r);
    run_until(&e, &r.done);
    assert_int_equal(r.status, 206);
    assert_int_equal(r.body_len, 4 * MIB);
    assert_int_equal(r.truncated, 0);
    assert_memory_equal(r.body, image + off, 4 * MIB);
    result_free(&r);
  }
  ts_do(&e, "HEAD", "/vhds/disk.vhd?sig=testsig", NULL, 0, NULL, 0, 0, &r);
  r.want = "content-length";
  run_until(&e, &r.done);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.want_value, "67108864");
  result_free(&r);

  /* Injected faults, one Put Page each, each from a fresh engine: a
   * reset on a kept-alive connection would be retried by libcurl itself. */
  {
    static const struct {
      const char *spec;
      int error;
      long status;
    } cases[] = {{"503:1", 0, 503},
                 {"500:1", 0, 500},
                 {"reset:1", VHDUP_ENET, 0},
                 {"stall:1", VHDUP_ETIMEDOUT, 0}};
    page p;
    unsigned c;
    env f;
    page_init(&p, image, 0, 4 * MIB);
    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
      ts_do(&e, "POST", "/_control/faults", NULL, 0, cases[c].spec, strlen(cases[c].spec), 0, &r);
      run_until(&e, &r.done);
      assert_int_equal(r.status, 204);
      result_free(&r);
      env_init(&f, NULL);
      ts_do(&f, "PUT", "/vhds/disk.vhd?comp=page&sig=testsig", p.hdrs, 3, image, 4 * MIB, 1500,
            &p.res);
      run_until(&f, &p.res.done);
      env_close(&f);
      if (p.res.error != cases[c].error || p.res.status != cases[c].status)
        fail_msg("%s: error %d status %ld %s", cases[c].spec, p.res.error, p.res.status,
                 p.res.detail);
      result_free(&p.res);
    }
    ts_do(&e, "POST", "/_control/faults", NULL, 0, "none", 4, 0, &r);
    run_until(&e, &r.done);
    result_free(&r);
  }

  ts_do(&e, "DELETE", "/vhds/disk.vhd?sig=testsig", NULL, 0, NULL, 0, 0, &r);
  run_until(&e, &r.done);
  assert_int_equal(r.status, 202);
  result_free(&r);
  env_close(&e);
  free(image);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_invalid_requests),
      cmocka_unit_test(test_concurrent_puts),
      cmocka_unit_test(test_upload_buffer_reuse),
      cmocka_unit_test(test_keepalive_reuse),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_server_errors),
      cmocka_unit_test(test_reset),
      cmocka_unit_test(test_stall_times_out),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_chain_from_callbacks),
      cmocka_unit_test(test_close_from_callback),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_verbose_redacts),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_testserver_put_pages),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
