/* vhdup inspect: everything the footer, dynamic header, BAT and parent chain
 * (a VHDX's headers, regions, metadata and BAT) say about a disk, and what
 * Azure will make of its size. */
#include "cli/cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

const char vhdup__cmd_inspect_help[] =
    "Usage: vhdup inspect FILE [--json] [--format auto|vhd|vhdx|raw] [--parent PATH]\n"
    "\n"
    "Validates FILE the way an upload would (footer and its copy, dynamic header,\n"
    "BAT bounds and overlaps, block size, parent chain; for a VHDX its headers,\n"
    "region tables, metadata and BAT) and shows what it holds:\n"
    "type, virtual size, file size, CHS geometry, creator, UUID, timestamp, block\n"
    "size, allocated blocks, the parent chain, and the Azure check (is the\n"
    "virtual size a whole number of MiB, the page blob size an upload creates,\n"
    "and the --upload-size-bytes that `az disk create` needs). Nothing is\n"
    "written.\n"
    "\n"
    "Options:\n"
    "  --json             one JSON object on stdout instead of text\n"
    "  --format FMT       auto (default): a VHDX identifier or a VHD footer\n"
    "                     decides; a file with neither is raw only if named\n"
    "                     *.raw, *.img or *.bin; vhd, vhdx or raw: take the\n"
    "                     file as that\n"
    "  --parent PATH      the first parent of a differencing disk, instead of\n"
    "                     the paths its locators name\n"
    "  -h, --help         this help\n"
    "\n"
    "Example:\n"
    "  vhdup inspect disk.vhd\n"
    "  vhdup inspect --json child.vhd --parent /images/base.vhd\n";

/* The VHD timestamp counts seconds from 2000-01-01 00:00:00 UTC. */
#define VHD_EPOCH 946684800

static const char *type_name(int type, int is_raw) {
  if (is_raw)
    return "raw";
  switch (type) {
  case VHDUP__DISK_FIXED:
    return "fixed";
  case VHDUP__DISK_DYNAMIC:
    return "dynamic";
  case VHDUP__DISK_DIFFERENCING:
    return "differencing";
  default:
    return "unknown";
  }
}

static void iso_time(uint32_t ts, char *buf, size_t size) {
  time_t t = (time_t)VHD_EPOCH + (time_t)ts;
  struct tm tm;

  if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, size, "?");
}

static void uuid_text(const uint8_t u[16], char buf[37]) {
  static const char hex[] = "0123456789abcdef";
  size_t i, o = 0;

  for (i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      buf[o++] = '-';
    buf[o++] = hex[u[i] >> 4];
    buf[o++] = hex[u[i] & 15];
  }
  buf[o] = '\0';
}

/* The stored parent name (UTF-16 code units) as UTF-8; unpaired surrogates
 * become U+FFFD. */
static void parent_name_utf8(const uint16_t *units, size_t n, char *out, size_t size) {
  size_t i, o = 0;

  for (i = 0; i < n && units[i] != 0; i++) {
    uint32_t c = units[i];
    if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && units[i + 1] >= 0xDC00 &&
        units[i + 1] <= 0xDFFF) {
      c = 0x10000 + ((c - 0xD800) << 10) + (units[i + 1] - 0xDC00u);
      i++;
    } else if (c >= 0xD800 && c <= 0xDFFF) {
      c = 0xFFFD;
    }
    if (o + 5 > size)
      break;
    if (c < 0x80) {
      out[o++] = (char)c;
    } else if (c < 0x800) {
      out[o++] = (char)(0xC0 | (c >> 6));
      out[o++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out[o++] = (char)(0xE0 | (c >> 12));
      out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (c & 0x3F));
    } else {
      out[o++] = (char)(0xF0 | (c >> 18));
      out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
      out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (c & 0x3F));
    }
  }
  out[o] = '\0';
}

/* The four-byte creator fields for humans: printable ASCII, others as '?'. */
static void fourcc_text(const uint8_t b[4], char out[5]) {
  size_t i;

  for (i = 0; i < 4; i++)
    out[i] = (b[i] >= 0x20 && b[i] < 0x7F) ? (char)b[i] : '?';
  out[4] = '\0';
}

