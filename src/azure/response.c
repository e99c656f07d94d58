/* Responses: error code and message (status-and-error-codes2: the body is
 * <Error><Code>..</Code><Message>..</Message></Error>, the code is also in
 * x-ms-error-code), page-range XML (get-page-ranges), classification and
 * backoff (docs/azure.md, "Errors and retries").
 *
 * The XML is read by a small pull scanner that knows elements, text, CDATA,
 * comments and the prolog, and refuses DOCTYPE. It never allocates and never
 * reads past the given length, so hostile bodies cost at most one pass. */
#include "azure/azure.h"

#include "azure/internal.h"
#include "util/secret.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ the scanner */

enum { X_EOF, X_OPEN, X_CLOSE, X_EMPTY, X_TEXT, X_ERR };

typedef struct xml {
  const char *base;
  const char *p;
  const char *end;
} xml;

typedef struct xml_tok {
  const char *s; /* name (tags) or text */
  size_t n;
  int cdata; /* text from CDATA: no entities */
} xml_tok;

static int name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static const char *find(const char *p, const char *end, const char *needle) {
  size_t n = strlen(needle);
  for (; (size_t)(end - p) >= n; p++)
    if (memcmp(p, needle, n) == 0)
      return p;
  return NULL;
}

static int starts_with(const char *p, const char *end, const char *prefix) {
  size_t n = strlen(prefix);
  return (size_t)(end - p) >= n && memcmp(p, prefix, n) == 0;
}

/* Moves past the next terminator at or after from (a processing
 * instruction's "?>", a comment's "-->"); -1 if there is none. */
static int skip_past(xml *x, const char *from, const char *terminator) {
  const char *q = find(from, x->end, terminator);
  if (q == NULL)
    return -1;
  x->p = q + strlen(terminator);
  return 0;
}

/* Text up to the next '<' or the end. */
static int scan_text(xml *x, xml_tok *t) {
  const char *lt = memchr(x->p, '<', (size_t)(x->end - x->p));
  t->s = x->p;
  t->n = (size_t)((lt ? lt : x->end) - x->p);
  x->p = lt ? lt : x->end;
  return X_TEXT;
}

/* "<![CDATA[...]]>": the text between, taken literally. */
static int scan_cdata(xml *x, xml_tok *t) {
  const char *s = x->p + 9;
  const char *q = find(s, x->end, "]]>");
  if (q == NULL)
    return X_ERR;
  t->s = s;
  t->n = (size_t)(q - s);
  t->cdata = 1;
  x->p = q + 3;
  return X_TEXT;
}

/* The rest of an open tag from q (after the name): attributes are skipped,
 * and quotes may hide '>'. "/>" makes it an empty element. */
static int scan_open_rest(xml *x, const char *name_end) {
  const char *q = name_end, *end = x->end;
  char quote = 0;
  for (; q < end; q++) {
    if (quote) {
      if (*q == quote)
        quote = 0;
    } else if (*q == '"' || *q == '\'') {
      quote = *q;
    } else if (*q == '>') {
      break;
    } else if (*q == '<') {
      return X_ERR;
    }
  }
  if (q >= end)
    return X_ERR;
  x->p = q + 1;
  return (q > name_end && q[-1] == '/') ? X_EMPTY : X_OPEN;
}

/* An open, close or empty-element tag; t gets the name. */
static int scan_tag(xml *x, xml_tok *t) {
  const char *p = x->p, *end = x->end;
  int closing = end - p >= 2 && p[1] == '/';
  const char *n = p + 1 + closing;
  if (n >= end || !name_start(*n))
    return X_ERR;
  const char *ne = n;
  while (ne < end && name_char(*ne))
    ne++;
  t->s = n;
  t->n = (size_t)(ne - n);
  if (!closing)
    return scan_open_rest(x, ne);
  const char *q = ne;
  while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
    q++;
  if (q >= end || *q != '>')
    return X_ERR;
  x->p = q + 1;
  return X_CLOSE;
}

/* The next token; processing instructions and comments are skipped
 * wherever they stand. */
static int xml_next(xml *x, xml_tok *t) {
  for (;;) {
    const char *p = x->p, *end = x->end;
    t->cdata = 0;
    if (p >= end)
      return X_EOF;
    if (*p != '<')
      return scan_text(x, t);
    if (starts_with(p, end, "<?") || starts_with(p, end, "<!--")) {
      int pi = p[1] == '?';
      if (skip_past(x, p + (pi ? 2 : 4), pi ? "?>" : "-->") != 0)
        return X_ERR;
      continue;
    }
    if (starts_with(p, end, "<![CDATA["))
      return scan_cdata(x, t);
    return scan_tag(x, t);
  }
}

