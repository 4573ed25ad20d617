/*
 * coordinator/cluster.c — see cluster.h.
 *
 * Sections: jobs (the thread boundary), replicas (connections, status,
 * events, the one notion of primary), request forwarding, reads and
 * failure injection, membership (remove, add, replace, retiring removed
 * --spawn replicas), the fault lab (faults and timing pushed to replicas),
 * publishing (the view and events), the loop thread.
 */
#include "cluster.h"
#include "clock.h"
#include "discovery.h"
#include "lab.h"
#include "logging.h"
#include "metrics.h"
#include "supervisor.h"
#include "transport.h"
#include "history.h" /* HISTORY_DATA_BYTES: what an event shows of a request */
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
#define SEEN_FROM_VIEW          UINT64_MAX /* the job's seen_index: stamp it at the first send */
#define BUSY_PAUSE_MS           100   /* between tries while a membership change is in progress */
#define REPLACE_REMOVE_MS       60000 /* a replaced replica's removal, in the background */
#define RETIRE_WAIT_MS          60000 /* a removal that has not committed by then is left alone */
#define PRUNE_AFTER_MS          30000 /* forget a replica nobody lists this long after its loss */
/* A voter counts as reachable while its status answers keep coming: a
 * paused (SIGSTOPped) replica keeps its TCP connection but answers nothing. */
#define ANSWERING_STATUS_POLLS 5

/* ========================================================================
 * Jobs: the thread boundary
 * ====================================================================== */

enum job_type {
    JOB_REQUEST,
    JOB_READ,
    JOB_REPLICA,
    JOB_FAIL,
    JOB_CALL,   /* run a function on the loop thread (cluster_call) */
    JOB_REMOVE, /* RemoveMember to the primary */
    JOB_ADD,    /* --spawn: one more replica */
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
    uint64_t seen_index; /* JOB_REQUEST: see cluster_request; SEEN_FROM_VIEW until sent */
    bool fault;
    char replica[LIMIT_ID_BYTES]; /* JOB_REPLICA, JOB_FAIL ("" = primary), JOB_REMOVE */
    bool replace;                 /* JOB_FAIL: start a replacement, remove the failed one */
    uint64_t after;
    uint32_t limit;
    bool linearizable; /* JOB_READ */
    int64_t started;   /* monotonic ms: when the HTTP request arrived */
    int64_t deadline;  /* monotonic ms */
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
    int errors;        /* Error replies in a row */
    unsigned attempts; /* JOB_REMOVE: RemoveMember messages sent */
    bool busy;         /* JOB_REMOVE: the last answer was BUSY */
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
    bool start_failed; /* the supervisor gave it up (kept exiting at start) */
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
    struct view_histogram wal_fsync;
    uint64_t pending_requests;
    uint64_t handshakes_refused;
    struct view_storage storage;
    bool voter;
    char believes_primary[LIMIT_ID_BYTES];
    struct view_lab lab; /* the fault lab, from its status */
    size_t n_peers;
    struct view_peer *peers; /* n_peers, malloc'ed */
    /* The configuration it holds (from its status). */
    char cluster_id[LIMIT_ID_BYTES];
    uint64_t config_index;
    unsigned n_members;
    struct view_member members[LIMIT_MEMBERS];
    unsigned n_removed;
    char removed[LIMIT_MEMBERS][LIMIT_ID_BYTES];
    int64_t status_at;
    bool status_pending;
    int64_t down_since;
    int64_t unlisted_since; /* 0, or since when no view lists it (it is then forgotten) */
};

/* A --spawn replica removed from the configuration: its process is stopped
 * once the removal has committed (and a primary that removed itself has
 * handed over). */
struct retiring {
    char id[LIMIT_ID_BYTES];
    uint64_t index;  /* the removal's entry */
    int64_t since;   /* when the removal was accepted */
    int64_t give_up; /* not settled by then: left alone */
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

    /* Slots never move (connections point at them); a forgotten replica's
     * slot has an empty id and is reused. */
    struct replica replicas[MAX_REPLICAS];
    unsigned n_replicas;
    struct retiring retiring[LIMIT_MEMBERS];
    unsigned n_retiring;
    uint64_t next_call_id;
    uint64_t acked_index; /* the highest index a request was acknowledged at */
    struct job *active;   /* jobs the loop is working on */
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
    unsigned poll_every_ms;    /* status poll period */

    /* The newest committed event not yet published. */
    cJSON *pending_commit;

    /* The fault lab: faults in force (oldest first), the timing asked for
     * (and how many times it changed), the timer at the next expiry. */
    struct lab_fault faults[LIMIT_FAULTS];
    unsigned n_faults;
    uint64_t next_fault_id;
    struct lab_timing timing;
    uint64_t timing_seq;
    uv_timer_t lab_timer;

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
                     bool fault, const uint64_t *seen, unsigned timeout_ms,
                     struct cluster_reply *out)
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
    j->seen_index = seen ? *seen : SEEN_FROM_VIEW;
    job_run(c, j, out);
}

static void job_start(struct cluster *c, struct job *j);

void cluster_request_async(struct cluster *c, const char *data, size_t len, const char *client_id,
                           bool fault, const uint64_t *seen, unsigned timeout_ms,
                           cluster_done_fn done, void *arg)
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
    j->seen_index = seen ? *seen : SEEN_FROM_VIEW;
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

