/* The fault plan: ordered "KIND@OP:COUNT" steps, one list per operation
 * (KIND:COUNT without @OP is Put Page update, as before operations had
 * their own lists), an optional "403after:N" expiry (like a SAS that runs
 * out mid-upload), and an optional seeded random mix used on Put Page
 * updates once their steps are spent, so a flaky network can be replayed
 * exactly from its seed. */
#include "server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  ts_fault_kind kind;
} kinds[] = {
    {"503", TS_FAULT_503},     {"503n", TS_FAULT_503N},       {"503r", TS_FAULT_503R},
    {"500", TS_FAULT_500},     {"500i", TS_FAULT_500I},       {"reset", TS_FAULT_RESET},
    {"stall", TS_FAULT_STALL}, {"trickle", TS_FAULT_TRICKLE}, {"400", TS_FAULT_400},
    {"404", TS_FAULT_404},     {"409", TS_FAULT_409},         {"412", TS_FAULT_412},
};

/* Indexed by ts_fault_op; "other" is a request's operation, never a step's. */
static const char *const op_names[TS_OP_COUNT] = {
    "put",   "create", "head",   "container", "ranges", "clear",
    "props", "get",    "delete", "lease",     "other",  "any",
};

static ts_fault_kind kind_by_name(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (strlen(kinds[i].name) == n && strncmp(kinds[i].name, s, n) == 0)
      return kinds[i].kind;
  return TS_FAULT_NONE;
}

const char *ts_fault_kind_name(ts_fault_kind kind) {
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (kinds[i].kind == kind)
      return kinds[i].name;
  return "none";
}

const char *ts_fault_op_name(ts_fault_op op) {
  return op < TS_OP_COUNT ? op_names[op] : "?";
}

/* A step's operation: any name but "other". */
static bool op_by_name(const char *s, ts_fault_op *out) {
  for (int i = 0; i < TS_OP_COUNT; i++) {
    if (i != TS_OP_OTHER && strcmp(op_names[i], s) == 0) {
      *out = (ts_fault_op)i;
      return true;
    }
  }
  return false;
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  if (*s < '0' || *s > '9')
    return false;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0')
    return false;
  *out = v;
  return true;
}

static int parse_mix(ts_faults *nf, const char *val, char *err, size_t err_size) {
  nf->nmix = 0;
  const char *p = val;
  while (*p != '\0') {
    size_t len = strcspn(p, "+");
    ts_fault_kind k = kind_by_name(p, len);
    if (k == TS_FAULT_NONE || nf->nmix == TS_FAULT_KIND_COUNT) {
      snprintf(err, err_size, "bad mix element '%.*s'", (int)len, p);
      return -1;
    }
    nf->mix[nf->nmix++] = k;
    p += len;
    if (*p == '+')
      p++;
  }
  return 0;
}

/* seed, rate, mix, 403after: plan-wide settings, no @OP. Returns 1 if name
 * is none of them, else 0 or -1. */
static int parse_setting(ts_faults *nf, const char *name, const char *val, char *err,
                         size_t err_size) {
  uint64_t n;
  if (strcmp(name, "seed") == 0) {
    if (!parse_u64(val, &n)) {
      snprintf(err, err_size, "bad seed '%s'", val);
      return -1;
    }
    nf->rng = n ? n : 0x9E3779B97F4A7C15u;
  } else if (strcmp(name, "rate") == 0) {
    char *end;
    double p = strtod(val, &end);
    if (*val == '\0' || *end != '\0' || !(p >= 0.0 && p <= 1.0)) {
      snprintf(err, err_size, "bad rate '%s' (want 0..1)", val);
      return -1;
    }
    nf->rate = p;
  } else if (strcmp(name, "mix") == 0) {
    return parse_mix(nf, val, err, err_size);
  } else if (strcmp(name, "403after") == 0) {
    if (!parse_u64(val, &n) || n > INT64_MAX) {
      snprintf(err, err_size, "bad 403after count '%s'", val);
      return -1;
    }
    nf->expire_after = (int64_t)n;
  } else {
    return 1;
  }
  return 0;
}

