/* The manifest module: a full manifest lands in the right fields, every
 * kind of mistake is reported at its line and column (all of them at
 * once), secrets are only referenced and never echoed, hostile input stays
 * within its limits, and every allocation can fail without a leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manifest/manifest.h"
#include "upload/target.h"
#include "util/alloc.h"
#include "util/defaults.h"
#include "util/secret.h"

/* ---- Fakes and helpers ---- */

static int fake_exists(void *ctx, const char *path) {
  (void)ctx;
  return strstr(path, "missing") == NULL;
}

static const vhdup__manifest_env env = {fake_exists, "/home/me", NULL};

static int parse_with(const char *yaml, const char *base, const vhdup__manifest_env *e,
                      vhdup__manifest **m, vhdup__manifest_diag **d) {
  return vhdup__manifest_parse(yaml, strlen(yaml), "m.yaml", base, e, m, d);
}

static int parse(const char *yaml, vhdup__manifest **m, vhdup__manifest_diag **d) {
  return parse_with(yaml, "/srv/disks", &env, m, d);
}

static size_t count(const vhdup__manifest_diag *d, int sev) {
  size_t n = 0;
  for (; d != NULL; d = d->next)
    n += sev < 0 || (int)d->severity == sev;
  return n;
}

/* The diagnostic at line:col whose message holds sub, or NULL. */
static const vhdup__manifest_diag *find(const vhdup__manifest_diag *d, unsigned line, unsigned col,
                                        const char *sub) {
  for (; d != NULL; d = d->next)
    if (d->line == line && d->col == col && strstr(d->message, sub) != NULL)
      return d;
  return NULL;
}

/* The credential called name, or NULL. */
static const vhdup__manifest_credential *credential(const vhdup__manifest *m, const char *name) {
  for (size_t i = 0; i < m->credential_count; i++)
    if (strcmp(m->credentials[i].name, name) == 0)
      return &m->credentials[i];
  return NULL;
}

static void print_diags(const vhdup__manifest_diag *d) {
  for (; d != NULL; d = d->next)
    print_message("  %s\n", d->text);
}

/* Parses yaml expecting failure with exactly one error, at line:col and
 * containing sub. */
static int check_error_at(const char *yaml, unsigned line, unsigned col, const char *sub) {
  vhdup__manifest *m = (vhdup__manifest *)1;
  vhdup__manifest_diag *d = NULL;
  int rc = parse(yaml, &m, &d);
  if (rc != VHDUP_EMANIFEST || count(d, VHDUP__MANIFEST_ERROR) != 1 ||
      find(d, line, col, sub) == NULL) {
    print_message("manifest:\n%s\nexpected one error at %u:%u with '%s', got rc %d:\n", yaml, line,
                  col, sub, rc);
    print_diags(d);
    vhdup__manifest_diags_free(d);
    vhdup__manifest_free(m == (vhdup__manifest *)1 ? NULL : m);
    return 1;
  }
  assert_null(m);
  vhdup__manifest_diags_free(d);
  return 0;
}

static void expect_error_at(const char *yaml, unsigned line, unsigned col, const char *sub) {
  assert_int_equal(check_error_at(yaml, line, col, sub), 0);
}

/* ---- A complete manifest ---- */

static const char full_manifest[] =
    "version: 1\n"
    "defaults:\n"
    "  connections: 32\n"
    "  per_blob_connections: 8\n"
    "  memory: 256M\n"
    "  md5: true\n"
    "  crc64: false\n"
    "  disk_md5: false\n"
    "  resize: true\n"
    "  verify: ranges\n"
    "  retries: 8\n"
    "  overwrite: false\n"
    "  ca_file: certs/ca.pem\n"
    "credentials:\n"
    "  prod:\n"
    "    connection_string: { env: PROD_CONN }\n"
    "  archive:\n"
    "    account: myacct\n"
    "    key: { file: ~/secrets/archive.key }\n"
    "  lab:\n"
    "    sas: { env: LAB_SAS }\n"
    "    endpoint: http://127.0.0.1:10000/devstoreaccount1/\n"
    "uploads:\n"
    "  - source: images/web01.vhd\n"
    "    destination: https://acct.blob.core.windows.net/vhds/web01.vhd\n"
    "    credential: prod\n"
    "  - source: ./images/db01.vhd\n"
    "    container: vhds\n"
    "    blob: db01.vhd\n"
    "    credential: archive\n"
    "    verify: content\n"
    "    per_blob_connections: 4\n"
    "  - source: /var/lib/images/child.vhd\n"
    "    parent: images/base.vhd\n"
    "    journal: state/child.journal\n"
    "    container: vhds\n"
    "    blob: nested/child.vhd\n"
    "    credential: prod\n"
    "    crc64: true\n"
    "    format: vhd\n"
    "    merge_gap: 128K\n"
    "    retries: 3\n"
    "    resize: false\n"
    "    overwrite: true\n"
    "    create_container: true\n"
    "    resume: true\n"
    "    disk_md5: true\n"
    "    service_version: 2020-10-02\n"
    "  - source: lab.raw\n"
    "    container: lab\n"
    "    blob: lab.raw\n"
    "    credential: lab\n"
    "    format: raw\n"
    "    verify: none\n";

