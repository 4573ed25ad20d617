/*
 * replica/core/core.c — the replication protocol (see core.h).
 *
 * Sections: the log, membership, peers, roles and elections, replication,
 * commit, client requests, inputs, status. Section 3 of Ongaro's dissertation
 * is the reference for elections and replication, 4 for membership changes
 * (one server at a time, effective when appended), 9.6 for pre-vote and
 * check-quorum.
 */
#include "core.h"
#include "idmap.h"
#include "validate.h"

#include <stdio.h> /* snprintf only */
#include <stdlib.h>
#include <string.h>

struct peer {
    char id[CORE_ID_MAX];
    bool up;            /* connected, per core_peer_up / core_peer_down */
    int64_t last_heard; /* any message from it; -1 never */
    /* Primary's replication state for this peer. */
    uint64_t next_index; /* next entry to send */
    uint64_t match_index;
    int64_t last_ack;  /* last response in our epoch (check-quorum) */
    unsigned inflight; /* Appends with entries not yet answered */
    bool need_send;    /* send an Append at the next flush even if empty */
    /* Candidate's tally. */
    bool granted;
};

struct pending_reply {
    uint64_t token;
    uint64_t index;
};

struct core {
    struct core_options o;
    char id[CORE_ID_MAX];
    struct core_io *io;
    struct core_hard_state hs;

    enum core_role role; /* PRIMARY, CANDIDATE or BACKUP; learner is derived */
    bool pre_vote;       /* candidate: still in the pre-vote phase */
    bool self_granted;
    char primary[CORE_ID_MAX];
    bool primary_down;            /* the adapter saw its process go away */
    int64_t primary_lost_at;      /* when it did; 0 once a primary is heard again */
    int64_t last_primary_contact; /* -1 never */
    int64_t election_deadline;
    int64_t heartbeat_deadline;
    int64_t primary_since;
    uint64_t epoch_start_index; /* primary: first entry of its epoch */

    /* log[i] holds index i + 1. Each entry's client_id, primary and data
     * live in one allocation that starts at client_id. */
    struct core_entry *log;
    size_t n_log;
    size_t cap_log;
    uint64_t commit;

    struct core_member cfg[CORE_MAX_MEMBERS]; /* latest CONFIG in the log */
    unsigned n_cfg;
    uint64_t cfg_index; /* 0: no CONFIG entry yet, still bootstrapping */

    struct peer peers[CORE_MAX_MEMBERS]; /* every replica seen, minus self */
    unsigned n_peers;

    struct idmap client_ids; /* client id -> index of its DATA entry */
    struct pending_reply *pending;
    size_t n_pending;
    size_t cap_pending;

    uint64_t processed;
    uint64_t synced;
};

static void event(struct core *c, const char *type, const char *subject, uint64_t index,
                  const char *detail)
{
    struct core_event ev = {type, subject ? subject : "", c->hs.epoch, index, detail ? detail : ""};
    c->io->event(c->io, &ev);
}

static uint64_t rnd(struct core *c, uint64_t bound)
{
    return bound ? c->io->random(c->io) % bound : 0;
}

/* ========================================================================
 * The log
 * ====================================================================== */

static uint64_t last_index(const struct core *c)
{
    return c->n_log;
}

static uint64_t epoch_at(const struct core *c, uint64_t index)
{
    return index == 0 || index > c->n_log ? 0 : c->log[index - 1].epoch;
}

static uint64_t last_epoch(const struct core *c)
{
    return epoch_at(c, last_index(c));
}

/* Copy e into the log at its end; the index must be last_index + 1. */
static int log_push(struct core *c, const struct core_entry *e)
{
    if (c->n_log == c->cap_log) {
        size_t cap = c->cap_log ? c->cap_log * 2 : 256;
        struct core_entry *log = realloc(c->log, cap * sizeof(*log));
        if (log == NULL) {
            return -1;
        }
        c->log = log;
        c->cap_log = cap;
    }
    const char *cid = e->client_id ? e->client_id : "";
    const char *prim = e->primary ? e->primary : "";
    size_t lc = strlen(cid) + 1, lp = strlen(prim) + 1;
    char *blob = malloc(lc + lp + e->len + 1);
    if (blob == NULL) {
        return -1;
    }
    memcpy(blob, cid, lc);
    memcpy(blob + lc, prim, lp);
    if (e->len) {
        memcpy(blob + lc + lp, e->data, e->len);
    }
    struct core_entry *s = &c->log[c->n_log];
    *s = *e;
    s->index = c->n_log + 1;
    s->client_id = blob;
    s->primary = blob + lc;
    s->data = (const uint8_t *)(blob + lc + lp);
    if (e->type == CORE_ENTRY_DATA && cid[0] != '\0' &&
        idmap_put(&c->client_ids, cid, s->index) != 0) {
        free(blob);
        return -1;
    }
    c->n_log++;
    return 0;
}

static void load_config(struct core *c);

/* Drop entries >= from. Never called at or below the commit index. */
static void log_truncate(struct core *c, uint64_t from)
{
    bool config_lost = false;
    while (c->n_log >= from && c->n_log > 0) {
        struct core_entry *s = &c->log[c->n_log - 1];
        if (s->type == CORE_ENTRY_DATA && s->client_id[0] != '\0' &&
            idmap_get(&c->client_ids, s->client_id) == s->index) {
            idmap_del(&c->client_ids, s->client_id);
        }
        if (s->type == CORE_ENTRY_CONFIG) {
            config_lost = true;
        }
        free((void *)s->client_id);
        c->n_log--;
    }
    if (config_lost) {
        load_config(c);
    }
}

