/*
 * coordinator/front.c — see front.h.
 *
 * Sections: connections (reading, answering), piping to civetweb, life
 * cycle. What the front answers itself is decided by api_parse_head
 * (api_input.c).
 *
 * A connection starts NATIVE: its bytes accumulate in a buffer and are
 * looked at after every read. The front waits while they may still become a
 * request it answers; as soon as they cannot (another method or path, a
 * header it does not handle, a malformed line), or when no whole request
 * has come within COMPLETE_MS, the connection is PIPED: a connection to
 * civetweb is opened, the buffered bytes go first, and from then on bytes
 * are copied both ways until both sides are done. One request at a time is
 * answered per connection: bytes of a next (pipelined) one wait in the
 * buffer until the answer to the current one is out.
 */
#include "front.h"
#include "api_input.h"
#include "auth.h"
#include "cluster.h"
#include "logging.h"
#include "respond.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define COMPLETE_MS 1000         /* a whole request within this, or civetweb takes over */
#define NATIVE_ROOM 8192         /* free bytes offered to each read of a request */
#define PIPE_ROOM   65536        /* bytes offered to each read when piping */
#define BUDGET      (64u << 20)  /* request bytes the front holds in all, at most */
#define PIPE_HIGH   (256 * 1024) /* queued towards one side: stop reading the other */
#define PIPE_LOW    (64 * 1024)  /* ... until it is down to this */

/* ========================================================================
 * Connections
 * ====================================================================== */

enum fstate {
    F_NATIVE,     /* the front reads requests */
    F_CONNECTING, /* handing over: connecting to civetweb */
    F_PIPED,      /* bytes copied both ways */
    F_CLOSED,
};

struct front {
    struct cluster *c;
    uv_loop_t *loop;
    struct front_options o;
    char listen[128];
    uv_tcp_t server;
    struct sockaddr_in backend;
    uv_timer_t resume_timer; /* answers done: look at the next buffered request */
    struct fconn *conns;
    struct fconn *resume;
    size_t buffered;  /* the capacity of every connection's request buffer */
    int open_handles; /* server, resume_timer: freed when both are closed */
};

struct fconn {
    struct front *f;
    struct fconn *prev, *next;
    enum fstate state;
    int refs; /* each open handle, the connect request, an answer pending */
    uv_tcp_t client;
    uv_timer_t timer; /* a whole request within COMPLETE_MS */
    /* Native. */
    char *buf;
    size_t len, cap;
    bool reading;
    bool busy;        /* a request is with the cluster, or its answer being written */
    bool close_after; /* Connection: close, or the client is done sending */
    bool client_eof;
    struct fconn *next_resume;
    bool in_resume;
    /* Piped. */
    uv_tcp_t backend;
    bool backend_open;
    uv_connect_t connect;
    bool backend_eof;
    bool client_paused, backend_paused;
};

static void fc_unref(struct fconn *fc)
{
    if (--fc->refs == 0) {
        free(fc->buf);
        free(fc);
    }
}

static void fc_handle_closed(uv_handle_t *h)
{
    fc_unref(h->data);
}

static void resume_remove(struct fconn *fc)
{
    if (!fc->in_resume) {
        return;
    }
    struct fconn **pp = &fc->f->resume;
    while (*pp != fc) {
        pp = &(*pp)->next_resume;
    }
    *pp = fc->next_resume;
    fc->in_resume = false;
}

/* Resize a connection's request buffer, keeping the front's total. */
static bool set_cap(struct fconn *fc, size_t cap)
{
    char *b = realloc(fc->buf, cap);
    if (b == NULL) {
        return false;
    }
    fc->f->buffered = fc->f->buffered - fc->cap + cap;
    fc->buf = b;
    fc->cap = cap;
    return true;
}

