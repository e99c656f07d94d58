/* The blob operations' contract, without a server: callbacks never fire
 * from inside the starting call, early errors arrive through the callback
 * with a message and no secret, cancel (also from a callback) ends an
 * operation with VHDUP_ECANCELED, and the engine's close waits for running
 * operations; callbacks get their operation first and the data last;
 * every test ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vhdup.h"

/* Nothing listens on port 1 of loopback: connections are refused. */
#define REFUSED_URL "http://127.0.0.1:1/devstoreaccount1/vhds/disk.vhd"
#define SECRET_SIG "c2VjcmV0LXNpZ25hdHVyZQ"
#define KEY                                                                                        \
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

typedef struct run {
  uv_loop_t loop;
  vhdup_engine *e;
  vhdup_blob_op *op;
  int in_call;
  int done;
  int status;
  char message[1024];
  int engine_closed;
  int done_before_close;
  int close_engine_in_done;
  int cancel_in_done;
  unsigned notices;
} run;

static run *the_run;

static void engine_closed_count(vhdup_engine *e) {
  (void)e;
  the_run->engine_closed++;
  the_run->done_before_close = the_run->done;
}

static void on_info(vhdup_blob_op *op, int status, const vhdup_blob_info *info, const char *message,
                    void *data) {
  run *r = data;
  assert_non_null(op);
  if (r->op != NULL)
    assert_ptr_equal(op, r->op);
  assert_false(r->in_call);
  assert_non_null(message);
  if (status != 0)
    assert_null(info);
  r->done++;
  r->status = status;
  snprintf(r->message, sizeof(r->message), "%s", message);
  if (r->cancel_in_done)
    vhdup_blob_cancel(r->op); /* finished: a no-op */
  if (r->close_engine_in_done)
    vhdup_engine_close(r->e, engine_closed_count);
}

static int on_range(vhdup_blob_op *op, uint64_t start, uint64_t end, void *data) {
  (void)op;
  (void)start;
  (void)end;
  (void)data;
  fail();
  return 0;
}

static void on_ranges_done(vhdup_blob_op *op, int status, const char *message, void *data) {
  on_info(op, status, NULL, message, data);
}

static void on_notice(vhdup_blob_op *op, const char *message, void *data) {
  run *r = data;
  assert_ptr_equal(op, r->op);
  assert_false(r->in_call);
  assert_non_null(strstr(message, "of 3)"));
  r->notices++;
}

static void setup_run(run *r) {
  memset(r, 0, sizeof(*r));
  the_run = r;
  assert_int_equal(uv_loop_init(&r->loop), 0);
  vhdup_engine_options eo;
  vhdup_engine_options_init(&eo);
  eo.connect_timeout_s = 5;
  assert_int_equal(vhdup_engine_new(&r->loop, &eo, &r->e), 0);
}

