/*
 * replica/node.h — one running replica: the core, its durable log and its
 * connections on one libuv loop.
 */
#ifndef REPLICA_NODE_H
#define REPLICA_NODE_H

#include <stddef.h>

#include "addr.h"
#include "core/core.h"

struct node_options {
    char id[CORE_ID_MAX];
    char name[128];
    char listen[128];    /* numeric ip:port */
    char advertise[256]; /* host:port */
    char data_dir[512];
    struct addr_list peers;
    unsigned initial_size;
    unsigned heartbeat_ms;
    unsigned election_min_ms;
    unsigned election_max_ms;
    unsigned resolve_interval_ms;
    unsigned dead_member_timeout_ms; /* 0: members are never removed as gone */
    size_t max_frame_bytes;
    size_t max_request_bytes;
    unsigned session_max;    /* client ids remembered for retries (0: 65536) */
    unsigned session_ttl_ms; /* ... for at most this long (0: no limit by time) */
    uint64_t segment_bytes;  /* size of a log segment (0: 64 MiB) */
    /* Retention: keep at least this many newest entries, or about this
     * many bytes of log (0: keep everything). */
    uint64_t retain_entries;
    uint64_t retain_bytes;
    /* The cluster secret and this replica's member key (peer_auth.h):
     * every connection must prove it. NULL: --insecure, nobody proves. */
    const struct peer_auth *auth;
};

/* Exit codes: 0 after SIGTERM/SIGINT, 75 when asked to fail, 1 on a fatal
 * error (unusable data dir, failed fsync, cannot listen). */
#define NODE_EXIT_FAILED EXIT_FAILED_ON_REQUEST

int node_run(const struct node_options *o);

#endif
