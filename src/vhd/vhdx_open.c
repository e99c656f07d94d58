/* Opening one VHDX layer: file identifier (2.2.1), the current header
 * (2.2.2), the region table and its copy (2.2.3), the metadata (2.6) and
 * the BAT (2.5), every claim checked against the file's real size before
 * anything is allocated in proportion to it. Section numbers are
 * [MS-VHDX]'s. The parent, when there is one, is the caller's (vhd_open.c). */
#include "vhd/vhd_int.h"

#include "util/alloc.h"
#include "util/le.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MIB VHDUP__VHDX_MIB

static const char *nm(const vhdup__disk *d) {
  return d->src.name != NULL ? d->src.name : "(unnamed)";
}

int vhdup__vhdx_sniff(const vhdup__src *src) {
  uint8_t id[8];
  if (src->size < 8)
    return 0;
  int rc = src->read(src, 0, id, 8);
  if (rc < 0)
    return rc;
  return memcmp(id, "vhdxfile", 8) == 0;
}

/* 2.2.2: of the two headers, the valid one with the larger sequence
 * number is current. */
static int pick_header(vhdup__disk *d, vhdup__err *err) {
  static const uint64_t offs[2] = {VHDUP__VHDX_HEADER1_OFF, VHDUP__VHDX_HEADER2_OFF};
  uint8_t buf[VHDUP__VHDX_HEADER_SIZE];
  vhdup__vhdx_header h[2];
  vhdup__err sub[2];
  int rcs[2], rc;
  for (int i = 0; i < 2; i++) {
    if ((rc = vhdup__disk_read(&d->src, offs[i], buf, sizeof(buf), "VHDX header", err)) < 0)
      return rc;
    vhdup__err_clear(&sub[i]);
    rcs[i] = vhdup__vhdx_header_decode(buf, &h[i], &sub[i]);
  }
  if (rcs[0] < 0 && rcs[1] < 0)
    return vhdup__errf(err, rcs[0] == VHDUP_EUNSUPPORTED ? rcs[0] : rcs[1],
                       "%s: no valid VHDX header: header 1 at offset %u: %.300s; header 2 at "
                       "offset %u: %.300s",
                       nm(d), VHDUP__VHDX_HEADER1_OFF, sub[0].msg, VHDUP__VHDX_HEADER2_OFF,
                       sub[1].msg);
  int cur = rcs[0] < 0 ? 1 : rcs[1] < 0 ? 0 : h[1].sequence_number > h[0].sequence_number ? 1 : 0;
  if (rcs[1 - cur] < 0)
    vhdup__disk_warn(
        d, "%s: VHDX header %d at offset %" PRIu64 " is not valid (%s); header %d is used", nm(d),
        2 - cur, offs[1 - cur], sub[1 - cur].msg, cur + 1);
  vhdup__vhdx_info *x = &d->info.vhdx;
  x->header = h[cur];
  x->header_index = (unsigned)cur + 1;
  x->sequence_number = h[cur].sequence_number;
  return 0;
}

/* 2.2.3: the region table, or its copy when the first is damaged. */
static int pick_regions(vhdup__disk *d, vhdup__err *err) {
  static const uint64_t offs[2] = {VHDUP__VHDX_REGION1_OFF, VHDUP__VHDX_REGION2_OFF};
  uint8_t *buf = vhdup__malloc(VHDUP__VHDX_REGION_SIZE);
  vhdup__vhdx_regions r[2];
  vhdup__err sub[2];
  int rcs[2] = {0, 0}, rc = 0;
  if (buf == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for the region table", nm(d));
  for (int i = 0; i < 2 && rc == 0; i++) {
    rc = vhdup__disk_read(&d->src, offs[i], buf, VHDUP__VHDX_REGION_SIZE, "VHDX region table", err);
    vhdup__err_clear(&sub[i]);
    if (rc == 0)
      rcs[i] = vhdup__vhdx_regions_decode(buf, d->src.size, &r[i], &sub[i]);
  }
  vhdup__free(buf);
  if (rc < 0)
    return rc;
  if (rcs[0] < 0 && rcs[1] < 0)
    return vhdup__errf(
        err, rcs[0], "%s: region table at offset %u: %.300s; its copy at offset %u: %.300s", nm(d),
        VHDUP__VHDX_REGION1_OFF, sub[0].msg, VHDUP__VHDX_REGION2_OFF, sub[1].msg);
  int use = rcs[0] < 0 ? 1 : 0;
  if (use == 1)
    vhdup__disk_warn(
        d, "%s: region table at offset %u is not valid (%s); its copy at offset %u is used", nm(d),
        VHDUP__VHDX_REGION1_OFF, sub[0].msg, VHDUP__VHDX_REGION2_OFF);
  d->info.vhdx.regions = r[use];
  d->info.vhdx.region_table_index = (unsigned)use + 1;
  return 0;
}

/* Reads metadata item k (2.6.2) of at least min bytes into buf (cap). */
static int read_item(vhdup__disk *d, const vhdup__vhdx_meta_table *t, int k, const char *what,
                     uint32_t min, void *buf, size_t cap, vhdup__err *err) {
  uint64_t moff = d->info.vhdx.regions.meta_offset;
  if (t->length[k] < min)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: metadata item '%s' at offset %" PRIu64 " has %" PRIu32
                       " bytes, needs %" PRIu32,
                       nm(d), what, moff + t->offset[k], t->length[k], min);
  size_t n = t->length[k] < cap ? t->length[k] : cap;
  return vhdup__disk_read(&d->x.meta_src, moff + t->offset[k], buf, n, what, err);
}

