#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/be.h"
#include "vhd/vhd.h"

/* Hand-built images. Dynamic layout used throughout: footer copy at 0,
 * dynamic header at 512, BAT at 1536 (padded to 512), 1024 bytes of parent
 * locator data, then the blocks in the order asked, then the footer. */
#define CAP (1u << 20)
static uint8_t img_a[CAP], img_b[CAP], img_c[CAP];

typedef struct layout {
  size_t len;
  uint64_t hoff, toff, loc_off;
  uint32_t nbat, bitmap_size, bs;
  uint64_t block_off[64]; /* by block index; 0 when unallocated */
} layout;

static void fill_footer(vhdup__footer *f, uint32_t type, uint64_t vsize, uint64_t data_offset,
                        uint8_t uuid_byte) {
  memset(f, 0, sizeof(*f));
  memcpy(f->cookie, "conectix", 8);
  f->features = 2;
  f->version = 0x00010000;
  f->data_offset = data_offset;
  memcpy(f->creator_app, "win ", 4);
  memcpy(f->creator_os, "Wi2k", 4);
  f->original_size = vsize;
  f->current_size = vsize;
  vhdup__chs(vsize, &f->cylinders, &f->heads, &f->sectors_per_track);
  f->disk_type = type;
  memset(f->uuid, uuid_byte, 16);
}

static void refooter(uint8_t *buf, size_t off) {
  vhdup__put_be32(buf + off + 64, vhdup__vhd_checksum(buf + off, 512, 64));
}

static void reheader(uint8_t *buf, const layout *l) {
  vhdup__put_be32(buf + l->hoff + 36, vhdup__vhd_checksum(buf + l->hoff, 1024, 36));
}

/* Rewrites both footers (copy at 0 and the end) after a field changed. */
static void set_footer_field32(uint8_t *buf, const layout *l, size_t field, uint32_t v) {
  vhdup__put_be32(buf + field, v);
  vhdup__put_be32(buf + l->len - 512 + field, v);
  refooter(buf, 0);
  refooter(buf, l->len - 512);
}

static void set_footer_field64(uint8_t *buf, const layout *l, size_t field, uint64_t v) {
  vhdup__put_be64(buf + field, v);
  vhdup__put_be64(buf + l->len - 512 + field, v);
  refooter(buf, 0);
  refooter(buf, l->len - 512);
}

static size_t build_dyn(uint8_t *buf, uint64_t vsize, uint32_t bs, uint32_t type, const int *order,
                        size_t n, uint8_t fill, uint8_t uuid_byte, uint8_t parent_uuid_byte,
                        layout *l) {
  memset(l, 0, sizeof(*l));
  memset(buf, 0, CAP);
  l->bs = bs;
  l->nbat = (uint32_t)((vsize + bs - 1) / bs);
  l->bitmap_size = (uint32_t)(((bs / 512 + 7) / 8 + 511) / 512 * 512);
  l->hoff = 512;
  l->toff = 1536;
  l->loc_off = l->toff + ((uint64_t)l->nbat * 4 + 511) / 512 * 512;
  uint64_t p = l->loc_off + 1024;
  for (uint32_t i = 0; i < l->nbat; i++)
    vhdup__put_be32(buf + l->toff + 4 * i, 0xffffffffu);
  for (size_t i = 0; i < n; i++) {
    int b = order[i];
    l->block_off[b] = p;
    vhdup__put_be32(buf + l->toff + 4 * b, (uint32_t)(p / 512));
    memset(buf + p, 0xff, l->bitmap_size);
    memset(buf + p + l->bitmap_size, fill + b, bs);
    p += l->bitmap_size + bs;
  }
  vhdup__dynhdr h;
  memset(&h, 0, sizeof(h));
  memcpy(h.cookie, "cxsparse", 8);
  h.data_offset = UINT64_MAX;
  h.table_offset = l->toff;
  h.header_version = 0x00010000;
  h.max_table_entries = l->nbat;
  h.block_size = bs;
  if (type == VHDUP__DISK_DIFFERENCING) {
    memset(h.parent_uuid, parent_uuid_byte, 16);
    const char *pn = "parent.vhd";
    for (size_t i = 0; pn[i]; i++)
      h.parent_name[i] = (uint16_t)pn[i];
  }
  vhdup__dynhdr_encode(&h, buf + l->hoff);
  vhdup__footer f;
  fill_footer(&f, type, vsize, l->hoff, uuid_byte);
  vhdup__footer_encode(&f, buf);
  vhdup__footer_encode(&f, buf + p);
  l->len = p + 512;
  return l->len;
}

/* Puts locator slot `slot` with code and path: W2ru/W2ku as UTF-16LE,
 * MacX as UTF-8, into the locator data area (512 bytes per slot, 2 slots). */
static void set_locator(uint8_t *buf, const layout *l, int slot, const char *code,
                        const char *path) {
  uint8_t *e = buf + l->hoff + 576 + 24 * slot;
  uint64_t off = l->loc_off + 512u * (uint64_t)slot;
  size_t n = strlen(path), len;
  if (strcmp(code, "MacX") == 0) {
    memcpy(buf + off, path, n);
    len = n;
  } else {
    for (size_t i = 0; i < n; i++) {
      buf[off + 2 * i] = (uint8_t)path[i];
      buf[off + 2 * i + 1] = 0;
    }
    len = 2 * n;
  }
  memcpy(e, code, 4);
  vhdup__put_be32(e + 4, 1);
  vhdup__put_be32(e + 8, (uint32_t)len);
  vhdup__put_be64(e + 16, off);
  reheader(buf, l);
}

