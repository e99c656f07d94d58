/* Connections: accept on 127.0.0.1, parse HTTP/1.1 with http_parser, buffer
 * at most one body (<= max_body) per connection, and write responses,
 * including the misbehaving ones the fault plan asks for (reset mid-body,
 * stall forever, trickle one byte at a time). Pipelining is not supported:
 * a request arriving before the previous response is finished makes the
 * connection close once that response is out. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TS_MAX_URL 16384
#define TS_FILE_CHUNK (1u << 20)

struct ts_conn {
  ts_conn *next;
  ts_conn *prev;
  ts_server *srv;
  uv_tcp_t tcp;
  uv_timer_t timer;
  int open_handles;
  http_parser parser;
  ts_request req;
  char rbuf[65536];
  /* Bytes of the next request that arrived before our write callback for
   * the current response ran (the client had read the answer from the
   * kernel already): kept, reading paused, parsed once the response is
   * done. Not pipelining: clients wait for the answer. */
  char stash[65536];
  size_t stash_len;
  bool closing;
  bool counted; /* this request is counted in stats.inflight */
  bool control; /* a /_control request: not counted in stats */
  bool put_page;
  bool responding; /* a response is being written */
  bool stalled;
  bool discard; /* body over max_body: read and drop it, then 413 */
  /* A Put Page body that only needs counting: a sink without checks keeps
   * no bytes and computes no sums, so copying them would only spend the
   * CPU the client under test shares with us (a third of the sink's). */
  bool count_only;
  bool early; /* final response sent before the body (Expect) */
  bool keep_alive;
  bool bad_request;
  ts_fault_kind fault;
  ts_fault_op op; /* what the request is, for its fault steps */
  uint64_t body_seen;
  ts_response resp;
  uv_write_t wreq;
  char *chunk;
  size_t trickle_pos;
  bool write_pending;
  bool status_counted; /* this response is in stats.status_counts */
  int header_state;    /* 0 none, 1 in field, 2 in value */
};

static void conn_close(ts_conn *c);

static ts_conn *conn_of_parser(http_parser *p) {
  return p->data;
}

static void req_reset(ts_request *r) {
  sbuf_clear(&r->url);
  sbuf_clear(&r->path);
  sbuf_clear(&r->query);
  for (size_t i = 0; i < r->nheaders; i++) {
    sbuf_free(&r->headers[i].name);
    sbuf_free(&r->headers[i].value);
  }
  r->nheaders = 0;
  r->header_overflow = false;
  r->content_length = 0;
  r->body_len = 0;
}

static void req_free(ts_request *r) {
  req_reset(r);
  sbuf_free(&r->url);
  sbuf_free(&r->path);
  sbuf_free(&r->query);
  free(r->body);
  r->body = NULL;
  r->body_cap = 0;
}

static void resp_reset(ts_response *resp) {
  sbuf_free(&resp->head);
  sbuf_free(&resp->body);
  memset(resp, 0, sizeof(*resp));
}

static void uncount(ts_conn *c) {
  if (c->counted) {
    c->counted = false;
    c->srv->stats.inflight--;
  }
}

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *h) {
  ts_conn *c = h->data;
  if (--c->open_handles > 0)
    return;
  req_free(&c->req);
  resp_reset(&c->resp);
  free(c->chunk);
  free(c);
}

static void unlink_conn(ts_conn *c) {
  ts_server *srv = c->srv;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
}

