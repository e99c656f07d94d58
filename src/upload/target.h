/* A blob to send requests to: turns what the user gave (a URL or
 * CONTAINER/BLOB, and maybe a connection string, key or SAS token, or the
 * environment) into a parsed URL and a credential. Shared by the upload
 * sink and the blob operations (blob_ops.c), so `vhdup upload` and
 * `vhdup blob` accept credentials in exactly the same way. */
#ifndef VHDUP_UPLOAD_TARGET_H
#define VHDUP_UPLOAD_TARGET_H

#include "vhdup.h"

#include "azure/azure.h"
#include "net/http.h"
#include "util/err.h"

typedef struct vhdup__target {
  const char *destination; /* a blob URL, or CONTAINER/BLOB with a connection string */
  const char *shown;       /* destination with sig=REDACTED, for messages */
  const char *connection_string;
  const char *account_key; /* base64; the account comes from the URL */
  const char *sas_token;   /* with or without a leading '?' */
  int use_environment;     /* AZURE_STORAGE_* when nothing else is given */
  int allow_http;          /* plain http:// to a non-loopback host */
} vhdup__target;

/* The public vhdup_blob_target's where and as whom (the strings borrowed
 * from pub), with shown as its URL for messages. */
void vhdup__target_from_blob(const vhdup_blob_target *pub, const char *shown, vhdup__target *out);

/* Resolves where and as whom: a URL (or container/blob with a connection
 * string's endpoint) and the first credential given: the URL's SAS, the
 * SAS token, connection string or key, then the environment. Fills url and
 * cred (free both, also after an error). Errors: VHDUP_EURL,
 * VHDUP_ECREDENTIAL (with a message that never quotes a secret),
 * VHDUP_ENOMEM. */
int vhdup__target_resolve(const vhdup__target *t, vhdup__az_url *url, vhdup__az_cred *cred,
                          vhdup__err *err) __attribute__((warn_unused_result));

/* How an answer to a request on a target came out. */
typedef struct vhdup__target_result {
  int error;           /* 0 for 2xx, else a vhdup code (vhdup__az_status_errno) */
  int retryable;       /* worth trying again after a backoff */
  long retry_after_s;  /* the server's Retry-After, or -1 */
  long http_status;    /* 0 without an answer */
  char error_code[64]; /* Azure's code ("BlobNotFound"), or "" */
} vhdup__target_result;

/* Classifies r (REST "Status and error codes": 408, 429, 500 and 503 are
 * worth retrying; 401/403 are the credential) and writes what went wrong
 * into msg: "HTTP 404 BlobNotFound: ... (request id ...)" or the transport
 * failure; never a secret. On success msg is left as it was. */
void vhdup__target_classify(const vhdup__http_resp *r, vhdup__target_result *out, char *msg,
                            size_t msg_size);

#endif
