#include "upload/journal.h"

#include "util/alloc.h"
#include "util/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "vhdup-journal 1"

typedef struct span {
  uint64_t start, end; /* [start, end) */
} span;

struct vhdup__journal {
  char *path;
  int fd;
  int error;
  span *done; /* sorted, merged */
  size_t n, cap;
  span *keep; /* restrict: the intersection being built */
  size_t nkeep, capkeep;
  size_t cursor;
};

/* Closes; with remove, deletes the file (the upload is complete). */
static void journal_close(vhdup__journal *j, int remove);

static void hex(const uint8_t *b, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = '\0';
}

/* The header: every field that, if it changed, would mix two disks.
 * Returns its length, or VHDUP_ELIMIT (told in err) when it does not fit. */
static int header(const vhdup__journal_id *id, char *out, size_t size, vhdup__err *err) {
  char uuid[33];
  hex(id->uuid, 16, uuid);
  int n = snprintf(out, size,
                   MAGIC "\nsource %s\nsource-size %" PRIu64 "\nsource-mtime %" PRId64
                         ".%09ld\nsource-uuid %s\ndestination %s\nblob-size %" PRIu64 "\n",
                   id->source, id->source_size, id->mtime_sec, id->mtime_nsec, uuid,
                   id->destination, id->blob_size);
  if (n < 0 || (size_t)n >= size)
    return vhdup__errf(err, VHDUP_ELIMIT, "journal header too long (paths too long)");
  return n;
}

/* The default place: $XDG_STATE_HOME/vhdup (or ~/.local/state/vhdup), file
 * named after a hash of source and destination. Allocated in *out. */
static int journal_default_path(const vhdup__journal_id *id, char **out) {
  char base[4096];
  const char *state = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  if (state != NULL && state[0] == '/')
    snprintf(base, sizeof(base), "%s/vhdup", state);
  else if (home != NULL && home[0] == '/')
    snprintf(base, sizeof(base), "%s/.local/state/vhdup", home);
  else
    snprintf(base, sizeof(base), "/tmp/vhdup-%u", (unsigned)getuid());
  char key[8192];
  snprintf(key, sizeof(key), "%s\n%s", id->source, id->destination);
  uint8_t h[VHDUP__SHA256_LEN];
  if (vhdup__sha256(key, strlen(key), h) != 0)
    return VHDUP_ENOMEM;
  char hx[33];
  hex(h, 16, hx);
  size_t n = strlen(base) + 64;
  *out = vhdup__malloc(n);
  if (*out == NULL)
    return VHDUP_ENOMEM;
  snprintf(*out, n, "%s/%s.journal", base, hx);
  return 0;
}

