/*
 * coordinator/cluster.c — see cluster.h.
 *
 * Sections: jobs (the thread boundary), replicas (connections, status,
 * events, the one notion of primary), request forwarding, reads and
 * failure injection, publishing (the view and events), the loop thread.
 */
#include "cluster.h"
#include "clock.h"
#include "discovery.h"
#include "logging.h"
#include "metrics.h"
#include "supervisor.h"
#include "transport.h"
#include "validate.h"
#include "view.h"
#include "vocab.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define MAX_REPLICAS            64
#define ATTEMPT_MS              3000 /* one try at the primary before retrying */
#define RETRY_PAUSE_MS          25   /* between tries while no primary answers */
#define COMMIT_COALESCE_MS      50   /* committed events are merged over this window */
#define SNAPSHOT_EVERY_MS       100  /* browsers get at most 10 snapshots a second */
#define FAILOVER_EVENT_GRACE_MS 1000
#define SELF_ID                 "coordinator"

/* ========================================================================
 * Jobs: the thread boundary
 * ====================================================================== */

enum job_type {
    JOB_REQUEST,
    JOB_READ,
    JOB_REPLICA,
    JOB_FAIL,
    JOB_CALL, /* run a function on the loop thread (cluster_call) */
};

enum request_phase {
    PHASE_FAIL_PRIMARY, /* fault request: fail the primary first */
    PHASE_AWAIT_NEW,    /* ... and wait for another one to be elected */
    PHASE_SEND,         /* pick the primary and send */
    PHASE_WAITING,      /* sent; waiting for the reply */
};

struct job {
    enum job_type type;
    struct cluster *c;
    /* Parameters, owned by the job. */
    char *data;
    size_t len;
    char client_id[LIMIT_CLIENT_ID_BYTES];
    bool fault;
    char replica[LIMIT_ID_BYTES]; /* JOB_REPLICA, JOB_FAIL ("" = primary) */
    uint64_t after;
    uint32_t limit;
    int64_t started;  /* monotonic ms: when the HTTP request arrived */
    int64_t deadline; /* monotonic ms */
    bool sent_once;
    /* Answered through a callback on the loop thread (the front door)
     * instead of to a waiting worker. */
    cluster_done_fn done_fn;
    void *done_arg;
    int (*call_fn)(struct cluster *c, void *arg); /* JOB_CALL */
    void *call_arg;

    /* Loop-thread state. */
    uv_timer_t timer; /* armed for the job's next deadline */
    bool finished;    /* answered; the timer is closing */
    enum request_phase phase;
    char target[LIMIT_ID_BYTES]; /* replica the request went to */
    uint64_t target_epoch;       /* the epoch it was primary in when sent */
    char hint[LIMIT_ID_BYTES];   /* "not primary, try X" */
    char failed[LIMIT_ID_BYTES]; /* fault request: who was failed */
    uint64_t failed_epoch;
    int errors; /* Error replies in a row */
    int64_t next_try;
    int64_t attempt_deadline;
    uint64_t call_id;
    int reads_outstanding;
    cJSON *partial; /* JOB_REPLICA: built up as reads return */
    struct job *next_active;

    /* Completion, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    bool done;
    int refs; /* the waiting worker and the loop thread */
    struct cluster_reply reply;
    struct job *next_queued;
};

/* What the coordinator knows of one replica: the typed content of its last
 * status reply, corrected at once by its events. */
struct replica {
    char id[LIMIT_ID_BYTES];
    char name[LIMIT_NAME_BYTES];
    char address[LIMIT_NAME_BYTES];
    struct conn *conn; /* NULL while unreachable */
    bool failed;       /* failed on purpose or exited 75; cleared when back */
    enum role role;    /* from the status, updated at once by events */
    uint64_t epoch;
    uint64_t incarnation; /* bumped at every (re)connection */
    bool has_status;
    uint64_t last_index;
    uint64_t commit_index;
    uint64_t processed;
    uint64_t synced;
    int64_t heartbeat_age_ms;
    int64_t uptime_ms;
    bool voter;
    char believes_primary[LIMIT_ID_BYTES];
    size_t n_peers;
    struct view_peer *peers; /* n_peers, malloc'ed */
    int64_t status_at;
    bool status_pending;
    int64_t down_since;
};

struct cluster {
    struct cluster_options o;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_timer_t poll_timer;
    uv_timer_t commit_timer;
    uv_timer_t snapshot_timer; /* paces snapshots to the WebSocket */
    uv_timer_t kick_timer;     /* steps waiting requests after the primary changed */
    uv_prepare_t flush_prep;   /* what the iteration queued leaves before the loop blocks */
    int64_t snapshot_published;
    struct transport *t;
    struct discovery *disc;
    struct supervisor *sup;
    bool shutdown_begun;            /* loop thread only */
    void (*shutdown_fn)(void *arg); /* loop thread only: cluster_on_shutdown */
    void *shutdown_arg;

    struct replica replicas[MAX_REPLICAS];
    unsigned n_replicas;
    uint64_t next_call_id;
    struct job *active; /* jobs the loop is working on */
    uint64_t next_incarnation;

    /* Failover timing: from the primary's loss to the first election of a
     * higher epoch. A status can show the new primary before its elected
     * event arrives (a replica answers a status as it reads it, and reports
     * events after): the event still gets its figure if it comes within
     * FAILOVER_EVENT_GRACE_MS of that status; if it never comes (we were
     * not connected when it happened), the clock is dropped then: no
     * figure beats a wrong one. */
    int64_t failover_start;
    uint64_t failover_epoch;
    char failover_from[LIMIT_ID_BYTES];
    int64_t failover_stale_at; /* 0, or when the clock is dropped */

    /* The newest committed event not yet published. */
    cJSON *pending_commit;

    pthread_mutex_t mu; /* guards queue, stopping */
    struct job *queue;
    bool stopping; /* set by cluster_stop */

    pthread_mutex_t view_mu; /* guards view (the pointer; a view never changes) */
    struct view *view;
};

static void commit_timer_cb(uv_timer_t *timer);
static void begin_shutdown(struct cluster *c);
static void job_arm(struct cluster *c, struct job *j, int64_t now);

static void job_release(struct job *j)
{
    pthread_mutex_lock(&j->mu);
    int refs = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (refs > 0) {
        return;
    }
    free(j->data);
    free(j->reply.body);
    cJSON_Delete(j->partial);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static struct job *job_new(struct cluster *c, enum job_type type, int64_t started,
                           unsigned timeout_ms)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->type = type;
    j->c = c;
    j->refs = 2;
    j->started = started;
    j->deadline = started + timeout_ms;
    pthread_mutex_init(&j->mu, NULL);
    /* The worker waits against a monotonic deadline: so does the wait. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    return j;
}

char *cluster_error_json(const char *code, const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "code", code);
    cJSON_AddStringToObject(err, "message", message);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void set_error(struct cluster_reply *r, int status, const char *code, const char *msg)
{
    free(r->body);
    r->status = status;
    r->body = cluster_error_json(code, msg);
}

static void job_timer_closed(uv_handle_t *h)
{
    job_release(h->data); /* the loop thread's reference */
}