/* KIND or KIND@OP, then the count. */
static int parse_step(ts_faults *nf, char *name, const char *val, char *err, size_t err_size) {
  ts_fault_op op = TS_OP_PUT;
  char *at = strchr(name, '@');
  if (at != NULL) {
    *at = '\0';
    if (!op_by_name(at + 1, &op)) {
      snprintf(err, err_size,
               "unknown operation '%s' in '%s@%s' (want put, create, head, container, ranges, "
               "clear, props, get, delete, lease or any)",
               at + 1, name, at + 1);
      return -1;
    }
  }
  ts_fault_kind k = kind_by_name(name, strlen(name));
  if (k == TS_FAULT_NONE) {
    snprintf(err, err_size, "unknown fault '%s'", name);
    return -1;
  }
  uint64_t n;
  if (!parse_u64(val, &n)) {
    snprintf(err, err_size, "bad count '%s' for %s@%s", val, name, op_names[op]);
    return -1;
  }
  if (nf->nsteps == TS_FAULT_MAX_STEPS) {
    snprintf(err, err_size, "more than %d fault steps", TS_FAULT_MAX_STEPS);
    return -1;
  }
  nf->steps[nf->nsteps].kind = k;
  nf->steps[nf->nsteps].op = op;
  nf->steps[nf->nsteps].remaining = n;
  nf->nsteps++;
  return 0;
}

static int parse_token(ts_faults *nf, char *tok, char *err, size_t err_size) {
  if (strcmp(tok, "none") == 0)
    return 0;
  char *colon = strchr(tok, ':');
  if (colon == NULL) {
    snprintf(err, err_size, "fault '%s' lacks ':COUNT'", tok);
    return -1;
  }
  *colon = '\0';
  const char *val = colon + 1;
  if (strchr(tok, '@') == NULL) {
    int rc = parse_setting(nf, tok, val, err, err_size);
    if (rc <= 0)
      return rc;
  }
  return parse_step(nf, tok, val, err, err_size);
}

int ts_faults_parse(ts_faults *f, const char *spec, char *err, size_t err_size) {
  ts_faults nf;
  memset(&nf, 0, sizeof(nf));
  nf.expire_after = -1;
  nf.rng = 1;
  char *copy = strdup(spec);
  if (copy == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  int rc = 0;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ", \t\r\n", &save); tok != NULL && rc == 0;
       tok = strtok_r(NULL, ", \t\r\n", &save))
    rc = parse_token(&nf, tok, err, err_size);
  free(copy);
  if (rc == 0 && nf.rate > 0 && nf.nmix == 0) {
    snprintf(err, err_size, "rate given without mix");
    rc = -1;
  }
  if (rc == 0)
    *f = nf;
  return rc;
}

void ts_faults_describe(const ts_faults *f, sbuf *out) {
  for (size_t i = 0; i < f->nsteps; i++)
    sbuf_printf(out, "%s@%s:%" PRIu64 "\n", ts_fault_kind_name(f->steps[i].kind),
                op_names[f->steps[i].op], f->steps[i].remaining);
  if (f->expire_after >= 0)
    sbuf_printf(out, "403after:%" PRId64 "\n", f->expire_after);
  if (f->nmix > 0) {
    sbuf_printf(out, "seed:%" PRIu64 "\nrate:%g\nmix:", f->rng, f->rate);
    for (size_t i = 0; i < f->nmix; i++)
      sbuf_printf(out, "%s%s", i ? "+" : "", ts_fault_kind_name(f->mix[i]));
    sbuf_puts(out, "\n");
  }
}

/* xorshift64*: tiny, seedable, and the same on every platform. */
static uint64_t next_random(ts_faults *f) {
  uint64_t x = f->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  f->rng = x;
  return x * UINT64_C(2685821657736338717);
}

static ts_fault_kind take_step(ts_faults *f, ts_fault_op op) {
  for (size_t i = 0; i < f->nsteps; i++) {
    if (f->steps[i].op == op && f->steps[i].remaining > 0) {
      f->steps[i].remaining--;
      return f->steps[i].kind;
    }
  }
  return TS_FAULT_NONE;
}

ts_fault_kind ts_faults_next(ts_faults *f, ts_fault_op op) {
  ts_fault_kind k = take_step(f, op);
  if (k == TS_FAULT_NONE)
    k = take_step(f, TS_OP_ANY);
  if (k != TS_FAULT_NONE || op != TS_OP_PUT)
    return k;
  if (f->rate > 0 && f->nmix > 0) {
    double u = (double)(next_random(f) >> 11) / (double)(UINT64_C(1) << 53);
    uint64_t pick = next_random(f);
    if (u < f->rate)
      return f->mix[pick % f->nmix];
  }
  return TS_FAULT_NONE;
}

void ts_faults_note_good_put_page(ts_faults *f) {
  f->good_put_pages++;
}

bool ts_faults_expired(const ts_faults *f) {
  return f->expire_after >= 0 && f->good_put_pages >= (uint64_t)f->expire_after;
}
