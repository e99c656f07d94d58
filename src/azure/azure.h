/* The Azure Blob module: everything vhdup knows about Azure's REST protocol,
 * with no I/O. Strings and buffers in, strings and structs out; no libuv, no
 * curl. It owns:
 *   - destination URLs (parse, join) and credentials (Shared Key,
 *     SAS, connection strings, the Azure CLI's environment variables);
 *   - request descriptions {method, url, headers, content length} for the
 *     handful of Blob operations vhdup uses, signed with Shared Key when the
 *     credential is a key;
 *   - response handling: error code/message/request id, page-range XML,
 *     classification (retry / fatal / auth), backoff, error messages;
 *   - Azure's CRC64 (x-ms-content-crc64).
 * The network engine sends what this module describes; the upload pipeline
 * decides what to describe.
 *
 * Facts come from Microsoft's REST reference (learn.microsoft.com,
 * /rest/api/storageservices/...), cited per function. Secrets (account keys,
 * the SAS `sig`) never appear in any message this module writes. */
#ifndef VHDUP_AZURE_AZURE_H
#define VHDUP_AZURE_AZURE_H

#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

/* x-ms-version sent by default: >= 2020-10-02 so Get Page Ranges can page
 * with marker/maxresults, and accepted by Azurite 3.x. */
#define VHDUP__AZ_DEFAULT_VERSION "2021-08-06"
/* Feature gates (versioning-for-the-azure-storage-services, put-page,
 * get-page-ranges). */
#define VHDUP__AZ_VERSION_CRC64 "2019-02-02"
#define VHDUP__AZ_VERSION_MARKER "2020-10-02"

/* Azurite's well-known development account (use-azurite-to-develop). */
#define VHDUP__AZ_DEV_ACCOUNT "devstoreaccount1"
#define VHDUP__AZ_DEV_KEY                                                                          \
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define VHDUP__AZ_DEV_ENDPOINT "http://127.0.0.1:10000/devstoreaccount1"

#define VHDUP__AZ_PAGE 512u
#define VHDUP__AZ_MAX_PUT_PAGE (4u * 1024 * 1024)      /* put-page: body <= 4 MiB */
#define VHDUP__AZ_MAX_BLOB_SIZE (8ull << 40)           /* page blob <= 8 TiB */
#define VHDUP__AZ_KEY_MAX 128                          /* decoded account key bytes */
#define VHDUP__AZ_ERROR_BODY_MAX (64u * 1024)          /* error XML we look at */
#define VHDUP__AZ_PAGELIST_BODY_MAX (4u * 1024 * 1024) /* page-range XML we accept */
#define VHDUP__AZ_MARKER_MAX 1024                      /* NextMarker bytes */
#define VHDUP__AZ_CLIENT_ID_MAX 1024                   /* x-ms-client-request-id */

/* ---------------------------------------------------------------- headers */

typedef struct vhdup__az_header {
  char *name;
  char *value;
} vhdup__az_header;

/* Case-insensitive lookup in a name/value list; NULL when absent. */
const char *vhdup__az_header_find(const vhdup__az_header *h, size_t n, const char *name);

/* ------------------------------------------------------------------- URLs */

enum {
  /* Accept http:// to hosts other than loopback (default: VHDUP_EURL). */
  VHDUP__AZ_URL_ALLOW_HTTP = 1u << 0,
};

/* A parsed blob URL. Either virtual-host style
 *   https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB?SAS
 * or path style (Azurite, IP endpoints; the account is the first segment)
 *   http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB?SAS
 * Path style is chosen when the host is an IP literal, "localhost", or the
 * port is one of Azurite's (10000-10002) — the rule the Azure SDKs use for
 * IP-style endpoints. container and blob are kept percent-encoded exactly as
 * they go on the wire (characters not allowed in a path are encoded); blob
 * may contain '/'. sas is the query without '?', verbatim, or NULL. */
typedef struct vhdup__az_url {
  char *scheme;  /* "https" or "http" */
  char *host;    /* IPv6 literals keep their brackets */
  uint16_t port; /* explicit or the scheme's default */
  int port_explicit;
  int path_style;
  char *account;
  char *container;
  char *blob;
  char *sas;
} vhdup__az_url;

/* Parses a destination blob URL into out (free with vhdup__az_url_free).
 * Errors: VHDUP_EURL (with a message naming the problem; the SAS signature
 * is never quoted), VHDUP_ENOMEM. */
int vhdup__az_url_parse(const char *url, unsigned flags, vhdup__az_url *out, vhdup__err *err);
/* Builds a destination from a service endpoint (a connection string's
 * BlobEndpoint, e.g. "https://acct.blob.core.windows.net" or
 * "http://127.0.0.1:10000/devstoreaccount1") plus "container/blob". */
