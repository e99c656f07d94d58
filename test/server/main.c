/* vhdup-testserver: options, the loop, signals and the port file. */
#include "server.h"

#include "util/crypto.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f, "usage: vhdup-testserver --store DIR [--port N] [--port-file FILE]\n"
             "         [--account NAME] [--key BASE64] [--sas-sig SIG] [--require-md5]\n"
             "         [--sink] [--sink-no-md5] [--managed-disk CONTAINER/BLOB:SIZE]\n"
             "         [--faults SPEC] [--model SPEC] [--max-body BYTES] [--trickle-ms MS] [-v]\n"
             "       vhdup-testserver --check-faults SPEC\n"
             "--sink keeps no bytes; --sink-no-md5 also skips checking Content-MD5 and\n"
             "x-ms-content-crc64 (their format is still checked).\n"
             "Listens on 127.0.0.1 only. Control API (no auth): POST /_control/faults\n"
             "(body = SPEC), GET /_control/stats, POST /_control/reset-stats.\n"
             "SPEC: comma list of KIND:N or KIND@OP:N (the next N requests of OP get\n"
             "      KIND; no @OP: Put Page update), 403after:N, seed:S rate:P\n"
             "      mix:KIND+KIND... KIND: 503 503n 503r 500 500i reset stall trickle 400\n"
             "      404 409 412. OP: put create head container ranges clear props get\n"
             "      delete lease any.\n"
             "--model req=500,bw=60M,account=SIZE,burst-ms=100,timeout-ms=30000,\n"
             "      mode=refuse|queue: Azure's per-blob and account targets as token\n"
             "      buckets (README.md); POST /_control/model (body = SPEC or off).\n"
             "vhdup-testserver --check-faults SPEC prints the plan, one step a line, and\n"
             "exits 0, or prints why SPEC is refused and exits 2.\n");
}

static void on_signal(uv_signal_t *s, int signum) {
  ts_server *srv = s->data;
  (void)signum;
  ts_http_close_all(srv);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  uv_close((uv_handle_t *)&srv->sigint, NULL);
}

static int write_port_file(const char *path, int port) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return -1;
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0)
    return -1;
  /* rename() so a polling test never reads a half-written number. */
  return rename(tmp, path);
}

static int setup_managed_disk(ts_server *srv, const char *spec) {
  const char *slash = strchr(spec, '/');
  const char *colon = strrchr(spec, ':');
  if (slash == NULL || colon == NULL || colon < slash || slash == spec || colon == slash + 1)
    return -1;
  char *end;
  unsigned long long size = strtoull(colon + 1, &end, 10);
  if (*end != '\0' || size == 0 || size % 512 != 0)
    return -1;
  char *container = strndup(spec, (size_t)(slash - spec));
  char *blob = strndup(slash + 1, (size_t)(colon - slash - 1));
  int rc = -1;
  if (container != NULL && blob != NULL && ts_store_create_container(&srv->store, container) >= 0) {
    ts_blob *b = ts_store_create_blob(&srv->store, container, blob, size);
    if (b != NULL) {
      b->managed = true;
      rc = 0;
    }
  }
  free(container);
  free(blob);
  return rc;
}

/* --check-faults SPEC: the parser alone, for tests of the plan syntax. */
static int check_faults(const char *spec) {
  ts_faults f;
  char err[256];
  if (ts_faults_parse(&f, spec, err, sizeof(err)) != 0) {
    fprintf(stderr, "vhdup-testserver: --check-faults: %s\n", err);
    return 2;
  }
  sbuf out;
  sbuf_init(&out);
  ts_faults_describe(&f, &out);
  fputs(out.len > 0 ? out.p : "", stdout);
  sbuf_free(&out);
  return 0;
}