static vhdup__disk *open_ok(const uint8_t *buf, size_t len, const char *name,
                            const vhdup__open_opts *opts) {
  vhdup__src src;
  vhdup__src_from_buffer(&src, name, buf, len);
  vhdup__disk *d = NULL;
  vhdup__err err;
  int rc = vhdup__disk_open(&src, opts, &d, &err);
  if (rc != 0)
    print_error("unexpected: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_non_null(d);
  return d;
}

static void open_fails(const uint8_t *buf, size_t len, const char *name,
                       const vhdup__open_opts *opts, int code, const char *s1, const char *s2) {
  vhdup__src src;
  vhdup__src_from_buffer(&src, name, buf, len);
  vhdup__disk *d = (vhdup__disk *)&src;
  vhdup__err err;
  int rc = vhdup__disk_open(&src, opts, &d, &err);
  if (rc != code || strstr(err.msg, s1) == NULL || (s2 != NULL && strstr(err.msg, s2) == NULL))
    print_error("code %d (want %d), message: %s\n", rc, code, err.msg);
  assert_int_equal(rc, code);
  assert_null(d);
  assert_int_equal(err.code, code);
  assert_non_null(strstr(err.msg, name));
  assert_non_null(strstr(err.msg, s1));
  if (s2 != NULL)
    assert_non_null(strstr(err.msg, s2));
}

/* Renders the virtual disk through the iterator into out (vsize bytes) and
 * checks the iterator's promises: order, 512 multiples, max_len, merging. */
static size_t render(const vhdup__disk *d, uint64_t max_len, uint8_t *out, size_t cap) {
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_true(out == NULL || info.virtual_size <= cap);
  vhdup__extent_iter *it;
  assert_int_equal(vhdup__extent_iter_new(d, max_len, &it), 0);
  vhdup__extent e, prev;
  memset(&prev, 0, sizeof(prev));
  vhdup__err err;
  uint64_t next = 0;
  size_t count = 0;
  int rc;
  while ((rc = vhdup__extent_next(it, &e, &err)) == 1) {
    assert_true(e.virtual_offset == next);
    assert_true(e.length > 0 && e.length % 512 == 0);
    if (max_len)
      assert_true(e.length <= max_len);
    if (count > 0 && (max_len == 0 || prev.length < max_len)) {
      /* Merged: the same kind never follows itself contiguously. */
      if (e.src == NULL)
        assert_non_null(prev.src);
      else
        assert_false(prev.src == e.src && prev.file_offset + prev.length == e.file_offset);
    }
    if (out == NULL)
      ;
    else if (e.src == NULL)
      memset(out + e.virtual_offset, 0, e.length);
    else
      assert_int_equal(e.src->read(e.src, e.file_offset, out + e.virtual_offset, e.length), 0);
    next += e.length;
    prev = e;
    count++;
  }
  assert_int_equal(rc, 0);
  assert_true(next == info.virtual_size);
  vhdup__extent_iter_free(it);
  return count;
}

static uint8_t vbuf[CAP];

static void test_footer_roundtrip(void **state) {
  (void)state;
  vhdup__footer f, g;
  uint8_t buf[512];
  vhdup__err err;
  fill_footer(&f, VHDUP__DISK_DYNAMIC, 1ull << 30, 512, 0x5a);
  f.timestamp = 0x12345678;
  f.saved_state = 1;
  vhdup__footer_encode(&f, buf);
  assert_memory_equal(buf, "conectix", 8);
  assert_int_equal(vhdup__be32(buf + 60), 3);
  /* One's complement of the byte sum, computed independently. */
  uint32_t sum = 0;
  for (int i = 0; i < 512; i++)
    if (i < 64 || i >= 68)
      sum += buf[i];
  assert_int_equal(vhdup__be32(buf + 64), ~sum);
  assert_int_equal(vhdup__footer_decode(buf, &g, &err), 0);
  f.checksum = ~sum;
  assert_memory_equal(&f, &g, sizeof(f));
  buf[100] ^= 1;
  assert_int_equal(vhdup__footer_decode(buf, &g, &err), VHDUP_ECHECKSUM);
  assert_non_null(strstr(err.msg, "expected"));
  buf[0] = 'x';
  assert_int_equal(vhdup__footer_decode(buf, &g, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "conectix"));
}

static void test_dynhdr_roundtrip(void **state) {
  (void)state;
  vhdup__dynhdr h, g;
  uint8_t buf[1024];
  vhdup__err err;
  memset(&h, 0, sizeof(h));
  memcpy(h.cookie, "cxsparse", 8);
  h.data_offset = UINT64_MAX;
  h.table_offset = 1536;
  h.header_version = 0x00010000;
  h.max_table_entries = 513;
  h.block_size = 2u << 20;
  memset(h.parent_uuid, 7, 16);
  h.parent_name[0] = 0x00e9;
  memcpy(h.locators[1].platform_code, "W2ku", 4);
  h.locators[1].data_length = 40;
  h.locators[1].data_offset = 4096;
  vhdup__dynhdr_encode(&h, buf);
  assert_memory_equal(buf + 576 + 24, "W2ku", 4);
  assert_int_equal(vhdup__be32(buf + 32), 2u << 20);
  assert_int_equal(vhdup__dynhdr_decode(buf, &g, &err), 0);
  h.checksum = g.checksum;
  assert_memory_equal(&h, &g, sizeof(h));
  buf[40] ^= 0xff;
  assert_int_equal(vhdup__dynhdr_decode(buf, &g, &err), VHDUP_ECHECKSUM);
  memcpy(buf, "cxsparsX", 8);
  assert_int_equal(vhdup__dynhdr_decode(buf, &g, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "cxsparse"));
}

static void check_chs(uint64_t size, unsigned c, unsigned h, unsigned s) {
  uint16_t cc;
  uint8_t hh, ss;
  vhdup__chs(size, &cc, &hh, &ss);
  assert_int_equal(cc, c);
  assert_int_equal(hh, h);
  assert_int_equal(ss, s);
}

/* Expected values worked by hand through the spec appendix. */
static void test_chs(void **state) {
  (void)state;
  /* 20480 sectors: 17 spt, cth 1204, heads 2 -> 4; 1204/4 = 301. */
  check_chs(10ull << 20, 301, 4, 17);
  /* 260096 sectors: cth 15299, heads 15 (< 16, 15299 < 15360): 1019. */
  check_chs(127ull << 20, 1019, 15, 17);
  /* 4194304 sectors: heads 241 > 16 -> 31 spt, cth 135300 >= 16384 ->
   * 63 spt, cth 66576, 4161 cylinders. */
  check_chs(2ull << 30, 4161, 16, 63);
  /* 83886080 sectors >= 65535*16*63: 255 spt, cth 328965, 20560. */
  check_chs(40ull << 30, 20560, 16, 255);
  /* Capped at 65535*16*255 sectors. */
  check_chs(1ull << 40, 65535, 16, 255);
  check_chs(65535ull * 16 * 255 * 512, 65535, 16, 255);
}

static void test_fixed_footer(void **state) {
  (void)state;
  vhdup__footer src, f, g;
  uint8_t buf[512];
  vhdup__err err;
  fill_footer(&src, VHDUP__DISK_DYNAMIC, 2ull << 30, 512, 0x42);
  src.timestamp = 777;
  vhdup__fixed_footer(&src, 2ull << 30, &f);
  assert_int_equal(f.disk_type, VHDUP__DISK_FIXED);
  assert_true(f.data_offset == UINT64_MAX);
  assert_true(f.current_size == 2ull << 30 && f.original_size == 2ull << 30);
  assert_int_equal(f.cylinders, 4161);
  assert_int_equal(f.heads, 16);
  assert_int_equal(f.sectors_per_track, 63);
  assert_memory_equal(f.creator_app, "win ", 4);
  assert_int_equal(f.features, 2);
  assert_int_equal(f.version, 0x00010000);
  assert_memory_equal(f.uuid, src.uuid, 16);
  assert_int_equal(f.timestamp, 777);
  vhdup__footer_encode(&f, buf);
  assert_int_equal(vhdup__footer_decode(buf, &g, &err), 0);
  assert_int_equal(g.checksum, f.checksum);
  vhdup__fixed_footer(NULL, 1ull << 20, &f);
  uint8_t zero[16] = {0};
  assert_memory_equal(f.uuid, zero, 16);
  assert_int_equal(f.timestamp, 0);
}

static void test_fixed_and_raw(void **state) {
  (void)state;
  vhdup__footer f;
  size_t vsize = 64 * 1024;
  memset(img_a, 0, CAP);
  for (size_t i = 0; i < vsize; i++)
    img_a[i] = (uint8_t)(i * 7);
  fill_footer(&f, VHDUP__DISK_FIXED, vsize, UINT64_MAX, 1);
  memcpy(f.creator_app, "vpc ", 4);
  vhdup__footer_encode(&f, img_a + vsize);
  vhdup__disk *d = open_ok(img_a, vsize + 512, "fixed.vhd", NULL);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.type, VHDUP__DISK_FIXED);
  assert_false(info.is_raw);
  assert_true(info.virtual_size == vsize);
  /* CHS for 128 sectors is 1/4/17 = 68 sectors: qemu (creator "vpc ")
   * would take 34816 bytes; the warning says so. */
  assert_non_null(vhdup__disk_warning(d, 0));
  assert_non_null(strstr(vhdup__disk_warning(d, 0), "qemu would take 34816"));
  assert_int_equal(render(d, 0, vbuf, CAP), 1);
  assert_memory_equal(vbuf, img_a, vsize);
  assert_int_equal(render(d, 4096, vbuf, CAP), 16);
  vhdup__disk_free(d);

  /* A 511-byte footer (old Virtual PC) is accepted on a fixed disk. */
  d = open_ok(img_a, vsize + 511, "old.vhd", NULL);
  vhdup__disk_free(d);

  /* Raw: by name, or by format. */
  vhdup__open_opts raw = {VHDUP_FORMAT_RAW, NULL, NULL, NULL};
  d = open_ok(img_a, vsize, "disk.IMG", NULL);
  vhdup__disk_get_info(d, &info);
  assert_true(info.is_raw && info.virtual_size == vsize);
  vhdup__disk_free(d);
  d = open_ok(img_a, vsize + 512, "fixed.vhd", &raw);
  vhdup__disk_get_info(d, &info);
  assert_true(info.is_raw && info.virtual_size == vsize + 512);
  vhdup__disk_free(d);
  open_fails(img_a, vsize, "disk.vhd", NULL, VHDUP_EFORMAT, "no 'conectix' cookie",
             "at offset 65024");
  open_fails(img_a, 1000, "disk.raw", NULL, VHDUP_EFORMAT, "file size 1000",
             "not a multiple of 512");
  open_fails(img_a, 1000, "disk.vhd", NULL, VHDUP_EFORMAT, "file size 1000",
             "not a multiple of 512");
  /* A damaged footer makes it a damaged VHD, never a raw image. */
  img_a[vsize + 100] ^= 1;
  open_fails(img_a, vsize + 512, "disk.img", NULL, VHDUP_ECHECKSUM, "footer at offset 65536",
             "expected");
}

