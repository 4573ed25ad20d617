/*
 * replica/core/core.h — the replication protocol, with no I/O at all.
 *
 * The core owns the in-memory log and the protocol state of one replica:
 * epochs and votes, pre-vote, heartbeats, check-quorum, commit on a majority,
 * catch-up by backtracking, client-id deduplication and membership (bootstrap
 * configuration, learners promoted once caught up). It is a Raft variant
 * (Ongaro, "Consensus: Bridging Theory and Practice", 2014) in the vocabulary
 * of the project: epoch = term, primary = leader, backup = follower.
 *
 * Inputs (core_recv, core_tick, core_client_request, ...) take the current
 * time and change only the core's memory. What they make necessary piles up
 * as one `struct core_update` (hard state and log entries to persist,
 * messages, client replies, events) that the adapter takes with core_ready,
 * carries out with core_update_apply, and confirms with core_advance once its
 * persistence is durable. Randomness and the wall clock are injected through
 * core_options. That keeps the core deterministic, so the simulator in
 * tests/sim drives many cores with one fake clock, through the very same
 * core_update_apply as the libuv adapter.
 *
 * THE DURABILITY RULE, kept in one place (core_update_apply):
 *   nothing in an update leaves the process before its persistence is
 *   durable, except a primary's Appends, which may go before the primary's
 *   own fsync (dissertation 10.2.1) when the update holds no hard state.
 *   The primary counts its own log towards a majority only up to what
 *   core_advance confirmed durable, so an early Append never lets it
 *   acknowledge a write that a majority does not hold on disk.
 */
#ifndef REPLICA_CORE_H
#define REPLICA_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "vocab.h"

#define CORE_ID_MAX        LIMIT_ID_BYTES /* replica ids, including the NUL */
#define CORE_CLIENT_ID_MAX LIMIT_CLIENT_ID_BYTES
#define CORE_MAX_MEMBERS   LIMIT_MEMBERS
#define CORE_MAX_REMOVED   LIMIT_MEMBERS

/* Roles are the shared vocabulary's (common/vocab.h). */
enum core_role {
    CORE_BACKUP = ROLE_BACKUP,
    CORE_CANDIDATE = ROLE_CANDIDATE,
    CORE_PRIMARY = ROLE_PRIMARY,
    CORE_LEARNER = ROLE_LEARNER,
    CORE_REMOVED = ROLE_REMOVED,
};

enum core_entry_type {
    CORE_ENTRY_DATA = 0,   /* a client request */
    CORE_ENTRY_NOOP = 1,   /* a new primary's first entry, commits its epoch */
    CORE_ENTRY_CONFIG = 2, /* membership; data encoded by core_config_encode */
};

/* One log entry. Strings and data are owned by whoever produced the struct:
 * the core copies what it is given and lends its own entries only for the
 * duration of an io callback. */
struct core_entry {
    uint64_t index;
    uint64_t epoch;
    enum core_entry_type type;
    int64_t time_ms;       /* primary's clock when appended, for display */
    const char *client_id; /* "" for NOOP and CONFIG */
    const char *primary;   /* the replica that processed (appended) it */
    const uint8_t *data;
    size_t len;
};

/* Membership, as CONFIG entries carry it (encoded by core_config_encode:
 * one item per line, see config.c). */
struct core_member {
    char id[CORE_ID_MAX];
    bool voter;
};
struct core_config {
    char cluster_id[CORE_ID_MAX]; /* chosen by the first primary; "" in old logs */
    unsigned n;
    struct core_member members[CORE_MAX_MEMBERS];
    /* Replicas removed on request (DELETE): never added back automatically,
     * so a decommissioned replica that still runs stays out. The oldest
     * fall off when the list is full. Members found dead are not listed:
     * they may come back and join again as new learners. */
    unsigned n_removed;
    char removed[CORE_MAX_REMOVED][CORE_ID_MAX];
};
size_t core_config_encode(const struct core_config *cfg, char *buf, size_t cap);
int core_config_decode(const uint8_t *data, size_t len, struct core_config *cfg);
const struct core_member *core_config_member(const struct core_config *cfg, const char *id);
bool core_config_removed(const struct core_config *cfg, const char *id);
/* Room core_config_encode needs at most. */
#define CORE_CONFIG_TEXT_MAX ((CORE_MAX_MEMBERS + CORE_MAX_REMOVED + 1) * (CORE_ID_MAX + 3) + 1)

