/*
 * common/transport.c — see transport.h.
 *
 * Sections: connections (read, hello, queue, flush, close), faults (drop,
 * delay, pause: the fault lab's rules carried out), outbound targets
 * (connect, reconnect with backoff), listener, life cycle.
 */
#include "transport.h"
#include "clock.h"
#include "faults.h"
#include "frame.h"
#include "logging.h"
#include "peer_auth.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RETRY_MIN_MS   100
#define RETRY_MAX_MS   2000
#define MISSING_PASSES 3 /* resolutions a target may be absent from before removal */
/* A live peer on a LAN or loopback accepts in well under a millisecond; a
 * container that was killed takes its address with it, so the reconnect
 * hangs (ARP) instead of being refused. Past this it counts as gone. */
#define GONE_AFTER_MS 100
/* Frames a link delay holds per connection, at most; beyond, they are lost
 * (as a router's full queue would lose them), so memory stays bounded. */
#define DELAY_QUEUE_MAX_BYTES (64u << 20)
/* Client calls held while paused, per connection; beyond, the connection
 * is not read until the pause ends (which it always does: it expires). */
#define HELD_MAX 4096
/* A connection must finish its Hellos (and proofs) within this, or it is
 * closed: a stranger cannot hold connections open by saying nothing. */
#define HANDSHAKE_TIMEOUT_MS 10000
/* Until the other end is known (and, with a secret, has proved it), a
 * frame larger than this closes the connection: a Hello and an Auth take
 * well under 1 KiB, and nobody unproven makes us buffer megabytes. */
#define HANDSHAKE_FRAME_MAX LIMIT_FRAME_BYTES_MIN
/* A machine that vanishes (power, cable, a lost node) sends no FIN or RST:
 * with the kernel's defaults its connections look open for 11 minutes when
 * idle (keepalive: 75 s x 9 probes) or 15 when data waits for an ACK
 * (tcp_retries2), and the replicas count a ghost as connected, never
 * removing it, or adding it back as a learner. Probes start after
 * KEEPALIVE_IDLE_S of silence, and a connection whose other end has
 * answered nothing (no data, no ACK, no probe's answer) for DEAD_PEER_MS is
 * closed like any other. A paused or SIGSTOPped process still answers (its
 * kernel does), until it stops taking data for DEAD_PEER_MS: then it is
 * closed too, and reconnects once it runs again. */
#define KEEPALIVE_IDLE_S  3
#define KEEPALIVE_INTVL_S 1
#define DEAD_PEER_MS      10000

/* A frame a link delay holds until `due`. */
struct delayed {
    struct delayed *next;
    int64_t due;
    size_t len;
    uint8_t bytes[];
};

/* A client's call that arrived while paused, handed over when it ends:
 * its frame's payload, unpacked again then (the arena it was first
 * unpacked into is reused meanwhile). */
struct held {
    struct held *next;
    size_t len;
    uint8_t payload[];
};

struct outbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

struct target;

struct conn {
    uv_tcp_t tcp;
    /* The connect request lives here, not in the target: libuv calls its
     * callback (cancelled) before the handle's close callback, and the
     * target may already be gone by then. */
    uv_connect_t connect_req;
    struct transport *t;
    struct target *target; /* outbound: what it connects to; NULL inbound */
    struct frame_reader reader;
    struct outbuf out;
    bool tcp_connected; /* outbound: the connect completed */
    bool hello_sent;
    bool hello_seen; /* theirs arrived; with a secret, their Auth is next */
    bool hello_done; /* the other end is known (and proved): messages flow */
    bool closing;
    bool is_client;
    bool read_stopped; /* paused: its frames wait in the reader */
    bool resume;       /* the pause ended: to be drained */
    struct delayed *delayed_head, *delayed_tail;
    size_t delayed_bytes;
    struct held *held_head, *held_tail;
    unsigned n_held;
    char peer_id[WIRE_ID_MAX];
    char peer_name[LIMIT_NAME_BYTES];
    char peer_address[LIMIT_NAME_BYTES];
    char peer_cluster[WIRE_ID_MAX];
    int64_t opened_ms;
    uint8_t nonce[AUTH_NONCE_BYTES];       /* ours, with a secret */
    uint8_t their_nonce[AUTH_NONCE_BYTES]; /* from their Hello */
    char desc[512];
    void *data;
    struct conn *next;
    struct conn *prev;
};

enum target_state {
    TARGET_IDLE,       /* waiting for its retry timer */
    TARGET_CONNECTING, /* connect in progress or connected */
    TARGET_SELF,       /* our own address: never connected again */
    TARGET_ALIAS,      /* another address of a replica we already reach */
    TARGET_FOREIGN,    /* a replica of another cluster: never connected again */
};

struct target {
    struct transport *t;
    char addr[128]; /* numeric ip:port */
    enum target_state state;
    struct conn *conn;
    char id[WIRE_ID_MAX];    /* learned from its Hello */
    bool retry_is_immediate; /* this connect follows a close: refusal means gone */
    unsigned backoff_ms;
    unsigned missing;
    bool learned;      /* from a replica's Hello, not from discovery: never missing */
    bool told_failing; /* closed before its Hello, logged once until it works */
    uv_timer_t timer;
    struct target *next;
};

