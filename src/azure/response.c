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

static int xml_next(xml *x, xml_tok *t) {
  for (;;) {
    const char *p = x->p, *end = x->end;
    t->cdata = 0;
    if (p >= end)
      return X_EOF;
    if (*p != '<') {
      const char *lt = memchr(p, '<', (size_t)(end - p));
      t->s = p;
      t->n = (size_t)((lt ? lt : end) - p);
      x->p = lt ? lt : end;
      return X_TEXT;
    }
    if (end - p >= 2 && p[1] == '?') {
      const char *q = find(p + 2, end, "?>");
      if (q == NULL)
        return X_ERR;
      x->p = q + 2;
      continue;
    }
    if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
      const char *q = find(p + 4, end, "-->");
      if (q == NULL)
        return X_ERR;
      x->p = q + 3;
      continue;
    }
    if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
      const char *q = find(p + 9, end, "]]>");
      if (q == NULL)
        return X_ERR;
      t->s = p + 9;
      t->n = (size_t)(q - (p + 9));
      t->cdata = 1;
      x->p = q + 3;
      return X_TEXT;
    }
    int closing = end - p >= 2 && p[1] == '/';
    const char *n = p + 1 + closing;
    if (n >= end || !name_start(*n))
      return X_ERR;
    const char *ne = n;
    while (ne < end && name_char(*ne))
      ne++;
    t->s = n;
    t->n = (size_t)(ne - n);
    const char *q = ne;
    if (closing) {
      while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
        q++;
      if (q >= end || *q != '>')
        return X_ERR;
      x->p = q + 1;
      return X_CLOSE;
    }
    /* Attributes are skipped; quotes may hide '>'. */
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
    return (q > ne && q[-1] == '/') ? X_EMPTY : X_OPEN;
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
  if (body_len > VHDUP__AZ_ERROR_BODY_MAX)
    body_len = VHDUP__AZ_ERROR_BODY_MAX;

  xml x = {body, body, body + body_len};
  xml_tok t;
  int depth = 0, in_error = 0, field = 0; /* 1 Code, 2 Message */
  char code[sizeof(out->code)] = "", msg[1024] = "";
  size_t code_len = 0, msg_len = 0;
  int have_code = 0, have_msg = 0;
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
        have_code = 1;
      else if (depth == 2 && field == 2)
        have_msg = 1;
      if (depth == 2)
        field = 0;
      if (depth > 0)
        depth--;
    } else if (tok == X_TEXT && depth == 2) {
      /* Overlong text is cut, never an error: the message is advisory. */
      if (field == 1 && !have_code)
        (void)append_text(&t, code, &code_len, sizeof(code), 0);
      else if (field == 2 && !have_msg)
        (void)append_text(&t, msg, &msg_len, sizeof(msg), 0);
    }
  }
  if (out->code[0] == '\0' && have_code) {
    size_t s = 0;
    while (code[s] == ' ' || code[s] == '\n' || code[s] == '\r' || code[s] == '\t')
      s++;
    copy_clean(out->code, sizeof(out->code), code + s, strlen(code + s), 1);
    for (size_t e = strlen(out->code); e > 0 && out->code[e - 1] == ' '; e--)
      out->code[e - 1] = '\0';
  }
  if (have_msg) {
    size_t s = 0;
    while (msg[s] == ' ' || msg[s] == '\n' || msg[s] == '\r' || msg[s] == '\t')
      s++;
    char clean[sizeof(out->message)];
    copy_clean(clean, sizeof(clean), msg + s, strlen(msg + s), 1);
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

  xml x = {body, body, body + len};
  xml_tok t;
  int depth = 0, seen_root = 0, in_range = 0, field = 0; /* field: 1 Start, 2 End, 3 Marker */
  const char *open_s[32];
  size_t open_n[32];
  vhdup__az_page_range r = {0};
  int has_start = 0, has_end = 0, have_prev = 0;
  uint64_t prev_end = 0;
  char num[32];
  size_t num_len = 0;
  size_t marker_len = 0;
  char dummy_marker[VHDUP__AZ_MARKER_MAX + 1];
  char *marker = next_marker != NULL ? next_marker : dummy_marker;
  size_t msize = next_marker != NULL ? marker_size : sizeof(dummy_marker);
  if (msize > VHDUP__AZ_MARKER_MAX + 1)
    msize = VHDUP__AZ_MARKER_MAX + 1;
  marker[0] = '\0';

  for (;;) {
    size_t at = (size_t)(x.p - body);
    int tok = xml_next(&x, &t);
    if (tok == X_EOF)
      break;
    if (tok == X_ERR)
      return vhdup__errf(err, VHDUP_EFORMAT, "page list: malformed XML at byte %zu", at);
    if (tok == X_OPEN || tok == X_EMPTY) {
      if (depth == 0) {
        if (seen_root || !tok_is(&t, "PageList"))
          return vhdup__errf(err, VHDUP_EFORMAT,
                             "page list: expected one <PageList> root element at byte %zu", at);
        seen_root = 1;
      } else if (depth == 1) {
        if (tok_is(&t, "PageRange") || tok_is(&t, "ClearRange")) {
          in_range = 1;
          r.clear = tok_is(&t, "ClearRange");
          has_start = has_end = 0;
          if (tok == X_EMPTY)
            return vhdup__errf(err, VHDUP_EFORMAT, "page list: empty range element at byte %zu",
                               at);
        } else if (tok_is(&t, "NextMarker")) {
          field = 3;
          marker_len = 0;
          marker[0] = '\0';
        }
      } else if (depth == 2 && in_range) {
        field = tok_is(&t, "Start") ? 1 : tok_is(&t, "End") ? 2 : 0;
        if (field != 0 && ((field == 1 && has_start) || (field == 2 && has_end)))
          return vhdup__errf(err, VHDUP_EFORMAT, "page list: repeated <%s> at byte %zu",
                             field == 1 ? "Start" : "End", at);
        num_len = 0;
        num[0] = '\0';
        if (tok == X_EMPTY && field != 0)
          return vhdup__errf(err, VHDUP_EFORMAT, "page list: empty <%s> at byte %zu",
                             field == 1 ? "Start" : "End", at);
      }
      if (tok == X_EMPTY) {
        if (depth == 1)
          field = 0;
        else if (depth == 2)
          field = 0;
        continue;
      }
      if (depth >= 32)
        return vhdup__errf(err, VHDUP_EFORMAT, "page list: nesting too deep at byte %zu", at);
      open_s[depth] = t.s;
      open_n[depth] = t.n;
      depth++;
    } else if (tok == X_CLOSE) {
      if (depth == 0 || open_n[depth - 1] != t.n || memcmp(open_s[depth - 1], t.s, t.n) != 0)
        return vhdup__errf(err, VHDUP_EFORMAT,
                           "page list: close tag does not match the open element at byte %zu", at);
      if (depth == 3 && in_range && (field == 1 || field == 2)) {
        uint64_t v;
        if (parse_u64(num, &v) != 0)
          return vhdup__errf(err, VHDUP_EFORMAT,
                             "page list: <%s> is not a decimal number at byte %zu",
                             field == 1 ? "Start" : "End", at);
        if (field == 1)
          r.start = v, has_start = 1;
        else
          r.end = v, has_end = 1;
        field = 0;
      } else if (depth == 2 && in_range) {
        if (!has_start || !has_end)
          return vhdup__errf(err, VHDUP_EFORMAT, "page list: range without %s at byte %zu",
                             has_start ? "<End>" : "<Start>", at);
        if (r.start > r.end || r.start % VHDUP__AZ_PAGE != 0 ||
            r.end % VHDUP__AZ_PAGE != VHDUP__AZ_PAGE - 1 || r.end >= VHDUP__AZ_MAX_BLOB_SIZE)
          return vhdup__errf(err, VHDUP_EFORMAT,
                             "page list: invalid range %llu-%llu (must be 512-aligned, start <= "
                             "end, below 8 TiB) at byte %zu",
                             (unsigned long long)r.start, (unsigned long long)r.end, at);
        if (have_prev && r.start <= prev_end)
          return vhdup__errf(err, VHDUP_EFORMAT,
                             "page list: range %llu-%llu overlaps or precedes the previous one "
                             "at byte %zu",
                             (unsigned long long)r.start, (unsigned long long)r.end, at);
        have_prev = 1;
        prev_end = r.end;
        in_range = 0;
        if (cb != NULL) {
          int rc = cb(ctx, &r);
          if (rc != 0)
            return rc;
        }
      } else if (depth == 2 && field == 3) {
        field = 0;
      }
      depth--;
    } else if (tok == X_TEXT) {
      if (depth == 3 && in_range && (field == 1 || field == 2)) {
        if (append_text(&t, num, &num_len, sizeof(num), 1) != 0)
          return vhdup__errf(err, VHDUP_EFORMAT,
                             "page list: <%s> is malformed or too long at byte %zu",
                             field == 1 ? "Start" : "End", at);
      } else if (depth == 2 && field == 3) {
        if (append_text(&t, marker, &marker_len, msize, 1) != 0) {
          marker[0] = '\0';
          return vhdup__errf(err, VHDUP_ELIMIT,
                             "page list: <NextMarker> is malformed or longer than %zu bytes",
                             msize - 1);
        }
      } else if (depth == 0) {
        for (size_t i = 0; i < t.n; i++)
          if (t.s[i] != ' ' && t.s[i] != '\t' && t.s[i] != '\r' && t.s[i] != '\n')
            return vhdup__errf(err, VHDUP_EFORMAT,
                               "page list: text outside the root element at byte %zu", at);
      }
    }
  }
  if (!seen_root)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: no <PageList> element");
  if (depth != 0)
    return vhdup__errf(err, VHDUP_EFORMAT, "page list: truncated XML (unclosed elements)");
  return 0;
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
