/* Looking up the secrets a manifest refers to, through the caller's getenv
 * and file reader, so the module stays free of I/O and testable. What a
 * secret may look like and how long it may be is util/secret.h's rule, the
 * same for every way vhdup reads one. */
#include "manifest/manifest.h"

#include "util/alloc.h"
#include "util/secret.h"

#include <stdio.h>
#include <string.h>

static const char *secret_where(const vhdup__manifest_secret *ref, char *buf, size_t size) {
  snprintf(buf, size, "%s:%u:%u", ref->file != NULL ? ref->file : "manifest", ref->line, ref->col);
  return buf;
}

/* Reads a file reference into *buf and *len (wipe and free *buf). */
static int read_ref_file(const vhdup__manifest_secret *ref, vhdup__manifest_read_file_fn read_fn,
                         void *ctx, const char *where, char **buf, size_t *len, vhdup__err *err) {
  if (read_fn == NULL)
    return vhdup__errf(err, VHDUP_EINVAL, "%s: no way to read files", where);
  int rc = read_fn(ctx, ref->value, VHDUP__SECRET_MAX, buf, len);
  if (rc == 0 && *buf == NULL && *len > 0)
    rc = VHDUP_EIO;
  if (rc == 0)
    return 0;
  if (*buf != NULL) {
    vhdup__wipe(*buf, *len > VHDUP__SECRET_MAX ? VHDUP__SECRET_MAX : *len);
    vhdup__free(*buf);
    *buf = NULL;
  }
  if (rc == VHDUP_ELIMIT)
    return vhdup__errf(err, VHDUP_ELIMIT, "%s: %s is larger than %u bytes: not a secret", where,
                       ref->value, VHDUP__SECRET_MAX);
  if (rc < 0 && rc > -4096)
    return vhdup__errf(err, rc, "%s: cannot read %s: %s", where, ref->value, strerror(-rc));
  return vhdup__errf(err, rc < 0 ? rc : VHDUP_EIO, "%s: cannot read %s", where, ref->value);
}

int vhdup__manifest_resolve_secret(const vhdup__manifest_secret *ref,
                                   vhdup__manifest_getenv_fn getenv_fn,
                                   vhdup__manifest_read_file_fn read_file_fn, void *ctx, char **out,
                                   vhdup__err *err) {
  char where[512];
  const char *text = NULL;
  char *buf = NULL;
  size_t len = 0;
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
    rc = read_ref_file(ref, read_file_fn, ctx, where, &buf, &len, err);
    if (rc != 0)
      return rc;
    text = buf != NULL ? buf : "";
    break;
  default:
    return vhdup__errf(err, VHDUP_EINVAL, "%s: unknown kind of secret reference", where);
  }

  /* An embedded NUL is a control character to the rule: refused. */
  rc = vhdup__secret_take(text, len, out);
  const char *source = ref->kind == VHDUP__MANIFEST_SECRET_ENV    ? "environment variable "
                       : ref->kind == VHDUP__MANIFEST_SECRET_FILE ? "file "
                                                                  : "";
  const char *name = ref->kind == VHDUP__MANIFEST_SECRET_INLINE ? "the secret" : ref->value;
  if (rc == VHDUP_ELIMIT)
    vhdup__errf(err, rc, "%s: %s%s is larger than %u bytes", where, source, name,
                VHDUP__SECRET_MAX);
  else if (rc == VHDUP_ECREDENTIAL)
    vhdup__errf(err, rc, "%s: %s%s is empty, or holds several lines or control characters", where,
                source, name);
  else if (rc != 0)
    vhdup__errf(err, rc, "%s: out of memory", where);
  if (buf != NULL) {
    vhdup__wipe(buf, len);
    vhdup__free(buf);
  }
  return rc;
}
