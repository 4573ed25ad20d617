/*
 * replica/core/membership.c — changing who the members are. One change at a
 * time, each a CONFIG entry that takes effect when appended (dissertation
 * 4.1), and only once the primary has committed an entry of its own epoch
 * and the previous change (the 2015 erratum to single-server changes):
 *
 *   - a replica that connects and is no member joins as a learner;
 *   - a learner that has caught up is promoted to voter;
 *   - a member is removed on request (core_remove_member), or by the
 *     primary once it has been unreachable for the dead-member timeout AND
 *     discovery no longer lists it (Consul's autopilot cleanup);
 *   - a primary that removed itself hands over: it brings the most
 *     up-to-date voter level with its log and tells it to elect at once
 *     (TimeoutNow, 3.10) before stepping down;
 *   - core_force_config rewrites the configuration to the replicas given,
 *     the explicit, unsafe way out of a lost majority.
 */
#include "internal.h"

#define FORCED_EPOCH_LEAP 1000 /* see core_force_config */

#include <stdio.h> /* snprintf only */
#include <string.h>

void append_config(struct core *c)
{
    char buf[CORE_CONFIG_TEXT_MAX];
    size_t n = core_config_encode(&c->cfg, buf, sizeof(buf));
    assert(n > 0); /* the buffer holds the largest configuration */
    log_append_local(c, CORE_ENTRY_CONFIG, "", (const uint8_t *)buf, n);
}

/* Members get the log; so does a member removed on request until it holds
 * its removal. */
bool replicates_to(const struct core *c, const struct peer *p)
{
    return is_member(c, p->id) || strcmp(p->id, c->leaving) == 0;
}

/* The previous change and our epoch are committed: a new change may go. */
static bool change_allowed(const struct core *c)
{
    return c->role == CORE_PRIMARY && c->cfg_index <= c->commit &&
           c->commit >= c->epoch_start_index;
}

/* Would a majority of the voters that remain be reachable without `id`? */
static bool majority_without(const struct core *c, int64_t now, const char *id)
{
    unsigned left = n_voters(c) - (is_voter(c, id) ? 1 : 0);
    return left > 0 && voters_alive(c, now, id) >= majority_of(left);
}

static void remove_member(struct core *c, const char *which, bool on_request, const char *why)
{
    char id[CORE_ID_MAX]; /* `which` may point into the configuration */
    snprintf(id, sizeof(id), "%s", which);
    struct core_config *cfg = &c->cfg;
    for (unsigned i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->members[i].id, id) == 0) {
            memmove(&cfg->members[i], &cfg->members[i + 1],
                    (cfg->n - i - 1) * sizeof(cfg->members[0]));
            cfg->n--;
            break;
        }
    }
    if (on_request) {
        if (cfg->n_removed == CORE_MAX_REMOVED) {
            memmove(cfg->removed[0], cfg->removed[1], (CORE_MAX_REMOVED - 1) * CORE_ID_MAX);
            cfg->n_removed--;
        }
        snprintf(cfg->removed[cfg->n_removed++], CORE_ID_MAX, "%s", id);
    }
    const struct peer *p = peer_find(c, id);
    if (p != NULL && p->up && strcmp(id, c->id) != 0) {
        snprintf(c->leaving, sizeof(c->leaving), "%s", id);
        c->leaving_told = false;
    }
    append_config(c);
    out_event(c, EVENT_REMOVED, id, last_index(c), why);
    if (p != NULL && !p->up) {
        peer_forget(c, id);
    }
}

void core_remove_member(struct core *c, int64_t now, uint64_t token, const char *id)
{
    if (c->role != CORE_PRIMARY || handing_over(c)) {
        out_reply(c, token, CORE_REPLY_NOT_PRIMARY, 0, c->hs.epoch,
                  c->role == CORE_PRIMARY ? "" : c->primary, "not primary");
        return;
    }
    if (!is_member(c, id)) {
        out_reply(c, token, CORE_REPLY_NOT_FOUND, 0, c->hs.epoch, c->id, "no such member");
        return;
    }
    if (!change_allowed(c)) {
        out_reply(c, token, CORE_REPLY_BUSY, 0, c->hs.epoch, c->id,
                  "another membership change is in progress");
        return;
    }
    if (!majority_without(c, now, id)) {
        out_reply(c, token, CORE_REPLY_NO_QUORUM, 0, c->hs.epoch, c->id,
                  "removing it would leave no reachable majority");
        return;
    }
    remove_member(c, id, true, "removed on request");
    out_reply(c, token, CORE_REPLY_OK, last_index(c), c->hs.epoch, c->id, NULL);
}

