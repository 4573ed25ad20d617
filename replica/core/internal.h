/*
 * replica/core/internal.h — the core's state and the functions its files
 * share. Not for the adapters: they see core.h only.
 *
 * Files: log.c (epochs, CONFIG indexes, the cache of recent entries and
 * reads of older ones from storage), sessions.c (client sessions and
 * waiting requests), quorum.c
 * (membership, bootstrap, peers and the majority rule), election.c (roles,
 * votes, pre-vote, leases), replication.c (Appends, commit),
 * membership.c (adding, promoting and removing members, handing over,
 * forced recovery), outbox.c (the update handed to the adapter, and the one place
 * the durability rule is applied), core.c (inputs, life cycle, status).
 */
#ifndef REPLICA_CORE_INTERNAL_H
#define REPLICA_CORE_INTERNAL_H

#include "core.h"
#include "idmap.h"
#include "pool.h"

#include <assert.h>

#define MAX_INFLIGHT 8 /* Appends with entries in flight to one peer */

struct peer {
    char id[CORE_ID_MAX];
    bool up;                    /* connected, per core_peer_up / core_peer_down */
    bool listed;                /* discovery still lists it (core_peer_listed) */
    int64_t last_heard;         /* any message from it; -1 never */
    int64_t snapshot_sent;      /* when it was last sent our snapshot; 0 never */
    int64_t snapshot_heartbeat; /* ... or a heartbeat while it installs it */
    /* Primary's replication state for this peer. */
    uint64_t next_index; /* next entry to send */
    uint64_t match_index;
    int64_t last_ack; /* last response in our epoch (check-quorum) */
    /* Appends with entries not yet answered: the last index each carried,
     * oldest first (a ring). An answer with match M answers every one up
     * to M, whichever message it replies to: answers may overtake each
     * other, and a slot must never leak. */
    uint64_t inflight_last[MAX_INFLIGHT];
    unsigned inflight_head;
    unsigned inflight;
    bool need_send;       /* send an Append at the next flush even if empty */
    uint64_t round_acked; /* highest heartbeat round it answered */
    /* Candidate's tally. */
    bool granted;
};

/* A client id the table remembers: the DATA entry it wrote. */
struct session {
    uint64_t index;
    int64_t time_ms;
    char *key; /* owned; the idmap borrows it */
    /* What it wrote, to tell a retry from a reuse without reading the
     * entry (which retention may have dropped). */
    uint64_t data_hash;
    uint64_t data_len;
    uint64_t epoch; /* the entry's, for the answer */
    bool hashed;    /* data_hash is known (rebuilt at start: on first retry) */
};

struct pending_reply {
    uint64_t token;
    uint64_t index;
};

/* A linearizable read waiting for its heartbeat round (round 0: not yet
 * assigned; index: the commit index when the round began). */
struct pending_read {
    uint64_t token;
    uint64_t index;
    uint64_t round;
};

/* The update being built by inputs, until core_ready hands it out. */
struct outbox {
    bool has_state;
    uint64_t persist_from; /* 0: the log did not change */
    struct core_out_msg *msgs;
    size_t n_msgs, cap_msgs;
    struct core_out_reply *replies;
    size_t n_replies, cap_replies;
    struct core_event *events;
    size_t n_events, cap_events;
};

struct core {
    struct core_options o;
    char id[CORE_ID_MAX];
    struct core_hard_state hs;

    enum core_role role; /* PRIMARY, CANDIDATE or BACKUP; learner is derived */
    bool pre_vote;       /* candidate: still in the pre-vote phase */
    bool self_granted;
    char primary[CORE_ID_MAX];
    /* Who was primary in the current epoch, once known: there is only ever
     * one, so an Append of this epoch from anybody else is refused. Unlike
     * `primary` it stays known when contact is lost. */
    char epoch_primary[CORE_ID_MAX];
    bool primary_down;            /* the adapter saw its process go away */
    int64_t primary_lost_at;      /* when it did; 0 once a primary is heard again */
    int64_t last_primary_contact; /* -1 never */
    int64_t election_deadline;
    int64_t heartbeat_deadline;
    int64_t primary_since;
    int64_t timing_since;       /* the timing last changed (core_set_timing) */
    uint64_t epoch_start_index; /* primary: first entry of its epoch */

