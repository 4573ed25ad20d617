/*
 * tests/sim/check.c — the invariants, checked as the simulation runs.
 *
 *  1. At most one primary per epoch, ever (guarantee 1).
 *  2. Committed entries never change or disappear: the committed log is
 *     recorded as commit indices become visible (at a node's fsync, when its
 *     output may leave); every node's entries up to its commit index must
 *     match it, also what a crashed node recovers from disk, and every
 *     committed entry is durable on a majority (guarantee 2).
 *  3. Log matching: two logs with the same epoch at an index are identical
 *     up to there (prefix hashes make this cheap).
 *  4. Every OK reply names the index where that client id is committed, and
 *     no client id is committed twice (guarantee 3).
 *  5. A live node's commit index never decreases and never passes its last
 *     index.
 *  6. Membership changes one member at a time: every committed configuration
 *     differs from the previously committed one by at most one member and
 *     at most one voter, keeps the cluster id and the removed list, and
 *     re-adds nobody on it; a primary appends a configuration only once the
 *     previous one and an entry of its own epoch are committed (the 2015
 *     erratum), and only one differing by at most one member from the one
 *     before it in its log; one that drops a member as gone (not on the
 *     removed list) drops one that discovery no longer lists. With
 *     invariant 1 this is "no two majorities of successive configurations
 *     elect two primaries in one epoch".
 *  7. A node on a committed removed list is never elected again.
 *  8. Leader completeness: a node becoming primary holds every entry
 *     committed so far (so every acknowledged write is in every later
 *     primary's log).
 * Plus consistency of the core with its own storage: what it reports as its
 * log and epoch is what it asked to persist.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void record_primary(struct cluster *cl, struct sim_node *n, uint64_t epoch)
{
    if (epoch >= cl->cap_epochs) {
        size_t cap = cl->cap_epochs ? cl->cap_epochs : 64;
        while (cap <= epoch) {
            cap *= 2;
        }
        cl->epoch_primary = sim_realloc(cl->epoch_primary, cap * sizeof(*cl->epoch_primary));
        cl->epoch_commit = sim_realloc(cl->epoch_commit, cap * sizeof(*cl->epoch_commit));
        memset(cl->epoch_primary + cl->cap_epochs, 0,
               (cap - cl->cap_epochs) * sizeof(*cl->epoch_primary));
        memset(cl->epoch_commit + cl->cap_epochs, 0,
               (cap - cl->cap_epochs) * sizeof(*cl->epoch_commit));
        cl->cap_epochs = cap;
    }
    uint64_t commit = core_commit_index(n->core);
    if (commit > cl->epoch_commit[epoch]) {
        cl->epoch_commit[epoch] = commit;
    }
    int *who = &cl->epoch_primary[epoch];
    if (*who == 0) {
        *who = n->idx + 1;
    } else if (*who != n->idx + 1) {
        sim_fail(cl, "invariant 1: %s and %s were both primary in epoch %" PRIu64,
                 cl->nodes[*who - 1].id, n->id, epoch);
    }
}

/* Log matching between two nodes' current logs: find the highest index
 * where both hold the same epoch; the prefixes up to there must be equal,
 * which covers every lower index too. */
static void check_pair(struct cluster *cl, const struct sim_node *a, const struct sim_node *b)
{
    const struct sim_log *la = &a->mem, *lb = &b->mem;
    size_t i = la->len < lb->len ? la->len : lb->len;
    while (i > 0 && la->at[i - 1]->e.epoch != lb->at[i - 1]->e.epoch) {
        i--;
    }
    if (i == 0 || la->prefix[i - 1] == lb->prefix[i - 1]) {
        return;
    }
    size_t k = 1;
    while (k <= i && la->at[k - 1]->hash == lb->at[k - 1]->hash) {
        k++;
    }
    sim_fail(cl,
             "invariant 3 (log matching): %s and %s both have epoch %" PRIu64
             " at index %zu but differ at index %zu (epochs %" PRIu64 "/%" PRIu64
             ", ids '%s'/'%s')",
             a->id, b->id, la->at[i - 1]->e.epoch, i, k, la->at[k - 1]->e.epoch,
             lb->at[k - 1]->e.epoch, la->at[k - 1]->e.client_id, lb->at[k - 1]->e.client_id);
}

