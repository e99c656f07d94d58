#include "cli/progress.h"

#include "cli/cli.h"
#include "util/defaults.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int vhdup__progress_parse_mode(const char *s, int *mode) {
  static const char *const names[] = {"auto", "bar", "json", "none"};
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, names[i]) == 0) {
      *mode = i;
      return 0;
    }
  }
  return -1;
}

void vhdup__progress_init(vhdup__progress *p, uv_loop_t *loop, vhdup_job *job, int mode,
                          int quiet) {
  memset(p, 0, sizeof(*p));
  p->job = job;
  p->quiet = quiet;
  if (mode == VHDUP__PROGRESS_AUTO)
    mode = isatty(STDERR_FILENO) ? VHDUP__PROGRESS_BAR : VHDUP__PROGRESS_NONE;
  p->mode = mode;
  if (uv_timer_init(loop, &p->timer) == 0) {
    p->timer_inited = 1;
    p->timer.data = p;
  }
}

static const char *phase_name(vhdup_phase ph) {
  switch (ph) {
  case VHDUP_PHASE_OPEN:
    return "open";
  case VHDUP_PHASE_PREPARE:
    return "prepare";
  case VHDUP_PHASE_DATA:
    return "data";
  case VHDUP_PHASE_FOOTER:
    return "footer";
  case VHDUP_PHASE_FINISH:
    return "finish";
  case VHDUP_PHASE_VERIFY:
    return "verify";
  case VHDUP_PHASE_DONE:
    return "done";
  }
  return "?";
}

/* Bytes still expected to be sent: allocated data not yet found to be zero
 * (an estimate that converges as the disk is read). */
static uint64_t to_send(const vhdup_job_stats *st) {
  uint64_t t =
      st->bytes_allocated > st->bytes_skipped ? st->bytes_allocated - st->bytes_skipped : 0;
  return t < st->bytes_sent ? st->bytes_sent : t;
}

static void clear_bar(vhdup__progress *p) {
  if (p->bar_shown) {
    fputs("\r\033[K", stderr);
    p->bar_shown = 0;
  }
}

