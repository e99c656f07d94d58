/* libcurl multi_socket on libuv: one uv_poll_t per socket libcurl asks us to
 * watch (found again through curl_multi_assign), one uv_timer_t for libcurl's
 * timeout, and a second timer that delivers cancellations from the loop.
 *
 * Re-entrancy rules, which everything below relies on:
 * - user callbacks run only from drain() and on_defer(), both called straight
 *   from a libuv callback, never from inside a libcurl callback;
 * - libcurl is driven (curl_multi_socket_action) only from libuv callbacks,
 *   never from inside libcurl's own callbacks: a 0 ms timeout from libcurl
 *   becomes a 0 ms uv timer;
 * - the engine is only freed by teardown(), which runs at the end of
 *   on_defer() with no user frame below it, so a user callback may call
 *   vhdup__http_close() and drain() may go on touching the engine after. */
#include "net/http.h"

#include "util/alloc.h"
#include "util/list.h"
#include "util/secret.h"
#include "vhdup.h"

#include <curl/curl.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_CONNECTIONS 16u
#define MAX_CONNECTIONS_LIMIT 65536u
#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_RESPONSE_BODY ((size_t)1 << 20)
#define MAX_HEADER_BYTES ((size_t)64 << 10)
#define MAX_HEADER_LINES 256u
/* Buffers at most this big stay with a recycled transfer. */
#define KEEP_BUFFER_BYTES ((size_t)16 << 10)
#define DETAIL_MAX (CURL_ERROR_SIZE + 128)
/* What libcurl allocates for a transfer's upload buffer unless told. */
#define CURL_UPLOAD_BUFFER_DEFAULT 65536L

typedef enum { XFER_IDLE, XFER_ACTIVE, XFER_CANCELED, XFER_CALLING } xfer_state;

struct vhdup__http_xfer {
  vhdup__http *h;
  CURL *easy;
  xfer_state state;
  vhdup__list link; /* in h->active, h->canceled or h->spare */

  vhdup__http_done_cb cb;
  void *data;
  struct curl_slist *req_headers;
  const unsigned char *body;
  uint64_t body_len, body_off;
  uint64_t start_ns;
  size_t upload_buffer; /* charged to h->upload_buffers_held; 0: default */

  /* Response headers as "name\0value\0" pairs, n_hdr of them. */
  char *hdr;
  size_t hdr_len, hdr_cap, n_hdr;
  vhdup__http_header *hdr_vec;
  size_t hdr_vec_cap;

  char *resp_body;
  size_t resp_len, resp_cap, max_body;
  int truncated;

  /* Failure found by our own libcurl callbacks, which can only answer
   * libcurl with "abort"; 0 if none. */
  int own_error;
  const char *own_detail;
  int poll_failed; /* a socket of this transfer could not be watched */
  char errbuf[CURL_ERROR_SIZE];
  char detail[DETAIL_MAX];
};

typedef struct sock {
  uv_poll_t poll;
  vhdup__http *h;
  curl_socket_t fd;
  int events;       /* what libcurl last asked for, as UV_READABLE/UV_WRITABLE */
  vhdup__list link; /* in h->socks */
} sock;

/* A list of transfers that knows its length. */
typedef struct xfer_list {
  vhdup__list head;
  unsigned n;
} xfer_list;

struct vhdup__http {
  uv_loop_t *loop;
  CURLM *multi;
  CURLSH *share;
  uv_timer_t timer; /* libcurl's timeout */
  uv_timer_t defer; /* delivers canceled transfers from the loop */
  unsigned open_handles;

  unsigned max_connections;
  long connect_timeout_ms, total_timeout_ms, low_speed_limit_bps, low_speed_time_s;
  long upload_buffer_size;
  size_t upload_buffers_total, upload_buffers_held;
  size_t max_response_body;
  int verbose;
  char *ca_file;
  char *user_agent;

  xfer_list active;
  xfer_list canceled;
  xfer_list spare; /* idle transfers with their easy handles, for reuse */
  vhdup__list socks;

  unsigned poll_failures; /* transfers with poll_failed set */
  int closing;
  int torn_down;
  vhdup__http_close_cb close_cb;
  vhdup__http_stats stats;
  void *data;
};

static unsigned global_refs;