static void conn_close(ts_conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  uncount(c);
  unlink_conn(c);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* The "reset" fault: an abrupt RST, as a middlebox dropping the connection
 * mid-upload would cause. */
static void conn_reset(ts_conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  uncount(c);
  unlink_conn(c);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  if (uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* ---- writing responses ---- */

static void log_request(ts_conn *c) {
  if (!c->srv->cfg.verbose)
    return;
  char status[16];
  if (c->resp.status > 0)
    snprintf(status, sizeof(status), "%d", c->resp.status);
  else
    snprintf(status, sizeof(status), "none");
  char fault[64] = "";
  if (c->fault != TS_FAULT_NONE)
    snprintf(fault, sizeof(fault), " (fault %s@%s)", ts_fault_kind_name(c->fault),
             ts_fault_op_name(c->op));
  fprintf(stderr, "vhdup-testserver: %s %s -> %s%s%s%s\n", http_method_str(c->req.method),
          c->req.url.p ? c->req.url.p : "", status, c->resp.error_code ? " " : "",
          c->resp.error_code ? c->resp.error_code : "", fault);
}

/* Counts the status once its last byte is with the kernel. The client may
 * read it and hang up before our write callback runs (it is deferred to the
 * next loop turn), so this also runs for a connection already closing. */
static void count_status(ts_conn *c) {
  ts_server *srv = c->srv;
  if (c->status_counted)
    return;
  c->status_counted = true;
  log_request(c);
  if (!c->control && c->resp.status > 0 && c->resp.status < TS_STATUS_SLOTS)
    srv->stats.status_counts[c->resp.status]++;
}

static void consume(ts_conn *c, const char *data, size_t n);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void response_done(ts_conn *c) {
  ts_server *srv = c->srv;
  count_status(c);
  uncount(c);
  bool close_now = c->resp.close || !c->keep_alive || c->bad_request || srv->closing;
  c->responding = false;
  resp_reset(&c->resp);
  if (close_now) {
    conn_close(c);
    return;
  }
  if (c->stash_len > 0) {
    size_t n = c->stash_len;
    c->stash_len = 0;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
      conn_close(c);
      return;
    }
    consume(c, c->stash, n);
  }
}

static void write_next(ts_conn *c);

static void on_written(uv_write_t *w, int status) {
  ts_conn *c = w->data;
  c->write_pending = false;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->closing) {
    if (c->resp.file_blob == NULL || c->resp.file_len == 0)
      count_status(c);
    return;
  }
  write_next(c);
}

/* Continues a file-backed body, or finishes the response. */
static void write_next(ts_conn *c) {
  ts_response *resp = &c->resp;
  if (resp->file_blob != NULL && resp->file_len > 0 && !resp->head_only) {
    size_t n = resp->file_len < TS_FILE_CHUNK ? (size_t)resp->file_len : TS_FILE_CHUNK;
    if (c->chunk == NULL)
      c->chunk = ts_xmalloc(TS_FILE_CHUNK);
    if (ts_store_read(resp->file_blob, resp->file_off, c->chunk, n) != 0) {
      /* The head promised a length we cannot deliver: drop the connection. */
      conn_close(c);
      return;
    }
    resp->file_off += n;
    resp->file_len -= n;
    uv_buf_t buf = uv_buf_init(c->chunk, (unsigned)n);
    c->wreq.data = c;
    c->write_pending = true;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
      c->write_pending = false;
      conn_close(c);
    }
    return;
  }
  response_done(c);
}

static void on_trickle_written(uv_write_t *w, int status) {
  ts_conn *c = w->data;
  c->write_pending = false;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->trickle_pos >= c->resp.head.len) {
    if (c->closing) {
      count_status(c);
      return;
    }
    uv_timer_stop(&c->timer);
    response_done(c);
  }
}

static void on_trickle(uv_timer_t *t) {
  ts_conn *c = t->data;
  if (c->closing || c->write_pending)
    return;
  ts_response *resp = &c->resp;
  if (c->trickle_pos >= resp->head.len)
    return;
  uv_buf_t buf = uv_buf_init(resp->head.p + c->trickle_pos, 1);
  c->trickle_pos++;
  c->wreq.data = c;
  c->write_pending = true;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_trickle_written) != 0) {
    c->write_pending = false;
    conn_close(c);
  }
}

