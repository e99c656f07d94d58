/* Allocation failures: every allocation vhdup makes goes through
 * vhdup_replace_allocator(), so a counting allocator can fail the Nth one.
 * A small job (through the public API, on a private loop) runs once cleanly
 * to count its allocations, then once for every N from 1 until a run no
 * longer reaches the failure. Each run must end without a crash, either
 * succeeding (with the same output as the clean run) or failing with
 * VHDUP_ENOMEM; done_cb fires at most once (exactly once after a successful
 * start); every allocation is freed, each through the hook that made it;
 * and uv_loop_close() returns 0 after the engine and job are closed.
 * libuv's and libcurl's own allocations do not go through the hook and are
 * not counted.
 *
 * The jobs: `expand` (to_file) of a dynamic disk (full, partial and
 * zero-holding blocks, a virtual size that is not a whole MiB, so a notice
 * is given) and of a differencing disk over a dynamic parent (the `parent`
 * option); a dry run; and an upload to vhdup-testserver (Shared Key,
 * Content-MD5 required, a new container each time, a resume journal),
 * skipped when the server binary is not there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/be.h"
#include "vhd/vhd.h"
#include "vhdup.h"

/* ---- The counting allocator ---------------------------------------------
 * Each block carries a header with a magic, so a pointer freed through the
 * hook that it did not come from is caught. */

#define HDR 16u
#define MAGIC 0x7668647570a110c5ull

static struct {
  unsigned long attempts; /* allocation calls, failed ones included */
  unsigned long fail_at;  /* 0: never */
  unsigned long failed;   /* calls refused */
  long live;              /* blocks allocated and not freed */
  unsigned long bad_free; /* frees of pointers that did not come from here */
} A;

static int should_fail(void) {
  A.attempts++;
  if (A.fail_at != 0 && A.attempts == A.fail_at) {
    A.failed++;
    return 1;
  }
  return 0;
}

static void *wrap(void *base) {
  if (base == NULL)
    return NULL;
  uint64_t m = MAGIC;
  memcpy(base, &m, sizeof(m));
  return (char *)base + HDR;
}

static void *base_of(void *p) {
  char *base = (char *)p - HDR;
  uint64_t m;
  memcpy(&m, base, sizeof(m));
  if (m != MAGIC) {
    A.bad_free++;
    return NULL;
  }
  return base;
}

static void *t_malloc(size_t n) {
  if (should_fail() || n > SIZE_MAX - HDR)
    return NULL;
  void *p = wrap(malloc(n + HDR));
  if (p != NULL)
    A.live++;
  return p;
}

static void *t_calloc(size_t count, size_t n) {
  if (should_fail() || (n != 0 && count > (SIZE_MAX - HDR) / n))
    return NULL;
  void *p = wrap(calloc(1, count * n + HDR));
  if (p != NULL)
    A.live++;
  return p;
}

static void *t_realloc(void *p, size_t n) {
  if (p == NULL)
    return t_malloc(n);
  if (should_fail() || n > SIZE_MAX - HDR)
    return NULL;
  void *base = base_of(p);
  if (base == NULL)
    return NULL;
  uint64_t zero = 0;
  memcpy(base, &zero, sizeof(zero)); /* the old address must not look like ours */
  void *nb = realloc(base, n + HDR);
  if (nb == NULL) {
    uint64_t m = MAGIC;
    memcpy(base, &m, sizeof(m));
    return NULL;
  }
  return wrap(nb);
}

static void t_free(void *p) {
  if (p == NULL)
    return;
  void *base = base_of(p);
  if (base == NULL)
    return; /* counted in bad_free; leaked rather than freed wrongly */
  uint64_t zero = 0;
  memcpy(base, &zero, sizeof(zero));
  free(base);
  A.live--;
}

/* ---- Images -------------------------------------------------------------- */

#define BS (64u * 1024)

static char dir[64];
static char path_dyn[128], path_parent[128], path_child[128], path_out[128];

static void fill_footer(vhdup__footer *f, uint32_t type, uint64_t vsize, uint8_t uuid_byte) {
  memset(f, 0, sizeof(*f));
  memcpy(f->cookie, "conectix", 8);
  f->features = 2;
  f->version = 0x00010000;
  f->data_offset = 512;
  memcpy(f->creator_app, "win ", 4);
  memcpy(f->creator_os, "Wi2k", 4);
  f->original_size = vsize;
  f->current_size = vsize;
  vhdup__chs(vsize, &f->cylinders, &f->heads, &f->sectors_per_track);
  f->disk_type = type;
  memset(f->uuid, uuid_byte, 16);
}

typedef struct block_spec {
  uint32_t index;
  const char *bitmap; /* "full", "half" (first half of the sectors), "odd" */
  uint8_t fill;
  int zero_every; /* every Nth sector zero inside the block (0: none) */
} block_spec;

