/* The VHDX log ([MS-VHDX] 2.3). A current header with a non-zero LogGuid
 * says the file was not closed cleanly and its log may hold updates of the
 * metadata, BAT and data not yet in place. vhdup never writes its source,
 * and the upload reads data straight from the file, so such a file is
 * refused with a way out rather than read in a state the writer never
 * meant. */
#include "vhd/vhd_int.h"

#include <inttypes.h>

int vhdup__vhdx_log_replay(vhdup__disk *d, vhdup__err *err) {
  char g[39];
  vhdup__vhdx_guid_text(d->info.vhdx.header.log_guid, g);
  return vhdup__errf(err, VHDUP_EUNSUPPORTED,
                     "%s: header %u at offset %u: LogGuid %s (byte 48) is set: the file was not "
                     "closed cleanly and its log (at offset %" PRIu64 ") must be replayed first; "
                     "open it once with Hyper-V, or run `qemu-img check -r all` on a copy",
                     d->src.name != NULL ? d->src.name : "(unnamed)", d->info.vhdx.header_index,
                     d->info.vhdx.header_index == 1 ? VHDUP__VHDX_HEADER1_OFF
                                                    : VHDUP__VHDX_HEADER2_OFF,
                     g, d->info.vhdx.header.log_offset);
}
