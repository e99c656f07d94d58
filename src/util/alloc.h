/* Every allocation in vhdup goes through these, so vhdup_replace_allocator()
 * can fail the Nth one in tests. */
#ifndef VHDUP_UTIL_ALLOC_H
#define VHDUP_UTIL_ALLOC_H

#include <stddef.h>

void *vhdup__malloc(size_t n) __attribute__((warn_unused_result));
void *vhdup__calloc(size_t count, size_t n) __attribute__((warn_unused_result));
void *vhdup__realloc(void *p, size_t n) __attribute__((warn_unused_result));
void vhdup__free(void *p);
char *vhdup__strdup(const char *s) __attribute__((warn_unused_result));
/* n bytes at an address aligned to align (a power of two), from the same
 * allocator: *base gets what to pass to vhdup__free. The extra align bytes
 * are address space only; pages never written are never resident. */
void *vhdup__malloc_aligned(size_t n, size_t align, void **base)
    __attribute__((warn_unused_result));
char *vhdup__strndup(const char *s, size_t n) __attribute__((warn_unused_result));

#endif
