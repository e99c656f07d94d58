/* vhdup upload: one disk into one page blob, on a libuv loop of its own,
 * through the public API (include/vhdup.h) and nothing else. */
#include "cli/cli.h"
#include "cli/progress.h"

#include "util/defaults.h"
#include "vhdup.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char vhdup__cmd_upload_help[] =
    "Usage: vhdup upload SOURCE DEST [options]\n"
    "\n"
    "Uploads SOURCE (a VHD: fixed, dynamic or differencing; or a raw image) into\n"
    "the page blob DEST so that the blob is a valid *fixed* VHD, the only kind\n"
    "Azure runs VMs from. Only allocated, non-zero data is sent, with Put Page\n"
    "at its offsets, many requests at once; the 512-byte fixed footer is written\n"
    "last, so an interrupted upload never looks complete. SOURCE is validated\n"
    "completely before anything is created on the server.\n"
    "\n"
    "DEST is a blob URL, with a SAS:\n"
    "  'https://ACCOUNT.blob.core.windows.net/CONTAINER/disk.vhd?sv=...&sig=...'\n"
    "or without one (then a credential comes from the options or the\n"
    "environment), or CONTAINER/BLOB with --connection-string.\n"
    "Credentials, first found wins: a SAS in the URL; --sas-token-file;\n"
    "--connection-string; --account-key-file; AZURE_STORAGE_CONNECTION_STRING;\n"
    "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN.\n"
    "\n"
    "The blob is created at the virtual size rounded up to a whole MiB (Azure\n"
    "needs whole MiB for VM disks) + 512 bytes. An existing blob is refused\n"
    "unless --overwrite (its size must match; stale pages are cleared, so the\n"
    "result is exactly the disk) or --resume. A managed disk is filled the\n"
    "same way: `az disk create --upload-type Upload --upload-size-bytes N`\n"
    "(vhdup inspect prints N), `az disk grant-access --access-level Write`,\n"
    "then `vhdup upload disk.vhd 'SAS-URL' --overwrite`.\n"
    "\n"
    "Options:\n"
    "  -c, --connections N     requests in flight at once (default {connections}); auto finds\n"
    "                          the count by itself from measured throughput (from\n"
    "                          {auto_start}, between 1 and {auto_max}; it backs off on throttling\n"
    "                          and rising latency)\n"
    "  -m, --memory SIZE       read buffers, e.g. 64M (default {memory}; >= {min_memory}); memory\n"
    "                          use stays near this, whatever the disk size or\n"
    "                          the connection count (each request in flight\n"
    "                          takes 40K of it for its state; 1/32 goes to\n"
    "                          libcurl's upload buffers)\n"
    "      --no-md5            no Content-MD5 on each request (MD5 costs about\n"
    "                          0.7 CPU s per GiB sent where the CPU has AVX2,\n"
    "                          with 8 requests hashed at once; 2 s without)\n"
    "      --crc64             x-ms-content-crc64 instead of Content-MD5: the same\n"
    "                          check for less CPU (about 0.2 s per GiB where the\n"
    "                          CPU has PCLMULQDQ, 0.8 s without)\n"
    "      --disk-md5          compute the whole-disk MD5 and store it as the blob's\n"
    "                          Content-MD5 (costs one core about 2 s per GiB of\n"
    "                          *virtual* size: zeros are hashed too; Azure never\n"
    "                          checks it; implied by --verify=content)\n"
    "      --no-resize         keep the exact virtual size (no MiB rounding)\n"
    "      --overwrite         write into an existing blob of the right size\n"
    "      --create-container  create the container if it does not exist\n"
    "      --resume            continue an interrupted upload: sends only what the\n"
    "                          journal and the blob's page ranges say is missing;\n"
    "                          the source must be unchanged (size, mtime, UUID)\n"
    "      --journal PATH      the resume journal (default: a file named after\n"
    "                          source and destination in $XDG_STATE_HOME/vhdup,\n"
    "                          else ~/.local/state/vhdup; removed when complete)\n"
    "      --verify[=WHAT]     after the upload, check the blob: ranges (default:\n"
    "                          page ranges match what was sent) or content\n"
    "      --format FMT        auto (default), vhd, vhdx or raw\n"
    "      --parent PATH       the first parent of a differencing disk\n"
    /* clang-format off */
    VHDUP__CLI_CONN_HELP
    /* clang-format on */
    "      --retries N         tries per request (default {retries})\n"
    "      --stall-timeout S   a request that moves no data for S seconds is\n"
    "                          abandoned and retried (default {stall_timeout})\n"
    "      --merge-gap SIZE    zero gap still sent inside one request (default {merge_gap})\n"
    "      --progress MODE     auto (bar on a terminal), bar, json (lines on\n"
    "                          stdout), none\n"
    "  -q, --quiet             no progress, notes or summary; errors only\n"
    "  -v, --verbose           HTTP trace on stderr (signatures redacted)\n"
    "  -h, --help              this help\n"
    "\n"
    "Example:\n"
    "  vhdup upload disk.vhd \"https://acct.blob.core.windows.net/vhds/disk.vhd?$SAS\"\n"
    "  AZURE_STORAGE_CONNECTION_STRING=UseDevelopmentStorage=true \\\n"
    "    vhdup upload disk.vhd http://127.0.0.1:10000/devstoreaccount1/vhds/disk.vhd\n";