/* Loop thread: hand the result to the waiting worker, or to the job's
 * callback. Takes `body`. */
static void job_finish(struct cluster *c, struct job *j, int status, char *body)
{
    if (j->finished) {
        free(body);
        return;
    }
    j->finished = true;
    struct job **pp = &c->active;
    while (*pp && *pp != j) {
        pp = &(*pp)->next_active;
    }
    if (*pp) {
        *pp = j->next_active;
    }
    /* The loop thread's reference goes when the timer is closed: the job
     * stays valid through the delivery below. */
    uv_close((uv_handle_t *)&j->timer, job_timer_closed);
    if (j->done_fn != NULL) {
        struct cluster_reply r = {.status = status, .body = body};
        j->done_fn(j->done_arg, &r);
        free(r.body);
        return;
    }
    pthread_mutex_lock(&j->mu);
    j->reply.status = status;
    j->reply.body = body;
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_finish_json(struct cluster *c, struct job *j, int status, cJSON *body)
{
    char *s = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    job_finish(c, j, status, s);
}

/* Worker thread: queue the job, wake the loop, wait for the result. */
static void job_run(struct cluster *c, struct job *j, struct cluster_reply *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->mu);
    bool stopping = c->stopping;
    if (!stopping) {
        j->next_queued = c->queue;
        c->queue = j;
    }
    pthread_mutex_unlock(&c->mu);
    if (stopping) {
        set_error(out, 503, "shutting_down", "the coordinator is shutting down");
        j->refs = 1; /* never reached the loop thread */
        job_release(j);
        return;
    }
    uv_async_send(&c->wake);

    /* Wait a little past the job's own deadline: the loop thread answers
     * 503/504 itself at the deadline, and this is only the backstop. Both
     * are on the monotonic clock (the condition variable's). */
    int64_t until_ms = j->deadline + 1000;
    struct timespec until = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000};
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until) != 0) {
            break;
        }
    }
    if (j->done) {
        *out = j->reply;
        j->reply.body = NULL;
    } else {
        set_error(out, 504, "timeout",
                  "no answer from the cluster in time; retry with the same id");
    }
    pthread_mutex_unlock(&j->mu);
    job_release(j);
}

void cluster_request(struct cluster *c, const char *data, size_t len, const char *client_id,
                     bool fault, unsigned timeout_ms, struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_REQUEST, clock_mono_ms(), timeout_ms);
    if (j == NULL || (j->data = malloc(len + 1)) == NULL) {
        free(j);
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    memcpy(j->data, data, len);
    j->data[len] = '\0';
    j->len = len;
    snprintf(j->client_id, sizeof(j->client_id), "%s", client_id);
    j->fault = fault;
    job_run(c, j, out);
}

static void job_start(struct cluster *c, struct job *j);

void cluster_request_async(struct cluster *c, const char *data, size_t len, const char *client_id,
                           bool fault, unsigned timeout_ms, cluster_done_fn done, void *arg)
{
    struct job *j = job_new(c, JOB_REQUEST, clock_mono_ms(), timeout_ms);
    if (j == NULL || (j->data = malloc(len + 1)) == NULL) {
        free(j);
        struct cluster_reply r = {.status = 503,
                                  .body = cluster_error_json("unavailable", "out of memory")};
        done(arg, &r);
        free(r.body);
        return;
    }
    memcpy(j->data, data, len);
    j->data[len] = '\0';
    j->len = len;
    snprintf(j->client_id, sizeof(j->client_id), "%s", client_id);
    j->fault = fault;
    j->refs = 1; /* the loop thread's only: nobody waits */
    j->done_fn = done;
    j->done_arg = arg;
    job_start(c, j);
}

int cluster_call(struct cluster *c, int (*fn)(struct cluster *c, void *arg), void *arg)
{
    struct job *j = job_new(c, JOB_CALL, clock_mono_ms(), 10000);
    if (j == NULL) {
        return -1;
    }
    j->call_fn = fn;
    j->call_arg = arg;
    struct cluster_reply out;
    job_run(c, j, &out);
    int rc = out.body != NULL ? -1 : out.status;
    free(out.body);
    return rc;
}

struct uv_loop_s *cluster_loop(struct cluster *c)
{
    return &c->loop;
}

void cluster_on_shutdown(struct cluster *c, void (*fn)(void *arg), void *arg)
{
    c->shutdown_fn = fn;
    c->shutdown_arg = arg;
}

void cluster_read(struct cluster *c, uint64_t after, uint32_t limit, unsigned timeout_ms,
                  struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_READ, clock_mono_ms(), timeout_ms);
    if (j == NULL) {
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    j->after = after;
    j->limit = limit;
    job_run(c, j, out);
}

void cluster_replica(struct cluster *c, const char *id, uint64_t after, uint32_t limit,
                     unsigned timeout_ms, struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_REPLICA, clock_mono_ms(), timeout_ms);
    if (j == NULL) {
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(j->replica, sizeof(j->replica), "%s", id);
    j->after = after;
    j->limit = limit;
    job_run(c, j, out);
}

void cluster_fail(struct cluster *c, const char *id, unsigned timeout_ms, struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_FAIL, clock_mono_ms(), timeout_ms);
    if (j == NULL) {
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(j->replica, sizeof(j->replica), "%s", id ? id : "");
    job_run(c, j, out);
}

/* ========================================================================
 * Replicas
 * ====================================================================== */

static struct replica *replica_find(struct cluster *c, const char *id)
{
    for (unsigned i = 0; i < c->n_replicas; i++) {
        if (strcmp(c->replicas[i].id, id) == 0) {
            return &c->replicas[i];
        }
    }
    return NULL;
}

static struct replica *replica_get(struct cluster *c, const char *id)
{
    struct replica *r = replica_find(c, id);
    if (r == NULL && c->n_replicas < MAX_REPLICAS && id[0] != '\0') {
        r = &c->replicas[c->n_replicas++];
        memset(r, 0, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", id);
        r->role = ROLE_BACKUP;
        r->heartbeat_age_ms = -1;
    }
    return r;
}

/* The primary: a reachable replica, not failed, that says it is primary, in
 * the highest epoch among those that say so. The one answer to "who is
 * primary" for the view, request forwarding, fault requests and failover
 * timing alike. */
static struct replica *primary(struct cluster *c)
{
    struct replica *best = NULL;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        struct replica *r = &c->replicas[i];
        if (r->conn && !r->failed && r->role == ROLE_PRIMARY &&
            (best == NULL || r->epoch > best->epoch)) {
            best = r;
        }
    }
    return best;
}

static void publish_event(struct cluster *c, cJSON *ev);
static void mark_changed(struct cluster *c);

