/* vhdup: upload VHD disk images into Azure page blobs.
 *
 * Conventions (after libuv): public names start with vhdup_, errors are
 * negative ints. libuv's own error codes (UV_ENOENT, ...) pass through
 * unchanged; vhdup's codes live in a range of their own (-30000 and below) so
 * the two never collide. vhdup_strerror()/vhdup_err_name() know both.
 *
 * Globals: none, except libcurl's global initialisation, which the network
 * parts call once through curl_global_init() the first time an engine is
 * created (it is not thread-safe: call curl_global_init() yourself before
 * starting threads if your program has any).
 */
#ifndef VHDUP_H
#define VHDUP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "vhdup_enums.h"
#include "vhdup_errno.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Engine and jobs --------------------------------------------------
 *
 * An engine lives on the caller's libuv loop and holds what uploads share:
 * the connection budget, the memory budget and the HTTP client. Jobs (one
 * per disk) start on an engine. vhdup never runs, stops or closes the loop.
 * Objects close like libuv handles: memory is released after the close
 * callback, and closing or cancelling is safe from inside vhdup's own
 * callbacks. All functions must be called on the loop's thread. */

typedef struct vhdup_engine vhdup_engine;
typedef struct vhdup_job vhdup_job;
typedef struct vhdup_blob_op vhdup_blob_op;

/* Callbacks take their object first and, when they have one, the data
 * pointer given with it last. Close callbacks take only the object, as
 * libuv's uv_close_cb does: it is still valid during the call and freed
 * when the call returns (vhdup_job_get_data() still works then). */
typedef void (*vhdup_engine_close_cb)(vhdup_engine *e);
typedef void (*vhdup_job_close_cb)(vhdup_job *job);

typedef struct vhdup_engine_options {
  /* Non-zero: find the connection count by itself (AIMD on measured
   * throughput, backing off on throttling and rising latency): it starts
   * at 64 (or `connections` if lower) and moves between 1 and
   * `connections`. */
  int connections_auto;
  unsigned connections; /* requests in flight at most, all jobs together (default 16) */
  /* One blob's requests in flight at most (0: connections). Azure takes
   * about 500 requests/s and 60 MiB/s per page blob, so when many disks go
   * at once this keeps one from hogging the budget. */
  unsigned per_blob_connections;
  size_t memory;       /* read buffers shared by all jobs, bytes (default 64 MiB; at least 8 MiB),
                          less 40 KiB per request in flight for its state and
                          1/32 for libcurl's upload buffers */
  const char *ca_file; /* CA bundle for TLS; NULL: the system's */
  unsigned connect_timeout_s; /* default 30 */
  unsigned stall_timeout_s;   /* a request making no progress this long fails (default 60) */
  int verbose;                /* HTTP trace on stderr (SAS signatures redacted) */
} vhdup_engine_options;

/* Fills o with the defaults above. */
VHDUP_EXTERN void vhdup_engine_options_init(vhdup_engine_options *o);

/* Makes an engine on loop. Returns:
 *   0
 *   VHDUP_EINVAL   a bad option (connections 0, memory below 8 MiB)
 *   VHDUP_ENOMEM
 *   a libuv error  a handle could not be initialised */
VHDUP_EXTERN int vhdup_engine_new(uv_loop_t *loop, const vhdup_engine_options *o,
                                  vhdup_engine **out);

/* Cancels the engine's jobs, closes its handles, then calls close_cb; the
 * engine's memory is freed when close_cb returns. Jobs must still be closed
 * by their owners (their done callbacks fire with VHDUP_ECANCELED). */
VHDUP_EXTERN void vhdup_engine_close(vhdup_engine *e, vhdup_engine_close_cb close_cb);

/* ---- Where and as whom ------------------------------------------------
 *
 * A blob and the credential to reach it, taken the same way by a job
 * (vhdup_job_options.target) and by the blob operations below. The first
 * credential found wins: a SAS in the URL, sas_token, connection_string,
 * account_key, then (with use_environment) AZURE_STORAGE_CONNECTION_STRING,
 * or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN.
 * Strings are copied (a job) or used only during the starting call (a blob
 * operation). */
typedef struct vhdup_blob_target {
  const char *url; /* a blob URL (with or without a SAS), or CONTAINER/BLOB
                    * with a connection string */
  const char *connection_string;
  const char *account_key;     /* base64; the account comes from the URL */
  const char *sas_token;       /* with or without a leading '?' */
  int use_environment;         /* default on */
  int allow_http;              /* plain http:// to a non-loopback host */
  const char *service_version; /* x-ms-version override */
  /* Tries per request, the first included: a blob operation's default 5
   * (a command a person waits on gives up sooner); vhdup_job_options_init()
   * sets 8. */
  unsigned max_attempts;
} vhdup_blob_target;