/* ========================================================================
 * Membership
 * ====================================================================== */

static void bootstrap_list(struct core *c);

/* The configuration is the latest CONFIG entry in the log, committed or not
 * (dissertation 4.1). Before the first one, the bootstrap list stands in. */
static void load_config(struct core *c)
{
    c->n_cfg = 0;
    c->cfg_index = 0;
    for (uint64_t i = last_index(c); i >= 1; i--) {
        const struct core_entry *e = &c->log[i - 1];
        if (e->type == CORE_ENTRY_CONFIG &&
            core_config_decode(e->data, e->len, c->cfg, &c->n_cfg) == 0) {
            c->cfg_index = i;
            return;
        }
    }
    bootstrap_list(c);
}

static struct core_member *member(struct core *c, const char *id)
{
    for (unsigned i = 0; i < c->n_cfg; i++) {
        if (strcmp(c->cfg[i].id, id) == 0) {
            return &c->cfg[i];
        }
    }
    return NULL;
}

static bool is_voter(struct core *c, const char *id)
{
    const struct core_member *m = member(c, id);
    return m != NULL && m->voter;
}

static unsigned n_voters(const struct core *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->n_cfg; i++) {
        n += c->cfg[i].voter;
    }
    return n;
}

static bool can_campaign(struct core *c)
{
    return c->n_cfg > 0 && is_voter(c, c->id);
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* BOOTSTRAP. Before the log holds a configuration, the initial one is the
 * initial_size lowest ids this replica knows of (its "view"). The list stays
 * fluid while discovery fills the view, so replicas that start together
 * converge on the same list. It becomes fixed, persisted with the vote, the
 * moment the replica casts a real bootstrap vote or runs a real bootstrap
 * candidacy: from then on it supports no other list.
 *
 * A bootstrap candidate needs the vote of every member of its list AND of a
 * majority of every replica it knows. Each voter is fixed to one list, so two
 * lists can only both win with disjoint majorities of overlapping views:
 * impossible unless discovery itself is partitioned. */
static void bootstrap_list(struct core *c)
{
    c->n_cfg = 0;
    if (c->hs.n_bootstrap > 0) {
        for (unsigned i = 0; i < c->hs.n_bootstrap; i++) {
            memcpy(c->cfg[i].id, c->hs.bootstrap[i], CORE_ID_MAX);
            c->cfg[i].voter = true;
        }
        c->n_cfg = c->hs.n_bootstrap;
        return;
    }
    if (last_index(c) != 0 || c->n_peers + 1 < c->o.initial_size) {
        return;
    }
    char ids[CORE_MAX_MEMBERS + 1][CORE_ID_MAX];
    unsigned n = 0;
    memcpy(ids[n++], c->id, CORE_ID_MAX);
    for (unsigned i = 0; i < c->n_peers; i++) {
        memcpy(ids[n++], c->peers[i].id, CORE_ID_MAX);
    }
    qsort(ids, n, CORE_ID_MAX, cmp_ids);
    bool self = false;
    for (unsigned i = 0; i < c->o.initial_size; i++) {
        memcpy(c->cfg[i].id, ids[i], CORE_ID_MAX);
        c->cfg[i].voter = true;
        self |= strcmp(ids[i], c->id) == 0;
    }
    c->n_cfg = c->o.initial_size;
    if (!self && c->role == CORE_CANDIDATE) {
        c->role = CORE_BACKUP; /* a pre-vote for a list we are no longer in */
        c->pre_vote = false;
    }
}

/* Fix the fluid list before a vote or candidacy relies on it; the caller's
 * persist_state makes it durable together with that vote. */
static void bootstrap_fix(struct core *c)
{
    if (c->cfg_index != 0 || c->hs.n_bootstrap != 0) {
        return;
    }
    for (unsigned i = 0; i < c->n_cfg; i++) {
        memcpy(c->hs.bootstrap[i], c->cfg[i].id, CORE_ID_MAX);
    }
    c->hs.n_bootstrap = c->n_cfg;
}

static bool bootstrap_matches(const struct core *c, const struct core_msg *m)
{
    if (c->n_cfg == 0 || m->vote_request.n_bootstrap != c->n_cfg) {
        return false;
    }
    for (unsigned i = 0; i < c->n_cfg; i++) {
        if (strcmp(m->vote_request.bootstrap[i], c->cfg[i].id) != 0) {
            return false;
        }
    }
    return true;
}

/* ========================================================================
 * Peers
 * ====================================================================== */

static struct peer *peer_find(struct core *c, const char *id)
{
    for (unsigned i = 0; i < c->n_peers; i++) {
        if (strcmp(c->peers[i].id, id) == 0) {
            return &c->peers[i];
        }
    }
    return NULL;
}

static struct peer *peer_get(struct core *c, const char *id)
{
    struct peer *p = peer_find(c, id);
    if (p != NULL || strcmp(id, c->id) == 0 || c->n_peers == CORE_MAX_MEMBERS ||
        strlen(id) >= CORE_ID_MAX || id[0] == '\0') {
        return p;
    }
    p = &c->peers[c->n_peers++];
    memset(p, 0, sizeof(*p));
    strcpy(p->id, id);
    p->last_heard = -1;
    p->next_index = last_index(c) + 1;
    if (c->cfg_index == 0) {
        bootstrap_list(c); /* the view grew */
    }
    return p;
}

/* ========================================================================
 * Roles and elections
 * ====================================================================== */

static void reset_election_timer(struct core *c, int64_t now)
{
    unsigned span = c->o.election_max_ms - c->o.election_min_ms;
    c->election_deadline = now + c->o.election_min_ms + (int64_t)rnd(c, span);
}

static void fail_pending(struct core *c, enum core_reply_status st)
{
    for (size_t i = 0; i < c->n_pending; i++) {
        struct core_reply r = {st, 0, c->hs.epoch, c->primary,
                               "primary changed before commit; retry with the same id"};
        c->io->reply(c->io, c->pending[i].token, &r);
    }
    c->n_pending = 0;
}

static void persist_epoch(struct core *c, uint64_t epoch, const char *voted_for)
{
    c->hs.epoch = epoch;
    snprintf(c->hs.voted_for, sizeof(c->hs.voted_for), "%s", voted_for);
    c->io->persist_state(c->io, &c->hs);
}

/* Follow `primary` ("" when unknown) in `epoch` (>= ours). */
static void become_backup(struct core *c, int64_t now, uint64_t epoch, const char *primary)
{
    bool was_primary = c->role == CORE_PRIMARY;
    if (epoch > c->hs.epoch) {
        persist_epoch(c, epoch, "");
    }
    c->role = CORE_BACKUP;
    c->pre_vote = false;
    if (strcmp(c->primary, primary) != 0) {
        snprintf(c->primary, sizeof(c->primary), "%s", primary);
        c->primary_down = false;
    }
    if (was_primary) {
        fail_pending(c, CORE_REPLY_UNKNOWN);
        event(c, "stepped_down", c->id, last_index(c), "a newer epoch exists");
    }
    reset_election_timer(c, now);
}

static void send_vote_requests(struct core *c)
{
    const char *boot[CORE_MAX_MEMBERS];
    for (unsigned i = 0; i < c->n_cfg; i++) {
        boot[i] = c->cfg[i].id;
    }
    struct core_msg m = {.type = CORE_MSG_VOTE_REQUEST};
    m.epoch = c->pre_vote ? c->hs.epoch + 1 : c->hs.epoch;
    m.vote_request.last_index = last_index(c);
    m.vote_request.last_epoch = last_epoch(c);
    m.vote_request.pre_vote = c->pre_vote;
    if (c->cfg_index == 0) {
        /* Bootstrap: every replica we know votes (see bootstrap_list). */
        m.vote_request.n_bootstrap = c->n_cfg;
        m.vote_request.bootstrap = boot;
        for (unsigned i = 0; i < c->n_peers; i++) {
            c->io->send(c->io, c->peers[i].id, &m);
        }
        return;
    }
    for (unsigned i = 0; i < c->n_cfg; i++) {
        if (c->cfg[i].voter && strcmp(c->cfg[i].id, c->id) != 0) {
            c->io->send(c->io, c->cfg[i].id, &m);
        }
    }
}

static unsigned tally(struct core *c)
{
    unsigned n = c->self_granted;
    for (unsigned i = 0; i < c->n_peers; i++) {
        n += c->peers[i].granted && is_voter(c, c->peers[i].id);
    }
    return n;
}

/* Enough votes? Normally a majority of the voters; while bootstrapping,
 * every member of the list and a majority of the whole view. */
static bool won(struct core *c)
{
    if (c->cfg_index != 0) {
        return tally(c) >= n_voters(c) / 2 + 1;
    }
    unsigned all = c->self_granted;
    for (unsigned i = 0; i < c->n_peers; i++) {
        all += c->peers[i].granted;
    }
    return c->n_cfg > 0 && tally(c) == n_voters(c) && all >= (c->n_peers + 1) / 2 + 1;
}

static void become_primary(struct core *c, int64_t now);
static void primary_update_commit(struct core *c);

static void check_won(struct core *c, int64_t now);

static void start_round(struct core *c, int64_t now, bool pre_vote)
{
    c->role = CORE_CANDIDATE;
    c->pre_vote = pre_vote;
    for (unsigned i = 0; i < c->n_peers; i++) {
        c->peers[i].granted = false;
    }
    c->self_granted = true;
    if (!pre_vote) {
        bootstrap_fix(c);
        /* Durable before the requests leave (the io contract orders it). */
        persist_epoch(c, c->hs.epoch + 1, c->id);
        c->primary[0] = '\0';
        event(c, "election_started", c->id, last_index(c), NULL);
    }
    if (c->primary_lost_at != 0 && now - c->primary_lost_at < 4 * (int64_t)c->o.election_max_ms) {
        /* The primary's process is known gone, so nobody is waiting out a
         * lease: if this round splits the vote, retry within a few
         * heartbeats rather than a whole election timeout. */
        c->election_deadline = now + c->o.heartbeat_ms + (int64_t)rnd(c, 3 * c->o.heartbeat_ms);
    } else {
        reset_election_timer(c, now);
    }
    send_vote_requests(c);
    check_won(c, now);
}

static void check_won(struct core *c, int64_t now)
{
    if (c->role != CORE_CANDIDATE || !won(c)) {
        return;
    }
    if (c->pre_vote) {
        start_round(c, now, false);
    } else {
        become_primary(c, now);
    }
}

/* Is the candidate's log at least as up to date as ours? (3.6.1) */
static bool log_ok(const struct core *c, uint64_t cand_last_epoch, uint64_t cand_last_index)
{
    uint64_t le = last_epoch(c);
    return cand_last_epoch > le || (cand_last_epoch == le && cand_last_index >= last_index(c));
}

/* Whether a live primary holds us: then votes are refused without even
 * looking at the epoch, so a replica that was partitioned cannot depose a
 * healthy primary (dissertation 4.2.3, 9.6). */
static bool primary_lease(struct core *c, int64_t now)
{
    if (c->role == CORE_PRIMARY) {
        return true; /* check-quorum steps us down when the lease is gone */
    }
    return c->primary[0] != '\0' && !c->primary_down && c->last_primary_contact >= 0 &&
           now - c->last_primary_contact < (int64_t)c->o.election_min_ms;
}

static void recv_vote_request(struct core *c, int64_t now, const struct core_msg *m)
{
    const char *from = m->from;
    bool pre = m->vote_request.pre_vote;
    bool grant = false;
    uint64_t reply_epoch = c->hs.epoch;

    bool boot_ok = c->cfg_index != 0 || m->vote_request.last_index != 0 || bootstrap_matches(c, m);
    bool up_to_date = log_ok(c, m->vote_request.last_epoch, m->vote_request.last_index);

    if (primary_lease(c, now) && strcmp(c->primary, from) != 0) {
        grant = false;
    } else if (pre) {
        /* A pre-vote changes nothing here: it only asks "would you?". */
        grant = m->epoch > c->hs.epoch && up_to_date && boot_ok;
        if (grant) {
            reply_epoch = m->epoch;
        }
    } else {
        if (m->epoch > c->hs.epoch) {
            become_backup(c, now, m->epoch, "");
        }
        reply_epoch = c->hs.epoch;
        if (m->epoch == c->hs.epoch && up_to_date && boot_ok &&
            (c->hs.voted_for[0] == '\0' || strcmp(c->hs.voted_for, from) == 0)) {
            if (c->hs.voted_for[0] == '\0') {
                if (m->vote_request.last_index == 0) {
                    bootstrap_fix(c);
                }
                persist_epoch(c, c->hs.epoch, from);
            }
            grant = true;
            reset_election_timer(c, now);
        }
    }
    struct core_msg r = {.type = CORE_MSG_VOTE_RESPONSE, .epoch = reply_epoch};
    r.vote_response.granted = grant;
    r.vote_response.pre_vote = pre;
    c->io->send(c->io, from, &r);
}

static void recv_vote_response(struct core *c, int64_t now, const struct core_msg *m)
{
    if (m->epoch > c->hs.epoch && !(m->vote_response.pre_vote && m->vote_response.granted)) {
        become_backup(c, now, m->epoch, "");
        return;
    }
    if (c->role != CORE_CANDIDATE || m->vote_response.pre_vote != c->pre_vote) {
        return;
    }
    uint64_t round_epoch = c->pre_vote ? c->hs.epoch + 1 : c->hs.epoch;
    if (m->epoch != round_epoch || !m->vote_response.granted) {
        return;
    }
    struct peer *p = peer_get(c, m->from);
    if (p != NULL) {
        p->granted = true;
        check_won(c, now);
    }
}

/* ========================================================================
 * Replication (primary side)
 * ====================================================================== */

static void append_local(struct core *c, enum core_entry_type type, const char *client_id,
                         const uint8_t *data, size_t len)
{
    struct core_entry e = {
        .index = last_index(c) + 1,
        .epoch = c->hs.epoch,
        .type = type,
        .time_ms = c->io->wall_clock ? c->io->wall_clock(c->io) : 0,
        .client_id = client_id,
        .primary = c->id,
        .data = data,
        .len = len,
    };
    if (log_push(c, &e) != 0) {
        return; /* out of memory: the request times out and is retried */
    }
    c->io->persist_entries(c->io, 0, &c->log[c->n_log - 1], 1);
    if (type == CORE_ENTRY_CONFIG) {
        load_config(c);
    }
}

static void append_config(struct core *c)
{
    char buf[CORE_MAX_MEMBERS * (CORE_ID_MAX + 3) + 1];
    size_t n = core_config_encode(c->cfg, c->n_cfg, buf, sizeof(buf));
    append_local(c, CORE_ENTRY_CONFIG, "", (const uint8_t *)buf, n);
}

static bool is_member(struct core *c, const char *id)
{
    return member(c, id) != NULL;
}

static void send_append(struct core *c, struct peer *p, bool with_entries)
{
    if (p->next_index > last_index(c) + 1) {
        p->next_index = last_index(c) + 1;
    }
    uint64_t prev = p->next_index - 1;
    size_t n = 0, bytes = 0;
    if (with_entries && p->inflight < 8) {
        while (prev + n < last_index(c) && (n == 0 || bytes < c->o.max_append_bytes)) {
            bytes += c->log[prev + n].len + 64;
            n++;
        }
    }
    struct core_msg m = {.type = CORE_MSG_APPEND, .epoch = c->hs.epoch};
    m.append.prev_index = prev;
    m.append.prev_epoch = epoch_at(c, prev);
    m.append.commit_index = c->commit;
    m.append.n_entries = n;
    m.append.entries = n ? &c->log[prev] : NULL;
    c->io->send(c->io, p->id, &m);
    if (n > 0) {
        p->next_index += n;
        p->inflight++;
    }
    p->need_send = false;
}

static void broadcast_heartbeat(struct core *c, int64_t now)
{
    for (unsigned i = 0; i < c->n_peers; i++) {
        if (is_member(c, c->peers[i].id)) {
            send_append(c, &c->peers[i], true);
        }
    }
    c->heartbeat_deadline = now + c->o.heartbeat_ms;
}

static void become_primary(struct core *c, int64_t now)
{
    c->role = CORE_PRIMARY;
    c->pre_vote = false;
    snprintf(c->primary, sizeof(c->primary), "%s", c->id);
    c->primary_down = false;
    c->primary_lost_at = 0;
    c->primary_since = now;
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct peer *p = &c->peers[i];
        p->next_index = last_index(c) + 1;
        p->match_index = 0;
        p->inflight = 0;
        p->last_ack = now; /* grace: check-quorum counts from here */
    }
    c->epoch_start_index = last_index(c) + 1;
    if (c->cfg_index == 0) {
        /* The first primary writes the initial configuration as entry 1; it
         * also commits its epoch, as a no-op would. */
        append_config(c);
    } else {
        append_local(c, CORE_ENTRY_NOOP, "", NULL, 0);
    }
    event(c, "elected", c->id, last_index(c), NULL);
    broadcast_heartbeat(c, now);
    primary_update_commit(c); /* the only voter commits on its own */
}

