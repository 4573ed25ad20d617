/*
 * coordinator/cluster.c — see cluster.h.
 *
 * Sections: jobs (the thread boundary), replicas (connections, status,
 * events), request forwarding, reads and failure injection, publishing
 * (snapshot and events), the loop thread.
 */
#include "cluster.h"
#include "clock.h"
#include "discovery.h"
#include "logging.h"
#include "metrics.h"
#include "supervisor.h"
#include "transport.h"
#include "validate.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_REPLICAS       64
#define ATTEMPT_MS         3000 /* one try at the primary before retrying */
#define RETRY_PAUSE_MS     25   /* between tries while no primary answers */
#define COMMIT_COALESCE_MS 50   /* committed events are merged over this window */
#define SELF_ID            "coordinator"

/* ========================================================================
 * Jobs: the thread boundary
 * ====================================================================== */

enum job_type { JOB_REQUEST, JOB_READ, JOB_REPLICA, JOB_FAIL };

enum request_phase {
    PHASE_FAIL_PRIMARY, /* fault request: fail the primary first */
    PHASE_AWAIT_NEW,    /* ... and wait for another one to be elected */
    PHASE_SEND,         /* pick the primary and send */
    PHASE_WAITING,      /* sent; waiting for the reply */
};

struct job {
    enum job_type type;
    /* Parameters, owned by the job. */
    char *data;
    size_t len;
    char client_id[LIMIT_CLIENT_ID_BYTES];
    bool fault;
    char replica[LIMIT_ID_BYTES]; /* JOB_REPLICA, JOB_FAIL ("" = primary) */
    uint64_t after;
    uint32_t limit;
    int64_t deadline; /* monotonic ms */

    /* Loop-thread state. */
    enum request_phase phase;
    char target[LIMIT_ID_BYTES]; /* replica the request went to */
    uint64_t target_epoch;       /* the epoch it was primary in when sent */
    char hint[LIMIT_ID_BYTES];   /* "not primary, try X" */
    char failed[LIMIT_ID_BYTES]; /* fault request: who was failed */
    uint64_t failed_epoch;
    bool sent_once;
    int64_t next_try;
    int64_t attempt_deadline;
    uint64_t call_id;
    int reads_outstanding;
    cJSON *partial; /* JOB_REPLICA: built up as reads return */
    int64_t started;
    struct job *next_active;

    /* Completion, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int refs; /* the waiting worker and the loop thread */
    struct cluster_reply reply;
    struct job *next_queued;
};

struct replica {
    char id[LIMIT_ID_BYTES];
    char name[LIMIT_NAME_BYTES];
    char address[LIMIT_NAME_BYTES];
    struct conn *conn; /* NULL while unreachable */
    bool failed;       /* failed on purpose or exited 75; cleared when back */
    Envelope *status;  /* last status reply (owned) */
    char role[16];     /* from the status, updated at once by events */
    uint64_t epoch;
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
    uv_timer_t retry_timer;
    uv_timer_t commit_timer;
    uv_timer_t snapshot_timer; /* paces snapshots to the WebSocket */
    int64_t snapshot_published;
    struct transport *t;
    struct discovery *disc;
    struct supervisor *sup;
    bool stopping;       /* under mu: set by cluster_stop */
    bool shutdown_begun; /* loop thread only */

    struct replica replicas[MAX_REPLICAS];
    unsigned n_replicas;
    uint64_t next_call_id;
    struct job *active; /* jobs the loop is working on */

    /* The primary as last announced (elected event or a status saying so,
     * highest epoch wins), and failover timing: from its loss to the first
     * election of a higher epoch. */
    char primary_id[LIMIT_ID_BYTES];
    uint64_t primary_epoch;
    int64_t failover_start;
    uint64_t failover_epoch;
    char failover_from[LIMIT_ID_BYTES];

    /* The newest committed event not yet published. */
    cJSON *pending_commit;

    pthread_mutex_t mu; /* guards queue, snapshot */
    struct job *queue;
    char *snapshot;
};

static void commit_timer_cb(uv_timer_t *timer);
static void begin_shutdown(struct cluster *c);

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

static struct job *job_new(enum job_type type, unsigned timeout_ms)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->type = type;
    j->refs = 2;
    j->started = clock_mono_ms();
    j->deadline = j->started + timeout_ms;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
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

