/* Credentials: connection strings (storage-configure-connection-string),
 * the Azure CLI's environment variables, account keys. Messages name the
 * key or variable and the problem, never a secret value: AccountKey and
 * SharedAccessSignature values are not quoted, and an unknown key is quoted
 * only when it looks like a key name (a stray secret split at its base64
 * '=' padding must not be echoed back). */
#include "azure/azure.h"

#include "azure/internal.h"
#include "util/alloc.h"
#include "util/crypto.h"
#include "util/secret.h"
#include "util/text.h"

#include <string.h>

int vhdup__az_account_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n < 3 || n > 24)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
      return 0;
  return 1;
}

/* An invalid account name is quoted back only when it cannot be a pasted
 * secret: short, and no '=', '/', '+' or other base64/SAS characters. */
static const char *shown_name(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 40)
    return "(not shown)";
  for (size_t i = 0; i < n; i++)
    if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
          (name[i] >= '0' && name[i] <= '9') || name[i] == '-' || name[i] == '_' || name[i] == '.'))
      return "(not shown)";
  return name;
}

void vhdup__az_cred_free(vhdup__az_cred *c) {
  if (c == NULL)
    return;
  vhdup__free(c->account);
  vhdup__secret_free(c->sas);
  vhdup__free(c->blob_endpoint);
  vhdup__wipe(c, sizeof(*c));
}

static int decode_key(const char *b64, size_t len, vhdup__az_cred *out) {
  long n = vhdup__base64_decode(b64, len, out->key, sizeof(out->key));
  if (n <= 0)
    return -1;
  out->key_len = (size_t)n;
  return 0;
}

int vhdup__az_cred_shared_key(const char *account, const char *key_b64, vhdup__az_cred *out,
                              vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  if (!vhdup__az_account_name_valid(account))
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "account name '%s' is not valid (3-24 lowercase letters and digits)",
                       shown_name(account));
  if (decode_key(key_b64, strlen(key_b64), out) != 0) {
    vhdup__az_cred_free(out);
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "account key is not valid base64");
  }
  out->kind = VHDUP__AZ_AUTH_SHARED_KEY;
  out->account = vhdup__strdup(account);
  if (out->account == NULL) {
    vhdup__az_cred_free(out);
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  return 0;
}

enum {
  K_PROTOCOL,
  K_ACCOUNT,
  K_KEY,
  K_SUFFIX,
  K_BLOB,
  K_SAS,
  K_DEV,
  K_QUEUE,
  K_TABLE,
  K_FILE,
  K_COUNT
};
static const char *const key_names[K_COUNT] = {
    "DefaultEndpointsProtocol",
    "AccountName",
    "AccountKey",
    "EndpointSuffix",
    "BlobEndpoint",
    "SharedAccessSignature",
    "UseDevelopmentStorage",
    "QueueEndpoint",
    "TableEndpoint",
    "FileEndpoint",
};

static int is_alpha_num_us(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A key worth quoting: short, letters/digits/underscore only. */
#define KEY_SHOWN_MAX 40
static int printable_key(const char *k, size_t n) {
  if (n == 0 || n > KEY_SHOWN_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!(is_alpha_num_us(k[i])))
      return 0;
  return 1;
}

static int trim(const char **s, size_t *n) {
  while (*n > 0 && (**s == ' ' || **s == '\t'))
    (*s)++, (*n)--;
  while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
    (*n)--;
  return *n > 0;
}

static int hostname_ok(const char *s, size_t n) {
  if (n == 0 || n > 253)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!(is_alpha_num_us(s[i]) || s[i] == '-' || s[i] == '.') || s[i] == '_')
      return 0;
  return 1;
}

static int sas_ok(const char *s) {
  /* The signature is what makes a query a SAS (create-service-sas). */
  for (const char *p = s; (p = strstr(p, "sig=")) != NULL; p++)
    if (p == s || p[-1] == '&')
      return 1;
  return 0;
}