int vhdup__az_url_join(const char *endpoint, const char *container_and_blob, unsigned flags,
                       vhdup__az_url *out, vhdup__err *err);
void vhdup__az_url_free(vhdup__az_url *u);

/* Nonzero when a URL's query (with or without its leading '?'; NULL is
 * none) has a SAS signature: a `sig` parameter, matched as the redaction
 * below matches it (any case, at the start or after '&' or ';'). A query
 * without one is still what vhdup__az_url keeps as `sas`; this says whether
 * it holds a secret (service-sas-create: `sig` is the signature). */
int vhdup__az_query_has_sig(const char *query);

/* Percent-decodes s[0..len) into out (out_size >= len + 1). '+' stays '+'
 * (RFC 3986). Returns the decoded length, VHDUP_ELIMIT when out is too
 * small, or VHDUP_EFORMAT for a bad escape or an encoded NUL. */
long vhdup__az_url_decode(const char *s, size_t len, char *out, size_t out_size);

/* ------------------------------------------------------------ credentials */

typedef enum {
  VHDUP__AZ_AUTH_NONE = 0,
  VHDUP__AZ_AUTH_SHARED_KEY,
  VHDUP__AZ_AUTH_SAS,
} vhdup__az_auth;

/* A credential and, when it came from a connection string, the endpoint.
 * key is the decoded account key. Free with vhdup__az_cred_free, which also
 * wipes the key. */
typedef struct vhdup__az_cred {
  vhdup__az_auth kind;
  char *account; /* NULL if unknown (SAS with BlobEndpoint only) */
  uint8_t key[VHDUP__AZ_KEY_MAX];
  size_t key_len;
  char *sas;           /* query without leading '?' */
  char *blob_endpoint; /* no trailing '/', NULL if none */
} vhdup__az_cred;

/* Parses an Azure Storage connection string (storage-configure-connection-
 * string): ';'-separated Key=Value; keys DefaultEndpointsProtocol,
 * AccountName, AccountKey, EndpointSuffix, BlobEndpoint,
 * SharedAccessSignature, UseDevelopmentStorage (=true: Azurite with the
 * well-known account); QueueEndpoint/TableEndpoint/FileEndpoint are accepted
 * and ignored (portal SAS connection strings carry them). Keys match
 * case-insensitively. Errors: VHDUP_ECREDENTIAL with "connection string: ..."
 * naming the key and the problem (never the value of AccountKey or
 * SharedAccessSignature), VHDUP_ENOMEM. */
int vhdup__az_connstr_parse(const char *s, vhdup__az_cred *out, vhdup__err *err);

/* An injected getenv: returns the variable or NULL. */
typedef const char *(*vhdup__az_getenv_fn)(void *ctx, const char *name);

/* Reads the variables Azure CLI users already set, in the CLI's order:
 * AZURE_STORAGE_CONNECTION_STRING; else AZURE_STORAGE_ACCOUNT with
 * AZURE_STORAGE_KEY; else AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_SAS_TOKEN.
 * Empty variables count as unset. Returns 0 with out->kind NONE when none is
 * set; VHDUP_ECREDENTIAL naming the variable for a malformed or incomplete
 * one; VHDUP_ENOMEM. */
int vhdup__az_cred_from_env(vhdup__az_getenv_fn getenv_fn, void *ctx, vhdup__az_cred *out,
                            vhdup__err *err);

/* Shared Key credential from an account name and a base64 key. */
int vhdup__az_cred_shared_key(const char *account, const char *key_b64, vhdup__az_cred *out,
                              vhdup__err *err);
void vhdup__az_cred_free(vhdup__az_cred *c);

/* Storage account names: 3-24 lowercase letters and digits. */
int vhdup__az_account_name_valid(const char *name);

/* -------------------------------------------------------- the blob target */

/* Returns random/unique bits; used for backoff jitter and request ids. */
typedef uint64_t (*vhdup__az_random_fn)(void *ctx);
/* Returns the current time in seconds since 1970 (UTC). */
typedef int64_t (*vhdup__az_clock_fn)(void *ctx);

typedef struct vhdup__az_blob_opts {
  const char *version;          /* x-ms-version; NULL = VHDUP__AZ_DEFAULT_VERSION */
  unsigned timeout_s;           /* ?timeout= on every request; 0 = none */
  const char *client_id_prefix; /* x-ms-client-request-id = PREFIX-N; NULL = "vhdup" */
  vhdup__az_clock_fn clock;     /* NULL = time() */
  void *clock_ctx;
} vhdup__az_blob_opts;

