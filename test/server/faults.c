/* The fault plan: an ordered list of "kind:count" steps consumed by Put Page
 * requests, an optional "403after:N" expiry (like a SAS that runs out
 * mid-upload), and an optional seeded random mix used once the steps are
 * spent, so a flaky network can be replayed exactly from its seed. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  ts_fault_kind kind;
} kinds[] = {
    {"503", TS_FAULT_503},         {"503n", TS_FAULT_503N},   {"500", TS_FAULT_500},
    {"500i", TS_FAULT_500I},       {"reset", TS_FAULT_RESET}, {"stall", TS_FAULT_STALL},
    {"trickle", TS_FAULT_TRICKLE}, {"400", TS_FAULT_400},     {"404", TS_FAULT_404},
    {"409", TS_FAULT_409},         {"412", TS_FAULT_412},
};

static ts_fault_kind kind_by_name(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (strlen(kinds[i].name) == n && strncmp(kinds[i].name, s, n) == 0)
      return kinds[i].kind;
  return TS_FAULT_NONE;
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
  for (char *tok = strtok_r(copy, ", \t\r\n", &save); tok != NULL;
       tok = strtok_r(NULL, ", \t\r\n", &save)) {
    if (strcmp(tok, "none") == 0)
      continue;
    char *colon = strchr(tok, ':');
    if (colon == NULL) {
      snprintf(err, err_size, "fault '%s' lacks ':VALUE'", tok);
      rc = -1;
      break;
    }
    *colon = '\0';
    const char *val = colon + 1;
    uint64_t n;
    if (strcmp(tok, "seed") == 0) {
      if (!parse_u64(val, &n)) {
        snprintf(err, err_size, "bad seed '%s'", val);
        rc = -1;
        break;
      }
      nf.rng = n ? n : 0x9E3779B97F4A7C15u;
    } else if (strcmp(tok, "rate") == 0) {
      char *end;
      double p = strtod(val, &end);
      if (*end != '\0' || !(p >= 0.0 && p <= 1.0)) {
        snprintf(err, err_size, "bad rate '%s' (want 0..1)", val);
        rc = -1;
        break;
      }
      nf.rate = p;
    } else if (strcmp(tok, "mix") == 0) {
      nf.nmix = 0;
      const char *p = val;
      while (*p != '\0') {
        size_t len = strcspn(p, "+");
        ts_fault_kind k = kind_by_name(p, len);
        if (k == TS_FAULT_NONE || nf.nmix == TS_FAULT_KIND_COUNT) {
          snprintf(err, err_size, "bad mix element '%.*s'", (int)len, p);
          rc = -1;
          break;
        }
        nf.mix[nf.nmix++] = k;
        p += len;
        if (*p == '+')
          p++;
      }
      if (rc != 0)
        break;
    } else if (strcmp(tok, "403after") == 0) {
      if (!parse_u64(val, &n) || n > INT64_MAX) {
        snprintf(err, err_size, "bad 403after count '%s'", val);
        rc = -1;
        break;
      }
      nf.expire_after = (int64_t)n;
    } else {
      ts_fault_kind k = kind_by_name(tok, strlen(tok));
      if (k == TS_FAULT_NONE) {
        snprintf(err, err_size, "unknown fault '%s'", tok);
        rc = -1;
        break;
      }
      if (!parse_u64(val, &n)) {
        snprintf(err, err_size, "bad count '%s' for %s", val, tok);
        rc = -1;
        break;
      }
      if (nf.nsteps == TS_FAULT_MAX_STEPS) {
        snprintf(err, err_size, "more than %d fault steps", TS_FAULT_MAX_STEPS);
        rc = -1;
        break;
      }
      nf.steps[nf.nsteps].kind = k;
      nf.steps[nf.nsteps].remaining = n;
      nf.nsteps++;
    }
  }
  free(copy);
  if (rc == 0 && nf.rate > 0 && nf.nmix == 0) {
    snprintf(err, err_size, "rate given without mix");
    rc = -1;
  }
  if (rc == 0)
    *f = nf;
  return rc;
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

ts_fault_kind ts_faults_next(ts_faults *f) {
  for (size_t i = 0; i < f->nsteps; i++) {
    if (f->steps[i].remaining > 0) {
      f->steps[i].remaining--;
      return f->steps[i].kind;
    }
  }
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
