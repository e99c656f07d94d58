#include "upload/sink_file.h"

#include "util/alloc.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_sink {
  vhdup__sink base;
  uv_loop_t *loop;
  char *path;
  char *tmp;
  int force;
  uv_file fd;
  int renamed;
  uv_fs_t req; /* prepare and finish, one at a time */
  uint64_t size;
  vhdup__sink_cb cb;
  void *cb_data;
  char message[512];
} file_sink;

typedef struct file_write {
  uv_fs_t req;
  vhdup__sink_write *w;
  file_sink *fs;
  size_t done;
} file_write;

static void step_done(file_sink *fs, int error) {
  vhdup__sink_result r = {.error = error, .message = error ? fs->message : NULL};
  fs->cb(&fs->base, &r, fs->cb_data);
}

static void truncated(uv_fs_t *req) {
  file_sink *fs = req->data;
  int rc = (int)req->result;
  uv_fs_req_cleanup(req);
  if (rc < 0)
    snprintf(fs->message, sizeof(fs->message), "%s: cannot set size: %s", fs->tmp, uv_strerror(rc));
  fs->base.info.size = fs->size;
  step_done(fs, rc < 0 ? rc : 0);
}

static void opened(uv_fs_t *req) {
  file_sink *fs = req->data;
  int rc = (int)req->result;
  uv_fs_req_cleanup(req);
  if (rc < 0) {
    snprintf(fs->message, sizeof(fs->message), "%s: cannot create: %s", fs->tmp, uv_strerror(rc));
    step_done(fs, rc);
    return;
  }
  fs->fd = rc;
  rc = uv_fs_ftruncate(fs->loop, &fs->req, fs->fd, (int64_t)fs->size, truncated);
  if (rc != 0) {
    snprintf(fs->message, sizeof(fs->message), "%s: %s", fs->tmp, uv_strerror(rc));
    step_done(fs, rc);
  }
}

static void fs_prepare(vhdup__sink *s, uint64_t size, vhdup__sink_cb cb, void *data) {
  file_sink *fs = (file_sink *)s;
  fs->cb = cb;
  fs->cb_data = data;
  fs->size = size;
  fs->req.data = fs;
  int rc = uv_fs_open(fs->loop, &fs->req, fs->tmp,
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644, opened);
  if (rc != 0) {
    snprintf(fs->message, sizeof(fs->message), "%s: %s", fs->tmp, uv_strerror(rc));
    step_done(fs, rc);
  }
}

static int start_chunk(file_write *fw);

static void written(uv_fs_t *req) {
  file_write *fw = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  if (n > 0) {
    fw->done += (size_t)n;
    if (fw->done < fw->w->length && start_chunk(fw) == 0)
      return;
  }
  vhdup__sink_write *w = fw->w;
  file_sink *fs = fw->fs;
  vhdup__free(fw);
  vhdup__sink_result r = {0};
  if (n <= 0) {
    r.error = n < 0 ? (int)n : VHDUP_EIO;
    snprintf(fs->message, sizeof(fs->message), "%s: write failed: %s", fs->tmp,
             vhdup_strerror(r.error));
    r.message = fs->message;
  }
  w->cb(w, &r);
}

static int start_chunk(file_write *fw) {
  vhdup__sink_write *w = fw->w;
  uv_buf_t b = uv_buf_init((char *)w->data + fw->done, (unsigned)(w->length - fw->done));
  fw->req.data = fw;
  return uv_fs_write(fw->fs->loop, &fw->req, fw->fs->fd, &b, 1, (int64_t)(w->offset + fw->done),
                     written);
}

static int fs_write(vhdup__sink *s, vhdup__sink_write *w) {
  file_sink *fs = (file_sink *)s;
  if (w->offset + w->length > fs->size)
    return VHDUP_EINVAL;
  file_write *fw = vhdup__calloc(1, sizeof(*fw));
  if (fw == NULL)
    return VHDUP_ENOMEM;
  fw->w = w;
  fw->fs = fs;
  int rc = start_chunk(fw);
  if (rc != 0)
    vhdup__free(fw);
  return rc;
}

