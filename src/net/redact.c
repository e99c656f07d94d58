#include "net/http.h"

#include <string.h>
#include <strings.h>

/* A SAS signature's value ends where its query parameter does. Anything that
 * cannot appear in a URL also ends it, so text around a URL stays intact. */
static int ends_value(char c) {
  return c == '&' || c == '#' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' ||
         c == '\'' || c == '<' || c == '>' || c == ';' || c == ',' || c == '\0';
}

size_t vhdup__http_redact(const char *text, size_t len, char *out, size_t out_size) {
  static const char redacted[] = "REDACTED";
  size_t i = 0, o = 0;
  if (out_size == 0)
    return 0;
  while (i < len && o + 1 < out_size) {
    size_t key = 0;
    if (len - i >= 4 && strncasecmp(text + i, "sig=", 4) == 0)
      key = 4;
    else if (len - i >= 6 && strncasecmp(text + i, "sig%3d", 6) == 0)
      key = 6;
    if (key == 0) {
      out[o++] = text[i++];
      continue;
    }
    for (size_t k = 0; k < key && o + 1 < out_size; k++)
      out[o++] = text[i++];
    while (i < len && !ends_value(text[i]))
      i++;
    for (size_t k = 0; k < sizeof(redacted) - 1 && o + 1 < out_size; k++)
      out[o++] = redacted[k];
  }
  out[o] = '\0';
  return o;
}
