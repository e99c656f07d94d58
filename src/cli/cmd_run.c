/* vhdup run MANIFEST.yaml: many uploads from one file, sharing one engine
 * (one connection budget, one memory pool), each failing alone, with a
 * summary table and an optional JSON report. */
#include "cli/cli.h"
#include "cli/progress.h"

#include "manifest/manifest.h"
#include "util/alloc.h"
#include "util/secret.h"
#include "vhdup.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char vhdup__cmd_run_help[] =
    "Usage: vhdup run MANIFEST.yaml [--dry-run] [--resume] [--report FILE.json]\n"
    "                 [--progress auto|bar|json|none] [--quiet]\n"
    "\n"
    "Uploads every disk a YAML manifest lists (schema: docs/manifest.md). All\n"
    "uploads share one connection budget and one memory pool (the manifest's\n"
    "`connections` and `memory`), however many run at once; scheduling is fair\n"
    "and `per_blob_connections` caps one blob. The whole manifest is checked\n"
    "first: every problem is reported as FILE:LINE:COL, missing sources\n"
    "included, and nothing starts until it is clean. One failed upload does\n"
    "not stop the others; the exit code is 0 only when all succeeded.\n"
    "\n"
    "Options:\n"
    "  --dry-run            validate, then read and scan every disk and print what\n"
    "                       would be sent, without touching the network\n"
    "  --resume             continue interrupted uploads (those with a journal);\n"
    "                       uploads whose blob exists without one are skipped as\n"
    "                       complete, the rest start\n"
    "  --report FILE        write the results as JSON\n"
    "  --progress MODE      auto (a line on a terminal), json (lines on stdout),\n"
    "                       none\n"
    "  -q, --quiet          only errors and the exit code\n"
    "  -h, --help           this help\n"
    "\n"
    "Example:\n"
    "  vhdup run disks.yaml --report results.json\n";

typedef struct run_state run_state;

typedef struct run_item {
  run_state *r;
  const vhdup__manifest_upload *u;
  vhdup_job *job;
  char *secret;
  int status;
  int started;
  int done;
  int skipped; /* --resume: already complete */
  int resume;  /* --resume, or `resume: true` in the manifest */
  char message[1024];
  vhdup_job_stats st;
} run_item;

struct run_state {
  vhdup__cli_session s;
  uv_timer_t tick;
  vhdup__manifest *m;
  run_item *items;
  size_t n;
  size_t remaining;
  int json;
  int bar;
  int quiet;
  int resume;
  uint64_t t0;
};

