/* vhdup-testserver: a strict, fault-injecting page-blob server for tests.
 *
 * Azurite is the real emulator, but it accepts Put Page bodies over 4 MiB,
 * never checks Content-MD5 and cannot misbehave on command. This server
 * enforces what Azure enforces (see docs/azure.md and the REST docs
 * cited next to each rule) and injects faults. It is an independent oracle:
 * nothing here is shared with src/azure.
 *
 * Files by concern: http.c (connections, parsing, responses), ops.c (the
 * Azure operations and the control API), store.c (blobs in sparse files),
 * faults.c (fault plan), model.c (Azure's scalability targets as token
 * buckets), auth.c (Shared Key / SAS), crc64.c, sbuf.c,
 * main.c (options, loop, signals). */
#ifndef VHDUP_TESTSERVER_H
#define VHDUP_TESTSERVER_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Growable byte string; NUL-terminated whenever len > 0 or after sbuf_init. */
typedef struct sbuf {
  char *p;
  size_t len;
  size_t cap;
} sbuf;

void sbuf_init(sbuf *b);
void sbuf_free(sbuf *b);
void sbuf_clear(sbuf *b);
void sbuf_append(sbuf *b, const void *data, size_t len);
void sbuf_puts(sbuf *b, const char *s);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Aborts the process on allocation failure: a test server has no better
 * answer, and a silent half-state would make tests lie. */
void *ts_xmalloc(size_t n);
void *ts_xrealloc(void *p, size_t n);

/* ---- the service model (model.c): Azure's scalability targets ---- */

typedef struct ts_bucket {
  double rate; /* per second; 0: unlimited */
  double cap;
  double tokens; /* negative in queue mode: owed */
  uint64_t t_ns; /* last refill */
} ts_bucket;

typedef struct ts_model_cfg {
  bool on;
  double req_rate;     /* requests/s per blob (0: unlimited) */
  double byte_rate;    /* body bytes/s per blob (0: unlimited) */
  double account_rate; /* body bytes/s of the account (0: unlimited) */
  double burst_s;      /* a bucket holds this many seconds of its rate */
  double timeout_s;    /* queue mode: a longer wait answers OperationTimedOut */
  bool queue;          /* hold requests instead of refusing them */
} ts_model_cfg;

typedef struct ts_model_blob {
  struct ts_model_blob *next;
  char *key; /* the request path: /account/container/blob */
  ts_bucket req;
  ts_bucket bytes;
} ts_model_blob;

typedef struct ts_model_stats {
  uint64_t busy_blob;    /* 503 ServerBusy for a blob's targets */
  uint64_t busy_account; /* 503 ServerBusy for the account's ingress */
  uint64_t timed_out;    /* queue mode: 500 OperationTimedOut */
  uint64_t queued;       /* queue mode: requests held */
  uint64_t wait_ms_total;
  uint64_t max_wait_ms;
  /* What the model let through: requests, body bytes, and the span of
   * their answers (first to last), so a test can check the rates. */
  uint64_t admitted;
  uint64_t admitted_bytes;
  uint64_t first_ns;
  uint64_t last_ns;
} ts_model_stats;

typedef struct ts_model {
  ts_model_cfg cfg;
  ts_bucket account;
  ts_model_blob *blobs;
  ts_model_stats stats;
} ts_model;

typedef enum ts_model_verdict {
  TS_MODEL_PASS = 0,     /* serve (after delay_ms in queue mode) */
  TS_MODEL_BUSY_BLOB,    /* 503 ServerBusy: over the blob's targets */
  TS_MODEL_BUSY_ACCOUNT, /* 503 ServerBusy: over the account's ingress */
  TS_MODEL_TIMEOUT,      /* 500 OperationTimedOut after delay_ms */
} ts_model_verdict;

/* Defaults: off; 500 requests/s and 60 MiB/s per blob, no account limit,
 * 0.1 s bursts, 30 s timeout, refuse mode. */
void ts_model_cfg_default(ts_model_cfg *m);
/* "req=500,bw=60M,account=250M,burst-ms=100,timeout-ms=30000,mode=queue"
 * (each optional, defaults above) into *out, turned on; or -1 with err. */
int ts_model_parse(ts_model_cfg *out, const char *spec, char *err, size_t err_size);
void ts_model_init(ts_model *md, const ts_model_cfg *cfg, uint64_t now_ns);
void ts_model_free(ts_model *md);
/* The verdict for a request to blob_key (NULL: not a blob request, always
 * served) with a body of body_bytes, at now_ns. */
ts_model_verdict ts_model_admit(ts_model *md, const char *blob_key, uint64_t body_bytes,
                                uint64_t now_ns, uint64_t *delay_ms);

/* ---- configuration ---- */

typedef struct ts_config {
  const char *account;
  uint8_t key[64];
  size_t key_len;      /* 0: no Shared Key check */
  const char *sas_sig; /* NULL: SAS not accepted */
  const char *store_dir;
  bool require_md5;
  bool sink;
  bool sink_verify_sums; /* in sink mode: Content-MD5 and x-ms-content-crc64 */
  bool verbose;
  size_t max_body;
  unsigned trickle_ms;
  const char *managed_disk; /* "CONTAINER/BLOB:SIZE" or NULL */
  ts_model_cfg model;
} ts_config;

