/*
 * replica/core/core.h — the replication protocol, with no I/O at all.
 *
 * The core owns the in-memory log and the protocol state of one replica:
 * epochs and votes, pre-vote, heartbeats, check-quorum, commit on a majority,
 * catch-up by backtracking, client-id deduplication and membership (bootstrap
 * configuration, learners promoted once caught up). It is a Raft variant
 * (Ongaro, "Consensus: Bridging Theory and Practice", 2014) in the vocabulary of
 * the project: epoch = term, primary = leader, backup = follower.
 *
 * Everything outside is injected: the caller passes the current time to every
 * call, and the core acts through `struct core_io` (send, persist, reply,
 * publish an event, draw a random number). That keeps it deterministic, so the
 * simulator in tests/sim drives many cores with one fake clock.
 *
 * THE DURABILITY CONTRACT (what every io implementation must honour):
 *   whatever the core hands to send() or reply() after a persist_state() or
 *   persist_entries() call must not leave the process before that persistence
 *   is durable. The libuv adapter buffers all output of one loop iteration,
 *   fsyncs once (group commit) and only then writes to sockets. Because of
 *   this rule the primary may count its own log as durable as soon as it
 *   appends: nobody can observe the append before the fsync.
 */
#ifndef REPLICA_CORE_H
#define REPLICA_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

#define CORE_ID_MAX        LIMIT_ID_BYTES /* replica ids, including the NUL */
#define CORE_CLIENT_ID_MAX LIMIT_CLIENT_ID_BYTES
#define CORE_MAX_MEMBERS   LIMIT_MEMBERS

enum core_role {
    CORE_BACKUP,    /* a voter following a primary (or waiting for one) */
    CORE_CANDIDATE, /* running a pre-vote or a vote */
    CORE_PRIMARY,   /* takes requests for its epoch */
    CORE_LEARNER,   /* receives the log but does not vote yet */
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

enum core_msg_type {
    CORE_MSG_VOTE_REQUEST,
    CORE_MSG_VOTE_RESPONSE,
    CORE_MSG_APPEND,
    CORE_MSG_APPEND_RESPONSE,
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
            size_t n_entries;
            const struct core_entry *entries;
        } append;
        struct {
            bool success;
            uint64_t match_index;
            uint64_t hint_index;
        } append_response;
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

enum core_reply_status {
    CORE_REPLY_OK,          /* committed at index/epoch */
    CORE_REPLY_NOT_PRIMARY, /* primary holds the id of who is, or "" */
    CORE_REPLY_UNKNOWN,     /* lost primacy before commit: retry, same id */
    CORE_REPLY_REJECTED,    /* the request itself is invalid */
    CORE_REPLY_CONFLICT,    /* the client id is taken by other data, at index */
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
    const char *type;    /* elected, stepped_down, election_started, joined,
                            caught_up, committed, primary_lost */
    const char *subject; /* the replica it is about */
    uint64_t epoch;
    uint64_t index;
    const char *detail;
};

struct core_io {
    void *data;
    void (*send)(struct core_io *io, const char *to, const struct core_msg *m);
    void (*persist_state)(struct core_io *io, const struct core_hard_state *hs);
    /* Drop entries >= truncate_from (0: none), then append n entries. */
    void (*persist_entries)(struct core_io *io, uint64_t truncate_from,
                            const struct core_entry *entries, size_t n);
    void (*reply)(struct core_io *io, uint64_t token, const struct core_reply *r);
    void (*event)(struct core_io *io, const struct core_event *ev);
    uint64_t (*random)(struct core_io *io);
    /* Optional: wall-clock ms stamped on entries for display. NULL: 0. */
    int64_t (*wall_clock)(struct core_io *io);
};

struct core_options {
    const char *id;
    unsigned heartbeat_ms;    /* default 50 */
    unsigned election_min_ms; /* default 300 */
    unsigned election_max_ms; /* default 600, exclusive */
    unsigned initial_size;    /* bootstrap configuration size, default 3 */
    size_t max_append_bytes;  /* payload per Append message, default 1 MiB */
    size_t max_request_bytes; /* a client request's data, default 1 MiB */
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
};

struct core;

/* Create a core from what the durable log recovered (entries in index order,
 * starting at 1). Returns NULL on allocation failure or invalid options. */
struct core *core_new(const struct core_options *o, struct core_io *io,
                      const struct core_hard_state *hs, const struct core_entry *entries,
                      size_t n_entries, int64_t now);
/* Answers every pending client request UNKNOWN (through io->reply) first. */
void core_free(struct core *c);
/* Before a clean shutdown: answer pending client requests UNKNOWN so their
 * clients retry elsewhere right away. */
void core_stop(struct core *c);

/* Inputs. `now` is milliseconds on a monotonic clock. */
void core_tick(struct core *c, int64_t now);
void core_recv(struct core *c, int64_t now, const struct core_msg *m);
void core_client_request(struct core *c, int64_t now, uint64_t token, const char *client_id,
                         const uint8_t *data, size_t len);
/* A replica identified itself on a connection (discovery found it). */
void core_peer_up(struct core *c, int64_t now, const char *id);
/* The connection to a replica closed and reconnecting was refused: its
 * process is gone. Lets backups elect at once instead of waiting out the
 * election timeout; votes still decide. */
void core_peer_down(struct core *c, int64_t now, const char *id);
/* Send whatever replication the inputs since the last flush made necessary,
 * one Append per peer. Call once per batch of inputs (the adapter: once per
 * loop iteration), which is what batches requests into one message. */
void core_flush(struct core *c, int64_t now);

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
/* Entry at index (1..last_index), or NULL. Valid until the next input. */
const struct core_entry *core_entry_at(const struct core *c, uint64_t index);
const char *core_role_name(enum core_role r);

/* Configuration entries' payload: one member per line, "v <id>" for a voter,
 * "l <id>" for a learner. */
struct core_member {
    char id[CORE_ID_MAX];
    bool voter;
};
size_t core_config_encode(const struct core_member *m, unsigned n, char *buf, size_t cap);
int core_config_decode(const uint8_t *data, size_t len, struct core_member *m, unsigned *n);

#endif