enum core_msg_type {
    CORE_MSG_VOTE_REQUEST,
    CORE_MSG_VOTE_RESPONSE,
    CORE_MSG_APPEND,
    CORE_MSG_APPEND_RESPONSE,
    CORE_MSG_TIMEOUT_NOW, /* a primary that removed itself: elect at once */
    CORE_MSG_SNAPSHOT,    /* what stands for entries the primary no longer has */
};

struct core_msg {
    enum core_msg_type type;
    const char *from; /* filled by the receiving side; ignored on send */
    uint64_t epoch;   /* sender's epoch */
    union {
        struct {
            uint64_t last_index;
            uint64_t last_epoch;
            bool pre_vote;
            bool transfer; /* answers a TimeoutNow: voters set their lease aside */
            unsigned n_bootstrap;
            const char *const *bootstrap; /* only while the log is empty */
        } vote_request;
        struct {
            bool granted;
            bool pre_vote;
        } vote_response;
        struct {
            uint64_t prev_index;
            uint64_t prev_epoch;
            uint64_t commit_index;
            uint64_t round; /* the primary's heartbeat round (ReadIndex) */
            size_t n_entries;
            const struct core_entry *entries;
        } append;
        struct {
            bool success;
            uint64_t match_index;
            uint64_t hint_index;
            uint64_t round; /* the round of the Append it answers */
        } append_response;
        struct {
            uint64_t index; /* the last entry it stands for (a commit index) */
            uint64_t epoch; /* that entry's epoch */
            const uint8_t *data;
            size_t len;
        } snapshot; /* answered with an APPEND_RESPONSE (match: index) */
    };
};

/* What must survive a crash besides the log. */
struct core_hard_state {
    uint64_t epoch;
    char voted_for[CORE_ID_MAX]; /* "" for nobody */
    /* The initial configuration this replica settled on (sorted ids). Sticky:
     * once chosen it never changes, which the unanimous bootstrap vote needs. */
    unsigned n_bootstrap;
    char bootstrap[CORE_MAX_MEMBERS][CORE_ID_MAX];
};

/* The epoch of every entry, described by where each epoch starts: epochs
 * change rarely, so a handful of runs stand for millions of entries. */
struct core_epoch_run {
    uint64_t first_index;
    uint64_t epoch;
};

/* A lower bound of the commit index, with the counts of committed DATA
 * entries at that point (appended by this replica / by others). Persisted
 * now and then so that a restart need not re-read the log to count. */
struct core_checkpoint {
    uint64_t commit;
    uint64_t processed;
    uint64_t synced;
};

/* What the core needs from durable storage at start, instead of the
 * entries themselves: they stay on disk and are read through core_store. */
struct core_recovered {
    struct core_hard_state hs;
    uint64_t last_index; /* 0: empty log */
    /* Runs covering every entry 1..last_index, ascending; n_runs 0 when
     * the log is empty. */
    const struct core_epoch_run *runs;
    size_t n_runs;
    /* Indexes of every CONFIG entry in the log, ascending. */
    const uint64_t *config_indexes;
    size_t n_config;
    struct core_checkpoint checkpoint; /* all zero when none was written */
    /* The last snapshot (retention), or none (len 0): the log then starts
     * at most one entry after its index. */
    const uint8_t *snapshot;
    size_t snapshot_len;
};

/* How the core reads entries it no longer keeps in memory (the adapter's
 * log files; the simulator's arrays). read() fills *out with entries lo..
 * (at most hi), as many as fit in max_bytes but at least one (each entry
 * counting its data length + CORE_ENTRY_OVERHEAD, as in an Append), and
 * *n with their count; they are lent until the next call. With meta_only
 * the data may be left out (data NULL, len still the real length). The core
 * only asks for entries its storage made durable. Returns 0, or a negative
 * errno (-EILSEQ: a damaged record; -EIO). */
#define CORE_ENTRY_OVERHEAD 64
struct core_store {
    void *arg;
    int (*read)(void *arg, uint64_t lo, uint64_t hi, size_t max_bytes, bool meta_only,
                const struct core_entry **out, size_t *n);
};