/* ---- faults ---- */

typedef enum ts_fault_kind {
  TS_FAULT_NONE = 0,
  TS_FAULT_503,     /* 503 ServerBusy with Retry-After: 1 */
  TS_FAULT_503N,    /* 503 ServerBusy without Retry-After */
  TS_FAULT_503R,    /* 503 ServerBusy with Retry-After: 60 (a long wait) */
  TS_FAULT_500,     /* 500 OperationTimedOut */
  TS_FAULT_500I,    /* 500 InternalError */
  TS_FAULT_RESET,   /* RST after half the body (no body: before answering) */
  TS_FAULT_STALL,   /* read the request, never answer */
  TS_FAULT_TRICKLE, /* answer one byte per trickle_ms */
  TS_FAULT_400,     /* 400 InvalidHeaderValue: must not be retried */
  TS_FAULT_404,     /* 404 BlobNotFound (ContainerNotFound for containers) */
  TS_FAULT_409,     /* 409, the operation's conflict code (ops.c) */
  TS_FAULT_412,     /* 412 ConditionNotMet */
  TS_FAULT_KIND_COUNT
} ts_fault_kind;

/* The operation a request is, for per-operation fault steps ("503@head:1")
 * and the faults_by_op statistics. */
typedef enum ts_fault_op {
  TS_OP_PUT = 0,   /* Put Page, x-ms-page-write: update */
  TS_OP_CREATE,    /* Put Blob */
  TS_OP_HEAD,      /* Get Blob Properties */
  TS_OP_CONTAINER, /* Create Container */
  TS_OP_RANGES,    /* Get Page Ranges */
  TS_OP_CLEAR,     /* Put Page, x-ms-page-write: clear */
  TS_OP_PROPS,     /* Set Blob Properties */
  TS_OP_GET,       /* Get Blob */
  TS_OP_DELETE,    /* Delete Blob */
  TS_OP_LEASE,     /* Lease Blob (not served yet; its faults are) */
  TS_OP_OTHER,     /* anything else: only "any" steps reach it */
  TS_OP_ANY,       /* in a step only: every operation */
  TS_OP_COUNT
} ts_fault_op;

#define TS_FAULT_MAX_STEPS 32

typedef struct ts_faults {
  struct {
    ts_fault_kind kind;
    ts_fault_op op;
    uint64_t remaining;
  } steps[TS_FAULT_MAX_STEPS];
  size_t nsteps;
  int64_t expire_after; /* -1: never; else 403 after this many good Put Pages */
  uint64_t good_put_pages;
  double rate; /* probability per Put Page update, once its steps are used up */
  uint64_t rng;
  ts_fault_kind mix[TS_FAULT_KIND_COUNT];
  size_t nmix;
} ts_faults;

/* Replaces f with the plan in spec ("503:3,reset@ranges:1", "403after:5",
 * "seed:1,rate:0.1,mix:503+reset", "" or "none" for no faults). KIND:N
 * without @OP means Put Page update. Returns 0, or -1 with a message in err
 * (f unchanged). */
int ts_faults_parse(ts_faults *f, const char *spec, char *err, size_t err_size);
/* The plan in canonical form, one item per line ("503@put:3"), for
 * --check-faults. */
void ts_faults_describe(const ts_faults *f, sbuf *out);
/* The fault (possibly none) for the next request of operation op; consumes
 * it: op's own steps first, in order, then the "any" steps, then (Put Page
 * update only) the random mix. */
ts_fault_kind ts_faults_next(ts_faults *f, ts_fault_op op);
void ts_faults_note_good_put_page(ts_faults *f);
/* True once the 403after budget is spent: every request is then refused. */
bool ts_faults_expired(const ts_faults *f);
const char *ts_fault_op_name(ts_fault_op op);
const char *ts_fault_kind_name(ts_fault_kind kind);

/* ---- statistics ---- */

#define TS_STATUS_SLOTS 600

typedef struct ts_stats {
  uint64_t requests;
  uint64_t put_pages;
  uint64_t put_page_bytes;
  uint64_t inflight;
  uint64_t max_inflight;
  uint64_t faults_injected;
  uint64_t faults_by_op[TS_OP_COUNT]; /* by the request's operation */
  uint64_t md5_missing;
  uint64_t max_body;
  uint64_t status_counts[TS_STATUS_SLOTS];
} ts_stats;

/* ---- CRC-64 as Azure computes x-ms-content-crc64 ---- */
uint64_t ts_crc64(uint64_t crc, const void *data, size_t len);

/* ---- blob store ---- */

typedef struct ts_range {
  uint64_t start; /* inclusive */
  uint64_t end;   /* exclusive */
} ts_range;

