#include "cli/cli.h"

#include "manifest/manifest.h"
#include "util/alloc.h"
#include "util/secret.h"
#include "vhdup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>

int vhdup__exit_code(int err) {
  switch (err) {
  case 0:
    return VHDUP_EXIT_OK;
  case VHDUP_EFORMAT:
  case VHDUP_ECHECKSUM:
  case VHDUP_ETRUNCATED:
  case VHDUP_EPARENT:
  case VHDUP_ELIMIT:
  case VHDUP_EUNSUPPORTED:
  case VHDUP_EMANIFEST:
  case VHDUP_EJOURNAL:
  /* A source that is not there, or is a folder, is a bad source, not a
   * passing I/O failure worth retrying. */
  case -ENOENT:
  case -ENOTDIR:
  case -EISDIR:
    return VHDUP_EXIT_INPUT;
  case VHDUP_EAUTH:
  case VHDUP_ECREDENTIAL:
    return VHDUP_EXIT_AUTH;
  case VHDUP_EEXIST:
  case VHDUP_ESIZE:
  case VHDUP_ENOTFOUND:
    return VHDUP_EXIT_CONFLICT;
  case VHDUP_EURL:
  case VHDUP_EINVAL:
    return VHDUP_EXIT_USAGE;
  case VHDUP_ECANCELED:
    return VHDUP_EXIT_INTERRUPTED;
  default:
    return VHDUP_EXIT_RUNTIME;
  }
}

int vhdup__cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;

  fprintf(stderr, "vhdup: %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'vhdup %s --help'.\n", cmd);
  return VHDUP_EXIT_USAGE;
}

int vhdup__cli_bad_option(const char *cmd, int opt, char **argv) {
  const char *arg = argv[optind - 1];

  if (opt == ':')
    return vhdup__cli_usage_error(cmd, "option '%s' needs an argument", arg);
  return vhdup__cli_usage_error(cmd, "unknown option '%s'", arg);
}

int vhdup__cli_parse_format(const char *s, vhdup_format *out) {
  if (strcmp(s, "auto") == 0)
    *out = VHDUP_FORMAT_AUTO;
  else if (strcmp(s, "vhd") == 0)
    *out = VHDUP_FORMAT_VHD;
  else if (strcmp(s, "raw") == 0)
    *out = VHDUP_FORMAT_RAW;
  else if (strcmp(s, "vhdx") == 0)
    *out = VHDUP_FORMAT_VHDX;
  else
    return -1;
  return 0;
}

/* Prints "vhdup: FILE: MSG" for a failure with detail in err (or, when err
 * has no message, the code's description); returns the exit code. The VHD
 * core's messages usually start with the file name already: it is not said
 * twice. */
static int report(const char *file, int code, const vhdup__err *err) {
  const char *msg = (err != NULL && err->msg[0] != '\0') ? err->msg : vhdup_strerror(code);
  size_t n = strlen(file);

  if (strncmp(msg, file, n) == 0 && msg[n] == ':')
    fprintf(stderr, "vhdup: %s\n", msg);
  else
    fprintf(stderr, "vhdup: %s: %s\n", file, msg);
  return vhdup__exit_code(code);
}

/* The same file source and parent lookup as an upload's, so inspect and
 * upload cannot disagree about what a disk is. */
int vhdup__cli_open_disk(const char *path, vhdup_format fmt, const char *parent_override,
                         vhdup__cli_disk *cd) {
  vhdup__err err;
  memset(cd, 0, sizeof(*cd));
  vhdup__err_clear(&err);
  int rc = vhdup__disk_open_path(path, fmt, parent_override, &cd->file, &cd->disk, &err);
  if (rc != 0)
    return report(path, rc, &err);
  return 0;
}

void vhdup__cli_close_disk(vhdup__cli_disk *cd) {
  if (cd->disk != NULL)
    vhdup__disk_free(cd->disk);
  vhdup__file_close(cd->file);
  memset(cd, 0, sizeof(*cd));
}

const char *vhdup__cli_human_size(uint64_t n, char *buf, size_t size) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = (double)n;
  uint64_t unit = 1024;
  size_t i = 0;

  if (n < 1024) {
    snprintf(buf, size, "%llu bytes", (unsigned long long)n);
    return buf;
  }
  while (i + 1 < sizeof(units) / sizeof(units[0]) && n / unit >= 1024) {
    unit *= 1024;
    i++;
  }
  v = (double)n / (double)unit;
  if (n % unit == 0)
    snprintf(buf, size, "%llu %s", (unsigned long long)(n / unit), units[i]);
  else
    snprintf(buf, size, "%.2f %s", v, units[i]);
  return buf;
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return 0;
  return 1;
}

/* Reads the secret in the file an option names, by the one rule for a
 * secret's text (util/secret.h). NULL after printing why, naming the
 * option, the file and the problem, e.g. "--account-key-file PATH: the
 * file is larger than 65536 bytes: not an account key". */
