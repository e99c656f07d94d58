/* Printing a command's --help. The texts name the defaults they mention as
 * {NAME}; the values come from util/defaults.h here, so what --help says
 * is what the library does. */
#include "cli/cli.h"

#include "util/defaults.h"

#include <string.h>

typedef struct help_value {
  const char *name;
  unsigned long long value;
  int is_size; /* printed as the options take it: 64M, 64K */
} help_value;

static const help_value values[] = {
    {"connections", VHDUP__DEFAULT_CONNECTIONS, 0},
    {"max_conn", VHDUP__MAX_CONNECTIONS, 0},
    {"auto_max", VHDUP__AUTO_MAX_CONNECTIONS, 0},
    {"auto_start", VHDUP__AUTO_START_CONNECTIONS, 0},
    {"memory", VHDUP__DEFAULT_MEMORY, 1},
    {"min_memory", VHDUP__MIN_MEMORY, 1},
    {"merge_gap", VHDUP__DEFAULT_MERGE_GAP, 1},
    {"retries", VHDUP__DEFAULT_MAX_ATTEMPTS, 0},
    {"blob_retries", VHDUP__DEFAULT_BLOB_OP_ATTEMPTS, 0},
    {"segment", VHDUP__DEFAULT_RANGES_SEGMENT, 1},
    {"max_results", VHDUP__DEFAULT_RANGES_MAX_RESULTS, 0},
    {"stall_timeout", VHDUP__DEFAULT_STALL_TIMEOUT_S, 0},
};

static const help_value *find_value(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
    if (strlen(values[i].name) == len && strncmp(values[i].name, name, len) == 0)
      return &values[i];
  return NULL;
}

static void put_value(FILE *out, const help_value *v) {
  static const char units[] = "KMGT";
  unsigned long long n = v->value;
  int u = -1;
  while (v->is_size && n >= 1024 && n % 1024 == 0 && u < 3) {
    n /= 1024;
    u++;
  }
  fprintf(out, "%llu", n);
  if (u >= 0)
    fputc(units[u], out);
}

void vhdup__cli_print_help(FILE *out, const char *text) {
  const char *p = text;
  for (;;) {
    const char *open = strchr(p, '{');
    if (open == NULL) {
      fputs(p, out);
      return;
    }
    fwrite(p, 1, (size_t)(open - p), out);
    const char *close = strchr(open, '}');
    const help_value *v = close != NULL ? find_value(open + 1, (size_t)(close - open - 1)) : NULL;
    if (v == NULL) { /* not a default's name: the brace is text */
      fputc('{', out);
      p = open + 1;
      continue;
    }
    put_value(out, v);
    p = close + 1;
  }
}