static cJSON *event_new(const char *type, const char *replica, const char *subject, uint64_t epoch,
                        uint64_t index, const char *detail)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddStringToObject(ev, "replica", replica ? replica : "");
    cJSON_AddStringToObject(ev, "subject", subject ? subject : "");
    cJSON_AddNumberToObject(ev, "epoch", (double)epoch);
    cJSON_AddNumberToObject(ev, "index", (double)index);
    cJSON_AddNumberToObject(ev, "time_ms", (double)clock_wall_ms());
    cJSON_AddStringToObject(ev, "detail", detail ? detail : "");
    return ev;
}

/* Is the failover clock running (and not past its grace)? */
static bool failover_running(struct cluster *c, int64_t now)
{
    if (c->failover_start != 0 && c->failover_stale_at != 0 && now >= c->failover_stale_at) {
        c->failover_start = 0;
        c->failover_stale_at = 0;
    }
    return c->failover_start != 0;
}

/* r is going away (its connection closed, or it is being failed): when it
 * is the primary, start the failover clock (once). Called while r still
 * counts, so primary() can say whether it was the one. */
static void failover_begin(struct cluster *c, struct replica *r)
{
    int64_t now = clock_mono_ms();
    if (!failover_running(c, now) && primary(c) == r) {
        c->failover_start = now;
        c->failover_stale_at = 0;
        c->failover_epoch = r->epoch;
        snprintf(c->failover_from, sizeof(c->failover_from), "%s", r->id);
        log_debug("failover clock started: %s (epoch %llu) is gone", r->id,
                  (unsigned long long)c->failover_epoch);
    }
}

static void request_status(struct replica *r)
{
    if (r->conn == NULL || r->status_pending) {
        return;
    }
    Envelope env;
    Replicacao__StatusRequest req = REPLICACAO__STATUS_REQUEST__INIT;
    wire_init(&env, SELF_ID, 0);
    req.call_id = 0; /* status replies are matched by replica, not call */
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST;
    env.status_request = &req;
    conn_queue(r->conn, &env);
    r->status_pending = true;
}

static void poll_cb(uv_timer_t *timer)
{
    struct cluster *c = timer->data;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        request_status(&c->replicas[i]);
    }
    transport_flush(c->t);
}

static void on_hello(struct transport *t, struct conn *conn, const Envelope *hello)
{
    struct cluster *c = transport_data(t);
    if (conn_is_client(conn)) {
        return;
    }
    struct replica *r = replica_get(c, hello->from);
    if (r == NULL) {
        conn_close(conn, "too many replicas");
        return;
    }
    bool was_gone = r->conn == NULL && (r->down_since != 0 || r->failed);
    r->conn = conn;
    r->failed = false;
    r->down_since = 0;
    r->status_pending = false;
    r->incarnation = ++c->next_incarnation;
    snprintf(r->name, sizeof(r->name), "%s", hello->hello->name[0] ? hello->hello->name : r->id);
    snprintf(r->address, sizeof(r->address), "%s", hello->hello->address);
    conn_set_data(conn, r);
    Envelope env;
    Replicacao__Subscribe sub = REPLICACAO__SUBSCRIBE__INIT;
    wire_init(&env, SELF_ID, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &sub;
    conn_queue(conn, &env);
    request_status(r);
    log_info("replica %s (%s) connected", r->id, r->address);
    publish_event(c, event_new(was_gone ? "up" : "joined_view", r->id, r->id, 0, 0,
                               was_gone ? "reachable again" : "discovered"));
    mark_changed(c);
}

static void job_conn_lost(struct cluster *c, const char *id);

static void on_closed(struct transport *t, struct conn *conn)
{
    struct cluster *c = transport_data(t);
    struct replica *r = conn_get_data(conn);
    if (r == NULL || r->conn != conn) {
        return;
    }
    failover_begin(c, r);
    r->conn = NULL;
    r->status_pending = false;
    r->down_since = clock_mono_ms();
    if (!c->shutdown_begun && !r->failed) { /* a failed one was announced already */
        publish_event(c, event_new("down", r->id, r->id, r->epoch, 0, "connection closed"));
    }
    job_conn_lost(c, r->id);
    mark_changed(c);
}

/* Apply what an event tells about roles at once, before the next poll. */
static void apply_event(struct cluster *c, struct replica *r, const Replicacao__Event *e)
{
    if (e->epoch > r->epoch) {
        r->epoch = e->epoch;
    }
    switch (event_parse(e->type)) {
    case EVENT_ELECTED:
        r->role = ROLE_PRIMARY;
        for (unsigned i = 0; i < c->n_replicas; i++) {
            struct replica *o = &c->replicas[i];
            if (o != r && o->role == ROLE_PRIMARY && o->epoch < e->epoch) {
                o->role = ROLE_BACKUP;
            }
        }
        break;
    case EVENT_STEPPED_DOWN:
        r->role = ROLE_BACKUP;
        break;
    case EVENT_ELECTION_STARTED:
        r->role = ROLE_CANDIDATE;
        break;
    default:
        break;
    }
}

static void handle_event(struct cluster *c, struct replica *r, const Replicacao__Event *e)
{
    int type = event_parse(e->type);
    if (type == EVENT_COMMITTED) {
        /* Coalesced: a busy primary commits thousands of times a second. */
        cJSON_Delete(c->pending_commit);
        c->pending_commit =
            event_new(e->type, e->replica, e->subject, e->epoch, e->index, e->detail);
        if (!uv_is_active((uv_handle_t *)&c->commit_timer)) {
            uv_timer_start(&c->commit_timer, commit_timer_cb, 0, 0);
        }
        return;
    }
    cJSON *ev = event_new(e->type, e->replica, e->subject, e->epoch, e->index, e->detail);
    int64_t now = clock_mono_ms();
    if (type == EVENT_ELECTED && failover_running(c, now) && e->epoch > c->failover_epoch) {
        int64_t ms = now - c->failover_start;
        cJSON_AddNumberToObject(ev, "failover_ms", (double)ms);
        cJSON_AddStringToObject(ev, "previous_primary", c->failover_from);
        metrics_failover(c->o.metrics, ms / 1000.0);
        log_info("failover %s -> %s in %lld ms", c->failover_from, e->replica, (long long)ms);
        c->failover_start = 0;
        c->failover_stale_at = 0;
    }
    apply_event(c, r, e);
    publish_event(c, ev);
    for (unsigned i = 0; i < c->n_replicas; i++) {
        request_status(&c->replicas[i]);
    }
    mark_changed(c);
}

/* Keep the typed content of a status reply (the envelope is the
 * transport's, freed after the callback). */
static void store_status(struct replica *r, const Replicacao__Status *s)
{
    struct view_peer *peers = NULL;
    if (s->n_peers > 0) {
        peers = calloc(s->n_peers, sizeof(*peers));
        if (peers == NULL) {
            return; /* keep the previous status */
        }
    }
    for (size_t i = 0; i < s->n_peers; i++) {
        const Replicacao__PeerStatus *p = s->peers[i];
        snprintf(peers[i].id, sizeof(peers[i].id), "%s", p->id);
        snprintf(peers[i].address, sizeof(peers[i].address), "%s", p->address);
        peers[i].voter = p->voter;
        peers[i].connected = p->connected;
        peers[i].match_index = p->match_index;
        peers[i].last_seen_ms = p->last_seen_ms;
    }
    free(r->peers);
    r->peers = peers;
    r->n_peers = s->n_peers;
    r->has_status = true;
    r->last_index = s->last_index;
    r->commit_index = s->commit_index;
    r->processed = s->processed;
    r->synced = s->synced;
    r->heartbeat_age_ms = s->heartbeat_age_ms;
    r->uptime_ms = s->uptime_ms;
    r->voter = s->voter;
    snprintf(r->believes_primary, sizeof(r->believes_primary), "%s", s->primary);
    int role = role_parse(s->role);
    r->role = role < 0 ? ROLE_BACKUP : (enum role)role;
    r->epoch = s->epoch;
}

static void handle_reply(struct cluster *c, struct replica *r, const Envelope *env);
static void route_error(struct cluster *c, struct replica *r, const Replicacao__Error *e);

static void on_message(struct transport *t, struct conn *conn, const Envelope *env)
{
    struct cluster *c = transport_data(t);
    struct replica *r = conn_get_data(conn);
    if (r == NULL) {
        return;
    }
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_STATUS:
        store_status(r, env->status);
        r->status_at = clock_mono_ms();
        r->status_pending = false;
        if (r->role == ROLE_PRIMARY && failover_running(c, r->status_at) &&
            r->epoch > c->failover_epoch && c->failover_stale_at == 0) {
            /* Elected: its event should be on its way. */
            c->failover_stale_at = r->status_at + FAILOVER_EVENT_GRACE_MS;
        }
        mark_changed(c);
        break;
    case REPLICACAO__ENVELOPE__BODY_EVENT:
        handle_event(c, r, env->event);
        break;
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY:
    case REPLICACAO__ENVELOPE__BODY_READ_REPLY:
        handle_reply(c, r, env);
        break;
    case REPLICACAO__ENVELOPE__BODY_ERROR:
        route_error(c, r, env->error);
        break;
    default:
        break;
    }
}