struct transport {
    uv_loop_t *loop;
    struct transport_options o;
    char self_id[WIRE_ID_MAX];
    char name[LIMIT_NAME_BYTES];
    char advertise[LIMIT_NAME_BYTES];
    char cluster_id[WIRE_ID_MAX]; /* "" until the replica knows its cluster */
    struct transport_callbacks cb;
    uv_tcp_t listener;
    bool listening;
    struct conn *conns;
    struct target *targets;
    unsigned open_handles;
    bool closing;
    void (*closed_cb)(struct transport *t);
    /* Each received message is unpacked into the arena, which is reset
     * once no handler runs: a handler may resume a pause, which hands
     * held and buffered messages over from inside it. */
    struct arena arena;
    unsigned handling;
    struct faults faults;
    uv_timer_t fault_timer; /* the next delayed frame or expiry */
    bool was_paused;
    uv_timer_t handshake_timer; /* closes connections that never finish their Hellos */
    uint64_t auth_refused;
    int64_t refused_news_ms; /* the last refusal logged and told (once a second) */
    uint64_t refused_quiet;  /* refused since, neither logged nor told */
    char readbuf[64 * 1024];
};

static void target_schedule(struct target *tg, unsigned delay_ms);
static void target_connect(struct target *tg);
static void target_timer_cb(uv_timer_t *timer);
static void report_gone(struct target *tg, const char *why);
static void faults_arm(struct transport *t, int64_t now);

/* ========================================================================
 * Connections
 * ====================================================================== */

static void handle_closed(struct transport *t)
{
    if (--t->open_handles == 0 && t->closing && t->closed_cb) {
        t->closed_cb(t);
    }
}

static struct conn *conn_new(struct transport *t)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->t = t;
    uv_tcp_init(t->loop, &c->tcp);
    t->open_handles++;
    c->tcp.data = c;
    frame_reader_init(&c->reader, HANDSHAKE_FRAME_MAX);
    c->opened_ms = clock_mono_ms();
    if (t->o.auth != NULL) {
        peer_auth_random(c->nonce, sizeof(c->nonce));
    }
    snprintf(c->desc, sizeof(c->desc), "connection");
    c->next = t->conns;
    if (t->conns) {
        t->conns->prev = c;
    }
    t->conns = c;
    return c;
}

static void conn_free_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct transport *t = c->t;
    while (c->delayed_head) {
        struct delayed *d = c->delayed_head;
        c->delayed_head = d->next;
        free(d);
    }
    while (c->held_head) {
        struct held *hd = c->held_head;
        c->held_head = hd->next;
        free(hd);
    }
    frame_reader_free(&c->reader);
    free(c->out.data);
    free(c);
    handle_closed(t);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    struct transport *t = c->t;
    struct target *tg = c->target;
    if (reason != NULL && tg != NULL && !c->hello_done) {
        /* A peer that closes before its Hello, again and again (one that
         * wants a secret we do not prove), is news once until it works. */
        if (tg->told_failing) {
            log_debug("closing %s: %s", c->desc, reason);
        } else {
            /* Closed at once after our Hello without a word: what a replica
             * that wants a secret does to one without it. */
            bool hint = !t->o.auth && strcmp(reason, "closed by peer") == 0;
            log_info("closing %s: %s%s", c->desc, reason,
                     hint ? " before its hello (does it want a cluster secret we do not have?)"
                          : "");
            tg->told_failing = true;
        }
    } else if (reason != NULL) {
        /* Clients come and go all the time; peers closing is news. */
        if (c->is_client) {
            log_debug("closing %s: %s", c->desc, reason);
        } else {
            log_info("closing %s: %s", c->desc, reason);
        }
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    if (c->hello_done && t->cb.on_closed) {
        t->cb.on_closed(t, c);
    }
    if (tg != NULL) {
        tg->conn = NULL;
        if (tg->state == TARGET_CONNECTING && !t->closing) {
            if (c->hello_done && !c->is_client) {
                /* It was up: reconnect at once. A refusal then tells the
                 * node the process is gone (fast failover). */
                tg->retry_is_immediate = true;
                tg->backoff_ms = RETRY_MIN_MS;
                tg->state = TARGET_IDLE;
                target_connect(tg);
                uv_timer_start(&tg->timer, target_timer_cb, GONE_AFTER_MS, 0);
            } else {
                /* The reconnect after a close failed, even if the dying
                 * process's listen backlog accepted it first. */
                if (tg->retry_is_immediate && tg->id[0] != '\0' && !t->closing) {
                    report_gone(tg, reason ? reason : "reconnection failed");
                }
                target_schedule(tg, tg->backoff_ms);
            }
        }
    }
    uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
}

void conn_reject(struct conn *c, const char *reason)
{
    if (!c->closing) {
        log_warn("%s: %s; closing it", c->desc, reason);
        conn_close(c, NULL);
    }
}

static void set_desc(struct conn *c)
{
    const char *kind = c->is_client ? "client" : "peer";
    const char *who = c->peer_id[0] ? c->peer_id : "?";
    const char *where = c->target ? c->target->addr : c->peer_address;
    snprintf(c->desc, sizeof(c->desc), "%s %s (%s%s)", kind, who, c->target ? "to " : "from ",
             where[0] ? where : "?");
}

static int parse_numeric(const char *addr, struct sockaddr_storage *ss);
static void conn_flush(struct conn *c);

static void queue_hello(struct conn *c)
{
    struct transport *t = c->t;
    Envelope env;
    Replicacao__Hello hello = REPLICACAO__HELLO__INIT;
    wire_init(&env, t->self_id, 0);
    hello.name = t->name;
    hello.address = t->advertise;
    hello.kind = t->o.client ? REPLICACAO__HELLO__KIND__CLIENT : REPLICACAO__HELLO__KIND__REPLICA;
    hello.cluster_id = t->cluster_id;
    if (t->o.auth != NULL) {
        hello.nonce.data = c->nonce;
        hello.nonce.len = sizeof(c->nonce);
    }
    env.body_case = REPLICACAO__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    conn_queue(c, &env);
    c->hello_sent = true;
}

static struct target *target_with_id(struct transport *t, const char *id, struct target *except)
{
    for (struct target *tg = t->targets; tg; tg = tg->next) {
        if (tg != except && tg->state == TARGET_CONNECTING && tg->conn && tg->conn->hello_done &&
            strcmp(tg->id, id) == 0) {
            return tg;
        }
    }
    return NULL;
}

