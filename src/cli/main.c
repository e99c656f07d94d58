/* vhdup COMMAND [options]: finds the command in the table (cli.h) and runs
 * it; --help, --version and `help COMMAND` are answered here. */
#include "cli/cli.h"

#include <getopt.h>
#include <string.h>

typedef struct command {
  const char *name;
  const char *summary;
  const char *help;
  int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
#define VHDUP__CLI_ENTRY(name, summary)                                                            \
  {#name, summary, vhdup__cmd_##name##_help, vhdup__cmd_##name},
    VHDUP__CLI_COMMANDS(VHDUP__CLI_ENTRY)
#undef VHDUP__CLI_ENTRY
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char exit_codes_text[] =
    "Exit codes:\n"
    "    0  success\n"
    "    1  runtime failure (I/O, network, out of memory)\n"
    "    2  usage error (unknown command, bad or missing options)\n"
    "    3  invalid input or source (bad VHD, missing parent, missing file, bad manifest)\n"
    "    4  authentication or authorization refused\n"
    "    5  destination conflict (already exists, wrong size)\n"
    "  130  interrupted (SIGINT/SIGTERM)\n";

static void print_main_help(FILE *out) {
  size_t i;

  fprintf(out, "Usage: vhdup COMMAND [options]\n"
               "       vhdup help COMMAND | vhdup COMMAND --help\n"
               "       vhdup --version\n"
               "\n"
               "Puts VHD disk images (fixed, dynamic, differencing) and raw images into\n"
               "Azure page blobs; dynamic disks are expanded on the fly and only their\n"
               "non-zero data is sent.\n"
               "\n"
               "Commands:\n");
  for (i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "\nExample:\n"
          "  vhdup inspect disk.vhd\n"
          "  vhdup expand disk.vhd disk-fixed.vhd\n"
          "\n%s",
          exit_codes_text);
}

static const command *find_command(const char *name) {
  size_t i;

  for (i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static void print_command_help(const command *c) {
  vhdup__cli_print_help(stdout, c->help);
  printf("\n%s", exit_codes_text);
}

static int unknown_command(const char *name) {
  fprintf(stderr, "vhdup: unknown command '%s'\nTry 'vhdup --help'.\n", name);
  return VHDUP_EXIT_USAGE;
}

/* True when argv has --help or -h before a "--". Checked before the
 * command parses its options, so help works even beside bad options. */
static int wants_help(int argc, char **argv) {
  int i;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      return 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  const command *c;
  int opt;

  /* '+': stop at the command name; its options are its own. */
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
    switch (opt) {
    case 'h':
      print_main_help(stdout);
      return VHDUP_EXIT_OK;
    case 'V':
      printf("vhdup %s\n", vhdup_version_string());
      return VHDUP_EXIT_OK;
    default:
      fprintf(stderr, "vhdup: unknown option '%s'\nTry 'vhdup --help'.\n", argv[optind - 1]);
      return VHDUP_EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    print_main_help(stderr);
    return VHDUP_EXIT_USAGE;
  }
  argc -= optind;
  argv += optind;
  if (strcmp(argv[0], "help") == 0) {
    if (argc < 2) {
      print_main_help(stdout);
      return VHDUP_EXIT_OK;
    }
    c = find_command(argv[1]);
    if (c == NULL)
      return unknown_command(argv[1]);
    print_command_help(c);
    return VHDUP_EXIT_OK;
  }
  c = find_command(argv[0]);
  if (c == NULL)
    return unknown_command(argv[0]);
  if (wants_help(argc, argv)) {
    print_command_help(c);
    return VHDUP_EXIT_OK;
  }
  /* Each command parses its own argv from the start. */
  optind = 0;
  return c->run(argc, argv);
}