static int file_exists(void *ctx, const char *path) {
  struct stat st;
  (void)ctx;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

static const char *env_get(void *ctx, const char *name) {
  (void)ctx;
  return getenv(name);
}

/* A manifest credential's file, read by the one reader of secret files
 * (the manifest asks for VHDUP__SECRET_MAX, its limit too). */
static int read_secret_file(void *ctx, const char *path, size_t max, char **out, size_t *len) {
  (void)ctx;
  (void)max;
  return vhdup__secret_read_file(path, out, len);
}

static int read_file(const char *path, size_t max, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -errno;
  char *buf = vhdup__malloc(max + 1);
  if (buf == NULL) {
    fclose(f);
    return VHDUP_ENOMEM;
  }
  size_t n = fread(buf, 1, max + 1, f);
  int err = ferror(f);
  fclose(f);
  if (err || n > max) {
    vhdup__free(buf);
    return err ? VHDUP_EIO : VHDUP_ELIMIT;
  }
  *out = buf;
  *len = n;
  return 0;
}

static const char *name_of(const run_item *it) {
  return it->u->source;
}

static void on_notice(vhdup_job *job, const char *message, void *data) {
  run_item *it = data;
  (void)job;
  if (!it->r->quiet)
    fprintf(stderr, "vhdup: %s: %s\n", name_of(it), message);
}

static void job_closed(vhdup_job *job) {
  (void)job;
}

static void finish_all(run_state *r) {
  uv_close((uv_handle_t *)&r->tick, NULL);
  vhdup__cli_session_finish(&r->s, NULL);
}

static void item_done(run_state *r, run_item *it) {
  it->done = 1;
  if (--r->remaining == 0)
    finish_all(r);
}

static void on_done(vhdup_job *job, int status, void *data) {
  run_item *it = data;
  run_state *r = it->r;
  vhdup_job_get_stats(job, &it->st);
  it->status = status;
  if (status == VHDUP_EEXIST && it->resume) {
    /* Exists and no journal: an upload that completed earlier. */
    it->status = 0;
    it->skipped = 1;
  } else if (status != 0) {
    snprintf(it->message, sizeof(it->message), "%s", vhdup_job_message(job));
    if (!r->quiet)
      fprintf(stderr, "vhdup: %s: %s\n", name_of(it), it->message);
  } else if (r->json) {
    printf("{\"event\":\"disk_done\",\"source\":");
    vhdup__cli_json_str(stdout, name_of(it));
    printf(",\"bytes_sent\":%llu,\"seconds\":%.3f}\n", (unsigned long long)it->st.bytes_sent,
           it->st.seconds);
    fflush(stdout);
  }
  vhdup_job_close(job, job_closed);
  it->job = NULL;
  item_done(r, it);
}

static void tick(uv_timer_t *t) {
  run_state *r = t->data;
  uint64_t sent = 0, total = 0;
  unsigned active = 0, done = 0, inflight = 0;
  for (size_t i = 0; i < r->n; i++) {
    run_item *it = &r->items[i];
    vhdup_job_stats st;
    if (it->job != NULL) {
      vhdup_job_get_stats(it->job, &st);
      active++;
    } else {
      st = it->st;
      done += it->done;
    }
    sent += st.bytes_sent;
    uint64_t left =
        st.bytes_allocated > st.bytes_skipped ? st.bytes_allocated - st.bytes_skipped : 0;
    total += left > st.bytes_sent ? left : st.bytes_sent;
    inflight += st.in_flight;
  }
  double secs = (double)(uv_hrtime() - r->t0) / 1e9;
  if (r->json) {
    printf("{\"event\":\"progress\",\"disks\":%zu,\"done\":%u,\"active\":%u,\"bytes_sent\":%llu,"
           "\"bytes_to_send\":%llu,\"in_flight\":%u,\"seconds\":%.3f}\n",
           r->n, done, active, (unsigned long long)sent, (unsigned long long)total, inflight, secs);
    fflush(stdout);
  } else if (r->bar) {
    char a[32], b[32];
    fprintf(stderr, "\r\033[K%u/%zu disks done, %u running  %s / %s  %.1f MB/s  requests %u", done,
            r->n, active, vhdup__cli_human_size(sent, a, sizeof(a)),
            vhdup__cli_human_size(total, b, sizeof(b)), secs > 0 ? (double)sent / secs / 1e6 : 0,
            inflight);
    fflush(stderr);
  }
}

static void on_interrupt(void *data) {
  run_state *r = data;
  fprintf(stderr, "\nvhdup: interrupted: stopping every upload\n");
  for (size_t i = 0; i < r->n; i++)
    if (r->items[i].job != NULL)
      vhdup_job_cancel(r->items[i].job);
}

/* Turns one manifest entry into job options (secrets resolved here, at the
 * last moment, and wiped after the job copied them). */
static int make_job(run_state *r, run_item *it, int dry_run) {
  const vhdup__manifest_upload *u = it->u;
  const vhdup__manifest_settings *st = &u->settings;
  vhdup_job_options jo;
  vhdup_job_options_init(&jo);
  jo.source = u->source;
  jo.parent = u->parent;
  jo.journal = u->journal;
  jo.target.url = u->destination;
  jo.format = st->format;
  jo.md5 = st->md5;
  jo.crc64 = st->crc64;
  jo.disk_md5 = st->disk_md5;
  jo.resize = st->resize;
  jo.overwrite = st->overwrite;
  jo.create_container = st->create_container;
  jo.target.allow_http = st->allow_http;
  jo.verify = st->verify;
  jo.target.max_attempts = st->retries;
  jo.merge_gap = st->merge_gap;
  jo.target.service_version = st->service_version;
  jo.per_blob_connections = st->per_blob_connections;
  jo.dry_run = dry_run;
  jo.target.use_environment = 0; /* the manifest names its credentials */
  jo.notice_cb = on_notice;
  jo.data = it;
  if (u->credential != NULL && !dry_run) {
    vhdup__err err;
    vhdup__err_clear(&err);
    int rc = vhdup__manifest_resolve_secret(&u->credential->secret, env_get, read_secret_file, NULL,
                                            &it->secret, &err);
    if (rc != 0) {
      snprintf(it->message, sizeof(it->message), "%s", err.msg);
      return rc;
    }
    switch (u->credential->kind) {
    case VHDUP__MANIFEST_CRED_CONNECTION_STRING:
      jo.target.connection_string = it->secret;
      break;
    case VHDUP__MANIFEST_CRED_SHARED_KEY:
      jo.target.account_key = it->secret;
      break;
    case VHDUP__MANIFEST_CRED_SAS:
      jo.target.sas_token = it->secret;
      break;
    }
  }
  it->resume = r->resume || st->resume;
  int rc = vhdup_job_new(r->s.engine, &jo, &it->job);
  if (rc == 0 && it->resume) {
    /* Resume what has a journal; the rest starts as usual (and a blob that
     * is already there without one counts as complete: see on_done). */
    const char *jp = vhdup_job_journal_path(it->job);
    if (jp != NULL && access(jp, F_OK) == 0) {
      vhdup_job_close(it->job, job_closed);
      it->job = NULL;
      jo.resume = 1;
      rc = vhdup_job_new(r->s.engine, &jo, &it->job);
    }
  }
  vhdup__secret_free(it->secret);
  it->secret = NULL;
  if (rc != 0)
    snprintf(it->message, sizeof(it->message), "%s", vhdup_strerror(rc));
  return rc;
}

static void print_table(run_state *r, FILE *out) {
  fprintf(out, "\n%-40s %-8s %12s %9s %9s  %s\n", "disk", "result", "sent", "time", "MB/s",
          "error");
  for (size_t i = 0; i < r->n; i++) {
    run_item *it = &r->items[i];
    char sent[32];
    const char *name = name_of(it);
    size_t len = strlen(name);
    const char *shown = len > 40 ? name + len - 40 : name;
    const char *result = it->skipped ? "complete" : it->status == 0 ? "ok" : "FAILED";
    double mbps = it->st.seconds > 0 ? (double)it->st.bytes_sent / it->st.seconds / 1e6 : 0;
    fprintf(out, "%-40s %-8s %12s %8.2fs %9.1f  %.100s\n", shown, result,
            vhdup__cli_human_size(it->st.bytes_sent, sent, sizeof(sent)), it->st.seconds, mbps,
            it->status ? it->message : "");
  }
}

static int write_report(run_state *r, const char *path, int dry_run) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "vhdup: %s: cannot write the report: %s\n", path, strerror(errno));
    return -1;
  }
  size_t failed = 0;
  for (size_t i = 0; i < r->n; i++)
    failed += r->items[i].status != 0;
  fprintf(f, "{\"manifest\":");
  vhdup__cli_json_str(f, r->m->file);
  fprintf(f, ",\"dry_run\":%s,\"disks\":%zu,\"failed\":%zu,\"seconds\":%.3f,\"uploads\":[",
          dry_run ? "true" : "false", r->n, failed, (double)(uv_hrtime() - r->t0) / 1e9);
  for (size_t i = 0; i < r->n; i++) {
    run_item *it = &r->items[i];
    const vhdup_job_stats *st = &it->st;
    fprintf(f, "%s{\"source\":", i ? "," : "");
    vhdup__cli_json_str(f, it->u->source);
    fprintf(f, ",\"line\":%u,\"result\":\"%s\",\"error_code\":\"%s\",\"error\":", it->u->line,
            it->skipped  ? "complete"
            : it->status ? "failed"
                         : "ok",
            it->status ? vhdup_err_name(it->status) : "");
    vhdup__cli_json_str(f, it->status ? it->message : "");
    fprintf(f,
            ",\"virtual_size\":%llu,\"blob_size\":%llu,\"bytes_allocated\":%llu,"
            "\"bytes_sent\":%llu,\"bytes_skipped\":%llu,\"bytes_resumed\":%llu,"
            "\"requests\":%llu,\"retries\":%llu,\"seconds\":%.3f}",
            (unsigned long long)st->virtual_size, (unsigned long long)st->blob_size,
            (unsigned long long)st->bytes_allocated, (unsigned long long)st->bytes_sent,
            (unsigned long long)st->bytes_skipped, (unsigned long long)st->bytes_resumed,
            (unsigned long long)st->requests, (unsigned long long)st->retries, st->seconds);
  }
  fprintf(f, "]}\n");
  if (fclose(f) != 0) {
    fprintf(stderr, "vhdup: %s: cannot write the report: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Reads the manifest (at most VHDUP__MANIFEST_MAX_BYTES). */
static int load(const char *path, char **text, size_t *len) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "vhdup: %s: %s\n", path, strerror(errno));
    return VHDUP_EXIT_INPUT;
  }
  if ((uint64_t)st.st_size > VHDUP__MANIFEST_MAX_BYTES) {
    fprintf(stderr, "vhdup: %s: %llu bytes; a manifest is at most %zu\n", path,
            (unsigned long long)st.st_size, (size_t)VHDUP__MANIFEST_MAX_BYTES);
    return VHDUP_EXIT_INPUT;
  }
  int rc = read_file(path, VHDUP__MANIFEST_MAX_BYTES, text, len);
  if (rc != 0) {
    fprintf(stderr, "vhdup: %s: cannot read: %s\n", path, vhdup_strerror(rc));
    return VHDUP_EXIT_INPUT;
  }
  return 0;
}

