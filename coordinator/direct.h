/*
 * coordinator/direct.h — a civetweb worker thread's own connection to the
 * primary, for POST /api/requests without the loop thread.
 *
 * Handing every write to the loop thread and waiting for it costs a
 * futex/eventfd round trip and two context switches per request (see
 * bench/README.md). Instead each worker thread keeps one blocking protocol
 * connection (common/client.c) to the primary of the published view and
 * makes the call itself. Whatever it cannot settle — no connection, an
 * Error, a closed connection, no answer in time, a newer primary elected
 * meanwhile, "not primary" — the caller hands to the loop thread's job
 * path with the same client id, so a retry is still applied once.
 *
 * The connection lives in thread-local storage and is closed when the
 * thread exits; it is replaced when the view names another primary or the
 * coordinator has reconnected to the same one (a restart).
 */
#ifndef COORDINATOR_DIRECT_H
#define COORDINATOR_DIRECT_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "wire.h"

struct client;
struct cluster;
struct view_replica;

/* Where to send: a copy of the view's primary, taken before the view is
 * released. */
struct direct_target {
    char id[LIMIT_ID_BYTES];
    char address[LIMIT_NAME_BYTES];
    uint64_t epoch;
    uint64_t incarnation;
};

/* 0, or -1 when the replica gave no address to reach it at. */
int direct_target_of(const struct view_replica *p, struct direct_target *out);

/* This thread's connection to the target, connecting first if needed; NULL
 * when it cannot be had now (refused, timed out, another replica answered:
 * not tried again for this target for a while). */
struct client *direct_conn(const struct direct_target *t);

/* Send one ClientRequest on it and wait, until `until` (monotonic ms) at
 * most, for its ClientReply (returned; free with wire_free). NULL when there
 * is none: an Error, the connection closed, the time is up, or the cluster's
 * view shows a newer primary than t (cluster_superseded). After a NULL the
 * connection is closed: a late reply must not be taken for the next call's. */
Envelope *direct_call(struct cluster *c, struct client *conn, const struct direct_target *t,
                      const char *client_id, const void *data, size_t len, int64_t until);

#endif