/* Everything needed to describe requests to one blob: where, as whom, which
 * version. The authorisation is resolved once here:
 *   - a SAS in the URL wins (the URL is the credential);
 *   - else the credential's SAS is appended, or its key signs each request;
 *     a key for another account than the URL's is refused (VHDUP_ECREDENTIAL).
 * With a SAS the `sv` field sets the service version that executes the
 * request (previous-azure-storage-service-versions: "If the x-ms-version
 * header is passed on the request, it's ignored"), so features are gated on
 * `version` = sv then; x-ms-version is still sent. */
typedef struct vhdup__az_blob {
  vhdup__az_url url;
  vhdup__az_auth auth;
  char *sign_account; /* Shared Key: the credential's account */
  uint8_t key[VHDUP__AZ_KEY_MAX];
  size_t key_len;
  char *sas;               /* effective SAS query or NULL */
  char header_version[16]; /* sent as x-ms-version */
  char version[16];        /* the version the service applies */
  int version_from_sas;
  unsigned timeout_s;
  char *client_id_prefix;
  uint64_t next_request;
  vhdup__az_clock_fn clock;
  void *clock_ctx;
} vhdup__az_blob;

/* cred may be NULL or kind NONE (then the URL must carry a SAS, else
 * VHDUP_ECREDENTIAL "no credential"). Copies what it needs; url and cred can
 * be freed afterwards. Errors: VHDUP_ECREDENTIAL, VHDUP_EINVAL (bad version
 * string), VHDUP_ENOMEM. */
int vhdup__az_blob_init(vhdup__az_blob *b, const vhdup__az_url *url, const vhdup__az_cred *cred,
                        const vhdup__az_blob_opts *opts, vhdup__err *err);
void vhdup__az_blob_free(vhdup__az_blob *b);

/* Nonzero when the applied version is >= min ("YYYY-MM-DD"). */
int vhdup__az_blob_version_at_least(const vhdup__az_blob *b, const char *min);

/* The blob's URL with sig=REDACTED, for messages. Allocated. */
char *vhdup__az_blob_display_url(const vhdup__az_blob *b);

/* --------------------------------------------------------------- requests */

/* One HTTP request, ready to send. Content-Length is not in headers: the
 * engine sends content_length itself (and must send "Content-Length: 0" on a
 * bodiless PUT; Azure requires it). The engine must not add headers that are
 * signed (Content-Type, Content-MD5, Range, If-*, x-ms-*) and should
 * suppress curl's "Expect: 100-continue". Free with vhdup__az_request_free. */
typedef struct vhdup__az_request {
  const char *method; /* static: "PUT", "GET", "HEAD", "DELETE" */
  char *url;          /* full URL with query; contains the SAS: print redacted */
  vhdup__az_header *headers;
  size_t nheaders;
  size_t cap;
  uint64_t content_length; /* request body bytes */
  char client_request_id[VHDUP__AZ_CLIENT_ID_MAX + 1];
} vhdup__az_request;

void vhdup__az_request_free(vhdup__az_request *r);
const char *vhdup__az_request_header(const vhdup__az_request *r, const char *name);

/* Integrity for Put Page (put-page): Content-MD5 or, from 2019-02-02,
 * x-ms-content-crc64; never both. */
typedef enum {
  VHDUP__AZ_SUM_NONE = 0,
  VHDUP__AZ_SUM_MD5,
  VHDUP__AZ_SUM_CRC64,
} vhdup__az_sum_kind;

typedef struct vhdup__az_sum {
  vhdup__az_sum_kind kind;
  uint8_t md5[16]; /* raw digest of the body */
  uint64_t crc64;  /* vhdup__crc64 of the body */
} vhdup__az_sum;

/* Every builder below fills *out (free it with vhdup__az_request_free even
 * after an error is fine) and takes an optional client request id (NULL:
 * "PREFIX-N" from the blob's counter). Each returns 0, VHDUP_EINVAL (bad
 * range/size, with a message), VHDUP_EUNSUPPORTED (feature newer than the
 * applied version), VHDUP_ELIMIT (id too long) or VHDUP_ENOMEM. */

/* Put Blob creating an empty page blob of size bytes (multiple of 512,
 * <= 8 TiB). if_none_match: send If-None-Match: * so an existing blob is not
 * replaced (the service answers 409 BlobAlreadyExists). (put-blob) */
int vhdup__az_req_create_page_blob(vhdup__az_blob *b, uint64_t size, int if_none_match,
                                   const char *client_id, vhdup__az_request *out, vhdup__err *err);
