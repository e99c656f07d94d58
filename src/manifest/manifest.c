/* The manifest's schema: the YAML tree → vhdup__manifest, with every problem
 * reported at its line and column (docs/manifest.md is the user's side of
 * this file; keep the two in step). */
#include "manifest/internal.h"

#include "azure/azure.h"
#include "util/alloc.h"
#include "util/defaults.h"
#include "util/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR VHDUP__MANIFEST_ERROR
#define WARN VHDUP__MANIFEST_WARNING
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_CREDENTIALS 1000u
#define MAX_NAME 64u

typedef vhdup__mnode mnode;

/* ---- Keys ---- */

/* Settings: in defaults and in each upload (the upload's win). */
enum {
  S_PER_BLOB,
  S_MD5,
  S_CRC64,
  S_DISK_MD5,
  S_RESIZE,
  S_VERIFY,
  S_RETRIES,
  S_OVERWRITE,
  S_CREATE_CONTAINER,
  S_RESUME,
  S_FORMAT,
  S_MERGE_GAP,
  S_SERVICE_VERSION,
  S_ALLOW_HTTP,
  S_COUNT
};
#define SETTING_NAMES                                                                              \
  "per_blob_connections", "md5", "crc64", "disk_md5", "resize", "verify", "retries", "overwrite",  \
      "create_container", "resume", "format", "merge_gap", "service_version", "allow_http"

/* Shared by all uploads: defaults only. */
enum { D_CONNECTIONS = S_COUNT, D_MEMORY, D_CA_FILE, D_COUNT };
static const char *const defaults_keys[D_COUNT] = {SETTING_NAMES, "connections", "memory",
                                                   "ca_file"};
static const char *const *const engine_keys = defaults_keys + S_COUNT;

/* One upload's own. */
enum {
  U_SOURCE = S_COUNT,
  U_PARENT,
  U_JOURNAL,
  U_DESTINATION,
  U_CONTAINER,
  U_BLOB,
  U_CREDENTIAL,
  U_COUNT
};
static const char *const upload_keys[U_COUNT] = {
    SETTING_NAMES, "source", "parent", "journal", "destination", "container", "blob", "credential"};
static const char *const *const upload_only_keys = upload_keys + S_COUNT;

enum { T_VERSION, T_DEFAULTS, T_CREDENTIALS, T_UPLOADS, T_COUNT };
static const char *const top_keys[T_COUNT] = {"version", "defaults", "credentials", "uploads"};

enum { C_CONNSTR, C_ACCOUNT, C_KEY, C_SAS, C_ENDPOINT, C_COUNT };
static const char *const credential_keys[C_COUNT] = {"connection_string", "account", "key", "sas",
                                                     "endpoint"};

enum { R_ENV, R_FILE, R_COUNT };
static const char *const secret_keys[R_COUNT] = {"env", "file"};

static const char *const verify_names[] = {"none", "ranges", "content"};
/* In vhdup_format order. */
static const char *const format_names[] = {"auto", "vhd", "raw", "vhdx"};

/* ---- Small helpers ---- */

/* A value as it may appear in a message: printable, at most 60 bytes. */
static const char *shown(const char *s, char *buf, size_t size) {
  size_t i = 0, j = 0;
  for (; s[i] != '\0' && j + 4 < size && i < 60; i++)
    buf[j++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  if (s[i] != '\0' && j + 4 < size) {
    memcpy(buf + j, "...", 3);
    j += 3;
  }
  buf[j] = '\0';
  return buf;
}

static const char *kind_of(const mnode *n) {
  switch (n->type) {
  case VHDUP__MNODE_MAPPING:
    return "a mapping";
  case VHDUP__MNODE_SEQUENCE:
    return "a list";
  case VHDUP__MNODE_ALIAS:
    return "an alias";
  default:
    return "a single value";
  }
}

static int is_null(const mnode *n) {
  return n->type == VHDUP__MNODE_SCALAR && n->plain &&
         (n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
          strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0);
}

static int nomem(vhdup__mctx *c, const void *p) {
  if (p == NULL)
    c->nomem = 1;
  return p == NULL;
}

/* ---- Values ---- */

/* Each returns 0 with the value, or -1 after reporting why (aliases were
 * reported where they were met and stay silent here). */

static int want_scalar(vhdup__mctx *c, const mnode *n, const char *key) {
  if (n->type == VHDUP__MNODE_ALIAS)
    return -1;
  if (n->type != VHDUP__MNODE_SCALAR) {
    vhdup__mdiag(c, ERR, n->line, n->col, "'%s' takes a single value, not %s", key, kind_of(n));
    return -1;
  }
  return 0;
}

static int get_string(vhdup__mctx *c, const mnode *n, const char *key, const char **out) {
  if (want_scalar(c, n, key) != 0)
    return -1;
  if (is_null(n)) {
    vhdup__mdiag(c, ERR, n->line, n->col, "'%s' needs a value", key);
    return -1;
  }
  if (strlen(n->value) != n->len) {
    vhdup__mdiag(c, ERR, n->line, n->col, "'%s' contains a NUL character", key);
    return -1;
  }
  *out = n->value;
  return 0;
}

static int get_bool(vhdup__mctx *c, const mnode *n, const char *key, int *out) {
  static const char *const yes[] = {"true", "True", "TRUE"};
  static const char *const no[] = {"false", "False", "FALSE"};
  char buf[80];
  if (want_scalar(c, n, key) != 0)
    return -1;
  for (size_t i = 0; n->plain && i < 3; i++) {
    if (strcmp(n->value, yes[i]) == 0)
      return *out = 1, 0;
    if (strcmp(n->value, no[i]) == 0)
      return *out = 0, 0;
  }
  vhdup__mdiag(c, ERR, n->line, n->col, "'%s' takes true or false, not %s'%s'%s", key,
               n->plain ? "" : "the quoted ", shown(n->value, buf, sizeof(buf)),
               n->plain ? "" : " (leave out the quotes)");
  return -1;
}

static int get_uint(vhdup__mctx *c, const mnode *n, const char *key, unsigned min, unsigned max,
                    unsigned *out) {
  char buf[80];
  unsigned long v = 0;
  if (want_scalar(c, n, key) != 0)
    return -1;
  size_t i = 0;
  for (; i < n->len && i < 10 && n->value[i] >= '0' && n->value[i] <= '9'; i++)
    v = v * 10 + (unsigned long)(n->value[i] - '0');
  if (!n->plain || i == 0 || i != n->len || v < min || v > max) {
    vhdup__mdiag(c, ERR, n->line, n->col, "'%s' takes a whole number from %u to %u, not %s'%s'",
                 key, min, max, n->plain ? "" : "the quoted ", shown(n->value, buf, sizeof(buf)));
    return -1;
  }
  *out = (unsigned)v;
  return 0;
}

int vhdup__manifest_parse_size(const char *s, uint64_t *out) {
  char *end;
  if (s[0] < '0' || s[0] > '9')
    return VHDUP_EINVAL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0)
    return VHDUP_EINVAL;
  uint64_t mult = 1;
  if (*end == 'K' || *end == 'k')
    mult = 1024, end++;
  else if (*end == 'M' || *end == 'm')
    mult = 1024 * 1024, end++;
  else if (*end == 'G' || *end == 'g')
    mult = 1024ull * 1024 * 1024, end++;
  else if (*end == 'T' || *end == 't')
    mult = 1024ull * 1024 * 1024 * 1024, end++;
  if (mult > 1 && *end == 'i')
    end++;
  if (*end == 'B')
    end++;
  if (*end != '\0' || v > UINT64_MAX / mult)
    return VHDUP_EINVAL;
  *out = v * mult;
  return 0;
}