/* Fills t with the defaults above. */
VHDUP_EXTERN void vhdup_blob_target_init(vhdup_blob_target *t);

typedef struct vhdup_job_stats {
  vhdup_phase phase;
  uint64_t virtual_size;    /* the disk's (the footer's current size) */
  uint64_t blob_size;       /* destination size: virtual size, rounded, + 512 */
  uint64_t bytes_allocated; /* data the source holds (before zero-skipping) */
  uint64_t bytes_planned;   /* of that, handled so far */
  uint64_t bytes_sent;      /* payload the destination acknowledged */
  uint64_t bytes_skipped;   /* zeros found in allocated data */
  uint64_t bytes_resumed;   /* already on the destination from an earlier run (resume) */
  uint64_t requests;        /* write requests started, retries included */
  uint64_t retries;         /* of writes and of control requests (create, HEAD, ...) */
  unsigned in_flight;
  unsigned connections_limit; /* requests in flight allowed now (auto's choice) */
  double seconds;
  int has_disk_md5;
  uint8_t disk_md5[16]; /* MD5 of the whole blob, footer included */
} vhdup_job_stats;

typedef void (*vhdup_job_cb)(vhdup_job *job, int status, void *data);
/* Progress: called as writes are confirmed, at most every
 * progress_interval_ms; vhdup_job_get_stats() gives the numbers. */
typedef void (*vhdup_progress_cb)(vhdup_job *job, void *data);
/* Warnings and notices, among them each retry of a control request
 * ("retrying the blob create after HTTP 503 ServerBusy: ... (attempt 2 of
 * 8)"); those retries also count in vhdup_job_stats.retries. */
typedef void (*vhdup_notice_cb)(vhdup_job *job, const char *message, void *data);

typedef struct vhdup_job_options {
  const char *source; /* path of a VHD (fixed, dynamic, differencing) or raw image */
  vhdup_format format;
  const char *parent; /* differencing: the parent's path, overriding the locators */
  /* The destination blob and its credential (its max_attempts: tries per
   * request, default 8). With to_file, target.url is instead a local path
   * that receives the fixed VHD as a sparse file (`vhdup expand`), and the
   * other fields are not used. */
  vhdup_blob_target target;
  int to_file;
  int md5;   /* Content-MD5 on every write (default on) */
  int crc64; /* x-ms-content-crc64 on every write */
  /* Whole-blob MD5, set as the blob's Content-MD5 (default off: MD5 is
   * sequential, so it costs the whole virtual size at one core's MD5 rate,
   * zeros included — seconds per GiB — while Azure never checks it and each
   * request's own MD5 already guards the data in transit). On whenever
   * verify is VHDUP_VERIFY_CONTENT, which compares the blob with it. */
  int disk_md5;
  int resize;           /* round the virtual size up to a whole MiB (default on) */
  int overwrite;        /* write into an existing blob of the right size */
  int create_container; /* create the container when it does not exist */
  /* Read and scan the source through the whole pipeline, send nothing:
   * the stats then say exactly what an upload would send. */
  int dry_run;
  unsigned per_blob_connections; /* this job's requests in flight at most (0: the engine's) */
  int resume;                    /* continue an interrupted upload (needs the journal) */
  vhdup_verify verify;
  /* Resume journal path; NULL: $XDG_STATE_HOME/vhdup (else
   * ~/.local/state/vhdup) under a name derived from source and destination. */
  const char *journal;
  size_t merge_gap;              /* zero bytes merged into one write (default 64 KiB) */
  vhdup_notice_cb notice_cb;     /* warnings and notices (may be NULL) */
  vhdup_progress_cb progress_cb; /* may be NULL */
  unsigned progress_interval_ms; /* default 200 */
  void *data;                    /* handed to the callbacks */
} vhdup_job_options;

/* Fills o with the defaults above (target through vhdup_blob_target_init(),
 * then target.max_attempts 8). */
VHDUP_EXTERN void vhdup_job_options_init(vhdup_job_options *o);

/* Makes a job; nothing happens until vhdup_job_start(). Options are copied.
 * Returns:
 *   0
 *   VHDUP_EINVAL   no source or target.url, or a bad option (max_attempts 0,
 *                  merge_gap not a multiple of 512)
 *   VHDUP_ENOMEM */
VHDUP_EXTERN int vhdup_job_new(vhdup_engine *e, const vhdup_job_options *o, vhdup_job **out);

