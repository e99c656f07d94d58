/* Opening and validating a disk: footer (and its copy at 0), dynamic header,
 * BAT bounds and overlaps, parent chain through the locators. Everything is
 * checked here, before a single extent is handed out, and nothing is
 * allocated in proportion to what a header claims until that claim has been
 * measured against the real file size. */
#include "vhd/vhd_int.h"

#include "util/alloc.h"
#include "util/be.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNALLOCATED 0xffffffffu
/* A parent path longer than this (UTF-16 bytes) is hostile, not a path. */
#define MAX_LOCATOR_BYTES 65536u

static const char *src_name(const vhdup__src *src) {
  return src->name != NULL ? src->name : "(unnamed)";
}

int vhdup__disk_read(const vhdup__src *src, uint64_t off, void *buf, size_t len, const char *what,
                     vhdup__err *err) {
  int rc = src->read(src, off, buf, len);
  if (rc == VHDUP_ETRUNCATED)
    return vhdup__errf(err, rc,
                       "%s: %s at offset %" PRIu64 ": file is truncated (size %" PRIu64
                       ", need %zu bytes)",
                       src_name(src), what, off, src->size, len);
  if (rc < 0)
    return vhdup__errf(err, rc, "%s: %s at offset %" PRIu64 ": read of %zu bytes failed (error %d)",
                       src_name(src), what, off, len, rc);
  return 0;
}

void vhdup__disk_warn(vhdup__disk *d, const char *fmt, ...) {
  if (d->nwarnings >= VHDUP__VHD_MAX_WARNINGS)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->warnings[d->nwarnings++], VHDUP__VHD_WARNING_LEN, fmt, ap);
  va_end(ap);
}

static int has_raw_name(const char *name) {
  static const char *const exts[] = {".raw", ".img", ".bin"};
  size_t n = name != NULL ? strlen(name) : 0;
  if (n < 4)
    return 0;
  for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
    int same = 1;
    for (size_t j = 0; j < 4; j++) {
      char c = name[n - 4 + j];
      if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
      if (c != exts[i][j])
        same = 0;
    }
    if (same)
      return 1;
  }
  return 0;
}

static void uuid_str(const uint8_t u[16], char out[37]) {
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
           u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
           u[15]);
}

/* UTF-16 code units to UTF-8, stopping at a NUL; unpaired surrogates become
 * U+FFFD. out always ends up NUL-terminated. */
static void utf16_to_utf8(const uint16_t *u, size_t n, char *out, size_t cap) {
  size_t w = 0;
  for (size_t i = 0; i < n && u[i] != 0; i++) {
    uint32_t c = u[i];
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < n && u[i + 1] >= 0xdc00 && u[i + 1] < 0xe000) {
      c = 0x10000 + ((c - 0xd800) << 10) + (u[i + 1] - 0xdc00u);
      i++;
    } else if (c >= 0xd800 && c < 0xe000) {
      c = 0xfffd;
    }
    uint8_t b[4];
    size_t k;
    if (c < 0x80) {
      b[0] = (uint8_t)c;
      k = 1;
    } else if (c < 0x800) {
      b[0] = (uint8_t)(0xc0 | (c >> 6));
      b[1] = (uint8_t)(0x80 | (c & 0x3f));
      k = 2;
    } else if (c < 0x10000) {
      b[0] = (uint8_t)(0xe0 | (c >> 12));
      b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
      b[2] = (uint8_t)(0x80 | (c & 0x3f));
      k = 3;
    } else {
      b[0] = (uint8_t)(0xf0 | (c >> 18));
      b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
      b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
      b[3] = (uint8_t)(0x80 | (c & 0x3f));
      k = 4;
    }
    if (w + k + 1 > cap)
      break;
    memcpy(out + w, b, k);
    w += k;
  }
  out[w] = '\0';
}

static int is_dynamic(uint32_t type) {
  return type == VHDUP__DISK_DYNAMIC || type == VHDUP__DISK_DIFFERENCING;
}

/* What qemu's vpc driver would take as the size: the current size for the
 * creators it trusts (Hyper-V's "win ", its own "qem2", and "d2v ",
 * "CTXS", "tap\0") or a maximal geometry, the CHS product otherwise — seen
 * with Debian 12's qemu-img 7.2: creators "vpc " and "vhdp" read by CHS,
 * "win " and "qem2" by the current size. */
static int qemu_trusts_current_size(const vhdup__footer *f) {
  static const char trusted[][4] = {{'w', 'i', 'n', ' '},
                                    {'q', 'e', 'm', '2'},
                                    {'d', '2', 'v', ' '},
                                    {'C', 'T', 'X', 'S'},
                                    {'t', 'a', 'p', '\0'}};
  for (size_t i = 0; i < sizeof(trusted) / sizeof(trusted[0]); i++)
    if (memcmp(f->creator_app, trusted[i], 4) == 0)
      return 1;
  return 0;
}