typedef struct azure_fit {
  int whole_mib;
  uint64_t rounded;   /* virtual size rounded up to a whole MiB */
  uint64_t blob_size; /* rounded + the 512-byte footer */
} azure_fit;

static void azure_check(uint64_t vsize, azure_fit *a) {
  a->whole_mib = vsize % VHDUP__MIB == 0;
  a->rounded = (vsize + VHDUP__MIB - 1) / VHDUP__MIB * VHDUP__MIB;
  a->blob_size = a->rounded + VHDUP__FOOTER_SIZE;
}

static const char *format_name(vhdup_format f) {
  return f == VHDUP_FORMAT_VHDX ? "vhdx" : f == VHDUP_FORMAT_RAW ? "raw" : "vhd";
}

/* What a VHDX's headers and metadata say ([MS-VHDX] 2.2.2, 2.6.2). */
static void print_vhdx_human(const vhdup__disk_info *info) {
  const vhdup__vhdx_info *x = &info->vhdx;
  char g[39];
  vhdup__vhdx_guid_text(x->page83, g);
  printf("  disk id (page 83)  %s\n", g);
  printf("  sector size        %" PRIu32 " logical, %" PRIu32 " physical\n",
         info->logical_sector_size, x->physical_sector_size);
  vhdup__vhdx_guid_text(x->header.data_write_guid, g);
  printf("  header             %u (sequence %" PRIu64 "), data write guid %s\n", x->header_index,
         x->sequence_number, g);
  printf("  region table       %u (BAT at %" PRIu64 ", metadata at %" PRIu64 ")\n",
         x->region_table_index, x->regions.bat_offset, x->regions.meta_offset);
  printf("  log                %" PRIu32 " bytes at offset %" PRIu64 "\n", x->header.log_length,
         x->header.log_offset);
  if (x->has_parent) {
    printf("  parent linkage     %s\n", x->locator.parent_linkage);
    if (x->locator.relative_path[0])
      printf("  parent (relative)  %s\n", x->locator.relative_path);
    if (x->locator.volume_path[0])
      printf("  parent (volume)    %s\n", x->locator.volume_path);
    if (x->locator.absolute_win32_path[0])
      printf("  parent (absolute)  %s\n", x->locator.absolute_win32_path);
  }
}

