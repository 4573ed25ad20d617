/*
 * coordinator/front.h — the HTTP front door, on the cluster's loop thread.
 *
 * It owns the public listening socket. A plain POST /api/requests (a
 * Content-Length body, nothing unusual) is answered right here, on the
 * thread that owns the connections to the replicas: no thread hand-off,
 * requests from many connections share one wake-up and one write to the
 * primary, and replies from one read go out to their clients at once.
 *
 * Everything else — every other route, the WebSocket, chunked bodies,
 * garbage, a request that is not complete within a second — is handed, with
 * the bytes already read, to civetweb listening on a loopback port (http.c):
 * from then on the front copies bytes both ways for that connection (with
 * backpressure each way), and civetweb answers exactly as it did when it
 * owned the port. The front only ever answers what it fully understands.
 */
#ifndef COORDINATOR_FRONT_H
#define COORDINATOR_FRONT_H

#include <stddef.h>

struct auth;
struct cluster;
struct front;

struct front_options {
    const char *listen;    /* IP:PORT, [IPv6]:PORT or PORT (all IPv4 interfaces) */
    unsigned backend_port; /* civetweb, on 127.0.0.1 */
    size_t max_body_bytes; /* larger bodies go to civetweb (its 413) */
    size_t max_data_bytes; /* a request's "data": larger is 400 too_large */
    unsigned request_timeout_ms;
    const struct auth *auth; /* a write without the API token goes to civetweb (its 401) */
};

/* Any thread but the loop's: listen and serve on the cluster's loop. NULL
 * with a reason when it cannot listen. */
struct front *front_start(struct cluster *c, const struct front_options *o, char *err,
                          size_t errlen);
/* Any thread but the loop's: stop listening and close every connection
 * (requests in flight are answered by nobody); frees the front. */
void front_stop(struct front *f);

#endif