/* A dynamic (or differencing) VHD at path: footer copy, dynamic header at
 * 512, BAT at 1536, the blocks in the order given, footer. */
static void write_vhd(const char *path, uint32_t type, uint64_t vsize, const block_spec *blocks,
                      size_t n, uint8_t uuid_byte, uint8_t parent_uuid_byte) {
  uint32_t nbat = (uint32_t)((vsize + BS - 1) / BS);
  uint32_t bitmap_size = ((BS / 512 + 7) / 8 + 511) / 512 * 512;
  uint64_t toff = 1536, p = toff + ((uint64_t)nbat * 4 + 511) / 512 * 512;
  size_t len = (size_t)(p + n * (bitmap_size + BS) + 512);
  uint8_t *buf = calloc(1, len);
  assert_non_null(buf);
  for (uint32_t i = 0; i < nbat; i++)
    vhdup__put_be32(buf + toff + 4 * i, 0xffffffffu);
  for (size_t i = 0; i < n; i++) {
    const block_spec *b = &blocks[i];
    vhdup__put_be32(buf + toff + 4 * b->index, (uint32_t)(p / 512));
    uint8_t *bm = buf + p, *data = buf + p + bitmap_size;
    for (uint32_t s = 0; s < BS / 512; s++) {
      int set = strcmp(b->bitmap, "full") == 0   ? 1
                : strcmp(b->bitmap, "half") == 0 ? s < BS / 1024
                                                 : (s & 1) == 1;
      if (set)
        bm[s / 8] |= (uint8_t)(0x80u >> (s % 8));
      if (b->zero_every == 0 || s % (uint32_t)b->zero_every != 0)
        for (uint32_t k = 0; k < 512; k++)
          data[s * 512 + k] = (uint8_t)(b->fill + s + k / 64);
    }
    p += bitmap_size + BS;
  }
  vhdup__dynhdr h;
  memset(&h, 0, sizeof(h));
  memcpy(h.cookie, "cxsparse", 8);
  h.data_offset = UINT64_MAX;
  h.table_offset = toff;
  h.header_version = 0x00010000;
  h.max_table_entries = nbat;
  h.block_size = BS;
  if (type == VHDUP__DISK_DIFFERENCING) {
    memset(h.parent_uuid, parent_uuid_byte, 16);
    const char *pn = "parent.vhd";
    for (size_t i = 0; pn[i] != '\0'; i++)
      h.parent_name[i] = (uint16_t)pn[i];
  }
  vhdup__dynhdr_encode(&h, buf + 512);
  vhdup__footer f;
  fill_footer(&f, type, vsize, uuid_byte);
  vhdup__footer_encode(&f, buf);
  vhdup__footer_encode(&f, buf + p);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
  free(buf);
}

static int setup(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof(dir), "%s/vhdup-alloc.XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(path_dyn, sizeof(path_dyn), "%s/dyn.vhd", dir);
  snprintf(path_parent, sizeof(path_parent), "%s/parent.vhd", dir);
  snprintf(path_child, sizeof(path_child), "%s/child.vhd", dir);
  snprintf(path_out, sizeof(path_out), "%s/out.vhd", dir);
  /* 800 KiB: 13 blocks of 64 KiB, the last one partial. */
  static const block_spec dyn[] = {
      {7, "full", 0x31, 3}, {0, "full", 0x11, 0}, {12, "half", 0x51, 0}, {3, "odd", 0x21, 0}};
  write_vhd(path_dyn, VHDUP__DISK_DYNAMIC, 800 * 1024, dyn, 4, 0xa1, 0);
  static const block_spec parent[] = {{1, "full", 0x61, 0}, {2, "full", 0x71, 5}};
  write_vhd(path_parent, VHDUP__DISK_DYNAMIC, 512 * 1024, parent, 2, 0xb2, 0);
  static const block_spec child[] = {{2, "odd", 0x81, 0}, {5, "half", 0x91, 0}};
  write_vhd(path_child, VHDUP__DISK_DIFFERENCING, 512 * 1024, child, 2, 0xc3, 0xb2);
  return 0;
}

static void stop_server(void);