static int connstr_parse(const char *s, const char *who, vhdup__az_cred *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  const char *val[K_COUNT] = {0};
  size_t vlen[K_COUNT] = {0};
  size_t seg_no = 0;
  const char *p = s;
  if (s == NULL || *s == '\0')
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s is empty", who);
  for (;;) {
    size_t n = strcspn(p, ";");
    const char *seg = p;
    size_t sl = n;
    seg_no++;
    if (trim(&seg, &sl)) {
      const char *eq = memchr(seg, '=', sl);
      if (eq == NULL)
        return vhdup__errf(err, VHDUP_ECREDENTIAL,
                           "%s: segment %zu has no '=' (expected Key=Value; segments are "
                           "separated by ';')",
                           who, seg_no);
      const char *k = seg;
      size_t kl = (size_t)(eq - seg);
      const char *v = eq + 1;
      size_t vl = sl - kl - 1;
      trim(&k, &kl);
      trim(&v, &vl);
      if (kl == 0)
        return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: segment %zu has an empty key", who, seg_no);
      int idx = -1;
      for (int i = 0; i < K_COUNT; i++)
        if (strlen(key_names[i]) == kl && vhdup__az_strncaseeq(k, key_names[i], kl))
          idx = i;
      if (idx < 0) {
        if (!printable_key(k, kl))
          return vhdup__errf(err, VHDUP_ECREDENTIAL,
                             "%s: segment %zu does not start with a known key (text not shown)",
                             who, seg_no);
        char name[KEY_SHOWN_MAX + 1];
        memcpy(name, k, kl);
        name[kl] = '\0';
        const char *best = vhdup__suggest(name, key_names, K_COUNT, 1);
        if (best != NULL)
          return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: unknown key '%.*s' (did you mean '%s'?)",
                             who, (int)kl, k, best);
        return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: unknown key '%.*s'", who, (int)kl, k);
      }
      if (val[idx] != NULL)
        return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: duplicate key '%s'", who, key_names[idx]);
      if (vl == 0)
        return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: %s is empty", who, key_names[idx]);
      val[idx] = v;
      vlen[idx] = vl;
    }
    if (p[n] == '\0')
      break;
    p += n + 1;
  }

  char *endpoint = NULL, *account = NULL, *sas = NULL;
  vhdup__az_sb sb = {0};
  int rc = VHDUP_ECREDENTIAL;
  if (val[K_DEV] != NULL) {
    if (!(vlen[K_DEV] == 4 && vhdup__az_strncaseeq(val[K_DEV], "true", 4)))
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: UseDevelopmentStorage must be 'true'", who);
    for (int i = 0; i < K_COUNT; i++)
      if (i != K_DEV && val[i] != NULL)
        return vhdup__errf(err, VHDUP_ECREDENTIAL,
                           "%s: UseDevelopmentStorage=true cannot be combined with %s", who,
                           key_names[i]);
    rc = vhdup__az_cred_shared_key(VHDUP__AZ_DEV_ACCOUNT, VHDUP__AZ_DEV_KEY, out, err);
    if (rc != 0)
      return rc;
    out->blob_endpoint = vhdup__strdup(VHDUP__AZ_DEV_ENDPOINT);
    if (out->blob_endpoint == NULL) {
      vhdup__az_cred_free(out);
      return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
    }
    return 0;
  }
  if (val[K_PROTOCOL] != NULL &&
      !(vlen[K_PROTOCOL] == 5 && vhdup__az_strncaseeq(val[K_PROTOCOL], "https", 5)) &&
      !(vlen[K_PROTOCOL] == 4 && vhdup__az_strncaseeq(val[K_PROTOCOL], "http", 4)))
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: DefaultEndpointsProtocol must be 'https' or 'http'", who);
  if (val[K_ACCOUNT] != NULL) {
    account = vhdup__strndup(val[K_ACCOUNT], vlen[K_ACCOUNT]);
    if (account == NULL)
      goto oom;
    if (!vhdup__az_account_name_valid(account)) {
      vhdup__errf(err, VHDUP_ECREDENTIAL,
                  "%s: AccountName '%s' is not a valid storage account name (3-24 lowercase "
                  "letters and digits)",
                  who, shown_name(account));
      vhdup__free(account);
      return VHDUP_ECREDENTIAL;
    }
  }
  if (val[K_SUFFIX] != NULL && !hostname_ok(val[K_SUFFIX], vlen[K_SUFFIX])) {
    vhdup__free(account);
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: EndpointSuffix is not a host name suffix", who);
  }
  if (val[K_KEY] != NULL && val[K_SAS] != NULL) {
    vhdup__free(account);
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: both AccountKey and SharedAccessSignature are set; give one", who);
  }
  if (val[K_KEY] == NULL && val[K_SAS] == NULL) {
    vhdup__free(account);
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: has neither AccountKey nor SharedAccessSignature", who);
  }
  if (val[K_KEY] != NULL) {
    if (account == NULL)
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: AccountKey needs AccountName", who);
    if (decode_key(val[K_KEY], vlen[K_KEY], out) != 0) {
      vhdup__free(account);
      vhdup__az_cred_free(out);
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: AccountKey is not valid base64", who);
    }
    out->kind = VHDUP__AZ_AUTH_SHARED_KEY;
  } else {
    const char *v = val[K_SAS];
    size_t l = vlen[K_SAS];
    if (*v == '?')
      v++, l--;
    sas = vhdup__strndup(v, l);
    if (sas == NULL)
      goto oom;
    if (!sas_ok(sas)) {
      vhdup__secret_free(sas);
      vhdup__free(account);
      return vhdup__errf(err, VHDUP_ECREDENTIAL,
                         "%s: SharedAccessSignature has no sig field (not a SAS token)", who);
    }
    out->kind = VHDUP__AZ_AUTH_SAS;
  }
  if (val[K_BLOB] != NULL) {
    const char *v = val[K_BLOB];
    size_t l = vlen[K_BLOB];
    if (!vhdup__az_strncaseeq(v, "https://", 8) && !vhdup__az_strncaseeq(v, "http://", 7)) {
      rc = vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: BlobEndpoint must start with https://", who);
      goto fail;
    }
    while (l > 0 && v[l - 1] == '/')
      l--;
    endpoint = vhdup__strndup(v, l);
    if (endpoint == NULL)
      goto oom;
  } else if (account != NULL) {
    int http = val[K_PROTOCOL] != NULL && vlen[K_PROTOCOL] == 4;
    vhdup__az_sb_add(&sb, http ? "http://" : "https://");
    vhdup__az_sb_add(&sb, account);
    vhdup__az_sb_add(&sb, ".blob.");
    if (val[K_SUFFIX] != NULL)
      vhdup__az_sb_addn(&sb, val[K_SUFFIX], vlen[K_SUFFIX]);
    else
      vhdup__az_sb_add(&sb, "core.windows.net");
    endpoint = vhdup__az_sb_take(&sb);
    if (endpoint == NULL)
      goto oom;
  } else {
    rc = vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: needs AccountName or BlobEndpoint", who);
    goto fail;
  }
  out->account = account;
  out->sas = sas;
  out->blob_endpoint = endpoint;
  return 0;