static int get_enum(vhdup__mctx *c, const mnode *n, const char *key, const char *const *names,
                    size_t count, int *out) {
  char buf[80];
  if (want_scalar(c, n, key) != 0)
    return -1;
  for (size_t i = 0; i < count; i++)
    if (strcmp(n->value, names[i]) == 0)
      return *out = (int)i, 0;
  char list[128];
  size_t len = 0;
  for (size_t i = 0; i < count && len < sizeof(list); i++)
    len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
                            i == 0           ? ""
                            : i + 1 == count ? " or "
                                             : ", ",
                            names[i]);
  const char *near = vhdup__suggest(n->value, names, count, 0);
  vhdup__mdiag(c, ERR, n->line, n->col, "'%s' takes %s, not '%s'%s%s%s", key, list,
               shown(n->value, buf, sizeof(buf)), near != NULL ? " (did you mean '" : "",
               near != NULL ? near : "", near != NULL ? "'?)" : "");
  return -1;
}

/* ---- Paths ---- */

/* Resolves p (written at n) against the home folder for "~/" and the
 * manifest's folder otherwise. NULL after reporting why. */
static const char *resolve_path(vhdup__mctx *c, const mnode *n, const char *key, const char *p) {
  const char *r;
  if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
    const char *home = c->env != NULL ? c->env->home : NULL;
    if (home == NULL || home[0] == '\0') {
      vhdup__mdiag(c, ERR, n->line, n->col, "'%s' starts with '~' but no home folder is known",
                   key);
      return NULL;
    }
    size_t hl = strlen(home);
    while (hl > 1 && home[hl - 1] == '/')
      hl--;
    r = p[1] == '\0' ? vhdup__marena_strndup(c->out, home, hl)
                     : vhdup__marena_printf(c->out, "%.*s/%s", (int)hl, home, p + 2);
  } else if (p[0] == '~') {
    vhdup__mdiag(c, ERR, n->line, n->col,
                 "'%s': '~user/' paths are not supported; write the whole path", key);
    return NULL;
  } else if (p[0] == '/' || c->base_dir == NULL || c->base_dir[0] == '\0' ||
             strcmp(c->base_dir, ".") == 0) {
    r = vhdup__marena_strndup(c->out, p, strlen(p));
  } else {
    size_t bl = strlen(c->base_dir);
    while (bl > 1 && c->base_dir[bl - 1] == '/')
      bl--;
    while (p[0] == '.' && p[1] == '/') {
      p += 2;
      while (p[0] == '/')
        p++;
    }
    if (p[0] == '\0' || strcmp(p, ".") == 0)
      r = vhdup__marena_strndup(c->out, c->base_dir, bl);
    else if (bl == 1 && c->base_dir[0] == '/')
      r = vhdup__marena_printf(c->out, "/%s", p);
    else
      r = vhdup__marena_printf(c->out, "%.*s/%s", (int)bl, c->base_dir, p);
  }
  if (nomem(c, r))
    return NULL;
  return r;
}

/* Reports a file the manifest needs that is not there. */
static void check_file(vhdup__mctx *c, const mnode *n, const char *what, const char *written,
                       const char *resolved) {
  char a[80], b[80];
  if (c->env == NULL || c->env->file_exists == NULL || c->env->file_exists(c->env->ctx, resolved))
    return;
  if (strcmp(written, resolved) == 0)
    vhdup__mdiag(c, ERR, n->line, n->col, "%s '%s' not found (or not a readable file)", what,
                 shown(written, a, sizeof(a)));
  else
    vhdup__mdiag(c, ERR, n->line, n->col,
                 "%s '%s' not found (or not a readable file; looked for '%s')", what,
                 shown(written, a, sizeof(a)), shown(resolved, b, sizeof(b)));
}

static const char *get_path(vhdup__mctx *c, const mnode *n, const char *key, const char *what,
                            int must_exist) {
  const char *p;
  if (get_string(c, n, key, &p) != 0)
    return NULL;
  const char *r = resolve_path(c, n, key, p);
  if (r != NULL && must_exist)
    check_file(c, n, what, p, r);
  return r;
}

/* ---- Mappings ---- */

/* What a mapping may hold, and the keys that belong somewhere else (with
 * the sentence that says where). */
typedef struct keyset {
  const char *where; /* "defaults", "credential 'prod'", ... */
  const char *const *names;
  size_t count;
  const char *const *elsewhere;
  size_t elsewhere_count;
  const char *elsewhere_why;
  int hide_long; /* do not echo long unknown keys: they may be pasted secrets */
} keyset;

/* Fills keys[i]/values[i] with the pair of names[i] (or NULL), reporting
 * keys that are not scalars, unknown, or given twice. */
static unsigned read_keys(vhdup__mctx *c, const mnode *map, const keyset *ks, const mnode **keys,
                          const mnode **values) {
  char buf[80];
  unsigned unknown = 0;
  for (size_t i = 0; i < ks->count; i++)
    keys[i] = values[i] = NULL;
  for (const mnode *k = vhdup__mnode_first(map), *v; k != NULL && (v = vhdup__mnode_next(map, k));
       k = vhdup__mnode_next(map, v)) {
    if (k->type == VHDUP__MNODE_ALIAS)
      continue;
    if (k->type != VHDUP__MNODE_SCALAR) {
      vhdup__mdiag(c, ERR, k->line, k->col, "a key in %s must be a plain word, not %s", ks->where,
                   kind_of(k));
      continue;
    }
    size_t i = 0;
    while (i < ks->count && strcmp(k->value, ks->names[i]) != 0)
      i++;
    if (i < ks->count) {
      if (keys[i] != NULL)
        vhdup__mdiag(c, ERR, k->line, k->col, "duplicate key '%s' in %s (first at %u:%u)",
                     ks->names[i], ks->where, keys[i]->line, keys[i]->col);
      else
        keys[i] = k, values[i] = v;
      continue;
    }
    for (size_t j = 0; j < ks->elsewhere_count; j++)
      if (strcmp(k->value, ks->elsewhere[j]) == 0) {
        vhdup__mdiag(c, ERR, k->line, k->col, "'%s' %s", ks->elsewhere[j], ks->elsewhere_why);
        unknown++;
        goto next;
      }
    unknown++;
    if (strcmp(k->value, "<<") == 0) {
      vhdup__mdiag(c, ERR, k->line, k->col,
                   "merge keys ('<<') are not supported: settings shared by all uploads go under "
                   "'defaults'");
      continue;
    }
    if (ks->hide_long && (k->len > 24 || strpbrk(k->value, "=;&?") != NULL)) {
      vhdup__mdiag(c, ERR, k->line, k->col, "unknown key in %s (not shown: it may be a secret)",
                   ks->where);
      continue;
    }
    const char *near = vhdup__suggest(k->value, ks->names, ks->count, 0);
    if (near != NULL) {
      vhdup__mdiag(c, ERR, k->line, k->col, "unknown key '%s' in %s (did you mean '%s'?)",
                   shown(k->value, buf, sizeof(buf)), ks->where, near);
    } else if (ks->count <= 5) {
      char list[256] = "";
      for (size_t j = 0; j < ks->count; j++) {
        strcat(list, j == 0 ? "" : j + 1 == ks->count ? " or " : ", ");
        strcat(list, ks->names[j]);
      }
      vhdup__mdiag(c, ERR, k->line, k->col, "unknown key '%s' in %s (expected %s)",
                   shown(k->value, buf, sizeof(buf)), ks->where, list);
    } else {
      vhdup__mdiag(c, ERR, k->line, k->col, "unknown key '%s' in %s",
                   shown(k->value, buf, sizeof(buf)), ks->where);
    }
  next:;
  }
  return unknown;
}

/* 0 for a mapping, 1 for an empty value (allowed where empty means "none"),
 * -1 after reporting what it is instead. */
static int want_mapping(vhdup__mctx *c, const mnode *n, const char *what, const char *hint) {
  if (n->type == VHDUP__MNODE_MAPPING)
    return 0;
  if (is_null(n))
    return 1;
  if (n->type != VHDUP__MNODE_ALIAS)
    vhdup__mdiag(c, ERR, n->line, n->col, "%s must be a mapping%s, not %s", what, hint, kind_of(n));
  return -1;
}

