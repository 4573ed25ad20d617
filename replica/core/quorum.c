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

struct core_member *member(const struct core *c, const char *id)
{
    for (unsigned i = 0; i < c->n_cfg; i++) {
        if (strcmp(c->cfg[i].id, id) == 0) {
            return (struct core_member *)&c->cfg[i];
        }
    }
    return NULL;
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
    for (unsigned i = 0; i < c->n_cfg; i++) {
        n += c->cfg[i].voter;
    }
    return n;
}

/* THE MAJORITY RULE: more than half. */
static unsigned majority_of(unsigned n)
{
    return n / 2 + 1;
}

unsigned quorum(const struct core *c)
{
    return majority_of(n_voters(c));
}

bool can_campaign(const struct core *c)
{
    return c->n_cfg > 0 && is_voter(c, c->id);
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
    for (unsigned i = 0; i < c->n_cfg; i++) {
        memcpy(c->hs.bootstrap[i], c->cfg[i].id, CORE_ID_MAX);
    }
    c->hs.n_bootstrap = c->n_cfg;
}

bool bootstrap_matches(const struct core *c, const struct core_msg *m)
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

struct peer *peer_find(const struct core *c, const char *id)
{
    for (unsigned i = 0; i < c->n_peers; i++) {
        if (strcmp(c->peers[i].id, id) == 0) {
            return (struct peer *)&c->peers[i];
        }
    }
    return NULL;
}

struct peer *peer_get(struct core *c, const char *id)
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
 * The majority rule, applied
 * ====================================================================== */

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The highest index that a majority of voters hold durably. Our own share
 * is what our disk confirmed, not what we appended. */
uint64_t majority_index(const struct core *c)
{
    uint64_t matches[CORE_MAX_MEMBERS];
    unsigned n = 0;
    for (unsigned i = 0; i < c->n_cfg; i++) {
        if (!c->cfg[i].voter) {
            continue;
        }
        if (strcmp(c->cfg[i].id, c->id) == 0) {
            matches[n++] = c->durable;
        } else {
            const struct peer *p = peer_find(c, c->cfg[i].id);
            matches[n++] = p ? p->match_index : 0;
        }
    }
    if (n == 0) {
        return 0;
    }
    qsort(matches, n, sizeof(matches[0]), cmp_u64_desc);
    return matches[quorum(c) - 1];
}

/* Enough votes? Normally a majority of the voters; while bootstrapping,
 * every member of the list and a majority of the whole view. */
bool votes_won(const struct core *c)
{
    unsigned voters = c->self_granted, all = c->self_granted;
    for (unsigned i = 0; i < c->n_peers; i++) {
        voters += c->peers[i].granted && is_voter(c, c->peers[i].id);
        all += c->peers[i].granted;
    }
    if (c->cfg_index != 0) {
        return voters >= quorum(c);
    }
    return c->n_cfg > 0 && voters == n_voters(c) && all >= majority_of(c->n_peers + 1);
}

/* Check-quorum: has a majority of voters answered within the minimum
 * election timeout? (dissertation 6.2) */
bool quorum_fresh(const struct core *c, int64_t now)
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
        const struct peer *p = peer_find(c, c->cfg[i].id);
        alive += p != NULL && now - p->last_ack < window;
    }
    return alive >= quorum(c);
}
