/*
 * common/client.h — a blocking protocol client for tools, tests and the
 * load generator: connect, exchange Hellos, then calls with timeouts. The
 * coordinator does not use it (it runs on libuv); everything else may.
 */
#ifndef COMMON_CLIENT_H
#define COMMON_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "wire.h"

struct client {
    int fd;
    struct frame_reader reader;
    char name[WIRE_ID_MAX];
    char peer_id[WIRE_ID_MAX]; /* from the server's Hello */
    char peer_address[256];
    uint64_t next_call;
};

/* Connect to host:port and exchange Hellos. 0, or -1 with a reason. */
int client_connect(struct client *c, const char *addr, const char *name, int timeout_ms, char *err,
                   size_t errlen);
void client_close(struct client *c);
/* The cluster secret every later client_connect of this process proves
 * (common/peer_auth.h); NULL (the default): none. It must stay valid. */
struct peer_auth;
void client_use_auth(const struct peer_auth *auth);
int client_send(struct client *c, const Envelope *env);
/* Next envelope, or NULL on timeout/close/garbage (reason in err). */
Envelope *client_recv(struct client *c, int timeout_ms, char *err, size_t errlen);

/* Calls: each sends one request and waits for its matching reply. The reply
 * is returned (free with wire_free), or NULL with a reason. */
Envelope *client_call_request(struct client *c, const char *client_id, const void *data, size_t len,
                              int timeout_ms, char *err, size_t errlen);
Envelope *client_call_status(struct client *c, int timeout_ms, char *err, size_t errlen);
Envelope *client_call_read(struct client *c, uint64_t after, uint32_t limit, int filter,
                           int timeout_ms, char *err, size_t errlen);
/* The same at a consistency level (ReadRequest.Consistency): a
 * linearizable read is served by the primary only; others answer a
 * ReadReply with status NOT_PRIMARY and the hint. */
Envelope *client_call_read_at(struct client *c, uint64_t after, uint32_t limit, int filter,
                              int consistency, int timeout_ms, char *err, size_t errlen);
/* Membership calls, answered with a ClientReply: remove a member (sent to
 * the primary), or UNSAFE: make this replica the only voter, `keep` its
 * learners (see docs/membership.md). */
Envelope *client_call_remove_member(struct client *c, const char *id, int timeout_ms, char *err,
                                    size_t errlen);
Envelope *client_call_force_config(struct client *c, const char *const *keep, size_t n_keep,
                                   int timeout_ms, char *err, size_t errlen);
int client_send_fail(struct client *c, const char *reason);
int client_subscribe(struct client *c);

#endif
