#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "upload/scan.h"

static uint8_t buf[64 * 512];

static void mark(size_t sector) {
  buf[sector * 512 + 511] = 1;
}

static void test_all_zero(void **state) {
  (void)state;
  vhdup__run r[4];
  memset(buf, 0, sizeof(buf));
  assert_int_equal(vhdup__scan_runs(buf, sizeof(buf), 0, 0, r, 4), 0);
}

static void test_runs_and_gaps(void **state) {
  (void)state;
  vhdup__run r[8];
  memset(buf, 0, sizeof(buf));
  mark(0);
  mark(1);
  mark(4); /* gap of 2 sectors after sector 1 */
  mark(63);
  assert_int_equal(vhdup__scan_runs(buf, sizeof(buf), 0, 0, r, 8), 3);
  assert_int_equal(r[0].offset, 0);
  assert_int_equal(r[0].length, 1024);
  assert_int_equal(r[1].offset, 4 * 512);
  assert_int_equal(r[1].length, 512);
  assert_int_equal(r[2].offset, 63 * 512);
  /* A 1 KiB merge gap joins sectors 0-4, not 63. */
  assert_int_equal(vhdup__scan_runs(buf, sizeof(buf), 1024, 0, r, 8), 2);
  assert_int_equal(r[0].length, 5 * 512);
  /* A gap one byte short does not. */
  assert_int_equal(vhdup__scan_runs(buf, sizeof(buf), 1023, 0, r, 8), 3);
}

static void test_max_run_and_overflow(void **state) {
  (void)state;
  vhdup__run r[2];
  memset(buf, 0xff, sizeof(buf));
  assert_int_equal(vhdup__scan_runs(buf, sizeof(buf), 0, 8 * 512, r, 2), 8);
  assert_int_equal(r[0].length, 8 * 512);
  assert_int_equal(r[1].offset, 8 * 512);
  /* The first byte alone makes a sector non-zero. */
  memset(buf, 0, sizeof(buf));
  buf[512] = 0x80;
  assert_false(vhdup__sector_is_zero(buf + 512));
  assert_true(vhdup__sector_is_zero(buf));
}

/* Any one bit of any byte makes a sector non-zero (the check reads a
 * sector as words in several chains: none may be skipped). */
static void test_every_byte_counts(void **state) {
  (void)state;
  memset(buf, 0, sizeof(buf));
  for (size_t i = 0; i < 512; i++) {
    for (int bit = 0; bit < 8; bit++) {
      buf[512 + i] = (uint8_t)(1u << bit);
      assert_false(vhdup__sector_is_zero(buf + 512));
      vhdup__run r[2];
      assert_int_equal(vhdup__scan_runs(buf, 3 * 512, 0, 0, r, 2), 1);
      assert_int_equal(r[0].offset, 512);
      assert_int_equal(r[0].length, 512);
    }
    buf[512 + i] = 0;
    assert_true(vhdup__sector_is_zero(buf + 512));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_zero),
      cmocka_unit_test(test_runs_and_gaps),
      cmocka_unit_test(test_max_run_and_overflow),
      cmocka_unit_test(test_every_byte_counts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
