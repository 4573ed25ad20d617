/*
 * coordinator/cluster.h — the coordinator's view of the cluster.
 *
 * A libuv thread owns every connection to the replicas (found through
 * --replicas, or the supervisor's spawned list), polls their status,
 * subscribes to their events and carries out what the HTTP side asks:
 * client requests (forwarded to the primary, retried with the same id
 * across failovers), reads, failure injection.
 *
 * HTTP worker threads never touch that state. What they read (GET
 * /api/cluster, /metrics, the WebSocket's cluster messages, where the
 * primary is) comes from the typed view (view.h) the loop thread publishes
 * whenever something changes. A write goes from the worker thread straight
 * to that primary over the thread's own connection (direct.h); everything
 * else — and a write that path cannot settle — is a job handed to the loop
 * thread through a locked queue woken by uv_async, the worker blocking on
 * the job's condition variable until the loop thread completes it or its
 * deadline passes.
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
struct view;

/* Where the cluster publishes JSON text ({"type":"cluster",...} or
 * {"type":"event",...}): called on the loop thread, and on HTTP worker
 * threads for the request events of the direct path; must be thread-safe
 * and must not block. */
typedef void (*cluster_publish_fn)(void *arg, const char *json, size_t len);
/* Whether anybody would receive what is published (events are not even
 * built when nobody listens). */
typedef bool (*cluster_listening_fn)(void *arg);

struct cluster_options {
    struct addr_list replicas;   /* may be empty when spawning */
    unsigned status_interval_ms; /* default 200 */
    unsigned resolve_interval_ms;
    size_t max_frame_bytes;
    cluster_publish_fn publish;
    cluster_listening_fn listening; /* NULL: always */
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

/* The published view, with a reference the caller gives back with
 * view_release (any thread). NULL only before the first one. */
struct view *cluster_view(struct cluster *c);
/* Any thread: does the published view name a primary other than `id`, in
 * an epoch above `epoch`? (A request waiting on `id` should move on.) */
bool cluster_superseded(struct cluster *c, const char *id, uint64_t epoch);

/* Error body helper shared with the HTTP side. */
char *cluster_error_json(const char *code, const char *message);

#endif