static void test_full_manifest(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(parse(full_manifest, &m, &d), 0);
  assert_null(d);
  assert_non_null(m);

  assert_string_equal(m->file, "m.yaml");
  assert_int_equal(m->version, 1);
  assert_int_equal(m->connections, 32);
  assert_true(m->memory == 256u << 20);
  assert_string_equal(m->ca_file, "/srv/disks/certs/ca.pem");
  assert_int_equal(m->defaults.per_blob_connections, 8);
  assert_int_equal(m->defaults.verify, VHDUP_VERIFY_RANGES);

  assert_int_equal(m->credential_count, 3);
  const vhdup__manifest_credential *prod = credential(m, "prod");
  const vhdup__manifest_credential *archive = credential(m, "archive");
  const vhdup__manifest_credential *lab = credential(m, "lab");
  assert_null(credential(m, "nope"));
  assert_non_null(prod);
  assert_int_equal(prod->kind, VHDUP__MANIFEST_CRED_CONNECTION_STRING);
  assert_int_equal(prod->secret.kind, VHDUP__MANIFEST_SECRET_ENV);
  assert_string_equal(prod->secret.value, "PROD_CONN");
  assert_int_equal(prod->secret.line, 16);
  assert_int_equal(prod->secret.col, 31);
  assert_null(prod->account);
  assert_int_equal(prod->line, 15);
  assert_int_equal(prod->col, 3);
  assert_non_null(archive);
  assert_int_equal(archive->kind, VHDUP__MANIFEST_CRED_SHARED_KEY);
  assert_string_equal(archive->account, "myacct");
  assert_int_equal(archive->secret.kind, VHDUP__MANIFEST_SECRET_FILE);
  assert_string_equal(archive->secret.value, "/home/me/secrets/archive.key");
  assert_non_null(lab);
  assert_int_equal(lab->kind, VHDUP__MANIFEST_CRED_SAS);
  assert_string_equal(lab->secret.value, "LAB_SAS");
  assert_string_equal(lab->endpoint, "http://127.0.0.1:10000/devstoreaccount1");

  assert_int_equal(m->upload_count, 4);
  const vhdup__manifest_upload *u = &m->uploads[0];
  assert_string_equal(u->source, "/srv/disks/images/web01.vhd");
  assert_string_equal(u->destination, "https://acct.blob.core.windows.net/vhds/web01.vhd");
  assert_null(u->container);
  assert_ptr_equal(u->credential, prod);
  assert_int_equal(u->line, 24);
  assert_int_equal(u->col, 5);
  /* Defaults apply where the upload says nothing. */
  assert_int_equal(u->settings.per_blob_connections, 8);
  assert_int_equal(u->settings.verify, VHDUP_VERIFY_RANGES);
  assert_int_equal(u->settings.md5, 1);
  assert_int_equal(u->settings.crc64, 0);
  assert_int_equal(u->settings.retries, 8);
  assert_int_equal(u->settings.resize, 1);
  assert_int_equal(u->settings.format, VHDUP_FORMAT_AUTO);
  assert_true(u->settings.merge_gap == 64u << 10);
  assert_null(u->settings.service_version);

  u = &m->uploads[1];
  assert_string_equal(u->source, "/srv/disks/images/db01.vhd");
  assert_string_equal(u->container, "vhds");
  assert_string_equal(u->blob, "db01.vhd");
  assert_string_equal(u->destination, "https://myacct.blob.core.windows.net/vhds/db01.vhd");
  assert_ptr_equal(u->credential, archive);
  assert_int_equal(u->settings.verify, VHDUP_VERIFY_CONTENT);
  assert_int_equal(u->settings.per_blob_connections, 4);
  assert_int_equal(u->settings.retries, 8);

  u = &m->uploads[2];
  assert_string_equal(u->source, "/var/lib/images/child.vhd");
  assert_string_equal(u->parent, "/srv/disks/images/base.vhd");
  assert_string_equal(u->journal, "/srv/disks/state/child.journal");
  /* A connection string's endpoint is joined by the library. */
  assert_string_equal(u->destination, "vhds/nested/child.vhd");
  assert_int_equal(u->settings.crc64, 1);
  assert_int_equal(u->settings.md5, 0); /* crc64 replaces the default md5 */
  assert_int_equal(u->settings.format, VHDUP_FORMAT_VHD);
  assert_true(u->settings.merge_gap == 128u << 10);
  assert_int_equal(u->settings.retries, 3);
  assert_int_equal(u->settings.resize, 0);
  assert_int_equal(u->settings.overwrite, 1);
  assert_int_equal(u->settings.create_container, 1);
  assert_int_equal(u->settings.resume, 1);
  assert_int_equal(u->settings.disk_md5, 1);
  assert_string_equal(u->settings.service_version, "2020-10-02");
  assert_int_equal(u->settings.verify, VHDUP_VERIFY_RANGES);

  u = &m->uploads[3];
  assert_string_equal(u->destination, "http://127.0.0.1:10000/devstoreaccount1/lab/lab.raw");
  assert_int_equal(u->settings.format, VHDUP_FORMAT_RAW);
  assert_int_equal(u->settings.verify, VHDUP_VERIFY_NONE);
  vhdup__manifest_free(m);
}

static void test_builtin_defaults(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(parse("version: 1\n"
                         "credentials: { c: { account: acct1, key: { env: K } } }\n"
                         "uploads:\n"
                         "  - { source: a.vhd, container: vhds, blob: a.vhd, credential: c }\n",
                         &m, &d),
                   0);
  assert_null(d);
  assert_int_equal(m->connections, VHDUP__DEFAULT_CONNECTIONS);
  assert_true(m->memory == VHDUP__DEFAULT_MEMORY);
  assert_null(m->ca_file);
  const vhdup__manifest_settings *s = &m->uploads[0].settings;
  assert_int_equal(s->per_blob_connections, 0);
  assert_int_equal(s->md5, 1);
  assert_int_equal(s->crc64, 0);
  assert_int_equal(s->disk_md5, 0);
  assert_int_equal(s->resize, 1);
  assert_int_equal(s->overwrite, 0);
  assert_int_equal(s->create_container, 0);
  assert_int_equal(s->resume, 0);
  assert_int_equal(s->allow_http, 0);
  assert_int_equal(s->verify, VHDUP_VERIFY_NONE);
  assert_int_equal(s->format, VHDUP_FORMAT_AUTO);
  assert_int_equal(s->retries, VHDUP__DEFAULT_MAX_ATTEMPTS);
  assert_string_equal(m->uploads[0].destination, "https://acct1.blob.core.windows.net/vhds/a.vhd");
  vhdup__manifest_free(m);
}

/* The more specific level picks the checksum: crc64 in defaults, md5 back
 * in one upload. */
static void test_checksum_override(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(parse("version: 1\n"
                         "defaults: { crc64: true }\n"
                         "credentials: { c: { account: acct1, key: { env: K } } }\n"
                         "uploads:\n"
                         "  - { source: a, container: vhds, blob: a, credential: c }\n"
                         "  - { source: b, container: vhds, blob: b, credential: c, md5: true }\n",
                         &m, &d),
                   0);
  assert_int_equal(m->defaults.crc64, 1);
  assert_int_equal(m->defaults.md5, 0);
  assert_int_equal(m->uploads[0].settings.crc64, 1);
  assert_int_equal(m->uploads[0].settings.md5, 0);
  assert_int_equal(m->uploads[1].settings.crc64, 0);
  assert_int_equal(m->uploads[1].settings.md5, 1);
  vhdup__manifest_free(m);
  vhdup__manifest_diags_free(d);
}

static const char *source_with(const char *source, const char *base, const vhdup__manifest_env *e) {
  static char out[256];
  char yaml[512];
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  snprintf(yaml, sizeof(yaml),
           "version: 1\nuploads:\n  - source: %s\n    destination: https://a.blob.core.windows.net"
           "/c/b?sv=1&sig=x\n",
           source);
  if (parse_with(yaml, base, e, &m, &d) != 0) {
    snprintf(out, sizeof(out), "error: %s", d != NULL ? d->message : "?");
  } else {
    snprintf(out, sizeof(out), "%s", m->uploads[0].source);
    vhdup__manifest_free(m);
  }
  vhdup__manifest_diags_free(d);
  return out;
}

static void test_paths(void **state) {
  (void)state;
  vhdup__manifest_env no_home = {fake_exists, NULL, NULL};
  assert_string_equal(source_with("a.vhd", "/srv/disks", &env), "/srv/disks/a.vhd");
  assert_string_equal(source_with("a.vhd", "/srv/disks///", &env), "/srv/disks/a.vhd");
  assert_string_equal(source_with("././a.vhd", "/srv/disks", &env), "/srv/disks/a.vhd");
  assert_string_equal(source_with("../a.vhd", "/srv/disks", &env), "/srv/disks/../a.vhd");
  assert_string_equal(source_with("/abs/a.vhd", "/srv/disks", &env), "/abs/a.vhd");
  assert_string_equal(source_with("a.vhd", "/", &env), "/a.vhd");
  assert_string_equal(source_with("a.vhd", "rel", &env), "rel/a.vhd");
  assert_string_equal(source_with("a.vhd", NULL, &env), "a.vhd");
  assert_string_equal(source_with("a.vhd", ".", &env), "a.vhd"); /* dirname("m.yaml") */
  assert_string_equal(source_with("a.vhd", "", NULL), "a.vhd");
  assert_string_equal(source_with("~/a.vhd", "/srv", &env), "/home/me/a.vhd");
  assert_string_equal(source_with("~/a.vhd", "/srv", &no_home),
                      "error: 'source' starts with '~' but no home folder is known");
  assert_string_equal(source_with("~bob/a.vhd", "/srv", &env),
                      "error: 'source': '~user/' paths are not supported; write the whole path");
  /* Without a file_exists callback nothing is checked. */
  assert_string_equal(source_with("missing.vhd", "/srv", NULL), "/srv/missing.vhd");
  assert_string_equal(source_with("missing.vhd", "/srv", &env),
                      "error: source 'missing.vhd' not found (or not a readable file; looked for "
                      "'/srv/missing.vhd')");
}