void cluster_read(struct cluster *c, uint64_t after, uint32_t limit, bool linearizable,
                  unsigned timeout_ms, struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_READ, clock_mono_ms(), timeout_ms);
    if (j == NULL) {
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    j->after = after;
    j->limit = limit;
    j->linearizable = linearizable;
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

void cluster_fail(struct cluster *c, const char *id, bool replace, unsigned timeout_ms,
                  struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_FAIL, clock_mono_ms(), timeout_ms);
    if (j == NULL) {
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(j->replica, sizeof(j->replica), "%s", id ? id : "");
    j->replace = replace;
    job_run(c, j, out);
}

void cluster_remove(struct cluster *c, const char *id, unsigned timeout_ms,
                    struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_REMOVE, clock_mono_ms(), timeout_ms);
    if (j == NULL) {
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    snprintf(j->replica, sizeof(j->replica), "%s", id);
    job_run(c, j, out);
}

void cluster_add(struct cluster *c, unsigned timeout_ms, struct cluster_reply *out)
{
    struct job *j = job_new(c, JOB_ADD, clock_mono_ms(), timeout_ms);
    if (j == NULL) {
        memset(out, 0, sizeof(*out));
        set_error(out, 503, "unavailable", "out of memory");
        return;
    }
    job_run(c, j, out);
}

/* ========================================================================
 * Replicas
 * ====================================================================== */

static struct replica *replica_find(struct cluster *c, const char *id)
{
    if (id == NULL || id[0] == '\0') {
        return NULL; /* never a forgotten slot */
    }
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
    if (r != NULL || id[0] == '\0') {
        return r;
    }
    for (unsigned i = 0; i < c->n_replicas && r == NULL; i++) {
        if (c->replicas[i].id[0] == '\0') {
            r = &c->replicas[i]; /* a forgotten one's slot */
        }
    }
    if (r == NULL && c->n_replicas < MAX_REPLICAS) {
        r = &c->replicas[c->n_replicas++];
    }
    if (r != NULL) {
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

/* The display name of a replica (its Hello's, then its status's): what a
 * dashboard matches an event to (under compose, the container's DNS name
 * where the id is a container id). The id itself when it has none or is
 * unknown; "" for "". */
static const char *replica_name(struct cluster *c, const char *id)
{
    const struct replica *r = replica_find(c, id);
    return r != NULL && r->name[0] != '\0' ? r->name : id ? id : "";
}

static cJSON *event_new(struct cluster *c, const char *type, const char *replica,
                        const char *subject, uint64_t epoch, uint64_t index, const char *detail)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddStringToObject(ev, "replica", replica ? replica : "");
    cJSON_AddStringToObject(ev, "replica_name", replica_name(c, replica));
    cJSON_AddStringToObject(ev, "subject", subject ? subject : "");
    cJSON_AddStringToObject(ev, "subject_name", replica_name(c, subject));
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

/* A status asked now, whatever was asked before; its call id (0, or the
 * timing change it follows: see cluster_timing) comes back in it. Status
 * replies are otherwise matched by replica, not call. */
static void status_after(struct replica *r, uint64_t call_id)
{
    Envelope env;
    Replicacao__StatusRequest req = REPLICACAO__STATUS_REQUEST__INIT;
    wire_init(&env, SELF_ID, 0);
    req.call_id = call_id;
    env.body_case = REPLICACAO__ENVELOPE__BODY_STATUS_REQUEST;
    env.status_request = &req;
    conn_queue(r->conn, &env);
    r->status_pending = true;
}

static void request_status(struct replica *r)
{
    if (r->conn != NULL && !r->status_pending) {
        status_after(r, 0);
    }
}

static void refresh_targets(struct cluster *c);
static void check_retiring(struct cluster *c);
static void lab_push_faults(struct cluster *c, struct replica *r);
static void lab_push_timing(struct cluster *c, struct replica *r);
static const struct replica *config_source(struct cluster *c);
static bool listed(struct cluster *c, const struct replica *r, const struct replica *cfg);

/* Forget replicas no view has listed for PRUNE_AFTER_MS (removed, and
 * gone), so their slots can be reused. */
static void prune(struct cluster *c, int64_t now)
{
    const struct replica *cfg = config_source(c);
    for (unsigned i = 0; i < c->n_replicas; i++) {
        struct replica *r = &c->replicas[i];
        if (r->id[0] == '\0' || listed(c, r, cfg)) {
            r->unlisted_since = 0;
        } else if (r->unlisted_since == 0) {
            r->unlisted_since = now;
        } else if (now - r->unlisted_since >= PRUNE_AFTER_MS) {
            log_debug("forgetting replica %s", r->id);
            free(r->peers);
            memset(r, 0, sizeof(*r));
        }
    }
}

static void poll_cb(uv_timer_t *timer)
{
    struct cluster *c = timer->data;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        request_status(&c->replicas[i]);
    }
    refresh_targets(c);
    check_retiring(c);
    prune(c, clock_mono_ms());
    transport_flush(c->t);
}

static void on_hello(struct transport *t, struct conn *conn)
{
    struct cluster *c = transport_data(t);
    if (conn_is_client(conn)) {
        return;
    }
    struct replica *r = replica_get(c, conn_peer_id(conn));
    if (r == NULL) {
        conn_close(conn, "too many replicas");
        return;
    }
    bool was_gone = r->conn == NULL && (r->down_since != 0 || r->failed);
    r->conn = conn;
    r->failed = false;
    r->start_failed = false;
    r->down_since = 0;
    r->status_pending = false;
    r->incarnation = ++c->next_incarnation;
    const char *name = conn_peer_name(conn);
    snprintf(r->name, sizeof(r->name), "%s", name[0] ? name : r->id);
    snprintf(r->address, sizeof(r->address), "%s", conn_peer_address(conn));
    conn_set_data(conn, r);
    Envelope env;
    Replicacao__Subscribe sub = REPLICACAO__SUBSCRIBE__INIT;
    sub.traffic = true; /* the dashboard animates the protocol's messages */
    wire_init(&env, SELF_ID, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &sub;
    conn_queue(conn, &env);
    /* A restarted or new replica honours what is in force. */
    lab_push_timing(c, r);
    lab_push_faults(c, r);
    request_status(r);
    log_info("replica %s (%s) connected", r->id, r->address);
    publish_event(c, event_new(c, was_gone ? "up" : "joined_view", r->id, r->id, 0, 0,
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
        publish_event(c, event_new(c, "down", r->id, r->id, r->epoch, 0, "connection closed"));
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
            event_new(c, e->type, e->replica, e->subject, e->epoch, e->index, e->detail);
        if (!uv_is_active((uv_handle_t *)&c->commit_timer)) {
            uv_timer_start(&c->commit_timer, commit_timer_cb, 0, 0);
        }
        return;
    }
    cJSON *ev = event_new(c, e->type, e->replica, e->subject, e->epoch, e->index, e->detail);
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

/* wire_unpack checked it: at most LIMIT_HISTOGRAM_BUCKETS, consistent. */
static void histogram_copy(struct view_histogram *out, const Replicacao__Histogram *h)
{
    memset(out, 0, sizeof(*out));
    if (h == NULL || h->n_bounds_us > LIMIT_HISTOGRAM_BUCKETS) {
        return;
    }
    out->n = (unsigned)h->n_bounds_us;
    memcpy(out->bounds_us, h->bounds_us, h->n_bounds_us * sizeof(uint64_t));
    memcpy(out->counts, h->counts, h->n_bounds_us * sizeof(uint64_t));
    out->count = h->count;
    out->sum_us = h->sum_us;
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
        peers[i].member = p->member;
        peers[i].listed = p->listed;
        peers[i].match_index = p->match_index;
        peers[i].last_seen_ms = p->last_seen_ms;
        histogram_copy(&peers[i].round_trip, p->round_trip);
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
    histogram_copy(&r->wal_fsync, s->wal_fsync);
    r->pending_requests = s->pending_requests;
    r->handshakes_refused = s->handshakes_refused;
    r->storage = (struct view_storage){
        .log_bytes = s->log_bytes,
        .log_segments = s->log_segments,
        .first_index = s->first_index,
        .cache_bytes = s->cache_bytes,
        .resident_bytes = s->resident_bytes,
        .session_horizon = s->session_horizon,
        .sessions = s->sessions,
        .storage_errors = s->storage_errors,
    };
    snprintf(r->storage.disk, sizeof(r->storage.disk), "%s", s->disk[0] ? s->disk : "ok");
    r->voter = s->voter;
    snprintf(r->believes_primary, sizeof(r->believes_primary), "%s", s->primary);
    r->lab.paused_ms = s->paused_ms;
    r->lab.n_fault_rules = (unsigned)s->n_faults;
    r->lab.heartbeat_ms = s->heartbeat_ms;
    r->lab.election_min_ms = s->election_min_ms;
    r->lab.election_max_ms = s->election_max_ms;
    if (s->call_id > r->lab.timing_seq) {
        r->lab.timing_seq = s->call_id; /* answers the status asked after a timing change */
    }
    /* Held to the Hello's rules (the wire checks those only there): a name
     * cut short could end inside a UTF-8 sequence. */
    if (s->name[0] != '\0' && validate_text(s->name, strlen(s->name), LIMIT_NAME_BYTES)) {
        snprintf(r->name, sizeof(r->name), "%s", s->name);
    }
    snprintf(r->cluster_id, sizeof(r->cluster_id), "%s", s->cluster_id);
    r->config_index = s->config_index;
    /* wire_unpack caps both lists at LIMIT_MEMBERS. */
    r->n_members = 0;
    for (size_t i = 0; i < s->n_members && i < LIMIT_MEMBERS; i++) {
        struct view_member *m = &r->members[r->n_members++];
        snprintf(m->id, sizeof(m->id), "%s", s->members[i]->id);
        m->voter = s->members[i]->voter;
    }
    r->n_removed = 0;
    for (size_t i = 0; i < s->n_removed && i < LIMIT_MEMBERS; i++) {
        snprintf(r->removed[r->n_removed++], LIMIT_ID_BYTES, "%s", s->removed[i]);
    }
    int role = role_parse(s->role);
    r->role = role < 0 ? ROLE_BACKUP : (enum role)role;
    r->epoch = s->epoch;
}

static void handle_reply(struct cluster *c, struct replica *r, const Envelope *env);
static void route_error(struct cluster *c, struct replica *r, const Replicacao__Error *e);
static bool listening(struct cluster *c);

/* A replica's protocol messages, forwarded to the WebSocket as they come
 * (batched and, at normal speed, aggregated by the replica):
 * {"type":"messages","replica","messages":[{"type","from","to",...}]}. */
static void publish_traffic(struct cluster *c, struct replica *r, const Replicacao__Traffic *t)
{
    if (c->o.publish == NULL || !listening(c) ||
        (c->o.live_listening != NULL && !c->o.live_listening(c->o.live_arg))) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "messages");
    cJSON_AddStringToObject(o, "replica", r->id);
    cJSON *items = cJSON_AddArrayToObject(o, "messages");
    for (size_t i = 0; i < t->n_items; i++) {
        const Replicacao__TrafficItem *it = t->items[i];
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "type", it->type);
        cJSON_AddStringToObject(m, "from", r->id);
        cJSON_AddStringToObject(m, "to", it->to);
        cJSON_AddNumberToObject(m, "epoch", (double)it->epoch);
        cJSON_AddNumberToObject(m, "bytes", (double)it->bytes);
        cJSON_AddNumberToObject(m, "count", it->count);
        cJSON_AddNumberToObject(m, "time_ms", (double)it->time_ms);
        cJSON_AddNumberToObject(m, "entries", it->entries);
        cJSON_AddBoolToObject(m, "pre_vote", it->pre_vote);
        cJSON_AddBoolToObject(m, "granted", it->granted);
        cJSON_AddItemToArray(items, m);
    }
    cJSON_AddNumberToObject(o, "dropped", t->dropped);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s != NULL) {
        c->o.publish(c->o.publish_arg, s, strlen(s));
    }
    free(s);
}

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
        check_retiring(c);
        break;
    case REPLICACAO__ENVELOPE__BODY_EVENT:
        handle_event(c, r, env->event);
        break;
    case REPLICACAO__ENVELOPE__BODY_TRAFFIC:
        publish_traffic(c, r, env->traffic);
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
    cJSON *ev = event_new(c, event_name(type), primary, primary, epoch, index, detail);
    cJSON *req = cJSON_AddObjectToObject(ev, "request");
    cJSON_AddStringToObject(req, "id", q->client_id);
    /* An event shows what a request was, not all of it (GET /api/requests
     * has it whole): building, printing and recording 4 KiB twice per
     * request cost the HTTP path about 45 % of its writes/s at 64
     * connections. */
    size_t keep = utf8_cut(q->data, q->len, HISTORY_DATA_BYTES);
    char *data = strndup(q->data, keep);
    cJSON_AddStringToObject(req, "data", data ? data : "");
    free(data);
    if (keep < q->len) {
        cJSON_AddBoolToObject(req, "data_cut", true);
    }
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
        if (rep->index > c->acked_index) {
            c->acked_index = rep->index;
        }
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
    case REPLICACAO__CLIENT_REPLY__STATUS__EXPIRED: {
        request_event(c, q, EVENT_REQUEST_FAILED, 0, 0, "", rep->message);
        cJSON *o = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", "session_expired");
        cJSON_AddStringToObject(
            err, "message",
            "this id's session expired: the request may have been applied before, and is not "
            "applied again; check GET /api/requests, or send it with a new id");
        cJSON_AddNumberToObject(err, "horizon", (double)rep->index);
        *status = 409;
        *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return true;
    }
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

/* The highest commit index any replica reported, or any request was
 * acknowledged at (statuses arrive every few tens of ms; acknowledgements
 * at once). */
static uint64_t cluster_commit(struct cluster *c)
{
    uint64_t commit = c->acked_index;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        const struct replica *r = &c->replicas[i];
        if (r->has_status && r->commit_index > commit) {
            commit = r->commit_index;
        }
    }
    return commit;
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
    publish_event(c, event_new(c, "failed", r->id, r->id, r->epoch, 0, why));
    mark_changed(c);
}

/* Loop thread: move a request job on as far as it goes now. Its timer is
 * re-armed by the caller (job_arm) for whatever it waits for next. */
/* Where a job's next try goes: the replica a "not primary" answer named
 * (once), if it is connected and not failed, else the primary. NULL: none. */
static struct replica *job_target(struct cluster *c, struct job *j)
{
    struct replica *p = j->hint[0] != '\0' ? replica_find(c, j->hint) : NULL;
    j->hint[0] = '\0';
    if (p == NULL || p->conn == NULL || p->failed) {
        p = primary(c);
    }
    return p;
}

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
        struct replica *p = job_target(c, j);
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
        if (j->seen_index == SEEN_FROM_VIEW) {
            /* Stamped at the first attempt and kept for the retries: every
             * entry up to a commit index it saw is in the log for good, so
             * the request, if ever appended, lies after it. */
            j->seen_index = cluster_commit(c);
        }
        req.seen_index = j->seen_index;
        req.seen_index_set = true;
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
    req.consistency = j->type == JOB_READ && j->linearizable
                          ? REPLICACAO__READ_REQUEST__CONSISTENCY__LINEARIZABLE
                          : REPLICACAO__READ_REQUEST__CONSISTENCY__SERIALIZABLE;
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

static const struct view_member *config_member(const struct replica *r, const char *id);

/* A replica as the view shows it, at `now` (ages are counted from its last
 * status), with `commit` the cluster's commit index and `cfg` the replica
 * whose configuration is the cluster's (NULL: none known). Its peers go to
 * `peers` (room for r->n_peers). c: only for its poll period. */
static void replica_fill(const struct cluster *c, const struct replica *r, int64_t now,
                         uint64_t commit, const struct replica *cfg, struct view_replica *out,
                         struct view_peer *peers)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", r->id);
    snprintf(out->name, sizeof(out->name), "%s", r->name);
    snprintf(out->address, sizeof(out->address), "%s", r->address);
    out->role = r->role;
    out->status = r->conn ? REACH_UP : r->failed || r->start_failed ? REACH_FAILED : REACH_DOWN;
    out->start_failed = r->start_failed && r->conn == NULL;
    const struct view_member *m = config_member(cfg, r->id);
    out->member = m != NULL;
    out->voter = cfg != NULL ? m != NULL && m->voter : r->has_status && r->voter;
    out->epoch = r->epoch;
    out->incarnation = r->incarnation;
    uint64_t ci = r->has_status ? r->commit_index : 0;
    out->lag = commit > ci ? commit - ci : 0;
    out->heartbeat_age_ms = -1;
    out->status_age_ms = r->has_status ? now - r->status_at : -1;
    out->answering = r->conn != NULL && r->has_status &&
                     now - r->status_at <= ANSWERING_STATUS_POLLS * c->poll_every_ms;
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
    out->wal_fsync = r->wal_fsync;
    out->pending_requests = r->pending_requests;
    out->handshakes_refused = r->handshakes_refused;
    out->storage = r->storage;
    snprintf(out->believes_primary, sizeof(out->believes_primary), "%s", r->believes_primary);
    out->uptime_ms = r->conn ? r->uptime_ms + now - r->status_at : 0;
    out->lab = r->lab;
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

static void read_step(struct cluster *c, struct job *j, int64_t now);
static void remove_start(struct cluster *c, struct job *j, int64_t now);
static void remove_step(struct cluster *c, struct job *j, int64_t now);
static void remove_reply(struct cluster *c, struct job *j, struct replica *from,
                         const Replicacao__ClientReply *rep);
static void add_start(struct cluster *c, struct job *j);
static void replace_start(struct cluster *c, struct job *j, struct replica *r);

static void job_start(struct cluster *c, struct job *j)
{
    int64_t now = clock_mono_ms();
    uv_timer_init(&c->loop, &j->timer);
    j->timer.data = j;
    j->next_active = c->active;
    c->active = j;
    switch (j->type) {
    case JOB_REQUEST:
        metrics_request_started(c->o.metrics);
        j->phase = j->fault ? PHASE_FAIL_PRIMARY : PHASE_SEND;
        request_step(c, j, now);
        break;
    case JOB_READ:
        if (j->linearizable) {
            j->phase = PHASE_SEND;
            j->next_try = now;
            read_step(c, j, now);
            break;
        }
        struct replica *r = read_target(c, NULL);
        if (r == NULL) {
            job_finish(c, j, 503, cluster_error_json("no_replica", "no replica is reachable"));
            return;
        }
        send_read(c, j, r, REPLICACAO__READ_REQUEST__FILTER__ALL);
        break;
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
        replica_fill(c, r, now, cluster_commit(c), config_source(c), &vr, peers);
        j->partial = view_replica_json(&vr);
        /* Its data is that replica's own committed log, as it is now. */
        cJSON_AddStringToObject(j->partial, "consistency", "serializable");
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
        if (j->replace && c->sup == NULL) {
            job_finish(c, j, 409,
                       cluster_error_json("not_spawn",
                                          "replace=true needs a coordinator started with "
                                          "--spawn N (it starts the replacement)"));
            return;
        }
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
        if (j->replace) {
            replace_start(c, j, r);
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
    case JOB_REMOVE:
        remove_start(c, j, now);
        break;
    case JOB_ADD:
        add_start(c, j);
        return;
    }
    job_arm(c, j, now);
}

/* Loop thread: a linearizable read goes to the primary (or the replica a
 * refusal named), once per try; without one, it waits for the next. */
static void read_step(struct cluster *c, struct job *j, int64_t now)
{
    if (j->finished || j->phase != PHASE_SEND || now < j->next_try) {
        return;
    }
    struct replica *r = job_target(c, j);
    if (r == NULL || r->conn == NULL) {
        j->next_try = now + RETRY_PAUSE_MS;
        return;
    }
    j->reads_outstanding = 0;
    send_read(c, j, r, REPLICACAO__READ_REQUEST__FILTER__ALL);
    j->phase = PHASE_WAITING;
    j->attempt_deadline = now + ATTEMPT_MS;
}

/* A linearizable read the replica would not serve (not the primary, or
 * deposed before confirming): try again where it points, or shortly. */
static void read_retry(struct cluster *c, struct job *j, const char *hint, int64_t now)
{
    j->phase = PHASE_SEND;
    snprintf(j->hint, sizeof(j->hint), "%s", hint ? hint : "");
    j->next_try = j->hint[0] ? now : now + RETRY_PAUSE_MS;
    read_step(c, j, now);
    job_arm(c, j, now);
}

static void read_reply(struct cluster *c, struct job *j, const Replicacao__ReadReply *rr)
{
    if (j->type == JOB_READ && rr->status != REPLICACAO__CLIENT_REPLY__STATUS__OK) {
        if (j->linearizable) {
            read_retry(c, j, rr->primary, clock_mono_ms());
        } else {
            job_finish(c, j, 503, cluster_error_json("replica_error", rr->message));
        }
        return;
    }
    if (rr->compacted) {
        /* Retention dropped what was asked for: say where the log starts. */
        cJSON *o = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", "compacted");
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "entries before %llu are no longer kept (retention); ask from after=%llu",
                 (unsigned long long)rr->first_index, (unsigned long long)(rr->first_index - 1));
        cJSON_AddStringToObject(err, "message", msg);
        cJSON_AddNumberToObject(o, "first_index", (double)rr->first_index);
        cJSON_AddNumberToObject(o, "commit_index", (double)rr->commit_index);
        char *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        job_finish(c, j, 410, body);
        return;
    }
    cJSON *entries = cJSON_CreateArray();
    for (size_t i = 0; i < rr->n_entries; i++) {
        cJSON_AddItemToArray(entries, entry_json(rr->entries[i]));
    }
    if (j->type == JOB_READ) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "consistency",
                                j->linearizable ? "linearizable" : "serializable");
        cJSON_AddStringToObject(o, "served_by", j->target);
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
    bool phased = j->type == JOB_REQUEST || j->type == JOB_REMOVE;
    bool waiting = phased ? j->phase == PHASE_WAITING : j->reads_outstanding > 0;
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
        } else if (env->body_case == REPLICACAO__ENVELOPE__BODY_CLIENT_REPLY &&
                   j->type == JOB_REMOVE) {
            remove_reply(c, j, r, env->client_reply);
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
        if (j->linearizable) {
            read_retry(c, j, NULL, now);
            break;
        }
        struct replica *other = read_target(c, r);
        if (other == NULL) {
            job_finish(c, j, 503, cluster_error_json("replica_error", e->message));
            break;
        }
        j->reads_outstanding = 0;
        send_read(c, j, other, REPLICACAO__READ_REQUEST__FILTER__ALL);
        break;
    }
    default: /* JOB_REPLICA: only that replica has its data; JOB_REMOVE: it
              * does not take RemoveMember at all */
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
        if ((j->type == JOB_REQUEST || j->type == JOB_REMOVE) && j->phase == PHASE_WAITING) {
            j->phase = PHASE_SEND;
            j->next_try = now + RETRY_PAUSE_MS;
            job_arm(c, j, now);
        } else if (j->type == JOB_READ && j->linearizable && j->phase == PHASE_WAITING) {
            read_retry(c, j, NULL, now);
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
    } else if (j->type == JOB_REMOVE) {
        remove_step(c, j, now);
    } else if (j->type == JOB_READ && j->linearizable && now < j->deadline) {
        if (j->phase == PHASE_WAITING && now >= j->attempt_deadline) {
            read_retry(c, j, NULL, now); /* a primary that went silent */
        }
        read_step(c, j, now);
    } else if (j->type == JOB_READ && j->linearizable) {
        job_finish(c, j, 503,
                   cluster_error_json("no_primary",
                                      "no primary confirmed the read in time; "
                                      "retry, or read with consistency=serializable"));
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
    if (j->type == JOB_REQUEST || j->type == JOB_REMOVE ||
        (j->type == JOB_READ && j->linearizable)) {
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
        if (j->type == JOB_READ && j->linearizable && !j->finished) {
            if (j->phase == PHASE_SEND) {
                j->next_try = now;
                read_step(c, j, now);
                job_arm(c, j, now);
            }
            continue;
        }
        if ((j->type != JOB_REQUEST && j->type != JOB_REMOVE) || j->finished) {
            continue;
        }
        if (j->phase != PHASE_WAITING && !j->busy) {
            j->next_try = now;
        }
        if (j->type == JOB_REQUEST) {
            request_step(c, j, now);
        } else {
            remove_step(c, j, now);
        }
        job_arm(c, j, now);
    }
    transport_flush(c->t);
}