static int tok_is(const xml_tok *t, const char *name) {
  size_t n = strlen(name);
  return t->n == n && memcmp(t->s, name, n) == 0;
}

/* Appends text to out[*len..size) decoding the five predefined entities and
 * character references (ASCII range only; others become '?'). Returns -1 on
 * overflow or (strict) an unknown entity. */
static int append_text(const xml_tok *t, char *out, size_t *len, size_t size, int strict) {
  for (size_t i = 0; i < t->n; i++) {
    char c = t->s[i];
    if (c == '&' && !t->cdata) {
      static const struct {
        const char *name;
        char c;
      } ents[] = {{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}};
      size_t rest = t->n - i - 1;
      const char *r = t->s + i + 1;
      int matched = 0;
      for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
        size_t el = strlen(ents[k].name);
        if (rest >= el && memcmp(r, ents[k].name, el) == 0) {
          c = ents[k].c;
          i += el;
          matched = 1;
          break;
        }
      }
      if (!matched && rest >= 3 && r[0] == '#') {
        size_t j = 1;
        int hex = r[1] == 'x';
        unsigned long v = 0;
        j += (size_t)hex;
        size_t digits = 0;
        while (j < rest && digits < 8) {
          int d = hex ? vhdup__az_hexval(r[j]) : (r[j] >= '0' && r[j] <= '9' ? r[j] - '0' : -1);
          if (d < 0)
            break;
          v = v * (hex ? 16 : 10) + (unsigned long)d;
          j++, digits++;
        }
        if (digits > 0 && j < rest && r[j] == ';') {
          c = (v >= 0x20 && v < 0x7f) ? (char)v : '?';
          i += j + 1;
          matched = 1;
        }
      }
      if (!matched && strict)
        return -1;
    }
    if (*len + 1 >= size)
      return -1;
    out[(*len)++] = c;
  }
  out[*len] = '\0';
  return 0;
}

/* --------------------------------------------------------------- errors */

static void copy_clean(char *out, size_t size, const char *s, size_t n, int first_line) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (first_line && (c == '\n' || c == '\r'))
      break;
    out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : (c == '\t' ? ' ' : '?');
  }
  out[o] = '\0';
}

/* <Code> and <Message> of an <Error> body, as first seen (entities decoded,
 * cut at the buffer size). */
typedef struct error_body {
  char code[sizeof(((vhdup__az_error_info *)0)->code)];
  char msg[1024];
  int have_code, have_msg;
} error_body;

static void scan_error_body(const char *body, size_t body_len, error_body *eb) {
  xml x = {body, body, body + body_len};
  xml_tok t;
  int depth = 0, in_error = 0, field = 0; /* 1 Code, 2 Message */
  size_t code_len = 0, msg_len = 0;
  for (int tok; (tok = xml_next(&x, &t)) != X_EOF && tok != X_ERR;) {
    if (tok == X_OPEN) {
      depth++;
      if (depth > 64)
        break;
      if (depth == 1)
        in_error = tok_is(&t, "Error");
      else if (depth == 2 && in_error)
        field = tok_is(&t, "Code") ? 1 : tok_is(&t, "Message") ? 2 : 0;
    } else if (tok == X_CLOSE) {
      if (depth == 2 && field == 1)
        eb->have_code = 1;
      else if (depth == 2 && field == 2)
        eb->have_msg = 1;
      if (depth == 2)
        field = 0;
      if (depth > 0)
        depth--;
    } else if (tok == X_TEXT && depth == 2) {
      /* Overlong text is cut, never an error: the message is advisory. */
      if (field == 1 && !eb->have_code)
        (void)append_text(&t, eb->code, &code_len, sizeof(eb->code), 0);
      else if (field == 2 && !eb->have_msg)
        (void)append_text(&t, eb->msg, &msg_len, sizeof(eb->msg), 0);
    }
  }
}

static const char *skip_space(const char *s) {
  while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
    s++;
  return s;
}

