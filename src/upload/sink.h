/* Where the pipeline's pages go: an Azure page blob (sink_azure.c) or a
 * local sparse file (sink_file.c, behind `vhdup expand`). The pipeline does
 * planning, reading, zero-skipping, hashing, ordering and retry timing; a
 * sink only performs one operation at a time per request and classifies the
 * outcome, so upload and expand cannot disagree about the bytes. */
#ifndef VHDUP_UPLOAD_SINK_H
#define VHDUP_UPLOAD_SINK_H

#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct vhdup__sink vhdup__sink;

/* How one operation ended. error 0 is success. retryable says whether the
 * pipeline may try again (after at least retry_after_ms, when non-zero). */
typedef struct vhdup__sink_result {
  int error;
  int retryable;
  uint64_t retry_after_ms;
  long http_status;
  const char *message; /* valid during the callback only; never holds secrets */
} vhdup__sink_result;

typedef struct vhdup__sink_write vhdup__sink_write;
typedef void (*vhdup__sink_write_cb)(vhdup__sink_write *w, const vhdup__sink_result *r);

struct vhdup__sink_write {
  uint64_t offset; /* blob offset, multiple of 512 */
  size_t length;   /* multiple of 512, at most 4 MiB */
  const uint8_t *data;
  int has_md5;
  uint8_t md5[16];
  int has_crc64;
  uint64_t crc64;
  vhdup__sink_write_cb cb;
  void *owner;
};

/* What prepare found and decided. */
typedef struct vhdup__sink_info {
  int existed;            /* the destination was there before */
  uint64_t size;          /* its size now */
  int can_set_properties; /* whole-blob Content-MD5 can be set */
  uint64_t cleared_bytes; /* stale data cleared before writing */
} vhdup__sink_info;

typedef void (*vhdup__sink_cb)(vhdup__sink *s, const vhdup__sink_result *r, void *data);

/* What --verify learns from the destination. */
typedef struct vhdup__sink_verify {
  int content;        /* also read every page back and hash the whole blob */
  uint64_t blob_size; /* for the zeros after the last range */
  uint64_t ranges;    /* out: page ranges the destination reports */
  uint64_t bytes;     /* out: bytes in them */
  uint8_t md5[16];    /* out with content: MD5 of the blob as read back */
} vhdup__sink_verify;

typedef struct vhdup__sink_ops {
  /* Makes the destination ready for a blob of size bytes: creates it, or
   * checks the existing one's size per the sink's overwrite policy and
   * clears the page ranges it holds, so only what the pipeline writes
   * will be there. */
  void (*prepare)(vhdup__sink *s, uint64_t size, vhdup__sink_cb cb, void *data);
  /* Starts one write; its callback fires exactly once, asynchronously.
   * Returns 0, or an error if it could not be started at all. */
  int (*write)(vhdup__sink *s, vhdup__sink_write *w);
  /* After the last write: record the whole-disk MD5 when given and allowed. */
  void (*finish)(vhdup__sink *s, const uint8_t *disk_md5, vhdup__sink_cb cb, void *data);
  /* Lists (and with v->content reads back) what the destination holds.
   * NULL when the sink cannot. */
  void (*verify)(vhdup__sink *s, vhdup__sink_verify *v, vhdup__sink_cb cb, void *data);
  /* Abandons writes in flight: their callbacks fire with VHDUP_ECANCELED. */
  void (*abort)(vhdup__sink *s);
  /* Releases everything; close_cb when it is safe to free the sink. */
  void (*close)(vhdup__sink *s, void (*close_cb)(vhdup__sink *s));
} vhdup__sink_ops;

struct vhdup__sink {
  const vhdup__sink_ops *ops;
  vhdup__sink_info info;
  unsigned max_in_flight; /* the most writes it takes at once */
  void *data;             /* the owner's */
};

#endif
