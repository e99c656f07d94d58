/* A differencing VHDX's parent ([MS-VHDX] 2.6.2.6): found through the
 * parent locator's relative_path, volume_path and absolute_win32_path, in
 * that order (or the --parent override), and accepted only when its
 * DataWriteGuid is the child's parent_linkage (or parent_linkage2): a
 * parent written since the child was made would silently change it. */
#include "vhd/vhd_int.h"

#include "util/alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *nm(const vhdup__disk *d) {
  return d->src.name != NULL ? d->src.name : "(unnamed)";
}

/* A locator path as a local path: backslashes become slashes; a relative
 * path is joined to the child's folder. */
static char *local_path(const char *p, int relative, const char *dir) {
  size_t n = strlen(p), dl = dir != NULL ? strlen(dir) : 0;
  char *out = vhdup__malloc(n + dl + 2);
  if (out == NULL)
    return NULL;
  size_t w = 0;
  if (relative) {
    while ((p[0] == '.' && (p[1] == '\\' || p[1] == '/')))
      p += 2;
    if (dl > 0) {
      memcpy(out, dir, dl);
      w = dl;
      if (dir[dl - 1] != '/')
        out[w++] = '/';
    }
  }
  for (; *p; p++)
    out[w++] = *p == '\\' ? '/' : *p;
  out[w] = '\0';
  return out;
}

static int open_parent(vhdup__disk *d, const vhdup__open_opts *opts, const char *dir,
                       const char *override, unsigned depth, vhdup__err *err) {
  const vhdup__vhdx_locator *l = &d->info.vhdx.locator;
  const char *cands[4] = {override, l->relative_path, l->volume_path, l->absolute_win32_path};
  char tried[512];
  size_t tw = 0;
  tried[0] = '\0';
  if (depth + 1 >= VHDUP__MAX_CHAIN_DEPTH)
    return vhdup__errf(err, VHDUP_ELIMIT, "%s: differencing chain deeper than %u layers", nm(d),
                       VHDUP__MAX_CHAIN_DEPTH);
  if (opts->parent_io == NULL || opts->parent_io->open_parent == NULL)
    return vhdup__errf(err, VHDUP_EPARENT,
                       "%s: differencing disk, but no way to open its parent '%s' here", nm(d),
                       l->relative_path[0] ? l->relative_path : l->absolute_win32_path);
  vhdup__parent_expect ex = {nm(d),
                             d->info.virtual_size,
                             NULL,
                             l->parent_linkage,
                             l->parent_linkage2[0] ? l->parent_linkage2 : NULL,
                             d->info.logical_sector_size};
  for (int c = override != NULL ? 0 : 1; c < (override != NULL ? 1 : 4); c++) {
    if (cands[c] == NULL || cands[c][0] == '\0')
      continue;
    char *path = local_path(cands[c], c == 1, dir);
    if (path == NULL)
      return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for a parent path", nm(d));
    int rc = vhdup__try_parent(d, opts, path, depth, &ex, tried, sizeof(tried), &tw, err);
    if (rc < 0)
      return rc;
    if (rc == 1) {
      d->info.chain_depth = d->parent->info.chain_depth + 1;
      return 0;
    }
  }
  if (tw == 0)
    return vhdup__errf(err, VHDUP_EPARENT,
                       "%s: parent locator: no relative_path, volume_path or absolute_win32_path",
                       nm(d));
  return vhdup__errf(err, VHDUP_EPARENT, "%s: parent %s not found: tried %s", nm(d),
                     l->parent_linkage, tried);
}

int vhdup__vhdx_open_chain(vhdup__disk *d, const vhdup__open_opts *opts, const char *dir,
                           const char *override, unsigned depth, vhdup__err *err) {
  int rc = vhdup__vhdx_open_layer(d, err);
  if (rc < 0 || !d->info.vhdx.has_parent)
    return rc;
  return open_parent(d, opts, dir, override, depth, err);
}

static int linkage_is(const char *linkage, const char *guid) {
  return linkage != NULL && strcasecmp(linkage, guid) == 0;
}

int vhdup__vhdx_check_parent(const vhdup__disk *d, const vhdup__parent_expect *ex,
                             vhdup__err *err) {
  char g[39], g2[39] = "";
  if (d->info.format == VHDUP_FORMAT_RAW)
    return vhdup__errf(err, VHDUP_EPARENT, "%s: a raw image cannot be %s's parent", nm(d),
                       ex->child_name);
  if (d->info.format == VHDUP_FORMAT_VHDX) {
    vhdup__vhdx_guid_text(d->info.vhdx.header.data_write_guid, g);
  } else {
    /* A VHD's identity is its footer UUID: as Windows would print it, or
     * byte by byte. */
    const uint8_t *u = d->info.footer.uuid;
    vhdup__vhdx_guid_text(u, g);
    snprintf(g2, sizeof(g2),
             "{%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X}", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
  }
  if (!linkage_is(ex->linkage, g) && !linkage_is(ex->linkage2, g) && !linkage_is(ex->linkage, g2) &&
      !linkage_is(ex->linkage2, g2))
    return vhdup__errf(err, VHDUP_EPARENT,
                       "%s: %s %s is not the parent_linkage %s in %s's parent locator (the parent "
                       "was changed after the child was made, or is another disk)",
                       nm(d), d->info.format == VHDUP_FORMAT_VHDX ? "DataWriteGuid" : "UUID", g,
                       ex->linkage, ex->child_name);
  if (d->info.virtual_size != ex->size)
    return vhdup__errf(err, VHDUP_EPARENT,
                       "%s: virtual size %" PRIu64 " differs from the child %s's %" PRIu64, nm(d),
                       d->info.virtual_size, ex->child_name, ex->size);
  if (d->info.logical_sector_size != ex->sector_size)
    return vhdup__errf(err, VHDUP_EPARENT,
                       "%s: logical sector size %" PRIu32 " differs from the child %s's %" PRIu32,
                       nm(d), d->info.logical_sector_size, ex->child_name, ex->sector_size);
  return 0;
}