enum core_reply_status {
    CORE_REPLY_OK,          /* committed at index/epoch */
    CORE_REPLY_NOT_PRIMARY, /* primary holds the id of who is, or "" */
    CORE_REPLY_UNKNOWN,     /* lost primacy before commit: retry, same id */
    CORE_REPLY_REJECTED,    /* the request itself is invalid */
    CORE_REPLY_CONFLICT,    /* the client id is taken by other data, at index */
    CORE_REPLY_NOT_FOUND,   /* membership: no such member */
    CORE_REPLY_NO_QUORUM,   /* membership: the change would leave no reachable majority */
    CORE_REPLY_BUSY,        /* membership: another change is in progress; retry */
    CORE_REPLY_EXPIRED,     /* the id's session expired: index is the horizon */
};

struct core_reply {
    enum core_reply_status status;
    uint64_t index;
    uint64_t epoch;
    const char *primary;
    const char *message;
};

/* Something worth telling operators: logged and streamed to subscribers. */
struct core_event {
    enum event_type type;      /* EVENT_ELECTED ... EVENT_COMMITTED */
    char subject[CORE_ID_MAX]; /* the replica it is about */
    uint64_t epoch;
    uint64_t index;
    char detail[160]; /* for people: cut to fit */
};

/* A message to one peer. `early`: a primary's Append, which may leave before
 * the update's persistence is durable (see THE DURABILITY RULE). */
struct core_out_msg {
    char to[CORE_ID_MAX];
    bool early;
    struct core_msg msg; /* its entries and bootstrap ids point into `own` */
    void *own;
};

/* A reply to the client request `token`. */
struct core_out_reply {
    uint64_t token;
    struct core_reply reply; /* primary and message point into this struct */
    char primary[CORE_ID_MAX];
    char message[96];
};

/* What a batch of inputs made necessary, in no particular order: the order
 * in which it may happen is core_update_apply's to decide. */
struct core_update {
    bool has_state; /* persist hs before anything but early Appends leaves */
    struct core_hard_state hs;
    /* Log changes: drop what storage holds from truncate_from on (0: keep
     * it all), then append entries[] (index order, following on). */
    bool has_entries;
    uint64_t truncate_from;
    const struct core_entry *entries; /* lent: valid until the next input */
    size_t n_entries;
    struct core_out_msg *msgs;
    size_t n_msgs;
    struct core_out_reply *replies;
    size_t n_replies;
    struct core_event *events;
    size_t n_events;
    /* For core_advance: the last entry persisted, and its epoch. */
    uint64_t durable_index;
    uint64_t durable_epoch;
    /* Persist this too (with the rest; it needs no sync of its own). */
    bool has_checkpoint;
    struct core_checkpoint checkpoint;
    /* A snapshot to keep (before the entries): taken here (entries before
     * drop_before may then go), or installed from the primary (reset: the
     * log is replaced, and continues after snapshot_index). Its data is
     * lent like the entries. */
    bool has_snapshot;
    bool snapshot_reset;
    uint64_t snapshot_index;
    uint64_t snapshot_epoch;
    const uint8_t *snapshot_data;
    size_t snapshot_len;
    uint64_t drop_before;
};

/* How an adapter carries out an update. send() must encode or copy what it
 * needs before returning; sync() returns once everything persisted so far is
 * durable (or, in the simulator, holds later output until it is). */
struct core_sink {
    void *data;
    void (*persist_state)(struct core_sink *s, const struct core_hard_state *hs);
    void (*persist_entries)(struct core_sink *s, uint64_t truncate_from,
                            const struct core_entry *entries, size_t n);
    void (*persist_checkpoint)(struct core_sink *s,
                               const struct core_checkpoint *cp); /* optional */
    /* With retention: keep u's snapshot (and drop or reset the log). */
    void (*persist_snapshot)(struct core_sink *s, const struct core_update *u);
    /* false: persistence failed (a full or failing disk): nothing that
     * follows in the update may leave, and it is not confirmed. */
    bool (*sync)(struct core_sink *s);
    void (*send)(struct core_sink *s, const char *to, const struct core_msg *m, bool early);
    void (*reply)(struct core_sink *s, uint64_t token, const struct core_reply *r);
    void (*event)(struct core_sink *s, const struct core_event *ev);
};

