/* What the manifest module's files share: an arena for strings and YAML
 * nodes, the diagnostics being collected, and the YAML tree built from
 * libyaml's events. */
#ifndef VHDUP_MANIFEST_INTERNAL_H
#define VHDUP_MANIFEST_INTERNAL_H

#include "manifest/manifest.h"
#include "util/list.h"

#include <stdarg.h>
#include <stddef.h>

/* Memory handed out in blocks and released (and wiped, since inline secrets
 * live there) all at once. */
typedef struct vhdup__manifest_arena vhdup__manifest_arena;

vhdup__manifest_arena *vhdup__marena_new(void);
void vhdup__marena_free(vhdup__manifest_arena *a);
void *vhdup__marena_alloc(vhdup__manifest_arena *a, size_t n);
char *vhdup__marena_strndup(vhdup__manifest_arena *a, const char *s, size_t n);
char *vhdup__marena_printf(vhdup__manifest_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

typedef enum vhdup__mnode_type {
  VHDUP__MNODE_SCALAR = 0,
  VHDUP__MNODE_MAPPING,
  VHDUP__MNODE_SEQUENCE,
  VHDUP__MNODE_ALIAS, /* refused where it was met; skipped by the schema */
} vhdup__mnode_type;

/* A YAML node. Mappings hold key, value, key, value... as children. */
typedef struct vhdup__mnode {
  vhdup__mnode_type type;
  unsigned line, col;   /* 1-based */
  vhdup__list link;     /* in the parent's children */
  vhdup__list children; /* of mappings and sequences */
  size_t count;
  const char *value; /* scalars: NUL-terminated copy */
  size_t len;
  int plain; /* unquoted scalar */
} vhdup__mnode;

/* The first child of parent, and the child after n: NULL at the end. */
static inline const vhdup__mnode *vhdup__mnode_first(const vhdup__mnode *parent) {
  const vhdup__list *l = vhdup__list_first(&parent->children);
  return l == NULL ? NULL : vhdup__list_entry(l, const vhdup__mnode, link);
}

static inline const vhdup__mnode *vhdup__mnode_next(const vhdup__mnode *parent,
                                                    const vhdup__mnode *n) {
  if (n->link.next == &parent->children)
    return NULL;
  return vhdup__list_entry(n->link.next, const vhdup__mnode, link);
}

/* The state of one parse. */
typedef struct vhdup__mctx {
  const char *file;
  const char *base_dir;
  const vhdup__manifest_env *env;
  vhdup__manifest_arena *tree; /* nodes, freed after the parse */
  vhdup__manifest_arena *out;  /* the manifest's strings */
  vhdup__manifest_diag *diags, *diags_tail;
  unsigned ndiags, errors;
  int truncated; /* diagnostics beyond VHDUP__MANIFEST_MAX_DIAGS dropped */
  int nomem;
  int credentials_broken; /* so a bad credentials section does not also make
                           * every reference to it an error */
  size_t nodes;
} vhdup__mctx;

/* Records a diagnostic at line:col (0:0 for the whole file). Sets nomem
 * when it cannot. */
void vhdup__mdiag(vhdup__mctx *c, vhdup__manifest_severity sev, unsigned line, unsigned col,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Builds the tree of text with libyaml. Returns the root (NULL for an empty
 * document or after a fatal problem, which is then a diagnostic). */
vhdup__mnode *vhdup__mtree_build(vhdup__mctx *c, const char *text, size_t len);

#endif
