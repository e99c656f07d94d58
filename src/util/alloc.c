#include "util/alloc.h"

#include "vhdup_errno.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *(*malloc_hook)(size_t) = malloc;
static void *(*realloc_hook)(void *, size_t) = realloc;
static void *(*calloc_hook)(size_t, size_t) = calloc;
static void (*free_hook)(void *) = free;

int vhdup_replace_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                            void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *)) {
  if (malloc_fn == NULL && realloc_fn == NULL && calloc_fn == NULL && free_fn == NULL) {
    malloc_hook = malloc;
    realloc_hook = realloc;
    calloc_hook = calloc;
    free_hook = free;
    return 0;
  }
  if (malloc_fn == NULL || realloc_fn == NULL || calloc_fn == NULL || free_fn == NULL)
    return VHDUP_EINVAL;
  malloc_hook = malloc_fn;
  realloc_hook = realloc_fn;
  calloc_hook = calloc_fn;
  free_hook = free_fn;
  return 0;
}

void *vhdup__malloc(size_t n) {
  return malloc_hook(n == 0 ? 1 : n);
}

void *vhdup__calloc(size_t count, size_t n) {
  return calloc_hook(count == 0 ? 1 : count, n == 0 ? 1 : n);
}

void *vhdup__realloc(void *p, size_t n) {
  return realloc_hook(p, n == 0 ? 1 : n);
}

void vhdup__free(void *p) {
  if (p != NULL)
    free_hook(p);
}

void *vhdup__malloc_aligned(size_t n, size_t align, void **base) {
  *base = NULL;
  if (align == 0 || (align & (align - 1)) != 0 || n > SIZE_MAX - align)
    return NULL;
  unsigned char *p = vhdup__malloc(n + align);
  if (p == NULL)
    return NULL;
  *base = p;
  uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
  return p + (a - (uintptr_t)p);
}

char *vhdup__strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *d = vhdup__malloc(len + 1);
  if (d == NULL)
    return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

char *vhdup__strdup(const char *s) {
  return vhdup__strndup(s, strlen(s));
}