void core_peer_listed(struct core *c, const char *id, bool listed)
{
    struct peer *p = peer_find(c, id);
    if (p != NULL) {
        p->listed = listed;
    }
}

/* A member is gone when it has been unreachable for the timeout (counted
 * from when we became primary at the earliest: we cannot know what
 * happened before) and discovery no longer lists it. A restarting or paused
 * replica is still listed; a stopped one is not, but only the timeout
 * decides, and SIGTERM itself never removes anybody. */
static const char *find_gone_member(const struct core *c, int64_t now)
{
    if (c->o.dead_member_timeout_ms == 0) {
        return NULL;
    }
    for (unsigned i = 0; i < c->cfg.n; i++) {
        const char *id = c->cfg.members[i].id;
        const struct peer *p = peer_find(c, id);
        /* A member discovery has said nothing about is not known gone. */
        if (strcmp(id, c->id) == 0 || p == NULL || p->up || p->listed) {
            continue;
        }
        int64_t since = p->last_heard > c->primary_since ? p->last_heard : c->primary_since;
        if (now - since >= (int64_t)c->o.dead_member_timeout_ms) {
            return id;
        }
    }
    return NULL;
}

/* ========================================================================
 * Handing over
 * ====================================================================== */

bool handing_over(const struct core *c)
{
    return c->role == CORE_PRIMARY && c->cfg_index != 0 && !is_member(c, c->id);
}

/* The voter with the most of our log, connected. */
static struct peer *best_successor(struct core *c)
{
    struct peer *best = NULL;
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct peer *p = &c->peers[i];
        if (p->up && is_voter(c, p->id) && (best == NULL || p->match_index > best->match_index)) {
            best = p;
        }
    }
    return best;
}

/* Our removal is committed (counted without us, 4.2.2): hand over once the
 * successor holds everything, or give up waiting after an election timeout
 * and let the voters elect as after a crash. */
static void hand_over(struct core *c, int64_t now)
{
    if (c->cfg_index > c->commit) {
        return; /* still the primary of a configuration without us */
    }
    struct peer *p = c->handover_to[0] ? peer_find(c, c->handover_to) : NULL;
    if (p == NULL || !p->up) {
        p = best_successor(c);
        c->handover_deadline = now + c->o.election_min_ms;
        snprintf(c->handover_to, sizeof(c->handover_to), "%s", p ? p->id : "");
        if (p != NULL) {
            out_event(c, EVENT_HANDOVER, p->id, last_index(c), "removed primary hands over");
        }
    }
    bool ready = p != NULL && p->match_index >= last_index(c);
    if (!ready && now < c->handover_deadline) {
        if (p != NULL) {
            p->need_send = true;
        }
        return;
    }
    if (ready) {
        struct core_msg m = {.type = CORE_MSG_TIMEOUT_NOW, .epoch = c->hs.epoch};
        out_send(c, p->id, &m);
    }
    c->handover_to[0] = '\0';
    c->primary[0] = '\0';
    role_change(c, now, CORE_BACKUP, "removed from the configuration");
    reset_election_timer(c, now);
}

/* A primary that has removed us from its configuration hands over to us:
 * elect at once, telling voters to set their lease aside (3.10). */
void recv_timeout_now(struct core *c, int64_t now, const struct core_msg *m)
{
    if (m->epoch != c->hs.epoch || strcmp(m->from, c->epoch_primary) != 0 || !can_campaign(c) ||
        c->hs.epoch >= LIMIT_COUNTER_MAX) {
        return;
    }
    c->transfer_round = true;
    start_round(c, now, false);
}

/* ========================================================================
 * The next change
 * ====================================================================== */

