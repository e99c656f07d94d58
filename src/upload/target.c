/* Where and as whom a blob request goes (target.h). */
#include "upload/target.h"

#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

static const char *env_get(void *ctx, const char *name) {
  (void)ctx;
  return getenv(name);
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
