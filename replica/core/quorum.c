/*
 * replica/core/quorum.c — who the members are and what a majority of them
 * is: the configuration (the latest CONFIG entry, committed or not,
 * dissertation 4.1), the bootstrap list that stands in before the first one,
 * the peers seen, and the majority rule, written once here for votes, the
 * commit index and check-quorum.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ========================================================================
 * Membership
 * ====================================================================== */

void config_reload(struct core *c)
{
    c->cfg_index = 0;
    c->removing_self = false;
    for (size_t k = c->n_cfg_entries; k > 0; k--) {
        uint64_t i = c->cfg_entries[k - 1];
        const struct core_entry *e = log_entry(c, i);
        if (e == NULL) {
            continue; /* unreadable: counted in storage_errors */
        }
        if (c->cfg_index == 0) {
            if (core_config_decode(e->data, e->len, &c->cfg) == 0) {
                c->cfg_index = i;
                if (strcmp(e->primary, c->id) != 0 || is_member(c, c->id)) {
                    return; /* not our own removal */
                }
            }
            continue;
        }
        struct core_config before;
        if (core_config_decode(e->data, e->len, &before) == 0) {
            const struct core_member *m = core_config_member(&before, c->id);
            c->removing_self = m != NULL && m->voter;
            return;
        }
    }
    if (c->cfg_index == 0 && c->snap_cfg_index != 0) {
        c->cfg = c->snap_cfg; /* every CONFIG entry is older than the log */
        c->cfg_index = c->snap_cfg_index;
    }
    if (c->cfg_index == 0) {
        bootstrap_list(c);
    }
}

struct core_member *member(const struct core *c, const char *id)
{
    return (struct core_member *)core_config_member(&c->cfg, id);
}

bool is_voter(const struct core *c, const char *id)
{
    const struct core_member *m = member(c, id);
    return m != NULL && m->voter;
}

bool is_member(const struct core *c, const char *id)
{
    return member(c, id) != NULL;
}

unsigned n_voters(const struct core *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->cfg.n; i++) {
        n += c->cfg.members[i].voter;
    }
    return n;
}

/* THE MAJORITY RULE: more than half. */
unsigned majority_of(unsigned n)
{
    return n / 2 + 1;
}

unsigned quorum(const struct core *c)
{
    return majority_of(n_voters(c));
}

/* A voter may campaign; so may a primary that removed itself and lost its
 * majority before the removal committed: the voters that never received
 * the change may need it to elect anybody (4.2.2). Its votes are then
 * counted in the latest configuration, without its own. */
bool can_campaign(const struct core *c)
{
    return c->cfg.n > 0 && !c->disk_failed &&
           (is_voter(c, c->id) || (c->cfg_index > c->commit && c->removing_self));
}

/* ========================================================================
 * Bootstrap
 * ====================================================================== */

static int cmp_ids(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Before the log holds a configuration, the initial one is the initial_size
 * lowest ids this replica knows of (its "view"). The list stays fluid while
 * discovery fills the view, so replicas that start together converge on the
 * same list. It becomes fixed, persisted with the vote, the moment the
 * replica casts a real bootstrap vote or runs a real bootstrap candidacy:
 * from then on it supports no other list.
 *
 * A bootstrap candidate needs the vote of every member of its list AND of a
 * majority of every replica it knows. Each voter is fixed to one list, so two
 * lists can only both win with disjoint majorities of overlapping views:
 * impossible unless discovery itself is partitioned. */
void bootstrap_list(struct core *c)
{
    memset(&c->cfg, 0, sizeof(c->cfg));
    if (c->hs.n_bootstrap > 0) {
        for (unsigned i = 0; i < c->hs.n_bootstrap; i++) {
            memcpy(c->cfg.members[i].id, c->hs.bootstrap[i], CORE_ID_MAX);
            c->cfg.members[i].voter = true;
        }
        c->cfg.n = c->hs.n_bootstrap;
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
        memcpy(c->cfg.members[i].id, ids[i], CORE_ID_MAX);
        c->cfg.members[i].voter = true;
        self |= strcmp(ids[i], c->id) == 0;
    }
    c->cfg.n = c->o.initial_size;
    if (!self && c->role == CORE_CANDIDATE) {
        /* A pre-vote for a list we are no longer in: drop it, but keep the
         * timer, so the next round comes as planned. */
        c->role = CORE_BACKUP;
        c->pre_vote = false;
    }
}

/* Fix the fluid list before a vote or candidacy relies on it; the caller's
 * persist_epoch makes it durable together with that vote. */
void bootstrap_fix(struct core *c)
{
    if (c->cfg_index != 0 || c->hs.n_bootstrap != 0) {
        return;
    }
    for (unsigned i = 0; i < c->cfg.n; i++) {
        memcpy(c->hs.bootstrap[i], c->cfg.members[i].id, CORE_ID_MAX);
    }
    c->hs.n_bootstrap = c->cfg.n;
}

bool bootstrap_matches(const struct core *c, const struct core_msg *m)
{
    if (c->cfg.n == 0 || m->vote_request.n_bootstrap != c->cfg.n) {
        return false;
    }
    for (unsigned i = 0; i < c->cfg.n; i++) {
        if (strcmp(m->vote_request.bootstrap[i], c->cfg.members[i].id) != 0) {
            return false;
        }
    }
    return true;
}

/* ========================================================================
 * Peers
 * ====================================================================== */

struct peer *peer_find(const struct core *c, const char *id)
{
    for (unsigned i = 0; i < c->n_peers; i++) {
        if (strcmp(c->peers[i].id, id) == 0) {
            return (struct peer *)&c->peers[i];
        }
    }
    return NULL;
}

/* Forget a replica that is no member: replicas come and go for months
 * (every container a scale-up creates has a new id), the table does not. */
void peer_forget(struct core *c, const char *id)
{
    struct peer *p = peer_find(c, id);
    if (p != NULL && !is_member(c, id)) {
        *p = c->peers[--c->n_peers];
    }
}

/* Room for one more peer: when the table is full, a disconnected replica
 * that is no member (and not in the bootstrap view) makes way. */
static bool peer_room(struct core *c)
{
    for (unsigned i = 0; c->n_peers == CORE_MAX_MEMBERS && i < c->n_peers; i++) {
        if (!c->peers[i].up && !is_member(c, c->peers[i].id) && c->cfg_index != 0) {
            peer_forget(c, c->peers[i].id);
        }
    }
    return c->n_peers < CORE_MAX_MEMBERS;
}

struct peer *peer_get(struct core *c, const char *id)
{
    struct peer *p = peer_find(c, id);
    if (p != NULL || strcmp(id, c->id) == 0 || strlen(id) >= CORE_ID_MAX || id[0] == '\0' ||
        !peer_room(c)) {
        return p;
    }
    p = &c->peers[c->n_peers++];
    memset(p, 0, sizeof(*p));
    strcpy(p->id, id);
    p->last_heard = -1;
    p->listed = true;
    p->next_index = last_index(c) + 1;
    if (c->cfg_index == 0) {
        bootstrap_list(c); /* the view grew */
    }
    return p;
}

/* ========================================================================
 * The majority rule, applied
 * ====================================================================== */

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The highest value that a majority of voters have reached, given each
 * voter's value: `mine` for ourselves, value(peer) for the others (0 for a
 * voter we have never heard of). */