/* Validates the source completely, then starts. A bad source or
 * destination returns the error here (and vhdup_job_message() says which
 * file, field and offset) with nothing created on the destination.
 * Otherwise done_cb fires exactly once. Returns:
 *   0                   started; done_cb will fire
 *   VHDUP_EFORMAT       the source is not a valid image (message: field, offset)
 *   VHDUP_ECHECKSUM     a footer or header checksum does not match
 *   VHDUP_ETRUNCATED    the source is shorter than its headers say
 *   VHDUP_EPARENT       a differencing disk's parent is missing or mismatched
 *   VHDUP_ELIMIT        a size or count beyond what vhdup or Azure accepts
 *   VHDUP_EUNSUPPORTED  a feature of the image vhdup does not read
 *   VHDUP_EURL          the destination URL is malformed or refused
 *   VHDUP_ECREDENTIAL   a malformed or missing credential
 *   VHDUP_EEXIST        the destination file exists (expand)
 *   VHDUP_EJOURNAL      resume: the journal belongs to another upload
 *   VHDUP_EBUSY         already started
 *   VHDUP_ENOMEM
 *   a libuv error       the source could not be opened or read
 * done_cb's status: 0, VHDUP_ECANCELED, VHDUP_EAUTH, VHDUP_EHTTP,
 * VHDUP_ENET, VHDUP_ETIMEDOUT, VHDUP_EEXIST, VHDUP_ESIZE, VHDUP_ENOTFOUND,
 * VHDUP_EVERIFY, VHDUP_EIO, VHDUP_ENOMEM or a libuv error, with
 * vhdup_job_message() saying what failed. */
VHDUP_EXTERN int vhdup_job_start(vhdup_job *job, vhdup_job_cb done_cb);

/* Stops the job; done_cb fires with VHDUP_ECANCELED once outstanding
 * requests have ended. Safe from any callback; a no-op when done. */
VHDUP_EXTERN void vhdup_job_cancel(vhdup_job *job);

VHDUP_EXTERN void vhdup_job_get_stats(const vhdup_job *job, vhdup_job_stats *st);

/* The detail of the last error (file, field, offset; HTTP status, Azure
 * error code and request id), or "" . Never contains secrets. */
VHDUP_EXTERN const char *vhdup_job_message(const vhdup_job *job);

/* Where this job keeps (or would keep) its resume journal; NULL for
 * `expand` and dry runs. */
VHDUP_EXTERN const char *vhdup_job_journal_path(const vhdup_job *job);

/* The options' data pointer. */
VHDUP_EXTERN void *vhdup_job_get_data(const vhdup_job *job);

/* The destination (target.url) with any SAS signature shown as
 * sig=REDACTED. */
VHDUP_EXTERN const char *vhdup_job_destination(const vhdup_job *job);

/* Cancels if running, then frees the job after close_cb returns. */
VHDUP_EXTERN void vhdup_job_close(vhdup_job *job, vhdup_job_close_cb close_cb);

/* ---- Blob operations --------------------------------------------------
 *
 * Looking at a blob without uploading, for debugging and scripts: its
 * properties (Get Blob Properties) and its page ranges (Get Page Ranges).
 * They run on an engine's HTTP client and take their blob and credential
 * as a vhdup_blob_target, exactly as a job does. Every callback gets the
 * operation first and the data pointer given at the start last; the
 * operation stays valid until its done callback returns. Callbacks fire
 * later from the loop, never from inside the call that starts the
 * operation; every error after the start (a bad URL or credential, HTTP
 * failures) reaches done's status and message. Retryable failures (503 ServerBusy, 500, timeouts,
 * resets) are retried with backoff. Messages never contain secrets (SAS signatures show as
 * sig=REDACTED). vhdup_engine_close() cancels operations still running (status VHDUP_ECANCELED) and
 * calls its close_cb only after they ended. */

/* Get Blob Properties. Strings are "" when the service did not send the
 * header, and valid only during the callback. */
typedef struct vhdup_blob_info {
  const char *url;       /* the blob, sig=REDACTED */
  uint64_t size;         /* Content-Length */
  const char *blob_type; /* "PageBlob", "BlockBlob", "AppendBlob" */
  const char *etag;
  const char *last_modified; /* RFC 1123, as sent */
  const char *creation_time; /* RFC 1123, as sent */
  const char *content_type;
  const char *content_md5_base64; /* the blob's Content-MD5 property, as sent */
  int has_content_md5;            /* it decoded to 16 bytes: */
  uint8_t content_md5[16];
  const char *lease_state;    /* available, leased, expired, breaking, broken */
  const char *lease_status;   /* locked, unlocked */
  const char *lease_duration; /* infinite, fixed */
  int has_sequence_number;    /* page blobs */
  uint64_t sequence_number;
} vhdup_blob_info;

/* status 0 with info, or an error with message (HTTP status, Azure's error
 * code and request id) and info NULL. */