    /* The log (log.c): entries 1..last. cache[i] holds index
     * cache_first + i; each cached entry's client_id, primary and data
     * live in one block of entry_pool that starts at client_id. */
    uint64_t last;
    struct core_entry *cache;
    struct pool entry_pool;
    size_t cache_len;
    size_t cache_cap;
    uint64_t cache_first;
    size_t cache_bytes;
    struct core_epoch_run *runs; /* where each epoch of the log starts */
    size_t n_runs;
    size_t cap_runs;
    uint64_t *cfg_entries; /* indexes of the CONFIG entries */
    size_t n_cfg_entries;
    size_t cap_cfg_entries;
    uint64_t storage_errors; /* reads from storage that failed */
    /* Retention (snapshot.c): entries before first_index are gone; the
     * snapshot stands for 1..snap_index (its epoch, the configuration in
     * force then, sessions, counts), encoded in snap for peers behind. */
    uint64_t first_index;
    uint64_t snap_index;
    uint64_t snap_epoch;
    uint8_t *snap;
    size_t snap_len;
    struct core_config snap_cfg;
    uint64_t snap_cfg_index;
    bool snap_new;         /* taken or installed since the last update */
    bool snap_reset;       /* installed: storage replaces the log */
    uint64_t snap_drop;    /* taken: entries before this may go */
    int64_t now;           /* the time of the latest input */
    bool disk_failed;      /* core_storage_failed until core_storage_resumed */
    uint64_t checkpointed; /* commit index of the last checkpoint handed out */
    uint64_t commit;
    uint64_t durable;   /* entries 1..durable are on this replica's disk */
    uint64_t persisted; /* entries 1..persisted were handed to storage */

    struct core_config cfg; /* latest CONFIG in the log, or the bootstrap list */
    uint64_t cfg_index;     /* 0: no CONFIG entry yet, still bootstrapping */
    /* We appended, as primary, the latest configuration, which removes us,
     * and were a voter before it: until it commits, the voters that never
     * received it may need our vote, and we may need to campaign (4.2.2). */
    bool removing_self;
    /* Primary: a member removed on request that is still connected; it is
     * sent the log until it holds its removal, so it knows it is out. */
    char leaving[CORE_ID_MAX];
    bool leaving_told; /* it was sent a commit index covering its removal */
    /* Primary that removed itself: the voter it hands over to, and when it
     * gives up waiting for that voter to catch up. */
    char handover_to[CORE_ID_MAX];
    int64_t handover_deadline;
    bool transfer_round; /* next real round answers a TimeoutNow */

    struct peer peers[CORE_MAX_MEMBERS]; /* every replica seen, minus self */
    unsigned n_peers;

    /* Client sessions (sessions.c): a ring of the remembered ids, oldest
     * first, and the map from id to entry. Only a primary looks ids up, so
     * the map is built when one first does (ids_indexed) and dropped when
     * it steps down: a backup, above all one catching up on a million
     * entries, keeps just the ring. */
    struct idmap client_ids;
    bool ids_indexed;
    struct pool key_pool; /* the ring's client ids */
    struct session *sessions;
    size_t sessions_head;
    size_t sessions_len;
    size_t sessions_cap;
    uint64_t session_horizon; /* every DATA entry from here on is in the table */
    struct pending_reply *pending;
    size_t n_pending;
    size_t cap_pending;

    uint64_t processed;
    uint64_t synced;

    /* ReadIndex: the primary's current heartbeat round, carried by every
     * Append and echoed back; reads wait for a majority to echo theirs. */
    uint64_t round;
    bool round_wanted; /* reads arrived: start a round at the next flush */
    struct pending_read *reads;
    size_t n_reads;
    size_t cap_reads;

    struct outbox out;
};

/* log.c */
uint64_t last_index(const struct core *c);
uint64_t epoch_at(const struct core *c, uint64_t index);
uint64_t last_epoch(const struct core *c);
int runs_note_at(struct core *c, const struct core_epoch_run *r);
int config_note_at(struct core *c, uint64_t index);
int log_push(struct core *c, const struct core_entry *e);
void log_truncate(struct core *c, uint64_t from);
void log_trim(struct core *c);
int log_reset(struct core *c, const uint8_t *data, size_t len);
void log_free(struct core *c);
void log_append_local(struct core *c, enum core_entry_type type, const char *client_id,
                      const uint8_t *data, size_t len);