static char *read_secret_option(const char *option, const char *path, const char *what) {
  char *buf = NULL, *secret = NULL;
  size_t len = 0;
  const char *why = NULL;
  int rc = vhdup__secret_read_file(path, &buf, &len);
  if (rc == 0) {
    rc = vhdup__secret_take(buf, len, &secret);
    if (rc == VHDUP_ECREDENTIAL)
      why = is_blank(buf, len) ? "the file is empty"
                               : "the file holds more than one line or a control character";
    vhdup__wipe(buf, len);
    vhdup__free(buf);
  }
  if (rc == 0)
    return secret;
  if (rc == VHDUP_ELIMIT)
    fprintf(stderr, "vhdup: %s %s: the file is larger than %u bytes: not %s\n", option, path,
            (unsigned)VHDUP__SECRET_MAX, what);
  else if (why != NULL)
    fprintf(stderr, "vhdup: %s %s: %s: not %s\n", option, path, why, what);
  else
    fprintf(stderr, "vhdup: %s %s: cannot read: %s\n", option, path, vhdup_strerror(rc));
  return NULL;
}

void vhdup__cli_conn_init(vhdup__cli_conn *c, const char *cmd) {
  memset(c, 0, sizeof(*c));
  c->cmd = cmd;
}

int vhdup__cli_conn_option(vhdup__cli_conn *c, int opt, char **argv) {
  switch (opt) {
  case VHDUP__CLI_OPT_CONNSTR:
    c->connection_string = optarg;
    return 0;
  case VHDUP__CLI_OPT_KEYFILE:
    c->key_file = optarg;
    return 0;
  case VHDUP__CLI_OPT_SASFILE:
    c->sas_file = optarg;
    return 0;
  case VHDUP__CLI_OPT_ALLOW_HTTP:
    c->allow_http = 1;
    return 0;
  case VHDUP__CLI_OPT_CA_FILE:
    c->ca_file = optarg;
    return 0;
  case VHDUP__CLI_OPT_VERSION:
    c->service_version = optarg;
    return 0;
  case VHDUP__CLI_OPT_RETRIES:
    if (vhdup__cli_parse_uint(optarg, 1, 100, &c->max_attempts) != 0)
      return vhdup__cli_usage_error(c->cmd, "--retries takes 1 to 100, not '%s'", optarg);
    return 0;
  default:
    return vhdup__cli_bad_option(c->cmd, opt, argv);
  }
}

int vhdup__cli_conn_read_secrets(vhdup__cli_conn *c) {
  if (c->key_file != NULL && (c->account_key = read_secret_option("--account-key-file", c->key_file,
                                                                  "an account key")) == NULL)
    return VHDUP_EXIT_INPUT;
  if (c->sas_file != NULL &&
      (c->sas_token = read_secret_option("--sas-token-file", c->sas_file, "a SAS token")) == NULL) {
    vhdup__cli_conn_free(c);
    return VHDUP_EXIT_INPUT;
  }
  return 0;
}

void vhdup__cli_conn_to_target(const vhdup__cli_conn *c, vhdup_engine_options *eo,
                               vhdup_blob_target *t) {
  eo->ca_file = c->ca_file;
  t->connection_string = c->connection_string;
  t->account_key = c->account_key;
  t->sas_token = c->sas_token;
  t->allow_http = c->allow_http;
  t->service_version = c->service_version;
  if (c->max_attempts != 0)
    t->max_attempts = c->max_attempts;
}

void vhdup__cli_conn_free(vhdup__cli_conn *c) {
  vhdup__secret_free(c->account_key);
  vhdup__secret_free(c->sas_token);
  c->account_key = c->sas_token = NULL;
}

int vhdup__cli_parse_size(const char *s, uint64_t *out) {
  /* The manifest's parser: options and manifests spell sizes alike. */
  return vhdup__manifest_parse_size(s, out) == 0 ? 0 : -1;
}

int vhdup__cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min || v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

/* Writes s as a JSON string. Bytes that are not printable ASCII are
 * escaped as \u00XX: creator fields are raw bytes, not text, and paths
 * are not guaranteed UTF-8, so this keeps the output valid JSON always. */
void vhdup__cli_json_str_n(FILE *out, const char *s, size_t n) {
  size_t i;

  fputc('"', out);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c == '\t')
      fputs("\\t", out);
    else if (c < 0x20 || c >= 0x7F)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

void vhdup__cli_json_str(FILE *out, const char *s) {
  vhdup__cli_json_str_n(out, s, strlen(s));
}

int vhdup__cli_job_new(vhdup__cli_session *s, const char *cmd, const vhdup_job_options *jo,
                       vhdup_job **job) {
  int rc = vhdup_job_new(s->engine, jo, job);
  if (rc == 0)
    return 0;
  fprintf(stderr, "vhdup: %s: %s\n", cmd, vhdup_strerror(rc));
  vhdup__cli_session_finish(s, NULL);
  vhdup__cli_session_run(s);
  return vhdup__exit_code(rc);
}

int vhdup__cli_job_start(vhdup__cli_session *s, vhdup_job *job, vhdup_job_cb on_done) {
  int rc = vhdup_job_start(job, on_done);
  if (rc == 0)
    return 0;
  fprintf(stderr, "vhdup: %s\n", vhdup_job_message(job));
  vhdup__cli_session_finish(s, job);
  return rc;
}