typedef struct ts_blob {
  struct ts_blob *next;
  char *container;
  char *name;
  char *path; /* the .data file; NULL in sink mode */
  int fd;     /* -1 in sink mode */
  uint64_t size;
  uint64_t etag;
  char content_md5[32]; /* base64, "" if unset */
  bool managed;
  ts_range *ranges; /* written pages, sorted, disjoint, not adjacent */
  size_t nranges;
  size_t cap;
} ts_blob;

typedef struct ts_store {
  const ts_config *cfg;
  char **containers;
  size_t ncontainers;
  ts_blob *blobs;
  uint64_t etag_counter;
} ts_store;

int ts_store_init(ts_store *s, const ts_config *cfg);
void ts_store_free(ts_store *s);
bool ts_store_has_container(const ts_store *s, const char *container);
/* Returns 0, or 1 if it already existed, or -errno. */
int ts_store_create_container(ts_store *s, const char *container);
ts_blob *ts_store_find(ts_store *s, const char *container, const char *name);
/* Creates or replaces a blob of size bytes (all zero). Returns it or NULL with errno. */
ts_blob *ts_store_create_blob(ts_store *s, const char *container, const char *name, uint64_t size);
int ts_store_delete_blob(ts_store *s, ts_blob *b);
int ts_store_resize(ts_store *s, ts_blob *b, uint64_t size);
/* Writes [off, off+len) (update) or zeroes it (data NULL: clear). 0 or -errno. */
int ts_store_write(ts_store *s, ts_blob *b, uint64_t off, const void *data, uint64_t len);
/* Reads len bytes at off into out (zeros in sink mode). 0 or -errno. */
int ts_store_read(const ts_blob *b, uint64_t off, void *out, size_t len);
void ts_store_touch(ts_store *s, ts_blob *b);

/* ---- Shared Key / SAS ---- */

typedef struct ts_header {
  sbuf name;
  sbuf value;
} ts_header;

#define TS_MAX_HEADERS 128

typedef struct ts_request {
  enum http_method method;
  sbuf url;
  ts_header headers[TS_MAX_HEADERS];
  size_t nheaders;
  bool header_overflow;
  uint64_t content_length; /* 0 if absent */
  char *body;
  size_t body_len;
  size_t body_cap;
  /* Decoded from url at headers-complete. */
  sbuf path;  /* raw path, without the query */
  sbuf query; /* raw query, without '?' */
} ts_request;

/* Value of a header (case-insensitive name), or NULL. */
const char *ts_req_header(const ts_request *r, const char *name);
/* URL-decoded value of query parameter name (exact, case-insensitive name)
 * into out; returns true if present. */
bool ts_req_query(const ts_request *r, const char *name, sbuf *out);
/* Percent-decodes src[0..len) into out (appending). */
void ts_url_decode(sbuf *out, const char *src, size_t len);

typedef enum ts_auth_result {
  TS_AUTH_OK = 0,
  TS_AUTH_FAILED, /* 403 AuthenticationFailed */
} ts_auth_result;

/* Checks the request against cfg (always OK if no key and no SAS are
 * configured). On failure writes a reason into why. */
ts_auth_result ts_auth_check(const ts_config *cfg, const ts_request *r, char *why, size_t why_size);

/* ---- the server ---- */

typedef struct ts_server ts_server;
typedef struct ts_conn ts_conn;

/* A response under construction: head (status line + headers) plus a body
 * that is either in memory or read from a blob in chunks. */
typedef struct ts_response {
  int status;
  sbuf head;
  sbuf body;
  const ts_blob *file_blob; /* stream [file_off, file_off+file_len) from it */
  uint64_t file_off;
  uint64_t file_len;
  bool head_only; /* HEAD: Content-Length describes a body not sent */
  bool close;     /* Connection: close after this response */
  bool trickle;
  bool stall;
  uint64_t delay_ms;      /* the service model holds the answer this long */
  const char *error_code; /* for the log line */
} ts_response;

struct ts_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  ts_config cfg;
  ts_store store;
  ts_faults faults;
  ts_model model;
  ts_stats stats;
  ts_conn *conns;
  uint64_t request_seq;
  bool closing;
};

/* ops.c: turns a complete request into a response. fault is what the fault
 * plan chose for it (already counted). */
void ts_ops_handle(ts_server *srv, ts_request *r, ts_fault_kind fault, ts_response *resp);
/* ops.c: decisions that must happen when headers arrive. */
bool ts_ops_is_control(const ts_request *r);
bool ts_ops_is_put_page(const ts_request *r);
/* The operation a (non-control) request is, from its method, path, query
 * and x-ms-page-write header. */
ts_fault_op ts_ops_fault_op(const ts_request *r);
/* ops.c: response helpers. */
void ts_resp_begin(ts_server *srv, ts_response *resp, int status);
void ts_resp_error(ts_server *srv, ts_response *resp, int status, const char *code, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
/* ops.c: finishes the head (Content-Length etc.); called by http.c. */
void ts_resp_finish(ts_response *resp);

/* http.c */
int ts_http_listen(ts_server *srv, int port, int *bound_port);
void ts_http_close_all(ts_server *srv);

#endif