static void check_mirror(struct cluster *cl, struct sim_node *n, uint64_t index)
{
    const struct core_entry *e = core_entry_at(n->core, index);
    const struct sim_entry *m = n->mem.at[index - 1];
    if (e == NULL || e->index != index || e->epoch != m->e.epoch || e->type != m->e.type ||
        e->len != m->e.len || strcmp(e->client_id ? e->client_id : "", m->e.client_id) != 0 ||
        (e->len && memcmp(e->data, m->e.data, e->len) != 0)) {
        sim_fail(cl, "%s: entry %" PRIu64 " in memory differs from what it persisted", n->id,
                 index);
    }
}

/* Invariant 6 on a primary that just appended a configuration (config
 * index `st->config_index`, of its own epoch). */
static void check_config_appended(struct cluster *cl, struct sim_node *n,
                                  const struct core_status *st)
{
    uint64_t idx = st->config_index;
    uint64_t prev = idx - 1;
    while (prev >= 1 && n->mem.at[prev - 1]->e.type != CORE_ENTRY_CONFIG) {
        prev--;
    }
    if (prev == 0) {
        if (idx != 1) {
            sim_fail(cl, "%s appended its log's first configuration at %" PRIu64, n->id, idx);
        }
        return; /* the initial configuration */
    }
    struct core_config before;
    const struct sim_entry *pe = n->mem.at[prev - 1];
    if (core_config_decode(pe->e.data, pe->e.len, &before) != 0) {
        sim_fail(cl, "%s: CONFIG entry %" PRIu64 " does not decode", n->id, prev);
        return;
    }
    unsigned members, voters;
    config_diff(&before, &st->config, &members, &voters);
    if (cl->expect_forced && (members > 1 || voters > 1)) {
        cl->expect_forced = false;
        cl->forced_index = idx;
        sim_trace(cl, "%s appended the forced configuration at %" PRIu64, n->id, idx);
        return;
    }
    uint64_t commit = core_commit_index(n->core);
    char a[512], b[512];
    if (members > 1 || voters > 1) {
        config_describe(&before, a, sizeof(a));
        config_describe(&st->config, b, sizeof(b));
        sim_fail(cl,
                 "invariant 6: primary %s appended configuration %" PRIu64
                 " [%s] that changes %u members and %u voters from %" PRIu64 " [%s]",
                 n->id, idx, b, members, voters, prev, a);
        return;
    }
    if (prev > commit) {
        sim_fail(cl,
                 "invariant 6: primary %s appended configuration %" PRIu64
                 " while the previous one (%" PRIu64 ") was not committed (commit %" PRIu64 ")",
                 n->id, idx, prev, commit);
        return;
    }
    if (commit == 0 || n->mem.at[commit - 1]->e.epoch != st->epoch) {
        sim_fail(cl,
                 "invariant 6: primary %s appended configuration %" PRIu64
                 " before committing an entry of its epoch %" PRIu64 " (commit %" PRIu64 ")",
                 n->id, idx, st->epoch, commit);
        return;
    }
    /* A member dropped without being put on the removed list was found
     * gone: discovery must no longer list it. */
    for (unsigned i = 0; i < before.n; i++) {
        const char *id = before.members[i].id;
        int k = cluster_node_index(cl, id);
        if (!config_is_member(&st->config, id) && !core_config_removed(&st->config, id) && k >= 0 &&
            cl->nodes[k].listed) {
            const struct core_peer_status *ps = NULL;
            for (unsigned j = 0; j < st->n_peers; j++) {
                if (strcmp(st->peers[j].id, id) == 0) {
                    ps = &st->peers[j];
                }
            }
            char seen[96];
            if (ps == NULL) {
                snprintf(seen, sizeof(seen), "the primary has no peer entry for it");
            } else {
                snprintf(seen, sizeof(seen), "up %d, last heard %" PRId64 " ms ago", ps->up,
                         ps->last_seen_ms);
            }
            sim_fail(cl,
                     "invariant 6: primary %s removed %s as gone (configuration %" PRIu64
                     ") while discovery still lists it (%s %s; %s)",
                     n->id, id, idx, id, cl->nodes[k].alive ? "alive" : "dead", seen);
        }
    }
}

