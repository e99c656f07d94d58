/* The VHDX reader on byte buffers: CRC-32C, the decoders of headers,
 * region and metadata tables and parent locators, and whole images built
 * here from [MS-VHDX] (layout: headers at 64 and 128 KiB, region tables at
 * 192 and 256 KiB, metadata region at 1 MiB, BAT region at 2 MiB, blocks
 * from 3 MiB), opened and walked extent by extent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/crc32c.h"
#include "util/le.h"
#include "vhd/vhd.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define CAP (8u * MIB)
static uint8_t img_a[CAP], img_b[CAP];

/* Stored GUID bytes from text ("2DC27766-F623-4200-9D64-115E9BFD4A08"). */
static void guid(uint8_t *out, const char *t) {
  unsigned v[16];
  sscanf(t, "%2x%2x%2x%2x-%2x%2x-%2x%2x-%2x%2x-%2x%2x%2x%2x%2x%2x", &v[3], &v[2], &v[1], &v[0],
         &v[5], &v[4], &v[7], &v[6], &v[8], &v[9], &v[10], &v[11], &v[12], &v[13], &v[14], &v[15]);
  for (int i = 0; i < 16; i++)
    out[i] = (uint8_t)v[i];
}

#define G_BAT "2DC27766-F623-4200-9D64-115E9BFD4A08"
#define G_META "8B7CA206-4790-4B9A-B8FE-575F050F886E"
#define G_PARAMS "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
#define G_VSIZE "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
#define G_PAGE83 "BECA12AB-B2E6-4523-93EF-C309E000C746"
#define G_LSS "8141BF1D-A96F-4709-BA47-F233A8FAAB5F"
#define G_PSS "CDA348C7-445D-4471-9CC9-E9885251C556"
#define G_LOC "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"
#define G_LOCTYPE "B04AEFB7-D19E-4A81-B789-25B8E9445913"

typedef struct spec {
  uint64_t vsize;
  uint32_t bs, lss, flags; /* flags: bit 0 leave allocated, bit 1 has parent */
  uint64_t seq1, seq2;
  uint8_t data_write;             /* every byte of DataWriteGuid */
  const char *linkage, *relative; /* locator, when has parent */
} spec;

static void header(uint8_t *img, uint64_t off, uint64_t seq, uint8_t dw) {
  uint8_t *h = img + off;
  memset(h, 0, 4 * KIB);
  memcpy(h, "head", 4);
  vhdup__put_le64(h + 8, seq);
  memset(h + 32, dw, 16);
  vhdup__put_le16(h + 66, 1);
  vhdup__put_le32(h + 4, vhdup__crc32c_skip(h, 4 * KIB, 4));
}

static void regions(uint8_t *img, uint64_t off) {
  uint8_t *r = img + off;
  memset(r, 0, 64 * KIB);
  memcpy(r, "regi", 4);
  vhdup__put_le32(r + 8, 2);
  guid(r + 16, G_BAT);
  vhdup__put_le64(r + 32, 2 * MIB);
  vhdup__put_le32(r + 40, MIB);
  vhdup__put_le32(r + 44, 1);
  guid(r + 48, G_META);
  vhdup__put_le64(r + 64, MIB);
  vhdup__put_le32(r + 72, MIB);
  vhdup__put_le32(r + 76, 1);
  vhdup__put_le32(r + 4, vhdup__crc32c_skip(r, 64 * KIB, 4));
}

static size_t utf16(uint8_t *out, const char *s) {
  size_t n = 0;
  for (; *s; s++, n += 2)
    vhdup__put_le16(out + n, (uint8_t)*s);
  return n;
}

