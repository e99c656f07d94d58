#include "azure/internal.h"

#include "azure/azure.h"
#include "util/alloc.h"

#include <string.h>

static int grow(vhdup__az_sb *sb, size_t extra) {
  if (sb->oom)
    return -1;
  if (sb->len + extra + 1 <= sb->cap)
    return 0;
  if (extra > SIZE_MAX / 4 - sb->len) {
    sb->oom = 1;
    return -1;
  }
  size_t cap = sb->cap ? sb->cap : 64;
  while (cap < sb->len + extra + 1)
    cap *= 2;
  char *p = vhdup__realloc(sb->p, cap);
  if (p == NULL) {
    sb->oom = 1;
    return -1;
  }
  sb->p = p;
  sb->cap = cap;
  return 0;
}

void vhdup__az_sb_addn(vhdup__az_sb *sb, const char *s, size_t n) {
  if (grow(sb, n) != 0)
    return;
  if (n > 0)
    memcpy(sb->p + sb->len, s, n);
  sb->len += n;
  sb->p[sb->len] = '\0';
}

void vhdup__az_sb_add(vhdup__az_sb *sb, const char *s) {
  vhdup__az_sb_addn(sb, s, strlen(s));
}

void vhdup__az_sb_addc(vhdup__az_sb *sb, char c) {
  vhdup__az_sb_addn(sb, &c, 1);
}

void vhdup__az_sb_addu64(vhdup__az_sb *sb, uint64_t v) {
  char buf[21];
  size_t i = sizeof(buf);
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  vhdup__az_sb_addn(sb, buf + i, sizeof(buf) - i);
}

char *vhdup__az_sb_take(vhdup__az_sb *sb) {
  if (sb->oom) {
    vhdup__az_sb_free(sb);
    return NULL;
  }
  if (sb->p == NULL)
    return vhdup__strdup("");
  char *p = sb->p;
  sb->p = NULL;
  sb->len = sb->cap = 0;
  return p;
}

void vhdup__az_sb_free(vhdup__az_sb *sb) {
  vhdup__free(sb->p);
  sb->p = NULL;
  sb->len = sb->cap = 0;
  sb->oom = 0;
}

static int strcaseeq(const char *a, const char *b) {
  for (; *a != '\0' && *b != '\0'; a++, b++)
    if (vhdup__az_lower(*a) != vhdup__az_lower(*b))
      return 0;
  return *a == *b;
}

int vhdup__az_strncaseeq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (vhdup__az_lower(a[i]) != vhdup__az_lower(b[i]))
      return 0;
    if (a[i] == '\0')
      return 1;
  }
  return 1;
}

int vhdup__az_hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

const char *vhdup__az_header_find(const vhdup__az_header *h, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (h[i].name != NULL && strcaseeq(h[i].name, name))
      return h[i].value;
  return NULL;
}
