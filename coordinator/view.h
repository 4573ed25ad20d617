/*
 * coordinator/view.h — the coordinator's typed view of the cluster.
 *
 * The loop thread builds one `struct view` whenever what it knows changes
 * (a status reply, an event, a connection coming or going) and publishes it
 * by swapping a pointer under a mutex. A view is immutable once published:
 * readers on any thread take a reference (cluster_view) and release it when
 * done, so nobody reads the loop thread's own state.
 *
 * Everything shown outside comes from a view: GET /api/cluster and the
 * WebSocket `cluster` messages (its JSON, rendered at most once per view, on
 * first use, and cached in it) and /metrics (from the typed fields).
 */
#ifndef COORDINATOR_VIEW_H
#define COORDINATOR_VIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "lab.h"
#include "vocab.h"

/* Whether the coordinator reaches a replica. */
enum reach {
    REACH_UP,     /* connected */
    REACH_DOWN,   /* not connected */
    REACH_FAILED, /* failed on purpose (or exited 75), not back yet */
};

/* A histogram as a replica reports it in its status: cumulative counts per
 * upper bound (microseconds), all observations and their sum. n == 0: the
 * replica sent none. */
struct view_histogram {
    unsigned n;
    uint64_t bounds_us[LIMIT_HISTOGRAM_BUCKETS];
    uint64_t counts[LIMIT_HISTOGRAM_BUCKETS];
    uint64_t count;
    uint64_t sum_us;
};

struct view_peer {
    char id[LIMIT_ID_BYTES];
    char address[LIMIT_NAME_BYTES];
    bool voter;
    bool connected;
    bool member; /* in that replica's configuration */
    bool listed; /* its discovery still lists the peer */
    uint64_t match_index;
    int64_t last_seen_ms;
    struct view_histogram round_trip; /* Append round trips while that replica was primary */
};

/* One member of a configuration. */
struct view_member {
    char id[LIMIT_ID_BYTES];
    bool voter;
};

/* A replica's log as its status reports it. */
struct view_storage {
    uint64_t log_bytes;       /* log files on disk */
    uint64_t log_segments;    /* how many files */
    uint64_t first_index;     /* the first entry it still keeps (retention) */
    uint64_t cache_bytes;     /* recent entries held in memory */
    uint64_t resident_bytes;  /* the process's resident memory */
    uint64_t session_horizon; /* client ids of entries before it are forgotten */
    uint64_t sessions;        /* client ids remembered */
    uint64_t storage_errors;  /* reads of old entries that failed */
    char disk[128];           /* "ok", or why its log cannot be written */
};

/* The fault lab as a replica's status reports it: how much longer it is
 * paused, how many fault rules it carries out, the timing in force, and
 * the last timing change it confirmed (cluster_timing). */
struct view_lab {
    unsigned paused_ms;
    unsigned n_fault_rules;
    unsigned heartbeat_ms, election_min_ms, election_max_ms;
    uint64_t timing_seq;
};

struct view_replica {
    char id[LIMIT_ID_BYTES];
    char name[LIMIT_NAME_BYTES];
    char address[LIMIT_NAME_BYTES];
    enum role role;
    enum reach status;
    uint64_t epoch;
    /* From its last status reply (zeros, -1 and "" before the first). */
    uint64_t last_index;
    uint64_t commit_index;
    uint64_t lag; /* behind the cluster's commit index */
    int64_t heartbeat_age_ms;
    uint64_t processed;
    uint64_t synced;
    struct view_histogram wal_fsync; /* its log's fdatasync durations */
    uint64_t pending_requests;       /* client requests waiting for an answer there */
    uint64_t handshakes_refused;     /* connections it closed in their handshake */
    struct view_storage storage;     /* its log on disk and in memory */
    bool voter;  /* a voter of the cluster's configuration (its own status before one is known) */
    bool member; /* in the cluster's configuration, voter or learner */
    bool start_failed; /* --spawn gave it up: it kept exiting right after starting */
    char believes_primary[LIMIT_ID_BYTES];
    struct view_lab lab;
    int64_t uptime_ms;
    /* Since its last status reply (-1: none yet), and whether that is
     * recent enough to count it as answering (as reachable_voters does): a
     * SIGSTOPped replica keeps its connection but stops answering. */
    int64_t status_age_ms;
    bool answering;
    size_t n_peers;
    const struct view_peer *peers;
    /* Not shown: changes each time the coordinator connects to it again
     * (a restart); part of what "the primary changed" means. */
    uint64_t incarnation;
};

struct view {
    uint64_t epoch;                     /* the highest any replica is in */
    uint64_t commit_index;              /* the highest any replica reports */
    const struct view_replica *primary; /* NULL: none; else into replicas[] */
    size_t n_replicas;
    const struct view_replica *replicas; /* sorted by id */

    /* The cluster's configuration: the primary's, or without one the
     * newest (highest config_index) a reachable replica holds; none (all
     * zero) while bootstrapping. */
    char cluster_id[LIMIT_ID_BYTES];
    uint64_t config_index;
    size_t n_voters, n_learners;
    char voters[LIMIT_MEMBERS][LIMIT_ID_BYTES];   /* sorted */
    char learners[LIMIT_MEMBERS][LIMIT_ID_BYTES]; /* sorted */
    unsigned quorum;           /* voters a majority needs; 0 without a configuration */
    unsigned reachable_voters; /* voters the coordinator is connected to */
    bool spawn;                /* a --spawn supervisor runs: POST /api/replicas works */

    /* The fault lab: the faults in force (oldest first), the timing last
     * asked for, and the timing in force (the primary's, else any
     * reachable replica's; zeros before any status). */
    unsigned n_faults;
    uint64_t handshakes_refused; /* the coordinator's own connections to replicas */
    struct lab_fault *faults;    /* n_faults, malloc'ed, freed with the view */
    struct lab_timing timing_asked;
    unsigned heartbeat_ms, election_min_ms, election_max_ms;

    /* Private: the reference count and the lazily rendered JSON. */
    atomic_int refs;
    _Atomic(char *) json;
    _Atomic(char *) message;
};

/* One allocation for a view of n_replicas replicas with n_peers peers in
 * all: *replicas and *peers point at its (zeroed) arrays, which the caller
 * fills (each replica's `peers` pointing into *peers) before publishing.
 * Returned with one reference. */
struct view *view_alloc(size_t n_replicas, size_t n_peers, struct view_replica **replicas,
                        struct view_peer **peers);
void view_ref(struct view *v);
void view_release(struct view *v);

/* The /api/cluster JSON, rendered on first use and cached in the view
 * (valid while the caller holds its reference). NULL only out of memory. */
const char *view_json(struct view *v);
/* The same wrapped for the WebSocket: {"type":"cluster","cluster":...}. */
const char *view_message(struct view *v);

/* GET /api/faults: {"faults":[...],"timing":{...}} (malloc'ed; NULL only
 * out of memory). */
char *view_faults_json(const struct view *v);

/* A replica of the view by id, or NULL. */
const struct view_replica *view_find(const struct view *v, const char *id);

/* JSON of one replica as /api/cluster lists it (a cJSON object, owned by
 * the caller); GET /api/replicas/{id} starts from it. */
struct cJSON *view_replica_json(const struct view_replica *r);

const char *reach_name(enum reach r);

/* GET /readyz: true when there is a reachable primary; else false with the
 * reason in `reason` ("2 of 5 voters reachable - a majority needs 3"). */
bool view_ready(const struct view *v, char *reason, size_t len);

#endif
