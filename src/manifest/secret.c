/* Looking up the secrets a manifest refers to, through the caller's getenv
 * and file reader, so the module stays free of I/O and testable. */
#include "manifest/manifest.h"

#include "util/alloc.h"

#include <stdio.h>
#include <string.h>

static const char *secret_where(const vhdup__manifest_secret *ref, char *buf, size_t size) {
  snprintf(buf, size, "%s:%u:%u", ref->file != NULL ? ref->file : "manifest", ref->line, ref->col);
  return buf;
}

/* Trims surrounding whitespace (a key file usually ends with a newline) and
 * refuses what cannot be one secret. Returns 0 or VHDUP_ECREDENTIAL. */
static int clean_secret(const char *s, size_t len, size_t *start, size_t *end) {
  size_t a = 0, b = len;
  while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r' || s[a] == '\n'))
    a++;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r' || s[b - 1] == '\n'))
    b--;
  if (a == b)
    return VHDUP_ECREDENTIAL;
  for (size_t i = a; i < b; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return VHDUP_ECREDENTIAL;
  *start = a;
  *end = b;
  return 0;
}

int vhdup__manifest_resolve_secret(const vhdup__manifest_secret *ref,
                                   vhdup__manifest_getenv_fn getenv_fn,
                                   vhdup__manifest_read_file_fn read_file_fn, void *ctx, char **out,
                                   vhdup__err *err) {
  char where[512];
  const char *text = NULL;
  char *buf = NULL;
  size_t len = 0, a, b;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (ref == NULL || out == NULL || ref->value == NULL)
    return vhdup__errf(err, VHDUP_EINVAL, "no secret reference");
  secret_where(ref, where, sizeof(where));
  switch (ref->kind) {
  case VHDUP__MANIFEST_SECRET_INLINE:
    text = ref->value;
    len = strlen(text);
    break;
  case VHDUP__MANIFEST_SECRET_ENV:
    if (getenv_fn == NULL)
      return vhdup__errf(err, VHDUP_EINVAL, "%s: no way to read the environment", where);
    text = getenv_fn(ctx, ref->value);
    if (text == NULL)
      return vhdup__errf(err, VHDUP_ECREDENTIAL, "%s: environment variable %s is not set", where,
                         ref->value);
    len = strlen(text);
    break;
  case VHDUP__MANIFEST_SECRET_FILE:
    if (read_file_fn == NULL)
      return vhdup__errf(err, VHDUP_EINVAL, "%s: no way to read files", where);
    rc = read_file_fn(ctx, ref->value, VHDUP__MANIFEST_SECRET_MAX, &buf, &len);
    if (rc == VHDUP_ELIMIT || (rc == 0 && len > VHDUP__MANIFEST_SECRET_MAX)) {
      if (buf != NULL) {
        memset(buf, 0, len > VHDUP__MANIFEST_SECRET_MAX ? VHDUP__MANIFEST_SECRET_MAX : len);
        vhdup__free(buf);
      }
      return vhdup__errf(err, VHDUP_ELIMIT, "%s: %s is larger than %u bytes: not a secret", where,
                         ref->value, VHDUP__MANIFEST_SECRET_MAX);
    }
    if (rc != 0) {
      vhdup__free(buf);
      if (rc < 0 && rc > -4096)
        return vhdup__errf(err, rc, "%s: cannot read %s: %s", where, ref->value, strerror(-rc));
      return vhdup__errf(err, rc < 0 ? rc : VHDUP_EIO, "%s: cannot read %s", where, ref->value);
    }
    if (buf == NULL && len > 0)
      return vhdup__errf(err, VHDUP_EIO, "%s: cannot read %s", where, ref->value);
    text = buf != NULL ? buf : "";
    break;
  default:
    return vhdup__errf(err, VHDUP_EINVAL, "%s: unknown kind of secret reference", where);
  }

  if (ref->kind != VHDUP__MANIFEST_SECRET_FILE && len > VHDUP__MANIFEST_SECRET_MAX) {
    rc = vhdup__errf(err, VHDUP_ELIMIT, "%s: the secret is larger than %u bytes", where,
                     VHDUP__MANIFEST_SECRET_MAX);
  } else if (memchr(text, '\0', len) != NULL || clean_secret(text, len, &a, &b) != 0) {
    const char *source = ref->kind == VHDUP__MANIFEST_SECRET_ENV    ? "environment variable "
                         : ref->kind == VHDUP__MANIFEST_SECRET_FILE ? "file "
                                                                    : "";
    const char *name = ref->kind == VHDUP__MANIFEST_SECRET_INLINE ? "the secret" : ref->value;
    rc = vhdup__errf(err, VHDUP_ECREDENTIAL,
                     "%s: %s%s is empty, or holds several lines or control characters", where,
                     source, name);
  } else {
    *out = vhdup__strndup(text + a, b - a);
    rc = *out == NULL ? vhdup__errf(err, VHDUP_ENOMEM, "%s: out of memory", where) : 0;
  }
  if (buf != NULL) {
    memset(buf, 0, len);
    vhdup__free(buf);
  }
  return rc;
}

void vhdup__manifest_secret_free(char *secret) {
  if (secret == NULL)
    return;
  memset(secret, 0, strlen(secret));
  vhdup__free(secret);
}