/* ---- Settings ---- */

typedef struct layer {
  vhdup__manifest_settings v;
  unsigned set; /* 1 << S_... for each key given */
  const mnode *per_blob_at;
} layer;

static void settings_init(vhdup__manifest_settings *s) {
  memset(s, 0, sizeof(*s));
  s->md5 = 1;
  s->resize = 1;
  s->verify = VHDUP_VERIFY_NONE;
  s->format = VHDUP_FORMAT_AUTO;
  s->retries = VHDUP__DEFAULT_MAX_ATTEMPTS;
  s->merge_gap = VHDUP__DEFAULT_MERGE_GAP;
}

static int valid_version_date(const char *s) {
  static const char shape[] = "dddd-dd-dd";
  if (strlen(s) != sizeof(shape) - 1)
    return 0;
  for (size_t i = 0; shape[i] != '\0'; i++)
    if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
      return 0;
  return 1;
}

/* The field of a true/false setting, NULL for the others. */
static int *bool_setting(vhdup__manifest_settings *v, unsigned i) {
  switch (i) {
  case S_MD5:
    return &v->md5;
  case S_CRC64:
    return &v->crc64;
  case S_DISK_MD5:
    return &v->disk_md5;
  case S_RESIZE:
    return &v->resize;
  case S_OVERWRITE:
    return &v->overwrite;
  case S_CREATE_CONTAINER:
    return &v->create_container;
  case S_RESUME:
    return &v->resume;
  case S_ALLOW_HTTP:
    return &v->allow_http;
  default:
    return NULL;
  }
}

static int get_merge_gap(vhdup__mctx *c, const mnode *n, const char *key, size_t *out) {
  char buf[80];
  uint64_t size = 0;
  int ok = want_scalar(c, n, key);
  if (ok == 0 && (vhdup__manifest_parse_size(n->value, &size) != 0 || size % 512 != 0 ||
                  size > 4u * 1024 * 1024)) {
    vhdup__mdiag(c, ERR, n->line, n->col,
                 "'merge_gap' takes a multiple of 512 up to 4M (e.g. 64K), not '%s'",
                 shown(n->value, buf, sizeof(buf)));
    ok = -1;
  }
  if (ok == 0)
    *out = (size_t)size;
  return ok;
}

static int get_service_version(vhdup__mctx *c, const mnode *n, const char *key, const char **out) {
  char buf[80];
  int ok = get_string(c, n, key, out);
  if (ok == 0 && !valid_version_date(*out)) {
    vhdup__mdiag(c, ERR, n->line, n->col,
                 "'service_version' takes an x-ms-version date like 2021-08-06, not '%s'",
                 shown(n->value, buf, sizeof(buf)));
    ok = -1;
  }
  if (ok == 0 && nomem(c, *out = vhdup__marena_strndup(c->out, *out, strlen(*out))))
    ok = -1;
  return ok;
}

/* Setting i, written as n, into l->v. Returns 0, or -1 after reporting. */
static int read_setting(vhdup__mctx *c, unsigned i, const mnode *n, layer *l) {
  const char *key = defaults_keys[i];
  int *flag = bool_setting(&l->v, i);
  int ok = -1, e = 0;
  if (flag != NULL)
    return get_bool(c, n, key, flag);
  switch (i) {
  case S_PER_BLOB:
    ok = get_uint(c, n, key, 1, VHDUP__MAX_CONNECTIONS, &l->v.per_blob_connections);
    l->per_blob_at = n;
    break;
  case S_VERIFY:
    ok = get_enum(c, n, key, verify_names, COUNT_OF(verify_names), &e);
    if (ok == 0)
      l->v.verify = (vhdup_verify)e;
    break;
  case S_FORMAT:
    ok = get_enum(c, n, key, format_names, COUNT_OF(format_names), &e);
    if (ok == 0)
      l->v.format = (vhdup_format)e;
    break;
  case S_RETRIES:
    ok = get_uint(c, n, key, 1, 100, &l->v.retries);
    break;
  case S_MERGE_GAP:
    ok = get_merge_gap(c, n, key, &l->v.merge_gap);
    break;
  case S_SERVICE_VERSION:
    ok = get_service_version(c, n, key, &l->v.service_version);
    break;
  default:
    break;
  }
  return ok;
}

static void read_settings(vhdup__mctx *c, const mnode *const *values, layer *l) {
  memset(l, 0, sizeof(*l));
  for (unsigned i = 0; i < S_COUNT; i++)
    if (values[i] != NULL && read_setting(c, i, values[i], l) == 0)
      l->set |= 1u << i;
  if ((l->set & (1u << S_MD5)) && (l->set & (1u << S_CRC64)) && l->v.md5 && l->v.crc64)
    vhdup__mdiag(c, ERR, values[S_CRC64]->line, values[S_CRC64]->col,
                 "'md5' and 'crc64' are both true: each request carries one checksum, pick one");
}

/* base with the keys given in l applied. crc64 on turns md5 off (and the
 * other way round), so a more specific level can switch checksums. */
static void apply_settings(vhdup__manifest_settings *base, const layer *l) {
  const vhdup__manifest_settings *v = &l->v;
#define TAKE(bit, field)                                                                           \
  if (l->set & (1u << (bit)))                                                                      \
  base->field = v->field
  TAKE(S_PER_BLOB, per_blob_connections);
  TAKE(S_MD5, md5);
  TAKE(S_CRC64, crc64);
  TAKE(S_DISK_MD5, disk_md5);
  TAKE(S_RESIZE, resize);
  TAKE(S_VERIFY, verify);
  TAKE(S_RETRIES, retries);
  TAKE(S_OVERWRITE, overwrite);
  TAKE(S_CREATE_CONTAINER, create_container);
  TAKE(S_RESUME, resume);
  TAKE(S_FORMAT, format);
  TAKE(S_MERGE_GAP, merge_gap);
  TAKE(S_SERVICE_VERSION, service_version);
  TAKE(S_ALLOW_HTTP, allow_http);
#undef TAKE
  if ((l->set & (1u << S_CRC64)) && v->crc64 && !(l->set & (1u << S_MD5)))
    base->md5 = 0;
  if ((l->set & (1u << S_MD5)) && v->md5 && !(l->set & (1u << S_CRC64)))
    base->crc64 = 0;
}

static void check_per_blob(vhdup__mctx *c, const layer *l, unsigned connections) {
  if (l->per_blob_at != NULL && (l->set & (1u << S_PER_BLOB)) &&
      l->v.per_blob_connections > connections)
    vhdup__mdiag(c, WARN, l->per_blob_at->line, l->per_blob_at->col,
                 "per_blob_connections %u is more than connections %u: at most %u are used",
                 l->v.per_blob_connections, connections, connections);
}

/* ---- URLs ---- */

/* Destinations and endpoints are parsed by src/azure (url.c), the code that
 * `vhdup upload` and the library run, so a manifest accepts exactly the
 * URLs an upload would: schemes in any case, http:// only to loopback
 * unless allow_http, IPv6 hosts, ports, emulator path style. Its messages
 * come back as "FIELD: MESSAGE" at the key's position; they never quote a
 * SAS signature. */

static unsigned url_flags(int allow_http) {
  return allow_http ? VHDUP__AZ_URL_ALLOW_HTTP : 0u;
}

/* Reports what src/azure said about a value written at n. */
static void az_diag(vhdup__mctx *c, const mnode *n, const char *field, int rc,
                    const vhdup__err *e) {
  if (rc == VHDUP_ENOMEM)
    c->nomem = 1;
  else
    vhdup__mdiag(c, ERR, n->line, n->col, "%s: %s", field, e->msg);
}

