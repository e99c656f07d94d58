/* The service model: Azure's published scalability targets as token
 * buckets, so clients can be measured against the limits of the real
 * service, not only against a server with none.
 *
 * Targets (Microsoft, "Scalability and performance targets for Blob
 * storage", learn.microsoft.com/azure/storage/blobs/scalability-targets,
 * and "Scalability and performance targets for standard storage
 * accounts", .../storage/common/scalability-targets-standard-account):
 * one page blob takes up to 500 requests per second and 60 MiB/s; an
 * account's ingress is 25-60 Gbit/s by region and redundancy. A managed
 * disk's upload runs at its tier's throughput (60-500 MiB/s): give those
 * figures as the per-blob byte rate. Above a target the service answers
 * 503 ServerBusy or 500 OperationTimedOut (same pages). Messages are those
 * of "Common REST API error codes" (.../rest/api/storageservices/
 * common-rest-api-error-codes, x-ms-version 2021-08-06): the per-partition
 * answer "The server is currently unable to receive requests. Please retry
 * your request.", and "Ingress is over the account limit." for the
 * account's ingress.
 *
 * How the service shapes traffic inside a second is not published; the
 * model's choices: a bucket holds burst seconds of its rate (default
 * 0.1 s), and at least one request's worth, so a 4 MiB Put Page always
 * fits an empty bucket; a request is admitted when every bucket it draws
 * from holds its cost (or is full, for a cost above the capacity). Every
 * request to a blob costs one request token of that blob; a request's
 * body bytes cost bytes of its blob and of the account. Refused requests
 * cost nothing. In queue mode nothing is refused: the request takes its
 * tokens (buckets go negative) and is answered when they would have been
 * there, unless that is more than timeout ms away: then it is held for
 * the timeout and answered 500 OperationTimedOut, as a request held too
 * long by a busy partition is (its tokens are given back). */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

static void bucket_init(ts_bucket *b, double rate, double burst_s, double at_least, uint64_t now) {
  b->rate = rate;
  b->cap = rate * burst_s;
  if (b->cap < at_least)
    b->cap = at_least;
  b->tokens = b->cap;
  b->t_ns = now;
}

static void bucket_refill(ts_bucket *b, uint64_t now) {
  if (b->rate <= 0)
    return;
  if (now > b->t_ns) {
    b->tokens += b->rate * (double)(now - b->t_ns) / 1e9;
    if (b->tokens > b->cap)
      b->tokens = b->cap;
  }
  b->t_ns = now;
}

/* Whether b can pay cost now (refilled first). An unlimited bucket always can. */
static bool bucket_can(ts_bucket *b, double cost, uint64_t now) {
  if (b->rate <= 0)
    return true;
  bucket_refill(b, now);
  double need = cost < b->cap ? cost : b->cap;
  return b->tokens >= need;
}

/* Seconds from now until b has paid for cost taken now (0: at once). */
static double bucket_take(ts_bucket *b, double cost, uint64_t now) {
  if (b->rate <= 0)
    return 0;
  bucket_refill(b, now);
  b->tokens -= cost;
  return b->tokens >= 0 ? 0 : -b->tokens / b->rate;
}

static void bucket_give(ts_bucket *b, double cost) {
  if (b->rate > 0)
    b->tokens += cost;
}

/* "60M", "500K", "2G", "1000": bytes (binary multiples). */
static bool parse_size(const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0)
    return false;
  if (*end == 'K' || *end == 'k')
    v *= 1024, end++;
  else if (*end == 'M' || *end == 'm')
    v *= MIB, end++;
  else if (*end == 'G' || *end == 'g')
    v *= 1024 * MIB, end++;
  *out = v;
  return *end == '\0';
}

static bool parse_item(ts_model_cfg *m, const char *key, const char *val) {
  if (strcmp(key, "req") == 0)
    return parse_size(val, &m->req_rate);
  if (strcmp(key, "bw") == 0)
    return parse_size(val, &m->byte_rate);
  if (strcmp(key, "account") == 0)
    return parse_size(val, &m->account_rate);
  if (strcmp(key, "burst-ms") == 0) {
    double ms;
    if (!parse_size(val, &ms) || ms <= 0)
      return false;
    m->burst_s = ms / 1000.0;
    return true;
  }
  if (strcmp(key, "timeout-ms") == 0) {
    double ms;
    if (!parse_size(val, &ms))
      return false;
    m->timeout_s = ms / 1000.0;
    return true;
  }
  if (strcmp(key, "mode") == 0) {
    m->queue = strcmp(val, "queue") == 0;
    return m->queue || strcmp(val, "refuse") == 0;
  }
  return false;
}

void ts_model_cfg_default(ts_model_cfg *m) {
  memset(m, 0, sizeof(*m));
  m->req_rate = 500;
  m->byte_rate = 60 * MIB;
  m->burst_s = 0.1;
  m->timeout_s = 30;
}

