/* Secrets (account keys, SAS tokens, connection strings, and later tokens
 * and client secrets): the one place that says how vhdup reads them, hides
 * them in text and forgets them.
 *   - reading: a file or variable holds one secret of at most
 *     VHDUP__SECRET_MAX bytes; longer is an error, never a truncation;
 *   - showing: a SAS signature's value (`sig=` or `sig%3D`, also inside a
 *     longer text) becomes REDACTED wherever text may reach the user;
 *   - forgetting: memory that held a secret is wiped before it is freed. */
#ifndef VHDUP_UTIL_SECRET_H
#define VHDUP_UTIL_SECRET_H

#include "util/defaults.h"

#include <stddef.h>

/* Zeroes n bytes in a way the compiler may not drop. */
void vhdup__wipe(void *p, size_t n);
/* Wipes a NUL-terminated secret from vhdup__malloc and frees it; NULL is
 * fine. */
void vhdup__secret_free(char *s);

/* The one rule for a secret's text: surrounding white space (a file's last
 * newline) is trimmed, and what is left must be non-empty, one line, with
 * no control characters, and at most VHDUP__SECRET_MAX bytes. Returns 0 with
 * *out a copy (free with vhdup__secret_free), VHDUP_ELIMIT (too long),
 * VHDUP_ECREDENTIAL (empty, several lines, control characters) or
 * VHDUP_ENOMEM. The caller words the message: it knows where the text came
 * from. */
int vhdup__secret_take(const char *text, size_t len, char **out)
    __attribute__((warn_unused_result));

/* Reads the file at path whole into *buf (from vhdup__malloc, *len bytes,
 * NUL-terminated; wipe and free it). Returns 0, VHDUP_ELIMIT when the file
 * has more than VHDUP__SECRET_MAX bytes (nothing is returned), VHDUP_ENOMEM,
 * or a negative errno-style code from opening or reading (-ENOENT...). */
int vhdup__secret_read_file(const char *path, char **buf, size_t *len)
    __attribute__((warn_unused_result));

/* Copies text[0..len) into out (always NUL-terminated, truncated to fit)
 * with the value of every SAS signature replaced by REDACTED: `sig=` or
 * `sig%3D` (any case) at the start or after one of ?&;, white space, a
 * quote, %26 or %3F, up to the next &, #, white space, quote, <, > or ;. Returns the
 * length written. */
size_t vhdup__redact(const char *text, size_t len, char *out, size_t out_size);
/* The same into a new string (vhdup__malloc); NULL only when out of memory. */
char *vhdup__redact_dup(const char *text);
/* Nonzero when text[0..len) holds a SAS signature that vhdup__redact
 * would hide. */
int vhdup__has_sig(const char *text, size_t len);

#endif
