/* A destination that keeps nothing, for --dry-run: the pipeline reads and
 * scans the disk exactly as for an upload, so its counters say what would
 * be sent, and nothing touches the network. */
#ifndef VHDUP_UPLOAD_SINK_NULL_H
#define VHDUP_UPLOAD_SINK_NULL_H

#include "upload/sink.h"

#include <uv.h>

/* Returns 0, VHDUP_ENOMEM or a libuv error. */
int vhdup__null_sink_new(uv_loop_t *loop, vhdup__sink **out) __attribute__((warn_unused_result));

#endif