/* ---- Mistakes, one at a time ---- */

#define HEAD "version: 1\n"
#define CRED "credentials:\n  c: { account: acct1, key: { env: K } }\n"
#define UP(rest) "uploads:\n  - source: a.vhd\n" rest
#define TO_C "    container: vhds\n    blob: a.vhd\n    credential: c\n"

typedef struct bad_case {
  const char *yaml;
  unsigned line, col;
  const char *message;
} bad_case;

static const bad_case bad_cases[] = {
    /* The file as a whole. */
    {"", 1, 1, "the manifest is empty"},
    {"- a\n- b\n", 1, 1, "a manifest is a mapping with version"},
    {HEAD HEAD CRED UP(TO_C), 2, 1, "duplicate key 'version' in the manifest (first at 1:1)"},
    {"verison: 1\n" CRED UP(TO_C), 1, 1, "unknown key 'verison' in the manifest (did you mean"},
    {CRED UP(TO_C), 1, 1, "missing 'version: 1'"},
    {"version: 2\n" CRED UP(TO_C), 1, 10, "'version' must be 1"},
    {HEAD "[a]: b\n" CRED UP(TO_C), 2, 1, "a key in the manifest must be a plain word, not a list"},
    /* YAML itself. */
    {HEAD "uploads: [\n", 3, 1, "YAML: did not find expected node content"},
    {HEAD "uploads:\n  - source: a\n   bad: indent\n", 4, 4,
     "YAML: did not find expected '-' indicator while parsing a block collection (from 3:3)"},
    {HEAD "uploads: a: b\n", 2, 11, "YAML: mapping values are not allowed in this context"},
    {HEAD "uploads:\n  - source: \"\xff\"\n", 3, 14, "YAML: invalid leading UTF-8 octet"},
    {HEAD "---\nuploads: []\n", 2, 1, "a second YAML document"},
    {HEAD "defaults: { retries: &x 3 }\n" CRED UP(TO_C "    retries: *x\n"), 10, 14,
     "YAML aliases (*x) are not supported"},
    /* defaults. */
    {HEAD "defaults: [1, 2]\n" CRED UP(TO_C), 2, 11, "'defaults' must be a mapping"},
    {HEAD "defaults:\n  conections: 32\n" CRED UP(TO_C), 3, 3,
     "unknown key 'conections' in defaults (did you mean 'connections'?)"},
    {HEAD "defaults:\n  connections: 0\n" CRED UP(TO_C), 3, 16,
     "'connections' takes a whole number from 1 to 1024, not '0'"},
    {HEAD "defaults:\n  connections: 1025\n" CRED UP(TO_C), 3, 16, "from 1 to 1024, not '1025'"},
    {HEAD "defaults:\n  connections: -3\n" CRED UP(TO_C), 3, 16, "not '-3'"},
    {HEAD "defaults:\n  connections: \"32\"\n" CRED UP(TO_C), 3, 16, "not the quoted '32'"},
    {HEAD "defaults:\n  connections: [32]\n" CRED UP(TO_C), 3, 16,
     "'connections' takes a single value, not a list"},
    {HEAD "defaults:\n  memory: 4M\n" CRED UP(TO_C), 3, 11,
     "'memory' takes a size from 8M to 1T (K, M, G, T suffixes), not '4M'"},
    {HEAD "defaults:\n  memory: lots\n" CRED UP(TO_C), 3, 11, "not 'lots'"},
    {HEAD "defaults:\n  memory: 2T\n" CRED UP(TO_C), 3, 11, "not '2T'"},
    {HEAD "defaults:\n  retries: 101\n" CRED UP(TO_C), 3, 12, "from 1 to 100, not '101'"},
    {HEAD "defaults:\n  per_blob_connections: 0\n" CRED UP(TO_C), 3, 25, "from 1 to 1024"},
    {HEAD "defaults:\n  verify: maybe\n" CRED UP(TO_C), 3, 11,
     "'verify' takes none, ranges or content, not 'maybe'"},
    {HEAD "defaults:\n  verify: contnt\n" CRED UP(TO_C), 3, 11, "(did you mean 'content'?)"},
    {HEAD "defaults:\n  format: qcow2\n" CRED UP(TO_C), 3, 11,
     "'format' takes auto, vhd, raw or vhdx, not 'qcow2'"},
    {HEAD "defaults:\n  md5: yes\n" CRED UP(TO_C), 3, 8, "'md5' takes true or false, not 'yes'"},
    {HEAD "defaults:\n  md5: \"true\"\n" CRED UP(TO_C), 3, 8, "leave out the quotes"},
    {HEAD "defaults:\n  md5: true\n  crc64: true\n" CRED UP(TO_C), 4, 10,
     "'md5' and 'crc64' are both true"},
    {HEAD "defaults:\n  merge_gap: 1000\n" CRED UP(TO_C), 3, 14, "multiple of 512 up to 4M"},
    {HEAD "defaults:\n  service_version: latest\n" CRED UP(TO_C), 3, 20,
     "'service_version' takes an x-ms-version date"},
    {HEAD "defaults:\n  ca_file: missing.pem\n" CRED UP(TO_C), 3, 12, "CA file 'missing.pem'"},
    {HEAD "defaults:\n  source: a.vhd\n" CRED UP(TO_C), 3, 3,
     "'source' belongs to an upload, not to 'defaults'"},
    {HEAD "defaults:\n  retries: 3\n  retries: 4\n" CRED UP(TO_C), 4, 3,
     "duplicate key 'retries' in defaults (first at 3:3)"},
    /* credentials. */
    {HEAD "credentials: [a]\n" UP(TO_C), 2, 14, "'credentials' must be a mapping"},
    {HEAD "credentials:\n  c: x\n" UP(TO_C), 3, 6, "a credential must be a mapping"},
    {HEAD "credentials:\n  c:\n" UP(TO_C), 3, 3, "credential 'c' is empty"},
    {HEAD "credentials:\n  c b: { sas: { env: S }, account: acct1 }\n" UP(TO_C), 3, 3,
     "'c b' is not a credential name"},
    {HEAD "credentials:\n  c: { account: acct1 }\n" UP(TO_C), 3, 6,
     "credential 'c' needs connection_string, key (with account) or sas"},
    {HEAD "credentials:\n  c: { account: acct1, key: { env: K }, sas: { env: S } }\n" UP(TO_C), 3,
     41, "credential 'c' has both 'key' and 'sas': give one"},
    {HEAD "credentials:\n  c: { key: { env: K } }\n" UP(TO_C), 3, 6,
     "credential 'c': a key needs 'account' too"},
    {HEAD "credentials:\n  c: { account: My_Acct, key: { env: K } }\n" UP(TO_C), 3, 17,
     "'My_Acct' is not a storage account name"},
    {HEAD "credentials:\n  c: { connection_string: { env: C }, account: acct1 }\n" UP(TO_C), 3, 39,
     "'account' does not go with connection_string"},
    {HEAD "credentials:\n  c: { account: acct1, kye: { env: K } }\n" UP(TO_C), 3, 24,
     "unknown key 'kye' in credential 'c' (did you mean 'key'?)"},
    {HEAD "credentials:\n  c: { account: acct1, key: { env: K, file: k } }\n" UP(TO_C), 3, 39,
     "the key of credential 'c' takes one of { env: NAME } or { file: PATH }"},
    {HEAD "credentials:\n  c: { account: acct1, key: { } }\n" UP(TO_C), 3, 29,
     "takes one of { env: NAME } or { file: PATH }"},
    {HEAD "credentials:\n  c: { account: acct1, key: { env: 1BAD } }\n" UP(TO_C), 3, 36,
     "'1BAD' is not an environment variable name"},
    {HEAD "credentials:\n  c: { account: acct1, key: [a] }\n" UP(TO_C), 3, 29,
     "'key' of credential 'c' takes a string, { env: NAME } or { file: PATH }, not a list"},
    {HEAD "credentials:\n  c: { account: acct1, key: { file: missing.key } }\n" UP(TO_C), 3, 37,
     "key file of credential 'c' 'missing.key' not found"},
    {HEAD
     "credentials:\n  c: { account: acct1, key: { env: K } }\n  c: { sas: { env: S } }\n" UP(TO_C),
     4, 3, "duplicate credential 'c' (first at 3:3)"},
    {HEAD "credentials:\n  c: { sas: { env: S }, endpoint: ftp://x }\n" UP(TO_C), 3, 35,
     "'endpoint': URL must start with https://"},
    {HEAD "credentials:\n  c: { connection_string: 'AccountName=acct1;AccountKey=!!' }\n" UP(TO_C),
     3, 27, "'connection_string': connection string:"},
    {HEAD
     "credentials:\n  c: { sas: { env: S }, endpoint: 'http://example.com:8080/acct1' }\n" UP(TO_C),
     6, 16, "the destination: refusing plain http:// to example.com"},
    {HEAD "credentials:\n  c: { connection_string: 'BlobEndpoint=http://example.com:8080/acct1;"
          "SharedAccessSignature=sv=1&sig=x' }\n" UP(TO_C),
     6, 16, "the destination: refusing plain http:// to example.com"},
    /* uploads. */
    {HEAD CRED, 1, 1, "missing 'uploads'"},
    {HEAD CRED "uploads: []\n", 4, 10, "'uploads' is empty: nothing to upload"},
    {HEAD CRED "uploads:\n", 4, 9, "'uploads' is empty"},
    {HEAD CRED "uploads: { source: a }\n", 4, 10, "'uploads' must be a list"},
    {HEAD CRED "uploads:\n  - a.vhd\n", 5, 5, "each upload must be a mapping"},
    {HEAD CRED "uploads:\n  - container: vhds\n    blob: a\n    credential: c\n", 5, 5,
     "upload 1 has no 'source'"},
    {HEAD CRED "uploads:\n  - source:\n" TO_C, 5, 12, "'source' needs a value"},
    {HEAD CRED "uploads:\n  - source: \"a\\0b\"\n" TO_C, 5, 13, "'source' contains a NUL"},
    {HEAD CRED "uploads:\n  - source: missing.vhd\n" TO_C, 5, 13, "source 'missing.vhd' not found"},
    {HEAD CRED UP("    parent: missing.vhd\n" TO_C), 6, 13, "parent 'missing.vhd' not found"},
    {HEAD CRED UP("    credential: c\n"), 5, 5,
     "upload 1 has no 'destination' (a blob URL) and no 'container' and 'blob'"},
    {HEAD CRED UP("    destination: https://acct1.blob.core.windows.net/vhds/a\n" TO_C), 7, 5,
     "give either 'destination' (a blob URL) or 'container' and 'blob', not both"},
    {HEAD CRED UP("    container: vhds\n    credential: c\n"), 6, 5,
     "'container' needs 'blob' too"},
    {HEAD CRED UP("    blob: a\n    credential: c\n"), 6, 5, "'blob' needs 'container' too"},
    {HEAD CRED UP("    container: VHDs\n    blob: a\n    credential: c\n"), 6, 16,
     "'VHDs' is not a container name"},
    {HEAD CRED UP("    container: vhds\n    blob: a?b\n    credential: c\n"), 7, 11,
     "'blob' must be 1 to 1024 characters without '?'"},
    {HEAD CRED UP("    container: vhds\n    blob: a\n"), 6, 16,
     "'container' and 'blob' need a 'credential'"},
    {HEAD CRED UP("    container: vhds\n    blob: a\n    credential: zz\n"), 8, 17,
     "no credential named 'zz' under 'credentials'"},
    {HEAD "credentials:\n  prod: { account: acct1, key: { env: K } }\n" UP(
         "    container: vhds\n    blob: a\n    credential: prd\n"),
     8, 17, "no credential named 'prd' (did you mean 'prod'?)"},
    {HEAD UP("    container: vhds\n    blob: a\n    credential: c\n"), 6, 17,
     "no credential named 'c' (the manifest has no 'credentials')"},
    {HEAD "credentials:\n  c: { sas: { env: S } }\n" UP(
         "    container: vhds\n    blob: a\n    credential: c\n"),
     8, 17, "credential 'c' names no account or endpoint"},
    {HEAD CRED UP("    destination: https://acct1.blob.core.windows.net/vhds/a.vhd\n"), 6, 18,
     "the destination has no SAS and the upload names no 'credential'"},
    {HEAD CRED UP("    destination: https://other.blob.core.windows.net/vhds/a.vhd\n"
                  "    credential: c\n"),
     7, 5, "credential 'c' is for account 'acct1', but the destination is in account 'other'"},
    {HEAD CRED UP("    destination: vhds/a.vhd\n    credential: c\n"), 6, 18,
     "'destination': URL must start with https://"},
    {HEAD CRED UP("    destination: https://acct1.blob.core.windows.net/vhds\n"
                  "    credential: c\n"),
     6, 18, "'destination': URL names no blob"},
    {HEAD CRED UP("    destination: https://acct1.blob.core.windows.net/vhds/\n"
                  "    credential: c\n"),
     6, 18, "'destination': URL names no blob"},
    {HEAD CRED UP("    destination: http://acct1.blob.core.windows.net/vhds/a\n"
                  "    credential: c\n"),
     6, 18, "'destination': refusing plain http:// to acct1.blob.core.windows.net"},
    {HEAD CRED UP("    destination: https://u:p@acct1.blob.core.windows.net/vhds/a\n"
                  "    credential: c\n"),
     6, 18, "'destination': URL has user information"},
    {HEAD CRED UP("    destination: https://acct1.blob.core.windows.net/vhds/a#x\n"
                  "    credential: c\n"),
     6, 18, "'#' fragment"},
    {HEAD CRED UP(TO_C "    connections: 4\n"), 9, 5,
     "'connections' is shared by all uploads: set it under 'defaults'"},
    {HEAD CRED UP(TO_C "    verfy: content\n"), 9, 5,
     "unknown key 'verfy' in upload 1 (did you mean 'verify'?)"},
    {HEAD CRED UP(TO_C "    source: b.vhd\n"), 9, 5,
     "duplicate key 'source' in upload 1 (first at 5:5)"},
};