/* A replica we were backing off from has just connected to us: it is back,
 * so stop waiting and dial it now (it needs our Appends and votes). A
 * target never reached in this process's life has no id yet: its address
 * names it (a brand-new replica otherwise waited up to the backoff cap,
 * 0.7 s in a catch-up benchmark, before the primary dialled it). */
static void redial_now(struct transport *t, const char *id, const char *addr)
{
    for (struct target *tg = t->targets; tg; tg = tg->next) {
        bool same = tg->id[0] != '\0' ? strcmp(tg->id, id) == 0
                                      : addr[0] != '\0' && strcmp(tg->addr, addr) == 0;
        if (same && tg->state == TARGET_CONNECTING && tg->conn != NULL &&
            !tg->conn->tcp_connected) {
            /* Still on a connect sent while it was down: its address
             * answered nothing, and the kernel resends that SYN on its own
             * schedule, a second and more apart. Start a fresh one. (A
             * replica back from a forced recovery must hear the new primary
             * before its old peers can elect one of their own.) */
            tg->retry_is_immediate = false;
            conn_close(tg->conn, NULL);
        }
        if (tg->state == TARGET_IDLE && same) {
            uv_timer_stop(&tg->timer);
            tg->backoff_ms = RETRY_MIN_MS;
            target_connect(tg);
        }
    }
}

static struct target *target_add(struct transport *t, const char *addr);

/* A replica that connected to us says where it listens: dial it too, even
 * if discovery does not list it (a replica started later with a longer
 * static list than ours). Only numeric addresses: names are discovery's. */
static void learn_target(struct transport *t, const char *addr)
{
    struct sockaddr_storage ss;
    if (addr[0] == '\0' || parse_numeric(addr, &ss) != 0) {
        return;
    }
    for (struct target *tg = t->targets; tg; tg = tg->next) {
        if (strcmp(tg->addr, addr) == 0) {
            return;
        }
    }
    struct target *tg = target_add(t, addr);
    if (tg != NULL) {
        tg->learned = true;
    }
}

/* Count a refused handshake. At most once a second it is news: true,
 * with how many more were refused since the last news in *more (the log
 * says so and the owner hears of it). A misconfigured peer retries several
 * times a second; nobody needs each of those. */
static bool count_refusal(struct conn *c, const char *why, uint64_t *more)
{
    struct transport *t = c->t;
    t->auth_refused++;
    int64_t now = clock_mono_ms();
    if (now - t->refused_news_ms < 1000) {
        t->refused_quiet++;
        return false;
    }
    *more = t->refused_quiet;
    t->refused_news_ms = now;
    t->refused_quiet = 0;
    if (t->cb.on_refused != NULL) {
        t->cb.on_refused(t, c->desc, why, *more);
    }
    return true;
}

/* The other end broke the handshake's protocol: counted, and logged like
 * any broken protocol (conn_reject), every time. */
static void refuse_broken(struct conn *c, const char *why)
{
    uint64_t more;
    count_refusal(c, why, &more);
    conn_reject(c, why);
}

/* The other end could not prove the secret or its key (a stranger, or a
 * member configured with another secret): counted, logged as a warning
 * with the reason at most once a second, closed before any of its messages
 * is read. */
static void refuse(struct conn *c, const char *why)
{
    uint64_t more = 0;
    if (!count_refusal(c, why, &more)) {
        log_debug("%s refused: %s", c->desc, why);
    } else if (more > 0) {
        log_warn("%s refused: %s (and %" PRIu64 " more refused in the last second)", c->desc, why,
                 more);
    } else {
        log_warn("%s refused: %s", c->desc, why);
    }
    conn_close(c, NULL);
}

static void parties(const struct conn *c, struct auth_party *ours, struct auth_party *theirs)
{
    const struct transport *t = c->t;
    *ours = (struct auth_party){t->self_id, t->o.client, c->nonce};
    *theirs = (struct auth_party){c->peer_id, c->is_client, c->their_nonce};
}