/* A locator item with parent_linkage and relative_path; returns its size. */
static size_t locator(uint8_t *p, const char *linkage, const char *rel) {
  guid(p, G_LOCTYPE);
  vhdup__put_le16(p + 18, 2);
  size_t o = 44;
  const char *kv[4] = {"parent_linkage", linkage, "relative_path", rel};
  for (int i = 0; i < 2; i++) {
    size_t kl = utf16(p + o, kv[2 * i]);
    size_t vl = utf16(p + o + kl, kv[2 * i + 1]);
    vhdup__put_le32(p + 20 + 12 * i, (uint32_t)o);
    vhdup__put_le32(p + 24 + 12 * i, (uint32_t)(o + kl));
    vhdup__put_le16(p + 28 + 12 * i, (uint16_t)kl);
    vhdup__put_le16(p + 30 + 12 * i, (uint16_t)vl);
    o += kl + vl;
  }
  return o;
}

static void meta_entry(uint8_t *t, int i, const char *g, uint32_t off, uint32_t len,
                       uint32_t flags) {
  guid(t + 32 + 32 * i, g);
  vhdup__put_le32(t + 48 + 32 * i, off);
  vhdup__put_le32(t + 52 + 32 * i, len);
  vhdup__put_le32(t + 56 + 32 * i, flags);
}

static void metadata(uint8_t *img, const spec *s) {
  uint8_t *m = img + MIB;
  memcpy(m, "metadata", 8);
  int n = 0;
  meta_entry(m, n++, G_PARAMS, 64 * KIB, 8, 4);
  vhdup__put_le32(m + 64 * KIB, s->bs);
  vhdup__put_le32(m + 64 * KIB + 4, s->flags);
  meta_entry(m, n++, G_VSIZE, 68 * KIB, 8, 6);
  vhdup__put_le64(m + 68 * KIB, s->vsize);
  meta_entry(m, n++, G_PAGE83, 72 * KIB, 16, 6);
  memset(m + 72 * KIB, 0x83, 16);
  meta_entry(m, n++, G_LSS, 76 * KIB, 4, 6);
  vhdup__put_le32(m + 76 * KIB, s->lss);
  meta_entry(m, n++, G_PSS, 80 * KIB, 4, 4);
  vhdup__put_le32(m + 80 * KIB, 4096);
  if (s->flags & 2)
    meta_entry(m, n++, G_LOC, 84 * KIB, (uint32_t)locator(m + 84 * KIB, s->linkage, s->relative),
               4);
  vhdup__put_le16(m + 10, (uint16_t)n);
}

/* The image without blocks: every BAT entry NOT_PRESENT. */
static void build(uint8_t *img, const spec *s) {
  memset(img, 0, CAP);
  memcpy(img, "vhdxfile", 8);
  header(img, 64 * KIB, s->seq1, s->data_write);
  header(img, 128 * KIB, s->seq2, s->data_write);
  regions(img, 192 * KIB);
  regions(img, 256 * KIB);
  metadata(img, s);
}

static uint32_t chunk_ratio(const spec *s) {
  return (uint32_t)((1ull << 23) * s->lss / s->bs);
}

/* Sets payload block i's entry; data blocks at offset 3 MiB + k MiB. */
static void payload(uint8_t *img, const spec *s, uint64_t i, unsigned state, uint64_t off_mib) {
  uint64_t j = i + i / chunk_ratio(s);
  vhdup__put_le64(img + 2 * MIB + 8 * j, state | (off_mib << 20));
}

static void bitmap_entry(uint8_t *img, const spec *s, uint64_t chunk, uint64_t off_mib) {
  uint64_t cr = chunk_ratio(s);
  vhdup__put_le64(img + 2 * MIB + 8 * (chunk * (cr + 1) + cr), 6 | (off_mib << 20));
}

static int open_img(const uint8_t *img, size_t len, const char *name, const vhdup__open_opts *opts,
                    vhdup__disk **d, vhdup__err *err) {
  vhdup__src src;
  vhdup__src_from_buffer(&src, name, img, len);
  return vhdup__disk_open(&src, opts, d, err);
}

static const spec dyn = {3 * MIB, MIB, 512, 0, 1, 2, 0xd1, NULL, NULL};

