/*
 * replica/core/election.c — roles and how they change: elections with a
 * pre-vote round (dissertation 9.6), votes only for an up-to-date log
 * (3.6.1), the lease that keeps a live primary from being deposed, and
 * role_change, the one place a role is assigned.
 */
#include "internal.h"

#include <stdio.h> /* snprintf only */
#include <string.h>

void reset_election_timer(struct core *c, int64_t now)
{
    unsigned span = c->o.election_max_ms - c->o.election_min_ms;
    c->election_deadline = now + c->o.election_min_ms + (int64_t)rnd(c, span);
}

/* A new epoch or vote: durable before anything that depends on it leaves
 * (the update's hard state holds every message back until it is). */
void persist_epoch(struct core *c, uint64_t epoch, const char *voted_for)
{
    assert(epoch >= c->hs.epoch); /* epochs never go back */
    if (epoch > c->hs.epoch) {
        c->epoch_primary[0] = '\0';
    }
    c->hs.epoch = epoch;
    snprintf(c->hs.voted_for, sizeof(c->hs.voted_for), "%s", voted_for);
    out_state(c);
}

/* The one place a role changes. Leaving PRIMARY answers every waiting
 * client UNKNOWN (retry with the same id) and says why; becoming PRIMARY
 * sets up replication. Timers are the caller's: each transition knows when
 * its next deadline is. */
void role_change(struct core *c, int64_t now, enum core_role to, const char *why)
{
    enum core_role from = c->role;
    c->role = to;
    c->pre_vote = false;
    if (from == CORE_PRIMARY && to != CORE_PRIMARY) {
        sessions_fail(c, CORE_REPLY_UNKNOWN);
        sessions_unindex(c);
        reads_fail(c);
        out_event(c, EVENT_STEPPED_DOWN, c->id, last_index(c), why);
    }
    if (to == CORE_PRIMARY) {
        snprintf(c->primary, sizeof(c->primary), "%s", c->id);
        snprintf(c->epoch_primary, sizeof(c->epoch_primary), "%s", c->id);
        c->primary_down = false;
        c->primary_lost_at = 0;
        c->primary_since = now;
        primary_start(c, now);
        out_event(c, EVENT_ELECTED, c->id, last_index(c), NULL);
        broadcast_heartbeat(c, now);
    }
    assert(c->role != CORE_PRIMARY || strcmp(c->primary, c->id) == 0);
}

/* Follow `primary` ("" when unknown) in `epoch` (>= ours). */
void follow(struct core *c, int64_t now, uint64_t epoch, const char *primary)
{
    if (epoch > c->hs.epoch) {
        persist_epoch(c, epoch, "");
    }
    if (strcmp(c->primary, primary) != 0) {
        snprintf(c->primary, sizeof(c->primary), "%s", primary);
        c->primary_down = false;
    }
    if (primary[0] != '\0') {
        assert(c->epoch_primary[0] == '\0' || strcmp(c->epoch_primary, primary) == 0);
        snprintf(c->epoch_primary, sizeof(c->epoch_primary), "%s", primary);
    }
    role_change(c, now, CORE_BACKUP, "a newer epoch exists");
    reset_election_timer(c, now);
}

static void send_vote_requests(struct core *c, bool transfer)
{
    const char *boot[CORE_MAX_MEMBERS];
    for (unsigned i = 0; i < c->cfg.n; i++) {
        boot[i] = c->cfg.members[i].id;
    }
    struct core_msg m = {.type = CORE_MSG_VOTE_REQUEST};
    m.epoch = c->pre_vote ? c->hs.epoch + 1 : c->hs.epoch;
    m.vote_request.last_index = last_index(c);
    m.vote_request.last_epoch = last_epoch(c);
    m.vote_request.pre_vote = c->pre_vote;
    m.vote_request.transfer = transfer;
    if (c->cfg_index == 0) {
        /* Bootstrap: every replica we know votes (see bootstrap_list). */
        m.vote_request.n_bootstrap = c->cfg.n;
        m.vote_request.bootstrap = boot;
        for (unsigned i = 0; i < c->n_peers; i++) {
            out_send(c, c->peers[i].id, &m);
        }
        return;
    }
    for (unsigned i = 0; i < c->cfg.n; i++) {
        if (c->cfg.members[i].voter && strcmp(c->cfg.members[i].id, c->id) != 0) {
            out_send(c, c->cfg.members[i].id, &m);
        }
    }
}

