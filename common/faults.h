/*
 * common/faults.h — the fault lab's rules as one replica holds them
 * (issue 14): per peer, a share of frames lost and a delay; and a pause.
 *
 * Pure bookkeeping over an injected clock and a seeded random source: the
 * transport (transport.c) asks it, frame by frame, what to do with traffic
 * to and from a peer replica, and carries that out. Every rule and the
 * pause may carry an expiry, so a replica whose coordinator went away never
 * stays partitioned or paused for good.
 *
 * Semantics, per peer, over every rule naming it:
 *   - loss: the shares combine as independent losses (1 - prod(1 - l));
 *     a frame to the peer is dropped with that probability. A rule with
 *     loss 1 cuts the link: frames FROM the peer are dropped too, so a
 *     peer that restarted without its rules is still cut off.
 *   - delay: frames to the peer are held the longest delay any rule asks.
 * Both ends of a link hold the rule, each for its own outgoing frames.
 */
#ifndef COMMON_FAULTS_H
#define COMMON_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "bounds.h"

struct fault_rule {
    uint64_t fault_id;
    char peer[LIMIT_ID_BYTES];
    double loss;        /* [0, 1] */
    unsigned delay_ms;  /* frames to the peer held this long */
    int64_t expires_at; /* monotonic ms; 0: never */
};

struct faults {
    struct fault_rule rules[LIMIT_FAULT_RULES];
    unsigned n;
    int64_t paused_until; /* monotonic ms; 0: running */
    uint64_t pause_fault_id;
    uint64_t rng;
    uint64_t dropped; /* frames dropped by a rule, for the log */
};

/* What to do with one frame to a peer. */
enum fault_verdict {
    FAULT_PASS, /* send it (after *delay_ms, when that is not 0) */
    FAULT_DROP, /* lost */
};

void faults_init(struct faults *f, uint64_t seed);
/* Drop every rule and end any pause. */
void faults_clear(struct faults *f);
/* Add a rule (its bounds are the caller's to check: wire_unpack does).
 * expires_in_ms 0: never. -1 when the table is full. */
int faults_add(struct faults *f, int64_t now, uint64_t fault_id, const char *peer, double loss,
               unsigned delay_ms, unsigned expires_in_ms);
/* Pause for ms from now (0: no pause). */
void faults_pause(struct faults *f, int64_t now, unsigned ms, uint64_t fault_id);

/* Drop what has expired by now. True when something did (a rule, or the
 * pause ended). */
bool faults_expire(struct faults *f, int64_t now);
/* The earliest expiry still ahead (of a rule or the pause), or 0. */
int64_t faults_next_deadline(const struct faults *f);
bool faults_paused(const struct faults *f, int64_t now);
/* Remaining ms of the pause (0: running). */
unsigned faults_pause_left(const struct faults *f, int64_t now);
/* Anything at all to consider for this peer's traffic. */
bool faults_any(const struct faults *f);

/* A frame to `peer`: pass (after *delay_ms) or drop. Draws from the
 * random source only when some loss applies. */
enum fault_verdict faults_outbound(struct faults *f, const char *peer, int64_t now,
                                   unsigned *delay_ms);
/* A frame from `peer`: true when a rule cuts the link (loss 1). */
bool faults_cut(const struct faults *f, const char *peer, int64_t now);

#endif
