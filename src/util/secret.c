#include "util/secret.h"

#include "util/alloc.h"
#include "vhdup_errno.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void vhdup__wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n-- > 0)
    *v++ = 0;
}

void vhdup__secret_free(char *s) {
  if (s == NULL)
    return;
  vhdup__wipe(s, strlen(s));
  vhdup__free(s);
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int vhdup__secret_take(const char *text, size_t len, char **out) {
  size_t a = 0, b = len;
  *out = NULL;
  while (a < b && is_space(text[a]))
    a++;
  while (b > a && is_space(text[b - 1]))
    b--;
  if (b - a > VHDUP__SECRET_MAX)
    return VHDUP_ELIMIT;
  if (a == b)
    return VHDUP_ECREDENTIAL;
  for (size_t i = a; i < b; i++)
    if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
      return VHDUP_ECREDENTIAL;
  *out = vhdup__strndup(text + a, b - a);
  return *out == NULL ? VHDUP_ENOMEM : 0;
}

int vhdup__secret_read_file(const char *path, char **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -errno;
  /* One byte more than allowed tells a file that is too long. */
  char *b = vhdup__malloc(VHDUP__SECRET_MAX + 2);
  if (b == NULL) {
    fclose(f);
    return VHDUP_ENOMEM;
  }
  size_t n = fread(b, 1, VHDUP__SECRET_MAX + 1, f);
  int rc = ferror(f) ? -(errno ? errno : EIO) : 0;
  fclose(f);
  if (rc == 0 && n > VHDUP__SECRET_MAX)
    rc = VHDUP_ELIMIT;
  if (rc != 0) {
    vhdup__wipe(b, n);
    vhdup__free(b);
    return rc;
  }
  b[n] = '\0';
  *buf = b;
  *len = n;
  return 0;
}

static int sig_boundary(char c) {
  return c == '?' || c == '&' || c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
         c == '"' || c == '\'';
}

static int ends_value(char c) {
  return c == '&' || c == '#' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' ||
         c == '\'' || c == '<' || c == '>' || c == ';' || c == '\0';
}

/* The length of the `sig=` or `sig%3D` key at text[i], or 0. A key starts
 * a parameter: at the start, after a separator, or after an encoded ? or &
 * (a SAS URL inside another URL's query). */
static size_t sig_key(const char *text, size_t len, size_t i) {
  int starts = i == 0 || sig_boundary(text[i - 1]) ||
               (i >= 3 && (strncasecmp(text + i - 3, "%26", 3) == 0 ||
                           strncasecmp(text + i - 3, "%3f", 3) == 0));
  if (!starts)
    return 0;
  if (len - i >= 4 && strncasecmp(text + i, "sig=", 4) == 0)
    return 4;
  if (len - i >= 6 && strncasecmp(text + i, "sig%3d", 6) == 0)
    return 6;
  return 0;
}

int vhdup__has_sig(const char *text, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (sig_key(text, len, i) != 0)
      return 1;
  return 0;
}

size_t vhdup__redact(const char *text, size_t len, char *out, size_t out_size) {
  static const char redacted[] = "REDACTED";
  size_t i = 0, o = 0;
  if (out_size == 0)
    return 0;
  while (i < len && o + 1 < out_size) {
    size_t key = sig_key(text, len, i);
    if (key == 0) {
      out[o++] = text[i++];
      continue;
    }
    for (size_t k = 0; k < key && o + 1 < out_size; k++)
      out[o++] = text[i++];
    while (i < len && !ends_value(text[i]))
      i++;
    for (size_t k = 0; k < sizeof(redacted) - 1 && o + 1 < out_size; k++)
      out[o++] = redacted[k];
  }
  out[o] = '\0';
  return o;
}

char *vhdup__redact_dup(const char *text) {
  size_t len = strlen(text);
  /* Redaction only ever grows a value to REDACTED: at most 8 bytes per key. */
  size_t cap = len + 8 * (len / 4 + 1) + 1;
  char *out = vhdup__malloc(cap);
  if (out != NULL)
    vhdup__redact(text, len, out, cap);
  return out;
}
