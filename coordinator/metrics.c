/*
 * coordinator/metrics.c — see metrics.h.
 */
#include "metrics.h"
#include "view.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Latency buckets in seconds, Prometheus style (cumulative when rendered). */
static const double request_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10};
static const double failover_buckets[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10};
#define N_REQ (sizeof(request_buckets) / sizeof(request_buckets[0]))
#define N_FO  (sizeof(failover_buckets) / sizeof(failover_buckets[0]))

struct histogram {
    unsigned long long counts[16];
    unsigned long long total;
    double sum;
};

#define N_STATUS 600 /* HTTP statuses 100..599 */

struct metrics {
    pthread_mutex_t mu;
    unsigned long long requests_by_status[N_STATUS];
    unsigned long long requests_committed, requests_failed;
    long requests_pending;
    unsigned long long reads_by_status[2][N_STATUS]; /* [linearizable][status] */
    /* The last primary a view showed (id and epoch): another one, or the
     * same in a new epoch, is a change. */
    char primary[LIMIT_ID_BYTES];
    uint64_t primary_epoch;
    unsigned long long primary_changes;
    struct histogram request_seconds;
    struct histogram failover_seconds;
    long ws_clients;
    unsigned long long ws_dropped;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m != NULL) {
        pthread_mutex_init(&m->mu, NULL);
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m != NULL) {
        pthread_mutex_destroy(&m->mu);
        free(m);
    }
}

static void observe(struct histogram *h, const double *bounds, size_t n, double v)
{
    for (size_t i = 0; i < n; i++) {
        if (v <= bounds[i]) {
            h->counts[i]++;
            break;
        }
    }
    h->total++;
    h->sum += v;
}

