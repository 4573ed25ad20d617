/*
 * replica/net/traffic.h — the protocol messages a replica sends, noted for
 * subscribers that asked for them (the dashboard animates them: issue 14).
 *
 * At normal speed a busy primary sends thousands of Appends a second, so
 * messages are aggregated per type and peer until the batch is taken (the
 * node takes it every TRAFFIC_EVERY_MS); in `every` mode (slow motion) each
 * message is an item of its own and the node takes the batch at the end of
 * the loop iteration that sent it. A batch holds at most
 * LIMIT_TRAFFIC_ITEMS items; beyond, messages are only counted as dropped.
 */
#ifndef REPLICA_NET_TRAFFIC_H
#define REPLICA_NET_TRAFFIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "wire.h"

#define TRAFFIC_EVERY_MS 100

struct traffic_item {
    char type[32];
    char to[LIMIT_ID_BYTES];
    uint64_t epoch;
    uint64_t bytes;
    uint32_t count;
    int64_t time_ms;
    uint32_t entries;
    bool pre_vote;
    bool granted;
};

struct traffic {
    bool every; /* one item per message (slow motion) */
    size_t n;
    uint32_t dropped;
    struct traffic_item items[LIMIT_TRAFFIC_ITEMS];
};

/* One message sent: `env` as it goes on the wire, to `to`. */
void traffic_note(struct traffic *t, const Envelope *env, const char *to, int64_t wall_ms);
/* The batch as a Traffic body, in pb with items/ptrs the caller provides
 * (LIMIT_TRAFFIC_ITEMS each); the batch is emptied. False when empty. */
bool traffic_take(struct traffic *t, Replicacao__Traffic *pb, Replicacao__TrafficItem *items,
                  Replicacao__TrafficItem **ptrs, struct traffic_item *keep);

#endif
