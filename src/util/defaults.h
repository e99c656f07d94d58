/* Every default vhdup applies, in one place: the library's option
 * initialisers, the CLI's --help and the manifest's settings all read
 * these, so they cannot drift apart. */
#ifndef VHDUP_UTIL_DEFAULTS_H
#define VHDUP_UTIL_DEFAULTS_H

/* Requests in flight across an engine (--connections). */
#define VHDUP__DEFAULT_CONNECTIONS 16u
/* The most --connections (and a manifest's connections) accepts. */
#define VHDUP__MAX_CONNECTIONS 1024u
/* Read buffers and request state of an engine (--memory). */
#define VHDUP__DEFAULT_MEMORY (64u * 1024 * 1024)
/* Zero bytes between two runs that still make one Put Page (--merge-gap). */
#define VHDUP__DEFAULT_MERGE_GAP (64u * 1024)
/* Tries of one request, the first included (--retries). */
#define VHDUP__DEFAULT_MAX_ATTEMPTS 8u
/* Exponential backoff between tries: base * 2^attempt, full jitter, capped. */
#define VHDUP__DEFAULT_BACKOFF_BASE_MS 500u
#define VHDUP__DEFAULT_BACKOFF_CAP_MS 30000u
/* Seconds to open a connection, and without progress before a request fails. */
#define VHDUP__DEFAULT_CONNECT_TIMEOUT_S 30u
#define VHDUP__DEFAULT_STALL_TIMEOUT_S 60u
/* Where --connections auto starts (it follows measured goodput from there). */
#define VHDUP__AUTO_START_CONNECTIONS 64u
/* The most bytes a secret (key, SAS, connection string) read from a file or
 * the environment may have; a longer one is an error, never truncated. */
#define VHDUP__SECRET_MAX (64u * 1024)

#endif