/* A blob URL written at n: 0 with *u (free it), or -1 after reporting. */
static int parse_url(vhdup__mctx *c, const mnode *n, const char *field, const char *url,
                     int allow_http, vhdup__az_url *u) {
  vhdup__err e;
  vhdup__err_clear(&e);
  int rc = vhdup__az_url_parse(url, url_flags(allow_http), u, &e);
  if (rc != 0)
    az_diag(c, n, field, rc, &e);
  return rc == 0 ? 0 : -1;
}

/* CONTAINER/BLOB placed under an endpoint, as the library places it. */
static int join_url(vhdup__mctx *c, const mnode *n, const char *field, const char *endpoint,
                    const char *container, const char *blob, int allow_http, vhdup__az_url *u) {
  vhdup__err e;
  vhdup__err_clear(&e);
  const char *path = vhdup__marena_printf(c->tree, "%s/%s", container, blob);
  if (nomem(c, path))
    return -1;
  int rc = vhdup__az_url_join(endpoint, path, url_flags(allow_http), u, &e);
  if (rc != 0)
    az_diag(c, n, field, rc, &e);
  return rc == 0 ? 0 : -1;
}

/* The identity of a destination, for finding two uploads into one blob:
 * the host (lowercased by the parser), an explicit port, the account when
 * it is in the path, the container and the blob as they go on the wire
 * (percent-encoded alike). Scheme and query do not matter. */
static const char *url_identity(vhdup__mctx *c, const vhdup__az_url *u) {
  char port[8] = "";
  if (u->port_explicit)
    snprintf(port, sizeof(port), ":%u", (unsigned)u->port);
  const char *id = u->path_style ? vhdup__marena_printf(c->tree, "%s%s/%s/%s/%s", u->host, port,
                                                        u->account, u->container, u->blob)
                                 : vhdup__marena_printf(c->tree, "%s%s/%s/%s", u->host, port,
                                                        u->container, u->blob);
  return nomem(c, id) ? NULL : id;
}

/* ---- Credentials ---- */

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
      return 0;
  return 1;
}