void maybe_change_config(struct core *c, int64_t now)
{
    if (handing_over(c)) {
        hand_over(c, now);
        return;
    }
    if (c->leaving[0] != '\0') {
        const struct peer *p = peer_find(c, c->leaving);
        if (p == NULL || !p->up || (c->leaving_told && p->match_index >= c->cfg_index)) {
            c->leaving[0] = '\0';
        }
    }
    if (!change_allowed(c)) {
        return;
    }
    const char *gone = find_gone_member(c, now);
    if (gone != NULL && majority_without(c, now, gone)) {
        char why[96];
        snprintf(why, sizeof(why), "unreachable for %u ms and no longer discovered",
                 c->o.dead_member_timeout_ms);
        remove_member(c, gone, false, why);
        return;
    }
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct peer *p = &c->peers[i];
        if (p->up && !is_member(c, p->id) && !core_config_removed(&c->cfg, p->id) &&
            c->cfg.n < CORE_MAX_MEMBERS) {
            struct core_member *m = &c->cfg.members[c->cfg.n++];
            memcpy(m->id, p->id, CORE_ID_MAX);
            m->voter = false;
            p->next_index = last_index(c) + 1;
            p->match_index = 0;
            p->last_ack = now;
            append_config(c);
            out_event(c, EVENT_JOINED, p->id, last_index(c), "added as learner");
            return;
        }
    }
    for (unsigned i = 0; i < c->cfg.n; i++) {
        struct core_member *m = &c->cfg.members[i];
        struct peer *p = peer_find(c, m->id);
        if (!m->voter && p != NULL && p->up && p->match_index >= c->commit) {
            m->voter = true;
            p->last_ack = now;
            append_config(c);
            out_event(c, EVENT_CAUGHT_UP, m->id, last_index(c), "promoted to voter");
            return;
        }
    }
}

/* ========================================================================
 * Forced recovery
 * ====================================================================== */

/* The unsafe way out when no majority of voters survives (etcd's
 * --force-new-cluster): this replica becomes the only voter of a new epoch,
 * the replicas in `keep` its learners (promoted as they catch up). Entries
 * only the lost majority held are lost, and a replica that committed more
 * than we hold cannot follow us: run it on the most up-to-date survivor. */
void core_force_config(struct core *c, int64_t now, uint64_t token, const char *const *keep,
                       unsigned n_keep)
{
    if (c->role == CORE_PRIMARY && quorum_fresh(c, now)) {
        out_reply(c, token, CORE_REPLY_REJECTED, 0, c->hs.epoch, c->id,
                  "this replica is a primary with a majority: nothing to recover");
        return;
    }
    if (c->cfg_index == 0 || c->hs.epoch >= LIMIT_COUNTER_MAX || n_keep >= CORE_MAX_MEMBERS) {
        out_reply(c, token, CORE_REPLY_REJECTED, 0, c->hs.epoch, c->primary,
                  "no configuration to rewrite");
        return;
    }
    struct core_config next = c->cfg;
    next.n = 0;
    snprintf(next.members[next.n].id, CORE_ID_MAX, "%s", c->id);
    next.members[next.n++].voter = true;
    for (unsigned i = 0; i < n_keep; i++) {
        if (strlen(keep[i]) < CORE_ID_MAX && core_config_member(&next, keep[i]) == NULL &&
            !core_config_removed(&next, keep[i])) {
            snprintf(next.members[next.n].id, CORE_ID_MAX, "%s", keep[i]);
            next.members[next.n++].voter = false;
        }
    }
    if (c->role == CORE_PRIMARY) {
        role_change(c, now, CORE_BACKUP, "configuration forced");
    }
    /* Far ahead of the old epoch: voters left out that come back (the
     * operator was told not to) may still form a majority of the old
     * configuration and elect among themselves, in an epoch or two, before
     * they hear from us; at the same epoch neither side would ever follow
     * the other. This way the first message from us wins them over. */
    uint64_t epoch = c->hs.epoch + FORCED_EPOCH_LEAP;
    persist_epoch(c, epoch < LIMIT_COUNTER_MAX ? epoch : LIMIT_COUNTER_MAX, c->id);
    c->cfg = next;
    append_config(c);
    out_event(c, EVENT_FORCED_CONFIG, c->id, last_index(c),
              "UNSAFE: configuration forced to the reachable replicas");
    role_change(c, now, CORE_PRIMARY, NULL);
    out_reply(c, token, CORE_REPLY_OK, last_index(c), c->hs.epoch, c->id, NULL);
}