typedef struct upload_run {
  vhdup__cli_session s;
  vhdup_job *job;
  vhdup__progress progress;
  int status;
  const char *source;
} upload_run;

static void on_notice(vhdup_job *job, const char *message, void *data) {
  upload_run *r = data;
  (void)job;
  vhdup__progress_note(&r->progress, message);
}

static void on_interrupt(void *data) {
  upload_run *r = data;
  vhdup__progress_note(&r->progress, "interrupted: stopping (requests in flight are abandoned)");
  vhdup_job_cancel(r->job);
}

static void on_done(vhdup_job *job, int status, void *data) {
  upload_run *r = data;
  r->status = status;
  vhdup__progress_finish(&r->progress, job, status, r->source);
  vhdup__progress_close(&r->progress);
  vhdup__cli_session_finish(&r->s, job);
}

enum {
  OPT_NO_MD5 = 256,
  OPT_CRC64,
  OPT_DISK_MD5,
  OPT_NO_RESIZE,
  OPT_OVERWRITE,
  OPT_VERIFY,
  OPT_FORMAT,
  OPT_PARENT,
  OPT_MERGE_GAP,
  OPT_PROGRESS,
  OPT_MKCONTAINER,
  OPT_RESUME,
  OPT_STALL,
  OPT_JOURNAL,
};

/* What the command line asked for. */
typedef struct upload_options {
  vhdup_engine_options eo;
  vhdup_job_options jo;
  vhdup__cli_conn conn;
  int mode; /* --progress */
  int quiet;
} upload_options;

static int parse_connections(vhdup_engine_options *eo, const char *arg) {
  if (strcmp(arg, "auto") == 0) {
    eo->connections_auto = 1;
    eo->connections = VHDUP__AUTO_MAX_CONNECTIONS;
  } else if (vhdup__cli_parse_uint(arg, 1, VHDUP__MAX_CONNECTIONS, &eo->connections) != 0)
    return vhdup__cli_usage_error("upload", "--connections takes 1 to %u or auto, not '%s'",
                                  VHDUP__MAX_CONNECTIONS, arg);
  return 0;
}

static int parse_memory(vhdup_engine_options *eo, const char *arg) {
  uint64_t size;
  if (vhdup__cli_parse_size(arg, &size) != 0 || size < VHDUP__MIN_MEMORY || size > (1ull << 40))
    return vhdup__cli_usage_error("upload", "--memory takes a size from %lluM, not '%s'",
                                  (unsigned long long)VHDUP__MIN_MEMORY / VHDUP__MIB, arg);
  eo->memory = (size_t)size;
  return 0;
}

static int parse_verify(vhdup_job_options *jo, const char *arg) {
  if (arg == NULL || strcmp(arg, "ranges") == 0)
    jo->verify = VHDUP_VERIFY_RANGES;
  else if (strcmp(arg, "content") == 0)
    jo->verify = VHDUP_VERIFY_CONTENT;
  else
    return vhdup__cli_usage_error("upload", "--verify takes ranges or content, not '%s'", arg);
  return 0;
}

static int parse_merge_gap(vhdup_job_options *jo, const char *arg) {
  uint64_t size;
  if (vhdup__cli_parse_size(arg, &size) != 0 || size % 512 != 0 || size > 4u * 1024 * 1024)
    return vhdup__cli_usage_error("upload",
                                  "--merge-gap takes a multiple of 512 up to 4M, not '%s'", arg);
  jo->merge_gap = (size_t)size;
  return 0;
}

/* The switches that only set a job option. Returns 1 when opt was one. */
static int job_switch(vhdup_job_options *jo, int opt) {
  switch (opt) {
  case OPT_NO_MD5:
    jo->md5 = 0;
    return 1;
  case OPT_CRC64:
    jo->crc64 = 1;
    jo->md5 = 0;
    return 1;
  case OPT_DISK_MD5:
    jo->disk_md5 = 1;
    return 1;
  case OPT_NO_RESIZE:
    jo->resize = 0;
    return 1;
  case OPT_OVERWRITE:
    jo->overwrite = 1;
    return 1;
  case OPT_MKCONTAINER:
    jo->create_container = 1;
    return 1;
  case OPT_RESUME:
    jo->resume = 1;
    return 1;
  default:
    return 0;
  }
}