void vhdup__az_error_parse(int status, const vhdup__az_header *h, size_t n, const char *body,
                           size_t body_len, vhdup__az_error_info *out) {
  memset(out, 0, sizeof(*out));
  out->status = status;
  const char *v = vhdup__az_header_find(h, n, "x-ms-request-id");
  if (v != NULL)
    copy_clean(out->request_id, sizeof(out->request_id), v, strlen(v), 1);
  v = vhdup__az_header_find(h, n, "x-ms-error-code");
  if (v != NULL)
    copy_clean(out->code, sizeof(out->code), v, strlen(v), 1);
  if (body == NULL || body_len == 0)
    return;
  error_body eb = {"", "", 0, 0};
  scan_error_body(body, body_len < VHDUP__AZ_ERROR_BODY_MAX ? body_len : VHDUP__AZ_ERROR_BODY_MAX,
                  &eb);
  if (out->code[0] == '\0' && eb.have_code) {
    const char *c = skip_space(eb.code);
    copy_clean(out->code, sizeof(out->code), c, strlen(c), 1);
    for (size_t e = strlen(out->code); e > 0 && out->code[e - 1] == ' '; e--)
      out->code[e - 1] = '\0';
  }
  if (eb.have_msg) {
    const char *m = skip_space(eb.msg);
    char clean[sizeof(out->message)];
    copy_clean(clean, sizeof(clean), m, strlen(m), 1);
    vhdup__redact(clean, strlen(clean), out->message, sizeof(out->message));
  }
}

size_t vhdup__az_error_format(const vhdup__az_error_info *e, char *out, size_t out_size) {
  char tmp[VHDUP__ERRMSG_MAX];
  size_t n = 0;
  int w = snprintf(tmp, sizeof(tmp), "HTTP %d", e->status);
  n = w > 0 ? (size_t)w : 0;
  if (e->code[0] != '\0' && n < sizeof(tmp)) {
    w = snprintf(tmp + n, sizeof(tmp) - n, " %s", e->code);
    n += w > 0 ? (size_t)w : 0;
  }
  if (e->message[0] != '\0' && n < sizeof(tmp)) {
    w = snprintf(tmp + n, sizeof(tmp) - n, ": %s", e->message);
    n += w > 0 ? (size_t)w : 0;
  }
  if (e->request_id[0] != '\0' && n < sizeof(tmp)) {
    w = snprintf(tmp + n, sizeof(tmp) - n, " (request id %s)", e->request_id);
    n += w > 0 ? (size_t)w : 0;
  }
  if (out_size == 0)
    return 0;
  /* Whatever the fields held, no SAS signature leaves this function. */
  vhdup__redact(tmp, strlen(tmp), out, out_size);
  return strlen(out);
}

/* ----------------------------------------------------------- page ranges */

/* Strict decimal: optional surrounding whitespace, digits only, no sign,
 * no overflow. */
static int parse_u64(const char *s, uint64_t *v) {
  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
    s++;
  if (*s < '0' || *s > '9')
    return -1;
  uint64_t r = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (r > (UINT64_MAX - d) / 10)
      return -1;
    r = r * 10 + d;
  }
  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
    s++;
  if (*s != '\0')
    return -1;
  *v = r;
  return 0;
}

/* What the text at the current element goes to. */
enum { F_NONE, F_START, F_END, F_MARKER };

#define PAGE_LIST_DEPTH_MAX 32

/* The state of one Get Page Ranges body: the open elements (to match close
 * tags), the range being read, the previous range's end (ranges come in
 * order, without overlap) and the NextMarker buffer. */
typedef struct page_list {
  vhdup__az_range_cb cb;
  void *ctx;
  int depth, seen_root, in_range, field;
  const char *open_s[PAGE_LIST_DEPTH_MAX];
  size_t open_n[PAGE_LIST_DEPTH_MAX];
  vhdup__az_page_range r;
  int has_start, has_end, have_prev;
  uint64_t prev_end;
  char num[32];
  size_t num_len;
  char *marker;
  size_t marker_size, marker_len;
} page_list;

static const char *field_name(int field) {
  return field == F_START ? "Start" : "End";
}

/* An element opening at depth 1: a range or the NextMarker. */
static int open_child(page_list *pl, int tok, const xml_tok *t, size_t at, vhdup__err *err) {
  if (tok_is(t, "PageRange") || tok_is(t, "ClearRange")) {
    pl->in_range = 1;
    pl->r.clear = tok_is(t, "ClearRange");
    pl->has_start = pl->has_end = 0;
    if (tok == X_EMPTY)
      return vhdup__errf(err, VHDUP_EFORMAT, "page list: empty range element at byte %zu", at);
  } else if (tok_is(t, "NextMarker")) {
    pl->field = F_MARKER;
    pl->marker_len = 0;
    pl->marker[0] = '\0';
  }
  return 0;
}

