/* Fuzzes the VHDX reader. A VHDX puts its structures at MiB offsets, so an
 * input describes sparse images rather than holding them: byte 0 holds
 * flags, then the child and (optionally) the parent, each as a 32-bit
 * little-endian file size in KiB, a piece count (one byte), and that many
 * pieces (32-bit offset, 16-bit length, the bytes); everything else reads
 * as zeros. Flags: bit 0 repairs the CRC-32C of both headers and both
 * region tables of each image ([MS-VHDX] 2.2.2, 2.2.3) so mutations get
 * past the checksums into the structure; bit 1 passes a parent override;
 * bits 2-3 pick max_len (64 KiB, 512, 4 KiB, none). The parent is offered
 * for any path a differencing disk asks for, except one naming "missing". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/crc32c.h"
#include "util/le.h"
#include "vhd/vhd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PIECES 255

typedef struct piece {
  uint64_t off;
  const uint8_t *data;
  size_t len;
} piece;

typedef struct sparse {
  uint64_t size;
  piece p[MAX_PIECES];
  size_t n;
  uint8_t fix[4][4]; /* repaired checksums, applied over the pieces */
  uint64_t fix_off[4];
  int nfix;
} sparse;

static void overlay(uint64_t off, uint8_t *buf, size_t len, uint64_t at, const uint8_t *d,
                    size_t n) {
  if (at >= off + len || at + n <= off)
    return;
  uint64_t lo = at > off ? at : off, hi = at + n < off + len ? at + n : off + len;
  memcpy(buf + (lo - off), d + (lo - at), (size_t)(hi - lo));
}

static int sparse_read(const vhdup__src *src, uint64_t off, void *buf, size_t len) {
  const sparse *s = src->ctx;
  if (off > s->size || len > s->size - off)
    return VHDUP_ETRUNCATED;
  memset(buf, 0, len);
  for (size_t i = 0; i < s->n; i++)
    overlay(off, buf, len, s->p[i].off, s->p[i].data, s->p[i].len);
  for (int i = 0; i < s->nfix; i++)
    overlay(off, buf, len, s->fix_off[i], s->fix[i], 4);
  return 0;
}

static void as_src(sparse *s, vhdup__src *src, const char *name) {
  src->ctx = s;
  src->name = name;
  src->size = s->size;
  src->read = sparse_read;
}

/* Parses one image; returns the bytes consumed, 0 when there is none. */
static size_t parse(const uint8_t *d, size_t n, sparse *s) {
  memset(s, 0, sizeof(*s));
  if (n < 5)
    return 0;
  s->size = (uint64_t)vhdup__le32(d) * 1024;
  size_t count = d[4], at = 5;
  for (size_t i = 0; i < count && n - at >= 6; i++) {
    size_t len = vhdup__le16(d + at + 4);
    if (len > n - at - 6)
      len = n - at - 6;
    s->p[s->n++] = (piece){vhdup__le32(d + at), d + at + 6, len};
    at += 6 + len;
  }
  return at;
}

static void repair(sparse *s) {
  static uint8_t buf[64 * 1024];
  static const struct {
    uint64_t off;
    size_t len;
    const char *sig;
  } parts[] = {{64 * 1024, 4096, "head"},
               {128 * 1024, 4096, "head"},
               {192 * 1024, 65536, "regi"},
               {256 * 1024, 65536, "regi"}};
  vhdup__src src;
  as_src(s, &src, "x");
  for (size_t i = 0; i < 4; i++) {
    if (sparse_read(&src, parts[i].off, buf, parts[i].len) != 0 ||
        memcmp(buf, parts[i].sig, 4) != 0)
      continue;
    vhdup__put_le32(s->fix[s->nfix], vhdup__crc32c_skip(buf, parts[i].len, 4));
    s->fix_off[s->nfix++] = parts[i].off + 4;
  }
}

static int open_parent(void *ctx, const char *path, vhdup__src *out) {
  sparse *p = ctx;
  if (strstr(path, "missing") != NULL || p->size == 0)
    return -2;
  as_src(p, out, "parent.vhdx");
  return 0;
}

static void close_parent(void *ctx, vhdup__src *src) {
  (void)ctx;
  (void)src;
}

static void walk(const vhdup__disk *d, uint64_t max_len) {
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  if (info.virtual_size == 0 || info.virtual_size % 512 != 0)
    __builtin_trap();
  vhdup__extent_iter *it = NULL;
  if (vhdup__extent_iter_new(d, max_len, &it) != 0)
    return;
  vhdup__extent e;
  vhdup__err err;
  uint64_t next = 0;
  /* Bounded so a huge sparse virtual size cannot stall the fuzzer. */
  for (unsigned n = 0; n < 4096 && vhdup__extent_next(it, &e, &err) == 1; n++) {
    if (e.virtual_offset != next || e.length == 0 || e.length % 512 != 0 ||
        (max_len != 0 && e.length > max_len) || e.virtual_offset + e.length > info.virtual_size)
      __builtin_trap();
    next += e.length;
    if (e.src != NULL) {
      uint8_t buf[16];
      size_t len = e.length < sizeof(buf) ? (size_t)e.length : sizeof(buf);
      if (e.src->read(e.src, e.file_offset, buf, len) != 0 ||
          e.src->read(e.src, e.file_offset + e.length - len, buf, len) != 0)
        __builtin_trap();
    }
  }
  vhdup__extent_iter_free(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint64_t max_lens[] = {64 * 1024, 512, 4096, 0};
  static sparse child, parent;
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  size_t used = parse(data + 1, size - 1, &child);
  parse(data + 1 + used, size - 1 - used, &parent);
  if (flags & 1) {
    repair(&child);
    repair(&parent);
  }
  vhdup__parent_io pio = {&parent, open_parent, close_parent};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, (flags & 2) ? "over.vhdx" : NULL, "dir"};
  vhdup__src src;
  as_src(&child, &src, "fuzz.vhdx");
  vhdup__disk *d = NULL;
  vhdup__err err;
  if (vhdup__disk_open(&src, &opts, &d, &err) != 0) {
    if (d != NULL || strstr(err.msg, "fuzz.vhdx") == NULL)
      __builtin_trap();
    return 0;
  }
  for (size_t i = 0; vhdup__disk_warning(d, i) != NULL; i++)
    (void)strlen(vhdup__disk_warning(d, i));
  walk(d, max_lens[(flags >> 2) & 3]);
  vhdup__disk_free(d);
  return 0;
}