static int global_ref(void) {
  if (global_refs == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return VHDUP_ENET;
  global_refs++;
  return 0;
}

static void global_unref(void) {
  if (--global_refs == 0)
    curl_global_cleanup();
}

/* ---- lists ---- */

static void list_push(xfer_list *l, vhdup__http_xfer *x) {
  vhdup__list_push_tail(&l->head, &x->link);
  l->n++;
}

static void list_push_front(xfer_list *l, vhdup__http_xfer *x) {
  vhdup__list_push_head(&l->head, &x->link);
  l->n++;
}

static void list_remove(xfer_list *l, vhdup__http_xfer *x) {
  vhdup__list_remove(&x->link);
  l->n--;
}

static vhdup__http_xfer *list_first(const xfer_list *l) {
  vhdup__list *node = vhdup__list_first(&l->head);
  return node != NULL ? vhdup__list_entry(node, vhdup__http_xfer, link) : NULL;
}

/* Unlinks and returns the first transfer, or NULL when empty. */
static vhdup__http_xfer *list_pop(xfer_list *l) {
  vhdup__http_xfer *x = list_first(l);
  if (x != NULL)
    list_remove(l, x);
  return x;
}

/* ---- handle bookkeeping ---- */

static void finalize(vhdup__http *h) {
  if (h->close_cb != NULL)
    h->close_cb(h);
  vhdup__free(h->ca_file);
  vhdup__free(h->user_agent);
  vhdup__free(h);
  global_unref();
}

static void handle_closed(vhdup__http *h) {
  if (--h->open_handles == 0 && h->torn_down)
    finalize(h);
}

static void on_timer_closed(uv_handle_t *t) {
  handle_closed(t->data);
}

static void on_sock_closed(uv_handle_t *p) {
  sock *s = p->data;
  vhdup__http *h = s->h;
  vhdup__free(s);
  handle_closed(h);
}

static void sock_close(sock *s) {
  vhdup__list_remove(&s->link);
  /* uv_close stops the watcher now, so libcurl may close (and the kernel
   * reuse) the descriptor straight after this returns. */
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* ---- transfers ---- */

static void xfer_destroy(vhdup__http_xfer *x) {
  if (x->easy != NULL)
    curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->req_headers);
  vhdup__free(x->hdr);
  vhdup__free(x->hdr_vec);
  vhdup__free(x->resp_body);
  vhdup__free(x);
}

/* libcurl frees a transfer's upload buffer when the transfer ends (or never
 * made it): what it was charged is free for the next request, including
 * one submitted from this transfer's callback. */
static void release_upload_buffer(vhdup__http_xfer *x) {
  x->h->upload_buffers_held -= x->upload_buffer;
  x->upload_buffer = 0;
}

static vhdup__http_xfer *xfer_get(vhdup__http *h) {
  vhdup__http_xfer *x = list_pop(&h->spare);
  if (x != NULL)
    return x;
  x = vhdup__calloc(1, sizeof(*x));
  if (x == NULL)
    return NULL;
  x->h = h;
  vhdup__list_init(&x->link);
  x->easy = curl_easy_init();
  if (x->easy == NULL) {
    vhdup__free(x);
    return NULL;
  }
  return x;
}

/* Returns a transfer to the spare list (bounded by the connection cap, which
 * is all that can run at once) or frees it. */
static void xfer_put(vhdup__http_xfer *x) {
  vhdup__http *h = x->h;
  curl_slist_free_all(x->req_headers);
  x->req_headers = NULL;
  x->cb = NULL;
  x->data = NULL;
  x->body = NULL;
  x->state = XFER_IDLE;
  release_upload_buffer(x);
  if (h->closing || h->spare.n >= h->max_connections) {
    xfer_destroy(x);
    return;
  }
  if (x->hdr_cap > KEEP_BUFFER_BYTES) {
    vhdup__free(x->hdr);
    x->hdr = NULL;
    x->hdr_cap = 0;
  }
  if (x->resp_cap > KEEP_BUFFER_BYTES) {
    vhdup__free(x->resp_body);
    x->resp_body = NULL;
    x->resp_cap = 0;
  }
  /* Last in, first out: the transfers in steady use are the ones reused
   * (their easy handles and buffers warm in cache); the rest wait. */
  list_push_front(&h->spare, x);
}

/* ---- libcurl data callbacks (no user code, no socket_action here) ---- */

static size_t on_read(char *buf, size_t size, size_t nitems, void *userp) {
  vhdup__http_xfer *x = userp;
  uint64_t left = x->body_len - x->body_off;
  size_t n = size * nitems;
  if (n > left)
    n = (size_t)left;
  memcpy(buf, x->body + x->body_off, n);
  x->body_off += n;
  return n;
}

/* libcurl rewinds when it resends a request on a fresh connection. */
static int on_seek(void *userp, curl_off_t offset, int origin) {
  vhdup__http_xfer *x = userp;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->body_len)
    return CURL_SEEKFUNC_FAIL;
  x->body_off = (uint64_t)offset;
  return CURL_SEEKFUNC_OK;
}

static int grow(char **buf, size_t *cap, size_t need, size_t limit) {
  size_t c = *cap != 0 ? *cap : 512;
  char *p;
  while (c < need)
    c = c > limit / 2 ? limit : c * 2;
  if (c < need)
    c = need;
  p = vhdup__realloc(*buf, c);
  if (p == NULL)
    return -1;
  *buf = p;
  *cap = c;
  return 0;
}

