/* A program outside the vhdup tree, built against an installed vhdup (with
 * pkg-config or find_package): it sees the public headers, links, fills a
 * job's options (their target as a blob operation's), makes an engine on
 * its own loop and closes it, leaving nothing open on the loop. */
#include <vhdup.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

static int engine_closes;

static void engine_closed(vhdup_engine *e) {
  (void)e;
  engine_closes++;
}

int main(void) {
  uv_loop_t loop;
  vhdup_engine_options eo;
  vhdup_engine *engine = NULL;
  vhdup_engine_close_cb close_cb = engine_closed;
  vhdup_job_options jo;
  vhdup_blob_target bt;

  CHECK(uv_loop_init(&loop) == 0);
  vhdup_engine_options_init(&eo);
  CHECK(vhdup_engine_new(&loop, &eo, &engine) == 0);
  CHECK(engine != NULL);

  printf("vhdup %s\n", vhdup_version_string());
  printf("%s: %s\n", vhdup_err_name(VHDUP_EFORMAT), vhdup_strerror(VHDUP_EFORMAT));
  CHECK(strcmp(vhdup_version_string(), VHDUP_VERSION_STRING) == 0);
  CHECK(strcmp(vhdup_strerror(VHDUP_EFORMAT), "not a valid disk image") == 0);

  /* A job's target starts as a blob operation's, but tries harder. */
  vhdup_job_options_init(&jo);
  vhdup_blob_target_init(&bt);
  CHECK(jo.target.url == NULL && jo.target.use_environment == bt.use_environment);
  CHECK(jo.target.max_attempts > bt.max_attempts);

  vhdup_engine_close(engine, close_cb);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(engine_closes == 1);
  CHECK(uv_loop_close(&loop) == 0);
  return 0;
}
