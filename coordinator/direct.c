/*
 * coordinator/direct.c — see direct.h.
 */
#include "direct.h"
#include "client.h"
#include "clock.h"
#include "cluster.h"
#include "logging.h"
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#define CONNECT_MS  500  /* connect + Hello exchange */
#define SLICE_MS    50   /* how often a wait looks at the view for a newer primary */
#define REFUSED_MS  1000 /* a target that could not be reached is left alone this long */
#define CLIENT_NAME "coordinator"

struct direct_state {
    struct client cl;
    bool open;
    char id[LIMIT_ID_BYTES]; /* whom cl is connected to */
    uint64_t incarnation;
    /* The last target that could not be reached, and until when to leave
     * it alone. */
    char refused_id[LIMIT_ID_BYTES];
    uint64_t refused_incarnation;
    int64_t refused_until;
};

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void state_free(void *arg)
{
    struct direct_state *st = arg;
    if (st->open) {
        client_close(&st->cl);
    }
    free(st);
}

static void state_key_init(void)
{
    pthread_key_create(&state_key, state_free);
}

static struct direct_state *state(void)
{
    pthread_once(&state_once, state_key_init);
    struct direct_state *st = pthread_getspecific(state_key);
    if (st == NULL && (st = calloc(1, sizeof(*st))) != NULL) {
        st->cl.fd = -1;
        if (pthread_setspecific(state_key, st) != 0) {
            free(st);
            st = NULL;
        }
    }
    return st;
}

static void drop(struct direct_state *st)
{
    if (st->open) {
        client_close(&st->cl);
        st->open = false;
    }
}

int direct_target_of(const struct view_replica *p, struct direct_target *out)
{
    if (p->address[0] == '\0') {
        return -1;
    }
    snprintf(out->id, sizeof(out->id), "%s", p->id);
    snprintf(out->address, sizeof(out->address), "%s", p->address);
    out->epoch = p->epoch;
    out->incarnation = p->incarnation;
    return 0;
}

/* Blocking from here on, with receives that return every SLICE_MS. */
static int make_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    struct timeval tv = {.tv_sec = 0, .tv_usec = SLICE_MS * 1000};
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
        return -1;
    }
    return 0;
}

struct client *direct_conn(const struct direct_target *t)
{
    struct direct_state *st = state();
    if (st == NULL) {
        return NULL;
    }
    if (st->open && strcmp(st->id, t->id) == 0 && st->incarnation == t->incarnation) {
        return &st->cl;
    }
    drop(st);
    if (strcmp(st->refused_id, t->id) == 0 && st->refused_incarnation == t->incarnation &&
        clock_mono_ms() < st->refused_until) {
        return NULL;
    }
    char err[160];
    if (client_connect(&st->cl, t->address, CLIENT_NAME, CONNECT_MS, err, sizeof(err)) != 0) {
        log_debug("direct: %s at %s: %s", t->id, t->address, err);
    } else if (strcmp(st->cl.peer_id, t->id) != 0) {
        log_debug("direct: %s answered at %s, not %s", st->cl.peer_id, t->address, t->id);
        client_close(&st->cl);
    } else if (make_blocking(st->cl.fd) != 0) {
        client_close(&st->cl);
    } else {
        st->open = true;
        snprintf(st->id, sizeof(st->id), "%s", t->id);
        st->incarnation = t->incarnation;
        return &st->cl;
    }
    snprintf(st->refused_id, sizeof(st->refused_id), "%s", t->id);
    st->refused_incarnation = t->incarnation;
    st->refused_until = clock_mono_ms() + REFUSED_MS;
    return NULL;
}

Envelope *direct_call(struct cluster *c, struct client *conn, const struct direct_target *t,
                      const char *client_id, const void *data, size_t len, int64_t until)
{
    struct direct_state *st = state();
    Envelope env;
    Replicacao__ClientRequest req = REPLICACAO__CLIENT_REQUEST__INIT;
    wire_init(&env, conn->name, 0);
    req.call_id = conn->next_call++;
    req.client_id = (char *)client_id;
    req.data.data = (uint8_t *)data;
    req.data.len = len;
    env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
    env.client_request = &req;
    if (client_send(conn, &env) != 0) {
        drop(st);
        return NULL;
    }
    for (;;) {
        const uint8_t *payload;
        size_t n;
        enum frame_result fr = frame_reader_next(&conn->reader, &payload, &n);
        if (fr == FRAME_READY) {
            char err[128];
            Envelope *r = wire_unpack(payload, n, err, sizeof(err));
            if (r == NULL) {
                log_warn("direct: bad message from %s: %s", t->id, err);
                break;
            }
            if (r->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY &&
                r->client_reply->call_id == req.call_id) {
                return r;
            }
            if (r->body_case == REPLICACAO__ENVELOPE__BODY_ERROR) {
                /* One call in flight on this connection: the error is its. */
                log_warn("direct: %s answered with an error: %s", t->id, r->error->message);
                wire_free(r);
                break;
            }
            wire_free(r); /* anything else is not for us */
            continue;
        }
        if (fr == FRAME_TOO_LARGE || clock_mono_ms() >= until) {
            break;
        }
        uint8_t buf[16384];
        ssize_t got = recv(conn->fd, buf, sizeof(buf), 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (cluster_superseded(c, t->id, t->epoch)) {
                break;
            }
            continue;
        }
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0 || frame_reader_feed(&conn->reader, buf, (size_t)got) != 0) {
            break;
        }
    }
    drop(st);
    return NULL;
}