static void test_crc32c(void **state) {
  (void)state;
  assert_int_equal(vhdup__crc32c(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(vhdup__crc32c(vhdup__crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
  uint8_t b[13] = "12345678\xff\xff\xff\xff"
                  "9";
  uint8_t z[13] = "12345678\0\0\0\0"
                  "9";
  assert_int_equal(vhdup__crc32c_skip(b, 13, 8), vhdup__crc32c(0, z, 13));
}

static void test_guid_text(void **state) {
  (void)state;
  uint8_t g[16];
  char t[39];
  guid(g, G_BAT);
  assert_int_equal(g[0], 0x66);
  assert_int_equal(g[3], 0x2d);
  vhdup__vhdx_guid_text(g, t);
  assert_string_equal(t, "{" G_BAT "}");
}

/* Payload states: FULLY_PRESENT reads the file, ZERO and NOT_PRESENT read
 * zeros; extents merge across blocks of one kind. */
static void test_dynamic_extents(void **state) {
  (void)state;
  build(img_a, &dyn);
  payload(img_a, &dyn, 0, 6, 3);
  payload(img_a, &dyn, 1, 2, 0);
  vhdup__disk *d;
  vhdup__err err;
  assert_int_equal(open_img(img_a, 4 * MIB, "a.vhdx", NULL, &d, &err), 0);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.format, VHDUP_FORMAT_VHDX);
  assert_int_equal(info.type, VHDUP__DISK_DYNAMIC);
  assert_int_equal(info.virtual_size, 3 * MIB);
  assert_int_equal(info.blocks_allocated, 1);
  assert_int_equal(info.vhdx.header_index, 2);
  assert_int_equal(info.vhdx.chunk_ratio, 4096);
  assert_int_equal(info.footer.uuid[0], 0x83);
  vhdup__extent_iter *it;
  vhdup__extent e;
  assert_int_equal(vhdup__extent_iter_new(d, 0, &it), 0);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.src != NULL && e.virtual_offset == 0 && e.length == MIB &&
              e.file_offset == 3 * MIB);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.src == NULL && e.virtual_offset == MIB && e.length == 2 * MIB);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 0);
  vhdup__extent_iter_free(it);
  vhdup__disk_free(d);
}

/* The valid header with the larger sequence number is current; a torn
 * one is passed over with a warning. */
static void test_header_choice(void **state) {
  (void)state;
  spec s = dyn;
  s.seq1 = 7;
  s.seq2 = 3;
  build(img_a, &s);
  vhdup__disk *d;
  vhdup__err err;
  vhdup__disk_info info;
  assert_int_equal(open_img(img_a, 4 * MIB, "h.vhdx", NULL, &d, &err), 0);
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.vhdx.header_index, 1);
  assert_null(vhdup__disk_warning(d, 0));
  vhdup__disk_free(d);
  img_a[64 * KIB + 100] ^= 1; /* header 1 torn */
  assert_int_equal(open_img(img_a, 4 * MIB, "h.vhdx", NULL, &d, &err), 0);
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.vhdx.header_index, 2);
  assert_non_null(strstr(vhdup__disk_warning(d, 0), "header 1 at offset 65536 is not valid"));
  vhdup__disk_free(d);
  img_a[128 * KIB + 100] ^= 1; /* both torn */
  assert_int_equal(open_img(img_a, 4 * MIB, "h.vhdx", NULL, &d, &err), VHDUP_ECHECKSUM);
  assert_null(d);
  assert_non_null(strstr(err.msg, "h.vhdx: no valid VHDX header"));
}