uint64_t vhdup__qemu_virtual_size(const vhdup__footer *f) {
  uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors_per_track * VHDUP__SECTOR;
  int max_chs = f->cylinders == 65535 && f->heads == 16 && f->sectors_per_track == 255;
  return qemu_trusts_current_size(f) || max_chs ? f->current_size : chs;
}

static void size_warnings(vhdup__disk *d, const vhdup__footer *f, uint64_t footer_off) {
  const char *name = src_name(&d->src);
  uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors_per_track * VHDUP__SECTOR;
  int chs_creator = !qemu_trusts_current_size(f);
  int max_chs = f->cylinders == 65535 && f->heads == 16 && f->sectors_per_track == 255;
  char app[5];
  for (int i = 0; i < 4; i++)
    app[i] =
        (f->creator_app[i] >= 0x20 && f->creator_app[i] < 0x7f) ? (char)f->creator_app[i] : '?';
  app[4] = '\0';
  /* Only worth saying when qemu would read a different size than Azure. */
  if (chs != f->current_size && chs_creator && !max_chs)
    vhdup__disk_warn(d,
                     "%s: footer at offset %" PRIu64 ": CHS geometry %u/%u/%u gives %" PRIu64
                     " bytes, not the current size %" PRIu64
                     "; vhdup (like Azure) uses the current size, "
                     "qemu would take %" PRIu64 " bytes (creator '%s')",
                     name, footer_off, f->cylinders, f->heads, f->sectors_per_track, chs,
                     f->current_size, chs, app);
  if (f->original_size != f->current_size)
    vhdup__disk_warn(
        d,
        "%s: footer at offset %" PRIu64 ": original size %" PRIu64 " differs from the current "
        "size %" PRIu64
        " (the disk was resized); vhdup uses the current size, qemu would take %" PRIu64 " bytes",
        name, footer_off, f->original_size, f->current_size,
        chs_creator && !max_chs ? chs : f->current_size);
}

/* Finds and checks the footer. Sets *raw when the file is to be taken as a
 * raw image, else fills f, *footer_off and *data_limit (where the data area
 * ends: the trailing footer's offset, or the file size after a recovery). */