static void finish_run(run *r) {
  if (!r->engine_closed)
    vhdup_engine_close(r->e, engine_closed_count);
  assert_int_equal(uv_run(&r->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(r->engine_closed, 1);
  assert_int_equal(uv_loop_close(&r->loop), 0);
}

static void target(vhdup_blob_target *t, const char *url) {
  vhdup_blob_target_init(t);
  t->url = url;
  t->use_environment = 0;
  t->max_attempts = 1;
}

/* No credential: reported later, through the callback, with the URL. */
static void test_error_through_callback(void **state) {
  (void)state;
  run r;
  setup_run(&r);
  vhdup_blob_target t;
  target(&t, REFUSED_URL);
  r.in_call = 1;
  assert_int_equal(vhdup_blob_get_info(r.e, &t, on_info, &r, &r.op), 0);
  r.in_call = 0;
  assert_int_equal(r.done, 0);
  assert_int_equal(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, VHDUP_ECREDENTIAL);
  assert_non_null(strstr(r.message, "no credential for " REFUSED_URL));
  finish_run(&r);
}

/* A refused connection, with a SAS in the URL: the message names the URL
 * with the signature redacted. */
static void test_transport_failure_redacted(void **state) {
  (void)state;
  run r;
  setup_run(&r);
  vhdup_blob_target t;
  target(&t, REFUSED_URL "?sv=2021-08-06&sr=b&sp=r&sig=" SECRET_SIG);
  r.in_call = 1;
  assert_int_equal(vhdup_blob_get_info(r.e, &t, on_info, &r, NULL), 0);
  r.in_call = 0;
  assert_int_equal(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, VHDUP_ENET);
  assert_non_null(strstr(r.message, "sig=REDACTED"));
  assert_null(strstr(r.message, SECRET_SIG));
  finish_run(&r);
}

/* A refused connection is worth retrying: tried max_attempts times, each
 * retry told to the notice callback set after the start. */
static void test_retries(void **state) {
  (void)state;
  run r;
  setup_run(&r);
  vhdup_blob_target t;
  target(&t, REFUSED_URL);
  t.account_key = KEY;
  t.max_attempts = 3;
  assert_int_equal(vhdup_blob_get_info(r.e, &t, on_info, &r, &r.op), 0);
  vhdup_blob_set_notice_cb(r.op, on_notice);
  assert_int_equal(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, VHDUP_ENET);
  assert_non_null(strstr(r.message, "(after 3 attempts)"));
  assert_int_equal(r.notices, 2);
  finish_run(&r);
}

/* Closing the engine with an operation running: its done callback fires
 * with VHDUP_ECANCELED, before the engine's close_cb. */
static void test_engine_close_waits(void **state) {
  (void)state;
  run r;
  setup_run(&r);
  vhdup_blob_target t;
  target(&t, REFUSED_URL);
  t.account_key = KEY;
  vhdup_blob_ranges_options ro;
  vhdup_blob_ranges_options_init(&ro);
  r.in_call = 1;
  assert_int_equal(vhdup_blob_get_ranges(r.e, &t, &ro, on_range, on_ranges_done, &r, &r.op), 0);
  vhdup_engine_close(r.e, engine_closed_count);
  r.in_call = 0;
  assert_int_equal(r.done, 0);
  assert_int_equal(r.engine_closed, 0);
  /* A closing engine takes no new operation. */
  assert_int_equal(vhdup_blob_get_info(r.e, &t, on_info, &r, NULL), VHDUP_ECANCELED);
  assert_int_equal(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, VHDUP_ECANCELED);
  assert_int_equal(r.engine_closed, 1);
  assert_int_equal(r.done_before_close, 1);
  assert_int_equal(uv_loop_close(&r.loop), 0);
}

/* Cancel right after the start, and from inside the done callback (a
 * no-op), and the engine closed from inside the done callback. */
static void test_cancel(void **state) {
  (void)state;
  run r;
  setup_run(&r);
  vhdup_blob_target t;
  target(&t, REFUSED_URL);
  t.account_key = KEY;
  t.max_attempts = 8;
  assert_int_equal(vhdup_blob_get_info(r.e, &t, on_info, &r, &r.op), 0);
  vhdup_blob_cancel(r.op);
  vhdup_blob_cancel(r.op);
  assert_int_equal(r.done, 0);
  r.cancel_in_done = 1;
  r.close_engine_in_done = 1;
  assert_int_equal(uv_run(&r.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.status, VHDUP_ECANCELED);
  assert_int_equal(r.engine_closed, 1);
  assert_int_equal(uv_loop_close(&r.loop), 0);
}

static void test_invalid(void **state) {
  (void)state;
  run r;
  setup_run(&r);
  vhdup_blob_target t;
  target(&t, REFUSED_URL);
  vhdup_blob_ranges_options ro;
  vhdup_blob_ranges_options_init(&ro);
  ro.offset = 100;
  assert_int_equal(vhdup_blob_get_ranges(r.e, &t, &ro, on_range, on_ranges_done, &r, NULL),
                   VHDUP_EINVAL);
  ro.offset = 0;
  ro.segment_size = 1000;
  assert_int_equal(vhdup_blob_get_ranges(r.e, &t, &ro, on_range, on_ranges_done, &r, NULL),
                   VHDUP_EINVAL);
  assert_int_equal(vhdup_blob_get_info(r.e, &t, NULL, &r, NULL), VHDUP_EINVAL);
  t.url = NULL;
  assert_int_equal(vhdup_blob_get_info(r.e, &t, on_info, &r, NULL), VHDUP_EINVAL);
  assert_int_equal(r.done, 0);
  finish_run(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_through_callback),
      cmocka_unit_test(test_transport_failure_redacted),
      cmocka_unit_test(test_retries),
      cmocka_unit_test(test_engine_close_waits),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
