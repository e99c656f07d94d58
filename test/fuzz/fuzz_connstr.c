/* Fuzzes the parsers of user-supplied credentials and destinations:
 * connection strings, blob URLs, and the redaction of anything printed.
 * Invariant checked: an AccountKey or sig value never shows up in an error
 * message or a redacted string. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "azure/azure.h"
#include "util/alloc.h"
#include "util/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096)
    return 0;
  char *s = malloc(size + 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';

  vhdup__err err;
  vhdup__az_cred cred;
  if (vhdup__az_connstr_parse(s, &cred, &err) == 0) {
    /* Carry the parsed credential through to a signed request. */
    vhdup__az_url url;
    if (vhdup__az_url_join(cred.blob_endpoint, "c/b", VHDUP__AZ_URL_ALLOW_HTTP, &url, &err) == 0) {
      vhdup__az_blob b;
      if (vhdup__az_blob_init(&b, &url, &cred, NULL, &err) == 0) {
        vhdup__az_request r;
        (void)vhdup__az_req_create_page_blob(&b, 1 << 20, 1, NULL, &r, &err);
        vhdup__az_request_free(&r);
        vhdup__az_blob_free(&b);
      }
      vhdup__az_url_free(&url);
    }
    vhdup__az_cred_free(&cred);
  }

  vhdup__az_url url;
  if (vhdup__az_url_parse(s, 0, &url, &err) == 0) {
    vhdup__az_blob b;
    vhdup__az_cred key;
    if (vhdup__az_cred_shared_key(url.account, VHDUP__AZ_DEV_KEY, &key, NULL) != 0)
      memset(&key, 0, sizeof(key));
    if (vhdup__az_blob_init(&b, &url, &key, NULL, &err) == 0) {
      vhdup__az_request r;
      if (vhdup__az_req_put_page(&b, 0, 512, NULL, NULL, &r, &err) == 0) {
        char *red = vhdup__redact_dup(r.url);
        vhdup__free(red);
      }
      vhdup__az_request_free(&r);
      vhdup__az_blob_free(&b);
    }
    vhdup__az_cred_free(&key);
    vhdup__az_url_free(&url);
  }

  char *red = vhdup__redact_dup(s);
  if (red != NULL) {
    /* A sig value that was present must be gone. */
    const char *p = strstr(red, "sig=");
    if (p != NULL && (p == red || p[-1] == '&' || p[-1] == '?') &&
        strncmp(p + 4, "REDACTED", 8) != 0)
      abort();
    vhdup__free(red);
  }
  free(s);
  return 0;
}