static void send_response(ts_conn *c) {
  ts_response *resp = &c->resp;
  c->status_counted = false;
  if (!c->keep_alive || c->bad_request)
    resp->close = true;
  ts_resp_finish(resp);
  c->responding = true;
  if (resp->trickle) {
    /* Trickle everything, head and body, one byte per tick. */
    if (!resp->head_only)
      sbuf_append(&resp->head, resp->body.p, resp->body.len);
    c->trickle_pos = 0;
    unsigned ms = c->srv->cfg.trickle_ms ? c->srv->cfg.trickle_ms : 100;
    uv_timer_start(&c->timer, on_trickle, ms, ms);
    return;
  }
  uv_buf_t bufs[2];
  unsigned n = 0;
  bufs[n++] = uv_buf_init(resp->head.p, (unsigned)resp->head.len);
  if (resp->body.len > 0 && !resp->head_only)
    bufs[n++] = uv_buf_init(resp->body.p, (unsigned)resp->body.len);
  c->wreq.data = c;
  c->write_pending = true;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, n, on_written) != 0) {
    c->write_pending = false;
    conn_close(c);
  }
}

static void on_delay(uv_timer_t *t) {
  send_response(t->data);
}

/* ---- parser callbacks ---- */

static int on_message_begin(http_parser *p) {
  ts_conn *c = conn_of_parser(p);
  if (c->responding || c->stalled)
    return -1; /* pipelined request: unsupported, see the file comment */
  req_reset(&c->req);
  c->counted = false;
  c->control = false;
  c->put_page = false;
  c->discard = false;
  c->count_only = false;
  c->early = false;
  c->bad_request = false;
  c->fault = TS_FAULT_NONE;
  c->op = TS_OP_OTHER;
  c->body_seen = 0;
  c->header_state = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  ts_conn *c = conn_of_parser(p);
  if (c->req.url.len + len > TS_MAX_URL)
    return -1;
  sbuf_append(&c->req.url, at, len);
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  ts_conn *c = conn_of_parser(p);
  ts_request *r = &c->req;
  if (c->header_state != 1) {
    c->header_state = 1;
    if (r->nheaders == TS_MAX_HEADERS) {
      r->header_overflow = true;
      return 0;
    }
    r->nheaders++;
    sbuf_init(&r->headers[r->nheaders - 1].name);
    sbuf_init(&r->headers[r->nheaders - 1].value);
    sbuf_append(&r->headers[r->nheaders - 1].value, "", 0);
  }
  if (!r->header_overflow)
    sbuf_append(&r->headers[r->nheaders - 1].name, at, len);
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  ts_conn *c = conn_of_parser(p);
  ts_request *r = &c->req;
  c->header_state = 2;
  if (!r->header_overflow && r->nheaders > 0)
    sbuf_append(&r->headers[r->nheaders - 1].value, at, len);
  return 0;
}

static void split_url(ts_request *r) {
  const char *u = r->url.p ? r->url.p : "/";
  const char *q = strchr(u, '?');
  size_t plen = q ? (size_t)(q - u) : strlen(u);
  sbuf_append(&r->path, u, plen);
  sbuf_append(&r->query, q ? q + 1 : "", q ? strlen(q + 1) : 0);
}