static void response_reset(vhdup__http_xfer *x) {
  x->hdr_len = 0;
  x->n_hdr = 0;
  x->resp_len = 0;
  x->truncated = 0;
}

static size_t fail_from_callback(vhdup__http_xfer *x, int err, const char *detail) {
  x->own_error = err;
  x->own_detail = detail;
  return 0;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int hdr_append(vhdup__http_xfer *x, const char *s, size_t n) {
  if (x->hdr_len + n + 1 > MAX_HEADER_BYTES)
    return VHDUP_ELIMIT;
  if (x->hdr_len + n + 1 > x->hdr_cap &&
      grow(&x->hdr, &x->hdr_cap, x->hdr_len + n + 1, MAX_HEADER_BYTES) != 0)
    return VHDUP_ENOMEM;
  memcpy(x->hdr + x->hdr_len, s, n);
  x->hdr_len += n;
  x->hdr[x->hdr_len++] = '\0';
  return 0;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userp) {
  vhdup__http_xfer *x = userp;
  size_t n = size * nitems, end = n, name_end, v;
  const char *colon;
  int rc;
  if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* A new status line: whatever came before (a 100 Continue, a proxy's
     * CONNECT answer, a dead connection's attempt) is not the answer. */
    response_reset(x);
    return n;
  }
  while (end > 0 && is_space(line[end - 1]))
    end--;
  if (end == 0)
    return n;
  if (line[0] == ' ' || line[0] == '\t') {
    /* Obsolete line folding: the line continues the previous value. */
    if (x->n_hdr == 0)
      return n;
    v = 0;
    while (v < end && is_space(line[v]))
      v++;
    /* The value's NUL becomes the joining space. */
    x->hdr[x->hdr_len - 1] = ' ';
    rc = hdr_append(x, line + v, end - v);
    if (rc != 0) {
      x->hdr[x->hdr_len - 1] = '\0';
      return fail_from_callback(x, rc,
                                rc == VHDUP_ENOMEM ? "out of memory buffering response headers"
                                                   : "response headers larger than 64 KiB");
    }
    return n;
  }
  colon = memchr(line, ':', end);
  if (colon == NULL)
    return n;
  if (x->n_hdr >= MAX_HEADER_LINES)
    return fail_from_callback(x, VHDUP_ELIMIT, "too many response header lines");
  name_end = (size_t)(colon - line);
  while (name_end > 0 && is_space(line[name_end - 1]))
    name_end--;
  v = (size_t)(colon - line) + 1;
  while (v < end && is_space(line[v]))
    v++;
  rc = hdr_append(x, line, name_end);
  if (rc == 0)
    rc = hdr_append(x, line + v, end - v);
  if (rc != 0)
    return fail_from_callback(x, rc,
                              rc == VHDUP_ENOMEM ? "out of memory buffering response headers"
                                                 : "response headers larger than 64 KiB");
  x->n_hdr++;
  return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp) {
  vhdup__http_xfer *x = userp;
  size_t n = size * nmemb, take = n;
  if (take > x->max_body - x->resp_len) {
    take = x->max_body - x->resp_len;
    x->truncated = 1;
  }
  /* One spare byte for the terminating NUL handed to the callback. */
  if (take > 0 && x->resp_len + take + 1 > x->resp_cap &&
      grow(&x->resp_body, &x->resp_cap, x->resp_len + take + 1, x->max_body + 1) != 0)
    return fail_from_callback(x, VHDUP_ENOMEM, "out of memory buffering the response body");
  if (take > 0) {
    memcpy(x->resp_body + x->resp_len, data, take);
    x->resp_len += take;
  }
  return n;
}

/* Verbose trace with secrets removed: libcurl prints request lines with
 * their query string and the Authorization header as sent. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userp) {
  const char *prefix;
  char line[2048];
  (void)easy;
  (void)userp;
  switch (type) {
  case CURLINFO_TEXT:
    prefix = "* ";
    break;
  case CURLINFO_HEADER_IN:
    prefix = "< ";
    break;
  case CURLINFO_HEADER_OUT:
    prefix = "> ";
    break;
  default:
    return 0;
  }
  while (size > 0) {
    const char *nl = memchr(data, '\n', size);
    size_t n = nl != NULL ? (size_t)(nl - data) + 1 : size, len = n;
    while (len > 0 && is_space(data[len - 1]))
      len--;
    if (len > 0) {
      if (len >= 14 && strncasecmp(data, "authorization:", 14) == 0)
        fprintf(stderr, "%sAuthorization: REDACTED\n", prefix);
      else if (vhdup__redact(data, len, line, sizeof(line)) > 0)
        fprintf(stderr, "%s%s\n", prefix, line);
    }
    data += n;
    size -= n;
  }
  return 0;
}

/* ---- completion ---- */

static int map_curl_error(CURLcode rc, int *retryable) {
  *retryable = 1;
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return VHDUP_ETIMEDOUT;
  case CURLE_OUT_OF_MEMORY:
    return VHDUP_ENOMEM;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    *retryable = 0;
    return VHDUP_EURL;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_NOT_BUILT_IN:
  case CURLE_BAD_FUNCTION_ARGUMENT:
    *retryable = 0;
    return VHDUP_ENET;
  default:
    return VHDUP_ENET;
  }
}

