/* Blobs as sparse files: DIR/ACCOUNT/CONTAINER/BLOB.data, whose length is
 * the blob size, so a test can compare it byte for byte with the expected
 * disk. The written page ranges live only in memory (sorted, merged), which
 * is all Get Page Ranges needs; nothing else is persisted. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = ts_xmalloc(n);
  memcpy(p, s, n);
  return p;
}

/* mkdir -p for every directory component of path (not the last one). */
static int make_parents(const char *path) {
  char *p = xstrdup(path);
  for (char *s = p + 1; *s != '\0'; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      int e = errno;
      free(p);
      return -e;
    }
    *s = '/';
  }
  free(p);
  return 0;
}

static char *blob_path(const ts_store *s, const char *container, const char *name) {
  sbuf b;
  sbuf_init(&b);
  sbuf_printf(&b, "%s/%s/%s/%s.data", s->cfg->store_dir, s->cfg->account, container, name);
  return b.p;
}

int ts_store_init(ts_store *s, const ts_config *cfg) {
  memset(s, 0, sizeof(*s));
  s->cfg = cfg;
  return 0;
}

static void blob_free(ts_blob *b) {
  if (b->fd >= 0)
    close(b->fd);
  free(b->container);
  free(b->name);
  free(b->path);
  free(b->ranges);
  free(b);
}

void ts_store_free(ts_store *s) {
  for (size_t i = 0; i < s->ncontainers; i++)
    free(s->containers[i]);
  free(s->containers);
  while (s->blobs != NULL) {
    ts_blob *b = s->blobs;
    s->blobs = b->next;
    blob_free(b);
  }
}

bool ts_store_has_container(const ts_store *s, const char *container) {
  for (size_t i = 0; i < s->ncontainers; i++)
    if (strcmp(s->containers[i], container) == 0)
      return true;
  return false;
}

int ts_store_create_container(ts_store *s, const char *container) {
  if (ts_store_has_container(s, container))
    return 1;
  if (!s->cfg->sink) {
    sbuf dir;
    sbuf_init(&dir);
    sbuf_printf(&dir, "%s/%s/%s/", s->cfg->store_dir, s->cfg->account, container);
    int rc = make_parents(dir.p);
    sbuf_free(&dir);
    if (rc != 0)
      return rc;
  }
  s->containers = ts_xrealloc(s->containers, (s->ncontainers + 1) * sizeof(char *));
  s->containers[s->ncontainers++] = xstrdup(container);
  return 0;
}

ts_blob *ts_store_find(ts_store *s, const char *container, const char *name) {
  for (ts_blob *b = s->blobs; b != NULL; b = b->next)
    if (strcmp(b->container, container) == 0 && strcmp(b->name, name) == 0)
      return b;
  return NULL;
}

void ts_store_touch(ts_store *s, ts_blob *b) {
  b->etag = ++s->etag_counter;
}

ts_blob *ts_store_create_blob(ts_store *s, const char *container, const char *name, uint64_t size) {
  ts_blob *b = ts_store_find(s, container, name);
  if (b == NULL) {
    b = ts_xmalloc(sizeof(*b));
    memset(b, 0, sizeof(*b));
    b->fd = -1;
    b->container = xstrdup(container);
    b->name = xstrdup(name);
    if (!s->cfg->sink) {
      b->path = blob_path(s, container, name);
      int rc = make_parents(b->path);
      if (rc == 0)
        b->fd = open(b->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      if (rc != 0 || b->fd < 0) {
        int e = rc != 0 ? -rc : errno;
        blob_free(b);
        errno = e;
        return NULL;
      }
    }
    b->next = s->blobs;
    s->blobs = b;
  }
  /* Put Blob replaces the whole blob: drop old pages, then set the size. */
  if (b->fd >= 0 && (ftruncate(b->fd, 0) != 0 || ftruncate(b->fd, (off_t)size) != 0))
    return NULL;
  b->size = size;
  b->nranges = 0;
  b->content_md5[0] = '\0';
  ts_store_touch(s, b);
  return b;
}

int ts_store_delete_blob(ts_store *s, ts_blob *b) {
  for (ts_blob **pp = &s->blobs; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == b) {
      *pp = b->next;
      if (b->path != NULL)
        unlink(b->path);
      blob_free(b);
      return 0;
    }
  }
  return -ENOENT;
}