static void test_dynamic_out_of_order(void **state) {
  (void)state;
  layout l;
  int order[] = {2, 0, 3};
  size_t len = build_dyn(img_a, 16384, 4096, VHDUP__DISK_DYNAMIC, order, 3, 0x10, 1, 0, &l);
  vhdup__disk *d = open_ok(img_a, len, "dyn.vhd", NULL);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.type, VHDUP__DISK_DYNAMIC);
  assert_int_equal(info.block_size, 4096);
  assert_int_equal(info.blocks_allocated, 3);
  assert_true(info.bytes_allocated == 3 * 4096);
  assert_int_equal(info.chain_depth, 1);
  /* Blocks 0, [1 zero], 2, 3: four extents (2 and 3 are not contiguous in
   * the file: block 0 sits between them). */
  assert_int_equal(render(d, 0, vbuf, CAP), 4);
  for (int b = 0; b < 4; b++)
    for (int i = 0; i < 4096; i += 511)
      assert_int_equal(vbuf[b * 4096 + i], b == 1 ? 0 : 0x10 + b);
  vhdup__disk_free(d);
}

static void test_partial_bitmap(void **state) {
  (void)state;
  layout l;
  int order[] = {0, 1};
  size_t len = build_dyn(img_a, 8192, 4096, VHDUP__DISK_DYNAMIC, order, 2, 0x30, 1, 0, &l);
  /* Block 0: sectors 0 and 2 (bits 7 and 5 of byte 0). The data under the
   * clear bits is non-zero and must not show through. */
  img_a[l.block_off[0]] = 0xa0;
  /* Block 1: only its last sector (bit 0 of byte 0). */
  img_a[l.block_off[1]] = 0x01;
  vhdup__disk *d = open_ok(img_a, len, "bm.vhd", NULL);
  vhdup__extent_iter *it;
  vhdup__extent e;
  vhdup__err err;
  assert_int_equal(vhdup__extent_iter_new(d, 0, &it), 0);
  uint64_t want[][3] = {
      {0, 512, 1}, {512, 512, 0}, {1024, 512, 1}, {1536, 6144, 0}, {8192 - 512, 512, 1}};
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
    assert_true(e.virtual_offset == want[i][0]);
    assert_true(e.length == want[i][1]);
    assert_int_equal(e.src != NULL, want[i][2]);
  }
  assert_int_equal(vhdup__extent_next(it, &e, &err), 0);
  vhdup__extent_iter_free(it);
  render(d, 0, vbuf, CAP);
  assert_int_equal(vbuf[0], 0x30);
  assert_int_equal(vbuf[600], 0);
  assert_int_equal(vbuf[1100], 0x30);
  assert_int_equal(vbuf[8191], 0x31);
  vhdup__disk_free(d);
}