/* An element opening inside a range: <Start> or <End>, once each. */
static int open_range_field(page_list *pl, int tok, const xml_tok *t, size_t at, vhdup__err *err) {
  pl->field = tok_is(t, "Start") ? F_START : tok_is(t, "End") ? F_END : F_NONE;
  if ((pl->field == F_START && pl->has_start) || (pl->field == F_END && pl->has_end))
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: repeated <%s> at byte %zu",
                       field_name(pl->field), at);
  pl->num_len = 0;
  pl->num[0] = '\0';
  if (tok == X_EMPTY && pl->field != F_NONE)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: empty <%s> at byte %zu",
                       field_name(pl->field), at);
  return 0;
}

/* An open or empty-element tag: one <PageList> root; its children. */
static int on_open(page_list *pl, int tok, const xml_tok *t, size_t at, vhdup__err *err) {
  int rc = 0;
  if (pl->depth == 0) {
    if (pl->seen_root || !tok_is(t, "PageList"))
      return vhdup__errf(err, VHDUP_EFORMAT,
                         "page list: expected one <PageList> root element at byte %zu", at);
    pl->seen_root = 1;
  } else if (pl->depth == 1) {
    rc = open_child(pl, tok, t, at, err);
  } else if (pl->depth == 2 && pl->in_range) {
    rc = open_range_field(pl, tok, t, at, err);
  }
  if (rc != 0)
    return rc;
  if (tok == X_EMPTY) {
    if (pl->depth == 1 || pl->depth == 2)
      pl->field = F_NONE;
    return 0;
  }
  if (pl->depth >= PAGE_LIST_DEPTH_MAX)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: nesting too deep at byte %zu", at);
  pl->open_s[pl->depth] = t->s;
  pl->open_n[pl->depth] = t->n;
  pl->depth++;
  return 0;
}

/* The end of <Start> or <End>: its text is a decimal number. */
static int close_range_field(page_list *pl, size_t at, vhdup__err *err) {
  uint64_t v;
  if (parse_u64(pl->num, &v) != 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: <%s> is not a decimal number at byte %zu",
                       field_name(pl->field), at);
  if (pl->field == F_START)
    pl->r.start = v, pl->has_start = 1;
  else
    pl->r.end = v, pl->has_end = 1;
  pl->field = F_NONE;
  return 0;
}

/* The end of a range: both bounds, whole 512-byte pages below the largest
 * blob (get-page-ranges), after the previous range; then handed on. */
static int close_range(page_list *pl, size_t at, vhdup__err *err) {
  const vhdup__az_page_range *r = &pl->r;
  if (!pl->has_start || !pl->has_end)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: range without %s at byte %zu",
                       pl->has_start ? "<End>" : "<Start>", at);
  if (r->start > r->end || r->start % VHDUP__AZ_PAGE != 0 ||
      r->end % VHDUP__AZ_PAGE != VHDUP__AZ_PAGE - 1 || r->end >= VHDUP__AZ_MAX_BLOB_SIZE)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "page list: invalid range %llu-%llu (must be 512-aligned, start <= "
                       "end, below 8 TiB) at byte %zu",
                       (unsigned long long)r->start, (unsigned long long)r->end, at);
  if (pl->have_prev && r->start <= pl->prev_end)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "page list: range %llu-%llu overlaps or precedes the previous one "
                       "at byte %zu",
                       (unsigned long long)r->start, (unsigned long long)r->end, at);
  pl->have_prev = 1;
  pl->prev_end = r->end;
  pl->in_range = 0;
  return pl->cb != NULL ? pl->cb(pl->ctx, r) : 0;
}

/* A close tag: it must match the open element; ends a number, a range or
 * the NextMarker. */
static int on_close(page_list *pl, const xml_tok *t, size_t at, vhdup__err *err) {
  int d = pl->depth;
  if (d == 0 || pl->open_n[d - 1] != t->n || memcmp(pl->open_s[d - 1], t->s, t->n) != 0)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "page list: close tag does not match the open element at byte %zu", at);
  int rc = 0;
  if (d == 3 && pl->in_range && (pl->field == F_START || pl->field == F_END))
    rc = close_range_field(pl, at, err);
  else if (d == 2 && pl->in_range)
    rc = close_range(pl, at, err);
  else if (d == 2 && pl->field == F_MARKER)
    pl->field = F_NONE;
  if (rc != 0)
    return rc;
  pl->depth--;
  return 0;
}

/* Text: collected for a number or the NextMarker; outside the root only
 * whitespace. */
