/* The public error functions. They live outside src/util because they pass
 * libuv's codes through to uv_strerror(), and util stays free of libuv. */
#include "vhdup.h"

#include <uv.h>

const char *vhdup_strerror(int err) {
  switch (err) {
#define XX(name, val, msg)                                                                         \
  case val:                                                                                        \
    return msg;
    VHDUP_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "success";
  default:
    break;
  }
  if (err < 0 && err > -30000)
    return uv_strerror(err);
  return "unknown error";
}

const char *vhdup_err_name(int err) {
  switch (err) {
#define XX(name, val, msg)                                                                         \
  case val:                                                                                        \
    return "VHDUP_" #name;
    VHDUP_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "OK";
  default:
    break;
  }
  if (err < 0 && err > -30000)
    return uv_err_name(err);
  return "UNKNOWN";
}

const char *vhdup_version_string(void) {
  return VHDUP_VERSION_STRING;
}
