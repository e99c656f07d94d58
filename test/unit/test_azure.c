/* Unit tests of src/azure on strings: signing, credentials, URLs,
 * request descriptions, response XML, classification, backoff,
 * CRC64.
 *
 * Expected Shared Key signatures were computed outside this code, with the
 * StringToSign written by hand from authorize-with-shared-key:
 *   KEYHEX=$(echo "$VHDUP__AZ_DEV_KEY" | base64 -d | xxd -p -c 256)
 *   printf '%b' "$STRING_TO_SIGN" | \
 *     openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEYHEX -binary | base64
 * ('%b' expands the \n of the string literals below exactly as C does.)
 * CRC64 values: a bitwise Python CRC-64/NVME (poly 0x9A6C9329AC4BC9B5 LSB-
 * first, init/xorout ~0) and base64.b64encode(struct.pack('<Q', crc)). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "azure/azure.h"
#include "util/alloc.h"

#define DATE_784111777 "Sun, 06 Nov 1994 08:49:37 GMT"

static int64_t fixed_clock(void *ctx) {
  (void)ctx;
  return 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
}

static void decode_dev_key(uint8_t *key, size_t *len) {
  vhdup__az_cred c;
  assert_int_equal(vhdup__az_cred_shared_key("devstoreaccount1", VHDUP__AZ_DEV_KEY, &c, NULL), 0);
  memcpy(key, c.key, c.key_len);
  *len = c.key_len;
  vhdup__az_cred_free(&c);
}

/* ------------------------------------------------------------- signing */

static void test_rfc1123(void **state) {
  (void)state;
  char d[30];
  vhdup__az_rfc1123(784111777, d);
  assert_string_equal(d, DATE_784111777);
  vhdup__az_rfc1123(0, d);
  assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
  vhdup__az_rfc1123(951782400, d); /* leap day */
  assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 GMT");
  vhdup__az_rfc1123(1795617368, d); /* `date -u -R -d @1795617368` */
  assert_string_equal(d, "Wed, 25 Nov 2026 14:36:08 GMT");
}

/* Several x-ms-* headers in scrambled order and case, whitespace to fold,
 * x-ms-range before x-ms-range-get-content-md5, query parameters with an
 * escaped value and a repeated name. */
static void test_sign_headers_and_query(void **state) {
  (void)state;
  const vhdup__az_header h[] = {
      {"x-ms-version", "2021-08-06"}, {"x-ms-range-get-content-md5", "true"},
      {"x-ms-range", "bytes=0-1023"}, {"Content-Type", "application/octet-stream"},
      {"x-ms-date", DATE_784111777},  {"X-Ms-Client-Request-Id", "  id  with \t  spaces "},
  };
  const char *url = "https://myaccount.blob.core.windows.net/mycontainer/myblob"
                    "?timeout=30&comp=pagelist&Marker=2%21a%2Fb&include=b&include=a";
  const char *expect = "GET\n\n\n\n\napplication/octet-stream\n\n\n\n\n\n\n"
                       "x-ms-client-request-id:id with spaces\n"
                       "x-ms-date:" DATE_784111777 "\n"
                       "x-ms-range:bytes=0-1023\n"
                       "x-ms-range-get-content-md5:true\n"
                       "x-ms-version:2021-08-06\n"
                       "/myaccount/mycontainer/myblob\ncomp:pagelist\ninclude:a,b\n"
                       "marker:2!a/b\ntimeout:30";
  char *sts = NULL;
  assert_int_equal(vhdup__az_string_to_sign("GET", url, h, 6, 0, "myaccount", &sts, NULL), 0);
  assert_string_equal(sts, expect);
  vhdup__free(sts);

  uint8_t key[128];
  size_t klen;
  decode_dev_key(key, &klen);
  char *auth = NULL;
  assert_int_equal(
      vhdup__az_shared_key_auth("GET", url, h, 6, 0, "myaccount", key, klen, &auth, NULL), 0);
  assert_string_equal(auth, "SharedKey myaccount:ISL4aADCQ6aa4pmXCKIXztZZoiq3FqzypKsybbyRUbw=");
  vhdup__free(auth);
}

/* Emulator path-style URL: the account appears twice in the resource;
 * Content-Length and Content-MD5 take their standard positions. */
static void test_sign_emulator(void **state) {
  (void)state;
  const vhdup__az_header h[] = {
      {"x-ms-date", DATE_784111777},
      {"x-ms-version", "2021-08-06"},
      {"x-ms-range", "bytes=512-1023"},
      {"x-ms-page-write", "update"},
      {"Content-MD5", "XUFAKrxLKna5cZ2REBfFkg=="},
  };
  const char *url = "http://127.0.0.1:10000/devstoreaccount1/vhds/disk.vhd?comp=page";
  char *sts = NULL;
  assert_int_equal(vhdup__az_string_to_sign("PUT", url, h, 5, 512, "devstoreaccount1", &sts, NULL),
                   0);
  assert_string_equal(sts, "PUT\n\n\n512\nXUFAKrxLKna5cZ2REBfFkg==\n\n\n\n\n\n\n\n"
                           "x-ms-date:" DATE_784111777 "\n"
                           "x-ms-page-write:update\nx-ms-range:bytes=512-1023\n"
                           "x-ms-version:2021-08-06\n"
                           "/devstoreaccount1/devstoreaccount1/vhds/disk.vhd\ncomp:page");
  vhdup__free(sts);
  uint8_t key[128];
  size_t klen;
  decode_dev_key(key, &klen);
  char *auth = NULL;
  assert_int_equal(
      vhdup__az_shared_key_auth("PUT", url, h, 5, 512, "devstoreaccount1", key, klen, &auth, NULL),
      0);
  assert_string_equal(auth,
                      "SharedKey devstoreaccount1:8uXOgWkPQgfZNA+WJZQQbh6x+tQzPBJVOcwWMGZ51k8=");
  vhdup__free(auth);
}

static void test_sign_bad_query(void **state) {
  (void)state;
  char *sts = NULL;
  vhdup__err e;
  assert_int_equal(vhdup__az_string_to_sign("GET", "https://a.blob.core.windows.net/c/b?x=%zz",
                                            NULL, 0, 0, "a", &sts, &e),
                   VHDUP_EURL);
  assert_null(sts);
  assert_int_equal(vhdup__az_string_to_sign("GET", "no-scheme", NULL, 0, 0, "a", &sts, &e),
                   VHDUP_EURL);
}

/* ---------------------------------------------------- connection strings */