static int valid_env_name(const char *s) {
  if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
    return 0;
  for (size_t i = 1; s[i] != '\0'; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      return 0;
  return strlen(s) <= 255;
}

/* A secret: inline text (warned about, never echoed), { env: NAME } or
 * { file: PATH }. Returns 0 or -1. */
static int read_secret(vhdup__mctx *c, const mnode *n, const char *cred, const char *key,
                       vhdup__manifest_secret *out) {
  char where[MAX_NAME + 40];
  memset(out, 0, sizeof(*out));
  out->file = c->file;
  out->line = n->line;
  out->col = n->col;
  if (n->type == VHDUP__MNODE_ALIAS)
    return -1;
  if (n->type == VHDUP__MNODE_SCALAR) {
    if (is_null(n)) {
      vhdup__mdiag(c, ERR, n->line, n->col, "'%s' of credential '%s' needs a value", key, cred);
      return -1;
    }
    if (strlen(n->value) != n->len) {
      vhdup__mdiag(c, ERR, n->line, n->col, "'%s' of credential '%s' contains a NUL character", key,
                   cred);
      return -1;
    }
    vhdup__mdiag(c, WARN, n->line, n->col,
                 "the %s of credential '%s' is written inline: anyone who can read this file can "
                 "use it; prefer { env: NAME } or { file: PATH }",
                 key, cred);
    const char *v = n->value;
    if (strcmp(key, "sas") == 0 && v[0] == '?')
      v++;
    out->kind = VHDUP__MANIFEST_SECRET_INLINE;
    out->value = vhdup__marena_strndup(c->out, v, strlen(v));
    return nomem(c, out->value) ? -1 : 0;
  }
  if (n->type != VHDUP__MNODE_MAPPING) {
    vhdup__mdiag(c, ERR, n->line, n->col,
                 "'%s' of credential '%s' takes a string, { env: NAME } or { file: PATH }, not %s",
                 key, cred, kind_of(n));
    return -1;
  }
  const mnode *keys[R_COUNT], *values[R_COUNT];
  snprintf(where, sizeof(where), "the %s of credential '%s'", key, cred);
  keyset ks = {where, secret_keys, R_COUNT, NULL, 0, NULL, 1};
  unsigned unknown = read_keys(c, n, &ks, keys, values);
  if (values[R_ENV] == NULL && values[R_FILE] == NULL && unknown > 0)
    return -1;
  if ((values[R_ENV] == NULL) == (values[R_FILE] == NULL)) {
    const mnode *at = values[R_FILE] != NULL ? keys[R_FILE] : n;
    vhdup__mdiag(c, ERR, at->line, at->col, "%s takes one of { env: NAME } or { file: PATH }",
                 where);
    return -1;
  }
  if (values[R_ENV] != NULL) {
    const mnode *v = values[R_ENV];
    const char *name;
    char buf[80];
    if (get_string(c, v, "env", &name) != 0)
      return -1;
    if (!valid_env_name(name)) {
      vhdup__mdiag(c, ERR, v->line, v->col, "'%s' is not an environment variable name",
                   shown(name, buf, sizeof(buf)));
      return -1;
    }
    out->kind = VHDUP__MANIFEST_SECRET_ENV;
    out->value = vhdup__marena_strndup(c->out, name, strlen(name));
    out->line = v->line;
    out->col = v->col;
    return nomem(c, out->value) ? -1 : 0;
  }
  const mnode *v = values[R_FILE];
  char what[MAX_NAME + 40];
  snprintf(what, sizeof(what), "%s file of credential '%s'", key, cred);
  out->kind = VHDUP__MANIFEST_SECRET_FILE;
  out->value = get_path(c, v, "file", what, 1);
  out->line = v->line;
  out->col = v->col;
  return out->value == NULL ? -1 : 0;
}

/* An inline connection string, parsed as the library will parse it (its
 * messages name keys, never the AccountKey or SharedAccessSignature). */
static void check_connstr(vhdup__mctx *c, const mnode *n, const char *cs) {
  vhdup__az_cred cred;
  vhdup__err e;
  vhdup__err_clear(&e);
  int rc = vhdup__az_connstr_parse(cs, &cred, &e);
  if (rc != 0)
    az_diag(c, n, "'connection_string'", rc, &e);
  else
    vhdup__az_cred_free(&cred);
}

static void read_credential(vhdup__mctx *c, const mnode *name_node, const mnode *map,
                            vhdup__manifest_credential *cr) {
  const char *name = cr->name;
  char where[MAX_NAME + 20], buf[80];
  int r =
      want_mapping(c, map, "a credential", " (connection_string:, account: with key:, or sas:)");
  if (r != 0) {
    if (r == 1)
      vhdup__mdiag(c, ERR, name_node->line, name_node->col, "credential '%s' is empty", name);
    return;
  }
  const mnode *keys[C_COUNT], *values[C_COUNT];
  snprintf(where, sizeof(where), "credential '%s'", name);
  keyset ks = {where, credential_keys, C_COUNT, NULL, 0, NULL, 1};
  unsigned unknown = read_keys(c, map, &ks, keys, values);

  static const int kinds[] = {C_CONNSTR, C_KEY, C_SAS};
  const mnode *first = NULL;
  int kind = -1;
  for (size_t i = 0; i < COUNT_OF(kinds); i++) {
    if (keys[kinds[i]] == NULL)
      continue;
    if (first != NULL) {
      vhdup__mdiag(c, ERR, keys[kinds[i]]->line, keys[kinds[i]]->col,
                   "credential '%s' has both '%s' and '%s': give one", name, first->value,
                   credential_keys[kinds[i]]);
      return;
    }
    first = keys[kinds[i]];
    kind = kinds[i];
  }
  if (kind < 0) {
    if (unknown > 0)
      return; /* a misspelt key, already reported */
    vhdup__mdiag(c, ERR, map->line, map->col,
                 "credential '%s' needs connection_string, key (with account) or sas", name);
    return;
  }
  cr->kind = kind == C_CONNSTR ? VHDUP__MANIFEST_CRED_CONNECTION_STRING
             : kind == C_KEY   ? VHDUP__MANIFEST_CRED_SHARED_KEY
                               : VHDUP__MANIFEST_CRED_SAS;
  if (kind == C_CONNSTR) {
    static const int extra[] = {C_ACCOUNT, C_ENDPOINT};
    for (size_t j = 0; j < COUNT_OF(extra); j++) {
      int i = extra[j];
      if (keys[i] != NULL)
        vhdup__mdiag(c, ERR, keys[i]->line, keys[i]->col,
                     "'%s' does not go with connection_string, which names the account and its "
                     "endpoint",
                     credential_keys[i]);
    }
  }
  if (values[C_ACCOUNT] != NULL && get_string(c, values[C_ACCOUNT], "account", &cr->account) == 0) {
    if (!vhdup__az_account_name_valid(cr->account)) {
      vhdup__mdiag(c, ERR, values[C_ACCOUNT]->line, values[C_ACCOUNT]->col,
                   "'%s' is not a storage account name (3 to 24 lowercase letters and digits)",
                   shown(cr->account, buf, sizeof(buf)));
      cr->account = NULL;
    } else if (nomem(c, cr->account =
                            vhdup__marena_strndup(c->out, cr->account, strlen(cr->account)))) {
      return;
    }
  }
  if (kind == C_KEY && keys[C_ACCOUNT] == NULL)
    vhdup__mdiag(c, ERR, map->line, map->col, "credential '%s': a key needs 'account' too", name);
  if (values[C_ENDPOINT] != NULL) {
    /* Checked as the library will use it: with a container and blob
     * joined on. http:// is for each upload's allow_http to decide. */
    const mnode *v = values[C_ENDPOINT];
    const char *e;
    vhdup__az_url u;
    if (get_string(c, v, "endpoint", &e) == 0 &&
        join_url(c, v, "'endpoint'", e, "container", "blob", 1, &u) == 0) {
      vhdup__az_url_free(&u);
      size_t l = strlen(e);
      while (l > 0 && e[l - 1] == '/')
        l--;
      if (nomem(c, cr->endpoint = vhdup__marena_strndup(c->out, e, l)))
        return;
    }
  }
  if (read_secret(c, values[kind], name, credential_keys[kind], &cr->secret) == 0 &&
      kind == C_CONNSTR && cr->secret.kind == VHDUP__MANIFEST_SECRET_INLINE)
    check_connstr(c, values[kind], cr->secret.value);
}

static const vhdup__manifest_credential *find_credential(const vhdup__manifest *m, const char *name,
                                                         size_t *index) {
  for (size_t i = 0; i < m->credential_count; i++)
    if (strcmp(m->credentials[i].name, name) == 0) {
      if (index != NULL)
        *index = i;
      return &m->credentials[i];
    }
  return NULL;
}

static void read_credentials(vhdup__mctx *c, const mnode *map, vhdup__manifest *m) {
  char buf[80];
  if (want_mapping(c, map, "'credentials'", " of names to credentials") != 0) {
    c->credentials_broken = !is_null(map);
    return;
  }
  size_t n = map->count / 2;
  if (n > MAX_CREDENTIALS) {
    vhdup__mdiag(c, ERR, map->line, map->col, "%zu credentials; the limit is %u", n,
                 MAX_CREDENTIALS);
    c->credentials_broken = 1;
    return;
  }
  m->credentials = vhdup__marena_alloc(c->out, n * sizeof(*m->credentials));
  if (nomem(c, m->credentials))
    return;
  for (const mnode *k = vhdup__mnode_first(map), *v; k != NULL && (v = vhdup__mnode_next(map, k));
       k = vhdup__mnode_next(map, v)) {
    const char *name;
    if (k->type == VHDUP__MNODE_ALIAS) {
      c->credentials_broken = 1;
      continue;
    }
    if (k->type != VHDUP__MNODE_SCALAR || is_null(k)) {
      vhdup__mdiag(c, ERR, k->line, k->col, "a credential's name must be a plain word, not %s",
                   is_null(k) ? "empty" : kind_of(k));
      c->credentials_broken = 1;
      continue;
    }
    name = k->value;
    if (!valid_name(name) || strlen(name) != k->len) {
      vhdup__mdiag(c, ERR, k->line, k->col,
                   "'%s' is not a credential name (letters, digits, '_', '-', '.'; up to %u)",
                   shown(name, buf, sizeof(buf)), MAX_NAME);
      c->credentials_broken = 1;
      continue;
    }
    const vhdup__manifest_credential *first = find_credential(m, name, NULL);
    if (first != NULL) {
      vhdup__mdiag(c, ERR, k->line, k->col, "duplicate credential '%s' (first at %u:%u)", name,
                   first->line, first->col);
      continue;
    }
    vhdup__manifest_credential *cr = &m->credentials[m->credential_count++];
    cr->line = k->line;
    cr->col = k->col;
    cr->name = vhdup__marena_strndup(c->out, name, k->len);
    if (nomem(c, cr->name))
      return;
    unsigned errors = c->errors;
    read_credential(c, k, v, cr);
    if (c->errors != errors)
      cr->kind = 0; /* reported; uploads naming it say nothing more */
  }
}

/* ---- Uploads ---- */

/* Where each upload writes, for the duplicate check. */
typedef struct dest_id {
  const char *id;   /* NULL when the destination was invalid */
  const char *text; /* for messages: the URL without its query */
  unsigned line, col;
  size_t index;
} dest_id;

static int valid_container(const char *s) {
  size_t n = strlen(s);
  if (strcmp(s, "$root") == 0)
    return 1;
  if (n < 3 || n > 63 || s[0] == '-' || s[n - 1] == '-')
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
          (s[i] == '-' && s[i + 1] != '-')))
      return 0;
  return 1;
}

/* The identity of CONTAINER/BLOB under a connection string: where its
 * endpoint puts them when the string is inline, else "the same credential
 * name" (the string is not read while checking). NULL after reporting. */
static const char *connstr_identity(vhdup__mctx *c, const mnode *n,
                                    const vhdup__manifest_credential *cr, const char *container,
                                    const char *blob, int allow_http) {
  if (cr->secret.kind != VHDUP__MANIFEST_SECRET_INLINE) {
    const char *id =
        vhdup__marena_printf(c->tree, "credential:%s/%s/%s", cr->name, container, blob);
    return nomem(c, id) ? NULL : id;
  }
  vhdup__az_cred cred;
  vhdup__az_url u;
  const char *id = NULL;
  int rc = vhdup__az_connstr_parse(cr->secret.value, &cred, NULL);
  if (rc != 0) {
    c->nomem |= rc == VHDUP_ENOMEM;
    return NULL; /* anything else was reported with the credential */
  }
  if (join_url(c, n, "the destination", cred.blob_endpoint, container, blob, allow_http, &u) == 0) {
    id = url_identity(c, &u);
    vhdup__az_url_free(&u);
  }
  vhdup__az_cred_free(&cred);
  return id;
}

static void unknown_credential(vhdup__mctx *c, const vhdup__manifest *m, const mnode *n,
                               const char *name) {
  char buf[80];
  const char *names[MAX_CREDENTIALS] = {NULL};
  if (c->credentials_broken)
    return;
  for (size_t i = 0; i < m->credential_count; i++)
    names[i] = m->credentials[i].name;
  const char *near = vhdup__suggest(name, names, m->credential_count, 0);
  if (near != NULL)
    vhdup__mdiag(c, ERR, n->line, n->col, "no credential named '%s' (did you mean '%s'?)",
                 shown(name, buf, sizeof(buf)), near);
  else if (m->credential_count == 0)
    vhdup__mdiag(c, ERR, n->line, n->col,
                 "no credential named '%s' (the manifest has no 'credentials')",
                 shown(name, buf, sizeof(buf)));
  else
    vhdup__mdiag(c, ERR, n->line, n->col, "no credential named '%s' under 'credentials'",
                 shown(name, buf, sizeof(buf)));
}