static void check_won(struct core *c, int64_t now)
{
    if (c->role != CORE_CANDIDATE || !votes_won(c)) {
        return;
    }
    if (c->pre_vote) {
        start_round(c, now, false);
    } else {
        role_change(c, now, CORE_PRIMARY, NULL);
    }
}

void start_round(struct core *c, int64_t now, bool pre_vote)
{
    bool transfer = c->transfer_round && !pre_vote;
    c->transfer_round = false;
    role_change(c, now, CORE_CANDIDATE, NULL);
    c->pre_vote = pre_vote;
    for (unsigned i = 0; i < c->n_peers; i++) {
        c->peers[i].granted = false;
    }
    c->self_granted = true;
    if (!pre_vote) {
        bootstrap_fix(c);
        persist_epoch(c, c->hs.epoch + 1, c->id);
        c->primary[0] = '\0';
        out_event(c, EVENT_ELECTION_STARTED, c->id, last_index(c), NULL);
    }
    if (c->primary_lost_at != 0 && now - c->primary_lost_at < 4 * (int64_t)c->o.election_max_ms) {
        /* The primary's process is known gone, so nobody is waiting out a
         * lease: if this round splits the vote, retry within a few
         * heartbeats rather than a whole election timeout. */
        c->election_deadline = now + c->o.heartbeat_ms + (int64_t)rnd(c, 3 * c->o.heartbeat_ms);
    } else {
        reset_election_timer(c, now);
    }
    send_vote_requests(c, transfer);
    check_won(c, now);
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
static bool primary_lease(const struct core *c, int64_t now)
{
    if (c->role == CORE_PRIMARY) {
        return true; /* check-quorum steps us down when the lease is gone */
    }
    return c->primary[0] != '\0' && !c->primary_down && c->last_primary_contact >= 0 &&
           now - c->last_primary_contact < (int64_t)c->o.election_min_ms;
}

void recv_vote_request(struct core *c, int64_t now, const struct core_msg *m)
{
    if (c->disk_failed) {
        return; /* a vote must be persisted before it is given */
    }
    const char *from = m->from;
    bool pre = m->vote_request.pre_vote;
    bool grant = false;
    uint64_t reply_epoch = c->hs.epoch;

    bool boot_ok = c->cfg_index != 0 || m->vote_request.last_index != 0 || bootstrap_matches(c, m);
    bool up_to_date = log_ok(c, m->vote_request.last_epoch, m->vote_request.last_index);

    /* A handover (TimeoutNow) comes from the primary itself, which is
     * stepping down: the lease it gave us does not stand in its way. */
    bool lease = primary_lease(c, now) && (c->role == CORE_PRIMARY || !m->vote_request.transfer);
    if (lease && strcmp(c->primary, from) != 0) {
        grant = false;
    } else if (c->cfg_index != 0 && c->cfg_index <= c->commit && !is_member(c, from)) {
        /* Its removal is committed, as far as we know: it is out for good.
         * (While our latest configuration is not committed, a replica it
         * leaves out may still be needed to elect anybody: 4.2.2.) */
        grant = false;
    } else if (pre) {
        /* A pre-vote changes nothing here: it only asks "would you?". */
        grant = m->epoch > c->hs.epoch && up_to_date && boot_ok;
        if (grant) {
            reply_epoch = m->epoch;
        }
    } else {
        if (m->epoch > c->hs.epoch) {
            follow(c, now, m->epoch, "");
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
    out_send(c, from, &r);
}

void recv_vote_response(struct core *c, int64_t now, const struct core_msg *m)
{
    if (m->epoch > c->hs.epoch && !(m->vote_response.pre_vote && m->vote_response.granted)) {
        follow(c, now, m->epoch, "");
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