static void test_region_table_rules(void **state) {
  (void)state;
  build(img_a, &dyn);
  uint8_t *r = img_a + 192 * KIB;
  vhdup__vhdx_regions out;
  vhdup__err err;
  assert_int_equal(vhdup__vhdx_regions_decode(r, 4 * MIB, &out, &err), 0);
  assert_int_equal(out.bat_offset, 2 * MIB);
  assert_int_equal(out.meta_length, MIB);
  /* Past the file. */
  assert_int_equal(vhdup__vhdx_regions_decode(r, 2 * MIB, &out, &err), VHDUP_ETRUNCATED);
  /* Duplicate GUID (checksum repaired so the rule, not the CRC, decides). */
  guid(r + 48, G_BAT);
  vhdup__put_le32(r + 4, vhdup__crc32c_skip(r, 64 * KIB, 4));
  assert_int_equal(vhdup__vhdx_regions_decode(r, 4 * MIB, &out, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "repeats the GUID"));
  /* Overlap. */
  guid(r + 48, G_META);
  vhdup__put_le64(r + 64, 2 * MIB);
  vhdup__put_le32(r + 4, vhdup__crc32c_skip(r, 64 * KIB, 4));
  assert_int_equal(vhdup__vhdx_regions_decode(r, 4 * MIB, &out, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "overlaps entry 0"));
  /* Bad checksum. */
  r[200] = 1;
  assert_int_equal(vhdup__vhdx_regions_decode(r, 4 * MIB, &out, &err), VHDUP_ECHECKSUM);
}

static void test_metadata_rules(void **state) {
  (void)state;
  build(img_a, &dyn);
  uint8_t *m = img_a + MIB;
  vhdup__vhdx_meta_table t;
  vhdup__err err;
  assert_int_equal(vhdup__vhdx_meta_table_decode(m, MIB, &t, &err), 0);
  assert_int_equal(t.length[VHDUP__VHDX_ITEM_PARENT_LOCATOR], 0);
  meta_entry(m, 5, "01234567-89AB-CDEF-0123-456789ABCDEF", 90 * KIB, 8, 4);
  vhdup__put_le16(m + 10, 6);
  assert_int_equal(vhdup__vhdx_meta_table_decode(m, MIB, &t, &err), VHDUP_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "is marked required"));
  meta_entry(m, 5, "01234567-89AB-CDEF-0123-456789ABCDEF", 90 * KIB, 8, 0); /* optional: fine */
  assert_int_equal(vhdup__vhdx_meta_table_decode(m, MIB, &t, &err), 0);
  meta_entry(m, 5, "01234567-89AB-CDEF-0123-456789ABCDEF", 1000 * KIB, 64 * KIB, 0);
  assert_int_equal(vhdup__vhdx_meta_table_decode(m, MIB, &t, &err), VHDUP_EFORMAT);
  meta_entry(m, 5, G_VSIZE, 90 * KIB, 8, 6);
  assert_int_equal(vhdup__vhdx_meta_table_decode(m, MIB, &t, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "repeats the item of entry 1"));
  vhdup__put_le16(m + 10, 4); /* physical sector size missing */
  assert_int_equal(vhdup__vhdx_meta_table_decode(m, MIB, &t, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "physical sector size"));
}