static void test_bad_inputs(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
    expect_error_at(bad_cases[i].yaml, bad_cases[i].line, bad_cases[i].col, bad_cases[i].message);
}

/* http:// is fine to loopback, and anywhere with allow_http. */
static void test_http(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(parse(HEAD CRED UP("    destination: http://127.0.0.1:10000/acct1/vhds/a\n"
                                      "    credential: c\n"
                                      "  - source: b.vhd\n"
                                      "    destination: http://acct1.example.com/vhds/b\n"
                                      "    credential: c\n"
                                      "    allow_http: true\n"),
                         &m, &d),
                   0);
  assert_null(d);
  assert_int_equal(m->uploads[1].settings.allow_http, 1);
  vhdup__manifest_free(m);
}

/* ---- One table, both paths ---- */

/* Destinations as a user writes them, each accepted or refused alike by a
 * manifest entry and by `vhdup upload` (vhdup__target_resolve, which the
 * CLI runs before any request): ok without allow_http, ok_http with it. */
static const struct dest_case {
  const char *url;
  int ok, ok_http;
} dest_cases[] = {
    /* Schemes and host names in any case. */
    {"https://acct.blob.core.windows.net/vhds/a.vhd", 1, 1},
    {"HTTPS://acct.blob.core.windows.net/vhds/a.vhd", 1, 1},
    {"Https://ACCT.Blob.Core.Windows.Net/vhds/a.vhd", 1, 1},
    /* http:// to loopback names and addresses (Azurite, path style). */
    {"http://127.0.0.1:10000/devstoreaccount1/vhds/a.vhd", 1, 1},
    {"HTTP://127.0.0.1:10000/devstoreaccount1/vhds/a.vhd", 1, 1},
    {"http://127.1.2.3/devstoreaccount1/vhds/a.vhd", 1, 1},
    {"http://localhost:10000/devstoreaccount1/vhds/a.vhd", 1, 1},
    {"http://LocalHost/devstoreaccount1/vhds/a.vhd", 1, 1},
    {"http://[::1]:10000/devstoreaccount1/vhds/a.vhd", 1, 1},
    /* http:// anywhere else only with allow_http. */
    {"http://127.evil.example/vhds/a.vhd", 0, 1},
    {"http://localhost.evil.example/vhds/a.vhd", 0, 1},
    {"http://[::2]:10000/devstoreaccount1/vhds/a.vhd", 0, 1},
    {"http://128.0.0.1:10000/devstoreaccount1/vhds/a.vhd", 0, 1},
    {"http://acct.blob.core.windows.net/vhds/a.vhd", 0, 1},
    /* IPv6 hosts, explicit ports, deeper blob names. */
    {"https://[2001:db8::5]:8443/acct/vhds/a.vhd", 1, 1},
    {"https://acct.blob.core.windows.net:8443/vhds/a.vhd", 1, 1},
    {"https://acct.blob.core.windows.net/vhds/dir/sub/a.vhd", 1, 1},
    {"https://acct.blob.core.windows.net/vhds/a%20b.vhd", 1, 1},
    /* SAS forms: full, sig only, encoded, a query without sig. */
    {"https://acct.blob.core.windows.net/vhds/a.vhd?sv=2021-08-06&sr=b&sp=cw&sig=abc", 1, 1},
    {"https://acct.blob.core.windows.net/vhds/a.vhd?sig=abc", 1, 1},
    {"https://acct.blob.core.windows.net/vhds/a.vhd?sv=2021-08-06&se=2030-01-01T00%3A00%3A00Z&"
     "sig=a%2Fb%2Bc%3D",
     1, 1},
    {"https://acct.blob.core.windows.net/vhds/a.vhd?sv=2021-08-06", 1, 1},
    {"http://127.0.0.1:10000/devstoreaccount1/vhds/a.vhd?sv=2021-08-06&sig=abc", 1, 1},
    /* Managed disks' upload URLs. */
    {"https://md-xxxx.z1.blob.storage.azure.net/yyyy/abcd?sv=2018-03-28&sr=b&si=x&sig=abc%3D", 1,
     1},
    {"https://md-xxxx.z1.blob.storage.azure.net/yyyy/abcd", 1, 1},
    /* No blob: container-only, empty blob names, no container. */
    {"https://acct.blob.core.windows.net/vhds", 0, 0},
    {"https://acct.blob.core.windows.net/vhds/", 0, 0},
    {"https://acct.blob.core.windows.net/vhds?sv=2021-08-06&sig=abc", 0, 0},
    {"https://acct.blob.core.windows.net/", 0, 0},
    {"https://acct.blob.core.windows.net", 0, 0},
    {"http://127.0.0.1:10000/devstoreaccount1/vhds", 0, 0},
    {"http://127.0.0.1:10000/devstoreaccount1/vhds/", 0, 0},
    {"http://127.0.0.1:10000/devstoreaccount1", 0, 0},
    /* Not a blob URL at all. */
    {"vhds/a.vhd", 0, 0},
    {"ftp://acct.blob.core.windows.net/vhds/a.vhd", 0, 0},
    {"https:///vhds/a.vhd", 0, 0},
    {"https://u:p@acct.blob.core.windows.net/vhds/a.vhd", 0, 0},
    {"https://acct.blob.core.windows.net/vhds/a.vhd#x", 0, 0},
    {"https://acct.blob.core.windows.net/vhds/../a.vhd", 0, 0},
    {"https://acct.blob.core.windows.net:99999/vhds/a.vhd", 0, 0},
    {"https://acct.blob.core.windows.net:/vhds/a.vhd", 0, 0},
    {"https://[::1/vhds/a.vhd", 0, 0},
};

