/* A TCP proxy that adds a fixed one-way delay in each direction, for
 * benchmarking uploads over an emulated long path (bench/wan.sh,
 * bench/sweep.sh). Every chunk read is queued with the time it arrived and
 * written on when that time plus the delay has come, so with a delay of D ms
 * each way a request and its response see an RTT of 2*D on top of the
 * links. Each direction buffers at most --max-queue-mib MiB (queued or being
 * written); past that the proxy stops reading that side, which is the
 * backpressure TCP would give.
 *
 * usage: bench_delay_proxy --listen ADDR:PORT --connect ADDR:PORT
 *          [--delay-ms D] [--max-queue-mib N] [--port-file FILE]
 * PORT 0 in --listen takes a kernel-chosen port, written to --port-file.
 * IPv4 only. Stops on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { READ_SIZE = 64 * 1024 };

struct chunk {
  struct chunk *next;
  uint64_t due; /* uv_now() time at which it may be written */
  ssize_t len;  /* 0: end of stream (shut the writing side down) */
  char *data;
};

struct conn;

/* One direction: bytes read from `from` are written to `to`. */
struct flow {
  struct conn *conn;
  uv_tcp_t *from;
  uv_tcp_t *to;
  struct chunk *head, *tail;
  size_t buffered; /* queued + being written */
  int reading;
  int eof_read;
  int shut;
};

struct write_req {
  uv_write_t req;
  struct flow *flow;
  struct chunk *chunk;
};

struct conn {
  uv_tcp_t client;
  uv_tcp_t upstream;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req[2];
  struct flow up;   /* client -> upstream */
  struct flow down; /* upstream -> client */
  int closing;
  int closed_handles;
  int pending; /* writes and shutdowns not yet called back */
};

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sigterm, sigint;
static struct sockaddr_in upstream_addr;
static uint64_t delay_ms;
static size_t max_buffered = 16u * 1024 * 1024;
static unsigned long open_conns;

static void flow_pump(struct flow *f);
static void conn_arm_timer(struct conn *c);

static void chunk_free(struct chunk *ch) {
  free(ch->data);
  free(ch);
}

static void conn_maybe_free(struct conn *c) {
  if (c->closed_handles == 3 && c->pending == 0) {
    struct flow *flows[2] = {&c->up, &c->down};
    for (int i = 0; i < 2; i++) {
      while (flows[i]->head != NULL) {
        struct chunk *ch = flows[i]->head;
        flows[i]->head = ch->next;
        chunk_free(ch);
      }
    }
    free(c);
    open_conns--;
  }
}

static void on_conn_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  c->closed_handles++;
  conn_maybe_free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->client, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->upstream, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* Both directions finished: both ends shut down and nothing left to write. */
static void conn_maybe_done(struct conn *c) {
  if (c->up.shut && c->down.shut && c->pending == 0)
    conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = malloc(READ_SIZE);
  buf->len = buf->base != NULL ? READ_SIZE : 0;
}

static struct flow *flow_of_stream(uv_stream_t *s) {
  struct conn *c = s->data;
  return (uv_tcp_t *)s == &c->client ? &c->up : &c->down;
}

static void flow_enqueue(struct flow *f, char *data, ssize_t len) {
  struct chunk *ch = malloc(sizeof *ch);
  if (ch == NULL) {
    free(data);
    conn_close(f->conn);
    return;
  }
  ch->next = NULL;
  ch->due = uv_now(loop) + delay_ms;
  ch->len = len;
  ch->data = data;
  if (f->tail != NULL)
    f->tail->next = ch;
  else
    f->head = ch;
  f->tail = ch;
  f->buffered += (size_t)len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct flow *f = flow_of_stream(s);
  struct conn *c = f->conn;
  if (nread == 0 || c->closing) {
    free(buf->base);
    return;
  }
  if (nread == UV_EOF) {
    free(buf->base);
    uv_read_stop(s);
    f->reading = 0;
    f->eof_read = 1;
    flow_enqueue(f, NULL, 0);
    conn_arm_timer(c);
    return;
  }
  if (nread < 0) {
    free(buf->base);
    conn_close(c);
    return;
  }
  flow_enqueue(f, buf->base, nread);
  if (f->buffered > max_buffered && f->reading) {
    uv_read_stop(s);
    f->reading = 0;
  }
  conn_arm_timer(c);
}

static void flow_start_reading(struct flow *f) {
  if (f->reading || f->eof_read || f->conn->closing)
    return;
  if (uv_read_start((uv_stream_t *)f->from, on_alloc, on_read) == 0)
    f->reading = 1;
  else
    conn_close(f->conn);
}

static void on_written(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct flow *f = w->flow;
  struct conn *c = f->conn;
  f->buffered -= (size_t)w->chunk->len;
  chunk_free(w->chunk);
  free(w);
  c->pending--;
  if (c->closing) {
    conn_maybe_free(c);
    return;
  }
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (f->buffered <= max_buffered)
    flow_start_reading(f);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->data;
  (void)status;
  c->pending--;
  if (c->closing)
    conn_maybe_free(c);
  else
    conn_maybe_done(c);
}

