/*
 * replica/core/core.c — the inputs, life cycle and status of a core (see
 * core.h). Section 3 of Ongaro's dissertation is the reference for
 * elections and replication, 4 for membership changes (one server at a
 * time, effective when appended), 9.6 for pre-vote and check-quorum; the
 * rules themselves live in election.c, replication.c and quorum.c.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ========================================================================
 * Inputs
 * ====================================================================== */

static void step_down_lost_quorum(struct core *c, int64_t now)
{
    c->primary[0] = '\0';
    role_change(c, now, CORE_BACKUP, "lost contact with a majority");
    reset_election_timer(c, now);
}

void core_client_request(struct core *c, int64_t now, uint64_t token, const char *client_id,
                         const uint8_t *data, size_t len, uint64_t seen_index)
{
    log_trim(c);
    if (c->role == CORE_PRIMARY && !quorum_fresh(c, now)) {
        step_down_lost_quorum(c, now);
    }
    if (c->role != CORE_PRIMARY || handing_over(c)) {
        /* A primary that removed itself takes nothing new: its successor
         * will, within moments. */
        out_reply(c, token, CORE_REPLY_NOT_PRIMARY, 0, c->hs.epoch,
                  c->role == CORE_PRIMARY ? "" : c->primary, "not primary");
        return;
    }
    session_request(c, token, client_id, data, len, seen_index);
}

void core_recv(struct core *c, int64_t now, const struct core_msg *m)
{
    if (m->from == NULL || strcmp(m->from, c->id) == 0) {
        return;
    }
    c->now = now;
    log_trim(c);
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
    case CORE_MSG_TIMEOUT_NOW:
        recv_timeout_now(c, now, m);
        break;
    case CORE_MSG_SNAPSHOT:
        recv_snapshot(c, now, m);
        break;
    }
}

/* Replicas that left the configuration and are gone: forget them, so the
 * peer table and the status list members and newcomers only. */
static void forget_strangers(struct core *c)
{
    if (c->cfg_index == 0) {
        return; /* bootstrapping: every replica seen is part of the view */
    }
    for (unsigned i = 0; i < c->n_peers;) {
        struct peer *p = &c->peers[i];
        if (!p->up && !is_member(c, p->id) && strcmp(p->id, c->leaving) != 0) {
            peer_forget(c, p->id); /* moves the last peer into slot i */
        } else {
            i++;
        }
    }
}

void core_tick(struct core *c, int64_t now)
{
    c->now = now;
    log_trim(c);
    forget_strangers(c);
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
    /* An epoch at the wire's ceiling (only a forged message can have put
     * it there) has no successor anyone would accept: never campaign. */
    if (can_campaign(c) && c->hs.epoch < LIMIT_COUNTER_MAX) {
        start_round(c, now, true);
    } else {
        role_change(c, now, CORE_BACKUP, NULL);
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
        out_event(c, EVENT_PRIMARY_LOST, id, last_index(c), "connection closed and refused");
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
    reads_start_round(c);
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct peer *p = &c->peers[i];
        if (replicates_to(c, p) && (p->need_send || p->next_index <= last_index(c))) {
            if (p->need_send || p->inflight < MAX_INFLIGHT) {
                send_append(c, p, true);
            }
        }
    }
}

/* The one place timeouts are chosen from options, at start and at run time. */
static void timing_from(struct core_options *o, unsigned hb, unsigned emin, unsigned emax)
{
    o->heartbeat_ms = hb ? hb : 50;
    o->election_min_ms = emin ? emin : 300;
    o->election_max_ms = emax > o->election_min_ms ? emax : o->election_min_ms * 2;
}