int ts_model_parse(ts_model_cfg *out, const char *spec, char *err, size_t err_size) {
  ts_model_cfg m;
  ts_model_cfg_default(&m);
  m.on = true;
  char *copy = strdup(spec);
  if (copy == NULL)
    abort();
  char *save = NULL;
  int rc = 0;
  for (char *it = strtok_r(copy, ",", &save); it != NULL; it = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(it, '=');
    if (eq == NULL || (*eq = '\0', !parse_item(&m, it, eq + 1))) {
      snprintf(err, err_size,
               "bad model item '%s' (want req=N, bw=SIZE, account=SIZE, "
               "burst-ms=MS, timeout-ms=MS, mode=refuse|queue)",
               it);
      rc = -1;
      break;
    }
  }
  free(copy);
  if (rc == 0)
    *out = m;
  return rc;
}

static ts_model_blob *blob_state(ts_model *md, const char *key, uint64_t now) {
  for (ts_model_blob *b = md->blobs; b != NULL; b = b->next)
    if (strcmp(b->key, key) == 0)
      return b;
  ts_model_blob *b = ts_xmalloc(sizeof(*b));
  b->key = strdup(key);
  if (b->key == NULL)
    abort();
  bucket_init(&b->req, md->cfg.req_rate, md->cfg.burst_s, 1, now);
  bucket_init(&b->bytes, md->cfg.byte_rate, md->cfg.burst_s, 4 * MIB, now);
  b->next = md->blobs;
  md->blobs = b;
  return b;
}

void ts_model_init(ts_model *md, const ts_model_cfg *cfg, uint64_t now) {
  memset(md, 0, sizeof(*md));
  md->cfg = *cfg;
  bucket_init(&md->account, cfg->account_rate, cfg->burst_s, 4 * MIB, now);
}

void ts_model_free(ts_model *md) {
  while (md->blobs != NULL) {
    ts_model_blob *b = md->blobs;
    md->blobs = b->next;
    free(b->key);
    free(b);
  }
}

static ts_model_verdict refuse_or_pass(ts_model *md, ts_model_blob *b, double bytes, uint64_t now) {
  if (!bucket_can(&md->account, bytes, now)) {
    md->stats.busy_account++;
    return TS_MODEL_BUSY_ACCOUNT;
  }
  if (!bucket_can(&b->req, 1, now) || !bucket_can(&b->bytes, bytes, now)) {
    md->stats.busy_blob++;
    return TS_MODEL_BUSY_BLOB;
  }
  bucket_take(&b->req, 1, now);
  bucket_take(&b->bytes, bytes, now);
  bucket_take(&md->account, bytes, now);
  return TS_MODEL_PASS;
}

static ts_model_verdict queue(ts_model *md, ts_model_blob *b, double bytes, uint64_t now,
                              uint64_t *delay_ms) {
  double w = bucket_take(&b->req, 1, now);
  double wb = bucket_take(&b->bytes, bytes, now);
  double wa = bucket_take(&md->account, bytes, now);
  if (wb > w)
    w = wb;
  if (wa > w)
    w = wa;
  if (w > md->cfg.timeout_s) {
    bucket_give(&b->req, 1);
    bucket_give(&b->bytes, bytes);
    bucket_give(&md->account, bytes);
    md->stats.timed_out++;
    *delay_ms = (uint64_t)(md->cfg.timeout_s * 1000);
    return TS_MODEL_TIMEOUT;
  }
  *delay_ms = (uint64_t)(w * 1000 + 0.5);
  if (*delay_ms > 0) {
    md->stats.queued++;
    md->stats.wait_ms_total += *delay_ms;
    if (*delay_ms > md->stats.max_wait_ms)
      md->stats.max_wait_ms = *delay_ms;
  }
  return TS_MODEL_PASS;
}

static void note_admitted(ts_model_stats *st, uint64_t bytes, uint64_t at) {
  if (st->admitted == 0 || at < st->first_ns)
    st->first_ns = at;
  if (at > st->last_ns)
    st->last_ns = at;
  st->admitted++;
  st->admitted_bytes += bytes;
}

ts_model_verdict ts_model_admit(ts_model *md, const char *blob_key, uint64_t body_bytes,
                                uint64_t now, uint64_t *delay_ms) {
  *delay_ms = 0;
  if (!md->cfg.on || blob_key == NULL)
    return TS_MODEL_PASS;
  ts_model_blob *b = blob_state(md, blob_key, now);
  ts_model_verdict v = md->cfg.queue ? queue(md, b, (double)body_bytes, now, delay_ms)
                                     : refuse_or_pass(md, b, (double)body_bytes, now);
  if (v == TS_MODEL_PASS)
    note_admitted(&md->stats, body_bytes, now + *delay_ms * 1000000);
  return v;
}