static void fc_close(struct fconn *fc)
{
    if (fc->state == F_CLOSED) {
        return;
    }
    struct front *f = fc->f;
    f->buffered -= fc->cap; /* freed with the connection */
    fc->state = F_CLOSED;
    resume_remove(fc);
    if (fc->prev) {
        fc->prev->next = fc->next;
    } else {
        f->conns = fc->next;
    }
    if (fc->next) {
        fc->next->prev = fc->prev;
    }
    fc->f = NULL; /* nothing after this may reach the front */
    uv_close((uv_handle_t *)&fc->client, fc_handle_closed);
    uv_close((uv_handle_t *)&fc->timer, fc_handle_closed);
    if (fc->backend_open) {
        uv_close((uv_handle_t *)&fc->backend, fc_handle_closed);
    }
}

static void pipe_start(struct fconn *fc);
static void native_parse(struct fconn *fc);
static void resume_cb(uv_timer_t *t);

static void complete_timeout(uv_timer_t *t)
{
    struct fconn *fc = t->data;
    if (fc->state == F_NATIVE && !fc->busy) {
        pipe_start(fc); /* civetweb applies its own timeouts from here */
    }
}

/* Waiting for a request: it must be whole within COMPLETE_MS. */
static void await_request(struct fconn *fc)
{
    uv_timer_start(&fc->timer, complete_timeout, COMPLETE_MS, 0);
}

static void native_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    struct fconn *fc = h->data;
    if (fc->cap - fc->len < NATIVE_ROOM) {
        size_t cap = fc->cap ? fc->cap : NATIVE_ROOM;
        while (cap - fc->len < NATIVE_ROOM) {
            cap *= 2;
        }
        if (!set_cap(fc, cap)) {
            *out = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
    }
    *out = uv_buf_init(fc->buf + fc->len, (unsigned)(fc->cap - fc->len));
}

static void native_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct fconn *fc = s->data;
    if (n == 0) {
        return;
    }
    if (n < 0 && n != UV_EOF) {
        fc_close(fc);
        return;
    }
    if (n == UV_EOF) {
        fc->client_eof = true;
        uv_read_stop(s);
        fc->reading = false;
        if (fc->busy) {
            fc->close_after = true; /* answer, then close */
        } else if (fc->len > 0) {
            pipe_start(fc); /* a partial request: civetweb's to answer */
        } else {
            fc_close(fc);
        }
        return;
    }
    fc->len += (size_t)n;
    if (fc->busy) {
        /* A pipelined request waits for the answer to this one; do not
         * buffer without end meanwhile. */
        if (fc->len > API_HEAD_MAX + fc->f->o.max_body_bytes || fc->f->buffered > BUDGET) {
            uv_read_stop(s);
            fc->reading = false;
        }
        return;
    }
    native_parse(fc);
}

/* The answer is out: on to the next request. */
static void native_answered(struct fconn *fc)
{
    fc->busy = false;
    if (fc->close_after) {
        fc_close(fc);
        return;
    }
    await_request(fc);
    if (fc->len > 0 || !fc->reading) {
        /* Not from inside whatever produced the answer. */
        struct front *f = fc->f;
        if (!fc->in_resume) {
            fc->in_resume = true;
            fc->next_resume = f->resume;
            f->resume = fc;
        }
        if (!uv_is_active((uv_handle_t *)&f->resume_timer)) {
            uv_timer_start(&f->resume_timer, resume_cb, 0, 0);
        }
    }
}

struct answer {
    uv_write_t req;
    struct fconn *fc;
    char *text;
};

static void answer_written(uv_write_t *req, int status)
{
    struct answer *a = (struct answer *)req;
    struct fconn *fc = a->fc;
    free(a->text);
    free(a);
    if (fc->state == F_NATIVE) {
        if (status < 0) {
            fc_close(fc);
        } else {
            native_answered(fc);
        }
    }
    fc_unref(fc);
}

/* Write a whole answer: at once when the socket takes it (no write request,
 * no watcher change), else queued. */