/* A node just became primary, of epoch e: it must hold whatever the
 * primaries of earlier epochs committed (a primary of a later epoch may
 * have committed more: a late election in a lower epoch need not hold it). */
void check_elected(struct cluster *cl, struct sim_node *n)
{
    uint64_t e = core_epoch(n->core), need = 0;
    for (uint64_t ep = 1; ep < e && ep < cl->cap_epochs; ep++) {
        if (cl->epoch_commit[ep] > need) {
            need = cl->epoch_commit[ep];
        }
    }
    size_t cmp = need < cl->n_committed ? need : cl->n_committed;
    if (n->mem.len < need || (cmp > 0 && !entry_same(n->mem.at[cmp - 1], cl->committed[cmp - 1]))) {
        sim_fail(cl,
                 "invariant 8 (leader completeness): %s became primary in epoch %" PRIu64
                 " with %zu entries, without index %" PRIu64 " committed in an earlier epoch",
                 n->id, e, n->mem.len, need);
        return;
    }
    if (cl->removed_epoch[n->idx] != 0) {
        sim_fail(cl,
                 "invariant 7: %s became primary in epoch %" PRIu64
                 " after a committed configuration (epoch %" PRIu64 ") removed it",
                 n->id, core_epoch(n->core), cl->removed_epoch[n->idx]);
    }
}

void check_after_input(struct cluster *cl, struct sim_node *n)
{
    struct core *c = n->core;
    uint64_t last = core_last_index(c);
    uint64_t commit = core_commit_index(c);
    uint64_t epoch = core_epoch(c);
    if (last != n->mem.len) {
        sim_fail(cl, "%s: core_last_index %" PRIu64 " but it persisted %zu entries", n->id, last,
                 n->mem.len);
        return;
    }
    if (commit > last) {
        sim_fail(cl, "invariant 5: %s commit index %" PRIu64 " exceeds its last index %" PRIu64,
                 n->id, commit, last);
    }
    if (commit < n->last_commit) {
        sim_fail(cl, "invariant 5: %s commit index went back from %" PRIu64 " to %" PRIu64, n->id,
                 n->last_commit, commit);
    }
    n->last_commit = commit;
    if (epoch != n->mem_hs.epoch) {
        sim_fail(cl, "%s: epoch %" PRIu64 " in memory but %" PRIu64 " persisted", n->id, epoch,
                 n->mem_hs.epoch);
    }
    struct core_status st;
    core_get_status(c, cl->now, &st);
    if (strcmp(st.voted_for, n->mem_hs.voted_for) != 0) {
        sim_fail(cl, "%s: voted for '%s' in memory but '%s' persisted", n->id, st.voted_for,
                 n->mem_hs.voted_for);
    }
    /* What retention dropped the core can no longer show. */
    uint64_t first = core_first_index(c);
    if (last >= first) {
        check_mirror(cl, n, last);
        /* A full comparison now and then catches in-place changes. */
        if (rng_permille(&cl->rng, 5)) {
            for (uint64_t i = first; i < last; i++) {
                check_mirror(cl, n, i);
            }
        }
    }
    enum core_role role = core_role(c);
    /* A primary that removed itself leads, without a vote, until its
     * removal commits; then it hands over. */
    bool handing_over =
        role == CORE_PRIMARY && st.config_index != 0 && !config_is_member(&st.config, n->id);
    /* A voter of the previous configuration may campaign while the latest,
     * which left it out, is not committed as far as it knows (4.2.2). */
    bool change_pending = st.config_index > st.commit_index;
    if ((role == CORE_PRIMARY || role == CORE_CANDIDATE) && !st.voter && !handing_over &&
        !change_pending) {
        sim_fail(cl, "%s is %s but not a voter", n->id, role_name((enum role)role));
    }
    if (role == CORE_PRIMARY) {
        record_primary(cl, n, epoch);
    }
    if (st.config_index != n->cfg_seen) {
        if (role == CORE_PRIMARY && st.config_index > n->cfg_seen &&
            st.config_index <= n->mem.len) {
            const struct sim_entry *ce = n->mem.at[st.config_index - 1];
            if (ce->e.epoch == epoch && strcmp(ce->e.primary, n->id) == 0) {
                check_config_appended(cl, n, &st);
            }
        }
        n->cfg_seen = st.config_index;
    }
    for (unsigned j = 0; j < cl->p.nodes && !cl->failed; j++) {
        if ((int)j != n->idx) {
            check_pair(cl, n, &cl->nodes[j]);
        }
    }
}