/* Loop thread: hand the result to the waiting worker. Takes `body`. */
static void job_finish(struct cluster *c, struct job *j, int status, char *body)
{
    pthread_mutex_lock(&j->mu);
    j->reply.status = status;
    j->reply.body = body;
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    struct job **pp = &c->active;
    while (*pp && *pp != j) {
        pp = &(*pp)->next_active;
    }
    if (*pp) {
        *pp = j->next_active;
    }
    job_release(j);
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
        j->refs = 1;
        job_release(j);
        return;
    }
    uv_async_send(&c->wake);

    /* Wait a little past the job's own deadline: the loop thread answers
     * 503/504 itself at the deadline, and this is only the backstop. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t wait_ms = j->deadline - clock_mono_ms() + 1000;
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
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
    struct job *j = job_new(JOB_REQUEST, timeout_ms);
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

void cluster_read(struct cluster *c, uint64_t after, uint32_t limit, unsigned timeout_ms,
                  struct cluster_reply *out)
{
    struct job *j = job_new(JOB_READ, timeout_ms);
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
    struct job *j = job_new(JOB_REPLICA, timeout_ms);
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
    struct job *j = job_new(JOB_FAIL, timeout_ms);
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
    }
    return r;
}

static const char *replica_role(const struct replica *r)
{
    return r->role[0] ? r->role : "backup";
}

static uint64_t replica_epoch(const struct replica *r)
{
    return r->epoch;
}

/* The primary: a reachable replica that says it is primary, in the highest
 * epoch among those that say so. */
