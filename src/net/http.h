/* The HTTP engine: libcurl's multi_socket API driven by the caller's libuv
 * loop. It knows nothing about Azure or VHDs: it takes a request description
 * {method, url, headers, body}, runs many of them concurrently over a capped
 * pool of keep-alive HTTP/1.1 connections, and calls back once per request
 * with the status, the headers and a bounded copy of the response body.
 *
 * Threading: everything runs on the loop's thread. Callbacks never run from
 * inside the vhdup__http_* call that caused them, and never from inside a
 * libcurl callback, so a completion callback may submit, cancel or close.
 *
 * libcurl's global state: the first vhdup__http_new() calls
 * curl_global_init(CURL_GLOBAL_DEFAULT); the last engine to finish closing
 * calls curl_global_cleanup(). Both are reference counted by libcurl itself
 * too, so a program that also calls them is unaffected. curl_global_init() is
 * not thread-safe: a program with threads should call it before starting
 * them.
 *
 * Transport choices made here (not options): TLS peer and host verification
 * always on; HTTP/1.1 only (one request per connection at a time, so the
 * connection cap is the concurrency cap); no `Expect: 100-continue`; no
 * redirects; http and https only; TCP_NODELAY and TCP keep-alive on;
 * CURLOPT_NOSIGNAL. Proxies come from the usual environment variables
 * (http_proxy, https_proxy, no_proxy), as libcurl does by default.
 *
 * libcurl resends a request by itself (up to 5 times) when the kept-alive
 * connection it went out on dies before any byte of the answer arrived,
 * rewinding the body through a seek callback; a failure on a fresh
 * connection is reported. This hides servers that close idle connections
 * (as Azure's load balancers do), but means a request may reach the server
 * more than once: send only requests that are safe to repeat; Put Page is. */
#ifndef VHDUP_NET_HTTP_H
#define VHDUP_NET_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct vhdup__http vhdup__http;
typedef struct vhdup__http_xfer vhdup__http_xfer;

typedef struct vhdup__http_header {
  const char *name;
  const char *value;
} vhdup__http_header;

/* Engine options. An all-zero struct (or NULL) gives the defaults. */
typedef struct vhdup__http_opts {
  /* Cap on open connections, in total and per host; requests beyond it wait
   * in libcurl's queue for a free connection. 0: 16. At most 65536. */
  unsigned max_connections;
  /* TCP + TLS connect timeout. 0: 30 s. */
  long connect_timeout_ms;
  /* Whole-request timeout, from leaving the queue to the last byte.
   * 0: none. Requests may override it. */
  long total_timeout_ms;
  /* A request moving fewer than low_speed_limit_bps bytes per second for
   * low_speed_time_s seconds fails with VHDUP_ETIMEDOUT. Both must be > 0 to
   * take effect. This is what catches a stalled peer. libcurl measures
   * speed as an average over the last 5 seconds, so a peer that stalls
   * right after a burst is noticed up to 5 s later than low_speed_time_s. */
  long low_speed_limit_bps;
  long low_speed_time_s;
  /* CA bundle (PEM) used instead of the system's. NULL: system default. */
  const char *ca_file;
  /* Prints libcurl's trace to stderr, with `sig=` query values and
   * Authorization headers redacted. */
  int verbose;
  /* Default cap on the response body kept for the callback; the rest is
   * read and dropped (body_truncated set). 0: 1 MiB. */
  size_t max_response_body;
  /* User-Agent header sent with every request. NULL: none. */
  const char *user_agent;
  /* libcurl copies a body into its upload buffer and sends it from there,
   * one buffer at a time. upload_buffer_size (16 KiB .. 2 MiB) is that
   * buffer for a transfer whose body is larger than libcurl's default of
   * 64 KiB (a smaller body keeps the default); 0: the default for all.
   * libcurl allocates the buffer as the transfer starts and frees it when
   * the transfer ends. upload_buffers_total, if not 0, bounds what all
   * transfers in flight hold in such buffers at once (a transfer that
   * would pass it keeps the default), so that memory stays bounded at any
   * connection count. */
  long upload_buffer_size;
  size_t upload_buffers_total;
} vhdup__http_opts;

/* One request. Strings and headers are copied at submit; the body is sent
 * straight from the caller's memory and must stay valid and unchanged until
 * the request's callback has returned. */
typedef struct vhdup__http_req {
  const char *method; /* "GET", "HEAD", "PUT", "POST", "DELETE", ... */
  const char *url;    /* http:// or https:// */
  const vhdup__http_header *headers;
  size_t n_headers;
  const void *body; /* may be NULL when body_len is 0 */
  uint64_t body_len;
  /* Per-request overrides; 0 means the engine's option. */
  long total_timeout_ms;
  size_t max_response_body;
} vhdup__http_req;

