/* libyaml events → a small tree of nodes with their positions, plus the
 * arena and the diagnostics list. Parsing pulls events one by one (never
 * yaml_parser_load), so the depth and node limits stop hostile input before
 * it costs memory, and aliases are refused instead of expanded. */
#include "manifest/internal.h"

#include "util/alloc.h"
#include "util/secret.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

/* ---- Arena ---- */

typedef struct arena_block {
  vhdup__list link;
  size_t size, used;
  max_align_t data[];
} arena_block;

/* Blocks, the one being filled first. */
struct vhdup__manifest_arena {
  vhdup__list blocks;
};

#define ARENA_BLOCK ((size_t)16 << 10)

vhdup__manifest_arena *vhdup__marena_new(void) {
  vhdup__manifest_arena *a = vhdup__calloc(1, sizeof(*a));
  if (a != NULL)
    vhdup__list_init(&a->blocks);
  return a;
}

void vhdup__marena_free(vhdup__manifest_arena *a) {
  if (a == NULL)
    return;
  vhdup__list *l;
  while ((l = vhdup__list_pop_head(&a->blocks)) != NULL) {
    arena_block *b = vhdup__list_entry(l, arena_block, link);
    /* Inline secrets live here: leave nothing behind in freed memory. */
    vhdup__wipe(b->data, b->used);
    vhdup__free(b);
  }
  vhdup__free(a);
}

void *vhdup__marena_alloc(vhdup__manifest_arena *a, size_t n) {
  const size_t align = sizeof(max_align_t);
  if (n > SIZE_MAX / 2)
    return NULL;
  n = (n + align - 1) / align * align;
  if (n == 0)
    n = align;
  vhdup__list *first = vhdup__list_first(&a->blocks);
  arena_block *head = first != NULL ? vhdup__list_entry(first, arena_block, link) : NULL;
  arena_block *b = head;
  if (b == NULL || b->size - b->used < n) {
    size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    b = vhdup__malloc(sizeof(arena_block) + size);
    if (b == NULL)
      return NULL;
    b->size = size;
    b->used = 0;
    /* A big allocation gets its own block behind the current one, so the
     * current block's free space stays usable. */
    if (head != NULL && size == n && head->size - head->used >= align)
      vhdup__list_insert_before(head->link.next, &b->link);
    else
      vhdup__list_push_head(&a->blocks, &b->link);
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *vhdup__marena_strndup(vhdup__manifest_arena *a, const char *s, size_t n) {
  char *d = vhdup__marena_alloc(a, n + 1);
  if (d == NULL)
    return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *vhdup__marena_printf(vhdup__manifest_arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *d = vhdup__marena_alloc(a, (size_t)n + 1);
  if (d == NULL)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(d, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return d;
}

/* ---- Diagnostics ---- */

void vhdup__manifest_diags_free(vhdup__manifest_diag *list) {
  while (list != NULL) {
    vhdup__manifest_diag *next = list->next;
    vhdup__free(list);
    list = next;
  }
}

static vhdup__manifest_diag *diag_new(const char *file, vhdup__manifest_severity sev, unsigned line,
                                      unsigned col, const char *msg) {
  const char *kind = sev == VHDUP__MANIFEST_ERROR ? "error" : "warning";
  char where[64];
  if (line == 0)
    where[0] = '\0';
  else
    snprintf(where, sizeof(where), ":%u:%u", line, col);
  size_t prefix = strlen(file) + strlen(where) + strlen(kind) + 4;
  vhdup__manifest_diag *d = vhdup__malloc(sizeof(*d) + prefix + strlen(msg) + 1);
  if (d == NULL)
    return NULL;
  d->next = NULL;
  d->line = line;
  d->col = col;
  d->severity = sev;
  snprintf(d->text, prefix + 1, "%s%s: %s: ", file, where, kind);
  strcpy(d->text + prefix, msg);
  d->message = d->text + prefix;
  return d;
}

void vhdup__mdiag(vhdup__mctx *c, vhdup__manifest_severity sev, unsigned line, unsigned col,
                  const char *fmt, ...) {
  if (sev == VHDUP__MANIFEST_ERROR)
    c->errors++;
  if (c->ndiags >= VHDUP__MANIFEST_MAX_DIAGS) {
    c->truncated = 1;
    return;
  }
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  vhdup__manifest_diag *d = diag_new(c->file, sev, line, col, msg);
  if (d == NULL) {
    c->nomem = 1;
    return;
  }
  if (c->diags_tail == NULL)
    c->diags = d;
  else
    c->diags_tail->next = d;
  c->diags_tail = d;
  c->ndiags++;
}

/* ---- Tree ---- */

/* Line and column (1-based, in characters) of a byte offset, for libyaml's
 * reader errors, which give an offset rather than a mark. */
static void offset_position(const char *text, size_t len, size_t offset, unsigned *line,
                            unsigned *col) {
  unsigned l = 1, k = 1;
  if (offset > len)
    offset = len;
  for (size_t i = 0; i < offset; i++) {
    if (text[i] == '\n') {
      l++;
      k = 1;
    } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
      k++;
    }
  }
  *line = l;
  *col = k;
}

static void syntax_error(vhdup__mctx *c, const yaml_parser_t *p, const char *text, size_t len) {
  unsigned line, col;
  const char *problem = p->problem != NULL ? p->problem : "malformed YAML";

  if (p->error == YAML_MEMORY_ERROR) {
    c->nomem = 1;
    return;
  }
  if (p->error == YAML_READER_ERROR) {
    offset_position(text, len, p->problem_offset, &line, &col);
    if (p->problem_value != -1)
      vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, line, col, "YAML: %s (byte 0x%02x)", problem,
                   (unsigned)p->problem_value & 0xff);
    else
      vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, line, col, "YAML: %s", problem);
    return;
  }
  line = (unsigned)p->problem_mark.line + 1;
  col = (unsigned)p->problem_mark.column + 1;
  if (p->context != NULL)
    vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, line, col, "YAML: %s %s (from %u:%u)", problem,
                 p->context, (unsigned)p->context_mark.line + 1,
                 (unsigned)p->context_mark.column + 1);
  else
    vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, line, col, "YAML: %s", problem);
}