typedef void (*vhdup_blob_info_cb)(vhdup_blob_op *op, int status, const vhdup_blob_info *info,
                                   const char *message, void *data);

/* Starts Get Blob Properties on t's blob; done_cb fires exactly once.
 * t is used only during the call. If op is not NULL it receives a handle for
 * vhdup_blob_cancel(), valid until done_cb returns. Returns (and then, but
 * for 0, done_cb never fires):
 *   0
 *   VHDUP_EINVAL     NULL engine, target, url or callback
 *   VHDUP_ECANCELED  the engine is closing
 *   VHDUP_ENOMEM
 *   a libuv error
 * done_cb's status:
 *   0
 *   VHDUP_EURL         the URL is malformed or refused
 *   VHDUP_ECREDENTIAL  a malformed or missing credential
 *   VHDUP_EAUTH        401 or 403
 *   VHDUP_ENOTFOUND    404: no such blob or container
 *   VHDUP_EHTTP        any other failed answer, after retries
 *   VHDUP_ENET         the connection failed, after retries
 *   VHDUP_ETIMEDOUT    no answer in time, after retries
 *   VHDUP_ECANCELED
 *   VHDUP_ENOMEM */
VHDUP_EXTERN int vhdup_blob_get_info(vhdup_engine *e, const vhdup_blob_target *t,
                                     vhdup_blob_info_cb done_cb, void *data, vhdup_blob_op **op);

typedef struct vhdup_blob_ranges_options {
  uint64_t offset;       /* where to start, a multiple of 512 (default 0) */
  uint64_t length;       /* a multiple of 512; 0: to the blob's end (its size is
                          * asked first) */
  uint64_t segment_size; /* bytes per Get Page Ranges (x-ms-range), a multiple of
                          * 512; 0: 150 MiB, as Microsoft advises for large blobs */
  unsigned max_results;  /* ranges per answer page (maxresults, from version
                          * 2020-10-02); 0: 10000 */
} vhdup_blob_ranges_options;

/* Fills o with the defaults above. */
VHDUP_EXTERN void vhdup_blob_ranges_options_init(vhdup_blob_ranges_options *o);

/* A page range [start, end] (end inclusive, as Azure reports it). A nonzero
 * return stops the listing; done_cb then gets that value as its status. */
typedef int (*vhdup_blob_range_cb)(vhdup_blob_op *op, uint64_t start, uint64_t end, void *data);
/* status and message as vhdup_blob_info_cb's. */
typedef void (*vhdup_blob_done_cb)(vhdup_blob_op *op, int status, const char *message, void *data);

/* Lists the page ranges (the pages ever written and not cleared) of t's
 * blob within [offset, offset + length), in order, each exactly once and
 * whole: ranges are clipped to the span asked, and a range the segments cut
 * in two is stitched back together. Memory stays constant however many
 * ranges there are. range_cb fires per range, then done_cb exactly once
 * (ranges handed out before an error stand). Returns as
 * vhdup_blob_get_info, and:
 *   VHDUP_EINVAL  a misaligned offset, length or segment
 * done_cb's status: as vhdup_blob_get_info's, and:
 *   VHDUP_EUNSUPPORTED  not a page blob
 *   VHDUP_EINVAL        offset beyond the blob's end
 *   VHDUP_EFORMAT       a malformed answer
 *   VHDUP_ELIMIT        an answer too large: use a smaller segment
 *   range_cb's value    when range_cb stopped the listing */
VHDUP_EXTERN int vhdup_blob_get_ranges(vhdup_engine *e, const vhdup_blob_target *t,
                                       const vhdup_blob_ranges_options *o,
                                       vhdup_blob_range_cb range_cb, vhdup_blob_done_cb done_cb,
                                       void *data, vhdup_blob_op **op);

/* Stops an operation: its done_cb fires later with VHDUP_ECANCELED (unless
 * it already finished). Safe from any callback, including range_cb. */
VHDUP_EXTERN void vhdup_blob_cancel(vhdup_blob_op *op);

/* A notice while an operation runs: each retry, as "retrying Get Page
 * Ranges after HTTP 503 ServerBusy: ... (attempt 2 of 5)". Never holds a
 * secret. */
typedef void (*vhdup_blob_notice_cb)(vhdup_blob_op *op, const char *message, void *data);

/* Sends op's notices to notice_cb (NULL: none, the default). Set it right
 * after the call that started op returns: no callback fires from inside
 * that call, so no notice is missed. It is not a field of
 * vhdup_blob_target, which says only where and as whom (a job's notices go
 * to vhdup_job_options.notice_cb). */
VHDUP_EXTERN void vhdup_blob_set_notice_cb(vhdup_blob_op *op, vhdup_blob_notice_cb notice_cb);

#ifdef __cplusplus
}
#endif
#endif
