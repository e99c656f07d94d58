/* The command-line tool: the table of commands and what they share (opening
 * a disk with the user's options, error reporting, sizes for humans). */
#ifndef VHDUP_CLI_CLI_H
#define VHDUP_CLI_CLI_H

#include "cli/exit_codes.h"
#include "upload/file_src.h"
#include "vhd/vhd.h"

#include <stdint.h>
#include <stdio.h>

/* Every command: name and one-line summary. Adding a command is one line
 * here plus its file defining vhdup__cmd_NAME() and vhdup__cmd_NAME_help[]
 * (usage, what it does, options, an example; the dispatcher appends the
 * exit-code table). run() gets argv[0] == the command name and returns an
 * exit code. */
#define VHDUP__CLI_COMMANDS(XX)                                                                    \
  XX(inspect, "show a disk image's format, sizes, allocation, parent chain and Azure fit")         \
  XX(upload, "upload a disk into an Azure page blob as a fixed VHD, sending only its data")        \
  XX(run, "upload every disk a YAML manifest lists, sharing one connection and memory budget")     \
  XX(expand, "write the fixed VHD an upload would create, as a sparse local file")                 \
  XX(blob, "show a blob's properties or page ranges (debugging; same credentials as upload)")

#define VHDUP__CLI_DECLARE(name, summary)                                                          \
  int vhdup__cmd_##name(int argc, char **argv);                                                    \
  extern const char vhdup__cmd_##name##_help[];
VHDUP__CLI_COMMANDS(VHDUP__CLI_DECLARE)
#undef VHDUP__CLI_DECLARE

#define VHDUP__MIB ((uint64_t)1024 * 1024)

/* Prints "vhdup: COMMAND: MSG" and a pointer to --help on stderr; returns
 * VHDUP_EXIT_USAGE. */
int vhdup__cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reports getopt_long's ':' (missing argument) or '?' (unknown option);
 * optstrings start with ':' and opterr is 0 so the words are ours. Returns
 * VHDUP_EXIT_USAGE. */
int vhdup__cli_bad_option(const char *cmd, int opt, char **argv);

/* Parses --format's argument. Returns 0 or -1. */
int vhdup__cli_parse_format(const char *s, vhdup__fmt *out);

/* The source disk as the user named it: its file, opened and validated
 * with its parents. */
typedef struct vhdup__cli_disk {
  vhdup__file *file;
  vhdup__disk *disk;
} vhdup__cli_disk;

/* Opens and validates path. On failure prints "vhdup: PATH: what" on
 * stderr and returns the exit code; returns 0 on success. */
int vhdup__cli_open_disk(const char *path, vhdup__fmt fmt, const char *parent_override,
                         vhdup__cli_disk *cd);
void vhdup__cli_close_disk(vhdup__cli_disk *cd);

/* Prints "vhdup: FILE: MSG" for a failure with detail in err (or, when err
 * has no message, the code's description); returns the exit code. */
int vhdup__cli_report(const char *file, int code, const vhdup__err *err);

/* Prints "vhdup: warning: FILE: MSG" on stderr. */
void vhdup__cli_warn(const char *file, const char *msg);

/* Writes s (n bytes) as a JSON string literal; bytes that are not
 * printable ASCII become \u00XX, so the output is valid JSON whatever the
 * input (paths need not be UTF-8). */
void vhdup__cli_json_str_n(FILE *out, const char *s, size_t n);
void vhdup__cli_json_str(FILE *out, const char *s);

/* "1 GiB", "1.50 MiB", "512 bytes": into buf, returned. */
const char *vhdup__cli_human_size(uint64_t n, char *buf, size_t size);

/* Reads a secret (account key, SAS token) from a file, trailing newline
 * and spaces dropped. NULL after printing why (unreadable or empty). Free
 * with vhdup__cli_free_secret, which wipes it. */
char *vhdup__cli_read_secret_file(const char *path, const char *what);
void vhdup__cli_free_secret(char *s);

/* "64M", "512", "1GiB" (K, M, G, T are powers of 1024). Returns 0 or -1. */
int vhdup__cli_parse_size(const char *s, uint64_t *out);
/* A decimal in [min, max]. Returns 0 or -1. */
int vhdup__cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/* SIGINT/SIGTERM set a flag the long-running commands poll between
 * chunks, so they can clean up and exit 130. */
void vhdup__cli_catch_signals(void);
int vhdup__cli_interrupted(void);

#endif
