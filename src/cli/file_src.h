/* vhdup__src over a local file or block device, read with pread(2), and the
 * vhdup__parent_io that opens a differencing disk's parents the same way. */
#ifndef VHDUP_CLI_FILE_SRC_H
#define VHDUP_CLI_FILE_SRC_H

#include "vhd/vhd.h"

/* Opens path read-only; src->name is a copy of path exactly as given, so
 * messages show what the user typed. Returns 0 or a negative errno
 * (libuv's codes on Unix), e.g. UV_ENOENT, UV_EISDIR. */
int vhdup__cli_src_open(const char *path, vhdup__src *src) __attribute__((warn_unused_result));

/* Closes what vhdup__cli_src_open opened; src is zeroed. Safe on a zeroed
 * src. */
void vhdup__cli_src_close(vhdup__src *src);

/* Parents from paths, through vhdup__cli_src_open. Stateless. */
extern const vhdup__parent_io vhdup__cli_parent_io;

#endif