/* Calls the user's callback and recycles the transfer. */
static void deliver(vhdup__http_xfer *x, vhdup__http_resp *r) {
  vhdup__http *h = x->h;
  curl_off_t n = 0;
  long conns = 0;
  if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK && conns > 0)
    h->stats.connections_opened += (uint64_t)conns;
  if (curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &n) == CURLE_OK && n > 0)
    h->stats.bytes_sent += (uint64_t)n;
  if (curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &n) == CURLE_OK && n > 0)
    h->stats.bytes_received += (uint64_t)n;
  r->seconds = (double)(uv_hrtime() - x->start_ns) / 1e9;
  x->state = XFER_CALLING;
  release_upload_buffer(x);
  h->stats.in_flight--;
  h->stats.completed++;
  x->cb(x, r, x->data);
  xfer_put(x);
}

static void forget_poll_failure(vhdup__http_xfer *x) {
  if (x->poll_failed) {
    x->poll_failed = 0;
    x->h->poll_failures--;
  }
}

static void finish(vhdup__http_xfer *x, CURLcode rc) {
  vhdup__http *h = x->h;
  vhdup__http_resp r;
  long status = 0;
  size_t i, off = 0;
  memset(&r, 0, sizeof(r));
  forget_poll_failure(x);
  curl_multi_remove_handle(h->multi, x->easy);
  list_remove(&h->active, x);
  if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
    r.status = status;
  r.error_detail = "";
  if (x->own_error != 0) {
    r.error = x->own_error;
    r.error_detail = x->own_detail;
    r.retryable = x->own_error == VHDUP_ENOMEM;
  } else if (rc != CURLE_OK) {
    const char *text = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);
    char raw[DETAIL_MAX];
    r.error = map_curl_error(rc, &r.retryable);
    snprintf(raw, sizeof(raw), "%s (curl error %d)", text, (int)rc);
    vhdup__redact(raw, strlen(raw), x->detail, sizeof(x->detail));
    r.error_detail = x->detail;
  }
  if (x->n_hdr > x->hdr_vec_cap) {
    vhdup__http_header *v = vhdup__realloc(x->hdr_vec, x->n_hdr * sizeof(*v));
    if (v == NULL) {
      x->n_hdr = 0;
      if (r.error == 0) {
        r.error = VHDUP_ENOMEM;
        r.retryable = 1;
        r.error_detail = "out of memory listing response headers";
      }
    } else {
      x->hdr_vec = v;
      x->hdr_vec_cap = x->n_hdr;
    }
  }
  for (i = 0; i < x->n_hdr; i++) {
    x->hdr_vec[i].name = x->hdr + off;
    off += strlen(x->hdr + off) + 1;
    x->hdr_vec[i].value = x->hdr + off;
    off += strlen(x->hdr + off) + 1;
  }
  r.headers = x->hdr_vec;
  r.n_headers = x->n_hdr;
  if (x->resp_body != NULL)
    x->resp_body[x->resp_len] = '\0';
  r.body = x->resp_body != NULL ? x->resp_body : "";
  r.body_len = x->resp_len;
  r.body_truncated = x->truncated;
  deliver(x, &r);
}

/* Hands every finished transfer to its callback. Called after every
 * curl_multi_socket_action, whether or not transfers are still running:
 * the last one to finish leaves running == 0 and must not be lost. */
static void drain(vhdup__http *h) {
  CURLMsg *m;
  int left;
  while (!h->torn_down && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
    char *priv = NULL;
    CURLcode rc;
    if (m->msg != CURLMSG_DONE)
      continue;
    rc = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    finish((vhdup__http_xfer *)(void *)priv, rc);
  }
}

/* The first active transfer whose socket could not be watched, or NULL. */
static vhdup__http_xfer *first_unwatched(vhdup__http *h) {
  vhdup__list_foreach(node, &h->active.head) {
    vhdup__http_xfer *x = vhdup__list_entry(node, vhdup__http_xfer, link);
    if (x->poll_failed)
      return x;
  }
  return NULL;
}

/* Fails the transfers whose sockets could not be watched (see
 * watch_failed), one at a time since each callback may change the list. */