/* Items the whole open refuses: sizes, block size, BAT entries. */
static void test_open_refusals(void **state) {
  (void)state;
  static const struct {
    uint32_t bs, lss;
    uint64_t vsize;
    unsigned state;
    uint64_t off_mib;
    int rc;
    const char *msg;
  } cases[] = {
      {3 * MIB, 512, 3 * MIB, 0, 0, VHDUP_EFORMAT, "block size"},
      {MIB / 2, 512, 3 * MIB, 0, 0, VHDUP_EFORMAT, "block size"},
      {MIB, 4096, 3 * MIB + 512, 0, 0, VHDUP_EFORMAT, "multiple of the logical sector size"},
      {MIB, 1024, 3 * MIB, 0, 0, VHDUP_EFORMAT, "neither 512 nor 4096"},
      {MIB, 512, 3 * MIB, 6, 9, VHDUP_ETRUNCATED, "BAT entry 0 at offset 2097152"},
      {MIB, 512, 3 * MIB, 6, 0, VHDUP_EFORMAT, "inside the header section"},
      {MIB, 512, 3 * MIB, 6, 2, VHDUP_EFORMAT, "overlaps the BAT region"},
      {MIB, 512, 3 * MIB, 5, 0, VHDUP_EFORMAT, "payload state 5 is reserved"},
      {MIB, 512, 3 * MIB, 7, 3, VHDUP_EFORMAT, "PARTIALLY_PRESENT in a disk without a parent"},
      {MIB, 512, 1ull << 45, 0, 0, VHDUP_ELIMIT, "page blob limit"},
      {MIB, 512, 4ull << 40, 0, 0, VHDUP_EFORMAT, "holds 131072 entries"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    spec s = dyn;
    s.bs = cases[i].bs;
    s.lss = cases[i].lss;
    s.vsize = cases[i].vsize;
    build(img_a, &s);
    if (cases[i].state != 0)
      payload(img_a, &s, 0, cases[i].state, cases[i].off_mib);
    vhdup__disk *d;
    vhdup__err err;
    int rc = open_img(img_a, 4 * MIB, "r.vhdx", NULL, &d, &err);
    if (rc != cases[i].rc || strstr(err.msg, cases[i].msg) == NULL ||
        strstr(err.msg, "r.vhdx") == NULL)
      fail_msg("case %zu: rc %d, %s", i, rc, err.msg);
    assert_null(d);
  }
}

typedef struct memfs {
  const char *path;
  const uint8_t *buf;
  size_t len;
} memfs;

static int mem_open(void *ctx, const char *path, vhdup__src *out) {
  memfs *fs = ctx;
  if (strcmp(fs->path, path) != 0)
    return -2;
  vhdup__src_from_buffer(out, fs->path, fs->buf, fs->len);
  return 0;
}

static void mem_close(void *ctx, vhdup__src *src) {
  (void)ctx;
  (void)src;
}

/* Child PARTIALLY_PRESENT over a parent: sectors with their bit set
 * (LSB first) come from the child, the rest from the parent. */
static void test_differencing(void **state) {
  (void)state;
  spec p = dyn, c = dyn;
  p.data_write = 0xaa;
  build(img_b, &p);
  payload(img_b, &p, 0, 6, 3);
  payload(img_b, &p, 1, 6, 4);
  c.flags = 2;
  c.linkage = "{AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA}";
  c.relative = ".\\p.vhdx";
  build(img_a, &c);
  payload(img_a, &c, 0, 7, 3);
  bitmap_entry(img_a, &c, 0, 4);
  img_a[4 * MIB] = 0x05; /* sectors 0 and 2 */
  memfs fs = {"dir/p.vhdx", img_b, 5 * MIB};
  vhdup__parent_io pio = {&fs, mem_open, mem_close};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, NULL, "dir"};
  vhdup__disk *d;
  vhdup__err err;
  assert_int_equal(open_img(img_a, 5 * MIB, "c.vhdx", &opts, &d, &err), 0);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.type, VHDUP__DISK_DIFFERENCING);
  assert_int_equal(info.chain_depth, 2);
  assert_string_equal(vhdup__disk_parent_path(d), "dir/p.vhdx");
  const vhdup__src *cs = vhdup__disk_src(d), *ps = vhdup__disk_src(vhdup__disk_parent(d));
  struct {
    const vhdup__src *src;
    uint64_t off, len, foff;
  } want[] = {{cs, 0, 512, 3 * MIB},
              {ps, 512, 512, 3 * MIB + 512},
              {cs, 1024, 512, 3 * MIB + 1024},
              {ps, 1536, 2 * MIB - 1536, 3 * MIB + 1536},
              {NULL, 2 * MIB, MIB, 0}};
  vhdup__extent_iter *it;
  vhdup__extent e;
  assert_int_equal(vhdup__extent_iter_new(d, 0, &it), 0);
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
    assert_ptr_equal(e.src, want[i].src);
    assert_int_equal(e.virtual_offset, want[i].off);
    assert_int_equal(e.length, want[i].len);
    if (e.src != NULL)
      assert_int_equal(e.file_offset, want[i].foff);
  }
  assert_int_equal(vhdup__extent_next(it, &e, &err), 0);
  vhdup__extent_iter_free(it);
  vhdup__disk_free(d);

  /* The parent written since: its DataWriteGuid no longer matches. */
  memset(img_b + 64 * KIB + 32, 0xbb, 16);
  vhdup__put_le32(img_b + 64 * KIB + 4, vhdup__crc32c_skip(img_b + 64 * KIB, 4 * KIB, 4));
  memset(img_b + 128 * KIB + 32, 0xbb, 16);
  vhdup__put_le32(img_b + 128 * KIB + 4, vhdup__crc32c_skip(img_b + 128 * KIB, 4 * KIB, 4));
  assert_int_equal(open_img(img_a, 5 * MIB, "c.vhdx", &opts, &d, &err), VHDUP_EPARENT);
  assert_non_null(strstr(err.msg, "is not the parent_linkage"));
  /* No way to open parents. */
  assert_int_equal(open_img(img_a, 5 * MIB, "c.vhdx", NULL, &d, &err), VHDUP_EPARENT);
}