static int bad_item(vhdup__disk *d, const vhdup__vhdx_meta_table *t, int k, vhdup__err *err,
                    int code, const char *what, uint64_t value, const char *why) {
  return vhdup__errf(err, code, "%s: metadata item '%s' at offset %" PRIu64 ": %" PRIu64 " %s",
                     nm(d), what, d->info.vhdx.regions.meta_offset + t->offset[k], value, why);
}

/* 2.6.2.1-2.6.2.5: block size, flags, virtual size, sector sizes, page 83. */
static int read_parameters(vhdup__disk *d, const vhdup__vhdx_meta_table *t, vhdup__err *err) {
  vhdup__vhdx_info *x = &d->info.vhdx;
  uint8_t b[16];
  int rc;
  if ((rc = read_item(d, t, VHDUP__VHDX_ITEM_FILE_PARAMETERS, "file parameters", 8, b, 8, err)) < 0)
    return rc;
  uint32_t bs = vhdup__le32(b);
  x->leave_allocated = (int)(vhdup__le32(b + 4) & 1);
  x->has_parent = (int)((vhdup__le32(b + 4) >> 1) & 1);
  if (bs < MIB || bs > 256u * MIB || (bs & (bs - 1)) != 0)
    return bad_item(d, t, VHDUP__VHDX_ITEM_FILE_PARAMETERS, err, VHDUP_EFORMAT, "block size", bs,
                    "is not a power of two from 1 MiB to 256 MiB");
  d->info.block_size = bs;
  if ((rc = read_item(d, t, VHDUP__VHDX_ITEM_LOGICAL_SECTOR, "logical sector size", 4, b, 4, err)) <
      0)
    return rc;
  uint32_t lss = vhdup__le32(b);
  if (lss != 512 && lss != 4096)
    return bad_item(d, t, VHDUP__VHDX_ITEM_LOGICAL_SECTOR, err, VHDUP_EFORMAT,
                    "logical sector size", lss, "is neither 512 nor 4096");
  d->info.logical_sector_size = lss;
  if ((rc = read_item(d, t, VHDUP__VHDX_ITEM_PHYSICAL_SECTOR, "physical sector size", 4, b, 4,
                      err)) < 0)
    return rc;
  x->physical_sector_size = vhdup__le32(b);
  if (x->physical_sector_size != 512 && x->physical_sector_size != 4096)
    return bad_item(d, t, VHDUP__VHDX_ITEM_PHYSICAL_SECTOR, err, VHDUP_EFORMAT,
                    "physical sector size", x->physical_sector_size, "is neither 512 nor 4096");
  if ((rc = read_item(d, t, VHDUP__VHDX_ITEM_VIRTUAL_SIZE, "virtual disk size", 8, b, 8, err)) < 0)
    return rc;
  uint64_t vs = vhdup__le64(b);
  if (vs == 0 || vs % lss != 0)
    return bad_item(d, t, VHDUP__VHDX_ITEM_VIRTUAL_SIZE, err, VHDUP_EFORMAT, "virtual disk size",
                    vs, vs == 0 ? "is zero" : "is not a multiple of the logical sector size");
  if (vs > VHDUP__MAX_VIRTUAL_SIZE)
    return bad_item(d, t, VHDUP__VHDX_ITEM_VIRTUAL_SIZE, err, VHDUP_ELIMIT, "virtual disk size", vs,
                    "exceeds the page blob limit of 8 TiB less 512 bytes");
  d->info.virtual_size = vs;
  if ((rc = read_item(d, t, VHDUP__VHDX_ITEM_PAGE83, "page 83 data", 16, x->page83, 16, err)) < 0)
    return rc;
  /* 2.5: chunk ratio = 2^23 * logical sector size / block size; with the
   * sizes checked above it lies in [16, 32768]. */
  x->chunk_ratio = (uint32_t)(((uint64_t)1 << 23) * lss / bs);
  return 0;
}

