#include "upload/file_src.h"

#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int file_read(const vhdup__src *src, uint64_t off, void *buf, size_t len) {
  const vhdup__file *f = src->ctx;
  if (off > f->size || len > f->size - off)
    return VHDUP_ETRUNCATED;
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = pread(f->fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return VHDUP_ETRUNCATED;
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

/* vhdup__src next_data over lseek(2): SEEK_DATA finds the next byte of
 * data at or after off (ENXIO: none, only a hole follows), SEEK_HOLE the
 * end of that data (the end of the file at worst). A file system without
 * hole reporting answers as if the file were all data. The descriptor's
 * own position is moved, which nothing uses: every read gives its offset
 * (pread, uv_fs_read). */
static int file_next_data(const vhdup__src *src, uint64_t off, uint64_t *start, uint64_t *end) {
  const vhdup__file *f = src->ctx;
  if (off >= f->size) {
    *start = *end = f->size;
    return 0;
  }
  off_t d = lseek(f->fd, (off_t)off, SEEK_DATA);
  if (d < 0) {
    if (errno != ENXIO)
      return -errno; /* EINVAL: not supported here; the caller reads all */
    *start = *end = f->size;
    return 0;
  }
  off_t h = lseek(f->fd, d, SEEK_HOLE);
  if (h < 0)
    return -errno;
  *start = (uint64_t)d < f->size ? (uint64_t)d : f->size;
  *end = (uint64_t)h < f->size ? (uint64_t)h : f->size;
  return 0;
}

/* Hole reporting is on for regular files unless VHDUP_NO_SEEK_DATA is set
 * to anything but "" or "0" (to measure what it saves, bench/formats.sh). */
static int seek_data_wanted(void) {
  const char *v = getenv("VHDUP_NO_SEEK_DATA");
  return v == NULL || v[0] == '\0' || strcmp(v, "0") == 0;
}

/* Opens path read-only. Returns 0 or a libuv-style negative errno (UV_ENOENT
 * and friends), with err naming the file. */
static int file_open(const char *path, vhdup__file **out, vhdup__err *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = -errno;
    return vhdup__errf(err, e, "%s: cannot open: %s", path, strerror(-e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = -errno;
    close(fd);
    return vhdup__errf(err, e, "%s: cannot stat: %s", path, strerror(-e));
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    close(fd);
    return vhdup__errf(err, VHDUP_EINVAL, "%s: not a regular file", path);
  }
  uint64_t size = (uint64_t)st.st_size;
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    size = end < 0 ? 0 : (uint64_t)end;
  }
  vhdup__file *f = vhdup__calloc(1, sizeof(*f));
  char *copy = vhdup__strdup(path);
  if (f == NULL || copy == NULL) {
    vhdup__free(f);
    vhdup__free(copy);
    close(fd);
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: out of memory", path);
  }
  f->fd = fd;
  f->path = copy;
  f->size = size;
  f->mtime_sec = (int64_t)st.st_mtim.tv_sec;
  f->mtime_nsec = st.st_mtim.tv_nsec;
  f->src.ctx = f;
  f->src.name = f->path;
  f->src.size = size;
  f->src.read = file_read;
  /* Block devices report no holes (a thin volume's are not visible here). */
  if (S_ISREG(st.st_mode) && seek_data_wanted())
    f->src.next_data = file_next_data;
  *out = f;
  return 0;
}

void vhdup__file_close(vhdup__file *f) {
  if (f == NULL)
    return;
  close(f->fd);
  vhdup__free(f->path);
  vhdup__free(f);
}

int vhdup__file_fd(const vhdup__src *src) {
  return ((const vhdup__file *)src->ctx)->fd;
}

static int parent_open(void *ctx, const char *path, vhdup__src *out) {
  (void)ctx;
  vhdup__file *f;
  int rc = file_open(path, &f, NULL);
  if (rc != 0)
    return rc;
  *out = f->src;
  return 0;
}

static void parent_close(void *ctx, vhdup__src *src) {
  (void)ctx;
  vhdup__file_close(src->ctx);
}

/* Opens differencing parents from paths with file_open(). */
static const vhdup__parent_io file_parent_io = {NULL, parent_open, parent_close};

int vhdup__disk_open_path(const char *path, vhdup_format format, const char *parent_override,
                          vhdup__file **file, vhdup__disk **disk, vhdup__err *err) {
  *file = NULL;
  *disk = NULL;
  vhdup__file *f;
  int rc = file_open(path, &f, err);
  if (rc != 0)
    return rc;
  char *dircopy = vhdup__strdup(path);
  if (dircopy == NULL) {
    vhdup__file_close(f);
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: out of memory", path);
  }
  vhdup__open_opts o = {
      .format = format,
      .parent_io = &file_parent_io,
      .parent_override = parent_override,
      .dir = dirname(dircopy),
  };
  rc = vhdup__disk_open(&f->src, &o, disk, err);
  vhdup__free(dircopy);
  if (rc != 0) {
    vhdup__file_close(f);
    return rc;
  }
  *file = f;
  return 0;
}