static void test_connstr_full(void **state) {
  (void)state;
  vhdup__az_cred c;
  vhdup__err e;
  assert_int_equal(
      vhdup__az_connstr_parse(
          "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" VHDUP__AZ_DEV_KEY
          ";EndpointSuffix=core.chinacloudapi.cn;",
          &c, &e),
      0);
  assert_int_equal(c.kind, VHDUP__AZ_AUTH_SHARED_KEY);
  assert_string_equal(c.account, "myacct");
  assert_int_equal(c.key_len, 64);
  assert_string_equal(c.blob_endpoint, "https://myacct.blob.core.chinacloudapi.cn");
  assert_null(c.sas);
  vhdup__az_cred_free(&c);

  /* Keys are case-insensitive; spaces around segments are ignored. */
  assert_int_equal(vhdup__az_connstr_parse(" accountname=abc ; ACCOUNTKEY=" VHDUP__AZ_DEV_KEY
                                           "; defaultendpointsprotocol=http",
                                           &c, &e),
                   0);
  assert_string_equal(c.blob_endpoint, "http://abc.blob.core.windows.net");
  vhdup__az_cred_free(&c);

  /* Portal SAS connection string. */
  assert_int_equal(
      vhdup__az_connstr_parse("BlobEndpoint=https://abc.blob.core.windows.net/;QueueEndpoint="
                              "https://abc.queue.core.windows.net/;FileEndpoint=https://"
                              "abc.file.core.windows.net/;TableEndpoint=https://"
                              "abc.table.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss="
                              "b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=AbC%2Bd%3D",
                              &c, &e),
      0);
  assert_int_equal(c.kind, VHDUP__AZ_AUTH_SAS);
  assert_null(c.account);
  assert_string_equal(c.blob_endpoint, "https://abc.blob.core.windows.net");
  assert_string_equal(c.sas, "sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&sig="
                             "AbC%2Bd%3D");
  vhdup__az_cred_free(&c);

  assert_int_equal(vhdup__az_connstr_parse("UseDevelopmentStorage=true", &c, &e), 0);
  assert_int_equal(c.kind, VHDUP__AZ_AUTH_SHARED_KEY);
  assert_string_equal(c.account, "devstoreaccount1");
  assert_string_equal(c.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  assert_int_equal(c.key_len, 64);
  vhdup__az_cred_free(&c);

  /* Azurite's documented full connection string, then a destination
   * joined to its endpoint and signed with its key. */
  assert_int_equal(
      vhdup__az_connstr_parse(
          "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" VHDUP__AZ_DEV_KEY
          ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
          &c, &e),
      0);
  assert_string_equal(c.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  vhdup__az_url u;
  assert_int_equal(vhdup__az_url_join(c.blob_endpoint, "vhds/disk.vhd", 0, &u, &e), 0);
  vhdup__az_blob b;
  assert_int_equal(vhdup__az_blob_init(&b, &u, &c, NULL, &e), 0);
  assert_int_equal(b.auth, VHDUP__AZ_AUTH_SHARED_KEY);
  vhdup__az_blob_free(&b);
  vhdup__az_url_free(&u);
  vhdup__az_cred_free(&c);
  assert_int_equal(
      vhdup__az_connstr_parse("AccountName=abc;SharedAccessSignature=?sv=1&sig=x", &c, &e), 0);
  assert_string_equal(c.sas, "sv=1&sig=x");
  assert_string_equal(c.blob_endpoint, "https://abc.blob.core.windows.net");
  vhdup__az_cred_free(&c);
}

#define SECRET_KEY "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"

static void expect_connstr_error(const char *s, const char *want) {
  vhdup__az_cred c;
  vhdup__err e;
  memset(&c, 0x5a, sizeof(c));
  vhdup__err_clear(&e);
  int rc = vhdup__az_connstr_parse(s, &c, &e);
  if (rc != VHDUP_ECREDENTIAL || strstr(e.msg, want) == NULL)
    fail_msg("connection string '%s': rc %d, message '%s', wanted '%s'", s, rc, e.msg, want);
  assert_int_equal(e.code, VHDUP_ECREDENTIAL);
  /* No secret, and not even part of one, may appear. */
  assert_null(strstr(e.msg, "c2VjcmV0"));
  assert_null(strstr(e.msg, "Eby8vd"));
  assert_null(strstr(e.msg, "sig="));
  assert_null(strstr(e.msg, "S3CR3T"));
}

static void test_connstr_errors(void **state) {
  (void)state;
  expect_connstr_error("", "is empty");
  expect_connstr_error("AccountName=abc;AccountKey=not*base64*" SECRET_KEY,
                       "connection string: AccountKey is not valid base64");
  expect_connstr_error("Acountname=abc;AccountKey=" SECRET_KEY,
                       "unknown key 'Acountname' (did you mean 'AccountName'?)");
  expect_connstr_error("Frobnicate=1;AccountName=abc;AccountKey=" SECRET_KEY,
                       "unknown key 'Frobnicate'");
  expect_connstr_error("AccountName=abc;" SECRET_KEY "==",
                       "segment 2 does not start with a known key");
  expect_connstr_error("AccountName=abc;AccountKey" SECRET_KEY, "segment 2 has no '='");
  expect_connstr_error("AccountName=abc;AccountName=abd;AccountKey=" SECRET_KEY,
                       "duplicate key 'AccountName'");
  expect_connstr_error("AccountName=abc;AccountKey=", "AccountKey is empty");
  expect_connstr_error("=x;AccountName=abc", "segment 1 has an empty key");
  expect_connstr_error("AccountName=ABC_def;AccountKey=" SECRET_KEY,
                       "AccountName 'ABC_def' is not a valid storage account");
  expect_connstr_error("AccountName=AccountKey=" SECRET_KEY, "AccountName '(not shown)'");
  expect_connstr_error("AccountKey=" SECRET_KEY, "AccountKey needs AccountName");
  expect_connstr_error("AccountName=abc", "neither AccountKey nor SharedAccessSignature");
  expect_connstr_error("AccountName=abc;AccountKey=" SECRET_KEY
                       ";SharedAccessSignature=sv=1&sig=S3CR3T",
                       "both AccountKey and SharedAccessSignature");
  expect_connstr_error("AccountName=abc;SharedAccessSignature=sv=1&se=S3CR3T", "has no sig field");
  expect_connstr_error("DefaultEndpointsProtocol=ftp;AccountName=abc;AccountKey=" SECRET_KEY,
                       "DefaultEndpointsProtocol must be");
  expect_connstr_error("UseDevelopmentStorage=yes", "UseDevelopmentStorage must be 'true'");
  expect_connstr_error("UseDevelopmentStorage=true;AccountName=abc",
                       "cannot be combined with AccountName");
  expect_connstr_error("BlobEndpoint=abc.blob.core.windows.net;SharedAccessSignature=sig=S3CR3T",
                       "BlobEndpoint must start with https://");
  expect_connstr_error("SharedAccessSignature=sig=S3CR3T", "needs AccountName or BlobEndpoint");
  expect_connstr_error("AccountName=abc;AccountKey=" SECRET_KEY ";EndpointSuffix=a b",
                       "EndpointSuffix");
}

/* ------------------------------------------------------------ environment */

typedef struct fake_env {
  const char *names[4];
  const char *values[4];
} fake_env;

static const char *fake_getenv(void *ctx, const char *name) {
  fake_env *e = ctx;
  for (int i = 0; i < 4; i++)
    if (e->names[i] != NULL && strcmp(e->names[i], name) == 0)
      return e->values[i];
  return NULL;
}

static void test_env(void **state) {
  (void)state;
  vhdup__az_cred c;
  vhdup__err e;
  fake_env none = {{NULL}, {NULL}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &none, &c, &e), 0);
  assert_int_equal(c.kind, VHDUP__AZ_AUTH_NONE);
  vhdup__az_cred_free(&c);

  /* An account alone is no credential (the CLI would log in instead). */
  fake_env acct_only = {{"AZURE_STORAGE_ACCOUNT"}, {"acct1"}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &acct_only, &c, &e), 0);
  assert_int_equal(c.kind, VHDUP__AZ_AUTH_NONE);
  vhdup__az_cred_free(&c);

  /* The connection string wins over the other variables. */
  fake_env all = {{"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY",
                   "AZURE_STORAGE_SAS_TOKEN"},
                  {"UseDevelopmentStorage=true", "other", SECRET_KEY, "sig=x"}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &all, &c, &e), 0);
  assert_string_equal(c.account, "devstoreaccount1");
  vhdup__az_cred_free(&c);

  fake_env key = {{"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"},
                  {"acct1", VHDUP__AZ_DEV_KEY, "sig=x"}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &key, &c, &e), 0);
  assert_int_equal(c.kind, VHDUP__AZ_AUTH_SHARED_KEY);
  assert_string_equal(c.account, "acct1");
  vhdup__az_cred_free(&c);

  fake_env sas = {{"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY"},
                  {"acct1", "?sv=2021-08-06&sig=abc", ""}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &sas, &c, &e), 0);
  assert_int_equal(c.kind, VHDUP__AZ_AUTH_SAS);
  assert_string_equal(c.sas, "sv=2021-08-06&sig=abc");
  vhdup__az_cred_free(&c);

  fake_env bad_cs = {{"AZURE_STORAGE_CONNECTION_STRING"},
                     {"AccountName=abc;AccountKey=%%" SECRET_KEY}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &bad_cs, &c, &e), VHDUP_ECREDENTIAL);
  assert_string_equal(e.msg, "AZURE_STORAGE_CONNECTION_STRING: AccountKey is not valid base64");

  fake_env lone_key = {{"AZURE_STORAGE_KEY"}, {SECRET_KEY}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &lone_key, &c, &e), VHDUP_ECREDENTIAL);
  assert_string_equal(e.msg, "AZURE_STORAGE_KEY is set but AZURE_STORAGE_ACCOUNT is not");

  fake_env bad_key = {{"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"}, {"acct1", "*" SECRET_KEY}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &bad_key, &c, &e), VHDUP_ECREDENTIAL);
  assert_string_equal(e.msg, "AZURE_STORAGE_KEY is not valid base64");

  fake_env bad_sas = {{"AZURE_STORAGE_SAS_TOKEN"}, {"sv=2020-01-01&se=S3CR3T"}};
  assert_int_equal(vhdup__az_cred_from_env(fake_getenv, &bad_sas, &c, &e), VHDUP_ECREDENTIAL);
  assert_null(strstr(e.msg, "S3CR3T"));
}

