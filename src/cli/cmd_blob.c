/* vhdup blob info|ranges: looking at a blob for debugging, on a libuv loop
 * of its own, through the public API (include/vhdup.h) and nothing else. */
#include "cli/cli.h"

#include "util/alloc.h"
#include "vhdup.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char vhdup__cmd_blob_help[] =
    "Usage: vhdup blob info URL [options]\n"
    "       vhdup blob ranges URL [options]\n"
    "\n"
    "Looks at a blob the way vhdup sees it, to debug an upload or check a\n"
    "managed disk before and after one.\n"
    "\n"
    "  info    its properties: size, blob type, ETag, Last-Modified, Content-MD5\n"
    "          (hex and base64; `vhdup upload --disk-md5` sets it), lease state\n"
    "  ranges  every page range holding data (pages written and not cleared):\n"
    "          one line per range, START-END (inclusive, as Azure reports them)\n"
    "          and LENGTH, then the number of ranges and their total bytes.\n"
    "          Asked in segments (--segment) and paged with markers, so huge or\n"
    "          fragmented blobs work; a range a segment boundary cuts is shown\n"
    "          once, whole.\n"
    "\n"
    "URL and credentials are taken exactly as by `vhdup upload`: a blob URL with\n"
    "a SAS, or without one plus a credential from the options or the\n"
    "environment, or CONTAINER/BLOB with --connection-string. First found wins:\n"
    "a SAS in the URL; --sas-token-file; --connection-string; --account-key-file;\n"
    "AZURE_STORAGE_CONNECTION_STRING; AZURE_STORAGE_ACCOUNT with\n"
    "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN. A SAS needs read permission.\n"
    "\n"
    "Options:\n"
    "      --json              one JSON object on stdout (ranges: the list, count\n"
    "                          and bytes; on a failure \"complete\": false and the\n"
    "                          error)\n"
    "      --offset SIZE       ranges: start here (a multiple of 512; default 0)\n"
    "      --length SIZE       ranges: this many bytes (default: to the end)\n"
    "      --segment SIZE      ranges: bytes per request (default {segment})\n"
    "      --max-results N     ranges: ranges per answer page (default {max_results})\n"
    /* clang-format off */
    VHDUP__CLI_CONN_HELP
    /* clang-format on */
    "      --retries N         tries per request (default {blob_retries})\n"
    "  -v, --verbose           HTTP trace on stderr (signatures redacted)\n"
    "  -h, --help              this help\n"
    "\n"
    "A missing blob or container exits 5, a refused credential 4.\n"
    "\n"
    "Example:\n"
    "  vhdup blob info \"https://acct.blob.core.windows.net/vhds/disk.vhd?$SAS\"\n"
    "  vhdup blob ranges --json --connection-string UseDevelopmentStorage=true \\\n"
    "    vhds/disk.vhd\n";

typedef enum { CMD_INFO, CMD_RANGES } blob_cmd;

typedef struct blob_run {
  vhdup__cli_session s;
  vhdup_blob_op *op;
  vhdup_blob_target target;
  vhdup_blob_ranges_options ro;
  blob_cmd cmd;
  int json;
  int status;
  int listing; /* ranges: JSON list opened */
  char *url;   /* the blob, sig=REDACTED, from the info answer */
  uint64_t size;
  uint64_t count, bytes;
} blob_run;

/* The end of the command: nothing of ours stays on the loop. */
static void finish(blob_run *r, int status) {
  r->status = status;
  r->op = NULL;
  vhdup__cli_session_finish(&r->s, NULL);
}

static void report_error(blob_run *r, int status, const char *message) {
  if (status == VHDUP_ECANCELED && r->s.interrupted)
    message = "interrupted";
  if (r->json) {
    if (r->listing)
      printf("],\"count\":%llu,\"bytes\":%llu,", (unsigned long long)r->count,
             (unsigned long long)r->bytes);
    else
      printf("{\"blob\":");
    if (!r->listing)
      vhdup__cli_json_str(stdout, r->url != NULL ? r->url : "");
    printf("%s\"complete\":false,\"error\":", r->listing ? "" : ",");
    vhdup__cli_json_str(stdout, message);
    printf(",\"error_code\":\"%s\"}\n", vhdup_err_name(status));
  }
  fprintf(stderr, "vhdup: blob: %s\n", message);
}