/* The manifest's verdict on url as one upload's destination. */
static int manifest_accepts(const char *url, int allow_http, int with_credential) {
  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "version: 1\n%s"
           "uploads:\n  - source: a.vhd\n    destination: '%s'\n    allow_http: %s\n%s",
           with_credential ? "credentials:\n  s: { sas: { env: S } }\n" : "", url,
           allow_http ? "true" : "false", with_credential ? "    credential: s\n" : "");
  vhdup__manifest *m = NULL;
  vhdup__manifest_diag *d = NULL;
  int rc = parse(yaml, &m, &d);
  assert_true(rc == 0 || rc == VHDUP_EMANIFEST);
  if (rc == 0)
    assert_string_equal(m->uploads[0].destination, url);
  vhdup__manifest_diags_free(d);
  vhdup__manifest_free(m);
  return rc == 0;
}

/* `vhdup upload`'s verdict: the same resolution the CLI runs. */
static int upload_accepts(const char *url, int allow_http, int with_credential) {
  vhdup__target t = {.destination = url,
                     .shown = url,
                     .sas_token = with_credential ? "sv=2021-08-06&sig=abc" : NULL,
                     .use_environment = 0,
                     .allow_http = allow_http};
  vhdup__az_url u;
  vhdup__az_cred cred;
  vhdup__err err;
  memset(&u, 0, sizeof(u));
  int rc = vhdup__target_resolve(&t, &u, &cred, &err);
  assert_true(rc == 0 || rc == VHDUP_EURL || rc == VHDUP_ECREDENTIAL);
  vhdup__az_url_free(&u);
  vhdup__az_cred_free(&cred);
  return rc == 0;
}

static void test_destinations_both_paths(void **state) {
  (void)state;
  int mismatches = 0;
  for (size_t i = 0; i < sizeof(dest_cases) / sizeof(dest_cases[0]); i++)
    for (int allow = 0; allow <= 1; allow++)
      for (int cred = 0; cred <= 1; cred++) {
        const struct dest_case *dc = &dest_cases[i];
        /* Without a credential the URL must carry its own query. */
        int want = (allow ? dc->ok_http : dc->ok) && (cred || strchr(dc->url, '?') != NULL);
        int man = manifest_accepts(dc->url, allow, cred);
        int up = upload_accepts(dc->url, allow, cred);
        if (man != want || up != want) {
          print_message("%s (allow_http %d, credential %d): want %d, manifest %d, upload %d\n",
                        dc->url, allow, cred, want, man, up);
          mismatches++;
        }
      }
  assert_int_equal(mismatches, 0);
}

/* ---- All problems at once ---- */

