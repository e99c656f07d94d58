/* The command-line tool: the table of commands and what they share (opening
 * a disk with the user's options, error reporting, sizes for humans). */
#ifndef VHDUP_CLI_CLI_H
#define VHDUP_CLI_CLI_H

#include "azure/azure.h"
#include "cli/exit_codes.h"
#include "upload/file_src.h"
#include "vhd/vhd.h"
#include "vhdup.h"

#include <stdint.h>
#include <stdio.h>

/* Every command: name and one-line summary. Adding a command is one line
 * here plus its file defining vhdup__cmd_NAME() and vhdup__cmd_NAME_help[]
 * (usage, what it does, options, an example; the dispatcher appends the
 * exit-code table). run() gets argv[0] == the command name and returns an
 * exit code. */
#define VHDUP__CLI_COMMANDS(XX)                                                                    \
  XX(inspect, "show a disk image's format, sizes, allocation, parent chain and Azure fit")         \
  XX(upload, "upload a disk into an Azure page blob as a fixed VHD, sending only its data")        \
  XX(run, "upload every disk a YAML manifest lists, sharing one connection and memory budget")     \
  XX(expand, "write the fixed VHD an upload would create, as a sparse local file")                 \
  XX(blob, "show a blob's properties or page ranges (debugging; same credentials as upload)")

#define VHDUP__CLI_DECLARE(name, summary)                                                          \
  int vhdup__cmd_##name(int argc, char **argv);                                                    \
  extern const char vhdup__cmd_##name##_help[];
VHDUP__CLI_COMMANDS(VHDUP__CLI_DECLARE)
#undef VHDUP__CLI_DECLARE

#define VHDUP__MIB ((uint64_t)1024 * 1024)

/* Prints a --help text, each {NAME} in it replaced by the default of
 * that name from util/defaults.h (connections, max_conn, auto_start,
 * memory, min_memory, merge_gap, retries, stall_timeout, blob_retries,
 * segment, max_results). */
void vhdup__cli_print_help(FILE *out, const char *text);

/* Prints "vhdup: COMMAND: MSG" and a pointer to --help on stderr; returns
 * VHDUP_EXIT_USAGE. */
int vhdup__cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reports getopt_long's ':' (missing argument) or '?' (unknown option);
 * optstrings start with ':' and opterr is 0 so the words are ours. Returns
 * VHDUP_EXIT_USAGE. */
int vhdup__cli_bad_option(const char *cmd, int opt, char **argv);

/* Parses --format's argument. Returns 0 or -1. */
int vhdup__cli_parse_format(const char *s, vhdup_format *out);

/* The source disk as the user named it: its file, opened and validated
 * with its parents. */
typedef struct vhdup__cli_disk {
  vhdup__file *file;
  vhdup__disk *disk;
} vhdup__cli_disk;

/* Opens and validates path. On failure prints "vhdup: PATH: what" on
 * stderr and returns the exit code; returns 0 on success. */
int vhdup__cli_open_disk(const char *path, vhdup_format fmt, const char *parent_override,
                         vhdup__cli_disk *cd);
void vhdup__cli_close_disk(vhdup__cli_disk *cd);

/* Writes s (n bytes) as a JSON string literal; bytes that are not
 * printable ASCII become \u00XX, so the output is valid JSON whatever the
 * input (paths need not be UTF-8). */
void vhdup__cli_json_str_n(FILE *out, const char *s, size_t n);
void vhdup__cli_json_str(FILE *out, const char *s);

/* "1 GiB", "1.50 MiB", "512 bytes": into buf, returned. */
const char *vhdup__cli_human_size(uint64_t n, char *buf, size_t size);

/* The options upload and blob share for reaching a blob: credentials,
 * endpoint, transport. A command puts VHDUP__CLI_CONN_LONGOPTS into its
 * option table, VHDUP__CLI_CONN_HELP into its --help, and hands every
 * getopt_long answer its own switch does not know to vhdup__cli_conn_option.
 * After the positional arguments, vhdup__cli_conn_read_secrets reads the
 * key and SAS files (by util/secret.h's rule: one line, at most 64 KiB);
 * vhdup__cli_conn_to_target passes everything on into a job's target or a
 * blob operation's (the strings are borrowed: free the struct once the
 * job or blob operations no longer need them). */
enum {
  VHDUP__CLI_OPT_CONNSTR = 0x1000, /* above any command's own option codes */
  VHDUP__CLI_OPT_KEYFILE,
  VHDUP__CLI_OPT_SASFILE,
  VHDUP__CLI_OPT_ALLOW_HTTP,
  VHDUP__CLI_OPT_CA_FILE,
  VHDUP__CLI_OPT_VERSION,
  VHDUP__CLI_OPT_RETRIES,
};