static void test_tail_and_big_blocks(void **state) {
  (void)state;
  layout l;
  int order[] = {1, 0, 2};
  /* 2.5 blocks: the last block's second half lies past the virtual end
   * and is ignored. */
  size_t len = build_dyn(img_a, 10240, 4096, VHDUP__DISK_DYNAMIC, order, 3, 0x50, 1, 0, &l);
  vhdup__disk *d = open_ok(img_a, len, "tail.vhd", NULL);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_true(info.virtual_size == 10240);
  assert_true(info.bytes_allocated == 10240);
  render(d, 1024, vbuf, CAP);
  assert_int_equal(vbuf[10239], 0x52);
  vhdup__disk_free(d);
  /* The last block may stop at the virtual end in the file. */
  size_t cut = l.block_off[2] + l.bitmap_size + 2048;
  memmove(img_a + cut, img_a + len - 512, 512);
  d = open_ok(img_a, cut + 512, "tail.vhd", NULL);
  vhdup__disk_free(d);
  /* A 512 KiB block (128 sectors, 512-byte bitmap) and a 2 MiB one. */
  len = build_dyn(img_a, 1u << 19, 1u << 19, VHDUP__DISK_DYNAMIC, order + 1, 1, 0x60, 1, 0, &l);
  assert_int_equal(l.bitmap_size, 512);
  d = open_ok(img_a, len, "big.vhd", NULL);
  assert_int_equal(render(d, 0, vbuf, CAP), 1);
  vhdup__disk_free(d);
  len = build_dyn(img_a, 3u << 20, 2u << 20, VHDUP__DISK_DYNAMIC, NULL, 0, 0, 1, 0, &l);
  d = open_ok(img_a, len, "empty2m.vhd", NULL);
  assert_int_equal(render(d, 0, NULL, 3u << 20), 1);
  vhdup__disk_free(d);
}

typedef struct memfs {
  const char *path[4];
  const uint8_t *buf[4];
  size_t len[4];
  int opened, closed;
} memfs;

static int mem_open(void *ctx, const char *path, vhdup__src *out) {
  memfs *fs = ctx;
  for (int i = 0; i < 4 && fs->path[i]; i++) {
    if (strcmp(fs->path[i], path) == 0) {
      vhdup__src_from_buffer(out, fs->path[i], fs->buf[i], fs->len[i]);
      fs->opened++;
      return 0;
    }
  }
  return -2; /* UV_ENOENT */
}

static void mem_close(void *ctx, vhdup__src *src) {
  memfs *fs = ctx;
  (void)src;
  fs->closed++;
}

/* grandparent G (dynamic) <- parent P (differencing) <- child C. */
static void build_chain(memfs *fs, layout *lg, layout *lp, layout *lc) {
  int go[] = {0, 1, 2};
  int po[] = {1};
  int co[] = {3, 0};
  memset(fs, 0, sizeof(*fs));
  fs->len[0] = build_dyn(img_a, 16384, 4096, VHDUP__DISK_DYNAMIC, go, 3, 0xa0, 0x11, 0, lg);
  fs->len[1] = build_dyn(img_b, 16384, 4096, VHDUP__DISK_DIFFERENCING, po, 1, 0xb0, 0x22, 0x11, lp);
  fs->len[2] = build_dyn(img_c, 16384, 4096, VHDUP__DISK_DIFFERENCING, co, 2, 0xc0, 0x33, 0x22, lc);
  img_b[lp->block_off[1]] = 0x80;
  img_c[lc->block_off[0]] = 0x40;
  memset(img_c + lc->block_off[3], 0, lc->bitmap_size);
  set_locator(img_c, lc, 0, "W2ru", ".\\p.vhd");
  set_locator(img_b, lp, 0, "W2ru", "missing\\g.vhd");
  set_locator(img_b, lp, 1, "MacX", "file:///abs/g%20x.vhd");
  fs->path[0] = "/abs/g x.vhd";
  fs->buf[0] = img_a;
  fs->path[1] = "dir/p.vhd";
  fs->buf[1] = img_b;
}