static int find_footer(vhdup__disk *d, vhdup_format fmt, vhdup__footer *f, uint64_t *footer_off,
                       uint64_t *data_limit, int *raw, vhdup__err *err) {
  const vhdup__src *src = &d->src;
  const char *name = src_name(src);
  uint64_t size = src->size;
  uint8_t end[VHDUP__FOOTER_SIZE], head[VHDUP__FOOTER_SIZE];
  vhdup__err end_err, head_err;
  int end_rc = VHDUP_EFORMAT, head_rc = VHDUP_EFORMAT, rc;
  int end_cookie = 0, head_cookie = 0;
  uint64_t end_off = 0;
  vhdup__footer head_f;

  *raw = 0;
  if (size == 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "%s: file is empty", name);
  if (fmt == VHDUP_FORMAT_RAW)
    goto take_raw;

  vhdup__err_clear(&end_err);
  vhdup__err_clear(&head_err);
  if (size >= VHDUP__FOOTER_SIZE) {
    /* Old Virtual PC versions wrote a 511-byte footer on fixed disks (the
     * spec notes it): a file one byte short of a sector is tried that way. */
    size_t flen = size % VHDUP__SECTOR == 511 ? 511 : VHDUP__FOOTER_SIZE;
    end_off = size - flen;
    memset(end, 0, sizeof(end));
    if ((rc = vhdup__disk_read(src, end_off, end, flen, "footer", err)) < 0)
      return rc;
    end_cookie = memcmp(end, "conectix", 8) == 0;
    end_rc = vhdup__footer_decode(end, f, &end_err);
    if (end_rc == 0 && flen == 511 && f->disk_type != VHDUP__DISK_FIXED) {
      end_rc = vhdup__errf(&end_err, VHDUP_EFORMAT,
                           "a 511-byte footer is only valid on a fixed disk, this one has type %u",
                           f->disk_type);
    }
    if ((rc = vhdup__disk_read(src, 0, head, sizeof(head), "footer copy", err)) < 0)
      return rc;
    head_cookie = memcmp(head, "conectix", 8) == 0;
    if (end_off != 0)
      head_rc = vhdup__footer_decode(head, &head_f, &head_err);
  } else if (size >= 8) {
    uint8_t c[8];
    if ((rc = vhdup__disk_read(src, 0, c, 8, "footer copy", err)) < 0)
      return rc;
    head_cookie = memcmp(c, "conectix", 8) == 0;
  }

  if (end_rc == 0) {
    *footer_off = end_off;
    *data_limit = end_off;
    if (is_dynamic(f->disk_type) && end_off != 0) {
      if (head_rc != 0)
        vhdup__disk_warn(
            d,
            "%s: footer copy at offset 0 is damaged (%s); the footer at offset %" PRIu64 " is used",
            name, head_err.msg, end_off);
      else if (memcmp(head, end, VHDUP__FOOTER_SIZE) != 0)
        vhdup__disk_warn(d,
                         "%s: footer copy at offset 0 differs from the footer at offset %" PRIu64
                         "; the latter is used",
                         name, end_off);
    }
    return 0;
  }
  if (head_rc == 0 && is_dynamic(head_f.disk_type)) {
    /* The spec keeps a footer copy at 0 on dynamic disks precisely so a
     * damaged end (a crash while appending a block) can be recovered. */
    *f = head_f;
    *footer_off = 0;
    *data_limit = size;
    d->info.footer_recovered = 1;
    vhdup__disk_warn(
        d, "%s: footer at offset %" PRIu64 " is damaged (%s); recovered from the copy at offset 0",
        name, end_off, end_err.msg);
    return 0;
  }
  if (end_cookie || head_cookie || fmt == VHDUP_FORMAT_VHD || !has_raw_name(src->name)) {
    if (size < VHDUP__FOOTER_SIZE)
      return vhdup__errf(err, head_cookie ? VHDUP_ETRUNCATED : VHDUP_EFORMAT,
                         "%s: file size %" PRIu64 " is too small for a VHD (512-byte footer)%s",
                         name, size, head_cookie ? " though it starts with 'conectix'" : "");
    char copy[VHDUP__ERRMSG_MAX / 2];
    copy[0] = '\0';
    if (head_cookie && end_off != 0 && head_rc != 0)
      snprintf(copy, sizeof(copy), "; the copy at offset 0 is damaged too: %.400s", head_err.msg);
    else if (head_cookie && end_off != 0)
      snprintf(copy, sizeof(copy),
               "; the copy at offset 0 has disk type %" PRIu32
               ", not a dynamic or differencing disk's",
               head_f.disk_type);
    if (end_cookie || head_cookie)
      return vhdup__errf(err,
                         end_cookie     ? end_rc
                         : head_rc != 0 ? head_rc
                                        : VHDUP_EFORMAT,
                         "%s: footer at offset %" PRIu64 ": %s%s", name, end_off, end_err.msg,
                         copy);
    if (size % VHDUP__SECTOR != 0)
      return vhdup__errf(err, VHDUP_EFORMAT,
                         "%s: file size %" PRIu64 " is not a multiple of 512 and the footer at "
                         "offset %" PRIu64 " has %s; not a VHD",
                         name, size, end_off, end_err.msg);
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: footer at offset %" PRIu64 ": %s; not a VHD (a raw image needs a "
                       ".raw/.img/.bin name or the raw format)",
                       name, end_off, end_err.msg);
  }

take_raw:
  if (size % VHDUP__SECTOR != 0)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: raw image: file size %" PRIu64 " is not a multiple of 512", name, size);
  if (size > VHDUP__MAX_VIRTUAL_SIZE)
    return vhdup__errf(err, VHDUP_ELIMIT,
                       "%s: raw image: file size %" PRIu64 " exceeds the page blob limit %" PRIu64,
                       name, size, (uint64_t)VHDUP__MAX_VIRTUAL_SIZE);
  *raw = 1;
  return 0;
}

typedef struct region {
  uint64_t start, end;
  uint32_t entry; /* BAT index, or UNALLOCATED for metadata */
  const char *what;
} region;

