/* Helpers shared by the files of src/azure: a growable string with a sticky
 * out-of-memory flag, and small ASCII utilities (locale-free on purpose:
 * header names and XML tags are ASCII). */
#ifndef VHDUP_AZURE_INTERNAL_H
#define VHDUP_AZURE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct vhdup__az_sb {
  char *p;
  size_t len;
  size_t cap;
  int oom;
} vhdup__az_sb;

void vhdup__az_sb_addn(vhdup__az_sb *sb, const char *s, size_t n);
void vhdup__az_sb_add(vhdup__az_sb *sb, const char *s);
void vhdup__az_sb_addc(vhdup__az_sb *sb, char c);
void vhdup__az_sb_addu64(vhdup__az_sb *sb, uint64_t v);
/* Returns the string (owned by the caller) or NULL if any append failed. */
char *vhdup__az_sb_take(vhdup__az_sb *sb);
void vhdup__az_sb_free(vhdup__az_sb *sb);

static inline char vhdup__az_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}
static inline int vhdup__az_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
/* A character of a DNS host name: letters, digits, '-' and '.' (the rule
 * for URL hosts and for a connection string's EndpointSuffix). */
static inline int vhdup__az_host_char(char c) {
  return vhdup__az_alnum(c) || c == '-' || c == '.';
}
int vhdup__az_strncaseeq(const char *a, const char *b, size_t n);
int vhdup__az_hexval(char c);
/* Whether a SAS query (without its '?') is signed: it has a `sig`
 * parameter with a value (create-service-sas: the signature is what makes
 * a query a SAS). The one rule for credentials, connection strings and
 * URLs; redaction (util/secret.h) hides any `sig` it finds, signed or not. */
int vhdup__az_sas_signed(const char *query);

#endif
