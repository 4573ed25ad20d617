/*
 * common/transport.h — TCP connections on a libuv loop, for the replica's
 * adapter and the coordinator's cluster client alike.
 *
 * Owns the listener, every connection (inbound from peers and clients,
 * outbound to the peers discovery found), framing and output buffering.
 *
 * Output is HELD: conn_queue only appends a frame to the connection's
 * buffer, and transport_flush writes all of them. The node calls it after
 * the durable log is synced, which is how the core's durability contract is
 * kept (see replica/core/core.h).
 *
 * Every connection starts with a Hello each way, and with a cluster secret
 * (options.auth) an Auth each way after them: see common/peer_auth.h. A
 * connection that fails that, or does not finish it within 10 s, is closed
 * before any of its messages is handed on, counted and logged. A peer
 * replica is known by the id in its Hello; an outbound connection whose Hello names ourselves
 * (our own address came back from DNS) or a replica we already reach by
 * another address is closed and not retried.
 *
 * The fault lab (issue 14) is carried out here: the rules of faults.h drop
 * or delay frames to and from peer replicas, and a pause stops reading
 * peers and holds clients' calls (see conn_process in transport.c). Hellos
 * and client connections are never dropped or delayed.
 */
#ifndef COMMON_TRANSPORT_H
#define COMMON_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wire.h"

struct conn;
struct transport;
struct peer_auth;

struct transport_callbacks {
    void *data;
    /* The other end is known (its Hello validated: id, kind; with a secret
     * also proved): see conn_peer_id, conn_peer_name, conn_peer_address. */
    void (*on_hello)(struct transport *t, struct conn *c);
    /* Any later envelope; the transport frees it after the call. */
    void (*on_message)(struct transport *t, struct conn *c, const Envelope *env);
    /* The connection is going away (the conn is freed after this). */
    void (*on_closed)(struct transport *t, struct conn *c);
    /* Connections failed their handshake: at most once a second, the last
     * one (`who`: "client replctl (from 10.0.0.9)", `why`) and how many
     * more were refused since the previous call. May be NULL. */
    void (*on_refused)(struct transport *t, const char *who, const char *why, uint64_t more);
    /* Outbound to replica `id` closed and an immediate reconnect was
     * refused: its process is most likely gone. */
    void (*on_peer_gone)(struct transport *t, const char *id);
};

struct transport_options {
    const char *self_id;
    const char *name;
    const char *advertise; /* host:port others should use for us */
    bool client;           /* say Hello as a client (the coordinator), not a replica */
    size_t max_frame_bytes;
    size_t max_output_bytes; /* a connection buffering more is too slow: closed */
    unsigned retry_max_ms;   /* reconnect backoff cap (default 2000) */
    /* The cluster secret (and a replica's member key): every connection,
     * both ways, must prove it. NULL: none asked, none given. Must outlive
     * the transport. */
    const struct peer_auth *auth;
};

struct transport *transport_new(uv_loop_t *loop, const struct transport_options *o,
                                const struct transport_callbacks *cb);
/* Listen on host:port. 0, or a negative libuv error with a reason. */
int transport_listen(struct transport *t, const char *hostport, char *err, size_t errlen);
/* The current set of peer addresses ("ip:port"); new ones are connected,
 * ones missing from `n_missing_passes` consecutive calls are dropped. */
void transport_set_targets(struct transport *t, const char *const *addrs, size_t n);
/* The cluster this replica belongs to, sent in every Hello from now on; a
 * replica whose Hello names another cluster is refused and not redialled.
 * "" (the default) accepts every replica. */
void transport_set_cluster_id(struct transport *t, const char *cluster_id);
/* Whether some current target (discovered, or learned from a Hello) is
 * replica `id`: discovery still lists it. */
bool transport_peer_listed(struct transport *t, const char *id);
/* Stop dialling replica `id` at an address learned from its Hello (it left
 * the configuration). Discovered addresses stay discovery's business. */
void transport_forget_peer(struct transport *t, const char *id);
/* Write everything queued on every connection. */
void transport_flush(struct transport *t);
/* The same, only on replica-to-replica connections. */
void transport_flush_peers(struct transport *t);
/* Close everything; `done` runs once every handle is closed. */
void transport_close(struct transport *t, void (*done)(struct transport *t));
void transport_free(struct transport *t);
void *transport_data(struct transport *t);

/* Call fn for every connection whose Hello is done. fn must not close
 * connections other than the one it is given. */
void transport_each_conn(struct transport *t, void (*fn)(struct conn *c, void *arg), void *arg);
/* The connection to send to replica `id` (outbound, Hello done), or NULL. */
struct conn *transport_peer(struct transport *t, const char *id);
/* Peer details for status: the address and name from its Hello. */
bool transport_peer_info(struct transport *t, const char *id, const char **address,
                         const char **name);

/* The fault lab's rules this transport carries out. Change them through
 * the pointer, then call transport_faults_changed (it also expires rules,
 * releases delayed frames and ends a pause that is over, on its own timer).
 * While paused, the owner must fire no timers of its own either. */
struct faults *transport_faults(struct transport *t);
void transport_faults_changed(struct transport *t);
bool transport_paused(struct transport *t);
/* Connections closed in their handshake: no or a wrong proof of the secret,
 * a member key another id joined with, no Hello in time, garbage first. */
uint64_t transport_handshakes_refused(const struct transport *t);

/* Queue one envelope (held until transport_flush). Silently dropped on a
 * closing connection. */
void conn_queue(struct conn *c, const Envelope *env);
void conn_close(struct conn *c, const char *reason);
/* Close because the other end broke the protocol: always logged as a
 * warning with the reason, whoever it is. */
void conn_reject(struct conn *c, const char *reason);
bool conn_is_client(const struct conn *c);
/* True for connections we opened to a discovered peer. */
bool conn_is_outbound(const struct conn *c);
const char *conn_peer_id(const struct conn *c);
const char *conn_peer_name(const struct conn *c);    /* from its Hello, may be "" */
const char *conn_peer_address(const struct conn *c); /* its advertised or remote address */
const char *conn_describe(const struct conn *c);     /* "peer r2 (10.0.0.3:5000)" */
/* A slot for the node's own per-connection state. */
void *conn_get_data(const struct conn *c);
void conn_set_data(struct conn *c, void *data);

#endif