static int on_headers_complete(http_parser *p) {
  ts_conn *c = conn_of_parser(p);
  ts_server *srv = c->srv;
  ts_request *r = &c->req;
  r->method = (enum http_method)p->method;
  split_url(r);
  r->content_length = p->content_length == ULLONG_MAX ? 0 : p->content_length;
  if (p->flags & F_CHUNKED) {
    /* Azure needs Content-Length on writes; so do we. Drop the body. */
    c->bad_request = true;
    c->discard = true;
  }
  c->control = ts_ops_is_control(r);
  c->put_page = !c->control && ts_ops_is_put_page(r);
  if (!c->control) {
    srv->stats.requests++;
    srv->stats.inflight++;
    c->counted = true;
    if (srv->stats.inflight > srv->stats.max_inflight)
      srv->stats.max_inflight = srv->stats.inflight;
  }
  if (c->put_page) {
    srv->stats.put_pages++;
    if (r->content_length > srv->stats.max_body)
      srv->stats.max_body = r->content_length;
  }
  /* An oversized body gets its 413 whatever the plan says; keep the
   * planned fault for the next request that can take it. */
  if (!c->control && r->content_length <= srv->cfg.max_body) {
    c->op = ts_ops_fault_op(r);
    c->fault = ts_faults_next(&srv->faults, c->op);
    if (c->fault != TS_FAULT_NONE) {
      srv->stats.faults_injected++;
      srv->stats.faults_by_op[c->op]++;
    }
  }
  const char *expect = ts_req_header(r, "Expect");
  bool wants_continue = expect != NULL && strcasecmp(expect, "100-continue") == 0;
  if (r->content_length > srv->cfg.max_body) {
    /* Never buffer an oversized body: either refuse before it is sent
     * (Expect), or read and drop it and refuse at the end. */
    c->discard = true;
    if (wants_continue) {
      c->early = true;
      c->keep_alive = false;
      ts_resp_error(srv, &c->resp, 413, "RequestBodyTooLarge",
                    "The request body is too large and exceeds the maximum permissible limit.");
      c->resp.close = true;
      send_response(c);
    }
    return 0;
  }
  c->count_only = c->put_page && srv->cfg.sink && !srv->cfg.sink_verify_sums;
  if (!c->count_only && r->content_length > r->body_cap) {
    free(r->body);
    r->body = ts_xmalloc((size_t)r->content_length);
    r->body_cap = (size_t)r->content_length;
  }
  if (wants_continue && c->fault != TS_FAULT_RESET) {
    static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t buf = uv_buf_init(cont, sizeof(cont) - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  ts_conn *c = conn_of_parser(p);
  ts_request *r = &c->req;
  c->body_seen += len;
  if (c->fault == TS_FAULT_RESET) {
    uint64_t half = r->content_length / 2 ? r->content_length / 2 : 1;
    if (c->body_seen >= half) {
      log_request(c);
      conn_reset(c);
      return -1;
    }
  }
  if (c->count_only) {
    r->body_len += len;
    return 0;
  }
  if (c->discard || len > r->body_cap - r->body_len)
    return 0;
  memcpy(r->body + r->body_len, at, len);
  r->body_len += len;
  return 0;
}

static void on_reset_timer(uv_timer_t *t) {
  conn_reset(t->data);
}

static void on_interim_written(uv_write_t *w, int status) {
  ts_conn *c = w->data;
  c->write_pending = false;
  if (c->closing)
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_reset_timer, 50, 0);
}

/* The "reset" fault on a request without a body (everything but a Put Page
 * update): RST before answering. libcurl silently sends a request again on
 * a fresh connection when a reused one dies before any header line of the
 * answer arrived (Curl_retry_request; checked with curl 7.88: the client
 * never saw the fault), which would hide the fault from the client under
 * test. So an interim "100 Continue" goes first (RFC 9110 15.2: clients
 * must accept a 1xx they did not ask for), then, 50 ms later, the RST: the
 * operation is not performed and no answer is ever sent. */
static void reset_bodiless(ts_conn *c) {
  static char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
  c->stalled = true; /* ignore anything more the client sends */
  log_request(c);
  uv_buf_t buf = uv_buf_init(interim, sizeof(interim) - 1);
  c->wreq.data = c;
  c->write_pending = true;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_interim_written) != 0) {
    c->write_pending = false;
    conn_reset(c);
  }
}