static void print_human(const char *path, const vhdup__disk *d) {
  vhdup__disk_info info;
  const vhdup__footer *f;
  const vhdup__disk *layer;
  azure_fit az;
  char h[64], h2[64], text[1024], fcc[5], fcc2[5];
  uint64_t chs;
  size_t i;

  vhdup__disk_get_info(d, &info);
  f = &info.footer;
  azure_check(info.virtual_size, &az);
  printf("%s\n", path);
  printf("  type               %s%s\n",
         info.is_raw                        ? "raw image (no VHD footer)"
         : info.format == VHDUP_FORMAT_VHDX ? "VHDX "
                                            : "VHD ",
         info.is_raw ? "" : type_name(info.type, 0));
  printf("  virtual size       %" PRIu64 " bytes (%s)\n", info.virtual_size,
         vhdup__cli_human_size(info.virtual_size, h, sizeof(h)));
  printf("  file size          %" PRIu64 " bytes (%s)\n", info.file_size,
         vhdup__cli_human_size(info.file_size, h, sizeof(h)));
  if (info.format == VHDUP_FORMAT_VHDX)
    print_vhdx_human(&info);
  if (info.format == VHDUP_FORMAT_VHD) {
    chs = (uint64_t)f->cylinders * f->heads * f->sectors_per_track;
    printf("  geometry (CHS)     %u/%u/%u = %" PRIu64 " sectors = %" PRIu64 " bytes\n",
           f->cylinders, f->heads, f->sectors_per_track, chs, chs * VHDUP__SECTOR);
    if (chs * VHDUP__SECTOR != f->current_size)
      printf("                     not the virtual size: vhdup and Azure use the current size; "
             "qemu reads %" PRIu64 " bytes\n",
             vhdup__qemu_virtual_size(f));
    fourcc_text(f->creator_app, fcc);
    fourcc_text(f->creator_os, fcc2);
    printf("  creator            \"%s\" version %u.%u on \"%s\"\n", fcc, f->creator_version >> 16,
           f->creator_version & 0xFFFF, fcc2);
    printf("  original size      %" PRIu64 " bytes (%s)\n", f->original_size,
           vhdup__cli_human_size(f->original_size, h, sizeof(h)));
    if (f->original_size != f->current_size)
      printf("                     not the virtual size (the disk was resized): vhdup and Azure "
             "use the current size\n");
    uuid_text(f->uuid, text);
    printf("  uuid               %s\n", text);
    iso_time(f->timestamp, text, sizeof(text));
    printf("  timestamp          %s\n", text);
    if (info.footer_recovered)
      printf("  footer             recovered from the copy at offset 0\n");
  }
  if (info.format == VHDUP_FORMAT_VHDX || (!info.is_raw && info.type != VHDUP__DISK_FIXED)) {
    printf("  block size         %" PRIu32 " bytes (%s)\n", info.block_size,
           vhdup__cli_human_size(info.block_size, h, sizeof(h)));
    printf("  max table entries  %" PRIu32 "\n", info.max_table_entries);
    printf("  allocated          %" PRIu32 " blocks, %" PRIu64 " bytes (%s)\n",
           info.blocks_allocated, info.bytes_allocated,
           vhdup__cli_human_size(info.bytes_allocated, h, sizeof(h)));
  }
  if (info.is_raw && info.data_regions > 0)
    printf("  allocated          %" PRIu64 " bytes (%s) in %" PRIu64
           " stretches of data; the file system reports the rest as holes, not read\n",
           info.bytes_allocated, vhdup__cli_human_size(info.bytes_allocated, h, sizeof(h)),
           info.data_regions);
  if (info.format == VHDUP_FORMAT_VHD && info.type == VHDUP__DISK_DIFFERENCING) {
    uuid_text(info.header.parent_uuid, text);
    printf("  parent uuid        %s\n", text);
    parent_name_utf8(info.header.parent_name, 256, text, sizeof(text));
    printf("  parent name        %s\n", text);
  }
  printf("  chain              %u layer%s\n", info.chain_depth, info.chain_depth == 1 ? "" : "s");
  for (layer = d, i = 0; layer != NULL; layer = vhdup__disk_parent(layer), i++) {
    vhdup__disk_info li;
    vhdup__disk_get_info(layer, &li);
    printf("    %zu  %-13s %s\n", i, type_name(li.type, li.is_raw), vhdup__disk_src(layer)->name);
  }
  printf("Azure\n");
  if (az.whole_mib)
    printf("  whole MiB          yes (%" PRIu64 " MiB)\n", info.virtual_size / VHDUP__MIB);
  else
    printf("  whole MiB          no: an upload rounds it up to %" PRIu64 " (%s) unless\n"
           "                     --no-resize; Azure refuses a managed disk that is not\n"
           "                     a whole number of MiB\n",
           az.rounded, vhdup__cli_human_size(az.rounded, h2, sizeof(h2)));
  printf("  page blob size     %" PRIu64 " bytes (%" PRIu64 " MiB + 512-byte footer)\n",
         az.blob_size, az.rounded / VHDUP__MIB);
  printf("  managed disk       az disk create --upload-type Upload --upload-size-bytes %" PRIu64
         "\n",
         az.blob_size);
  if (vhdup__disk_warning(d, 0) != NULL) {
    printf("Warnings\n");
    for (i = 0; vhdup__disk_warning(d, i) != NULL; i++)
      printf("  - %s\n", vhdup__disk_warning(d, i));
  }
}