/* Queue this end's Auth: the answer to their nonce. */
static void queue_auth(struct conn *c, const uint8_t transcript[32])
{
    struct auth_answer a;
    peer_auth_answer(c->t->o.auth, transcript, c->target != NULL, &a);
    Envelope env;
    wire_init(&env, c->t->self_id, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_AUTH;
    env.auth = &a.msg;
    conn_queue(c, &env);
}

static void transcript_of(const struct conn *c, uint8_t out[32])
{
    struct auth_party ours, theirs;
    parties(c, &ours, &theirs);
    if (c->target != NULL) {
        peer_auth_transcript(&ours, &theirs, out);
    } else {
        peer_auth_transcript(&theirs, &ours, out);
    }
}

/* Who is at the other end is known, and proved when we hold a secret:
 * messages may flow. False when the connection was closed because of it. */
static bool hello_accepted(struct conn *c)
{
    struct transport *t = c->t;
    const char *theirs = c->peer_cluster;
    if (!c->is_client && theirs[0] != '\0' && t->cluster_id[0] != '\0' &&
        strcmp(theirs, t->cluster_id) != 0) {
        /* Two clusters on one host or network must never merge. */
        char why[256];
        snprintf(why, sizeof(why), "replica %s belongs to cluster %s, not ours (%s)", c->peer_id,
                 theirs, t->cluster_id);
        if (c->target != NULL) {
            c->target->state = TARGET_FOREIGN;
        } else if (!c->hello_sent) {
            /* Tell the dialler who we are, so it stops dialling us too. */
            queue_hello(c);
            conn_flush(c);
        }
        conn_reject(c, why);
        return false;
    }
    struct target *tg = c->target;
    if (tg != NULL) {
        if (strcmp(c->peer_id, t->self_id) == 0) {
            tg->state = TARGET_SELF;
            conn_close(c, NULL);
            return false;
        }
        if (c->is_client || target_with_id(t, c->peer_id, tg) != NULL) {
            tg->state = TARGET_ALIAS;
            conn_close(c, NULL);
            return false;
        }
        snprintf(tg->id, sizeof(tg->id), "%s", c->peer_id);
        tg->told_failing = false;
        tg->backoff_ms = RETRY_MIN_MS;
        tg->retry_is_immediate = false;
    } else {
        if (!c->hello_sent) {
            queue_hello(c); /* inbound: answer with ours */
        }
        if (!c->is_client) {
            learn_target(t, c->peer_address);
            redial_now(t, c->peer_id, c->peer_address);
        }
    }
    c->hello_done = true;
    c->reader.max_frame = t->o.max_frame_bytes;
    if (t->cb.on_hello) {
        t->cb.on_hello(t, c);
    }
    return !c->closing;
}

/* The first frame: who is at the other end. Without a secret that is all;
 * with one, the acceptor answers with its Hello and its Auth at once, the
 * dialer waits for that Auth (auth_received). False when the connection
 * was closed because of it. */
static bool hello_received(struct conn *c, const Envelope *env)
{
    struct transport *t = c->t;
    if (env->body_case != REPLICACAO__ENVELOPE__BODY_HELLO) {
        refuse_broken(c, "first message was not a hello");
        return false;
    }
    c->is_client = env->hello->kind == REPLICACAO__HELLO__KIND__CLIENT;
    if (!c->is_client && env->from[0] == '\0') {
        refuse_broken(c, "replica hello without an id");
        return false;
    }
    snprintf(c->peer_id, sizeof(c->peer_id), "%s", env->from);
    snprintf(c->peer_name, sizeof(c->peer_name), "%s", env->hello->name);
    snprintf(c->peer_cluster, sizeof(c->peer_cluster), "%s", env->hello->cluster_id);
    if (env->hello->address[0] != '\0') {
        snprintf(c->peer_address, sizeof(c->peer_address), "%s", env->hello->address);
    }
    set_desc(c);
    c->hello_seen = true;
    if (t->o.auth == NULL) {
        return hello_accepted(c);
    }
    if (env->hello->nonce.len != AUTH_NONCE_BYTES) {
        refuse(c, "no proof of the cluster secret offered (is it running without "
                  "--cluster-secret-file?)");
        return false;
    }
    memcpy(c->their_nonce, env->hello->nonce.data, sizeof(c->their_nonce));
    if (c->target == NULL) {
        uint8_t transcript[32];
        transcript_of(c, transcript);
        queue_hello(c);
        queue_auth(c, transcript);
        conn_flush(c);
    }
    return true;
}

/* Their answer to our nonce. The dialer answers theirs only once it has
 * checked the acceptor's: a stranger gets no proof from a dialer. */
static bool auth_received(struct conn *c, const Envelope *env)
{
    struct transport *t = c->t;
    if (env->body_case != REPLICACAO__ENVELOPE__BODY_AUTH) {
        refuse_broken(c, "a message before the proof of the cluster secret");
        return false;
    }
    uint8_t transcript[32];
    transcript_of(c, transcript);
    struct auth_party ours, theirs;
    parties(c, &ours, &theirs);
    char why[256];
    if (peer_auth_check(t->o.auth, transcript, c->target == NULL, &theirs, env->auth, why,
                        sizeof(why)) != 0) {
        if (c->target != NULL) {
            c->target->retry_is_immediate = false; /* refused, not gone */
        }
        refuse(c, why);
        return false;
    }
    if (c->target != NULL) {
        queue_auth(c, transcript);
    }
    return hello_accepted(c);
}

/* A frame before the other end is known: its Hello, or its Auth. */
static void handshake_step(struct conn *c, const Envelope *env)
{
    if (!c->hello_seen) {
        hello_received(c, env);
    } else {
        auth_received(c, env);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* One buffer serves every connection: each read is consumed (copied
     * into the connection's frame reader) before the next alloc. */
    struct conn *c = h->data;
    buf->base = c->t->readbuf;
    buf->len = sizeof(c->t->readbuf);
}

static bool passes_pause(const Envelope *env);
static void hold(struct conn *c, const uint8_t *payload, size_t len);

/* A message to its handler. */
static void deliver(struct conn *c, const Envelope *env)
{
    struct transport *t = c->t;
    if (t->cb.on_message) {
        t->handling++;
        t->cb.on_message(t, c, env);
        t->handling--;
    }
}

/* The message just handled (or refused) is done with: unless a handler is
 * still running further up the stack, nothing points into the arena. */
static void arena_done(struct transport *t)
{
    if (t->handling == 0) {
        arena_reset(&t->arena);
    }
}

/* What is buffered in c's reader, frame by frame, as far as a pause lets
 * it: a paused replica reads nothing from peers (their frames wait in the
 * reader and the kernel, as under SIGSTOP) and holds clients' calls, but
 * takes the coordinator's fault and timing commands, status requests and
 * fail at once, so it can always be healed and watched. */
static void conn_process(struct conn *c)
{
    struct transport *t = c->t;
    while (!c->closing) {
        /* (No clock read on the hot path unless a fault is in force.) */
        bool paused = t->faults.paused_until != 0 && faults_paused(&t->faults, clock_mono_ms());
        if ((paused && c->hello_done && !c->is_client) || c->n_held >= HELD_MAX) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->read_stopped = true;
            return;
        }
        const uint8_t *payload;
        size_t len;
        enum frame_result fr = frame_reader_next(&c->reader, &payload, &len);
        if (fr == FRAME_NEED_MORE) {
            break;
        }
        if (fr == FRAME_TOO_LARGE) {
            char why[128];
            snprintf(why, sizeof(why), "frame of %zu bytes exceeds --max-frame-bytes %zu", len,
                     c->reader.max_frame);
            conn_reject(c, why);
            return;
        }
        char err[160];
        Envelope *env = wire_unpack_in(&t->arena, payload, len, err, sizeof(err));
        if (env == NULL) {
            arena_done(t);
            conn_reject(c, err);
            return;
        }
        if (!c->hello_done) {
            t->handling++;
            handshake_step(c, env);
            t->handling--;
        } else if (!c->is_client && t->faults.n > 0 &&
                   faults_cut(&t->faults, c->peer_id, clock_mono_ms())) {
            t->faults.dropped++; /* the link is cut: nothing from it either */
        } else if (c->is_client && paused && !passes_pause(env)) {
            hold(c, payload, len);
        } else {
            deliver(c, env);
        }
        arena_done(t);
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (c->closing || nread == 0) {
        return;
    }
    if (frame_reader_feed(&c->reader, buf->base, (size_t)nread) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    conn_process(c);
}

static bool delay_frame(struct conn *c, const Envelope *env, unsigned delay_ms, int64_t now);

void conn_queue(struct conn *c, const Envelope *env)
{
    if (c->closing) {
        return;
    }
    struct transport *t = c->t;
    if (c->hello_done && !c->is_client && faults_any(&t->faults)) {
        int64_t now = clock_mono_ms();
        unsigned delay_ms;
        if (faults_outbound(&t->faults, c->peer_id, now, &delay_ms) == FAULT_DROP) {
            return;
        }
        /* Once some frame waits, later ones wait behind it: a link keeps
         * its order whatever its delay does. */
        if ((delay_ms > 0 || c->delayed_head != NULL) && delay_frame(c, env, delay_ms, now)) {
            return;
        }
    }
    size_t need = replicacao__envelope__get_packed_size(env) + FRAME_HEADER_BYTES;
    struct outbuf *o = &c->out;
    if (o->len + need > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + need) {
            cap *= 2;
        }
        uint8_t *d = realloc(o->data, cap);
        if (d == NULL) {
            conn_close(c, "out of memory");
            return;
        }
        o->data = d;
        o->cap = cap;
    }
    frame_put_header(o->data + o->len, (uint32_t)(need - FRAME_HEADER_BYTES));
    replicacao__envelope__pack(env, o->data + o->len + FRAME_HEADER_BYTES);
    o->len += need;
}

struct write_req {
    uv_write_t req;
    uint8_t *data;
};

static void write_cb(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = req->handle->data;
    free(w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        conn_close(c, uv_strerror(status));
    }
}

static void conn_flush(struct conn *c)
{
    if (c->out.len == 0 || c->closing) {
        return;
    }
    uv_stream_t *st = (uv_stream_t *)&c->tcp;
    if (uv_stream_get_write_queue_size(st) > c->t->o.max_output_bytes) {
        conn_close(c, "too slow: output backlog over the limit");
        return;
    }
    size_t off = 0;
    if (uv_stream_get_write_queue_size(st) == 0) {
        /* Most writes complete at once: no write request, no epoll_ctl to
         * re-arm the watcher, and the buffer is kept for the next batch. */
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
        int n = uv_try_write(st, &b, 1);
        if (n == (int)c->out.len) {
            c->out.len = 0;
            return;
        }
        if (n > 0) {
            off = (size_t)n;
        } else if (n != UV_EAGAIN) {
            conn_close(c, uv_strerror(n));
            return;
        }
    }
    struct write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    w->data = c->out.data;
    uv_buf_t buf = uv_buf_init((char *)c->out.data + off, (unsigned)(c->out.len - off));
    memset(&c->out, 0, sizeof(c->out));
    int rc = uv_write(&w->req, st, &buf, 1, write_cb);
    if (rc < 0) {
        free(w->data);
        free(w);
        conn_close(c, uv_strerror(rc));
    }
}

void transport_flush_peers(struct transport *t)
{
    struct conn *next;
    for (struct conn *c = t->conns; c; c = next) {
        next = c->next; /* conn_flush may close (unlink) c */
        if (c->hello_done && !c->is_client) {
            conn_flush(c);
        }
    }
}

void transport_flush(struct transport *t)
{
    struct conn *next;
    for (struct conn *c = t->conns; c; c = next) {
        next = c->next; /* conn_flush may close (unlink) c */
        conn_flush(c);
    }
}

bool conn_is_client(const struct conn *c)
{
    return c->is_client;
}

bool conn_is_outbound(const struct conn *c)
{
    return c->target != NULL;
}

const char *conn_peer_id(const struct conn *c)
{
    return c->peer_id;
}

const char *conn_peer_name(const struct conn *c)
{
    return c->peer_name;
}

const char *conn_peer_address(const struct conn *c)
{
    return c->peer_address;
}

uint64_t transport_handshakes_refused(const struct transport *t)
{
    return t->auth_refused;
}

const char *conn_describe(const struct conn *c)
{
    return c->desc;
}

void *conn_get_data(const struct conn *c)
{
    return c->data;
}

void conn_set_data(struct conn *c, void *data)
{
    c->data = data;
}

static void set_dead_peer_limits(uv_tcp_t *tcp)
{
    uv_tcp_keepalive(tcp, 1, KEEPALIVE_IDLE_S);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)tcp, &fd) != 0) {
        return;
    }
    /* Best effort: a kernel without them keeps its defaults. */
    int intvl = KEEPALIVE_INTVL_S;
    int count = DEAD_PEER_MS / 1000 / KEEPALIVE_INTVL_S;
    unsigned user_timeout = DEAD_PEER_MS;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

static void conn_start(struct conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    set_dead_peer_limits(&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* ========================================================================
 * Faults: the fault lab's rules carried out (faults.h)
 * ====================================================================== */

/* Calls a paused replica still takes at once: what heals or watches it,
 * and fail (SIGKILL stops a stopped process too). */
static bool passes_pause(const Envelope *env)
{
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_SET_FAULTS:
    case REPLICACAO__ENVELOPE__BODY_SET_TIMING:
    case REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST:
    case REPLICACAO__ENVELOPE__BODY_SUBSCRIBE:
    case REPLICACAO__ENVELOPE__BODY_FAIL:
        return true;
    default:
        return false;
    }
}

static void hold(struct conn *c, const uint8_t *payload, size_t len)
{
    struct held *hd = malloc(sizeof(*hd) + len);
    if (hd == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    hd->next = NULL;
    hd->len = len;
    memcpy(hd->payload, payload, len);
    if (c->held_tail) {
        c->held_tail->next = hd;
    } else {
        c->held_head = hd;
    }
    c->held_tail = hd;
    c->n_held++;
}

/* Pack the frame into c's delay queue, due delay_ms from now (and never
 * before the frame ahead of it). False when it must go now instead: out of
 * memory. A full queue loses the frame (true: handled). */
static bool delay_frame(struct conn *c, const Envelope *env, unsigned delay_ms, int64_t now)
{
    size_t len = replicacao__envelope__get_packed_size(env);
    if (c->delayed_bytes + len > DELAY_QUEUE_MAX_BYTES) {
        c->t->faults.dropped++;
        return true;
    }
    struct delayed *d = malloc(sizeof(*d) + FRAME_HEADER_BYTES + len);
    if (d == NULL) {
        return false;
    }
    d->next = NULL;
    d->due = now + delay_ms;
    if (c->delayed_tail != NULL && c->delayed_tail->due > d->due) {
        d->due = c->delayed_tail->due;
    }
    d->len = FRAME_HEADER_BYTES + len;
    frame_put_header(d->bytes, (uint32_t)len);
    replicacao__envelope__pack(env, d->bytes + FRAME_HEADER_BYTES);
    if (c->delayed_tail) {
        c->delayed_tail->next = d;
    } else {
        c->delayed_head = d;
    }
    c->delayed_tail = d;
    c->delayed_bytes += len;
    if (!uv_is_active((uv_handle_t *)&c->t->fault_timer) ||
        uv_timer_get_due_in(&c->t->fault_timer) > delay_ms) {
        faults_arm(c->t, now);
    }
    return true;
}

/* Move c's frames that are due into its output, and write them. */
static void release_delayed(struct conn *c, int64_t now)
{
    bool any = false;
    while (c->delayed_head != NULL && c->delayed_head->due <= now && !c->closing) {
        struct delayed *d = c->delayed_head;
        struct outbuf *o = &c->out;
        if (o->len + d->len > o->cap) {
            size_t cap = o->cap ? o->cap : 4096;
            while (cap < o->len + d->len) {
                cap *= 2;
            }
            uint8_t *b = realloc(o->data, cap);
            if (b == NULL) {
                conn_close(c, "out of memory");
                return;
            }
            o->data = b;
            o->cap = cap;
        }
        memcpy(o->data + o->len, d->bytes, d->len);
        o->len += d->len;
        c->delayed_head = d->next;
        if (c->delayed_head == NULL) {
            c->delayed_tail = NULL;
        }
        c->delayed_bytes -= d->len - FRAME_HEADER_BYTES;
        free(d);
        any = true;
    }
    if (any) {
        conn_flush(c);
    }
}

/* The pause ended: every connection is read again, clients' held calls
 * are handed over in order, then whatever waited in the readers. */
static void resume_all(struct transport *t)
{
    for (struct conn *c = t->conns; c; c = c->next) {
        c->resume = true;
    }
    for (;;) {
        struct conn *c = t->conns;
        while (c != NULL && (!c->resume || c->closing)) {
            c = c->next;
        }
        if (c == NULL) {
            return;
        }
        c->resume = false;
        while (c->held_head != NULL && !c->closing) {
            struct held *hd = c->held_head;
            c->held_head = hd->next;
            if (c->held_head == NULL) {
                c->held_tail = NULL;
            }
            c->n_held--;
            char err[160];
            Envelope *env = wire_unpack_in(&t->arena, hd->payload, hd->len, err, sizeof(err));
            if (env != NULL) { /* it was unpacked once already */
                deliver(c, env);
            }
            arena_done(t);
            free(hd);
        }
        if (c->read_stopped && !c->closing) {
            c->read_stopped = false;
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
            conn_process(c);
        }
    }
}

static void fault_timer_cb(uv_timer_t *timer)
{
    struct transport *t = timer->data;
    transport_faults_changed(t);
}

/* The timer at the next thing due: a delayed frame or an expiry. */
static void faults_arm(struct transport *t, int64_t now)
{
    if (t->closing) {
        return;
    }
    int64_t next = faults_next_deadline(&t->faults);
    for (struct conn *c = t->conns; c; c = c->next) {
        if (c->delayed_head != NULL && (next == 0 || c->delayed_head->due < next)) {
            next = c->delayed_head->due;
        }
    }
    if (next == 0) {
        uv_timer_stop(&t->fault_timer);
        return;
    }
    uv_timer_start(&t->fault_timer, fault_timer_cb, next > now ? (uint64_t)(next - now) : 0, 0);
}

struct faults *transport_faults(struct transport *t)
{
    return &t->faults;
}

bool transport_paused(struct transport *t)
{
    return t->faults.paused_until != 0 && faults_paused(&t->faults, clock_mono_ms());
}

void transport_faults_changed(struct transport *t)
{
    int64_t now = clock_mono_ms();
    unsigned before = t->faults.n;
    if (faults_expire(&t->faults, now)) {
        log_info("fault lab: %u rule(s) expired; %u left%s", before - t->faults.n, t->faults.n,
                 t->was_paused && !faults_paused(&t->faults, now) ? "; pause over" : "");
    }
    struct conn *next;
    for (struct conn *c = t->conns; c; c = next) {
        next = c->next; /* release_delayed may close (unlink) c */
        release_delayed(c, now);
    }
    bool paused = faults_paused(&t->faults, now);
    if (paused != t->was_paused) {
        log_warn("fault lab: %s", paused ? "paused: not reading peers, no timers" : "resumed");
        t->was_paused = paused;
        if (!paused) {
            resume_all(t);
        }
    }
    faults_arm(t, now);
}

/* ========================================================================
 * Outbound targets
 * ====================================================================== */

static void report_gone(struct target *tg, const char *why)
{
    struct transport *t = tg->t;
    tg->retry_is_immediate = false;
    log_info("peer %s (%s) is gone: %s", tg->id, tg->addr, why);
    if (t->cb.on_peer_gone) {
        t->cb.on_peer_gone(t, tg->id);
    }
}

static void target_timer_cb(uv_timer_t *timer)
{
    struct target *tg = timer->data;
    if (tg->state == TARGET_IDLE) {
        target_connect(tg);
    } else if (tg->state == TARGET_CONNECTING && tg->retry_is_immediate && tg->id[0] != '\0' &&
               tg->conn != NULL && !tg->conn->tcp_connected) {
        report_gone(tg, "reconnection not answered");
    }
}

static void target_schedule(struct target *tg, unsigned delay_ms)
{
    tg->state = TARGET_IDLE;
    uv_timer_start(&tg->timer, target_timer_cb, delay_ms, 0);
    unsigned cap = tg->t->o.retry_max_ms;
    tg->backoff_ms = tg->backoff_ms * 2 > cap ? cap : tg->backoff_ms * 2;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing) {
        return; /* cancelled by a close: the target may be gone */
    }
    struct target *tg = c->target;
    if (status < 0) {
        if (tg->retry_is_immediate && tg->id[0] != '\0') {
            report_gone(tg, uv_strerror(status));
        }
        tg->retry_is_immediate = false;
        conn_close(c, NULL);
        return;
    }
    c->tcp_connected = true;
    conn_start(c);
    queue_hello(c);
    /* Hellos go out with the next flush, like everything else. */
}

static int parse_numeric(const char *addr, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) {
        return -1;
    }
    int port = atoi(colon + 1);
    if (addr[0] == '[') {
        memcpy(host, addr + 1, (size_t)(colon - addr) - 2);
        host[colon - addr - 2] = '\0';
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

static void target_connect(struct target *tg)
{
    struct transport *t = tg->t;
    struct sockaddr_storage ss;
    if (t->closing || parse_numeric(tg->addr, &ss) != 0) {
        return;
    }
    struct conn *c = conn_new(t);
    if (c == NULL) {
        target_schedule(tg, tg->backoff_ms);
        return;
    }
    c->target = tg;
    tg->conn = c;
    tg->state = TARGET_CONNECTING;
    set_desc(c);
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&ss, connect_cb);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc));
    }
}