/* ========================================================================
 * Request forwarding
 * ====================================================================== */

/* A client request as its events and answers show it. */
struct req {
    const char *client_id;
    const char *data;
    size_t len;
    bool fault;
    const char *failed; /* fault request: who was failed */
};

static struct req job_req(const struct job *j)
{
    return (struct req){j->client_id, j->data, j->len, j->fault, j->failed};
}

static bool listening(struct cluster *c)
{
    return c->o.publish != NULL && (c->o.listening == NULL || c->o.listening(c->o.publish_arg));
}

/* request_sent, request_committed or request_failed. */
static void request_event(struct cluster *c, const struct req *q, enum event_type type,
                          uint64_t index, uint64_t epoch, const char *primary, const char *detail)
{
    if (!listening(c)) {
        return; /* nobody would see it: do not build it */
    }
    cJSON *ev = event_new(event_name(type), primary, primary, epoch, index, detail);
    cJSON *req = cJSON_AddObjectToObject(ev, "request");
    cJSON_AddStringToObject(req, "id", q->client_id);
    char *data = strndup(q->data, q->len);
    cJSON_AddStringToObject(req, "data", data ? data : "");
    free(data);
    cJSON_AddBoolToObject(req, "fault", q->fault);
    if (index) {
        cJSON_AddNumberToObject(req, "index", (double)index);
        cJSON_AddNumberToObject(req, "epoch", (double)epoch);
        cJSON_AddStringToObject(req, "primary", primary);
    }
    publish_event(c, ev);
}

/* The answer to a request the primary settled (committed, rejected, id
 * conflict), with its event. false for the replies that only say "try
 * again" (not primary, unknown), which produce nothing. */
static bool request_settled(struct cluster *c, const struct req *q,
                            const Replicacao__ClientReply *rep, int *status, char **body)
{
    switch (rep->status) {
    case REPLICACAO__CLIENT_REPLY__STATUS__OK: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", (double)rep->index);
        cJSON_AddNumberToObject(o, "epoch", (double)rep->epoch);
        cJSON_AddStringToObject(o, "primary", rep->primary);
        cJSON_AddStringToObject(o, "id", q->client_id);
        char *data = strndup(q->data, q->len);
        cJSON_AddStringToObject(o, "data", data ? data : "");
        free(data);
        if (q->fault) {
            cJSON_AddStringToObject(o, "failed", q->failed);
        }
        request_event(c, q, EVENT_REQUEST_COMMITTED, rep->index, rep->epoch, rep->primary, "");
        *status = 201;
        *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return true;
    }
    case REPLICACAO__CLIENT_REPLY__STATUS__REJECTED:
        request_event(c, q, EVENT_REQUEST_FAILED, 0, 0, "", rep->message);
        *status = 400;
        *body = cluster_error_json("rejected", rep->message);
        return true;
    case REPLICACAO__CLIENT_REPLY__STATUS__CONFLICT: {
        request_event(c, q, EVENT_REQUEST_FAILED, 0, 0, "", rep->message);
        cJSON *o = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", "id_conflict");
        cJSON_AddStringToObject(err, "message", rep->message);
        cJSON_AddNumberToObject(err, "index", (double)rep->index);
        *status = 409;
        *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return true;
    }
    default:
        return false;
    }
}

static void request_done(struct cluster *c, struct job *j, int status, char *body)
{
    metrics_request(c->o.metrics, status, (clock_mono_ms() - j->started) / 1000.0);
    job_finish(c, j, status, body);
}

static void send_fail(struct cluster *c, struct replica *r, const char *why)
{
    Envelope env;
    Replicacao__Fail f = REPLICACAO__FAIL__INIT;
    wire_init(&env, SELF_ID, 0);
    f.reason = (char *)why;
    env.body_case = REPLICACAO__ENVELOPE__BODY_FAIL;
    env.fail = &f;
    conn_queue(r->conn, &env);
    failover_begin(c, r);
    r->failed = true;
    publish_event(c, event_new("failed", r->id, r->id, r->epoch, 0, why));
    mark_changed(c);
}

/* Loop thread: move a request job on as far as it goes now. Its timer is
 * re-armed by the caller (job_arm) for whatever it waits for next. */
