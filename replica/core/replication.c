/*
 * replica/core/replication.c — the log from primary to backups: Appends and
 * their answers, catch-up by backtracking a whole epoch at a time (3.5),
 * the commit index (3.6.2: only entries of the primary's own epoch commit
 * by counting). Membership changes are membership.c's.
 */
#include "internal.h"

#include <stdio.h> /* snprintf only */
#include <string.h>

/* ========================================================================
 * Primary side
 * ====================================================================== */

/* A new primary: every peer starts from our end of log, and an entry of the
 * new epoch goes in first, so that what came before can commit. */
void primary_start(struct core *c, int64_t now)
{
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct peer *p = &c->peers[i];
        p->next_index = last_index(c) + 1;
        p->match_index = 0;
        p->inflight = 0;
        p->round_acked = 0;
        p->last_ack = now; /* grace: check-quorum counts from here */
    }
    c->epoch_start_index = last_index(c) + 1;
    if (c->cfg_index == 0) {
        /* The first primary writes the initial configuration as entry 1; it
         * also commits its epoch, as a no-op would. It names the cluster:
         * replicas refuse peers of another cluster from then on. */
        snprintf(c->cfg.cluster_id, sizeof(c->cfg.cluster_id), "%08llx%08llx",
                 (unsigned long long)rnd(c, 1ull << 32), (unsigned long long)rnd(c, 1ull << 32));
        append_config(c);
    } else {
        log_append_local(c, CORE_ENTRY_NOOP, "", NULL, 0);
    }
}

/* A peer whose next entry retention dropped (or whose previous entry's
 * epoch went with it) is sent the snapshot, at most once per two election
 * timeouts while it installs it; meanwhile plain heartbeats (prev 0, which
 * every log matches) keep it following and count for check-quorum. */
static bool needs_snapshot(const struct core *c, uint64_t prev)
{
    return prev + 1 < c->first_index ||
           (prev + 1 == c->first_index && prev != 0 && prev != c->snap_index);
}

static void send_snapshot(struct core *c, struct peer *p)
{
    struct core_msg m = {.type = CORE_MSG_APPEND, .epoch = c->hs.epoch};
    int64_t every = 2 * (int64_t)c->o.election_max_ms;
    if (c->snap_len > 0 && (p->snapshot_sent == 0 || c->now - p->snapshot_sent >= every)) {
        m.type = CORE_MSG_SNAPSHOT;
        m.snapshot.index = c->snap_index;
        m.snapshot.epoch = c->snap_epoch;
        m.snapshot.data = c->snap;
        m.snapshot.len = c->snap_len;
        p->snapshot_sent = c->now;
    } else if (c->now - p->snapshot_heartbeat >= (int64_t)c->o.heartbeat_ms ||
               p->snapshot_heartbeat == 0) {
        m.append.commit_index = c->commit;
        m.append.round = c->round;
        p->snapshot_heartbeat = c->now;
    } else {
        p->need_send = false; /* its answers must not make a storm of them */
        return;
    }
    out_send(c, p->id, &m);
    p->need_send = false;
}

void send_append(struct core *c, struct peer *p, bool with_entries)
{
    if (p->next_index > last_index(c) + 1) {
        p->next_index = last_index(c) + 1;
    }
    assert(p->next_index >= 1);
    uint64_t prev = p->next_index - 1;
    if (needs_snapshot(c, prev)) {
        send_snapshot(c, p);
        return;
    }
    const struct core_entry *es = NULL;
    size_t n = 0;
    if (with_entries && p->inflight < MAX_INFLIGHT && prev < last_index(c) &&
        log_read(c, prev + 1, last_index(c), c->o.max_append_bytes, false, &es, &n) != 0) {
        n = 0; /* storage cannot read it now: a heartbeat, and retry later */
    }
    struct core_msg m = {.type = CORE_MSG_APPEND, .epoch = c->hs.epoch};
    m.append.prev_index = prev;
    m.append.prev_epoch = epoch_at(c, prev);
    m.append.commit_index = c->commit;
    m.append.round = c->round;
    m.append.n_entries = n;
    m.append.entries = n ? es : NULL;
    out_send(c, p->id, &m);
    if (c->commit >= c->cfg_index && prev >= c->cfg_index && strcmp(p->id, c->leaving) == 0) {
        /* It holds its removal and now learns that it is committed: it
         * knows it is out and stops campaigning for good. */
        c->leaving_told = true;
    }
    if (n > 0) {
        p->next_index += n;
        p->inflight_last[(p->inflight_head + p->inflight) % MAX_INFLIGHT] = prev + n;
        p->inflight++;
    }
    p->need_send = false;
}

