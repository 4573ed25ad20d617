/*
 * common/client.c — see client.h.
 */
#include "client.h"
#include "addr.h"
#include "clock.h"
#include "peer_auth.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int connect_addr(const char *addr, int timeout_ms, char *err, size_t errlen)
{
    struct addr_item it;
    if (addr_split(addr, NULL, &it) != 0) {
        snprintf(err, errlen, "bad address '%s'", addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int gai = getaddrinfo(it.host, it.port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "resolve %s: %s", it.host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd p = {fd, POLLOUT, 0};
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (poll(&p, 1, timeout_ms) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
                rc = 0;
            } else {
                errno = soerr ? soerr : ETIMEDOUT;
            }
        }
        if (rc != 0) {
            snprintf(err, errlen, "connect %s: %s", addr, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static const struct peer_auth *process_auth;

void client_use_auth(const struct peer_auth *auth)
{
    process_auth = auth;
}

/* After the Hellos, with a secret: check the replica's Auth, then give
 * ours (peer_auth.h). 0, or -1 with the reason. */
static int prove(struct client *c, const uint8_t nonce[AUTH_NONCE_BYTES],
                 const Envelope *their_hello, int timeout_ms, char *err, size_t errlen)
{
    if (their_hello->hello->nonce.len != AUTH_NONCE_BYTES) {
        snprintf(err, errlen, "%s does not ask for the cluster secret (started without it?)",
                 c->peer_id);
        return -1;
    }
    struct auth_party us = {c->name, true, nonce};
    struct auth_party them = {c->peer_id,
                              their_hello->hello->kind == REPLICACAO__HELLO__KIND__CLIENT,
                              their_hello->hello->nonce.data};
    uint8_t transcript[32];
    peer_auth_transcript(&us, &them, transcript);
    Envelope *r = client_recv(c, timeout_ms, err, errlen);
    if (r == NULL) {
        return -1; /* a replica that refuses our Hello closes without a word */
    }
    int rc = 0;
    if (r->body_case != REPLICACAO__ENVELOPE__BODY_AUTH) {
        snprintf(err, errlen, "expected auth, got %s", wire_body_name(r));
        rc = -1;
    } else if (peer_auth_check(process_auth, transcript, false, &them, r->auth, err, errlen) != 0) {
        rc = -1;
    }
    wire_free(r);
    if (rc != 0) {
        return -1;
    }
    struct auth_answer a;
    peer_auth_answer(process_auth, transcript, true, &a);
    Envelope env;
    wire_init(&env, c->name, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_AUTH;
    env.auth = &a.msg;
    if (client_send(c, &env) != 0) {
        snprintf(err, errlen, "send auth: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int client_connect(struct client *c, const char *addr, const char *name, int timeout_ms, char *err,
                   size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->next_call = 1;
    snprintf(c->name, sizeof(c->name), "%s", name);
    frame_reader_init(&c->reader, FRAME_DEFAULT_MAX);
    c->fd = connect_addr(addr, timeout_ms, err, errlen);
    if (c->fd < 0) {
        return -1;
    }
    Envelope env;
    Replicacao__Hello hello = REPLICACAO__HELLO__INIT;
    wire_init(&env, c->name, 0);
    hello.name = c->name;
    hello.kind = REPLICACAO__HELLO__KIND__CLIENT;
    uint8_t nonce[AUTH_NONCE_BYTES];
    if (process_auth != NULL) {
        peer_auth_random(nonce, sizeof(nonce));
        hello.nonce.data = nonce;
        hello.nonce.len = sizeof(nonce);
    }
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    if (client_send(c, &env) != 0) {
        snprintf(err, errlen, "send hello: %s", strerror(errno));
        client_close(c);
        return -1;
    }
    Envelope *r = client_recv(c, timeout_ms, err, errlen);
    if (r == NULL || r->body_case != REPLICACAO__ENVELOPE__BODY_HELLO) {
        if (r != NULL) {
            snprintf(err, errlen, "expected hello, got %s", wire_body_name(r));
        } else if (process_auth == NULL && strstr(err, "closed") != NULL) {
            /* What a replica with a secret does to a Hello without proof. */
            snprintf(err, errlen,
                     "%s refused us: it may want the cluster secret "
                     "(--cluster-secret-file)",
                     addr);
        }
        wire_free(r);
        client_close(c);
        return -1;
    }
    snprintf(c->peer_id, sizeof(c->peer_id), "%s", r->from);
    snprintf(c->peer_address, sizeof(c->peer_address), "%s", r->hello->address);
    int rc = process_auth != NULL ? prove(c, nonce, r, timeout_ms, err, errlen) : 0;
    wire_free(r);
    if (rc != 0) {
        client_close(c);
    }
    return rc;
}

void client_close(struct client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    frame_reader_free(&c->reader);
}

int client_send(struct client *c, const Envelope *env)
{
    size_t len;
    uint8_t *buf = wire_pack(env, &len);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {c->fd, POLLOUT, 0};
            poll(&p, 1, 1000);
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            free(buf);
            return -1;
        }
        off += (size_t)w;
    }
    free(buf);
    return 0;
}

Envelope *client_recv(struct client *c, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        const uint8_t *payload;
        size_t len;
        enum frame_result fr = frame_reader_next(&c->reader, &payload, &len);
        if (fr == FRAME_READY) {
            return wire_unpack(payload, len, err, errlen);
        }
        if (fr == FRAME_TOO_LARGE) {
            snprintf(err, errlen, "frame of %zu bytes is over the limit", len);
            return NULL;
        }
        int64_t left = deadline - clock_mono_ms();
        struct pollfd p = {c->fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            snprintf(err, errlen, "timed out after %d ms", timeout_ms);
            return NULL;
        }
        uint8_t buf[65536];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            snprintf(err, errlen, "connection closed%s%s", n < 0 ? ": " : "",
                     n < 0 ? strerror(errno) : "");
            return NULL;
        }
        if (frame_reader_feed(&c->reader, buf, (size_t)n) != 0) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
}

/* Wait for the reply carrying call_id, skipping anything else (events). */
static Envelope *await_reply(struct client *c, int body, uint64_t call_id, int timeout_ms,
                             char *err, size_t errlen)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            snprintf(err, errlen, "timed out after %d ms", timeout_ms);
            return NULL;
        }
        Envelope *r = client_recv(c, (int)left, err, errlen);
        if (r == NULL) {
            return NULL;
        }
        uint64_t got = 0;
        switch (r->body_case) {
        case REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY:
            got = r->client_reply->call_id;
            break;
        case REPLICACAO__ENVELOPE__BODY_STATUS:
            got = r->status->call_id;
            break;
        case REPLICACAO__ENVELOPE__BODY_READ_REPLY:
            got = r->read_reply->call_id;
            break;
        case REPLICACAO__ENVELOPE__BODY_ERROR:
            snprintf(err, errlen, "error: %s", r->error->message);
            wire_free(r);
            return NULL;
        default:
            break;
        }
        if ((int)r->body_case == body && got == call_id) {
            return r;
        }
        wire_free(r);
    }
}

Envelope *client_call_request(struct client *c, const char *client_id, const void *data, size_t len,
                              int timeout_ms, char *err, size_t errlen)
{
    Envelope env;
    Replicacao__ClientRequest req = REPLICACAO__CLIENT_REQUEST__INIT;
    wire_init(&env, c->name, 0);
    req.call_id = c->next_call++;
    req.client_id = (char *)client_id;
    req.data.data = (uint8_t *)data;
    req.data.len = len;
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
    env.client_request = &req;
    if (client_send(c, &env) != 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        return NULL;
    }
    return await_reply(c, REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY, req.call_id, timeout_ms, err,
                       errlen);
}

Envelope *client_call_status(struct client *c, int timeout_ms, char *err, size_t errlen)
{
    Envelope env;
    Replicacao__StatusRequest req = REPLICACAO__STATUS_REQUEST__INIT;
    wire_init(&env, c->name, 0);
    req.call_id = c->next_call++;
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST;
    env.status_request = &req;
    if (client_send(c, &env) != 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        return NULL;
    }
    return await_reply(c, REPLICACAO__ENVELOPE__BODY_STATUS, req.call_id, timeout_ms, err, errlen);
}

Envelope *client_call_read(struct client *c, uint64_t after, uint32_t limit, int filter,
                           int timeout_ms, char *err, size_t errlen)
{
    return client_call_read_at(c, after, limit, filter,
                               REPLICACAO__READ_REQUEST__CONSISTENCY__SERIALIZABLE, timeout_ms, err,
                               errlen);
}

Envelope *client_call_read_at(struct client *c, uint64_t after, uint32_t limit, int filter,
                              int consistency, int timeout_ms, char *err, size_t errlen)
{
    Envelope env;
    Replicacao__ReadRequest req = REPLICACAO__READ_REQUEST__INIT;
    wire_init(&env, c->name, 0);
    req.call_id = c->next_call++;
    req.after = after;
    req.limit = limit;
    req.filter = (Replicacao__ReadRequest__Filter)filter;
    req.consistency = (Replicacao__ReadRequest__Consistency)consistency;
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REQUEST;
    env.read_request = &req;
    if (client_send(c, &env) != 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        return NULL;
    }
    return await_reply(c, REPLICACAO__ENVELOPE__BODY_READ_REPLY, req.call_id, timeout_ms, err,
                       errlen);
}

Envelope *client_call_remove_member(struct client *c, const char *id, int timeout_ms, char *err,
                                    size_t errlen)
{
    Envelope env;
    Replicacao__RemoveMember req = REPLICACAO__REMOVE_MEMBER__INIT;
    wire_init(&env, c->name, 0);
    req.call_id = c->next_call++;
    req.id = (char *)id;
    env.body_case = REPLICACAO__ENVELOPE__BODY_REMOVE_MEMBER;
    env.remove_member = &req;
    if (client_send(c, &env) != 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        return NULL;
    }
    return await_reply(c, REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY, req.call_id, timeout_ms, err,
                       errlen);
}

Envelope *client_call_force_config(struct client *c, const char *const *keep, size_t n_keep,
                                   int timeout_ms, char *err, size_t errlen)
{
    Envelope env;
    Replicacao__ForceConfig req = REPLICACAO__FORCE_CONFIG__INIT;
    wire_init(&env, c->name, 0);
    req.call_id = c->next_call++;
    req.n_keep = n_keep;
    req.keep = (char **)keep;
    env.body_case = REPLICACAO__ENVELOPE__BODY_FORCE_CONFIG;
    env.force_config = &req;
    if (client_send(c, &env) != 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        return NULL;
    }
    return await_reply(c, REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY, req.call_id, timeout_ms, err,
                       errlen);
}

int client_send_fail(struct client *c, const char *reason)
{
    Envelope env;
    Replicacao__Fail f = REPLICACAO__FAIL__INIT;
    wire_init(&env, c->name, 0);
    f.reason = (char *)reason;
    env.body_case = REPLICACAO__ENVELOPE__BODY_FAIL;
    env.fail = &f;
    return client_send(c, &env);
}

int client_subscribe(struct client *c)
{
    Envelope env;
    Replicacao__Subscribe s = REPLICACAO__SUBSCRIBE__INIT;
    wire_init(&env, c->name, 0);
    s.call_id = c->next_call++;
    env.body_case = REPLICACAO__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &s;
    return client_send(c, &env);
}
