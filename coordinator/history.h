/*
 * coordinator/history.h — the coordinator's bounded memory of what happened.
 *
 * A dashboard that reloads, or connects late, must still show every event
 * and the last failover, and the timeline must be able to show the cluster
 * as it was. The recorder sits between the loop thread's publisher and the
 * WebSocket: every message published passes through history_publish, which
 * keeps every event (whatever its type: new kinds are recorded without a
 * change here) and a compact snapshot of the cluster whenever a replica's
 * role, status, epoch or answering changes (at most every
 * HISTORY_SNAPSHOT_MIN_MS) or HISTORY_SNAPSHOT_EVERY_MS passed, in one ring of at most `capacity`
 * entries, oldest dropped first. Each entry is numbered (`seq`); the live
 * message carries the same number, so a client that gets the history on
 * connect and the live stream can drop what it already has.
 *
 * Memory: at most `capacity` entries of at most HISTORY_ENTRY_MAX_BYTES
 * each (a request's data is cut to at most HISTORY_DATA_BYTES bytes, whole
 * characters), plus
 * the last failover kept apart so that a flood of requests cannot push it
 * out.
 */
#ifndef COORDINATOR_HISTORY_H
#define COORDINATOR_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"

#define HISTORY_DEFAULT_EVENTS    4000
#define HISTORY_MAX_EVENTS        1000000
#define HISTORY_ENTRY_MAX_BYTES   16384
#define HISTORY_DATA_BYTES        200
#define HISTORY_SNAPSHOT_EVERY_MS 5000
#define HISTORY_SNAPSHOT_MIN_MS   100

struct history;

/* capacity 0: record nothing (history_publish only forwards). Every
 * message is forwarded to next(next_arg, ...) after it is recorded. */
struct history *history_new(size_t capacity, cluster_publish_fn next, void *next_arg);
/* Set where messages go on (the HTTP side, created after the history it
 * is given); before the cluster starts publishing. */
void history_set_next(struct history *h, void *next_arg);
void history_free(struct history *h);

/* cluster_publish_fn: record, then forward (events with their "seq"). */
void history_publish(void *history, const char *json, size_t len);

/* {"type":"history","capacity","recorded","dropped","first_seq","last_seq",
 *  "last_failover":{event}|null,"entries":[message,...]} oldest first;
 * malloc'ed, NULL only out of memory. Any thread. */
char *history_json(struct history *h);

#endif