static void target_free_cb(uv_handle_t *h)
{
    struct target *tg = h->data;
    struct transport *t = tg->t;
    free(tg);
    handle_closed(t);
}

/* Drop a target (already unlinked from the list), closing its connection
 * for `why`; `gone`: the replica behind it counts as gone, unless another
 * of its addresses reaches it. */
static void target_remove(struct target *tg, const char *why, bool gone)
{
    if (tg->conn) {
        tg->state = TARGET_SELF; /* no reconnect from conn_close */
        conn_close(tg->conn, why);
    }
    if (gone && tg->id[0] != '\0' && target_with_id(tg->t, tg->id, tg) == NULL) {
        report_gone(tg, why);
    }
    uv_close((uv_handle_t *)&tg->timer, target_free_cb);
}

static struct target *target_add(struct transport *t, const char *addr)
{
    struct target *tg = calloc(1, sizeof(*tg));
    if (tg == NULL || strlen(addr) >= sizeof(tg->addr)) {
        free(tg);
        return NULL;
    }
    tg->t = t;
    strcpy(tg->addr, addr);
    tg->backoff_ms = RETRY_MIN_MS;
    uv_timer_init(t->loop, &tg->timer);
    t->open_handles++;
    tg->timer.data = tg;
    tg->next = t->targets;
    t->targets = tg;
    log_debug("discovered %s", tg->addr);
    target_connect(tg);
    return tg;
}