/* Retries and other notices go to stderr, as an upload's do. */
static void on_notice(vhdup_blob_op *op, const char *message, void *data) {
  (void)op;
  (void)data;
  fprintf(stderr, "vhdup: blob: %s\n", message);
}

static void md5_hex(const uint8_t md5[16], char out[33]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = digits[md5[i] >> 4];
    out[2 * i + 1] = digits[md5[i] & 15];
  }
  out[32] = '\0';
}

static void print_info(const blob_run *r, const vhdup_blob_info *in) {
  char hex[33] = "";
  if (in->has_content_md5)
    md5_hex(in->content_md5, hex);
  if (r->json) {
    static const char *const names[] = {"blob",          "blob_type",          "etag",
                                        "last_modified", "creation_time",      "content_type",
                                        "content_md5",   "content_md5_base64", "lease_state",
                                        "lease_status",  "lease_duration"};
    const char *values[] = {in->url,
                            in->blob_type,
                            in->etag,
                            in->last_modified,
                            in->creation_time,
                            in->content_type,
                            hex,
                            in->content_md5_base64,
                            in->lease_state,
                            in->lease_status,
                            in->lease_duration};
    printf("{\"size\":%llu", (unsigned long long)in->size);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
      printf(",\"%s\":", names[i]);
      if (values[i][0] == '\0')
        printf("null");
      else
        vhdup__cli_json_str(stdout, values[i]);
    }
    if (in->has_sequence_number)
      printf(",\"sequence_number\":%llu}\n", (unsigned long long)in->sequence_number);
    else
      printf(",\"sequence_number\":null}\n");
    return;
  }
  char h[32];
  printf("blob            %s\n", in->url);
  printf("type            %s\n", in->blob_type[0] ? in->blob_type : "(not given)");
  printf("size            %llu bytes (%s)\n", (unsigned long long)in->size,
         vhdup__cli_human_size(in->size, h, sizeof(h)));
  if (in->size >= 512 && in->size % 512 == 0 && (in->size - 512) % VHDUP__MIB == 0)
    printf("                %llu MiB + 512: fits a managed disk or VM image\n",
           (unsigned long long)((in->size - 512) / VHDUP__MIB));
  printf("etag            %s\n", in->etag);
  printf("last modified   %s\n", in->last_modified);
  if (in->creation_time[0])
    printf("created         %s\n", in->creation_time);
  if (in->content_type[0])
    printf("content type    %s\n", in->content_type);
  if (in->has_content_md5)
    printf("content MD5     %s (base64 %s)\n", hex, in->content_md5_base64);
  else if (in->content_md5_base64[0])
    printf("content MD5     %s (not a 16-byte MD5)\n", in->content_md5_base64);
  else
    printf("content MD5     (none)\n");
  if (in->lease_state[0] || in->lease_status[0]) {
    printf("lease           %s", in->lease_state[0] ? in->lease_state : "?");
    if (in->lease_status[0])
      printf(", %s", in->lease_status);
    if (in->lease_duration[0])
      printf(", %s", in->lease_duration);
    printf("\n");
  }
  if (in->has_sequence_number)
    printf("sequence number %llu\n", (unsigned long long)in->sequence_number);
}

static int on_range(vhdup_blob_op *op, uint64_t start, uint64_t end, void *data) {
  blob_run *r = data;
  (void)op;
  uint64_t len = end + 1 - start;
  if (r->json)
    printf("%s{\"start\":%llu,\"end\":%llu,\"length\":%llu}", r->count ? "," : "",
           (unsigned long long)start, (unsigned long long)end, (unsigned long long)len);
  else
    printf("%llu-%llu %llu\n", (unsigned long long)start, (unsigned long long)end,
           (unsigned long long)len);
  r->count++;
  r->bytes += len;
  return 0;
}

