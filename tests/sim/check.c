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
 * Plus consistency of the core with its own storage: what it reports as its
 * log and epoch is what it asked to persist.
 */
#include "sim.h"

#include <inttypes.h>
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
        cl->epoch_primary = realloc(cl->epoch_primary, cap * sizeof(*cl->epoch_primary));
        if (cl->epoch_primary == NULL) {
            abort();
        }
        memset(cl->epoch_primary + cl->cap_epochs, 0,
               (cap - cl->cap_epochs) * sizeof(*cl->epoch_primary));
        cl->cap_epochs = cap;
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
    if (last) {
        check_mirror(cl, n, last);
        /* A full comparison now and then catches in-place changes. */
        if (rng_permille(&cl->rng, 5)) {
            for (uint64_t i = 1; i < last; i++) {
                check_mirror(cl, n, i);
            }
        }
    }
    enum core_role role = core_role(c);
    if ((role == CORE_PRIMARY || role == CORE_CANDIDATE) && !st.voter) {
        sim_fail(cl, "%s is %s but not a voter", n->id, role_name((enum role)role));
    }
    if (role == CORE_PRIMARY) {
        record_primary(cl, n, epoch);
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
        cl->committed_voters =
            sim_realloc(cl->committed_voters, cl->cap_committed * sizeof(*cl->committed_voters));
    }
    /* Membership only grows here (learners join, then get promoted), so the
     * configuration committed at or before an index gives a lower bound on
     * the majority that had to hold it. */
    unsigned voters = cl->n_committed      ? cl->committed_voters[cl->n_committed - 1]
                      : cl->p.initial_size ? cl->p.initial_size
                                           : cl->p.nodes;
    if (s->e.type == CORE_ENTRY_CONFIG) {
        struct core_config cfg;
        if (core_config_decode(s->e.data, s->e.len, &cfg) != 0) {
            sim_fail(cl, "committed CONFIG entry %" PRIu64 " does not decode", index);
            return;
        }
        voters = 0;
        for (unsigned i = 0; i < cfg.n; i++) {
            voters += cfg.members[i].voter;
        }
    }
    s->refs++;
    cl->committed_voters[cl->n_committed] = voters;
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
    while (cl->n_committed < commit && !cl->failed) {
        record_committed(cl, n, n->mem.at[cl->n_committed]);
    }
    n->checked = commit;
    if (cl->n_committed > before) {
        sim_trace(cl, "%s commits up to %" PRIu64, n->id, commit);
        check_durable_majority(cl, before);
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
        unsigned need = cl->committed_voters[i - 1] / 2 + 1;
        unsigned have = 0;
        for (unsigned j = 0; j < cl->p.nodes; j++) {
            const struct sim_log *d = &cl->nodes[j].durable;
            have += d->len >= i && entry_same(d->at[i - 1], cl->committed[i - 1]);
        }
        if (have < need) {
            sim_fail(cl, "invariant 2: committed index %zu is durable on only %u nodes, %u voters",
                     i, have, cl->committed_voters[i - 1]);
            return;
        }
    }
}

/* After the liveness phase: every log equals the committed log, every
 * acknowledged request is in it. */
void check_final(struct cluster *cl)
{
    check_durable_majority(cl, 0);
    for (unsigned j = 0; j < cl->p.nodes && !cl->failed; j++) {
        const struct sim_log *l = &cl->nodes[j].mem;
        for (size_t i = 1; i <= l->len && i <= cl->n_committed; i++) {
            if (!entry_same(l->at[i - 1], cl->committed[i - 1])) {
                sim_fail(cl, "final: %s index %zu differs from the committed log", cl->nodes[j].id,
                         i);
                return;
            }
        }
    }
    for (unsigned k = 0; k < cl->p.clients && !cl->failed; k++) {
        const struct sim_client *c = &cl->clients[k];
        uint64_t done = c->busy ? c->req - 1 : c->req;
        for (uint64_t r = 1; r <= done; r++) {
            if (r >= c->cap_committed || c->committed_at[r] == 0) {
                sim_fail(cl, "final: acknowledged request c%u-%" PRIu64 " is not committed", k, r);
                return;
            }
        }
    }
}
