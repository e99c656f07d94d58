/* Internals shared by the VHD module's files: the opened disk layer. */
#ifndef VHDUP_VHD_INT_H
#define VHDUP_VHD_INT_H

#include "vhd/vhd.h"

#define VHDUP__VHD_MAX_WARNINGS 6
#define VHDUP__VHD_WARNING_LEN 512

struct vhdup__disk {
  vhdup__src src;       /* this layer's source (a copy of the caller's) */
  int owns_src;         /* opened through parent_io: close it on free */
  vhdup__parent_io pio; /* how to close src when owns_src */
  vhdup__disk_info info;
  uint32_t *bat;        /* host order, bat_len entries; NULL for fixed/raw */
  uint32_t bat_len;     /* ceil(virtual size / block size), <= max_table_entries */
  uint32_t bitmap_size; /* bytes of sector bitmap ahead of each block */
  struct vhdup__disk *parent;
  char *parent_path;
  size_t nwarnings;
  char warnings[VHDUP__VHD_MAX_WARNINGS][VHDUP__VHD_WARNING_LEN];
};

#endif
