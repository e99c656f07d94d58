/* A local sparse file as the destination: what `vhdup expand` writes. The
 * output is built as PATH.partial and renamed to PATH when finished, so a
 * failure never leaves a half file under the final name. */
#ifndef VHDUP_UPLOAD_SINK_FILE_H
#define VHDUP_UPLOAD_SINK_FILE_H

#include "upload/sink.h"

#include <uv.h>

/* Returns 0, VHDUP_EEXIST (path exists and force is 0), VHDUP_ENOMEM. */
int vhdup__file_sink_new(uv_loop_t *loop, const char *path, int force, vhdup__sink **out,
                         vhdup__err *err) __attribute__((warn_unused_result));

#endif