/* A destination given as a URL: parsed as `vhdup upload` parses it. A
 * query is the URL's own credential, as in the library (a credential named
 * too goes unused); a signature in it is a secret written into the file. */
static void read_destination_url(vhdup__mctx *c, vhdup__manifest_upload *up, const mnode *dn,
                                 const mnode *cred_key, const char *url, dest_id *dest) {
  const vhdup__manifest_credential *cr = up->credential;
  vhdup__az_url u;
  if (parse_url(c, dn, "'destination'", url, up->settings.allow_http, &u) != 0)
    return;
  if (vhdup__az_query_has_sig(u.sas))
    vhdup__mdiag(c, WARN, dn->line, dn->col,
                 "the destination carries a SAS signature inline: anyone who can read this file "
                 "can write to the blob; prefer a credential with sas: { env: NAME }");
  if (u.sas != NULL && cr != NULL)
    vhdup__mdiag(c, WARN, cred_key->line, cred_key->col,
                 "credential '%s' is not used: the destination's own SAS is", cr->name);
  if (u.sas == NULL && cr == NULL && cred_key == NULL)
    vhdup__mdiag(c, ERR, dn->line, dn->col,
                 "the destination has no SAS and the upload names no 'credential'");
  if (u.sas == NULL && cr != NULL && cr->kind == VHDUP__MANIFEST_CRED_SHARED_KEY &&
      cr->account != NULL && strcmp(u.account, cr->account) != 0)
    vhdup__mdiag(c, ERR, cred_key->line, cred_key->col,
                 "credential '%s' is for account '%s', but the destination is in account '%.30s'",
                 cr->name, cr->account, u.account);
  up->destination = vhdup__marena_strndup(c->out, url, strlen(url));
  dest->id = url_identity(c, &u);
  dest->text = vhdup__marena_printf(c->tree, "%.*s", (int)strcspn(url, "?"), url);
  dest->line = dn->line;
  dest->col = dn->col;
  vhdup__az_url_free(&u);
  if (!nomem(c, up->destination))
    nomem(c, dest->text);
}

/* One upload's mapping as read_keys found it. */
typedef struct upload_map {
  const mnode *map;
  size_t index;
  const mnode *keys[U_COUNT], *values[U_COUNT];
  unsigned unknown; /* unknown keys: a missing key is likely one of them */
} upload_map;

/* source, parent, journal. A missing source after an unknown key is most
 * likely the same typo: reported once. */
static void read_upload_paths(vhdup__mctx *c, vhdup__manifest_upload *up, const upload_map *um) {
  const mnode *const *values = um->values;
  if (values[U_SOURCE] == NULL && um->unknown == 0)
    vhdup__mdiag(c, ERR, um->map->line, um->map->col,
                 "upload %zu has no 'source' (the disk to upload)", um->index + 1);
  else if (values[U_SOURCE] != NULL)
    up->source = get_path(c, values[U_SOURCE], "source", "source", 1);
  if (values[U_PARENT] != NULL)
    up->parent = get_path(c, values[U_PARENT], "parent", "parent", 1);
  if (values[U_JOURNAL] != NULL)
    up->journal = get_path(c, values[U_JOURNAL], "journal", "journal", 0);
}

/* The credential the upload names (marked used), NULL when none is named,
 * none has that name, or the one named was reported broken. */
static const vhdup__manifest_credential *read_upload_credential(vhdup__mctx *c,
                                                                const vhdup__manifest *m,
                                                                const mnode *n,
                                                                unsigned char *used) {
  const vhdup__manifest_credential *cr = NULL;
  const char *s;
  size_t ci;
  if (n == NULL || get_string(c, n, "credential", &s) != 0)
    return NULL;
  cr = find_credential(m, s, &ci);
  if (cr == NULL)
    unknown_credential(c, m, n, s);
  else
    used[ci] = 1;
  if (cr != NULL && cr->kind == 0)
    cr = NULL;
  return cr;
}

/* 'container' and 'blob' as Azure names them. Returns 0 with both, or -1
 * (after reporting what was wrong). */
static int get_container_blob(vhdup__mctx *c, const mnode *cn, const mnode *bn,
                              const char **container, const char **blob) {
  char buf[80];
  int bad = 0;
  if (get_string(c, cn, "container", container) == 0 && !valid_container(*container)) {
    vhdup__mdiag(c, ERR, cn->line, cn->col,
                 "'%s' is not a container name (3 to 63 lowercase letters, digits and single "
                 "hyphens)",
                 shown(*container, buf, sizeof(buf)));
    bad = 1;
  }
  if (get_string(c, bn, "blob", blob) == 0) {
    const char *b = *blob;
    if (strlen(b) > 1024 || strpbrk(b, "?#\\") != NULL || b[0] == '/' || b[strlen(b) - 1] == '/') {
      vhdup__mdiag(c, ERR, bn->line, bn->col,
                   "'blob' must be 1 to 1024 characters without '?', '#' or '\\', not starting or "
                   "ending with '/'");
      bad = 1;
    } else {
      for (const char *p = b; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
          vhdup__mdiag(c, ERR, bn->line, bn->col, "'blob' contains a control character");
          bad = 1;
          break;
        }
    }
  }
  return bad || *container == NULL || *blob == NULL ? -1 : 0;
}

/* CONTAINER/BLOB under a connection string: the library joins them onto
 * the string's endpoint (vhdup_job_options.target.url). */
static void place_under_connstr(vhdup__mctx *c, vhdup__manifest_upload *up, const mnode *cn,
                                const char *container, const char *blob, dest_id *dest) {
  const vhdup__manifest_credential *cr = up->credential;
  up->destination = vhdup__marena_printf(c->out, "%s/%s", container, blob);
  dest->text = vhdup__marena_printf(c->tree, "%s/%s (credential '%s')", container, blob, cr->name);
  if (nomem(c, up->destination) || nomem(c, dest->text))
    return;
  dest->id = connstr_identity(c, cn, cr, container, blob, up->settings.allow_http);
}

/* CONTAINER/BLOB under the credential's endpoint: Azure's public one
 * unless the credential names another. */
static void place_under_endpoint(vhdup__mctx *c, vhdup__manifest_upload *up, const mnode *cn,
                                 const mnode *cred_value, const char *container, const char *blob,
                                 dest_id *dest) {
  const vhdup__manifest_credential *cr = up->credential;
  const char *endpoint = cr->endpoint;
  if (endpoint == NULL && cr->account != NULL &&
      nomem(c, endpoint =
                   vhdup__marena_printf(c->tree, "https://%s.blob.core.windows.net", cr->account)))
    return;
  if (endpoint == NULL) {
    vhdup__mdiag(c, ERR, cred_value->line, cred_value->col,
                 "credential '%s' names no account or endpoint, so 'container' and 'blob' cannot "
                 "be placed: add 'account' to it, or give 'destination' as a URL",
                 cr->name);
    return;
  }
  vhdup__az_url u;
  if (join_url(c, cn, "the destination", endpoint, container, blob, up->settings.allow_http, &u) !=
      0)
    return;
  up->destination = vhdup__marena_printf(c->out, "%s/%s/%s", endpoint, container, blob);
  dest->text = up->destination;
  dest->id = url_identity(c, &u);
  vhdup__az_url_free(&u);
  nomem(c, up->destination);
}

