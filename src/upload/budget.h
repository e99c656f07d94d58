/* The budget of an engine, shared by all its pipelines: the pool of pieces
 * (4 MiB read buffers, piece.h), the memory they and the requests in flight
 * may use, and the limit on requests in flight (fixed, or moved by
 * --connections auto, autotune.h). A manifest of 50 disks at 64 connections
 * holds at most 64 requests and one pool.
 *
 * Fairness: while some pipeline waits, the others may not go beyond their
 * fair share (the limit, or the pool, over the running pipelines), and what
 * is returned goes to waiters first, in arrival order. Pieces turn over
 * slowly, so a pipeline keeps to its fair share of them whenever others
 * run, not only once they wait.
 *
 * The budget knows a pipeline only by its account (vhdup__budget_user,
 * embedded in it), which it wakes through a callback. */
#ifndef VHDUP_UPLOAD_BUDGET_H
#define VHDUP_UPLOAD_BUDGET_H

#include "upload/piece.h"
#include "util/list.h"

#include <stddef.h>
#include <stdint.h>

/* What a request in flight holds outside the pieces: its state in the HTTP
 * layer, mostly libcurl's transfer and its upload buffer. Charged to the
 * memory at the most requests in flight so far (docs/measurements.md). */
#define VHDUP__REQUEST_BYTES (40u * 1024)

typedef struct vhdup__budget vhdup__budget;

/* A pipeline's account at the budget. The budget fills it; the owner sets
 * cap and wake (vhdup__budget_user_init) and reads requests. */
typedef struct vhdup__budget_user {
  vhdup__list wait_link; /* in the budget's queue while it waits */
  /* Called when what it waits for may be there: the owner tries again
   * (and waits again, at the tail, if still short). */
  void (*wake)(struct vhdup__budget_user *u);
  unsigned cap;      /* its own requests in flight at most (per blob) */
  unsigned requests; /* its requests in flight */
  unsigned pieces;   /* pieces it has taken */
  int wants_request, wants_piece;
  int running; /* counted among the running pipelines */
} vhdup__budget_user;

/* Pieces and request state within memory (at least 2 pieces), limit
 * requests in flight. Returns 0, VHDUP_EINVAL or VHDUP_ENOMEM. Free only
 * when no pipeline uses it. */
int vhdup__budget_new(size_t memory, unsigned limit, vhdup__budget **out)
    __attribute__((warn_unused_result));
void vhdup__budget_free(vhdup__budget *b);

/* --connections auto: the limit starts at VHDUP__AUTO_START_CONNECTIONS
 * and follows measured goodput up to max (0: the limit given at creation). */
void vhdup__budget_set_auto(vhdup__budget *b, unsigned max);
/* Requests in flight allowed now (the fixed limit, or auto's choice). */
unsigned vhdup__budget_limit(const vhdup__budget *b);
/* What --connections auto sees of one finished request, once it is
 * returned: at loop time now (ms), bytes written (0 if it failed), its
 * latency, whether it was throttled or failed. Nothing without auto. */
void vhdup__budget_observe(vhdup__budget *b, uint64_t now, uint64_t bytes, uint64_t latency_ms,
                           int congested);
/* Pieces in the pool. */
unsigned vhdup__budget_pieces(const vhdup__budget *b);

void vhdup__budget_user_init(vhdup__budget_user *u, unsigned cap,
                             void (*wake)(vhdup__budget_user *u));
/* A pipeline counts for fair shares from join (its start) to leave (its
 * end, or its close); leave also takes it out of the queue. */
void vhdup__budget_join(vhdup__budget *b, vhdup__budget_user *u);
void vhdup__budget_leave(vhdup__budget *b, vhdup__budget_user *u);

/* One more request in flight for u: 1, or 0 and u waits to be woken when
 * one may be there (unless only its own cap stops it and nobody waits: its
 * own returns will do). */
int vhdup__budget_take_request(vhdup__budget *b, vhdup__budget_user *u);
void vhdup__budget_return_request(vhdup__budget *b, vhdup__budget_user *u);

/* A piece for u, or NULL and u waits for one. The piece comes unlinked,
 * with its buffers; the owner links it into its own list. */
vhdup__piece *vhdup__budget_take_piece(vhdup__budget *b, vhdup__budget_user *u);
/* The owner has unlinked p from its list. Free pieces beyond what the
 * memory allows now are trimmed: their pages go back to the system. */
void vhdup__budget_return_piece(vhdup__budget *b, vhdup__budget_user *u, vhdup__piece *p);

/* Hands what was returned to the waiters, oldest first: one pass over those
 * waiting now, each woken only if what it waits for is there (otherwise it
 * keeps its place). Not reentrant: a wake inside the pass that returns
 * something leaves it to the next call. */
void vhdup__budget_wake(vhdup__budget *b);

#endif
