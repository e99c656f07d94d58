/* vhdup's version, error codes, error functions and allocation hook:
 * the part of the API that needs no libuv. Included by vhdup.h. */
#ifndef VHDUP_ERRNO_H
#define VHDUP_ERRNO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public functions: the shared library is built with
 * -fvisibility=hidden and exports these alone. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define VHDUP_EXTERN __attribute__((visibility("default")))
#else
#define VHDUP_EXTERN
#endif

#define VHDUP_VERSION_MAJOR 0
#define VHDUP_VERSION_MINOR 1
#define VHDUP_VERSION_PATCH 0
#define VHDUP_VERSION_STRING "0.1.0"

/* X-macro table of vhdup's own error codes: name, value, message. */
#define VHDUP_ERRNO_MAP(XX)                                                                        \
  XX(EFORMAT, -30001, "not a valid disk image")                                                    \
  XX(ECHECKSUM, -30002, "checksum mismatch")                                                       \
  XX(ETRUNCATED, -30003, "file is truncated")                                                      \
  XX(EPARENT, -30004, "differencing disk parent missing or mismatched")                            \
  XX(ELIMIT, -30005, "input exceeds a limit")                                                      \
  XX(EUNSUPPORTED, -30006, "unsupported feature")                                                  \
  XX(EAUTH, -30010, "authentication or authorization failed")                                      \
  XX(EHTTP, -30011, "server returned an error")                                                    \
  XX(ENET, -30012, "network error")                                                                \
  XX(ETIMEDOUT, -30013, "operation timed out")                                                     \
  XX(ECREDENTIAL, -30014, "malformed credential")                                                  \
  XX(EURL, -30015, "malformed or refused URL")                                                     \
  XX(EEXIST, -30016, "destination already exists")                                                 \
  XX(ESIZE, -30017, "destination has the wrong size")                                              \
  XX(ENOTFOUND, -30018, "destination not found")                                                   \
  XX(ECANCELED, -30019, "operation canceled")                                                      \
  XX(EVERIFY, -30020, "verification failed")                                                       \
  XX(EJOURNAL, -30021, "resume journal does not match")                                            \
  XX(EMANIFEST, -30022, "invalid manifest")                                                        \
  XX(ENOMEM, -30023, "out of memory")                                                              \
  XX(EINVAL, -30024, "invalid argument")                                                           \
  XX(EIO, -30025, "input/output error")                                                            \
  XX(EBUSY, -30026, "resource busy")

typedef enum {
#define VHDUP__ERR_ENUM(name, val, msg) VHDUP_##name = val,
  VHDUP_ERRNO_MAP(VHDUP__ERR_ENUM)
#undef VHDUP__ERR_ENUM
} vhdup_errno_t;

/* Returns a static English message for any vhdup or libuv error code.
 * Never returns NULL. */
VHDUP_EXTERN const char *vhdup_strerror(int err);

/* Returns the code's name ("VHDUP_EFORMAT", "ENOENT", ...). Never NULL. */
VHDUP_EXTERN const char *vhdup_err_name(int err);

/* Allocation hook, used by every allocation vhdup makes (tests use it to fail
 * the Nth allocation). All four must be given, or all NULL to restore the
 * C library's. Not thread-safe: set it before creating any vhdup object.
 * Returns 0 or VHDUP_EINVAL. */
VHDUP_EXTERN int vhdup_replace_allocator(void *(*malloc_fn)(size_t),
                                         void *(*realloc_fn)(void *, size_t),
                                         void *(*calloc_fn)(size_t, size_t),
                                         void (*free_fn)(void *));

/* The library's version string, e.g. "0.1.0". */
VHDUP_EXTERN const char *vhdup_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