static void test_differencing_chain(void **state) {
  (void)state;
  memfs fs;
  layout lg, lp, lc;
  build_chain(&fs, &lg, &lp, &lc);
  vhdup__parent_io pio = {&fs, mem_open, mem_close};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, NULL, "dir"};
  vhdup__disk *d = open_ok(img_c, fs.len[2], "c.vhd", &opts);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.type, VHDUP__DISK_DIFFERENCING);
  assert_int_equal(info.chain_depth, 3);
  assert_string_equal(vhdup__disk_parent_path(d), "dir/p.vhd");
  assert_string_equal(vhdup__disk_parent_path(vhdup__disk_parent(d)), "/abs/g x.vhd");
  assert_null(vhdup__disk_parent(vhdup__disk_parent(vhdup__disk_parent(d))));
  render(d, 0, vbuf, CAP);
  /* Expected by sector: block 0 is G's but for sector 1 (C's); block 1's
   * sector 0 is P's, the rest G's; block 2 is G's; block 3 is allocated in
   * C with no bit set and nowhere below, so zero. */
  for (int s = 0; s < 32; s++) {
    int b = s / 8, i = s % 8, want;
    if (b == 0)
      want = i == 1 ? 0xc0 : 0xa0;
    else if (b == 1)
      want = i == 0 ? 0xb1 : 0xa1;
    else
      want = b == 2 ? 0xa2 : 0;
    assert_int_equal(vbuf[s * 512], want);
    assert_int_equal(vbuf[s * 512 + 511], want);
  }
  vhdup__disk_free(d);
  assert_int_equal(fs.opened, 2);
  assert_int_equal(fs.closed, 2);

  /* --parent overrides the child's own locators. */
  opts.parent_override = "elsewhere/p.vhd";
  fs.path[2] = "elsewhere/p.vhd";
  fs.buf[2] = img_b;
  fs.len[2] = fs.len[1];
  d = open_ok(img_c, lc.len, "c.vhd", &opts);
  assert_string_equal(vhdup__disk_parent_path(d), "elsewhere/p.vhd");
  vhdup__disk_free(d);
}

/* A differencing disk over a fixed parent, found through W2ku (absolute,
 * backslashes turned into slashes). */
static void test_diff_over_fixed(void **state) {
  (void)state;
  memfs fs;
  layout lc;
  int co[] = {1};
  vhdup__footer f;
  memset(&fs, 0, sizeof(fs));
  for (size_t i = 0; i < 8192; i++)
    img_a[i] = 0xee;
  fill_footer(&f, VHDUP__DISK_FIXED, 8192, UINT64_MAX, 0x44);
  vhdup__footer_encode(&f, img_a + 8192);
  size_t len = build_dyn(img_c, 8192, 4096, VHDUP__DISK_DIFFERENCING, co, 1, 0xc0, 0x55, 0x44, &lc);
  img_c[lc.block_off[1]] = 0x0f; /* sectors 4..7 of block 1 */
  set_locator(img_c, &lc, 1, "W2ku", "C:\\vms\\base.vhd");
  fs.path[0] = "C:/vms/base.vhd";
  fs.buf[0] = img_a;
  fs.len[0] = 8192 + 512;
  vhdup__parent_io pio = {&fs, mem_open, mem_close};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, NULL, NULL};
  vhdup__disk *d = open_ok(img_c, len, "c.vhd", &opts);
  assert_string_equal(vhdup__disk_parent_path(d), "C:/vms/base.vhd");
  assert_int_equal(render(d, 0, vbuf, CAP), 2);
  for (int s = 0; s < 16; s++)
    assert_int_equal(vbuf[s * 512 + 3], s >= 12 ? 0xc1 : 0xee);
  vhdup__disk_free(d);
}

static void test_parent_errors(void **state) {
  (void)state;
  memfs fs;
  layout lg, lp, lc;
  build_chain(&fs, &lg, &lp, &lc);
  vhdup__parent_io pio = {&fs, mem_open, mem_close};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, NULL, "dir"};
  /* No parent_io at all. */
  open_fails(img_c, lc.len, "c.vhd", NULL, VHDUP_EPARENT, "parent 'parent.vhd'", NULL);
  /* Missing parent: every tried path is named. */
  opts.dir = "nowhere";
  open_fails(img_c, lc.len, "c.vhd", &opts, VHDUP_EPARENT, "not found", "'nowhere/p.vhd'");
  opts.dir = "dir";
  /* UUID mismatch, both printed. */
  memset(img_c + lc.hoff + 40, 0x99, 16);
  reheader(img_c, &lc);
  open_fails(img_c, lc.len, "c.vhd", &opts, VHDUP_EPARENT, "99999999-9999-9999-9999-999999999999",
             "22222222-2222-2222-2222-222222222222");
  assert_int_equal(fs.opened, fs.closed);
  /* Parent of another size. */
  build_chain(&fs, &lg, &lp, &lc);
  set_footer_field64(img_b, &lp, 48, 32768);
  open_fails(img_c, lc.len, "c.vhd", &opts, VHDUP_EPARENT, "current size 32768",
             "child c.vhd's current size 16384");
  /* A parent that is damaged: the parent's own message. */
  build_chain(&fs, &lg, &lp, &lc);
  img_a[lg.len - 10] ^= 1;
  img_a[10] ^= 1;
  open_fails(img_b, lp.len, "dir/p.vhd", &opts, VHDUP_ECHECKSUM, "/abs/g x.vhd: footer", NULL);
  /* A disk that is its own parent: the depth bound stops it. */
  build_chain(&fs, &lg, &lp, &lc);
  memset(img_c + lc.hoff + 40, 0x33, 16);
  set_locator(img_c, &lc, 0, "W2ku", "self.vhd");
  fs.path[2] = "self.vhd";
  fs.buf[2] = img_c;
  fs.len[2] = lc.len;
  open_fails(img_c, lc.len, "c.vhd", &opts, VHDUP_ELIMIT, "deeper than 16", NULL);
  assert_int_equal(fs.opened, fs.closed);
}

static void test_recover_from_copy(void **state) {
  (void)state;
  layout l;
  int order[] = {0};
  size_t len = build_dyn(img_a, 8192, 4096, VHDUP__DISK_DYNAMIC, order, 1, 0x70, 1, 0, &l);
  img_a[len - 512 + 70] ^= 0x55;
  vhdup__disk *d = open_ok(img_a, len, "rec.vhd", NULL);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_true(info.footer_recovered);
  assert_non_null(strstr(vhdup__disk_warning(d, 0), "recovered from the copy at offset 0"));
  vhdup__disk_free(d);
  /* Truncated right after the last block (no end footer at all). */
  d = open_ok(img_a, len - 512, "rec.vhd", NULL);
  vhdup__disk_free(d);
  /* Both damaged: an error naming both. */
  img_a[70] ^= 0x55;
  open_fails(img_a, len, "rec.vhd", NULL, VHDUP_ECHECKSUM, "footer at offset 7680",
             "copy at offset 0 is damaged too");
}

typedef struct bad_case {
  const char *what;
  void (*mutate)(uint8_t *buf, layout *l);
  int code;
  const char *s1, *s2;
} bad_case;

