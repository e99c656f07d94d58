/* Error detail for internal modules: a code from include/vhdup.h (or a
 * libuv code) plus one human message naming file, field and offset. */
#ifndef VHDUP_UTIL_ERR_H
#define VHDUP_UTIL_ERR_H

#include "vhdup_errno.h"

#include <stdarg.h>

#define VHDUP__ERRMSG_MAX 1024

typedef struct vhdup__err {
  int code;
  char msg[VHDUP__ERRMSG_MAX];
} vhdup__err;

/* Records code and a printf-style message in err (which may be NULL) and
 * returns code, so callers can write `return vhdup__errf(err, ...)`. */
int vhdup__errf(vhdup__err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to "no error". */
void vhdup__err_clear(vhdup__err *err);

#endif
