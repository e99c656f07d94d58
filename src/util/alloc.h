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
char *vhdup__strndup(const char *s, size_t n) __attribute__((warn_unused_result));

#endif