/* 4096-byte logical sectors: bitmap bits are 4 KiB each. */
static void test_lss4k_partial(void **state) {
  (void)state;
  spec p = dyn, c = dyn;
  p.lss = c.lss = 4096;
  p.data_write = 0xaa;
  build(img_b, &p);
  payload(img_b, &p, 0, 6, 3);
  c.flags = 2;
  c.linkage = "{aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa}";
  c.relative = "p.vhdx";
  build(img_a, &c);
  payload(img_a, &c, 0, 7, 3);
  bitmap_entry(img_a, &c, 0, 4);
  img_a[4 * MIB] = 0x02; /* sector 1: bytes [4096, 8192) */
  memfs fs = {"p.vhdx", img_b, 4 * MIB};
  vhdup__parent_io pio = {&fs, mem_open, mem_close};
  vhdup__open_opts opts = {VHDUP_FORMAT_VHDX, &pio, NULL, NULL};
  vhdup__disk *d;
  vhdup__err err;
  assert_int_equal(open_img(img_a, 5 * MIB, "c.vhdx", &opts, &d, &err), 0);
  vhdup__extent_iter *it;
  vhdup__extent e;
  assert_int_equal(vhdup__extent_iter_new(d, 0, &it), 0);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.length == 4096 && e.src == vhdup__disk_src(vhdup__disk_parent(d)));
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.length == 4096 && e.src == vhdup__disk_src(d) && e.file_offset == 3 * MIB + 4096);
  vhdup__extent_iter_free(it);
  vhdup__disk_free(d);
}

static void test_locator_decode(void **state) {
  (void)state;
  uint8_t b[512];
  vhdup__vhdx_locator l;
  vhdup__err err;
  memset(b, 0, sizeof(b));
  size_t n = locator(b, "{X}", "a\\b.vhdx");
  assert_int_equal(vhdup__vhdx_locator_decode(b, n, &l, &err), 0);
  assert_string_equal(l.parent_linkage, "{X}");
  assert_string_equal(l.relative_path, "a\\b.vhdx");
  assert_int_equal(vhdup__vhdx_locator_decode(b, n - 2, &l, &err), VHDUP_EFORMAT);
  vhdup__put_le16(b + 18, 40);
  assert_int_equal(vhdup__vhdx_locator_decode(b, n, &l, &err), VHDUP_EFORMAT);
  b[0] ^= 1;
  assert_int_equal(vhdup__vhdx_locator_decode(b, n, &l, &err), VHDUP_EUNSUPPORTED);
}

/* Sets both headers' LogGuid (all bytes g) and log at 5 MiB, 1 MiB long. */
static void dirty(uint8_t *img, uint8_t g) {
  for (uint64_t off = 64 * KIB; off <= 128 * KIB; off += 64 * KIB) {
    uint8_t *h = img + off;
    memset(h + 48, g, 16);
    vhdup__put_le32(h + 68, MIB);
    vhdup__put_le64(h + 72, 5 * MIB);
    vhdup__put_le32(h + 4, vhdup__crc32c_skip(h, 4 * KIB, 4));
  }
}

/* A log entry at log sector s writing one 4 KiB sector at file offset
 * target ([MS-VHDX] 2.3.1): header, one data descriptor, one data sector. */
