/*
 * coordinator/cluster.h — the coordinator's view of the cluster.
 *
 * A libuv thread owns every connection to the replicas (found through
 * --replicas, or the supervisor's spawned list), polls their status,
 * subscribes to their events and carries out what the HTTP side asks:
 * client requests (forwarded to the primary, retried with the same id
 * across failovers), reads, failure injection.
 *
 * HTTP worker threads never touch that state: they submit jobs through a
 * locked queue woken by uv_async, and block on the job's condition variable
 * until the loop thread completes it or their deadline passes. What they
 * read without a job (GET /api/cluster) is a JSON snapshot the loop thread
 * republishes under a mutex whenever the view changes.
 */
#ifndef COORDINATOR_CLUSTER_H
#define COORDINATOR_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct cluster;
struct metrics;
struct supervisor_options;

/* Where the loop thread publishes: called on the loop thread with JSON text
 * ({"type":"cluster",...} or {"type":"event",...}); must not block. */
typedef void (*cluster_publish_fn)(void *arg, const char *json, size_t len);

struct cluster_options {
    struct addr_list replicas;   /* may be empty when spawning */
    unsigned status_interval_ms; /* default 200 */
    unsigned resolve_interval_ms;
    size_t max_frame_bytes;
    cluster_publish_fn publish;
    void *publish_arg;
    struct metrics *metrics;
    /* With --spawn: run a local supervisor on the loop thread too. */
    const struct supervisor_options *spawn;
};

struct cluster *cluster_start(const struct cluster_options *o, char *err, size_t errlen);
/* Stops the loop thread (and any spawned replicas) and frees everything. */
void cluster_stop(struct cluster *c);

/* A reply for HTTP: a status code and a JSON body (malloc'ed text). */
struct cluster_reply {
    int status;
    char *body;
    unsigned retry_after_s; /* for 503 */
};

/* Each call blocks up to timeout_ms and always fills *out. */
void cluster_request(struct cluster *c, const char *data, size_t len, const char *client_id,
                     bool fault, unsigned timeout_ms, struct cluster_reply *out);
void cluster_read(struct cluster *c, uint64_t after, uint32_t limit, unsigned timeout_ms,
                  struct cluster_reply *out);
void cluster_replica(struct cluster *c, const char *id, uint64_t after, uint32_t limit,
                     unsigned timeout_ms, struct cluster_reply *out);
/* id NULL: the current primary. */
void cluster_fail(struct cluster *c, const char *id, unsigned timeout_ms,
                  struct cluster_reply *out);

/* The current /api/cluster JSON (malloc'ed). */
char *cluster_snapshot(struct cluster *c);
/* The snapshot wrapped for the WebSocket: {"type":"cluster","cluster":...}. */
char *cluster_snapshot_message(struct cluster *c);

/* Error body helper shared with the HTTP side. */
char *cluster_error_json(const char *code, const char *message);

#endif
