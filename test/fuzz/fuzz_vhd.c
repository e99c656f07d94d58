/* Fuzzes the VHD reader: the first 4 bytes (big-endian) give the child's
 * length, the child follows, and whatever remains is offered as the parent
 * for any path a differencing disk asks for, so whole chains are fuzzed.
 * The length's top bits are flags: bit 31 makes the harness repair the
 * checksums of both images' footers (end and copy at 0) and dynamic
 * headers first, so mutations get past the checksums into the structure;
 * bit 30 names the child "fuzz.img" (so raw is allowed); bit 29 passes a
 * parent override; bits 28-27 pick max_len (64 KiB, 512, 4 KiB, none). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/be.h"
#include "vhd/vhd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct parent_buf {
  const uint8_t *data;
  size_t len;
} parent_buf;

static int open_parent(void *ctx, const char *path, vhdup__src *out) {
  const parent_buf *p = ctx;
  if (strstr(path, "missing") != NULL)
    return -2;
  vhdup__src_from_buffer(out, "parent.vhd", p->data, p->len);
  return 0;
}

static void close_parent(void *ctx, vhdup__src *src) {
  (void)ctx;
  (void)src;
}

static void fix_footer(uint8_t *img, size_t len, size_t off) {
  if (off + 512 <= len && memcmp(img + off, "conectix", 8) == 0)
    vhdup__put_be32(img + off + 64, vhdup__vhd_checksum(img + off, 512, 64));
}

static void fix_checksums(uint8_t *img, size_t len) {
  if (len < 512)
    return;
  fix_footer(img, len, 0);
  fix_footer(img, len, len - 512);
  const uint8_t *f = memcmp(img + len - 512, "conectix", 8) == 0 ? img + len - 512 : img;
  uint64_t h = vhdup__be64(f + 16);
  if (h < len && len - h >= 1024 && memcmp(img + h, "cxsparse", 8) == 0)
    vhdup__put_be32(img + h + 36, vhdup__vhd_checksum(img + h, 1024, 36));
}

static void run(const uint8_t *data, size_t size, size_t clen, uint32_t flags) {
  static const uint64_t max_lens[] = {64 * 1024, 512, 4096, 0};
  uint64_t max_len = max_lens[(flags >> 27) & 3];
  parent_buf pb = {data + clen, size - clen};
  vhdup__parent_io pio = {&pb, open_parent, close_parent};
  vhdup__open_opts opts = {VHDUP_FORMAT_AUTO, &pio, (flags & (1u << 29)) ? "over.vhd" : NULL,
                           "dir"};
  vhdup__src src;
  vhdup__src_from_buffer(&src, (flags & (1u << 30)) ? "fuzz.img" : "fuzz.vhd", data, clen);
  vhdup__disk *d = NULL;
  vhdup__err err;
  if (vhdup__disk_open(&src, &opts, &d, &err) != 0) {
    if (d != NULL || strstr(err.msg, src.name) == NULL)
      __builtin_trap();
    return;
  }
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  if (info.virtual_size == 0 || info.virtual_size % 512 != 0)
    __builtin_trap();
  for (size_t i = 0; vhdup__disk_warning(d, i) != NULL; i++)
    (void)strlen(vhdup__disk_warning(d, i));
  vhdup__extent_iter *it = NULL;
  if (vhdup__extent_iter_new(d, max_len, &it) == 0) {
    vhdup__extent e;
    uint64_t next = 0;
    int rc;
    /* Bounded so a huge sparse virtual size cannot stall the fuzzer. */
    for (unsigned n = 0; n < 4096 && (rc = vhdup__extent_next(it, &e, &err)) == 1; n++) {
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
  vhdup__disk_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  uint32_t word = vhdup__be32(data);
  size_t clen = word & 0x07ffffffu;
  data += 4;
  size -= 4;
  if (clen > size)
    clen = size;
  if (!(word & 0x80000000u)) {
    run(data, size, clen, word);
    return 0;
  }
  uint8_t *copy = malloc(size ? size : 1);
  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  fix_checksums(copy, clen);
  fix_checksums(copy + clen, size - clen);
  run(copy, size, clen, word);
  free(copy);
  return 0;
}