static void m_bad_cookie(uint8_t *b, layout *l) {
  memcpy(b + l->len - 512, "conectiX", 8);
  memcpy(b, "conectiX", 8);
}
static void m_footer_cksum(uint8_t *b, layout *l) {
  b[l->len - 512 + 64] ^= 1;
  b[64] ^= 1;
}
static void m_hdr_cookie(uint8_t *b, layout *l) {
  b[l->hoff] = 'X';
}
static void m_hdr_cksum(uint8_t *b, layout *l) {
  b[l->hoff + 36] ^= 1;
}
static void m_bs_3000(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->hoff + 32, 3000);
  reheader(b, l);
}
static void m_bs_0(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->hoff + 32, 0);
  reheader(b, l);
}
static void m_bs_256(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->hoff + 32, 256);
  reheader(b, l);
}
static void m_entries_small(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->hoff + 28, 3);
  reheader(b, l);
}
static void m_table_past_end(uint8_t *b, layout *l) {
  vhdup__put_be64(b + l->hoff + 16, l->len - 512 - 8);
  reheader(b, l);
}
static void m_bat_past_end(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->toff + 4, (uint32_t)(l->len / 512));
}
static void m_bat_overlap(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->toff + 12, (uint32_t)((l->block_off[0] + 1024) / 512));
}
static void m_bat_on_header(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->toff + 4, 2);
}
static void m_bat_on_bat(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->toff + 4, (uint32_t)(l->toff / 512));
}
static void m_bat_on_copy(uint8_t *b, layout *l) {
  vhdup__put_be32(b + l->toff + 4, 0);
}
static void m_type_7(uint8_t *b, layout *l) {
  set_footer_field32(b, l, 60, 7);
}
static void m_type_1(uint8_t *b, layout *l) {
  set_footer_field32(b, l, 60, 1);
}
static void m_size_0(uint8_t *b, layout *l) {
  set_footer_field64(b, l, 48, 0);
}
static void m_size_huge(uint8_t *b, layout *l) {
  set_footer_field64(b, l, 48, 9ull << 40);
}
static void m_size_odd(uint8_t *b, layout *l) {
  set_footer_field64(b, l, 48, 16000);
}
static void m_hdr_past_end(uint8_t *b, layout *l) {
  set_footer_field64(b, l, 16, l->len - 1024);
}
static void m_parent_missing_loc(uint8_t *b, layout *l) {
  set_footer_field32(b, l, 60, VHDUP__DISK_DIFFERENCING);
}
static void m_locator_past_end(uint8_t *b, layout *l) {
  set_footer_field32(b, l, 60, VHDUP__DISK_DIFFERENCING);
  set_locator(b, l, 0, "W2ru", "p.vhd");
  vhdup__put_be64(b + l->hoff + 576 + 16, l->len);
  reheader(b, l);
}

static const bad_case bad_cases[] = {
    {"cookie", m_bad_cookie, VHDUP_EFORMAT, "no 'conectix' cookie", "offset 16896"},
    {"footer checksum", m_footer_cksum, VHDUP_ECHECKSUM, "footer at offset 16896", "expected"},
    {"header cookie", m_hdr_cookie, VHDUP_EFORMAT, "dynamic header at offset 512", "'cxsparse'"},
    {"header checksum", m_hdr_cksum, VHDUP_ECHECKSUM, "dynamic header at offset 512", "expected"},
    {"block size 3000", m_bs_3000, VHDUP_EFORMAT, "block size 3000", "at offset 512"},
    {"block size 0", m_bs_0, VHDUP_EFORMAT, "block size 0", "at offset 512"},
    {"block size 256", m_bs_256, VHDUP_EFORMAT, "block size 256", "at offset 512"},
    {"entries", m_entries_small, VHDUP_EFORMAT, "max table entries 3", "byte 540"},
    {"table past end", m_table_past_end, VHDUP_ETRUNCATED, "BAT at table offset 16888",
     "past the end"},
    {"bat past end", m_bat_past_end, VHDUP_ETRUNCATED, "BAT entry 1 at offset 1540",
     "past the end"},
    {"bat overlap", m_bat_overlap, VHDUP_EFORMAT, "BAT entry 0 (at offset 1536",
     "overlaps BAT entry 3 (at offset 1548"},
    {"bat on header", m_bat_on_header, VHDUP_EFORMAT, "BAT entry 1 (at offset 1540",
     "overlaps the dynamic header [512, 1536)"},
    {"bat on bat", m_bat_on_bat, VHDUP_EFORMAT, "the BAT [1536, 1552)", "BAT entry 1"},
    {"bat on copy", m_bat_on_copy, VHDUP_EFORMAT, "the footer copy [0, 512)", "BAT entry 1"},
    {"type 7", m_type_7, VHDUP_EFORMAT, "unknown disk type 7", "byte 16956"},
    {"type 1", m_type_1, VHDUP_EUNSUPPORTED, "unknown disk type 1", "offset 16896"},
    {"size 0", m_size_0, VHDUP_EFORMAT, "current size 0", "byte 16944"},
    {"size huge", m_size_huge, VHDUP_ELIMIT, "current size 9895604649984", "limit"},
    {"size odd", m_size_odd, VHDUP_EFORMAT, "current size 16000", "not a multiple of 512"},
    {"header past end", m_hdr_past_end, VHDUP_ETRUNCATED, "data offset 16384", "dynamic header"},
    {"no locator", m_parent_missing_loc, VHDUP_EPARENT, "no usable parent locator", "offset 512"},
    {"locator past end", m_locator_past_end, VHDUP_ETRUNCATED, "parent locator 0 (W2ru)",
     "at offset 1088"},
};

static int no_parent_open(void *ctx, const char *path, vhdup__src *out) {
  (void)ctx;
  (void)path;
  (void)out;
  return -2;
}

