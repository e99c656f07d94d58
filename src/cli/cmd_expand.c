/* vhdup expand: the fixed VHD an upload would leave on the server, written
 * to a local sparse file: only non-zero sectors are written, the rest stay
 * holes, and the footer goes last so a partial file never looks complete. */
#include "cli/cli.h"

#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char vhdup__cmd_expand_help[] =
    "Usage: vhdup expand FILE OUT [--no-resize] [--format auto|vhd|raw]\n"
    "                    [--parent PATH] [--force] [--quiet]\n"
    "\n"
    "Writes OUT, the fixed VHD that uploading FILE would create in a page blob:\n"
    "the virtual disk's data at its offsets followed by a 512-byte fixed-disk\n"
    "footer. FILE is validated first; OUT is sparse (only non-zero sectors are\n"
    "written, so a mostly empty disk takes little room), is written as\n"
    "OUT.partial and renamed when complete, so a failure leaves no half file.\n"
    "The virtual size is rounded up to a whole MiB, as Azure requires (the\n"
    "tail is zeros and the footer states the new size) unless --no-resize.\n"
    "Memory use is one 4 MiB buffer, whatever the disk size.\n"
    "\n"
    "Options:\n"
    "  --no-resize        keep the virtual size exactly as FILE states it\n"
    "  --format FMT       auto (default), vhd or raw; see 'vhdup help inspect'\n"
    "  --parent PATH      the first parent of a differencing disk\n"
    "  --force            replace OUT if it exists (otherwise exit 5)\n"
    "  -q, --quiet        no summary line and no notes\n"
    "  -h, --help         this help\n"
    "\n"
    "Example:\n"
    "  vhdup expand disk.vhd disk-fixed.vhd\n"
    "  qemu-img info disk-fixed.vhd     # vpc, fixed, the same virtual size\n";

/* The largest extent asked of the iterator and the one buffer's size: the
 * same 4 MiB cap as a Put Page request. */
#define CHUNK (4u * 1024 * 1024)

static int all_zero(const uint8_t *p, size_t n) {
  uint64_t w;

  while (n >= sizeof(w)) {
    memcpy(&w, p, sizeof(w));
    if (w != 0)
      return 0;
    p += sizeof(w);
    n -= sizeof(w);
  }
  while (n > 0) {
    if (*p++ != 0)
      return 0;
    n--;
  }
  return 1;
}

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

/* Writes the non-zero 512-byte sectors of buf (virtual offset voff) as runs;
 * all-zero sectors are skipped so they stay holes. */
static int write_nonzero(int fd, const uint8_t *buf, size_t len, uint64_t voff, uint64_t *written) {
  size_t pos = 0, run = 0, run_len = 0;
  int rc;

  while (pos < len) {
    size_t n = len - pos < VHDUP__SECTOR ? len - pos : VHDUP__SECTOR;
    if (all_zero(buf + pos, n)) {
      if (run_len > 0) {
        rc = write_all(fd, buf + run, run_len, voff + run);
        if (rc != 0)
          return rc;
        *written += run_len;
        run_len = 0;
      }
    } else {
      if (run_len == 0)
        run = pos;
      run_len += n;
    }
    pos += n;
  }
  if (run_len > 0) {
    rc = write_all(fd, buf + run, run_len, voff + run);
    if (rc != 0)
      return rc;
    *written += run_len;
  }
  return 0;
}

typedef struct expand_job {
  const char *file;
  const char *out;
  char *partial;
  int fd;
  uint8_t *buf;
  vhdup__extent_iter *it;
  uint64_t written;
} expand_job;

/* Copies the disk's data into job->fd. Returns 0 or an exit code, having
 * reported the failure. */
static int copy_data(expand_job *job, const vhdup__disk *d) {
  vhdup__extent e;
  vhdup__err err;
  int rc;

  vhdup__err_clear(&err);
  rc = vhdup__extent_iter_new(d, CHUNK, &job->it);
  if (rc != 0)
    return vhdup__cli_report(job->file, rc, NULL);
  while ((rc = vhdup__extent_next(job->it, &e, &err)) == 1) {
    uint64_t done = 0;
    if (vhdup__cli_interrupted())
      return VHDUP_EXIT_INTERRUPTED;
    /* Extents are at most CHUNK long, but do not rely on it for memory
     * safety. */
    while (e.src != NULL && done < e.length) {
      size_t n = e.length - done < CHUNK ? (size_t)(e.length - done) : CHUNK;
      rc = e.src->read(e.src, e.file_offset + done, job->buf, n);
      if (rc != 0)
        return vhdup__cli_report(e.src->name, rc, NULL);
      rc = write_nonzero(job->fd, job->buf, n, e.virtual_offset + done, &job->written);
      if (rc != 0)
        return vhdup__cli_report(job->partial, rc, NULL);
      done += n;
    }
  }
  if (rc < 0)
    return vhdup__cli_report(job->file, rc, &err);
  return 0;
}