void broadcast_heartbeat(struct core *c, int64_t now)
{
    for (unsigned i = 0; i < c->n_peers; i++) {
        if (replicates_to(c, &c->peers[i])) {
            send_append(c, &c->peers[i], true);
        }
    }
    c->heartbeat_deadline = now + c->o.heartbeat_ms;
}

/* ========================================================================
 * Commit
 * ====================================================================== */

void advance_commit(struct core *c, uint64_t to)
{
    if (to > last_index(c)) {
        to = last_index(c);
    }
    if (to <= c->commit) {
        return;
    }
    /* Count what commits. Entries no longer cached are read back without
     * their data; if storage fails, the commit index stops where it could
     * count, and the next Append tries again. */
    uint64_t i = c->commit + 1;
    while (i <= to) {
        const struct core_entry *es;
        size_t n;
        if (log_read(c, i, to, 4u << 20, true, &es, &n) != 0) {
            to = i - 1;
            break;
        }
        for (size_t k = 0; k < n; k++) {
            if (es[k].type == CORE_ENTRY_DATA) {
                if (strcmp(es[k].primary, c->id) == 0) {
                    c->processed++;
                } else {
                    c->synced++;
                }
            }
        }
        i += n;
    }
    if (to <= c->commit) {
        return;
    }
    c->commit = to;
    if (c->role != CORE_PRIMARY) {
        return;
    }
    if (c->n_reads > 0 && c->commit >= c->epoch_start_index) {
        c->round_wanted = true; /* reads waiting for our epoch's first commit */
    }
    sessions_answer_committed(c);
    out_event(c, EVENT_COMMITTED, c->id, c->commit, NULL);
}

/* Committed only if of our own epoch (3.6.2: older entries commit
 * indirectly), and only what a majority holds durably. */
void primary_update_commit(struct core *c)
{
    uint64_t majority = majority_index(c);
    if (majority > c->commit && epoch_at(c, majority) == c->hs.epoch) {
        advance_commit(c, majority);
    }
}

/* ========================================================================
 * Backup side
 * ====================================================================== */

/* Where a primary should retry after prev did not match: the first index
 * of the conflicting epoch, so it skips a whole epoch per round trip. */
static uint64_t conflict_hint(const struct core *c, uint64_t prev)
{
    uint64_t bad = epoch_at(c, prev), hint = prev;
    while (hint > c->commit + 1 && epoch_at(c, hint - 1) == bad) {
        hint--;
    }
    return hint;
}

/* Append what the message holds beyond what we already have. False when it
 * would rewrite a committed entry (refused: safety first). */
