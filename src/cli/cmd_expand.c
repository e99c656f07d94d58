/* vhdup expand: the fixed VHD an upload would leave on the server, written
 * to a local sparse file: only non-zero sectors are written, the rest stay
 * holes, and the footer goes last so a partial file never looks complete. */
#include "cli/cli.h"

#include "vhdup.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>

const char vhdup__cmd_expand_help[] =
    "Usage: vhdup expand FILE OUT [--no-resize] [--format auto|vhd|vhdx|raw]\n"
    "                    [--parent PATH] [--force] [--quiet]\n"
    "\n"
    "Writes OUT, the fixed VHD that uploading FILE would create in a page blob:\n"
    "the virtual disk's data at its offsets followed by a 512-byte fixed-disk\n"
    "footer. FILE is validated first; OUT is sparse (only non-zero sectors are\n"
    "written, so a mostly empty disk takes little room), is written as\n"
    "OUT.partial and renamed when complete, so a failure leaves no half file.\n"
    "The virtual size is rounded up to a whole MiB, as Azure requires (the\n"
    "tail is zeros and the footer states the new size) unless --no-resize.\n"
    "It runs through the same pipeline as `vhdup upload`, with a local file in\n"
    "place of the blob, so the two cannot disagree about the bytes.\n"
    "\n"
    "Options:\n"
    "  --no-resize        keep the virtual size exactly as FILE states it\n"
    "  --format FMT       auto (default), vhd, vhdx or raw; see 'vhdup help inspect'\n"
    "  --parent PATH      the first parent of a differencing disk\n"
    "  --force            replace OUT if it exists (otherwise exit 5)\n"
    "  -q, --quiet        no summary line and no notes\n"
    "  -h, --help         this help\n"
    "\n"
    "Example:\n"
    "  vhdup expand disk.vhd disk-fixed.vhd\n"
    "  qemu-img info disk-fixed.vhd     # vpc, fixed, the same virtual size\n";

typedef struct expand_run {
  vhdup__cli_session s;
  vhdup_job *job;
  const char *file;
  const char *out;
  int quiet;
  int status;
} expand_run;

static void on_notice(vhdup_job *job, const char *message, void *data) {
  expand_run *r = data;
  (void)job;
  if (!r->quiet)
    fprintf(stderr, "vhdup: %s\n", message);
}

static void on_interrupt(void *data) {
  expand_run *r = data;
  vhdup_job_cancel(r->job);
}

static void on_done(vhdup_job *job, int status, void *data) {
  expand_run *r = data;
  vhdup_job_stats st;
  char h[64], h2[64];

  r->status = status;
  vhdup_job_get_stats(job, &st);
  if (status == 0 && !r->quiet) {
    uint64_t vsize = st.blob_size - VHDUP__FOOTER_SIZE;
    printf("vhdup: expanded %s to %s: virtual size %" PRIu64 " (%s), %" PRIu64
           " bytes written (%s), %.2f s\n",
           r->file, r->out, vsize, vhdup__cli_human_size(vsize, h, sizeof(h)), st.bytes_sent,
           vhdup__cli_human_size(st.bytes_sent, h2, sizeof(h2)), st.seconds);
  } else if (status == VHDUP_ECANCELED) {
    fprintf(stderr, "vhdup: interrupted; %s not written\n", r->out);
  } else if (status != 0) {
    fprintf(stderr, "vhdup: %s\n", vhdup_job_message(job));
  }
  vhdup__cli_session_finish(&r->s, job);
}

/* The options, then FILE and OUT, into the job's options. Returns 0 or the
 * exit code. */
static int parse_args(int argc, char **argv, expand_run *r, vhdup_job_options *jo) {
  static const struct option longopts[] = {
      {"no-resize", no_argument, NULL, 'n'},    {"format", required_argument, NULL, 'f'},
      {"parent", required_argument, NULL, 'p'}, {"force", no_argument, NULL, 'F'},
      {"quiet", no_argument, NULL, 'q'},        {NULL, 0, NULL, 0},
  };
  vhdup_format fmt = VHDUP_FORMAT_AUTO;
  int opt;

  while ((opt = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
    switch (opt) {
    case 'n':
      jo->resize = 0;
      break;
    case 'f':
      if (vhdup__cli_parse_format(optarg, &fmt) != 0)
        return vhdup__cli_usage_error("expand", "--format must be auto, vhd, vhdx or raw, not '%s'",
                                      optarg);
      break;
    case 'p':
      jo->parent = optarg;
      break;
    case 'F':
      jo->overwrite = 1;
      break;
    case 'q':
      r->quiet = 1;
      break;
    default:
      return vhdup__cli_bad_option("expand", opt, argv);
    }
  }
  if (argc - optind != 2)
    return vhdup__cli_usage_error("expand", argc - optind < 2 ? "needs FILE and OUT"
                                                              : "expects exactly FILE and OUT");
  r->file = argv[optind];
  r->out = argv[optind + 1];
  jo->format = fmt;
  return 0;
}

int vhdup__cmd_expand(int argc, char **argv) {
  vhdup_engine_options eo;
  vhdup_job_options jo;
  expand_run r;
  int rc;

  vhdup_engine_options_init(&eo);
  vhdup_job_options_init(&jo);
  memset(&r, 0, sizeof(r));
  if ((rc = parse_args(argc, argv, &r, &jo)) != 0)
    return rc;
  jo.source = r.file;
  jo.target.url = r.out; /* to_file: the output path */
  jo.to_file = 1;
  jo.notice_cb = on_notice;
  jo.data = &r;
  /* Local writes gain nothing from many at once beyond keeping the disk
   * busy; a small pool is enough. */
  eo.connections = 4;
  eo.memory = 16u * 1024 * 1024;

  if ((rc = vhdup__cli_session_open(&r.s, "expand", &eo, on_interrupt, &r)) != 0)
    return rc;
  if ((rc = vhdup__cli_job_new(&r.s, "expand", &jo, &r.job)) != 0)
    return rc;
  if ((rc = vhdup__cli_job_start(&r.s, r.job, on_done)) != 0)
    r.status = rc;
  vhdup__cli_session_run(&r.s);
  return vhdup__cli_session_exit_code(&r.s, r.status);
}