static void fail_unwatched(vhdup__http *h) {
  while (h->poll_failures > 0 && !h->torn_down) {
    vhdup__http_xfer *x = first_unwatched(h);
    if (x == NULL) {
      h->poll_failures = 0;
      break;
    }
    finish(x, CURLE_OK);
  }
}

static void socket_action(vhdup__http *h, curl_socket_t fd, int flags) {
  int running = 0;
  curl_multi_socket_action(h->multi, fd, flags, &running);
  drain(h);
  fail_unwatched(h);
}

/* ---- libuv callbacks ---- */

static void on_poll(uv_poll_t *p, int status, int events) {
  sock *s = p->data;
  int flags = 0;
  if (status < 0) {
    /* libuv has stopped watching after an error. Tell libcurl, and let it
     * try the directions it was waiting for so that it reports the real
     * errno ("Connection reset by peer") rather than a bare poll error. */
    flags = CURL_CSELECT_ERR;
    events = s->events;
  }
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  socket_action(s->h, s->fd, flags);
}

static void on_timer(uv_timer_t *t) {
  socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static void teardown(vhdup__http *h);

static void on_defer(uv_timer_t *t) {
  vhdup__http *h = t->data;
  vhdup__http_xfer *x;
  while ((x = list_pop(&h->canceled)) != NULL) {
    vhdup__http_resp r;
    memset(&r, 0, sizeof(r));
    r.error = VHDUP_ECANCELED;
    r.error_detail = h->closing ? "canceled: engine closed" : "canceled";
    r.body = "";
    deliver(x, &r);
  }
  if (h->closing && h->active.n == 0)
    teardown(h);
}

/* ---- libcurl multi callbacks (no user code, no socket_action here) ---- */

/* Returning an error from the socket callback would mark the whole multi
 * handle dead (every transfer, now and later, fails), so instead only the
 * transfer that needed the socket is failed, once libcurl has returned. */
static int watch_failed(vhdup__http *h, CURL *easy, int err) {
  char *priv = NULL;
  vhdup__http_xfer *x;
  if (easy == NULL || curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
    return 0;
  x = (vhdup__http_xfer *)(void *)priv;
  if (x->state != XFER_ACTIVE || x->poll_failed)
    return 0;
  x->poll_failed = 1;
  x->own_error = err;
  x->own_detail = err == VHDUP_ENOMEM ? "out of memory watching a socket" : "cannot watch a socket";
  h->poll_failures++;
  return 0;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  vhdup__http *h = userp;
  sock *s = socketp;
  int events = 0;
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      curl_multi_assign(h->multi, fd, NULL);
      sock_close(s);
    }
    return 0;
  }
  if (h->torn_down)
    return 0;
  if (s == NULL) {
    s = vhdup__calloc(1, sizeof(*s));
    if (s == NULL)
      return watch_failed(h, easy, VHDUP_ENOMEM);
    if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
      vhdup__free(s);
      return watch_failed(h, easy, VHDUP_ENET);
    }
    s->poll.data = s;
    s->h = h;
    s->fd = fd;
    vhdup__list_push_head(&h->socks, &s->link);
    h->open_handles++;
    curl_multi_assign(h->multi, fd, s);
  }
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  s->events = events;
  if (uv_poll_start(&s->poll, events, on_poll) != 0)
    return watch_failed(h, easy, VHDUP_ENET);
  return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  vhdup__http *h = userp;
  (void)multi;
  if (h->torn_down)
    return 0;
  if (timeout_ms < 0)
    uv_timer_stop(&h->timer);
  else
    uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

/* ---- engine ---- */