static void request_step(struct cluster *c, struct job *j, int64_t now)
{
    if (j->finished) {
        return;
    }
    struct req q = job_req(j);
    if (now >= j->deadline) {
        if (j->sent_once) {
            request_event(c, &q, EVENT_REQUEST_FAILED, 0, 0, "", "outcome unknown");
            request_done(c, j, 504,
                         cluster_error_json("outcome_unknown",
                                            "the request was sent but not confirmed in time; "
                                            "retry with the same id"));
        } else {
            request_event(c, &q, EVENT_REQUEST_FAILED, 0, 0, "", "no primary");
            request_done(c, j, 503,
                         cluster_error_json("no_primary", "no primary appeared in time"));
        }
        return;
    }
    if (j->phase != PHASE_WAITING && now < j->next_try) {
        return;
    }
    switch (j->phase) {
    case PHASE_FAIL_PRIMARY: {
        struct replica *p = primary(c);
        if (p == NULL) {
            j->next_try = now + RETRY_PAUSE_MS;
            return;
        }
        snprintf(j->failed, sizeof(j->failed), "%s", p->id);
        j->failed_epoch = p->epoch;
        send_fail(c, p, "fault request");
        j->phase = PHASE_AWAIT_NEW;
        j->next_try = now + RETRY_PAUSE_MS; /* or at once when the view changes */
        return;
    }
    case PHASE_AWAIT_NEW: {
        struct replica *p = primary(c);
        if (p == NULL || strcmp(p->id, j->failed) == 0 || p->epoch <= j->failed_epoch) {
            j->next_try = now + RETRY_PAUSE_MS;
            return;
        }
        j->phase = PHASE_SEND;
    }
        /* fall through */
    case PHASE_SEND: {
        struct replica *p = NULL;
        if (j->hint[0] != '\0') {
            p = replica_find(c, j->hint);
            j->hint[0] = '\0';
        }
        if (p == NULL || p->conn == NULL || p->failed) {
            p = primary(c);
        }
        if (p == NULL) {
            j->next_try = now + RETRY_PAUSE_MS;
            return;
        }
        Envelope env;
        Replicacao__ClientRequest req = REPLICACAO__CLIENT_REQUEST__INIT;
        wire_init(&env, SELF_ID, 0);
        j->call_id = ++c->next_call_id;
        req.call_id = j->call_id;
        req.client_id = j->client_id;
        req.data.data = (uint8_t *)j->data;
        req.data.len = j->len;
        env.body_case = REPLICACAO__ENVELOPE__BODY_CLIENT_REQUEST;
        env.client_request = &req;
        conn_queue(p->conn, &env);
        snprintf(j->target, sizeof(j->target), "%s", p->id);
        j->target_epoch = p->epoch;
        if (!j->sent_once) {
            request_event(c, &q, EVENT_REQUEST_SENT, 0, p->epoch, p->id, "");
        }
        j->sent_once = true;
        j->phase = PHASE_WAITING;
        j->attempt_deadline = now + ATTEMPT_MS;
        return;
    }
    case PHASE_WAITING: {
        /* Same id, so resending is always safe: do it when the attempt
         * times out, or at once when a newer primary has been elected (the
         * one we asked may hang, paused or cut off, without closing). */
        struct replica *p = primary(c);
        bool superseded = p != NULL && strcmp(p->id, j->target) != 0 && p->epoch > j->target_epoch;
        if (now >= j->attempt_deadline || superseded) {
            j->phase = PHASE_SEND;
            j->next_try = now;
            request_step(c, j, now);
        }
        return;
    }
    }
}

static void request_reply(struct cluster *c, struct job *j, const Replicacao__ClientReply *rep)
{
    int64_t now = clock_mono_ms();
    struct req q = job_req(j);
    int status;
    char *body;
    if (request_settled(c, &q, rep, &status, &body)) {
        request_done(c, j, status, body);
        return;
    }
    j->errors = 0;
    j->phase = PHASE_SEND;
    if (rep->status == REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY) {
        snprintf(j->hint, sizeof(j->hint), "%s", rep->primary);
        j->next_try =
            rep->primary[0] && strcmp(rep->primary, j->target) != 0 ? now : now + RETRY_PAUSE_MS;
    } else { /* UNKNOWN: the primary changed under it; retry, same id */
        j->next_try = now + RETRY_PAUSE_MS;
    }
    request_step(c, j, now);
    job_arm(c, j, now);
}

/* ========================================================================
 * Reads and failure injection
 * ====================================================================== */

static cJSON *entry_json(const Replicacao__Entry *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", (double)e->index);
    cJSON_AddNumberToObject(o, "epoch", (double)e->epoch);
    cJSON_AddStringToObject(o, "id", e->client_id);
    /* Data is bytes on the wire (replctl may write anything): JSON gets
     * U+FFFD for what is not UTF-8, and for NULs. */
    char *data = utf8_sanitize(e->data.data, e->data.len);
    cJSON_AddStringToObject(o, "data", data ? data : "");
    free(data);
    cJSON_AddStringToObject(o, "primary", e->primary);
    if (e->time_ms) {
        cJSON_AddNumberToObject(o, "time_ms", (double)e->time_ms);
    }
    return o;
}

static void send_read(struct cluster *c, struct job *j, struct replica *r, int filter)
{
    Envelope env;
    Replicacao__ReadRequest req = REPLICACAO__READ_REQUEST__INIT;
    wire_init(&env, SELF_ID, 0);
    req.call_id = ++c->next_call_id;
    req.after = j->after;
    req.limit = j->limit;
    req.filter = (Replicacao__ReadRequest__Filter)filter;
    env.body_case = REPLICACAO__ENVELOPE__BODY_READ_REQUEST;
    env.read_request = &req;
    conn_queue(r->conn, &env);
    /* Both reads of a JOB_REPLICA share call ids call_id and call_id + 1. */
    if (j->reads_outstanding == 0) {
        j->call_id = req.call_id;
    }
    j->reads_outstanding++;
    snprintf(j->target, sizeof(j->target), "%s", r->id);
}

static uint64_t cluster_commit(struct cluster *c)
{
    uint64_t commit = 0;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        const struct replica *r = &c->replicas[i];
        if (r->has_status && r->commit_index > commit) {
            commit = r->commit_index;
        }
    }
    return commit;
}

/* A replica as the view shows it, at `now` (ages are counted from its last
 * status), with `commit` the cluster's commit index. Its peers go to
 * `peers` (room for r->n_peers). */
static void replica_fill(const struct replica *r, int64_t now, uint64_t commit,
                         struct view_replica *out, struct view_peer *peers)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", r->id);
    snprintf(out->name, sizeof(out->name), "%s", r->name);
    snprintf(out->address, sizeof(out->address), "%s", r->address);
    out->role = r->role;
    out->status = r->conn ? REACH_UP : r->failed ? REACH_FAILED : REACH_DOWN;
    out->epoch = r->epoch;
    out->incarnation = r->incarnation;
    uint64_t ci = r->has_status ? r->commit_index : 0;
    out->lag = commit > ci ? commit - ci : 0;
    out->heartbeat_age_ms = -1;
    if (!r->has_status) {
        return;
    }
    out->last_index = r->last_index;
    out->commit_index = r->commit_index;
    /* The status is up to one poll old: age it by the time since. */
    out->heartbeat_age_ms = r->heartbeat_age_ms;
    if (out->heartbeat_age_ms >= 0 && r->conn) {
        out->heartbeat_age_ms += now - r->status_at;
    }
    out->processed = r->processed;
    out->synced = r->synced;
    out->voter = r->voter;
    snprintf(out->believes_primary, sizeof(out->believes_primary), "%s", r->believes_primary);
    out->uptime_ms = r->conn ? r->uptime_ms + now - r->status_at : 0;
    if (r->n_peers > 0) {
        memcpy(peers, r->peers, r->n_peers * sizeof(*peers));
    }
    out->peers = peers;
    out->n_peers = r->n_peers;
}