struct core_options {
    const char *id;
    /* Injected sources: a random number (for election timeouts) and,
     * optionally, the wall clock in ms stamped on entries for display. */
    uint64_t (*random)(void *arg);
    int64_t (*wall_clock)(void *arg); /* NULL: entries carry 0 */
    void *arg;
    unsigned heartbeat_ms;    /* default 50 */
    unsigned election_min_ms; /* default 300 */
    unsigned election_max_ms; /* default 600, exclusive */
    unsigned initial_size;    /* bootstrap configuration size, default 3 */
    size_t max_append_bytes;  /* payload per Append message, default 1 MiB */
    size_t max_request_bytes; /* a client request's data, default 1 MiB */
    /* A member unreachable this long and no longer listed by discovery is
     * removed by the primary; 0 never removes anybody. */
    unsigned dead_member_timeout_ms;
    /* Where entries no longer cached are read from; without a reader the
     * core keeps every entry in memory. */
    struct core_store store;
    size_t cache_bytes; /* recent entries kept in memory, default 8 MiB */
    /* Client sessions: the ids of at most session_max newest DATA entries
     * (default 65536), none older than session_ttl_ms before the newest
     * entry (0: no limit by time). */
    unsigned session_max;
    unsigned session_ttl_ms;
};

struct core_peer_status {
    char id[CORE_ID_MAX];
    bool voter;
    bool member; /* in the configuration (voter or learner) */
    bool up;     /* connected, per the adapter */
    uint64_t match_index;
    int64_t last_seen_ms; /* age of the last message from it; -1 never */
};

struct core_status {
    enum core_role role;
    uint64_t epoch;
    char primary[CORE_ID_MAX]; /* who this replica believes is primary */
    char voted_for[CORE_ID_MAX];
    uint64_t last_index;
    uint64_t commit_index;
    uint64_t processed; /* committed data entries it appended as primary */
    uint64_t synced;    /* committed data entries it received from others */
    int64_t heartbeat_age_ms;
    bool voter;
    unsigned n_peers;
    struct core_peer_status peers[CORE_MAX_MEMBERS];
    struct core_config config; /* latest configuration this replica holds */
    uint64_t config_index;     /* its entry; 0 while bootstrapping */
    uint64_t session_horizon;  /* client ids of entries before it are forgotten */
    unsigned sessions;         /* client ids remembered */
    size_t cache_bytes;        /* recent entries held in memory */
    uint64_t storage_errors;   /* reads of old entries that failed */
    unsigned heartbeat_ms;     /* the timing in force */
    unsigned election_min_ms;
    unsigned election_max_ms;
};

struct core;

/* Create a core from what the durable log recovered (entries in index order,
 * starting at 1, all durable). Returns NULL on allocation failure or invalid
 * options. */
struct core *core_open(const struct core_options *o, const struct core_recovered *r, int64_t now);
/* The same, from entries held in memory (tests, the simulator). */
struct core *core_new(const struct core_options *o, const struct core_hard_state *hs,
                      const struct core_entry *entries, size_t n_entries, int64_t now);
void core_free(struct core *c);
/* Before a clean shutdown: answer pending client requests UNKNOWN so their
 * clients retry elsewhere right away (the replies are in the next update). */
void core_stop(struct core *c);

/* Inputs. `now` is milliseconds on a monotonic clock. */
void core_tick(struct core *c, int64_t now);
void core_recv(struct core *c, int64_t now, const struct core_msg *m);
/* A client's request, answered under `token`. seen_index: a log index the
 * client had seen before it first sent this request (0 when it had seen an
 * empty log; CORE_SEEN_UNKNOWN: it cannot say); it lets a retry whose
 * session expired be refused rather than applied twice. */
#define CORE_SEEN_UNKNOWN UINT64_MAX
void core_client_request(struct core *c, int64_t now, uint64_t token, const char *client_id,
                         const uint8_t *data, size_t len, uint64_t seen_index);
/* A replica identified itself on a connection (discovery found it). */
void core_peer_up(struct core *c, int64_t now, const char *id);
/* The connection to a replica closed and reconnecting was refused: its
 * process is gone. Lets backups elect at once instead of waiting out the
 * election timeout; votes still decide. */
void core_peer_down(struct core *c, int64_t now, const char *id);
/* Whether discovery still lists a replica (the adapter's view; every
 * replica starts listed). Only unlisted ones can be found dead. */
void core_peer_listed(struct core *c, const char *id, bool listed);
/* Membership requests, answered like client requests under `token`:
 * remove a member (OK once the change is appended, NOT_FOUND, NO_QUORUM,
 * BUSY, NOT_PRIMARY), or, UNSAFE and only when a majority is lost for good,
 * make this replica the only voter of a new configuration with `keep` as
 * learners. */