static int on_text(page_list *pl, const xml_tok *t, size_t at, vhdup__err *err) {
  if (pl->depth == 3 && pl->in_range && (pl->field == F_START || pl->field == F_END)) {
    if (append_text(t, pl->num, &pl->num_len, sizeof(pl->num), 1) != 0)
      return vhdup__errf(err, VHDUP_EFORMAT, "page list: <%s> is malformed or too long at byte %zu",
                         field_name(pl->field), at);
  } else if (pl->depth == 2 && pl->field == F_MARKER) {
    if (append_text(t, pl->marker, &pl->marker_len, pl->marker_size, 1) != 0) {
      pl->marker[0] = '\0';
      return vhdup__errf(err, VHDUP_ELIMIT,
                         "page list: <NextMarker> is malformed or longer than %zu bytes",
                         pl->marker_size - 1);
    }
  } else if (pl->depth == 0) {
    for (size_t i = 0; i < t->n; i++)
      if (t->s[i] != ' ' && t->s[i] != '\t' && t->s[i] != '\r' && t->s[i] != '\n')
        return vhdup__errf(err, VHDUP_EFORMAT,
                           "page list: text outside the root element at byte %zu", at);
  }
  return 0;
}

/* Runs the scanner over the body, dispatching each token. */
static int scan_page_list(page_list *pl, const char *body, size_t len, vhdup__err *err) {
  xml x = {body, body, body + len};
  xml_tok t;
  for (;;) {
    size_t at = (size_t)(x.p - body);
    int tok = xml_next(&x, &t), rc = 0;
    if (tok == X_EOF)
      break;
    if (tok == X_ERR)
      return vhdup__errf(err, VHDUP_EFORMAT, "page list: malformed XML at byte %zu", at);
    if (tok == X_OPEN || tok == X_EMPTY)
      rc = on_open(pl, tok, &t, at, err);
    else if (tok == X_CLOSE)
      rc = on_close(pl, &t, at, err);
    else if (tok == X_TEXT)
      rc = on_text(pl, &t, at, err);
    if (rc != 0)
      return rc;
  }
  if (!pl->seen_root)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: no <PageList> element");
  if (pl->depth != 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: truncated XML (unclosed elements)");
  return 0;
}

int vhdup__az_page_list_parse(const char *body, size_t len, size_t max_body, vhdup__az_range_cb cb,
                              void *ctx, char *next_marker, size_t marker_size, vhdup__err *err) {
  if (max_body == 0)
    max_body = VHDUP__AZ_PAGELIST_BODY_MAX;
  if (next_marker != NULL && marker_size > 0)
    next_marker[0] = '\0';
  if (len > max_body)
    return vhdup__errf(err, VHDUP_ELIMIT, "page list: body of %zu bytes exceeds the limit of %zu",
                       len, max_body);
  if (body == NULL)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: empty body");
  /* Without a caller's buffer the marker is still read (and checked). */
  char dummy_marker[VHDUP__AZ_MARKER_MAX + 1];
  page_list pl = {.cb = cb, .ctx = ctx};
  pl.marker = next_marker != NULL ? next_marker : dummy_marker;
  pl.marker_size = next_marker != NULL ? marker_size : sizeof(dummy_marker);
  if (pl.marker_size > VHDUP__AZ_MARKER_MAX + 1)
    pl.marker_size = VHDUP__AZ_MARKER_MAX + 1;
  pl.marker[0] = '\0';
  return scan_page_list(&pl, body, len, err);
}

typedef struct array_ctx {
  vhdup__az_page_range *ranges;
  size_t cap;
  size_t count;
  int overflow; /* the caller's array was full: not the parser's own limit */
} array_ctx;

static int array_add(void *ctx, const vhdup__az_page_range *r) {
  array_ctx *a = ctx;
  if (a->count == a->cap) {
    a->overflow = 1;
    return VHDUP_ELIMIT;
  }
  a->ranges[a->count++] = *r;
  return 0;
}

int vhdup__az_page_list_parse_array(const char *body, size_t len, size_t max_body,
                                    vhdup__az_page_range *ranges, size_t cap, size_t *count,
                                    char *next_marker, size_t marker_size, vhdup__err *err) {
  array_ctx a = {ranges, cap, 0, 0};
  int rc =
      vhdup__az_page_list_parse(body, len, max_body, array_add, &a, next_marker, marker_size, err);
  *count = a.count;
  if (rc == VHDUP_ELIMIT && a.overflow)
    return vhdup__errf(err, VHDUP_ELIMIT, "page list: more than %zu ranges", cap);
  return rc;
}