static void answer(struct fconn *fc, int status, const char *body, const char *extra)
{
    size_t len;
    char *text = respond_format(status, "application/json", body, extra, true, &len);
    if (text == NULL) {
        fc_close(fc);
        return;
    }
    uv_buf_t b = uv_buf_init(text, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&fc->client, &b, 1);
    if (n == (int)len) {
        free(text);
        native_answered(fc);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        free(text);
        fc_close(fc);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    struct answer *a = malloc(sizeof(*a));
    if (a == NULL) {
        free(text);
        fc_close(fc);
        return;
    }
    a->fc = fc;
    a->text = text;
    b = uv_buf_init(text + done, (unsigned)(len - done));
    fc->refs++;
    if (uv_write(&a->req, (uv_stream_t *)&fc->client, &b, 1, answer_written) != 0) {
        free(text);
        free(a);
        fc_unref(fc);
        fc_close(fc);
    }
}

static void native_done(void *arg, struct cluster_reply *r)
{
    struct fconn *fc = arg;
    if (fc->state == F_NATIVE) {
        char extra[64];
        respond_retry_after(extra, sizeof(extra), r->status, r->retry_after_s);
        answer(fc, r->status, r->body, extra);
    }
    free(r->body);
    r->body = NULL;
    fc_unref(fc);
}

static void native_dispatch(struct fconn *fc, const struct api_head *rq)
{
    struct front *f = fc->f;
    struct api_write w;
    struct api_error e;
    int rc = api_parse_write(fc->buf + rq->head_len, rq->body_len, f->o.max_data_bytes, &w, &e);
    /* The request's bytes are used up; what follows is the next one. */
    size_t used = rq->head_len + rq->body_len;
    memmove(fc->buf, fc->buf + used, fc->len - used);
    fc->len -= used;
    if (fc->cap > 8 * NATIVE_ROOM && fc->len < NATIVE_ROOM) {
        set_cap(fc, 2 * NATIVE_ROOM); /* a big body came and went: do not keep its room */
    }
    fc->close_after = fc->close_after || rq->close;
    fc->busy = true;
    uv_timer_stop(&fc->timer);
    if (rc < 0) {
        char *body = cluster_error_json(e.code, e.message);
        answer(fc, e.status, body, NULL);
        free(body);
        return;
    }
    if (w.id[0] == '\0') {
        respond_random_id(w.id, sizeof(w.id));
    }
    fc->refs++;
    cluster_request_async(f->c, w.data, w.len, w.id, w.fault, w.has_seen ? &w.seen_index : NULL,
                          f->o.request_timeout_ms, native_done, fc);
    api_write_free(&w);
}

/* Does a whole request carry the token a write needs? */
static bool authorised(const struct front *f, const char *b, const struct api_head *rq)
{
    if (f->o.auth == NULL || !f->o.auth->on) {
        return true;
    }
    size_t tl = 0;
    const char *token = rq->has_auth ? auth_bearer(b + rq->auth_off, rq->auth_len, &tl) : NULL;
    return auth_check(f->o.auth, "POST", "/api/requests", token, tl) == AUTH_OK;
}

static void native_parse(struct fconn *fc)
{
    struct api_head rq;
    switch (api_parse_head(fc->buf, fc->len, fc->f->o.max_body_bytes, &rq)) {
    case API_HEAD_OTHER:
        pipe_start(fc);
        return;
    case API_HEAD_MORE:
        if (fc->f->buffered > BUDGET) {
            /* The front holds enough unfinished requests: this one is
             * civetweb's (a thread each, so a bounded number at a time). */
            pipe_start(fc);
            return;
        }
        if (!fc->reading && !fc->client_eof) {
            uv_read_start((uv_stream_t *)&fc->client, native_alloc, native_read);
            fc->reading = true;
        }
        return;
    case API_HEAD_READY:
        if (!authorised(fc->f, fc->buf, &rq)) {
            pipe_start(fc); /* civetweb answers 401 or 403, as for every other call */
            return;
        }
        native_dispatch(fc, &rq);
        return;
    }
}

static void resume_cb(uv_timer_t *t)
{
    struct front *f = t->data;
    while (f->resume) {
        struct fconn *fc = f->resume;
        f->resume = fc->next_resume;
        fc->in_resume = false;
        if (fc->state != F_NATIVE || fc->busy) {
            continue;
        }
        if (fc->len > 0) {
            native_parse(fc);
        } else if (!fc->reading && !fc->client_eof) {
            uv_read_start((uv_stream_t *)&fc->client, native_alloc, native_read);
            fc->reading = true;
        }
    }
}

/* ========================================================================
 * Piping to civetweb
 * ====================================================================== */

struct chunk {
    uv_write_t req;
    struct fconn *fc;
    char *data;
};

static void pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)h;
    (void)suggested;
    char *b = malloc(PIPE_ROOM);
    *out = uv_buf_init(b, b ? PIPE_ROOM : 0);
}

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static uv_stream_t *other_side(struct fconn *fc, uv_stream_t *s)
{
    return s == (uv_stream_t *)&fc->client ? (uv_stream_t *)&fc->backend
                                           : (uv_stream_t *)&fc->client;
}