static void ranges_done(blob_run *r, int status, const char *message) {
  if (status != 0) {
    report_error(r, status, message);
  } else if (r->json) {
    printf("],\"count\":%llu,\"bytes\":%llu,\"complete\":true}\n", (unsigned long long)r->count,
           (unsigned long long)r->bytes);
  } else {
    char h[32];
    printf("total: %llu ranges, %llu bytes (%s) in [%llu, %llu) of %llu\n",
           (unsigned long long)r->count, (unsigned long long)r->bytes,
           vhdup__cli_human_size(r->bytes, h, sizeof(h)), (unsigned long long)r->ro.offset,
           (unsigned long long)(r->ro.offset + r->ro.length), (unsigned long long)r->size);
  }
  finish(r, status);
}

static void on_ranges_done(vhdup_blob_op *op, int status, const char *message, void *data) {
  (void)op;
  ranges_done(data, status, message);
}

/* Starts an operation's notices, or ends the command when it did not start. */
static void started(blob_run *r, int rc) {
  if (rc == 0) {
    vhdup_blob_set_notice_cb(r->op, on_notice);
    return;
  }
  report_error(r, rc, vhdup_strerror(rc));
  finish(r, rc);
}

static void on_info(vhdup_blob_op *op, int status, const vhdup_blob_info *info, const char *message,
                    void *data) {
  blob_run *r = data;
  (void)op;
  if (status != 0) {
    report_error(r, status, message);
    finish(r, status);
    return;
  }
  r->url = vhdup__strdup(info->url);
  if (r->cmd == CMD_INFO) {
    print_info(r, info);
    finish(r, 0);
    return;
  }
  /* ranges: the size and type are known now. */
  r->size = info->size;
  if (strcmp(info->blob_type, "PageBlob") != 0) {
    char msg[1024];
    snprintf(msg, sizeof(msg), "%s is a %s, not a page blob: it has no page ranges", info->url,
             info->blob_type[0] ? info->blob_type : "blob of unknown type");
    report_error(r, VHDUP_EUNSUPPORTED, msg);
    finish(r, VHDUP_EUNSUPPORTED);
    return;
  }
  if (r->ro.offset > r->size || (r->ro.length != 0 && r->ro.length > r->size - r->ro.offset)) {
    char msg[1024];
    snprintf(msg, sizeof(msg), "%s: --offset/--length reach beyond the blob's end (%llu bytes)",
             info->url, (unsigned long long)r->size);
    report_error(r, VHDUP_EINVAL, msg);
    finish(r, VHDUP_EINVAL);
    return;
  }
  if (r->ro.length == 0)
    r->ro.length = r->size - r->ro.offset;
  if (r->json) {
    printf("{\"blob\":");
    vhdup__cli_json_str(stdout, info->url);
    printf(",\"blob_size\":%llu,\"offset\":%llu,\"length\":%llu,\"ranges\":[",
           (unsigned long long)r->size, (unsigned long long)r->ro.offset,
           (unsigned long long)r->ro.length);
    r->listing = 1;
  }
  if (r->ro.length == 0) { /* an empty blob, or offset at its end */
    ranges_done(r, 0, "");
    return;
  }
  started(r, vhdup_blob_get_ranges(r->s.engine, &r->target, &r->ro, on_range, on_ranges_done, r,
                                   &r->op));
}

static void on_interrupt(void *data) {
  blob_run *r = data;
  if (r->op != NULL)
    vhdup_blob_cancel(r->op);
}

enum {
  OPT_JSON = 256,
  OPT_OFFSET,
  OPT_LENGTH,
  OPT_SEGMENT,
  OPT_MAX_RESULTS,
};

/* --offset, --length, --segment: multiples of 512 (a segment from 512). */
static int parse_ranges_size(blob_run *r, int opt, const char *arg) {
  uint64_t size;
  if (vhdup__cli_parse_size(arg, &size) != 0 || size % 512 != 0 ||
      (opt == OPT_SEGMENT && size == 0))
    return vhdup__cli_usage_error("blob", "--%s takes a multiple of 512%s, not '%s'",
                                  opt == OPT_OFFSET   ? "offset"
                                  : opt == OPT_LENGTH ? "length"
                                                      : "segment",
                                  opt == OPT_SEGMENT ? " from 512" : "", arg);
  if (opt == OPT_OFFSET)
    r->ro.offset = size;
  else if (opt == OPT_LENGTH)
    r->ro.length = size;
  else
    r->ro.segment_size = size;
  return 0;
}