static struct replica *current_primary(struct cluster *c)
{
    struct replica *best = NULL;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        struct replica *r = &c->replicas[i];
        if (r->conn && !r->failed && strcmp(replica_role(r), "primary") == 0 &&
            (best == NULL || replica_epoch(r) > replica_epoch(best))) {
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

static void note_primary(struct cluster *c, const char *id, uint64_t epoch)
{
    if (epoch >= c->primary_epoch) {
        snprintf(c->primary_id, sizeof(c->primary_id), "%s", id);
        c->primary_epoch = epoch;
    }
}

/* The primary is gone: start the failover clock (once). */
static void failover_begin(struct cluster *c, const struct replica *r)
{
    if (c->failover_start == 0 && strcmp(r->id, c->primary_id) == 0) {
        c->failover_start = clock_mono_ms();
        c->failover_epoch = c->primary_epoch;
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
    if (!c->stopping && !r->failed) { /* a failed one was announced already */
        publish_event(c, event_new("down", r->id, r->id, replica_epoch(r), 0, "connection closed"));
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
    if (strcmp(e->type, "elected") == 0) {
        snprintf(r->role, sizeof(r->role), "primary");
        for (unsigned i = 0; i < c->n_replicas; i++) {
            struct replica *o = &c->replicas[i];
            if (o != r && strcmp(replica_role(o), "primary") == 0 && o->epoch < e->epoch) {
                snprintf(o->role, sizeof(o->role), "backup");
            }
        }
    } else if (strcmp(e->type, "stepped_down") == 0) {
        snprintf(r->role, sizeof(r->role), "backup");
    } else if (strcmp(e->type, "election_started") == 0) {
        snprintf(r->role, sizeof(r->role), "candidate");
    }
}

static void handle_event(struct cluster *c, struct replica *r, const Replicacao__Event *e)
{
    if (strcmp(e->type, "committed") == 0) {
        /* Coalesced: a busy primary commits thousands of times a second. */
        cJSON_Delete(c->pending_commit);
        c->pending_commit =
            event_new("committed", e->replica, e->subject, e->epoch, e->index, e->detail);
        if (!uv_is_active((uv_handle_t *)&c->commit_timer)) {
            uv_timer_start(&c->commit_timer, commit_timer_cb, 0, 0);
        }
        return;
    }
    cJSON *ev = event_new(e->type, e->replica, e->subject, e->epoch, e->index, e->detail);
    if (strcmp(e->type, "elected") == 0) {
        note_primary(c, e->replica, e->epoch);
    }
    if (strcmp(e->type, "elected") == 0 && c->failover_start != 0 && e->epoch > c->failover_epoch) {
        int64_t ms = clock_mono_ms() - c->failover_start;
        cJSON_AddNumberToObject(ev, "failover_ms", (double)ms);
        cJSON_AddStringToObject(ev, "previous_primary", c->failover_from);
        metrics_failover(c->o.metrics, ms / 1000.0);
        log_info("failover %s -> %s in %lld ms", c->failover_from, e->replica, (long long)ms);
        c->failover_start = 0;
    }
    apply_event(c, r, e);
    publish_event(c, ev);
    for (unsigned i = 0; i < c->n_replicas; i++) {
        request_status(&c->replicas[i]);
    }
    mark_changed(c);
}

static void handle_reply(struct cluster *c, struct replica *r, const Envelope *env);
static void commit_timer_cb(uv_timer_t *timer);

static void on_message(struct transport *t, struct conn *conn, const Envelope *env)
{
    struct cluster *c = transport_data(t);
    struct replica *r = conn_get_data(conn);
    if (r == NULL) {
        return;
    }
    switch (env->body_case) {
    case REPLICACAO__ENVELOPE__BODY_STATUS: {
        wire_free(r->status);
        /* Keep the envelope: the status points into it. wire_unpack gave
         * the transport's copy; make our own by packing and unpacking. */
        size_t len;
        uint8_t *buf = wire_pack(env, &len);
        char err[64];
        r->status = buf ? wire_unpack(buf + 4, len - 4, err, sizeof(err)) : NULL;
        free(buf);
        r->status_at = clock_mono_ms();
        r->status_pending = false;
        snprintf(r->role, sizeof(r->role), "%s", env->status->role);
        r->epoch = env->status->epoch;
        if (strcmp(r->role, "primary") == 0) {
            if (c->failover_start != 0 && r->epoch > c->failover_epoch) {
                /* Its election event never reached us (we were not
                 * connected): no figure beats a wrong one. */
                c->failover_start = 0;
            }
            note_primary(c, r->id, r->epoch);
        }
        mark_changed(c);
        break;
    }
    case REPLICACAO__ENVELOPE__BODY_EVENT:
        handle_event(c, r, env->event);
        break;
    case REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY:
    case REPLICACAO__ENVELOPE__BODY_READ_REPLY:
    case REPLICACAO__ENVELOPE__BODY_ERROR:
        handle_reply(c, r, env);
        break;
    default:
        break;
    }
}

/* ========================================================================
 * Request forwarding
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

static void request_event(struct cluster *c, struct job *j, const char *type, uint64_t index,
                          uint64_t epoch, const char *primary, const char *detail)
{
    cJSON *ev = event_new(type, primary, primary, epoch, index, detail);
    cJSON *req = cJSON_AddObjectToObject(ev, "request");
    cJSON_AddStringToObject(req, "id", j->client_id);
    char *data = strndup(j->data, j->len);
    cJSON_AddStringToObject(req, "data", data ? data : "");
    free(data);
    cJSON_AddBoolToObject(req, "fault", j->fault);
    if (index) {
        cJSON_AddNumberToObject(req, "index", (double)index);
        cJSON_AddNumberToObject(req, "epoch", (double)epoch);
        cJSON_AddStringToObject(req, "primary", primary);
    }
    publish_event(c, ev);
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
    publish_event(c, event_new("failed", r->id, r->id, replica_epoch(r), 0, why));
    mark_changed(c);
}

static void request_step(struct cluster *c, struct job *j, int64_t now)
{
    if (now >= j->deadline) {
        if (j->sent_once) {
            request_event(c, j, "request_failed", 0, 0, "", "outcome unknown");
            request_done(c, j, 504,
                         cluster_error_json("outcome_unknown",
                                            "the request was sent but not confirmed in time; "
                                            "retry with the same id"));
        } else {
            request_event(c, j, "request_failed", 0, 0, "", "no primary");
            request_done(c, j, 503,
                         cluster_error_json("no_primary", "no primary appeared in time"));
        }
        return;
    }
    if (now < j->next_try) {
        return;
    }
    switch (j->phase) {
    case PHASE_FAIL_PRIMARY: {
        struct replica *p = current_primary(c);
        if (p == NULL) {
            j->next_try = now + RETRY_PAUSE_MS;
            return;
        }
        snprintf(j->failed, sizeof(j->failed), "%s", p->id);
        j->failed_epoch = replica_epoch(p);
        send_fail(c, p, "fault request");
        j->phase = PHASE_AWAIT_NEW;
        return;
    }
    case PHASE_AWAIT_NEW: {
        struct replica *p = current_primary(c);
        if (p == NULL || strcmp(p->id, j->failed) == 0 || replica_epoch(p) <= j->failed_epoch) {
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
            p = current_primary(c);
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
        j->target_epoch = replica_epoch(p);
        if (!j->sent_once) {
            request_event(c, j, "request_sent", 0, replica_epoch(p), p->id, "");
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
        struct replica *p = current_primary(c);
        bool superseded =
            p != NULL && strcmp(p->id, j->target) != 0 && replica_epoch(p) > j->target_epoch;
        if (now >= j->attempt_deadline || superseded) {
            j->phase = PHASE_SEND;
            request_step(c, j, now);
        }
        return;
    }
    }
}

static void request_reply(struct cluster *c, struct job *j, const Replicacao__ClientReply *rep)
{
    int64_t now = clock_mono_ms();
    switch (rep->status) {
    case REPLICACAO__CLIENT_REPLY__STATUS__OK: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", (double)rep->index);
        cJSON_AddNumberToObject(o, "epoch", (double)rep->epoch);
        cJSON_AddStringToObject(o, "primary", rep->primary);
        cJSON_AddStringToObject(o, "id", j->client_id);
        char *data = strndup(j->data, j->len);
        cJSON_AddStringToObject(o, "data", data ? data : "");
        free(data);
        if (j->fault) {
            cJSON_AddStringToObject(o, "failed", j->failed);
        }
        request_event(c, j, "request_committed", rep->index, rep->epoch, rep->primary, "");
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        request_done(c, j, 201, s);
        return;
    }
    case REPLICACAO__CLIENT_REPLY__STATUS__REJECTED:
        request_event(c, j, "request_failed", 0, 0, "", rep->message);
        request_done(c, j, 400, cluster_error_json("rejected", rep->message));
        return;
    case REPLICACAO__CLIENT_REPLY__STATUS__CONFLICT: {
        request_event(c, j, "request_failed", 0, 0, "", rep->message);
        cJSON *o = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", "id_conflict");
        cJSON_AddStringToObject(err, "message", rep->message);
        cJSON_AddNumberToObject(err, "index", (double)rep->index);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        request_done(c, j, 409, s);
        return;
    }
    case REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY:
        snprintf(j->hint, sizeof(j->hint), "%s", rep->primary);
        j->phase = PHASE_SEND;
        j->next_try =
            rep->primary[0] && strcmp(rep->primary, j->target) != 0 ? now : now + RETRY_PAUSE_MS;
        break;
    default: /* UNKNOWN: the primary changed under it; retry, same id */
        j->phase = PHASE_SEND;
        j->next_try = now + RETRY_PAUSE_MS;
        break;
    }
    request_step(c, j, now);
}

/* ========================================================================
 * Reads and failure injection
 * ====================================================================== */

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

static cJSON *replica_json(const struct replica *r, uint64_t cluster_commit);

static uint64_t cluster_commit(struct cluster *c)
{
    uint64_t commit = 0;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        const struct replica *r = &c->replicas[i];
        if (r->status && r->status->status->commit_index > commit) {
            commit = r->status->status->commit_index;
        }
    }
    return commit;
}

static void job_start(struct cluster *c, struct job *j)
{
    int64_t now = clock_mono_ms();
    j->next_active = c->active;
    c->active = j;
    switch (j->type) {
    case JOB_REQUEST:
        j->phase = j->fault ? PHASE_FAIL_PRIMARY : PHASE_SEND;
        request_step(c, j, now);
        break;
    case JOB_READ: {
        struct replica *r = current_primary(c);
        for (unsigned i = 0; r == NULL && i < c->n_replicas; i++) {
            if (c->replicas[i].conn) {
                r = &c->replicas[i];
            }
        }
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
        j->partial = replica_json(r, cluster_commit(c));
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
        struct replica *r = j->replica[0] ? replica_find(c, j->replica) : current_primary(c);
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
    }
    transport_flush(c->t);
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

static void handle_reply(struct cluster *c, struct replica *r, const Envelope *env)
{
    uint64_t call =
        env->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY ? env->client_reply->call_id
        : env->body_case == REPLICACAO__ENVELOPE__BODY_READ_REPLY ? env->read_reply->call_id
                                                                  : 0;
    for (struct job *j = c->active; j; j = j->next_active) {
        if (strcmp(j->target, r->id) != 0) {
            continue;
        }
        bool mine = call == j->call_id || (j->type == JOB_REPLICA && call == j->call_id + 1);
        if (!mine) {
            continue;
        }
        if (env->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY && j->type == JOB_REQUEST &&
            j->phase == PHASE_WAITING) {
            request_reply(c, j, env->client_reply);
        } else if (env->body_case == REPLICACAO__ENVELOPE__BODY_READ_REPLY &&
                   (j->type == JOB_READ || j->type == JOB_REPLICA)) {
            read_reply(c, j, env->read_reply);
        }
        break;
    }
    transport_flush(c->t);
}

/* A connection closed: whatever waited on it tries again or gives up. */
static void job_conn_lost(struct cluster *c, const char *id)
{
    struct job *next;
    for (struct job *j = c->active; j; j = next) {
        next = j->next_active;
        if (strcmp(j->target, id) != 0) {
            continue;
        }
        if (j->type == JOB_REQUEST && j->phase == PHASE_WAITING) {
            j->phase = PHASE_SEND;
            j->next_try = clock_mono_ms() + RETRY_PAUSE_MS;
        } else if (j->type == JOB_READ || j->type == JOB_REPLICA) {
            job_finish(c, j, 503, cluster_error_json("unreachable", "the replica went away"));
        }
    }
}

static void retry_cb(uv_timer_t *timer)
{
    struct cluster *c = timer->data;
    int64_t now = clock_mono_ms();
    struct job *next;
    for (struct job *j = c->active; j; j = next) {
        next = j->next_active;
        if (j->type == JOB_REQUEST) {
            request_step(c, j, now);
        } else if (now >= j->deadline) {
            job_finish(c, j, 504, cluster_error_json("timeout", "the replica did not answer"));
        }
    }
    transport_flush(c->t);
}

/* ========================================================================
 * Publishing
 * ====================================================================== */

static cJSON *replica_json(const struct replica *r, uint64_t commit)
{
    cJSON *o = cJSON_CreateObject();
    const Replicacao__Status *s = r->status ? r->status->status : NULL;
    int64_t now = clock_mono_ms();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "name", r->name[0] ? r->name : r->id);
    cJSON_AddStringToObject(o, "address", r->address);
    cJSON_AddStringToObject(o, "role", replica_role(r));
    cJSON_AddStringToObject(o, "status", r->conn ? "up" : r->failed ? "failed" : "down");
    cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
    cJSON_AddNumberToObject(o, "last_index", s ? (double)s->last_index : 0);
    cJSON_AddNumberToObject(o, "commit_index", s ? (double)s->commit_index : 0);
    uint64_t ci = s ? s->commit_index : 0;
    cJSON_AddNumberToObject(o, "lag", commit > ci ? (double)(commit - ci) : 0);
    /* The status is up to one poll old: age it by the time since. */
    int64_t hb = s ? s->heartbeat_age_ms : -1;
    if (hb >= 0 && r->conn) {
        hb += now - r->status_at;
    }
    cJSON_AddNumberToObject(o, "heartbeat_age_ms", (double)hb);
    cJSON_AddNumberToObject(o, "processed", s ? (double)s->processed : 0);
    cJSON_AddNumberToObject(o, "synced", s ? (double)s->synced : 0);
    cJSON_AddBoolToObject(o, "voter", s ? s->voter : false);
    cJSON_AddStringToObject(o, "believes_primary", s ? s->primary : "");
    cJSON_AddNumberToObject(o, "uptime_ms",
                            s && r->conn ? (double)(s->uptime_ms + now - r->status_at) : 0);
    cJSON *peers = cJSON_AddArrayToObject(o, "peers");
    for (size_t i = 0; s && i < s->n_peers; i++) {
        const Replicacao__PeerStatus *p = s->peers[i];
        cJSON *po = cJSON_CreateObject();
        cJSON_AddStringToObject(po, "id", p->id);
        cJSON_AddStringToObject(po, "address", p->address);
        cJSON_AddBoolToObject(po, "voter", p->voter);
        cJSON_AddBoolToObject(po, "connected", p->connected);
        cJSON_AddNumberToObject(po, "match_index", (double)p->match_index);
        cJSON_AddNumberToObject(po, "last_seen_ms", (double)p->last_seen_ms);
        cJSON_AddItemToArray(peers, po);
    }
    return o;
}

static int cmp_replica(const void *a, const void *b)
{
    const struct replica *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

static char *build_snapshot(struct cluster *c)
{
    /* Listed by id; the array itself stays put (pointers into it live). */
    struct replica *sorted[MAX_REPLICAS];
    for (unsigned i = 0; i < c->n_replicas; i++) {
        sorted[i] = &c->replicas[i];
    }
    qsort(sorted, c->n_replicas, sizeof(sorted[0]), cmp_replica);
    uint64_t commit = cluster_commit(c);
    struct replica *p = current_primary(c);
    uint64_t epoch = 0;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        if (replica_epoch(&c->replicas[i]) > epoch) {
            epoch = replica_epoch(&c->replicas[i]);
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", (double)epoch);
    if (p) {
        cJSON_AddStringToObject(o, "primary", p->id);
    } else {
        cJSON_AddNullToObject(o, "primary");
    }
    cJSON_AddNumberToObject(o, "commit_index", (double)commit);
    cJSON *arr = cJSON_AddArrayToObject(o, "replicas");
    for (unsigned i = 0; i < c->n_replicas; i++) {
        cJSON_AddItemToArray(arr, replica_json(sorted[i], commit));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

#define SNAPSHOT_EVERY_MS 100 /* browsers get at most 10 snapshots a second */

static void publish_snapshot(struct cluster *c)
{
    c->snapshot_published = clock_mono_ms();
    char *msg = cluster_snapshot_message(c);
    if (msg && c->o.publish) {
        c->o.publish(c->o.publish_arg, msg, strlen(msg));
    }
    free(msg);
}

static void snapshot_timer_cb(uv_timer_t *timer)
{
    publish_snapshot(timer->data);
}

/* The view changed: HTTP readers see it at once; WebSocket clients get it
 * now or at the end of the current pacing window, whichever is later. */
static void mark_changed(struct cluster *c)
{
    char *snap = build_snapshot(c);
    if (snap == NULL) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    free(c->snapshot);
    c->snapshot = snap;
    pthread_mutex_unlock(&c->mu);
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

char *cluster_snapshot(struct cluster *c)
{
    pthread_mutex_lock(&c->mu);
    char *s = strdup(c->snapshot ? c->snapshot : "{}");
    pthread_mutex_unlock(&c->mu);
    return s;
}

char *cluster_snapshot_message(struct cluster *c)
{
    char *snap = cluster_snapshot(c);
    if (snap == NULL) {
        return NULL;
    }
    size_t n = strlen(snap) + 40;
    char *msg = malloc(n);
    if (msg) {
        snprintf(msg, n, "{\"type\":\"cluster\",\"cluster\":%s}", snap);
    }
    free(snap);
    return msg;
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
    while (q) {
        struct job *j = q;
        q = q->next_queued;
        job_start(c, j);
    }
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
    publish_event(c, event_new("exited", id, id, r ? replica_epoch(r) : 0, 0, detail));
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void transport_closed(struct transport *t)
{
    struct cluster *c = transport_data(t);
    uv_close((uv_handle_t *)&c->poll_timer, close_cb);
    uv_close((uv_handle_t *)&c->retry_timer, close_cb);
    uv_close((uv_handle_t *)&c->commit_timer, close_cb);
    uv_close((uv_handle_t *)&c->snapshot_timer, close_cb);
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
    uv_timer_stop(&c->poll_timer);
    uv_timer_stop(&c->retry_timer);
    uv_timer_stop(&c->snapshot_timer);
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
        wire_free(c->replicas[i].status);
    }
    cJSON_Delete(c->pending_commit);
    transport_free(c->t);
    pthread_mutex_destroy(&c->mu);
    free(c->snapshot);
    free(c);
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
    uv_timer_init(&c->loop, &c->retry_timer);
    c->retry_timer.data = c;
    uv_timer_start(&c->retry_timer, retry_cb, 10, 10);
    uv_timer_init(&c->loop, &c->commit_timer);
    c->commit_timer.data = c;
    uv_timer_init(&c->loop, &c->snapshot_timer);
    c->snapshot_timer.data = c;
    c->snapshot = build_snapshot(c);
    if (uv_thread_create(&c->thread, loop_thread, c) != 0) {
        snprintf(err, errlen, "cannot start the cluster thread");
        return NULL;
    }
    return c;
}
