#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/alloc.h"
#include "util/be.h"
#include "util/crypto.h"
#include "util/err.h"
#include "util/md5x.h"
#include "util/list.h"
#include "util/rng.h"
#include "util/secret.h"
#include "util/text.h"

#include <stdio.h>
#include <unistd.h>

static void test_be_roundtrip(void **state) {
  (void)state;
  uint8_t b[8];
  vhdup__put_be64(b, 0x0102030405060708ull);
  assert_int_equal(b[0], 1);
  assert_int_equal(b[7], 8);
  assert_true(vhdup__be64(b) == 0x0102030405060708ull);
  vhdup__put_be32(b, 0xfffffffe);
  assert_true(vhdup__be32(b) == 0xfffffffeu);
  vhdup__put_be16(b, 0xabcd);
  assert_int_equal(vhdup__be16(b), 0xabcd);
}

/* Expected values from `printf abc | md5sum`, `sha256sum` and
 * `openssl dgst -sha256 -hmac key`. */
static void test_digests(void **state) {
  (void)state;
  uint8_t out[32];
  char b64[64];
  assert_int_equal(vhdup__md5_digest("abc", 3, out), 0);
  assert_memory_equal(out, "\x90\x01\x50\x98\x3c\xd2\x4f\xb0\xd6\x96\x3f\x7d\x28\xe1\x7f\x72", 16);
  assert_int_equal(vhdup__sha256("abc", 3, out), 0);
  assert_memory_equal(out, "\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41\x40\xde\x5d\xae\x22\x23", 16);
  assert_int_equal(
      vhdup__hmac_sha256("key", 3, "The quick brown fox jumps over the lazy dog", 43, out), 0);
  assert_memory_equal(out, "\xf7\xbc\x83\xf4\x30\x53\x84\x24\xb1\x32\x98\xe6\xaa\x6f\xb1\x43", 16);
  assert_int_equal(vhdup__base64_encode("abc", 3, b64, sizeof(b64)), 4);
  assert_string_equal(b64, "YWJj");
}

static void test_md5_streaming(void **state) {
  (void)state;
  vhdup__md5_ctx m;
  uint8_t one[16], two[16];
  assert_int_equal(vhdup__md5_init(&m), 0);
  vhdup__md5_update(&m, "a", 1);
  vhdup__md5_update(&m, "bc", 2);
  vhdup__md5_final(&m, one);
  vhdup__md5_free(&m);
  assert_int_equal(vhdup__md5_digest("abc", 3, two), 0);
  assert_memory_equal(one, two, 16);
}

/* RFC 1321's test suite (A.5), all in one call: lanes of different
 * lengths, with one and two padding blocks. */
static void test_md5x_rfc1321(void **state) {
  (void)state;
  static const char *const msg[] = {
      "",
      "a",
      "abc",
      "message digest",
      "abcdefghijklmnopqrstuvwxyz",
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
      "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
  };
  static const char *const want[] = {
      "\xd4\x1d\x8c\xd9\x8f\x00\xb2\x04\xe9\x80\x09\x98\xec\xf8\x42\x7e",
      "\x0c\xc1\x75\xb9\xc0\xf1\xb6\xa8\x31\xc3\x99\xe2\x69\x77\x26\x61",
      "\x90\x01\x50\x98\x3c\xd2\x4f\xb0\xd6\x96\x3f\x7d\x28\xe1\x7f\x72",
      "\xf9\x6b\x69\x7d\x7c\xb7\x93\x8d\x52\x5a\x2f\x31\xaa\xf1\x61\xd0",
      "\xc3\xfc\xd3\xd7\x61\x92\xe4\x00\x7d\xfb\x49\x6c\xca\x67\xe1\x3b",
      "\xd1\x74\xab\x98\xd2\x77\xd9\xf5\xa5\x61\x1c\x2c\x9f\x41\x9d\x9f",
      "\x57\xed\xf4\xa2\x2b\xe3\xc9\x55\xac\x49\xda\x2e\x21\x07\xb6\x7a",
  };
  const uint8_t *data[7];
  size_t len[7];
  uint8_t out[7][VHDUP__MD5_LEN];
  for (size_t i = 0; i < 7; i++) {
    data[i] = (const uint8_t *)msg[i];
    len[i] = strlen(msg[i]);
  }
  vhdup__md5x(7, data, len, out);
  for (size_t i = 0; i < 7; i++)
    assert_memory_equal(out[i], want[i], VHDUP__MD5_LEN);
  int lanes = vhdup__md5x_lanes();
  assert_true(lanes == 1 || lanes == VHDUP__MD5X_MAX);
}

