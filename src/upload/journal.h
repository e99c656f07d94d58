/* The resume journal: a small text file that says which disk is going to
 * which blob, followed by one line per finished write ("W offset length").
 * A line is written with one write(2) as soon as the destination confirms a
 * write, so after a crash or kill -9 only the writes that were in flight are
 * sent again. No libuv: plain POSIX file I/O, a few bytes per request. */
#ifndef VHDUP_UPLOAD_JOURNAL_H
#define VHDUP_UPLOAD_JOURNAL_H

#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

/* What ties a journal to one upload: the source's identity (path, size,
 * modification time, the VHD's UUID) and the destination (its URL without
 * the query, so a fresh SAS can finish an upload another SAS began). */
typedef struct vhdup__journal_id {
  const char *source; /* absolute path */
  uint64_t source_size;
  int64_t mtime_sec;
  long mtime_nsec;
  uint8_t uuid[16];
  const char *destination; /* scheme://host/path, no query */
  uint64_t blob_size;
} vhdup__journal_id;

typedef struct vhdup__journal vhdup__journal;

/* The default place: $XDG_STATE_HOME/vhdup (or ~/.local/state/vhdup), file
 * named after a hash of source and destination. Allocated in *out. */
int vhdup__journal_default_path(const vhdup__journal_id *id, char **out)
    __attribute__((warn_unused_result));

/* Starts a new journal at path (replacing any old one). */
int vhdup__journal_create(const char *path, const vhdup__journal_id *id, vhdup__journal **out,
                          vhdup__err *err) __attribute__((warn_unused_result));

/* Opens an existing journal to resume: its header must match id (else
 * VHDUP_EJOURNAL, saying what changed); its finished ranges are loaded,
 * merged, and further writes are appended. A missing journal is
 * VHDUP_EJOURNAL too. A torn last line (a crash mid-write) is ignored. */
int vhdup__journal_resume(const char *path, const vhdup__journal_id *id, vhdup__journal **out,
                          vhdup__err *err) __attribute__((warn_unused_result));

/* Non-zero when [offset, offset + length) was finished before. */
int vhdup__journal_is_done(const vhdup__journal *j, uint64_t offset, uint64_t length);

/* Bytes the loaded ranges cover. */
uint64_t vhdup__journal_done_bytes(const vhdup__journal *j);

/* Keeps only what also lies inside [start, end] ranges the destination
 * reports: call for each of the blob's page ranges in order, then
 * vhdup__journal_restrict_end(). */
int vhdup__journal_restrict_add(vhdup__journal *j, uint64_t start, uint64_t end)
    __attribute__((warn_unused_result));
void vhdup__journal_restrict_end(vhdup__journal *j);

/* Appends a finished write. Errors are remembered (vhdup__journal_error)
 * rather than stopping the upload: a journal that cannot be written only
 * costs a resume. */
void vhdup__journal_record(vhdup__journal *j, uint64_t offset, uint64_t length);
int vhdup__journal_error(const vhdup__journal *j);

const char *vhdup__journal_path(const vhdup__journal *j);

/* Closes; with remove, deletes the file (the upload is complete). */
void vhdup__journal_close(vhdup__journal *j, int remove);

#endif