/* A read that cannot go where it went: to the primary, else any reachable
 * replica, never `avoid`. */
static struct replica *read_target(struct cluster *c, const struct replica *avoid)
{
    struct replica *r = primary(c);
    if (r != NULL && r != avoid) {
        return r;
    }
    for (unsigned i = 0; i < c->n_replicas; i++) {
        if (c->replicas[i].conn && &c->replicas[i] != avoid) {
            return &c->replicas[i];
        }
    }
    return NULL;
}

static void job_start(struct cluster *c, struct job *j)
{
    int64_t now = clock_mono_ms();
    uv_timer_init(&c->loop, &j->timer);
    j->timer.data = j;
    j->next_active = c->active;
    c->active = j;
    switch (j->type) {
    case JOB_REQUEST:
        j->phase = j->fault ? PHASE_FAIL_PRIMARY : PHASE_SEND;
        request_step(c, j, now);
        break;
    case JOB_READ: {
        struct replica *r = read_target(c, NULL);
        if (r == NULL) {
            job_finish(c, j, 503, cluster_error_json("no_replica", "no replica is reachable"));
            return;
        }
        send_read(c, j, r, REPLICACAO__READ_REQUEST__FILTER__ALL);
        break;
    }
    case JOB_REPLICA: {
        struct replica *r = replica_find(c, j->replica);
        if (r == NULL) {
            job_finish(c, j, 404, cluster_error_json("not_found", "no replica with that id"));
            return;
        }
        struct view_replica vr;
        struct view_peer *peers = calloc(r->n_peers ? r->n_peers : 1, sizeof(*peers));
        if (peers == NULL) {
            job_finish(c, j, 503, cluster_error_json("unavailable", "out of memory"));
            return;
        }
        replica_fill(r, now, cluster_commit(c), &vr, peers);
        j->partial = view_replica_json(&vr);
        free(peers);
        if (r->conn == NULL) {
            /* Unreachable: its data cannot be read, say so. */
            cJSON *p = cJSON_AddObjectToObject(j->partial, "processed_data");
            cJSON_AddNumberToObject(p, "total", 0);
            cJSON_AddArrayToObject(p, "entries");
            cJSON *s = cJSON_AddObjectToObject(j->partial, "synced_data");
            cJSON_AddNumberToObject(s, "total", 0);
            cJSON_AddArrayToObject(s, "entries");
            cJSON_AddStringToObject(j->partial, "data_unavailable", "replica is not reachable");
            cJSON *body = j->partial;
            j->partial = NULL;
            job_finish_json(c, j, 200, body);
            return;
        }
        send_read(c, j, r, REPLICACAO__READ_REQUEST__FILTER__PROCESSED);
        send_read(c, j, r, REPLICACAO__READ_REQUEST__FILTER__SYNCED);
        break;
    }
    case JOB_FAIL: {
        struct replica *r = j->replica[0] ? replica_find(c, j->replica) : primary(c);
        if (r == NULL) {
            job_finish(c, j, j->replica[0] ? 404 : 503,
                       cluster_error_json(j->replica[0] ? "not_found" : "no_primary",
                                          j->replica[0] ? "no replica with that id"
                                                        : "there is no primary to fail"));
            return;
        }
        if (r->conn == NULL) {
            job_finish(c, j, 409, cluster_error_json("unreachable", "that replica is not up"));
            return;
        }
        send_fail(c, r, "fail requested through the API");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "failed", r->id);
        job_finish_json(c, j, 202, o);
        return;
    }
    case JOB_CALL:
        job_finish(c, j, j->call_fn(c, j->call_arg), NULL);
        return;
    }
    job_arm(c, j, now);
}

static void read_reply(struct cluster *c, struct job *j, const Replicacao__ReadReply *rr)
{
    cJSON *entries = cJSON_CreateArray();
    for (size_t i = 0; i < rr->n_entries; i++) {
        cJSON_AddItemToArray(entries, entry_json(rr->entries[i]));
    }
    if (j->type == JOB_READ) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "commit_index", (double)rr->commit_index);
        cJSON_AddItemToObject(o, "entries", entries);
        job_finish_json(c, j, 200, o);
        return;
    }
    const char *key = rr->call_id == j->call_id ? "processed_data" : "synced_data";
    cJSON *part = cJSON_AddObjectToObject(j->partial, key);
    cJSON_AddNumberToObject(part, "total", (double)rr->total);
    cJSON_AddItemToObject(part, "entries", entries);
    if (--j->reads_outstanding == 0) {
        cJSON *body = j->partial;
        j->partial = NULL;
        job_finish_json(c, j, 200, body);
    }
}

/* Does j wait for an answer from replica r? */
static bool awaits(const struct job *j, const struct replica *r)
{
    bool waiting = j->type == JOB_REQUEST ? j->phase == PHASE_WAITING : j->reads_outstanding > 0;
    return waiting && !j->finished && strcmp(j->target, r->id) == 0;
}

static void handle_reply(struct cluster *c, struct replica *r, const Envelope *env)
{
    uint64_t call = env->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY
                        ? env->client_reply->call_id
                        : env->read_reply->call_id;
    for (struct job *j = c->active; j; j = j->next_active) {
        bool mine = call == j->call_id || (j->type == JOB_REPLICA && call == j->call_id + 1);
        if (!mine || !awaits(j, r)) {
            continue;
        }
        if (env->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY && j->type == JOB_REQUEST) {
            request_reply(c, j, env->client_reply);
        } else if (env->body_case == REPLICACAO__ENVELOPE__BODY_READ_REPLY &&
                   (j->type == JOB_READ || j->type == JOB_REPLICA)) {
            read_reply(c, j, env->read_reply);
        }
        break;
    }
    transport_flush(c->t);
}

/* An Error carries no call id: it answers the oldest call still waiting on
 * that connection (call ids grow with every call sent), and that job acts
 * on it at once instead of waiting out its attempt. */