void core_set_timing(struct core *c, int64_t now, unsigned heartbeat_ms, unsigned election_min_ms,
                     unsigned election_max_ms)
{
    c->now = now;
    timing_from(&c->o, heartbeat_ms, election_min_ms, election_max_ms);
    c->timing_since = now;
    if (c->role == CORE_PRIMARY) {
        c->heartbeat_deadline = now;
    } else {
        reset_election_timer(c, now);
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
 * Life cycle
 * ====================================================================== */

static uint64_t no_random(void *arg)
{
    (void)arg;
    return 0;
}

/* Options and identity; the log still empty. */
static struct core *core_alloc(const struct core_options *o, int64_t now)
{
    if (o->id == NULL || o->id[0] == '\0' || strlen(o->id) >= CORE_ID_MAX) {
        return NULL;
    }
    struct core *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->o = *o;
    c->o.random = o->random ? o->random : no_random;
    timing_from(&c->o, o->heartbeat_ms, o->election_min_ms, o->election_max_ms);
    c->o.initial_size = o->initial_size ? o->initial_size : 3;
    if (c->o.initial_size > CORE_MAX_MEMBERS) {
        c->o.initial_size = CORE_MAX_MEMBERS;
    }
    c->o.max_append_bytes = o->max_append_bytes ? o->max_append_bytes : 1 << 20;
    c->o.max_request_bytes = o->max_request_bytes ? o->max_request_bytes : 1 << 20;
    c->o.cache_bytes = o->cache_bytes ? o->cache_bytes : 8u << 20;
    c->o.session_max = o->session_max ? o->session_max : 65536;
    strcpy(c->id, o->id);
    c->o.id = c->id;
    idmap_init(&c->client_ids);
    c->session_horizon = 1;
    c->cache_first = 1;
    c->first_index = 1;
    c->now = now;
    c->role = CORE_BACKUP;
    c->last_primary_contact = -1;
    reset_election_timer(c, now);
    return c;
}

struct core *core_open(const struct core_options *o, const struct core_recovered *r, int64_t now)
{
    uint64_t first = r->n_runs > 0 ? r->runs[0].first_index : r->last_index + 1;
    if (r->last_index > 0 && o->store.read == NULL) {
        return NULL; /* entries it could never read */
    }
    struct core *c = core_alloc(o, now);
    if (c == NULL) {
        return NULL;
    }
    c->hs = r->hs;
    if (r->snapshot_len > 0 && snap_load(c, r->snapshot, r->snapshot_len, true) != 0) {
        core_free(c);
        return NULL;
    }
    /* Without a snapshot the log starts at 1; with one, at most one entry
     * after it (older entries may still lie in segments not dropped yet). */
    if (r->last_index > 0 && (first > c->snap_index + 1 || first == 0)) {
        core_free(c);
        return NULL;
    }
    c->first_index = first > c->snap_index ? first : c->snap_index + 1;
    c->last = r->last_index > c->snap_index ? r->last_index : c->snap_index;
    c->cache_first = c->last + 1;
    c->durable = c->persisted = c->last; /* recovered from disk */
    if (c->snap_index > 0) {
        c->commit = c->checkpointed = c->snap_index;
    }
    for (size_t i = 0; i < r->n_runs; i++) {
        if (r->runs[i].first_index > c->last || runs_note_at(c, &r->runs[i]) != 0) {
            core_free(c);
            return NULL;
        }
    }
    for (size_t i = 0; i < r->n_config; i++) {
        if (r->config_indexes[i] > c->last || config_note_at(c, r->config_indexes[i]) != 0) {
            core_free(c);
            return NULL;
        }
    }
    /* Entries up to a checkpoint's commit index were committed: counting
     * them again would read the whole log. */
    if (r->checkpoint.commit <= c->last && r->checkpoint.commit >= c->commit) {
        c->commit = c->checkpointed = r->checkpoint.commit;
        c->processed = r->checkpoint.processed;
        c->synced = r->checkpoint.synced;
    }
    if (sessions_rebuild(c) != 0) {
        core_free(c);
        return NULL;
    }
    config_reload(c);
    return c;
}

struct core *core_new(const struct core_options *o, const struct core_hard_state *hs,
                      const struct core_entry *entries, size_t n_entries, int64_t now)
{
    struct core *c = core_alloc(o, now);
    if (c == NULL) {
        return NULL;
    }
    if (hs != NULL) {
        c->hs = *hs;
    }
    for (size_t i = 0; i < n_entries; i++) {
        if (log_push(c, &entries[i]) != 0) {
            core_free(c);
            return NULL;
        }
    }
    c->durable = c->persisted = last_index(c); /* recovered from disk */
    config_reload(c);
    return c;
}

bool core_compact(struct core *c, int64_t now, uint64_t keep)
{
    c->now = now;
    if (snap_take(c) != 0) {
        return false;
    }
    uint64_t drop = c->snap_index >= keep ? c->snap_index - keep + 1 : 1;
    if (drop > c->first_index) {
        c->first_index = drop;
    }
    while (c->n_cfg_entries > 1 && c->cfg_entries[1] < c->first_index) {
        memmove(c->cfg_entries, c->cfg_entries + 1,
                (c->n_cfg_entries - 1) * sizeof(*c->cfg_entries));
        c->n_cfg_entries--;
    }
    c->snap_new = true;
    c->snap_reset = false;
    c->snap_drop = c->first_index;
    return true;
}

uint64_t core_first_index(const struct core *c)
{
    return c->first_index;
}

void core_storage_failed(struct core *c, int64_t now, const char *why)
{
    if (c->disk_failed) {
        return;
    }
    c->disk_failed = true;
    if (c->role != CORE_BACKUP) {
        role_change(c, now, CORE_BACKUP, why);
        c->primary[0] = '\0'; /* clients look elsewhere */
    }
    reset_election_timer(c, now);
}

void core_storage_resumed(struct core *c, int64_t now)
{
    if (!c->disk_failed) {
        return;
    }
    c->disk_failed = false;
    c->durable = c->persisted < last_index(c) ? c->persisted : last_index(c);
    reset_election_timer(c, now);
}

void core_stop(struct core *c)
{
    sessions_fail(c, CORE_REPLY_UNKNOWN);
    reads_fail(c);
}

void core_free(struct core *c)
{
    if (c == NULL) {
        return;
    }
    log_free(c);
    sessions_free(c);
    snap_free(c);
    free(c->pending);
    free(c->reads);
    outbox_free(c);
    free(c);
}

/* ========================================================================
 * Status
 * ====================================================================== */

enum core_role core_role(const struct core *c)
{
    if (c->role == CORE_BACKUP && core_config_removed(&c->cfg, c->id)) {
        return CORE_REMOVED;
    }
    if (c->role == CORE_BACKUP && !is_voter(c, c->id)) {
        return CORE_LEARNER;
    }
    return c->role;
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

uint64_t core_durable_index(const struct core *c)
{
    return c->durable;
}

const char *core_primary(const struct core *c)
{
    return c->primary;
}

const char *core_id(const struct core *c)
{
    return c->id;
}

const char *core_cluster_id(const struct core *c)
{
    return c->cfg_index != 0 ? c->cfg.cluster_id : "";
}

int core_read_entries(struct core *c, uint64_t lo, uint64_t hi, size_t max_bytes,
                      const struct core_entry **out, size_t *n)
{
    return log_read(c, lo, hi, max_bytes, false, out, n);
}

const struct core_entry *core_entry_at(struct core *c, uint64_t index)
{
    return log_entry(c, index);
}

void core_get_status(const struct core *c, int64_t now, struct core_status *out)
{
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
    out->config = c->cfg;
    out->config_index = c->cfg_index;
    out->session_horizon = c->session_horizon;
    out->sessions = (unsigned)c->sessions_len;
    out->cache_bytes = c->cache_bytes;
    out->storage_errors = c->storage_errors;
    out->heartbeat_ms = c->o.heartbeat_ms;
    out->election_min_ms = c->o.election_min_ms;
    out->election_max_ms = c->o.election_max_ms;
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
