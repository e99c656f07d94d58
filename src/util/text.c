#include "util/text.h"

#include <string.h>

static char fold(char c, int nocase) {
  return nocase && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

unsigned vhdup__edit_distance(const char *a, const char *b, int nocase, unsigned cap) {
  unsigned rows[3][VHDUP__TEXT_NAME_MAX + 1];
  size_t la = strlen(a), lb = strlen(b);
  if (la > VHDUP__TEXT_NAME_MAX || lb > VHDUP__TEXT_NAME_MAX)
    return cap + 1;
  unsigned *two = rows[0], *one = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= lb; j++)
    one[j] = (unsigned)j;
  for (size_t i = 1; i <= la; i++) {
    unsigned best;
    cur[0] = best = (unsigned)i;
    char ai = fold(a[i - 1], nocase);
    for (size_t j = 1; j <= lb; j++) {
      char bj = fold(b[j - 1], nocase);
      unsigned v = one[j - 1] + (ai != bj);
      if (one[j] + 1 < v)
        v = one[j] + 1;
      if (cur[j - 1] + 1 < v)
        v = cur[j - 1] + 1;
      if (i > 1 && j > 1 && ai == fold(b[j - 2], nocase) && fold(a[i - 2], nocase) == bj &&
          two[j - 2] + 1 < v)
        v = two[j - 2] + 1;
      cur[j] = v;
      if (v < best)
        best = v;
    }
    if (best > cap)
      return cap + 1;
    unsigned *t = two;
    two = one;
    one = cur;
    cur = t;
  }
  return one[lb] > cap ? cap + 1 : one[lb];
}

const char *vhdup__suggest(const char *s, const char *const *names, size_t n, int nocase) {
  size_t len = strlen(s);
  unsigned cap = len <= 4 ? 1 : 2, best = cap + 1;
  const char *found = NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned d = vhdup__edit_distance(s, names[i], nocase, cap);
    if (d < best && d < len) {
      best = d;
      found = names[i];
    }
  }
  return found;
}