int log_read(struct core *c, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
             const struct core_entry **out, size_t *n);
const struct core_entry *log_entry(struct core *c, uint64_t index);

/* snapshot.c */
int snap_take(struct core *c);
int snap_load(struct core *c, const uint8_t *data, size_t len, bool apply);
int snap_check(const uint8_t *data, size_t len, uint64_t index, uint64_t epoch);
void snap_free(struct core *c);

/* sessions.c */
const struct session *session_at(const struct core *c, size_t i);
void sessions_reset(struct core *c, uint64_t horizon);
int sessions_hash_upto(struct core *c, uint64_t index);
uint64_t session_hash(const uint8_t *data, size_t len);
void session_note(struct core *c, const struct session *s);
void sessions_truncate(struct core *c, uint64_t from);
int sessions_rebuild(struct core *c);
void sessions_free(struct core *c);
void sessions_unindex(struct core *c);
void session_request(struct core *c, uint64_t token, const char *client_id, const uint8_t *data,
                     size_t len, uint64_t seen_index);
void sessions_answer_committed(struct core *c);
void sessions_fail(struct core *c, enum core_reply_status st);

/* quorum.c */
void config_reload(struct core *c);
struct core_member *member(const struct core *c, const char *id);
bool is_voter(const struct core *c, const char *id);
bool is_member(const struct core *c, const char *id);
unsigned n_voters(const struct core *c);
unsigned quorum(const struct core *c); /* voters a majority needs */
bool can_campaign(const struct core *c);
void bootstrap_list(struct core *c);
void bootstrap_fix(struct core *c);
bool bootstrap_matches(const struct core *c, const struct core_msg *m);
struct peer *peer_find(const struct core *c, const char *id);
struct peer *peer_get(struct core *c, const char *id);
uint64_t majority_index(const struct core *c);
uint64_t majority_round(const struct core *c);
bool votes_won(const struct core *c);
bool quorum_fresh(const struct core *c, int64_t now);
unsigned majority_of(unsigned n);
unsigned voters_alive(const struct core *c, int64_t now, const char *without);
void peer_forget(struct core *c, const char *id);

/* election.c */
void role_change(struct core *c, int64_t now, enum core_role to, const char *why);
void reset_election_timer(struct core *c, int64_t now);
void persist_epoch(struct core *c, uint64_t epoch, const char *voted_for);
void follow(struct core *c, int64_t now, uint64_t epoch, const char *primary);
void start_round(struct core *c, int64_t now, bool pre_vote);
void recv_vote_request(struct core *c, int64_t now, const struct core_msg *m);
void recv_vote_response(struct core *c, int64_t now, const struct core_msg *m);

/* replication.c */
void primary_start(struct core *c, int64_t now);
void send_append(struct core *c, struct peer *p, bool with_entries);
void broadcast_heartbeat(struct core *c, int64_t now);
void advance_commit(struct core *c, uint64_t to);
void primary_update_commit(struct core *c);
void recv_append(struct core *c, int64_t now, const struct core_msg *m);
void recv_append_response(struct core *c, int64_t now, const struct core_msg *m);
void recv_snapshot(struct core *c, int64_t now, const struct core_msg *m);

/* membership.c */
void append_config(struct core *c);
bool replicates_to(const struct core *c, const struct peer *p);
void maybe_change_config(struct core *c, int64_t now);
bool handing_over(const struct core *c);
void recv_timeout_now(struct core *c, int64_t now, const struct core_msg *m);

/* reads.c */
void reads_start_round(struct core *c);
void reads_confirm(struct core *c);
void reads_fail(struct core *c);

/* outbox.c */
void out_send(struct core *c, const char *to, const struct core_msg *m);
void out_reply(struct core *c, uint64_t token, enum core_reply_status st, uint64_t index,
               uint64_t epoch, const char *primary, const char *msg);
void out_event(struct core *c, enum event_type type, const char *subject, uint64_t index,
               const char *detail);
void out_state(struct core *c);
void out_log_changed(struct core *c, uint64_t from);
void out_drop_appends(struct core *c);
void outbox_free(struct core *c);
uint64_t rnd(struct core *c, uint64_t bound);

#endif