static vhdup__mnode *node_new(vhdup__mctx *c, vhdup__mnode_type type, const yaml_mark_t *m) {
  if (c->nodes >= VHDUP__MANIFEST_MAX_NODES) {
    vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, (unsigned)m->line + 1, (unsigned)m->column + 1,
                 "the manifest holds more than %u values; refusing to read further",
                 VHDUP__MANIFEST_MAX_NODES);
    return NULL;
  }
  vhdup__mnode *n = vhdup__marena_alloc(c->tree, sizeof(*n));
  if (n == NULL) {
    c->nomem = 1;
    return NULL;
  }
  c->nodes++;
  vhdup__list_init(&n->link);
  vhdup__list_init(&n->children);
  n->type = type;
  n->line = (unsigned)m->line + 1;
  n->col = (unsigned)m->column + 1;
  return n;
}

static void attach(vhdup__mnode *parent, vhdup__mnode *n) {
  vhdup__list_push_tail(&parent->children, &n->link);
  parent->count++;
}

vhdup__mnode *vhdup__mtree_build(vhdup__mctx *c, const char *text, size_t len) {
  yaml_parser_t parser;
  vhdup__mnode *stack[VHDUP__MANIFEST_MAX_DEPTH];
  size_t depth = 0;
  vhdup__mnode *root = NULL;
  unsigned documents = 0;
  int done = 0, failed = 0;

  if (!yaml_parser_initialize(&parser)) {
    c->nomem = 1;
    return NULL;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  while (!done && !failed) {
    yaml_event_t ev;
    vhdup__mnode *n = NULL;

    if (!yaml_parser_parse(&parser, &ev)) {
      syntax_error(c, &parser, text, len);
      yaml_event_delete(&ev); /* zeroed by a failed parse; harmless */
      failed = 1;
      break;
    }
    switch (ev.type) {
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    case YAML_DOCUMENT_START_EVENT:
      if (++documents > 1) {
        vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, (unsigned)ev.start_mark.line + 1,
                     (unsigned)ev.start_mark.column + 1,
                     "a second YAML document: a manifest is one document");
        failed = 1;
      }
      break;
    case YAML_ALIAS_EVENT:
      vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, (unsigned)ev.start_mark.line + 1,
                   (unsigned)ev.start_mark.column + 1,
                   "YAML aliases (*%.40s) are not supported: write the value out (settings "
                   "shared by all uploads go under 'defaults')",
                   (const char *)ev.data.alias.anchor);
      n = node_new(c, VHDUP__MNODE_ALIAS, &ev.start_mark);
      break;
    case YAML_SCALAR_EVENT:
      n = node_new(c, VHDUP__MNODE_SCALAR, &ev.start_mark);
      if (n != NULL) {
        n->len = ev.data.scalar.length;
        n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->value = vhdup__marena_strndup(c->tree, (const char *)ev.data.scalar.value, n->len);
        if (n->value == NULL)
          c->nomem = 1;
      }
      break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      if (depth == VHDUP__MANIFEST_MAX_DEPTH) {
        vhdup__mdiag(c, VHDUP__MANIFEST_ERROR, (unsigned)ev.start_mark.line + 1,
                     (unsigned)ev.start_mark.column + 1,
                     "nested deeper than %u levels; refusing to read further",
                     VHDUP__MANIFEST_MAX_DEPTH);
        failed = 1;
        break;
      }
      n = node_new(
          c, ev.type == YAML_MAPPING_START_EVENT ? VHDUP__MNODE_MAPPING : VHDUP__MNODE_SEQUENCE,
          &ev.start_mark);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      if (depth > 0)
        depth--;
      break;
    default:
      break;
    }
    if (n != NULL) {
      if (depth > 0)
        attach(stack[depth - 1], n);
      else if (root == NULL)
        root = n;
      if (n->type == VHDUP__MNODE_MAPPING || n->type == VHDUP__MNODE_SEQUENCE)
        stack[depth++] = n;
    } else if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
               ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
      failed = 1; /* out of memory or a limit, already reported */
    }
    if (c->nomem)
      failed = 1;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  return failed ? NULL : root;
}