oom:
  rc = vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
fail:
  vhdup__free(account);
  vhdup__free(endpoint);
  vhdup__secret_free(sas);
  vhdup__az_cred_free(out);
  return rc;
}

int vhdup__az_connstr_parse(const char *s, vhdup__az_cred *out, vhdup__err *err) {
  return connstr_parse(s, "connection string", out, err);
}

static const char *env(vhdup__az_getenv_fn fn, void *ctx, const char *name) {
  const char *v = fn(ctx, name);
  return (v != NULL && *v != '\0') ? v : NULL;
}

int vhdup__az_cred_from_env(vhdup__az_getenv_fn getenv_fn, void *ctx, vhdup__az_cred *out,
                            vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  const char *cs = env(getenv_fn, ctx, "AZURE_STORAGE_CONNECTION_STRING");
  if (cs != NULL)
    return connstr_parse(cs, "AZURE_STORAGE_CONNECTION_STRING", out, err);
  const char *account = env(getenv_fn, ctx, "AZURE_STORAGE_ACCOUNT");
  const char *key = env(getenv_fn, ctx, "AZURE_STORAGE_KEY");
  const char *sas = env(getenv_fn, ctx, "AZURE_STORAGE_SAS_TOKEN");
  if (key != NULL) {
    if (account == NULL)
      return vhdup__errf(err, VHDUP_ECREDENTIAL,
                         "AZURE_STORAGE_KEY is set but AZURE_STORAGE_ACCOUNT is not");
    if (!vhdup__az_account_name_valid(account))
      return vhdup__errf(err, VHDUP_ECREDENTIAL,
                         "AZURE_STORAGE_ACCOUNT '%s' is not a valid storage account name "
                         "(3-24 lowercase letters and digits)",
                         shown_name(account));
    if (vhdup__az_cred_shared_key(account, key, out, NULL) != 0)
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "AZURE_STORAGE_KEY is not valid base64");
    return 0;
  }
  if (sas != NULL) {
    if (*sas == '?')
      sas++;
    if (!sas_ok(sas))
      return vhdup__errf(err, VHDUP_ECREDENTIAL,
                         "AZURE_STORAGE_SAS_TOKEN has no sig field (not a SAS token)");
    if (account != NULL && !vhdup__az_account_name_valid(account))
      return vhdup__errf(err, VHDUP_ECREDENTIAL,
                         "AZURE_STORAGE_ACCOUNT '%s' is not a valid storage account name "
                         "(3-24 lowercase letters and digits)",
                         shown_name(account));
    out->kind = VHDUP__AZ_AUTH_SAS;
    out->sas = vhdup__strdup(sas);
    out->account = account != NULL ? vhdup__strdup(account) : NULL;
    if (out->sas == NULL || (account != NULL && out->account == NULL)) {
      vhdup__az_cred_free(out);
      return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
    }
  }
  return 0;
}
