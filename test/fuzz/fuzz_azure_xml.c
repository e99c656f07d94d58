/* Fuzzes what the service sends back: error bodies and Get Page Ranges XML.
 * The first byte picks the parser and the limits so both see every input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "azure/azure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_range(void *ctx, const vhdup__az_page_range *r) {
  uint64_t *prev_end = ctx;
  /* The parser promises aligned, ordered, bounded ranges. */
  if (r->start % 512 != 0 || r->end % 512 != 511 || r->start > r->end ||
      r->end >= VHDUP__AZ_MAX_BLOB_SIZE || (*prev_end != UINT64_MAX && r->start <= *prev_end))
    abort();
  *prev_end = r->end;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *body = (const char *)data;
  vhdup__err err;

  vhdup__az_error_info info;
  vhdup__az_header h[2] = {{"x-ms-request-id", "r1"}, {"Retry-After", "5"}};
  vhdup__az_error_parse(500, h, 2, body, size, &info);
  if (strlen(info.code) >= sizeof(info.code) || strlen(info.message) >= sizeof(info.message))
    abort();
  char msg[512];
  vhdup__az_error_format(&info, msg, sizeof(msg));

  uint64_t prev_end = UINT64_MAX;
  char marker[64];
  vhdup__az_page_list_parse(body, size, 0, check_range, &prev_end, marker, sizeof(marker), &err);
  if (strlen(marker) >= sizeof(marker))
    abort();

  vhdup__az_page_range ranges[4];
  size_t count = 0;
  vhdup__az_page_list_parse_array(body, size, 1024, ranges, 4, &count, NULL, 0, &err);
  if (count > 4)
    abort();
  return 0;
}
