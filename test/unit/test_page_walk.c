/* page_walk: cutting a span into Get Page Ranges segments and stitching the
 * (clipped) answers back into whole ranges, each handed out once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/defaults.h"
#include "upload/page_walk.h"
#include "vhdup_errno.h"

#define MIB (1024ull * 1024)

/* Collects what a walk hands out. */
typedef struct got {
  vhdup__page_span s[64];
  size_t n;
} got;

static void add(vhdup__page_walk *w, got *g, uint64_t start, uint64_t end) {
  vhdup__page_span s;
  int rc = vhdup__page_walk_add(w, start, end, &s);
  assert_true(rc == 0 || rc == 1);
  if (rc == 1)
    g->s[g->n++] = s;
}

static void flush(vhdup__page_walk *w, got *g) {
  vhdup__page_span s;
  if (vhdup__page_walk_flush(w, &s))
    g->s[g->n++] = s;
  assert_int_equal(vhdup__page_walk_flush(w, &s), 0);
}

/* A server that clips every range to the segment asked, as Azure and
 * Azurite do: answers the whole walk from a list of ranges. */
static void serve(vhdup__page_walk *w, const vhdup__page_span *blob, size_t n, got *g,
                  unsigned *requests) {
  uint64_t off, len;
  while (vhdup__page_walk_segment(w, &off, &len)) {
    (*requests)++;
    for (size_t i = 0; i < n; i++) {
      uint64_t s = blob[i].start > off ? blob[i].start : off;
      uint64_t e = blob[i].end < off + len - 1 ? blob[i].end : off + len - 1;
      if (s <= e)
        add(w, g, s, e);
    }
    vhdup__page_walk_next(w);
  }
  flush(w, g);
}

static void test_segments_cover_the_span(void **state) {
  (void)state;
  vhdup__page_walk w;
  uint64_t off, len, next = 1024, total = 0;
  unsigned n = 0;
  /* 1 GiB + 512 from 1024, in 150 MiB segments: 7 segments, the last short. */
  assert_int_equal(vhdup__page_walk_init(&w, 1024, 1024 * MIB + 512, VHDUP__DEFAULT_RANGES_SEGMENT),
                   0);
  while (vhdup__page_walk_segment(&w, &off, &len)) {
    assert_int_equal(off, next);
    assert_true(len > 0 && len <= VHDUP__DEFAULT_RANGES_SEGMENT && len % 512 == 0);
    next = off + len;
    total += len;
    n++;
    vhdup__page_walk_next(&w);
  }
  assert_int_equal(total, 1024 * MIB + 512);
  assert_int_equal(n, 7);
  /* A span shorter than one segment is one request. */
  assert_int_equal(vhdup__page_walk_init(&w, 0, 4096, VHDUP__DEFAULT_RANGES_SEGMENT), 0);
  assert_int_equal(vhdup__page_walk_segment(&w, &off, &len), 1);
  assert_int_equal(off, 0);
  assert_int_equal(len, 4096);
  vhdup__page_walk_next(&w);
  assert_int_equal(vhdup__page_walk_segment(&w, &off, &len), 0);
  /* Empty. */
  assert_int_equal(vhdup__page_walk_init(&w, 512, 0, 512), 0);
  assert_int_equal(vhdup__page_walk_segment(&w, &off, &len), 0);
}

static void test_init_refuses(void **state) {
  (void)state;
  vhdup__page_walk w;
  assert_int_equal(vhdup__page_walk_init(&w, 100, 512, 512), VHDUP_EINVAL);
  assert_int_equal(vhdup__page_walk_init(&w, 0, 513, 512), VHDUP_EINVAL);
  assert_int_equal(vhdup__page_walk_init(&w, 0, 512, 0), VHDUP_EINVAL);
  assert_int_equal(vhdup__page_walk_init(&w, 0, 512, 1000), VHDUP_EINVAL);
  assert_int_equal(vhdup__page_walk_init(&w, UINT64_MAX - 511, 1024, 512), VHDUP_EINVAL);
}

/* Ranges crossing segment boundaries (even several) come back whole, once;
 * whatever the segment size, the listing is the same. */
static void test_stitching(void **state) {
  (void)state;
  const vhdup__page_span blob[] = {
      {0, 511},
      {1024, 3 * 512 - 1},
      {4096 - 512, 4096 + 1023},        /* crosses 4096 */
      {8192, 8192 + 5 * 4096 - 1},      /* spans several 4 KiB segments */
      {64 * 1024 - 512, 64 * 1024 - 1}, /* the last page */
  };
  const size_t n = sizeof(blob) / sizeof(blob[0]);
  const uint64_t segments[] = {
      512, 1024, 1536, 4096, 5120, 64 * 1024, VHDUP__DEFAULT_RANGES_SEGMENT};
  for (size_t k = 0; k < sizeof(segments) / sizeof(segments[0]); k++) {
    vhdup__page_walk w;
    got g = {.n = 0};
    unsigned requests = 0;
    assert_int_equal(vhdup__page_walk_init(&w, 0, 64 * 1024, segments[k]), 0);
    serve(&w, blob, n, &g, &requests);
    assert_int_equal(requests, (64 * 1024 + segments[k] - 1) / segments[k]);
    assert_int_equal(g.n, n);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(g.s[i].start, blob[i].start);
      assert_int_equal(g.s[i].end, blob[i].end);
    }
  }
}