/* Put Page, update: len bytes (1..4 MiB, multiples of 512) at offset. */
int vhdup__az_req_put_page(vhdup__az_blob *b, uint64_t offset, uint64_t len,
                           const vhdup__az_sum *sum, const char *client_id, vhdup__az_request *out,
                           vhdup__err *err);
/* Put Page, clear: zeroes [offset, offset+len), any 512-multiple size. */
int vhdup__az_req_clear_pages(vhdup__az_blob *b, uint64_t offset, uint64_t len,
                              const char *client_id, vhdup__az_request *out, vhdup__err *err);
/* Get Page Ranges over [offset, offset+len) (len 0: whole blob). marker and
 * maxresults (0: none) need version >= 2020-10-02. (get-page-ranges) */
int vhdup__az_req_get_page_ranges(vhdup__az_blob *b, uint64_t offset, uint64_t len,
                                  const char *marker, unsigned maxresults, const char *client_id,
                                  vhdup__az_request *out, vhdup__err *err);
/* Get Blob Properties (HEAD). */
int vhdup__az_req_get_properties(vhdup__az_blob *b, const char *client_id, vhdup__az_request *out,
                                 vhdup__err *err);
/* Set Blob Properties with x-ms-blob-content-md5 (whole-blob MD5). Note:
 * Set Blob Properties clears the x-ms-blob-content-* properties it is not
 * given (set-blob-properties). */
int vhdup__az_req_set_content_md5(vhdup__az_blob *b, const uint8_t md5[16], const char *client_id,
                                  vhdup__az_request *out, vhdup__err *err);
/* Get Blob for [offset, offset+len) (len 0: whole blob). */
int vhdup__az_req_get_blob(vhdup__az_blob *b, uint64_t offset, uint64_t len, const char *client_id,
                           vhdup__az_request *out, vhdup__err *err);
/* Create Container (restype=container) for the blob's container. */
int vhdup__az_req_create_container(vhdup__az_blob *b, const char *client_id, vhdup__az_request *out,
                                   vhdup__err *err);

/* ---------------------------------------------------- Shared Key signing */

/* Builds the Shared Key StringToSign for a request (authorize-with-shared-
 * key): the twelve standard header lines, canonicalized x-ms-* headers,
 * canonicalized resource "/account" + URL path + sorted decoded query.
 * Returns an allocated string in *out, or VHDUP_EURL/VHDUP_ENOMEM. */
int vhdup__az_string_to_sign(const char *method, const char *url, const vhdup__az_header *h,
                             size_t n, uint64_t content_length, const char *account, char **out,
                             vhdup__err *err);
/* Computes "SharedKey ACCOUNT:SIGNATURE" into out (allocated). */
int vhdup__az_shared_key_auth(const char *method, const char *url, const vhdup__az_header *h,
                              size_t n, uint64_t content_length, const char *account,
                              const uint8_t *key, size_t key_len, char **out, vhdup__err *err);

/* Formats t (seconds since 1970, UTC) as RFC 1123, e.g.
 * "Sun, 06 Nov 1994 08:49:37 GMT"; out needs 30 bytes. */
void vhdup__az_rfc1123(int64_t t, char out[30]);

/* ---------------------------------------------------------------- CRC64 */

/* Azure Storage's CRC64 (CRC-64/NVME: polynomial 0x9A6C9329AC4BC9B5
 * reflected, init and xorout all ones; check("123456789") =
 * 0xAE8B14860A799888). Incremental: start with crc = 0 and feed the result
 * back in. */
uint64_t vhdup__crc64(uint64_t crc, const void *data, size_t len);
/* The same through the tables alone, as on a CPU without PCLMULQDQ (for
 * tests and bench/hashrate.c). */
uint64_t vhdup__crc64_tables(uint64_t crc, const void *data, size_t len);
/* base64 of the CRC's 8 bytes little-endian, as x-ms-content-crc64 takes it
 * (azure-sdk-for-cpp storage/common crc_hash.cpp Crc64Hash::OnFinal emits
 * byte i = crc >> 8i). out: 13 bytes. */
void vhdup__crc64_base64(uint64_t crc, char out[13]);

/* -------------------------------------------------------------- responses */

typedef struct vhdup__az_error_info {
  int status;
  char code[64];        /* x-ms-error-code, else <Code>; "" if none */
  char message[256];    /* first line of <Message>, sanitised; "" if none */
  char request_id[128]; /* x-ms-request-id; "" if none */
} vhdup__az_error_info;

/* Fills out from a response: status, headers, and up to
 * VHDUP__AZ_ERROR_BODY_MAX bytes of body (body may be NULL; it need not be
 * NUL-terminated or well-formed; a malformed body just yields no code). */