static uint64_t majority_value(const struct core *c, uint64_t mine,
                               uint64_t (*value)(const struct peer *p))
{
    uint64_t values[CORE_MAX_MEMBERS];
    unsigned n = 0;
    for (unsigned i = 0; i < c->cfg.n; i++) {
        if (!c->cfg.members[i].voter) {
            continue;
        }
        if (strcmp(c->cfg.members[i].id, c->id) == 0) {
            values[n++] = mine;
        } else {
            const struct peer *p = peer_find(c, c->cfg.members[i].id);
            values[n++] = p ? value(p) : 0;
        }
    }
    if (n == 0) {
        return 0;
    }
    qsort(values, n, sizeof(values[0]), cmp_u64_desc);
    return values[quorum(c) - 1];
}

static uint64_t match_of(const struct peer *p)
{
    return p->match_index;
}

static uint64_t round_of(const struct peer *p)
{
    return p->round_acked;
}

/* The highest index that a majority of voters hold durably. Our own share
 * is what our disk confirmed, not what we appended. */
uint64_t majority_index(const struct core *c)
{
    return majority_value(c, c->durable, match_of);
}

/* The latest heartbeat round a majority of voters answered (ReadIndex). */
uint64_t majority_round(const struct core *c)
{
    return majority_value(c, c->round, round_of);
}

/* Enough votes? Normally a majority of the voters; while bootstrapping,
 * every member of the list and a majority of the whole view. */
bool votes_won(const struct core *c)
{
    unsigned voters = c->self_granted && is_voter(c, c->id), all = c->self_granted;
    for (unsigned i = 0; i < c->n_peers; i++) {
        voters += c->peers[i].granted && is_voter(c, c->peers[i].id);
        all += c->peers[i].granted;
    }
    if (c->cfg_index != 0) {
        return voters >= quorum(c);
    }
    return c->cfg.n > 0 && voters == n_voters(c) && all >= majority_of(c->n_peers + 1);
}

/* Check-quorum: has a majority of voters answered within the minimum
 * election timeout? (dissertation 6.2) */
bool quorum_fresh(const struct core *c, int64_t now)
{
    /* A new primary, or a new timing (acks paced by the old heartbeat
     * cannot be held to a shorter timeout), gets one timeout's grace. */
    int64_t since = c->primary_since > c->timing_since ? c->primary_since : c->timing_since;
    if (now - since < (int64_t)c->o.election_min_ms) {
        return true;
    }
    return voters_alive(c, now, NULL) >= quorum(c);
}

/* Primary's count of the voters that answered within the minimum election
 * timeout, itself included if it is one; `without` (may be NULL) is left
 * out, to ask whether a majority would remain without it. */
unsigned voters_alive(const struct core *c, int64_t now, const char *without)
{
    unsigned alive = 0;
    for (unsigned i = 0; i < c->cfg.n; i++) {
        const struct core_member *m = &c->cfg.members[i];
        if (!m->voter || (without != NULL && strcmp(m->id, without) == 0)) {
            continue;
        }
        if (strcmp(m->id, c->id) == 0) {
            alive++;
            continue;
        }
        const struct peer *p = peer_find(c, m->id);
        alive += p != NULL && now - p->last_ack < (int64_t)c->o.election_min_ms;
    }
    return alive;
}