/* A span inside the blob clips the ranges at its edges. */
static void test_clipped_to_span(void **state) {
  (void)state;
  const vhdup__page_span blob[] = {{0, 4095}, {8192, 16383}};
  vhdup__page_walk w;
  got g = {.n = 0};
  unsigned requests = 0;
  assert_int_equal(vhdup__page_walk_init(&w, 2048, 8192, 1024), 0);
  /* The server here does not clip to the request: the walk must. */
  uint64_t off, len;
  while (vhdup__page_walk_segment(&w, &off, &len)) {
    requests++;
    for (size_t i = 0; i < 2; i++)
      if (blob[i].end >= off && blob[i].start < off + len)
        add(&w, &g, blob[i].start, blob[i].end);
    vhdup__page_walk_next(&w);
  }
  flush(&w, &g);
  assert_int_equal(requests, 8);
  assert_int_equal(g.n, 2);
  assert_int_equal(g.s[0].start, 2048);
  assert_int_equal(g.s[0].end, 4095);
  assert_int_equal(g.s[1].start, 8192);
  assert_int_equal(g.s[1].end, 10239);
}

/* Adjacent ranges in one answer are one range; pages of an answer
 * (marker) continue the same segment. */
static void test_adjacent_and_paged(void **state) {
  (void)state;
  vhdup__page_walk w;
  got g = {.n = 0};
  assert_int_equal(vhdup__page_walk_init(&w, 0, 1 * MIB, VHDUP__DEFAULT_RANGES_SEGMENT), 0);
  add(&w, &g, 0, 511);
  add(&w, &g, 512, 1023);  /* page 1 of the answer ends here */
  add(&w, &g, 1024, 2047); /* page 2 starts adjacent */
  add(&w, &g, 4096, 4607);
  vhdup__page_walk_next(&w);
  flush(&w, &g);
  assert_int_equal(g.n, 2);
  assert_int_equal(g.s[0].start, 0);
  assert_int_equal(g.s[0].end, 2047);
  assert_int_equal(g.s[1].start, 4096);
  assert_int_equal(g.s[1].end, 4607);
}

static void test_bad_ranges(void **state) {
  (void)state;
  vhdup__page_walk w;
  vhdup__page_span s;
  assert_int_equal(vhdup__page_walk_init(&w, 0, 1 * MIB, 4096), 0);
  assert_int_equal(vhdup__page_walk_add(&w, 100, 511, &s), VHDUP_EFORMAT);
  assert_int_equal(vhdup__page_walk_add(&w, 0, 510, &s), VHDUP_EFORMAT);
  assert_int_equal(vhdup__page_walk_add(&w, 1024, 511, &s), VHDUP_EFORMAT);
  assert_int_equal(vhdup__page_walk_add(&w, 2048, 2559, &s), 0);
  /* Backwards. */
  assert_int_equal(vhdup__page_walk_add(&w, 0, 511, &s), VHDUP_EFORMAT);
  /* Overlap merges. */
  assert_int_equal(vhdup__page_walk_add(&w, 2048, 3071, &s), 0);
  assert_int_equal(vhdup__page_walk_flush(&w, &s), 1);
  assert_int_equal(s.start, 2048);
  assert_int_equal(s.end, 3071);
  /* Outside the segment: ignored. */
  assert_int_equal(vhdup__page_walk_add(&w, 8192, 8703, &s), 0);
  assert_int_equal(vhdup__page_walk_flush(&w, &s), 0);
}

/* Too large an answer: the segment halves (rounded to pages) and stays
 * smaller; the walk still covers the span exactly. */
static void test_shrink(void **state) {
  (void)state;
  vhdup__page_walk w;
  uint64_t off, len;
  assert_int_equal(vhdup__page_walk_init(&w, 0, 10 * 512, 3 * 512), 0);
  assert_int_equal(vhdup__page_walk_shrink(&w), 0);
  assert_int_equal(vhdup__page_walk_segment(&w, &off, &len), 1);
  assert_int_equal(off, 0);
  assert_int_equal(len, 1024);
  assert_int_equal(vhdup__page_walk_shrink(&w), 0);
  assert_int_equal(vhdup__page_walk_segment(&w, &off, &len), 1);
  assert_int_equal(len, 512);
  assert_int_equal(vhdup__page_walk_shrink(&w), VHDUP_ELIMIT);
  uint64_t next = 0;
  unsigned n = 0;
  while (vhdup__page_walk_segment(&w, &off, &len)) {
    assert_int_equal(off, next);
    assert_int_equal(len, 512);
    next += len;
    n++;
    vhdup__page_walk_next(&w);
  }
  assert_int_equal(next, 10 * 512);
  assert_int_equal(n, 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_segments_cover_the_span),
      cmocka_unit_test(test_init_refuses),
      cmocka_unit_test(test_stitching),
      cmocka_unit_test(test_clipped_to_span),
      cmocka_unit_test(test_adjacent_and_paged),
      cmocka_unit_test(test_bad_ranges),
      cmocka_unit_test(test_shrink),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