void check_truncate(struct cluster *cl, struct sim_node *n, uint64_t from)
{
    if (from <= n->last_commit) {
        sim_fail(cl,
                 "invariant 2: %s truncated its log from %" PRIu64
                 " but had committed up to %" PRIu64,
                 n->id, from, n->last_commit);
    }
    if (from <= n->checked) {
        n->checked = from - 1;
    }
}

static unsigned majority(unsigned n)
{
    return n / 2 + 1;
}

/* Invariant 6 on the committed configurations, and what they tell the
 * operator (membership.c) and the statistics. */
static void check_config_committed(struct cluster *cl, const struct sim_entry *s,
                                   const struct core_config *cfg)
{
    const struct core_config *prev = &cl->cfg_last;
    uint64_t index = s->e.index;
    char a[512], b[512];
    if (cl->n_cfgs > 1) {
        unsigned members, voters;
        config_diff(prev, cfg, &members, &voters);
        bool forced = cl->forced_index != 0 && index == cl->forced_index;
        if ((members > 1 || voters > 1) && !forced) {
            config_describe(prev, a, sizeof(a));
            config_describe(cfg, b, sizeof(b));
            sim_fail(cl,
                     "invariant 6: committed configuration %" PRIu64
                     " [%s] changes %u members and %u voters from the previous committed "
                     "one, %" PRIu64 " [%s]",
                     index, b, members, voters, cl->cfgs[cl->n_cfgs - 1].index, a);
            return;
        }
        if (forced) {
            cl->ms.forced++;
        }
        if (prev->cluster_id[0] != '\0' && strcmp(prev->cluster_id, cfg->cluster_id) != 0) {
            sim_fail(cl,
                     "invariant 6: committed configuration %" PRIu64
                     " changed the cluster id from %s to %s",
                     index, prev->cluster_id, cfg->cluster_id);
            return;
        }
        unsigned added_removed = 0;
        for (unsigned i = 0; i < prev->n_removed; i++) {
            if (!core_config_removed(cfg, prev->removed[i]) && cfg->n_removed < CORE_MAX_REMOVED) {
                sim_fail(cl,
                         "invariant 6: committed configuration %" PRIu64
                         " dropped %s from the removed list",
                         index, prev->removed[i]);
                return;
            }
        }
        for (unsigned i = 0; i < cfg->n_removed; i++) {
            const char *id = cfg->removed[i];
            if (core_config_removed(prev, id)) {
                continue;
            }
            added_removed++;
            if (!config_is_member(prev, id) && !forced) {
                sim_fail(cl,
                         "invariant 6: committed configuration %" PRIu64
                         " lists %s as removed, but it was no member",
                         index, id);
                return;
            }
            int k = cluster_node_index(cl, id);
            if (k >= 0 && cl->removed_epoch[k] == 0) {
                cl->removed_epoch[k] = s->e.epoch;
                cl->ms.removed_on_request++;
                cl->ms.removed_self += strcmp(s->e.primary, id) == 0;
                sim_trace(cl, "%s's removal is committed at %" PRIu64, id, index);
                admin_on_removed(cl, k);
            }
        }
        if (added_removed > 1 && !forced) {
            sim_fail(cl, "invariant 6: committed configuration %" PRIu64 " removes %u at once",
                     index, added_removed);
            return;
        }
        for (unsigned i = 0; i < prev->n; i++) {
            const struct core_member *was = &prev->members[i];
            const struct core_member *now = core_config_member(cfg, was->id);
            if (now == NULL && !core_config_removed(cfg, was->id)) {
                cl->ms.cleaned_up++;
            } else if (now != NULL && now->voter && !was->voter) {
                cl->ms.promoted++;
            }
        }
        for (unsigned i = 0; i < cfg->n; i++) {
            cl->ms.joined += core_config_member(prev, cfg->members[i].id) == NULL;
        }
    }
    /* Nobody on any removed list committed so far comes back. */
    for (unsigned i = 0; i < cfg->n; i++) {
        int k = cluster_node_index(cl, cfg->members[i].id);
        if (k >= 0 && cl->removed_epoch[k] != 0) {
            sim_fail(cl,
                     "invariant 6: committed configuration %" PRIu64
                     " has %s as a member again after its removal",
                     index, cfg->members[i].id);
            return;
        }
    }
}