/* ------------------------------------------------------------------ URLs */

static void test_url_parse(void **state) {
  (void)state;
  vhdup__az_url u;
  vhdup__err e;
  assert_int_equal(vhdup__az_url_parse("https://Acct1.blob.core.windows.net/vhds/dir/disk.vhd"
                                       "?sv=2018-03-28&sr=b&sig=S3CR3T%2B",
                                       0, &u, &e),
                   0);
  assert_string_equal(u.scheme, "https");
  assert_string_equal(u.host, "acct1.blob.core.windows.net");
  assert_int_equal(u.port, 443);
  assert_false(u.path_style);
  assert_string_equal(u.account, "acct1");
  assert_string_equal(u.container, "vhds");
  assert_string_equal(u.blob, "dir/disk.vhd");
  assert_string_equal(u.sas, "sv=2018-03-28&sr=b&sig=S3CR3T%2B");
  vhdup__az_url_free(&u);

  assert_int_equal(
      vhdup__az_url_parse("http://127.0.0.1:10000/devstoreaccount1/c1/my disk.vhd", 0, &u, &e), 0);
  assert_true(u.path_style);
  assert_int_equal(u.port, 10000);
  assert_string_equal(u.account, "devstoreaccount1");
  assert_string_equal(u.container, "c1");
  assert_string_equal(u.blob, "my%20disk.vhd");
  assert_null(u.sas);
  vhdup__az_url_free(&u);

  assert_int_equal(vhdup__az_url_parse("http://localhost:10000/devstoreaccount1/c/b", 0, &u, &e),
                   0);
  assert_true(u.path_style);
  vhdup__az_url_free(&u);
  assert_int_equal(vhdup__az_url_parse("http://[::1]:10000/devstoreaccount1/c/b", 0, &u, &e), 0);
  assert_string_equal(u.host, "[::1]");
  vhdup__az_url_free(&u);

  /* Managed-disk upload hosts are virtual-host style. */
  assert_int_equal(vhdup__az_url_parse("https://md-impexp-abc.z1.blob.storage.azure.net/"
                                       "x1y2/abcd?sv=2018-03-28&sr=b&si=x&sig=S3CR3T",
                                       0, &u, &e),
                   0);
  assert_string_equal(u.account, "md-impexp-abc");
  assert_string_equal(u.container, "x1y2");
  assert_string_equal(u.blob, "abcd");
  vhdup__az_url_free(&u);

  assert_int_equal(vhdup__az_url_join(VHDUP__AZ_DEV_ENDPOINT "/", "/c/b.vhd", 0, &u, &e), 0);
  assert_string_equal(u.account, "devstoreaccount1");
  assert_string_equal(u.blob, "b.vhd");
  vhdup__az_url_free(&u);
}

static void expect_url_error(const char *url, unsigned flags, const char *want) {
  vhdup__az_url u;
  vhdup__err e;
  int rc = vhdup__az_url_parse(url, flags, &u, &e);
  if (rc != VHDUP_EURL || strstr(e.msg, want) == NULL)
    fail_msg("URL '%s': rc %d, message '%s', wanted '%s'", url, rc, e.msg, want);
  assert_null(strstr(e.msg, "S3CR3T"));
}

static void test_url_errors(void **state) {
  (void)state;
  expect_url_error("http://acct.blob.core.windows.net/c/b?sig=S3CR3T", 0, "refusing plain http://");
  expect_url_error("ftp://acct.blob.core.windows.net/c/b", 0, "must start with https://");
  expect_url_error("https://acct.blob.core.windows.net/c", 0, "names no blob");
  expect_url_error("https://acct.blob.core.windows.net/", 0, "names no container");
  expect_url_error("https://acct.blob.core.windows.net", 0, "names no container");
  expect_url_error("https://user:S3CR3T@acct.blob.core.windows.net/c/b", 0, "user information");
  expect_url_error("https://acct.blob.core.windows.net:99999/c/b", 0, "port is out of range");
  expect_url_error("https://acct.blob.core.windows.net:/c/b", 0, "empty port");
  expect_url_error("https://acct.blob.core.windows.net/c/../b", 0, "'..' segment");
  expect_url_error("https://acct.blob.core.windows.net/c/b%zz", 0, "malformed %-escape");
  expect_url_error("https://acct.blob.core.windows.net/c/b#frag", 0, "fragment");
  expect_url_error("https://acct.blob.core.windows.net/c/b\n", 0, "control");
  expect_url_error("https://ac_ct.blob.core.windows.net/c/b", 0, "invalid character");
  expect_url_error("http://127.0.0.1:10000//c/b", 0, "no account name");
  expect_url_error("https://[::1/c/b", 0, "unterminated IPv6");

  vhdup__az_url u;
  assert_int_equal(vhdup__az_url_parse("http://acct.blob.core.windows.net/c/b",
                                       VHDUP__AZ_URL_ALLOW_HTTP, &u, NULL),
                   0);
  assert_string_equal(u.scheme, "http");
  assert_int_equal(u.port, 80);
  vhdup__az_url_free(&u);
  assert_int_equal(vhdup__az_url_parse("http://127.0.0.5/devstoreaccount1/c/b", 0, &u, NULL), 0);
  vhdup__az_url_free(&u);
}

/* Whether a query holds a SAS signature: the rule the redaction uses. */
static void test_query_has_sig(void **state) {
  (void)state;
  assert_true(vhdup__az_query_has_sig("sv=2021-08-06&sig=abc"));
  assert_true(vhdup__az_query_has_sig("?sig=abc"));
  assert_true(vhdup__az_query_has_sig("sig=a%2Bb%3D"));
  assert_true(vhdup__az_query_has_sig("sv=1&SIG=abc"));
  assert_true(vhdup__az_query_has_sig("sv=1;sig=abc"));
  assert_false(vhdup__az_query_has_sig(NULL));
  assert_false(vhdup__az_query_has_sig(""));
  assert_false(vhdup__az_query_has_sig("sv=2021-08-06&se=2030-01-01"));
  assert_false(vhdup__az_query_has_sig("xsig=abc&design=1"));
  assert_false(vhdup__az_query_has_sig("sv=1#sig=abc"));
}

/* Plain http:// only to loopback names and addresses; a name that merely
 * starts like one is somewhere else. */
