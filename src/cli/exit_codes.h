/* The CLI's exit codes: what a script driving vhdup can rely on. `vhdup
 * --help` prints the same table; keep the two in step.
 *
 *   code  name                    meaning
 *   ----  ----------------------  ----------------------------------------------
 *     0   VHDUP_EXIT_OK           success
 *     1   VHDUP_EXIT_RUNTIME      runtime failure: I/O error, network, out of memory
 *     2   VHDUP_EXIT_USAGE        usage error: unknown command, bad or missing options
 *     3   VHDUP_EXIT_INPUT        invalid input or source: bad VHD (footer, header,
 *                                 BAT, parent chain), missing source file, bad manifest
 *     4   VHDUP_EXIT_AUTH         authentication or authorization refused
 *     5   VHDUP_EXIT_CONFLICT     destination conflict: already exists, wrong size
 *   130   VHDUP_EXIT_INTERRUPTED  interrupted by SIGINT or SIGTERM (128 + SIGINT, as
 *                                 shells report it)
 */
#ifndef VHDUP_CLI_EXIT_CODES_H
#define VHDUP_CLI_EXIT_CODES_H

enum {
  VHDUP_EXIT_OK = 0,
  VHDUP_EXIT_RUNTIME = 1,
  VHDUP_EXIT_USAGE = 2,
  VHDUP_EXIT_INPUT = 3,
  VHDUP_EXIT_AUTH = 4,
  VHDUP_EXIT_CONFLICT = 5,
  VHDUP_EXIT_INTERRUPTED = 130,
};

/* The exit code for a vhdup or libuv error code (0 gives 0). */
int vhdup__exit_code(int err);

#endif