static bool store_entries(struct core *c, const struct core_msg *m)
{
    uint64_t prev = m->append.prev_index;
    size_t i = 0;
    const struct core_entry *es = m->append.entries;
    /* Entries we already hold are skipped: a duplicate or late Append must
     * not truncate anything it does not conflict with. A committed one is
     * the primary's too, whether we still hold it or retention dropped it;
     * one that differs (only a forged commit can make that) refuses it all. */
    while (i < m->append.n_entries && prev + i + 1 <= last_index(c)) {
        uint64_t ours = epoch_at(c, prev + i + 1);
        if (ours != es[i].epoch && prev + i + 1 <= c->commit && ours != 0) {
            return false;
        }
        if (ours != es[i].epoch && prev + i + 1 > c->commit) {
            break;
        }
        i++;
    }
    if (i == m->append.n_entries) {
        return true;
    }
    uint64_t from = prev + i + 1;
    if (from <= last_index(c)) {
        if (from <= c->commit) {
            return false;
        }
        log_truncate(c, from);
    }
    bool config = false;
    for (; i < m->append.n_entries; i++) {
        if (log_push(c, &es[i]) != 0) {
            break;
        }
        config |= es[i].type == CORE_ENTRY_CONFIG;
    }
    out_log_changed(c, from);
    if (config) {
        config_reload(c);
    }
    return true;
}

/* The entries follow prev_epoch without going back, and none is later than
 * the sender's epoch: what every log written by primaries looks like. */
static bool entries_ordered(const struct core_msg *m)
{
    uint64_t before = m->append.prev_epoch;
    for (size_t i = 0; i < m->append.n_entries; i++) {
        uint64_t e = m->append.entries[i].epoch;
        if (e < before || e > m->epoch || e == 0) {
            return false;
        }
        before = e;
    }
    return true;
}

void recv_append(struct core *c, int64_t now, const struct core_msg *m)
{
    struct core_msg r = {.type = CORE_MSG_APPEND_RESPONSE, .epoch = c->hs.epoch};
    r.append_response.round = m->append.round;
    if (c->disk_failed) {
        return; /* it could not hold them: to the primary, it is down */
    }
    if (m->epoch < c->hs.epoch) {
        out_send(c, m->from, &r); /* tells a stale primary to step down */
        return;
    }
    if (!entries_ordered(m)) {
        return; /* no primary sends a log whose epochs go back: garbage */
    }
    if (m->epoch > c->hs.epoch || c->role != CORE_BACKUP || strcmp(c->primary, m->from) != 0) {
        if (m->epoch == c->hs.epoch && c->epoch_primary[0] != '\0' &&
            strcmp(c->epoch_primary, m->from) != 0) {
            return; /* a second primary in one epoch cannot exist; ignore it */
        }
        follow(c, now, m->epoch, m->from);
        r.epoch = c->hs.epoch;
    }
    c->last_primary_contact = now;
    c->primary_down = false;
    c->primary_lost_at = 0;
    reset_election_timer(c, now);

    uint64_t prev = m->append.prev_index;
    if (prev > last_index(c)) {
        r.append_response.hint_index = last_index(c) + 1;
        out_send(c, m->from, &r);
        return;
    }
    /* A committed entry is the primary's too (and retention may have
     * dropped it here, epoch and all): only newer ones are compared... */
    uint64_t ours = epoch_at(c, prev);
    if (prev > c->commit && ours != m->append.prev_epoch) {
        r.append_response.hint_index = conflict_hint(c, prev);
        out_send(c, m->from, &r);
        return;
    }
    /* ... and one we hold that differs was never the primary's: only a
     * forged commit gets there. Refused: our log keeps its epochs in order. */
    if (prev <= c->commit && ours != 0 && ours != m->append.prev_epoch) {
        return;
    }
    if (!store_entries(c, m)) {
        return;
    }
    uint64_t matched = prev + m->append.n_entries;
    if (matched > last_index(c)) {
        matched = last_index(c);
    }
    uint64_t commit = m->append.commit_index < matched ? m->append.commit_index : matched;
    advance_commit(c, commit);
    r.append_response.success = true;
    r.append_response.match_index = matched;
    out_send(c, m->from, &r);
}

/* The primary's snapshot: what we hold of it we keep; otherwise it
 * replaces the log, which continues after it. Answered like an Append,
 * once it is durable. */
