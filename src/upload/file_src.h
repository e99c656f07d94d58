/* A disk file opened for reading: a vhdup__src over pread() for parsing and
 * the plan (small, synchronous reads of headers, BAT and bitmaps), and the
 * descriptor for the pipeline's uv_fs_read() of the data itself. */
#ifndef VHDUP_UPLOAD_FILE_SRC_H
#define VHDUP_UPLOAD_FILE_SRC_H

#include "vhd/vhd.h"

#include <stdint.h>

typedef struct vhdup__file {
  vhdup__src src; /* src.ctx points back at this struct */
  int fd;
  char *path;
  uint64_t size;
  int64_t mtime_sec;
  long mtime_nsec;
} vhdup__file;

void vhdup__file_close(vhdup__file *f);

/* The file descriptor behind a source made by vhdup__disk_open_path(). */
int vhdup__file_fd(const vhdup__src *src);

/* Opens a whole disk from a path: the file, its parents, validation.
 * dir for relative locators is the file's folder. On success *file and
 * *disk are set; free with vhdup__disk_free() then vhdup__file_close(). */
int vhdup__disk_open_path(const char *path, vhdup_format format, const char *parent_override,
                          vhdup__file **file, vhdup__disk **disk, vhdup__err *err)
    __attribute__((warn_unused_result));

#endif