int vhdup__http_new(uv_loop_t *loop, const vhdup__http_opts *o, vhdup__http **out) {
  static const vhdup__http_opts defaults;
  vhdup__http *h;
  int rc;
  if (loop == NULL || out == NULL)
    return VHDUP_EINVAL;
  if (o == NULL)
    o = &defaults;
  if (o->max_connections > MAX_CONNECTIONS_LIMIT || o->connect_timeout_ms < 0 ||
      o->total_timeout_ms < 0 || o->low_speed_limit_bps < 0 || o->low_speed_time_s < 0 ||
      (o->upload_buffer_size != 0 &&
       (o->upload_buffer_size < 16384 || o->upload_buffer_size > 2 * 1024 * 1024)))
    return VHDUP_EINVAL;
  rc = global_ref();
  if (rc != 0)
    return rc;
  h = vhdup__calloc(1, sizeof(*h));
  if (h == NULL) {
    global_unref();
    return VHDUP_ENOMEM;
  }
  h->loop = loop;
  vhdup__list_init(&h->active.head);
  vhdup__list_init(&h->canceled.head);
  vhdup__list_init(&h->spare.head);
  vhdup__list_init(&h->socks);
  h->max_connections = o->max_connections != 0 ? o->max_connections : DEFAULT_MAX_CONNECTIONS;
  h->connect_timeout_ms =
      o->connect_timeout_ms != 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
  h->total_timeout_ms = o->total_timeout_ms;
  h->low_speed_limit_bps = o->low_speed_limit_bps;
  h->low_speed_time_s = o->low_speed_time_s;
  h->upload_buffer_size = o->upload_buffer_size;
  h->upload_buffers_total = o->upload_buffers_total;
  h->max_response_body =
      o->max_response_body != 0 ? o->max_response_body : DEFAULT_MAX_RESPONSE_BODY;
  h->verbose = o->verbose;
  rc = VHDUP_ENOMEM;
  if (o->ca_file != NULL && (h->ca_file = vhdup__strdup(o->ca_file)) == NULL)
    goto fail;
  if (o->user_agent != NULL && (h->user_agent = vhdup__strdup(o->user_agent)) == NULL)
    goto fail;
  h->multi = curl_multi_init();
  h->share = curl_share_init();
  if (h->multi == NULL || h->share == NULL)
    goto fail;
  /* TLS sessions are per easy handle unless shared; sharing them lets a
   * replacement connection resume instead of doing a full handshake. */
  if (curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
    goto fail;
  if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)h->max_connections) !=
          CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->max_connections) !=
          CURLM_OK ||
      /* The idle-connection cache must hold every connection the cap allows,
       * or finished connections are closed instead of reused. */
      curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->max_connections) != CURLM_OK)
    goto fail;
  uv_timer_init(loop, &h->timer);
  uv_timer_init(loop, &h->defer);
  h->timer.data = h;
  h->defer.data = h;
  h->open_handles = 2;
  *out = h;
  return 0;
fail:
  if (h->multi != NULL)
    curl_multi_cleanup(h->multi);
  if (h->share != NULL)
    curl_share_cleanup(h->share);
  vhdup__free(h->ca_file);
  vhdup__free(h->user_agent);
  vhdup__free(h);
  global_unref();
  return rc;
}

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s) {
  if (*s == '\0')
    return 0;
  for (; *s != '\0'; s++)
    if (!is_tchar((unsigned char)*s))
      return 0;
  return 1;
}

static int append_header(struct curl_slist **list, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  char *line = vhdup__malloc(nl + vl + 3);
  struct curl_slist *l;
  if (line == NULL)
    return VHDUP_ENOMEM;
  memcpy(line, name, nl);
  if (vl == 0) {
    /* "Name:" would tell libcurl to drop the header; "Name;" sends it
     * empty. */
    line[nl] = ';';
    line[nl + 1] = '\0';
  } else {
    line[nl] = ':';
    line[nl + 1] = ' ';
    memcpy(line + nl + 2, value, vl + 1);
  }
  l = curl_slist_append(*list, line);
  vhdup__free(line);
  if (l == NULL)
    return VHDUP_ENOMEM;
  *list = l;
  return 0;
}

/* libcurl's removal syntax: "Name:" with nothing after the colon. */
static int suppress_header(struct curl_slist **list, const char *line) {
  struct curl_slist *l = curl_slist_append(*list, line);
  if (l == NULL)
    return VHDUP_ENOMEM;
  *list = l;
  return 0;
}

static int parse_u64(const char *s, uint64_t *v) {
  uint64_t n = 0;
  if (*s < '0' || *s > '9')
    return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (n > (UINT64_MAX - 9) / 10)
      return -1;
    n = n * 10 + (uint64_t)(*s - '0');
  }
  *v = n;
  return *s == '\0' ? 0 : -1;
}

static int build_headers(vhdup__http_xfer *x, const vhdup__http_req *r, int is_post) {
  int has_content_type = 0, rc;
  size_t i;
  for (i = 0; i < r->n_headers; i++) {
    const char *name = r->headers[i].name, *value = r->headers[i].value;
    if (name == NULL || value == NULL || !is_token(name) || strpbrk(value, "\r\n") != NULL)
      return VHDUP_EINVAL;
    if (strcasecmp(name, "Transfer-Encoding") == 0)
      return VHDUP_EINVAL;
    if (strcasecmp(name, "Content-Length") == 0) {
      /* libcurl writes Content-Length itself from body_len; a caller's copy
       * (say, for signing) must agree. */
      uint64_t v;
      if (parse_u64(value, &v) != 0 || v != r->body_len)
        return VHDUP_EINVAL;
      continue;
    }
    if (strcasecmp(name, "Content-Type") == 0)
      has_content_type = 1;
    rc = append_header(&x->req_headers, name, value);
    if (rc != 0)
      return rc;
  }
  /* Waiting for 100 Continue costs a round trip per request and buys
   * nothing here: Azure answers errors after the body anyway. */
  rc = suppress_header(&x->req_headers, "Expect:");
  /* libcurl would label a POST body form-urlencoded, a header the caller
   * did not sign. */
  if (rc == 0 && is_post && !has_content_type)
    rc = suppress_header(&x->req_headers, "Content-Type:");
  return rc;
}