/* Every lane count, every length up to three blocks and random ones to
 * 70 KB, lanes sharing and not sharing their length: each digest is the
 * one mbedTLS computes alone. */
static void test_md5x_matches_md5(void **state) {
  (void)state;
  enum { BUF = 80000 };
  uint8_t *buf = malloc(BUF);
  assert_non_null(buf);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < BUF; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  for (unsigned round = 0; round < 3000; round++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t n = 1 + round % VHDUP__MD5X_MAX;
    const uint8_t *data[VHDUP__MD5X_MAX];
    size_t len[VHDUP__MD5X_MAX];
    uint8_t out[VHDUP__MD5X_MAX][VHDUP__MD5_LEN], want[VHDUP__MD5_LEN];
    for (size_t j = 0; j < n; j++) {
      uint64_t r = x >> (8 * j);
      if (round < 200)
        len[j] = round; /* all lanes one length: 0 .. 199 */
      else if (round < 400)
        len[j] = (r + j * 7) % 200; /* one to four blocks, mixed */
      else
        len[j] = (size_t)((r * 2654435761u) % 70000);
      data[j] = buf + (r % (BUF - 70000));
      if (len[j] == 0 && j % 2 == 1)
        data[j] = NULL;
    }
    vhdup__md5x(n, data, len, out);
    for (size_t j = 0; j < n; j++) {
      assert_int_equal(vhdup__md5_digest(data[j] != NULL ? data[j] : buf, len[j], want), 0);
      assert_memory_equal(out[j], want, VHDUP__MD5_LEN);
    }
  }
  free(buf);
}

static void test_base64_decode_errors(void **state) {
  (void)state;
  uint8_t out[8];
  assert_int_equal(vhdup__base64_decode("YWJj", 4, out, sizeof(out)), 3);
  assert_memory_equal(out, "abc", 3);
  assert_int_equal(vhdup__base64_decode("Y!Jj", 4, out, sizeof(out)), VHDUP_EFORMAT);
  assert_int_equal(vhdup__base64_decode("YWJjYWJjYWJj", 12, out, 4), VHDUP_ELIMIT);
}

static void test_errf(void **state) {
  (void)state;
  vhdup__err e;
  assert_int_equal(
      vhdup__errf(&e, VHDUP_EFORMAT, "%s: field %s at offset %d", "f.vhd", "cookie", 0),
      VHDUP_EFORMAT);
  assert_int_equal(e.code, VHDUP_EFORMAT);
  assert_string_equal(e.msg, "f.vhd: field cookie at offset 0");
  assert_int_equal(vhdup__errf(NULL, VHDUP_EIO, "x"), VHDUP_EIO);
  vhdup__err_clear(&e);
  assert_int_equal(e.code, 0);
}

static int fail_next;
static void *failing_malloc(size_t n) {
  return fail_next ? NULL : test_malloc(n);
}
static void *plain_realloc(void *p, size_t n) {
  return test_realloc(p, n);
}
static void *plain_calloc(size_t c, size_t n) {
  return test_calloc(c, n);
}
static void plain_free(void *p) {
  test_free(p);
}

static void test_allocator_hook(void **state) {
  (void)state;
  assert_int_equal(vhdup_replace_allocator(failing_malloc, NULL, NULL, NULL), VHDUP_EINVAL);
  assert_int_equal(vhdup_replace_allocator(failing_malloc, plain_realloc, plain_calloc, plain_free),
                   0);
  fail_next = 1;
  assert_null(vhdup__strdup("x"));
  fail_next = 0;
  char *s = vhdup__strdup("hello");
  assert_string_equal(s, "hello");
  vhdup__free(s);
  assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
}

static void test_malloc_aligned(void **state) {
  (void)state;
  void *base = (void *)1;
  assert_null(vhdup__malloc_aligned(64, 3, &base)); /* not a power of two */
  assert_null(base);
  assert_null(vhdup__malloc_aligned(SIZE_MAX - 10, 4096, &base)); /* would wrap */
  assert_null(base);
  size_t aligns[] = {1, 16, 4096, 2u * 1024 * 1024};
  for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
    unsigned char *p = vhdup__malloc_aligned(5000, aligns[i], &base);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % aligns[i], 0);
    assert_true(p >= (unsigned char *)base && p + 5000 <= (unsigned char *)base + 5000 + aligns[i]);
    memset(p, 0xa5, 5000); /* all of it is usable (ASan checks) */
    vhdup__free(base);
  }
  /* Through a replaced allocator, and failing with it. */
  assert_int_equal(vhdup_replace_allocator(failing_malloc, plain_realloc, plain_calloc, plain_free),
                   0);
  fail_next = 1;
  assert_null(vhdup__malloc_aligned(64, 64, &base));
  assert_null(base);
  assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
}