static void test_url_loopback(void **state) {
  static const struct {
    const char *url;
    int ok;
  } cases[] = {
      {"http://localhost:10000/devstoreaccount1/c/b", 1},
      {"http://LOCALHOST/devstoreaccount1/c/b", 1},
      {"http://127.0.0.1:10000/devstoreaccount1/c/b", 1},
      {"http://127.1.2.3/devstoreaccount1/c/b", 1},
      {"http://[::1]:10000/devstoreaccount1/c/b", 1},
      {"HTTP://127.0.0.1/devstoreaccount1/c/b", 1},
      {"http://127.evil.example/c/b", 0},
      {"http://localhost.evil.example/c/b", 0},
      {"http://[::2]/devstoreaccount1/c/b", 0},
      {"http://128.0.0.1/devstoreaccount1/c/b", 0},
      {"http://acct.blob.core.windows.net/c/b", 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    vhdup__az_url u;
    vhdup__err err;
    int rc = vhdup__az_url_parse(cases[i].url, 0, &u, &err);
    if ((rc == 0) != cases[i].ok)
      fail_msg("%s: rc %d", cases[i].url, rc);
    if (rc != 0)
      assert_non_null(strstr(err.msg, "refusing plain http://"));
    vhdup__az_url_free(&u);
    assert_int_equal(vhdup__az_url_parse(cases[i].url, VHDUP__AZ_URL_ALLOW_HTTP, &u, NULL), 0);
    vhdup__az_url_free(&u);
  }
}

/* --------------------------------------------------------------- requests */

static void blob_for(vhdup__az_blob *b, const char *url, const vhdup__az_cred *cred,
                     const char *version) {
  vhdup__az_url u;
  vhdup__err e;
  assert_int_equal(vhdup__az_url_parse(url, 0, &u, &e), 0);
  vhdup__az_blob_opts o = {.version = version, .timeout_s = 30, .clock = fixed_clock};
  int rc = vhdup__az_blob_init(b, &u, cred, &o, &e);
  if (rc != 0)
    fail_msg("blob_init: %s", e.msg);
  vhdup__az_url_free(&u);
}

/* The whole path through the builder, signed: the Authorization value was
 * computed by openssl from the StringToSign written out below. */
static void test_req_create_signed(void **state) {
  (void)state;
  vhdup__az_cred c;
  assert_int_equal(vhdup__az_connstr_parse("UseDevelopmentStorage=true", &c, NULL), 0);
  vhdup__az_blob b;
  blob_for(&b, "http://127.0.0.1:10000/devstoreaccount1/vhds/disk.vhd", &c, NULL);
  vhdup__az_cred_free(&c);
  assert_int_equal(b.auth, VHDUP__AZ_AUTH_SHARED_KEY);
  assert_string_equal(b.version, VHDUP__AZ_DEFAULT_VERSION);

  vhdup__az_request r;
  vhdup__err e;
  assert_int_equal(vhdup__az_req_create_page_blob(&b, 1048576, 1, "req-1", &r, &e), 0);
  assert_string_equal(r.method, "PUT");
  assert_string_equal(r.url, "http://127.0.0.1:10000/devstoreaccount1/vhds/disk.vhd?timeout=30");
  assert_int_equal(r.content_length, 0);
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-blob-type"), "PageBlob");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-blob-content-length"), "1048576");
  assert_string_equal(vhdup__az_request_header(&r, "If-None-Match"), "*");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-date"), DATE_784111777);
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-version"), "2021-08-06");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-client-request-id"), "req-1");
  /* StringToSign:
   * PUT\n\n\n\n\n\n\n\n\n*\n\n\nx-ms-blob-content-length:1048576\nx-ms-blob-type:PageBlob\n
   * x-ms-client-request-id:req-1\nx-ms-date:Sun, 06 Nov 1994 08:49:37 GMT\n
   * x-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/vhds/disk.vhd\ntimeout:30 */
  assert_string_equal(vhdup__az_request_header(&r, "Authorization"),
                      "SharedKey devstoreaccount1:YVkuxrhUT8mFG3i1yMcRLJagsdX81HjBRwSJccPEUBw=");
  vhdup__az_request_free(&r);

  /* Generated client ids count up. */
  assert_int_equal(vhdup__az_req_get_properties(&b, NULL, &r, &e), 0);
  assert_string_equal(r.method, "HEAD");
  assert_string_equal(r.client_request_id, "vhdup-1");
  vhdup__az_request_free(&r);

  assert_int_equal(vhdup__az_req_create_container(&b, NULL, &r, &e), 0);
  assert_string_equal(r.url,
                      "http://127.0.0.1:10000/devstoreaccount1/vhds?restype=container&timeout=30");
  assert_non_null(vhdup__az_request_header(&r, "Authorization"));
  vhdup__az_request_free(&r);

  /* Put Page with MD5 (the MD5 of "hello"), CRC64, clear. */
  vhdup__az_sum md5 = {.kind = VHDUP__AZ_SUM_MD5,
                       .md5 = {0x5d, 0x41, 0x40, 0x2a, 0xbc, 0x4b, 0x2a, 0x76, 0xb9, 0x71, 0x9d,
                               0x91, 0x10, 0x17, 0xc5, 0x92}};
  assert_int_equal(vhdup__az_req_put_page(&b, 512, 512, &md5, "p", &r, &e), 0);
  assert_string_equal(r.url,
                      "http://127.0.0.1:10000/devstoreaccount1/vhds/disk.vhd?comp=page&timeout=30");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-range"), "bytes=512-1023");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-page-write"), "update");
  assert_string_equal(vhdup__az_request_header(&r, "Content-MD5"), "XUFAKrxLKna5cZ2REBfFkg==");
  assert_null(vhdup__az_request_header(&r, "x-ms-content-crc64"));
  assert_int_equal(r.content_length, 512);
  vhdup__az_request_free(&r);

  vhdup__az_sum crc = {.kind = VHDUP__AZ_SUM_CRC64, .crc64 = 0xAE8B14860A799888ull};
  assert_int_equal(vhdup__az_req_put_page(&b, 0, 4u << 20, &crc, NULL, &r, &e), 0);
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-content-crc64"), "iJh5CoYUi64=");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-range"), "bytes=0-4194303");
  vhdup__az_request_free(&r);

  assert_int_equal(vhdup__az_req_clear_pages(&b, 1ull << 30, 1ull << 30, NULL, &r, &e), 0);
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-page-write"), "clear");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-range"), "bytes=1073741824-2147483647");
  assert_int_equal(r.content_length, 0);
  vhdup__az_request_free(&r);

  /* Bad ranges. */
  assert_int_equal(vhdup__az_req_put_page(&b, 1, 512, NULL, NULL, &r, &e), VHDUP_EINVAL);
  vhdup__az_request_free(&r);
  assert_int_equal(vhdup__az_req_put_page(&b, 0, (4u << 20) + 512, NULL, NULL, &r, &e),
                   VHDUP_EINVAL);
  vhdup__az_request_free(&r);
  assert_int_equal(vhdup__az_req_put_page(&b, 0, 0, NULL, NULL, &r, &e), VHDUP_EINVAL);
  vhdup__az_request_free(&r);
  assert_int_equal(vhdup__az_req_clear_pages(&b, UINT64_MAX - 511, 512, NULL, &r, &e),
                   VHDUP_EINVAL);
  vhdup__az_request_free(&r);
  assert_int_equal(vhdup__az_req_create_page_blob(&b, 1000, 0, NULL, &r, &e), VHDUP_EINVAL);
  vhdup__az_request_free(&r);
  assert_int_equal(vhdup__az_req_create_page_blob(&b, 0, 0, "bad\nid", &r, &e), VHDUP_ELIMIT);
  vhdup__az_request_free(&r);

  /* Get Page Ranges with paging; the marker is escaped in the URL and
   * decoded again in the signed resource. */
  assert_int_equal(vhdup__az_req_get_page_ranges(&b, 0, 512u << 20, "2!a/b c", 10000, NULL, &r, &e),
                   0);
  assert_string_equal(r.url, "http://127.0.0.1:10000/devstoreaccount1/vhds/disk.vhd?comp=pagelist"
                             "&marker=2%21a%2Fb%20c&maxresults=10000&timeout=30");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-range"), "bytes=0-536870911");
  assert_string_equal(r.method, "GET");
  char *sts = NULL;
  assert_int_equal(vhdup__az_string_to_sign(r.method, r.url, r.headers, r.nheaders, 0,
                                            "devstoreaccount1", &sts, NULL),
                   0);
  assert_non_null(strstr(sts, "\ncomp:pagelist\nmarker:2!a/b c\nmaxresults:10000\ntimeout:30"));
  vhdup__free(sts);
  vhdup__az_request_free(&r);

  uint8_t whole[16] = {1, 2, 3};
  assert_int_equal(vhdup__az_req_set_content_md5(&b, whole, NULL, &r, &e), 0);
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-blob-content-md5"),
                      "AQIDAAAAAAAAAAAAAAAAAA==");
  assert_non_null(strstr(r.url, "?comp=properties&timeout=30"));
  vhdup__az_request_free(&r);

  assert_int_equal(vhdup__az_req_get_blob(&b, 100, 10, NULL, &r, &e), 0);
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-range"), "bytes=100-109");
  vhdup__az_request_free(&r);

  vhdup__az_blob_free(&b);
}