/* How many of the nodes in `mask` (all nodes when 0) durably hold
 * committed index i. */
static unsigned holders(const struct cluster *cl, size_t i, uint32_t mask)
{
    unsigned have = 0;
    for (unsigned j = 0; j < cl->p.nodes; j++) {
        const struct sim_log *d = &cl->nodes[j].durable;
        have += (mask == 0 || (mask >> j) & 1) && d->len >= i &&
                entry_same(d->at[i - 1], cl->committed[i - 1]);
    }
    return have;
}

/* Committed index i must be durable on a majority of the voters of the
 * configuration it committed under: the one in effect at i (a CONFIG entry
 * commits under itself) or, since a primary counts by the latest
 * configuration in its log, the next one (appended after i, which needs i
 * committed before a third may follow). While that next one is unknown it
 * may be the one in effect plus one voter, or minus one (when removals
 * happen). */
static bool durable_enough(const struct cluster *cl, size_t i, unsigned *have, unsigned *need)
{
    unsigned k = cl->committed_cfg[i - 1];
    const struct sim_cfgrec *c = &cl->cfgs[k];
    *have = holders(cl, i, c->voter_nodes);
    *need = majority(c->voters);
    if (*have >= *need || c->index == i) {
        return *have >= *need;
    }
    if (k + 1 < cl->n_cfgs) {
        const struct sim_cfgrec *next = &cl->cfgs[k + 1];
        return holders(cl, i, next->voter_nodes) >= majority(next->voters);
    }
    /* Plus one voter: a majority of v + 1, one of which may be the new one. */
    if (holders(cl, i, 0) >= majority(c->voters + 1) && *have + 1 >= majority(c->voters + 1)) {
        return true;
    }
    /* Minus one: a majority of v - 1, all among the v. */
    return cl->p.removals && c->voters > 1 && *have >= majority(c->voters - 1);
}