/* ========================================================================
 * Commit
 * ====================================================================== */

static void advance_commit(struct core *c, uint64_t to)
{
    if (to > last_index(c)) {
        to = last_index(c);
    }
    if (to <= c->commit) {
        return;
    }
    for (uint64_t i = c->commit + 1; i <= to; i++) {
        const struct core_entry *e = &c->log[i - 1];
        if (e->type == CORE_ENTRY_DATA) {
            if (strcmp(e->primary, c->id) == 0) {
                c->processed++;
            } else {
                c->synced++;
            }
        }
    }
    c->commit = to;
    if (c->role != CORE_PRIMARY) {
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < c->n_pending; i++) {
        struct pending_reply *pr = &c->pending[i];
        if (pr->index <= c->commit) {
            const struct core_entry *e = &c->log[pr->index - 1];
            struct core_reply r = {CORE_REPLY_OK, pr->index, e->epoch, e->primary, NULL};
            c->io->reply(c->io, pr->token, &r);
        } else {
            c->pending[kept++] = *pr;
        }
    }
    c->n_pending = kept;
    event(c, "committed", c->id, c->commit, NULL);
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The highest index a majority of voters hold; committed only if it is of
 * our own epoch (3.6.2: older entries commit indirectly). */
static void primary_update_commit(struct core *c)
{
    uint64_t matches[CORE_MAX_MEMBERS];
    unsigned n = 0;
    for (unsigned i = 0; i < c->n_cfg; i++) {
        if (!c->cfg[i].voter) {
            continue;
        }
        if (strcmp(c->cfg[i].id, c->id) == 0) {
            matches[n++] = last_index(c);
        } else {
            struct peer *p = peer_find(c, c->cfg[i].id);
            matches[n++] = p ? p->match_index : 0;
        }
    }
    if (n == 0) {
        return;
    }
    qsort(matches, n, sizeof(matches[0]), cmp_u64_desc);
    uint64_t majority = matches[n / 2];
    if (majority > c->commit && epoch_at(c, majority) == c->hs.epoch) {
        advance_commit(c, majority);
    }
}

/* One membership change at a time, only once our epoch and the previous
 * change are committed (dissertation 4.1 and its 2015 erratum). */
static void maybe_change_config(struct core *c, int64_t now)
{
    if (c->role != CORE_PRIMARY || c->cfg_index > c->commit || c->commit < c->epoch_start_index) {
        return;
    }
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct peer *p = &c->peers[i];
        if (p->up && !is_member(c, p->id) && c->n_cfg < CORE_MAX_MEMBERS) {
            struct core_member *m = &c->cfg[c->n_cfg++];
            memcpy(m->id, p->id, CORE_ID_MAX);
            m->voter = false;
            p->next_index = last_index(c) + 1;
            p->match_index = 0;
            p->last_ack = now;
            append_config(c);
            event(c, "joined", p->id, last_index(c), "added as learner");
            return;
        }
    }
    for (unsigned i = 0; i < c->n_cfg; i++) {
        struct core_member *m = &c->cfg[i];
        struct peer *p = peer_find(c, m->id);
        if (!m->voter && p != NULL && p->up && p->match_index >= c->commit) {
            m->voter = true;
            p->last_ack = now;
            append_config(c);
            event(c, "caught_up", m->id, last_index(c), "promoted to voter");
            return;
        }
    }
}

