/* Fuzzes the manifest parser with hostile YAML: limits (depth, nodes,
 * uploads), aliases, every schema path. Invariants checked: parse returns
 * one of its documented codes; a manifest comes back exactly when there is
 * no error; every upload has a source and a destination; an inline secret
 * never shows up in a diagnostic; resolving every secret through fake
 * getenv/read_file keeps to its documented codes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest/manifest.h"
#include "util/alloc.h"
#include "util/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int exists(void *ctx, const char *path) {
  (void)ctx;
  return strstr(path, "missing") == NULL;
}

static const char *fake_getenv(void *ctx, const char *name) {
  (void)ctx;
  if (strcmp(name, "UNSET") == 0)
    return NULL;
  return strcmp(name, "EMPTY") == 0 ? "" : "c2VjcmV0\n";
}

static int fake_read_file(void *ctx, const char *path, size_t max, char **out, size_t *len) {
  (void)ctx;
  (void)max;
  if (strstr(path, "unreadable") != NULL)
    return -13;
  *out = vhdup__strdup("line one\nline two");
  if (*out == NULL)
    return VHDUP_ENOMEM;
  *len = strstr(path, "two") != NULL ? strlen(*out) : 8;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vhdup__manifest_env env = {exists, "/home/fuzz", NULL};
  vhdup__manifest *m = NULL;
  vhdup__manifest_diag *diags = NULL;

  int rc = vhdup__manifest_parse((const char *)data, size, "fuzz.yaml", "/base", &env, &m, &diags);
  if (rc != 0 && rc != VHDUP_EMANIFEST && rc != VHDUP_ENOMEM)
    abort();
  if ((rc == 0) != (m != NULL))
    abort();
  int errors = 0;
  unsigned n = 0;
  for (const vhdup__manifest_diag *d = diags; d != NULL; d = d->next) {
    if (++n > VHDUP__MANIFEST_MAX_DIAGS + 1)
      abort();
    if (d->message == NULL || strstr(d->text, d->message) == NULL)
      abort();
    errors += d->severity == VHDUP__MANIFEST_ERROR;
  }
  if ((rc == VHDUP_EMANIFEST) != (errors > 0))
    abort();
  if (m != NULL) {
    if (m->upload_count == 0 || m->upload_count > VHDUP__MANIFEST_MAX_UPLOADS)
      abort();
    for (size_t i = 0; i < m->upload_count; i++)
      if (m->uploads[i].source == NULL || m->uploads[i].destination == NULL)
        abort();
    for (size_t i = 0; i < m->credential_count; i++) {
      const vhdup__manifest_credential *cr = &m->credentials[i];
      for (size_t j = 0; j < i; j++)
        if (strcmp(m->credentials[j].name, cr->name) == 0)
          abort(); /* names are unique */
      if (cr->secret.kind == VHDUP__MANIFEST_SECRET_INLINE && strlen(cr->secret.value) >= 6)
        for (const vhdup__manifest_diag *d = diags; d != NULL; d = d->next)
          if (strstr(d->text, cr->secret.value) != NULL)
            abort();
      char *secret = NULL;
      vhdup__err err;
      rc = vhdup__manifest_resolve_secret(&cr->secret, fake_getenv, fake_read_file, NULL, &secret,
                                          &err);
      if ((rc == 0) != (secret != NULL))
        abort();
      if (rc != 0 && rc != VHDUP_ECREDENTIAL && rc != VHDUP_ENOMEM && rc != VHDUP_ELIMIT &&
          rc != -13)
        abort();
      vhdup__secret_free(secret);
    }
  }
  vhdup__manifest_diags_free(diags);
  vhdup__manifest_free(m);
  return 0;
}