void transport_set_targets(struct transport *t, const char *const *addrs, size_t n)
{
    for (struct target *tg = t->targets; tg; tg = tg->next) {
        tg->missing += !tg->learned;
    }
    for (size_t i = 0; i < n; i++) {
        struct target *tg;
        for (tg = t->targets; tg && strcmp(tg->addr, addrs[i]) != 0; tg = tg->next) {
        }
        if (tg != NULL) {
            tg->missing = 0;
            continue;
        }
        target_add(t, addrs[i]);
    }
    struct target **pp = &t->targets;
    while (*pp) {
        struct target *tg = *pp;
        if (tg->missing >= MISSING_PASSES) {
            *pp = tg->next;
            log_info("forgetting %s: no longer resolves", tg->addr);
            /* Discovery dropped a replica we knew: a machine that vanished
             * closes nothing, and we may never have seen its connection
             * fail. */
            target_remove(tg, "address no longer resolves", true);
        } else {
            pp = &tg->next;
        }
    }
}

void transport_each_conn(struct transport *t, void (*fn)(struct conn *c, void *arg), void *arg)
{
    struct conn *next;
    for (struct conn *c = t->conns; c; c = next) {
        next = c->next;
        if (c->hello_done && !c->closing) {
            fn(c, arg);
        }
    }
}