static void route_error(struct cluster *c, struct replica *r, const Replicacao__Error *e)
{
    struct job *oldest = NULL;
    for (struct job *j = c->active; j; j = j->next_active) {
        if (awaits(j, r) && (oldest == NULL || j->call_id < oldest->call_id)) {
            oldest = j;
        }
    }
    if (oldest == NULL) {
        log_warn("replica %s: error with nothing waiting: %s", r->id, e->message);
        return;
    }
    struct job *j = oldest;
    int64_t now = clock_mono_ms();
    log_warn("replica %s: error for call %llu: %s", r->id, (unsigned long long)j->call_id,
             e->message);
    switch (j->type) {
    case JOB_REQUEST:
        /* Same id: resending is safe. At once the first time, then paced,
         * so a replica that keeps refusing is not hammered. */
        j->phase = PHASE_SEND;
        j->next_try = j->errors++ == 0 ? now : now + RETRY_PAUSE_MS;
        request_step(c, j, now);
        job_arm(c, j, now);
        break;
    case JOB_READ: {
        struct replica *other = read_target(c, r);
        if (other == NULL) {
            job_finish(c, j, 503, cluster_error_json("replica_error", e->message));
            break;
        }
        j->reads_outstanding = 0;
        send_read(c, j, other, REPLICACAO__READ_REQUEST__FILTER__ALL);
        break;
    }
    default: /* JOB_REPLICA: only that replica has its data */
        job_finish(c, j, 503, cluster_error_json("replica_error", e->message));
        break;
    }
    transport_flush(c->t);
}

/* A connection closed: whatever waited on it tries again or gives up. */
static void job_conn_lost(struct cluster *c, const char *id)
{
    int64_t now = clock_mono_ms();
    struct job *next;
    for (struct job *j = c->active; j; j = next) {
        next = j->next_active;
        if (j->finished || strcmp(j->target, id) != 0) {
            continue;
        }
        if (j->type == JOB_REQUEST && j->phase == PHASE_WAITING) {
            j->phase = PHASE_SEND;
            j->next_try = now + RETRY_PAUSE_MS;
            job_arm(c, j, now);
        } else if (j->type == JOB_READ || j->type == JOB_REPLICA) {
            job_finish(c, j, 503, cluster_error_json("unreachable", "the replica went away"));
        }
    }
}

static void job_timer_cb(uv_timer_t *timer)
{
    struct job *j = timer->data;
    struct cluster *c = j->c;
    int64_t now = clock_mono_ms();
    if (j->type == JOB_REQUEST) {
        request_step(c, j, now);
    } else if (now >= j->deadline) {
        job_finish(c, j, 504, cluster_error_json("timeout", "the replica did not answer"));
    }
    job_arm(c, j, now);
    transport_flush(c->t);
}

/* Arm the job's timer for the next thing it waits for: its deadline, the
 * end of its attempt, or its next try. */
static void job_arm(struct cluster *c, struct job *j, int64_t now)
{
    (void)c;
    if (j->finished) {
        return;
    }
    int64_t when = j->deadline;
    if (j->type == JOB_REQUEST) {
        int64_t next = j->phase == PHASE_WAITING ? j->attempt_deadline : j->next_try;
        if (next < when) {
            when = next;
        }
    }
    uv_timer_start(&j->timer, job_timer_cb, when > now ? (uint64_t)(when - now) : 0, 0);
}

/* The primary changed: requests waiting for one go now, requests waiting
 * on a superseded one are sent again. */
static void kick_cb(uv_timer_t *timer)
{
    struct cluster *c = timer->data;
    int64_t now = clock_mono_ms();
    struct job *next;
    for (struct job *j = c->active; j; j = next) {
        next = j->next_active;
        if (j->type != JOB_REQUEST || j->finished) {
            continue;
        }
        if (j->phase != PHASE_WAITING) {
            j->next_try = now;
        }
        request_step(c, j, now);
        job_arm(c, j, now);
    }
    transport_flush(c->t);
}

/* ========================================================================
 * Publishing
 * ====================================================================== */

static int cmp_replica(const void *a, const void *b)
{
    const struct replica *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

static struct view *build_view(struct cluster *c)
{
    /* Listed by id; the array itself stays put (pointers into it live). */
    struct replica *sorted[MAX_REPLICAS];
    size_t n_peers = 0;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        sorted[i] = &c->replicas[i];
        n_peers += c->replicas[i].has_status ? c->replicas[i].n_peers : 0;
    }
    qsort(sorted, c->n_replicas, sizeof(sorted[0]), cmp_replica);
    struct view_replica *reps;
    struct view_peer *peers;
    struct view *v = view_alloc(c->n_replicas, n_peers, &reps, &peers);
    if (v == NULL) {
        return NULL;
    }
    int64_t now = clock_mono_ms();
    v->commit_index = cluster_commit(c);
    const struct replica *p = primary(c);
    for (unsigned i = 0; i < c->n_replicas; i++) {
        replica_fill(sorted[i], now, v->commit_index, &reps[i], peers);
        peers += reps[i].n_peers;
        if (sorted[i]->epoch > v->epoch) {
            v->epoch = sorted[i]->epoch;
        }
        if (sorted[i] == p) {
            v->primary = &reps[i];
        }
    }
    return v;
}

struct view *cluster_view(struct cluster *c)
{
    pthread_mutex_lock(&c->view_mu);
    struct view *v = c->view;
    if (v != NULL) {
        view_ref(v);
    }
    pthread_mutex_unlock(&c->view_mu);
    return v;
}

static void publish_snapshot(struct cluster *c)
{
    c->snapshot_published = clock_mono_ms();
    if (c->o.publish == NULL) {
        return;
    }
    struct view *v = cluster_view(c);
    const char *msg = v ? view_message(v) : NULL;
    if (msg) {
        c->o.publish(c->o.publish_arg, msg, strlen(msg));
    }
    view_release(v);
}

static void snapshot_timer_cb(uv_timer_t *timer)
{
    publish_snapshot(timer->data);
}

static bool same_primary(const struct view *a, const struct view *b)
{
    const struct view_replica *x = a ? a->primary : NULL, *y = b ? b->primary : NULL;
    if (x == NULL || y == NULL) {
        return x == y;
    }
    return strcmp(x->id, y->id) == 0 && x->epoch == y->epoch && x->incarnation == y->incarnation;
}

/* The view changed: publish a new one (HTTP readers see it at once; its
 * JSON is rendered when first asked for); WebSocket clients get it now or
 * at the end of the current pacing window, whichever is later. */
static void mark_changed(struct cluster *c)
{
    struct view *v = build_view(c);
    if (v == NULL) {
        return;
    }
    pthread_mutex_lock(&c->view_mu);
    struct view *old = c->view;
    c->view = v;
    pthread_mutex_unlock(&c->view_mu);
    if (!same_primary(old, v) && !uv_is_active((uv_handle_t *)&c->kick_timer)) {
        /* Not from here: this may run in the middle of a job's step. */
        uv_timer_start(&c->kick_timer, kick_cb, 0, 0);
    }
    view_release(old);
    int64_t wait = c->snapshot_published + SNAPSHOT_EVERY_MS - clock_mono_ms();
    if (wait <= 0) {
        publish_snapshot(c);
    } else if (!uv_is_active((uv_handle_t *)&c->snapshot_timer)) {
        uv_timer_start(&c->snapshot_timer, snapshot_timer_cb, (uint64_t)wait, 0);
    }
}

