#include "vhdup.h"

#include <stdio.h>

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("vhdup %s\n", vhdup_version_string());
  return 0;
}