static void print_vhdx_json(const vhdup__disk_info *info) {
  const vhdup__vhdx_info *x = &info->vhdx;
  char g[39], w[39];
  vhdup__vhdx_guid_text(x->page83, g);
  vhdup__vhdx_guid_text(x->header.data_write_guid, w);
  printf("  \"vhdx\": {\"disk_id\": \"%s\", \"logical_sector_size\": %" PRIu32
         ", \"physical_sector_size\": %" PRIu32 ", \"header\": %u, \"sequence_number\": %" PRIu64
         ", \"data_write_guid\": \"%s\", \"region_table\": %u, \"chunk_ratio\": %" PRIu32
         ", \"log_length\": %" PRIu32 ", \"leave_block_allocated\": %s, \"parent_linkage\": ",
         g, info->logical_sector_size, x->physical_sector_size, x->header_index, x->sequence_number,
         w, x->region_table_index, x->chunk_ratio, x->header.log_length,
         x->leave_allocated ? "true" : "false");
  if (x->has_parent) {
    vhdup__cli_json_str(stdout, x->locator.parent_linkage);
    printf(", \"relative_path\": ");
    vhdup__cli_json_str(stdout, x->locator.relative_path);
    printf(", \"volume_path\": ");
    vhdup__cli_json_str(stdout, x->locator.volume_path);
    printf(", \"absolute_win32_path\": ");
    vhdup__cli_json_str(stdout, x->locator.absolute_win32_path);
    printf("},\n");
  } else {
    printf("null},\n");
  }
}

static void print_json(const char *path, const vhdup__disk *d) {
  vhdup__disk_info info;
  const vhdup__footer *f;
  const vhdup__disk *layer;
  azure_fit az;
  char text[1024];
  int sparse;
  size_t i;

  vhdup__disk_get_info(d, &info);
  f = &info.footer;
  sparse = info.format == VHDUP_FORMAT_VHDX || (!info.is_raw && info.type != VHDUP__DISK_FIXED);
  azure_check(info.virtual_size, &az);
  printf("{\n  \"file\": ");
  vhdup__cli_json_str(stdout, path);
  printf(",\n  \"format\": \"%s\",\n  \"type\": \"%s\",\n", format_name(info.format),
         type_name(info.type, info.is_raw));
  printf("  \"virtual_size\": %" PRIu64 ",\n  \"file_size\": %" PRIu64 ",\n", info.virtual_size,
         info.file_size);
  if (info.format == VHDUP_FORMAT_VHDX)
    print_vhdx_json(&info);
  if (info.format != VHDUP_FORMAT_VHD) {
    printf("  \"geometry\": null,\n  \"qemu_virtual_size\": null,\n  \"creator\": null,\n  "
           "\"original_size\": null,\n"
           "  \"uuid\": null,\n  \"timestamp\": null,\n  \"footer_recovered\": false,\n");
  } else {
    uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors_per_track;
    printf("  \"geometry\": {\"cylinders\": %u, \"heads\": %u, \"sectors_per_track\": %u, "
           "\"sectors\": %" PRIu64 ", \"bytes\": %" PRIu64 "},\n",
           f->cylinders, f->heads, f->sectors_per_track, chs, chs * VHDUP__SECTOR);
    printf("  \"qemu_virtual_size\": %" PRIu64 ",\n", vhdup__qemu_virtual_size(f));
    printf("  \"creator\": {\"application\": ");
    vhdup__cli_json_str_n(stdout, (const char *)f->creator_app, 4);
    printf(", \"version\": \"%u.%u\", \"host_os\": ", f->creator_version >> 16,
           f->creator_version & 0xFFFF);
    vhdup__cli_json_str_n(stdout, (const char *)f->creator_os, 4);
    printf("},\n  \"original_size\": %" PRIu64 ",\n", f->original_size);
    uuid_text(f->uuid, text);
    printf("  \"uuid\": \"%s\",\n", text);
    iso_time(f->timestamp, text, sizeof(text));
    printf("  \"timestamp\": \"%s\",\n  \"timestamp_raw\": %" PRIu32 ",\n", text, f->timestamp);
    printf("  \"footer_recovered\": %s,\n", info.footer_recovered ? "true" : "false");
  }
  if (sparse) {
    printf("  \"block_size\": %" PRIu32 ",\n  \"max_table_entries\": %" PRIu32 ",\n"
           "  \"blocks_allocated\": %" PRIu32 ",\n  \"bytes_allocated\": %" PRIu64 ",\n",
           info.block_size, info.max_table_entries, info.blocks_allocated, info.bytes_allocated);
  } else if (info.is_raw && info.data_regions > 0) {
    /* A raw image whose file system reports holes: the data it found. */
    printf("  \"block_size\": null,\n  \"max_table_entries\": null,\n"
           "  \"blocks_allocated\": null,\n  \"bytes_allocated\": %" PRIu64 ",\n",
           info.bytes_allocated);
  } else {
    printf("  \"block_size\": null,\n  \"max_table_entries\": null,\n"
           "  \"blocks_allocated\": null,\n  \"bytes_allocated\": null,\n");
  }
  if (info.format == VHDUP_FORMAT_VHD && info.type == VHDUP__DISK_DIFFERENCING) {
    uuid_text(info.header.parent_uuid, text);
    printf("  \"parent_uuid\": \"%s\",\n  \"parent_name\": ", text);
    parent_name_utf8(info.header.parent_name, 256, text, sizeof(text));
    vhdup__cli_json_str(stdout, text);
    printf(",\n");
  } else {
    printf("  \"parent_uuid\": null,\n  \"parent_name\": null,\n");
  }
  printf("  \"chain_depth\": %u,\n  \"chain\": [", info.chain_depth);
  for (layer = d, i = 0; layer != NULL; layer = vhdup__disk_parent(layer), i++) {
    vhdup__disk_info li;
    vhdup__disk_get_info(layer, &li);
    printf("%s\n    {\"path\": ", i == 0 ? "" : ",");
    vhdup__cli_json_str(stdout, vhdup__disk_src(layer)->name);
    printf(", \"type\": \"%s\", \"uuid\": ", type_name(li.type, li.is_raw));
    if (li.is_raw) {
      printf("null}");
    } else {
      uuid_text(li.footer.uuid, text);
      printf("\"%s\"}", text);
    }
  }
  printf("\n  ],\n");
  printf("  \"azure\": {\"whole_mib\": %s, \"rounded_size\": %" PRIu64 ", \"blob_size\": %" PRIu64
         ", \"upload_size_bytes\": %" PRIu64 "},\n",
         az.whole_mib ? "true" : "false", az.rounded, az.blob_size, az.blob_size);
  printf("  \"warnings\": [");
  for (i = 0; vhdup__disk_warning(d, i) != NULL; i++) {
    printf("%s\n    ", i == 0 ? "" : ",");
    vhdup__cli_json_str(stdout, vhdup__disk_warning(d, i));
  }
  printf("%s]\n}\n", i == 0 ? "" : "\n  ");
}

