/* The public job API: a job opens and validates its source, decides the
 * blob's size and footer, picks a sink (Azure, a local file or nothing)
 * and runs a pipeline into it. */
#include "vhdup.h"

#include "azure/azure.h"
#include "upload/file_src.h"
#include "upload/job_int.h"
#include "upload/pipeline.h"
#include "upload/sink_azure.h"
#include "upload/sink_file.h"
#include "upload/sink_null.h"
#include "util/alloc.h"
#include "util/defaults.h"
#include "util/secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024ull * 1024)

void vhdup_job_options_init(vhdup_job_options *o) {
  memset(o, 0, sizeof(*o));
  vhdup_blob_target_init(&o->target);
  o->target.max_attempts = VHDUP__DEFAULT_MAX_ATTEMPTS; /* an upload tries harder */
  o->md5 = 1;
  o->resize = 1;
  o->merge_gap = VHDUP__DEFAULT_MERGE_GAP;
  o->progress_interval_ms = VHDUP__DEFAULT_PROGRESS_INTERVAL_MS;
}

/* The string options a job copies, as fields of its own copy of the
 * options; the first JOB_SECRETS of them (the URL, which may hold a SAS,
 * and the credentials) are wiped before their memory goes back. */
#define JOB_SECRETS 4
static void string_fields(vhdup_job_options *o, const char **fields[JOB_STRINGS]) {
  fields[0] = &o->target.url;
  fields[1] = &o->target.connection_string;
  fields[2] = &o->target.account_key;
  fields[3] = &o->target.sas_token;
  fields[4] = &o->source;
  fields[5] = &o->parent;
  fields[6] = &o->journal;
  fields[7] = &o->target.service_version;
}

static void free_strings(vhdup_job *j) {
  for (int i = 0; i < JOB_STRINGS; i++) {
    if (i < JOB_SECRETS)
      vhdup__secret_free(j->strings[i]);
    else
      vhdup__free(j->strings[i]);
  }
}

/* Points the job's options at copies of the caller's strings. */
static int copy_strings(vhdup_job *j) {
  const char **fields[JOB_STRINGS];
  string_fields(&j->o, fields);
  for (int i = 0; i < JOB_STRINGS; i++) {
    if (*fields[i] == NULL)
      continue;
    if ((j->strings[i] = vhdup__strdup(*fields[i])) == NULL)
      return VHDUP_ENOMEM;
    *fields[i] = j->strings[i];
  }
  return 0;
}

int vhdup_job_new(vhdup_engine *e, const vhdup_job_options *o, vhdup_job **out) {
  *out = NULL;
  if (e == NULL || o == NULL || o->source == NULL || o->target.url == NULL ||
      o->target.max_attempts == 0 || o->merge_gap % 512 != 0)
    return VHDUP_EINVAL;
  if (e->closing)
    return VHDUP_ECANCELED;
  vhdup_job *j = vhdup__calloc(1, sizeof(*j));
  if (j == NULL)
    return VHDUP_ENOMEM;
  j->e = e;
  j->o = *o;
  int rc = copy_strings(j);
  const char *url = j->o.target.url;
  if (rc == 0) {
    j->dest_shown = j->o.to_file ? vhdup__strdup(url) : vhdup__redact_dup(url);
    rc = j->dest_shown == NULL ? VHDUP_ENOMEM : 0;
  }
  if (rc == 0 && !j->o.to_file && !j->o.dry_run)
    rc = vhdup__resume_locate(&j->resume, j->o.source, url, j->o.journal, j->o.resume);
  if (rc != 0) {
    free_strings(j);
    vhdup__free(j->dest_shown);
    vhdup__resume_free(&j->resume);
    vhdup__free(j);
    return rc;
  }
  vhdup__list_push_head(&e->jobs, &j->node);
  *out = j;
  return 0;
}