/* mkdir -p of path's folder. */
static int make_parent(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s", path);
  char *slash = strrchr(tmp, '/');
  if (slash == NULL || slash == tmp)
    return 0;
  *slash = '\0';
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static vhdup__journal *journal_new(const char *path) {
  vhdup__journal *j = vhdup__calloc(1, sizeof(*j));
  if (j == NULL)
    return NULL;
  j->fd = -1;
  j->path = vhdup__strdup(path);
  if (j->path == NULL) {
    vhdup__free(j);
    return NULL;
  }
  return j;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Starts a new journal at path (replacing any old one). */
static int journal_create(const char *path, const vhdup__journal_id *id, vhdup__journal **out,
                          vhdup__err *err) {
  *out = NULL;
  char head[8192];
  int n = header(id, head, sizeof(head), err);
  if (n < 0)
    return n;
  int rc = make_parent(path);
  if (rc != 0)
    return vhdup__errf(err, rc, "%s: cannot create the journal's folder: %s", path, strerror(-rc));
  vhdup__journal *j = journal_new(path);
  if (j == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  j->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (j->fd < 0 || (rc = write_all(j->fd, head, (size_t)n)) != 0) {
    rc = j->fd < 0 ? -errno : rc;
    journal_close(j, j->fd >= 0);
    return vhdup__errf(err, rc, "%s: cannot write the journal: %s", path, strerror(-rc));
  }
  *out = j;
  return 0;
}

static int add_span(span **arr, size_t *n, size_t *cap, uint64_t start, uint64_t end) {
  if (*n > 0 && (*arr)[*n - 1].end >= start && (*arr)[*n - 1].start <= start) {
    if (end > (*arr)[*n - 1].end)
      (*arr)[*n - 1].end = end;
    return 0;
  }
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 64;
    span *na = vhdup__realloc(*arr, nc * sizeof(span));
    if (na == NULL)
      return VHDUP_ENOMEM;
    *arr = na;
    *cap = nc;
  }
  (*arr)[(*n)++] = (span){start, end};
  return 0;
}

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* Sorts and merges overlapping or touching spans. */
static void normalize(vhdup__journal *j) {
  if (j->n == 0)
    return;
  qsort(j->done, j->n, sizeof(span), cmp_span);
  size_t w = 0;
  for (size_t i = 1; i < j->n; i++) {
    if (j->done[i].start <= j->done[w].end) {
      if (j->done[i].end > j->done[w].end)
        j->done[w].end = j->done[i].end;
    } else {
      j->done[++w] = j->done[i];
    }
  }
  j->n = w + 1;
}

/* Opens an existing journal to resume: its header must match id (else
 * VHDUP_EJOURNAL, saying what changed); its finished ranges are loaded,
 * merged, and further writes are appended. A missing journal is
 * VHDUP_EJOURNAL too. A torn last line (a crash mid-write) is ignored. */
static int journal_resume(const char *path, const vhdup__journal_id *id, vhdup__journal **out,
                          vhdup__err *err) {
  *out = NULL;
  char want[8192];
  int hn = header(id, want, sizeof(want), err);
  if (hn < 0)
    return hn;
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return vhdup__errf(err, VHDUP_EJOURNAL,
                       "%s: no resume journal (%s); nothing to resume: upload without --resume "
                       "(add --overwrite if the blob exists)",
                       path, strerror(errno));
  char got[8192];
  size_t gn = fread(got, 1, (size_t)hn, f);
  if (gn != (size_t)hn || memcmp(got, want, (size_t)hn) != 0) {
    fclose(f);
    /* Say which line differs, so the user knows what changed. */
    const char *what = "its header";
    static const char *const fields[] = {"source ",      "source-size ", "source-mtime ",
                                         "source-uuid ", "destination ", "blob-size "};
    static const char *const names[] = {
        "the source path", "the source's size", "the source's modification time",
        "the disk's UUID", "the destination",   "the blob size"};
    for (size_t i = 0; i < 6; i++) {
      const char *a = strstr(want, fields[i]);
      const char *b = gn > 0 ? memmem(got, gn, fields[i], strlen(fields[i])) : NULL;
      size_t la = a ? strcspn(a, "\n") : 0;
      if (a != NULL && (b == NULL || (size_t)(got + gn - b) < la || memcmp(a, b, la) != 0 ||
                        (b + la < got + gn && b[la] != '\n'))) {
        what = names[i];
        break;
      }
    }
    return vhdup__errf(err, VHDUP_EJOURNAL,
                       "%s: the journal belongs to another upload: %s changed since it was "
                       "written; refusing to mix two disks (start again with --overwrite)",
                       path, what);
  }
  vhdup__journal *j = journal_new(path);
  if (j == NULL) {
    fclose(f);
    return vhdup__errf(err, VHDUP_ENOMEM, "out of memory");
  }
  char line[128];
  int rc = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    uint64_t off, len;
    char nl;
    /* A line without its newline was torn by a crash: not a finished write. */
    if (sscanf(line, "W %" SCNu64 " %" SCNu64 "%c", &off, &len, &nl) != 3 || nl != '\n' ||
        len == 0 || off + len < off || off + len > id->blob_size)
      continue;
    rc = add_span(&j->done, &j->n, &j->cap, off, off + len);
    if (rc != 0)
      break;
  }
  fclose(f);
  if (rc == 0) {
    normalize(j);
    j->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (j->fd < 0)
      rc = -errno;
  }
  if (rc != 0) {
    journal_close(j, 0);
    return vhdup__errf(err, rc, "%s: cannot read the journal: %s", path, vhdup_strerror(rc));
  }
  *out = j;
  return 0;
}

int vhdup__journal_is_done(const vhdup__journal *j, uint64_t offset, uint64_t length) {
  size_t lo = 0, hi = j->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (j->done[mid].end <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < j->n && j->done[lo].start <= offset && j->done[lo].end >= offset + length;
}

int vhdup__journal_restrict_add(vhdup__journal *j, uint64_t start, uint64_t end) {
  uint64_t e = end + 1;
  while (j->cursor < j->n && j->done[j->cursor].end <= start)
    j->cursor++;
  for (size_t i = j->cursor; i < j->n && j->done[i].start < e; i++) {
    uint64_t a = j->done[i].start > start ? j->done[i].start : start;
    uint64_t b = j->done[i].end < e ? j->done[i].end : e;
    if (a < b) {
      int rc = add_span(&j->keep, &j->nkeep, &j->capkeep, a, b);
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}

void vhdup__journal_restrict_end(vhdup__journal *j) {
  vhdup__free(j->done);
  j->done = j->keep;
  j->n = j->nkeep;
  j->cap = j->capkeep;
  j->keep = NULL;
  j->nkeep = j->capkeep = 0;
  j->cursor = 0;
}

void vhdup__journal_record(vhdup__journal *j, uint64_t offset, uint64_t length) {
  if (j->fd < 0 || j->error != 0)
    return;
  char line[64];
  int n = snprintf(line, sizeof(line), "W %" PRIu64 " %" PRIu64 "\n", offset, length);
  int rc = write_all(j->fd, line, (size_t)n);
  if (rc != 0)
    j->error = rc;
}

static void journal_close(vhdup__journal *j, int remove) {
  if (j == NULL)
    return;
  if (j->fd >= 0)
    close(j->fd);
  if (remove)
    unlink(j->path);
  vhdup__free(j->done);
  vhdup__free(j->keep);
  vhdup__free(j->path);
  vhdup__free(j);
}

/* ---- resume rules ---- */

int vhdup__resume_locate(vhdup__resume *r, const char *source, const char *destination,
                         const char *journal_path, int resume) {
  memset(r, 0, sizeof(*r));
  r->resume = resume;
  char abs[PATH_MAX];
  if (realpath(source, abs) != NULL && (r->source_abs = vhdup__strdup(abs)) == NULL)
    return VHDUP_ENOMEM;
  r->destination = vhdup__strndup(destination, strcspn(destination, "?"));
  if (r->destination == NULL)
    return VHDUP_ENOMEM;
  if (journal_path != NULL) {
    r->path = vhdup__strdup(journal_path);
    return r->path == NULL ? VHDUP_ENOMEM : 0;
  }
  vhdup__journal_id id = {.source = r->source_abs ? r->source_abs : source,
                          .destination = r->destination};
  return journal_default_path(&id, &r->path);
}

int vhdup__resume_open(vhdup__resume *r, const vhdup__journal_id *id, vhdup__err *err) {
  if (r->source_abs == NULL)
    return vhdup__errf(err, VHDUP_EIO, "%s: cannot resolve its absolute path", id->source);
  r->id = *id;
  r->id.source = r->source_abs;
  r->id.destination = r->destination;
  if (r->resume)
    return journal_resume(r->path, &r->id, &r->journal, err);
  return 0;
}

int vhdup__resume_prepared(vhdup__resume *r, vhdup__err *err) {
  r->prepared = 1;
  if (r->resume || r->path == NULL || r->journal != NULL)
    return 0;
  int rc = journal_create(r->path, &r->id, &r->journal, err);
  if (rc != 0)
    r->journal = NULL;
  return rc;
}

void vhdup__resume_end(vhdup__resume *r, int status, char *msg, size_t msg_size) {
  size_t n = strlen(msg);
  if (r->journal != NULL) {
    if (status != 0 && r->prepared)
      snprintf(msg + n, msg_size - n,
               "%sthe upload can be resumed: run the same command with --resume (journal %s)",
               n ? "; " : "", r->path);
    journal_close(r->journal, status == 0);
    r->journal = NULL;
  } else if (status == VHDUP_ECANCELED && !r->prepared) {
    snprintf(msg + n, msg_size - n,
             "%sstopped before the destination was ready, so there is nothing to resume: "
             "run the same command again",
             n ? "; " : "");
  }
}

void vhdup__resume_free(vhdup__resume *r) {
  journal_close(r->journal, 0);
  vhdup__free(r->path);
  vhdup__free(r->destination);
  vhdup__free(r->source_abs);
  memset(r, 0, sizeof(*r));
}