/* clang-format off */
#define VHDUP__CLI_CONN_LONGOPTS                                                                   \
  {"connection-string", required_argument, NULL, VHDUP__CLI_OPT_CONNSTR},                          \
  {"account-key-file", required_argument, NULL, VHDUP__CLI_OPT_KEYFILE},                           \
  {"sas-token-file", required_argument, NULL, VHDUP__CLI_OPT_SASFILE},                             \
  {"allow-http", no_argument, NULL, VHDUP__CLI_OPT_ALLOW_HTTP},                                    \
  {"ca-file", required_argument, NULL, VHDUP__CLI_OPT_CA_FILE},                                    \
  {"service-version", required_argument, NULL, VHDUP__CLI_OPT_VERSION},                            \
  {"retries", required_argument, NULL, VHDUP__CLI_OPT_RETRIES}
/* clang-format on */

/* Their --help lines, but --retries (its default differs by command). */
#define VHDUP__CLI_CONN_HELP                                                                       \
  "      --connection-string STR   (prefer AZURE_STORAGE_CONNECTION_STRING:\n"                     \
  "                          a command line is visible to other users)\n"                          \
  "      --account-key-file PATH   file holding the account's base64 key\n"                        \
  "      --sas-token-file PATH     file holding a SAS query (sv=...&sig=...)\n"                    \
  "      --allow-http        allow plain http:// to a non-loopback host\n"                         \
  "      --ca-file PATH      CA bundle for TLS verification\n"                                     \
  "      --service-version V x-ms-version to send (default " VHDUP__AZ_DEFAULT_VERSION ")\n"

typedef struct vhdup__cli_conn {
  const char *cmd; /* for messages */
  const char *connection_string;
  const char *key_file, *sas_file;
  const char *ca_file;
  const char *service_version;
  int allow_http;
  unsigned max_attempts;         /* 0: the API's default */
  char *account_key, *sas_token; /* read from the files */
} vhdup__cli_conn;

struct vhdup_engine_options;
struct vhdup_blob_target;

void vhdup__cli_conn_init(vhdup__cli_conn *c, const char *cmd);
/* Takes opt (and optarg) if it is one of the shared options: returns 0, or
 * the exit code after a usage error. Anything else is reported as
 * vhdup__cli_bad_option does, and its exit code returned. */
int vhdup__cli_conn_option(vhdup__cli_conn *c, int opt, char **argv);
/* Reads --account-key-file and --sas-token-file, if given. Returns 0, or
 * VHDUP_EXIT_INPUT after printing why (nothing is left allocated). */
int vhdup__cli_conn_read_secrets(vhdup__cli_conn *c);
void vhdup__cli_conn_to_target(const vhdup__cli_conn *c, struct vhdup_engine_options *eo,
                               struct vhdup_blob_target *t);
/* Wipes and frees the secrets read. */
void vhdup__cli_conn_free(vhdup__cli_conn *c);

/* "64M", "512", "1GiB", "2MB" (K, M, G, T are powers of 1024; the
 * manifest's syntax). Returns 0 or -1. */
int vhdup__cli_parse_size(const char *s, uint64_t *out);
/* A decimal in [min, max]. Returns 0 or -1. */
int vhdup__cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/* A command's run on a libuv loop of its own: the loop, the engine, and
 * SIGINT/SIGTERM. The command opens the session, starts its work on the
 * engine, calls vhdup__cli_session_finish once the work is over (from its
 * done callback, or at once when starting failed), then runs the loop. */
typedef struct vhdup__cli_session {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  vhdup_engine *engine;
  int interrupted; /* SIGINT or SIGTERM came */
  int finished;
  void (*on_interrupt)(void *data);
  void *data;
} vhdup__cli_session;

/* Opens the loop and an engine with eo; the first SIGINT or SIGTERM sets
 * s->interrupted and calls on_interrupt(data) (which cancels the work),
 * later ones are ignored. Returns 0, or prints "vhdup: CMD: WHY" and
 * returns the exit code, with nothing left open. */
int vhdup__cli_session_open(vhdup__cli_session *s, const char *cmd, const vhdup_engine_options *eo,
                            void (*on_interrupt)(void *data), void *data);
/* The work is over: closes job (unless NULL), the signal handlers and the
 * engine. Jobs closed elsewhere must have been closed before. */
void vhdup__cli_session_finish(vhdup__cli_session *s, vhdup_job *job);
/* Runs the loop until all is closed, then closes the loop (a handle left
 * open is closed too, and reported as an internal error). */
void vhdup__cli_session_run(vhdup__cli_session *s);
/* The exit code of the work's status: VHDUP_EXIT_INTERRUPTED when a signal
 * cancelled it. */
int vhdup__cli_session_exit_code(const vhdup__cli_session *s, int status);

/* A command's one job in its session (upload, expand). vhdup__cli_job_new
 * creates it: on failure it prints "vhdup: CMD: WHY", finishes and runs
 * the session to its end, and returns the exit code (0 on success).
 * vhdup__cli_job_start starts it: on failure it prints the job's message
 * and finishes the session with the job, and returns the status (the
 * command still runs the loop). */
int vhdup__cli_job_new(vhdup__cli_session *s, const char *cmd, const vhdup_job_options *jo,
                       vhdup_job **job);
int vhdup__cli_job_start(vhdup__cli_session *s, vhdup_job *job, vhdup_job_cb on_done);

#endif
