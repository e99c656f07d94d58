/* Every default vhdup applies, in one place: the library's option
 * initialisers, the CLI's --help and the manifest's settings all read
 * these, so they cannot drift apart. */
#ifndef VHDUP_UTIL_DEFAULTS_H
#define VHDUP_UTIL_DEFAULTS_H

/* Requests in flight across an engine (--connections). */
#define VHDUP__DEFAULT_CONNECTIONS 16u
/* The most --connections (and a manifest's connections) accepts. */
#define VHDUP__MAX_CONNECTIONS 1024u
/* Read buffers and request state of an engine (--memory), and the least
 * an engine accepts. */
#define VHDUP__DEFAULT_MEMORY (64u * 1024 * 1024)
#define VHDUP__MIN_MEMORY (8u * 1024 * 1024)
/* Zero bytes between two runs that still make one Put Page (--merge-gap). */
#define VHDUP__DEFAULT_MERGE_GAP (64u * 1024)
/* Tries of one request of an upload, the first included (--retries). */
#define VHDUP__DEFAULT_MAX_ATTEMPTS 8u
/* Tries of one request of a blob operation (`vhdup blob --retries`): a
 * command a person waits on gives up sooner than an upload. */
#define VHDUP__DEFAULT_BLOB_OP_ATTEMPTS 5u
/* Exponential backoff between tries: base * 2^attempt, full jitter, capped. */
#define VHDUP__DEFAULT_BACKOFF_BASE_MS 500u
#define VHDUP__DEFAULT_BACKOFF_CAP_MS 30000u
/* Seconds to open a connection, and without progress before a request fails. */
#define VHDUP__DEFAULT_CONNECT_TIMEOUT_S 30u
#define VHDUP__DEFAULT_STALL_TIMEOUT_S 60u
/* The most --connections auto goes to (it starts lower, below). */
#define VHDUP__AUTO_MAX_CONNECTIONS 256u
/* Where --connections auto starts (it follows measured goodput from there). */
#define VHDUP__AUTO_START_CONNECTIONS 64u
/* Least time between two progress callbacks of a job; how often the CLI
 * redraws its progress bar, and writes a progress line with --progress json. */
#define VHDUP__DEFAULT_PROGRESS_INTERVAL_MS 200u
#define VHDUP__PROGRESS_BAR_MS 200u
#define VHDUP__PROGRESS_JSON_MS 1000u
/* Get Page Ranges: bytes asked per request (x-ms-range), as Microsoft
 * advises for large blobs, and ranges per answer page (maxresults; 10000
 * keep one answer under about 1 MiB). */
#define VHDUP__DEFAULT_RANGES_SEGMENT (150ull * 1024 * 1024)
#define VHDUP__DEFAULT_RANGES_MAX_RESULTS 10000u
/* The most bytes a secret (key, SAS, connection string) read from a file or
 * the environment may have; a longer one is an error, never truncated. */
#define VHDUP__SECRET_MAX (64u * 1024)

#endif