int vhdup__cmd_inspect(int argc, char **argv) {
  static const struct option longopts[] = {
      {"json", no_argument, NULL, 'j'},
      {"format", required_argument, NULL, 'f'},
      {"parent", required_argument, NULL, 'p'},
      {NULL, 0, NULL, 0},
  };
  vhdup_format fmt = VHDUP_FORMAT_AUTO;
  const char *parent = NULL;
  vhdup__cli_disk cd;
  int json = 0;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
    switch (opt) {
    case 'j':
      json = 1;
      break;
    case 'f':
      if (vhdup__cli_parse_format(optarg, &fmt) != 0)
        return vhdup__cli_usage_error("inspect",
                                      "--format must be auto, vhd, vhdx or raw, not '%s'", optarg);
      break;
    case 'p':
      parent = optarg;
      break;
    default:
      return vhdup__cli_bad_option("inspect", opt, argv);
    }
  }
  if (argc - optind != 1)
    return vhdup__cli_usage_error("inspect", argc - optind < 1 ? "FILE is missing"
                                                               : "expects exactly one FILE");
  rc = vhdup__cli_open_disk(argv[optind], fmt, parent, &cd);
  if (rc != 0)
    return rc;
  if (json)
    print_json(argv[optind], cd.disk);
  else
    print_human(argv[optind], cd.disk);
  vhdup__cli_close_disk(&cd);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "vhdup: inspect: cannot write the output\n");
    return VHDUP_EXIT_RUNTIME;
  }
  return VHDUP_EXIT_OK;
}