/* ========================================================================
 * Membership
 * ====================================================================== */

/* Whose configuration is the cluster's: the primary's, or without one the
 * newest (highest config_index) that a reachable replica holds. NULL while
 * nobody reports one (bootstrapping). */
static const struct replica *config_source(struct cluster *c)
{
    const struct replica *p = primary(c);
    if (p != NULL && p->has_status && p->config_index > 0) {
        return p;
    }
    const struct replica *best = NULL;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        const struct replica *r = &c->replicas[i];
        if (r->conn && r->has_status && r->config_index > 0 &&
            (best == NULL || r->config_index > best->config_index)) {
            best = r;
        }
    }
    return best;
}

/* Is id a member of the configuration r holds? */
static const struct view_member *config_member(const struct replica *r, const char *id)
{
    for (unsigned i = 0; r != NULL && i < r->n_members; i++) {
        if (strcmp(r->members[i].id, id) == 0) {
            return &r->members[i];
        }
    }
    return NULL;
}

static bool config_removed(const struct replica *r, const char *id)
{
    for (unsigned i = 0; r != NULL && i < r->n_removed; i++) {
        if (strcmp(r->removed[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/* supervisor_taken_fn: an id the cluster knows in any way is never given to
 * a new replica (a removed id would not even be let back in). */
static bool id_taken(void *arg, const char *id)
{
    struct cluster *c = arg;
    if (replica_find(c, id) != NULL) {
        return true;
    }
    for (unsigned i = 0; i < c->n_replicas; i++) {
        if (config_member(&c->replicas[i], id) || config_removed(&c->replicas[i], id)) {
            return true;
        }
    }
    return false;
}

/* --spawn: the transport's targets are the supervised replicas' addresses
 * (no DNS to resolve). Called at every poll as well, so a retired replica's
 * address ages out of the transport. */
static void refresh_targets(struct cluster *c)
{
    if (c->sup == NULL) {
        return;
    }
    struct addr_list l;
    supervisor_targets(c->sup, &l);
    char addrs[ADDR_MAX_ITEMS][ADDR_HOST_MAX + 8];
    const char *list[ADDR_MAX_ITEMS];
    for (unsigned i = 0; i < l.n; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "%s:%s", l.items[i].host, l.items[i].port);
        list[i] = addrs[i];
    }
    transport_set_targets(c->t, list, l.n);
}

/* --spawn: stop a removed replica's process once its removal has
 * committed: a primary other than it holds a configuration without it and
 * has committed the removal's entry (so a primary that removed itself has
 * handed over by then). */
static void retire_watch(struct cluster *c, const char *id, uint64_t index)
{
    struct retiring *w = NULL;
    for (unsigned i = 0; i < c->n_retiring; i++) {
        if (strcmp(c->retiring[i].id, id) == 0) {
            w = &c->retiring[i];
        }
    }
    if (w == NULL && c->n_retiring < LIMIT_MEMBERS) {
        w = &c->retiring[c->n_retiring++];
    }
    if (w == NULL) {
        log_warn("too many removals in flight: %s will not be stopped", id);
        return;
    }
    int64_t now = clock_mono_ms();
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->index = index;
    w->since = now;
    w->give_up = now + RETIRE_WAIT_MS;
}

/* A supervised replica on the committed removed list (removed by anybody:
 * replctl, another coordinator) is useless from then on: it is never added
 * back. It is stopped too. */
static void retire_removed(struct cluster *c, const struct replica *p)
{
    if (c->sup == NULL || p == NULL || !p->has_status || p->config_index == 0 ||
        p->commit_index < p->config_index) {
        return;
    }
    for (unsigned i = 0; i < p->n_removed; i++) {
        const char *id = p->removed[i];
        if (strcmp(id, p->id) != 0 && config_member(p, id) == NULL &&
            supervisor_has(c->sup, id, NULL)) {
            log_info("%s is on the cluster's removed list (configuration %llu, committed): "
                     "stopping its process for good",
                     id, (unsigned long long)p->config_index);
            supervisor_retire(c->sup, id, true);
            refresh_targets(c);
            mark_changed(c);
        }
    }
}

static void check_retiring(struct cluster *c)
{
    int64_t now = clock_mono_ms();
    const struct replica *p = primary(c);
    for (unsigned i = 0; i < c->n_retiring;) {
        struct retiring *w = &c->retiring[i];
        bool settled = p != NULL && p->has_status && strcmp(p->id, w->id) != 0 &&
                       p->config_index > 0 && config_member(p, w->id) == NULL &&
                       p->commit_index >= w->index;
        if (settled) {
            log_info("removal of %s committed (index %llu, primary %s) after %lld ms: stopping "
                     "its process for good",
                     w->id, (unsigned long long)w->index, p->id, (long long)(now - w->since));
            supervisor_retire(c->sup, w->id, true);
            refresh_targets(c);
        } else if (now >= w->give_up) {
            log_warn("removal of %s (index %llu) has not committed within %d s: its process is "
                     "left running",
                     w->id, (unsigned long long)w->index, RETIRE_WAIT_MS / 1000);
        } else {
            i++;
            continue;
        }
        *w = c->retiring[--c->n_retiring];
        mark_changed(c);
    }
    retire_removed(c, p);
}

/* A finished removal: 202 {"removing","index"}; under --spawn its process
 * is stopped once the change commits. */
static void remove_accepted(struct cluster *c, struct job *j, uint64_t index)
{
    if (c->sup != NULL && supervisor_has(c->sup, j->replica, NULL)) {
        if (index > 0) {
            retire_watch(c, j->replica, index);
        } else {
            supervisor_retire(c->sup, j->replica, true); /* no member: nothing to wait for */
            refresh_targets(c);
            mark_changed(c);
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "removing", j->replica);
    cJSON_AddNumberToObject(o, "index", (double)index);
    job_finish_json(c, j, 202, o);
}

/* Loop thread: move a removal on as far as it goes now (request_step's
 * twin: the same phases, for RemoveMember). */
static void remove_step(struct cluster *c, struct job *j, int64_t now)
{
    if (j->finished) {
        return;
    }
    if (now >= j->deadline) {
        if (j->busy) {
            job_finish(c, j, 503,
                       cluster_error_json("busy", "another membership change is still in "
                                                  "progress; retry shortly"));
        } else if (j->phase == PHASE_WAITING) {
            job_finish(c, j, 504,
                       cluster_error_json("outcome_unknown",
                                          "the removal was sent but not confirmed in time; see "
                                          "GET /api/cluster, or retry"));
        } else {
            job_finish(c, j, 503, cluster_error_json("no_primary", "no primary appeared in time"));
        }
        return;
    }
    if (j->phase == PHASE_WAITING) {
        const struct replica *p = primary(c);
        bool superseded = p != NULL && strcmp(p->id, j->target) != 0 && p->epoch > j->target_epoch;
        if (now < j->attempt_deadline && !superseded) {
            return;
        }
        j->phase = PHASE_SEND;
        j->next_try = now;
    }
    if (now < j->next_try) {
        return;
    }
    struct replica *p = job_target(c, j);
    if (p == NULL) {
        j->next_try = now + RETRY_PAUSE_MS;
        return;
    }
    Envelope env;
    Replicacao__RemoveMember rm = REPLICACAO__REMOVE_MEMBER__INIT;
    wire_init(&env, SELF_ID, 0);
    j->call_id = ++c->next_call_id;
    rm.call_id = j->call_id;
    rm.id = j->replica;
    env.body_case = REPLICACAO__ENVELOPE__BODY_REMOVE_MEMBER;
    env.remove_member = &rm;
    conn_queue(p->conn, &env);
    snprintf(j->target, sizeof(j->target), "%s", p->id);
    j->target_epoch = p->epoch;
    j->sent_once = true;
    j->attempts++;
    j->phase = PHASE_WAITING;
    j->attempt_deadline = now + ATTEMPT_MS;
}

static void remove_reply(struct cluster *c, struct job *j, struct replica *from,
                         const Replicacao__ClientReply *rep)
{
    int64_t now = clock_mono_ms();
    j->phase = PHASE_SEND;
    j->busy = false;
    char msg[LIMIT_TEXT_BYTES + 128];
    switch (rep->status) {
    case REPLICACAO__CLIENT_REPLY__STATUS__OK:
        log_info("removal of %s accepted by %s at index %llu", j->replica, from->id,
                 (unsigned long long)rep->index);
        remove_accepted(c, j, rep->index);
        return;
    case REPLICACAO__CLIENT_REPLY__STATUS__NOT_FOUND:
        if (j->attempts > 1 && config_removed(from, j->replica)) {
            /* An earlier attempt went through before its answer was lost. */
            remove_accepted(c, j, from->config_index);
            return;
        }
        if (c->sup != NULL && supervisor_has(c->sup, j->replica, NULL)) {
            /* One of ours that never became a member (still joining, or
             * given up): there is nothing to change, only a process to stop. */
            remove_accepted(c, j, 0);
            return;
        }
        if (rep->message[0] != '\0') {
            snprintf(msg, sizeof(msg), "cannot remove %s: %s", j->replica, rep->message);
        } else {
            snprintf(msg, sizeof(msg), "%s is not a member of the cluster", j->replica);
        }
        job_finish(c, j, 404, cluster_error_json("not_found", msg));
        return;
    case REPLICACAO__CLIENT_REPLY__STATUS__NO_QUORUM:
        if (rep->message[0] != '\0') {
            snprintf(msg, sizeof(msg), "cannot remove %s: %s", j->replica, rep->message);
        } else {
            snprintf(msg, sizeof(msg), "removing %s would leave no reachable majority of voters",
                     j->replica);
        }
        job_finish(c, j, 409, cluster_error_json("no_quorum", msg));
        return;
    case REPLICACAO__CLIENT_REPLY__STATUS__REJECTED:
        job_finish(c, j, 409, cluster_error_json("rejected", rep->message));
        return;
    case REPLICACAO__CLIENT_REPLY__STATUS__BUSY:
        j->busy = true;
        j->next_try = now + BUSY_PAUSE_MS;
        break;
    case REPLICACAO__CLIENT_REPLY__STATUS__NOT_PRIMARY:
        snprintf(j->hint, sizeof(j->hint), "%s", rep->primary);
        j->next_try =
            rep->primary[0] && strcmp(rep->primary, j->target) != 0 ? now : now + RETRY_PAUSE_MS;
        break;
    default: /* UNKNOWN: the primary changed under it */
        j->next_try = now + RETRY_PAUSE_MS;
        break;
    }
    remove_step(c, j, now);
    job_arm(c, j, now);
}

static void remove_start(struct cluster *c, struct job *j, int64_t now)
{
    /* Asking a primary about an id nobody has heard of would only wait for
     * one to answer "not found". */
    if (!id_taken(c, j->replica)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no replica %s is known to the cluster", j->replica);
        job_finish(c, j, 404, cluster_error_json("not_found", msg));
        return;
    }
    j->phase = PHASE_SEND;
    remove_step(c, j, now);
}

/* The background removal of a replaced replica ends. */
static void replaced_removed(void *arg, struct cluster_reply *reply)
{
    (void)arg;
    if (reply->status == 202) {
        log_info("replaced replica removed: %s", reply->body ? reply->body : "");
    } else {
        log_warn("removal of a replaced replica failed (%d): %s; remove it with DELETE "
                 "/api/replicas/{id}",
                 reply->status, reply->body ? reply->body : "");
    }
}

static void add_start(struct cluster *c, struct job *j)
{
    if (c->sup == NULL) {
        job_finish(c, j, 409,
                   cluster_error_json("not_spawn",
                                      "this coordinator supervises no replicas (start it with "
                                      "--spawn N); under Docker, scale the replica service"));
        return;
    }
    char id[LIMIT_ID_BYTES], address[128], err[256];
    if (supervisor_add(c->sup, id_taken, c, id, sizeof(id), address, sizeof(address), err,
                       sizeof(err)) != 0) {
        job_finish(c, j, 409, cluster_error_json("cannot_spawn", err));
        return;
    }
    struct replica *r = replica_get(c, id);
    if (r != NULL) {
        snprintf(r->name, sizeof(r->name), "%s", id);
        snprintf(r->address, sizeof(r->address), "%s", address);
    }
    refresh_targets(c);
    mark_changed(c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "address", address);
    job_finish_json(c, j, 202, o);
}

/* POST /api/replicas/{id}/fail?replace=true: a new replica first (nothing
 * has happened when that fails), then the failed one is failed for good
 * and removed in the background. */
static void replace_start(struct cluster *c, struct job *j, struct replica *r)
{
    if (!supervisor_has(c->sup, r->id, NULL)) {
        job_finish(c, j, 409,
                   cluster_error_json("not_spawn", "that replica is not one this coordinator "
                                                   "supervises"));
        return;
    }
    char id[LIMIT_ID_BYTES], address[128], err[256];
    if (supervisor_add(c->sup, id_taken, c, id, sizeof(id), address, sizeof(address), err,
                       sizeof(err)) != 0) {
        job_finish(c, j, 409, cluster_error_json("cannot_spawn", err));
        return;
    }
    struct replica *n = replica_get(c, id);
    if (n != NULL) {
        snprintf(n->name, sizeof(n->name), "%s", id);
        snprintf(n->address, sizeof(n->address), "%s", address);
    }
    supervisor_retire(c->sup, r->id, false); /* it exits on the Fail: no restart */
    send_fail(c, r, "fail requested through the API (replaced)");
    refresh_targets(c);
    int64_t now = clock_mono_ms();
    struct job *rm = job_new(c, JOB_REMOVE, now, REPLACE_REMOVE_MS);
    if (rm != NULL) {
        snprintf(rm->replica, sizeof(rm->replica), "%s", r->id);
        rm->refs = 1; /* the loop thread's only: nobody waits */
        rm->done_fn = replaced_removed;
        job_start(c, rm);
    } else {
        log_warn("out of memory: %s is not removed", r->id);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "failed", r->id);
    cJSON_AddStringToObject(o, "replacement", id);
    job_finish_json(c, j, 202, o);
}

/* ========================================================================
 * The fault lab: faults and timing, pushed to the replicas that carry
 * them out (docs/fault-lab.md)
 * ====================================================================== */

/* Every replica the coordinator knows (ISOLATE cuts one from all of them). */
static unsigned known_ids(struct cluster *c, const char *ids[MAX_REPLICAS])
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        if (c->replicas[i].id[0] != '\0') {
            ids[n++] = c->replicas[i].id;
        }
    }
    return n;
}

/* r's rules for every fault in force, replacing what it holds. */
static void lab_push_faults(struct cluster *c, struct replica *r)
{
    if (r->conn == NULL) {
        return; /* pushed when it connects */
    }
    const char *all[MAX_REPLICAS];
    unsigned n_all = known_ids(c, all);
    int64_t now = clock_mono_ms();
    static Replicacao__FaultRule rules[LIMIT_FAULT_RULES];
    static Replicacao__FaultRule *ptrs[LIMIT_FAULT_RULES];
    struct lab_rule lr[LIMIT_MEMBERS];
    Replicacao__SetFaults sf = REPLICACAO__SET_FAULTS__INIT;
    for (unsigned i = 0; i < c->n_faults; i++) {
        const struct lab_fault *f = &c->faults[i];
        unsigned k = lab_rules(f, r->id, all, n_all, now, lr);
        for (unsigned j = 0; j < k && sf.n_rules < LIMIT_FAULT_RULES; j++) {
            Replicacao__FaultRule *fr = &rules[sf.n_rules];
            replicacao__fault_rule__init(fr);
            fr->fault_id = lr[j].fault_id;
            fr->peer = (char *)lr[j].peer;
            fr->loss = lr[j].loss;
            fr->delay_ms = lr[j].delay_ms;
            fr->expires_in_ms = lr[j].expires_in_ms;
            ptrs[sf.n_rules++] = fr;
        }
        unsigned pause = lab_pause_left(f, r->id, now);
        if (pause > sf.pause_ms) {
            sf.pause_ms = pause;
            sf.pause_fault_id = f->id;
        }
    }
    sf.rules = ptrs;
    Envelope env;
    wire_init(&env, SELF_ID, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SET_FAULTS;
    env.set_faults = &sf;
    conn_queue(r->conn, &env);
    status_after(r, 0);
}

/* r's timing. Also at every connection, so that what the coordinator shows
 * is what is in force: a coordinator that restarts (slow motion 1, no
 * faults) brings the replicas back to their flags and heals what its
 * predecessor left, rather than leave faults nobody lists. */
static void lab_push_timing(struct cluster *c, struct replica *r)
{
    if (r->conn == NULL) {
        return;
    }
    Replicacao__SetTiming st = REPLICACAO__SET_TIMING__INIT;
    st.slow_motion = c->timing.slow_motion;
    st.heartbeat_ms = c->timing.heartbeat_ms;
    st.election_min_ms = c->timing.election_min_ms;
    st.election_max_ms = c->timing.election_max_ms;
    Envelope env;
    wire_init(&env, SELF_ID, 0);
    env.body_case = REPLICACAO__ENVELOPE__BODY_SET_TIMING;
    env.set_timing = &st;
    conn_queue(r->conn, &env);
    status_after(r, c->timing_seq);
}

static void lab_push_all(struct cluster *c)
{
    for (unsigned i = 0; i < c->n_replicas; i++) {
        lab_push_faults(c, &c->replicas[i]);
    }
    transport_flush(c->t);
}

static void lab_timer_cb(uv_timer_t *timer);

static void lab_arm(struct cluster *c)
{
    int64_t next = 0, now = clock_mono_ms();
    for (unsigned i = 0; i < c->n_faults; i++) {
        int64_t at = c->faults[i].expires_at;
        if (at != 0 && (next == 0 || at < next)) {
            next = at;
        }
    }
    if (next == 0) {
        uv_timer_stop(&c->lab_timer);
    } else {
        uv_timer_start(&c->lab_timer, lab_timer_cb, next > now ? (uint64_t)(next - now) : 0, 0);
    }
}

static void lab_event(struct cluster *c, enum event_type type, const struct lab_fault *f,
                      const char *why)
{
    char detail[256];
    lab_describe(f, detail, sizeof(detail));
    if (why != NULL) {
        size_t n = strlen(detail);
        snprintf(detail + n, sizeof(detail) - n, ": %s", why);
    }
    log_info("fault lab: %s %s", event_name(type), detail);
    cJSON *ev = event_new(c, event_name(type), "", f->n_ids ? f->ids[0] : "", 0, 0, detail);
    cJSON_AddItemToObject(ev, "fault", lab_fault_json(f, clock_mono_ms()));
    publish_event(c, ev);
}

/* Remove fault i (healed or expired); the caller pushes and publishes. */
static void lab_remove(struct cluster *c, unsigned i, const char *why)
{
    struct lab_fault f = c->faults[i];
    memmove(&c->faults[i], &c->faults[i + 1], (c->n_faults - i - 1) * sizeof(c->faults[0]));
    c->n_faults--;
    lab_event(c, EVENT_FAULT_HEALED, &f, why);
}

/* Replicas drop expired rules by themselves; the coordinator forgets the
 * fault and pushes what is left. */
static void lab_timer_cb(uv_timer_t *timer)
{
    struct cluster *c = timer->data;
    int64_t now = clock_mono_ms();
    bool any = false;
    for (unsigned i = 0; i < c->n_faults;) {
        if (c->faults[i].expires_at != 0 && c->faults[i].expires_at <= now) {
            lab_remove(c, i, "expired");
            any = true;
        } else {
            i++;
        }
    }
    if (any) {
        lab_push_all(c);
        mark_changed(c);
    }
    lab_arm(c);
}

struct lab_call {
    const struct lab_fault *fault;
    const struct lab_timing *timing;
    uint64_t id;
    uint64_t seq; /* out: the timing change */
    struct cluster_reply *out;
};

/* The replica whose display name is `name`, when exactly one has it;
 * *several: more than one has. */
static struct replica *replica_named(struct cluster *c, const char *name, bool *several)
{
    struct replica *found = NULL;
    *several = false;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        struct replica *r = &c->replicas[i];
        if (r->id[0] != '\0' && strcmp(r->name, name) == 0) {
            *several = found != NULL;
            if (*several) {
                return NULL;
            }
            found = r;
        }
    }
    return found;
}

/* Every replica a fault names, as its id: an id, or a name exactly one
 * replica has (what compose and Swarm users see: replica-2 for
 * replica-2-58e83d6a). False, with the error set, otherwise. */
static bool fault_ids(struct cluster *c, struct lab_fault *f, struct cluster_reply *out)
{
    char msg[200];
    for (unsigned i = 0; i < f->n_ids; i++) {
        if (replica_find(c, f->ids[i]) != NULL) {
            continue;
        }
        bool several;
        const struct replica *r = replica_named(c, f->ids[i], &several);
        if (several) {
            snprintf(msg, sizeof(msg), "several replicas are named %s: give an id", f->ids[i]);
            set_error(out, 400, "bad_request", msg);
            return false;
        }
        if (r == NULL) {
            snprintf(msg, sizeof(msg), "no replica with id or name %s", f->ids[i]);
            set_error(out, 404, "unknown_replica", msg);
            return false;
        }
        if (lab_names(f, r->id)) {
            snprintf(msg, sizeof(msg), "replica %s is named twice (%s is its name)", r->id,
                     f->ids[i]);
            set_error(out, 400, "bad_request", msg);
            return false;
        }
        snprintf(f->ids[i], sizeof(f->ids[i]), "%s", r->id);
    }
    return true;
}

static int fault_add_fn(struct cluster *c, void *arg)
{
    struct lab_call *a = arg;
    struct lab_fault asked = *a->fault;
    if (!fault_ids(c, &asked, a->out)) {
        return 0;
    }
    if (c->n_faults >= LIMIT_FAULTS) {
        set_error(a->out, 409, "too_many_faults",
                  "too many faults in force (at most 16): heal one first");
        return 0;
    }
    struct lab_fault *f = &c->faults[c->n_faults++];
    *f = asked;
    lab_start(f, ++c->next_fault_id, clock_mono_ms(), clock_wall_ms());
    lab_event(c, EVENT_FAULT_ADDED, f, NULL);
    lab_push_all(c);
    lab_arm(c);
    mark_changed(c);
    a->out->status = 201;
    cJSON *o = lab_fault_json(f, clock_mono_ms());
    a->out->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return 0;
}

static int fault_heal_fn(struct cluster *c, void *arg)
{
    struct lab_call *a = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON *healed = cJSON_AddArrayToObject(o, "healed");
    for (unsigned i = 0; i < c->n_faults;) {
        if (a->id == 0 || c->faults[i].id == a->id) {
            cJSON_AddItemToArray(healed, cJSON_CreateNumber((double)c->faults[i].id));
            lab_remove(c, i, a->id == 0 ? "healed (all)" : "healed");
        } else {
            i++;
        }
    }
    if (a->id != 0 && cJSON_GetArraySize(healed) == 0) {
        cJSON_Delete(o);
        set_error(a->out, 404, "not_found", "no fault with that id is in force");
        return 0;
    }
    lab_push_all(c);
    lab_arm(c);
    mark_changed(c);
    a->out->status = 200;
    a->out->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return 0;
}

static int timing_fn(struct cluster *c, void *arg)
{
    struct lab_call *a = arg;
    c->timing = *a->timing;
    a->seq = ++c->timing_seq;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        lab_push_timing(c, &c->replicas[i]);
    }
    transport_flush(c->t);
    char detail[160];
    if (c->timing.slow_motion) {
        snprintf(detail, sizeof(detail), "slow motion x%u", c->timing.slow_motion);
    } else {
        snprintf(detail, sizeof(detail), "heartbeat %u ms, election timeout [%u, %u) ms",
                 c->timing.heartbeat_ms, c->timing.election_min_ms, c->timing.election_max_ms);
    }
    log_info("fault lab: timing: %s", detail);
    publish_event(c, event_new(c, event_name(EVENT_TIMING_CHANGED), "", "", 0, 0, detail));
    mark_changed(c);
    return 0;
}

void cluster_fault_add(struct cluster *c, const struct lab_fault *f, struct cluster_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct lab_call a = {.fault = f, .out = out};
    if (cluster_call(c, fault_add_fn, &a) != 0 && out->body == NULL) {
        set_error(out, 503, "shutting_down", "the coordinator is shutting down");
    }
}

void cluster_fault_heal(struct cluster *c, uint64_t id, struct cluster_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct lab_call a = {.id = id, .out = out};
    if (cluster_call(c, fault_heal_fn, &a) != 0 && out->body == NULL) {
        set_error(out, 503, "shutting_down", "the coordinator is shutting down");
    }
}

/* Whether every reachable replica of v confirmed timing change seq. */
static bool timing_confirmed(const struct view *v, uint64_t seq)
{
    for (size_t i = 0; i < v->n_replicas; i++) {
        const struct view_replica *r = &v->replicas[i];
        if (r->status == REACH_UP && r->lab.timing_seq < seq) {
            return false;
        }
    }
    return true;
}

void cluster_timing(struct cluster *c, const struct lab_timing *t, unsigned timeout_ms,
                    struct cluster_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct lab_call a = {.timing = t, .out = out};
    if (cluster_call(c, timing_fn, &a) != 0) {
        set_error(out, 503, "shutting_down", "the coordinator is shutting down");
        return;
    }
    /* The replicas answer a status asked right after the change: wait for
     * those answers (a replica that is down gets it when it is back). */
    int64_t until = clock_mono_ms() + timeout_ms;
    struct view *v = cluster_view(c);
    while (v != NULL && !timing_confirmed(v, a.seq) && clock_mono_ms() < until) {
        view_release(v);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
        nanosleep(&ts, NULL);
        v = cluster_view(c);
    }
    cJSON *o = cJSON_CreateObject();
    char *text = v ? view_faults_json(v) : NULL;
    cJSON *lab = cJSON_Parse(text ? text : "{}");
    free(text);
    cJSON_AddItemReferenceToObject(o, "timing", cJSON_GetObjectItem(lab, "timing"));
    cJSON *reps = cJSON_AddArrayToObject(o, "replicas");
    for (size_t i = 0; v != NULL && i < v->n_replicas; i++) {
        const struct view_replica *r = &v->replicas[i];
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddStringToObject(ro, "id", r->id);
        cJSON_AddStringToObject(ro, "status", reach_name(r->status));
        cJSON_AddBoolToObject(ro, "confirmed", r->lab.timing_seq >= a.seq);
        cJSON_AddNumberToObject(ro, "heartbeat_ms", r->lab.heartbeat_ms);
        cJSON_AddNumberToObject(ro, "election_min_ms", r->lab.election_min_ms);
        cJSON_AddNumberToObject(ro, "election_max_ms", r->lab.election_max_ms);
        cJSON_AddItemToArray(reps, ro);
    }
    view_release(v);
    out->status = 200;
    out->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cJSON_Delete(lab);
}

/* ========================================================================
 * Publishing
 * ====================================================================== */

static int cmp_replica(const void *a, const void *b)
{
    const struct replica *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

/* Which replicas the view lists: every member of the cluster's
 * configuration (up or down), every reachable replica (a joining learner,
 * a removed one still running), and every replica the supervisor runs or
 * gave up. A replica that is none of these (removed, and gone) is not
 * shown. Before any configuration is known, everybody is. */
static bool listed(struct cluster *c, const struct replica *r, const struct replica *cfg)
{
    if (r->id[0] == '\0') {
        return false; /* a forgotten slot */
    }
    return cfg == NULL || config_member(cfg, r->id) != NULL || r->conn != NULL ||
           (c->sup != NULL && supervisor_has(c->sup, r->id, NULL));
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The configuration's part of the view: ids, quorum, reachable voters. */
static void fill_config(struct cluster *c, const struct replica *cfg, struct view *v)
{
    int64_t now = clock_mono_ms();
    if (cfg == NULL) {
        return;
    }
    snprintf(v->cluster_id, sizeof(v->cluster_id), "%s", cfg->cluster_id);
    v->config_index = cfg->config_index;
    for (unsigned i = 0; i < cfg->n_members; i++) {
        const struct view_member *m = &cfg->members[i];
        if (m->voter) {
            snprintf(v->voters[v->n_voters++], LIMIT_ID_BYTES, "%s", m->id);
            const struct replica *r = replica_find(c, m->id);
            v->reachable_voters += r != NULL && r->conn != NULL && !r->failed && r->has_status &&
                                   now - r->status_at <= ANSWERING_STATUS_POLLS * c->poll_every_ms;
        } else {
            snprintf(v->learners[v->n_learners++], LIMIT_ID_BYTES, "%s", m->id);
        }
    }
    qsort(v->voters, v->n_voters, LIMIT_ID_BYTES, cmp_id);
    qsort(v->learners, v->n_learners, LIMIT_ID_BYTES, cmp_id);
    v->quorum = v->n_voters > 0 ? (unsigned)v->n_voters / 2 + 1 : 0;
}

static struct view *build_view(struct cluster *c)
{
    /* Listed by id; the array itself stays put (pointers into it live). */
    struct replica *sorted[MAX_REPLICAS];
    const struct replica *cfg = config_source(c);
    size_t n_peers = 0, n = 0;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        if (listed(c, &c->replicas[i], cfg)) {
            sorted[n++] = &c->replicas[i];
            n_peers += c->replicas[i].has_status ? c->replicas[i].n_peers : 0;
        }
    }
    qsort(sorted, n, sizeof(sorted[0]), cmp_replica);
    struct view_replica *reps;
    struct view_peer *peers;
    struct view *v = view_alloc(n, n_peers, &reps, &peers);
    if (v == NULL) {
        return NULL;
    }
    int64_t now = clock_mono_ms();
    v->commit_index = cluster_commit(c);
    v->spawn = c->sup != NULL;
    v->handshakes_refused = transport_handshakes_refused(c->t);
    fill_config(c, cfg, v);
    const struct replica *p = primary(c);
    v->faults = c->n_faults ? malloc(c->n_faults * sizeof(c->faults[0])) : NULL;
    if (v->faults != NULL) {
        v->n_faults = c->n_faults;
        memcpy(v->faults, c->faults, c->n_faults * sizeof(c->faults[0]));
    }
    v->timing_asked = c->timing;
    for (unsigned i = 0; i < n; i++) {
        replica_fill(c, sorted[i], now, v->commit_index, cfg, &reps[i], peers);
        const struct replica *r = sorted[i];
        if (r->has_status && r->conn && r->lab.heartbeat_ms && (r == p || v->heartbeat_ms == 0)) {
            v->heartbeat_ms = r->lab.heartbeat_ms; /* the primary's, else anybody's */
            v->election_min_ms = r->lab.election_min_ms;
            v->election_max_ms = r->lab.election_max_ms;
        }
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
    metrics_view(c->o.metrics, v);
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

static void on_replica_exit(void *arg, const char *id, int64_t status, int sig,
                            enum supervisor_outcome outcome)
{
    struct cluster *c = arg;
    struct replica *r = replica_find(c, id);
    if (r != NULL && status == EXIT_FAILED_ON_REQUEST) {
        r->failed = true;
    }
    char what[64], detail[200];
    if (status < 0) {
        snprintf(what, sizeof(what), "process could not be started");
    } else {
        snprintf(what, sizeof(what), "process exited (status %lld, signal %d)", (long long)status,
                 sig);
    }
    const char *then = outcome == SUPERVISOR_RESTARTING ? "restarting"
                       : outcome == SUPERVISOR_GIVEN_UP ? "given up"
                                                        : "stopped for good";
    snprintf(detail, sizeof(detail), "%s; %s", what, then);
    publish_event(c, event_new(c, "exited", id, id, r ? r->epoch : 0, 0, detail));
    if (outcome == SUPERVISOR_GIVEN_UP) {
        if (r == NULL) {
            r = replica_get(c, id);
        }
        if (r != NULL) {
            r->start_failed = true;
        }
        snprintf(detail, sizeof(detail),
                 "%s %d times in a row within %d ms of starting (last: %s); not restarted: see "
                 "its log",
                 status < 0 ? "could not start" : "exited", SUPERVISOR_GIVE_UP_AFTER,
                 SUPERVISOR_START_WINDOW_MS, what);
        publish_event(
            c, event_new(c, event_name(EVENT_START_FAILED), id, id, r ? r->epoch : 0, 0, detail));
    }
    mark_changed(c);
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
    uv_close((uv_handle_t *)&c->lab_timer, close_cb);
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
    if (c->disc != NULL) {
        discovery_stop(c->disc, discovery_stopped, NULL);
    }
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
    uv_timer_stop(&c->lab_timer);
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
        .auth = o->auth,
    };
    struct transport_callbacks cb = {
        .data = c,
        .on_hello = on_hello,
        .on_message = on_message,
        .on_closed = on_closed,
    };
    c->t = transport_new(&c->loop, &to, &cb);
    uv_timer_init(&c->loop, &c->poll_timer);
    c->poll_timer.data = c;
    unsigned every = o->status_interval_ms ? o->status_interval_ms : 200;
    c->poll_every_ms = every;
    uv_timer_start(&c->poll_timer, poll_cb, every, every);
    uv_timer_init(&c->loop, &c->commit_timer);
    c->commit_timer.data = c;
    uv_timer_init(&c->loop, &c->snapshot_timer);
    c->snapshot_timer.data = c;
    uv_timer_init(&c->loop, &c->kick_timer);
    c->kick_timer.data = c;
    uv_timer_init(&c->loop, &c->lab_timer);
    c->lab_timer.data = c;
    c->timing.slow_motion = 1;
    uv_prepare_init(&c->loop, &c->flush_prep);
    c->flush_prep.data = c;
    uv_prepare_start(&c->flush_prep, flush_cb);
    /* Last: its exit callbacks (a replica that cannot even be started)
     * publish, and need every timer above. */
    if (o->spawn != NULL) {
        /* The supervisor's replicas are the targets (refresh_targets), as
         * they come and go: no discovery. */
        c->sup = supervisor_start(&c->loop, o->spawn, on_replica_exit, c);
        if (c->sup == NULL) {
            snprintf(err, errlen, "cannot start the replica supervisor");
            return NULL;
        }
        refresh_targets(c);
    } else {
        c->disc = discovery_start(&c->loop, c->t, &o->replicas,
                                  o->resolve_interval_ms ? o->resolve_interval_ms : 1000);
    }
    c->view = build_view(c);
    if (uv_thread_create(&c->thread, loop_thread, c) != 0) {
        snprintf(err, errlen, "cannot start the cluster thread");
        return NULL;
    }
    return c;
}
