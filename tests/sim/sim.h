/*
 * tests/sim/sim.h — the deterministic cluster simulator's shared types.
 *
 * The simulator owns everything around a set of protocol cores
 * (replica/core): one fake clock, a seeded random source, a fake network
 * (latency, loss, duplication, reordering, partitions), per-node fake durable
 * storage that honours core.h's durability contract, crash/revive and
 * SIGSTOP-like pauses, simulated clients, and the invariant checker that runs
 * after every step. In the spirit of canonical/raft's src/fixture.c.
 *
 * Files: cluster.c (life cycle, faults, the step function), storage.c (each
 * core's io and fake durable storage), net.c (events and the fake network),
 * entry.c (entry copies, logs), client.c (simulated clients), check.c
 * (invariants), membership.c (the operator: removal requests, new nodes,
 * decommissioning, discovery listings, forced recovery), scenarios.c
 * (scripted cases with exact assertions), sim.c (CLI and random fault
 * schedules).
 */
#ifndef SIM_H
#define SIM_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Node slots: a cluster may grow by brand-new nodes (never reusing an id)
 * up to this many over a schedule's lifetime. */
#define SIM_MAX_NODES   12
#define SIM_MAX_CLIENTS 4
#define SIM_NEVER       INT64_MAX
/* Tokens of the operator's membership requests; client tokens are small. */
#define SIM_ADMIN_TOKEN (1ULL << 62)

/* ========================================================================
 * Random numbers: splitmix64, so a seed replays a schedule exactly.
 * ====================================================================== */

