/*
 * coordinator/cluster.h — the coordinator's view of the cluster.
 *
 * A libuv thread owns every connection to the replicas (found through
 * --replicas, or the supervisor's spawned list), polls their status,
 * subscribes to their events and carries out what the HTTP side asks:
 * client requests (forwarded to the primary, retried with the same id
 * across failovers), reads, failure injection.
 *
 * Other threads never touch that state. What they read (GET /api/cluster,
 * /metrics, the WebSocket's cluster messages) comes from the typed view
 * (view.h) the loop thread publishes whenever something changes. Plain
 * writes arrive on the loop thread itself, through the HTTP front door
 * (front.h), and are answered from there without any hand-off. Everything
 * civetweb's worker threads ask for is a job handed to the loop thread
 * through a locked queue woken by uv_async, the worker blocking on the
 * job's condition variable until the loop thread completes it or its
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
struct peer_auth;
struct supervisor_options;
struct view;

/* Where the loop thread publishes JSON text ({"type":"cluster",...} or
 * {"type":"event",...}); must not block. */
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
    /* Whether a live client (a dashboard) is connected, for what only it
     * uses and nothing records: the protocol message stream. NULL: always. */
    cluster_listening_fn live_listening;
    void *live_arg;
    struct metrics *metrics;
    /* The cluster secret its connections to replicas prove; NULL: none. */
    const struct peer_auth *auth;
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

/* Each call blocks up to timeout_ms and always fills *out. Not on the loop
 * thread. */
/* seen: a log index the client saw before its first attempt, or NULL: the
 * coordinator then vouches with the highest commit index it knows. */
void cluster_request(struct cluster *c, const char *data, size_t len, const char *client_id,
                     bool fault, const uint64_t *seen, unsigned timeout_ms,
                     struct cluster_reply *out);
/* Committed entries after `after`. Linearizable: only the primary answers,
 * once it confirmed it still is one (ReadIndex), so the answer holds every
 * write acknowledged before the call; retried at the primary across
 * failovers until timeout_ms. Serializable: any replica's own view, now. */
void cluster_read(struct cluster *c, uint64_t after, uint32_t limit, bool linearizable,
                  unsigned timeout_ms, struct cluster_reply *out);
void cluster_replica(struct cluster *c, const char *id, uint64_t after, uint32_t limit,
                     unsigned timeout_ms, struct cluster_reply *out);
/* id NULL: the current primary. With `replace` (--spawn only, else 409
 * not_spawn): no restart; a new replica takes its place and the failed one
 * is removed from the configuration in the background. */
void cluster_fail(struct cluster *c, const char *id, bool replace, unsigned timeout_ms,
                  struct cluster_reply *out);
/* DELETE /api/replicas/{id}: RemoveMember to the primary (retried on "not
 * primary", "busy" and no primary until timeout_ms): 202 {"removing",
 * "index"}, 404, 409 no_quorum, 503 no_primary/busy, 504. Under --spawn the
 * replica's process is stopped for good once the removal has committed. */
void cluster_remove(struct cluster *c, const char *id, unsigned timeout_ms,
                    struct cluster_reply *out);
/* POST /api/replicas: one more --spawn replica, 202 {"id","address"}; 409
 * not_spawn without --spawn, 409 cannot_spawn at the limit. */
void cluster_add(struct cluster *c, unsigned timeout_ms, struct cluster_reply *out);

/* The fault lab (docs/fault-lab.md). f is checked for shape (lab_parse_*);
 * here: 404 unknown_replica, 409 too_many_faults, else 201 with the fault
 * as GET /api/faults lists it. The coordinator pushes every replica its
 * rules now and again whenever one (re)connects. */
struct lab_fault;
struct lab_timing;
void cluster_fault_add(struct cluster *c, const struct lab_fault *f, struct cluster_reply *out);
/* id 0: every fault. 200 {"healed":[ids]}, or 404 for an unknown id. */
void cluster_fault_heal(struct cluster *c, uint64_t id, struct cluster_reply *out);
/* The timing for every replica, now and when one (re)connects; waits up to
 * timeout_ms for the reachable ones to confirm it. 200 with the timing in
 * force on each. */
void cluster_timing(struct cluster *c, const struct lab_timing *t, unsigned timeout_ms,
                    struct cluster_reply *out);

/* Loop thread only (the front door): the same as cluster_request without
 * blocking: `done` is called on the loop thread with the reply (its body is
 * freed after the call unless taken), never before this returns except when
 * out of memory. */
typedef void (*cluster_done_fn)(void *arg, struct cluster_reply *reply);
void cluster_request_async(struct cluster *c, const char *data, size_t len, const char *client_id,
                           bool fault, const uint64_t *seen, unsigned timeout_ms,
                           cluster_done_fn done, void *arg);

/* The loop the cluster runs on (for what lives on its thread). */
struct uv_loop_s *cluster_loop(struct cluster *c);
/* Not on the loop thread: run fn on it and wait; its result, or -1 when it
 * could not run (shutting down). */
int cluster_call(struct cluster *c, int (*fn)(struct cluster *c, void *arg), void *arg);
/* Loop thread: fn(arg) runs once when the cluster begins shutting down,
 * after every job is answered (NULL: nothing). */
void cluster_on_shutdown(struct cluster *c, void (*fn)(void *arg), void *arg);

/* The published view, with a reference the caller gives back with
 * view_release (any thread). NULL only before the first one. */
struct view *cluster_view(struct cluster *c);

/* Error body helper shared with the HTTP side. */
char *cluster_error_json(const char *code, const char *message);

#endif