void core_remove_member(struct core *c, int64_t now, uint64_t token, const char *id);
void core_force_config(struct core *c, int64_t now, uint64_t token, const char *const *keep,
                       unsigned n_keep);
/* A linearizable read (ReadIndex, dissertation 6.4): answered under `token`
 * with OK and the index up to which the log may be read once this replica
 * has confirmed it is still the primary (a heartbeat round answered by a
 * majority, shared by every read waiting for it) and has committed an entry
 * of its own epoch; NOT_PRIMARY on a replica that is not the primary,
 * UNKNOWN if it stops being primary before. Everything acknowledged before
 * the call is at or below that index. */
void core_read_index(struct core *c, int64_t now, uint64_t token);
/* Queue whatever replication the inputs since the last flush made
 * necessary, one Append per peer. Call once per batch of inputs (the
 * adapter: once per loop iteration), which is what batches requests into one
 * message. */
void core_flush(struct core *c, int64_t now);

/* Output. core_ready moves what the inputs so far made necessary into *u
 * (false, and *u empty, when there is nothing). Carry it out with
 * core_update_apply before the next input (entries are lent); once its
 * persistence is durable, core_advance says so (which may commit, and so
 * make more output); core_update_free releases it. */
bool core_ready(struct core *c, struct core_update *u);
/* false when sync() failed: the caller then does not call core_advance. */
bool core_update_apply(const struct core_update *u, struct core_sink *sink);
void core_advance(struct core *c, int64_t now, const struct core_update *u);
void core_update_free(struct core_update *u);
/* For a sink whose sync() returns only once everything is durable (a real
 * fsync): take, apply, confirm and free every ready update, including what
 * each confirmation makes necessary. */
void core_run_updates(struct core *c, int64_t now, struct core_sink *sink);

/* The adapter's storage cannot write (ENOSPC, EIO): a primary steps down,
 * and until core_storage_resumed the replica neither campaigns, votes nor
 * takes entries — it could not make them durable, so it must not count as
 * holding them. Resumed: everything handed to storage is durable again. */
void core_storage_failed(struct core *c, int64_t now, const char *why);
void core_storage_resumed(struct core *c, int64_t now);

/* Retention: take a snapshot at the commit index and let storage drop the
 * entries before the newest `keep` (the update says which). Peers that need
 * dropped entries are sent the snapshot instead. False when there is
 * nothing new to take. */
bool core_compact(struct core *c, int64_t now, uint64_t keep);
/* The first entry the log still holds (1 until retention dropped some). */
uint64_t core_first_index(const struct core *c);

/* New heartbeat and election timeouts (the fault lab's slow motion), in
 * force at once: a primary heartbeats now and then at the new pace, a
 * backup's election timer starts over with the new range, and check-quorum
 * gives acks paced by the old timing one new timeout's grace. 0 for any:
 * the default (50, 300, 2 x min). */
void core_set_timing(struct core *c, int64_t now, unsigned heartbeat_ms, unsigned election_min_ms,
                     unsigned election_max_ms);

/* When core_tick must next be called, at the latest. */
int64_t core_next_deadline(const struct core *c);

/* Read-only views. */
void core_get_status(const struct core *c, int64_t now, struct core_status *out);
enum core_role core_role(const struct core *c);
uint64_t core_epoch(const struct core *c);
uint64_t core_last_index(const struct core *c);
uint64_t core_commit_index(const struct core *c);
const char *core_primary(const struct core *c); /* "" when unknown */
const char *core_id(const struct core *c);
const char *core_cluster_id(const struct core *c); /* "" until the first configuration */
/* Entries lo.. (at most hi; at least one, then as many as fit in
 * max_bytes), from memory or storage; lent until the next call or input.
 * 0, -ERANGE outside the log, or storage's error. */
int core_read_entries(struct core *c, uint64_t lo, uint64_t hi, size_t max_bytes,
                      const struct core_entry **out, size_t *n);
/* Entries es[0..n) copied whole (array, client ids, primaries, data) into
 * one allocation that free() releases; NULL when out of memory. For what
 * must outlive a lent entry. */
struct core_entry *core_entries_copy(const struct core_entry *es, size_t n);
/* The entry at index, from memory or storage; lent until the next call or
 * input. NULL outside the log or when storage cannot read it. */
const struct core_entry *core_entry_at(struct core *c, uint64_t index);
/* The last index this replica's storage has confirmed durable. */
uint64_t core_durable_index(const struct core *c);

#endif
