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
  return vhdup__az_alnum(c) || c == '_';
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
    if (!vhdup__az_host_char(s[i]))
      return 0;
  return 1;
}

/* The values of a connection string by key (not copied: they point into
 * the string), NULL for a key not given. */
typedef struct connstr {
  const char *who; /* names the string in messages */
  const char *val[K_COUNT];
  size_t len[K_COUNT];
} connstr;

static int is_value(const connstr *cs, int key, const char *v) {
  size_t n = strlen(v);
  return cs->len[key] == n && vhdup__az_strncaseeq(cs->val[key], v, n);
}

static int key_index(const char *k, size_t kl) {
  for (int i = 0; i < K_COUNT; i++)
    if (strlen(key_names[i]) == kl && vhdup__az_strncaseeq(k, key_names[i], kl))
      return i;
  return -1;
}

/* The error for a key not in key_names: quoted, with a suggestion, only
 * when it looks like a key name. */
static int unknown_key(const connstr *cs, size_t seg_no, const char *k, size_t kl,
                       vhdup__err *err) {
  if (!printable_key(k, kl))
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: segment %zu does not start with a known key (text not shown)", cs->who,
                       seg_no);
  char name[KEY_SHOWN_MAX + 1];
  memcpy(name, k, kl);
  name[kl] = '\0';
  const char *best = vhdup__suggest(name, key_names, K_COUNT, 1);
  if (best != NULL)
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: unknown key '%.*s' (did you mean '%s'?)",
                       cs->who, (int)kl, k, best);
  return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: unknown key '%.*s'", cs->who, (int)kl, k);
}

/* One non-blank segment "Key=Value" (both trimmed): a known key, given once,
 * with a non-empty value. */
static int add_pair(connstr *cs, size_t seg_no, const char *seg, size_t sl, vhdup__err *err) {
  const char *eq = memchr(seg, '=', sl);
  if (eq == NULL)
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: segment %zu has no '=' (expected Key=Value; segments are "
                       "separated by ';')",
                       cs->who, seg_no);
  const char *k = seg, *v = eq + 1;
  size_t kl = (size_t)(eq - seg), vl = sl - kl - 1;
  trim(&k, &kl);
  trim(&v, &vl);
  if (kl == 0)
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: segment %zu has an empty key", cs->who, seg_no);
  int idx = key_index(k, kl);
  if (idx < 0)
    return unknown_key(cs, seg_no, k, kl, err);
  if (cs->val[idx] != NULL)
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: duplicate key '%s'", cs->who, key_names[idx]);
  if (vl == 0)
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: %s is empty", cs->who, key_names[idx]);
  cs->val[idx] = v;
  cs->len[idx] = vl;
  return 0;
}

/* Splits s at ';' (blank segments are skipped; segments are numbered from
 * 1 for messages, blank ones included). */
static int split_pairs(const char *s, connstr *cs, vhdup__err *err) {
  if (s == NULL || *s == '\0')
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s is empty", cs->who);
  size_t seg_no = 0;
  for (const char *p = s;; p++) {
    size_t n = strcspn(p, ";");
    const char *seg = p;
    size_t sl = n;
    seg_no++;
    if (trim(&seg, &sl)) {
      int rc = add_pair(cs, seg_no, seg, sl, err);
      if (rc != 0)
        return rc;
    }
    p += n;
    if (*p == '\0')
      return 0;
  }
}

/* UseDevelopmentStorage=true: the emulator's well-known account, alone. */
static int use_dev_storage(const connstr *cs, vhdup__az_cred *out, vhdup__err *err) {
  if (!is_value(cs, K_DEV, "true"))
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: UseDevelopmentStorage must be 'true'", cs->who);
  for (int i = 0; i < K_COUNT; i++)
    if (i != K_DEV && cs->val[i] != NULL)
      return vhdup__errf(err, VHDUP_ECREDENTIAL,
                         "%s: UseDevelopmentStorage=true cannot be combined with %s", cs->who,
                         key_names[i]);
  int rc = vhdup__az_cred_shared_key(VHDUP__AZ_DEV_ACCOUNT, VHDUP__AZ_DEV_KEY, out, err);
  if (rc != 0)
    return rc;
  out->blob_endpoint = vhdup__strdup(VHDUP__AZ_DEV_ENDPOINT);
  if (out->blob_endpoint == NULL) {
    vhdup__az_cred_free(out);
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  return 0;
}

/* DefaultEndpointsProtocol, AccountName (into out) and EndpointSuffix,
 * each checked when given. */
static int set_account(const connstr *cs, vhdup__az_cred *out, vhdup__err *err) {
  if (cs->val[K_PROTOCOL] != NULL && !is_value(cs, K_PROTOCOL, "https") &&
      !is_value(cs, K_PROTOCOL, "http"))
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: DefaultEndpointsProtocol must be 'https' or 'http'", cs->who);
  if (cs->val[K_ACCOUNT] != NULL) {
    out->account = vhdup__strndup(cs->val[K_ACCOUNT], cs->len[K_ACCOUNT]);
    if (out->account == NULL)
      return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
    if (!vhdup__az_account_name_valid(out->account))
      return vhdup__errf(err, VHDUP_ECREDENTIAL,
                         "%s: AccountName '%s' is not a valid storage account name (3-24 "
                         "lowercase letters and digits)",
                         cs->who, shown_name(out->account));
  }
  if (cs->val[K_SUFFIX] != NULL && !hostname_ok(cs->val[K_SUFFIX], cs->len[K_SUFFIX]))
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: EndpointSuffix is not a host name suffix",
                       cs->who);
  return 0;
}