/* One getopt_long answer. Returns 0, or the exit code after a usage error. */
static int parse_option(upload_options *o, int opt, char **argv) {
  vhdup_job_options *jo = &o->jo;
  if (job_switch(jo, opt))
    return 0;
  switch (opt) {
  case 'c':
    return parse_connections(&o->eo, optarg);
  case 'm':
    return parse_memory(&o->eo, optarg);
  case OPT_STALL:
    if (vhdup__cli_parse_uint(optarg, 1, 3600, &o->eo.stall_timeout_s) != 0)
      return vhdup__cli_usage_error("upload", "--stall-timeout takes 1 to 3600 seconds, not '%s'",
                                    optarg);
    return 0;
  case OPT_JOURNAL:
    jo->journal = optarg;
    return 0;
  case OPT_VERIFY:
    return parse_verify(jo, optarg);
  case OPT_FORMAT:
    if (vhdup__cli_parse_format(optarg, &jo->format) != 0)
      return vhdup__cli_usage_error("upload", "--format takes auto, vhd, vhdx or raw, not '%s'",
                                    optarg);
    return 0;
  case OPT_PARENT:
    jo->parent = optarg;
    return 0;
  case OPT_MERGE_GAP:
    return parse_merge_gap(jo, optarg);
  case OPT_PROGRESS:
    if (vhdup__progress_parse_mode(optarg, &o->mode) != 0)
      return vhdup__cli_usage_error("upload", "--progress takes auto, bar, json or none");
    return 0;
  case 'q':
    o->quiet = 1;
    return 0;
  case 'v':
    o->eo.verbose = 1;
    return 0;
  default:
    return vhdup__cli_conn_option(&o->conn, opt, argv);
  }
}

/* The options, then SOURCE and DEST. Returns 0 or the exit code. */
static int parse_args(int argc, char **argv, upload_options *o) {
  static const struct option longopts[] = {
      {"connections", required_argument, NULL, 'c'},
      {"memory", required_argument, NULL, 'm'},
      {"no-md5", no_argument, NULL, OPT_NO_MD5},
      {"crc64", no_argument, NULL, OPT_CRC64},
      {"disk-md5", no_argument, NULL, OPT_DISK_MD5},
      {"no-resize", no_argument, NULL, OPT_NO_RESIZE},
      {"overwrite", no_argument, NULL, OPT_OVERWRITE},
      {"create-container", no_argument, NULL, OPT_MKCONTAINER},
      {"resume", no_argument, NULL, OPT_RESUME},
      {"stall-timeout", required_argument, NULL, OPT_STALL},
      {"journal", required_argument, NULL, OPT_JOURNAL},
      {"verify", optional_argument, NULL, OPT_VERIFY},
      {"format", required_argument, NULL, OPT_FORMAT},
      {"parent", required_argument, NULL, OPT_PARENT},
      VHDUP__CLI_CONN_LONGOPTS,
      {"merge-gap", required_argument, NULL, OPT_MERGE_GAP},
      {"progress", required_argument, NULL, OPT_PROGRESS},
      {"quiet", no_argument, NULL, 'q'},
      {"verbose", no_argument, NULL, 'v'},
      {NULL, 0, NULL, 0},
  };
  int opt, rc;
  vhdup_engine_options_init(&o->eo);
  vhdup_job_options_init(&o->jo);
  vhdup__cli_conn_init(&o->conn, "upload");
  o->mode = VHDUP__PROGRESS_AUTO;
  o->quiet = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":c:m:qv", longopts, NULL)) != -1)
    if ((rc = parse_option(o, opt, argv)) != 0)
      return rc;
  if (argc - optind != 2)
    return vhdup__cli_usage_error("upload", "needs SOURCE and DEST");
  o->jo.source = argv[optind];
  o->jo.target.url = argv[optind + 1];
  return 0;
}

/* The upload on its own loop, with progress; returns the exit code. */
static int run_upload(upload_options *o) {
  upload_run r;
  memset(&r, 0, sizeof(r));
  o->jo.notice_cb = on_notice;
  o->jo.data = &r;
  r.source = o->jo.source;
  int rc = vhdup__cli_session_open(&r.s, "upload", &o->eo, on_interrupt, &r);
  if (rc != 0) {
    vhdup__cli_conn_free(&o->conn);
    return rc;
  }
  rc = vhdup__cli_job_new(&r.s, "upload", &o->jo, &r.job);
  vhdup__cli_conn_free(&o->conn); /* the job keeps copies */
  if (rc != 0)
    return rc;
  vhdup__progress_init(&r.progress, &r.s.loop, r.job, o->quiet ? VHDUP__PROGRESS_NONE : o->mode,
                       o->quiet);
  rc = vhdup__cli_job_start(&r.s, r.job, on_done);
  if (rc != 0) {
    r.status = rc;
    vhdup__progress_close(&r.progress);
  } else {
    vhdup__progress_start(&r.progress);
  }
  vhdup__cli_session_run(&r.s);
  return vhdup__cli_session_exit_code(&r.s, r.status);
}

int vhdup__cmd_upload(int argc, char **argv) {
  upload_options o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0)
    return rc;
  if ((rc = vhdup__cli_conn_read_secrets(&o.conn)) != 0)
    return rc;
  vhdup__cli_conn_to_target(&o.conn, &o.eo, &o.jo.target);
  return run_upload(&o);
}