void recv_snapshot(struct core *c, int64_t now, const struct core_msg *m)
{
    struct core_msg r = {.type = CORE_MSG_APPEND_RESPONSE, .epoch = c->hs.epoch};
    if (c->disk_failed) {
        return;
    }
    if (m->epoch < c->hs.epoch) {
        out_send(c, m->from, &r); /* tells a stale primary to step down */
        return;
    }
    uint64_t s = m->snapshot.index;
    if (s == 0 || m->snapshot.epoch == 0 || m->snapshot.epoch > m->epoch ||
        snap_check(m->snapshot.data, m->snapshot.len, s, m->snapshot.epoch) != 0) {
        return; /* garbage: no primary sends that */
    }
    if (m->epoch > c->hs.epoch || c->role != CORE_BACKUP || strcmp(c->primary, m->from) != 0) {
        if (m->epoch == c->hs.epoch && c->epoch_primary[0] != '\0' &&
            strcmp(c->epoch_primary, m->from) != 0) {
            return; /* a second primary in one epoch cannot exist */
        }
        follow(c, now, m->epoch, m->from);
        r.epoch = c->hs.epoch;
    }
    c->last_primary_contact = now;
    c->primary_down = false;
    c->primary_lost_at = 0;
    reset_election_timer(c, now);
    r.append_response.success = true;
    r.append_response.match_index = s;
    if (s <= c->commit) {
        out_send(c, m->from, &r); /* we hold it all, identical */
        return;
    }
    if (s <= last_index(c) && epoch_at(c, s) == m->snapshot.epoch) {
        advance_commit(c, s); /* we hold the prefix it stands for */
        out_send(c, m->from, &r);
        return;
    }
    if (log_reset(c, m->snapshot.data, m->snapshot.len) != 0) {
        return; /* out of memory: the primary sends it again */
    }
    out_send(c, m->from, &r);
}

void recv_append_response(struct core *c, int64_t now, const struct core_msg *m)
{
    if (m->epoch > c->hs.epoch) {
        follow(c, now, m->epoch, "");
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
    if (m->append_response.round > p->round_acked && m->append_response.round <= c->round) {
        /* Any answer of our epoch says it still follows us. */
        p->round_acked = m->append_response.round;
        reads_confirm(c);
    }
    if (m->append_response.success) {
        bool progress = m->append_response.match_index > p->match_index;
        /* Every Append up to its match is answered, this one or not. */
        while (p->inflight > 0 &&
               p->inflight_last[p->inflight_head] <= m->append_response.match_index) {
            p->inflight_head = (p->inflight_head + 1) % MAX_INFLIGHT;
            p->inflight--;
        }
        if (progress) {
            /* A peer cannot hold more than we sent it. */
            uint64_t match = m->append_response.match_index;
            p->match_index = match < last_index(c) ? match : last_index(c);
        }
        /* Its answer tells where it is, even when that is no progress
         * (an installed snapshot older than what it held). */
        uint64_t at = m->append_response.match_index > p->match_index
                          ? m->append_response.match_index
                          : p->match_index;
        if (at > last_index(c)) {
            at = last_index(c);
        }
        if (p->next_index <= at) {
            p->next_index = at + 1;
        }
        if (progress) {
            /* Last: a membership change may forget peers, p among them. */
            primary_update_commit(c);
            maybe_change_config(c, now);
        }
        return;
    }
    uint64_t hint = m->append_response.hint_index;
    if (hint == 0) {
        hint = 1; /* indexes start at 1: resend from the start */
    }
    if (hint <= p->match_index) {
        /* Its log is shorter than it once acknowledged: the replica lost its
         * data dir and came back empty under the same id. Believe it and
         * resend from where it is. */
        p->match_index = hint > 0 ? hint - 1 : 0;
    }
    if (hint < p->next_index) {
        p->next_index = hint;
        p->inflight = 0;
    }
    p->need_send = true;
}