/* Exactly one of AccountKey (which needs AccountName) and
 * SharedAccessSignature (with or without its leading '?'). */
static int set_secret(const connstr *cs, vhdup__az_cred *out, vhdup__err *err) {
  if (cs->val[K_KEY] != NULL && cs->val[K_SAS] != NULL)
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: both AccountKey and SharedAccessSignature are set; give one", cs->who);
  if (cs->val[K_KEY] == NULL && cs->val[K_SAS] == NULL)
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: has neither AccountKey nor SharedAccessSignature", cs->who);
  if (cs->val[K_KEY] != NULL) {
    if (out->account == NULL)
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: AccountKey needs AccountName", cs->who);
    if (decode_key(cs->val[K_KEY], cs->len[K_KEY], out) != 0)
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: AccountKey is not valid base64", cs->who);
    out->kind = VHDUP__AZ_AUTH_SHARED_KEY;
    return 0;
  }
  const char *v = cs->val[K_SAS];
  size_t l = cs->len[K_SAS];
  if (*v == '?')
    v++, l--;
  out->sas = vhdup__strndup(v, l);
  if (out->sas == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  if (!vhdup__az_sas_signed(out->sas))
    return vhdup__errf(err, VHDUP_ECREDENTIAL,
                       "%s: SharedAccessSignature has no sig field (not a SAS token)", cs->who);
  out->kind = VHDUP__AZ_AUTH_SAS;
  return 0;
}

/* BlobEndpoint without trailing '/', else PROTOCOL://ACCOUNT.blob.SUFFIX
 * (storage-configure-connection-string: the default is
 * https and core.windows.net). */
static int set_endpoint(const connstr *cs, vhdup__az_cred *out, vhdup__err *err) {
  if (cs->val[K_BLOB] != NULL) {
    const char *v = cs->val[K_BLOB];
    size_t l = cs->len[K_BLOB];
    if (!vhdup__az_strncaseeq(v, "https://", 8) && !vhdup__az_strncaseeq(v, "http://", 7))
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: BlobEndpoint must start with https://",
                         cs->who);
    while (l > 0 && v[l - 1] == '/')
      l--;
    out->blob_endpoint = vhdup__strndup(v, l);
  } else if (out->account != NULL) {
    vhdup__az_sb sb = {0};
    vhdup__az_sb_add(&sb, is_value(cs, K_PROTOCOL, "http") ? "http://" : "https://");
    vhdup__az_sb_add(&sb, out->account);
    vhdup__az_sb_add(&sb, ".blob.");
    if (cs->val[K_SUFFIX] != NULL)
      vhdup__az_sb_addn(&sb, cs->val[K_SUFFIX], cs->len[K_SUFFIX]);
    else
      vhdup__az_sb_add(&sb, "core.windows.net");
    out->blob_endpoint = vhdup__az_sb_take(&sb);
  } else {
    return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: needs AccountName or BlobEndpoint", cs->who);
  }
  return out->blob_endpoint == NULL ? vhdup__errf(err, VHDUP_ENOMEM, "out of memory") : 0;
}

/* Tokenizes, then applies the rules in order: UseDevelopmentStorage alone,
 * else protocol/account/suffix, the secret, the endpoint. */
static int connstr_parse(const char *s, const char *who, vhdup__az_cred *out, vhdup__err *err) {
  memset(out, 0, sizeof(*out));
  connstr cs = {.who = who};
  int rc = split_pairs(s, &cs, err);
  if (rc != 0)
    return rc;
  if (cs.val[K_DEV] != NULL)
    return use_dev_storage(&cs, out, err);
  rc = set_account(&cs, out, err);
  if (rc == 0)
    rc = set_secret(&cs, out, err);
  if (rc == 0)
    rc = set_endpoint(&cs, out, err);
  if (rc != 0)
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
    if (!vhdup__az_sas_signed(sas))
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