static int read_locator(vhdup__disk *d, const vhdup__vhdx_meta_table *t, vhdup__err *err) {
  int k = VHDUP__VHDX_ITEM_PARENT_LOCATOR;
  uint64_t at = d->info.vhdx.regions.meta_offset + t->offset[k];
  if (t->length[k] == 0)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: the file parameters say HasParent but there is no parent locator item",
                       nm(d));
  uint8_t *buf = vhdup__malloc(t->length[k]); /* at most 1 MiB: checked with the table */
  if (buf == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for the parent locator", nm(d));
  vhdup__err sub;
  int rc = read_item(d, t, k, "parent locator", 20, buf, t->length[k], err);
  if (rc == 0 &&
      (rc = vhdup__vhdx_locator_decode(buf, t->length[k], &d->info.vhdx.locator, &sub)) < 0)
    vhdup__errf(err, rc, "%s: parent locator at offset %" PRIu64 ": %s", nm(d), at, sub.msg);
  vhdup__free(buf);
  return rc;
}

static int read_metadata(vhdup__disk *d, vhdup__err *err) {
  const vhdup__vhdx_regions *r = &d->info.vhdx.regions;
  vhdup__vhdx_meta_table t;
  vhdup__err sub;
  uint8_t *buf = vhdup__malloc(VHDUP__VHDX_META_TABLE_SIZE);
  if (buf == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for the metadata table", nm(d));
  int rc = vhdup__disk_read(&d->x.meta_src, r->meta_offset, buf, VHDUP__VHDX_META_TABLE_SIZE,
                            "VHDX metadata table", err);
  if (rc == 0 && (rc = vhdup__vhdx_meta_table_decode(buf, r->meta_length, &t, &sub)) < 0)
    vhdup__errf(err, rc, "%s: metadata table at offset %" PRIu64 ": %s", nm(d), r->meta_offset,
                sub.msg);
  vhdup__free(buf);
  if (rc < 0)
    return rc;
  if ((rc = read_parameters(d, &t, err)) < 0)
    return rc;
  if (d->info.vhdx.has_parent && (rc = read_locator(d, &t, err)) < 0)
    return rc;
  return 0;
}

/* Header section and log must lie apart from the regions (2.2, 2.3). */
static int check_log_place(vhdup__disk *d, vhdup__err *err) {
  const vhdup__vhdx_header *h = &d->info.vhdx.header;
  const vhdup__vhdx_regions *r = &d->info.vhdx.regions;
  uint64_t lo = h->log_offset, ll = h->log_length;
  if (ll == 0)
    return 0;
  if (lo > d->src.size || d->src.size - lo < ll)
    return vhdup__errf(err, VHDUP_ETRUNCATED,
                       "%s: header %u: log [%" PRIu64 ", %" PRIu64
                       ") runs past the end of the file (size %" PRIu64 ")",
                       nm(d), d->info.vhdx.header_index, lo, lo + ll, d->src.size);
  if ((lo < r->bat_offset + r->bat_length && r->bat_offset < lo + ll) ||
      (lo < r->meta_offset + r->meta_length && r->meta_offset < lo + ll))
    return vhdup__errf(
        err, VHDUP_EFORMAT, "%s: header %u: log [%" PRIu64 ", %" PRIu64 ") overlaps the %s region",
        nm(d), d->info.vhdx.header_index, lo, lo + ll,
        lo < r->bat_offset + r->bat_length && r->bat_offset < lo + ll ? "BAT" : "metadata");
  return 0;
}

static int is_zero_guid(const uint8_t g[16]) {
  for (int i = 0; i < 16; i++)
    if (g[i] != 0)
      return 0;
  return 1;
}

int vhdup__vhdx_open_layer(vhdup__disk *d, vhdup__err *err) {
  int rc;
  d->info.format = VHDUP_FORMAT_VHDX;
  d->x.meta_src = d->src;
  if (d->src.size < MIB)
    return vhdup__errf(err, VHDUP_ETRUNCATED,
                       "%s: file size %" PRIu64 " is too small for a VHDX (1 MiB header section)",
                       nm(d), d->src.size);
  if ((rc = vhdup__vhdx_sniff(&d->src)) <= 0)
    return rc < 0 ? vhdup__errf(err, rc, "%s: reading the file identifier failed (error %d)", nm(d),
                                rc)
                  : vhdup__errf(err, VHDUP_EFORMAT,
                                "%s: file identifier at offset 0 is not 'vhdxfile'; not a VHDX",
                                nm(d));
  if ((rc = pick_header(d, err)) < 0 || (rc = pick_regions(d, err)) < 0 ||
      (rc = check_log_place(d, err)) < 0)
    return rc;
  if (!is_zero_guid(d->info.vhdx.header.log_guid) && (rc = vhdup__vhdx_log_replay(d, err)) < 0)
    return rc;
  if ((rc = read_metadata(d, err)) < 0 || (rc = vhdup__vhdx_read_bat(d, err)) < 0)
    return rc;
  const vhdup__vhdx_info *x = &d->info.vhdx;
  d->info.type = x->has_parent        ? VHDUP__DISK_DIFFERENCING
                 : x->leave_allocated ? VHDUP__DISK_FIXED
                                      : VHDUP__DISK_DYNAMIC;
  vhdup__fixed_footer(NULL, d->info.virtual_size, &d->info.footer);
  memcpy(d->info.footer.uuid, x->page83, 16);
  return 0;
}