static void renamed(uv_fs_t *req) {
  file_sink *fs = req->data;
  int rc = (int)req->result;
  uv_fs_req_cleanup(req);
  if (rc < 0)
    snprintf(fs->message, sizeof(fs->message), "cannot rename %s to %s: %s", fs->tmp, fs->path,
             uv_strerror(rc));
  else
    fs->renamed = 1;
  step_done(fs, rc < 0 ? rc : 0);
}

static void closed(uv_fs_t *req) {
  file_sink *fs = req->data;
  int rc = (int)req->result;
  uv_fs_req_cleanup(req);
  fs->fd = -1;
  if (rc < 0) {
    snprintf(fs->message, sizeof(fs->message), "%s: close failed: %s", fs->tmp, uv_strerror(rc));
    step_done(fs, rc);
    return;
  }
  if (!fs->force && access(fs->path, F_OK) == 0) {
    snprintf(fs->message, sizeof(fs->message), "%s appeared while writing; left output in %s",
             fs->path, fs->tmp);
    step_done(fs, VHDUP_EEXIST);
    return;
  }
  rc = uv_fs_rename(fs->loop, &fs->req, fs->tmp, fs->path, renamed);
  if (rc != 0)
    step_done(fs, rc);
}

static void synced(uv_fs_t *req) {
  file_sink *fs = req->data;
  int rc = (int)req->result;
  uv_fs_req_cleanup(req);
  if (rc < 0) {
    snprintf(fs->message, sizeof(fs->message), "%s: fsync failed: %s", fs->tmp, uv_strerror(rc));
    step_done(fs, rc);
    return;
  }
  rc = uv_fs_close(fs->loop, &fs->req, fs->fd, closed);
  if (rc != 0)
    step_done(fs, rc);
}

/* The data reaches the disk before the file gets its final name, so a crash
 * never leaves a complete-looking but partly unwritten OUT. */
static void fs_finish(vhdup__sink *s, const uint8_t *disk_md5, vhdup__sink_cb cb, void *data) {
  file_sink *fs = (file_sink *)s;
  (void)disk_md5;
  fs->cb = cb;
  fs->cb_data = data;
  fs->req.data = fs;
  int rc = uv_fs_fsync(fs->loop, &fs->req, fs->fd, synced);
  if (rc != 0)
    step_done(fs, rc);
}

static void fs_abort(vhdup__sink *s) {
  (void)s; /* local writes finish quickly; nothing to abandon */
}

static void fs_close(vhdup__sink *s, void (*close_cb)(vhdup__sink *s)) {
  file_sink *fs = (file_sink *)s;
  if (fs->fd >= 0)
    close(fs->fd);
  if (!fs->renamed)
    unlink(fs->tmp);
  if (close_cb != NULL)
    close_cb(s);
  vhdup__free(fs->path);
  vhdup__free(fs->tmp);
  vhdup__free(fs);
}

static const vhdup__sink_ops file_sink_ops = {
    .prepare = fs_prepare,
    .write = fs_write,
    .finish = fs_finish,
    .abort = fs_abort,
    .close = fs_close,
};

int vhdup__file_sink_new(uv_loop_t *loop, const char *path, int force, vhdup__sink **out,
                         vhdup__err *err) {
  *out = NULL;
  if (!force && access(path, F_OK) == 0)
    return vhdup__errf(err, VHDUP_EEXIST, "%s: already exists; use --force to replace it", path);
  file_sink *fs = vhdup__calloc(1, sizeof(*fs));
  size_t n = strlen(path) + sizeof(".partial");
  char *tmp = vhdup__malloc(n);
  char *copy = vhdup__strdup(path);
  if (fs == NULL || tmp == NULL || copy == NULL) {
    vhdup__free(fs);
    vhdup__free(tmp);
    vhdup__free(copy);
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  snprintf(tmp, n, "%s.partial", path);
  fs->base.ops = &file_sink_ops;
  fs->base.max_in_flight = 16;
  fs->base.info.can_set_properties = 0;
  fs->loop = loop;
  fs->path = copy;
  fs->tmp = tmp;
  fs->force = force;
  fs->fd = -1;
  *out = &fs->base;
  return 0;
}
