#include "cli/file_src.h"

#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_ctx {
  int fd;
  char *name;
} file_ctx;

static int file_read(const vhdup__src *src, uint64_t off, void *buf, size_t len) {
  const file_ctx *fc = src->ctx;
  uint8_t *p = buf;

  if (off > src->size || len > src->size - off)
    return VHDUP_ETRUNCATED;
  while (len > 0) {
    ssize_t n = pread(fc->fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    /* The file shrank under us since fstat(). */
    if (n == 0)
      return VHDUP_ETRUNCATED;
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

int vhdup__cli_src_open(const char *path, vhdup__src *src) {
  struct stat st;
  file_ctx *fc;
  off_t end;
  int fd;
  int rc;

  memset(src, 0, sizeof(*src));
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return -EISDIR;
  }
  if (S_ISREG(st.st_mode)) {
    end = st.st_size;
  } else {
    /* Block devices report no size in st_size; raw sources may be one. */
    end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
      rc = -errno;
      close(fd);
      return rc;
    }
  }
  fc = vhdup__malloc(sizeof(*fc));
  if (fc != NULL)
    fc->name = vhdup__strdup(path);
  if (fc == NULL || fc->name == NULL) {
    vhdup__free(fc);
    close(fd);
    return VHDUP_ENOMEM;
  }
  fc->fd = fd;
  src->ctx = fc;
  src->name = fc->name;
  src->size = (uint64_t)end;
  src->read = file_read;
  return 0;
}

void vhdup__cli_src_close(vhdup__src *src) {
  file_ctx *fc = src->ctx;

  if (fc != NULL) {
    close(fc->fd);
    vhdup__free(fc->name);
    vhdup__free(fc);
  }
  memset(src, 0, sizeof(*src));
}

static int parent_open(void *ctx, const char *path, vhdup__src *out) {
  (void)ctx;
  return vhdup__cli_src_open(path, out);
}

static void parent_close(void *ctx, vhdup__src *src) {
  (void)ctx;
  vhdup__cli_src_close(src);
}

const vhdup__parent_io vhdup__cli_parent_io = {NULL, parent_open, parent_close};
