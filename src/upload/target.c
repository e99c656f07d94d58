/* Where and as whom a blob request goes (target.h). */
#include "upload/target.h"

#include "util/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *env_get(void *ctx, const char *name) {
  (void)ctx;
  return getenv(name);
}

void vhdup__target_from_blob(const vhdup_blob_target *pub, const char *shown, vhdup__target *out) {
  *out = (vhdup__target){
      .destination = pub->url,
      .shown = shown,
      .connection_string = pub->connection_string,
      .account_key = pub->account_key,
      .sas_token = pub->sas_token,
      .use_environment = pub->use_environment,
      .allow_http = pub->allow_http,
  };
}

int vhdup__target_resolve(const vhdup__target *t, vhdup__az_url *url, vhdup__az_cred *cred,
                          vhdup__err *err) {
  unsigned flags = t->allow_http ? VHDUP__AZ_URL_ALLOW_HTTP : 0;
  int rc = 0;
  memset(cred, 0, sizeof(*cred));
  if (t->connection_string != NULL)
    rc = vhdup__az_connstr_parse(t->connection_string, cred, err);
  else if (t->sas_token != NULL) {
    cred->kind = VHDUP__AZ_AUTH_SAS;
    cred->sas = vhdup__strdup(t->sas_token[0] == '?' ? t->sas_token + 1 : t->sas_token);
    rc = cred->sas == NULL ? VHDUP_ENOMEM : 0;
  }
  if (rc != 0)
    return rc;
  int is_url = strstr(t->destination, "://") != NULL;
  if (is_url) {
    rc = vhdup__az_url_parse(t->destination, flags, url, err);
  } else if (cred->blob_endpoint != NULL) {
    rc = vhdup__az_url_join(cred->blob_endpoint, t->destination, flags, url, err);
  } else {
    return vhdup__errf(err, VHDUP_EURL,
                       "destination '%s' is not a URL; give https://ACCOUNT.blob.core.windows.net/"
                       "CONTAINER/BLOB, or CONTAINER/BLOB with --connection-string",
                       t->destination);
  }
  if (rc != 0)
    return rc;
  if (url->sas != NULL || cred->kind != VHDUP__AZ_AUTH_NONE)
    return 0;
  if (t->account_key != NULL)
    return vhdup__az_cred_shared_key(url->account, t->account_key, cred, err);
  if (t->use_environment) {
    rc = vhdup__az_cred_from_env(env_get, NULL, cred, err);
    if (rc != 0 || cred->kind != VHDUP__AZ_AUTH_NONE)
      return rc;
  }
  return vhdup__errf(err, VHDUP_ECREDENTIAL,
                     "no credential for %s: add a SAS to the URL, or give --sas-token-file, "
                     "--connection-string or --account-key-file, or set "
                     "AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT with "
                     "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN)",
                     t->shown);
}

void vhdup__target_classify(const vhdup__http_resp *r, vhdup__target_result *out, char *msg,
                            size_t msg_size) {
  memset(out, 0, sizeof(*out));
  out->retry_after_s = -1;
  out->http_status = r->status;
  if (r->error != 0) {
    out->error = r->error;
    out->retryable = r->retryable;
    snprintf(msg, msg_size, "%s", r->error_detail[0] ? r->error_detail : vhdup_strerror(r->error));
    return;
  }
  if (r->status >= 200 && r->status < 300)
    return;
  vhdup__az_header h[64];
  size_t n = r->n_headers < 64 ? r->n_headers : 64;
  for (size_t i = 0; i < n; i++) {
    h[i].name = (char *)r->headers[i].name;
    h[i].value = (char *)r->headers[i].value;
  }
  vhdup__az_error_info e;
  vhdup__az_error_parse((int)r->status, h, n, r->body, r->body_len, &e);
  vhdup__az_error_format(&e, msg, msg_size);
  snprintf(out->error_code, sizeof(out->error_code), "%s", e.code);
  out->error = vhdup__az_status_errno((int)r->status, e.code);
  out->retryable = vhdup__az_classify((int)r->status, e.code) == VHDUP__AZ_RETRY;
  out->retry_after_s = vhdup__az_retry_after(h, n, (int64_t)time(NULL));
}
