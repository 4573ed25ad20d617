/*
 * common/vocab.h — the names every binary shares: roles, event types, exit
 * statuses. One table each, so the replica, the coordinator, replctl and the
 * dashboard's JSON all spell them the same way.
 */
#ifndef COMMON_VOCAB_H
#define COMMON_VOCAB_H

#include "bounds.h"

enum role {
    ROLE_BACKUP,    /* a voter following a primary (or waiting for one) */
    ROLE_CANDIDATE, /* running a pre-vote or a vote */
    ROLE_PRIMARY,   /* takes requests for its epoch */
    ROLE_LEARNER,   /* receives the log but does not vote yet */
    ROLE_REMOVED,   /* removed from the configuration on request */
    ROLE_COUNT,
};

enum event_type {
    /* Reported by replicas. */
    EVENT_ELECTED,           /* subject became primary */
    EVENT_STEPPED_DOWN,      /* a primary gave up its role */
    EVENT_ELECTION_STARTED,  /* a real (not pre-) vote began */
    EVENT_PRIMARY_LOST,      /* the primary's process is gone */
    EVENT_JOINED,            /* subject was added as a learner */
    EVENT_CAUGHT_UP,         /* subject was promoted to voter */
    EVENT_COMMITTED,         /* the commit index moved */
    EVENT_REMOVED,           /* subject was removed from the configuration */
    EVENT_HANDOVER,          /* a primary that removed itself hands over to subject */
    EVENT_FORCED_CONFIG,     /* UNSAFE: the configuration was forced (quorum loss) */
    EVENT_DISK_FULL,         /* the log cannot be written: writes stop here */
    EVENT_DISK_OK,           /* ... and can again */
    EVENT_HANDSHAKE_REFUSED, /* a connection failed its handshake (no or a wrong proof) */
    /* Reported by the coordinator. */
    EVENT_FAILED,            /* failed on request */
    EVENT_DOWN,              /* contact lost */
    EVENT_UP,                /* contact regained */
    EVENT_EXITED,            /* a --spawn replica's process ended */
    EVENT_REQUEST_SENT,      /* a client request left for the primary */
    EVENT_REQUEST_COMMITTED, /* ... and was acknowledged */
    EVENT_REQUEST_FAILED,    /* ... or refused */
    EVENT_START_FAILED,      /* a --spawn replica keeps exiting at start: given up */
    EVENT_FAULT_ADDED,       /* the fault lab: a fault began */
    EVENT_FAULT_HEALED,      /* ... was healed or expired */
    EVENT_TIMING_CHANGED,    /* ... heartbeat and election timeouts changed (slow motion) */
    EVENT_COUNT,
};

/* "primary", "elected", ...; "unknown" out of range. */
const char *role_name(enum role r);
const char *event_name(enum event_type t);
/* The enum for a name; -1 when it is none of them. */
int role_parse(const char *name);
int event_parse(const char *name);

#endif