#define SETOPT(opt, val)                                                                           \
  do {                                                                                             \
    CURLcode c_ = curl_easy_setopt(e, opt, val);                                                   \
    if (c_ != CURLE_OK)                                                                            \
      return c_ == CURLE_OUT_OF_MEMORY ? VHDUP_ENOMEM : VHDUP_EINVAL;                              \
  } while (0)

static int setup_easy(vhdup__http *h, vhdup__http_xfer *x, const vhdup__http_req *r) {
  CURL *e = x->easy;
  const char *m = r->method;
  long timeout = r->total_timeout_ms != 0 ? r->total_timeout_ms : h->total_timeout_ms;
  int is_post = strcmp(m, "POST") == 0, rc;

  /* A recycled handle keeps nothing of its last request. */
  curl_easy_reset(e);
  SETOPT(CURLOPT_PRIVATE, (void *)x);
  SETOPT(CURLOPT_URL, r->url);
#if LIBCURL_VERSION_NUM >= 0x075500
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SETOPT(CURLOPT_TCP_NODELAY, 1L);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
  if (timeout > 0)
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
  if (h->low_speed_limit_bps > 0 && h->low_speed_time_s > 0) {
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, h->low_speed_limit_bps);
    SETOPT(CURLOPT_LOW_SPEED_TIME, h->low_speed_time_s);
  }
  SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
  if (h->ca_file != NULL)
    SETOPT(CURLOPT_CAINFO, h->ca_file);
  if (h->user_agent != NULL)
    SETOPT(CURLOPT_USERAGENT, h->user_agent);
  if (h->upload_buffer_size != 0 && r->body_len > (uint64_t)CURL_UPLOAD_BUFFER_DEFAULT) {
    /* No larger than the body, in libcurl's steps of 16 KiB. */
    uint64_t want = (r->body_len + 16383) & ~(uint64_t)16383;
    if (want > (uint64_t)h->upload_buffer_size)
      want = (uint64_t)h->upload_buffer_size;
    if (h->upload_buffers_total == 0 ||
        h->upload_buffers_held + (size_t)want <= h->upload_buffers_total) {
      SETOPT(CURLOPT_UPLOAD_BUFFERSIZE, (long)want);
      x->upload_buffer = (size_t)want;
      h->upload_buffers_held += x->upload_buffer;
      h->stats.upload_buffers++;
    }
  }
  SETOPT(CURLOPT_SHARE, h->share);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, (void *)x);
  SETOPT(CURLOPT_WRITEFUNCTION, on_write);
  SETOPT(CURLOPT_WRITEDATA, (void *)x);
  if (h->verbose) {
    SETOPT(CURLOPT_DEBUGFUNCTION, on_debug);
    SETOPT(CURLOPT_VERBOSE, 1L);
  }

  /* A body, for the methods below that send one, is read through on_read
   * and rewound through on_seek when libcurl must send it again. */
  SETOPT(CURLOPT_READFUNCTION, on_read);
  SETOPT(CURLOPT_READDATA, (void *)x);
  SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
  SETOPT(CURLOPT_SEEKDATA, (void *)x);
  if (strcmp(m, "HEAD") == 0) {
    SETOPT(CURLOPT_NOBODY, 1L);
  } else if (strcmp(m, "GET") == 0 && r->body_len == 0) {
    SETOPT(CURLOPT_HTTPGET, 1L);
  } else if (is_post) {
    /* No CURLOPT_POSTFIELDS: libcurl then reads the body through
     * on_read, sized by POSTFIELDSIZE (0 gives Content-Length: 0). */
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
  } else if (strcmp(m, "PUT") == 0 || r->body_len > 0) {
    /* An upload with a known size: Content-Length is exactly body_len,
     * "Content-Length: 0" for an empty PUT, never chunked. */
    SETOPT(CURLOPT_UPLOAD, 1L);
    SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    if (strcmp(m, "PUT") != 0)
      SETOPT(CURLOPT_CUSTOMREQUEST, m);
  } else {
    SETOPT(CURLOPT_CUSTOMREQUEST, m);
  }

  rc = build_headers(x, r, is_post);
  if (rc != 0)
    return rc;
  SETOPT(CURLOPT_HTTPHEADER, x->req_headers);
  return 0;
}

#undef SETOPT