/* Removes [start, end) from the range list, splitting a range if needed. */
static void ranges_subtract(ts_blob *b, uint64_t start, uint64_t end) {
  size_t out = 0;
  ts_range extra = {0, 0};
  bool have_extra = false;
  for (size_t i = 0; i < b->nranges; i++) {
    ts_range r = b->ranges[i];
    if (r.end <= start || r.start >= end) {
      b->ranges[out++] = r;
      continue;
    }
    if (r.start < start)
      b->ranges[out++] = (ts_range){r.start, start};
    if (r.end > end) {
      /* Only one range can straddle both ends; it is re-inserted below. */
      extra = (ts_range){end, r.end};
      have_extra = true;
    }
  }
  b->nranges = out;
  if (have_extra) {
    if (b->nranges == b->cap) {
      b->cap = b->cap ? b->cap * 2 : 16;
      b->ranges = ts_xrealloc(b->ranges, b->cap * sizeof(ts_range));
    }
    size_t pos = 0;
    while (pos < b->nranges && b->ranges[pos].start < extra.start)
      pos++;
    memmove(&b->ranges[pos + 1], &b->ranges[pos], (b->nranges - pos) * sizeof(ts_range));
    b->ranges[pos] = extra;
    b->nranges++;
  }
}

/* Adds [start, end), merging with overlapping or adjacent ranges, as Azure
 * reports adjacent written pages as one range. */
static void ranges_add(ts_blob *b, uint64_t start, uint64_t end) {
  ranges_subtract(b, start, end);
  size_t pos = 0;
  while (pos < b->nranges && b->ranges[pos].start < start)
    pos++;
  bool join_prev = pos > 0 && b->ranges[pos - 1].end == start;
  bool join_next = pos < b->nranges && b->ranges[pos].start == end;
  if (join_prev && join_next) {
    b->ranges[pos - 1].end = b->ranges[pos].end;
    memmove(&b->ranges[pos], &b->ranges[pos + 1], (b->nranges - pos - 1) * sizeof(ts_range));
    b->nranges--;
  } else if (join_prev) {
    b->ranges[pos - 1].end = end;
  } else if (join_next) {
    b->ranges[pos].start = start;
  } else {
    if (b->nranges == b->cap) {
      b->cap = b->cap ? b->cap * 2 : 16;
      b->ranges = ts_xrealloc(b->ranges, b->cap * sizeof(ts_range));
    }
    memmove(&b->ranges[pos + 1], &b->ranges[pos], (b->nranges - pos) * sizeof(ts_range));
    b->ranges[pos] = (ts_range){start, end};
    b->nranges++;
  }
}

static int write_all(int fd, const void *data, uint64_t len, uint64_t off) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len > (1u << 30) ? (1u << 30) : (size_t)len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    off += (uint64_t)n;
    len -= (uint64_t)n;
  }
  return 0;
}

static int zero_range(int fd, uint64_t off, uint64_t len) {
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
    return 0;
  /* Some filesystems cannot punch holes; zeros read back the same. */
  static const char zeros[65536];
  while (len > 0) {
    uint64_t n = len < sizeof(zeros) ? len : sizeof(zeros);
    int rc = write_all(fd, zeros, n, off);
    if (rc != 0)
      return rc;
    off += n;
    len -= n;
  }
  return 0;
}

int ts_store_write(ts_store *s, ts_blob *b, uint64_t off, const void *data, uint64_t len) {
  if (b->fd >= 0) {
    int rc = data != NULL ? write_all(b->fd, data, len, off) : zero_range(b->fd, off, len);
    if (rc != 0)
      return rc;
  }
  if (!s->cfg->sink) {
    if (data != NULL)
      ranges_add(b, off, off + len);
    else
      ranges_subtract(b, off, off + len);
  }
  ts_store_touch(s, b);
  return 0;
}

int ts_store_read(const ts_blob *b, uint64_t off, void *out, size_t len) {
  if (b->fd < 0) {
    memset(out, 0, len);
    return 0;
  }
  char *p = out;
  while (len > 0) {
    ssize_t n = pread(b->fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0) {
      memset(p, 0, len);
      return 0;
    }
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

int ts_store_resize(ts_store *s, ts_blob *b, uint64_t size) {
  if (b->fd >= 0 && ftruncate(b->fd, (off_t)size) != 0)
    return -errno;
  if (size < b->size)
    ranges_subtract(b, size, UINT64_MAX);
  b->size = size;
  ts_store_touch(s, b);
  return 0;
}