void transport_set_cluster_id(struct transport *t, const char *cluster_id)
{
    snprintf(t->cluster_id, sizeof(t->cluster_id), "%s", cluster_id);
}

bool transport_peer_listed(struct transport *t, const char *id)
{
    for (struct target *tg = t->targets; tg; tg = tg->next) {
        if (tg->state != TARGET_FOREIGN && strcmp(tg->id, id) == 0) {
            return true;
        }
    }
    return false;
}

void transport_forget_peer(struct transport *t, const char *id)
{
    struct target **pp = &t->targets;
    while (*pp) {
        struct target *tg = *pp;
        if (tg->learned && strcmp(tg->id, id) == 0) {
            *pp = tg->next;
            log_info("forgetting %s (%s): no longer a member", tg->id, tg->addr);
            target_remove(tg, "no longer a member", false);
        } else {
            pp = &tg->next;
        }
    }
}

struct conn *transport_peer(struct transport *t, const char *id)
{
    struct target *tg = target_with_id(t, id, NULL);
    return tg ? tg->conn : NULL;
}

bool transport_peer_info(struct transport *t, const char *id, const char **address,
                         const char **name)
{
    for (struct conn *c = t->conns; c; c = c->next) {
        if (c->hello_done && !c->is_client && strcmp(c->peer_id, id) == 0) {
            *address = c->peer_address;
            *name = c->peer_name;
            return true;
        }
    }
    return false;
}