/* A destination given as 'container' and 'blob'. */
static void read_container_blob(vhdup__mctx *c, vhdup__manifest_upload *up, const upload_map *um,
                                dest_id *dest) {
  const mnode *cn = um->values[U_CONTAINER], *bn = um->values[U_BLOB];
  const char *container = NULL, *blob = NULL;
  if (cn == NULL || bn == NULL) {
    const mnode *k = um->keys[cn != NULL ? U_CONTAINER : U_BLOB];
    vhdup__mdiag(c, ERR, k->line, k->col, "'%s' needs '%s' too", cn != NULL ? "container" : "blob",
                 cn != NULL ? "blob" : "container");
    return;
  }
  if (get_container_blob(c, cn, bn, &container, &blob) != 0)
    return;
  up->container = vhdup__marena_strndup(c->out, container, strlen(container));
  up->blob = vhdup__marena_strndup(c->out, blob, strlen(blob));
  if (nomem(c, up->container) || nomem(c, up->blob))
    return;
  if (up->credential == NULL) {
    if (um->values[U_CREDENTIAL] == NULL)
      vhdup__mdiag(c, ERR, cn->line, cn->col,
                   "'container' and 'blob' need a 'credential' (which names the account)");
    return;
  }
  dest->line = cn->line;
  dest->col = cn->col;
  if (up->credential->kind == VHDUP__MANIFEST_CRED_CONNECTION_STRING)
    place_under_connstr(c, up, cn, container, blob, dest);
  else
    place_under_endpoint(c, up, cn, um->values[U_CREDENTIAL], container, blob, dest);
}

/* 'destination', or 'container' and 'blob': one of the two. */
static void read_upload_destination(vhdup__mctx *c, vhdup__manifest_upload *up,
                                    const upload_map *um, dest_id *dest) {
  const mnode *dn = um->values[U_DESTINATION], *cn = um->values[U_CONTAINER],
              *bn = um->values[U_BLOB];
  if (dn != NULL && (cn != NULL || bn != NULL)) {
    const mnode *k = um->keys[cn != NULL ? U_CONTAINER : U_BLOB];
    vhdup__mdiag(c, ERR, k->line, k->col,
                 "give either 'destination' (a blob URL) or 'container' and 'blob', not both");
    return;
  }
  if (dn == NULL && cn == NULL && bn == NULL) {
    if (um->unknown > 0)
      return;
    vhdup__mdiag(c, ERR, um->map->line, um->map->col,
                 "upload %zu has no 'destination' (a blob URL) and no 'container' and 'blob'",
                 um->index + 1);
    return;
  }
  if (dn != NULL) {
    const char *url;
    if (get_string(c, dn, "destination", &url) == 0)
      read_destination_url(c, up, dn, um->keys[U_CREDENTIAL], url, dest);
    return;
  }
  read_container_blob(c, up, um, dest);
}

static void read_upload(vhdup__mctx *c, vhdup__manifest *m, const mnode *map, size_t index,
                        const vhdup__manifest_settings *defaults, unsigned connections,
                        unsigned char *used, dest_id *dest) {
  vhdup__manifest_upload *up = &m->uploads[index];
  char where[48];
  upload_map um = {.map = map, .index = index};
  layer own;

  up->line = map->line;
  up->col = map->col;
  up->settings = *defaults;
  if (map->type != VHDUP__MNODE_MAPPING) {
    if (map->type != VHDUP__MNODE_ALIAS)
      vhdup__mdiag(c, ERR, map->line, map->col,
                   "each upload must be a mapping (source:, destination:, ...), not %s",
                   is_null(map) ? "empty" : kind_of(map));
    return;
  }
  snprintf(where, sizeof(where), "upload %zu", index + 1);
  keyset ks = {where,
               upload_keys,
               U_COUNT,
               engine_keys,
               D_COUNT - S_COUNT,
               "is shared by all uploads: set it under 'defaults' (per_blob_connections caps "
               "one upload)",
               0};
  um.unknown = read_keys(c, map, &ks, um.keys, um.values);
  read_settings(c, um.values, &own);
  apply_settings(&up->settings, &own);
  check_per_blob(c, &own, connections);
  read_upload_paths(c, up, &um);
  up->credential = read_upload_credential(c, m, um.values[U_CREDENTIAL], used);
  read_upload_destination(c, up, &um, dest);
}

static int compare_dest(const void *a, const void *b) {
  const dest_id *x = a, *y = b;
  int r = strcmp(x->id, y->id);
  if (r != 0)
    return r;
  return x->index < y->index ? -1 : x->index > y->index;
}

static void check_duplicates(vhdup__mctx *c, dest_id *dests, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (dests[i].id != NULL && dests[i].text != NULL)
      dests[k++] = dests[i];
  qsort(dests, k, sizeof(*dests), compare_dest);
  for (size_t i = 0; i < k;) {
    size_t j = i + 1;
    while (j < k && strcmp(dests[i].id, dests[j].id) == 0) {
      vhdup__mdiag(c, ERR, dests[j].line, dests[j].col,
                   "upload %zu writes the same blob as upload %zu at %u:%u (%.200s)",
                   dests[j].index + 1, dests[i].index + 1, dests[i].line, dests[i].col,
                   dests[j].text);
      j++;
    }
    if (j > i + 1)
      vhdup__mdiag(c, ERR, dests[i].line, dests[i].col,
                   "upload %zu writes the same blob as upload %zu at %u:%u (%.200s)",
                   dests[i].index + 1, dests[i + 1].index + 1, dests[i + 1].line, dests[i + 1].col,
                   dests[i].text);
    i = j;
  }
}

/* ---- The whole file ---- */

/* 'version: 1'. A missing one after an unknown key is most likely the same
 * typo: reported once. */
static void read_version(vhdup__mctx *c, const mnode *root, const mnode *n, unsigned unknown,
                         vhdup__manifest *m) {
  char buf[80];
  if (n == NULL && unknown == 0)
    vhdup__mdiag(c, ERR, root->line, root->col, "missing 'version: 1' (the manifest's format)");
  else if (n != NULL && want_scalar(c, n, "version") == 0) {
    if (strcmp(n->value, "1") != 0)
      vhdup__mdiag(c, ERR, n->line, n->col,
                   "'version' must be 1 (the format this vhdup reads), not '%s'",
                   shown(n->value, buf, sizeof(buf)));
    else
      m->version = 1;
  }
}

/* 'memory' under 'defaults': the default stays after a bad one. */
static void read_memory(vhdup__mctx *c, const mnode *n, vhdup__manifest *m) {
  char buf[80];
  if (want_scalar(c, n, "memory") != 0)
    return;
  if (vhdup__manifest_parse_size(n->value, &m->memory) != 0 ||
      m->memory < VHDUP__MANIFEST_MIN_MEMORY || m->memory > VHDUP__MANIFEST_MAX_MEMORY) {
    vhdup__mdiag(c, ERR, n->line, n->col,
                 "'memory' takes a size from 8M to 1T (K, M, G, T suffixes), not '%s'",
                 shown(n->value, buf, sizeof(buf)));
    m->memory = VHDUP__DEFAULT_MEMORY;
  }
}

/* 'defaults': the settings every upload starts from, and the engine's. */
static void read_defaults(vhdup__mctx *c, const mnode *n, vhdup__manifest *m) {
  const mnode *dk[D_COUNT], *dv[D_COUNT];
  layer defaults;
  m->connections = VHDUP__DEFAULT_CONNECTIONS;
  m->memory = VHDUP__DEFAULT_MEMORY;
  settings_init(&m->defaults);
  if (n == NULL || want_mapping(c, n, "'defaults'", " of settings") != 0)
    return;
  keyset ks = {"defaults",
               defaults_keys,
               D_COUNT,
               upload_only_keys,
               U_COUNT - S_COUNT,
               "belongs to an upload, not to 'defaults'",
               0};
  read_keys(c, n, &ks, dk, dv);
  read_settings(c, dv, &defaults);
  apply_settings(&m->defaults, &defaults);
  if (dv[D_CONNECTIONS] != NULL)
    (void)get_uint(c, dv[D_CONNECTIONS], "connections", 1, VHDUP__MAX_CONNECTIONS, &m->connections);
  if (dv[D_MEMORY] != NULL)
    read_memory(c, dv[D_MEMORY], m);
  if (dv[D_CA_FILE] != NULL)
    m->ca_file = get_path(c, dv[D_CA_FILE], "ca_file", "CA file", 1);
  check_per_blob(c, &defaults, m->connections);
}