static bool *paused_flag(struct fconn *fc, uv_stream_t *reader)
{
    return reader == (uv_stream_t *)&fc->client ? &fc->client_paused : &fc->backend_paused;
}

static void chunk_written(uv_write_t *req, int status)
{
    struct chunk *ch = (struct chunk *)req;
    struct fconn *fc = ch->fc;
    uv_stream_t *dst = req->handle;
    free(ch->data);
    free(ch);
    if (fc->state == F_PIPED) {
        if (status < 0 && dst == (uv_stream_t *)&fc->backend) {
            /* civetweb stopped reading (it answered an error and closed):
             * what the client still sends goes nowhere, but civetweb's
             * answer, already on its way, must still reach the client. */
            uv_read_stop((uv_stream_t *)&fc->client);
            fc->client_eof = true;
        } else if (status < 0) {
            fc_close(fc); /* the client is gone */
        } else {
            /* Drained enough: read the side that feeds this one again. */
            uv_stream_t *src = other_side(fc, dst);
            bool *paused = paused_flag(fc, src);
            if (*paused && uv_stream_get_write_queue_size(dst) < PIPE_LOW) {
                *paused = false;
                uv_read_start(src, pipe_alloc, pipe_read);
            }
        }
    }
    fc_unref(fc);
}

/* Queue `data` (taken) towards dst. */
static int pipe_send(struct fconn *fc, uv_stream_t *dst, char *data, size_t n)
{
    struct chunk *ch = malloc(sizeof(*ch));
    if (ch == NULL) {
        free(data);
        return -1;
    }
    ch->fc = fc;
    ch->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)n);
    fc->refs++;
    if (uv_write(&ch->req, dst, &b, 1, chunk_written) != 0) {
        free(data);
        free(ch);
        fc_unref(fc);
        return -1;
    }
    return 0;
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    struct fconn *fc = req->data;
    bool to_client = req->handle == (uv_stream_t *)&fc->client;
    free(req);
    if (to_client && fc->state == F_PIPED) {
        /* civetweb closed, and all it sent has reached the client: the
         * connection is over, as when civetweb closed it itself. */
        fc_close(fc);
    }
    fc_unref(fc);
}