/* ========================================================================
 * Listener
 * ====================================================================== */

static void accept_cb(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    struct conn *c = conn_new(t);
    if (c == NULL) {
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[64];
        uv_ip_name((struct sockaddr *)&ss, ip, sizeof(ip));
        snprintf(c->peer_address, sizeof(c->peer_address), "%s", ip);
    }
    set_desc(c);
    conn_start(c);
}

int transport_listen(struct transport *t, const char *hostport, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (parse_numeric(hostport, &ss) != 0) {
        snprintf(err, errlen, "listen address '%s' must be numeric ip:port", hostport);
        return UV_EINVAL;
    }
    uv_tcp_init(t->loop, &t->listener);
    t->open_handles++;
    t->listener.data = t;
    t->listening = true;
    int rc = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&t->listener, 128, accept_cb);
    }
    if (rc < 0) {
        snprintf(err, errlen, "listen on %s: %s", hostport, uv_strerror(rc));
    }
    return rc;
}

/* ========================================================================
 * Life cycle
 * ====================================================================== */

/* Connections whose TCP is up but whose handshake has not finished in
 * time: closed. One that dialled us and said nothing is refused (counted);
 * one we dialled whose process does not answer (stopped, hung) is simply
 * closed and retried with its backoff, as any unreachable peer. */
static void handshake_timer_cb(uv_timer_t *timer)
{
    struct transport *t = timer->data;
    int64_t now = clock_mono_ms();
    struct conn *next;
    for (struct conn *c = t->conns; c; c = next) {
        next = c->next;
        if (c->hello_done || now - c->opened_ms <= HANDSHAKE_TIMEOUT_MS) {
            continue;
        }
        if (c->target == NULL) {
            refuse(c, "no handshake within 10 s");
        } else if (c->tcp_connected) {
            conn_close(c, "no answer to our hello within 10 s");
        }
    }
}

struct transport *transport_new(uv_loop_t *loop, const struct transport_options *o,
                                const struct transport_callbacks *cb)
{
    struct transport *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->loop = loop;
    t->o = *o;
    snprintf(t->self_id, sizeof(t->self_id), "%s", o->self_id);
    snprintf(t->name, sizeof(t->name), "%s", o->name);
    snprintf(t->advertise, sizeof(t->advertise), "%s", o->advertise);
    if (t->o.max_frame_bytes == 0) {
        t->o.max_frame_bytes = FRAME_DEFAULT_MAX;
    }
    if (t->o.retry_max_ms == 0) {
        t->o.retry_max_ms = RETRY_MAX_MS;
    }
    if (t->o.max_output_bytes == 0) {
        t->o.max_output_bytes = 256u << 20;
    }
    t->cb = *cb;
    faults_init(&t->faults, (uint64_t)clock_wall_ms() ^ (uint64_t)(uintptr_t)t);
    uv_timer_init(loop, &t->fault_timer);
    t->fault_timer.data = t;
    t->open_handles++;
    uv_timer_init(loop, &t->handshake_timer);
    t->handshake_timer.data = t;
    t->open_handles++;
    uv_timer_start(&t->handshake_timer, handshake_timer_cb, HANDSHAKE_TIMEOUT_MS / 4,
                   HANDSHAKE_TIMEOUT_MS / 4);
    uv_unref((uv_handle_t *)&t->handshake_timer); /* never keeps the loop alive alone */
    return t;
}

static void listener_closed_cb(uv_handle_t *h)
{
    handle_closed(h->data);
}

void transport_close(struct transport *t, void (*done)(struct transport *t))
{
    t->closing = true;
    t->closed_cb = done;
    t->open_handles++; /* held until every close below is issued */
    if (t->listening) {
        uv_close((uv_handle_t *)&t->listener, listener_closed_cb);
    }
    uv_close((uv_handle_t *)&t->fault_timer, listener_closed_cb);
    uv_close((uv_handle_t *)&t->handshake_timer, listener_closed_cb);
    while (t->conns) {
        conn_close(t->conns, NULL);
    }
    struct target *tg = t->targets;
    t->targets = NULL;
    while (tg) {
        struct target *next = tg->next;
        uv_close((uv_handle_t *)&tg->timer, target_free_cb);
        tg = next;
    }
    handle_closed(t);
}

void transport_free(struct transport *t)
{
    arena_free(&t->arena);
    free(t);
}

void *transport_data(struct transport *t)
{
    return t->cb.data;
}