/* What a request came to. Pointers are valid only during the callback. */
typedef struct vhdup__http_resp {
  /* 0 when an HTTP answer arrived (whatever its status), otherwise:
   *   VHDUP_ETIMEDOUT  connect, low-speed or total timeout;
   *   VHDUP_ENET       refused, reset, truncated answer, TLS or DNS failure,
   *                    or libuv refused to watch the transfer's socket;
   *   VHDUP_EURL       libcurl rejected the URL;
   *   VHDUP_ELIMIT     response headers larger than 64 KiB or 256 lines;
   *   VHDUP_ENOMEM     out of memory (buffering the answer, watching a
   *                    socket, or inside libcurl);
   *   VHDUP_ECANCELED  vhdup__http_cancel() or vhdup__http_close(). */
  int error;
  /* With an error: libcurl's message (or ours), `sig=` values redacted.
   * Never NULL; "" without an error. */
  const char *error_detail;
  /* With an error: 1 when trying again might succeed (timeouts, resets,
   * refused connections), 0 when it cannot (bad URL, TLS certificate
   * rejected, canceled). */
  int retryable;
  long status; /* 0 if no status line arrived */
  /* Headers of the final answer (interim 1xx and proxy CONNECT answers are
   * dropped), in arrival order, names in the case they arrived in, values
   * trimmed. Look them up with vhdup__http_header_get(). */
  const vhdup__http_header *headers;
  size_t n_headers;
  const char *body; /* NUL-terminated for convenience; body_len excludes it */
  size_t body_len;
  int body_truncated; /* the server sent more than max_response_body */
  double seconds;     /* from submit to completion */
} vhdup__http_resp;

typedef void (*vhdup__http_done_cb)(vhdup__http_xfer *x, const vhdup__http_resp *r, void *data);
typedef void (*vhdup__http_close_cb)(vhdup__http *h);

typedef struct vhdup__http_stats {
  unsigned in_flight;          /* submitted, callback not yet called */
  unsigned peak_in_flight;     /* highest in_flight seen */
  uint64_t upload_buffers;     /* transfers given upload_buffer_size */
  uint64_t submitted;          /* requests accepted by submit */
  uint64_t completed;          /* callbacks called, any outcome */
  uint64_t connections_opened; /* CURLINFO_NUM_CONNECTS summed: new connections */
  uint64_t bytes_sent;         /* request bodies, as counted by libcurl */
  uint64_t bytes_received;     /* response bodies, kept or not */
} vhdup__http_stats;

/* Creates an engine on loop (which it never runs, stops or closes). Nothing
 * is attached to the loop until a request is submitted, so an idle engine
 * does not keep uv_run() alive.
 * Returns 0, VHDUP_EINVAL (NULL loop/out, max_connections > 65536,
 * negative timeout or bad upload_buffer_size), VHDUP_ENOMEM, or VHDUP_ENET
 * if libcurl cannot initialise (its TLS library). */
int vhdup__http_new(uv_loop_t *loop, const vhdup__http_opts *o, vhdup__http **out)
    __attribute__((warn_unused_result));

/* Starts a request; cb will be called exactly once, from the loop, never
 * from inside this call. If out is not NULL it receives the handle for
 * vhdup__http_cancel(), valid until cb returns.
 * Returns 0, or (and then cb is never called):
 *   VHDUP_EINVAL     missing method/url/cb, body_len without body, a method
 *                    or header name that is not an HTTP token, a header
 *                    value with CR/LF, HEAD with a body, a Content-Length
 *                    header different from body_len, Transfer-Encoding;
 *   VHDUP_EURL       the URL is not http:// or https://;
 *   VHDUP_ECANCELED  the engine is closing;
 *   VHDUP_ENOMEM. */
int vhdup__http_submit(vhdup__http *h, const vhdup__http_req *r, vhdup__http_done_cb cb, void *data,
                       vhdup__http_xfer **out) __attribute__((warn_unused_result));

/* Stops a request: its connection is dropped and its callback is called
 * later from the loop with VHDUP_ECANCELED. Does nothing if the callback has
 * already been called or is running, or the request is already canceled. */
void vhdup__http_cancel(vhdup__http_xfer *x);

/* Closes the engine like a libuv handle: every request not yet called back
 * is canceled (callbacks with VHDUP_ECANCELED, from the loop), connections
 * and handles are closed, then close_cb (may be NULL) is called; h is valid
 * during close_cb and freed after it. Afterwards nothing of the engine is on
 * the loop, so uv_loop_close() can succeed. Safe to call from any callback
 * of the engine. Calling it twice does nothing. */
void vhdup__http_close(vhdup__http *h, vhdup__http_close_cb close_cb);

void vhdup__http_get_stats(const vhdup__http *h, vhdup__http_stats *out);

/* The owner's pointer, for callbacks that get only the engine (close_cb). */
void vhdup__http_set_data(vhdup__http *h, void *data);
void *vhdup__http_get_data(const vhdup__http *h);

/* Value of the first header called name (ASCII case-insensitive), or NULL. */
const char *vhdup__http_header_get(const vhdup__http_resp *r, const char *name);

#endif