static double now_seconds(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int vhdup__cmd_expand(int argc, char **argv) {
  static const struct option longopts[] = {
      {"no-resize", no_argument, NULL, 'n'},    {"format", required_argument, NULL, 'f'},
      {"parent", required_argument, NULL, 'p'}, {"force", no_argument, NULL, 'F'},
      {"quiet", no_argument, NULL, 'q'},        {NULL, 0, NULL, 0},
  };
  vhdup__fmt fmt = VHDUP__FMT_AUTO;
  const char *parent = NULL;
  int no_resize = 0, force = 0, quiet = 0;
  vhdup__cli_disk cd;
  vhdup__disk_info info;
  vhdup__footer ff;
  uint8_t footer[VHDUP__FOOTER_SIZE];
  expand_job job;
  uint64_t vsize;
  struct stat st;
  double t0;
  char h[64], h2[64];
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
    switch (opt) {
    case 'n':
      no_resize = 1;
      break;
    case 'f':
      if (vhdup__cli_parse_format(optarg, &fmt) != 0)
        return vhdup__cli_usage_error("expand", "--format must be auto, vhd or raw, not '%s'",
                                      optarg);
      break;
    case 'p':
      parent = optarg;
      break;
    case 'F':
      force = 1;
      break;
    case 'q':
      quiet = 1;
      break;
    default:
      return vhdup__cli_bad_option("expand", opt, argv);
    }
  }
  if (argc - optind != 2)
    return vhdup__cli_usage_error("expand", argc - optind < 2 ? "needs FILE and OUT"
                                                              : "expects exactly FILE and OUT");
  memset(&job, 0, sizeof(job));
  job.file = argv[optind];
  job.out = argv[optind + 1];
  job.fd = -1;
  t0 = now_seconds();
  vhdup__cli_catch_signals();

  /* Validate the whole source before creating anything. */
  rc = vhdup__cli_open_disk(job.file, fmt, parent, &cd);
  if (rc != 0)
    return rc;
  vhdup__disk_get_info(cd.disk, &info);
  if (!force && lstat(job.out, &st) == 0) {
    fprintf(stderr, "vhdup: %s: already exists; use --force to replace it\n", job.out);
    vhdup__cli_close_disk(&cd);
    return VHDUP_EXIT_CONFLICT;
  }
  vsize = info.virtual_size;
  if (!no_resize && vsize % VHDUP__MIB != 0) {
    uint64_t rounded = (vsize + VHDUP__MIB - 1) / VHDUP__MIB * VHDUP__MIB;
    if (!quiet)
      fprintf(stderr,
              "vhdup: note: virtual size %" PRIu64 " is not a whole number of MiB; rounding up "
              "to %" PRIu64 " (Azure requires whole MiB); use --no-resize to keep it exact\n",
              vsize, rounded);
    vsize = rounded;
  } else if (no_resize && vsize % VHDUP__MIB != 0 && !quiet) {
    fprintf(stderr,
            "vhdup: note: virtual size %" PRIu64 " is not a whole number of MiB; Azure will "
            "not accept it as a managed disk\n",
            vsize);
  }
  for (size_t i = 0; !quiet && vhdup__disk_warning(cd.disk, i) != NULL; i++)
    vhdup__cli_warn(job.file, vhdup__disk_warning(cd.disk, i));

  job.partial = vhdup__malloc(strlen(job.out) + sizeof(".partial"));
  job.buf = vhdup__malloc(CHUNK);
  if (job.partial == NULL || job.buf == NULL) {
    rc = vhdup__cli_report(job.out, VHDUP_ENOMEM, NULL);
    goto out;
  }
  strcpy(job.partial, job.out);
  strcat(job.partial, ".partial");
  job.fd = open(job.partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (job.fd < 0) {
    rc = vhdup__cli_report(job.partial, -errno, NULL);
    /* Not ours: do not unlink what we could not create. */
    vhdup__free(job.partial);
    job.partial = NULL;
    if (rc == VHDUP_EXIT_INPUT)
      rc = VHDUP_EXIT_RUNTIME;
    goto out;
  }
  /* The final size first: everything not written below is a hole, which
   * reads as the zeros the page blob would hold. */
  if (ftruncate(job.fd, (off_t)(vsize + VHDUP__FOOTER_SIZE)) != 0) {
    rc = vhdup__cli_report(job.partial, -errno, NULL);
    goto out;
  }
  rc = copy_data(&job, cd.disk);
  if (rc != 0)
    goto out;
  if (vhdup__cli_interrupted()) {
    rc = VHDUP_EXIT_INTERRUPTED;
    goto out;
  }
  vhdup__fixed_footer(info.is_raw ? NULL : &info.footer, vsize, &ff);
  vhdup__footer_encode(&ff, footer);
  rc = write_all(job.fd, footer, sizeof(footer), vsize);
  if (rc == 0 && fsync(job.fd) != 0)
    rc = -errno;
  if (rc == 0 && close(job.fd) != 0)
    rc = -errno;
  job.fd = -1;
  if (rc == 0 && rename(job.partial, job.out) != 0)
    rc = -errno;
  if (rc != 0) {
    rc = vhdup__cli_report(job.out, rc, NULL);
    if (rc == VHDUP_EXIT_INPUT)
      rc = VHDUP_EXIT_RUNTIME;
    goto out;
  }
  vhdup__free(job.partial);
  job.partial = NULL;
  job.written += sizeof(footer);
  if (!quiet)
    printf("vhdup: expanded %s to %s: virtual size %" PRIu64 " (%s), %" PRIu64
           " bytes written (%s), %.2f s\n",
           job.file, job.out, vsize, vhdup__cli_human_size(vsize, h, sizeof(h)), job.written,
           vhdup__cli_human_size(job.written, h2, sizeof(h2)), now_seconds() - t0);
  rc = VHDUP_EXIT_OK;

out:
  if (rc == VHDUP_EXIT_INTERRUPTED)
    fprintf(stderr, "vhdup: interrupted; %s not written\n", job.out);
  if (job.fd >= 0)
    close(job.fd);
  if (job.partial != NULL) {
    unlink(job.partial);
    vhdup__free(job.partial);
  }
  if (job.it != NULL)
    vhdup__extent_iter_free(job.it);
  vhdup__free(job.buf);
  vhdup__cli_close_disk(&cd);
  return rc;
}