static void test_malformed(void **state) {
  (void)state;
  vhdup__parent_io pio = {NULL, no_parent_open, NULL};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, NULL, NULL};
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    layout l;
    int order[] = {0, 2, 3};
    build_dyn(img_a, 16384, 4096, VHDUP__DISK_DYNAMIC, order, 3, 0x10, 1, 0, &l);
    assert_int_equal(l.len, 16896 + 512);
    bad_cases[i].mutate(img_a, &l);
    print_message("case: %s\n", bad_cases[i].what);
    open_fails(img_a, l.len, "bad.vhd", &opts, bad_cases[i].code, bad_cases[i].s1, bad_cases[i].s2);
  }
  /* Empty and tiny files. */
  open_fails(img_a, 0, "empty.vhd", NULL, VHDUP_EFORMAT, "empty", NULL);
  open_fails(img_a, 0, "empty.img", NULL, VHDUP_EFORMAT, "empty", NULL);
  memset(img_a, 0, 512);
  open_fails(img_a, 100, "tiny.vhd", NULL, VHDUP_EFORMAT, "file size 100", NULL);
  /* A fixed disk shorter than its current size. */
  vhdup__footer f;
  fill_footer(&f, VHDUP__DISK_FIXED, 1u << 20, UINT64_MAX, 1);
  vhdup__footer_encode(&f, img_a + 4096);
  open_fails(img_a, 4096 + 512, "short.vhd", NULL, VHDUP_ETRUNCATED, "footer at offset 4096",
             "current size 1048576");
}

/* Fails any allocation above 64 MiB, so a hostile header that makes the
 * reader allocate in proportion to its claims fails the test. */
static int big_alloc_seen;
static void *guard_malloc(size_t n) {
  if (n > (64u << 20)) {
    big_alloc_seen = 1;
    return NULL;
  }
  return test_malloc(n);
}
static void *guard_realloc(void *p, size_t n) {
  if (n > (64u << 20)) {
    big_alloc_seen = 1;
    return NULL;
  }
  return test_realloc(p, n);
}
static void *guard_calloc(size_t c, size_t n) {
  if (n != 0 && c > (64u << 20) / n) {
    big_alloc_seen = 1;
    return NULL;
  }
  return test_calloc(c, n);
}
static void guard_free(void *p) {
  test_free(p);
}

static void test_hostile_bat(void **state) {
  (void)state;
  assert_int_equal(vhdup_replace_allocator(guard_malloc, guard_realloc, guard_calloc, guard_free),
                   0);
  layout l;
  int order[] = {0};
  build_dyn(img_a, 16384, 4096, VHDUP__DISK_DYNAMIC, order, 1, 0x10, 1, 0, &l);
  /* 2^31 entries of 512-byte blocks: 1 TiB, an 8 GiB BAT, in a 7 KiB file. */
  vhdup__put_be32(img_a + l.hoff + 28, 1u << 31);
  vhdup__put_be32(img_a + l.hoff + 32, 512);
  reheader(img_a, &l);
  set_footer_field64(img_a, &l, 48, 1ull << 40);
  open_fails(img_a, l.len, "hostile.vhd", NULL, VHDUP_ETRUNCATED, "BAT at table offset 1536",
             "2147483648 entries");
  assert_false(big_alloc_seen);
  assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
}

/* Every allocation made while opening and walking a chain fails in turn:
 * the error comes back cleanly and cmocka sees no leak. */
static int fail_at, alloc_count;
static void *count_malloc(size_t n) {
  return ++alloc_count == fail_at ? NULL : test_malloc(n);
}
static void *count_realloc(void *p, size_t n) {
  return ++alloc_count == fail_at ? NULL : test_realloc(p, n);
}
static void *count_calloc(size_t c, size_t n) {
  return ++alloc_count == fail_at ? NULL : test_calloc(c, n);
}

static void test_alloc_failures(void **state) {
  (void)state;
  memfs fs;
  layout lg, lp, lc;
  build_chain(&fs, &lg, &lp, &lc);
  vhdup__parent_io pio = {&fs, mem_open, mem_close};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, NULL, "dir"};
  assert_int_equal(vhdup_replace_allocator(count_malloc, count_realloc, count_calloc, guard_free),
                   0);
  int done = 0;
  for (fail_at = 1; !done && fail_at < 200; fail_at++) {
    alloc_count = 0;
    vhdup__src src;
    vhdup__src_from_buffer(&src, "c.vhd", img_c, lc.len);
    vhdup__disk *d;
    vhdup__err err;
    int rc = vhdup__disk_open(&src, &opts, &d, &err);
    if (rc != 0) {
      assert_int_equal(rc, VHDUP_ENOMEM);
      assert_null(d);
      continue;
    }
    vhdup__extent_iter *it;
    rc = vhdup__extent_iter_new(d, 0, &it);
    if (rc == 0) {
      vhdup__extent e;
      while (vhdup__extent_next(it, &e, &err) == 1)
        ;
      vhdup__extent_iter_free(it);
      done = 1;
    } else {
      assert_int_equal(rc, VHDUP_ENOMEM);
    }
    vhdup__disk_free(d);
  }
  assert_true(done);
  assert_int_equal(fs.opened, fs.closed);
  assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
}

/* A bitmap read that fails surfaces from extent_next with the file and
 * offset. */
static int fail_reads;
static int flaky_read(const vhdup__src *src, uint64_t off, void *buf, size_t len) {
  if (fail_reads)
    return VHDUP_EIO;
  if (off > src->size || len > src->size - off)
    return VHDUP_ETRUNCATED;
  memcpy(buf, (const uint8_t *)src->ctx + off, len);
  return 0;
}

static void test_bitmap_read_error(void **state) {
  (void)state;
  layout l;
  int order[] = {1};
  size_t len = build_dyn(img_a, 8192, 4096, VHDUP__DISK_DYNAMIC, order, 1, 0x10, 1, 0, &l);
  vhdup__src src = {img_a, "flaky.vhd", len, flaky_read, NULL};
  vhdup__disk *d;
  vhdup__err err;
  fail_reads = 0;
  assert_int_equal(vhdup__disk_open(&src, NULL, &d, &err), 0);
  vhdup__extent_iter *it;
  vhdup__extent e;
  assert_int_equal(vhdup__extent_iter_new(d, 0, &it), 0);
  fail_reads = 1;
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1); /* block 0: zeros, no read */
  assert_null(e.src);
  assert_int_equal(vhdup__extent_next(it, &e, &err), VHDUP_EIO);
  assert_non_null(strstr(err.msg, "flaky.vhd: sector bitmap of block 1 at offset"));
  fail_reads = 0;
  vhdup__extent_iter_free(it);
  vhdup__disk_free(d);
}