static void publish_event(struct cluster *c, cJSON *ev)
{
    cJSON *wrap = cJSON_CreateObject();
    cJSON_AddStringToObject(wrap, "type", "event");
    cJSON_AddItemToObject(wrap, "event", ev);
    char *s = cJSON_PrintUnformatted(wrap);
    cJSON_Delete(wrap);
    if (s && c->o.publish) {
        c->o.publish(c->o.publish_arg, s, strlen(s));
    }
    free(s);
}

static void commit_timer_cb(uv_timer_t *timer)
{
    struct cluster *c = timer->data;
    if (c->pending_commit) {
        publish_event(c, c->pending_commit);
        c->pending_commit = NULL;
        uv_timer_start(&c->commit_timer, commit_timer_cb, COMMIT_COALESCE_MS, 0);
    }
}

/* ========================================================================
 * The loop thread
 * ====================================================================== */

static void wake_cb(uv_async_t *a)
{
    struct cluster *c = a->data;
    pthread_mutex_lock(&c->mu);
    struct job *q = c->queue;
    c->queue = NULL;
    bool stopping = c->stopping;
    pthread_mutex_unlock(&c->mu);
    /* Pushed newest first: start them in the order they came. */
    struct job *in_order = NULL;
    while (q) {
        struct job *j = q;
        q = q->next_queued;
        j->next_queued = in_order;
        in_order = j;
    }
    while (in_order) {
        struct job *j = in_order;
        in_order = in_order->next_queued;
        job_start(c, j);
    }
    transport_flush(c->t);
    if (stopping && !c->shutdown_begun) {
        c->shutdown_begun = true;
        begin_shutdown(c);
    }
}

static void on_replica_exit(void *arg, const char *id, int64_t status, int sig)
{
    struct cluster *c = arg;
    struct replica *r = replica_find(c, id);
    if (r != NULL && status == EXIT_FAILED_ON_REQUEST) {
        r->failed = true;
    }
    char detail[96];
    snprintf(detail, sizeof(detail), "process exited (status %lld, signal %d); restarting",
             (long long)status, sig);
    publish_event(c, event_new("exited", id, id, r ? r->epoch : 0, 0, detail));
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void transport_closed(struct transport *t)
{
    struct cluster *c = transport_data(t);
    uv_close((uv_handle_t *)&c->poll_timer, close_cb);
    uv_close((uv_handle_t *)&c->commit_timer, close_cb);
    uv_close((uv_handle_t *)&c->snapshot_timer, close_cb);
    uv_close((uv_handle_t *)&c->kick_timer, close_cb);
    uv_close((uv_handle_t *)&c->flush_prep, close_cb);
    uv_close((uv_handle_t *)&c->wake, close_cb);
}

static void discovery_stopped(void *arg)
{
    (void)arg;
}

static void supervisor_stopped(void *arg)
{
    struct cluster *c = arg;
    discovery_stop(c->disc, discovery_stopped, NULL);
    transport_close(c->t, transport_closed);
}

/* Loop thread: answer everything still waiting, stop the replicas we
 * spawned, then close every handle so the loop ends. */
static void begin_shutdown(struct cluster *c)
{
    while (c->active) {
        job_finish(c, c->active, 503,
                   cluster_error_json("shutting_down", "the coordinator is shutting down"));
    }
    if (c->shutdown_fn != NULL) {
        void (*fn)(void *) = c->shutdown_fn;
        c->shutdown_fn = NULL;
        fn(c->shutdown_arg);
    }
    uv_timer_stop(&c->poll_timer);
    uv_timer_stop(&c->snapshot_timer);
    uv_timer_stop(&c->kick_timer);
    if (c->sup) {
        supervisor_stop(c->sup, supervisor_stopped, c);
    } else {
        supervisor_stopped(c);
    }
}

void cluster_stop(struct cluster *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_mutex_unlock(&c->mu);
    uv_async_send(&c->wake);
    uv_thread_join(&c->thread);
    uv_loop_close(&c->loop);
    for (unsigned i = 0; i < c->n_replicas; i++) {
        free(c->replicas[i].peers);
    }
    cJSON_Delete(c->pending_commit);
    transport_free(c->t);
    pthread_mutex_destroy(&c->mu);
    view_release(c->view);
    pthread_mutex_destroy(&c->view_mu);
    free(c);
}

/* Before the loop blocks: whatever this iteration queued for the replicas
 * (requests from the front door, many at a time) leaves in one write per
 * connection. */
static void flush_cb(uv_prepare_t *prep)
{
    struct cluster *c = prep->data;
    transport_flush(c->t);
}

static void loop_thread(void *arg)
{
    struct cluster *c = arg;
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

struct cluster *cluster_start(const struct cluster_options *o, char *err, size_t errlen)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->o = *o;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->view_mu, NULL);
    uv_loop_init(&c->loop);
    uv_async_init(&c->loop, &c->wake, wake_cb);
    c->wake.data = c;
    struct transport_options to = {
        .self_id = SELF_ID,
        .name = SELF_ID,
        .advertise = "",
        .client = true,
        .max_frame_bytes = o->max_frame_bytes,
        /* A restarted replica must be watched again at once: its events are
         * what the dashboard shows. */
        .retry_max_ms = 250,
    };
    struct transport_callbacks cb = {
        .data = c,
        .on_hello = on_hello,
        .on_message = on_message,
        .on_closed = on_closed,
    };
    c->t = transport_new(&c->loop, &to, &cb);
    struct addr_list targets = o->replicas;
    if (o->spawn != NULL) {
        c->sup = supervisor_start(&c->loop, o->spawn, on_replica_exit, c);
        if (c->sup == NULL) {
            snprintf(err, errlen, "cannot start the replica supervisor");
            return NULL;
        }
        supervisor_addresses(o->spawn, &targets);
    }
    c->disc = discovery_start(&c->loop, c->t, &targets,
                              o->resolve_interval_ms ? o->resolve_interval_ms : 1000);
    uv_timer_init(&c->loop, &c->poll_timer);
    c->poll_timer.data = c;
    unsigned every = o->status_interval_ms ? o->status_interval_ms : 200;
    uv_timer_start(&c->poll_timer, poll_cb, every, every);
    uv_timer_init(&c->loop, &c->commit_timer);
    c->commit_timer.data = c;
    uv_timer_init(&c->loop, &c->snapshot_timer);
    c->snapshot_timer.data = c;
    uv_timer_init(&c->loop, &c->kick_timer);
    c->kick_timer.data = c;
    uv_prepare_init(&c->loop, &c->flush_prep);
    c->flush_prep.data = c;
    uv_prepare_start(&c->flush_prep, flush_cb);
    c->view = build_view(c);
    if (uv_thread_create(&c->thread, loop_thread, c) != 0) {
        snprintf(err, errlen, "cannot start the cluster thread");
        return NULL;
    }
    return c;
}