static void log_entry(uint8_t *img, uint32_t s, uint64_t seq, uint8_t g, uint64_t target,
                      const uint8_t *sector) {
  uint8_t *e = img + 5 * MIB + (size_t)s * 4096;
  memset(e, 0, 8192);
  memcpy(e, "loge", 4);
  vhdup__put_le32(e + 8, 8192);
  vhdup__put_le32(e + 12, 0); /* tail: the first entry */
  vhdup__put_le64(e + 16, seq);
  vhdup__put_le32(e + 24, 1);
  memset(e + 32, g, 16);
  memcpy(e + 64, "desc", 4);
  memcpy(e + 68, sector + 4092, 4);
  memcpy(e + 72, sector, 8);
  vhdup__put_le64(e + 80, target);
  vhdup__put_le64(e + 88, seq);
  uint8_t *d = e + 4096;
  memcpy(d, "data", 4);
  vhdup__put_le32(d + 4, (uint32_t)(seq >> 32));
  memcpy(d + 8, sector + 8, 4084);
  vhdup__put_le32(d + 4092, (uint32_t)seq);
  vhdup__put_le32(e + 4, vhdup__crc32c_skip(e, 8192, 4));
}

/* A dirty log: its BAT write is read, in memory; a torn entry after it is
 * not part of the active sequence; a payload write is refused. */
static void test_log_replay(void **state) {
  (void)state;
  uint8_t sector[4096];
  build(img_a, &dyn);
  payload(img_a, &dyn, 1, 6, 3);
  memcpy(sector, img_a + 2 * MIB, 4096); /* the BAT's first sector, as it should be */
  memset(img_a + 2 * MIB, 0, 4096);      /* and as the file holds it */
  dirty(img_a, 0x10);
  log_entry(img_a, 0, 40, 0x10, 2 * MIB, sector);
  vhdup__disk *d;
  vhdup__err err;
  assert_int_equal(open_img(img_a, 6 * MIB, "l.vhdx", NULL, &d, &err), 0);
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.blocks_allocated, 1);
  assert_int_equal(info.vhdx.log_entries_replayed, 1);
  assert_non_null(strstr(vhdup__disk_warning(d, 0), "replayed in memory"));
  assert_int_equal(img_a[2 * MIB + 8], 0); /* the buffer is untouched */
  vhdup__disk_free(d);

  memset(sector, 0, sizeof(sector)); /* a later entry, torn, clears the BAT */
  log_entry(img_a, 2, 41, 0x10, 2 * MIB, sector);
  img_a[5 * MIB + 2 * 4096 + 5000] ^= 1;
  assert_int_equal(open_img(img_a, 6 * MIB, "l.vhdx", NULL, &d, &err), 0);
  vhdup__disk_get_info(d, &info);
  assert_int_equal(info.blocks_allocated, 1);
  vhdup__disk_free(d);

  dirty(img_a, 0x11); /* no entry carries this LogGuid */
  assert_int_equal(open_img(img_a, 6 * MIB, "l.vhdx", NULL, &d, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "log at offset 5242880: no valid sequence"));
}

/* One extent: where, how long, and of which kind (0 zeros, 1 file, 2
 * memory). */
static void expect_extent(vhdup__extent_iter *it, uint64_t voff, uint64_t len, int kind) {
  vhdup__extent e;
  vhdup__err err;
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  int got = e.src == NULL ? 0 : e.mem == NULL ? 1 : 2;
  if (e.virtual_offset != voff || e.length != len || got != kind)
    print_error("extent %llu+%llu kind %d\n", (unsigned long long)e.virtual_offset,
                (unsigned long long)e.length, got);
  assert_true(e.virtual_offset == voff && e.length == len && got == kind);
}

/* A log that writes payload data: its bytes are handed out from memory,
 * in order with the file's, the later of two writes to one place winning
 * ([MS-VHDX] 2.3.3: entries are replayed in sequence order). */