static void draw(vhdup__progress *p) {
  vhdup_job_stats st;
  vhdup_job_get_stats(p->job, &st);
  double dt = st.seconds - p->last_seconds;
  if (dt > 0.05) {
    double inst = (double)(st.bytes_sent - p->last_bytes) / dt;
    p->rate = p->rate == 0 ? inst : 0.7 * p->rate + 0.3 * inst;
    p->last_bytes = st.bytes_sent;
    p->last_seconds = st.seconds;
  }
  uint64_t total = to_send(&st);
  if (p->mode == VHDUP__PROGRESS_JSON) {
    printf("{\"event\":\"progress\",\"phase\":\"%s\",\"bytes_sent\":%llu,\"bytes_to_send\":%llu,"
           "\"bytes_allocated\":%llu,\"bytes_skipped\":%llu,\"requests\":%llu,\"retries\":%llu,"
           "\"in_flight\":%u,\"connections_limit\":%u,\"seconds\":%.3f,\"rate_bps\":%.0f}\n",
           phase_name(st.phase), (unsigned long long)st.bytes_sent, (unsigned long long)total,
           (unsigned long long)st.bytes_allocated, (unsigned long long)st.bytes_skipped,
           (unsigned long long)st.requests, (unsigned long long)st.retries, st.in_flight,
           st.connections_limit, st.seconds, p->rate);
    fflush(stdout);
    return;
  }
  if (p->mode != VHDUP__PROGRESS_BAR)
    return;
  double frac = total ? (double)st.bytes_sent / (double)total : 0;
  if (frac > 1)
    frac = 1;
  char bar[31];
  int fill = (int)(frac * 30);
  for (int i = 0; i < 30; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[30] = '\0';
  char sent[32], tot[32], eta[32] = "--:--";
  if (p->rate > 1 && total > st.bytes_sent) {
    unsigned long s = (unsigned long)((double)(total - st.bytes_sent) / p->rate);
    snprintf(eta, sizeof(eta), "%lu:%02lu", s / 60, s % 60);
  }
  fprintf(stderr, "\r\033[K[%s] %5.1f%% %s / %s  %.1f MB/s  ETA %s  conns %u  retries %llu  %s",
          bar, frac * 100, vhdup__cli_human_size(st.bytes_sent, sent, sizeof(sent)),
          vhdup__cli_human_size(total, tot, sizeof(tot)), p->rate / 1e6, eta, st.in_flight,
          (unsigned long long)st.retries, phase_name(st.phase));
  fflush(stderr);
  p->bar_shown = 1;
}

static void tick(uv_timer_t *t) {
  draw(t->data);
}

void vhdup__progress_start(vhdup__progress *p) {
  if (!p->timer_inited || p->mode == VHDUP__PROGRESS_NONE)
    return;
  uint64_t every =
      p->mode == VHDUP__PROGRESS_JSON ? VHDUP__PROGRESS_JSON_MS : VHDUP__PROGRESS_BAR_MS;
  uv_timer_start(&p->timer, tick, every, every);
}

void vhdup__progress_note(vhdup__progress *p, const char *msg) {
  if (p->quiet)
    return;
  clear_bar(p);
  if (p->mode == VHDUP__PROGRESS_JSON) {
    printf("{\"event\":\"note\",\"message\":");
    vhdup__cli_json_str(stdout, msg);
    printf("}\n");
    fflush(stdout);
  }
  fprintf(stderr, "vhdup: %s\n", msg);
}

void vhdup__progress_finish(vhdup__progress *p, vhdup_job *job, int status, const char *source) {
  vhdup_job_stats st;
  vhdup_job_get_stats(job, &st);
  clear_bar(p);
  double mbps = st.seconds > 0 ? (double)st.bytes_sent / st.seconds / 1e6 : 0;
  char md5[64] = "";
  if (st.has_disk_md5) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
      md5[2 * i] = digits[st.disk_md5[i] >> 4];
      md5[2 * i + 1] = digits[st.disk_md5[i] & 15];
    }
    md5[32] = '\0';
  }
  if (p->mode == VHDUP__PROGRESS_JSON) {
    printf("{\"event\":\"done\",\"status\":\"%s\",\"error\":", status ? "error" : "ok");
    vhdup__cli_json_str(stdout, status ? vhdup_job_message(job) : "");
    printf(",\"destination\":");
    vhdup__cli_json_str(stdout, vhdup_job_destination(job));
    printf(",\"error_code\":\"%s\",\"virtual_size\":%llu,\"blob_size\":%llu,"
           "\"bytes_allocated\":%llu,\"bytes_sent\":%llu,\"bytes_skipped\":%llu,"
           "\"bytes_resumed\":%llu,"
           "\"requests\":%llu,\"retries\":%llu,\"connections_limit\":%u,\"seconds\":%.3f,"
           "\"disk_md5\":\"%s\"}\n",
           status ? vhdup_err_name(status) : "", (unsigned long long)st.virtual_size,
           (unsigned long long)st.blob_size, (unsigned long long)st.bytes_allocated,
           (unsigned long long)st.bytes_sent, (unsigned long long)st.bytes_skipped,
           (unsigned long long)st.bytes_resumed, (unsigned long long)st.requests,
           (unsigned long long)st.retries, st.connections_limit, st.seconds, md5);
    fflush(stdout);
  }
  if (status != 0) {
    if (status == VHDUP_ECANCELED)
      fprintf(stderr, "vhdup: %s: interrupted after sending %llu bytes: %s\n", source,
              (unsigned long long)st.bytes_sent, vhdup_job_message(job));
    else
      fprintf(stderr, "vhdup: %s\n", vhdup_job_message(job));
    return;
  }
  if (p->quiet || p->mode == VHDUP__PROGRESS_JSON)
    return;
  char a[32], b[32], c[32];
  printf("uploaded %s -> %s\n", source, vhdup_job_destination(job));
  printf("  virtual size  %s (blob %llu bytes, fixed VHD footer last)\n",
         vhdup__cli_human_size(st.virtual_size, a, sizeof(a)), (unsigned long long)st.blob_size);
  printf("  data          %s sent of %s allocated (%s of zeros skipped)\n",
         vhdup__cli_human_size(st.bytes_sent, a, sizeof(a)),
         vhdup__cli_human_size(st.bytes_allocated, b, sizeof(b)),
         vhdup__cli_human_size(st.bytes_skipped, c, sizeof(c)));
  if (st.bytes_resumed > 0)
    printf("  resumed       %s were already on the blob\n",
           vhdup__cli_human_size(st.bytes_resumed, a, sizeof(a)));
  printf("  connections   %u at the end\n", st.connections_limit);
  printf("  requests      %llu (%llu retries)\n", (unsigned long long)st.requests,
         (unsigned long long)st.retries);
  printf("  time          %.2f s, %.1f MB/s\n", st.seconds, mbps);
  if (st.has_disk_md5)
    printf("  disk MD5      %s\n", md5);
}

void vhdup__progress_close(vhdup__progress *p) {
  if (p->timer_inited) {
    p->timer_inited = 0;
    uv_close((uv_handle_t *)&p->timer, NULL);
  }
}