void vhdup__az_error_parse(int status, const vhdup__az_header *h, size_t n, const char *body,
                           size_t body_len, vhdup__az_error_info *out);

/* "HTTP 403 AuthenticationFailed: Server failed to authenticate the request.
 * (request id 1234)"; never contains a SAS signature (sig=... inside the
 * message is redacted). Returns the length written (truncated to fit). */
size_t vhdup__az_error_format(const vhdup__az_error_info *e, char *out, size_t out_size);

/* Page ranges of a Get Page Ranges answer. */
typedef struct vhdup__az_page_range {
  uint64_t start; /* first byte, multiple of 512 */
  uint64_t end;   /* last byte (inclusive), 511 mod 512 */
  int clear;      /* 1 for <ClearRange> (diff answers) */
} vhdup__az_page_range;

/* Called per range in document order; a nonzero return stops the parse and
 * is returned. */
typedef int (*vhdup__az_range_cb)(void *ctx, const vhdup__az_page_range *r);

/* Parses <PageList> XML of at most max_body bytes (0: the default
 * VHDUP__AZ_PAGELIST_BODY_MAX). Ranges must be aligned, Start <= End <
 * 8 TiB, ascending and non-overlapping. next_marker (may be NULL) receives
 * <NextMarker> or "" when the list is complete. Errors: VHDUP_ELIMIT (body or
 * marker too large), VHDUP_EFORMAT (malformed, with a message naming the
 * element and byte offset), or the callback's value. */
int vhdup__az_page_list_parse(const char *body, size_t len, size_t max_body, vhdup__az_range_cb cb,
                              void *ctx, char *next_marker, size_t marker_size, vhdup__err *err);
/* Same into an array of cap entries; *count is set; VHDUP_ELIMIT when more
 * than cap ranges. */
int vhdup__az_page_list_parse_array(const char *body, size_t len, size_t max_body,
                                    vhdup__az_page_range *ranges, size_t cap, size_t *count,
                                    char *next_marker, size_t marker_size, vhdup__err *err);

/* --------------------------------------------------- classification/retry */

typedef enum {
  VHDUP__AZ_OK = 0, /* 2xx */
  VHDUP__AZ_RETRY,  /* try again after a backoff */
  VHDUP__AZ_FATAL,  /* the request itself is wrong or the target is */
  VHDUP__AZ_AUTH,   /* credential refused: stop, keep the job resumable */
} vhdup__az_class;

/* Classifies an HTTP answer (docs/azure.md, "Errors and retries"): 2xx OK; 408,
 * 429, 500, 502, 503, 504 and other 5xx except 501/505 RETRY; 401/403 AUTH;
 * everything else (400 incl. InvalidPageRange/InvalidHeaderValue/
 * Md5Mismatch, 404, 409, 412, 413, 416, 3xx) FATAL. code may be NULL. */
vhdup__az_class vhdup__az_classify(int status, const char *code);
/* The error code a failed answer maps to: EAUTH (401/403), ENOTFOUND (404),
 * EEXIST (409 BlobAlreadyExists/ContainerAlreadyExists, 412 with
 * If-None-Match), ETIMEDOUT (500 OperationTimedOut), EHTTP otherwise; 0 for
 * 2xx. */
int vhdup__az_status_errno(int status, const char *code);

/* Retry-After in seconds, -1 if absent or malformed (RFC 9110 10.2.3):
 * delta-seconds (strict digits), or an HTTP-date (IMF-fixdate), counted
 * from the answer's own Date header when it has one (so the two clocks need
 * not agree), else from now_unix; a date in the past is 0. */
long vhdup__az_retry_after(const vhdup__az_header *h, size_t n, int64_t now_unix);
/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") as seconds since
 * 1970-01-01 UTC; -1 if v is not exactly one. */
int64_t vhdup__az_http_date(const char *v);

/* Longest Retry-After honoured, whatever the server says. */
#define VHDUP__AZ_RETRY_AFTER_CAP_MS 120000u

/* Exponential backoff with full jitter: a uniform random delay in
 * [0, min(cap_ms, base_ms * 2^attempt)] (attempt counts from 0), raised to
 * retry_after_s * 1000 when that is larger (a lower bound), itself capped at
 * VHDUP__AZ_RETRY_AFTER_CAP_MS. retry_after_s < 0: none. rnd NULL: no
 * jitter (the full ceiling). */
uint32_t vhdup__az_backoff_ms(unsigned attempt, uint32_t base_ms, uint32_t cap_ms,
                              long retry_after_s, vhdup__az_random_fn rnd, void *rnd_ctx);

#endif
