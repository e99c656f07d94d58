/* Small string buffers for the test server. */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *ts_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "vhdup-testserver: out of memory\n");
    abort();
  }
  return p;
}

void *ts_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) {
    fprintf(stderr, "vhdup-testserver: out of memory\n");
    abort();
  }
  return q;
}

void sbuf_init(sbuf *b) {
  b->p = NULL;
  b->len = 0;
  b->cap = 0;
}

void sbuf_free(sbuf *b) {
  free(b->p);
  sbuf_init(b);
}

void sbuf_clear(sbuf *b) {
  b->len = 0;
  if (b->p != NULL)
    b->p[0] = '\0';
}

static void reserve(sbuf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1)
    cap *= 2;
  b->p = ts_xrealloc(b->p, cap);
  b->cap = cap;
}

void sbuf_append(sbuf *b, const void *data, size_t len) {
  reserve(b, len);
  if (len > 0)
    memcpy(b->p + b->len, data, len);
  b->len += len;
  b->p[b->len] = '\0';
}

void sbuf_puts(sbuf *b, const char *s) {
  sbuf_append(b, s, strlen(s));
}

void sbuf_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n <= 0)
    return;
  reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}