static void test_many_errors(void **state) {
  (void)state;
  const char *yaml = "version: 2\n"                               /* 1 */
                     "defaults:\n"                                /* 2 */
                     "  conections: 32\n"                         /* 3 */
                     "  memory: 4M\n"                             /* 4 */
                     "credentials:\n"                             /* 5 */
                     "  a: { account: acct1, key: { env: K } }\n" /* 6 */
                     "uploads:\n"                                 /* 7 */
                     "  - source: missing.vhd\n"                  /* 8 */
                     "    destination: http://example.com/c/b\n"  /* 9 */
                     "    credential: a\n"                        /* 10 */
                     "  - source: b.vhd\n"                        /* 11 */
                     "    container: vhds\n"                      /* 12 */
                     "    blob: b\n"                              /* 13 */
                     "    credential: b\n"                        /* 14 */
                     "    verify: everything\n";                  /* 15 */
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(parse(yaml, &m, &d), VHDUP_EMANIFEST);
  assert_null(m);
  assert_int_equal(count(d, VHDUP__MANIFEST_ERROR), 7);
  assert_non_null(find(d, 1, 10, "'version' must be 1"));
  assert_non_null(find(d, 3, 3, "did you mean 'connections'"));
  assert_non_null(find(d, 4, 11, "'memory'"));
  assert_non_null(find(d, 8, 13, "source 'missing.vhd' not found"));
  assert_non_null(find(d, 9, 18, "plain http://"));
  assert_non_null(find(d, 14, 17, "no credential named 'b'"));
  assert_non_null(find(d, 15, 13, "'verify' takes none, ranges or content"));
  /* Sorted by position, with the text the CLI prints. */
  unsigned line = 0, col = 0;
  for (const vhdup__manifest_diag *x = d; x != NULL; x = x->next) {
    assert_true(x->line > line || (x->line == line && x->col >= col));
    line = x->line;
    col = x->col;
  }
  assert_string_equal(d->text, "m.yaml:1:10: error: 'version' must be 1 (the format this vhdup "
                               "reads), not '2'");
  vhdup__manifest_diags_free(d);
}

static void test_duplicate_destinations(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  const char *yaml =
      "version: 1\n"
      "credentials:\n"
      "  k: { account: acct1, key: { env: K } }\n"
      "  cs: { connection_string: { env: C } }\n"
      "uploads:\n"
      "  - { source: a, destination: 'https://acct1.blob.core.windows.net/vhds/a.vhd', "
      "credential: k }\n"                                                /* 6 */
      "  - { source: b, container: vhds, blob: a.vhd, credential: k }\n" /* 7 */
      "  - { source: c, destination: 'https://ACCT1.blob.core.windows.net/vhds/c.vhd?sv=1&sig=s'"
      " }\n" /* 8 */
      "  - { source: d, destination: 'https://acct1.blob.core.windows.net/vhds/c.vhd?sv=2&sig=t'"
      " }\n"                                                              /* 9 */
      "  - { source: e, container: vhds, blob: e, credential: cs }\n"     /* 10 */
      "  - { source: f, container: vhds, blob: e, credential: cs }\n"     /* 11 */
      "  - { source: g, container: vhds, blob: A.vhd, credential: k }\n"; /* 12: case differs */
  assert_int_equal(parse(yaml, &m, &d), VHDUP_EMANIFEST);
  assert_int_equal(count(d, VHDUP__MANIFEST_ERROR), 6);
  /* Both places of each pair. */
  assert_non_null(find(d, 6, 31, "upload 1 writes the same blob as upload 2 at 7:29"));
  assert_non_null(find(d, 7, 29, "upload 2 writes the same blob as upload 1 at 6:31"));
  assert_non_null(find(d, 8, 31, "upload 3 writes the same blob as upload 4 at 9:31"));
  assert_non_null(find(d, 9, 31, "upload 4 writes the same blob as upload 3 at 8:31"));
  assert_non_null(find(d, 10, 29, "upload 5 writes the same blob as upload 6"));
  assert_non_null(find(d, 11, 29, "upload 6 writes the same blob as upload 5"));
  /* The SAS is never part of the message. */
  for (const vhdup__manifest_diag *x = d; x != NULL; x = x->next)
    assert_null(strstr(x->text, "sig="));
  vhdup__manifest_diags_free(d);
}

/* Emulator-style URLs: host case and the SAS do not matter, the blob's
 * case does; an endpoint credential's blobs meet its URLs. */
static void test_duplicate_emulator(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  const char *yaml =
      "version: 1\n"
      "credentials:\n"
      "  dev: { account: devstoreaccount1, key: { env: K }, endpoint: 'http://127.0.0.1:10000/"
      "devstoreaccount1' }\n"
      "uploads:\n"
      "  - { source: a, destination: 'http://LOCALHOST:10000/devstoreaccount1/c1c/a', "
      "credential: dev }\n" /* 5 */
      "  - { source: b, destination: 'http://localhost:10000/devstoreaccount1/c1c/a', "
      "credential: dev }\n" /* 6 */
      "  - { source: c, destination: 'http://localhost:10000/devstoreaccount1/c1c/A', "
      "credential: dev }\n" /* 7 */
      "  - { source: d, destination: 'http://127.0.0.1:10000/devstoreaccount1/c1c/d', "
      "credential: dev }\n"                                            /* 8 */
      "  - { source: e, container: c1c, blob: d, credential: dev }\n"; /* 9 */
  assert_int_equal(parse(yaml, &m, &d), VHDUP_EMANIFEST);
  assert_int_equal(count(d, VHDUP__MANIFEST_ERROR), 4);
  assert_non_null(find(d, 5, 31, "upload 1 writes the same blob as upload 2 at 6:31"));
  assert_non_null(find(d, 6, 31, "upload 2 writes the same blob as upload 1 at 5:31"));
  assert_non_null(find(d, 8, 31, "upload 4 writes the same blob as upload 5 at 9:29"));
  assert_non_null(find(d, 9, 29, "upload 5 writes the same blob as upload 4 at 8:31"));
  vhdup__manifest_diags_free(d);
}

/* ---- Secrets ---- */

static void test_inline_secret_warning(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  const char *key = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ=";
  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "version: 1\n"
           "credentials:\n"
           "  k:\n"
           "    account: acct1\n"
           "    key: \"%s\"\n"
           "  cs:\n"
           "    connection_string: AccountName=acct2;AccountKey=%s\n"
           "uploads:\n"
           "  - { source: a, container: vhds, blob: a, credential: k }\n"
           "  - { source: b, container: vhds, blob: b, credential: cs }\n"
           "  - source: c\n"
           "    destination: https://acct3.blob.core.windows.net/vhds/c?sv=1&sig=SIGSECRET\n",
           key, key);
  assert_int_equal(parse(yaml, &m, &d), 0);
  assert_int_equal(count(d, VHDUP__MANIFEST_ERROR), 0);
  assert_int_equal(count(d, VHDUP__MANIFEST_WARNING), 3);
  assert_non_null(find(d, 5, 10, "the key of credential 'k' is written inline"));
  assert_non_null(find(d, 7, 24, "the connection_string of credential 'cs' is written inline"));
  assert_non_null(find(d, 12, 18, "the destination carries a SAS signature inline"));
  for (const vhdup__manifest_diag *x = d; x != NULL; x = x->next) {
    assert_null(strstr(x->text, key));
    assert_null(strstr(x->text, "SIGSECRET"));
  }
  const vhdup__manifest_credential *k = credential(m, "k");
  assert_int_equal(k->secret.kind, VHDUP__MANIFEST_SECRET_INLINE);
  assert_string_equal(k->secret.value, key);
  assert_string_equal(m->uploads[2].destination,
                      "https://acct3.blob.core.windows.net/vhds/c?sv=1&sig=SIGSECRET");
  assert_null(m->uploads[2].credential);
  vhdup__manifest_free(m);
  vhdup__manifest_diags_free(d);

  /* A long unknown key in a credential may be a pasted secret. */
  expect_error_at("version: 1\ncredentials:\n  k:\n    account: acct1\n    key: { env: K }\n"
                  "    AccountKey=c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ=: x\n" UP(
                      "    container: vhds\n    blob: a\n    credential: k\n"),
                  6, 5, "unknown key in credential 'k' (not shown: it may be a secret)");
}

