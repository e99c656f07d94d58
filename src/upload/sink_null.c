#include "upload/sink_null.h"

#include "util/alloc.h"

/* Callbacks run from an idle handle on the next loop turn: a sink never
 * calls back from inside the call that started the work. */
typedef struct null_sink {
  vhdup__sink base;
  uv_idle_t idle;
  vhdup__sink_write **writes; /* completed on the next turn */
  size_t n, cap;
  vhdup__sink_cb cb; /* prepare or finish, pending */
  void *cb_data;
  void (*close_cb)(vhdup__sink *s);
} null_sink;

static void on_idle(uv_idle_t *h) {
  null_sink *s = h->data;
  size_t n = s->n;
  vhdup__sink_write **ws = s->writes;
  vhdup__sink_cb cb = s->cb;
  /* Callbacks may start new writes: take the batch first. */
  s->writes = NULL;
  s->n = s->cap = 0;
  s->cb = NULL;
  uv_idle_stop(&s->idle);
  vhdup__sink_result ok = {0};
  for (size_t i = 0; i < n; i++)
    ws[i]->cb(ws[i], &ok);
  vhdup__free(ws);
  if (cb != NULL)
    cb(&s->base, &ok, s->cb_data);
}

static void later(null_sink *s) {
  uv_idle_start(&s->idle, on_idle);
}

static void ns_prepare(vhdup__sink *base, uint64_t size, vhdup__sink_cb cb, void *data) {
  null_sink *s = (null_sink *)base;
  s->base.info.size = size;
  s->cb = cb;
  s->cb_data = data;
  later(s);
}

static int ns_write(vhdup__sink *base, vhdup__sink_write *w) {
  null_sink *s = (null_sink *)base;
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 32;
    vhdup__sink_write **nw = vhdup__realloc(s->writes, nc * sizeof(*nw));
    if (nw == NULL)
      return VHDUP_ENOMEM;
    s->writes = nw;
    s->cap = nc;
  }
  s->writes[s->n++] = w;
  later(s);
  return 0;
}

static void ns_finish(vhdup__sink *base, const uint8_t *disk_md5, vhdup__sink_cb cb, void *data) {
  null_sink *s = (null_sink *)base;
  (void)disk_md5;
  s->cb = cb;
  s->cb_data = data;
  later(s);
}

static void ns_abort(vhdup__sink *base) {
  (void)base; /* writes complete on the next turn anyway */
}

static void idle_closed(uv_handle_t *h) {
  null_sink *s = h->data;
  if (s->close_cb != NULL)
    s->close_cb(&s->base);
  vhdup__free(s->writes);
  vhdup__free(s);
}

static void ns_close(vhdup__sink *base, void (*close_cb)(vhdup__sink *s)) {
  null_sink *s = (null_sink *)base;
  s->close_cb = close_cb;
  uv_close((uv_handle_t *)&s->idle, idle_closed);
}

static const vhdup__sink_ops null_sink_ops = {
    .prepare = ns_prepare,
    .write = ns_write,
    .finish = ns_finish,
    .abort = ns_abort,
    .close = ns_close,
};

int vhdup__null_sink_new(uv_loop_t *loop, vhdup__sink **out) {
  *out = NULL;
  null_sink *s = vhdup__calloc(1, sizeof(*s));
  if (s == NULL)
    return VHDUP_ENOMEM;
  int rc = uv_idle_init(loop, &s->idle);
  if (rc != 0) {
    vhdup__free(s);
    return rc;
  }
  s->idle.data = s;
  s->base.ops = &null_sink_ops;
  *out = &s->base;
  return 0;
}