/* Writes every chunk that is due. */
static void flow_pump(struct flow *f) {
  struct conn *c = f->conn;
  uint64_t now = uv_now(loop);
  while (!c->closing && f->head != NULL && f->head->due <= now) {
    struct chunk *ch = f->head;
    f->head = ch->next;
    if (f->head == NULL)
      f->tail = NULL;
    if (ch->len == 0) {
      uv_shutdown_t *req = &c->shutdown_req[f == &c->up ? 0 : 1];
      req->data = c;
      chunk_free(ch);
      if (uv_shutdown(req, (uv_stream_t *)f->to, on_shutdown) != 0) {
        conn_close(c);
        return;
      }
      c->pending++;
      f->shut = 1;
      continue;
    }
    struct write_req *w = malloc(sizeof *w);
    if (w == NULL) {
      chunk_free(ch);
      conn_close(c);
      return;
    }
    w->flow = f;
    w->chunk = ch;
    uv_buf_t b = uv_buf_init(ch->data, (unsigned)ch->len);
    if (uv_write(&w->req, (uv_stream_t *)f->to, &b, 1, on_written) != 0) {
      f->buffered -= (size_t)ch->len;
      chunk_free(ch);
      free(w);
      conn_close(c);
      return;
    }
    c->pending++;
  }
}

static void on_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  flow_pump(&c->up);
  flow_pump(&c->down);
  if (c->closing)
    return;
  conn_arm_timer(c);
  conn_maybe_done(c);
}

/* The timer fires when the earlier of the two queue heads is due. */
static void conn_arm_timer(struct conn *c) {
  if (c->closing)
    return;
  uint64_t due = UINT64_MAX;
  if (c->up.head != NULL)
    due = c->up.head->due;
  if (c->down.head != NULL && c->down.head->due < due)
    due = c->down.head->due;
  if (due == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t now = uv_now(loop);
  uint64_t wait = due > now ? due - now : 0;
  if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= wait)
    return;
  uv_timer_start(&c->timer, on_timer, wait, 0);
}

static void on_upstream_connected(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  c->pending--;
  if (c->closing) {
    conn_maybe_free(c);
    return;
  }
  if (status < 0) {
    fprintf(stderr, "delay_proxy: upstream connect: %s\n", uv_strerror(status));
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->upstream, 1);
  flow_start_reading(&c->up);
  flow_start_reading(&c->down);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  open_conns++;
  uv_tcp_init(loop, &c->client);
  uv_tcp_init(loop, &c->upstream);
  uv_timer_init(loop, &c->timer);
  c->client.data = c->upstream.data = c->timer.data = c;
  c->up = (struct flow){.conn = c, .from = &c->client, .to = &c->upstream};
  c->down = (struct flow){.conn = c, .from = &c->upstream, .to = &c->client};
  if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->client, 1);
  c->connect_req.data = c;
  if (uv_tcp_connect(&c->connect_req, &c->upstream, (const struct sockaddr *)&upstream_addr,
                     on_upstream_connected) != 0) {
    conn_close(c);
    return;
  }
  c->pending++;
}

static void on_listener_closed(uv_handle_t *h) {
  (void)h;
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h))
    return;
  if (h->data != NULL && h->type != UV_SIGNAL && h != (uv_handle_t *)&listener)
    conn_close(h->data);
  else
    uv_close(h, on_listener_closed);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s;
  (void)signum;
  uv_walk(loop, close_any, NULL);
}

static int parse_addr(const char *spec, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(spec, ':');
  if (colon == NULL || (size_t)(colon - spec) >= sizeof host)
    return -1;
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535)
    return -1;
  return uv_ip4_addr(host, (int)port, out);
}

static void usage(void) {
  fprintf(stderr, "usage: bench_delay_proxy --listen ADDR:PORT --connect ADDR:PORT "
                  "[--delay-ms D] [--max-queue-mib N] [--port-file FILE]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *listen_spec = NULL, *connect_spec = NULL, *port_file = NULL;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      usage();
    if (strcmp(argv[i], "--listen") == 0)
      listen_spec = argv[++i];
    else if (strcmp(argv[i], "--connect") == 0)
      connect_spec = argv[++i];
    else if (strcmp(argv[i], "--delay-ms") == 0)
      delay_ms = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--max-queue-mib") == 0)
      max_buffered = (size_t)strtoull(argv[++i], NULL, 10) * 1024 * 1024;
    else if (strcmp(argv[i], "--port-file") == 0)
      port_file = argv[++i];
    else
      usage();
  }
  struct sockaddr_in listen_addr;
  if (listen_spec == NULL || connect_spec == NULL || parse_addr(listen_spec, &listen_addr) != 0 ||
      parse_addr(connect_spec, &upstream_addr) != 0 || max_buffered == 0)
    usage();
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  uv_tcp_init(loop, &listener);
  int rc = uv_tcp_bind(&listener, (const struct sockaddr *)&listen_addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&listener, 1024, on_connection);
  if (rc != 0) {
    fprintf(stderr, "delay_proxy: listen on %s: %s\n", listen_spec, uv_strerror(rc));
    return 1;
  }
  if (port_file != NULL) {
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", ntohs(bound.sin_port)) < 0 || fclose(f) != 0 ||
        rename(tmp, port_file) != 0) {
      fprintf(stderr, "delay_proxy: cannot write %s\n", port_file);
      return 1;
    }
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  if (rc != 0 || open_conns != 0) {
    fprintf(stderr, "delay_proxy: loop not clean at exit (%s, %lu connections)\n", uv_strerror(rc),
            open_conns);
    return 1;
  }
  return 0;
}