/* ========================================================================
 * Replication (backup side)
 * ====================================================================== */

static void recv_append(struct core *c, int64_t now, const struct core_msg *m)
{
    struct core_msg r = {.type = CORE_MSG_APPEND_RESPONSE, .epoch = c->hs.epoch};
    if (m->epoch < c->hs.epoch) {
        c->io->send(c->io, m->from, &r); /* tells a stale primary to step down */
        return;
    }
    if (m->epoch > c->hs.epoch || c->role != CORE_BACKUP || strcmp(c->primary, m->from) != 0) {
        if (c->role == CORE_PRIMARY && m->epoch == c->hs.epoch) {
            return; /* two primaries in one epoch cannot happen; ignore */
        }
        become_backup(c, now, m->epoch, m->from);
        r.epoch = c->hs.epoch;
    }
    c->last_primary_contact = now;
    c->primary_down = false;
    c->primary_lost_at = 0;
    reset_election_timer(c, now);

    uint64_t prev = m->append.prev_index;
    if (prev > last_index(c)) {
        r.append_response.hint_index = last_index(c) + 1;
        c->io->send(c->io, m->from, &r);
        return;
    }
    if (prev > 0 && epoch_at(c, prev) != m->append.prev_epoch) {
        /* Skip back over the whole conflicting epoch at once (3.5). */
        uint64_t bad = epoch_at(c, prev), hint = prev;
        while (hint > c->commit + 1 && epoch_at(c, hint - 1) == bad) {
            hint--;
        }
        r.append_response.hint_index = hint;
        c->io->send(c->io, m->from, &r);
        return;
    }
    size_t i = 0;
    const struct core_entry *es = m->append.entries;
    /* Entries we already hold are skipped: a duplicate or late Append must
     * not truncate anything it does not conflict with. */
    while (i < m->append.n_entries && prev + i + 1 <= last_index(c) &&
           epoch_at(c, prev + i + 1) == es[i].epoch) {
        i++;
    }
    if (i < m->append.n_entries) {
        uint64_t from = prev + i + 1;
        uint64_t truncate_from = 0;
        if (from <= last_index(c)) {
            if (from <= c->commit) {
                return; /* would rewrite a committed entry: refuse, stay safe */
            }
            log_truncate(c, from);
            truncate_from = from;
        }
        size_t first = c->n_log;
        bool config = false;
        for (; i < m->append.n_entries; i++) {
            if (log_push(c, &es[i]) != 0) {
                break;
            }
            config |= es[i].type == CORE_ENTRY_CONFIG;
        }
        if (c->n_log > first || truncate_from) {
            c->io->persist_entries(c->io, truncate_from, &c->log[first], c->n_log - first);
        }
        if (config) {
            load_config(c);
        }
    }
    uint64_t matched = prev + m->append.n_entries;
    if (matched > last_index(c)) {
        matched = last_index(c);
    }
    uint64_t commit = m->append.commit_index < matched ? m->append.commit_index : matched;
    advance_commit(c, commit);
    r.append_response.success = true;
    r.append_response.match_index = matched;
    c->io->send(c->io, m->from, &r);
}

