#include "util/err.h"

#include <stdio.h>
#include <string.h>

int vhdup__errf(vhdup__err *err, int code, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
  }
  return code;
}

void vhdup__err_clear(vhdup__err *err) {
  if (err != NULL) {
    err->code = 0;
    err->msg[0] = '\0';
  }
}