/* 'uploads' if it is a list of 1 to VHDUP__MANIFEST_MAX_UPLOADS entries,
 * else NULL after reporting what it is instead. */
static const mnode *uploads_list(vhdup__mctx *c, const mnode *root, const mnode *list,
                                 unsigned unknown) {
  if (list == NULL) {
    if (unknown == 0)
      vhdup__mdiag(c, ERR, root->line, root->col,
                   "missing 'uploads' (the list of disks to upload)");
    return NULL;
  }
  if (list->type == VHDUP__MNODE_ALIAS)
    return NULL;
  if (is_null(list) || (list->type == VHDUP__MNODE_SEQUENCE && list->count == 0)) {
    vhdup__mdiag(c, ERR, list->line, list->col, "'uploads' is empty: nothing to upload");
    return NULL;
  }
  if (list->type != VHDUP__MNODE_SEQUENCE) {
    vhdup__mdiag(c, ERR, list->line, list->col,
                 "'uploads' must be a list (one '- source: ...' entry per disk), not %s",
                 kind_of(list));
    return NULL;
  }
  if (list->count > VHDUP__MANIFEST_MAX_UPLOADS) {
    vhdup__mdiag(c, ERR, list->line, list->col, "'uploads' lists %zu disks; the limit is %u",
                 list->count, VHDUP__MANIFEST_MAX_UPLOADS);
    return NULL;
  }
  return list;
}

/* Every upload, then what needs them all: duplicate destinations, unused
 * credentials. */
static void read_uploads(vhdup__mctx *c, const mnode *list, vhdup__manifest *m) {
  m->uploads = vhdup__marena_alloc(c->out, list->count * sizeof(*m->uploads));
  dest_id *dests = vhdup__marena_alloc(c->tree, list->count * sizeof(*dests));
  unsigned char *used = vhdup__marena_alloc(c->tree, m->credential_count + 1);
  if (nomem(c, m->uploads) || nomem(c, dests) || nomem(c, used))
    return;
  m->upload_count = list->count;
  size_t i = 0;
  for (const mnode *n = vhdup__mnode_first(list); n != NULL && !c->nomem;
       n = vhdup__mnode_next(list, n), i++) {
    dests[i].index = i;
    read_upload(c, m, n, i, &m->defaults, m->connections, used, &dests[i]);
  }
  if (c->nomem)
    return;
  check_duplicates(c, dests, m->upload_count);
  for (size_t k = 0; k < m->credential_count; k++)
    if (!used[k])
      vhdup__mdiag(c, WARN, m->credentials[k].line, m->credentials[k].col,
                   "credential '%s' is not used by any upload", m->credentials[k].name);
}

static void read_manifest(vhdup__mctx *c, const mnode *root, vhdup__manifest *m) {
  const mnode *keys[T_COUNT], *values[T_COUNT];

  if (root->type != VHDUP__MNODE_MAPPING) {
    if (root->type != VHDUP__MNODE_ALIAS)
      vhdup__mdiag(c, ERR, root->line, root->col,
                   "a manifest is a mapping with version, defaults, credentials and uploads, "
                   "not %s",
                   kind_of(root));
    return;
  }
  keyset ks = {"the manifest", top_keys, T_COUNT, NULL, 0, NULL, 0};
  unsigned unknown = read_keys(c, root, &ks, keys, values);
  read_version(c, root, values[T_VERSION], unknown, m);
  read_defaults(c, values[T_DEFAULTS], m);
  if (values[T_CREDENTIALS] != NULL)
    read_credentials(c, values[T_CREDENTIALS], m);
  if (c->nomem)
    return;
  const mnode *list = uploads_list(c, root, values[T_UPLOADS], unknown);
  if (list != NULL)
    read_uploads(c, list, m);
}

/* Sorts the diagnostics by position (stable: same place, found order). */
static vhdup__manifest_diag *sort_diags(vhdup__manifest_diag *list) {
  vhdup__manifest_diag *sorted = NULL;
  while (list != NULL) {
    vhdup__manifest_diag *d = list, **pp = &sorted;
    list = list->next;
    while (*pp != NULL &&
           ((*pp)->line < d->line || ((*pp)->line == d->line && (*pp)->col <= d->col)))
      pp = &(*pp)->next;
    d->next = *pp;
    *pp = d;
  }
  return sorted;
}

void vhdup__manifest_free(vhdup__manifest *m) {
  if (m == NULL)
    return;
  vhdup__marena_free(m->arena); /* wipes the strings, inline secrets among them */
  vhdup__free(m);
}

int vhdup__manifest_parse(const char *text, size_t len, const char *file_name, const char *base_dir,
                          const vhdup__manifest_env *env, vhdup__manifest **out,
                          vhdup__manifest_diag **diags) {
  vhdup__mctx c;
  vhdup__manifest *m = NULL;

  if (out != NULL)
    *out = NULL;
  if (diags != NULL)
    *diags = NULL;
  if (text == NULL || file_name == NULL || out == NULL || diags == NULL)
    return VHDUP_EINVAL;
  memset(&c, 0, sizeof(c));
  c.file = file_name;
  c.base_dir = base_dir;
  c.env = env;
  c.tree = vhdup__marena_new();
  m = vhdup__calloc(1, sizeof(*m));
  if (m != NULL)
    m->arena = c.out = vhdup__marena_new();
  if (c.tree == NULL || m == NULL || m->arena == NULL) {
    c.nomem = 1;
    goto done;
  }
  m->file = vhdup__marena_strndup(c.out, file_name, strlen(file_name));
  m->base_dir = base_dir != NULL ? vhdup__marena_strndup(c.out, base_dir, strlen(base_dir)) : NULL;
  if (nomem(&c, m->file) || (base_dir != NULL && nomem(&c, m->base_dir)))
    goto done;
  c.file = m->file;
  if (len > VHDUP__MANIFEST_MAX_BYTES) {
    vhdup__mdiag(&c, ERR, 0, 0, "the manifest is %zu bytes; the limit is %zu (4 MiB)", len,
                 VHDUP__MANIFEST_MAX_BYTES);
    goto done;
  }
  const mnode *root = vhdup__mtree_build(&c, text, len);
  /* After refused aliases the tree is whole: check the rest too. */
  if (c.nomem || (root == NULL && c.errors > 0))
    goto done;
  if (root == NULL || is_null(root)) {
    vhdup__mdiag(&c, ERR, 1, 1, "the manifest is empty (it needs version: 1 and uploads:)");
    goto done;
  }
  read_manifest(&c, root, m);

done:
  vhdup__marena_free(c.tree);
  c.diags = sort_diags(c.diags);
  if (c.truncated && !c.nomem) {
    /* The note goes last, after the sorted problems. */
    c.diags_tail = c.diags;
    while (c.diags_tail != NULL && c.diags_tail->next != NULL)
      c.diags_tail = c.diags_tail->next;
    c.ndiags = 0; /* room for the note */
    unsigned errors = c.errors;
    vhdup__mdiag(&c, ERR, 0, 0, "too many problems: only the first %u are shown",
                 VHDUP__MANIFEST_MAX_DIAGS);
    c.errors = errors;
  }
  if (c.nomem) {
    vhdup__manifest_diags_free(c.diags);
    vhdup__manifest_free(m);
    return VHDUP_ENOMEM;
  }
  *diags = c.diags;
  if (c.errors > 0) {
    vhdup__manifest_free(m);
    return VHDUP_EMANIFEST;
  }
  *out = m;
  return 0;
}