static int has_http_scheme(const char *url) {
  return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

int vhdup__http_submit(vhdup__http *h, const vhdup__http_req *r, vhdup__http_done_cb cb, void *data,
                       vhdup__http_xfer **out) {
  vhdup__http_xfer *x;
  CURLMcode mc;
  int rc;
  if (h == NULL || r == NULL || cb == NULL || r->method == NULL || r->url == NULL ||
      (r->body == NULL && r->body_len != 0) || (r->headers == NULL && r->n_headers != 0) ||
      !is_token(r->method) || r->body_len > (uint64_t)INT64_MAX || r->total_timeout_ms < 0 ||
      (strcmp(r->method, "HEAD") == 0 && r->body_len != 0))
    return VHDUP_EINVAL;
  if (!has_http_scheme(r->url))
    return VHDUP_EURL;
  if (h->closing)
    return VHDUP_ECANCELED;
  x = xfer_get(h);
  if (x == NULL)
    return VHDUP_ENOMEM;
  response_reset(x);
  x->own_error = 0;
  x->own_detail = NULL;
  x->errbuf[0] = '\0';
  x->body = r->body;
  x->body_len = r->body_len;
  x->body_off = 0;
  x->max_body = r->max_response_body != 0 ? r->max_response_body : h->max_response_body;
  if (x->max_body > SIZE_MAX / 2)
    x->max_body = SIZE_MAX / 2;
  rc = setup_easy(h, x, r);
  if (rc != 0) {
    xfer_put(x);
    return rc;
  }
  x->cb = cb;
  x->data = data;
  x->start_ns = uv_hrtime();
  /* libcurl answers with a 0 ms timer, so the transfer starts on the loop's
   * next turn, not inside this call. */
  mc = curl_multi_add_handle(h->multi, x->easy);
  if (mc != CURLM_OK) {
    xfer_put(x);
    return mc == CURLM_OUT_OF_MEMORY ? VHDUP_ENOMEM : VHDUP_EINVAL;
  }
  x->state = XFER_ACTIVE;
  list_push(&h->active, x);
  h->stats.submitted++;
  if (++h->stats.in_flight > h->stats.peak_in_flight)
    h->stats.peak_in_flight = h->stats.in_flight;
  if (out != NULL)
    *out = x;
  return 0;
}

static void cancel_xfer(vhdup__http_xfer *x) {
  vhdup__http *h = x->h;
  forget_poll_failure(x);
  /* Removing a transfer mid-way makes libcurl drop its connection, which
   * is the point: the peer may still be reading our body. */
  curl_multi_remove_handle(h->multi, x->easy);
  list_remove(&h->active, x);
  x->state = XFER_CANCELED;
  list_push(&h->canceled, x);
  if (!uv_is_active((uv_handle_t *)&h->defer))
    uv_timer_start(&h->defer, on_defer, 0, 0);
}

void vhdup__http_cancel(vhdup__http_xfer *x) {
  if (x != NULL && x->state == XFER_ACTIVE)
    cancel_xfer(x);
}

void vhdup__http_close(vhdup__http *h, vhdup__http_close_cb close_cb) {
  if (h == NULL || h->closing)
    return;
  h->closing = 1;
  h->close_cb = close_cb;
  vhdup__http_xfer *x;
  while ((x = list_first(&h->active)) != NULL)
    cancel_xfer(x);
  /* Teardown happens in on_defer, from the loop, whatever stack we are
   * called from now. */
  if (!uv_is_active((uv_handle_t *)&h->defer))
    uv_timer_start(&h->defer, on_defer, 0, 0);
}

static void teardown(vhdup__http *h) {
  vhdup__http_xfer *x;
  h->torn_down = 1;
  while ((x = list_pop(&h->spare)) != NULL)
    xfer_destroy(x);
  /* Polls first, so libcurl's REMOVE calls during cleanup find no socket
   * pointer to act on. */
  vhdup__list *node;
  while ((node = vhdup__list_first(&h->socks)) != NULL) {
    sock *s = vhdup__list_entry(node, sock, link);
    curl_multi_assign(h->multi, s->fd, NULL);
    sock_close(s);
  }
  curl_multi_cleanup(h->multi);
  /* The share goes after the multi: closing cached connections may still
   * touch the TLS session cache. */
  curl_share_cleanup(h->share);
  h->multi = NULL;
  h->share = NULL;
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
  uv_close((uv_handle_t *)&h->defer, on_timer_closed);
}

void vhdup__http_get_stats(const vhdup__http *h, vhdup__http_stats *out) {
  *out = h->stats;
}

const char *vhdup__http_header_get(const vhdup__http_resp *r, const char *name) {
  size_t i;
  for (i = 0; i < r->n_headers; i++)
    if (strcasecmp(r->headers[i].name, name) == 0)
      return r->headers[i].value;
  return NULL;
}

void vhdup__http_set_data(vhdup__http *h, void *data) {
  h->data = data;
}

void *vhdup__http_get_data(const vhdup__http *h) {
  return h->data;
}