/* What the command line asked for. */
typedef struct run_options {
  const char *path; /* the manifest */
  const char *report;
  int dry_run;
  int resume;
  int quiet;
  int mode; /* --progress */
} run_options;

/* The options, then MANIFEST. Returns 0 or the exit code. */
static int parse_args(int argc, char **argv, run_options *o) {
  static const struct option longopts[] = {
      {"dry-run", no_argument, NULL, 'n'},      {"resume", no_argument, NULL, 'r'},
      {"report", required_argument, NULL, 'R'}, {"progress", required_argument, NULL, 'p'},
      {"quiet", no_argument, NULL, 'q'},        {NULL, 0, NULL, 0},
  };
  int opt;
  memset(o, 0, sizeof(*o));
  o->mode = VHDUP__PROGRESS_AUTO;
  while ((opt = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
    switch (opt) {
    case 'n':
      o->dry_run = 1;
      break;
    case 'r':
      o->resume = 1;
      break;
    case 'R':
      o->report = optarg;
      break;
    case 'p':
      if (vhdup__progress_parse_mode(optarg, &o->mode) != 0)
        return vhdup__cli_usage_error("run", "--progress takes auto, bar, json or none");
      break;
    case 'q':
      o->quiet = 1;
      break;
    default:
      return vhdup__cli_bad_option("run", opt, argv);
    }
  }
  if (argc - optind != 1)
    return vhdup__cli_usage_error("run", "needs one MANIFEST.yaml");
  o->path = argv[optind];
  return 0;
}

/* Reads and checks the manifest, printing its diagnostics (warnings unless
 * quiet). Returns 0 with *m, or the exit code. */
static int read_manifest(const char *path, int quiet, vhdup__manifest **m) {
  char *text = NULL;
  size_t len = 0;
  int rc = load(path, &text, &len);
  if (rc != 0)
    return rc;
  char *dircopy = vhdup__strdup(path);
  if (dircopy == NULL) {
    vhdup__free(text);
    return VHDUP_EXIT_RUNTIME;
  }
  /* Missing sources are reported afterwards, as warnings: such an upload
   * fails alone and the others still run. */
  vhdup__manifest_env env = {.file_exists = NULL, .home = getenv("HOME")};
  vhdup__manifest_diag *diags = NULL;
  rc = vhdup__manifest_parse(text, len, path, dirname(dircopy), &env, m, &diags);
  vhdup__free(text);
  vhdup__free(dircopy);
  for (vhdup__manifest_diag *d = diags; d != NULL; d = d->next)
    if (d->severity == VHDUP__MANIFEST_ERROR || !quiet)
      fprintf(stderr, "%s\n", d->text);
  vhdup__manifest_diags_free(diags);
  if (rc == 0)
    return 0;
  if (rc == VHDUP_EMANIFEST)
    fprintf(stderr, "vhdup: %s: not started: fix the problems above\n", path);
  else
    fprintf(stderr, "vhdup: %s: %s\n", path, vhdup_strerror(rc));
  return vhdup__exit_code(rc);
}

static void warn_missing_sources(const char *path, const vhdup__manifest *m) {
  for (size_t i = 0; i < m->upload_count; i++) {
    const vhdup__manifest_upload *u = &m->uploads[i];
    if (!file_exists(NULL, u->source))
      fprintf(stderr,
              "%s:%u:%u: warning: source '%s' not found or not readable; this upload will "
              "fail, the others go on\n",
              path, u->line, u->col, u->source);
  }
}

/* The items and the session, with the manifest's engine settings, and the
 * progress ticks. Returns 0 or the exit code. */
static int open_run(run_state *r) {
  vhdup_engine_options eo;
  vhdup_engine_options_init(&eo);
  eo.connections = r->m->connections;
  eo.memory = (size_t)r->m->memory;
  eo.ca_file = r->m->ca_file;
  r->n = r->m->upload_count;
  r->items = vhdup__calloc(r->n ? r->n : 1, sizeof(run_item));
  if (r->items == NULL) {
    fprintf(stderr, "vhdup: run: %s\n", vhdup_strerror(VHDUP_ENOMEM));
    return vhdup__exit_code(VHDUP_ENOMEM);
  }
  int rc = vhdup__cli_session_open(&r->s, "run", &eo, on_interrupt, r);
  if (rc != 0) {
    vhdup__free(r->items);
    return rc;
  }
  r->t0 = uv_hrtime();
  uv_timer_init(&r->s.loop, &r->tick);
  r->tick.data = r;
  if (r->json || r->bar)
    uv_timer_start(&r->tick, tick, r->json ? 1000 : 250, r->json ? 1000 : 250);
  return 0;
}

/* An upload that could not start: it fails alone. */
static void not_started(run_state *r, run_item *it, int rc) {
  it->status = rc;
  if (it->job != NULL) {
    snprintf(it->message, sizeof(it->message), "%s", vhdup_job_message(it->job));
    vhdup_job_get_stats(it->job, &it->st);
    vhdup_job_close(it->job, job_closed);
    it->job = NULL;
  }
  if (!r->quiet)
    fprintf(stderr, "vhdup: %s: %s\n", name_of(it), it->message);
  item_done(r, it);
}

/* Every job starts now; the engine's budget decides who sends when. */
static void start_all(run_state *r, int dry_run) {
  r->remaining = r->n + 1;
  for (size_t i = 0; i < r->n; i++) {
    run_item *it = &r->items[i];
    it->r = r;
    it->u = &r->m->uploads[i];
    int rc = make_job(r, it, dry_run);
    if (rc == 0)
      rc = vhdup_job_start(it->job, on_done);
    if (rc != 0)
      not_started(r, it, rc);
  }
  /* The +1 above: every job has started, so finishing can now close. */
  if (--r->remaining == 0)
    finish_all(r);
}

/* The first failure's exit code; interrupted when a signal cut it short. */
static int run_exit_code(const run_state *r) {
  int exit_code = VHDUP_EXIT_OK;
  for (size_t i = 0; i < r->n; i++) {
    if (r->items[i].status != 0 && exit_code == VHDUP_EXIT_OK)
      exit_code = vhdup__exit_code(r->items[i].status);
  }
  if (r->s.interrupted && exit_code != VHDUP_EXIT_OK)
    exit_code = VHDUP_EXIT_INTERRUPTED;
  return exit_code;
}

static void print_summary(run_state *r, int dry_run) {
  print_table(r, stdout);
  if (!dry_run)
    return;
  uint64_t total = 0;
  for (size_t i = 0; i < r->n; i++)
    total += r->items[i].st.bytes_sent;
  char h[32];
  printf("dry run: %s would be sent in all; nothing was sent\n",
         vhdup__cli_human_size(total, h, sizeof(h)));
}

int vhdup__cmd_run(int argc, char **argv) {
  run_options o;
  run_state r;
  memset(&r, 0, sizeof(r));
  int rc = parse_args(argc, argv, &o);
  if (rc != 0)
    return rc;
  r.resume = o.resume;
  r.quiet = o.quiet;
  r.json = o.mode == VHDUP__PROGRESS_JSON;
  r.bar = !r.quiet && (o.mode == VHDUP__PROGRESS_BAR ||
                       (o.mode == VHDUP__PROGRESS_AUTO && isatty(STDERR_FILENO)));
  if ((rc = read_manifest(o.path, r.quiet, &r.m)) != 0)
    return rc;
  warn_missing_sources(o.path, r.m);
  if ((rc = open_run(&r)) != 0) {
    vhdup__manifest_free(r.m);
    return rc;
  }
  start_all(&r, o.dry_run);
  vhdup__cli_session_run(&r.s);
  if (r.bar)
    fputs("\r\033[K", stderr);
  int exit_code = run_exit_code(&r);
  if (!r.quiet && !r.json)
    print_summary(&r, o.dry_run);
  if (o.report != NULL && write_report(&r, o.report, o.dry_run) != 0 && exit_code == VHDUP_EXIT_OK)
    exit_code = VHDUP_EXIT_RUNTIME;
  vhdup__free(r.items);
  vhdup__manifest_free(r.m);
  return exit_code;
}