/* A raw source whose holes come from a table, as lseek's SEEK_DATA and
 * SEEK_HOLE would give them: data at [off, off + len) of each row, in
 * order. fail_from: offsets at or past it cannot be told (-EINVAL). */
typedef struct hole_table {
  const uint64_t (*rows)[2];
  size_t n;
  uint64_t fail_from;
  unsigned asked;
} hole_table;

static hole_table holes;

static int table_next_data(const vhdup__src *src, uint64_t off, uint64_t *start, uint64_t *end) {
  holes.asked++;
  if (off >= holes.fail_from)
    return -22;
  for (size_t i = 0; i < holes.n; i++) {
    uint64_t a = holes.rows[i][0], z = a + holes.rows[i][1];
    if (z > off) {
      *start = a > off ? a : off;
      *end = z;
      return 0;
    }
  }
  *start = *end = src->size;
  return 0;
}

/* Walks d's extents into want[][3] = {virtual offset, length, data}. */
static void expect_extents(vhdup__disk *d, uint64_t max_len, const uint64_t (*want)[3], size_t n) {
  vhdup__extent_iter *it;
  vhdup__extent e;
  vhdup__err err;
  assert_int_equal(vhdup__extent_iter_new(d, max_len, &it), 0);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
    if (e.virtual_offset != want[i][0] || e.length != want[i][1] || (e.src != NULL) != want[i][2])
      print_error("extent %zu: %llu+%llu %s\n", i, (unsigned long long)e.virtual_offset,
                  (unsigned long long)e.length, e.src ? "data" : "zeros");
    assert_int_equal(e.virtual_offset, want[i][0]);
    assert_int_equal(e.length, want[i][1]);
    assert_int_equal(e.src != NULL, want[i][2]);
    if (e.src != NULL)
      assert_int_equal(e.file_offset, e.virtual_offset);
  }
  assert_int_equal(vhdup__extent_next(it, &e, &err), 0);
  vhdup__extent_iter_free(it);
}

/* A raw image whose source reports holes yields them as zeros, widened to
 * whole sectors; one that cannot tell is all data from there on. */
static void test_raw_holes(void **state) {
  (void)state;
  static const uint64_t rows[][2] = {{4096, 8192}, {65536 + 100, 300}, {200704, 4096}};
  uint64_t size = 256 * 1024;
  vhdup__src src;
  vhdup__src_from_buffer(&src, "sparse.raw", img_a, size);
  src.next_data = table_next_data;
  holes = (hole_table){rows, 3, UINT64_MAX, 0};
  vhdup__open_opts raw = {VHDUP_FORMAT_RAW, NULL, NULL, NULL};
  vhdup__disk *d;
  vhdup__err err;
  assert_int_equal(vhdup__disk_open(&src, &raw, &d, &err), 0);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.bytes_allocated, 8192 + 512 + 4096);
  assert_int_equal(info.data_regions, 3);
  static const uint64_t want[][3] = {{0, 4096, 0},      {4096, 8192, 1},    {12288, 53248, 0},
                                     {65536, 512, 1},   {66048, 134656, 0}, {200704, 4096, 1},
                                     {204800, 57344, 0}};
  holes.asked = 0;
  expect_extents(d, 0, want, 7);
  assert_true(holes.asked <= 4); /* once per stretch of data, and the last hole */
  /* Cut at 4 KiB: the same answers, asked no more often. */
  static const uint64_t cut[][3] = {{0, 4096, 0}, {4096, 4096, 1}, {8192, 4096, 1}};
  vhdup__extent_iter *it;
  vhdup__extent e;
  assert_int_equal(vhdup__extent_iter_new(d, 4096, &it), 0);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
    assert_true(e.virtual_offset == cut[i][0] && e.length == cut[i][1] &&
                (e.src != NULL) == cut[i][2]);
  }
  vhdup__extent_iter_free(it);
  vhdup__disk_free(d);

  /* Past 64 KiB the source cannot tell: all data from there on. */
  holes = (hole_table){rows, 3, 65536, 0};
  assert_int_equal(vhdup__disk_open(&src, &raw, &d, &err), 0);
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.bytes_allocated, 8192 + size - 65536);
  static const uint64_t part[][3] = {
      {0, 4096, 0}, {4096, 8192, 1}, {12288, 53248, 0}, {65536, 262144 - 65536, 1}};
  expect_extents(d, 0, part, 4);
  vhdup__disk_free(d);

  /* Without next_data (or all holes): one data extent / one zero extent. */
  src.next_data = NULL;
  assert_int_equal(vhdup__disk_open(&src, &raw, &d, &err), 0);
  vhdup__disk_get_info(d, &info);
  assert_true(info.bytes_allocated == size && info.data_regions == 0);
  static const uint64_t all[][3] = {{0, 256 * 1024, 1}};
  expect_extents(d, 0, all, 1);
  vhdup__disk_free(d);
  src.next_data = table_next_data;
  holes = (hole_table){rows, 0, UINT64_MAX, 0};
  assert_int_equal(vhdup__disk_open(&src, &raw, &d, &err), 0);
  static const uint64_t none[][3] = {{0, 256 * 1024, 0}};
  expect_extents(d, 0, none, 1);
  vhdup__disk_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_footer_roundtrip),
      cmocka_unit_test(test_dynhdr_roundtrip),
      cmocka_unit_test(test_chs),
      cmocka_unit_test(test_fixed_footer),
      cmocka_unit_test(test_fixed_and_raw),
      cmocka_unit_test(test_dynamic_out_of_order),
      cmocka_unit_test(test_partial_bitmap),
      cmocka_unit_test(test_tail_and_big_blocks),
      cmocka_unit_test(test_differencing_chain),
      cmocka_unit_test(test_parent_errors),
      cmocka_unit_test(test_recover_from_copy),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_hostile_bat),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_bitmap_read_error),
      cmocka_unit_test(test_diff_over_fixed),
      cmocka_unit_test(test_raw_holes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