static void record_committed(struct cluster *cl, struct sim_node *n, struct sim_entry *s)
{
    uint64_t index = cl->n_committed + 1;
    if (s->e.index != index) {
        sim_fail(cl, "%s: entry at position %" PRIu64 " says index %" PRIu64, n->id, index,
                 s->e.index);
    }
    if (s->e.type == CORE_ENTRY_DATA) {
        int k;
        uint64_t r;
        if (!client_parse_id(s->e.client_id, &k, &r) || k >= (int)cl->p.clients) {
            sim_fail(cl, "committed entry %" PRIu64 " has a client id no client sent: '%s'", index,
                     s->e.client_id);
            return;
        }
        struct sim_client *c = &cl->clients[k];
        if (r >= c->cap_committed) {
            size_t cap = c->cap_committed ? c->cap_committed : 64;
            while (cap <= r) {
                cap *= 2;
            }
            c->committed_at = realloc(c->committed_at, cap * sizeof(*c->committed_at));
            if (c->committed_at == NULL) {
                abort();
            }
            memset(c->committed_at + c->cap_committed, 0,
                   (cap - c->cap_committed) * sizeof(*c->committed_at));
            c->cap_committed = cap;
        }
        if (c->committed_at[r] != 0) {
            sim_fail(cl, "invariant 4: client id %s committed twice, at %" PRIu64 " and %" PRIu64,
                     s->e.client_id, c->committed_at[r], index);
        }
        c->committed_at[r] = index;
    }
    if (cl->n_committed == cl->cap_committed) {
        cl->cap_committed = cl->cap_committed ? cl->cap_committed * 2 : 256;
        cl->committed = sim_realloc(cl->committed, cl->cap_committed * sizeof(*cl->committed));
        cl->committed_cfg =
            sim_realloc(cl->committed_cfg, cl->cap_committed * sizeof(*cl->committed_cfg));
    }
    unsigned ord = cl->n_committed ? cl->committed_cfg[cl->n_committed - 1] : 0;
    if (s->e.type == CORE_ENTRY_CONFIG) {
        struct core_config cfg;
        if (core_config_decode(s->e.data, s->e.len, &cfg) != 0) {
            sim_fail(cl, "committed CONFIG entry %" PRIu64 " does not decode", index);
            return;
        }
        check_config_committed(cl, s, &cfg);
        if (cl->n_cfgs == cl->cap_cfgs) {
            cl->cap_cfgs *= 2;
            cl->cfgs = sim_realloc(cl->cfgs, cl->cap_cfgs * sizeof(*cl->cfgs));
        }
        /* The entries since the previous configuration were checked with
         * a guess at the configuration after them: now it is known. */
        size_t from = cl->cfgs[cl->n_cfgs - 1].index;
        if (from < cl->durable_recheck) {
            cl->durable_recheck = from;
        }
        ord = (unsigned)cl->n_cfgs;
        uint32_t mask = 0;
        for (unsigned k = 0; k < cfg.n; k++) {
            int j = cluster_node_index(cl, cfg.members[k].id);
            if (cfg.members[k].voter && j >= 0) {
                mask |= 1u << j;
            }
        }
        cl->cfgs[cl->n_cfgs++] = (struct sim_cfgrec){.index = index,
                                                     .epoch = s->e.epoch,
                                                     .voters = config_voters(&cfg),
                                                     .voter_nodes = mask};
        cl->cfg_last = cfg;
    }
    s->refs++;
    cl->committed_cfg[cl->n_committed] = ord;
    cl->committed[cl->n_committed++] = s;
}

/* The node's fsync completed and its output is about to leave: its commit
 * index is now visible to the world. */
void check_at_flush(struct cluster *cl, struct sim_node *n)
{
    uint64_t commit = core_commit_index(n->core);
    n->durable_commit = commit;
    if (commit > n->mem.len) {
        return; /* reported by check_after_input */
    }
    uint64_t upto = commit < cl->n_committed ? commit : cl->n_committed;
    for (uint64_t i = n->checked + 1; i <= upto; i++) {
        if (!entry_same(n->mem.at[i - 1], cl->committed[i - 1]) ||
            n->mem.at[i - 1]->hash != cl->committed[i - 1]->hash) {
            sim_fail(cl,
                     "invariant 2: %s has committed index %" PRIu64 " as epoch %" PRIu64
                     " '%s' but it was committed as epoch %" PRIu64 " '%s'",
                     n->id, i, n->mem.at[i - 1]->e.epoch, n->mem.at[i - 1]->e.client_id,
                     cl->committed[i - 1]->e.epoch, cl->committed[i - 1]->e.client_id);
            return;
        }
    }
    size_t before = cl->n_committed;
    cl->durable_recheck = SIZE_MAX;
    while (cl->n_committed < commit && !cl->failed) {
        record_committed(cl, n, n->mem.at[cl->n_committed]);
    }
    n->checked = commit;
    if (cl->n_committed > before) {
        sim_trace(cl, "%s commits up to %" PRIu64, n->id, commit);
        check_durable_majority(cl, cl->durable_recheck < before ? cl->durable_recheck : before);
    }
}