static void recv_append_response(struct core *c, int64_t now, const struct core_msg *m)
{
    if (m->epoch > c->hs.epoch) {
        become_backup(c, now, m->epoch, "");
        return;
    }
    if (c->role != CORE_PRIMARY || m->epoch != c->hs.epoch) {
        return;
    }
    struct peer *p = peer_get(c, m->from);
    if (p == NULL) {
        return;
    }
    p->last_ack = now;
    if (m->append_response.success) {
        if (m->append_response.match_index > p->match_index) {
            /* Progress answers one Append with entries (a heartbeat's
             * answer makes none), which frees a slot in the pipeline. */
            if (p->inflight > 0) {
                p->inflight--;
            }
            p->match_index = m->append_response.match_index;
            primary_update_commit(c);
            maybe_change_config(c, now);
        }
        if (p->next_index <= p->match_index) {
            p->next_index = p->match_index + 1;
        }
    } else {
        uint64_t hint = m->append_response.hint_index;
        if (hint <= p->match_index) {
            /* Its log is shorter than it once acknowledged: the replica
             * lost its data dir and came back empty under the same id.
             * Believe it and resend from where it is. */
            p->match_index = hint > 0 ? hint - 1 : 0;
        }
        if (hint < p->next_index) {
            p->next_index = hint;
            p->inflight = 0;
        }
        p->need_send = true;
    }
}