void metrics_request_started(struct metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->requests_pending++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_request(struct metrics *m, int http_status, double seconds)
{
    pthread_mutex_lock(&m->mu);
    if (http_status >= 100 && http_status < N_STATUS) {
        m->requests_by_status[http_status]++;
    }
    /* Committed is 201; anything else (rejected, id conflict, no primary,
     * outcome unknown) did not commit as asked. */
    if (http_status == 201) {
        m->requests_committed++;
    } else {
        m->requests_failed++;
    }
    if (m->requests_pending > 0) {
        m->requests_pending--;
    }
    observe(&m->request_seconds, request_buckets, N_REQ, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_read(struct metrics *m, bool linearizable, int http_status)
{
    pthread_mutex_lock(&m->mu);
    if (http_status >= 100 && http_status < N_STATUS) {
        m->reads_by_status[linearizable][http_status]++;
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_view(struct metrics *m, const struct view *v)
{
    if (v == NULL || v->primary == NULL) {
        return; /* no primary for a while is not a change by itself */
    }
    pthread_mutex_lock(&m->mu);
    if (strcmp(m->primary, v->primary->id) != 0 || m->primary_epoch != v->primary->epoch) {
        /* The first primary seen is where counting starts, not a change. */
        m->primary_changes += m->primary[0] != '\0';
        snprintf(m->primary, sizeof(m->primary), "%s", v->primary->id);
        m->primary_epoch = v->primary->epoch;
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_failover(struct metrics *m, double seconds)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->failover_seconds, failover_buckets, N_FO, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_ws_clients(struct metrics *m, int delta)
{
    pthread_mutex_lock(&m->mu);
    m->ws_clients += delta;
    pthread_mutex_unlock(&m->mu);
}

void metrics_ws_dropped(struct metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->ws_dropped++;
    pthread_mutex_unlock(&m->mu);
}

struct text {
    char *buf;
    size_t len;
    size_t cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 8192;
        while (cap <= t->len + (size_t)n) {
            cap *= 2;
        }
        char *b = realloc(t->buf, cap);
        if (b == NULL) {
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static void put_histogram(struct text *t, const char *name, const char *help,
                          const struct histogram *h, const double *bounds, size_t n)
{
    put(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += h->counts[i];
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], cum);
    }
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, h->total, name,
        h->sum, name, h->total);
}

/* The per-replica gauges, in the order of the table in metrics_render. */
static int64_t gauge(const struct view_replica *r, size_t g)
{
    switch (g) {
    case 0:
        return (int64_t)r->epoch;
    case 1:
        return (int64_t)r->commit_index;
    case 2:
        return (int64_t)r->last_index;
    case 3:
        return (int64_t)r->lag;
    case 4:
        return (int64_t)r->processed;
    case 5:
        return (int64_t)r->synced;
    case 6:
        return (int64_t)r->pending_requests;
    case 7:
        return (int64_t)r->storage.log_bytes;
    case 8:
        return (int64_t)r->storage.cache_bytes;
    case 9:
        return (int64_t)r->storage.resident_bytes;
    case 10:
        return (int64_t)r->storage.sessions;
    case 11:
        return (int64_t)r->storage.storage_errors;
    default:
        return strcmp(r->storage.disk, "ok") == 0 || r->storage.disk[0] == '\0';
    }
}

/* Replica ids come from the network: keep label values printable. */
static void label(char *out, size_t len, const char *s)
{
    size_t j = 0;
    for (; *s && j + 1 < len; s++) {
        out[j++] = (*s == '"' || *s == '\\' || *s == '\n') ? '_' : *s;
    }
    out[j] = '\0';
}

/* One replica's histogram (bounds in microseconds, counts cumulative, as
 * its status carries them); `labels` is `replica="r1"` and maybe more. */
static void put_view_histogram(struct text *t, const char *name, const char *labels,
                               const struct view_histogram *h)
{
    for (unsigned i = 0; i < h->n; i++) {
        put(t, "%s_bucket{%s,le=\"%g\"} %" PRIu64 "\n", name, labels, h->bounds_us[i] / 1e6,
            h->counts[i]);
    }
    put(t, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n%s_sum{%s} %.6f\n%s_count{%s} %" PRIu64 "\n",
        name, labels, h->count, name, labels, h->sum_us / 1e6, name, labels, h->count);
}

/* What the replicas measure themselves and report in their status: fsync
 * durations, and Append round trips per peer (only pairs with samples:
 * only a primary sends Appends). */
static void put_replica_histograms(struct text *t, const struct view *v)
{
    size_t n = v ? v->n_replicas : 0;
    const char *fsync = "replicacao_replica_wal_fsync_duration_seconds";
    put(t, "# HELP %s Duration of the replica's fdatasync of its log.\n# TYPE %s histogram\n",
        fsync, fsync);
    for (size_t i = 0; i < n; i++) {
        char id[80], labels[128];
        label(id, sizeof(id), v->replicas[i].id);
        snprintf(labels, sizeof(labels), "replica=\"%s\"", id);
        if (v->replicas[i].wal_fsync.n > 0) {
            put_view_histogram(t, fsync, labels, &v->replicas[i].wal_fsync);
        }
    }
    const char *rtt = "replicacao_replica_peer_round_trip_time_seconds";
    put(t,
        "# HELP %s From the replica (as primary) sending an Append to the peer to its answer; "
        "includes the peer's fsync when the Append carries entries.\n# TYPE %s histogram\n",
        rtt, rtt);
    for (size_t i = 0; i < n; i++) {
        const struct view_replica *r = &v->replicas[i];
        char id[80], peer[80], labels[192];
        label(id, sizeof(id), r->id);
        for (size_t k = 0; k < r->n_peers; k++) {
            if (r->peers[k].round_trip.count == 0) {
                continue;
            }
            label(peer, sizeof(peer), r->peers[k].id);
            snprintf(labels, sizeof(labels), "replica=\"%s\",peer=\"%s\"", id, peer);
            put_view_histogram(t, rtt, labels, &r->peers[k].round_trip);
        }
    }
}

char *metrics_render(struct metrics *m, const struct view *v)
{
    struct text t = {0};
    pthread_mutex_lock(&m->mu);
    put(&t, "# HELP replicacao_requests_total POST /api/requests answered by the cluster, by HTTP "
            "status.\n"
            "# TYPE replicacao_requests_total counter\n");
    for (int code = 100; code < N_STATUS; code++) {
        if (m->requests_by_status[code]) {
            put(&t, "replicacao_requests_total{code=\"%d\"} %llu\n", code,
                m->requests_by_status[code]);
        }
    }
    put(&t,
        "# HELP replicacao_requests_committed_total Client requests answered as committed (201).\n"
        "# TYPE replicacao_requests_committed_total counter\n"
        "replicacao_requests_committed_total %llu\n"
        "# HELP replicacao_requests_failed_total Client requests answered without a commit "
        "(rejected, id conflict, no primary, outcome unknown).\n"
        "# TYPE replicacao_requests_failed_total counter\n"
        "replicacao_requests_failed_total %llu\n"
        "# HELP replicacao_requests_pending Client requests handed to the cluster and not yet "
        "answered.\n"
        "# TYPE replicacao_requests_pending gauge\n"
        "replicacao_requests_pending %ld\n",
        m->requests_committed, m->requests_failed, m->requests_pending);
    put(&t, "# HELP replicacao_reads_total GET /api/requests answered, by consistency and HTTP "
            "status.\n"
            "# TYPE replicacao_reads_total counter\n");
    static const char *levels[] = {"serializable", "linearizable"};
    for (int lin = 0; lin < 2; lin++) {
        for (int code = 100; code < N_STATUS; code++) {
            if (m->reads_by_status[lin][code]) {
                put(&t, "replicacao_reads_total{consistency=\"%s\",code=\"%d\"} %llu\n",
                    levels[lin], code, m->reads_by_status[lin][code]);
            }
        }
    }
    put_histogram(&t, "replicacao_request_duration_seconds",
                  "Time from handing a checked request to the cluster to its answer.",
                  &m->request_seconds, request_buckets, N_REQ);
    put_histogram(&t, "replicacao_failover_duration_seconds",
                  "Time from losing the primary to the next election.", &m->failover_seconds,
                  failover_buckets, N_FO);
    put(&t,
        "# HELP replicacao_failovers_total Failovers measured (primary lost, then elected).\n"
        "# TYPE replicacao_failovers_total counter\nreplicacao_failovers_total %llu\n",
        m->failover_seconds.total);
    put(&t,
        "# HELP replicacao_websocket_clients Connected WebSocket clients.\n"
        "# TYPE replicacao_websocket_clients gauge\nreplicacao_websocket_clients %ld\n",
        m->ws_clients);
    put(&t,
        "# HELP replicacao_websocket_dropped_total Messages dropped for slow clients.\n"
        "# TYPE replicacao_websocket_dropped_total counter\n"
        "replicacao_websocket_dropped_total %llu\n",
        m->ws_dropped);
    put(&t,
        "# HELP replicacao_cluster_primary_changes_total Times the coordinator saw another primary "
        "(another replica, or a new epoch).\n"
        "# TYPE replicacao_cluster_primary_changes_total counter\n"
        "replicacao_cluster_primary_changes_total %llu\n",
        m->primary_changes);
    pthread_mutex_unlock(&m->mu);

    put(&t,
        "# HELP replicacao_cluster_has_primary 1 when the coordinator reaches a primary.\n"
        "# TYPE replicacao_cluster_has_primary gauge\nreplicacao_cluster_has_primary %d\n",
        v != NULL && v->primary != NULL);

    uint64_t epoch = v ? v->epoch : 0, commit = v ? v->commit_index : 0;
    size_t n = v ? v->n_replicas : 0;
    put(&t,
        "# HELP replicacao_cluster_epoch Highest epoch any replica is in.\n"
        "# TYPE replicacao_cluster_epoch gauge\nreplicacao_cluster_epoch %" PRIu64 "\n",
        epoch);
    put(&t,
        "# HELP replicacao_cluster_commit_index Highest commit index any replica reports.\n"
        "# TYPE replicacao_cluster_commit_index gauge\nreplicacao_cluster_commit_index %" PRIu64
        "\n",
        commit);
    /* The configuration (the primary's, or the newest a reachable replica
     * holds; zeros while bootstrapping). */
    static const char *config_gauges[][2] = {
        {"voters", "Voting members of the cluster's configuration."},
        {"learners", "Non-voting members (catching up) of the configuration."},
        {"quorum", "Voters a majority needs."},
        {"reachable_voters", "Voters the coordinator is connected to."},
        {"config_index", "Log index of the configuration in effect."},
        {"faults", "Faults of the fault lab in force (partitions, links, pauses)."},
    };
    uint64_t config_values[] = {
        v ? v->n_voters : 0,         v ? v->n_learners : 0,   v ? v->quorum : 0,
        v ? v->reachable_voters : 0, v ? v->config_index : 0, v ? v->n_faults : 0,
    };
    for (size_t g = 0; g < sizeof(config_gauges) / sizeof(config_gauges[0]); g++) {
        put(&t,
            "# HELP replicacao_cluster_%s %s\n# TYPE replicacao_cluster_%s gauge\n"
            "replicacao_cluster_%s %" PRIu64 "\n",
            config_gauges[g][0], config_gauges[g][1], config_gauges[g][0], config_gauges[g][0],
            config_values[g]);
    }
    static const char *gauges[][2] = {
        {"epoch", "Epoch the replica is in."},
        {"commit_index", "Replica's commit index."},
        {"last_index", "Replica's last log index."},
        {"lag", "Entries behind the cluster's commit index."},
        {"processed", "Committed entries it processed as primary."},
        {"synced", "Committed entries it received by sync."},
        {"requests_pending", "Client requests waiting for their answer at the replica."},
        {"log_bytes", "Bytes of the replica's log files on disk."},
        {"log_cache_bytes", "Bytes of recent log entries the replica holds in memory."},
        {"resident_memory_bytes", "The replica process's resident memory."},
        {"client_sessions", "Client ids the replica remembers to apply retries once."},
        {"storage_read_errors", "Reads of old log entries that failed (a damaged record)."},
        {"disk_ok", "1 while the replica can write its log, 0 when its disk is full."},
    };
    for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++) {
        put(&t, "# HELP replicacao_replica_%s %s\n# TYPE replicacao_replica_%s gauge\n",
            gauges[g][0], gauges[g][1], gauges[g][0]);
        for (size_t i = 0; i < n; i++) {
            char id[80];
            label(id, sizeof(id), v->replicas[i].id);
            put(&t, "replicacao_replica_%s{replica=\"%s\"} %" PRId64 "\n", gauges[g][0], id,
                gauge(&v->replicas[i], g));
        }
    }
    put(&t, "# HELP replicacao_replica_handshakes_refused_total Connections the replica closed in "
            "their handshake: no or a wrong proof of the cluster secret, a member key another id "
            "joined with, no Hello in time.\n"
            "# TYPE replicacao_replica_handshakes_refused_total counter\n");
    for (size_t i = 0; i < n; i++) {
        char id[80];
        label(id, sizeof(id), v->replicas[i].id);
        put(&t, "replicacao_replica_handshakes_refused_total{replica=\"%s\"} %" PRIu64 "\n", id,
            v->replicas[i].handshakes_refused);
    }
    put(&t,
        "# HELP replicacao_coordinator_handshakes_refused_total The coordinator's connections to "
        "replicas that failed their handshake (a replica with another secret, or none).\n"
        "# TYPE replicacao_coordinator_handshakes_refused_total counter\n"
        "replicacao_coordinator_handshakes_refused_total %" PRIu64 "\n",
        v ? v->handshakes_refused : 0);
    /* In seconds, the base unit; no sample while unknown (no status yet, or
     * it never heard from a primary) rather than a magic -1. */
    put(&t,
        "# HELP replicacao_cluster_heartbeat_interval_seconds Heartbeat interval in force (the "
        "fault lab's slow motion changes it).\n"
        "# TYPE replicacao_cluster_heartbeat_interval_seconds gauge\n"
        "replicacao_cluster_heartbeat_interval_seconds %.3f\n",
        v ? v->heartbeat_ms / 1000.0 : 0.0);
    put(&t, "# HELP replicacao_replica_heartbeat_age_seconds Seconds since the replica last heard "
            "from its primary (0 on the primary).\n"
            "# TYPE replicacao_replica_heartbeat_age_seconds gauge\n");
    for (size_t i = 0; i < n; i++) {
        if (v->replicas[i].heartbeat_age_ms >= 0) {
            char id[80];
            label(id, sizeof(id), v->replicas[i].id);
            put(&t, "replicacao_replica_heartbeat_age_seconds{replica=\"%s\"} %.3f\n", id,
                v->replicas[i].heartbeat_age_ms / 1000.0);
        }
    }
    /* Each family's samples must stand together: one loop per family. */
    put(&t, "# HELP replicacao_replica_role 1 for the role the replica is in.\n"
            "# TYPE replicacao_replica_role gauge\n");
    static const enum role roles[] = {ROLE_PRIMARY, ROLE_BACKUP, ROLE_CANDIDATE, ROLE_LEARNER,
                                      ROLE_REMOVED};
    for (size_t i = 0; i < n; i++) {
        char id[80];
        label(id, sizeof(id), v->replicas[i].id);
        for (size_t k = 0; k < sizeof(roles) / sizeof(roles[0]); k++) {
            put(&t, "replicacao_replica_role{replica=\"%s\",role=\"%s\"} %d\n", id,
                role_name(roles[k]), v->replicas[i].role == roles[k]);
        }
    }
    put(&t, "# HELP replicacao_replica_up 1 when the coordinator reaches the replica.\n"
            "# TYPE replicacao_replica_up gauge\n");
    for (size_t i = 0; i < n; i++) {
        char id[80];
        label(id, sizeof(id), v->replicas[i].id);
        put(&t, "replicacao_replica_up{replica=\"%s\"} %d\n", id,
            v->replicas[i].status == REACH_UP);
    }
    put(&t, "# HELP replicacao_replica_member 1 when the replica is in the configuration.\n"
            "# TYPE replicacao_replica_member gauge\n");
    for (size_t i = 0; i < n; i++) {
        char id[80];
        label(id, sizeof(id), v->replicas[i].id);
        put(&t, "replicacao_replica_member{replica=\"%s\"} %d\n", id, v->replicas[i].member);
    }
    put_replica_histograms(&t, v);
    return t.buf;
}