/* info or ranges, and its URL. Returns 0 or the exit code. */
static int parse_subcommand(int argc, char **argv, blob_run *r, int ranges_opts) {
  if (argc - optind < 1)
    return vhdup__cli_usage_error("blob", "needs a subcommand: info or ranges");
  const char *sub = argv[optind];
  if (strcmp(sub, "info") == 0)
    r->cmd = CMD_INFO;
  else if (strcmp(sub, "ranges") == 0)
    r->cmd = CMD_RANGES;
  else
    return vhdup__cli_usage_error("blob", "unknown subcommand '%s' (info or ranges)", sub);
  if (argc - optind != 2)
    return vhdup__cli_usage_error("blob", "%s needs one URL", sub);
  if (r->cmd == CMD_INFO && ranges_opts)
    return vhdup__cli_usage_error("blob",
                                  "--offset, --length, --segment and --max-results are for ranges");
  r->target.url = argv[optind + 1];
  return 0;
}

/* The options, then the subcommand and URL. Returns 0 or the exit code. */
static int parse_args(int argc, char **argv, blob_run *r, vhdup_engine_options *eo,
                      vhdup__cli_conn *conn) {
  static const struct option longopts[] = {
      {"json", no_argument, NULL, OPT_JSON},
      {"offset", required_argument, NULL, OPT_OFFSET},
      {"length", required_argument, NULL, OPT_LENGTH},
      {"segment", required_argument, NULL, OPT_SEGMENT},
      {"max-results", required_argument, NULL, OPT_MAX_RESULTS},
      VHDUP__CLI_CONN_LONGOPTS,
      {"verbose", no_argument, NULL, 'v'},
      {NULL, 0, NULL, 0},
  };
  int ranges_opts = 0;
  int opt, rc;

  /* main() left optind at 0, so getopt starts afresh and permutes: options
   * may follow the subcommand and the URL. */
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":v", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_JSON:
      r->json = 1;
      break;
    case OPT_OFFSET:
    case OPT_LENGTH:
    case OPT_SEGMENT:
      if ((rc = parse_ranges_size(r, opt, optarg)) != 0)
        return rc;
      ranges_opts = 1;
      break;
    case OPT_MAX_RESULTS:
      if (vhdup__cli_parse_uint(optarg, 1, 100000, &r->ro.max_results) != 0)
        return vhdup__cli_usage_error("blob", "--max-results takes 1 to 100000, not '%s'", optarg);
      ranges_opts = 1;
      break;
    case 'v':
      eo->verbose = 1;
      break;
    default:
      if ((rc = vhdup__cli_conn_option(conn, opt, argv)) != 0)
        return rc;
      break;
    }
  }
  return parse_subcommand(argc, argv, r, ranges_opts);
}

int vhdup__cmd_blob(int argc, char **argv) {
  blob_run r;
  memset(&r, 0, sizeof(r));
  vhdup_engine_options eo;
  vhdup_engine_options_init(&eo);
  eo.connections = 1; /* one request at a time */
  vhdup_blob_target_init(&r.target);
  vhdup_blob_ranges_options_init(&r.ro);
  vhdup__cli_conn conn;
  vhdup__cli_conn_init(&conn, "blob");
  int rc = parse_args(argc, argv, &r, &eo, &conn);
  if (rc != 0)
    return rc;
  if ((rc = vhdup__cli_conn_read_secrets(&conn)) != 0)
    return rc;
  vhdup__cli_conn_to_target(&conn, &eo, &r.target);

  if ((rc = vhdup__cli_session_open(&r.s, "blob", &eo, on_interrupt, &r)) != 0) {
    vhdup__cli_conn_free(&conn);
    return rc;
  }
  started(&r, vhdup_blob_get_info(r.s.engine, &r.target, on_info, &r, &r.op));
  vhdup__cli_session_run(&r.s);
  vhdup__cli_conn_free(&conn);
  vhdup__free(r.url);
  fflush(stdout);
  return vhdup__cli_session_exit_code(&r.s, r.status);
}
