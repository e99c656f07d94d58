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

/* Non-zero when [offset, offset + length) was finished before. */
int vhdup__journal_is_done(const vhdup__journal *j, uint64_t offset, uint64_t length);

/* Keeps only what also lies inside [start, end] ranges the destination
 * reports: call for each of the blob's page ranges in order, then
 * vhdup__journal_restrict_end(). */
int vhdup__journal_restrict_add(vhdup__journal *j, uint64_t start, uint64_t end)
    __attribute__((warn_unused_result));
void vhdup__journal_restrict_end(vhdup__journal *j);

/* Appends a finished write. The first error stops further appends rather
 * than the upload: a journal that cannot be written only costs a resume. */
void vhdup__journal_record(vhdup__journal *j, uint64_t offset, uint64_t length);

/* ---- The resume rules, in one place: where an upload's journal lives,
 * which journal may continue which upload, when a journal starts and when
 * it is kept. ---- */

typedef struct vhdup__resume {
  char *path;        /* the journal's file */
  char *destination; /* the destination without its query */
  char *source_abs;  /* the source's absolute path; NULL if it has none */
  int resume;        /* continue an earlier upload */
  int prepared;      /* the destination is ready: a journal is worth keeping */
  vhdup__journal_id id;
  vhdup__journal *journal; /* open while resuming, or once prepared */
} vhdup__resume;

/* Locates the journal: journal_path when given, else the default place for
 * the source's absolute path and the destination without its query (so a
 * fresh SAS can finish an upload another SAS began). */
int vhdup__resume_locate(vhdup__resume *r, const char *source, const char *destination,
                         const char *journal_path, int resume) __attribute__((warn_unused_result));

/* Fixes the upload's identity (id's source and destination are filled in
 * here) and, when resuming, opens the journal: it must belong to exactly
 * this source and destination (VHDUP_EJOURNAL otherwise). */
int vhdup__resume_open(vhdup__resume *r, const vhdup__journal_id *id, vhdup__err *err)
    __attribute__((warn_unused_result));

/* The destination is ready. A new upload starts its journal now, not
 * earlier, so a refused destination never replaces the journal of an
 * upload that could still be resumed. An error only costs resuming. */
int vhdup__resume_prepared(vhdup__resume *r, vhdup__err *err) __attribute__((warn_unused_result));

/* The upload ended with status: a complete upload removes its journal; one
 * that failed after the destination was ready keeps it and says how to
 * resume, appending to msg. */
void vhdup__resume_end(vhdup__resume *r, int status, char *msg, size_t msg_size);

void vhdup__resume_free(vhdup__resume *r);

#endif