/* A SAS URL: no Authorization, the SAS appended verbatim after the
 * operation's query, sv governs the features. */
static void test_req_sas(void **state) {
  (void)state;
  vhdup__az_blob b;
  vhdup__az_request r;
  vhdup__err e;
  blob_for(&b, "https://md-x.z1.blob.storage.azure.net/c1/abcd?sv=2018-03-28&sr=b&sig=S3CR3T%3D",
           NULL, NULL);
  assert_int_equal(b.auth, VHDUP__AZ_AUTH_SAS);
  assert_string_equal(b.version, "2018-03-28");
  assert_true(b.version_from_sas);
  assert_string_equal(b.header_version, VHDUP__AZ_DEFAULT_VERSION);

  assert_int_equal(vhdup__az_req_put_page(&b, 0, 512, NULL, NULL, &r, &e), 0);
  assert_string_equal(r.url, "https://md-x.z1.blob.storage.azure.net/c1/abcd?comp=page&timeout=30"
                             "&sv=2018-03-28&sr=b&sig=S3CR3T%3D");
  assert_null(vhdup__az_request_header(&r, "Authorization"));
  assert_non_null(vhdup__az_request_header(&r, "x-ms-version"));
  vhdup__az_request_free(&r);

  vhdup__az_sum crc = {.kind = VHDUP__AZ_SUM_CRC64, .crc64 = 1};
  assert_int_equal(vhdup__az_req_put_page(&b, 0, 512, &crc, NULL, &r, &e), VHDUP_EUNSUPPORTED);
  assert_non_null(strstr(e.msg, "set by the SAS"));
  vhdup__az_request_free(&r);
  assert_int_equal(vhdup__az_req_get_page_ranges(&b, 0, 0, "m", 0, NULL, &r, &e),
                   VHDUP_EUNSUPPORTED);
  vhdup__az_request_free(&r);
  assert_int_equal(vhdup__az_req_get_page_ranges(&b, 0, 0, NULL, 0, NULL, &r, &e), 0);
  assert_null(vhdup__az_request_header(&r, "x-ms-range"));
  vhdup__az_request_free(&r);

  char *shown = vhdup__az_blob_display_url(&b);
  assert_string_equal(shown, "https://md-x.z1.blob.storage.azure.net/c1/abcd?sv=2018-03-28&sr=b"
                             "&sig=REDACTED");
  vhdup__free(shown);
  vhdup__az_blob_free(&b);

  /* A credential SAS is appended to a bare URL. */
  vhdup__az_cred c;
  assert_int_equal(
      vhdup__az_connstr_parse("AccountName=abc;SharedAccessSignature=sv=2021-08-06&sig=x", &c, &e),
      0);
  blob_for(&b, "https://abc.blob.core.windows.net/c/b", &c, "2025-11-05");
  vhdup__az_cred_free(&c);
  assert_string_equal(b.version, "2021-08-06");
  assert_int_equal(vhdup__az_req_get_blob(&b, 0, 0, NULL, &r, &e), 0);
  assert_string_equal(r.url,
                      "https://abc.blob.core.windows.net/c/b?timeout=30&sv=2021-08-06&sig=x");
  assert_string_equal(vhdup__az_request_header(&r, "x-ms-version"), "2025-11-05");
  vhdup__az_request_free(&r);
  vhdup__az_blob_free(&b);
}

static void test_blob_init_errors(void **state) {
  (void)state;
  vhdup__az_url u;
  vhdup__az_blob b;
  vhdup__err e;
  vhdup__az_cred c;
  assert_int_equal(vhdup__az_url_parse("https://abc.blob.core.windows.net/c/b", 0, &u, &e), 0);
  assert_int_equal(vhdup__az_blob_init(&b, &u, NULL, NULL, &e), VHDUP_ECREDENTIAL);
  assert_non_null(strstr(e.msg, "no credential"));
  assert_int_equal(vhdup__az_cred_shared_key("other", VHDUP__AZ_DEV_KEY, &c, &e), 0);
  assert_int_equal(vhdup__az_blob_init(&b, &u, &c, NULL, &e), VHDUP_ECREDENTIAL);
  assert_string_equal(e.msg, "the account key is for account 'other' but the URL names account "
                             "'abc'");
  vhdup__az_cred_free(&c);
  vhdup__az_blob_opts o = {.version = "latest"};
  assert_int_equal(vhdup__az_cred_shared_key("abc", VHDUP__AZ_DEV_KEY, &c, &e), 0);
  assert_int_equal(vhdup__az_blob_init(&b, &u, &c, &o, &e), VHDUP_EINVAL);
  vhdup__az_cred_free(&c);
  vhdup__az_url_free(&u);

  assert_int_equal(vhdup__az_url_parse("https://abc.blob.core.windows.net/c/b?comp=x", 0, &u, &e),
                   0);
  assert_int_equal(vhdup__az_blob_init(&b, &u, NULL, NULL, &e), VHDUP_EURL);
  vhdup__az_url_free(&u);
  assert_int_equal(
      vhdup__az_url_parse("https://abc.blob.core.windows.net/c/b?sv=20x&sig=S3CR3T", 0, &u, &e), 0);
  assert_int_equal(vhdup__az_blob_init(&b, &u, NULL, NULL, &e), VHDUP_EURL);
  assert_null(strstr(e.msg, "S3CR3T"));
  vhdup__az_url_free(&u);
}

/* --------------------------------------------------------------- errors */