struct rng {
    uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline int64_t rng_between(struct rng *r, int64_t lo, int64_t hi)
{
    return hi <= lo ? lo : lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline bool rng_permille(struct rng *r, unsigned p)
{
    return rng_next(r) % 1000 < p;
}

/* ========================================================================
 * Logs. Entries are immutable, refcounted copies shared by the logs, the
 * pending storage operations and the messages in flight.
 * ====================================================================== */

struct sim_entry {
    unsigned refs;
    uint64_t hash;       /* of every field, for cheap comparisons */
    struct core_entry e; /* strings and data live right after the struct */
};

struct sim_log {
    struct sim_entry **at; /* at[i - 1] holds index i */
    uint64_t *prefix;      /* prefix[i - 1]: hash of entries 1..i (log matching) */
    size_t len;
    size_t cap;
};

void *sim_realloc(void *p, size_t n); /* aborts when out of memory */
struct sim_entry *entry_copy(const struct core_entry *e);
void entry_unref(struct sim_entry *s);
void simlog_append(struct sim_log *l, struct sim_entry *s); /* takes a reference */
void simlog_truncate(struct sim_log *l, uint64_t from);     /* drop indices >= from */
void simlog_free(struct sim_log *l);
void simlog_copy(struct sim_log *dst, const struct sim_log *src);
bool entry_same(const struct sim_entry *a, const struct sim_entry *b);

/* ========================================================================
 * Timed events: messages in flight, client traffic and scheduled faults.
 * ====================================================================== */

struct cluster;

enum sim_ev_kind {
    EV_MSG,          /* a core_msg from node `from` to node `to` */
    EV_CLIENT_REQ,   /* a client's request attempt reaching node `to` */
    EV_CLIENT_REPLY, /* a node's reply reaching the client */
    EV_PEER_DOWN,    /* node `to` sees node `from`'s connection refused */
    EV_PEER_UP,      /* node `to` (paused when it happened) meets node `from` */
    EV_REVIVE,       /* node `to` restarts (if kill generation `gen` still holds) */
    EV_HEAL,         /* partition generation `gen` ends */
    EV_RESUME,       /* node `to`'s pause generation `gen` ends */
    EV_LOSSY_END,    /* lossy period generation `gen` ends */
    EV_KILL,         /* node `to` dies if still incarnation `gen`; back after `arg` ms */
    EV_ADMIN,        /* operator request `token` reaching node `to` */
    EV_RETIRE,       /* node `to` is stopped for good (decommissioned) */
    EV_CALL,         /* call `fn` (scheduled harness actions) */
};

struct sim_event {
    int64_t at;
    uint64_t seq; /* tie-break: equal times fire in creation order */
    enum sim_ev_kind kind;
    int from;
    int to;
    unsigned to_inc; /* target's incarnation when it left: a restart drops it */
    unsigned gen;
    int64_t arg;
    /* EV_MSG: a deep copy, since the core lends its pointers only during send. */
    struct core_msg msg;
    const char **bootstrap;
    char (*bootstrap_ids)[CORE_ID_MAX];
    struct core_entry *entries;
    uint8_t *snap_data; /* a SNAPSHOT's data, owned */
    struct sim_entry **entry_refs;
    /* EV_CALL */
    void (*fn)(struct cluster *cl, struct sim_event *ev);
    /* EV_CLIENT_REQ / EV_CLIENT_REPLY / EV_ADMIN */
    uint64_t token;
    struct core_reply reply;
    char reply_primary[CORE_ID_MAX];
};

/* ========================================================================
 * Nodes and their fake storage.
 * ====================================================================== */

/* One persist call not yet durable. */
struct sim_op {
    bool is_state;
    bool is_checkpoint;
    bool is_snapshot;
    bool snap_reset;
    uint64_t snap_index;
    uint64_t snap_epoch;
    uint8_t *snap_data;
    size_t snap_len;
    uint64_t drop_before;
    struct core_hard_state hs;
    struct core_checkpoint cp;
    uint64_t truncate_from;
    struct sim_entry **entries;
    size_t n;
};

struct cluster;

struct sim_node {
    struct cluster *cl;
    int idx;
    char id[CORE_ID_MAX];
    struct core *core; /* NULL while dead */
    struct core_sink sink;
    struct core_options opts;
    struct rng rng; /* the core's injected randomness */

    bool alive;
    bool retired; /* decommissioned and stopped for good: never revived */
    bool listed;  /* discovery lists it (false: cores are told, see membership.c) */
    bool paused;
    int64_t paused_until;
    unsigned pause_gen;
    unsigned kill_gen;
    unsigned incarnation;
    int group; /* partition side; messages between different groups are lost */

    /* Durable storage and the node's current view (durable + pending). */
    struct core_hard_state durable_hs;
    struct core_hard_state mem_hs;
    struct sim_log durable;
    struct sim_log mem;
    struct sim_op *ops; /* persistence not yet durable */
    size_t n_ops;
    size_t cap_ops;
    struct sim_event **out; /* output held until the persistence before it is durable */
    size_t n_out;
    size_t cap_out;
    int64_t flush_at; /* when the pending fsync completes; SIM_NEVER: none */
    int64_t fsync_ms; /* this node's disk takes exactly this long; 0: the params' */
    /* Updates applied but not yet confirmed durable (core_advance at the
     * flush), in the order they were handed out. */
    struct core_update *held;
    size_t n_held;
    size_t cap_held;

    /* Checker state. */
    uint64_t last_commit;              /* for "never decreases" */
    uint64_t durable_commit;           /* commit index at the last completed flush */
    struct core_checkpoint durable_cp; /* the last checkpoint made durable */
    /* Retention: the last durable snapshot, and the first entry storage
     * still serves (entries before stay in the arrays for the checker). */
    uint8_t *durable_snap;
    size_t durable_snap_len;
    uint64_t durable_snap_index;
    uint64_t durable_snap_epoch;
    uint64_t durable_first;
    /* The store's answer to the core's last read (lent until the next). */
    struct core_entry *read_buf;
    size_t read_cap;
    uint64_t checked; /* entries up to here were matched against the committed log */
    enum core_role last_role;
    uint64_t last_epoch;
    uint64_t cfg_seen; /* configuration index last checked on this node */
};

/* ========================================================================
 * Clients.
 * ====================================================================== */

struct sim_client {
    int target;             /* node it believes is primary */
    bool busy;              /* a request is outstanding */
    bool stopped;           /* issue no new requests */
    bool manual;            /* scenarios drive it; no automatic retries or new requests */
    uint64_t req;           /* current (or last) request number, from 1 */
    uint64_t last_token;    /* latest attempt of the current request */
    int64_t next_action;    /* SIM_NEVER: nothing planned */
    uint64_t *committed_at; /* committed_at[r]: index where request r committed, 0: not */
    size_t cap_committed;
    /* The outstanding request is a linearizable read: its attempt token,
     * and the floor it must reach (the highest index acknowledged to any
     * client before it began). */
    uint64_t seen_index; /* the current request's: see client_tick */
    /* Requests refused as expired: settled, never acknowledged. */
    uint64_t *expired;
    size_t n_expired;
    size_t cap_expired;
    bool reading;
    uint64_t read_seq;
    uint64_t read_floor;
};

/* Read attempts' tokens: the top bit, the client, the read's number. */
#define SIM_READ_TOKEN     (1ULL << 61) /* below SIM_ADMIN_TOKEN */
#define SIM_IS_READ(token) (((token)&SIM_READ_TOKEN) != 0)

struct sim_attempt {
    int client;
    uint64_t req;
    int node;
    int replies; /* how many the core sent (more than one is a bug) */
    int status;  /* the core's reply status, -1: none yet */
    bool seen;   /* a reply reached the client */
    uint64_t index;
    uint64_t seen_index; /* its request's, as sent (a late copy keeps it) */
};

/* ========================================================================
 * The cluster.
 * ====================================================================== */

struct sim_params {
    unsigned nodes;
    unsigned initial_size; /* bootstrap voters; the rest join later as learners. 0: nodes */
    bool boot_all;         /* start every node at once, even beyond initial_size */
    bool no_discovery;     /* the caller calls cluster_peer_up itself */
    unsigned clients;
    unsigned delay_min; /* peer message latency, ms */
    unsigned delay_max;
    unsigned slow_permille; /* messages that take up to slow_max instead */
    unsigned slow_max;
    unsigned drop_permille;
    unsigned dup_permille;
    unsigned reorder_permille; /* messages not held behind earlier ones on the link */
    unsigned fsync_max;        /* 0: durable right after each input */
    size_t max_append_bytes;
    size_t cache_bytes;      /* the cores' cache of recent entries; 0: default */
    unsigned session_max;    /* client ids remembered; 0: default */
    unsigned retain;         /* entries kept when compacting; 0: never compact */
    unsigned session_ttl_ms; /* 0: no limit by time */
    int64_t client_timeout_ms;
    unsigned think_max_ms;
    unsigned dead_member_timeout_ms; /* core_options' automatic cleanup; 0: off */
    bool removals; /* members may be removed: the checker's majorities allow for it */
    /* A client's next action is a linearizable read (core_read_index) this
     * often instead of a write; 0: writes only. */
    unsigned read_permille;
};

/* ========================================================================
 * Membership: the operator's requests and what the checker learned from the
 * committed configurations.
 * ====================================================================== */

enum sim_admin_op {
    ADMIN_REMOVE, /* core_remove_member(target) */
    ADMIN_FORCE,  /* core_force_config, keeping every other live node (scenarios only) */
};

enum sim_admin_after {
    AFTER_NOTHING,
    AFTER_RETIRE_ON_OK,     /* stop the target for good once the request is answered OK */
    AFTER_RETIRE_ON_COMMIT, /* ... once its removal is committed */
};

struct sim_admin {
    enum sim_admin_op op;
    int node;   /* asked */
    int target; /* removed */
    enum sim_admin_after after;
    int status; /* the core's reply, -1: none (yet, or lost with a crash) */
    int replies;
    uint64_t index;
    uint64_t epoch;
    int64_t sent_at;
    int64_t answered_at;
};

/* A committed configuration, as the checker recorded it. */
struct sim_cfgrec {
    uint64_t index; /* its entry; 0 for the bootstrap stand-in */
    uint64_t epoch;
    unsigned voters;
    uint32_t voter_nodes; /* bit i: node i is a voter (not for the bootstrap stand-in) */
};

struct sim_mstats {
    uint64_t remove_requests;
    uint64_t remove_ok;
    uint64_t remove_refused; /* NOT_FOUND, NO_QUORUM, BUSY, NOT_PRIMARY */
    uint64_t added_nodes;    /* brand-new nodes started */
    uint64_t retired;
    uint64_t unlisted_kills;
    /* From committed configurations: */
    uint64_t removed_on_request;
    uint64_t removed_self; /* a primary removing itself (a handover follows) */
    uint64_t cleaned_up;   /* removed as gone (not on the removed list) */
    uint64_t joined;
    uint64_t promoted;
    uint64_t forced;
    uint64_t bad_removed_events; /* "removed" events naming a replica still a member */
};

struct cluster {
    struct sim_params p;
    uint64_t seed;
    unsigned replay_nodes;  /* --nodes given for the replay command, 0: none */
    bool replay_membership; /* a membership schedule: --membership-seed replays it */
    bool strict_known;      /* checks that only known core bugs fail are fatal */
    const char *scenario;   /* set while a scripted scenario runs */
    bool verbose;
    int64_t now;
    struct rng rng;
    struct sim_node nodes[SIM_MAX_NODES];

    struct sim_event **heap;
    size_t n_heap;
    size_t cap_heap;
    uint64_t seq;
    int64_t link_last[SIM_MAX_NODES][SIM_MAX_NODES]; /* FIFO per link, like TCP */

    unsigned partition_gen;
    unsigned lossy_gen;
    unsigned extra_drop_permille; /* a lossy period */
    bool drop_client_replies;     /* scenarios: lose every reply */
    /* Scenarios: messages for which this returns true are lost. */
    bool (*filter)(struct cluster *cl, const struct sim_event *ev);
    uint64_t filter_arg;
    int filter_node;

    struct sim_client clients[SIM_MAX_CLIENTS];
    struct sim_attempt *attempts; /* attempts[token - 1] */
    size_t n_attempts;
    size_t cap_attempts;

    /* Checker: the committed log as first observed, and who led each epoch. */
    struct sim_entry **committed;
    unsigned *committed_cfg; /* at each index: the cfgs[] in effect (the latest at or before) */
    size_t n_committed;
    size_t cap_committed;
    struct sim_cfgrec *cfgs; /* committed configurations; cfgs[0]: the bootstrap stand-in */
    size_t n_cfgs;
    size_t cap_cfgs;
    struct core_config cfg_last; /* the latest committed configuration (n == 0: none yet) */
    /* Epoch of the committed configuration that put node i on the removed
     * list (0: not removed): it may never be primary of a later epoch. */
    uint64_t removed_epoch[SIM_MAX_NODES];
    /* Scenarios: the next configuration a primary appends may break the
     * single-change rule (core_force_config); the one that does is noted in
     * forced_index, and only that entry may commit so. */
    bool expect_forced;
    uint64_t forced_index;
    size_t durable_recheck; /* check_durable_majority from here at the next flush */
    int *epoch_primary;     /* node index + 1, 0: none */
    uint64_t *epoch_commit; /* highest commit index seen at that epoch's primary */
    size_t cap_epochs;

    /* The operator's requests: admin[token - SIM_ADMIN_TOKEN - 1]. */
    struct sim_admin *admin;
    size_t n_admin;
    size_t cap_admin;
    unsigned n_unlisted;
    struct sim_mstats ms;

    /* Called when a node becomes primary (the schedule's hair-trigger faults). */
    void (*on_elected)(struct cluster *cl, int node);
    /* The schedule's fault generator. */
    int64_t hook_at;
    void (*hook)(struct cluster *cl, void *data);
    void *hook_data;

    uint64_t acked;
    uint64_t expired;         /* requests refused because their session expired */
    uint64_t compactions;     /* snapshots taken (retention) */
    uint64_t max_acked_index; /* highest index any client was told is committed */
    uint64_t reads_ok;        /* linearizable reads answered and checked */
    uint64_t elections;
    uint64_t elections_started;
    uint64_t kills;
    uint64_t steps;
    uint64_t same_time_steps;
    bool failed;
};

/* cluster.c */
struct cluster *cluster_new(const struct sim_params *p, uint64_t seed, bool verbose);
void cluster_free(struct cluster *cl);
void cluster_start(struct cluster *cl);
bool cluster_step(struct cluster *cl);                     /* false once an invariant failed */
bool cluster_run_until(struct cluster *cl, int64_t until); /* steps while now < until */
bool cluster_step_until(struct cluster *cl, bool (*done)(struct cluster *cl), int64_t max_ms);
struct sim_event *cluster_event(struct cluster *cl, enum sim_ev_kind kind, int64_t at);
void cluster_kill(struct cluster *cl, int i, bool notify_down);
void cluster_revive(struct cluster *cl, int i);
void cluster_pause(struct cluster *cl, int i, int64_t until);
void cluster_resume(struct cluster *cl, int i);
void cluster_isolate(struct cluster *cl, int i);
void cluster_split(struct cluster *cl, unsigned mask); /* nodes in mask vs the rest */
void cluster_heal(struct cluster *cl);
void cluster_peer_up(struct cluster *cl, int a, int b);         /* a learns b is up */
void cluster_set_groups(struct cluster *cl, const int *groups); /* groups[i]: node i's side */
int cluster_add_node(struct cluster *cl); /* a brand-new node (new id, empty log); -1: no slot */
void cluster_retire(struct cluster *cl, int i); /* stop for good, unlisted */
int cluster_primary(const struct cluster *cl);  /* live, unpaused primary of the highest epoch */
bool cluster_has_primary(struct cluster *cl);
bool cluster_converged(struct cluster *cl);
bool cluster_out(const struct cluster *cl, int i); /* retired, or removed by a committed config */
int cluster_node_index(const struct cluster *cl, const char *id);
unsigned cluster_alive(const struct cluster *cl);
void cluster_dump(const struct cluster *cl);
void sim_trace(const struct cluster *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim_fail(struct cluster *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Internal to the simulator's files. */
void node_io_init(struct sim_node *n);                         /* storage.c */
void node_drain(struct cluster *cl, struct sim_node *n);       /* storage.c */
void node_flush(struct cluster *cl, struct sim_node *n);       /* storage.c */
void node_discard_pending(struct sim_node *n);                 /* storage.c */
void node_after_input(struct cluster *cl, struct sim_node *n); /* cluster.c */
struct sim_event *event_new(struct cluster *cl, enum sim_ev_kind kind);
void event_free(struct sim_event *ev);
void heap_push(struct cluster *cl, struct sim_event *ev);
struct sim_event *heap_pop(struct cluster *cl);
const char *msg_name(enum core_msg_type t);
void msg_describe(const struct core_msg *m, char *buf, size_t cap);
bool cluster_connected(const struct cluster *cl, int a, int b);
void release_msg(struct cluster *cl, struct sim_event *ev);
void deliver_msg(struct cluster *cl, struct sim_event *ev);
void deliver_request(struct cluster *cl, struct sim_event *ev);

/* client.c */
void client_init(struct cluster *cl, int k);
void client_free(struct sim_client *c);
void client_act(struct cluster *cl, int k);
void client_on_reply(struct cluster *cl, const struct sim_event *ev);
void client_on_refused(struct cluster *cl, uint64_t token);
uint64_t client_send(struct cluster *cl, int k, int node); /* an attempt; returns its token */
void client_ids(int k, uint64_t req, char *cid, size_t cid_cap, char *data, size_t data_cap);
bool client_parse_id(const char *cid, int *k, uint64_t *req);
bool clients_idle(const struct cluster *cl);

/* membership.c */
uint64_t admin_remove(struct cluster *cl, int node, int target, enum sim_admin_after after,
                      int64_t delay);
uint64_t admin_force(struct cluster *cl, int node);
void deliver_admin(struct cluster *cl, struct sim_event *ev);
void admin_on_reply(struct cluster *cl, struct sim_node *n, const struct sim_event *ev);
struct sim_admin *admin_get(struct cluster *cl, uint64_t token);
void admin_on_removed(struct cluster *cl, int target);
void cluster_set_listed(struct cluster *cl, int i, bool listed);
void node_apply_listing(struct cluster *cl, struct sim_node *n);
void node_config(const struct sim_node *n, struct core_config *cfg, uint64_t *index);
unsigned config_voters(const struct core_config *cfg);
bool config_is_voter(const struct core_config *cfg, const char *id);
bool config_is_member(const struct core_config *cfg, const char *id);
void config_diff(const struct core_config *a, const struct core_config *b, unsigned *members,
                 unsigned *voters);
void config_describe(const struct core_config *cfg, char *buf, size_t cap);

/* check.c */
void check_after_input(struct cluster *cl, struct sim_node *n);
void check_elected(struct cluster *cl, struct sim_node *n);
void check_truncate(struct cluster *cl, struct sim_node *n, uint64_t from);
void check_at_flush(struct cluster *cl, struct sim_node *n);
void check_reply(struct cluster *cl, struct sim_node *n, const struct sim_event *ev);
void check_on_revive(struct cluster *cl, struct sim_node *n);
void check_durable_majority(struct cluster *cl, size_t from);
void check_final(struct cluster *cl);

/* scenarios.c: the number of scenarios that failed. Those that reproduce
 * known core bugs run only when named or with include_known. */
int scenarios_run(const char *only, uint64_t seed, bool verbose, bool include_known);

#endif
