/*
 * coordinator/http.h — the HTTP API, the WebSocket stream and the
 * dashboard's static files, on civetweb worker threads.
 *
 * civetweb listens on a loopback port only: the public port is the front
 * door's (front.h), which answers plain writes itself and hands civetweb
 * every other connection. With TLS (--tls-cert) there is no front door:
 * civetweb serves HTTPS on the public address itself.
 */
#ifndef COORDINATOR_HTTP_H
#define COORDINATOR_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct auth;
struct cluster;
struct history;
struct metrics;
struct http;

struct http_options {
    char listen[128];         /* the public address (the front door's), IP:PORT */
    char dashboard_dir[1024]; /* where index.html and node_modules/d3 live */
    size_t max_body_bytes;    /* larger bodies: 413 */
    size_t max_data_bytes;    /* a request's "data": larger is 400 too_large */
    unsigned request_timeout_ms;
    unsigned threads;
    struct history *history; /* sent to each WebSocket client on connect; NULL: none */
    const struct auth *auth; /* who may call what (auth.h); NULL: anybody */
    char tls_cert[1024];     /* "": plain HTTP on loopback, behind the front door */
    char tls_key[1024];
};

/* Created before the cluster (which publishes into it), started after. */
struct http *http_new(const struct http_options *o, struct metrics *m);
/* cluster_publish_fn: queue one JSON message for every WebSocket client.
 * Never blocks on a client. */
void http_publish(void *http, const char *json, size_t len);
/* cluster_listening_fn: is any WebSocket client connected? */
bool http_listening(void *http);
/* Serve on 127.0.0.1, a port of the system's choosing (http_port); with
 * TLS, HTTPS on the public address (o->listen). */
int http_start(struct http *h, struct cluster *c, char *err, size_t errlen);
unsigned http_port(const struct http *h);
/* Stop serving: every connection is closed, WebSocket clients included.
 * Publishing stays safe until http_free, which must come after the
 * cluster (the publisher) has stopped. */
void http_stop(struct http *h);
void http_free(struct http *h);

#endif
