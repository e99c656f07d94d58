/* The manifest module: the YAML file of `vhdup run` (docs/manifest.md) in,
 * plain structs out. It owns the schema (which keys exist, their types and
 * ranges, defaults and per-upload keys), named credentials kept as
 * *references* (inline text, an environment variable's name, or a file path:
 * nothing is resolved while parsing), and the diagnostics, every problem at
 * once as "FILE:LINE:COL: error: MESSAGE".
 *
 * Pure: libyaml and string work only. No uv.h, no curl, no file access of
 * its own; the caller injects the few questions that need I/O (does this
 * source exist, what is in this environment variable or key file). Secrets
 * never appear in diagnostics.
 *
 * Limits, so hostile input cannot make it allocate without bound: the text
 * (VHDUP__MANIFEST_MAX_BYTES), the uploads, the nesting depth, the YAML
 * nodes, and the number of diagnostics kept. YAML aliases (*name) are refused:
 * a manifest spells out every value, and "billion laughs" expansions cannot
 * happen. Everything this module allocates goes through util/alloc.h;
 * libyaml's own working memory (bounded by the input) does not. */
#ifndef VHDUP_MANIFEST_MANIFEST_H
#define VHDUP_MANIFEST_MANIFEST_H

#include "vhdup_enums.h"
#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

#define VHDUP__MANIFEST_MAX_BYTES ((size_t)4 << 20) /* the file itself */
#define VHDUP__MANIFEST_MAX_UPLOADS 10000u
#define VHDUP__MANIFEST_MAX_DEPTH 32u     /* nested mappings and sequences */
#define VHDUP__MANIFEST_MAX_NODES 500000u /* YAML scalars, mappings, sequences */
#define VHDUP__MANIFEST_MAX_DIAGS 100u    /* then one "too many problems" */

/* The range of `memory` (docs/manifest.md); the defaults of every setting
 * are util/defaults.h's, shared with the CLI and the library. */
#define VHDUP__MANIFEST_MIN_MEMORY ((uint64_t)8 << 20)
#define VHDUP__MANIFEST_MAX_MEMORY ((uint64_t)1 << 40)

/* ---- Diagnostics ------------------------------------------------------ */

typedef enum vhdup__manifest_severity {
  VHDUP__MANIFEST_ERROR = 0,
  VHDUP__MANIFEST_WARNING,
} vhdup__manifest_severity;

/* One problem, in a list sorted by position. */
typedef struct vhdup__manifest_diag {
  struct vhdup__manifest_diag *next;
  unsigned line, col; /* 1-based; 0:0 when about the whole file */
  vhdup__manifest_severity severity;
  const char *message; /* the problem alone, pointing into text */
  char text[];         /* "FILE:LINE:COL: error: MESSAGE" (or "warning:") */
} vhdup__manifest_diag;

/* Frees a whole list (NULL is fine). */
void vhdup__manifest_diags_free(vhdup__manifest_diag *list);

/* ---- The manifest ----------------------------------------------------- */

/* Where a secret is: remembered, never looked up while parsing. */
typedef enum vhdup__manifest_secret_kind {
  VHDUP__MANIFEST_SECRET_INLINE = 1, /* value is the secret (warned about) */
  VHDUP__MANIFEST_SECRET_ENV,        /* value names an environment variable */
  VHDUP__MANIFEST_SECRET_FILE,       /* value is a path, already resolved against
                                      * the manifest's folder (and ~/) */
} vhdup__manifest_secret_kind;

typedef struct vhdup__manifest_secret {
  vhdup__manifest_secret_kind kind;
  const char *value;
  const char *file;   /* the manifest's name, for messages */
  unsigned line, col; /* where the reference was written */
} vhdup__manifest_secret;

typedef enum vhdup__manifest_cred_kind {
  VHDUP__MANIFEST_CRED_CONNECTION_STRING = 1, /* secret: the connection string */
  VHDUP__MANIFEST_CRED_SHARED_KEY,            /* account + secret: the base64 key */
  VHDUP__MANIFEST_CRED_SAS,                   /* secret: the SAS query (sv=...&sig=...) */
} vhdup__manifest_cred_kind;

typedef struct vhdup__manifest_credential {
  const char *name;
  vhdup__manifest_cred_kind kind;
  const char *account;  /* NULL when not given (connection string, SAS) */
  const char *endpoint; /* blob endpoint URL given, or NULL */
  vhdup__manifest_secret secret;
  unsigned line, col;
} vhdup__manifest_credential;

/* What one upload does: the defaults with the upload's own keys applied.
 * Fields map one to one onto vhdup_job_options (retries is
 * target.max_attempts; allow_http and service_version are in target too). */
typedef struct vhdup__manifest_settings {
  unsigned per_blob_connections; /* 0: no cap below the shared connections */
  int md5, crc64, disk_md5, resize, overwrite, create_container, resume, allow_http;
  vhdup_verify verify;
  vhdup_format format;
  unsigned retries;
  size_t merge_gap;
  const char *service_version; /* NULL: the library's */
} vhdup__manifest_settings;