/* src said it is done sending: tell dst once what is queued has gone. */
static void pipe_eof(struct fconn *fc, uv_stream_t *src)
{
    bool from_client = src == (uv_stream_t *)&fc->client;
    if (from_client && fc->backend_eof) {
        return; /* the client's side is being shut down: shutdown_done closes */
    }
    *(from_client ? &fc->client_eof : &fc->backend_eof) = true;
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        fc_close(fc);
        return;
    }
    req->data = fc;
    fc->refs++;
    if (uv_shutdown(req, other_side(fc, src), shutdown_done) != 0) {
        free(req);
        fc_unref(fc);
        fc_close(fc);
    }
}

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct fconn *fc = s->data;
    if (n <= 0) {
        free(buf->base);
        bool from_backend = s == (uv_stream_t *)&fc->backend;
        if (n == UV_EOF || (n < 0 && from_backend)) {
            /* A reset from civetweb (it closed with our bytes unread) ends
             * its side like an EOF: what it sent before still goes out. */
            uv_read_stop(s);
            pipe_eof(fc, s);
        } else if (n < 0) {
            fc_close(fc);
        }
        return;
    }
    uv_stream_t *dst = other_side(fc, s);
    if (pipe_send(fc, dst, buf->base, (size_t)n) != 0) {
        fc_close(fc);
        return;
    }
    if (uv_stream_get_write_queue_size(dst) > PIPE_HIGH) {
        uv_read_stop(s);
        *paused_flag(fc, s) = true;
    }
}

static void backend_connected(uv_connect_t *req, int status)
{
    struct fconn *fc = req->data;
    if (fc->state == F_CONNECTING) {
        if (status < 0) {
            log_warn("front: cannot reach the HTTP server: %s", uv_strerror(status));
            fc_close(fc);
        } else {
            fc->state = F_PIPED;
            uv_tcp_nodelay(&fc->backend, 1);
            /* What the front read first goes first; the buffer leaves with
             * its bytes. */
            char *data = fc->buf;
            size_t n = fc->len;
            fc->f->buffered -= fc->cap;
            fc->buf = NULL;
            fc->len = fc->cap = 0;
            if (n == 0) {
                free(data);
            } else if (pipe_send(fc, (uv_stream_t *)&fc->backend, data, n) != 0) {
                fc_close(fc);
                fc_unref(fc);
                return;
            }
            uv_read_start((uv_stream_t *)&fc->backend, pipe_alloc, pipe_read);
            if (fc->client_eof) {
                fc->client_eof = false; /* pipe_eof sets it again */
                pipe_eof(fc, (uv_stream_t *)&fc->client);
            } else {
                uv_read_start((uv_stream_t *)&fc->client, pipe_alloc, pipe_read);
            }
        }
    }
    fc_unref(fc);
}

/* Hand the connection to civetweb, bytes read so far first. */
static void pipe_start(struct fconn *fc)
{
    struct front *f = fc->f;
    uv_timer_stop(&fc->timer);
    resume_remove(fc);
    if (fc->reading) {
        uv_read_stop((uv_stream_t *)&fc->client);
        fc->reading = false;
    }
    fc->state = F_CONNECTING;
    if (uv_tcp_init(f->loop, &fc->backend) != 0) {
        fc_close(fc);
        return;
    }
    fc->backend.data = fc;
    fc->backend_open = true;
    fc->refs++; /* the backend handle */
    fc->connect.data = fc;
    fc->refs++; /* the connect request */
    if (uv_tcp_connect(&fc->connect, &fc->backend, (const struct sockaddr *)&f->backend,
                       backend_connected) != 0) {
        fc_unref(fc);
        fc_close(fc);
    }
}

/* ========================================================================
 * Life cycle
 * ====================================================================== */

static void on_connection(uv_stream_t *server, int status)
{
    struct front *f = server->data;
    if (status < 0) {
        log_warn("front: accept: %s", uv_strerror(status));
        return;
    }
    struct fconn *fc = calloc(1, sizeof(*fc));
    if (fc == NULL) {
        return;
    }
    fc->f = f;
    uv_tcp_init(f->loop, &fc->client);
    fc->client.data = fc;
    uv_timer_init(f->loop, &fc->timer);
    fc->timer.data = fc;
    fc->refs = 2; /* client, timer */
    fc->next = f->conns;
    if (f->conns) {
        f->conns->prev = fc;
    }
    f->conns = fc;
    if (uv_accept(server, (uv_stream_t *)&fc->client) != 0) {
        fc_close(fc);
        return;
    }
    uv_tcp_nodelay(&fc->client, 1);
    uv_read_start((uv_stream_t *)&fc->client, native_alloc, native_read);
    fc->reading = true;
    await_request(fc);
}