static void test_warnings(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(parse("version: 1\n"
                         "defaults: { connections: 4, per_blob_connections: 8 }\n"
                         "credentials:\n"
                         "  k: { account: acct1, key: { env: K } }\n"
                         "  spare: { sas: { env: S } }\n"
                         "uploads:\n"
                         "  - { source: a, container: vhds, blob: a, credential: k }\n"
                         "  - source: b\n"
                         "    destination: https://acct1.blob.core.windows.net/v/b?sig=x\n"
                         "    credential: k\n",
                         &m, &d),
                   0);
  assert_int_equal(count(d, -1), 4);
  assert_non_null(find(d, 2, 51, "per_blob_connections 8 is more than connections 4"));
  assert_non_null(find(d, 5, 3, "credential 'spare' is not used by any upload"));
  assert_non_null(find(d, 9, 18, "SAS signature inline"));
  assert_non_null(find(d, 10, 5, "credential 'k' is not used: the destination's own SAS is"));
  assert_string_equal(d->text, "m.yaml:2:51: warning: per_blob_connections 8 is more than "
                               "connections 4: at most 4 are used");
  vhdup__manifest_free(m);
  vhdup__manifest_diags_free(d);
}

typedef struct fake_io {
  const char *file_content;
  size_t file_len;
  int file_rc;
  const char *var;
} fake_io;

static const char *fake_getenv(void *ctx, const char *name) {
  fake_io *io = ctx;
  return strcmp(name, "SET") == 0 ? io->var : NULL;
}

static int fake_read_file(void *ctx, const char *path, size_t max, char **out, size_t *len) {
  fake_io *io = ctx;
  assert_string_equal(path, "/home/me/k.txt");
  assert_int_equal(max, VHDUP__SECRET_MAX);
  if (io->file_rc != 0)
    return io->file_rc;
  *out = vhdup__malloc(io->file_len);
  assert_non_null(*out);
  memcpy(*out, io->file_content, io->file_len);
  *len = io->file_len;
  return 0;
}

static void test_resolve_secret(void **state) {
  (void)state;
  vhdup__manifest_secret inl = {VHDUP__MANIFEST_SECRET_INLINE, "abc", "m.yaml", 3, 4};
  vhdup__manifest_secret env_set = {VHDUP__MANIFEST_SECRET_ENV, "SET", "m.yaml", 5, 6};
  vhdup__manifest_secret env_unset = {VHDUP__MANIFEST_SECRET_ENV, "UNSET", "m.yaml", 7, 8};
  vhdup__manifest_secret file = {VHDUP__MANIFEST_SECRET_FILE, "/home/me/k.txt", "m.yaml", 9, 10};
  fake_io io = {"  s3cr3t==\r\n", 12, 0, "from-env\n"};
  char *s;
  vhdup__err err;

  assert_int_equal(vhdup__manifest_resolve_secret(&inl, NULL, NULL, &io, &s, &err), 0);
  assert_string_equal(s, "abc");
  vhdup__secret_free(s);
  assert_int_equal(
      vhdup__manifest_resolve_secret(&env_set, fake_getenv, fake_read_file, &io, &s, &err), 0);
  assert_string_equal(s, "from-env");
  vhdup__secret_free(s);
  assert_int_equal(
      vhdup__manifest_resolve_secret(&env_unset, fake_getenv, fake_read_file, &io, &s, &err),
      VHDUP_ECREDENTIAL);
  assert_null(s);
  assert_string_equal(err.msg, "m.yaml:7:8: environment variable UNSET is not set");
  io.var = "";
  assert_int_equal(
      vhdup__manifest_resolve_secret(&env_set, fake_getenv, fake_read_file, &io, &s, &err),
      VHDUP_ECREDENTIAL);
  assert_non_null(strstr(err.msg, "m.yaml:5:6: environment variable SET is empty"));

  assert_int_equal(
      vhdup__manifest_resolve_secret(&file, fake_getenv, fake_read_file, &io, &s, &err), 0);
  assert_string_equal(s, "s3cr3t==");
  vhdup__secret_free(s);
  io.file_content = "line-one-secret\nline-two\n";
  io.file_len = strlen(io.file_content);
  assert_int_equal(
      vhdup__manifest_resolve_secret(&file, fake_getenv, fake_read_file, &io, &s, &err),
      VHDUP_ECREDENTIAL);
  assert_non_null(strstr(err.msg, "file /home/me/k.txt is empty, or holds several lines"));
  assert_null(strstr(err.msg, "line-one"));
  io.file_content = "a\0b";
  io.file_len = 3;
  assert_int_equal(
      vhdup__manifest_resolve_secret(&file, fake_getenv, fake_read_file, &io, &s, &err),
      VHDUP_ECREDENTIAL);
  io.file_len = 0;
  assert_int_equal(
      vhdup__manifest_resolve_secret(&file, fake_getenv, fake_read_file, &io, &s, &err),
      VHDUP_ECREDENTIAL);
  io.file_rc = -2; /* ENOENT */
  assert_int_equal(
      vhdup__manifest_resolve_secret(&file, fake_getenv, fake_read_file, &io, &s, &err), -2);
  assert_string_equal(err.msg,
                      "m.yaml:9:10: cannot read /home/me/k.txt: No such file or directory");
  io.file_rc = VHDUP_ELIMIT;
  assert_int_equal(
      vhdup__manifest_resolve_secret(&file, fake_getenv, fake_read_file, &io, &s, &err),
      VHDUP_ELIMIT);
  /* Missing callbacks and arguments. */
  assert_int_equal(vhdup__manifest_resolve_secret(&file, fake_getenv, NULL, &io, &s, &err),
                   VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_resolve_secret(&env_set, NULL, fake_read_file, &io, &s, &err),
                   VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_resolve_secret(NULL, fake_getenv, fake_read_file, &io, &s, &err),
                   VHDUP_EINVAL);
  assert_int_equal(
      vhdup__manifest_resolve_secret(&inl, fake_getenv, fake_read_file, &io, NULL, NULL),
      VHDUP_EINVAL);
}

/* ---- Hostile input ---- */

static void test_billion_laughs(void **state) {
  (void)state;
  const char *yaml =
      "version: 1\n"
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
      "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
      "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
      "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
      "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
      "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
      "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
      "uploads: *i\n";
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(parse(yaml, &m, &d), VHDUP_EMANIFEST);
  assert_null(m);
  /* 73 aliases, 9 unknown keys, one note per alias: each counted once. */
  assert_non_null(find(d, 3, 8, "YAML aliases (*a) are not supported"));
  assert_non_null(find(d, 11, 10, "YAML aliases (*i) are not supported"));
  assert_non_null(find(d, 2, 1, "unknown key 'a' in the manifest"));
  assert_true(count(d, -1) <= VHDUP__MANIFEST_MAX_DIAGS + 1);
  vhdup__manifest_diags_free(d);

  /* Merge keys go the same way. */
  assert_int_equal(parse(HEAD CRED "uploads:\n  - source: a.vhd\n" TO_C "    <<: *d\n", &m, &d),
                   VHDUP_EMANIFEST);
  assert_int_equal(count(d, -1), 2);
  assert_non_null(find(d, 9, 5, "merge keys ('<<') are not supported"));
  assert_non_null(find(d, 9, 9, "YAML aliases (*d) are not supported"));
  vhdup__manifest_diags_free(d);
}