typedef struct vhdup__manifest_upload {
  const char *source;      /* resolved against the manifest's folder */
  const char *parent;      /* resolved, or NULL */
  const char *journal;     /* resolved, or NULL */
  const char *destination; /* for vhdup_job_options.target.url: the URL as
                            * written (a SAS query included), or built from
                            * the credential's endpoint or account and
                            * container/blob, or CONTAINER/BLOB with a
                            * connection string */
  const char *container;   /* when given as container + blob, else NULL */
  const char *blob;
  const vhdup__manifest_credential *credential; /* NULL: the URL has a SAS */
  vhdup__manifest_settings settings;
  unsigned line, col; /* the upload's entry */
} vhdup__manifest_upload;

typedef struct vhdup__manifest {
  const char *file;     /* as given to the parser */
  const char *base_dir; /* as given to the parser */
  unsigned version;     /* 1 */
  /* Shared by all uploads (an engine's options). */
  unsigned connections;
  uint64_t memory;
  const char *ca_file; /* resolved, or NULL */
  vhdup__manifest_settings defaults;
  size_t credential_count;
  vhdup__manifest_credential *credentials;
  size_t upload_count;
  vhdup__manifest_upload *uploads;
  struct vhdup__manifest_arena *arena; /* owns every string above */
} vhdup__manifest;

/* The questions that need I/O, answered by the caller. Every member may be
 * NULL: checks without an answer are skipped. */
typedef struct vhdup__manifest_env {
  /* Nonzero when path names a readable regular file. */
  int (*file_exists)(void *ctx, const char *path);
  const char *home; /* for "~/" paths; NULL: "~/" is an error */
  void *ctx;
} vhdup__manifest_env;

/* Parses and validates text (len bytes, not NUL-terminated; at most
 * VHDUP__MANIFEST_MAX_BYTES). file_name is used in messages; relative
 * paths are resolved against base_dir (NULL, "" or ".": left as written). All
 * problems are collected, sorted by position, into *diags (NULL when there
 * are none; warnings come back on success too; free with
 * vhdup__manifest_diags_free). On success *out is the manifest (free with
 * vhdup__manifest_free), else NULL.
 * Returns 0; VHDUP_EMANIFEST when there was at least one error (too large,
 * YAML syntax, schema, missing file); VHDUP_ENOMEM (and *diags is NULL);
 * VHDUP_EINVAL for NULL text, file_name, out or diags. */
int vhdup__manifest_parse(const char *text, size_t len, const char *file_name, const char *base_dir,
                          const vhdup__manifest_env *env, vhdup__manifest **out,
                          vhdup__manifest_diag **diags) __attribute__((warn_unused_result));

/* Frees m and wipes the memory that held its strings (inline secrets). NULL
 * is fine. */
void vhdup__manifest_free(vhdup__manifest *m);

/* ---- Secrets ---------------------------------------------------------- */

/* getenv: the variable's value or NULL. read_file: up to max bytes of the
 * file into *out (allocated with vhdup__malloc; not NUL-terminated) and
 * their count into *len; returns 0, VHDUP_ELIMIT (longer than max) or a
 * negative errno / libuv code. */
typedef const char *(*vhdup__manifest_getenv_fn)(void *ctx, const char *name);
typedef int (*vhdup__manifest_read_file_fn)(void *ctx, const char *path, size_t max, char **out,
                                            size_t *len);

/* Looks the secret up: inline text as is, an environment variable through
 * getenv_fn, a file through read_file_fn (asked for at most
 * VHDUP__SECRET_MAX bytes), then applies util/secret.h's rule
 * (vhdup__secret_take). *out is a NUL-terminated copy (free with
 * vhdup__secret_free, which wipes it). The message in err names
 * where the reference was written and the variable or file, never the
 * secret.
 * Returns 0; VHDUP_ECREDENTIAL (variable not set, empty secret, several
 * lines or control characters); VHDUP_ELIMIT (longer than
 * VHDUP__SECRET_MAX); VHDUP_EIO or read_file_fn's code (cannot
 * read the file); VHDUP_EINVAL (NULL ref or out, or the callback its kind
 * needs is NULL); VHDUP_ENOMEM. */
int vhdup__manifest_resolve_secret(const vhdup__manifest_secret *ref,
                                   vhdup__manifest_getenv_fn getenv_fn,
                                   vhdup__manifest_read_file_fn read_file_fn, void *ctx, char **out,
                                   vhdup__err *err) __attribute__((warn_unused_result));

/* ---- Helpers shared with the CLI -------------------------------------- */

/* "64M", "512", "1GiB" (K, M, G, T are powers of 1024). Returns 0 or
 * VHDUP_EINVAL. */
int vhdup__manifest_parse_size(const char *s, uint64_t *out);

#endif
