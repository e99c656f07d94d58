/* Small string rules shared by every parser: suggestions for a mistyped
 * name ("did you mean ...?"). */
#ifndef VHDUP_UTIL_TEXT_H
#define VHDUP_UTIL_TEXT_H

#include <stddef.h>

/* Optimal string alignment distance between a and b: insertions, deletions,
 * substitutions and swaps of two neighbours ("kye" for "key") cost one
 * each; letters compare case-insensitively when nocase. Capped: returns at
 * most cap + 1 (also for strings longer than VHDUP__TEXT_NAME_MAX). */
#define VHDUP__TEXT_NAME_MAX 64
unsigned vhdup__edit_distance(const char *a, const char *b, int nocase, unsigned cap);

/* The closest of names[0..n) to s when close enough to be a typo (one edit
 * for names up to 4 letters, two beyond, and fewer than s has letters);
 * NULL otherwise. */
const char *vhdup__suggest(const char *s, const char *const *names, size_t n, int nocase);

#endif