static void front_handle_closed(uv_handle_t *h)
{
    struct front *f = h->data;
    if (--f->open_handles == 0) {
        free(f);
    }
}

static int parse_listen(const char *s, struct sockaddr_storage *out)
{
    char host[128];
    const char *port;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host)) {
            return -1;
        }
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            snprintf(host, sizeof(host), "0.0.0.0");
            port = s;
        } else if ((size_t)(colon - s) < sizeof(host)) {
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            port = colon + 1;
        } else {
            return -1;
        }
    }
    char *end;
    unsigned long p = strtoul(port, &end, 10);
    if (port[0] == '\0' || *end != '\0' || p > 65535) {
        return -1;
    }
    if (uv_ip4_addr(host, (int)p, (struct sockaddr_in *)out) == 0) {
        return 0;
    }
    return uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)out) == 0 ? 0 : -1;
}

struct start_args {
    struct front *f;
    char *err;
    size_t errlen;
};

static void front_close_all(void *arg);

/* Loop thread. */
static int start_on_loop(struct cluster *c, void *arg)
{
    struct start_args *a = arg;
    struct front *f = a->f;
    struct sockaddr_storage addr;
    if (parse_listen(f->listen, &addr) != 0) {
        snprintf(a->err, a->errlen, "cannot listen on %s (in use, or not an ip:port)", f->listen);
        return -1;
    }
    uv_tcp_init(f->loop, &f->server);
    f->server.data = f;
    int rc = uv_tcp_bind(&f->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&f->server, 511, on_connection);
    }
    if (rc != 0) {
        snprintf(a->err, a->errlen, "cannot listen on %s (in use, or not an ip:port): %s",
                 f->listen, uv_strerror(rc));
        f->open_handles = 1;
        a->f = NULL; /* freed when the handle is closed */
        uv_close((uv_handle_t *)&f->server, front_handle_closed);
        return -1;
    }
    uv_timer_init(f->loop, &f->resume_timer);
    f->resume_timer.data = f;
    f->open_handles = 2;
    cluster_on_shutdown(c, front_close_all, f);
    return 0;
}

struct front *front_start(struct cluster *c, const struct front_options *o, char *err,
                          size_t errlen)
{
    struct front *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->c = c;
    f->loop = cluster_loop(c);
    f->o = *o;
    snprintf(f->listen, sizeof(f->listen), "%s", o->listen);
    f->o.listen = f->listen;
    uv_ip4_addr("127.0.0.1", (int)o->backend_port, &f->backend);
    struct start_args a = {f, err, errlen};
    if (cluster_call(c, start_on_loop, &a) != 0) {
        if (a.f != NULL) {
            free(a.f); /* never reached the loop, or failed before a handle */
        }
        if (err[0] == '\0') {
            snprintf(err, errlen, "cannot start the HTTP front");
        }
        return NULL;
    }
    log_debug("front: listening on %s, civetweb on 127.0.0.1:%u", f->listen, o->backend_port);
    return f;
}

/* Loop thread: stop listening, close every connection. */
static void front_close_all(void *arg)
{
    struct front *f = arg;
    while (f->conns) {
        fc_close(f->conns);
    }
    uv_close((uv_handle_t *)&f->server, front_handle_closed);
    uv_close((uv_handle_t *)&f->resume_timer, front_handle_closed);
}

static int stop_on_loop(struct cluster *c, void *arg)
{
    cluster_on_shutdown(c, NULL, NULL);
    front_close_all(arg);
    return 0;
}

void front_stop(struct front *f)
{
    if (f != NULL) {
        cluster_call(f->c, stop_on_loop, f);
    }
}