static int on_message_complete(http_parser *p) {
  ts_conn *c = conn_of_parser(p);
  ts_server *srv = c->srv;
  c->keep_alive = http_should_keep_alive(p) != 0;
  if (c->fault == TS_FAULT_RESET && c->req.content_length == 0) {
    reset_bodiless(c);
    return 0;
  }
  if (c->fault == TS_FAULT_RESET) {
    log_request(c);
    conn_reset(c);
    return -1;
  }
  if (c->early)
    return 0;
  resp_reset(&c->resp);
  if (c->bad_request)
    ts_resp_error(srv, &c->resp, 400, "InvalidInput",
                  "Chunked transfer encoding is not supported; send Content-Length.");
  else if (c->req.header_overflow)
    ts_resp_error(srv, &c->resp, 400, "InvalidInput", "Too many headers.");
  else if (c->discard)
    ts_resp_error(srv, &c->resp, 413, "RequestBodyTooLarge",
                  "The request body is too large and exceeds the maximum permissible limit.");
  else
    ts_ops_handle(srv, &c->req, c->fault, &c->resp);
  if (c->resp.stall) {
    /* Hold the request (still in flight) until the client gives up. */
    c->stalled = true;
    log_request(c);
    return 0;
  }
  if (c->resp.delay_ms > 0) {
    /* The service model holds the answer (queue mode). */
    c->responding = true;
    uv_timer_start(&c->timer, on_delay, c->resp.delay_ms, 0);
    return 0;
  }
  send_response(c);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ts_conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ts_conn *c = s->data;
  if (c->closing)
    return;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0 || c->stalled)
    return;
  if (c->responding && c->write_pending && !c->resp.trickle) {
    memcpy(c->stash, buf->base, (size_t)nread);
    c->stash_len = (size_t)nread;
    uv_read_stop(s);
    return;
  }
  consume(c, buf->base, (size_t)nread);
}

static void consume(ts_conn *c, const char *data, size_t n) {
  uv_stream_t *s = (uv_stream_t *)&c->tcp;
  ssize_t nread = (ssize_t)n;
  size_t parsed = http_parser_execute(&c->parser, &settings, data, n);
  if (c->closing)
    return;
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_OK && parsed == (size_t)nread)
    return;
  if (c->responding) {
    /* Pipelined or trailing garbage: finish this response, then close. */
    c->resp.close = true;
    c->keep_alive = false;
    uv_read_stop(s);
    return;
  }
  if (e == HPE_HEADER_OVERFLOW || e == HPE_INVALID_URL || e == HPE_CB_url ||
      e == HPE_INVALID_METHOD || e == HPE_INVALID_VERSION || e == HPE_INVALID_HEADER_TOKEN ||
      e == HPE_INVALID_CONTENT_LENGTH || e == HPE_UNEXPECTED_CONTENT_LENGTH) {
    c->bad_request = true;
    c->keep_alive = false;
    resp_reset(&c->resp);
    ts_resp_error(c->srv, &c->resp, 400, "InvalidInput", "Malformed HTTP request (%s).",
                  http_errno_name(e));
    send_response(c);
    uv_read_stop(s);
    return;
  }
  conn_close(c);
}

static void on_connection(uv_stream_t *server, int status) {
  ts_server *srv = server->data;
  if (status < 0 || srv->closing)
    return;
  ts_conn *c = ts_xmalloc(sizeof(*c));
  memset(c, 0, sizeof(*c));
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  c->keep_alive = true;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->next = srv->conns;
  if (srv->conns != NULL)
    srv->conns->prev = c;
  srv->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    conn_close(c);
}

int ts_http_listen(ts_server *srv, int port, int *bound_port) {
  struct sockaddr_in addr;
  int rc = uv_ip4_addr("127.0.0.1", port, &addr);
  if (rc == 0)
    rc = uv_tcp_init(srv->loop, &srv->listener);
  if (rc != 0)
    return rc;
  srv->listener.data = srv;
  rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection);
  if (rc == 0) {
    struct sockaddr_in got;
    int len = sizeof(got);
    rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&got, &len);
    if (rc == 0)
      *bound_port = ntohs(got.sin_port);
  }
  return rc;
}

void ts_http_close_all(ts_server *srv) {
  srv->closing = true;
  if (!uv_is_closing((uv_handle_t *)&srv->listener))
    uv_close((uv_handle_t *)&srv->listener, NULL);
  while (srv->conns != NULL)
    conn_close(srv->conns);
}