static int region_cmp(const void *a, const void *b) {
  const region *x = a, *y = b;
  if (x->start != y->start)
    return x->start < y->start ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static void describe(const region *r, uint64_t table_offset, char *out, size_t cap) {
  if (r->entry == UNALLOCATED)
    snprintf(out, cap, "the %s [%" PRIu64 ", %" PRIu64 ")", r->what, r->start, r->end);
  else
    snprintf(out, cap,
             "BAT entry %" PRIu32 " (at offset %" PRIu64 ", block at [%" PRIu64 ", %" PRIu64 "))",
             r->entry, table_offset + (uint64_t)4 * r->entry, r->start, r->end);
}

/* Reads and checks the dynamic header and the BAT. */
static int open_dynamic(vhdup__disk *d, const vhdup__footer *f, uint64_t data_limit,
                        vhdup__err *err) {
  const vhdup__src *src = &d->src;
  const char *name = src_name(src);
  vhdup__dynhdr *h = &d->info.header;
  uint8_t buf[VHDUP__DYNHDR_SIZE];
  vhdup__err sub;
  uint64_t hoff = f->data_offset;
  int rc;

  if (hoff > data_limit || data_limit - hoff < VHDUP__DYNHDR_SIZE)
    return vhdup__errf(err, VHDUP_ETRUNCATED,
                       "%s: footer: data offset %" PRIu64 " leaves no room for the 1024-byte "
                       "dynamic header before offset %" PRIu64,
                       name, hoff, data_limit);
  if ((rc = vhdup__disk_read(src, hoff, buf, sizeof(buf), "dynamic header", err)) < 0)
    return rc;
  if ((rc = vhdup__dynhdr_decode(buf, h, &sub)) < 0)
    return vhdup__errf(err, rc, "%s: dynamic header at offset %" PRIu64 ": %s", name, hoff,
                       sub.msg);
  uint32_t bs = h->block_size;
  if (bs == 0 || (bs & (bs - 1)) != 0 || bs < VHDUP__SECTOR)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: dynamic header at offset %" PRIu64 ": block size %" PRIu32
                       " (byte %" PRIu64 ") is not a power of two of at least 512",
                       name, hoff, bs, hoff + 32);
  uint64_t vsize = f->current_size;
  uint64_t needed = (vsize + bs - 1) / bs;
  if (h->max_table_entries < needed)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: dynamic header at offset %" PRIu64 ": max table entries %" PRIu32
                       " (byte %" PRIu64 ") is less than the %" PRIu64 " blocks of %" PRIu32
                       " bytes the current size %" PRIu64 " needs",
                       name, hoff, h->max_table_entries, hoff + 28, needed, bs, vsize);
  uint64_t toff = h->table_offset;
  uint64_t tlen = 4ull * h->max_table_entries;
  /* Measured against the file before anything is allocated for it. */
  if (toff > data_limit || data_limit - toff < tlen)
    return vhdup__errf(err, VHDUP_ETRUNCATED,
                       "%s: dynamic header at offset %" PRIu64 ": BAT at table offset %" PRIu64
                       " (%" PRIu32 " entries, %" PRIu64 " bytes) runs past the end of the data "
                       "at offset %" PRIu64 " (file size %" PRIu64 ")",
                       name, hoff, toff, h->max_table_entries, tlen, data_limit, src->size);

  d->info.block_size = bs;
  d->info.max_table_entries = h->max_table_entries;
  d->bat_len = (uint32_t)needed;
  uint64_t spb = bs / VHDUP__SECTOR;
  d->bitmap_size = (uint32_t)(((spb + 7) / 8 + VHDUP__SECTOR - 1) / VHDUP__SECTOR * VHDUP__SECTOR);

  d->bat = vhdup__malloc((size_t)needed * 4);
  if (d->bat == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for a BAT of %" PRIu64 " entries", name,
                       needed);
  if ((rc = vhdup__disk_read(src, toff, d->bat, (size_t)needed * 4, "BAT", err)) < 0)
    return rc;
  size_t nalloc = 0;
  for (size_t i = 0; i < needed; i++) {
    const uint8_t *p = (const uint8_t *)d->bat + 4 * i;
    uint32_t v = vhdup__be32(p);
    d->bat[i] = v;
    if (v == UNALLOCATED)
      continue;
    nalloc++;
    uint64_t boff = (uint64_t)v * VHDUP__SECTOR;
    uint64_t dlen = vsize - (uint64_t)i * bs < bs ? vsize - (uint64_t)i * bs : bs;
    uint64_t blen = d->bitmap_size + dlen;
    if (boff > data_limit || data_limit - boff < blen)
      return vhdup__errf(err, VHDUP_ETRUNCATED,
                         "%s: BAT entry %zu at offset %" PRIu64 ": block at file offset %" PRIu64
                         " (%" PRIu64 " bytes with its bitmap) runs past the end of the data at "
                         "offset %" PRIu64 " (file size %" PRIu64 ")",
                         name, i, toff + 4 * i, boff, blen, data_limit, src->size);
  }
  d->info.blocks_allocated = (uint32_t)nalloc;

  /* Overlaps: the allocated blocks and the metadata, sorted by offset; each
   * must end before the next begins. */
  size_t nreg = nalloc + 3;
  region *regs = vhdup__malloc(nreg * sizeof(*regs));
  if (regs == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory to check %zu BAT entries", name, nalloc);
  size_t k = 0;
  uint64_t bytes = 0;
  regs[k++] = (region){0, VHDUP__FOOTER_SIZE, UNALLOCATED, "footer copy"};
  regs[k++] = (region){hoff, hoff + VHDUP__DYNHDR_SIZE, UNALLOCATED, "dynamic header"};
  regs[k++] = (region){toff, toff + tlen, UNALLOCATED, "BAT"};
  for (size_t i = 0; i < needed; i++) {
    if (d->bat[i] == UNALLOCATED)
      continue;
    uint64_t boff = (uint64_t)d->bat[i] * VHDUP__SECTOR;
    uint64_t dlen = vsize - (uint64_t)i * bs < bs ? vsize - (uint64_t)i * bs : bs;
    bytes += dlen;
    regs[k++] = (region){boff, boff + d->bitmap_size + dlen, (uint32_t)i, NULL};
  }
  d->info.bytes_allocated = bytes;
  qsort(regs, nreg, sizeof(*regs), region_cmp);
  rc = 0;
  for (size_t i = 1; i < nreg; i++) {
    if (regs[i].start < regs[i - 1].end && regs[i].end > regs[i].start &&
        regs[i - 1].end > regs[i - 1].start) {
      char a[160], b[160];
      const region *x = &regs[i - 1], *y = &regs[i];
      if (y->entry != UNALLOCATED && (x->entry == UNALLOCATED || x->entry > y->entry)) {
        const region *t = x;
        x = y;
        y = t;
      }
      describe(x, toff, a, sizeof(a));
      describe(y, toff, b, sizeof(b));
      rc = vhdup__errf(err, VHDUP_EFORMAT, "%s: %s overlaps %s", name, a, b);
      break;
    }
  }
  vhdup__free(regs);
  return rc;
}

