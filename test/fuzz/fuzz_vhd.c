/* Fuzzes the VHD reader: the first 4 bytes (big-endian) give the child's
 * length, the child follows, and whatever remains is offered as the parent
 * for any path a differencing disk asks for, so whole chains are fuzzed. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  size_t clen =
      ((size_t)data[0] << 24) | ((size_t)data[1] << 16) | ((size_t)data[2] << 8) | data[3];
  data += 4;
  size -= 4;
  if (clen > size)
    clen = size;
  parent_buf pb = {data + clen, size - clen};
  vhdup__parent_io pio = {&pb, open_parent, close_parent};
  vhdup__open_opts opts = {VHDUP__FMT_AUTO, &pio, NULL, "dir"};
  vhdup__src src;
  vhdup__src_from_buffer(&src, "fuzz.vhd", data, clen);
  vhdup__disk *d = NULL;
  vhdup__err err;
  if (vhdup__disk_open(&src, &opts, &d, &err) != 0)
    return 0;
  vhdup__disk_info info;
  vhdup__disk_get_info(d, &info);
  for (size_t i = 0; vhdup__disk_warning(d, i) != NULL; i++)
    (void)strlen(vhdup__disk_warning(d, i));
  vhdup__extent_iter *it = NULL;
  if (vhdup__extent_iter_new(d, 64 * 1024, &it) == 0) {
    vhdup__extent e;
    uint64_t next = 0;
    int rc;
    /* Bounded so a huge sparse virtual size cannot stall the fuzzer. */
    for (unsigned n = 0; n < 4096 && (rc = vhdup__extent_next(it, &e, &err)) == 1; n++) {
      if (e.virtual_offset != next || e.length == 0 || e.length % 512 != 0 || e.length > 64 * 1024)
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
  return 0;
}