static void test_log_payload(void **state) {
  (void)state;
  uint8_t sector[4096], later[4096];
  build(img_a, &dyn);
  payload(img_a, &dyn, 1, 6, 3); /* block 1 at 3 MiB */
  memset(img_a + 3 * MIB, 0xee, MIB);
  for (size_t i = 0; i < sizeof(sector); i++) {
    sector[i] = (uint8_t)(i * 7 + 1);
    later[i] = (uint8_t)(i * 13 + 5);
  }
  dirty(img_a, 0x10);
  log_entry(img_a, 0, 40, 0x10, 3 * MIB + 8192, sector);
  log_entry(img_a, 2, 41, 0x10, 3 * MIB + 12288, sector);
  log_entry(img_a, 4, 42, 0x10, 3 * MIB + 8192, later);
  vhdup__disk *d;
  vhdup__err err;
  assert_int_equal(open_img(img_a, 6 * MIB, "p.vhdx", NULL, &d, &err), 0);
  vhdup__extent_iter *it;
  assert_int_equal(vhdup__extent_iter_new(d, 0, &it), 0);
  expect_extent(it, 0, MIB, 0);
  expect_extent(it, MIB, 8192, 1);
  /* Two data sectors apart in the log: two memory extents. */
  vhdup__extent e;
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.virtual_offset == MIB + 8192 && e.length == 4096 && e.mem != NULL);
  assert_int_equal(e.file_offset, 3 * MIB + 8192);
  assert_memory_equal(e.mem, later, 4096);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.virtual_offset == MIB + 12288 && e.length == 4096 && e.mem != NULL);
  assert_memory_equal(e.mem, sector, 4096);
  expect_extent(it, MIB + 16384, MIB - 16384, 1);
  expect_extent(it, 2 * MIB, MIB, 0);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 0);
  vhdup__extent_iter_free(it);
  /* Cut at 512 bytes: memory extents are cut too, and stay in order. */
  assert_int_equal(vhdup__extent_iter_new(d, 512, &it), 0);
  for (uint64_t v = 0; v < MIB + 8192; v += 512)
    assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.length == 512 && e.mem != NULL && e.mem[0] == later[0]);
  assert_int_equal(vhdup__extent_next(it, &e, &err), 1);
  assert_true(e.length == 512 && e.mem != NULL && e.mem[0] == later[512]);
  vhdup__extent_iter_free(it);
  vhdup__disk_free(d);
  assert_int_equal(img_a[3 * MIB + 8192], 0xee); /* the buffer is untouched */
}

/* The format is chosen by content; VHD is not taken for VHDX. */
static void test_format_choice(void **state) {
  (void)state;
  build(img_a, &dyn);
  vhdup__disk *d;
  vhdup__err err;
  vhdup__open_opts vhd = {VHDUP_FORMAT_VHD, NULL, NULL, NULL};
  assert_int_equal(open_img(img_a, 4 * MIB, "a.vhdx", &vhd, &d, &err), VHDUP_EFORMAT);
  vhdup__open_opts raw = {VHDUP_FORMAT_RAW, NULL, NULL, NULL};
  assert_int_equal(open_img(img_a, 4 * MIB, "a.vhdx", &raw, &d, &err), 0);
  vhdup__disk_free(d);
  img_a[7] = 'E';
  vhdup__open_opts x = {VHDUP_FORMAT_VHDX, NULL, NULL, NULL};
  assert_int_equal(open_img(img_a, 4 * MIB, "a.vhdx", &x, &d, &err), VHDUP_EFORMAT);
  assert_non_null(strstr(err.msg, "not 'vhdxfile'"));
  assert_int_equal(open_img(img_a, 100, "a.vhdx", &x, &d, &err), VHDUP_ETRUNCATED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_guid_text),
      cmocka_unit_test(test_dynamic_extents),
      cmocka_unit_test(test_header_choice),
      cmocka_unit_test(test_region_table_rules),
      cmocka_unit_test(test_metadata_rules),
      cmocka_unit_test(test_open_refusals),
      cmocka_unit_test(test_differencing),
      cmocka_unit_test(test_lss4k_partial),
      cmocka_unit_test(test_locator_decode),
      cmocka_unit_test(test_format_choice),
      cmocka_unit_test(test_log_replay),
      cmocka_unit_test(test_log_payload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
