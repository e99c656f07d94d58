/* The public engine API (vhdup.h "Engine"): the HTTP client and budget
 * that the jobs and blob operations on one loop share, and an orderly
 * close that waits for all of them. */
#include "upload/engine.h"

#include "util/alloc.h"
#include "util/defaults.h"

#include <string.h>

#define MIB (1024u * 1024)

/* libcurl copies each request body into an upload buffer and sends it from
 * there, one buffer per read callback and send(): for Put Page bodies of up
 * to 4 MiB a buffer larger than libcurl's 64 KiB default means fewer calls
 * and less CPU per byte. The buffers are allocated per transfer outside the
 * pipeline's pool, so they are bounded apart from it: a thirty-second of
 * --memory, taken off the pool (four of them at the default 64 MiB). */
#define UPLOAD_BUFFER (512L * 1024)

static size_t upload_buffers_for(size_t memory) {
  return memory / 32;
}

void vhdup_engine_options_init(vhdup_engine_options *o) {
  memset(o, 0, sizeof(*o));
  o->connections = VHDUP__DEFAULT_CONNECTIONS;
  o->memory = VHDUP__DEFAULT_MEMORY;
  o->connect_timeout_s = VHDUP__DEFAULT_CONNECT_TIMEOUT_S;
  o->stall_timeout_s = VHDUP__DEFAULT_STALL_TIMEOUT_S;
}

int vhdup_engine_new(uv_loop_t *loop, const vhdup_engine_options *o, vhdup_engine **out) {
  *out = NULL;
  if (loop == NULL || o == NULL || o->connections == 0 || o->connections > VHDUP__MAX_CONNECTIONS ||
      o->memory < VHDUP__MIN_MEMORY || o->per_blob_connections > o->connections)
    return VHDUP_EINVAL;
  vhdup_engine *e = vhdup__calloc(1, sizeof(*e));
  if (e == NULL)
    return VHDUP_ENOMEM;
  e->loop = loop;
  e->o = *o;
  e->o.ca_file = NULL;
  vhdup__list_init(&e->jobs);
  vhdup__list_init(&e->blob_ops);
  if ((o->ca_file != NULL && (e->o.ca_file = e->ca_file = vhdup__strdup(o->ca_file)) == NULL) ||
      vhdup__budget_new(o->memory - upload_buffers_for(o->memory), o->connections, &e->budget) !=
          0) {
    vhdup__free(e->ca_file);
    vhdup__free(e);
    return VHDUP_ENOMEM;
  }
  if (o->connections_auto)
    vhdup__budget_set_auto(e->budget, o->connections);
  *out = e;
  return 0;
}

int vhdup__engine_http(vhdup_engine *e, vhdup__http **out) {
  if (e->http == NULL) {
    vhdup__http_opts ho;
    memset(&ho, 0, sizeof(ho));
    ho.max_connections = e->o.connections;
    ho.connect_timeout_ms = (long)e->o.connect_timeout_s * 1000;
    /* A stalled peer: under 1 KiB/s for the stall timeout. */
    ho.low_speed_limit_bps = 1024;
    ho.low_speed_time_s = (long)e->o.stall_timeout_s;
    ho.ca_file = e->o.ca_file;
    ho.verbose = e->o.verbose;
    ho.max_response_body = 4u * MIB;
    ho.user_agent = "vhdup/" VHDUP_VERSION_STRING;
    ho.upload_buffer_size = UPLOAD_BUFFER;
    ho.upload_buffers_total = upload_buffers_for(e->o.memory);
    int rc = vhdup__http_new(e->loop, &ho, &e->http);
    if (rc != 0)
      return rc;
    vhdup__http_set_data(e->http, e);
  }
  *out = e->http;
  return 0;
}

static int engine_idle(const vhdup_engine *e) {
  return vhdup__list_empty(&e->jobs) && vhdup__list_empty(&e->blob_ops);
}

static void engine_maybe_closed(vhdup_engine *e) {
  if (!e->closing || !engine_idle(e) || e->pending_closes > 0)
    return;
  if (e->close_cb != NULL)
    e->close_cb(e);
  vhdup__budget_free(e->budget);
  vhdup__free(e->ca_file);
  vhdup__free(e);
}

static void http_closed(vhdup__http *h) {
  vhdup_engine *e = vhdup__http_get_data(h);
  e->pending_closes--;
  e->http = NULL;
  engine_maybe_closed(e);
}

void vhdup__engine_job_gone(vhdup_engine *e) {
  if (e->closing && engine_idle(e) && e->http != NULL && !e->http_closing) {
    e->http_closing = 1;
    e->pending_closes++;
    vhdup__http_close(e->http, http_closed);
  }
  engine_maybe_closed(e);
}

void vhdup_engine_close(vhdup_engine *e, vhdup_engine_close_cb close_cb) {
  if (e->closing)
    return;
  e->closing = 1;
  e->close_cb = close_cb;
  vhdup__jobs_cancel_all(e);
  vhdup__blob_ops_cancel_all(e);
  vhdup__engine_job_gone(e);
}