void check_reply(struct cluster *cl, struct sim_node *n, const struct sim_event *ev)
{
    if (ev->token == 0 || ev->token > cl->n_attempts) {
        sim_fail(cl, "%s replied to token %" PRIu64 " it was never given", n->id, ev->token);
        return;
    }
    struct sim_attempt *a = &cl->attempts[ev->token - 1];
    const struct core_reply *r = &ev->reply;
    if (a->node != n->idx) {
        sim_fail(cl, "%s replied to token %" PRIu64 " that went to %s", n->id, ev->token,
                 cl->nodes[a->node].id);
        return;
    }
    if (++a->replies > 1) {
        sim_fail(cl, "%s replied twice to token %" PRIu64, n->id, ev->token);
    }
    a->status = (int)r->status;
    a->index = r->index;
    if (r->status == CORE_REPLY_REJECTED) {
        sim_fail(cl, "%s rejected the valid request c%d-%" PRIu64, n->id, a->client, a->req);
        return;
    }
    if (r->status != CORE_REPLY_OK) {
        return;
    }
    const struct sim_client *c = &cl->clients[a->client];
    uint64_t at = a->req < c->cap_committed ? c->committed_at[a->req] : 0;
    if (at == 0 || at != r->index || cl->committed[at - 1]->e.epoch != r->epoch) {
        sim_fail(cl,
                 "invariant 4: %s answered OK for c%d-%" PRIu64 " at index %" PRIu64
                 " epoch %" PRIu64 " but it is committed at index %" PRIu64,
                 n->id, a->client, a->req, r->index, r->epoch, at);
    }
}

/* What a restarting node recovers must agree with the committed log up to
 * the commit index it had made visible. */
void check_on_revive(struct cluster *cl, struct sim_node *n)
{
    uint64_t upto = n->durable_commit < n->durable.len ? n->durable_commit : n->durable.len;
    for (uint64_t i = 1; i <= upto; i++) {
        if (i > cl->n_committed || !entry_same(n->durable.at[i - 1], cl->committed[i - 1])) {
            sim_fail(cl,
                     "invariant 2: %s recovered index %" PRIu64
                     " different from the committed entry",
                     n->id, i);
            return;
        }
    }
}

/* Committed means held durably by a majority, so no minority of crashes
 * can lose it. */
void check_durable_majority(struct cluster *cl, size_t from)
{
    for (size_t i = from + 1; i <= cl->n_committed; i++) {
        unsigned have, need;
        if (!durable_enough(cl, i, &have, &need)) {
            sim_fail(cl,
                     "invariant 2: committed index %zu is durable on only %u of the voters of "
                     "its configuration (at %" PRIu64 "), %u needed, nor on a majority of the "
                     "next one",
                     i, have, cl->cfgs[cl->committed_cfg[i - 1]].index, need);
            return;
        }
    }
}

/* After the liveness phase: every log equals the committed log, every
 * acknowledged request is in it. A node that is out (retired, or removed
 * and no longer sent the log) is compared up to what it knew committed:
 * beyond that it may keep entries that never committed. */
void check_final(struct cluster *cl)
{
    check_durable_majority(cl, 0);
    for (unsigned j = 0; j < cl->p.nodes && !cl->failed; j++) {
        const struct sim_node *n = &cl->nodes[j];
        const struct sim_log *l = &n->mem;
        size_t upto = cluster_out(cl, (int)j) ? n->durable_commit : l->len;
        for (size_t i = 1; i <= l->len && i <= upto && i <= cl->n_committed; i++) {
            if (!entry_same(l->at[i - 1], cl->committed[i - 1])) {
                sim_fail(cl, "final: %s index %zu differs from the committed log", cl->nodes[j].id,
                         i);
                return;
            }
        }
    }
    for (unsigned k = 0; k < cl->p.clients && !cl->failed; k++) {
        const struct sim_client *c = &cl->clients[k];
        /* A read outstanding leaves the last write settled. */
        uint64_t done = c->busy && !c->reading ? c->req - 1 : c->req;
        size_t x = 0; /* c->expired is ascending */
        for (uint64_t r = 1; r <= done; r++) {
            while (x < c->n_expired && c->expired[x] < r) {
                x++;
            }
            if (x < c->n_expired && c->expired[x] == r) {
                continue;
            }
            if (r >= c->cap_committed || c->committed_at[r] == 0) {
                sim_fail(cl, "final: acknowledged request c%u-%" PRIu64 " is not committed", k, r);
                return;
            }
        }
    }
}