static void test_error_parse(void **state) {
  (void)state;
  vhdup__az_error_info info;
  char msg[512];
  const char *body =
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed"
      "</Code><Message>Server failed to authenticate the request. Make sure the value of "
      "Authorization header is formed correctly including the signature.\nRequestId:"
      "abc\nTime:2026-11-25T14:00:00.0000000Z</Message><AuthenticationErrorDetail>Signature "
      "did not match. String to sign used was w&amp;sig=S3CR3T</AuthenticationErrorDetail>"
      "</Error>";
  const vhdup__az_header h[] = {{"x-ms-request-id", "1234-abcd"}, {"Content-Type", "xml"}};
  vhdup__az_error_parse(403, h, 2, body + 3, strlen(body + 3), &info);
  assert_int_equal(info.status, 403);
  assert_string_equal(info.code, "AuthenticationFailed");
  assert_string_equal(info.request_id, "1234-abcd");
  assert_string_equal(info.message, "Server failed to authenticate the request. Make sure the "
                                    "value of Authorization header is formed correctly including "
                                    "the signature.");
  vhdup__az_error_format(&info, msg, sizeof(msg));
  assert_string_equal(msg, "HTTP 403 AuthenticationFailed: Server failed to authenticate the "
                           "request. Make sure the value of Authorization header is formed "
                           "correctly including the signature. (request id 1234-abcd)");

  /* The header wins; entities decode; a sig in the message is redacted. */
  const vhdup__az_header h2[] = {{"X-MS-ERROR-CODE", "ServerBusy"}};
  const char *busy = "<Error><Code>Other</Code><Message>  busy &lt;now&gt; at "
                     "u?sv=1&amp;sig=S3CR3T&#x41;&#66;</Message></Error>";
  vhdup__az_error_parse(503, h2, 1, busy, strlen(busy), &info);
  assert_string_equal(info.code, "ServerBusy");
  assert_null(strstr(info.message, "S3CR3T"));
  assert_string_equal(info.message, "busy <now> at u?sv=1&sig=REDACTED");
  vhdup__az_error_format(&info, msg, sizeof(msg));
  assert_string_equal(msg, "HTTP 503 ServerBusy: busy <now> at u?sv=1&sig=REDACTED");

  /* HEAD answers: no body at all. */
  vhdup__az_error_parse(404, NULL, 0, NULL, 0, &info);
  vhdup__az_error_format(&info, msg, sizeof(msg));
  assert_string_equal(msg, "HTTP 404");

  /* Truncated, hostile, non-XML, oversized: no crash, no code invented. */
  const char *bad[] = {
      "<Error><Code>Serv",
      "<Error><Code>A</Code",
      "<html><body>502 Bad Gateway</body></html>",
      "<<<<>>>>&&&&;;;",
      "<Error><Code><![CDATA[X]]></Code><Message><!-- c -->M</Message></Error>",
      "<!DOCTYPE x [<!ENTITY a \"b\">]><Error><Code>&a;</Code></Error>",
      "<Error a='>' b=\"<\"><Code>Q</Code></Error>",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    vhdup__az_error_parse(500, NULL, 0, bad[i], strlen(bad[i]), &info);
  vhdup__az_error_parse(500, NULL, 0, bad[0], strlen(bad[0]), &info);
  assert_string_equal(info.code, "");
  vhdup__az_error_parse(500, NULL, 0, bad[4], strlen(bad[4]), &info);
  assert_string_equal(info.code, "X");
  assert_string_equal(info.message, "M");

  /* Long code and message are cut to size, control characters replaced. */
  size_t big = 200000;
  char *huge = malloc(big + 64);
  assert_non_null(huge);
  strcpy(huge, "<Error><Code>");
  memset(huge + 13, 'A', big);
  strcpy(huge + 13 + big, "</Code></Error>");
  vhdup__az_error_parse(500, NULL, 0, huge, strlen(huge), &info);
  assert_true(strlen(info.code) < sizeof(info.code));
  memcpy(huge, "<Error><Message>\x01\x02x", 19);
  vhdup__az_error_parse(500, NULL, 0, huge, 19, &info);
  free(huge);
}

/* ---------------------------------------------------------- page ranges */

static void test_page_list(void **state) {
  (void)state;
  const char *xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PageList>\n"
                    "  <PageRange><Start>0</Start><End>511</End></PageRange>\n"
                    "  <ClearRange><Start>1024</Start><End>2047</End></ClearRange>\n"
                    "  <PageRange><Start> 4194304 </Start><End>8796093022207</End></PageRange>\n"
                    "  <NextMarker>2!104!MDAwMDE0IVNvbWUmT3RoZXI-</NextMarker>\n</PageList>";
  vhdup__az_page_range r[4];
  size_t n = 0;
  char marker[128];
  vhdup__err e;
  assert_int_equal(
      vhdup__az_page_list_parse_array(xml, strlen(xml), 0, r, 4, &n, marker, sizeof(marker), &e),
      0);
  assert_int_equal(n, 3);
  assert_true(r[0].start == 0 && r[0].end == 511 && !r[0].clear);
  assert_true(r[1].start == 1024 && r[1].end == 2047 && r[1].clear);
  assert_true(r[2].start == 4194304 && r[2].end == 8796093022207ull);
  assert_string_equal(marker, "2!104!MDAwMDE0IVNvbWUmT3RoZXI-");

  const char *done = "<PageList><PageRange><Start>512</Start><End>1023</End></PageRange>"
                     "<NextMarker /></PageList>";
  assert_int_equal(
      vhdup__az_page_list_parse_array(done, strlen(done), 0, r, 4, &n, marker, sizeof(marker), &e),
      0);
  assert_int_equal(n, 1);
  assert_string_equal(marker, "");
  const char *empty = "<?xml version=\"1.0\"?><PageList />";
  assert_int_equal(vhdup__az_page_list_parse_array(empty, strlen(empty), 0, r, 4, &n, NULL, 0, &e),
                   0);
  assert_int_equal(n, 0);

  /* Over the caller's array. */
  assert_int_equal(vhdup__az_page_list_parse_array(xml, strlen(xml), 0, r, 2, &n, NULL, 0, &e),
                   VHDUP_ELIMIT);
  assert_int_equal(n, 2);
}

static void expect_page_list_error(const char *xml, int code, const char *want) {
  vhdup__az_page_range r[8];
  size_t n;
  vhdup__err e;
  vhdup__err_clear(&e);
  int rc = vhdup__az_page_list_parse_array(xml, strlen(xml), 0, r, 8, &n, NULL, 0, &e);
  if (rc != code || strstr(e.msg, want) == NULL)
    fail_msg("page list '%s': rc %d '%s', wanted %d '%s'", xml, rc, e.msg, code, want);
}

#define PR(s, e) "<PageRange><Start>" s "</Start><End>" e "</End></PageRange>"

static void test_page_list_hostile(void **state) {
  (void)state;
  expect_page_list_error("<PageList>" PR("0", "99999999999999999999999") "</PageList>",
                         VHDUP_EFORMAT, "not a decimal number");
  expect_page_list_error("<PageList>" PR("0", "18446744073709551616") "</PageList>", VHDUP_EFORMAT,
                         "not a decimal number");
  expect_page_list_error("<PageList>" PR("0", "18446744073709551103") "</PageList>", VHDUP_EFORMAT,
                         "below 8 TiB");
  expect_page_list_error("<PageList><PageRange><Start>0</Start></PageRange></PageList>",
                         VHDUP_EFORMAT, "without <End>");
  expect_page_list_error("<PageList><PageRange><End>511</End></PageRange></PageList>",
                         VHDUP_EFORMAT, "without <Start>");
  expect_page_list_error("<PageList>" PR("1024", "511") "</PageList>", VHDUP_EFORMAT,
                         "invalid range 1024-511");
  expect_page_list_error("<PageList>" PR("100", "611") "</PageList>", VHDUP_EFORMAT, "512-aligned");
  expect_page_list_error("<PageList>" PR("0", "512") "</PageList>", VHDUP_EFORMAT, "512-aligned");
  expect_page_list_error("<PageList>" PR("-0", "511") "</PageList>", VHDUP_EFORMAT,
                         "not a decimal");
  expect_page_list_error("<PageList>" PR("+0", "511") "</PageList>", VHDUP_EFORMAT,
                         "not a decimal");
  expect_page_list_error("<PageList>" PR("0x0", "511") "</PageList>", VHDUP_EFORMAT,
                         "not a decimal");
  expect_page_list_error("<PageList>" PR("", "511") "</PageList>", VHDUP_EFORMAT, "not a decimal");
  expect_page_list_error("<PageList>" PR("0 1", "511") "</PageList>", VHDUP_EFORMAT,
                         "not a decimal");
  expect_page_list_error("<PageList>" PR("0", "1023") PR("512", "1023") "</PageList>",
                         VHDUP_EFORMAT, "overlaps");
  expect_page_list_error("<PageList>" PR("1024", "1535") PR("0", "511") "</PageList>",
                         VHDUP_EFORMAT, "precedes");
  expect_page_list_error("<PageList><PageRange><Start>0</Start><Start>0</Start><End>511</End>"
                         "</PageRange></PageList>",
                         VHDUP_EFORMAT, "repeated <Start>");
  expect_page_list_error("<PageList>" PR("0", "511"), VHDUP_EFORMAT, "truncated");
  expect_page_list_error("<PageList><PageRange><Start>0</Sta", VHDUP_EFORMAT, "malformed XML");
  expect_page_list_error("<Error><Code>x</Code></Error>", VHDUP_EFORMAT, "<PageList> root");
  expect_page_list_error("", VHDUP_EFORMAT, "no <PageList>");
  expect_page_list_error("<PageList/><PageList/>", VHDUP_EFORMAT, "one <PageList>");
  expect_page_list_error("<PageList></PageList>junk", VHDUP_EFORMAT, "outside the root");
  expect_page_list_error("</PageList>", VHDUP_EFORMAT, "does not match");
  expect_page_list_error("<PageList><PageRange><Start>0</End><End>511</Start></PageRange>"
                         "</PageList>",
                         VHDUP_EFORMAT, "does not match");
  expect_page_list_error("<PageList>" PR("0", "5&#49;1&#x20;&#0;") "</PageList>", VHDUP_EFORMAT,
                         "not a decimal");
  expect_page_list_error("<PageList>" PR("0", "511&bogus;") "</PageList>", VHDUP_EFORMAT,
                         "too long");
  expect_page_list_error("<PageList><PageRange><Start>000000000000000000000000000000000000</Start>"
                         "</PageRange></PageList>",
                         VHDUP_EFORMAT, "too long");

  /* Deep nesting is refused, not recursed. */
  char deep[2048] = "<PageList>";
  for (int i = 0; i < 100; i++)
    strcat(deep, "<a>");
  expect_page_list_error(deep, VHDUP_EFORMAT, "nesting too deep");

  /* Marker longer than the caller's buffer. */
  vhdup__err e;
  char small[8];
  const char *m = "<PageList><NextMarker>0123456789</NextMarker></PageList>";
  assert_int_equal(vhdup__az_page_list_parse(m, strlen(m), 0, NULL, NULL, small, sizeof(small), &e),
                   VHDUP_ELIMIT);
  assert_string_equal(small, "");

  /* 10 MB body: over the limit before any parsing. */
  size_t big = 10u * 1000 * 1000;
  char *body = malloc(big);
  assert_non_null(body);
  memset(body, ' ', big);
  memcpy(body, "<PageList>", 10);
  assert_int_equal(vhdup__az_page_list_parse(body, big, 0, NULL, NULL, NULL, 0, &e), VHDUP_ELIMIT);
  assert_non_null(strstr(e.msg, "exceeds the limit"));
  assert_int_equal(vhdup__az_page_list_parse(body, 1000, 999, NULL, NULL, NULL, 0, &e),
                   VHDUP_ELIMIT);
  free(body);
}

static int stop_at_second(void *ctx, const vhdup__az_page_range *r) {
  (void)r;
  int *n = ctx;
  return ++*n == 2 ? 42 : 0;
}

static void test_page_list_callback(void **state) {
  (void)state;
  const char *xml = "<PageList>" PR("0", "511") PR("1024", "1535") PR("2048", "2559") "</PageList>";
  int n = 0;
  assert_int_equal(
      vhdup__az_page_list_parse(xml, strlen(xml), 0, stop_at_second, &n, NULL, 0, NULL), 42);
  assert_int_equal(n, 2);
}

/* -------------------------------------------------- classification/retry */

static void test_classify(void **state) {
  (void)state;
  static const struct {
    int status;
    const char *code;
    vhdup__az_class cls;
    int err;
  } table[] = {
      {200, NULL, VHDUP__AZ_OK, 0},
      {201, NULL, VHDUP__AZ_OK, 0},
      {206, NULL, VHDUP__AZ_OK, 0},
      {500, "InternalError", VHDUP__AZ_RETRY, VHDUP_EHTTP},
      {500, "OperationTimedOut", VHDUP__AZ_RETRY, VHDUP_ETIMEDOUT},
      {503, "ServerBusy", VHDUP__AZ_RETRY, VHDUP_EHTTP},
      {502, NULL, VHDUP__AZ_RETRY, VHDUP_EHTTP},
      {504, NULL, VHDUP__AZ_RETRY, VHDUP_ETIMEDOUT},
      {599, NULL, VHDUP__AZ_RETRY, VHDUP_EHTTP},
      {408, NULL, VHDUP__AZ_RETRY, VHDUP_ETIMEDOUT},
      {429, NULL, VHDUP__AZ_RETRY, VHDUP_EHTTP},
      {501, NULL, VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {505, NULL, VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {400, "InvalidPageRange", VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {400, "InvalidHeaderValue", VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {400, "Md5Mismatch", VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {404, "BlobNotFound", VHDUP__AZ_FATAL, VHDUP_ENOTFOUND},
      {404, "ContainerNotFound", VHDUP__AZ_FATAL, VHDUP_ENOTFOUND},
      {409, "BlobAlreadyExists", VHDUP__AZ_FATAL, VHDUP_EEXIST},
      {409, "LeaseIdMissing", VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {412, "ConditionNotMet", VHDUP__AZ_FATAL, VHDUP_EEXIST},
      {413, "RequestBodyTooLarge", VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {416, "InvalidRange", VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {403, "AuthenticationFailed", VHDUP__AZ_AUTH, VHDUP_EAUTH},
      {403, "AuthorizationPermissionMismatch", VHDUP__AZ_AUTH, VHDUP_EAUTH},
      {403, "AuthorizationFailure", VHDUP__AZ_AUTH, VHDUP_EAUTH},
      {401, NULL, VHDUP__AZ_AUTH, VHDUP_EAUTH},
      {301, NULL, VHDUP__AZ_FATAL, VHDUP_EHTTP},
      {0, NULL, VHDUP__AZ_FATAL, VHDUP_EHTTP},
  };
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    if (vhdup__az_classify(table[i].status, table[i].code) != table[i].cls ||
        vhdup__az_status_errno(table[i].status, table[i].code) != table[i].err)
      fail_msg("row %zu: status %d code %s", i, table[i].status,
               table[i].code ? table[i].code : "-");
  }
}

static uint64_t fixed_random(void *ctx) {
  return *(uint64_t *)ctx;
}

static void test_backoff(void **state) {
  (void)state;
  uint64_t rnd = UINT64_MAX;
  /* Ceiling doubles from base and stops at cap. */
  assert_int_equal(vhdup__az_backoff_ms(0, 100, 30000, -1, NULL, NULL), 100);
  assert_int_equal(vhdup__az_backoff_ms(3, 100, 30000, -1, NULL, NULL), 800);
  assert_int_equal(vhdup__az_backoff_ms(20, 100, 30000, -1, NULL, NULL), 30000);
  assert_int_equal(vhdup__az_backoff_ms(1000, 100, 30000, -1, NULL, NULL), 30000);
  assert_int_equal(vhdup__az_backoff_ms(31, UINT32_MAX, UINT32_MAX, -1, NULL, NULL), UINT32_MAX);
  /* Full jitter: uniform in [0, ceiling]. */
  for (unsigned a = 0; a < 40; a++) {
    for (uint64_t v = 0; v < 5000; v += 997) {
      rnd = v * 2654435761u;
      uint32_t d = vhdup__az_backoff_ms(a, 100, 30000, -1, fixed_random, &rnd);
      uint64_t ceiling = a < 32 && (100ull << a) < 30000 ? 100ull << a : 30000;
      assert_true(d <= ceiling);
      assert_int_equal(d, rnd % (ceiling + 1));
    }
  }
  rnd = 0;
  assert_int_equal(vhdup__az_backoff_ms(5, 100, 30000, -1, fixed_random, &rnd), 0);
  /* Retry-After is a lower bound, itself capped. */
  assert_int_equal(vhdup__az_backoff_ms(0, 100, 30000, 7, fixed_random, &rnd), 7000);
  rnd = 29999;
  assert_int_equal(vhdup__az_backoff_ms(10, 100, 30000, 7, fixed_random, &rnd), 29999);
  assert_int_equal(vhdup__az_backoff_ms(0, 100, 30000, 86400, fixed_random, &rnd),
                   VHDUP__AZ_RETRY_AFTER_CAP_MS);
  assert_int_equal(vhdup__az_backoff_ms(0, 100, 30000, 999999999L, fixed_random, &rnd),
                   VHDUP__AZ_RETRY_AFTER_CAP_MS);

  const vhdup__az_header h[] = {{"retry-after", " 12 "}};
  assert_int_equal(vhdup__az_retry_after(h, 1, 0), 12);
  const vhdup__az_header neg[] = {{"Retry-After", "-5"}};
  assert_int_equal(vhdup__az_retry_after(neg, 1, 0), -1);
  const vhdup__az_header huge[] = {{"Retry-After", "99999999999999999999"}};
  assert_int_equal(vhdup__az_retry_after(huge, 1, 0), -1);
  assert_int_equal(vhdup__az_retry_after(NULL, 0, 0), -1);

  /* The HTTP-date form: 946684799 is 1999-12-31T23:59:59Z. Counted from
   * the answer's Date when there is one, else from the caller's clock. */
  const vhdup__az_header date[] = {{"Retry-After", "Fri, 31 Dec 1999 23:59:59 GMT"}};
  assert_int_equal(vhdup__az_retry_after(date, 1, 946684799 - 30), 30);
  assert_int_equal(vhdup__az_retry_after(date, 1, 946684799 + 30), 0);
  const vhdup__az_header with_date[] = {{"Date", "Fri, 31 Dec 1999 23:59:49 GMT"},
                                        {"Retry-After", "Fri, 31 Dec 1999 23:59:59 GMT"}};
  assert_int_equal(vhdup__az_retry_after(with_date, 2, 0), 10);
  const vhdup__az_header bad_date[] = {{"Date", "yesterday"},
                                       {"Retry-After", "Fri, 31 Dec 1999 23:59:59 GMT"}};
  assert_int_equal(vhdup__az_retry_after(bad_date, 2, 946684799 - 5), 5);
  const vhdup__az_header not_date[] = {{"Retry-After", "Fri, 31 Dec 1999 23:59:59 UTC"}};
  assert_int_equal(vhdup__az_retry_after(not_date, 1, 0), -1);

  assert_true(vhdup__az_http_date("Thu, 01 Jan 1970 00:00:00 GMT") == 0);
  assert_true(vhdup__az_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  assert_true(vhdup__az_http_date("Tue, 29 Feb 2000 12:00:00 GMT") == 951825600);
  assert_true(vhdup__az_http_date("Wed, 25 Nov 2026 17:00:00 GMT") == 1795626000);
  assert_true(vhdup__az_http_date("Mon, 29 Feb 2100 00:00:00 GMT") == -1); /* not leap */
  assert_true(vhdup__az_http_date("Sun, 31 Apr 1994 08:49:37 GMT") == -1);
  assert_true(vhdup__az_http_date("Sun, 06 Nov 1994 24:00:00 GMT") == -1);
  assert_true(vhdup__az_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == -1);
  assert_true(vhdup__az_http_date("Sun, 6 Nov 1994 08:49:37 GMT") == -1);
  assert_true(vhdup__az_http_date("Xyz, 06 Nov 1994 08:49:37 GMT") == -1);
  assert_true(vhdup__az_http_date("Sun, 06 Nov 1994 08:49:37 GMTX") == -1);
  assert_true(vhdup__az_http_date(NULL) == -1);
}

/* ------------------------------------------------------------------ CRC64 */

static uint64_t crc64_bitwise(uint64_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++)
      crc = (crc >> 1) ^ ((crc & 1) ? 0x9A6C9329AC4BC9B5ull : 0);
  }
  return ~crc;
}

static void test_crc64(void **state) {
  (void)state;
  assert_true(vhdup__crc64(0, "123456789", 9) == 0xAE8B14860A799888ull);
  assert_true(vhdup__crc64(0, "", 0) == 0);
  char b64[13];
  vhdup__crc64_base64(0xAE8B14860A799888ull, b64);
  assert_string_equal(b64, "iJh5CoYUi64=");

  uint8_t zeros[512] = {0};
  assert_true(vhdup__crc64(0, zeros, sizeof(zeros)) == 0x1de60e2868a782e9ull);
  uint8_t seq[512];
  for (int i = 0; i < 512; i++)
    seq[i] = (uint8_t)i;
  assert_true(vhdup__crc64(0, seq, sizeof(seq)) == 0x65f48632094a1b07ull);

  /* Incremental use at every split point and misalignment equals one pass,
   * and slicing-by-8 equals the bitwise definition. */
  uint8_t buf[1031];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof(buf); i++) {
    x = x * 1103515245u + 12345u;
    buf[i] = (uint8_t)(x >> 16);
  }
  /* Every length on both sides of the folding's thresholds (256 bytes, then
   * steps of 64), from an odd address, by both paths. */
  for (size_t len = 0; len <= sizeof(buf) - 3; len++) {
    uint64_t want = crc64_bitwise(0, buf + 3, len);
    assert_true(vhdup__crc64(0, buf + 3, len) == want);
    assert_true(vhdup__crc64_tables(0, buf + 3, len) == want);
    assert_true(vhdup__crc64(0x0123456789abcdefull, buf + 3, len) ==
                crc64_bitwise(0x0123456789abcdefull, buf + 3, len));
  }
  uint64_t whole = vhdup__crc64(0, buf, sizeof(buf));
  assert_true(whole == crc64_bitwise(0, buf, sizeof(buf)));
  for (size_t cut = 0; cut <= sizeof(buf); cut += 7) {
    uint64_t c = vhdup__crc64(0, buf, cut);
    c = vhdup__crc64(c, buf + cut, sizeof(buf) - cut);
    assert_true(c == whole);
  }

  /* A Put Page's worth, as the pipeline hashes it, and zeros (the folds of
   * an all-zero lane must stay zero). */
  size_t big_len = 1u << 20;
  uint8_t *big = malloc(big_len);
  assert_non_null(big);
  for (size_t i = 0; i < big_len; i++) {
    x = x * 1103515245u + 12345u;
    big[i] = (uint8_t)(x >> 16);
  }
  assert_true(vhdup__crc64(0, big, big_len) == crc64_bitwise(0, big, big_len));
  memset(big, 0, big_len);
  assert_true(vhdup__crc64(0, big, big_len) == vhdup__crc64_tables(0, big, big_len));
  free(big);
}

/* -------------------------------------------------------- allocation */

static int fail_after = -1;
static void *counting_malloc(size_t n) {
  if (fail_after == 0)
    return NULL;
  if (fail_after > 0)
    fail_after--;
  return test_malloc(n);
}
static void *counting_realloc(void *p, size_t n) {
  if (fail_after == 0)
    return NULL;
  if (fail_after > 0)
    fail_after--;
  return test_realloc(p, n);
}
static void *counting_calloc(size_t c, size_t n) {
  if (fail_after == 0)
    return NULL;
  if (fail_after > 0)
    fail_after--;
  return test_calloc(c, n);
}
static void counting_free(void *p) {
  test_free(p);
}

/* Fails each allocation in turn through a full create/sign cycle; cmocka's
 * test_* allocators report any leak. */
static void test_allocation_failures(void **state) {
  (void)state;
  assert_int_equal(
      vhdup_replace_allocator(counting_malloc, counting_realloc, counting_calloc, counting_free),
      0);
  int completed = 0;
  for (int n = 0; n < 400 && !completed; n++) {
    fail_after = n;
    vhdup__az_cred c;
    vhdup__az_url u;
    vhdup__az_blob b;
    vhdup__az_request r;
    vhdup__err e;
    if (vhdup__az_connstr_parse("UseDevelopmentStorage=true", &c, &e) != 0)
      continue;
    if (vhdup__az_url_parse("http://127.0.0.1:10000/devstoreaccount1/c/b?x", 0, &u, &e) != 0) {
      vhdup__az_cred_free(&c);
      continue;
    }
    vhdup__free(u.sas);
    u.sas = NULL;
    int rc = vhdup__az_blob_init(&b, &u, &c, NULL, &e);
    vhdup__az_url_free(&u);
    vhdup__az_cred_free(&c);
    if (rc != 0)
      continue;
    rc = vhdup__az_req_get_page_ranges(&b, 0, 512, "m/1", 10, NULL, &r, &e);
    vhdup__az_request_free(&r);
    if (rc == 0) {
      char *s = vhdup__az_blob_display_url(&b);
      if (s != NULL) {
        vhdup__free(s);
        completed = 1;
      }
    } else {
      assert_int_equal(rc, VHDUP_ENOMEM);
    }
    vhdup__az_blob_free(&b);
  }
  fail_after = -1;
  assert_true(completed);
  assert_int_equal(vhdup_replace_allocator(NULL, NULL, NULL, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc1123),
      cmocka_unit_test(test_sign_headers_and_query),
      cmocka_unit_test(test_sign_emulator),
      cmocka_unit_test(test_sign_bad_query),
      cmocka_unit_test(test_connstr_full),
      cmocka_unit_test(test_connstr_errors),
      cmocka_unit_test(test_env),
      cmocka_unit_test(test_url_parse),
      cmocka_unit_test(test_url_errors),
      cmocka_unit_test(test_query_has_sig),
      cmocka_unit_test(test_url_loopback),
      cmocka_unit_test(test_req_create_signed),
      cmocka_unit_test(test_req_sas),
      cmocka_unit_test(test_blob_init_errors),
      cmocka_unit_test(test_error_parse),
      cmocka_unit_test(test_page_list),
      cmocka_unit_test(test_page_list_hostile),
      cmocka_unit_test(test_page_list_callback),
      cmocka_unit_test(test_classify),
      cmocka_unit_test(test_backoff),
      cmocka_unit_test(test_crc64),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