/* Turns a locator's bytes into a path (spec "Parent Locator Entry":
 * W2ru/W2ku are UTF-16LE Windows paths, MacX a UTF-8 file URL). */
static char *locator_path(const uint8_t *data, size_t len, const char *code, const char *dir) {
  size_t cap = len * 3 / 2 + 8;
  char *path = vhdup__malloc(cap);
  if (path == NULL)
    return NULL;
  if (memcmp(code, "MacX", 4) == 0) {
    size_t i = 0, w = 0;
    if (len >= 7 && memcmp(data, "file://", 7) == 0) {
      i = 7;
      if (len - i >= 9 && memcmp(data + i, "localhost", 9) == 0)
        i += 9;
    }
    for (; i < len && data[i] != 0 && w + 1 < cap; i++) {
      static const char hexd[] = "0123456789abcdef0123456789ABCDEF";
      const char *h1, *h2;
      if (data[i] == '%' && i + 2 < len && data[i + 1] && data[i + 2] &&
          (h1 = strchr(hexd, data[i + 1])) != NULL && (h2 = strchr(hexd, data[i + 2])) != NULL) {
        path[w++] = (char)((((h1 - hexd) & 15) << 4) | ((h2 - hexd) & 15));
        i += 2;
      } else {
        path[w++] = (char)data[i];
      }
    }
    path[w] = '\0';
    return path;
  }
  size_t n = len / 2;
  uint16_t *u = vhdup__malloc(n * 2 + 2);
  if (u == NULL) {
    vhdup__free(path);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    u[i] = (uint16_t)(data[2 * i] | (data[2 * i + 1] << 8));
  utf16_to_utf8(u, n, path, cap);
  vhdup__free(u);
  for (char *p = path; *p; p++)
    if (*p == '\\')
      *p = '/';
  if (memcmp(code, "W2ru", 4) != 0)
    return path;
  const char *rel = path;
  while (rel[0] == '.' && rel[1] == '/')
    rel += 2;
  size_t dl = dir != NULL ? strlen(dir) : 0;
  char *joined = vhdup__malloc(dl + strlen(rel) + 2);
  if (joined != NULL) {
    if (dl > 0)
      snprintf(joined, dl + strlen(rel) + 2, "%s%s%s", dir, dir[dl - 1] == '/' ? "" : "/", rel);
    else
      strcpy(joined, rel);
  }
  vhdup__free(path);
  return joined;
}

char *vhdup__dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return NULL;
  return vhdup__strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* Tries path (owned: freed or kept as d->parent_path) as d's parent.
 * Returns 1 when it opened (d->parent set), 0 when it could not be opened
 * (noted in tried, so the next candidate is tried), or a negative error:
 * a file that opens but is not the parent is an error, not a reason to
 * guess further. */
int vhdup__try_parent(vhdup__disk *d, const vhdup__open_opts *opts, char *path, unsigned depth,
                      const vhdup__parent_expect *ex, char *tried, size_t tried_cap, size_t *tw,
                      vhdup__err *err) {
  const char *name = src_name(&d->src);
  vhdup__src psrc;
  memset(&psrc, 0, sizeof(psrc));
  int rc = opts->parent_io->open_parent(opts->parent_io->ctx, path, &psrc);
  if (rc == VHDUP_ENOMEM) { /* not a reason to try the next locator */
    vhdup__errf(err, rc, "%s: opening parent '%s': out of memory", name, path);
    vhdup__free(path);
    return rc;
  }
  if (rc < 0) {
    if (*tw < tried_cap - 1)
      *tw += (size_t)snprintf(tried + *tw, tried_cap - *tw, "%s'%s' (error %d)", *tw ? ", " : "",
                              path, rc);
    if (*tw >= tried_cap)
      *tw = tried_cap - 1;
    vhdup__free(path);
    return 0;
  }
  char *pdir = vhdup__dir_of(path);
  vhdup__disk *p = NULL;
  vhdup__err sub;
  vhdup__err_clear(&sub);
  rc = vhdup__open_layer(&psrc, opts, pdir, NULL, depth + 1, ex, &p, &sub);
  vhdup__free(pdir);
  if (rc < 0) {
    if (opts->parent_io->close_parent != NULL)
      opts->parent_io->close_parent(opts->parent_io->ctx, &psrc);
    /* The failing file names itself; only the top says which parent it
     * was opening, so a deep chain does not repeat every layer. */
    if (depth > 0)
      vhdup__errf(err, rc, "%s", sub.msg);
    else
      vhdup__errf(err, rc, "%s: opening parent '%s': %s", name, path, sub.msg);
    vhdup__free(path);
    return rc;
  }
  p->owns_src = 1;
  p->pio = *opts->parent_io;
  d->parent = p;
  d->parent_path = path;
  return 1;
}

/* Opens the parent of differencing layer d from override or the locators,
 * in the order W2ru, W2ku, MacX. The first candidate that opens is used:
 * a candidate that opens but does not match is an error, not a reason to
 * guess further. */
static int open_parent(vhdup__disk *d, const vhdup__open_opts *opts, const char *dir,
                       const char *override, unsigned depth, vhdup__err *err) {
  const char *name = src_name(&d->src);
  const vhdup__dynhdr *h = &d->info.header;
  uint64_t hoff = d->info.footer.data_offset;
  char pname[768], tried[512];
  size_t tw = 0;
  int rc;
  utf16_to_utf8(h->parent_name, 256, pname, sizeof(pname));
  tried[0] = '\0';

  if (depth + 1 >= VHDUP__MAX_CHAIN_DEPTH)
    return vhdup__errf(err, VHDUP_ELIMIT,
                       "%s: differencing chain deeper than %u layers (parent '%s')", name,
                       VHDUP__MAX_CHAIN_DEPTH, pname);
  if (opts->parent_io == NULL || opts->parent_io->open_parent == NULL)
    return vhdup__errf(err, VHDUP_EPARENT,
                       "%s: differencing disk, but no way to open its parent '%s' here", name,
                       pname);
  static const char *const order[] = {"W2ru", "W2ku", "MacX"};
  int ncand = override != NULL ? 1 : 3 * VHDUP__PARENT_LOCATORS;
  for (int c = 0; c < ncand; c++) {
    char *path;
    if (override != NULL) {
      path = vhdup__strdup(override);
    } else {
      const char *code = order[c / VHDUP__PARENT_LOCATORS];
      int li = c % VHDUP__PARENT_LOCATORS;
      const vhdup__locator *l = &h->locators[li];
      uint64_t loff = hoff + 576 + (uint64_t)24 * li;
      if (memcmp(l->platform_code, code, 4) != 0 || l->data_length == 0)
        continue;
      if (l->data_length > MAX_LOCATOR_BYTES)
        return vhdup__errf(err, VHDUP_ELIMIT,
                           "%s: parent locator %d (%s) at offset %" PRIu64 ": data length %" PRIu32
                           " exceeds %u bytes",
                           name, li, code, loff, l->data_length, MAX_LOCATOR_BYTES);
      if (l->data_offset > d->src.size || d->src.size - l->data_offset < l->data_length)
        return vhdup__errf(err, VHDUP_ETRUNCATED,
                           "%s: parent locator %d (%s) at offset %" PRIu64
                           ": data at offset %" PRIu64 " (%" PRIu32
                           " bytes) runs past the end of the file (size %" PRIu64 ")",
                           name, li, code, loff, l->data_offset, l->data_length, d->src.size);
      uint8_t *data = vhdup__malloc(l->data_length);
      if (data == NULL)
        return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for a parent locator", name);
      if ((rc = vhdup__disk_read(&d->src, l->data_offset, data, l->data_length,
                                 "parent locator data", err)) < 0) {
        vhdup__free(data);
        return rc;
      }
      path = locator_path(data, l->data_length, code, dir);
      vhdup__free(data);
    }
    if (path == NULL)
      return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for a parent path", name);
    if (path[0] == '\0') {
      vhdup__free(path);
      continue;
    }
    vhdup__parent_expect ex = {name, d->info.footer.current_size, h->parent_uuid, NULL, NULL, 0};
    rc = vhdup__try_parent(d, opts, path, depth, &ex, tried, sizeof(tried), &tw, err);
    if (rc != 0)
      return rc < 0 ? rc : 0;
  }
  if (tw == 0)
    return vhdup__errf(err, VHDUP_EPARENT,
                       "%s: dynamic header at offset %" PRIu64 ": no usable parent locator for "
                       "parent '%s'",
                       name, hoff, pname);
  return vhdup__errf(err, VHDUP_EPARENT, "%s: parent '%s' not found: tried %s", name, pname, tried);
}

/* Opens d as a VHD (or, by fmt and name, a raw image) and its parents. */
static int open_vhd_layer(vhdup__disk *d, const vhdup__open_opts *opts, vhdup_format fmt,
                          const char *dir, const char *override, unsigned depth,
                          const vhdup__parent_expect *ex, vhdup__err *err) {
  const vhdup__src *src = &d->src;
  const uint8_t *expect_uuid = ex != NULL ? ex->vhd_uuid : NULL;
  vhdup__footer f;
  uint64_t footer_off = 0, data_limit = 0;
  int raw = 0, rc;
  const char *name = src_name(&d->src);

  d->info.format = VHDUP_FORMAT_VHD;
  rc = find_footer(d, fmt, &f, &footer_off, &data_limit, &raw, err);
  if (rc < 0)
    return rc;
  if (raw) {
    d->info.format = VHDUP_FORMAT_RAW;
    d->info.type = VHDUP__DISK_FIXED;
    d->info.is_raw = 1;
    d->info.virtual_size = src->size;
    d->info.bytes_allocated = src->size;
    vhdup__raw_count(d);
    return 0;
  }
  d->info.footer = f;
  d->info.type = (int)f.disk_type;
  d->info.virtual_size = f.current_size;
  if (f.disk_type != VHDUP__DISK_FIXED && !is_dynamic(f.disk_type)) {
    rc = vhdup__errf(err,
                     f.disk_type == 0 || f.disk_type == 1 || f.disk_type == 5 || f.disk_type == 6
                         ? VHDUP_EUNSUPPORTED
                         : VHDUP_EFORMAT,
                     "%s: footer at offset %" PRIu64 ": unknown disk type %" PRIu32
                     " (byte %" PRIu64 "; 2 fixed, 3 dynamic, 4 differencing)",
                     name, footer_off, f.disk_type, footer_off + 60);
    goto fail;
  }
  if (f.current_size == 0 || f.current_size % VHDUP__SECTOR != 0) {
    rc = vhdup__errf(err, VHDUP_EFORMAT,
                     "%s: footer at offset %" PRIu64 ": current size %" PRIu64 " (byte %" PRIu64
                     ") is %s",
                     name, footer_off, f.current_size, footer_off + 48,
                     f.current_size == 0 ? "zero" : "not a multiple of 512");
    goto fail;
  }
  if (f.current_size > VHDUP__MAX_VIRTUAL_SIZE) {
    rc = vhdup__errf(err, VHDUP_ELIMIT,
                     "%s: footer at offset %" PRIu64 ": current size %" PRIu64 " (byte %" PRIu64
                     ") exceeds the page blob limit %" PRIu64,
                     name, footer_off, f.current_size, footer_off + 48,
                     (uint64_t)VHDUP__MAX_VIRTUAL_SIZE);
    goto fail;
  }
  if (expect_uuid != NULL) {
    if (memcmp(expect_uuid, f.uuid, 16) != 0) {
      char a[37], b[37];
      uuid_str(expect_uuid, a);
      uuid_str(f.uuid, b);
      rc = vhdup__errf(err, VHDUP_EPARENT,
                       "%s: footer at offset %" PRIu64 ": UUID %s does not match the parent "
                       "UUID %s in %s's dynamic header",
                       name, footer_off, b, a, ex->child_name);
      goto fail;
    }
    if (f.current_size != ex->size) {
      rc = vhdup__errf(err, VHDUP_EPARENT,
                       "%s: footer at offset %" PRIu64 ": current size %" PRIu64
                       " differs from the child %s's current size %" PRIu64,
                       name, footer_off, f.current_size, ex->child_name, ex->size);
      goto fail;
    }
  }
  if (f.disk_type == VHDUP__DISK_FIXED) {
    if (footer_off < f.current_size) {
      rc = vhdup__errf(err, VHDUP_ETRUNCATED,
                       "%s: footer at offset %" PRIu64 ": fixed disk of current size %" PRIu64
                       " needs a file of at least %" PRIu64 " bytes, the file has %" PRIu64,
                       name, footer_off, f.current_size, f.current_size + (src->size - footer_off),
                       src->size);
      goto fail;
    }
    if (footer_off > f.current_size)
      vhdup__disk_warn(d,
                       "%s: fixed disk: %" PRIu64 " bytes between the current size %" PRIu64
                       " and the footer at offset %" PRIu64 " are ignored",
                       name, footer_off - f.current_size, f.current_size, footer_off);
    d->info.bytes_allocated = f.current_size;
  } else {
    if ((rc = open_dynamic(d, &f, data_limit, err)) < 0)
      goto fail;
  }
  size_warnings(d, &f, footer_off);
  if (f.disk_type == VHDUP__DISK_DIFFERENCING) {
    if ((rc = open_parent(d, opts, dir, override, depth, err)) < 0)
      goto fail;
    d->info.chain_depth = d->parent->info.chain_depth + 1;
  }
  return 0;
fail:
  return rc;
}

int vhdup__open_layer(const vhdup__src *src, const vhdup__open_opts *opts, const char *dir,
                      const char *override, unsigned depth, const vhdup__parent_expect *ex,
                      vhdup__disk **out, vhdup__err *err) {
  vhdup__disk *d = vhdup__calloc(1, sizeof(*d));
  *out = NULL;
  if (d == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: out of memory", src_name(src));
  d->src = *src;
  d->info.file_size = src->size;
  d->info.chain_depth = 1;
  d->info.logical_sector_size = VHDUP__SECTOR;
  /* A VHD child's parent is a VHD; a VHDX child's a VHDX or a VHD. */
  vhdup_format fmt = ex == NULL             ? opts->format
                     : ex->vhd_uuid != NULL ? VHDUP_FORMAT_VHD
                                            : VHDUP_FORMAT_AUTO;
  int rc = 0, is_vhdx = fmt == VHDUP_FORMAT_VHDX;
  if (fmt == VHDUP_FORMAT_AUTO && (rc = vhdup__vhdx_sniff(src)) < 0)
    rc = vhdup__errf(err, rc, "%s: reading the file identifier at offset 0 failed (error %d)",
                     src_name(src), rc);
  else if (fmt == VHDUP_FORMAT_AUTO)
    is_vhdx = rc, rc = 0;
  if (rc == 0 && is_vhdx)
    rc = vhdup__vhdx_open_chain(d, opts, dir, override, depth, err);
  else if (rc == 0)
    rc = open_vhd_layer(d, opts, fmt, dir, override, depth, ex, err);
  if (rc == 0 && ex != NULL && ex->linkage != NULL)
    rc = vhdup__vhdx_check_parent(d, ex, err);
  if (rc < 0) {
    vhdup__disk_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

int vhdup__disk_open(const vhdup__src *src, const vhdup__open_opts *opts, vhdup__disk **out,
                     vhdup__err *err) {
  static const vhdup__open_opts defaults;
  if (opts == NULL)
    opts = &defaults;
  vhdup__err_clear(err);
  *out = NULL;
  if (src == NULL || src->read == NULL)
    return vhdup__errf(err, VHDUP_EINVAL, "no source to open");
  return vhdup__open_layer(src, opts, opts->dir, opts->parent_override, 0, NULL, out, err);
}

void vhdup__disk_free(vhdup__disk *d) {
  while (d != NULL) {
    vhdup__disk *p = d->parent;
    if (d->owns_src && d->pio.close_parent != NULL)
      d->pio.close_parent(d->pio.ctx, &d->src);
    vhdup__free(d->bat);
    vhdup__vhdx_map_free(&d->x);
    vhdup__free(d->parent_path);
    vhdup__free(d);
    d = p;
  }
}

void vhdup__disk_get_info(const vhdup__disk *d, vhdup__disk_info *info) {
  *info = d->info;
}

const vhdup__disk *vhdup__disk_parent(const vhdup__disk *d) {
  return d->parent;
}

const char *vhdup__disk_parent_path(const vhdup__disk *d) {
  return d->parent_path;
}

const vhdup__src *vhdup__disk_src(const vhdup__disk *d) {
  return &d->src;
}

const char *vhdup__disk_warning(const vhdup__disk *d, size_t i) {
  return i < d->nwarnings ? d->warnings[i] : NULL;
}