static void notice(vhdup_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(vhdup_job *j, const char *fmt, ...) {
  if (j->o.notice_cb == NULL)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  j->o.notice_cb(j, msg, j->o.data);
}

static void close_step(vhdup_job *j);

static int set_error(vhdup_job *j, int code, const char *msg) {
  snprintf(j->message, sizeof(j->message), "%s", msg != NULL ? msg : vhdup_strerror(code));
  return code;
}

static void job_done(vhdup_job *j, int status, const char *message) {
  j->seconds = (double)(uv_hrtime() - j->start_ns) / 1e9;
  j->done = 1;
  j->verifying = 0;
  if (status != 0)
    set_error(j, status, message);
  vhdup__resume_end(&j->resume, status, j->message, sizeof(j->message));
  if (j->done_cb != NULL)
    j->done_cb(j, status, j->o.data);
  if (j->closing)
    close_step(j);
}

static void verify_done(vhdup__sink *s, const vhdup__sink_result *r, void *data) {
  vhdup_job *j = data;
  (void)s;
  char msg[VHDUP__ERRMSG_MAX];
  if (r->error != 0) {
    job_done(j, r->error, r->message);
    return;
  }
  vhdup__pipeline_stats ps;
  vhdup__pipeline_get_stats(j->pl, &ps);
  const vhdup__sink_verify *v = &j->verify;
  /* What this run wrote, plus what an earlier run had (resume). */
  uint64_t expected = ps.bytes_sent + ps.bytes_resumed;
  if (v->bytes != expected) {
    snprintf(msg, sizeof(msg),
             "verify: the blob holds %llu bytes in %llu page ranges, but %llu were written",
             (unsigned long long)v->bytes, (unsigned long long)v->ranges,
             (unsigned long long)expected);
    job_done(j, VHDUP_EVERIFY, msg);
    return;
  }
  if (v->content && ps.has_disk_md5 && memcmp(v->md5, ps.disk_md5, 16) != 0) {
    snprintf(msg, sizeof(msg),
             "verify: the blob read back does not hash like the disk (MD5 differs): the data "
             "on the server is not what was sent");
    job_done(j, VHDUP_EVERIFY, msg);
    return;
  }
  j->verified = 1;
  notice(j, "verified: %llu page ranges, %llu bytes%s", (unsigned long long)v->ranges,
         (unsigned long long)v->bytes, v->content ? ", content MD5 matches the disk" : "");
  job_done(j, 0, NULL);
}

static void pipeline_done(vhdup__pipeline *pl, int status, const char *message, void *data) {
  vhdup_job *j = data;
  (void)pl;
  if (status == 0 && j->o.verify != VHDUP_VERIFY_NONE && j->sink->ops->verify != NULL &&
      !j->closing) {
    j->verifying = 1;
    memset(&j->verify, 0, sizeof(j->verify));
    j->verify.content = j->o.verify == VHDUP_VERIFY_CONTENT;
    j->verify.blob_size = j->blob_size;
    j->sink->ops->verify(j->sink, &j->verify, verify_done, j);
    return;
  }
  job_done(j, status, message);
}

static int journal_is_done(void *ctx, uint64_t offset, uint64_t length) {
  vhdup_job *j = ctx;
  return j->resume.journal != NULL && vhdup__journal_is_done(j->resume.journal, offset, length);
}

/* A write was confirmed: the journal learns first, then the owner's
 * progress callback, at most every progress_interval_ms. */
static void write_confirmed(void *ctx, uint64_t offset, uint64_t length) {
  vhdup_job *j = ctx;
  if (j->resume.journal != NULL)
    vhdup__journal_record(j->resume.journal, offset, length);
  if (j->o.progress_cb != NULL) {
    uint64_t now = uv_now(j->e->loop);
    if (j->last_progress == 0 || now - j->last_progress >= j->o.progress_interval_ms) {
      j->last_progress = now;
      j->o.progress_cb(j, j->o.data);
    }
  }
}

/* The destination is ready: from now on the upload can be resumed. */
static int journal_prepared(void *ctx) {
  vhdup_job *j = ctx;
  vhdup__err err;
  vhdup__err_clear(&err);
  if (vhdup__resume_prepared(&j->resume, &err) != 0)
    notice(j, "warning: %s; the upload will not be resumable", err.msg);
  return 0;
}

/* The upload's identity for its journal; opens the journal to resume. */
static int journal_setup(vhdup_job *j, const vhdup__disk_info *info, vhdup__err *err) {
  vhdup__journal_id id = {
      .source = j->o.source,
      .source_size = j->file->size,
      .mtime_sec = j->file->mtime_sec,
      .mtime_nsec = j->file->mtime_nsec,
      .blob_size = j->blob_size,
  };
  if (!info->is_raw)
    memcpy(id.uuid, info->footer.uuid, 16);
  return vhdup__resume_open(&j->resume, &id, err);
}

const char *vhdup_job_journal_path(const vhdup_job *j) {
  return j->resume.path;
}

/* A control request (create, HEAD, Get Page Ranges...) is being retried:
 * counted with the writes' retries, and told. */
static void control_retry(void *ctx, const char *message) {
  vhdup_job *j = ctx;
  j->control_retries++;
  notice(j, "%s", message);
}

static void sink_notice(void *ctx, const char *message) {
  notice(ctx, "%s", message);
}

/* The Azure sink, given only what it needs of the job. */
static int azure_sink(vhdup_job *j, vhdup__err *err) {
  vhdup__http *http;
  int rc = vhdup__engine_http(j->e, &http);
  if (rc != 0)
    return vhdup__errf(err, rc, "cannot start the HTTP client: %s", vhdup_strerror(rc));
  vhdup__azure_sink_opts so = {
      .loop = j->e->loop,
      .http = http,
      .service_version = j->o.target.service_version,
      .crc64 = j->o.crc64,
      .overwrite = j->o.overwrite,
      .resume = j->o.resume,
      .create_container = j->o.create_container,
      .journal = j->resume.journal,
      .retry = {.max_attempts = j->o.target.max_attempts},
      .notice_cb = sink_notice,
      .retry_cb = control_retry,
      .ctx = j,
  };
  vhdup__target_from_blob(&j->o.target, j->dest_shown, &so.target);
  return vhdup__azure_sink_new(&so, &j->sink, err);
}

/* Walks the plan once before starting, so progress has a denominator and
 * every bitmap is read (and checked) before anything is created. */
static int count_data(vhdup_job *j, vhdup__err *err) {
  vhdup__extent_iter *it;
  int rc = vhdup__extent_iter_new(j->disk, 0, &it);
  if (rc != 0)
    return vhdup__errf(err, rc, "out of memory");
  vhdup__extent ext;
  j->data_bytes = 0;
  while ((rc = vhdup__extent_next(it, &ext, err)) > 0)
    if (ext.src != NULL)
      j->data_bytes += ext.length;
  vhdup__extent_iter_free(it);
  return rc;
}

/* The footer's timestamp counts seconds from 2000-01-01 00:00:00 UTC. */
static uint32_t vhd_now(void) {
  time_t t = time(NULL);
  return t > 946684800 ? (uint32_t)(t - 946684800) : 0;
}

/* The blob's virtual size: the disk's, rounded up to a whole MiB unless
 * resize is off (Azure takes disks of whole MiB only), at most what a page
 * blob holds with its footer. */
static int blob_virtual_size(vhdup_job *j, uint64_t vsize, uint64_t *out, vhdup__err *err) {
  if (j->o.resize && vsize % MIB != 0) {
    uint64_t rounded = (vsize + MIB - 1) / MIB * MIB;
    notice(j,
           "note: virtual size %llu is not a whole number of MiB; rounding up to %llu (Azure "
           "requires whole MiB); use --no-resize to keep it exact",
           (unsigned long long)vsize, (unsigned long long)rounded);
    vsize = rounded;
  } else if (vsize % MIB != 0) {
    notice(j,
           "note: virtual size %llu is not a whole number of MiB; Azure will not accept it as "
           "a managed disk or VM image",
           (unsigned long long)vsize);
  }
  if (vsize > VHDUP__MAX_VIRTUAL_SIZE)
    return vhdup__errf(err, VHDUP_ELIMIT,
                       "%s: virtual size %llu exceeds the page blob limit of 8 TiB", j->o.source,
                       (unsigned long long)vsize);
  *out = vsize;
  return 0;
}

/* The fixed footer the blob ends with: the source's identity where it has
 * one, a new random (version 4) UUID and the time now for a raw image. */
static void blob_footer(const vhdup__disk_info *info, uint64_t vsize, uint8_t out[512]) {
  vhdup__footer f;
  vhdup__fixed_footer(info->is_raw ? NULL : &info->footer, vsize, &f);
  if (info->is_raw) {
    f.timestamp = vhd_now();
    if (uv_random(NULL, NULL, f.uuid, sizeof(f.uuid), 0, NULL) != 0)
      memset(f.uuid, 0x5a, sizeof(f.uuid));
    f.uuid[6] = (uint8_t)((f.uuid[6] & 0x0f) | 0x40); /* version 4 */
    f.uuid[8] = (uint8_t)((f.uuid[8] & 0x3f) | 0x80);
  }
  vhdup__footer_encode(&f, out);
}

/* The sink for the job's destination, and what the pipeline checks and
 * hashes for it: nothing for a dry run or a local file; for a blob the
 * resume journal, and the whole-disk MD5 that content verification needs. */
static int make_sink(vhdup_job *j, const vhdup__disk_info *info, vhdup__pipeline_opts *po,
                     vhdup__err *err) {
  if (j->o.dry_run || j->o.to_file) {
    po->md5 = 0;
    po->crc64 = 0;
    po->disk_md5 = 0;
    if (j->o.dry_run)
      return vhdup__null_sink_new(j->e->loop, &j->sink);
    return vhdup__file_sink_new(j->e->loop, j->o.target.url, j->o.overwrite, &j->sink, err);
  }
  int rc = journal_setup(j, info, err);
  if (rc != 0)
    return rc;
  po->is_done = journal_is_done;
  po->on_prepared = journal_prepared;
  po->md5 = j->o.md5;
  po->crc64 = j->o.crc64;
  po->disk_md5 = j->o.disk_md5 || j->o.verify == VHDUP_VERIFY_CONTENT;
  return azure_sink(j, err);
}

/* This blob's requests in flight at most: the engine's per-blob cap, the
 * job's own, and what the sink takes, whichever is least. */
static unsigned blob_cap(const vhdup_job *j) {
  const vhdup_engine_options *eo = &j->e->o;
  unsigned cap = eo->per_blob_connections ? eo->per_blob_connections : eo->connections;
  if (j->o.per_blob_connections > 0 && j->o.per_blob_connections < cap)
    cap = j->o.per_blob_connections;
  if (j->sink->max_in_flight > 0 && cap > j->sink->max_in_flight)
    cap = j->sink->max_in_flight;
  return cap;
}

int vhdup_job_start(vhdup_job *j, vhdup_job_cb done_cb) {
  if (j->started)
    return VHDUP_EBUSY;
  j->started = 1;
  j->done_cb = done_cb;
  j->start_ns = uv_hrtime();
  vhdup__err err;
  vhdup__err_clear(&err);
  int rc = vhdup__disk_open_path(j->o.source, j->o.format, j->o.parent, &j->file, &j->disk, &err);
  if (rc != 0)
    return set_error(j, rc, err.msg);
  for (size_t i = 0; vhdup__disk_warning(j->disk, i) != NULL; i++)
    notice(j, "warning: %s", vhdup__disk_warning(j->disk, i));
  vhdup__disk_info info;
  vhdup__disk_get_info(j->disk, &info);
  uint64_t vsize = 0;
  if ((rc = blob_virtual_size(j, info.virtual_size, &vsize, &err)) != 0)
    return set_error(j, rc, err.msg);
  j->blob_size = vsize + VHDUP__FOOTER_SIZE;
  if ((rc = count_data(j, &err)) != 0)
    return set_error(j, rc, err.msg);

  vhdup__pipeline_opts po;
  vhdup__pipeline_opts_init(&po);
  po.budget = j->e->budget;
  po.merge_gap = j->o.merge_gap;
  po.max_attempts = j->o.target.max_attempts;
  po.blob_size = j->blob_size;
  blob_footer(&info, vsize, po.footer);
  po.on_written = write_confirmed;
  po.journal_ctx = j;
  if ((rc = make_sink(j, &info, &po, &err)) != 0)
    return set_error(j, rc, err.msg);
  po.cap = blob_cap(j);
  if ((rc = vhdup__pipeline_new(j->e->loop, j->disk, j->sink, &po, &j->pl)) != 0)
    return set_error(j, rc, NULL);
  if ((rc = vhdup__pipeline_start(j->pl, pipeline_done, j)) != 0)
    return set_error(j, rc, NULL);
  return 0;
}

void vhdup_job_cancel(vhdup_job *j) {
  if (j->done || j->pl == NULL)
    return;
  if (!j->verifying)
    vhdup__pipeline_cancel(j->pl);
  /* Also a control step (create, clearing, properties) waiting to retry,
   * or verify: their callbacks come back with ECANCELED. */
  if (!j->done && j->sink != NULL)
    j->sink->ops->abort(j->sink);
}

void vhdup__jobs_cancel_all(vhdup_engine *e) {
  vhdup__list_foreach_safe(node, &e->jobs) {
    vhdup_job_cancel(vhdup__list_entry(node, vhdup_job, node));
  }
}

void vhdup_job_get_stats(const vhdup_job *j, vhdup_job_stats *st) {
  memset(st, 0, sizeof(*st));
  st->phase = VHDUP_PHASE_OPEN;
  st->blob_size = j->blob_size;
  st->bytes_allocated = j->data_bytes;
  if (j->disk != NULL) {
    vhdup__disk_info info;
    vhdup__disk_get_info(j->disk, &info);
    st->virtual_size = info.virtual_size;
  }
  if (j->pl != NULL) {
    vhdup__pipeline_stats ps;
    vhdup__pipeline_get_stats(j->pl, &ps);
    st->phase = j->verifying ? VHDUP_PHASE_VERIFY : ps.phase;
    st->bytes_planned = ps.bytes_planned;
    st->bytes_sent = ps.bytes_sent;
    st->bytes_skipped = ps.bytes_skipped;
    st->bytes_resumed = ps.bytes_resumed;
    st->requests = ps.requests;
    st->retries = ps.retries + j->control_retries;
    st->in_flight = ps.in_flight;
    st->connections_limit = vhdup__budget_limit(j->e->budget);
    st->has_disk_md5 = ps.has_disk_md5;
    memcpy(st->disk_md5, ps.disk_md5, sizeof(st->disk_md5));
  }
  st->seconds =
      j->done ? j->seconds : (j->start_ns ? (double)(uv_hrtime() - j->start_ns) / 1e9 : 0.0);
}

const char *vhdup_job_message(const vhdup_job *j) {
  return j->message;
}

void *vhdup_job_get_data(const vhdup_job *j) {
  return j->o.data;
}

const char *vhdup_job_destination(const vhdup_job *j) {
  return j->dest_shown;
}

static void job_free(vhdup_job *j) {
  vhdup_engine *e = j->e;
  vhdup__list_remove(&j->node);
  if (j->disk != NULL)
    vhdup__disk_free(j->disk);
  vhdup__file_close(j->file);
  free_strings(j);
  vhdup__free(j->dest_shown);
  vhdup__resume_free(&j->resume);
  /* The engine learns first, so a close_cb that closes the engine finds
   * this job gone; the job stays valid during its close_cb. */
  vhdup__engine_job_gone(e);
  if (j->close_cb != NULL)
    j->close_cb(j);
  vhdup__free(j);
}

static void close_step(vhdup_job *j);

static void sink_closed(vhdup__sink *s) {
  vhdup_job *j = s->data;
  close_step(j);
}

static void pipeline_closed(vhdup__pipeline *pl) {
  vhdup_job *j = vhdup__pipeline_data(pl);
  j->pl = NULL;
  close_step(j);
}

/* Tears down in order: the pipeline must be done (cancel it if not), then
 * closed, then the sink, then the job itself. Each asynchronous step comes
 * back here. */
static void close_step(vhdup_job *j) {
  if (j->pl != NULL) {
    if (!j->done) {
      vhdup_job_cancel(j); /* job_done comes back here */
      return;
    }
    if (!j->pl_closing) {
      j->pl_closing = 1;
      vhdup__pipeline_close(j->pl, pipeline_closed);
    }
    return;
  }
  if (j->sink != NULL) {
    vhdup__sink *s = j->sink;
    j->sink = NULL;
    s->data = j;
    s->ops->close(s, sink_closed);
    return;
  }
  job_free(j);
}

void vhdup_job_close(vhdup_job *j, vhdup_job_close_cb close_cb) {
  if (j->closing)
    return;
  j->closing = 1;
  j->close_cb = close_cb;
  close_step(j);
}