static void test_redact(void **state) {
  (void)state;
  char out[256];
  const char *in = "https://a/c/b?sv=2021&sig=abc%2Fdef&se=x";
  vhdup__redact(in, strlen(in), out, sizeof(out));
  assert_string_equal(out, "https://a/c/b?sv=2021&sig=REDACTED&se=x");
  const char *enc = "u=https%3A%2F%2Fa%2Fb%3Fsv%3D1%26sig%3Dsecret%26se%3D2";
  char *d = vhdup__redact_dup(enc);
  assert_non_null(d);
  assert_null(strstr(d, "secret"));
  vhdup__free(d);
  /* Only at a parameter's start: a blob named "xsig=1" stays. */
  d = vhdup__redact_dup("c/xsig=1.vhd SIG=abc 'sig=q'");
  assert_string_equal(d, "c/xsig=1.vhd SIG=REDACTED 'sig=REDACTED'");
  vhdup__free(d);
  /* Truncated output is still terminated and never shows the value. */
  char small[20];
  vhdup__redact(in, strlen(in), small, sizeof(small));
  assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* The cases the Azure module's and the HTTP engine's own redactors covered
 * before they became this one. */
static void expect_redacted(const char *in, const char *want) {
  char *d = vhdup__redact_dup(in);
  assert_non_null(d);
  assert_string_equal(d, want);
  vhdup__free(d);
}

static void test_redact_cases(void **state) {
  (void)state;
  expect_redacted(
      "https://a.blob.core.windows.net/c/b?sv=2020-01-01&se=2030-01-01&sig=S3CR3T%2Bx%3D"
      "&sp=rw",
      "https://a.blob.core.windows.net/c/b?sv=2020-01-01&se=2030-01-01&sig=REDACTED"
      "&sp=rw");
  expect_redacted("https://a/c/b?SIG=S3CR3T", "https://a/c/b?SIG=REDACTED");
  expect_redacted("sig=S3CR3T&sv=1", "sig=REDACTED&sv=1");
  expect_redacted("no query at all; design=1", "no query at all; design=1");
  expect_redacted("two: u?sig=S3CR3T and v?a=1&sig=S3CR3T#x",
                  "two: u?sig=REDACTED and v?a=1&sig=REDACTED#x");
  expect_redacted("url 'http://h/p?SIG=zz' and sig%3Dqq&x",
                  "url 'http://h/p?SIG=REDACTED' and sig%3DREDACTED&x");
  expect_redacted("x?sig=", "x?sig=REDACTED");
  /* An XML message (&amp;), a JSON string, a header line, a list. */
  expect_redacted("<Message>u?a=1&amp;sig=S3CR3T</Message>",
                  "<Message>u?a=1&amp;sig=REDACTED</Message>");
  expect_redacted("{\"url\":\"sig=S3CR3T\"}", "{\"url\":\"sig=REDACTED\"}");
  expect_redacted("> PUT /c/b?comp=page&sig=S3CR3T HTTP/1.1",
                  "> PUT /c/b?comp=page&sig=REDACTED HTTP/1.1");
  expect_redacted("a?sig=S3,CR3T", "a?sig=REDACTED");

  char out[256];
  const char *in = "no secrets";
  assert_int_equal(vhdup__redact(in, strlen(in), out, sizeof(out)), strlen(in));
  assert_string_equal(out, in);
  in = "?sig=abcdef";
  assert_int_equal(vhdup__redact(in, strlen(in), out, 8), 7);
  assert_string_equal(out, "?sig=RE");
  assert_int_equal(vhdup__redact(in, strlen(in), out, 0), 0);
  char buf[20];
  in = "https://a/b?sig=S3CR3T";
  vhdup__redact(in, strlen(in), buf, sizeof(buf));
  assert_string_equal(buf, "https://a/b?sig=RED");
  in = "x?sig=S3CR3TS3CR3T";
  vhdup__redact(in, strlen(in), buf, sizeof(buf));
  assert_string_equal(buf, "x?sig=REDACTED");
}

static void test_secret_take(void **state) {
  (void)state;
  char *s = NULL;
  assert_int_equal(vhdup__secret_take("  key==\n", 8, &s), 0);
  assert_string_equal(s, "key==");
  vhdup__secret_free(s);
  assert_int_equal(vhdup__secret_take(" \n", 2, &s), VHDUP_ECREDENTIAL);
  assert_null(s);
  assert_int_equal(vhdup__secret_take("a\nb", 3, &s), VHDUP_ECREDENTIAL);
  char *big = malloc(VHDUP__SECRET_MAX + 2);
  memset(big, 'k', VHDUP__SECRET_MAX + 1);
  assert_int_equal(vhdup__secret_take(big, VHDUP__SECRET_MAX + 1, &s), VHDUP_ELIMIT);
  assert_int_equal(vhdup__secret_take(big, VHDUP__SECRET_MAX, &s), 0);
  vhdup__secret_free(s);
  free(big);
}

static void test_secret_read_file(void **state) {
  (void)state;
  char path[] = "/tmp/vhdup-secret-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  char *buf;
  size_t len;
  assert_int_equal(write(fd, "abc\n", 4), 4);
  assert_int_equal(vhdup__secret_read_file(path, &buf, &len), 0);
  assert_int_equal(len, 4);
  vhdup__wipe(buf, len);
  vhdup__free(buf);
  /* One byte over the limit is refused whole, never truncated. */
  assert_int_equal(ftruncate(fd, VHDUP__SECRET_MAX + 1), 0);
  assert_int_equal(vhdup__secret_read_file(path, &buf, &len), VHDUP_ELIMIT);
  assert_null(buf);
  close(fd);
  unlink(path);
  assert_true(vhdup__secret_read_file(path, &buf, &len) < 0);
}

static void test_edit_distance(void **state) {
  (void)state;
  assert_int_equal(vhdup__edit_distance("kye", "key", 0, 2), 1);
  assert_int_equal(vhdup__edit_distance("Key", "key", 0, 2), 1);
  assert_int_equal(vhdup__edit_distance("Key", "key", 1, 2), 0);
  assert_int_equal(vhdup__edit_distance("abcdef", "uvwxyz", 0, 2), 3);
  static const char *const names[] = {"AccountName", "AccountKey", "BlobEndpoint"};
  assert_string_equal(vhdup__suggest("accountnme", names, 3, 1), "AccountName");
  assert_null(vhdup__suggest("accountnme", names, 3, 0));
  assert_null(vhdup__suggest("zzz", names, 3, 1));
}

typedef struct item {
  int v;
  vhdup__list node;
} item;

static void test_list(void **state) {
  (void)state;
  vhdup__list head;
  item it[4];
  vhdup__list_init(&head);
  assert_true(vhdup__list_empty(&head));
  for (int i = 0; i < 4; i++) {
    it[i].v = i;
    vhdup__list_push_tail(&head, &it[i].node);
  }
  vhdup__list_remove(&it[1].node);
  assert_false(vhdup__list_linked(&it[1].node));
  vhdup__list_remove(&it[1].node); /* harmless twice */
  int sum = 0, n = 0;
  vhdup__list_foreach_safe(q, &head) {
    item *x = vhdup__list_entry(q, item, node);
    sum = sum * 10 + x->v;
    if (x->v == 2)
      vhdup__list_remove(q);
    n++;
  }
  assert_int_equal(sum, 23);
  assert_int_equal(n, 3);
  vhdup__list_push_head(&head, &it[1].node);
  assert_int_equal(vhdup__list_entry(vhdup__list_pop_head(&head), item, node)->v, 1);
  assert_int_equal(vhdup__list_entry(vhdup__list_last(&head), item, node)->v, 3);
}

static void test_rng(void **state) {
  (void)state;
  vhdup__rng a, b;
  vhdup__rng_seed(&a);
  vhdup__rng_seed(&b);
  assert_true(a.state != 0 && b.state != 0);
  uint64_t x = vhdup__rng_next(&a), y = vhdup__rng_next(&a);
  assert_true(x != y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_be_roundtrip),
      cmocka_unit_test(test_redact),
      cmocka_unit_test(test_redact_cases),
      cmocka_unit_test(test_secret_take),
      cmocka_unit_test(test_secret_read_file),
      cmocka_unit_test(test_edit_distance),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_rng),
      cmocka_unit_test(test_digests),
      cmocka_unit_test(test_md5_streaming),
      cmocka_unit_test(test_base64_decode_errors),
      cmocka_unit_test(test_errf),
      cmocka_unit_test(test_allocator_hook),
      cmocka_unit_test(test_malloc_aligned),
      cmocka_unit_test(test_md5x_rfc1321),
      cmocka_unit_test(test_md5x_matches_md5),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