static void test_limits(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;

  /* Larger than 4 MiB: refused before reading. */
  size_t big = VHDUP__MANIFEST_MAX_BYTES + 1;
  char *text = malloc(big);
  assert_non_null(text);
  memset(text, ' ', big);
  assert_int_equal(vhdup__manifest_parse(text, big, "big.yaml", NULL, NULL, &m, &d),
                   VHDUP_EMANIFEST);
  assert_int_equal(count(d, -1), 1);
  assert_string_equal(
      d->text, "big.yaml: error: the manifest is 4194305 bytes; the limit is 4194304 (4 MiB)");
  vhdup__manifest_diags_free(d);

  /* More uploads than allowed: one error, the entries are not looked at. */
  size_t n = VHDUP__MANIFEST_MAX_UPLOADS + 1, len = 0;
  len += (size_t)sprintf(text + len, "version: 1\nuploads:\n");
  for (size_t i = 0; i < n; i++)
    len += (size_t)sprintf(text + len, "- x\n");
  assert_int_equal(vhdup__manifest_parse(text, len, "m.yaml", NULL, NULL, &m, &d), VHDUP_EMANIFEST);
  assert_int_equal(count(d, -1), 1);
  assert_non_null(find(d, 3, 1, "'uploads' lists 10001 disks; the limit is 10000"));
  vhdup__manifest_diags_free(d);

  /* Nesting. */
  len = (size_t)sprintf(text, "version: 1\nuploads: ");
  for (size_t i = 0; i < 40; i++)
    text[len++] = '[';
  for (size_t i = 0; i < 40; i++)
    text[len++] = ']';
  assert_int_equal(vhdup__manifest_parse(text, len, "m.yaml", NULL, NULL, &m, &d), VHDUP_EMANIFEST);
  assert_int_equal(count(d, -1), 1);
  assert_non_null(find(d, 2, 41, "nested deeper than 32 levels"));
  vhdup__manifest_diags_free(d);

  /* Values. */
  len = (size_t)sprintf(text, "version: 1\nuploads: [");
  for (size_t i = 0; i <= VHDUP__MANIFEST_MAX_NODES; i++) {
    text[len++] = '0';
    text[len++] = ',';
  }
  text[len++] = ']';
  assert_int_equal(vhdup__manifest_parse(text, len, "m.yaml", NULL, NULL, &m, &d), VHDUP_EMANIFEST);
  assert_int_equal(count(d, -1), 1);
  assert_non_null(strstr(d->message, "more than 500000 values"));
  vhdup__manifest_diags_free(d);

  /* Diagnostics: the first 100, then a note. */
  len = (size_t)sprintf(text, "version: 1\ndefaults:\n");
  for (size_t i = 0; i < 300; i++)
    len += (size_t)sprintf(text + len, "  k%zu: 1\n", i);
  len += (size_t)sprintf(text + len, "uploads: []\n");
  assert_int_equal(vhdup__manifest_parse(text, len, "m.yaml", NULL, NULL, &m, &d), VHDUP_EMANIFEST);
  assert_int_equal(count(d, -1), VHDUP__MANIFEST_MAX_DIAGS + 1);
  const vhdup__manifest_diag *last = d;
  while (last->next != NULL)
    last = last->next;
  assert_string_equal(last->text, "m.yaml: error: too many problems: only the first 100 are shown");
  vhdup__manifest_diags_free(d);
  free(text);
}

static void test_bad_arguments(void **state) {
  (void)state;
  vhdup__manifest *m;
  vhdup__manifest_diag *d;
  assert_int_equal(vhdup__manifest_parse(NULL, 0, "m", NULL, NULL, &m, &d), VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_parse("", 0, NULL, NULL, NULL, &m, &d), VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_parse("", 0, "m", NULL, NULL, NULL, &d), VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_parse("", 0, "m", NULL, NULL, &m, NULL), VHDUP_EINVAL);
  vhdup__manifest_free(NULL);
  vhdup__manifest_diags_free(NULL);
  vhdup__secret_free(NULL);
}

static void test_helpers(void **state) {
  (void)state;
  uint64_t v;
  assert_int_equal(vhdup__manifest_parse_size("256M", &v), 0);
  assert_true(v == 256u << 20);
  assert_int_equal(vhdup__manifest_parse_size("1GiB", &v), 0);
  assert_true(v == 1u << 30);
  assert_int_equal(vhdup__manifest_parse_size("512", &v), 0);
  assert_true(v == 512);
  assert_int_equal(vhdup__manifest_parse_size("-1M", &v), VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_parse_size("1X", &v), VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_parse_size("99999999999999999999", &v), VHDUP_EINVAL);
  assert_int_equal(vhdup__manifest_parse_size("17179869184G", &v), VHDUP_EINVAL);
}

/* ---- Every allocation failing in turn ---- */

static long alloc_countdown = -1;
static int alloc_failed;

static int take_allocation(void) {
  if (alloc_countdown < 0)
    return 1;
  if (alloc_countdown-- == 0) {
    alloc_failed = 1;
    return 0;
  }
  return 1;
}
static void *counting_malloc(size_t n) {
  return take_allocation() ? test_malloc(n) : NULL;
}
static void *counting_realloc(void *p, size_t n) {
  return take_allocation() ? test_realloc(p, n) : NULL;
}
static void *counting_calloc(size_t c, size_t n) {
  return take_allocation() ? test_calloc(c, n) : NULL;
}
static void counting_free(void *p) {
  test_free(p);
}

static void test_allocation_failures(void **state) {
  (void)state;
  /* Warnings too, so the diagnostics' allocations fail as well. */
  char yaml[sizeof(full_manifest) + 256];
  snprintf(yaml, sizeof(yaml),
           "%s  - source: z\n    destination: https://a.blob.core."
           "windows.net/c/z?sig=x\n",
           full_manifest);
  int succeeded = 0;
  for (long i = 0; i < 10000 && !succeeded; i++) {
    vhdup__manifest *m;
    vhdup__manifest_diag *d;
    alloc_countdown = i;
    alloc_failed = 0;
    int rc = parse(yaml, &m, &d);
    alloc_countdown = -1;
    if (alloc_failed) {
      assert_int_equal(rc, VHDUP_ENOMEM);
      assert_null(m);
      assert_null(d);
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(count(d, -1), 1);
      succeeded = 1;
    }
    vhdup__manifest_free(m);
    vhdup__manifest_diags_free(d);
  }
  assert_true(succeeded);
}

static int setup(void **state) {
  (void)state;
  return vhdup_replace_allocator(counting_malloc, counting_realloc, counting_calloc, counting_free);
}

static int teardown(void **state) {
  (void)state;
  return vhdup_replace_allocator(NULL, NULL, NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_manifest),
      cmocka_unit_test(test_builtin_defaults),
      cmocka_unit_test(test_checksum_override),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_bad_inputs),
      cmocka_unit_test(test_http),
      cmocka_unit_test(test_many_errors),
      cmocka_unit_test(test_duplicate_destinations),
      cmocka_unit_test(test_duplicate_emulator),
      cmocka_unit_test(test_inline_secret_warning),
      cmocka_unit_test(test_warnings),
      cmocka_unit_test(test_resolve_secret),
      cmocka_unit_test(test_destinations_both_paths),
      cmocka_unit_test(test_billion_laughs),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_helpers),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