static int teardown(void **state) {
  (void)state;
  stop_server(); /* a failed check jumps past test_upload's own stop */
  unlink(path_dyn);
  unlink(path_parent);
  unlink(path_child);
  unlink(path_out);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- The strict test server, for uploads ----------------------------------
 * vhdup-testserver from next to this binary (or $VHDUP_TESTSERVER), on a
 * kernel-chosen loopback port, checking Shared Key and Content-MD5. */

#define KEY                                                                                        \
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

static pid_t server_pid;
static char server_url[96], store[96];

static int start_server(void) {
  char exe[512], bin[600], portfile[96];
  const char *env = getenv("VHDUP_TESTSERVER");
  if (env != NULL && *env != '\0') {
    snprintf(bin, sizeof(bin), "%s", env);
  } else {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
      return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL)
      *slash = '\0';
    snprintf(bin, sizeof(bin), "%s/vhdup-testserver", exe);
  }
  if (access(bin, X_OK) != 0)
    return -1;
  snprintf(store, sizeof(store), "%s/store", dir);
  snprintf(portfile, sizeof(portfile), "%s/port", dir);
  if (mkdir(store, 0700) != 0)
    return -1;
  server_pid = fork();
  if (server_pid < 0)
    return -1;
  if (server_pid == 0) {
    /* Dies with this test even when killed (a ctest timeout). */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
      _exit(127);
    execl(bin, bin, "--port", "0", "--port-file", portfile, "--store", store, "--key", KEY,
          "--require-md5", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    FILE *fp = fopen(portfile, "r");
    unsigned port = 0;
    if (fp != NULL) {
      int got = fscanf(fp, "%u", &port);
      fclose(fp);
      if (got == 1 && port > 0) {
        snprintf(server_url, sizeof(server_url), "http://127.0.0.1:%u/devstoreaccount1", port);
        return 0;
      }
    }
    usleep(25000);
  }
  return -1;
}

static void stop_server(void) {
  if (server_pid > 0) {
    kill(server_pid, SIGTERM);
    int st;
    waitpid(server_pid, &st, 0);
    server_pid = 0;
  }
}

/* ---- One job on a private loop ------------------------------------------- */

typedef enum mode { EXPAND, DRY_RUN, UPLOAD } mode;
static unsigned long blob_counter;
static char blob_path[160];

typedef struct run {
  uv_loop_t loop;
  vhdup_engine *engine;
  vhdup_job *job;
  int done_calls;
  int status;       /* done_cb's, or vhdup_job_start's */
  int setup_status; /* engine_new / job_new */
  int engine_closed, job_closed;
  unsigned notices;
} run;

static void on_notice(vhdup_job *job, const char *message, void *data) {
  run *r = data;
  (void)job;
  assert_non_null(message);
  r->notices++;
}

static void on_engine_closed(vhdup_engine *e) {
  (void)e;
}

static void on_job_closed(vhdup_job *job) {
  run *r = vhdup_job_get_data(job);
  r->job_closed++;
  vhdup_engine_close(r->engine, on_engine_closed);
  r->engine_closed++;
}

static void on_done(vhdup_job *job, int status, void *data) {
  run *r = data;
  r->done_calls++;
  r->status = status;
  /* The message is readable whatever the status. */
  assert_non_null(vhdup_job_message(job));
  vhdup_job_close(job, on_job_closed);
}

static void run_job(run *r, const char *source, const char *parent, mode m) {
  char dest[192], journal[96];
  memset(r, 0, sizeof(*r));
  unlink(path_out);
  assert_int_equal(uv_loop_init(&r->loop), 0);
  vhdup_engine_options eo;
  vhdup_engine_options_init(&eo);
  eo.connections = 4;
  eo.memory = 8u * 1024 * 1024;
  r->setup_status = vhdup_engine_new(&r->loop, &eo, &r->engine);
  if (r->setup_status == 0) {
    vhdup_job_options jo;
    vhdup_job_options_init(&jo);
    jo.source = source;
    jo.parent = parent;
    if (m == UPLOAD) {
      /* A new container and blob each time, so every run creates both and
       * an earlier run's never gets in the way. */
      blob_counter++;
      snprintf(dest, sizeof(dest), "%s/vhds%lu/b.vhd", server_url, blob_counter);
      snprintf(blob_path, sizeof(blob_path), "%s/devstoreaccount1/vhds%lu/b.vhd.data", store,
               blob_counter);
      snprintf(journal, sizeof(journal), "%s/upload.journal", dir);
      unlink(journal);
      jo.target.url = dest;
      jo.target.account_key = KEY;
      jo.target.use_environment = 0;
      jo.create_container = 1;
      jo.journal = journal;
      jo.target.max_attempts = 2;
    } else if (m == DRY_RUN) {
      jo.target.url = "http://127.0.0.1:9/devstoreaccount1/vhds/dry.vhd";
      jo.target.account_key = KEY;
      jo.target.use_environment = 0;
      jo.dry_run = 1;
    } else {
      jo.target.url = path_out;
      jo.to_file = 1;
    }
    jo.notice_cb = on_notice;
    jo.data = r;
    r->setup_status = vhdup_job_new(r->engine, &jo, &r->job);
    if (r->setup_status != 0) {
      assert_null(r->job);
      vhdup_engine_close(r->engine, on_engine_closed);
      r->engine_closed++;
    } else {
      r->status = vhdup_job_start(r->job, on_done);
      if (r->status != 0) /* done_cb never fires */
        vhdup_job_close(r->job, on_job_closed);
    }
  } else {
    assert_null(r->engine);
  }
  assert_int_equal(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
  if (r->engine != NULL) {
    assert_int_equal(r->engine_closed, 1);
  }
  if (r->job != NULL) {
    assert_int_equal(r->job_closed, 1);
  }
  assert_true(r->done_calls <= 1);
  /* Anything left open would make this UV_EBUSY. */
  assert_int_equal(uv_loop_close(&r->loop), 0);
}

static uint8_t *read_all(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL)
    return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  *len = (size_t)n;
  return buf;
}

/* The whole sweep for one source. */
static void sweep(const char *source, const char *parent, mode m) {
  const char *out_path = m == UPLOAD ? blob_path : path_out;
  run r;
  assert_int_equal(vhdup_replace_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);

  memset(&A, 0, sizeof(A));
  run_job(&r, source, parent, m);
  assert_int_equal(r.setup_status, 0);
  if (r.status != 0)
    fail_msg("clean run of %s failed: %s", source, vhdup_err_name(r.status));
  assert_int_equal(r.done_calls, 1);
  assert_int_equal(A.live, 0);
  assert_int_equal(A.bad_free, 0);
  size_t ref_len = 0;
  uint8_t *ref = m == DRY_RUN ? NULL : read_all(out_path, &ref_len);
  assert_true(m == DRY_RUN || ref != NULL);
  unsigned long clean_attempts = A.attempts;
  assert_true(clean_attempts > 0);

  unsigned long n, ok = 0, enomem = 0, clean = 0, most = clean_attempts;
  for (n = 1; n < 1000000; n++) {
    memset(&A, 0, sizeof(A));
    A.fail_at = n;
    run_job(&r, source, parent, m);
    if (A.live != 0 || A.bad_free != 0)
      fail_msg("%s: failing allocation %lu of %lu: %ld blocks leaked, %lu bad frees "
               "(setup %s, status %s)",
               source, n, clean_attempts, A.live, A.bad_free, vhdup_err_name(r.setup_status),
               vhdup_err_name(r.status));
    int st = r.setup_status != 0 ? r.setup_status : r.status;
    if (A.failed == 0) {
      /* The failure was never reached: this run is a clean one again. An
       * upload's count varies a little from run to run (how answers arrive),
       * so the sweep goes on past the most any run needed. */
      if (st != 0)
        fail_msg("%s: run %lu without a failure ended in %s", source, n, vhdup_err_name(st));
      if (A.attempts > most)
        most = A.attempts;
      if (n > most)
        break;
      clean++;
      continue;
    }
    if (A.attempts > most)
      most = A.attempts;
    if (st == 0) {
      /* Recovered from the failure: the output must still be right. */
      if (r.setup_status == 0 && r.done_calls != 1)
        fail_msg("%s: allocation %lu failed: success without done_cb", source, n);
      size_t len = 0;
      uint8_t *out = m == DRY_RUN ? NULL : read_all(out_path, &len);
      if (m != DRY_RUN && (out == NULL || len != ref_len || memcmp(out, ref, len) != 0))
        fail_msg("%s: allocation %lu failed, job succeeded, output differs", source, n);
      free(out);
      ok++;
    } else if (st == VHDUP_ENOMEM || st == UV_ENOMEM) {
      if (r.setup_status == 0 && r.job != NULL && r.status != 0 && r.done_calls > 1)
        fail_msg("%s: allocation %lu: done_cb fired twice", source, n);
      enomem++;
    } else {
      fail_msg("%s: failing allocation %lu of %lu gave %s (%s), not VHDUP_ENOMEM", source, n,
               clean_attempts, vhdup_err_name(st), vhdup_strerror(st));
    }
  }
  print_message("%s: %lu allocations in a clean run (at most %lu); failing each: %lu ENOMEM, "
                "%lu recovered, %lu not reached\n",
                source, clean_attempts, most, enomem, ok, clean);
  assert_true(n > clean_attempts / 2);
  free(ref);
  assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
}

static void test_dynamic(void **state) {
  (void)state;
  sweep(path_dyn, NULL, EXPAND);
}

static void test_differencing(void **state) {
  (void)state;
  sweep(path_child, path_parent, EXPAND);
}

static void test_dry_run(void **state) {
  (void)state;
  sweep(path_dyn, NULL, DRY_RUN);
}

/* An upload to the strict server: auth, requests, the journal. */
static void test_upload(void **state) {
  (void)state;
  if (start_server() != 0) {
    stop_server();
    skip();
  }
  sweep(path_dyn, NULL, UPLOAD);
  stop_server();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dynamic),
      cmocka_unit_test(test_differencing),
      cmocka_unit_test(test_dry_run),
      cmocka_unit_test(test_upload),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