/* ========================================================================
 * Client requests
 * ====================================================================== */

static void reply_now(struct core *c, uint64_t token, enum core_reply_status st, uint64_t index,
                      uint64_t epoch, const char *primary, const char *msg)
{
    struct core_reply r = {st, index, epoch, primary, msg};
    c->io->reply(c->io, token, &r);
}

static int add_pending(struct core *c, uint64_t token, uint64_t index)
{
    if (c->n_pending == c->cap_pending) {
        size_t cap = c->cap_pending ? c->cap_pending * 2 : 64;
        struct pending_reply *p = realloc(c->pending, cap * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        c->pending = p;
        c->cap_pending = cap;
    }
    c->pending[c->n_pending].token = token;
    c->pending[c->n_pending].index = index;
    c->n_pending++;
    return 0;
}

static bool quorum_fresh(struct core *c, int64_t now)
{
    int64_t window = c->o.election_min_ms;
    if (now - c->primary_since < window) {
        return true;
    }
    unsigned alive = 0;
    for (unsigned i = 0; i < c->n_cfg; i++) {
        if (!c->cfg[i].voter) {
            continue;
        }
        if (strcmp(c->cfg[i].id, c->id) == 0) {
            alive++;
            continue;
        }
        struct peer *p = peer_find(c, c->cfg[i].id);
        alive += p != NULL && now - p->last_ack < window;
    }
    return alive >= n_voters(c) / 2 + 1;
}

static void step_down_lost_quorum(struct core *c, int64_t now)
{
    c->role = CORE_BACKUP;
    c->primary[0] = '\0';
    fail_pending(c, CORE_REPLY_UNKNOWN);
    event(c, "stepped_down", c->id, last_index(c), "lost contact with a majority");
    reset_election_timer(c, now);
}

void core_client_request(struct core *c, int64_t now, uint64_t token, const char *client_id,
                         const uint8_t *data, size_t len)
{
    if (c->role == CORE_PRIMARY && !quorum_fresh(c, now)) {
        step_down_lost_quorum(c, now);
    }
    if (c->role != CORE_PRIMARY) {
        reply_now(c, token, CORE_REPLY_NOT_PRIMARY, 0, c->hs.epoch, c->primary, "not primary");
        return;
    }
    if (client_id == NULL || !validate_client_id(client_id, strlen(client_id))) {
        reply_now(c, token, CORE_REPLY_REJECTED, 0, c->hs.epoch, c->id,
                  "client id must be 1 to 127 bytes of UTF-8 without control characters");
        return;
    }
    if (len > c->o.max_request_bytes) {
        reply_now(c, token, CORE_REPLY_REJECTED, 0, c->hs.epoch, c->id, "request too large");
        return;
    }
    uint64_t index = idmap_get(&c->client_ids, client_id);
    if (index != 0) {
        /* A retry must carry what the id was first used for: answering
         * with the original index for other data would claim a write that
         * never happened. */
        const struct core_entry *e = &c->log[index - 1];
        if (e->len != len || (len > 0 && memcmp(e->data, data, len) != 0)) {
            char why[96];
            snprintf(why, sizeof(why), "client id already used for other data, at index %llu",
                     (unsigned long long)index);
            reply_now(c, token, CORE_REPLY_CONFLICT, index, e->epoch, e->primary, why);
            return;
        }
        if (index <= c->commit) {
            reply_now(c, token, CORE_REPLY_OK, index, e->epoch, e->primary, "duplicate");
            return;
        }
    }
    if (index == 0) {
        append_local(c, CORE_ENTRY_DATA, client_id, data, len);
        index = last_index(c);
        if (idmap_get(&c->client_ids, client_id) != index) {
            reply_now(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
            return;
        }
    }
    if (add_pending(c, token, index) != 0) {
        reply_now(c, token, CORE_REPLY_UNKNOWN, 0, c->hs.epoch, c->id, "out of memory");
        return;
    }
    primary_update_commit(c); /* a one-voter cluster commits at once */
}

/* ========================================================================
 * Inputs
 * ====================================================================== */

void core_recv(struct core *c, int64_t now, const struct core_msg *m)
{
    if (m->from == NULL || strcmp(m->from, c->id) == 0) {
        return;
    }
    struct peer *p = peer_get(c, m->from);
    if (p != NULL) {
        p->last_heard = now;
    }
    switch (m->type) {
    case CORE_MSG_VOTE_REQUEST:
        recv_vote_request(c, now, m);
        break;
    case CORE_MSG_VOTE_RESPONSE:
        recv_vote_response(c, now, m);
        break;
    case CORE_MSG_APPEND:
        recv_append(c, now, m);
        break;
    case CORE_MSG_APPEND_RESPONSE:
        recv_append_response(c, now, m);
        break;
    }
}

void core_tick(struct core *c, int64_t now)
{
    if (c->role == CORE_PRIMARY) {
        if (!quorum_fresh(c, now)) {
            step_down_lost_quorum(c, now);
            return;
        }
        maybe_change_config(c, now);
        if (now >= c->heartbeat_deadline) {
            broadcast_heartbeat(c, now);
        }
        return;
    }
    if (now < c->election_deadline) {
        return;
    }
    if (c->cfg_index == 0) {
        bootstrap_list(c); /* a one-replica cluster has no peer_up to wait for */
    }
    if (can_campaign(c)) {
        start_round(c, now, true);
    } else {
        c->role = CORE_BACKUP;
        reset_election_timer(c, now);
    }
}

void core_peer_up(struct core *c, int64_t now, const char *id)
{
    struct peer *p = peer_get(c, id);
    if (p == NULL) {
        return;
    }
    p->up = true;
    if (strcmp(id, c->primary) == 0) {
        c->primary_down = false;
    }
    if (c->role == CORE_PRIMARY) {
        /* A new connection may have lost whatever was in flight on the old. */
        p->next_index = p->match_index + 1;
        p->inflight = 0;
        p->need_send = true;
    }
    maybe_change_config(c, now);
}

void core_peer_down(struct core *c, int64_t now, const char *id)
{
    struct peer *p = peer_find(c, id);
    if (p == NULL) {
        return;
    }
    p->up = false;
    if (c->role == CORE_BACKUP && strcmp(id, c->primary) == 0 && !c->primary_down) {
        c->primary_down = true;
        c->primary_lost_at = now;
        event(c, "primary_lost", id, last_index(c), "connection closed and refused");
        if (can_campaign(c)) {
            /* Elect now rather than after the timeout; the small random
             * spread keeps backups from splitting the vote. */
            int64_t soon = now + (int64_t)rnd(c, 2 * c->o.heartbeat_ms);
            if (soon < c->election_deadline) {
                c->election_deadline = soon;
            }
        }
    }
}

void core_flush(struct core *c, int64_t now)
{
    if (c->role != CORE_PRIMARY) {
        return;
    }
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct peer *p = &c->peers[i];
        if (is_member(c, p->id) && (p->need_send || p->next_index <= last_index(c))) {
            if (p->need_send || p->inflight < 8) {
                send_append(c, p, true);
            }
        }
    }
}

int64_t core_next_deadline(const struct core *c)
{
    if (c->role == CORE_PRIMARY) {
        /* Check-quorum is re-evaluated at every heartbeat. */
        return c->heartbeat_deadline;
    }
    return c->election_deadline;
}

/* ========================================================================
 * Life cycle and status
 * ====================================================================== */

struct core *core_new(const struct core_options *o, struct core_io *io,
                      const struct core_hard_state *hs, const struct core_entry *entries,
                      size_t n_entries, int64_t now)
{
    if (o->id == NULL || o->id[0] == '\0' || strlen(o->id) >= CORE_ID_MAX || io == NULL) {
        return NULL;
    }
    struct core *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->o = *o;
    c->o.heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 50;
    c->o.election_min_ms = o->election_min_ms ? o->election_min_ms : 300;
    c->o.election_max_ms =
        o->election_max_ms > c->o.election_min_ms ? o->election_max_ms : c->o.election_min_ms * 2;
    c->o.initial_size = o->initial_size ? o->initial_size : 3;
    if (c->o.initial_size > CORE_MAX_MEMBERS) {
        c->o.initial_size = CORE_MAX_MEMBERS;
    }
    c->o.max_append_bytes = o->max_append_bytes ? o->max_append_bytes : 1 << 20;
    c->o.max_request_bytes = o->max_request_bytes ? o->max_request_bytes : 1 << 20;
    strcpy(c->id, o->id);
    c->o.id = c->id;
    c->io = io;
    if (hs != NULL) {
        c->hs = *hs;
    }
    idmap_init(&c->client_ids);
    for (size_t i = 0; i < n_entries; i++) {
        if (log_push(c, &entries[i]) != 0) {
            core_free(c);
            return NULL;
        }
    }
    load_config(c);
    c->role = CORE_BACKUP;
    c->last_primary_contact = -1;
    reset_election_timer(c, now);
    return c;
}

void core_stop(struct core *c)
{
    fail_pending(c, CORE_REPLY_UNKNOWN);
}

void core_free(struct core *c)
{
    if (c == NULL) {
        return;
    }
    fail_pending(c, CORE_REPLY_UNKNOWN);
    log_truncate(c, 1);
    free(c->log);
    free(c->pending);
    idmap_free(&c->client_ids);
    free(c);
}

enum core_role core_role(const struct core *c)
{
    if (c->role == CORE_BACKUP && !is_voter((struct core *)c, c->id)) {
        return CORE_LEARNER;
    }
    return c->role;
}

const char *core_role_name(enum core_role r)
{
    switch (r) {
    case CORE_PRIMARY:
        return "primary";
    case CORE_CANDIDATE:
        return "candidate";
    case CORE_LEARNER:
        return "learner";
    case CORE_BACKUP:
        break;
    }
    return "backup";
}

uint64_t core_epoch(const struct core *c)
{
    return c->hs.epoch;
}

uint64_t core_last_index(const struct core *c)
{
    return last_index(c);
}

uint64_t core_commit_index(const struct core *c)
{
    return c->commit;
}

const char *core_primary(const struct core *c)
{
    return c->primary;
}

const char *core_id(const struct core *c)
{
    return c->id;
}

const struct core_entry *core_entry_at(const struct core *c, uint64_t index)
{
    return index >= 1 && index <= c->n_log ? &c->log[index - 1] : NULL;
}

void core_get_status(const struct core *cc, int64_t now, struct core_status *out)
{
    struct core *c = (struct core *)cc;
    memset(out, 0, sizeof(*out));
    out->role = core_role(c);
    out->epoch = c->hs.epoch;
    memcpy(out->primary, c->primary, CORE_ID_MAX);
    memcpy(out->voted_for, c->hs.voted_for, CORE_ID_MAX);
    out->last_index = last_index(c);
    out->commit_index = c->commit;
    out->processed = c->processed;
    out->synced = c->synced;
    out->voter = is_voter(c, c->id);
    if (c->role == CORE_PRIMARY) {
        out->heartbeat_age_ms = 0;
    } else {
        out->heartbeat_age_ms = c->last_primary_contact < 0 ? -1 : now - c->last_primary_contact;
    }
    for (unsigned i = 0; i < c->n_peers; i++) {
        const struct peer *p = &c->peers[i];
        struct core_peer_status *ps = &out->peers[out->n_peers++];
        memcpy(ps->id, p->id, CORE_ID_MAX);
        ps->member = is_member(c, p->id);
        ps->voter = is_voter(c, p->id);
        ps->up = p->up;
        ps->match_index = c->role == CORE_PRIMARY ? p->match_index : 0;
        ps->last_seen_ms = p->last_heard < 0 ? -1 : now - p->last_heard;
    }
}
