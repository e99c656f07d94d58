/* The enumerations of vhdup's public API, without libuv: what a job reads
 * (format), checks (verify) and reports (phase). Code that only describes
 * jobs (a manifest reader, a report writer) includes this alone. Included
 * by vhdup.h. */
#ifndef VHDUP_ENUMS_H
#define VHDUP_ENUMS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vhdup_format {
  VHDUP_FORMAT_AUTO = 0, /* VHDX by its identifier, VHD by its footer; raw only for
                            .raw/.img/.bin */
  VHDUP_FORMAT_VHD,
  VHDUP_FORMAT_RAW,
  VHDUP_FORMAT_VHDX, /* Hyper-V's VHDX ([MS-VHDX]) */
} vhdup_format;

typedef enum vhdup_verify {
  VHDUP_VERIFY_NONE = 0,
  VHDUP_VERIFY_RANGES,  /* Get Page Ranges covers exactly what was sent */
  VHDUP_VERIFY_CONTENT, /* and the pages read back hash the same */
} vhdup_verify;

typedef enum vhdup_phase {
  VHDUP_PHASE_OPEN = 0, /* validating the source */
  VHDUP_PHASE_PREPARE,  /* creating or checking the destination */
  VHDUP_PHASE_DATA,     /* sending data */
  VHDUP_PHASE_FOOTER,   /* the fixed footer, last */
  VHDUP_PHASE_FINISH,   /* properties */
  VHDUP_PHASE_VERIFY,
  VHDUP_PHASE_DONE,
} vhdup_phase;

#ifdef __cplusplus
}
#endif
#endif