int main(int argc, char **argv) {
  static ts_server srv;
  if (argc == 3 && strcmp(argv[1], "--check-faults") == 0)
    return check_faults(argv[2]);
  ts_config *cfg = &srv.cfg;
  int port = 0;
  const char *port_file = NULL;
  const char *faults = NULL;
  cfg->account = "devstoreaccount1";
  cfg->max_body = 4u << 20;
  cfg->sink_verify_sums = true;
  cfg->trickle_ms = 100;
  ts_model_cfg_default(&cfg->model);

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                               \
  do {                                                                                             \
    if (v == NULL) {                                                                               \
      fprintf(stderr, "vhdup-testserver: %s needs a value\n", a);                                  \
      return 2;                                                                                    \
    }                                                                                              \
    i++;                                                                                           \
  } while (0)
    if (strcmp(a, "--port") == 0) {
      NEED_VALUE();
      port = atoi(v);
    } else if (strcmp(a, "--port-file") == 0) {
      NEED_VALUE();
      port_file = v;
    } else if (strcmp(a, "--store") == 0) {
      NEED_VALUE();
      cfg->store_dir = v;
    } else if (strcmp(a, "--account") == 0) {
      NEED_VALUE();
      cfg->account = v;
    } else if (strcmp(a, "--key") == 0) {
      NEED_VALUE();
      long n = vhdup__base64_decode(v, strlen(v), cfg->key, sizeof(cfg->key));
      if (n <= 0) {
        fprintf(stderr, "vhdup-testserver: --key is not base64 (or longer than 64 bytes)\n");
        return 2;
      }
      cfg->key_len = (size_t)n;
    } else if (strcmp(a, "--sas-sig") == 0) {
      NEED_VALUE();
      cfg->sas_sig = v;
    } else if (strcmp(a, "--require-md5") == 0) {
      cfg->require_md5 = true;
    } else if (strcmp(a, "--sink") == 0) {
      cfg->sink = true;
    } else if (strcmp(a, "--sink-no-md5") == 0) {
      cfg->sink = true;
      cfg->sink_verify_sums = false; /* both sums: Azure checks them on its own cores */
    } else if (strcmp(a, "--managed-disk") == 0) {
      NEED_VALUE();
      cfg->managed_disk = v;
    } else if (strcmp(a, "--faults") == 0) {
      NEED_VALUE();
      faults = v;
    } else if (strcmp(a, "--max-body") == 0) {
      NEED_VALUE();
      cfg->max_body = (size_t)strtoull(v, NULL, 10);
    } else if (strcmp(a, "--model") == 0) {
      NEED_VALUE();
      char merr[256];
      if (ts_model_parse(&cfg->model, v, merr, sizeof(merr)) != 0) {
        fprintf(stderr, "vhdup-testserver: --model: %s\n", merr);
        return 2;
      }
    } else if (strcmp(a, "--trickle-ms") == 0) {
      NEED_VALUE();
      cfg->trickle_ms = (unsigned)strtoul(v, NULL, 10);
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
      cfg->verbose = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "vhdup-testserver: unknown option %s\n", a);
      usage(stderr);
      return 2;
    }
#undef NEED_VALUE
  }
  if (cfg->store_dir == NULL && !cfg->sink) {
    fprintf(stderr, "vhdup-testserver: --store DIR is required (or --sink)\n");
    return 2;
  }
  if (cfg->store_dir == NULL)
    cfg->store_dir = ".";
  if (cfg->max_body == 0) {
    fprintf(stderr, "vhdup-testserver: bad --max-body\n");
    return 2;
  }
  char err[256];
  if (ts_faults_parse(&srv.faults, faults ? faults : "", err, sizeof(err)) != 0) {
    fprintf(stderr, "vhdup-testserver: --faults: %s\n", err);
    return 2;
  }

  signal(SIGPIPE, SIG_IGN);
  srv.loop = uv_default_loop();
  ts_store_init(&srv.store, cfg);
  ts_model_init(&srv.model, &cfg->model, uv_hrtime());
  if (cfg->managed_disk != NULL && setup_managed_disk(&srv, cfg->managed_disk) != 0) {
    fprintf(stderr, "vhdup-testserver: bad --managed-disk (want CONTAINER/BLOB:SIZE, SIZE %% 512 "
                    "== 0) or cannot create it\n");
    return 2;
  }
  int bound = 0;
  int rc = ts_http_listen(&srv, port, &bound);
  if (rc != 0) {
    fprintf(stderr, "vhdup-testserver: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
    return 1;
  }
  uv_signal_init(srv.loop, &srv.sigterm);
  uv_signal_init(srv.loop, &srv.sigint);
  srv.sigterm.data = &srv;
  srv.sigint.data = &srv;
  uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
  uv_signal_start(&srv.sigint, on_signal, SIGINT);
  if (port_file != NULL && write_port_file(port_file, bound) != 0) {
    fprintf(stderr, "vhdup-testserver: cannot write %s\n", port_file);
    return 1;
  }
  if (cfg->verbose)
    fprintf(stderr, "vhdup-testserver: listening on 127.0.0.1:%d\n", bound);

  uv_run(srv.loop, UV_RUN_DEFAULT);
  ts_store_free(&srv.store);
  ts_model_free(&srv.model);
  rc = uv_loop_close(srv.loop);
  if (rc != 0) {
    fprintf(stderr, "vhdup-testserver: uv_loop_close: %s\n", uv_strerror(rc));
    return 1;
  }
  return 0;
}
